"""Frames in, finished Protocol V2 bytes out: a venue feed, its stream's stamper, recovery. Pure: no I/O.

This is the byte-level form of the feed contract (``venues.feed``), the one the collector and
``tickrelay normalize`` drive and a compiled core implements directly:

* ``on_frame(raw, ts_recv_ns) -> bytes``, ``on_snapshot(key, body, ts_recv_ns) -> bytes``,
  ``on_disconnect(ts_ns) -> bytes``: zero or more whole messages, back to back, each one TLV, stamped
  with the stream's source and the next sequence (stream id << 48 | counter, counter from 1, +1 per
  message), header timestamp_ns = the ts passed in, CRC32 on;
* ``subscribe_messages()``, ``snapshot_wanted``, ``wants_snapshot()``, ``snapshot_url(base, key)``,
  ``take_requests()`` and ``stats``: as the venue feed's (``snapshot_wanted`` is the per-frame check:
  a compiled core keeps it as a plain attribute it sets when it changes, so reading it costs no call);
* ``on_frame_batch(raw, ts_recv_ns) -> (batch, todo)``: the collector's per-frame call. ``batch`` is
  what ``on_frame`` returns wrapped in one relay-link batch envelope (``link.encode_batch``, envelope
  timestamp ``ts_recv_ns``: the bytes ``RelayOutput`` would write for this frame alone), ``b""`` when
  the frame made no message; ``todo`` folds in the per-frame checks, ``TODO_*`` bits: a kind of
  rejected frame not told before, ``snapshot_wanted``, requests to send (taken from the feed here,
  handed out by the next ``take_requests()``);
* after the complete snapshot (the L2Snapshot flagged END) of an instrument whose book was invalidated
  since its previous snapshot (or by a venue-wide invalidation), a StateInvalidation(RECOVERED) naming
  it follows at once: consumers may trust that book again.

:class:`~tickrelay.protocol.stamper.Stamper` is the one place sequence numbers are assigned:
``RelayOutput`` owns one per stream, and a core built on it hands ``RelayOutput.append`` buffers that
go out as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from itertools import starmap
from typing import ClassVar, Final, Literal, Protocol, TypeVar

from tickrelay.protocol.link import encode_batch
from tickrelay.protocol.messages import Event, L2Snapshot, Reason, SnapshotFlags, StateInvalidation
from tickrelay.protocol.stamper import Stamper
from tickrelay.venues.feed import SPOT, FeedStats, RestBudget, VenueFeed


TODO_NEW_REJECT: Final = 1  # on_frame_batch: a kind of rejected frame not told before (log its sample)
TODO_SNAPSHOT: Final = 2  # a REST snapshot is wanted (snapshot_wanted)
TODO_REQUESTS: Final = 4  # frames to send (take_requests())


class FeedFront:
    """What every core takes from the Python feed object as it is: the parts that need no feed state."""

    __slots__ = ("feed", "stamper")
    feed: VenueFeed
    stamper: Stamper  # the stream's, which the core numbers its messages with

    @property
    def SNAPSHOTS(self) -> bool:
        return self.feed.SNAPSHOTS

    @property
    def REST_BUDGET(self) -> RestBudget | None:
        return self.feed.REST_BUDGET

    def subscribe_messages(self) -> list[bytes]:
        return self.feed.subscribe_messages()

    def snapshot_url(self, base: str, key: str) -> str:
        return self.feed.snapshot_url(base, key)


class FeedCore(FeedFront):
    """A venue feed behind the byte-level contract (see the module docstring)."""

    __slots__ = ("_books", "_dark", "_rejects_told", "_requests")
    CORE: ClassVar[Literal["native", "python"]] = "python"  # which core runs (venues.native.make_core)

    def __init__(self, feed: VenueFeed, stamper: Stamper) -> None:
        self.feed = feed
        self.stamper = stamper
        self._books: set[int] = set()  # instruments that had a complete snapshot
        self._dark: set[int] = set()  # invalidated since, waiting for a fresh snapshot
        self._rejects_told = 0  # kinds of rejected frame (each with its sample) on_frame_batch told of
        self._requests: list[bytes] = []  # taken from the feed by on_frame_batch, not yet handed out

    @property
    def stats(self) -> FeedStats:
        return self.feed.stats

    def wants_snapshot(self) -> list[str]:
        return self.feed.wants_snapshot()

    @property
    def snapshot_wanted(self) -> bool:
        return self.feed.snapshot_wanted

    def take_requests(self) -> list[bytes]:
        requests, self._requests = self._requests, []
        requests += self.feed.take_requests()
        return requests

    def on_frame(self, raw: bytes, ts_recv_ns: int) -> bytes:
        values = self.feed.on_frame(raw, ts_recv_ns)
        return self._finish(values, ts_recv_ns) if values else b""

    def on_frame_batch(self, raw: bytes, ts_recv_ns: int) -> tuple[bytes, int]:
        """``on_frame`` as one batch envelope, and the ``TODO_*`` bits (see the module docstring)."""
        stamper = self.stamper
        first = stamper.counter
        out = self.on_frame(raw, ts_recv_ns)
        if out:
            sequence = int.from_bytes(out[8:16], "little")
            count = stamper.counter - first
            out = encode_batch(stamper.domain, stamper.source, sequence, count, ts_recv_ns, out)
        feed, todo = self.feed, 0
        kinds = len(feed.stats.samples)
        if kinds != self._rejects_told:
            self._rejects_told = kinds
            todo |= TODO_NEW_REJECT
        if feed.snapshot_wanted:
            todo |= TODO_SNAPSHOT
        self._requests += feed.take_requests()
        if self._requests:
            todo |= TODO_REQUESTS
        return out, todo

    def on_snapshot(self, key: str, body: bytes, ts_recv_ns: int) -> bytes:
        return self._finish(self.feed.on_snapshot(key, body, ts_recv_ns), ts_recv_ns)

    def on_disconnect(self, ts_ns: int) -> bytes:
        return self._finish(self.feed.on_disconnect(ts_ns), ts_ns)

    def _finish(self, values: Sequence[Event], ts: int) -> bytes:
        message = self.stamper.message
        out = []
        for value in values:
            out.append(message(ts, value))
            if isinstance(value, StateInvalidation):  # feeds never say RECOVERED: this core does
                self._dark.update(value.asset_ids or self._books)  # none named: every book of the venue
            elif isinstance(value, L2Snapshot) and value.flags & SnapshotFlags.END:
                self._books.add(value.asset_id)
                if value.asset_id in self._dark:
                    self._dark.discard(value.asset_id)
                    reason = int(Reason.RECOVERED)
                    out.append(
                        message(ts, StateInvalidation(value.venue_id, SPOT, reason, (value.asset_id,)))
                    )
                    self.stats.messages["StateInvalidation"] += 1
        return b"".join(out)


R = TypeVar("R", covariant=True)


class Driven(Protocol[R]):
    """What :func:`drive` needs: a venue feed (values out) or a FeedCore (bytes out)."""

    @property
    def SNAPSHOTS(self) -> bool: ...

    def on_frame(self, raw: bytes, ts_recv_ns: int) -> R: ...

    @property
    def snapshot_wanted(self) -> bool: ...

    def wants_snapshot(self) -> list[str]: ...

    def on_snapshot(self, key: str, body: bytes, ts_recv_ns: int) -> R: ...


Snapshots = Callable[[int, list[str]], list[tuple[str, bytes]]]
"""(line just fed, keys the feed wants) -> the (key, body) snapshots to give it now."""


def drive(
    feed: Driven[R],
    frames: Iterable[tuple[bytes, int]],
    snapshots: Snapshots | None = None,
    lines: Container[int] = (),
) -> Iterator[R]:
    """Run recorded frames (raw, ts_recv_ns) through ``feed`` as a collector would: after each frame
    that leaves the feed wanting a snapshot (``snapshot_wanted``), and after each of ``lines`` (for
    snapshots given at a fixed line), the REST snapshots ``snapshots`` has for it, at that frame's time.
    Returns an iterator of what each call returns, made as it is read."""
    if snapshots is None or not feed.SNAPSHOTS:  # a class constant: such a feed never asks
        return starmap(feed.on_frame, frames)  # each call made in C: no Python code per frame
    return _with_snapshots(feed, frames, snapshots, lines)


def _with_snapshots(
    feed: Driven[R], frames: Iterable[tuple[bytes, int]], snapshots: Snapshots, lines: Container[int]
) -> Iterator[R]:
    """``drive`` for a feed that may ask for snapshots."""
    on_frame = feed.on_frame  # the per-frame path: no lookups a collector does not make
    line = 0
    for raw, ts in frames:
        line += 1  # noqa: SIM113 - enumerate() would build a (line, frame) pair per frame
        yield on_frame(raw, ts)
        if feed.snapshot_wanted or line in lines:  # an attribute: no call, no list per frame
            for key, body in snapshots(line, feed.wants_snapshot()):
                yield feed.on_snapshot(key, body, ts)
