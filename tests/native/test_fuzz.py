"""Differential fuzzing: real frames, mutated (``tests/native/mutate.py``), through both cores.

For every venue API the compiled core builds, hypothesis draws windows of the API's recordings and
edits them (frames truncated, numbers rewritten, values swapped between frames, bad UTF-8, deep
nesting, reordered, duplicated and dropped frames, disconnects and REST snapshots put in), feeds the
same calls to ``FeedCore`` over the Python feed and to the native core, and compares the output bytes,
the whole stats, the venue's counters, ``wants_snapshot()`` and ``take_requests()`` after every call.
A failure prints the calls, shrunk to the fewest on which the cores differ, as a ``replay(...)``
literal. The default run feeds a few thousand
frames per API; ``-m slow`` at least 100,000.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.native.corpus import APIS, Api
from tests.native.differential import needs, run_plan
from tests.native.mutate import Plan, plans


ROUNDS = 8


def fuzz(api: Api, examples: int, window: int, at_least: int) -> int:
    """Run ``examples`` plans of up to ``window`` frames; check at least ``at_least`` frames were fed."""
    fed = [0]

    # no hypothesis shrinking: run_plan shrinks the failing calls itself (delta debugging), much faster
    # than re-drawing windows of large frames, and prints them as a replay() literal
    phases = [Phase.explicit, Phase.reuse, Phase.generate]
    suppress = list(HealthCheck)

    @settings(max_examples=examples, deadline=None, suppress_health_check=suppress, phases=phases)
    @given(plan=plans(api, window))
    def check(plan: Plan) -> None:
        fed[0] += run_plan(api, plan.feed, plan.rec, plan.ops, plan.auto_snapshots)

    # windows are drawn at random lengths, so one batch of examples may fall short of the floor: draw
    # batches until it is reached (each batch is fresh random plans), a bounded number of times
    for _ in range(ROUNDS):
        check()
        if fed[0] >= at_least:
            return fed[0]
    raise AssertionError(f"{api.name}: only {fed[0]} frames fed in {ROUNDS} batches of {examples} plans")


APIS_PARAMS = [pytest.param(api, id=name, marks=needs(api)) for name, api in sorted(APIS.items())]


@pytest.mark.parametrize("api", APIS_PARAMS)
def test_mutated_sessions_give_the_same_bytes_and_stats(api: Api) -> None:
    fuzz(api, examples=36, window=120, at_least=2_000)


@pytest.mark.slow
@pytest.mark.timeout(600)  # 30-50 s each on a quiet 2-core machine
@pytest.mark.parametrize("api", APIS_PARAMS)
def test_mutated_sessions_give_the_same_bytes_and_stats_long(api: Api) -> None:
    fuzz(api, examples=450, window=400, at_least=100_000)
