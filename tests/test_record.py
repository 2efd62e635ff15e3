"""Record and replay: real processes, rotation, the index, and a byte-exact round trip of payloads."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.relay.conftest import FIXTURES, ME, message, normalize, start_relay
from tickrelay.protocol.codec import Decoder
from tickrelay.record import RecordWriter, iter_messages, read_index


def test_writer_index_rotation_and_seek(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    writer = RecordWriter(out, rotate_bytes=1)  # every chunk starts a new segment
    msgs = [message(i) for i in range(300)]
    for i, m in enumerate(msgs):
        writer.append(m)
        if i % 100 == 99:
            writer.flush()
    writer.close()
    chunks = read_index(out)
    assert [(c.segment, c.offset, c.messages) for c in chunks] == [(1, 0, 100), (2, 0, 100), (3, 0, 100)]
    assert (chunks[1].first_ts_ns, chunks[1].last_ts_ns) == (100, 199)  # message(i) carries timestamp i
    assert [m.raw for m in iter_messages(out)] == msgs
    assert [m.raw for m in iter_messages(out, since_ns=150)] == msgs[100:]  # seeks by chunk


@pytest.mark.timeout(120)
def test_record_then_replay_round_trip_is_byte_exact(tmp_path: Path) -> None:
    capture = FIXTURES / "binance/spot/hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT"
    stream = tmp_path / "in.v2"
    expected = [
        m.payload
        for m in normalize(
            "binance", capture.with_suffix(".jsonl"), stream,
            "--snapshot", f"BTCUSDT={capture}.rest-depth-snapshot.json@7",
        )
    ]  # fmt: skip
    a, b = tmp_path / "a.sock", tmp_path / "b.sock"
    relay_a, relay_b = start_relay(a), start_relay(b)
    out = tmp_path / "rec"
    recorder = subprocess.Popen(
        [*ME, "record", "--socket", str(a), "--out", str(out), "--rotate-mb", "0.2", "--flush-s", "0.2"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while (
            '"record"'
            not in subprocess.run(
                [*ME, "relay-status", "--socket", str(a), "--json"], capture_output=True, text=True
            ).stdout
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        subprocess.run([*ME, "publish", "--socket", str(a), str(stream)], check=True, capture_output=True)
        time.sleep(0.5)
        recorder.send_signal(signal.SIGINT)  # stops cleanly with everything written
        _, err = recorder.communicate(timeout=20)
        assert recorder.returncode == 0
        assert f"{len(expected)} messages in" in err
        assert len({c.segment for c in read_index(out)}) > 1  # rotated by size
        tail = subprocess.Popen(
            [*ME, "tail", "--socket", str(b), "--raw", "--count", str(len(expected))],
            stdout=subprocess.PIPE,
            env={**os.environ},
        )
        time.sleep(0.5)
        done = subprocess.run(
            [*ME, "replay", "--socket", str(b), "--speed", "max", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        raw, _ = tail.communicate(timeout=30)
        replayed = Decoder()
        replayed.feed(raw)
        assert [m.payload for m in replayed] == expected  # payloads byte for byte
    finally:
        for relay in (relay_a, relay_b):
            relay.send_signal(signal.SIGTERM)
            relay.wait(10)
    missing = subprocess.run(
        [*ME, "replay", "--socket", str(b), str(tmp_path / "nothing")], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert "no recording here" in missing.stderr


def test_a_burst_is_written_in_bounded_chunks_without_waiting_for_the_timer(tmp_path: Path) -> None:
    msgs = [message(0)] * 100  # 74 bytes each
    out = tmp_path / "rec"
    writer = RecordWriter(out, chunk_bytes=740)  # ten messages a chunk
    for m in msgs:
        writer.append(m)
    assert writer.chunks == 10  # nobody called flush(): memory stays bounded
    writer.close()
    assert [c.messages for c in read_index(out)] == [10] * 10
    assert [m.raw for m in iter_messages(out)] == msgs


def test_a_restarted_recorder_continues_and_retention_deletes_the_oldest_segments(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    (tmp_path / "rec.x.1.zst").write_bytes(b"")  # recording "rec.x" beside it: same glob, not ours
    first = RecordWriter(out, rotate_bytes=1)  # a new segment at every chunk
    for i in range(3):
        first.append(message(i))
        first.flush()
    first.close()
    second = RecordWriter(out, rotate_bytes=1, keep_bytes=1)  # restarted: segments 4.., keeps the newest
    for i in range(3, 6):
        second.append(message(i))
        second.flush()
    second.close()
    assert [c.segment for c in read_index(out)] == [1, 2, 3, 4, 5, 6]  # nothing overwritten
    assert sorted(p.name for p in tmp_path.glob("rec.*.zst")) == ["rec.6.zst", "rec.x.1.zst"]  # not ours
    assert second.deleted == 5
    assert [m.raw for m in iter_messages(out)] == [message(5)]  # deleted segments are skipped
