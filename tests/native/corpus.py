"""The venue APIs both cores implement, and the real frames the differential tests feed them.

For each venue API (named as the native ``venues::build`` names it): the Python feeds to compare
(the defaults ``tickrelay normalize`` and a collector build, and other settings the feed's twin must
carry over), the recordings of ``../shared/fixtures`` it parses (Advanced Trade: the embedded
Exchange-feed session in the documented Advanced Trade shapes, as the replay exchange builds it, since
no capture exists) and the REST snapshot bodies recorded beside them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

from tickrelay.commands.normalize import parse_snapshot_option
from tickrelay.protocol.codec import COLLECTOR_SOURCES
from tickrelay.replay import coinbase_advanced, recordings
from tickrelay.venues.binance import BinanceFeed
from tickrelay.venues.coinbase import CoinbaseFeed
from tickrelay.venues.coinbase_advanced import AdvancedTradeFeed
from tickrelay.venues.feed import VenueFeed
from tickrelay.venues.kraken import KrakenFeed


FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
EMBEDDED = Path(__file__).resolve().parents[2] / "src" / "tickrelay" / "data" / "recordings"


@dataclasses.dataclass(frozen=True, repr=False)
class Recording:
    name: str
    frames: tuple[bytes, ...]
    snapshots: dict[str, tuple[bytes, ...]]  # REST depth bodies recorded beside it, by symbol
    head: int  # frames up to the last of the session's opening snapshots (0: none in the first 60)

    def __repr__(self) -> str:  # in hypothesis's report of a failing plan: the name, not every frame
        return f"<recording {self.name}>"


@dataclasses.dataclass(frozen=True)
class Api:
    name: str  # as the native build names it
    venue: str  # the collector's venue (its stream's source)
    feeds: dict[str, Callable[[], VenueFeed]]  # the settings compared, by a readable name
    recordings: Callable[[], list[Recording]]

    @property
    def source(self) -> int:
        return int(COLLECTOR_SOURCES[self.venue])


def _head(frames: tuple[bytes, ...]) -> int:
    marks = (b'"snapshot"', b'"as":', b'"lastUpdateId"')
    return max((i + 1 for i, raw in enumerate(frames[:60]) if any(m in raw for m in marks)), default=0)


def recording(path: Path, frames: tuple[bytes, ...] | None = None) -> Recording:
    """A fixture recording with the snapshot bodies recorded beside it."""
    stem = str(path.with_suffix(""))
    snapshots: dict[str, list[bytes]] = {}
    for name, spec in ((".rest-depth-snapshots.jsonl", "{}"), (".rest-depth-snapshot.json", "BTCUSDT={}")):
        if Path(stem + name).exists():
            for snap in parse_snapshot_option(spec.format(stem + name)):
                snapshots.setdefault(snap.symbol, []).append(snap.body)
    frames = frames if frames is not None else tuple(path.read_bytes().splitlines())
    return Recording(path.name, frames, {s: tuple(b) for s, b in snapshots.items()}, _head(frames))


def fixture_paths(*parts: str) -> list[Path]:
    """Every ``.jsonl`` recording under ``../shared/fixtures/<parts>`` (REST bodies left out)."""
    found = sorted(FIXTURES.joinpath(*parts).rglob("*.jsonl"))
    return [p for p in found if ".rest-depth-snapshots" not in p.name]


@cache
def _fixtures(*parts: str) -> list[Recording]:
    return [recording(p) for p in fixture_paths(*parts)]


@cache
def advanced_recordings() -> list[Recording]:
    """The embedded Exchange-feed session as Advanced Trade frames, numbered as the replay sends them."""
    built = coinbase_advanced.built(recordings.load(*recordings.COINBASE))
    frames = tuple(
        raw.replace(b'"sequence_num":0,', b'"sequence_num":%d,' % n, 1)
        for n, raw in enumerate(built.frames, 1)
    )
    return [Recording(built.name, frames, {}, _head(frames))]


KRAKEN_V2_INSTRUMENTS = json.dumps(
    {
        "channel": "instrument",
        "type": "snapshot",
        "data": {
            "assets": [],
            "pairs": [
                {"symbol": s, "price_precision": p, "qty_precision": q}
                for s, (p, q) in recordings.KRAKEN_V2_INSTRUMENTS.items()
            ],
        },
    },
    separators=(",", ":"),
).encode()


@cache
def kraken_v2_recordings() -> list[Recording]:
    """The v2 book capture, and the same behind the instrument message that gives its precisions."""
    (plain,) = _fixtures("kraken", "v2")
    frames = (KRAKEN_V2_INSTRUMENTS, *plain.frames)
    return [plain, Recording(plain.name + " (instrument first)", frames, {}, plain.head + 1)]


def _kraken_v2_precise() -> VenueFeed:
    feed = KrakenFeed(["BTC/USD"], version=2)
    feed.load_instruments(KRAKEN_V2_INSTRUMENTS)
    return feed


COINBASE_PRODUCTS = ["SKL-USD", "BAND-GBP", "YFI-BTC"]
APIS: dict[str, Api] = {
    api.name: api
    for api in (
        Api(
            "coinbase",
            "coinbase",
            {
                "normalize": CoinbaseFeed,
                "products-level2": lambda: CoinbaseFeed(COINBASE_PRODUCTS, level2_channel="level2"),
            },
            lambda: _fixtures("coinbase"),
        ),
        Api(
            "coinbase_advanced",
            "coinbase",
            {"default": AdvancedTradeFeed, "products": lambda: AdvancedTradeFeed(COINBASE_PRODUCTS)},
            advanced_recordings,
        ),
        Api(
            "binance",
            "binance",
            {
                "normalize": BinanceFeed,
                "symbols-pairs": lambda: BinanceFeed(["BTCUSDT", "NKNUSDT"], {"NKNUSDT": "NKN/USDT"}),
            },
            lambda: _fixtures("binance"),
        ),
        Api(
            "kraken_v1",
            "kraken",
            {
                "normalize": KrakenFeed,
                "depth-1000": lambda: KrakenFeed(["XBT/USD", "ETH/CHF"], depth=1000),
                "checksum-ignore": lambda: KrakenFeed(depth=25, checksum_policy="ignore"),
            },
            lambda: _fixtures("kraken", "v1"),
        ),
        Api(
            "kraken_v2",
            "kraken",
            {
                "instruments-loaded": _kraken_v2_precise,
                "no-precisions": lambda: KrakenFeed(version=2),
                "depth-25": lambda: KrakenFeed(version=2, depth=25),
            },
            kraken_v2_recordings,
        ),
    )
}
