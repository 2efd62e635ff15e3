"""A real relay process for the benchmarks: ``with relay_process() as path:`` serves on ``path``."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def relay_process(*extra: str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start `tickrelay relay` on a socket in a temporary directory, with ``env`` added to the
    environment; stop it (SIGTERM) on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "md.sock")
        relay = subprocess.Popen(
            [sys.executable, "-m", "tickrelay", "relay", "--socket", path, *extra],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert relay.stderr is not None
        assert "listening" in relay.stderr.readline()
        try:
            yield path
        finally:
            relay.terminate()
            relay.communicate(timeout=10)
