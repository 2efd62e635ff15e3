"""Where a collector's time goes, frame by frame, at a steady rate: the venue feed, the write into the
relay, and garbage-collection pauses, for each venue core.

    python3 bench/breakdown.py [--venue coinbase|binance|kraken ...] [--core native|python ...]
                               [--rate 10000] [--seconds 4] [--runs 5] [--relay-sched normal|batch]
                               [--cpus any|apart|apart-spin] [--json]

A real replay exchange (``--rate``: frames evenly spaced) and a real relay run as processes; the
collector runs in this process (uvloop, as ``tickrelay collect``), its venue core's ``on_frame``
(``collector.core``: the compiled one or the Python reference), its output's ``flush`` and its frame
handler timed with ``perf_counter_ns`` around the real calls, and
``gc.callbacks`` timing every collection. ``frames_preempted`` is the share of frames during whose
handler the thread was preempted (``getrusage(RUSAGE_THREAD)`` involuntary context switches, read
around the timed handler), ``tail_preempted`` the same share among the frames at or above the whole
frame's P99. The HDR records of a sampled frame's latency (``metrics.latency_sample``), made once its
write has returned, are left out of the write and the frame, as the processing latency leaves them
out. Nothing else subscribes, so this is the collector's own cost
on a machine with a core to spare, the floor under bench/latency.py's processing figures. With
``--cpus apart`` the collector (this process) runs alone on one CPU and the relay (``relay.cpus``)
and the exchange on another, as ``bench/latency.py --cpus apart``; ``apart-spin`` also keeps the
collector's loop spinning there (``collector.idle = spin``). The first
fifth of each run (connection, snapshots) is left out. Medians over runs of each percentile; the
cores' runs interleaved.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvloop

from relayproc import apart_cpus, set_relay_sched
from tickrelay.collector.run import Collector
from tickrelay.commands.config import read_settings
from tickrelay.protocol.codec import COLLECTOR_SOURCES
from tickrelay.replay.exchange import REPLAY_INSTRUMENTS
from tickrelay.runtime import free_port, spin
from tickrelay.transport.output import RelayOutput


RUSAGE_THREAD = 1  # Linux: getrusage of the calling thread (its involuntary context switches)


RELAY_SCHED = ["normal"]  # --relay-sched


def _percentiles(ns: list[int]) -> dict[str, float]:
    a = np.array(ns, dtype=np.int64) / 1000
    return {f"p{q:g}".replace(".", ""): float(np.percentile(a, q)) for q in (50, 90, 99)}


class TimedCore:
    """The collector's venue core with its ``on_frame_batch`` timed (``last_ns``); all else passes
    through."""

    def __init__(self, core: Any) -> None:
        self.core, self.last_ns = core, 0
        self._on_frame_batch = core.on_frame_batch

    def on_frame_batch(self, raw: bytes, ts: int) -> tuple[bytes, int]:
        t0 = time.perf_counter_ns()
        out: tuple[bytes, int] = self._on_frame_batch(raw, ts)
        self.last_ns = time.perf_counter_ns() - t0
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.core, name)


def one_run(venue: str, core: str, rate: float, seconds: float, cpus: str = "any") -> dict[str, Any]:
    tmp = tempfile.mkdtemp()
    env = {**os.environ, "XDG_RUNTIME_DIR": tmp, **REPLAY_INSTRUMENTS}
    everything = os.sched_getaffinity(0)
    if cpus != "any":
        others, mine = apart_cpus()
        env["TICKRELAY_RELAY_CPUS"] = str(others)
    sock, port = str(Path(tmp) / "md.sock"), free_port()
    me = [sys.executable, "-m", "tickrelay"]
    procs = [
        subprocess.Popen([*me, "relay", "--socket", sock], env=env, stderr=subprocess.DEVNULL),
        subprocess.Popen(
            [*me, "replay-exchange", "--port", str(port), "--rate", f"{rate:g}"],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
    ]
    set_relay_sched(procs[0].pid, RELAY_SCHED[0])
    if cpus != "any":  # the exchange beside the relay, the collector (this process) on its own CPU
        os.sched_setaffinity(procs[1].pid, {others})
        os.sched_setaffinity(0, {mine})
    time.sleep(1.0)
    os.environ.update(REPLAY_INSTRUMENTS)
    settings = read_settings(
        None,
        {
            f"{venue}.ws_url": f"ws://127.0.0.1:{port}/{venue}",
            "binance.rest_url": f"http://127.0.0.1:{port}/binance",
            "kraken.api": "v1",  # the embedded v1 recording holds every pair
            "collector.core": core,
        },
    )
    # per frame: feed ns, write ns or -1, whole handler ns, involuntary context switches during the
    # handler; kept in flat arrays, not a tuple per frame: those tuples would be what sets off the
    # young collections this measures
    record = array.array("q")
    pauses: list[tuple[int, int]] = []  # (generation, ns)
    started: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter_ns())
        elif started:
            pauses.append((info["generation"], time.perf_counter_ns() - started.pop()))

    async def main() -> None:
        stop = asyncio.Event()
        if cpus == "apart-spin":
            spin(stop)
        output = RelayOutput(sock, source=COLLECTOR_SOURCES[venue])
        output.start()
        collector = Collector(venue, settings.config, output)
        timed = collector.core = TimedCore(collector.core)
        # every write of the output goes through append_batch (a frame's) or _flush (what is buffered)
        flush, append_batch, handle = output._flush, output.append_batch, collector.on_frame
        written = output.on_write
        assert written is not None
        cur, recording = [-1], [0]

        def timed_written(now: int) -> None:  # the HDR records of a sampled frame, after its write
            t0 = time.perf_counter_ns()
            written(now)
            recording[0] += time.perf_counter_ns() - t0

        def timed_flush() -> None:
            t0, before = time.perf_counter_ns(), recording[0]
            flush()
            cur[0] = time.perf_counter_ns() - t0 - (recording[0] - before)  # kept by the frame handled

        def timed_append_batch(batch: bytes, *, write: bool = False) -> None:
            t0, before = time.perf_counter_ns(), recording[0]
            append_batch(batch, write=write)
            if write:
                cur[0] = time.perf_counter_ns() - t0 - (recording[0] - before)

        def timed_handle(raw: bytes, ts: int, transport: Any, arrived: int = 0) -> None:
            cur[0], recording[0] = -1, 0
            switches = resource.getrusage(RUSAGE_THREAD).ru_nivcsw
            t0 = time.perf_counter_ns()
            handle(raw, ts, transport, arrived)
            took = time.perf_counter_ns() - t0 - recording[0]
            switches = resource.getrusage(RUSAGE_THREAD).ru_nivcsw - switches
            record.extend((timed.last_ns, cur[0], took, switches))

        output.on_write = timed_written
        output._flush = timed_flush  # type: ignore[method-assign]
        output.append_batch = timed_append_batch  # type: ignore[method-assign]
        collector.on_frame = timed_handle  # type: ignore[method-assign]
        task = asyncio.create_task(collector.run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await task
        await output.close()

    gc.freeze()  # as runtime.run does for every command
    gc.callbacks.append(on_gc)
    try:
        uvloop.run(main())
    finally:
        os.sched_setaffinity(0, everything)
        gc.callbacks.remove(on_gc)
        for p in procs:
            p.terminate()
            p.wait(10)
    frames = [tuple(record[i : i + 4]) for i in range(0, len(record), 4)]
    kept = frames[len(frames) // 5 :]
    if not kept:
        raise SystemExit(f"breakdown: {venue} ({core} core): no frame arrived in {seconds:g} s")
    young = [ns for gen, ns in pauses if gen == 0]
    slow = np.percentile([t for _, _, t, _ in kept], 99)
    tail = [n for _, _, t, n in kept if t >= slow]
    return {
        "frames": len(kept),
        "feed_us": _percentiles([f for f, _, _, _ in kept]),
        "write_us": _percentiles([w for _, w, _, _ in kept if w >= 0]),
        "frame_us": _percentiles([t for _, _, t, _ in kept]),
        "frames_written_at_once": sum(1 for _, w, _, _ in kept if w >= 0) / max(1, len(kept)),
        "frames_preempted": sum(1 for *_, n in kept if n) / len(kept),
        "tail_preempted": sum(1 for n in tail if n) / len(tail),
        "gc_young_pause_us": float(np.median(young)) / 1000 if young else 0.0,
        "gc_collections_per_s": len(pauses) / seconds,
        "gc_longest_pause_us": max((ns for _, ns in pauses), default=0) / 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venue", action="append", choices=["coinbase", "binance", "kraken"])
    parser.add_argument("--core", action="append", choices=["native", "python"])
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--relay-sched", choices=["normal", "batch"], default="normal",
        help="the relay's scheduling policy (batch: a write that wakes it does not preempt the writer)",
    )  # fmt: skip
    parser.add_argument(
        "--cpus", choices=["any", "apart", "apart-spin"], default="any",
        help="apart: the collector (this process) on a CPU of its own, the relay and exchange on another;"
        " apart-spin: the collector spinning there (collector.idle = spin)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.cpus != "any" and len(os.sched_getaffinity(0)) < 2:
        sys.exit(f"breakdown: --cpus {args.cpus} needs two CPUs this process may run on")
    cores = args.core or ["native", "python"]
    RELAY_SCHED[0] = args.relay_sched
    report: dict[str, Any] = {"rate": args.rate, "runs": args.runs, "relay_sched": args.relay_sched}
    report["cpus"] = args.cpus
    report["venues"] = {}
    for venue in args.venue or ["coinbase", "binance", "kraken"]:
        print(f"breakdown: {venue}", file=sys.stderr, flush=True)
        runs: dict[str, list[dict[str, Any]]] = {core: [] for core in cores}
        for core in cores:
            one_run(venue, core, args.rate, args.seconds, args.cpus)  # warm-up
        for _ in range(args.runs):
            for core in cores:
                runs[core].append(one_run(venue, core, args.rate, args.seconds, args.cpus))
        for core, done in runs.items():
            row: dict[str, Any] = {}
            for key, value in done[0].items():
                if isinstance(value, dict):
                    row[key] = {q: statistics.median(r[key][q] for r in done) for q in value}
                else:
                    row[key] = statistics.median(r[key] for r in done)
            row["gc_longest_pause_us_max"] = max(r["gc_longest_pause_us"] for r in done)
            report["venues"].setdefault(venue, {})[core] = row
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
