"""A Kraken v1 book recording at a smaller depth: the frames Kraken sends to a client subscribed at
``depth``, made from a deeper recording of the same session. Pure.

Kraken's rules for a depth-N subscription (docs.kraken.com, spot WebSocket v1 ``book``): the snapshot
holds the best N levels a side; an update names only levels within the best N; a level pushed below
the N-th by a better one is not deleted (the client truncates); a level that rises into the best N
because one above it went is sent as a republish (``[price, volume, timestamp, "r"]``). The CRC32 ``c``
covers the best 10 levels a side at every depth, so the recorded checksums hold unchanged. Frames
that change nothing within the best N are not sent; events and heartbeats pass as recorded.
"""

from __future__ import annotations

import bisect
import json
from decimal import Decimal
from typing import Any

from tickrelay.replay.recordings import Recording


class _Side:
    """One side of a book: levels by price text, their order kept by key (best first)."""

    def __init__(self, ascending: bool) -> None:
        self.sign = 1 if ascending else -1
        self.keys: list[Decimal] = []
        self.levels: dict[Decimal, list[str]] = {}

    def set(self, level: list[str]) -> None:
        key = Decimal(level[0]) * self.sign
        if Decimal(level[1]) == 0:
            if self.levels.pop(key, None) is not None:
                del self.keys[bisect.bisect_left(self.keys, key)]
            return
        if key not in self.levels:
            bisect.insort(self.keys, key)
        self.levels[key] = level[:3]

    def top(self, n: int) -> dict[Decimal, list[str]]:
        return {k: self.levels[k] for k in self.keys[:n]}


def _update(side: _Side, levels: list[list[str]], depth: int) -> list[list[str]]:
    """Apply one side's recorded levels; the levels a depth-``depth`` client is sent."""
    before = side.top(depth)
    for level in levels:
        side.set(level)
    after = side.top(depth)
    named = {Decimal(level[0]) * side.sign for level in levels}
    out = [level[:3] for level in levels if (key := Decimal(level[0]) * side.sign) in after or key in before]
    out += [[*level, "r"] for key, level in after.items() if key not in before and key not in named]
    return out


def shallower(rec: Recording, depth: int) -> Recording:
    """``rec`` (a Kraken v1 book recording) as a client subscribed at ``depth`` receives it."""
    books: dict[str, tuple[_Side, _Side]] = {}
    frames: list[bytes] = []
    times: list[int] = []
    for frame, at in zip(rec.frames, rec.times_ns, strict=True):
        if not frame.startswith(b"["):
            frames.append(frame)
            times.append(at)
            continue
        msg: list[Any] = json.loads(frame)
        pair, name = msg[-1], f"book-{depth}"
        if "as" in msg[1] or "bs" in msg[1]:
            asks, bids = books[pair] = (_Side(True), _Side(False))
            for level in msg[1].get("as", []):
                asks.set(level)
            for level in msg[1].get("bs", []):
                bids.set(level)
            snapshot = {"as": list(asks.top(depth).values()), "bs": list(bids.top(depth).values())}
            out: list[Any] = [msg[0], snapshot, name, pair]
        else:
            asks, bids = books[pair]
            parts = {k: v for part in msg[1:-2] for k, v in part.items()}
            sent = {k: _update(asks if k == "a" else bids, parts[k], depth) for k in ("a", "b") if k in parts}
            sent = {k: v for k, v in sent.items() if v}
            if not sent:
                continue
            sides: list[dict[str, Any]] = [{k: v} for k, v in sent.items()]
            sides[-1]["c"] = parts["c"]
            out = [msg[0], *sides, name, pair]
        frames.append(json.dumps(out, separators=(",", ":")).encode())
        times.append(at)
    return Recording(f"{rec.name} at depth {depth}", tuple(frames), tuple(times))
