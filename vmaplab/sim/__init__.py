"""The simulator of the kernel's vmap VA allocator (Linux 6.7 global locks and 6.9 vmap nodes)."""

from vmaplab.sim.allocator import Allocator

__all__ = ["Allocator"]
