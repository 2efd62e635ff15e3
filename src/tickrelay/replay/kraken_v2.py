"""The replay exchange's Kraken WebSocket v2 (``/kraken/v2``). Each shape is cited in
docs/replay-exchange.md.

A ``status`` update on connect; ``ping`` -> ``pong``; ``subscribe`` / ``unsubscribe`` answered once per
symbol with ``result.channel``, ``result.symbol`` and, for books, ``depth`` and ``snapshot`` (``req_id``,
``time_in`` and ``time_out`` as Kraken sends them). A symbol the replay has no recording of gets
``Currency pair not supported``; its BTC/USD book is served to no other symbol. ``ticker`` and ``trade``
are acked and stay quiet (the replay has no v2 recording of them); ``instrument`` answers the embedded
symbols' precisions.
"""

from __future__ import annotations

import datetime
import itertools
import json
import re
from typing import Any

from aiohttp import web

from tickrelay.replay import recordings
from tickrelay.replay.exchange import ReplayExchange, Session


CHANNELS = ("book", "ticker", "trade", "instrument", "ohlc")
BOOK_DEPTHS = {10}  # the depth of the recorded v2 book
DEPTHS = (10, 25, 100, 500, 1000)
_ROUTE = re.compile(rb'^\{"channel":"([a-z]+)".*?"symbol":"([^"]+)"')
_connection_ids = itertools.count(1)


def route(frame: bytes) -> Any:
    m = _ROUTE.match(frame)
    return None if m is None else (m.group(1).decode(), m.group(2).decode())


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KrakenV2:
    def __init__(self, exchange: ReplayExchange) -> None:
        self.exchange = exchange
        self.book = recordings.load(*recordings.KRAKEN_V2_BOOK)
        self.symbols = set(recordings.KRAKEN_V2_INSTRUMENTS)

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        session = await self.exchange.session(request, "kraken")
        status = {
            "version": "2.0.0",
            "system": "online",
            "api_version": "v2",
            "connection_id": next(_connection_ids),
        }
        await session.send({"channel": "status", "type": "update", "data": [status]})

        async def on_text(text: str) -> None:
            time_in = _now()
            try:
                req = json.loads(text)
            except ValueError:
                await session.error(
                    {"error": "Malformed request", "success": False, "time_in": time_in, "time_out": _now()}
                )
                return
            req = req if isinstance(req, dict) else {}
            method = req.get("method")
            tail = {"time_in": time_in, **({"req_id": req["req_id"]} if "req_id" in req else {})}
            if method == "ping":
                await session.send({"method": "pong", **tail, "time_out": _now()})
            elif method in ("subscribe", "unsubscribe"):
                params = req.get("params")
                await self._subscription(session, method, params if isinstance(params, dict) else {}, tail)
            else:
                await session.error(
                    {
                        "error": f"Method not found: {method}",
                        "method": method,
                        "success": False,
                        **tail,
                        "time_out": _now(),
                    }
                )

        await session.serve(on_text)
        return session.ws

    async def _subscription(
        self, session: Session, method: str, params: dict[str, Any], tail: dict[str, Any]
    ) -> None:
        channel = params.get("channel")

        async def fail(error: str, **extra: Any) -> None:
            await session.error(
                {"error": error, "method": method, "success": False, **extra, **tail, "time_out": _now()}
            )

        if channel not in CHANNELS:
            await fail(f"Channel not supported: {channel}")
            return
        if channel == "instrument":
            await session.send(
                {
                    "method": method,
                    "result": {"channel": channel, "snapshot": True},
                    "success": True,
                    **tail,
                    "time_out": _now(),
                }
            )
            if method == "subscribe":
                pairs = [
                    {"symbol": s, "price_precision": p, "qty_precision": q}
                    for s, (p, q) in recordings.KRAKEN_V2_INSTRUMENTS.items()
                ]
                await session.send(
                    {"channel": "instrument", "type": "snapshot", "data": {"assets": [], "pairs": pairs}}
                )
            return
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols:
            await fail("Missing or invalid symbol list")
            return
        depth = params.get("depth", 10) if channel == "book" else None
        started = []
        for symbol in symbols:
            result: dict[str, Any] = {"channel": channel, **({"depth": depth} if depth is not None else {})}
            if symbol not in self.symbols:
                await fail(f"Currency pair not supported {symbol}", symbol=symbol)
            elif depth is not None and (depth not in DEPTHS or depth not in BOOK_DEPTHS):
                await fail("Subscription depth not supported", symbol=symbol)
            elif method == "unsubscribe" and session.subs.pop((channel, symbol), None) is None:
                await fail("Subscription Not Found", symbol=symbol)
            else:
                if method == "subscribe":
                    result["snapshot"] = bool(params.get("snapshot", channel != "trade"))
                    started.append(symbol)
                await session.send(
                    {
                        "method": method,
                        "result": {**result, "symbol": symbol},
                        "success": True,
                        **tail,
                        "time_out": _now(),
                    }
                )
        if started:
            keys = [(channel, s) for s in started]
            if channel == "book":
                session.stream(self.book, route, keys)
            else:  # no v2 recording of this channel: acked, quiet
                session.subs.update(dict.fromkeys(keys, 0))
