"""Shared vectors for the compiled finisher (native/core/tests/finish.rs): sessions of feed calls, each a
list of events, stamped by FeedCore with its Stamper (RECOVERED included), with the bytes, the counter
after each call and the RECOVERED invalidations added, or the exception a call raised (an event the
protocol cannot carry). The Rust test runs the same sessions through ``venues::finish::Finisher``
and must give the same bytes, counters and errors. This test holds the file to what the Python
makes now: after a change of the encoders or of FeedCore, rewrite it with
``python3 tests/venues/test_finish_vectors.py`` and say why in the commit.
"""

from __future__ import annotations

import json
import random
import struct
import sys
from pathlib import Path
from typing import Any

from tickrelay.errors import MalformedTlv
from tickrelay.protocol import messages as m
from tickrelay.protocol.stamper import Stamper
from tickrelay.venues.core import FeedCore
from tickrelay.venues.feed import FeedStats


VECTORS = Path(__file__).with_name("finish_vectors.json")
U64, I64 = (1 << 64) - 1, (1 << 63) - 1


class _Script:
    """A feed whose next call returns the events it is given."""

    SNAPSHOTS = False

    def __init__(self) -> None:
        self.stats = FeedStats()
        self.events: list[m.Event] = []

    def on_frame(self, raw: bytes, ts_recv_ns: int) -> list[m.Event]:
        return self.events


def _int(rng: random.Random, low: int, high: int) -> int:
    """Mostly edges (the bounds, 0, 1), else uniform."""
    edges = [v for v in (low, high, 0, 1) if low <= v <= high]
    return rng.choice(edges) if rng.random() < 0.3 else rng.randint(low, high)


def _text(rng: random.Random, bad: bool) -> str:
    alphabet = "ABC-/xyz0é€𝄞"  # 1- to 4-byte UTF-8
    n = 256 if bad else rng.choice([0, 1, 7, 60, 255 // 4])
    return "X" * n if bad else "".join(rng.choice(alphabet) for _ in range(n))


def _levels(rng: random.Random) -> tuple[tuple[int, int], ...]:
    n = rng.choice([0, 0, 1, 2, 3, 17])  # 17 bids or asks: past 255 bytes, the extended TLV form
    return tuple((_int(rng, -I64 - 1, I64), _int(rng, -I64 - 1, I64)) for _ in range(n))


def _event(rng: random.Random, pool: list[int], bad: bool) -> m.Event:
    """A random event of every kind a feed pushes; ``bad``: one the protocol cannot carry."""
    asset, venue, kind = rng.choice(pool), _int(rng, 0, 0xFFFF), _int(rng, 0, 255)
    ts = -1 if bad else _int(rng, 0, I64)  # a time is packed unsigned: a negative one is refused
    q = lambda: _int(rng, -I64 - 1, I64)  # noqa: E731
    match rng.choice(["Trade", "Quote", "Meta", "Snapshot", "Delta", "Reset", "Invalidation"]):
        case "Trade":
            return m.Trade(asset, q(), q(), ts, venue, kind, _int(rng, 0, 255))
        case "Quote":
            return m.Quote(asset, q(), q(), q(), q(), ts, venue, kind)
        case "Meta":
            return m.InstrumentMeta(
                asset, venue, kind, _int(rng, 0, 255), _int(rng, 0, 255), _text(rng, bad), _text(rng, False)
            )
        case "Snapshot":
            flags, seq, part = rng.choice([1, 2, 3, 3, 3, 0]), _int(rng, 0, U64), _int(rng, 0, 0xFFFF)
            return m.L2Snapshot(asset, venue, kind, flags, seq, ts, part, _levels(rng), _levels(rng))
        case "Delta":
            first, last, flags = _int(rng, 0, U64), _int(rng, 0, U64), _int(rng, 0, 255)
            return m.L2Delta(asset, venue, kind, flags, first, last, ts, _levels(rng), _levels(rng))
        case "Reset":
            return m.L2Reset(asset, venue, kind, _int(rng, 0, 255))
    ids = () if rng.random() < 0.4 else tuple(rng.sample(pool, rng.randint(1, len(pool))))
    return m.StateInvalidation(venue, kind, _int(rng, 0, 255), ids)


def _fields(event: m.Event) -> dict[str, Any]:
    return {"name": type(event).__name__, **event._asdict()}


def generate() -> list[dict[str, Any]]:
    rng = random.Random(14)
    sessions = []
    for _ in range(30):
        domain = rng.choice([1, 1, 1, 2, 3, 4])  # Trade and Quote take the fused encoders in domain 1
        stamper = Stamper(_int(rng, 0, 255), _int(rng, 0, 0xFFFF), domain, rng.choice([0, 41, (1 << 48) - 2]))
        session: dict[str, Any] = {
            "source": stamper.source,
            "stream_id": stamper.stream_id,
            "domain": domain,
            "counter": stamper.counter,
            "calls": [],
        }
        feed = _Script()
        core = FeedCore(feed, stamper)  # type: ignore[arg-type]  # the part of a feed FeedCore uses
        pool = [_int(rng, 0, U64) for _ in range(3)]  # few books: invalidations and RECOVERED meet them
        for _ in range(rng.randint(1, 12)):
            bad = rng.random() < 0.05
            feed.events = [_event(rng, pool, False) for _ in range(rng.randint(0, 5))]
            if bad:
                feed.events.insert(rng.randint(0, len(feed.events)), _event(rng, pool, True))
            ts = _int(rng, 0, I64)
            before = feed.stats.messages["StateInvalidation"]
            call: dict[str, Any] = {"ts": ts, "events": [_fields(e) for e in feed.events]}
            try:
                call["hex"] = core.on_frame(b"", ts).hex()
            except (struct.error, MalformedTlv) as exc:
                call["error"] = [type(exc).__name__, str(exc)]
            call["counter"] = stamper.counter
            call["recovered"] = feed.stats.messages["StateInvalidation"] - before
            session["calls"].append(call)
        sessions.append(session)
    return sessions


def test_the_shared_vectors_are_what_the_python_makes() -> None:
    vectors = json.loads(VECTORS.read_text())
    assert vectors == json.loads(json.dumps(generate())), "stale: python3 tests/venues/test_finish_vectors.py"
    calls = [c for s in vectors for c in s["calls"]]
    assert sum(c["recovered"] for c in calls) >= 10  # RECOVERED is exercised, and so are refusals
    assert {c["error"][0] for c in calls if "error" in c} == {"error", "MalformedTlv"}
    assert any(len(c.get("hex", "")) > 2 * (32 + 255) for c in calls)  # extended TLVs too


if __name__ == "__main__":
    VECTORS.write_text(json.dumps(generate(), separators=(",", ":")) + "\n")
    sys.exit(0)
