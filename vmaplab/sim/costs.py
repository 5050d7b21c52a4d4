"""The cost model of the contention engine: every time constant, in nanoseconds, with its source.

Costs are physical: per operation, per page, per tree level, per cache-line transfer. None depends on
the thread count or on the allocator design; the design only decides which steps an operation takes
(docs/contention-model.md). ``docs/calibration.md`` tells how the calibrated ones were fitted (only on
the seed's published figures) and what the run gives next to the published numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = ["CostModel", "COST_NAMES", "SEED_PROFILE_CPU_S", "SEED_RUN_PAGES", "SEED_RUN_PAIRS", "slice_ns"]

#: CPU time behind the seed's profile of the series: 51 s wall x 64 CPUs, s. A function's self share
#: times this, over how often the profiled run calls it, is that call's cost.
SEED_PROFILE_CPU_S = 3264.0
#: Pages the profiled run (run_test_mask=7, nr_threads=64, test_loop_count=1,000,000) allocates and
#: frees: per worker 1 M for fix_size (one page a loop), 1,114,912 for full_fit (two 112-page pointer
#: arrays, 114,688 one-page areas, 1 M one-page loops) and 101,015,030 for long_busy_list (a 30-page
#: array, 15,000 one-page areas, 1 M loops of 100 + 1 pages); lib/test_vmalloc.c, 6.9.
SEED_RUN_PAGES = 64 * (1_000_000 + 1_114_912 + 101_015_030)
#: vmalloc + vfree pairs of the same run: per worker 1 M for fix_size, 1,114,690 for full_fit (the two
#: arrays, the 114,688 one-page areas, 1 M loops) and 2,015,001 for long_busy_list (the array, the
#: 15,000 areas, two areas a loop).
SEED_RUN_PAIRS = 64 * (1_000_000 + 1_114_690 + 2_015_001)


def slice_ns(cpus: int) -> int:
    """EEVDF's base slice for ``cpus`` CPUs, ns: 0.75 ms x (1 + ilog2(min(cpus, 8))) (3 ms from 8 CPUs).

    kernel/sched/fair.c (6.6+): sysctl_sched_base_slice = 0.75 ms scaled by the default
    SCHED_TUNABLESCALING_LOG factor 1 + ilog2(min(online CPUs, 8)).
    """
    return 750_000 * (1 + int(math.log2(min(max(cpus, 1), 8))))


def balance_interval_ns(cpus: int) -> int:
    """How often a busy CPU balances load with the others, ns: 16 ms x the CPUs of its domain.

    kernel/sched/topology.c (sd_init) starts a domain's balance_interval at its weight in ms and
    multiplies it by busy_factor 16 while the CPU is busy (get_sd_balance_interval, fair.c); one
    domain spans the machine.
    """
    return 16_000_000 * max(cpus, 1)


@dataclass(frozen=True)
class CostModel:
    """Nanosecond costs of every step the engine times (docs/contention-model.md, "Costs").

    Sources: "seed profile" means the vmap-node cover letter's perf profile of ``run_test_mask=7
    nr_threads=64`` on a 64-thread Threadripper 3970X with the series (51 s wall, 64 CPUs, so
    3264 CPU-seconds, :data:`SEED_PROFILE_CPU_S`): a function's self share x 3264 s / the number of
    times the simulated run calls it. Others cite a published hardware figure; "order of magnitude"
    marks an estimate no published figure pins down. None is fitted to the published wall times or
    spin shares (docs/calibration.md sets the engine's figures beside them).
    """

    #: Uncontended spin_lock + spin_unlock on a line this CPU owns: two locked atomics (Zen 2: ~8
    #: cycles each at 3.7 GHz, Agner Fog's instruction tables: ~4.3 ns), the preempt count's increment
    #: and decrement, and the calls. Order of magnitude.
    lock_ns: float = 10.0
    #: One cache-line transfer between cores: a lock handoff, or taking a lock last held elsewhere.
    #: Published Zen 2 core-to-core latencies are 25-30 ns inside a CCX and 80-110 ns across CCXs/CCDs;
    #: the 3970X's 64 CPUs sit in 8 CCXs, so nearly every handoff crosses one.
    line_ns: float = 100.0
    #: Fixed part of an rb-tree operation (call, compare, rebalance bookkeeping). Order of magnitude.
    tree_base_ns: float = 60.0
    #: One tree level: one likely cache miss. Seed profile: insert_vmap_area 8.73 % self x 3264 s is
    #: ~285 s over ~528 M calls (6.9 inserts every VA twice: into its node's busy tree of ~15 000 VAs
    #: when allocated, into a lazy tree of ~100 when freed), ~0.54 us per call; with tree_base_ns per
    #: call and log2(15 001) + log2(101) ~ 20.5 levels per pair of calls that is ~45 ns per level.
    tree_level_ns: float = 45.0
    #: A short critical section that touches one object (setup_vmalloc_vm, a list splice). Order of
    #: magnitude.
    lock_hold_ns: float = 30.0
    #: One slab allocation or free of a small object (vm_struct, vmap_area): ~100-200 cycles. Order
    #: of magnitude.
    slab_ns: float = 50.0
    #: Taking one order-0 page from the per-CPU lists (bulk allocator), zeroing excluded. Seed
    #: profile: __alloc_pages_bulk 28.98 % children minus clear_page_rep 21.67 % = 7.31 % x 3264 s
    #: over the 6.60 G pages of a loops=1,000,000 run (:data:`SEED_RUN_PAGES`), ~36 ns.
    page_alloc_ns: float = 36.0
    #: Zeroing one 4 KiB page (clear_page_rep). Seed profile: 21.67 % self x 3264 s over the 6.60 G
    #: pages the run allocates (init_on_alloc), ~107 ns, i.e. ~38 GB/s per core.
    page_zero_ns: float = 107.0
    #: Writing one PTE (vmap_pages_range), per page. Order of magnitude.
    pte_set_ns: float = 8.0
    #: Clearing one PTE (vunmap_range_noflush), per page. Order of magnitude.
    pte_clear_ns: float = 6.0
    #: Freeing one page to the per-CPU lists (free_unref_page). Seed profile: 13.40 % children x 3264 s
    #: over the 6.60 G pages the run frees, ~66 ns.
    page_free_ns: float = 66.0
    #: Allocating and zeroing one page-table page (__pte_alloc_kernel / __pmd_alloc). Order of magnitude.
    pt_page_ns: float = 300.0
    #: Returning one VA to the free tree (merge_or_add_vmap_area_augment) beyond its descent by
    #: address, which the engine charges as a tree operation (tree_base_ns, and tree_level_ns per
    #: level missed; docs/contention-model.md, merge_batch): coalescing with the neighbours and the
    #: augment walk back up the path just visited. Order of magnitude.
    merge_ns: float = 150.0
    #: One pool list operation under pool_lock (head check, unlink, add). Order of magnitude.
    pool_ns: float = 20.0
    #: The drain's own full TLB flush. Order of magnitude.
    flush_ns: float = 500.0
    #: Sending one IPI of the flush (per target CPU, on the sender). Order of magnitude.
    ipi_ns: float = 50.0
    #: Taking the flush IPI on every other CPU (interrupt entry, flush, exit), stolen from what runs.
    #: Order of magnitude.
    ipi_irq_ns: float = 1500.0
    #: A context switch (__schedule, switch_mm-less kernel threads). Order of magnitude.
    ctx_ns: float = 1500.0
    #: Moving one VA off a node's purge list (purge_vmap_node, 6.9): unlinking it, subtracting its
    #: pages from the global lazy counter and, for the pooled ones, linking it at a pool head; the
    #: lines touched were last written by the CPU that freed the VA. Seed profile: purge_vmap_node
    #: 4.73 % self x 3264 s over the ~264 M VAs a loops=1,000,000 run purges = ~580 ns per VA.
    #: Outside any lock; pool_ns is the part under pool_lock.
    purge_va_ns: float = 580.0
    #: __vmalloc_node_range's own work per call (setting up the area, the global nr_vmalloc_pages
    #: counter), outside any lock. Seed profile: 2.64 % self x 3264 s over the 264.3 M vmallocs of
    #: a loops=1,000,000 run (:data:`SEED_RUN_PAIRS`), ~326 ns. (6.7's profile: 0.28 % of 651 s x 64
    #: CPUs over the same calls, ~441 ns.)
    vmalloc_ns: float = 326.0
    #: vfree's own work per call (its loop over the area's pages, the global nr_vmalloc_pages
    #: counter), outside any lock. Seed profile: vfree.part.0 4.46 % self x 3264 s over 264.3 M
    #: vfrees, ~551 ns. (6.7's profile: 0.25 % of 41,664 s, ~394 ns.)
    vfree_ns: float = 551.0
    #: free_vmap_area_noflush's own work per freed VA, outside the locks: the atomic add to the global
    #: lazily-freed page count (vmap_lazy_nr), a line every freeing CPU writes. Seed profile: 2.65 %
    #: self x 3264 s over 264.3 M frees, ~327 ns. (6.7 inlines its purge-tree insert here.)
    lazy_add_ns: float = 327.0

    def scaled(self, factor: float, **measured: float) -> CostModel:
        """Every cost times ``factor``, but those named in ``measured`` (ns) as given: a slower machine
        whose few measured costs do not scale with the rest (an emulated guest: docs/calibration.md,
        seventh pass)."""
        unknown = sorted(set(measured) - set(COST_NAMES))
        if unknown:
            raise ValueError(f"unknown costs {unknown}; known: {', '.join(COST_NAMES)}")
        return CostModel(**{name: measured.get(name, factor * getattr(self, name)) for name in COST_NAMES})

    def as_array(self) -> np.ndarray:
        """The constants in :data:`COST_NAMES` order, float64 (the engine's view)."""
        values = [float(getattr(self, name)) for name in COST_NAMES]
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"every cost must be a finite non-negative number of ns: {asdict(self)}")
        return np.asarray(values, dtype=np.float64)


COST_NAMES: tuple[str, ...] = tuple(f.name for f in fields(CostModel))
