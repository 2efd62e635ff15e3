"""The replay exchange with real aiohttp clients on loopback, and as a real process."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from tests.replay.conftest import FIXTURES, fixture_lines, frames_of, quiet_for
from tickrelay.replay import recordings
from tickrelay.replay.exchange import PINGS, Faults, ReplayExchange, parse_pings


ME = [sys.executable, "-m", "tickrelay"]


def test_embedded_recordings_are_the_fixtures_byte_for_byte() -> None:
    specs = [
        recordings.COINBASE,
        recordings.BINANCE,
        *recordings.KRAKEN.values(),
        *recordings.KRAKEN_BOOKS.values(),
    ]
    for stem, times in specs:
        rec = recordings.load(stem, times)
        assert list(rec.frames) == (FIXTURES / f"{stem}.jsonl").read_bytes().splitlines()
        if times is not None:  # receive times converted exactly from the sidecar text
            text = (FIXTURES / f"{stem}{times}").read_text().split()
            scale = 1 if times.endswith("_ns.txt") else 10**9
            assert list(rec.times_ns) == [int(Decimal(t) * scale) for t in text]
    snapshot = FIXTURES / (recordings.BINANCE[0] + ".rest-depth-snapshot.json")
    assert recordings.binance_snapshot("btcusdt") == snapshot.read_bytes()
    assert recordings.binance_snapshot("ETHUSDT") is None


async def test_faults_and_pacing() -> None:
    ex = ReplayExchange(speed=0, faults=Faults.parse(["close-after=5", "corrupt=3"]))
    await ex.start()
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(ex.url("binance/stream") + "?streams=btcusdt@trade") as ws,
    ):
        got = await frames_of(ws)
        assert ws.close_code == 1011
    assert len(got) == 5
    assert got[2] == "\x00corrupted frame\x00"
    await ex.stop()
    paced = ReplayExchange(speed=100.0, faults=Faults(close_after=40, stall_after=20, stall_s=0.3))
    await paced.start()
    lines = fixture_lines(recordings.BINANCE[0])
    trades = [f for f in lines if '"btcusdt@trade"' in f][:40]
    times = [
        int(t)
        for t, f in zip(
            (FIXTURES / (recordings.BINANCE[0] + ".recv_ts_ns.txt")).read_text().split(), lines, strict=True
        )
        if '"btcusdt@trade"' in f
    ][:40]
    start = time.monotonic()
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(paced.url("binance/stream") + "?streams=btcusdt@trade") as ws,
    ):
        assert await frames_of(ws) == trades
    elapsed = time.monotonic() - start
    assert elapsed >= (times[-1] - times[0]) / 1e9 / 100 + 0.3  # recorded pace / 100, plus the stall
    await paced.stop()
    with pytest.raises(ValueError, match="unknown fault"):
        Faults.parse(["explode=1"])


def test_steady_pacing_sends_the_recorded_frames_evenly_spaced() -> None:
    """The command with ``--rate``, in its own process (in this one the client's reads would wait on
    the server's sleeps)."""
    proc = subprocess.Popen(
        [*ME, "replay-exchange", "--port", "0", "--rate", "500", "--fault", "close-after=100"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    port = int(proc.stderr.readline().split("ws://127.0.0.1:")[1].split("/")[0])
    arrivals: list[float] = []

    async def receive() -> list[str]:
        async with (
            aiohttp.ClientSession() as s,
            s.ws_connect(f"ws://127.0.0.1:{port}/binance/stream?streams=btcusdt@trade") as ws,
        ):
            got = []
            async for m in ws:
                arrivals.append(time.monotonic())
                got.append(m.data)
            return got

    try:
        got = asyncio.run(receive())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    trades = [f for f in fixture_lines(recordings.BINANCE[0]) if '"btcusdt@trade"' in f][:100]
    assert got == trades  # the recorded frames, in order, whatever their recorded times
    # held to the schedule (frame k at k / 500 s): as fast as possible would take about 10 ms
    assert arrivals[-1] - arrivals[0] >= 0.9 * 99 / 500
    spacing = sorted(b - a for a, b in itertools.pairwise(arrivals))
    assert spacing[len(spacing) // 2] == pytest.approx(1 / 500, abs=0.0005)  # evenly: the median gap is 2 ms
    assert (
        subprocess.run([*ME, "replay-exchange", "--rate", "-1"], capture_output=True, text=True).returncode
        == 2
    )


def test_the_command_serves_and_stops_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickrelay", "replay-exchange", "--port", "0", "--speed", "max"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    banner = proc.stderr.readline()
    assert banner.startswith("tickrelay replay-exchange: ws://127.0.0.1:")
    port = int(banner.split("ws://127.0.0.1:")[1].split("/")[0])

    async def fetch() -> int:
        async with aiohttp.ClientSession() as s:
            r = await s.get(f"http://127.0.0.1:{port}/binance/api/v3/depth?symbol=BTCUSDT")
            return r.status

    assert asyncio.run(fetch()) == 200
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "stopped after 0 connections" in err
    bad = subprocess.run(
        [sys.executable, "-m", "tickrelay", "replay-exchange", "--fault", "boom"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "unknown fault 'boom'" in bad.stderr


async def test_client_pings_and_closes_are_answered_while_frames_stream(paced: ReplayExchange) -> None:
    """RFC 6455: a ping gets its pong and a close its close, on every route, mid-stream."""
    urls = [
        paced.url("binance/stream") + "?streams=btcusdt@bookTicker",
        paced.url("coinbase"),
        paced.url("kraken"),
    ]
    async with aiohttp.ClientSession() as s:
        for url in urls:
            async with s.ws_connect(url, autoping=False) as ws:
                if url.endswith("coinbase"):
                    await ws.send_str(
                        json.dumps({"type": "subscribe", "product_ids": ["SKL-USD"], "channels": ["level2"]})
                    )
                await ws.receive()  # streaming (or its first answer) has begun
                await ws.ping(b"are you there")
                while (m := await asyncio.wait_for(ws.receive(), 5)).type != aiohttp.WSMsgType.PONG:
                    assert m.type == aiohttp.WSMsgType.TEXT
                assert m.data == b"are you there"
                start = time.monotonic()
                await ws.close()
                assert (ws.close_code, time.monotonic() - start < 1.0) == (1000, True), url


async def test_server_pings_and_a_client_that_never_answers_is_dropped() -> None:
    ex = ReplayExchange(speed=1, pings={"binance": (0.2, 0.6), "kraken": (0.0, 0.0), "coinbase": (0.0, 0.0)})
    await ex.start()
    url = ex.url("binance/stream") + "?streams=btcusdt@trade"
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(url, autoping=True) as polite,
        s.ws_connect(url, autoping=False) as mute,
    ):
        reading = asyncio.create_task(quiet_for(polite, 1.5))  # a client answers pings as it reads
        pings, start = 0, time.monotonic()
        while (m := await mute.receive()).type != aiohttp.WSMsgType.CLOSE:
            pings += m.type == aiohttp.WSMsgType.PING
        assert (m.data, m.extra) == (1008, "no pong to the server's pings")
        assert 0.6 <= time.monotonic() - start < 2.0
        assert pings >= 2
        assert len(await reading) > 10  # still open and streaming: it answered every ping
        assert not polite.closed
    assert ex.stats.pong_timeouts == 1
    assert ex.stats.pings_sent >= 4
    await ex.stop()
    assert parse_pings(["coinbase=30"])["coinbase"] == (30.0, 90.0)
    assert parse_pings(["kraken=5:7"])["kraken"] == (5.0, 7.0)
    assert PINGS["binance"] == (20.0, 60.0)
    with pytest.raises(ValueError, match="VENUE=INTERVAL"):
        parse_pings(["bitmex=1"])


def test_a_recording_without_receive_times_is_paced_by_its_exchange_times() -> None:
    """The 2023 Kraken book: about 154 s of level timestamps, not one frame per millisecond."""
    rec = recordings.load(*recordings.KRAKEN_BOOKS[10])
    frames = [json.loads(f) for f in rec.frames]
    stamps = [
        max(
            int(Decimal(level[2]) * 10**9)
            for side in msg[1:-2]
            for key, levels in side.items()
            if key != "c"
            for level in levels
        )
        for msg in frames
        if isinstance(msg, list)
    ]
    data_times = [t for f, t in zip(frames, rec.times_ns, strict=True) if isinstance(f, list)]
    assert data_times == list(itertools.accumulate(stamps, max))  # each frame: its latest level time
    assert list(rec.times_ns) == sorted(rec.times_ns)
    assert 150e9 < rec.times_ns[-1] - rec.times_ns[0] < 160e9
    v2 = recordings.load(*recordings.KRAKEN_V2_BOOK)
    assert 50e9 < v2.times_ns[-1] - v2.times_ns[0] < 51e9  # its RFC 3339 "timestamp"s
    binance = (b'{"stream":"x","data":{"e":"trade","E":1723161600123}}', b"{}")
    assert recordings.exchange_times_ns(binance) == (1723161600123 * 10**6,) * 2
    assert recordings.exchange_times_ns((b"{}", b"{}")) == (0, 1_000_000)


async def test_the_paced_kraken_book_takes_its_market_time() -> None:
    ex = ReplayExchange(speed=100)  # 154 s of market time in about 1.5 s
    await ex.start()
    start = time.monotonic()
    async with aiohttp.ClientSession() as s, s.ws_connect(ex.url("kraken")) as ws:
        await ws.send_str(
            json.dumps({"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book"}})
        )
        got = await frames_of(ws)
    assert 1.5 <= time.monotonic() - start < 6
    assert len([f for f in got if f.startswith("[")]) == 980  # the snapshot and every update
    await ex.stop()


def test_a_client_leaving_mid_stream_is_counted_without_a_traceback() -> None:
    proc = subprocess.Popen(
        [*ME, "replay-exchange", "--port", "0", "--speed", "1"], stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    port = int(proc.stderr.readline().split("ws://127.0.0.1:")[1].split("/")[0])

    async def leave() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(f"ws://127.0.0.1:{port}/binance/stream?streams=btcusdt@bookTicker")
            await ws.receive()
            transport = ws._response.connection.transport  # type: ignore[union-attr]
            transport.abort()  # gone without a close: the server is sending to a dead socket
            await asyncio.sleep(0.5)

    try:
        asyncio.run(leave())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert "Traceback" not in err, err
    assert "Error" not in err, err
    assert "1 client left mid-stream" in err


async def test_faults_http429_and_accept_close() -> None:
    ex = ReplayExchange(speed=0, faults=Faults.parse(["http429=2", "accept-close"]))
    await ex.start()
    depth = f"http://127.0.0.1:{ex.port}/binance/api/v3/depth?symbol=BTCUSDT"
    async with aiohttp.ClientSession() as s:
        for _ in range(2):
            r = await s.get(depth)
            assert (r.status, r.headers["Retry-After"], (await r.json())["code"]) == (429, "1", -1003)
        assert (await s.get(depth)).status == 200  # the first two only
        for route in ("binance/stream?streams=btcusdt@trade", "coinbase"):
            async with s.ws_connect(ex.url(route)) as ws:  # the upgrade succeeds ...
                m = await ws.receive()
                assert (m.type, m.data, m.extra) == (
                    aiohttp.WSMsgType.CLOSE,
                    1013,
                    "fault injected: accept-close",
                )
    assert ex.stats.http429_sent == 2
    ban = ReplayExchange(speed=0, faults=Faults.parse(["http429=1", "http418"]))
    await ban.start()
    depth = f"http://127.0.0.1:{ban.port}/binance/api/v3/depth?symbol=BTCUSDT"
    async with aiohttp.ClientSession() as s:
        statuses = []
        for _ in range(3):
            r = await s.get(depth)
            statuses.append((r.status, r.headers["Retry-After"], (await r.json())["code"]))
        assert "IP banned until" in (await r.json())["msg"]
    assert statuses == [(429, "1", -1003), (418, "120", -1003), (418, "120", -1003)]
    assert (ban.stats.http429_sent, ban.stats.http418_sent) == (1, 2)
    await ban.stop()
    assert ex.stats.frames_sent == 0
    await ex.stop()
    assert Faults.parse(["accept-close"]) == Faults(accept_close=True)
    with pytest.raises(ValueError, match="accept-close"):
        Faults.parse(["accept-close=1"])
