"""Coinbase market data: the Exchange feed and Advanced Trade. Pure: no I/O.

Exchange feed (wss://ws-feed.exchange.coinbase.com; docs:
https://docs.cdp.coinbase.com/exchange/docs/websocket-channels), frames tagged by ``type``:

* ``match`` / ``last_match`` -> Trade. ``side`` is the MAKER's side, so the aggressor is the other one
  (maker "buy" -> the seller hit the bid -> Side.SELL). Trades are deduplicated by ``trade_id`` per
  product (a resubscription repeats the last trade as ``last_match``: counted as ignored
  ``duplicate_trade``); a jump in trade ids is counted in ``trade_id_gaps``.
* ``ticker`` -> Quote (best_bid / best_ask; sizes where the feed sends ``best_bid_size`` /
  ``best_ask_size``, else 0 = not sent; quote_ts_ns = ``time``).
* ``snapshot`` + ``l2update`` (``level2`` / ``level2_batch``) -> L2Snapshot / L2Delta (no exchange
  sequence: first_seq = last_seq = 0). An update before its product's snapshot is rejected
  (``l2update_before_snapshot``), never applied. A crossed book after an update publishes
  StateInvalidation(CROSSED_BOOK) + L2Reset and waits for a new snapshot.
* ``heartbeat``, ``subscriptions``: ignored by design (counted). ``error``: rejected and counted in
  ``stats.venue_errors``.

Advanced Trade (wss://advanced-trade-ws.coinbase.com; docs:
https://docs.cdp.coinbase.com/advanced-trade/docs/ws-channels), frames tagged by ``channel``, each with
a connection-wide ``sequence_num``:

* ``market_trades`` -> Trade per trade of ``update`` events (the ``snapshot`` event replays recent
  trades: ignored, counted ``market_trades:snapshot``). ``side`` is read as the taker's side
  (ADVANCED_SIDE_IS_TAKER); the shared fixtures hold no Advanced Trade capture to confirm it.
* ``ticker`` -> Quote (best_bid / best_bid_quantity / best_ask / best_ask_quantity; quote_ts_ns = the
  message ``timestamp``).
* ``l2_data`` snapshot / update (sides "bid" / "offer") -> L2Snapshot / L2Delta (first_seq = last_seq =
  ``sequence_num``).
* ``heartbeats``, ``subscriptions``: ignored (counted).
* A jump in ``sequence_num`` invalidates every book of the connection (SEQUENCE_GAP) and asks for a
  resubscription (:meth:`CoinbaseFeed.wants_resubscribe`).

Times are RFC 3339 texts turned into integer nanoseconds without floats. Symbols: ``BTC-USD`` ->
``BTC/USD``; InstrumentMeta precedes each instrument's first message, its decimals being the places of
the first price and size texts seen (255 when none).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from typing import ClassVar

import msgspec

from tickrelay.errors import FixedPointError, SymbolError
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
from tickrelay.venues import feed
from tickrelay.venues.feed import DecimalCache, FeedStats, Instrument


NAME = "coinbase"
URL = "wss://ws-feed.exchange.coinbase.com"
ADVANCED_URL = "wss://advanced-trade-ws.coinbase.com"
ADVANCED_SIDE_IS_TAKER = True
_VENUE = int(VenueId.COINBASE)
_SPOT = int(AssetType.CRYPTO_SPOT)


# ---- Exchange feed wire schema (Coinbase's field names) -------------------------------------------


class _Msg(msgspec.Struct, tag_field="type"):
    pass


class _Match(_Msg, tag="match"):
    trade_id: int
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


_EXCHANGE = msgspec.json.Decoder(
    _Match | _LastMatch | _Ticker | _Snapshot | _L2Update | _Heartbeat | _Subscriptions | _Error
)


# ---- Advanced Trade wire schema -------------------------------------------------------------------


class _AdvTrade(msgspec.Struct):
    product_id: str
    price: str
    size: str
    side: str  # "BUY" / "SELL"
    time: str


class _AdvTicker(msgspec.Struct):
    product_id: str
    best_bid: str | None = None
    best_bid_quantity: str | None = None
    best_ask: str | None = None
    best_ask_quantity: str | None = None


class _AdvLevel(msgspec.Struct):
    side: str  # "bid" / "offer"
    price_level: str
    new_quantity: str


class _AdvEvent(msgspec.Struct):
    type: str = ""
    product_id: str = ""
    trades: list[_AdvTrade] = []
    tickers: list[_AdvTicker] = []
    updates: list[_AdvLevel] = []


class _Advanced(msgspec.Struct):
    channel: str
    sequence_num: int
    timestamp: str = ""
    events: list[_AdvEvent] = []


_ADVANCED = msgspec.json.Decoder(_Advanced)
_KIND = msgspec.json.Decoder(dict[str, object])


_SECONDS: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds


def _epoch_seconds(text: str) -> int:
    seconds = _SECONDS.get(text)
    if seconds is None:
        fields = (
            int(text[:4]),
            int(text[5:7]),
            int(text[8:10]),
            int(text[11:13]),
            int(text[14:16]),
            int(text[17:19]),
        )
        seconds = calendar.timegm(fields)
        if len(_SECONDS) < feed.CACHE_LIMIT:
            _SECONDS[text] = seconds
    return seconds


def parse_time_ns(text: str) -> int:
    """``2021-04-17T16:43:30.244075Z`` (or a ``+HH:MM`` offset) -> integer ns since the epoch, exactly."""
    if len(text) < 20 or text[4] != "-" or text[10] != "T":
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    if text[19] == "." and text[-1] == "Z" and (frac := text[20:-1]).isdigit() and frac.isascii():
        return _epoch_seconds(text[:19]) * 1_000_000_000 + int((frac + "000000000")[:9])  # the common shape
    seconds = _epoch_seconds(text[:19])
    rest = text[19:]
    frac = ""
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        frac, rest = rest[1:end], rest[end:]
    if rest in ("Z", "z", "+00:00"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
    else:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    return (seconds - offset) * 1_000_000_000 + int((frac + "000000000")[:9])


def _places(text: str | None) -> int:
    if text is None:
        return 255
    point = text.find(".")
    return 0 if point < 0 else len(text) - point - 1


class _Product(Instrument):
    __slots__ = ("trade_id",)

    def __init__(self, product_id: str) -> None:
        base, _, quote = product_id.partition("-")
        super().__init__(product_id, normalize_pair(base, quote))
        self.trade_id = 0  # last trade id emitted


class CoinbaseFeed:
    """One Coinbase connection's parsing state (implements ``VenueFeed``).

    Args:
        products: product ids (``BTC-USD``) for :meth:`subscribe_messages`.
        api: ``"exchange"`` (the Exchange feed) or ``"advanced"`` (Advanced Trade) for subscriptions;
            parsing accepts both.
        level2_channel: ``"level2_batch"`` (public) or ``"level2"`` (authenticated) on the Exchange feed.
    """

    NAME: ClassVar[str] = NAME
    VENUE_ID: ClassVar[int] = _VENUE

    def __init__(
        self, products: Sequence[str] = (), api: str = "exchange", level2_channel: str = "level2_batch"
    ) -> None:
        self.products = tuple(products)
        self.api = api
        self.level2_channel = level2_channel
        self.stats = FeedStats()
        self.trade_id_gaps = 0
        self._products: dict[str, _Product] = {}
        self._sequence: int | None = None  # Advanced Trade sequence_num of the last frame
        self._resubscribe = False
        self._fixed = DecimalCache(self.stats)

    # ---- VenueFeed ----------------------------------------------------------------------------

    def subscribe_messages(self) -> list[bytes]:
        if not self.products:
            return []
        ids = list(self.products)
        if self.api == "advanced":
            return [
                msgspec.json.encode({"type": "subscribe", "product_ids": ids, "channel": ch})
                for ch in ("market_trades", "ticker", "level2", "heartbeats")
            ]
        channels = [self.level2_channel, "ticker", "matches", "heartbeat"]
        return [msgspec.json.encode({"type": "subscribe", "product_ids": ids, "channels": channels})]

    def on_frame(self, raw: bytes, ts_recv_ns: int) -> list[Event]:
        self.stats.frames += 1
        try:
            message = _EXCHANGE.decode(raw)
        except msgspec.DecodeError:
            return self._other(raw)
        try:
            out = self._exchange(message, raw)
        except (FixedPointError, SymbolError, ValueError) as exc:
            self.stats.reject(f"bad_{type(message).__name__.strip('_').lower()}", raw)
            del exc
            return []
        self._count(out)
        return out

    def on_disconnect(self, ts_ns: int) -> list[Event]:
        """Every book is gone: one StateInvalidation for the venue, an L2Reset per published book.
        Trade ids are kept, so the trade a resubscription repeats is not published twice."""
        out: list[Event] = [StateInvalidation(_VENUE, _SPOT, int(Reason.DISCONNECT), ())]
        for p in self._products.values():
            if p.live and p.stats is not None:
                p.stats.resyncs += 1
            if p.stats is not None:
                out.append(L2Reset(p.asset_id, _VENUE, _SPOT, int(Reason.DISCONNECT)))
            p.drop()
        self._sequence = None
        return out

    def wants_resubscribe(self) -> bool:
        """True once after an Advanced Trade sequence gap: the collector resubscribes level2."""
        wanted, self._resubscribe = self._resubscribe, False
        return wanted

    # ---- Exchange feed ------------------------------------------------------------------------

    def _exchange(self, m: _Msg, raw: bytes) -> list[Event]:
        if type(m) is _L2Update:  # 98% of the frames: first
            return self._l2update(m, raw)
        out: list[Event] = []
        if isinstance(m, _Match):
            p = self._product(m.product_id)
            if m.trade_id <= p.trade_id:
                self.stats.ignored["duplicate_trade"] += 1
                return out
            if p.trade_id and m.trade_id != p.trade_id + 1:
                self.trade_id_gaps += 1
            price, volume = self._fixed(m.price), self._fixed(m.size)
            side = Side.SELL if m.side == "buy" else Side.BUY  # the maker's side: the aggressor is the other
            p.trade_id = m.trade_id
            self._announce(p, m.price, m.size, out)
            out.append(Trade(p.asset_id, price, volume, parse_time_ns(m.time), _VENUE, _SPOT, int(side)))
        elif isinstance(m, _Ticker):
            if m.best_bid is None or m.best_ask is None:
                self.stats.ignored["ticker:no_quote"] += 1
                return out
            p = self._product(m.product_id)
            quote = Quote(
                p.asset_id,
                self._fixed(m.best_bid),
                self._fixed(m.best_bid_size or "0"),
                self._fixed(m.best_ask),
                self._fixed(m.best_ask_size or "0"),
                parse_time_ns(m.time) if m.time else 0,
                _VENUE,
                _SPOT,
            )
            self._announce(p, m.best_bid, m.best_bid_size, out)
            out.append(quote)
        elif isinstance(m, _Snapshot):
            p = self._product(m.product_id)
            bids = [(self._fixed(a), self._fixed(b)) for a, b in m.bids]
            asks = [(self._fixed(a), self._fixed(b)) for a, b in m.asks]
            first = (m.bids or m.asks)[0] if (m.bids or m.asks) else None
            self._announce(p, first[0] if first else None, first[1] if first else None, out)
            self._load(p, bids, asks, 0, out)
        elif isinstance(m, _Error):
            self.stats.venue_errors += 1
            self.stats.reject("venue_error", raw)
        else:
            self.stats.ignored[type(m).__name__.strip("_").lower()] += 1
        return out

    def _l2update(self, m: _L2Update, raw: bytes) -> list[Event]:
        out: list[Event] = []
        p = self._product(m.product_id)
        if not p.live:
            self.stats.reject("l2update_before_snapshot", raw)
            return out
        fixed = self._fixed
        bids: list[Level] = []
        asks: list[Level] = []
        for side, price, size in m.changes:
            if side == "buy":
                bids.append((fixed(price), fixed(size)))
            elif side == "sell":
                asks.append((fixed(price), fixed(size)))
            else:
                raise ValueError(f"l2update side {side!r}")  # the frame is rejected, the book untouched
        self._apply(p, bids, asks, 0, parse_time_ns(m.time) if m.time else 0, out)
        return out

    # ---- Advanced Trade and anything else ------------------------------------------------------

    def _other(self, raw: bytes) -> list[Event]:
        try:
            adv = _ADVANCED.decode(raw)
        except msgspec.DecodeError:
            try:
                kind = _KIND.decode(raw).get("type") or "no_type"
            except msgspec.DecodeError:
                self.stats.reject("invalid_json", raw)
                return []
            self.stats.reject(f"unknown:{kind}" if isinstance(kind, str) else "unknown", raw)
            return []
        out: list[Event] = []
        if self._sequence is not None and adv.sequence_num != self._sequence + 1:
            self._sequence_gap(out)
        self._sequence = adv.sequence_num
        try:
            self._advanced(adv, raw, out)
        except (FixedPointError, SymbolError, ValueError):
            self.stats.reject(f"bad_{adv.channel}", raw)
            return []
        if not out:
            self.stats.ignored[adv.channel] += 1
        self._count(out)
        return out

    def _advanced(self, adv: _Advanced, raw: bytes, out: list[Event]) -> None:
        ts = parse_time_ns(adv.timestamp) if adv.timestamp else 0
        for event in adv.events:
            if adv.channel == "market_trades" and event.type == "update":
                for t in event.trades:
                    p = self._product(t.product_id)
                    buy = (t.side.upper() == "BUY") == ADVANCED_SIDE_IS_TAKER
                    trade = Trade(
                        p.asset_id,
                        self._fixed(t.price),
                        self._fixed(t.size),
                        parse_time_ns(t.time),
                        _VENUE,
                        _SPOT,
                        int(Side.BUY if buy else Side.SELL),
                    )
                    self._announce(p, t.price, t.size, out)
                    out.append(trade)
            elif adv.channel == "ticker":
                for tk in event.tickers:
                    if tk.best_bid is None or tk.best_ask is None:
                        continue
                    p = self._product(tk.product_id)
                    quote = Quote(
                        p.asset_id,
                        self._fixed(tk.best_bid),
                        self._fixed(tk.best_bid_quantity or "0"),
                        self._fixed(tk.best_ask),
                        self._fixed(tk.best_ask_quantity or "0"),
                        ts,
                        _VENUE,
                        _SPOT,
                    )
                    self._announce(p, tk.best_bid, tk.best_bid_quantity, out)
                    out.append(quote)
            elif adv.channel == "l2_data" and event.product_id:
                p = self._product(event.product_id)
                bids = [
                    (self._fixed(u.price_level), self._fixed(u.new_quantity))
                    for u in event.updates
                    if u.side == "bid"
                ]
                asks = [
                    (self._fixed(u.price_level), self._fixed(u.new_quantity))
                    for u in event.updates
                    if u.side != "bid"
                ]
                if event.type == "snapshot":
                    first = event.updates[0] if event.updates else None
                    self._announce(
                        p, first.price_level if first else None, first.new_quantity if first else None, out
                    )
                    self._load(p, bids, asks, adv.sequence_num, out)
                elif p.live:
                    self._apply(p, bids, asks, adv.sequence_num, ts, out)
                else:
                    self.stats.rejected["l2_data_before_snapshot"] += 1
            elif adv.channel == "market_trades":
                self.stats.ignored[f"market_trades:{event.type}"] += 1

    def _sequence_gap(self, out: list[Event]) -> None:
        published = [p for p in self._products.values() if p.live]
        for p in published:
            assert p.stats is not None
            p.stats.gaps += 1
            out.append(L2Reset(p.asset_id, _VENUE, _SPOT, int(Reason.SEQUENCE_GAP)))
            p.drop()
        if published:
            out.insert(
                0,
                StateInvalidation(
                    _VENUE, _SPOT, int(Reason.SEQUENCE_GAP), tuple(p.asset_id for p in published)
                ),
            )
            self._resubscribe = True

    # ---- books and helpers ----------------------------------------------------------------------

    def _load(self, p: _Product, bids: list[Level], asks: list[Level], seq: int, out: list[Event]) -> None:
        stats = p.book_stats(self.stats)
        if p.stats is not None and p.live:
            stats.resyncs += 1
        p.book.load(bids, asks)
        p.live = True
        bids_now, asks_now = p.book.levels()
        out.extend(split_snapshot(p.asset_id, _VENUE, _SPOT, seq, 0, bids_now, asks_now))
        p.render()

    def _apply(
        self, p: _Product, bids: list[Level], asks: list[Level], seq: int, ts: int, out: list[Event]
    ) -> None:
        stats = p.book_stats(self.stats)
        p.book.update(bids, asks)
        stats.updates_applied += 1
        out.append(L2Delta(p.asset_id, _VENUE, _SPOT, 0, seq, seq, ts, tuple(bids), tuple(asks)))
        if p.book.is_crossed():
            stats.crossed += 1
            out.append(StateInvalidation(_VENUE, _SPOT, int(Reason.CROSSED_BOOK), (p.asset_id,)))
            out.append(L2Reset(p.asset_id, _VENUE, _SPOT, int(Reason.CROSSED_BOOK)))
            p.drop()
        p.render()

    def _product(self, product_id: str) -> _Product:
        p = self._products.get(product_id)
        if p is None:
            p = self._products[product_id] = _Product(product_id)
        return p

    def _announce(self, p: _Product, price: str | None, size: str | None, out: list[Event]) -> None:
        if not p.announced:
            p.announced = True
            out.append(
                InstrumentMeta(
                    p.asset_id, _VENUE, _SPOT, _places(price), _places(size), p.venue_symbol, p.symbol
                )
            )

    def _count(self, out: list[Event]) -> None:
        for value in out:
            self.stats.messages[type(value).__name__] += 1
