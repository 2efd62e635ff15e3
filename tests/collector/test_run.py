"""Collectors end to end, offline: replay exchange -> collector -> real relay -> subscriber, compared
with what the same venue feed makes of the same recording."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tickrelay.collector.run import BIG_FRAME, Collector
from tickrelay.config import load_settings
from tickrelay.protocol.codec import COLLECTOR_SOURCES, Message, encode_events
from tickrelay.protocol.messages import InstrumentMeta, L2Reset, Reason, StateInvalidation, TlvType
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.relay.server import Relay, RelaySettings
from tickrelay.replay import recordings
from tickrelay.replay.exchange import Faults, ReplayExchange, collector_env
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.subscribe import Subscription
from tickrelay.venues import VENUES
from tickrelay.venues.core import drive
from tickrelay.venues.feed import VenueFeed
from tickrelay.venues.kraken import KrakenFeed


async def pipeline(
    tmp_path: Path,
    venue: str,
    env: dict[str, str],
    until: Callable[[list[Message]], bool],
    faults: Faults | None = None,
    stale_s: float = 10.0,
    stream_id: int | None = None,
    prepare: Callable[[Collector], None] | None = None,
    speed: float = 0,
) -> tuple[list[Message], Collector]:
    relay = Relay(tmp_path / "md.sock", RelaySettings(subscriber_buffer=256 << 20))
    await relay.start()
    exchange = ReplayExchange(speed=speed, loop=False, faults=faults or Faults())
    await exchange.start()
    env = {
        **collector_env(exchange.port),
        "TICKRELAY_COLLECTOR_STALE_AFTER_S": str(stale_s),
        "TICKRELAY_COLLECTOR_BACKOFF_CAP_S": "0.2",
        **env,
    }
    settings = load_settings(None, "-", env, {})
    got: list[Message] = []

    async def consume() -> None:
        async for item in Subscription(relay.path, buffer_bytes=256 << 20):
            if isinstance(item, Message):
                got.append(item)
                if until(got):
                    return

    consumer = asyncio.create_task(consume())
    output = RelayOutput(relay.path, source=COLLECTOR_SOURCES[venue], name=venue, stream_id=stream_id)
    collector = Collector(venue, settings.config, output)
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        await asyncio.sleep(0.05)
        output.start()
        if prepare is not None:
            prepare(collector)
        task = asyncio.create_task(collector.run(stop))
        await asyncio.wait_for(consumer, 30)
    finally:  # a timeout must not leak sockets into the tests after it (warnings are errors)
        consumer.cancel()
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 10)
        await output.close()
        await exchange.stop()
        await relay.stop(drain_s=0)
    return got, collector


def by_type(payloads: list[bytes]) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = defaultdict(list)
    for p in payloads:
        out[p[0] if p[0] != 0xFF else p[2]].append(p)
    return dict(out)


def offline(feed: VenueFeed, frames: list[bytes]) -> list[bytes]:
    return [encode_events(1, 0, 0, 0, v)[32:] for i, f in enumerate(frames) for v in feed.on_frame(f, i)]


async def test_coinbase_collector_delivers_exactly_what_the_feed_makes_of_the_recording(
    tmp_path: Path,
) -> None:
    products = "SKL-USD,SKL-BTC,SKL-GBP,BAND-GBP,BAND-BTC,NMR-EUR,YFI-BTC,DASH-BTC,NU-GBP,CRV-EUR"
    rec = recordings.load(*recordings.COINBASE)
    expected = offline(
        VENUES["coinbase"].from_settings(
            load_settings(None, "-", {"COINBASE_PRODUCTS": products}, {}).config
        ),
        list(rec.frames),
    )
    got, collector = await pipeline(
        tmp_path, "coinbase", {"COINBASE_PRODUCTS": products}, lambda g: len(g) >= len(expected)
    )
    assert [m.payload for m in got] == expected  # same TLV bytes, same order: one connection, one stream
    assert {m.header.source for m in got} == {3}
    assert all(
        m.header.timestamp_ns > 1_700_000_000_000_000_000 for m in got
    )  # receipt time, not the recording's
    assert collector.stats.connects == 1
    assert collector.core.stats.frames == len(rec.frames) - 3 + 1  # recorded acks replaced by one live ack


async def test_binance_collector_fetches_the_snapshot_over_rest(tmp_path: Path) -> None:
    rec = recordings.load(*recordings.BINANCE)
    feed = VENUES["binance"].from_settings(load_settings(None, "-", {}, {}).config)

    def given(line: int, wanted: list[str]) -> list[tuple[str, bytes]]:  # as soon as the book asks
        return [(symbol, recordings.binance_snapshot(symbol) or b"") for symbol in wanted]

    frames = zip(rec.frames, range(len(rec.frames)), strict=True)
    expected = [encode_events(1, 0, 0, 0, v)[32:] for values in drive(feed, frames, given) for v in values]
    want = by_type(expected)
    got, collector = await pipeline(
        tmp_path, "binance", {"BINANCE_SYMBOLS": "BTCUSDT"}, lambda g: len(g) >= len(expected)
    )
    have = by_type([m.payload for m in got])
    assert have.keys() == want.keys()
    for tlv_type, payloads in want.items():  # per kind, in order (trades may interleave the snapshot fetch)
        assert have[tlv_type] == payloads
    assert collector.stats.snapshots_fetched == 1


async def test_kraken_collector_and_a_forced_disconnect_mid_book(tmp_path: Path) -> None:
    def saw_resync(g: list[Message]) -> bool:
        return any(isinstance(e, StateInvalidation) and e.reason == Reason.RECOVERED for e in g[-1].events())

    got, collector = await pipeline(
        tmp_path, "kraken", {"KRAKEN_PAIRS": "XBT/USD"}, saw_resync, faults=Faults(close_after=200)
    )
    events = [e for m in got for e in m.events()]
    kinds = [type(e).__name__ for e in events]
    cut = kinds.index("StateInvalidation")
    assert events[cut] == StateInvalidation(101, 51, Reason.DISCONNECT, ())  # no consumer keeps a dead book
    assert kinds[cut + 1] == "L2Reset"
    assert "L2Snapshot" in kinds[cut + 2 :]  # resubscribed: a fresh snapshot after the invalidation
    after = events[kinds.index("L2Snapshot", cut) + 1]
    assert after == StateInvalidation(101, 51, Reason.RECOVERED, (asset_id_for("BTC/USD"),))  # trust it again
    assert collector.stats.reconnects >= 1
    stats = collector.core.stats.books["XBT/USD"]
    assert stats.checksum_failures == 0
    assert stats.checksums_verified > 0


async def test_a_corrupt_frame_is_counted_and_its_sample_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, collector = await pipeline(
        tmp_path, "kraken", {"KRAKEN_PAIRS": "XBT/USD"}, lambda g: len(g) >= 20, faults=Faults(corrupt=3)
    )
    assert collector.core.stats.rejected == {
        "invalid_json": 3
    }  # the 3rd frame of each of its 3 subscriptions
    assert (
        "tickrelay collect kraken: rejected frame (invalid_json): \x00corrupted frame\x00"
        in capsys.readouterr().err
    )


async def test_a_stalled_feed_is_detected_and_reconnected(tmp_path: Path) -> None:
    _, collector = await pipeline(
        tmp_path,
        "kraken",
        {"KRAKEN_PAIRS": "XBT/USD"},
        lambda g: sum(1 for m in g for e in m.events() if isinstance(e, StateInvalidation)) >= 1,
        faults=Faults(stall_after=50, stall_s=5.0),
        stale_s=0.5,
    )
    assert collector.stats.stale_events >= 1
    assert "no frame for 0.5 s" in collector.stats.last_error


async def test_frame_policy_writes_what_is_buffered_before_parsing_a_big_frame(tmp_path: Path) -> None:
    """``collector.flush = frame``: after a write, the next frames wait out the gap in the buffer, but
    never behind a frame long enough to take that long to parse. The gap is longer than any uptime, so
    the first write cannot depend on how long the machine has been up ("never written" is no time)."""
    async with binance_collector(tmp_path, {}) as (collector, output):
        collector.flush_gap_ns = 10**18  # 31 years: after the first write, no frame is written at its end
        frames = recordings.load(*recordings.BINANCE).frames
        quotes = [f for f in frames if b"@bookTicker" in f and len(f) < BIG_FRAME][:3]
        big = next(f for f in frames if b"@depth" in f and len(f) >= BIG_FRAME)
        transport: Any = None  # Binance frames never answer the exchange
        collector.on_frame(quotes[0], 1, transport)
        assert output.stats.batches == 1  # the first frame (its InstrumentMeta and Quote): written at once
        first = output.stats.sent
        collector.on_frame(quotes[1], 2, transport)
        collector.on_frame(quotes[2], 3, transport)
        assert (output.stats.batches, output.stats.sent) == (1, first + 2)  # small frames wait in the buffer
        collector.on_frame(big, 4, transport)
        assert output.stats.batches == 2  # the two waiting quotes went out before the big frame was parsed


@contextlib.asynccontextmanager
async def binance_collector(
    tmp_path: Path, flags: dict[str, Any]
) -> AsyncIterator[tuple[Collector, RelayOutput]]:
    """A Binance collector (configuration ``flags``) whose output is connected to a real relay; the
    frames are the test's to hand it."""
    relay = Relay(tmp_path / "md.sock", RelaySettings())
    await relay.start()
    output = RelayOutput(relay.path, source=COLLECTOR_SOURCES["binance"], name="binance")
    output.start()
    try:
        await output.wait_connected(5)
        yield Collector("binance", load_settings(None, "-", {}, flags).config, output), output
    finally:  # a failure here must not leak sockets into later tests (warnings are errors)
        await output.close()
        await relay.stop(drain_s=0)


async def test_a_bug_in_the_venue_core_is_counted_logged_once_and_the_books_invalidated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The collector's one last-resort guard: an exception out of the core is a bug, not a bad frame."""

    class Buggy:  # the real Kraken feed, with a bug on its 60th frame
        def __init__(self, feed: VenueFeed) -> None:
            self.feed = feed

        def __getattr__(self, name: str) -> Any:
            return getattr(self.feed, name)

        def on_frame(self, raw: bytes, ts_recv_ns: int) -> Any:
            if self.feed.stats.frames == 59:
                self.feed.stats.frames += 1
                raise KeyError("a bug")
            return self.feed.on_frame(raw, ts_recv_ns)

    def install(collector: Collector) -> None:
        collector.core.feed = Buggy(collector.core.feed)  # type: ignore[assignment]

    def recovered(g: list[Message]) -> bool:
        return any(isinstance(e, StateInvalidation) and e.reason == Reason.RECOVERED for e in g[-1].events())

    got, collector = await pipeline(
        tmp_path,
        "kraken",
        {"KRAKEN_PAIRS": "XBT/USD", "TICKRELAY_COLLECTOR_CORE": "python"},  # the bug is in the Python feed
        recovered,
        prepare=install,
    )
    assert collector.stats.bugs == 1
    assert collector.snapshot()["counters"]["errors"][("kraken", "bug")] == 1
    err = capsys.readouterr().err
    assert err.count("tickrelay collect kraken: BUG in the venue core") == 1
    assert "Traceback (most recent call last)" in err
    assert "KeyError: 'a bug'" in err
    events = [e for m in got for e in m.events()]
    cut = events.index(StateInvalidation(101, 51, Reason.DISCONNECT, ()))  # every book of the venue
    assert L2Reset(asset_id_for("BTC/USD"), 101, 51, Reason.DISCONNECT) in events[cut:]
    assert events[-1] == StateInvalidation(101, 51, Reason.RECOVERED, (asset_id_for("BTC/USD"),))
    assert collector.stats.reconnects >= 1  # fresh snapshots come from a new connection


async def test_kraken_v2_collector_subscribes_and_publishes_the_v2_book(tmp_path: Path) -> None:
    """kraken.api = v2 (the default): the collector connects to <ws_url>/v2 and sends the feed's v2
    frames; the replay exchange's /kraken/v2 serves its embedded v2 recording (BTC/USD's book)."""
    rec = recordings.load(*recordings.KRAKEN_V2_BOOK)
    feed = KrakenFeed(["BTC/USD"], version=2)
    want = by_type(offline(feed, list(rec.frames)))
    books = (int(TlvType.L2_SNAPSHOT), int(TlvType.L2_DELTA))
    total = sum(len(want[t]) for t in books)
    got, collector = await pipeline(
        tmp_path,
        "kraken",
        {"TICKRELAY_KRAKEN_API": "v2", "KRAKEN_PAIRS": "BTC/USD"},
        lambda g: sum(len(by_type([m.payload]).keys() & set(books)) for m in g) >= total,
    )
    have = by_type([m.payload for m in got])
    for tlv_type in books:  # the recorded book, byte for byte
        assert have[tlv_type] == want[tlv_type]
    assert collector.url.endswith("/kraken/v2")
    meta = [e for m in got for e in m.events() if isinstance(e, InstrumentMeta)]
    assert [(e.venue_symbol, e.symbol, e.price_decimals, e.size_decimals) for e in meta] == [
        ("BTC/USD", "BTC/USD", 1, 8)  # the instrument channel's precisions
    ]
    stats = collector.core.stats.books["BTC/USD"]
    assert stats.checksums_verified > 0
    assert stats.checksum_failures == 0
    assert collector.core.stats.rejected == {}


@pytest.mark.parametrize("core", ["python", "native"])
async def test_each_message_of_a_measured_frame_is_recorded_by_its_kind_when_the_write_returns(
    tmp_path: Path, core: str
) -> None:
    """The processing histograms: with ``metrics.latency_sample = 1`` every frame is measured, each of
    its messages in its kind's histogram, from the frame's arrival to the write that held it."""
    flags = {"metrics.latency_sample": 1, "collector.core": core}
    async with binance_collector(tmp_path, flags) as (collector, output):
        frames = recordings.load(*recordings.BINANCE).frames
        quote = next(f for f in frames if b"@bookTicker" in f and len(f) < BIG_FRAME)
        transport: Any = None  # Binance frames never answer the exchange
        arrived = time.perf_counter_ns()
        collector.on_frame(quote, 1, transport, arrived)  # its InstrumentMeta and Quote, written at once
        written = output.last_write_ns
        assert output.stats.batches == 1
        assert written is not None
        got = {kind: (h.count, h.percentiles_us()["p50"]) for kind, h in collector.latency.items()}
        assert set(got) == {"InstrumentMeta", "Quote"}
        for count, p50_us in got.values():
            assert count == 1
            assert (
                abs(p50_us * 1000 - (written - arrived)) <= (written - arrived) / 100 + 1000
            )  # HDR precision
