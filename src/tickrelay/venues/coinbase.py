"""Coinbase Exchange feed: trades, quotes and level2 books. Pure: no I/O.

wss://ws-feed.exchange.coinbase.com; docs: https://docs.cdp.coinbase.com/exchange/docs/websocket-channels.
Frames are tagged by ``type``:

* ``match`` / ``last_match`` -> Trade. ``side`` is the MAKER's side, so the aggressor is the other one
  (maker "buy" -> the seller hit the bid -> Side.SELL). Trades are deduplicated by ``trade_id`` per
  product (a resubscription repeats the last trade as ``last_match``: counted as ignored
  ``duplicate_trade``); a jump in trade ids is counted in ``trade_id_gaps``.
* ``ticker`` -> Quote (best_bid / best_ask; sizes where the feed sends ``best_bid_size`` /
  ``best_ask_size``, else 0 = not sent; quote_ts_ns = ``time``).
* ``snapshot`` + ``l2update`` (``level2`` / ``level2_batch``) -> L2Snapshot / L2Delta (no exchange
  sequence: first_seq = last_seq = 0). An update before its product's snapshot is rejected
  (``l2update_before_snapshot``), never applied. A crossed book after an update publishes
  StateInvalidation(CROSSED_BOOK) + L2Reset and asks (``take_requests``) to unsubscribe and subscribe
  that product's level2 again, which brings a fresh snapshot.
* ``heartbeat``, ``subscriptions``: ignored by design (counted). ``error``: rejected and counted in
  ``stats.venue_errors``.

Each frame is decoded whole and every number, time and symbol is read before anything changes, so a
bad frame (``bad_<type>``) leaves the feed as it was. Symbols: ``BTC-USD`` -> ``BTC/USD``.
Advanced Trade is its own module (``venues.coinbase_advanced``); ``from_settings`` picks it when
``coinbase.api = "advanced"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar

import msgspec

from tickrelay.config import Config
from tickrelay.errors import FixedPointError, SymbolError
from tickrelay.protocol.messages import (
    MAX_SNAPSHOT_LEVELS,
    Event,
    L2Delta,
    Level,
    Quote,
    Reason,
    Side,
    Trade,
    split_snapshot,
)
from tickrelay.protocol.symbols import VenueId, normalize_pair
from tickrelay.venues.feed import (
    SPOT,
    FeedStats,
    Instrument,
    NativeSpec,
    NoSnapshots,
    Reject,
    VenueFeed,
    decode,
    disconnect,
    invalidate,
    unknown,
)
from tickrelay.venues.numbers import DecimalCache, parse_time_ns


NAME = "coinbase"
URL = "wss://ws-feed.exchange.coinbase.com"
_VENUE = int(VenueId.COINBASE)
_BUY, _SELL = int(Side.BUY), int(Side.SELL)
MAX_SYMBOL = 64  # characters of a product id
MAX_CHANGES = MAX_SNAPSHOT_LEVELS  # 4093, as many levels as one L2Delta TLV holds
Id64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # an id or sequence number, as int64 keeps it


# ---- wire schema (Coinbase's field names) -----------------------------------------------------------


class _Msg(msgspec.Struct, tag_field="type"):
    pass


class _Match(_Msg, tag="match"):
    trade_id: Id64
    side: str  # the maker's side
    size: str
    price: str
    product_id: str
    time: str


class _LastMatch(_Match, tag="last_match"):
    pass


class _Ticker(_Msg, tag="ticker"):
    product_id: str
    best_bid: str | None = None
    best_ask: str | None = None
    best_bid_size: str | None = None
    best_ask_size: str | None = None
    time: str | None = None


class _Snapshot(_Msg, tag="snapshot"):
    product_id: str
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


class _L2Update(_Msg, tag="l2update"):
    product_id: str
    changes: list[tuple[str, str, str]]  # [side "buy"/"sell", price, size]
    time: str | None = None


class _Heartbeat(_Msg, tag="heartbeat"):
    pass


class _Subscriptions(_Msg, tag="subscriptions"):
    pass


class _Error(_Msg, tag="error"):
    message: str = ""


Message = _Match | _LastMatch | _Ticker | _Snapshot | _L2Update | _Heartbeat | _Subscriptions | _Error
_DECODER = msgspec.json.Decoder(Message)


def decode_frame(raw: bytes) -> Message | Reject:
    """One Exchange-feed frame -> its typed message, or why it is rejected. Pure."""
    message = decode(_DECODER, raw)
    return unknown(raw, ("type",), "no_type") if message is None else message


class Product(Instrument):
    __slots__ = ("trade_id",)

    def __init__(self, product_id: str) -> None:
        # Coinbase's ids are short ASCII: upper() and strip() need no Unicode tables, and InstrumentMeta
        # (255 bytes a text) holds them
        if not product_id.isascii() or len(product_id) > MAX_SYMBOL:
            raise SymbolError(f"product id {product_id[:40]!r}: not ASCII of at most {MAX_SYMBOL} characters")
        base, _, quote = product_id.partition("-")
        super().__init__(product_id, normalize_pair(base, quote))
        self.trade_id = 0  # last trade id emitted


class CoinbaseFeed(NoSnapshots):
    """One Coinbase Exchange-feed connection's parsing state (implements ``VenueFeed``).

    Args:
        products: product ids (``BTC-USD``) for :meth:`subscribe_messages`.
        level2_channel: ``"level2_batch"`` (public) or ``"level2"`` (authenticated).
    """

    NAME: ClassVar[str] = NAME
    VENUE_ID: ClassVar[int] = _VENUE

    def __init__(self, products: Sequence[str] = (), level2_channel: str = "level2_batch") -> None:
        self.products = tuple(products)
        self.level2_channel = level2_channel
        self.stats = FeedStats()
        self.trade_id_gaps = 0
        self._products: dict[str, Product] = {}
        self._requests: list[bytes] = []
        self._fixed = DecimalCache()

    @classmethod
    def from_settings(cls, config: Config) -> VenueFeed:
        if config.coinbase.api == "advanced":
            from tickrelay.venues.coinbase_advanced import AdvancedTradeFeed

            return AdvancedTradeFeed.from_settings(config)
        return cls(list(config.coinbase.products))

    @staticmethod
    def url(config: Config) -> str:
        return config.coinbase.ws_url

    # ---- VenueFeed ----------------------------------------------------------------------------

    def subscribe_messages(self) -> list[bytes]:
        if not self.products:
            return []
        channels = [self.level2_channel, "ticker", "matches", "heartbeat"]
        return [
            msgspec.json.encode(
                {"type": "subscribe", "product_ids": list(self.products), "channels": channels}
            )
        ]

    def on_frame(self, raw: bytes, ts_recv_ns: int) -> list[Event]:
        self.stats.frames += 1
        message = decode_frame(raw)
        if type(message) is Reject:
            self.stats.reject(message.reason, raw)
            return []
        try:
            out = self._apply(message, raw)  # type: ignore[arg-type]
        except (FixedPointError, SymbolError, ValueError):  # read before any change: nothing to undo
            self._fixed.discard()
            self.stats.reject(f"bad_{type(message).__name__.strip('_').lower()}", raw)
            return []
        self._fixed.commit(self.stats)
        self.stats.count(out)
        return out

    def on_disconnect(self, ts_ns: int) -> list[Event]:
        """Every book is gone. Trade ids are kept, so the trade a resubscription repeats is not
        published twice."""
        self._requests.clear()
        return disconnect(_VENUE, list(self._products.values()))

    def take_requests(self) -> list[bytes]:
        requests, self._requests = self._requests, []
        return requests

    def native_spec(self) -> NativeSpec | None:
        return "coinbase", {"products": list(self.products), "level2_channel": self.level2_channel}

    # ---- apply: every value read first, then the state changes ----------------------------------

    def _product(self, product_id: str) -> Product:
        p = self._products.get(product_id)
        if p is None:
            p = Product(product_id)  # SymbolError before it is kept
            self._products[product_id] = p
        return p

    def _apply(self, m: Message, raw: bytes) -> list[Event]:
        if type(m) is _L2Update:  # 98% of the frames: first
            return self._l2update(m, raw)
        out: list[Event] = []
        fixed = self._fixed
        if isinstance(m, _Match):
            known = self._products.get(m.product_id)
            if known is not None and m.trade_id <= known.trade_id:
                self.stats.ignored["duplicate_trade"] += 1
                return out
            price, volume, when = fixed.positive(m.price), fixed.positive(m.size), parse_time_ns(m.time)
            if m.side not in ("buy", "sell"):
                raise ValueError(f"match side {m.side!r}")
            p = self._product(m.product_id)
            if p.trade_id and m.trade_id != p.trade_id + 1:
                self.trade_id_gaps += 1
            p.trade_id = m.trade_id
            p.announce(_VENUE, m.price, m.size, out)
            side = _SELL if m.side == "buy" else _BUY  # the maker's side: the aggressor is the other
            out.append(Trade(p.asset_id, price, volume, when, _VENUE, SPOT, side))
        elif isinstance(m, _Ticker):
            if m.best_bid is None or m.best_ask is None:
                self.stats.ignored["ticker:no_quote"] += 1
                return out
            values = (
                fixed(m.best_bid),
                fixed(m.best_bid_size or "0"),
                fixed(m.best_ask),
                fixed(m.best_ask_size or "0"),
                parse_time_ns(m.time) if m.time else 0,
            )
            p = self._product(m.product_id)
            p.announce(_VENUE, m.best_bid, m.best_bid_size, out)
            out.append(Quote(p.asset_id, *values, _VENUE, SPOT))
        elif isinstance(m, _Snapshot):
            bids = [fixed.level(a, b) for a, b in m.bids]
            asks = [fixed.level(a, b) for a, b in m.asks]
            p = self._product(m.product_id)
            first = (m.bids or m.asks)[:1]
            p.announce(_VENUE, first[0][0] if first else None, first[0][1] if first else None, out)
            stats = p.book_stats(self.stats)
            if p.live:
                stats.resyncs += 1
            p.book.load(bids, asks)
            p.live = True
            bids_now, asks_now = p.book.levels()
            out.extend(split_snapshot(p.asset_id, _VENUE, SPOT, 0, 0, bids_now, asks_now))
            p.render()
        elif isinstance(m, _Error):
            self.stats.venue_errors += 1
            self.stats.reject("venue_error", raw)
        else:
            self.stats.ignored[type(m).__name__.strip("_").lower()] += 1
        return out

    def _l2update(self, m: _L2Update, raw: bytes) -> list[Event]:
        out: list[Event] = []
        p = self._products.get(m.product_id)
        if p is None or not p.live:
            self.stats.reject("l2update_before_snapshot", raw)
            return out
        if len(m.changes) > MAX_CHANGES:
            raise ValueError(f"{len(m.changes)} changes, more than one L2Delta holds")
        level = self._fixed.level
        bids: list[Level] = []
        asks: list[Level] = []
        for side, price, size in m.changes:
            if side == "buy":
                bids.append(level(price, size))
            elif side == "sell":
                asks.append(level(price, size))
            else:
                raise ValueError(f"l2update side {side!r}")  # the frame is rejected, the book untouched
        ts = parse_time_ns(m.time) if m.time else 0
        stats = p.book_stats(self.stats)
        p.book.update(bids, asks)
        stats.updates_applied += 1
        out.append(L2Delta(p.asset_id, _VENUE, SPOT, 0, 0, 0, ts, tuple(bids), tuple(asks)))
        if p.book.is_crossed():
            stats.crossed += 1
            invalidate(_VENUE, p, Reason.CROSSED_BOOK, out)
            self._resubscribe(p.venue_symbol)
        p.render()
        return out

    def _resubscribe(self, product_id: str) -> None:
        """Unsubscribe and subscribe the product's level2 again: Coinbase answers with a snapshot."""
        for kind in ("unsubscribe", "subscribe"):
            self._requests.append(
                msgspec.json.encode(
                    {"type": kind, "product_ids": [product_id], "channels": [self.level2_channel]}
                )
            )
