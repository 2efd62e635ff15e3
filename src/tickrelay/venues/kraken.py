"""Kraken spot WebSocket v1 and v2: trades, quotes and checksum-verified books. Pure: no I/O.

Docs: https://docs.kraken.com/api/docs/websocket-v1/book (v1 arrays and the book checksum) and
https://docs.kraken.com/api/docs/websocket-v2/book (v2 objects, instrument precisions).

v1 frames are arrays ``[channelID, payload, (payload,) channelName, pair]`` or event objects:

* ``trade`` -> one Trade per trade of the batch. ``side`` "b"/"s" is the taker's side; ``time``
  "seconds.micros" becomes integer ns from its text.
* ``ticker`` -> Quote from ``b``/``a`` (price, lot volume); quote_ts_ns = 0 (the ticker has no time).
  ``spread`` -> Quote with its own time.
* ``book-N``: snapshot ``as``/``bs`` -> L2Snapshot; updates ``a``/``b`` (one or two payload objects,
  republish entries marked "r") -> one L2Delta per message (no exchange sequence: 0). The book keeps the
  subscribed depth, and the CRC32 ``c`` is verified after every update: the top 10 asks (ascending)
  then bids (descending), each price and volume text without its "." and leading zeros.
* events: ``heartbeat``, ``systemStatus``, ``subscriptionStatus`` (learns channelID -> pair), ``pong``:
  ignored (counted); an error status is rejected and counted in ``stats.venue_errors``.

v2 frames are objects with ``channel``: ``book`` (snapshot/update with ``checksum``; numbers are JSON
numbers whose text is kept, never a float), ``trade``, ``ticker``, ``instrument`` (price/qty precisions,
which the v2 checksum formats with), ``heartbeat``, ``status``; ``method`` acks are ignored, failed ones
rejected. Without the instrument's precisions a v2 checksum cannot be rebuilt: it is counted in
``unverified_checksums`` instead.

A frame is decoded into typed structs (``decode_frame``), then every number, time and checksum text is
read before the book or its texts change, so a rejected frame (``bad_<channel>``) leaves the feed as it
was. A checksum mismatch publishes StateInvalidation(CHECKSUM_MISMATCH) + L2Reset for that pair only;
with policy "resync" the book stays dark and ``take_requests`` unsubscribes and subscribes that pair's
book again (in the API its frames came in); with "ignore" it is counted and the book goes on.
Symbols: XBT/USD -> BTC/USD.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import msgspec

from tickrelay.errors import FixedPointError, SymbolError, VenueMessageError
from tickrelay.protocol.fixed import format_fixed8
from tickrelay.protocol.messages import (
    Event,
    L2Delta,
    Level,
    Quote,
    Reason,
    Side,
    StateInvalidation,
    Trade,
    split_snapshot,
)
from tickrelay.protocol.symbols import VenueId, normalize_pair
from tickrelay.venues.feed import (
    SPOT,
    FeedStats,
    Instrument,
    NoSnapshots,
    Reject,
    VenueFeed,
    decode,
    disconnect,
    invalidate,
)
from tickrelay.venues.numbers import DecimalCache, parse_time_ns, seconds_text_to_ns


NAME = "kraken"
URL = "wss://ws.kraken.com"
URL_V2 = "wss://ws.kraken.com/v2"
_VENUE = int(VenueId.KRAKEN)
_CHECKED_LEVELS = 10
_BUY, _SELL = int(Side.BUY), int(Side.SELL)


# ---- wire schema ----------------------------------------------------------------------------------


class _V1Book(msgspec.Struct):
    snap_asks: list[list[str]] | None = msgspec.field(default=None, name="as")  # [price, volume, time(, "r")]
    snap_bids: list[list[str]] | None = msgspec.field(default=None, name="bs")
    a: list[list[str]] = []
    b: list[list[str]] = []
    c: str | None = None  # CRC32 of the top 10 levels after this update


class _V1Ticker(msgspec.Struct):
    a: tuple[str, Any, str]  # ask price, whole lot volume, lot volume
    b: tuple[str, Any, str]


class _Object(msgspec.Struct):
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


class _V2Level(msgspec.Struct):
    price: msgspec.Raw  # JSON number: its text is kept
    qty: msgspec.Raw


class _V2Book(msgspec.Struct):
    symbol: str
    bids: list[_V2Level] = []
    asks: list[_V2Level] = []
    checksum: int | None = None
    timestamp: str | None = None


class _V2Trade(msgspec.Struct):
    symbol: str
    side: str  # the taker's side: "buy" / "sell"
    price: msgspec.Raw
    qty: msgspec.Raw
    timestamp: str


class _V2Ticker(msgspec.Struct):
    symbol: str
    bid: msgspec.Raw
    bid_qty: msgspec.Raw
    ask: msgspec.Raw
    ask_qty: msgspec.Raw
    timestamp: str | None = None


class _V2Pair(msgspec.Struct):
    symbol: str
    price_precision: int
    qty_precision: int


class _V2Instruments(msgspec.Struct):
    pairs: list[_V2Pair] = []


class V1Data(msgspec.Struct):
    """A v1 channel message, its payload typed by kind (trade, ticker, spread, book)."""

    kind: str
    name: str
    pair: str
    payload: Any  # list[list[str]] (trade, spread: list[str]), _V1Ticker, or list[_V1Book]


class V2Data(msgspec.Struct):
    channel: str
    type: str
    data: Any  # list[_V2Book] | list[_V2Trade] | list[_V2Ticker] | _V2Instruments | None


_V1_FRAME = msgspec.json.Decoder(list[msgspec.Raw])
_STR = msgspec.json.Decoder(str)
_OBJECT = msgspec.json.Decoder(_Object)
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
_V2_DATA: dict[str, msgspec.json.Decoder[Any]] = {
    "book": msgspec.json.Decoder(list[_V2Book]),
    "trade": msgspec.json.Decoder(list[_V2Trade]),
    "ticker": msgspec.json.Decoder(list[_V2Ticker]),
    "instrument": msgspec.json.Decoder(_V2Instruments),
}


def decode_frame(raw: bytes) -> V1Data | V2Data | _Object | Reject:
    """One frame -> a typed v1 channel message, a typed v2 channel message, an event object, or why it
    is rejected. Pure."""
    if raw[:1] == b"[":
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
    obj = decode(_OBJECT, raw)
    if obj is None or isinstance(obj, Reject):
        return obj or Reject("invalid_json")
    if obj.channel is None:
        return obj
    decoder = _V2_DATA.get(obj.channel)
    if decoder is None:
        return V2Data(obj.channel, obj.type, None)
    data = decode(decoder, obj.data)
    if data is None or isinstance(data, Reject):
        return data or Reject(f"bad_{obj.channel}")
    return V2Data(obj.channel, obj.type, data)


def _digits(text: str) -> str:
    """A level's checksum field: its text without "." and leading zeros."""
    return text.replace(".", "").lstrip("0")


def _text(raw: msgspec.Raw) -> str:
    return bytes(raw).decode()


class _Pair(Instrument):
    __slots__ = ("ask_text", "bid_text", "precision", "v2")

    def __init__(self, pair: str, depth: int) -> None:
        base, _, quote = pair.partition("/")
        super().__init__(pair, normalize_pair(base, quote), depth)
        # price -> checksum digits of price and size, for exactly the levels in the book
        self.bid_text: dict[int, str] = {}
        self.ask_text: dict[int, str] = {}
        self.precision: tuple[int, int] | None = None  # v2: (price, qty) decimals from `instrument`
        self.v2 = False  # its book came over v2 (resubscribe there)

    def drop(self) -> None:
        super().drop()
        self.bid_text.clear()
        self.ask_text.clear()

    def truncate(self) -> tuple[list[int], list[int]]:
        """Keep the subscribed depth, in the book and its checksum texts; returns the prices dropped."""
        gone = self.book.truncate()
        for texts, prices in ((self.bid_text, gone[0]), (self.ask_text, gone[1])):
            for price in prices:
                del texts[price]
        return gone


_Read = list[tuple[int, int, str]]  # (price, size, checksum text) per level, read before any change


class KrakenFeed(NoSnapshots):
    """One Kraken connection's parsing state (implements ``VenueFeed``).

    Args:
        pairs: venue pairs (``XBT/USD`` for v1, ``BTC/USD`` for v2) for :meth:`subscribe_messages`.
        depth: book depth subscribed and kept (10, 25, 100, 500 or 1000).
        version: 1 or 2, for the subscribe messages; parsing accepts both.
        checksum_policy: "resync" (dark book and resubscribe on a mismatch) or "ignore" (count only).
    """

    NAME: ClassVar[str] = NAME
    VENUE_ID: ClassVar[int] = _VENUE

    def __init__(
        self, pairs: Sequence[str] = (), depth: int = 10, version: int = 1, checksum_policy: str = "resync"
    ) -> None:
        if checksum_policy not in ("resync", "ignore"):
            raise ValueError(f"checksum_policy must be 'resync' or 'ignore', not {checksum_policy!r}")
        self.pairs = tuple(pairs)
        self.depth = depth
        self.version = version
        self.checksum_policy = checksum_policy
        self.stats = FeedStats()
        self.unverified_checksums = 0
        self._channels: dict[int, str] = {}  # v1 channelID -> pair
        self._pairs: dict[str, _Pair] = {}
        self._requests: list[bytes] = []
        self._precisions: dict[str, tuple[int, int]] = {}  # v2 instrument precisions by symbol
        self._fixed = DecimalCache()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> VenueFeed:
        return cls(
            settings["kraken.pairs"],
            depth=settings["kraken.depth"],
            checksum_policy=settings["kraken.checksum_policy"],
        )

    @staticmethod
    def url(settings: Mapping[str, Any]) -> str:
        return str(settings["kraken.ws_url"])

    # ---- VenueFeed ----------------------------------------------------------------------------

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
            self._fixed.rounded = 0
            kind = frame.kind if type(frame) is V1Data else getattr(frame, "channel", None) or "event"
            self.stats.reject(f"bad_{kind}", raw)
            return []
        self.stats.rounded += self._fixed.rounded
        self._fixed.rounded = 0
        self.stats.count(out)
        return out

    def on_disconnect(self, ts_ns: int) -> list[Event]:
        self._channels.clear()
        self._requests.clear()
        return disconnect(_VENUE, list(self._pairs.values()))

    def load_instruments(self, body: bytes) -> None:
        """Precisions from a v2 ``instrument`` channel message (also taken from the live feed).

        Raises:
            VenueMessageError: ``body`` is not an instrument message.
        """
        frame = decode_frame(body)
        if not isinstance(frame, V2Data) or not isinstance(frame.data, _V2Instruments):
            raise VenueMessageError(NAME, body, "not a v2 instrument message")
        self._take_instruments(frame.data)

    def take_requests(self) -> list[bytes]:
        requests, self._requests = self._requests, []
        return requests

    # ---- v1 ---------------------------------------------------------------------------------------

    def _event(self, event: _Object, raw: bytes) -> None:
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
                p.announce(_VENUE, entry[0], entry[1], out)
                out.append(
                    Trade(
                        p.asset_id, price_v, volume_v, when_ns, _VENUE, SPOT, _BUY if side == "b" else _SELL
                    )
                )
        elif kind == "ticker":
            a, b = m.payload.a, m.payload.b
            ticker = (fixed(b[0]), fixed(b[2]), fixed(a[0]), fixed(a[2]))
            p = self._keep(self._lookup(m.pair))
            p.announce(_VENUE, b[0], b[2], out)
            out.append(Quote(p.asset_id, *ticker, 0, _VENUE, SPOT))
        elif kind == "spread":
            if len(m.payload) < 5:
                raise ValueError("a spread is [bid, ask, time, bid volume, ask volume]")
            bid, ask, when, bid_vol, ask_vol = m.payload[:5]
            spread = (fixed(bid), fixed(bid_vol), fixed(ask), fixed(ask_vol), seconds_text_to_ns(when))
            p = self._keep(self._lookup(m.pair))
            p.announce(_VENUE, bid, bid_vol, out)
            out.append(Quote(p.asset_id, *spread, _VENUE, SPOT))
        else:
            self._v1_book(m, raw, out)

    def _v1_book(self, m: V1Data, raw: bytes, out: list[Event]) -> None:
        depth_text = m.name[5:]
        if not m.name.startswith("book-") or not depth_text.isdigit() or len(depth_text) > 4:
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
            p.announce(_VENUE, lead[0] if lead else None, lead[1] if len(lead) > 1 else None, out)
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
        if checksum is not None and (not checksum.isdigit() or len(checksum) > 20):
            raise ValueError(f"checksum {checksum[:20]!r}")
        read = self._read(known, bids), self._read(known, asks)
        known.book.depth = int(depth_text)
        self._update(known, *read, None if checksum is None else int(checksum), 0, raw, out)

    # ---- v2 ---------------------------------------------------------------------------------------

    def _v2(self, m: V2Data, raw: bytes, out: list[Event]) -> None:
        fixed = self._fixed
        channel = m.channel
        if channel == "book":
            books = []
            for book in m.data:  # every book of the frame read before any changes
                p = self._lookup(book.symbol) if m.type == "snapshot" else self._pairs.get(book.symbol)
                if p is None or not (p.live or m.type == "snapshot"):
                    self.stats.reject("book_update_before_snapshot", raw)
                    return
                bids = [[_text(lv.price), _text(lv.qty)] for lv in book.bids]
                asks = [[_text(lv.price), _text(lv.qty)] for lv in book.asks]
                ts = parse_time_ns(book.timestamp) if book.timestamp else 0
                books.append(
                    (p, book, self._read(p, bids), self._read(p, asks), ts, (bids or asks or [[]])[0])
                )
            for p, book, read_bids, read_asks, ts, lead in books:
                if m.type == "snapshot":
                    p = self._keep(p)
                    p.v2 = True
                    p.announce(_VENUE, lead[0] if lead else None, lead[1] if lead else None, out, p.precision)
                    self._load(p, read_bids, read_asks, out)
                    self._check(p, book.checksum, raw, out)
                else:
                    self._update(p, read_bids, read_asks, book.checksum, ts, raw, out)
        elif channel == "trade":
            for t in m.data:
                if t.side not in ("buy", "sell"):
                    raise ValueError(f"trade side {t.side!r}")
            trades = [
                (fixed.positive(_text(t.price)), fixed.positive(_text(t.qty)), parse_time_ns(t.timestamp))
                for t in m.data
            ]
            pairs = [self._lookup(t.symbol) for t in m.data]
            for t, values, found in zip(m.data, trades, pairs, strict=True):
                p = self._keep(found)
                p.announce(_VENUE, _text(t.price), _text(t.qty), out, p.precision)
                out.append(Trade(p.asset_id, *values, _VENUE, SPOT, _BUY if t.side == "buy" else _SELL))
        elif channel == "ticker":
            quotes = [
                (
                    fixed(_text(tk.bid)),
                    fixed(_text(tk.bid_qty)),
                    fixed(_text(tk.ask)),
                    fixed(_text(tk.ask_qty)),
                    parse_time_ns(tk.timestamp) if tk.timestamp else 0,
                )
                for tk in m.data
            ]
            pairs = [self._lookup(tk.symbol) for tk in m.data]
            for tk, quote, found in zip(m.data, quotes, pairs, strict=True):
                p = self._keep(found)
                p.announce(_VENUE, _text(tk.bid), _text(tk.bid_qty), out, p.precision)
                out.append(Quote(p.asset_id, *quote, _VENUE, SPOT))
        elif channel == "instrument":
            self._take_instruments(m.data)
            self.stats.ignored["instrument"] += 1
        elif channel in ("heartbeat", "status"):
            self.stats.ignored[channel] += 1
        else:
            self.stats.reject(f"unknown_channel:{channel}", raw)

    def _take_instruments(self, instruments: _V2Instruments) -> None:
        for pair in instruments.pairs:
            self._precisions[pair.symbol] = (pair.price_precision, pair.qty_precision)
            if pair.symbol in self._pairs:
                self._pairs[pair.symbol].precision = (pair.price_precision, pair.qty_precision)

    # ---- books: read every level, then change ----------------------------------------------------

    def _read(self, p: _Pair, levels: list[list[str]]) -> _Read:
        """(price, size, checksum digits) of each level; raises before anything changes."""
        level = self._fixed.level
        if p.precision is None:  # v1 (and v2 without precisions): the texts as sent
            if any(len(entry) < 2 for entry in levels):
                raise ValueError("a level is [price, volume, ...]")
            return [
                (
                    *level(entry[0], entry[1]),
                    entry[0].replace(".", "").lstrip("0") + entry[1].replace(".", "").lstrip("0"),
                )
                for entry in levels
            ]
        price_places, size_places = p.precision  # v2: the checksum formats at the instrument's precision
        read: _Read = []
        for price_text, size_text in levels:
            price, size = level(price_text, size_text)
            text = (
                _digits(format_fixed8(price, price_places)) + _digits(format_fixed8(size, size_places))
                if size
                else ""
            )
            read.append((price, size, text))
        return read

    @staticmethod
    def _texts(texts: dict[int, str], read: _Read) -> list[Level]:
        for price, size, text in read:
            if size:
                texts[price] = text
            else:
                texts.pop(price, None)  # the text of a level follows the level
        return [(price, size) for price, size, _ in read]

    def _load(self, p: _Pair, bids: _Read, asks: _Read, out: list[Event]) -> None:
        stats = p.book_stats(self.stats)
        if p.live:
            stats.resyncs += 1
        p.bid_text.clear()
        p.ask_text.clear()
        p.book.load(self._texts(p.bid_text, bids), self._texts(p.ask_text, asks))
        p.truncate()
        p.live = True
        now_bids, now_asks = p.book.levels()
        out.extend(split_snapshot(p.asset_id, _VENUE, SPOT, 0, 0, now_bids, now_asks))
        p.render()

    def _update(
        self, p: _Pair, bids: _Read, asks: _Read, checksum: int | None, ts: int, raw: bytes, out: list[Event]
    ) -> None:
        stats = p.book_stats(self.stats)
        bid_levels = self._texts(p.bid_text, bids)
        ask_levels = self._texts(p.ask_text, asks)
        p.book.update(bid_levels, ask_levels)
        gone_bids, gone_asks = p.truncate()  # pushed out of the subscribed depth: Kraken sends no delete
        bid_levels += [(price, 0) for price in gone_bids]  # so the delta carries one (a consumer's book
        ask_levels += [(price, 0) for price in gone_asks]  # then stays equal to ours, never crossed)
        stats.updates_applied += 1
        out.append(L2Delta(p.asset_id, _VENUE, SPOT, 0, 0, 0, ts, tuple(bid_levels), tuple(ask_levels)))
        self._check(p, checksum, raw, out)
        if p.live and p.book.is_crossed():
            stats.crossed += 1
        p.render()

    def _check(self, p: _Pair, checksum: int | None, raw: bytes, out: list[Event]) -> None:
        if checksum is None:
            return
        if p.v2 and p.precision is None:
            self.unverified_checksums += 1
            return
        stats = p.book_stats(self.stats)
        bids, asks = p.book.top(_CHECKED_LEVELS)
        text = "".join([p.ask_text[price] for price, _ in asks] + [p.bid_text[price] for price, _ in bids])
        if zlib.crc32(text.encode()) == checksum:
            stats.checksums_verified += 1
            return
        stats.checksum_failures += 1
        self.stats.samples.setdefault("checksum_mismatch", raw[:300].decode("utf-8", "replace"))
        if self.checksum_policy == "resync":
            invalidate(_VENUE, p, Reason.CHECKSUM_MISMATCH, out)
            self._resubscribe(p)
        else:
            out.append(StateInvalidation(_VENUE, SPOT, int(Reason.CHECKSUM_MISMATCH), (p.asset_id,)))

    def _resubscribe(self, p: _Pair) -> None:
        """Unsubscribe and subscribe the pair's book again: Kraken answers with a fresh snapshot."""
        for kind in ("unsubscribe", "subscribe"):
            if p.v2:
                self._requests.append(self._v2_request(kind, "book", [p.venue_symbol]))
            else:
                self._requests.append(self._v1_request(kind, "book", [p.venue_symbol]))

    def _v1_request(self, kind: str, name: str, pairs: list[str]) -> bytes:
        sub: dict[str, object] = {"name": name, "depth": self.depth} if name == "book" else {"name": name}
        return msgspec.json.encode({"event": kind, "pair": pairs, "subscription": sub})

    def _v2_request(self, kind: str, channel: str, pairs: list[str]) -> bytes:
        params: dict[str, object] = {"channel": channel, "symbol": pairs}
        if channel == "book":
            params["depth"] = self.depth
        return msgspec.json.encode({"method": kind, "params": params})

    def _lookup(self, name: str) -> _Pair:
        """The pair of that name, or a new one not yet kept (SymbolError for a name that is no pair)."""
        p = self._pairs.get(name)
        if p is None:
            p = _Pair(name, self.depth)
            p.precision = self._precisions.get(name)
        return p

    def _keep(self, p: _Pair) -> _Pair:
        return self._pairs.setdefault(p.venue_symbol, p)
