"""The collector's REST snapshots: a bug in the feed's ``on_snapshot`` under the last-resort guard, and
the pause when the venue's used-weight header says the next request would pass the budget. Real
replay exchange, relay and collector on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.collector.test_run import pipeline
from tickrelay.collector.run import Collector
from tickrelay.config import load_settings
from tickrelay.protocol.codec import COLLECTOR_SOURCES, Message
from tickrelay.protocol.fixed import parse_fixed8
from tickrelay.protocol.messages import L2Reset, L2Snapshot, Reason, StateInvalidation
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.relay.server import Relay
from tickrelay.replay import recordings
from tickrelay.replay.exchange import Faults, ReplayExchange, collector_env
from tickrelay.transport.output import RelayOutput


BINANCE, SPOT = 100, 51
BTCUSDT = asset_id_for("BTC/USDT")


async def test_a_bug_in_a_snapshot_is_counted_logged_once_and_the_books_invalidated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exception out of the feed's on_snapshot is a bug, as one out of on_frame: counted, its
    traceback logged once, every book of the venue invalidated, a new connection; the snapshots go on
    (before, the exception ended the snapshot task: the books stayed dark for good)."""

    class Buggy:  # the real Binance core (Python or compiled), whose first snapshot meets a bug
        def __init__(self, feed: Any) -> None:
            self.feed, self.raised = feed, False

        def __getattr__(self, name: str) -> Any:
            return getattr(self.feed, name)

        def on_snapshot(self, key: str, body: bytes, ts_recv_ns: int) -> Any:
            if not self.raised:
                self.raised = True
                raise KeyError("a bug")
            return self.feed.on_snapshot(key, body, ts_recv_ns)

    def install(collector: Collector) -> None:
        collector.core = Buggy(collector.core)

    cut = StateInvalidation(BINANCE, SPOT, Reason.DISCONNECT, ())

    def book_back(got: list[Message]) -> bool:  # a snapshot after the bug's invalidation
        events = [e for m in got for e in m.events()]
        return cut in events and any(isinstance(e, L2Snapshot) for e in events[events.index(cut) :])

    got, collector = await pipeline(  # paced: at full speed the recording holds the REST answer back
        tmp_path, "binance", {"BINANCE_SYMBOLS": "BTCUSDT"}, book_back, prepare=install, speed=1
    )
    assert collector.stats.bugs == 1
    assert collector.snapshot()["counters"]["errors"][("binance", "bug")] == 1
    err = capsys.readouterr().err
    assert err.count("tickrelay collect binance: BUG in the venue core") == 1
    assert 'BUG in the venue core on snapshot BTCUSDT b\'{"lastUpdateId":' in err
    assert "Traceback (most recent call last)" in err
    assert "KeyError: 'a bug'" in err
    events = [e for m in got for e in m.events()]
    assert not any(isinstance(e, L2Snapshot) for e in events[: events.index(cut)])  # the bug's snapshot
    assert L2Reset(BTCUSDT, BINANCE, SPOT, Reason.DISCONNECT) in events[events.index(cut) :]
    snapshot = next(e for e in events[events.index(cut) :] if isinstance(e, L2Snapshot))
    recorded = json.loads(recordings.binance_snapshot("BTCUSDT") or b"")  # what the replay's REST serves
    assert (snapshot.asset_id, snapshot.exchange_seq) == (BTCUSDT, recorded["lastUpdateId"])
    assert snapshot.bids[0] == tuple(parse_fixed8(text) for text in recorded["bids"][0])
    assert collector.stats.snapshots_fetched >= 1
    assert collector.stats.reconnects >= 1  # the bug ended the connection: fresh diffs, fresh snapshot


PRE_USED = 5950  # weight others on this IP used this minute: one more depth request (50) reaches 6000


async def test_snapshots_pause_to_the_next_minute_when_the_used_weight_nears_the_budget(
    tmp_path: Path,
) -> None:
    """X-MBX-USED-WEIGHT-1M at 6,000 after a snapshot (others used 5,950 of the minute's 6,000): the
    next snapshot would pass the budget, so none goes out before the next minute, though the book,
    dropped by a reconnect, asks for one."""
    if time.time() % 60 > 40:  # the pre-used weight and the collector's request in one minute
        await asyncio.sleep(60.5 - time.time() % 60)
    exchange = ReplayExchange(speed=1, loop=False, faults=Faults(close_after=100))  # paced, as above
    await exchange.start()
    relay = Relay(tmp_path / "md.sock")
    await relay.start()
    rest = f"http://127.0.0.1:{exchange.port}/binance/api/v3/depth?symbol=BTCUSDT&limit=1000"
    async with aiohttp.ClientSession() as session:
        for _ in range(PRE_USED // 50):
            async with session.get(rest) as r:
                assert r.status == 200
                used = int(r.headers["X-MBX-USED-WEIGHT-1M"])
    assert used == PRE_USED
    env = {
        **collector_env(exchange.port),
        "BINANCE_SYMBOLS": "BTCUSDT",
        "TICKRELAY_COLLECTOR_BACKOFF_CAP_S": "0.2",
    }
    output = RelayOutput(relay.path, source=COLLECTOR_SOURCES["binance"], name="binance")
    output.start()
    collector = Collector("binance", load_settings(None, "-", env, {}).config, output)
    stop = asyncio.Event()
    started = time.time()
    task = asyncio.create_task(collector.run(stop))
    try:
        deadline = time.monotonic() + 20
        while not (collector.stats.rest_paused_s and collector.stats.reconnects >= 2):
            assert time.monotonic() < deadline, collector.stats
            await asyncio.sleep(0.05)
        paused_at = time.time()
        await asyncio.sleep(2.0)
        stats = collector.stats
        assert stats.rest_used_weight == PRE_USED + 50  # the collector's one request, as the venue counts it
        assert 60 - paused_at % 60 <= stats.rest_paused_s <= 60 - started % 60  # to the next minute
        assert stats.snapshots_fetched == 1  # nothing more while paused ...
        assert collector.core.wants_snapshot() == ["BTCUSDT"]  # ... though the book asks for one
        assert collector.core.stats.messages["L2Snapshot"] >= 1
        assert (stats.rest_throttled, stats.snapshot_errors, stats.rest_banned) == (0, 0, False)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await output.close()
        await exchange.stop()
        await relay.stop(drain_s=0)
