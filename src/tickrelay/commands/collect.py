"""``tickrelay collect VENUE``: one venue's WebSocket feed, straight into the market-data relay."""

from __future__ import annotations

import argparse
import asyncio
import os

from tickrelay import log, metrics, runtime
from tickrelay.collector.run import Collector, print_report
from tickrelay.commands.config import read_settings
from tickrelay.protocol.codec import COLLECTOR_SOURCES, Domain
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.paths import runtime_dir, socket_path


HELP = "collect one venue's market data into the relay (Coinbase, Binance or Kraken)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("venue", choices=sorted(COLLECTOR_SOURCES), help="the exchange to collect from")
    parser.add_argument("--config", metavar="PATH", help="TOML file (default: ./tickrelay.toml if present)")
    parser.add_argument("--url", help="WebSocket URL (the venue's <venue>.ws_url)")
    parser.add_argument("--rest-url", help="Binance REST base URL (binance.rest_url)")
    parser.add_argument("--socket", help="relay socket (relay.socket)")
    parser.add_argument("--stale-after", type=float, metavar="S", help="collector.stale_after_s")
    parser.add_argument("--metrics-port", type=int, metavar="N", help="metrics.port (0: off)")
    parser.add_argument("--core", choices=("native", "python"), help="collector.core: which venue core runs")


def run(args: argparse.Namespace) -> int:
    settings = read_settings(
        args.config,
        {
            f"{args.venue}.ws_url": args.url,
            "binance.rest_url": args.rest_url,
            "relay.socket": args.socket,
            "collector.stale_after_s": args.stale_after,
            "metrics.port": args.metrics_port,
            "collector.core": args.core,
        },
    )
    path = socket_path(Domain.MARKET_DATA, settings.config.relay.socket or None, os.environ)
    runtime.pin(settings.config.collector.cpus, "collector.cpus")
    if settings.config.collector.idle == "spin" and not settings.config.collector.cpus:
        log.logger(f"collect {args.venue}").warning(
            "collector.idle = spin without collector.cpus: this collector keeps a whole CPU busy, wherever "
            "the kernel runs it, beside the relay and the other collectors"
        )

    async def main(stop: asyncio.Event) -> int:
        if settings.config.collector.idle == "spin":
            runtime.spin(stop)
        output = RelayOutput(path, source=COLLECTOR_SOURCES[args.venue], name=f"collect-{args.venue}")
        output.start(stop)  # an untrusted relay ends the collector: close() says why
        collector = Collector(args.venue, settings.config, output)
        if settings.config.metrics.port:
            metrics.serve(
                f"collect-{args.venue}",
                settings.config.metrics.port,
                collector.snapshot,
                runtime_dir(os.environ.get("XDG_RUNTIME_DIR")),
            )
        try:
            await collector.run(stop)
        finally:
            await output.close()
            print_report(collector)
        return 0

    return runtime.run(main)
