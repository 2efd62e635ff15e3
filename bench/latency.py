"""Latency through the real pipeline at a steady rate: replay exchange -> collector -> relay -> subscriber,
all separate processes except the subscriber (this script, on uvloop).

    python3 bench/latency.py [--rate 10000] [--seconds 4] [--runs 5] [--pacing steady|recorded ...]
                             [--flush frame|loop ...] [--json]

Per venue the replay exchange sends its recording at ``--rate`` frames per second: ``steady`` spaces
the frames evenly (``replay-exchange --rate``: the steady 10k msg/s the goals are set at), ``recorded``
keeps the recording's own bursts, sped up to the same mean rate (frames that arrived together arrive
together), which adds queueing. Processing latency (frame arrival -> the write holding its messages
returned) is read from the collector's metrics endpoint (HDR histograms): all message types together
(``processing_*``), and the type with the worst P99 beside it. End-to-end latency (header timestamp_ns,
taken at frame arrival, -> decoded at the subscriber) is measured here on every message. Medians over
runs of each percentile, and their spread (min, max). Every pacing and collector write policy
(``collector.flush``: after every frame, or once per event-loop turn) is measured in the same
invocation, the runs interleaved; the top-level keys are steady pacing with the default policy.

The machine's floor is measured in the same invocation, interleaved too: ``native/floor`` (a std-only
Rust program, built here with cargo) writes 90-byte messages at ``--rate`` through two blocking
Unix-socket hops, writer -> forwarder -> reader, three processes. ``floor_write_p99_us`` is its
``write()`` P99, ``floor_two_hop_p99_us`` its writer-to-reader P99 (medians over runs, spread beside),
and ``end_to_end_over_floor`` the pipeline's end-to-end P99 over that floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvloop

from tickrelay.commands.stats import scrape_all, venue_summary
from tickrelay.config import KEY_BY_NAME
from tickrelay.protocol.codec import Message
from tickrelay.replay.exchange import REPLAY_INSTRUMENTS
from tickrelay.transport.subscribe import Subscription


NATIVE = Path(__file__).resolve().parents[1] / "native"
FLOOR = NATIVE / "target" / "release" / "latency-floor"
# frames per second of each embedded recording at speed 1 (frames / recorded span)
RECORDED_RATE = {"coinbase": 9946 / 30.8, "binance": 41248 / 346.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _subscribe(path: str, seconds: float) -> list[tuple[int, int]]:
    """(decoded at, header timestamp_ns) of every message, until ``seconds`` have passed."""
    received: list[tuple[int, int]] = []
    sub = Subscription(path, buffer_bytes=64 << 20)
    deadline = time.monotonic() + seconds
    async for item in sub:
        if isinstance(item, Message):
            received.append((time.time_ns(), item.header.timestamp_ns))
        if time.monotonic() > deadline:
            break
    return received


async def _wait(task: asyncio.Task[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    return await task


def one_run(venue: str, rate: float, seconds: float, pacing: str, flush: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_RUNTIME_DIR": tmp, **REPLAY_INSTRUMENTS, "TICKRELAY_COLLECTOR_FLUSH": flush}
        me = [sys.executable, "-m", "tickrelay"]
        sock, port = str(Path(tmp) / "md.sock"), _free_port()
        pace = (
            ["--rate", f"{rate:g}"]
            if pacing == "steady"
            else ["--speed", f"{rate / RECORDED_RATE[venue]:.3f}"]
        )
        procs = [
            subprocess.Popen([*me, "relay", "--socket", sock], env=env, stderr=subprocess.DEVNULL),
            subprocess.Popen(
                [*me, "replay-exchange", "--port", str(port), *pace],
                env=env,
                stderr=subprocess.DEVNULL,
            ),
        ]
        time.sleep(1.0)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            sub_task = runner.get_loop().create_task(_subscribe(sock, seconds + 1.0))
            runner.run(asyncio.sleep(0.2))
            url = f"ws://127.0.0.1:{port}/{venue}"
            extra = ["--rest-url", f"http://127.0.0.1:{port}/binance"] if venue == "binance" else []
            procs.append(
                subprocess.Popen(
                    [
                        *me,
                        "collect",
                        venue,
                        "--socket",
                        sock,
                        "--url",
                        url,
                        *extra,
                        "--metrics-port",
                        str(_free_port()),
                    ],
                    env=env,
                    stderr=subprocess.DEVNULL,
                )
            )
            e2e = runner.run(_wait(sub_task))
        processing = venue_summary(scrape_all(Path(tmp) / "tickrelay"))
        for p in reversed(procs):
            p.terminate()
            p.wait(10)
    mine = processing.get(venue, {})
    every, types = mine.get("latency", {}), mine.get("types", {})
    worst = max(types, key=lambda t: types[t].get("p99", 0.0), default="")
    kept = e2e[len(e2e) // 10 :]  # drop the first 10%: connection set-up
    arr = np.array([now - ts for now, ts in kept], dtype=np.int64) / 1000
    return {
        "worst_type": worst,
        "msgs_per_s": (len(kept) - 1) / ((kept[-1][0] - kept[0][0]) / 1e9),  # as delivered, steady part
        "processing_p50_us": every.get("p50", float("nan")),
        "processing_p99_us": every.get("p99", float("nan")),
        "processing_p999_us": every.get("p999", float("nan")),
        "worst_type_p99_us": types.get(worst, {}).get("p99", float("nan")),
        "end_to_end_p50_us": float(np.percentile(arr, 50)),
        "end_to_end_p99_us": float(np.percentile(arr, 99)),
        "end_to_end_p999_us": float(np.percentile(arr, 99.9)),
    }


def floor_run(rate: float, seconds: float) -> dict[str, float]:
    """One run of the latency floor (native/floor): write() and writer-to-reader percentiles in µs."""
    out = subprocess.run(
        [str(FLOOR), "--rate", f"{rate:g}", "--seconds", f"{seconds:g}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout))


def _build_floor() -> bool:
    """Build native/floor with cargo (quick once built); False when there is no cargo and no binary."""
    if shutil.which("cargo"):
        subprocess.run(["cargo", "build", "-q", "--release", "-p", "latency-floor"], cwd=NATIVE, check=True)
    return FLOOR.exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pacing", nargs="+", choices=["steady", "recorded"], default=["steady", "recorded"])
    parser.add_argument("--flush", nargs="+", choices=["frame", "loop"], default=["frame", "loop"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    default = KEY_BY_NAME["collector.flush"].default
    report: dict[str, object] = {"rate_target": args.rate, "runs": args.runs, "seconds": args.seconds}
    scenarios: dict[str, dict[str, dict[str, Any]]] = {}
    combos = [(p, f, v) for p in args.pacing for f in args.flush for v in RECORDED_RATE]
    for venue in RECORDED_RATE:
        one_run(venue, args.rate, 1.0, args.pacing[0], args.flush[0])  # warm-up
    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {c: [] for c in combos}
    floors: list[dict[str, float]] = []
    has_floor = _build_floor()
    for i in range(args.runs):  # interleaved, so a slow spell of the machine hits every combination
        if has_floor:
            print(f"latency: run {i + 1}/{args.runs}, floor", file=sys.stderr, flush=True)
            floors.append(floor_run(args.rate, args.seconds))
        for pacing, flush, venue in combos:
            progress = f"latency: run {i + 1}/{args.runs}, {venue}, {pacing} pacing, flush={flush}"
            print(progress, file=sys.stderr, flush=True)
            runs[(pacing, flush, venue)].append(one_run(venue, args.rate, args.seconds, pacing, flush))
    for (pacing, flush, venue), done in runs.items():
        keys = [k for k in done[0] if k != "worst_type"]
        row: dict[str, Any] = {k: statistics.median(r[k] for r in done) for k in keys}
        row["spread"] = {k: [min(r[k] for r in done), max(r[k] for r in done)] for k in keys}
        row["worst_type"] = statistics.mode(r["worst_type"] for r in done)
        scenarios.setdefault(f"{pacing}/{flush}", {})[venue] = row
    report["scenarios"] = scenarios
    venues = scenarios.get(f"steady/{default}", next(iter(scenarios.values())))
    report["venues"] = venues
    report["processing_p99_us"] = {v: r["processing_p99_us"] for v, r in venues.items()}
    report["end_to_end_p99_us"] = max(r["end_to_end_p99_us"] for r in venues.values())
    if floors:
        for key in ("write_p99_us", "two_hop_p99_us", "two_hop_p50_us"):
            report[f"floor_{key}"] = statistics.median(f[key] for f in floors)
            report[f"floor_{key}_spread"] = [min(f[key] for f in floors), max(f[key] for f in floors)]
        report["end_to_end_over_floor"] = max(
            r["end_to_end_p99_us"] for r in venues.values()
        ) / statistics.median(f["two_hop_p99_us"] for f in floors)
    else:
        report["floor"] = "not measured: native/floor needs cargo to build (README, The compiled core)"
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
