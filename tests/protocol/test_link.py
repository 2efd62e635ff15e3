"""The relay link's pure parts: control messages, batch envelopes, run framing checks."""

from collections.abc import Callable

import pytest
from hypothesis import given, strategies as st

from tests.cores import both
from tickrelay.errors import MalformedTlv, ProtocolError
from tickrelay.protocol import link
from tickrelay.protocol.codec import (
    Decoder,
    encode_events,
    encode_message,
    encode_trade_message,
    make_sequence,
)
from tickrelay.protocol.messages import Heartbeat, Trade, encode_tlv


def _decoded(raw: bytes) -> link.Control:
    decoder = Decoder()
    decoder.feed(raw)
    message = decoder.next_message()
    assert message is not None
    assert message.header.flags == link.FLAG_CONTROL | 1
    return link.decode_control(message)


@given(
    st.builds(
        link.Hello,
        st.sampled_from(list(link.Role)),
        st.integers(1, 4),
        st.integers(0, 255),
        st.integers(0, 65535),
        st.sampled_from(list(link.Overflow)),
        st.integers(0, 2**32 - 1),
        st.text(max_size=30),
        st.lists(st.integers(0, 255), max_size=10).map(tuple),
        st.lists(st.integers(0, 65535), max_size=10).map(tuple),
        st.lists(st.integers(0, 2**64 - 1), max_size=10).map(tuple),
    )
)
def test_hello_round_trip(hello: link.Hello) -> None:
    assert _decoded(link.encode_control(hello)) == hello


@pytest.mark.parametrize(
    "value",
    [
        link.HelloAck(7, 1_700_000_000_000_000_000, 16 << 20),
        link.RelayError(link.ErrorCode.CHECKSUM, "ChecksumMismatch: checksum mismatch on sequence 0x1"),
        link.Sync(42, 1000),
        link.RelayStatus('{"publishers": []}'),
        link.RelayStatus("x" * 70000),  # split over two TLVs
    ],
)
def test_control_round_trip(value: link.Control) -> None:
    assert _decoded(link.encode_control(value)) == value


def _control(payload: bytes) -> bytes:
    from tickrelay.protocol.codec import HEADER, MAGIC

    head = HEADER.pack(MAGIC, 4, 1, 0, link.FLAG_CONTROL, 0, 0, len(payload), 0)
    return head + payload


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", "empty control message"),
        (encode_tlv(99, b"x"), "unknown control TLV type 99"),
        (encode_tlv(103, b"short"), "control TLV 103"),
        (
            encode_tlv(102, bytes([1, 2, 1, 0, 0, 0, 1, 0, 0, 0, 0]) + b"\x00\x00\x00\x00\x00"),
            "link version 2",
        ),
        (
            encode_tlv(102, bytes([1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0]) + b"\x00\x00\x00\x00\x00\x00"),
            "wrong length",
        ),
    ],
)
def test_malformed_control(payload: bytes, match: str) -> None:
    decoder = Decoder(verify_checksum=False)
    decoder.feed(_control(payload))
    message = decoder.next_message()
    assert message is not None
    with pytest.raises(MalformedTlv, match=match):
        link.decode_control(message)


def test_a_data_message_is_not_control() -> None:
    decoder = Decoder()
    decoder.feed(encode_events(1, 3, 1, 0, Heartbeat(1, 2)))
    with pytest.raises(ProtocolError, match="expected a control message"):
        link.decode_control(next(iter(decoder)))


TRADES = [
    encode_trade_message(3, make_sequence(2, i), i, Trade(1, i, 1, i, 102, 51, 0)) for i in range(1, 51)
]
MIXED = [*TRADES[:10], encode_events(1, 3, make_sequence(2, 11), 0, Heartbeat(1, 2)), *TRADES[10:]]
CheckRun = Callable[[bytes, int, int, int, int], None]


@pytest.fixture(params=both(link.check_run_py, "check_run"))
def check_run(request: pytest.FixtureRequest) -> CheckRun:
    return request.param  # type: ignore[no-any-return]


@pytest.mark.parametrize("run", [TRADES, MIXED], ids=["uniform", "mixed"])
def test_batch_envelope_round_trip_and_checks(run: list[bytes], check_run: CheckRun) -> None:
    body = b"".join(run)
    decoder = Decoder()
    decoder.feed(link.encode_batch(1, 3, make_sequence(2, 1), len(run), 5, body))
    message = next(iter(decoder))
    assert message.header.flags == link.FLAG_BATCH | 1
    assert link.batch_head(message) == (make_sequence(2, 1), len(run))
    assert message.raw[link.BATCH_START :] == body
    check_run(message.raw, link.BATCH_START, len(run), 1, 1 << 20)


@pytest.mark.parametrize(
    ("data", "count", "match"),
    [
        (b"".join(TRADES), 0, "cannot hold 0"),
        (b"".join(TRADES)[:60], 2, "cannot hold 2"),
        (b"".join(TRADES), 49, "claims 49 messages but holds 50"),
        (b"".join(TRADES[:5]) + b"\x00" * 74, 6, "bad magic or version"),
        (b"".join(TRADES[:3]) + TRADES[3][:40], 4, "truncated"),
        (b"".join(MIXED[:-1]) + MIXED[-1][:4] + b"\x02" + MIXED[-1][5:], 51, "is of domain 2"),
        (b"".join(MIXED[:-1]) + MIXED[-1][:7] + b"\x03" + MIXED[-1][8:], 51, "flags 0x3"),
        (b"".join(TRADES[:3]) + TRADES[3][:20], 4, "message 4 of the batch is truncated"),
        (b"".join(TRADES[:4]) + encode_message(1, 3, 1, 0, b"\x00" * 100), 5, "payload_size 100 > 64"),
    ],
)
def test_bad_runs(data: bytes, count: int, match: str, check_run: CheckRun) -> None:
    with pytest.raises(ProtocolError, match=match):
        check_run(b"pad" + data, 3, count, 1, 64)


def test_uniform_run_with_a_stray_flag_bit(check_run: CheckRun) -> None:
    bad = [*TRADES[:9], TRADES[9][:7] + b"\x03" + TRADES[9][8:]]
    with pytest.raises(ProtocolError, match="flags other than the checksum bit"):
        check_run(b"pad" + b"".join(bad), 3, 10, 1, 1 << 20)


def test_a_too_short_envelope() -> None:
    decoder = Decoder()
    decoder.feed(encode_message(1, 3, 1, 0, b"\x00" * 4))
    with pytest.raises(MalformedTlv, match="shorter than its 12-byte head"):
        link.batch_head(next(iter(decoder)))
