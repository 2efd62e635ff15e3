"""Fuzzing (slow suite): the decoder with a million mutated buffers, and a real relay process with
100,000 mutated messages from a publisher peer. The contract: only the documented errors (the
ProtocolError family; the relay's RelayError answers), every reject counted, the process stays up.

Mutations are seeded (reproducible) and structure-aware, over real messages: the Coinbase recording
normalized by the real CLI, control messages and batch envelopes. atheris installs here, but without
coverage instrumentation libFuzzer keeps no corpus (so it mutates almost nothing but empty inputs),
and with it the pure-Python decoder runs at 2,300 buffers a second: a million would take 7 minutes.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.relay.conftest import FIXTURES, ME, normalize, start_relay
from tickrelay.errors import ProtocolError
from tickrelay.protocol.codec import HEADER_SIZE, Decoder, make_sequence, restamp
from tickrelay.protocol.link import (
    FLAG_CONTROL,
    ErrorCode,
    Hello,
    HelloAck,
    RelayError as RelayErrorMsg,
    RelayStatus,
    Role,
    Sync,
    decode_control,
    encode_batch,
    encode_control,
)


pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # 1-2 minutes each on a loaded 2-core machine
# header fields a mutation may rewrite: (offset, size)
FIELDS = ((0, 4), (4, 1), (5, 1), (6, 1), (7, 1), (8, 8), (16, 8), (24, 4), (28, 4))
_SIZE = struct.Struct("<I")


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    recording = next((FIXTURES / "coinbase" / "exchange-ws-feed").glob("*.jsonl"))
    out = tmp_path_factory.mktemp("fuzz") / "coinbase.v2"
    return [m.raw for m in normalize("coinbase", recording, out)][:2000]


def mutate(rnd: random.Random, data: bytes) -> bytes:
    """One to three mutations: a header field, a TLV byte, a cut, a splice, flipped or inserted bytes."""
    out = bytearray(data)
    for _ in range(rnd.randrange(1, 4)):
        choice = rnd.randrange(6)
        if choice == 0 and len(out) >= HEADER_SIZE:
            at, size = rnd.choice(FIELDS)
            value = rnd.choice((0, 1, (1 << 8 * size) - 1, rnd.getrandbits(8 * size)))
            out[at : at + size] = value.to_bytes(size, "little")
        elif choice == 1 and len(out) > HEADER_SIZE + 2:
            out[HEADER_SIZE + rnd.randrange(min(8, len(out) - HEADER_SIZE))] = rnd.randrange(256)
        elif choice == 2 and out:
            del out[rnd.randrange(len(out)) :]
        elif choice == 3:
            out += data[: rnd.randrange(len(data) + 1)]
        elif choice == 4 and out:
            out[rnd.randrange(len(out))] ^= 1 << rnd.randrange(8)
        else:
            out.insert(rnd.randrange(len(out) + 1), rnd.randrange(256))
    return bytes(out)


def seeds(real: list[bytes]) -> list[bytes]:
    controls = [
        encode_control(
            Hello(Role.SUBSCRIBER, 1, name="fuzz", tlv_types=(1, 2), venues=(100,), asset_ids=(7,))
        ),
        encode_control(HelloAck(1, 2, 3)),
        encode_control(Sync(4, 5)),
        encode_control(RelayErrorMsg(3, "why")),
        encode_control(RelayStatus('{"a": 1}')),
    ]
    batches = [
        encode_batch(1, 3, make_sequence(1, 1), 3, 0, b"".join(real[i : i + 3])) for i in range(0, 60, 3)
    ]
    return real + controls + batches


def test_the_decoder_takes_a_million_mutated_buffers_with_documented_errors_only(real: list[bytes]) -> None:
    rnd = random.Random(20261130)
    pool = seeds(real)
    counts: Counter[str] = Counter()
    for _ in range(1_000_000):
        data = mutate(rnd, rnd.choice(pool))
        decoder = Decoder(max_payload=1 << 16, resync=rnd.random() < 0.2)
        step = (len(data) or 1) if rnd.random() < 0.8 else rnd.choice((1, 7, 7, 7))  # whole, or in pieces
        try:
            for i in range(0, len(data), step):
                decoder.feed(data[i : i + step])
                for message in decoder:
                    if message.header.flags & FLAG_CONTROL:
                        decode_control(message)
                    else:
                        message.events()
                    counts["messages"] += 1
        except ProtocolError as exc:
            counts[type(exc).__name__] += 1
        except Exception as exc:  # the contract is broken: show the input
            pytest.fail(f"{type(exc).__name__}: {exc} on {data.hex()}")
        counts["buffers"] += 1
        counts["resync_errors"] += len(decoder.errors)
    assert counts["buffers"] == 1_000_000
    for documented in ("BadMagic", "UnsupportedVersion", "BadDomain", "PayloadTooLarge", "ChecksumMismatch",
                       "MalformedTlv"):  # fmt: skip
        assert counts[documented] > 100, counts
    assert counts["messages"] > 50_000, counts
    assert counts["resync_errors"] > 1000, counts


class Peer:
    """A publisher connection to the relay under fuzz (blocking sockets: one round trip per message)."""

    def __init__(self, path: Path, stream_id: int) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.decoder = Decoder()
        self.sock.sendall(encode_control(Hello(Role.PUBLISHER, 1, 3, stream_id, name="fuzz")))
        assert isinstance(self.answer(), HelloAck)

    def answer(self) -> object:
        """The relay's next control message, or None at the end of the connection."""
        while (m := self.decoder.next_message()) is None:
            data = self.sock.recv(1 << 16)
            if not data:
                return None
            self.decoder.feed(data)
        return decode_control(m)


def is_whole(data: bytes) -> bool:
    """Whether ``data`` is whole messages by their declared sizes (else the relay waits for more)."""
    i = 0
    while i + HEADER_SIZE <= len(data):
        i += HEADER_SIZE + _SIZE.unpack_from(data, i + 24)[0]
    return i == len(data)


def test_the_relay_takes_100k_mutated_messages_from_a_publisher_and_counts_every_reject(
    tmp_path: Path, real: list[bytes]
) -> None:
    path = tmp_path / "md.sock"
    relay = start_relay(path)
    rnd = random.Random(15)
    refused: Counter[str] = Counter()
    taken = left_mid_message = 0
    stream_id, counter = 1, 0
    peer = Peer(path, stream_id)
    try:
        for n in range(100_000):
            counter += 1
            good = restamp(rnd.choice(real), 3, make_sequence(stream_id, counter))
            data = good if rnd.random() < 0.3 else mutate(rnd, good)  # good ones between keep it going
            if is_whole(data):
                peer.sock.sendall(data + encode_control(Sync(n + 1)))
                reply = peer.answer()
                while isinstance(reply, Sync) and reply.token != n + 1:  # a message mutated into a Sync
                    reply = peer.answer()
            else:  # a Sync would be taken as the rest of the message: send, say "no more", read the end
                peer.sock.sendall(data)
                peer.sock.shutdown(socket.SHUT_WR)
                reply = peer.answer()
                left_mid_message += reply is None
            if isinstance(reply, Sync):
                taken += 1
                continue
            if reply is not None:
                assert isinstance(reply, RelayErrorMsg), reply
                refused[ErrorCode(reply.code).name.lower()] += 1
            peer.sock.close()
            stream_id, counter = stream_id % 65535 + 1, 0
            peer = Peer(path, stream_id)
        peer.sock.close()
        assert relay.poll() is None  # it stayed up
        status = subprocess.run([*ME, "relay-status", "--socket", str(path), "--json"], capture_output=True,
                                text=True, check=True, timeout=30).stdout  # fmt: skip
        assert json.loads(status)["rejected"] == dict(refused)  # every reject counted, by reason
        assert taken > 20_000
        assert sum(refused.values()) > 20_000
        assert left_mid_message > 1000
        assert set(refused) >= {"protocol", "checksum", "wrong_domain", "not_allowed", "too_large"}
    finally:
        relay.kill()
        relay.wait()
