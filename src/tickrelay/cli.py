"""The ``tickrelay`` command: argparse sub-commands wired to ``tickrelay.commands.<name>``.

Each command module defines ``HELP`` (one line), ``configure(parser)`` and ``run(args) -> int``.
Every command takes ``--log-level`` (``log.level``; ``tickrelay.log`` sets up the diagnostics).
The configuration is read here once (``--config`` where the command has it, else ./tickrelay.toml, and
the environment): its log level and ``relay.allowed_users`` (``transport.paths.trust_users``) hold
for the whole process, whichever relay clients the command makes.
Expected failures (TickrelayError, and OSError: a missing file, a refused socket) log one clear error
line on stderr, never a traceback: exit 2 for configuration errors, 1 for the rest; Ctrl-C exits
130; a reader that leaves (``| head``) ends the command quietly with 141, as SIGPIPE ends other Unix
tools.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from tickrelay import __version__, log, runtime
from tickrelay.commands.config import read_settings
from tickrelay.errors import ConfigError, TickrelayError
from tickrelay.transport import paths


# (sub-command, module under tickrelay.commands). Keep in the order `--help` should list them.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("up", "up"),
    ("normalize", "normalize"),
    ("decode", "decode"),
    ("relay", "relay"),
    ("relay-status", "relay_status"),
    ("tail", "tail"),
    ("publish", "publish"),
    ("config", "config"),
    ("replay-exchange", "replay_exchange"),
    ("collect", "collect"),
    ("stats", "stats"),
    ("record", "record"),
    ("replay", "replay"),
    ("bridge", "bridge"),
    ("dashboard", "dashboard"),
    ("strategy", "strategy"),
    ("risk", "risk"),
)


def _load(module: str) -> ModuleType:
    return importlib.import_module(f"tickrelay.commands.{module}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickrelay",
        description="Normalized, gap-checked exchange market data over Protocol V2 and a Unix-socket relay.",
    )
    parser.add_argument("--version", action="version", version=f"tickrelay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS:
        module = _load(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(p)
        p.add_argument("--log-level", choices=tuple(log.LEVELS), help="log.level: the diagnostics shown")
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if not runtime.die_with_parent(os.environ):
        return 1  # started by `up`, which is already gone
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    log.setup()  # info, until the configuration is read
    say = log.logger(args.command)
    try:
        # the relay's --allowed-user is a flag for relay.allowed_users; no other command has it
        flags = {"log.level": args.log_level, "relay.allowed_users": getattr(args, "allowed_user", None)}
        config = read_settings(getattr(args, "config", None), flags).config
        log.setup(config.log.level)
        paths.trust_users(config.relay.allowed_users)  # for every socket check of this process
        code: int = args._run(args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at the interpreter's exit
    except ConfigError as exc:
        say.error("configuration error: %s", exc)
        return 2
    except TickrelayError as exc:
        say.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if not runtime.stdout_closed():
            say.error("the other end closed the connection")
            return 1
        runtime.silence_stdout()
        return 141
    except OSError as exc:  # a file or socket the command could not use: one line, never a traceback
        what = f"{exc.filename}: {exc.strerror}" if exc.filename else (exc.strerror or str(exc))
        say.error("%s", what)
        return 1
    return code
