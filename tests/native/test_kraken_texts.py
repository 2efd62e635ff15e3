"""Kraken v1 books of numbers written every way Kraken's checksum text must survive, through both cores.

The fuzz of real frames (test_fuzz.py) edits numbers, and an edited number fails its frame's checksum
on both cores alike, so it rarely reaches the case where a checksum verifies only if each level kept
its text as sent. Here hypothesis draws books whose prices and sizes are written at any places, with
leading zeros, a sign, an exponent, or digits past the 8th decimal that the book rounds away, and a
model of the book as Kraken holds it (the texts as sent, the subscribed depth) gives every update the
checksum Kraken would send. Both cores must agree after every frame (tests/native/differential.py)
and verify every checksum: a core that loses a level's text, or reuses one it should not, fails one.
300 sessions in the default run, 2,000 with ``-m slow``. Written after a second reader found the
compiled core reusing a level's old text for a level sent again written otherwise (test_replays.py).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.native.corpus import APIS
from tests.native.differential import Call, Pair, needs, replay
from tests.native.kraken_books import v1_book, v1_checksum


DEPTH = 10
ASK_TICKS, BID_TICKS = range(10_000, 10_030), range(9_970, 10_000)  # cents: never crossed
Level = tuple[int, int, str, str]


@st.composite
def text(draw: st.DrawFn, cents: int, places: int, odd: float) -> str:
    """A decimal text of ``cents`` / 100: at ``places`` decimals, as Kraken writes every price (or
    size) of a pair, or, with probability ``odd``, written some other way."""
    if draw(st.floats(0, 1)) >= odd:
        places = max(places, 0 if cents % 100 == 0 else 1 if cents % 10 == 0 else 2)
        whole, frac = divmod(cents, 100)
        return str(whole) if places == 0 else f"{whole}.{(f'{frac:02d}' + '0' * 12)[:places]}"
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
    book: dict[str, dict[int, tuple[str, str]]] = {"a": {}, "b": {}}
    live, checked, calls = False, 0, []
    # the pair's places, and how often a number is written otherwise: from never (the last checksum's
    # texts are reused) to half the time
    places = (
        draw(st.sampled_from([1, 2, 5])),
        draw(st.sampled_from([2, 8])),
        draw(st.sampled_from([0, 0.03, 0.5])),
    )

    sizes: dict[str, dict[int, int]] = {"a": {}, "b": {}}  # the book's sizes in cents

    def apply(side: str, levels: list[Level]) -> None:
        for cents, size, price_text, size_text in levels:
            if size:
                book[side][cents], sizes[side][cents] = (price_text, size_text), size
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
                size = sizes[side][cents]
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
            update["c"] = v1_checksum(book["a"].values(), book["b"].values())
            calls.append(("frame", v1_book(update, f"book-{DEPTH}")))
            checked += live
    return calls, checked


def check(drawn: tuple[list[Call], int]) -> None:
    calls, checked = drawn
    replay("kraken_v1", "normalize", calls)
    pair = Pair(APIS["kraken_v1"], "normalize")
    for call in calls:
        pair.call(call)
    for core in (pair.python, pair.native):
        book = core.stats.books.get("XBT/USD")
        verified, failures = (book.checksums_verified, book.checksum_failures) if book else (0, 0)
        assert (verified, failures) == (checked, 0)


@needs(APIS["kraken_v1"])
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(drawn=session())
def test_every_checksum_over_texts_as_sent_verifies_on_both_cores(drawn: tuple[list[Call], int]) -> None:
    check(drawn)


@pytest.mark.slow
@pytest.mark.timeout(600)  # about 70 s on a quiet 2-core machine
@needs(APIS["kraken_v1"])
@settings(max_examples=2_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(drawn=session())
def test_every_checksum_over_texts_as_sent_verifies_on_both_cores_many(drawn: tuple[list[Call], int]) -> None:
    check(drawn)
