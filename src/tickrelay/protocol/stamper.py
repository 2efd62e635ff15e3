"""One stream's stamper: its identity and the one counter its sequence numbers come from. Pure: no I/O.

A stream is (domain, source, stream id); its messages carry sequence = stream id << 48 | counter, the
counter from 1 and +1 per message (docs/protocol.md). ``RelayOutput`` owns one Stamper per stream and a
venue core (``venues.core.FeedCore``) stamps with the same object, so whatever makes the bytes, one
counter numbers them.

The four fields live in a base class: ``StamperFields`` here, or the compiled ``StamperBase`` with the
same fields and constructor when the extension is built, so that the compiled venue core reads and
writes ``counter`` without Python's attribute protocol (``tests/test_native.py`` checks the choice).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tickrelay.native import compiled
from tickrelay.protocol.codec import (
    Domain,
    encode_events,
    encode_quote_message,
    encode_trade_message,
    make_sequence,
)
from tickrelay.protocol.messages import Event, Quote, Trade


class StamperFields:
    """One stream's identity (domain, source, stream id) and its message counter: the fields."""

    __slots__ = ("counter", "domain", "source", "stream_id")

    def __init__(
        self, source: int, stream_id: int, domain: int = Domain.MARKET_DATA, counter: int = 0
    ) -> None:
        self.source = source
        self.stream_id = stream_id
        self.domain = domain
        self.counter = counter  # the last counter assigned


# mypy checks against the reference; the compiled class has the same fields (_native.pyi)
if TYPE_CHECKING or compiled is None:  # noqa: SIM108  # pragma: no cover
    _Fields = StamperFields
else:  # pragma: no cover
    _Fields = compiled.StamperBase


class Stamper(_Fields):
    """One stream's identity (domain, source, stream id) and its message counter."""

    __slots__ = ()

    def next_sequence(self) -> int:
        self.counter += 1
        return make_sequence(self.stream_id, self.counter)

    def message(self, ts_ns: int, event: Event) -> bytes:
        """``event`` as the stream's next message (Trade and Quote take the fused encoders)."""
        seq = self.next_sequence()
        kind = type(event)
        if kind is Trade and self.domain == Domain.MARKET_DATA:
            return encode_trade_message(self.source, seq, ts_ns, event)  # type: ignore[arg-type]
        if kind is Quote and self.domain == Domain.MARKET_DATA:
            return encode_quote_message(self.source, seq, ts_ns, event)  # type: ignore[arg-type]
        return encode_events(self.domain, self.source, seq, ts_ns, event)
