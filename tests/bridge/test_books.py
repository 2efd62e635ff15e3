"""BookKeeper: the books a consumer of docs/protocol.md would hold, and the snapshots it hands out."""

from __future__ import annotations

from tickrelay.bridge.books import BookKeeper
from tickrelay.protocol.codec import Header, make_sequence
from tickrelay.protocol.messages import (
    Heartbeat,
    InstrumentMeta,
    L2Delta,
    L2Reset,
    L2Snapshot,
    Reason,
    SnapshotFlags,
    StateInvalidation,
    split_snapshot,
)


BEGIN_END = SnapshotFlags.BEGIN | SnapshotFlags.END
KEY = (100, 42)  # venue_id, asset_id
OTHER = (101, 43)
META = InstrumentMeta(42, 100, 51, 2, 8, "BTCUSDT", "BTC/USDT")


def header(counter: int, source: int = 1, stream_id: int = 7) -> Header:
    return Header(1, 1, source, 1, make_sequence(stream_id, counter), 0, 0, 0)


def snap(flags: int, part: int, bids: tuple[tuple[int, int], ...], asks: tuple[tuple[int, int], ...] = (),
         key: tuple[int, int] = KEY) -> L2Snapshot:  # fmt: skip
    return L2Snapshot(key[1], key[0], 51, flags, 900, 5, part, bids, asks)


def test_snapshot_then_deltas_then_the_snapshot_it_hands_out() -> None:
    k = BookKeeper()
    k.apply(header(1), [META, Heartbeat(1, 1)])
    k.apply(header(2), [snap(BEGIN_END, 0, ((100, 5), (99, 1)), ((101, 2),))])
    k.apply(header(3), [L2Delta(42, 100, 51, 0, 901, 905, 6, ((99, 0), (98, 4)), ((102, 3),))])
    k.apply(header(4), [L2Delta(42, 100, 51, 0, 0, 0, 0, (), ())])  # no ids, no time: keeps the last ones
    assert k.take_changed() == ([KEY], [KEY])
    assert k.take_changed() == ([], [])
    state = k.market.instruments[KEY]
    assert (state.book_ready, state.exchange_seq, state.exchange_ts_ns, k.positions[KEY]) == (
        True,
        905,
        6,
        (1, 7, 4),
    )
    assert k.snapshot_events(KEY) == [META, *split_snapshot(42, 100, 51, 905, 6, [(100, 5), (98, 4)],
                                                            [(101, 2), (102, 3)])]  # fmt: skip
    k.apply(header(5), [META])  # the same meta again is not news
    assert k.take_changed() == ([], [])


def test_split_snapshots_need_every_part_in_turn() -> None:
    k = BookKeeper()
    k.apply(header(1), [snap(SnapshotFlags.BEGIN, 0, ((100, 1),))])
    assert not k.market.instruments[KEY].book_ready
    k.apply(header(2), [snap(0, 1, ((99, 1),))])
    k.apply(header(3), [snap(SnapshotFlags.END, 2, (), ((101, 1),))])
    assert k.market.instruments[KEY].book_ready
    assert k.market.instruments[KEY].book.levels() == ([(100, 1), (99, 1)], [(101, 1)])
    k.apply(header(4), [snap(SnapshotFlags.BEGIN, 0, ((90, 1),))])
    k.apply(header(5), [snap(SnapshotFlags.END, 2, (), ((91, 1),))])  # part 1 never came
    k.apply(header(6), [snap(SnapshotFlags.END, 1, (), ((91, 1),))])  # and no BEGIN since
    assert not k.market.instruments[KEY].book_ready
    k.apply(header(7), [L2Delta(42, 100, 51, 0, 0, 0, 0, ((90, 2),), ())])  # ignored: no usable book
    assert k.snapshot_events(KEY) == [L2Reset(42, 100, 51, Reason.DISCONNECT)]
    assert k.positions[KEY] == (1, 7, 3)  # the last change that counted


def test_resets_and_invalidations_make_books_unusable() -> None:
    k = BookKeeper()
    k.apply(header(1), [snap(BEGIN_END, 0, ((100, 1),)), snap(BEGIN_END, 0, ((50, 1),), key=OTHER)])
    k.apply(header(2), [L2Reset(42, 100, 51, Reason.SEQUENCE_GAP)])
    assert k.snapshot_events(KEY) == [L2Reset(42, 100, 51, Reason.SEQUENCE_GAP)]
    assert k.market.instruments[OTHER].book_ready
    k.apply(header(3), [StateInvalidation(101, 51, Reason.STALE_FEED, (999,))])  # another instrument
    assert k.market.instruments[OTHER].book_ready
    k.apply(header(4), [StateInvalidation(101, 51, Reason.STALE_FEED, ())])  # every one of the venue
    assert k.snapshot_events(OTHER) == [L2Reset(43, 101, 51, Reason.STALE_FEED)]
    k.apply(header(5), [StateInvalidation(100, 51, Reason.CROSSED_BOOK, (42,))])
    assert k.market.instruments[KEY].invalid_reason == Reason.CROSSED_BOOK
