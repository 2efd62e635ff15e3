"""Checked argparse value types for flags that no configuration key covers (those are checked by
``config.load_settings``): a bad value is a one-line usage error (exit 2) naming the flag, never a
port that wraps around (99999 served on 34463) or a negative duration."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def port(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535."""
    value = int(_number(text, integer=True))
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port, 0 to 65535, not {text}")
    return value


def at_least(minimum: float) -> Callable[[str], float]:
    """A number no smaller than ``minimum`` (an integer if ``minimum`` is one)."""
    integer = isinstance(minimum, int)

    def check(text: str) -> float:
        value = _number(text, integer=integer)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, not {text}")
        return value

    return check


def positive(text: str) -> float:
    """A number (seconds, a rate) above zero."""
    value = _number(text, integer=False)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _number(text: str, *, integer: bool) -> float:
    try:
        return int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise argparse.ArgumentTypeError(f"must be {kind}, not {text!r}") from None
