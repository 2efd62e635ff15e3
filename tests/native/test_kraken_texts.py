"""Kraken books of numbers written every way Kraken's checksum text must survive, through both cores.

The fuzz of real frames (test_fuzz.py) edits numbers, and an edited number fails its frame's checksum
on both cores alike, so it rarely reaches the case where a checksum verifies only if each level kept
its text as sent. Here hypothesis draws books whose prices and sizes are written at any places, with
leading zeros, a sign, an exponent, or digits past the 8th decimal that the book rounds away, and a
model of the book as Kraken holds it (the texts as sent, the subscribed depth) gives every update the
checksum Kraken would send. Both cores must agree after every frame (tests/native/differential.py)
and verify every checksum: a core that loses a level's text, or reuses one it should not, fails one.
300 sessions in the default run, 2,000 with ``-m slow``. Written after a second reader found the
compiled core reusing a level's old text for a level sent again written otherwise (test_replays.py).

The v2 sessions do the same through the v2 API, whose checksum writes a level's price and size at the
pair's precisions from ``instrument`` messages (texts as sent while it has none, and no checksum
checked). Their numbers are JSON numbers written every way JSON allows; instrument messages come and go
(new precisions while a book is live, 0 to 30 places, numbers too precise for them, which reject the
frame); a frame carries one or two pairs' books, sometimes one pair's twice (rejected), a wrong
checksum (the book dark until a snapshot) or none; the feed keeps depth 10 or 25. Where Kraken's own
behaviour is not defined (a level read at old precisions still in the book after new ones), the model
is the Python feed's: a level's text is written when the level is read. Checked against mutations of
the compiled core: they fail if an instrument message does not reach a live pair, if a number too
precise for the pair is taken, or if a pair's second book in a frame is applied. The reuse of the last
checksum text across changed precisions they reach only now and then (a second reader measured 0-21
sessions of 300): test_replays.py holds fixed sequences for it, which fail every time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.native.corpus import APIS
from tests.native.differential import Call, extras, needs, replayed
from tests.native.kraken_books import checksum, digits, v1_book, v1_checksum


DEPTH = 10
ASK_TICKS, BID_TICKS = range(10_000, 10_030), range(9_970, 10_000)  # cents: never crossed
Level = tuple[int, int, str, str]  # price and size in cents, their texts as sent


def at_places(cents: int, places: int) -> str | None:
    """``cents`` / 100 written at ``places`` decimals, as the v2 checksum writes it (None: it has more)."""
    whole, frac = divmod(cents, 100)
    if places < 2 and frac % 10 ** (2 - places):
        return None
    return str(whole) if places == 0 else f"{whole}.{(f'{frac:02d}' + '0' * places)[:places]}"


def shortest(cents: int) -> str:
    """``cents`` / 100 at the fewest decimals that hold it: as Kraken writes a v2 JSON number."""
    return next(text for places in (0, 1, 2) if (text := at_places(cents, places)) is not None)


@st.composite
def text(draw: st.DrawFn, cents: int, places: int, odd: float) -> str:
    """A decimal text of ``cents`` / 100: at ``places`` decimals, as Kraken writes every price (or
    size) of a pair, or, with probability ``odd``, written some other way."""
    if draw(st.floats(0, 1)) >= odd:
        return at_places(cents, places) or shortest(cents)
    other = draw(st.sampled_from([0, 1, 3, 5, 8, 9, 12]))
    plain = draw(text(cents, other, 0))
    return draw(
        st.sampled_from(
            [
                plain,
                "00" + plain,
                "+" + plain,
                f"{cents}e-2",
                plain + ("" if "." in plain else ".") + "0000000000003",  # rounded away in the book
            ]
        )
    )


@st.composite
def level(draw: st.DrawFn, ticks: range, places: tuple[int, int, float], removals: bool = True) -> Level:
    """(price, size in cents, their texts); a size of 0 removes the level (snapshots send none)."""
    price_places, size_places, odd = places
    cents = draw(st.sampled_from(ticks))
    size = draw(st.sampled_from([0, 0, 1, 150, 200, 12_345] if removals else [1, 150, 200, 12_345]))
    return cents, size, draw(text(cents, price_places, odd)), draw(text(size, size_places, odd))


@st.composite
def session(draw: st.DrawFn) -> tuple[list[Call], int]:
    """Calls (snapshots, updates with Kraken's checksum, levels sent again written otherwise, disconnects)
    and how many checksums they carry while the book is live."""
    book: dict[str, dict[int, tuple[int, str, str]]] = {"a": {}, "b": {}}  # cents -> size, texts as sent
    live, checked, calls = False, 0, []
    # the pair's places, and how often a number is written otherwise: from never (the last checksum's
    # texts are reused) to half the time
    places = (
        draw(st.sampled_from([1, 2, 5])),
        draw(st.sampled_from([2, 8])),
        draw(st.sampled_from([0, 0.03, 0.5])),
    )

    def apply(side: str, levels: list[Level]) -> None:
        for cents, size, price_text, size_text in levels:
            if size:
                book[side][cents] = (size, price_text, size_text)
            else:
                book[side].pop(cents, None)
        best = sorted(book[side], reverse=side == "b")[:DEPTH]
        book[side] = {c: book[side][c] for c in best}

    for step in range(draw(st.integers(2, 16))):
        kinds = ["snapshot", "disconnect", "again", *["update"] * 5]
        kind = "snapshot" if step == 0 else draw(st.sampled_from(kinds))
        if kind == "disconnect":
            calls.append(("disconnect",))
            live = False
        elif kind == "snapshot":
            asks = draw(st.lists(level(ASK_TICKS, places, removals=False), max_size=14))
            bids = draw(st.lists(level(BID_TICKS, places, removals=False), max_size=14))
            book = {"a": {}, "b": {}}
            apply("a", asks)
            apply("b", bids)
            snapshot = {
                "as": [[p, s, "1.5"] for *_, p, s in asks],
                "bs": [[p, s, "1.5"] for *_, p, s in bids],
            }
            calls.append(("frame", v1_book(snapshot, f"book-{DEPTH}")))
            live = True
        else:
            sides = {
                side: draw(st.lists(level(ticks, places), max_size=3))
                for side, ticks in (("a", ASK_TICKS), ("b", BID_TICKS))
            }
            side = draw(st.sampled_from("ab"))
            if kind == "again" and book[side]:  # a level sent again as it is, written otherwise
                cents = draw(st.sampled_from(sorted(book[side])))
                size = book[side][cents][0]
                again = (cents, size, draw(text(cents, places[0], 1.0)), draw(text(size, places[1], 1.0)))
                sides = {"a": [], "b": [], side: [again]}
            if not sides["a"] and not sides["b"]:
                continue
            for side, levels in sides.items():
                if live:
                    apply(side, levels)
            update: dict[str, object] = {
                s: [[p, z, "1.6"] for *_, p, z in lv] for s, lv in sides.items() if lv
            }
            update["c"] = v1_checksum(*([(p, z) for _, p, z in book[s].values()] for s in "ab"))
            calls.append(("frame", v1_book(update, f"book-{DEPTH}")))
            checked += live
    return calls, checked


def check(drawn: tuple[list[Call], int]) -> None:
    calls, checked = drawn
    pair = replayed("kraken_v1", "normalize", calls)
    for core in (pair.python, pair.native):
        book = core.stats.books.get("XBT/USD")
        verified, failures = (book.checksums_verified, book.checksum_failures) if book else (0, 0)
        assert (verified, failures) == (checked, 0)


# ---- v2 ----------------------------------------------------------------------------------------------

SYMBOLS = ("BTC/USD", "ETH/USD")
# cents: mostly whole dimes (exact at a price precision of 1), some odd cents (too precise for it)
V2_ASKS = [*range(10_000, 10_300, 10), 10_005, 10_013]
V2_BIDS = [*range(9_700, 10_000, 10), 9_995, 9_987]
PRICE_PRECISIONS = st.sampled_from([1, 1, 2, 2, 2, 4, 4, 0, 9, 30])  # 0: most prices too precise
QTY_PRECISIONS = st.sampled_from([2, 2, 8, 8, 8, 1, 0, 12])


@st.composite
def number(draw: st.DrawFn, cents: int, odd: float) -> str:
    """A JSON number of value ``cents`` / 100: as Kraken writes it (no trailing zeros), or, with
    probability ``odd``, any other way JSON allows."""
    plain = shortest(cents)
    if draw(st.floats(0, 1)) >= odd:
        return plain
    if cents == 0:
        return draw(st.sampled_from(["0", "0.0", "0e0", "0.00000000000", "0E-5"]))
    lead = str(cents)
    return draw(
        st.sampled_from(
            [
                at_places(cents, draw(st.sampled_from([2, 3, 8, 12]))) or plain,  # trailing zeros
                f"{cents}e-2",
                f"{cents}0E-3",
                f"{lead[0]}.{lead[1:] or '0'}e{len(lead) - 3}",
                plain + ("" if "." in plain else ".") + "0000000000003",  # rounded away in the book
            ]
        )
    )


@st.composite
def v2_level(draw: st.DrawFn, ticks: list[int], odd: float, removals: bool) -> Level:
    """(price, size in cents, their JSON numbers); a size of 0 removes the level (snapshots send none)."""
    cents = draw(st.sampled_from(ticks))
    sizes = [100, 200, 300, 10, 150, 12_340, 1, 12_345]  # qty precision 0 takes the first 3, 1 all but 2
    size = draw(st.sampled_from([0, 0, *sizes] if removals else sizes))
    return cents, size, draw(number(cents, odd)), draw(number(size, odd))


TIMESTAMP = '"timestamp":"2023-07-30T15:29:58.123456Z"'  # an update's


def v2_frame(channel: str, kind: str, data: str) -> Call:
    return ("frame", f'{{"channel":"{channel}","type":"{kind}","data":{data}}}'.encode())


def v2_levels(levels: list[Level]) -> str:
    return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for *_, p, q in levels) + "]"


class V2Model:
    """The books as the Python feed holds them for a v2 connection (checksum policy "resync", the
    subscribed ``depth``): each level's checksum text, written when the level is read (at the pair's
    precisions, or as sent while it has none), and which books are live."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.precisions: dict[str, tuple[int, int]] = {}
        # by symbol and side: cents -> the level's size and checksum text
        self.books: dict[str, dict[str, dict[int, tuple[int, str]]]] = {
            s: {"a": {}, "b": {}} for s in SYMBOLS
        }
        self.live: set[str] = set()

    def text(self, symbol: str, level: Level) -> str | None:
        """The level's checksum text as it is read now (None: a number too precise for the pair)."""
        cents, size, price_text, size_text = level
        if symbol not in self.precisions:
            return digits(price_text) + digits(size_text)
        price_places, size_places = self.precisions[symbol]
        price, qty = at_places(cents, price_places), at_places(size, size_places)
        return None if price is None or qty is None else digits(price) + digits(qty)

    def reads(self, books: list[tuple[str, dict[str, list[Level]]]]) -> bool:
        """Whether every level of the frame's books reads (a frame is read whole before any change)."""
        return all(self.text(s, lv) is not None for s, two in books for lv in two["a"] + two["b"] if lv[1])

    def apply(self, symbol: str, side: str, levels: list[Level]) -> None:
        book = self.books[symbol][side]
        for level in levels:
            cents, size, *_ = level
            if size:
                book[cents] = (size, self.text(symbol, level) or "")
            else:
                book.pop(cents, None)
        best = sorted(book, reverse=side == "b")[: self.depth]  # the subscribed depth
        self.books[symbol][side] = {c: book[c] for c in best}

    def checksum(self, symbol: str) -> int:
        asks, bids = ({Decimal(c): t for c, (_, t) in self.books[symbol][s].items()} for s in "ab")
        return checksum(asks, bids)

    def drop(self, symbol: str) -> None:
        """A snapshot to come, or a failed checksum (the feed resubscribes): the book empty."""
        self.books[symbol] = {"a": {}, "b": {}}


@st.composite
def v2_session(draw: st.DrawFn) -> tuple[str, list[Call], Counter[str]]:
    """The feed's settings, calls (instrument messages, snapshots and updates of one or two pairs'
    books with Kraken's checksum, or a wrong one, or none; levels sent again written otherwise; a pair's
    book twice in a frame; disconnects), and the checksums verified, failed and checked none (no
    precisions), and the frames rejected, that the feed must count."""
    feed = draw(st.sampled_from(["no-precisions", "depth-25"]))
    model, expect, calls = V2Model(25 if feed == "depth-25" else 10), Counter[str](), list[Call]()
    odd = draw(st.sampled_from([0, 0.03, 0.5]))
    for step in range(draw(st.integers(2, 16))):
        # the common kinds first: hypothesis shrinks towards the first
        kinds = [*["update"] * 5, "snapshot", "instrument", "again", "disconnect"]
        kind = draw(st.sampled_from(["instrument", "instrument", "snapshot"] if step == 0 else kinds))
        if kind in ("update", "again") and not model.live and draw(st.integers(0, 4)) < 4:
            kind = "snapshot"  # fewer updates before any snapshot, which are all rejected alike
        # an update mostly of books that are live
        live = sorted(model.live)
        pool = live if live and kind in ("update", "again") and draw(st.integers(0, 9)) < 9 else SYMBOLS
        symbols = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True))
        if kind == "instrument" and draw(st.booleans()):
            symbols = list(SYMBOLS)  # often both pairs' precisions: more checksums checked
        if kind == "disconnect":
            calls.append(("disconnect",))
            model.live.clear()
        elif kind == "instrument":
            pairs = []
            for symbol in symbols:  # 0 and 30 places too: whole numbers, and texts too long to keep inline
                pp, qp = model.precisions[symbol] = (draw(PRICE_PRECISIONS), draw(QTY_PRECISIONS))
                pairs.append(f'{{"symbol":"{symbol}","price_precision":{pp},"qty_precision":{qp}}}')
            kind = draw(st.sampled_from(["snapshot", "update"]))
            calls.append(v2_frame("instrument", kind, f'{{"assets":[],"pairs":[{",".join(pairs)}]}}'))
        else:
            snapshot = kind == "snapshot"
            books = [
                (
                    symbol,
                    {
                        side: draw(
                            st.lists(v2_level(ticks, odd, not snapshot), max_size=30 if snapshot else 3)
                        )
                        for side, ticks in (("a", V2_ASKS), ("b", V2_BIDS))
                    },
                )
                for symbol in symbols
            ]
            again = books if kind == "again" else []  # a level sent again as it is, written otherwise
            for symbol, two in again:
                side = draw(st.sampled_from("ab"))
                if model.books[symbol][side]:
                    cents = draw(st.sampled_from(sorted(model.books[symbol][side])))
                    size = model.books[symbol][side][cents][0]
                    two["a" if side == "b" else "b"].clear()
                    two[side][:] = [(cents, size, draw(number(cents, 1.0)), draw(number(size, 1.0)))]
            twice = draw(st.integers(0, 29)) == 29  # a pair's book twice: the frame is rejected
            if twice:
                books.append(books[0])
            checksums: list[str] = []
            if twice or not (snapshot or model.live.issuperset(symbols)) or not model.reads(books):
                expect["rejected"] += 1
                checksums = ['"checksum":1'] * len(books)
            else:
                for symbol, two in books:
                    if snapshot:
                        model.drop(symbol)
                        model.live.add(symbol)
                    model.apply(symbol, "a", two["a"])
                    model.apply(symbol, "b", two["b"])
                    sent = draw(st.sampled_from(["right"] * 18 + ["wrong", "none"]))
                    value = model.checksum(symbol) if sent == "right" else 1
                    checksums.append("" if sent == "none" else f'"checksum":{value}')
                    if sent == "none":
                        continue
                    if symbol not in model.precisions:
                        expect["unverified"] += 1
                    elif sent == "right":
                        expect["verified"] += 1
                    else:
                        expect["failures"] += 1
                        model.live.discard(symbol)
                        model.drop(symbol)
            frame_books = ",".join(
                "{" + ",".join(
                    [f'"symbol":"{s}","bids":{v2_levels(two["b"])},"asks":{v2_levels(two["a"])}']
                    + ([checksum] if checksum else [])
                    + ([] if snapshot else [TIMESTAMP])
                ) + "}"
                for (s, two), checksum in zip(books, checksums, strict=True)
            )  # fmt: skip
            calls.append(v2_frame("book", "snapshot" if snapshot else "update", f"[{frame_books}]"))
    return feed, calls, expect


def check_v2(drawn: tuple[str, list[Call], Counter[str]]) -> None:
    feed, calls, expect = drawn
    pair = replayed("kraken_v2", feed, calls)
    for core in (pair.python, pair.native):
        books = core.stats.books.values()
        assert sum(book.checksum_failures for book in books) == expect["failures"]
        assert sum(book.checksums_verified for book in books) == expect["verified"]
        assert extras(core).get("unverified_checksums", 0) == expect["unverified"]
        assert sum(core.stats.rejected.values()) == expect["rejected"], core.stats.rejected


def sessions(api: str, drawn: st.SearchStrategy[Any], check: Callable[[Any], None], examples: int) -> Any:
    """A test of ``examples`` sessions of ``api`` drawn from ``drawn``, each through ``check``."""

    @needs(APIS[api])
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(drawn=drawn)
    def test(drawn: Any) -> None:
        check(drawn)

    return test


def slow(test: Any) -> Any:
    # 40-70 s (v1), 50 s (v2) on a quiet 2-core machine
    return pytest.mark.slow(pytest.mark.timeout(600)(test))


test_every_v1_checksum_over_texts_as_sent_verifies_on_both_cores = sessions(
    "kraken_v1", session(), check, 300
)
test_every_v1_checksum_many = slow(sessions("kraken_v1", session(), check, 2_000))
test_every_v2_checksum_at_the_pair_s_precisions_verifies_on_both_cores = sessions(
    "kraken_v2", v2_session(), check_v2, 300
)
test_every_v2_checksum_many = slow(sessions("kraken_v2", v2_session(), check_v2, 2_000))
