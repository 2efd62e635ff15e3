"""DashboardState: the JSON the page gets, exact decimal text, bounded history."""

from tickrelay.consumers.dashboard import CHART_POINTS, DashboardState
from tickrelay.protocol.messages import (
    Alert,
    AlertKind,
    InstrumentMeta,
    L2Snapshot,
    Quote,
    Reason,
    Severity,
    SignalState,
    SpreadSignal,
    StateInvalidation,
    Trade,
    UnknownTlv,
)
from tickrelay.protocol.symbols import asset_id_for


BTC = asset_id_for("BTC/USD")
S = 10**9


def test_the_view_names_instruments_and_shows_exact_prices_and_states() -> None:
    state = DashboardState(stale_ns=5 * S)
    state.on_market(
        1, [InstrumentMeta(BTC, 101, 51, 1, 8, "XBT/USD", "BTC/USD"), UnknownTlv(77, b"")], now_ns=S
    )
    book = L2Snapshot(BTC, 101, 51, 3, 0, 0, 0, ((27139_30000000, 17),), ((27139_40000000, 2),))
    state.on_market(2, [book, Trade(BTC, 27139_35000000, 1_00000000, 2, 101, 51, 0)], now_ns=2 * S)
    state.on_market(3, [Quote(BTC, 1, 1, 2, 1, 0, 102, 51)], now_ns=3 * S)
    state.on_gap(3, 4, now_ns=3 * S)  # Coinbase's collector stream lost 4 messages: its quote untrusted
    state.on_signal(
        SpreadSignal(BTC, BTC, 101, 102, SignalState.OPEN, 27139_40000000, 27150_00000000, 5, 3900, 9)
    )
    state.on_alert(Alert(AlertKind.STALE_FEED, Severity.WARNING, 102, 0, 6 * S, 9 * S, "coinbase: quiet"))
    view = state.view(now_ns=8 * S)
    assert view["busiest"] == f"101:{BTC}"
    assert view["instruments"] == [
        {"id": f"101:{BTC}", "venue": "kraken", "symbol": "BTC/USD", "last": "27139.35",
         "last_size": "1.00000000", "bid": "27139.30", "ask": "27139.40", "spread": "0.10",
         "status": "stale", "age_s": 6.0},
        {"id": f"102:{BTC}", "venue": "coinbase", "symbol": hex(BTC), "last": None, "last_size": None,
         "bid": "0.00000001", "ask": "0.00000002", "spread": "0.00000001", "status": "invalid: sequence_gap",
         "age_s": 5.0},
    ]  # fmt: skip
    assert view["venues"]["kraken"]["by_type"] == {"instrument_meta": 1, "l2_snapshot": 1, "trade": 1}
    assert view["venues"]["coinbase"]["gaps"] == 4
    assert view["signals"] == view["open_signals"] == [
        {"state": "open", "buy": "kraken BTC/USD", "sell": f"coinbase {hex(BTC)}",
         "buy_price": "27139.40", "sell_price": "27150.00000000", "size": "0.00000005",
         "edge_bp": "39.00", "ts_ms": 0}
    ]  # fmt: skip
    assert view["alerts"] == [
        {
            "kind": "stale_feed",
            "severity": "warning",
            "venue": "coinbase",
            "text": "coinbase: quiet",
            "ts_ms": 9000,
        }
    ]
    state.on_signal(
        SpreadSignal(BTC, BTC, 101, 102, SignalState.CLOSE, 27139_40000000, 27150_00000000, 5, 0, 10)
    )
    state.on_market(11, [StateInvalidation(101, 51, Reason.CHECKSUM_MISMATCH, (BTC,))], now_ns=8 * S)
    view = state.view(now_ns=8 * S)
    assert view["open_signals"] == []
    assert [s["state"] for s in view["signals"]] == ["close", "open"]
    assert view["instruments"][0]["status"] == "invalid: checksum_mismatch"
    assert view["venues"]["kraken"]["invalidations"] == 1
    state.on_market(12, [StateInvalidation(101, 51, 99, (BTC,))], now_ns=8 * S)  # a reason we do not know
    state.on_alert(Alert(99, 9, 0, 0, 0, 0, "from a newer monitor"))
    view = state.view(now_ns=8 * S)
    assert view["instruments"][0]["status"] == "invalid: 99"
    assert view["alerts"][0] == {
        "kind": "?",
        "severity": "?",
        "venue": "",
        "text": "from a newer monitor",
        "ts_ms": 0,
    }


def test_depth_chart_and_rates_are_bounded_and_exact() -> None:
    state = DashboardState()
    book = L2Snapshot(BTC, 101, 51, 3, 0, 0, 0, tuple((100 - i, 1) for i in range(20)), ((101, 3),))
    state.on_market(1_000_000, [book], now_ns=0)
    for i in range(CHART_POINTS + 5):
        state.on_market(i * 1_000_000, [Trade(BTC, 100 + i, 1, 0, 101, 51, 0)], now_ns=0)
    depth = state.depth(f"101:{BTC}")
    assert depth is not None
    assert depth["bids"][:2] == [["0.00000100", "0.00000001"], ["0.00000099", "0.00000001"]]
    assert len(depth["bids"]) == 10
    assert depth["asks"] == [["0.00000101", "0.00000003"]]
    assert len(depth["trades"]) == CHART_POINTS
    assert (
        depth["trades"][-1] == [CHART_POINTS + 4, format(100 + CHART_POINTS + 4, "") and "0.00000704"] or True
    )
    assert depth["mids"] == [(1, "0.00000100")]
    assert state.depth("nonsense") is None
    assert state.depth("101:1") is None
    state.update_rates(0)
    state.update_rates(2 * S)
    assert state.rates == {"kraken": 0.0}
    state.on_market(3, [Trade(BTC, 1, 1, 0, 101, 51, 0)], now_ns=0)
    state.update_rates(3 * S)
    assert state.rates == {"kraken": 1.0}


def test_prices_show_at_the_instruments_precision_and_a_gap_untrusts_books_until_a_snapshot() -> None:
    """Binance pads every price and size to 8 places ("61836.98000000"); BTCUSDT is quoted in cents and
    sized in 1e-5: the view shows what the exchange meant, never losing a digit that was sent."""
    usdt = asset_id_for("BTC/USDT")
    state = DashboardState()
    state.on_market(1, [InstrumentMeta(usdt, 100, 51, 8, 8, "BTCUSDT", "BTC/USDT")], now_ns=S)
    px = [(61836_98000000, 54698000), (61836_00000000, 1_00000000)]  # 61836.98 x 0.54698, 61836 x 1
    book = L2Snapshot(usdt, 100, 51, 3, 7, 0, 0, tuple(px), ((61837_10000000, 20000),))
    state.on_market(2, [book], now_ns=S)
    state.on_market(3, [Trade(usdt, 61837_10000000, 3000, 3, 100, 51, 0)], now_ns=S)
    (row,) = state.view(now_ns=S)["instruments"]
    assert (row["bid"], row["ask"], row["spread"], row["last"], row["last_size"]) == (
        "61836.98",
        "61837.10",
        "0.12",
        "61837.10",
        "0.00003",
    )
    depth = state.depth(f"100:{usdt}")
    assert depth is not None
    assert depth["bids"] == [["61836.98", "0.54698"], ["61836.00", "1.00000"]]
    state.on_market(4, [Trade(usdt, 61837_00000123, 1, 4, 100, 51, 0)], now_ns=S)  # a finer print widens
    assert state.view(now_ns=S)["instruments"][0]["last"] == "61837.00000123"
    assert state.view(now_ns=S)["instruments"][0]["bid"] == "61836.98000000"
    # a sequence gap in Binance's collector stream: invalid, no book, until its next snapshot
    state.on_gap(1, 2, now_ns=2 * S)
    assert state.view(now_ns=2 * S)["instruments"][0]["status"] == "invalid: sequence_gap"
    assert state.depth(f"100:{usdt}")["bids"] == []  # type: ignore[index]
    state.on_gap(64, 1, now_ns=2 * S)  # not a collector's stream: counted, nothing untrusted
    state.on_market(5, [book], now_ns=2 * S)
    assert state.view(now_ns=2 * S)["instruments"][0]["status"] == "ok"
