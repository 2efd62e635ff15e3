"""``tickrelay decode``: print a Protocol V2 stream as JSON lines, one object per message."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, BinaryIO

from tickrelay import log
from tickrelay.errors import MalformedTlv, ProtocolError
from tickrelay.protocol.codec import Decoder, Message
from tickrelay.protocol.messages import TYPE_OF, Event, UnknownTlv
from tickrelay.protocol.symbols import symbol_for


HELP = "print a Protocol V2 stream (FILE or stdin) as one JSON object per message"
_CHUNK = 1 << 16


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="-", help="a Protocol V2 stream file, or - for stdin")
    parser.add_argument(
        "--resync", action="store_true", help="on a bad message, skip to the next magic and keep going"
    )


def event_json(event: Event) -> dict[str, Any]:
    """One TLV value as a JSON-ready dict: type, name, its fields, and the symbol where it decodes."""
    if isinstance(event, UnknownTlv):
        return {"type": event.type, "name": "Unknown", "value": event.value.hex()}
    fields = event._asdict()
    tlv_type = TYPE_OF[type(event)]
    out: dict[str, Any] = {"type": int(tlv_type), "name": type(event).__name__}
    for key, value in fields.items():
        out[key] = [list(level) for level in value] if key in ("bids", "asks") else value
    if "asset_id" in fields and (symbol := symbol_for(fields["asset_id"])) is not None:
        out["symbol"] = symbol
    return out


def message_json(message: Message) -> dict[str, Any]:
    return {"header": message.header._asdict(), "tlvs": [event_json(e) for e in message.events()]}


def run(args: argparse.Namespace) -> int:
    try:
        stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        log.logger("decode").error(f"cannot read {args.file}: {exc.strerror}")
        return 1
    try:
        with stream:
            return _decode(stream, args.resync)
    except BrokenPipeError:  # the reader went away (e.g. `| head`): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 0


def _decode(stream: BinaryIO, resync: bool) -> int:
    decoder = Decoder(resync=resync)
    out = sys.stdout
    offset = 0  # stream offset of the next message, for error messages
    count = 0
    reported = 0
    skipped_messages = 0
    while chunk := stream.read(_CHUNK):
        decoder.feed(chunk)
        try:
            for message in decoder:
                try:
                    out.write(json.dumps(message_json(message)) + "\n")
                except MalformedTlv as exc:
                    if not resync:
                        raise
                    log.logger("decode").warning(f"skipped message #{count + 1}: {exc}")
                    skipped_messages += 1
                offset += len(message.raw)
                count += 1
        except ProtocolError as exc:
            log.logger("decode").error(f"bad message #{count + 1} at byte {offset}: {exc}")
            return 1
        for error in decoder.errors[reported:]:
            log.logger("decode").warning(f"skipped a bad message: {error}")
        reported = len(decoder.errors)
    if decoder.buffered:
        log.logger("decode").error(
            f"truncated stream: {decoder.buffered} bytes after message #{count} do not form a whole message"
        )
        return 1
    if decoder.skipped_bytes or skipped_messages:
        log.logger("decode").warning(
            f"resynced past {decoder.skipped_bytes} bad bytes; {count} messages decoded"
        )
        return 1
    return 0
