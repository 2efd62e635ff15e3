"""How a bridge proves who it is to NATS and checks who NATS is: TLS and credentials, from the settings.

Read once at start-up, before connecting, so a missing file or a half-given credential is a
ConfigError naming its key and where the value came from, never a retry loop. Reading files only;
no network.

TLS is on when a server URL is ``tls://`` or a CA or client certificate is given: the server is
verified against ``nats.tls_ca`` (the system trust store if empty), and ``nats.tls_cert``/``tls_key``
are the client's certificate for a server that verifies clients (``verify: true``). Credentials are one
of: a credentials file (``nats.creds``: user JWT and nkey seed, operator mode), an nkey seed file
(``nats.nkey_seed``), ``nats.user`` with ``nats.password``, or ``nats.token``.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tickrelay.config import Settings
from tickrelay.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class NatsAccess:
    """What nats-py connects with beyond the URLs: ``tls`` (None: plain TCP) and ``credentials`` (its
    connect keywords: user_credentials, nkeys_seed, user and password, or token)."""

    tls: ssl.SSLContext | None = None
    credentials: Mapping[str, str] = dataclasses.field(default_factory=dict)


def _where(settings: Settings, key: str) -> str:
    return f"`{key}` ({settings.sources[key]})"


def _file(settings: Settings, key: str) -> str:
    path: str = settings.value(key)
    if path and not Path(path).is_file():
        raise ConfigError(f"{_where(settings, key)}: no such file: {path}")
    return path


def _tls(settings: Settings, servers: Sequence[str]) -> ssl.SSLContext | None:
    ca, cert, key = (_file(settings, f"nats.tls_{k}") for k in ("ca", "cert", "key"))
    if key and not cert:
        raise ConfigError(f"{_where(settings, 'nats.tls_key')}: a client key needs `nats.tls_cert` too")
    if not (ca or cert or any(s.startswith("tls://") for s in servers)):
        return None
    try:
        context = ssl.create_default_context(cafile=ca or None)
    except ssl.SSLError as exc:
        raise ConfigError(f"{_where(settings, 'nats.tls_ca')}: not a PEM CA certificate: {exc}") from None
    if cert:
        try:
            context.load_cert_chain(cert, key or None)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"{_where(settings, 'nats.tls_cert')}: not a PEM certificate and matching key: {exc}"
            ) from None
    return context


def _credentials(settings: Settings) -> dict[str, str]:
    creds, seed = _file(settings, "nats.creds"), _file(settings, "nats.nkey_seed")
    nats = settings.config.nats
    user, password, token = nats.user, nats.password, nats.token
    given = [k for k, v in (("nats.creds", creds), ("nats.nkey_seed", seed), ("nats.user", user),
                            ("nats.token", token)) if v]  # fmt: skip
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(_where(settings, k) for k in given)}: give one way to authenticate")
    if bool(user) != bool(password):
        missing, present = ("nats.password", "nats.user") if user else ("nats.user", "nats.password")
        raise ConfigError(f"{_where(settings, present)} needs `{missing}` too")
    options: dict[str, Any] = {}
    if creds:
        options["user_credentials"] = creds
    elif seed:
        options["nkeys_seed"] = seed
    elif user:
        options.update(user=user, password=password)
    elif token:
        options["token"] = token
    return options


def load_access(settings: Settings) -> NatsAccess:
    """TLS and credentials from the ``nats.*`` keys.

    Raises:
        ConfigError: a named file is missing or not PEM, a key without its certificate, a user without
            a password (or the reverse), or more than one way to authenticate.
    """
    return NatsAccess(_tls(settings, settings.config.nats.servers), _credentials(settings))
