# The compiled core (native/py/src/lib.rs), written by hand so that mypy --strict checks callers.
# Each function matches the Python function it names, exceptions and messages included.

from typing import TypedDict, final

from tickrelay.errors import ProtocolError
from tickrelay.protocol.codec import Message
from tickrelay.protocol.stamper import Stamper
from tickrelay.relay.fanout import Filter

def parse_fixed8_rounded(text: str | bytes, /) -> tuple[int, bool]:
    """tickrelay.protocol.fixed.parse_fixed8_rounded."""

def check_run(data: bytes, start: int, count: int, domain: int, max_payload: int, /) -> None:
    """tickrelay.protocol.link.check_run."""

class Selector:
    """tickrelay.relay.fanout.selector: ``flt`` compiled once; a call is select_py(flt, body)."""

    def __init__(self, flt: Filter, /) -> None: ...
    def __call__(self, body: bytes | memoryview, /) -> tuple[bytes, int]: ...

class Decoder:
    """tickrelay.protocol.codec.PyDecoder."""

    errors: list[ProtocolError]
    def __init__(
        self,
        *,
        max_payload: int = ...,
        domain: int | None = ...,
        verify_checksum: bool = ...,
        require_checksum: bool = ...,
        resync: bool = ...,
    ) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview, /) -> None: ...
    @property
    def buffered(self) -> int: ...
    @property
    def skipped_bytes(self) -> int: ...
    def take_buffered(self) -> bytes: ...
    def next_message(self) -> Message | None: ...
    def __iter__(self) -> Decoder: ...
    def __next__(self) -> Message: ...

class NativeBookStats(TypedDict):
    """tickrelay.venues.feed.BookStats's fields."""

    updates_applied: int
    checksums_verified: int
    checksum_failures: int
    gaps: int
    resyncs: int
    crossed: int
    best_bid: str | None
    best_ask: str | None

class NativeStats(TypedDict):
    """tickrelay.venues.feed.FeedStats's fields, and ``extra``: the venue's own counters."""

    frames: int
    messages: dict[str, int]
    ignored: dict[str, int]
    rejected: dict[str, int]
    samples: dict[str, str]
    rounded: int
    venue_errors: int
    books: dict[str, NativeBookStats]
    extra: dict[str, int]

class StamperBase:
    """tickrelay.protocol.stamper.StamperFields, compiled: a NativeFeed reads and writes ``counter``
    as a Rust field. Values out of the ranges raise OverflowError (source and domain 0-255, stream_id
    0-65535, counter 0-2**64-1)."""

    source: int
    stream_id: int
    domain: int
    counter: int
    def __init__(self, source: int, stream_id: int, domain: int = 1, counter: int = 0) -> None: ...

@final
class NativeFeed:
    """A native venue feed stamping as ``stamper``: tickrelay.venues.core.FeedCore's calls.

    Raises NotImplementedError when ``api`` has no native feed in this build, TypeError / ValueError
    when ``params`` (``VenueFeed.native_spec()``) are not what the feed takes. A call with events to
    stamp reads ``stamper.counter`` and writes the last counter it assigned back.
    """

    def __init__(self, api: str, params: dict[str, object], stamper: Stamper, /) -> None: ...
    def on_frame(self, raw: bytes, ts_recv_ns: int, /) -> bytes: ...
    def on_frame_batch(self, raw: bytes, ts_recv_ns: int, /) -> tuple[bytes, int]:
        """FeedCore.on_frame_batch: (the messages as one batch envelope or b"", the TODO_* bits)."""
    def on_snapshot(self, key: str, body: bytes, ts_recv_ns: int, /) -> bytes:
        """Raises tickrelay.errors.VenueMessageError as the Python feed does."""
    def on_disconnect(self, ts_ns: int, /) -> bytes: ...
    def wants_snapshot(self) -> list[str]: ...
    def keep_wanted_on(self, holder: object, /) -> None:
        """Set ``holder.snapshot_wanted`` to ``bool(wants_snapshot())`` now and again by every call that
        changes it (``holder`` is held weakly: the core that owns this feed)."""
    def take_requests(self) -> list[bytes]: ...
    def stats(self) -> NativeStats: ...
