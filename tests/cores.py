"""Both cores, for the tests that must hold for each (aiohttp's pattern): the pure-Python reference
and the compiled one (tickrelay._native), skipped when it was not built or is turned off."""

from __future__ import annotations

from typing import Any

import pytest

from tickrelay.native import compiled


def both(python: Any, name: str) -> list[Any]:
    """pytest params: ``python`` and the compiled core's function ``name``."""
    return [
        pytest.param(python, id="python"),
        pytest.param(
            getattr(compiled, name, None),
            id="native",
            marks=pytest.mark.skipif(compiled is None, reason="the compiled core is not built"),
        ),
    ]
