"""Kraken spot WebSocket, v1 and v2 frames on one feed: trades, quotes, checksum-verified books. Pure.

One module per job: ``kraken_v1`` (v1 arrays and event objects: decode and apply), ``kraken_v2`` (v2
channel messages and instrument precisions), ``kraken_book`` (pairs, books, checksum texts, the CRC32
check and resubscriptions, shared by both). This module is the feed: it tells a frame's API by its
shape (an array is v1, an object with ``channel`` is v2, any other object an event or a method
answer) and implements the ``VenueFeed`` contract. Every frame is decoded into typed structs, then
every number, time and checksum text is read before the book or its texts change, so a rejected frame
(``bad_<channel>``) leaves the feed as it was. Symbols: XBT/USD -> BTC/USD.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from tickrelay.config import Config
from tickrelay.errors import FixedPointError, SymbolError
from tickrelay.protocol.messages import Event
from tickrelay.venues.feed import NativeSpec, NoSnapshots, Reject, VenueFeed, decode
from tickrelay.venues.kraken_book import NAME, VENUE
from tickrelay.venues.kraken_v1 import OBJECT, KrakenV1, Object, V1Data, decode_v1
from tickrelay.venues.kraken_v2 import KrakenV2, V2Data, decode_v2


URL = "wss://ws.kraken.com"
URL_V2 = "wss://ws.kraken.com/v2"


def decode_frame(raw: bytes) -> V1Data | V2Data | Object | Reject:
    """One frame -> a typed v1 channel message, a typed v2 channel message, an event object, or why it
    is rejected. Pure."""
    if raw[:1] == b"[":
        return decode_v1(raw)
    obj = decode(OBJECT, raw)
    if obj is None or isinstance(obj, Reject):
        return obj or Reject("invalid_json")
    return obj if obj.channel is None else decode_v2(obj)


class KrakenFeed(KrakenV1, KrakenV2, NoSnapshots):
    """One Kraken connection's parsing state, v1 and v2 frames alike (implements ``VenueFeed``)."""

    NAME: ClassVar[str] = NAME
    VENUE_ID: ClassVar[int] = VENUE

    @classmethod
    def from_settings(cls, config: Config) -> VenueFeed:
        kraken = config.kraken
        return cls(
            list(kraken.pairs),
            depth=kraken.depth,
            version=2 if kraken.api == "v2" else 1,
            checksum_policy=kraken.checksum_policy,
        )

    @staticmethod
    def url(config: Config) -> str:
        """v1 is served at the base URL, v2 below it (https://docs.kraken.com/api/docs/websocket-v2/)."""
        base = config.kraken.ws_url
        return f"{base.rstrip('/')}/v2" if config.kraken.api == "v2" else base

    def native_spec(self) -> NativeSpec | None:
        """``native/core/src/venues/kraken.rs`` reads v1 and v2 frames alike, as this feed does; the API
        names only the subscriptions, which stay here. Precisions as ``"<price> <qty> <symbol>"``."""
        precisions = [f"{price} {qty} {symbol}" for symbol, (price, qty) in self._precisions.items()]
        params: dict[str, object] = {"depth": self.depth, "checksum_policy": self.checksum_policy}
        return f"kraken_v{self.version}", params | {"precisions": precisions}

    def subscribe_messages(self) -> list[bytes]:
        if not self.pairs:
            return []
        pairs = list(self.pairs)
        if self.version == 2:
            return [
                msgspec.json.encode({"method": "subscribe", "params": {"channel": "instrument"}}),
                *(self._v2_request("subscribe", ch, pairs) for ch in ("trade", "ticker", "book")),
            ]
        return [self._v1_request("subscribe", name, pairs) for name in ("trade", "ticker", "book")]

    def on_frame(self, raw: bytes, ts_recv_ns: int) -> list[Event]:
        self.stats.frames += 1
        frame = decode_frame(raw)
        if type(frame) is Reject:
            self.stats.reject(frame.reason, raw)
            return []
        out: list[Event] = []
        try:
            if type(frame) is V1Data:
                self._v1(frame, raw, out)
            elif type(frame) is V2Data:
                self._v2(frame, raw, out)
            else:
                self._event(frame, raw)  # type: ignore[arg-type]
        except (FixedPointError, SymbolError, ValueError):  # read before any change: nothing to undo
            self._fixed.discard()
            kind = frame.kind if type(frame) is V1Data else getattr(frame, "channel", None) or "event"
            self.stats.reject(f"bad_{kind}", raw)
            return []
        self._fixed.commit(self.stats)
        self.stats.count(out)
        return out
