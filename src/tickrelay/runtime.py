"""Process plumbing shared by the commands: the event loop, stop signals, a closed stdout, and dying
with the supervising parent."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import select
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, MutableMapping, Sequence
from typing import Any, TypeVar

from tickrelay.errors import ConfigError


T = TypeVar("T")
PARENT_PID_ENV = "TICKRELAY_PARENT_PID"  # set by a supervisor (`up`) for its children only
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def run(main: Callable[[asyncio.Event], Coroutine[Any, Any, T]]) -> T:
    """Run ``main(stop)`` on uvloop (asyncio's loop if uvloop is missing); SIGINT, SIGTERM and SIGHUP
    (unless ignored, as under ``nohup``) set ``stop``."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency; this keeps odd platforms working
        runner = asyncio.Runner()

    async def wrapper() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    # What start-up made (modules, config) moves to the permanent generation, so full collections
    # walk only what the process made since: a collector starts with 40k objects, whose full collection
    # pauses it for about 10 ms (a frame arriving then waits as long).
    gc.freeze()
    with runner:
        return runner.run(wrapper())


def spin(stop: asyncio.Event) -> None:
    """Keep the running event loop from sleeping until ``stop`` is set (``collector.idle = spin``): a
    callback that schedules itself again every turn makes each turn poll its sockets with a zero
    timeout. A frame then finds the process running, its caches warm, instead of asleep in epoll and
    woken by the kernel. The price is the whole CPU it runs on."""
    loop = asyncio.get_running_loop()

    def turn() -> None:
        if not stop.is_set():
            loop.call_soon(turn)

    loop.call_soon(turn)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick), for a child to bind."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent(environ: MutableMapping[str, str]) -> bool:
    """In a child started by a supervisor (``PARENT_PID_ENV`` set): ask Linux for SIGTERM when the
    parent dies, however it dies (``kill -9`` included), so no child outlives it. The variable is
    removed, so this process's own children do not inherit it. Returns False if the parent is already
    gone (the caller exits at once)."""
    parent = environ.pop(PARENT_PID_ENV, "")
    if not parent:
        return True
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    return os.getppid() == int(parent)  # the parent may have died before the prctl


def stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has left (a ``BrokenPipeError`` may also come from a socket)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # no real stdout (closed, or replaced by an object without a fd)
        return False


def silence_stdout() -> None:
    """After a ``BrokenPipeError`` on stdout (the reader left, as ``| head`` does): point stdout at
    /dev/null, so the interpreter's final flush does not fail a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def pin(cpus: Sequence[str], key: str) -> None:
    """Run this process only on ``cpus`` (the items of the setting ``key``: CPU ids and ranges, as
    ``taskset -c``); nothing when it is empty. Raises ConfigError naming the key for a range that runs
    backwards, a CPU the machine does not have, or CPUs this process may not use (a cpuset)."""
    if not cpus:
        return
    count = os.cpu_count() or 1
    chosen: set[int] = set()
    for item in cpus:
        low, _, high = item.partition("-")
        first, last = int(low), int(high or low)
        if first > last:
            raise ConfigError(f"`{key}`: the range {item} runs backwards")
        if last >= count:  # before the range is built: 0-99999999 is a typo, not a set to make
            raise ConfigError(f"`{key}`: {item} names a CPU this machine does not have (0-{count - 1})")
        chosen.update(range(first, last + 1))
    try:
        os.sched_setaffinity(0, chosen)
    except OSError as exc:
        raise ConfigError(f"`{key}`: cannot run on CPU {','.join(cpus)}: {exc.strerror}") from None
    if (got := os.sched_getaffinity(0)) != chosen:  # Linux keeps only the CPUs a cpuset allows
        left = ",".join(str(c) for c in sorted(chosen - got))
        raise ConfigError(f"`{key}`: CPU {left} is not one this process may run on")
