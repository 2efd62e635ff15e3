"""Helpers for relay tests: real relays on real Unix sockets under tmp_path."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tickrelay.protocol.codec import (
    Decoder,
    Message,
    encode_events,
    encode_quote_message,
    encode_trade_message,
)
from tickrelay.protocol.messages import Quote, StateInvalidation, Trade
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.relay.server import Relay, RelaySettings


FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
ME = [sys.executable, "-m", "tickrelay"]
BTC, ETH = asset_id_for("BTC/USD"), asset_id_for("ETH/USD")
VENUES = (100, 101, 102)


def message(i: int, source: int = 3) -> bytes:
    """A deterministic market-data message: trades and quotes over two instruments and three venues."""
    venue, asset = VENUES[i % 3], (BTC, ETH)[i // 3 % 2]
    if i % 7 == 6:
        return encode_events(1, source, 0, i, StateInvalidation(venue, 51, 2, (asset,)))
    if i % 2:
        return encode_quote_message(source, 0, i, Quote(asset, i, 1, i + 1, 2, i, venue, 51))
    return encode_trade_message(source, 0, i, Trade(asset, i * 100, 7, i, venue, 51, i % 2))


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    r = Relay(tmp_path / "md.sock", RelaySettings(subscriber_buffer=4 << 20))
    await r.start()
    yield r
    await r.stop(drain_s=0.1)


async def until(predicate: object, timeout_s: float = 5.0) -> None:
    """Wait for ``predicate()`` to hold (polling: the tests observe other processes and sockets)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110 - other processes: nothing to await
            await asyncio.sleep(0.01)


def start_relay(path: Path, *extra: str) -> subprocess.Popen[bytes]:
    """A relay process; its stderr goes to ``<path>.log``; returns once it says it listens."""
    log = path.with_suffix(".log")
    before = log.read_text().count("listening on") if log.exists() else 0
    with log.open("ab") as err:
        proc = subprocess.Popen([*ME, "relay", "--socket", str(path), *extra], stderr=err)
    deadline = time.monotonic() + 20
    while log.read_text().count("listening on") == before:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the relay did not start"
        time.sleep(0.02)
    return proc


def normalize(venue: str, recording: Path, out: Path, *options: str) -> list[Message]:
    """Run the real ``tickrelay normalize`` over a fixture recording; the messages it wrote to ``out``."""
    subprocess.run(
        [*ME, "normalize", "--venue", venue, str(recording), "--out", str(out), *options],
        check=True,
        capture_output=True,
    )
    decoder = Decoder(max_payload=8 << 20)
    decoder.feed(out.read_bytes())
    return list(decoder)
