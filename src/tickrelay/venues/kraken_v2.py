"""Kraken WebSocket v2: channel messages, decoded and applied. Pure: no I/O.

Docs: https://docs.kraken.com/api/docs/websocket-v2/book. Frames are objects with ``channel``:
``book`` (snapshot/update with ``checksum``; numbers are JSON numbers whose text is kept, never a
float), ``trade``, ``ticker``, ``instrument`` (price/qty precisions, which the v2 checksum formats
with), ``heartbeat``, ``status``; ``method`` answers are objects without a channel (``kraken_v1``).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from tickrelay.errors import VenueMessageError
from tickrelay.protocol.messages import Event, Quote, Side, Trade
from tickrelay.venues.feed import SPOT, Reject, decode
from tickrelay.venues.kraken_book import NAME, VENUE, KrakenBooks
from tickrelay.venues.kraken_v1 import OBJECT, Object
from tickrelay.venues.numbers import parse_time_ns


_BUY, _SELL = int(Side.BUY), int(Side.SELL)


class _V2Level(msgspec.Struct):
    price: msgspec.Raw  # JSON number: its text is kept
    qty: msgspec.Raw


class _V2Book(msgspec.Struct):
    symbol: str
    bids: list[_V2Level] = []
    asks: list[_V2Level] = []
    checksum: int | None = None
    timestamp: str | None = None


class _V2Trade(msgspec.Struct):
    symbol: str
    side: str  # the taker's side: "buy" / "sell"
    price: msgspec.Raw
    qty: msgspec.Raw
    timestamp: str


class _V2Ticker(msgspec.Struct):
    symbol: str
    bid: msgspec.Raw
    bid_qty: msgspec.Raw
    ask: msgspec.Raw
    ask_qty: msgspec.Raw
    timestamp: str | None = None


# decimal places: what InstrumentMeta's decimals byte carries; any other number rejects the frame
_Precision = Annotated[int, msgspec.Meta(ge=0, le=255)]


class _V2Pair(msgspec.Struct):
    symbol: str
    price_precision: _Precision
    qty_precision: _Precision


class _V2Instruments(msgspec.Struct):
    pairs: list[_V2Pair] = []


class V2Data(msgspec.Struct):
    channel: str
    type: str
    data: Any  # list[_V2Book] | list[_V2Trade] | list[_V2Ticker] | _V2Instruments | None


_V2_DATA: dict[str, msgspec.json.Decoder[Any]] = {
    "book": msgspec.json.Decoder(list[_V2Book]),
    "trade": msgspec.json.Decoder(list[_V2Trade]),
    "ticker": msgspec.json.Decoder(list[_V2Ticker]),
    "instrument": msgspec.json.Decoder(_V2Instruments),
}


def decode_v2(obj: Object) -> V2Data | Reject:
    """An object frame with a ``channel`` -> its typed v2 message, or why it is rejected. Pure."""
    channel = obj.channel or ""
    decoder = _V2_DATA.get(channel)
    if decoder is None:
        return V2Data(channel, obj.type, None)
    data = decode(decoder, obj.data)
    if data is None or isinstance(data, Reject):
        return data or Reject(f"bad_{channel}")
    return V2Data(channel, obj.type, data)


def _text(raw: msgspec.Raw) -> str:
    return bytes(raw).decode()


class KrakenV2(KrakenBooks):
    """The v2 messages of a Kraken connection."""

    def load_instruments(self, body: bytes) -> None:
        """Precisions from a v2 ``instrument`` channel message (also taken from the live feed).

        Raises:
            VenueMessageError: ``body`` is not an instrument message.
        """
        obj = decode(OBJECT, body)
        frame = decode_v2(obj) if isinstance(obj, Object) and obj.channel else None
        if not isinstance(frame, V2Data) or not isinstance(frame.data, _V2Instruments):
            raise VenueMessageError(NAME, body, "not a v2 instrument message")
        self._take_instruments(frame.data)

    def _v2(self, m: V2Data, raw: bytes, out: list[Event]) -> None:
        fixed = self._fixed
        channel = m.channel
        if channel == "book":
            books = []
            seen: set[str] = set()
            for book in m.data:  # every book of the frame read before any changes
                if book.symbol in seen:  # Kraken sends one book a pair: a second would be applied to
                    self._fixed.discard()  # the book the first left, dark if the first's checksum failed
                    self.stats.reject("duplicate_book", raw)
                    return
                seen.add(book.symbol)
                p = self._lookup(book.symbol) if m.type == "snapshot" else self._pairs.get(book.symbol)
                if p is None or not (p.live or m.type == "snapshot"):
                    self._fixed.discard()  # the books read before this one rounded for nothing
                    self.stats.reject("book_update_before_snapshot", raw)
                    return
                bids = [[_text(lv.price), _text(lv.qty)] for lv in book.bids]
                asks = [[_text(lv.price), _text(lv.qty)] for lv in book.asks]
                ts = parse_time_ns(book.timestamp) if book.timestamp else 0
                books.append(
                    (p, book, self._read(p, bids), self._read(p, asks), ts, (bids or asks or [[]])[0])
                )
            for p, book, read_bids, read_asks, ts, lead in books:
                if m.type == "snapshot":
                    p = self._keep(p)
                    p.v2 = True
                    p.announce(VENUE, lead[0] if lead else None, lead[1] if lead else None, out, p.precision)
                    self._load(p, read_bids, read_asks, out)
                    self._check(p, book.checksum, raw, out)
                else:
                    self._update(p, read_bids, read_asks, book.checksum, ts, raw, out)
        elif channel == "trade":
            for t in m.data:
                if t.side not in ("buy", "sell"):
                    raise ValueError(f"trade side {t.side!r}")
            trades = [
                (fixed.positive(_text(t.price)), fixed.positive(_text(t.qty)), parse_time_ns(t.timestamp))
                for t in m.data
            ]
            pairs = [self._lookup(t.symbol) for t in m.data]
            for t, values, found in zip(m.data, trades, pairs, strict=True):
                p = self._keep(found)
                p.announce(VENUE, _text(t.price), _text(t.qty), out, p.precision)
                out.append(Trade(p.asset_id, *values, VENUE, SPOT, _BUY if t.side == "buy" else _SELL))
        elif channel == "ticker":
            quotes = [
                (
                    fixed(_text(tk.bid)),
                    fixed(_text(tk.bid_qty)),
                    fixed(_text(tk.ask)),
                    fixed(_text(tk.ask_qty)),
                    parse_time_ns(tk.timestamp) if tk.timestamp else 0,
                )
                for tk in m.data
            ]
            pairs = [self._lookup(tk.symbol) for tk in m.data]
            for tk, quote, found in zip(m.data, quotes, pairs, strict=True):
                p = self._keep(found)
                p.announce(VENUE, _text(tk.bid), _text(tk.bid_qty), out, p.precision)
                out.append(Quote(p.asset_id, *quote, VENUE, SPOT))
        elif channel == "instrument":
            self._take_instruments(m.data)
            self.stats.ignored["instrument"] += 1
        elif channel in ("heartbeat", "status"):
            self.stats.ignored[channel] += 1
        else:
            self.stats.reject(f"unknown_channel:{channel}", raw)

    def _take_instruments(self, instruments: _V2Instruments) -> None:
        for pair in instruments.pairs:
            self._precisions[pair.symbol] = (pair.price_precision, pair.qty_precision)
            if pair.symbol in self._pairs:
                self._pairs[pair.symbol].precision = (pair.price_precision, pair.qty_precision)
