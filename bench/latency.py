"""Latency through the real pipeline at a steady rate: replay exchange -> collector -> relay -> subscriber,
all separate processes except the subscriber (this script, on uvloop).

    python3 bench/latency.py [--rate 10000] [--seconds 4] [--runs 5] [--flush frame|loop ...] [--json]

Per venue the replay exchange paces its recording so frames arrive at about ``--rate`` per second.
Processing latency (frame arrival -> the coalesced write holding its messages returned) is read from
the collector's metrics endpoint (HDR histograms); end-to-end latency (header timestamp_ns, taken at
frame arrival, -> decoded at the subscriber) is measured here. Medians over runs of each percentile.
Each collector write policy (``collector.flush``: after every frame, or once per event-loop turn) is
measured in turn, in the same invocation; the top-level keys are the default policy's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import uvloop

from tickrelay.commands.stats import venue_summary
from tickrelay.config import KEY_BY_NAME
from tickrelay.protocol.codec import Message
from tickrelay.replay.exchange import REPLAY_INSTRUMENTS
from tickrelay.transport.subscribe import Subscription


# frames per second of each embedded recording at speed 1 (frames / recorded span)
RECORDED_RATE = {"coinbase": 9946 / 30.8, "binance": 41248 / 346.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _subscribe(path: str, seconds: float) -> list[int]:
    latencies: list[int] = []
    sub = Subscription(path, buffer_bytes=64 << 20)
    deadline = time.monotonic() + seconds
    async for item in sub:
        if isinstance(item, Message):
            latencies.append(time.time_ns() - item.header.timestamp_ns)
        if time.monotonic() > deadline:
            break
    return latencies


async def _wait(task: asyncio.Task[list[int]]) -> list[int]:
    return await task


def one_run(venue: str, rate: float, seconds: float, flush: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_RUNTIME_DIR": tmp, **REPLAY_INSTRUMENTS, "TICKRELAY_COLLECTOR_FLUSH": flush}
        me = [sys.executable, "-m", "tickrelay"]
        sock, port = str(Path(tmp) / "md.sock"), _free_port()
        speed = rate / RECORDED_RATE[venue]
        procs = [
            subprocess.Popen([*me, "relay", "--socket", sock], env=env, stderr=subprocess.DEVNULL),
            subprocess.Popen(
                [*me, "replay-exchange", "--port", str(port), "--speed", f"{speed:.3f}"],
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
        processing = venue_summary(Path(tmp) / "tickrelay")
        for p in reversed(procs):
            p.terminate()
            p.wait(10)
    types = processing.get(venue, {}).get("types", {})
    busiest = max(types.values(), key=lambda q: q.get("p99", 0.0)) if types else {}
    arr = np.array(e2e[len(e2e) // 10 :], dtype=np.int64) / 1000  # drop the first 10%: connection set-up
    return {
        "messages": float(len(e2e)),
        "processing_p50_us": busiest.get("p50", float("nan")),
        "processing_p99_us": busiest.get("p99", float("nan")),
        "processing_p999_us": busiest.get("p999", float("nan")),
        "end_to_end_p50_us": float(np.percentile(arr, 50)),
        "end_to_end_p99_us": float(np.percentile(arr, 99)),
        "end_to_end_p999_us": float(np.percentile(arr, 99.9)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--flush", nargs="+", choices=["frame", "loop"], default=["frame", "loop"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    default = KEY_BY_NAME["collector.flush"].default
    report: dict[str, object] = {"rate_target": args.rate, "runs": args.runs, "seconds": args.seconds}
    by_flush: dict[str, dict[str, dict[str, float]]] = {}
    for flush in args.flush:
        venues: dict[str, dict[str, float]] = {}
        for venue in RECORDED_RATE:
            one_run(venue, args.rate, 1.0, flush)  # warm-up
            runs = [one_run(venue, args.rate, args.seconds, flush) for _ in range(args.runs)]
            venues[venue] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            venues[venue]["msgs_per_s"] = venues[venue].pop("messages") / (args.seconds + 1.0)
        by_flush[flush] = venues
    report["by_flush"] = by_flush
    venues = by_flush.get(default, next(iter(by_flush.values())))
    report["venues"] = venues
    report["processing_p99_us"] = {v: r["processing_p99_us"] for v, r in venues.items()}
    report["end_to_end_p99_us"] = max(r["end_to_end_p99_us"] for r in venues.values())
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
