"""`tickrelay up` as a user runs it: starts everything, shows data, serves `tail`, stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tickrelay.record import iter_messages


@pytest.mark.timeout(90)
def test_up_shows_data_serves_tail_and_stops_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("RELAY_SOCKET_PATH", None)
    out = (tmp_path / "up.out").open("w")
    up = subprocess.Popen(
        [sys.executable, "-m", "tickrelay", "up", "--interval", "0.5", "--dashboard-port", "0"],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 10  # data within 10 s of starting
        text = ""
        while time.monotonic() < deadline:
            text = (tmp_path / "up.out").read_text()
            rows = [
                line.split() for line in text.splitlines() if line.split()[:1] in (["coinbase"], ["kraken"])
            ]
            if rows and all(int(r[2]) > 0 for r in rows[-2:]):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no data within 10 s:\n{text}")
        assert "relay on " + str(tmp_path / "tickrelay" / "market-data.sock") in text
        url = text.split("dashboard on ", 1)[1].split("/;", 1)[0] + "/"
        page = _get(url, deadline=time.monotonic() + 20)
        assert "<title>tickrelay dashboard</title>" in page
        # Kraken's 2023 XBT/USD against Binance's 2024 BTCUSDT is no pair (+127 %): said, not signalled
        verdict = "strategy: no cross-venue pair in the data (1 with an implausible edge)"
        while verdict not in (tmp_path / "up.out").read_text():
            assert time.monotonic() < deadline + 20, "the summary gave no verdict on the pairs"
            time.sleep(0.2)
        assert "signals: none (0 open)" in (tmp_path / "up.out").read_text()
        tail = subprocess.run(
            [sys.executable, "-m", "tickrelay", "tail", "--count", "100"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert tail.returncode == 0, tail.stderr
        lines = tail.stdout.splitlines()
        assert len(lines) == 100
        assert all(line.split()[2] in ("coinbase", "binance", "kraken", "-") for line in lines)
        victim = _pid_of(f"collect kraken --socket {tmp_path}")
        os.kill(victim, signal.SIGKILL)  # a child that dies is reported and restarted
        deadline = time.monotonic() + 20
        while "collect-kraken x1" not in (tmp_path / "up.out").read_text():
            assert time.monotonic() < deadline, "the dead collector was not restarted"
            time.sleep(0.2)
        assert "collect-kraken died (exit -9" in (tmp_path / "up.out").read_text()
        while True:  # restarted after its backoff
            try:
                assert _pid_of(f"collect kraken --socket {tmp_path}") != victim
                break
            except AssertionError:
                assert time.monotonic() < deadline, "no new collector process"
                time.sleep(0.2)
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(30)
        out.close()
    text = (tmp_path / "up.out").read_text()
    assert code == 0
    final = text[text.index("Final report:") :]
    assert (
        "processes: relay, relay-signal, relay-system, replay-exchange, collect-coinbase, collect-binance, "
        "collect-kraken x1, strategy, risk, dashboard, record"
    ) in final
    recording = tmp_path / "state" / "tickrelay" / "recording"
    assert f"recording to {recording}" in text
    recorded = list(iter_messages(recording))  # the recorder ran and wrote what the relay carried
    assert len(recorded) > 100
    assert {m.header.source for m in recorded} >= {1, 2, 3}
    assert final.count("died") == 1  # only the one this test killed
    assert not (tmp_path / "tickrelay" / "market-data.sock").exists()  # the relay removed its socket


def _get(url: str, deadline: float) -> str:
    """GET ``url`` (the dashboard may still be starting)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            assert time.monotonic() < deadline, f"nothing served at {url}"
            time.sleep(0.2)


def _pid_of(fragment: str) -> int:
    """The pid of the process whose command line contains ``fragment``."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if fragment in cmdline:
                return int(proc.name)
    raise AssertionError(f"no process with {fragment!r}")
