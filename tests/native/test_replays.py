"""Call sequences on which the two cores once differed, or both once went wrong, through both cores.

Each case is a :func:`~tests.native.differential.replay` literal (the cores compared after every call:
bytes, whole stats, venue counters, snapshot wants, requests, the stream counter), then the value
that was wrong is checked on both cores, so a bug the two share fails here too.
"""

from __future__ import annotations

from tests.native.corpus import APIS, FIXTURES
from tests.native.differential import Call, Pair, needs, replay
from tickrelay.venues.feed import FeedStats


KRAKEN_V2_SNAPSHOT = (
    (FIXTURES / "kraken/v2/python-kraken-sdk_2023-07-30_book-10_BTC-USD.jsonl").read_bytes().splitlines()[0]
)


def both_stats(api: str, feed: str, calls: list[Call]) -> list[FeedStats]:
    """``replay`` the calls (the cores must agree after each), then the stats of each core."""
    assert replay(api, feed, calls) == sum(call[0] == "frame" for call in calls)
    pair = Pair(APIS[api], feed)
    for call in calls:
        pair.call(call)
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
