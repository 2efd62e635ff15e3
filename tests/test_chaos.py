"""bench/chaos.py's scenarios in their short form, as a user runs the benchmark: its JSON on stdout,
its exit code (0: every pass line held). The full runs and their figures are in the README."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tickrelay.native import compiled


pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def chaos(*args: str, timeout_s: float) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "chaos.py"), "--json", *args],
                          capture_output=True, text=True, timeout=timeout_s, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})  # fmt: skip
    report = json.loads(done.stdout)
    assert done.returncode == (0 if report["passed"] else 1), done.stderr[-3000:]
    return dict(report["scenarios"])


# (venue, fault) -> the reason that must mark it. Binance runs no corrupt frame: bench/chaos_exchange.py
EXCHANGE_FAULTS = {
    ("kraken", "close"): "disconnect", ("kraken", "stall"): "disconnect",
    ("kraken", "corrupt"): "checksum_mismatch",
    ("coinbase", "close"): "disconnect", ("coinbase", "stall"): "disconnect",
    ("coinbase", "corrupt"): "sequence_gap",
    ("binance", "close"): "disconnect", ("binance", "stall"): "disconnect",
}  # fmt: skip


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "core",
    [
        "python",
        pytest.param(
            "native", marks=pytest.mark.skipif(compiled is None, reason="the compiled core is not built")
        ),
    ],
)
def test_exchange_faults_are_each_marked_to_the_subscriber_and_recovered(core: str) -> None:
    """Each venue's collector (Kraken v2, Coinbase Advanced, Binance) on this core; about 40 s a core."""
    venues = ["--venues", "kraken,coinbase,binance", "--cores", core]
    got = chaos("--only", "exchange_faults", "--runs", "2", *venues, timeout_s=220)

    def name(venue: str, fault: str) -> str:  # Kraken on Python keeps the benchmark's short names
        return (
            f"exchange_{fault}"
            if (venue, core) == ("kraken", "python")
            else f"exchange_{fault}_{venue}_{core}"
        )

    assert list(got) == [name(venue, fault) for venue, fault in EXCHANGE_FAULTS]
    for (venue, fault), reason in EXCHANGE_FAULTS.items():
        s = got[name(venue, fault)]
        assert s["pass"], s
        assert (s["venue"], s["core"]) == (venue, core)  # the core asked for is the one that ran
        assert s["faults"] == s["collector_counted"] == 2
        assert s[f"invalidations_{reason}_per_fault"] == s["resets_per_fault"] == [1, 1]
        assert s["recovered_per_fault"] == [1, 1]  # the book is trusted again after each fault
        assert (s["other_invalidations"], s["subscriber_gaps"], s["stop_marked"]) == (0, 0, True)
        assert s["recovery_ms_min_max"][0] <= s["recovery_ms"] <= s["recovery_ms_min_max"][1]
        assert 0 <= s["detect_ms"] <= s["recovery_ms"]
        if fault == "close":
            assert s["exchange_connections"] == 3  # each closed one reconnected
        elif fault == "stall":
            assert s["collector_stale_events"] == s["collector_reconnects"] == 2
            assert s["detect_ms"] >= 500  # the stale watchdog's 0.5 s, no sooner
        else:
            assert s["collector_rejected"]["invalid_json"] == 2  # each corrupt frame counted
            # and, if any, an update of the old book already on the wire when the collector resubscribed
            assert set(s["collector_rejected"]) <= {"invalid_json", "book_update_before_snapshot"}
            assert (s["exchange_connections"], s["collector_reconnects"]) == (1, 0)  # a resubscribe


UP_TREE = {"up", "relay", "relay-signal", "relay-system", "replay-exchange", "collect-coinbase",
           "collect-binance", "collect-kraken", "strategy", "risk", "dashboard", "record"}  # fmt: skip


@pytest.mark.timeout(240)
def test_a_one_minute_up_soak_reads_every_process_and_leaves_no_orphan() -> None:
    s = chaos("--only", "soak", "--soak-minutes", "1", timeout_s=220)["soak"]
    assert s["pass"], s
    assert (s["minutes"], s["first_reading_s"], s["rss_mb_every_s"]) == (1, 30, 30)
    assert set(s["rss_mb_first"]) == set(s["rss_mb_last"]) == set(s["rss_growth_mb"]) == UP_TREE
    assert all(len(series) == 2 for series in s["rss_mb_series"].values())  # at 30 s and 60 s
    assert all(20 < mb < 500 for mb in s["rss_mb_last"].values())  # a Python process's size, read
    assert s["max_growth_mb"] == max(s["rss_growth_mb"].values()) < 5
    assert (s["restarted"], s["pids_seen"]) == ([], len(UP_TREE))  # the same processes throughout
    sent = s["published_after_first_reading"]
    assert set(sent) == {"collect-coinbase", "collect-binance", "collect-kraken"}
    assert all(n > 0 for n in sent.values())  # data flowed throughout
    assert (s["exit_code"], s["orphans"]) == (0, [])  # Ctrl-C stopped the whole tree
    assert 0 < s["stop_s"] < 30
