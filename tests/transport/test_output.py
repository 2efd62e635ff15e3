"""RelayOutput on its own: overflow while the relay is down, the loss report, bad input, send_event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.relay.conftest import message, until
from tickrelay.errors import ProtocolError
from tickrelay.protocol.codec import Message
from tickrelay.protocol.messages import Heartbeat, PublisherLoss, Trade
from tickrelay.relay.server import Relay
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.subscribe import Gap, Subscription


async def test_relay_down_drops_oldest_counts_and_reports_after_reconnect(tmp_path: Path) -> None:
    path, door = tmp_path / "md.sock", tmp_path / "door.sock"  # the publisher finds the relay via `door`
    out = RelayOutput(door, source=3, stream_id=8, buffer_bytes=74 * 1000, backoff_cap_s=0.05)
    out.start()
    for i in range(3000):  # nobody listens yet: send() still returns at once
        out.send(message(2 * i))
    assert out.stats.sent == 3000
    dropped = out.stats.dropped
    assert 1500 < dropped < 3000  # about 74 kB of 74- to 104-byte messages survive
    assert "dropped" in out.stats.last_error
    relay = Relay(path)
    await relay.start()
    items: list[Message | Gap] = []

    async def consume() -> None:
        async for item in Subscription(path, reconnect=False):
            items.append(item)
            if isinstance(item, Message) and any(isinstance(e, PublisherLoss) for e in item.events()):
                return

    task = asyncio.create_task(consume())
    await until(lambda: relay.subscribers, 5)
    door.symlink_to(path)  # only now can the publisher connect: the subscriber sees all it sends
    await out.wait_connected(5)
    await asyncio.wait_for(task, 5)
    messages = [i for i in items if isinstance(i, Message)]
    # the survivors are the newest, in order, then the loss report with its own sequence
    counters = [m.header.sequence & 0xFFFFFFFFFFFF for m in messages]
    assert counters == list(range(dropped + 1, 3002))
    assert messages[-1].events() == [PublisherLoss(dropped)]
    assert out.stats.reconnects == 0  # the first connection is not a reconnect
    await out.close()
    await relay.stop()


async def test_send_refuses_what_is_not_one_message(tmp_path: Path) -> None:
    out = RelayOutput(tmp_path / "none.sock", source=3)
    with pytest.raises(ProtocolError, match="got 73 bytes that are not"):
        out.send(message(0)[:-1])
    small = RelayOutput(tmp_path / "none.sock", source=3, buffer_bytes=60)
    with pytest.raises(ProtocolError, match="a message of 74 bytes exceeds the output buffer of 60"):
        small.send(message(0))


async def test_send_event_encodes_with_the_streams_sequence(relay: Relay) -> None:
    out = RelayOutput(relay.path, source=3, stream_id=12)
    got: list[Message | Gap] = []

    async def consume() -> None:
        async for item in Subscription(relay.path, reconnect=False):
            got.append(item)
            if len(got) == 2:
                return

    task = asyncio.create_task(consume())
    await until(lambda: relay.subscribers, 5)
    out.start()
    trade = Trade(1, 2, 3, 4, 102, 51, 1)
    out.send_event(111, trade)
    out.send_event(222, Heartbeat(5, 6))
    await asyncio.wait_for(task, 5)
    first, second = got
    assert isinstance(first, Message)
    assert isinstance(second, Message)
    assert (first.header.sequence, first.header.timestamp_ns, first.events()) == (
        (12 << 48) | 1,
        111,
        [trade],
    )
    assert (second.header.sequence, second.events()) == ((12 << 48) | 2, [Heartbeat(5, 6)])
    await out.close()
