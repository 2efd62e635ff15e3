"""The risk monitor's logic. Pure: market-data events, gaps and clock ticks in, Alerts out.

What it watches (docs/protocol.md 2.7, Alert kinds):

* **stale feed**: a venue with no message for ``stale_ns`` of the caller's clock (``tick``); a
  RECOVERED alert when its messages come back;
* **crossed book**: a ready book whose best bid >= best ask after a message (once until it uncrosses);
* **price jump**: a trade more than ``jump_ppm`` away from the instrument's previous trade;
* **sequence gap**: messages missing from a collector's stream (the subscriber's Gap items);
* **checksum failure** and every other **invalidation**, and their recovery, as the collectors
  publish them.
"""

from __future__ import annotations

import dataclasses

from tickrelay.consumers.market import InstrumentState, MarketState
from tickrelay.protocol.codec import VENUE_OF_SOURCE
from tickrelay.protocol.fixed import format_fixed8
from tickrelay.protocol.messages import (
    Alert,
    AlertKind,
    Event,
    L2Delta,
    L2Reset,
    L2Snapshot,
    Reason,
    Severity,
    StateInvalidation,
    Trade,
)
from tickrelay.protocol.symbols import name_of, venue_name


@dataclasses.dataclass(frozen=True, kw_only=True)
class RiskSettings:
    stale_ns: int = 5_000_000_000
    jump_ppm: int = 20_000  # 2 %


class RiskMonitor:
    def __init__(self, settings: RiskSettings | None = None) -> None:
        self.settings = settings or RiskSettings()
        self.market = MarketState()
        self.last_seen: dict[int, int] = {}  # venue_id -> the caller's clock at its last message
        self.stale: set[int] = set()
        self.crossed: set[tuple[int, int]] = set()
        self.alerts = 0

    def on_message(self, ts_ns: int, events: list[Event], now_ns: int) -> list[Alert]:
        """Apply one message (header timestamp ``ts_ns``, received at ``now_ns`` on the caller's clock)."""
        out: list[Alert] = []
        for event in events:
            prev = None
            if isinstance(event, Trade):
                inst = self.market.instruments.get((event.venue_id, event.asset_id))
                prev = inst.trade if inst is not None else None
            changed = self.market.apply(ts_ns, event)
            for inst in changed:
                venue = inst.venue_id
                self.last_seen[venue] = now_ns
                if venue in self.stale:
                    self.stale.discard(venue)
                    text = f"{venue_name(venue)}: messages again after a stale period"
                    out.append(Alert(AlertKind.RECOVERED, Severity.INFO, venue, 0, 0, now_ns, text))
            if isinstance(event, Trade) and prev is not None and prev.price:
                move = (event.price - prev.price) * 1_000_000 // prev.price
                if abs(move) > self.settings.jump_ppm:
                    out.append(self._jump(changed[0], prev.price, event.price, move, ts_ns))
            elif isinstance(event, StateInvalidation):
                out.extend(self._invalidation(event, changed, ts_ns))
                self.crossed.difference_update((i.venue_id, i.asset_id) for i in changed)  # books dropped
            elif isinstance(event, L2Reset):
                self.crossed.discard((event.venue_id, event.asset_id))
            elif isinstance(event, L2Snapshot | L2Delta):
                out.extend(self._crossing(changed[0], ts_ns))
        self.alerts += len(out)
        return out

    def on_gap(self, source: int, missing: int, now_ns: int) -> Alert:
        venue = VENUE_OF_SOURCE.get(source, 0)
        self.alerts += 1
        who = venue_name(venue) if venue else f"source {source}"
        return Alert(AlertKind.SEQUENCE_GAP, Severity.CRITICAL, venue, 0, missing, now_ns,
                     f"{who}: {missing} messages missing from its stream")  # fmt: skip

    def tick(self, now_ns: int) -> list[Alert]:
        """Stale-feed checks at ``now_ns`` (the caller's clock, the one passed to on_message)."""
        out = []
        for venue, seen in sorted(self.last_seen.items()):
            quiet = now_ns - seen
            if quiet > self.settings.stale_ns and venue not in self.stale:
                self.stale.add(venue)
                out.append(Alert(AlertKind.STALE_FEED, Severity.WARNING, venue, 0, quiet, now_ns,
                                 f"{venue_name(venue)}: no message for {quiet / 1e9:.1f} s"))  # fmt: skip
        self.alerts += len(out)
        return out

    def _jump(self, inst: InstrumentState, prev: int, price: int, move: int, ts_ns: int) -> Alert:
        text = (f"{inst.label}: trade at {format_fixed8(price)} is {move / 1e4:+.2f} % from "
                f"{format_fixed8(prev)}")  # fmt: skip
        return Alert(AlertKind.PRICE_JUMP, Severity.WARNING, inst.venue_id, inst.asset_id, move, ts_ns, text)

    def _crossing(self, inst: InstrumentState, ts_ns: int) -> list[Alert]:
        key = (inst.venue_id, inst.asset_id)
        bid, ask = inst.book.top_prices() if inst.book_ready else (None, None)
        if bid is not None and ask is not None and bid >= ask:
            if key in self.crossed:
                return []
            self.crossed.add(key)
            text = f"{inst.label}: book crossed, bid {format_fixed8(bid)} >= ask {format_fixed8(ask)}"
            return [Alert(AlertKind.CROSSED_BOOK, Severity.CRITICAL, *key, bid - ask, ts_ns, text)]
        if key in self.crossed:
            self.crossed.discard(key)
            return [
                Alert(AlertKind.RECOVERED, Severity.INFO, *key, 0, ts_ns, f"{inst.label}: book uncrossed")
            ]
        return []

    def _invalidation(
        self, event: StateInvalidation, named: list[InstrumentState], ts_ns: int
    ) -> list[Alert]:
        label = name_of(Reason, event.reason, f"reason {event.reason}")
        if event.reason == Reason.RECOVERED:
            kind, severity = AlertKind.RECOVERED, Severity.INFO
        elif event.reason == Reason.CHECKSUM_MISMATCH:
            kind, severity = AlertKind.CHECKSUM_FAILURE, Severity.CRITICAL
        else:
            kind, severity = AlertKind.INVALIDATION, Severity.WARNING
        value = 0 if kind != AlertKind.INVALIDATION else event.reason
        if not event.asset_ids:
            return [Alert(kind, severity, event.venue_id, 0, value, ts_ns,
                          f"{venue_name(event.venue_id)}: every instrument {label}")]  # fmt: skip
        return [
            Alert(kind, severity, i.venue_id, i.asset_id, value, ts_ns, f"{i.label}: {label}") for i in named
        ]
