"""Venue core throughput over the recorded captures, both cores, optionally against cryptofeed.

    python3 bench/normalize.py [--vs-cryptofeed] [--runs N] [--venue V] [--json]

What is measured: exchange frames (WebSocket messages) turned into finished Protocol V2 messages per
second by a fresh core per run (``venues.native.make_core``: the compiled ``NativeCore`` and the
Python ``FeedCore``, each over a fresh feed), book upkeep and checks on (Binance sync + bookTicker
cross-check, Kraken CRC32, Coinbase crossed check), every message stamped and encoded as a collector
sends it. Both cores do the same work: the warm-up checks that they give the same bytes. One warm-up
pass per side, then ``--runs`` (>= 5) timed runs, every side in turn within each run (cryptofeed, the
Python core, the compiled core), so a slow spell of the machine hits every side alike; the median and
the spread (min, max) are reported. A run of a side is as many whole passes over the recording as
fill ``--min-run-s`` (0.25 s) by its warm-up pass (``passes``), each pass on a fresh core: a single pass
of the compiled core over a recording lasts only 8-80 ms, too short to time steadily. A venue whose
feed the compiled core does not build yet gets no native figures (``native_core`` says why).

Recordings (../shared/fixtures): Binance the hftbacktest BTCUSDT capture (depth@100ms + bookTicker:
the ``trade`` frames are left out of both sides, because cryptofeed parses ``aggTrade``, not
``trade``; the REST snapshot is given when the book first asks for it), Kraken the v1 1000-deep book
capture (10 pairs, checksums on), Coinbase the Exchange-feed capture (level2 + ticker + matches).

``--vs-cryptofeed`` puts the same frames through cryptofeed's ``Feed.message_handler(frame, None, ts)``
in its own virtualenv under the cache dir (cryptofeed 2.4.1 for Binance and Kraken, 2.3.2 for Coinbase,
the last release that parses the Exchange feed): symbols pre-seeded with ``Symbols.set``, the Binance
REST snapshot served from the recorded body, Kraken ``checksum_validation=True``, no-op callbacks.
``ratio`` = native / cryptofeed frames per second (the issue's goal: >= 10), ``python_ratio`` = Python
/ cryptofeed, ``native_over_python`` = native / Python.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tickrelay.protocol.codec import COLLECTOR_SOURCES
from tickrelay.protocol.stamper import Stamper
from tickrelay.venues import VENUES
from tickrelay.venues.core import drive
from tickrelay.venues.native import core_choice, make_core


ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / ".." / "shared" / "fixtures"
HFT = "binance/spot/hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT"
RECORDINGS = {
    "binance": f"{HFT}.jsonl",
    "kraken": "kraken/v1/cryptofeed_2021-04-17_book-1000_10-pairs.jsonl",
    "coinbase": "coinbase/exchange-ws-feed/cryptofeed_2021-04-17_level2-ticker-matches_10-products.jsonl",
}
SNAPSHOTS = {"binance": {"BTCUSDT": f"{HFT}.rest-depth-snapshot.json"}}
CRYPTOFEED = {"binance": "2.4.1", "kraken": "2.4.1", "coinbase": "2.3.2"}


def frames_for(venue: str) -> list[bytes]:
    lines = (FIXTURES / RECORDINGS[venue]).read_bytes().splitlines()
    if venue == "binance":
        lines = [raw for raw in lines if not raw.startswith(b'{"stream":"btcusdt@trade"')]
    return lines


def tickrelay_once(
    venue: str, core: str, frames: list[bytes], snapshots: dict[str, bytes], out: list[bytes] | None = None
) -> tuple[float, int]:
    """Seconds for one fresh ``core`` over ``frames``, and the number of messages it made (their bytes
    appended to ``out`` when given)."""
    feed = make_core(VENUES[venue](), Stamper(COLLECTOR_SOURCES[venue], 1), core)
    pending = dict(snapshots)

    def given(line: int, wanted: list[str]) -> list[tuple[str, bytes]]:  # as soon as the book asks
        return [(s, pending.pop(s)) for s in wanted if s in pending] if pending else []

    calls = drive(feed, zip(frames, range(len(frames)), strict=True), given)
    start = time.perf_counter()
    if out is None:
        for _ in calls:
            pass
    else:
        out.extend(calls)
    elapsed = time.perf_counter() - start
    return elapsed, sum(feed.stats.messages.values())


def summarize(frames: int, seconds: list[float]) -> dict[str, Any]:
    rates = sorted(frames / s for s in seconds)
    return {"median": statistics.median(rates), "min": rates[0], "max": rates[-1], "runs": len(rates)}


# ---- cryptofeed, in its own virtualenv ------------------------------------------------------------

DRIVER = r"""
import asyncio, json, statistics, sys, time
from decimal import Decimal
from cryptofeed.defines import L2_BOOK, TICKER, TRADES
from cryptofeed.symbols import Symbols

spec = json.loads(sys.argv[1])
venue = spec["venue"]
frames = [line.decode() for line in open(spec["frames"], "rb").read().splitlines()]
if venue == "binance":
    frames = [f for f in frames if not f.startswith('{"stream":"btcusdt@trade"')]
    from cryptofeed.exchanges import Binance as Exchange
    pairs = {"BTC-USDT": "BTCUSDT"}
    channels, extra = [L2_BOOK, TICKER], {}
elif venue == "kraken":
    from cryptofeed.exchanges import Kraken as Exchange
    names = ["WAVES/EUR", "XMR/USD", "KSM/XBT", "GRT/ETH", "SC/EUR",
             "ETH/CHF", "OCEAN/XBT", "OMG/USD", "XBT/CHF", "ADA/XBT"]
    norm = lambda n: "-".join({"XBT": "BTC"}.get(p, p) for p in n.split("/"))
    pairs = {norm(n): n for n in names}
    channels, extra = [L2_BOOK], {"max_depth": 1000, "checksum_validation": True}
else:
    from cryptofeed.exchanges import Coinbase as Exchange
    names = ["SKL-USD", "SKL-BTC", "SKL-GBP", "BAND-GBP", "BAND-BTC",
             "NMR-EUR", "YFI-BTC", "DASH-BTC", "NU-GBP", "CRV-EUR"]
    pairs = {n: n for n in names}
    channels, extra = [L2_BOOK, TICKER, TRADES], {}
info = {"tick_size": {p: "0.00000001" for p in pairs}, "instrument_type": {p: "spot" for p in pairs}}

async def noop(*args, **kwargs):
    return None

class Snapshot:
    def __init__(self, body):
        self.body = body
    async def read(self, url, *args, **kwargs):
        return self.body

def make():
    Symbols.set(Exchange.id, dict(pairs), info)
    feed = Exchange(symbols=list(pairs), channels=channels, callbacks={c: noop for c in channels}, **extra)
    if venue == "binance":
        feed.http_conn = Snapshot(open(spec["snapshot"], "rb").read().decode())
    return feed

async def once():
    feed = make()
    handler = feed.message_handler
    start = time.perf_counter()
    for n, frame in enumerate(frames):
        await handler(frame, None, 1.0 + n)
    return time.perf_counter() - start

async def main():
    warm = await once()
    print(json.dumps({"frames": len(frames), "warm_up_s": warm}), flush=True)
    for line in sys.stdin:  # one timed run per line: its number of passes
        seconds = 0.0
        for _ in range(int(line)):
            seconds += await once()
        print(json.dumps({"seconds": seconds}), flush=True)

asyncio.run(main())
"""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tickrelay-bench"


def cryptofeed_python(version: str) -> Path:
    """The python of a virtualenv with cryptofeed ``version`` (created on first use)."""
    venv = cache_dir() / f"cryptofeed-{version}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"cryptofeed=={version}"], check=True)
    return python


class Cryptofeed:
    """cryptofeed over a venue's recording in its own virtualenv and process (one warm-up pass at start),
    one timed run per :meth:`run`, so that its runs can take turns with ours."""

    def __init__(self, venue: str) -> None:
        spec = {"venue": venue, "frames": str(FIXTURES / RECORDINGS[venue])}
        if venue == "binance":
            spec["snapshot"] = str(FIXTURES / SNAPSHOTS["binance"]["BTCUSDT"])
        python = cryptofeed_python(CRYPTOFEED[venue])
        self.proc = subprocess.Popen(
            [str(python), "-c", DRIVER, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        first = self._answer()
        self.frames: int = first["frames"]
        self.warm_up_s: float = first["warm_up_s"]

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the cryptofeed driver exited ({self.proc.wait()}): its error is above")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, passes: int) -> float:
        """Seconds for ``passes`` passes, each on a fresh feed."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{passes}\n")
        self.proc.stdin.flush()
        seconds: float = self._answer()["seconds"]
        return seconds

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def bench_venue(venue: str, runs: int, min_run_s: float, vs_cryptofeed: bool) -> dict[str, Any]:
    """Both cores over the venue's recording (native only where the build has its feed), and cryptofeed
    if asked: one warm-up pass each, then ``runs`` runs in which every side takes its turn."""
    frames = frames_for(venue)
    snapshots = {s: (FIXTURES / p).read_bytes() for s, p in SNAPSHOTS.get(venue, {}).items()}
    choice = core_choice(VENUES[venue](), "native")
    cores = ["python", "native"] if choice == "native" else ["python"]
    outputs: dict[str, list[bytes]] = {core: [] for core in cores}
    warm, values = {}, {}
    for core in cores:  # the warm-up
        warm[core], values[core] = tickrelay_once(venue, core, frames, snapshots, outputs[core])
    if choice == "native":
        assert b"".join(outputs["native"]) == b"".join(outputs["python"]), f"{venue}: the cores differ"

    def ours(core: str, passes: int) -> float:
        return sum(tickrelay_once(venue, core, frames, snapshots)[0] for _ in range(passes))

    sides: dict[str, Callable[[int], float]] = {core: partial(ours, core) for core in cores}
    theirs = Cryptofeed(venue) if vs_cryptofeed else None
    try:
        if theirs is not None:
            assert theirs.frames == len(frames), (theirs.frames, len(frames))
            sides = {"cryptofeed": theirs.run, **sides}
            warm["cryptofeed"] = theirs.warm_up_s
        passes = {side: max(1, math.ceil(min_run_s / warm[side])) for side in sides}
        seconds: dict[str, list[float]] = {side: [] for side in sides}
        for _ in range(runs):
            for side, run in sides.items():
                seconds[side].append(run(passes[side]) / passes[side])
    finally:
        if theirs is not None:
            theirs.close()
    return {
        "frames": len(frames),
        "native_core": choice,
        "values_out": values["python"],
        "passes": passes,
        **{side: summarize(len(frames), seconds[side]) for side in sides},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vs-cryptofeed", action="store_true", help="also run cryptofeed (own venvs)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per side (>= 5)")
    parser.add_argument(
        "--min-run-s", type=float, default=0.25, help="each run: whole passes filling this (by the warm-up)"
    )
    parser.add_argument("--venue", action="append", choices=sorted(RECORDINGS), help="only these venues")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be >= 5")
    venues: dict[str, Any] = {}
    for venue in args.venue or sorted(RECORDINGS):
        if venue not in VENUES:
            venues[venue] = {"skipped": "no feed for this venue in this build"}
            continue
        result = bench_venue(venue, args.runs, args.min_run_s, args.vs_cryptofeed)
        python, native = result["python"], result.get("native")
        row: dict[str, Any] = {
            "recording": RECORDINGS[venue],
            "frames": result["frames"],
            "native_core": result["native_core"],
            "native_msgs_per_s": round(native["median"]) if native else None,
            "native_spread": [round(native["min"]), round(native["max"])] if native else None,
            "python_msgs_per_s": round(python["median"]),
            "python_spread": [round(python["min"]), round(python["max"])],
            "values_out": result["values_out"],
            "native_over_python": round(native["median"] / python["median"], 2) if native else None,
            "passes_per_run": result["passes"],
            "cryptofeed_msgs_per_s": None,
            "ratio": None,
            "python_ratio": None,
        }
        theirs = result.get("cryptofeed")
        if theirs:
            row["cryptofeed_version"] = CRYPTOFEED[venue]
            row["cryptofeed_msgs_per_s"] = round(theirs["median"])
            row["cryptofeed_spread"] = [round(theirs["min"]), round(theirs["max"])]
            row["ratio"] = round(native["median"] / theirs["median"], 2) if native else None
            row["python_ratio"] = round(python["median"] / theirs["median"], 2)
        venues[venue] = row
    report = {
        "unit": "exchange frames to finished messages per second (median of runs after one warm-up pass)",
        "min_run_s": args.min_run_s,
        "runs": args.runs,
        "python": sys.version.split()[0],
        "venues": venues,
        "notes": "binance: trade frames left out of both sides (cryptofeed parses aggTrade, not trade)",
    }
    if args.json:
        print(json.dumps(report))
    else:
        for venue, row in venues.items():
            print(venue, json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
