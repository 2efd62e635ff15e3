"""FeedCore: a venue feed behind the byte-level contract (finished, stamped messages; RECOVERED)."""

from __future__ import annotations

import json
from pathlib import Path

from tickrelay.protocol.codec import Decoder, Source
from tickrelay.protocol.link import BATCH_START
from tickrelay.protocol.messages import Event, L2Snapshot, Reason, StateInvalidation
from tickrelay.protocol.stamper import Stamper
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.venues.binance import BinanceFeed
from tickrelay.venues.core import TODO_NEW_REJECT, TODO_REQUESTS, FeedCore, drive
from tickrelay.venues.kraken import KrakenFeed


FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
BOOK_10 = FIXTURES / "kraken/v1/python-kraken-sdk_2023-08-30_book-10_XBT-USD.jsonl"
HFT = FIXTURES / "binance/spot/hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT"
BTC = asset_id_for("BTC/USD")


def events(stream: bytes) -> list[Event]:
    decoder = Decoder()
    decoder.feed(stream)
    return [e for m in decoder for e in m.events()]


def test_the_bytes_are_the_feeds_values_stamped_in_order_and_a_resync_says_recovered() -> None:
    lines = BOOK_10.read_bytes().splitlines()
    snapshot = next(line for line in lines if b'"as"' in line)
    plain, core = (
        KrakenFeed(["XBT/USD"]),
        FeedCore(KrakenFeed(["XBT/USD"]), Stamper(Source.KRAKEN_COLLECTOR, 9)),
    )
    assert core.subscribe_messages() == plain.subscribe_messages()
    assert (core.SNAPSHOTS, core.REST_BUDGET, core.wants_snapshot()) == (False, None, [])
    assert core.on_frame(b'{"event":"heartbeat"}', 1) == b""  # nothing to publish: no bytes
    for n, raw in enumerate(lines[:60]):
        assert events(core.on_frame(raw, n)) == list(plain.on_frame(raw, n))
    assert core.stamper.counter == sum(plain.stats.messages.values())
    bad = json.loads(lines[60])
    bad[1]["c"] = "1"  # this update's checksum fails: the book is dropped and resubscribed
    failed = events(core.on_frame(json.dumps(bad).encode(), 60))
    assert failed[-2] == StateInvalidation(101, 51, Reason.CHECKSUM_MISMATCH, (BTC,))
    assert len(core.take_requests()) == 2
    again = events(core.on_frame(snapshot, 61))
    assert isinstance(again[-2], L2Snapshot)
    assert again[-1] == StateInvalidation(101, 51, Reason.RECOVERED, (BTC,))
    assert core.stats.messages["StateInvalidation"] == 2
    assert events(core.on_frame(snapshot, 62))[-1] != again[-1]  # trusted already: no second RECOVERED
    gone = events(core.on_disconnect(63))  # every book of the venue, unnamed
    assert gone[0] == StateInvalidation(101, 51, Reason.DISCONNECT, ())
    assert events(core.on_frame(snapshot, 64))[-1] == StateInvalidation(101, 51, Reason.RECOVERED, (BTC,))


def test_drive_gives_the_snapshots_a_collector_would_fetch() -> None:
    frames = [(raw, n) for n, raw in enumerate(Path(f"{HFT}.jsonl").read_bytes().splitlines()[:200])]
    body = Path(f"{HFT}.rest-depth-snapshot.json").read_bytes()
    asked: list[tuple[int, list[str]]] = []

    def snapshots(line: int, wanted: list[str]) -> list[tuple[str, bytes]]:
        asked.append((line, wanted))
        return [("BTCUSDT", body)] if line == 7 else []

    core = FeedCore(BinanceFeed(), Stamper(Source.BINANCE_COLLECTOR, 1))
    assert core.snapshot_url("http://x", "BTCUSDT") == "http://x/api/v3/depth?symbol=BTCUSDT&limit=1000"
    stream = b"".join(drive(core, frames, snapshots))
    assert asked[0] == (1, ["BTCUSDT"])
    assert any(isinstance(e, L2Snapshot) for e in events(stream))
    assert core.stats.books["BTCUSDT"].updates_applied > 0
    calls = len(asked)
    assert list(drive(KrakenFeed(), [(b"{}", 1)], snapshots)) == [[]]  # values out; no REST: never asked
    assert len(asked) == calls


def test_on_frame_batch_takes_the_requests_a_frame_made_and_hands_them_out_once() -> None:
    """A Kraken checksum failure resubscribes: ``on_frame_batch`` says so (TODO_REQUESTS; and the new
    kind of rejected frame, whose sample to log) and takes the two frames from the feed;
    ``take_requests()`` hands them out, once."""
    lines = BOOK_10.read_bytes().splitlines()
    core = FeedCore(KrakenFeed(["XBT/USD"]), Stamper(Source.KRAKEN_COLLECTOR, 9))
    for n, raw in enumerate(lines[:60]):
        assert core.on_frame_batch(raw, n)[1] == 0
    bad = json.loads(lines[60])
    bad[1]["c"] = "1"  # this update's checksum fails: the book is dropped and resubscribed
    batch, todo = core.on_frame_batch(json.dumps(bad).encode(), 60)
    assert todo == TODO_NEW_REJECT | TODO_REQUESTS
    assert list(core.stats.samples) == ["checksum_mismatch"]
    assert core.feed.take_requests() == []  # taken from the feed by the call ...
    requests = [json.loads(r) for r in core.take_requests()]  # ... and handed out here
    assert [r["event"] for r in requests] == ["unsubscribe", "subscribe"]
    assert all(r["pair"] == ["XBT/USD"] for r in requests)
    assert core.take_requests() == []
    assert events(batch[BATCH_START:])[-2] == StateInvalidation(101, 51, Reason.CHECKSUM_MISMATCH, (BTC,))
