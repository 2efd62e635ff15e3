"""The replay exchange: one local aiohttp server that speaks each venue's WebSocket and REST protocol
and streams the embedded recordings. The venue protocols live in ``binance.py``, ``kraken.py`` and
``coinbase.py`` (each shape cited in docs/replay-exchange.md); this module holds what they share:

* :class:`Session`, one WebSocket connection. Its reader runs for the whole connection, so client
  pings are answered, a client close is answered, and requests are answered while data streams. The
  server pings at the venue's interval and drops a client that leaves a ping unanswered for the
  venue's timeout. Data is routed by key (a stream, a (channel, pair)): a frame goes out only while its
  key is subscribed, and only from the stream that the subscription started (a resubscribe starts
  the recording again, with its snapshot, and the older stream stops sending that key).
* pacing: the recorded receive times, else the exchange times in the frames (see
  ``recordings.exchange_times_ns``), divided by ``speed`` (0: as fast as possible); or, with
  ``rate``, steady: ``rate`` frames per second on each stream, evenly spaced (latency benchmarks).
* the end of a recording: with ``loop`` the server closes the connection (1000) when the first of its
  recordings that still serves a subscription ends, so a client reconnects and resubscribes as with a
  real exchange and every recording starts again; without it the connection stays open.
* faults for tests and demos: close after N frames, stall S seconds after N frames, corrupt frame N,
  a wrong book checksum in the N-th checksummed frame, 429 then 418 to REST, close at accept.
* ``tls``: wss:// and https:// with a certificate made at start (``tls.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import re
import ssl
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from aiohttp import WSMsgType, web

from tickrelay.replay.recordings import Recording


# What the embedded recordings hold: collectors pointed at the replay subscribe to these.
REPLAY_INSTRUMENTS = {
    "COINBASE_PRODUCTS": "SKL-USD,SKL-BTC,SKL-GBP,BAND-GBP,BAND-BTC,NMR-EUR,YFI-BTC,DASH-BTC,NU-GBP,CRV-EUR",
    "BINANCE_SYMBOLS": "BTCUSDT",
    "KRAKEN_PAIRS": "XBT/USD,WAVES/EUR,XMR/USD,KSM/XBT,GRT/ETH,SC/EUR,ETH/CHF,OCEAN/XBT,OMG/USD,XBT/CHF,"
    "ADA/XBT",
}

# Server pings (interval s, timeout s) by venue. Binance pings every 20 s and disconnects a client
# that sends no pong within a minute; Kraken and Coinbase document no server ping (0: none).
PINGS = {"binance": (20.0, 60.0), "kraken": (0.0, 0.0), "coinbase": (0.0, 0.0)}


def collector_env(port: int, host: str = "127.0.0.1", *, tls: bool = False) -> dict[str, str]:
    """The environment that points collectors at a replay exchange on ``host:port``."""
    ws, http = ("wss", "https") if tls else ("ws", "http")
    return {
        "COINBASE_WS_URL": f"{ws}://{host}:{port}/coinbase",
        "BINANCE_WS_URL": f"{ws}://{host}:{port}/binance",
        "KRAKEN_WS_URL": f"{ws}://{host}:{port}/kraken",
        "TICKRELAY_KRAKEN_API": "v1",  # the embedded v1 recording holds every pair; v2 only BTC/USD's book
        "TICKRELAY_BINANCE_REST_URL": f"{http}://{host}:{port}/binance",
    }


@dataclasses.dataclass(frozen=True)
class Faults:
    close_after: int = 0  # close the connection after this many frames (0: never)
    stall_after: int = 0  # stop sending for stall_s seconds after this many frames (0: never)
    stall_s: float = 0.0
    corrupt: int = 0  # replace frame number N (1-based) by bytes that are not JSON (0: never)
    bad_checksum: int = 0  # the N-th frame with a Kraken book checksum carries a wrong one (0: never)
    http429: int = 0  # answer the first N Binance REST requests 429 with Retry-After (0: none)
    accept_close: bool = False  # close every WebSocket as soon as it is accepted
    http418: bool = False  # once the http429 refusals are spent, answer Binance REST 418 (IP banned)

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Faults:
        """``close-after=N``, ``stall=N:S`` (after N frames, S seconds), ``corrupt=N``,
        ``bad-checksum=N``, ``http429=N``, ``http418``, ``accept-close``."""
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
            elif name == "bad-checksum":
                values["bad_checksum"] = int(arg)
            elif name == "http429":
                values["http429"] = int(arg)
            elif spec == "accept-close":
                values["accept_close"] = True
            elif spec == "http418":
                values["http418"] = True
            else:
                raise ValueError(
                    f"unknown fault {spec!r} (close-after=N, stall=N:S, corrupt=N, bad-checksum=N, "
                    "http429=N, http418, accept-close)"
                )
        return cls(**values)  # type: ignore[arg-type]


def parse_pings(specs: Iterable[str]) -> dict[str, tuple[float, float]]:
    """``VENUE=INTERVAL[:TIMEOUT]`` (seconds; interval 0: no server pings) over the venues' defaults."""
    pings = dict(PINGS)
    for spec in specs:
        venue, _, arg = spec.partition("=")
        interval, _, timeout = arg.partition(":")
        if venue not in pings or not interval:
            raise ValueError(
                f"bad --ping {spec!r} (VENUE=INTERVAL[:TIMEOUT], VENUE one of {', '.join(PINGS)})"
            )
        every = float(interval)
        pings[venue] = (every, float(timeout) if timeout else 3 * every)
    return pings


@dataclasses.dataclass
class ExchangeStats:
    connections: int = 0
    frames_sent: int = 0
    requests: int = 0  # client messages answered
    errors_sent: int = 0  # of which answered with the venue's error
    pings_sent: int = 0
    pong_timeouts: int = 0  # clients dropped for leaving a server ping unanswered
    clients_left: int = 0  # clients gone while frames were being sent to them (normal: no traceback)
    http429_sent: int = 0  # REST requests refused by the http429 fault
    http418_sent: int = 0  # REST requests refused by the http418 fault


_CHECKSUM = re.compile(rb'"c":"[0-9]+"')
Route = Callable[[bytes], Hashable | None]  # a frame's subscription key (None: never sent)
ALWAYS = object()  # a route's answer for frames that go out while the stream owns any key (heartbeats)


class Session:
    """One WebSocket connection: its reader, its server pings, its streams and subscriptions."""

    def __init__(self, exchange: ReplayExchange, ws: web.WebSocketResponse, venue: str) -> None:
        self.exchange = exchange
        self.ws = ws
        self.venue = venue
        self.subs: dict[Hashable, int] = {}  # subscribed key -> the stream that serves it
        self._streams: list[asyncio.Task[None]] = []
        self._last_pong = time.monotonic()

    async def send(self, message: Any) -> None:
        await self.ws.send_str(json.dumps(message, separators=(",", ":")))

    async def error(self, message: Any) -> None:
        self.exchange.stats.errors_sent += 1
        await self.send(message)

    async def serve(self, on_text: Callable[[str], Any]) -> None:
        """Read the client until it leaves: pings and pongs, closes, and text for ``on_text`` (a
        coroutine function). Then stop the streams and pings."""
        if self.exchange.faults.accept_close:
            await self.ws.close(code=1013, message=b"fault injected: accept-close")
            return
        interval, limit = self.exchange.pings[self.venue]
        pinger = asyncio.create_task(self._ping(interval, limit)) if interval > 0 else None
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type == WSMsgType.TEXT:
                    self.exchange.stats.requests += 1
                    await on_text(msg.data)
                elif msg.type == WSMsgType.PING:
                    await self.ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    self._last_pong = time.monotonic()
                elif msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR):  # gone without a close
                    if not all(t.done() for t in self._streams):
                        self.exchange.stats.clients_left += 1
                    break
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING):
                    break
        except ConnectionResetError:
            self.exchange.stats.clients_left += 1
        finally:
            await _cancel([*self._streams, *([pinger] if pinger else [])])

    async def _ping(self, interval: float, limit: float) -> None:
        while not self.ws.closed:
            await asyncio.sleep(interval)
            if time.monotonic() - self._last_pong > limit:
                self.exchange.stats.pong_timeouts += 1
                await self.ws.close(code=1008, message=b"no pong to the server's pings")
                return
            with contextlib.suppress(ConnectionResetError):
                await self.ws.ping(b"replay")
                self.exchange.stats.pings_sent += 1

    def stream(
        self,
        rec: Recording,
        route: Route,
        keys: Iterable[Hashable],
        transform: Callable[[bytes], bytes] | None = None,
    ) -> None:
        """Start streaming ``rec``; it serves ``keys`` (taken over from any older stream)."""
        token = len(self._streams) + 1
        for key in keys:
            self.subs[key] = token
        task = asyncio.create_task(self._run(rec, route, token, transform))
        self._streams.append(task)
        task.add_done_callback(self._ended)

    def serves(self, token: int) -> bool:
        return token in self.subs.values()

    def _serving(self, key: Hashable, token: int) -> bool:
        """Stream ``token`` still serves frames of ``key`` (ALWAYS: while it serves anything)."""
        return self.serves(token) if key is ALWAYS else self.subs.get(key) == token

    async def _run(
        self, rec: Recording, route: Route, token: int, transform: Callable[[bytes], bytes] | None
    ) -> None:
        ex, ws = self.exchange, self.ws
        f = ex.faults
        start, first_ns, sent = time.monotonic(), None, 0
        try:
            for frame, at_ns in zip(rec.frames, rec.times_ns, strict=True):
                key = route(frame)
                if key is None or not self._serving(key, token):
                    continue
                if ex.rate:
                    await _until(start + sent / ex.rate)
                elif ex.speed:
                    first_ns = at_ns if first_ns is None else first_ns
                    delay = start + (at_ns - first_ns) / 1e9 / ex.speed - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif sent % 256 == 255:
                    await asyncio.sleep(0)
                if not self._serving(key, token):
                    continue  # unsubscribed while waiting: its answer was the last frame
                if ws.closed:
                    return
                sent += 1
                out = transform(frame) if transform else frame
                if f.corrupt and sent == f.corrupt:
                    out = b"\x00corrupted frame\x00"
                if f.bad_checksum and b'"c":"' in out:
                    ex.checksummed += 1
                    if ex.checksummed == f.bad_checksum:  # once for the whole exchange
                        out = _CHECKSUM.sub(b'"c":"1"', out, count=1)
                await ws.send_str(out.decode("utf-8", "replace"))
                ex.stats.frames_sent += 1
                if f.stall_after and sent == f.stall_after:
                    await asyncio.sleep(f.stall_s)
                if f.close_after and sent >= f.close_after:
                    await ws.close(code=1011, message=b"fault injected: close")
                    return
            if ex.speed and not ex.rate and rec.times_ns:  # a stream ends when its recording does,
                first_ns = rec.times_ns[0] if first_ns is None else first_ns  # even if it sent nothing
                await asyncio.sleep(start + (rec.times_ns[-1] - first_ns) / 1e9 / ex.speed - time.monotonic())
        except ConnectionResetError:  # the client left mid-stream: normal, counted
            ex.stats.clients_left += 1
            await ws.close()

    def _ended(self, task: asyncio.Task[None]) -> None:
        """With ``loop``, a connection ends (1000) when the first of its recordings that still serves a
        subscription ends: every recording restarts at the reconnect, so none of its symbols falls
        silent while a longer recording plays on. Unpaced (``speed`` max or ``rate``), recordings end
        by frame count, not time: the connection then ends once all of them have."""
        ex, streams = self.exchange, self._streams
        if not ex.loop or self.ws.closed or task.cancelled():
            return
        paced = ex.speed and not ex.rate
        if self.serves(streams.index(task) + 1) if paced else all(t.done() for t in streams):
            ex.spawn(self.ws.close(code=1000, message=b"end of recording: reconnect"))


class ReplayExchange:
    """Serve the embedded recordings on ``host:port`` (port 0: any free port; see ``.port``)."""

    def __init__(
        self,
        *,
        speed: float = 1.0,
        rate: float = 0.0,
        loop: bool = True,
        faults: Faults = Faults(),
        pings: dict[str, tuple[float, float]] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        from tickrelay.replay import binance, coinbase, coinbase_advanced, kraken  # they use Session

        self.speed = speed
        self.rate = rate
        if rate:
            _fine_timers()
        self.loop = loop
        self.faults = faults
        self.pings = pings or dict(PINGS)
        self.tls = tls
        self.stats = ExchangeStats()
        self.checksummed = 0  # frames with a book checksum sent (for the bad-checksum fault)
        self.port = 0
        self._background: set[asyncio.Future[Any]] = set()  # fire-and-forget work (kept referenced)
        self._runner: web.AppRunner | None = None
        self._venues = (
            coinbase.Coinbase(self),
            coinbase_advanced.CoinbaseAdvanced(self),
            binance.Binance(self),
            kraken.Kraken(self),
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        for venue in self._venues:
            for path, handler in venue.routes().items():
                app.router.add_get(path, handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self.tls)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def refusal(self) -> int:
        """The HTTP status the http429 / http418 faults refuse this REST request with (0: serve it):
        429 for the first N requests, then 418 for every one with http418."""
        if self.stats.http429_sent < self.faults.http429:
            self.stats.http429_sent += 1
            return 429
        if self.faults.http418:
            self.stats.http418_sent += 1
            return 418
        return 0

    def url(self, path: str) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/{path}"

    def spawn(self, work: Any) -> None:
        future = asyncio.ensure_future(work)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    async def session(self, request: web.Request, venue: str) -> Session:
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 22)
        await ws.prepare(request)
        self.stats.connections += 1
        return Session(self, ws, venue)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Stop a connection's tasks (the client left or the server stops)."""
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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
