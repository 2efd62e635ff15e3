"""Exchange etiquette, on real processes: a `tickrelay replay-exchange` with faults and `tickrelay
collect` against it; what the collector did is read from the JSON report it prints when stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.relay.conftest import ME
from tests.test_metrics import _scrape
from tickrelay.runtime import free_port


@contextmanager
def replay_exchange(*faults: str, speed: str = "max") -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """A replay exchange process with these faults; yields its port and the process."""
    args = [arg for fault in faults for arg in ("--fault", fault)]
    proc = subprocess.Popen(
        [*ME, "replay-exchange", "--port", "0", "--speed", speed, *args], stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    banner = proc.stderr.readline()
    assert banner.startswith("tickrelay replay-exchange: ws://127.0.0.1:"), banner
    try:
        yield int(banner.split("ws://127.0.0.1:")[1].split("/")[0]), proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)


class Collect:
    """A `tickrelay collect` process against a replay exchange, with its metrics endpoint."""

    def __init__(self, venue: str, tmp_path: Path, port: int, env: dict[str, str]) -> None:
        self.venue, self.metrics = venue, free_port()
        self.proc = subprocess.Popen(
            [*ME, "collect", venue, "--socket", str(tmp_path / "md.sock"), "--url",
             f"ws://127.0.0.1:{port}/{venue}", "--rest-url", f"http://127.0.0.1:{port}/binance",
             "--metrics-port", str(self.metrics)],
            env={**os.environ, **env}, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def value(self, name: str) -> float | None:
        """A metric of the running collector (None: not serving yet, or no such series)."""
        series = _scrape(self.metrics).get(f"tickrelay_{name}", {})
        return series.get((("venue", self.venue),))

    def wait_for(self, name: str, at_least: float, within_s: float = 60) -> None:
        deadline = time.monotonic() + within_s
        while (self.value(name) or 0) < at_least:
            assert time.monotonic() < deadline, f"{name} never reached {at_least}"
            time.sleep(0.1)


def report(proc: subprocess.Popen[str]) -> tuple[dict[str, object], str]:
    """Stop a collector; its JSON report (the last stderr line) and all of stderr."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    return json.loads(err.strip().splitlines()[-1]), err


def test_an_exchange_that_accepts_and_closes_at_once_gets_the_capped_backoff(tmp_path: Path) -> None:
    cap = 0.4
    with replay_exchange("accept-close") as (port, _):
        env = {
            "TICKRELAY_COLLECTOR_BACKOFF_CAP_S": str(cap),
            "KRAKEN_PAIRS": "XBT/USD",
            "TICKRELAY_KRAKEN_API": "v1",
        }
        started = time.monotonic()
        patient = Collect("kraken", tmp_path, port, env)  # reset_after_s: 30 s (the default)
        eager = Collect("kraken", tmp_path, port, {**env, "TICKRELAY_COLLECTOR_RESET_AFTER_S": "0"})
        patient.wait_for("reconnects_total", 1)  # running (a loaded machine takes seconds to start one)
        eager.wait_for("reconnects_total", 1)
        time.sleep(5.0)
        got, _ = report(patient.proc)
        elapsed = time.monotonic() - started  # from before the start: the bound below only loosens
        old, _ = report(eager.proc)
    stats = got["collector"]
    assert isinstance(stats, dict)
    assert stats["last_error"] == "the exchange closed the connection"
    assert cap / 2 <= stats["reconnect_delay_s"] <= cap  # grown to the cap (equal jitter: half or more)
    # 50 ms doubling to the cap takes 5 waits (>= 0.75 s of them), then one wait of >= cap/2 per connect
    assert 3 <= stats["connects"] <= 5 + elapsed / (cap / 2)
    assert stats["reconnects"] in (stats["connects"], stats["connects"] - 1)
    # reset_after_s = 0 is the old behaviour: every connection that opened reset the backoff
    old_stats = old["collector"]
    assert isinstance(old_stats, dict)
    assert old_stats["reconnect_delay_s"] <= 0.05
    assert old_stats["connects"] > 3 * stats["connects"]


def test_binance_snapshots_wait_out_429_and_stop_at_418(tmp_path: Path) -> None:
    env = {"BINANCE_SYMBOLS": "BTCUSDT"}
    paced = {"speed": "1"}  # the connection outlives the waits (at full speed the recording ends first)
    with (
        replay_exchange("http429=1", **paced) as (port, _),
        replay_exchange("http429=2", "http418", **paced) as (banned, _),
    ):
        throttled = Collect("binance", tmp_path, port, env)
        stopped = Collect("binance", tmp_path, banned, env)
        throttled.wait_for("rest_used_weight", 50)  # the snapshot after the 429
        stopped.wait_for("rest_banned", 1)  # after two 429s (Retry-After: 1 each)
        time.sleep(1.0)  # no request after the 418: the counts below stay as they are
        got, _ = report(throttled.proc)
        ban, err = report(stopped.proc)
    stats = got["collector"]
    assert isinstance(stats, dict)
    # one 429 waited out, then the snapshot: its book is published, the venue's used weight read
    assert (stats["rest_throttled"], stats["snapshot_errors"], stats["snapshots_fetched"]) == (1, 1, 1)
    assert stats["rest_used_weight"] == 50  # X-MBX-USED-WEIGHT-1M after one depth request at limit=1000
    assert not stats["rest_banned"]
    assert got["messages"]["L2Snapshot"] == 1  # type: ignore[index]
    # two 429s waited out (1 s each), then 418: no more requests, said once on stderr and in the report
    banned_stats = ban["collector"]
    assert isinstance(banned_stats, dict)
    assert banned_stats["rest_throttled"] == 2
    assert banned_stats["rest_banned"] is True
    assert (banned_stats["snapshot_errors"], banned_stats["snapshots_fetched"]) == (3, 0)
    line = "snapshot BTCUSDT: HTTP 418, this IP is banned for 120 s: no more REST snapshots from this process"
    assert banned_stats["last_error"].startswith(line)
    assert err.count(f"tickrelay collect binance: {line}") == 1  # said once on stderr
    assert "L2Snapshot" not in ban["messages"]  # type: ignore[operator]
    assert ban["frames"] > 0  # the WebSocket data still flows (trades, quotes)
