"""The cross-venue spread monitor's logic. Pure: market-data events in, SpreadSignals and Alerts out.

Instruments are grouped by normalized symbol, with quote currencies mapped through ``quote_aliases``
(``{"USDT": "USD"}`` groups BTC/USDT with BTC/USD). For every ordered pair of instruments of one group
on two different venues, the net edge of buying the first's best ask and selling the second's best bid
after both venues' taker fees is (docs/protocol.md 2.9, exact integers)::

    net_edge_ppm = (bid * (10**6 - fee_sell_ppm) - ask * (10**6 + fee_buy_ppm)) // ask

A pair opens when its edge exceeds ``min_edge_ppm``, is updated when the edge moves by at least
``update_ppm`` (or the size changes), and closes when the edge falls back or either side becomes
untrusted (invalidated, reset) or stale (no message for ``stale_ns`` of *message* time: the header
timestamps, so a replay gives the same signals every time). It never opens a pair on an untrusted or
stale side.

An edge beyond ``max_edge_ppm`` (default 5 %) is a data problem, not an arbitrage (two
recordings of different days, a bad print): that direction's verdict is ``implausible``: it gets no
signal (an open one closes) and one IMPLAUSIBLE_EDGE alert, then a RECOVERED alert when its edge comes
back in bounds. A direction with both sides usable and its edge in bounds is ``compared``.

:func:`headline` says in one line what the verdicts mean for someone reading a summary.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from tickrelay.consumers.market import InstrumentState, Key, MarketState
from tickrelay.protocol.fixed import format_fixed8
from tickrelay.protocol.messages import Alert, AlertKind, Event, Severity, SignalState, SpreadSignal


PPM = 1_000_000
SignalKey = tuple[int, int, int, int]  # (buy venue, buy asset, sell venue, sell asset)
VERDICTS = ("compared", "implausible")


def track_open(open_signals: dict[SignalKey, SpreadSignal], s: SpreadSignal) -> None:
    """Keep, for a reader of the signal stream, the last signal of every pair still open."""
    key = (s.buy_venue, s.buy_asset_id, s.sell_venue, s.sell_asset_id)
    if s.state == SignalState.CLOSE:
        open_signals.pop(key, None)
    else:
        open_signals[key] = s


@dataclasses.dataclass(frozen=True, kw_only=True)
class StrategySettings:
    fee_ppm: dict[int, int] = dataclasses.field(default_factory=dict)  # venue_id -> taker fee, ppm
    default_fee_ppm: int = 1000  # 10 bp
    min_edge_ppm: int = 0  # open when the net edge is above this
    update_ppm: int = 100  # an open pair is re-published when its edge moved this much (or size changed)
    stale_ns: int = 10_000_000_000
    max_edge_ppm: int = 50_000  # an edge beyond this (either way) is a data problem: alert, no signal
    quote_aliases: dict[str, str] = dataclasses.field(default_factory=dict)


def headline(verdicts: dict[str, int]) -> str:
    """One line on the cross-venue pairs the strategy judged (counts by verdict); "" before any."""
    compared, implausible = verdicts.get("compared", 0), verdicts.get("implausible", 0)
    if compared:
        return f"{compared} cross-venue pair{'s' if compared > 1 else ''} compared"
    if implausible:
        return f"no cross-venue pair in the data ({implausible} with an implausible edge)"
    return ""


def _short(value: int) -> str:
    """Fixed point as the shortest exact decimal text (``61837.63``, ``27120``)."""
    return format_fixed8(value).rstrip("0").rstrip(".")


def net_edge_ppm(bid: int, ask: int, fee_sell_ppm: int, fee_buy_ppm: int) -> int:
    return (bid * (PPM - fee_sell_ppm) - ask * (PPM + fee_buy_ppm)) // ask


class SpreadMonitor:
    def __init__(self, settings: StrategySettings | None = None) -> None:
        self.settings = settings or StrategySettings()
        self.market = MarketState()
        self.groups: defaultdict[str, set[Key]] = defaultdict(set)
        self.open: dict[tuple[Key, Key], SpreadSignal] = {}
        self.verdict: dict[tuple[Key, Key], str] = {}  # (buy, sell) -> its last verdict
        self.now_ns = 0  # the latest header timestamp seen
        self.sent: defaultdict[str, int] = defaultdict(int)  # by SignalState name

    def group_of(self, symbol: str) -> str:
        base, _, quote = symbol.partition("/")
        return f"{base}/{self.settings.quote_aliases.get(quote, quote)}"

    def verdicts(self) -> dict[str, int]:
        """How many pairs have each verdict now (implausible: in either direction)."""
        pairs: dict[tuple[Key, Key], str] = {}
        for (buy, sell), verdict in self.verdict.items():
            pair = (buy, sell) if buy < sell else (sell, buy)
            if pairs.get(pair) != "implausible":
                pairs[pair] = verdict
        counts = dict.fromkeys(VERDICTS, 0)
        for verdict in pairs.values():
            counts[verdict] += 1
        return counts

    def on_message(self, ts_ns: int, events: list[Event]) -> list[SpreadSignal | Alert]:
        """Apply one message's events; the signals and alerts they cause, in a deterministic order."""
        self.now_ns = max(self.now_ns, ts_ns)
        touched: set[str] = set()
        for event in events:
            for inst in self.market.apply(ts_ns, event):
                if inst.symbol:
                    group = self.group_of(inst.symbol)
                    self.groups[group].add((inst.venue_id, inst.asset_id))
                    touched.add(group)
        out: list[SpreadSignal | Alert] = []
        for group in sorted(touched):
            members = sorted(self.groups[group])
            for buy in members:
                for sell in members:
                    if buy[0] != sell[0]:
                        self._evaluate(buy, sell, ts_ns, out)
        for pair in sorted(self.open):  # open pairs of other groups may have gone stale
            if self.now_ns - self._oldest(pair) > self.settings.stale_ns:
                self._evaluate(pair[0], pair[1], ts_ns, out)
        for s in out:
            if isinstance(s, SpreadSignal):
                self.sent[SignalState(s.state).name] += 1
        return out

    def _oldest(self, pair: tuple[Key, Key]) -> int:
        m = self.market.instruments
        return min(m[pair[0]].last_ts_ns, m[pair[1]].last_ts_ns)

    def _usable(self, inst: InstrumentState) -> bool:
        return inst.trusted and self.now_ns - inst.last_ts_ns <= self.settings.stale_ns

    def _judge(
        self, buy: InstrumentState, sell: InstrumentState, ask: int, bid: int, edge: int, ts_ns: int
    ) -> Alert | None:
        """Record the direction's verdict (module docstring); the alert its change calls for, if any."""
        direction = ((buy.venue_id, buy.asset_id), (sell.venue_id, sell.asset_id))
        bound = self.settings.max_edge_ppm
        was = self.verdict.get(direction)
        self.verdict[direction] = "implausible" if edge > bound else "compared"
        if edge > bound and was != "implausible":
            text = (
                f"{buy.label} ask {_short(ask)}, {sell.label} bid {_short(bid)}: net edge "
                f"{edge / 1e4:+.2f} % > {bound / 1e4:g} %, bad data: no signal"
            )
            kind, severity = AlertKind.IMPLAUSIBLE_EDGE, Severity.WARNING
            return Alert(kind, severity, buy.venue_id, buy.asset_id, edge, ts_ns, text)
        if was == "implausible" and edge <= bound:
            text = f"{buy.label} against {sell.label}: net edge back within {bound / 1e4:g} %"
            return Alert(AlertKind.RECOVERED, Severity.INFO, buy.venue_id, buy.asset_id, 0, ts_ns, text)
        return None

    def _evaluate(self, buy_key: Key, sell_key: Key, ts_ns: int, out: list[SpreadSignal | Alert]) -> None:
        s = self.settings
        buy, sell = self.market.instruments[buy_key], self.market.instruments[sell_key]
        ask, bid = buy.best_ask(), sell.best_bid()
        current = self.open.get((buy_key, sell_key))
        if ask is not None and bid is not None and self._usable(buy) and self._usable(sell):
            fee_buy = s.fee_ppm.get(buy.venue_id, s.default_fee_ppm)
            edge = net_edge_ppm(bid[0], ask[0], s.fee_ppm.get(sell.venue_id, s.default_fee_ppm), fee_buy)
            alert = self._judge(buy, sell, ask[0], bid[0], edge, ts_ns)
            if alert is not None:
                out.append(alert)
            if s.min_edge_ppm < edge <= s.max_edge_ppm:
                size = min(ask[1], bid[1])
                if (
                    current is None
                    or abs(edge - current.net_edge_ppm) >= s.update_ppm
                    or size != current.size
                ):
                    state = SignalState.OPEN if current is None else SignalState.UPDATE
                    signal = SpreadSignal(
                        buy.asset_id, sell.asset_id, buy.venue_id, sell.venue_id, state, ask[0], bid[0], size,
                        edge, ts_ns,
                    )  # fmt: skip
                    self.open[(buy_key, sell_key)] = signal
                    out.append(signal)
                return
        if current is not None:
            del self.open[(buy_key, sell_key)]
            out.append(current._replace(state=SignalState.CLOSE, trigger_ts_ns=ts_ns))
