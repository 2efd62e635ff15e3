"""Real nats-servers for the bridge tests: each on a free loopback port with JetStream in tmp_path,
stopped (killed if need be) at the end of the test. Real relays come from tests/relay/conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.relay.conftest import relay  # noqa: F401 - the real-relay fixture, shared
from tickrelay.protocol.codec import Message
from tickrelay.relay.server import Relay, RelaySettings
from tickrelay.runtime import free_port
from tickrelay.transport.subscribe import Gap, Subscription


NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class NatsServer:
    """One nats-server process with JetStream storing under ``store``; restartable on the same port."""

    def __init__(self, store: Path, *, name: str = "n1", cluster_port: int | None = None,
                 routes: list[int] | None = None, config: Path | None = None) -> None:  # fmt: skip
        self.store, self.name, self.config = store, name, config
        self.port = free_port()
        self.cluster_port, self.routes = cluster_port, routes or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        cmd = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store),
               "-n", self.name]  # fmt: skip
        if self.config is not None:  # TLS, accounts and users (the flags above still win)
            cmd += ["-c", str(self.config)]
        if self.cluster_port is not None:
            routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)
            cmd += [
                "--cluster_name",
                "tr",
                "--cluster",
                f"nats://127.0.0.1:{self.cluster_port}",
                "--routes",
                routes,
            ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server did not start: {cmd}") from None
                time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    if not Path(NATS_SERVER).exists():
        pytest.skip("nats-server is not installed (./install.sh installs it)")
    server = NatsServer(tmp_path / "js")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[list[NatsServer]]:
    if not Path(NATS_SERVER).exists():
        pytest.skip("nats-server is not installed (./install.sh installs it)")
    ports = [free_port() for _ in range(3)]
    servers = [NatsServer(tmp_path / f"js{i}", name=f"n{i}", cluster_port=ports[i],
                          routes=[p for j, p in enumerate(ports) if j != i]) for i in range(3)]  # fmt: skip
    try:
        for s in servers:
            s.start()
        yield servers
    finally:
        for s in servers:
            s.stop()


class Collector:
    """A whole-stream subscriber that keeps everything it gets."""

    def __init__(self, path: Path) -> None:
        self.sub = Subscription(path, buffer_bytes=64 << 20, backoff_cap_s=0.1)
        self.items: list[Message | Gap] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for item in self.sub:
            assert not isinstance(item, bytes)
            self.items.append(item)

    @property
    def messages(self) -> list[Message]:
        return [i for i in self.items if isinstance(i, Message)]

    def has(self, raw: bytes) -> bool:
        return any(m.raw == raw for m in reversed(self.messages))

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def relays(tmp_path: Path) -> AsyncIterator[tuple[Relay, Relay]]:
    """Relay A (the near side) and relay B (the far side)."""
    a = Relay(tmp_path / "a.sock", RelaySettings(subscriber_buffer=64 << 20))
    b = Relay(tmp_path / "b.sock", RelaySettings(subscriber_buffer=64 << 20))
    await a.start()
    await b.start()
    yield a, b
    await a.stop(drain_s=0.1)
    await b.stop(drain_s=0.1)
