"""``tickrelay replay-exchange``: serve the embedded recordings over each venue's real protocol."""

from __future__ import annotations

import argparse
import asyncio
import shutil

from tickrelay import log, runtime
from tickrelay.commands import argtypes
from tickrelay.errors import ConfigError
from tickrelay.replay.exchange import Faults, ReplayExchange, parse_pings


HELP = "serve recorded Coinbase, Binance and Kraken sessions over their real WebSocket/REST protocols"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument(
        "--port", type=argtypes.port, default=8765, help="0: any free port (default %(default)s)"
    )
    parser.add_argument("--speed", default="1", help="recorded pace x SPEED, or 'max' (default 1)")
    parser.add_argument(
        "--rate",
        type=argtypes.at_least(0.0),
        default=0.0,
        metavar="FRAMES_PER_S",
        help="steady pace instead: FRAMES_PER_S evenly spaced on each connection (latency benchmarks)",
    )
    parser.add_argument(
        "--no-loop", action="store_true", help="keep connections open after the recording ends"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="close-after=N, stall=N:S, corrupt=N, bad-checksum=N (the N-th Kraken book checksum is "
        "wrong), http429=N (the first N Binance REST requests get 429 "
        "with Retry-After), http418 (then every one gets 418, IP banned) "
        "or accept-close (every WebSocket closed, 1013, once accepted); repeatable",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve wss:// and https:// with a certificate made at start (its CA file is printed)",
    )
    parser.add_argument(
        "--ping",
        action="append",
        default=[],
        metavar="VENUE=S[:T]",
        help="server pings every S seconds, dropping a client without a pong for T (default 3 S); "
        "defaults: binance=20:60 as Binance, none for kraken and coinbase (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        speed = 0.0 if args.speed == "max" else float(args.speed)
        faults = Faults.parse(args.fault)
        pings = parse_pings(args.ping)
    except ValueError as exc:
        raise ConfigError(f"replay-exchange: {exc}") from None
    if speed < 0:
        raise ConfigError(f"--speed must be positive or 'max', not {args.speed}")
    if args.rate < 0:
        raise ConfigError(f"--rate must be positive, not {args.rate:g}")

    async def main(stop: asyncio.Event) -> int:
        context, ca_file = None, None
        if args.tls:
            from tickrelay.replay import tls  # cryptography: loaded only when asked for

            context, ca_file = tls.make()
        exchange = ReplayExchange(
            speed=speed, rate=args.rate, loop=not args.no_loop, faults=faults, pings=pings, tls=context
        )
        await exchange.start(args.host, args.port)
        ws, http = ("wss", "https") if args.tls else ("ws", "http")
        base, rest = f"{ws}://{args.host}:{exchange.port}", f"{http}://{args.host}:{exchange.port}"
        log.logger("replay-exchange").info(
            f"{base}/coinbase {base}/binance/stream?streams=... {base}/kraken "
            f"{base}/kraken/v2 (REST {rest}/binance/api/v3/..., {rest}/kraken/0/public/AssetPairs, "
            f"{rest}/coinbase/products; docs/replay-exchange.md)"
        )
        if ca_file is not None:
            log.logger("replay-exchange").info(
                f"TLS certificate made for this run; clients trust it with "
                f"SSL_CERT_FILE={ca_file} (clients of python's requests: REQUESTS_CA_BUNDLE={ca_file})"
            )
        await stop.wait()
        await exchange.stop()
        if ca_file is not None:
            shutil.rmtree(ca_file.parent, ignore_errors=True)
        st = exchange.stats
        log.logger("replay-exchange").info(
            f"stopped after {st.connections} connections, {st.frames_sent} "
            f"frames, {st.requests} requests ({st.errors_sent} answered with an error), "
            f"{st.clients_left} client{'' if st.clients_left == 1 else 's'} left mid-stream, "
            f"{st.pong_timeouts} dropped for no pong"
        )
        return 0

    return runtime.run(main)
