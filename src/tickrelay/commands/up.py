"""``tickrelay up``: the main job. Relay, replay exchange (or the live exchanges), three collectors and
every consumer, as supervised child processes, with a live summary; Ctrl-C stops it all."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import socket
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tickrelay import runtime
from tickrelay.commands.config import read_settings
from tickrelay.commands.relay_status import fetch_status
from tickrelay.commands.stats import end_to_end_summary, relay_summary, scrape_all, venue_summary
from tickrelay.commands.strategy import scraped_verdicts
from tickrelay.consumers.strategy import SignalKey, headline, track_open
from tickrelay.errors import RelayError
from tickrelay.protocol.codec import Domain, Message
from tickrelay.protocol.messages import (
    TYPE_OF,
    Alert,
    Severity,
    SignalState,
    SpreadSignal,
    StateInvalidation,
    UnknownTlv,
)
from tickrelay.protocol.symbols import name_of, venue_name
from tickrelay.replay.exchange import REPLAY_INSTRUMENTS, collector_env
from tickrelay.transport.backoff import backoff
from tickrelay.transport.paths import runtime_dir, socket_path, state_dir
from tickrelay.transport.subscribe import Gap, Subscription


HELP = "run everything: relay, replay exchange (or --live), collectors and consumers, with a live summary"
VENUES = ("coinbase", "binance", "kraken")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="TOML file (default: ./tickrelay.toml if present)")
    parser.add_argument(
        "--live", action="store_true", help="collect from the real exchanges instead of the replay"
    )
    parser.add_argument("--speed", default="1", help="replay pace x SPEED, or 'max' (default 1)")
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="summary refresh (default 1 s)"
    )
    parser.add_argument(
        "--record",
        metavar="OUT",
        help="recording name (default: $XDG_STATE_HOME/tickrelay/recording, i.e. ~/.local/state/...)",
    )
    parser.add_argument(
        "--record-keep-mb",
        type=float,
        default=512.0,
        metavar="N",
        help="recording retention (default 512 MB)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not run the recorder")
    parser.add_argument("--dashboard-port", type=int, metavar="N", help="dashboard.port (0: any free port)")


@dataclasses.dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    last_exit: str = ""


async def _supervise(child: Child, stop: asyncio.Event, log: list[str]) -> None:
    """Run ``child`` until ``stop``; a child that dies is reported and restarted with backoff."""
    delays = backoff(initial_s=0.5, cap_s=10.0)
    while not stop.is_set():
        child.proc = await asyncio.create_subprocess_exec(
            *child.argv,
            env=child.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches `up` only: it stops the children itself, in order
        )
        waiting = asyncio.ensure_future(child.proc.wait())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if stop.is_set():
            return
        err = (await child.proc.stderr.read()).decode(errors="replace").strip() if child.proc.stderr else ""
        child.last_exit = f"exit {child.proc.returncode}: {err.splitlines()[-1] if err else 'no message'}"
        child.restarts += 1
        log.append(f"{child.name} died ({child.last_exit}); restarting")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), next(delays))


async def _stop_children(children: list[Child]) -> None:
    for child in children:
        if child.proc is not None and child.proc.returncode is None:
            child.proc.terminate()
    for child in children:
        if child.proc is not None:
            try:
                await asyncio.wait_for(child.proc.wait(), 5)
            except TimeoutError:
                child.proc.kill()
                await child.proc.wait()


@dataclasses.dataclass
class Tally:
    messages: Counter[str] = dataclasses.field(default_factory=Counter)  # venue -> messages
    kinds: dict[str, Counter[str]] = dataclasses.field(default_factory=lambda: defaultdict(Counter))
    invalidations: Counter[str] = dataclasses.field(default_factory=Counter)
    gaps: int = 0
    missing: int = 0
    signals: Counter[str] = dataclasses.field(default_factory=Counter)  # by SignalState name
    open_signals: dict[SignalKey, SpreadSignal] = dataclasses.field(default_factory=dict)
    alerts: Counter[str] = dataclasses.field(default_factory=Counter)  # by Severity name
    last_alert: str = ""


async def _watch(path: Path, tally: Tally, stop: asyncio.Event) -> None:
    async for item in Subscription(path, name="up", buffer_bytes=64 << 20):
        if stop.is_set():
            return
        if isinstance(item, Gap):
            tally.gaps += 1
            tally.missing += item.missing
            continue
        assert isinstance(item, Message)
        for event in item.events():
            if isinstance(event, UnknownTlv):
                continue
            venue = venue_name(getattr(event, "venue_id", -1), "system")
            tally.messages[venue] += 1
            tally.kinds[venue][TYPE_OF[type(event)].name.lower()] += 1
            if isinstance(event, StateInvalidation):
                tally.invalidations[venue] += 1


async def _watch_consumers(signal_path: Path, system_path: Path, tally: Tally) -> None:
    """Count what the strategy and the risk monitor publish, for the summary."""

    async def follow(path: Path, domain: Domain) -> None:
        async for item in Subscription(path, domain=domain, name="up"):
            if not isinstance(item, Message):
                continue
            for event in item.events():
                if isinstance(event, SpreadSignal):
                    tally.signals[name_of(SignalState, event.state)] += 1
                    track_open(tally.open_signals, event)
                elif isinstance(event, Alert):
                    tally.alerts[name_of(Severity, event.severity)] += 1
                    tally.last_alert = event.text

    await asyncio.gather(follow(signal_path, Domain.SIGNAL), follow(system_path, Domain.SYSTEM))


def _summary(
    tally: Tally,
    rates: dict[str, float],
    children: list[Child],
    started: float,
    log: list[str],
    scraped: list[dict[str, Any]],
) -> str:
    """The screen: per venue what the relay delivered (counted by up's own subscriber) and, from the
    processes' metrics endpoints, the collectors' errors and processing P99 (all message types),
    the relays' drops and the end-to-end latency at the risk monitor."""
    metrics = venue_summary(scraped)
    elapsed = time.monotonic() - started
    lines = [f"tickrelay up: {elapsed:5.0f} s   gaps {tally.gaps} ({tally.missing} messages missing)"]
    head = (
        f"{'venue':10} {'msgs/s':>9} {'messages':>10} {'trades':>8} {'quotes':>8} {'book':>8} {'invalid':>8}"
    )
    lines.append(f"{head} {'errors':>7} {'P99 µs':>8}")
    for venue in (*VENUES, "system"):
        k = tally.kinds[venue]
        book = k["l2_snapshot"] + k["l2_delta"]
        m = metrics.get(venue, {})
        p99 = m.get("latency", {}).get("p99")
        lines.append(
            f"{venue:10} {rates.get(venue, 0.0):9.0f} {tally.messages[venue]:10} {k['trade']:8} "
            f"{k['quote']:8} {book:8} {tally.invalidations[venue]:8} {m.get('errors', 0):7.0f} "
            + (f"{p99:8.1f}" if p99 is not None else f"{'-':>8}")
        )
    signals = ", ".join(f"{k} {v}" for k, v in sorted(tally.signals.items())) or "none"
    alerts = ", ".join(f"{k} {v}" for k, v in sorted(tally.alerts.items())) or "none"
    lines.append(f"signals: {signals} ({len(tally.open_signals)} open)   alerts: {alerts}")
    pairs = headline(scraped_verdicts(scraped))  # says so when no pair of the data can be compared
    if pairs:
        lines.append(f"strategy: {pairs}")
    if tally.last_alert:
        lines.append(f"last alert: {tally.last_alert}")
    e2e = end_to_end_summary(scraped).get("risk", {})
    if e2e:
        shown = ", ".join(
            f"{src} {q.get('p50', 0) / 1e3:.1f} / {q.get('p99', 0) / 1e3:.1f}"
            for src, q in sorted(e2e.items())
        )
        lines.append(f"end to end at the risk monitor, P50 / P99 ms: {shown}")
    relays = relay_summary(scraped)
    if relays:
        lines.append("relays: " + ", ".join(
            f"{d} {r['messages_in']:.0f} in, {r['deliveries']:.0f} out, {r['dropped']:.0f} dropped"
            for d, r in sorted(relays.items())
        ))  # fmt: skip
    lines.append(
        "processes: " + ", ".join(f"{c.name}{' x' + str(c.restarts) if c.restarts else ''}" for c in children)
    )
    lines.extend(log[-3:])
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _subscribed(path: Path, names: set[str], timeout_s: float) -> None:
    """Wait until the relay on ``path`` has subscribers of all these names (at most ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(RelayError):
            status = await fetch_status(str(path), Domain.MARKET_DATA)
            if names <= {s["name"] for s in status["subscribers"]}:
                return
        await asyncio.sleep(0.05)


async def _listening(port: int, timeout_s: float) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port`` (at most ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return


def _dashboard_port(host: str, wanted: int) -> tuple[int, str]:
    """The configured port if it is free, else a free one and a line saying so (0: any free port)."""
    if wanted:
        with socket.socket() as s:
            try:
                s.bind((host, wanted))
                return wanted, ""
            except OSError as exc:
                port = _free_port()
                return port, f"dashboard port {wanted} is not available ({exc.strerror}); using {port}"
    return _free_port(), ""


def run(args: argparse.Namespace) -> int:
    settings = read_settings(args.config, {"dashboard.port": args.dashboard_port})
    path = socket_path(Domain.MARKET_DATA, settings["relay.socket"] or None, os.environ)
    signal_path = socket_path(Domain.SIGNAL, None, os.environ)
    system_path = socket_path(Domain.SYSTEM, None, os.environ)
    dashboard_port, port_note = _dashboard_port(settings["dashboard.host"], settings["dashboard.port"])
    me = [sys.executable, "-m", "tickrelay"]
    env = dict(os.environ)
    children = [
        Child(f"relay{suffix}", [*me, "relay", "--domain", domain, "--socket", str(where), "--metrics-port",
                                 str(_free_port())], env)
        for suffix, domain, where in (("", "market-data", path), ("-signal", "signal", signal_path),
                                      ("-system", "system", system_path))
    ]  # fmt: skip
    relays = len(children)
    if not args.live:
        port = _free_port()
        env = {**env, **REPLAY_INSTRUMENTS, **collector_env(port)}
        children.append(
            Child(
                "replay-exchange", [*me, "replay-exchange", "--port", str(port), "--speed", args.speed], env
            )
        )
    config = ["--config", args.config] if args.config else []
    for venue in VENUES:
        if settings[f"{venue}.enabled"]:
            children.append(
                Child(
                    f"collect-{venue}",
                    [
                        *me,
                        "collect",
                        venue,
                        "--socket",
                        str(path),
                        "--metrics-port",
                        str(_free_port()),
                        *config,
                    ],
                    env,
                )
            )

    def consumer(name: str, *extra: str) -> Child:
        argv = [*me, name, *config, "--socket", str(path), "--metrics-port", str(_free_port()), *extra]
        return Child(name, argv, env)

    children += [
        consumer("strategy", "--signal-socket", str(signal_path), "--quiet"),
        consumer("risk", "--system-socket", str(system_path)),
        consumer("dashboard", "--signal-socket", str(signal_path), "--system-socket", str(system_path),
                 "--port", str(dashboard_port)),
    ]  # fmt: skip
    recording = Path(args.record) if args.record else state_dir(os.environ) / "recording"
    if not args.no_record:  # bounded by its retention: the oldest segments go first
        children.append(
            Child(
                "record",
                [*me, "record", "--socket", str(path), "--out", str(recording), "--rotate-mb", "64",
                 "--keep-mb", str(args.record_keep_mb)],
                env,
            )
        )  # fmt: skip
    tty = sys.stdout.isatty()
    run_dir = runtime_dir(os.environ.get("XDG_RUNTIME_DIR"))

    async def main(stop: asyncio.Event) -> int:
        log: list[str] = [port_note] if port_note else []
        tally = Tally()
        started = time.monotonic()
        # Start order: the relays; the consumers and up's own watchers, until the market-data relay has
        # them all (a subscriber that comes after a collector's InstrumentMeta and book snapshot would
        # have no names and no books until the next resync); the replay exchange, until it listens
        # (a collector that connects before would only publish a disconnect); the collectors.
        exchange = [] if args.live else [children[relays]]
        collectors = [c for c in children if c.name.startswith("collect-")]
        consumers = [c for c in children[relays:] if c not in exchange and c not in collectors]
        supervisors = [asyncio.create_task(_supervise(c, stop, log)) for c in children[:relays]]
        await asyncio.sleep(0.3)
        supervisors += [asyncio.create_task(_supervise(c, stop, log)) for c in consumers]
        watchers = [
            asyncio.create_task(_watch(path, tally, stop)),
            asyncio.create_task(_watch_consumers(signal_path, system_path, tally)),
        ]
        await _subscribed(path, {"up", *(c.name for c in consumers)}, 20.0)
        supervisors += [asyncio.create_task(_supervise(c, stop, log)) for c in exchange]
        if exchange:
            await _listening(port, 10.0)
        supervisors += [asyncio.create_task(_supervise(c, stop, log)) for c in collectors]
        print(
            f"tickrelay up: relay on {path}; {'live exchanges' if args.live else 'embedded replay'}; "
            f"dashboard on http://{settings['dashboard.host']}:{dashboard_port}/; "
            + ("" if args.no_record else f"recording to {recording} (tickrelay replay {recording}); ")
            + "Ctrl-C stops",
            flush=True,
        )
        last = Counter(tally.messages)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.interval)
            rates = {v: (tally.messages[v] - last[v]) / args.interval for v in (*VENUES, "system")}
            last = Counter(tally.messages)
            scraped = await asyncio.to_thread(scrape_all, run_dir)
            text = _summary(tally, rates, children, started, log, scraped)
            print(("\x1b[H\x1b[2J" if tty else "") + text + ("" if tty else "\n"), flush=True)
        for watcher in watchers:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        final = await asyncio.to_thread(scrape_all, run_dir)  # before the processes go
        await _stop_children(children[relays:])  # consumers and collectors first, the relays last
        await _stop_children(children[:relays])
        for task in supervisors:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        print(
            "tickrelay up: stopped. Final report:\n" + _summary(tally, {}, children, started, log, final),
            flush=True,
        )
        return 0

    return runtime.run(main)
