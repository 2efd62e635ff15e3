"""Metrics: HDR percentiles against numpy, the exposition parsed back, `tickrelay stats` on real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tickrelay.metrics import Latency, _Exporter, endpoints, serve


def test_percentiles_match_numpy_within_hdr_precision() -> None:
    rng = np.random.default_rng(7)
    samples = rng.lognormal(mean=10, sigma=1.2, size=50_000).astype(np.int64) + 1  # ns, heavy-tailed
    latency = Latency()
    for value in samples:
        latency.record(int(value))
    got = latency.percentiles_us()
    assert latency.count == len(samples)
    for key, pct in (("p50", 50), ("p95", 95), ("p99", 99), ("p999", 99.9)):
        exact = float(np.percentile(samples, pct, method="higher")) / 1000
        assert got[key] == pytest.approx(exact, rel=2e-3)  # 3 significant digits


def test_out_of_range_values_are_clamped_not_lost() -> None:
    latency = Latency()
    latency.record(0)
    latency.record(-5)
    latency.record(10**12)
    assert latency.count == 3
    assert latency.percentiles_us()["p50"] == pytest.approx(0.001)


def test_the_exposition_parses_back_to_the_snapshot() -> None:
    lat = Latency()
    for ns in (1000, 2000, 3000):
        lat.record(ns)
    snapshot = {
        "counters": {
            "frames": {"_labels": ("venue",), ("kraken",): 4321},
            "errors": {"_labels": ("venue", "kind"), ("kraken", "parse"): 2, ("kraken", "encode"): 0},
        },
        "gauges": {"relay_connected": {"_labels": ("venue",), ("kraken",): 1}},
        "latency": {("kraken", "L2Delta"): lat},
    }
    registry = CollectorRegistry()
    registry.register(_Exporter(lambda: snapshot))
    parsed = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
    }
    assert parsed[("tickrelay_frames_total", (("venue", "kraken"),))] == 4321
    assert parsed[("tickrelay_errors_total", (("kind", "parse"), ("venue", "kraken")))] == 2
    assert parsed[("tickrelay_relay_connected", (("venue", "kraken"),))] == 1
    key = (("quantile", "p99"), ("type", "L2Delta"), ("venue", "kraken"))
    assert parsed[("tickrelay_processing_latency_us", key)] == pytest.approx(3.0, rel=1e-3)
    assert (
        parsed[("tickrelay_processing_latency_samples_total", (("type", "L2Delta"), ("venue", "kraken")))]
        == 3
    )


def test_registry_files_and_stale_entries(tmp_path: Path) -> None:
    port = serve("test", 0, lambda: {}, tmp_path)
    (tmp_path / "metrics" / "dead-999999.json").write_text(
        json.dumps({"name": "dead", "pid": 999999, "port": 1})
    )
    assert endpoints(tmp_path) == [{"name": "test", "pid": os.getpid(), "port": port}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(60)
def test_stats_reads_real_collectors(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    sock, port = str(tmp_path / "md.sock"), _free_port()
    me = [sys.executable, "-m", "tickrelay"]
    procs = [
        subprocess.Popen([*me, "relay", "--socket", sock], env=env, stderr=subprocess.DEVNULL),
        subprocess.Popen(
            [*me, "replay-exchange", "--port", str(port), "--speed", "max", "--no-loop"],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
    ]
    time.sleep(1.0)
    procs.append(
        subprocess.Popen(
            [
                *me,
                "collect",
                "coinbase",
                "--socket",
                sock,
                "--url",
                f"ws://127.0.0.1:{port}/coinbase",
                "--metrics-port",
                str(_free_port()),
            ],
            env={**env, "COINBASE_PRODUCTS": "SKL-USD,YFI-BTC"},
            stderr=subprocess.DEVNULL,
        )
    )
    try:
        deadline, shown = time.monotonic() + 30, {}
        while time.monotonic() < deadline:
            done = subprocess.run(
                [*me, "stats", "--json", "--interval", "0.2"],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            shown = json.loads(done.stdout) if done.returncode == 0 and done.stdout.startswith("{") else {}
            if shown.get("coinbase", {}).get("messages", 0) >= 4000:
                break
            time.sleep(0.5)
        coinbase = shown["coinbase"]
        assert coinbase["errors"] == 0
        assert {"L2Delta", "L2Snapshot", "Trade"} <= set(coinbase["types"])
        assert all(q["p99"] > 0 for q in coinbase["types"].values())
        table = subprocess.run(
            [*me, "stats", "--interval", "0.2"], env=env, capture_output=True, text=True, timeout=30
        ).stdout
        assert table.splitlines()[0].split()[:3] == ["venue", "type", "msgs/s"]
        assert any(line.startswith("coinbase   L2Delta") for line in table.splitlines())
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(10)
    empty = subprocess.run(
        [*me, "stats"],
        env={**env, "XDG_RUNTIME_DIR": str(tmp_path / "none")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert empty.returncode == 1
    assert "no process serves metrics" in empty.stdout
