"""Kraken inputs the Python feed read by Python's own rules (Unicode digits, unbounded ints, msgspec's
``Any``), tightened so the compiled core (``native/core/src/venues/kraken*.rs``) gives the same answer
for every frame; and the snapshot whose repeated price left the checksum texts out of step."""

from __future__ import annotations

import json
import zlib

import pytest

from tickrelay.protocol.messages import L2Delta, Quote, Trade
from tickrelay.venues.kraken import KrakenFeed
from tickrelay.venues.numbers import seconds_text_to_ns


def trade(when: str = "1618678142.557535", pair: str = "XBT/USD") -> bytes:
    return json.dumps([0, [["5.0", "1.0", when, "b", "l", ""]], "trade", pair]).encode()


@pytest.mark.parametrize("text", ["١٦١٨٦٧٨١٤٢.5", "1618678142.٥", "999999999999.0", "9223372036.854775808"])
def test_kraken_times_are_ascii_digits_that_fit_int64(text: str) -> None:
    with pytest.raises(ValueError, match=r"Kraken time|int64"):
        seconds_text_to_ns(text)
    feed = KrakenFeed()
    assert feed.on_frame(trade(text), 0) == []
    assert dict(feed.stats.rejected) == {"bad_trade": 1}


def test_the_latest_kraken_time_is_int64_s_last_ns() -> None:
    assert seconds_text_to_ns("9223372036.854775807") == 2**63 - 1
    (_, t) = KrakenFeed().on_frame(trade("9223372036.854775807"), 0)
    assert isinstance(t, Trade)
    assert t.exec_ts_ns == 2**63 - 1


@pytest.mark.parametrize("pair", ["XBT/ÜSD", "X" * 61 + "/USD"])
def test_a_pair_name_is_ascii_of_at_most_64_characters(pair: str) -> None:
    feed = KrakenFeed()
    assert feed.on_frame(trade(pair=pair), 0) == []
    assert dict(feed.stats.rejected) == {"bad_trade": 1}
    assert len(feed.on_frame(trade(pair="X" * 60 + "/USD"), 0)) == 2  # 64: InstrumentMeta and Trade


def book(name: str, payload: dict[str, object], pair: str = "XBT/USD") -> bytes:
    return json.dumps([0, payload, name, pair]).encode()


SNAPSHOT = {"as": [["5.1", "1.0", "1.0"]], "bs": [["5.0", "2.0", "1.0"], ["4.9", "3.0", "1.0"]]}


@pytest.mark.parametrize(("name", "checksum"), [("book-١٠", None), ("book-10", "١٢٣"), ("book-10", "12x")])
def test_book_depth_and_checksum_are_ascii_digits(name: str, checksum: str | None) -> None:
    feed = KrakenFeed()
    feed.on_frame(book("book-10", SNAPSHOT), 0)
    update: dict[str, object] = {"b": [["5.0", "2.5", "1.0"]], **({"c": checksum} if checksum else {})}
    assert feed.on_frame(book(name, update), 0) == []
    assert dict(feed.stats.rejected) == {"bad_book": 1}


def test_a_snapshot_repeating_a_price_with_size_zero_keeps_its_checksum_text() -> None:
    """The book loads a snapshot's sized levels (a size of 0 is skipped); the checksum texts popped the
    price again, so the next checksum raised KeyError out of the feed."""
    snapshot = {**SNAPSHOT, "bs": [["5.0", "2.0", "1.0"], ["5.0", "0.0", "1.0"]]}
    feed = KrakenFeed()
    feed.on_frame(book("book-10", snapshot), 0)
    crc = zlib.crc32(b"5115" + b"5020")  # the ask at its new size, then the bid the update left alone
    (delta,) = feed.on_frame(book("book-10", {"a": [["5.1", "1.5", "1.0"]], "c": str(crc)}), 1)
    assert isinstance(delta, L2Delta)
    assert feed.stats.books["XBT/USD"].checksums_verified == 1


def test_the_whole_lot_volume_of_a_ticker_is_json_not_a_python_number() -> None:
    """It is not read; msgspec's ``Any`` refused integers past 4,300 characters and floats past the
    double range by a rule of its own."""
    raw = b'[0,{"a":["5.1",' + b"9" * 5000 + b',"1.0"],"b":["5.0",1e400,"2.0"]},"ticker","XBT/USD"]'
    (_, quote) = KrakenFeed().on_frame(raw, 0)
    assert quote == Quote(quote.asset_id, 500_000_000, 200_000_000, 510_000_000, 100_000_000, 0, 101, 51)  # type: ignore[union-attr]
