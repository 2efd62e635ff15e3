"""The spread monitor's logic: exact signals on a hand-made sequence, and on real recorded books."""

import json

import pytest

from tests.consumers.conftest import BINANCE, merged_stream
from tickrelay.commands.strategy import strategy_settings
from tickrelay.config import load_settings
from tickrelay.consumers.strategy import SpreadMonitor, StrategySettings, net_edge_ppm
from tickrelay.errors import ConfigError
from tickrelay.protocol.messages import (
    InstrumentMeta,
    Quote,
    Reason,
    SignalState,
    SpreadSignal,
    StateInvalidation,
    Trade,
)
from tickrelay.protocol.symbols import asset_id_for


BTC = asset_id_for("BTC/USD")
K, C = 101, 102
OPEN, UPDATE, CLOSE = SignalState.OPEN, SignalState.UPDATE, SignalState.CLOSE


def px(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 10**8 + int(frac.ljust(8, "0"))


def test_net_edge_is_exact_integer_arithmetic() -> None:
    # 101 x (1 - 0.002) - 100.10 x (1 + 0.001) = 0.5979; / 100.10 = 5973.03 ppm, rounded down
    assert net_edge_ppm(px("101"), px("100.10"), 2000, 1000) == 5973
    assert net_edge_ppm(px("100"), px("100"), 0, 0) == 0
    assert net_edge_ppm(px("99.99"), px("100"), 0, 0) == -100


def test_open_update_close_on_invalidation_reopen_and_close_when_stale() -> None:
    monitor = SpreadMonitor(StrategySettings(fee_ppm={K: 1000, C: 2000}, update_ppm=100, stale_ns=10))
    step = monitor.on_message
    assert step(1, [InstrumentMeta(BTC, K, 51, 1, 8, "XBT/USD", "BTC/USD")]) == []
    assert step(1, [InstrumentMeta(BTC, C, 51, 2, 8, "BTC-USD", "BTC/USD")]) == []
    assert step(2, [Quote(BTC, px("100.00"), px("4"), px("100.10"), px("0.5"), 0, K, 51)]) == []
    opened = SpreadSignal(BTC, BTC, K, C, OPEN, px("100.10"), px("101.00"), px("0.5"), 5973, 3)
    assert step(3, [Quote(BTC, px("101.00"), px("2"), px("101.20"), px("1"), 0, C, 51)]) == [opened]
    # the edge moved by 9 ppm (< update_ppm) and the size did not change: nothing new
    assert step(4, [Quote(BTC, px("101.001"), px("2"), px("101.20"), px("1"), 0, C, 51)]) == []
    updated = opened._replace(state=UPDATE, sell_price=px("101.50"), net_edge_ppm=10958, trigger_ts_ns=5)
    assert step(5, [Quote(BTC, px("101.50"), px("2"), px("101.60"), px("1"), 0, C, 51)]) == [updated]
    # Coinbase disconnected: never act on an invalidated side; the close carries the last prices
    closed = updated._replace(state=CLOSE, trigger_ts_ns=6)
    assert step(6, [StateInvalidation(C, 51, Reason.DISCONNECT, ())]) == [closed]
    assert step(7, [Quote(BTC, px("101.50"), px("2"), px("101.60"), px("1"), 0, C, 51)]) == [
        updated._replace(state=OPEN, trigger_ts_ns=7)
    ]
    # Kraken's side is 13 ns old at ts 15 (> stale_ns 10): a Coinbase trade re-evaluates the group
    assert step(15, [Trade(BTC, px("101.40"), px("1"), 15, C, 51, 0)]) == [
        updated._replace(state=CLOSE, trigger_ts_ns=15)
    ]
    assert monitor.open == {}
    assert dict(monitor.sent) == {"OPEN": 2, "UPDATE": 1, "CLOSE": 2}


def test_quote_aliases_group_usdt_with_usd_and_instruments_without_meta_are_left_out() -> None:
    usdt = asset_id_for("BTC/USDT")
    monitor = SpreadMonitor(StrategySettings(default_fee_ppm=0, quote_aliases={"USDT": "USD"}))
    monitor.on_message(1, [InstrumentMeta(usdt, 100, 51, 2, 8, "BTCUSDT", "BTC/USDT")])
    monitor.on_message(1, [InstrumentMeta(BTC, K, 51, 1, 8, "XBT/USD", "BTC/USD")])
    assert monitor.on_message(2, [Quote(usdt, px("10"), 1, px("11"), 1, 0, 100, 51)]) == []
    assert monitor.on_message(3, [Quote(BTC, px("12"), 2, px("13"), 2, 0, K, 51)]) == [
        SpreadSignal(usdt, BTC, 100, K, OPEN, px("11"), px("12"), 1, 90909, 3)
    ]
    # an instrument nobody named (no InstrumentMeta) cannot be grouped
    assert monitor.on_message(4, [Quote(asset_id_for("ETH/USD"), 1, 1, 2, 1, 0, C, 51)]) == []


def test_settings_from_configuration_and_their_errors() -> None:
    s = strategy_settings(load_settings(None, "", {}, {}).values)
    assert s.fee_ppm == {100: 1000, 101: 2600, 102: 6000}
    assert s.quote_aliases == {"USDT": "USD", "USDC": "USD"}
    assert (s.min_edge_ppm, s.stale_ns) == (0, 10_000_000_000)
    for bad, match in (
        (["ftx=10"], "unknown venue 'ftx'"),
        (["kraken=ten"], "kraken=ten: the fee is not a number"),
        (["kraken"], "'kraken' is not NAME=VALUE"),
    ):
        with pytest.raises(ConfigError, match=match):
            strategy_settings(load_settings(None, "", {}, {"strategy.fees_bps": bad}).values)


def test_real_books_kraken_xbtusd_against_binance_btcusdt() -> None:
    """The two recordings (2023 Kraken XBT/USD book-10, 2024 Binance BTCUSDT) re-timed to start
    together: BTC was ~27.1k then and ~61.8k later, so buying on Kraken and selling on Binance is
    "open" as soon as both books are complete, and closes when the Kraken recording ends (stale)."""
    monitor = SpreadMonitor(strategy_settings(load_settings(None, "", {}, {}).values))
    signals = [s for m in merged_stream() for s in monitor.on_message(m.header.timestamp_ns, m.events())]
    binance, kraken = asset_id_for("BTC/USDT"), asset_id_for("BTC/USD")
    snapshot = json.loads(BINANCE.with_name(BINANCE.name + ".rest-depth-snapshot.json").read_text())
    best_bid = px(snapshot["bids"][0][0])  # "61837.63000000": the first signal comes with Binance's book
    assert signals[0] == SpreadSignal(
        kraken, binance, K, 100, OPEN, px("27139.4"), best_bid, px("0.01106822"),
        net_edge_ppm(best_bid, px("27139.4"), 1000, 2600), 1_700_000_000_150_805_500,
    )  # fmt: skip
    assert signals[0].net_edge_ppm == 1_273_640  # +127.4 %: different years, not an arbitrage
    assert [s.state for s in signals].count(OPEN) == 1
    assert signals[-1].state == CLOSE
    assert all((s.buy_venue, s.sell_venue) == (K, 100) for s in signals)
    assert dict(monitor.sent) == {"OPEN": 1, "UPDATE": len(signals) - 2, "CLOSE": 1}


def test_an_open_pair_closes_when_only_other_instruments_keep_talking() -> None:
    eth = asset_id_for("ETH/USD")
    monitor = SpreadMonitor(StrategySettings(default_fee_ppm=0, stale_ns=10))
    for venue, symbol in ((K, "XBT/USD"), (C, "BTC-USD")):
        monitor.on_message(0, [InstrumentMeta(BTC, venue, 51, 1, 8, symbol, "BTC/USD")])
    monitor.on_message(1, [Quote(BTC, px("10"), 1, px("11"), 1, 0, K, 51)])
    (opened,) = monitor.on_message(2, [Quote(BTC, px("12"), 1, px("13"), 1, 0, C, 51)])
    assert monitor.on_message(11, [Trade(eth, px("1"), 1, 11, K, 51, 0)]) == []  # 10 ns: not yet stale
    assert monitor.on_message(12, [Trade(eth, px("1"), 1, 12, K, 51, 0)]) == [
        opened._replace(state=CLOSE, trigger_ts_ns=12)
    ]
