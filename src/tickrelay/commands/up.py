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
import textwrap
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tickrelay import runtime
from tickrelay.commands import argtypes
from tickrelay.commands.config import read_settings, venue_cores
from tickrelay.commands.relay_status import fetch_status
from tickrelay.commands.stats import end_to_end_summary, relay_summary, scrape_all, venue_summary
from tickrelay.commands.strategy import scraped_verdicts
from tickrelay.consumers.market import is_invalidation
from tickrelay.consumers.strategy import SignalKey, headline, track_open
from tickrelay.errors import ConfigError, RelayError
from tickrelay.protocol.codec import Domain, Message
from tickrelay.protocol.messages import (
    TYPE_OF,
    Alert,
    Event,
    Severity,
    SignalState,
    SpreadSignal,
    UnknownTlv,
)
from tickrelay.protocol.symbols import name_of, venue_name
from tickrelay.replay.exchange import REPLAY_INSTRUMENTS, collector_env
from tickrelay.supervisor import Child, ChildLog, stop_children, supervise
from tickrelay.transport.paths import runtime_dir, socket_path, state_dir
from tickrelay.transport.subscribe import Gap, Subscription


HELP = "run everything: relay, replay exchange (or --live), collectors and consumers, with a live summary"
VENUES = ("coinbase", "binance", "kraken")
WIDTH = 80  # the summary fits a standard terminal


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="TOML file (default: ./tickrelay.toml if present)")
    parser.add_argument(
        "--live", action="store_true", help="collect from the real exchanges instead of the replay"
    )
    parser.add_argument("--speed", default="1", help="replay pace x SPEED, or 'max' (default 1)")
    parser.add_argument(
        "--interval", type=argtypes.positive, default=1.0, metavar="S", help="summary refresh (default 1 s)"
    )
    parser.add_argument(
        "--record",
        metavar="OUT",
        help="recording name (default: a new one per run, $XDG_STATE_HOME/tickrelay/recordings/up-<UTC "
        "time>, i.e. under ~/.local/state/...); an existing OUT needs --record-continue",
    )
    parser.add_argument(
        "--record-continue",
        action="store_true",
        help="append to OUT, or to the newest default recording, instead of starting a new one",
    )
    parser.add_argument(
        "--record-keep-mb",
        type=argtypes.at_least(0.0),
        default=512.0,
        metavar="N",
        help="recording retention (default 512 MB)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not run the recorder")
    parser.add_argument("--dashboard-port", type=int, metavar="N", help="dashboard.port (0: any free port)")


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

    def count(self, events: list[Event]) -> None:
        """Count one market-data message's values, by venue and kind."""
        for event in events:
            if isinstance(event, UnknownTlv):
                continue
            venue = venue_name(getattr(event, "venue_id", -1), "system")
            self.messages[venue] += 1
            self.kinds[venue][TYPE_OF[type(event)].name.lower()] += 1
            if is_invalidation(event):  # the dashboard's figure too
                self.invalidations[venue] += 1


async def _watch(path: Path, tally: Tally, stop: asyncio.Event) -> None:
    async for item in Subscription(path, name="up", buffer_bytes=64 << 20):
        if stop.is_set():
            return
        if isinstance(item, Gap):
            tally.gaps += 1
            tally.missing += item.missing
            continue
        assert isinstance(item, Message)
        tally.count(item.events())


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
    elapsed_s: float,
    events: list[str],
    scraped: list[dict[str, Any]],
) -> str:
    """The screen, at most ``WIDTH`` columns: per venue what the relay delivered (counted by up's own
    subscriber) and, from the processes' metrics endpoints, the collectors' errors and processing P99
    (all message types), the relays' drops and the end-to-end latency at the risk monitor."""
    metrics = venue_summary(scraped)
    lines = [f"tickrelay up: {elapsed_s:5.0f} s   gaps {tally.gaps} ({tally.missing} messages missing)"]
    lines.append(
        f"{'venue':8} {'msgs/s':>7} {'messages':>10} {'trades':>8} {'quotes':>8} {'book':>8} {'invalid':>7} "
        f"{'errors':>6} {'P99 µs':>7}"
    )
    for venue in (*VENUES, "system"):
        k = tally.kinds[venue]
        book = k["l2_snapshot"] + k["l2_delta"]
        m = metrics.get(venue, {})
        p99 = m.get("latency", {}).get("p99")
        lines.append(
            f"{venue:8} {rates.get(venue, 0.0):7.0f} {tally.messages[venue]:10} {k['trade']:8} "
            f"{k['quote']:8} {book:8} {tally.invalidations[venue]:7} {m.get('errors', 0):6.0f} "
            + (f"{p99:7.1f}" if p99 is not None else f"{'-':>7}")
        )
    signals = ", ".join(f"{k} {v}" for k, v in sorted(tally.signals.items())) or "none"
    alerts = ", ".join(f"{k} {v}" for k, v in sorted(tally.alerts.items())) or "none"
    notes = [f"signals: {signals} ({len(tally.open_signals)} open)   alerts: {alerts}"]
    pairs = headline(scraped_verdicts(scraped))  # says so when no pair of the data can be compared
    if pairs:
        notes.append(f"strategy: {pairs}")
    if tally.last_alert:
        notes.append(f"last alert: {tally.last_alert}")
    e2e = end_to_end_summary(scraped).get("risk", {})
    if e2e:
        shown = ", ".join(
            f"{src} {q.get('p50', 0) / 1e3:.1f} / {q.get('p99', 0) / 1e3:.1f}"
            for src, q in sorted(e2e.items())
        )
        notes.append(f"end to end at the risk monitor, P50 / P99 ms: {shown}")
    relays = relay_summary(scraped)
    if relays:
        notes.append("relays: " + ", ".join(
            f"{d} {r['messages_in']:.0f} in, {r['deliveries']:.0f} out, {r['dropped']:.0f} dropped"
            for d, r in sorted(relays.items())
        ))  # fmt: skip
    notes.append(
        "processes: " + ", ".join(f"{c.name}{' x' + str(c.restarts) if c.restarts else ''}" for c in children)
    )
    notes.extend(events[-3:])
    for note in notes:  # continuation lines indented, so a wrapped line still reads as one
        lines.extend(textwrap.wrap(note, WIDTH, subsequent_indent="  ", break_on_hyphens=False))
    return "\n".join(lines)


def _rates(counts: Counter[str], before: Counter[str], seconds: float) -> dict[str, float]:
    """Messages per second of each venue over the ``seconds`` measured between the two counts (not the
    nominal interval: a tick also takes the scrape's time)."""
    return {v: (counts[v] - before[v]) / seconds for v in (*VENUES, "system")}


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
                port = runtime.free_port()
                return port, f"dashboard port {wanted} is not available ({exc.strerror}); using {port}"
    return runtime.free_port(), ""


def run(args: argparse.Namespace) -> int:
    config = read_settings(args.config, {"dashboard.port": args.dashboard_port}).config
    path = socket_path(Domain.MARKET_DATA, config.relay.socket or None, os.environ)
    signal_path = socket_path(Domain.SIGNAL, None, os.environ)
    system_path = socket_path(Domain.SYSTEM, None, os.environ)
    dashboard_port, port_note = _dashboard_port(config.dashboard.host, config.dashboard.port)
    me = [sys.executable, "-m", "tickrelay"]
    env = dict(os.environ)
    if args.log_level:  # the children log at the level up was given
        env["TICKRELAY_LOG_LEVEL"] = args.log_level
    # the users up trusts, whatever file or variable named them, for the children without --config too
    env["TICKRELAY_RELAY_ALLOWED_USERS"] = ",".join(config.relay.allowed_users)
    children = [
        Child(f"relay{suffix}", [*me, "relay", "--domain", domain, "--socket", str(where), "--metrics-port",
                                 str(runtime.free_port())], env)
        for suffix, domain, where in (("", "market-data", path), ("-signal", "signal", signal_path),
                                      ("-system", "system", system_path))
    ]  # fmt: skip
    relays = len(children)
    if not args.live:
        port = runtime.free_port()
        env = {**env, **REPLAY_INSTRUMENTS, **collector_env(port)}
        children.append(
            Child(
                "replay-exchange", [*me, "replay-exchange", "--port", str(port), "--speed", args.speed], env
            )
        )
    config_flag = ["--config", args.config] if args.config else []
    enabled = {"coinbase": config.coinbase.enabled, "binance": config.binance.enabled,
               "kraken": config.kraken.enabled}  # fmt: skip
    for venue in VENUES:
        if enabled[venue]:
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
                        str(runtime.free_port()),
                        *config_flag,
                    ],
                    env,
                )
            )

    def consumer(name: str, *extra: str) -> Child:
        argv = [
            *me,
            name,
            *config_flag,
            "--socket",
            str(path),
            "--metrics-port",
            str(runtime.free_port()),
            *extra,
        ]
        return Child(name, argv, env)

    children += [
        consumer("strategy", "--signal-socket", str(signal_path), "--quiet"),
        consumer("risk", "--system-socket", str(system_path)),
        consumer("dashboard", "--signal-socket", str(signal_path), "--system-socket", str(system_path),
                 "--port", str(dashboard_port)),
    ]  # fmt: skip
    recording, continued = _recording(args.record, args.record_continue, state_dir(os.environ))
    if not args.no_record:  # bounded by its retention: the oldest segments go first
        children.append(
            Child(
                "record",
                [*me, "record", "--socket", str(path), "--out", str(recording), "--rotate-mb", "64",
                 "--keep-mb", str(args.record_keep_mb)],
                env,
            )
        )  # fmt: skip
    child_log = state_dir(os.environ) / "up.log"
    cores = venue_cores(config)
    banner = [
        f"tickrelay up: {'live exchanges' if args.live else 'embedded replay'}; Ctrl-C stops",
        f"  relay on {path}",
        f"  dashboard on http://{config.dashboard.host}:{dashboard_port}/",
        "  venue cores: " + "; ".join(f"{venue} {core}" for venue, core in cores.items() if enabled[venue]),
        *(["  not recording"] if args.no_record else [
            f"  recording to {recording} ({'continued' if continued else 'new'})",
            f"  (read it with: tickrelay replay {recording})"]),
        f"  children's messages in {child_log}",
    ]  # fmt: skip
    tty = sys.stdout.isatty()
    run_dir = runtime_dir(os.environ.get("XDG_RUNTIME_DIR"))

    def show(text: str) -> bool:
        """Print ``text`` (a new screen on a terminal); False once the reader has gone (a closed pipe)."""
        try:
            print(("\x1b[H\x1b[2J" if tty else "") + text + ("" if tty else "\n"), flush=True)
        except BrokenPipeError:
            runtime.silence_stdout()
            return False
        return True

    async def main(stop: asyncio.Event) -> int:
        events: list[str] = [port_note] if port_note else []
        tally = Tally()
        started = time.monotonic()
        log = ChildLog(child_log)
        supervisors: list[asyncio.Task[None]] = []
        watchers: list[asyncio.Task[None]] = []
        code = 0
        try:  # whatever ends this (a signal, a closed stdout, an exception), the children are stopped
            # Start order: the relays; the consumers and up's own watchers, until the market-data relay
            # has them all (a subscriber that comes after a collector's InstrumentMeta and book snapshot
            # would have no names and no books until the next resync); the replay exchange, until it
            # listens (a collector that connects before would only publish a disconnect); the collectors.
            exchange = [] if args.live else [children[relays]]
            collectors = [c for c in children if c.name.startswith("collect-")]
            consumers = [c for c in children[relays:] if c not in exchange and c not in collectors]
            supervisors += [asyncio.create_task(supervise(c, stop, events, log)) for c in children[:relays]]
            await asyncio.sleep(0.3)
            supervisors += [asyncio.create_task(supervise(c, stop, events, log)) for c in consumers]
            watchers += [
                asyncio.create_task(_watch(path, tally, stop)),
                asyncio.create_task(_watch_consumers(signal_path, system_path, tally)),
            ]
            await _subscribed(path, {"up", *(c.name for c in consumers)}, 20.0)
            supervisors += [asyncio.create_task(supervise(c, stop, events, log)) for c in exchange]
            if exchange:
                await _listening(port, 10.0)
            supervisors += [asyncio.create_task(supervise(c, stop, events, log)) for c in collectors]
            if not show("\n".join(banner)):
                stop.set()
                code = 141
            last, last_t = Counter(tally.messages), time.monotonic()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):  # the next tick, however long the last one took
                    await asyncio.wait_for(stop.wait(), max(0.0, last_t + args.interval - time.monotonic()))
                scraped = await asyncio.to_thread(scrape_all, run_dir)
                now = time.monotonic()
                rates = _rates(tally.messages, last, now - last_t)
                last, last_t = Counter(tally.messages), now
                text = _summary(tally, rates, children, now - started, events, scraped)
                if not show("\n".join(banner) + "\n" + text if tty else text):
                    code = 141  # the reader left (`up | head`, or tee killed by the same Ctrl-C)
                    break
            final = await asyncio.to_thread(scrape_all, run_dir)  # before the processes go
        finally:
            stop.set()
            for watcher in watchers:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await stop_children(children[relays:])  # consumers and collectors first, the relays last
            await stop_children(children[:relays])
            await _ended(supervisors, children)
            log.close()
        report = _summary(tally, {}, children, time.monotonic() - started, events, final)
        if code == 0:
            show("tickrelay up: stopped. Final report:\n" + report)
        return code

    return runtime.run(main)


async def _ended(supervisors: list[asyncio.Task[None]], children: list[Child]) -> None:
    """Wait for every supervisor to return; a child started while the others were being stopped (a
    restart that raced the stop) is stopped too."""
    while supervisors:
        done, pending = await asyncio.wait(supervisors, timeout=1.0)
        for task in done:
            task.result()
        supervisors = list(pending)
        if supervisors:
            await stop_children(children)


def _recording(explicit: str | None, continued: bool, state: Path) -> tuple[Path, bool]:
    """Where the recorder writes, and whether it continues an earlier recording there.

    By default each run starts a new recording, ``<state>/recordings/up-<UTC time>``; with ``continued``,
    the newest of those gets the new segments. An explicit name that already holds a recording is
    continued only when asked, never appended to by surprise.
    """
    if explicit:
        out = Path(explicit)
        exists = out.with_name(out.name + ".index").exists()
        if exists and not continued:
            raise ConfigError(f"--record {out}: a recording exists there; --record-continue appends to it")
        return out, exists
    base = state / "recordings"
    if continued:
        earlier = sorted(p.with_suffix("") for p in base.glob("up-*.index"))
        if earlier:
            return earlier[-1], True
    return base / time.strftime("up-%Y%m%dT%H%M%SZ", time.gmtime()), False
