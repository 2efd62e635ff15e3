"""Binance spot feed, checked against the recorded captures (parsed independently here with json and
Decimal) and against hand-written frames for the paths the captures never take."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tickrelay.errors import SymbolError, VenueMessageError
from tickrelay.protocol.messages import (
    Event,
    InstrumentMeta,
    L2Delta,
    L2Reset,
    L2Snapshot,
    Quote,
    Reason,
    Side,
    SnapshotFlags,
    StateInvalidation,
    Trade,
)
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.venues import binance_book, binance_numbers
from tickrelay.venues.binance import BinanceFeed
from tickrelay.venues.binance_wire import normalize_symbol, stream_kind


FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "binance"
HFT = FIXTURES / "spot" / "hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT"
CF = FIXTURES / "spot" / "cryptofeed_2021-10-12_combined_depth100ms-bookTicker-aggTrade-kline1m_4-symbols"
CF_US = (
    FIXTURES
    / "spot-binance-us"
    / "cryptofeed_2021-10-12_combined_depth100ms-aggTrade-kline1m-bookTicker_4-symbols"
)
RUST = FIXTURES / "spot" / "rust-orderbook-feed_2026-07-04_raw-depth100ms_BTCUSDT"

SYMBOLS = {
    "BTCUSDT": "BTC/USDT",
    "NKNUSDT": "NKN/USDT",
    "LRCBTC": "LRC/BTC",
    "BLZETH": "BLZ/ETH",
    "RUNEEUR": "RUNE/EUR",
    "OMGBUSD": "OMG/BUSD",
    "COMPUSDT": "COMP/USDT",
    "ZRXUSDT": "ZRX/USDT",
    "CRVUSDT": "CRV/USDT",
}
VENUE, SPOT, MS = 100, 51, 1_000_000


def fx(text: str) -> int:
    value = Decimal(text) * 100_000_000
    assert value == value.to_integral_value()
    return int(value)


def frames(stem: Path) -> list[bytes]:
    return Path(f"{stem}.jsonl").read_bytes().splitlines()


def snapshot_bodies(stem: Path) -> dict[str, bytes]:
    single = Path(f"{stem}.rest-depth-snapshot.json")
    if single.exists():
        return {"BTCUSDT": single.read_bytes()}
    bodies = Path(f"{stem}.rest-depth-snapshots.jsonl").read_bytes().splitlines()
    urls = Path(f"{stem}.rest-depth-snapshots.request_url_recv_ts.txt").read_text().splitlines()
    return {u.split("symbol=")[1].split("&")[0]: b for u, b in zip(urls, bodies, strict=True)}


def run(
    lines: list[bytes], bodies: dict[str, bytes], after_line: int | None = None
) -> tuple[BinanceFeed, list[tuple[int, list[Event]]]]:
    """Feed every line; hand each symbol its snapshot when it asks (or after ``after_line``).
    Checks on the way that each frame is classified exactly once."""
    feed, out, used = BinanceFeed(), [], set()
    for n, raw in enumerate(lines, 1):
        stats = feed.stats
        before = sum(stats.ignored.values()) + sum(stats.rejected.values())
        events = list(feed.on_frame(raw, n))
        after = sum(stats.ignored.values()) + sum(stats.rejected.values())
        assert after - before == (0 if events else 1)
        out.append((n, events))
        for symbol in feed.wants_snapshot():
            if symbol in bodies and symbol not in used and (after_line is None or n >= after_line):
                used.add(symbol)
                out.append((n, feed.on_snapshot(symbol, bodies[symbol], n)))
    return feed, out


class Reference:
    """An independent model: books as dicts of Decimal-parsed levels, checked event by event."""

    def __init__(self, lines: list[bytes]) -> None:
        self.diffs: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.tickers: dict[str, dict[int, tuple[int, int, int, int]]] = {}
        self.tops: dict[str, dict[int, tuple[int, int, int, int]]] = {}
        self.books: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
        self.last_u: dict[int, int] = {}
        self.announced: set[int] = set()
        self.objects = [json.loads(raw) for raw in lines]
        for obj in self.objects:
            data = obj.get("data", obj)
            if data.get("e") == "depthUpdate":
                self.diffs[data["s"], data["U"], data["u"]] = data

    def check(self, n: int, events: list[Event]) -> None:
        obj = self.objects[n - 1]
        data = obj.get("data", obj)
        kind = data.get("e", "bookTicker" if "u" in data else None)
        for ev in events:
            if isinstance(ev, InstrumentMeta):
                assert ev.asset_id not in self.announced
                assert ev[:5] == (asset_id_for(ev.symbol), VENUE, SPOT, 8, 8)
                assert SYMBOLS[ev.venue_symbol] == ev.symbol
                self.announced.add(ev.asset_id)
                continue
            assert ev[0] in self.announced  # InstrumentMeta came first
            if isinstance(ev, Trade):
                assert kind in ("trade", "aggTrade")
                side = Side.SELL if data["m"] else Side.BUY  # m: the buyer is the maker
                asset = asset_id_for(SYMBOLS[data["s"]])
                assert ev == Trade(asset, fx(data["p"]), fx(data["q"]), data["T"] * MS, VENUE, SPOT, side)
            elif isinstance(ev, Quote):
                assert kind == "bookTicker"
                bbo = (fx(data["b"]), fx(data["B"]), fx(data["a"]), fx(data["A"]))
                assert ev == Quote(asset_id_for(SYMBOLS[data["s"]]), *bbo, 0, VENUE, SPOT)
                self.tickers.setdefault(data["s"], {})[data["u"]] = bbo
            elif isinstance(ev, L2Snapshot):
                assert ev.flags == SnapshotFlags.BEGIN | SnapshotFlags.END
                assert ev.part == 0
                bids, asks = dict(ev.bids), dict(ev.asks)
                assert list(ev.bids) == sorted(bids.items(), reverse=True)
                assert list(ev.asks) == sorted(asks.items())
                self.books[ev.asset_id] = (bids, asks)
                self.last_u[ev.asset_id] = ev.exchange_seq
            elif isinstance(ev, L2Delta):
                self.delta(ev)
            else:  # pragma: no cover - the captures are gapless
                raise AssertionError(ev)

    def delta(self, ev: L2Delta) -> None:
        symbol = next(s for s, name in SYMBOLS.items() if asset_id_for(name) == ev.asset_id)
        diff = self.diffs[symbol, ev.first_seq, ev.last_seq]
        assert ev.exchange_ts_ns == diff["E"] * MS
        assert ev.bids == tuple((fx(p), fx(q)) for p, q in diff["b"])
        assert ev.asks == tuple((fx(p), fx(q)) for p, q in diff["a"])
        last = self.last_u[ev.asset_id]
        assert ev.first_seq <= last + 1 <= ev.last_seq  # straddles (first) or continues (U == last + 1)
        self.last_u[ev.asset_id] = ev.last_seq
        bids, asks = self.books[ev.asset_id]
        for side, levels in ((bids, ev.bids), (asks, ev.asks)):
            for price, size in levels:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)
        bid, ask = max(bids), min(asks)
        assert bid < ask
        self.tops.setdefault(symbol, {})[ev.last_seq] = (bid, bids[bid], ask, asks[ask])

    def cross_checks(self) -> tuple[int, int]:
        matched = mismatched = 0
        for symbol, tops in self.tops.items():
            for u, bbo in self.tickers.get(symbol, {}).items():
                if u in tops:
                    matched += tops[u] == bbo
                    mismatched += tops[u] != bbo
        return matched, mismatched


CAPTURES = {
    # stem, snapshot after line, frames, messages, ignored, updates per symbol
    "hftbacktest": (
        HFT,
        7,
        41248,
        {"InstrumentMeta": 1, "L2Delta": 3449, "L2Snapshot": 1, "Quote": 28040, "Trade": 9757},
        {"depthUpdate:buffered": 3},
        {"BTCUSDT": 3449},
    ),
    "cryptofeed": (
        CF,
        None,
        265,
        {"InstrumentMeta": 4, "L2Delta": 172, "L2Snapshot": 4, "Quote": 84, "Trade": 2},
        {"depthUpdate:buffered": 4, "depthUpdate:stale": 1, "kline": 2},
        {"NKNUSDT": 149, "BLZETH": 9, "LRCBTC": 13, "RUNEEUR": 1},
    ),
    "binance-us": (
        CF_US,
        None,
        480,
        {"InstrumentMeta": 4, "L2Delta": 332, "L2Snapshot": 4, "Quote": 128, "Trade": 11},
        {"depthUpdate:buffered": 4, "kline": 5},
        {"COMPUSDT": 106, "OMGBUSD": 158, "CRVUSDT": 28, "ZRXUSDT": 40},
    ),
    "rust-orderbook-feed": (
        RUST,
        None,
        18,
        {"InstrumentMeta": 1, "L2Delta": 9, "L2Snapshot": 1},
        {"depthUpdate:buffered": 1, "depthUpdate:stale": 8},
        {"BTCUSDT": 9},
    ),
}


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_parses_exactly_with_continuous_books(name: str) -> None:
    stem, after, n_frames, messages, ignored, updates = CAPTURES[name]
    lines = frames(stem)
    feed, outputs = run(lines, snapshot_bodies(stem), after)
    ref = Reference(lines)
    for n, events in outputs:
        ref.check(n, events)
    stats = feed.stats
    assert stats.frames == len(lines) == n_frames
    assert dict(stats.messages) == messages
    assert dict(stats.ignored) == ignored
    assert stats.rejected == {}
    assert stats.venue_errors == 0
    assert stats.rounded == 0
    assert {s: b.updates_applied for s, b in stats.books.items()} == updates
    for symbol, book in stats.books.items():
        assert (book.gaps, book.resyncs, book.crossed) == (0, 0, 0)
        bids, asks = ref.books[asset_id_for(SYMBOLS[symbol])]
        assert book.best_bid == f"{Decimal(max(bids)) / 100_000_000:.8f}"
        assert book.best_ask == f"{Decimal(min(asks)) / 100_000_000:.8f}"
    assert feed.wants_snapshot() == []
    matched, mismatched = ref.cross_checks()
    assert mismatched == 0
    assert feed.cross_checks == {"bookticker_matched": matched, "bookticker_mismatched": 0}
    if name == "hftbacktest":
        assert matched == 564  # hundreds of bookTickers share an update id with a diff's final u


def test_hftbacktest_trade_sides_follow_the_maker_flag() -> None:
    lines = frames(HFT)
    raw_sides = [json.loads(raw)["data"]["m"] for raw in lines if b"@trade" in raw[:40]]
    feed = BinanceFeed()
    sides = [ev.side for raw in lines for ev in feed.on_frame(raw, 0) if isinstance(ev, Trade)]
    assert sides == [Side.SELL if m else Side.BUY for m in raw_sides]
    assert 0 < sides.count(Side.BUY) < len(sides)  # both kinds occur


def test_snapshot_diff_before_snapshot_is_buffered_then_straddles() -> None:
    lines = frames(HFT)
    feed = BinanceFeed()
    for raw in lines[:7]:
        feed.on_frame(raw, 0)
    assert feed.wants_snapshot() == ["BTCUSDT"]
    out = feed.on_snapshot("BTCUSDT", snapshot_bodies(HFT)["BTCUSDT"], 0)
    assert [type(ev).__name__ for ev in out] == ["L2Snapshot", "L2Delta"]
    snap, delta = out
    assert isinstance(snap, L2Snapshot)
    assert isinstance(delta, L2Delta)
    assert snap.exchange_seq == 50093239218
    assert len(snap.bids) == len(snap.asks) == 1000
    assert (delta.first_seq, delta.last_seq) == (50093239208, 50093239224)  # .jsonl line 6


def test_a_deleted_diff_is_a_gap_and_resyncs_that_symbol_only() -> None:
    lines = frames(CF)
    bodies = snapshot_bodies(CF)
    full, full_out = run(lines, bodies)
    nkn_depth = [i for i, raw in enumerate(lines) if raw.startswith(b'{"stream":"nknusdt@depth')]
    gone = nkn_depth[60]
    deleted = json.loads(lines[gone])["data"]
    cut = lines[:gone] + lines[gone + 1 :]
    # An exact REST body at the deleted diff's u, from the independent model of the full run.
    ref = Reference(lines)
    for n, events in full_out:
        if n > gone + 1:
            break
        ref.check(n, events)
    nkn = asset_id_for("NKN/USDT")
    bids, asks = ref.books[nkn]
    body = msgspec.json.encode(
        {
            "lastUpdateId": deleted["u"],
            "bids": [
                [f"{Decimal(p) / 100_000_000:.8f}", f"{Decimal(s) / 100_000_000:.8f}"]
                for p, s in bids.items()
            ],
            "asks": [
                [f"{Decimal(p) / 100_000_000:.8f}", f"{Decimal(s) / 100_000_000:.8f}"]
                for p, s in asks.items()
            ],
        }
    )
    feed, used = BinanceFeed(), set()
    gap_events: list[Event] = []
    for n, raw in enumerate(cut, 1):
        events = feed.on_frame(raw, n)
        if n == nkn_depth[61]:  # the next NKNUSDT diff, one line earlier in the cut recording
            gap_events = list(events)
            assert feed.wants_snapshot() == ["NKNUSDT"]
            resync = feed.on_snapshot("NKNUSDT", body, n)
            assert [type(ev).__name__ for ev in resync] == ["L2Snapshot", "L2Delta"]
        for symbol in feed.wants_snapshot():
            if symbol not in used and symbol in bodies:
                used.add(symbol)
                feed.on_snapshot(symbol, bodies[symbol], n)
    assert gap_events == [
        StateInvalidation(VENUE, SPOT, Reason.SEQUENCE_GAP, (nkn,)),
        L2Reset(nkn, VENUE, SPOT, Reason.SEQUENCE_GAP),
    ]
    books, full_books = feed.stats.books, full.stats.books
    assert (books["NKNUSDT"].gaps, books["NKNUSDT"].resyncs) == (1, 1)
    assert books["NKNUSDT"].updates_applied == full_books["NKNUSDT"].updates_applied - 1
    assert (books["NKNUSDT"].best_bid, books["NKNUSDT"].best_ask) == (
        full_books["NKNUSDT"].best_bid,
        full_books["NKNUSDT"].best_ask,
    )
    for other in ("BLZETH", "LRCBTC", "RUNEEUR"):
        assert books[other] == full_books[other]
    assert feed.wants_snapshot() == []


# ---- hand-written frames: the paths the captures never take -------------------------------------


def depth(
    symbol: str, first: int, last: int, bids: list[list[str]], asks: list[list[str]], e: int = 1
) -> bytes:
    data = {"e": "depthUpdate", "E": e, "s": symbol, "U": first, "u": last, "b": bids, "a": asks}
    return msgspec.json.encode({"stream": f"{symbol.lower()}@depth@100ms", "data": data})


def snapshot(last: int, bids: list[list[str]], asks: list[list[str]]) -> bytes:
    return msgspec.json.encode({"lastUpdateId": last, "bids": bids, "asks": asks})


def ticker(symbol: str, u: int, b: str, bq: str, a: str, aq: str) -> bytes:
    data = {"u": u, "s": symbol, "b": b, "B": bq, "a": a, "A": aq}
    return msgspec.json.encode({"stream": f"{symbol.lower()}@bookTicker", "data": data})


def live_feed() -> BinanceFeed:
    feed = BinanceFeed()
    feed.on_frame(depth("ETHUSDT", 10, 12, [["100.00000000", "1.00000000"]], []), 1)
    feed.on_snapshot(
        "ETHUSDT", snapshot(11, [["100.00000000", "2.00000000"]], [["101.00000000", "1.00000000"]]), 2
    )
    return feed


ETH = asset_id_for("ETH/USDT")


def test_raw_stream_events_and_key_order_do_not_matter() -> None:
    feed = BinanceFeed()
    trade = b'{"e":"trade","E":1,"s":"ETHBTC","t":1,"p":"0.05","q":"2","T":1700000000123,"m":false,"M":true}'
    agg = b'{"m":true,"T":5,"q":"1.5","p":"0.06000000","s":"ETHBTC","a":7,"e":"aggTrade"}'
    tick = b'{"u":3,"s":"ETHBTC","b":"0.05","B":"1","a":"0.06","A":"2"}'
    swapped = (
        b'{"data":{"u":4,"s":"ETHBTC","b":"0.05","B":"1","a":"0.06","A":"3"},"stream":"ethbtc@bookTicker"}'
    )
    eth_btc = asset_id_for("ETH/BTC")
    assert feed.on_frame(trade, 9) == [
        InstrumentMeta(eth_btc, VENUE, SPOT, 2, 0, "ETHBTC", "ETH/BTC"),
        Trade(eth_btc, 5_000_000, 200_000_000, 1700000000123 * MS, VENUE, SPOT, Side.BUY),
    ]
    assert feed.on_frame(agg, 9) == [Trade(eth_btc, 6_000_000, 150_000_000, 5 * MS, VENUE, SPOT, Side.SELL)]
    assert feed.on_frame(tick, 9) == [Quote(eth_btc, 5_000_000, 10**8, 6_000_000, 2 * 10**8, 0, VENUE, SPOT)]
    assert feed.on_frame(swapped, 9) == [
        Quote(eth_btc, 5_000_000, 10**8, 6_000_000, 3 * 10**8, 0, VENUE, SPOT)
    ]
    kline = b'{"e":"kline","E":1,"s":"ETHBTC","k":{}}'
    assert feed.on_frame(kline, 9) == []
    assert feed.stats.ignored == {"kline": 1}
    assert feed.stats.rounded == 0


def test_acks_errors_and_garbage_are_classified_never_raised() -> None:
    feed = BinanceFeed()
    trade = b'{"stream":"btcusdt@trade","data":'
    ticker = b'{"stream":"btcusdt@bookTicker","data":'
    cases = {
        b'{"result":null,"id":1}': None,
        b'{"error":{"code":2,"msg":"Invalid request"},"id":3}': "venue_error",
        b'{"code":-1121,"msg":"Invalid symbol."}': "venue_error",
        b"not json": "invalid_json",
        b"": "invalid_json",
        b"{}": "unknown_shape",
        b'{"stream":"btcusdt@depth20@100ms","data":{"lastUpdateId":1}}': "unknown_kind:depth20",
        b'{"e":"outboundAccountPosition","E":1}': "unknown_kind:outboundAccountPosition",
        trade + b'{"e":"trade","s":"BTCUSDT"}}': "invalid_trade",
        trade + b'{"s":"FOO","p":"1","q":"1","T":1,"m":true}}': "unknown_symbol",
        trade + b'{"s":"BTCUSDT","p":"1e999","q":"1","T":1,"m":true}}': "bad_number",
        trade + b'{"s":"BTCUSDT","p":"x.00000000","q":"1","T":1,"m":true}}': "bad_number",
        ticker + b'{"u":1,"s":"BTCUSDT","b":"-","B":"1","a":"1","A":"1"}}': "bad_number",
        trade + b"[1,2]": "invalid_json",
    }
    for raw, reason in cases.items():
        assert feed.on_frame(raw, 0) == []
        if reason is not None:
            assert feed.stats.samples.setdefault(reason, "") != ""  # first sample of each kind kept
    assert feed.stats.samples["venue_error"] == '{"error":{"code":2,"msg":"Invalid request"},"id":3}'
    assert feed.stats.frames == len(cases)
    assert feed.stats.ignored == {"subscription_ack": 1}
    assert feed.stats.venue_errors == 2
    assert sum(feed.stats.rejected.values()) == len(cases) - 1
    assert feed.stats.rejected["bad_number"] == 3


def test_more_than_eight_decimals_round_half_to_even_and_are_counted() -> None:
    feed = BinanceFeed()
    out = feed.on_frame(b'{"e":"trade","s":"BTCUSDT","p":"1.000000005","q":"0.000000015","T":1,"m":false}', 0)
    assert out[1] == Trade(asset_id_for("BTC/USDT"), 100_000_000, 2, MS, VENUE, SPOT, Side.BUY)
    assert out[0].price_decimals == 9  # type: ignore[union-attr]
    assert feed.stats.rounded == 2


def test_gap_in_live_book_invalidates_and_the_gap_diff_starts_the_new_buffer() -> None:
    feed = live_feed()
    assert feed.stats.books["ETHUSDT"].updates_applied == 1
    assert feed.on_frame(depth("ETHUSDT", 13, 13, [], [["102.00000000", "1.00000000"]]), 3)[0].first_seq == 13  # type: ignore[union-attr]
    assert feed.on_frame(depth("ETHUSDT", 12, 13, [], []), 4) == []  # already applied
    out = feed.on_frame(depth("ETHUSDT", 15, 16, [["99.00000000", "1.00000000"]], []), 5)
    assert out == [
        StateInvalidation(VENUE, SPOT, Reason.SEQUENCE_GAP, (ETH,)),
        L2Reset(ETH, VENUE, SPOT, Reason.SEQUENCE_GAP),
    ]
    book = feed.stats.books["ETHUSDT"]
    assert (book.gaps, book.resyncs, book.best_bid, book.best_ask) == (1, 1, None, None)
    assert feed.stats.ignored == {"depthUpdate:buffered": 1, "depthUpdate:stale": 1}
    assert feed.wants_snapshot() == ["ETHUSDT"]
    out = feed.on_snapshot(
        "ETHUSDT", snapshot(14, [["98.00000000", "1.00000000"]], [["101.00000000", "1.00000000"]]), 6
    )
    assert [type(ev).__name__ for ev in out] == ["L2Snapshot", "L2Delta"]
    assert (book.best_bid, book.best_ask, book.updates_applied) == ("99.00000000", "101.00000000", 3)


def test_a_snapshot_older_than_the_buffer_is_asked_for_again() -> None:
    feed = BinanceFeed()
    feed.on_frame(depth("ETHUSDT", 20, 22, [], []), 1)
    out = feed.on_snapshot("ETHUSDT", snapshot(10, [["1.00000000", "1.00000000"]], []), 2)
    assert out == [InstrumentMeta(ETH, VENUE, SPOT, 8, 8, "ETHUSDT", "ETH/USDT")]
    assert feed.wants_snapshot() == ["ETHUSDT"]
    assert feed.stats.books["ETHUSDT"].resyncs == 1
    assert feed.stats.books["ETHUSDT"].gaps == 0


def test_snapshot_waits_for_the_straddling_diff_and_drops_older_ones() -> None:
    feed = BinanceFeed()
    assert feed.on_snapshot("ETHUSDT", snapshot(30, [], [["5.0", "1"]]), 1)[0].price_decimals == 1  # type: ignore[union-attr]
    assert feed.on_frame(depth("ETHUSDT", 25, 30, [], []), 2) == []
    out = feed.on_frame(depth("ETHUSDT", 31, 31, [["4.00000000", "2.00000000"]], []), 3)
    assert out[0] == L2Snapshot(
        ETH, VENUE, SPOT, SnapshotFlags.BEGIN | SnapshotFlags.END, 30, 0, 0, (), ((5 * 10**8, 10**8),)
    )
    assert out[1] == L2Delta(ETH, VENUE, SPOT, 0, 31, 31, MS, ((4 * 10**8, 2 * 10**8),), ())
    assert feed.stats.ignored == {"depthUpdate:stale": 1}
    assert feed.on_snapshot("ETHUSDT", snapshot(40, [], []), 4) == []  # live: not needed
    empty = BinanceFeed()
    assert empty.on_snapshot("BTCUSDT", snapshot(1, [], []), 1)[0].price_decimals == 255  # type: ignore[union-attr]


def test_bad_snapshot_bodies_raise_venue_message_error() -> None:
    feed = BinanceFeed()
    levels = "levels that are not [[price, quantity], ...] amounts"
    for symbol, body, why in (
        ("ETHUSDT", b"{}", "not a depth snapshot"),
        ("ETHUSDT", b"<html>", "not a depth snapshot"),
        ("FOO", snapshot(1, [], []), "unknown symbol"),
        ("ETHUSDT", snapshot(1, [["x", "1"]], []), levels),
        ("ETHUSDT", snapshot(1, [], [["1"]]), levels),
    ):  # fixed phrases, which the compiled core gives too (not the exception texts)
        with pytest.raises(VenueMessageError) as raised:
            feed.on_snapshot(symbol, body, 0)
        assert str(raised.value) == f"binance: depth snapshot for {symbol}: {why}"


def test_crossed_book_is_counted_and_invalidated() -> None:
    feed = live_feed()
    out = feed.on_frame(depth("ETHUSDT", 13, 13, [["101.50000000", "1.00000000"]], []), 3)
    assert out[1:] == [
        StateInvalidation(VENUE, SPOT, Reason.CROSSED_BOOK, (ETH,)),
        L2Reset(ETH, VENUE, SPOT, Reason.CROSSED_BOOK),
    ]
    assert feed.stats.books["ETHUSDT"].crossed == 1
    assert feed.wants_snapshot() == ["ETHUSDT"]


def test_one_sided_book_skips_the_cross_check() -> None:
    feed = BinanceFeed()
    feed.on_snapshot("ETHUSDT", snapshot(1, [], []), 0)
    feed.on_frame(ticker("ETHUSDT", 2, "1", "1", "2", "1"), 0)
    feed.on_frame(depth("ETHUSDT", 2, 2, [["1.00000000", "1.00000000"]], []), 0)
    book = feed.stats.books["ETHUSDT"]
    assert (book.best_bid, book.best_ask) == ("1.00000000", None)
    assert feed.cross_checks == {"bookticker_matched": 0, "bookticker_mismatched": 0}


def test_bookticker_cross_check_before_and_after_its_diff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binance_book, "TICKER_LIMIT", 2)
    monkeypatch.setattr(binance_book, "DIFF_TOPS_KEPT", 1)
    feed = live_feed()  # top 100 x 1 / 101 x 1 after u=12
    feed.on_frame(ticker("ETHUSDT", 12, "100", "1", "101", "1"), 0)  # after its diff: matched
    feed.on_frame(ticker("ETHUSDT", 11, "100", "1", "101", "1"), 0)  # no diff ended at 11: nothing
    for u in (13, 14, 15):  # before their diffs; the oldest (13) falls out of the bounded map
        feed.on_frame(ticker("ETHUSDT", u, "100", "1", "101", "9"), 0)
    feed.on_frame(depth("ETHUSDT", 13, 14, [], [["101.00000000", "9.00000000"]]), 0)  # ticker 14: matched
    feed.on_frame(depth("ETHUSDT", 15, 15, [], [["101.00000000", "8.00000000"]]), 0)  # ticker 15: mismatch
    feed.on_frame(depth("ETHUSDT", 16, 16, [], []), 0)
    feed.on_frame(ticker("ETHUSDT", 14, "100", "1", "101", "9"), 0)  # its top fell out of the kept tops
    assert feed.cross_checks == {"bookticker_matched": 2, "bookticker_mismatched": 1}
    assert feed.stats.books["ETHUSDT"].updates_applied == 4


def test_buffer_keeps_the_newest_diffs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binance_book, "BUFFER_LIMIT", 2)
    feed = BinanceFeed()
    for u in (1, 2, 3):
        feed.on_frame(depth("ETHUSDT", u, u, [["1.00000000", f"{u}.00000000"]], []), 0)
    out = feed.on_snapshot("ETHUSDT", snapshot(1, [], []), 0)
    assert [(ev.first_seq, ev.last_seq) for ev in out if isinstance(ev, L2Delta)] == [(2, 2), (3, 3)]


def test_disconnect_invalidates_every_book_and_asks_for_snapshots() -> None:
    feed = live_feed()
    feed.on_frame(ticker("BTCUSDT", 5, "1", "1", "2", "1"), 0)  # an instrument without a book
    feed.on_frame(depth("LRCBTC", 1, 1, [], []), 0)  # a book still waiting for its snapshot
    out = feed.on_disconnect(99)
    lrc = asset_id_for("LRC/BTC")
    assert out == [
        StateInvalidation(VENUE, SPOT, Reason.DISCONNECT, ()),
        L2Reset(ETH, VENUE, SPOT, Reason.DISCONNECT),
        L2Reset(lrc, VENUE, SPOT, Reason.DISCONNECT),
    ]
    assert feed.wants_snapshot() == ["LRCBTC", "ETHUSDT"]
    assert (feed.stats.books["ETHUSDT"].resyncs, feed.stats.books["LRCBTC"].resyncs) == (1, 0)
    assert (feed.stats.books["ETHUSDT"].best_bid, feed.stats.books["ETHUSDT"].best_ask) == (None, None)


def test_subscribe_messages() -> None:
    assert BinanceFeed().subscribe_messages() == []
    (frame,) = BinanceFeed(["BTCUSDT"]).subscribe_messages()
    assert json.loads(frame) == {
        "method": "SUBSCRIBE",
        "params": ["btcusdt@trade", "btcusdt@bookTicker", "btcusdt@depth@100ms"],
        "id": 1,
    }


@pytest.mark.parametrize(
    ("venue_symbol", "symbol"),
    [
        ("NKNUSDT", "NKN/USDT"),
        ("BTCFDUSD", "BTC/FDUSD"),
        ("ETHBTC", "ETH/BTC"),
        ("RUNEEUR", "RUNE/EUR"),
        ("bnbusdt", "BNB/USDT"),
    ],
)
def test_normalize_symbol_longest_quote_suffix(venue_symbol: str, symbol: str) -> None:
    assert normalize_symbol(venue_symbol) == symbol


def test_exchange_info_pairs_override_the_suffix_rule() -> None:
    assert normalize_symbol("BNBUSD") == "BN/BUSD"  # the documented misreading
    feed = BinanceFeed(pairs={"BNBUSD": "BNB/USD"})
    meta, trade = feed.on_frame(b'{"e":"trade","s":"BNBUSD","p":"1","q":"1","T":1,"m":true}', 0)
    assert meta == InstrumentMeta(asset_id_for("BNB/USD"), VENUE, SPOT, 0, 0, "BNBUSD", "BNB/USD")
    assert trade[0] == asset_id_for("BNB/USD")


@pytest.mark.parametrize("venue_symbol", ["USDT", "FOOBAR", ""])
def test_normalize_symbol_rejects_unknown(venue_symbol: str) -> None:
    with pytest.raises(SymbolError):
        normalize_symbol(venue_symbol)


def test_stream_kind() -> None:
    assert [stream_kind(s) for s in ("a@depth@100ms", "a@kline_1m", "a@bookTicker", "a@trade")] == [
        "depth",
        "kline",
        "bookTicker",
        "trade",
    ]


def test_bad_level_text_is_rejected_before_it_can_be_buffered() -> None:
    feed = BinanceFeed()
    comma = depth("ETHUSDT", 10, 12, [["1.00000000,2.00000000", "3.00000000"]], [])
    assert feed.on_frame(comma, 1) == []
    assert feed.stats.rejected == {"bad_number": 1}
    for levels in (b'[["1"]]', b'"x"', b"{}"):
        frame = b'{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":10,"u":12,"b":' + levels + b',"a":[]}'
        assert feed.on_frame(frame, 1) == []
    assert feed.stats.rejected == {"bad_number": 1, "invalid_depth": 3}
    assert feed.wants_snapshot() == []  # nothing was buffered
    feed.on_frame(depth("ETHUSDT", 10, 12, [["1.5", "3"]], []), 2)  # other decimals: exact, buffered
    out = feed.on_snapshot("ETHUSDT", snapshot(11, [], []), 3)
    assert out[-1] == L2Delta(ETH, VENUE, SPOT, 0, 10, 12, MS, ((150_000_000, 300_000_000),), ())


def test_memoized_texts_survive_the_cache_being_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binance_numbers, "FIXED_CACHE_LIMIT", 3)
    feed = BinanceFeed()
    quotes = [
        feed.on_frame(
            ticker("BTCUSDT", u, f"{u}.00000000", "1.00000000", f"{u + 1}.00000000", "2.00000000"), 0
        )[-1]
        for u in range(1, 6)
    ]
    assert [q[1:5] for q in quotes] == [(u * 10**8, 10**8, (u + 1) * 10**8, 2 * 10**8) for u in range(1, 6)]
    assert len(feed._fixed_cache) <= 3


# ---- what the encoder cannot carry is rejected by the feed (the compiled core matches these) ---------


def test_out_of_range_integers_are_rejected_before_they_reach_the_encoder() -> None:
    """msgspec takes any JSON integer into an ``int`` field; a negative or huge time or update id
    used to become a message the encoder refused (struct.error out of the core)."""
    feed = BinanceFeed()
    trade = '{{"e":"trade","s":"BTCUSDT","p":"1","q":"1","T":{},"m":true}}'
    tick = '{{"u":{},"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}}'
    diff = '{{"e":"depthUpdate","E":{},"s":"BTCUSDT","U":{},"u":{},"b":[],"a":[]}}'
    cases = {
        trade.format(-1): "invalid_trade",
        trade.format(9_223_372_036_855): "invalid_trade",  # x 10^6 ns passes int64
        tick.format(2**63): "invalid_json",  # the envelope reads u too
        diff.format(1, -1, 1): "invalid_depth",
        diff.format(1, 1, 2**64): "invalid_depth",
        diff.format(10**30, 1, 1): "invalid_depth",
        '{"result":null,"id":18446744073709551616}': "invalid_json",
    }
    for raw, reason in cases.items():
        assert feed.on_frame(raw.encode(), 0) == []
        assert feed.stats.samples[reason]
    assert sum(feed.stats.rejected.values()) == len(cases)
    assert feed.on_frame(trade.format(9_223_372_036_854).encode(), 0)[1][3] == 9_223_372_036_854 * MS
    with pytest.raises(VenueMessageError):
        feed.on_snapshot("BTCUSDT", b'{"lastUpdateId":-1,"bids":[],"asks":[]}', 0)


def test_eight_place_texts_with_a_long_integer_part_are_range_checked() -> None:
    """The 8-place fast paths (quote texts, compact depth levels) turned any digit count into an int."""
    feed = BinanceFeed()
    huge = "99999999999.00000000"  # 11 integer digits: 10^19 x 10^-8 passes int64 x 10^8
    assert feed.on_frame(ticker("BTCUSDT", 1, huge, "1", "2", "1"), 0) == []
    assert feed.on_frame(depth("BTCUSDT", 1, 1, [[huge, "1.00000000"]], []), 0) == []
    assert feed.stats.rejected == {"bad_number": 2}
    fits = "92233720368.54775807"  # INT64_MAX: exact, by the general parser
    (_, quote) = feed.on_frame(ticker("BTCUSDT", 1, fits, "1", "2", "1"), 0)
    assert quote[1] == 2**63 - 1


def test_symbols_are_short_ascii() -> None:
    """str.upper() of a non-ASCII symbol follows Python's Unicode tables, and a symbol over 255 bytes
    made an InstrumentMeta the encoder refused."""
    feed = BinanceFeed()
    for symbol in ("ÉTHUSDT", "ßUSDT", "A" * 61 + "USDT"):
        raw = f'{{"e":"trade","s":"{symbol}","p":"1","q":"1","T":1,"m":true}}'.encode()
        assert feed.on_frame(raw, 0) == []
    assert feed.stats.rejected == {"unknown_symbol": 3}
    assert feed.on_frame(b'{"e":"trade","s":"' + b"A" * 60 + b'USDT","p":"1","q":"1","T":1,"m":true}', 0)


def test_a_diff_one_l2delta_cannot_hold_is_rejected() -> None:
    feed = live_feed()
    level = ["1.00000000", "1.00000000"]
    assert feed.on_frame(depth("ETHUSDT", 13, 13, [level] * 4000, [level] * 94), 0) == []
    assert feed.stats.rejected == {"too_many_levels": 1}
    assert feed.on_frame(depth("ETHUSDT", 13, 13, [level] * 4000, [level] * 93), 0)


def test_native_spec_names_the_compiled_twin_and_its_pairs() -> None:
    assert BinanceFeed().native_spec() == ("binance", {"pairs": []})
    spec = BinanceFeed(pairs={"BNBUSD": "BNB/USD", "X": "Y/Z"}).native_spec()
    assert spec == ("binance", {"pairs": ["BNBUSD", "BNB/USD", "X", "Y/Z"]})
