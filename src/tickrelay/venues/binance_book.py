"""Binance books, per symbol: diffs buffered until the REST snapshot, the straddle, continuity, the
bookTicker cross-check. Pure: no I/O. The mixin ``BinanceFeed`` keeps its books with.

One symbol's trouble never touches another: diffs are buffered until the snapshot is there; diffs
with ``u <= lastUpdateId`` are dropped; the first applied diff must straddle ``lastUpdateId + 1``
(``U <= lastUpdateId + 1 <= u``); afterwards every diff must have ``U == previous u + 1``. A gap (or a
crossed book) publishes StateInvalidation + L2Reset for that asset only, counts it, and the symbol
asks for a new snapshot. A snapshot older than the buffered diffs (the first diff starts after
``lastUpdateId + 1``) is discarded and asked for again (a resync, not a gap: nothing was published
from it).

Cross-check: when the book's last applied diff ends at update id ``u`` and a bookTicker carries the
same ``u``, the book's best bid/ask (price and size) must equal the ticker's; ``cross_checks`` counts
``bookticker_matched`` / ``bookticker_mismatched``.

Moved here from ``venues.binance`` unchanged: ``_Instrument`` and the states, ``_diff``,
``_cross_check_later``, ``_cross_check``, ``_check_tickers``, ``_drop_book``, ``_invalidate``,
``_publish_snapshot``.
"""

from __future__ import annotations

from tickrelay.protocol.messages import Event, L2Delta, Level, Quote, Reason, split_snapshot
from tickrelay.venues.binance_wire import VENUE
from tickrelay.venues.feed import SPOT, BookStats, FeedStats, Instrument, invalidate


BUFFER_LIMIT = 10_000  # diffs buffered per symbol while waiting for a snapshot; oldest dropped beyond
TICKER_LIMIT = 10_000  # bookTickers held per symbol for the cross-check until their diff arrives
DIFF_TOPS_KEPT = 64  # tops of the latest diffs, for bookTickers that arrive after their diff

_Diff = tuple[int, int, int, tuple[Level, ...], tuple[Level, ...]]  # U, u, E in ns, bids, asks (parsed)

_WAIT, _PENDING, _LIVE = 0, 1, 2  # book states: no snapshot / snapshot loaded, not yet straddled / live


class _Instrument(Instrument):
    """A symbol's book and its Binance continuity state (``live`` is unused: ``state`` says more)."""

    __slots__ = ("buffer", "depth_seen", "diff_tops", "last_u", "state", "tickers")

    def __init__(self, venue_symbol: str, symbol: str) -> None:
        super().__init__(venue_symbol, symbol)
        self.state = _WAIT
        self.last_u = 0  # lastUpdateId of the snapshot, then u of the last applied diff
        self.buffer: list[_Diff] = []
        self.depth_seen = False  # a diff or snapshot was seen: keep bookTickers for the cross-check
        self.tickers: dict[int, Quote] = {}  # bookTicker u -> Quote, until the diff ending at u
        self.diff_tops: dict[int, tuple[int, int, int, int]] = {}  # diff u -> top after it


class BinanceBooks:
    """The books of one Binance connection, by venue symbol, and the snapshots they need."""

    def __init__(self) -> None:
        self.stats = FeedStats()
        self.cross_checks = {"bookticker_matched": 0, "bookticker_mismatched": 0}
        self._instruments: dict[str, _Instrument] = {}
        self._wanted: dict[str, None] = {}  # symbols needing a REST snapshot, in order of asking

    def _cross_check_later(self, inst: _Instrument, u: int, quote: Quote) -> None:
        """Check a bookTicker against the book's top once the diff ending at its ``u`` is applied (now,
        if it already was)."""
        if inst.state == _LIVE and u <= inst.last_u:
            top = inst.diff_tops.get(u)
            if top is not None:
                self._cross_check(quote, top)
            return
        tickers = inst.tickers
        tickers[u] = quote
        if len(tickers) > TICKER_LIMIT:
            del tickers[next(iter(tickers))]

    def _cross_check(self, quote: Quote, top: tuple[int, int, int, int]) -> None:
        key = "bookticker_matched" if quote[1:5] == top else "bookticker_mismatched"
        self.cross_checks[key] += 1

    def _diff(self, inst: _Instrument, stats: BookStats, d: _Diff, out: list[Event]) -> str | None:
        """Run one (parsed) diff through the symbol's sync state; append what to publish, or return
        the kind of ignore (buffered / already in the book)."""
        inst.depth_seen = True
        state = inst.state
        if state == _WAIT:
            buffer = inst.buffer
            buffer.append(d)
            if len(buffer) > BUFFER_LIMIT:
                del buffer[0]
            self._wanted[inst.venue_symbol] = None
            return "depthUpdate:buffered"
        last = inst.last_u
        first, final, exchange_ts, bids, asks = d
        if final <= last:
            return "depthUpdate:stale"
        if state == _PENDING:
            if first > last + 1:  # the snapshot predates the oldest diff we have: fetch a newer one
                stats.resyncs += 1
                self._drop_book(inst)
                return self._diff(inst, stats, d, out)
            self._publish_snapshot(inst, out)  # on_snapshot announced the instrument
        elif first != last + 1:
            stats.gaps += 1
            self._invalidate(inst, stats, Reason.SEQUENCE_GAP, out)
            self._diff(inst, stats, d, out)  # it starts the new buffer
            return None
        book = inst.book
        book.update(bids, asks)
        inst.state = _LIVE
        inst.last_u = final
        stats.updates_applied += 1
        out.append(L2Delta(inst.asset_id, VENUE, SPOT, 0, first, final, exchange_ts, bids, asks))
        if book.is_crossed():
            stats.crossed += 1
            self._invalidate(inst, stats, Reason.CROSSED_BOOK, out)
            return None
        inst.render()  # the decimal text is only re-rendered when the top moves
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            top = (bid[0], bid[1], ask[0], ask[1])
            self._check_tickers(inst, final, top)
        return None

    def _check_tickers(self, inst: _Instrument, u: int, top: tuple[int, int, int, int]) -> None:
        tickers = inst.tickers
        quote = tickers.pop(u, None)
        if quote is not None:
            self._cross_check(quote, top)
        while tickers:  # older tickers can no longer meet their diff
            oldest = next(iter(tickers))
            if oldest > u:
                break
            del tickers[oldest]
        tops = inst.diff_tops
        tops[u] = top
        if len(tops) > DIFF_TOPS_KEPT:
            del tops[next(iter(tops))]

    def _drop_book(self, inst: _Instrument) -> None:
        """Forget the symbol's book; it waits for (and asks for) a new snapshot."""
        inst.drop()
        inst.state = _WAIT
        inst.diff_tops.clear()
        inst.tickers.clear()
        self._wanted[inst.venue_symbol] = None

    def _invalidate(self, inst: _Instrument, stats: BookStats, reason: Reason, out: list[Event]) -> None:
        stats.resyncs += 1
        invalidate(VENUE, inst, reason, out)
        self._drop_book(inst)

    def _publish_snapshot(self, inst: _Instrument, out: list[Event]) -> None:
        bids, asks = inst.book.levels()
        out.extend(split_snapshot(inst.asset_id, VENUE, SPOT, inst.last_u, 0, bids, asks))
