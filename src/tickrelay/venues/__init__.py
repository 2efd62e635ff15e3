"""Venue adapters. Pure: no I/O. One module per venue; ``VENUES`` is the explicit registry.

Each entry is a feed class implementing :class:`tickrelay.venues.feed.VenueFeed`; the collector and
``tickrelay normalize`` construct one per connection (or recording) with no arguments.
"""

from __future__ import annotations

from collections.abc import Callable

from tickrelay.venues.binance import BinanceFeed
from tickrelay.venues.coinbase import CoinbaseFeed
from tickrelay.venues.feed import VenueFeed
from tickrelay.venues.kraken import KrakenFeed


# Written out literally on purpose: mypy checks each class against VenueFeed (PEP 544).
VENUES: dict[str, Callable[[], VenueFeed]] = {
    "binance": BinanceFeed,
    "coinbase": CoinbaseFeed,
    "kraken": KrakenFeed,
}
