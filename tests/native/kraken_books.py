"""Kraken book frames built by hand, and the checksum Kraken sends with them: for tests whose
checksums must verify only if a core keeps each level's checksum text as it should."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from decimal import Decimal


def v1_book(levels: dict[str, object], channel: str = "book-10", pair: str = "XBT/USD") -> bytes:
    """A v1 book frame: a snapshot's ``{"as": ..., "bs": ...}``, an update's ``{"a"/"b": ..., "c": ...}``."""
    return json.dumps([336, levels, channel, pair], separators=(",", ":")).encode()


def digits(text: str) -> str:
    """A number's part of a level's checksum text: the number without "." and leading zeros."""
    return text.replace(".", "").lstrip("0")


def checksum(asks: Mapping[Decimal, str], bids: Mapping[Decimal, str]) -> int:
    """Kraken's checksum of a book given each level's checksum text by price: the texts of the 10
    best asks (lowest first), then of the 10 best bids (highest first), CRC32 of them joined."""
    best_asks = [asks[price] for price in sorted(asks)[:10]]
    best_bids = [bids[price] for price in sorted(bids, reverse=True)[:10]]
    return zlib.crc32("".join(best_asks + best_bids).encode())


def v1_checksum(asks: Iterable[tuple[str, str]], bids: Iterable[tuple[str, str]]) -> str:
    """Kraken's v1 checksum of a book held as sent ((price text, size text) per level, one per price):
    each level's text is its price and size text as sent, each through :func:`digits`."""

    def texts(levels: Iterable[tuple[str, str]]) -> dict[Decimal, str]:
        return {Decimal(p): digits(p) + digits(s) for p, s in levels}

    return str(checksum(texts(asks), texts(bids)))
