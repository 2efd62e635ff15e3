"""Which subscriber gets which message. Pure: no sockets (relay/server.py owns them).

A subscription filter names TLV types, venues and instruments; an empty set means "any". A message
matches when one of its TLVs passes every non-empty set. TLVs that carry no venue (heartbeats, loss
reports) pass the venue and instrument sets; a StateInvalidation passes the instrument set when it
names none (the whole venue) or one of them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple

from tickrelay.native import compiled
from tickrelay.protocol.codec import HEADER_SIZE, iter_tlvs
from tickrelay.protocol.messages import VENUE_OFFSET, TlvType


_U16 = struct.Struct("<H")
_U64 = struct.Struct("<Q")
_SIZE = struct.Struct("<I")


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
        at = VENUE_OFFSET.get(t)
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


def select_py(flt: Filter, body: bytes | memoryview) -> tuple[bytes, int]:
    """The messages of a validated run that pass ``flt``, concatenated, and how many there are.

    Messages with one standard-form market-data TLV long enough to hold its venue (nearly all of
    them) are matched from fixed offsets in one loop; anything else goes through :func:`matches`.
    The relay calls it through :func:`selector`.
    """
    data = bytes(body)
    types, venues, assets = flt
    size_at, venue_at = _SIZE.unpack_from, VENUE_OFFSET.get
    u16, u64 = _U16.unpack_from, _U64.unpack_from
    pieces: list[bytes] = []
    run_start = -1  # start of the current run of consecutive matches
    i, n, count = 0, len(data), 0
    while i < n:
        end = i + HEADER_SIZE + size_at(data, i + 24)[0]
        t = data[i + HEADER_SIZE] if end > i + HEADER_SIZE else -1
        at = venue_at(t)
        size = data[i + HEADER_SIZE + 1] if at is not None else 0
        if at is not None and end == i + HEADER_SIZE + 2 + size and size >= at + 2:
            v = i + HEADER_SIZE + 2
            ok = (
                (not types or t in types)
                and (not venues or u16(data, v + at)[0] in venues)
                and (not assets or u64(data, v)[0] in assets)
            )
        else:
            ok = matches(flt, memoryview(data)[i:end])
        if ok:
            count += 1
            if run_start < 0:
                run_start = i
        elif run_start >= 0:
            pieces.append(data[run_start:i])
            run_start = -1
        i = end
    if run_start >= 0:
        pieces.append(data[run_start:] if run_start else data)
    return b"".join(pieces), count


Selector = Callable[[bytes | memoryview], tuple[bytes, int]]


def selector(flt: Filter) -> Selector:
    """``select_py`` bound to ``flt``, or the compiled core's filter built from it once (the relay keeps
    one per subscriber, so no call converts the filter's sets again) where the compiled core runs."""
    return partial(select_py, flt) if compiled is None else compiled.Selector(flt)
