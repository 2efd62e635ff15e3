"""``tickrelay replay``: republish a recording into a relay at the recorded pace x speed, or max."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from tickrelay import log, runtime
from tickrelay.errors import ConfigError, RelayError
from tickrelay.protocol.codec import Source
from tickrelay.record import iter_messages
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.paths import DOMAIN_NAMES, socket_path


HELP = "republish a recording (from `tickrelay record`) into a relay, paced or as fast as possible"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", type=Path, help="the recording name given to `tickrelay record --out`")
    parser.add_argument(
        "--domain",
        choices=sorted(DOMAIN_NAMES),
        default="market-data",
        help="which relay to publish into (default market-data)",
    )
    parser.add_argument("--socket", help="relay socket (default: as for `tickrelay relay`)")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML file (default: ./tickrelay.toml if present; relay.allowed_users)",
    )
    parser.add_argument("--speed", default="1", help="recorded pace x SPEED, or 'max' (default 1)")


def run(args: argparse.Namespace) -> int:
    domain = DOMAIN_NAMES[args.domain]
    path = socket_path(domain, args.socket, os.environ)
    speed = 0.0 if args.speed == "max" else float(args.speed)
    if not args.recording.with_name(args.recording.name + ".index").exists():
        raise ConfigError(f"{args.recording}: no recording here (no {args.recording.name}.index)")

    async def main(stop: asyncio.Event) -> int:
        out = RelayOutput(path, source=Source.RECORDER, domain=domain, name="replay")
        out.start()
        try:
            await out.wait_connected(10)
        except TimeoutError:
            raise RelayError(f"no relay reachable on {path}") from None
        start, first_ts = time.monotonic(), None
        for sent, message in enumerate(iter_messages(args.recording)):
            if stop.is_set():
                break
            ts = message.header.timestamp_ns
            if speed:
                first_ts = ts if first_ts is None else first_ts
                delay = start + (ts - first_ts) / 1e9 / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif sent % 4096 == 4095:
                await asyncio.sleep(0)
            out.send(message.raw)  # one stream of its own; payloads and timestamps unchanged
        taken = await out.sync()
        await out.close()
        log.logger("replay").info(f"{taken} messages republished")
        return 0

    return runtime.run(main)
