"""Filters and run selection, without sockets."""

from collections.abc import Callable
from functools import partial

import pytest
from hypothesis import given, strategies as st

from tests.cores import both
from tests.relay.conftest import BTC, ETH, message
from tickrelay.errors import MalformedTlv
from tickrelay.native import compiled
from tickrelay.protocol.codec import encode_message, make_sequence, restamp
from tickrelay.protocol.messages import TlvType
from tickrelay.relay.fanout import Filter, iter_messages, matches, select_py


RUN = [message(i) for i in range(42)]
BODY = b"".join(RUN)
Select = Callable[[Filter, bytes | memoryview], tuple[bytes, int]]


@pytest.fixture(params=both(partial(partial, select_py), "Selector"))
def select(request: pytest.FixtureRequest) -> Select:
    """Each core's selection, the filter compiled as the relay does (``fanout.selector``)."""
    make = request.param
    return lambda flt, body: make(flt)(body)  # type: ignore[no-any-return]


def test_iter_messages_finds_every_boundary() -> None:
    assert [BODY[i : i + n] for i, n in iter_messages(BODY)] == RUN


def test_everything_filter(select: Select) -> None:
    assert Filter().is_everything
    assert select(Filter(), BODY) == (BODY, 42)


def test_type_venue_and_instrument_filters(select: Select) -> None:
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


def test_a_tlv_too_short_for_its_venue_passes_like_a_venueless_one(select: Select) -> None:
    # Framing is all the relay checks: a Trade TLV of 2 bytes has no venue to filter on. The fixed-offset
    # path once read the venue past the TLV (the next message's bytes, or past the run: struct.error).
    short = encode_message(1, 3, 1, 0, bytes((TlvType.TRADE, 2, 0x64, 0)))
    kraken = Filter(venues=frozenset({101}))
    assert select(kraken, short) == (short, 1)
    assert select(kraken, RUN[0] + short + RUN[1]) == (short + RUN[1], 2)


def test_a_malformed_tlv_is_seen_only_when_reached(select: Select) -> None:
    # as the Python generator: the first passing TLV decides, a broken one after it goes unread
    good_then_broken = encode_message(1, 3, 1, 0, RUN[1][32:] + bytes((TlvType.TRADE, 200)))
    assert select(Filter(), good_then_broken) == (good_then_broken, 1)
    assert select(Filter(venues=frozenset({101})), good_then_broken) == (good_then_broken, 1)
    with pytest.raises(MalformedTlv, match="TLV type 1 of 200 bytes runs past the payload at offset 58"):
        select(Filter(venues=frozenset({102})), good_then_broken)


def test_a_memoryview_of_a_batch_is_read_in_place(select: Select) -> None:
    envelope = b"x" * 44 + BODY
    assert select(Filter(venues=frozenset({101})), memoryview(envelope)[44:])[1] == 14


# Messages of every shape a filter meets: one standard TLV, several, extended form, a venue-less TLV,
# invalidations naming none, one or two instruments, TLVs too short to hold their venue, a malformed
# TLV (reached or not, depending on the filter), and an empty payload.
_TLVS = st.one_of(
    st.builds(lambda m: m[32:], st.integers(0, 41).map(message)),
    st.builds(
        lambda t, venue, asset, pad: bytes((t, 50)) + asset.to_bytes(8, "little") + bytes(pad)
        + venue.to_bytes(2, "little") + bytes(40 - pad),
        st.sampled_from([1, 2, 4, 5, 6, 7]), st.sampled_from([100, 101, 102]), st.sampled_from([BTC, ETH, 5]),
        st.sampled_from([0, 24, 40]),
    ),
    st.builds(lambda v: bytes((0xFF, 0, 5, len(v), 0)) + v, st.binary(min_size=0, max_size=40)),
    st.builds(lambda t, v: bytes((t, len(v))) + v, st.sampled_from([1, 9, 101, 255]), st.binary(max_size=9)),
    st.builds(
        lambda venue, ids: venue.to_bytes(2, "little") + b"\x33\x02" + len(ids).to_bytes(2, "little")
        + b"".join(a.to_bytes(8, "little") for a in ids),
        st.sampled_from([100, 101, 102]), st.lists(st.sampled_from([BTC, ETH, 5]), max_size=2),
    ).map(lambda v: bytes((101, len(v))) + v),
    st.just(bytes((1, 200))),  # runs past the payload
)  # fmt: skip
_RUNS = st.lists(
    st.lists(_TLVS, max_size=3).map(lambda ts: encode_message(1, 3, 1, 0, b"".join(ts))), max_size=12
)
_FILTERS = st.builds(
    Filter,
    st.frozensets(st.sampled_from([1, 2, 5, 7, 9, 101, 255]), max_size=2),
    st.frozensets(st.sampled_from([100, 101, 102]), max_size=2),
    st.frozensets(st.sampled_from([BTC, ETH, 5]), max_size=2),
)


@pytest.mark.skipif(compiled is None, reason="the compiled core is not built")
@given(flt=_FILTERS, run=_RUNS)
def test_the_compiled_core_selects_as_the_python_one(flt: Filter, run: list[bytes]) -> None:
    assert compiled is not None
    body = b"".join(run)

    def outcome(select: Select) -> object:
        try:
            return select(flt, body)
        except MalformedTlv as exc:
            return str(exc)

    assert outcome(lambda f, b: compiled.Selector(f)(b)) == outcome(select_py)
