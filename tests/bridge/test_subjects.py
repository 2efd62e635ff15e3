"""Subject names: one per (domain, venue, instrument, kind), from the first TLV of a message."""

from __future__ import annotations

import pytest

from tickrelay.bridge.subjects import LAST_PREFIX, SubjectNamer, first_tlv, symbol_token
from tickrelay.protocol.codec import encode_events, encode_message
from tickrelay.protocol.messages import (
    Heartbeat,
    InstrumentMeta,
    L2Delta,
    L2Reset,
    L2Snapshot,
    Quote,
    StateInvalidation,
    Trade,
    UnknownTlv,
)
from tickrelay.protocol.symbols import asset_id_for


BTC_USD = asset_id_for("BTC/USD")
HASHED = asset_id_for("WEIRD.COIN/USD")  # not base-38 packable: bit 63 + hash


def msg(*events: object, domain: int = 1) -> bytes:
    return encode_events(domain, 3, 1, 0, *events)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "subject"),
    [
        (Trade(BTC_USD, 1, 1, 0, 102, 51, 0), "tickrelay.market-data.coinbase.BTC-USD.trade"),
        (Quote(BTC_USD, 1, 1, 2, 1, 0, 100, 51), "tickrelay.market-data.binance.BTC-USD.quote"),
        (
            L2Snapshot(BTC_USD, 101, 51, 3, 0, 0, 0, ((1, 1),), ()),
            "tickrelay.market-data.kraken.BTC-USD.book",
        ),
        (L2Delta(BTC_USD, 101, 51, 0, 0, 0, 0, (), ()), "tickrelay.market-data.kraken.BTC-USD.book"),
        (L2Reset(BTC_USD, 101, 51, 2), "tickrelay.market-data.kraken.BTC-USD.book"),
        (InstrumentMeta(BTC_USD, 7, 51, 2, 8, "XBT/USD", "BTC/USD"), "tickrelay.market-data.v7.BTC-USD.meta"),
        (StateInvalidation(102, 51, 1, ()), "tickrelay.market-data.coinbase._.status"),
        (StateInvalidation(102, 51, 1, (BTC_USD, 5)), "tickrelay.market-data.coinbase._.status"),
        (StateInvalidation(102, 51, 1, (BTC_USD,)), "tickrelay.market-data.coinbase.BTC-USD.status"),
        (Heartbeat(1, 2), "tickrelay.market-data._._.status"),
        (UnknownTlv(200, b"\x01" * 300), "tickrelay.market-data._._.status"),  # extended form
    ],
)
def test_each_kind_of_message_has_its_subject(event: object, subject: str) -> None:
    assert SubjectNamer().subject(msg(event)) == subject


def test_hashed_instruments_are_hex_until_their_meta_names_them() -> None:
    namer = SubjectNamer()
    trade = msg(Trade(HASHED, 1, 1, 0, 100, 51, 0))
    assert namer.subject(trade) == f"tickrelay.market-data.binance.{HASHED:016x}.trade"
    namer.learn(100, HASHED, "WEIRD.COIN/USD")
    assert namer.subject(trade) == "tickrelay.market-data.binance.WEIRD_COIN-USD.trade"
    namer.learn(100, HASHED, "WEIRD.COIN/USD")  # the same name again keeps the cache
    assert namer.subject(trade) == "tickrelay.market-data.binance.WEIRD_COIN-USD.trade"
    assert namer.subject(trade) is namer.subject(trade)  # cached


def test_domains_prefix_and_odd_payloads() -> None:
    last = SubjectNamer(LAST_PREFIX)
    assert last.subject(msg(Heartbeat(1, 2), domain=2)) == "tickrelay-last.signal._._.status"
    assert last.instrument(4, 100, BTC_USD, "book") == "tickrelay-last.system.binance.BTC-USD.book"
    assert last.instrument(9, 100, BTC_USD, "book") == "tickrelay-last.d9.binance.BTC-USD.book"
    empty = encode_message(1, 3, 1, 0, b"")
    assert first_tlv(empty) == (-1, 0)
    assert first_tlv(encode_message(1, 3, 1, 0, b"\xff\x00\x01")) == (-1, 0)  # truncated extended head
    assert SubjectNamer().subject(empty) == "tickrelay.market-data._._.status"
    short_trade = encode_message(1, 3, 1, 0, b"\x01\x02\x00\x00")  # too short to hold an instrument key
    assert SubjectNamer().subject(short_trade) == "tickrelay.market-data._._.status"
    short_invalidation = encode_message(1, 3, 1, 0, b"\x65\x06\x66\x00\x33\x01\x01\x00")  # count 1, no id
    assert SubjectNamer().subject(short_invalidation) == "tickrelay.market-data.coinbase._.status"


def test_symbol_tokens_are_subject_safe() -> None:
    assert symbol_token("BTC/USD") == "BTC-USD"
    assert symbol_token("A.B*C>D E\tF") == "A_B_C_D_E_F"
    assert symbol_token("") == "_"
