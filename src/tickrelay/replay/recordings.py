"""Recorded exchange sessions: frames and their receive times, read from the embedded package data.

A recording is one WebSocket session as the exchange sent it (one frame per line) plus, where the
recorder kept it, the local receive time of each frame. Pure apart from reading the package's files.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
from importlib import resources

from tickrelay.venues.kraken import seconds_text_to_ns


_DATA = "tickrelay.data"


@dataclasses.dataclass(frozen=True)
class Recording:
    name: str
    frames: tuple[bytes, ...]
    times_ns: tuple[int, ...]  # receive time per frame (a 1 ms grid when the recording has none)


def _read(path: str) -> bytes:
    return gzip.decompress(resources.files(_DATA).joinpath("recordings").joinpath(path + ".gz").read_bytes())


def load(stem: str, times: str | None) -> Recording:
    """``stem``: path under data/recordings without ``.jsonl``; ``times``: the sidecar's suffix."""
    frames = tuple(_read(stem + ".jsonl").splitlines())
    if times is None:
        stamps = tuple(i * 1_000_000 for i in range(len(frames)))
    else:
        lines = _read(stem + times).decode().split()
        stamps = tuple(int(t) if times.endswith("_ns.txt") else seconds_text_to_ns(t) for t in lines)
    if len(stamps) != len(frames):
        raise ValueError(f"{stem}: {len(frames)} frames but {len(stamps)} times")
    return Recording(stem.rsplit("/", 1)[-1], frames, stamps)


COINBASE = (
    "coinbase/exchange-ws-feed/cryptofeed_2021-04-17_level2-ticker-matches_10-products",
    ".recv_ts.txt",
)
BINANCE = (
    "binance/spot/hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT",
    ".recv_ts_ns.txt",
)
KRAKEN_V2_BOOK = ("kraken/v2/python-kraken-sdk_2023-07-30_book-10_BTC-USD", None)
# The v2 capture holds no `instrument` message; BTC/USD's precisions are the ones its checksums verify with
# (price 1 decimal, qty 8: see the shared fixtures' README), served as the documented message shape.
KRAKEN_V2_INSTRUMENTS = {"BTC/USD": (1, 8)}
BINANCE_SNAPSHOTS = {"BTCUSDT": BINANCE[0] + ".rest-depth-snapshot.json"}
KRAKEN = {
    "book": ("kraken/v1/python-kraken-sdk_2023-08-30_book-10_XBT-USD", None),
    "trade": ("kraken/v1/cryptofeed_2021-04-17_trade_10-pairs", ".recv_ts.txt"),
    "ticker": ("kraken/v1/cryptofeed_2021-04-17_ticker_10-pairs", ".recv_ts.txt"),
}


def binance_snapshot(symbol: str) -> bytes | None:
    """The recorded REST depth body for ``symbol``, or None."""
    stem = BINANCE_SNAPSHOTS.get(symbol.upper())
    return _read(stem) if stem else None


_PRODUCT = re.compile(rb'"product_id":"([^"]+)"')
_STREAM = re.compile(rb'^\{"stream":"([^"]+)"')


def coinbase_product(frame: bytes) -> str | None:
    m = _PRODUCT.search(frame)
    return m.group(1).decode() if m else None


def binance_stream(frame: bytes) -> str | None:
    m = _STREAM.match(frame)
    return m.group(1).decode() if m else None


def kraken_route(frame: bytes) -> tuple[str, str] | None:
    """(channel name, pair) of a v1 data array, None for event objects."""
    if not frame.startswith(b"["):
        return None
    msg = json.loads(frame)
    return str(msg[-2]), str(msg[-1])
