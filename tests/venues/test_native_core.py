"""make_core: which core a feed runs on (the compiled twin or the Python FeedCore), and NativeFeed's
refusals. That both cores give the same bytes and stats is tests/native's (every recording, fuzzing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickrelay import native
from tickrelay.errors import VenueMessageError
from tickrelay.protocol.codec import Source
from tickrelay.protocol.link import BATCH_START, encode_batch
from tickrelay.protocol.messages import PublisherLoss
from tickrelay.protocol.stamper import Stamper
from tickrelay.venues import VENUES, native as venues_native
from tickrelay.venues.coinbase import CoinbaseFeed
from tickrelay.venues.coinbase_advanced import AdvancedTradeFeed
from tickrelay.venues.core import TODO_NEW_REJECT, TODO_SNAPSHOT, FeedCore
from tickrelay.venues.feed import VenueFeed
from tickrelay.venues.native import NativeCore, make_core


STAMPER = Stamper(1, 1)
needs_native = pytest.mark.skipif(native.compiled is None, reason="the compiled core is not built")


def _ported(api: str) -> bool:
    """The build has a native feed for ``api`` (probed with no parameters: NotImplementedError or not)."""
    assert native.compiled is not None
    try:
        native.compiled.NativeFeed(api, {}, Stamper(1, 1))
    except NotImplementedError:
        return False
    except ValueError:  # known, but it wants parameters
        return True
    return True


@pytest.mark.parametrize("name", sorted(VENUES))
def test_python_is_chosen_when_asked_for(name: str) -> None:
    core = make_core(VENUES[name](), Stamper(Source.COINBASE_COLLECTOR, 1), "python")
    assert type(core) is FeedCore
    assert core.CORE == "python"


@pytest.mark.parametrize("name", sorted(VENUES))
def test_python_runs_without_the_extension(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(venues_native, "compiled", None)
    assert type(make_core(VENUES[name](), Stamper(Source.COINBASE_COLLECTOR, 1), "native")) is FeedCore


@needs_native
@pytest.mark.parametrize("feed", [*(cls() for _, cls in sorted(VENUES.items())), AdvancedTradeFeed()])
def test_native_where_the_feed_has_a_twin_and_the_build_a_port(feed: VenueFeed) -> None:
    stamper = Stamper(Source.COINBASE_COLLECTOR, 7, counter=41)
    core = make_core(feed, stamper, "native")
    spec = feed.native_spec()
    if spec is not None and _ported(spec[0]):
        assert type(core) is NativeCore
        assert core.CORE == "native"
        assert core.stats.frames == 0
    else:
        assert type(core) is FeedCore


def test_a_feed_says_how_to_build_its_twin() -> None:
    assert CoinbaseFeed(["BTC-USD"], "level2").native_spec() == (
        "coinbase",
        {"products": ["BTC-USD"], "level2_channel": "level2"},
    )
    assert AdvancedTradeFeed(["ETH-USD"]).native_spec() == ("coinbase_advanced", {"products": ["ETH-USD"]})


@needs_native
def test_native_feed_refuses_an_unknown_api_and_parameters_of_other_types() -> None:
    assert native.compiled is not None
    with pytest.raises(NotImplementedError, match='no native feed for venue API "nope"'):
        native.compiled.NativeFeed("nope", {"a": None, "b": True, "c": 1, "d": "x", "e": ["y"]}, STAMPER)
    with pytest.raises(TypeError, match='parameter "e": a list is not None, bool, int, str or a list of str'):
        native.compiled.NativeFeed("nope", {"e": ["y", 2]}, STAMPER)
    with pytest.raises(TypeError, match='parameter "f": a float is not'):
        native.compiled.NativeFeed("nope", {"f": 1.5}, STAMPER)
    with pytest.raises(OverflowError):
        native.compiled.NativeFeed("nope", {}, Stamper(1, 1 << 16))  # a stream id is 16 bits


@pytest.mark.parametrize("core", ["python", "native"])
def test_each_new_kind_of_rejected_frame_is_told_once(core: str) -> None:
    feed = make_core(CoinbaseFeed(["BTC-USD"]), Stamper(Source.COINBASE_COLLECTOR, 1), core)
    assert len(feed.stats.samples) == 0
    told = [feed.on_frame_batch(raw, 1) for raw in (b"not json", b'{"type":"nope"}', b"also not json")]
    assert told == [(b"", TODO_NEW_REJECT), (b"", TODO_NEW_REJECT), (b"", 0)]  # no messages from any
    assert len(feed.stats.samples) == 2
    assert feed.stats.samples["invalid_json"] == "not json"


FIXTURES = Path(__file__).resolve().parents[3] / "shared/fixtures/coinbase/exchange-ws-feed"
CAPTURE = FIXTURES / "cryptofeed_2021-04-17_level2-ticker-matches_10-products.jsonl"


@needs_native
def test_one_counter_numbers_the_output_and_both_cores_and_refusals_are_alike() -> None:
    """The output's own messages between frames (a PublisherLoss here) take numbers from the same
    Stamper the native feed stamps with; a snapshot it cannot take raises as the Python feed does."""
    if not _ported("coinbase"):
        pytest.skip("this build has no compiled coinbase feed")
    cores = [
        make_core(CoinbaseFeed(["BTC-USD"]), Stamper(Source.COINBASE_COLLECTOR, 5, counter=9), core)
        for core in ("python", "native")
    ]
    assert [type(c) for c in cores] == [FeedCore, NativeCore]
    for n, raw in enumerate(CAPTURE.read_bytes().splitlines()[:300]):
        out = [core.on_frame(raw, n) for core in cores]
        assert out[0] == out[1]
        if n % 7 == 0:  # RelayOutput.send_event between frames
            assert len({core.stamper.message(n, PublisherLoss(n)) for core in cores}) == 1
        assert cores[0].stamper.counter == cores[1].stamper.counter
    assert cores[1].stamper.counter > 300
    gone = [core.on_disconnect(1) for core in cores]
    assert gone[0] == gone[1] != b""
    raised = []
    for core in cores:
        with pytest.raises(VenueMessageError) as info:
            core.on_snapshot("BTC-USD", b"{}", 2)
        raised.append((info.value.venue, info.value.raw, info.value.reason, str(info.value)))
    assert raised[0] == raised[1] == ("coinbase", b"{}", "this feed takes no REST snapshots",
                                      "coinbase: this feed takes no REST snapshots")  # fmt: skip
    assert cores[0].stats == cores[1].stats
    assert cores[1].extra == {"trade_id_gaps": cores[0].feed.trade_id_gaps}  # type: ignore[attr-defined]


@pytest.mark.parametrize("core", ["python", "native"])
def test_on_frame_batch_is_on_frame_in_an_envelope_with_the_per_frame_checks(core: str) -> None:
    """The collector's call: the same messages as ``on_frame`` would give, in the envelope
    ``RelayOutput`` would write for them alone (``encode_batch``, the receipt time), and the bits that
    say what else to do, each bit when it is due."""
    stamper, twin = Stamper(Source.BINANCE_COLLECTOR, 3), Stamper(Source.BINANCE_COLLECTOR, 3)
    batched = make_core(VENUES["binance"](["BTCUSDT"]), stamper, core)
    plain = make_core(VENUES["binance"](["BTCUSDT"]), twin, core)
    trade = b'{"e":"trade","E":1,"s":"BTCUSDT","t":7,"p":"64000.10","q":"0.5","T":2,"m":true}'
    depth = b'{"e":"depthUpdate","E":3,"s":"BTCUSDT","U":10,"u":12,"b":[["64000.00","1"]],"a":[]}'
    ts = 1_700_000_000_000_000_123
    for raw, todo in [(trade, 0), (b"not json", TODO_NEW_REJECT), (b"nor this", 0), (depth, TODO_SNAPSHOT)]:
        first = stamper.counter
        messages = plain.on_frame(raw, ts)
        batch = batched.on_frame_batch(raw, ts)
        assert stamper.counter == twin.counter
        if messages:
            sequence = int.from_bytes(messages[8:16], "little")
            count = stamper.counter - first
            envelope = encode_batch(1, Source.BINANCE_COLLECTOR, sequence, count, ts, messages)
            assert batch == (envelope, todo)
            assert envelope[BATCH_START:] == messages
        else:
            assert batch == (b"", todo)
    assert batched.wants_snapshot() == ["BTCUSDT"]
    assert batched.take_requests() == []
