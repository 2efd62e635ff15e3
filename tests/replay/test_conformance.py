"""Third-party clients against the replay exchange over ``--tls`` (slow: they install into their own
virtualenvs from PyPI on first use). Only their endpoint addresses point at the replay exchange and
they trust its certificate through SSL_CERT_FILE / REQUESTS_CA_BUNDLE: nothing of their logic is
patched. Their books must end where ``tickrelay normalize`` of the same recording ends, with every
checksum verified."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.replay.conftest import FIXTURES


pytestmark = pytest.mark.slow
ME = [sys.executable, "-m", "tickrelay"]
CLIENTS = Path(__file__).parent / "clients"
sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))  # last: bench/nats.py, not nats-py
from normalize import cache_dir, cryptofeed_python  # noqa: E402


@pytest.fixture(scope="module")
def tls_exchange() -> Iterator[tuple[str, dict[str, str]]]:
    """The command, ``--tls --speed max --no-loop``: its address and the environment that trusts it."""
    proc = subprocess.Popen(
        [*ME, "replay-exchange", "--port", "0", "--tls", "--speed", "max", "--no-loop"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    host = proc.stderr.readline().split("wss://")[1].split("/")[0]
    ca = proc.stderr.readline().split("SSL_CERT_FILE=", 1)[1].split()[0]
    yield host, {**os.environ, "SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca}
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)


def normalized(venue: str, stem: str, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [*ME, "normalize", "--venue", venue, str(FIXTURES / f"{stem}.jsonl"), *extra, "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout)["book"])


def run_client(python: Path, script: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [str(python), str(CLIENTS / script), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.splitlines()[-1]))


def test_cryptofeed_kraken_books_and_checksums(tls_exchange: tuple[str, dict[str, str]]) -> None:
    host, env = tls_exchange
    theirs = run_client(
        cryptofeed_python("2.4.1"), "cryptofeed_book.py", env, "kraken", host, "BTC-CHF,XMR-USD,ADA-BTC"
    )
    ours = normalized("kraken", "kraken/v1/cryptofeed_2021-04-17_book-1000_10-pairs")
    for symbol, pair in [("BTC-CHF", "XBT/CHF"), ("XMR-USD", "XMR/USD"), ("ADA-BTC", "ADA/XBT")]:
        assert theirs[symbol]["checksums"] == ours[pair]["checksums_verified"] > 0  # every one verified
        assert Decimal(theirs[symbol]["best_bid"]) == Decimal(ours[pair]["best_bid"])
        assert Decimal(theirs[symbol]["best_ask"]) == Decimal(ours[pair]["best_ask"])


def test_cryptofeed_binance_book(tls_exchange: tuple[str, dict[str, str]]) -> None:
    host, env = tls_exchange
    theirs = run_client(cryptofeed_python("2.4.1"), "cryptofeed_book.py", env, "binance", host, "BTC-USDT")
    stem = "binance/spot/hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT"
    snapshot = f"BTCUSDT={FIXTURES / stem}.rest-depth-snapshot.json"
    ours = normalized("binance", stem, "--snapshot", snapshot)["BTCUSDT"]
    assert theirs["BTC-USDT"]["updates"] == ours["updates_applied"] + 1  # their snapshot counts as one
    assert Decimal(theirs["BTC-USDT"]["best_bid"]) == Decimal(ours["best_bid"])
    assert Decimal(theirs["BTC-USDT"]["best_ask"]) == Decimal(ours["best_ask"])


def test_python_kraken_sdk_v2_book_and_checksums(tls_exchange: tuple[str, dict[str, str]]) -> None:
    host, env = tls_exchange
    venv = cache_dir() / "python-kraken-sdk-3.5.1"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "python-kraken-sdk==3.5.1"], check=True)
    theirs = run_client(python, "kraken_sdk_book.py", env, host)
    recorded = [
        json.loads(f)
        for f in (FIXTURES / "kraken/v2/python-kraken-sdk_2023-07-30_book-10_BTC-USD.jsonl")
        .read_text()
        .splitlines()
    ]
    assert theirs == {"updates": len(recorded), "invalid": 0, "top": _top(recorded)}


def _top(frames: list[dict[str, Any]]) -> list[str]:
    """The best bid and ask after the recorded book, kept at its depth (10) as a client keeps it."""
    books: dict[str, dict[Decimal, Decimal]] = {"bids": {}, "asks": {}}
    for frame in frames:
        for side, book in books.items():
            for level in frame["data"][0][side]:
                price, qty = Decimal(str(level["price"])), Decimal(str(level["qty"]))
                if qty == 0:
                    book.pop(price, None)
                else:
                    book[price] = qty
            kept = sorted(book, reverse=side == "bids")[:10]
            books[side] = {p: book[p] for p in kept}
    return [str(max(books["bids"])), str(min(books["asks"]))]
