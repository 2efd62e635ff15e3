"""Kraken books shared by the v1 and v2 APIs: pairs, checksum texts, the CRC32 check. Pure: no I/O.

A book keeps the subscribed depth, and the CRC32 the venue sends is checked after every update and
snapshot: the top 10 asks (ascending) then bids (descending), each price and size text without its
"." and leading zeros (v2: formatted at the instrument's precisions; without them the checksum is
counted in ``unverified_checksums``). Every level of a message is read first (``_read``), then the
book and its texts change together. A mismatch publishes StateInvalidation(CHECKSUM_MISMATCH); with
policy "resync" also an L2Reset, the book goes dark and that pair's book is resubscribed in the API
its frames came in; with "ignore" it is counted and the book goes on.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import msgspec

from tickrelay.errors import SymbolError
from tickrelay.protocol.fixed import format_fixed8
from tickrelay.protocol.messages import Event, L2Delta, Level, Reason, StateInvalidation, split_snapshot
from tickrelay.protocol.symbols import VenueId, normalize_pair
from tickrelay.venues.feed import SPOT, FeedStats, Instrument, disconnect, invalidate
from tickrelay.venues.numbers import DecimalCache


NAME = "kraken"
VENUE = int(VenueId.KRAKEN)
_CHECKED_LEVELS = 10
MAX_PAIR = 64  # characters of a pair name: ASCII only, so InstrumentMeta always holds it


def _digits(text: str) -> str:
    """A level's checksum field: its text without "." and leading zeros."""
    return text.replace(".", "").lstrip("0")


class Pair(Instrument):
    __slots__ = ("ask_text", "bid_text", "precision", "v2")

    def __init__(self, pair: str, depth: int) -> None:
        if not pair.isascii() or len(pair) > MAX_PAIR:
            raise SymbolError(f"a pair name is ASCII of at most {MAX_PAIR} characters: {pair[:MAX_PAIR]!r}")
        base, _, quote = pair.partition("/")
        super().__init__(pair, normalize_pair(base, quote), depth)
        # price -> checksum digits of price and size, for exactly the levels in the book
        self.bid_text: dict[int, str] = {}
        self.ask_text: dict[int, str] = {}
        self.precision: tuple[int, int] | None = None  # v2: (price, qty) decimals from `instrument`
        self.v2 = False  # its book came over v2 (resubscribe there)

    def drop(self) -> None:
        super().drop()
        self.bid_text.clear()
        self.ask_text.clear()

    def truncate(self) -> tuple[list[int], list[int]]:
        """Keep the subscribed depth, in the book and its checksum texts; returns the prices dropped."""
        gone = self.book.truncate()
        for texts, prices in ((self.bid_text, gone[0]), (self.ask_text, gone[1])):
            for price in prices:
                del texts[price]
        return gone


_Read = list[tuple[int, int, str]]  # (price, size, checksum text) per level, read before any change


class KrakenBooks:
    """The state a Kraken connection keeps whatever its API: settings, pairs and their books, requests.

    Args:
        pairs: venue pairs (``XBT/USD`` for v1, ``BTC/USD`` for v2) for ``subscribe_messages``.
        depth: book depth subscribed and kept (10, 25, 100, 500 or 1000).
        version: 1 or 2, for the subscribe messages; parsing accepts both.
        checksum_policy: "resync" (dark book and resubscribe on a mismatch) or "ignore" (count only).
    """

    def __init__(
        self, pairs: Sequence[str] = (), depth: int = 10, version: int = 1, checksum_policy: str = "resync"
    ) -> None:
        if checksum_policy not in ("resync", "ignore"):
            raise ValueError(f"checksum_policy must be 'resync' or 'ignore', not {checksum_policy!r}")
        self.pairs = tuple(pairs)
        self.depth = depth
        self.version = version
        self.checksum_policy = checksum_policy
        self.stats = FeedStats()
        self.unverified_checksums = 0
        self._channels: dict[int, str] = {}  # v1 channelID -> pair
        self._pairs: dict[str, Pair] = {}
        self._requests: list[bytes] = []
        self._precisions: dict[str, tuple[int, int]] = {}  # v2 instrument precisions by symbol
        self._fixed = DecimalCache()

    def take_requests(self) -> list[bytes]:
        requests, self._requests = self._requests, []
        return requests

    def on_disconnect(self, ts_ns: int) -> list[Event]:
        self._channels.clear()
        self._requests.clear()
        return disconnect(VENUE, list(self._pairs.values()))

    # ---- books: read every level, then change ----------------------------------------------------

    def _read(self, p: Pair, levels: list[list[str]]) -> _Read:
        """(price, size, checksum digits) of each level; raises before anything changes."""
        level = self._fixed.level
        if p.precision is None:  # v1 (and v2 without precisions): the texts as sent
            read: _Read = []
            append = read.append
            for price_text, size_text, *_ in levels:  # fewer than two: ValueError, a bad frame
                price, size = level(price_text, size_text)
                if size:
                    append(
                        (
                            price,
                            size,
                            price_text.replace(".", "").lstrip("0") + size_text.replace(".", "").lstrip("0"),
                        )
                    )
                else:
                    append((price, 0, ""))
            return read
        price_places, size_places = p.precision  # v2: the checksum formats at the instrument's precision
        read = []
        for price_text, size_text in levels:
            price, size = level(price_text, size_text)
            text = (
                _digits(format_fixed8(price, price_places)) + _digits(format_fixed8(size, size_places))
                if size
                else ""
            )
            read.append((price, size, text))
        return read

    @staticmethod
    def _texts(texts: dict[int, str], read: _Read) -> list[Level]:
        for price, size, text in read:
            if size:
                texts[price] = text
            else:
                texts.pop(price, None)  # the text of a level follows the level
        return [(price, size) for price, size, _ in read]

    def _load(self, p: Pair, bids: _Read, asks: _Read, out: list[Event]) -> None:
        stats = p.book_stats(self.stats)
        if p.live:
            stats.resyncs += 1
        # as the book loads them: a level of size 0 is skipped (it does not remove an earlier one)
        p.bid_text = {price: text for price, size, text in bids if size}
        p.ask_text = {price: text for price, size, text in asks if size}
        p.book.load([(price, size) for price, size, _ in bids], [(price, size) for price, size, _ in asks])
        p.truncate()
        p.live = True
        now_bids, now_asks = p.book.levels()
        out.extend(split_snapshot(p.asset_id, VENUE, SPOT, 0, 0, now_bids, now_asks))
        p.render()

    def _update(
        self, p: Pair, bids: _Read, asks: _Read, checksum: int | None, ts: int, raw: bytes, out: list[Event]
    ) -> None:
        stats = p.book_stats(self.stats)
        bid_levels = self._texts(p.bid_text, bids)
        ask_levels = self._texts(p.ask_text, asks)
        p.book.update(bid_levels, ask_levels)
        gone_bids, gone_asks = p.truncate()  # pushed out of the subscribed depth: Kraken sends no delete
        bid_levels += [(price, 0) for price in gone_bids]  # so the delta carries one (a consumer's book
        ask_levels += [(price, 0) for price in gone_asks]  # then stays equal to ours, never crossed)
        stats.updates_applied += 1
        out.append(L2Delta(p.asset_id, VENUE, SPOT, 0, 0, 0, ts, tuple(bid_levels), tuple(ask_levels)))
        self._check(p, checksum, raw, out)
        if p.live and p.book.is_crossed():
            stats.crossed += 1
        p.render()

    def _check(self, p: Pair, checksum: int | None, raw: bytes, out: list[Event]) -> None:
        if checksum is None:
            return
        if p.v2 and p.precision is None:
            self.unverified_checksums += 1
            return
        stats = p.book_stats(self.stats)
        bids, asks = p.book.top(_CHECKED_LEVELS)
        text = "".join([p.ask_text[price] for price, _ in asks] + [p.bid_text[price] for price, _ in bids])
        if zlib.crc32(text.encode()) == checksum:
            stats.checksums_verified += 1
            return
        stats.checksum_failures += 1
        self.stats.samples.setdefault("checksum_mismatch", raw[:300].decode("utf-8", "replace"))
        if self.checksum_policy == "resync":
            invalidate(VENUE, p, Reason.CHECKSUM_MISMATCH, out)
            self._resubscribe(p)
        else:
            out.append(StateInvalidation(VENUE, SPOT, int(Reason.CHECKSUM_MISMATCH), (p.asset_id,)))

    def _resubscribe(self, p: Pair) -> None:
        """Unsubscribe and subscribe the pair's book again: Kraken answers with a fresh snapshot."""
        for kind in ("unsubscribe", "subscribe"):
            if p.v2:
                self._requests.append(self._v2_request(kind, "book", [p.venue_symbol]))
            else:
                self._requests.append(self._v1_request(kind, "book", [p.venue_symbol]))

    def _v1_request(self, kind: str, name: str, pairs: list[str]) -> bytes:
        sub: dict[str, object] = {"name": name, "depth": self.depth} if name == "book" else {"name": name}
        return msgspec.json.encode({"event": kind, "pair": pairs, "subscription": sub})

    def _v2_request(self, kind: str, channel: str, pairs: list[str]) -> bytes:
        params: dict[str, object] = {"channel": channel, "symbol": pairs}
        if channel == "book":
            params["depth"] = self.depth
        return msgspec.json.encode({"method": kind, "params": params})

    def _lookup(self, name: str) -> Pair:
        """The pair of that name, or a new one not yet kept (SymbolError for a name that is no pair)."""
        p = self._pairs.get(name)
        if p is None:
            p = Pair(name, self.depth)
            p.precision = self._precisions.get(name)
        return p

    def _keep(self, p: Pair) -> Pair:
        return self._pairs.setdefault(p.venue_symbol, p)
