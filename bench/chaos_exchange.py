"""Chaos, exchange faults (bench/chaos.py runs it): a real `tickrelay collect VENUE` process against a
real `tickrelay replay-exchange` process with one fault, into a real relay process, and a subscriber in
this process that times what reaches it. By default the venue is Kraken and the core Python;
``exchange_faults(venues=..., cores=...)`` (chaos.py ``--venues``, ``--cores``) runs others too: their
scenarios are named ``exchange_<fault>_<venue>_<core>`` (Kraken on Python keeps the short names).

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

Coinbase runs its Advanced Trade API on DASH-BTC (its longest book recording, 1,926 level2 frames; the
trade and ticker streams have 16 frames each, so only the book stream reaches frame 101 or 200): frame
101 of every level2 subscription is corrupt, which the next frame's connection-wide ``sequence_num``
shows (SEQUENCE_GAP: the collector resubscribes level2). The Exchange API's level2 has no sequence, so a
lost update there cannot be detected at all. Binance runs BTCUSDT, close and stall only: a lost
depth update is a gap that needs a new REST snapshot, and the replay's REST snapshot is the recording's
first one, older than any mid-stream update, so no resync could complete against it.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp

from relayproc import RelayProc
from tickrelay.protocol.messages import Event, L2Delta, L2Reset, L2Snapshot, Reason, StateInvalidation
from tickrelay.transport.subscribe import Gap, Subscription


RATE = 200  # frames a second from the exchange
STALE_S = 0.5  # the collector's stale_after_s
RESET_AFTER_S = 0.5  # the collector's reset_after_s
# fault: (the exchange's --fault, the reason that must mark it, median recovery bound ms); None: the
# venue's own (Venue.corrupt: what its integrity check calls a corrupt frame)
FAULTS: dict[str, tuple[str, Reason | None, int]] = {
    "close": ("close-after=200", Reason.DISCONNECT, 500),
    "stall": ("stall=200:5", Reason.DISCONNECT, STALE_S * 1000 + 500),
    "corrupt": ("corrupt=101", None, 500),
}


class Venue(NamedTuple):
    path: str  # the replay exchange's WebSocket path
    env: dict[str, str]  # one instrument, on an API whose faults can be detected
    corrupt: Reason | None  # what must mark a corrupt frame (None: not run, see above)
    # a subscription that makes the replay build what it builds at the first one (Coinbase Advanced's
    # frames, 0.3 s or more): sent once before the collector starts, whose stale watchdog (STALE_S)
    # would otherwise count that wait as a fault of its own
    warm_up: str = ""


VENUES = {
    "kraken": Venue("kraken", {"TICKRELAY_KRAKEN_API": "v2", "KRAKEN_PAIRS": "BTC/USD"},
                    Reason.CHECKSUM_MISMATCH),
    "coinbase": Venue("coinbase/advanced", {"TICKRELAY_COINBASE_API": "advanced",
                                            "COINBASE_PRODUCTS": "DASH-BTC"}, Reason.SEQUENCE_GAP,
                      '{"type":"subscribe","product_ids":["DASH-BTC"],"channel":"level2"}'),
    "binance": Venue("binance", {"BINANCE_SYMBOLS": "BTCUSDT"}, None),
}  # fmt: skip


def scenario(fault: str, venue: str = "kraken", core: str = "python") -> str:
    """``exchange_close`` for Kraken on the Python core (the benchmark's default), else
    ``exchange_close_coinbase_native`` and so on."""
    return (
        f"exchange_{fault}" if (venue, core) == ("kraken", "python") else f"exchange_{fault}_{venue}_{core}"
    )


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


async def fault_run(
    tmp: Path, fault: str, faults: int, venue: str = "kraken", core: str = "python"
) -> dict[str, Any]:
    """Run one fault kind until the subscriber has seen ``faults`` of them recovered; its figures."""
    spec, fault_reason, bound_ms = FAULTS[fault]
    v = VENUES[venue]
    reason = v.corrupt if fault_reason is None else fault_reason
    assert reason is not None, f"{venue} has no corrupt-frame check to run {fault} against"
    name = scenario(fault, venue, core)
    relay = RelayProc(tmp / f"{name}.sock")
    relay.start()
    # --no-loop: a connection never ends at the end of a recording, which an unsubscribe can look like
    # to the replay (Coinbase Advanced resubscribes level2 as an unsubscribe, then a subscribe)
    exchange = RelayProc.spawn(
        "replay-exchange", "--port", "0", "--rate", str(RATE), "--fault", spec, "--no-loop"
    )
    assert exchange.stderr is not None
    port = int(exchange.stderr.readline().split("ws://127.0.0.1:")[1].split("/")[0])
    if v.warm_up:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"http://127.0.0.1:{port}/{v.path}") as ws,
        ):
            await ws.send_str(v.warm_up)
            await asyncio.wait_for(ws.receive(), 30)  # the answer comes once the frames are built
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
    env = {**v.env, "TICKRELAY_COLLECTOR_RESET_AFTER_S": str(RESET_AFTER_S)}
    collector = RelayProc.spawn("collect", venue, "--socket", str(relay.path), "--url",
                                f"ws://127.0.0.1:{port}/{v.path}", "--rest-url", f"http://127.0.0.1:{port}/binance",
                                "--stale-after", str(STALE_S), "--core", core, env=env)  # fmt: skip
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
    connections = int(said.split("stopped after ")[1].split()[0]) - bool(v.warm_up)
    got = figures(fault, spec, episodes(seen), report, connections, gaps, timed_out, reason, bound_ms)
    got["pass"] = got["pass"] and report["core"] == core  # and the core asked for is the one that ran
    return {"venue": venue, "core": report["core"], **got}


def figures(fault: str, spec: str, found: list[Episode], report: dict[str, Any], connections: int, gaps: int,
            timed_out: bool, reason: Reason, bound_ms: float) -> dict[str, Any]:  # fmt: skip
    """The scenario's figures and pass line from what the subscriber, the collector and the exchange saw."""
    done, last = [e for e in found if e.recovered], found[-1] if found else None
    stop_marked = last is not None and not last.recovered and last.invalidations["DISCONNECT"] >= 1
    collector = report["collector"]
    counted = {  # the collector's own count of this fault
        "close": collector["reconnects"],
        "stall": collector["stale_events"],
        "corrupt": report["rejected"].get("invalid_json", 0),
    }[fault]
    recovery = [(e.recovered - e.fault) * 1000 for e in done]
    detect = [(e.detected - e.fault) * 1000 for e in done]
    marked = [e.invalidations[reason.name] for e in done]
    resets = [e.resets for e in done]
    back = [e.recovered_markers for e in done]
    other = sum(sum(e.invalidations.values()) for e in done) - sum(marked)
    # the exchange's truth: close and stall end every connection (the last one by the collector's stop)
    exchange_ok = connections == collector["connects"] and (
        collector["reconnects"] == 0 if fault == "corrupt" else connections == counted + 1
    )
    every_marked = bool(done) and len(done) == counted and set(marked) == set(resets) == set(back) == {1}
    ok = (not timed_out and every_marked and not other and exchange_ok and stop_marked and not gaps
          and statistics.median(recovery) < bound_ms)  # fmt: skip
    return {"fault": spec, "rate_fps": RATE, "faults": len(done),
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


async def exchange_faults(tmp: Path, runs: int, venues: Sequence[str] = ("kraken",),
                          cores: Sequence[str] = ("python",)) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Each fault on each venue (those it can be detected on) with each core, one after the other."""
    out = {}
    for core in cores:
        for venue in venues:
            for fault in FAULTS:
                if fault != "corrupt" or VENUES[venue].corrupt is not None:
                    out[scenario(fault, venue, core)] = await fault_run(tmp, fault, runs, venue, core)
    return out
