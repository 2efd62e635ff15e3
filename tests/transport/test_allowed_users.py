"""`relay.allowed_users` holds for every client, with a real relay run as another user.

The relay runs as nobody (tests/transport/as_user.py) in a directory of nobody's, as a service
account's relay would. Every client refuses it with one line until nobody is named in
`relay.allowed_users`, by the configuration file (./tickrelay.toml, or --config) or by the environment;
then tail receives what publish and a collector (its RelayOutput) sent through that relay.
These need root (to make nobody's directory and become nobody) and are skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bridge.conftest import NatsServer, nats_server  # noqa: F401 - the real nats-server fixture
from tests.collector.test_etiquette import replay_exchange
from tests.relay.conftest import ME
from tests.transport.conftest import NOBODY, ROOT
from tickrelay.commands.decode import event_json
from tickrelay.protocol.codec import Source, encode_trade_message
from tickrelay.protocol.messages import Trade
from tickrelay.protocol.symbols import VenueId, asset_id_for


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="running a relay as nobody needs root")

TRADES = [
    Trade(
        asset_id_for("BTC/USD"),
        64_000_12345678 + i,
        5_00000000 + i,
        1_700_000_000_000_000_000 + i,
        VenueId.COINBASE,
        51,
        i % 2,
    )
    for i in range(3)
]


def env(**extra: str) -> dict[str, str]:
    """Our environment without anything that names a socket or trusts a user, plus ``extra``."""
    drop = ("RELAY_SOCKET_PATH", "XDG_RUNTIME_DIR", "TICKRELAY_RELAY_ALLOWED_USERS")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


@pytest.fixture
def nobody_relay() -> Iterator[Path]:
    """A real market-data relay run as nobody, on ``<nobody's 0700 directory>/md.sock``.

    The directory is made straight in /tmp: pytest's temporary directories are 0700 and root's, so
    nobody could not reach a socket there."""
    home = Path(tempfile.mkdtemp(prefix="tickrelay-nobody-", dir="/tmp"))
    os.chown(home, NOBODY, -1)
    path = home / "md.sock"
    log = Path(tempfile.mkstemp(prefix="tickrelay-nobody-relay-", suffix=".log")[1])
    pythonpath = os.pathsep.join([str(ROOT), _pythonpath()])  # tests.transport.as_user, and tickrelay
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*ME[:1], "-m", "tests.transport.as_user", "nobody", "relay", "--socket", str(path)],
            cwd=home,
            stderr=err,
            env=env(PYTHONPATH=pythonpath),
        )
    try:
        deadline = time.monotonic() + 20
        while "listening on" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the relay did not start"
            time.sleep(0.02)
        yield path
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        log.unlink()
        shutil.rmtree(home)


def refused(args: list[str], cwd: Path) -> str:
    """Run a client that must refuse at once; its one line on stderr."""
    proc = tickrelay(args, cwd, env(PYTHONPATH=_pythonpath()))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr  # one line, no traceback
    return proc.stderr


def refusal(relay: Path) -> str:
    """The one line (after the command's name) that refuses ``relay``, nobody's."""
    return (
        f"refusing {relay}: its directory {relay.parent} belongs to uid {NOBODY} (nobody), "
        "not to you (uid 0 (root)); use a directory of your own (or name that user in relay.allowed_users)\n"
    )


def tickrelay(args: list[str], cwd: Path, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A command run to its end in ``cwd`` (whose ./tickrelay.toml it reads, if any)."""
    return subprocess.run([*ME, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=30)


def _pythonpath() -> str:
    return os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))


def test_every_client_refuses_a_relay_of_another_user_in_one_line(nobody_relay: Path, tmp_path: Path) -> None:
    stream = tmp_path / "trades.v2"
    stream.write_bytes(
        b"".join(encode_trade_message(Source.PUBLISH_TOOL, 0, 1_700_000_000_000_000_000, t) for t in TRADES)
    )
    why = refusal(nobody_relay)
    socket = ["--socket", str(nobody_relay)]
    assert refused(["tail", *socket, "--count", "1"], tmp_path) == f"tickrelay tail: {why}"
    assert refused(["publish", *socket, str(stream)], tmp_path) == f"tickrelay publish: {why}"
    assert refused(["relay-status", *socket], tmp_path) == f"tickrelay relay-status: {why}"
    assert refused(["collect", "binance", *socket, "--url", "ws://127.0.0.1:9/binance"], tmp_path) == (
        f"tickrelay collect: {why}"
    )
    assert (
        refused(["record", *socket, "--out", str(tmp_path / "rec")], tmp_path) == f"tickrelay record: {why}"
    )


def test_bridge_in_refuses_a_relay_of_another_user_in_one_line(
    nobody_relay: Path,
    nats_server: NatsServer,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """Connected to a real nats-server, ``bridge in`` meets the untrusted relay and exits 1 with the
    one line (it used to retry the relay for ever)."""
    why = refusal(nobody_relay)
    args = ["bridge", "in", "--socket", str(nobody_relay), "--nats", nats_server.url]
    assert refused(args, tmp_path) == f"tickrelay bridge: {why}"


def test_a_relay_of_an_allowed_user_serves_tail_publish_and_a_collector(
    nobody_relay: Path, tmp_path: Path
) -> None:
    """nobody is trusted by ./tickrelay.toml (tail, publish), --config (collect) or the environment
    (the second tail); the tails receive exactly what was published, and what the collector sent."""
    trusting = tmp_path / "trusting"
    trusting.mkdir()
    (trusting / "tickrelay.toml").write_text('[relay]\nallowed_users = ["nobody"]\n')
    plain = tmp_path / "plain"  # no configuration file: trust comes from the environment alone
    plain.mkdir()
    socket = ["--socket", str(nobody_relay)]
    base = env(PYTHONPATH=_pythonpath())
    coinbase = subprocess.Popen(
        [*ME, "tail", *socket, "--venue", "coinbase", "--count", "3", "--json"],
        cwd=plain,
        env={**base, "TICKRELAY_RELAY_ALLOWED_USERS": "nobody"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    binance = subprocess.Popen(
        [*ME, "tail", *socket, "--venue", "binance", "--count", "20", "--json"],
        cwd=trusting,
        env=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _subscribed(nobody_relay, 2, trusting, base)

    stream = tmp_path / "trades.v2"
    stream.write_bytes(
        b"".join(encode_trade_message(Source.PUBLISH_TOOL, 0, 1_700_000_000_000_000_000, t) for t in TRADES)
    )
    publish = tickrelay(["publish", *socket, str(stream)], trusting, base)
    assert publish.returncode == 0, publish.stderr
    assert "3 messages taken by the relay" in publish.stderr
    out, err = coinbase.communicate(timeout=30)
    assert coinbase.returncode == 0, err
    assert [json.loads(line)["tlvs"] for line in out.splitlines()] == [[event_json(t)] for t in TRADES]

    config = tmp_path / "trusting.toml"  # --config, read from a directory without ./tickrelay.toml
    config.write_text('[relay]\nallowed_users = ["nobody"]\n')
    with replay_exchange() as (port, _):
        collect = subprocess.Popen(
            [
                *ME,
                "collect",
                "binance",
                "--config",
                str(config),
                *socket,
                "--url",
                f"ws://127.0.0.1:{port}/binance",
                "--rest-url",
                f"http://127.0.0.1:{port}/binance",
            ],
            cwd=plain,
            env=base,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while binance.poll() is None:  # a collector that gave up fails here, not after the minute
                assert collect.poll() is None, collect.communicate()[1]
                assert time.monotonic() < deadline, "the tail never had its 20 Binance messages"
                time.sleep(0.1)
            out, err = binance.communicate()
        finally:
            collect.send_signal(signal.SIGTERM)
            _, collect_err = collect.communicate(timeout=15)
    assert binance.returncode == 0, err
    assert collect.returncode == 0, collect_err
    got = [json.loads(line) for line in out.splitlines()]
    assert len(got) == 20
    assert {m["header"]["source"] for m in got} == {Source.BINANCE_COLLECTOR}
    assert all(tlv["venue_id"] == VenueId.BINANCE for m in got for tlv in m["tlvs"] if "venue_id" in tlv)


def _subscribed(path: Path, count: int, cwd: Path, environ: dict[str, str]) -> None:
    """Wait until the relay has ``count`` subscribers (asked with relay-status, itself a trusting client)."""
    deadline = time.monotonic() + 20
    while True:
        status = tickrelay(["relay-status", "--socket", str(path), "--json"], cwd, environ)
        assert status.returncode == 0, status.stderr
        if len(json.loads(status.stdout)["subscribers"]) >= count:
            return
        assert time.monotonic() < deadline, status.stdout
        time.sleep(0.1)
