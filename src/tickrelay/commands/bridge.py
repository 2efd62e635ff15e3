"""``tickrelay bridge out|in``: the relay <-> NATS JetStream bridge (docs/nats.md)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from tickrelay import log, runtime
from tickrelay.bridge.auth import load_access
from tickrelay.bridge.inbound import BridgeIn, InSettings
from tickrelay.bridge.outbound import BridgeOut, OutSettings
from tickrelay.commands.config import read_settings
from tickrelay.errors import UnsafeSocket
from tickrelay.transport.paths import DOMAIN_NAMES, socket_path


HELP = "bridge a relay to NATS JetStream: `bridge out` publishes its stream, `bridge in` feeds another relay"
# flag -> config key; None means "not given" (the file, the environment or the default decide)
_ACCESS_FLAGS = {
    "tls_ca": ("nats.tls_ca", "CA file (PEM) the server's certificate must chain to"),
    "tls_cert": ("nats.tls_cert", "client certificate (PEM), for a server that verifies clients"),
    "tls_key": ("nats.tls_key", "the client certificate's key (PEM)"),
    "creds": ("nats.creds", "credentials file (user JWT + nkey seed)"),
    "nkey_seed": ("nats.nkey_seed", "nkey seed file"),
    "user": ("nats.user", "user name (with --nats-password)"),
    "password": ("nats.password", "password (visible to `ps`: prefer TICKRELAY_NATS_PASSWORD)"),
    "token": ("nats.token", "token (visible to `ps`: prefer TICKRELAY_NATS_TOKEN)"),
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="TOML file (default: ./tickrelay.toml if present)")
    p.add_argument("--nats", metavar="URLS", help="NATS server URL(s), comma-separated; tls:// for TLS "
                   "(nats.servers, default nats://127.0.0.1:4222)")  # fmt: skip
    for flag, (key, text) in _ACCESS_FLAGS.items():
        metavar = "PATH" if "PEM" in text or "file" in text else "TEXT"
        p.add_argument(f"--nats-{flag.replace('_', '-')}", dest=flag, metavar=metavar, help=f"{text} ({key})")
    p.add_argument("--socket", help="relay socket (default: as for `tickrelay relay`)")
    p.add_argument(
        "--domain",
        choices=sorted(DOMAIN_NAMES),
        default="market-data",
        help="which relay to bridge (default market-data)",
    )
    p.add_argument("--json", action="store_true", help="print the final counters as JSON")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="direction", metavar="{out,in}", required=True)
    about_out = "publish the relay's stream to NATS subjects tickrelay.<domain>...."
    out = sub.add_parser("out", help=about_out, description=about_out)
    _common(out)
    out.add_argument("--latency-ms", type=float, default=1.0, help="longest wait for a batch (1)")
    out.add_argument("--batch-kb", type=int, default=256, help="largest batch (NATS message) in KiB (256)")
    out.add_argument("--snapshot-s", type=float, default=0.25, help="publish changed books this often (0.25)")
    out.add_argument("--max-age-s", type=float, default=3600.0, help="replay stream keeps this (3600)")
    out.add_argument("--replicas", type=int, default=1, help="JetStream replicas of both streams (cluster)")
    out.add_argument("--no-setup", action="store_true", help="do not create or update the JetStream streams")
    about_in = "subscribe to NATS subjects and forward into the relay, byte for byte"
    inn = sub.add_parser("in", help=about_in, description=about_in)
    _common(inn)
    inn.add_argument("--subject", help="subject pattern (default tickrelay.<domain>.>)")
    inn.add_argument("--last-value", action="store_true",
                     help="late joiner: books from the last-value stream, then replay")  # fmt: skip
    inn.add_argument("--since-s", type=float, help="replay this many seconds of the replay stream first")
    inn.add_argument("--hold-ms", type=float, default=20.0, help="release an incomplete flush after (20)")
    inn.add_argument(
        "--pending-msgs", type=int, default=65536, help="queued NATS messages before slow consumer"
    )
    inn.add_argument("--idle-close-s", type=float, default=300.0,
                     help="close a silent stream's relay connection after (300)")  # fmt: skip


def _report(name: str, stats: Any, as_json: bool) -> None:
    data = dataclasses.asdict(stats)
    if as_json:
        print(json.dumps({"bridge": name, **data}), file=sys.stderr)
        return
    nats = data.pop("nats")
    text = ", ".join(f"{k} {v}" for k, v in {**data, **nats}.items() if k != "last_error")
    error = f"; last error: {nats['last_error']}" if nats["last_error"] else ""
    log.logger(f"bridge {name}").info(f"{text}{error}")


def run(args: argparse.Namespace) -> int:
    flags = {key: getattr(args, flag) for flag, (key, _) in _ACCESS_FLAGS.items()}
    settings = read_settings(args.config, {**flags, "nats.servers": args.nats})
    access = load_access(settings)
    domain = DOMAIN_NAMES[args.domain]
    path = Path(socket_path(domain, args.socket, os.environ))
    servers = list(settings.config.nats.servers)

    bridge: BridgeOut | BridgeIn
    if args.direction == "out":
        bridge = BridgeOut(path, servers, OutSettings(
            domain=domain, latency_s=args.latency_ms / 1000, max_batch_bytes=args.batch_kb << 10,
            snapshot_s=args.snapshot_s, max_age_s=args.max_age_s, replicas=args.replicas,
            setup_streams=not args.no_setup, access=access))  # fmt: skip
    else:
        bridge = BridgeIn(path, servers, InSettings(
            domain=domain, subject=args.subject or "", last_value=args.last_value, since_s=args.since_s,
            hold_s=args.hold_ms / 1000, pending_msgs=args.pending_msgs,
            idle_close_s=args.idle_close_s, access=access))  # fmt: skip

    async def main(stop: asyncio.Event) -> int:
        untrusted = False
        try:
            await bridge.run(stop)
        except UnsafeSocket:
            untrusted = True
            raise
        finally:  # a refusal at the start (the server's, or an untrusted relay) is its one-line error alone
            if not untrusted and (bridge.ready.is_set() or not bridge.stats.nats.refused):
                _report(args.direction, bridge.stats, args.json)
        return 0

    return runtime.run(main)
