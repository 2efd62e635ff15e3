"""Venue adapters. Pure: no I/O. One module per venue; ``VENUES`` is the explicit registry.

Each entry is a feed class implementing :class:`tickrelay.venues.feed.VenueFeed`: ``tickrelay normalize``
constructs one per recording with no arguments, the collector one per connection with
``from_settings(settings)`` and its ``url(settings)``. Nothing outside ``venues/`` names a venue class.
"""

from __future__ import annotations

from tickrelay.venues.binance import BinanceFeed
from tickrelay.venues.coinbase import CoinbaseFeed
from tickrelay.venues.feed import VenueFeed
from tickrelay.venues.kraken import KrakenFeed


# Written out literally on purpose: mypy checks each class against VenueFeed (PEP 544).
VENUES: dict[str, type[VenueFeed]] = {
    "binance": BinanceFeed,
    "coinbase": CoinbaseFeed,
    "kraken": KrakenFeed,
}
