"""The loop every consumer process runs: subscribe to the market-data relay, hand each item to the
consumer, tick it on a timer, stop cleanly on the stop event; and its metrics endpoint. The consumers
themselves stay pure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tickrelay import metrics
from tickrelay.config import Settings
from tickrelay.metrics import EndToEnd
from tickrelay.protocol.codec import Message
from tickrelay.transport.paths import runtime_dir
from tickrelay.transport.subscribe import Gap, Subscription, SubscriptionStats


def serve_metrics(
    name: str,
    settings: Settings,
    counters: Callable[[], dict[str, Any]] = dict,
    gauges: Callable[[], dict[str, Any]] = dict,
) -> EndToEnd:
    """The consumer's end-to-end latency (one message in ``metrics.latency_sample``), served with
    ``counters()`` and ``gauges()`` as consumer ``name`` on ``metrics.port`` (0: not served)."""
    e2e = EndToEnd(settings.config.metrics.latency_sample)
    if settings.config.metrics.port:
        metrics.serve(
            name,
            settings.config.metrics.port,
            lambda: {"counters": counters(), "gauges": gauges(), "end_to_end": (name, e2e)},
            runtime_dir(os.environ.get("XDG_RUNTIME_DIR")),
        )
    return e2e


async def consume(
    path: Path,
    name: str,
    stop: asyncio.Event,
    on_item: Callable[[Message | Gap], None],
    *,
    tick: Callable[[int], None] | None = None,
    tick_s: float = 0.5,
    end_to_end: EndToEnd | None = None,
) -> SubscriptionStats:
    """Feed ``on_item`` every message and gap of a whole-stream subscription (reconnecting for ever)
    and ``tick(time.time_ns())`` every ``tick_s`` until ``stop`` is set; returns the subscription's
    counters. With ``end_to_end``, each message's latency is recorded as it is decoded."""
    subscription = Subscription(path, name=name, buffer_bytes=64 << 20)

    async def pump() -> None:
        async for item in subscription:
            assert not isinstance(item, bytes)  # not a raw subscription
            if end_to_end is not None and isinstance(item, Message):
                end_to_end.record(item.header.source, item.header.timestamp_ns)
            on_item(item)

    task = asyncio.create_task(pump())
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick_s)
        if task.done():
            await task  # it only ends by raising: surface the error
        if tick is not None:
            tick(time.time_ns())
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return subscription.stats
