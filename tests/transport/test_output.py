"""RelayOutput on its own: overflow while the relay is down, the loss report, bad input, send_event,
and the collectors' per-frame path (append_batch: the core's envelope as the write)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.relay.conftest import message, until
from tickrelay.errors import ProtocolError
from tickrelay.protocol.codec import HEADER_SIZE, Decoder, Message, make_sequence, restamp
from tickrelay.protocol.link import (
    BATCH_START,
    Hello,
    HelloAck,
    batch_head,
    decode_control,
    encode_batch,
    encode_control,
)
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


async def _subscriber(relay: Relay, count: int) -> tuple[asyncio.Task[None], list[bytes]]:
    """A subscriber of ``relay``, subscribed: its task ends with the first ``count`` messages, in
    the list."""
    got: list[bytes] = []

    async def consume() -> None:
        async for item in Subscription(relay.path, reconnect=False):
            assert isinstance(item, Message)
            got.append(item.raw)
            if len(got) == count:
                return

    task = asyncio.create_task(consume())
    await until(lambda: relay.subscribers, 5)
    return task, got


async def test_append_with_write_writes_now_and_schedules_no_flush(relay: Relay) -> None:
    out = RelayOutput(relay.path, source=3, stream_id=5)
    task, got = await _subscriber(relay, 3)
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


def _batch(out: RelayOutput, numbers: range, ts: int = 77) -> tuple[bytes, list[bytes]]:
    """Messages ``numbers`` stamped as ``out``'s next ones, and their batch envelope as a venue core's
    ``on_frame_batch`` makes it."""
    stamped = [restamp(message(i), out.source, out.stamper.next_sequence()) for i in numbers]
    first = int.from_bytes(stamped[0][8:16], "little")
    return encode_batch(out.domain, out.source, first, len(stamped), ts, b"".join(stamped)), stamped


class _QuietRelay:
    """A real socket that acks a publisher's Hello as the relay does, then reads nothing until
    ``take`` is called: the test sees the exact bytes a publisher wrote, and can fill its socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.decoder = Decoder()

    async def start(self) -> asyncio.Server:
        async def publisher(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:  # up to the Hello
                self.decoder.feed(await reader.read(1 << 16))
                if (hello := next(self.decoder, None)) is not None:
                    break
            assert isinstance(decode_control(hello), Hello)
            writer.write(encode_control(HelloAck(1, 0, 1 << 20)))
            self.reader, self.writer = reader, writer

        return await asyncio.start_unix_server(publisher, self.path)

    async def stop(self, server: asyncio.Server) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()
        server.close()
        await server.wait_closed()

    async def take(self, count: int) -> tuple[list[bytes], list[bytes]]:
        """Read until ``count`` messages came in envelopes: (the envelopes, their messages)."""
        assert self.reader is not None
        envelopes: list[bytes] = []
        inner: list[bytes] = []
        async with asyncio.timeout(10):
            while len(inner) < count:
                self.decoder.feed(await self.reader.read(1 << 16))
                for envelope in self.decoder:
                    first, n = batch_head(envelope)
                    envelopes.append(envelope.raw)
                    run = envelope.raw[BATCH_START:]
                    at = 0
                    for _ in range(n):
                        end = at + HEADER_SIZE + int.from_bytes(run[at + 24 : at + 28], "little")
                        inner.append(run[at:end])
                        at = end
                    assert at == len(run)
                    assert int.from_bytes(inner[-n][8:16], "little") == first
        return envelopes, inner


@pytest.fixture
async def quiet(tmp_path: Path) -> AsyncIterator[tuple[_QuietRelay, RelayOutput]]:
    """A _QuietRelay and an output connected to it (stream 5), closed after the test."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    relay = _QuietRelay(run / "md.sock")
    server = await relay.start()
    out = RelayOutput(relay.path, source=3, stream_id=5)
    out.start()
    try:
        await out.wait_connected(5)
        yield relay, out
    finally:
        await out.close()
        await relay.stop(server)


async def test_append_batch_writes_the_envelope_as_it_is(quiet: tuple[_QuietRelay, RelayOutput]) -> None:
    """The collectors' per-frame path: with nothing buffered, the core's envelope is the write."""
    relay, out = quiet
    written: list[int] = []
    out.on_write = written.append
    envelope, stamped = _batch(out, range(3))
    out.append_batch(envelope, write=True)
    assert (out.stats.batches, out.stats.sent, out.stats.bytes) == (1, 3, len(envelope) - BATCH_START)
    assert (out._buf, out._scheduled, out.stats.buffered_bytes) == (bytearray(), False, 0)
    assert written == [out.last_write_ns]  # the latency histograms' write time
    assert await relay.take(3) == ([envelope], stamped)  # byte for byte, in one write
    second, more = _batch(out, range(3, 5))
    out.append_batch(second)  # without write: its messages wait in the buffer for the loop turn
    assert (out._buf, out._scheduled, out.stats.batches) == (bytearray(second[BATCH_START:]), True, 1)
    out.append_batch(b"", write=True)  # a frame with no message: what is buffered goes now
    assert (out._buf, out.stats.batches, out.stats.sent) == (bytearray(), 2, 5)
    envelopes, got = await relay.take(2)
    assert got == more
    assert len(envelopes) == 1


async def test_append_batch_joins_what_is_buffered_in_order(relay: Relay) -> None:
    out = RelayOutput(relay.path, source=3, stream_id=6)
    task, got = await _subscriber(relay, 4)
    out.start()
    await out.wait_connected(5)
    first, one = _batch(out, range(1))
    out.append_batch(first)  # waits for the end of the loop turn
    second, three = _batch(out, range(1, 4))
    out.append_batch(second, write=True)  # so this one cannot go first: both in one write, in order
    assert (out.stats.batches, out.stats.sent, out._buf) == (1, 4, bytearray())
    await asyncio.wait_for(task, 5)
    assert got == one + three
    await out.close()


async def test_append_batch_while_the_relay_is_down_keeps_the_bound_and_counts_the_drops(
    tmp_path: Path,
) -> None:
    out = RelayOutput(tmp_path / "none.sock", source=3, stream_id=7, buffer_bytes=1000)
    batches = [_batch(out, range(k * 4, k * 4 + 4)) for k in range(6)]
    for envelope, _ in batches:
        out.append_batch(envelope, write=True)  # not connected: into the buffer, never past its bound
        assert len(out._buf) <= 1000
    kept = b"".join(b"".join(stamped) for _, stamped in batches)[-len(out._buf) :]
    assert bytes(out._buf) == kept  # the newest messages, whole
    total = sum(len(stamped) for _, stamped in batches)
    assert out.stats.sent == total
    assert out.stats.dropped == total - out._count > 0  # the oldest, counted for the PublisherLoss
    assert out._lost == out.stats.dropped
    await out.close()


async def test_append_batch_on_a_full_socket_loses_nothing(quiet: tuple[_QuietRelay, RelayOutput]) -> None:
    """The relay reads nothing: the socket fills, a send takes part of an envelope or none, the rest
    goes through the transport and the buffer; when the relay reads, every message is there, once, in
    order."""
    relay, out = quiet
    assert out._transport is not None
    envelope, sent = _batch(out, range(8000))  # about 640 kB: more than the socket takes at once
    assert len(envelope) - BATCH_START < out.max_batch_bytes
    out.append_batch(envelope, write=True)
    assert (out.stats.batches, out.stats.sent, out._buf) == (1, 8000, bytearray())
    assert 0 < out._transport.get_write_buffer_size() < len(envelope)  # the rest is the transport's
    for k in range(1, 4):  # the connection is busy: these go through the buffer, in order
        envelope, stamped = _batch(out, range(k * 64, k * 64 + 64))
        out.append_batch(envelope, write=True)
        sent += stamped
    assert out.stats.buffered_bytes > 0
    _, got = await relay.take(len(sent))
    assert got == sent
    assert (out.stats.sent, out.stats.dropped) == (len(sent), 0)


async def test_append_batch_the_kernel_refuses_goes_through_the_buffer(
    quiet: tuple[_QuietRelay, RelayOutput],
) -> None:
    """Small envelopes until the socket is full: the one the kernel refuses (EAGAIN) joins the buffer
    and goes out after the others; nothing is lost, nothing is sent twice."""
    relay, out = quiet
    assert out._transport is not None
    sent: list[bytes] = []
    k = 0
    while not out._transport.get_write_buffer_size():  # each envelope one write, until one is refused
        envelope, stamped = _batch(out, range(k * 16, k * 16 + 16))
        out.append_batch(envelope, write=True)
        sent += stamped
        k += 1
        assert k < 100_000, "the socket never filled"
    # the refused one waits in the transport, re-enveloped
    assert (out.stats.batches, out._buf) == (k, bytearray())
    _, got = await relay.take(len(sent))
    assert got == sent
    assert (out.stats.sent, out.stats.dropped) == (len(sent), 0)
