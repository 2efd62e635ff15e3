"""Metrics: HDR percentiles against numpy, the exposition parsed back, `tickrelay stats` on real processes."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.relay.conftest import FIXTURES, ME
from tickrelay.commands.stats import scrape
from tickrelay.metrics import Latency, _Exporter, endpoints, serve
from tickrelay.replay.exchange import REPLAY_INSTRUMENTS
from tickrelay.runtime import free_port
from tickrelay.venues.coinbase import CoinbaseFeed
from tickrelay.venues.native import core_choice


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


def test_a_merged_histogram_has_the_percentiles_of_all_the_samples() -> None:
    rng = np.random.default_rng(11)
    fast = rng.integers(5_000, 20_000, size=9_000)  # e.g. quotes
    slow = rng.integers(800_000, 3_000_000, size=1_000)  # e.g. snapshots: a tenth, so P95 and up
    parts = [Latency(), Latency()]
    for part, samples in zip(parts, (fast, slow), strict=True):
        for value in samples:
            part.record(int(value))
    merged = Latency.merged(parts)
    everything = np.concatenate([fast, slow])
    assert merged.count == len(everything)
    for key, pct in (("p50", 50), ("p95", 95), ("p99", 99), ("p999", 99.9)):
        exact = float(np.percentile(everything, pct, method="higher")) / 1000
        assert merged.percentiles_us()[key] == pytest.approx(exact, rel=5e-3)  # 3 digits, and a rank
    assert parts[0].count == len(fast)  # the parts are left as they were


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
    key = (("type", "L2Delta"), ("venue", "kraken"))
    assert parsed[("tickrelay_processing_latency_seconds", (("quantile", "0.99"), *key))] == pytest.approx(
        3e-6, rel=1e-3
    )  # a summary in seconds, as promtool wants
    assert parsed[("tickrelay_processing_latency_seconds", (("quantile", "0.5"), *key))] == pytest.approx(
        2e-6, rel=1e-3
    )
    assert parsed[("tickrelay_processing_latency_seconds_count", key)] == 3
    assert parsed[("tickrelay_processing_latency_seconds_sum", key)] == pytest.approx(6e-6)


async def test_registry_files_and_stale_entries(tmp_path: Path) -> None:
    server = serve("test", 0, lambda: {}, tmp_path)
    try:
        (tmp_path / "metrics" / "dead-999999.json").write_text(
            json.dumps({"name": "dead", "pid": 999999, "port": 1})
        )
        assert endpoints(tmp_path) == [{"name": "test", "pid": os.getpid(), "port": server.port}]
    finally:
        server.close()


async def test_the_event_loop_serves_the_exposition(tmp_path: Path) -> None:
    """No HTTP thread: the loop that changes the counters answers the scrape, between its own steps, so
    the exporter never reads a dict while it changes size (it did from prometheus_client's thread)."""
    frames: dict[Any, Any] = {"_labels": ("venue",)}
    server = serve("test", 0, lambda: {"counters": {"frames": frames}}, tmp_path)
    try:
        for n in range(200):  # a new series per scrape: the dict changes size between scrapes
            frames[(f"venue{n}",)] = n
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            response = await reader.read()
            writer.close()
            await writer.wait_closed()
            head, _, body = response.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4")
            assert f'tickrelay_frames_total{{venue="venue{n}"}} {n}.0\n'.encode() in body
            assert body.count(b"tickrelay_frames_total{") == n + 1
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /other HTTP/1.1\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 404 Not Found\r\n")
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()


@pytest.mark.timeout(90)
def test_counters_are_exact_against_the_recorded_replay_and_stats_shows_them(tmp_path: Path) -> None:
    """The embedded Coinbase session, replayed once at full speed into a real collector, relay and
    consumer: every counter equals what `tickrelay normalize` finds in the same recording."""
    recording = (
        FIXTURES / "coinbase/exchange-ws-feed/cryptofeed_2021-04-17_level2-ticker-matches_10-products.jsonl"
    )
    expected = json.loads(
        subprocess.run([*ME, "normalize", "--venue", "coinbase", str(recording), "--json"],
                       capture_output=True, text=True, check=True).stdout
    )  # fmt: skip
    total = sum(expected["messages"].values())
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(tmp_path),
        **REPLAY_INSTRUMENTS,
        "TICKRELAY_METRICS_LATENCY_SAMPLE": "1",
        # one pass of the recording: a silent feed must not reconnect (and replay it again) while a
        # loaded machine is still carrying the first pass to the risk monitor
        "TICKRELAY_COLLECTOR_STALE_AFTER_S": "600",
    }
    sock, port = str(tmp_path / "md.sock"), free_port()
    ports = {name: free_port() for name in ("relay", "collect", "risk")}
    argvs = [
        [*ME, "relay", "--socket", sock, "--metrics-port", str(ports["relay"])],
        [*ME, "replay-exchange", "--port", str(port), "--speed", "max", "--no-loop"],
        [*ME, "risk", "--socket", sock, "--system-socket", str(tmp_path / "sys.sock"), "--metrics-port",
         str(ports["risk"]), "--stale-s", "600"],
    ]  # fmt: skip
    procs = [subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL) for argv in argvs]
    _wait_listening(sock, port)  # a collector that finds no exchange yet reconnects and invalidates
    procs.append(
        subprocess.Popen([*ME, "collect", "coinbase", "--socket", sock, "--url", f"ws://127.0.0.1:{port}/coinbase",
                          "--metrics-port", str(ports["collect"])], env=env, stderr=subprocess.DEVNULL)
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 40
        while True:  # the whole recording went through the relay to the risk monitor
            risk = _scrape(ports["risk"]).get("tickrelay_end_to_end_latency_seconds_count", {})
            if risk.get((("consumer", "risk"), ("source", "coinbase"))) == total:
                break
            assert time.monotonic() < deadline, risk
            time.sleep(0.2)
        collector = _scrape(ports["collect"])
        assert _by(collector["tickrelay_messages_total"], "type") == expected["messages"]  # 9,953 by type
        assert _by(collector.get("tickrelay_rejected_total", {}), "kind") == expected["rejected"] == {}
        # the replay exchange answers the subscribe with one ack; the recording's own are not replayed
        assert _by(collector["tickrelay_ignored_total"], "kind") == {"subscriptions": 1}
        assert collector["tickrelay_frames_total"][(("venue", "coinbase"),)] == (
            expected["frames"] - expected["ignored"]["subscriptions"] + 1
        )
        relay = _scrape(ports["relay"])
        md = (("domain", "market-data"),)
        assert relay["tickrelay_relay_messages_in_total"][md] == total
        assert relay["tickrelay_relay_deliveries_total"][md] == total  # one subscriber: the risk monitor
        assert relay["tickrelay_relay_dropped_total"][md] == 0
        assert relay["tickrelay_relay_subscribers"][md] == 1
        shown = json.loads(subprocess.run([*ME, "stats", "--json", "--interval", "0.2"], env=env,
                                          capture_output=True, text=True, timeout=30).stdout)  # fmt: skip
        coinbase = shown["venues"]["coinbase"]
        assert (coinbase["messages"], coinbase["errors"]) == (total, 0)
        core = core_choice(CoinbaseFeed(), "native").split()[0]  # collector.core's default
        assert coinbase["core"] == core
        assert set(coinbase["types"]) == set(expected["messages"])
        assert all(q["p99"] > 0 for q in coinbase["types"].values())
        samples = collector["tickrelay_processing_latency_seconds_count"]
        assert _by(samples, "type") == {**expected["messages"], "all": total}  # every message, by its type
        p99s = [q["p99"] for q in coinbase["types"].values()]
        assert min(p99s) <= coinbase["latency"]["p99"] <= max(p99s)  # every type's samples together
        assert shown["relays"]["market-data"]["messages_in"] == total
        assert shown["end_to_end"]["risk"]["coinbase"]["p99"] > 0
        table = subprocess.run(
            [*ME, "stats", "--interval", "0.2"], env=env, capture_output=True, text=True, timeout=30
        ).stdout.splitlines()
        assert table[0].split()[:3] == ["venue", "type", "msgs/s"]
        assert any(line.startswith("coinbase   L2Delta") for line in table)
        assert any(line.startswith("coinbase   all ") and line.endswith(f" {core}") for line in table)
        assert any(line.split()[:4] == ["market-data", "0", str(total), str(total)] for line in table)
        assert any(line.split()[:2] == ["risk", "coinbase"] for line in table)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(10)
    me = ME
    empty = subprocess.run(
        [*me, "stats"],
        env={**env, "XDG_RUNTIME_DIR": str(tmp_path / "none")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert empty.returncode == 1
    assert "no process serves metrics" in empty.stdout


def _wait_listening(sock: str, port: int, timeout_s: float = 30.0) -> None:
    """Until the relay's socket and the exchange's port accept connections (a loaded machine can take
    seconds to start them)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(sock)
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            assert time.monotonic() < deadline, "the relay or the replay exchange did not start"
            time.sleep(0.1)


def _scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    try:
        return scrape(port)
    except OSError:
        return {}  # not serving yet


def _by(series: dict[tuple[tuple[str, str], ...], float], label: str) -> dict[str, int]:
    return {dict(labels)[label]: int(value) for labels, value in series.items()}


def test_a_dropped_histogram_is_freed_at_once_not_at_a_full_collection() -> None:
    """A merged histogram is made per scrape (216 KiB of counts); hdrh's histogram <-> encoder cycle kept
    each until a full garbage collection, and a scraped collector grew by megabytes a minute."""
    parts = [Latency(), Latency()]
    parts[0].record(1_000)
    parts[1].record(3_000)
    gc.disable()
    try:
        merged = Latency.merged(parts)
        assert merged.count == 2
        assert merged.percentiles_us()["p99"] == pytest.approx(3.0, rel=1e-3)  # still works through the proxy
        freed = weakref.ref(merged.histogram)
        del merged
        assert freed() is None
    finally:
        gc.enable()
