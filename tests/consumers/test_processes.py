"""`tickrelay strategy` and `tickrelay risk` as real processes between real relays: the signals and
alerts they publish are exactly what their logic gives for the stream the market-data relay carried."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.consumers.conftest import KRAKEN, merged_stream
from tests.relay.conftest import ME, until
from tickrelay.commands.stats import scrape
from tickrelay.commands.strategy import scraped_verdicts, strategy_settings
from tickrelay.config import load_settings
from tickrelay.consumers.strategy import SpreadMonitor, headline, net_edge_ppm
from tickrelay.protocol.codec import Decoder, Domain, Message, Source, encode_events, make_sequence, restamp
from tickrelay.protocol.messages import (
    Alert,
    AlertKind,
    InstrumentMeta,
    L2Delta,
    L2Snapshot,
    Reason,
    Severity,
    SignalState,
    SpreadSignal,
    StateInvalidation,
    Trade,
)
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.relay.server import Relay, RelaySettings
from tickrelay.runtime import free_port
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.subscribe import Subscription


Relays = dict[Domain, Relay]


@pytest.fixture
async def relays(tmp_path: Path) -> AsyncIterator[Relays]:
    out = {}
    for domain in (Domain.MARKET_DATA, Domain.SIGNAL, Domain.SYSTEM):
        out[domain] = Relay(tmp_path / f"{domain.name.lower()}.sock", RelaySettings(domain=domain))
        await out[domain].start()
    yield out
    for relay in out.values():
        await relay.stop(drain_s=0.1)


async def start(relays: Relays, *argv: str) -> asyncio.subprocess.Process:
    """A consumer process wired to the test's relays; returns once the market-data relay has it."""
    proc = await asyncio.create_subprocess_exec(
        *ME, *argv, "--socket", str(relays[Domain.MARKET_DATA].path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    await until(
        lambda: any(s["name"] == argv[0] for s in relays[Domain.MARKET_DATA].status()["subscribers"]), 20
    )
    return proc


async def stop(proc: asyncio.subprocess.Process) -> tuple[str, str]:
    proc.terminate()
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def collect(path: Path, domain: Domain, count: int, kind: type) -> list[object]:
    got: list[object] = []
    async with asyncio.timeout(30):
        async for item in Subscription(path, domain=domain, name="test"):
            if isinstance(item, Message):
                got += [e for e in item.events() if isinstance(e, kind)]
                if len(got) >= count:
                    return got
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.mark.timeout(90)
async def test_strategy_process_alerts_on_the_implausible_real_edge_and_signals_nothing(
    relays: Relays,
) -> None:
    """The real Kraken 2023 and Binance 2024 books, where the offline demo opened a +127 % edge: the
    process publishes exactly its logic's IMPLAUSIBLE_EDGE alert on the system relay, no signal, and its
    metrics say why the summaries show no cross-venue pair."""
    stream = merged_stream()
    monitor = SpreadMonitor(strategy_settings(load_settings(None, "", {}, {}).config.strategy))
    expected = [s for m in stream for s in monitor.on_message(m.header.timestamp_ns, m.events())]
    assert [type(e) for e in expected] == [Alert]
    port = free_port()
    proc = await start(
        relays, "strategy", "--signal-socket", str(relays[Domain.SIGNAL].path),
        "--system-socket", str(relays[Domain.SYSTEM].path), "--metrics-port", str(port),
    )  # fmt: skip
    receiver = asyncio.create_task(collect(relays[Domain.SYSTEM].path, Domain.SYSTEM, 1, Alert))
    await until(lambda: len(relays[Domain.SYSTEM].status()["subscribers"]) == 1)
    out = RelayOutput(relays[Domain.MARKET_DATA].path, source=Source.PUBLISH_TOOL, name="test")
    out.start()
    for m in stream:  # one stream: the relay keeps its order
        out.send(m.raw)
    assert await out.sync() == len(stream)
    got = await receiver
    await out.close()
    assert got == expected
    verdicts = await asyncio.to_thread(lambda: scraped_verdicts([scrape(port)]))
    assert headline(verdicts) == "no cross-venue pair in the data (1 with an implausible edge)"
    printed, summary = await stop(proc)
    assert printed.splitlines() == [f"ALERT  {expected[0].text}"]  # type: ignore[attr-defined]
    assert "net edge +127.36 % > 5 %, bad data: no signal" in printed
    assert "signals none; 0 open at exit; 0 messages missing upstream" in summary
    assert relays[Domain.SIGNAL].metrics()["counters"]["relay_messages_in"].get(("signal",), 0) == 0


def quote_book(venue: int, asset: int, bid: str, ask: str) -> L2Snapshot:
    return L2Snapshot(asset, venue, 51, 3, 0, 0, 0, ((px(bid), 1_00000000),), ((px(ask), 1_00000000),))


def px(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 10**8 + int(frac.ljust(8, "0"))


@pytest.mark.timeout(90)
async def test_strategy_process_never_opens_on_books_a_sequence_gap_left_untrusted(relays: Relays) -> None:
    """Kraken's stream skips two sequence numbers on its way through a real relay: the pair open on its
    book closes, a later Binance move does not reopen it on Kraken's untrusted book (nor does Kraken's
    next delta), and Kraken's next snapshot does."""
    usdt = asset_id_for("BTC/USDT")
    kraken, binance = (
        RelayOutput(relays[Domain.MARKET_DATA].path, source=src, name="test")
        for src in (Source.KRAKEN_COLLECTOR, Source.BINANCE_COLLECTOR)
    )
    proc = await start(relays, "strategy", "--signal-socket", str(relays[Domain.SIGNAL].path))
    receiver = asyncio.create_task(collect(relays[Domain.SIGNAL].path, Domain.SIGNAL, 3, SpreadSignal))
    await until(lambda: len(relays[Domain.SIGNAL].status()["subscribers"]) == 1)
    await until(lambda: len(relays[Domain.SIGNAL].status()["publishers"]) == 1, 20)
    steps = [
        (kraken, 1, InstrumentMeta(BTC, 101, 51, 1, 8, "XBT/USD", "BTC/USD")),
        (kraken, 2, quote_book(101, BTC, "100", "101")),
        (binance, 1, InstrumentMeta(usdt, 100, 51, 2, 8, "BTCUSDT", "BTC/USDT")),
        (binance, 2, quote_book(100, usdt, "103", "104")),  # opens: buy Kraken 101, sell Binance 103
        (
            kraken,
            5,
            L2Delta(BTC, 101, 51, 0, 0, 0, 0, (), ((px("100.5"), 1_00000000),)),
        ),  # 3 and 4 lost: closes
        (binance, 3, L2Delta(usdt, 100, 51, 0, 0, 0, 0, ((px("103.5"), 1_00000000),), ())),  # no reopening
        (kraken, 6, L2Delta(BTC, 101, 51, 0, 0, 0, 0, (), ((px("100.6"), 1_00000000),))),  # still no snapshot
        (kraken, 7, quote_book(101, BTC, "100", "101")),  # the next snapshot: trusted, reopens
    ]
    for out in (kraken, binance):
        out.start()
    for ts, (out, counter, event) in enumerate(steps, 1):
        out.forward(
            restamp(
                encode_events(Domain.MARKET_DATA, 0, 0, ts, event),
                out.source,
                make_sequence(out.stream_id, counter),
            )
        )
        await out.sync()
    got = await receiver
    for out in (kraken, binance):
        await out.close()
    fees = {101: 2600, 100: 1000}
    opened = SpreadSignal(BTC, usdt, 101, 100, SignalState.OPEN, px("101"), px("103"), 1_00000000,
                          net_edge_ppm(px("103"), px("101"), fees[100], fees[101]), 4)  # fmt: skip
    assert got == [
        opened,
        opened._replace(state=SignalState.CLOSE, trigger_ts_ns=4),  # at the last message time seen
        opened._replace(sell_price=px("103.5"), net_edge_ppm=net_edge_ppm(px("103.5"), px("101"), 1000, 2600),
                        trigger_ts_ns=8),
    ]  # fmt: skip
    _, summary = await stop(proc)
    assert "2 messages missing upstream" in summary


BTC = asset_id_for("BTC/USD")


async def risk_alerts(
    relays: Relays, stale_s: str, count: int, messages: list[bytes]
) -> tuple[list[object], str]:
    """Start the risk process, send ``messages`` as the Kraken collector, and return the first ``count``
    alerts it publishes on the system relay, and its log."""
    proc = await start(
        relays, "risk", "--system-socket", str(relays[Domain.SYSTEM].path), "--stale-s", stale_s
    )
    await until(lambda: len(relays[Domain.SYSTEM].status()["publishers"]) == 1, 20)
    receiver = asyncio.create_task(collect(relays[Domain.SYSTEM].path, Domain.SYSTEM, count, Alert))
    await until(lambda: len(relays[Domain.SYSTEM].status()["subscribers"]) == 1)
    out = RelayOutput(relays[Domain.MARKET_DATA].path, source=Source.KRAKEN_COLLECTOR, name="test")
    out.start()
    for raw in messages:
        out.send(raw)
    await out.sync()
    got = await receiver
    await out.close()
    _, log = await stop(proc)
    return got, log


def md(ts: int, *events: object) -> bytes:
    return encode_events(Domain.MARKET_DATA, 2, 0, ts, *events)  # type: ignore[arg-type]


@pytest.mark.timeout(90)
async def test_risk_process_alerts_on_the_system_relay_and_in_its_log(relays: Relays) -> None:
    messages = [
        md(1, InstrumentMeta(BTC, 101, 51, 1, 8, "XBT/USD", "BTC/USD")),
        md(2, L2Snapshot(BTC, 101, 51, 3, 0, 0, 0, ((100_00000000, 1),), ((101_00000000, 1),))),
        md(3, L2Delta(BTC, 101, 51, 0, 0, 0, 0, ((102_00000000, 1),), ())),
        md(4, Trade(BTC, 100_00000000, 1, 4, 101, 51, 0)),
        md(5, Trade(BTC, 110_00000000, 1, 5, 101, 51, 0)),
        md(6, StateInvalidation(101, 51, Reason.CHECKSUM_MISMATCH, (BTC,))),
    ]
    got, log = await risk_alerts(relays, "1", 4, messages)  # three from the messages, then quiet 1 s: stale
    assert got[:3] == [
        Alert(AlertKind.CROSSED_BOOK, Severity.CRITICAL, 101, BTC, 1_00000000, 3,
              "kraken BTC/USD: book crossed, bid 102.00000000 >= ask 101.00000000"),
        Alert(AlertKind.PRICE_JUMP, Severity.WARNING, 101, BTC, 100_000, 5,
              "kraken BTC/USD: trade at 110.00000000 is +10.00 % from 100.00000000"),
        Alert(AlertKind.CHECKSUM_FAILURE, Severity.CRITICAL, 101, BTC, 0, 6,
              "kraken BTC/USD: checksum_mismatch"),
    ]  # fmt: skip
    stale = got[3]
    assert isinstance(stale, Alert)
    assert (stale.kind, stale.venue_id, stale.asset_id) == (AlertKind.STALE_FEED, 101, 0)
    assert stale.value > 1_000_000_000
    assert (
        "tickrelay risk: CRITICAL: kraken BTC/USD: book crossed, bid 102.00000000 >= ask 101.00000000" in log
    )
    assert "tickrelay risk: WARNING: kraken: no message for" in log


@pytest.mark.timeout(90)
async def test_risk_process_on_the_real_kraken_book_with_one_edited_level(
    relays: Relays, tmp_path: Path
) -> None:
    """The recorded XBT/USD book with one size changed by one unit of its last place, through the real
    `tickrelay normalize` and a real relay: the risk process publishes exactly one alert, for that
    checksum failure, and nothing else."""
    lines = KRAKEN.read_bytes().splitlines()
    target = next(i for i, line in enumerate(lines) if line.startswith(b"[") and b'"c"' in line and i > 100)
    edited = json.loads(lines[target])
    level = edited[1].get("a", edited[1].get("b"))[0]
    level[1] = f"{Decimal(level[1]) + Decimal('0.00000001'):.8f}"
    lines[target] = json.dumps(edited, separators=(",", ":")).encode()
    recording = tmp_path / "edited.jsonl"
    recording.write_bytes(b"\n".join(lines) + b"\n")
    normalize = await asyncio.create_subprocess_exec(
        *ME, "normalize", "--venue", "kraken", str(recording), "--out", str(tmp_path / "k.v2"),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    assert await normalize.wait() == 1  # an integrity failure: exit status 1
    decoder = Decoder()
    decoder.feed((tmp_path / "k.v2").read_bytes())
    stream = list(decoder)
    failing = next(m for m in stream if any(isinstance(e, StateInvalidation) for e in m.events()))
    (alert,), _ = await risk_alerts(relays, "600", 1, [m.raw for m in stream])
    assert alert == Alert(AlertKind.CHECKSUM_FAILURE, Severity.CRITICAL, 101, BTC, 0,
                          failing.header.timestamp_ns, "kraken BTC/USD: checksum_mismatch")  # fmt: skip
    taken = relays[Domain.SYSTEM].metrics()["counters"]["relay_messages_in"][("system",)]
    assert taken == 1  # that alert and no other
