"""Run one sequence of calls through both cores and compare them after every call.

The reference is ``venues.core.FeedCore`` over the Python feed; the other is the compiled one
(``venues.native.NativeCore``, as ``make_core(feed, stamper, "native")`` builds it). After each call
the two must agree on the output bytes (or raise the same exception with the same message), the
whole ``FeedStats``, the venue's own counters, ``wants_snapshot()`` and ``take_requests()``. The
first difference fails with the calls so far, written as a literal a test can replay (:func:`replay`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Protocol

import pytest

from tests.native.corpus import APIS, Api, Recording
from tickrelay.errors import VenueMessageError
from tickrelay.protocol.stamper import Stamper
from tickrelay.venues.core import FeedCore
from tickrelay.venues.feed import FeedStats, VenueFeed
from tickrelay.venues.native import NativeCore, core_choice, make_core


STREAM_ID = 7
T0 = 1_700_000_000_000_000_000  # ts of the first call; each call 1 ms later
Call = tuple[Any, ...]  # ("frame", raw) | ("snapshot", key, body) | ("disconnect",)
EXTRAS = ("trade_id_gaps", "unverified_checksums", "cross_checks")  # venue counters kept as attributes


class Core(Protocol):
    """The byte-level contract both cores implement (``FeedCore`` and ``NativeCore``)."""

    @property
    def SNAPSHOTS(self) -> bool: ...

    @property
    def stats(self) -> FeedStats: ...

    def on_frame(self, raw: bytes, ts_recv_ns: int) -> bytes: ...

    def on_snapshot(self, key: str, body: bytes, ts_recv_ns: int) -> bytes: ...

    def on_disconnect(self, ts_ns: int) -> bytes: ...

    def wants_snapshot(self) -> list[str]: ...

    def take_requests(self) -> list[bytes]: ...


def python_core(feed: VenueFeed, stamper: Stamper) -> Core:
    return FeedCore(feed, stamper)


def native_core(feed: VenueFeed, stamper: Stamper) -> Core:
    core = make_core(feed, stamper, "native")
    assert isinstance(core, NativeCore), core_choice(feed, "native")
    return core


def skip_reason(api: Api) -> str | None:
    """Why ``api`` cannot be compared (None: it can): no compiled twin, or the extension not built."""
    why = core_choice(next(iter(api.feeds.values()))(), "native")
    return None if why == "native" else f"{api.name}: {why}"


def extras(core: Core) -> dict[str, int]:
    """The venue's own counters, by name (Coinbase's trade-id gaps, Binance's bookTicker cross-checks,
    Kraken's unverified checksums): the native core's ``extra``, the Python feed's attributes."""
    if isinstance(core, NativeCore):
        return core.extra
    assert isinstance(core, FeedCore)
    found: dict[str, int] = {}
    for name in EXTRAS:
        value = getattr(core.feed, name, None)
        if isinstance(value, dict):
            found.update(value)
        elif value is not None:
            found[name] = value
    return found


@dataclasses.dataclass
class Pair:
    """One sequence's two cores, fed call by call, with the calls so far."""

    api: Api
    feed: str
    python: Core = dataclasses.field(init=False)
    native: Core = dataclasses.field(init=False)
    calls: list[Call] = dataclasses.field(default_factory=list)
    frames: int = 0

    def __post_init__(self) -> None:
        make = self.api.feeds[self.feed]
        self.python = python_core(make(), Stamper(self.api.source, STREAM_ID))
        self.native = native_core(make(), Stamper(self.api.source, STREAM_ID))

    def call(self, call: Call) -> None:
        self.calls.append(call)
        ts = T0 + len(self.calls) * 1_000_000
        self.frames += call[0] == "frame"
        self._same("output", _outcome(self.python, call, ts), _outcome(self.native, call, ts))
        self._same("stats", self.python.stats, self.native.stats)
        self._same("venue counters", extras(self.python), extras(self.native))
        self._same("wants_snapshot()", self.python.wants_snapshot(), self.native.wants_snapshot())
        self._same("take_requests()", self.python.take_requests(), self.native.take_requests())

    def _same(self, what: str, python: object, other: object) -> None:
        if python != other:
            raise AssertionError(
                f"{self.api.name} ({self.feed}): {what} differ after call {len(self.calls)}"
                f"\n  python: {python!r}\n  native: {other!r}\n{reproducer(self.api, self.feed, self.calls)}"
            )


def _outcome(core: Core, call: Call, ts: int) -> object:
    kind = call[0]
    if kind == "frame":
        return core.on_frame(call[1], ts)
    if kind == "disconnect":
        return core.on_disconnect(ts)
    try:
        return core.on_snapshot(call[1], call[2], ts)
    except VenueMessageError as exc:  # the one exception the contract allows; any other is a bug
        return ("VenueMessageError", str(exc))


def reproducer(api: Api, feed: str, calls: list[Call]) -> str:
    lines = "".join(f"    {call!r},\n" for call in calls)
    return f"reproducer: replay({api.name!r}, {feed!r}, [\n{lines}])"


def replay(api: str, feed: str, calls: Iterable[Call]) -> int:
    """Feed ``calls`` to both cores of ``api`` built with the ``feed`` settings, comparing after every
    call; returns the number of frames fed."""
    pair = Pair(APIS[api], feed)
    for call in calls:
        pair.call(call)
    return pair.frames


def run_plan(api: Api, feed: str, rec: Recording, ops: list[Call], auto_snapshots: bool) -> int:
    """Feed ``ops``; with ``auto_snapshots`` (APIs that take REST snapshots), after each frame give
    each key the feed wants its next recorded body, each body once, as ``normalize`` does."""
    pair = Pair(APIS[api.name], feed)
    pending = {key: list(bodies) for key, bodies in rec.snapshots.items()}
    for op in ops:
        pair.call(op)
        if op[0] == "frame" and auto_snapshots:
            for key in pair.python.wants_snapshot():
                if pending.get(key):
                    pair.call(("snapshot", key, pending[key].pop(0)))
    return pair.frames


def needs(api: Api) -> pytest.MarkDecorator:
    reason = skip_reason(api)
    return pytest.mark.skipif(reason is not None, reason=reason or "")
