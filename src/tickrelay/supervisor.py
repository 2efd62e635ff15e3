"""Supervised child processes (``tickrelay up``'s): started in their own session and tied to the
supervisor's life, restarted with backoff when they die, stopped in order. Each child's stderr is read
as it comes, line by line, into one log with the child's name before each line, so a chatty child never
blocks on a full pipe. I/O: processes and one log file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import TextIO

from tickrelay.runtime import PARENT_PID_ENV
from tickrelay.transport.backoff import backoff


MAX_LINE = 64 << 10  # a longer stderr line is logged in pieces of this size (bounded memory)


@dataclasses.dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    last_exit: str = ""  # how the last run ended: "exit -9: <its last stderr line>"
    last_line: str = ""  # the newest line it wrote to stderr


class ChildLog:
    """Every child's stderr lines, as ``<UTC time> <child>: <line>``, into one file (or nowhere)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lines = 0
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("w", encoding="utf-8", buffering=1)  # a new log per run, line-buffered

    def write(self, child: Child, line: bytes) -> None:
        text = line.decode(errors="replace").rstrip()
        child.last_line = text or child.last_line
        self.lines += 1
        if self._file is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._file.write(f"{stamp} {child.name}: {text}\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def _pump(child: Child, stream: asyncio.StreamReader, log: ChildLog) -> None:
    """Read ``stream`` until EOF, writing each line to ``log`` as soon as it is complete."""
    pending = b""
    while chunk := await stream.read(MAX_LINE):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            log.write(child, line)
        while len(pending) >= MAX_LINE:
            log.write(child, pending[:MAX_LINE])
            pending = pending[MAX_LINE:]
    if pending:
        log.write(child, pending)


async def supervise(child: Child, stop: asyncio.Event, events: list[str], log: ChildLog) -> None:
    """Run ``child`` until ``stop``; a child that dies is reported in ``events`` and restarted with
    backoff. Returns once ``stop`` is set and the child has exited (``stop_children`` ends it)."""
    delays = backoff(initial_s=0.5, cap_s=10.0)
    while True:
        child.proc = proc = await asyncio.create_subprocess_exec(
            *child.argv,
            env={**child.env, PARENT_PID_ENV: str(os.getpid())},  # it dies with us, even of SIGKILL
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the supervisor only: it stops the children in order
        )
        assert proc.stderr is not None
        pumped = asyncio.ensure_future(_pump(child, proc.stderr, log))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({pumped, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if stop.is_set():  # keep reading while it shuts down: its last words must not block it either
            await pumped
            await proc.wait()
            return
        await proc.wait()  # its stderr is closed: it has exited, or is about to
        if stop.is_set():  # it was stopped meanwhile
            return
        child.last_exit = f"exit {proc.returncode}: {child.last_line or 'no message'}"
        child.restarts += 1
        events.append(f"{child.name} died ({child.last_exit}); restarting")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), next(delays))
        if stop.is_set():
            return


async def stop_children(children: list[Child], timeout_s: float = 5.0) -> None:
    """SIGTERM to each running child, then wait for each (SIGKILL after ``timeout_s``)."""
    for child in children:
        if child.proc is not None and child.proc.returncode is None:
            child.proc.terminate()
    for child in children:
        if child.proc is not None:
            try:
                await asyncio.wait_for(child.proc.wait(), timeout_s)
            except TimeoutError:
                child.proc.kill()
                await child.proc.wait()
