"""``tickrelay record``: subscribe and write the stream to zstd segments with an index."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path

from tickrelay import log, runtime
from tickrelay.commands import argtypes
from tickrelay.protocol.codec import Message
from tickrelay.record import RecordWriter
from tickrelay.transport.paths import DOMAIN_NAMES, socket_path
from tickrelay.transport.subscribe import Gap, Subscription


HELP = "record a relay's stream to compressed, indexed segments (OUT.<n>.zst + OUT.index)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, type=Path, help="recording name (files OUT.<n>.zst, OUT.index)"
    )
    parser.add_argument(
        "--domain",
        choices=sorted(DOMAIN_NAMES),
        default="market-data",
        help="which relay to record (default market-data)",
    )
    parser.add_argument("--socket", help="relay socket (default: as for `tickrelay relay`)")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML file (default: ./tickrelay.toml if present; relay.allowed_users)",
    )
    parser.add_argument(
        "--rotate-mb", type=argtypes.positive, default=256.0, help="start a new segment after N MB"
    )
    parser.add_argument(
        "--rotate-s", type=argtypes.positive, default=3600.0, help="start a new segment after S seconds"
    )
    parser.add_argument(
        "--flush-s", type=argtypes.positive, default=1.0, help="write a compressed chunk this often"
    )
    parser.add_argument(
        "--keep-mb",
        type=argtypes.at_least(0.0),
        default=0.0,
        help="delete the oldest segments beyond N MB (0: keep all)",
    )


def run(args: argparse.Namespace) -> int:
    domain = DOMAIN_NAMES[args.domain]
    path = socket_path(domain, args.socket, os.environ)

    async def main(stop: asyncio.Event) -> int:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        writer = RecordWriter(
            args.out,
            rotate_bytes=int(args.rotate_mb * (1 << 20)),
            rotate_s=args.rotate_s,
            keep_bytes=int(args.keep_mb * (1 << 20)),
        )
        gaps = 0

        async def consume() -> None:
            nonlocal gaps
            async for item in Subscription(path, domain=domain, name="record", buffer_bytes=256 << 20):
                if isinstance(item, Gap):
                    gaps += item.missing
                elif isinstance(item, Message):
                    writer.append(item.raw)

        task = asyncio.create_task(consume())
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), args.flush_s)
            except TimeoutError:
                writer.flush()
            if task.done():  # it only ends by raising (an untrusted socket): keep what came, then say why
                writer.close()
                await task
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        writer.close()  # everything received is written
        summary = f"{writer.messages} messages in {writer.chunks} chunks, up to segment {writer.segment}"
        if writer.deleted:
            summary += f" ({writer.deleted} old segment(s) deleted, --keep-mb)"
        log.logger("record").info(f"{summary}; {gaps} messages missing upstream")
        return 0

    return runtime.run(main)
