"""The Stamper: one stream's identity and the one counter its sequence numbers come from."""

import pytest

from tickrelay.native import compiled
from tickrelay.protocol.codec import Decoder, Domain, encode_events, encode_trade_message, make_sequence
from tickrelay.protocol.messages import L2Reset, Quote, Trade
from tickrelay.protocol.stamper import Stamper, StamperFields


TRADE = Trade(1, 2, 3, 4, 100, 51, 0)
QUOTE = Quote(1, 2, 3, 4, 5, 6, 100, 51)


def test_each_message_takes_the_next_counter_of_its_stream() -> None:
    stamper = Stamper(source=3, stream_id=7)
    first, second, third = (stamper.message(99, v) for v in (TRADE, QUOTE, L2Reset(1, 100, 51, 2)))
    assert first == encode_trade_message(3, make_sequence(7, 1), 99, TRADE)  # the fused encoder
    assert second == encode_events(Domain.MARKET_DATA, 3, make_sequence(7, 2), 99, QUOTE)
    assert third == encode_events(Domain.MARKET_DATA, 3, make_sequence(7, 3), 99, L2Reset(1, 100, 51, 2))
    assert stamper.counter == 3
    assert stamper.next_sequence() == make_sequence(7, 4)
    decoder = Decoder()
    decoder.feed(first + second + third)
    assert [m.header.sequence & 0xFFFF for m in decoder] == [1, 2, 3]


def test_another_domain_encodes_every_value_generically() -> None:
    stamper = Stamper(source=20, stream_id=1, domain=Domain.SIGNAL, counter=41)
    assert stamper.message(5, TRADE) == encode_events(Domain.SIGNAL, 20, make_sequence(1, 42), 5, TRADE)
    assert stamper.message(5, QUOTE) == encode_events(Domain.SIGNAL, 20, make_sequence(1, 43), 5, QUOTE)


@pytest.mark.parametrize(
    "fields",
    [StamperFields] + ([compiled.StamperBase] if compiled is not None else []),
    ids=lambda c: c.__name__,
)
def test_both_stamper_bases_hold_the_same_fields(fields: type[StamperFields]) -> None:
    """The compiled StamperBase and StamperFields: the same constructor, defaults and settable fields,
    and a Stamper on either numbers its messages alike."""

    class Stamper(fields):  # as protocol.stamper.Stamper, on this base
        __slots__ = ()

    s = Stamper(3, 7)
    assert (s.source, s.stream_id, s.domain, s.counter) == (3, 7, 1, 0)
    s = Stamper(source=101, stream_id=65535, domain=2, counter=41)
    assert (s.source, s.stream_id, s.domain, s.counter) == (101, 65535, 2, 41)
    s.counter += 1
    assert s.counter == 42
    with pytest.raises(AttributeError):
        s.other = 1  # type: ignore[attr-defined]
