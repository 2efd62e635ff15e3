"""``tickrelay tail``: print what a relay delivers, one message per line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import TextIO

from tickrelay import log, runtime
from tickrelay.commands import argtypes
from tickrelay.commands.decode import message_json
from tickrelay.protocol.codec import Message, split_sequence
from tickrelay.protocol.fixed import format_fixed8
from tickrelay.protocol.messages import (
    Event,
    InstrumentMeta,
    L2Delta,
    L2Snapshot,
    Quote,
    TlvType,
    Trade,
)
from tickrelay.protocol.symbols import VenueId, symbol_for, venue_name
from tickrelay.relay.fanout import Filter
from tickrelay.transport.paths import DOMAIN_NAMES, socket_path
from tickrelay.transport.subscribe import Gap, Subscription


HELP = "print the messages a relay delivers (human-readable, --json or --raw bytes)"
_TYPE_NAMES = {
    "trade": TlvType.TRADE,
    "quote": TlvType.QUOTE,
    "instrument": TlvType.INSTRUMENT_META,
    "snapshot": TlvType.L2_SNAPSHOT,
    "delta": TlvType.L2_DELTA,
    "reset": TlvType.L2_RESET,
    "invalidation": TlvType.STATE_INVALIDATION,
    "heartbeat": TlvType.HEARTBEAT,
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--domain",
        choices=sorted(DOMAIN_NAMES),
        default="market-data",
        help="which relay to read (default market-data)",
    )
    parser.add_argument("--socket", help="socket path (default: as for `tickrelay relay`)")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML file (default: ./tickrelay.toml if present; relay.allowed_users)",
    )
    parser.add_argument(
        "--time",
        choices=("iso", "local", "ns"),
        default="iso",
        help="first column: UTC ISO 8601 to the ns (default), local time, or raw header timestamp_ns",
    )
    parser.add_argument(
        "--venue",
        action="append",
        choices=[v.name.lower() for v in VenueId],
        default=[],
        help="only this venue (repeatable)",
    )
    parser.add_argument(
        "--type",
        action="append",
        choices=sorted(_TYPE_NAMES),
        default=[],
        help="only this message type (repeatable)",
    )
    parser.add_argument(
        "--count", type=argtypes.at_least(0), default=0, metavar="N", help="exit after N messages"
    )
    out = parser.add_mutually_exclusive_group()
    out.add_argument(
        "--json", action="store_true", help="one JSON object per message (as `tickrelay decode`)"
    )
    out.add_argument("--raw", action="store_true", help="write the Protocol V2 bytes as received to stdout")


class Names:
    """Instrument names: decoded from base-38 asset ids, or learned from InstrumentMeta."""

    def __init__(self) -> None:
        self.learned: dict[int, str] = {}

    def __call__(self, asset_id: int) -> str:
        return self.learned.get(asset_id) or symbol_for(asset_id) or f"#{asset_id:x}"


def _amount(size: int, price: int) -> str:
    return f"{format_fixed8(size)} @ {format_fixed8(price)}"


def describe(event: Event, names: Names) -> str:
    """One TLV value in words: prices and sizes as decimals, instruments by symbol."""
    match event:
        case Trade():
            side = "BUY " if event.side == 0 else "SELL"
            return f"{names(event.asset_id):12} trade {side} {_amount(event.volume, event.price)}"
        case Quote():
            bid, ask = _amount(event.bid_size, event.bid_price), _amount(event.ask_size, event.ask_price)
            return f"{names(event.asset_id):12} quote {bid} / {ask}"
        case InstrumentMeta():
            names.learned[event.asset_id] = event.symbol
            return f"{event.symbol:12} instrument {event.venue_symbol} (price {event.price_decimals} dp)"
        case L2Snapshot() | L2Delta():
            kind = "snapshot" if isinstance(event, L2Snapshot) else "delta"
            return f"{names(event.asset_id):12} {kind} {len(event.bids)} bids {len(event.asks)} asks"
    return f"{type(event).__name__} {tuple(event)}"


def _venue_of(event: Event) -> str:
    return venue_name(getattr(event, "venue_id", -1), "-")


def format_time(ns: int, style: str = "iso") -> str:
    """A header ``timestamp_ns`` as UTC ISO 8601 to the nanosecond ("2024-08-08T00:00:01.123456789Z"),
    local time ("2024-08-08 02:00:01.123456789 +0200") or the integer itself ("ns")."""
    if style == "ns":
        return str(ns)
    seconds, fraction = divmod(ns, 1_000_000_000)
    if style == "local":
        return (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
            + f".{fraction:09d} "
            + (time.strftime("%z", time.localtime(seconds)))
        )
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def header_line(style: str = "iso") -> str:
    """The column names above ``print_message``'s lines."""
    when = {"iso": "time (UTC)", "local": "time (local)", "ns": "timestamp_ns"}[style]
    width = len(format_time(0, style)) if style != "ns" else 19
    return f"{when:{width}} {'stream:seq':11} {'venue':8} {'instrument':12} event"


def print_message(message: Message, names: Names, out: TextIO, style: str = "iso") -> None:
    stream, counter = split_sequence(message.header.sequence)
    for event in message.events():
        at = format_time(message.header.timestamp_ns, style)
        where = f"{at} {f'{stream}:{counter}':11} {_venue_of(event):8}"
        out.write(f"{where} {describe(event, names)}\n")


async def _say_waiting(subscription: Subscription, after_s: float = 1.0) -> None:
    """Say so on stderr when the relay is not there (yet): the subscription keeps retrying."""
    try:
        await asyncio.wait_for(subscription.connected.wait(), after_s)
    except TimeoutError:
        log.logger("tail").info(
            f"waiting for the relay at {subscription.path} (start one: `tickrelay relay` or `tickrelay up`; "
            "Ctrl-C stops)"
        )
        await subscription.connected.wait()
        log.logger("tail").info("connected")


def run(args: argparse.Namespace) -> int:
    domain = DOMAIN_NAMES[args.domain]
    path = socket_path(domain, args.socket, os.environ)
    flt = Filter(
        frozenset(_TYPE_NAMES[t] for t in args.type), frozenset(VenueId[v.upper()] for v in args.venue)
    )

    async def main(stop: asyncio.Event) -> int:
        names, seen = Names(), 0
        subscription = Subscription(path, domain=domain, filter=flt, name="tail")
        items = aiter(subscription)
        waiting = asyncio.ensure_future(_say_waiting(subscription))
        header = not (args.raw or args.json)  # above the first line printed
        while not stop.is_set():
            next_item = asyncio.ensure_future(anext(items))
            stopped = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({next_item, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if next_item not in done:
                next_item.cancel()
                break
            stopped.cancel()
            item = next_item.result()
            if isinstance(item, Gap):
                note = f"GAP stream {item.source}:{item.stream_id}: {item.missing} messages missing"
                print(
                    json.dumps({"gap": item._asdict()}) if args.json else note,
                    file=sys.stderr if args.raw else sys.stdout,
                )
                continue
            assert isinstance(item, Message)
            if args.raw:
                sys.stdout.buffer.write(item.raw)
            elif args.json:
                sys.stdout.write(json.dumps(message_json(item)) + "\n")
            else:
                if header:
                    print(header_line(args.time))
                    header = False
                print_message(item, names, sys.stdout, args.time)
            seen += 1
            if args.count and seen >= args.count:
                break
        waiting.cancel()
        sys.stdout.flush()
        return 0

    try:
        return runtime.run(main)
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 0
