"""The relay as a real process: kill -9 and restart mid-stream; the CLI round trip; clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.relay.conftest import FIXTURES, ME, message, normalize, start_relay, until
from tickrelay.errors import RelayError
from tickrelay.protocol.codec import Decoder, Message
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.subscribe import Gap, Subscription


async def test_kill_the_relay_mid_stream_publishers_reconnect_and_subscribers_see_the_exact_gap(
    tmp_path: Path,
) -> None:
    path = tmp_path / "md.sock"
    relay = start_relay(path)
    out = RelayOutput(path, source=3, stream_id=21, backoff_cap_s=0.2)
    out.start()
    sub = Subscription(path, backoff_cap_s=0.2, buffer_bytes=64 << 20)
    items: list[Message | Gap] = []
    total = 30_000

    async def consume() -> None:
        async for item in sub:
            items.append(item)
            if isinstance(item, Message) and item.header.sequence & 0xFFFFFFFFFFFF == total:
                return

    task = asyncio.create_task(consume())
    await out.wait_connected(5)
    await until(lambda: sub.connected.is_set())
    for i in range(total // 2):
        out.send(message(i))
        if i % 1000 == 0:
            await asyncio.sleep(0.001)
    await out.sync()
    relay.send_signal(signal.SIGKILL)  # the socket file stays behind, as after a crash
    relay.wait()
    for i in range(total // 2, total):  # the relay is down: send() must not block or fail
        out.send(message(i))
        if i % 1000 == 0:
            await asyncio.sleep(0.001)
    relay = start_relay(path)  # removes the stale socket and serves again
    await asyncio.wait_for(out.sync(), 10)
    await asyncio.wait_for(task, 10)
    got = [i.header.sequence & 0xFFFFFFFFFFFF for i in items if isinstance(i, Message)]
    gaps = [i for i in items if isinstance(i, Gap)]
    assert got == sorted(set(got))  # in order, no duplicates
    assert len(got) + sum(g.missing for g in gaps) == total  # every message delivered or counted lost
    assert sub.stats.reconnects == 1
    assert out.stats.reconnects == 1
    assert out.stats.dropped == 0
    await out.close()
    relay.send_signal(signal.SIGTERM)
    assert relay.wait(5) == 0
    assert not path.exists()


def test_publish_then_tail_the_cli_round_trip(tmp_path: Path) -> None:
    capture = FIXTURES / "binance/spot/rust-orderbook-feed_2026-07-04_raw-depth100ms_BTCUSDT"
    stream = tmp_path / "in.v2"
    expected = [
        m.payload
        for m in normalize(
            "binance", capture.with_suffix(".jsonl"), stream,
            "--snapshot", f"BTCUSDT={capture}.rest-depth-snapshot.json",
        )
    ]  # fmt: skip
    path = tmp_path / "md.sock"
    relay = start_relay(path)
    env = {**os.environ, "RELAY_SOCKET_PATH": str(path)}  # the variable, not a flag
    tail = subprocess.Popen(
        [sys.executable, "-m", "tickrelay", "tail", "--raw", "--count", str(len(expected))],
        stdout=subprocess.PIPE,
        env=env,
    )
    status = ""
    for _ in range(100):
        status = subprocess.run(
            [sys.executable, "-m", "tickrelay", "relay-status", "--socket", str(path), "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if json.loads(status)["subscribers"]:
            break
    assert json.loads(status)["subscribers"][0]["name"] == "tail"
    done = subprocess.run(
        [sys.executable, "-m", "tickrelay", "publish", str(stream)], env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(expected)} messages taken by the relay".encode() in done.stderr
    raw, _ = tail.communicate(timeout=20)
    assert tail.returncode == 0
    received = Decoder()
    received.feed(raw)
    messages = list(received)
    assert [m.payload for m in messages] == expected  # payloads unchanged, byte for byte
    assert [m.header.sequence & 0xFFFFFFFFFFFF for m in messages] == list(range(1, len(expected) + 1))
    assert {m.header.source for m in messages} == {64}
    human = subprocess.run(
        [sys.executable, "-m", "tickrelay", "relay-status", "--socket", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "market-data relay on" in human
    relay.send_signal(signal.SIGINT)
    assert relay.wait(5) == 0


def test_a_second_relay_on_a_live_socket_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "md.sock"
    relay = start_relay(path)
    second = subprocess.run(
        [sys.executable, "-m", "tickrelay", "relay", "--socket", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert second.returncode == 1
    assert second.stderr == f"tickrelay relay: a relay is already listening on {path}\n"
    relay.send_signal(signal.SIGTERM)
    assert relay.wait(5) == 0


def test_publish_without_a_relay_is_a_clear_error(tmp_path: Path) -> None:
    stream = tmp_path / "one.v2"
    stream.write_bytes(message(0))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickrelay",
            "publish",
            "--socket",
            str(tmp_path / "none.sock"),
            "--connect-timeout",
            "0.5",
            str(stream),
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("tickrelay publish: no relay reachable on")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("bad", [b"not a stream", message(0)[:-3]])
def test_publish_rejects_a_bad_file(tmp_path: Path, bad: bytes) -> None:
    stream = tmp_path / "bad.v2"
    stream.write_bytes(bad)
    done = subprocess.run(
        [sys.executable, "-m", "tickrelay", "publish", "--socket", str(tmp_path / "x.sock"), str(stream)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr


async def test_publish_across_a_relay_restart_says_how_many_were_lost_and_why(tmp_path: Path) -> None:
    stream = tmp_path / "in.v2"
    total = 4000
    stream.write_bytes(b"".join(message(i) for i in range(total)))
    path = tmp_path / "md.sock"
    relays = [start_relay(path)]
    sub = Subscription(path, reconnect=False)
    seen = 0

    async def watch() -> None:
        nonlocal seen
        with contextlib.suppress(RelayError):
            async for item in sub:
                seen += isinstance(item, Message)

    try:
        watcher = asyncio.create_task(watch())
        publish = await asyncio.create_subprocess_exec(
            *ME, "publish", "--socket", str(path), "--rate", "2000", str(stream), stderr=subprocess.PIPE
        )
        await until(lambda: seen >= 1000, 20)  # under way
        relays[0].send_signal(signal.SIGKILL)
        relays[0].wait()
        await watcher
        relays.append(start_relay(path))
        _, err = await asyncio.wait_for(publish.communicate(), 30)
        assert publish.returncode == 1
        said = re.fullmatch(
            r"tickrelay publish: (\d+) messages taken by the relay \(stream id \d+\); (\d+) of the (\d+) "
            r"sent were lost: (\d+) written to a relay that went away before confirming them "
            r"\(1 reconnect\)\n",
            err.decode(),
        )
        assert said, err
        taken, lost, sent, written_away = map(int, said.groups())
        assert sent == total
        assert taken + lost == total
        assert taken > 0
        assert seen <= lost == written_away  # the old relay routed `seen` of them before it died
        relays[1].send_signal(signal.SIGTERM)
        assert relays[1].wait(5) == 0
    finally:
        for relay in relays:
            if relay.poll() is None:
                relay.kill()
                relay.wait()


def test_the_relay_says_on_exit_what_it_refused_by_reason(tmp_path: Path) -> None:
    path = tmp_path / "md.sock"
    relay = start_relay(path, "--hello-timeout", "0.2")
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(str(path))
    silent.settimeout(10)
    while silent.recv(4096):  # the RelayError, then the end
        pass
    silent.close()
    relay.send_signal(signal.SIGTERM)
    assert relay.wait(5) == 0
    last = path.with_suffix(".log").read_text().splitlines()[-1]
    assert last == "tickrelay relay: stopped; rejected 1 connection(s), handshake_timeout 1"


async def test_a_handshake_given_up_is_closed_so_the_reconnect_is_not_a_duplicate_stream(
    tmp_path: Path,
) -> None:
    # The relay does not answer (stopped, as if its loop were blocked) while the publisher's handshake
    # times out. The publisher used to leave that connection open: once the relay ran again it held it
    # as the stream's live publisher and refused every reconnect as duplicate_stream, and the message
    # waiting in the output buffer never reached it.
    path = tmp_path / "sig.sock"
    relay = start_relay(path)
    sub = Subscription(path, backoff_cap_s=0.2)
    items: list[Message | Gap] = []

    async def consume() -> None:
        async for item in sub:
            items.append(item)
            return

    task = asyncio.create_task(consume())
    await until(lambda: sub.connected.is_set())
    out = RelayOutput(path, source=3, stream_id=77, backoff_cap_s=0.1, handshake_timeout_s=0.2)
    try:
        relay.send_signal(signal.SIGSTOP)
        out.start()
        out.send(message(0))
        await until(lambda: "TimeoutError" in out.stats.last_error)
        await asyncio.sleep(0.5)  # a few more handshakes given up
        relay.send_signal(signal.SIGCONT)
        assert await asyncio.wait_for(out.sync(), 10) == 1
        await asyncio.wait_for(task, 5)
        assert isinstance(items[0], Message)
        decoder = Decoder()
        decoder.feed(message(0))
        sent = next(iter(decoder))
        assert (items[0].header.source, items[0].header.sequence) == (3, 77 << 48 | 1)
        assert items[0].payload == sent.payload
        status = await asyncio.create_subprocess_exec(
            *ME, "relay-status", "--socket", str(path), "--json", stdout=asyncio.subprocess.PIPE
        )
        publishers = json.loads((await status.communicate())[0])["publishers"]
        assert [p["stream_id"] for p in publishers] == [77]
        assert out.stats.dropped == 0
    finally:
        relay.send_signal(signal.SIGCONT)
        await out.close()
        task.cancel()
        relay.send_signal(signal.SIGTERM)
        relay.wait(5)
