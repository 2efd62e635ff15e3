"""`tickrelay dashboard` as a real process, looked at in a real headless Chromium (Debian's, driven by
Playwright): served before the relays exist, then showing exactly what they carried, and updating."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.consumers.conftest import merged_stream
from tests.relay.conftest import ME, until
from tickrelay.protocol.codec import Domain, Source, encode_events, make_sequence, restamp
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
from tickrelay.runtime import free_port
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
ENV = {"PATH": "", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}  # this checkout's code


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
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**ENV, "XDG_RUNTIME_DIR": str(tmp_path)},
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
            # at the instrument's precision: Kraken quotes XBT/USD to 0.1, its sizes to 8 places
            await expect(page.locator(f"{ROW} td:nth-child(3)")).to_have_text("27140.5", timeout=15_000)
            assert await cell(page, 4) == "0.25000000"
            assert await cell(page, 5) == format_fixed8(bids[0][0], 1) == "27139.3"
            assert await cell(page, 6) == format_fixed8(asks[0][0], 1) == "27139.4"
            assert await cell(page, 7) == "0.1"
            assert await cell(page, 8) == "ok"
            # the selected instrument's depth: the ten best levels each side
            await page.locator(ROW).click()
            await expect(page.locator("#sel-name")).to_have_text("kraken BTC/USD")
            await expect(page.locator("#bids tbody tr")).to_have_count(10)
            shown_bids = [await r.inner_text() for r in await page.locator("#bids tbody tr").all()]
            assert shown_bids == [f"{format_fixed8(s)}\t{format_fixed8(p, 1)}" for p, s in bids]
            shown_asks = [await r.inner_text() for r in await page.locator("#asks tbody tr").all()]
            assert shown_asks == [f"{format_fixed8(p, 1)}\t{format_fixed8(s)}" for p, s in asks]
            await expect(page.locator("#alerts")).to_contain_text("kraken BTC/USD: book crossed (test)")
            await expect(page.locator("#signals tbody tr").first).to_contain_text("kraken BTC/USD")
            assert await page.locator("#signals tbody tr").first.inner_text() == (
                f"open\tkraken BTC/USD\t27139.4\tcoinbase {hex(BTC)}\t27150\t0.01106822\t12.34"
            )  # each price at its instrument's precision (none seen on Coinbase: whole units suffice)
            await expect(page.locator("#chart canvas").first).to_be_visible()
            venues = [await r.inner_text() for r in await page.locator("#venues tbody tr").all()]
            assert [v.split("\t")[0] for v in venues] == ["binance", "kraken"]

            # it keeps updating: a later trade replaces the last price, the chart gains a point
            md.send_event(T0 + 10**9, Trade(BTC, 27141_00000000, 1_00000000, T0 + 10**9, 101, 51, 1))
            await expect(page.locator(f"{ROW} td:nth-child(3)")).to_have_text("27141.0", timeout=15_000)
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
            assert set(view) == {"depth", "now_ms", "relays", "busiest", "strategy", "venues", "instruments",
                                 "alerts", "signals", "open_signals"}  # fmt: skip
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


USDT = asset_id_for("BTC/USDT")
BUSIEST = f'#instruments tbody tr[data-id="100:{USDT}"]'
OVERFLOWING = """() => [...document.querySelectorAll("section")]
    .filter((s) => s.scrollWidth > s.clientWidth).map((s) => `${s.id} ${s.scrollWidth} > ${s.clientWidth}`)"""


@pytest.mark.timeout(180)
async def test_layout_busiest_instrument_precision_gap_and_the_strategys_word(
    dashboard: tuple[str, dict[Domain, Path], asyncio.subprocess.Process], tmp_path: Path
) -> None:
    """The Kraken 2023 and Binance 2024 recordings through real relays, a real strategy process and the
    dashboard, in Chromium at 1400x1000 and 1000x800: the busiest instrument (Binance BTC/USDT) is shown
    without a click, prices at its precision (cents), no panel scrolls sideways, the signals panel gives
    the strategy's verdict instead of a bogus +127 % edge, and a sequence gap in Binance's stream marks
    its books invalid until the next snapshot."""
    url, paths, _ = dashboard
    stream = merged_stream()  # first, as it blocks: the relays below run on this event loop
    relays = [Relay(p, RelaySettings(domain=d)) for d, p in paths.items()]
    for relay in relays:
        await relay.start()
    strategy = await asyncio.create_subprocess_exec(
        *ME, "strategy", "--socket", str(paths[Domain.MARKET_DATA]),
        "--signal-socket", str(paths[Domain.SIGNAL]), "--system-socket", str(paths[Domain.SYSTEM]),
        "--metrics-port", str(free_port()),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**ENV, "XDG_RUNTIME_DIR": str(tmp_path)},
    )  # fmt: skip
    snapshot = next(e for m in stream for e in m.events() if isinstance(e, L2Snapshot) and e.venue_id == 100)
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            await page.goto(url)
            for name in ("market-data", "signal", "system"):
                await expect(page.locator(f"#relay-{name}")).to_have_text("up", timeout=15_000)
            for relay in relays:  # each relay has the dashboard (the strategy's alert must reach it)
                await until(
                    lambda r=relay: any(s["name"] == "dashboard" for s in r.status()["subscribers"]), 20
                )
            await until(lambda: any(s["name"] == "strategy" for s in relays[0].status()["subscribers"]), 20)
            md = RelayOutput(paths[Domain.MARKET_DATA], source=Source.KRAKEN_COLLECTOR, name="test")
            md.start()
            for m in stream:
                md.send(m.raw)
            await md.sync()
            # selected without a click: the busiest instrument, its chart and depth at its precision
            await expect(page.locator(f"{BUSIEST}.sel")).to_have_count(1, timeout=15_000)
            await expect(page.locator("#sel-name")).to_have_text("binance BTC/USDT", timeout=15_000)
            await expect(page.locator("#bids tbody tr")).to_have_count(10, timeout=15_000)
            cents = re.compile(r"^\d+\.\d\d$")
            for column in (3, 5, 6):  # last, bid, ask
                text = await page.locator(f"{BUSIEST} td:nth-child({column})").inner_text()
                assert cents.match(text), text
            prices = [(await r.inner_text()).split("\t") for r in await page.locator("#asks tbody tr").all()]
            assert all(cents.match(p) for p, _ in prices), prices
            # the strategy's verdict on the recordings, from its metrics, and its alert
            await expect(page.locator("#strategy-note")).to_have_text(
                "no cross-venue pair in the data (1 with an implausible edge)", timeout=20_000
            )
            await expect(page.locator("#signals tbody")).to_have_text("no signal")
            await expect(page.locator("#alerts")).to_contain_text(
                "net edge +127.36 % > 5 %, bad data: no signal", timeout=15_000
            )
            assert await page.evaluate(OVERFLOWING) == []
            await page.screenshot(path=str(ARTIFACTS / "dashboard-1400x1000.png"))

            # a real gap: Binance's collector stream loses two messages on its way through the relay
            binance = RelayOutput(paths[Domain.MARKET_DATA], source=Source.BINANCE_COLLECTOR, name="gap")
            binance.start()
            trade = Trade(USDT, 61840_01000000, 1000, T0, 100, 51, 1)
            for counter, event in ((1, trade), (4, trade._replace(price=61840_02000000)), (5, snapshot)):
                raw = encode_events(Domain.MARKET_DATA, 0, 0, T0 + counter, event)
                binance.forward(restamp(raw, binance.source, make_sequence(binance.stream_id, counter)))
                await binance.sync()
                if counter == 4:  # untrusted until the next snapshot: no depth, status says why
                    status = page.locator(f"{BUSIEST} td:nth-child(8)")
                    await expect(status).to_have_text("invalid: sequence_gap", timeout=15_000)
                    await expect(page.locator("#bids tbody tr")).to_have_count(0, timeout=15_000)
                    await expect(page.locator("#venues")).to_contain_text("binance")
            await expect(page.locator(f"{BUSIEST} td:nth-child(8)")).to_have_text("ok", timeout=15_000)
            await expect(page.locator("#bids tbody tr")).to_have_count(10, timeout=15_000)

            await page.set_viewport_size({"width": 1000, "height": 800})
            await expect(page.locator(f"{BUSIEST}.sel")).to_have_count(1, timeout=15_000)
            await asyncio.sleep(0.5)  # a push or two at the new size
            assert await page.evaluate(OVERFLOWING) == []
            await page.screenshot(path=str(ARTIFACTS / "dashboard-1000x800.png"), full_page=True)
            for out in (md, binance):
                await out.close()
        finally:
            await browser.close()
            strategy.terminate()
            await strategy.wait()
            for relay in relays:
                await relay.stop(drain_s=0.1)
