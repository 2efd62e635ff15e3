"""`tickrelay dashboard` as a real process, looked at in a real headless Chromium (Debian's, driven by
Playwright): served before the relays exist, then showing exactly what they carried, and updating."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.consumers.conftest import merged_stream
from tests.relay.conftest import ME
from tickrelay.protocol.codec import Domain, Source
from tickrelay.protocol.fixed import format_fixed8
from tickrelay.protocol.messages import (
    Alert,
    AlertKind,
    L2Delta,
    L2Snapshot,
    Severity,
    SignalState,
    SpreadSignal,
    Trade,
)
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.relay.server import Relay, RelaySettings
from tickrelay.transport.output import RelayOutput
from tickrelay.venues.book import OrderBook


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
BTC = asset_id_for("BTC/USD")
T0 = 1_700_001_000 * 10**9  # after the merged stream's last message
ROW = f'#instruments tbody tr[data-id="101:{BTC}"]'


@pytest.fixture
async def dashboard(
    tmp_path: Path,
) -> AsyncIterator[tuple[str, dict[Domain, Path], asyncio.subprocess.Process]]:
    paths = {
        d: tmp_path / f"{d.name.lower()}.sock" for d in (Domain.MARKET_DATA, Domain.SIGNAL, Domain.SYSTEM)
    }
    proc = await asyncio.create_subprocess_exec(
        *ME, "dashboard", "--port", "0", "--interval", "0.1",
        "--socket", str(paths[Domain.MARKET_DATA]), "--signal-socket", str(paths[Domain.SIGNAL]),
        "--system-socket", str(paths[Domain.SYSTEM]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"XDG_RUNTIME_DIR": str(tmp_path), "PATH": ""},
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert line.startswith("tickrelay dashboard: http://127.0.0.1:"), line
    yield line.split(": ", 1)[1].strip(), paths, proc
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def cell(page: Page, column: int) -> str:
    return await page.locator(f"{ROW} td:nth-child({column})").inner_text()


@pytest.mark.timeout(120)
async def test_the_page_shows_what_the_relays_carried_and_keeps_updating(
    dashboard: tuple[str, dict[Domain, Path], asyncio.subprocess.Process], tmp_path: Path
) -> None:
    url, paths, proc = dashboard
    stream = merged_stream()  # Kraken XBT/USD and Binance BTCUSDT books, trades and quotes
    book = OrderBook()  # Kraken's book as a consumer holds it at the end (tests/venues: equal to the feed's)
    for m in stream:
        for e in m.events():
            if getattr(e, "venue_id", 0) != 101:
                continue
            if isinstance(e, L2Snapshot):
                book.load(e.bids, e.asks)
            elif isinstance(e, L2Delta):
                book.update(e.bids, e.asks)
    bids, asks = book.top(10)
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1500, "height": 1000})
        await page.goto(url)
        # served before any relay exists: connected to the dashboard, every relay shown down
        await expect(page.locator("#conn")).to_have_text("connected")
        await expect(page.locator("#relay-market-data")).to_have_text("down")
        relays = [Relay(p, RelaySettings(domain=d)) for d, p in paths.items()]
        for relay in relays:
            await relay.start()
        try:
            for name in ("market-data", "signal", "system"):
                await expect(page.locator(f"#relay-{name}")).to_have_text("up", timeout=15_000)
            md = RelayOutput(paths[Domain.MARKET_DATA], source=Source.KRAKEN_COLLECTOR, name="test")
            signals = RelayOutput(paths[Domain.SIGNAL], source=Source.STRATEGY, domain=Domain.SIGNAL)
            alerts = RelayOutput(paths[Domain.SYSTEM], source=Source.RISK_MONITOR, domain=Domain.SYSTEM)
            for out in (md, signals, alerts):
                out.start()
                await out.wait_connected(10)
            for m in stream:
                md.send(m.raw)
            md.send_event(T0, Trade(BTC, 27140_50000000, 25000000, T0, 101, 51, 0))
            signals.send_event(2, SpreadSignal(BTC, BTC, 101, 102, SignalState.OPEN, 27139_40000000,
                                               27150_00000000, 1106822, 1234, 3))  # fmt: skip
            alerts.send_event(4, Alert(AlertKind.CROSSED_BOOK, Severity.CRITICAL, 101, BTC, 1, 4,
                                       "kraken BTC/USD: book crossed (test)"))  # fmt: skip
            await md.sync()

            # the instrument row: exact decimal text of what was sent
            await expect(page.locator(f"{ROW} td:nth-child(2)")).to_have_text("BTC/USD", timeout=15_000)
            await expect(page.locator(f"{ROW} td:nth-child(3)")).to_have_text(
                "27140.50000000", timeout=15_000
            )
            assert await cell(page, 4) == "0.25000000"
            assert await cell(page, 5) == format_fixed8(bids[0][0]) == "27139.30000000"
            assert await cell(page, 6) == format_fixed8(asks[0][0]) == "27139.40000000"
            assert await cell(page, 7) == "0.10000000"
            assert await cell(page, 8) == "ok"
            # the selected instrument's depth: the ten best levels each side
            await page.locator(ROW).click()
            await expect(page.locator("#sel-name")).to_have_text("kraken BTC/USD")
            await expect(page.locator("#bids tbody tr")).to_have_count(10)
            shown_bids = [await r.inner_text() for r in await page.locator("#bids tbody tr").all()]
            assert shown_bids == [f"{format_fixed8(s)}\t{format_fixed8(p)}" for p, s in bids]
            shown_asks = [await r.inner_text() for r in await page.locator("#asks tbody tr").all()]
            assert shown_asks == [f"{format_fixed8(p)}\t{format_fixed8(s)}" for p, s in asks]
            await expect(page.locator("#alerts")).to_contain_text("kraken BTC/USD: book crossed (test)")
            await expect(page.locator("#signals tbody tr").first).to_contain_text("kraken BTC/USD")
            assert "27150.00000000" in await page.locator("#signals tbody tr").first.inner_text()
            await expect(page.locator("#chart canvas").first).to_be_visible()
            venues = [await r.inner_text() for r in await page.locator("#venues tbody tr").all()]
            assert [v.split("\t")[0] for v in venues] == ["binance", "kraken"]

            # it keeps updating: a later trade replaces the last price, the chart gains a point
            md.send_event(T0 + 10**9, Trade(BTC, 27141_00000000, 1_00000000, T0 + 10**9, 101, 51, 1))
            await expect(page.locator(f"{ROW} td:nth-child(3)")).to_have_text(
                "27141.00000000", timeout=15_000
            )
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            for out in (md, signals, alerts):
                await out.close()
        finally:
            await browser.close()
            for relay in relays:
                await relay.stop(drain_s=0.1)
        # the relays went away: the page says so, and stays served
        await asyncio.sleep(0)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()


@pytest.mark.timeout(60)
async def test_what_a_browser_sends_reaches_no_one_else(
    dashboard: tuple[str, dict[Domain, Path], asyncio.subprocess.Process],
) -> None:
    url, _, _ = dashboard
    async with aiohttp.ClientSession() as session:
        a = await session.ws_connect(url + "ws")
        b = await session.ws_connect(url + "ws")
        await a.send_str(json.dumps({"select": "101:1"}))
        await a.send_str("not json at all")
        await a.send_str(json.dumps({"text": "hello everyone"}))
        for _ in range(5):
            view = json.loads((await b.receive(timeout=10)).data)
            assert set(view) == {"depth", "now_ms", "relays", "venues", "instruments", "alerts", "signals",
                                 "open_signals"}  # fmt: skip
            assert view["depth"] is None  # a's selection is a's alone
            assert "hello everyone" not in json.dumps(view)
        big = "x" * 5000  # over the 1 KiB a browser may send: the dashboard closes that socket
        await a.send_str(big)
        while not a.closed:
            msg = await a.receive(timeout=10)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break
        assert json.loads((await b.receive(timeout=10)).data)["depth"] is None  # b carries on
        await b.close()
