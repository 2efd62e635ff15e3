"""``replay-exchange --tls``: wss:// and https:// with a certificate made at start, trusted by clients
through SSL_CERT_FILE alone (the clients' own default SSL contexts, nothing patched)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


ME = [sys.executable, "-m", "tickrelay"]
CLIENT = """
import asyncio, json, sys, aiohttp, picows
port = sys.argv[1]

class Listener(picows.WSListener):
    frames = []
    def on_ws_frame(self, transport, frame):
        if frame.msg_type == picows.WSMsgType.TEXT:
            self.frames.append(frame.get_payload_as_bytes())

async def main():
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"wss://127.0.0.1:{port}/kraken/v2") as ws:
            print(json.loads(await ws.receive_str())["channel"])
        r = await s.get(f"https://localhost:{port}/binance/api/v3/exchangeInfo")
        print(r.status, (await r.json())["symbols"][0]["symbol"])
    transport, listener = await picows.ws_connect(Listener, f"wss://127.0.0.1:{port}/binance/ws/btcusdt@trade")
    while not listener.frames:
        await asyncio.sleep(0.05)
    print(json.loads(listener.frames[0])["e"])
    transport.disconnect()

asyncio.run(main())
"""


def test_tls_clients_trust_the_printed_ca_through_ssl_cert_file() -> None:
    proc = subprocess.Popen(
        [*ME, "replay-exchange", "--port", "0", "--tls"], stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    banner, trust = proc.stderr.readline(), proc.stderr.readline()
    port = banner.split("wss://127.0.0.1:")[1].split("/")[0]
    assert f"https://127.0.0.1:{port}/coinbase/products" in banner
    ca = Path(trust.split("SSL_CERT_FILE=", 1)[1].split()[0])
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    try:
        env = {**os.environ, "SSL_CERT_FILE": str(ca)}
        run = subprocess.run(
            [sys.executable, "-c", CLIENT, port], env=env, capture_output=True, text=True, timeout=60
        )
        assert run.stdout.split("\n") == ["status", "200 BTCUSDT", "trade", ""], run.stderr
        env.pop("SSL_CERT_FILE")  # the certificate is really checked: without the CA no client connects
        refused = subprocess.run(
            [sys.executable, "-c", CLIENT, port], env=env, capture_output=True, text=True, timeout=60
        )
        assert refused.returncode != 0
        assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert not ca.exists()  # made for the run, removed with it
