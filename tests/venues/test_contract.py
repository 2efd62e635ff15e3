"""The VenueFeed contract, run over every entry of ``VENUES`` and every recording of that venue.

* every frame is classified exactly once: it produced messages, or it added one to ``ignored`` or
  ``rejected`` (so frames == frames with messages + ignored + rejected);
* garbage (random bytes, invalid JSON, unknown kinds, truncated frames) is ignored or rejected with a
  count, never an exception;
* ``on_disconnect`` invalidates every book that was published.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tickrelay.commands.normalize import parse_snapshot_option
from tickrelay.config import load_settings
from tickrelay.errors import VenueMessageError
from tickrelay.protocol.messages import L2Delta, L2Snapshot, Reason, StateInvalidation
from tickrelay.venues import VENUES
from tickrelay.venues.feed import FeedStats, VenueFeed


FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
RECORDINGS = [
    (venue, path)
    for venue in VENUES
    for path in sorted((FIXTURES / venue).rglob("*.jsonl"))
    if ".rest-depth-snapshots" not in path.name
]
GARBAGE = [
    b"",
    b" ",
    b"\xff\xfe\x00",
    b"not json",
    b"null",
    b"1",
    b'"text"',
    b"[]",
    b"{}",
    b"[1,2,3]",
    b'{"type":"nonsense"}',
    b'{"e":"nonsense","s":"BTCUSDT"}',
    b'{"stream":"x@nonsense","data":{}}',
    b'{"stream":1,"data":2}',
    b'{"channel":"nonsense","data":[]}',
    b'{"event":"nonsense"}',
    b'[0,{"a":1},"book-10","XBT/USD"]',
    b'{"e":"trade","s":"BTCUSDT","p":"1","q":"1","T":"x","m":true}',
]


def classify(feed: VenueFeed, raw: bytes, ts: int) -> int:
    """Feed one frame; assert it was classified exactly once; return how many values it produced."""
    stats = feed.stats
    before = sum(stats.ignored.values()) + sum(stats.rejected.values()), stats.frames
    events = list(feed.on_frame(raw, ts))
    after = sum(stats.ignored.values()) + sum(stats.rejected.values()), stats.frames
    assert after[1] == before[1] + 1, raw[:200]
    assert after[0] - before[0] == (0 if events else 1), raw[:200]
    return len(events)


def snapshots_for(path: Path) -> dict[str, list[bytes]]:
    """REST depth snapshots recorded beside a Binance capture, by symbol."""
    stem = str(path.with_suffix(""))
    found: dict[str, list[bytes]] = {}
    for name, spec in ((".rest-depth-snapshots.jsonl", "{}"), (".rest-depth-snapshot.json", "BTCUSDT={}")):
        if Path(stem + name).exists():
            for snap in parse_snapshot_option(spec.format(stem + name)):
                found.setdefault(snap.symbol, []).append(snap.body)
    return found


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_feed_shape(venue: str) -> None:
    feed = VENUES[venue]()
    assert venue == feed.NAME
    assert isinstance(feed.VENUE_ID, int)
    assert isinstance(feed.stats, FeedStats)
    assert all(isinstance(m, bytes) for m in feed.subscribe_messages())
    assert feed.take_requests() == []


SETTINGS = [
    (
        "binance",
        {},
        "BinanceFeed",
        "ws://x/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms",
    ),
    ("coinbase", {}, "CoinbaseFeed", "ws://x"),
    ("coinbase", {"TICKRELAY_COINBASE_API": "advanced"}, "AdvancedTradeFeed", "ws://x"),
    ("kraken", {}, "KrakenFeed", "ws://x/v2"),
    ("kraken", {"TICKRELAY_KRAKEN_API": "v1"}, "KrakenFeed", "ws://x"),
]


@pytest.mark.parametrize(("venue", "env", "kind", "url"), SETTINGS)
def test_the_registry_builds_each_feed_and_its_url_from_the_settings(
    venue: str, env: dict[str, str], kind: str, url: str
) -> None:
    """The collector knows no venue class: VENUES[venue].from_settings / .url are all it uses."""
    urls = {"COINBASE_WS_URL": "ws://x", "KRAKEN_WS_URL": "ws://x", "BINANCE_WS_URL": "ws://x/"}
    urls["TICKRELAY_BINANCE_REST_URL"] = "http://rest"
    config = load_settings(None, "-", {**urls, "BINANCE_SYMBOLS": "BTCUSDT", **env}, {}).config
    feed = VENUES[venue].from_settings(config)
    assert type(feed).__name__ == kind
    assert VENUES[venue].url(config) == type(feed).url(config) == url
    assert feed.subscribe_messages() or venue == "binance"  # Binance: the URL is the subscription
    assert VENUES[venue].rest_url(config) == ("http://rest" if feed.SNAPSHOTS else "")
    if feed.SNAPSHOTS:
        assert (
            feed.snapshot_url("https://rest/", "BTCUSDT")
            == "https://rest/api/v3/depth?symbol=BTCUSDT&limit=1000"
        )
    else:  # books come whole over the WebSocket
        assert feed.wants_snapshot() == []
        for call in (lambda: feed.snapshot_url("https://rest", "X"), lambda: feed.on_snapshot("X", b"{}", 0)):
            with pytest.raises(VenueMessageError, match="takes no REST snapshots"):
                call()
    assert feed.on_disconnect(1)[0] == StateInvalidation(feed.VENUE_ID, 51, Reason.DISCONNECT, ())


@pytest.mark.parametrize(("venue", "path"), RECORDINGS, ids=[f"{v}:{p.name[:40]}" for v, p in RECORDINGS])
def test_every_frame_classified_once_and_disconnect_invalidates_every_book(venue: str, path: Path) -> None:
    feed = VENUES[venue]()
    snapshots = snapshots_for(path)
    books: set[int] = set()
    with_messages = 0
    for n, raw in enumerate(path.read_bytes().splitlines(), 1):
        with_messages += classify(feed, raw, n) > 0
        for symbol in feed.wants_snapshot():
            if snapshots.get(symbol):
                values = feed.on_snapshot(symbol, snapshots[symbol].pop(0), n)
                books.update(v.asset_id for v in values if isinstance(v, L2Snapshot | L2Delta))
    stats = feed.stats
    assert stats.frames == with_messages + sum(stats.ignored.values()) + sum(stats.rejected.values())
    assert sum(stats.messages.values()) > 0
    invalidations = [v for v in feed.on_disconnect(10**18) if isinstance(v, StateInvalidation)]
    assert invalidations
    assert all(v.reason == Reason.DISCONNECT for v in invalidations)
    covered = {a for v in invalidations for a in v.asset_ids}
    assert any(not v.asset_ids for v in invalidations) or books <= covered


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_garbage_is_counted_never_raised(venue: str) -> None:
    feed = VENUES[venue]()
    frames = list(GARBAGE)
    for path in (FIXTURES / venue).rglob("*.jsonl"):
        lines = path.read_bytes().splitlines()[:40]
        frames += [raw[: len(raw) // 2] for raw in lines]  # truncated frames
    for raw in frames:
        classify(feed, raw, 1)
    assert feed.stats.frames == len(frames)


@pytest.mark.parametrize("venue", sorted(VENUES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_random_bytes_are_counted_never_raised(venue: str, data: bytes) -> None:
    classify(VENUES[venue](), data, 1)
