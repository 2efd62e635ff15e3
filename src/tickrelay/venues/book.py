"""One instrument's L2 order book in fixed point. Pure: no I/O.

Prices and sizes are int64 x 10^8 (``protocol.fixed``). Each side is a dict price -> size plus a
plain list of its keys kept sorted with ``bisect`` (C), arranged so the *best* level is the *last*
element: bids keyed by price ascending, asks by negated price ascending. Exchange activity is
concentrated near the top of the book, so inserts and removals there move few list items, the best
level is ``keys[-1]`` and the top N is a slice. Setting a size of 0 removes the level. The book knows
nothing of venue sequence numbers or checksums: the venue module does that and calls in here.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence

from tickrelay.protocol.messages import Level


def _apply(levels: dict[int, int], keys: list[int], sign: int, changes: Iterable[Level]) -> None:
    for price, size in changes:
        if size:
            if price not in levels:
                insort(keys, sign * price)
            levels[price] = size
        elif price in levels:
            del levels[price]
            del keys[bisect_left(keys, sign * price)]


class OrderBook:
    """Price levels of one instrument; ``depth`` (if set) is the number of levels ``truncate`` keeps."""

    __slots__ = ("_ask_keys", "_asks", "_bid_keys", "_bids", "depth")

    def __init__(self, depth: int | None = None) -> None:
        self.depth = depth
        self._bids: dict[int, int] = {}  # price -> size
        self._asks: dict[int, int] = {}
        self._bid_keys: list[int] = []  # prices ascending: best bid last
        self._ask_keys: list[int] = []  # -prices ascending: best (lowest) ask last

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._bid_keys.clear()
        self._ask_keys.clear()

    def update(self, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        """Apply a batch of absolute level sizes per side (size 0 removes the level)."""
        if bids:
            _apply(self._bids, self._bid_keys, 1, bids)
        if asks:
            _apply(self._asks, self._ask_keys, -1, asks)

    def load(self, bids: list[Level] | tuple[Level, ...], asks: list[Level] | tuple[Level, ...]) -> None:
        """Replace the whole book (a snapshot); zero-size levels are skipped."""
        self._bids = {p: s for p, s in bids if s}
        self._asks = {p: s for p, s in asks if s}
        self._bid_keys = sorted(self._bids)
        self._ask_keys = sorted(-p for p in self._asks)

    def best_bid(self) -> Level | None:
        if not self._bid_keys:
            return None
        price = self._bid_keys[-1]
        return price, self._bids[price]

    def best_ask(self) -> Level | None:
        if not self._ask_keys:
            return None
        price = -self._ask_keys[-1]
        return price, self._asks[price]

    def top_prices(self) -> tuple[int | None, int | None]:
        """(best bid price, best ask price); None for an empty side."""
        bids, asks = self._bid_keys, self._ask_keys
        return (bids[-1] if bids else None, -asks[-1] if asks else None)

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` levels of each side, best first."""
        if n <= 0:
            return [], []
        bids, asks = self._bids, self._asks
        return (
            [(p, bids[p]) for p in reversed(self._bid_keys[-n:])],
            [(-k, asks[-k]) for k in reversed(self._ask_keys[-n:])],
        )

    def levels(self) -> tuple[list[Level], list[Level]]:
        """Every level of each side, best first."""
        bids, asks = self._bids, self._asks
        return [(p, bids[p]) for p in reversed(self._bid_keys)], [
            (-k, asks[-k]) for k in reversed(self._ask_keys)
        ]

    def truncate(self, depth: int | None = None) -> tuple[list[int], list[int]]:
        """Drop levels beyond ``depth`` (default: the book's own) on each side; returns the prices
        dropped (bids, asks), so a publisher can tell its consumers to drop them too."""
        keep = self.depth if depth is None else depth
        dropped: tuple[list[int], list[int]] = ([], [])
        if keep is None:
            return dropped
        for out, levels, keys, sign in (
            (dropped[0], self._bids, self._bid_keys, 1),
            (dropped[1], self._asks, self._ask_keys, -1),
        ):
            excess = len(keys) - keep
            if excess > 0:
                for key in keys[:excess]:
                    del levels[sign * key]
                    out.append(sign * key)
                del keys[:excess]
        return dropped

    def is_crossed(self) -> bool:
        """Best bid at or above best ask."""
        return bool(self._bid_keys and self._ask_keys) and self._bid_keys[-1] >= -self._ask_keys[-1]

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    @property
    def bid_count(self) -> int:
        return len(self._bids)

    @property
    def ask_count(self) -> int:
        return len(self._asks)
