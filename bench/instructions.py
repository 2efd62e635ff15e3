"""Instructions per frame of a venue core, counted by valgrind's callgrind: a figure the load of a shared
machine does not move, for comparing changes to the per-frame path (not a speed: see normalize.py).

    python3 bench/instructions.py [--core native|python] [--venue V] [--json]

What is counted is exactly what ``bench/normalize.py`` times: one fresh core over the venue's whole
recording through ``make_core`` and ``drive`` (frames to finished messages). The child process makes
one warm-up run and then 0 or 1 counted runs; the difference of the two totals over the frames is the
figure (Python's start-up, imports and the warm-up cancel out). Needs ``valgrind`` on the PATH; about
20-60 s per venue.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
import normalize as n
venue, core, runs = sys.argv[2], sys.argv[3], int(sys.argv[4])
frames = n.frames_for(venue)
snapshots = {s: (n.FIXTURES / p).read_bytes() for s, p in n.SNAPSHOTS.get(venue, {}).items()}
n.tickrelay_once(venue, core, frames, snapshots, [])
for _ in range(runs):
    n.tickrelay_once(venue, core, frames, snapshots)
print(len(frames))
"""


def collected(venue: str, core: str, runs: int) -> tuple[int, int]:
    """(instructions callgrind counted, frames) for a child making ``runs`` counted runs."""
    child = [sys.executable, "-c", CHILD, str(ROOT / "bench"), venue, core, str(runs)]
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", *child],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    assert found, proc.stderr[-2000:]
    return int(found.group(1)), int(proc.stdout.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core", default="native", choices=["native", "python"])
    parser.add_argument("--venue", action="append", help="only these venues (default: all three)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures: dict[str, int] = {}
    for venue in args.venue or ["coinbase", "binance", "kraken"]:
        (base, frames), (counted, _) = collected(venue, args.core, 0), collected(venue, args.core, 1)
        figures[venue] = round((counted - base) / frames)
    if args.json:
        print(json.dumps({"core": args.core, "unit": "instructions per frame", "venues": figures}))
    else:
        for venue, n in figures.items():
            print(f"{venue}: {n:,} instructions per frame ({args.core} core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
