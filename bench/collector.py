"""Collector throughput by venue core and write policy: the replay exchange sends a whole recording as
fast as it can (``--speed max --no-loop``) to one collector process; a subscriber (this script) counts
what the relay delivers. All real processes on loopback.

    python3 bench/collector.py [--runs 5] [--core native|python ...] [--flush frame|loop ...] [--json]

``collector.core`` (``TICKRELAY_COLLECTOR_CORE``) picks the venue core: ``native`` (the compiled one,
where it is built and has the venue's feed; ``native_core`` in the report says why not) or ``python``.

``collector.flush = frame`` writes each frame's messages to the relay before the next frame is read
(lowest latency: bench/latency.py); ``loop`` writes once per event-loop turn (fewer, larger writes).
msgs/s = messages delivered / (last delivered - first delivered). Per venue, core and policy: a
warm-up, then ``--runs`` runs with the cores and policies interleaved; median (min-max), frame / loop
and native / python.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from tickrelay.config import load_settings
from tickrelay.protocol.codec import Message
from tickrelay.replay.exchange import REPLAY_INSTRUMENTS
from tickrelay.transport.subscribe import Subscription
from tickrelay.venues import VENUES
from tickrelay.venues.native import core_choice


FLUSHES = ("frame", "loop")
CORES = ("native", "python")
EXPECTED = {"binance": 41_248, "coinbase": 9_953}  # messages of the embedded recording (normalize)


async def _count(path: str, expected: int, timeout_s: float) -> tuple[int, float]:
    first = last = 0.0
    n = 0
    sub = Subscription(path, buffer_bytes=256 << 20)
    async with asyncio.timeout(timeout_s):
        async for item in sub:
            if isinstance(item, Message):
                last = time.perf_counter()
                first = first or last
                n += 1
                if n >= expected:
                    break
    return n, last - first


async def _result(task: asyncio.Task[tuple[int, float]]) -> tuple[int, float]:
    return await task


def one_run(venue: str, core: str, flush: str) -> float:
    expected = EXPECTED[venue]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_RUNTIME_DIR": tmp, **REPLAY_INSTRUMENTS, "TICKRELAY_COLLECTOR_FLUSH": flush,
               "TICKRELAY_COLLECTOR_CORE": core}  # fmt: skip
        me = [sys.executable, "-m", "tickrelay"]
        sock, port = str(Path(tmp) / "md.sock"), 18_000 + os.getpid() % 1000
        procs = [
            subprocess.Popen([*me, "relay", "--socket", sock], env=env, stderr=subprocess.DEVNULL),
            subprocess.Popen([*me, "replay-exchange", "--port", str(port), "--speed", "max", "--no-loop"],
                             env=env, stderr=subprocess.DEVNULL),
        ]  # fmt: skip
        time.sleep(1.0)
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                task = runner.get_loop().create_task(_count(sock, expected, 60))
                runner.run(asyncio.sleep(0.2))
                rest = ["--rest-url", f"http://127.0.0.1:{port}/binance"] if venue == "binance" else []
                url = f"ws://127.0.0.1:{port}/{venue}"
                argv = [*me, "collect", venue, "--socket", sock, "--url", url, *rest]
                procs.append(subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL))
                n, seconds = runner.run(_result(task))
        finally:
            for p in reversed(procs):
                p.terminate()
                p.wait(10)
    assert n == expected, f"{venue}: {n} of {expected} messages"
    return n / seconds


def _rate(rates: list[float]) -> dict[str, float]:
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def native_core(venue: str) -> str:
    """``native``, or why the collector of ``venue`` would run the Python core with this environment."""
    env = {**os.environ, **REPLAY_INSTRUMENTS}
    config = load_settings(None, "", env, {}).config
    return core_choice(VENUES[venue].from_settings(config), "native")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--core", action="append", choices=CORES, help="only these cores (default: both)")
    parser.add_argument("--flush", action="append", choices=FLUSHES, help="only these (default: both)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    report: dict[str, dict[str, object]] = {}
    for venue in EXPECTED:
        why = native_core(venue)
        cores = [c for c in args.core or CORES if c == "python" or why == "native"]
        runs = [(core, flush) for core in cores for flush in args.flush or FLUSHES]
        for core, flush in runs:
            one_run(venue, core, flush)  # warm-up
        rates: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
        for _ in range(args.runs):
            for core, flush in runs:
                rates[core, flush].append(one_run(venue, core, flush))
        row: dict[str, object] = {"native_core": why}
        for core, flush in runs:
            row[f"{core}_{flush}_msgs_per_s"] = _rate(rates[core, flush])
        for core in cores:
            if (core, "frame") in rates and (core, "loop") in rates:
                row[f"{core}_frame_over_loop"] = statistics.median(rates[core, "frame"]) / statistics.median(
                    rates[core, "loop"]
                )
        for flush in args.flush or FLUSHES:
            if ("native", flush) in rates and ("python", flush) in rates:
                row[f"{flush}_native_over_python"] = statistics.median(
                    rates["native", flush]
                ) / statistics.median(rates["python", flush])
        report[venue] = row
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
