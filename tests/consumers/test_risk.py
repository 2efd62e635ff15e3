"""The risk monitor's logic: every kind of alert, exactly, and none where there is nothing to say."""

import json
from decimal import Decimal

from tests.consumers.conftest import KRAKEN, merged_stream
from tickrelay.consumers.risk import RiskMonitor, RiskSettings
from tickrelay.protocol.messages import (
    Alert,
    AlertKind,
    InstrumentMeta,
    L2Delta,
    L2Reset,
    L2Snapshot,
    Reason,
    Severity,
    StateInvalidation,
    Trade,
)
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.venues.kraken import KrakenFeed


BTC = asset_id_for("BTC/USD")
K = 101
S = 10**9


def test_stale_feed_and_its_recovery_on_the_callers_clock() -> None:
    risk = RiskMonitor(RiskSettings(stale_ns=5 * S))
    assert risk.on_message(1, [Trade(BTC, 100, 1, 0, K, 51, 0)], now_ns=10 * S) == []
    assert risk.tick(15 * S) == []  # exactly 5 s: not yet
    stale = Alert(AlertKind.STALE_FEED, Severity.WARNING, K, 0, 6 * S, 16 * S, "kraken: no message for 6.0 s")
    assert risk.tick(16 * S) == [stale]
    assert risk.tick(17 * S) == []  # said once
    assert risk.on_message(2, [Trade(BTC, 100, 1, 0, K, 51, 0)], now_ns=18 * S) == [
        Alert(
            AlertKind.RECOVERED, Severity.INFO, K, 0, 0, 18 * S, "kraken: messages again after a stale period"
        )
    ]


def test_crossed_book_once_until_it_uncrosses() -> None:
    risk = RiskMonitor()
    risk.on_message(1, [InstrumentMeta(BTC, K, 51, 1, 8, "XBT/USD", "BTC/USD")], 0)
    assert (
        risk.on_message(
            2, [L2Snapshot(BTC, K, 51, 3, 0, 0, 0, ((100_00000000, 1),), ((101_00000000, 1),))], 0
        )
        == []
    )
    cross = L2Delta(BTC, K, 51, 0, 0, 0, 0, ((101_50000000, 2),), ())
    assert risk.on_message(3, [cross], 0) == [
        Alert(AlertKind.CROSSED_BOOK, Severity.CRITICAL, K, BTC, 50000000, 3,
              "kraken BTC/USD: book crossed, bid 101.50000000 >= ask 101.00000000")
    ]  # fmt: skip
    assert risk.on_message(4, [cross], 0) == []
    assert risk.on_message(5, [L2Delta(BTC, K, 51, 0, 0, 0, 0, ((101_50000000, 0),), ())], 0) == [
        Alert(AlertKind.RECOVERED, Severity.INFO, K, BTC, 0, 5, "kraken BTC/USD: book uncrossed")
    ]
    assert len(risk.on_message(6, [cross], 0)) == 1  # crossed again
    risk.on_message(7, [L2Reset(BTC, K, 51, Reason.CROSSED_BOOK)], 0)  # the book is gone: so is the state
    snapshot = L2Snapshot(BTC, K, 51, 3, 0, 0, 0, ((102_00000000, 1),), ((101_00000000, 1),))
    assert [a.kind for a in risk.on_message(8, [snapshot], 0)] == [AlertKind.CROSSED_BOOK]
    assert (
        risk.on_message(9, [StateInvalidation(K, 51, Reason.SEQUENCE_GAP, ())], 0)[0].kind
        == AlertKind.INVALIDATION
    )
    assert [a.kind for a in risk.on_message(10, [snapshot], 0)] == [AlertKind.CROSSED_BOOK]


def test_price_jump_beyond_the_threshold_in_either_direction() -> None:
    risk = RiskMonitor(RiskSettings(jump_ppm=20_000))
    risk.on_message(1, [Trade(BTC, 100_00000000, 1, 0, K, 51, 0)], 0)
    assert risk.on_message(2, [Trade(BTC, 102_00000000, 1, 0, K, 51, 0)], 0) == []  # exactly 2 %
    assert risk.on_message(3, [Trade(BTC, 99_00000000, 1, 0, K, 51, 0)], 0) == [
        Alert(AlertKind.PRICE_JUMP, Severity.WARNING, K, BTC, -29412, 3,
              f"kraken {BTC:#x}: trade at 99.00000000 is -2.94 % from 102.00000000")
    ]  # fmt: skip


def test_gaps_checksum_failures_invalidations_and_recovery() -> None:
    risk = RiskMonitor()
    risk.on_message(1, [InstrumentMeta(BTC, K, 51, 1, 8, "XBT/USD", "BTC/USD")], 0)
    assert risk.on_gap(2, 7, now_ns=5) == Alert(
        AlertKind.SEQUENCE_GAP, Severity.CRITICAL, K, 0, 7, 5, "kraken: 7 messages missing from its stream"
    )
    assert risk.on_gap(64, 1, now_ns=5).text == "source 64: 1 messages missing from its stream"
    assert risk.on_message(2, [StateInvalidation(K, 51, Reason.CHECKSUM_MISMATCH, (BTC,))], 0) == [
        Alert(
            AlertKind.CHECKSUM_FAILURE, Severity.CRITICAL, K, BTC, 0, 2, "kraken BTC/USD: checksum_mismatch"
        )
    ]
    assert risk.on_message(3, [StateInvalidation(K, 51, Reason.RECOVERED, (BTC,))], 0) == [
        Alert(AlertKind.RECOVERED, Severity.INFO, K, BTC, 0, 3, "kraken BTC/USD: recovered")
    ]
    assert risk.on_message(4, [StateInvalidation(K, 51, Reason.DISCONNECT, ())], 0) == [
        Alert(AlertKind.INVALIDATION, Severity.WARNING, K, 0, Reason.DISCONNECT, 4,
              "kraken: every instrument disconnect")
    ]  # fmt: skip
    assert risk.alerts == 5


def test_the_real_recordings_raise_no_alert() -> None:
    """Continuous books with verified checksums and no big moves: a quiet monitor is a correct one."""
    risk = RiskMonitor()
    alerts = [a for m in merged_stream() for a in risk.on_message(m.header.timestamp_ns, m.events(), 0)]
    assert alerts == []
    assert {i.symbol for i in risk.market.instruments.values()} == {"BTC/USD", "BTC/USDT"}


def test_an_edited_level_in_the_real_kraken_book_is_one_checksum_alert() -> None:
    lines = KRAKEN.read_bytes().splitlines()
    target = next(i for i, line in enumerate(lines) if line.startswith(b"[") and b'"c"' in line and i > 100)
    edited = json.loads(lines[target])
    level = edited[1].get("a", edited[1].get("b"))[0]
    level[1] = f"{Decimal(level[1]) + Decimal('0.00000001'):.8f}"  # one unit of the last place
    lines[target] = json.dumps(edited, separators=(",", ":")).encode()
    feed, risk = KrakenFeed(), RiskMonitor()
    alerts = [a for i, line in enumerate(lines) for a in risk.on_message(i, list(feed.on_frame(line, i)), 0)]
    assert alerts == [
        Alert(
            AlertKind.CHECKSUM_FAILURE,
            Severity.CRITICAL,
            K,
            BTC,
            0,
            target,
            "kraken BTC/USD: checksum_mismatch",
        )
    ]
