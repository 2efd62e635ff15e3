"""Filters and run selection, without sockets."""

from tests.relay.conftest import BTC, ETH, message
from tickrelay.protocol.codec import make_sequence, restamp
from tickrelay.protocol.messages import TlvType
from tickrelay.relay.fanout import Filter, iter_messages, matches, select


RUN = [message(i) for i in range(42)]
BODY = b"".join(RUN)


def test_iter_messages_finds_every_boundary() -> None:
    assert [BODY[i : i + n] for i, n in iter_messages(BODY)] == RUN


def test_everything_filter() -> None:
    assert Filter().is_everything
    assert select(Filter(), BODY) == (BODY, 42)


def test_type_venue_and_instrument_filters() -> None:
    quotes = Filter(tlv_types=frozenset({TlvType.QUOTE}))
    assert select(quotes, BODY) == (b"".join(m for i, m in enumerate(RUN) if i % 2 and i % 7 != 6), 18)
    kraken = Filter(venues=frozenset({101}))
    assert select(kraken, BODY)[0] == b"".join(m for i, m in enumerate(RUN) if i % 3 == 1)
    eth_binance = Filter(venues=frozenset({100}), asset_ids=frozenset({ETH}))
    assert select(eth_binance, BODY)[0] == b"".join(m for i, m in enumerate(RUN) if i % 3 == 0 and i // 3 % 2)


def test_invalidation_of_a_whole_venue_passes_instrument_filters() -> None:
    from tickrelay.protocol.codec import encode_events
    from tickrelay.protocol.messages import Heartbeat, StateInvalidation

    whole_venue = encode_events(1, 3, 0, 0, StateInvalidation(102, 51, 1, ()))
    other_asset = encode_events(1, 3, 0, 0, StateInvalidation(102, 51, 1, (ETH,)))
    heartbeat = encode_events(1, 3, 0, 0, Heartbeat(1, 2))
    btc = Filter(venues=frozenset({102}), asset_ids=frozenset({BTC}))
    assert matches(btc, whole_venue)
    assert not matches(btc, other_asset)
    assert matches(btc, heartbeat)
    assert not matches(Filter(venues=frozenset({100})), whole_venue)


def test_restamped_messages_still_match() -> None:
    assert matches(Filter(venues=frozenset({100})), restamp(RUN[0], 3, make_sequence(9, 1)))
