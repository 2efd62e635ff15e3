"""The relay process: owns one Unix socket, validates what publishers send, fans it out to subscribers.

Theory of operation. Every connection starts in HANDSHAKE and must send a Hello control message. A
publisher's later input is decoded and validated message by message (a batch envelope counts as one:
its CRC is checked once and its run of messages is checked with ``check_run``) and each validated unit
is routed at once, so a bad message cuts its publisher off after everything before it was delivered
and nothing after it. Routing never waits: each subscriber's asyncio transport buffer is its bounded
buffer; what does not fit is dropped and counted (overflow "drop", the subscriber gets a Dropped
message before its next delivery) or ends the connection (overflow "disconnect"). Whole-stream
subscribers get each validated run in one write; filtered ones get the messages that match.

Limits. Before its Hello a connection may send one message of at most ``HELLO_MAX_PAYLOAD`` bytes,
and must do so within ``hello_timeout_s``; a message begun must be complete within
``message_timeout_s``; at most ``max_connections`` are open at once. Each breach is refused with one
RelayError, counted under ``rejected`` by reason, and closed. An overflowing "disconnect" subscriber
is aborted at once: its queue is discarded, not drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from tickrelay.errors import (
    BadDomain,
    ChecksumMismatch,
    PayloadTooLarge,
    ProtocolError,
)
from tickrelay.protocol.codec import (
    DEFAULT_MAX_PAYLOAD,
    Decoder,
    Domain,
    Message,
    domain_name,
    encode_events,
    make_sequence,
    relay_source,
    split_sequence,
)
from tickrelay.protocol.link import (
    BATCH_START,
    FLAG_BATCH,
    FLAG_CONTROL,
    ErrorCode,
    Hello,
    HelloAck,
    Overflow,
    RelayError as RelayErrorMsg,
    RelayStatus,
    Role,
    Sync,
    batch_head,
    check_run,
    decode_control,
    encode_control,
)
from tickrelay.protocol.messages import Dropped
from tickrelay.relay.fanout import Filter, Selector, iter_messages, selector
from tickrelay.relay.listen import bind_socket


DEFAULT_SUBSCRIBER_BUFFER = 16 << 20  # bytes a subscriber may have queued before overflow applies
MAX_BATCH_PAYLOAD = 8 << 20
HELLO_MAX_PAYLOAD = 64 << 10  # a Hello naming 8k instruments; all a connection may send before its Hello
_ERROR_CODES = {BadDomain: ErrorCode.WRONG_DOMAIN, PayloadTooLarge: ErrorCode.TOO_LARGE,
                ChecksumMismatch: ErrorCode.CHECKSUM}  # fmt: skip


@dataclasses.dataclass
class RelaySettings:
    domain: Domain = Domain.MARKET_DATA
    verify_checksums: bool = True  # always on for signal and execution
    max_payload: int = DEFAULT_MAX_PAYLOAD
    subscriber_buffer: int = DEFAULT_SUBSCRIBER_BUFFER
    default_overflow: Overflow = Overflow.DROP
    max_connections: int = 1000
    hello_timeout_s: float = 5.0
    message_timeout_s: float = 10.0  # a message begun must be complete within this


@dataclasses.dataclass(eq=False)
class _Client:
    client_id: int
    transport: asyncio.Transport
    role: Role | None = None
    name: str = ""
    source: int = 0
    stream_id: int = 0
    messages: int = 0
    bytes: int = 0
    batches: int = 0
    # subscribers only
    filter: Filter = dataclasses.field(default_factory=Filter)
    select: Selector = dataclasses.field(default_factory=lambda: selector(Filter()))  # `filter` compiled
    overflow: Overflow = Overflow.DROP
    buffer_bytes: int = DEFAULT_SUBSCRIBER_BUFFER
    dropped: int = 0
    high_water: int = 0
    pending_drops: Counter[tuple[int, int]] = dataclasses.field(default_factory=Counter)
    counter: int = 0  # the relay's own stream to this subscriber (Dropped messages)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"client_id": self.client_id, "name": self.name, "messages": self.messages,
                               "bytes": self.bytes}  # fmt: skip
        if self.role == Role.PUBLISHER:
            out |= {"source": self.source, "stream_id": self.stream_id, "batches": self.batches}
        else:
            out |= {
                "filter": {k: sorted(v) for k, v in self.filter._asdict().items()},
                "overflow": Overflow(self.overflow).name.lower(),
                "buffer_bytes": self.buffer_bytes,
                "dropped": self.dropped,
                "high_water": self.high_water,
                "queued": self.transport.get_write_buffer_size(),
            }
        return out


class Relay:
    """The relay for one domain, serving on ``path`` once :meth:`start` returned."""

    def __init__(self, path: Path, settings: RelaySettings | None = None) -> None:
        self.path = path
        self.settings = settings or RelaySettings()
        self.source = relay_source(self.settings.domain)
        self._require_checksum = self.settings.domain in (Domain.SIGNAL, Domain.EXECUTION)
        self._verify = self.settings.verify_checksums or self._require_checksum
        self._server: asyncio.AbstractServer | None = None
        self._ids = itertools.count(1)
        self.publishers: dict[tuple[int, int], _Client] = {}
        self.subscribers: list[_Client] = []
        self._everything: list[_Client] = []
        self._filtered: list[_Client] = []
        self.rejected: Counter[str] = Counter()
        self.started_ns = time.time_ns()
        self.departed: Counter[str] = Counter()  # totals of clients gone (metrics stay monotonic)
        self.connections: set[_Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Bind the socket (removing a stale one of ours; refusing if a relay is live there, or the
        directory or the path is not safe: see transport/paths.py) and serve."""
        sock = bind_socket(self.path)
        loop = asyncio.get_running_loop()
        backlog = max(100, min(self.settings.max_connections, 4096))  # a burst of connects waits, not fails
        self._server = await loop.create_unix_server(lambda: _Connection(self), sock=sock, backlog=backlog)
        self._sweep()

    def _sweep(self) -> None:
        """Refuse the connections past their handshake or message deadline; runs four times a deadline."""
        s, now = self.settings, time.monotonic()
        for conn in list(self.connections):
            client = conn.client
            if client.transport.is_closing():
                continue
            if client.role is None and now - conn.opened > s.hello_timeout_s:
                self._refuse(client, ErrorCode.TIMEOUT, f"no Hello within {s.hello_timeout_s:g} s",
                             "handshake_timeout")  # fmt: skip
            elif conn.partial_since and now - conn.partial_since > s.message_timeout_s:
                reason = f"{conn.decoder.buffered} bytes of a message not completed within "
                reason += f"{s.message_timeout_s:g} s"
                self._refuse(client, ErrorCode.TIMEOUT, reason, "stalled_message")
        period = min(1.0, max(0.01, min(s.hello_timeout_s, s.message_timeout_s) / 4))
        self._sweeper = asyncio.get_running_loop().call_later(period, self._sweep)

    async def stop(self, drain_s: float = 2.0) -> None:
        """Stop accepting, let subscribers take what is queued (``drain_s`` at most), close, unlink."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and self._queued():  # noqa: ASYNC110 - no "drained" event exists
            await asyncio.sleep(0.01)
        for client in [*self.subscribers, *self.publishers.values()]:
            client.transport.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def _queued(self) -> bool:
        return any(s.transport.get_write_buffer_size() for s in self.subscribers)

    def status(self) -> dict[str, Any]:
        return {
            "domain": domain_name(self.settings.domain),
            "socket": str(self.path),
            "pid": os.getpid(),
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 3),
            "verify_checksums": self._verify,
            "publishers": [p.stats() for p in self.publishers.values()],
            "subscribers": [s.stats() for s in self.subscribers],
            "rejected": dict(self.rejected),
        }

    # ---- routing -------------------------------------------------------------------------------

    def route(self, body: bytes | memoryview, count: int, source: int, stream_id: int) -> None:
        """Deliver a validated run of ``count`` messages of stream (source, stream_id)."""
        for sub in self._everything:
            self._deliver(sub, body, count, source, stream_id)
        for sub in self._filtered:
            chunk, n = sub.select(body)
            if n:
                self._deliver(sub, chunk, n, source, stream_id)

    def _deliver(self, sub: _Client, chunk: bytes | memoryview, n: int, source: int, stream_id: int) -> None:
        """Queue ``n`` messages for ``sub``: first a Dropped notice per stream for what it lost since its
        last delivery, then the whole messages that fit its buffer; the rest is dropped and counted."""
        transport = sub.transport
        if transport.is_closing():
            return  # cut off by overflow: it leaves the routing lists when its connection is lost
        queued = transport.get_write_buffer_size()
        notices = b"".join(
            encode_events(
                self.settings.domain, self.source, self._next_seq(sub), time.time_ns(), Dropped(src, sid, k)
            )
            for (src, sid), k in sub.pending_drops.items()
        )
        room = sub.buffer_bytes - queued - len(notices)
        fit, kept = (len(chunk), n) if len(chunk) <= room else _prefix(chunk, room)
        if kept < n:
            if sub.overflow == Overflow.DISCONNECT:
                sub.dropped += n
                self.rejected["overflow"] += 1
                transport.abort()  # discards the queue: no error message could get past it anyway
                return
            sub.dropped += n - kept
            if not kept:
                sub.counter -= len(sub.pending_drops)  # the notices were not sent: reuse their sequences
                sub.pending_drops[(source, stream_id)] += n
                return
        if notices:
            transport.write(notices)
            sub.pending_drops.clear()
        if kept < n:
            sub.pending_drops[(source, stream_id)] += n - kept
        transport.write(chunk[:fit] if fit < len(chunk) else chunk)
        sub.messages += kept
        sub.bytes += fit
        queued += len(notices) + fit
        if queued > sub.high_water:
            sub.high_water = queued

    def _next_seq(self, sub: _Client) -> int:
        sub.counter += 1
        return make_sequence(0, sub.counter)

    # ---- connection events -----------------------------------------------------------------------

    def handshake(self, client: _Client, hello: Hello) -> None:
        if hello.domain != self.settings.domain:
            raise _Refusal(ErrorCode.WRONG_DOMAIN, f"this relay carries domain {int(self.settings.domain)}, "
                           f"not {hello.domain}")  # fmt: skip
        client.name, client.source = hello.name, hello.source
        if hello.role == Role.PUBLISHER:
            key = (hello.source, hello.stream_id)
            if key in self.publishers:
                raise _Refusal(ErrorCode.DUPLICATE_STREAM, f"stream {key} already has a live publisher")
            client.role, client.stream_id = Role.PUBLISHER, hello.stream_id
            self.publishers[key] = client
        elif hello.role == Role.SUBSCRIBER:
            client.role = Role.SUBSCRIBER
            client.filter = Filter(
                frozenset(hello.tlv_types), frozenset(hello.venues), frozenset(hello.asset_ids)
            )
            client.select = selector(client.filter)
            client.overflow = Overflow(hello.overflow) if hello.overflow else self.settings.default_overflow
            client.buffer_bytes = hello.buffer_bytes or self.settings.subscriber_buffer
            self.subscribers.append(client)
            (self._everything if client.filter.is_everything else self._filtered).append(client)
        elif hello.role == Role.STATUS:
            client.role = Role.STATUS
            client.transport.write(encode_control(RelayStatus(json.dumps(self.status()))))
            client.transport.close()
            return
        else:
            raise _Refusal(ErrorCode.BAD_HANDSHAKE, f"unknown role {hello.role}")
        client.transport.write(
            encode_control(HelloAck(client.client_id, time.time_ns(), client.buffer_bytes))
        )

    def publish(self, client: _Client, message: Message) -> None:
        """A validated message from a publisher: route it (or answer its control request)."""
        h = message.header
        if h.flags & FLAG_CONTROL:
            control = decode_control(message)
            if not isinstance(control, Sync):
                raise _Refusal(ErrorCode.NOT_ALLOWED, f"control {type(control).__name__} after the handshake")
            client.transport.write(encode_control(Sync(control.token, client.messages)))
            return
        if h.relay_domain != self.settings.domain:
            raise BadDomain(
                f"relay_domain {h.relay_domain} on the relay of domain {int(self.settings.domain)}"
            )
        if self._require_checksum and not h.flags & 1:
            raise ChecksumMismatch(f"message sequence {h.sequence:#x} carries no checksum")
        if h.flags & FLAG_BATCH:
            first, count = batch_head(message)
            check_run(message.raw, BATCH_START, count, self.settings.domain, self.settings.max_payload)
            body = memoryview(message.raw)[BATCH_START:]
            stream_id = split_sequence(first)[0]
        else:
            if h.payload_size > self.settings.max_payload:
                raise PayloadTooLarge(f"payload_size {h.payload_size} > limit {self.settings.max_payload}")
            body, count, stream_id = memoryview(message.raw), 1, split_sequence(h.sequence)[0]
        if stream_id != client.stream_id or h.source != client.source:
            raise _Refusal(ErrorCode.NOT_ALLOWED, f"message of stream ({h.source}, {stream_id}) on the "
                           f"connection of stream ({client.source}, {client.stream_id})")  # fmt: skip
        client.messages += count
        client.bytes += len(body)
        client.batches += 1
        self.route(body, count, client.source, client.stream_id)

    def _refuse(self, client: _Client, code: int, reason: str, counter: str) -> None:
        """Count ``counter``, tell the client why (one RelayError) and close."""
        self.rejected[counter] += 1
        with contextlib.suppress(Exception):
            client.transport.write(encode_control(RelayErrorMsg(code, reason)))
        client.transport.close()

    def metrics(self) -> dict[str, Any]:
        """Counters and gauges for the metrics endpoint (tickrelay.metrics), read at scrape time from
        the per-client numbers the relay keeps anyway: nothing is counted twice on the hot path."""
        d = domain_name(self.settings.domain)
        pubs, subs, gone = list(self.publishers.values()), self.subscribers, self.departed

        def total(value: int) -> dict[Any, Any]:
            return {"_labels": ("domain",), (d,): value}

        def each(value: Callable[[_Client], int]) -> dict[Any, Any]:
            return {
                "_labels": ("domain", "subscriber"),
                **{(d, f"{s.name}#{s.client_id}"): value(s) for s in subs},
            }

        return {
            "counters": {
                "relay_messages_in": total(gone["in"] + sum(p.messages for p in pubs)),
                "relay_bytes_in": total(gone["bytes_in"] + sum(p.bytes for p in pubs)),
                "relay_deliveries": total(gone["out"] + sum(s.messages for s in subs)),
                "relay_dropped": total(gone["dropped"] + sum(s.dropped for s in subs)),
                "relay_rejected": {
                    "_labels": ("domain", "reason"),
                    **{(d, r): n for r, n in self.rejected.items()},
                },
                "relay_subscriber_messages": each(lambda s: s.messages),
                "relay_subscriber_dropped": each(lambda s: s.dropped),
            },
            "gauges": {
                "relay_publishers": total(len(pubs)),
                "relay_subscribers": total(len(subs)),
                "relay_subscriber_queued_bytes": each(lambda s: s.transport.get_write_buffer_size()),
            },
        }

    def drop(self, client: _Client) -> None:
        if client.role == Role.PUBLISHER:
            if self.publishers.pop((client.source, client.stream_id), None) is client:
                self.departed["in"] += client.messages
                self.departed["bytes_in"] += client.bytes
        elif client.role == Role.SUBSCRIBER:
            if client in self.subscribers:
                self.departed["out"] += client.messages
                self.departed["dropped"] += client.dropped
            for group in (self.subscribers, self._everything, self._filtered):
                if client in group:
                    group.remove(client)


class _Refusal(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class _Connection(asyncio.Protocol):
    client: _Client

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.decoder = Decoder(max_payload=HELLO_MAX_PAYLOAD)  # until the Hello: one small message
        self.opened = time.monotonic()
        self.partial_since = 0.0  # monotonic time the message now buffered in part began (0: none)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        relay = self.relay
        self.client = _Client(next(relay._ids), cast(asyncio.Transport, transport))
        limit = relay.settings.max_connections
        if len(relay.connections) >= limit:
            relay._refuse(self.client, ErrorCode.LIMIT, f"the relay serves at most {limit} connections",
                          "too_many_connections")  # fmt: skip
            return
        relay.connections.add(self)

    def data_received(self, data: bytes) -> None:
        client, relay = self.client, self.relay
        if client.transport.is_closing():
            return
        self.decoder.feed(data)
        taken = False
        try:
            while (message := self.decoder.next_message()) is not None:
                taken = True
                if client.role is None:
                    control = decode_control(message) if message.header.flags & FLAG_CONTROL else None
                    if not isinstance(control, Hello):
                        raise _Refusal(ErrorCode.BAD_HANDSHAKE, "the first message must be a Hello")
                    relay.handshake(client, control)
                    self._after_hello()
                elif client.role == Role.PUBLISHER:
                    relay.publish(client, message)
                else:
                    raise _Refusal(ErrorCode.NOT_ALLOWED, "subscribers cannot publish")
        except _Refusal as exc:
            relay._refuse(client, exc.code, str(exc), ErrorCode(exc.code).name.lower())
        except PayloadTooLarge as exc:
            if client.role is None:
                reason = f"before its Hello a connection may send one message of {HELLO_MAX_PAYLOAD} bytes"
                relay._refuse(client, ErrorCode.TOO_LARGE, f"{reason} at most: {exc}", "handshake_too_large")
            else:
                relay._refuse(client, ErrorCode.TOO_LARGE, f"PayloadTooLarge: {exc}", "too_large")
        except ProtocolError as exc:
            code = next((c for t, c in _ERROR_CODES.items() if isinstance(exc, t)), ErrorCode.PROTOCOL)
            relay._refuse(client, code, f"{type(exc).__name__}: {exc}", ErrorCode(code).name.lower())
        if not self.decoder.buffered:
            self.partial_since = 0.0
        elif taken or not self.partial_since:
            self.partial_since = time.monotonic()

    def _after_hello(self) -> None:
        """Past the handshake: the full message limits apply to what follows."""
        s = self.relay.settings
        rest = self.decoder.take_buffered()
        self.decoder = Decoder(
            max_payload=max(s.max_payload, MAX_BATCH_PAYLOAD), verify_checksum=self.relay._verify
        )
        self.decoder.feed(rest)

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.connections.discard(self)
        self.relay.drop(self.client)


def _prefix(run: bytes | memoryview, room: int) -> tuple[int, int]:
    """(bytes, messages) of the longest prefix of whole messages of ``run`` within ``room`` bytes."""
    size = kept = 0
    for _, length in iter_messages(run):
        if size + length > room:
            break
        size += length
        kept += 1
    return size, kept
