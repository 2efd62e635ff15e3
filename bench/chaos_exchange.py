"""Chaos, exchange faults (bench/chaos.py runs it): a real `tickrelay collect kraken` process against a
real `tickrelay replay-exchange` process with one fault, into a real relay process, and a subscriber in
this process that times what reaches it.

The exchange streams the Kraken v2 BTC/USD book (depth 10, a CRC32 checksum on every update; v2 is
the collector's default API) at a steady RATE frames a second, and each fault repeats on its own:
every connection closes after 200 frames (close), every connection stops sending for 5 s after 200
frames (stall: the collector's stale watchdog, at STALE_S, must notice), frame 101 of every book
subscription is not JSON (corrupt: the update it replaced is missing, so the next checksum fails and
the collector resubscribes the book). Frame 101 is an update whose level the next frame does not set
again; frame 100's is (the same price, a new size), so its loss leaves the book right, passes the
next checksum and is rightly not marked: a corrupt frame is always counted, marked only if it mattered.
The collector's backoff starts over after a connection stayed up RESET_AFTER_S, so each fault is met
as a first one (an exchange failing every second would otherwise be retried at the cap, by design).

Per fault, at the subscriber: the fault time is the arrival of the last market-data message before
it (a stall or close comes right after that frame; a corrupt frame comes one frame gap, 5 ms, later),
detect_ms runs to the first invalidation or reset, recovery_ms to the first market-data message after
it (the book's new snapshot). What marked each fault to the consumer is counted (invalidations by
reason, L2Resets, RECOVERED markers), and compared with the collector's own counts (its JSON report)
and the exchange's (its connections).
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from relayproc import RelayProc
from tickrelay.protocol.messages import Event, L2Delta, L2Reset, L2Snapshot, Reason, StateInvalidation
from tickrelay.transport.subscribe import Gap, Subscription


RATE = 200  # frames a second from the exchange
STALE_S = 0.5  # the collector's stale_after_s
RESET_AFTER_S = 0.5  # the collector's reset_after_s
FAULTS = {  # scenario: (the exchange's --fault, the reason that must mark it, median recovery bound ms)
    "exchange_close": ("close-after=200", Reason.DISCONNECT, 500),
    "exchange_stall": ("stall=200:5", Reason.DISCONNECT, STALE_S * 1000 + 500),
    "exchange_corrupt": ("corrupt=101", Reason.CHECKSUM_MISMATCH, 500),
}


class Episode(NamedTuple):
    """One fault as the subscriber saw it (times in seconds, perf_counter)."""

    fault: float
    detected: float
    recovered: float  # 0.0: never (the collector's stop, at the end)
    invalidations: Counter[str]  # by reason
    resets: int
    recovered_markers: int


def episodes(seen: list[tuple[float, int, list[Event]]]) -> list[Episode]:
    """Cut the subscriber's messages (arrival, header time, values) into faults: from the first
    invalidation or reset after market data to the next market data; a RECOVERED marker counts for
    the fault it ends (it follows the new snapshot). The fault time is the arrival of the last market
    data of an earlier frame than the marking one (a frame whose checksum fails carries its own
    L2Delta before its invalidation; a frame's messages share its receipt time, their header time)."""
    out: list[Episode] = []
    current, last, before = None, (0.0, 0), 0.0  # last data (arrival, header time); last of an earlier frame
    for at, ts, events in seen:
        for e in events:
            if isinstance(e, StateInvalidation) and e.reason == Reason.RECOVERED:
                if current is None and out:
                    out[-1] = out[-1]._replace(recovered_markers=out[-1].recovered_markers + 1)
                elif current is not None:
                    current = current._replace(recovered_markers=current.recovered_markers + 1)
            elif isinstance(e, StateInvalidation | L2Reset) and last[0]:
                current = current or Episode(before if ts == last[1] else last[0], at, 0.0, Counter(), 0, 0)
                if isinstance(e, L2Reset):
                    current = current._replace(resets=current.resets + 1)
                else:
                    current.invalidations[Reason(e.reason).name] += 1
        if any(isinstance(e, L2Snapshot | L2Delta) for e in events):
            if current is not None:
                out.append(current._replace(recovered=at))
                current = None
            if ts != last[1]:
                before = last[0]
            last = (at, ts)
    return out + ([current] if current is not None else [])


def recovered(found: list[Episode]) -> int:
    return sum(1 for e in found if e.recovered)


async def fault_run(tmp: Path, name: str, faults: int) -> dict[str, Any]:
    """Run one fault kind until the subscriber has seen ``faults`` of them recovered; its figures."""
    spec, reason, bound_ms = FAULTS[name]
    relay = RelayProc(tmp / f"{name}.sock")
    relay.start()
    exchange = RelayProc.spawn("replay-exchange", "--port", "0", "--rate", str(RATE), "--fault", spec)
    assert exchange.stderr is not None
    port = int(exchange.stderr.readline().split("ws://127.0.0.1:")[1].split("/")[0])
    sub = Subscription(relay.path, buffer_bytes=64 << 20)
    seen: list[tuple[float, int, list[Event]]] = []
    gaps = 0
    enough = asyncio.Event()

    async def consume() -> None:
        nonlocal gaps
        async for item in sub:
            if isinstance(item, Gap):
                gaps += 1
                continue
            seen.append((time.perf_counter(), item.header.timestamp_ns, item.events()))
            if any(isinstance(e, L2Snapshot) for e in seen[-1][2]) and recovered(episodes(seen)) >= faults:
                enough.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(sub.connected.wait(), 10)
    env = {"TICKRELAY_KRAKEN_API": "v2", "KRAKEN_PAIRS": "BTC/USD",
           "TICKRELAY_COLLECTOR_RESET_AFTER_S": str(RESET_AFTER_S)}  # fmt: skip
    collector = RelayProc.spawn("collect", "kraken", "--socket", str(relay.path), "--url",
                                f"ws://127.0.0.1:{port}/kraken", "--stale-after", str(STALE_S),
                                env=env)  # fmt: skip
    timed_out = False
    try:
        await asyncio.wait_for(enough.wait(), 30 + 5 * faults)
    except TimeoutError:
        timed_out = True
    collector.send_signal(signal.SIGTERM)
    err = (await asyncio.to_thread(collector.communicate, timeout=15))[1]
    report = json.loads(err.strip().splitlines()[-1])
    await asyncio.sleep(0.5)  # the stop's invalidation reaches the subscriber
    task.cancel()
    exchange.send_signal(signal.SIGTERM)
    said = exchange.communicate(timeout=10)[1]
    relay.stop()
    connections = int(said.split("stopped after ")[1].split()[0])
    return figures(name, episodes(seen), report, connections, gaps, timed_out, reason, bound_ms)


def figures(name: str, found: list[Episode], report: dict[str, Any], connections: int, gaps: int,
            timed_out: bool, reason: Reason, bound_ms: float) -> dict[str, Any]:  # fmt: skip
    """The scenario's figures and pass line from what the subscriber, the collector and the exchange saw."""
    done, last = [e for e in found if e.recovered], found[-1] if found else None
    stop_marked = last is not None and not last.recovered and last.invalidations["DISCONNECT"] >= 1
    collector = report["collector"]
    counted = {  # the collector's own count of this fault
        "exchange_close": collector["reconnects"],
        "exchange_stall": collector["stale_events"],
        "exchange_corrupt": report["rejected"].get("invalid_json", 0),
    }[name]
    recovery = [(e.recovered - e.fault) * 1000 for e in done]
    detect = [(e.detected - e.fault) * 1000 for e in done]
    marked = [e.invalidations[reason.name] for e in done]
    resets = [e.resets for e in done]
    back = [e.recovered_markers for e in done]
    other = sum(sum(e.invalidations.values()) for e in done) - sum(marked)
    # the exchange's truth: close and stall end every connection (the last one by the collector's stop)
    exchange_ok = connections == collector["connects"] and (
        collector["reconnects"] == 0 if name == "exchange_corrupt" else connections == counted + 1
    )
    every_marked = bool(done) and len(done) == counted and set(marked) == set(resets) == set(back) == {1}
    ok = (not timed_out and every_marked and not other and exchange_ok and stop_marked and not gaps
          and statistics.median(recovery) < bound_ms)  # fmt: skip
    return {"fault": FAULTS[name][0], "rate_fps": RATE, "faults": len(done),
            "recovery_ms": round(statistics.median(recovery)) if done else None,
            "recovery_ms_min_max": [round(min(recovery)), round(max(recovery))] if done else None,
            "detect_ms": round(statistics.median(detect)) if done else None,
            "detect_ms_min_max": [round(min(detect)), round(max(detect))] if done else None,
            f"invalidations_{reason.name.lower()}_per_fault": marked, "resets_per_fault": resets,
            "recovered_per_fault": back, "other_invalidations": other,
            "collector_counted": counted, "collector_reconnects": collector["reconnects"],
            "collector_stale_events": collector["stale_events"], "collector_rejected": report["rejected"],
            "exchange_connections": connections, "stop_marked": stop_marked, "subscriber_gaps": gaps,
            "timed_out": timed_out, "recovery_bound_ms": bound_ms, "pass": ok}  # fmt: skip


async def exchange_faults(tmp: Path, runs: int) -> dict[str, dict[str, Any]]:
    return {name: await fault_run(tmp, name, runs) for name in FAULTS}
