"""Fixtures for the simulator tests: every behaviour test runs on both engines.

Like pandas' ``all_parsers``: ``engine_name`` is parametrised over ``"reference"`` and ``"numba"``,
and ``make_engine(design, cpus, **knobs)`` builds an engine of the current kind from a resolved
configuration. The numba engine is skipped, with the reason, only while its module does not exist.
"""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from vmaplab.sim.params import AllocatorConfig

ENGINES = ("reference", "numba")
_MODULES = {"reference": ("vmaplab.sim.reference", "ReferenceEngine"), "numba": ("vmaplab.sim.numba_engine", "NumbaEngine")}


def engine_class(name: str) -> type:
    """The engine class called ``name``; skip the test if the numba engine module does not exist yet."""
    module, cls = _MODULES[name]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} does not exist yet (the numba engine is written in parallel)")
    return getattr(importlib.import_module(module), cls)


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    """Each engine's name in turn, for tests of the public Allocator."""
    engine_class(request.param)
    return request.param


@pytest.fixture
def make_engine(engine_name: str):
    """A factory ``make_engine(design, cpus, **knobs)`` of engines of the current kind."""
    cls = engine_class(engine_name)

    def make(design: str = "global", cpus: int = 64, **knobs):
        return cls(AllocatorConfig.resolve(design, cpus, **knobs))

    return make
