"""Instrument keys and injective asset ids. Pure: no I/O.

An instrument is named on the wire by (venue_id u16, asset_type u8, asset_id u64). For a normalized
symbol of at most 12 characters from A-Z, 0-9 and '/', asset_id is the base-38 number whose digits
are the characters (A-Z = 1..26, 0-9 = 27..36, '/' = 37), left-aligned and padded with 0 to 12
digits: < 38^12 < 2^63, injective, and it decodes back to the symbol. Any other symbol gets bit 63
set over a 63-bit BLAKE2b hash of its text, and must be announced through InstrumentMeta before use.
"""

from __future__ import annotations

import enum
import hashlib

from tickrelay.errors import SymbolError


class VenueId(enum.IntEnum):
    BINANCE = 100
    KRAKEN = 101
    COINBASE = 102


def name_of(kind: type[enum.IntEnum], value: int, unknown: str | None = None) -> str:
    """The lower-case name of a wire value in ``kind`` (``Reason``, ``Severity``, ...); a value this
    version does not know as ``unknown`` (default: its number), never an error."""
    if value in kind._value2member_map_:
        return kind(value).name.lower()
    return str(value) if unknown is None else unknown


def venue_name(venue_id: int, unknown: str | None = None) -> str:
    """``binance``, ``kraken``, ``coinbase``; another id as ``unknown`` (default: its number)."""
    return name_of(VenueId, venue_id, unknown)


class AssetType(enum.IntEnum):
    CRYPTO_SPOT = 51


_ALPHABET = "\0ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/"  # index = digit value; 0 is padding
_DIGIT = {ch: i for i, ch in enumerate(_ALPHABET) if i}
BASE = 38
WIDTH = 12
HASHED_BIT = 1 << 63


def is_packable(symbol: str) -> bool:
    """True when ``symbol`` gets a decodable base-38 asset_id."""
    return 0 < len(symbol) <= WIDTH and all(ch in _DIGIT for ch in symbol)


def asset_id_for(symbol: str) -> int:
    """The asset_id of a normalized symbol (base-38 packed, or bit 63 + hash)."""
    if not is_packable(symbol):
        if not symbol:
            raise SymbolError("empty symbol")
        digest = hashlib.blake2b(symbol.encode(), digest_size=8).digest()
        return HASHED_BIT | (int.from_bytes(digest, "little") & (HASHED_BIT - 1))
    value: int = 0
    for ch in symbol:
        value = value * BASE + _DIGIT[ch]
    scale: int = BASE ** (WIDTH - len(symbol))
    return value * scale


def symbol_for(asset_id: int) -> str | None:
    """The symbol a base-38 asset_id encodes, or None for a hashed (bit 63) or invalid id."""
    if asset_id & HASHED_BIT or asset_id <= 0 or asset_id >= BASE**WIDTH:
        return None
    chars: list[str] = []
    for _ in range(WIDTH):
        asset_id, digit = divmod(asset_id, BASE)
        chars.append(_ALPHABET[digit])
    text = "".join(reversed(chars)).rstrip("\0")
    return None if "\0" in text else text


_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}


def normalize_pair(base: str, quote: str) -> str:
    """``BASE/QUOTE`` in upper case with venue aliases mapped (Kraken XBT -> BTC, XDG -> DOGE)."""
    b, q = base.strip().upper(), quote.strip().upper()
    if not b or not q:
        raise SymbolError(f"empty side in pair {base!r}/{quote!r}")
    return f"{_ALIASES.get(b, b)}/{_ALIASES.get(q, q)}"
