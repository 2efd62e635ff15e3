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

Books, per symbol (one symbol's trouble never touches another): diffs are buffered until the snapshot
is there; diffs with ``u <= lastUpdateId`` are dropped; the first applied diff must straddle
``lastUpdateId + 1`` (``U <= lastUpdateId + 1 <= u``); afterwards every diff must have
``U == previous u + 1``. A gap (or a crossed book) publishes StateInvalidation + L2Reset for that
asset only, counts it, and the symbol asks for a new snapshot. A snapshot older than the buffered
diffs (first diff starts after ``lastUpdateId + 1``) is discarded and asked for again (a resync, not
a gap: nothing was published from it).

Cross-check: when the book's last applied diff ends at update id ``u`` and a bookTicker carries the same
``u``, the book's best bid/ask (price and size) must equal the ticker's; ``cross_checks`` counts
``bookticker_matched`` / ``bookticker_mismatched``.

Symbols: ``NKNUSDT`` -> ``NKN/USDT`` by the longest matching quote-asset suffix
(``binance_wire.QUOTE_ASSETS``); a symbol with no known quote asset is rejected (``unknown_symbol``).
The suffix rule can misread (``BNBUSD`` reads as ``BN/BUSD``): pass the pairs from
``/api/v3/exchangeInfo`` as ``pairs`` to be exact. InstrumentMeta precedes the first message of each
instrument; its price/size decimals are the number of places in the first price/size text seen
(Binance pads to 8), 255 when that message carries none. The wire schema, its decoders and the
symbol rule are ``venues.binance_wire``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar
from urllib.parse import urlencode

import msgspec

from tickrelay.config import Config
from tickrelay.errors import FixedPointError, SymbolError, VenueMessageError
from tickrelay.protocol.fixed import parse_fixed8_rounded
from tickrelay.protocol.messages import (
    MAX_SNAPSHOT_LEVELS,
    Event,
    L2Delta,
    Level,
    Quote,
    Reason,
    Side,
    Trade,
    split_snapshot,
)
from tickrelay.protocol.symbols import VenueId
from tickrelay.venues.binance_wire import (
    _COMBINED_DECODERS,
    _COMBINED_PREFIX,
    _DATA_DECODERS,
    _ENVELOPE_DECODER,
    _EVENT_KINDS,
    _LEVELS_8,
    _LEVELS_DECODER,
    _SNAPSHOT_DECODER,
    _BookTicker,
    _DepthUpdate,
    _Kline,
    _Payload,
    normalize_symbol,
    stream_kind,
)
from tickrelay.venues.feed import (
    SPOT,
    BookStats,
    FeedStats,
    Instrument,
    NativeSpec,
    Reject,
    RestBudget,
    VenueFeed,
    decode,
    disconnect,
    invalidate,
)
from tickrelay.venues.numbers import bounded


NAME = "binance"
URL = "wss://stream.binance.com:9443/stream"

BUFFER_LIMIT = 10_000  # diffs buffered per symbol while waiting for a snapshot; oldest dropped beyond
TICKER_LIMIT = 10_000  # bookTickers held per symbol for the cross-check until their diff arrives
FIXED_CACHE_LIMIT = 65_536  # memoized price/size texts per feed; cleared when full
DIFF_TOPS_KEPT = 64  # tops of the latest diffs, for bookTickers that arrive after their diff
MAX_DIFF_LEVELS = MAX_SNAPSHOT_LEVELS  # 4093, as many as one L2Delta TLV holds: a bigger diff is rejected

_VENUE = int(VenueId.BINANCE)
_BUY, _SELL = int(Side.BUY), int(Side.SELL)
_MS = 1_000_000
_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (hot path)


_Diff = tuple[int, int, int, tuple[Level, ...], tuple[Level, ...]]  # U, u, E in ns, bids, asks (parsed)
_SUBSCRIBE_ENCODER = msgspec.json.Encoder()


# ---- per-symbol state ---------------------------------------------------------------------------

_WAIT, _PENDING, _LIVE = 0, 1, 2  # book states: no snapshot / snapshot loaded, not yet straddled / live


class _Instrument(Instrument):
    """A symbol's book and its Binance continuity state (``live`` is unused: ``state`` says more)."""

    __slots__ = ("buffer", "depth_seen", "diff_tops", "last_u", "state", "tickers")

    def __init__(self, venue_symbol: str, symbol: str) -> None:
        super().__init__(venue_symbol, symbol)
        self.state = _WAIT
        self.last_u = 0  # lastUpdateId of the snapshot, then u of the last applied diff
        self.buffer: list[_Diff] = []
        self.depth_seen = False  # a diff or snapshot was seen: keep bookTickers for the cross-check
        self.tickers: dict[int, Quote] = {}  # bookTicker u -> Quote, until the diff ending at u
        self.diff_tops: dict[int, tuple[int, int, int, int]] = {}  # diff u -> top after it


class BinanceFeed:
    """One Binance spot connection's parsing state (implements ``VenueFeed``).

    Args:
        symbols: venue symbols for :meth:`subscribe_messages` (trade, bookTicker, depth@100ms each);
            empty when the connection URL already names the streams.
        pairs: venue symbol -> normalized ``BASE/QUOTE`` (exchangeInfo); overrides the suffix rule.
    """

    NAME: ClassVar[str] = NAME
    VENUE_ID: ClassVar[int] = _VENUE
    SNAPSHOTS: ClassVar[bool] = True
    # https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits: REQUEST_WEIGHT 6000 per
    # minute and IP (exchangeInfo's rateLimits), /api/v3/depth at limit=1000 weighs 50, and every
    # answer carries the weight used in X-MBX-USED-WEIGHT-1M
    REST_BUDGET: ClassVar[RestBudget | None] = RestBudget(6000, 50, "X-MBX-USED-WEIGHT-1M")

    def __init__(self, symbols: Sequence[str] = (), pairs: Mapping[str, str] | None = None) -> None:
        self.symbols = tuple(symbols)
        self.pairs = dict(pairs or {})
        self.stats = FeedStats()
        self.cross_checks = {"bookticker_matched": 0, "bookticker_mismatched": 0}
        self._instruments: dict[str, _Instrument] = {}
        self._stream_kinds: dict[bytes, str] = {}
        self._wanted: dict[str, None] = {}  # symbols needing a REST snapshot, in order of asking
        self._fixed_cache: dict[str, int] = {}  # decimal text -> fixed point (8-place texts only)
        self._rounded = 0  # values rounded in the frame being read

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

    def take_requests(self) -> list[bytes]:
        return []  # a book that fails its checks asks for a REST snapshot instead

    def native_spec(self) -> NativeSpec | None:
        return None  # no compiled twin yet: the Python feed runs whatever collector.core says

    def on_disconnect(self, ts_ns: int) -> list[Event]:
        """Every book is gone: one StateInvalidation for the whole venue, an L2Reset per book."""
        books = [inst for inst in self._instruments.values() if inst.stats is not None]  # had a book
        for inst in books:
            inst.live = inst.state != _WAIT  # disconnect() counts a resync for each
        out = disconnect(_VENUE, books)
        for inst in self._instruments.values():
            inst.buffer = []
        for inst in books:
            self._drop_book(inst)
        return out

    # ---- REST snapshot hand-off (the collector does the HTTP) ---------------------------------

    def wants_snapshot(self) -> list[str]:
        """Venue symbols whose book needs a REST ``/api/v3/depth`` snapshot now, in order of asking."""
        return list(self._wanted)

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
        try:
            inst = self._lookup(symbol)
            bids = self._levels(snap.bids)
            asks = self._levels(snap.asks)
            first = _LEVELS_DECODER.decode(snap.bids) or _LEVELS_DECODER.decode(snap.asks)
        except (msgspec.DecodeError, SymbolError, FixedPointError) as exc:
            self._rounded = 0
            raise VenueMessageError(NAME, body, f"depth snapshot for {symbol}: {exc}") from None
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
        inst.announce(_VENUE, lead[0], lead[1], out)
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
            self.stats.reject("invalid_depth", raw)
            return []
        if self._rounded:
            self.stats.rounded += self._rounded
            self._rounded = 0
        if found is None:
            inst = self._keep(inst)
        if isinstance(payload, _BookTicker):
            if not inst.announced:
                inst.announce(_VENUE, payload.b, payload.B, out)
            out.append(quote)
            if inst.depth_seen:
                self._cross_check_later(inst, payload.u, quote)
        elif isinstance(payload, _DepthUpdate):
            ignored = self._diff(inst, inst.stats or inst.book_stats(self.stats), diff, out)
            if ignored is not None:
                self.stats.ignored[ignored] += 1
                return []
        else:
            inst.announce(_VENUE, payload.p, payload.q, out)
            out.append(
                Trade(
                    inst.asset_id, price, volume, payload.T * _MS, _VENUE, SPOT, _SELL if payload.m else _BUY
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

    def _fixed(self, text: str) -> int:
        """Exact fixed point of Binance's decimal text. Fast path: exactly 8 places and at most 10
        integer digits (so in range), as Binance sends; those results are memoized (quotes repeat the
        same prices frame after frame)."""
        digits = text[:-9] + text[-8:]
        if text[-9:-8] == "." and len(text) < 20 and digits.isdigit() and digits.isascii():
            value = int(digits)
            cache = self._fixed_cache
            if len(cache) >= FIXED_CACHE_LIMIT:
                cache.clear()
            cache[text] = value
            return value
        value, rounded = parse_fixed8_rounded(bounded(text))
        if value < 0:
            raise FixedPointError(f"negative amount {text!r}")
        self._rounded += rounded  # counted in stats once the frame is taken
        return value

    def _levels(self, raw: msgspec.Raw) -> tuple[Level, ...]:
        """Fixed-point levels of a raw ``[[price, quantity], ...]`` array, exactly. Fast path for the
        wire's usual shape (compact, 8 places): validated by one regex, then the digits with the
        points removed are the fixed-point values. Anything else goes through typed decoding and
        the general decimal parser.

        Raises:
            msgspec.DecodeError: not an array of [price, quantity] strings.
            FixedPointError: a value that is not a decimal number in range.
        """
        data = bytes(raw)
        if _LEVELS_8.fullmatch(data):
            digits = data.translate(None, b'[]".')
            if not digits:
                return ()
            values = list(map(int, digits.split(b",")))
            prices = values[0::2]
            if 0 in prices:
                raise FixedPointError("a book level at price 0")
            return tuple(zip(prices, values[1::2], strict=True))
        fixed = self._fixed
        levels = tuple([(fixed(p), fixed(q)) for p, q in _LEVELS_DECODER.decode(data)])
        if any(not price for price, _ in levels):
            raise FixedPointError("a book level at price 0")
        return levels

    def _quote(self, inst: _Instrument, t: _BookTicker) -> Quote:
        cached, fixed = self._fixed_cache.get, self._fixed
        b, bq, a, aq = t.b, t.B, t.a, t.A
        return _new_tuple(
            Quote,
            (
                inst.asset_id,
                cached(b) or fixed(b),
                cached(bq) or fixed(bq),
                cached(a) or fixed(a),
                cached(aq) or fixed(aq),
                0,
                _VENUE,
                SPOT,
            ),
        )

    def _cross_check_later(self, inst: _Instrument, u: int, quote: Quote) -> None:
        """Check a bookTicker against the book's top once the diff ending at its ``u`` is applied (now,
        if it already was)."""
        if inst.state == _LIVE and u <= inst.last_u:
            top = inst.diff_tops.get(u)
            if top is not None:
                self._cross_check(quote, top)
            return
        tickers = inst.tickers
        tickers[u] = quote
        if len(tickers) > TICKER_LIMIT:
            del tickers[next(iter(tickers))]

    def _cross_check(self, quote: Quote, top: tuple[int, int, int, int]) -> None:
        key = "bookticker_matched" if quote[1:5] == top else "bookticker_mismatched"
        self.cross_checks[key] += 1

    def _diff(self, inst: _Instrument, stats: BookStats, d: _Diff, out: list[Event]) -> str | None:
        """Run one (parsed) diff through the symbol's sync state; append what to publish, or return
        the kind of ignore (buffered / already in the book)."""
        inst.depth_seen = True
        state = inst.state
        if state == _WAIT:
            buffer = inst.buffer
            buffer.append(d)
            if len(buffer) > BUFFER_LIMIT:
                del buffer[0]
            self._wanted[inst.venue_symbol] = None
            return "depthUpdate:buffered"
        last = inst.last_u
        first, final, exchange_ts, bids, asks = d
        if final <= last:
            return "depthUpdate:stale"
        if state == _PENDING:
            if first > last + 1:  # the snapshot predates the oldest diff we have: fetch a newer one
                stats.resyncs += 1
                self._drop_book(inst)
                return self._diff(inst, stats, d, out)
            self._publish_snapshot(inst, out)  # on_snapshot announced the instrument
        elif first != last + 1:
            stats.gaps += 1
            self._invalidate(inst, stats, Reason.SEQUENCE_GAP, out)
            self._diff(inst, stats, d, out)  # it starts the new buffer
            return None
        book = inst.book
        book.update(bids, asks)
        inst.state = _LIVE
        inst.last_u = final
        stats.updates_applied += 1
        out.append(L2Delta(inst.asset_id, _VENUE, SPOT, 0, first, final, exchange_ts, bids, asks))
        if book.is_crossed():
            stats.crossed += 1
            self._invalidate(inst, stats, Reason.CROSSED_BOOK, out)
            return None
        inst.render()  # the decimal text is only re-rendered when the top moves
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            top = (bid[0], bid[1], ask[0], ask[1])
            self._check_tickers(inst, final, top)
        return None

    def _check_tickers(self, inst: _Instrument, u: int, top: tuple[int, int, int, int]) -> None:
        tickers = inst.tickers
        quote = tickers.pop(u, None)
        if quote is not None:
            self._cross_check(quote, top)
        while tickers:  # older tickers can no longer meet their diff
            oldest = next(iter(tickers))
            if oldest > u:
                break
            del tickers[oldest]
        tops = inst.diff_tops
        tops[u] = top
        if len(tops) > DIFF_TOPS_KEPT:
            del tops[next(iter(tops))]

    def _drop_book(self, inst: _Instrument) -> None:
        """Forget the symbol's book; it waits for (and asks for) a new snapshot."""
        inst.drop()
        inst.state = _WAIT
        inst.diff_tops.clear()
        inst.tickers.clear()
        self._wanted[inst.venue_symbol] = None

    def _invalidate(self, inst: _Instrument, stats: BookStats, reason: Reason, out: list[Event]) -> None:
        stats.resyncs += 1
        invalidate(_VENUE, inst, reason, out)
        self._drop_book(inst)

    def _publish_snapshot(self, inst: _Instrument, out: list[Event]) -> None:
        bids, asks = inst.book.levels()
        out.extend(split_snapshot(inst.asset_id, _VENUE, SPOT, inst.last_u, 0, bids, asks))
