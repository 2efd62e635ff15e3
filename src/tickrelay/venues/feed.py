"""What every venue adapter is: the ``VenueFeed`` contract and its statistics. Pure: no I/O.

A feed object holds one connection's parsing state (books, sequence trackers, instrument metadata).
The collector calls ``on_frame`` for every received WebSocket text frame with the receipt time, and
encodes each returned value as one Protocol V2 message (header.timestamp_ns = ts_recv_ns). Every frame
is classified exactly once: it produced messages, was ignored by design (``stats.ignored[kind]``), or
was rejected (``stats.rejected[reason]``, first sample kept). Nothing raises out of ``on_frame`` but
bugs.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar, Protocol

from tickrelay.protocol.fixed import format_fixed8, parse_fixed8_rounded
from tickrelay.protocol.messages import Event
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.venues.book import OrderBook


SAMPLE_BYTES = 300
CACHE_LIMIT = 100_000  # entries per memo (decimal texts, time prefixes)


@dataclasses.dataclass
class BookStats:
    updates_applied: int = 0
    checksums_verified: int = 0
    checksum_failures: int = 0
    gaps: int = 0
    resyncs: int = 0
    crossed: int = 0
    best_bid: str | None = None  # decimal text of the current best bid price
    best_ask: str | None = None

    def show_top(self, top: tuple[int | None, int | None]) -> None:
        """Render the book's best (bid, ask) prices as decimal text (None: that side is empty)."""
        self.best_bid = format_fixed8(top[0]) if top[0] is not None else None
        self.best_ask = format_fixed8(top[1]) if top[1] is not None else None


@dataclasses.dataclass
class FeedStats:
    frames: int = 0
    messages: Counter[str] = dataclasses.field(default_factory=Counter)  # by TLV name (Trade, Quote, ...)
    ignored: Counter[str] = dataclasses.field(default_factory=Counter)  # by frame kind
    rejected: Counter[str] = dataclasses.field(default_factory=Counter)  # by reason kind
    samples: dict[str, str] = dataclasses.field(default_factory=dict)  # first raw frame per rejected kind
    rounded: int = 0  # fixed-point values with more than 8 decimals, rounded half to even
    venue_errors: int = 0  # the exchange's own "error" frames (also in rejected)
    books: dict[str, BookStats] = dataclasses.field(default_factory=dict)  # by venue symbol

    def reject(self, kind: str, raw: bytes) -> None:
        self.rejected[kind] += 1
        self.samples.setdefault(kind, raw[:SAMPLE_BYTES].decode("utf-8", "replace"))


class Instrument:
    """One instrument of a feed: its key, its book, and what its BookStats show."""

    __slots__ = ("announced", "asset_id", "book", "live", "stats", "symbol", "top", "venue_symbol")

    def __init__(self, venue_symbol: str, symbol: str, depth: int | None = None) -> None:
        self.venue_symbol = venue_symbol
        self.symbol = symbol
        self.asset_id = asset_id_for(symbol)
        self.announced = False  # its InstrumentMeta was published
        self.book = OrderBook(depth)
        self.live = False  # a snapshot was applied and no trouble since
        self.stats: BookStats | None = None  # created with its first book message
        self.top: tuple[int | None, int | None] = (None, None)  # the best prices stats.best_* show

    def book_stats(self, feed: FeedStats) -> BookStats:
        if self.stats is None:
            self.stats = feed.books.setdefault(self.venue_symbol, BookStats())
        return self.stats

    def render(self) -> None:
        """Show the book's best prices in its stats (formatted only when the top moves)."""
        top = self.book.top_prices()
        if top != self.top and self.stats is not None:
            self.top = top
            self.stats.show_top(top)

    def drop(self) -> None:
        """Forget the book: it is dark until the next snapshot."""
        self.book.clear()
        self.live = False
        self.top = (None, None)
        if self.stats is not None:
            self.stats.best_bid = self.stats.best_ask = None


class VenueFeed(Protocol):
    """One venue connection's pure parsing state."""

    NAME: ClassVar[str]  # "coinbase" | "binance" | "kraken"
    VENUE_ID: ClassVar[int]
    stats: FeedStats

    def subscribe_messages(self) -> list[bytes]:
        """Frames to send after connecting (empty where the URL is the subscription)."""
        ...

    def on_frame(self, raw: bytes, ts_recv_ns: int) -> Sequence[Event]:
        """Parse one received frame into protocol values, in the order to publish them."""
        ...

    def on_disconnect(self, ts_ns: int) -> Sequence[Event]:
        """The connection is gone: drop every book and return the invalidations to publish."""
        ...


class DecimalCache:
    """Exchange decimal text -> fixed point, memoized (prices and sizes repeat). A text with more than
    8 decimals is rounded half to even and counted in ``stats.rounded`` every time (it is not memoized)."""

    __slots__ = ("_memo", "_stats")

    def __init__(self, stats: FeedStats) -> None:
        self._memo: dict[str, int] = {}
        self._stats = stats

    def __call__(self, text: str) -> int:
        value = self._memo.get(text)
        if value is None:
            value, rounded = parse_fixed8_rounded(text)
            if rounded:
                self._stats.rounded += 1
            elif len(self._memo) < CACHE_LIMIT:
                self._memo[text] = value
        return value
