"""What the dashboard shows, as plain JSON-able data. Pure: the server feeds it and sends its views.

Prices and sizes go to the browser as exact decimal text (``format_fixed8``), at the instrument's own
precision: the fewest places that show every price (size) seen for it exactly. InstrumentMeta's
``price_decimals`` cannot give it: it counts the places of the venue's first text, and Binance pads
every text to 8 ("61836.98000000" for BTCUSDT, quoted to the cent); shown here as "61836.98".
The chart parses the text for drawing only. Everything here is bounded: a fixed number of chart
points per instrument, of alerts and of signals, whatever the message rate. The busiest instrument
(most events) is named for the page to show until someone picks another.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from tickrelay.consumers.market import InstrumentState, MarketState, gap_invalidation, is_invalidation
from tickrelay.consumers.strategy import SignalKey, track_open
from tickrelay.protocol.codec import VENUE_OF_SOURCE
from tickrelay.protocol.fixed import DECIMALS, format_fixed8
from tickrelay.protocol.messages import (
    TYPE_OF,
    Alert,
    AlertKind,
    Event,
    L2Delta,
    L2Snapshot,
    Quote,
    Reason,
    Severity,
    SignalState,
    SpreadSignal,
    Trade,
    UnknownTlv,
)
from tickrelay.protocol.symbols import name_of, venue_name


CHART_POINTS = 600
KEPT = 50  # alerts and signals shown


def _point(
    series: dict[tuple[int, int], deque[tuple[int, str]]], key: tuple[int, int], ts_ns: int, price: int
) -> None:
    points = series.get(key)
    if points is None:
        points = series[key] = deque(maxlen=CHART_POINTS)
    points.append((ts_ns // 1_000_000, format_fixed8(price)))


_UNIT = tuple(10 ** (DECIMALS - n) for n in range(DECIMALS))  # places -> the fixed-point step


def _widen(places: int, value: int) -> int:
    """The fewest places >= ``places`` that show ``value`` exactly."""
    while places < DECIMALS and value % _UNIT[places]:
        places += 1
    return places


def _text(value: int, places: int) -> str:
    return format_fixed8(value, _widen(places, value))


class DashboardState:
    def __init__(self, stale_ns: int = 5_000_000_000) -> None:
        self.stale_ns = stale_ns
        self.market = MarketState()
        self.counts: Counter[tuple[str, str]] = Counter()  # (venue, tlv name) -> messages
        self.gaps: Counter[str] = Counter()  # venue -> messages missing
        self.invalidations: Counter[str] = Counter()
        self.chart: dict[tuple[int, int], deque[tuple[int, str]]] = {}  # key -> (ts_ms, trade price text)
        self.mids: dict[tuple[int, int], deque[tuple[int, str]]] = {}  # key -> (ts_ms, mid price text)
        self.alerts: deque[dict[str, Any]] = deque(maxlen=KEPT)
        self.signals: deque[SpreadSignal] = deque(maxlen=KEPT)
        self.open_signals: dict[SignalKey, SpreadSignal] = {}
        self.seen_ns: dict[tuple[int, int], int] = {}  # key -> the dashboard's clock at its last message
        self.places: dict[tuple[int, int], list[int]] = {}  # key -> [price places, size places] seen
        self.messages: Counter[tuple[int, int]] = Counter()  # key -> events applied (the busiest is shown)
        self.strategy = ""  # the strategy's headline (consumers.strategy.headline), "" when unknown
        self.relays: dict[str, bool] = {"market-data": False, "signal": False, "system": False}
        self.latency: dict[str, dict[str, Any]] = {}  # from the collectors' metrics (venue_summary)
        self._rate_base: tuple[int, Counter[str]] | None = None
        self.rates: dict[str, float] = {}

    # ---- input --------------------------------------------------------------------------------------

    def on_market(self, ts_ns: int, events: list[Event], now_ns: int) -> None:
        for event in events:
            if isinstance(event, UnknownTlv):
                continue
            venue = venue_name(getattr(event, "venue_id", 0))
            self.counts[(venue, TYPE_OF[type(event)].name.lower())] += 1
            if is_invalidation(event):
                self.invalidations[venue] += 1
            for inst in self.market.apply(ts_ns, event):
                key = (inst.venue_id, inst.asset_id)
                self.seen_ns[key] = now_ns
                self.messages[key] += 1
                self._note_places(key, event)
                if isinstance(event, Trade):
                    _point(self.chart, key, ts_ns, event.price)
                elif isinstance(event, Quote | L2Snapshot | L2Delta):
                    bid, ask = inst.best_bid(), inst.best_ask()
                    if bid and ask:
                        mid = (bid[0] + ask[0]) // 2
                        last = self.mids.get(key)
                        if not last or last[-1][1] != format_fixed8(mid):
                            _point(self.mids, key, ts_ns, mid)

    def _note_places(self, key: tuple[int, int], event: Event) -> None:
        if isinstance(event, L2Snapshot | L2Delta):
            levels = (*event.bids, *event.asks)
        elif isinstance(event, Quote):
            levels = ((event.bid_price, event.bid_size), (event.ask_price, event.ask_size))
        elif isinstance(event, Trade):
            levels = ((event.price, event.volume),)
        else:
            return
        places = self.places.setdefault(key, [0, 0])
        for price, size in levels:
            places[0] = _widen(places[0], price)
            places[1] = _widen(places[1], size)

    def _price(self, key: tuple[int, int], value: int) -> str:
        return _text(value, self.places.get(key, (0, 0))[0])

    def _size(self, key: tuple[int, int], value: int) -> str:
        return _text(value, self.places.get(key, (0, 0))[1])

    def on_gap(self, source: int, missing: int, now_ns: int) -> None:
        """Messages of a market-data stream lost: counted, and that venue's books untrusted (shown
        invalid) until their next snapshot."""
        self.gaps[venue_name(VENUE_OF_SOURCE.get(source, 0))] += missing
        invalidation = gap_invalidation(source)
        if invalidation is not None:
            self.market.apply(now_ns, invalidation)

    def on_alert(self, alert: Alert) -> None:
        self.alerts.appendleft(
            {
                "kind": name_of(AlertKind, alert.kind, "?"),
                "severity": name_of(Severity, alert.severity, "?"),
                "venue": venue_name(alert.venue_id) if alert.venue_id else "",
                "text": alert.text,
                "ts_ms": alert.observed_ts_ns // 1_000_000,
            }
        )

    def on_signal(self, s: SpreadSignal) -> None:
        self.signals.appendleft(s)
        track_open(self.open_signals, s)

    def _signal_view(self, s: SpreadSignal) -> dict[str, Any]:
        """Named at view time: a signal may arrive (signal relay) before its InstrumentMeta (market data)."""
        return {
            "state": name_of(SignalState, s.state, "?"),
            "buy": self.market.label(s.buy_venue, s.buy_asset_id),
            "sell": self.market.label(s.sell_venue, s.sell_asset_id),
            "buy_price": self._price((s.buy_venue, s.buy_asset_id), s.buy_price),
            "sell_price": self._price((s.sell_venue, s.sell_asset_id), s.sell_price),
            "size": self._size((s.buy_venue, s.buy_asset_id), s.size),
            "edge_bp": f"{s.net_edge_ppm / 100:.2f}",
            "ts_ms": s.trigger_ts_ns // 1_000_000,
        }

    def update_rates(self, now_ns: int) -> None:
        """Messages per second per venue since the previous call."""
        per_venue: Counter[str] = Counter()
        for (venue, _), n in self.counts.items():
            per_venue[venue] += n
        if self._rate_base is not None and now_ns > self._rate_base[0]:
            then, before = self._rate_base
            self.rates = {v: (per_venue[v] - before[v]) * 1e9 / (now_ns - then) for v in per_venue}
        self._rate_base = (now_ns, per_venue)

    # ---- views --------------------------------------------------------------------------------------

    def _status(self, inst: InstrumentState, now_ns: int) -> str:
        if not inst.trusted:
            return f"invalid: {name_of(Reason, inst.invalid_reason)}"
        if now_ns - self.seen_ns.get((inst.venue_id, inst.asset_id), now_ns) > self.stale_ns:
            return "stale"
        return "ok"

    def view(self, now_ns: int) -> dict[str, Any]:
        """Everything but the depth of one instrument: the same for every browser."""
        instruments = []
        for key, inst in sorted(self.market.instruments.items()):
            bid, ask = inst.best_bid(), inst.best_ask()
            trade = inst.trade
            instruments.append(
                {
                    "id": f"{key[0]}:{key[1]}",
                    "venue": venue_name(key[0]),
                    "symbol": inst.symbol or hex(key[1]),
                    "last": self._price(key, trade.price) if trade else None,
                    "last_size": self._size(key, trade.volume) if trade else None,
                    "bid": self._price(key, bid[0]) if bid else None,
                    "ask": self._price(key, ask[0]) if ask else None,
                    "spread": self._price(key, ask[0] - bid[0]) if bid and ask else None,
                    "status": self._status(inst, now_ns),
                    "age_s": round((now_ns - self.seen_ns.get(key, now_ns)) / 1e9, 1),
                }
            )
        venues = {}
        for venue in sorted({v for v, _ in self.counts} | set(self.gaps)):
            lat = self.latency.get(venue, {})
            p50, p99 = lat.get("latency", {}).get("p50"), lat.get("latency", {}).get("p99")
            venues[venue] = {
                "messages": sum(n for (v, _), n in self.counts.items() if v == venue),
                "by_type": {t: n for (v, t), n in sorted(self.counts.items()) if v == venue},
                "rate": round(self.rates.get(venue, 0.0), 1),
                "gaps": self.gaps[venue],
                "invalidations": self.invalidations[venue],
                "errors": lat.get("errors", 0),
                "p50_us": round(p50, 1) if p50 is not None else None,
                "p99_us": round(p99, 1) if p99 is not None else None,
            }
        busiest = max(self.messages, key=lambda k: (self.messages[k], k), default=None)
        return {
            "relays": dict(self.relays),
            "busiest": f"{busiest[0]}:{busiest[1]}" if busiest else None,
            "strategy": self.strategy,
            "venues": venues,
            "instruments": instruments,
            "alerts": list(self.alerts),
            "signals": [self._signal_view(s) for s in self.signals],
            "open_signals": [self._signal_view(s) for s in self.open_signals.values()],
        }

    def depth(self, instrument_id: str, levels: int = 10) -> dict[str, Any] | None:
        """The selected instrument's top levels and chart points, or None if unknown."""
        venue, _, asset = instrument_id.partition(":")
        try:
            key = (int(venue), int(asset))
        except ValueError:
            return None
        inst = self.market.instruments.get(key)
        if inst is None:
            return None
        bids, asks = inst.book.top(levels) if inst.book_ready else ([], [])
        return {
            "id": instrument_id,
            "name": inst.label,
            "bids": [[self._price(key, p), self._size(key, s)] for p, s in bids],
            "asks": [[self._price(key, p), self._size(key, s)] for p, s in asks],
            "trades": list(self.chart.get(key, ())),
            "mids": list(self.mids.get(key, ())),
        }
