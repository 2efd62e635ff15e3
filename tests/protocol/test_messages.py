"""TLV values: encode -> decode identity for every type, malformed values, snapshot splitting."""

import struct

import pytest
from hypothesis import given, strategies as st

from tickrelay.errors import MalformedTlv
from tickrelay.protocol import messages as m
from tickrelay.protocol.codec import iter_tlvs


u8, u16, u64 = st.integers(0, 255), st.integers(0, 2**16 - 1), st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
levels = st.lists(st.tuples(i64, i64), max_size=40).map(tuple)
text = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255)

EVENTS = st.one_of(
    st.builds(m.Trade, u64, i64, i64, u64, u16, u8, u8),
    st.builds(m.Quote, u64, i64, i64, i64, i64, u64, u16, u8),
    st.builds(m.InstrumentMeta, u64, u16, u8, u8, u8, text, text),
    st.builds(m.L2Snapshot, u64, u16, u8, u8, u64, u64, u16, levels, levels),
    st.builds(m.L2Delta, u64, u16, u8, u8, u64, u64, u64, levels, levels),
    st.builds(m.L2Reset, u64, u16, u8, u8),
    st.builds(m.Heartbeat, u64, u64),
    st.builds(m.StateInvalidation, u16, u8, u8, st.lists(u64, max_size=50).map(tuple)),
    st.builds(m.Dropped, u8, u16, u64),
    st.builds(m.PublisherLoss, u64),
    st.builds(m.SpreadSignal, u64, u64, u16, u16, u8, i64, i64, i64, i64, u64),
    st.builds(m.Alert, u8, u8, u16, u64, i64, u64, text),
    st.builds(
        m.UnknownTlv,
        st.integers(8, 99).filter(lambda t: t != m.TlvType.SPREAD_SIGNAL),
        st.binary(max_size=300),
    ),
)


@given(EVENTS)
def test_encode_then_decode_is_identity(event: m.Event) -> None:
    (tlv,) = list(iter_tlvs(m.encode_value(event)))
    assert m.decode_value(*tlv) == event


def test_standard_and_extended_forms() -> None:
    assert m.encode_tlv(9, b"x" * 255) == b"\x09\xff" + b"x" * 255
    assert m.encode_tlv(9, b"x" * 256) == b"\xff\x00\x09\x00\x01" + b"x" * 256
    assert m.encode_tlv(255, b"ab") == b"\xff\x00\xff\x02\x00ab"
    with pytest.raises(MalformedTlv, match="exceeds 65535"):
        m.encode_tlv(9, b"x" * 65536)


@pytest.mark.parametrize(
    ("tlv_type", "value", "match"),
    [
        (m.TlvType.TRADE, b"\x00" * 39, "TRADE is 39 bytes, expected 40"),
        (m.TlvType.QUOTE, b"\x00" * 57, "QUOTE is 57 bytes"),
        (m.TlvType.L2_RESET, b"\x00" * 11, "L2_RESET"),
        (m.TlvType.HEARTBEAT, b"\x00" * 15, "HEARTBEAT"),
        (m.TlvType.INSTRUMENT_META, b"\x00" * 14, "too short"),
        (m.TlvType.INSTRUMENT_META, b"\x00" * 13 + b"\x05a\x00", "runs past"),
        (m.TlvType.INSTRUMENT_META, b"\x00" * 13 + b"\x01a", "runs past"),
        (m.TlvType.INSTRUMENT_META, b"\x00" * 13 + b"\x01\xff\x00", "not UTF-8"),
        (m.TlvType.INSTRUMENT_META, b"\x00" * 13 + b"\x00\x00!", "trailing"),
        (m.TlvType.L2_SNAPSHOT, b"\x00" * 33, "too short"),
        (m.TlvType.L2_SNAPSHOT, b"\x00" * 30 + b"\x01\x00\x00\x00", "bids: 1 levels run past"),
        (m.TlvType.L2_DELTA, b"\x00" * 38 + b"\x01\x00", "asks: 1 levels run past"),
        (m.TlvType.L2_DELTA, b"\x00" * 40 + b"!", "trailing"),
        (m.TlvType.STATE_INVALIDATION, b"\x00" * 5, "too short"),
        (m.TlvType.DROPPED, b"\x00" * 10, "DROPPED is 10 bytes, expected 11"),
        (m.TlvType.PUBLISHER_LOSS, b"\x00" * 9, "PUBLISHER_LOSS is 9 bytes"),
        (m.TlvType.SPREAD_SIGNAL, b"\x00" * 63, "SPREAD_SIGNAL is 63 bytes, expected 64"),
        (m.TlvType.ALERT, b"\x00" * 27, "Alert too short"),
        (m.TlvType.ALERT, b"\x00" * 28 + b"\x02a", "Alert text runs past"),
        (m.TlvType.ALERT, b"\x00" * 28 + b"\x01a!", "Alert has trailing"),
        (
            m.TlvType.STATE_INVALIDATION,
            b"\x00" * 4 + b"\x01\x00",
            "STATE_INVALIDATION is 6 bytes, expected 14",
        ),
    ],
)
def test_malformed_values_raise_malformed_tlv(tlv_type: int, value: bytes, match: str) -> None:
    with pytest.raises(MalformedTlv, match=match):
        m.decode_value(tlv_type, value)


def test_text_over_255_bytes_cannot_be_encoded() -> None:
    with pytest.raises(MalformedTlv, match="text field"):
        m.encode_value(m.InstrumentMeta(1, 100, 51, 8, 8, "x" * 256, "X/Y"))


def test_split_snapshot_fills_bids_then_asks_and_marks_begin_and_end() -> None:
    bids, asks = [(3, 1), (2, 1), (1, 1)], [(4, 1), (5, 1)]
    parts = m.split_snapshot(7, 100, 51, 9, 11, bids, asks, max_levels=2)
    assert parts == [
        m.L2Snapshot(7, 100, 51, m.SnapshotFlags.BEGIN, 9, 11, 0, ((3, 1), (2, 1)), ()),
        m.L2Snapshot(7, 100, 51, 0, 9, 11, 1, ((1, 1),), ((4, 1),)),
        m.L2Snapshot(7, 100, 51, m.SnapshotFlags.END, 9, 11, 2, (), ((5, 1),)),
    ]
    assert m.split_snapshot(7, 100, 51, 9, 0, [], []) == [m.L2Snapshot(7, 100, 51, 3, 9, 0, 0, (), ())]


def test_a_full_size_snapshot_part_fits_one_extended_tlv() -> None:
    n = m.MAX_SNAPSHOT_LEVELS
    (part, rest) = m.split_snapshot(1, 100, 51, 0, 0, [(i, 1) for i in range(n + 1)], [])
    tlv = m.encode_value(part)
    assert len(tlv) == 5 + 34 + 16 * n <= 5 + 65535
    assert struct.unpack_from("<H", tlv, 3)[0] == 34 + 16 * n
    assert rest.bids == ((n, 1),)
    assert rest.flags == m.SnapshotFlags.END


def test_every_typed_value_has_its_tlv_type() -> None:
    for cls, tlv_type in m.TYPE_OF.items():
        assert m.encode_value(cls(*([0] * len(cls._fields))) if cls not in _VARIABLE else _VARIABLE[cls])[
            0
        ] in (
            tlv_type,
            m.EXTENDED,
        )


_VARIABLE = {
    m.InstrumentMeta: m.InstrumentMeta(1, 100, 51, 8, 8, "BTCUSDT", "BTC/USDT"),
    m.L2Snapshot: m.L2Snapshot(1, 100, 51, 3, 0, 0, 0, (), ()),
    m.L2Delta: m.L2Delta(1, 100, 51, 0, 0, 0, 0, (), ()),
    m.StateInvalidation: m.StateInvalidation(100, 51, 1, ()),
    m.Alert: m.Alert(1, 2, 101, 0, 5_000_000_000, 1, "kraken: no message for 5.0 s"),
}


@pytest.mark.parametrize("event", [m.Dropped(3, 9, 1012), m.PublisherLoss(77)])
def test_loss_reports_round_trip(event: m.Event) -> None:
    tlv = m.encode_value(event)
    assert tlv[:2] == bytes((m.TYPE_OF[type(event)], len(tlv) - 2))
    (decoded,) = [m.decode_value(t, v) for t, v in iter_tlvs(tlv)]
    assert decoded == event


def test_spread_signal_and_alert_layouts_by_hand() -> None:
    """Independent of the codec: docs/protocol.md 2.9 and 2.7 spelled out with struct."""
    signal = m.SpreadSignal(7, 8, 101, 100, m.SignalState.OPEN, 100_05000000, 100_20000000, 3, 1234, 99)
    tlv = m.encode_value(signal)
    assert tlv[:2] == bytes((20, 64))
    assert tlv[2:] == struct.pack(
        "<QQHHBB2xqqqqQ", 7, 8, 101, 100, 1, 0, 100_05000000, 100_20000000, 3, 1234, 99
    )
    assert m.decode_value(20, tlv[2:]) == signal  # and back (the reserved byte skipped), drawn or not
    alert = m.Alert(m.AlertKind.STALE_FEED, m.Severity.WARNING, 101, 0, 5_000_000_000, 42, "stale")
    tlv = m.encode_value(alert)
    assert tlv == bytes((109, 34)) + struct.pack("<BBHQqQ", 1, 2, 101, 0, 5_000_000_000, 42) + b"\x05stale"
    assert m.decode_value(109, tlv[2:]) == alert  # and back, whatever hypothesis happened to draw
