"""Differences between the cores that the differential fuzz found, each kept as the minimal
``replay`` it printed, so that they stay fixed (``tests/native/differential.py``)."""

from __future__ import annotations

from tests.native.corpus import APIS
from tests.native.differential import needs, replay


@needs(APIS["kraken_v1"])
def test_kraken_v1_a_channel_named_book_without_depth_is_a_bad_book() -> None:
    # the Python feed looks "book" up as the book kind (then rejects it: no depth); the native core
    # called it an unknown channel
    frame = b'[992,{"a":[["356.70000000","0.14260046","1618678157.155314"]],"c":"3891792110"},'
    frame += b'"book","XMR/USD"]'
    assert replay("kraken_v1", "normalize", [("frame", frame)]) == 1
