"""Diagnostics on stderr through the standard ``logging`` module, set up once by the CLI.

Each command logs through ``logger(<command>)`` (``tickrelay.collect.kraken``); a record is one line,
``tickrelay collect kraken: <message>`` (a traceback follows its line), written to the ``sys.stderr``
of the moment (so pytest's capture sees it). ``log.level`` (config, ``TICKRELAY_LOG_LEVEL``,
``--log-level``) hides what is below it: ``debug``, ``info`` (progress, banners, summaries),
``warning`` (rejected frames, alerts), ``error`` (bugs, bans, a command's failure). Nothing is logged
per message: a venue's rejected frames are logged once per kind, its bug's traceback once.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO


ROOT = "tickrelay"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def logger(command: str) -> logging.Logger:
    """The logger of a command (``"collect kraken"`` -> ``tickrelay.collect.kraken``)."""
    return logging.getLogger(f"{ROOT}.{command.replace(' ', '.')}")


class _Line(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.name.replace('.', ' ')}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]  # typeshed's generic; stream is a property
    """A handler that writes to ``sys.stderr`` as it is when a record comes (not as it was at setup)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_Line())

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ sets it; stderr is read on use
        pass


def setup(level: str = "info") -> None:
    """Send tickrelay's records at ``level`` or above to stderr, one line each (again: only the level
    changes)."""
    root = logging.getLogger(ROOT)
    if not any(isinstance(h, _Stderr) for h in root.handlers):
        root.addHandler(_Stderr())
        root.propagate = False
    root.setLevel(LEVELS[level])
