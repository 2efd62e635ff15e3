"""Run cryptofeed against the replay exchange: only its endpoint addresses point there. Prints, per
symbol, the book updates that carried a checksum (Kraken) or all updates, and the final best bid/ask."""

import asyncio
import json
import sys
import time

from cryptofeed import FeedHandler
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
from cryptofeed.defines import L2_BOOK
from cryptofeed.exchanges import Binance, Kraken


venue, host, symbols = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
if venue == "kraken":
    Feed = Kraken
    Kraken.websocket_endpoints = [WebsocketEndpoint(f"wss://{host}/kraken", limit=20)]
    Kraken.rest_endpoints = [RestEndpoint(f"https://{host}/kraken", routes=Routes("/0/public/AssetPairs"))]
else:
    Feed = Binance
    Binance.websocket_endpoints = [WebsocketEndpoint(f"wss://{host}/binance")]
    Binance.rest_endpoints = [
        RestEndpoint(
            f"https://{host}/binance",
            routes=Routes("/api/v3/exchangeInfo", l2book="/api/v3/depth?symbol={}&limit={}"),
        )
    ]
seen, last = {}, [time.monotonic()]


async def book(b, receipt):
    s = seen.setdefault(b.symbol, {"updates": 0, "checksums": 0})
    s["updates"] += 1
    s["checksums"] += b.checksum is not None
    s["best_bid"] = str(b.book.bids.index(0)[0])
    s["best_ask"] = str(b.book.asks.index(0)[0])
    last[0] = time.monotonic()


async def main():
    fh = FeedHandler(config={"log": {"filename": "/dev/null", "level": "WARNING"}})
    fh.add_feed(
        Feed(symbols=symbols, channels=[L2_BOOK], callbacks={L2_BOOK: book}, checksum_validation=True)
    )
    fh.run(start_loop=False)
    while not seen or time.monotonic() - last[0] < 3:  # noqa: ASYNC110 - until the recording has played out
        await asyncio.sleep(0.1)
    print(json.dumps(seen), flush=True)


asyncio.set_event_loop(asyncio.new_event_loop())
asyncio.get_event_loop().run_until_complete(main())
