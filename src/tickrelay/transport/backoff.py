"""Reconnect delays: capped exponential backoff with full jitter, no lifetime limit. Pure."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff(
    initial_s: float = 0.05, cap_s: float = 2.0, factor: float = 2.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Delays to sleep between attempts: uniform in [0, min(cap, initial * factor**n)], forever."""
    rand = rng or random.Random()
    ceiling = initial_s
    while True:
        yield rand.uniform(0, ceiling)
        ceiling = min(cap_s, ceiling * factor)
