"""Regression tests for the defects of issue 13 (venue core v2) and the bad input of issue 15 (items 9-11).

Each failed on the code before its fix. Advanced Trade frames are built from the documented message
shapes (no real capture exists); the Kraken and Binance ones come from the shared recordings.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import example, given, settings, strategies as st

from tickrelay.errors import FixedPointError, VenueMessageError
from tickrelay.protocol.messages import L2Reset, Reason, StateInvalidation
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.venues import VENUES, feed as feed_mod
from tickrelay.venues.binance import BinanceFeed
from tickrelay.venues.coinbase import CoinbaseFeed
from tickrelay.venues.coinbase_advanced import AdvancedTradeFeed
from tickrelay.venues.feed import VenueFeed
from tickrelay.venues.kraken import KrakenFeed
from tickrelay.venues.numbers import DecimalCache


FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
BOOK_10 = FIXTURES / "kraken/v1/python-kraken-sdk_2023-08-30_book-10_XBT-USD.jsonl"
ETH = asset_id_for("ETH/USD")


def adv(seq: int, channel: str, events: list[dict[str, object]]) -> bytes:
    return json.dumps(
        {
            "channel": channel,
            "timestamp": "2023-02-09T20:32:50.714964855Z",
            "sequence_num": seq,
            "events": events,
        }
    ).encode()


def adv_book(seq: int, kind: str, price: str = "21921.73", size: str = "1") -> bytes:
    level = {"side": "bid", "event_time": "2023-02-09T20:32:50Z", "price_level": price, "new_quantity": size}
    return adv(seq, "l2_data", [{"type": kind, "product_id": "ETH-USD", "updates": [level]}])


def adv_trade(seq: int, price: str) -> bytes:
    trade = {
        "product_id": "ETH-USD",
        "price": price,
        "size": "1",
        "side": "BUY",
        "time": "2023-02-09T20:32:50Z",
    }
    return adv(seq, "market_trades", [{"type": "update", "trades": [trade]}])


def classified(feed: VenueFeed) -> int:
    return sum(feed.stats.ignored.values()) + sum(feed.stats.rejected.values())


# ---- issue 13 ---------------------------------------------------------------------------------------


def test_advanced_gap_in_a_frame_that_fails_to_parse_still_invalidates_the_books() -> None:
    """Defect 1: the books were dropped and a resubscribe asked for, but no StateInvalidation or L2Reset
    went out, so consumers kept trusting stale books. Now the bad frame changes nothing and the next
    frame shows the gap (the rejected frame's content is lost too)."""
    feed = AdvancedTradeFeed()
    feed.on_frame(adv_book(1, "snapshot"), 1)
    assert feed.on_frame(adv_trade(5, "x"), 2) == []  # a gap (1 -> 5) and an unreadable price
    assert dict(feed.stats.rejected) == {"bad_market_trades": 1}
    assert feed.stats.books["ETH-USD"].best_bid == "21921.73000000"  # nothing dropped silently
    assert feed.take_requests() == []
    out = feed.on_frame(adv(6, "heartbeats", [{"heartbeat_counter": 1}]), 3)
    assert out == [
        StateInvalidation(102, 51, Reason.SEQUENCE_GAP, (ETH,)),
        L2Reset(ETH, 102, 51, Reason.SEQUENCE_GAP),
    ]
    assert len(feed.take_requests()) == 2  # unsubscribe + subscribe level2


def test_kraken_checksum_texts_stay_in_step_after_a_malformed_update() -> None:
    """Defect 2: the first level of a bad update removed its checksum text before the second level
    failed; every later checksum then raised KeyError, counted as "malformed", and the pair went dark
    with no invalidation."""
    lines = BOOK_10.read_bytes().splitlines()
    snap_at = next(i for i, line in enumerate(lines) if line.startswith(b"[") and b'"as"' in line)
    feed = KrakenFeed()
    for n, raw in enumerate(lines[: snap_at + 1]):
        feed.on_frame(raw, n)
    best_ask = json.loads(lines[snap_at])[1]["as"][0][0]
    bad = json.dumps(
        [336, {"a": [[best_ask, "0.00000000", "1.0"], ["x", "1.0", "1.0"]], "c": "1"}, "book-10", "XBT/USD"]
    ).encode()
    assert feed.on_frame(bad, 0) == []
    for n, raw in enumerate(lines[snap_at + 1 :]):
        feed.on_frame(raw, n)
    assert dict(feed.stats.rejected) == {"bad_book": 1}
    stats = feed.stats.books["XBT/USD"]
    assert (stats.checksum_failures, stats.checksums_verified) == (0, 979)


def test_coinbase_exchange_crossed_book_is_resubscribed() -> None:
    """Defect 3: a crossed book was dropped but never resubscribed, so the product stayed dark and every
    later l2update was rejected until a reconnect."""
    feed = CoinbaseFeed(["BTC-USD", "ETH-USD"])
    feed.on_frame(
        b'{"type":"snapshot","product_id":"BTC-USD","bids":[["100.0","1"]],"asks":[["101.0","1"]]}', 0
    )
    assert feed.take_requests() == []
    feed.on_frame(b'{"type":"l2update","product_id":"BTC-USD","changes":[["buy","102.0","1"]]}', 1)
    assert [json.loads(m) for m in feed.take_requests()] == [
        {"type": kind, "product_ids": ["BTC-USD"], "channels": ["level2_batch"]}
        for kind in ("unsubscribe", "subscribe")
    ]
    assert feed.take_requests() == []  # each request handed out once


def test_advanced_update_before_its_snapshot_is_classified_once() -> None:
    """Defect 4: counted both rejected and ignored."""
    feed = AdvancedTradeFeed()
    assert feed.on_frame(adv_book(1, "update"), 1) == []
    assert classified(feed) == 1
    assert dict(feed.stats.ignored) == {"l2_data:before_snapshot": 1}


# ---- issue 15, bad input ------------------------------------------------------------------------------

DEEP = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000]
DEEP += [b'{"stream":"btcusdt@depth","data":' + DEEP[0] + b"}", b'{"channel":"book","data":' + DEEP[0] + b"}"]
DEEP += [b'[1,{"a":' + DEEP[0] + b'},"book-10","XBT/USD"]', b'[1,{"x":' + DEEP[0] + b'},"book-10","XBT/USD"]']


@pytest.mark.parametrize(
    "feed", [*(f() for f in VENUES.values()), AdvancedTradeFeed()], ids=lambda f: type(f).__name__
)
def test_deeply_nested_json_is_a_counted_reject(feed: VenueFeed) -> None:
    """Item 9: RecursionError escaped on_frame in every venue (and normalize printed a traceback)."""
    for raw in DEEP:
        assert feed.on_frame(raw, 0) == []
    assert feed.stats.frames == classified(feed) == len(DEEP)
    assert set(feed.stats.rejected) <= {"too_deep", "invalid_json", "unknown_shape", "bad_frame"}
    assert feed.stats.rejected["too_deep"] >= 3


def test_a_megabyte_digit_string_is_a_counted_reject() -> None:
    """Item 10: ValueError (Python's int-digits limit) escaped from fixed.py. The venues bound a decimal
    text before converting it (fixed.py itself now answers a text of any length exactly)."""
    with pytest.raises(FixedPointError, match="1000000 characters"):
        DecimalCache()("1" * 1_000_000)  # bounded before any conversion
    big = "1" * 1_000_000
    feed = BinanceFeed()
    raw = f'{{"e":"trade","s":"BTCUSDT","p":"{big}","q":"1","T":1,"m":true}}'.encode()
    assert feed.on_frame(raw, 0) == []
    kraken = KrakenFeed()
    assert kraken.on_frame(f'[1,[["{big}","1","1.5","b","l",""]],"trade","XBT/USD"]'.encode(), 0) == []
    assert (dict(feed.stats.rejected), dict(kraken.stats.rejected)) == ({"bad_number": 1}, {"bad_trade": 1})


@pytest.mark.parametrize(
    ("feed", "raw", "reason"),
    [
        (BinanceFeed(), b'{"u":1,"s":"BTCUSDT","b":"1.0","B":"1","a":"2.0","A":"-5"}', "bad_number"),
        (BinanceFeed(), b'{"e":"trade","s":"BTCUSDT","p":"0","q":"1","T":1,"m":true}', "bad_number"),
        (BinanceFeed(), b'{"e":"trade","s":"BTCUSDT","p":"1","q":"0.0","T":1,"m":true}', "bad_number"),
        (
            BinanceFeed(),
            b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["1.0","-1"]],"a":[]}',
            "bad_number",
        ),
        (
            BinanceFeed(),
            b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["0.00000000","1.00000000"]],"a":[]}',
            "bad_number",
        ),
        (
            CoinbaseFeed(),
            b'{"type":"ticker","product_id":"A-B","best_bid":"-1","best_ask":"2"}',
            "bad_ticker",
        ),
        (
            CoinbaseFeed(),
            b'{"type":"snapshot","product_id":"A-B","bids":[["0","1"]],"asks":[]}',
            "bad_snapshot",
        ),
        (
            CoinbaseFeed(),
            b'{"type":"match","trade_id":1,"side":"buy","size":"0","price":"1","product_id":"A-B","time":"2021-04-17T16:43:30Z"}',
            "bad_match",
        ),
        (KrakenFeed(), b'[1,[["1.0","-2","1.5","b","l",""]],"trade","XBT/USD"]', "bad_trade"),
        (KrakenFeed(), b'[7,{"as":[["-1.0","1.0","1.5"]],"bs":[]},"book-10","XBT/USD"]', "bad_book"),
        (AdvancedTradeFeed(), adv_trade(1, "-3"), "bad_market_trades"),
        (AdvancedTradeFeed(), adv_book(1, "snapshot", size="-1"), "bad_l2_data"),
    ],
)
def test_negative_amounts_and_zero_prices_are_counted_rejects(
    feed: VenueFeed, raw: bytes, reason: str
) -> None:
    """Item 11: a bookTicker with "A":"-5" became a Quote with ask size -5. Prices and traded sizes
    must be positive, book sizes positive or zero (remove the level), quote sizes zero or more."""
    assert feed.on_frame(raw, 0) == []
    assert dict(feed.stats.rejected) == {reason: 1}
    assert feed.stats.messages == {}


# ---- shapes the decoders take but the checks refuse (each a counted reject, the feed unchanged) -----

KRAKEN_SNAPSHOT = b'[7,{"as":[["10.0","1.0","1.5"]],"bs":[["9.0","1.0","1.5"]]},"book-10","XBT/USD"]'


@pytest.mark.parametrize(
    ("make", "setup", "raw", "reason"),
    [
        (
            BinanceFeed,
            [],
            b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["0","1"]],"a":[]}',
            "bad_number",
        ),
        (
            CoinbaseFeed,
            [],
            b'{"type":"match","trade_id":1,"side":"hold","size":"1","price":"1","product_id":"A-B",'
            b'"time":"2021-04-17T16:43:30Z"}',
            "bad_match",
        ),
        (AdvancedTradeFeed, [], b"not json", "invalid_json"),
        (AdvancedTradeFeed, [], b'{"channel":7}', "unknown"),
        (AdvancedTradeFeed, [], adv_trade(1, "1").replace(b'"BUY"', b'"HOLD"'), "bad_market_trades"),
        (AdvancedTradeFeed, [], adv_book(1, "snapshot").replace(b'"bid"', b'"middle"'), "bad_l2_data"),
        (KrakenFeed, [], b'[1,"trade"]', "bad_frame"),
        (KrakenFeed, [], b'[1,{},2,"XBT/USD"]', "bad_frame"),
        (KrakenFeed, [], b'[1,[["1","1","1.5","b"]],[["1","1","1.5","b"]],"trade","XBT/USD"]', "bad_trade"),
        (KrakenFeed, [], b'[1,[["1","1","1.5"]],"trade","XBT/USD"]', "bad_trade"),
        (KrakenFeed, [], b'[1,["1","1","1.5"],"spread","XBT/USD"]', "bad_spread"),
        (KrakenFeed, [], b'[1,{"as":[],"bs":[]},"book-x","XBT/USD"]', "bad_book"),
        (KrakenFeed, [], b'[1,{"as":[["1.0"]],"bs":[]},"book-10","XBT/USD"]', "bad_book"),
        (
            KrakenFeed,
            [KRAKEN_SNAPSHOT],
            b'[7,{"b":[["9.5","1.0","1.6"]],"c":"abc"},"book-10","XBT/USD"]',
            "bad_book",
        ),
        (KrakenFeed, [], b'{"channel":"book","type":"update","data":5}', "bad_book"),
        (KrakenFeed, [], b'{"event":"subscriptionStatus","status":"subscribed"}', "bad_event"),
        (
            KrakenFeed,
            [],
            b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"hold","price":1,"qty":1,'
            b'"timestamp":"2023-07-30T10:00:00.000000Z"}]}',
            "bad_trade",
        ),
    ],
)
def test_shapes_the_checks_refuse_are_counted_rejects(
    make: type[VenueFeed], setup: list[bytes], raw: bytes, reason: str
) -> None:
    feed = make()
    for n, frame in enumerate(setup):
        feed.on_frame(frame, n)
    assert feed.on_frame(raw, 9) == []
    assert dict(feed.stats.rejected) == {reason: 1}


def test_kraken_instrument_body_must_be_an_instrument_message() -> None:
    with pytest.raises(VenueMessageError, match="not a v2 instrument message"):
        KrakenFeed().load_instruments(b'{"channel":"heartbeat"}')


def test_kraken_v2_checksum_mismatch_resubscribes_over_v2() -> None:
    feed = KrakenFeed(version=2)
    instrument = {"pairs": [{"symbol": "BTC/USD", "price_precision": 1, "qty_precision": 8}]}
    feed.load_instruments(
        json.dumps({"channel": "instrument", "type": "snapshot", "data": instrument}).encode()
    )
    book = {"symbol": "BTC/USD", "bids": [{"price": 1.5, "qty": 2.0}], "asks": [], "checksum": 1}
    out = feed.on_frame(json.dumps({"channel": "book", "type": "snapshot", "data": [book]}).encode(), 0)
    assert out[-1] == L2Reset(asset_id_for("BTC/USD"), 101, 51, Reason.CHECKSUM_MISMATCH)
    assert [json.loads(m) for m in feed.take_requests()] == [
        {"method": kind, "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}}
        for kind in ("unsubscribe", "subscribe")
    ]


def test_advanced_snapshot_again_is_a_resync_and_disconnect_forgets_the_sequence() -> None:
    feed = AdvancedTradeFeed()
    assert feed.subscribe_messages() == []  # no products: nothing to subscribe
    feed.on_frame(adv_book(1, "snapshot"), 1)
    feed.on_frame(adv_book(2, "snapshot"), 2)
    assert feed.stats.books["ETH-USD"].resyncs == 1
    assert feed.on_disconnect(3)[1:] == [L2Reset(ETH, 102, 51, Reason.DISCONNECT)]
    assert feed.on_frame(adv_book(40, "snapshot"), 4)[-1].asset_id == ETH  # type: ignore[union-attr]  # no gap
    assert feed.stats.books["ETH-USD"].gaps == 0


def test_nesting_deeper_than_max_depth_is_too_deep_whatever_the_python_stack() -> None:
    """msgspec's RecursionError came at a depth that depends on how deep the caller's stack is, which
    the compiled core cannot mirror; the depth rule is now fixed (MAX_DEPTH, strings not counted)."""
    assert feed_mod.MAX_DEPTH == 256

    def nest(depth: int, inner: bytes = b"1") -> bytes:
        return b'{"stream":"x","x":' + b"[" * (depth - 1) + inner + b"]" * (depth - 1) + b"}"

    def at_stack_depth(n: int, raw: bytes) -> dict[str, int]:
        if n:
            return at_stack_depth(n - 1, raw)
        feed = BinanceFeed()
        feed.on_frame(raw, 0)
        return dict(feed.stats.rejected)

    assert at_stack_depth(0, nest(256)) == at_stack_depth(500, nest(256)) == {"unknown_shape": 1}
    assert at_stack_depth(0, nest(257)) == at_stack_depth(500, nest(257)) == {"too_deep": 1}
    quoted = b'"' + b"[" * 300 + b'\\"' + b"{" * 300 + b'"'  # brackets in a string (and an escaped quote)
    assert not feed_mod.too_deep(b'{"x":' + quoted + b"}")
    assert feed_mod.too_deep(b"{" + b"[]" * 300 + b"[" * 256)  # read whatever the validity
    assert not feed_mod.too_deep(b"]" * 300 + b"[" * 256)
    assert not feed_mod.too_deep(b"\\" + b"[]" * 300)  # a backslash outside a string counts for nothing


def too_deep_bytewise(raw: bytes) -> bool:
    """``too_deep`` as first written, byte by byte: the rule's reference."""
    depth, in_string, escaped = 0, False, False
    for char in raw:
        if in_string:
            if escaped:
                escaped = False
            elif char == 0x5C:  # backslash
                escaped = True
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in b"[{":
            depth += 1
            if depth > feed_mod.MAX_DEPTH:
                return True
        elif char in b"]}":
            depth -= 1
    return False


TOKENS = [b"[", b"]", b"{", b"}", b'"', b"\\", b"a", b"\n", b"(", b")", b'""', b")(", b"][", b'["1","2"]']


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.integers(245, 262), st.integers(0, 300)),  # mostly near MAX_DEPTH, where it matters
    st.lists(st.sampled_from(TOKENS), max_size=400),
    st.booleans(),
)
@example(256, [b'"', b"[", b'"'], False)  # an opener in a string: not counted
@example(250, [b'"', *[b"]"] * 9, b'"', *[b"["] * 7], False)  # closers in a string: not counted
@example(256, [b'"', b"\\", b'"', b"[", b'"', b"["], True)  # an escaped quote: the string goes on
def test_too_deep_reads_as_the_bytewise_rule(lead: int, tokens: list[bytes], escapes: bool) -> None:
    """The fast reading (strings cut out in C, ``)(`` dropped, a short sum) answers as the byte-by-byte
    reading does, with and without escapes."""
    raw = b"[" * lead + b"".join(tokens)
    if not escapes:
        raw = raw.replace(b"\\", b"")
    assert feed_mod.too_deep(raw) == too_deep_bytewise(raw)


def test_too_deep_stays_linear_in_an_unterminated_string_of_escaped_quotes() -> None:
    """Every quote in it could start a string that never ends: a pattern that searched from each one
    again would take quadratic time."""
    raw = b'"' + b'\\"' * 200_000 + b"[" * 300
    assert not too_deep_bytewise(raw)
    assert not feed_mod.too_deep(raw)
    escaped_then_deep = b'"\\""' + b"[" * 257
    assert too_deep_bytewise(escaped_then_deep)
    assert feed_mod.too_deep(escaped_then_deep)


# ---- a rejected frame's rounded values are not counted (issue 13, follow-up) --------------------------
# A value with more than 8 places is rounded and counted in ``stats.rounded`` once its frame is taken;
# the count waits in the feed while the frame is read. A reject path that did not drop it moved it
# into the stats of the next frame taken.

BINANCE_TRADE = b'{"e":"trade","s":"ETHUSDT","p":"1","q":"1","T":1,"m":false}'  # nothing to round


def test_binance_invalid_depth_does_not_count_its_rounded_values_later() -> None:
    """The bids are read (one value rounded), then the asks fail to decode (msgspec.DecodeError: the
    levels are decoded lazily): ``invalid_depth``, and the bid's rounding counted with the next frame."""
    feed = BinanceFeed()
    bad = b'{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":10,"u":12,"b":[["1.000000005","1"]],"a":[["1"]]}'
    assert feed.on_frame(bad, 1) == []
    assert feed.on_frame(BINANCE_TRADE, 2)[-1].price == 100_000_000  # type: ignore[union-attr]
    assert (feed.stats.frames, feed.stats.rounded) == (2, 0)
    assert dict(feed.stats.rejected) == {"invalid_depth": 1}
    assert dict(feed.stats.messages) == {"InstrumentMeta": 1, "Trade": 1}
    rounds = b'{"e":"trade","s":"ETHUSDT","p":"1.000000005","q":"1","T":1,"m":false}'
    feed.on_frame(rounds, 3)
    assert feed.stats.rounded == 1  # a taken frame's rounding still counts, once


KRAKEN_V2_BOOK = FIXTURES / "kraken/v2/python-kraken-sdk_2023-07-30_book-10_BTC-USD.jsonl"


def test_kraken_v2_update_for_a_book_without_snapshot_does_not_count_the_other_books_rounding() -> None:
    """A v2 book update carries several books: the first (live) was read, one value rounded, then the
    second (no snapshot yet) rejected the frame as ``book_update_before_snapshot``, and that path
    committed the first book's rounding as if the frame had been taken."""
    feed = KrakenFeed(version=2)
    snapshot = KRAKEN_V2_BOOK.read_bytes().splitlines()[0]
    assert feed.on_frame(snapshot, 1)
    assert feed.stats.rounded == 0
    bad = b'{"channel":"book","type":"update","data":[' + (
        b'{"symbol":"BTC/USD","bids":[{"price":29430.2,"qty":0.000000015}],"asks":[],"checksum":1},'
        b'{"symbol":"ETH/USD","bids":[],"asks":[],"checksum":1}]}'
    )
    before = copy.copy(feed.stats.books["BTC/USD"])
    assert feed.on_frame(bad, 2) == []
    assert dict(feed.stats.rejected) == {"book_update_before_snapshot": 1}
    assert feed.stats.rounded == 0
    assert feed.stats.books["BTC/USD"] == before
    assert feed.on_frame(b'{"channel":"heartbeat"}', 3) == []
    assert (feed.stats.frames, feed.stats.rounded) == (3, 0)
