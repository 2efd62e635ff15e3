"""Latency through the real pipeline at a steady rate: replay exchange -> collector -> relay -> subscriber,
all separate processes except the subscriber (this script, on uvloop).

    python3 bench/latency.py [--rate 10000] [--seconds 4] [--runs 5] [--pacing steady|recorded ...]
                             [--flush frame|loop ...] [--core native|python ...]
                             [--relay-sched normal|batch] [--cpus any|apart|apart-spin ...] [--json]

Per venue the replay exchange sends its recording at ``--rate`` frames per second: ``steady`` spaces
the frames evenly (``replay-exchange --rate``: the steady 10k msg/s the goals are set at), ``recorded``
keeps the recording's own bursts, sped up to the same mean rate (frames that arrived together arrive
together), which adds queueing. Processing latency (frame arrival -> the write holding its messages
returned) is read from the collector's metrics endpoint (HDR histograms): all message types together
(``processing_*``), and the type with the worst P99 beside it. End-to-end latency (header timestamp_ns,
taken at frame arrival, -> decoded at the subscriber) is measured here on every message. Medians over
runs of each percentile, and their spread (min, max). Every pacing and collector write policy
(``collector.flush``: after every frame, or once per event-loop turn) is measured in the same
invocation, the runs interleaved, and so is each venue core (``collector.core``: the compiled one and
the Python reference). The top-level keys are steady pacing with the default policy and the native
core (the Python core's where no native one is built); ``cores`` gives each core's processing and
end-to-end P99 under that pacing and policy.

The machine's floor is measured in the same invocation, interleaved too: ``native/floor`` (a std-only
Rust program, built here with cargo) writes 90-byte messages at ``--rate`` through two blocking
Unix-socket hops, writer -> forwarder -> reader, three processes. ``floor_write_p99_us`` is its
``write()`` P99, ``floor_two_hop_p99_us`` its writer-to-reader P99 (medians over runs, spread beside),
and ``end_to_end_over_floor`` the pipeline's end-to-end P99 over that floor.

``--cpus apart`` also measures each combination with the collector kept on a CPU of its own
(``collector.cpus``) and everything else on another: the relay (``relay.cpus``), the replay exchange
and this script's subscriber (scenario keys end in ``/cpus-apart``). ``apart-spin`` is the same with
the collector spinning on its CPU (``collector.idle = spin``: it polls instead of sleeping between
frames; keys end in ``/cpus-apart/spin``). ``any`` (the default) leaves placement to the kernel, which
wakes the relay onto the CPU of the collector that wrote to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
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
from tickrelay.commands.stats import scrape_all, venue_summary
from tickrelay.config import KEY_BY_NAME, Config
from tickrelay.protocol.codec import Message
from tickrelay.replay.exchange import REPLAY_INSTRUMENTS, collector_env
from tickrelay.runtime import free_port
from tickrelay.transport.subscribe import Subscription
from tickrelay.venues import VENUES
from tickrelay.venues.native import core_choice


NATIVE = Path(__file__).resolve().parents[1] / "native"
FLOOR = NATIVE / "target" / "release" / "latency-floor"
# frames per second of each embedded recording at speed 1 (frames / recorded span)
RECORDED_RATE = {"coinbase": 9946 / 30.8, "binance": 41248 / 346.0, "kraken": (4321 + 60 + 49) / 30.5}
START_TIMEOUT_S = 10.0  # longest wait for the relay's socket, and then for the first message
WARM_UP_TIMEOUT_S = 60.0
MIN_SHARE = 0.25  # a run that delivered fewer than this share of rate x seconds messages failed
CORES = ("native", "python")
# --cpus: the end of a placement's scenario keys, and its key for the cores' headline figures
PLACEMENTS = {"any": ("", "cores"), "apart": ("/cpus-apart", "cores_cpus_apart"),
              "apart-spin": ("/cpus-apart/spin", "cores_cpus_apart_spin")}  # fmt: skip
# whether the collectors can run the compiled core: "native", or why not (the same for every venue)
NATIVE_CORE = core_choice(VENUES["coinbase"].from_settings(Config()), "native")


RELAY_SCHED = ["normal"]  # --relay-sched


async def _subscribe(path: str, seconds: float, patience: float) -> list[tuple[int, int]]:
    """(decoded at, header timestamp_ns) of every message for ``seconds`` from the first one; no wait is
    longer than ``patience`` for the first message and ``seconds`` after it (a stalled stream ends it)."""
    received: list[tuple[int, int]] = []
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(patience + seconds) as bound:
            async for item in Subscription(path, buffer_bytes=64 << 20):
                if isinstance(item, Message):
                    if not received:
                        bound.reschedule(loop.time() + seconds)
                    received.append((time.time_ns(), item.header.timestamp_ns))
    except (TimeoutError, OSError):
        pass  # the window ended (or the relay went away): what arrived is the run's
    return received


async def _wait(task: asyncio.Task[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    return await task


def _wait_for_socket(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in reversed(procs):
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def one_run(
    venue: str, rate: float, seconds: float, pacing: str, flush: str, core: str, cpus: str = "any"
) -> dict[str, Any]:
    """One measured run; ``{"failed": reason}`` when the pipeline delivered too little to measure."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_RUNTIME_DIR": tmp, **REPLAY_INSTRUMENTS, "TICKRELAY_COLLECTOR_FLUSH": flush}
        everything = os.sched_getaffinity(0)
        if cpus != "any":
            others, collector = apart_cpus()
            env.update(TICKRELAY_RELAY_CPUS=str(others), TICKRELAY_COLLECTOR_CPUS=str(collector))
        if cpus == "apart-spin":
            env["TICKRELAY_COLLECTOR_IDLE"] = "spin"
        me = [sys.executable, "-m", "tickrelay"]
        sock, port = Path(tmp) / "md.sock", free_port()
        # the replay exchange's URLs and settings (Kraken's v1 API, whose recording holds every pair)
        env.update(collector_env(port), TICKRELAY_COLLECTOR_CORE=core)
        pace = (
            ["--rate", f"{rate:g}"]
            if pacing == "steady"
            else ["--speed", f"{rate / RECORDED_RATE[venue]:.3f}"]
        )
        quiet = subprocess.DEVNULL
        procs = [
            subprocess.Popen([*me, "relay", "--socket", str(sock)], env=env, stderr=quiet),
            subprocess.Popen([*me, "replay-exchange", "--port", str(port), *pace], env=env, stderr=quiet),
        ]
        set_relay_sched(procs[0].pid, RELAY_SCHED[0])
        if cpus != "any":  # the exchange (remote in production) and the subscriber beside the relay
            os.sched_setaffinity(procs[1].pid, {others})
            os.sched_setaffinity(0, {others})
        try:
            if not _wait_for_socket(sock, START_TIMEOUT_S):
                return {"failed": f"the relay made no socket in {START_TIMEOUT_S:g} s"}
            metrics = ["--metrics-port", str(free_port())]
            collect = [*me, "collect", venue, "--socket", str(sock), *metrics]

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                sub_task = runner.get_loop().create_task(_subscribe(str(sock), seconds, START_TIMEOUT_S))
                runner.run(asyncio.sleep(0.2))  # subscribed before the collector starts
                procs.append(subprocess.Popen(collect, env=env, stderr=quiet))
                e2e = runner.run(_wait(sub_task))
            processing = venue_summary(scrape_all(Path(tmp) / "tickrelay"))
        finally:
            os.sched_setaffinity(0, everything)
            _stop(procs)
    expected = rate * seconds * MIN_SHARE
    if len(e2e) < expected:
        return {
            "failed": f"{len(e2e)} messages delivered, fewer than {expected:,.0f} ({MIN_SHARE:.0%} of rate)"
        }
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


def warm_up(venue: str, rate: float, pacing: str, flush: str, core: str) -> None:
    """Short runs until the pipeline delivers; exits with a one-line error if it never does."""
    deadline = time.monotonic() + WARM_UP_TIMEOUT_S
    while True:
        result = one_run(venue, rate, 1.0, pacing, flush, core)
        if "failed" not in result:
            return
        if time.monotonic() > deadline:
            sys.exit(
                f"latency: {venue}: no delivery in {WARM_UP_TIMEOUT_S:g} s of warm-up: {result['failed']}"
            )
        print(f"latency: warm-up, {venue}: {result['failed']}, again", file=sys.stderr, flush=True)


def _headline(venues: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per venue processing P99 and the worst venue's end-to-end P99 (nan when a venue has no run that
    delivered: its row says why)."""
    e2e = [r.get("end_to_end_p99_us", float("nan")) for r in venues.values()]
    return {
        "processing_p99_us": {v: r.get("processing_p99_us", float("nan")) for v, r in venues.items()},
        "end_to_end_p99_us": float("nan") if any(x != x for x in e2e) else max(e2e),
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
    parser.add_argument("--core", nargs="+", choices=CORES, default=list(CORES))
    parser.add_argument(
        "--relay-sched", choices=["normal", "batch"], default="normal",
        help="the relay's scheduling policy (batch: a write that wakes it does not preempt the writer)",
    )  # fmt: skip
    parser.add_argument(
        "--cpus", nargs="+", choices=list(PLACEMENTS), default=["any"],
        help="apart: also with the collector on a CPU of its own (collector.cpus, relay.cpus); apart-spin:"
        " there, spinning (collector.idle = spin)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.cpus != ["any"] and len(os.sched_getaffinity(0)) < 2:
        sys.exit(f"latency: --cpus {' '.join(args.cpus)} needs two CPUs this process may run on")
    cores = [c for c in args.core if c == "python" or NATIVE_CORE == "native"]
    if not cores:
        sys.exit(f"latency: no core to measure: the native one is not available ({NATIVE_CORE})")
    default = KEY_BY_NAME["collector.flush"].default
    RELAY_SCHED[0] = args.relay_sched
    report: dict[str, object] = {"rate_target": args.rate, "runs": args.runs, "seconds": args.seconds}
    report["relay_sched"] = args.relay_sched
    report["cpus"] = args.cpus
    report["native_core"] = NATIVE_CORE
    scenarios: dict[str, dict[str, dict[str, Any]]] = {}
    combos = [
        (p, f, c, v, u)
        for p in args.pacing
        for f in args.flush
        for c in cores
        for v in RECORDED_RATE
        for u in args.cpus
    ]
    for venue in RECORDED_RATE:
        print(f"latency: warm-up, {venue}", file=sys.stderr, flush=True)
        warm_up(venue, args.rate, args.pacing[0], args.flush[0], cores[0])
    runs: dict[tuple[str, str, str, str, str], list[dict[str, Any]]] = {c: [] for c in combos}
    floors: list[dict[str, float]] = []
    has_floor = _build_floor()
    for i in range(args.runs):  # interleaved, so a slow spell of the machine hits every combination
        if has_floor:
            print(f"latency: run {i + 1}/{args.runs}, floor", file=sys.stderr, flush=True)
            floors.append(floor_run(args.rate, args.seconds))
        for pacing, flush, core, venue, cpus in combos:
            progress = (
                f"latency: run {i + 1}/{args.runs}, {venue}, {pacing} pacing, flush={flush}, {core} core"
                f", cpus {cpus}"
            )
            print(progress, file=sys.stderr, flush=True)
            runs[(pacing, flush, core, venue, cpus)].append(
                one_run(venue, args.rate, args.seconds, pacing, flush, core, cpus)
            )
    for (pacing, flush, core, venue, cpus), results in runs.items():
        done = [r for r in results if "failed" not in r]
        failed = [r["failed"] for r in results if "failed" in r]
        row: dict[str, Any] = {"runs_ok": len(done)}
        if failed:
            row["failed"] = failed
        if done:
            keys = [k for k in done[0] if k != "worst_type"]
            row.update({k: statistics.median(r[k] for r in done) for k in keys})
            row["spread"] = {k: [min(r[k] for r in done), max(r[k] for r in done)] for k in keys}
            row["worst_type"] = statistics.mode(r["worst_type"] for r in done)
        scenarios.setdefault(f"{pacing}/{flush}/{core}{PLACEMENTS[cpus][0]}", {})[venue] = row
    report["scenarios"] = scenarios
    pacing, flush = (
        ("steady" if "steady" in args.pacing else args.pacing[0]),
        (default if default in args.flush else args.flush[0]),
    )
    # the headline is the kernel's placement where it was measured; each other one has its cores' key
    first = "any" if "any" in args.cpus else args.cpus[0]
    by_placement = {
        cpus: {c: _headline(scenarios[f"{pacing}/{flush}/{c}{PLACEMENTS[cpus][0]}"]) for c in cores}
        for cpus in args.cpus
    }
    report["venues"] = scenarios[f"{pacing}/{flush}/{cores[0]}{PLACEMENTS[first][0]}"]
    report.update(by_placement[first][cores[0]])
    report["cores"] = by_placement[first]
    for cpus, by_core in by_placement.items():
        if cpus != first:
            report[PLACEMENTS[cpus][1]] = by_core
    if floors:
        for key in ("write_p99_us", "two_hop_p99_us", "two_hop_p50_us"):
            report[f"floor_{key}"] = statistics.median(f[key] for f in floors)
            report[f"floor_{key}_spread"] = [min(f[key] for f in floors), max(f[key] for f in floors)]
        for figures in (report, *(f for by_core in by_placement.values() for f in by_core.values())):
            figures["end_to_end_over_floor"] = figures["end_to_end_p99_us"] / report["floor_two_hop_p99_us"]
    else:
        report["floor"] = "not measured: native/floor needs cargo to build (README, The compiled core)"
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
