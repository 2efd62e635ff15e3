"""Batching Protocol V2 messages into NATS messages, and merging them back in order. Pure: no I/O.

A NATS payload is a run of whole Protocol V2 messages back to back (the header's payload_size
delimits them, as on a socket or in a file). Bridge-out collects what its relay delivers for a short
time (the caller's latency bound, 1 ms by default) into one *flush*: one batch per subject, cut at
``max_batch_bytes``; the whole flush is published at once when the time is up or ``max_flush_bytes``
are pending. Each NATS message carries the header ``Tickrelay-Flush: <instance>.<flush>.<end>``
(the bridge-out process, its flush counter, 1 on the flush's last message).

Why the header: one publisher stream interleaves subjects (a trade, a book delta, a quote ...), so a
flush splits a stream's run over several batches. :class:`FlushMerger` (bridge-in) gathers the
batches of one flush and puts each stream's messages back in counter order before they are
forwarded. A flush is complete on its ``end`` message, on the first message of a later flush
(NATS keeps one publisher's order), or when the caller's hold time expires (a subscription to some
subjects only never sees the other batches of a flush).
"""

from __future__ import annotations

from typing import NamedTuple

from tickrelay.errors import ProtocolError
from tickrelay.protocol.codec import Decoder, Message


HEADER = "Tickrelay-Flush"


class Part(NamedTuple):
    """One NATS message to publish."""

    subject: str
    payload: bytes
    tag: str  # the Tickrelay-Flush header value


class Batcher:
    """Bridge-out's side: messages in (with their subjects), NATS messages out, flush by flush.

    Args:
        instance: names this bridge-out process in the flush tags (a restart is a new instance).
        max_batch_bytes: a subject's batch is cut before it would grow past this (a single larger
            message goes alone).
        max_flush_bytes: pending bytes that end a flush at once, whatever the time.
    """

    def __init__(
        self, instance: str, *, max_batch_bytes: int = 256 << 10, max_flush_bytes: int = 1 << 20
    ) -> None:
        self.instance = instance
        self.max_batch_bytes = max_batch_bytes
        self.max_flush_bytes = max_flush_bytes
        self.flush = 1  # the current flush's number
        self.pending_bytes = 0
        self.messages = 0
        self._batches: dict[str, bytearray] = {}

    def _tag(self, end: bool) -> str:
        return f"{self.instance}.{self.flush}.{int(end)}"

    def add(self, subject: str, message: bytes) -> list[Part]:
        """Add one message; returns what must be published now (usually nothing)."""
        out: list[Part] = []
        buf = self._batches.get(subject)
        if buf is None:
            buf = self._batches[subject] = bytearray()
        elif buf and len(buf) + len(message) > self.max_batch_bytes:
            out.append(Part(subject, bytes(buf), self._tag(False)))
            self.pending_bytes -= len(buf)
            buf.clear()
        buf += message
        self.pending_bytes += len(message)
        self.messages += 1
        if self.pending_bytes >= self.max_flush_bytes:
            out += self.take()
        return out

    def take(self) -> list[Part]:
        """End the current flush: its remaining batches, the last one tagged ``end``."""
        parts = [(subject, bytes(buf)) for subject, buf in self._batches.items() if buf]
        self._batches.clear()
        self.pending_bytes = 0
        last = len(parts) - 1
        out = [Part(subject, payload, self._tag(i == last)) for i, (subject, payload) in enumerate(parts)]
        self.flush += 1
        return out


def split_messages(payload: bytes, domain: int | None = None) -> list[Message]:
    """The whole messages of one NATS payload (CRCs checked).

    Raises:
        ProtocolError: bad framing or checksum, a message of another domain, or a truncated message.
    """
    decoder = Decoder(domain=domain)
    decoder.feed(payload)
    messages = list(decoder)
    if decoder.buffered:
        raise ProtocolError(f"payload ends inside a message ({decoder.buffered} bytes left over)")
    return messages


def parse_tag(tag: str | None) -> tuple[str, int, bool] | None:
    """(instance, flush, end) of a Tickrelay-Flush header value; None if absent or malformed."""
    if not tag:
        return None
    instance, _, rest = tag.partition(".")
    flush, _, end = rest.partition(".")
    if not instance or not flush.isdigit() or end not in ("0", "1"):
        return None
    return instance, int(flush), end == "1"


def _order(messages: list[Message]) -> list[Message]:
    # each stream's messages by counter; streams stay apart (their order relative to each other is free)
    return sorted(messages, key=lambda m: (m.header.source, m.header.sequence))


class FlushMerger:
    """Bridge-in's side: NATS payloads in, messages out with every stream in counter order."""

    def __init__(self, domain: int | None = None) -> None:
        self.domain = domain
        self.flushes = 0  # flushes completed
        self.incomplete = 0  # completed without their end message (a later flush came, or time ran out)
        self._key: tuple[str, int] | None = None
        self._parts = 0
        self._messages: list[Message] = []

    @property
    def pending(self) -> bool:
        """A flush is open (the caller arms its hold timer)."""
        return self._key is not None

    def feed(self, tag: str | None, payload: bytes) -> list[Message]:
        """One NATS message; returns the messages now ready, in order.

        Raises:
            ProtocolError: as :func:`split_messages` (the payload is dropped; an open flush stays open).
        """
        messages = split_messages(payload, self.domain)
        parsed = parse_tag(tag)
        out: list[Message] = []
        if parsed is None or (parsed[0], parsed[1]) != self._key:
            if self._key is not None:
                out = self._complete(incomplete=True)
            if parsed is None:
                return out + messages
            self._key = (parsed[0], parsed[1])
        self._messages += messages
        self._parts += 1
        if parsed[2]:
            out += self._complete(incomplete=False)
        return out

    def expire(self) -> list[Message]:
        """The hold time ran out: release the open flush as it is."""
        return self._complete(incomplete=True) if self._key is not None else []

    def _complete(self, *, incomplete: bool) -> list[Message]:
        messages = self._messages if self._parts == 1 else _order(self._messages)
        self._key, self._parts, self._messages = None, 0, []
        self.flushes += 1
        self.incomplete += incomplete
        return messages
