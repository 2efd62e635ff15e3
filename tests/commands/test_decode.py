"""`tickrelay decode` as a real process on real encoded data (a fixture through `tickrelay normalize`)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tickrelay.protocol.codec import MAGIC_BYTES as MAGIC, encode_events, make_sequence
from tickrelay.protocol.messages import Trade, UnknownTlv


FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
RAW = FIXTURES / "binance/spot/rust-orderbook-feed_2026-07-04_raw-depth100ms_BTCUSDT.jsonl"
SNAPSHOT = RAW.with_name(RAW.name.replace(".jsonl", ".rest-depth-snapshot.json"))
TRADE = Trade(603367314271748800, 11682785000000, 4147, 1755893490012637000, 102, 51, 1)


def _tickrelay(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tickrelay", *args], input=stdin, capture_output=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("decode") / "btcusdt.v2"
    done = _tickrelay(
        "normalize", "--venue", "binance", str(RAW), "--snapshot", f"BTCUSDT={SNAPSHOT}", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def test_prints_one_json_object_per_message(stream: bytes) -> None:
    done = _tickrelay("decode", "-", stdin=stream)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    meta, snapshot = lines[0], lines[1]
    assert meta["header"]["relay_domain"] == 1
    assert meta["header"]["source"] == 1
    assert meta["tlvs"] == [
        {
            **{"type": 4, "name": "InstrumentMeta", "asset_id": 603367314313451520},
            **{"venue_id": 100, "asset_type": 51, "price_decimals": 8, "size_decimals": 8},
            **{"venue_symbol": "BTCUSDT", "symbol": "BTC/USDT"},
        }
    ]
    (tlv,) = snapshot["tlvs"]
    body = json.loads(SNAPSHOT.read_text())
    assert tlv["name"] == "L2Snapshot"
    assert tlv["exchange_seq"] == body["lastUpdateId"] == 96935779456
    assert tlv["bids"][0] == [
        int(body["bids"][0][0].replace(".", "")),
        int(body["bids"][0][1].replace(".", "")),
    ]
    assert len(tlv["bids"]) == len(body["bids"])
    assert [line["header"]["sequence"] & 0xFFFFFFFFFFFF for line in lines] == list(range(1, len(lines) + 1))
    assert {t["name"] for line in lines[2:] for t in line["tlvs"]} == {"L2Delta"}


def test_symbol_and_unknown_tlvs(tmp_path: Path) -> None:
    path = tmp_path / "one.v2"
    path.write_bytes(encode_events(1, 3, make_sequence(1, 1), 5, TRADE, UnknownTlv(42, b"\x01")))
    done = _tickrelay("decode", str(path))
    (line,) = done.stdout.splitlines()
    trade, unknown = json.loads(line)["tlvs"]
    assert trade["symbol"] == "BTC/USD"
    assert (trade["price"], trade["volume"], trade["side"]) == (11682785000000, 4147, 1)
    assert unknown == {"type": 42, "name": "Unknown", "value": "01"}


def test_bad_checksum_is_a_clear_error(stream: bytes) -> None:
    second = stream.index(MAGIC, 4)
    broken = bytearray(stream)
    broken[second + 40] ^= 0xFF
    done = _tickrelay("decode", "-", stdin=bytes(broken))
    assert done.returncode == 1
    assert len(done.stdout.splitlines()) == 1
    assert done.stderr.decode().startswith(
        f"tickrelay decode: bad message #2 at byte {second}: checksum mismatch"
    )
    assert b"Traceback" not in done.stderr


def test_truncated_and_garbage_streams(stream: bytes, tmp_path: Path) -> None:
    done = _tickrelay("decode", "-", stdin=stream[:-5])
    assert done.returncode == 1
    assert b"truncated stream" in done.stderr
    done = _tickrelay("decode", "-", stdin=b"this is not protocol v2 at all")
    assert done.returncode == 1
    assert b"bad magic" in done.stderr
    done = _tickrelay("decode", str(tmp_path / "missing.v2"))
    assert (done.returncode, done.stderr) == (
        1,
        f"tickrelay decode: cannot read {tmp_path}/missing.v2: No such file or directory\n".encode(),
    )


def test_resync_skips_to_the_next_good_message(stream: bytes) -> None:
    second = stream.index(MAGIC, 4)
    broken = bytearray(b"junk" + stream)
    broken[4 + second + 40] ^= 0xFF
    good = _tickrelay("decode", "-", stdin=stream).stdout.splitlines()
    done = _tickrelay("decode", "--resync", "-", stdin=bytes(broken))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [good[0], *good[2:]]
    assert b"skipped a bad message" in done.stderr
    third = stream.index(MAGIC, second + 4)
    assert f"resynced past {4 + third - second} bad bytes".encode() in done.stderr
