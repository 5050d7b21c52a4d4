"""Fixtures for the simulator tests: every behaviour test runs on both engines.

Like pandas' ``all_parsers``: ``engine_name`` is parametrised over ``"reference"`` and ``"numba"``,
and ``make_engine(design, cpus, **knobs)`` builds an engine of the current kind from a resolved
configuration.
"""

from __future__ import annotations

import pytest

from vmaplab.sim.numba_engine import NumbaEngine
from vmaplab.sim.params import AllocatorConfig
from vmaplab.sim.reference import ReferenceEngine

ENGINES = {"reference": ReferenceEngine, "numba": NumbaEngine}


@pytest.fixture(params=list(ENGINES))
def engine_name(request: pytest.FixtureRequest) -> str:
    """Each engine's name in turn, for tests of the public Allocator."""
    return request.param


@pytest.fixture
def make_engine(engine_name: str):
    """A factory ``make_engine(design, cpus, **knobs)`` of engines of the current kind."""

    def make(design: str = "global", cpus: int = 64, **knobs):
        return ENGINES[engine_name](AllocatorConfig.resolve(design, cpus, **knobs))

    return make
