"""The relay process: owns one Unix socket, validates what publishers send, fans it out to subscribers.

Theory of operation. Every connection starts in HANDSHAKE and must send a Hello control message. A
publisher's later input is decoded and validated message by message (a batch envelope counts as one:
its CRC is checked once and its run of messages is checked with ``check_run``) and each validated unit
is routed at once, so a bad message cuts its publisher off after everything before it was delivered
and nothing after it. Routing never waits: each subscriber's asyncio transport buffer is its bounded
buffer; what does not fit is dropped and counted (overflow "drop", the subscriber gets a Dropped
message before its next delivery) or ends the connection (overflow "disconnect"). Whole-stream
subscribers get each validated run in one write; filtered ones get the messages that match.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import itertools
import json
import os
import socket
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
    RelayError,
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
from tickrelay.relay.fanout import Filter, iter_messages, select


DEFAULT_SUBSCRIBER_BUFFER = 16 << 20  # bytes a subscriber may have queued before overflow applies
MAX_BATCH_PAYLOAD = 8 << 20
_ERROR_CODES = {BadDomain: ErrorCode.WRONG_DOMAIN, PayloadTooLarge: ErrorCode.TOO_LARGE,
                ChecksumMismatch: ErrorCode.CHECKSUM}  # fmt: skip


@dataclasses.dataclass
class RelaySettings:
    domain: Domain = Domain.MARKET_DATA
    verify_checksums: bool = True  # always on for signal and execution
    max_payload: int = DEFAULT_MAX_PAYLOAD
    subscriber_buffer: int = DEFAULT_SUBSCRIBER_BUFFER
    default_overflow: Overflow = Overflow.DROP


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

    async def start(self) -> None:
        """Bind the socket (removing a stale one; refusing if a relay is live there) and serve."""
        _claim(self.path)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _Connection(self), str(self.path))
        self.path.chmod(0o660)

    async def stop(self, drain_s: float = 2.0) -> None:
        """Stop accepting, let subscribers take what is queued (``drain_s`` at most), close, unlink."""
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
            chunk, n = select(sub.filter, body)
            if n:
                self._deliver(sub, chunk, n, source, stream_id)

    def _deliver(self, sub: _Client, chunk: bytes | memoryview, n: int, source: int, stream_id: int) -> None:
        """Queue ``n`` messages for ``sub``: first a Dropped notice per stream for what it lost since its
        last delivery, then the whole messages that fit its buffer; the rest is dropped and counted."""
        transport = sub.transport
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
                self._refuse(
                    sub, ErrorCode.OVERFLOW, f"buffer of {sub.buffer_bytes} bytes overflowed", "overflow"
                )
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
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.client: _Client | None = None
        s = relay.settings
        self.decoder = Decoder(
            max_payload=max(s.max_payload, MAX_BATCH_PAYLOAD), verify_checksum=relay._verify
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.client = _Client(next(self.relay._ids), cast(asyncio.Transport, transport))

    def data_received(self, data: bytes) -> None:
        client, relay = self.client, self.relay
        assert client is not None
        if client.transport.is_closing():
            return
        self.decoder.feed(data)
        try:
            while (message := self.decoder.next_message()) is not None:
                if client.role is None:
                    control = decode_control(message) if message.header.flags & FLAG_CONTROL else None
                    if not isinstance(control, Hello):
                        raise _Refusal(ErrorCode.BAD_HANDSHAKE, "the first message must be a Hello")
                    relay.handshake(client, control)
                elif client.role == Role.PUBLISHER:
                    relay.publish(client, message)
                else:
                    raise _Refusal(ErrorCode.NOT_ALLOWED, "subscribers cannot publish")
        except _Refusal as exc:
            relay._refuse(client, exc.code, str(exc), ErrorCode(exc.code).name.lower())
        except ProtocolError as exc:
            code = next((c for t, c in _ERROR_CODES.items() if isinstance(exc, t)), ErrorCode.PROTOCOL)
            relay._refuse(client, code, f"{type(exc).__name__}: {exc}", ErrorCode(code).name.lower())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is not None:
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


def _claim(path: Path) -> None:
    """Make ``path`` free for a new relay: remove a stale socket, refuse a live one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
            raise RelayError(f"cannot check {path}: {exc.strerror}") from None
        path.unlink(missing_ok=True)  # a dead relay's socket
        return
    finally:
        probe.close()
    raise RelayError(f"a relay is already listening on {path}")
