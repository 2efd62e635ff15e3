"""The replay exchange's Kraken: WebSocket v1 (``/kraken``), v2 (``/kraken/v2``, in ``kraken_v2.py``) and
REST ``AssetPairs``. Each shape is cited in docs/replay-exchange.md.

v1: the recorded ``systemStatus`` on connect; ``subscribe`` / ``unsubscribe`` answered with one
``subscriptionStatus`` per pair (``reqid`` echoed; the recorded channel ids where the recording has
them); ``ping`` -> ``pong``. A pair the replay has no recording of gets ``Currency pair not supported``,
an unknown subscription name ``Subscription name invalid``, a depth Kraken does not offer (or a book the
replay has not recorded at that depth) ``Subscription depth not supported``, text that is not JSON the
``error`` event. A known pair on a channel its recordings lack (XBT/USD trades) is acked and stays
quiet, as a quiet market would. Every subscribe starts its recording from the start (a book from its
snapshot); data flows only while the (channel, pair) stays subscribed.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

from aiohttp import web

from tickrelay.replay import recordings
from tickrelay.replay.depth import shallower
from tickrelay.replay.exchange import ALWAYS, ReplayExchange, Session
from tickrelay.replay.kraken_v2 import KrakenV2
from tickrelay.replay.recordings import Recording


NAMES = ("book", "ticker", "trade", "spread", "ohlc")  # the public channels
DEPTHS = (10, 25, 100, 500, 1000)
_ASSET_CODES = {"XBT": "XXBT", "ETH": "XETH", "XMR": "XXMR", "USD": "ZUSD", "EUR": "ZEUR", "GBP": "ZGBP"}
_DECIMALS = re.compile(rb'\["\d+\.(\d+)","\d+\.(\d+)"')


def route(frame: bytes) -> Any:
    """A v1 frame's key: (channel name, pair) for data, ALWAYS for heartbeats, None for events."""
    if frame == b'{"event":"heartbeat"}':
        return ALWAYS
    found = recordings.kraken_route(frame)
    return None if found is None else (found[0].split("-")[0], found[1])


class Kraken:
    def __init__(self, exchange: ReplayExchange) -> None:
        self.exchange = exchange
        self.v2 = KrakenV2(exchange)
        self.recs = {name: recordings.load(*spec) for name, spec in recordings.KRAKEN.items()}
        self.books = {depth: recordings.load(*spec) for depth, spec in recordings.KRAKEN_BOOKS.items()}
        self._shallower: dict[tuple[int, int], Recording] = {}  # (recorded depth, depth) -> book
        self.status = self.recs["trade"].frames[0].decode()  # the recorded systemStatus
        self.channel_ids: dict[tuple[str, str], int] = {}
        self.book_pairs: dict[int, set[str]] = defaultdict(set)  # depth -> pairs with a book there
        self.decimals: dict[
            str, tuple[int, int]
        ] = {}  # pair -> decimal places its book's prices, volumes use
        for name, rec in [*self.recs.items(), *(("book", r) for r in self.books.values())]:
            for frame in rec.frames:
                if b'"subscriptionStatus"' in frame:
                    ack = json.loads(frame)
                    self.channel_ids[(name, ack["pair"])] = ack["channelID"]
                    if name == "book":
                        self.book_pairs[ack["subscription"]["depth"]].add(ack["pair"])
                elif name == "book" and isinstance(key := route(frame), tuple):
                    price, volume = self.decimals.get(key[1], (0, 0))
                    for p, v in _DECIMALS.findall(frame):  # the places its prices and volumes use
                        price, volume = max(price, len(p.rstrip(b"0"))), max(volume, len(v.rstrip(b"0")))
                    self.decimals[key[1]] = (price, volume)
        self.pairs = sorted({pair for _, pair in self.channel_ids})

    def _channel_id(self, name: str, pair: str) -> int:
        """The recorded channel id, else one no recording uses (the recorded ids are below 10,000)."""
        found = self.channel_ids.get((name, pair))
        return found if found is not None else 10_000 + NAMES.index(name) * 100 + self.pairs.index(pair)

    def routes(self) -> dict[str, Any]:
        return {
            "/kraken": self._ws,
            "/kraken/v2": self.v2.ws,
            "/kraken/0/public/AssetPairs": self._asset_pairs,
            "/0/public/AssetPairs": self._asset_pairs,  # for clients that join the REST path absolutely
        }

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        session = await self.exchange.session(request, "kraken")
        await session.ws.send_str(self.status)

        async def on_text(text: str) -> None:
            try:
                req = json.loads(text)
            except ValueError:
                await session.error({"errorMessage": "Malformed request", "event": "error"})
                return
            event = req.get("event") if isinstance(req, dict) else None
            reqid = {"reqid": req["reqid"]} if isinstance(req, dict) and "reqid" in req else {}
            if event == "ping":
                await session.send({"event": "pong", **reqid})
            elif event in ("subscribe", "unsubscribe"):
                await self._subscription(session, req, event, reqid)
            else:
                await session.error({"errorMessage": f"Unsupported event {event}", "event": "error", **reqid})

        await session.serve(on_text)
        return session.ws

    async def _subscription(
        self, session: Session, req: dict[str, Any], event: str, reqid: dict[str, Any]
    ) -> None:
        sub = req.get("subscription")
        name = sub.get("name") if isinstance(sub, dict) else None
        pairs = req.get("pair")
        base: dict[str, Any] = {"event": "subscriptionStatus", **reqid}
        if name not in NAMES or not isinstance(sub, dict):
            await session.error({**base, "errorMessage": "Subscription name invalid", "status": "error"})
            return
        depth = sub.get("depth", 10) if name == "book" else None
        shown = {"name": name, **({"depth": depth} if depth is not None else {})}
        channel = f"book-{depth}" if name == "book" else name
        if not isinstance(pairs, list) or not pairs:
            await session.error(
                {**base, "errorMessage": "Pair(s) not found", "status": "error", "subscription": shown}
            )
            return
        start: list[str] = []
        for pair in pairs:
            head = {**base, "pair": pair, "subscription": shown}
            if pair not in self.pairs:
                await session.error(
                    {**head, "errorMessage": f"Currency pair not supported {pair}", "status": "error"}
                )
            elif depth is not None and (depth not in DEPTHS or self._book(pair, depth) is None):
                await session.error(
                    {**head, "errorMessage": "Subscription depth not supported", "status": "error"}
                )
            elif event == "unsubscribe" and session.subs.pop((name, pair), None) is None:
                await session.error({**head, "errorMessage": "Subscription Not Found", "status": "error"})
            else:
                ack = {"channelID": self._channel_id(name, pair), "channelName": channel, **head}
                await session.send(dict(sorted({**ack, "status": f"{event}d"}.items())))
                start.append(pair)
        if event != "subscribe" or not start:
            return
        if depth is not None:  # one stream per recording (XBT/USD's book is another session's)
            by_rec: dict[str, tuple[Recording, list[str]]] = {}
            for pair in start:
                if (book := self._book(pair, depth)) is not None:
                    by_rec.setdefault(book.name, (book, []))[1].append(pair)
            for book, pairs_of in by_rec.values():
                session.stream(book, route, [(name, p) for p in pairs_of])
        elif name in self.recs:
            session.stream(self.recs[name], route, [(name, p) for p in start])
        else:  # a channel with no recording: acked, quiet
            session.subs.update({(name, p): 0 for p in start})

    def _book(self, pair: str, depth: int) -> Recording | None:
        """The book ``pair`` streams at ``depth``: recorded there, or made from a deeper recording
        (depth.shallower, made once); None if the replay has neither."""
        for recorded in sorted(d for d, pairs in self.book_pairs.items() if d >= depth and pair in pairs):
            if recorded == depth:
                return self.books[depth]
            key = (recorded, depth)
            if key not in self._shallower:
                self._shallower[key] = shallower(self.books[recorded], depth)
            return self._shallower[key]
        return None

    async def _asset_pairs(self, request: web.Request) -> web.Response:
        """All pairs, or those ``pair`` names (by altname, key or wsname, XBT or BTC); a pair asked
        for by its wsname is keyed by that name, as Kraken answers (python-kraken-sdk relies on it)."""
        result = dict(self._asset_pair(p) for p in self.pairs)
        if "pair" not in request.query:
            return web.json_response({"error": [], "result": result})
        names = {}
        for key, info in result.items():
            for name in (key, info["altname"], info["wsname"]):
                names[name] = names[name.replace("XBT", "BTC")] = key
        asked = request.query["pair"].split(",")
        if any(n not in names for n in asked):
            return web.json_response({"error": ["EQuery:Unknown asset pair"]})
        chosen = {(n if "/" in n else names[n]): result[names[n]] for n in asked}
        return web.json_response({"error": [], "result": chosen})

    def _asset_pair(self, pair: str) -> tuple[str, dict[str, Any]]:
        base, quote = pair.split("/")
        b, q = _ASSET_CODES.get(base, base), _ASSET_CODES.get(quote, quote)
        key = b + q if b != base and q != quote else base + quote
        price_dp, lot_dp = self.decimals.get(pair, (5, 8))
        return key, {
            "altname": base + quote,
            "wsname": pair,
            "aclass_base": "currency",
            "base": b,
            "aclass_quote": "currency",
            "quote": q,
            "lot": "unit",
            "cost_decimals": price_dp,
            "pair_decimals": price_dp,
            "lot_decimals": lot_dp,
            "lot_multiplier": 1,
            "fees": [[0, 0.26]],
            "fees_maker": [[0, 0.16]],
            "fee_volume_currency": "ZUSD",
            "tick_size": f"{10**-price_dp:.{price_dp}f}",
            "status": "online",
        }
