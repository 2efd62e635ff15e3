"""Subscription against real relays: the errors a caller sees, the end of a relay, raw mode, what
comes with the handshake reply, and gaps seen by filtered subscriptions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.relay.conftest import message, until
from tickrelay.errors import RelayError
from tickrelay.protocol.codec import Decoder, Domain, Message, make_sequence, restamp
from tickrelay.protocol.link import Overflow
from tickrelay.relay.fanout import Filter, matches
from tickrelay.relay.server import Relay
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.subscribe import Gap, Subscription


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


def test_a_message_in_the_same_read_as_the_handshake_reply_is_delivered_at_once(fake_relay: Path) -> None:
    """The fake relay writes its HelloAck and a trade together, then nothing: `tail` printed nothing
    until a next read that never came."""
    tail = subprocess.run(
        [sys.executable, "-m", "tickrelay", "tail", "--socket", str(fake_relay), "--count", "1"],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout.splitlines()[1] == (
        "2023-11-14T22:13:20.000000000Z 1:1         binance  BTC/USD      trade BUY  5.00000000 @ 1.00000000"
    )  # under the header line


VENUE_101 = Filter(venues=frozenset({101}))


def counter(item: Message) -> int:
    return item.header.sequence & 0xFFFFFFFFFFFF


async def test_a_filtered_subscription_sees_the_relays_drops_as_gaps(relay: Relay) -> None:
    sub = Subscription(relay.path, filter=VENUE_101, overflow=Overflow.DROP, buffer_bytes=16 << 10)
    items: list[Message | Gap] = []
    stuck = asyncio.Event()
    total = 100_000  # the reader's own buffer and the kernel's take the first 700 KiB or so
    wanted = [i + 1 for i in range(total) if matches(VENUE_101, message(i))]

    async def consume() -> None:
        async for item in sub:
            items.append(item)
            if len(items) == 1:
                await stuck.wait()  # not reading: the relay's queue for us fills and overflows
            if isinstance(item, Message) and counter(item) == wanted[-1]:
                return

    task = asyncio.create_task(consume())
    await until(lambda: len(relay.subscribers) == 1)
    out = RelayOutput(relay.path, source=3, stream_id=5)
    out.start()
    for i in range(total - 30):
        out.send(message(i))
        if i % 2000 == 1999:
            await out.sync()
    await out.sync()
    assert relay.subscribers[0].dropped > 0
    stuck.set()
    await until(lambda: not relay.subscribers[0].transport.get_write_buffer_size())
    for i in range(total - 30, total):  # the next delivery brings the Dropped notice first
        out.send(message(i))
    await asyncio.wait_for(task, 10)
    got = [counter(m) for m in items if isinstance(m, Message) and m.header.source == 3]
    gaps = [g for g in items if isinstance(g, Gap)]
    assert gaps
    assert {(g.source, g.stream_id) for g in gaps} == {(3, 5)}
    missing = sum(g.missing for g in gaps)
    assert missing == relay.subscribers[0].dropped == sub.stats.dropped_by_relay == sub.stats.missing
    assert len(got) + missing == len(wanted)  # every matching message delivered or counted
    assert set(got) <= set(wanted)
    await out.close()


async def test_a_filtered_subscription_sees_a_gap_across_a_relay_restart(tmp_path: Path) -> None:
    path = tmp_path / "md.sock"
    relay = Relay(path)
    await relay.start()
    sub = Subscription(path, filter=VENUE_101, backoff_cap_s=0.1)
    items: list[Message | Gap] = []
    away = asyncio.Event()
    last = max(c for c in range(1, 181) if matches(VENUE_101, message(c - 1)))

    async def consume() -> None:
        async for item in sub:
            items.append(item)
            if len(items) == 10:
                await away.wait()  # the relay restarts while we do not read
            if isinstance(item, Message) and counter(item) == last:
                return

    task = asyncio.create_task(consume())
    await until(lambda: len(relay.subscribers) == 1)
    out = RelayOutput(path, source=3, stream_id=5, backoff_cap_s=0.1)
    out.start()
    sent = 0

    def publish(n: int) -> None:
        nonlocal sent
        for i in range(sent, sent + n):
            out.send(message(i))
        sent += n

    publish(60)
    await out.sync()
    await until(lambda: len(items) == 10)
    await relay.stop(drain_s=0)
    relay = Relay(path)
    await relay.start()
    publish(60)  # to the new relay, before the subscriber is back: lost to it
    await out.sync()
    away.set()
    await until(lambda: len(relay.subscribers) == 1)
    publish(60)
    await out.sync()
    await asyncio.wait_for(task, 10)
    (at,) = [i for i, item in enumerate(items) if isinstance(item, Gap)]
    gap = items[at]
    before = [counter(m) for m in items[:at] if isinstance(m, Message)]
    after = [counter(m) for m in items[at + 1 :] if isinstance(m, Message)]
    assert before + after == [c for c in range(1, 181) if matches(VENUE_101, message(c - 1))
                              and not before[-1] < c < after[0]]  # fmt: skip
    assert gap == Gap(3, 5, before[-1] + 1, after[0])
    matching_lost = [c for c in range(before[-1] + 1, after[0]) if matches(VENUE_101, message(c - 1))]
    assert 0 < len(matching_lost) <= gap.missing  # the count is an upper bound: the filter skipped some
    assert sub.stats.reconnects == 1
    await out.close()
    await relay.stop(drain_s=0)
