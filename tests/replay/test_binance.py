"""The replay exchange's Binance: streams, live (un)subscribing, errors and REST, with real clients."""

from __future__ import annotations

import json

import aiohttp

from tests.replay.conftest import FIXTURES, fixture_lines, frames_of, quiet_for, receive_json
from tickrelay.replay import recordings
from tickrelay.replay.exchange import ReplayExchange


LINES = fixture_lines(recordings.BINANCE[0])
SNAPSHOT = FIXTURES / (recordings.BINANCE[0] + ".rest-depth-snapshot.json")


def raw(frame: str) -> str:
    return json.dumps(json.loads(frame)["data"], separators=(",", ":"))


async def test_combined_raw_and_single_stream_routes(exchange: ReplayExchange) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(
            exchange.url("binance/stream") + "?streams=btcusdt@trade/btcusdt@bookTicker"
        ) as ws:
            got = await frames_of(ws)
        assert got == [f for f in LINES if '"btcusdt@trade"' in f or '"btcusdt@bookTicker"' in f]
        async with s.ws_connect(exchange.url("binance/ws")) as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 7}))
            got = await frames_of(ws)
        assert json.loads(got[0]) == {"result": None, "id": 7}
        assert got[1:] == [raw(f) for f in LINES if "@depth@100ms" in f]
        async with s.ws_connect(exchange.url("binance/ws/btcusdt@trade")) as ws:  # the URL names the stream
            assert await frames_of(ws) == [raw(f) for f in LINES if '"btcusdt@trade"' in f]


async def test_live_subscribe_list_unsubscribe_and_properties(paced: ReplayExchange) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(paced.url("binance/stream") + "?streams=btcusdt@trade") as ws,
    ):
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 1}))
        seen: set[str] = set()
        while (m := await receive_json(ws)) != {"result": None, "id": 1}:
            seen.add(m["stream"])
        assert seen <= {"btcusdt@trade"}
        while "btcusdt@bookTicker" not in seen:  # the second subscription's data joins the first's
            seen.add((await receive_json(ws))["stream"])
        await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        await ws.send_str(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 3}))
        answers = []
        while len(answers) < 2:
            if "id" in (m := await receive_json(ws)):
                answers.append(m)
        assert answers == [
            {"result": ["btcusdt@trade", "btcusdt@bookTicker"], "id": 2},
            {"result": None, "id": 3},
        ]
        after = [json.loads(f) for f in await quiet_for(ws, 1.0)]
        assert after
        assert {m["stream"] for m in after} == {"btcusdt@trade"}
        await ws.send_str(json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 4}))
        await ws.send_str(json.dumps({"method": "SET_PROPERTY", "params": ["combined", False], "id": 5}))
        answers = []
        while len(answers) < 2:
            if "id" in (m := await receive_json(ws)):
                answers.append(m)
        assert answers == [{"result": True, "id": 4}, {"result": None, "id": 5}]
        later = await receive_json(ws)
        assert later["e"] == "trade"
        assert "stream" not in later


async def test_errors_in_binances_shape(paced: ReplayExchange) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(paced.url("binance/ws")) as ws:
        await ws.send_str("not json")
        assert (await receive_json(ws))["error"]["code"] == 3
        await ws.send_str(json.dumps({"method": "SUBSCRIBEE", "params": [], "id": 1}))
        bad = await receive_json(ws)
        assert (bad["id"], bad["error"]["code"]) == (1, 2)
        assert bad["error"]["msg"].startswith(
            "Invalid request: unknown variant `SUBSCRIBEE`, expected one of `SUBSCRIBE`"
        )
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": -1}))
        assert await receive_json(ws) == {
            "error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
            "id": -1,
        }
        await ws.send_str(json.dumps({"method": "SET_PROPERTY", "params": ["speed", True], "id": 2}))
        assert await receive_json(ws) == {"error": {"code": 0, "msg": "Unknown property"}, "id": 2}
        await ws.send_str(json.dumps({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 3}))
        assert await receive_json(ws) == {
            "error": {"code": 1, "msg": "Invalid value type: expected Boolean"},
            "id": 3,
        }
        # a symbol with no data is acked, as Binance does, and the connection stays open and quiet
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 4}))
        assert await receive_json(ws) == {"result": None, "id": 4}
        assert await quiet_for(ws, 1.0) == []
    assert paced.stats.errors_sent == 5


async def test_rest_depth_limit_errors_and_exchange_info(exchange: ReplayExchange) -> None:
    base = f"http://127.0.0.1:{exchange.port}/binance/api/v3"
    book = json.loads(SNAPSHOT.read_bytes())
    async with aiohttp.ClientSession() as s:
        r = await s.get(f"{base}/depth?symbol=BTCUSDT&limit=1000")
        assert await r.read() == SNAPSHOT.read_bytes()  # the recorded body, byte for byte
        r = await s.get(f"{base}/depth?symbol=btcusdt&limit=5")
        assert await r.json() == {
            "lastUpdateId": book["lastUpdateId"],
            "bids": book["bids"][:5],
            "asks": book["asks"][:5],
        }
        r = await s.get(f"{base}/depth?symbol=BTCUSDT")  # Binance's default limit: 100
        assert [len(v) for k, v in (await r.json()).items() if k != "lastUpdateId"] == [100, 100]
        for query, code in [("symbol=NOPE", -1121), ("limit=5", -1102), ("symbol=BTCUSDT&limit=x", -1100)]:
            r = await s.get(f"{base}/depth?{query}")
            assert (r.status, (await r.json())["code"]) == (400, code)
        info = await (await s.get(f"{base}/exchangeInfo")).json()
        (symbol,) = info["symbols"]
        assert (symbol["symbol"], symbol["status"], symbol["baseAsset"], symbol["quoteAsset"]) == (
            "BTCUSDT", "TRADING", "BTC", "USDT",
        )  # fmt: skip
        filters = {f["filterType"]: f for f in symbol["filters"]}
        assert (filters["PRICE_FILTER"]["tickSize"], filters["LOT_SIZE"]["stepSize"]) == (
            "0.01000000",
            "0.00001000",
        )
        r = await s.get(f"{base}/exchangeInfo?symbol=ETHUSDT")
        assert (r.status, await r.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
