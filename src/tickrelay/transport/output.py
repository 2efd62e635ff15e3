"""RelayOutput: a publisher's direct path into the relay. No queue and no task between caller and socket.

``send(message)`` stamps the message's sequence (stream id << 48 | counter, from the output's
:class:`~tickrelay.protocol.stamper.Stamper`, the one counter of the stream) and appends its bytes to one
output buffer; ``append(buffer, count)`` takes messages a venue core already stamped with that stamper,
as they are, and ``append_batch(batch, write=True)`` a batch envelope of such messages that the core made
(the collectors' per-frame path: with nothing else waiting it goes straight to the socket, one ``send``,
no copy into the buffer). Once per event-loop iteration everything buffered goes to the socket as one
batch envelope (docs/protocol.md). ``send`` never blocks and never waits for the relay: while the relay
is down or slow the buffer grows up to ``buffer_bytes``; beyond that the oldest messages are dropped and
counted, and after the next connect a PublisherLoss message in the stream says how many. Reconnects run
in the background with capped exponential backoff and jitter, for ever.

``forward(message)`` is the other way in, for bridges that relay another machine's stream: the message
must already be one of this output's stream (source, stream id) and goes out byte for byte, original
sequence included, so the far side's per-stream counters show any loss upstream. A forwarded stream's
counters belong to its origin, so losses here are counted (``stats.dropped``) but never announced
with a PublisherLoss message: they show as a gap in the counters.

Before each connect the socket's directory is checked, and after it who listens (transport/paths.py);
an unsafe socket ends the background task with UnsafeSocket, which ``wait_connected`` and ``close``
raise (and ``start(stop)`` sets the owner's ``stop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import random
import struct
import time
from collections.abc import Callable
from pathlib import Path

from tickrelay.errors import ProtocolError, RelayError, UnsafeSocket
from tickrelay.protocol.codec import (
    COUNTER_BITS,
    HEADER_SIZE,
    MAGIC_BYTES,
    Decoder,
    Domain,
    restamp,
)
from tickrelay.protocol.link import (
    BATCH_START,
    FLAG_CONTROL,
    Hello,
    HelloAck,
    RelayError as RelayErrorMsg,
    Role,
    Sync,
    decode_control,
    encode_batch,
    encode_control,
)
from tickrelay.protocol.messages import Event, PublisherLoss
from tickrelay.protocol.stamper import Stamper
from tickrelay.transport.backoff import backoff
from tickrelay.transport.paths import check_peer, check_socket_dir


_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclasses.dataclass
class OutputStats:
    sent: int = 0  # messages accepted by send()
    bytes: int = 0
    batches: int = 0  # envelopes written
    dropped: int = 0  # oldest messages dropped on overflow while the relay was down or slow
    reconnects: int = 0
    connected: bool = False
    buffered_bytes: int = 0  # waiting in the output buffer now
    high_water: int = 0
    last_error: str = ""


class RelayOutput:
    """Publish one stream (source, stream id) into a relay.

    Args:
        path: the relay's socket.
        source: the header source of every message (e.g. Source.BINANCE_COLLECTOR).
        stream_id: 1..65535; random if None (distinct among live publishers of the source).
        buffer_bytes: the bound of the output buffer.
        max_batch_bytes: envelopes are cut at message boundaries to at most this size.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        source: int,
        domain: Domain = Domain.MARKET_DATA,
        stream_id: int | None = None,
        name: str = "",
        buffer_bytes: int = 64 << 20,
        max_batch_bytes: int = 1 << 20,
        write_high_water: int = 1 << 20,
        backoff_cap_s: float = 2.0,
        handshake_timeout_s: float = 5.0,
        rng: random.Random | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = Path(path)
        self.source = source
        self.domain = domain
        self._rng = rng or random.Random()
        self.stream_id = stream_id if stream_id is not None else self._rng.randrange(1, 1 << 16)
        self.name = name
        self.buffer_bytes = buffer_bytes
        self.max_batch_bytes = max_batch_bytes
        self.write_high_water = write_high_water
        self.backoff_cap_s = backoff_cap_s
        self.handshake_timeout_s = handshake_timeout_s
        self._clock = clock_ns
        self.stats = OutputStats()
        self._buf = bytearray()
        self._count = 0  # messages in _buf
        self.stamper = Stamper(source, self.stream_id, domain)  # the stream's one sequence counter
        self._lost = 0  # dropped since the last PublisherLoss was sent
        self._forwarding = False  # forward() was used: the counters are the origin's, never ours
        self._scheduled = False
        self._transport: asyncio.Transport | None = None
        self._fd = -1  # the connected socket's descriptor (append_batch writes to it directly), or -1
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._syncs: dict[int, asyncio.Future[int]] = {}
        self._tokens = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_write: Callable[[int], None] | None = None  # called with perf_counter_ns after each write
        self.last_write_ns: int | None = None  # perf_counter_ns after the last write; None: never written

    # ---- the hot path ------------------------------------------------------------------------------

    def send(self, message: bytes) -> None:
        """Stamp ``message`` as this stream's next one (source, sequence; CRC recomputed) and queue it;
        returns at once, whatever the relay does.

        Raises:
            ProtocolError: ``message`` is not one whole Protocol V2 message (the error names its size).
        """
        _check_whole("send", message)
        self._append(restamp(message, self.source, self.stamper.next_sequence()))

    def forward(self, message: bytes) -> None:
        """Queue ``message`` unchanged (sequence, timestamp and CRC as its origin stamped them).

        Raises:
            ProtocolError: ``message`` is not one whole Protocol V2 message of this output's source and
                stream id.
        """
        _check_whole("forward", message)
        source, stream_id = message[6], _U64.unpack_from(message, 8)[0] >> COUNTER_BITS
        if source != self.source or stream_id != self.stream_id:
            raise ProtocolError(
                f"forward() got a message of stream ({source}, {stream_id}) on the output of stream "
                f"({self.source}, {self.stream_id})"
            )
        self._forwarding = True
        self._append(message)

    def send_event(self, timestamp_ns: int, event: Event) -> None:
        """Encode ``event`` as one message of this stream and queue it."""
        self._append(self.stamper.message(timestamp_ns, event))

    def append(self, buffer: bytes, count: int, *, write: bool = False) -> None:
        """Queue ``count`` whole messages that ``self.stamper`` stamped (a venue core's output), as they
        are: the collectors' hot path, one append per frame. ``write``: write what is buffered now
        (as :meth:`flush`), with no flush scheduled for the end of this event-loop turn."""
        if count:
            self._append(buffer, count, schedule=not write)
            if write:
                self._flush()

    def append_batch(self, batch: bytes, *, write: bool = False) -> None:
        """Queue one batch envelope of messages that ``self.stamper`` stamped (``on_frame_batch`` of a
        venue core: the bytes :meth:`_write_batch` would make of them alone), ``b""`` for none.

        With ``write``, nothing else buffered and the connection idle, the envelope goes to the socket
        as it is, by one non-blocking ``send``; what the kernel does not take (a full socket buffer)
        goes to the transport, which writes it when it can, as :meth:`_write_batch` does. Otherwise
        its messages join the buffer as :meth:`append` (then written now if ``write``): nothing is
        lost, and the buffer's bound and drop counting hold as for every other message."""
        if not batch:
            if write:
                self.flush()
            return
        count = _U32.unpack_from(batch, HEADER_SIZE + 8)[0]
        t = self._transport
        if (
            write
            and not self._buf
            and t is not None
            and len(batch) - BATCH_START <= self.max_batch_bytes
            and not t.is_closing()
            and not t.get_write_buffer_size()
        ):
            try:
                sent = os.write(self._fd, batch)
            except OSError:  # full (EAGAIN), or the connection is going (the transport sees that): buffer
                sent = 0
            if sent:
                stats = self.stats
                stats.sent += count
                stats.bytes += len(batch) - BATCH_START
                if sent < len(batch):
                    t.write(batch[sent:])  # the transport's now, written as the socket drains
                    self._note_depth()
                else:
                    stats.buffered_bytes = 0
                self._batch_written()
                return
        self._append(memoryview(batch)[BATCH_START:], count, schedule=not write)
        if write:
            self._flush()

    def _append(self, message: bytes | memoryview, count: int = 1, *, schedule: bool = True) -> None:
        n = len(message)
        if len(self._buf) + n > self.buffer_bytes:
            self._make_room(n)
        self._buf += message
        self._count += count
        self.stats.sent += count
        self.stats.bytes += n
        if schedule and not self._scheduled:
            self._scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._flush)

    def flush(self) -> None:
        """Write what is buffered now instead of at the end of this event-loop turn (a caller that
        wants each frame's messages out before it reads the next)."""
        if self._buf:
            self._flush()

    def _make_room(self, n: int) -> None:
        """Drop the oldest messages so ``n`` more bytes fit, freeing an eighth of the buffer at least."""
        if n > self.buffer_bytes:
            raise ProtocolError(f"a message of {n} bytes exceeds the output buffer of {self.buffer_bytes}")
        target = min(len(self._buf), len(self._buf) + n - self.buffer_bytes + self.buffer_bytes // 8)
        cut, dropped = 0, 0
        while cut < target:
            cut += HEADER_SIZE + _U32.unpack_from(self._buf, cut + 24)[0]
            dropped += 1
        del self._buf[:cut]
        self._count -= dropped
        self._lost += dropped
        self.stats.dropped += dropped
        self.stats.last_error = (
            f"output buffer full ({self.buffer_bytes} bytes): dropped {dropped} oldest messages"
        )

    def _flush(self) -> None:
        self._scheduled = False
        t = self._transport
        if t is None or t.is_closing() or not self._buf:
            self._note_depth()
            return
        if t.get_write_buffer_size() >= self.write_high_water:
            self._note_depth()
            return  # resume_writing schedules the next flush
        self._write_batch(t)
        if self._buf:
            self._scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._flush)
        self._note_depth()

    def _write_batch(self, t: asyncio.Transport) -> None:
        buf = self._buf
        if len(buf) <= self.max_batch_bytes:
            cut, count = len(buf), self._count
        else:
            cut, count = 0, 0
            while True:
                size = HEADER_SIZE + _U32.unpack_from(buf, cut + 24)[0]
                if count and cut + size > self.max_batch_bytes:
                    break
                cut += size
                count += 1
        first = _U64.unpack_from(buf, 8)[0]
        t.write(encode_batch(self.domain, self.source, first, count, self._clock(), bytes(buf[:cut])))
        del buf[:cut]
        self._count -= count
        self._batch_written()

    def _batch_written(self) -> None:
        """A batch envelope just went to the socket (or, what it did not take, to the transport)."""
        self.stats.batches += 1
        self.last_write_ns = now = time.perf_counter_ns()
        if self.on_write is not None:  # the bytes are the kernel's (or the transport's, if it is full)
            self.on_write(now)

    def _note_depth(self) -> None:
        depth = len(self._buf) + (self._transport.get_write_buffer_size() if self._transport else 0)
        self.stats.buffered_bytes = depth
        if depth > self.stats.high_water:
            self.stats.high_water = depth

    # ---- connection management ---------------------------------------------------------------------

    def start(self, stop: asyncio.Event | None = None) -> None:
        """Begin connecting in the background (call from a running event loop).

        ``stop``, when given, is set if the output gives up (an untrusted socket met on a connect), so
        a long-running owner ends instead of publishing into nothing; its ``close()`` then raises why.

        Raises:
            UnsafeSocket: the socket's directory is not safe (transport/paths.py).
        """
        check_socket_dir(self.path)
        self._loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = self._loop.create_task(self._run(), name=f"relay-output:{self.path}")
            if stop is not None:
                self._task.add_done_callback(lambda task: None if task.cancelled() else stop.set())

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Wait for the handshake with the relay.

        Raises:
            TimeoutError: not connected within ``timeout_s``.
            UnsafeSocket: the socket or the process listening there is not trusted.
        """
        assert self._task is not None, "start() first"
        connected = asyncio.ensure_future(self._connected.wait())
        try:
            await asyncio.wait({connected, self._task}, timeout=timeout_s, return_when="FIRST_COMPLETED")
        finally:
            connected.cancel()
        if self._task.done():
            self._task.result()
        if not self._connected.is_set():
            raise TimeoutError

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delays = backoff(cap_s=self.backoff_cap_s, rng=self._rng)
        first = True
        while not self._closing:
            check_socket_dir(self.path)
            transport: asyncio.Transport | None = None
            try:
                transport, proto = await loop.create_unix_connection(
                    lambda: _OutputProtocol(self), str(self.path)
                )
                try:
                    check_peer(transport.get_extra_info("socket"), self.path)
                except UnsafeSocket as exc:
                    self.stats.last_error = str(exc)
                    raise
                hello = Hello(Role.PUBLISHER, self.domain, self.source, self.stream_id, name=self.name)
                transport.write(encode_control(hello))
                # not shielded: an ack that came while the loop was blocked past the deadline still counts
                await asyncio.wait_for(proto.acked, self.handshake_timeout_s)
                if not first:
                    self.stats.reconnects += 1
                first = False
                delays = backoff(cap_s=self.backoff_cap_s, rng=self._rng)
                self._transport = transport
                self._fd = transport.get_extra_info("socket").fileno()
                self.stats.connected = True
                self._connected.set()
                if self._lost and not self._forwarding:
                    self.send_event(self._clock(), PublisherLoss(self._lost))
                    self._lost = 0
                self._flush()
                await proto.closed
            except (OSError, TimeoutError, RelayError, ProtocolError) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                if transport is not None:
                    # a connection given up (handshake timeout, refusal, unsafe peer) must end here: left
                    # open, the relay keeps it as this stream's live publisher and refuses every reconnect
                    # as duplicate_stream
                    transport.abort()
                self._transport = None
                self._fd = -1
                self.stats.connected = False
                self._connected.clear()
                for fut in self._syncs.values():
                    if not fut.done():
                        fut.set_exception(RelayError("connection to the relay lost before the sync answer"))
                self._syncs.clear()
            if not self._closing:
                await asyncio.sleep(next(delays))

    async def sync(self, timeout_s: float = 30.0) -> int:
        """Wait until the relay has routed every message sent so far; returns its count for this stream."""
        async with asyncio.timeout(timeout_s):
            while True:
                await self._connected.wait()
                t = self._transport
                assert t is not None
                while self._buf:
                    self._write_batch(t)
                token = next(self._tokens)
                fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                self._syncs[token] = fut
                t.write(encode_control(Sync(token)))
                with contextlib.suppress(RelayError):
                    return await fut

    async def close(self, flush_timeout_s: float = 2.0) -> None:
        """Flush what the relay can take within ``flush_timeout_s``, then disconnect; what is still
        buffered then is counted in ``stats.dropped`` (``stats.last_error`` says how many)."""
        if self._buf and self._task is not None and not self._task.done():  # connected, or reconnecting
            with contextlib.suppress(TimeoutError, RelayError):
                await self.sync(flush_timeout_s)
        self._closing = True
        if self._count:  # never connected, or the relay took no more in time: lost, and said so
            self.stats.dropped += self._count
            self.stats.last_error = f"closed with {self._count} messages the relay never took"
            self._buf.clear()
            self._count = 0
        if self._transport is not None:
            self._transport.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def close_all(*outputs: RelayOutput) -> None:
    """Close every output (each flushing what its relay takes in time), then raise the first error one
    of them ended with (an untrusted socket), so that none is left unread."""
    ends = await asyncio.gather(*(output.close() for output in outputs), return_exceptions=True)
    for end in ends:
        if isinstance(end, Exception):
            raise end


class _OutputProtocol(asyncio.Protocol):
    def __init__(self, output: RelayOutput) -> None:
        self.output = output
        loop = asyncio.get_running_loop()
        self.acked: asyncio.Future[None] = loop.create_future()
        self.acked.add_done_callback(_retrieve)  # a failed handshake nobody awaited is not an error to log
        self.closed: asyncio.Future[None] = loop.create_future()
        self.decoder = Decoder()

    def data_received(self, data: bytes) -> None:
        self.decoder.feed(data)
        try:
            for message in self.decoder:
                if not message.header.flags & FLAG_CONTROL:
                    continue
                control = decode_control(message)
                if isinstance(control, HelloAck) and not self.acked.done():
                    self.acked.set_result(None)
                elif isinstance(control, Sync) and (fut := self.output._syncs.pop(control.token, None)):
                    if not fut.done():
                        fut.set_result(control.messages)
                elif isinstance(control, RelayErrorMsg):
                    self.output.stats.last_error = f"relay refused: {control.reason}"
                    if not self.acked.done():
                        self.acked.set_exception(RelayError(control.reason))
        except ProtocolError as exc:
            self.output.stats.last_error = f"bad answer from the relay: {exc}"

    def pause_writing(self) -> None:
        pass  # _flush checks the transport's buffer size itself

    def resume_writing(self) -> None:
        self.output._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.acked.done():
            self.acked.set_exception(
                ConnectionResetError("the relay closed the connection during the handshake")
            )
        if not self.closed.done():
            self.closed.set_result(None)


def _check_whole(what: str, message: bytes) -> None:
    n = len(message)
    if n < HEADER_SIZE or message[:4] != MAGIC_BYTES or _U32.unpack_from(message, 24)[0] != n - HEADER_SIZE:
        raise ProtocolError(f"{what}() needs one whole Protocol V2 message; got {n} bytes that are not")


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
