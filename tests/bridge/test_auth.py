"""TLS and credentials from the ``nats.*`` keys: what nats-py gets, and the one-line errors before any
connection (the refusals of a real server are in test_secure.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from tickrelay.bridge.auth import NatsAccess, load_access
from tickrelay.config import load_settings
from tickrelay.errors import ConfigError


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pem")
    ca = trustme.CA()
    client = ca.issue_cert("bridge.tickrelay.test")
    other = trustme.CA().issue_cert("other.tickrelay.test")
    files = {"ca": ca.cert_pem, "cert": client.cert_chain_pems[0], "key": client.private_key_pem,
             "other_key": other.private_key_pem}  # fmt: skip
    for name, blob in files.items():
        blob.write_to_path(str(root / name))
    (root / "seed").write_text("SUAEXAMPLE")
    (root / "garbage").write_text("not a certificate\n")
    return {name: root / name for name in [*files, "seed", "garbage"]}


def access(flags: dict[str, object], environ: dict[str, str] | None = None) -> NatsAccess:
    return load_access(load_settings(None, "", environ or {}, flags))


def test_plain_by_default_and_tls_from_a_url_a_ca_or_a_certificate(pem: dict[str, Path]) -> None:
    plain = access({})
    assert plain.tls is None
    assert dict(plain.credentials) == {}
    system = access({"nats.servers": ["nats://a:4222", "tls://b:4222"]}).tls
    assert system is not None
    assert (system.verify_mode, system.check_hostname) == (ssl.CERT_REQUIRED, True)
    own = access({"nats.tls_ca": str(pem["ca"])}).tls
    assert own is not None
    (only,) = own.get_ca_certs()  # that CA alone, not the system's
    assert "trustme" in str(only["subject"])
    mutual = {
        "nats.tls_ca": str(pem["ca"]),
        "nats.tls_cert": str(pem["cert"]),
        "nats.tls_key": str(pem["key"]),
    }
    assert access(mutual).tls is not None


@pytest.mark.parametrize(
    ("flags", "environ", "credentials"),
    [
        ({"nats.user": "out", "nats.password": "pw"}, {}, {"user": "out", "password": "pw"}),
        ({"nats.user": "out"}, {"TICKRELAY_NATS_PASSWORD": "pw"}, {"user": "out", "password": "pw"}),
        ({}, {"TICKRELAY_NATS_TOKEN": "t"}, {"token": "t"}),
        ({"nats.nkey_seed": "SEED"}, {}, {"nkeys_seed": "SEED"}),
        ({"nats.creds": "CREDS"}, {}, {"user_credentials": "CREDS"}),
    ],
)
def test_one_way_to_authenticate_as_nats_py_keywords(
    pem: dict[str, Path], flags: dict[str, str], environ: dict[str, str], credentials: dict[str, str]
) -> None:
    given = {k: str(pem["seed"]) if v in ("SEED", "CREDS") else v for k, v in flags.items()}
    expected = {k: str(pem["seed"]) if v in ("SEED", "CREDS") else v for k, v in credentials.items()}
    assert dict(access(given, environ).credentials) == expected


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        (
            {"nats.tls_ca": "/nonexistent/ca.pem"},
            {},
            "`nats.tls_ca` (flag --nats-tls-ca): no such file: /nonexistent/ca.pem",
        ),
        (
            {},
            {"TICKRELAY_NATS_CREDS": "/nonexistent/x.creds"},
            "`nats.creds` (environment TICKRELAY_NATS_CREDS): no such file",
        ),
        (
            {"nats.tls_key": "KEY"},
            {},
            "`nats.tls_key` (flag --nats-tls-key): a client key needs `nats.tls_cert`",
        ),
        ({"nats.tls_ca": "GARBAGE"}, {}, "`nats.tls_ca` (flag --nats-tls-ca): not a PEM CA certificate"),
        (
            {"nats.tls_cert": "CERT", "nats.tls_key": "OTHER"},
            {},
            "`nats.tls_cert` (flag --nats-tls-cert): not a PEM certificate and matching key",
        ),
        ({"nats.user": "out"}, {}, "`nats.user` (flag --nats-user) needs `nats.password` too"),
        (
            {},
            {"TICKRELAY_NATS_PASSWORD": "pw"},
            "`nats.password` (environment TICKRELAY_NATS_PASSWORD) needs `nats.user` too",
        ),
        (
            {"nats.token": "t", "nats.nkey_seed": "SEED"},
            {},
            "`nats.nkey_seed` (flag --nats-nkey-seed) and `nats.token` (flag --nats-token): give one way",
        ),
    ],
)
def test_config_errors_name_the_key_and_its_source(
    pem: dict[str, Path], flags: dict[str, str], environ: dict[str, str], message: str
) -> None:
    files = {"KEY": pem["key"], "GARBAGE": pem["garbage"], "CERT": pem["cert"], "OTHER": pem["other_key"],
             "SEED": pem["seed"]}  # fmt: skip
    given = {k: str(files[v]) if v in files else v for k, v in flags.items()}
    with pytest.raises(ConfigError) as info:
        access(given, environ)
    assert str(info.value).startswith(message)
