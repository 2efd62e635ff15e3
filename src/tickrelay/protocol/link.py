"""The relay link: handshake, control messages and the batch envelope. Pure: no I/O.

Spec: docs/protocol.md, "Relay handshake". Control messages (flag bit 2) travel only between a client
and its relay and are never forwarded; a batch envelope (flag bit 1) carries a run of complete
messages under one header and one CRC, so the relay validates and forwards it without per-message
Python work.
"""

from __future__ import annotations

import enum
import struct
import zlib
from typing import NamedTuple

from tickrelay.errors import MalformedTlv, ProtocolError
from tickrelay.native import compiled
from tickrelay.protocol.codec import (
    FLAG_CHECKSUM,
    HEAD28,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    VERSION,
    Domain,
    Message,
    iter_tlvs,
)
from tickrelay.protocol.messages import TlvType, encode_tlv


FLAG_BATCH = 0x02
FLAG_CONTROL = 0x04
LINK_VERSION = 1
BATCH_HEAD = struct.Struct("<QI")  # first_sequence u64, count u32
_HELLO = struct.Struct("<BBBBHBI")  # role link_version domain source stream_id overflow buffer_bytes
_HELLO_ACK = struct.Struct("<IQI")  # client_id relay_time_ns buffer_bytes
_SYNC = struct.Struct("<QQ")  # token messages
_U16 = struct.Struct("<H")
_U64 = struct.Struct("<Q")
_SIZE_AT_24 = struct.Struct("<I")


class Role(enum.IntEnum):
    PUBLISHER = 1
    SUBSCRIBER = 2
    STATUS = 3


class Overflow(enum.IntEnum):
    DROP = 1  # drop what does not fit, count it, tell the subscriber (Dropped) before the next message
    DISCONNECT = 2  # abort the subscriber's connection (its queue is discarded) and count it once


class ErrorCode(enum.IntEnum):
    BAD_HANDSHAKE = 1
    DUPLICATE_STREAM = 2
    PROTOCOL = 3  # bad magic, version, framing or TLV
    WRONG_DOMAIN = 4
    TOO_LARGE = 5
    CHECKSUM = 6
    NOT_ALLOWED = 7  # a subscriber sent data, or a publisher sent a control message it may not
    SHUTDOWN = 8
    OVERFLOW = 9
    LIMIT = 10  # the relay has as many connections as it serves
    TIMEOUT = 11  # no Hello in time, or a message begun and not completed in time


class Hello(NamedTuple):
    """A client's first message. Empty filter tuples mean "everything"."""

    role: int
    domain: int
    source: int = 0
    stream_id: int = 0
    overflow: int = Overflow.DROP
    buffer_bytes: int = 0  # 0 = the relay's default
    name: str = ""
    tlv_types: tuple[int, ...] = ()
    venues: tuple[int, ...] = ()
    asset_ids: tuple[int, ...] = ()


class HelloAck(NamedTuple):
    client_id: int
    relay_time_ns: int
    buffer_bytes: int


class RelayError(NamedTuple):
    code: int
    reason: str


class Sync(NamedTuple):
    """Publisher -> relay: a barrier; the relay answers with the same token once it has routed every
    message sent before it, and the number of messages it has taken from this publisher."""

    token: int
    messages: int = 0


class RelayStatus(NamedTuple):
    json_text: str


Control = Hello | HelloAck | RelayError | Sync | RelayStatus


def _text(s: str) -> bytes:
    b = s.encode()[:255]
    return bytes((len(b),)) + b


def encode_control(value: Control, domain: int = Domain.SYSTEM, source: int = 0) -> bytes:
    """One control message (flags: checksum + control; sequence 0)."""
    match value:
        case Hello():
            body = (
                _HELLO.pack(value.role, LINK_VERSION, value.domain, value.source, value.stream_id,
                            value.overflow, value.buffer_bytes)
                + _text(value.name)
                + bytes((len(value.tlv_types), *value.tlv_types))
                + bytes((len(value.venues),)) + b"".join(_U16.pack(v) for v in value.venues)
                + _U16.pack(len(value.asset_ids)) + b"".join(_U64.pack(a) for a in value.asset_ids)
            )  # fmt: skip
            payload = encode_tlv(TlvType.HELLO, body)
        case HelloAck():
            payload = encode_tlv(TlvType.HELLO_ACK, _HELLO_ACK.pack(*value))
        case RelayError():
            payload = encode_tlv(TlvType.RELAY_ERROR, bytes((value.code,)) + _text(value.reason))
        case Sync():
            payload = encode_tlv(TlvType.SYNC, _SYNC.pack(*value))
        case _:  # RelayStatus: the last of the union
            text = value.json_text.encode()
            payload = b"".join(
                encode_tlv(TlvType.RELAY_STATUS, text[i : i + 65535]) for i in range(0, len(text), 65535)
            )
    head = HEAD28.pack(MAGIC, domain, VERSION, source, FLAG_CHECKSUM | FLAG_CONTROL, 0, 0, len(payload))
    return head + zlib.crc32(payload, zlib.crc32(head)).to_bytes(4, "little") + payload


def decode_control(message: Message) -> Control:
    """The control value a control message carries.

    Raises:
        ProtocolError: not a control message, or its TLV is malformed or unknown.
    """
    if not message.header.flags & FLAG_CONTROL:
        raise ProtocolError("expected a control message")
    tlvs = list(iter_tlvs(message.payload))
    if not tlvs:
        raise MalformedTlv("empty control message")
    t, v = tlvs[0]
    try:
        if t == TlvType.HELLO:
            return _decode_hello(v)
        if t == TlvType.HELLO_ACK:
            return HelloAck(*_HELLO_ACK.unpack(v))
        if t == TlvType.RELAY_ERROR:
            return RelayError(v[0], v[2 : 2 + v[1]].decode("utf-8", "replace"))
        if t == TlvType.SYNC:
            return Sync(*_SYNC.unpack(v))
        if t == TlvType.RELAY_STATUS:
            return RelayStatus(b"".join(value for _, value in tlvs).decode())
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise MalformedTlv(f"control TLV {t}: {exc}") from None
    raise MalformedTlv(f"unknown control TLV type {t}")


def _decode_hello(v: bytes) -> Hello:
    role, link_version, domain, source, stream_id, overflow, buffer_bytes = _HELLO.unpack_from(v)
    if link_version != LINK_VERSION:
        raise MalformedTlv(f"link version {link_version}, this relay speaks {LINK_VERSION}")
    i = _HELLO.size
    name = v[i + 1 : i + 1 + v[i]].decode()
    i += 1 + v[i]
    types = tuple(v[i + 1 : i + 1 + v[i]])
    i += 1 + v[i]
    n = v[i]
    venues = tuple(x for (x,) in _U16.iter_unpack(v[i + 1 : i + 1 + 2 * n]))
    i += 1 + 2 * n
    (n,) = _U16.unpack_from(v, i)
    assets = tuple(x for (x,) in _U64.iter_unpack(v[i + 2 : i + 2 + 8 * n]))
    if i + 2 + 8 * n != len(v) or len(types) != v[_HELLO.size + 1 + len(name.encode())]:
        raise MalformedTlv("Hello has the wrong length")
    return Hello(role, domain, source, stream_id, overflow, buffer_bytes, name, types, venues, assets)


def encode_batch(
    domain: int, source: int, first_sequence: int, count: int, timestamp_ns: int, body: bytes
) -> bytes:
    """A batch envelope around ``body`` (``count`` complete messages back to back), checksummed."""
    head = HEAD28.pack(
        MAGIC, domain, VERSION, source, FLAG_CHECKSUM | FLAG_BATCH, first_sequence, timestamp_ns,
        BATCH_HEAD.size + len(body),
    )  # fmt: skip
    prefix = BATCH_HEAD.pack(first_sequence, count)
    crc = zlib.crc32(body, zlib.crc32(prefix, zlib.crc32(head)))
    return head + crc.to_bytes(4, "little") + prefix + body


def batch_head(message: Message) -> tuple[int, int]:
    """(first_sequence, count) of a batch envelope; its run of messages starts at BATCH_START."""
    if message.header.payload_size < BATCH_HEAD.size:
        raise MalformedTlv("batch envelope shorter than its 12-byte head")
    first, count = BATCH_HEAD.unpack_from(message.raw, HEADER_SIZE)
    return first, count


BATCH_START = HEADER_SIZE + BATCH_HEAD.size


def check_run_py(data: bytes, start: int, count: int, domain: int, max_payload: int) -> None:
    """Verify that ``data[start:]`` is exactly ``count`` well-framed messages of ``domain`` (magic,
    version, domain, flags, sizes). Runs of one message size are checked with a few strided slices of
    ``data`` (C loops, no copy of the run first); mixed sizes are walked header by header. Inner CRCs are
    not checked: the envelope's covers them. ``check_run`` is this function, or the compiled core's
    (tickrelay.native) where it runs.

    Raises:
        ProtocolError: the run is not what it claims to be.
    """
    n = len(data) - start
    if count <= 0 or n < count * HEADER_SIZE:
        raise ProtocolError(f"batch of {n} bytes cannot hold {count} messages")
    size = n // count
    if n % count == 0 and _SIZE_AT_24.unpack_from(data, start + 24)[0] == size - HEADER_SIZE:
        expect = HEADER.pack(MAGIC, domain, VERSION, 0, 0, 0, 0, size - HEADER_SIZE, 0)
        for k in (0, 1, 2, 3, 4, 5, 24, 25, 26, 27):
            if data[start + k :: size] != expect[k : k + 1] * count:
                break
        else:
            if data[start + 7 :: size].translate(None, bytes((0, FLAG_CHECKSUM))):
                raise ProtocolError("a message in the batch has flags other than the checksum bit")
            return
    _walk(memoryview(data)[start:], count, domain, max_payload)


def _walk(view: memoryview, count: int, domain: int, max_payload: int) -> None:
    n, i, seen = len(view), 0, 0
    unpack = HEADER.unpack_from
    while i < n:
        if n - i < HEADER_SIZE:
            raise ProtocolError(f"message {seen + 1} of the batch is truncated")
        magic, dom, version, _, flags, _, _, size, _ = unpack(view, i)
        if magic != MAGIC or version != VERSION:
            raise ProtocolError(f"message {seen + 1} of the batch has a bad magic or version")
        if dom != domain:
            raise ProtocolError(f"message {seen + 1} of the batch is of domain {dom}, not {domain}")
        if flags & ~FLAG_CHECKSUM:
            raise ProtocolError(f"message {seen + 1} of the batch has flags {flags:#x}")
        if size > max_payload:
            raise ProtocolError(f"message {seen + 1} of the batch has payload_size {size} > {max_payload}")
        i += HEADER_SIZE + size
        seen += 1
        if i > n:
            raise ProtocolError(f"message {seen} of the batch is truncated")
    if seen != count:
        raise ProtocolError(f"batch claims {count} messages but holds {seen}")


check_run = check_run_py if compiled is None else compiled.check_run
