"""The replay exchange with real aiohttp clients on loopback, and as a real process."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from tickrelay.replay import recordings
from tickrelay.replay.exchange import Faults, ReplayExchange


ME = [sys.executable, "-m", "tickrelay"]
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"


@pytest.fixture
async def exchange() -> AsyncIterator[ReplayExchange]:
    ex = ReplayExchange(speed=0)
    await ex.start()
    yield ex
    await ex.stop()


async def frames_of(ws: aiohttp.ClientWebSocketResponse) -> list[str]:
    return [m.data async for m in ws if m.type == aiohttp.WSMsgType.TEXT]


def fixture_lines(stem: str) -> list[str]:
    return (FIXTURES / f"{stem}.jsonl").read_text().splitlines()


def test_embedded_recordings_are_the_fixtures_byte_for_byte() -> None:
    for stem, times in [recordings.COINBASE, recordings.BINANCE, *recordings.KRAKEN.values()]:
        rec = recordings.load(stem, times)
        assert list(rec.frames) == (FIXTURES / f"{stem}.jsonl").read_bytes().splitlines()
        if times is not None:  # receive times converted exactly from the sidecar text
            text = (FIXTURES / f"{stem}{times}").read_text().split()
            scale = 1 if times.endswith("_ns.txt") else 10**9
            assert list(rec.times_ns) == [int(Decimal(t) * scale) for t in text]
    snapshot = FIXTURES / (recordings.BINANCE[0] + ".rest-depth-snapshot.json")
    assert recordings.binance_snapshot("btcusdt") == snapshot.read_bytes()
    assert recordings.binance_snapshot("ETHUSDT") is None


async def test_coinbase_subscribe_ack_and_the_products_frames(exchange: ReplayExchange) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(exchange.url("coinbase")) as ws:
        await ws.send_str(
            json.dumps(
                {
                    "type": "subscribe",
                    "product_ids": ["SKL-USD", "YFI-BTC"],
                    "channels": ["level2", "ticker", "matches"],
                }
            )
        )
        got = await frames_of(ws)
        assert ws.close_code == 1000  # end of the recording: the client reconnects to loop
    ack = json.loads(got[0])
    assert ack == {
        "type": "subscriptions",
        "channels": [
            {"name": n, "product_ids": ["SKL-USD", "YFI-BTC"]} for n in ("level2", "ticker", "matches")
        ],
    }
    expected = [f for f in fixture_lines(recordings.COINBASE[0]) if '"SKL-USD"' in f or '"YFI-BTC"' in f]
    assert got[1:] == [f for f in expected if '"type":"subscriptions"' not in f]


async def test_binance_combined_raw_and_rest(exchange: ReplayExchange) -> None:
    lines = fixture_lines(recordings.BINANCE[0])
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(
            exchange.url("binance/stream") + "?streams=btcusdt@trade/btcusdt@bookTicker"
        ) as ws:
            got = await frames_of(ws)
        assert got == [f for f in lines if '"btcusdt@trade"' in f or '"btcusdt@bookTicker"' in f]
        async with s.ws_connect(exchange.url("binance/ws")) as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 7}))
            got = await frames_of(ws)
        assert json.loads(got[0]) == {"result": None, "id": 7}
        depth = [
            json.dumps(json.loads(f)["data"], separators=(",", ":")) for f in lines if "@depth@100ms" in f
        ]
        assert got[1:] == depth
        r = await s.get(f"http://127.0.0.1:{exchange.port}/binance/api/v3/depth?symbol=BTCUSDT&limit=1000")
        assert (
            await r.read() == (FIXTURES / (recordings.BINANCE[0] + ".rest-depth-snapshot.json")).read_bytes()
        )
        r = await s.get(f"http://127.0.0.1:{exchange.port}/binance/api/v3/depth?symbol=NOPE")
        assert (r.status, await r.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})


async def test_kraken_status_acks_frames_pings_and_errors(exchange: ReplayExchange) -> None:
    stem = recordings.KRAKEN["trade"][0]
    lines = fixture_lines(stem)
    async with aiohttp.ClientSession() as s, s.ws_connect(exchange.url("kraken")) as ws:
        assert json.loads(await ws.receive_str())["event"] == "systemStatus"
        await ws.send_str(json.dumps({"event": "ping", "reqid": 42}))
        assert json.loads(await ws.receive_str()) == {"event": "pong", "reqid": 42}
        await ws.send_str(
            json.dumps({"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "ohlc"}})
        )
        assert json.loads(await ws.receive_str())["errorMessage"] == "Subscription name invalid: ohlc"
        await ws.send_str(
            json.dumps(
                {"event": "subscribe", "pair": ["XMR/USD", "SC/EUR"], "subscription": {"name": "trade"}}
            )
        )
        got = await frames_of(ws)
    acks = [f for f in lines if '"subscriptionStatus"' in f and ('"XMR/USD"' in f or '"SC/EUR"' in f)]
    data = [f for f in lines if f.startswith("[") and ('"XMR/USD"]' in f or '"SC/EUR"]' in f)]
    assert got[:2] == acks
    assert [f for f in got if f.startswith("[")] == data
    assert {f for f in got[2:] if not f.startswith("[")} == {'{"event":"heartbeat"}'}


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


async def test_kraken_v2_book_and_instrument_verify_every_checksum(exchange: ReplayExchange) -> None:
    from tickrelay.venues.kraken import KrakenFeed

    async with aiohttp.ClientSession() as s, s.ws_connect(exchange.url("kraken/v2")) as ws:
        await ws.send_str(json.dumps({"method": "subscribe", "params": {"channel": "ticker"}, "req_id": 1}))
        assert json.loads(await ws.receive_str()) == {
            "method": "subscribe",
            "success": False,
            "error": "Channel not supported: ticker",
            "req_id": 1,
        }
        await ws.send_str(
            json.dumps({"method": "subscribe", "params": {"channel": "instrument"}, "req_id": 2})
        )
        assert json.loads(await ws.receive_str())["success"] is True
        instrument = await ws.receive_str()
        await ws.send_str(
            json.dumps({"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"]}})
        )
        got = await frames_of(ws)
    assert got[1:] == fixture_lines(recordings.KRAKEN_V2_BOOK[0])
    feed = KrakenFeed(version=2)
    for i, frame in enumerate([instrument, *got]):
        feed.on_frame(frame.encode(), i)
    stats = feed.stats.books["BTC/USD"]
    assert (stats.checksums_verified, stats.checksum_failures) == (510, 0)
