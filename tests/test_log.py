"""log.level (config, environment, --log-level) hides what is below it and shows the rest: a real relay
process's banner (info), a collector's rejected-frame sample (warning) and a command's failure
(error)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tickrelay import log
from tickrelay.collector.run import Collector
from tickrelay.config import load_settings
from tickrelay.protocol.codec import COLLECTOR_SOURCES
from tickrelay.transport.output import RelayOutput


ME = [sys.executable, "-m", "tickrelay"]


def relay_stderr(tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> str:
    """Start a relay, stop it with Ctrl-C once its socket is there: all it said on stderr."""
    sock = tmp_path / "md.sock"
    proc = subprocess.Popen(
        [*ME, "relay", "--socket", str(sock), *flags],
        env={**os.environ, **(env or {})}, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not sock.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    return err


def test_info_shows_the_relays_banner_and_warning_hides_it(tmp_path: Path) -> None:
    banner = f"tickrelay relay: market-data relay listening on {tmp_path / 'md.sock'}\n"
    stopped = "tickrelay relay: stopped; rejected 0 connection(s)\n"
    assert relay_stderr(tmp_path) == banner + stopped  # info, the default
    assert relay_stderr(tmp_path, "--log-level", "warning") == ""
    assert relay_stderr(tmp_path, env={"TICKRELAY_LOG_LEVEL": "error"}) == ""
    (tmp_path / "tickrelay.toml").write_text('[log]\nlevel = "warning"\n')  # ./tickrelay.toml
    assert relay_stderr(tmp_path) == ""
    assert relay_stderr(tmp_path, "--log-level", "debug") == banner + stopped  # the flag wins


def test_an_error_shows_at_every_level(tmp_path: Path) -> None:
    done = subprocess.run(
        [*ME, "decode", str(tmp_path / "missing.bin"), "--log-level", "error"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    missing = tmp_path / "missing.bin"
    assert done.stderr == f"tickrelay decode: cannot read {missing}: No such file or directory\n"
    bad = subprocess.run(
        [*ME, "relay", "--log-level", "error"], env={**os.environ, "TICKRELAY_LOG_LEVEL": "loud"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.startswith("tickrelay relay: configuration error: environment TICKRELAY_LOG_LEVEL:")


@pytest.mark.parametrize(("level", "shown"), [("warning", True), ("error", False)])
async def test_a_rejected_frame_sample_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], level: str, shown: bool
) -> None:
    config = load_settings(None, "-", {"BINANCE_SYMBOLS": "BTCUSDT"}, {}).config
    output = RelayOutput(tmp_path / "none.sock", source=COLLECTOR_SOURCES["binance"], name="binance")
    collector = Collector("binance", config, output)
    log.setup(level)
    try:
        transport: object = None  # the frames ask nothing of the exchange
        for _ in range(3):  # logged once per kind, not per frame
            collector.on_frame(b'{"oops":', 1, transport)  # type: ignore[arg-type]
    finally:
        log.setup()
        await output.close()
    err = capsys.readouterr().err
    line = 'tickrelay collect binance: rejected frame (invalid_json): {"oops":\n'
    assert err == (line if shown else "")
    assert collector.core.stats.rejected == {"invalid_json": 3}
