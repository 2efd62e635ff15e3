"""Fixed point: exact against decimal.Decimal on every number in the shared fixtures."""

import re
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from tickrelay.errors import FixedPointError
from tickrelay.protocol.fixed import format_fixed8, parse_fixed8, parse_fixed8_rounded


FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
# JSON strings that hold a decimal number, and bare JSON numbers (Kraken v2), as written in the file.
_NUMBER = re.compile(rb'"(-?\d+\.\d+|-?\d+)"|[:\[,](-?\d+\.\d+(?:[eE][-+]?\d+)?)(?=[,\]}])')


def _expected(text: str) -> tuple[int, bool]:
    scaled = Decimal(text) * 10**8
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
def test_examples(text: str | bytes, value: int, rounded: bool) -> None:
    assert parse_fixed8_rounded(text) == (value, rounded)
    assert parse_fixed8(text) == value


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
    ],
)
def test_not_numbers_or_out_of_range(text: str) -> None:
    with pytest.raises(FixedPointError):
        parse_fixed8(text)


@given(st.decimals(min_value=Decimal("-9e10"), max_value=Decimal("9e10"), allow_nan=False, places=12))
def test_matches_decimal_half_even(d: Decimal) -> None:
    text = f"{d:f}"
    assert parse_fixed8_rounded(text) == _expected(text)


def test_format() -> None:
    assert format_fixed8(11682785000000) == "116827.85000000"
    assert format_fixed8(2942020000000, 1) == "29420.2"
    assert format_fixed8(-150000000, 10) == "-1.5000000000"
    assert format_fixed8(5 * 10**8, 0) == "5"
    with pytest.raises(ValueError, match="more than 1 decimals"):
        format_fixed8(2942025000000, 1)
