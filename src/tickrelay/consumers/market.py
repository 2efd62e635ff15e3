"""What a consumer knows of the market, rebuilt from the relay's messages. Pure: no I/O, no clock.

:class:`MarketState` applies decoded events in stream order and keeps, per instrument
(venue_id, asset_id): its names (from InstrumentMeta), the book (L2Snapshot parts, then L2Delta), the
last Quote and Trade, the header timestamp of its last message, and whether it can be **trusted**.
The strategy, the risk monitor and the dashboard all read this one state.

Trust (docs/protocol.md 2.6-2.8): a StateInvalidation (other than RECOVERED) or an L2Reset makes the
named instruments (every instrument of the venue when none is named) untrusted and drops their books.
A sequence gap in a collector's stream is the same for a consumer: :func:`gap_invalidation` turns the
subscriber's Gap into a StateInvalidation(SEQUENCE_GAP) of every instrument of that venue.
An instrument with a book is trusted again after a complete snapshot (BEGIN .. END parts in order)
or StateInvalidation(RECOVERED); one that never had a book (quotes only) after its next Quote.
"""

from __future__ import annotations

from collections.abc import Iterator

from tickrelay.protocol.codec import VENUE_OF_SOURCE
from tickrelay.protocol.messages import (
    Event,
    InstrumentMeta,
    L2Delta,
    L2Reset,
    L2Snapshot,
    Level,
    Quote,
    Reason,
    SnapshotFlags,
    StateInvalidation,
    Trade,
)
from tickrelay.protocol.symbols import venue_name
from tickrelay.venues.book import OrderBook


Key = tuple[int, int]  # (venue_id, asset_id)


def gap_invalidation(source: int) -> StateInvalidation | None:
    """What a sequence gap in ``source``'s stream means to a consumer: every book of that venue is
    untrusted until its next snapshot (None for a source that is not a venue's collector)."""
    venue = VENUE_OF_SOURCE.get(source)
    return None if venue is None else StateInvalidation(venue, 51, Reason.SEQUENCE_GAP, ())


def is_invalidation(event: Event) -> bool:
    """Whether ``event`` counts as one invalidation: a StateInvalidation other than RECOVERED (the one
    definition behind every "invalidations" figure: up's summary, the dashboard)."""
    return isinstance(event, StateInvalidation) and event.reason != Reason.RECOVERED


class InstrumentState:
    __slots__ = (
        "asset_id",
        "asset_type",
        "book",
        "book_ready",
        "exchange_seq",
        "exchange_ts_ns",
        "had_book",
        "invalid_reason",
        "last_ts_ns",
        "next_part",
        "quote",
        "symbol",
        "trade",
        "venue_id",
        "venue_symbol",
    )

    def __init__(self, venue_id: int, asset_id: int, asset_type: int = 51) -> None:
        self.venue_id = venue_id
        self.asset_id = asset_id
        self.asset_type = asset_type
        self.symbol = ""  # normalized, from InstrumentMeta; "" until it arrives
        self.venue_symbol = ""
        self.book = OrderBook()
        self.book_ready = False  # a complete snapshot was applied and nothing invalidated it since
        self.had_book = False
        self.next_part: int | None = None  # the snapshot part expected next; None = wait for a BEGIN
        self.exchange_seq = 0  # the venue's update id the book is at (0: none)
        self.exchange_ts_ns = 0
        self.quote: Quote | None = None
        self.trade: Trade | None = None
        self.last_ts_ns = 0
        self.invalid_reason = 0  # 0 = trusted, else the Reason

    @property
    def label(self) -> str:
        """``kraken BTC/USD`` (the asset id in hex until its InstrumentMeta names it)."""
        return f"{venue_name(self.venue_id)} {self.symbol or hex(self.asset_id)}"

    @property
    def trusted(self) -> bool:
        return self.invalid_reason == 0

    def best_bid(self) -> Level | None:
        """The book's best bid while the book is ready, else the last Quote's (None if it has none)."""
        if self.book_ready:
            return self.book.best_bid()
        q = self.quote
        return (q.bid_price, q.bid_size) if q is not None and q.bid_price else None

    def best_ask(self) -> Level | None:
        if self.book_ready:
            return self.book.best_ask()
        q = self.quote
        return (q.ask_price, q.ask_size) if q is not None and q.ask_price else None

    def invalidate(self, reason: int) -> None:
        self.invalid_reason = reason
        self.book.clear()
        self.book_ready = False
        self.next_part = None


class MarketState:
    """Every instrument seen on one market-data stream (or several merged in order)."""

    def __init__(self) -> None:
        self.instruments: dict[Key, InstrumentState] = {}
        self.deltas_ignored = 0  # L2Delta for a book with no complete snapshot (after a reset: expected)
        self.parts_discarded = 0  # snapshot parts out of order (2.4: wait for the next BEGIN)

    def get(self, venue_id: int, asset_id: int, asset_type: int = 51) -> InstrumentState:
        key = (venue_id, asset_id)
        inst = self.instruments.get(key)
        if inst is None:
            inst = self.instruments[key] = InstrumentState(venue_id, asset_id, asset_type)
        return inst

    def label(self, venue_id: int, asset_id: int) -> str:
        inst = self.instruments.get((venue_id, asset_id))
        return inst.label if inst is not None else f"{venue_name(venue_id)} {hex(asset_id)}"

    def of_venue(self, venue_id: int) -> Iterator[InstrumentState]:
        return (i for i in self.instruments.values() if i.venue_id == venue_id)

    def apply(self, ts_ns: int, event: Event) -> list[InstrumentState]:
        """Apply one event carried by a message with header timestamp ``ts_ns``; returns the
        instruments whose state it changed (empty for events that name none)."""
        if isinstance(event, Trade):
            inst = self.get(event.venue_id, event.asset_id, event.asset_type)
            inst.trade = event
        elif isinstance(event, Quote):
            inst = self.get(event.venue_id, event.asset_id, event.asset_type)
            inst.quote = event
            if not inst.had_book:
                inst.invalid_reason = 0
        elif isinstance(event, L2Delta):
            inst = self.get(event.venue_id, event.asset_id, event.asset_type)
            if inst.book_ready:
                inst.book.update(event.bids, event.asks)
                inst.exchange_seq = event.last_seq or inst.exchange_seq
                inst.exchange_ts_ns = event.exchange_ts_ns or inst.exchange_ts_ns
            else:
                self.deltas_ignored += 1
        elif isinstance(event, L2Snapshot):
            inst = self.get(event.venue_id, event.asset_id, event.asset_type)
            self._snapshot(inst, event)
        elif isinstance(event, L2Reset):
            inst = self.get(event.venue_id, event.asset_id, event.asset_type)
            inst.invalidate(event.reason)
        elif isinstance(event, StateInvalidation):
            return self._invalidation(ts_ns, event)
        elif isinstance(event, InstrumentMeta):
            inst = self.get(event.venue_id, event.asset_id, event.asset_type)
            inst.symbol, inst.venue_symbol = event.symbol, event.venue_symbol
        else:
            return []
        inst.last_ts_ns = ts_ns
        return [inst]

    def _snapshot(self, inst: InstrumentState, s: L2Snapshot) -> None:
        inst.had_book = True
        if s.flags & SnapshotFlags.BEGIN:
            inst.book.clear()
            inst.book_ready = False
            inst.next_part = 0
        if inst.next_part != s.part:
            self.parts_discarded += 1
            inst.next_part = None
            return
        inst.book.update(s.bids, s.asks)
        inst.next_part = s.part + 1
        if s.flags & SnapshotFlags.END:
            inst.book_ready = True
            inst.next_part = None
            inst.invalid_reason = 0
            inst.exchange_seq, inst.exchange_ts_ns = s.exchange_seq, s.exchange_ts_ns

    def _invalidation(self, ts_ns: int, event: StateInvalidation) -> list[InstrumentState]:
        if event.asset_ids:
            named = [self.get(event.venue_id, a, event.asset_type) for a in event.asset_ids]
        else:
            named = list(self.of_venue(event.venue_id))
        for inst in named:
            if event.reason == Reason.RECOVERED:
                inst.invalid_reason = 0
            else:
                inst.invalidate(event.reason)
            inst.last_ts_ns = ts_ns
        return named
