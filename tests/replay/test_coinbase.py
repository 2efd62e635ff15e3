"""The replay exchange's Coinbase Exchange feed and REST products, with real clients."""

from __future__ import annotations

import json

import aiohttp

from tests.replay.conftest import fixture_lines, frames_of, quiet_for, receive_json
from tickrelay.replay import recordings
from tickrelay.replay.exchange import REPLAY_INSTRUMENTS, ReplayExchange
from tickrelay.venues.coinbase import CoinbaseFeed
from tickrelay.venues.coinbase_advanced import AdvancedTradeFeed


LINES = fixture_lines(recordings.COINBASE[0])


def subscribe(products: list[str], channels: list[object], kind: str = "subscribe") -> str:
    return json.dumps({"type": kind, "product_ids": products, "channels": channels})


async def test_the_channels_and_products_subscribed_and_nothing_else(exchange: ReplayExchange) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(exchange.url("coinbase")) as ws:
        await ws.send_str(subscribe(["SKL-USD", "YFI-BTC"], ["level2", "ticker", "matches"]))
        got = await frames_of(ws)
        assert ws.close_code == 1000  # end of the recording: the client reconnects to loop
    assert json.loads(got[0]) == {
        "type": "subscriptions",
        "channels": [
            {"name": n, "product_ids": ["SKL-USD", "YFI-BTC"]} for n in ("level2", "ticker", "matches")
        ],
    }
    expected = [f for f in LINES if '"SKL-USD"' in f or '"YFI-BTC"' in f]
    assert got[1:] == [f for f in expected if '"type":"subscriptions"' not in f]
    async with aiohttp.ClientSession() as s, s.ws_connect(exchange.url("coinbase")) as ws:
        await ws.send_str(subscribe([], [{"name": "ticker", "product_ids": ["NU-GBP"]}]))
        got = await frames_of(ws)
    assert got[1:] == [f for f in LINES if f.startswith('{"type":"ticker"') and '"NU-GBP"' in f]


async def test_cumulative_acks_unsubscribe_and_errors(paced: ReplayExchange) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(paced.url("coinbase")) as ws:
        await ws.send_str(subscribe(["SKL-USD"], ["ticker"]))
        assert (await receive_json(ws))["channels"] == [{"name": "ticker", "product_ids": ["SKL-USD"]}]
        await ws.send_str(subscribe(["BAND-GBP"], ["ticker", "heartbeat"]))
        while (m := await receive_json(ws))["type"] != "subscriptions":
            pass
        assert m["channels"] == [
            {"name": "ticker", "product_ids": ["SKL-USD", "BAND-GBP"]},
            {"name": "heartbeat", "product_ids": ["BAND-GBP"]},
        ]
        await ws.send_str(subscribe(["FOO-BAR"], ["ticker"]))
        await ws.send_str(subscribe(["SKL-USD"], ["candles"]))
        await ws.send_str("{")
        errors = []
        while len(errors) < 3:
            if (m := await receive_json(ws))["type"] == "error":
                errors.append(m)
        assert errors[:2] == [
            {"type": "error", "message": "Failed to subscribe", "reason": "FOO-BAR is not a valid product"},
            {"type": "error", "message": "Failed to subscribe", "reason": "candles is not a valid channel"},
        ]
        assert errors[2]["message"] == "Malformed JSON"
        await ws.send_str(subscribe(["SKL-USD", "BAND-GBP"], ["ticker"], kind="unsubscribe"))
        while (m := await receive_json(ws))["type"] != "subscriptions":
            pass
        assert m["channels"] == [{"name": "heartbeat", "product_ids": ["BAND-GBP"]}]
        assert await quiet_for(ws, 1.0) == []  # no ticker after the unsubscribe's answer


async def test_rest_products(exchange: ReplayExchange) -> None:
    base = f"http://127.0.0.1:{exchange.port}/coinbase/products"
    async with aiohttp.ClientSession() as s:
        products = await (await s.get(base)).json()
        assert sorted(p["id"] for p in products) == sorted(REPLAY_INSTRUMENTS["COINBASE_PRODUCTS"].split(","))
        one = await (await s.get(base + "/YFI-BTC")).json()
        assert (one["base_currency"], one["quote_currency"], one["quote_increment"], one["status"]) == (
            "YFI", "BTC", "0.00001", "online",
        )  # fmt: skip
        r = await s.get(base + "/FOO-BAR")
        assert (r.status, await r.json()) == (404, {"message": "NotFound"})


async def test_advanced_trade_frames_built_from_the_exchange_recording(exchange: ReplayExchange) -> None:
    """No Advanced Trade capture exists: the route's frames are BUILT from the Exchange-feed recording in
    the documented shapes. Built right, the Advanced Trade parser ends with the Exchange feed's books,
    trades and sequence, one connection-wide sequence_num without a gap."""
    products = ["SKL-USD", "YFI-BTC"]
    async with aiohttp.ClientSession() as s, s.ws_connect(exchange.url("coinbase/advanced")) as ws:
        for channel in ("level2", "market_trades", "ticker"):
            await ws.send_str(json.dumps({"type": "subscribe", "product_ids": products, "channel": channel}))
        await ws.send_str(json.dumps({"type": "subscribe", "product_ids": ["FOO-BAR"], "channel": "level2"}))
        got = await frames_of(ws)
    messages = [json.loads(f) for f in got]
    errors = [m for m in messages if m.get("type") == "error"]
    assert errors == [{"type": "error", "message": "Failed to subscribe: FOO-BAR is not a valid product"}]
    framed = [m for m in messages if "channel" in m]
    assert [m["sequence_num"] for m in framed] == list(range(1, len(framed) + 1))
    acks = [m["events"][0]["subscriptions"] for m in framed if m["channel"] == "subscriptions"]
    assert acks[-1] == {"level2": products, "market_trades": products, "ticker": products}
    advanced = AdvancedTradeFeed(products)
    for i, frame in enumerate(got):
        if '"channel"' in frame:
            advanced.on_frame(frame.encode(), i)
    exchange_feed = CoinbaseFeed(products)
    for i, line in enumerate(f for f in LINES if any(f'"product_id":"{p}"' in f for p in products)):
        exchange_feed.on_frame(line.encode(), i)
    for product in products:
        ours, theirs = advanced.stats.books[product], exchange_feed.stats.books[product]
        assert (ours.best_bid, ours.best_ask, ours.gaps) == (theirs.best_bid, theirs.best_ask, 0)
    matches = sum('"type":"match"' in f and any(f'"{p}"' in f for p in products) for f in LINES)
    assert advanced.stats.messages["Trade"] == matches == 52  # the snapshot's last_match: not a new trade
    assert advanced.stats.rejected == {}
