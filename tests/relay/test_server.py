"""The relay over real Unix sockets: delivery, filters, no echo, overflow, bad publishers."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from tests.relay.conftest import message, until
from tickrelay.errors import RelayError
from tickrelay.protocol.codec import Decoder, Domain, Message, encode_message, make_sequence, restamp
from tickrelay.protocol.link import (
    ErrorCode,
    Hello,
    HelloAck,
    Overflow,
    RelayError as RelayErrorMsg,
    Role,
    decode_control,
    encode_batch,
    encode_control,
)
from tickrelay.protocol.messages import Dropped, TlvType
from tickrelay.relay.fanout import Filter, select_py
from tickrelay.relay.server import Relay, RelaySettings
from tickrelay.transport.output import RelayOutput
from tickrelay.transport.subscribe import Gap, Subscription


def stamped(raw: bytes, stream_id: int, counter: int) -> bytes:
    return restamp(raw, raw[6], make_sequence(stream_id, counter))


async def collect(sub: Subscription, n: int, into: list[Message | Gap]) -> None:
    seen = 0
    async for item in sub:
        into.append(item)
        seen += isinstance(item, Message)
        if seen >= n:
            return


async def raw_client(path: Path, hello: Hello) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Decoder]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(encode_control(hello))
    decoder = Decoder()
    while (m := decoder.next_message()) is None:
        decoder.feed(await reader.read(4096))
    assert isinstance(decode_control(m), HelloAck)
    return reader, writer, decoder


async def test_many_publishers_many_subscribers_exact_bytes_in_order_no_echo(relay: Relay) -> None:
    n = 3000
    outs = [RelayOutput(relay.path, source=src, stream_id=10 + src) for src in (1, 2, 3)]
    filters = [Filter(), Filter(venues=frozenset({101})), Filter(tlv_types=frozenset({TlvType.QUOTE}))]
    subs = [Subscription(relay.path, filter=f, reconnect=False) for f in filters]
    sent = {o.source: [stamped(message(i, o.source), o.stream_id, i + 1) for i in range(n)] for o in outs}
    expected = []
    for f in filters:
        per_source = {src: select_py(f, b"".join(msgs))[0] for src, msgs in sent.items()}
        expected.append(per_source)
    got: list[list[Message | Gap]] = [[] for _ in subs]
    wanted = [sum(select_py(f, b"".join(m))[1] for m in sent.values()) for f in filters]
    tasks = [asyncio.create_task(collect(s, w, g)) for s, w, g in zip(subs, wanted, got, strict=True)]
    await until(lambda: len(relay.subscribers) == 3)
    for o in outs:
        o.start()
    for i in range(n):
        for o in outs:
            o.send(message(i, o.source))
        if i % 500 == 0:
            await asyncio.sleep(0)
    assert [await o.sync() for o in outs] == [n, n, n]
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    for items, per_source in zip(got, expected, strict=True):
        assert not [x for x in items if isinstance(x, Gap)]
        for src, body in per_source.items():
            assert b"".join(x.raw for x in items if isinstance(x, Message) and x.header.source == src) == body
    assert [p["messages"] for p in relay.status()["publishers"]] == [n, n, n]
    for o in outs:  # nothing but HelloAck and Sync answers ever reached a publisher: no echo
        assert o.stats.dropped == 0
        await o.close()


async def test_byte_at_a_time_and_coalesced_writes_give_the_same_stream(relay: Relay) -> None:
    msgs = [stamped(message(i), 5, i + 1) for i in range(60)]
    results = []
    for chunking in ("bytes", "whole"):
        sub = Subscription(relay.path, reconnect=False)
        got: list[Message | Gap] = []
        task = asyncio.create_task(collect(sub, 60, got))
        await until(lambda: len(relay.subscribers) == 1)
        _, writer, _ = await raw_client(relay.path, Hello(Role.PUBLISHER, 1, 3, 5))
        wire = b"".join(msgs)
        if chunking == "bytes":
            for i in range(len(wire)):
                writer.write(wire[i : i + 1])
                await writer.drain()
        else:
            writer.write(encode_batch(1, 3, make_sequence(5, 1), 60, 0, wire))
        await asyncio.wait_for(task, 10)
        results.append(b"".join(x.raw for x in got if isinstance(x, Message)))
        writer.close()
        await until(lambda: not relay.subscribers and not relay.publishers)
    assert results[0] == results[1] == b"".join(msgs)


async def test_a_stuck_subscriber_loses_only_its_own_messages_and_sees_the_gap(tmp_path: Path) -> None:
    relay = Relay(tmp_path / "md.sock", RelaySettings(subscriber_buffer=1 << 20))
    await relay.start()
    n = 100_000
    stuck_reader, stuck_writer, stuck_decoder = await raw_client(
        relay.path, Hello(Role.SUBSCRIBER, 1, 0, 0, Overflow.DROP, 256 << 10, "stuck")
    )
    healthy: list[Message | Gap] = []
    healthy_sub = Subscription(relay.path, reconnect=False, buffer_bytes=256 << 20)
    task = asyncio.create_task(collect(healthy_sub, n, healthy))
    await until(lambda: len(relay.subscribers) == 2)
    out = RelayOutput(relay.path, source=3, stream_id=9)
    out.start()
    for i in range(n):
        out.send(message(i))
        if i % 2000 == 0:
            await asyncio.sleep(0)
    assert await out.sync() == n  # the publisher was never held back by the stuck subscriber
    await asyncio.wait_for(task, 20)
    assert sum(isinstance(x, Message) for x in healthy) == n
    assert not [x for x in healthy if isinstance(x, Gap)]
    (stuck,) = [s for s in relay.status()["subscribers"] if s["name"] == "stuck"]
    assert stuck["dropped"] > 0
    assert stuck["messages"] + stuck["dropped"] == n
    counters, notices = [], []

    async def read_stuck(until_count: int) -> None:
        while len(counters) < until_count:
            stuck_decoder.feed(await asyncio.wait_for(stuck_reader.read(1 << 20), 5))
            for m in stuck_decoder:
                if m.header.source == relay.source:
                    notices.extend(m.events())
                else:
                    counters.append(m.header.sequence & 0xFFFFFFFFFFFF)

    await read_stuck(stuck["messages"])  # it resumes: first what was queued for it
    out.send(message(n))  # one more: it is told what it missed before it gets it
    await out.sync()
    await read_stuck(stuck["messages"] + 1)
    assert {(d.source, d.stream_id) for d in notices} == {(3, 9)}  # type: ignore[union-attr]
    assert sum(d.dropped for d in notices) == stuck["dropped"]  # type: ignore[union-attr]
    assert all(isinstance(d, Dropped) for d in notices)
    missing = sum(b - a - 1 for a, b in zip([0, *counters], counters, strict=False))
    assert missing == stuck["dropped"]
    assert counters[-1] == n + 1
    stuck_writer.close()
    await out.close()
    await relay.stop(drain_s=0)


async def test_disconnect_policy_aborts_the_slow_subscriber_once_and_frees_its_queue(relay: Relay) -> None:
    reader, writer, decoder = await raw_client(
        relay.path, Hello(Role.SUBSCRIBER, 1, 0, 0, Overflow.DISCONNECT, 64 << 10, "strict")
    )
    (strict,) = relay.subscribers
    out = RelayOutput(relay.path, source=3, stream_id=4)
    out.start()
    for i in range(40_000):  # 200 per delivery: the kernel's buffer fills, then the 64 KiB queue
        out.send(message(i))
        if i % 200 == 199:
            await out.sync()
    assert await out.sync() == 40_000
    assert strict.transport.is_closing()
    assert strict.transport.get_write_buffer_size() == 0  # the queue is discarded, not drained
    assert relay.rejected == {"overflow": 1}  # once, though every later delivery found it full
    assert relay.subscribers == []
    data = b""
    while chunk := await asyncio.wait_for(reader.read(1 << 20), 5):
        data += chunk
    decoder.feed(data)
    got = [m.raw for m in decoder]  # what the kernel held: the stream's first messages, then its end
    assert 0 < len(got) < 40_000
    assert got == [stamped(message(i), 4, i + 1) for i in range(len(got))]
    writer.close()
    await out.close()


BAD_INPUTS = {
    "garbage": (b"GET / HTTP/1.1\r\n" * 4, ErrorCode.PROTOCOL, "BadMagic"),
    "wrong_domain": (
        encode_message(2, 3, make_sequence(7, 1), 0, b"\x01\x00"),
        ErrorCode.WRONG_DOMAIN,
        "domain",
    ),
    "oversize": (
        encode_message(1, 3, make_sequence(7, 1), 0, b"\x00" * (1 << 20 | 1)),
        ErrorCode.TOO_LARGE,
        "limit",
    ),
    "bad_checksum": (message(0)[:-1] + b"\xee", ErrorCode.CHECKSUM, "ChecksumMismatch"),
    "batch_lies": (
        encode_batch(1, 3, make_sequence(7, 1), 3, 0, message(0) * 2),
        ErrorCode.PROTOCOL,
        "claims 3",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
async def test_a_bad_publisher_is_cut_off_and_nobody_else_notices(relay: Relay, case: str) -> None:
    data, code, words = BAD_INPUTS[case]
    good = RelayOutput(relay.path, source=1, stream_id=1)
    got: list[Message | Gap] = []
    task = asyncio.create_task(collect(Subscription(relay.path, reconnect=False), 20, got))
    await until(lambda: len(relay.subscribers) == 1)
    good.start()
    reader, writer, decoder = await raw_client(relay.path, Hello(Role.PUBLISHER, 1, 3, 7, name=case))
    for i in range(10):
        good.send(message(i, 1))
    writer.write(data)
    reply = await asyncio.wait_for(reader.read(), 5)  # the relay answers, then closes
    writer.close()
    decoder.feed(reply)
    (answer,) = [decode_control(m) for m in decoder]
    assert isinstance(answer, RelayErrorMsg)
    assert answer.code == code
    assert words in answer.reason
    for i in range(10, 20):
        good.send(message(i, 1))
    assert await good.sync() == 20
    await asyncio.wait_for(task, 5)
    assert [x.header.source for x in got if isinstance(x, Message)] == [1] * 20
    assert relay.rejected == {ErrorCode(code).name.lower(): 1}
    assert list(relay.publishers) == [(1, 1)]
    await good.close()


async def test_handshake_rules(relay: Relay) -> None:
    async def refused(*frames: bytes) -> RelayErrorMsg:
        reader, writer = await asyncio.open_unix_connection(str(relay.path))
        for frame in frames:
            writer.write(frame)
        decoder = Decoder()
        decoder.feed(await asyncio.wait_for(reader.read(), 5))
        answers = [decode_control(m) for m in decoder]
        writer.close()
        assert isinstance(answers[-1], RelayErrorMsg)
        return answers[-1]

    assert (await refused(message(0))).code == ErrorCode.BAD_HANDSHAKE
    assert (await refused(encode_control(Hello(Role.PUBLISHER, 2, 3, 1)))).code == ErrorCode.WRONG_DOMAIN
    sub_hello = encode_control(Hello(Role.SUBSCRIBER, 1))
    assert (await refused(sub_hello, message(0))).code == ErrorCode.NOT_ALLOWED  # subscribers cannot publish
    _, live, _ = await raw_client(relay.path, Hello(Role.PUBLISHER, 1, 3, 77))
    assert (await refused(encode_control(Hello(Role.PUBLISHER, 1, 3, 77)))).code == ErrorCode.DUPLICATE_STREAM
    assert (
        await refused(encode_control(Hello(Role.PUBLISHER, 1, 3, 78)), stamped(message(0), 79, 1))
    ).code == (
        ErrorCode.NOT_ALLOWED  # a publisher may only send its own stream
    )
    live.close()


async def test_socket_files_modes_and_a_second_relay(tmp_path: Path) -> None:
    path = tmp_path / "run" / "md.sock"
    first = Relay(path)
    await first.start()
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with pytest.raises(RelayError, match="already listening"):
        await Relay(path).start()
    await first.stop()
    assert not path.exists()
    import socket as socketlib

    stale = socketlib.socket(socketlib.AF_UNIX)
    stale.bind(str(path))  # a socket file nobody listens on: what a killed relay leaves
    stale.close()
    second = Relay(path)
    await second.start()
    await second.stop()
    assert os.listdir(path.parent) == []


async def test_signal_domain_requires_checksums(tmp_path: Path) -> None:
    relay = Relay(tmp_path / "sig.sock", RelaySettings(domain=Domain.SIGNAL, verify_checksums=False))
    await relay.start()
    reader, writer, decoder = await raw_client(relay.path, Hello(Role.PUBLISHER, 2, 20, 1))
    writer.write(encode_message(2, 20, make_sequence(1, 1), 0, b"\x01\x00", checksum=False))
    decoder.feed(await asyncio.wait_for(reader.read(), 5))
    (answer,) = [decode_control(m) for m in decoder]
    assert isinstance(answer, RelayErrorMsg)
    assert answer.code == ErrorCode.CHECKSUM
    writer.close()
    await relay.stop()
