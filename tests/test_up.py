"""`tickrelay up` as a user runs it: starts everything, shows data, serves `tail`, stops cleanly."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tickrelay.commands import up
from tickrelay.commands.config import venue_cores
from tickrelay.config import Config
from tickrelay.consumers.dashboard import DashboardState
from tickrelay.metrics import endpoints
from tickrelay.protocol.messages import Event, Reason, StateInvalidation
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.record import iter_messages


@pytest.mark.timeout(180)
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
        cores = "; ".join(f"{venue} {core}" for venue, core in venue_cores(Config()).items())
        assert f"  venue cores: {cores}\n" in text  # all three venues run, each says its core
        url = text.split("dashboard on ", 1)[1].split("\n", 1)[0]
        page = _get(url, deadline=time.monotonic() + 20)
        assert "<title>tickrelay dashboard</title>" in page
        # Kraken's 2023 XBT/USD against Binance's 2024 BTCUSDT is no pair (+127 %): said, not signalled
        verdict = "strategy: no cross-venue pair in the data (1 with an implausible edge)"
        while verdict not in (tmp_path / "up.out").read_text():
            # the strategy needs both venues' BTC books and then a scrape: slow on a loaded machine
            assert time.monotonic() < deadline + 50, "the summary gave no verdict on the pairs"
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
        header, *lines = tail.stdout.splitlines()
        assert header.split()[:4] == ["time", "(UTC)", "stream:seq", "venue"]
        assert len(lines) == 100
        assert all(line.split()[2] in ("coinbase", "binance", "kraken", "-") for line in lines)
        assert all(line[:2] == "20" and line[29] == "Z" for line in lines)  # UTC, to the nanosecond
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
        code = _interrupt(up)
        out.close()
    text = (tmp_path / "up.out").read_text()
    assert code == 0
    final = text[text.index("Final report:") :]
    assert (
        "processes: relay, relay-signal, relay-system, replay-exchange, collect-coinbase, collect-binance, "
        "collect-kraken x1, strategy, risk, dashboard, record"
    ) in final.replace("\n  ", " ")  # wrapped at 80 columns
    [recording] = (tmp_path / "state" / "tickrelay" / "recordings").glob("up-*.index")
    recording = recording.with_suffix("")
    assert f"recording to {recording} (new)" in text
    recorded = list(iter_messages(recording))  # the recorder ran and wrote what the relay carried
    assert len(recorded) > 100
    assert {m.header.source for m in recorded} >= {1, 2, 3}
    assert final.count("died") == 1  # only the one this test killed
    assert not (tmp_path / "tickrelay" / "market-data.sock").exists()  # the relay removed its socket


def _interrupt(up: subprocess.Popen[bytes] | subprocess.Popen[str], timeout_s: float = 30) -> int:
    """Ctrl-C to ``up`` and its exit code. An ``up`` that does not stop in time fails the test and is
    killed, so its children end too (parent-death signal) instead of loading the machine for the
    tests after it."""
    up.send_signal(signal.SIGINT)
    try:
        return up.wait(timeout_s)
    except subprocess.TimeoutExpired:
        up.kill()
        up.wait()
        raise


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


def _start_up(tmp_path: Path, *extra: str, pipe: bool = False) -> subprocess.Popen[bytes]:
    """``up`` with its stdout in up.out (or a pipe) and its stderr in up.err."""
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("RELAY_SOCKET_PATH", None)
    with (tmp_path / "up.out").open("wb") as out, (tmp_path / "up.err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tickrelay", "up", "--interval", "0.3", "--dashboard-port", "0", *extra],
            stdout=subprocess.PIPE if pipe else out,
            stderr=err,
            env=env,
            cwd=tmp_path,
        )


def _first_summary(up: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """Wait until up (writing to up.out) prints its first summary: every child has started."""
    deadline = time.monotonic() + 30
    while "processes:" not in (tmp_path / "up.out").read_text():
        assert up.poll() is None, (tmp_path / "up.err").read_text()
        assert time.monotonic() < deadline, "no summary within 30 s"
        time.sleep(0.1)


def _children(pid: int) -> set[int]:
    """The pids whose parent is ``pid``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie nobody reaped has stopped)."""
    alive = set()
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                alive.add(pid)
    return alive


def _gone(pids: set[int], timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(pids)


@pytest.mark.timeout(90)
def test_up_stops_its_children_when_its_reader_goes(tmp_path: Path) -> None:
    """`up | tee`, then Ctrl-C: tee is gone, up's next print breaks the pipe, and up must still stop
    every child (it used to die of the BrokenPipeError and leave all 10 running)."""
    up = _start_up(tmp_path, "--no-record", pipe=True)
    assert up.stdout is not None
    try:
        text = b""
        while b"processes:" not in text:  # a first summary: every child has started
            line = up.stdout.readline()
            assert line, f"up ended early: {(tmp_path / 'up.err').read_text()}"
            text += line
        children = _children(up.pid)
        assert len(children) == 10  # 3 relays, replay exchange, 3 collectors, strategy, risk, dashboard
        up.stdout.close()  # the reader leaves
        assert up.wait(30) == 141  # as SIGPIPE ends other tools, with no traceback
    finally:
        up.kill()
    assert _gone(children, 10) == set()
    assert (tmp_path / "up.err").read_text() == ""
    assert not (tmp_path / "tickrelay" / "market-data.sock").exists()  # the relay stopped cleanly


@pytest.mark.timeout(90)
def test_kill_9_of_up_leaves_no_child(tmp_path: Path) -> None:
    """Also: the users ./tickrelay.toml trusts reach every child (most run without --config), through
    TICKRELAY_RELAY_ALLOWED_USERS."""
    (tmp_path / "tickrelay.toml").write_text('[relay]\nallowed_users = ["nobody", "daemon"]\n')
    up = _start_up(tmp_path, "--no-record")
    try:
        _first_summary(up, tmp_path)
        children = _children(up.pid)
        assert len(children) == 10
        for pid in children:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"TICKRELAY_RELAY_ALLOWED_USERS=nobody,daemon" in environ, pid
    finally:
        up.kill()  # SIGKILL: up can do nothing; the kernel tells the children (PR_SET_DEATHSIG)
        up.wait()
    assert _gone(children, 10) == set()
    assert not (tmp_path / "tickrelay" / "market-data.sock").exists()  # SIGTERM: the relay stopped cleanly


@pytest.mark.timeout(90)
def test_up_starts_a_new_recording_per_run_unless_continued(tmp_path: Path) -> None:
    """Two runs, two recordings; --record-continue appends to the newest; an explicit existing name is
    refused unless continued."""
    recordings = tmp_path / "state" / "tickrelay" / "recordings"
    indexed = 0  # chunks in the recordings' indexes
    for extra in ((), ("--record-continue",)):
        up = _start_up(tmp_path, *extra)
        try:
            _first_summary(up, tmp_path)
            deadline = time.monotonic() + 30
            while sum(len(p.read_text().splitlines()) for p in recordings.glob("*.index")) <= indexed:
                assert time.monotonic() < deadline, "nothing recorded"
                time.sleep(0.1)
            time.sleep(1.0)  # the next run's default name would be a second later
        finally:
            assert _interrupt(up) == 0
        indexed = sum(len(p.read_text().splitlines()) for p in recordings.glob("*.index"))  # stopped: final
        text = (tmp_path / "up.out").read_text()
        [first] = sorted(recordings.glob("up-*.index"))
        assert f"recording to {first.with_suffix('')} ({'continued' if extra else 'new'})" in text
    assert len(list(recordings.glob("up-*.1.zst"))) == 1  # the second run wrote into the first one ...
    assert len(list(recordings.glob("up-*.2.zst"))) == 1  # ... in a segment of its own
    again = subprocess.run(
        [sys.executable, "-m", "tickrelay", "up", "--record", str(first.with_suffix(""))],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
    )
    assert again.returncode == 2
    assert again.stderr == (
        f"tickrelay up: configuration error: --record {first.with_suffix('')}: a recording exists there; "
        "--record-continue appends to it\n"
    )


def test_rates_divide_by_the_measured_time() -> None:
    """A tick meant to last 1 s that took 1.37 s (the scrape's time) must not read 37 % high."""
    rates = up._rates(Counter(binance=1370, kraken=137), Counter(binance=0, kraken=0), 1.37)
    assert rates == {"coinbase": 0.0, "binance": pytest.approx(1000.0), "kraken": pytest.approx(100.0),
                     "system": 0.0}  # fmt: skip


def test_summary_fits_80_columns() -> None:
    tally = up.Tally()
    for venue in up.VENUES:
        tally.messages[venue] = 1_234_567_890
        tally.kinds[venue].update(trade=123_456_789, quote=12_345_678, l2_delta=99_999_999)
        tally.invalidations[venue] = 1_234_567
    tally.signals.update(open=12_345, update=1_234_567, close=12_345)
    tally.last_alert = "kraken: no message for 5.5 s on XBT/USD, ETH/USD, SOL/USD, ADA/USD and DOT/USD"
    children = [up.Child(name, [], {}, restarts=12) for name in (
        "relay", "relay-signal", "relay-system", "replay-exchange", "collect-coinbase", "collect-binance",
        "collect-kraken", "strategy", "risk", "dashboard", "record")]  # fmt: skip
    domains = ("market-data", "signal", "system")
    relays = {
        f"tickrelay_relay_{name}": {(("domain", d),): 123_456_789.0 for d in domains}
        for name in ("messages_in_total", "deliveries_total", "dropped_total")
    }
    events = ["collect-kraken died (exit -9: tickrelay collect: the relay at /run/user/1000/tickrelay/"
              "market-data.sock went away); restarting"]  # fmt: skip
    rates = dict.fromkeys((*up.VENUES, "system"), 12_345_678.0)
    text = up._summary(tally, rates, children, 86_399.0, events, [relays])
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n" + "\n".join(line for line in lines if len(line) > 80)
    assert lines[1].split() == ["venue", "msgs/s", "messages", "trades", "quotes", "book", "invalid",
                                "errors", "P99", "µs"]  # fmt: skip
    assert lines[2].split() == ["coinbase", "12345678", "1234567890", "123456789", "12345678", "99999999",
                                "1234567", "0", "-"]  # fmt: skip
    joined = text.replace("\n  ", " ")  # a wrapped note reads as one line again
    assert "processes: relay x12, relay-signal x12," in joined
    assert "record x12\n" in joined
    assert events[0] in joined
    assert tally.last_alert in joined


def test_the_summary_and_the_dashboard_count_invalidations_alike() -> None:
    """One figure: up's `invalid` column counted RECOVERED too, the dashboard did not (11 against 1)."""
    btc, eth = asset_id_for("BTC/USD"), asset_id_for("ETH/USD")
    events: list[Event] = [
        StateInvalidation(101, 51, Reason.STALE_FEED, (btc, eth)),
        StateInvalidation(101, 51, Reason.RECOVERED, (btc,)),
        StateInvalidation(101, 51, Reason.CHECKSUM_MISMATCH, ()),
        StateInvalidation(101, 51, Reason.RECOVERED, ()),
        StateInvalidation(102, 51, Reason.DISCONNECT, ()),
    ]
    tally, dashboard = up.Tally(), DashboardState()
    tally.count(events)
    dashboard.on_market(1, events, now_ns=1)
    venues = dashboard.view(now_ns=1)["venues"]
    assert dict(tally.invalidations) == {"kraken": 2, "coinbase": 1}
    assert {v: venues[v]["invalidations"] for v in ("kraken", "coinbase")} == {"kraken": 2, "coinbase": 1}


@pytest.mark.timeout(90)
def test_promtool_accepts_every_metrics_endpoint_of_up(tmp_path: Path) -> None:
    """Prometheus's own linter over the 3 relays, 3 collectors and 3 consumers of a running `up`: no
    complaint (it flagged abbreviated units and gauges with a quantile label on every latency series)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (./install.sh installs Debian's prometheus)")
    up = _start_up(tmp_path, "--no-record")
    try:
        _first_summary(up, tmp_path)
        deadline = time.monotonic() + 30
        while True:  # every collector measured something: its summary has quantiles to check
            found = endpoints(tmp_path / "tickrelay")
            texts = {e["name"]: _get(f"http://127.0.0.1:{e['port']}/metrics", deadline) for e in found}
            collectors = [t for n, t in texts.items() if n.startswith("collect")]
            if len(texts) == 9 and all("tickrelay_processing_latency_seconds{" in t for t in collectors):
                break
            if time.monotonic() >= deadline:  # which served, up's last summary, and what its children said
                out, err = ((tmp_path / f"up.{s}").read_text()[-2000:] for s in ("out", "err"))
                raise AssertionError(f"{sorted(texts)}\n{out}\n{err}")
            time.sleep(0.3)
    finally:
        _interrupt(up)
    assert sorted(texts) == [
        "collect-binance", "collect-coinbase", "collect-kraken", "dashboard", "relay-market-data",
        "relay-signal", "relay-system", "risk", "strategy",
    ]  # fmt: skip
    assert 'quantile="0.99"' in texts["risk"]  # end to end, in seconds
    for name, text in texts.items():
        check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        assert (check.returncode, check.stdout + check.stderr) == (0, ""), name
