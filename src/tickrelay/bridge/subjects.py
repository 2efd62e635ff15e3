"""NATS subject names of Protocol V2 messages. Pure: no I/O.

A message goes to ``tickrelay.<domain>.<venue>.<symbol>.<kind>``, named after its first TLV
(docs/nats.md has the table):

* domain: ``market-data``, ``signal``, ``execution`` or ``system``;
* venue: ``binance``, ``kraken``, ``coinbase``, ``v<id>`` for another venue id, ``_`` when the message
  is about no venue;
* symbol: the normalized symbol with ``/`` mapped to ``-`` (``BTC/USD`` -> ``BTC-USD``; ``.``, ``*``,
  ``>`` and white space, which NATS subjects reserve, to ``_``). An instrument whose asset_id is a
  base-38 packed symbol is named by it at once; a hashed asset_id (bit 63) is named by the symbol of
  its InstrumentMeta once the namer has seen it (:meth:`SubjectNamer.learn`), before that by its
  asset_id as 16 lower-case hex digits; ``_`` when the message is about no single instrument;
* kind: ``trade``, ``quote``, ``book`` (L2Snapshot, L2Delta, L2Reset), ``meta`` (InstrumentMeta),
  ``status`` (StateInvalidation, Heartbeat, PublisherLoss, Dropped, unknown TLVs, empty payloads).

The last-value stream uses the same names under ``tickrelay-last`` instead of ``tickrelay`` (two
JetStream streams may not share subjects).
"""

from __future__ import annotations

import struct

from tickrelay.protocol.codec import HEADER_SIZE, domain_name
from tickrelay.protocol.messages import EXTENDED, VENUE_OFFSET, TlvType
from tickrelay.protocol.symbols import symbol_for, venue_name


PREFIX = "tickrelay"
LAST_PREFIX = "tickrelay-last"
KINDS: dict[int, str] = {
    TlvType.TRADE: "trade",
    TlvType.QUOTE: "quote",
    TlvType.L2_SNAPSHOT: "book",
    TlvType.L2_DELTA: "book",
    TlvType.L2_RESET: "book",
    TlvType.INSTRUMENT_META: "meta",
}
NONE = "_"  # the venue or symbol token of a message about no single venue or instrument
_RESERVED = str.maketrans({"/": "-", ".": "_", "*": "_", ">": "_", " ": "_", "\t": "_", "\r": "_", "\n": "_"})
_U16 = struct.Struct("<H")
_U64 = struct.Struct("<Q")


def symbol_token(symbol: str) -> str:
    """A normalized symbol as one subject token: ``BTC/USD`` -> ``BTC-USD``."""
    return symbol.translate(_RESERVED) or NONE


def venue_token(venue_id: int) -> str:
    """``binance`` for 100 ..., ``v<id>`` for a venue this build does not name."""
    return venue_name(venue_id, f"v{venue_id}")


def domain_token(domain: int) -> str:
    return domain_name(domain, f"d{domain}")


def first_tlv(message: bytes) -> tuple[int, int]:
    """(type, value offset) of a message's first TLV; (-1, 0) for an empty or truncated payload."""
    n = len(message)
    if n < HEADER_SIZE + 2:
        return -1, 0
    t = message[HEADER_SIZE]
    if t != EXTENDED:
        return t, HEADER_SIZE + 2
    if n < HEADER_SIZE + 5:
        return -1, 0
    return message[HEADER_SIZE + 2], HEADER_SIZE + 5


class SubjectNamer:
    """Names messages; remembers the symbols InstrumentMeta announced (for hashed asset_ids).

    Args:
        prefix: the first token (``tickrelay``; ``tickrelay-last`` for the last-value stream).
    """

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self._symbols: dict[tuple[int, int], str] = {}  # (venue_id, asset_id) -> token, from InstrumentMeta
        self._cache: dict[tuple[int, int, int, int], str] = {}  # (domain, kind, venue, asset) -> subject

    def learn(self, venue_id: int, asset_id: int, symbol: str) -> None:
        """Name instrument (venue_id, asset_id) ``symbol`` from now on (from its InstrumentMeta)."""
        token = symbol_token(symbol)
        if self._symbols.get((venue_id, asset_id)) != token:
            self._symbols[(venue_id, asset_id)] = token
            self._cache.clear()

    def instrument(self, domain: int, venue_id: int, asset_id: int, kind: str) -> str:
        """The subject of instrument (venue_id, asset_id)'s messages of ``kind``."""
        token = self._symbols.get((venue_id, asset_id))
        if token is None:
            symbol = symbol_for(asset_id)
            token = symbol_token(symbol) if symbol else f"{asset_id:016x}"
        return f"{self.prefix}.{domain_token(domain)}.{venue_token(venue_id)}.{token}.{kind}"

    def subject(self, message: bytes) -> str:
        """The subject of one whole message (named after its first TLV)."""
        domain = message[4]
        t, at = first_tlv(message)
        venue_at = at + VENUE_OFFSET.get(t, 0)
        if t in KINDS and len(message) >= venue_at + 2:
            asset_id, venue_id = _U64.unpack_from(message, at)[0], _U16.unpack_from(message, venue_at)[0]
            key = (domain, t, venue_id, asset_id)
            subject = self._cache.get(key)
            if subject is None:
                subject = self._cache[key] = self.instrument(domain, venue_id, asset_id, KINDS[t])
            return subject
        if t == TlvType.STATE_INVALIDATION and len(message) >= at + 6:
            venue_id, count = _U16.unpack_from(message, at)[0], _U16.unpack_from(message, at + 4)[0]
            if count == 1 and len(message) >= at + 14:
                return self.instrument(domain, venue_id, _U64.unpack_from(message, at + 6)[0], "status")
            return f"{self.prefix}.{domain_token(domain)}.{venue_token(venue_id)}.{NONE}.status"
        return f"{self.prefix}.{domain_token(domain)}.{NONE}.{NONE}.status"
