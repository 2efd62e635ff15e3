"""A 3-node nats-server cluster, streams replicated 3 times: bridge out on node 0 or 1, bridge in on node
2; bridge out's node is killed mid-run and bridge out carries on through the other. Slow: a cluster elects its
JetStream leader first."""

from __future__ import annotations

import asyncio

import pytest

from tests.bridge.conftest import Collector, NatsServer
from tests.bridge.test_bridge import running
from tests.relay.conftest import message, until
from tickrelay.bridge.inbound import BridgeIn
from tickrelay.bridge.outbound import BridgeOut, OutSettings
from tickrelay.protocol.codec import Source
from tickrelay.relay.server import Relay
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.subscribe import Gap


pytestmark = [pytest.mark.nats, pytest.mark.slow]


async def test_cluster_carries_the_stream_through_a_node_failure(
    relays: tuple[Relay, Relay], nats_cluster: list[NatsServer]
) -> None:
    a, b = relays
    n0, n1, n2 = nats_cluster
    truth, far = Collector(a.path), Collector(b.path)
    await until(lambda: len(a.subscribers) == 1 and len(b.subscribers) == 1)
    out = BridgeOut(a.path, [n0.url, n1.url], OutSettings(replicas=3))
    inn = BridgeIn(b.path, [n2.url])
    async with asyncio.timeout(60):
        async with running(out, 45), running(inn, 45):
            await until(lambda: len(a.subscribers) == 2, 10)
            pub = RelayOutput(a.path, source=Source.PUBLISH_TOOL, stream_id=9)
            pub.start()
            for i in range(3000):
                pub.send(message(i))
                if i % 50 == 49:
                    await asyncio.sleep(0.01)
                if i == 1500:  # the node bridge out is connected to
                    assert out.client is not None
                    port = out.client.connected_url.port
                    next(n for n in (n0, n1) if n.port == port).stop(kill=True)
            await pub.sync()
            await until(lambda: far.has(truth.messages[-1].raw), 20)
            await pub.close()
    sent = [m.raw for m in truth.messages]
    got = [m.raw for m in far.messages]
    kept = set(got)
    assert got == [m for m in sent if m in kept]  # in order, byte for byte
    assert sum(g.missing for g in far.items if isinstance(g, Gap)) == len(sent) - len(got)
    assert len(got) > len(sent) // 2
    assert out.stats.nats.reconnects >= 1
    await truth.close()
    await far.close()
