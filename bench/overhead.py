"""What the latency instrumentation costs, measured against the work it instruments, in one process.

    python3 bench/overhead.py [--runs 7] [--json]

* **Collector** (processing latency): the Binance feed over the embedded BTCUSDT session (41,248
  frames), bare, and with exactly what the collector adds per frame: ``perf_counter_ns()`` at arrival,
  the pending (arrival, type) entry per message, and at the write (one per 16 frames here, as a
  coalesced write carries several) ``perf_counter_ns()`` and one HDR record per message
  (``Collector._written``).
* **Consumer** (end-to-end latency): stream-decoding the same session's Protocol V2 messages with
  ``Decoder``, bare, and with ``time.time_ns()`` + ``EndToEnd.record`` per message (``consumers/pump.py``).

Both every item measured (sample 1) and one in ``metrics.latency_sample`` (the default, 8). Warm-up,
then the median (min-max) of ``--runs`` runs, bare and instrumented interleaved; overhead =
instrumented / bare - 1, and the added ns per frame or message.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from tickrelay.config import KEY_BY_NAME
from tickrelay.metrics import EndToEnd, Latency
from tickrelay.protocol.codec import Decoder, encode_events
from tickrelay.replay.recordings import BINANCE, BINANCE_SNAPSHOTS, _read, load
from tickrelay.venues.binance import BinanceFeed


WRITE_EVERY = 16  # frames per coalesced write


def _frames() -> tuple[list[bytes], list[int], bytes]:
    rec = load(*BINANCE)
    return list(rec.frames), list(rec.times_ns), _read(BINANCE_SNAPSHOTS["BTCUSDT"])


def _feed() -> BinanceFeed:
    return BinanceFeed(["BTCUSDT"])


def _after(feed: BinanceFeed, snapshot: bytes, ts: int) -> list[object]:
    """What the collector does after each frame: hand over the REST snapshot once the book asks."""
    return [v for symbol in feed.wants_snapshot() for v in feed.on_snapshot(symbol, snapshot, ts)]


def collector_bare(frames: list[bytes], times: list[int], snapshot: bytes) -> Callable[[], int]:
    def run() -> int:
        feed = _feed()
        on_frame = feed.on_frame
        for raw, ts in zip(frames, times, strict=True):
            on_frame(raw, ts)
            _after(feed, snapshot, ts)
        return len(frames)

    return run


def collector_instrumented(
    frames: list[bytes], times: list[int], snapshot: bytes, sample: int
) -> Callable[[], int]:
    def run() -> int:
        feed = _feed()
        on_frame, clock = feed.on_frame, time.perf_counter_ns
        pending: list[tuple[int, str]] = []
        latency: dict[str, Latency] = {}
        measured = 0
        for i, (raw, ts) in enumerate(zip(frames, times, strict=True)):
            arrived = clock()
            values = on_frame(raw, ts)
            _after(feed, snapshot, ts)
            if values:  # Collector.on_frame
                measured += 1
                if measured % sample == 0:
                    pending.extend((arrived, type(value).__name__) for value in values)
            if i % WRITE_EVERY == WRITE_EVERY - 1:  # the write returned: Collector._written
                now = clock()
                for arrived_ns, kind in pending:
                    hist = latency.get(kind)
                    if hist is None:
                        hist = latency[kind] = Latency()
                    hist.record(now - arrived_ns)
                pending.clear()
        return len(frames)

    return run


def _stream(frames: list[bytes], times: list[int], snapshot: bytes) -> tuple[bytes, int]:
    feed, out = _feed(), []
    for i, (raw, ts) in enumerate(zip(frames, times, strict=True)):
        for value in [*feed.on_frame(raw, ts), *_after(feed, snapshot, ts)]:
            out.append(encode_events(1, 1, i, ts, value))  # type: ignore[arg-type]
    return b"".join(out), len(out)


def consumer_bare(stream: bytes, count: int) -> Callable[[], int]:
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]

    def run() -> int:
        decoder = Decoder(max_payload=8 << 20)
        n = 0
        for chunk in chunks:
            decoder.feed(chunk)
            for _ in decoder:
                n += 1
        assert n == count
        return n

    return run


def consumer_instrumented(stream: bytes, count: int, sample: int) -> Callable[[], int]:
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]

    def run() -> int:
        decoder, e2e = Decoder(max_payload=8 << 20), EndToEnd(sample)
        n = 0
        for chunk in chunks:
            decoder.feed(chunk)
            for m in decoder:
                e2e.record(m.header.source, m.header.timestamp_ns)  # as consumers/pump.py does
                n += 1
        assert n == count
        return n

    return run


def measure(case: Callable[[], int], runs: int) -> list[float]:
    case()  # warm-up
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        case()
        seconds.append(time.perf_counter() - t0)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    frames, times, snapshot = _frames()
    stream, count = _stream(frames, times, snapshot)
    report: dict[str, dict[str, object]] = {}
    default = KEY_BY_NAME["metrics.latency_sample"].default
    for sample in sorted({1, default}):
        cases = (
            ("collector", collector_bare(frames, times, snapshot),
             collector_instrumented(frames, times, snapshot, sample), len(frames)),
            ("consumer", consumer_bare(stream, count), consumer_instrumented(stream, count, sample), count),
        )  # fmt: skip
        for name, bare, instrumented, n in cases:
            b, i = [], []
            for _ in range(args.runs):  # interleaved, so drift hits both alike
                b += measure(bare, 1)
                i += measure(instrumented, 1)
            per_b, per_i = statistics.median(b) / n * 1e9, statistics.median(i) / n * 1e9
            report[f"{name}_sample_{sample}"] = {
                "items": n,
                "bare_ns_per_item": round(per_b),
                "instrumented_ns_per_item": round(per_i),
                "added_ns_per_item": round(per_i - per_b),
                "overhead_pct": round((per_i / per_b - 1) * 100, 1),
                "bare_range_ns": [round(min(b) / n * 1e9), round(max(b) / n * 1e9)],
                "instrumented_range_ns": [round(min(i) / n * 1e9), round(max(i) / n * 1e9)],
            }
    if args.json:
        print(json.dumps(report))
        return
    for name, r in report.items():
        print(
            f"{name:20} {r['items']:7} items: bare {r['bare_ns_per_item']} ns, instrumented "
            f"{r['instrumented_ns_per_item']} ns, +{r['added_ns_per_item']} ns ({r['overhead_pct']} %)"
        )


if __name__ == "__main__":
    main()
