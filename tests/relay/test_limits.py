"""relay/server.py's limits over real Unix sockets: what a connection may send before its Hello, the
handshake and message deadlines, the connection limit. Each breach is one RelayError, counted by reason."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

from tests.relay.conftest import message, until
from tests.relay.test_server import raw_client, stamped
from tickrelay.protocol.codec import HEADER_SIZE, Decoder, encode_message, make_sequence
from tickrelay.protocol.link import (
    ErrorCode,
    Hello,
    RelayError as RelayErrorMsg,
    Role,
    decode_control,
    encode_control,
)
from tickrelay.relay.server import Relay, RelaySettings
from tickrelay.transport.output import RelayOutput


async def answer(reader: asyncio.StreamReader, timeout_s: float = 3.0) -> RelayErrorMsg:
    """The relay's last word before it closes: one RelayError."""
    decoder = Decoder()
    decoder.feed(await asyncio.wait_for(reader.read(), timeout_s))
    (reply,) = [decode_control(m) for m in decoder]
    assert isinstance(reply, RelayErrorMsg)
    return reply


async def started(tmp_path: Path, **limits: float) -> Relay:
    relay = Relay(tmp_path / "md.sock", RelaySettings(**limits))  # type: ignore[arg-type]
    await relay.start()
    return relay


async def test_before_its_hello_a_connection_may_send_one_small_message(tmp_path: Path) -> None:
    relay = await started(tmp_path)
    reader, writer = await asyncio.open_unix_connection(str(relay.path))
    big = encode_message(1, 3, make_sequence(7, 1), 0, b"\x00" * (8 << 20))
    writer.write(big[: HEADER_SIZE + 100_000])  # the header says 8 MiB: refused before the rest comes
    reply = await answer(reader)
    assert reply.code == ErrorCode.TOO_LARGE
    assert reply.reason.startswith("before its Hello a connection may send one message of 65536 bytes")
    assert relay.rejected == {"handshake_too_large": 1}
    writer.close()
    # a Hello naming 8,000 instruments is still welcome
    hello = Hello(Role.SUBSCRIBER, 1, name="wide", asset_ids=tuple(range(1, 8001)))
    _, writer, _ = await raw_client(relay.path, hello)
    assert relay.subscribers[0].filter.asset_ids == frozenset(range(1, 8001))
    writer.close()
    await relay.stop(drain_s=0)


async def test_a_connection_that_sends_no_hello_is_refused_after_the_handshake_timeout(
    tmp_path: Path,
) -> None:
    relay = await started(tmp_path, hello_timeout_s=0.2)
    began = time.monotonic()
    silent = await asyncio.open_unix_connection(str(relay.path))
    partial = await asyncio.open_unix_connection(str(relay.path))
    partial[1].write(encode_control(Hello(Role.SUBSCRIBER, 1))[:10])  # a Hello begun, never finished
    for reader, _ in (silent, partial):
        assert await answer(reader) == RelayErrorMsg(ErrorCode.TIMEOUT, "no Hello within 0.2 s")
    assert 0.2 <= time.monotonic() - began < 2
    assert relay.rejected == {"handshake_timeout": 2}
    await until(lambda: not relay.connections)
    for _, writer in (silent, partial):
        writer.close()
    await relay.stop(drain_s=0)


async def test_connections_over_the_limit_are_refused_and_counted(tmp_path: Path) -> None:
    relay = await started(tmp_path, max_connections=3)
    held = [await raw_client(relay.path, Hello(Role.SUBSCRIBER, 1, name=f"s{i}")) for i in range(3)]
    reader, writer = await asyncio.open_unix_connection(str(relay.path))
    assert await answer(reader) == RelayErrorMsg(ErrorCode.LIMIT, "the relay serves at most 3 connections")
    writer.close()
    assert relay.rejected == {"too_many_connections": 1}
    held[0][1].close()  # one leaves: the next one is served
    await until(lambda: len(relay.connections) == 2)
    _, writer, _ = await raw_client(relay.path, Hello(Role.SUBSCRIBER, 1, name="next"))
    assert [s.name for s in relay.subscribers] == ["s1", "s2", "next"]
    for _, w, _ in held[1:]:
        w.close()
    writer.close()
    await relay.stop(drain_s=0)


async def test_a_publisher_that_stalls_mid_message_is_timed_out_and_counted(tmp_path: Path) -> None:
    relay = await started(tmp_path, message_timeout_s=0.3)
    reader, writer, _ = await raw_client(relay.path, Hello(Role.PUBLISHER, 1, 3, 7, name="stalls"))
    whole = stamped(message(0), 7, 1) + stamped(message(1), 7, 2)
    writer.write(whole[:-5])  # one message and most of the next, then nothing
    reply = await answer(reader)
    assert reply.code == ErrorCode.TIMEOUT
    size = struct.unpack_from("<I", whole, len(stamped(message(0), 7, 1)) + 24)[0] + HEADER_SIZE
    assert reply.reason == f"{size - 5} bytes of a message not completed within 0.3 s"
    assert relay.rejected == {"stalled_message": 1}
    assert relay.departed["in"] == 1  # the whole message before it was taken
    writer.close()
    await relay.stop(drain_s=0)


async def test_a_publisher_that_keeps_sending_is_never_timed_out(tmp_path: Path) -> None:
    """Reads that end mid-message for longer than the deadline are fine while messages complete."""
    relay = await started(tmp_path, message_timeout_s=0.2)
    reader, writer, _ = await raw_client(relay.path, Hello(Role.PUBLISHER, 1, 3, 7, name="steady"))
    stream = b"".join(stamped(message(i), 7, i + 1) for i in range(200))
    began = time.monotonic()
    for i in range(0, len(stream), 97):  # 97-byte pieces: nearly every read ends inside a message
        writer.write(stream[i : i + 97])
        await asyncio.sleep(0.005)
    assert time.monotonic() - began > 0.6
    out = RelayOutput(relay.path, source=1, stream_id=1)
    out.start()
    await out.sync()
    await until(lambda: relay.publishers[(3, 7)].messages == 200)
    assert relay.rejected == {}
    assert not reader.at_eof()
    writer.close()
    await out.close()
    await relay.stop(drain_s=0)
