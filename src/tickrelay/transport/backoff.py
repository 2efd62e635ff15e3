"""Reconnect delays: capped exponential backoff with jitter, no lifetime limit. Pure."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff(
    initial_s: float = 0.05,
    cap_s: float = 2.0,
    factor: float = 2.0,
    rng: random.Random | None = None,
    *,
    floor: float = 0.0,
) -> Iterator[float]:
    """Delays to sleep between attempts: uniform in [floor * c, c] for c = min(cap, initial *
    factor**n), forever. ``floor`` 0 is full jitter; 0.5 ("equal jitter") keeps every delay at half
    its ceiling or more, so a peer that keeps failing really gets the capped wait."""
    rand = rng or random.Random()
    ceiling = initial_s
    while True:
        yield rand.uniform(floor * ceiling, ceiling)
        ceiling = min(cap_s, ceiling * factor)
