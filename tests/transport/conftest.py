"""Transport test helpers: the real relay fixture, and a listener that is no relay."""

from __future__ import annotations

import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.relay.conftest import relay  # noqa: F401 - the real-relay fixture, shared


ROOT = Path(__file__).resolve().parents[2]
NOBODY = pwd.getpwnam("nobody").pw_uid


@pytest.fixture
def fake_relay(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A listener on ``tmp_path/run/md.sock`` that is no relay (tests/transport/fake_relay.py); run
    as nobody when the test is parametrized so."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    path = run / "md.sock"
    uid = [str(NOBODY)] if getattr(request, "param", "") == "nobody" else []
    proc = subprocess.Popen([sys.executable, "-m", "tests.transport.fake_relay", str(path), *uid],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "listening\n"
    yield path
    proc.kill()
    proc.wait()
    proc.stdout.close()
