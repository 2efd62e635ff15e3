"""Recorded exchange sessions: frames and their receive times, read from the embedded package data.

A recording is one WebSocket session as the exchange sent it (one frame per line) plus, where the
recorder kept it, the local receive time of each frame. Pure apart from reading the package's files.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import json
import re
from importlib import resources

from tickrelay.venues.numbers import seconds_text_to_ns


_DATA = "tickrelay.data"


@dataclasses.dataclass(frozen=True)
class Recording:
    name: str
    frames: tuple[bytes, ...]
    times_ns: tuple[int, ...]  # receive time per frame, else its exchange time (exchange_times_ns)


def _read(path: str) -> bytes:
    return gzip.decompress(resources.files(_DATA).joinpath("recordings").joinpath(path + ".gz").read_bytes())


def load(stem: str, times: str | None) -> Recording:
    """``stem``: path under data/recordings without ``.jsonl``; ``times``: the sidecar's suffix."""
    frames = tuple(_read(stem + ".jsonl").splitlines())
    if times is None:
        stamps = exchange_times_ns(frames)
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
    "trade": ("kraken/v1/cryptofeed_2021-04-17_trade_10-pairs", ".recv_ts.txt"),
    "ticker": ("kraken/v1/cryptofeed_2021-04-17_ticker_10-pairs", ".recv_ts.txt"),
}
KRAKEN_PAIRS_V1 = (  # every pair of the v1 recordings
    "XBT/USD", "WAVES/EUR", "XMR/USD", "KSM/XBT", "GRT/ETH", "SC/EUR",
    "ETH/CHF", "OCEAN/XBT", "OMG/USD", "XBT/CHF", "ADA/XBT",
)  # fmt: skip
KRAKEN_BOOKS = {  # by subscribed depth
    10: ("kraken/v1/python-kraken-sdk_2023-08-30_book-10_XBT-USD", None),
    1000: ("kraken/v1/cryptofeed_2021-04-17_book-1000_10-pairs", ".recv_ts.txt"),
}


def binance_snapshot(symbol: str) -> bytes | None:
    """The recorded REST depth body for ``symbol``, or None."""
    stem = BINANCE_SNAPSHOTS.get(symbol.upper())
    return _read(stem) if stem else None


_KRAKEN_LEVEL_TS = re.compile(rb'\["[0-9.]+","[0-9.]+","([0-9]+\.[0-9]+)"')  # v1 book levels, trades
_V2_TS = re.compile(rb'"timestamp":"([^"]+)"')
_BINANCE_E = re.compile(rb'"E":([0-9]+)')


def exchange_times_ns(frames: tuple[bytes, ...]) -> tuple[int, ...]:
    """Each frame's time by the exchange's own clock, for recordings without receive times: the latest
    Kraken v1 level or trade timestamp in it, a Kraken v2 ``timestamp``, or Binance's event time ``E``.
    A frame without one (an event, a heartbeat, a snapshot) takes the time of the frame before it
    (the first ones, the first time found); the times never go back. None found: a 1 ms grid."""
    found: list[int | None] = []
    for frame in frames:
        v1 = _KRAKEN_LEVEL_TS.findall(frame)
        if v1:
            found.append(max(seconds_text_to_ns(t.decode()) for t in v1))
        elif m := _V2_TS.search(frame):
            at = datetime.datetime.fromisoformat(m.group(1).decode().replace("Z", "+00:00"))
            found.append(int(at.timestamp()) * 10**9 + at.microsecond * 1000)
        elif m := _BINANCE_E.search(frame):
            found.append(int(m.group(1)) * 1_000_000)
        else:
            found.append(None)
    known = [t for t in found if t is not None]
    if not known:
        return tuple(i * 1_000_000 for i in range(len(frames)))
    out, last = [], known[0]
    for t in found:
        last = max(last, t) if t is not None else last
        out.append(last)
    return tuple(out)


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
