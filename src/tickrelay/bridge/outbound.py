"""Bridge out: a relay subscriber that publishes every message to NATS (I/O: relay socket, NATS).

Messages go unchanged into batches per subject (``batch.Batcher``): a flush is published when its
first message is ``latency_s`` old or ``max_flush_bytes`` are pending. Publishing is core NATS (no
per-message acks: the replay stream captures the subjects; a loss anywhere shows as a gap in the
origin stream's counters at the far side). One task publishes, in the order the parts were made.

Every ``snapshot_s`` the books that changed (``books.BookKeeper``) are published to the last-value
stream, each as one message of the bridge's own stream (source 70): InstrumentMeta then the L2Snapshot
parts (or an L2Reset while the book is unusable), with header ``Tickrelay-Upto`` naming the last
message that changed the book; new InstrumentMeta go there too. The flush holding those messages is
published first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import random
import time
from collections import deque
from pathlib import Path

from nats.aio.client import Client
from nats.errors import ConnectionClosedError, Error as NatsError, MaxPayloadError, OutboundBufferLimitError

from tickrelay.bridge.auth import NatsAccess
from tickrelay.bridge.batch import Batcher
from tickrelay.bridge.books import BookKeeper
from tickrelay.bridge.connection import (
    FLUSH_HEADER,
    UPTO_HEADER,
    NatsStats,
    connect,
    ensure_streams,
    stream_configs,
)
from tickrelay.bridge.subjects import LAST_PREFIX, SubjectNamer, first_tlv
from tickrelay.consumers.market import Key
from tickrelay.errors import NatsRefused
from tickrelay.protocol.codec import (
    Decoder,
    Domain,
    Message,
    Source,
    encode_events,
    make_sequence,
    relay_source,
)
from tickrelay.protocol.messages import Dropped, Event, InstrumentMeta, TlvType
from tickrelay.transport.subscribe import Subscription


_BOOK_TYPES = frozenset((TlvType.L2_SNAPSHOT, TlvType.L2_DELTA, TlvType.L2_RESET, TlvType.STATE_INVALIDATION))


@dataclasses.dataclass
class OutSettings:
    domain: Domain = Domain.MARKET_DATA
    latency_s: float = 0.001  # the longest a message waits for its flush
    max_batch_bytes: int = 256 << 10
    max_flush_bytes: int = 1 << 20
    snapshot_s: float = 0.25  # how often changed books go to the last-value stream
    max_age_s: float = 3600.0  # the replay stream keeps this much
    replicas: int = 1
    setup_streams: bool = True
    access: NatsAccess = dataclasses.field(default_factory=NatsAccess)  # TLS and credentials


@dataclasses.dataclass
class OutStats:
    messages: int = 0  # from the relay, published or queued
    bytes: int = 0
    nats_messages: int = 0
    flushes: int = 0
    snapshots: int = 0  # last-value book messages
    metas: int = 0  # last-value meta messages
    relay_dropped: int = 0  # the relay's Dropped notices: messages it dropped for this subscriber
    publish_failed: int = 0  # NATS messages that could not be published (buffer full while disconnected)
    nats: NatsStats = dataclasses.field(default_factory=NatsStats)


class BridgeOut:
    def __init__(self, relay_path: Path, servers: list[str], settings: OutSettings | None = None) -> None:
        self.relay_path = relay_path
        self.servers = servers
        self.settings = s = settings or OutSettings()
        self.stats = OutStats()
        self.instance = f"{random.getrandbits(32):08x}"
        self.batcher = Batcher(
            self.instance, max_batch_bytes=s.max_batch_bytes, max_flush_bytes=s.max_flush_bytes
        )
        self._relay_source = relay_source(s.domain)
        self.namer = SubjectNamer()
        self.last_namer = SubjectNamer(LAST_PREFIX)
        self.books = BookKeeper()
        self.stream_id = random.randrange(1, 1 << 16)  # the bridge's own stream (last-value messages)
        self._counter = 0
        self._queue: deque[tuple[str, bytes, dict[str, str]]] = deque()
        self._wake = asyncio.Event()
        self._armed = False
        self._closing = False
        self.subscription: Subscription | None = None
        self.client: Client | None = None
        self.ready = asyncio.Event()  # connected to NATS, streams set up, relay subscription starting

    # ---- relay -> batches (synchronous: no await between a message and its batch) --------------------

    def _handle(self, m: Message) -> None:
        h, raw = m.header, m.raw
        if h.source == self._relay_source:  # the relay's own notices to this subscriber
            self.stats.relay_dropped += sum(e.dropped for e in m.events() if isinstance(e, Dropped))
            return
        t = first_tlv(raw)[0]
        if t == TlvType.INSTRUMENT_META or t in _BOOK_TYPES:
            events = m.events()
            for e in events:
                if isinstance(e, InstrumentMeta):
                    self.namer.learn(e.venue_id, e.asset_id, e.symbol)
                    self.last_namer.learn(e.venue_id, e.asset_id, e.symbol)
            self.books.apply(h, events)
        self.stats.messages += 1
        self.stats.bytes += len(raw)
        for part in self.batcher.add(self.namer.subject(raw), raw):
            self._queue.append((part.subject, part.payload, {FLUSH_HEADER: part.tag}))
            self._wake.set()
        if not self._armed:
            self._armed = True
            asyncio.get_running_loop().call_later(self.settings.latency_s, self._flush)

    def _flush(self) -> None:
        self._armed = False
        parts = self.batcher.take()
        if parts:
            self.stats.flushes += 1
            self._queue.extend((p.subject, p.payload, {FLUSH_HEADER: p.tag}) for p in parts)
            self._wake.set()

    # ---- last values -------------------------------------------------------------------------------

    def _own(self, *events: Event) -> bytes:
        self._counter += 1
        seq = make_sequence(self.stream_id, self._counter)
        return encode_events(self.settings.domain, Source.NATS_BRIDGE, seq, time.time_ns(), *events)

    def _last_values(self) -> None:
        books, metas = self.books.take_changed()
        if not books and not metas:
            return
        self._flush()  # the messages a snapshot includes are published before it
        domain = int(self.settings.domain)
        for key in metas:
            meta = self.books.metas[key]
            subject = self.last_namer.instrument(domain, key[0], key[1], "meta")
            self._queue.append((subject, self._own(meta), {}))
            self.stats.metas += 1
        for key in books:
            self._queue.append(self._book(domain, key))
            self.stats.snapshots += 1
        self._wake.set()

    def _book(self, domain: int, key: Key) -> tuple[str, bytes, dict[str, str]]:
        source, stream_id, counter = self.books.positions[key]
        subject = self.last_namer.instrument(domain, key[0], key[1], "book")
        return (
            subject,
            self._own(*self.books.snapshot_events(key)),
            {UPTO_HEADER: f"{source}.{stream_id}.{counter}"},
        )

    async def _snapshots(self) -> None:
        while True:
            await asyncio.sleep(self.settings.snapshot_s)
            self._last_values()

    # ---- publishing ----------------------------------------------------------------------------------

    async def _publish(self, nc: Client) -> None:
        queue, stats = self._queue, self.stats
        while not (self._closing and not queue):
            await self._wake.wait()
            self._wake.clear()
            while queue:
                subject, payload, headers = queue.popleft()
                try:
                    await nc.publish(subject, payload, headers=headers or None)
                    stats.nats_messages += 1
                except (OutboundBufferLimitError, ConnectionClosedError, MaxPayloadError) as exc:
                    stats.publish_failed += 1
                    stats.nats.last_error = f"publish: {type(exc).__name__}"

    async def _consume(self) -> None:
        s = self.settings
        self.subscription = sub = Subscription(
            self.relay_path, domain=s.domain, name="bridge-out", raw=True, buffer_bytes=64 << 20
        )
        new_decoder = functools.partial(Decoder, domain=s.domain, max_payload=8 << 20, verify_checksum=False)
        decoder = new_decoder()  # (no CRC checks: the relay checked them)
        handle, connection = self._handle, 0
        async for chunk in sub:
            assert isinstance(chunk, bytes)
            if sub.stats.reconnects != connection:  # a new connection: drop a message cut by the old one
                connection, decoder = sub.stats.reconnects, new_decoder()
            decoder.feed(chunk)
            for m in decoder:
                handle(m)

    async def _setup(self, nc: Client, stop: asyncio.Event) -> bool:
        """Create or update the streams, retrying while JetStream is not ready (a cluster electing its
        leader); False if ``stop`` was set first."""
        s = self.settings
        while True:
            try:
                await ensure_streams(nc.jetstream(), stream_configs(s.max_age_s, s.replicas))
                return True
            except (NatsError, TimeoutError) as exc:
                self.stats.nats.last_error = f"stream setup: {type(exc).__name__}: {exc}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if stop.is_set():
                return False

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until ``stop`` is set; then publish what is pending and close.

        Raises:
            NatsRefused: the server refused the credentials, a permission or the TLS setup.
        """
        await self._run(stop)
        if self.stats.nats.refused:
            raise NatsRefused(self.stats.nats.refused)

    async def _run(self, stop: asyncio.Event) -> None:
        s = self.settings
        self.client = nc = await connect(
            self.servers, "tickrelay-bridge-out", self.stats.nats, stop, s.access
        )
        if nc is None:
            return
        try:
            if s.setup_streams and not await self._setup(nc, stop):
                return
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._publish(nc)), tg.create_task(self._consume()),
                         tg.create_task(self._snapshots())]  # fmt: skip
                await stop.wait()
                for task in tasks[1:]:
                    task.cancel()
                self._last_values()
                self._flush()
                self._closing = True
                self._wake.set()  # the publisher drains the queue, then returns
            with contextlib.suppress(Exception):
                await nc.flush(timeout=2)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()
