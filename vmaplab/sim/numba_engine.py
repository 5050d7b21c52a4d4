"""The numba engine of the allocator model (docs/allocator-model.md): state in arrays, one jitted call per method.

:class:`NumbaEngine` owns the arrays of :mod:`vmaplab.sim._kernels`, grows them when a kernel reports
that it needs more room (nothing has changed when it does), and turns the kernels' error statuses
into exceptions. Positions are int64 page offsets from VMALLOC_START, sizes are pages.
"""

from __future__ import annotations

import numpy as np

from vmaplab.errors import SimulationError
from vmaplab.sim import _kernels as K
from vmaplab.sim.params import PAGE_SHIFT, POOL_CLASSES, AllocatorConfig

__all__ = ["NumbaEngine"]

# Statistic name -> counter index, in the order of the spec's list.
_COUNTER_STATS = {
    "busy_pages": K.BUSY_PAGES,
    "lazy_pages": K.LAZY_PAGES,
    "pooled_pages": K.POOLED_PAGES,
    "free_pages": K.FREE_PAGES,
    "busy_areas": K.BUSY_AREAS,
    "lazy_areas": K.LAZY_AREAS,
    "pooled_areas": K.POOLED_AREAS,
    "free_blocks": K.FREE_BLOCKS,
    "va_high_water": K.HIGH_WATER,
    "pte_pages": K.PTE_PAGES,
    "pmd_pages": K.PMD_PAGES,
    "pool_hits": K.POOL_HITS,
    "pool_misses": K.POOL_MISSES,
    "pool_rotations": K.POOL_ROTATIONS,
    "purges": K.PURGES,
    "drains": K.DRAINS,
    "tlb_flushes": K.TLB_FLUSHES,
    "purge_helpers": K.PURGE_HELPERS,
    "decayed": K.DECAYED,
    "allocs": K.ALLOCS,
    "frees": K.FREES,
    "alloc_failures": K.ALLOC_FAILURES,
    "fit_full": K.FIT_FULL,
    "fit_left": K.FIT_LEFT,
    "fit_right": K.FIT_RIGHT,
    "fit_middle": K.FIT_MIDDLE,
    "drain_pending": K.DRAIN_PENDING,
}

_TREE_ERRORS = {
    1: "free tree links (a child index, a node's level, the leaf chain, or a cycle)",
    2: "free blocks coalesced (two blocks out of order, touching, or empty)",
    3: "free tree maxima (an inner entry's smallest start or largest block length)",
    4: "free tree fill (a node with too few or too many entries)",
    5: "counters == recounts (free_blocks differs from the blocks in the tree)",
}


def _aligned(n: int, cols: int) -> np.ndarray:
    """An uninitialised (n, cols) int64 array whose rows start on 64-byte boundaries."""
    buf = np.empty(n * cols + 8, np.int64)
    skip = (-buf.ctypes.data % 64) // 8
    return buf[skip : skip + n * cols].reshape(n, cols)


def _rows(n: int, cols: int, fill: int) -> np.ndarray:
    """An (n, cols) int64 array filled with ``fill`` whose rows start on 64-byte boundaries."""
    out = _aligned(n, cols)
    out.fill(fill)
    return out


def _grown(old: np.ndarray, n: int, fill: int) -> np.ndarray:
    """``old`` with rows up to ``n``, the new rows filled with ``fill`` (the old rows are not filled first)."""
    new = _aligned(n, old.shape[1]) if old.dtype == np.int64 else np.empty((n, old.shape[1]), old.dtype)
    new[: old.shape[0]] = old
    new[old.shape[0] :] = fill
    return new


class NumbaEngine:
    """The allocator model on numpy arrays with numba kernels; same interface as ``ReferenceEngine``.

    Parameters
    ----------
    config : AllocatorConfig
        The resolved configuration (design, node count, knobs, window).

    Notes
    -----
    Free space is a B+-tree of free blocks keyed by start (fanout 32, leaves linked in address
    order), each inner entry holding its child's smallest start and largest block length, so the
    lowest block of at least L pages is found in one descent: every operation is O(log n) in the
    number of free blocks, with about log32(n) dependent cache misses where a binary tree has
    2 ln(n). Pools and lazy lists are linked lists over
    VA slots; a purge sorts what it returns (radix sort) and gives adjacent ranges back as one.
    ``run`` executes the whole stream in one jitted call (another only when an array has to grow,
    which doubles it), finds the VA a free row names by its row, and prefetches the rows of the
    frees a few rows ahead. Single ``free`` calls find busy VAs by start in a hash table, rebuilt
    after a ``run``.
    """

    def __init__(self, config: AllocatorConfig):
        self.config = config
        base = config.base_page
        top_first = base >> K.TOP_SHIFT
        top_last = (base + config.space_pages - 1) >> K.TOP_SHIFT
        P = np.zeros(K.N_PARAMS, np.int64)
        P[K.P_NODES_DESIGN] = 1 if config.design == "nodes" else 0
        P[K.P_NR_NODES] = config.nr_nodes
        P[K.P_LAZY_MAX] = config.lazy_max_pages
        P[K.P_ZONE] = config.zone_pages
        P[K.P_BASE] = base
        P[K.P_SPACE] = config.space_pages
        P[K.P_POOL_CAP] = config.pool_cap
        P[K.P_KEEP_SMALL] = 1 if config.small_pool_decay == "keep" else 0
        P[K.P_AUTO_DRAIN] = 1 if config.auto_drain else 0
        P[K.P_TOP_BASE] = top_first
        P[K.P_CPUS] = config.cpus
        self._P = P
        self._decay = float(config.decay)
        self._C = np.zeros(K.N_COUNTERS, np.int64)
        self._S = _rows(1024, K.SLOT_COLUMNS, 0)
        self._T = _rows(K.tree_rows(1024), K.TREE_COLUMNS, 0)
        self._W = np.zeros((7, 1024 + K.RADIX), np.int64)
        pools = np.zeros((config.nr_nodes * POOL_CLASSES, 3), np.int64)
        pools[:, K.PL_HEAD] = K.NIL
        pools[:, K.PL_TAIL] = K.NIL
        self._PL = pools
        lazy = np.zeros((config.nr_nodes, 2), np.int64)
        lazy[:, K.LZ_HEAD] = K.NIL
        self._LZ = lazy
        self._H = np.full((2048, 2), K.NIL, np.int64)
        self._TOP = np.full(top_last - top_first + 1, K.NIL, np.int64)
        self._MID = np.full((4, 512), K.NIL, np.int64)
        self._LOW = np.zeros((16, 512), np.uint8)
        K.init_state(self._C, self._P, self._T)

    # -- copies ------------------------------------------------------------------------------

    def __getstate__(self) -> dict:
        """Pickle and copy the state without the purge's scratch ``_W`` (7 int64 per slot), which no
        call reads before writing."""
        state = self.__dict__.copy()
        state["_W"] = self._W.shape
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._W = np.zeros(state["_W"], np.int64)

    # -- capacity ---------------------------------------------------------------------------

    def _grow(self, status: int) -> None:
        """Double the array a kernel asked for (nothing else changes)."""
        if status == K.NEED_SLOTS:  # slots, tree nodes and the drain's scratch grow together
            n = 2 * self._S.shape[0]
            self._S = _grown(self._S, n, 0)
            self._T = _grown(self._T, K.tree_rows(n), 0)
            self._W = np.zeros((7, n + K.RADIX), np.int64)
        elif status == K.NEED_HASH:  # a stale table (after run) is rebuilt by the kernel, not rehashed
            table = np.full((2 * self._H.shape[0], 2), K.NIL, np.int64)
            if self._C[K.HASH_VALID]:
                K.rehash(self._H, table)
            self._H = table
        elif status == K.NEED_MID:
            self._MID = _grown(self._MID, 2 * self._MID.shape[0], K.NIL)
        elif status == K.NEED_LOW:
            self._LOW = _grown(self._LOW, 2 * self._LOW.shape[0], 0)
        else:
            raise SimulationError(f"numba engine: unexpected kernel status {status}")

    def _state_args(self):
        return self._C, self._P, self._decay, self._S, self._T, self._PL, self._LZ, self._W

    # -- operations -------------------------------------------------------------------------

    def _check_cpu(self, cpu: int) -> None:
        if not 0 <= cpu < self.config.cpus:
            raise ValueError(f"cpu must be in [0, {self.config.cpus}), not {cpu!r}")

    def alloc(self, pages: int, align: int, cpu: int) -> int:
        """Allocate a VA of ``pages`` caller pages (+1 guard page) aligned to ``align`` bytes.

        Returns the page offset of the VA from VMALLOC_START, or -1 if the allocation failed.
        """
        if pages < 1:
            raise ValueError(f"pages must be >= 1, not {pages!r}")
        if align < 1 or align & (align - 1) or align > 1 << 63:
            raise ValueError(f"align must be a power of two of at most 2**63 bytes, not {align!r}")
        self._check_cpu(cpu)
        npages = min(int(pages), K.MAX_PAGES)
        align_pages = max(int(align), 1 << PAGE_SHIFT) >> PAGE_SHIFT
        while True:
            status, off = K.alloc_one(
                *self._state_args(), self._H, self._TOP, self._MID, self._LOW, npages, align_pages, cpu
            )
            if status == K.OK:
                return int(off)
            self._grow(status)

    def reserve(self, offset: int, size: int, cpu: int) -> None:
        """Make pages ``[offset, offset + size)`` a busy VA (``size`` includes the guard page),
        carved out of free space and tagged with the node of ``cpu`` (``cpu < 0``: untagged).

        Raises SimulationError, changing nothing, unless every page of the range is free and it
        ends at or below the last allocatable page. Counts in ``allocs`` (no fit class).
        """
        space = self.config.space_pages
        status = K.ERR_NOT_FREE
        if 0 <= offset < space and 1 <= size < space:
            while True:
                status = K.reserve_one(
                    self._C, self._S, self._T, self._H, self._TOP, self._MID, self._LOW, self._P, offset, size, cpu
                )
                if status not in (K.NEED_SLOTS, K.NEED_HASH, K.NEED_MID, K.NEED_LOW):
                    break
                self._grow(status)
        if status == K.ERR_NOT_FREE:
            raise SimulationError(
                f"reserve of pages [{offset}, {offset + size}): not a free range of the window "
                f"(last allocatable page {space - 2})"
            )

    def free(self, offset: int, cpu: int) -> None:
        """Lazily free the busy VA that starts at page ``offset``; SimulationError if none does."""
        self._check_cpu(cpu)
        while True:
            status = K.free_one(*self._state_args(), self._H, offset)
            if status == K.OK:
                return
            if status == K.ERR_NOT_BUSY:
                raise SimulationError(f"free of page offset {offset}: no busy VA starts there")
            self._grow(status)

    def drain(self) -> None:
        """Run the drain work now (decay, purge); clears ``drain_pending``."""
        K.drain(*self._state_args())

    def shrink(self) -> int:
        """The shrinker's scan: full pool decay of every node; returns the VAs released."""
        return int(K.shrink(*self._state_args()[:6], self._W))

    def run(self, ops: np.ndarray) -> np.ndarray:
        """Execute rows ``(op, a, b, cpu)`` (see docs/allocator-model.md) in one jitted call.

        Returns int64 page offsets, -1 where a row placed nothing. A second free of a row, a free
        that does not name an earlier alloc row and a malformed row raise SimulationError; the rows
        before it have run.
        """
        arr = np.asarray(ops)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"ops must have shape (n, 4), not {arr.shape}")
        if arr.dtype == np.uint64:
            arr = arr.view(np.int64)  # an alignment of 2**63 bytes keeps its bit pattern
        elif not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ops must be an integer array, not {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.int64)
        n = arr.shape[0]
        out = np.full(n, K.NIL, np.int64)
        row_slot = np.full(n, K.ROW_NOT_ALLOC, np.int64)
        row = 0
        while True:
            status, row = K.run_ops(
                *self._state_args(), self._H, self._TOP, self._MID, self._LOW, arr, out, row_slot, row
            )
            if status == K.OK:
                return out
            if status == K.ERR_DOUBLE_FREE:
                raise SimulationError(f"row {row}: double free of the area of row {arr[row, 1]}")
            if status == K.ERR_BAD_REF:
                raise SimulationError(f"row {row}: a free must name an earlier alloc row, not {arr[row, 1]}")
            if status == K.ERR_BAD_OP:
                raise SimulationError(f"row {row}: unknown operation {arr[row, 0]} (expected 0, 1, 2 or 3)")
            if status == K.ERR_BAD_ROW:
                raise SimulationError(
                    f"row {row}: {arr[row].tolist()} is not a valid (op, a, b, cpu) row (an alloc "
                    f"needs pages >= 1 and a power-of-two alignment; cpu in [0, {self.config.cpus}))"
                )
            self._grow(status)

    # -- read-outs --------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """The statistics of docs/allocator-model.md (pages, areas, counters; va_high_water in bytes)."""
        out = {name: int(self._C[i]) for name, i in _COUNTER_STATS.items()}
        out["va_high_water"] <<= PAGE_SHIFT
        out["lazy_max_pages"] = self.config.lazy_max_pages
        out["nr_nodes"] = self.config.nr_nodes
        out["space_pages"] = self.config.space_pages
        return out

    def _live(self) -> np.ndarray:
        """Slots in use (busy, lazy or pooled): indices into S."""
        hw = self._C[K.SLOT_HW]
        return np.flatnonzero(self._S[:hw, K.S_STATE] != K.FREE_SLOT)

    def _pool_members(self):
        PL = self._PL
        return K.list_members(self._S, np.ascontiguousarray(PL[:, K.PL_HEAD]), np.ascontiguousarray(PL[:, K.PL_LEN]))

    def _lazy_members(self):
        LZ = self._LZ
        return K.list_members(self._S, np.ascontiguousarray(LZ[:, K.LZ_HEAD]), np.ascontiguousarray(LZ[:, K.LZ_COUNT]))

    def page_table_regions(self) -> tuple[np.ndarray, np.ndarray]:
        """Absolute indices of the touched 2 MiB (PTE page) and 1 GiB (PMD page) regions, sorted."""
        used = np.flatnonzero(self._TOP != K.NIL)
        mid = self._MID[self._TOP[used]]
        i, gi = np.nonzero(mid != K.NIL)
        pmd = ((self._P[K.P_TOP_BASE] + used[i]) << (K.TOP_SHIFT - K.PMD_SHIFT)) + gi
        low = self._LOW[mid[i, gi]]
        j, ri = np.nonzero(low)
        pte = (pmd[j] << (K.PMD_SHIFT - K.PTE_SHIFT)) + ri
        return np.sort(pte), np.sort(pmd)

    def state(self) -> dict:
        """Snapshot for tests and plots (see the engine interface): busy, lazy, pools, free, regions."""
        S = self._S
        live = self._live()
        busy = live[S[live, K.S_STATE] == K.BUSY]
        busy = busy[np.argsort(S[busy, K.S_START])]
        lazy: list[list[tuple[int, int]]] = [[] for _ in range(self.config.nr_nodes)]
        owner, slots, _ = self._lazy_members()
        for node, s in zip(owner.tolist(), slots.tolist()):
            lazy[node].append((int(S[s, K.S_START]), int(S[s, K.S_SIZE])))
        for entries in lazy:
            entries.sort()
        pools: dict[tuple[int, int], list[int]] = {}
        owner, slots, _ = self._pool_members()
        for pi, s in zip(owner.tolist(), slots.tolist()):
            pools.setdefault(divmod(pi, POOL_CLASSES), []).append(int(S[s, K.S_START]))
        starts, ends = K.free_blocks(self._C, self._T)
        pte, pmd = self.page_table_regions()
        return {
            "busy": (S[busy, K.S_START].copy(), S[busy, K.S_SIZE].copy()),
            "lazy": lazy,
            "pools": pools,
            "free": (starts, ends),
            "pte_regions": pte,
            "pmd_regions": pmd,
        }

    def check_invariants(self) -> None:
        """Recount everything; raise SimulationError naming the first broken invariant."""
        C, S, P = self._C, self._S, self._P
        cfg = self.config

        def broken(name: str, detail: str) -> SimulationError:
            return SimulationError(f"numba engine: invariant '{name}' broken: {detail}")

        code = K.check_tree(C, self._T)
        if code:
            raise broken(_TREE_ERRORS[code].split(" (")[0], _TREE_ERRORS[code])
        fstart, fend = K.free_blocks(C, self._T)
        live = self._live()
        starts = np.concatenate([S[live, K.S_START], fstart])
        ends = np.concatenate([S[live, K.S_START] + S[live, K.S_SIZE], fend])
        order = np.argsort(starts, kind="stable")
        starts, ends = starts[order], ends[order]
        if len(starts) and (starts[0] < 0 or ends[-1] > cfg.space_pages):
            raise broken("disjoint", f"a range lies outside the window [0, {cfg.space_pages})")
        live_ends = S[live, K.S_START] + S[live, K.S_SIZE]
        if live_ends.size and live_ends.max() > cfg.space_pages - 1:
            raise broken("last page never allocated", f"a VA ends at {live_ends.max()} of {cfg.space_pages} pages")
        if live_ends.size and live_ends.max() > C[K.HIGH_WATER]:
            raise broken("counters == recounts", f"a VA ends at {live_ends.max()}, above va_high_water")
        overlap = np.flatnonzero(starts[1:] < ends[:-1])
        if overlap.size:
            k = overlap[0]
            raise broken("disjoint", f"ranges at offsets {starts[k]} and {starts[k + 1]} overlap")
        if int((ends - starts).sum()) != cfg.space_pages:
            raise broken("busy+lazy+pooled+free == space_pages", f"{int((ends - starts).sum())} != {cfg.space_pages}")
        touching = np.flatnonzero(fstart[1:] <= fend[:-1])
        if touching.size:
            raise broken("free blocks coalesced", f"free blocks at {fstart[touching[0]]} and {fstart[touching[0] + 1]} touch")
        align = S[live, K.S_ALIGN]
        bad = np.flatnonzero(((P[K.P_BASE] + S[live, K.S_START]) & (align - 1)) != 0)
        if bad.size:
            s = live[bad[0]]
            raise broken("every VA aligned as requested", f"VA at {S[s, K.S_START]} is not aligned to {S[s, K.S_ALIGN]} pages")
        state = S[live, K.S_STATE]
        pool_owner, pool_slots, ok = self._pool_members()
        if not ok:
            raise broken("counters == recounts", "a pool list does not have its recorded length")
        if np.any(S[pool_slots, K.S_SIZE] != pool_owner % POOL_CLASSES + 1):
            raise broken("pool VAs have their class size", "a pooled VA's size differs from its pool's class")
        last = np.r_[pool_owner[1:] != pool_owner[:-1], True] if len(pool_owner) else np.zeros(0, bool)
        if np.any(self._PL[pool_owner[last], K.PL_TAIL] != pool_slots[last]):
            raise broken("pool lists", "a pool's tail is not its last VA")
        lazy_owner, lazy_slots, ok = self._lazy_members()
        if not ok:
            raise broken("counters == recounts", "a lazy list does not have its recorded length")
        tag = S[lazy_slots, K.S_NODE]
        home = np.where(tag != K.NIL, tag, ((P[K.P_BASE] + S[lazy_slots, K.S_START]) // cfg.zone_pages) % cfg.nr_nodes)
        if np.any(home != lazy_owner):
            raise broken("lazy lists", "a lazy VA sits on a node other than its tag (or address) node")
        for name, slots, want, pages_idx, areas_idx in (
            ("pooled", pool_slots, K.POOLED, K.POOLED_PAGES, K.POOLED_AREAS),
            ("lazy", lazy_slots, K.LAZY, K.LAZY_PAGES, K.LAZY_AREAS),
        ):
            in_state = live[state == want]
            if len(np.unique(slots)) != len(slots) or not np.array_equal(np.sort(slots), in_state):
                raise broken("counters == recounts", f"the {name} lists and the {name} VAs differ")
            if C[pages_idx] != S[slots, K.S_SIZE].sum() or C[areas_idx] != len(slots):
                raise broken("counters == recounts", f"{name}_pages/{name}_areas differ from a recount")
        busy = live[state == K.BUSY]
        if C[K.BUSY_PAGES] != S[busy, K.S_SIZE].sum() or C[K.BUSY_AREAS] != len(busy):
            raise broken("counters == recounts", "busy_pages/busy_areas differ from a recount")
        if C[K.ALLOCS] - C[K.FREES] != len(busy):
            raise broken("counters == recounts", f"allocs - frees != busy_areas ({len(busy)})")
        if C[K.HASH_VALID]:
            if not np.array_equal(K.hash_lookup(self._H, np.ascontiguousarray(S[busy, K.S_START])), busy):
                raise broken("busy lookup", "a busy VA is not found by its start")
            if int(np.count_nonzero(self._H[:, 0] != K.NIL)) != len(busy):
                raise broken("busy lookup", "the lookup table holds VAs that are not busy")
        if C[K.FREE_PAGES] != int((fend - fstart).sum()) or C[K.FREE_BLOCKS] != len(fstart):
            raise broken("counters == recounts", "free_pages/free_blocks differ from a recount")
        pte, pmd = self.page_table_regions()
        if C[K.PTE_PAGES] != len(pte) or C[K.PMD_PAGES] != len(pmd):
            raise broken("counters == recounts", "pte_pages/pmd_pages differ from the page-table recount")
