"""Chaos, the `up` soak (bench/chaos.py runs it with ``--only soak`` or ``--soak-minutes M``): `tickrelay
up` on the embedded replay (speed 1, looping) for M minutes (default 10), in a private runtime and
state directory.

Every process of the tree (up and each child) is found through /proc (parent pid) and its resident
memory (VmRSS) read every READ_EVERY_S; the figures are the reading at the end of the first minute
(or at half of a soak shorter than two) and the last one. The relay's status says what each
collector published between them (the data kept flowing). Then Ctrl-C (SIGINT) to up: how long it
took to exit, its exit code, and which of the pids seen are still alive (orphans: none may be).
Pass: per process, RSS growth after the first minute under GROWTH_MB; no child died (the same pids
throughout); every collector published during the soak; up exits 0 within 30 s, with no orphan.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from relayproc import ME, RelayProc, rss_mb
from tickrelay.commands.relay_status import fetch_status
from tickrelay.errors import RelayError


GROWTH_MB = 5.0
READ_EVERY_S = 30.0


def children_of(pid: int) -> list[int]:
    """Every descendant of ``pid`` (through /proc: each process's parent)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def name_of(pid: int) -> str:
    """up's name for its child (relay, relay-signal, collect-kraken, dashboard, ...), from its command."""
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    if "tickrelay" not in args:
        return Path(args[0]).name
    cmd, rest = args[args.index("tickrelay") + 1], args[args.index("tickrelay") + 2 :]
    if cmd == "collect":
        return f"collect-{rest[0]}"
    if cmd == "relay":
        domain = rest[rest.index("--domain") + 1] if "--domain" in rest else "market-data"
        return "relay" if domain == "market-data" else f"relay-{domain}"
    return cmd


def started(pid: int) -> int:
    """The process's start time (clock ticks since boot): a pid reused by another process differs."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def alive(pid: int, start: int) -> bool:
    try:
        return started(pid) == start and "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def reading(up: int) -> dict[str, tuple[int, int, float]]:
    """name -> (pid, start time, RSS MB) of up and every process under it."""
    out = {}
    for pid in [up, *children_of(up)]:
        try:
            out["up" if pid == up else name_of(pid)] = (pid, started(pid), rss_mb(pid))
        except (OSError, IndexError, ValueError):  # ended between the listing and the read
            continue
    return out


async def published(path: Path) -> dict[str, int]:
    """Messages each publisher (collector) has sent to the market-data relay so far."""
    try:
        status = await fetch_status(str(path), 1)
    except (RelayError, OSError):
        return {}
    return {p["name"]: p["messages"] for p in status["publishers"]}


def start_up(tmp: Path) -> tuple[subprocess.Popen[str], Path]:
    """`tickrelay up` with its own runtime and state directories; its market-data socket."""
    run, state = tmp / "soak-run", tmp / "soak-state"
    run.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run), "XDG_STATE_HOME": str(state)}
    env.pop("RELAY_SOCKET_PATH", None)
    with (tmp / "soak-up.out").open("w") as out:
        up = subprocess.Popen([*ME, "up", "--interval", "5", "--dashboard-port", "0"], stdout=out,
                              stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp)  # fmt: skip
    RelayProc.live.append(up)
    return up, run / "tickrelay" / "market-data.sock"


def stop_up(up: subprocess.Popen[str]) -> tuple[float, int | None]:
    """Ctrl-C to up: seconds until it exited, and its exit code (None: still running after 30 s)."""
    began = time.monotonic()
    up.send_signal(signal.SIGINT)
    try:
        code: int | None = up.wait(30)
    except subprocess.TimeoutExpired:
        code = None
    return time.monotonic() - began, code


async def soak(tmp: Path, minutes: float) -> dict[str, Any]:
    up, socket = start_up(tmp)
    began = time.monotonic()
    first_at = min(60.0, minutes * 30)  # seconds: the first minute, or half of a short soak
    series: dict[str, list[float]] = {}
    first: dict[str, tuple[int, int, float]] = {}
    last: dict[str, tuple[int, int, float]] = {}
    seen: dict[int, tuple[str, int]] = {}  # every pid of the tree: (name, start time)
    sent_first: dict[str, int] = {}
    step = min(READ_EVERY_S, first_at)
    at = step
    while at <= minutes * 60 + 1e-6 and up.poll() is None:
        await asyncio.sleep(max(0.0, began + at - time.monotonic()))
        last = await asyncio.to_thread(reading, up.pid)
        for name, (pid, start, rss) in last.items():
            series.setdefault(name, []).append(round(rss, 1))
            seen[pid] = (name, start)
        if abs(at - first_at) < 1e-6:
            first, sent_first = last, await published(socket)
        at += step
    sent_last = await published(socket)
    stop_s, code = await asyncio.to_thread(stop_up, up)
    orphans = sorted(name for pid, (name, start) in seen.items() if pid != up.pid and alive(pid, start))
    growth = {n: round(last[n][2] - first[n][2], 1) for n in first if n in last}
    restarted = sorted(n for n in first if n not in last or last[n][0] != first[n][0])
    collectors = {n: sent_last.get(n, 0) - sent_first.get(n, 0) for n in first if n.startswith("collect-")}
    tail = (tmp / "soak-up.out").read_text()[-2000:] if code != 0 else ""
    ok = (bool(first) and all(g < GROWTH_MB for g in growth.values()) and not restarted
          and bool(collectors) and all(collectors.values()) and code == 0 and not orphans)  # fmt: skip
    return {"minutes": minutes, "first_reading_s": first_at, "processes": len(first),
            "rss_mb_first": {n: round(v[2], 1) for n, v in first.items()},
            "rss_mb_last": {n: round(v[2], 1) for n, v in last.items()},
            "rss_growth_mb": growth, "max_growth_mb": max(growth.values(), default=None),
            "rss_mb_every_s": step, "rss_mb_series": series, "restarted": restarted,
            "published_after_first_reading": collectors, "stop_s": round(stop_s, 2), "exit_code": code,
            "pids_seen": len(seen), "orphans": orphans, "growth_bound_mb": GROWTH_MB,
            **({"up_output_tail": tail} if tail else {}), "pass": ok}  # fmt: skip
