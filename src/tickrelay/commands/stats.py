"""``tickrelay stats``: one table from every running tickrelay process's metrics endpoint."""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tickrelay import log
from tickrelay.commands import argtypes
from tickrelay.metrics import ALL_TYPES, QUANTILES, SLA_P99_US, endpoints
from tickrelay.transport.paths import runtime_dir


HELP = "per-venue msgs/s, processing P50/P95/P99/P99.9 and SLA, errors, from every running process"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument(
        "--interval",
        type=argtypes.positive,
        default=1.0,
        metavar="S",
        help="between the two scrapes (msgs/s)",
    )


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """metric name -> {sorted label items: value} of one endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return out


def scrape_all(run_dir: Path) -> list[dict[str, dict[tuple[tuple[str, str], ...], float]]]:
    """The metrics of every live registered endpoint (one that does not answer is skipped)."""
    found = []
    for entry in endpoints(run_dir):
        try:
            found.append(scrape(int(entry["port"])))
        except OSError:
            continue
    return found


def venue_summary(scraped: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per venue: messages, errors, the processing percentiles (µs) and SLA of all its messages
    (``latency``) and of each message type (``types``), and the venue core its collector runs
    (``core``: native or python; ``-`` from a collector that does not say)."""
    venues: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "messages": 0.0,
            "errors": 0.0,
            "latency": {},
            "types": {},
            "by_type": defaultdict(float),
            "core": "-",
        }
    )
    for metrics in scraped:
        for labels, _ in metrics.get("tickrelay_core", {}).items():
            d = dict(labels)
            venues[d["venue"]]["core"] = d["core"]
        for labels, value in metrics.get("tickrelay_messages_total", {}).items():
            d = dict(labels)
            venues[d["venue"]]["messages"] += value
            venues[d["venue"]]["by_type"][d["type"]] += value
        for labels, value in metrics.get("tickrelay_errors_total", {}).items():
            venues[dict(labels)["venue"]]["errors"] += value
        for d, key, value in _quantiles_us(metrics, "tickrelay_processing_latency_seconds"):
            venue = venues[d["venue"]]
            row = venue["latency"] if d["type"] == ALL_TYPES else venue["types"].setdefault(d["type"], {})
            row[key] = value
    for venue in venues.values():
        for row in (venue["latency"], *venue["types"].values()):
            if row:
                row["sla_ok"] = row.get("p99", 0.0) < SLA_P99_US
    return dict(venues)


def relay_summary(scraped: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per relay domain: messages in, deliveries, dropped, rejected publishers, subscribers."""
    names = {
        "tickrelay_relay_messages_in_total": "messages_in",
        "tickrelay_relay_deliveries_total": "deliveries",
        "tickrelay_relay_dropped_total": "dropped",
        "tickrelay_relay_rejected_total": "rejected",
        "tickrelay_relay_subscribers": "subscribers",
        "tickrelay_relay_publishers": "publishers",
    }
    relays: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(names.values(), 0.0))
    for metrics in scraped:
        for metric, key in names.items():
            for labels, value in metrics.get(metric, {}).items():
                relays[dict(labels)["domain"]][key] += value
    return dict(relays)


def end_to_end_summary(scraped: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per consumer and source: end-to-end latency percentiles (µs)."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for metrics in scraped:
        for d, key, value in _quantiles_us(metrics, "tickrelay_end_to_end_latency_seconds"):
            out[d["consumer"]].setdefault(d["source"], {})[key] = value
    return dict(out)


def _quantiles_us(metrics: dict[str, Any], name: str) -> Iterator[tuple[dict[str, str], str, float]]:
    """The quantile samples of summary ``name``: (the other labels, p50 / p95 / p99 / p999, µs)."""
    for labels, seconds in metrics.get(name, {}).items():
        d = dict(labels)
        key = QUANTILES.get(d.pop("quantile", ""))
        if key is not None:
            yield d, key, seconds * 1e6


def _progress(text: str) -> None:
    """What stats is doing, on stderr (stdout keeps the table or the JSON)."""
    log.logger("stats").info(f"{text}")


def run(args: argparse.Namespace) -> int:
    run_dir = runtime_dir(os.environ.get("XDG_RUNTIME_DIR"))
    _progress(f"reading {len(endpoints(run_dir))} metrics endpoint(s) under {run_dir / 'metrics'}")
    started = time.monotonic()
    before = scrape_all(run_dir)
    scraped, elapsed = before, args.interval
    if before:
        _progress(f"reading them again in {args.interval:g} s, for the rates")
        time.sleep(args.interval)
        elapsed = time.monotonic() - started  # measured: the scrapes take time too
        scraped = scrape_all(run_dir)
    first, second = venue_summary(before), venue_summary(scraped)
    for venue, row in second.items():
        was = first.get(venue, {})
        row["msgs_per_s"] = (row["messages"] - was.get("messages", 0.0)) / elapsed
        row["type_msgs_per_s"] = {
            t: (n - was.get("by_type", {}).get(t, 0.0)) / elapsed for t, n in row["by_type"].items()
        }
    relays_then, relays = relay_summary(before), relay_summary(scraped)
    for domain, row in relays.items():
        row["in_per_s"] = (row["messages_in"] - relays_then.get(domain, {}).get("messages_in", 0.0)) / elapsed
    e2e = end_to_end_summary(scraped)
    if args.json:
        print(json.dumps({"venues": second, "relays": relays, "end_to_end": e2e}))
        return 0
    if not scraped:
        print(
            f"tickrelay stats: no process serves metrics under {run_dir / 'metrics'} "
            "(start collectors with --metrics-port, or `tickrelay up`)"
        )
        return 1
    print(
        f"{'venue':10} {'type':14} {'msgs/s':>9} {'P50 µs':>8} {'P95 µs':>8} {'P99 µs':>8} {'P99.9 µs':>9} "
        f"{'SLA P99<' + format(SLA_P99_US, 'g'):>10} {'errors':>7} core"
    )
    for venue, row in sorted(second.items()):
        rows = [(ALL_TYPES, row["latency"])] if row["latency"] else []
        for kind, q in rows + sorted(row["types"].items()) or [("-", {})]:
            verdict = "pass" if q.get("sla_ok") else ("FAIL" if q else "-")
            latency = " ".join(
                f"{q.get(k, 0):{w}.1f}" for k, w in (("p50", 8), ("p95", 8), ("p99", 8), ("p999", 9))
            )
            rate = row["msgs_per_s"] if kind == ALL_TYPES else row["type_msgs_per_s"].get(kind, 0.0)
            errors, core = row["errors"], row["core"]
            print(f"{venue:10} {kind:14} {rate:9.0f} {latency} {verdict:>10} {errors:7.0f} {core}")
    if relays:
        print(
            f"\n{'relay':12} {'in/s':>9} {'in':>11} {'deliveries':>11} {'dropped':>8} {'rejected':>8} "
            f"{'subs':>5}"
        )
        for domain, r in sorted(relays.items()):
            print(
                f"{domain:12} {r['in_per_s']:9.0f} {r['messages_in']:11.0f} {r['deliveries']:11.0f} "
                f"{r['dropped']:8.0f} {r['rejected']:8.0f} {r['subscribers']:5.0f}"
            )
    if e2e:
        print(f"\n{'end to end':12} {'source':10} {'P50 µs':>9} {'P99 µs':>9} {'P99.9 µs':>9}")
        for consumer, sources in sorted(e2e.items()):
            for source, q in sorted(sources.items()):
                print(
                    f"{consumer:12} {source:10} {q.get('p50', 0):9.1f} {q.get('p99', 0):9.1f} "
                    f"{q.get('p999', 0):9.1f}"
                )
    return 0
