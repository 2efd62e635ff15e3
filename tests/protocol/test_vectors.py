"""Golden vectors (tests/protocol/vectors.json): encoding the fields gives the bytes, and decoding the
bytes, whole or one byte at a time, gives the fields."""

import json
import struct
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tickrelay.protocol import messages as m
from tickrelay.protocol.codec import Decoder, Header, encode_events


VECTORS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "vectors.json").read_text())
_TYPES = (m.Trade, m.Quote, m.InstrumentMeta, m.L2Snapshot, m.L2Delta, m.L2Reset, m.Heartbeat)
_CLASSES = {cls.__name__: cls for cls in (*_TYPES, m.StateInvalidation)}


def _event(fields: dict[str, Any]) -> m.Event:
    fields = dict(fields)
    name = fields.pop("name")
    if name == "Unknown":
        return m.UnknownTlv(fields["type"], bytes.fromhex(fields["value"]))
    for key in ("bids", "asks"):
        if key in fields:
            fields[key] = tuple(tuple(level) for level in fields[key])
    if "asset_ids" in fields:
        fields["asset_ids"] = tuple(fields["asset_ids"])
    return _CLASSES[name](**fields)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_fields_encode_to_the_vector_bytes(vector: dict[str, Any]) -> None:
    h = vector["header"]
    events = [_event(t) for t in vector["tlvs"]]
    raw = encode_events(
        h["relay_domain"],
        h["source"],
        h["sequence"],
        h["timestamp_ns"],
        *events,
        checksum=bool(h["flags"] & 1),
    )
    assert raw.hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_vector_decodes_the_same_whole_or_byte_by_byte(vector: dict[str, Any]) -> None:
    wire = bytes.fromhex(vector["hex"])
    whole, trickle = Decoder(), Decoder()
    whole.feed(wire)
    (message,) = list(whole)
    trickled = []
    for i in range(len(wire)):
        assert trickle.next_message() is None or i == 0
        trickle.feed(wire[i : i + 1])
        trickled += list(trickle)
    assert trickled == [message]
    assert message.raw == wire
    assert message.header == Header(**vector["header"])
    assert message.events() == [_event(t) for t in vector["tlvs"]]


def test_unknown_tlvs_are_skipped_and_counted() -> None:
    (vector,) = (v for v in VECTORS if v["name"] == "two_tlvs_one_unknown")
    decoder = Decoder()
    decoder.feed(bytes.fromhex(vector["hex"]))
    (message,) = list(decoder)
    unknown: Counter[int] = Counter()
    assert message.events(unknown) == [_event(vector["tlvs"][0])]
    assert unknown == Counter({42: 1})


def test_the_real_coinbase_match_vector_by_hand() -> None:
    """Independent of the codec: the bytes spelled out with struct and zlib from the issue's numbers."""
    (vector,) = (v for v in VECTORS if v["name"] == "coinbase_match_trade")
    wire = bytes.fromhex(vector["hex"])
    assert len(wire) == 74
    magic, domain, version, source, flags, seq, _ts, size, crc = struct.unpack_from("<IBBBBQQII", wire)
    assert (magic, domain, version, source, flags, size) == (0xDEADBEEF, 1, 1, 3, 1, 42)
    assert (seq >> 48, seq & (2**48 - 1)) == (7, 1)
    assert crc == zlib.crc32(wire[32:], zlib.crc32(wire[:28]))
    assert wire[32:34] == bytes([1, 40])
    asset_id, price, volume, exec_ts, venue, asset_type, reserved, side = struct.unpack(
        "<QqqQHBBB3x", wire[34:]
    )
    digits = [2, 20, 3, 37, 21, 19, 4]  # B T C / U S D
    assert asset_id == sum(d * 38 ** (11 - i) for i, d in enumerate(digits))
    assert (price, volume) == (116827_85000000, 4147)  # "116827.85", "0.00004147"
    assert exec_ts == 1755893490_012637000  # 2025-08-22T20:11:30.012637Z
    assert (venue, asset_type, reserved, side) == (102, 51, 0, 1)  # maker side "buy": the seller aggressed
