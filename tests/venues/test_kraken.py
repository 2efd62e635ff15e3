"""Kraken v1 and v2 against the real captures; v2 trade/ticker/status from the documented shapes.

The v2 capture holds book frames only: the `instrument` message giving BTC/USD price_precision 1 and
qty_precision 8 is constructed here from the documented shape, and so are the v2 trade, ticker, status
and method frames (no real capture of them exists in the shared fixtures).
"""

from __future__ import annotations

import json
import zlib
from decimal import Decimal
from pathlib import Path

import pytest

from tickrelay.errors import VenueMessageError
from tickrelay.protocol.messages import (
    InstrumentMeta,
    L2Delta,
    L2Reset,
    L2Snapshot,
    Quote,
    Reason,
    StateInvalidation,
    Trade,
)
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.venues.book import OrderBook
from tickrelay.venues.kraken import KrakenFeed
from tickrelay.venues.numbers import seconds_text_to_ns


KRAKEN = Path(__file__).resolve().parents[3] / "shared/fixtures/kraken"
BOOK_1000 = KRAKEN / "v1/cryptofeed_2021-04-17_book-1000_10-pairs.jsonl"
BOOK_10 = KRAKEN / "v1/python-kraken-sdk_2023-08-30_book-10_XBT-USD.jsonl"
TRADES = KRAKEN / "v1/cryptofeed_2021-04-17_trade_10-pairs.jsonl"
TICKERS = KRAKEN / "v1/cryptofeed_2021-04-17_ticker_10-pairs.jsonl"
BOOK_V2 = KRAKEN / "v2/python-kraken-sdk_2023-07-30_book-10_BTC-USD.jsonl"
INSTRUMENT = json.dumps(
    {
        "channel": "instrument",
        "type": "snapshot",
        "data": {
            "assets": [],
            "pairs": [
                {"symbol": "BTC/USD", "base": "BTC", "quote": "USD", "price_precision": 1, "qty_precision": 8}
            ],
        },
    }
).encode()


def fixed(text: str | float) -> int:
    return int(Decimal(str(text)) * 10**8)


def run(
    path: Path, feed: KrakenFeed | None = None, lines: list[bytes] | None = None
) -> tuple[KrakenFeed, list[list[object]]]:
    feed = feed or KrakenFeed()
    frames = lines if lines is not None else path.read_bytes().splitlines()
    return feed, [list(feed.on_frame(f, i)) for i, f in enumerate(frames)]


def test_the_1000_deep_book_verifies_every_checksum() -> None:
    feed, _ = run(BOOK_1000)
    assert dict(feed.stats.messages) == {"InstrumentMeta": 10, "L2Snapshot": 10, "L2Delta": 4269}
    assert dict(feed.stats.ignored) == {"systemStatus": 1, "subscriptionStatus": 10, "heartbeat": 31}
    assert not feed.stats.rejected
    assert sum(b.checksums_verified for b in feed.stats.books.values()) == 4269
    assert sum(b.checksum_failures for b in feed.stats.books.values()) == 0
    assert {b.crossed for b in feed.stats.books.values()} == {0}
    assert feed.stats.books["XBT/CHF"].best_bid is not None


def test_the_10_deep_book_with_republish_entries() -> None:
    feed, outputs = run(BOOK_10)
    (stats,) = feed.stats.books.values()
    assert (stats.updates_applied, stats.checksums_verified, stats.checksum_failures) == (979, 979, 0)
    assert dict(feed.stats.ignored) == {
        "systemStatus": 1,
        "pong": 16,
        "subscriptionStatus": 1,
        "heartbeat": 152,
    }
    meta, snap = outputs[3]
    assert meta == InstrumentMeta(asset_id_for("BTC/USD"), 101, 51, 5, 8, "XBT/USD", "BTC/USD")
    raw = json.loads(BOOK_10.read_bytes().splitlines()[3])[1]
    assert isinstance(snap, L2Snapshot)
    assert snap.asks == tuple((fixed(p), fixed(v)) for p, v, _ in raw["as"])
    assert snap.bids == tuple((fixed(p), fixed(v)) for p, v, _ in raw["bs"])


@pytest.mark.parametrize("path", [BOOK_10, BOOK_1000, BOOK_V2], ids=["v1-10", "v1-1000", "v2-10"])
def test_a_consumer_applying_the_published_deltas_holds_our_book_after_every_frame(path: Path) -> None:
    """Kraken sends no delete for a level pushed out of the subscribed depth; our deltas carry one, so a
    consumer that only applies snapshots and deltas (docs/protocol.md 2.4, 2.5) never keeps a
    phantom level (on the 10-deep capture it would cross the book)."""
    feed = KrakenFeed(version=2 if path == BOOK_V2 else 1)
    if path == BOOK_V2:
        list(feed.on_frame(INSTRUMENT, 0))
    consumer: dict[int, OrderBook] = {}
    compared = 0
    frames = path.read_bytes().splitlines()
    for i, frame in enumerate(frames):
        touched = set()
        for event in feed.on_frame(frame, i):
            if isinstance(event, L2Snapshot):
                consumer[event.asset_id] = book = OrderBook()
                book.load(event.bids, event.asks)
            elif isinstance(event, L2Delta):
                consumer[event.asset_id].update(event.bids, event.asks)
            touched.add(getattr(event, "asset_id", None))
        last = i == len(frames) - 1  # every book after the last frame, the ones a frame touched after it
        for pair in feed._pairs.values():
            if pair.asset_id in consumer and (last or pair.asset_id in touched):
                bids, asks = pair.book.levels()
                assert consumer[pair.asset_id].levels() == (bids, asks)
                # the checksum texts follow the book exactly: nothing piles up over a long session
                assert (set(pair.bid_text), set(pair.ask_text)) == (
                    {p for p, _ in bids},
                    {p for p, _ in asks},
                )
                compared += 1
    assert compared >= 500  # frames after the first snapshot


def test_one_edited_level_is_caught_for_that_pair_only() -> None:
    lines = BOOK_1000.read_bytes().splitlines()
    target = next(
        i for i, line in enumerate(lines) if line.startswith(b"[") and b'"XMR/USD"' in line and b'"c"' in line
    )
    edited = json.loads(lines[target])
    level = edited[1].get("a", edited[1].get("b"))[0]
    level[1] = f"{Decimal(level[1]) + Decimal('0.00000001'):.8f}"
    lines[target] = json.dumps(edited, separators=(",", ":")).encode()
    feed, outputs = run(BOOK_1000, lines=lines)
    xmr = asset_id_for("XMR/USD")
    assert outputs[target][-2:] == [
        StateInvalidation(101, 51, Reason.CHECKSUM_MISMATCH, (xmr,)),
        L2Reset(xmr, 101, 51, Reason.CHECKSUM_MISMATCH),
    ]
    assert feed.stats.books["XMR/USD"].checksum_failures == 1
    assert [json.loads(m) for m in feed.take_requests()] == [
        {"event": kind, "pair": ["XMR/USD"], "subscription": {"name": "book", "depth": 10}}
        for kind in ("unsubscribe", "subscribe")
    ]
    assert feed.take_requests() == []
    others = [b for pair, b in feed.stats.books.items() if pair != "XMR/USD"]
    assert sum(b.checksum_failures for b in others) == 0
    assert sum(b.checksums_verified for b in others) == 4269 - 846  # the other nine pairs untouched
    assert feed.stats.rejected["book_update_before_snapshot"] > 0  # XMR/USD waits for a new snapshot


def test_ignore_policy_counts_and_keeps_going() -> None:
    lines = BOOK_10.read_bytes().splitlines()
    lines[10] = lines[10].replace(b'"c":"', b'"c":"1')
    feed, _ = run(BOOK_10, KrakenFeed(checksum_policy="ignore"), lines)
    (stats,) = feed.stats.books.values()
    assert (stats.checksum_failures, stats.checksums_verified, stats.updates_applied) == (1, 978, 979)
    with pytest.raises(ValueError, match="checksum_policy"):
        KrakenFeed(checksum_policy="maybe")


def test_every_trade_of_a_batch_is_a_trade_with_exact_values() -> None:
    feed, outputs = run(TRADES)
    trades = [v for out in outputs for v in out if isinstance(v, Trade)]
    raw = [
        (json.loads(line)[-1], t)
        for line in TRADES.read_bytes().splitlines()
        if line.startswith(b"[")
        for t in json.loads(line)[1]
    ]
    assert len(trades) == len(raw) == 10
    for trade, (pair, (price, volume, when, side, *_)) in zip(trades, raw, strict=True):
        base, quote = pair.split("/")
        assert trade.asset_id == asset_id_for(f"{base.replace('XBT', 'BTC')}/{quote.replace('XBT', 'BTC')}")
        assert (trade.price, trade.volume) == (fixed(price), fixed(volume))
        assert trade.exec_ts_ns == int(Decimal(when) * 10**9)
        assert trade.side == (0 if side == "b" else 1)
    assert dict(feed.stats.messages)["Trade"] == 10


def test_ticker_quotes() -> None:
    _, outputs = run(TICKERS)
    quotes = [v for out in outputs for v in out if isinstance(v, Quote)]
    raw = [json.loads(line)[1] for line in TICKERS.read_bytes().splitlines() if line.startswith(b"[")]
    assert len(quotes) == len(raw) == 18
    for q, r in zip(quotes, raw, strict=True):
        assert (q.bid_price, q.bid_size, q.ask_price, q.ask_size) == (
            fixed(r["b"][0]),
            fixed(r["b"][2]),
            fixed(r["a"][0]),
            fixed(r["a"][2]),
        )
        assert q.quote_ts_ns == 0


def test_v2_book_checksums_with_the_instrument_precisions() -> None:
    feed = KrakenFeed(version=2)
    feed.load_instruments(INSTRUMENT)
    feed, outputs = run(BOOK_V2, feed)
    (stats,) = feed.stats.books.values()
    assert (stats.updates_applied, stats.checksums_verified, stats.checksum_failures) == (509, 510, 0)
    assert outputs[0][0] == InstrumentMeta(asset_id_for("BTC/USD"), 101, 51, 1, 8, "BTC/USD", "BTC/USD")
    first_update = json.loads(BOOK_V2.read_bytes().splitlines()[1])["data"][0]
    (delta,) = outputs[1]
    assert isinstance(delta, L2Delta)
    sent = tuple((fixed(lv["price"]), fixed(lv["qty"])) for lv in first_update["asks"])
    assert delta.asks[: len(sent)] == sent
    # 29431.1 goes, 29433.3 and 29430.6 come: 11 asks, and the 11th (29433.3, just set) is beyond the
    # subscribed 10. Kraken sends no delete for it; our delta does, so consumers drop it as we do.
    assert delta.asks[len(sent) :] == ((fixed("29433.3"), 0),)
    without, _ = run(BOOK_V2)
    assert without.unverified_checksums == 510  # no precisions: the checksum cannot be rebuilt


def v2(channel: str, data: object, kind: str = "update") -> bytes:
    return json.dumps({"channel": channel, "type": kind, "data": data}).encode()


def test_a_v2_frame_with_two_books_of_one_pair_is_rejected_whole() -> None:
    """Kraken sends one book a pair in a frame. With two, a failed checksum in the first darkened the
    book (L2Reset, resubscribe) and the second was applied to it anyway: an L2Delta after the reset,
    and its checksum counted verified over a book of that delta's levels alone. Both cores did it (a
    second reader found it with a wider generator than tests/native/test_kraken_texts.py's)."""
    feed = KrakenFeed(version=2)
    feed.load_instruments(INSTRUMENT)
    assert feed.on_frame(BOOK_V2.read_bytes().splitlines()[0], 1)
    book, stats = feed._pairs["BTC/USD"].book, feed.stats.books["BTC/USD"]
    levels, counts = book.levels(), (stats.updates_applied, stats.checksums_verified, stats.checksum_failures)
    alone = zlib.crc32(b"3100001000000")  # the second book's ask, 31000.0 x 0.01, as the whole book
    twice = v2("book", [
        {"symbol": "BTC/USD", "bids": [], "asks": [{"price": 29431.0, "qty": 1.0}], "checksum": 5},
        {"symbol": "BTC/USD", "bids": [], "asks": [{"price": 31000.0, "qty": 0.01}], "checksum": alone},
    ])  # fmt: skip
    assert feed.on_frame(twice, 2) == []
    assert dict(feed.stats.rejected) == {"duplicate_book": 1}
    assert feed.stats.samples["duplicate_book"] == twice.decode()
    assert (book.levels(), feed.take_requests()) == (levels, [])
    assert (stats.updates_applied, stats.checksums_verified, stats.checksum_failures) == counts


def test_v2_trades_tickers_and_control_frames() -> None:
    feed = KrakenFeed(version=2)
    trades = v2(
        "trade",
        [
            {
                "symbol": "MATIC/USD",
                "side": "sell",
                "price": 0.5117,
                "qty": 40.0,
                "ord_type": "market",
                "trade_id": 4665906,
                "timestamp": "2023-09-25T07:49:37.708706Z",
            }
        ],
    )
    meta, trade = feed.on_frame(trades, 0)
    matic = asset_id_for("MATIC/USD")
    assert meta == InstrumentMeta(matic, 101, 51, 4, 1, "MATIC/USD", "MATIC/USD")
    assert trade == Trade(matic, 51170000, 4000000000, 1695628177708706000, 101, 51, 1)
    ticker = v2(
        "ticker",
        [
            {
                "symbol": "MATIC/USD",
                "bid": 0.5116,
                "bid_qty": 740.0,
                "ask": 0.5118,
                "ask_qty": 12.5,
                "last": 0.5117,
                "timestamp": "2023-09-25T07:49:38Z",
            }
        ],
    )
    (quote,) = feed.on_frame(ticker, 1)
    assert quote == Quote(matic, 51160000, 74000000000, 51180000, 1250000000, 1695628178000000000, 101, 51)
    assert feed.on_frame(b'{"channel":"heartbeat"}', 2) == []
    assert feed.on_frame(v2("status", [{"system": "online", "version": "2.0.0"}]), 3) == []
    assert feed.on_frame(b'{"method":"subscribe","result":{"channel":"ticker"},"success":true}', 4) == []
    assert (
        feed.on_frame(b'{"method":"subscribe","error":"Currency pair not supported","success":false}', 5)
        == []
    )
    assert feed.on_frame(INSTRUMENT, 6) == []
    assert dict(feed.stats.ignored) == {"heartbeat": 1, "status": 1, "method:subscribe": 1, "instrument": 1}
    assert feed.stats.venue_errors == 1


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"not json", "invalid_json"),
        (b'[1,{"x":1},"ohlc-5","XBT/USD"]', "unknown_channel:ohlc-5"),
        (b'[1,[["x","1","1.5","b","l",""]],"trade","XBT/USD"]', "bad_trade"),
        (b'[1,[["1","1","yesterday","b","l",""]],"trade","XBT/USD"]', "bad_trade"),
        (b'[1,{"b":[["1.0","1.0","1.5"]],"c":"1"},"book-10","XBT/USD"]', "book_update_before_snapshot"),
        (
            b'{"event":"subscriptionStatus","status":"error","errorMessage":"Currency pair not supported"}',
            "venue_error",
        ),
        (b'{"event":"error","errorMessage":"Malformed request"}', "venue_error"),
        (b'{"event":"somethingNew"}', "unknown:somethingNew"),
        (b'{"channel":"ohlc","type":"update","data":[]}', "unknown_channel:ohlc"),
        (
            v2("book", [{"symbol": "BTC/USD", "bids": [], "asks": [], "checksum": 1}]),
            "book_update_before_snapshot",
        ),
    ],
)
def test_bad_frames_are_counted_never_raised(raw: bytes, kind: str) -> None:
    feed = KrakenFeed()
    assert feed.on_frame(raw, 0) == []
    assert dict(feed.stats.rejected) == {kind: 1}


def test_spread_quotes_and_disconnects() -> None:
    feed = KrakenFeed()
    meta, quote = feed.on_frame(
        b'[9,["5698.40000","5700.00000","1542057299.545897","1.01234567","0.98765432"],"spread","XBT/USD"]', 0
    )
    btc = asset_id_for("BTC/USD")
    assert isinstance(meta, InstrumentMeta)
    assert quote == Quote(btc, 569840000000, 101234567, 570000000000, 98765432, 1542057299545897000, 101, 51)
    (snap,) = feed.on_frame(
        b'[7,{"as":[["5541.30000","2.50700000","1534614248.123678"]],"bs":[]},"book-10","XBT/USD"]', 1
    )
    assert isinstance(snap, L2Snapshot)
    out = feed.on_disconnect(0)
    assert out == [
        StateInvalidation(101, 51, Reason.DISCONNECT, ()),
        L2Reset(btc, 101, 51, Reason.DISCONNECT),
    ]
    assert feed.stats.books["XBT/USD"].resyncs == 1


def test_subscribe_messages_and_times() -> None:
    assert KrakenFeed().subscribe_messages() == []
    v1 = [json.loads(m) for m in KrakenFeed(["XBT/USD"], depth=25).subscribe_messages()]
    assert v1[2] == {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 25}}
    v2_msgs = [json.loads(m) for m in KrakenFeed(["BTC/USD"], version=2).subscribe_messages()]
    assert [m["params"]["channel"] for m in v2_msgs] == ["instrument", "trade", "ticker", "book"]
    assert seconds_text_to_ns("1618678142.557535") == 1618678142557535000
    assert seconds_text_to_ns("1618678142") == 1618678142000000000
    with pytest.raises(ValueError, match="not a Kraken time"):
        seconds_text_to_ns("-1.5")


def test_book_edge_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    from tickrelay.venues import numbers

    monkeypatch.setattr(numbers, "CACHE_LIMIT", 0)
    feed = KrakenFeed()
    feed.on_frame(
        b'[1,[["1.000000005","2.0","1.5","b","l",""]],"trade","ETH/USD"]', 0
    )  # trades only: no book
    assert feed.stats.rounded == 1
    snapshot = b'[7,{"as":[["10.0","1.0","1.5"]],"bs":[["9.0","1.0","1.5"]]},"book-10","XBT/USD"]'
    feed.on_frame(snapshot, 0)
    feed.on_frame(snapshot, 1)  # a new snapshot while live: a resync
    assert feed.stats.books["XBT/USD"].resyncs == 1
    (delta,) = feed.on_frame(
        b'[7,{"b":[["11.0","1.0","1.6"]]},"book-10","XBT/USD"]', 2
    )  # no "c": nothing to check
    assert isinstance(delta, L2Delta)
    assert feed.stats.books["XBT/USD"].crossed == 1
    assert feed.stats.books["XBT/USD"].checksums_verified == 0
    feed.on_frame(b'[8,{"as":[["5.0","1.0","1.5"]],"bs":[]},"book-10","ADA/EUR"]', 3)
    feed.on_frame(
        b'[8,{"a":[["5.0","2.0","1.6"]],"c":"1"},"book-10","ADA/EUR"]', 4
    )  # wrong: the book goes dark
    out = feed.on_disconnect(0)
    assert out == [
        StateInvalidation(101, 51, Reason.DISCONNECT, ()),
        L2Reset(asset_id_for("BTC/USD"), 101, 51, Reason.DISCONNECT),
        L2Reset(asset_id_for("ADA/EUR"), 101, 51, Reason.DISCONNECT),
    ]
    assert feed.stats.books["ADA/EUR"].resyncs == 0  # it was dark already: nothing to resync
    v2feed = KrakenFeed(version=2)
    v2feed.on_frame(
        v2("book", [{"symbol": "BTC/USD", "bids": [{"price": 1.5, "qty": 2.0}], "asks": []}], "snapshot"), 0
    )
    v2feed.load_instruments(INSTRUMENT)  # precisions may come after the pair was first seen
    v2feed.on_frame(
        v2(
            "book",
            [
                {
                    "symbol": "BTC/USD",
                    "bids": [{"price": 1.5, "qty": 2.0}],
                    "asks": [],
                    "checksum": zlib.crc32(b"15200000000"),
                }
            ],
        ),
        1,
    )
    assert v2feed.stats.books["BTC/USD"].checksums_verified == 1


@pytest.mark.parametrize("precision", [-1, 256, 10**19])
def test_v2_instrument_precisions_out_of_range_are_rejected(precision: int) -> None:
    """A precision no venue sends (not 0-255, the protocol's decimals byte) rejects its instrument frame;
    10**19 used to raise OverflowError from the checksum text of the next book (found by tests/native)."""
    feed = KrakenFeed(version=2)
    book = v2("book", [{"symbol": "BTC/USD", "bids": [{"price": 1.5, "qty": 2.0}], "asks": []}], "snapshot")
    pairs = [{"symbol": "BTC/USD", "price_precision": 1, "qty_precision": precision}]
    bad = v2("instrument", {"assets": [], "pairs": pairs}, "snapshot")
    assert feed.on_frame(bad, 0) == []
    assert dict(feed.stats.rejected) == {"bad_instrument": 1}
    out = feed.on_frame(book, 1)
    assert out[0] == InstrumentMeta(asset_id_for("BTC/USD"), 101, 51, 1, 1, "BTC/USD", "BTC/USD")
    with pytest.raises(VenueMessageError, match="not a v2 instrument message"):
        feed.load_instruments(bad)


def test_native_spec_names_the_compiled_twin_its_api_and_precisions() -> None:
    assert KrakenFeed().native_spec() == (
        "kraken_v1",
        {"depth": 10, "checksum_policy": "resync", "precisions": []},
    )
    feed = KrakenFeed(version=2)
    feed.load_instruments(INSTRUMENT)
    assert feed.native_spec() == (
        "kraken_v2",
        {"depth": 10, "checksum_policy": "resync", "precisions": ["1 8 BTC/USD"]},
    )
