"""The replay exchange in this process, and what its tests compare with: the shared fixtures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tickrelay.replay.exchange import ReplayExchange


FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"


@pytest.fixture
async def exchange() -> AsyncIterator[ReplayExchange]:
    ex = ReplayExchange(speed=0)
    await ex.start()
    yield ex
    await ex.stop()


@pytest.fixture
async def paced() -> AsyncIterator[ReplayExchange]:
    """At the recorded pace, so a test can act while a recording plays."""
    ex = ReplayExchange(speed=1)
    await ex.start()
    yield ex
    await ex.stop()


async def frames_of(ws: aiohttp.ClientWebSocketResponse) -> list[str]:
    return [m.data async for m in ws if m.type == aiohttp.WSMsgType.TEXT]


async def receive_json(ws: aiohttp.ClientWebSocketResponse) -> Any:
    return json.loads(await asyncio.wait_for(ws.receive_str(), 5.0))


async def quiet_for(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[str]:
    """What arrives in ``seconds`` (the connection staying open)."""
    got: list[str] = []
    try:
        async with asyncio.timeout(seconds):
            async for m in ws:
                got.append(m.data)
    except TimeoutError:
        pass
    assert not ws.closed
    return got


def fixture_lines(stem: str) -> list[str]:
    return (FIXTURES / f"{stem}.jsonl").read_text().splitlines()
