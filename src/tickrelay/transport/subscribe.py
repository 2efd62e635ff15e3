"""The subscriber client: ``async for item in Subscription(...)`` yields decoded messages and gaps.

It connects to a relay, says what it wants (a Filter, its overflow policy and buffer), and yields every
Protocol V2 message it receives, in order. It tracks the sequence counter of every stream
(source, stream id): when a counter jumps it yields a :class:`Gap` with the number of messages missing,
before the message that revealed it. The tracking survives reconnects (backoff with jitter), so a
relay restart shows up as the exact gap. A filtered subscription skips counters by design; it yields
a Gap for each Dropped notice of the relay (expected..got spans the exact count dropped, after the last
counter seen), and after a reconnect for the first message of each stream it knew whose counter does
not follow the last one seen (an upper bound: the skipped counters include messages its filter would
not have passed). ``raw=True`` yields the bytes as received instead (no decoding, no gap tracking) for
tools that only copy the stream.

Before connecting it checks the socket's directory, and after connecting who listens
(transport/paths.py): an unsafe socket raises UnsafeSocket, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

from tickrelay.errors import ProtocolError, RelayError
from tickrelay.protocol.codec import COUNTER_BITS, COUNTER_MASK, Decoder, Domain, Message, relay_source
from tickrelay.protocol.link import (
    FLAG_CONTROL,
    Hello,
    HelloAck,
    Overflow,
    RelayError as RelayErrorMsg,
    Role,
    decode_control,
    encode_control,
)
from tickrelay.protocol.messages import Dropped
from tickrelay.relay.fanout import Filter
from tickrelay.transport.backoff import backoff
from tickrelay.transport.paths import check_peer, check_socket_dir


READ_SIZE = 1 << 18


class Gap(NamedTuple):
    """Messages of stream (source, stream_id) that never arrived: counters expected .. got - 1."""

    source: int
    stream_id: int
    expected: int
    got: int

    @property
    def missing(self) -> int:
        return self.got - self.expected


@dataclasses.dataclass
class SubscriptionStats:
    messages: int = 0
    bytes: int = 0
    gaps: int = 0
    missing: int = 0  # messages lost, summed over gaps
    out_of_order: int = 0  # a counter at or below the last one seen (never expected)
    dropped_by_relay: int = 0  # from Dropped notices: messages the relay dropped for this subscriber
    reconnects: int = 0
    last_error: str = ""


class Subscription:
    """A subscription to one relay. Iterate it; it reconnects by itself unless ``reconnect=False``."""

    def __init__(
        self,
        path: Path | str,
        *,
        domain: Domain = Domain.MARKET_DATA,
        filter: Filter | None = None,
        name: str = "",
        source: int = 0,
        overflow: Overflow = Overflow.DROP,
        buffer_bytes: int = 0,
        raw: bool = False,
        reconnect: bool = True,
        backoff_cap_s: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.domain = domain
        self.filter = filter or Filter()
        self.hello = Hello(
            Role.SUBSCRIBER, domain, source, 0, overflow, buffer_bytes, name,
            tuple(sorted(self.filter.tlv_types)), tuple(sorted(self.filter.venues)),
            tuple(sorted(self.filter.asset_ids)),
        )  # fmt: skip
        self.raw = raw
        self.reconnect = reconnect
        self.backoff_cap_s = backoff_cap_s
        self.stats = SubscriptionStats()
        self.last: dict[tuple[int, int], int] = {}  # (source, stream id) -> last counter seen
        self.connected = asyncio.Event()

    def __aiter__(self) -> AsyncIterator[Message | Gap | bytes]:
        return self._items()

    async def _items(self) -> AsyncIterator[Message | Gap | bytes]:
        delays = backoff(cap_s=self.backoff_cap_s)
        first = True
        while True:
            check_socket_dir(self.path)
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.path), limit=READ_SIZE)
            except OSError as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if not self.reconnect:
                    raise RelayError(f"cannot connect to {self.path}: {exc.strerror}") from None
                await asyncio.sleep(next(delays))
                continue
            try:
                check_peer(writer.get_extra_info("socket"), self.path)
                decoder = await self._handshake(reader, writer)
                resumed, first = not first, False
                self.stats.reconnects += resumed
                delays = backoff(cap_s=self.backoff_cap_s)
                self.connected.set()
                async for item in self._stream(reader, decoder, resumed):
                    yield item
                self.stats.last_error = "the relay closed the connection"
            except (OSError, ProtocolError, RelayError) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if not self.reconnect:
                    raise
            finally:
                self.connected.clear()
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            if not self.reconnect:
                return
            await asyncio.sleep(next(delays))

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Decoder:
        writer.write(encode_control(self.hello))
        decoder = Decoder(max_payload=8 << 20)
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                raise RelayError("the relay closed the connection during the handshake")
            decoder.feed(data)
            message = decoder.next_message()
            if message is None:
                continue
            control = decode_control(message)
            if isinstance(control, RelayErrorMsg):
                raise RelayError(f"the relay refused the subscription: {control.reason}")
            if not isinstance(control, HelloAck):
                raise ProtocolError(f"expected HelloAck, got {type(control).__name__}")
            return decoder

    async def _stream(
        self, reader: asyncio.StreamReader, decoder: Decoder, resumed: bool
    ) -> AsyncIterator[Message | Gap | bytes]:
        """What the relay sends after its HelloAck, starting with what came in the HelloAck's read."""
        stats = self.stats
        if self.raw:
            leftover = decoder.take_buffered()
            if leftover:
                yield leftover
            while data := await reader.read(READ_SIZE):
                stats.bytes += len(data)
                yield data
            return
        last = self.last
        track = self.filter.is_everything
        unsure = set(last) if resumed and not track else set()  # streams that may have lost messages
        relays = relay_source(self.domain)
        while True:
            for message in decoder:
                h = message.header
                if h.flags & FLAG_CONTROL:
                    control = decode_control(message)
                    if isinstance(control, RelayErrorMsg):
                        raise RelayError(f"the relay cut this subscription off: {control.reason}")
                    continue
                if h.source == relays:
                    for event in message.events():
                        if isinstance(event, Dropped):
                            stats.dropped_by_relay += event.dropped
                            if not track:
                                yield self._gap((event.source, event.stream_id), event.dropped)
                key = (h.source, h.sequence >> COUNTER_BITS)
                counter = h.sequence & COUNTER_MASK
                prev = last.get(key)
                if prev is not None and counter != prev + 1 and (track or key in unsure):
                    if counter > prev + 1:
                        yield self._gap(key, counter - prev - 1)
                    else:
                        stats.out_of_order += 1
                if unsure:
                    unsure.discard(key)
                last[key] = counter
                stats.messages += 1
                yield message
            data = await reader.read(READ_SIZE)
            if not data:
                return
            stats.bytes += len(data)
            decoder.feed(data)

    def _gap(self, key: tuple[int, int], missing: int) -> Gap:
        """Count a gap of ``missing`` messages of stream ``key`` after the last counter seen."""
        self.stats.gaps += 1
        self.stats.missing += missing
        expected = self.last.get(key, 0) + 1
        return Gap(key[0], key[1], expected, expected + missing)
