"""Binance's decimal texts to exact fixed point, the mixin ``BinanceFeed`` reads its numbers with. Pure.

The fast paths take the wire's usual shape: exactly 8 places and at most 10 integer digits (quotes,
trades), and compact depth-level arrays of such texts (validated by one regex, then the digits with
the points removed are the fixed-point values). Anything else goes through typed decoding and the
general decimal parser (``protocol.fixed``), bounded first (``venues.numbers.bounded``); a value with
more than 8 places is rounded half to even and counted in ``_rounded`` until the feed takes or rejects
the frame. Moved here from ``venues.binance`` (``_fixed``, ``_levels``, ``_quote``) unchanged.
"""

from __future__ import annotations

import msgspec

from tickrelay.errors import FixedPointError
from tickrelay.protocol.fixed import parse_fixed8_rounded
from tickrelay.protocol.messages import Level, Quote
from tickrelay.venues.binance_wire import _LEVELS_8, _LEVELS_DECODER, VENUE, _BookTicker
from tickrelay.venues.feed import SPOT, Instrument
from tickrelay.venues.numbers import bounded


FIXED_CACHE_LIMIT = 65_536  # memoized price/size texts per feed; cleared when full

_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (hot path)


class BinanceNumbers:
    """Fixed point of Binance's decimal texts, memoized per feed."""

    def __init__(self) -> None:
        self._fixed_cache: dict[str, int] = {}  # decimal text -> fixed point (8-place texts only)
        self._rounded = 0  # values rounded in the frame being read

    def _fixed(self, text: str) -> int:
        """Exact fixed point of Binance's decimal text. Fast path: exactly 8 places and at most 10
        integer digits (so in range), as Binance sends; those results are memoized (quotes repeat the
        same prices frame after frame)."""
        digits = text[:-9] + text[-8:]
        if text[-9:-8] == "." and len(text) < 20 and digits.isdigit() and digits.isascii():
            value = int(digits)
            cache = self._fixed_cache
            if len(cache) >= FIXED_CACHE_LIMIT:
                cache.clear()
            cache[text] = value
            return value
        value, rounded = parse_fixed8_rounded(bounded(text))
        if value < 0:
            raise FixedPointError(f"negative amount {text!r}")
        self._rounded += rounded  # counted in stats once the frame is taken
        return value

    def _levels(self, raw: msgspec.Raw) -> tuple[Level, ...]:
        """Fixed-point levels of a raw ``[[price, quantity], ...]`` array, exactly. Fast path for the
        wire's usual shape (compact, 8 places): validated by one regex, then the digits with the
        points removed are the fixed-point values. Anything else goes through typed decoding and
        the general decimal parser.

        Raises:
            msgspec.DecodeError: not an array of [price, quantity] strings.
            FixedPointError: a value that is not a decimal number in range.
        """
        data = bytes(raw)
        if _LEVELS_8.fullmatch(data):
            digits = data.translate(None, b'[]".')
            if not digits:
                return ()
            values = list(map(int, digits.split(b",")))
            prices = values[0::2]
            if 0 in prices:
                raise FixedPointError("a book level at price 0")
            return tuple(zip(prices, values[1::2], strict=True))
        fixed = self._fixed
        levels = tuple([(fixed(p), fixed(q)) for p, q in _LEVELS_DECODER.decode(data)])
        if any(not price for price, _ in levels):
            raise FixedPointError("a book level at price 0")
        return levels

    def _quote(self, inst: Instrument, t: _BookTicker) -> Quote:
        cached, fixed = self._fixed_cache.get, self._fixed
        b, bq, a, aq = t.b, t.B, t.a, t.A
        return _new_tuple(
            Quote,
            (
                inst.asset_id,
                cached(b) or fixed(b),
                cached(bq) or fixed(bq),
                cached(a) or fixed(a),
                cached(aq) or fixed(aq),
                0,
                VENUE,
                SPOT,
            ),
        )
