"""Kraken v1 book frames built by hand, and the checksum Kraken sends with them: for tests whose
checksums must verify only if a core keeps each level's text as sent."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from decimal import Decimal


def v1_book(levels: dict[str, object], channel: str = "book-10", pair: str = "XBT/USD") -> bytes:
    """A v1 book frame: a snapshot's ``{"as": ..., "bs": ...}``, an update's ``{"a"/"b": ..., "c": ...}``."""
    return json.dumps([336, levels, channel, pair], separators=(",", ":")).encode()


def v1_checksum(asks: Iterable[tuple[str, str]], bids: Iterable[tuple[str, str]]) -> str:
    """Kraken's v1 checksum of a book held as sent ((price text, size text) per level, one per price):
    the 10 best asks, then the 10 best bids, each price and size text without "." and leading zeros."""

    def digits(text: str) -> str:
        return text.replace(".", "").lstrip("0")

    best_asks = sorted(asks, key=lambda level: Decimal(level[0]))[:10]
    best_bids = sorted(bids, key=lambda level: Decimal(level[0]), reverse=True)[:10]
    return str(zlib.crc32("".join(digits(p) + digits(s) for p, s in best_asks + best_bids).encode()))
