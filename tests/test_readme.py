"""The README's by-hand section, run word for word (with `tickrelay` as this interpreter's module)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


def _by_hand_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("To work with one recording by hand:", 1)[1]
    return section.split("```sh\n", 1)[1].split("\n```", 1)[0]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_by_hand_example_runs_leaves_nothing_behind_and_shows_the_subscriber(tmp_path: Path) -> None:
    before = set(ROOT.iterdir())
    shim = tmp_path / "bin" / "tickrelay"  # a program, not a shell function: `kill %1` must reach it
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tickrelay "$@"\n')
    shim.chmod(0o755)
    script = "set -e\n" + _by_hand_block()
    env = {k: v for k, v in os.environ.items() if k != "RELAY_SOCKET_PATH"}
    env.update(XDG_RUNTIME_DIR=str(tmp_path), TMPDIR=str(tmp_path), PATH=f"{shim.parent}:{env['PATH']}")
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=280
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert "  integrity: ok" in out
    status = next(i for i, line in enumerate(out) if line.split()[:2] == ["subscriber", "messages"])
    assert out[status + 1].split()[:4] == ["tail", "9757", "722018", "0"]  # every trade, none dropped
    assert out[-4].split()[:2] == ["time", "(UTC)"]  # the trades file: its header ...
    assert out[-3].split()[2:5] == ["binance", "BTC/USDT", "trade"]  # ... and the first trades
    assert set(ROOT.iterdir()) == before  # no btc.v2 left in the checkout
