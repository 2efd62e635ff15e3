"""``tickrelay risk``: watch every feed on the market-data relay; Alerts to the system relay and the log."""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from tickrelay import log, runtime
from tickrelay.commands.config import read_settings
from tickrelay.consumers.pump import consume, serve_metrics
from tickrelay.consumers.risk import RiskMonitor, RiskSettings
from tickrelay.protocol.codec import Domain, Message, Source
from tickrelay.protocol.messages import Alert, Severity
from tickrelay.transport.output import RelayOutput, close_all
from tickrelay.transport.paths import socket_path
from tickrelay.transport.subscribe import Gap


HELP = "risk monitor: stale feeds, crossed books, price jumps, gaps, checksum failures -> System alerts"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="TOML file (default: ./tickrelay.toml if present)")
    parser.add_argument("--socket", help="market-data relay socket (relay.socket)")
    parser.add_argument("--system-socket", help="system relay socket (default: in the runtime directory)")
    parser.add_argument("--stale-s", type=float, help="risk.stale_s")
    parser.add_argument("--jump-pct", type=float, help="risk.jump_pct")
    parser.add_argument("--metrics-port", type=int, metavar="N", help="metrics.port (0: off)")


def run(args: argparse.Namespace) -> int:
    settings = read_settings(
        args.config,
        {
            "relay.socket": args.socket,
            "risk.stale_s": args.stale_s,
            "risk.jump_pct": args.jump_pct,
            "metrics.port": args.metrics_port,
        },
    )
    risk = settings.config.risk
    monitor = RiskMonitor(
        RiskSettings(stale_ns=round(risk.stale_s * 1e9), jump_ppm=round(risk.jump_pct * 1e4))
    )
    md_path = socket_path(Domain.MARKET_DATA, settings.config.relay.socket or None, os.environ)
    system_path = socket_path(Domain.SYSTEM, args.system_socket, os.environ)

    async def main(stop: asyncio.Event) -> int:
        out = RelayOutput(system_path, source=Source.RISK_MONITOR, domain=Domain.SYSTEM, name="risk")
        out.start(stop)  # an untrusted relay ends the monitor: close() says why
        e2e = serve_metrics("risk", settings, lambda: {"alerts": {"_labels": (), (): monitor.alerts}})

        def publish(alerts: list[Alert]) -> None:
            for alert in alerts:
                out.send_event(time.time_ns(), alert)
                level = Severity(alert.severity).name
                log.logger("risk").warning(f"{level}: {alert.text}")

        def on_item(item: Message | Gap) -> None:
            now = time.time_ns()
            if isinstance(item, Gap):
                publish([monitor.on_gap(item.source, item.missing, now)])
            else:
                publish(monitor.on_message(item.header.timestamp_ns, item.events(), now))

        try:
            stats = await consume(
                md_path, "risk", stop, on_item, tick=lambda now: publish(monitor.tick(now)), end_to_end=e2e
            )
        finally:  # however it ended: an output that met an untrusted relay raises why here
            await close_all(out)
        log.logger("risk").info(f"{stats.messages} messages in, {monitor.alerts} alerts")
        return 0

    return runtime.run(main)
