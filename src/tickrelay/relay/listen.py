"""The relay's socket file: claim the path, bind it. Owns no connections (relay/server.py does).

A path is claimed only when its directory is safe (transport/paths.py) and it is free or holds our own
dead socket; the socket is bound under umask 117, so it is 0660 from its creation: there is no moment
in which it exists with a wider mode, as there was when the mode was narrowed after the bind.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

from tickrelay.errors import RelayError, UnsafeSocket
from tickrelay.transport.paths import check_socket_dir


def bind_socket(path: Path) -> socket.socket:
    """A Unix stream socket bound at ``path`` (mode 0660), ready to listen.

    Raises:
        UnsafeSocket: the directory is not safe, or something other than our own socket is in the way.
        RelayError: a relay is listening there, or the bind failed.
    """
    _claim(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o117)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise RelayError(f"cannot bind {path}: {exc.strerror}") from None
    finally:
        os.umask(umask)
    return sock


def _claim(path: Path) -> None:
    """Make ``path`` free for a new relay: its directory must be safe (made 0700 if missing); a socket
    of ours that nobody answers on is a dead relay's and is removed; anything else there is an error.

    Raises:
        UnsafeSocket: the directory is not safe, or something other than our own socket is in the way.
        RelayError: a relay is listening there.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UnsafeSocket(f"cannot make the socket directory {path.parent}: {exc.strerror}") from None
    check_socket_dir(path)
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise UnsafeSocket(f"{path} exists and is not a socket; move it away or choose another --socket")
    if st.st_uid != os.geteuid():
        raise UnsafeSocket(f"{path} is a socket of uid {st.st_uid}, not ours; remove it or choose another "
                           "--socket")  # fmt: skip
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno != errno.ECONNREFUSED:
            raise RelayError(f"cannot check {path}: {exc.strerror}") from None
        path.unlink()  # our own socket, and nobody answers: a dead relay's
        return
    finally:
        probe.close()
    raise RelayError(f"a relay is already listening on {path}")
