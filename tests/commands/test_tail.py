"""`tickrelay tail` as a user meets it: a header, readable UTC times, and no silent wait for a relay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tickrelay.commands.tail import format_time, header_line
from tickrelay.protocol.codec import Domain, Source, encode_events, make_sequence
from tickrelay.protocol.messages import Trade
from tickrelay.protocol.symbols import asset_id_for


ME = [sys.executable, "-m", "tickrelay"]
T0 = 1_723_075_201_123_456_789  # 2024-08-08T00:00:01.123456789Z


def test_times_are_readable_to_the_nanosecond() -> None:
    assert format_time(T0) == "2024-08-08T00:00:01.123456789Z"
    assert format_time(T0, "ns") == "1723075201123456789"
    assert format_time(T0, "local").split(" ")[1].endswith(":01.123456789")
    assert header_line().split() == ["time", "(UTC)", "stream:seq", "venue", "instrument", "event"]
    assert header_line().index("stream:seq") == len(format_time(T0)) + 1  # the columns line up


def test_tail_says_it_waits_for_the_relay_then_prints_a_header_and_utc_times(tmp_path: Path) -> None:
    sock = tmp_path / "md.sock"
    env = {k: v for k, v in os.environ.items() if k != "RELAY_SOCKET_PATH"}
    tail = subprocess.Popen(
        [*ME, "tail", "--socket", str(sock), "--count", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    relay = None
    try:
        assert tail.stderr is not None
        assert tail.stderr.readline() == (
            f"tickrelay tail: waiting for the relay at {sock} (start one: `tickrelay relay` or "
            "`tickrelay up`; Ctrl-C stops)\n"
        )
        relay = subprocess.Popen([*ME, "relay", "--socket", str(sock)], stderr=subprocess.DEVNULL, env=env)
        assert tail.stderr.readline() == "tickrelay tail: connected\n"
        btc = asset_id_for("BTC/USDT")
        stream = tmp_path / "two.v2"
        stream.write_bytes(b"".join(
            encode_events(Domain.MARKET_DATA, Source.PUBLISH_TOOL, make_sequence(1, n), T0 + n,
                          Trade(btc, 61_836_98000000, 12_000000, T0, 102, 51, 0))  # venue 102: coinbase
            for n in (1, 2)
        ))  # fmt: skip
        subprocess.run([*ME, "publish", "--socket", str(sock), str(stream)], check=True, env=env, timeout=30)
        out, _ = tail.communicate(timeout=30)
    finally:
        tail.kill()
        if relay is not None:
            relay.terminate()
            relay.wait(10)
    assert tail.returncode == 0
    lines = out.splitlines()
    assert lines[0] == header_line()
    assert [line.split()[0] for line in lines[1:]] == [
        "2024-08-08T00:00:01.123456790Z", "2024-08-08T00:00:01.123456791Z"
    ]  # fmt: skip
    assert lines[1].split()[2:] == ["coinbase", "BTC/USDT", "trade", "BUY", "0.12000000", "@",
                                    "61836.98000000"]  # fmt: skip
