"""The replay exchange: local WebSocket and REST servers that speak each venue's protocol and stream
recorded sessions. Thin I/O (aiohttp) around the recordings.

Routes (one server, one port):

* ``/coinbase``: the Exchange feed. The client sends ``{"type":"subscribe","product_ids":[..],
  "channels":[..]}``; the server answers ``subscriptions`` and streams the recorded frames of those
  products.
* ``/binance/stream?streams=a/b`` (the URL is the subscription, combined frames) and ``/binance/ws``
  (``{"method":"SUBSCRIBE","params":[..],"id":N}`` -> ``{"result":null,"id":N}``, raw event frames);
  ``GET /binance/api/v3/depth?symbol=X`` serves the recorded REST snapshot.
* ``/kraken``: v1. The server sends the recorded ``systemStatus``; each ``subscribe`` event is answered
  with the recorded ``subscriptionStatus`` frames of the asked pairs, then that channel's frames.
* ``/kraken/v2``: v2 ``{"method":"subscribe","params":{"channel":"book"|"instrument",..}}`` -> the method
  answer, then the recorded v2 book (or the instrument snapshot with BTC/USD's precisions).

Pacing follows the recorded receive times divided by ``speed`` (0 = as fast as possible), or, with
``rate``, is steady: ``rate`` frames per second on each connection, evenly spaced (for latency
benchmarks: the recorded times come in bursts, which measure queueing, not the pipeline). At the end
of a recording the server closes the connection (code 1000), so a looping client reconnects and
resubscribes as it would with a real exchange; with ``loop`` off it keeps the connection open. Faults for
tests and demos: close after N frames, stall S seconds after N frames, or corrupt frame N.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import WSMsgType, web

from tickrelay.replay import recordings
from tickrelay.replay.recordings import Recording


# What the embedded recordings hold: collectors pointed at the replay subscribe to these.
REPLAY_INSTRUMENTS = {
    "COINBASE_PRODUCTS": "SKL-USD,SKL-BTC,SKL-GBP,BAND-GBP,BAND-BTC,NMR-EUR,YFI-BTC,DASH-BTC,NU-GBP,CRV-EUR",
    "BINANCE_SYMBOLS": "BTCUSDT",
    "KRAKEN_PAIRS": "XBT/USD,WAVES/EUR,XMR/USD,KSM/XBT,GRT/ETH,SC/EUR,ETH/CHF,OCEAN/XBT,OMG/USD,XBT/CHF,"
    "ADA/XBT",
}


def collector_env(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """The environment that points collectors at a replay exchange on ``host:port``."""
    base = f"ws://{host}:{port}"
    return {
        "COINBASE_WS_URL": f"{base}/coinbase",
        "BINANCE_WS_URL": f"{base}/binance",
        "KRAKEN_WS_URL": f"{base}/kraken",
        "TICKRELAY_BINANCE_REST_URL": f"http://{host}:{port}/binance",
    }


@dataclasses.dataclass(frozen=True)
class Faults:
    close_after: int = 0  # close the connection after this many frames (0: never)
    stall_after: int = 0  # stop sending for stall_s seconds after this many frames (0: never)
    stall_s: float = 0.0
    corrupt: int = 0  # replace frame number N (1-based) by bytes that are not JSON (0: never)

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Faults:
        """``close-after=N``, ``stall=N:S`` (after N frames, S seconds), ``corrupt=N``."""
        values: dict[str, float] = {}
        for spec in specs:
            name, _, arg = spec.partition("=")
            if name == "close-after":
                values["close_after"] = int(arg)
            elif name == "stall":
                after, _, seconds = arg.partition(":")
                values["stall_after"], values["stall_s"] = int(after), float(seconds)
            elif name == "corrupt":
                values["corrupt"] = int(arg)
            else:
                raise ValueError(f"unknown fault {spec!r} (close-after=N, stall=N:S, corrupt=N)")
        return cls(**values)  # type: ignore[arg-type]


@dataclasses.dataclass
class ExchangeStats:
    connections: int = 0
    frames_sent: int = 0


class ReplayExchange:
    """Serve the embedded recordings on ``host:port`` (port 0: any free port; see ``.port``)."""

    def __init__(
        self, *, speed: float = 1.0, rate: float = 0.0, loop: bool = True, faults: Faults = Faults()
    ) -> None:
        self.speed = speed
        self.rate = rate
        if rate:
            _fine_timers()
        self.loop = loop
        self.faults = faults
        self.stats = ExchangeStats()
        self.port = 0
        self._closing: set[asyncio.Future[bool]] = set()  # close calls in flight (kept referenced)
        self._runner: web.AppRunner | None = None
        self._coinbase = recordings.load(*recordings.COINBASE)
        self._binance = recordings.load(*recordings.BINANCE)
        self._kraken = {name: recordings.load(*spec) for name, spec in recordings.KRAKEN.items()}
        self._kraken_v2 = recordings.load(*recordings.KRAKEN_V2_BOOK)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/coinbase", self._coinbase_ws)
        app.router.add_get("/binance/stream", self._binance_stream)
        app.router.add_get("/binance/ws", self._binance_ws)
        app.router.add_get("/binance/api/v3/depth", self._binance_depth)
        app.router.add_get("/kraken", self._kraken_ws)
        app.router.add_get("/kraken/v2", self._kraken_v2_ws)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, venue: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{venue}"

    # ---- streaming ------------------------------------------------------------------------------

    async def _stream(
        self,
        ws: web.WebSocketResponse,
        rec: Recording,
        keep: Callable[[bytes], bytes | None],
        *,
        last: bool = True,
    ) -> None:
        """Send the frames ``keep`` passes (it may transform them), paced, with the configured faults.
        ``last``: this is the connection's only (or final) stream, so its end may close the connection."""
        start, first_ns, sent = time.monotonic(), None, 0
        f = self.faults
        for frame, at_ns in zip(rec.frames, rec.times_ns, strict=True):
            out = keep(frame)
            if out is None:
                continue
            if self.rate:
                await _until(start + sent / self.rate)
            elif self.speed:
                first_ns = at_ns if first_ns is None else first_ns
                delay = start + (at_ns - first_ns) / 1e9 / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif sent % 256 == 255:
                await asyncio.sleep(0)
            sent += 1
            if f.corrupt and sent == f.corrupt:
                out = b"\x00corrupted frame\x00"
            await ws.send_str(out.decode("utf-8", "replace"))
            self.stats.frames_sent += 1
            if f.stall_after and sent == f.stall_after:
                await asyncio.sleep(f.stall_s)
            if f.close_after and sent >= f.close_after:
                await ws.close(code=1011, message=b"fault injected: close")
                return
        if not last:
            return
        if self.loop:
            await ws.close(code=1000, message=b"end of recording: reconnect to replay it again")
        else:  # keep the finished connection open until the client leaves
            async for _ in ws:
                pass

    async def _open(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 22)
        await ws.prepare(request)
        self.stats.connections += 1
        return ws

    def _close_when_done(self, ws: web.WebSocketResponse, tasks: list[asyncio.Task[None]]) -> None:
        """A connection with several subscriptions ends (when looping) once every recording has ended."""
        if self.loop and not ws.closed and all(t.done() and not t.cancelled() for t in tasks):
            closing = asyncio.ensure_future(ws.close(code=1000, message=b"end of recording: reconnect"))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _first_request(self, request: web.Request) -> tuple[web.WebSocketResponse, Any]:
        """Open the WebSocket and read the client's subscribe request (None if it sent no text)."""
        ws = await self._open(request)
        msg = await ws.receive()
        return ws, json.loads(msg.data) if msg.type == WSMsgType.TEXT else None

    # ---- Coinbase ----------------------------------------------------------------------------------

    async def _coinbase_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws, sub = await self._first_request(request)
        if sub is None:
            return ws
        products = set(sub.get("product_ids", []))
        channels = sub.get("channels", [])
        await ws.send_str(
            json.dumps(
                {
                    "type": "subscriptions",
                    "channels": [
                        {"name": c if isinstance(c, str) else c.get("name"), "product_ids": sorted(products)}
                        for c in channels
                    ],
                }
            )
        )

        def keep(frame: bytes) -> bytes | None:
            return frame if recordings.coinbase_product(frame) in products else None

        await self._stream(ws, self._coinbase, keep)
        return ws

    # ---- Binance -----------------------------------------------------------------------------------

    async def _binance_stream(self, request: web.Request) -> web.WebSocketResponse:
        streams = set(request.query.get("streams", "").split("/"))
        ws = await self._open(request)
        await self._stream(
            ws, self._binance, lambda f: f if recordings.binance_stream(f) in streams else None
        )
        return ws

    async def _binance_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws, sub = await self._first_request(request)
        if sub is None:
            return ws
        streams = set(sub.get("params", []))
        await ws.send_str(json.dumps({"result": None, "id": sub.get("id")}))

        def raw_event(frame: bytes) -> bytes | None:  # raw streams send the event object alone
            if recordings.binance_stream(frame) not in streams:
                return None
            return frame[frame.index(b'"data":') + 7 : -1]

        await self._stream(ws, self._binance, raw_event)
        return ws

    async def _binance_depth(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        body = recordings.binance_snapshot(symbol)
        if body is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        return web.Response(body=body, content_type="application/json")

    # ---- Kraken ------------------------------------------------------------------------------------

    async def _kraken_v2_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = await self._open(request)
        tasks: list[asyncio.Task[None]] = []
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                if await _kraken_v2_answer(ws, json.loads(msg.data)) == "book":
                    tasks.append(
                        asyncio.create_task(self._stream(ws, self._kraken_v2, lambda f: f, last=False))
                    )
                    tasks[-1].add_done_callback(lambda _: self._close_when_done(ws, tasks))
        finally:
            await _cancel(tasks)
        return ws

    async def _kraken_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = await self._open(request)
        await ws.send_str(self._kraken["trade"].frames[0].decode())  # the recorded systemStatus
        tasks: list[asyncio.Task[None]] = []
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                sub = json.loads(msg.data)
                if sub.get("event") == "ping":
                    await ws.send_str(json.dumps({"event": "pong", "reqid": sub.get("reqid")}))
                    continue
                name = sub.get("subscription", {}).get("name")
                rec = self._kraken.get(name)
                if sub.get("event") != "subscribe" or rec is None:
                    await ws.send_str(
                        json.dumps(
                            {
                                "event": "subscriptionStatus",
                                "status": "error",
                                "errorMessage": f"Subscription name invalid: {name}",
                            }
                        )
                    )
                    continue
                pairs = set(sub.get("pair", []))
                for frame in rec.frames:  # the recorded acks, with the recorded channel ids
                    if b'"subscriptionStatus"' in frame and json.loads(frame).get("pair") in pairs:
                        await ws.send_str(frame.decode())
                tasks.append(asyncio.create_task(self._stream(ws, rec, _kraken_keep(pairs), last=False)))
                tasks[-1].add_done_callback(lambda _: self._close_when_done(ws, tasks))
        finally:
            await _cancel(tasks)
        return ws


async def _kraken_v2_answer(ws: web.WebSocketResponse, sub: dict[str, object]) -> str | None:
    """Acknowledge one v2 subscribe; returns the channel to stream ("book"), or None."""
    params = sub.get("params")
    channel = params.get("channel") if isinstance(params, dict) else None
    if sub.get("method") != "subscribe" or channel not in ("book", "instrument"):
        await ws.send_str(
            json.dumps(
                {
                    "method": sub.get("method"),
                    "success": False,
                    "error": f"Channel not supported: {channel}",
                    "req_id": sub.get("req_id"),
                }
            )
        )
        return None
    await ws.send_str(
        json.dumps(
            {
                "method": "subscribe",
                "result": {"channel": channel},
                "success": True,
                "req_id": sub.get("req_id"),
            }
        )
    )
    if channel == "instrument":
        pairs = [
            {"symbol": s, "price_precision": p, "qty_precision": q}
            for s, (p, q) in recordings.KRAKEN_V2_INSTRUMENTS.items()
        ]
        await ws.send_str(
            json.dumps({"channel": "instrument", "type": "snapshot", "data": {"assets": [], "pairs": pairs}})
        )
        return None
    return "book"


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Stop a connection's streaming tasks (the client left or the server stops)."""
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _kraken_keep(pairs: set[str]) -> Callable[[bytes], bytes | None]:
    def keep(frame: bytes) -> bytes | None:
        route = recordings.kraken_route(frame)
        if route is None:
            return frame if b'"heartbeat"' in frame else None
        return frame if route[1] in pairs else None

    return keep


SLEEP_OVERHEAD_S = 40e-6  # time.sleep(d) returns about this late here, with the timer slack at 1 ns


async def _until(deadline: float) -> None:
    """Wait until ``time.monotonic()`` reaches ``deadline``, to within tens of µs. The event loop's timers
    are millisecond-grained, so the last 2 ms are one blocking sleep: steady pacing is for benchmarks
    on one connection (others are served between its frames, late by up to one frame's gap)."""
    delay = deadline - time.monotonic()
    if delay > 0.002:
        await asyncio.sleep(delay - 0.002)
        delay = deadline - time.monotonic()
    if delay > SLEEP_OVERHEAD_S:
        time.sleep(delay - SLEEP_OVERHEAD_S)  # noqa: ASYNC251 - deliberate (see above)
    await asyncio.sleep(0)  # other connections and requests get their turn between frames


def _fine_timers() -> None:
    """Ask Linux for exact sleeps (timer slack 1 ns instead of 50 µs); elsewhere sleeps stay as they are."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
