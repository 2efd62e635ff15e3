"""WebSocket clients for the collectors: frames/s received from a real server process on loopback.

    python3 bench/wsclient.py [--runs 5] [--json]

The server is a minimal WebSocket server in its own process: it answers the upgrade and sends the
embedded Binance session (41,248 text frames) pre-framed in one `sendall`, so its own cost is close to
nothing and the clients are what is measured (the replay exchange itself, on aiohttp, tops out near
110k frames/s). Each client receives every frame and takes its payload as bytes, which is what a
collector hands to the venue feed, on uvloop. For scale, the same frames through the Binance venue
feed (parse, books, checks) are timed too: the client is chosen against that per-frame budget.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp
import picows
import uvloop

from tickrelay.replay import recordings
from tickrelay.venues.binance import BinanceFeed


FRAMES = 41248
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def aiohttp_client(url: str) -> int:
    n = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=1 << 24) as ws:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                msg.data.encode()
                n += 1
    return n


class _Listener(picows.WSListener):
    def __init__(self) -> None:
        self.n = 0

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type == picows.WSMsgType.TEXT:
            frame.get_payload_as_bytes()
            self.n += 1
        elif frame.msg_type == picows.WSMsgType.CLOSE:
            transport.disconnect()


async def picows_client(url: str) -> int:
    transport, listener = await picows.ws_connect(_Listener, url, max_frame_size=1 << 24)
    await transport.wait_disconnected()
    return int(listener.n)


def _time(client: str, url: str) -> tuple[float, int]:
    coro = aiohttp_client(url) if client == "aiohttp" else picows_client(url)
    start = time.perf_counter()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        n = runner.run(coro)
    return n / (time.perf_counter() - start), n


def serve(port_file: Path) -> None:
    """The server process: answer each WebSocket upgrade, send every recorded frame, then close."""
    wire = bytearray()
    for frame in recordings.load(*recordings.BINANCE).frames:
        n = len(frame)
        wire += (bytes((0x81, n)) if n < 126 else bytes((0x81, 126)) + n.to_bytes(2, "big")) + frame
    wire += b"\x88\x02\x03\xe8"  # close, code 1000
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port_file.write_text(str(listener.getsockname()[1]))
    while True:
        conn, _ = listener.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + wire
        )
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            while conn.recv(4096):  # the client's close frame, then EOF
                pass
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    with TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        url = f"ws://127.0.0.1:{port_file.read_text()}/"
    results: dict[str, dict[str, float]] = {}
    try:
        for client in ("aiohttp", "picows"):
            _time(client, url)  # warm-up
            rates = []
            for _ in range(args.runs):
                rate, n = _time(client, url)
                assert n == FRAMES, (client, n)
                rates.append(rate)
            results[client] = {"frames_per_s": statistics.median(rates), "min": min(rates), "max": max(rates)}
    finally:
        server.kill()
        server.wait()
    frames = recordings.load(*recordings.BINANCE).frames
    feed_rates = []
    for _ in range(args.runs):
        feed, start = BinanceFeed(), time.perf_counter()
        for i, frame in enumerate(frames):
            feed.on_frame(frame, i)
        feed_rates.append(len(frames) / (time.perf_counter() - start))
    report = {
        "clients": results,
        "binance_feed_frames_per_s": statistics.median(feed_rates),
        "runs": args.runs,
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
