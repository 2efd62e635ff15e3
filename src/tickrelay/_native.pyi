# The compiled core (native/py/src/lib.rs), written by hand so that mypy --strict checks callers.
# Each function matches the Python function it names, exceptions and messages included.

from tickrelay.relay.fanout import Filter

def parse_fixed8_rounded(text: str | bytes, /) -> tuple[int, bool]:
    """tickrelay.protocol.fixed.parse_fixed8_rounded."""

def check_run(data: bytes, start: int, count: int, domain: int, max_payload: int, /) -> None:
    """tickrelay.protocol.link.check_run."""

def select(flt: Filter, body: bytes | memoryview, /) -> tuple[bytes, int]:
    """tickrelay.relay.fanout.select."""
