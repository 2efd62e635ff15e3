"""The NATS side shared by both bridges: connecting with reconnects counted, and the JetStream streams.

nats-py reconnects by itself (``allow_reconnect``, every ``reconnect_time_wait``, for ever) and
re-subscribes; while disconnected a publish goes to its pending buffer (``pending_size``) and raises
OutboundBufferLimitError beyond it. Here the first connect is retried too, until ``stop`` is set, so a
bridge may start before its server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import NoServersError, SlowConsumerError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from tickrelay.bridge.subjects import LAST_PREFIX, PREFIX
from tickrelay.transport.backoff import backoff


STREAM = "TICKRELAY"  # every message, kept max_age (replay)
LAST_STREAM = "TICKRELAY_LAST"  # one message per subject: each instrument's current book and its meta
FLUSH_HEADER = "Tickrelay-Flush"
UPTO_HEADER = "Tickrelay-Upto"  # on a last-value book: source.stream_id.counter of the last change


@dataclasses.dataclass
class NatsStats:
    disconnects: int = 0
    reconnects: int = 0
    slow_consumer: int = 0  # nats-py dropped a message: the subscription's pending limit was reached
    errors: int = 0
    last_error: str = ""


async def connect(
    servers: list[str], name: str, stats: NatsStats, stop: asyncio.Event, *, pending_size: int = 64 << 20
) -> Client | None:
    """A connected client, or None if ``stop`` was set first."""

    async def on_disconnect() -> None:
        stats.disconnects += 1

    async def on_reconnect() -> None:
        stats.reconnects += 1

    async def on_error(exc: Exception) -> None:
        if isinstance(exc, SlowConsumerError):
            stats.slow_consumer += 1
        else:
            stats.errors += 1
        stats.last_error = f"{type(exc).__name__}: {exc}"

    options: dict[str, Any] = {
        "servers": servers, "name": name, "allow_reconnect": True, "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.2, "connect_timeout": 2, "ping_interval": 5, "max_outstanding_pings": 2,
        "pending_size": pending_size, "disconnected_cb": on_disconnect, "reconnected_cb": on_reconnect,
        "error_cb": on_error,
    }  # fmt: skip
    delays = backoff(cap_s=2.0)
    while not stop.is_set():
        try:
            client: Client = await nats.connect(**options)
            return client
        except (OSError, NoServersError, TimeoutError) as exc:
            stats.last_error = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), next(delays))
    return None


def stream_configs(max_age_s: float, replicas: int, max_bytes: int = -1) -> list[StreamConfig]:
    """The replay stream (``tickrelay.>``, ``max_age_s``) and the last-value stream (``tickrelay-last.>``,
    one message per subject), file storage, ``replicas`` copies in a cluster."""
    return [
        StreamConfig(name=STREAM, subjects=[f"{PREFIX}.>"], max_age=max_age_s, max_bytes=max_bytes,
                     storage=StorageType.FILE, discard=DiscardPolicy.OLD, num_replicas=replicas),
        StreamConfig(name=LAST_STREAM, subjects=[f"{LAST_PREFIX}.>"], max_msgs_per_subject=1,
                     storage=StorageType.FILE, discard=DiscardPolicy.OLD, num_replicas=replicas),
    ]  # fmt: skip


async def ensure_streams(js: JetStreamContext, configs: list[StreamConfig]) -> None:
    """Create the streams, or bring existing ones to ``configs``."""
    for config in configs:
        try:
            await js.add_stream(config)
        except BadRequestError:  # exists with another configuration
            await js.update_stream(config)
