"""The public face of the allocator model: :class:`Allocator`, in absolute addresses.

The engines (:mod:`vmaplab.sim.reference`, :mod:`vmaplab.sim.numba_engine`) work in page offsets
from VMALLOC_START and trust their arguments; this class checks every argument, converts
addresses and offsets, and picks the engine. The model is ``docs/allocator-model.md``.
"""

from __future__ import annotations

import operator

import numpy as np

from vmaplab.sim.params import PAGE_SHIFT, PAGE_SIZE, AllocatorConfig
from vmaplab.sim.reference import OP_ALLOC, OP_FREE, ReferenceEngine

__all__ = ["Allocator"]

ENGINES = ("numba", "reference")
# The largest alignment handed to an engine (which works in int64). An alignment of 2^50 pages or
# more exceeds every window (the 5-level one is 12 800 TiB < 2^54 bytes), so such requests fail
# the same way whatever the exact value. Likewise any request of ``space_pages`` pages or more
# fails like a request of exactly ``space_pages``: the engines get at most that.
_MAX_ALIGN = 1 << 62


class Allocator:
    """The kernel's vmap VA allocator: Linux 6.7 (``"global"``) or 6.9 (``"nodes"``).

    Parameters
    ----------
    design : {"global", "nodes"}
        ``"global"``: one free tree, one lazy list, a drain loop (Linux 6.7). ``"nodes"``: the
        vmap-node series with per-node size-class pools (Linux 6.9).
    cpus : int
        Online (and possible) CPUs; sets ``lazy_max_pages`` and the node count.
    engine : {"numba", "reference"}
        ``"numba"`` is fast; ``"reference"`` is the pure-Python executable spec. Both give
        identical results.
    **knobs
        What-if knobs of :meth:`AllocatorConfig.resolve`: ``pool_cap``, ``decay``,
        ``small_pool_decay``, ``lazy_max_pages``, ``nr_nodes``, ``zone_pages``, ``paging_levels``,
        ``auto_drain``.

    Attributes
    ----------
    config : AllocatorConfig
        The resolved configuration.
    engine : str
        The engine's name.

    Examples
    --------
    >>> a = Allocator("nodes", cpus=64, engine="reference")
    >>> hex(a.alloc(1))
    '0xffffc90000000000'
    >>> a.stats()["busy_pages"]  # one page and its guard page
    2
    """

    def __init__(
        self, design: str = "global", cpus: int = 64, engine: str = "numba", **knobs
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be 'numba' or 'reference', not {engine!r}")
        self.config = AllocatorConfig.resolve(design, cpus, **knobs)
        self.engine = engine
        if engine == "numba":
            from vmaplab.sim.numba_engine import NumbaEngine  # numba loads only when asked for

            self._engine = NumbaEngine(self.config)
        else:
            self._engine = ReferenceEngine(self.config)

    def __repr__(self) -> str:
        c = self.config
        return f"Allocator(design={c.design!r}, cpus={c.cpus}, engine={self.engine!r}, nr_nodes={c.nr_nodes})"

    def alloc(self, pages: int, align: int = PAGE_SIZE, cpu: int = 0) -> int | None:
        """Allocate a VA for ``pages`` pages (plus a guard page) on CPU ``cpu``.

        Parameters
        ----------
        pages : int
            Caller pages, at least 1.
        align : int
            Alignment in bytes, a power of two (values below 4096 mean page alignment).
        cpu : int
            The allocating CPU, in ``[0, cpus)``; picks the node pool in the ``"nodes"`` design.

        Returns
        -------
        int or None
            The absolute start address, or None when the allocation fails.
        """
        pages = _count("pages", pages)
        align = _alignment("align", align)
        pages = min(pages, self.config.space_pages)
        off = self._engine.alloc(pages, min(align, _MAX_ALIGN), self._cpu(cpu))
        return None if off < 0 else self.config.vmalloc_start + (off << PAGE_SHIFT)

    def free(self, addr: int, cpu: int = 0) -> None:
        """Free the busy VA starting at ``addr`` (lazily, as vfree does).

        Raises :class:`~vmaplab.errors.SimulationError` if no busy VA starts there, ValueError if
        ``addr`` is not a page address in the window.
        """
        addr = _integer("addr", addr)
        off, rest = divmod(addr - self.config.vmalloc_start, PAGE_SIZE)
        if rest or not 0 <= off < self.config.space_pages:
            raise ValueError(f"addr {addr:#x} is not a page address in the vmalloc window")
        self._engine.free(off, self._cpu(cpu))

    def reserve(self, addr: int, size: int, cpu: int | None = None) -> None:
        """Make the exact range ``[addr, addr + size)`` a busy VA, carved out of free space.

        Seeds the model with areas that were already busy, e.g. from a /proc/vmallocinfo snapshot.

        Parameters
        ----------
        addr : int
            Absolute start address, page-aligned, in the window.
        size : int
            Bytes including the guard page (as vmallocinfo and the alloc tracepoint report them),
            a positive multiple of 4096.
        cpu : int or None
            The CPU that allocated the area: its node tags the VA (the ``"nodes"`` design sends it
            to that node's pools when purged). None: untagged, like a VA of a one-node machine.

        Raises :class:`~vmaplab.errors.SimulationError` if any page of the range is not free (or
        it reaches the window's last page), ValueError for an address or size off the page grid.
        """
        addr, size = _integer("addr", addr), _count("size", size)
        off, rest = divmod(addr - self.config.vmalloc_start, PAGE_SIZE)
        if rest or size % PAGE_SIZE or not 0 <= off < self.config.space_pages:
            raise ValueError(f"reserve({addr:#x}, {size}): need a page address in the window and a size in whole pages")
        self._engine.reserve(off, size >> PAGE_SHIFT, -1 if cpu is None else self._cpu(cpu))

    def drain(self) -> None:
        """Run the drain work (``drain_vmap_area_work``) now."""
        self._engine.drain()

    def shrink(self) -> int:
        """Run the "vmap-node" shrinker's scan (full pool decay); return the VAs released."""
        return int(self._engine.shrink())

    def stats(self) -> dict[str, int]:
        """Counters and totals (pages, areas, events; ``va_high_water`` in bytes), see the spec."""
        return self._engine.stats()

    def state(self) -> dict:
        """The engine's contents in **page offsets** from VMALLOC_START (see the engines' ``state``)."""
        return self._engine.state()

    def check_invariants(self) -> None:
        """Raise :class:`~vmaplab.errors.SimulationError` naming a broken invariant of the model."""
        self._engine.check_invariants()

    def run(self, ops: np.ndarray) -> np.ndarray:
        """Run a stream of operations in one call.

        Parameters
        ----------
        ops : array of int, shape (n, 4)
            Rows ``(op, a, b, cpu)``: op 0 allocates ``a`` pages at alignment ``b`` bytes; op 1
            frees the area that row ``a`` (an earlier alloc row) allocated, nothing if that row
            failed; op 2 drains; op 3 shrinks. A second free of a row raises SimulationError.

        Returns
        -------
        numpy.ndarray of uint64, shape (n,)
            The absolute address each alloc row placed; 0 for failed and other rows.
        """
        rows = self._check_ops(ops)
        offsets = self._engine.run(rows)
        out = np.zeros(len(rows), dtype=np.uint64)
        placed = offsets >= 0
        pages = offsets[placed].astype(np.uint64)
        out[placed] = np.uint64(self.config.vmalloc_start) + (pages << np.uint64(PAGE_SHIFT))
        return out

    def _cpu(self, cpu: int) -> int:
        cpu = _integer("cpu", cpu)
        if not 0 <= cpu < self.config.cpus:
            raise ValueError(f"cpu must be in [0, {self.config.cpus}), not {cpu}")
        return cpu

    def _check_ops(self, ops: np.ndarray) -> np.ndarray:
        """Validate an operation stream; return it as a C-contiguous int64 array."""
        arr = np.asarray(ops)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"ops must have shape (n, 4) with rows (op, a, b, cpu), not {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ops must hold integers, not {arr.dtype}")
        rows = np.ascontiguousarray(arr, dtype=np.int64)
        op, a, b, cpu = rows.T
        index = np.arange(len(rows))
        problems = [
            (~np.isin(op, (0, 1, 2, 3)), "op must be 0 (alloc), 1 (free), 2 (drain) or 3 (shrink)"),
            ((cpu < 0) | (cpu >= self.config.cpus), f"cpu must be in [0, {self.config.cpus})"),
            ((op == OP_ALLOC) & (a < 1), "an alloc needs at least 1 page"),
            ((op == OP_ALLOC) & ((b < 1) | (b & (b - 1) != 0)), "an alloc's alignment must be a power of two"),
        ]
        is_free = op == OP_FREE
        target = np.where(is_free, a, 0)
        bad_target = is_free & ((target < 0) | (target >= index))
        target = np.where(bad_target, 0, target)
        problems.append((bad_target | (is_free & (op[target] != OP_ALLOC)), "a free must name an earlier alloc row"))
        for mask, message in problems:
            if mask.any():
                i = int(np.flatnonzero(mask)[0])
                raise ValueError(f"ops row {i} {rows[i].tolist()}: {message}")
        rows[:, 1] = np.where(op == OP_ALLOC, np.minimum(a, self.config.space_pages), a)
        return rows


def _integer(name: str, value: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None


def _count(name: str, value: int) -> int:
    value = _integer(name, value)
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


def _alignment(name: str, value: int) -> int:
    value = _count(name, value)
    if value & (value - 1):
        raise ValueError(f"{name} must be a power of two, not {value}")
    return value
