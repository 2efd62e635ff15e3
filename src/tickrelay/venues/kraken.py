"""Kraken spot WebSocket v1 and v2: trades, quotes and checksum-verified books. Pure: no I/O.

Docs: https://docs.kraken.com/api/docs/websocket-v1/book (v1 arrays and the book checksum) and
https://docs.kraken.com/api/docs/websocket-v2/book (v2 objects, instrument precisions).

v1 frames are arrays ``[channelID, payload, (payload,) channelName, pair]`` or event objects:

* ``trade`` -> one Trade per trade of the batch (the design this replaces kept only the first).
  ``side`` "b"/"s" is the taker's side; ``time`` "seconds.micros" becomes integer ns from its text.
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

A checksum mismatch publishes StateInvalidation(CHECKSUM_MISMATCH) + L2Reset for that pair only; with
policy "resync" the book stays dark until a new snapshot and :meth:`KrakenFeed.wants_resubscribe` names
the pair; with "ignore" it is counted and the book goes on. Symbols: XBT/USD -> BTC/USD.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

import msgspec

from tickrelay.errors import FixedPointError, SymbolError
from tickrelay.protocol.fixed import format_fixed8
from tickrelay.protocol.messages import (
    Event,
    InstrumentMeta,
    L2Delta,
    L2Reset,
    Level,
    Quote,
    Reason,
    Side,
    StateInvalidation,
    Trade,
    split_snapshot,
)
from tickrelay.protocol.symbols import AssetType, VenueId, normalize_pair
from tickrelay.venues.coinbase import parse_time_ns
from tickrelay.venues.feed import DecimalCache, FeedStats, Instrument


NAME = "kraken"
URL = "wss://ws.kraken.com"
URL_V2 = "wss://ws.kraken.com/v2"
_VENUE = int(VenueId.KRAKEN)
_SPOT = int(AssetType.CRYPTO_SPOT)
_CHECKED_LEVELS = 10
_GENERIC = msgspec.json.Decoder()


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


_V2_BOOK = msgspec.json.Decoder(list[_V2Book])
_V2_TRADE = msgspec.json.Decoder(list[_V2Trade])
_V2_TICKER = msgspec.json.Decoder(list[_V2Ticker])
_V2_INSTRUMENT = msgspec.json.Decoder(_V2Instruments)


class _V2Frame(msgspec.Struct):
    channel: str
    type: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


_V2_FRAME = msgspec.json.Decoder(_V2Frame)


def seconds_text_to_ns(text: str) -> int:
    """Kraken's ``"1618678142.557535"`` -> integer ns, from the text (no float)."""
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"not a Kraken time: {text!r}")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def _digits(text: str) -> str:
    """A level's checksum field: its text without "." and leading zeros."""
    return text.replace(".", "").lstrip("0")


def _places(text: str) -> int:
    point = text.find(".")
    return 0 if point < 0 else len(text) - point - 1


class _Pair(Instrument):
    __slots__ = ("ask_text", "bid_text", "precision")

    def __init__(self, pair: str, depth: int) -> None:
        base, _, quote = pair.partition("/")
        super().__init__(pair, normalize_pair(base, quote), depth)
        # price -> checksum digits of price and size, for exactly the levels in the book
        self.bid_text: dict[int, str] = {}
        self.ask_text: dict[int, str] = {}
        self.precision: tuple[int, int] | None = None  # v2: (price, qty) decimals from `instrument`

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


class KrakenFeed:
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
        self._resubscribe: dict[str, None] = {}
        self._precisions: dict[str, tuple[int, int]] = {}  # v2 instrument precisions by symbol
        self._fixed = DecimalCache(self.stats)

    # ---- VenueFeed ----------------------------------------------------------------------------

    def subscribe_messages(self) -> list[bytes]:
        if not self.pairs:
            return []
        pairs = list(self.pairs)
        enc = msgspec.json.encode
        if self.version == 2:
            return [
                enc({"method": "subscribe", "params": {"channel": "instrument"}}),
                *(
                    enc({"method": "subscribe", "params": {"channel": ch, "symbol": pairs}})
                    for ch in ("trade", "ticker")
                ),
                enc(
                    {
                        "method": "subscribe",
                        "params": {"channel": "book", "symbol": pairs, "depth": self.depth},
                    }
                ),
            ]
        return [
            enc({"event": "subscribe", "pair": pairs, "subscription": {"name": "trade"}}),
            enc({"event": "subscribe", "pair": pairs, "subscription": {"name": "ticker"}}),
            enc({"event": "subscribe", "pair": pairs, "subscription": {"name": "book", "depth": self.depth}}),
        ]

    def on_frame(self, raw: bytes, ts_recv_ns: int) -> list[Event]:
        self.stats.frames += 1
        out: list[Event] = []
        try:
            if raw[:1] == b"[":
                self._v1_data(_GENERIC.decode(raw), raw, out)
            else:
                try:
                    frame = _V2_FRAME.decode(raw)
                except msgspec.DecodeError:  # no "channel": a v1 event or a v2 method answer
                    self._event(_GENERIC.decode(raw), raw)
                else:
                    self._v2(frame, raw, out)
        except (
            msgspec.DecodeError,
            FixedPointError,
            SymbolError,
            ValueError,
            TypeError,
            IndexError,
            KeyError,
            AttributeError,
        ) as exc:
            self.stats.reject("invalid_json" if isinstance(exc, msgspec.DecodeError) else "malformed", raw)
            return []
        for value in out:
            self.stats.messages[type(value).__name__] += 1
        return out

    def on_disconnect(self, ts_ns: int) -> list[Event]:
        out: list[Event] = [StateInvalidation(_VENUE, _SPOT, int(Reason.DISCONNECT), ())]
        for p in self._pairs.values():
            if p.stats is not None:
                if p.live:
                    p.stats.resyncs += 1
                out.append(L2Reset(p.asset_id, _VENUE, _SPOT, int(Reason.DISCONNECT)))
            p.drop()
        self._channels.clear()
        self._resubscribe.clear()
        return out

    def load_instruments(self, body: bytes) -> None:
        """Precisions from a v2 ``instrument`` channel message (also taken from the live feed)."""
        frame = _V2_FRAME.decode(body)
        for pair in _V2_INSTRUMENT.decode(frame.data).pairs:
            self._precisions[pair.symbol] = (pair.price_precision, pair.qty_precision)
            if pair.symbol in self._pairs:
                self._pairs[pair.symbol].precision = (pair.price_precision, pair.qty_precision)

    def wants_resubscribe(self) -> list[str]:
        """Pairs whose book failed its checksum and must be resubscribed (each named once)."""
        pairs = list(self._resubscribe)
        self._resubscribe.clear()
        return pairs

    # ---- v1 ---------------------------------------------------------------------------------------

    def _event(self, event: Any, raw: bytes) -> None:
        kind = event.get("event") if isinstance(event, dict) else None
        if kind is None and isinstance(event, dict) and "method" in event:  # a v2 method acknowledgement
            if event.get("success") is False:
                self.stats.venue_errors += 1
                self.stats.reject("venue_error", raw)
            else:
                self.stats.ignored[f"method:{event['method']}"] += 1
            return
        if kind == "subscriptionStatus" and event.get("status") == "subscribed":
            self._channels[int(event["channelID"])] = str(event["pair"])
            self.stats.ignored[kind] += 1
        elif kind in ("heartbeat", "systemStatus", "pong", "subscriptionStatus"):
            if event.get("status") == "error" or event.get("errorMessage"):
                self.stats.venue_errors += 1
                self.stats.reject("venue_error", raw)
            else:
                self.stats.ignored[kind] += 1
        elif kind == "error":
            self.stats.venue_errors += 1
            self.stats.reject("venue_error", raw)
        else:
            self.stats.reject(f"unknown:{kind}", raw)

    def _v1_data(self, msg: list[Any], raw: bytes, out: list[Event]) -> None:
        name, pair_name = msg[-2], msg[-1]
        p = self._pair(pair_name)
        if name == "trade":
            for price, volume, when, side, *_ in msg[1]:
                self._announce(p, price, volume, out)
                side_v = Side.BUY if side == "b" else Side.SELL
                out.append(
                    Trade(
                        p.asset_id,
                        self._fixed(price),
                        self._fixed(volume),
                        seconds_text_to_ns(when),
                        _VENUE,
                        _SPOT,
                        int(side_v),
                    )
                )
        elif name == "ticker":
            a, b = msg[1]["a"], msg[1]["b"]
            self._announce(p, b[0], b[2], out)
            out.append(
                Quote(
                    p.asset_id,
                    self._fixed(b[0]),
                    self._fixed(b[2]),
                    self._fixed(a[0]),
                    self._fixed(a[2]),
                    0,
                    _VENUE,
                    _SPOT,
                )
            )
        elif name == "spread":
            bid, ask, when, bid_vol, ask_vol = msg[1][:5]
            self._announce(p, bid, bid_vol, out)
            out.append(
                Quote(
                    p.asset_id,
                    self._fixed(bid),
                    self._fixed(bid_vol),
                    self._fixed(ask),
                    self._fixed(ask_vol),
                    seconds_text_to_ns(when),
                    _VENUE,
                    _SPOT,
                )
            )
        elif name.startswith("book-"):
            p.book.depth = int(name[5:])  # the subscribed depth names the channel: keep exactly that many
            self._v1_book(p, msg[1:-2], raw, out)
        else:
            self.stats.reject(f"unknown_channel:{name}", raw)

    def _v1_book(self, p: _Pair, parts: list[dict[str, Any]], raw: bytes, out: list[Event]) -> None:
        first = parts[0]
        if "as" in first or "bs" in first:
            asks, bids = first.get("as", []), first.get("bs", [])
            lead = (asks or bids or [[None, None]])[0]
            self._announce(p, lead[0], lead[1], out)
            self._load(p, [(lv[0], lv[1]) for lv in bids], [(lv[0], lv[1]) for lv in asks], out)
            return
        if not p.live:
            self.stats.reject("book_update_before_snapshot", raw)
            return
        bids, asks, checksum = [], [], None
        for part in parts:
            bids += [(lv[0], lv[1]) for lv in part.get("b", ())]
            asks += [(lv[0], lv[1]) for lv in part.get("a", ())]
            checksum = part.get("c", checksum)
        self._update(p, bids, asks, None if checksum is None else int(checksum), 0, raw, out)

    # ---- v2 ---------------------------------------------------------------------------------------

    def _v2(self, frame: _V2Frame, raw: bytes, out: list[Event]) -> None:
        channel = frame.channel
        if channel == "book":
            for book in _V2_BOOK.decode(frame.data):
                self._v2_book(frame.type, book, raw, out)
        elif channel == "trade":
            for t in _V2_TRADE.decode(frame.data):
                p = self._pair(t.symbol)
                price, qty = bytes(t.price).decode(), bytes(t.qty).decode()
                self._announce(p, price, qty, out)
                out.append(
                    Trade(
                        p.asset_id,
                        self._fixed(price),
                        self._fixed(qty),
                        parse_time_ns(t.timestamp),
                        _VENUE,
                        _SPOT,
                        int(Side.BUY if t.side == "buy" else Side.SELL),
                    )
                )
        elif channel == "ticker":
            for tk in _V2_TICKER.decode(frame.data):
                p = self._pair(tk.symbol)
                bid, ask = bytes(tk.bid).decode(), bytes(tk.ask).decode()
                bid_qty, ask_qty = bytes(tk.bid_qty).decode(), bytes(tk.ask_qty).decode()
                self._announce(p, bid, bid_qty, out)
                ts = parse_time_ns(tk.timestamp) if tk.timestamp else 0
                out.append(
                    Quote(
                        p.asset_id,
                        self._fixed(bid),
                        self._fixed(bid_qty),
                        self._fixed(ask),
                        self._fixed(ask_qty),
                        ts,
                        _VENUE,
                        _SPOT,
                    )
                )
        elif channel == "instrument":
            self.load_instruments(raw)
            self.stats.ignored["instrument"] += 1
        elif channel in ("heartbeat", "status"):
            self.stats.ignored[channel] += 1
        else:
            self.stats.reject(f"unknown_channel:{channel}", raw)

    def _v2_book(self, kind: str, book: _V2Book, raw: bytes, out: list[Event]) -> None:
        p = self._pair(book.symbol)
        bids = [(bytes(lv.price).decode(), bytes(lv.qty).decode()) for lv in book.bids]
        asks = [(bytes(lv.price).decode(), bytes(lv.qty).decode()) for lv in book.asks]
        ts = parse_time_ns(book.timestamp) if book.timestamp else 0
        if kind == "snapshot":
            lead = (bids or asks or [("", "")])[0]
            self._announce(p, lead[0] or None, lead[1] or None, out)
            self._load(p, bids, asks, out)
            self._check(p, book.checksum, raw, out)
        elif p.live:
            self._update(p, bids, asks, book.checksum, ts, raw, out)
        else:
            self.stats.reject("book_update_before_snapshot", raw)

    # ---- books ------------------------------------------------------------------------------------

    def _level(self, p: _Pair, side: dict[int, str], price_text: str, size_text: str) -> Level:
        price, size = self._fixed(price_text), self._fixed(size_text)
        if size:
            if p.precision is not None:  # v2: the checksum formats at the instrument's precision
                price_text = format_fixed8(price, p.precision[0])
                size_text = format_fixed8(size, p.precision[1])
            side[price] = _digits(price_text) + _digits(size_text)
        else:
            side.pop(price, None)  # the text of a level follows the level, or it would pile up for ever
        return price, size

    def _load(
        self, p: _Pair, bids: list[tuple[str, str]], asks: list[tuple[str, str]], out: list[Event]
    ) -> None:
        stats = p.book_stats(self.stats)
        if p.live:
            stats.resyncs += 1
        p.bid_text.clear()
        p.ask_text.clear()
        p.book.load(
            [self._level(p, p.bid_text, a, b) for a, b in bids],
            [self._level(p, p.ask_text, a, b) for a, b in asks],
        )
        p.truncate()
        p.live = True
        now_bids, now_asks = p.book.levels()
        out.extend(split_snapshot(p.asset_id, _VENUE, _SPOT, 0, 0, now_bids, now_asks))
        p.render()

    def _update(
        self,
        p: _Pair,
        bids: list[tuple[str, str]],
        asks: list[tuple[str, str]],
        checksum: int | None,
        ts: int,
        raw: bytes,
        out: list[Event],
    ) -> None:
        stats = p.book_stats(self.stats)
        bid_levels = [self._level(p, p.bid_text, a, b) for a, b in bids]
        ask_levels = [self._level(p, p.ask_text, a, b) for a, b in asks]
        p.book.update(bid_levels, ask_levels)
        gone_bids, gone_asks = p.truncate()  # pushed out of the subscribed depth: Kraken sends no delete
        bid_levels += [(price, 0) for price in gone_bids]  # so the delta carries one (a consumer's book
        ask_levels += [(price, 0) for price in gone_asks]  # then stays equal to ours, never crossed)
        stats.updates_applied += 1
        out.append(L2Delta(p.asset_id, _VENUE, _SPOT, 0, 0, 0, ts, tuple(bid_levels), tuple(ask_levels)))
        self._check(p, checksum, raw, out)
        if p.live and p.book.is_crossed():
            stats.crossed += 1
        p.render()

    def _check(self, p: _Pair, checksum: int | None, raw: bytes, out: list[Event]) -> None:
        if checksum is None:
            return
        if raw[:1] != b"[" and p.precision is None:
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
        out.append(StateInvalidation(_VENUE, _SPOT, int(Reason.CHECKSUM_MISMATCH), (p.asset_id,)))
        if self.checksum_policy == "resync":
            out.append(L2Reset(p.asset_id, _VENUE, _SPOT, int(Reason.CHECKSUM_MISMATCH)))
            p.drop()
            self._resubscribe[p.venue_symbol] = None

    def _pair(self, name: str) -> _Pair:
        p = self._pairs.get(name)
        if p is None:
            p = self._pairs[name] = _Pair(name, self.depth)
            p.precision = self._precisions.get(name)
        return p

    def _announce(self, p: _Pair, price: str | None, size: str | None, out: list[Event]) -> None:
        if not p.announced:
            p.announced = True
            if p.precision is not None:
                decimals = p.precision
            else:
                decimals = (_places(price) if price else 255, _places(size) if size else 255)
            out.append(
                InstrumentMeta(p.asset_id, _VENUE, _SPOT, decimals[0], decimals[1], p.venue_symbol, p.symbol)
            )
