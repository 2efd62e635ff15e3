"""Run a tickrelay command as another user: ``python -m tests.transport.as_user USER ARGS...`` (as root).

The interpreter and tickrelay's modules load as root (here Python lives under /root, which other users
cannot read); then the process becomes USER (its groups too) and runs ``tickrelay ARGS...``: every socket
it binds, listens on or connects to is USER's, as with a service account's relay.
"""

from __future__ import annotations

import os
import pwd
import sys

from tickrelay import cli


def main(user: str, args: list[str]) -> int:
    cli.build_parser()  # imports every command module while their files can still be read
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
