"""Order books rebuilt from a Protocol V2 stream, for last-value snapshots. Pure: no I/O.

:class:`BookKeeper` applies what a consumer of docs/protocol.md applies: InstrumentMeta (names),
L2Snapshot (BEGIN clears the book, END makes it usable; a part out of turn discards the partial book),
L2Delta (sets levels, only on a usable book), L2Reset and StateInvalidation (the book is unusable until
the next snapshot). Bridge-out keeps one to publish each instrument's current book; the tests use one as
the far-side consumer. Every book remembers the position of the last message that changed it, as
``(source, stream_id, counter)``: the late joiner (docs/nats.md) emits the snapshot right after that
message of the stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from tickrelay.protocol.codec import Header, split_sequence
from tickrelay.protocol.messages import (
    Event,
    InstrumentMeta,
    L2Delta,
    L2Reset,
    L2Snapshot,
    Reason,
    SnapshotFlags,
    StateInvalidation,
    split_snapshot,
)
from tickrelay.venues.book import OrderBook


InstrumentKey = tuple[int, int, int]  # venue_id, asset_type, asset_id
Position = tuple[int, int, int]  # source, stream_id, counter of a message


@dataclasses.dataclass
class BookState:
    book: OrderBook = dataclasses.field(default_factory=OrderBook)
    usable: bool = False  # a complete snapshot was applied and nothing invalidated it since
    next_part: int | None = None  # the split snapshot being received: the part expected next
    exchange_seq: int = 0
    exchange_ts_ns: int = 0
    reason: int = Reason.DISCONNECT  # why an unusable book is unusable
    position: Position = (0, 0, 0)  # the last message that changed this book


class BookKeeper:
    """The books and instrument names of one stream of messages."""

    def __init__(self) -> None:
        self.books: dict[InstrumentKey, BookState] = {}
        self.metas: dict[InstrumentKey, InstrumentMeta] = {}
        self.changed: set[InstrumentKey] = set()  # books changed since take_changed()
        self.new_metas: set[InstrumentKey] = set()  # metas new or changed since take_changed()

    def apply(self, header: Header, events: Iterable[Event]) -> None:
        """Apply one message's events (other event types are ignored)."""
        stream_id, counter = split_sequence(header.sequence)
        position = (header.source, stream_id, counter)
        for event in events:
            match event:
                case InstrumentMeta():
                    key = (event.venue_id, event.asset_type, event.asset_id)
                    if self.metas.get(key) != event:
                        self.metas[key] = event
                        self.new_metas.add(key)
                case L2Snapshot():
                    self._snapshot(event, position)
                case L2Delta():
                    state = self.books.get((event.venue_id, event.asset_type, event.asset_id))
                    if state is not None and state.usable:
                        state.book.update(event.bids, event.asks)
                        state.exchange_seq = event.last_seq or state.exchange_seq
                        state.exchange_ts_ns = event.exchange_ts_ns or state.exchange_ts_ns
                        self._changed(state, (event.venue_id, event.asset_type, event.asset_id), position)
                case L2Reset():
                    self._invalidate(
                        (event.venue_id, event.asset_type, event.asset_id), event.reason, position
                    )
                case StateInvalidation():
                    for key in list(self.books):
                        if key[0] == event.venue_id and (not event.asset_ids or key[2] in event.asset_ids):
                            self._invalidate(key, event.reason, position)

    def _snapshot(self, event: L2Snapshot, position: Position) -> None:
        key = (event.venue_id, event.asset_type, event.asset_id)
        state = self.books.setdefault(key, BookState())
        if event.flags & SnapshotFlags.BEGIN:
            state.book.clear()
            state.usable, state.next_part = False, 0
        if state.next_part != event.part:  # out of turn (or no BEGIN seen): wait for the next BEGIN
            state.next_part = None
            return
        state.book.update(event.bids, event.asks)
        state.next_part += 1
        if event.flags & SnapshotFlags.END:
            state.usable, state.next_part = True, None
            state.exchange_seq, state.exchange_ts_ns = event.exchange_seq, event.exchange_ts_ns
            self._changed(state, key, position)

    def _invalidate(self, key: InstrumentKey, reason: int, position: Position) -> None:
        state = self.books.setdefault(key, BookState())
        state.book.clear()
        state.usable, state.next_part, state.reason = False, None, reason
        self._changed(state, key, position)

    def _changed(self, state: BookState, key: InstrumentKey, position: Position) -> None:
        state.position = position
        self.changed.add(key)

    def take_changed(self) -> tuple[list[InstrumentKey], list[InstrumentKey]]:
        """(books changed, metas new or changed) since the last call, sorted."""
        books, metas = sorted(self.changed), sorted(self.new_metas)
        self.changed.clear()
        self.new_metas.clear()
        return books, metas

    def snapshot_events(self, key: InstrumentKey) -> list[Event]:
        """What a late joiner needs of one instrument: its InstrumentMeta (if known), then its book as
        L2Snapshot parts, or an L2Reset (with the reason) while the book is unusable."""
        events: list[Event] = [self.metas[key]] if key in self.metas else []
        state = self.books[key]
        if not state.usable:
            return [*events, L2Reset(key[2], key[0], key[1], state.reason)]
        bids, asks = state.book.levels()
        return events + list(split_snapshot(key[2], key[0], key[1], state.exchange_seq, state.exchange_ts_ns,
                                            bids, asks))  # fmt: skip
