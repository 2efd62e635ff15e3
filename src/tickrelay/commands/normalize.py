"""``tickrelay normalize``: run a recorded session through a venue feed, offline.

The recording is one raw WebSocket frame per line (``../shared/fixtures`` layout). Each frame goes
through the same core a collector runs (``venues.native.make_core`` over ``VENUES[venue]()``: the
compiled core where it is built and has this venue's feed, unless ``--core python``): its finished
Protocol V2 market-data messages (source = the venue's collector, stream id 1, counter from
1, timestamp_ns = ts_recv_ns, StateInvalidation(RECOVERED) after each resync) are written to
``--out`` byte for byte as a collector with that stream id would send them for the same frames.

ts_recv_ns: line N of ``<stem>.recv_ts_ns.txt`` (integer ns) or ``<stem>.recv_ts.txt`` (epoch seconds
as decimal text, converted exactly) beside the recording; without a sidecar, the line number
(1, 2, 3, ...), so the output is deterministic.

Binance depth snapshots (``--snapshot [SYMBOL=]FILE[@LINE]``): FILE is one REST ``/api/v3/depth`` body,
or a ``.rest-depth-snapshots.jsonl`` (one body per line) whose ``.request_url_recv_ts.txt`` sidecar
names each body's symbol. A snapshot is given to the feed after ``.jsonl`` line LINE when ``@LINE``
is given (the hftbacktest capture: ``@7``), otherwise when its symbol first asks for one, as a
collector would. Each body is used once.

Exit status: 0, or 1 on any integrity failure (sequence gap, checksum failure, crossed book, bookTicker
mismatch) or when every frame, or more than ``--max-reject-pct`` of them, was rejected (the wrong
``--venue`` for the recording rejects them all).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, BinaryIO

from tickrelay.commands import argtypes
from tickrelay.errors import ConfigError
from tickrelay.protocol.codec import COLLECTOR_SOURCES
from tickrelay.protocol.stamper import Stamper
from tickrelay.venues import VENUES
from tickrelay.venues.core import drive
from tickrelay.venues.feed import VenueFeed
from tickrelay.venues.native import NativeCore, core_choice, make_core


HELP = "Run a recorded session (one frame per line) through a venue feed; report counts and book checks."

STREAM_ID = 1


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--venue", required=True, choices=sorted(COLLECTOR_SOURCES), help="venue feed to use")
    parser.add_argument("file", type=Path, metavar="FILE.jsonl", help="recording: one raw frame per line")
    parser.add_argument(
        "--snapshot",
        action="append",
        default=[],
        metavar="[SYMBOL=]FILE[@LINE]",
        help="Binance REST depth body (or .rest-depth-snapshots.jsonl); @LINE: feed after that line",
    )
    parser.add_argument("--instruments", type=Path, help="Kraken v2 instrument message giving precisions")
    parser.add_argument("--out", type=Path, help="write the Protocol V2 stream here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--core",
        choices=("native", "python"),
        default="native",
        help="venue core: compiled where built and ported, else Python (as collector.core; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--max-reject-pct",
        type=argtypes.at_least(0.0),
        default=1.0,
        metavar="P",
        help="fail (exit 1) when more than P %% of the frames are rejected (default %(default)s)",
    )


@dataclasses.dataclass
class _Snapshot:
    symbol: str
    body: bytes
    after_line: int | None  # None: when the symbol asks


def seconds_to_ns(text: str) -> int:
    """Exact integer ns of epoch seconds written as decimal text (``1633998512.0633569``)."""
    whole, _, frac = text.strip().partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 9:
        raise ConfigError(f"not epoch seconds: {text!r}")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def receive_times(recording: Path, frames: int) -> list[int]:
    """ts_recv_ns of every frame: from the sidecar beside ``recording``, else the line numbers."""
    stem = str(recording.with_suffix(""))
    ns_file, s_file = Path(stem + ".recv_ts_ns.txt"), Path(stem + ".recv_ts.txt")
    if ns_file.exists():
        times = [int(line) for line in ns_file.read_text().split()]
    elif s_file.exists():
        times = [seconds_to_ns(line) for line in s_file.read_text().split()]
    else:
        return list(range(1, frames + 1))
    if len(times) < frames:
        raise ConfigError(
            f"{ns_file if ns_file.exists() else s_file}: {len(times)} times for {frames} frames"
        )
    return times[:frames]


def parse_snapshot_option(spec: str) -> list[_Snapshot]:
    """``[SYMBOL=]FILE[@LINE]`` -> the snapshot bodies it names."""
    symbol, sep, rest = spec.partition("=")
    if not sep:
        symbol, rest = "", spec
    path_text, at, line_text = rest.rpartition("@")
    if not (at and line_text.isdigit()):
        path_text, line_text = rest, ""
    after = int(line_text) if line_text else None
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"--snapshot {spec}: no such file {path}")
    urls = Path(str(path.with_suffix("")) + ".request_url_recv_ts.txt")
    if urls.exists():
        bodies = path.read_bytes().splitlines()
        names = [
            line.split()[0].partition("symbol=")[2].partition("&")[0]
            for line in urls.read_text().splitlines()
        ]
        if len(names) != len(bodies):
            raise ConfigError(f"--snapshot {spec}: {len(bodies)} bodies but {len(names)} lines in {urls}")
        return [
            _Snapshot(n, b, after) for n, b in zip(names, bodies, strict=True) if not symbol or n == symbol
        ]
    if not symbol:
        raise ConfigError(f"--snapshot {spec}: say which symbol the body is for (SYMBOL=FILE)")
    return [_Snapshot(symbol, path.read_bytes(), after)]


def _integrity_failures(report: dict[str, Any]) -> list[str]:
    failures = [
        f"{symbol}: {key} {book[key]}"
        for symbol, book in report["book"].items()
        for key in ("gaps", "checksum_failures", "crossed")
        if book[key]
    ]
    mismatched = report.get("cross_checks", {}).get("bookticker_mismatched", 0)
    if mismatched:
        failures.append(f"bookticker_mismatched {mismatched}")
    return failures


def _reject_failures(report: dict[str, Any], max_pct: float) -> list[str]:
    frames, rejected = report["frames"], sum(report["rejected"].values())
    if frames and rejected == frames:
        return [f"every frame rejected ({frames}): is this a {report['venue']} recording?"]
    if rejected * 100 > max_pct * frames:
        pct = rejected * 100 / frames
        return [f"{rejected} of {frames} frames rejected ({pct:.2f} %, over --max-reject-pct {max_pct:g})"]
    return []


def normalize(
    venue: str,
    frames: list[bytes],
    times: list[int],
    snapshots: list[_Snapshot],
    instruments: bytes | None,
    out: BinaryIO | None,
    core_name: str = "native",
) -> dict[str, Any]:
    """Run ``frames`` through a fresh feed of ``venue`` on the core ``core_name`` asks for (see
    ``--core``); return the report (see ``run``)."""
    factory = VENUES.get(venue)
    if factory is None:
        raise ConfigError(
            f"--venue {venue}: no feed for it in this build (have: {', '.join(sorted(VENUES))})"
        )
    feed: VenueFeed = factory()
    if instruments is not None:
        load = getattr(feed, "load_instruments", None)
        if load is None:
            raise ConfigError(f"--instruments: the {venue} feed takes no instrument file")
        load(instruments)
    if snapshots and not feed.SNAPSHOTS:
        takers = ", ".join(name for name, cls in sorted(VENUES.items()) if cls.SNAPSHOTS)
        raise ConfigError(f"--snapshot: the {venue} feed takes no REST snapshots (these do: {takers})")
    core = make_core(feed, Stamper(COLLECTOR_SOURCES[venue], STREAM_ID), core_name)
    fallback = None  # why the Python core runs when the native one was asked for
    if core_name != core.CORE:
        fallback = core_choice(feed, core_name).removeprefix("python (").removesuffix(")")
    at_line: dict[int, list[_Snapshot]] = {}
    on_ask: dict[str, list[_Snapshot]] = {}
    for snap in snapshots:
        if snap.after_line is None:
            on_ask.setdefault(snap.symbol, []).append(snap)
        else:
            at_line.setdefault(snap.after_line, []).append(snap)

    def due(line: int, wanted: list[str]) -> list[tuple[str, bytes]]:
        given = at_line.pop(line, []) + [on_ask[s].pop(0) for s in wanted if on_ask.get(s)]
        return [(snap.symbol, snap.body) for snap in given]

    for messages in drive(core, zip(frames, times, strict=True), due, at_line):
        if out is not None:
            out.write(messages)
    stats = core.stats
    report: dict[str, Any] = {
        "venue": venue,
        "core": core.CORE,
        "core_fallback": fallback,
        "frames": stats.frames,
        "messages": dict(sorted(stats.messages.items())),
        "ignored": dict(sorted(stats.ignored.items())),
        "rejected": dict(sorted(stats.rejected.items())),
        "rejected_samples": dict(sorted(stats.samples.items())),
        "venue_errors": stats.venue_errors,
        "rounded": stats.rounded,
        "book": {symbol: dataclasses.asdict(book) for symbol, book in stats.books.items()},
    }
    cross_checks = getattr(feed, "cross_checks", None)  # Binance: bookTicker against the book
    if cross_checks is not None:
        extra = core.extra if isinstance(core, NativeCore) else cross_checks
        report["cross_checks"] = {key: extra[key] for key in cross_checks}
    if core.SNAPSHOTS:
        report["awaiting_snapshot"] = core.wants_snapshot()
    report["integrity_failures"] = _integrity_failures(report)
    return report


def _summary(report: dict[str, Any]) -> str:
    why = f": {report['core_fallback']}" if report["core_fallback"] else ""
    lines = [f"{report['venue']}: {report['frames']} frames ({report['core']} core{why})"]
    for key in ("messages", "ignored", "rejected"):
        counts = report[key]
        lines.append(f"  {key}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none"))
    for symbol, book in report["book"].items():
        lines.append(
            f"  book {symbol}: {book['updates_applied']} updates, {book['gaps']} gaps,"
            f" {book['resyncs']} resyncs,"
            f" {book['checksums_verified']} checksums ok / {book['checksum_failures']} failed,"
            f" {book['crossed']} crossed, top {book['best_bid']} / {book['best_ask']}"
        )
    if "cross_checks" in report:
        cc = report["cross_checks"]
        lines.append(
            f"  bookTicker cross-check: {cc['bookticker_matched']} matched,"
            f" {cc['bookticker_mismatched']} mismatched"
        )
    if report.get("awaiting_snapshot"):
        lines.append("  awaiting a snapshot (none left to give): " + ", ".join(report["awaiting_snapshot"]))
    failures = report["integrity_failures"]
    lines.append("  integrity: " + ("FAILED: " + "; ".join(failures) if failures else "ok"))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    recording: Path = args.file
    if not recording.is_file():
        raise ConfigError(f"FILE.jsonl: no such file {recording}")
    frames = recording.read_bytes().splitlines()
    times = receive_times(recording, len(frames))
    snapshots = [snap for spec in args.snapshot for snap in parse_snapshot_option(spec)]
    instruments = None
    if args.instruments is not None:
        if not args.instruments.is_file():
            raise ConfigError(f"--instruments: no such file {args.instruments}")
        instruments = args.instruments.read_bytes()
    if args.out is not None:
        with args.out.open("wb") as out:
            report = normalize(args.venue, frames, times, snapshots, instruments, out, args.core)
    else:
        report = normalize(args.venue, frames, times, snapshots, instruments, None, args.core)
    report["integrity_failures"] += _reject_failures(report, args.max_reject_pct)
    if args.json:
        json.dump(report, sys.stdout, sort_keys=False)
        sys.stdout.write("\n")
    else:
        print(_summary(report))
    return 1 if report["integrity_failures"] else 0
