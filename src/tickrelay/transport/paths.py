"""Where relay sockets live, and who may be trusted with them. No environment access here: callers
pass what they read.

The rules follow tmux's for its socket directory. A socket is used (bound by the relay, connected to
by a client) only when its directory belongs to the current user (or a user named in
``relay.allowed_users``) and neither group nor others may write it: whoever can write the directory
can put their own socket at the path. A client also checks who listens (``SO_PEERCRED``): the current
user, or an allowed one. Root is no exception: its relay and clients apply the same rules (root's
file access bypasses modes, so the checks look at owner and mode bits, never at ``access()``).

Which users are trusted is one setting of the process, not an argument of each client: ``cli.main``
calls ``trust_users`` once with ``relay.allowed_users`` (file, environment, or the relay's
``--allowed-user``), and every check here reads it, so no relay, subscriber or publisher can be made
without it. ``up`` hands its value to its children in the environment.
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
import struct
from collections.abc import Iterable
from pathlib import Path

from tickrelay.errors import ConfigError, UnsafeSocket
from tickrelay.protocol.codec import Domain, domain_name


DOMAIN_NAMES = {domain_name(d): d for d in Domain}  # market-data, signal, execution, system


def runtime_dir(xdg_runtime_dir: str | None) -> Path:
    """The private directory for tickrelay's sockets and registry files (created mode 0700).

    ``$XDG_RUNTIME_DIR/tickrelay`` when the caller passes that variable, else ``/tmp/tickrelay-$UID``.

    Raises:
        UnsafeSocket: the directory belongs to another user, or cannot be made.
    """
    path = Path(xdg_runtime_dir) / "tickrelay" if xdg_runtime_dir else Path(f"/tmp/tickrelay-{os.getuid()}")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UnsafeSocket(
            f"cannot make the runtime directory {path}: {exc.strerror}; set XDG_RUNTIME_DIR to a "
            "directory of your own"
        ) from None
    owner = path.stat().st_uid
    if owner != os.geteuid():
        raise UnsafeSocket(
            f"the runtime directory {path} belongs to {_user(owner)}, not to you ({_user(os.geteuid())}): "
            "remove it, or set XDG_RUNTIME_DIR to a directory of your own"
        )
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


_trusted: frozenset[int] = frozenset()  # uids of relay.allowed_users, set by trust_users


def trust_users(users: Iterable[str]) -> None:
    """Trust ``users`` (``relay.allowed_users``: names or uids) besides the current user, for every
    check this process makes from now on; replaces what an earlier call trusted.

    Raises:
        ConfigError: a name that is no user here.
    """
    global _trusted
    _trusted = allowed_uids(users)


def allowed_uids(users: Iterable[str]) -> frozenset[int]:
    """The uids of ``relay.allowed_users`` (user names or numeric uids).

    Raises:
        ConfigError: a name that is no user here.
    """
    uids: set[int] = set()
    for user in users:
        if user.isdigit():
            uids.add(int(user))
            continue
        try:
            uids.add(pwd.getpwnam(user).pw_uid)
        except KeyError:
            raise ConfigError(f"`relay.allowed_users`: no user {user!r} on this machine") from None
    return frozenset(uids)


def check_socket_dir(path: Path) -> None:
    """Refuse ``path`` when its directory belongs to neither the current user nor a trusted one
    (``trust_users``), or group or others may write it.

    A missing directory passes (nothing can listen there; the connect fails on its own).

    Raises:
        UnsafeSocket: the message names the directory, its owner or mode, and the fix.
    """
    directory = path.parent
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeSocket(f"refusing {path}: {directory} is not a directory")
    if st.st_uid != os.geteuid() and st.st_uid not in _trusted:
        raise UnsafeSocket(
            f"refusing {path}: its directory {directory} belongs to {_user(st.st_uid)}, not to you "
            f"({_user(os.geteuid())}); use a directory of your own (or name that user in relay.allowed_users)"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeSocket(
            f"refusing {path}: its directory {directory} is writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); run `chmod go-w {directory}` or use a private directory "
            "such as $XDG_RUNTIME_DIR/tickrelay"
        )


_UCRED = struct.Struct("3i")  # pid, uid, gid


def check_peer(sock: socket.socket, path: Path | str) -> None:
    """Refuse a connection whose listening process runs as neither the current user nor a trusted one
    (``trust_users``; SO_PEERCRED).

    Raises:
        UnsafeSocket: the message names the peer's pid and user.
    """
    pid, uid, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    if uid != os.geteuid() and uid not in _trusted:
        raise UnsafeSocket(
            f"refusing {path}: the process listening there (pid {pid}) runs as {_user(uid)}, not as you "
            f"({_user(os.geteuid())}); stop it (or name that user in relay.allowed_users)"
        )


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"
