"""Collectors against the replay exchange as a strict peer: it pings them and drops a client that does
not answer, as Binance does, and it answers bad subscriptions with the venue's errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tickrelay.collector.run import Collector
from tickrelay.config import load_settings
from tickrelay.protocol.codec import COLLECTOR_SOURCES
from tickrelay.relay.server import Relay, RelaySettings
from tickrelay.replay import recordings
from tickrelay.replay.exchange import REPLAY_INSTRUMENTS, Faults, ReplayExchange, collector_env
from tickrelay.transport.output import RelayOutput


STRICT = {venue: (0.25, 1.5) for venue in ("binance", "kraken", "coinbase")}  # a ping every 0.25 s


async def run_for(
    tmp_path: Path,
    venue: str,
    env: dict[str, str],
    seconds: float,
    pings: Any = None,
    faults: Faults | None = None,
) -> tuple[Collector, ReplayExchange]:
    """One collector against a strict replay exchange for ``seconds`` (the recordings end early:
    ``loop`` off, so the connections then sit idle but for the server's pings)."""
    relay = Relay(tmp_path / "md.sock", RelaySettings())
    await relay.start()
    exchange = ReplayExchange(speed=0, loop=False, pings=pings, faults=faults or Faults())
    await exchange.start()
    config = load_settings(None, "-", {**collector_env(exchange.port), **env}, {}).config
    output = RelayOutput(relay.path, source=COLLECTOR_SOURCES[venue], name=venue)
    output.start()
    collector = Collector(venue, config, output)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 10)
    await output.close()
    await exchange.stop()
    await relay.stop(drain_s=0)
    return collector, exchange


async def test_every_collector_answers_the_servers_pings(tmp_path: Path) -> None:
    """Ten pings or more each, none left unanswered: one connection for the whole run. (A collector
    without pongs is dropped after 1.5 s and reconnects: connects > 1, pong_timeouts > 0.)"""
    env = {"BINANCE_SYMBOLS": "BTCUSDT", "KRAKEN_PAIRS": "XBT/USD", "COINBASE_PRODUCTS": "SKL-USD"}
    for venue in ("binance", "kraken", "coinbase"):
        collector, exchange = await run_for(tmp_path / venue, venue, env, 4.0, STRICT)
        assert (exchange.stats.pong_timeouts, collector.stats.connects, collector.stats.reconnects) == (
            0,
            1,
            0,
        )
        assert exchange.stats.pings_sent >= 10
        assert collector.core.stats.frames > 0


async def test_a_rejected_subscription_is_counted_and_the_rest_streams(tmp_path: Path) -> None:
    """Kraken answers a pair it does not list with one error per channel; the collector counts them,
    keeps its connection and its other pair's book, and does not resubscribe anything."""
    collector, exchange = await run_for(tmp_path, "kraken", {"KRAKEN_PAIRS": "XBT/USD,FOO/BAR"}, 2.0)
    stats = collector.core.stats
    assert stats.venue_errors == 3  # trade, ticker, book
    assert stats.rejected == {"venue_error": 3}
    assert "Currency pair not supported FOO/BAR" in stats.samples["venue_error"]
    assert (collector.stats.connects, collector.stats.requests_sent, exchange.stats.requests) == (1, 0, 3)
    book = stats.books["XBT/USD"]
    assert (book.checksums_verified, book.checksum_failures) == (979, 0)


async def test_kraken_collects_a_book_for_every_embedded_pair(tmp_path: Path) -> None:
    """What `up` subscribes (its pairs, the default depth 10): every pair's book streams and verifies,
    the ten 2021 pairs from their depth-1000 recording, beside their trades and tickers of that day."""
    pairs = REPLAY_INSTRUMENTS["KRAKEN_PAIRS"].split(",")
    collector, _ = await run_for(tmp_path, "kraken", {"KRAKEN_PAIRS": ",".join(pairs)}, 4.0)
    books = collector.core.stats.books
    assert {p: books[p].checksum_failures for p in pairs} == dict.fromkeys(pairs, 0)
    assert all(books[p].checksums_verified > 0 for p in pairs)
    assert collector.core.stats.rejected == {}
    trades = recordings.load(*recordings.KRAKEN["trade"]).frames
    assert collector.core.stats.messages["Trade"] == sum(
        len(json.loads(f)[1]) for f in trades if f[:1] == b"["
    )


async def test_a_failed_book_is_resubscribed_alone(tmp_path: Path) -> None:
    """One wrong checksum (the exchange's bad-checksum fault) darkens one pair's book: the collector
    unsubscribes and resubscribes that pair only, on the same connection, and its book comes back from
    a fresh snapshot; the other pair's book never stops."""
    faults = Faults(bad_checksum=30)
    collector, exchange = await run_for(
        tmp_path, "kraken", {"KRAKEN_PAIRS": "XMR/USD,SC/EUR"}, 4.0, faults=faults
    )
    books = collector.core.stats.books
    failed = [p for p in ("XMR/USD", "SC/EUR") if books[p].checksum_failures]
    assert len(failed) == 1
    (other,) = {"XMR/USD", "SC/EUR"} - set(failed)
    assert books[failed[0]].checksum_failures == 1
    assert books[other].checksum_failures == 0
    assert collector.core.stats.messages["L2Snapshot"] == 3  # one a pair, and the failed pair's fresh one
    assert (collector.stats.requests_sent, collector.stats.connects) == (2, 1)  # unsubscribe + subscribe
    assert exchange.stats.requests == 3 + 2  # trade, ticker, book; then unsubscribe + subscribe
