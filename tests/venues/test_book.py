"""OrderBook: sorted fixed-point levels, best first, size 0 removes, crossed check."""

from __future__ import annotations

from hypothesis import given, strategies as st

from tickrelay.venues.book import OrderBook


def test_update_keeps_each_side_best_first_and_zero_removes() -> None:
    book = OrderBook()
    book.update([(100, 5), (102, 1)], [(105, 2), (103, 7)])
    assert book.best_bid() == (102, 1)
    assert book.best_ask() == (103, 7)
    assert book.levels() == ([(102, 1), (100, 5)], [(103, 7), (105, 2)])
    book.update([(102, 0)], [(999, 0)])  # removing an absent level is not an error
    assert book.levels() == ([(100, 5)], [(103, 7), (105, 2)])
    assert (len(book), book.bid_count, book.ask_count) == (3, 1, 2)
    book.update([], [(103, 0)])  # one side only
    assert book.levels() == ([(100, 5)], [(105, 2)])


def test_update_after_a_snapshot() -> None:
    book = OrderBook()
    book.load([(100, 1), (99, 2)], [(101, 3), (102, 0)])
    assert book.levels() == ([(100, 1), (99, 2)], [(101, 3)])  # zero-size snapshot levels skipped
    book.update([(100, 0), (98, 4), (99, 5)], [(101, 0), (104, 1)])
    assert book.levels() == ([(99, 5), (98, 4)], [(104, 1)])


def test_empty_book_has_no_best_and_is_not_crossed() -> None:
    book = OrderBook()
    assert book.best_bid() is None
    assert book.best_ask() is None
    assert not book.is_crossed()
    book.update([(10, 1)], [])
    assert not book.is_crossed()


def test_crossed_when_best_bid_reaches_best_ask() -> None:
    book = OrderBook()
    book.load([(100, 1)], [(101, 1)])
    assert not book.is_crossed()
    book.update([(101, 1)], [])
    assert book.is_crossed()
    book.clear()
    assert len(book) == 0


def test_top_and_truncate() -> None:
    book = OrderBook(depth=2)
    book.load([(10, 1), (9, 1), (8, 1)], [(11, 1), (12, 1), (13, 1)])
    assert book.top(1) == ([(10, 1)], [(11, 1)])
    assert book.top(0) == ([], [])
    assert book.truncate(5) == ([], [])  # nothing beyond 5 levels
    assert len(book) == 6
    assert book.truncate() == ([8], [13])  # the prices dropped, for the publisher's delta
    assert book.levels() == ([(10, 1), (9, 1)], [(11, 1), (12, 1)])
    assert OrderBook().truncate() == ([], [])  # no depth: keeps everything


@given(st.lists(st.tuples(st.sampled_from(["bid", "ask"]), st.integers(1, 50), st.integers(0, 3))))
def test_matches_a_plain_dict_model(ops: list[tuple[str, int, int]]) -> None:
    book, model = OrderBook(), {"bid": {}, "ask": {}}
    for side, price, size in ops:
        if side == "bid":
            book.update([(price, size)], [])
        else:
            book.update([], [(price, size)])
        if size:
            model[side][price] = size
        else:
            model[side].pop(price, None)
    bids = sorted(model["bid"].items(), reverse=True)
    asks = sorted(model["ask"].items())
    assert book.levels() == (bids, asks)
    assert book.top(3) == (bids[:3], asks[:3])
