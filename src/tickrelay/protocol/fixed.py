"""Fixed-point prices and sizes: int64 = value x 10^8. Pure: no I/O.

Values are parsed from the exchange's decimal *text* with integer arithmetic only; a float never
touches them. More than 8 decimals are rounded half to even and reported, so the caller can count
them. Exponents (``1e-05``, as Python's repr writes small floats) are accepted.
"""

from __future__ import annotations

from tickrelay.errors import FixedPointError


SCALE = 10**8
DECIMALS = 8
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_DIGITS = frozenset("0123456789")
_MAX_DIGITS = 19  # a magnitude of 20 digits is >= 10^19 > 2^63


def parse_fixed8(text: str | bytes) -> int:
    """Parse a decimal string to fixed point, rounding more than 8 decimals half to even.

    Raises:
        FixedPointError: not a plain decimal number, or out of the int64 range once scaled.
    """
    return parse_fixed8_rounded(text)[0]


def parse_fixed8_rounded(text: str | bytes) -> tuple[int, bool]:
    """Like :func:`parse_fixed8`, also telling whether rounding changed the value.

    Returns:
        ``(value, rounded)``; ``rounded`` is True when non-zero digits beyond the 8th decimal
        were dropped.
    """
    s = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    ip, _, fp = s.partition(".")
    # Fast path: the overwhelmingly common unsigned "123.4500" shape (isdigit alone would admit
    # non-ASCII digits such as "²", hence isascii). Longer integer parts go the slow way, which
    # never converts more than 19 digits (int() of over 4300 raises ValueError).
    if (
        len(fp) <= DECIMALS
        and len(ip) <= _MAX_DIGITS
        and ip.isdigit()
        and ip.isascii()
        and (not fp or (fp.isdigit() and fp.isascii()))
    ):
        value = int(ip) * SCALE + (int(fp) * 10 ** (DECIMALS - len(fp)) if fp else 0)
        if value > INT64_MAX:
            raise FixedPointError(f"{s!r} is out of range for int64 x 10^8")
        return value, False
    return _parse_slow(s)


def _parse_slow(s: str) -> tuple[int, bool]:
    body = s
    negative = False
    if body[:1] in ("-", "+"):
        negative = body[0] == "-"
        body = body[1:]
    mantissa, e, exp_text = body.partition("e") if "e" in body else body.partition("E")
    exponent = 0
    if e:
        digits = exp_text[1:] if exp_text[:1] in ("-", "+") else exp_text
        if not digits or not set(digits) <= _DIGITS or len(digits) > 4:
            raise FixedPointError(f"{s!r} is not a decimal number")
        exponent = int(exp_text)
    ip, _, fp = mantissa.partition(".")
    if (not ip and not fp) or not set(ip) <= _DIGITS or not set(fp) <= _DIGITS:
        raise FixedPointError(f"{s!r} is not a decimal number")
    # value = digits x 10^shift, on the digit text: no digit string longer than 19 is converted (a
    # text of any length is answered, and the compiled core, native/core/src/protocol/fixed.rs,
    # follows the same steps)
    digits = (ip + fp).lstrip("0")
    shift = exponent - len(fp) + DECIMALS
    left = len(digits) + shift  # digits of the magnitude before rounding
    if digits and left > _MAX_DIGITS:
        raise FixedPointError(f"{s!r} is out of range for int64 x 10^8")
    rounded = False
    if shift >= 0:
        scaled = int(digits) * 10**shift if digits else 0
    else:
        cut = max(left, 0)
        scaled = int(digits[:cut]) if cut else 0
        dropped = digits[cut:]
        rounded = dropped.strip("0") != ""
        # left < 0: a zero sits between the point and the first digit, so the rest is below half
        if left >= 0 and dropped and (dropped[0] > "5" or (dropped[0] == "5" and (
            dropped[1:].strip("0") or scaled % 2 == 1
        ))):  # fmt: skip
            scaled += 1
    if negative:
        scaled = -scaled
    if not INT64_MIN <= scaled <= INT64_MAX:
        raise FixedPointError(f"{s!r} is out of range for int64 x 10^8")
    return scaled, rounded


def format_fixed8(value: int, decimals: int = DECIMALS) -> str:
    """Render fixed point as decimal text with exactly ``decimals`` places (truncating toward zero
    is never needed for ``decimals`` >= 8; fewer places must be exact, else ValueError)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), SCALE)
    frac_text = f"{frac:08d}"
    if decimals < DECIMALS:
        if frac_text[decimals:].strip("0"):
            raise ValueError(f"{value} has more than {decimals} decimals")
        frac_text = frac_text[:decimals]
    else:
        frac_text += "0" * (decimals - DECIMALS)
    return f"{sign}{whole}.{frac_text}" if decimals else f"{sign}{whole}"
