"""Test-wide settings: hypothesis runs a fixed sequence of examples on CI (reproducible runs) and
explores new ones on developers' machines."""

import os

import pytest
from hypothesis import settings

import vmaplab as vl

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def chain():
    """run_test_mask=127 at 4, 8 and again 8 threads on one 4-CPU 6.9 machine (read-only for tests)."""
    first = vl.simulate("nodes", threads=4, cpus=4, tests=127, loops=40, seed=1)
    second = vl.simulate("nodes", threads=8, cpus=4, tests=127, loops=40, seed=1, machine=first.machine)
    third = vl.simulate("nodes", threads=8, cpus=4, tests=127, loops=40, seed=2, machine=first.machine)
    return first, second, third
