"""Real recorded market data for the consumers: the Kraken XBT/USD and Binance BTCUSDT recordings,
normalized by the real `tickrelay normalize` and merged into one stream."""

from __future__ import annotations

import functools
import heapq
import tempfile
from pathlib import Path

from tests.relay.conftest import FIXTURES, normalize
from tickrelay.protocol.codec import Message, encode_events


KRAKEN = FIXTURES / "kraken/v1/python-kraken-sdk_2023-08-30_book-10_XBT-USD.jsonl"
BINANCE = FIXTURES / "binance/spot/hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT"


@functools.cache
def merged_stream() -> tuple[Message, ...]:
    """Both recordings re-timed so each starts at 1_700_000_000 s and merged by timestamp (ties: Kraken
    first). Messages are re-encoded from their decoded events with the new timestamp."""
    with tempfile.TemporaryDirectory() as tmp:
        kraken = normalize("kraken", KRAKEN, Path(tmp) / "k.v2")
        binance = normalize(
            "binance", BINANCE.with_suffix(".jsonl"), Path(tmp) / "b.v2",
            "--snapshot", f"BTCUSDT={BINANCE}.rest-depth-snapshot.json",
        )  # fmt: skip
    start = 1_700_000_000 * 10**9
    timed = [
        [
            (start + m.header.timestamp_ns - stream[0].header.timestamp_ns, n, i, m)
            for i, m in enumerate(stream)
        ]
        for n, stream in enumerate((kraken, binance))
    ]
    out = []
    for ts, _, _, m in heapq.merge(*timed):
        h = m.header
        raw = encode_events(h.relay_domain, h.source, h.sequence, ts, *m.events())
        out.append(Message(h._replace(timestamp_ns=ts, checksum=int.from_bytes(raw[28:32], "little")), raw))
    return tuple(out)
