"""Errors in one line, as a user meets them in a shell: missing files, closed pipes, bad ports."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tickrelay.cli import build_parser


ME = [sys.executable, "-m", "tickrelay"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RELAY_SOCKET_PATH"}
    env["XDG_RUNTIME_DIR"] = str(cwd)
    return subprocess.run([*ME, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("publish", "missing.v2"), "tickrelay publish: missing.v2: No such file or directory"),
        (("decode", "missing.v2"), "tickrelay decode: cannot read missing.v2: No such file or directory"),
        (("replay", "missing"),
         "tickrelay replay: configuration error: missing: no recording here (no missing.index)"),
        (("config", "show", "--config", "missing.toml"),
         "tickrelay config: configuration error: --config missing.toml: no such file"),
        (("dashboard", "--port", "99999"),
         "tickrelay dashboard: configuration error: flag --dashboard-port: `dashboard.port` must be at most "
         "65535, not 99999"),
        (("up", "--dashboard-port", "-1"),
         "tickrelay up: configuration error: flag --dashboard-port: `dashboard.port` must be at least 0, "
         "not -1"),
    ],
)  # fmt: skip
def test_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], line: str) -> None:
    done = _run(*args, cwd=tmp_path)
    assert done.stderr == line + "\n"
    assert done.returncode == (1 if "configuration error" not in line else 2)


def test_a_port_in_the_config_file_is_checked(tmp_path: Path) -> None:
    (tmp_path / "tickrelay.toml").write_text("[dashboard]\nport = 99999\n")
    done = _run("dashboard", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "tickrelay dashboard: configuration error: tickrelay.toml:2: `dashboard.port` must be at most 65535, "
        "not 99999\n"
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("replay-exchange", "--port", "99999"), "argument --port: must be a port, 0 to 65535, not 99999"),
        (("relay", "--metrics-port", "70000"),
         "argument --metrics-port: must be a port, 0 to 65535, not 70000"),
        (("up", "--interval", "0"), "argument --interval: must be above 0, not 0"),
        (("record", "--out", "x", "--keep-mb", "-1"), "argument --keep-mb: must be at least 0, not -1"),
        (("tail", "--count", "-5"), "argument --count: must be at least 0, not -5"),
        (("stats", "--interval", "soon"), "argument --interval: must be a number, not 'soon'"),
    ],
)  # fmt: skip
def test_flags_out_of_range_are_usage_errors(tmp_path: Path, args: tuple[str, ...], error: str) -> None:
    done = _run(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == f"tickrelay {args[0]}: error: {error}"


def test_a_reader_that_leaves_ends_the_command_quietly(tmp_path: Path) -> None:
    """`tickrelay config show | head -1`: a BrokenPipeError traceback before; now exit 141 and silence."""
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("PYTHONUNBUFFERED", None)  # buffered, as in most shells: the write comes at the end
    show = subprocess.Popen([*ME, "config", "show"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert show.stdout is not None
    show.stdout.close()  # gone before the command writes
    assert show.wait(60) == 141
    assert show.stderr is not None
    assert show.stderr.read() == b""
    show.stderr.close()


def test_stats_says_what_it_does(tmp_path: Path) -> None:
    done = _run("stats", cwd=tmp_path)
    metrics = tmp_path / "tickrelay" / "metrics"
    assert done.stderr == f"tickrelay stats: reading 0 metrics endpoint(s) under {metrics}\n"
    assert done.stdout.startswith(f"tickrelay stats: no process serves metrics under {metrics} ")
    assert done.returncode == 1


def _undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
    found = [] if parser.description else [f"{path}: no description"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _undocumented(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction) and not action.help:
            found.append(f"{path} {'/'.join(action.option_strings) or action.dest}: no help")
    return found


def test_every_command_and_flag_has_a_help_text() -> None:
    """`--domain` had none in five commands, nor had `publish --connect-timeout` or `bridge out`."""
    assert _undocumented(build_parser(), "tickrelay") == []


def test_config_show_help_is_its_own(tmp_path: Path) -> None:
    done = _run("config", "show", "--help", cwd=tmp_path)
    assert done.stdout.splitlines()[:3] == [
        "usage: tickrelay config show [-h] [--config PATH] [--json]",
        "",
        "print every key's effective value and where it came from, one per line",
    ]


def _cpus_allowed(pid: int, want: str, timeout_s: float = 20.0) -> str:
    """Process ``pid``'s Cpus_allowed_list once it is ``want`` (or at the timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = Path(f"/proc/{pid}/status").read_text()
        now = next(
            line.split(":")[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list")
        )
        if now == want or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to keep apart")
def test_the_relay_and_a_collector_run_on_the_cpus_configured(tmp_path: Path) -> None:
    relay_cpu, collector_cpu = sorted(os.sched_getaffinity(0))[:2]
    (tmp_path / "tickrelay.toml").write_text(
        f'[relay]\ncpus = ["{relay_cpu}"]\n[collector]\ncpus = ["{collector_cpu}"]\n'
    )
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("RELAY_SOCKET_PATH", None)
    sock = str(tmp_path / "md.sock")
    procs = [
        subprocess.Popen([*ME, "relay", "--socket", sock], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL),
        # a WebSocket URL nothing answers: the collector retries, pinned, until stopped
        subprocess.Popen([*ME, "collect", "coinbase", "--socket", sock, "--url", "ws://127.0.0.1:9"],
                         cwd=tmp_path, env=env, stderr=subprocess.DEVNULL),
    ]  # fmt: skip
    try:
        assert _cpus_allowed(procs[0].pid, str(relay_cpu)) == str(relay_cpu)
        assert _cpus_allowed(procs[1].pid, str(collector_cpu)) == str(collector_cpu)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a CPU for the spinning collector")
@pytest.mark.parametrize("idle", ["sleep", "spin"])
def test_a_spinning_collector_keeps_its_cpu_busy_and_still_stops(tmp_path: Path, idle: str) -> None:
    """``collector.idle = spin``: the collector polls without sleeping (its CPU time grows as fast as
    the clock) even with no frame to read; ``sleep`` leaves the CPU idle. Both stop on SIGTERM."""
    cpu = sorted(os.sched_getaffinity(0))[-1]
    (tmp_path / "tickrelay.toml").write_text(f'[collector]\ncpus = ["{cpu}"]\nidle = "{idle}"\n')
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("RELAY_SOCKET_PATH", None)
    collector = subprocess.Popen(  # a WebSocket URL nothing answers: no frame ever arrives
        [*ME, "collect", "coinbase", "--socket", str(tmp_path / "md.sock"), "--url", "ws://127.0.0.1:9"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert _cpus_allowed(collector.pid, str(cpu)) == str(cpu)  # configured: start-up is over
        time.sleep(0.5)
        cpu_before, wall_before = _cpu_seconds(collector.pid), time.monotonic()
        time.sleep(1.0)
        busy = (_cpu_seconds(collector.pid) - cpu_before) / (time.monotonic() - wall_before)
    finally:
        collector.terminate()
        _, stderr = collector.communicate(timeout=10)
    assert collector.returncode == 0, stderr
    assert busy > 0.5 if idle == "spin" else busy < 0.2, f"{idle}: {busy:.0%} of a CPU"
    assert "without collector.cpus" not in stderr  # the warning is for a spin left unpinned


def test_a_spinning_collector_without_cpus_warns(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "TICKRELAY_COLLECTOR_IDLE": "spin"}
    env.pop("RELAY_SOCKET_PATH", None)
    collector = subprocess.Popen(
        [*ME, "collect", "coinbase", "--socket", str(tmp_path / "md.sock"), "--url", "ws://127.0.0.1:9"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert collector.stderr is not None
    try:
        line = collector.stderr.readline()
    finally:
        collector.terminate()
        collector.communicate(timeout=10)
    assert "collector.idle = spin without collector.cpus: this collector keeps a whole CPU busy" in line


@pytest.mark.parametrize(
    ("cpus", "error"),
    [
        ('["1-0"]', "`relay.cpus`: the range 1-0 runs backwards"),
        ('["0-999999999"]', "`relay.cpus`: 0-999999999 names a CPU this machine does not have (0-"),
    ],
)
def test_cpus_a_process_cannot_run_on_are_one_line(tmp_path: Path, cpus: str, error: str) -> None:
    (tmp_path / "tickrelay.toml").write_text(f"[relay]\ncpus = {cpus}\n")
    done = _run("relay", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"tickrelay relay: configuration error: {error}")
    assert done.stderr.count("\n") == 1


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_a_process_started_on_one_cpu_may_move_to_another(tmp_path: Path) -> None:
    """As taskset: the CPUs a process was started on (inherited) are no limit, only the machine's."""
    first, second = sorted(os.sched_getaffinity(0))[:2]
    (tmp_path / "tickrelay.toml").write_text(f'[relay]\ncpus = ["{second}"]\n')
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    relay = subprocess.Popen(
        [*ME, "relay", "--socket", str(tmp_path / "md.sock")],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {first}),
    )
    try:
        assert _cpus_allowed(relay.pid, str(second)) == str(second)
    finally:
        relay.terminate()
        relay.wait(10)
