"""Metrics: HDR latency histograms, a Prometheus endpoint per process, and a registry of endpoints.

Processing latency is measured per venue and message type from the WebSocket frame's arrival (the
``perf_counter_ns`` taken first thing in the frame callback) to the moment the coalesced write that
carries its messages returned from the socket (RelayOutput's flush): the bytes are then the kernel's.
Each message of the frame is recorded under its own type, after that write, never before it, so it
does not delay the message; ``sample`` records the messages of one frame in N when even that is too
much. Counters are not kept twice: the exporter reads the live FeedStats / CollectorStats /
OutputStats objects when Prometheus scrapes.

Latency is exported as Prometheus summaries in seconds (``tickrelay_<name>_latency_seconds`` with
quantiles 0.5, 0.95, 0.99, 0.999, ``_count`` and ``_sum``), which ``promtool check metrics`` accepts.
The endpoint is served by the process's own event loop, which is the only code that touches the live
counters: an HTTP thread reading them while the loop changes them could see a dict change size.

Each process that serves metrics writes ``<runtime dir>/metrics/<name>-<pid>.json`` ({name, pid, port})
and removes it on exit; ``tickrelay stats`` reads every live one.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import socket
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, cast

from hdrh.histogram import HdrHistogram
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector as PromCollector
from prometheus_client.samples import Sample

from tickrelay.protocol.codec import VENUE_OF_SOURCE
from tickrelay.protocol.symbols import venue_name


LOWEST_NS, HIGHEST_NS, DIGITS = 1, 60_000_000_000, 3
PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"  # the text format generate_latest writes
QUANTILES = {"0.5": "p50", "0.95": "p95", "0.99": "p99", "0.999": "p999"}  # exported label -> our key
SLA_P99_US = 35.0
ALL_TYPES = "all"  # the processing-latency series of a venue's every message type together


class Latency:
    """Durations in ns in an HDR histogram (1 ns .. 60 s, 3 significant digits)."""

    __slots__ = ("histogram", "sum_ns")

    def __init__(self) -> None:
        self.histogram = hist = HdrHistogram(LOWEST_NS, HIGHEST_NS, DIGITS)
        # hdrh's histogram and its encoder refer to each other, so a dropped one (a merged histogram per
        # scrape: 216 KiB of counts) waited for a full garbage collection; `up` scrapes every second and
        # a collector grew by about 3 MB a minute. With a weak back-reference it goes when dropped.
        hist.encoder.histogram = weakref.proxy(hist)
        self.sum_ns = 0  # of the recorded (clamped) values: the summary's _sum

    def record(self, ns: int) -> None:
        ns = min(max(ns, LOWEST_NS), HIGHEST_NS)
        self.histogram.record_value(ns)
        self.sum_ns += ns

    @classmethod
    def merged(cls, parts: Iterable[Latency]) -> Latency:
        """One histogram of every sample of ``parts`` (built at scrape time: nothing on the hot path)."""
        out = cls()
        for part in parts:
            out.histogram.add(part.histogram)
            out.sum_ns += part.sum_ns
        return out

    @property
    def count(self) -> int:
        return int(self.histogram.get_total_count())

    def percentiles_us(self) -> dict[str, float]:
        """P50 / P95 / P99 / P99.9 in microseconds (0 when empty)."""
        return {k: self.histogram.get_value_at_percentile(p) / 1000 for k, p in PERCENTILES.items()}


class EndToEnd:
    """End-to-end latency at a consumer: a message's header ``timestamp_ns`` (the collector's clock at
    the exchange frame's arrival) to the consumer's clock when it decoded it, per header source."""

    __slots__ = ("by_source", "sample", "seen")

    def __init__(self, sample: int = 1) -> None:
        self.by_source: dict[int, Latency] = {}
        self.sample = sample  # record one message in `sample` (bench/overhead.py)
        self.seen = 0

    def record(self, source: int, timestamp_ns: int, now_ns: int | None = None) -> None:
        """Record one message (``now_ns``: the consumer's clock; read here when not given)."""
        self.seen += 1
        if self.seen % self.sample:
            return
        if now_ns is None:
            now_ns = time.time_ns()
        latency = self.by_source.get(source)
        if latency is None:
            latency = self.by_source[source] = Latency()
        latency.record(now_ns - timestamp_ns)


Snapshot = dict[str, Any]
# {"counters": {name: {labels-tuple: value}}, "gauges": {...}, "latency": {(venue, kind): Latency},
#  "end_to_end": (consumer name, EndToEnd)}


class _Exporter(PromCollector):
    """Turns a snapshot callable into Prometheus families at scrape time."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | SummaryMetricFamily]:
        snap = self.snapshot()
        for kind, cls in (("counters", CounterMetricFamily), ("gauges", GaugeMetricFamily)):
            for name, series in snap.get(kind, {}).items():
                family = cls(
                    f"tickrelay_{name}", name.replace("_", " "), labels=list(series.get("_labels", ()))
                )
                for key, value in series.items():
                    if key != "_labels":
                        family.add_metric(list(key), value)
                yield family
        yield _summary(
            "processing_latency", "frame arrival to bytes handed to the kernel", ("venue", "type"),
            snap.get("latency", {}).items(),
        )  # fmt: skip
        if "end_to_end" in snap:
            consumer, e2e = snap["end_to_end"]
            by_source = sorted(e2e.by_source.items())  # collectors by venue name, other sources by number
            yield _summary(
                "end_to_end_latency", "header timestamp_ns (frame arrival) to decoded at this consumer",
                ("consumer", "source"),
                (((consumer, venue_name(VENUE_OF_SOURCE.get(s, 0), str(s))), h) for s, h in by_source),
            )  # fmt: skip


def _summary(
    name: str, help: str, labels: tuple[str, str], items: Iterable[tuple[tuple[str, str], Latency]]
) -> SummaryMetricFamily:
    """``tickrelay_<name>_seconds``: a summary per label set, its quantiles from the HDR histogram."""
    family = SummaryMetricFamily(f"tickrelay_{name}_seconds", help, labels=list(labels))
    for key, hist in items:
        family.add_metric(list(key), hist.count, hist.sum_ns / 1e9)
        values, us = dict(zip(labels, key, strict=True)), hist.percentiles_us()
        for quantile, ours in QUANTILES.items():
            family.samples.append(Sample(family.name, {**values, "quantile": quantile}, us[ours] / 1e6))
    return family


class MetricsServer:
    """A metrics endpoint served by the running event loop (see ``serve``); it serves until ``close``,
    whether or not the caller keeps it (``_SERVING`` does)."""

    def __init__(self, sock: socket.socket, render: Callable[[], bytes]) -> None:
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        loop = asyncio.get_running_loop()
        self._starting = loop.create_task(loop.create_server(lambda: _Http(render), sock=sock))
        _SERVING.add(self)

    def close(self) -> None:
        if self._starting.done() and not self._starting.cancelled():
            self._starting.result().close()
        else:
            self._starting.cancel()
        self._sock.close()
        _SERVING.discard(self)


_SERVING: set[MetricsServer] = set()  # the loop holds tasks weakly: a dropped one would close the socket


class _Http(asyncio.Protocol):
    """GET /metrics (or /) answered with the exposition of the moment; one request per connection."""

    def __init__(self, render: Callable[[], bytes]) -> None:
        self.render = render
        self.transport: asyncio.Transport | None = None
        self.request = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.request += data
        if b"\r\n\r\n" not in self.request:
            if len(self.request) > 16 << 10:  # no request is this long: not an HTTP client
                self.transport.close()
            return
        method, _, rest = self.request.partition(b" ")
        path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        if method == b"GET" and path in (b"/metrics", b"/"):
            status, kind, body = b"200 OK", CONTENT_TYPE, self.render()
        else:
            status, kind, body = b"404 Not Found", b"text/plain; charset=utf-8", b"GET /metrics\n"
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: " + kind + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
        )  # fmt: skip
        self.transport.close()  # after the write is flushed


def serve(name: str, port: int, snapshot: Callable[[], Snapshot], runtime_dir: Path) -> MetricsServer:
    """Serve ``snapshot`` on 127.0.0.1:``port`` (0: a free port) from the running event loop, and
    register it; the port is bound before this returns (``.port``)."""
    registry = CollectorRegistry()
    registry.register(_Exporter(snapshot))
    sock = socket.create_server(("127.0.0.1", port))
    sock.setblocking(False)
    server = MetricsServer(sock, lambda: bytes(generate_latest(registry)))
    entry = runtime_dir / "metrics" / f"{name}-{os.getpid()}.json"
    entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    entry.write_text(json.dumps({"name": name, "pid": os.getpid(), "port": server.port}))
    atexit.register(lambda: entry.unlink(missing_ok=True))
    return server


def endpoints(runtime_dir: Path) -> list[dict[str, Any]]:
    """Every registered endpoint whose process is alive (stale files of dead processes are ignored)."""
    found = []
    for path in sorted((runtime_dir / "metrics").glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            entry = json.loads(path.read_text())
            os.kill(int(entry["pid"]), 0)
            found.append(entry)
    return found
