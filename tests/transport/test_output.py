"""RelayOutput on its own: overflow while the relay is down, the loss report, bad input, send_event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.relay.conftest import message, until
from tickrelay.errors import ProtocolError
from tickrelay.protocol.codec import Message, make_sequence, restamp
from tickrelay.protocol.messages import Heartbeat, PublisherLoss, Trade
from tickrelay.relay.server import Relay
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.subscribe import Gap, Subscription


async def test_relay_down_drops_oldest_counts_and_reports_after_reconnect(tmp_path: Path) -> None:
    path, door = tmp_path / "md.sock", tmp_path / "door.sock"  # the publisher finds the relay via `door`
    out = RelayOutput(door, source=3, stream_id=8, buffer_bytes=74 * 1000, backoff_cap_s=0.05)
    out.start()
    for i in range(3000):  # nobody listens yet: send() still returns at once
        out.send(message(2 * i))
    assert out.stats.sent == 3000
    dropped = out.stats.dropped
    assert 1500 < dropped < 3000  # about 74 kB of 74- to 104-byte messages survive
    assert "dropped" in out.stats.last_error
    relay = Relay(path)
    await relay.start()
    items: list[Message | Gap] = []

    async def consume() -> None:
        async for item in Subscription(path, reconnect=False):
            items.append(item)
            if isinstance(item, Message) and any(isinstance(e, PublisherLoss) for e in item.events()):
                return

    task = asyncio.create_task(consume())
    await until(lambda: relay.subscribers, 5)
    door.symlink_to(path)  # only now can the publisher connect: the subscriber sees all it sends
    await out.wait_connected(5)
    await asyncio.wait_for(task, 5)
    messages = [i for i in items if isinstance(i, Message)]
    # the survivors are the newest, in order, then the loss report with its own sequence
    counters = [m.header.sequence & 0xFFFFFFFFFFFF for m in messages]
    assert counters == list(range(dropped + 1, 3002))
    assert messages[-1].events() == [PublisherLoss(dropped)]
    assert out.stats.reconnects == 0  # the first connection is not a reconnect
    await out.close()
    await relay.stop()


async def test_send_refuses_what_is_not_one_message(tmp_path: Path) -> None:
    out = RelayOutput(tmp_path / "none.sock", source=3)
    with pytest.raises(ProtocolError, match="got 73 bytes that are not"):
        out.send(message(0)[:-1])
    small = RelayOutput(tmp_path / "none.sock", source=3, buffer_bytes=60)
    with pytest.raises(ProtocolError, match="a message of 74 bytes exceeds the output buffer of 60"):
        small.send(message(0))


async def test_send_event_encodes_with_the_streams_sequence(relay: Relay) -> None:
    out = RelayOutput(relay.path, source=3, stream_id=12)
    got: list[Message | Gap] = []

    async def consume() -> None:
        async for item in Subscription(relay.path, reconnect=False):
            got.append(item)
            if len(got) == 2:
                return

    task = asyncio.create_task(consume())
    await until(lambda: relay.subscribers, 5)
    out.start()
    trade = Trade(1, 2, 3, 4, 102, 51, 1)
    out.send_event(111, trade)
    out.send_event(222, Heartbeat(5, 6))
    await asyncio.wait_for(task, 5)
    first, second = got
    assert isinstance(first, Message)
    assert isinstance(second, Message)
    assert (first.header.sequence, first.header.timestamp_ns, first.events()) == (
        (12 << 48) | 1,
        111,
        [trade],
    )
    assert (second.header.sequence, second.events()) == ((12 << 48) | 2, [Heartbeat(5, 6)])
    await out.close()


def _stamped(i: int, counter: int, source: int = 3, stream_id: int = 9) -> bytes:
    return restamp(message(i), source, make_sequence(stream_id, counter))


async def test_forward_keeps_the_origin_bytes_and_sequence_so_gaps_stay_visible(relay: Relay) -> None:
    out = RelayOutput(relay.path, source=3, stream_id=9)
    sent = [_stamped(i, c) for i, c in ((0, 5), (1, 6), (2, 9), (3, 10))]  # counters 7, 8 lost upstream
    got: list[Message | Gap] = []

    async def consume() -> None:
        async for item in Subscription(relay.path, reconnect=False):
            got.append(item)
            if len(got) == 5:
                return

    task = asyncio.create_task(consume())
    await until(lambda: relay.subscribers, 5)
    out.start()
    for m in sent:
        out.forward(m)
    await asyncio.wait_for(task, 5)
    assert [g.raw if isinstance(g, Message) else g for g in got] == [*sent[:2], Gap(3, 9, 7, 9), *sent[2:]]
    await out.close()


async def test_forward_refuses_other_streams_and_partial_messages(tmp_path: Path) -> None:
    out = RelayOutput(tmp_path / "none.sock", source=3, stream_id=9)
    with pytest.raises(ProtocolError, match="got 73 bytes that are not"):
        out.forward(_stamped(0, 1)[:-1])
    with pytest.raises(ProtocolError, match=r"stream \(3, 8\) on the output of stream \(3, 9\)"):
        out.forward(_stamped(0, 1, stream_id=8))
    with pytest.raises(ProtocolError, match=r"stream \(1, 9\) on the output of stream \(3, 9\)"):
        out.forward(_stamped(0, 1, source=1))


async def test_forwarded_stream_overflow_is_a_gap_not_a_publisher_loss(tmp_path: Path) -> None:
    path, door = tmp_path / "md.sock", tmp_path / "door.sock"
    out = RelayOutput(door, source=3, stream_id=9, buffer_bytes=74 * 100, backoff_cap_s=0.05)
    out.start()
    sent = [_stamped(2 * i, i + 1) for i in range(300)]  # even i: 74-byte trades
    for m in sent:
        out.forward(m)
    dropped = out.stats.dropped
    assert dropped > 100
    relay = Relay(path)
    await relay.start()
    got: list[Message | Gap] = []

    async def consume() -> None:
        async for item in Subscription(path, reconnect=False):
            got.append(item)

    task = asyncio.create_task(consume())
    await until(lambda: relay.subscribers, 5)
    door.symlink_to(path)
    await out.wait_connected(5)
    await until(lambda: len(got) == 300 - dropped, 5)
    await asyncio.sleep(0.05)  # nothing else arrives: no PublisherLoss in the origin's stream
    assert [m.raw for m in got if isinstance(m, Message)] == sent[dropped:]
    assert not any(isinstance(g, Gap) for g in got)  # the first message of a stream is not a gap
    task.cancel()
    await out.close()
    await relay.stop()


async def test_flush_writes_now_not_at_the_end_of_the_loop_turn(relay: Relay) -> None:
    out = RelayOutput(relay.path, source=3, stream_id=5)
    out.start()
    await out.wait_connected(5)
    out.flush()  # nothing buffered: nothing written
    assert (out.stats.batches, out.last_write_ns) == (0, None)  # never written is not a time
    out.send(message(0))
    out.send(message(1))
    out.flush()  # both, in one envelope, before this coroutine yields
    assert (out.stats.batches, out.stats.buffered_bytes) == (1, 0)
    assert out.last_write_ns is not None
    assert await out.sync() == 2
    await out.close()


async def test_append_with_write_writes_now_and_schedules_no_flush(relay: Relay) -> None:
    out = RelayOutput(relay.path, source=3, stream_id=5)
    got: list[bytes] = []

    async def consume() -> None:
        async for item in Subscription(relay.path, reconnect=False):
            assert isinstance(item, Message)
            got.append(item.raw)
            if len(got) == 3:
                return

    task = asyncio.create_task(consume())
    await until(lambda: relay.subscribers, 5)
    out.start()
    await out.wait_connected(5)
    stamped = [out.stamper.message(10 + i, Heartbeat(i, i)) for i in range(3)]
    out.append(stamped[0] + stamped[1], 2, write=True)  # the collector's per-frame path
    assert (out.stats.batches, out.stats.sent, out.stats.buffered_bytes) == (1, 2, 0)
    assert not out._scheduled  # no second, empty flush at the end of the loop turn
    out.append(stamped[2], 1)  # without write: written at the end of the turn
    assert (out.stats.batches, out._scheduled) == (1, True)
    await asyncio.wait_for(task, 5)
    assert out.stats.batches == 2
    assert got == stamped
    await out.close()


async def test_close_counts_what_no_relay_took_and_a_relay_that_comes_in_time_gets_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "md.sock"
    out = RelayOutput(path, source=3, stream_id=8, backoff_cap_s=0.05)
    out.start()
    for i in range(3):
        out.send(message(i))
    await out.close(flush_timeout_s=0.2)  # nobody listens: the three are lost, and counted
    assert (out.stats.sent, out.stats.dropped) == (3, 3)
    assert out.stats.last_error == "closed with 3 messages the relay never took"
    relay = Relay(path)
    late = RelayOutput(path, source=3, stream_id=9, backoff_cap_s=0.05)
    late.start()
    late.send(message(0))
    closing = asyncio.create_task(late.close(flush_timeout_s=5))
    await asyncio.sleep(0.1)
    await relay.start()  # close() waits for the reconnect within its flush timeout
    await closing
    assert late.stats.dropped == 0
    await until(lambda: relay.departed["in"] == 1)  # the relay routed it, then saw the close
    await relay.stop(drain_s=0.1)
