"""Run one sequence of calls through both cores and compare them after every call.

The reference is ``venues.core.FeedCore`` over the Python feed; the other is the compiled one
(``venues.native.NativeCore``, as ``make_core(feed, stamper, "native")`` builds it). Every other frame
goes in by the collector's call, ``on_frame_batch``: its envelope must be exactly what
``link.encode_batch`` makes of the messages it holds (the bytes ``RelayOutput`` would write; checked
on each core, decoded with the Python decoder), and the TODO bits are compared too. After each call
the two must agree on the output bytes (or raise the same ``VenueMessageError``, message included),
the whole ``FeedStats``, the venue's own counters, ``wants_snapshot()``, ``take_requests()`` and the
stream's counter; any other exception from either core is a bug. The first difference fails with a
minimal reproducer: the calls so far, shrunk by delta debugging to the fewest on which the cores
still differ, written as a :func:`replay` call a regression test can paste.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NoReturn, Protocol

import pytest

from tests.native.corpus import APIS, Api, Recording
from tickrelay.errors import VenueMessageError
from tickrelay.protocol.codec import HEADER_SIZE, Decoder, Domain
from tickrelay.protocol.link import BATCH_START, FLAG_BATCH, batch_head, encode_batch
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

    def on_frame_batch(self, raw: bytes, ts_recv_ns: int) -> tuple[bytes, int]: ...

    def on_snapshot(self, key: str, body: bytes, ts_recv_ns: int) -> bytes: ...

    def on_disconnect(self, ts_ns: int) -> bytes: ...

    def wants_snapshot(self) -> list[str]: ...

    @property
    def snapshot_wanted(self) -> bool: ...

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


class Divergence(Exception):
    """The cores differ (or one raised what the contract never raises) after the last call."""


@dataclasses.dataclass
class Pair:
    """One sequence's two cores, fed call by call, with the calls so far."""

    api: Api
    feed: str
    python: Core = dataclasses.field(init=False)
    native: Core = dataclasses.field(init=False)
    python_stamper: Stamper = dataclasses.field(init=False)
    native_stamper: Stamper = dataclasses.field(init=False)
    calls: list[Call] = dataclasses.field(default_factory=list)
    frames: int = 0

    def __post_init__(self) -> None:
        make = self.api.feeds[self.feed]
        self.python_stamper = Stamper(self.api.source, STREAM_ID)
        self.native_stamper = Stamper(self.api.source, STREAM_ID)
        self.python = python_core(make(), self.python_stamper)
        self.native = native_core(make(), self.native_stamper)

    def call(self, call: Call) -> None:
        """Make ``call`` on both cores; raises Divergence at the first difference."""
        self.calls.append(call)
        ts = T0 + len(self.calls) * 1_000_000
        self.frames += call[0] == "frame"
        batch = self.frames % 2 == 0  # every other frame by the collector's call
        python = _outcome(self.python, call, ts, batch, self.python_stamper.source)
        native = _outcome(self.native, call, ts, batch, self.native_stamper.source)
        for core, outcome in (("python", python), ("native", native)):
            if isinstance(outcome, Bug):
                raise Divergence(f"the {core} core raised {outcome.text}")
        self._same("output", python, native)
        self._same("stats", self.python.stats, self.native.stats)
        self._same("venue counters", extras(self.python), extras(self.native))
        wanted = self.python.wants_snapshot()
        self._same("wants_snapshot()", wanted, self.native.wants_snapshot())
        self._same("snapshot_wanted", self.python.snapshot_wanted, self.native.snapshot_wanted)
        self._same("snapshot_wanted against wants_snapshot()", bool(wanted), self.python.snapshot_wanted)
        self._same("take_requests()", self.python.take_requests(), self.native.take_requests())
        self._same("stream counter", self.python_stamper.counter, self.native_stamper.counter)

    def _same(self, what: str, python: object, native: object) -> None:
        if python != native:
            raise Divergence(f"{what} differ\n  python: {python!r}\n  native: {native!r}")


@dataclasses.dataclass(frozen=True)
class Bug:
    text: str


def unwrap(batch: bytes, ts: int, source: int) -> bytes:
    """The messages of ``batch``, checked: one whole message of the market-data domain with flags
    CHECKSUM | BATCH (its CRC verified by the decoder), timestamp ``ts``, its sequence and head's first
    sequence the first inner message's, its count the inner messages', and its bytes exactly
    ``encode_batch`` of them. Raises AssertionError when not."""
    decoder = Decoder()
    decoder.feed(batch)
    envelope = next(decoder)
    assert decoder.buffered == 0, "bytes after the envelope"
    h = envelope.header
    assert (h.relay_domain, h.source, h.flags & FLAG_BATCH, h.timestamp_ns) == (
        Domain.MARKET_DATA, source, FLAG_BATCH, ts
    ), h  # fmt: skip
    first, count = batch_head(envelope)
    run, at, seen = batch[BATCH_START:], 0, 0
    while at < len(run):
        at += HEADER_SIZE + int.from_bytes(run[at + 24 : at + 28], "little")
        seen += 1
    assert at == len(run), (at, len(run))
    assert seen == count >= 1, (seen, count)
    assert first == h.sequence == int.from_bytes(run[8:16], "little")
    assert encode_batch(h.relay_domain, source, first, count, ts, run) == batch
    return run


def _outcome(core: Core, call: Call, ts: int, batch: bool = False, source: int = 0) -> object:
    try:
        kind = call[0]
        if kind == "frame" and batch:
            envelope, todo = core.on_frame_batch(call[1], ts)
            return ("batch", unwrap(envelope, ts, source) if envelope else b"", envelope, todo)
        if kind == "frame":
            return core.on_frame(call[1], ts)
        if kind == "disconnect":
            return core.on_disconnect(ts)
        return core.on_snapshot(call[1], call[2], ts)
    except VenueMessageError as exc:  # the one exception the contract allows (on_snapshot)
        return ("VenueMessageError", str(exc))
    except (KeyboardInterrupt, SystemExit, pytest.fail.Exception):  # the last: pytest-timeout's
        raise
    except BaseException as exc:  # a bug in either core; pyo3's PanicException is a BaseException
        return Bug(f"{type(exc).__name__}: {exc}")


def divergence(api: Api, feed: str, calls: list[Call]) -> str | None:
    """What differs first when ``calls`` go through both cores (None: nothing)."""
    pair = Pair(api, feed)
    try:
        for call in calls:
            pair.call(call)
    except Divergence as exc:
        return f"after call {len(pair.calls)}: {exc}"
    return None


def minimize(api: Api, feed: str, calls: list[Call]) -> list[Call]:
    """The shortest sub-sequence of ``calls`` (delta debugging: chunks of halving size taken out) on
    which the cores still differ."""
    chunks = 2
    while len(calls) > 1:
        size = -(-len(calls) // chunks)
        for start in range(0, len(calls), size):
            fewer = calls[:start] + calls[start + size :]
            if divergence(api, feed, fewer) is not None:
                calls, chunks = fewer, max(chunks - 1, 2)
                break
        else:
            if size == 1:
                break
            chunks = min(len(calls), chunks * 2)
    return calls


def reproducer(api: Api, feed: str, calls: list[Call]) -> str:
    lines = "".join(f"    {call!r},\n" for call in calls)
    return f"replay({api.name!r}, {feed!r}, [\n{lines}])"


def fail(api: Api, feed: str, calls: list[Call], first: str) -> NoReturn:
    """Shrink ``calls`` to a minimal sequence on which the cores differ and fail with it (``first``:
    the difference as first seen; None after the shrinking means a fresh pair of cores does not
    differ on these calls: state outside the two feeds)."""
    least = minimize(api, feed, calls)
    raise AssertionError(
        f"{api.name} ({feed}): the cores differ after call {len(calls)}: {first}\n"
        f"replayed on fresh cores, shrunk: {divergence(api, feed, least)}\n"
        f"minimal reproducer ({len(least)} of the {len(calls)} calls of the failing sequence; "
        f"tests/native/differential.py):\n{reproducer(api, feed, least)}"
    )


def replayed(api: str, feed: str, calls: list[Call]) -> Pair:
    """Feed ``calls`` to both cores of ``api`` built with the ``feed`` settings, comparing after every
    call; returns the pair, for a test to check what both hold."""
    pair = Pair(APIS[api], feed)
    try:
        for call in calls:
            pair.call(call)
    except Divergence as exc:
        fail(pair.api, feed, pair.calls, str(exc))
    return pair


def replay(api: str, feed: str, calls: list[Call]) -> int:
    """:func:`replayed`; returns the number of frames fed."""
    return replayed(api, feed, calls).frames


def run_plan(api: Api, feed: str, rec: Recording, ops: list[Call], auto_snapshots: bool) -> int:
    """Feed ``ops``; with ``auto_snapshots`` (APIs that take REST snapshots), after each frame give
    each key the feed wants its next recorded body, each body once, as ``normalize`` does."""
    pair = Pair(api, feed)
    pending = {key: list(bodies) for key, bodies in rec.snapshots.items()}
    try:
        for op in ops:
            pair.call(op)
            if op[0] == "frame" and auto_snapshots:
                for key in pair.python.wants_snapshot():
                    if pending.get(key):
                        pair.call(("snapshot", key, pending[key].pop(0)))
    except Divergence as exc:
        fail(api, feed, pair.calls, str(exc))
    return pair.frames


def needs(api: Api) -> pytest.MarkDecorator:
    reason = skip_reason(api)
    return pytest.mark.skipif(reason is not None, reason=reason or "")
