"""``tickrelay relay``: run the relay of one domain until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os

from tickrelay import log, metrics, runtime
from tickrelay.commands import argtypes
from tickrelay.commands.config import read_settings
from tickrelay.protocol.link import Overflow
from tickrelay.relay.server import DEFAULT_SUBSCRIBER_BUFFER, Relay, RelaySettings
from tickrelay.transport.paths import DOMAIN_NAMES, runtime_dir, socket_path


HELP = "run the relay of one domain: publishers in, filtered fan-out to subscribers"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--domain",
        choices=sorted(DOMAIN_NAMES),
        default="market-data",
        help="the domain this relay carries (default market-data)",
    )
    parser.add_argument(
        "--socket",
        help="socket path (default: RELAY_SOCKET_PATH for market data, else "
        "$XDG_RUNTIME_DIR/tickrelay/<domain>.sock or /tmp/tickrelay-$UID/<domain>.sock)",
    )
    parser.add_argument(
        "--no-checksum",
        action="store_true",
        help="do not verify CRCs (market data only; signal and execution always verify)",
    )
    parser.add_argument(
        "--subscriber-buffer",
        type=argtypes.at_least(1),
        default=DEFAULT_SUBSCRIBER_BUFFER,
        metavar="BYTES",
        help="default bytes a subscriber may have queued (default %(default)s)",
    )
    parser.add_argument(
        "--overflow",
        choices=["drop", "disconnect"],
        default="drop",
        help="default overflow policy for subscribers that do not choose (default drop)",
    )
    parser.add_argument(
        "--metrics-port",
        type=argtypes.port,
        default=0,
        metavar="N",
        help="serve Prometheus metrics here (0: off)",
    )
    parser.add_argument("--config", metavar="PATH", help="TOML file (default: ./tickrelay.toml if present)")
    parser.add_argument(
        "--max-connections", type=int, metavar="N", help="connections served at once (relay.max_connections)"
    )
    parser.add_argument(
        "--hello-timeout",
        type=float,
        metavar="S",
        help="a connection must send its Hello within S seconds (relay.hello_timeout_s)",
    )
    parser.add_argument(
        "--message-timeout",
        type=float,
        metavar="S",
        help="a message begun must be complete within S seconds (relay.message_timeout_s)",
    )
    parser.add_argument(
        "--allowed-user",
        action="append",
        metavar="USER",
        help="a user besides you who may own the socket directory (repeatable; relay.allowed_users)",
    )


def run(args: argparse.Namespace) -> int:
    domain = DOMAIN_NAMES[args.domain]
    path = socket_path(domain, args.socket, os.environ)
    config = read_settings(
        args.config,
        {
            "relay.max_connections": args.max_connections,
            "relay.hello_timeout_s": args.hello_timeout,
            "relay.message_timeout_s": args.message_timeout,
        },
    ).config
    runtime.pin(config.relay.cpus, "relay.cpus")
    settings = RelaySettings(
        domain=domain,
        verify_checksums=not args.no_checksum,
        subscriber_buffer=args.subscriber_buffer,
        default_overflow=Overflow[args.overflow.upper()],
        max_connections=config.relay.max_connections,
        hello_timeout_s=config.relay.hello_timeout_s,
        message_timeout_s=config.relay.message_timeout_s,
    )

    async def main(stop: asyncio.Event) -> int:
        relay = Relay(path, settings)
        await relay.start()
        if args.metrics_port:
            metrics.serve(
                f"relay-{args.domain}",
                args.metrics_port,
                relay.metrics,
                runtime_dir(os.environ.get("XDG_RUNTIME_DIR")),
            )
        log.logger("relay").info(f"{args.domain} relay listening on {path}")
        await stop.wait()
        await relay.stop()
        why = "".join(f", {reason} {n}" for reason, n in sorted(relay.rejected.items()))
        log.logger("relay").info(f"stopped; rejected {relay.rejected.total()} connection(s){why}")
        return 0

    return runtime.run(main)
