"""A rejected frame changes nothing: property test per venue API over mutated real frames.

For each venue API a feed is brought to a live state with the start of a real recording (Advanced
Trade: frames built from the documented shapes, no capture exists). Hypothesis then takes a later
frame of the same recording, mutates it (a byte, a number made negative, zero or huge, a slice cut
out, a token put in) and feeds it to a copy of that feed. Whenever the frame is rejected, the feed's
whole state (books, checksum texts, sequence trackers, buffers, stats but the reject counter and its
samples) must be what it was. Memo caches of decimal texts are not state and are left out.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tickrelay.venues.binance import BinanceFeed
from tickrelay.venues.coinbase import CoinbaseFeed
from tickrelay.venues.coinbase_advanced import AdvancedTradeFeed
from tickrelay.venues.feed import VenueFeed
from tickrelay.venues.kraken import KrakenFeed


FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
HFT = FIXTURES / "binance/spot/hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT"
SKIP = {"_memo", "_fixed_cache", "_stream_kinds", "rejected", "samples"}  # caches; the reject counter


def freeze(x: Any) -> Any:
    """A comparable image of ``x``: plain values as they are, containers and objects field by field."""
    if x is None or isinstance(x, int | str | bytes | float):
        return x
    if isinstance(x, dict):
        return tuple((freeze(k), freeze(v)) for k, v in x.items() if k not in SKIP)
    if isinstance(x, list | tuple | set | frozenset):
        items = sorted(x, key=repr) if isinstance(x, set | frozenset) else x
        return (type(x).__name__, tuple(freeze(v) for v in items))
    names = [n for c in type(x).__mro__ for n in getattr(c, "__slots__", ())] + list(
        getattr(x, "__dict__", {})
    )
    return (
        type(x).__name__,
        tuple((n, freeze(getattr(x, n))) for n in names if n not in SKIP and hasattr(x, n)),
    )


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def binance() -> tuple[VenueFeed, list[bytes]]:
    frames = lines(Path(f"{HFT}.jsonl"))
    feed = BinanceFeed()
    for n, raw in enumerate(frames[:300]):
        feed.on_frame(raw, n)
        if n == 6:
            feed.on_snapshot("BTCUSDT", Path(f"{HFT}.rest-depth-snapshot.json").read_bytes(), n)
    return feed, frames[300:600]


def coinbase() -> tuple[VenueFeed, list[bytes]]:
    frames = lines(
        FIXTURES / "coinbase/exchange-ws-feed/cryptofeed_2021-04-17_level2-ticker-matches_10-products.jsonl"
    )
    feed = CoinbaseFeed()
    for n, raw in enumerate(frames[:2000]):
        feed.on_frame(raw, n)
    return feed, frames[2000:2300]


def kraken_v1() -> tuple[VenueFeed, list[bytes]]:
    frames = lines(FIXTURES / "kraken/v1/python-kraken-sdk_2023-08-30_book-10_XBT-USD.jsonl")
    frames += lines(FIXTURES / "kraken/v1/cryptofeed_2021-04-17_trade_10-pairs.jsonl")[5:]
    frames += lines(FIXTURES / "kraken/v1/cryptofeed_2021-04-17_ticker_10-pairs.jsonl")[5:]
    feed = KrakenFeed()
    for n, raw in enumerate(frames[:100]):
        feed.on_frame(raw, n)
    return feed, frames[100:]


def kraken_v2() -> tuple[VenueFeed, list[bytes]]:
    frames = lines(FIXTURES / "kraken/v2/python-kraken-sdk_2023-07-30_book-10_BTC-USD.jsonl")
    feed = KrakenFeed(version=2)
    instrument = {"pairs": [{"symbol": "BTC/USD", "price_precision": 1, "qty_precision": 8}]}
    feed.load_instruments(
        json.dumps({"channel": "instrument", "type": "snapshot", "data": instrument}).encode()
    )
    for n, raw in enumerate(frames[:50]):
        feed.on_frame(raw, n)
    return feed, frames[50:]


def advanced() -> tuple[VenueFeed, list[bytes]]:
    """Frames written from Coinbase's documented Advanced Trade shapes (no real capture exists)."""

    def frame(seq: int, channel: str, events: list[dict[str, object]]) -> bytes:
        head = {"channel": channel, "timestamp": "2023-02-09T20:32:50.714964855Z", "sequence_num": seq}
        return json.dumps({**head, "events": events}).encode()

    def level(side: str, price: str, size: str) -> dict[str, str]:
        return {
            "side": side,
            "event_time": "2023-02-09T20:32:50Z",
            "price_level": price,
            "new_quantity": size,
        }

    book = [level("bid", "100.5", "2"), level("offer", "101.25", "3")]
    frames = [frame(1, "l2_data", [{"type": "snapshot", "product_id": "ETH-USD", "updates": book}])]
    for seq in range(2, 40):
        price = f"{100 + seq % 7}.{seq}"
        trade = {
            "product_id": "ETH-USD",
            "price": price,
            "size": "0.5",
            "side": "SELL",
            "time": "2023-02-09T20:32:50Z",
        }
        tick = {"product_id": "ETH-USD", "best_bid": "100.5", "best_bid_quantity": "2", "best_ask": "101.25"}
        frames.append(
            [
                frame(
                    seq,
                    "l2_data",
                    [{"type": "update", "product_id": "ETH-USD", "updates": [level("bid", price, "1")]}],
                ),
                frame(seq, "market_trades", [{"type": "update", "trades": [trade]}]),
                frame(seq, "ticker", [{"type": "update", "tickers": [tick]}]),
            ][seq % 3]
        )
    feed = AdvancedTradeFeed()
    for n, raw in enumerate(frames[:20]):
        feed.on_frame(raw, n)
    return feed, frames[20:]


APIS: dict[str, Callable[[], tuple[VenueFeed, list[bytes]]]] = {
    "binance": binance,
    "coinbase": coinbase,
    "coinbase-advanced": advanced,
    "kraken-v1": kraken_v1,
    "kraken-v2": kraken_v2,
}
_LIVE: dict[str, tuple[VenueFeed, list[bytes]]] = {}
_NUMBER = re.compile(rb"\d+(?:\.\d+)?")
TOKENS = [
    b"-",
    b"0",
    b"-1",
    b'"x"',
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b"null",
    b"1e400",
    b"9" * 30,
    b'"-5"',
    b"[[[[]]]]",
]


@st.composite
def mutated(draw: st.DrawFn, frames: list[bytes]) -> bytes:
    raw = draw(st.sampled_from(frames))
    at = draw(st.integers(0, max(0, len(raw) - 1)))
    kind = draw(st.sampled_from(["byte", "number", "cut", "insert"]))
    if kind == "byte":
        return raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    if kind == "number":
        numbers = list(_NUMBER.finditer(raw))
        if not numbers:
            return raw
        m = draw(st.sampled_from(numbers))
        new = draw(st.sampled_from([b"-" + m.group(), b"0", b"0.0", b"1" * 80, b"-0.5", b"x"]))
        return raw[: m.start()] + new + raw[m.end() :]
    if kind == "cut":
        return raw[:at] + raw[at + draw(st.integers(1, 40)) :]
    return raw[:at] + draw(st.sampled_from(TOKENS)) + raw[at:]


@pytest.mark.parametrize("api", sorted(APIS))
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(data=st.data())
def test_a_rejected_frame_leaves_the_whole_feed_as_it_was(api: str, data: st.DataObject) -> None:
    if api not in _LIVE:
        _LIVE[api] = APIS[api]()
    live, frames = _LIVE[api]
    feed = copy.deepcopy(live)
    raw = data.draw(mutated(frames))
    before = freeze(feed)
    rejected = sum(feed.stats.rejected.values())
    frames_seen = feed.stats.frames
    out = feed.on_frame(raw, 10**18)
    if sum(feed.stats.rejected.values()) == rejected + 1:
        assert out == []
        feed.stats.frames = frames_seen  # the frame counter moves for every frame
        assert freeze(feed) == before, raw[:200]
