"""One venue's collector: WebSocket in, venue feed, RelayOutput out. The thin I/O around venues/.

Hot path per frame, all inside picows's frame callback: receipt time (``time.time_ns()`` as the frame
arrives) -> ``core.on_frame_batch`` (the venue's core: the frame's finished messages, stamped with the
output's own Stamper, as the one batch envelope to write, and bits for what else the frame asks for;
``venues.native.make_core`` picks the compiled one or the Python ``FeedCore`` by ``collector.core``)
-> ``RelayOutput.append_batch``: with nothing else waiting, one non-blocking ``send`` of those bytes as
they are; else into the output's buffer. No queue, no task hop, and nothing waits for the relay.
picows was chosen by bench/wsclient.py: 1.23M frames/s received against aiohttp's 0.43M on this
machine. Around it:

* subscribe per config, and again after every reconnect;
* a stale-feed watchdog: no frame for ``stale_after_s`` -> count it, reconnect;
* reconnects with capped exponential backoff and jitter, for ever; the backoff starts over only after
  a connection stayed up ``reset_after_s`` (an exchange that accepts and closes at once is retried
  at the cap); on every disconnect the feed's invalidations are published, so no consumer keeps a
  dead book;
* the REST snapshots the feed asks for (Binance depth) in a side task within the venue's REST weight
  budget (never in the frame loop): ``collector.snapshots``; and the frames the feed asks to send
  (resubscriptions) after each frame.

The collector knows no venue: it goes through ``venues.VENUES`` and the feed contract only.

Errors: the feed classifies every frame itself (bad frames are counted there with a sample). Anything
that still raises out of the core is a bug: one last-resort guard counts it (``bugs``), logs its
traceback once, publishes the invalidation of every book of the venue and reconnects, so the books
come back from fresh snapshots. Send errors are RelayOutput's (it buffers and reconnects, never blocks).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from functools import partial
from time import perf_counter_ns, time_ns
from typing import Any, cast

import aiohttp
import picows

from tickrelay import log
from tickrelay.collector.snapshots import Snapshots
from tickrelay.collector.stats import CollectorStats
from tickrelay.config import Config
from tickrelay.metrics import ALL_TYPES, Latency
from tickrelay.protocol.codec import HEADER_SIZE
from tickrelay.protocol.link import BATCH_START
from tickrelay.protocol.messages import EXTENDED, TlvType
from tickrelay.transport.backoff import backoff
from tickrelay.transport.output import RelayOutput
from tickrelay.venues import VENUES
from tickrelay.venues.core import TODO_NEW_REJECT, TODO_REQUESTS, TODO_SNAPSHOT
from tickrelay.venues.native import make_core


MAX_FRAME = 1 << 24


_DATA = frozenset({picows.WSMsgType.TEXT, picows.WSMsgType.BINARY, picows.WSMsgType.CONTINUATION})


class _FeedListener(picows.WSListener):
    """picows calls ``on_ws_frame`` for every frame; complete text/binary frames go straight to the
    collector's hot path (fragments are joined first)."""

    def __init__(self, collector: Collector) -> None:
        self.on_frame = collector.on_frame
        # perf_counter_ns of the last frame, for the stale-feed watchdog (the clock of time.monotonic)
        self.last_frame_ns = time.perf_counter_ns()
        self._fragments: list[bytes] = []

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        self.last_frame_ns = arrived = perf_counter_ns()
        if frame.msg_type in _DATA:
            if frame.fin and not self._fragments:
                self.on_frame(frame.get_payload_as_bytes(), time_ns(), transport, arrived)
                return
            self._fragments.append(frame.get_payload_as_bytes())
            if frame.fin:
                raw, self._fragments = b"".join(self._fragments), []
                self.on_frame(raw, time_ns(), transport, arrived)
        elif frame.msg_type == picows.WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


# collector.flush = frame: a frame within this of the last write waits for the end of the loop turn (with
# the rest of its read), so a burst is not one write per frame (bench/collector.py); frames arriving apart
# (at 10k/s, 100 µs, and at least about 20 with jitter) are each written at once. 50 µs also held back
# jittered frames: at steady 10k/s it added 10-25 µs to the processing P99 (README, Latency).
FLUSH_GAP_NS = 15_000
BIG_FRAME = 1024  # bytes: a frame this long takes about the gap or more to parse (depth diffs, snapshots)


_U32 = struct.Struct("<I")
_KIND_NAMES = {int(t): "".join(w.capitalize() for w in t.name.split("_")) for t in TlvType}  # L2Snapshot


def message_kinds(buffer: bytes, at: int = 0) -> list[str]:
    """The kind (TLV name: Trade, L2Snapshot, ...) of each message of a buffer of whole messages from
    ``at`` on (``BATCH_START`` for a batch envelope's)."""
    kinds: list[str] = []
    while at < len(buffer):
        tlv = buffer[at + HEADER_SIZE]
        if tlv == EXTENDED:
            tlv = buffer[at + HEADER_SIZE + 2]
        kinds.append(_KIND_NAMES.get(tlv, str(tlv)))
        at += HEADER_SIZE + _U32.unpack_from(buffer, at + 24)[0]
    return kinds


class Collector:
    """Collect one venue into one RelayOutput stream until ``stop`` is set."""

    def __init__(
        self,
        venue: str,
        config: Config,
        output: RelayOutput,
    ) -> None:
        self.venue = venue
        self.log = log.logger(f"collect {venue}")
        self.config = config
        self.output = output
        self.url = VENUES[venue].url(config)
        self.stale_after_s = config.collector.stale_after_s
        self.flush_each_frame = config.collector.flush == "frame"
        self.flush_gap_ns = FLUSH_GAP_NS
        self.backoff_cap_s = config.collector.backoff_cap_s
        self.reset_after_s = config.collector.reset_after_s
        self._connected_at: float | None = None  # monotonic time the current connection opened
        self._transport: picows.WSTransport | None = None  # the current connection (a bug ends it)
        self.stats = CollectorStats()
        self.core = make_core(VENUES[venue].from_settings(config), output.stamper, config.collector.core)
        self._snapshot_wanted = asyncio.Event()
        self._rest_snapshots = self.core.SNAPSHOTS  # read once: only such a feed is asked per frame
        self._samples_logged: set[str] = set()  # rejection kinds whose sample was logged
        self.sample = config.metrics.latency_sample  # measure one frame in N (bench/overhead.py)
        self._frames_measured = 0
        # (frame arrival, message type) of each message awaiting the write
        self._pending: list[tuple[int, str]] = []
        self.latency: dict[str, Latency] = {}
        output.on_write = self._written

    async def run(self, stop: asyncio.Event) -> None:
        delays = self._backoff()
        async with aiohttp.ClientSession() as session:
            snapshots = asyncio.create_task(self._snapshots().run(session, stop))  # idle until the feed asks
            try:
                while not stop.is_set():
                    self._connected_at = None
                    try:
                        await self._connection(stop)
                    except (picows.WSError, OSError, TimeoutError) as exc:
                        self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    up = self._connected_at
                    if up is not None and time.monotonic() - up >= self.reset_after_s:
                        delays = self._backoff()  # only a connection that stayed up starts over fast
                    self._publish(partial(self.core.on_disconnect, time.time_ns()))
                    if stop.is_set():
                        break
                    self.stats.reconnects += 1
                    self.stats.reconnect_delay_s = next(delays)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.stats.reconnect_delay_s)
            finally:
                snapshots.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await snapshots

    def _snapshots(self) -> Snapshots:
        """The REST snapshot task of this run, over the core as it is now."""
        return Snapshots(
            self.core,
            self.stats,
            VENUES[self.venue].rest_url(self.config),
            self.backoff_cap_s,
            self._snapshot_wanted,
            self._publish,
            self._snapshot_bug,
            self.log,
        )

    def _backoff(self) -> Iterator[float]:
        """Reconnect delays from 50 ms up to the cap, each at least half its step (equal jitter):
        an exchange that accepts and closes at once is retried at the cap, not every 50 ms."""
        return backoff(cap_s=self.backoff_cap_s, floor=0.5)

    async def _connection(self, stop: asyncio.Event) -> None:
        """One connection: subscribe, then the listener takes frames until it ends, goes stale or stops."""
        transport, ws_listener = await picows.ws_connect(
            lambda: _FeedListener(self), self.url, max_frame_size=MAX_FRAME, enable_auto_pong=True
        )
        listener = cast(_FeedListener, ws_listener)
        self._transport = transport
        self.stats.connects += 1
        self._connected_at = time.monotonic()
        for message in self.core.subscribe_messages():
            transport.send(picows.WSMsgType.TEXT, message)
        ended = asyncio.ensure_future(transport.wait_disconnected())
        stopping = asyncio.ensure_future(stop.wait())
        tick = min(1.0, self.stale_after_s / 4)
        try:
            while True:
                done, _ = await asyncio.wait(
                    {ended, stopping}, timeout=tick, return_when=asyncio.FIRST_COMPLETED
                )
                if ended in done:
                    self.stats.last_error = "the exchange closed the connection"
                    return
                if stopping in done:
                    return
                if perf_counter_ns() - listener.last_frame_ns > self.stale_after_s * 1e9:
                    self.stats.stale_events += 1
                    self.stats.last_error = f"no frame for {self.stale_after_s:g} s: reconnecting"
                    return
        finally:
            self._transport = None
            stopping.cancel()
            if not ended.done():
                transport.disconnect()
                await ended

    def on_frame(
        self, raw: bytes, ts_recv_ns: int, transport: picows.WSTransport, arrived_ns: int = 0
    ) -> None:
        """The hot path, called by the WebSocket listener for every complete frame: one core call gives
        the frame's messages as the batch envelope to write and what else the frame asks for."""
        output = self.output
        if self.flush_each_frame and len(raw) >= BIG_FRAME:
            output.flush()  # what earlier frames left buffered must not wait out this one's parse
        try:
            batch, todo = self.core.on_frame_batch(raw, ts_recv_ns)
        except Exception:  # the one last-resort guard: anything raised here is a bug, never a bad frame
            self._bug(f"frame {raw[:200]!r}", ts_recv_ns, transport)
            return
        # written before the next frame is read (unless we wrote a moment ago), without also scheduling
        # a flush for the end of the loop turn
        last = output.last_write_ns
        write = self.flush_each_frame and (last is None or perf_counter_ns() - last >= self.flush_gap_ns)
        if batch:
            if arrived_ns:
                self._frames_measured += 1
                if self._frames_measured % self.sample == 0:  # recorded when the write returns
                    self._pending.extend((arrived_ns, kind) for kind in message_kinds(batch, BATCH_START))
            output.append_batch(batch, write=write)
        elif write:
            output.flush()  # what earlier frames left buffered
        if todo:
            self._todo(todo, transport)

    def _bug(self, what: str, ts_ns: int, transport: picows.WSTransport | None) -> None:
        """A bug in the venue core on ``what`` (a frame, a snapshot): count it, log the first
        traceback, invalidate every book of the venue (consumers must not trust them) and reconnect
        for fresh snapshots."""
        self.stats.bugs += 1
        self.stats.last_error = f"bug: {traceback.format_exc(limit=1).splitlines()[-1]}"
        if self.stats.bugs == 1:
            self.log.error("BUG in the venue core on %s", what, exc_info=True)
        self._publish(partial(self.core.on_disconnect, ts_ns))
        if transport is not None:
            transport.disconnect()

    def _snapshot_bug(self, what: str, ts_ns: int) -> None:
        """``_bug`` for the snapshot task: the connection it ends is the one open when it happens."""
        self._bug(what, ts_ns, self._transport)

    def _written(self, now_ns: int) -> None:
        latency = self.latency
        for arrived_ns, kind in self._pending:
            hist = latency.get(kind)
            if hist is None:
                hist = latency[kind] = Latency()
            hist.record(now_ns - arrived_ns)
        self._pending.clear()

    def snapshot(self) -> dict[str, Any]:
        """The live counters and latency histograms, for the metrics endpoint."""
        fs, cs, os_ = self.core.stats, self.stats, self.output.stats
        v = self.venue
        counters: dict[str, dict[Any, Any]] = {
            "frames": {"_labels": ("venue",), (v,): fs.frames},
            "messages": {"_labels": ("venue", "type"), **{(v, k): n for k, n in fs.messages.items()}},
            "ignored": {"_labels": ("venue", "kind"), **{(v, k): n for k, n in fs.ignored.items()}},
            "rejected": {"_labels": ("venue", "kind"), **{(v, k): n for k, n in fs.rejected.items()}},
            "errors": {
                "_labels": ("venue", "kind"),
                (v, "parse"): sum(fs.rejected.values()),
                (v, "bug"): cs.bugs,
                (v, "send_dropped"): os_.dropped,
                (v, "snapshot"): cs.snapshot_errors,
            },
            "rest_throttled": {"_labels": ("venue",), (v,): cs.rest_throttled},
            "reconnects": {"_labels": ("venue",), (v,): cs.reconnects},
            "stale_events": {"_labels": ("venue",), (v,): cs.stale_events},
            "resyncs": {"_labels": ("venue",), (v,): sum(b.resyncs for b in fs.books.values())},
            "gaps": {"_labels": ("venue",), (v,): sum(b.gaps for b in fs.books.values())},
            "checksum_mismatches": {
                "_labels": ("venue",),
                (v,): sum(b.checksum_failures for b in fs.books.values()),
            },
            "bytes_out": {"_labels": ("venue",), (v,): os_.bytes},
        }
        gauges = {
            "reconnect_delay_seconds": {"_labels": ("venue",), (v,): cs.reconnect_delay_s},
            "rest_banned": {"_labels": ("venue",), (v,): int(cs.rest_banned)},
            "rest_used_weight": {"_labels": ("venue",), (v,): cs.rest_used_weight},
            "output_buffer_bytes": {"_labels": ("venue",), (v,): os_.buffered_bytes},
            "relay_connected": {"_labels": ("venue",), (v,): int(os_.connected)},
            "core": {"_labels": ("venue", "core"), (v, self.core.CORE): 1},  # which venue core runs
        }
        return {
            "counters": counters,
            "gauges": gauges,
            "latency": {
                **{(v, k): h for k, h in self.latency.items()},
                **({(v, ALL_TYPES): Latency.merged(self.latency.values())} if self.latency else {}),
            },
        }

    def _log_samples(self) -> None:
        """Log the sample of each rejection kind once, when it first appears (counts stay in the stats)."""
        for kind, sample in self.core.stats.samples.items():
            if kind not in self._samples_logged:
                self._samples_logged.add(kind)
                self.log.warning("rejected frame (%s): %s", kind, sample)

    def _publish(self, call: Callable[[], bytes]) -> None:
        """Queue what a core call returns, as it is (the messages the output's stamper numbered)."""
        first = self.output.stamper.counter
        out = call()
        self.output.append(out, self.output.stamper.counter - first)

    def _todo(self, todo: int, transport: picows.WSTransport) -> None:
        """What a frame asked for (``TODO_*`` bits of ``on_frame_batch``): log a new kind of rejected
        frame's sample; REST snapshots (fetched by the side task); frames to send."""
        if todo & TODO_NEW_REJECT:
            self._log_samples()
        if todo & TODO_SNAPSHOT and self._rest_snapshots:
            self._snapshot_wanted.set()
        if todo & TODO_REQUESTS:
            for request in self.core.take_requests():
                self.stats.requests_sent += 1
                transport.send(picows.WSMsgType.TEXT, request)

    def report(self) -> dict[str, Any]:
        fs = self.core.stats
        return {
            "venue": self.venue,
            "core": self.core.CORE,
            "frames": fs.frames,
            "messages": dict(fs.messages),
            "ignored": dict(fs.ignored),
            "rejected": dict(fs.rejected),
            "samples": fs.samples,
            "collector": dataclasses.asdict(self.stats),
            "output": dataclasses.asdict(self.output.stats),
        }


def print_report(collector: Collector) -> None:
    print(json.dumps(collector.report()), file=sys.stderr)
