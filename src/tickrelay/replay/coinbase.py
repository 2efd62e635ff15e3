"""The replay exchange's Coinbase Exchange feed (``/coinbase``) and REST ``products``. Each shape is
cited in docs/replay-exchange.md.

``subscribe`` / ``unsubscribe`` (channels as names or ``{"name":..,"product_ids":[..]}``) are answered
with the cumulative ``subscriptions`` message; a request naming a product the replay has no recording
of, an unknown channel, or a channel without products fails whole with
``{"type":"error","message":"Failed to subscribe","reason":..}``. Data follows the channels: ``level2``
(and ``level2_batch``, same frames) -> ``snapshot`` + ``l2update``, ``ticker``, ``matches`` ->
``match`` / ``last_match``; channels the recording lacks (``heartbeat``, ``full``, ..) are acked and
quiet. Every subscribe starts the recording again for what it names (a fresh snapshot).
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from tickrelay.replay import recordings
from tickrelay.replay.exchange import ReplayExchange, Session


CHANNELS = (
    "level2",
    "level2_batch",
    "ticker",
    "ticker_batch",
    "matches",
    "heartbeat",
    "full",
    "level3",
    "status",
)
_DATA = {"level2": "level2", "level2_batch": "level2", "ticker": "ticker", "matches": "matches"}
_TYPE = re.compile(rb'^\{"type":"([a-z0-9_]+)"')
_CHANNEL_OF = {
    b"snapshot": "level2",
    b"l2update": "level2",
    b"ticker": "ticker",
    b"match": "matches",
    b"last_match": "matches",
}
_LEVEL = re.compile(rb'\["(\d+)\.?(\d*)","\d+\.?(\d*)"\]')


def route(frame: bytes) -> Any:
    m = _TYPE.match(frame)
    channel = _CHANNEL_OF.get(m.group(1)) if m else None
    return None if channel is None else (channel, recordings.coinbase_product(frame))


class Coinbase:
    def __init__(self, exchange: ReplayExchange) -> None:
        self.exchange = exchange
        self.rec = recordings.load(*recordings.COINBASE)
        self.increments: dict[str, tuple[int, int]] = {}  # product -> (price, size) decimals of its book
        for frame in self.rec.frames:
            if frame.startswith(b'{"type":"snapshot"'):
                levels = _LEVEL.findall(frame)
                self.increments[str(recordings.coinbase_product(frame))] = (
                    max(len(p) for _, p, _ in levels),
                    max(len(s) for _, _, s in levels),
                )
        self.products = sorted(self.increments)

    def routes(self) -> dict[str, Any]:
        return {
            "/coinbase": self._ws,
            "/coinbase/products": self._products,
            "/coinbase/products/{id}": self._product,
        }

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        session = await self.exchange.session(request, "coinbase")
        shown: dict[str, list[str]] = {}  # channel name as subscribed -> its products, in order

        async def on_text(text: str) -> None:
            try:
                req = json.loads(text)
            except ValueError as exc:
                await session.error({"type": "error", "message": "Malformed JSON", "reason": str(exc)})
                return
            kind = req.get("type") if isinstance(req, dict) else None
            if kind not in ("subscribe", "unsubscribe"):
                await session.error(
                    {
                        "type": "error",
                        "message": "Failed to subscribe",
                        "reason": f"{kind} is not a valid type",
                    }
                )
                return
            wanted, reason = self._parse(req)
            if reason:
                await session.error({"type": "error", "message": "Failed to subscribe", "reason": reason})
                return
            self._apply(session, shown, kind, wanted)
            await session.send(
                {
                    "type": "subscriptions",
                    "channels": [{"name": n, "product_ids": p} for n, p in shown.items() if p],
                }
            )

        await session.serve(on_text)
        return session.ws

    def _parse(self, req: dict[str, Any]) -> tuple[list[tuple[str, str]], str]:
        """The (channel, product) pairs a request names, or the reason it fails."""
        top = req.get("product_ids") or []
        wanted: list[tuple[str, str]] = []
        for channel in req.get("channels") or []:
            name, products = (
                (channel, top)
                if isinstance(channel, str)
                else (channel.get("name"), channel.get("product_ids") or top)
            )
            if name not in CHANNELS:
                return [], f"{name} is not a valid channel"
            if not products:
                return [], f"You need to specify at least one product ID for channel {name}"
            for product in products:
                if product not in self.increments:
                    return [], f"{product} is not a valid product"
                wanted.append((name, product))
        if not wanted:
            return [], "No channels provided"
        return wanted, ""

    def _apply(
        self, session: Session, shown: dict[str, list[str]], kind: str, wanted: list[tuple[str, str]]
    ) -> None:
        if kind == "unsubscribe":
            for name, product in wanted:
                if product in shown.get(name, []):
                    shown[name].remove(product)
                if name in _DATA and not any(
                    product in shown.get(n, []) for n in _DATA if _DATA[n] == _DATA[name]
                ):
                    session.subs.pop((_DATA[name], product), None)
            return
        for name, product in wanted:
            if product not in shown.setdefault(name, []):
                shown[name].append(product)
        keys = list(dict.fromkeys((_DATA[n], p) for n, p in wanted if n in _DATA))
        if keys:
            session.stream(self.rec, route, keys)

    async def _product(self, request: web.Request) -> web.Response:
        product = request.match_info["id"]
        if product not in self.increments:
            return web.json_response({"message": "NotFound"}, status=404)
        return web.json_response(self._describe(product))

    async def _products(self, request: web.Request) -> web.Response:
        return web.json_response([self._describe(p) for p in self.products])

    def _describe(self, product: str) -> dict[str, Any]:
        base, quote = product.split("-")
        price_dp, size_dp = self.increments[product]
        return {
            "id": product,
            "base_currency": base,
            "quote_currency": quote,
            "quote_increment": f"{10**-price_dp:.{price_dp}f}",
            "base_increment": f"{10**-size_dp:.{size_dp}f}",
            "display_name": f"{base}/{quote}",
            "min_market_funds": "1",
            "margin_enabled": False,
            "post_only": False,
            "limit_only": False,
            "cancel_only": False,
            "status": "online",
            "status_message": "",
            "trading_disabled": False,
            "fx_stablecoin": False,
            "auction_mode": False,
        }
