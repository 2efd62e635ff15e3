"""The bridges as real processes (`python -m tickrelay bridge ...`): bridge out, nats-server and bridge in
killed and restarted in turn while a publisher runs; whatever is lost is counted, in order, as gaps."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from pathlib import Path

import pytest

from tests.bridge.conftest import Collector, NatsServer
from tests.relay.conftest import ME, message, until
from tickrelay.protocol.codec import Source
from tickrelay.relay.server import Relay
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.subscribe import Gap


pytestmark = pytest.mark.nats


def bridge(direction: str, relay: Relay, server: NatsServer, log: Path) -> subprocess.Popen[bytes]:
    cmd = [*ME, "bridge", direction, "--socket", str(relay.path), "--nats", server.url]
    with log.open("ab") as err:
        return subprocess.Popen(cmd, stderr=err)


async def test_kill_and_restart_bridges_and_server_loss_is_counted(
    relays: tuple[Relay, Relay], nats_server: NatsServer, tmp_path: Path
) -> None:
    a, b = relays
    truth, far = Collector(a.path), Collector(b.path)
    await until(lambda: len(a.subscribers) == 1 and len(b.subscribers) == 1)
    logs = {"out": tmp_path / "out.log", "in": tmp_path / "in.log"}
    procs = {
        "out": bridge("out", a, nats_server, logs["out"]),
        "in": bridge("in", b, nats_server, logs["in"]),
    }
    await until(lambda: len(a.subscribers) == 2 and b.publishers, 20)  # bridge-in's own output is up
    pub = RelayOutput(a.path, source=Source.PUBLISH_TOOL, stream_id=9)
    pub.start()
    running = True

    async def publish() -> None:
        i = 0
        while running:  # about 5,000 messages a second
            for _ in range(50):
                pub.send(message(i))
                i += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(publish())
    await until(lambda: len(far.messages) > 1000, 20)

    async def restart(name: str) -> None:
        procs[name].kill()
        procs[name].wait(5)
        await asyncio.sleep(0.5)
        relay, count = (a, 2) if name == "out" else (b, 1)
        procs[name] = bridge(name, relay, nats_server, logs[name])
        await until(lambda: len(relay.subscribers) == count if name == "out" else bool(relay.publishers), 20)

    await restart("out")
    await asyncio.sleep(1.0)
    nats_server.stop(kill=True)
    await asyncio.sleep(0.5)
    nats_server.start()
    await asyncio.sleep(1.5)
    await restart("in")
    await asyncio.sleep(1.5)
    running = False
    await task
    await pub.sync()
    last = truth.messages[-1].raw
    await until(lambda: far.has(last), 20)
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    sent = [m.raw for m in truth.messages]
    got = [m.raw for m in far.messages]
    gaps = [g for g in far.items if isinstance(g, Gap)]
    assert got[0] == sent[0]
    assert got[-1] == sent[-1]
    kept = set(got)
    assert got == [m for m in sent if m in kept]  # in order, byte for byte, no duplicates
    assert gaps  # killing bridge out loses what its relay delivered meanwhile ...
    assert sum(g.missing for g in gaps) == len(sent) - len(got)  # ... and every lost message is counted
    assert "reconnects" in logs["in"].read_text()  # the counters, printed on exit
    assert "messages" in logs["out"].read_text()
    await pub.close()
    await truth.close()
    await far.close()
    with contextlib.suppress(ProcessLookupError):
        for proc in procs.values():
            proc.kill()
