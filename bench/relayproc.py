"""Real relay processes for the benchmarks: ``with relay_process() as path:`` serves on ``path``;
``RelayProc`` is one that a benchmark starts, kills and restarts itself (bench/chaos.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar


ROOT = Path(__file__).resolve().parents[1]
ME = [sys.executable, "-m", "tickrelay"]


def set_relay_sched(pid: int, policy: str) -> None:
    """``--relay-sched batch`` (bench/latency.py, bench/breakdown.py): the relay process ``pid`` runs
    SCHED_BATCH. Linux then never lets the relay, woken by a publisher's write to its socket, preempt
    that publisher (a batch task waits for the waker to sleep, another CPU or the tick); with the
    normal policy it often does, and the write returns only after the relay has handled it (README,
    Latency: where the P99 goes)."""
    if policy == "batch":
        os.sched_setscheduler(pid, os.SCHED_BATCH, os.sched_param(0))


def apart_cpus() -> tuple[int, int]:
    """``--cpus apart`` (bench/latency.py, bench/breakdown.py): (the CPU of the relay, the exchange and
    the subscriber; the collector's own)."""
    others, collector = sorted(os.sched_getaffinity(0))[:2]
    return others, collector


@contextmanager
def relay_process(*extra: str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start `tickrelay relay` on a socket in a temporary directory, with ``env`` added to the
    environment; stop it (SIGTERM) on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "md.sock")
        relay = subprocess.Popen(
            [*ME, "relay", "--socket", path, *extra],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert relay.stderr is not None
        assert "listening" in relay.stderr.readline()
        try:
            yield path
        finally:
            relay.terminate()
            relay.communicate(timeout=10)


def rss_mb(pid: int) -> float:
    """The resident memory of process ``pid`` (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class RelayProc:
    """`tickrelay relay` on ``path``; ``start`` returns once it listens."""

    live: ClassVar[list[subprocess.Popen[str]]] = []  # every process a scenario started: killed at the end

    def __init__(self, path: Path, *extra: str) -> None:
        self.path, self.extra = path, extra
        self.proc: subprocess.Popen[str] | None = None

    @classmethod
    def spawn(cls, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """``tickrelay ARGS`` with its stderr piped (text), killed at the end if still running."""
        proc = subprocess.Popen([*ME, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT, env={**os.environ, **(env or {})})  # fmt: skip
        cls.live.append(proc)
        return proc

    def start(self) -> float:
        began = time.perf_counter()
        self.proc = self.spawn("relay", "--socket", str(self.path), *self.extra)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        assert "listening" in line, line
        return time.perf_counter() - began

    def rss_mb(self) -> float:
        assert self.proc is not None
        return rss_mb(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        self.proc.send_signal(sig)
        self.proc.wait(10)
        self.proc.stderr.close()

    @classmethod
    def kill_all(cls) -> None:
        """Kill what a failed scenario left running."""
        for proc in cls.live:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
