"""A simulated machine: CPUs, kernel settings, the cost model, and the allocator state it keeps.

A :class:`Machine` outlives a run, as a real one outlives a test_vmalloc load: its VA space, pools,
lazy lists and page tables (never freed) carry over to the next ``simulate(..., machine=m)``.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from vmaplab.sim import _kernels as K
from vmaplab.sim.costs import CostModel
from vmaplab.sim.numba_engine import NumbaEngine
from vmaplab.sim.params import PAGE_SHIFT, PAGE_SIZE, AllocatorConfig, check_bool, check_int

__all__ = ["Machine", "ALLOCATOR_KNOBS", "MACHINE_KNOBS", "SPACE_MAP_COLUMNS"]

#: Knobs of the allocator model (docs/allocator-model.md), passed to AllocatorConfig.resolve.
ALLOCATOR_KNOBS = ("pool_cap", "decay", "small_pool_decay", "lazy_max_pages", "nr_nodes", "zone_pages", "paging_levels")
#: Kernel settings of the contention model (docs/contention-model.md).
MACHINE_KNOBS = ("drain_priority", "init_on_alloc", "busy_lock_once", "costs", "flush_stall_every", "flush_stall_ns")
#: Columns of :meth:`Machine.space_map` (all int64).
SPACE_MAP_COLUMNS = ("offset", "pte_pages", "pmd_pages", "busy_pages", "lazy_pages", "pooled_pages")


class Machine:
    """A machine running one allocator design, with the state that persists between runs.

    Parameters
    ----------
    design : {"global", "nodes"}
        Linux 6.7 (global vmap locks) or 6.9 (vmap nodes).
    cpus : int
        Online = possible CPUs (lazy_max_pages, node count, the CPUs threads run on).
    init_on_alloc : bool
        Zero every allocated page (CONFIG_INIT_ON_ALLOC_DEFAULT_ON). True by default: the seed's
        series profile spends 21.67 % in clear_page_rep on tests that ask for no zeroed pages.
    drain_priority : {"normal", "high"}
        Queue the drain work and the purge helpers at the tail of the CPU's run queue
        (system_wq) or at its head with preemption at the next preemption point
        (system_highpri_wq, Rezki's draft in the pagetable_alloc thread).
    busy_lock_once : bool
        Take the busy lock once per vmalloc (mainline aaab830ad887) instead of twice (6.9 as merged).
    costs : CostModel, optional
        The cost model; the calibrated defaults when omitted.
    flush_stall_every, flush_stall_ns : int
        A virtual machine's late IPI answer: every ``flush_stall_every``-th TLB flush (counted over
        the machine's life) waits ``flush_stall_ns`` more, as when the host is not running one of
        the vCPUs the flush interrupts. 0 (never) by default: bare metal. docs/calibration.md (sixth
        pass) gives what a 2-vCPU QEMU guest measured.
    **knobs
        Allocator knobs: pool_cap, decay, small_pool_decay, lazy_max_pages, nr_nodes, zone_pages,
        paging_levels.

    Attributes
    ----------
    config : AllocatorConfig
        The resolved allocator configuration (auto_drain off: the drain kworker runs the drains).
    allocator : NumbaEngine
        The allocator arrays (VA space, busy, lazy, pools, page tables) and cumulative counters.
    busy_per_node : numpy.ndarray of int64
        Busy VAs per busy tree (one tree in the global design), for the tree-depth costs.
    runs : list of dict
        The ``params`` of every run made on this machine, in order.
    pages_allocated, pages_freed : int
        Data pages (guard pages and page tables excluded) that vmalloc allocated and vfree freed
        over every run on this machine, as /proc/vmstat's event counters count them since boot.
    """

    def __init__(
        self,
        design: str = "nodes",
        cpus: int = 64,
        *,
        init_on_alloc: bool = True,
        drain_priority: str = "normal",
        busy_lock_once: bool = False,
        costs: CostModel | None = None,
        flush_stall_every: int = 0,
        flush_stall_ns: int = 0,
        **knobs,
    ) -> None:
        unknown = sorted(set(knobs) - set(ALLOCATOR_KNOBS))
        if unknown:
            raise TypeError(f"unknown machine knobs {unknown}; known: {', '.join(ALLOCATOR_KNOBS + MACHINE_KNOBS)}")
        if drain_priority not in ("normal", "high"):
            raise ValueError(f"drain_priority must be 'normal' or 'high', not {drain_priority!r}")
        if costs is not None and not isinstance(costs, CostModel):
            raise TypeError(f"costs must be a CostModel, not {type(costs).__name__}")
        self.design = design
        self.cpus = cpus
        self.init_on_alloc = check_bool("init_on_alloc", init_on_alloc)
        self.drain_priority = drain_priority
        self.busy_lock_once = check_bool("busy_lock_once", busy_lock_once)
        self.costs = CostModel() if costs is None else costs
        self.flush_stall_every = check_int("flush_stall_every", flush_stall_every, 0)
        self.flush_stall_ns = check_int("flush_stall_ns", flush_stall_ns, 0)
        self.knobs = dict(knobs)
        self.config = AllocatorConfig.resolve(design, cpus, auto_drain=False, **knobs)
        self.allocator = NumbaEngine(self.config)
        self.busy_per_node = np.zeros(self.config.nr_nodes, np.int64)
        self.runs: list[dict] = []
        self.pages_allocated = 0
        self.pages_freed = 0

    def __repr__(self) -> str:
        return (
            f"Machine(design={self.design!r}, cpus={self.cpus}, nr_nodes={self.config.nr_nodes}, "
            f"init_on_alloc={self.init_on_alloc}, drain_priority={self.drain_priority!r}, runs={len(self.runs)})"
        )

    def settings(self) -> dict:
        """Every setting of the machine by knob name (what a later run must not contradict)."""
        out = {"design": self.design, "cpus": self.cpus, "init_on_alloc": self.init_on_alloc,
               "drain_priority": self.drain_priority, "busy_lock_once": self.busy_lock_once,
               "costs": self.costs, "flush_stall_every": self.flush_stall_every,
               "flush_stall_ns": self.flush_stall_ns}  # fmt: skip
        c = self.config
        pool_cap = {-1: None, -2: "lazy_max"}.get(c.pool_cap, c.pool_cap)
        out.update(pool_cap=pool_cap, decay=c.decay, small_pool_decay=c.small_pool_decay,
                   lazy_max_pages=c.lazy_max_pages, nr_nodes=c.nr_nodes, zone_pages=c.zone_pages,
                   paging_levels=c.paging_levels)  # fmt: skip
        return out

    def copy(self) -> Machine:
        """An independent machine in this one's state, to branch a what-if run from it.

        Runs on the copy leave this machine as it is; the same run with the same seed on either gives
        the same result. The copy holds all of this machine's arrays except the purge's scratch
        (5.1 GB after the 64 -> 128 -> 256-thread chain on 64 CPUs, docs/calibration.md, eleventh pass).
        """
        return copy.deepcopy(self)

    def stats(self) -> dict[str, int]:
        """The allocator's statistics (docs/allocator-model.md), cumulative over every run."""
        return self.allocator.stats()

    def space_map(self, bin_bytes: int = 1 << 30) -> pd.DataFrame:
        """The vmalloc window now, in fixed address bins: page tables populated against pages in use.

        Parameters
        ----------
        bin_bytes : int
            Width of a bin, bytes (a positive multiple of the 4 KiB page; default 1 GiB, the span of
            one PMD page).

        Returns
        -------
        DataFrame
            One row per bin from VMALLOC_START up to the bin of the highest page-table page (or VA
            end), empty bins included; int64 columns :data:`SPACE_MAP_COLUMNS`: ``offset`` (bytes
            from VMALLOC_START to the bin's start), ``pte_pages`` and ``pmd_pages`` (page-table pages
            ever populated, never freed, counted in the bin holding the start of the 2 MiB or 1 GiB
            region they map, clipped to VMALLOC_START) and ``busy_pages``, ``lazy_pages``,
            ``pooled_pages`` (pages of busy, lazily freed and pooled VAs inside the bin, guard pages
            included, a VA spanning bins split between them). Column sums equal :meth:`stats`'
            ``pte_pages``, ``pmd_pages``, ``busy_pages``, ``lazy_pages`` and ``pooled_pages``.
            ``attrs``: ``bin_bytes``, ``vmalloc_start`` (bytes), ``va_high_water`` (bytes).
        """
        if isinstance(bin_bytes, bool) or not isinstance(bin_bytes, (int, np.integer)) or bin_bytes <= 0 \
                or bin_bytes % PAGE_SIZE:  # fmt: skip
            raise ValueError(f"bin_bytes must be a positive multiple of {PAGE_SIZE} bytes, not {bin_bytes!r}")
        eng = self.allocator
        bin_pages = int(bin_bytes) >> PAGE_SHIFT
        base = self.config.base_page
        S = eng._S[: int(eng._C[K.SLOT_HW])]
        state, start = S[:, K.S_STATE], S[:, K.S_START]
        end = start + S[:, K.S_SIZE]
        pte_abs, pmd_abs = eng.page_table_regions()
        pte = np.maximum((pte_abs << K.PTE_SHIFT) - base, 0)  # first page of each region, offset from the base
        pmd = np.maximum((pmd_abs << K.PMD_SHIFT) - base, 0)
        live = state != K.FREE_SLOT
        top = max(int(end[live].max(initial=0)), int(pte.max(initial=-1)) + 1, int(pmd.max(initial=-1)) + 1)
        n = -(-top // bin_pages)
        edges = np.arange(n + 1, dtype=np.int64) * bin_pages
        cols = {
            "offset": edges[:-1] << PAGE_SHIFT,
            "pte_pages": np.bincount(pte // bin_pages, minlength=n).astype(np.int64),
            "pmd_pages": np.bincount(pmd // bin_pages, minlength=n).astype(np.int64),
        }
        for name, code in (("busy_pages", K.BUSY), ("lazy_pages", K.LAZY), ("pooled_pages", K.POOLED)):
            mine = state == code
            cols[name] = np.diff(_pages_below(start[mine], end[mine], edges))
        df = pd.DataFrame(cols, columns=list(SPACE_MAP_COLUMNS))
        df.attrs = {"bin_bytes": int(bin_bytes), "vmalloc_start": self.config.vmalloc_start,
                    "va_high_water": int(eng._C[K.HIGH_WATER]) << PAGE_SHIFT}  # fmt: skip
        return df

    def check_invariants(self) -> None:
        """Raise SimulationError naming a broken invariant of the allocator state."""
        self.allocator.check_invariants()
        busy = self.allocator.stats()["busy_areas"]
        if int(self.busy_per_node.sum()) != busy:
            from vmaplab.errors import SimulationError

            raise SimulationError(f"busy trees hold {int(self.busy_per_node.sum())} VAs, busy_areas is {busy}")


def _pages_below(start: np.ndarray, end: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Pages of the ranges ``[start, end)`` below each position ``x`` (int64 arrays of pages)."""
    below = np.zeros(len(x), np.int64)
    for bound, sign in ((np.sort(start), 1), (np.sort(end), -1)):
        count = np.searchsorted(bound, x, side="left")  # bounds < x
        prefix = np.concatenate(([0], np.cumsum(bound)))[count]
        below += sign * (count * x - prefix)
    return below

