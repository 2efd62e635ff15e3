"""The last-value books bridge-out hands a late joiner. Pure: no I/O.

The books themselves are a consumer's (:class:`~tickrelay.consumers.market.MarketState`, the rules of
docs/protocol.md 2.4-2.8); :class:`BookKeeper` adds what the last-value stream needs: which books and
InstrumentMetas changed since it last looked, and the position ``(source, stream_id, counter)`` of the
last message that changed each book, so the late joiner (docs/nats.md) emits the snapshot right after
that message of the stream.
"""

from __future__ import annotations

from collections.abc import Iterable

from tickrelay.consumers.market import Key, MarketState
from tickrelay.protocol.codec import Header, split_sequence
from tickrelay.protocol.messages import (
    Event,
    InstrumentMeta,
    L2Delta,
    L2Reset,
    L2Snapshot,
    Reason,
    StateInvalidation,
    split_snapshot,
)


Position = tuple[int, int, int]  # source, stream_id, counter of a message


class BookKeeper:
    """The books and instrument names of one stream of messages."""

    def __init__(self) -> None:
        self.market = MarketState()
        self.metas: dict[Key, InstrumentMeta] = {}
        self.positions: dict[Key, Position] = {}  # the last message that changed each book
        self.changed: set[Key] = set()  # books changed since take_changed()
        self.new_metas: set[Key] = set()  # metas new or changed since take_changed()

    def apply(self, header: Header, events: Iterable[Event]) -> None:
        """Apply one message's events (other event types are ignored)."""
        stream_id, counter = split_sequence(header.sequence)
        for event in events:
            if isinstance(event, InstrumentMeta):
                key = (event.venue_id, event.asset_id)
                if self.metas.get(key) != event:
                    self.metas[key] = event
                    self.new_metas.add(key)
            touched = self.market.apply(header.timestamp_ns, event)
            if isinstance(event, L2Snapshot | L2Delta):  # a book changed if it is (now) usable
                touched = [i for i in touched if i.book_ready]
            elif isinstance(event, StateInvalidation):  # the books among the instruments it names
                touched = [i for i in touched if i.had_book]
            elif not isinstance(event, L2Reset):
                continue
            for inst in touched:
                key = (inst.venue_id, inst.asset_id)
                self.positions[key] = (header.source, stream_id, counter)
                self.changed.add(key)

    def take_changed(self) -> tuple[list[Key], list[Key]]:
        """(books changed, metas new or changed) since the last call, sorted."""
        books, metas = sorted(self.changed), sorted(self.new_metas)
        self.changed.clear()
        self.new_metas.clear()
        return books, metas

    def snapshot_events(self, key: Key) -> list[Event]:
        """What a late joiner needs of one instrument: its InstrumentMeta (if known), then its book as
        L2Snapshot parts, or an L2Reset (with the reason) while the book is unusable."""
        events: list[Event] = [self.metas[key]] if key in self.metas else []
        inst = self.market.instruments[key]
        if not inst.book_ready:
            reason = inst.invalid_reason or Reason.DISCONNECT
            return [*events, L2Reset(inst.asset_id, inst.venue_id, inst.asset_type, reason)]
        bids, asks = inst.book.levels()
        return events + list(split_snapshot(inst.asset_id, inst.venue_id, inst.asset_type, inst.exchange_seq,
                                            inst.exchange_ts_ns, bids, asks))  # fmt: skip
