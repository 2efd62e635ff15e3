"""Fixed point: exact against decimal.Decimal on every number in the shared fixtures."""

import re
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path

import pytest
from hypothesis import example, given, strategies as st

from tests.cores import both
from tickrelay.errors import FixedPointError
from tickrelay.native import compiled
from tickrelay.protocol.fixed import format_fixed8, parse_fixed8, parse_fixed8_rounded


FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
# JSON strings that hold a decimal number, and bare JSON numbers (Kraken v2), as written in the file.
_NUMBER = re.compile(rb'"(-?\d+\.\d+|-?\d+)"|[:\[,](-?\d+\.\d+(?:[eE][-+]?\d+)?)(?=[,\]}])')


Parse = Callable[[str | bytes], tuple[int, bool]]


BOTH = pytest.mark.parametrize("parse", both(parse_fixed8_rounded, "parse_fixed8_rounded"))


def _expected(text: str) -> tuple[int, bool]:
    with localcontext(prec=len(text) + 30):  # exact for any length
        scaled = Decimal(text).scaleb(8)
        exact = scaled.to_integral_value(rounding=ROUND_HALF_EVEN)
    return int(exact), exact != scaled


def test_every_decimal_in_the_fixtures_is_exact() -> None:
    files = sorted(p for p in FIXTURES.rglob("*") if p.suffix in (".jsonl", ".json"))
    assert len(files) >= 12
    seen: set[str] = set()
    for path in files:
        for match in _NUMBER.finditer(path.read_bytes()):
            seen.add((match.group(1) or match.group(2)).decode())
    assert len(seen) > 50_000  # every distinct price, size, id and time text in the captures
    wrong = [
        t
        for t in seen
        if abs(int(t.split(".")[0] or 0)) < 9 * 10**10 and parse_fixed8_rounded(t) != _expected(t)
    ]
    assert wrong == []


@BOTH
@pytest.mark.parametrize(
    ("text", "value", "rounded"),
    [
        ("116827.85", 11682785000000, False),
        ("0.00004147", 4147, False),
        (b"61737.63000000", 6173763000000, False),
        ("1e-05", 1000, False),
        ("-1.5", -150000000, False),
        ("+2", 200000000, False),
        (".5", 50000000, False),
        ("5.", 500000000, False),
        ("1.000000005", 100000000, True),  # half to even: down
        ("1.000000015", 100000002, True),  # half to even: up
        ("1.0000000051", 100000001, True),
        ("0.000000001", 0, True),
        ("1E2", 10000000000, False),
        ("0e9999", 0, False),
        ("92233720368.54775807", 2**63 - 1, False),
        ("-92233720368.54775808", -(2**63), False),
    ],
)
def test_examples(text: str | bytes, value: int, rounded: bool, parse: Parse) -> None:
    assert parse(text) == (value, rounded)
    assert parse_fixed8(text) == value


@BOTH
@pytest.mark.parametrize(
    ("text", "value", "rounded"),
    [
        ("0" * 5000 + "1", 100000000, False),  # int() of the digits raised ValueError (4300-digit limit)
        ("0." + "0" * 5000 + "1", 0, True),
        ("0.000000005" + "0" * 5000, 0, True),  # a tie, half to even: down
        ("0.000000015" + "0" * 5000, 2, True),
        ("0.000000005" + "0" * 5000 + "1", 1, True),  # just over half
        ("1" + "0" * 5000 + "e-5000", 100000000, False),
        ("-0.000000001e-9999", 0, True),
        ("9223372036854775807e-8", 2**63 - 1, False),
    ],
)
def test_texts_of_any_length_are_exact(text: str, value: int, rounded: bool, parse: Parse) -> None:
    assert parse(text) == (value, rounded) == _expected(text)


@BOTH
@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "abc",
        "1..2",
        "1e",
        "1e+",
        "--1",
        "1_0",
        "²",
        " 1",
        "1e99999",
        "1e9999",
        "1e5x",
        "92233720368.54775808",
        "1e20",
        "-92233720368.54775809",
        "92233720368.547758075",  # rounds up past int64
        "1" + "0" * 5000,
        "0" * 5000 + "1e11",
        b"1\xff",
        "1\ud800",
        "١",
    ],
)
def test_not_numbers_or_out_of_range(text: str | bytes, parse: Parse) -> None:
    with pytest.raises(FixedPointError):
        parse(text)


@BOTH
@given(d=st.decimals(min_value=Decimal("-9e10"), max_value=Decimal("9e10"), allow_nan=False, places=12))
def test_matches_decimal_half_even(d: Decimal, parse: Parse) -> None:
    text = f"{d:f}"
    assert parse(text) == _expected(text)


_NUMBER_TEXT = r"[+-]?[0-9]{0,30}(\.[0-9]{0,30})?([eE][+-]?[0-9]{1,4})?"
# pieces that make a number text almost right: signs, points, exponents, space, non-ASCII digits
_PIECES = st.sampled_from(["", "-", "+", "0", "1", "5", "9", ".", "e", "E", " ", "\t", "²", "٣", "\x00",
                           "00000000000", "50000000001", "92233720368", "54775807", "e-9999"])  # fmt: skip
_TEXTS = st.from_regex(_NUMBER_TEXT, fullmatch=True) | st.lists(_PIECES, max_size=8).map("".join) | st.text()


def _outcome(parse: Callable[[str | bytes], tuple[int, bool]], text: str | bytes) -> object:
    try:
        return parse(text)
    except FixedPointError as exc:
        return str(exc)


@pytest.mark.skipif(compiled is None, reason="the compiled core is not built")
@given(text=_TEXTS | st.binary() | _TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(text="1" * 25 + ".5")
@example(text=b"\xff\xfe1")
@example(text="0.000022900")  # zeros past the 8th decimal: the fast path's, nothing rounded
@example(text="92233720368.547758070000")
@example(text="92233720368.547758080")
@example(text="1.000000001000")
@example(text="0." + "0" * 30)
def test_the_compiled_core_parses_as_the_python_one(text: str | bytes) -> None:
    assert compiled is not None
    assert _outcome(compiled.parse_fixed8_rounded, text) == _outcome(parse_fixed8_rounded, text)


@BOTH
@given(text=st.from_regex(_NUMBER_TEXT, fullmatch=True))
def test_every_number_text_matches_decimal_or_is_out_of_range(text: str, parse: Parse) -> None:
    if not any(c.isdigit() for c in text.split("e")[0].split("E")[0]):
        return
    value, rounded = _expected(text)
    if -(2**63) <= value < 2**63:
        assert parse(text) == (value, rounded)
    else:
        with pytest.raises(FixedPointError, match="out of range"):
            parse(text)


def test_format() -> None:
    assert format_fixed8(11682785000000) == "116827.85000000"
    assert format_fixed8(2942020000000, 1) == "29420.2"
    assert format_fixed8(-150000000, 10) == "-1.5000000000"
    assert format_fixed8(5 * 10**8, 0) == "5"
    with pytest.raises(ValueError, match="more than 1 decimals"):
        format_fixed8(2942025000000, 1)
