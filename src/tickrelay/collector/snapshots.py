"""A collector's REST snapshot task: fetches the snapshots its venue core asks for (Binance depth),
one at a time, off the frame loop, within the venue's REST weight budget. Moved out of
``collector.run`` unchanged.

The budget (``venues.feed.RestBudget``): a leaky bucket of ``per_minute`` weight (aiolimiter), a pause
to the next minute when the venue's used-weight header says the next request would pass the budget,
Retry-After waited out after a 429, and a stop after a 418 (the IP is banned: asking more lengthens the
ban). A failed request is retried after a capped backoff; a body the core refuses (``TickrelayError``)
counts as a snapshot error and the core keeps asking; anything else out of the core is a bug, handed
to the collector's last-resort guard.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from functools import partial

import aiohttp
from aiolimiter import AsyncLimiter

from tickrelay.collector.stats import CollectorStats
from tickrelay.errors import TickrelayError
from tickrelay.transport.backoff import backoff
from tickrelay.venues.core import FeedCore
from tickrelay.venues.feed import RestBudget
from tickrelay.venues.native import NativeCore


def retry_after_s(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (delay-seconds); without a usable one, until the
    next minute starts (where per-minute weight counters start over)."""
    if value is not None and value.strip().isdigit():
        return float(value)
    return 60.0 - time.time() % 60.0


@dataclasses.dataclass
class Snapshots:
    """The REST snapshots of one collector's venue core; :meth:`run` is the side task, idle until
    ``wanted`` is set."""

    core: FeedCore | NativeCore  # the venue core: asked what it wants, given the bodies
    stats: CollectorStats  # the collector's counters (snapshots fetched, errors, REST throttling)
    base_url: str  # the venue's REST base URL (the core makes each snapshot's URL from it)
    backoff_cap_s: float  # the longest wait after failed requests
    wanted: asyncio.Event  # set by the collector after a frame when the core wants a snapshot
    publish: Callable[[Callable[[], bytes]], None]  # the collector's way to queue what a core call returns
    bug: Callable[[str, int], None]  # the collector's last-resort guard, given what failed and a time in ns
    log: logging.Logger  # the collector's logger

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        """Fetch the REST snapshots the feed asks for, one at a time, within the venue's weight budget
        (see the module docstring), until ``stop`` is set or the IP is banned."""
        feed, budget = self.core, self.core.REST_BUDGET
        if budget is None:
            return
        limiter = AsyncLimiter(budget.per_minute, 60)
        fresh = partial(backoff, initial_s=0.2, cap_s=self.backoff_cap_s, floor=0.5)  # failed requests
        failures = fresh()
        while not stop.is_set() and not self.stats.rest_banned:
            await self.wanted.wait()
            self.wanted.clear()
            for symbol in feed.wants_snapshot():
                await limiter.acquire(budget.snapshot_weight)
                pause = await self._snapshot(
                    session, feed.snapshot_url(self.base_url, symbol), symbol, budget
                )
                if pause is None:  # fetched
                    failures = fresh()
                    if self.stats.rest_used_weight + budget.snapshot_weight > budget.per_minute:
                        self.stats.rest_paused_s = retry_after_s(None)  # others on this IP used it
                        await asyncio.sleep(self.stats.rest_paused_s)
                    continue
                if self.stats.rest_banned:
                    return
                self.wanted.set()  # ask again, after the pause
                await asyncio.sleep(pause if pause > 0 else next(failures))
                break

    async def _snapshot(
        self, session: aiohttp.ClientSession, url: str, symbol: str, budget: RestBudget
    ) -> float | None:
        """One snapshot request; None when it was given to the feed, else the seconds to wait before
        the next one (0: the failures' backoff decides)."""
        body = await self._fetch(session, url, symbol, budget)
        if not isinstance(body, bytes):
            return body
        try:
            self.publish(partial(self.core.on_snapshot, symbol, body, time.time_ns()))
        except TickrelayError as exc:  # not a usable snapshot: the feed keeps asking
            self._failed(symbol, exc)
            return 0.0
        except Exception:  # the last-resort guard, as for frames: anything else out of the core is a bug
            self.bug(f"snapshot {symbol} {body[:200]!r}", time.time_ns())
            return 0.0
        self.stats.snapshots_fetched += 1
        return None

    async def _fetch(
        self, session: aiohttp.ClientSession, url: str, symbol: str, budget: RestBudget
    ) -> bytes | float:
        """One REST request: its body, or the seconds to wait before the next (0: the failures'
        backoff decides)."""
        stats = self.stats
        try:
            async with session.get(url) as r:
                body = await r.read()
                used = r.headers.get(budget.used_header, "")
                if used.isdigit():
                    stats.rest_used_weight = int(used)
                if r.status in (418, 429):
                    stats.snapshot_errors += 1
                    wait = retry_after_s(r.headers.get("Retry-After"))
                    if r.status == 429:
                        stats.rest_throttled += 1
                        stats.last_error = f"snapshot {symbol}: HTTP 429, waiting {wait:g} s (Retry-After)"
                        return wait
                    stats.rest_banned = True
                    stats.last_error = (
                        f"snapshot {symbol}: HTTP 418, this IP is banned for {wait:g} s: no more REST "
                        "snapshots from this process, its books stay dark"
                    )
                    self.log.error("%s", stats.last_error)
                    return wait
                r.raise_for_status()
                return body
        except (aiohttp.ClientError, OSError) as exc:
            self._failed(symbol, exc)
            return 0.0

    def _failed(self, symbol: str, exc: Exception) -> None:
        self.stats.snapshot_errors += 1
        self.stats.last_error = f"snapshot {symbol}: {exc}"
