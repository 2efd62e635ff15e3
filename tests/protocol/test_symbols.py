"""asset_id: injective, decodable, and round-trips every symbol in the shared fixtures."""

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from tickrelay.errors import SymbolError
from tickrelay.protocol.symbols import HASHED_BIT, asset_id_for, is_packable, normalize_pair, symbol_for
from tickrelay.venues.binance_wire import normalize_symbol as binance_symbol


FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/"
symbols = st.text(ALPHABET, min_size=1, max_size=12)


@given(symbols, symbols)
def test_injective(a: str, b: str) -> None:
    assert (asset_id_for(a) == asset_id_for(b)) == (a == b)


@given(symbols)
def test_decodes_back_and_fits_63_bits(s: str) -> None:
    asset_id = asset_id_for(s)
    assert 0 < asset_id < 2**63
    assert symbol_for(asset_id) == s


def test_the_collision_of_the_old_design_is_impossible() -> None:
    assert asset_id_for("MATIC/USD") != asset_id_for("MATIC/USDT")
    assert asset_id_for("BTC/USD") == 603367314271748800


def test_other_symbols_are_hashed_with_bit_63() -> None:
    for s in ("VERYLONGTOKEN/USD", "btc/usd", "BTC-USD", "€/USD"):
        assert not is_packable(s)
        asset_id = asset_id_for(s)
        assert asset_id & HASHED_BIT
        assert symbol_for(asset_id) is None
    assert asset_id_for("VERYLONGTOKEN/USD") == asset_id_for("VERYLONGTOKEN/USD")
    with pytest.raises(SymbolError):
        asset_id_for("")


def test_invalid_ids_decode_to_none() -> None:
    assert symbol_for(0) is None
    assert symbol_for(38**12) is None
    assert symbol_for(1) is None  # "\0"*11 + "A": a padding digit before a character


def _fixture_symbols() -> set[str]:
    found: set[str] = set()
    for path in FIXTURES.rglob("*.jsonl"):
        text = path.read_text()
        found |= {
            normalize_pair(*p.split("-")) for p in re.findall(r'"product_id":"([A-Z0-9]+-[A-Z0-9]+)"', text)
        }
        found |= {
            normalize_pair(*p.split("/"))
            for p in re.findall(r'"(?:pair|symbol)":"([A-Z0-9]+/[A-Z0-9]+)"', text)
        }
        found |= {binance_symbol(s) for s in re.findall(r'"s":"([A-Z0-9]+)"', text)}
    return found


def test_round_trip_over_every_fixture_symbol() -> None:
    found = _fixture_symbols()
    assert {"BTC/USD", "SKL-USD".replace("-", "/"), "NKN/USDT", "BTC/CHF", "ADA/BTC", "BTC/USDT"} <= found
    assert len(found) >= 30
    ids = {asset_id_for(s) for s in found}
    assert len(ids) == len(found)
    assert all(symbol_for(asset_id_for(s)) == s for s in found)


def test_normalize_pair() -> None:
    assert normalize_pair("xbt", "usd") == "BTC/USD"
    assert normalize_pair("XDG", "EUR") == "DOGE/EUR"
    with pytest.raises(SymbolError):
        normalize_pair("", "USD")
    assert json.dumps(normalize_pair("eth", "xbt")) == '"ETH/BTC"'


def test_wire_values_are_named_and_unknown_ones_never_raise() -> None:
    from tickrelay.protocol.messages import Reason
    from tickrelay.protocol.symbols import name_of, venue_name

    assert name_of(Reason, 3) == "checksum_mismatch"
    assert name_of(Reason, 99) == "99"  # a newer publisher's reason
    assert name_of(Reason, 99, "?") == "?"
    assert (venue_name(102), venue_name(7), venue_name(7, "-")) == ("coinbase", "7", "-")
    from tickrelay.protocol.codec import domain_name

    assert [domain_name(d) for d in (1, 2, 3, 4)] == ["market-data", "signal", "execution", "system"]
    assert domain_name(9, "d9") == "d9"
    from tickrelay.protocol.codec import relay_source

    assert [relay_source(d) for d in (1, 2, 3, 4)] == [80, 81, 82, 83]  # docs/protocol.md table 1.3
