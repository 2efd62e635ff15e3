"""Which subscriber gets which message. Pure: no sockets (relay/server.py owns them).

A subscription filter names TLV types, venues and instruments; an empty set means "any". A message
matches when one of its TLVs passes every non-empty set. TLVs that carry no venue (heartbeats, loss
reports) pass the venue and instrument sets; a StateInvalidation passes the instrument set when it
names none (the whole venue) or one of them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from tickrelay.protocol.codec import HEADER_SIZE, iter_tlvs
from tickrelay.protocol.messages import TlvType


_U16 = struct.Struct("<H")
_U64 = struct.Struct("<Q")
_SIZE = struct.Struct("<I")
# Where the venue id sits in each market-data TLV value (the asset id is always at 0).
_VENUE_AT: dict[int, int] = {
    TlvType.TRADE: 32,
    TlvType.QUOTE: 48,
    TlvType.INSTRUMENT_META: 8,
    TlvType.L2_SNAPSHOT: 8,
    TlvType.L2_DELTA: 8,
    TlvType.L2_RESET: 8,
}


class Filter(NamedTuple):
    tlv_types: frozenset[int] = frozenset()
    venues: frozenset[int] = frozenset()
    asset_ids: frozenset[int] = frozenset()

    @property
    def is_everything(self) -> bool:
        return not (self.tlv_types or self.venues or self.asset_ids)


def iter_messages(body: bytes | memoryview) -> Iterator[tuple[int, int]]:
    """(offset, length) of each message of an already validated run."""
    i, n = 0, len(body)
    while i < n:
        length = HEADER_SIZE + _SIZE.unpack_from(body, i + 24)[0]
        yield i, length
        i += length


def matches(flt: Filter, message: bytes | memoryview) -> bool:
    """True when one TLV of ``message`` (a whole, validated message) passes the filter."""
    for t, v in iter_tlvs(memoryview(message)[HEADER_SIZE:]):
        if flt.tlv_types and t not in flt.tlv_types:
            continue
        at = _VENUE_AT.get(t)
        if at is not None and len(v) >= at + 2:
            if flt.venues and _U16.unpack_from(v, at)[0] not in flt.venues:
                continue
            if flt.asset_ids and _U64.unpack_from(v)[0] not in flt.asset_ids:
                continue
        elif t == TlvType.STATE_INVALIDATION and len(v) >= 6:
            if flt.venues and _U16.unpack_from(v)[0] not in flt.venues:
                continue
            ids = {a for (a,) in _U64.iter_unpack(v[6 : 6 + 8 * ((len(v) - 6) // 8)])}
            if flt.asset_ids and ids and not ids & flt.asset_ids:
                continue
        return True
    return False


def select(flt: Filter, body: bytes | memoryview) -> tuple[bytes, int]:
    """The messages of a validated run that pass ``flt``, concatenated, and how many there are."""
    view = memoryview(body)
    picked = [view[i : i + n] for i, n in iter_messages(view) if matches(flt, view[i : i + n])]
    return b"".join(picked), len(picked)
