"""Binance spot market streams: wire schema, parsing and integrity-checked books. Pure: no I/O.

Docs: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams (stream payloads,
"How to manage a local order book correctly"). Binance.US sends the same payloads.

Frames come as combined streams (``{"stream":"btcusdt@trade","data":{...}}``) or raw streams (the
event object alone). What each becomes:

* ``trade`` / ``aggTrade`` -> Trade. exec_ts_ns = ``T`` (trade time, ms) x 10^6. ``m`` is "the buyer
  is the market maker": then the *seller* hit the bid, so the aggressor side is SELL (``m`` false ->
  BUY).
* ``bookTicker`` -> Quote. Spot bookTicker carries no time, only the book update id ``u``, so
  ``quote_ts_ns`` is 0 ("none", as in the other TLVs); the message header's timestamp_ns is the receipt
  time. ``u`` is used to cross-check the depth book (below).
* ``depthUpdate`` (+ the REST ``/api/v3/depth`` snapshot, which the collector fetches: see
  :meth:`BinanceFeed.wants_snapshot` / :meth:`BinanceFeed.on_snapshot`) -> L2Snapshot on each (re)sync,
  then one L2Delta per applied diff (first_seq = ``U``, last_seq = ``u``, exchange_ts_ns = ``E`` ms).
* ``kline``: ignored by design (counted). Subscription acks ``{"result":null,"id":N}``: ignored.
  Error frames (``{"error":{..},"id":N}`` or ``{"code":..,"msg":..}``): rejected as ``venue_error``
  and counted in ``stats.venue_errors``. Anything else: rejected by reason, sample kept.

Books, per symbol (one symbol's trouble never touches another): diffs buffered until the REST
snapshot, the straddle, continuity (a gap or a crossed book invalidates that asset and asks for a new
snapshot), and the bookTicker cross-check: ``venues.binance_book``.

Symbols: ``NKNUSDT`` -> ``NKN/USDT`` by the longest matching quote-asset suffix
(``binance_wire.QUOTE_ASSETS``); a symbol with no known quote asset is rejected (``unknown_symbol``).
The suffix rule can misread (``BNBUSD`` reads as ``BN/BUSD``): pass the pairs from
``/api/v3/exchangeInfo`` as ``pairs`` to be exact. InstrumentMeta precedes the first message of each
instrument; its price/size decimals are the number of places in the first price/size text seen
(Binance pads to 8), 255 when that message carries none.

One module per job (this one was split, its names kept):

* ``venues.binance`` (here): ``BinanceFeed``, the ``VenueFeed`` contract, frame dispatch
  (``on_frame``, ``_general``, ``_dispatch``), the REST snapshot hand-off (``wants_snapshot``,
  ``snapshot_url``, ``on_snapshot``) and the instruments (``_lookup``, ``_keep``);
* ``venues.binance_book``: ``_Instrument``, the book states, ``BUFFER_LIMIT`` / ``TICKER_LIMIT`` /
  ``DIFF_TOPS_KEPT``, and the mixin ``BinanceBooks`` (``_diff``, ``_check_tickers``,
  ``_cross_check_later``, ``_cross_check``, ``_drop_book``, ``_invalidate``, ``_publish_snapshot``);
* ``venues.binance_numbers``: ``FIXED_CACHE_LIMIT`` and the mixin ``BinanceNumbers`` (``_fixed``,
  ``_levels``, ``_quote``: decimal texts to fixed point, the 8-place fast paths);
* ``venues.binance_wire``: the wire schema, its decoders, ``VENUE`` and the symbol rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar
from urllib.parse import urlencode

import msgspec

from tickrelay.config import Config
from tickrelay.errors import FixedPointError, SymbolError, VenueMessageError
from tickrelay.protocol.messages import MAX_SNAPSHOT_LEVELS, Event, Side, Trade
from tickrelay.venues.binance_book import _LIVE, _PENDING, _WAIT, BinanceBooks, _Instrument
from tickrelay.venues.binance_numbers import BinanceNumbers
from tickrelay.venues.binance_wire import (
    _COMBINED_DECODERS,
    _COMBINED_PREFIX,
    _DATA_DECODERS,
    _ENVELOPE_DECODER,
    _EVENT_KINDS,
    _LEVELS_DECODER,
    _SNAPSHOT_DECODER,
    VENUE,
    _BookTicker,
    _DepthUpdate,
    _Kline,
    _Payload,
    normalize_symbol,
    stream_kind,
)
from tickrelay.venues.feed import SPOT, NativeSpec, Reject, RestBudget, VenueFeed, decode, disconnect


NAME = "binance"
URL = "wss://stream.binance.com:9443/stream"

MAX_DIFF_LEVELS = MAX_SNAPSHOT_LEVELS  # 4093, as many as one L2Delta TLV holds: a bigger diff is rejected

_BUY, _SELL = int(Side.BUY), int(Side.SELL)
_MS = 1_000_000
_SUBSCRIBE_ENCODER = msgspec.json.Encoder()


class BinanceFeed(BinanceBooks, BinanceNumbers):
    """One Binance spot connection's parsing state (implements ``VenueFeed``).

    Args:
        symbols: venue symbols for :meth:`subscribe_messages` (trade, bookTicker, depth@100ms each);
            empty when the connection URL already names the streams.
        pairs: venue symbol -> normalized ``BASE/QUOTE`` (exchangeInfo); overrides the suffix rule.
    """

    NAME: ClassVar[str] = NAME
    VENUE_ID: ClassVar[int] = VENUE
    SNAPSHOTS: ClassVar[bool] = True
    # https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits: REQUEST_WEIGHT 6000 per
    # minute and IP (exchangeInfo's rateLimits), /api/v3/depth at limit=1000 weighs 50, and every
    # answer carries the weight used in X-MBX-USED-WEIGHT-1M
    REST_BUDGET: ClassVar[RestBudget | None] = RestBudget(6000, 50, "X-MBX-USED-WEIGHT-1M")

    def __init__(self, symbols: Sequence[str] = (), pairs: Mapping[str, str] | None = None) -> None:
        BinanceBooks.__init__(self)
        BinanceNumbers.__init__(self)
        self.symbols = tuple(symbols)
        self.pairs = dict(pairs or {})
        self._stream_kinds: dict[bytes, str] = {}

    # ---- VenueFeed --------------------------------------------------------------------------

    def subscribe_messages(self) -> list[bytes]:
        if not self.symbols:
            return []
        streams = [
            f"{s.lower()}@{kind}" for s in self.symbols for kind in ("trade", "bookTicker", "depth@100ms")
        ]
        return [_SUBSCRIBE_ENCODER.encode({"method": "SUBSCRIBE", "params": streams, "id": 1})]

    def on_frame(self, raw: bytes, ts_recv_ns: int) -> list[Event]:
        self.stats.frames += 1
        if raw.startswith(_COMBINED_PREFIX):  # fast path: one typed decode of the whole frame
            end = raw.find(b'"', 11)
            name = raw[11:end]
            kind = self._stream_kinds.get(name)
            if kind is None:
                kind = stream_kind(name.decode("utf-8", "replace"))
                self._stream_kinds[name] = kind
            decoder = _COMBINED_DECODERS.get(kind)
            if decoder is not None:
                combined = decode(decoder, raw)  # None: another key order, or bad: classified below
                if combined is not None and not isinstance(combined, Reject):
                    return self._dispatch(combined.data, raw)
        return self._general(raw)

    @classmethod
    def from_settings(cls, config: Config) -> VenueFeed:
        return cls()  # the URL names the streams: no subscribe frames

    @staticmethod
    def url(config: Config) -> str:
        kinds = ("trade", "bookTicker", "depth@100ms")
        streams = "/".join(f"{s.lower()}@{k}" for s in config.binance.symbols for k in kinds)
        return f"{config.binance.ws_url.rstrip('/')}/stream?streams={streams}"

    @staticmethod
    def rest_url(config: Config) -> str:
        return config.binance.rest_url

    def take_requests(self) -> list[bytes]:
        return []  # a book that fails its checks asks for a REST snapshot instead

    def native_spec(self) -> NativeSpec | None:
        """The compiled twin (``native/core/src/venues/binance.rs``); ``pairs`` flattened to venue symbol,
        pair, venue symbol, pair, ... (the parameters are str lists)."""
        return "binance", {"pairs": [text for pair in self.pairs.items() for text in pair]}

    def on_disconnect(self, ts_ns: int) -> list[Event]:
        """Every book is gone: one StateInvalidation for the whole venue, an L2Reset per book."""
        books = [inst for inst in self._instruments.values() if inst.stats is not None]  # had a book
        for inst in books:
            inst.live = inst.state != _WAIT  # disconnect() counts a resync for each
        out = disconnect(VENUE, books)
        for inst in self._instruments.values():
            inst.buffer = []
        for inst in books:
            self._drop_book(inst)
        return out

    # ---- REST snapshot hand-off (the collector does the HTTP) ---------------------------------

    def wants_snapshot(self) -> list[str]:
        """Venue symbols whose book needs a REST ``/api/v3/depth`` snapshot now, in order of asking."""
        return list(self._wanted)

    @property
    def snapshot_wanted(self) -> bool:
        return bool(self._wanted)

    def snapshot_url(self, base: str, key: str) -> str:
        return f"{base.rstrip('/')}/api/v3/depth?" + urlencode({"symbol": key, "limit": "1000"})

    def on_snapshot(self, symbol: str, body: bytes, ts_recv_ns: int) -> list[Event]:
        """Load a REST depth snapshot body for ``symbol`` and replay the buffered diffs over it.

        A snapshot for a symbol whose book is live is not needed and returns nothing.

        Raises:
            VenueMessageError: the body is not a depth snapshot, or the symbol is unknown; the symbol
                keeps asking for a snapshot.
        """
        snap = decode(_SNAPSHOT_DECODER, body)
        if snap is None or isinstance(snap, Reject):
            raise VenueMessageError(NAME, body, f"depth snapshot for {symbol}: not a depth snapshot")
        try:  # the reasons are fixed phrases (the compiled core gives the same ones)
            why = "unknown symbol"
            inst = self._lookup(symbol)
            why = "levels that are not [[price, quantity], ...] amounts"
            bids = self._levels(snap.bids)
            asks = self._levels(snap.asks)
            first = _LEVELS_DECODER.decode(snap.bids) or _LEVELS_DECODER.decode(snap.asks)
        except (msgspec.DecodeError, SymbolError, FixedPointError):
            self._rounded = 0
            raise VenueMessageError(NAME, body, f"depth snapshot for {symbol}: {why}") from None
        self.stats.rounded += self._rounded
        self._rounded = 0
        inst = self._keep(inst)
        stats = inst.book_stats(self.stats)
        if inst.state == _LIVE:
            return []
        inst.depth_seen = True
        inst.book.load(bids, asks)
        inst.state = _PENDING
        inst.last_u = snap.lastUpdateId
        self._wanted.pop(symbol, None)
        out: list[Event] = []
        lead = first[0] if first else (None, None)
        inst.announce(VENUE, lead[0], lead[1], out)
        buffered, inst.buffer = inst.buffer, []
        for diff in buffered:
            self._diff(inst, stats, diff, out)
        self.stats.count(out)
        return out

    # ---- parsing ------------------------------------------------------------------------------

    def _general(self, raw: bytes) -> list[Event]:
        env = decode(_ENVELOPE_DECODER, raw)
        if env is None or isinstance(env, Reject):
            self.stats.reject((env or Reject("invalid_json")).reason, raw)
            return []
        if env.error or env.code is not None:
            self.stats.venue_errors += 1
            self.stats.reject("venue_error", raw)
            return []
        if env.stream is not None and env.data:
            kind, body = stream_kind(env.stream), bytes(env.data)
        elif env.e is not None:
            kind, body = _EVENT_KINDS.get(env.e, env.e), raw
        elif env.u is not None:
            kind, body = "bookTicker", raw
        elif env.id is not None:
            self.stats.ignored["subscription_ack"] += 1
            return []
        else:
            self.stats.reject("unknown_shape", raw)
            return []
        decoder = _DATA_DECODERS.get(kind)
        if decoder is None:
            self.stats.reject(f"unknown_kind:{kind}", raw)
            return []
        payload = decode(decoder, body)
        if payload is None or isinstance(payload, Reject):
            self.stats.reject((payload or Reject(f"invalid_{kind}")).reason, raw)
            return []
        return self._dispatch(payload, raw)

    def _dispatch(self, payload: _Payload, raw: bytes) -> list[Event]:
        if isinstance(payload, _Kline):
            self.stats.ignored["kline"] += 1
            return []
        out: list[Event] = []
        found = self._instruments.get(payload.s)
        try:  # read every value first (symbol, numbers, levels): a bad one changes nothing
            inst = found or self._lookup(payload.s)
            if isinstance(payload, _BookTicker):
                quote = self._quote(inst, payload)
            elif isinstance(payload, _DepthUpdate):
                levels = self._levels
                diff = (payload.U, payload.u, payload.E * _MS, levels(payload.b), levels(payload.a))
                if len(diff[3]) + len(diff[4]) > MAX_DIFF_LEVELS:
                    self._rounded = 0
                    self.stats.reject("too_many_levels", raw)
                    return []
            else:
                price, volume = self._fixed(payload.p), self._fixed(payload.q)
                if not price or not volume:
                    raise FixedPointError(f"a trade of price {payload.p!r}, quantity {payload.q!r}")
        except SymbolError:
            self.stats.reject("unknown_symbol", raw)
            return []
        except FixedPointError:
            self._rounded = 0
            self.stats.reject("bad_number", raw)
            return []
        except msgspec.DecodeError:  # depth levels are decoded lazily, after the envelope
            self._rounded = 0  # the bids may have been read (and rounded) before the asks failed
            self.stats.reject("invalid_depth", raw)
            return []
        if self._rounded:
            self.stats.rounded += self._rounded
            self._rounded = 0
        if found is None:
            inst = self._keep(inst)
        if isinstance(payload, _BookTicker):
            if not inst.announced:
                inst.announce(VENUE, payload.b, payload.B, out)
            out.append(quote)
            if inst.depth_seen:
                self._cross_check_later(inst, payload.u, quote)
        elif isinstance(payload, _DepthUpdate):
            ignored = self._diff(inst, inst.stats or inst.book_stats(self.stats), diff, out)
            if ignored is not None:
                self.stats.ignored[ignored] += 1
                return []
        else:
            inst.announce(VENUE, payload.p, payload.q, out)
            out.append(
                Trade(
                    inst.asset_id, price, volume, payload.T * _MS, VENUE, SPOT, _SELL if payload.m else _BUY
                )
            )
        self.stats.count(out)
        return out

    def _lookup(self, venue_symbol: str) -> _Instrument:
        """The instrument of that symbol, or a new one not yet kept (SymbolError: no such pair)."""
        inst = self._instruments.get(venue_symbol)
        if inst is None:
            symbol = self.pairs.get(venue_symbol) or normalize_symbol(venue_symbol)
            inst = _Instrument(venue_symbol, symbol)
        return inst

    def _keep(self, inst: _Instrument) -> _Instrument:
        return self._instruments.setdefault(inst.venue_symbol, inst)
