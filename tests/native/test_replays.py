"""Call sequences on which the two cores once differed, or both once went wrong, through both cores.

Each case is a :func:`~tests.native.differential.replay` literal (the cores compared after every call:
bytes, whole stats, venue counters, snapshot wants, requests, the stream counter), then the value
that was wrong is checked on both cores, so a bug the two share fails here too.
"""

from __future__ import annotations

import json
import zlib
from decimal import Decimal

from tests.native.corpus import APIS, FIXTURES
from tests.native.differential import Call, needs, replayed
from tests.native.kraken_books import v1_book, v1_checksum
from tickrelay.venues.feed import FeedStats


KRAKEN_V2_SNAPSHOT = (
    (FIXTURES / "kraken/v2/python-kraken-sdk_2023-07-30_book-10_BTC-USD.jsonl").read_bytes().splitlines()[0]
)


def both_stats(api: str, feed: str, calls: list[Call]) -> list[FeedStats]:
    """``replay`` the calls (the cores must agree after each), then the stats of each core."""
    pair = replayed(api, feed, calls)
    assert pair.frames == sum(call[0] == "frame" for call in calls)
    return [pair.python.stats, pair.native.stats]


@needs(APIS["binance"])
def test_binance_invalid_depth_after_rounded_bids() -> None:
    """The Python feed kept the rejected diff's rounded bid (its asks failed to decode) and counted it
    with the next frame taken; the compiled one never did."""
    calls: list[Call] = [
        ("frame", b'{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":10,"u":12,'
                  b'"b":[["1.000000005","1"]],"a":[["1"]]}'),
        ("frame", b'{"e":"trade","s":"ETHUSDT","p":"1","q":"1","T":1,"m":false}'),
        ("frame", b'{"stream":"ethusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"ETHUSDT",'
                  b'"U":10,"u":12,"b":[["2.000000005","1"]],"a":{}}}'),
        ("frame", b'{"e":"trade","s":"ETHUSDT","p":"1.000000005","q":"1","T":1,"m":false}'),
    ]  # fmt: skip
    for feed in ("normalize", "symbols-pairs"):
        for stats in both_stats("binance", feed, calls):
            assert (stats.rounded, dict(stats.rejected)) == (1, {"invalid_depth": 2})  # the last trade's


@needs(APIS["kraken_v2"])
def test_kraken_v2_update_with_a_book_before_its_snapshot_after_a_rounded_one() -> None:
    """Both cores counted the first book's rounded value although the frame was rejected."""
    calls: list[Call] = [
        ("frame", KRAKEN_V2_SNAPSHOT),
        ("frame", b'{"channel":"book","type":"update","data":['
                  b'{"symbol":"BTC/USD","bids":[{"price":29430.2,"qty":0.000000015}],"asks":[],"checksum":1},'
                  b'{"symbol":"ETH/USD","bids":[],"asks":[],"checksum":1}]}'),
        ("frame", b'{"channel":"heartbeat"}'),
    ]  # fmt: skip
    for feed in ("instruments-loaded", "no-precisions"):
        for stats in both_stats("kraken_v2", feed, calls):
            assert (stats.rounded, dict(stats.rejected)) == (0, {"book_update_before_snapshot": 1})


@needs(APIS["kraken_v1"])
def test_kraken_v1_a_channel_named_book_without_depth_is_a_bad_book() -> None:
    """Found by the slow fuzz: the Python feed looks "book" up as the book kind (then rejects it: no
    depth); the native core called it an unknown channel."""
    frame = b'[992,{"a":[["356.70000000","0.14260046","1618678157.155314"]],"c":"3891792110"},'
    frame += b'"book","XMR/USD"]'
    for stats in both_stats("kraken_v1", "normalize", [("frame", frame)]):
        assert dict(stats.rejected) == {"bad_book": 1}


@needs(APIS["kraken_v1"])
def test_kraken_v1_checksum_texts_of_numbers_written_otherwise() -> None:
    """The compiled core writes a level's checksum text from its price and size at the pair's places
    (Kraken writes every price of a pair with as many decimals, and every size), and keeps its own
    text only for a number written otherwise: other places, an exponent, non-zero digits past the 8th
    decimal (rounded in the book, whole in the text). Each update's checksum is Kraken's over the texts
    as sent, so every one verifies only if each kind of level kept its text. The updates replace own
    texts by plain ones of the same price, then, with none left (the last checksum's texts are reused
    only then), change a level in the top 10 (the others' texts are reused), change only deeper levels
    (the side's text is reused whole), remove the best ask and add a best bid (every text found one
    place off)."""
    plain = {f"{p}.00000": f"{p - 99}.00000000" for p in range(106, 116)}
    asks = {
        "100.00000": "1.00000000",
        "101.00000": "2.00000000",
        "102.5": "3.0",  # other places
        "1.035e2": "4.00000000",  # an exponent
        "104.00000": "0.123456789",  # rounded in the book
        "105.00000": "0.1000000000",  # ten places, exact
        **plain,
    }
    bids = {f"{p}.00000": f"{p - 79}.00000000" for p in range(80, 100)} | {"98.50000": "5e-1"}
    snapshot = {side: [[p, s, "1.5"] for p, s in book.items()] for side, book in (("as", asks), ("bs", bids))}
    calls: list[Call] = [("frame", v1_book(snapshot, "book-25"))]
    updates = [
        ("a", "100.00000", "1.50000000"),
        ("b", "80.00000", "7.00000000"),
        ("a", "103.50000", "4.00000000"),  # the exponent's price, now plain
        ("b", "98.50000", "0.50000000"),  # the exponent size, now plain
        ("a", "102.50000", "3.00000000"),  # at the pair's places now
        ("a", "104.00000", "0.12345678"),
        ("a", "105.00000", "0.10000000"),  # no own text left
        ("a", "103.00000", "2.00000000"),  # in the top 10
        ("b", "81.00000", "3.00000000"),  # below the top 10
        ("a", "100.00000", "0.00000000"),  # the best ask gone: the 11th comes in
        ("b", "99.50000", "1.00000000"),  # a new best bid
    ]
    for side, price, size in updates:
        book = asks if side == "a" else bids
        book.pop({"103.50000": "1.035e2", "102.50000": "102.5"}.get(price, price), None)
        if Decimal(size):
            book[price] = size
        update = {side: [[price, size, "1.6"]], "c": v1_checksum(asks.items(), bids.items())}
        calls.append(("frame", v1_book(update, "book-25")))
    for stats in both_stats("kraken_v1", "normalize", calls):
        book = stats.books["XBT/USD"]
        assert (book.checksums_verified, book.checksum_failures, stats.rounded) == (len(updates), 0, 1)


@needs(APIS["kraken_v1"])
def test_kraken_v1_a_level_sent_again_written_otherwise_keeps_its_new_text() -> None:
    """Found by a second reader: the compiled core copied the side's last checksum text whole when its
    top 10 prices and sizes were unchanged, although a level there now had a text of its own (the
    same value re-sent with more decimals, or a new snapshot writing it so), and failed a checksum
    Kraken and the Python feed verify."""
    snapshot = b'[336,{"as":[["100.0","1.00","1.5"]],"bs":[["99.0","1.00","1.5"]]},"book-10","XBT/USD"]'
    resent: list[Call] = [
        ("frame", snapshot),
        ("frame", b'[336,{"a":[["100.0","1.00","1.6"]],"c":"915821181"},"book-10","XBT/USD"]'),
        ("frame", b'[336,{"a":[["100.00","1.00","1.7"]],"c":"51777919"},"book-10","XBT/USD"]'),
    ]
    resnapshot: list[Call] = [
        ("frame", snapshot),
        ("frame", b'[336,{"a":[["101.0","0.00","2"]],"c":"915821181"},"book-10","XBT/USD"]'),
        ("frame", b'[336,{"as":[["100.00","1.00","1"]],"bs":[["99.0","1.00","1"]]},"book-10","XBT/USD"]'),
        ("frame", b'[336,{"a":[["101.0","0.00","2"]],"c":"51777919"},"book-10","XBT/USD"]'),
    ]
    for calls in (resent, resnapshot):
        for stats in both_stats("kraken_v1", "normalize", calls):
            book = stats.books["XBT/USD"]
            assert (book.checksums_verified, book.checksum_failures) == (2, 0)


def v2(channel: str, kind: str, data: object) -> Call:
    return ("frame", json.dumps({"channel": channel, "type": kind, "data": data}).encode())


def instrument(price_precision: int, qty_precision: int = 2) -> Call:
    pair = {"symbol": "BTC/USD", "price_precision": price_precision, "qty_precision": qty_precision}
    return v2("instrument", "update", {"assets": [], "pairs": [pair]})


def v2_book(asks: list[dict[str, float]], bids: list[dict[str, float]], checksum: int) -> dict[str, object]:
    return {"symbol": "BTC/USD", "bids": bids, "asks": asks, "checksum": checksum}


ASK, BID = {"price": 100.5, "qty": 1.25}, {"price": 99.5, "qty": 2.0}


@needs(APIS["kraken_v2"])
def test_kraken_v2_new_precisions_while_the_book_is_live() -> None:
    """The same, through v2: an instrument message changes the price precision, and the best ask
    sent again at the new one has the longer text."""
    ask, bid = {"price": 100.0, "qty": 1.0}, {"price": 99.0, "qty": 1.0}
    update = v2_book([ask], [], 51777919) | {"timestamp": "2023-07-30T15:29:58Z"}
    calls = [
        instrument(1),
        v2("book", "snapshot", [v2_book([ask], [bid], 915821181)]),
        instrument(2),
        v2("book", "update", [update]),
    ]
    for stats in both_stats("kraken_v2", "no-precisions", calls):
        book = stats.books["BTC/USD"]
        assert (book.checksums_verified, book.checksum_failures) == (2, 0)


@needs(APIS["kraken_v2"])
def test_kraken_v2_precisions_back_and_forth_and_a_snapshot_at_new_ones() -> None:
    """From a second reader's model of the compiled core's text reuse, two sequences the drawn sessions
    of test_kraken_texts.py reach rarely. The ask sent again at new precisions, then at the first ones
    again: its text each time at the precisions of its read, the bid's still at the first (a core that
    kept the last text's places after a write with a text of its own fails the third checksum). And a
    snapshot at new precisions, every level the same: every text at the new ones (a core that reused
    the last text across a change of places fails the second)."""
    at_1, at_2 = "1005" + "125", "10050" + "125"  # the ask, 100.5 x 1.25, at price precision 1 and 2
    bid_1, bid_2 = "995" + "200", "9950" + "200"

    def crc(*texts: str) -> int:
        return zlib.crc32("".join(texts).encode())

    back_and_forth = [
        instrument(1),
        v2("book", "snapshot", [v2_book([ASK], [BID], crc(at_1, bid_1))]),
        instrument(2),
        v2("book", "update", [v2_book([ASK], [], crc(at_2, bid_1))]),
        instrument(1),
        v2("book", "update", [v2_book([ASK], [], crc(at_1, bid_1))]),
    ]
    snapshot_again = [
        instrument(1),
        v2("book", "snapshot", [v2_book([ASK], [BID], crc(at_1, bid_1))]),
        instrument(2),
        v2("book", "snapshot", [v2_book([ASK], [BID], crc(at_2, bid_2))]),
    ]
    for calls, checked in ((back_and_forth, 3), (snapshot_again, 2)):
        for stats in both_stats("kraken_v2", "no-precisions", calls):
            book = stats.books["BTC/USD"]
            assert (book.checksums_verified, book.checksum_failures) == (checked, 0)


@needs(APIS["kraken_v2"])
def test_kraken_v2_two_books_of_one_pair_in_a_frame() -> None:
    """Both cores applied the second book to the book the first one's failed checksum had darkened
    (tests/venues/test_kraken.py has the Python side); now the frame is rejected whole."""
    alone = zlib.crc32(b"3100001000000")  # the second book's ask, 31000.0 x 0.01, as the whole book
    calls = [
        instrument(1),
        v2("book", "snapshot", [v2_book([ASK], [BID], zlib.crc32(b"1005125995200"))]),
        v2("book", "update", [
            v2_book([{"price": 101.0, "qty": 3.0}], [], 5),
            v2_book([{"price": 31000.0, "qty": 0.01}], [], alone),
        ]),
    ]  # fmt: skip
    for stats in both_stats("kraken_v2", "no-precisions", calls):
        book = stats.books["BTC/USD"]
        assert (book.checksums_verified, book.checksum_failures, book.updates_applied) == (1, 0, 0)
        assert dict(stats.rejected) == {"duplicate_book": 1}
