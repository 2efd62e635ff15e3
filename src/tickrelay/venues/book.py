"""One instrument's L2 order book in fixed point. Pure: no I/O.

Prices and sizes are int64 x 10^8 (``protocol.fixed``). Each side maps price -> size, kept sorted so
the best level and the top N are cheap (``sortedcontainers``; bids are keyed by negated price so both
sides iterate best first). Setting a size of 0 removes the level. The book knows nothing of venue
sequence numbers or checksums: the venue module does that and calls in here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sortedcontainers import SortedDict

from tickrelay.protocol.messages import Level


BookSide = Literal["bid", "ask"]


class OrderBook:
    """Price levels of one instrument; ``depth`` (if set) is the number of levels ``truncate`` keeps."""

    __slots__ = ("_asks", "_bids", "depth")

    def __init__(self, depth: int | None = None) -> None:
        self.depth = depth
        self._bids = SortedDict()  # -price -> size
        self._asks = SortedDict()  # price -> size

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()

    def set(self, side: BookSide, price: int, size: int) -> None:
        """Set one level; size 0 removes it (removing an absent level is not an error)."""
        levels, key = (self._bids, -price) if side == "bid" else (self._asks, price)
        if size:
            levels[key] = size
        else:
            levels.pop(key, None)

    def update(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply a batch of absolute level sizes per side (size 0 removes the level)."""
        for levels, sign, changes in ((self._bids, -1, bids), (self._asks, 1, asks)):
            for price, size in changes:
                if size:
                    levels[sign * price] = size
                else:
                    levels.pop(sign * price, None)

    def load(self, bids: list[Level] | tuple[Level, ...], asks: list[Level] | tuple[Level, ...]) -> None:
        """Replace the whole book (a snapshot); zero-size levels are skipped."""
        self._bids = SortedDict({-p: s for p, s in bids if s})
        self._asks = SortedDict({p: s for p, s in asks if s})

    def best_bid(self) -> Level | None:
        if not self._bids:
            return None
        key, size = self._bids.peekitem(0)
        return -key, size

    def best_ask(self) -> Level | None:
        if not self._asks:
            return None
        key, size = self._asks.peekitem(0)
        return key, size

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` levels of each side, best first."""
        bids = [(-k, self._bids[k]) for k in self._bids.islice(0, n)]
        asks = [(k, self._asks[k]) for k in self._asks.islice(0, n)]
        return bids, asks

    def levels(self) -> tuple[list[Level], list[Level]]:
        """Every level of each side, best first."""
        return [(-k, v) for k, v in self._bids.items()], [(k, v) for k, v in self._asks.items()]

    def truncate(self, depth: int | None = None) -> None:
        """Drop levels beyond ``depth`` (default: the book's own) on each side."""
        keep = self.depth if depth is None else depth
        if keep is None:
            return
        for levels in (self._bids, self._asks):
            while len(levels) > keep:
                levels.popitem(-1)

    def is_crossed(self) -> bool:
        """Best bid at or above best ask."""
        return bool(self._bids and self._asks) and -self._bids.peekitem(0)[0] >= self._asks.peekitem(0)[0]

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    @property
    def bid_count(self) -> int:
        return len(self._bids)

    @property
    def ask_count(self) -> int:
        return len(self._asks)
