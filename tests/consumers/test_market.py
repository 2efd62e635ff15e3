"""MarketState: books from snapshot parts and deltas, trust lost and regained, as docs/protocol.md says."""

from tickrelay.consumers.market import MarketState, gap_invalidation
from tickrelay.protocol.codec import Source
from tickrelay.protocol.messages import (
    Heartbeat,
    InstrumentMeta,
    L2Delta,
    L2Reset,
    L2Snapshot,
    Quote,
    Reason,
    StateInvalidation,
    Trade,
)
from tickrelay.protocol.symbols import asset_id_for


BTC = asset_id_for("BTC/USD")
ETH = asset_id_for("ETH/USD")
K, C = 101, 102
BEGIN, END = 1, 2


def snap(
    asset: int, flags: int, part: int, bids: tuple[tuple[int, int], ...], asks: tuple[tuple[int, int], ...]
) -> L2Snapshot:
    return L2Snapshot(asset, K, 51, flags, 0, 0, part, bids, asks)


def test_split_snapshot_then_deltas_build_the_book() -> None:
    m = MarketState()
    m.apply(1, InstrumentMeta(BTC, K, 51, 1, 8, "XBT/USD", "BTC/USD"))
    m.apply(2, snap(BTC, BEGIN, 0, ((100, 5), (99, 1)), ()))
    inst = m.instruments[(K, BTC)]
    assert not inst.book_ready
    assert inst.best_bid() is None
    m.apply(3, snap(BTC, END, 1, (), ((101, 2), (102, 3))))
    assert inst.book_ready
    assert inst.best_bid() == (100, 5)
    assert inst.best_ask() == (101, 2)
    m.apply(4, L2Delta(BTC, K, 51, 0, 0, 0, 0, ((100, 0), (100_5, 9)), ((101, 0),)))
    assert (inst.best_bid(), inst.best_ask()) == ((100_5, 9), (102, 3))
    assert (inst.symbol, inst.venue_symbol, inst.last_ts_ns) == ("BTC/USD", "XBT/USD", 4)


def test_a_part_out_of_order_discards_the_partial_book_until_the_next_begin() -> None:
    m = MarketState()
    m.apply(1, snap(BTC, BEGIN, 0, ((100, 5),), ()))
    m.apply(2, snap(BTC, END, 2, (), ((101, 2),)))  # part 1 is missing
    inst = m.instruments[(K, BTC)]
    assert not inst.book_ready
    assert m.parts_discarded == 1
    m.apply(3, L2Delta(BTC, K, 51, 0, 0, 0, 0, ((100, 1),), ()))
    assert m.deltas_ignored == 1
    assert not inst.book_ready
    m.apply(4, snap(BTC, BEGIN | END, 0, ((98, 1),), ((99, 1),)))
    assert inst.book_ready
    assert inst.best_bid() == (98, 1)


def test_invalidation_drops_the_book_and_recovery_needs_a_snapshot_or_recovered() -> None:
    m = MarketState()
    m.apply(1, snap(BTC, BEGIN | END, 0, ((100, 5),), ((101, 1),)))
    m.apply(1, snap(ETH, BEGIN | END, 0, ((10, 5),), ((11, 1),)))
    changed = m.apply(2, StateInvalidation(K, 51, Reason.CHECKSUM_MISMATCH, (BTC,)))
    btc, eth = m.instruments[(K, BTC)], m.instruments[(K, ETH)]
    assert changed == [btc]
    assert (btc.trusted, btc.invalid_reason, btc.book_ready, btc.best_bid()) == (False, 3, False, None)
    assert eth.trusted
    assert eth.best_bid() == (10, 5)
    m.apply(3, snap(BTC, BEGIN | END, 0, ((100, 5),), ((101, 1),)))
    assert btc.trusted
    assert btc.book_ready
    assert m.apply(4, StateInvalidation(K, 51, Reason.DISCONNECT, ())) == [btc, eth]  # the whole venue
    assert not eth.trusted
    assert not btc.trusted
    m.apply(5, StateInvalidation(K, 51, Reason.RECOVERED, (ETH,)))
    assert eth.trusted
    assert not btc.trusted
    m.apply(6, L2Reset(ETH, K, 51, Reason.SEQUENCE_GAP))
    assert (eth.trusted, eth.invalid_reason) == (False, Reason.SEQUENCE_GAP)


def test_a_quote_only_instrument_is_trusted_again_at_its_next_quote_and_shows_the_quote() -> None:
    m = MarketState()
    q = Quote(BTC, 100, 2, 101, 3, 0, C, 51)
    m.apply(1, q)
    m.apply(2, StateInvalidation(C, 51, Reason.DISCONNECT, ()))
    inst = m.instruments[(C, BTC)]
    assert not inst.trusted
    m.apply(3, q._replace(bid_price=99))
    assert inst.trusted
    assert (inst.best_bid(), inst.best_ask()) == ((99, 2), (101, 3))
    m.apply(4, Quote(BTC, 0, 0, 0, 0, 0, C, 51))  # a venue that sent no price: no level
    assert (inst.best_bid(), inst.best_ask()) == (None, None)
    m.apply(5, Trade(BTC, 100, 1, 0, C, 51, 0))
    assert inst.trade == Trade(BTC, 100, 1, 0, C, 51, 0)
    assert inst.last_ts_ns == 5
    assert m.apply(6, Heartbeat(6, 1)) == []


def test_labels_name_instruments_for_people() -> None:
    m = MarketState()
    m.apply(1, InstrumentMeta(BTC, K, 51, 1, 8, "XBT/USD", "BTC/USD"))
    m.apply(2, Trade(ETH, 1, 1, 0, C, 51, 0))
    assert m.label(K, BTC) == "kraken BTC/USD"
    assert m.label(C, ETH) == f"coinbase {ETH:#x}"  # no InstrumentMeta yet
    assert m.label(100, 5) == "binance 0x5"  # never seen
    assert m.label(7, 5) == "7 0x5"  # a venue id this version does not know


def test_a_sequence_gap_untrusts_every_book_of_that_venue_until_its_next_snapshot() -> None:
    market = MarketState()
    book = L2Snapshot(BTC, 101, 51, 3, 0, 0, 0, ((100, 1),), ((101, 1),))
    market.apply(1, book)
    gap = gap_invalidation(Source.KRAKEN_COLLECTOR)
    assert gap == StateInvalidation(101, 51, Reason.SEQUENCE_GAP, ())
    assert gap_invalidation(Source.STRATEGY) is None  # not a venue's stream
    (inst,) = market.apply(2, gap)
    assert (inst.trusted, inst.book_ready, inst.best_bid()) == (False, False, None)
    market.apply(3, L2Delta(BTC, 101, 51, 0, 0, 0, 0, ((100, 2),), ()))  # ignored: no book to apply it to
    assert (inst.trusted, market.deltas_ignored) == (False, 1)
    market.apply(4, book)
    assert (inst.trusted, inst.best_bid()) == (True, (100, 1))
