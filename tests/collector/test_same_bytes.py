"""``tickrelay normalize`` and a live collector emit the same bytes for the same frames.

A real collector (picows client) reads a real replay exchange and writes into a real relay; a
subscriber takes what the relay delivers. The test taps the collector's core (the Python one or its
compiled twin, whichever runs) to write down what it was
given: every frame with its receipt time, and every REST snapshot body with the number of frames
before it. Those become a recording (``.jsonl`` + ``.recv_ts_ns.txt``, ``--snapshot SYMBOL=FILE@LINE``)
that ``tickrelay normalize --out`` turns into a stream; the relay's messages must be those bytes,
message for message (stream id 1 on both sides). A corrupted frame forces a resync in the middle:
Kraken's next checksum fails, the book is invalidated, resubscribed and recovered; Binance's next
diff shows the gap and the book asks for a new REST snapshot.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from tests.collector.test_run import pipeline
from tickrelay.collector.run import Collector
from tickrelay.commands import normalize
from tickrelay.protocol.codec import HEADER_SIZE, Message
from tickrelay.protocol.messages import Reason, StateInvalidation
from tickrelay.replay.exchange import Faults
from tickrelay.venues.core import FeedCore
from tickrelay.venues.native import NativeCore


class Tap:
    """Stands in for the collector's venue core: writes down each call, then makes it on the real one."""

    def __init__(self, feed: FeedCore | NativeCore) -> None:
        self.feed = feed
        self.frames: list[tuple[bytes, int]] = []
        self.snapshots: list[tuple[str, bytes, int, int]] = []  # symbol, body, ts, frames before it
        self.disconnects = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.feed, name)

    def on_frame_batch(self, raw: bytes, ts_recv_ns: int) -> tuple[bytes, int]:
        self.frames.append((raw, ts_recv_ns))
        return self.feed.on_frame_batch(raw, ts_recv_ns)

    def on_snapshot(self, key: str, body: bytes, ts_recv_ns: int) -> bytes:
        self.snapshots.append((key, body, ts_recv_ns, len(self.frames)))
        return self.feed.on_snapshot(key, body, ts_recv_ns)

    def on_disconnect(self, ts_ns: int) -> bytes:
        self.disconnects += 1
        return self.feed.on_disconnect(ts_ns)


def normalized(tmp_path: Path, venue: str, tap: Tap) -> list[bytes]:
    """What ``tickrelay normalize --out`` makes of the frames and snapshots the collector was given."""
    recording = tmp_path / "session.jsonl"
    recording.write_bytes(b"".join(raw + b"\n" for raw, _ in tap.frames))
    (tmp_path / "session.recv_ts_ns.txt").write_text("".join(f"{ts}\n" for _, ts in tap.frames))
    args = ["--venue", venue, str(recording), "--out", str(tmp_path / "out.v2")]
    for n, (symbol, body, _, line) in enumerate(tap.snapshots):
        (tmp_path / f"snapshot{n}.json").write_bytes(body)
        args += ["--snapshot", f"{symbol}={tmp_path / f'snapshot{n}.json'}@{line}"]
    parser = argparse.ArgumentParser()
    normalize.configure(parser)
    assert normalize.run(parser.parse_args(args)) in (0, 1)  # 1: the forced gap or checksum, reported
    return split((tmp_path / "out.v2").read_bytes())


def split(stream: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(stream):
        end = at + HEADER_SIZE + int.from_bytes(stream[at + 24 : at + 28], "little")
        out.append(stream[at:end])
        at = end
    return out


def masked(message: bytes) -> bytes:
    """The message without its timestamp and CRC (a snapshot's receipt time is the fetch's, not a frame's)."""
    return message[:16] + message[24:28] + message[HEADER_SIZE:]


def said(reason: Reason, messages: list[Message]) -> bool:
    return any(isinstance(e, StateInvalidation) and e.reason == reason for m in messages for e in m.events())


def recovered(got: list[Message]) -> bool:
    return said(Reason.RECOVERED, got[-3:])


@pytest.mark.parametrize(
    ("venue", "env", "faults", "enough"),
    [
        ("coinbase", {"COINBASE_PRODUCTS": "SKL-USD,SKL-BTC,NMR-EUR,YFI-BTC,DASH-BTC"}, Faults(), 2000),
        ("kraken", {"KRAKEN_PAIRS": "XBT/USD"}, Faults(corrupt=40), 0),
        ("binance", {"BINANCE_SYMBOLS": "BTCUSDT"}, Faults(corrupt=405), 0),
    ],
)
async def test_normalize_and_a_live_collector_emit_the_same_bytes(
    tmp_path: Path, venue: str, env: dict[str, str], faults: Faults, enough: int
) -> None:
    taps: list[Tap] = []

    def tap(collector: Collector) -> None:
        taps.append(Tap(collector.core))
        collector.core = taps[0]  # type: ignore[assignment]

    def done(got: list[Message]) -> bool:
        if enough:
            return len(got) >= enough
        if venue == "kraken":
            return recovered(got)
        return len(got) % 500 == 0 and said(Reason.SEQUENCE_GAP, got)  # some messages after the gap

    got, collector = await pipeline(tmp_path, venue, env, done, faults=faults, stream_id=1, prepare=tap)
    (session,) = taps
    assert session.disconnects in (0, 1)  # 1: the one at the stop, after everything compared
    expected = normalized(tmp_path, venue, session)
    live = [m.raw for m in got]
    assert len(live) <= len(expected)  # the subscriber stopped; the collector may have sent a few more
    if session.snapshots:  # a REST snapshot's messages carry the fetch's time: compare the rest
        assert [masked(m) for m in live] == [masked(m) for m in expected[: len(live)]]
        assert {m[16:24] for m in live} - {m[16:24] for m in expected} <= {
            ts.to_bytes(8, "little") for *_, ts, _ in session.snapshots
        }
    else:
        assert live == expected[: len(live)]  # byte for byte, timestamps and CRCs included
    rejected = collector.core.stats.rejected
    assert (rejected.get("invalid_json", 0) >= 1) == bool(
        faults.corrupt
    )  # Kraken: again on each resubscription
    if venue == "kraken":  # the resync in the middle, recovered
        assert collector.core.stats.books["XBT/USD"].checksum_failures >= 1
        assert collector.stats.requests_sent >= 2
        assert recovered(got)
    if venue == "binance":  # the gap in the middle, and the new snapshot it asks for
        assert collector.core.stats.books["BTCUSDT"].gaps >= 1
        assert said(Reason.SEQUENCE_GAP, got)
        assert len(session.snapshots) >= 2 or collector.core.wants_snapshot() == ["BTCUSDT"]
