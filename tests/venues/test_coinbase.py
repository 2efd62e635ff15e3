"""Coinbase feeds against the real Exchange-feed capture; Advanced Trade from the documented shapes.

No real Advanced Trade capture exists in the shared fixtures: those frames are written here from the
message shapes in Coinbase's Advanced Trade WebSocket documentation.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tickrelay.protocol.messages import (
    InstrumentMeta,
    L2Delta,
    L2Reset,
    L2Snapshot,
    Quote,
    Reason,
    Side,
    StateInvalidation,
    Trade,
)
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.venues.coinbase import CoinbaseFeed
from tickrelay.venues.coinbase_advanced import AdvancedTradeFeed
from tickrelay.venues.numbers import parse_time_ns


FIXTURES = Path(__file__).resolve().parents[3] / "shared/fixtures/coinbase/exchange-ws-feed"
CAPTURE = FIXTURES / "cryptofeed_2021-04-17_level2-ticker-matches_10-products.jsonl"
FRAMES = CAPTURE.read_bytes().splitlines()


def fixed(text: str) -> int:
    return int(Decimal(text) * 10**8)


def run(frames: list[bytes]) -> tuple[CoinbaseFeed, list[list[object]]]:
    feed = CoinbaseFeed()
    return feed, [list(feed.on_frame(f, i)) for i, f in enumerate(frames)]


def test_every_frame_of_the_capture_is_counted_exactly() -> None:
    feed, _ = run(FRAMES)
    assert feed.stats.frames == 9946
    assert dict(feed.stats.messages) == {
        "InstrumentMeta": 10,
        "L2Snapshot": 10,
        "L2Delta": 9719,
        "Quote": 107,
        "Trade": 107,
    }
    assert dict(feed.stats.ignored) == {"subscriptions": 3}
    assert not feed.stats.rejected
    assert feed.stats.rounded == 0
    assert feed.trade_id_gaps == 0  # trade ids gapless per product, as the capture's README says


def test_every_trade_matches_the_raw_json_with_the_aggressor_side() -> None:
    _, outputs = run(FRAMES)
    checked = 0
    for raw, out in zip(FRAMES, outputs, strict=True):
        frame = json.loads(raw)
        if frame["type"] not in ("match", "last_match"):
            continue
        (trade,) = [v for v in out if isinstance(v, Trade)]
        base, quote = frame["product_id"].split("-")
        assert trade.asset_id == asset_id_for(f"{base}/{quote}")
        assert trade.price == fixed(frame["price"])
        assert trade.volume == fixed(frame["size"])
        assert trade.side == (Side.SELL if frame["side"] == "buy" else Side.BUY)  # side is the maker's
        assert trade.exec_ts_ns == parse_time_ns(frame["time"])
        assert (trade.venue_id, trade.asset_type) == (102, 51)
        checked += 1
    assert checked == 107


def test_quotes_and_books_match_the_raw_json_and_never_cross() -> None:
    feed, outputs = run(FRAMES)
    books: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
    for raw, out in zip(FRAMES, outputs, strict=True):
        frame = json.loads(raw)
        if frame["type"] == "ticker":
            (quote,) = [v for v in out if isinstance(v, Quote)]
            assert (quote.bid_price, quote.ask_price) == (fixed(frame["best_bid"]), fixed(frame["best_ask"]))
            assert (quote.bid_size, quote.ask_size) == (0, 0)  # the 2021 ticker sends no sizes
            assert quote.quote_ts_ns == parse_time_ns(frame["time"])
        elif frame["type"] == "snapshot":
            bids = {fixed(p): fixed(s) for p, s in frame["bids"]}
            asks = {fixed(p): fixed(s) for p, s in frame["asks"]}
            books[frame["product_id"]] = (bids, asks)
            (snap,) = [v for v in out if isinstance(v, L2Snapshot)]
            assert dict(snap.bids) == bids
            assert dict(snap.asks) == asks
        elif frame["type"] == "l2update":
            bids, asks = books[frame["product_id"]]
            for side, price, size in frame["changes"]:
                levels = bids if side == "buy" else asks
                levels[fixed(price)] = fixed(size)
                if not fixed(size):
                    del levels[fixed(price)]
            (delta,) = out
            assert isinstance(delta, L2Delta)
            assert delta.exchange_ts_ns == parse_time_ns(frame["time"])
            assert max(bids) < min(asks)  # never crossed
    for product, (bids, asks) in books.items():
        stats = feed.stats.books[product]
        assert stats.crossed == 0
        assert fixed(stats.best_bid or "0") == max(bids)
        assert fixed(stats.best_ask or "0") == min(asks)


def test_the_real_match_of_issue_2() -> None:
    raw = (
        b'{"type":"match","trade_id":1,"side":"buy","size":"0.00004147","price":"116827.85",'
        b'"product_id":"BTC-USD","time":"2025-08-22T20:11:30.012637Z"}'
    )
    meta, trade = CoinbaseFeed().on_frame(raw, 0)
    assert meta == InstrumentMeta(asset_id_for("BTC/USD"), 102, 51, 2, 8, "BTC-USD", "BTC/USD")
    assert trade == Trade(asset_id_for("BTC/USD"), 11682785000000, 4147, 1755893490012637000, 102, 51, 1)


def test_a_reconnect_replay_emits_no_duplicate_and_books_wait_for_a_snapshot() -> None:
    feed, _ = run(FRAMES[:2000])
    out = feed.on_disconnect(0)
    assert out[0] == StateInvalidation(102, 51, Reason.DISCONNECT, ())
    assert {v.asset_id for v in out[1:] if isinstance(v, L2Reset)} == {
        asset_id_for(p.replace("-", "/")) for p in feed.stats.books
    }
    last_match = next(f for f in FRAMES if b'"last_match"' in f)
    assert feed.on_frame(last_match, 1) == []
    assert feed.stats.ignored["duplicate_trade"] == 1
    update = next(f for f in FRAMES[2000:] if b'"l2update"' in f)
    assert feed.on_frame(update, 2) == []
    assert feed.stats.rejected["l2update_before_snapshot"] == 1


def test_a_crossed_update_invalidates_that_product_only() -> None:
    feed = CoinbaseFeed()
    feed.on_frame(
        b'{"type":"snapshot","product_id":"BTC-USD","bids":[["100.0","1"]],"asks":[["101.0","1"]]}', 0
    )
    feed.on_frame(
        b'{"type":"snapshot","product_id":"ETH-USD","bids":[["10.0","1"]],"asks":[["11.0","1"]]}', 0
    )
    out = feed.on_frame(b'{"type":"l2update","product_id":"BTC-USD","changes":[["buy","102.0","1"]]}', 1)
    btc = asset_id_for("BTC/USD")
    assert out[1:] == [
        StateInvalidation(102, 51, Reason.CROSSED_BOOK, (btc,)),
        L2Reset(btc, 102, 51, Reason.CROSSED_BOOK),
    ]
    assert feed.stats.books["BTC-USD"].crossed == 1
    assert feed.stats.books["ETH-USD"].best_bid == "10.00000000"


def test_an_update_with_an_unknown_side_is_rejected_whole_and_the_book_kept() -> None:
    feed = CoinbaseFeed()
    feed.on_frame(
        b'{"type":"snapshot","product_id":"BTC-USD","bids":[["100.0","1"]],"asks":[["101.0","1"]]}', 0
    )
    bad = b'{"type":"l2update","product_id":"BTC-USD","changes":[["buy","99.5","2"],["hold","100.5","1"]]}'
    assert feed.on_frame(bad, 1) == []
    assert dict(feed.stats.rejected) == {"bad_l2update": 1}
    assert feed.stats.samples["bad_l2update"] == bad.decode()
    assert feed.stats.books["BTC-USD"].updates_applied == 0  # not even its valid "buy" change
    out = feed.on_frame(b'{"type":"l2update","product_id":"BTC-USD","changes":[["sell","100.5","3"]]}', 2)
    assert [(v.bids, v.asks) for v in out] == [((), ((10050000000, 300000000),))]
    assert feed.stats.books["BTC-USD"].best_ask == "100.50000000"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"not json", "invalid_json"),
        (b'{"type":"status","products":[]}', "unknown:status"),
        (b'{"foo":1}', "unknown:no_type"),
        (
            b'{"type":"error","message":"Failed to subscribe","reason":"BAD-PAIR is not a valid product"}',
            "venue_error",
        ),
        (
            b'{"type":"match","trade_id":5,"side":"buy","size":"x","price":"1","product_id":"A-B","time":"2021-04-17T16:43:30Z"}',
            "bad_match",
        ),
        (
            b'{"type":"match","trade_id":5,"side":"buy","size":"1","price":"1","product_id":"A-B","time":"yesterday"}',
            "bad_match",
        ),
    ],
)
def test_bad_frames_are_counted_never_raised(raw: bytes, kind: str) -> None:
    feed = CoinbaseFeed()
    assert feed.on_frame(raw, 0) == []
    assert dict(feed.stats.rejected) == {kind: 1}
    assert feed.stats.samples[kind] == raw.decode()


def test_heartbeats_and_tickers_without_a_quote_are_ignored() -> None:
    feed = CoinbaseFeed()
    assert (
        feed.on_frame(b'{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD"}', 0)
        == []
    )
    assert feed.on_frame(b'{"type":"ticker","product_id":"BTC-USD","price":"1"}', 0) == []
    assert dict(feed.stats.ignored) == {"heartbeat": 1, "ticker:no_quote": 1}


def test_times_are_exact_integers() -> None:
    assert parse_time_ns("2021-04-17T16:43:30.244075Z") == 1618677810_244075000
    assert parse_time_ns("2019-08-14T20:42:27.265Z") == 1565815347_265000000
    assert parse_time_ns("2019-08-14T20:42:27Z") == 1565815347_000000000
    assert parse_time_ns("2019-08-14T22:42:27.1234567891+02:00") == 1565815347_123456789
    assert parse_time_ns("2019-08-14T20:42:27-01:30") == 1565815347_000000000 + 5400 * 10**9
    for bad in ("2019-08-14 20:42:27Z", "2019-08-14T20:42:27", "short", "2019-08-14T20:42:27+0200"):
        with pytest.raises(ValueError, match="not an RFC 3339 time"):
            parse_time_ns(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "2019-08-14T20:42: 7.5Z",  # int() takes " 7", "+7" and "0_7"; a digit is an ASCII digit here
        "2019-08-14T20:42:+7.5Z",
        "2019-08-14T20:4_:27Z",
        "2019-08-14T20:42:2\u0667.5Z",  # ARABIC-INDIC DIGIT SEVEN
        "2019-08-14T20:42:27.\u0665Z",
        "2019-08-14T20:42:27+ 2:00",
        "2019-08-14T20:42:27+02:_0",
        "2019-08-14T20:42:27.5\u00e9",
    ],
)
def test_times_read_ascii_digits_only(bad: str) -> None:
    # the compiled core reads the same texts the same way: Python's int() was laxer than RFC 3339
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        parse_time_ns(bad.encode().decode("unicode_escape"))


def test_times_fit_int64_ns() -> None:
    assert parse_time_ns("2262-04-11T23:47:16.854775807Z") == 2**63 - 1
    assert parse_time_ns("1677-09-21T00:12:43.145224192+00:00") == -(2**63)
    for bad in ("2262-04-11T23:47:16.854775808Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00-00:00"):
        with pytest.raises(ValueError, match="out of the int64 ns range"):
            parse_time_ns(bad)


def test_subscribe_messages() -> None:
    assert CoinbaseFeed().subscribe_messages() == []
    (exchange,) = CoinbaseFeed(["BTC-USD"]).subscribe_messages()
    assert json.loads(exchange) == {
        "type": "subscribe",
        "product_ids": ["BTC-USD"],
        "channels": ["level2_batch", "ticker", "matches", "heartbeat"],
    }
    advanced = [json.loads(m) for m in AdvancedTradeFeed(["BTC-USD"]).subscribe_messages()]
    assert [m["channel"] for m in advanced] == ["market_trades", "ticker", "level2", "heartbeats"]


# ---- Advanced Trade, from the documented message shapes (no real capture exists) -------------------


def adv(seq: int, channel: str, events: list[dict[str, object]]) -> bytes:
    return json.dumps(
        {
            "channel": channel,
            "client_id": "",
            "timestamp": "2023-02-09T20:32:50.714964855Z",
            "sequence_num": seq,
            "events": events,
        }
    ).encode()


def test_advanced_trade_channels() -> None:
    feed = AdvancedTradeFeed()
    eth = asset_id_for("ETH/USD")
    snapshot = adv(
        0,
        "l2_data",
        [
            {
                "type": "snapshot",
                "product_id": "ETH-USD",
                "updates": [
                    {
                        "side": "bid",
                        "event_time": "1970-01-01T00:00:00Z",
                        "price_level": "21921.73",
                        "new_quantity": "0.06317902",
                    },
                    {
                        "side": "offer",
                        "event_time": "1970-01-01T00:00:00Z",
                        "price_level": "21921.74",
                        "new_quantity": "2",
                    },
                ],
            }
        ],
    )
    meta, snap = feed.on_frame(snapshot, 0)
    assert meta == InstrumentMeta(eth, 102, 51, 2, 8, "ETH-USD", "ETH/USD")
    assert snap == L2Snapshot(
        eth, 102, 51, 3, 0, 0, 0, ((2192173000000, 6317902),), ((2192174000000, 200000000),)
    )
    update = adv(
        1,
        "l2_data",
        [
            {
                "type": "update",
                "product_id": "ETH-USD",
                "updates": [
                    {
                        "side": "bid",
                        "event_time": "2023-02-09T20:32:50.714964855Z",
                        "price_level": "21921.73",
                        "new_quantity": "0",
                    }
                ],
            }
        ],
    )
    (delta,) = feed.on_frame(update, 1)
    assert delta == L2Delta(
        eth, 102, 51, 0, 1, 1, parse_time_ns("2023-02-09T20:32:50.714964855Z"), ((2192173000000, 0),), ()
    )
    trades = adv(
        2,
        "market_trades",
        [
            {
                "type": "update",
                "trades": [
                    {
                        "trade_id": "1",
                        "product_id": "ETH-USD",
                        "price": "1260.01",
                        "size": "0.3",
                        "side": "SELL",
                        "time": "2019-08-14T20:42:27.265Z",
                    },
                    {
                        "trade_id": "2",
                        "product_id": "ETH-USD",
                        "price": "1260.00",
                        "size": "0.1",
                        "side": "BUY",
                        "time": "2019-08-14T20:42:27.266Z",
                    },
                ],
            }
        ],
    )
    # side is the maker's: the maker sold at the ask (a buyer lifted it), the maker bought at the bid
    assert [(t.price, t.side) for t in feed.on_frame(trades, 2)] == [(126001000000, 0), (126000000000, 1)]  # type: ignore[union-attr]
    ticker = adv(
        3,
        "ticker",
        [
            {
                "type": "snapshot",
                "tickers": [
                    {
                        "type": "ticker",
                        "product_id": "ETH-USD",
                        "price": "1",
                        "best_bid": "1260.00",
                        "best_bid_quantity": "5",
                        "best_ask": "1260.01",
                        "best_ask_quantity": "6",
                    }
                ],
            }
        ],
    )
    (quote,) = feed.on_frame(ticker, 3)
    assert quote == Quote(
        eth,
        126000000000,
        500000000,
        126001000000,
        600000000,
        parse_time_ns("2023-02-09T20:32:50.714964855Z"),
        102,
        51,
    )
    assert feed.on_frame(adv(4, "heartbeats", [{"current_time": "now", "heartbeat_counter": 3}]), 4) == []
    assert feed.on_frame(adv(5, "market_trades", [{"type": "snapshot", "trades": []}]), 5) == []
    assert feed.stats.ignored == {"heartbeats": 1, "market_trades:snapshot": 1}  # each frame once
    # a jump in sequence_num: every live book is invalidated and a resubscription is asked for
    gap = feed.on_frame(adv(9, "heartbeats", [{"heartbeat_counter": 4}]), 9)
    assert gap == [
        StateInvalidation(102, 51, Reason.SEQUENCE_GAP, (eth,)),
        L2Reset(eth, 102, 51, Reason.SEQUENCE_GAP),
    ]
    assert [json.loads(m) for m in feed.take_requests()] == [
        {"type": kind, "product_ids": ["ETH-USD"], "channel": "level2"}
        for kind in ("unsubscribe", "subscribe")
    ]
    assert feed.take_requests() == []
    assert feed.on_frame(update.replace(b'"sequence_num": 1', b'"sequence_num": 10'), 10) == []
    assert feed.stats.ignored["l2_data:before_snapshot"] == 1  # of no use until its snapshot; counted once
    assert (
        feed.on_frame(
            adv(11, "ticker", [{"type": "update", "tickers": [{"product_id": "ETH-USD", "price": "1"}]}]), 11
        )
        == []
    )
    bad = adv(
        12,
        "market_trades",
        [
            {
                "type": "update",
                "trades": [
                    {
                        "trade_id": "3",
                        "product_id": "ETH-USD",
                        "price": "x",
                        "size": "1",
                        "side": "BUY",
                        "time": "2019-08-14T20:42:27Z",
                    }
                ],
            }
        ],
    )
    assert feed.on_frame(bad, 12) == []
    assert feed.stats.rejected["bad_market_trades"] == 1


def match(trade_id: int, price: str = "1.5", product: str = "A-B") -> bytes:
    return (
        f'{{"type":"match","trade_id":{trade_id},"side":"sell","size":"2","price":"{price}",'
        f'"product_id":"{product}","time":"2021-04-17T16:43:30Z"}}'
    ).encode()


def test_trade_id_gaps_rounding_and_snapshot_reloads_are_counted() -> None:
    feed = CoinbaseFeed()
    feed.on_frame(match(5), 0)
    (trade,) = feed.on_frame(match(7, price="1.000000005"), 0)
    assert feed.trade_id_gaps == 1
    assert trade.price == 100000000  # type: ignore[union-attr]  # half to even
    assert trade.side == Side.BUY  # type: ignore[union-attr]  # the maker sold
    assert feed.stats.rounded == 1
    empty = b'{"type":"snapshot","product_id":"C-D","bids":[],"asks":[]}'
    meta, snap = feed.on_frame(empty, 0)
    assert (meta.price_decimals, meta.size_decimals) == (255, 255)  # type: ignore[union-attr]
    assert snap == L2Snapshot(asset_id_for("C/D"), 102, 51, 3, 0, 0, 0, (), ())
    feed.on_frame(empty, 0)
    assert feed.stats.books["C-D"].resyncs == 1
    out = feed.on_disconnect(0)  # A-B only traded: no book to reset
    assert out == [
        StateInvalidation(102, 51, Reason.DISCONNECT, ()),
        L2Reset(asset_id_for("C/D"), 102, 51, 1),
    ]
    assert feed.stats.books["C-D"].resyncs == 2


def test_an_advanced_sequence_gap_without_books_only_notes_the_sequence() -> None:
    feed = AdvancedTradeFeed()
    assert feed.on_frame(adv(1, "heartbeats", [{"heartbeat_counter": 1}]), 0) == []
    assert feed.on_frame(adv(5, "heartbeats", [{"heartbeat_counter": 2}]), 0) == []
    assert feed.take_requests() == []


def test_full_caches_still_parse_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    from tickrelay.venues import numbers

    monkeypatch.setattr(numbers, "CACHE_LIMIT", 0)
    (trade,) = [v for v in CoinbaseFeed().on_frame(match(1, price="2.25"), 0) if isinstance(v, Trade)]
    assert trade.price == 225000000
    assert parse_time_ns("1999-12-31T23:59:59.5Z") == 946684799_500000000


def test_advanced_market_trades_side_is_the_makers() -> None:
    """Coinbase reports the maker's side on public market trades (as NautilusTrader's adapter documents),
    so a trade marked BUY was a seller hitting a resting bid: the aggressor is SELL. Frames built from the
    documented shape: no real Advanced Trade capture exists."""
    feed = AdvancedTradeFeed()

    def trade(seq: int, side: str) -> bytes:
        t = {
            "product_id": "BTC-USD",
            "price": "100",
            "size": "1",
            "side": side,
            "time": "2023-02-09T20:32:50Z",
        }
        return adv(seq, "market_trades", [{"type": "update", "trades": [t]}])

    assert [v.side for v in feed.on_frame(trade(1, "BUY"), 1) if isinstance(v, Trade)] == [Side.SELL]
    assert [v.side for v in feed.on_frame(trade(2, "SELL"), 2) if isinstance(v, Trade)] == [Side.BUY]
    assert [v.side for v in feed.on_frame(trade(3, "buy"), 3) if isinstance(v, Trade)] == [Side.SELL]


# ---- bounds the compiled core keeps too: what the protocol cannot carry is a counted reject ----------


def _match(trade_id: int, product_id: str = "BTC-USD") -> bytes:
    fields = {"trade_id": trade_id, "side": "buy", "size": "1", "price": "2", "product_id": product_id}
    return json.dumps({"type": "match", **fields, "time": "2021-04-17T16:43:30Z"}).encode()


def test_trade_ids_and_sequence_numbers_are_int64() -> None:
    feed = CoinbaseFeed()
    assert feed.on_frame(_match(2**63 - 1), 0)
    assert feed.on_frame(_match(2**63), 0) == []
    assert feed.on_frame(_match(-1), 0) == []
    assert dict(feed.stats.rejected) == {"unknown:match": 2}
    advanced = AdvancedTradeFeed()
    for seq in (-1, 2**63):
        assert advanced.on_frame(b'{"channel":"heartbeats","sequence_num":%d}' % seq, 0) == []
    assert dict(advanced.stats.rejected) == {"unknown:heartbeats": 2}


@pytest.mark.parametrize("product_id", ["\u00c9TH-USD", "B" * 61 + "-USD"])
def test_product_ids_are_ascii_of_at_most_64_characters(product_id: str) -> None:
    # upper() and strip() of other text would need Unicode tables, and InstrumentMeta holds 255 bytes
    feed = CoinbaseFeed()
    assert feed.on_frame(_match(1, product_id), 0) == []
    assert dict(feed.stats.rejected) == {"bad_match": 1}
    assert len(feed.on_frame(_match(1, "B" * 60 + "-USD"), 0)) == 2  # 64 characters: InstrumentMeta + Trade


def test_an_update_one_l2delta_cannot_hold_is_rejected() -> None:
    feed = CoinbaseFeed()
    feed.on_frame(b'{"type":"snapshot","product_id":"BTC-USD","bids":[["1","1"]],"asks":[["9","1"]]}', 0)
    for n, taken in ((4093, True), (4094, False)):
        changes = [["buy", f"1.{i:05d}", "1"] for i in range(n)]
        frame = json.dumps({"type": "l2update", "product_id": "BTC-USD", "changes": changes}).encode()
        assert bool(feed.on_frame(frame, 0)) is taken
    assert dict(feed.stats.rejected) == {"bad_l2update": 1}
    advanced = AdvancedTradeFeed()
    for seq, kind in enumerate(("snapshot", "update", "snapshot"), 1):
        updates = [{"side": "bid", "price_level": f"1.{i:05d}", "new_quantity": "1"} for i in range(4094)]
        events = [{"type": kind, "product_id": "BTC-USD", "updates": updates}]
        frame = {"channel": "l2_data", "sequence_num": seq, "events": events}
        advanced.on_frame(json.dumps(frame).encode(), 0)
    assert dict(advanced.stats.rejected) == {"bad_l2_data": 1}
    assert advanced.stats.messages["L2Snapshot"] == 4  # a snapshot is split in parts: two of two
