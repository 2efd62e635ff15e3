"""Codec throughput: encode and decode msgs/s for Trade and Quote messages, and stream decoding over a
64 KiB buffer. Warm-up, then the median (and min/max) of >= 5 runs.

    python3 bench/codec.py [--runs 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

from tickrelay.protocol.codec import (
    Decoder,
    encode_quote_message,
    encode_trade_message,
    make_sequence,
)
from tickrelay.protocol.messages import Quote, Trade
from tickrelay.protocol.symbols import asset_id_for


N = 200_000
TRADE = Trade(asset_id_for("BTC/USD"), 11682785000000, 4147, 1755893490012637000, 102, 51, 1)
QUOTE = Quote(
    asset_id_for("BTC/USD"), 11682785000000, 4147, 11682786000000, 9000, 1755893490012637000, 102, 51
)


def _encode(encoder: Callable[[int, int, int, object], bytes], value: object) -> Callable[[], int]:
    def run() -> int:
        for i in range(1, N + 1):
            encoder(3, i, 1755893490100000000, value)
        return N

    return run


def _decode_each(message: bytes) -> Callable[[], int]:
    """Feed one message at a time and take it out, as a reader of small socket reads would."""

    def run() -> int:
        decoder = Decoder()
        for _ in range(N):
            decoder.feed(message)
            decoder.next_message()
        return N

    return run


def _stream(messages: bytes, count: int) -> Callable[[], int]:
    """Feed 64 KiB chunks of a stream and take every message out."""
    chunks = [messages[i : i + 65536] for i in range(0, len(messages), 65536)]

    def run() -> int:
        decoder = Decoder()
        got = 0
        for chunk in chunks:
            decoder.feed(chunk)
            while decoder.next_message() is not None:
                got += 1
        assert got == count
        return got

    return run


def measure(case: Callable[[], int], runs: int) -> dict[str, float]:
    case()  # warm-up
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        n = case()
        rates.append(n / (time.perf_counter() - start))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    trade = encode_trade_message(3, make_sequence(1, 1), 1, TRADE)
    quote = encode_quote_message(3, make_sequence(1, 1), 1, QUOTE)
    stream = b"".join(encode_trade_message(3, make_sequence(1, i), 1, TRADE) for i in range(1, N + 1))
    cases = {
        "encode_trade": _encode(encode_trade_message, TRADE),  # type: ignore[arg-type]
        "encode_quote": _encode(encode_quote_message, QUOTE),  # type: ignore[arg-type]
        "decode_trade": _decode_each(trade),
        "decode_quote": _decode_each(quote),
        "stream_decode_trade_64k": _stream(stream, N),
    }
    result = {name: measure(case, args.runs) for name, case in cases.items()}
    report = {
        "unit": "msgs_per_s",
        "runs": args.runs,
        "messages_per_run": N,
        "python": platform.python_version(),
        "results": result,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{'case':26} {'median msgs/s':>14} {'min':>12} {'max':>12}")
    for name, r in result.items():
        print(f"{name:26} {r['median']:14,.0f} {r['min']:12,.0f} {r['max']:12,.0f}")


if __name__ == "__main__":
    main()
