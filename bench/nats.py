"""Through NATS: relay A -> bridge out -> nats-server -> bridge in -> relay B -> subscriber, real processes.

    python3 bench/nats.py [--messages 200000] [--rate 10000] [--seconds 3] [--runs 5] [--json]

One nats-server (JetStream on, store in a temporary directory), two relay processes, `tickrelay bridge
out` on A and `tickrelay bridge in` on B stay up for every run; this script publishes and subscribes.

* Throughput: `tickrelay publish` (a process) sends ``--messages`` pre-encoded 74-byte Trade messages
  into A as fast as it can; msgs/s = messages received at B / (last received - first received).
* Latency at ``--rate``: this script sends Trades stamped with the send time (``timestamp_ns``) into A
  for ``--seconds`` and subscribes at B and, as the baseline, at A itself; added latency = the
  percentile through the bridge minus the same percentile straight from A. The first 10% of each run
  is dropped (connections warming up).

A warm-up run, then ``--runs`` runs; medians with min-max.
"""

from __future__ import annotations

# This file's directory is sys.path[0] when it runs, so `import nats` here would import this file:
# the benchmark drives the bridge as processes and never imports the nats package itself.
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

import numpy as np
import uvloop

from tickrelay.protocol.codec import Message, encode_trade_message
from tickrelay.protocol.messages import Trade
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.runtime import free_port
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.subscribe import Gap, Subscription


ME = [sys.executable, "-m", "tickrelay"]
BTC = asset_id_for("BTC/USD")


def _wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _trade(i: int, ts_ns: int) -> Trade:
    return Trade(BTC, 6_000_000_000_000 + i, 1_000_000, ts_ns, 102, 51, i % 2)


async def _throughput(a: str, b: str, data: Path, n: int) -> float:
    stamps: list[int] = []
    sub = Subscription(b, buffer_bytes=256 << 20)

    async def consume() -> None:
        async for item in sub:
            if isinstance(item, Message):
                stamps.append(time.perf_counter_ns())
                if len(stamps) == n:
                    return
            elif isinstance(item, Gap):
                print(f"bench/nats.py: gap {item}", file=sys.stderr)

    task = asyncio.create_task(consume())
    await sub.connected.wait()
    proc = await asyncio.create_subprocess_exec(
        *ME, "publish", "--socket", a, str(data), stderr=subprocess.DEVNULL
    )
    try:
        await asyncio.wait_for(task, 120)
    finally:
        await proc.wait()
    return (n - 1) / ((stamps[-1] - stamps[0]) / 1e9)


async def _latency(a: str, b: str, rate: float, seconds: float) -> dict[str, float]:
    through: list[int] = []
    direct: list[int] = []
    total = int(rate * seconds)

    async def consume(path: str, into: list[int]) -> None:
        async for item in Subscription(path, buffer_bytes=64 << 20):
            if isinstance(item, Message):
                into.append(time.time_ns() - item.header.timestamp_ns)
                if len(into) == total:
                    return

    tasks = [asyncio.create_task(consume(b, through)), asyncio.create_task(consume(a, direct))]
    await asyncio.sleep(0.3)
    out = RelayOutput(a, source=64, name="bench-nats")
    out.start()
    await out.wait_connected(10)
    per_tick, tick_s = max(1, int(rate / 1000)), max(1, int(rate / 1000)) / rate
    start = time.perf_counter()
    for i in range(0, total, per_tick):
        for j in range(i, min(i + per_tick, total)):
            out.send_event(time.time_ns(), _trade(j, 0))
        delay = start + (i + per_tick) / per_tick * tick_s - time.perf_counter()
        await asyncio.sleep(max(0.0, delay))
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    await out.close()
    result: dict[str, float] = {}
    for name, values in (("through", through), ("direct", direct)):
        arr = np.array(values[len(values) // 10 :], dtype=np.int64) / 1000
        result[f"{name}_p50_us"] = float(np.percentile(arr, 50))
        result[f"{name}_p99_us"] = float(np.percentile(arr, 99))
    result["added_p50_us"] = result["through_p50_us"] - result["direct_p50_us"]
    result["added_p99_us"] = result["through_p99_us"] - result["direct_p99_us"]
    return result


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server = shutil.which("nats-server") or "/usr/sbin/nats-server"
    with tempfile.TemporaryDirectory() as tmp:
        a, b, port = str(Path(tmp) / "a.sock"), str(Path(tmp) / "b.sock"), free_port()
        data = Path(tmp) / "trades.v2"
        data.write_bytes(
            b"".join(encode_trade_message(64, i + 1, i, _trade(i, i)) for i in range(args.messages))
        )
        url = f"nats://127.0.0.1:{port}"
        env = {**os.environ, "XDG_RUNTIME_DIR": tmp}
        procs = [subprocess.Popen([server, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", f"{tmp}/js"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
        try:
            _wait_for(lambda: _port_open(port), 10, "nats-server")
            for path in (a, b):
                procs.append(
                    subprocess.Popen([*ME, "relay", "--socket", path], env=env, stderr=subprocess.DEVNULL)
                )
                _wait_for(lambda p=path: Path(p).exists(), 10, f"relay {path}")  # type: ignore[misc]
            for direction, path in (("out", a), ("in", b)):
                procs.append(subprocess.Popen([*ME, "bridge", direction, "--socket", path, "--nats", url],
                                              env=env, stderr=subprocess.DEVNULL))  # fmt: skip
            time.sleep(2.0)  # both bridges connected and subscribed
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(_throughput(a, b, data, min(args.messages, 50_000)))  # warm-up
                runner.run(_latency(a, b, args.rate, 1.0))
                rates, lats = [], []
                for _ in range(args.runs):
                    rates.append(runner.run(_throughput(a, b, data, args.messages)))
                    lats.append(runner.run(_latency(a, b, args.rate, args.seconds)))
        finally:
            for p in reversed(procs):
                p.terminate()
                p.wait(10)
    report: dict[str, object] = {
        "messages": args.messages,
        "runs": args.runs,
        "rate_target": args.rate,
        "msgs_per_s": _summary(rates),
        **{k: _summary([r[k] for r in lats]) for k in lats[0]},
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
