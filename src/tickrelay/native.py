"""Which core runs: the compiled one (``tickrelay._native``, built from ``native/``) or pure Python.

Decided once, at import: the compiled module is used when it was built and imports, unless the
environment sets ``TICKRELAY_NO_EXTENSIONS`` (to anything but ``0`` or empty), as the aio-libs
packages do. The one read of the environment below ``cli.py``, on purpose: the choice must hold
before any configuration is parsed, in every process, tests included. Each area takes its
functions from ``compiled`` when it is not None and keeps its Python functions as the reference
and the fallback (``relay/fanout.py``, ``protocol/link.py``); ``CORE`` says which one runs.
"""

from __future__ import annotations

import os
from typing import Literal


__all__ = ["CORE", "WHY_PYTHON", "compiled"]

_TURNED_OFF = os.environ.get("TICKRELAY_NO_EXTENSIONS", "") not in ("", "0")
try:
    if _TURNED_OFF:
        raise ImportError("TICKRELAY_NO_EXTENSIONS is set")
    from tickrelay import _native as compiled
except ImportError:
    compiled = None  # type: ignore[assignment]  # not built (no cargo at install), or turned off

# why the compiled core is not used, for people ("" when it is)
WHY_PYTHON = (
    "" if compiled is not None
    else "TICKRELAY_NO_EXTENSIONS is set" if _TURNED_OFF
    else "the compiled core is not built"
)  # fmt: skip
CORE: Literal["native", "python"] = "python" if compiled is None else "native"
