"""Batching and merging back: per-subject batches of one flush come out with every stream in order."""

from __future__ import annotations

import pytest

from tests.relay.conftest import message
from tickrelay.bridge.batch import Batcher, FlushMerger, parse_tag, split_messages
from tickrelay.errors import BadDomain, ProtocolError
from tickrelay.protocol.codec import make_sequence, restamp


def stamped(i: int, counter: int, stream_id: int = 9, source: int = 64) -> bytes:
    return restamp(message(i), source, make_sequence(stream_id, counter))


def test_a_flush_is_one_batch_per_subject_and_its_last_part_says_end() -> None:
    b = Batcher("ab12")
    msgs = [stamped(i, i + 1) for i in range(6)]
    for i, m in enumerate(msgs):
        assert b.add("s.odd" if i % 2 else "s.even", m) == []
    assert b.pending_bytes == sum(map(len, msgs))
    parts = b.take()
    assert [(p.subject, p.payload, p.tag) for p in parts] == [
        ("s.even", msgs[0] + msgs[2] + msgs[4], "ab12.1.0"),
        ("s.odd", msgs[1] + msgs[3] + msgs[5], "ab12.1.1"),
    ]
    assert (b.flush, b.pending_bytes, b.messages, b.take()) == (2, 0, 6, [])


def test_batches_are_cut_by_size_and_flushes_by_pending_bytes() -> None:
    m = stamped(0, 1)  # 74 bytes
    b = Batcher("x", max_batch_bytes=200, max_flush_bytes=1000)
    assert b.add("s", m) == []
    assert b.add("s", m) == []
    cut = b.add("s", m)  # 222 > 200: the first two go now, not the end of the flush
    assert [(p.payload, p.tag) for p in cut] == [(m * 2, "x.1.0")]
    big = Batcher("y", max_batch_bytes=50, max_flush_bytes=100)
    assert big.add("s", m) == []  # a message larger than a batch goes alone
    out = big.add("t", m)  # 148 pending >= 100: the whole flush
    assert [(p.subject, p.tag) for p in out] == [("s", "y.1.0"), ("t", "y.1.1")]


def test_merger_restores_each_streams_order_across_the_batches_of_a_flush() -> None:
    b = Batcher("ab")
    msgs = [stamped(i, i + 1) for i in range(9)] + [stamped(i, i + 1, stream_id=4) for i in range(3)]
    for i, m in enumerate(msgs):
        b.add(f"s{i % 3}", m)
    merger = FlushMerger(domain=1)
    parts = b.take()
    out = []
    for p in parts:
        out += merger.feed(p.tag, p.payload)
    assert [m.raw for m in out] == msgs[9:] + msgs[:9]  # stream 4, then stream 9, each in order
    assert (merger.flushes, merger.incomplete, merger.pending) == (1, 0, False)


def test_merger_completes_a_flush_on_a_later_one_on_expiry_and_passes_untagged_payloads() -> None:
    merger = FlushMerger()
    a, b, c = stamped(0, 1), stamped(1, 2), stamped(2, 3)
    assert merger.feed("i.1.0", b) == []
    assert merger.pending
    assert [m.raw for m in merger.feed("i.1.0", a)] == []
    assert [m.raw for m in merger.feed("i.2.0", c)] == [a, b]  # flush 1 never said end: flush 2 ends it
    assert [m.raw for m in merger.expire()] == [c]
    assert merger.expire() == []
    assert [m.raw for m in merger.feed("i.3.1", a)] == [a]  # one part, already complete
    assert [m.raw for m in merger.feed(None, b + c)] == [b, c]  # no tag: as it is
    assert merger.feed("i.4.0", a) == []
    assert [m.raw for m in merger.feed("garbage", b)] == [a, b]  # a bad tag is no tag
    assert (merger.flushes, merger.incomplete) == (4, 3)


def test_bad_payloads_are_refused_and_leave_the_open_flush_alone() -> None:
    merger = FlushMerger(domain=1)
    merger.feed("i.1.0", stamped(0, 1))
    with pytest.raises(ProtocolError, match="ends inside a message"):
        merger.feed("i.1.1", stamped(1, 2)[:-3])
    with pytest.raises(BadDomain):
        split_messages(
            restamp(message(0), 64, 1).replace(b"\x01", b"\x02", 1)[:4] + b"\x02" + message(0)[5:], 1
        )
    assert merger.pending


@pytest.mark.parametrize(
    ("tag", "parsed"),
    [("a.1.1", ("a", 1, True)), ("a.12.0", ("a", 12, False)), (None, None), ("", None), (".1.1", None),
     ("a.x.1", None), ("a.1.2", None), ("a.1", None)],
)  # fmt: skip
def test_parse_tag(tag: str | None, parsed: tuple[str, int, bool] | None) -> None:
    assert parse_tag(tag) == parsed
