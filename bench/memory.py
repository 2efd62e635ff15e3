"""Collector memory over time: does it level off, and what fills it (issue 15, item 8).

    python3 bench/memory.py --minutes 10 [--speed 1] [--json]
        a real `tickrelay up` (replay exchange, no recorder): the RSS of every child every --step
        seconds, then per process its RSS at 1 minute, at the end, and the growth in between.
    python3 bench/memory.py --trace binance --minutes 5 [--speed max]
        a relay, the replay exchange (looping) and that one collector under tracemalloc, its metrics
        scraped every --scrape seconds as `up` does: its RSS and traced Python memory every --step
        seconds, and the allocation sites that grew most between the snapshot at 1 minute and the last.

Real processes on loopback and Unix sockets, in a private temporary runtime directory.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

from tickrelay.cli import main as tickrelay
from tickrelay.replay.exchange import REPLAY_INSTRUMENTS, collector_env
from tickrelay.runtime import free_port


ME = [sys.executable, "-m", "tickrelay"]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise ProcessLookupError(pid)  # a zombie: exited, not reaped yet


def children(parent: int) -> dict[str, int]:
    """`up`'s children by name (collect-binance, relay, dashboard, ...) -> pid."""
    out = {}
    for entry in os.listdir("/proc"):
        try:
            if not entry.isdigit() or int(Path(f"/proc/{entry}/stat").read_text().split()[3]) != parent:
                continue
            argv = Path(f"/proc/{entry}/cmdline").read_text().split("\0")
            name = argv[argv.index("tickrelay") + 1]
            if name == "collect":
                name += "-" + argv[argv.index("collect") + 1]
            elif name == "relay":
                name += "-" + argv[argv.index("--domain") + 1]
            out[name] = int(entry)
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not a tickrelay child
            continue
    return out


def sample(minutes: float, step: float, pids: Any, quiet: bool) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    start = time.monotonic()
    while time.monotonic() - start < minutes * 60:
        time.sleep(step)
        row: dict[str, float] = {"t_s": round(time.monotonic() - start)}
        for name, pid in sorted(pids().items()):
            with contextlib.suppress(FileNotFoundError):  # (up's child restarting)
                row[name] = round(rss_mb(pid), 1)
        rows.append(row)
        if not quiet:
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def summary(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    at_1 = next((r for r in rows if r["t_s"] >= 60), rows[0])
    last = rows[-1]
    return {
        name: {"rss_1min_mb": at_1[name], "rss_end_mb": last[name], "growth_after_1min_mb":
               round(last[name] - at_1[name], 1), "peak_mb": max(r.get(name, 0) for r in rows)}
        for name in last if name != "t_s" and name in at_1
    }  # fmt: skip


def run_up(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    env = {**os.environ, "XDG_RUNTIME_DIR": tmp, "XDG_STATE_HOME": tmp}
    argv = [*ME, "up", "--no-record", "--dashboard-port", "0", "--speed", args.speed, "--interval", "5"]
    up = subprocess.Popen(argv, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rows = sample(args.minutes, args.step, lambda: children(up.pid), args.json)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
    return {"command": " ".join(argv[2:]), "samples": rows, "processes": summary(rows)}


def scrape(port: int, every_s: float, done: threading.Event) -> None:
    while not done.wait(every_s):
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()


def run_traced(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    port, sock, snaps = free_port(), str(Path(tmp) / "md.sock"), Path(tmp) / "snapshots"
    snaps.mkdir()
    env = {**os.environ, "XDG_RUNTIME_DIR": tmp, **REPLAY_INSTRUMENTS, **collector_env(port)}

    def spawn(*argv: str) -> subprocess.Popen[bytes]:
        with open(Path(tmp) / "stderr.log", "ab") as log:
            return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)

    procs = [spawn(*ME, "relay", "--socket", sock), spawn(*ME, "replay-exchange", "--port", str(port),
                                                          "--speed", args.speed)]  # fmt: skip
    time.sleep(1.5)
    traced = ["--snapshot-into", str(snaps), "--step", str(args.step)]
    metrics_port = free_port()
    collector = spawn(sys.executable, __file__, *traced, "collect", args.trace, "--socket", sock,
                      "--metrics-port", str(metrics_port))  # fmt: skip
    done = threading.Event()
    if args.scrape:  # as `up` (its summary) and the dashboard do
        threading.Thread(target=scrape, args=(metrics_port, args.scrape, done), daemon=True).start()
    try:
        rows = sample(args.minutes, args.step, lambda: {f"collect-{args.trace}": collector.pid}, args.json)
    except ProcessLookupError:
        sys.exit(f"the collector exited: {(Path(tmp) / 'stderr.log').read_text()[-2000:]}")
    finally:
        done.set()
        for p in [collector, *reversed(procs)]:
            p.terminate()
            p.wait(30)
    files = sorted(glob.glob(str(snaps / "*.pickle")))
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    loaded = [tracemalloc.Snapshot.load(f).filter_traces(ignore) for f in files]
    traced_mb = [round(sum(s.size for s in snap.statistics("filename")) / 1e6, 2) for snap in loaded]
    first = loaded[min(len(loaded) - 1, max(0, round(60 / args.step) - 1))]
    growth = [
        {"mb": round(st.size_diff / 1e6, 2), "blocks": st.count_diff, "now_mb": round(st.size / 1e6, 2),
         "where": [f"{Path(fr.filename).name}:{fr.lineno}" for fr in reversed(st.traceback)][:4]}
        for st in loaded[-1].compare_to(first, "traceback")[:args.top]
    ]  # fmt: skip
    return {
        "venue": args.trace,
        "speed": args.speed,
        "samples": rows,
        "traced_mb": traced_mb,
        "growth": growth,
    }


def snapshot_into(directory: str, step: float, argv: list[str]) -> int:
    """The traced collector: tickrelay's own CLI, with a tracemalloc snapshot written every ``step`` (what
    importing took is not traced: the growth is what running adds)."""
    tracemalloc.start(8)

    def dump() -> None:
        n = 0
        while True:
            time.sleep(step)
            tracemalloc.take_snapshot().dump(os.path.join(directory, f"{n:04d}.pickle"))
            n += 1

    threading.Thread(target=dump, daemon=True).start()
    sys.path.remove(str(Path(__file__).resolve().parent))  # bench/nats.py would shadow the nats package
    return tickrelay(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--step", type=float, default=15.0, help="sample every S seconds (15)")
    parser.add_argument("--speed", default="1", help="replay pace x SPEED, or 'max' (1)")
    parser.add_argument(
        "--trace", choices=("binance", "kraken", "coinbase"), help="one collector, tracemalloc"
    )
    parser.add_argument(
        "--scrape",
        type=float,
        default=1.0,
        help="scrape the collector's metrics every S seconds, as `up` does (--trace; 0: never)",
    )
    parser.add_argument("--top", type=int, default=10, help="allocation sites to show (--trace)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout, no progress")
    parser.add_argument("--snapshot-into", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.snapshot_into:
        sys.exit(snapshot_into(args.snapshot_into, args.step, rest))
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o700)
        report = run_traced(args, tmp) if args.trace else run_up(args, tmp)
    if args.json:
        print(json.dumps(report))
        return
    if args.trace:
        print(f"traced MB every {args.step:g} s: {report['traced_mb']}")
        for g in report["growth"]:
            where = " <- ".join(g["where"])
            print(f"{g['mb']:+7.2f} MB {g['blocks']:+8d} blocks (now {g['now_mb']:.2f} MB)  {where}")
        return
    for name, p in report["processes"].items():
        print(f"{name:24} {p['rss_1min_mb']:7.1f} MB at 1 min {p['rss_end_mb']:7.1f} MB at the end "
              f"({p['growth_after_1min_mb']:+.1f}), peak {p['peak_mb']:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
