# The compiled core (native/py/src/lib.rs), written by hand so that mypy --strict checks callers.
# Each function matches the Python function it names, exceptions and messages included.

from tickrelay.errors import ProtocolError
from tickrelay.protocol.codec import Message
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
