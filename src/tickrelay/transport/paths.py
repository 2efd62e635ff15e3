"""Where relay sockets live by default. No environment access here: callers pass what they read."""

from __future__ import annotations

import os
from pathlib import Path

from tickrelay.protocol.codec import Domain, domain_name


DOMAIN_NAMES = {domain_name(d): d for d in Domain}  # market-data, signal, execution, system


def runtime_dir(xdg_runtime_dir: str | None) -> Path:
    """The private directory for tickrelay's sockets and registry files (created mode 0700).

    ``$XDG_RUNTIME_DIR/tickrelay`` when the caller passes that variable, else ``/tmp/tickrelay-$UID``.
    """
    path = Path(xdg_runtime_dir) / "tickrelay" if xdg_runtime_dir else Path(f"/tmp/tickrelay-{os.getuid()}")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to another user")
    path.chmod(0o700)
    return path


def default_socket(domain: Domain, xdg_runtime_dir: str | None) -> Path:
    """``<runtime dir>/<domain>.sock``, e.g. ``/run/user/1000/tickrelay/market-data.sock``."""
    name = domain_name(domain)
    return runtime_dir(xdg_runtime_dir) / f"{name}.sock"


def socket_path(domain: Domain, explicit: str | None, environ: dict[str, str] | os._Environ[str]) -> Path:
    """The socket to use: an explicit path, else RELAY_SOCKET_PATH (market data only), else the default."""
    if explicit:
        return Path(explicit)
    if domain == Domain.MARKET_DATA and environ.get("RELAY_SOCKET_PATH"):
        return Path(environ["RELAY_SOCKET_PATH"])
    return default_socket(domain, environ.get("XDG_RUNTIME_DIR"))


def state_dir(environ: dict[str, str] | os._Environ[str]) -> Path:
    """Where tickrelay keeps data that outlives a run (the default recording):
    ``$XDG_STATE_HOME/tickrelay``, else ``~/.local/state/tickrelay``."""
    base = environ.get("XDG_STATE_HOME") or str(
        Path(environ.get("HOME", "~")).expanduser() / ".local" / "state"
    )
    return Path(base) / "tickrelay"
