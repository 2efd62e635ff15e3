"""``tickrelay relay-status``: the statistics of a running relay."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from tickrelay.errors import RelayError
from tickrelay.protocol.codec import Decoder
from tickrelay.protocol.link import Hello, RelayStatus, Role, decode_control, encode_control
from tickrelay.transport.paths import DOMAIN_NAMES, check_peer, check_socket_dir, socket_path


HELP = "print a running relay's per-publisher and per-subscriber statistics"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--domain",
        choices=sorted(DOMAIN_NAMES),
        default="market-data",
        help="which relay to ask (default market-data)",
    )
    parser.add_argument("--socket", help="socket path (default: as for `tickrelay relay`)")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML file (default: ./tickrelay.toml if present; relay.allowed_users)",
    )
    parser.add_argument("--json", action="store_true", help="print the raw status object")


async def fetch_status(path: str, domain: int) -> dict[str, Any]:
    """Ask the relay on ``path`` for its status (checking the socket as every client does)."""
    check_socket_dir(Path(path))
    try:
        reader, writer = await asyncio.open_unix_connection(path)
    except OSError as exc:
        raise RelayError(f"no relay on {path}: {exc.strerror}") from None
    try:
        check_peer(writer.get_extra_info("socket"), path)
        writer.write(encode_control(Hello(Role.STATUS, domain)))
        data = await asyncio.wait_for(reader.read(), 5.0)
    except (OSError, TimeoutError) as exc:
        raise RelayError(f"the relay on {path} did not answer: {exc}") from None
    finally:
        writer.close()
    decoder = Decoder(max_payload=64 << 20)
    decoder.feed(data)
    message = decoder.next_message()
    control = decode_control(message) if message else None
    if not isinstance(control, RelayStatus):
        raise RelayError(f"the relay on {path} did not answer with its status")
    status: dict[str, Any] = json.loads(control.json_text)
    return status


def run(args: argparse.Namespace) -> int:
    domain = DOMAIN_NAMES[args.domain]
    path = str(socket_path(domain, args.socket, os.environ))
    status = asyncio.run(fetch_status(path, domain))
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    checks = "on" if status["verify_checksums"] else "off"
    print(f"{status['domain']} relay on {status['socket']} (pid {status['pid']}, checksums {checks})")
    print(f"{'publisher':24} {'source':>6} {'stream':>6} {'messages':>12} {'bytes':>14} {'batches':>9}")
    for p in status["publishers"]:
        name = p["name"] or f"#{p['client_id']}"
        counts = f"{p['messages']:12} {p['bytes']:14} {p['batches']:9}"
        print(f"{name:24} {p['source']:6} {p['stream_id']:6} {counts}")
    print(
        f"{'subscriber':24} {'messages':>12} {'bytes':>14} {'dropped':>9} {'queued':>10} {'peak':>10} policy"
    )
    for s in status["subscribers"]:
        name = s["name"] or f"#{s['client_id']}"
        counts = f"{s['messages']:12} {s['bytes']:14} {s['dropped']:9} {s['queued']:10} {s['high_water']:10}"
        print(f"{name:24} {counts} {s['overflow']}")
    rejected = ", ".join(f"{k} {v}" for k, v in status["rejected"].items()) or "none"
    print(f"rejected connections: {rejected}")
    return 0
