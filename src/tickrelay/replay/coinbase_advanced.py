"""The replay exchange's Coinbase Advanced Trade WebSocket (``/coinbase/advanced``). No Advanced Trade
capture exists, so its frames are BUILT from the embedded Exchange-feed recording, in the documented
shapes (docs.cdp.coinbase.com/advanced-trade/docs/ws-channels; cited in docs/replay-exchange.md):

* ``snapshot`` / ``l2update`` -> ``l2_data`` ``snapshot`` / ``update`` events (sides ``bid`` / ``offer``);
* ``match`` / ``last_match`` -> ``market_trades`` ``update`` / ``snapshot`` (``side`` upper-cased: the
  maker's side, as on the Exchange feed);
* ``ticker`` -> ``ticker`` ``update`` (the fields the recording has: price, 24 h figures, best bid/ask).

``{"type":"subscribe","product_ids":[..],"channel":C}`` (C: ``level2``, ``market_trades``, ``ticker``,
``heartbeats``, ..) is answered by a ``subscriptions`` message; every message of the connection carries
the next ``sequence_num``. A product the replay has no recording of, or an unknown channel, gets
``{"type":"error","message":..}``.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

from aiohttp import web

from tickrelay.replay import recordings
from tickrelay.replay.exchange import ReplayExchange
from tickrelay.replay.recordings import Recording


CHANNELS = {  # subscribed channel -> the channel its messages carry
    "level2": "l2_data", "market_trades": "market_trades", "ticker": "ticker", "heartbeats": "heartbeats",
    "status": "status", "candles": "candles", "ticker_batch": "ticker_batch",
}  # fmt: skip
_SEQ = b'"sequence_num":0,'


def _rfc3339(ns: int) -> str:
    at = datetime.datetime.fromtimestamp(ns // 10**9, datetime.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 10**9:09d}Z"


def _event(m: dict[str, Any], at: str) -> tuple[str, dict[str, Any]] | None:
    """The Advanced Trade channel and event that stand for one Exchange-feed message."""
    kind, product = m.get("type"), m.get("product_id", "")
    if kind in ("snapshot", "l2update"):
        if kind == "snapshot":
            levels = [("bid", *lv) for lv in m["bids"]] + [("offer", *lv) for lv in m["asks"]]
        else:
            levels = [("bid" if side == "buy" else "offer", p, q) for side, p, q in m["changes"]]
        updates = [
            {"side": s, "event_time": m.get("time", at), "price_level": p, "new_quantity": q}
            for s, p, q in levels
        ]
        return "l2_data", {
            "type": "snapshot" if kind == "snapshot" else "update",
            "product_id": product,
            "updates": updates,
        }
    if kind in ("match", "last_match"):
        trade = {"trade_id": str(m["trade_id"]), "product_id": product, "price": m["price"],
                 "size": m["size"], "side": m["side"].upper(), "time": m["time"]}  # fmt: skip
        return "market_trades", {"type": "snapshot" if kind == "last_match" else "update", "trades": [trade]}
    if kind == "ticker":
        ticker = {"type": "ticker", "product_id": product, "price": m["price"],
                  "volume_24_h": m["volume_24h"], "low_24_h": m["low_24h"], "high_24_h": m["high_24h"],
                  "best_bid": m["best_bid"], "best_ask": m["best_ask"]}  # fmt: skip
        return "ticker", {"type": "update", "tickers": [ticker]}
    return None


def built(rec: Recording) -> Recording:
    """The Exchange-feed recording as Advanced Trade frames (``sequence_num`` 0: set when sent)."""
    frames, times = [], []
    for frame, at in zip(rec.frames, rec.times_ns, strict=True):
        found = _event(json.loads(frame), _rfc3339(at))
        if found is None:
            continue
        channel, event = found
        envelope = {
            "channel": channel,
            "client_id": "",
            "timestamp": _rfc3339(at),
            "sequence_num": 0,
            "events": [event],
        }
        frames.append(json.dumps(envelope, separators=(",", ":")).encode())
        times.append(at)
    return Recording(rec.name + " as Advanced Trade (built)", tuple(frames), tuple(times))


def route(frame: bytes) -> Any:
    head = json.loads(frame)
    event = head["events"][0]
    product = event.get("product_id") or (event.get("trades") or event.get("tickers") or [{}])[0].get(
        "product_id"
    )
    return head["channel"], product


class CoinbaseAdvanced:
    def __init__(self, exchange: ReplayExchange) -> None:
        self.exchange = exchange
        self._rec: Recording | None = None  # built at the first subscribe: no cost at start
        self.products: set[str] = set()

    def recording(self) -> Recording:
        if self._rec is None:
            self._rec = built(recordings.load(*recordings.COINBASE))
            self.products = {route(f)[1] for f in self._rec.frames}
        return self._rec

    def routes(self) -> dict[str, Any]:
        return {"/coinbase/advanced": self._ws}

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        session = await self.exchange.session(request, "coinbase")
        sequence = [0]
        subscribed: dict[str, list[str]] = {}

        def numbered(frame: bytes) -> bytes:
            sequence[0] += 1
            return frame.replace(_SEQ, b'"sequence_num":%d,' % sequence[0], 1)

        async def reply(channel: str, events: list[dict[str, Any]]) -> None:
            body = {
                "channel": channel,
                "client_id": "",
                "timestamp": _rfc3339(time.time_ns()),
                "sequence_num": 0,
                "events": events,
            }
            await session.ws.send_str(numbered(json.dumps(body, separators=(",", ":")).encode()).decode())

        async def on_text(text: str) -> None:
            try:
                req = json.loads(text)
            except ValueError:
                await session.error({"type": "error", "message": "malformed JSON"})
                return
            kind, channel = req.get("type"), req.get("channel")
            products = req.get("product_ids") or []
            if kind not in ("subscribe", "unsubscribe") or channel not in CHANNELS:
                await session.error(
                    {"type": "error", "message": f"Failed to subscribe: unknown channel {channel}"}
                )
                return
            rec = self.recording()
            unknown = [p for p in products if p not in self.products]
            if unknown:
                await session.error(
                    {"type": "error", "message": f"Failed to subscribe: {unknown[0]} is not a valid product"}
                )
                return
            data = CHANNELS[channel]
            if kind == "unsubscribe":
                subscribed[channel] = [p for p in subscribed.get(channel, []) if p not in products]
                for p in products:
                    session.subs.pop((data, p), None)
            else:
                subscribed[channel] = list(dict.fromkeys([*subscribed.get(channel, []), *products]))
            await reply("subscriptions", [{"subscriptions": {c: p for c, p in subscribed.items() if p}}])
            if kind == "subscribe" and data in ("l2_data", "market_trades", "ticker"):
                session.stream(rec, route, [(data, p) for p in products], numbered)

        await session.serve(on_text)
        return session.ws
