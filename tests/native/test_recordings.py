"""Every recording, through ``tickrelay normalize --core native`` and ``--core python``: the same
``--out`` bytes, the same JSON report (but the core's name) and the same exit status.

Every ``.jsonl`` of ``../shared/fixtures`` and every embedded recording (``src/tickrelay/data``,
gunzipped with its sidecars) runs, with the REST snapshot and instrument options the normalize tests
use. A venue whose feed the compiled core does not build yet is skipped, with the reason.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.native.corpus import EMBEDDED, FIXTURES, KRAKEN_V2_INSTRUMENTS, fixture_paths
from tickrelay.cli import main
from tickrelay.venues import VENUES
from tickrelay.venues.native import core_choice


CF = "cryptofeed_2021-10-12_combined_depth100ms-bookTicker-aggTrade-kline1m_4-symbols"
OPTIONS = {  # recording name -> the option sets to run it with ({stem}: the recording without .jsonl)
    f"{CF}.jsonl": [["--snapshot", "{stem}.rest-depth-snapshots.jsonl"],
                    ["--snapshot", "LRCBTC={stem}.rest-depth-snapshots.jsonl"]],
    "hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT.jsonl": [
        ["--snapshot", "BTCUSDT={stem}.rest-depth-snapshot.json@7"],
        ["--snapshot", "BTCUSDT={stem}.rest-depth-snapshot.json"],
    ],
    "rust-orderbook-feed_2026-07-04_raw-depth100ms_BTCUSDT.jsonl": [
        ["--snapshot", "BTCUSDT={stem}.rest-depth-snapshot.json"], []
    ],
    "cryptofeed_2021-10-12_combined_depth100ms-aggTrade-kline1m-bookTicker_4-symbols.jsonl": [
        ["--snapshot", "{stem}.rest-depth-snapshots.jsonl"]
    ],
    "python-kraken-sdk_2023-07-30_book-10_BTC-USD.jsonl": [["--instruments", "{instruments}"], []],
}  # fmt: skip


def runs(root: Path, label: str) -> list[pytest.ParameterSet]:
    params = []
    for path in fixture_paths() if root == FIXTURES else sorted(root.rglob("*.jsonl.gz")):
        rel = path.relative_to(root)
        venue = rel.parts[0]
        name = rel.name.removesuffix(".gz")
        for n, options in enumerate(OPTIONS.get(name, [[]])):
            why = core_choice(VENUES[venue](), "native")
            params.append(
                pytest.param(
                    venue,
                    path,
                    options,
                    id=f"{label}:{rel.parent}/{name[:40]}:{n}",
                    marks=pytest.mark.skipif(why != "native", reason=f"{venue}: {why}"),
                )
            )
    return params


def gunzipped(path: Path, into: Path) -> Path:
    """An embedded recording and its sidecars, gunzipped into ``into``; the recording's path there."""
    stem = path.name.removesuffix(".jsonl.gz")
    for part in path.parent.glob(stem + ".*.gz"):
        into.joinpath(part.name.removesuffix(".gz")).write_bytes(gzip.decompress(part.read_bytes()))
    return into / (stem + ".jsonl")


def normalize(
    capsys: pytest.CaptureFixture[str], args: list[str], core: str, out: Path
) -> tuple[int, dict[str, object]]:
    code = main(["normalize", *args, "--core", core, "--out", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (report.pop("core"), report.pop("core_fallback")) == (core, None)
    return code, report


def first_difference(a: bytes, b: bytes) -> str:
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"{len(a)} and {len(b)} bytes, first difference at byte {at}: {a[at:][:64]!r} / {b[at:][:64]!r}"


RUNS = runs(FIXTURES, "fixtures") + runs(EMBEDDED, "embedded")


@pytest.mark.parametrize(("venue", "path", "options"), RUNS)
def test_both_cores_write_the_same_stream_and_report(
    venue: str, path: Path, options: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recording = gunzipped(path, tmp_path) if path.suffix == ".gz" else path
    instruments = tmp_path / "instruments.json"
    instruments.write_bytes(KRAKEN_V2_INSTRUMENTS)
    stem = str(recording.with_suffix(""))
    given = [option.format(stem=stem, instruments=instruments) for option in options]
    args = ["--venue", venue, str(recording), *given]
    python = normalize(capsys, args, "python", tmp_path / "python.v2")
    native = normalize(capsys, args, "native", tmp_path / "native.v2")
    assert native == python
    ours, theirs = (tmp_path / "native.v2").read_bytes(), (tmp_path / "python.v2").read_bytes()
    assert ours == theirs, first_difference(ours, theirs)
    assert python[1]["frames"] == len(recording.read_bytes().splitlines())


def test_the_recordings_are_there() -> None:
    """The list above is made by globbing: a missing fixtures directory must fail, not run nothing."""
    names = {str(p.relative_to(FIXTURES)) for p in fixture_paths()}
    embedded = {str(p.relative_to(EMBEDDED)).removesuffix(".gz") for p in EMBEDDED.rglob("*.jsonl.gz")}
    assert len(names) == 10
    assert len(embedded) == 7
    assert embedded <= names
