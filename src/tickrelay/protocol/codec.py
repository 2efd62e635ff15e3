"""Protocol V2 framing: the 32-byte header, whole messages, and a stream decoder. Pure: no I/O.

The caller owns sockets, files and clocks; this module owns bytes. ``Decoder.feed`` takes bytes in
any chunking and ``Decoder.next_message`` returns a complete :class:`Message` or ``None`` (need more
bytes). Malformed input raises a :class:`~tickrelay.errors.ProtocolError` subclass; any other
exception is a bug. ``Decoder`` is :class:`PyDecoder`, the reference, or the compiled core's
(tickrelay.native) where it runs: the same messages and errors, one copy per message, a faster CRC.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

from tickrelay.errors import (
    BadDomain,
    BadMagic,
    ChecksumMismatch,
    MalformedTlv,
    PayloadTooLarge,
    ProtocolError,
    UnsupportedVersion,
)
from tickrelay.native import compiled
from tickrelay.protocol.messages import (
    EXTENDED,
    QUOTE_STRUCT,
    TRADE_STRUCT,
    Event,
    Quote,
    TlvType,
    Trade,
    decode_value,
    encode_value,
)
from tickrelay.protocol.symbols import VenueId, name_of, venue_name


MAGIC = 0xDEADBEEF
MAGIC_BYTES = MAGIC.to_bytes(4, "little")
VERSION = 1
HEADER = struct.Struct("<IBBBBQQII")
HEADER_SIZE = HEADER.size  # 32
CHECKSUM_OFFSET = 28
FLAG_CHECKSUM = 0x01
DEFAULT_MAX_PAYLOAD = 1 << 20
COUNTER_BITS = 48
COUNTER_MASK = (1 << COUNTER_BITS) - 1


class Domain(enum.IntEnum):
    MARKET_DATA = 1
    SIGNAL = 2
    EXECUTION = 3
    SYSTEM = 4


def domain_name(domain: int, unknown: str | None = None) -> str:
    """``market-data``, ``signal``, ``execution``, ``system``: the word relays, sockets, commands and NATS
    subjects use; another value as ``unknown`` (default: its number)."""
    return name_of(Domain, domain, unknown).replace("_", "-")


class Source(enum.IntEnum):
    BINANCE_COLLECTOR = 1
    KRAKEN_COLLECTOR = 2
    COINBASE_COLLECTOR = 3
    STRATEGY = 20
    RISK_MONITOR = 41
    DASHBOARD = 60
    RECORDER = 63
    PUBLISH_TOOL = 64  # `tickrelay publish`
    NATS_BRIDGE = 70
    MARKET_DATA_RELAY = 80
    SIGNAL_RELAY = 81
    EXECUTION_RELAY = 82
    SYSTEM_RELAY = 83


def relay_source(domain: int) -> int:
    """The header source of a relay's own messages (Dropped notices): 80 + domain - 1 (table 1.3)."""
    return Source.MARKET_DATA_RELAY + domain - 1


VENUE_OF_SOURCE: dict[int, int] = {
    Source.BINANCE_COLLECTOR: VenueId.BINANCE,
    Source.KRAKEN_COLLECTOR: VenueId.KRAKEN,
    Source.COINBASE_COLLECTOR: VenueId.COINBASE,
}  # a collector's stream -> its venue
COLLECTOR_SOURCES: dict[str, Source] = {venue_name(v): Source(s) for s, v in VENUE_OF_SOURCE.items()}


class Header(NamedTuple):
    relay_domain: int
    version: int
    source: int
    flags: int
    sequence: int
    timestamp_ns: int
    payload_size: int
    checksum: int


def make_sequence(stream_id: int, counter: int) -> int:
    """Header sequence: high 16 bits stream id, low 48 bits counter."""
    return (stream_id << COUNTER_BITS) | (counter & COUNTER_MASK)


def split_sequence(sequence: int) -> tuple[int, int]:
    """(stream_id, counter) of a header sequence."""
    return sequence >> COUNTER_BITS, sequence & COUNTER_MASK


def encode_message(
    domain: int,
    source: int,
    sequence: int,
    timestamp_ns: int,
    payload: bytes,
    *,
    checksum: bool = True,
) -> bytes:
    """One whole message: header + ``payload`` (already TLV-framed)."""
    flags = FLAG_CHECKSUM if checksum else 0
    head = HEADER.pack(MAGIC, domain, VERSION, source, flags, sequence, timestamp_ns, len(payload), 0)
    if not checksum:
        return head + payload
    crc = zlib.crc32(payload, zlib.crc32(head[:CHECKSUM_OFFSET]))
    return head[:CHECKSUM_OFFSET] + crc.to_bytes(4, "little") + payload


def encode_events(
    domain: int, source: int, sequence: int, timestamp_ns: int, *events: Event, checksum: bool = True
) -> bytes:
    """One message carrying the TLVs of ``events`` in order."""
    return encode_message(
        domain, source, sequence, timestamp_ns, b"".join(map(encode_value, events)), checksum=checksum
    )


HEAD28 = struct.Struct("<IBBBBQQI")  # the header up to the checksum field (the CRC covers it)
_TRADE_TLV = struct.Struct("<BB" + TRADE_STRUCT.format[1:])
_QUOTE_TLV = struct.Struct("<BB" + QUOTE_STRUCT.format[1:])
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def encode_trade_message(source: int, sequence: int, timestamp_ns: int, t: Trade) -> bytes:
    """Hot path: a market-data message with one Trade TLV.

    Two precompiled packs (header prefix, TLV) and one CRC: measured faster than one pack of the
    whole message followed by slicing it for the CRC (bench/codec.py).
    """
    head = HEAD28.pack(MAGIC, 1, VERSION, source, FLAG_CHECKSUM, sequence, timestamp_ns, 42)
    asset_id, price, volume, exec_ts_ns, venue_id, asset_type, side = t
    tlv = _TRADE_TLV.pack(1, 40, asset_id, price, volume, exec_ts_ns, venue_id, asset_type, 0, side)
    return head + _U32.pack(zlib.crc32(tlv, zlib.crc32(head))) + tlv


def encode_quote_message(source: int, sequence: int, timestamp_ns: int, q: Quote) -> bytes:
    """Hot path: a market-data message with one Quote TLV (as :func:`encode_trade_message`)."""
    head = HEAD28.pack(MAGIC, 1, VERSION, source, FLAG_CHECKSUM, sequence, timestamp_ns, 58)
    asset_id, bid, bid_size, ask, ask_size, quote_ts_ns, venue_id, asset_type = q
    tlv = _QUOTE_TLV.pack(2, 56, asset_id, bid, bid_size, ask, ask_size, quote_ts_ns, venue_id, asset_type, 0)
    return head + _U32.pack(zlib.crc32(tlv, zlib.crc32(head))) + tlv


def restamp(message: bytes, source: int, sequence: int) -> bytes:
    """``message`` as one of stream (``source``, ``sequence``): header source and sequence rewritten,
    CRC recomputed when the message carries one; payload and timestamp unchanged."""
    head = message[:6] + bytes((source,)) + message[7:8] + _U64.pack(sequence) + message[16:CHECKSUM_OFFSET]
    payload = message[HEADER_SIZE:]
    crc = zlib.crc32(payload, zlib.crc32(head)) if message[7] & FLAG_CHECKSUM else 0
    return head + _U32.pack(crc) + payload


def iter_tlvs(payload: bytes | memoryview) -> Iterator[tuple[int, bytes]]:
    """(type, value) for each TLV of a payload, standard or extended form.

    Raises:
        MalformedTlv: a TLV runs past the payload.
    """
    view = memoryview(payload)
    n = len(view)
    i = 0
    while i < n:
        if i + 2 > n:
            raise MalformedTlv(f"TLV header truncated at offset {i}")
        t = view[i]
        if t == EXTENDED:
            if i + 5 > n:
                raise MalformedTlv(f"extended TLV header truncated at offset {i}")
            if view[i + 1] != 0:
                raise MalformedTlv(f"extended TLV marker not followed by 0x00 at offset {i}")
            t = view[i + 2]
            length = view[i + 3] | (view[i + 4] << 8)
            start = i + 5
        else:
            length = view[i + 1]
            start = i + 2
        end = start + length
        if end > n:
            raise MalformedTlv(f"TLV type {t} of {length} bytes runs past the payload at offset {i}")
        yield t, bytes(view[start:end])
        i = end


class Message(NamedTuple):
    """One decoded message: its header and its exact bytes as on the wire."""

    header: Header
    raw: bytes

    @property
    def payload(self) -> bytes:
        return self.raw[HEADER_SIZE:]

    def events(self, unknown: Counter[int] | None = None) -> list[Event]:
        """The typed values of the message's TLVs, in order; see :func:`decode_events`."""
        return decode_events(self.payload, unknown)


def decode_events(payload: bytes | memoryview, unknown: Counter[int] | None = None) -> list[Event]:
    """The typed values of a payload's TLVs, in order.

    Args:
        unknown: if given, TLVs of types this build does not know are skipped and counted here by
            type; if None they are returned as UnknownTlv (the decode CLI shows them).

    Raises:
        MalformedTlv: a TLV runs past the payload, or a known type has the wrong shape.
    """
    events: list[Event] = []
    for t, v in iter_tlvs(payload):
        if unknown is not None and t not in KNOWN_TYPES:
            unknown[t] += 1
            continue
        events.append(decode_value(t, v))
    return events


def parse_header(
    buf: bytes | bytearray | memoryview, offset: int = 0, *, domain: int | None = None
) -> Header:
    """Unpack and validate the header at ``offset`` (magic, version, domain)."""
    h = Header(*HEADER.unpack_from(buf, offset)[1:])
    magic = int.from_bytes(buf[offset : offset + 4], "little")
    if magic != MAGIC:
        raise BadMagic(f"bad magic {magic:#010x} at offset {offset}")
    if h.version != VERSION:
        raise UnsupportedVersion(f"version {h.version}, this build speaks {VERSION}")
    if h.relay_domain not in _DOMAINS:
        raise BadDomain(f"unknown relay_domain {h.relay_domain}")
    if domain is not None and h.relay_domain != domain:
        raise BadDomain(f"relay_domain {h.relay_domain} on a stream of domain {domain}")
    return h


_DOMAINS = frozenset(int(d) for d in Domain)
KNOWN_TYPES = frozenset(int(t) for t in TlvType)


class PyDecoder:
    """Stream decoder: feed bytes in any chunking, take complete messages out.

    Args:
        max_payload: larger payload_size raises PayloadTooLarge.
        domain: if set, a message of another relay_domain raises BadDomain.
        verify_checksum: check the CRC of messages that carry one (flag bit 0).
        require_checksum: a message without the checksum flag raises ChecksumMismatch.
        resync: instead of raising, skip to the next magic and count the skipped bytes and errors.
    """

    def __init__(
        self,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        domain: int | None = None,
        verify_checksum: bool = True,
        require_checksum: bool = False,
        resync: bool = False,
    ) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max_payload = max_payload
        self._domain = domain
        self._domains = _DOMAINS if domain is None else frozenset((domain,))
        self._verify = verify_checksum
        self._require = require_checksum
        self._resync = resync
        self.skipped_bytes = 0
        self.errors: list[ProtocolError] = []

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet returned as messages."""
        return len(self._buf) - self._pos

    def take_buffered(self) -> bytes:
        """Remove and return the bytes fed but not yet returned as messages."""
        data = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        return data

    def next_message(self) -> Message | None:
        """The next complete message, or None when more bytes are needed."""
        while True:
            try:
                return self._next()
            except ProtocolError as exc:
                if not self._resync:
                    raise
                self.errors.append(exc)
                self._skip_to_next_magic()

    def _skip_to_next_magic(self) -> None:
        nxt = self._buf.find(MAGIC_BYTES, self._pos + 1)
        if nxt < 0:
            nxt = max(self._pos + 1, len(self._buf) - 3)  # a magic may straddle the next feed
        self.skipped_bytes += nxt - self._pos
        self._pos = nxt

    def _next(self) -> Message | None:
        buf, pos = self._buf, self._pos
        if len(buf) - pos < HEADER_SIZE:
            if len(buf) - pos >= 4 and buf[pos : pos + 4] != MAGIC_BYTES:
                raise BadMagic(f"bad magic {bytes(buf[pos : pos + 4]).hex()}")
            return None
        magic, domain, version, source, flags, seq, ts, size, crc = HEADER.unpack_from(buf, pos)
        if magic != MAGIC or version != VERSION or domain not in self._domains:
            parse_header(buf, pos, domain=self._domain)  # raises the precise error
        if size > self._max_payload:
            raise PayloadTooLarge(f"payload_size {size} > limit {self._max_payload}")
        end = pos + HEADER_SIZE + size
        if end > len(buf):
            return None
        raw = bytes(buf[pos:end])
        if flags & FLAG_CHECKSUM:
            if self._verify:
                view = memoryview(raw)
                if zlib.crc32(view[HEADER_SIZE:], zlib.crc32(view[:CHECKSUM_OFFSET])) != crc:
                    raise ChecksumMismatch(f"checksum mismatch on sequence {seq:#x}")
        elif self._require:
            raise ChecksumMismatch(f"message sequence {seq:#x} carries no checksum")
        self._pos = end
        if end > 1 << 16 and end * 2 > len(buf):
            del buf[:end]
            self._pos = 0
        return Message(Header(domain, version, source, flags, seq, ts, size, crc), raw)

    def __iter__(self) -> Iterator[Message]:
        while (m := self.next_message()) is not None:
            yield m


# Which one runs depends on the build (tests/test_native.py checks the choice); mypy checks callers
# against the reference, and the compiled class has the same surface (_native.pyi).
if TYPE_CHECKING or compiled is None:  # noqa: SIM108  # pragma: no cover
    Decoder = PyDecoder
else:  # pragma: no cover
    Decoder = compiled.Decoder
