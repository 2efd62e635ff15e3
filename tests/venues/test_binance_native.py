"""The compiled Binance feed against the Python one on hand-written frames that exercise how msgspec
decodes (escaped and repeated keys, surrogates, bad UTF-8 where msgspec skips and where it reads,
integer bounds, floats for ints, depth), every reject and ignore kind, and the book paths (buffer,
stale, resync, gap, crossed book, bookTicker cross-checks, disconnect). Bytes, stats, cross-checks and
wanted snapshots are compared after every call. The recordings and fuzzed frames are tests/native's."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from tickrelay import native
from tickrelay.errors import VenueMessageError
from tickrelay.protocol.stamper import Stamper
from tickrelay.venues.binance import BinanceFeed
from tickrelay.venues.core import FeedCore
from tickrelay.venues.native import NativeCore, make_core


pytestmark = pytest.mark.skipif(native.compiled is None, reason="the compiled core is not built")

T = b'{"stream":"btcusdt@trade","data":'
K = b'{"stream":"btcusdt@bookTicker","data":'
D = b'{"stream":"ethusdt@depth@100ms","data":'
TRADE = b'"s":"BTCUSDT","p":"1.5","q":"2","T":1,"m":true'
LEVEL = b'["100.00000000","1.00000000"]'

FRAMES = [
    T + b"{" + TRADE + b"}}",
    T + b'{"\\u0073":"BTCUSDT","p":"1","q":"1","T":2,"m":false,"p":"3.25"}}',  # escaped, repeated
    T + b'{"s":"BTC\\u0055SDT","p":"1\\u002e5","q":"2","T":3,"m":true}}',  # escapes in values
    T + b'{"s":"BTCUSDT","p":"1","q":"1","T":1,"m":true,"x":"\xff\xfe","\xff":1}}',  # skipped: not UTF-8
    T + b'{"s":"BTCUSDT","p":"\xff","q":"1","T":1,"m":true}}',  # read: must be UTF-8
    T + b'{"s":"BTCUSDT","p":"1","q":"1","T":1,"m":true,"x":"\\ud800"}}',  # lone surrogate
    T + b'{"s":"BTCUSDT","p":"1","q":"1","T":1,"m":true,"x":"\\ud83d\\ude00"}}',
    T + b'{"s":"BTCUSDT","p":"1","q":"1","T":1.0,"m":true}}',  # a float for an int
    T + b'{"s":"BTCUSDT","p":"1","q":"1","T":-1,"m":true}}',
    T + b'{"s":"BTCUSDT","p":"1","q":"1","T":9223372036855,"m":true}}',
    T + b'{"s":"BTCUSDT","p":"0","q":"1","T":1,"m":true}}',
    T + b'{"s":"BTCUSDT","p":"1.000000005","q":"0.000000015","T":1,"m":true}}',  # rounded
    T + b'{"s":"\xc3\x89THUSDT","p":"1","q":"1","T":1,"m":true}}',  # not ASCII
    T + b'{"s":"BNBUSD","p":"1","q":"1","T":1,"m":true}}',  # pairs
    b'{"stream":"btcusdt@trade","data":' + b"{" + TRADE + b"}" + b"}  \n",
    b'{"stream":"btc\\u0040kline_1m","data":{"s":"BTCUSDT"}}',  # the fast path reads the name raw
    b'{"stream":"btcusdt@kline_1m","data":{"s":"BTCUSDT"},"stream":"x@trade"}',
    b'{"data":{"s":"BTCUSDT"},"stream":"btcusdt@kline_1m"}',
    b'{"e":"aggTrade","s":"BTCUSDT","p":"2","q":"1","T":5,"m":false}',
    b'{"e":"depth","E":1,"s":"ETHUSDT","U":1,"u":2,"b":[],"a":[]}',
    b'{"u":7,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}',
    b'{"u":-7,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}',
    b'{"result":null,"id":"abc"}',
    b'{"result":null,"id":true}',
    b'{"error":null}',
    b'{"code":null,"msg":"x"}',
    b'{"code":1,"msg":5}',
    b'{"e":"","s":"x"}',
    b'{"e":"\\u00e9v\\u00e9nement"}',
    b'{"stream":null,"data":{"x":1},"u":1}',
    b'{"stream":"a@depth","data":null}',
    b'["a"]',
    b'{"x":' + b"[" * 255 + b"]" * 255 + b"}",
    b'{"x":' + b"[" * 256 + b"]" * 256 + b"}",
    b'{"x":"' + b"[" * 300 + b'"}',
    b"{" + b"[" * 300,
    K + b'{"u":1,"s":"BTCUSDT","b":"99999999999.00000000","B":"1","a":"2","A":"1"}}',
    K + b'{"u":1,"s":"BTCUSDT","b":"92233720368.54775807","B":"1","a":"2","A":"1"}}',
    D + b'{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":10,"u":12,"b":[' + LEVEL + b'],"a":[]}}',
    D + b'{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":10,"u":12,"b":[["1","\xff"]],"a":[]}}',
    D + b'{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":10,"u":12,"b":[["x","1"]],"a":{}}}',
    D + b'{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":10,"u":12,"b":[["1","1"],[1,2]],"a":[]}}',
    D + b'{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":10,"u":12,"b":[["0","1"]],"a":[]}}',
    D + b'{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":10,"u":12,"b":[],"a":[["1"]],"b":[["x","1"]]}}',
    D + b'{"E":1,"s":"ETHUSDT","U":9,"u":9,"a":[],"b":[' + b",".join([LEVEL] * 4094) + b"]}}",
]
BOOK = [  # (frame or ("snapshot", key, body) or ("disconnect",))
    D + b'{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":10,"u":12,"b":[["100.00000000","1.00000000"]],"a":[]}}',
    K + b'{"u":12,"s":"ETHUSDT","b":"100","B":"2","a":"101","A":"1"}}',
    K + b'{"u":14,"s":"ETHUSDT","b":"100","B":"1","a":"101","A":"9"}}',
    ("snapshot", "ETHUSDT", b"{}"),
    ("snapshot", "FOO", b'{"lastUpdateId":1,"bids":[],"asks":[]}'),
    ("snapshot", "ETHUSDT", b'{"lastUpdateId":1,"bids":[["1.5","2"]],"asks":[["x","1"]]}'),
    ("snapshot", "ETHUSDT", b'{"lastUpdateId":11,"bids":[["100.00000000","2"]],"asks":[["101.0","1"]]}'),
    K + b'{"u":12,"s":"ETHUSDT","b":"100.00000000","B":"1.00000000","a":"101","A":"1"}}',
    D + b'{"e":"depthUpdate","E":2,"s":"ETHUSDT","U":12,"u":13,"b":[],"a":[]}}',
    D + b'{"e":"depthUpdate","E":2,"s":"ETHUSDT","U":13,"u":14,"b":[],"a":[["101.00000000","9.00000000"]]}}',
    D + b'{"e":"depthUpdate","E":3,"s":"ETHUSDT","U":20,"u":21,"b":[],"a":[]}}',  # a gap
    D + b'{"e":"depthUpdate","E":3,"s":"ETHUSDT","U":22,"u":23,"b":[],"a":[]}}',
    ("snapshot", "ETHUSDT", b'{"lastUpdateId":5,"bids":[],"asks":[]}'),  # older than the buffer
    ("snapshot", "ETHUSDT", b'{"lastUpdateId":21,"bids":[["1.00000000","1.00000000"]],"asks":[]}'),
    D + b'{"e":"depthUpdate","E":4,"s":"ETHUSDT","U":24,"u":24,"b":[["2.0","1.0"]],"a":[["1.5","1"]]}}',
    K + b'{"u":30,"s":"LRCBTC","b":"1","B":"1","a":"2","A":"1"}}',
    b'{"e":"depthUpdate","E":1,"s":"LRCBTC","U":1,"u":1,"b":[],"a":[]}',
    ("disconnect",),
    ("snapshot", "LRCBTC", b'{"lastUpdateId":0,"bids":[],"asks":[]}'),
    ("snapshot", "ETHUSDT", b'{"lastUpdateId":30,"bids":[],"asks":[["5","1"]]}'),
    ("snapshot", "ETHUSDT", b'{"lastUpdateId":30,"bids":[],"asks":[["5","1"]]}'),
    D + b'{"e":"depthUpdate","E":5,"s":"ETHUSDT","U":31,"u":31,"b":[["4","1"]],"a":[]}}',
    ("snapshot", "ETHUSDT", b'{"lastUpdateId":40,"bids":[],"asks":[]}'),  # live: not needed
]


def pair() -> tuple[FeedCore, NativeCore]:
    feed = BinanceFeed(pairs={"BNBUSD": "BNB/USD"})
    native_core = make_core(BinanceFeed(pairs={"BNBUSD": "BNB/USD"}), Stamper(1, 3), "native")
    assert isinstance(native_core, NativeCore)
    return FeedCore(feed, Stamper(1, 3)), native_core


def state(core: FeedCore | NativeCore) -> tuple[object, ...]:
    extra = core.extra if isinstance(core, NativeCore) else core.feed.cross_checks  # type: ignore[attr-defined]
    return dataclasses.astuple(core.stats), dict(extra), core.wants_snapshot(), core.snapshot_wanted


def call(core: FeedCore | NativeCore, step: bytes | tuple[str, ...], n: int) -> object:
    try:
        if isinstance(step, bytes):
            return core.on_frame(step, n)
        if step[0] == "snapshot":
            return core.on_snapshot(step[1], step[2].encode() if isinstance(step[2], str) else step[2], n)  # type: ignore[misc]
        return core.on_disconnect(n)
    except VenueMessageError as exc:
        return ("VenueMessageError", exc.venue, exc.raw)


@pytest.mark.parametrize("steps", [FRAMES, BOOK], ids=["frames", "books"])
def test_both_cores_give_the_same_bytes_and_stats_after_every_call(
    steps: list[bytes | tuple[str, ...]],
) -> None:
    py, nat = pair()
    for n, step in enumerate(steps, 1):
        assert call(py, step, n) == call(nat, step, n), (n, step[:120])
        assert state(py) == state(nat), (n, step[:120])


@pytest.mark.parametrize("core", [0, 1], ids=["python", "native"])
def test_snapshot_wanted_says_whether_wants_snapshot_is_empty_after_every_call(core: int) -> None:
    feed = pair()[core]
    seen = [feed.snapshot_wanted]
    for n, step in enumerate(BOOK, 1):
        call(feed, step, n)
        assert feed.snapshot_wanted is bool(feed.wants_snapshot()), (n, step[:120])
        seen.append(feed.snapshot_wanted)
    changes = [b for a, b in itertools.pairwise(seen) if a != b]
    assert seen[0] is False
    assert changes.count(True) >= 3  # asked, given, asked again ...
    assert changes.count(False) >= 3


def test_the_native_feed_holds_its_core_weakly() -> None:
    core = pair()[1]
    native_feed = core._native
    del core  # the core goes (no cycle keeps it); its feed runs on and sets nothing
    assert native_feed.on_frame(BOOK[0], 1) == b""  # a diff to buffer: now it wants a snapshot
    assert native_feed.wants_snapshot() == ["ETHUSDT"]
