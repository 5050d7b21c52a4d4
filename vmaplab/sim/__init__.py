"""The simulator of the kernel's vmap VA allocator (Linux 6.7 global locks and 6.9 vmap nodes)."""

from vmaplab.sim.allocator import Allocator

# Eager, not lazy: the function must shadow its submodule of the same name (loads pandas).
from vmaplab.sim.replay import Replay, replay, replay_bundle

__all__ = ["Allocator", "replay", "replay_bundle", "Replay"]

# The contention engine (simulate, Machine, Run) loads on first use.
_LAZY = {"simulate": "vmaplab.sim.run", "Run": "vmaplab.sim.run", "Machine": "vmaplab.sim.machine"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vmaplab.sim' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
