"""Coinbase Advanced Trade market data: trades, quotes and level2 books. Pure: no I/O.

wss://advanced-trade-ws.coinbase.com; docs: https://docs.cdp.coinbase.com/advanced-trade/docs/ws-channels.
Frames are tagged by ``channel``, each with a connection-wide ``sequence_num``:

* ``market_trades`` -> Trade per trade of ``update`` events (the ``snapshot`` event replays recent
  trades: ignored, counted ``market_trades:snapshot``). ``side`` is the MAKER's side, as on the
  Exchange feed, so the aggressor is the other one (maker "BUY" -> the seller hit the bid ->
  Side.SELL). NautilusTrader's Coinbase adapter documents it so: "Coinbase reports the maker side on
  public market trades, so the aggressor is the opposite side" (``coinbase_side_to_aggressor``,
  https://nautilustrader.io/docs/rust-api-latest/nautilus_coinbase/http/parse/fn.coinbase_side_to_aggressor.html).
  No Advanced Trade capture exists in the shared fixtures to show it on real frames.
* ``ticker`` -> Quote (best_bid / best_bid_quantity / best_ask / best_ask_quantity; quote_ts_ns = the
  message ``timestamp``).
* ``l2_data`` snapshot / update (sides "bid" / "offer") -> L2Snapshot / L2Delta (first_seq = last_seq =
  ``sequence_num``). An update for a product without a book is of no use until its snapshot: ignored
  (``l2_data:before_snapshot``), the frame still counts in the sequence.
* ``heartbeats``, ``subscriptions`` and anything that yields nothing: ignored (counted by channel).
* A jump in ``sequence_num`` invalidates every book of the connection (SEQUENCE_GAP) and asks
  (``take_requests``) to unsubscribe and subscribe ``level2`` again. A rejected frame does not move the
  sequence, so the frame after it shows the gap: its content is lost, and the books say so.

Each frame is decoded whole and every number, time and symbol is read before anything changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import msgspec

from tickrelay.config import Config
from tickrelay.errors import FixedPointError, SymbolError
from tickrelay.protocol.messages import (
    Event,
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
from tickrelay.protocol.symbols import VenueId
from tickrelay.venues.coinbase import MAX_CHANGES, NAME, CoinbaseFeed, Id64, Product
from tickrelay.venues.feed import (
    SPOT,
    FeedStats,
    NativeSpec,
    NoSnapshots,
    Reject,
    VenueFeed,
    decode,
    disconnect,
    unknown,
)
from tickrelay.venues.numbers import DecimalCache, parse_time_ns


URL = "wss://advanced-trade-ws.coinbase.com"
_VENUE = int(VenueId.COINBASE)


class _Trade(msgspec.Struct):
    product_id: str
    price: str
    size: str
    side: str  # "BUY" / "SELL"
    time: str


class _Ticker(msgspec.Struct):
    product_id: str
    best_bid: str | None = None
    best_bid_quantity: str | None = None
    best_ask: str | None = None
    best_ask_quantity: str | None = None


class _Level(msgspec.Struct):
    side: str  # "bid" / "offer"
    price_level: str
    new_quantity: str


class _Event(msgspec.Struct):
    type: str = ""
    product_id: str = ""
    trades: list[_Trade] = []
    tickers: list[_Ticker] = []
    updates: list[_Level] = []


class Frame(msgspec.Struct):
    channel: str
    sequence_num: Id64
    timestamp: str = ""
    events: list[_Event] = []


_DECODER = msgspec.json.Decoder(Frame)


def decode_frame(raw: bytes) -> Frame | Reject:
    """One Advanced Trade frame -> its typed form, or why it is rejected. Pure."""
    frame = decode(_DECODER, raw)
    return unknown(raw, ("channel", "type"), "no_channel") if frame is None else frame


class AdvancedTradeFeed(NoSnapshots):
    """One Advanced Trade connection's parsing state (implements ``VenueFeed``).

    Args:
        products: product ids (``BTC-USD``) for :meth:`subscribe_messages`.
    """

    NAME: ClassVar[str] = NAME
    VENUE_ID: ClassVar[int] = _VENUE

    def __init__(self, products: Sequence[str] = ()) -> None:
        self.products = tuple(products)
        self.stats = FeedStats()
        self._products: dict[str, Product] = {}
        self._sequence: int | None = None  # sequence_num of the last frame taken
        self._requests: list[bytes] = []
        self._fixed = DecimalCache()

    @classmethod
    def from_settings(cls, config: Config) -> VenueFeed:
        return cls(list(config.coinbase.products))

    @staticmethod
    def url(config: Config) -> str:
        return CoinbaseFeed.url(config)  # one Coinbase URL setting, whichever API it speaks

    # ---- VenueFeed ----------------------------------------------------------------------------

    def subscribe_messages(self) -> list[bytes]:
        if not self.products:
            return []
        return [
            self._subscription("subscribe", ch, list(self.products))
            for ch in ("market_trades", "ticker", "level2", "heartbeats")
        ]

    def on_frame(self, raw: bytes, ts_recv_ns: int) -> list[Event]:
        self.stats.frames += 1
        frame = decode_frame(raw)
        if type(frame) is Reject:
            self.stats.reject(frame.reason, raw)
            return []
        assert isinstance(frame, Frame)
        try:
            plan = self._read(frame)
        except (FixedPointError, SymbolError, ValueError):  # read before any change: nothing to undo
            self._fixed.discard()
            self.stats.reject(f"bad_{frame.channel}", raw)
            return []
        self._fixed.commit(self.stats)
        out: list[Event] = []
        if self._sequence is not None and frame.sequence_num != self._sequence + 1:
            self._sequence_gap(out)
        self._sequence = frame.sequence_num
        notes: list[str] = []  # why a step made nothing
        for step in plan:
            step(out, notes)
        if not out:  # classified once: by its first note, else by its channel
            self.stats.ignored[notes[0] if notes else frame.channel] += 1
        self.stats.count(out)
        return out

    def on_disconnect(self, ts_ns: int) -> list[Event]:
        self._sequence = None
        self._requests.clear()
        return disconnect(_VENUE, list(self._products.values()))

    def take_requests(self) -> list[bytes]:
        requests, self._requests = self._requests, []
        return requests

    def native_spec(self) -> NativeSpec | None:
        return "coinbase_advanced", {"products": list(self.products)}

    # ---- read (may raise; changes nothing), then apply ------------------------------------------

    def _product(self, product_id: str) -> Product:
        return self._products.get(product_id) or Product(product_id)  # kept once it is used

    def _keep(self, p: Product) -> Product:
        return self._products.setdefault(p.venue_symbol, p)

    def _read(self, frame: Frame) -> list[Any]:
        """Every value of the frame, read and checked; returns the steps that apply it."""
        fixed = self._fixed
        ts = parse_time_ns(frame.timestamp) if frame.timestamp else 0
        steps: list[Any] = []
        for event in frame.events:
            if frame.channel == "market_trades" and event.type == "update":
                for t in event.trades:
                    if t.side.upper() not in ("BUY", "SELL"):
                        raise ValueError(f"trade side {t.side!r}")
                    buy = t.side.upper() == "SELL"  # the maker sold: the aggressor bought
                    values = (fixed.positive(t.price), fixed.positive(t.size), parse_time_ns(t.time))
                    steps.append(self._trade_step(self._product(t.product_id), t, values, buy))
            elif frame.channel == "market_trades":
                steps.append(self._ignore_step(f"market_trades:{event.type}"))
            elif frame.channel == "ticker":
                for tk in event.tickers:
                    if tk.best_bid is None or tk.best_ask is None:
                        continue
                    quote = (
                        fixed(tk.best_bid),
                        fixed(tk.best_bid_quantity or "0"),
                        fixed(tk.best_ask),
                        fixed(tk.best_ask_quantity or "0"),
                    )
                    steps.append(self._quote_step(self._product(tk.product_id), tk, quote, ts))
            elif frame.channel == "l2_data" and event.product_id:
                if event.type != "snapshot" and len(event.updates) > MAX_CHANGES:
                    raise ValueError(f"{len(event.updates)} updates, more than one L2Delta holds")
                bids: list[Level] = []
                asks: list[Level] = []
                for u in event.updates:
                    if u.side not in ("bid", "offer"):
                        raise ValueError(f"l2_data side {u.side!r}")
                    (bids if u.side == "bid" else asks).append(fixed.level(u.price_level, u.new_quantity))
                p = self._product(event.product_id)
                first = event.updates[0] if event.updates else None
                texts = (first.price_level, first.new_quantity) if first else (None, None)
                steps.append(
                    self._book_step(p, event.type == "snapshot", bids, asks, frame.sequence_num, ts, texts)
                )
        return steps

    def _ignore_step(self, kind: str) -> Any:
        def step(out: list[Event], notes: list[str]) -> None:
            notes.append(kind)

        return step

    def _trade_step(self, p: Product, t: _Trade, values: tuple[int, int, int], buy: bool) -> Any:
        def step(out: list[Event], notes: list[str]) -> None:
            kept = self._keep(p)
            kept.announce(_VENUE, t.price, t.size, out)
            out.append(Trade(kept.asset_id, *values, _VENUE, SPOT, int(Side.BUY if buy else Side.SELL)))

        return step

    def _quote_step(self, p: Product, tk: _Ticker, quote: tuple[int, int, int, int], ts: int) -> Any:
        def step(out: list[Event], notes: list[str]) -> None:
            kept = self._keep(p)
            kept.announce(_VENUE, tk.best_bid, tk.best_bid_quantity, out)
            out.append(Quote(kept.asset_id, *quote, ts, _VENUE, SPOT))

        return step

    def _book_step(
        self,
        p: Product,
        snapshot: bool,
        bids: list[Level],
        asks: list[Level],
        seq: int,
        ts: int,
        texts: tuple[str | None, str | None],
    ) -> Any:
        def step(out: list[Event], notes: list[str]) -> None:
            kept = self._keep(p)
            if snapshot:
                kept.announce(_VENUE, texts[0], texts[1], out)
                stats = kept.book_stats(self.stats)
                if kept.live:
                    stats.resyncs += 1
                kept.book.load(bids, asks)
                kept.live = True
                bids_now, asks_now = kept.book.levels()
                out.extend(split_snapshot(kept.asset_id, _VENUE, SPOT, seq, 0, bids_now, asks_now))
            elif kept.live:
                stats = kept.book_stats(self.stats)
                kept.book.update(bids, asks)
                stats.updates_applied += 1
                out.append(L2Delta(kept.asset_id, _VENUE, SPOT, 0, seq, seq, ts, tuple(bids), tuple(asks)))
            else:
                notes.append("l2_data:before_snapshot")
            kept.render()

        return step

    def _sequence_gap(self, out: list[Event]) -> None:
        published = [p for p in self._products.values() if p.live]
        if not published:
            return
        out.append(
            StateInvalidation(_VENUE, SPOT, int(Reason.SEQUENCE_GAP), tuple(p.asset_id for p in published))
        )
        for p in published:
            p.book_stats(self.stats).gaps += 1
            out.append(L2Reset(p.asset_id, _VENUE, SPOT, int(Reason.SEQUENCE_GAP)))
            p.drop()
        ids = [p.venue_symbol for p in published]
        self._requests += [self._subscription(kind, "level2", ids) for kind in ("unsubscribe", "subscribe")]

    @staticmethod
    def _subscription(kind: str, channel: str, ids: list[str]) -> bytes:
        return msgspec.json.encode({"type": kind, "product_ids": ids, "channel": channel})
