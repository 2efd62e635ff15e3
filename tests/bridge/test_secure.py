"""The bridges across machines: TLS with a CA and client certificates made here, and NATS users whose
subject permissions let bridge out publish and bridge in only subscribe, on a real nats-server.

The server verifies client certificates (``verify: true``) and knows two users in one JetStream
account: ``out`` (password) may publish ``tickrelay.>`` and ``tickrelay-last.>`` and create the
streams; ``in`` (nkey) may subscribe and make its JetStream consumers, and publish nothing else. A
refusal is one line and an exit, never a retry loop; what a refused publisher sends reaches no relay.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nkeys
import pytest
import trustme

from tests.bridge.conftest import NATS_SERVER, Collector, NatsServer
from tests.bridge.test_bridge import namer, publish, running
from tests.relay.conftest import ME, message, until
from tickrelay.bridge.auth import NatsAccess, load_access
from tickrelay.bridge.inbound import BridgeIn, InSettings
from tickrelay.bridge.outbound import BridgeOut, OutSettings
from tickrelay.config import load_settings
from tickrelay.errors import NatsRefused
from tickrelay.protocol.codec import COUNTER_BITS, Source, make_sequence, restamp
from tickrelay.relay.server import Relay
from tickrelay.transport.output import RelayOutput


pytestmark = pytest.mark.nats
PASSWORD = "out-secret-7f3a"

# What each bridge needs, and nothing more (docs/nats.md shows the same).
OUT_PERMISSIONS = """{
  publish: ["tickrelay.>", "tickrelay-last.>",
            "$JS.API.STREAM.CREATE.TICKRELAY", "$JS.API.STREAM.CREATE.TICKRELAY_LAST",
            "$JS.API.STREAM.UPDATE.TICKRELAY", "$JS.API.STREAM.UPDATE.TICKRELAY_LAST"]
  subscribe: ["_INBOX.>"]
}"""
IN_PERMISSIONS = """{
  publish: ["$JS.API.STREAM.INFO.TICKRELAY_LAST",
            "$JS.API.CONSUMER.CREATE.TICKRELAY", "$JS.API.CONSUMER.CREATE.TICKRELAY.>",
            "$JS.API.CONSUMER.CREATE.TICKRELAY_LAST", "$JS.API.CONSUMER.CREATE.TICKRELAY_LAST.>",
            "$JS.FC.>"]
  subscribe: ["tickrelay.>", "_INBOX.>"]
}"""


class Pki:
    """A CA, the server's certificate (127.0.0.1, localhost), a client certificate and the ``in`` nkey."""

    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.root = root
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(root / "ca.pem"))
        server = ca.issue_cert("127.0.0.1", "localhost")
        server.cert_chain_pems[0].write_to_path(str(root / "server.pem"))
        server.private_key_pem.write_to_path(str(root / "server.key"))
        client = ca.issue_cert("bridge.tickrelay.test")
        client.cert_chain_pems[0].write_to_path(str(root / "client.pem"))
        client.private_key_pem.write_to_path(str(root / "client.key"))
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        (root / "in.seed").write_bytes(seed)
        self.in_nkey = nkeys.from_seed(bytearray(seed)).public_key.decode()

    def tls_flags(self) -> dict[str, str]:
        return {f"nats.tls_{k}": str(self.root / f) for k, f in (("ca", "ca.pem"), ("cert", "client.pem"),
                                                                 ("key", "client.key"))}  # fmt: skip

    def access(self, **flags: str) -> NatsAccess:
        """Through the real settings path: ``nats.*`` keys given as flags."""
        return load_access(load_settings(None, "", {}, {**self.tls_flags(), **flags}))

    def out(self) -> NatsAccess:
        return self.access(**{"nats.user": "out", "nats.password": PASSWORD})

    def inn(self) -> NatsAccess:
        return self.access(**{"nats.nkey_seed": str(self.root / "in.seed")})


def server_config(pki: Pki) -> str:
    r = pki.root
    return f"""
tls {{ cert_file: "{r}/server.pem", key_file: "{r}/server.key", ca_file: "{r}/ca.pem", verify: true }}
accounts {{
  TICKRELAY {{
    jetstream: enabled
    users: [
      {{ user: out, password: "{PASSWORD}", permissions: {OUT_PERMISSIONS} }}
      {{ nkey: {pki.in_nkey}, permissions: {IN_PERMISSIONS} }}
    ]
  }}
}}
"""


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


def start_server(tmp_path: Path, config: str, name: str = "secure") -> NatsServer:
    if not Path(NATS_SERVER).exists():
        pytest.skip("nats-server is not installed (./install.sh installs it)")
    (tmp_path / f"{name}.conf").write_text(config)
    server = NatsServer(tmp_path / f"{name}-js", config=tmp_path / f"{name}.conf")
    server.start()
    return server


@pytest.fixture
def secure(tmp_path: Path, pki: Pki) -> Iterator[NatsServer]:
    server = start_server(tmp_path, server_config(pki))
    yield server
    server.stop()


def one_stream(stream_id: int, n: int) -> list[bytes]:
    return [restamp(message(i), Source.PUBLISH_TOOL, make_sequence(stream_id, i + 1)) for i in range(n)]


async def raw_client(server: NatsServer, access: NatsAccess, errors: list[str]) -> Any:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    return await nats.connect(server.url, tls=access.tls, error_cb=on_error, allow_reconnect=False,
                              **access.credentials)  # fmt: skip


async def test_over_tls_bridge_in_forwards_only_what_bridge_out_may_publish(
    relays: tuple[Relay, Relay], secure: NatsServer, pki: Pki
) -> None:
    a, b = relays
    truth, far = Collector(a.path), Collector(b.path)
    await until(lambda: len(a.subscribers) == 1 and len(b.subscribers) == 1)
    out = BridgeOut(a.path, [secure.url], OutSettings(access=pki.out()))
    inn = BridgeIn(b.path, [secure.url], InSettings(access=pki.inn(), since_s=60))  # JetStream too
    async with running(out), running(inn):
        sent = RelayOutput(a.path, source=Source.PUBLISH_TOOL, stream_id=9)
        sent.start()
        await publish(sent, [message(i) for i in range(500)])
        # A forger holding bridge in's key (a consumer box taken over) publishes into tickrelay.>:
        forged, intruder_errors = one_stream(66, 3), []
        intruder = await raw_client(secure, pki.inn(), intruder_errors)
        for m in forged:
            await intruder.publish(namer.subject(m), m)
        await intruder.flush()
        # ... while the same kind of bytes from a user allowed to publish arrive: the forger's path is live.
        control = one_stream(67, 3)
        allowed = await raw_client(secure, pki.out(), [])
        for m in control:
            await allowed.publish(namer.subject(m), m)
        await allowed.flush()
        await until(lambda: far.has(control[-1]) and len(far.messages) == 503, 10)
        await sent.close()
        await intruder.close()
        await allowed.close()
    assert intruder_errors
    assert all("permissions violation for publish" in e for e in intruder_errors)
    assert len(intruder_errors) == len(forged)
    got = [m.raw for m in far.messages]
    assert got == [m.raw for m in truth.messages] + control  # byte for byte: A's stream, then the control
    assert not set(forged) & set(got)
    assert not any(m.header.sequence >> COUNTER_BITS == 66 for m in far.messages)
    assert (out.stats.nats.refused, inn.stats.nats.refused) == ("", "")
    assert inn.stats.rejected == 0
    await truth.close()
    await far.close()


def bridge_cli(direction: str, server: NatsServer, *args: str) -> tuple[int, str, float]:
    start = time.monotonic()
    argv = [*ME, "bridge", direction, "--socket", "/nonexistent/relay.sock", "--nats", server.url, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return done.returncode, done.stderr, time.monotonic() - start


def cli_flags(pki: Pki, *, ca: bool = True, cert: bool = True) -> list[str]:
    flags = pki.tls_flags()
    if not ca:
        del flags["nats.tls_ca"]
    if not cert:
        del flags["nats.tls_cert"], flags["nats.tls_key"]
    return [
        arg for key, path in flags.items() for arg in (f"--{key.replace('.', '-').replace('_', '-')}", path)
    ]


@pytest.mark.parametrize(
    ("direction", "case", "expected"),
    [
        (
            "out",
            "wrong password",
            "NATS refused us: Authorization Violation: the server does not accept these",
        ),
        ("in", "no credentials", "NATS refused us: Authorization Violation: the server wants credentials"),
        ("out", "no client certificate", "NATS TLS handshake failed: "),
        ("in", "CA not given", "NATS server certificate not trusted: unable to get local issuer certificate"),
        (
            "out",
            "bridge in's key",
            'NATS refused us: permissions violation for publish to "$js.api.stream.create.',
        ),
    ],
)
def test_a_refusal_is_one_line_and_exit_1(
    secure: NatsServer, pki: Pki, direction: str, case: str, expected: str
) -> None:
    seed = ["--nats-nkey-seed", str(pki.root / "in.seed")]
    args = {
        "wrong password": [*cli_flags(pki), "--nats-user", "out", "--nats-password", "guess"],
        "no credentials": cli_flags(pki),
        "no client certificate": [
            *cli_flags(pki, cert=False),
            "--nats-user",
            "out",
            "--nats-password",
            PASSWORD,
        ],
        "CA not given": [*cli_flags(pki, ca=False), *seed],
        "bridge in's key": [*cli_flags(pki), *seed],
    }[case]
    code, stderr, seconds = bridge_cli(direction, secure, *args)
    assert code == 1
    assert stderr.startswith(f"tickrelay bridge: {expected}")
    assert stderr.count("\n") == 1  # one line, no traceback, no counters
    assert seconds < 15  # no retry loop (a JetStream request that gets no answer takes 5 s)


async def test_with_tls_on_credentials_never_go_to_a_server_without_tls(tmp_path: Path, pki: Pki) -> None:
    """nats-py would send CONNECT (password and all) in clear to a server whose INFO leaves TLS out."""
    received = bytearray()
    info = (
        b'INFO {"server_id":"X","version":"2.9.10","proto":1,"max_payload":1048576,"auth_required":true}\r\n'
    )

    async def fake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(info)
        await writer.drain()
        while data := await reader.read(65536):
            received.extend(data)
        writer.close()

    server = await asyncio.start_server(fake, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    out = BridgeOut(tmp_path / "none.sock", [f"nats://127.0.0.1:{port}"], OutSettings(access=pki.out()))
    with pytest.raises(NatsRefused, match="the server does not offer TLS"):
        await asyncio.wait_for(out.run(asyncio.Event()), 10)
    server.close()
    assert PASSWORD.encode() not in received
    assert b"CONNECT" not in received


async def test_a_token_and_a_refusal_after_connecting(tmp_path: Path) -> None:
    """Token authentication; and a user who may publish only Binance subjects: bridge out connects, then
    its first other message is refused and it stops with that reason instead of publishing into nothing."""
    config = """
authorization {
  users: [
    { user: binance, password: "b", permissions: { publish: ["tickrelay.market-data.binance.>"] } }
  ]
}
"""
    token_server = start_server(tmp_path, 'authorization { token: "t0k3n-9c1d" }', "token")
    narrow = start_server(tmp_path, config, "narrow")
    try:

        def access(**flags: str) -> NatsAccess:
            return load_access(load_settings(None, "", {}, flags))

        out = BridgeOut(tmp_path / "none.sock", [token_server.url],
                        OutSettings(access=access(**{"nats.token": "t0k3n-9c1d"})))  # fmt: skip
        async with running(out):
            assert out.client is not None
            assert out.client.is_connected
        wrong = BridgeOut(tmp_path / "none.sock", [token_server.url],
                          OutSettings(access=access(**{"nats.token": "t0k3n-guess"})))  # fmt: skip
        with pytest.raises(NatsRefused, match="Authorization Violation"):
            await asyncio.wait_for(wrong.run(asyncio.Event()), 10)

        relay = Relay(tmp_path / "r.sock")
        await relay.start()
        limited = BridgeOut(relay.path, [narrow.url], OutSettings(
            setup_streams=False, access=access(**{"nats.user": "binance", "nats.password": "b"})
        ))  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(limited.run(stop))
        await asyncio.wait_for(limited.ready.wait(), 10)
        await until(lambda: len(relay.subscribers) == 1)
        sent = RelayOutput(relay.path, source=Source.PUBLISH_TOOL, stream_id=9)
        sent.start()
        sent.send(message(1))  # a Kraken quote: tickrelay.market-data.kraken...
        with pytest.raises(
            NatsRefused, match=r'permissions violation for publish to "tickrelay\.market-data\.'
        ):
            await asyncio.wait_for(task, 10)
        assert stop.is_set()
        await sent.close()
        await relay.stop(drain_s=0.1)
    finally:
        token_server.stop()
        narrow.stop()


def _jwt(issuer: Any, sub: str, nats_claims: dict[str, Any]) -> str:
    """A NATS JWT (ed25519-nkey), as nsc writes them: what a creds file's user carries."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = {"iat": int(time.time()), "iss": issuer.public_key.decode(), "sub": sub, "name": sub[:8],
              "nats": {**nats_claims, "version": 2}}  # fmt: skip
    claims["jti"] = (
        base64.b32encode(hashlib.sha256(json.dumps(claims).encode()).digest()).decode().rstrip("=")
    )
    head = (
        b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
        + "."
        + b64(json.dumps(claims).encode())
    )
    return head + "." + b64(issuer.sign(head.encode()))


def _key(prefix: int) -> tuple[bytes, Any]:
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    return seed, nkeys.from_seed(bytearray(seed))


def operator_mode(root: Path) -> tuple[str, Path, Path]:
    """A server config trusting one operator and its account, a creds file of a user of that account, and
    one of a user signed by an account the server does not know."""
    _, operator = _key(nkeys.PREFIX_BYTE_OPERATOR)
    op = operator.public_key.decode()
    unlimited = {k: -1 for k in ("subs", "data", "payload", "imports", "exports", "conn", "leaf")}
    accounts = {}
    paths = []
    for name in ("known", "unknown"):
        _, account = _key(nkeys.PREFIX_BYTE_ACCOUNT)
        accounts[account.public_key.decode()] = _jwt(operator, account.public_key.decode(),
                                                     {"type": "account", "limits": unlimited})  # fmt: skip
        seed, user = _key(nkeys.PREFIX_BYTE_USER)
        user_jwt = _jwt(
            account,
            user.public_key.decode(),
            {"type": "user", "pub": {"allow": ["tickrelay.>"]}, "subs": -1, "data": -1, "payload": -1},
        )
        paths.append(root / f"{name}.creds")
        paths[-1].write_text(
            f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{seed.decode()}\n------END USER NKEY SEED------\n"
        )
    _, system = _key(nkeys.PREFIX_BYTE_ACCOUNT)  # (JetStream, on in every test server, needs one)
    sys_pub = system.public_key.decode()
    (known, known_jwt), _ = accounts.items()
    return (
        f"operator: {_jwt(operator, op, {'type': 'operator'})}\nresolver: MEMORY\nsystem_account: {sys_pub}\n"
        f"resolver_preload: {{ {known}: {known_jwt}\n"
        f"  {sys_pub}: {_jwt(operator, sys_pub, {'type': 'account', 'limits': unlimited})} }}\n",
        paths[0],
        paths[1],
    )


async def test_a_credentials_file_in_operator_mode(tmp_path: Path) -> None:
    config, good, bad = operator_mode(tmp_path)
    server = start_server(tmp_path, config, "operator")
    try:
        relay = Relay(tmp_path / "r.sock")
        await relay.start()
        far = Collector(relay.path)
        access = load_access(load_settings(None, "", {}, {"nats.creds": str(good)}))
        out = BridgeOut(relay.path, [server.url], OutSettings(setup_streams=False, access=access))
        sub = await nats.connect(server.url, user_credentials=str(good))  # sees what bridge out publishes
        got: list[bytes] = []

        async def keep(msg: Any) -> None:
            got.append(msg.data)

        await sub.subscribe("tickrelay.>", cb=keep)
        async with running(out):
            await until(lambda: len(relay.subscribers) == 2)
            sent = RelayOutput(relay.path, source=Source.PUBLISH_TOOL, stream_id=9)
            sent.start()
            sent.send(message(0))
            await until(lambda: bool(got) and len(far.messages) == 1)
            assert got == [far.messages[0].raw]
            await sent.close()
        await sub.close()
        refused = BridgeOut(relay.path, [server.url], OutSettings(
            setup_streams=False, access=load_access(load_settings(None, "", {}, {"nats.creds": str(bad)}))
        ))  # fmt: skip
        with pytest.raises(NatsRefused, match="Authorization Violation"):
            await asyncio.wait_for(refused.run(asyncio.Event()), 10)
        await far.close()
        await relay.stop(drain_s=0.1)
    finally:
        server.stop()
