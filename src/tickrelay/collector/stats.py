"""A collector's own counters (the feed's are ``venues.feed.FeedStats``), shared by its connection
loop (``collector.run``) and its REST snapshot task (``collector.snapshots``)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class CollectorStats:
    connects: int = 0
    reconnects: int = 0
    reconnect_delay_s: float = 0.0  # the last wait before reconnecting (grows to the cap while failing)
    stale_events: int = 0
    bugs: int = 0  # exceptions out of the venue core: counted, logged once, books invalidated
    snapshots_fetched: int = 0
    snapshot_errors: int = 0
    rest_throttled: int = 0  # REST answers 429 (too much weight): waited out their Retry-After
    rest_banned: bool = False  # a REST answer 418 (IP banned): no more snapshots from this process
    rest_used_weight: int = 0  # the venue's count of this IP's weight this minute, last seen
    rest_paused_s: float = 0.0  # the last wait for the next minute's budget (the used weight was near it)
    requests_sent: int = 0  # frames the feed asked to send (unsubscribe, subscribe)
    last_error: str = ""
