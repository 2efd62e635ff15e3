"""The replay exchange's Binance spot: WebSocket streams and the REST endpoints clients fetch at start.
Each shape is cited in docs/replay-exchange.md.

* ``/binance/stream?streams=a/b`` (combined: ``{"stream":..,"data":..}``), ``/binance/ws/<stream>`` and
  ``/binance/ws`` (raw event objects). On any of them: ``SUBSCRIBE``, ``UNSUBSCRIBE``,
  ``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY``/``GET_PROPERTY`` ``combined``, each answered with its ``id``;
  errors ``{"error":{"code":N,"msg":..},"id":..}`` (0 unknown property, 1 bad value type, 2 invalid
  request, 3 invalid JSON). As on Binance, a well-formed stream of a symbol with no data is acked and
  stays quiet. Data flows for the subscribed streams only, from the moment they are subscribed.
* ``GET /binance/api/v3/depth?symbol=X&limit=N`` (the recorded snapshot, cut to ``limit``) and
  ``GET /binance/api/v3/exchangeInfo`` (the embedded symbols).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from aiohttp import web

from tickrelay.replay import recordings
from tickrelay.replay.exchange import ReplayExchange, Session


_STREAM_NAME = re.compile(r"^[a-z0-9]+@[A-Za-z0-9_@]+$|^![A-Za-z0-9_@]+$")
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
DEPTH_LIMIT_MAX = 5000
DEPTH_WEIGHTS = ((100, 5), (500, 25), (1000, 50), (DEPTH_LIMIT_MAX, 250))  # /api/v3/depth: (limit <=, weight)
# BTCUSDT's trading rules as its recorded prices and sizes show them (2 and 5 decimals)
SYMBOLS = {"BTCUSDT": ("BTC", "USDT", "0.01000000", "0.00001000")}


def _error(code: int, msg: str, request_id: Any) -> dict[str, Any]:
    return {"error": {"code": code, "msg": msg}, "id": request_id}


def _raw(frame: bytes) -> bytes:
    """A combined frame's event object alone (what raw streams send)."""
    return frame[frame.index(b'"data":') + 7 : -1]


class Binance:
    def __init__(self, exchange: ReplayExchange) -> None:
        self.exchange = exchange
        self._minute, self._weight = 0, 0  # the REST weight used in that minute (X-MBX-USED-WEIGHT-1M)
        self.rec = recordings.load(*recordings.BINANCE)

    def routes(self) -> dict[str, Any]:
        return {
            "/binance/stream": self._combined,
            "/binance/ws": self._raw,
            "/binance/ws/{stream}": self._raw,
            "/binance/api/v3/depth": self._depth,
            "/binance/api/v3/exchangeInfo": self._exchange_info,
        }

    async def _combined(self, request: web.Request) -> web.WebSocketResponse:
        streams = [s for s in request.query.get("streams", "").split("/") if s]
        return await self._serve(request, streams, combined=True)

    async def _raw(self, request: web.Request) -> web.WebSocketResponse:
        stream = request.match_info.get("stream")
        return await self._serve(request, [stream] if stream else [], combined=False)

    async def _serve(
        self, request: web.Request, streams: list[str], *, combined: bool
    ) -> web.WebSocketResponse:
        session = await self.exchange.session(request, "binance")
        state = {"combined": combined}

        def transform(frame: bytes) -> bytes:
            return frame if state["combined"] else _raw(frame)

        started = False

        def subscribe(names: list[str]) -> None:
            nonlocal started
            if not started:  # one stream of the recording serves every subscription of the connection
                session.stream(self.rec, recordings.binance_stream, names, transform)
                started = True
            else:
                for name in names:
                    session.subs[name] = 1

        if streams:
            subscribe(streams)

        async def on_text(text: str) -> None:
            try:
                req = json.loads(text)
            except ValueError as exc:
                await session.error(_error(3, f"Invalid JSON: {exc}", None))
                return
            answer = _answer(req, session, state, subscribe)
            await (session.send(answer) if "error" not in answer else session.error(answer))

        await session.serve(on_text)
        return session.ws

    async def _depth(self, request: web.Request) -> web.Response:
        refused = self.exchange.refusal()
        if refused:
            return _refused(refused)
        symbol = request.query.get("symbol", "")
        if not symbol:
            return _rest_error(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        limit_text = request.query.get("limit", "100")
        if not limit_text.isdigit():
            return _rest_error(
                -1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."
            )
        body = recordings.binance_snapshot(symbol)
        if body is None:
            return _rest_error(-1121, "Invalid symbol.")
        limit = min(int(limit_text), DEPTH_LIMIT_MAX)
        book = json.loads(body)
        if limit < max(len(book["bids"]), len(book["asks"])):
            cut = {
                "lastUpdateId": book["lastUpdateId"],
                "bids": book["bids"][:limit],
                "asks": book["asks"][:limit],
            }
            body = json.dumps(cut, separators=(",", ":")).encode()
        headers = {"X-MBX-USED-WEIGHT-1M": str(self._used(limit))}
        return web.Response(body=body, content_type="application/json", headers=headers)

    def _used(self, limit: int) -> int:
        """Count a depth request's weight (by its limit) in this minute's used weight."""
        minute = int(time.time() // 60)
        if minute != self._minute:
            self._minute, self._weight = minute, 0
        self._weight += next(w for top, w in DEPTH_WEIGHTS if limit <= top)
        return self._weight

    async def _exchange_info(self, request: web.Request) -> web.Response:
        refused = self.exchange.refusal()
        if refused:
            return _refused(refused)
        asked = request.query.get("symbol")
        if asked is not None and asked.upper() not in SYMBOLS:
            return _rest_error(-1121, "Invalid symbol.")
        symbols = [
            {
                "symbol": name,
                "status": "TRADING",
                "baseAsset": base,
                "baseAssetPrecision": 8,
                "quoteAsset": quote,
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": tick,
                        "maxPrice": "1000000.00000000",
                        "tickSize": tick,
                    },
                    {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
                ],
                "permissions": ["SPOT"],
            }
            for name, (base, quote, tick, step) in SYMBOLS.items()
            if asked is None or name == asked.upper()
        ]
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": time.time_ns() // 1_000_000,
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )


BAN_S = 120  # an IP ban's length in the 418 answer (Binance's start at 2 minutes)


def _refused(status: int) -> web.Response:
    """Binance's answers past the request-weight limit, code -1003 with Retry-After in seconds: 429
    (back off), and 418 once the IP is banned for going on after 429s."""
    if status == 429:
        msg, wait = "Too much request weight used; please use WebSocket Streams for live updates.", 1
    else:
        until_ms = (time.time_ns() // 1_000_000) + BAN_S * 1000
        msg = (
            f"Way too much request weight used; IP banned until {until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans."
        )
        wait = BAN_S
    return web.json_response({"code": -1003, "msg": msg}, status=status, headers={"Retry-After": str(wait)})


def _rest_error(code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=400)


def _answer(req: Any, session: Session, state: dict[str, bool], subscribe: Any) -> dict[str, Any]:
    """The answer to one request: ``{"result":..,"id":..}`` or the error object."""
    if not isinstance(req, dict):
        return _error(2, "Invalid request: expected an object", None)
    rid, method, params = req.get("id"), req.get("method"), req.get("params", [])
    if not (isinstance(rid, int) and not isinstance(rid, bool) and rid >= 0):
        return _error(2, "Invalid request: request ID must be an unsigned integer", rid)
    if method not in _METHODS:
        expected = ", ".join(f"`{m}`" for m in _METHODS)
        return _error(2, f"Invalid request: unknown variant `{method}`, expected one of {expected}", rid)
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return _error(2, "Invalid request: params must be a list of stream names", rid)
        bad = [p for p in params if not _STREAM_NAME.match(p)]
        if bad:
            return _error(2, f"Invalid request: invalid stream name {bad[0]!r}", rid)
        if method == "SUBSCRIBE":
            subscribe(params)
        else:
            for name in params:
                session.subs.pop(name, None)
        return {"result": None, "id": rid}
    if method == "LIST_SUBSCRIPTIONS":
        return {"result": list(session.subs), "id": rid}
    if not isinstance(params, list) or not params or params[0] != "combined":
        return _error(0, "Unknown property", rid)
    if method == "GET_PROPERTY":
        return {"result": state["combined"], "id": rid}
    if len(params) != 2 or not isinstance(params[1], bool):
        return _error(1, "Invalid value type: expected Boolean", rid)
    state["combined"] = params[1]
    return {"result": None, "id": rid}
