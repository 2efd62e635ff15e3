"""Call sequences on which the two cores once differed, or both once went wrong, through both cores.

Each case is a :func:`~tests.native.differential.replay` literal (the cores compared after every call:
bytes, whole stats, venue counters, snapshot wants, requests, the stream counter), then the value
that was wrong is checked on both cores, so a bug the two share fails here too.
"""

from __future__ import annotations

from tests.native.corpus import APIS
from tests.native.differential import Call, Pair, needs, replay
from tickrelay.venues.feed import FeedStats


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
