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
from tickrelay.commands.strategy import strategy_settings
from tickrelay.config import load_settings
from tickrelay.consumers.strategy import SpreadMonitor
from tickrelay.protocol.codec import Decoder, Domain, Message, Source, encode_events
from tickrelay.protocol.messages import (
    Alert,
    AlertKind,
    InstrumentMeta,
    L2Delta,
    L2Snapshot,
    Reason,
    Severity,
    SpreadSignal,
    StateInvalidation,
    Trade,
)
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.relay.server import Relay, RelaySettings
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
async def test_strategy_process_publishes_exactly_the_signals_of_the_replayed_books(relays: Relays) -> None:
    stream = merged_stream()
    monitor = SpreadMonitor(strategy_settings(load_settings(None, "", {}, {}).values))
    expected = [s for m in stream for s in monitor.on_message(m.header.timestamp_ns, m.events())]
    assert len(expected) == 6
    proc = await start(relays, "strategy", "--signal-socket", str(relays[Domain.SIGNAL].path))
    receiver = asyncio.create_task(
        collect(relays[Domain.SIGNAL].path, Domain.SIGNAL, len(expected), SpreadSignal)
    )
    await until(lambda: len(relays[Domain.SIGNAL].status()["subscribers"]) == 1)
    await until(lambda: len(relays[Domain.SIGNAL].status()["publishers"]) == 1, 20)
    out = RelayOutput(relays[Domain.MARKET_DATA].path, source=Source.PUBLISH_TOOL, name="test")
    out.start()
    for m in stream:  # one stream: the relay keeps its order
        out.send(m.raw)
    assert await out.sync() == len(stream)
    got = await receiver
    await out.close()
    printed, summary = await stop(proc)
    assert got == expected
    assert printed.splitlines()[0] == (
        "OPEN   buy kraken BTC/USD at 27139.40000000, sell binance BTC/USDT at 61837.63000000, "
        "size 0.01106822, net 12736.40 bp"
    )
    assert "signals close 1, open 1, update 4; 0 open at exit; 0 messages missing upstream" in summary


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
