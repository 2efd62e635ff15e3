"""Run python-kraken-sdk's v2 order book client against the replay exchange: only its addresses point
there. Prints the book updates it took, how many failed its checksum, and its final best bid/ask."""

import asyncio
import json
import sys
import time
from decimal import Decimal

from kraken.spot import Market, SpotOrderBookClient


host = sys.argv[1]
SpotOrderBookClient.WS_URL = f"wss://{host}/kraken"  # the SDK appends /v2
Market.URL = f"https://{host}"  # AssetPairs, for the checksum's decimal places


class Book(SpotOrderBookClient):
    updates, invalid, last = 0, 0, time.monotonic()

    async def on_book_update(self, pair: str, message: dict) -> None:
        if "error" in message:
            Book.invalid += 1
        else:
            Book.updates += 1
        Book.last = time.monotonic()


async def main() -> None:
    client = Book(depth=10)
    await client.start()
    await client.add_book(pairs=["BTC/USD"])
    while not Book.updates or time.monotonic() - Book.last < 3:  # noqa: ASYNC110 - until it is over
        await asyncio.sleep(0.1)
    book = client.get("BTC/USD") or {"bid": {}, "ask": {}}
    top = [str(max(map(Decimal, book["bid"]))), str(min(map(Decimal, book["ask"])))]
    print(json.dumps({"updates": Book.updates, "invalid": Book.invalid, "top": top}), flush=True)
    await client.close()


asyncio.run(main())
