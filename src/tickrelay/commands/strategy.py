"""``tickrelay strategy``: the cross-venue spread monitor, from the market-data relay to the signal relay
(its IMPLAUSIBLE_EDGE alerts to the system relay). Its metrics carry each pair verdict's count
(``tickrelay_strategy_pairs{verdict}``), read back by :func:`scraped_verdicts` for summaries."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

from tickrelay import log, runtime
from tickrelay.commands.config import read_settings
from tickrelay.config import StrategyConfig
from tickrelay.consumers.market import MarketState, gap_invalidation
from tickrelay.consumers.pump import consume, serve_metrics
from tickrelay.consumers.strategy import SpreadMonitor, StrategySettings
from tickrelay.errors import ConfigError
from tickrelay.protocol.codec import Domain, Message, Source
from tickrelay.protocol.fixed import format_fixed8
from tickrelay.protocol.messages import Alert, SignalState, SpreadSignal
from tickrelay.protocol.symbols import VenueId
from tickrelay.transport.output import RelayOutput, close_all
from tickrelay.transport.paths import socket_path
from tickrelay.transport.subscribe import Gap


HELP = "cross-venue spread monitor: SpreadSignals from the market-data relay to the signal relay"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="TOML file (default: ./tickrelay.toml if present)")
    parser.add_argument("--socket", help="market-data relay socket (relay.socket)")
    parser.add_argument("--signal-socket", help="signal relay socket (default: in the runtime directory)")
    parser.add_argument(
        "--system-socket", help="system relay socket, for its alerts (default: runtime directory)"
    )
    parser.add_argument("--fees-bps", nargs="+", metavar="VENUE=BPS", help="strategy.fees_bps")
    parser.add_argument("--min-edge-bps", type=float, help="strategy.min_edge_bps")
    parser.add_argument("--stale-s", type=float, help="strategy.stale_s")
    parser.add_argument("--max-edge-bps", type=float, help="strategy.max_edge_bps")
    parser.add_argument("--quote-aliases", nargs="+", metavar="Q=AS", help="strategy.quote_aliases")
    parser.add_argument("--metrics-port", type=int, metavar="N", help="metrics.port (0: off)")
    parser.add_argument("--quiet", action="store_true", help="do not print each signal")


def _pairs(items: Sequence[str], key: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not (sep and name.strip() and value.strip()):
            raise ConfigError(f"`{key}`: {item!r} is not NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def strategy_settings(config: StrategyConfig) -> StrategySettings:
    fees = {}
    for venue, bps in _pairs(config.fees_bps, "strategy.fees_bps").items():
        if venue.upper() not in VenueId.__members__:
            raise ConfigError(f"`strategy.fees_bps`: unknown venue {venue!r} (binance, kraken, coinbase)")
        try:
            fees[int(VenueId[venue.upper()])] = round(float(bps) * 100)
        except ValueError:
            raise ConfigError(f"`strategy.fees_bps`: {venue}={bps}: the fee is not a number") from None
    return StrategySettings(
        fee_ppm=fees,
        min_edge_ppm=round(config.min_edge_bps * 100),
        stale_ns=round(config.stale_s * 1e9),
        max_edge_ppm=round(config.max_edge_bps * 100),
        quote_aliases=_pairs(config.quote_aliases, "strategy.quote_aliases"),
    )


def describe(s: SpreadSignal, market: MarketState) -> str:
    return (
        f"{SignalState(s.state).name:6} buy {market.label(s.buy_venue, s.buy_asset_id)} at "
        f"{format_fixed8(s.buy_price)}, sell {market.label(s.sell_venue, s.sell_asset_id)} at "
        f"{format_fixed8(s.sell_price)}, size {format_fixed8(s.size)}, net {s.net_edge_ppm / 100:.2f} bp"
    )


def scraped_verdicts(scraped: list[dict[str, Any]]) -> dict[str, int]:
    """The strategy's pair verdicts (consumers.strategy) from scraped metrics; {} without a strategy."""
    out: dict[str, int] = {}
    for metrics in scraped:
        for labels, value in metrics.get("tickrelay_strategy_pairs", {}).items():
            verdict = dict(labels)["verdict"]
            out[verdict] = out.get(verdict, 0) + int(value)
    return out


def run(args: argparse.Namespace) -> int:
    settings = read_settings(
        args.config,
        {
            "relay.socket": args.socket,
            "strategy.fees_bps": args.fees_bps,
            "strategy.min_edge_bps": args.min_edge_bps,
            "strategy.stale_s": args.stale_s,
            "strategy.max_edge_bps": args.max_edge_bps,
            "strategy.quote_aliases": args.quote_aliases,
            "metrics.port": args.metrics_port,
        },
    )
    monitor = SpreadMonitor(strategy_settings(settings.config.strategy))
    md_path = socket_path(Domain.MARKET_DATA, settings.config.relay.socket or None, os.environ)
    signal_path = socket_path(Domain.SIGNAL, args.signal_socket, os.environ)
    system_path = socket_path(Domain.SYSTEM, args.system_socket, os.environ)

    async def main(stop: asyncio.Event) -> int:
        out = RelayOutput(signal_path, source=Source.STRATEGY, domain=Domain.SIGNAL, name="strategy")
        alerts = RelayOutput(system_path, source=Source.STRATEGY, domain=Domain.SYSTEM, name="strategy")
        out.start(stop)  # an untrusted relay ends the strategy: close() says why
        alerts.start(stop)

        def counters() -> dict[str, Any]:
            return {"signals": {"_labels": ("state",), **{(k.lower(),): n for k, n in monitor.sent.items()}}}

        def gauges() -> dict[str, Any]:
            verdicts = {(k,): n for k, n in monitor.verdicts().items()}
            return {"strategy_pairs": {"_labels": ("verdict",), **verdicts}}

        e2e = serve_metrics("strategy", settings, counters, gauges)

        def on_item(item: Message | Gap) -> None:
            if isinstance(item, Gap):  # our view of that venue missed messages: stop trusting it
                invalidation = gap_invalidation(item.source)
                if invalidation is None:
                    return
                events: list[Any] = [invalidation]
                ts = monitor.now_ns
            else:
                events, ts = item.events(), item.header.timestamp_ns
            for found in monitor.on_message(ts, events):
                if isinstance(found, Alert):
                    alerts.send_event(time.time_ns(), found)
                    print(f"ALERT  {found.text}", flush=True)
                    continue
                out.send_event(time.time_ns(), found)
                if not args.quiet:
                    print(describe(found, monitor.market), flush=True)

        try:
            stats = await consume(md_path, "strategy", stop, on_item, end_to_end=e2e)
        finally:  # however it ended: an output that met an untrusted relay raises why here
            await close_all(out, alerts)
        sent = ", ".join(f"{k.lower()} {v}" for k, v in sorted(monitor.sent.items())) or "none"
        log.logger("strategy").info(
            f"{stats.messages} messages in, signals {sent}; "
            f"{len(monitor.open)} open at exit; {stats.missing} messages missing upstream"
        )
        return 0

    return runtime.run(main)
