"""Kraken WebSocket v1: arrays and event objects, decoded and applied. Pure: no I/O.

Docs: https://docs.kraken.com/api/docs/websocket-v1/book. Frames are arrays ``[channelID, payload,
(payload,) channelName, pair]`` or event objects:

* ``trade`` -> one Trade per trade of the batch. ``side`` "b"/"s" is the taker's side; ``time``
  "seconds.micros" becomes integer ns from its text.
* ``ticker`` -> Quote from ``b``/``a`` (price, lot volume); quote_ts_ns = 0 (the ticker has no time).
  ``spread`` -> Quote with its own time.
* ``book-N``: snapshot ``as``/``bs`` -> L2Snapshot; updates ``a``/``b`` (one or two payload objects,
  republish entries marked "r") -> one L2Delta per message (no exchange sequence: 0), checksum ``c``.
* events: ``heartbeat``, ``systemStatus``, ``subscriptionStatus`` (learns channelID -> pair), ``pong``:
  ignored (counted); an error status is rejected and counted in ``stats.venue_errors``. Object frames
  are decoded once as ``Object``, which also carries v2's ``channel`` messages and ``method`` answers.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tickrelay.protocol.messages import Event, Quote, Side, Trade
from tickrelay.venues.feed import SPOT, Reject, decode
from tickrelay.venues.kraken_book import VENUE, KrakenBooks
from tickrelay.venues.numbers import seconds_text_to_ns


_BUY, _SELL = int(Side.BUY), int(Side.SELL)


class _V1Book(msgspec.Struct):
    snap_asks: list[list[str]] | None = msgspec.field(default=None, name="as")  # [price, volume, time(, "r")]
    snap_bids: list[list[str]] | None = msgspec.field(default=None, name="bs")
    a: list[list[str]] = []
    b: list[list[str]] = []
    c: str | None = None  # CRC32 of the top 10 levels after this update


class _V1Ticker(msgspec.Struct):
    a: tuple[str, msgspec.Raw, str]  # ask price, whole lot volume (not read: validated JSON), lot volume
    b: tuple[str, msgspec.Raw, str]


class Object(msgspec.Struct):
    """Any object frame: a v1 event, a v2 method answer, or a v2 channel message."""

    event: str | None = None
    status: str | None = None
    channelID: int | None = None
    pair: str | None = None
    errorMessage: str | None = None
    method: str | None = None
    success: bool | None = None
    channel: str | None = None  # v2
    type: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class V1Data(msgspec.Struct):
    """A v1 channel message, its payload typed by kind (trade, ticker, spread, book)."""

    kind: str
    name: str
    pair: str
    payload: Any  # list[list[str]] (trade, spread: list[str]), _V1Ticker, or list[_V1Book]


_V1_FRAME = msgspec.json.Decoder(list[msgspec.Raw])
_STR = msgspec.json.Decoder(str)
OBJECT = msgspec.json.Decoder(Object)
_V1_PAYLOAD: dict[str, msgspec.json.Decoder[Any]] = {
    "trade": msgspec.json.Decoder(list[list[str]]),
    "ticker": msgspec.json.Decoder(_V1Ticker),
    "spread": msgspec.json.Decoder(list[str]),
    "book": msgspec.json.Decoder(_V1Book),
}
_V1_WHOLE: dict[str, msgspec.json.Decoder[Any]] = {  # the usual frame, [channelID, payload, name, pair]
    "trade": msgspec.json.Decoder(tuple[int, list[list[str]], str, str]),
    "ticker": msgspec.json.Decoder(tuple[int, _V1Ticker, str, str]),
    "spread": msgspec.json.Decoder(tuple[int, list[str], str, str]),
    "book": msgspec.json.Decoder(tuple[int, _V1Book, str, str]),
}


def decode_v1(raw: bytes) -> V1Data | Reject:
    """One v1 array frame -> its typed message, or why it is rejected. Pure."""
    tail = raw[-48:].rsplit(b'"', 4)  # ..., name, ",", pair, "]"
    name_tail = tail[1] if len(tail) == 5 else b""
    kind = "book" if name_tail.startswith(b"book-") else name_tail.decode("ascii", "replace")
    whole = _V1_WHOLE.get(kind)
    if whole is not None:
        frame = decode(whole, raw)  # one typed pass; None: another shape, read part by part below
        if isinstance(frame, Reject):
            return frame
        if frame is not None:  # its payload has the schema of the kind: applied by kind
            _, payload, name, pair = frame
            return V1Data(kind, name, pair, [payload] if kind == "book" else payload)
    parts = decode(_V1_FRAME, raw)
    if parts is None or isinstance(parts, Reject):
        return parts or Reject("invalid_json")
    if len(parts) < 4:
        return Reject("bad_frame")
    name, pair = decode(_STR, parts[-2]), decode(_STR, parts[-1])
    if not isinstance(name, str) or not isinstance(pair, str):
        return Reject("bad_frame")
    kind = "book" if name.startswith("book-") else name
    decoder = _V1_PAYLOAD.get(kind)
    if decoder is None:
        return Reject(f"unknown_channel:{name}")
    payloads = [decode(decoder, part) for part in parts[1:-2]]
    if kind != "book" and len(payloads) != 1:
        return Reject(f"bad_{kind}")
    for payload in payloads:
        if payload is None or isinstance(payload, Reject):
            return payload or Reject(f"bad_{kind}")
    return V1Data(kind, name, pair, payloads if kind == "book" else payloads[0])


class KrakenV1(KrakenBooks):
    """The v1 messages of a Kraken connection."""

    def _event(self, event: Object, raw: bytes) -> None:
        kind = event.event
        if kind is None and event.method is not None:  # a v2 method acknowledgement
            if event.success is False:
                self.stats.venue_errors += 1
                self.stats.reject("venue_error", raw)
            else:
                self.stats.ignored[f"method:{event.method}"] += 1
        elif kind in ("heartbeat", "systemStatus", "pong", "subscriptionStatus"):
            if event.status == "error" or event.errorMessage:
                self.stats.venue_errors += 1
                self.stats.reject("venue_error", raw)
                return
            if kind == "subscriptionStatus" and event.status == "subscribed":
                if event.channelID is None or event.pair is None:
                    raise ValueError("subscriptionStatus without channelID or pair")
                self._channels[event.channelID] = event.pair
            self.stats.ignored[kind] += 1
        elif kind == "error":
            self.stats.venue_errors += 1
            self.stats.reject("venue_error", raw)
        else:
            self.stats.reject(f"unknown:{kind}", raw)

    def _v1(self, m: V1Data, raw: bytes, out: list[Event]) -> None:
        fixed = self._fixed
        kind = m.kind
        if kind == "trade":
            trades = []
            for entry in m.payload:
                if len(entry) < 4 or entry[3] not in ("b", "s"):
                    raise ValueError("a trade is [price, volume, time, side, ...]")
                price, volume, when, side = entry[:4]
                trades.append((fixed.positive(price), fixed.positive(volume), seconds_text_to_ns(when), side))
            p = self._keep(self._lookup(m.pair))
            for (price_v, volume_v, when_ns, side), entry in zip(trades, m.payload, strict=True):
                p.announce(VENUE, entry[0], entry[1], out)
                out.append(
                    Trade(p.asset_id, price_v, volume_v, when_ns, VENUE, SPOT, _BUY if side == "b" else _SELL)
                )
        elif kind == "ticker":
            a, b = m.payload.a, m.payload.b
            ticker = (fixed(b[0]), fixed(b[2]), fixed(a[0]), fixed(a[2]))
            p = self._keep(self._lookup(m.pair))
            p.announce(VENUE, b[0], b[2], out)
            out.append(Quote(p.asset_id, *ticker, 0, VENUE, SPOT))
        elif kind == "spread":
            if len(m.payload) < 5:
                raise ValueError("a spread is [bid, ask, time, bid volume, ask volume]")
            bid, ask, when, bid_vol, ask_vol = m.payload[:5]
            spread = (fixed(bid), fixed(bid_vol), fixed(ask), fixed(ask_vol), seconds_text_to_ns(when))
            p = self._keep(self._lookup(m.pair))
            p.announce(VENUE, bid, bid_vol, out)
            out.append(Quote(p.asset_id, *spread, VENUE, SPOT))
        else:
            self._v1_book(m, raw, out)

    def _v1_book(self, m: V1Data, raw: bytes, out: list[Event]) -> None:
        depth_text = m.name[5:]
        digits = depth_text.isdigit() and depth_text.isascii()  # "book-١٠" is no channel
        if not m.name.startswith("book-") or not digits or len(depth_text) > 4:
            raise ValueError(f"book channel {m.name!r}")
        parts: list[_V1Book] = m.payload
        first = parts[0]
        if first.snap_asks is not None or first.snap_bids is not None:
            asks, bids = first.snap_asks or [], first.snap_bids or []
            lead = (asks or bids or [[]])[0]
            p = self._lookup(m.pair)
            read = self._read(p, bids), self._read(p, asks)
            p = self._keep(p)
            p.book.depth = int(depth_text)  # the subscribed depth names the channel: keep exactly that many
            p.v2 = False
            p.announce(VENUE, lead[0] if lead else None, lead[1] if len(lead) > 1 else None, out)
            self._load(p, *read, out)
            return
        known = self._pairs.get(m.pair)
        if known is None or not known.live:
            self.stats.reject("book_update_before_snapshot", raw)
            return
        bids, asks, checksum = [], [], None
        for part in parts:
            bids += part.b
            asks += part.a
            checksum = part.c if part.c is not None else checksum
        if checksum is not None and (not checksum.isdigit() or not checksum.isascii() or len(checksum) > 20):
            raise ValueError(f"checksum {checksum[:20]!r}")
        read = self._read(known, bids), self._read(known, asks)
        known.book.depth = int(depth_text)
        self._update(known, *read, None if checksum is None else int(checksum), 0, raw, out)
