"""Two relays, each with its bridge, through a real nats-server: what the far side gets, byte for byte.

Relay A (a publisher of recorded Binance data and one of synthetic messages) -> bridge out -> nats-server
-> bridge in -> relay B -> a subscriber. The truth is what relay A delivers to a subscriber of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from tests.bridge.conftest import Collector, NatsServer
from tests.relay.conftest import FIXTURES, message, normalize, until
from tickrelay.bridge.inbound import BridgeIn, InSettings
from tickrelay.bridge.outbound import BridgeOut, OutSettings
from tickrelay.bridge.subjects import SubjectNamer, first_tlv
from tickrelay.consumers.market import MarketState
from tickrelay.protocol.codec import COUNTER_BITS, Message, Source, make_sequence, restamp
from tickrelay.protocol.messages import TlvType
from tickrelay.relay.server import Relay
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.subscribe import Gap


pytestmark = pytest.mark.nats
namer = SubjectNamer()
BTC = "hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT"


@pytest.fixture(scope="module")
def btc(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The recorded Binance BTCUSDT session as Protocol V2 (41,248 messages: meta, REST snapshot, deltas,
    trades, quotes), from the real `tickrelay normalize`."""
    f = FIXTURES / "binance" / "spot" / BTC
    if not f.with_name(f.name + ".jsonl").exists():
        pytest.skip("shared fixtures not present")
    out = tmp_path_factory.mktemp("btc") / "btc.v2"
    snapshot = f"BTCUSDT={f}.rest-depth-snapshot.json@7"
    return [m.raw for m in normalize("binance", Path(f"{f}.jsonl"), out, "--snapshot", snapshot)]


@contextlib.asynccontextmanager
async def running(bridge: BridgeOut | BridgeIn, ready_s: float = 15) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    await asyncio.wait_for(bridge.ready.wait(), ready_s)
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def publish(out: RelayOutput, messages: list[bytes], per_ms: int = 40) -> None:
    """Send at about ``per_ms`` messages a millisecond (the relay's subscribers keep up)."""
    for i, m in enumerate(messages):
        out.send(m)
        if i % per_ms == per_ms - 1:
            await asyncio.sleep(0.001)
    await out.sync()


def split(items: list[Message | Gap]) -> tuple[dict[tuple[int, int], list[bytes]], list[Gap]]:
    streams: dict[tuple[int, int], list[bytes]] = defaultdict(list)
    for m in items:
        if isinstance(m, Message):
            streams[(m.header.source, m.header.sequence >> COUNTER_BITS)].append(m.raw)
    return streams, [g for g in items if isinstance(g, Gap)]


async def test_far_subscriber_gets_every_message_in_order_byte_identical(
    relays: tuple[Relay, Relay], nats_server: NatsServer, btc: list[bytes]
) -> None:
    a, b = relays
    truth, far = Collector(a.path), Collector(b.path)
    await until(lambda: len(a.subscribers) == 1 and len(b.subscribers) == 1)
    out = BridgeOut(a.path, [nats_server.url])
    inn = BridgeIn(b.path, [nats_server.url])
    async with running(out), running(inn):
        await until(lambda: len(a.subscribers) == 2)
        binance = RelayOutput(a.path, source=Source.BINANCE_COLLECTOR, stream_id=7)
        synthetic = RelayOutput(a.path, source=Source.PUBLISH_TOOL, stream_id=9)
        binance.start()
        synthetic.start()
        await asyncio.gather(
            publish(binance, btc[:20000]), publish(synthetic, [message(i) for i in range(3000)])
        )
        await until(lambda: len(far.messages) == 23000, 20)
        await binance.close()
        await synthetic.close()
    sent, gaps = split(truth.items)
    got, far_gaps = split(far.items)
    assert not gaps
    assert not far_gaps
    assert set(got) == {(1, 7), (64, 9)}
    assert got[(1, 7)] == sent[(1, 7)]  # every message, in order, byte for byte
    assert got[(64, 9)] == sent[(64, 9)]
    assert (len(sent[(1, 7)]), len(sent[(64, 9)])) == (20000, 3000)
    assert [m[32:] for m in got[(1, 7)]] == [m[32:] for m in btc[:20000]]  # the recorded payloads
    assert (out.stats.messages, inn.stats.messages) == (23000, 23000)
    assert out.stats.nats_messages < 23000 / 4  # batched
    assert out.namer.subject(btc[2]) == "tickrelay.market-data.binance.BTC-USDT.trade"
    assert (inn.stats.gaps, inn.stats.rejected) == (0, 0)
    await truth.close()
    await far.close()


def books_of(messages: list[Message]) -> dict[tuple[int, int], tuple[list[tuple[int, int]], ...]]:
    market = MarketState()  # what a consumer holds
    for m in messages:
        for event in m.events():
            market.apply(m.header.timestamp_ns, event)
    return {key: inst.book.levels() for key, inst in market.instruments.items() if inst.book_ready}


async def test_late_joiner_rebuilds_books_from_the_last_value_stream(
    relays: tuple[Relay, Relay], nats_server: NatsServer, btc: list[bytes]
) -> None:
    a, b = relays
    truth = Collector(a.path)
    await until(lambda: len(a.subscribers) == 1)
    out = BridgeOut(a.path, [nats_server.url], OutSettings(snapshot_s=0.05))
    async with running(out):
        await until(lambda: len(a.subscribers) == 2)
        binance = RelayOutput(a.path, source=Source.BINANCE_COLLECTOR, stream_id=7)
        binance.start()
        await publish(binance, btc[:15000])  # the REST snapshot and 1,200 deltas, then ...
        await asyncio.sleep(2.0)  # ... the far side joins later than its replay margin reaches back
        far = Collector(b.path)
        await until(lambda: len(b.subscribers) == 1)
        inn = BridgeIn(b.path, [nats_server.url], InSettings(last_value=True, catch_up_margin_s=0.6))
        async with running(inn):
            await publish(binance, btc[15000:])
            await until(lambda: len(truth.messages) == len(btc))
            await until(lambda: far.has(truth.messages[-1].raw), 20)
        await binance.close()
    own = [m for m in far.messages if m.header.source == Source.NATS_BRIDGE]
    origin = [m for m in far.messages if m.header.source == Source.BINANCE_COLLECTOR]
    assert inn.stats.snapshots == 1
    assert inn.stats.metas == 1
    assert len(origin) < len(btc) - 1000  # it joined late: the collector's own snapshot never reached it
    assert not [m for m in origin if first_tlv(m.raw)[0] == TlvType.L2_SNAPSHOT]
    assert [m.raw for m in origin] == [m.raw for m in truth.messages[-len(origin) :]]  # then every message
    assert not [g for g in far.items if isinstance(g, Gap)]
    reference = books_of(truth.messages)
    assert len(reference) == 1
    assert books_of(far.messages) == reference  # snapshot + the deltas after it = the publisher's book
    assert [type(e).__name__ for e in own[-1].events()] == ["InstrumentMeta", "L2Snapshot"]
    await truth.close()
    await far.close()


def one_stream(n: int) -> list[bytes]:
    """``n`` messages of one publisher stream (tickrelay publish's source, stream id 9), counters 1..n."""
    return [restamp(message(i), Source.PUBLISH_TOOL, make_sequence(9, i + 1)) for i in range(n)]


async def test_slow_consumer_loss_is_counted_as_gaps(
    relays: tuple[Relay, Relay], nats_server: NatsServer
) -> None:
    _, b = relays
    far = Collector(b.path)
    await until(lambda: len(b.subscribers) == 1)
    sent = one_stream(3001)
    inn = BridgeIn(b.path, [nats_server.url], InSettings(pending_msgs=8))
    async with running(inn):
        nc = await nats.connect(nats_server.url)
        for m in sent[:3000]:  # one burst, one message per NATS message: more than the 8 it may queue
            await nc.publish(namer.subject(m), m)
        await nc.flush()
        await asyncio.sleep(0.3)
        await nc.publish(namer.subject(sent[-1]), sent[-1])
        await nc.close()
        await until(lambda: far.has(sent[-1]), 10)
    got = [m.raw for m in far.messages]
    gaps = [g for g in far.items if isinstance(g, Gap)]
    assert inn.stats.nats.slow_consumer > 0
    assert len(got) < len(sent)
    assert got == [m for m in sent if m in set(got)]  # in order, byte for byte
    assert got[0] == sent[0]
    assert sum(g.missing for g in gaps) == len(sent) - len(got)  # nothing lost silently
    assert inn.stats.missing == len(sent) - len(got)
    await far.close()


async def test_idle_streams_release_their_relay_connection_and_come_back_without_losing_count(
    relays: tuple[Relay, Relay], nats_server: NatsServer
) -> None:
    _, b = relays
    far = Collector(b.path)
    await until(lambda: len(b.subscribers) == 1)
    sent = one_stream(5)
    inn = BridgeIn(b.path, [nats_server.url], InSettings(idle_close_s=0.3))
    async with running(inn):
        nc = await nats.connect(nats_server.url)
        for m in sent[:2]:
            await nc.publish(namer.subject(m), m)
        await nc.flush()
        await until(lambda: far.has(sent[1]))
        assert sorted(p["source"] for p in b.status()["publishers"]) == [
            Source.PUBLISH_TOOL,
            Source.NATS_BRIDGE,
        ]
        await until(lambda: inn.stats.idle_closed == 1)  # silent for 0.3 s: its connection is closed
        await until(lambda: [p["source"] for p in b.status()["publishers"]] == [Source.NATS_BRIDGE])
        for m in (sent[2], sent[4]):  # the stream speaks again, then skips one
            await nc.publish(namer.subject(m), m)
        await nc.close()
        await until(lambda: far.has(sent[4]))
    assert [m.raw for m in far.messages] == [sent[0], sent[1], sent[2], sent[4]]
    assert [(g.expected, g.got) for g in far.items if isinstance(g, Gap)] == [(4, 5)]  # counters kept
    assert (inn.stats.gaps, inn.stats.missing, inn.stats.streams) == (1, 1, 2)
    await far.close()


async def test_since_replays_the_past_of_the_subjects_asked_then_goes_live(
    relays: tuple[Relay, Relay], nats_server: NatsServer, btc: list[bytes]
) -> None:
    """``--since-s`` with a narrowed ``--subject``: BTC-USDT trades published before bridge in existed
    come from the TICKRELAY stream, later ones live, nothing else, and the skipped counters are gaps."""
    a, b = relays
    truth, far = Collector(a.path), Collector(b.path)
    await until(lambda: len(a.subscribers) == 1 and len(b.subscribers) == 1)
    trades = "tickrelay.market-data.binance.BTC-USDT.trade"
    out = BridgeOut(a.path, [nats_server.url])
    async with running(out):
        await until(lambda: len(a.subscribers) == 2)
        binance = RelayOutput(a.path, source=Source.BINANCE_COLLECTOR, stream_id=7)
        synthetic = RelayOutput(a.path, source=Source.PUBLISH_TOOL, stream_id=9)
        binance.start()
        synthetic.start()
        await asyncio.gather(
            publish(binance, btc[:6000]), publish(synthetic, [message(i) for i in range(600)])
        )
        await until(lambda: out.stats.messages == 6600, 20)
        inn = BridgeIn(b.path, [nats_server.url], InSettings(subject=trades, since_s=600))
        async with running(inn):
            await publish(binance, btc[6000:8000])  # live now
            await until(lambda: out.stats.messages == 8600, 20)
            sent, _ = split(truth.items)
            wanted = [m for m in sent[(1, 7)] if out.namer.subject(m) == trades]
            await until(lambda: len(far.messages) == len(wanted), 20)
            await asyncio.sleep(0.2)  # nothing more comes
        await binance.close()
        await synthetic.close()
    got, gaps = split(far.items)
    assert set(got) == {(1, 7)}  # the synthetic stream's subjects were not asked for
    assert got[(1, 7)] == wanted  # in order, byte for byte
    counters = [int.from_bytes(m[8:16], "little") & ((1 << COUNTER_BITS) - 1) for m in wanted]
    assert sum(1 for c in counters if c <= 6000) > 100  # replayed: published before bridge in started
    assert counters[-1] > 6000  # and live after
    assert sum(g.missing for g in gaps) == counters[-1] - counters[0] + 1 - len(wanted)  # the rest: gaps
    await truth.close()
    await far.close()
