"""Framing: header validation, the stream decoder's contract, resync, hot-path encoders."""

import contextlib
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from tests.cores import both
from tickrelay.errors import (
    BadDomain,
    BadMagic,
    ChecksumMismatch,
    MalformedTlv,
    PayloadTooLarge,
    ProtocolError,
    UnsupportedVersion,
)
from tickrelay.native import compiled
from tickrelay.protocol import codec
from tickrelay.protocol.codec import Domain, PyDecoder, encode_events, encode_message
from tickrelay.protocol.messages import Quote, Trade


TRADE = Trade(603367314271748800, 11682785000000, 4147, 1755893490012637000, 102, 51, 1)
QUOTE = Quote(603367314271748800, 1, 2, 3, 4, 5, 102, 51)


@pytest.fixture(params=both(PyDecoder, "Decoder"), scope="module")
def Decoder(request: pytest.FixtureRequest) -> type[PyDecoder]:
    """The stream decoder of each core: every Decoder test holds for both."""
    return request.param  # type: ignore[no-any-return]


def _msg(seq: int = 1, payload: bytes = b"\x01\x02ab", **kw: object) -> bytes:
    return encode_message(1, 3, seq, 99, payload, **kw)  # type: ignore[arg-type]


def test_header_is_32_bytes_and_checksum_covers_header_and_payload() -> None:
    raw = _msg()
    assert codec.HEADER_SIZE == 32
    assert int.from_bytes(raw[28:32], "little") == zlib.crc32(raw[32:], zlib.crc32(raw[:28]))
    assert _msg(checksum=False)[28:32] == b"\x00" * 4


def test_hot_path_encoders_match_the_generic_encoder() -> None:
    assert codec.encode_trade_message(3, 77, 88, TRADE) == encode_events(1, 3, 77, 88, TRADE)
    assert codec.encode_quote_message(3, 77, 88, QUOTE) == encode_events(1, 3, 77, 88, QUOTE)


def test_sequence_packs_stream_id_and_counter() -> None:
    seq = codec.make_sequence(0xBEEF, 2**48 + 5)  # the counter wraps within 48 bits
    assert codec.split_sequence(seq) == (0xBEEF, 5)


def test_restamp_rewrites_source_sequence_and_checksum() -> None:
    assert codec.restamp(_msg(seq=1), 3, 41) == _msg(seq=41)
    assert codec.restamp(_msg(seq=2, checksum=False), 3, 42) == _msg(seq=42, checksum=False)
    assert codec.restamp(_msg(seq=1), 64, 5) == encode_message(1, 64, 5, 99, b"\x01\x02ab")


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda r: b"\x00" + r[1:], BadMagic),
        (lambda r: r[:5] + b"\x02" + r[6:], UnsupportedVersion),
        (lambda r: r[:4] + b"\x00" + r[5:], BadDomain),
        (lambda r: r[:4] + b"\x09" + r[5:], BadDomain),
        (lambda r: r[:-1] + b"X", ChecksumMismatch),
        (lambda r: r[:20] + b"\x01" + r[21:], ChecksumMismatch),  # the header is covered too
    ],
)
def test_bad_messages_raise_their_protocol_error(Decoder: type[PyDecoder], mutate, error) -> None:
    decoder = Decoder()
    decoder.feed(mutate(_msg()))
    with pytest.raises(error):
        decoder.next_message()


def test_domain_size_and_required_checksum_limits(Decoder: type[PyDecoder]) -> None:
    d = Decoder(domain=Domain.SIGNAL)
    d.feed(_msg())
    with pytest.raises(BadDomain, match="on a stream of domain 2"):
        d.next_message()
    d = Decoder(max_payload=3)
    d.feed(_msg())
    with pytest.raises(PayloadTooLarge, match="4 > limit 3"):
        d.next_message()
    d = Decoder(require_checksum=True)
    d.feed(_msg(checksum=False))
    with pytest.raises(ChecksumMismatch, match="carries no checksum"):
        d.next_message()
    d = Decoder(verify_checksum=False)
    d.feed(_msg()[:-1] + b"X")
    assert d.next_message() is not None
    d = Decoder()
    d.feed(_msg(checksum=False))
    assert d.next_message() is not None  # a checksum is optional unless required


def test_incomplete_input_needs_more_and_bad_magic_is_seen_early(Decoder: type[PyDecoder]) -> None:
    d = Decoder()
    d.feed(_msg()[:31])
    assert d.next_message() is None
    assert d.buffered == 31
    d = Decoder()
    d.feed(b"GET / HTTP/1.1")
    with pytest.raises(BadMagic):
        d.next_message()


def test_resync_skips_to_the_next_good_message_and_counts(Decoder: type[PyDecoder]) -> None:
    good = [_msg(seq=i) for i in range(1, 4)]
    corrupt = good[1][:-1] + b"X"
    d = Decoder(resync=True)
    d.feed(b"garbage!" + good[0] + corrupt + good[2] + b"\xef\xbe")
    assert [m.header.sequence for m in d] == [1, 3]
    assert d.skipped_bytes == 8 + len(corrupt)
    assert [type(e) for e in d.errors] == [BadMagic, ChecksumMismatch]
    assert d.buffered == 2  # a possible magic straddling the next feed is kept


def test_large_streams_compact_the_buffer(Decoder: type[PyDecoder]) -> None:
    payload = b"\xff\x00\x09\xff\xff" + b"z" * 0xFFFF
    one = encode_message(1, 3, 1, 0, payload)
    d = Decoder()
    d.feed(one * 3)
    assert len(list(d)) == 3
    d.feed(one)
    assert [len(m.raw) for m in d] == [len(one)]


def test_iter_tlvs_rejects_truncation() -> None:
    for payload, match in [
        (b"\x01", "TLV header truncated"),
        (b"\xff\x00\x01\x05", "extended TLV header truncated"),
        (b"\xff\x01\x01\x01\x00a", "not followed by 0x00"),
        (b"\x01\x05abc", "runs past the payload"),
    ]:
        with pytest.raises(MalformedTlv, match=match):
            list(codec.iter_tlvs(payload))


@given(st.binary(max_size=300), st.booleans())
@settings(max_examples=300)
def test_arbitrary_bytes_give_messages_need_more_or_protocol_errors(
    Decoder: type[PyDecoder], data: bytes, with_prefix: bool
) -> None:
    decoder = Decoder()
    decoder.feed((_msg() if with_prefix else b"") + data)
    with contextlib.suppress(ProtocolError):
        for message in decoder:
            with contextlib.suppress(MalformedTlv):
                message.events()


@given(st.lists(st.binary(max_size=80), max_size=8), st.lists(st.integers(1, 9), min_size=1, max_size=8))
@settings(max_examples=200)
def test_resync_never_raises_and_finds_every_intact_message(
    Decoder: type[PyDecoder], junk: list[bytes], seqs: list[int]
) -> None:
    stream = b"".join(
        j.replace(codec.MAGIC_BYTES, b"") + _msg(seq=s) for j, s in zip(junk, seqs, strict=False)
    )
    decoder = Decoder(resync=True)
    for i in range(0, len(stream), 7):  # odd chunking
        decoder.feed(stream[i : i + 7])
        list(decoder)
    decoder.feed(b"")
    assert decoder.buffered < 32


def test_parse_header_returns_the_fields_of_a_good_header() -> None:
    raw = _msg(seq=5)
    header = codec.parse_header(raw, domain=Domain.MARKET_DATA)
    assert header[:7] == (1, 1, 3, 1, 5, 99, 4)
    assert header.checksum == int.from_bytes(raw[28:32], "little")


def test_take_buffered_hands_over_what_is_not_yet_a_message(Decoder: type[PyDecoder]) -> None:
    d = Decoder()
    d.feed(_msg(seq=1) + _msg(seq=2)[:10])
    assert d.next_message() is not None
    assert d.take_buffered() == _msg(seq=2)[:10]
    assert d.buffered == 0


def _run(decoder: PyDecoder, chunks: list[bytes]) -> list[object]:
    """Everything a consumer of ``decoder`` sees, chunk by chunk: each message, each error, the state."""
    seen: list[object] = []
    for chunk in chunks:
        decoder.feed(chunk)
        try:
            while (m := decoder.next_message()) is not None:
                seen.append((tuple(m.header), m.raw))
        except ProtocolError as exc:
            seen.append((type(exc).__name__, str(exc)))
            decoder.take_buffered()
        seen.append((decoder.buffered, decoder.skipped_bytes, [(type(e), str(e)) for e in decoder.errors]))
    return seen


@pytest.mark.skipif(compiled is None, reason="the compiled core is not built")
@given(
    st.lists(
        st.one_of(
            st.builds(
                lambda s, n: _msg(seq=s, payload=b"\x01" + bytes([n]) + b"x" * n),
                st.integers(0, 9),
                st.integers(0, 200),
            ),
            st.binary(max_size=40),
            st.builds(lambda s: _msg(seq=s)[:-1] + b"X", st.integers(0, 9)),
        ),
        max_size=12,
    ),
    st.integers(1, 97),
    st.booleans(),
    st.sampled_from([None, 1, 2]),
    st.integers(3, 300),
)
@settings(max_examples=400, deadline=None)  # a 1-byte step through the Python reference: 280 ms at load 8
def test_the_compiled_decoder_matches_the_reference(
    parts: list[bytes], step: int, resync: bool, domain: int | None, max_payload: int
) -> None:
    stream = b"".join(parts)
    chunks = [stream[i : i + step] for i in range(0, len(stream), step)] + [b""]
    kw = {"resync": resync, "domain": domain, "max_payload": max_payload}
    assert compiled is not None
    assert _run(compiled.Decoder(**kw), chunks) == _run(PyDecoder(**kw), chunks)  # type: ignore[arg-type]
