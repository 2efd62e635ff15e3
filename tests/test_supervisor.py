"""Supervised children with real processes: stderr read as it comes, restarts, the parent-death signal."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tickrelay.supervisor import Child, ChildLog, stop_children, supervise


async def _until(check: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_child_writing_1_mb_to_stderr_keeps_running(tmp_path: Path) -> None:
    """The risk monitor writes every alert to stderr; read only at exit, the pipe filled and it blocked."""
    script = (
        "import pathlib, sys, time\n"
        "for i in range(16384):\n"
        "    sys.stderr.write(f'alert {i:05} ' + 'x' * 52 + '\\n')\n"  # 64 bytes a line: 1 MiB in all
        "sys.stderr.flush()\n"
        f"pathlib.Path({str(tmp_path / 'done')!r}).touch()\n"
        "time.sleep(60)\n"  # then stays up, as a consumer does
    )
    child = Child("risk", [sys.executable, "-c", script], dict(os.environ))
    log = ChildLog(tmp_path / "up.log")
    stop, events = asyncio.Event(), []
    task = asyncio.create_task(supervise(child, stop, events, log))
    try:
        await _until(lambda: (tmp_path / "done").exists(), 20)
        await _until(lambda: log.lines == 16384, 5)
        assert child.proc is not None
        assert child.proc.returncode is None  # still running
        assert child.last_line == "alert 16383 " + "x" * 52
    finally:
        stop.set()
        await stop_children([child])
        await task
        log.close()
    lines = (tmp_path / "up.log").read_text().splitlines()
    assert len(lines) == 16384
    assert lines[0].split(" ", 1)[1] == "risk: alert 00000 " + "x" * 52  # after the UTC time, the name
    assert events == []


async def test_a_child_that_dies_is_restarted_and_reported_with_its_last_line(tmp_path: Path) -> None:
    script = "import sys; print('starting', file=sys.stderr); sys.exit('tickrelay collect: no relay')"
    child = Child("collect-kraken", [sys.executable, "-c", script], dict(os.environ))
    stop, events = asyncio.Event(), []
    task = asyncio.create_task(supervise(child, stop, events, ChildLog(None)))
    await _until(lambda: child.restarts >= 2, 20)
    stop.set()
    await task
    assert events[0] == "collect-kraken died (exit 1: tickrelay collect: no relay); restarting"


def test_a_line_longer_than_the_limit_is_logged_in_pieces(tmp_path: Path) -> None:
    async def main() -> list[str]:
        script = "import sys; sys.stderr.write('y' * (64 << 10) + 'z' * 10)"
        child = Child("strategy", [sys.executable, "-c", script], dict(os.environ))
        log = ChildLog(tmp_path / "up.log")
        stop = asyncio.Event()
        task = asyncio.create_task(supervise(child, stop, [], log))
        await _until(lambda: child.restarts >= 1, 20)
        stop.set()
        await task
        log.close()
        return [line.split(" ", 2)[2] for line in (tmp_path / "up.log").read_text().splitlines()[:2]]

    assert asyncio.run(main()) == ["y" * (64 << 10), "z" * 10]


@pytest.mark.timeout(30)
def test_a_child_of_a_supervisor_dies_with_it(tmp_path: Path) -> None:
    """`tickrelay` started with TICKRELAY_PARENT_PID asks for SIGTERM when its parent dies, SIGKILL
    included: here a shell (the parent) starts `tickrelay relay` and is killed."""
    sock = tmp_path / "md.sock"
    parent = subprocess.Popen(
        ["sh", "-c", f'TICKRELAY_PARENT_PID=$$ "{sys.executable}" -m tickrelay relay --socket {sock} & wait'],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not sock.exists():
        assert time.monotonic() < deadline, "the relay did not start"
        time.sleep(0.05)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    while sock.exists():  # the relay got SIGTERM and removed its socket on the way out
        assert time.monotonic() < deadline + 10, "the relay outlived its parent"
        time.sleep(0.05)
