"""One venue's collector: WebSocket in, venue feed, RelayOutput out. The thin I/O around venues/.

Hot path per frame, all inside picows's frame callback: receipt time (``time.time_ns()`` as the frame
arrives) -> ``feed.on_frame`` -> ``RelayOutput.send_event`` for each value (stamped with the receipt
time). No queue, no task hop, and nothing waits for the relay. picows was chosen by bench/wsclient.py:
1.23M frames/s received against aiohttp's 0.43M on this machine. Around it:

* subscribe per config, and again after every reconnect;
* a stale-feed watchdog: no frame for ``stale_after_s`` -> count it, reconnect;
* reconnects with capped exponential backoff and jitter, for ever; on every disconnect the feed's
  invalidations are published, so no consumer keeps a dead book;
* after a resync, the fresh snapshot is followed by StateInvalidation(RECOVERED) for that instrument;
* the REST snapshots the feed asks for (Binance depth) in a side task behind a shared rate limiter
  (never in the frame loop), and the frames it asks to send (resubscriptions) after each frame.

The collector knows no venue: it goes through ``venues.VENUES`` and the feed contract only.

Errors: the feed classifies every frame itself (parse errors are counted there with a sample); an
encode error is counted here; send errors are RelayOutput's (it buffers and reconnects, never blocks).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Mapping
from typing import Any, cast

import aiohttp
import picows

from tickrelay.errors import TickrelayError
from tickrelay.metrics import ALL_TYPES, Latency
from tickrelay.protocol.messages import L2Snapshot, Reason, SnapshotFlags, StateInvalidation
from tickrelay.transport.backoff import backoff
from tickrelay.transport.output import RelayOutput
from tickrelay.venues import VENUES
from tickrelay.venues.feed import VenueFeed


MAX_FRAME = 1 << 24


@dataclasses.dataclass
class CollectorStats:
    connects: int = 0
    reconnects: int = 0
    stale_events: int = 0
    encode_errors: int = 0
    snapshots_fetched: int = 0
    snapshot_errors: int = 0
    requests_sent: int = 0  # frames the feed asked to send (unsubscribe, subscribe)
    recoveries: int = 0  # StateInvalidation(RECOVERED) published after a fresh snapshot
    last_error: str = ""


class _FeedListener(picows.WSListener):
    """picows calls ``on_ws_frame`` for every frame; complete text/binary frames go straight to the
    collector's hot path (fragments are joined first)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.last_frame = time.monotonic()
        self._fragments: list[bytes] = []

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        arrived = time.perf_counter_ns()
        ts_recv_ns = time.time_ns()
        self.last_frame = time.monotonic()
        kind = frame.msg_type
        if kind in (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY, picows.WSMsgType.CONTINUATION):
            if frame.fin and not self._fragments:
                self.collector.on_frame(frame.get_payload_as_bytes(), ts_recv_ns, transport, arrived)
                return
            self._fragments.append(frame.get_payload_as_bytes())
            if frame.fin:
                raw, self._fragments = b"".join(self._fragments), []
                self.collector.on_frame(raw, ts_recv_ns, transport, arrived)
        elif kind == picows.WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


FLUSH_GAP_NS = 50_000  # collector.flush = frame: in a burst, one write per 50 µs at most (bench/collector.py)
BIG_FRAME = 1024  # bytes: a frame this long takes about the gap or more to parse (depth diffs, snapshots)


class RateLimiter:
    """At most one call per ``interval_s`` (shared by all the REST requests of a process)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            delay = self._next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = time.monotonic() + self.interval_s


class Collector:
    """Collect one venue into one RelayOutput stream until ``stop`` is set."""

    def __init__(
        self,
        venue: str,
        settings: Mapping[str, Any],
        output: RelayOutput,
        *,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.venue = venue
        self.settings = settings
        self.output = output
        self.url = VENUES[venue].url(settings)
        self.stale_after_s: float = settings["collector.stale_after_s"]
        self.flush_each_frame = settings["collector.flush"] == "frame"
        self.flush_gap_ns = FLUSH_GAP_NS
        self.backoff_cap_s: float = settings["collector.backoff_cap_s"]
        self.limiter = limiter or RateLimiter(0.2)
        self.stats = CollectorStats()
        self.feed: VenueFeed = VENUES[venue].from_settings(settings)
        self._snapshot_wanted = asyncio.Event()
        self._samples_logged = 0
        self.sample: int = settings["metrics.latency_sample"]  # measure one frame in N (bench/overhead.py)
        self._frames_measured = 0
        # (frame arrival, message type) of each message awaiting the write
        self._pending: list[tuple[int, str]] = []
        self.latency: dict[str, Latency] = {}
        output.on_write = self._written
        self._books: set[int] = set()  # instruments that had a complete snapshot
        self._dark: set[int] = set()  # invalidated since, waiting for a fresh snapshot

    async def run(self, stop: asyncio.Event) -> None:
        delays = backoff(cap_s=self.backoff_cap_s)
        async with aiohttp.ClientSession() as session:
            snapshots = asyncio.create_task(self._snapshots(session, stop))  # idle until the feed asks
            try:
                while not stop.is_set():
                    try:
                        await self._connection(stop)
                        delays = backoff(cap_s=self.backoff_cap_s)
                    except (picows.WSError, OSError, TimeoutError) as exc:
                        self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    self._publish(self.feed.on_disconnect(time.time_ns()))
                    if stop.is_set():
                        break
                    self.stats.reconnects += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), next(delays))
            finally:
                snapshots.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await snapshots

    async def _connection(self, stop: asyncio.Event) -> None:
        """One connection: subscribe, then the listener takes frames until it ends, goes stale or stops."""
        transport, ws_listener = await picows.ws_connect(
            lambda: _FeedListener(self), self.url, max_frame_size=MAX_FRAME, enable_auto_pong=True
        )
        listener = cast(_FeedListener, ws_listener)
        self.stats.connects += 1
        for message in self.feed.subscribe_messages():
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
                if time.monotonic() - listener.last_frame > self.stale_after_s:
                    self.stats.stale_events += 1
                    self.stats.last_error = f"no frame for {self.stale_after_s:g} s: reconnecting"
                    return
        finally:
            stopping.cancel()
            if not ended.done():
                transport.disconnect()
                await ended

    def on_frame(
        self, raw: bytes, ts_recv_ns: int, transport: picows.WSTransport, arrived_ns: int = 0
    ) -> None:
        """The hot path, called by the WebSocket listener for every complete frame."""
        if self.flush_each_frame and len(raw) >= BIG_FRAME:
            self.output.flush()  # what earlier frames left buffered must not wait out this one's parse
        values = self.feed.on_frame(raw, ts_recv_ns)
        self._publish(values, ts_recv_ns)
        if values and arrived_ns:
            self._frames_measured += 1
            if self._frames_measured % self.sample == 0:  # their latency is recorded when the write returns
                self._pending.extend((arrived_ns, type(value).__name__) for value in values)
        if self.flush_each_frame and self._gap_passed():
            self.output.flush()  # out before the next frame is read, unless we wrote a moment ago
        if len(self.feed.stats.samples) != self._samples_logged:  # a new kind of rejected frame
            self._log_samples()
        self._after_frame(transport)

    def _gap_passed(self) -> bool:
        """No write yet, or the last one was at least ``flush_gap_ns`` ago (a time since boot: never
        compare it with 0, a machine up for less than the gap would hold the first frame back)."""
        last = self.output.last_write_ns
        return last is None or time.perf_counter_ns() - last >= self.flush_gap_ns

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
        fs, cs, os_ = self.feed.stats, self.stats, self.output.stats
        v = self.venue
        counters: dict[str, dict[Any, Any]] = {
            "frames": {"_labels": ("venue",), (v,): fs.frames},
            "messages": {"_labels": ("venue", "type"), **{(v, k): n for k, n in fs.messages.items()}},
            "ignored": {"_labels": ("venue", "kind"), **{(v, k): n for k, n in fs.ignored.items()}},
            "rejected": {"_labels": ("venue", "kind"), **{(v, k): n for k, n in fs.rejected.items()}},
            "errors": {
                "_labels": ("venue", "kind"),
                (v, "parse"): sum(fs.rejected.values()),
                (v, "encode"): cs.encode_errors,
                (v, "send_dropped"): os_.dropped,
                (v, "snapshot"): cs.snapshot_errors,
            },
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
            "output_buffer_bytes": {"_labels": ("venue",), (v,): os_.buffered_bytes},
            "relay_connected": {"_labels": ("venue",), (v,): int(os_.connected)},
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
        samples = self.feed.stats.samples
        for kind in list(samples)[self._samples_logged :]:
            print(
                f"tickrelay collect {self.venue}: rejected frame ({kind}): {samples[kind]}", file=sys.stderr
            )
        self._samples_logged = len(samples)

    def _publish(self, values: Any, ts_ns: int | None = None) -> None:
        """Send each value; after the complete snapshot of an instrument that was invalidated, say it
        has recovered (consumers may trust its book again)."""
        ts = ts_ns if ts_ns is not None else time.time_ns()
        send = self.output.send_event
        for value in values:
            try:
                send(ts, value)
            except TickrelayError as exc:  # a value the codec cannot encode: counted, never fatal
                self.stats.encode_errors += 1
                self.stats.last_error = f"encode error: {exc}"
                continue
            if isinstance(value, StateInvalidation):
                if value.reason != Reason.RECOVERED:  # none named: every book of the venue
                    self._dark.update(value.asset_ids or self._books)
            elif isinstance(value, L2Snapshot) and value.flags & SnapshotFlags.END:
                self._books.add(value.asset_id)
                if value.asset_id in self._dark:
                    self._dark.discard(value.asset_id)
                    recovered = StateInvalidation(
                        value.venue_id, value.asset_type, int(Reason.RECOVERED), (value.asset_id,)
                    )
                    send(ts, recovered)
                    self.stats.recoveries += 1

    def _after_frame(self, transport: picows.WSTransport) -> None:
        """What the feed needs now: REST snapshots (fetched by the side task), frames to send."""
        feed = self.feed
        if feed.wants_snapshot():
            self._snapshot_wanted.set()
        for request in feed.take_requests():
            self.stats.requests_sent += 1
            transport.send(picows.WSMsgType.TEXT, request)

    async def _snapshots(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        """Fetch the REST snapshots the feed asks for, one at a time behind the limiter."""
        feed = self.feed
        base = str(self.settings.get(f"{self.venue}.rest_url", ""))
        while not stop.is_set():
            await self._snapshot_wanted.wait()
            self._snapshot_wanted.clear()
            for symbol in feed.wants_snapshot():
                await self.limiter.wait()
                try:
                    async with session.get(feed.snapshot_url(base, symbol)) as r:
                        body = await r.read()
                        r.raise_for_status()
                    ts = time.time_ns()
                    self._publish(feed.on_snapshot(symbol, body, ts), ts)
                    self.stats.snapshots_fetched += 1
                except (aiohttp.ClientError, OSError, TickrelayError) as exc:
                    self.stats.snapshot_errors += 1
                    self.stats.last_error = f"snapshot {symbol}: {exc}"
                    self._snapshot_wanted.set()  # ask again (after the limiter's pause)

    def report(self) -> dict[str, Any]:
        fs = self.feed.stats
        return {
            "venue": self.venue,
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
