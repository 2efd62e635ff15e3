"""``tickrelay dashboard``: a live web page of every feed, pushed over a WebSocket.

The server subscribes to the market-data, signal and system relays (each reconnects by itself, so the
page is served, showing the relays' state, before they are up) and keeps one DashboardState. Every
``--interval`` it sends each browser the current view: updates are coalesced to that pace, and a
browser whose previous view is still being sent skips a turn (no per-client queue). A browser may
only choose which instrument's depth it sees; nothing it sends reaches anyone else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

from aiohttp import WSMsgType, web

from tickrelay import log, runtime
from tickrelay.commands import argtypes
from tickrelay.commands.config import read_settings
from tickrelay.commands.stats import scrape_all, venue_summary
from tickrelay.commands.strategy import scraped_verdicts
from tickrelay.consumers.dashboard import DashboardState
from tickrelay.consumers.pump import serve_metrics
from tickrelay.consumers.strategy import headline
from tickrelay.metrics import EndToEnd
from tickrelay.protocol.codec import Domain, Message
from tickrelay.protocol.messages import Alert, SpreadSignal
from tickrelay.transport.paths import runtime_dir, socket_path
from tickrelay.transport.subscribe import Gap, Subscription


HELP = "live web dashboard of every feed, signal and alert (default http://127.0.0.1:8080)"
WEB = Path(__file__).resolve().parent.parent / "consumers" / "web"
MAX_BROWSER_MESSAGE = 1024  # a browser sends only {"select": "<venue>:<asset>"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="TOML file (default: ./tickrelay.toml if present)")
    parser.add_argument("--host", help="dashboard.host")
    parser.add_argument("--port", type=int, help="dashboard.port (0: any free port, printed)")
    parser.add_argument("--socket", help="market-data relay socket (relay.socket)")
    parser.add_argument("--signal-socket", help="signal relay socket (default: in the runtime directory)")
    parser.add_argument("--system-socket", help="system relay socket (default: in the runtime directory)")
    parser.add_argument(
        "--interval", type=argtypes.positive, default=0.25, metavar="S", help="push period (default 0.25 s)"
    )
    parser.add_argument("--metrics-port", type=int, metavar="N", help="metrics.port (0: off)")


@dataclasses.dataclass(eq=False)
class Browser:
    ws: web.WebSocketResponse
    selected: str = ""
    sending: bool = False
    skipped: int = 0  # pushes skipped because the previous one was still being sent
    ignored: int = 0  # browser messages that were not a valid selection


class Dashboard:
    def __init__(self, state: DashboardState, subscriptions: dict[str, Subscription]) -> None:
        self.state = state
        self.subscriptions = subscriptions
        self.browsers: set[Browser] = set()
        self.pushes = 0
        self._sends: set[asyncio.Task[None]] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/ws", self.websocket)
        app.router.add_static("/static/", WEB)
        return app

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB / "index.html")

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_BROWSER_MESSAGE)
        await ws.prepare(request)
        browser = Browser(ws)
        self.browsers.add(browser)
        try:
            await self._send(browser, self._view_text(time.time_ns()))
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    wanted = json.loads(msg.data).get("select")
                except (ValueError, AttributeError):
                    wanted = None
                if isinstance(wanted, str) and len(wanted) < 64:
                    browser.selected = wanted
                else:
                    browser.ignored += 1
        finally:
            self.browsers.discard(browser)
        return ws

    def _view_text(self, now_ns: int) -> str:
        self.state.relays = {name: sub.connected.is_set() for name, sub in self.subscriptions.items()}
        return json.dumps({"now_ms": now_ns // 1_000_000, **self.state.view(now_ns)})

    async def _send(self, browser: Browser, common: str) -> None:
        depth = self.state.depth(browser.selected) if browser.selected else None
        browser.sending = True
        try:
            await browser.ws.send_str(f'{{"depth":{json.dumps(depth)},{common[1:]}')
        except ConnectionError:
            pass  # the browser went away; its handler removes it
        finally:
            browser.sending = False

    async def push(self) -> None:
        """One view to every browser that is ready for it."""
        now = time.time_ns()
        self.state.update_rates(now)
        common = self._view_text(now)
        self.pushes += 1
        for browser in list(self.browsers):
            if browser.sending:
                browser.skipped += 1
            else:
                browser.sending = True  # before the task runs: the next push must see it busy
                task = asyncio.create_task(self._send(browser, common))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)


async def _follow(sub: Subscription, state: DashboardState, name: str, e2e: EndToEnd) -> None:
    async for item in sub:
        if isinstance(item, Gap):
            if name == "market-data":
                state.on_gap(item.source, item.missing, time.time_ns())
        elif isinstance(item, Message):
            events = item.events()
            if name == "market-data":
                now = time.time_ns()
                e2e.record(item.header.source, item.header.timestamp_ns, now)
                state.on_market(item.header.timestamp_ns, events, now)
            for event in events:
                if isinstance(event, SpreadSignal):
                    state.on_signal(event)
                elif isinstance(event, Alert):
                    state.on_alert(event)


def run(args: argparse.Namespace) -> int:
    settings = read_settings(
        args.config,
        {
            "relay.socket": args.socket,
            "dashboard.host": args.host,
            "dashboard.port": args.port,
            "metrics.port": args.metrics_port,
        },
    )
    paths = {
        "market-data": socket_path(Domain.MARKET_DATA, settings.config.relay.socket or None, os.environ),
        "signal": socket_path(Domain.SIGNAL, args.signal_socket, os.environ),
        "system": socket_path(Domain.SYSTEM, args.system_socket, os.environ),
    }
    domains = {"market-data": Domain.MARKET_DATA, "signal": Domain.SIGNAL, "system": Domain.SYSTEM}
    run_dir = runtime_dir(os.environ.get("XDG_RUNTIME_DIR"))

    async def main(stop: asyncio.Event) -> int:
        state = DashboardState()
        subs = {
            name: Subscription(path, domain=domains[name], name="dashboard", buffer_bytes=64 << 20)
            for name, path in paths.items()
        }
        dashboard = Dashboard(state, subs)
        e2e = serve_metrics("dashboard", settings)
        runner = web.AppRunner(dashboard.app())
        await runner.setup()
        site = web.TCPSite(runner, settings.config.dashboard.host, settings.config.dashboard.port)
        await site.start()
        port = runner.addresses[0][1]
        print(f"tickrelay dashboard: http://{settings.config.dashboard.host}:{port}/", flush=True)
        tasks = [asyncio.create_task(_follow(sub, state, name, e2e)) for name, sub in subs.items()]
        next_latency = 0.0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.interval)
            if any(task.done() for task in tasks):
                break  # a subscription ends only by raising (an untrusted relay): raised below
            if time.monotonic() >= next_latency:
                next_latency = time.monotonic() + 2.0
                scraped = await asyncio.to_thread(scrape_all, run_dir)
                state.latency = venue_summary(scraped)
                state.strategy = headline(scraped_verdicts(scraped))
            await dashboard.push()
        for task in tasks:
            task.cancel()
        ended = await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
        for result in ended:
            if isinstance(result, Exception):  # not the CancelledError of a task stopped here
                raise result
        messages = sum(sub.stats.messages for sub in subs.values())
        skipped = sum(b.skipped for b in dashboard.browsers)
        log.logger("dashboard").info(
            f"{messages} messages shown in {dashboard.pushes} pushes; {skipped} skipped"
        )
        return 0

    return runtime.run(main)
