"""``tickrelay publish``: publish the messages of a Protocol V2 file as one publisher stream."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from tickrelay import log, runtime
from tickrelay.commands import argtypes
from tickrelay.errors import RelayError
from tickrelay.protocol.codec import Decoder, Source
from tickrelay.transport.output import OutputStats, RelayOutput
from tickrelay.transport.paths import DOMAIN_NAMES, socket_path


HELP = "publish a Protocol V2 stream file as one publisher stream; exit once the relay has it all"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a Protocol V2 stream file, or - for stdin")
    parser.add_argument(
        "--domain",
        choices=sorted(DOMAIN_NAMES),
        default="market-data",
        help="which relay to publish into (default market-data)",
    )
    parser.add_argument("--socket", help="socket path (default: as for `tickrelay relay`)")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML file (default: ./tickrelay.toml if present; relay.allowed_users)",
    )
    parser.add_argument(
        "--rate",
        type=argtypes.at_least(0.0),
        default=0,
        metavar="N",
        help="messages per second (default: max)",
    )
    parser.add_argument(
        "--source",
        type=int,
        default=Source.PUBLISH_TOOL,
        help="header source of the stream (default %(default)s, `tickrelay publish`)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=argtypes.positive,
        default=10.0,
        metavar="S",
        help="give up (exit 1) when no relay accepts within S seconds (default 10)",
    )


def run(args: argparse.Namespace) -> int:
    domain = DOMAIN_NAMES[args.domain]
    path = socket_path(domain, args.socket, os.environ)
    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()  # OSError: cli
    decoder = Decoder()
    decoder.feed(data)
    messages = [m.raw for m in decoder]  # raises a clear ProtocolError on a bad file
    if decoder.buffered:
        log.logger("publish").warning(
            f"{args.file}: {decoder.buffered} trailing bytes are not a whole message"
        )
        return 1

    async def main(stop: asyncio.Event) -> int:
        out = RelayOutput(path, source=args.source, domain=domain, name="publish")
        out.start()
        try:
            await out.wait_connected(args.connect_timeout)
        except TimeoutError:
            raise RelayError(f"no relay reachable on {path} within {args.connect_timeout:g} s") from None
        start = time.monotonic()
        for i, message in enumerate(messages):
            if stop.is_set():
                break
            out.send(message)  # re-stamped as this stream's (source, sequence, CRC)
            if args.rate:
                delay = start + (i + 1) / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif i % 4096 == 4095:
                await asyncio.sleep(0)  # let the loop flush: the batch is one iteration's messages
        taken = await out.sync()
        await out.close()
        log.logger("publish").info(
            f"{taken} messages taken by the relay (stream id {out.stream_id})" + _losses(out.stats, taken)
        )
        return 0 if taken == len(messages) and not out.stats.dropped else 1

    return runtime.run(main)


def _losses(stats: OutputStats, taken: int) -> str:
    """What was sent and never reached the relay now running, and why ("" when nothing was lost).

    ``taken`` is the running relay's count for this connection, so after a restart everything written
    to the relay that went away is missing from it: that relay may have delivered part of it before it
    died, but nothing confirmed it, and its subscribers see the gap in the stream's counters.
    """
    lost = stats.sent - taken
    if not lost:
        return ""
    why = []
    if lost > stats.dropped:
        why.append(
            f"{lost - stats.dropped} written to a relay that went away before confirming them "
            f"({stats.reconnects} reconnect{'s' if stats.reconnects != 1 else ''})"
        )
    if stats.dropped:
        why.append(f"{stats.dropped} dropped from the full output buffer while no relay took them")
    return f"; {lost} of the {stats.sent} sent were lost: " + ", ".join(why)
