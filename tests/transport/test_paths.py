"""transport/paths.py's rules with the real commands: who may own a socket's directory, who may
listen on it, what the relay may remove, and the socket's mode from birth.

These run as root here. Root bypasses file modes, so nothing below leans on a permission error: the
directory of another user is made with os.chown (to nobody), the world-writable one with chmod 1777,
and the other user's listener calls setuid(nobody) before listen(). Tests that need chown are
skipped for other users.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.relay.conftest import start_relay
from tests.transport.conftest import NOBODY
from tickrelay.relay.server import Relay


ME = [sys.executable, "-m", "tickrelay"]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making another user's files needs root")


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("RELAY_SOCKET_PATH", "XDG_RUNTIME_DIR")}
    return {**base, **extra}


def refused(*args: str, environ: dict[str, str] | None = None) -> str:
    """Run a command that must refuse at once; its one-line stderr."""
    proc = subprocess.Popen([*ME, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environ or env())  # fmt: skip
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"`tickrelay {' '.join(args)}` did not refuse; it printed {out!r}")
    assert proc.returncode == 1, err
    assert out == ""
    assert err.count("\n") == 1, err  # one line, no traceback
    return err


def test_a_socket_in_a_world_writable_directory_is_refused_by_the_relay_and_every_client(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # what /tmp is
    path = shared / "md.sock"
    why = (
        f"refusing {path}: its directory {shared} is writable by group or others (mode 1777); "
        f"run `chmod go-w {shared}` or use a private directory such as $XDG_RUNTIME_DIR/tickrelay\n"
    )
    assert refused("relay", "--socket", str(path)) == f"tickrelay relay: {why}"
    squatter = socket.socket(socket.AF_UNIX)  # whoever could write the directory listens there first
    squatter.bind(str(path))
    squatter.listen()
    stream = tmp_path / "one.v2"
    stream.write_bytes(b"")
    assert refused("tail", "--socket", str(path), "--count", "1") == f"tickrelay tail: {why}"
    assert refused("publish", "--socket", str(path), str(stream)) == f"tickrelay publish: {why}"
    assert refused("relay-status", "--socket", str(path)) == f"tickrelay relay-status: {why}"
    squatter.close()


@as_root
def test_a_directory_of_another_user_is_refused_unless_that_user_is_allowed(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, -1)
    path = theirs / "md.sock"
    assert refused("relay", "--socket", str(path)) == (
        f"tickrelay relay: refusing {path}: its directory {theirs} belongs to uid {NOBODY} (nobody), "
        "not to you (uid 0 (root)); use a directory of your own (or name that user in relay.allowed_users)\n"
    )
    assert "belongs to uid" in refused("tail", "--socket", str(path))
    relay = start_relay(path, "--allowed-user", "nobody")  # a service account's directory, trusted
    relay.send_signal(signal.SIGTERM)
    assert relay.wait(5) == 0


@pytest.mark.parametrize("fake_relay", ["nobody"], indirect=True)
@as_root
def test_a_client_refuses_a_listener_of_another_user(fake_relay: Path, tmp_path: Path) -> None:
    """The directory is ours and private, but the process listening there runs as nobody."""
    why = re.compile(
        rf"refusing {re.escape(str(fake_relay))}: the process listening there \(pid \d+\) runs as uid "
        rf"{NOBODY} \(nobody\), not as you \(uid 0 \(root\)\); stop it \(or name that user in "
        r"relay.allowed_users\)\n"
    )
    assert why.fullmatch(
        refused("tail", "--socket", str(fake_relay), "--count", "1")[len("tickrelay tail: ") :]
    )
    stream = tmp_path / "one.v2"
    stream.write_bytes(b"")
    assert why.fullmatch(
        refused("publish", "--socket", str(fake_relay), str(stream))[len("tickrelay publish: ") :]
    )
    assert why.search(refused("relay-status", "--socket", str(fake_relay)))
    # long-running clients end too, rather than publish into nothing or wait for ever
    collect = ["collect", "binance", "--socket", str(fake_relay), "--url", "ws://127.0.0.1:9/binance"]
    assert why.fullmatch(refused(*collect)[len("tickrelay collect: ") :])
    record = ["record", "--socket", str(fake_relay), "--out", str(tmp_path / "rec")]
    assert why.fullmatch(refused(*record)[len("tickrelay record: ") :])
    sockets = [arg for s in ("", "signal-", "system-") for arg in (f"--{s}socket", str(fake_relay))]
    for consumer in (
        ["dashboard", *sockets, "--port", "0"],
        ["strategy", *sockets],
        ["risk", *sockets[:2], *sockets[4:]],
    ):
        done = subprocess.run([*ME, *consumer], capture_output=True, text=True, timeout=30, env=env())
        assert done.returncode == 1, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback
        assert why.fullmatch(done.stderr[len(f"tickrelay {consumer[0]}: ") :])


@pytest.mark.parametrize("fake_relay", ["nobody"], indirect=True)
@as_root
def test_a_listener_of_an_allowed_user_is_accepted(fake_relay: Path) -> None:
    tail = subprocess.run([*ME, "tail", "--socket", str(fake_relay), "--count", "1"], capture_output=True,
                          text=True, timeout=15, env=env(TICKRELAY_RELAY_ALLOWED_USERS="nobody"))  # fmt: skip
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout.splitlines()[1] == (
        "2023-11-14T22:13:20.000000000Z 1:1         binance  BTC/USD      trade BUY  5.00000000 @ 1.00000000"
    )  # under the header line


def test_the_relay_removes_only_its_own_dead_socket(tmp_path: Path) -> None:
    path = tmp_path / "md.sock"
    path.write_text("someone's notes\n")  # as root, the old relay deleted any file here
    assert refused("relay", "--socket", str(path)) == (
        f"tickrelay relay: {path} exists and is not a socket; move it away or choose another --socket\n"
    )
    assert path.read_text() == "someone's notes\n"
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    assert "exists and is not a socket" in refused("relay", "--socket", str(path))
    assert path.is_symlink()
    path.unlink()
    dead = socket.socket(socket.AF_UNIX)  # what a killed relay leaves: our socket, nobody answering
    dead.bind(str(path))
    dead.close()
    relay = start_relay(path)
    relay.send_signal(signal.SIGTERM)
    assert relay.wait(5) == 0


@as_root
def test_the_relay_leaves_a_dead_socket_of_another_user_alone(tmp_path: Path) -> None:
    path = tmp_path / "md.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()
    os.chown(path, NOBODY, -1)
    assert refused("relay", "--socket", str(path)) == (
        f"tickrelay relay: {path} is a socket of uid {NOBODY}, not ours; remove it or choose another "
        "--socket\n"
    )
    assert stat.S_ISSOCK(path.lstat().st_mode)


async def test_the_socket_never_exists_with_a_wider_mode_than_0660(tmp_path: Path) -> None:
    """Under umask 0 a socket is born 0777; the relay binds under its own umask instead of narrowing
    the mode after the bind. An audit hook sees the path at every chmod the process makes."""
    path = tmp_path / "md.sock"
    seen: list[int] = []
    watching = True

    def hook(event: str, args: tuple[object, ...]) -> None:
        if watching and event == "os.chmod" and str(args[0]) == str(path) and path.exists():
            seen.append(stat.S_IMODE(path.stat().st_mode))

    sys.addaudithook(hook)  # hooks stay for the process: `watching` turns this one off
    old = os.umask(0)
    try:
        relay = Relay(path)
        await relay.start()
    finally:
        os.umask(old)
        watching = False
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    assert all(mode == 0o660 for mode in seen), [f"{m:o}" for m in seen]
    assert os.umask(old) == old  # the relay put the process umask back
    await relay.stop(drain_s=0)


@as_root
def test_a_runtime_directory_of_another_user_is_one_line(tmp_path: Path) -> None:
    theirs = tmp_path / "xdg" / "tickrelay"
    theirs.mkdir(parents=True, mode=0o700)
    os.chown(theirs, NOBODY, -1)
    why = (
        f"the runtime directory {theirs} belongs to uid {NOBODY} (nobody), not to you (uid 0 (root)): "
        "remove it, or set XDG_RUNTIME_DIR to a directory of your own\n"
    )
    environ = env(XDG_RUNTIME_DIR=str(tmp_path / "xdg"))
    assert refused("relay", environ=environ) == f"tickrelay relay: {why}"
    assert refused("tail", environ=environ) == f"tickrelay tail: {why}"
