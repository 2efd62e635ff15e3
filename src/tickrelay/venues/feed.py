"""The feed contract every venue API implements, its statistics, and what the feeds share. Pure: no I/O.

**The contract** (what the collector and ``tickrelay normalize`` drive; ``venues.core.FeedCore`` turns
it into finished bytes, and a compiled core implements that byte-level form directly):

* in: ``on_frame(raw, ts_recv_ns)`` for every received WebSocket text frame, ``on_snapshot(key, body,
  ts_recv_ns)`` for each REST snapshot the feed asked for, ``on_disconnect(ts_ns)`` when the connection
  ends;
* out: the protocol values to publish, in order (header.timestamp_ns = the ts passed in);
* what the feed needs, read after each call: ``snapshot_wanted`` (a bool attribute, true while
  ``wants_snapshot()`` is not empty: the cheap per-frame check), ``wants_snapshot()`` (keys whose REST
  snapshot to fetch, at ``snapshot_url(base, key)``, within ``REST_BUDGET``; asked again until given;
  read it when ``snapshot_wanted`` is true) and ``take_requests()`` (frames to send now: resubscribe /
  unsubscribe; each handed out once).
  ``subscribe_messages()`` are the frames to send after every connect;
* ``native_spec()``: the venue API and parameters of the feed's compiled twin (None: it has none);
* ``stats``: frames, messages by type, ignored by kind, rejected by reason with the first sample of
  each, fixed-point values rounded, the exchange's own errors, and per book ``BookStats``.

Every frame is classified exactly once: it produced values, was ignored by design
(``stats.ignored[kind]``), or was rejected (``stats.rejected[reason]``). A frame is decoded and checked
whole before it changes any state, so a rejected frame leaves the feed exactly as it was (books,
checksum texts, sequence trackers, every stat but the reject counter). Nothing raises out of a feed
but bugs: ``TypeError``, ``KeyError``, ``IndexError``, ``AttributeError`` are never caught here.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Sequence
from itertools import accumulate
from typing import ClassVar, NamedTuple, Protocol, TypeVar

import msgspec

from tickrelay.config import Config
from tickrelay.errors import VenueMessageError
from tickrelay.protocol.fixed import format_fixed8
from tickrelay.protocol.messages import Event, InstrumentMeta, L2Reset, Reason, StateInvalidation
from tickrelay.protocol.symbols import AssetType, asset_id_for
from tickrelay.venues.book import OrderBook
from tickrelay.venues.numbers import places


SAMPLE_BYTES = 300
NativeSpec = tuple[str, dict[str, object]]  # VenueFeed.native_spec(): (api, parameters)
SPOT = int(AssetType.CRYPTO_SPOT)
T = TypeVar("T")


@dataclasses.dataclass
class BookStats:
    updates_applied: int = 0
    checksums_verified: int = 0
    checksum_failures: int = 0
    gaps: int = 0
    resyncs: int = 0
    crossed: int = 0
    best_bid: str | None = None  # decimal text of the current best bid price
    best_ask: str | None = None

    def show_top(self, top: tuple[int | None, int | None]) -> None:
        """Render the book's best (bid, ask) prices as decimal text (None: that side is empty)."""
        self.best_bid = format_fixed8(top[0]) if top[0] is not None else None
        self.best_ask = format_fixed8(top[1]) if top[1] is not None else None


@dataclasses.dataclass
class FeedStats:
    frames: int = 0
    messages: Counter[str] = dataclasses.field(default_factory=Counter)  # by TLV name (Trade, Quote, ...)
    ignored: Counter[str] = dataclasses.field(default_factory=Counter)  # by frame kind
    rejected: Counter[str] = dataclasses.field(default_factory=Counter)  # by reason kind
    samples: dict[str, str] = dataclasses.field(default_factory=dict)  # first raw frame per rejected kind
    rounded: int = 0  # fixed-point values with more than 8 decimals, rounded half to even
    venue_errors: int = 0  # the exchange's own "error" frames (also in rejected)
    books: dict[str, BookStats] = dataclasses.field(default_factory=dict)  # by venue symbol

    def reject(self, kind: str, raw: bytes) -> None:
        self.rejected[kind] += 1
        self.samples.setdefault(kind, raw[:SAMPLE_BYTES].decode("utf-8", "replace"))

    def count(self, out: Sequence[Event]) -> None:
        messages = self.messages
        for value in out:
            messages[type(value).__name__] += 1


class Reject(NamedTuple):
    """What a venue's ``decode`` returns for a frame it cannot use: the reason it is counted under."""

    reason: str


TOO_DEEP = Reject("too_deep")  # JSON nested deeper than MAX_DEPTH
MAX_DEPTH = 256  # brackets a frame may nest; exchanges nest 5 at most
# a string, from its quote to the quote that ends it (a backslash escapes the byte after it), or to the
# end of the text when none does: every start matches, so the scan is linear whatever the text
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_NOT_SPECIAL = bytes(sorted(set(range(256)) - set(b'[]{}"')))
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_PARENS = bytes.maketrans(b"[]{}", b"()()")
_STEP = [0] * 256  # what a bracket does to the depth
_STEP[ord("(")], _STEP[ord(")")] = 1, -1


def too_deep(raw: bytes) -> bool:
    """Whether ``raw`` nests brackets deeper than MAX_DEPTH outside its strings (where a backslash
    escapes the next byte), read from the start whatever its validity. msgspec's own limit depends
    on how deep the caller's Python stack already is; this rule does not, so both cores (and every
    caller) answer the same. Only a text with more than MAX_DEPTH opening brackets is read.

    Read in C, not byte by byte (a Kraken book snapshot has thousands of brackets, two deep: a Python
    loop over them cost 15 % of the Kraken feed's time): the strings cut out, openers and closers made
    ``(`` and ``)``, then every ``)(`` dropped (a close and the next open: never the deepest point, and
    the depth after them is the depth before), so only a short text is summed up."""
    if len(raw) <= MAX_DEPTH or raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False
    if b"\\" in raw:
        outside = _STRING.sub(b"", raw)
    else:  # no escapes (the usual frame): keep quotes and brackets; a "" ends a string where the
        # next starts, or is an empty one: dropped, the same brackets stay out of strings
        outside = raw.translate(None, _NOT_SPECIAL).replace(b'""', b"")
        if b'"' in outside:  # brackets in a string
            outside = b"".join(outside.split(b'"')[::2])
    parens = outside.translate(_PARENS, _NOT_BRACKET).replace(b")(", b"")
    if parens.count(b"(") <= MAX_DEPTH:
        return False
    return max(accumulate(map(_STEP.__getitem__, parens))) > MAX_DEPTH


def decode(decoder: msgspec.json.Decoder[T], raw: bytes | msgspec.Raw) -> T | Reject | None:
    """``decoder.decode(raw)``; None when the text is not of the decoder's type, TOO_DEEP when a
    frame nests deeper than MAX_DEPTH (checked first; a ``msgspec.Raw`` is a part of a frame that
    was checked, so it is not read again)."""
    if isinstance(raw, bytes) and too_deep(raw):
        return TOO_DEEP
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError:
        return None


_ANY_OBJECT = msgspec.json.Decoder(dict[str, object])


def unknown(raw: bytes, keys: Sequence[str], default: str) -> Reject:
    """Why a frame that no schema of the venue took is rejected: ``unknown:<kind>``, the kind read from
    the first of ``keys`` the object has (``default`` without one), or ``invalid_json`` / ``too_deep``."""
    other = decode(_ANY_OBJECT, raw)
    if other is None or isinstance(other, Reject):
        return other or Reject("invalid_json")
    kind = next((other[key] for key in keys if other.get(key)), default)
    return Reject(f"unknown:{kind}" if isinstance(kind, str) else "unknown")


class Instrument:
    """One instrument of a feed: its key, its book, and what its BookStats show."""

    __slots__ = ("announced", "asset_id", "book", "live", "stats", "symbol", "top", "venue_symbol")

    def __init__(self, venue_symbol: str, symbol: str, depth: int | None = None) -> None:
        self.venue_symbol = venue_symbol
        self.symbol = symbol
        self.asset_id = asset_id_for(symbol)
        self.announced = False  # its InstrumentMeta was published
        self.book = OrderBook(depth)
        self.live = False  # a snapshot was applied and no trouble since
        self.stats: BookStats | None = None  # created with its first book message
        self.top: tuple[int | None, int | None] = (None, None)  # the best prices stats.best_* show

    def book_stats(self, feed: FeedStats) -> BookStats:
        if self.stats is None:
            self.stats = feed.books.setdefault(self.venue_symbol, BookStats())
        return self.stats

    def render(self) -> None:
        """Show the book's best prices in its stats (formatted only when the top moves)."""
        top = self.book.top_prices()
        if top != self.top and self.stats is not None:
            self.top = top
            self.stats.show_top(top)

    def drop(self) -> None:
        """Forget the book: it is dark until the next snapshot."""
        self.book.clear()
        self.live = False
        self.top = (None, None)
        if self.stats is not None:
            self.stats.best_bid = self.stats.best_ask = None

    def announce(
        self,
        venue_id: int,
        price: str | None,
        size: str | None,
        out: list[Event],
        decimals: tuple[int, int] | None = None,
    ) -> None:
        """InstrumentMeta before the instrument's first message: its decimals are the places of the
        first price and size texts seen (255 when none), unless the venue names them (``decimals``)."""
        if not self.announced:
            self.announced = True
            price_dp, size_dp = decimals if decimals is not None else (places(price), places(size))
            out.append(
                InstrumentMeta(
                    self.asset_id, venue_id, SPOT, price_dp, size_dp, self.venue_symbol, self.symbol
                )
            )


def disconnect(venue_id: int, instruments: Sequence[Instrument]) -> list[Event]:
    """Every book is gone: one StateInvalidation for the venue, an L2Reset per book ever published,
    each instrument dark (and a resync counted for each that was live)."""
    out: list[Event] = [StateInvalidation(venue_id, SPOT, int(Reason.DISCONNECT), ())]
    for inst in instruments:
        if inst.stats is not None:
            if inst.live:
                inst.stats.resyncs += 1
            out.append(L2Reset(inst.asset_id, venue_id, SPOT, int(Reason.DISCONNECT)))
        inst.drop()
    return out


def invalidate(venue_id: int, inst: Instrument, reason: Reason, out: list[Event]) -> None:
    """One instrument's book is no longer trusted: StateInvalidation + L2Reset, the book dropped."""
    out.append(StateInvalidation(venue_id, SPOT, int(reason), (inst.asset_id,)))
    out.append(L2Reset(inst.asset_id, venue_id, SPOT, int(reason)))
    inst.drop()


class RestBudget(NamedTuple):
    """A venue's REST request-weight budget, which the collector's limiter keeps under."""

    per_minute: int  # weight the venue allows per IP and minute
    snapshot_weight: int  # weight of one snapshot request (at the depth ``snapshot_url`` asks for)
    used_header: str  # response header with the weight this IP used in the current minute


class NoSnapshots:
    """For feeds whose books come whole over the WebSocket: they never ask for a REST snapshot."""

    NAME: ClassVar[str]
    SNAPSHOTS: ClassVar[bool] = False
    REST_BUDGET: ClassVar[RestBudget | None] = None
    snapshot_wanted = False  # never

    def wants_snapshot(self) -> list[str]:
        return []

    @staticmethod
    def rest_url(config: Config) -> str:
        return ""

    def snapshot_url(self, base: str, key: str) -> str:
        raise VenueMessageError(self.NAME, key.encode(), "this feed takes no REST snapshots")

    def on_snapshot(self, key: str, body: bytes, ts_recv_ns: int) -> list[Event]:
        raise VenueMessageError(self.NAME, body, "this feed takes no REST snapshots")


class VenueFeed(Protocol):
    """One venue API connection's pure parsing state (see the module docstring)."""

    NAME: ClassVar[str]  # the venue: "coinbase" | "binance" | "kraken"
    VENUE_ID: ClassVar[int]
    SNAPSHOTS: ClassVar[bool]  # it asks for REST snapshots (``wants_snapshot``)
    REST_BUDGET: ClassVar[RestBudget | None]  # the venue's REST weight limits (None: no snapshots)
    stats: FeedStats

    @classmethod
    def from_settings(cls, config: Config) -> VenueFeed:
        """The feed a collector of this configuration runs (instruments, depth, API, policies)."""
        ...

    @staticmethod
    def url(config: Config) -> str:
        """The WebSocket URL to connect to for this configuration."""
        ...

    @staticmethod
    def rest_url(config: Config) -> str:
        """The REST base URL the snapshots are fetched below (``snapshot_url``); "" for none."""
        ...

    def subscribe_messages(self) -> list[bytes]:
        """Frames to send after connecting (empty where the URL is the subscription)."""
        ...

    def on_frame(self, raw: bytes, ts_recv_ns: int) -> Sequence[Event]:
        """Parse one received frame into protocol values, in the order to publish them."""
        ...

    def wants_snapshot(self) -> list[str]:
        """Keys whose REST snapshot the feed needs now (empty for venues without REST snapshots)."""
        ...

    @property
    def snapshot_wanted(self) -> bool:
        """Whether :meth:`wants_snapshot` is not empty: what to check after every call (cheap, no list
        is built); the keys are read only when it is true."""
        ...

    def snapshot_url(self, base: str, key: str) -> str:
        """Where the REST snapshot of ``key`` is, below the venue's REST ``base`` URL."""
        ...

    def on_snapshot(self, key: str, body: bytes, ts_recv_ns: int) -> Sequence[Event]:
        """Load a REST snapshot the feed asked for.

        Raises:
            VenueMessageError: the body is not a usable snapshot; the key stays wanted.
        """
        ...

    def take_requests(self) -> list[bytes]:
        """Frames to send now (resubscriptions), each handed out once."""
        ...

    def on_disconnect(self, ts_ns: int) -> Sequence[Event]:
        """The connection is gone: drop every book and return the invalidations to publish."""
        ...

    def native_spec(self) -> NativeSpec | None:
        """How to build this feed's compiled twin (``venues.native.make_core``): the venue API's name in
        ``native/core/src/venues/mod.rs`` ``build`` and the parameters it takes (str, int, bool, None or
        list of str values), as this feed stands now. None: this feed has no compiled twin."""
        ...
