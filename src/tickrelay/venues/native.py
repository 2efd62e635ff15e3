"""The compiled venue core behind the byte-level feed contract, and the choice of core. Pure: no I/O.

:class:`NativeCore` is :class:`~tickrelay.venues.core.FeedCore`'s twin: the same calls, the same bytes
and stats, but frames are parsed, books kept and messages stamped by ``tickrelay._native.NativeFeed``
(``native/core/src/venues/``, the RECOVERED rule included). What needs no state of the feed's stays in
the Python feed object it was made from: ``subscribe_messages``, ``snapshot_url``, ``SNAPSHOTS`` and
``REST_BUDGET``. The Python feed says how to build its twin with ``native_spec()`` (api name and
parameters); :func:`make_core` is the one place that decides which core a feed runs on.

**One counter.** The stream's sequence counter is ``stamper.counter``: ``RelayOutput`` owns the
:class:`~tickrelay.protocol.stamper.Stamper` and stamps its own messages (PublisherLoss, ...) between
frames. The native feed is given the Stamper itself: a call with events to stamp reads its counter
first and writes the last one it assigned back before it returns (or raises, as the Python stamper
has moved when an event is refused); there is no second counter to keep in step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import ClassVar, Literal

from tickrelay.native import WHY_PYTHON, compiled
from tickrelay.protocol.stamper import Stamper
from tickrelay.venues.core import FeedCore, FeedFront
from tickrelay.venues.feed import BookStats, FeedStats, VenueFeed


if compiled is not None:
    from tickrelay._native import NativeFeed


class NativeCore(FeedFront):
    """A venue feed's compiled twin behind the byte-level contract (see the module docstring). The
    per-frame calls are the native feed's own methods, bound once: no Python frame between the
    collector and the compiled code."""

    __slots__ = (
        "__weakref__",  # the native feed keeps ``snapshot_wanted`` through a weak reference
        "_native",
        "on_disconnect",
        "on_frame",
        "on_frame_batch",
        "on_snapshot",
        "snapshot_wanted",
        "take_requests",
        "wants_snapshot",
    )
    CORE: ClassVar[Literal["native", "python"]] = "native"

    def __init__(self, feed: VenueFeed, stamper: Stamper, native: NativeFeed) -> None:
        self.feed = feed  # the Python feed: only its state-free parts are used
        self.stamper = stamper
        self._native = native
        self.on_frame: Callable[[bytes, int], bytes] = native.on_frame
        self.on_frame_batch: Callable[[bytes, int], tuple[bytes, int]] = native.on_frame_batch
        self.on_snapshot: Callable[[str, bytes, int], bytes] = native.on_snapshot
        self.on_disconnect: Callable[[int], bytes] = native.on_disconnect
        self.wants_snapshot: Callable[[], list[str]] = native.wants_snapshot
        self.take_requests: Callable[[], list[bytes]] = native.take_requests
        self.snapshot_wanted = False  # a plain attribute the native feed sets when it changes
        if feed.SNAPSHOTS:  # the others never ask: their native feed checks nothing per call
            native.keep_wanted_on(self)

    @property
    def stats(self) -> FeedStats:
        """The native feed's statistics as a ``FeedStats`` (built on each read: read it per report, not
        per frame; ``on_frame_batch``'s bits are the per-frame check)."""
        s = self._native.stats()
        return FeedStats(
            frames=s["frames"],
            messages=Counter(s["messages"]),
            ignored=Counter(s["ignored"]),
            rejected=Counter(s["rejected"]),
            samples=s["samples"],
            rounded=s["rounded"],
            venue_errors=s["venue_errors"],
            books={symbol: BookStats(**book) for symbol, book in s["books"].items()},
        )

    @property
    def extra(self) -> dict[str, int]:
        """The venue's own counters, which the Python feed keeps as attributes (``trade_id_gaps``, ...)."""
        return self._native.stats()["extra"]


def make_core(feed: VenueFeed, stamper: Stamper, core: str) -> FeedCore | NativeCore:
    """The core ``feed`` runs on: the compiled one when ``core`` is ``"native"``, the extension is loaded
    (not turned off by ``TICKRELAY_NO_EXTENSIONS``), the feed has a ``native_spec()`` and the build
    has a native feed for its API; else the Python :class:`FeedCore`. Decide before the first frame:
    the native feed starts from the spec, not from the Python feed's state."""
    twin = _twin(feed, stamper, core)
    return FeedCore(feed, stamper) if isinstance(twin, str) else NativeCore(feed, stamper, twin)


def core_choice(feed: VenueFeed, core: str) -> str:
    """Which core :func:`make_core` gives ``feed``, for people: ``native``, or ``python (why)``."""
    twin = _twin(feed, Stamper(0, 0), core)
    return f"python ({twin})" if isinstance(twin, str) else "native"


def _twin(feed: VenueFeed, stamper: Stamper, core: str) -> NativeFeed | str:
    """The compiled twin of ``feed`` stamping with ``stamper``'s stream, or why it runs in Python."""
    if core != "native":
        return f"collector.core = {core}"
    if compiled is None:
        return WHY_PYTHON
    spec = feed.native_spec()
    if spec is None:
        return "no compiled twin of this feed yet"
    api, params = spec
    try:
        return NativeFeed(api, params, stamper)
    except NotImplementedError:
        return f"no compiled {api} feed in this build"
