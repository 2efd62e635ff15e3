"""Protocol V2 TLV types and their typed, immutable values. Pure: no I/O.

Every value is a NamedTuple whose fields are named as in docs/protocol.md; ``encode_tlv`` turns one
into TLV bytes (type, length, value; extended form for values over 255 bytes) and ``decode_tlv``
turns a TLV's (type, value) back into it. Unknown types decode to :class:`UnknownTlv`.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

from tickrelay.errors import MalformedTlv


class TlvType(enum.IntEnum):
    # Market data (domain 1)
    TRADE = 1
    QUOTE = 2
    INSTRUMENT_META = 4
    L2_SNAPSHOT = 5
    L2_DELTA = 6
    L2_RESET = 7
    # Signal (domain 2)
    SPREAD_SIGNAL = 20
    # System (100-119), valid in every domain
    HEARTBEAT = 100
    STATE_INVALIDATION = 101
    HELLO = 102  # relay handshake: the client's first message (docs/protocol.md, "Relay handshake")
    HELLO_ACK = 103  # relay handshake: the relay's answer
    RELAY_ERROR = 104  # relay -> client before it disconnects: why
    DROPPED = 105  # relay -> subscriber: N messages of a stream were dropped for it (overflow)
    PUBLISHER_LOSS = 106  # RelayOutput -> relay after reconnecting: N messages lost while down
    SYNC = 107  # relay link: publisher barrier request / relay answer
    RELAY_STATUS = 108  # relay link: the relay's statistics as JSON
    ALERT = 109  # a monitor's finding about a feed or an instrument (the risk monitor)


EXTENDED = 0xFF
MAX_VALUE = 0xFFFF
# Where venue_id sits in the value of each instrument TLV (asset_id is always its first 8 bytes).
VENUE_OFFSET: dict[int, int] = {
    TlvType.TRADE: 32,  # asset_id price volume exec_ts_ns venue_id
    TlvType.QUOTE: 48,  # asset_id bid bid_size ask ask_size quote_ts_ns venue_id
    TlvType.INSTRUMENT_META: 8,
    TlvType.L2_SNAPSHOT: 8,
    TlvType.L2_DELTA: 8,
    TlvType.L2_RESET: 8,
}

TRADE_STRUCT = struct.Struct("<QqqQHBBB3x")  # 40
QUOTE_STRUCT = struct.Struct("<QqqqqQHBB4x")  # 56
_META = struct.Struct("<QHBBB")  # asset_id venue_id asset_type price_decimals size_decimals
_L2_HEAD = struct.Struct("<QHBBQQHHH")  # asset_id venue asset_type flags seq ts_ns part n_bids n_asks
_DELTA_HEAD = struct.Struct("<QHBBQQQHH")  # asset_id venue asset_type flags first_seq last_seq ts_ns nb na
_LEVEL = struct.Struct("<qq")
_RESET = struct.Struct("<QHBB")  # asset_id venue asset_type reason
_HEARTBEAT = struct.Struct("<QQ")  # timestamp_ns messages_sent
_INVALIDATION_HEAD = struct.Struct("<HBBH")  # venue asset_type reason count
_ASSET = struct.Struct("<Q")
_DROPPED = struct.Struct("<BHQ")  # source stream_id count
_LOSS = struct.Struct("<Q")  # count
_SPREAD = struct.Struct("<QQHHBB2xqqqqQ")  # 64: buy/sell asset, buy/sell venue, state, reserved, ...
_ALERT_HEAD = struct.Struct("<BBHQqQ")  # kind severity venue_id asset_id value observed_ts_ns; then text


class Side(enum.IntEnum):
    """Which side was the aggressor of a trade."""

    BUY = 0  # the buyer was the aggressor (lifted the offer)
    SELL = 1  # the seller was the aggressor (hit the bid)


class Reason(enum.IntEnum):
    """Why a consumer must stop trusting (or may trust again) an instrument's state."""

    DISCONNECT = 1
    SEQUENCE_GAP = 2
    CHECKSUM_MISMATCH = 3
    STALE_FEED = 4
    RECOVERED = 5
    CROSSED_BOOK = 6


class SignalState(enum.IntEnum):
    """Where a SpreadSignal stands in the life of one opportunity."""

    OPEN = 1  # the net edge became positive
    UPDATE = 2  # still open; price, size or edge changed
    CLOSE = 3  # gone: the edge is no longer positive, or a side became untrusted (prices = the last seen)


class AlertKind(enum.IntEnum):
    STALE_FEED = 1  # value: ns since the instrument's (or venue's) last message
    CROSSED_BOOK = 2  # value: best bid - best ask (fixed point, >= 0)
    PRICE_JUMP = 3  # value: the move in ppm of the previous trade price (signed)
    SEQUENCE_GAP = 4  # value: messages missing
    CHECKSUM_FAILURE = 5  # value: 0
    INVALIDATION = 6  # value: the Reason
    RECOVERED = 7  # value: 0; a condition above cleared
    IMPLAUSIBLE_EDGE = 8  # value: the cross-venue net edge in ppm (beyond the strategy's bound)


class Severity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    CRITICAL = 3


class SnapshotFlags(enum.IntFlag):
    BEGIN = 1  # first part of a snapshot (consumer clears its book)
    END = 2  # last part (book complete)


Level = tuple[int, int]  # (price, size) in fixed point; size 0 = level removed


class Trade(NamedTuple):
    asset_id: int
    price: int
    volume: int
    exec_ts_ns: int
    venue_id: int
    asset_type: int
    side: int


class Quote(NamedTuple):
    asset_id: int
    bid_price: int
    bid_size: int
    ask_price: int
    ask_size: int
    quote_ts_ns: int
    venue_id: int
    asset_type: int


class InstrumentMeta(NamedTuple):
    asset_id: int
    venue_id: int
    asset_type: int
    price_decimals: int  # 255 = unknown
    size_decimals: int  # 255 = unknown
    venue_symbol: str
    symbol: str


class L2Snapshot(NamedTuple):
    asset_id: int
    venue_id: int
    asset_type: int
    flags: int  # SnapshotFlags
    exchange_seq: int  # the exchange's update id the snapshot is at; 0 = none
    exchange_ts_ns: int  # 0 = none
    part: int  # 0-based part number of a split snapshot
    bids: tuple[Level, ...]  # best first
    asks: tuple[Level, ...]  # best first


class L2Delta(NamedTuple):
    asset_id: int
    venue_id: int
    asset_type: int
    flags: int  # reserved, 0
    first_seq: int  # first exchange update id covered (Binance U); 0 = none
    last_seq: int  # last exchange update id covered (Binance u); 0 = none
    exchange_ts_ns: int  # 0 = none
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class L2Reset(NamedTuple):
    asset_id: int
    venue_id: int
    asset_type: int
    reason: int  # Reason


class Heartbeat(NamedTuple):
    timestamp_ns: int
    messages_sent: int


class StateInvalidation(NamedTuple):
    venue_id: int
    asset_type: int
    reason: int  # Reason
    asset_ids: tuple[int, ...]  # empty = every instrument of the venue


MAX_SNAPSHOT_LEVELS = (MAX_VALUE - _L2_HEAD.size) // _LEVEL.size  # 4093 levels fit one L2Snapshot TLV


def split_snapshot(
    asset_id: int,
    venue_id: int,
    asset_type: int,
    exchange_seq: int,
    exchange_ts_ns: int,
    bids: list[Level] | tuple[Level, ...],
    asks: list[Level] | tuple[Level, ...],
    *,
    max_levels: int = MAX_SNAPSHOT_LEVELS,
) -> list[L2Snapshot]:
    """A book as one L2Snapshot, or as parts numbered from 0 when its levels do not fit one TLV value.

    Bids fill the parts first, then asks, each side best first; the first part carries
    SnapshotFlags.BEGIN and the last SnapshotFlags.END (a single part carries both).
    """
    levels = [(True, lv) for lv in bids] + [(False, lv) for lv in asks]
    chunks = [levels[i : i + max_levels] for i in range(0, len(levels), max_levels)] or [[]]
    last = len(chunks) - 1
    return [
        L2Snapshot(
            asset_id,
            venue_id,
            asset_type,
            (SnapshotFlags.BEGIN if n == 0 else 0) | (SnapshotFlags.END if n == last else 0),
            exchange_seq,
            exchange_ts_ns,
            n,
            tuple(lv for is_bid, lv in chunk if is_bid),
            tuple(lv for is_bid, lv in chunk if not is_bid),
        )
        for n, chunk in enumerate(chunks)
    ]


class Dropped(NamedTuple):
    """From the relay to one subscriber: ``dropped`` messages of stream (source, stream_id) were dropped for
    it because its buffer was full. Sent before the next message that reaches it."""

    source: int
    stream_id: int
    dropped: int


class PublisherLoss(NamedTuple):
    """In a publisher's own stream: ``lost`` of its messages were dropped (oldest first) while it could
    not reach the relay; their sequence numbers are the gap just before this message."""

    lost: int


class SpreadSignal(NamedTuple):
    """Signal domain: buying ``buy_venue``'s ask and selling ``sell_venue``'s bid earns ``net_edge_ppm``
    after fees (ppm of the buy price, rounded down); see docs/protocol.md 2.9."""

    buy_asset_id: int
    sell_asset_id: int
    buy_venue: int
    sell_venue: int
    state: int  # SignalState
    buy_price: int  # the ask to lift, fixed point
    sell_price: int  # the bid to hit, fixed point
    size: int  # the smaller of the two sizes, fixed point
    net_edge_ppm: int
    trigger_ts_ns: int  # header timestamp of the market-data message that caused it


class Alert(NamedTuple):
    """System TLV: something a monitor found; ``text`` says it for people."""

    kind: int  # AlertKind
    severity: int  # Severity
    venue_id: int  # 0 = not venue specific
    asset_id: int  # 0 = the whole venue
    value: int  # kind specific (AlertKind)
    observed_ts_ns: int
    text: str


class UnknownTlv(NamedTuple):
    type: int
    value: bytes


def encode_tlv(tlv_type: int, value: bytes) -> bytes:
    """Frame ``value`` as one TLV, extended form when it is over 255 bytes."""
    n = len(value)
    if n <= 0xFF and tlv_type != EXTENDED:
        return bytes((tlv_type, n)) + value
    if n > MAX_VALUE:
        raise MalformedTlv(f"TLV value of {n} bytes exceeds {MAX_VALUE}")
    return bytes((EXTENDED, 0, tlv_type)) + n.to_bytes(2, "little") + value


def _levels(levels: tuple[Level, ...]) -> bytes:
    return b"".join(_LEVEL.pack(p, s) for p, s in levels)


def _text(s: str) -> bytes:
    b = s.encode()
    if len(b) > 255:
        raise MalformedTlv(f"text field of {len(b)} bytes exceeds 255")
    return bytes((len(b),)) + b


def encode_value(value: Event) -> bytes:
    """The TLV bytes (header included) of one typed value."""
    match value:
        case Trade():
            return b"\x01\x28" + TRADE_STRUCT.pack(*value[:6], 0, value.side)
        case Quote():
            return b"\x02\x38" + QUOTE_STRUCT.pack(*value, 0)
        case InstrumentMeta():
            body = _META.pack(*value[:5]) + _text(value.venue_symbol) + _text(value.symbol)
            return encode_tlv(TlvType.INSTRUMENT_META, body)
        case L2Snapshot():
            head = _L2_HEAD.pack(*value[:7], len(value.bids), len(value.asks))
            return encode_tlv(TlvType.L2_SNAPSHOT, head + _levels(value.bids) + _levels(value.asks))
        case L2Delta():
            head = _DELTA_HEAD.pack(*value[:7], len(value.bids), len(value.asks))
            return encode_tlv(TlvType.L2_DELTA, head + _levels(value.bids) + _levels(value.asks))
        case L2Reset():
            return encode_tlv(TlvType.L2_RESET, _RESET.pack(*value))
        case Heartbeat():
            return encode_tlv(TlvType.HEARTBEAT, _HEARTBEAT.pack(*value))
        case StateInvalidation():
            head = _INVALIDATION_HEAD.pack(*value[:3], len(value.asset_ids))
            ids = b"".join(_ASSET.pack(a) for a in value.asset_ids)
            return encode_tlv(TlvType.STATE_INVALIDATION, head + ids)
        case Dropped():
            return encode_tlv(TlvType.DROPPED, _DROPPED.pack(*value))
        case PublisherLoss():
            return encode_tlv(TlvType.PUBLISHER_LOSS, _LOSS.pack(*value))
        case SpreadSignal():
            return encode_tlv(TlvType.SPREAD_SIGNAL, _SPREAD.pack(*value[:5], 0, *value[5:]))
        case Alert():
            return encode_tlv(TlvType.ALERT, _ALERT_HEAD.pack(*value[:6]) + _text(value.text))
        case UnknownTlv():
            return encode_tlv(value.type, value.value)
    raise TypeError(f"not a TLV value: {value!r}")  # pragma: no cover - mypy proves exhaustiveness


def _read_levels(value: bytes, offset: int, count: int, what: str) -> tuple[tuple[Level, ...], int]:
    end = offset + count * _LEVEL.size
    if end > len(value):
        raise MalformedTlv(f"{what}: {count} levels run past the TLV")
    return tuple(_LEVEL.iter_unpack(value[offset:end])), end


def _read_text(value: bytes, offset: int, what: str) -> tuple[str, int]:
    """A u8-length-prefixed UTF-8 text at ``offset``, and the offset after it."""
    n = value[offset] if offset < len(value) else -1
    if n < 0 or offset + 1 + n > len(value):
        raise MalformedTlv(f"{what} text runs past the TLV")
    try:
        return value[offset + 1 : offset + 1 + n].decode(), offset + 1 + n
    except UnicodeDecodeError as exc:
        raise MalformedTlv(f"{what} text is not UTF-8: {exc}") from None


def _fixed(tlv_type: int, value: bytes, size: int) -> None:
    if len(value) != size:
        raise MalformedTlv(f"TLV {TlvType(tlv_type).name} is {len(value)} bytes, expected {size}")


def decode_value(tlv_type: int, value: bytes) -> Event:
    """Decode one TLV's value into its typed value; unknown types give :class:`UnknownTlv`.

    Raises:
        MalformedTlv: a known type whose value has the wrong shape.
    """
    if tlv_type == TlvType.TRADE:
        _fixed(tlv_type, value, TRADE_STRUCT.size)
        a, p, v, ts, venue, at, _, side = TRADE_STRUCT.unpack(value)
        return Trade(a, p, v, ts, venue, at, side)
    if tlv_type == TlvType.QUOTE:
        _fixed(tlv_type, value, QUOTE_STRUCT.size)
        return Quote(*QUOTE_STRUCT.unpack(value)[:8])
    if tlv_type == TlvType.INSTRUMENT_META:
        if len(value) < _META.size + 2:
            raise MalformedTlv("InstrumentMeta too short")
        asset_id, venue_id, asset_type, price_dec, size_dec = _META.unpack_from(value)
        venue_symbol, offset = _read_text(value, _META.size, "InstrumentMeta")
        symbol, offset = _read_text(value, offset, "InstrumentMeta")
        if offset != len(value):
            raise MalformedTlv("InstrumentMeta has trailing bytes")
        return InstrumentMeta(asset_id, venue_id, asset_type, price_dec, size_dec, venue_symbol, symbol)
    if tlv_type in (TlvType.L2_SNAPSHOT, TlvType.L2_DELTA):
        head = _L2_HEAD if tlv_type == TlvType.L2_SNAPSHOT else _DELTA_HEAD
        if len(value) < head.size:
            raise MalformedTlv(f"{TlvType(tlv_type).name} too short")
        a, venue, at, flags, x, y, z, n_bids, n_asks = head.unpack_from(value)
        bids, offset = _read_levels(value, head.size, n_bids, "bids")
        asks, offset = _read_levels(value, offset, n_asks, "asks")
        if offset != len(value):
            raise MalformedTlv(f"{TlvType(tlv_type).name} has trailing bytes")
        if tlv_type == TlvType.L2_SNAPSHOT:  # x, y, z = exchange_seq, exchange_ts_ns, part
            return L2Snapshot(a, venue, at, flags, x, y, z, bids, asks)
        return L2Delta(a, venue, at, flags, x, y, z, bids, asks)  # x, y, z = first_seq, last_seq, ts
    if tlv_type == TlvType.L2_RESET:
        _fixed(tlv_type, value, _RESET.size)
        return L2Reset(*_RESET.unpack(value))
    if tlv_type == TlvType.HEARTBEAT:
        _fixed(tlv_type, value, _HEARTBEAT.size)
        return Heartbeat(*_HEARTBEAT.unpack(value))
    if tlv_type == TlvType.STATE_INVALIDATION:
        if len(value) < _INVALIDATION_HEAD.size:
            raise MalformedTlv("StateInvalidation too short")
        venue, asset_type, reason, count = _INVALIDATION_HEAD.unpack_from(value)
        _fixed(tlv_type, value, _INVALIDATION_HEAD.size + count * _ASSET.size)
        ids = tuple(a for (a,) in _ASSET.iter_unpack(value[_INVALIDATION_HEAD.size :]))
        return StateInvalidation(venue, asset_type, reason, ids)
    if tlv_type == TlvType.DROPPED:
        _fixed(tlv_type, value, _DROPPED.size)
        return Dropped(*_DROPPED.unpack(value))
    if tlv_type == TlvType.PUBLISHER_LOSS:
        _fixed(tlv_type, value, _LOSS.size)
        return PublisherLoss(*_LOSS.unpack(value))
    if tlv_type == TlvType.SPREAD_SIGNAL:
        _fixed(tlv_type, value, _SPREAD.size)
        fields = _SPREAD.unpack(value)
        return SpreadSignal(*fields[:5], *fields[6:])
    if tlv_type == TlvType.ALERT:
        if len(value) < _ALERT_HEAD.size:
            raise MalformedTlv("Alert too short")
        text, offset = _read_text(value, _ALERT_HEAD.size, "Alert")
        if offset != len(value):
            raise MalformedTlv("Alert has trailing bytes")
        kind, severity, venue_id, asset_id, alert_value, observed_ts = _ALERT_HEAD.unpack_from(value)
        return Alert(kind, severity, venue_id, asset_id, alert_value, observed_ts, text)
    return UnknownTlv(tlv_type, bytes(value))


Event = (
    Trade
    | Quote
    | InstrumentMeta
    | L2Snapshot
    | L2Delta
    | L2Reset
    | Heartbeat
    | StateInvalidation
    | Dropped
    | PublisherLoss
    | SpreadSignal
    | Alert
    | UnknownTlv
)

TYPE_OF: dict[type, TlvType] = {
    Trade: TlvType.TRADE,
    Quote: TlvType.QUOTE,
    InstrumentMeta: TlvType.INSTRUMENT_META,
    L2Snapshot: TlvType.L2_SNAPSHOT,
    L2Delta: TlvType.L2_DELTA,
    L2Reset: TlvType.L2_RESET,
    Heartbeat: TlvType.HEARTBEAT,
    StateInvalidation: TlvType.STATE_INVALIDATION,
    Dropped: TlvType.DROPPED,
    PublisherLoss: TlvType.PUBLISHER_LOSS,
    SpreadSignal: TlvType.SPREAD_SIGNAL,
    Alert: TlvType.ALERT,
}  # the TLV type of each typed value (UnknownTlv carries its own)
