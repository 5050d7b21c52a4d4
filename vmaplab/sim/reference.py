"""The reference engine: the allocator model of ``docs/allocator-model.md`` in plain Python.

This is the executable specification of the simulator. It is short and slow on purpose: free
space is a ``SortedDict`` of blocks scanned in address order, and every rule of the model is one
visible step. The numba engine must agree with it exactly (``tests/sim/test_differential.py``).

Positions are int64 page offsets from VMALLOC_START and sizes are pages (a VA's size includes its
guard page). Choices the spec leaves open, fixed here so that both engines agree:

* ``allocs`` counts successful allocations (so ``allocs - frees == busy_areas``); ``drains``
  counts runs of the drain work (``drain()`` and automatic drains), whether or not they purged;
  ``purges`` counts purge passes that found lazy areas (drains and allocation-failure purges);
  ``decayed`` counts VAs that pool decay returned to free space (drain, failure purge, shrinker).
* Only a VA allocated on a machine with more than one node carries a node tag (the kernel's
  ``node_alloc`` encodes no id with one node); VAs larger than 256 pages are tagged too.
* Purge helpers with ``lazy_max_pages == 0`` divide by 1 instead (the clamp then gives the same
  count as an unbounded ratio).
* An allocation-failure purge leaves ``drain_pending`` set: the scheduled drain work still runs.
* An area starts at its block's start when ``align <= 4096``, and otherwise the alignment slack
  in the search length keeps it off the block's end, so ``fit_right`` stays 0 in this model (the
  kernel reaches right-edge fits through ``vstart`` and the tree shape; see the spec's deviations).
* ``run``: a free row must name an earlier alloc row; freeing the row of a failed allocation does
  nothing the first time and raises the second time, like any double free.
* ``state()["pools"]`` lists non-empty pools only.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from sortedcontainers import SortedDict

from vmaplab.errors import SimulationError
from vmaplab.sim.params import (
    GUARD_PAGES,
    PAGE_SIZE,
    PMD_REGION_PAGES,
    POOL_CLASSES,
    PTE_REGION_PAGES,
    AllocatorConfig,
)

__all__ = ["ReferenceEngine", "OP_ALLOC", "OP_FREE", "OP_DRAIN", "OP_SHRINK", "STAT_KEYS"]

# Operation codes of the rows given to ``run`` (column 0), the one definition: vmaplab.sim.Allocator.run,
# workloads.worker_program and the contention engine use the same codes.
OP_ALLOC, OP_FREE, OP_DRAIN, OP_SHRINK = 0, 1, 2, 3

# The keys of ``stats()``, in the spec's order.
STAT_KEYS = (
    "busy_pages", "lazy_pages", "pooled_pages", "free_pages",
    "busy_areas", "lazy_areas", "pooled_areas", "free_blocks",
    "va_high_water", "pte_pages", "pmd_pages",
    "pool_hits", "pool_misses", "pool_rotations",
    "purges", "drains", "tlb_flushes", "purge_helpers", "decayed",
    "allocs", "frees", "alloc_failures",
    "fit_full", "fit_left", "fit_right", "fit_middle",
    "drain_pending", "lazy_max_pages", "nr_nodes", "space_pages",
)  # fmt: skip

# Event counters kept by the engine; the other keys are recounted from the structures.
_EVENTS = (
    "pool_hits", "pool_misses", "pool_rotations", "purges", "drains", "tlb_flushes",
    "purge_helpers", "decayed", "allocs", "frees", "alloc_failures",
    "fit_full", "fit_left", "fit_right", "fit_middle",
)  # fmt: skip


@dataclass(slots=True)
class _VA:
    """One vmap area: ``start`` (page offset), ``size`` (pages incl. guard), ``align`` (bytes, at
    least PAGE_SIZE, as last requested) and ``tag`` (node of the allocating CPU, -1 for none)."""

    start: int
    size: int
    align: int
    tag: int


class ReferenceEngine:
    """The allocator model in pure Python (see the module docstring and the spec).

    Parameters
    ----------
    config : AllocatorConfig
        The resolved configuration (design, node count, lazy_max_pages, knobs).
    """

    def __init__(self, config: AllocatorConfig) -> None:
        self.config = config
        self._base = config.base_page
        self._space = config.space_pages
        self._nodes = config.nr_nodes
        self._pools_on = config.design == "nodes" and config.nr_nodes > 1
        self._free = SortedDict({0: config.space_pages})  # start -> end (exclusive), coalesced
        self._busy: SortedDict = SortedDict()  # start -> _VA
        self._lazy = [SortedDict() for _ in range(self._nodes)]  # per node: start -> _VA
        self._pools: dict[tuple[int, int], deque[_VA]] = {}  # (node, class) -> VAs, head first
        self._pte = SortedDict()  # touched PTE regions as merged index ranges start -> end
        self._pmd = SortedDict()  # touched PMD regions, likewise
        self._lazy_pages = 0  # vmap_lazy_nr
        self._drain_pending = False
        self._high_water = 0  # highest VA end ever placed, pages
        self._events = dict.fromkeys(_EVENTS, 0)

    # -- the public operations -------------------------------------------------------------------

    def alloc(self, pages: int, align: int, cpu: int) -> int:
        """Allocate a VA for ``pages`` caller pages (a guard page is added) at ``align`` bytes on
        CPU ``cpu``; return its page offset, or -1 when the allocation fails."""
        size = pages + GUARD_PAGES
        align = max(align, PAGE_SIZE)
        tag = cpu % self._nodes if self._pools_on else -1
        if self._pools_on and size <= POOL_CLASSES:
            va = self._pool_take(tag, size, align)
            if va is not None:
                return self._make_busy(va.start, size, align, tag)
        start = self._place(size, align)
        if start < 0:
            self._purge(full_decay=True)
            start = self._place(size, align)
        if start < 0:
            self._events["alloc_failures"] += 1
            return -1
        self._high_water = max(self._high_water, start + size)
        return self._make_busy(start, size, align, tag)

    def reserve(self, offset: int, size: int, cpu: int) -> None:
        """Make ``[offset, offset + size)`` a busy VA (``size`` pages including any guard page),
        carved out of free space; tagged with the node of ``cpu`` (``cpu < 0``: no tag).

        Raises :class:`SimulationError`, changing nothing, unless every page of the range is free
        and the range ends at or below the last allocatable page. Counts in ``allocs`` (not in the
        fit classes) and maps the range's pages but its last one.
        """
        end = offset + size
        i = self._free.bisect_right(offset)
        block_start, block_end = self._free.peekitem(i - 1) if i else (0, 0)
        if size < 1 or offset < 0 or end > self._space - 1 or not block_start <= offset < end <= block_end:
            raise SimulationError(
                f"reserve of pages [{offset}, {end}): not a free range of the window (last allocatable page {self._space - 2})"
            )
        del self._free[block_start]
        if block_start < offset:
            self._free[block_start] = offset
        if end < block_end:
            self._free[end] = block_end
        self._high_water = max(self._high_water, end)
        tag = cpu % self._nodes if self._pools_on and cpu >= 0 else -1
        self._make_busy(offset, size, PAGE_SIZE, tag)

    def free(self, offset: int, cpu: int) -> None:
        """Free the busy VA starting at page ``offset`` lazily (``cpu`` is not used by the model)."""
        va = self._busy.pop(offset, None)
        if va is None:
            raise SimulationError(f"free of page offset {offset}: no busy VA starts there")
        self._events["frees"] += 1
        node = va.tag if va.tag >= 0 else self._address_node(va.start)
        self._lazy[node][va.start] = va
        self._lazy_pages += va.size
        if self._lazy_pages > self.config.lazy_max_pages:
            self._drain_pending = True
            if self.config.auto_drain:
                self.drain()

    def drain(self) -> None:
        """Run the drain work now: 6.7 repeats purges while over the threshold, 6.9 purges once
        with the 25 % pool decay."""
        self._events["drains"] += 1
        self._drain_pending = False
        self._purge(full_decay=False)
        while self.config.design == "global" and self._lazy_pages > self.config.lazy_max_pages:
            self._purge(full_decay=False)

    def shrink(self) -> int:
        """The "vmap-node" shrinker's scan: full decay of every pool; return the VAs released."""
        return sum(self._decay(node, full=True) for node in range(self._nodes))

    def run(self, ops: np.ndarray) -> np.ndarray:
        """Run rows ``(op, a, b, cpu)`` (see the spec); return one int64 offset per row, -1 where
        the row placed nothing."""
        rows = np.asarray(ops, dtype=np.int64).tolist()
        out = [-1] * len(rows)
        freed = [False] * len(rows)
        for i, (op, a, b, cpu) in enumerate(rows):
            if op == OP_ALLOC:
                out[i] = self.alloc(a, b, cpu)
            elif op == OP_FREE:
                if not 0 <= a < i or rows[a][0] != OP_ALLOC:
                    raise SimulationError(f"row {i}: a free must name an earlier alloc row, not {a}")
                if freed[a]:
                    raise SimulationError(f"row {i}: double free of the area of row {a}")
                freed[a] = True
                if out[a] >= 0:
                    self.free(out[a], cpu)
            elif op == OP_DRAIN:
                self.drain()
            elif op == OP_SHRINK:
                self.shrink()
            else:
                raise SimulationError(f"row {i}: unknown operation {op} (expected 0, 1, 2 or 3)")
        return np.array(out, dtype=np.int64)

    # -- observation -----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters and recounted totals, exactly the keys of :data:`STAT_KEYS`."""
        pooled = [va for pool in self._pools.values() for va in pool]
        lazy = [va for node in self._lazy for va in node.values()]
        values = {
            "busy_pages": sum(va.size for va in self._busy.values()),
            "lazy_pages": self._lazy_pages,
            "pooled_pages": sum(va.size for va in pooled),
            "free_pages": sum(end - start for start, end in self._free.items()),
            "busy_areas": len(self._busy),
            "lazy_areas": len(lazy),
            "pooled_areas": len(pooled),
            "free_blocks": len(self._free),
            "va_high_water": self._high_water * PAGE_SIZE,
            "pte_pages": sum(end - start for start, end in self._pte.items()),
            "pmd_pages": sum(end - start for start, end in self._pmd.items()),
            **self._events,
            "drain_pending": int(self._drain_pending),
            "lazy_max_pages": self.config.lazy_max_pages,
            "nr_nodes": self._nodes,
            "space_pages": self._space,
        }
        return {key: int(values[key]) for key in STAT_KEYS}

    def state(self) -> dict:
        """The allocator's contents in page offsets (sizes in pages), for tests and plots.

        ``busy`` and ``free`` are pairs of int64 arrays (starts, sizes) and (starts, ends);
        ``lazy`` is one address-sorted list of ``(start, size)`` per node; ``pools`` maps
        ``(node, class)`` to the starts of a non-empty pool, head first; ``pte_regions`` and
        ``pmd_regions`` are the sorted absolute indices of the 2 MiB / 1 GiB regions ever mapped.
        """
        return {
            "busy": (_ints(self._busy.keys()), _ints(va.size for va in self._busy.values())),
            "lazy": [[(va.start, va.size) for va in node.values()] for node in self._lazy],
            "pools": {key: [va.start for va in self._pools[key]] for key in sorted(self._pools)},
            "free": (_ints(self._free.keys()), _ints(self._free.values())),
            "pte_regions": _expand(self._pte),
            "pmd_regions": _expand(self._pmd),
        }

    def check_invariants(self) -> None:
        """Raise :class:`SimulationError` naming the first broken invariant of the model."""
        areas = [("busy", va) for va in self._busy.values()]
        areas += [(f"lazy node {n}", va) for n, node in enumerate(self._lazy) for va in node.values()]
        areas += [(f"pool {key}", va) for key, pool in self._pools.items() for va in pool]
        spans = [(va.start, va.start + va.size, where) for where, va in areas]
        spans += [(start, end, "free") for start, end in self._free.items()]
        spans.sort()
        prev_end, prev_where = 0, "window start"
        for start, end, where in spans:
            if start < prev_end or end <= start:
                raise SimulationError(f"disjoint: {where} [{start}, {end}) overlaps {prev_where} (ends {prev_end})")
            prev_end, prev_where = end, where
        if prev_end > self._space:
            raise SimulationError(f"disjoint: {prev_where} ends at {prev_end}, past the window ({self._space})")
        recount = sum(va.size for node in self._lazy for va in node.values())
        if recount != self._lazy_pages:
            raise SimulationError(f"counters == recounts: lazy_pages {self._lazy_pages} != {recount}")
        if self._events["allocs"] - self._events["frees"] != len(self._busy):
            raise SimulationError(f"counters == recounts: allocs - frees != busy_areas ({len(self._busy)})")
        stats = self.stats()
        total = stats["busy_pages"] + stats["lazy_pages"] + stats["pooled_pages"] + stats["free_pages"]
        if total != self._space:
            raise SimulationError(f"busy+lazy+pooled+free == space_pages: {total} != {self._space}")
        ends = list(self._free.values())
        for end, start in zip(ends, list(self._free.keys())[1:]):
            if start <= end:
                raise SimulationError(f"free blocks coalesced: a block ends at {end}, the next starts at {start}")
        for where, va in areas:
            if (self._base + va.start) % (va.align // PAGE_SIZE):
                raise SimulationError(f"aligned as requested: {where} VA at {va.start} is not {va.align}-aligned")
            if va.start + va.size > self._space - 1:
                raise SimulationError(
                    f"last page never allocated: {where} VA at {va.start} ends at {va.start + va.size}"
                )
        for (node, cls), pool in self._pools.items():
            if not pool:
                raise SimulationError(f"pools: pool {(node, cls)} is listed but empty")
            for va in pool:
                if va.size != cls + 1:
                    raise SimulationError(
                        f"pool VAs have their class size: VA at {va.start} of {va.size} pages in pool {(node, cls)}"
                    )
                if va.tag != node:
                    raise SimulationError(
                        f"pool VAs belong to their node: VA at {va.start} tagged {va.tag} in pool {(node, cls)}"
                    )
        for n, node in enumerate(self._lazy):
            for va in node.values():
                if n != (va.tag if va.tag >= 0 else self._address_node(va.start)):
                    raise SimulationError(f"lazy owner: VA at {va.start} (tag {va.tag}) on the lazy list of node {n}")
        highest = max((va.start + va.size for _, va in areas), default=0)
        if highest > self._high_water:
            raise SimulationError(f"counters == recounts: a VA ends at {highest}, above va_high_water")

    # -- the model's steps -----------------------------------------------------------------------

    def _address_node(self, start: int) -> int:
        """addr_to_node_id: the node of the 64 KiB zone (by default) holding absolute ``start``."""
        return (self._base + start) // self.config.zone_pages % self._nodes

    def _place(self, size: int, align: int) -> int:
        """Lowest-address first fit in free space (``__alloc_vmap_area``); -1 when nothing fits."""
        align_pages = align // PAGE_SIZE
        length = size + align_pages if align_pages > 1 else size
        for block_start, block_end in self._free.items():
            if block_end - block_start < length:
                continue
            start = -(-(self._base + block_start) // align_pages) * align_pages - self._base
            end = start + size
            if end > self._space - 1:  # VMALLOC_END is inclusive: the last page is never handed out
                return -1
            del self._free[block_start]
            if start > block_start:
                self._free[block_start] = start
            if end < block_end:
                self._free[end] = block_end
            fit = ("middle", "right", "left", "full")[2 * (start == block_start) + (end == block_end)]
            self._events["fit_" + fit] += 1
            return start
        return -1

    def _release(self, start: int, size: int) -> None:
        """Return ``[start, start + size)`` to free space, coalescing with touching neighbours."""
        end = start + size
        if end in self._free:
            end = self._free.pop(end)
        i = self._free.bisect_left(start)
        if i and self._free.peekitem(i - 1)[1] == start:
            start = self._free.peekitem(i - 1)[0]
        self._free[start] = end

    def _make_busy(self, start: int, size: int, align: int, tag: int) -> int:
        """Record a busy VA and map its pages (the guard page is not mapped)."""
        self._busy[start] = _VA(start, size, align, tag)
        self._events["allocs"] += 1
        first, last = self._base + start, self._base + start + size - GUARD_PAGES - 1
        if last < first:  # a reserved 1-page VA: nothing but its guard page
            return start
        _add_range(self._pte, first // PTE_REGION_PAGES, last // PTE_REGION_PAGES + 1)
        _add_range(self._pmd, first // PMD_REGION_PAGES, last // PMD_REGION_PAGES + 1)
        return start

    def _pool_take(self, node: int, size: int, align: int) -> _VA | None:
        """``node_pool_del_va``: take the head of the pool if it is aligned, else rotate it."""
        pool = self._pools.get((node, size - 1))
        if not pool:
            self._events["pool_misses"] += 1
            return None
        if (self._base + pool[0].start) % (align // PAGE_SIZE) == 0:
            self._events["pool_hits"] += 1
            va = pool.popleft()
            if not pool:
                del self._pools[(node, size - 1)]
            return va
        pool.rotate(-1)
        self._events["pool_misses"] += 1
        self._events["pool_rotations"] += 1
        return None

    def _pool_has_room(self, pool_len: int) -> bool:
        """The what-if ``pool_cap`` knob: -1 no cap, -2 Rezki's lazy_max rule, else a VA count."""
        cap = self.config.pool_cap
        if cap == -1:
            return True
        if cap == -2:
            return pool_len <= self.config.lazy_max_pages
        return pool_len < cap

    def _decay(self, node: int, full: bool) -> int:
        """``decay_va_pool_node``: return VAs from the head of each pool of ``node`` to free space."""
        released = 0
        for key in [key for key in self._pools if key[0] == node]:
            pool = self._pools[key]
            n = len(pool) if full else math.floor(len(pool) * self.config.decay)
            if n == 0 and not full and self.config.small_pool_decay == "drain":
                n = len(pool)  # the kernel's counter wraps: pools of 1-3 VAs drain completely
            for _ in range(n):
                va = pool.popleft()
                self._release(va.start, va.size)
            if not pool:
                del self._pools[key]
            released += n
        self._events["decayed"] += released
        return released

    def _purge(self, full_decay: bool) -> None:
        """``__purge_vmap_area_lazy``: decay every node's pools, then purge all lazy areas with one
        TLB flush, refilling the pools of the purging node unless ``full_decay``."""
        for node in range(self._nodes):
            self._decay(node, full_decay)
        marked = [node for node in range(self._nodes) if self._lazy[node]]
        if not marked:
            return
        self._events["tlb_flushes"] += 1
        ratio = self._lazy_pages // max(self.config.lazy_max_pages, 1)
        self._events["purge_helpers"] += min(max(ratio, 1), len(marked)) - 1
        for node in marked:
            lazy, self._lazy[node] = self._lazy[node], SortedDict()
            for va in lazy.values():  # address order
                self._lazy_pages -= va.size
                key = (node, va.size - 1)
                pool_len = len(self._pools.get(key, ()))
                if not full_decay and va.tag >= 0 and va.size <= POOL_CLASSES and self._pool_has_room(pool_len):
                    self._pools.setdefault(key, deque()).appendleft(va)
                else:
                    self._release(va.start, va.size)
        self._events["purges"] += 1


def _add_range(ranges: SortedDict, start: int, end: int) -> None:
    """Add the index range ``[start, end)`` to a SortedDict of merged ranges (start -> end)."""
    i = ranges.bisect_right(start)
    if i and ranges.peekitem(i - 1)[1] >= start:
        start = ranges.peekitem(i - 1)[0]
        end = max(end, ranges[start])
    while i < len(ranges) and ranges.peekitem(i)[0] <= end:
        end = max(end, ranges.peekitem(i)[1])
        del ranges[ranges.peekitem(i)[0]]
    ranges[start] = end


def _expand(ranges: SortedDict) -> np.ndarray:
    """Every index of a SortedDict of merged ranges, as a sorted int64 array."""
    parts = [np.arange(start, end, dtype=np.int64) for start, end in ranges.items()]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _ints(values) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64)
