"""``tickrelay normalize`` over the recorded Binance captures: report, Protocol V2 output, exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tickrelay.cli import main
from tickrelay.commands.normalize import receive_times, seconds_to_ns
from tickrelay.errors import ConfigError
from tickrelay.protocol.codec import Decoder, Source, make_sequence
from tickrelay.protocol.messages import InstrumentMeta, L2Snapshot, Quote
from tickrelay.protocol.symbols import asset_id_for


FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "binance"
HFT = FIXTURES / "spot" / "hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT"
CF = FIXTURES / "spot" / "cryptofeed_2021-10-12_combined_depth100ms-bookTicker-aggTrade-kline1m_4-symbols"
RUST = FIXTURES / "spot" / "rust-orderbook-feed_2026-07-04_raw-depth100ms_BTCUSDT"


def normalize_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = main(["normalize", "--venue", "binance", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_hftbacktest_report_and_protocol_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "btcusdt.tr2"
    code, report = normalize_json(
        capsys, f"{HFT}.jsonl", "--snapshot", f"BTCUSDT={HFT}.rest-depth-snapshot.json@7", "--out", str(out)
    )
    assert code == 0
    assert report["frames"] == 41248
    assert report["messages"] == {
        "InstrumentMeta": 1,
        "L2Delta": 3449,
        "L2Snapshot": 1,
        "Quote": 28040,
        "Trade": 9757,
    }
    assert report["ignored"] == {"depthUpdate:buffered": 3}
    assert report["rejected"] == {}
    assert report["book"] == {
        "BTCUSDT": {
            "updates_applied": 3449,
            "checksums_verified": 0,
            "checksum_failures": 0,
            "gaps": 0,
            "resyncs": 0,
            "crossed": 0,
            "best_bid": "61685.99000000",
            "best_ask": "61686.00000000",
        }
    }
    assert report["cross_checks"] == {"bookticker_matched": 564, "bookticker_mismatched": 0}
    assert report["integrity_failures"] == []

    decoder = Decoder(require_checksum=True)
    decoder.feed(out.read_bytes())
    messages = list(decoder)
    assert decoder.buffered == 0
    assert len(messages) == 41248 - 3 + 3  # all frames but 3 buffered diffs; + meta, snapshot, its diff
    recv = [int(t) for t in Path(f"{HFT}.recv_ts_ns.txt").read_text().split()]
    assert [m.header.sequence for m in messages[:3]] == [make_sequence(1, k) for k in (1, 2, 3)]
    assert all(m.header.source == Source.BINANCE_COLLECTOR and m.header.relay_domain == 1 for m in messages)
    assert messages[-1].header.sequence == make_sequence(1, len(messages))
    meta, quote = messages[0].events() + messages[1].events()
    btc = asset_id_for("BTC/USDT")
    assert meta == InstrumentMeta(btc, 100, 51, 8, 8, "BTCUSDT", "BTC/USDT")
    # .jsonl line 3 is the first bookTicker: {"u":50093239212,...,"b":"61837.63000000","B":"3.78826000",...}
    assert quote == Quote(btc, 6183763000000, 378826000, 6183764000000, 154698000, 0, 100, 51)
    assert messages[1].header.timestamp_ns == recv[2]
    (snap,) = [e for m in messages for e in m.events() if isinstance(e, L2Snapshot)]
    assert snap.exchange_seq == 50093239218
    snap_msg = next(m for m in messages if m.events()[0] == snap)
    assert snap_msg.header.timestamp_ns == recv[6]  # handed over after .jsonl line 7


def test_multi_body_snapshot_file_names_its_symbols(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = normalize_json(capsys, f"{CF}.jsonl", "--snapshot", f"{CF}.rest-depth-snapshots.jsonl")
    assert code == 0
    assert report["cross_checks"] == {"bookticker_matched": 26, "bookticker_mismatched": 0}
    books = report["book"]
    assert isinstance(books, dict)
    assert {s: b["updates_applied"] for s, b in books.items()} == {
        "NKNUSDT": 149,
        "BLZETH": 9,
        "LRCBTC": 13,
        "RUNEEUR": 1,
    }
    assert report["ignored"] == {"depthUpdate:buffered": 4, "depthUpdate:stale": 1, "kline": 2}
    assert report["awaiting_snapshot"] == []


def test_one_symbol_from_a_multi_body_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = normalize_json(
        capsys, f"{CF}.jsonl", "--snapshot", f"LRCBTC={CF}.rest-depth-snapshots.jsonl"
    )
    assert code == 0
    assert report["awaiting_snapshot"] == ["NKNUSDT", "BLZETH", "RUNEEUR"]
    books = report["book"]
    assert isinstance(books, dict)
    assert books["LRCBTC"]["updates_applied"] == 13
    assert books["NKNUSDT"]["updates_applied"] == 0


def test_deleted_diff_fails_integrity_in_a_real_process(tmp_path: Path) -> None:
    lines = Path(f"{CF}.jsonl").read_bytes().splitlines(keepends=True)
    nkn = [i for i, raw in enumerate(lines) if raw.startswith(b'{"stream":"nknusdt@depth')]
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[: nkn[60]] + lines[nkn[60] + 1 :]))
    proc = subprocess.run(
        [sys.executable, "-m", "tickrelay", "normalize", "--venue", "binance", str(cut), "--snapshot",
         f"{CF}.rest-depth-snapshots.jsonl"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "book NKNUSDT: 59 updates, 1 gaps, 1 resyncs" in proc.stdout
    assert "book LRCBTC: 13 updates, 0 gaps, 0 resyncs" in proc.stdout
    assert "integrity: FAILED: NKNUSDT: gaps 1" in proc.stdout
    assert "awaiting a snapshot (none left to give): NKNUSDT" in proc.stdout


def test_without_a_sidecar_timestamps_are_line_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rust.tr2"
    code = main(
        ["normalize", "--venue", "binance", f"{RUST}.jsonl", "--snapshot",
         f"BTCUSDT={RUST}.rest-depth-snapshot.json", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    assert "integrity: ok" in capsys.readouterr().out
    decoder = Decoder()
    decoder.feed(out.read_bytes())
    stamps = [m.header.timestamp_ns for m in decoder]
    assert stamps == [1, 10, 10, 11, 12, 13, 14, 15, 16, 17, 18]  # meta at line 1; diff 10 syncs


def test_seconds_sidecar_converts_exactly() -> None:
    assert seconds_to_ns("1633998512.0633569") == 1633998512063356900
    assert seconds_to_ns("1633998512") == 1633998512000000000
    assert receive_times(Path(f"{CF}.jsonl"), 2) == [1633998512063356900, 1633998512564785000]
    for bad in ("x", "1.2.3", "1.0000000001", "-1.5"):
        with pytest.raises(ConfigError):
            seconds_to_ns(bad)


def test_short_sidecar_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "a.recv_ts_ns.txt").write_text("1\n2\n")
    with pytest.raises(ConfigError, match="2 times for 3 frames"):
        receive_times(tmp_path / "a.jsonl", 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--venue", "binance", "missing.jsonl"], "no such file"),
        (
            ["--venue", "binance", f"{RUST}.jsonl", "--snapshot", f"{RUST}.rest-depth-snapshot.json"],
            "which symbol",
        ),
        (["--venue", "binance", f"{RUST}.jsonl", "--snapshot", "BTCUSDT=missing.json"], "no such file"),
        (["--venue", "binance", f"{RUST}.jsonl", "--instruments", "missing.json"], "no such file"),
        (
            ["--venue", "binance", f"{RUST}.jsonl", "--instruments", f"{RUST}.rest-depth-snapshot.json"],
            "takes no",
        ),
    ],
)
def test_bad_options_exit_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["normalize", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_snapshot_for_another_venue_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "normalize",
            "--venue",
            "coinbase",
            f"{RUST}.jsonl",
            "--snapshot",
            f"BTCUSDT={RUST}.rest-depth-snapshot.json",
        ]
    )
    assert code == 2
    assert "binance" in capsys.readouterr().err


def test_the_wrong_venue_rejects_every_frame_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    """A Binance capture through the Kraken feed: 41,248 rejects used to end "integrity: ok", exit 0."""
    assert main(["normalize", "--venue", "kraken", f"{HFT}.jsonl"]) == 1
    out = capsys.readouterr().out
    assert "  rejected: unknown:None 41248\n" in out
    assert out.endswith("  integrity: FAILED: every frame rejected (41248): is this a kraken recording?\n")


def test_rejects_over_the_threshold_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """3 good frames and 1 that is not JSON: 25 % rejected, over the default 1 %; 30 % is allowed."""
    lines = (CF.with_suffix(".jsonl")).read_bytes().splitlines()[:3]
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"\n".join([*lines, b"{not json"]) + b"\n")
    assert main(["normalize", "--venue", "binance", str(cut)]) == 1
    out = capsys.readouterr().out
    assert out.endswith("integrity: FAILED: 1 of 4 frames rejected (25.00 %, over --max-reject-pct 1)\n")
    assert main(["normalize", "--venue", "binance", str(cut), "--max-reject-pct", "30"]) == 0
    assert capsys.readouterr().out.endswith("integrity: ok\n")


def test_the_report_names_the_core_and_why_python_ran(capsys: pytest.CaptureFixture[str]) -> None:
    args = [f"{RUST}.jsonl", "--snapshot", f"BTCUSDT={RUST}.rest-depth-snapshot.json"]
    code, report = normalize_json(capsys, *args, "--core", "python")
    assert (code, report["core"], report["core_fallback"]) == (0, "python", None)
    assert main(["normalize", "--venue", "binance", *args, "--core", "python"]) == 0
    assert capsys.readouterr().out.startswith("binance: 18 frames (python core)\n")
    env = {**os.environ, "TICKRELAY_NO_EXTENSIONS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "tickrelay", "normalize", "--venue", "binance", *args, "--json"],
        capture_output=True, text=True, check=True, timeout=120, env=env,
    )  # fmt: skip
    assert {k: v for k, v in json.loads(proc.stdout).items() if k.startswith("core")} == {
        "core": "python",  # the default is native, where it is built
        "core_fallback": "TICKRELAY_NO_EXTENSIONS is set",
    }
