"""The seam between the cores: which one runs, how to turn the compiled one off, and that no input
makes the compiled core panic into Python (a panic would surface as pyo3's PanicException, a
BaseException that no ``except Exception`` in the relay would catch)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from hypothesis import given, strategies as st

from tickrelay.errors import FixedPointError, ProtocolError
from tickrelay.native import CORE, compiled
from tickrelay.protocol.codec import encode_trade_message
from tickrelay.protocol.fixed import parse_fixed8_rounded
from tickrelay.protocol.link import check_run_py
from tickrelay.protocol.messages import Trade
from tickrelay.relay.fanout import Filter, select_py


needs_native = pytest.mark.skipif(compiled is None, reason="the compiled core is not built")
_PROBE = (
    "import tickrelay.native as n, tickrelay.relay.fanout as f, tickrelay.protocol.codec as c, "
    "tickrelay.protocol.stamper as s; "
    "print(n.CORE, type(f.selector(f.Filter())).__name__, c.Decoder.__module__, s.Stamper.__base__.__name__)"
)


def _core_in_a_new_process(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "TICKRELAY_NO_EXTENSIONS"}
    out = subprocess.run([sys.executable, "-c", _PROBE], env=clean | env, capture_output=True, text=True)
    return out.stdout.strip()


def test_no_extensions_forces_pure_python() -> None:
    assert (
        _core_in_a_new_process(TICKRELAY_NO_EXTENSIONS="1")
        == "python partial tickrelay.protocol.codec StamperFields"
    )


def test_commands_run_with_no_extensions_set() -> None:
    # the configuration refuses unknown TICKRELAY_* variables: this one is not a setting
    env = {**os.environ, "TICKRELAY_NO_EXTENSIONS": "1"}
    out = subprocess.run([sys.executable, "-m", "tickrelay", "config", "show", "--json"], env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert (out.returncode, out.stderr) == (0, "")


@needs_native
def test_the_compiled_core_runs_when_built() -> None:
    built = "native Selector tickrelay._native StamperBase"
    assert _core_in_a_new_process() == built
    assert _core_in_a_new_process(TICKRELAY_NO_EXTENSIONS="0") == built
    forced_off = os.environ.get("TICKRELAY_NO_EXTENSIONS", "0") != "0"
    assert CORE == ("python" if forced_off else "native")  # noqa: SIM300 - CORE is what is checked


_RUN = b"".join(encode_trade_message(3, i, i, Trade(7, i, 1, i, 100 + i % 3, 51, 0)) for i in range(4))
_FILTERS = [Filter(), Filter(venues=frozenset({101})), Filter(frozenset({2}), asset_ids=frozenset({7}))]


def _outcome(call: Callable[[], object]) -> object:
    try:
        return call()
    except (ProtocolError, FixedPointError) as exc:  # the documented families; anything else fails
        return type(exc), str(exc)


@needs_native
@given(
    cut=st.integers(0, len(_RUN)),
    at=st.integers(0, len(_RUN) - 1),
    byte=st.integers(0, 255),
    count=st.sampled_from([0, 1, 4, 2**32 - 1]),
    start=st.sampled_from([0, 1, 10**6]),
)
def test_truncated_and_corrupted_runs_get_the_python_verdicts(
    cut: int, at: int, byte: int, count: int, start: int
) -> None:
    assert compiled is not None
    data = bytearray(_RUN[:cut])
    if at < cut:
        data[at] = byte
    run = bytes(data)
    verdict = _outcome(lambda: check_run_py(run, start, count, 1, 64))
    assert _outcome(lambda: compiled.check_run(run, start, count, 1, 64)) == verdict
    for flt in _FILTERS:
        chosen = _outcome(lambda: compiled.Selector(flt)(memoryview(data)))  # noqa: B023 - called at once
        if verdict is None and start == 0:  # a validated run: the very same selection
            assert chosen == select_py(flt, run)


_HOSTILE = ["9" * 100_000, "0." + "0" * 100_000 + "1", "1e-9999", "1e" + "9" * 50, "\ud800", "-", ""]


@needs_native
@pytest.mark.parametrize("text", [*_HOSTILE, b"\xff\xfe", b"1\xc3", b"1.5\xe2\x82", b"\x00" * 64])
def test_hostile_number_texts_get_the_python_verdicts(text: str | bytes) -> None:
    assert compiled is not None
    expected = _outcome(lambda: parse_fixed8_rounded(text))
    assert _outcome(lambda: compiled.parse_fixed8_rounded(text)) == expected


@needs_native
def test_wrong_argument_types_are_type_errors() -> None:
    assert compiled is not None
    with pytest.raises(TypeError):
        compiled.parse_fixed8_rounded(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        compiled.Selector(Filter())("text")  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        compiled.check_run(_RUN, -1, 4, 1, 64)
