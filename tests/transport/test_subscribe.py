"""Subscription against real relays: the errors a caller sees, the end of a relay, raw mode."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.relay.conftest import message, until
from tickrelay.errors import RelayError
from tickrelay.protocol.codec import Decoder, Domain, Message, make_sequence, restamp
from tickrelay.relay.server import Relay
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.subscribe import Subscription


async def test_no_relay_is_a_clear_error_when_not_reconnecting(tmp_path: Path) -> None:
    sub = Subscription(tmp_path / "absent.sock", reconnect=False)
    with pytest.raises(RelayError, match=r"cannot connect to .*absent\.sock: No such file or directory"):
        async for _ in sub:
            pass
    assert sub.stats.last_error.startswith("FileNotFoundError")


async def test_a_refused_subscription_says_why(relay: Relay) -> None:
    sub = Subscription(relay.path, domain=Domain.SIGNAL, reconnect=False)
    with pytest.raises(
        RelayError, match="the relay refused the subscription: this relay carries domain 1, not 2"
    ):
        async for _ in sub:
            pass
    assert not sub.connected.is_set()


async def test_a_relay_that_goes_away_ends_a_subscription_that_does_not_reconnect(tmp_path: Path) -> None:
    relay = Relay(tmp_path / "md.sock")
    await relay.start()
    sub = Subscription(relay.path, reconnect=False)
    got: list[Message] = []

    async def consume() -> None:
        async for item in sub:
            assert isinstance(item, Message)
            got.append(item)

    task = asyncio.create_task(consume())
    await until(lambda: len(relay.subscribers) == 1)
    out = RelayOutput(relay.path, source=3, stream_id=5)
    out.start()
    for i in range(3):
        out.send(message(i))
    await out.sync()
    await until(lambda: len(got) == 3)
    await out.close()
    await relay.stop(drain_s=0)
    await asyncio.wait_for(task, 5)  # the iteration ends; no exception, no reconnect
    assert [m.raw[32:] for m in got] == [message(i)[32:] for i in range(3)]
    assert sub.stats.last_error == "the relay closed the connection"
    assert (sub.stats.messages, sub.stats.reconnects) == (3, 0)


async def test_raw_mode_yields_the_relays_bytes_unparsed(relay: Relay) -> None:
    sub = Subscription(relay.path, raw=True, reconnect=False)
    chunks: list[bytes] = []

    async def consume() -> None:
        async for item in sub:
            assert isinstance(item, bytes)
            chunks.append(item)

    task = asyncio.create_task(consume())
    await until(lambda: len(relay.subscribers) == 1)
    sent = [restamp(message(i), 3, make_sequence(5, i + 1)) for i in range(50)]
    out = RelayOutput(relay.path, source=3, stream_id=5)
    out.start()
    for m in sent:
        out.send(m)
    await out.sync()
    await until(lambda: sum(map(len, chunks)) >= sum(map(len, sent)))
    await out.close()
    task.cancel()
    decoder = Decoder()
    decoder.feed(b"".join(chunks))
    assert [m.raw for m in decoder] == sent  # the stream's own bytes, byte for byte, in order
    assert sub.stats.bytes == sum(map(len, chunks))
    assert sub.stats.messages == 0  # raw mode does not parse
