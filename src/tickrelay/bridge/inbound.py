"""Bridge in: NATS subjects into the local relay, byte for byte (I/O: NATS, relay sockets).

Live (the default) is a core NATS subscription: the lowest latency, nothing stored on the server for
this bridge, and nats-py re-subscribes after a reconnect; what was published meanwhile is lost and
shows as a gap in the origin stream's counters. ``since_s`` and ``last_value`` use a JetStream ordered
consumer on the replay stream instead (nats-py recreates it from the last stream sequence seen when
its heartbeats stop).

Every upstream stream (source, stream id) gets its own forwarding RelayOutput with that source and
stream id, so local subscribers see the origin's sequence and its gaps. ``batch.FlushMerger`` puts
each stream's messages back in counter order after per-subject batching. A stream never goes back:
a message behind the last one forwarded (the rest of a flush cut in two by a server restart, after
its first part was released) is dropped and counted (``late``); the far side counted it in a gap.

Late joiner (``last_value``): read the last-value stream (InstrumentMeta, and per instrument its book
with the position of the last message that changed it), forward the metas at once, then consume the
replay stream from a little before the oldest of those books. Each book is forwarded just before the
first message of its stream past its position (after the relay routed everything before: ``sync``),
so a consumer applies exactly the deltas the snapshot does not include.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import time
from pathlib import Path

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import Error as NatsError, TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from tickrelay.bridge.auth import NatsAccess
from tickrelay.bridge.batch import FlushMerger, split_messages
from tickrelay.bridge.connection import FLUSH_HEADER, LAST_STREAM, STREAM, UPTO_HEADER, NatsStats, connect
from tickrelay.bridge.subjects import LAST_PREFIX, PREFIX, domain_token
from tickrelay.errors import NatsRefused, ProtocolError
from tickrelay.protocol.codec import COUNTER_BITS, COUNTER_MASK, Domain, Message, Source
from tickrelay.transport.output import RelayOutput, close_all


@dataclasses.dataclass
class InSettings:
    domain: Domain = Domain.MARKET_DATA
    subject: str = ""  # default tickrelay.<domain>.>
    last_value: bool = False
    since_s: float | None = None  # replay this much of the stream first (JetStream)
    hold_s: float = 0.02  # an incomplete flush is released after this long without NATS messages
    catch_up_margin_s: float = 2.0  # late joiner: replay from this long before the oldest book was stored
    idle_close_s: float = 300.0  # close a stream's forwarding output after this long without a message
    pending_msgs: int = 65536  # nats-py's per-subscription limits (slow consumer beyond)
    pending_bytes: int = 256 << 20
    access: NatsAccess = dataclasses.field(default_factory=NatsAccess)  # TLS and credentials


@dataclasses.dataclass
class InStats:
    nats_messages: int = 0
    messages: int = 0  # forwarded
    bytes: int = 0
    streams: int = 0  # upstream streams seen (one forwarding RelayOutput each)
    gaps: int = 0  # jumps in a stream's counters seen here
    missing: int = 0  # messages those gaps skipped
    late: int = 0  # dropped: behind the stream's last forwarded counter (a flush cut by a server restart)
    rejected: int = 0  # NATS payloads that were not whole, valid Protocol V2 messages (dropped)
    snapshots: int = 0  # last-value books forwarded
    metas: int = 0
    flushes: int = 0
    incomplete_flushes: int = 0
    covered: int = 0  # replayed messages a late joiner's book already includes (not forwarded)
    idle_closed: int = 0  # forwarding outputs closed after idle_close_s (a restarted origin's old stream)
    relay_dropped: int = 0  # messages dropped by the forwarding outputs (local relay down too long)
    nats: NatsStats = dataclasses.field(default_factory=NatsStats)


class BridgeIn:
    def __init__(self, relay_path: Path, servers: list[str], settings: InSettings | None = None) -> None:
        self.relay_path = relay_path
        self.servers = servers
        self.settings = s = settings or InSettings()
        everything = f"{PREFIX}.{domain_token(s.domain)}.>"
        self.subject = s.subject or everything
        self.whole = self.subject == everything  # sees every part of every flush
        self.stats = InStats()
        self.merger = FlushMerger(s.domain)
        self.outputs: dict[tuple[int, int], RelayOutput] = {}
        self.own = RelayOutput(relay_path, source=Source.NATS_BRIDGE, domain=s.domain, name="bridge-in")
        self.last: dict[tuple[int, int], int] = {}
        self.used: dict[tuple[int, int], float] = {}  # stream -> monotonic time of its last forward
        self.held: dict[tuple[int, int], list[tuple[int, bytes]]] = {}  # stream -> (position, book message)
        self._lock = asyncio.Lock()
        self._last_feed = time.monotonic()
        self._jetstream = False  # consuming the replay stream (not a core subscription)
        self._behind = 0  # JetStream: messages of the stream not delivered yet, as of the last one
        self.ready = asyncio.Event()  # subscribed
        self._stop: asyncio.Event | None = None  # run()'s: set by an output that meets an untrusted relay

    # ---- forwarding --------------------------------------------------------------------------------

    def _output(self, key: tuple[int, int]) -> RelayOutput:
        out = self.outputs.get(key)
        if out is None:
            s = self.settings
            out = self.outputs[key] = RelayOutput(
                self.relay_path, source=key[0], stream_id=key[1], domain=s.domain, name="bridge-in"
            )
            out.start(self._stop)
            self.stats.streams += 1
        return out

    async def _forward(self, messages: list[Message]) -> None:
        stats, last, held = self.stats, self.last, self.held
        for m in messages:
            h = m.header
            key, counter = (h.source, h.sequence >> COUNTER_BITS), h.sequence & COUNTER_MASK
            if held and key in held:
                if counter <= min(position for position, _ in held[key]):
                    stats.covered += 1  # a held book already includes it (a replay starts before the book)
                    continue
                await self._release(key, counter)  # the book goes out right before this message
            prev = last.get(key)
            if prev is not None and counter != prev + 1:
                if counter <= prev and counter != 1:  # (counter 1: the origin restarted its stream)
                    stats.late += 1  # behind what went out already: its gap was counted; never go back
                    continue
                if counter > prev + 1:
                    stats.gaps += 1
                    stats.missing += counter - prev - 1
            last[key] = counter
            self.used[key] = self._last_feed
            self._output(key).forward(m.raw)
            stats.messages += 1
            stats.bytes += len(m.raw)

    async def _release(self, key: tuple[int, int], counter: int) -> None:
        """Forward the held books of stream ``key`` whose position is before ``counter``, after the relay
        routed what this stream forwarded so far (and before anything after them). A book stands for
        its stream up to its position: the stream's counters continue from there."""
        books = self.held[key]
        due = [(position, raw) for position, raw in books if position < counter]
        if not due:
            return
        self.held[key] = [(p, raw) for p, raw in books if p >= counter]
        if not self.held[key]:
            del self.held[key]
        if key in self.outputs:
            await self.outputs[key].sync()
        for _, raw in due:
            self.own.send(raw)
            self.stats.snapshots += 1
        await self.own.sync()
        self.last[key] = max(self.last.get(key, 0), *(position for position, _ in due))

    async def _close_idle(self, now: float) -> None:
        """Close the outputs of streams silent for ``idle_close_s`` (each upstream restart is a new
        stream: without this, every restart would leave one more connection to the relay). Their
        counters stay: a stream that speaks again reopens its output and its gaps still show."""
        for key in [k for k, used in self.used.items() if now - used > self.settings.idle_close_s]:
            del self.used[key]
            out = self.outputs.pop(key, None)
            if out is not None:
                await out.close()
                self.stats.idle_closed += 1
                self.stats.relay_dropped += out.stats.dropped

    async def _release_all(self) -> None:
        for key in list(self.held):
            await self._release(key, COUNTER_MASK + 1)

    async def _on_message(self, msg: Msg) -> None:
        async with self._lock:
            self._last_feed = time.monotonic()
            self.stats.nats_messages += 1
            tag = msg.headers.get(FLUSH_HEADER) if msg.headers else None
            try:
                messages = self.merger.feed(tag, msg.data)
            except ProtocolError as exc:
                self.stats.rejected += 1
                self.stats.nats.last_error = f"rejected payload on {msg.subject}: {exc}"
                return
            await self._forward(messages)
            if self._jetstream:
                self._behind = msg.metadata.num_pending
                if self.held and not self._behind:  # caught up: no stream will pass them any more
                    await self._release_all()

    async def _expire(self, stop: asyncio.Event) -> None:
        """Release an incomplete flush after ``hold_s`` without NATS messages, unless a JetStream replay
        is still behind (it pauses for flow control); and late-join books the replay never reached after
        a second."""
        # A subscription to every subject sees each flush end (or the next flush begin): the timeout only
        # matters if bridge out died mid-flush, so it can be long and never cut a flush that is merely slow
        # (JetStream flow control, a starved process). A filtered one never sees the other subjects' parts.
        hold = max(self.settings.hold_s, 1.0) if self.whole else self.settings.hold_s
        due = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            stalled = now - due > hold  # this process was starved: NATS messages it already has may not
            idle = now - self._last_feed  # be parsed yet, so give them a turn before calling a flush cut
            if self.merger.pending and idle >= hold and not self._behind and not stalled:  # (a replay pauses)
                async with self._lock:
                    await self._forward(self.merger.expire())
            if self.held and idle >= 1.0:
                async with self._lock:
                    await self._release_all()
            await self._close_idle(now)
            pause = hold if self.merger.pending else min(hold * 4, 0.02)
            due = time.monotonic() + pause
            await asyncio.sleep(pause)

    # ---- subscribing -------------------------------------------------------------------------------

    async def _read_last_values(self, nc: Client) -> datetime.datetime | None:
        """Forward the metas, hold the books; the time the oldest book was stored (None if none)."""
        js = nc.jetstream()
        pattern = LAST_PREFIX + self.subject[len(PREFIX) :]
        try:
            info = await js.stream_info(LAST_STREAM, subjects_filter=pattern)
        except NotFoundError:
            return None
        if not info.state.subjects:
            return None
        sub = await js.subscribe(pattern, stream=LAST_STREAM, ordered_consumer=True)
        oldest: datetime.datetime | None = None
        try:
            while True:
                msg = await sub.next_msg(timeout=5)
                stamp = self._take_last_value(msg)
                if stamp is not None and (oldest is None or stamp < oldest):
                    oldest = stamp
                if msg.metadata.num_pending == 0:
                    break
        except NatsTimeout:  # the stream emptied (age, purge) under us
            pass
        finally:
            await sub.unsubscribe()
        await self.own.sync()
        return oldest

    def _take_last_value(self, msg: Msg) -> datetime.datetime | None:
        """Forward a meta, hold a book; the time a book was stored."""
        upto = msg.headers.get(UPTO_HEADER) if msg.headers else None
        try:
            (message,) = split_messages(msg.data, self.settings.domain)
            position = tuple(int(x) for x in upto.split(".")) if upto else ()
            if upto and len(position) != 3:
                raise ValueError(f"bad {UPTO_HEADER} {upto!r}")
        except (ProtocolError, ValueError) as exc:
            self.stats.rejected += 1
            self.stats.nats.last_error = f"rejected last value on {msg.subject}: {exc}"
            return None
        if not position:
            self.own.send(message.raw)  # a meta: names first
            self.stats.metas += 1
            return None
        source, stream_id, counter = position
        self.held.setdefault((source, stream_id), []).append((counter, message.raw))
        return msg.metadata.timestamp

    async def _subscribe(self, nc: Client) -> NatsSubscription:
        s = self.settings
        start: datetime.datetime | None = None
        if s.last_value:
            oldest = await self._read_last_values(nc)
            if oldest is not None:
                start = oldest - datetime.timedelta(seconds=s.catch_up_margin_s)
        if s.since_s is not None:
            since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=s.since_s)
            start = since if start is None else min(start, since)
        if not s.last_value and start is None:
            return await nc.subscribe(
                self.subject,
                cb=self._on_message,
                pending_msgs_limit=s.pending_msgs,
                pending_bytes_limit=s.pending_bytes,
            )
        self._jetstream = True
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.NEW if start is None else DeliverPolicy.BY_START_TIME,
            opt_start_time=start,
        )
        return await nc.jetstream().subscribe(
            self.subject,
            stream=STREAM,
            ordered_consumer=True,
            config=config,
            cb=self._on_message,
            pending_msgs_limit=s.pending_msgs,
            pending_bytes_limit=s.pending_bytes,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until ``stop`` is set; then forward what the relay can take and close.

        Raises:
            NatsRefused: the server refused the credentials, a permission or the TLS setup.
            UnsafeSocket: the relay's socket, or the process listening there, is not trusted.
        """
        self._stop = stop
        await self._run(stop)
        if self.stats.nats.refused:
            raise NatsRefused(self.stats.nats.refused)

    async def _run(self, stop: asyncio.Event) -> None:
        nc = await connect(self.servers, "tickrelay-bridge-in", self.stats.nats, stop, self.settings.access)
        if nc is None:
            return
        try:
            self.own.start(stop)  # an untrusted relay: raises, or sets stop when met on a connect
            try:
                sub = await self._subscribe(nc)
            except (NatsError, TimeoutError):
                if self.stats.nats.refused:  # a JetStream request refused: no answer comes
                    return
                raise
            self.ready.set()
            expire = asyncio.create_task(self._expire(stop))
            await stop.wait()
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            await expire
            async with self._lock:
                await self._forward(self.merger.expire())
        finally:
            with contextlib.suppress(Exception):
                await nc.close()
            self.stats.flushes, self.stats.incomplete_flushes = self.merger.flushes, self.merger.incomplete
            outputs = [*self.outputs.values(), self.own]
            try:
                await close_all(*outputs)  # raises why an output gave up (an untrusted relay), if one did
            finally:
                self.stats.relay_dropped += sum(out.stats.dropped for out in outputs)
