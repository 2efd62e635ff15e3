"""Exchange text to exact integers: prices and sizes (fixed point), decimal places, times. Pure.

Every venue module reads its numbers through here, so the bounds are the same everywhere: a decimal
text is at most ``MAX_TEXT`` characters (checked before any conversion: a hostile 1 MB digit string
costs nothing), never negative, and a price or a traded size is never
zero (a book size of zero means "remove the level" and is allowed where the venue says so). Anything
else raises :class:`~tickrelay.errors.FixedPointError` (times: ``ValueError``), which the venue turns
into a counted reject of the whole frame before its state changes.
"""

from __future__ import annotations

import calendar
from typing import TYPE_CHECKING

from tickrelay.errors import FixedPointError
from tickrelay.protocol.fixed import parse_fixed8_rounded


if TYPE_CHECKING:
    from tickrelay.venues.feed import FeedStats


CACHE_LIMIT = 100_000  # entries per memo (decimal texts, time prefixes)
MAX_TEXT = 64  # characters of a decimal text: int64 x 10^8 needs 11 integer digits, exchanges ~20 decimals
NO_DECIMALS = 255  # InstrumentMeta: places unknown


def places(text: str | None) -> int:
    """Places after the decimal point of an exchange's text (0 without a point; 255 for no text)."""
    if not text:
        return NO_DECIMALS
    point = text.find(".")
    return 0 if point < 0 else len(text) - point - 1


def bounded(text: str) -> str:
    """``text``, if it is no longer than MAX_TEXT characters.

    Raises:
        FixedPointError: longer.
    """
    if len(text) > MAX_TEXT:
        raise FixedPointError(
            f"a decimal text of {len(text)} characters (at most {MAX_TEXT}): {text[:20]!r}..."
        )
    return text


class DecimalCache:
    """Exchange decimal text -> fixed point, memoized (prices and sizes repeat). A text with more than
    8 decimals is rounded half to even and counted in ``rounded`` every time (it is not memoized).
    Negative values raise; ``positive`` also refuses zero.

    ``rounded`` counts the frame being read: a feed ends each frame with :meth:`commit` (taken: the
    count goes to its stats) or :meth:`discard` (rejected: its stats stay as they were)."""

    __slots__ = ("_memo", "rounded")

    def __init__(self) -> None:
        self._memo: dict[str, int] = {}
        self.rounded = 0

    def __call__(self, text: str) -> int:
        value = self._memo.get(text)
        if value is None:
            if len(text) > MAX_TEXT:
                bounded(text)  # raises, naming the length
            value, rounded = parse_fixed8_rounded(text)
            if value < 0:
                raise FixedPointError(f"negative amount {text!r}")
            if rounded:
                self.rounded += 1
            elif len(self._memo) < CACHE_LIMIT:
                self._memo[text] = value
        return value

    def commit(self, stats: FeedStats) -> None:
        """The frame is taken: its rounded values count in ``stats.rounded``."""
        stats.rounded += self.rounded
        self.rounded = 0

    def discard(self) -> None:
        """The frame is rejected: its rounded values are not counted."""
        self.rounded = 0

    def positive(self, text: str) -> int:
        """A price, or the size of a trade: more than zero."""
        value = self(text)
        if not value:
            raise FixedPointError(f"zero where a positive amount is needed: {text!r}")
        return value

    def level(self, price: str, size: str) -> tuple[int, int]:
        """A book level: a positive price and a size (zero: remove the level)."""
        memo = self._memo  # the hot path: both texts seen before
        price_v, size_v = memo.get(price), memo.get(size)
        return price_v or self.positive(price), self(size) if size_v is None else size_v


_SECONDS: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds


def _epoch_seconds(text: str) -> int:
    seconds = _SECONDS.get(text)
    if seconds is None:
        parts = (text[:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
        if not all(part.isdigit() for part in parts):  # int() alone would take " 1", "+1" and "1_0"
            raise ValueError(f"not an RFC 3339 time: {text!r}")
        seconds = calendar.timegm(tuple(int(part) for part in parts))
        if len(_SECONDS) < CACHE_LIMIT:
            _SECONDS[text] = seconds
    return seconds


def parse_time_ns(text: str) -> int:
    """``2021-04-17T16:43:30.244075Z`` (or a ``+HH:MM`` offset) -> integer ns since the epoch, exactly.

    Only ASCII digits are read as digits, and the result fits int64 (what a message carries), so the
    compiled core (``native/core/src/venues/numbers.rs``) answers every text the same way."""
    if not text.isascii() or len(text) < 20 or len(text) > 40 or text[4] != "-" or text[10] != "T":
        raise ValueError(f"not an RFC 3339 time: {text[:40]!r}")
    if text[19] == "." and text[-1] == "Z" and (frac := text[20:-1]).isdigit():  # the common shape
        return _in_range(_epoch_seconds(text[:19]) * 1_000_000_000 + int((frac + "000000000")[:9]), text)
    seconds = _epoch_seconds(text[:19])
    rest = text[19:]
    frac = ""
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        frac, rest = rest[1:end], rest[end:]
    if rest in ("Z", "z", "+00:00"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":" and (rest[1:3] + rest[4:6]).isdigit():
        offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
    else:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    return _in_range((seconds - offset) * 1_000_000_000 + int((frac + "000000000")[:9]), text)


def _in_range(ns: int, text: str) -> int:
    if not -(2**63) <= ns < 2**63:
        raise ValueError(f"time out of the int64 ns range: {text!r}")
    return ns


def seconds_text_to_ns(text: str) -> int:
    """Kraken's ``"1618678142.557535"`` -> integer ns, from the text (no float). ASCII digits only, and
    the result fits int64, as ``native/core/src/venues/kraken_v1.rs`` reads it."""
    whole, _, frac = text.partition(".")
    digits = whole.isdigit() and (not frac or frac.isdigit())
    if not digits or not text.isascii() or len(whole) > 12:
        raise ValueError(f"not a Kraken time: {text[:40]!r}")
    return _in_range(int(whole) * 1_000_000_000 + int((frac + "000000000")[:9]), text)
