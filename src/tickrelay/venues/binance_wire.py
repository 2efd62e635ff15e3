"""Binance spot market streams: the wire schema (one-letter keys kept, each commented), the decoders
built from it once, and venue symbols. Pure: no I/O. The feed that applies it is ``venues.binance``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from tickrelay.errors import SymbolError
from tickrelay.protocol.symbols import VenueId


# Quote assets recognised at the end of a venue symbol; the longest match wins (so ...FDUSD is
# FDUSD, not USD). Extend when Binance lists a new quote asset.
QUOTE_ASSETS: tuple[str, ...] = (
    "USDT", "BUSD", "USDC", "FDUSD", "TUSD", "USDP", "DAI", "USD", "BTC", "ETH", "BNB", "XRP", "TRX",
    "DOGE", "DOT", "EUR", "GBP", "TRY", "BRL", "AUD", "RUB", "UAH", "ZAR", "JPY", "PLN", "RON", "ARS",
    "IDRT", "BIDR", "NGN", "MXN", "COP", "CZK", "BVND", "VAI", "PAX", "USDS",
)  # fmt: skip
_QUOTES_LONGEST_FIRST = tuple(sorted(QUOTE_ASSETS, key=len, reverse=True))
MAX_SYMBOL = 64  # characters of a venue symbol (Binance's are at most 20)
VENUE = int(VenueId.BINANCE)


# ---- wire schema (Binance's one-letter keys kept; each commented) ---------------------------------

# Integers are bounded by what they become, so an out-of-range one fails the decode (a counted reject)
# instead of failing the message encoder later: update ids go into the protocol's sequence fields and
# times in ms become int64 ns; request ids and error codes stay within int64 as well.
UpdateId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=(2**63 - 1) // 1_000_000)]
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class _Trade(msgspec.Struct):
    s: str  # symbol
    p: str  # price
    q: str  # quantity
    T: Millis  # trade time, ms
    m: bool  # is the buyer the market maker? (true -> the seller was the aggressor)


class _AggTrade(msgspec.Struct):
    s: str  # symbol
    p: str  # price
    q: str  # quantity
    T: Millis  # trade time of the last trade aggregated, ms
    m: bool  # is the buyer the market maker?


class _BookTicker(msgspec.Struct):
    u: UpdateId  # order book update id
    s: str  # symbol
    b: str  # best bid price
    B: str  # best bid quantity
    a: str  # best ask price
    A: str  # best ask quantity


class _DepthUpdate(msgspec.Struct):
    E: Millis  # event time, ms
    s: str  # symbol
    U: UpdateId  # first update id in event
    u: UpdateId  # final update id in event
    # bids / asks to update: [[price, absolute quantity], ...]; quantity 0 removes. Kept as raw JSON
    # and parsed by _levels (one C-level pass for the usual shape, typed decoding otherwise).
    b: msgspec.Raw
    a: msgspec.Raw


class _Kline(msgspec.Struct):
    s: str  # symbol (the candle itself is not used)


class _Snapshot(msgspec.Struct):
    lastUpdateId: UpdateId
    bids: msgspec.Raw  # [[price, quantity], ...], best first; parsed by _levels
    asks: msgspec.Raw


class _Envelope(msgspec.Struct):
    """Every field any top-level frame shape may have; used when the fast path does not apply."""

    stream: str | None = None  # combined stream name, e.g. "btcusdt@depth@100ms"
    data: msgspec.Raw = msgspec.Raw()  # combined stream payload (empty: absent)
    e: str | None = None  # event type of a raw-stream event
    u: UpdateId | None = None  # update id: a raw-stream bookTicker has no "e"
    id: Int64 | str | None = None  # request id of a subscription ack or error
    error: msgspec.Raw = msgspec.Raw()  # {"code":..,"msg":..} of a failed request (empty: absent)
    code: Int64 | None = None  # legacy error shape {"code":..,"msg":..}
    msg: str | None = None


_Payload = _Trade | _AggTrade | _BookTicker | _DepthUpdate | _Kline

# Combined-stream kind ("btcusdt@depth@100ms" -> "depth") or raw-stream "e" -> payload schema.
_SCHEMAS: dict[str, type[_Payload]] = {
    "trade": _Trade,
    "aggTrade": _AggTrade,
    "bookTicker": _BookTicker,
    "depth": _DepthUpdate,
    "kline": _Kline,
}
_EVENT_KINDS = {"trade": "trade", "aggTrade": "aggTrade", "depthUpdate": "depth", "kline": "kline"}
_DATA_DECODERS = {kind: msgspec.json.Decoder(schema) for kind, schema in _SCHEMAS.items()}
_COMBINED_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    kind: msgspec.json.Decoder(msgspec.defstruct(f"_Combined_{kind}", [("stream", str), ("data", schema)]))
    for kind, schema in _SCHEMAS.items()
}
_ENVELOPE_DECODER = msgspec.json.Decoder(_Envelope)
_SNAPSHOT_DECODER = msgspec.json.Decoder(_Snapshot)
_COMBINED_PREFIX = b'{"stream":"'
_LEVELS_DECODER = msgspec.json.Decoder(list[tuple[str, str]])
# ["61837.63000000","3.78826000"]; at most 10 integer digits, so every value fits int64 x 10^8
_PAIR_8 = rb'\["[0-9]{1,10}\.[0-9]{8}","[0-9]{1,10}\.[0-9]{8}"\]'
_LEVELS_8 = re.compile(rb"\[(?:" + _PAIR_8 + rb"(?:," + _PAIR_8 + rb")*)?\]")  # compact, 8 places


def stream_kind(stream: str) -> str:
    """The payload kind of a combined stream name: ``nknusdt@kline_1m`` -> ``kline``."""
    return stream.partition("@")[2].partition("@")[0].partition("_")[0]


def normalize_symbol(venue_symbol: str) -> str:
    """``NKNUSDT`` -> ``NKN/USDT`` by the longest known quote-asset suffix.

    Raises:
        SymbolError: not ASCII or too long, no known quote asset ends the symbol, or nothing is left
            for the base.
    """
    # Binance symbols are short ASCII (str.upper() would map others by the Unicode version, and the
    # InstrumentMeta text fields hold 255 bytes)
    if not venue_symbol.isascii() or len(venue_symbol) > MAX_SYMBOL:
        raise SymbolError(f"binance: not a symbol of {MAX_SYMBOL} ASCII characters: {venue_symbol[:80]!r}")
    upper = venue_symbol.upper()
    for quote in _QUOTES_LONGEST_FIRST:
        if upper.endswith(quote) and len(upper) > len(quote):
            return f"{upper[: -len(quote)]}/{quote}"
    raise SymbolError(f"binance: no known quote asset in {venue_symbol!r}")
