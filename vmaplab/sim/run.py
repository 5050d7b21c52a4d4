"""``simulate()``: test_vmalloc's workers on a simulated machine, and the :class:`Run` it returns.

The model is docs/contention-model.md; the engine is :mod:`vmaplab.sim.contention_engine`. A run builds the
engine's arrays around the machine's allocator state, drives the jitted engine (growing an array
whenever it asks), and turns the counters into plain attributes and documented DataFrames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from vmaplab.errors import SimulationError
from vmaplab.sim import _kernels as K
from vmaplab.sim import contention_engine as E
from vmaplab.sim.costs import balance_interval_ns, slice_ns
from vmaplab.sim.machine import Machine
from vmaplab.sim.numba_engine import _grown
from vmaplab.sim.params import PAGE_SIZE, check_int, lazy_max_pages
from vmaplab.sim.workloads import LONG_BUSY_AREAS, TESTS, ModuleParams, allocations_per_repetition, parse_test_mask

__all__ = ["simulate", "Run", "worker_test_order", "random_draws", "per_symbol", "PROFILE_COLUMNS", "SUMMARY_COLUMNS"]

#: Columns of ``Run.profile`` (the schema of vmaplab.read_perf_report).
PROFILE_COLUMNS = ("block", "event", "children_pct", "self_pct", "samples", "command", "shared_object", "symbol",
                   "symbol_kind")  # fmt: skip
#: Columns of ``Run.summaries``.
SUMMARY_COLUMNS = ("worker", "test", "passed", "failed", "xfailed", "repeat", "loops", "avg_usec")
# lib/test_vmalloc.c test_case_array of 6.7/6.9 has 11 entries (vm_map_ram_test last); the shuffle
# runs over all of them and the mask then picks.
N_TEST_CASES = 11
# Engine events between two updates of simulate()'s progress bar (about half a second of CPU).
PROGRESS_EVENTS = 1 << 21


def worker_test_order(rng: np.random.Generator, mask: int, sequential: bool) -> list[int]:
    """A worker's test order: test_vmalloc's shuffle_array (j drawn below i: Sattolo's variant) of the 11 cases.

    Draws ``rng.integers(0, i)`` for i = 10 ... 1 unless ``sequential``; returns the bits set in
    ``mask`` in the resulting order.
    """
    idx = list(range(N_TEST_CASES))
    if not sequential:
        for i in range(N_TEST_CASES - 1, 0, -1):
            j = int(rng.integers(0, i))
            idx[i], idx[j] = idx[j], idx[i]
    return [i for i in idx if mask >> i & 1]


def random_draws(order: list[int], rng: np.random.Generator, loops: int, repeat: int) -> tuple[np.ndarray, np.ndarray]:
    """The random bytes a worker's random tests use, drawn in execution order as worker_program does.

    Returns (random_size sizes, random_size_align bytes), each ``repeat * loops`` uint8 (empty when
    the test is not run).
    """
    sizes = np.zeros(0, np.uint8)
    aligns = np.zeros(0, np.uint8)
    for bit in order:
        if bit == E.RANDOM_SIZE:
            sizes = np.concatenate([rng.integers(1, 101, size=loops) for _ in range(repeat)]).astype(np.uint8)
        elif bit == E.RANDOM_ALIGN:
            aligns = np.concatenate([rng.integers(0, 256, size=loops) for _ in range(repeat)]).astype(np.uint8)
    return sizes, aligns


@dataclass
class Run:
    """The result of :func:`simulate`.

    Attributes
    ----------
    wall_seconds : float
        Simulated time from the start until the last worker finished.
    pairs_per_second : float
        vmalloc+vfree pairs completed by all workers (every test's kind) per simulated second.
    lock_spin_share : float
        Time spent spinning for spinlocks / busy CPU time of all CPUs (perf's self share of
        native_queued_spin_lock_slowpath).
    lock_spin_by_lock : dict of str to float
        The same share per lock (free_vmap_area_lock, vmap_area_lock, purge_vmap_area_lock,
        busy.lock, lazy.lock, pool_lock); the values sum to ``lock_spin_share``.
    profile : pandas.DataFrame
        Time per kernel function as ``perf report --children`` shows it, in the columns of
        :func:`vmaplab.read_perf_report`: children_pct and self_pct (Float64, % of busy CPU time),
        command (NA), shared_object ("kernel" or "test_vmalloc", as the reader gives perf's
        "[kernel]"), symbol, symbol_kind ("k"); sorted by children_pct. ``attrs["busy_ns"]`` holds
        the busy CPU time, ``attrs["stacks"]`` the folded stacks (frames joined by ";") with their ns.
    pagetable_bytes : int
        Page-table bytes of the vmalloc area populated on the machine so far (all runs), boot-time
        PUD pages excluded.
    pagetable_bytes_by_level : dict of str to int
        The same split into "pte" and "pmd".
    va_high_water : int
        Bytes from VMALLOC_START to the highest end of any VA ever placed on the machine.
    timeline : pandas.DataFrame
        One row every ``sample_ns`` of simulated time and one at the end: time_s (float64), busy_pages,
        lazy_pages, pooled_pages, held_pages (the three summed: VA held outside the free tree),
        lazy_max_pages, free_blocks, va_high_water (bytes), pte_pages,
        pmd_pages, pagetable_bytes, drain_lag_s (time the queued drain has waited, 0 if none is
        queued), drain_running (bool), pooled_areas (pool occupancy), runnable (threads waiting for
        a CPU), spinning (threads spinning on a lock), lazy_areas; int64 unless stated.
    summaries : pandas.DataFrame
        test_vmalloc's Summary lines: worker, test (string), passed, failed, xfailed, repeat, loops,
        avg_usec (int64). ``failed`` counts failed repetitions as 6.x prints them; ``xfailed`` those
        of them in a test the current test_vmalloc marks as expected to fail.
    workers : pandas.DataFrame
        Per worker: worker, cpu (the last), migrations, seconds (time until it finished).
    machine : Machine
        The machine, to continue on with ``simulate(..., machine=run.machine)``.
    params : dict
        Every parameter of the run, the machine's settings included.
    stats : dict
        The allocator's counters for this run (deltas) and the engine's: events, context_switches,
        migrations, preemptions, drain_lag_max_s, drain_lag_mean_s, drains_started, helpers_run,
        ipis, mutex_sleeps, merge_units, pairs, busy_cpu_seconds and spin_cpu_seconds (the CPU time
        of all CPUs busy, and spinning on a lock, seconds), vmalloc_pages (the pages the areas
        still allocated at the run's end map, guard pages excluded), pages_allocated and pages_freed
        (data pages vmalloc allocated and vfree freed in this run, guard pages and page tables
        excluded), and pages_allocated_total and pages_freed_total (the same over every run on the
        machine so far, as /proc/vmstat counts since boot).
    trace : numpy.ndarray or None
        The operations issued, when ``simulate(..., trace=True)`` (see there).
    pool_by_test : pandas.DataFrame
        Pool look-ups of the nodes design by test, all workers: test (string), hits, misses,
        rotations (int64; a rotation is also a miss) and hit_rate (float64, NaN when the test never
        looked at a pool). Misses include the unlocked emptiness check.
    space_map : pandas.DataFrame or None
        The machine's vmalloc window at the end of the run, in 1 GiB bins
        (:meth:`~vmaplab.sim.machine.Machine.space_map`).
    """

    wall_seconds: float
    pairs_per_second: float
    lock_spin_share: float
    lock_spin_by_lock: dict
    profile: pd.DataFrame
    pagetable_bytes: int
    pagetable_bytes_by_level: dict
    va_high_water: int
    timeline: pd.DataFrame
    summaries: pd.DataFrame
    workers: pd.DataFrame
    machine: Machine
    params: dict
    stats: dict
    trace: np.ndarray | None = field(default=None, repr=False)
    pool_by_test: pd.DataFrame | None = field(default=None, repr=False)
    space_map: pd.DataFrame | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        p = self.params
        return (
            f"Run(design={p['design']!r}, threads={p['threads']}, cpus={p['cpus']}, tests={p['tests']}, "
            f"loops={p['loops']}, wall_seconds={self.wall_seconds:.4g}, pairs_per_second={self.pairs_per_second:.4g}, "
            f"lock_spin_share={self.lock_spin_share:.3f}, pagetable_bytes={self.pagetable_bytes})"
        )

    def write_bundle(self, folder, **options):
        """Write what a real machine would show after this run into a bundle folder; see
        :func:`vmaplab.sim.emit.write_bundle` for the options. Returns the bundle's Manifest."""
        from .emit import write_bundle

        return write_bundle(self, folder, **options)


def _machine_for(design: str, cpus: int | None, machine: Machine | None, knobs: dict) -> Machine:
    if machine is None:
        return Machine(design, 64 if cpus is None else cpus, **knobs)
    if not isinstance(machine, Machine):
        raise TypeError(f"machine must be a Machine, not {type(machine).__name__}")
    settings = machine.settings()
    if cpus is not None and cpus != machine.cpus:
        raise ValueError(f"cpus={cpus} conflicts with the machine's {machine.cpus} CPUs")
    if design != machine.design:
        raise ValueError(f"design={design!r} conflicts with the machine's design {machine.design!r}")
    for name, value in knobs.items():
        if name not in settings:
            raise TypeError(f"unknown knob {name!r}")
        if settings[name] != value:
            raise ValueError(f"{name}={value!r} conflicts with the machine's {name}={settings[name]!r}")
    return machine


class _Arrays:
    """The engine's arrays for one run around a machine's allocator state; grows them on request."""

    def __init__(self, m: Machine, mp: ModuleParams, seed: int, sample_ns: int, trace: bool):
        alloc = m.allocator
        cfg = m.config
        W = mp.nr_threads
        nr = cfg.nr_nodes
        self.m = m
        mask = mp.run_test_mask
        streams = np.random.SeedSequence(seed).spawn(W)
        orders, sizes, aligns = [], [], []
        for w in range(W):
            rng = np.random.default_rng(streams[w])
            order = worker_test_order(rng, mask, mp.sequential_test_order)
            s, a = random_draws(order, rng, mp.test_loop_count, mp.test_repeat_count)
            orders.append(order)
            sizes.append(s)
            aligns.append(a)
        nsel = len(orders[0])
        junk = lazy_max_pages(m.cpus)  # full_fit sizes its junk from the online CPUs, not the knob
        cap = 2
        if mask >> E.FULL_FIT & 1:
            cap = max(cap, 2 * junk + 3)
        if mask >> E.LONG_BUSY & 1:
            cap = max(cap, LONG_BUSY_AREAS + 3)
        draws = mp.test_repeat_count * mp.test_loop_count
        EP = np.zeros(E.N_EP, np.int64)
        EP[E.E_WORKERS] = W
        EP[E.E_CPUS] = m.cpus
        EP[E.E_NODES_DESIGN] = 1 if cfg.design == "nodes" else 0
        EP[E.E_NR] = nr
        EP[E.E_BUSY_ONCE] = 1 if m.busy_lock_once else 0
        EP[E.E_HIGH_PRIO] = 1 if m.drain_priority == "high" else 0
        EP[E.E_INIT_ON_ALLOC] = 1 if m.init_on_alloc else 0
        EP[E.E_LOOPS] = mp.test_loop_count
        EP[E.E_REPEAT] = mp.test_repeat_count
        EP[E.E_NR_PAGES] = max(mp.nr_pages, 1)
        EP[E.E_JUNK] = junk
        EP[E.E_NSEL] = nsel
        EP[E.E_SLICE] = slice_ns(m.cpus)
        EP[E.E_SAMPLE] = sample_ns
        EP[E.E_TRACE] = 1 if trace else 0
        EP[E.E_STALL_EVERY] = m.flush_stall_every
        EP[E.E_STALL_NS] = m.flush_stall_ns
        EP[E.E_BALANCE] = balance_interval_ns(m.cpus)
        self.EP = EP
        self.COST = m.costs.as_array()
        nth = W + 1 + nr
        TH = E.empty_threads(nth)
        TH[:W, E.T_PHASE] = -1
        TH[:W, E.T_KIND] = E.KIND_WORKER
        TH[:W, E.T_CTX] = [o[0] for o in orders]
        TH[:W, E.T_CPU] = np.arange(W) % m.cpus
        TH[W, E.T_KIND] = E.KIND_DRAIN
        TH[W, E.T_CTX] = E.CTX_DRAIN
        TH[W + 1 :, E.T_KIND] = E.KIND_HELPER
        TH[W + 1 :, E.T_CTX] = E.CTX_HELPER
        TH[W:, E.T_STATE] = E.ST_SLEEP
        CPU = E.empty_cpus(m.cpus)
        HP = np.zeros((nth, 3), np.int64)
        POS = np.full(nth, K.NIL, np.int64)
        G = np.zeros(E.N_G, np.int64)
        for g in (E.G_ERR, E.G_KW_WAITING, E.G_MUTEX_HOLDER, E.G_MUTEX_HEAD, E.G_MUTEX_TAIL):
            G[g] = K.NIL
        G[E.G_WORKERS_LEFT] = W
        G[E.G_SLICE] = EP[E.E_SLICE]
        G[E.G_NEXT_BALANCE] = EP[E.E_BALANCE]
        # workers 0 .. cpus-1 start running at time 0 (equal times in seq order form a valid heap);
        # the others wait in the run queue of CPU i % cpus
        for w in range(W):
            c = w % m.cpus
            if w < m.cpus:
                CPU[c, E.CPU_CUR] = w
                HP[w] = (0, w, w)
                POS[w] = w
                TH[w, E.T_STATE] = E.ST_RUN
                TH[w, E.T_SLICE_END] = EP[E.E_SLICE]
            else:
                TH[w, E.T_STATE] = E.ST_RUNNABLE
                if CPU[c, E.CPU_RQTAIL] == K.NIL:
                    CPU[c, E.CPU_RQHEAD] = w
                else:
                    TH[CPU[c, E.CPU_RQTAIL], E.T_RQNEXT] = w
                CPU[c, E.CPU_RQTAIL] = w
                CPU[c, E.CPU_RQLEN] += 1
                G[E.G_RUNNABLE] += 1
        G[E.G_HN] = min(W, m.cpus)
        G[E.G_SEQ] = G[E.G_HN]
        nlocks = 3 + 3 * nr
        LK = np.zeros((nlocks, E.N_L), np.int64)
        for col in (E.L_HOLDER, E.L_HEAD, E.L_TAIL, E.L_LASTCPU):
            LK[:, col] = K.NIL
        LK[0, E.L_KIND] = E.LK_FREE
        LK[1, E.L_KIND] = E.LK_VAL
        LK[2, E.L_KIND] = E.LK_PVAL
        LK[3 : 3 + nr, E.L_KIND] = E.LK_BUSY
        LK[3 + nr : 3 + 2 * nr, E.L_KIND] = E.LK_LAZY
        LK[3 + 2 * nr :, E.L_KIND] = E.LK_POOL
        self.TH, self.CPU, self.LK, self.HP, self.POS, self.G = TH, CPU, LK, HP, POS, G
        self.ACC = np.zeros((E.N_CTX, E.N_SITES), np.int64)
        self.SPINK = np.zeros(E.N_LOCK_KINDS, np.int64)
        self.WH = np.full((W, cap), K.NIL, np.int64)
        self.WHR = np.full((W, cap), K.NIL, np.int64) if trace else np.zeros((1, 1), np.int64)
        self.ORD = np.asarray(orders, np.int64).reshape(W, nsel)
        self.RSZ = np.stack(sizes) if len(sizes[0]) == draws and draws else np.zeros((1, 1), np.uint8)
        self.RSA = np.stack(aligns) if len(aligns[0]) == draws and draws else np.zeros((1, 1), np.uint8)
        self.SUMM = np.zeros((W, len(TESTS), E.N_SU), np.int64)
        self.PQ = np.full(max(1024, 2 * alloc.stats()["lazy_areas"] + 2), K.NIL, np.int64)
        self.NQ = np.zeros((nr, 2), np.int64)
        self.MARKED = np.zeros(nr, np.int64)
        self.TR = np.zeros((4096 if trace else 1, 7), np.int64)
        self.TL = np.zeros((1024, E.N_TL), np.int64)
        self.orders = orders

    def _attempts(self) -> int:
        """Allocations the machine's allocator has been asked for so far, failed ones included."""
        C = self.m.allocator._C
        return int(C[K.ALLOCS] + C[K.ALLOC_FAILURES])

    def run(self, bar: tqdm | None = None) -> None:
        """Drive the engine to the end, growing whatever array it asks for; ``bar`` counts allocations."""
        a = self.m.allocator
        first = self._attempts()
        self.EP[E.E_PAUSE] = PROGRESS_EVENTS if bar is not None else 0
        self.G[E.G_PAUSE_AT] = self.G[E.G_EVENTS] + self.EP[E.E_PAUSE]
        while True:
            status = E.run_engine(
                self.EP, self.COST, a._C, a._P, a._decay, a._S, a._T, a._PL, a._LZ, a._H, a._TOP, a._MID, a._LOW,
                self.TH, self.CPU, self.LK, self.HP, self.POS, self.G, self.ACC, self.SPINK, self.WH, self.WHR,
                self.ORD, self.RSZ, self.RSA, self.SUMM, self.PQ, self.NQ, self.MARKED, self.m.busy_per_node,
                self.TR, self.TL,
            )  # fmt: skip
            if status == E.PAUSE:
                bar.update(self._attempts() - first - bar.n)
                continue
            if status == E.DONE:
                if bar is not None:  # align_shift_alloc_test stops at its first failure: the total was a bound
                    bar.total = self._attempts() - first
                    bar.update(bar.total - bar.n)
                return
            if status in (E.NEED_SLOTS, E.NEED_HASH, E.NEED_MID, E.NEED_LOW):
                a._grow(status)
            elif status == E.NEED_PQ:
                grown = np.full(2 * self.PQ.shape[0] + a.stats()["lazy_areas"], K.NIL, np.int64)
                grown[: self.PQ.shape[0]] = self.PQ  # a purge in progress keeps its detached lists
                self.PQ = grown
            elif status == E.NEED_TL:
                self.TL = _grown(self.TL, 2 * self.TL.shape[0], 0)
            elif status == E.NEED_TRACE:
                self.TR = _grown(self.TR, 2 * self.TR.shape[0], 0)
            elif status == E.ERR_FAIL:
                err = int(self.G[E.G_ERR])
                if err <= -1000:
                    raise SimulationError(f"engine reached an unknown program counter {-1000 - err}")
                test = TESTS[int(self.TH[err, E.T_TEST])].name
                raise SimulationError(f"worker {err}: an allocation failed in {test}, which cannot fail in the model")
            elif status == E.ERR_DEADLOCK:
                raise SimulationError(f"no event left while {int(self.G[E.G_WORKERS_LEFT])} workers are not done")
            else:
                raise SimulationError(f"engine returned unknown status {status}")


# --- the per-function profile ------------------------------------------------------------------

_LOCK = ["_raw_spin_lock"]
_SPIN = ["_raw_spin_lock", "native_queued_spin_lock_slowpath"]


def _site_frames(design: str, ctx: int) -> dict[int, list[str]]:
    """Frames below the context's own frames for every charge site (kernel function names)."""
    nodes = design == "nodes"
    if ctx <= E.ALIGN_SHIFT:
        entry = ["__vmalloc_node" if ctx in E.GFP_ZERO_TESTS else "vmalloc", "__vmalloc_node_range"]
        purge = entry + ["__get_vm_area_node", "alloc_vmap_area",
                         "reclaim_and_purge_vmap_areas" if nodes else "purge_vmap_area_lazy"]  # fmt: skip
        node_purge = purge + ["__purge_vmap_area_lazy", "purge_vmap_node"]
    elif ctx == E.CTX_DRAIN:
        entry = []
        purge = []
        node_purge = ["__purge_vmap_area_lazy", "purge_vmap_node"]
    else:  # a purge helper: process_one_work -> purge_vmap_node
        entry = []
        purge = []
        node_purge = []
    gvan = entry + ["__get_vm_area_node"]
    ava = gvan + ["alloc_vmap_area"]
    area = entry + ["__vmalloc_area_node"]
    vf = ["vfree.part.0", "remove_vm_area"]
    fua = vf + ["free_unmap_vmap_area"]
    pl = purge + ["__purge_vmap_area_lazy"]
    out: dict[int, list[str]] = {}

    def section(base: int, where: list[str], hold: list[str]) -> None:
        out[base] = where + _LOCK
        out[base + 1] = where + _SPIN
        out[base + 2] = where + hold

    out[E.S_SLAB_VM] = gvan + ["__kmalloc_node"]
    out[E.S_SLAB_VA] = ava + ["kmem_cache_alloc_node"]
    section(E.S_POOL, ava + ["node_alloc"], [])
    section(E.S_FREE, ava, [])
    section(E.S_BUSY, ava, ["insert_vmap_area"])
    section(E.S_SETUP, gvan, [])
    out[E.S_PAGE_ALLOC] = area + ["vm_area_alloc_pages", "__alloc_pages_bulk"]
    out[E.S_PAGE_ZERO] = out[E.S_PAGE_ALLOC] + ["prep_new_page", "clear_page_rep"]
    out[E.S_MAP] = area + ["vmap_pages_range", "vmap_pte_range"]
    out[E.S_PTALLOC] = area + ["vmap_pages_range", "__pte_alloc_kernel"]
    section(E.S_FIND, vf + ["find_unlink_vmap_area"], [])
    out[E.S_UNMAP] = fua + ["vunmap_range_noflush"]
    # 6.9 links a freed VA into its node's lazy tree with insert_vmap_area (a call of its own in the
    # seed's profile); 6.7 merges it into the purge tree with merge_or_add_vmap_area, which is inlined
    section(E.S_LAZY, fua + ["free_vmap_area_noflush"], ["insert_vmap_area"] if nodes else [])
    out[E.S_PAGE_FREE] = ["vfree.part.0", "__free_pages", "free_unref_page"]
    out[E.S_SLAB_FREE] = ["vfree.part.0", "kfree"]
    out[E.S_SCHED] = ["__schedule"]
    out[E.S_MUTEX] = purge + ["mutex_lock"]
    section(E.S_PDETACH, pl, [])
    out[E.S_FLUSH] = pl + ["flush_tlb_kernel_range", "on_each_cpu_cond_mask", "smp_call_function_many_cond"]
    if nodes:
        section(E.S_PMERGE, node_purge + ["reclaim_list_global"], ["merge_or_add_vmap_area_augment"])
    else:
        section(E.S_PMERGE, pl, ["merge_or_add_vmap_area_augment"])
    section(E.S_DECAY, pl + ["decay_va_pool_node"], [])
    section(E.S_DMERGE, pl + ["decay_va_pool_node", "reclaim_list_global"], ["merge_or_add_vmap_area_augment"])
    section(E.S_PPOOL, node_purge + ["node_pool_add_va"], [])
    out[E.S_IRQ] = []
    out[E.S_FAIL] = gvan + ["kfree"]
    out[E.S_PWALK] = node_purge
    out[E.S_VMALLOC] = entry
    out[E.S_VFREE] = ["vfree.part.0"]
    out[E.S_LAZY_ADD] = fua + ["free_vmap_area_noflush"]
    return out


def _context_frames(ctx: int) -> list[str]:
    kthread = ["ret_from_fork_asm", "ret_from_fork", "kthread"]
    if ctx <= E.ALIGN_SHIFT:
        return kthread + ["test_func", TESTS[ctx].name]
    if ctx == E.CTX_DRAIN:
        return kthread + ["worker_thread", "process_one_work", "drain_vmap_area_work"]
    if ctx == E.CTX_HELPER:
        return kthread + ["worker_thread", "process_one_work", "purge_vmap_node"]
    return ["asm_sysvec_call_function", "sysvec_call_function", "__sysvec_call_function",
            "__flush_smp_call_function_queue", "flush_tlb_func"]  # fmt: skip


def per_symbol(stacks: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """Self and children totals per symbol of folded stacks (``"a;b;c" -> amount``), as perf report sums
    them: self for the leaf, children for every symbol the stack holds (once per stack)."""
    self_: dict[str, int] = {}
    children: dict[str, int] = {}
    for key, amount in stacks.items():
        frames = key.split(";")
        self_[frames[-1]] = self_.get(frames[-1], 0) + amount
        for sym in set(frames):
            children[sym] = children.get(sym, 0) + amount
    return self_, children


def _profile(ACC: np.ndarray, design: str) -> pd.DataFrame:
    """perf report --children over the folded stacks of every (context, site) charge."""
    test_names = {t.name for t in TESTS} | {"test_func"}
    stacks: dict[str, int] = {}
    for ctx in range(E.N_CTX):
        if not ACC[ctx].any():
            continue
        frames = _site_frames(design, ctx)
        head = _context_frames(ctx)
        for site in np.flatnonzero(ACC[ctx]):
            key = ";".join(head + frames[int(site)])
            stacks[key] = stacks.get(key, 0) + int(ACC[ctx, site])
    total = sum(stacks.values())
    self_ns, children_ns = per_symbol(stacks)
    symbols = sorted(children_ns, key=lambda s: (-children_ns[s], s))
    n = len(symbols)
    df = pd.DataFrame(
        {
            "block": np.zeros(n, np.int64),
            "event": pd.array([pd.NA] * n, dtype="string"),
            "children_pct": pd.array([100.0 * children_ns[s] / total for s in symbols], dtype="Float64"),
            "self_pct": pd.array([100.0 * self_ns.get(s, 0) / total for s in symbols], dtype="Float64"),
            "samples": pd.array([pd.NA] * n, dtype="Int64"),
            "command": pd.array([pd.NA] * n, dtype="string"),
            "shared_object": pd.array(["test_vmalloc" if s in test_names else "kernel" for s in symbols],
                                      dtype="string"),  # fmt: skip
            "symbol": pd.array(symbols, dtype="string"),
            "symbol_kind": pd.array(["k"] * n, dtype="string"),
        }
    )
    df.attrs["busy_ns"] = total
    df.attrs["stacks"] = stacks
    return df


# --- simulate ----------------------------------------------------------------------------------


def simulate(
    design: str = "nodes",
    threads: int = 64,
    cpus: int | None = None,
    tests: int | list[str] = 7,
    loops: int = 1_000_000,
    seed: int = 0,
    machine: Machine | None = None,
    *,
    repeat: int = 1,
    sequential_test_order: bool = False,
    nr_pages: int = 1,
    sample_ns: int = 1_000_000,
    trace: bool = False,
    progress: bool = False,
    **knobs,
) -> Run:
    """Run test_vmalloc's workers on a simulated machine (docs/contention-model.md).

    Parameters
    ----------
    design : {"global", "nodes"}
        Linux 6.7 (global vmap locks) or 6.9 (vmap nodes).
    threads : int
        test_vmalloc's nr_threads: worker kthreads, not bound to CPUs.
    cpus : int, optional
        CPUs of a new machine (64 when omitted); with ``machine``, must match it or be omitted.
    tests : int or list of str
        run_test_mask, or the names of the tests to run (bits 0-6 are modelled).
    loops : int
        test_loop_count (the kernel's default is 1,000,000). full_fit_alloc_test's junk and
        long_busy_list_alloc_test's 15,000 busy areas keep their sizes.
    seed : int
        Seeds each worker's random stream (test order shuffle and the random tests' draws).
    machine : Machine, optional
        Continue on this machine (its page tables and VA state); a new one when omitted.
    repeat, sequential_test_order, nr_pages : int, bool, int
        test_vmalloc's test_repeat_count, sequential_test_order and nr_pages.
    sample_ns : int
        Simulated time between two rows of ``Run.timeline``.
    trace : bool
        Keep every operation each worker issued in ``Run.trace``: int64 rows (worker, test, op, a,
        b, cpu, node) in issue order; op 0 allocates a pages aligned to b pages, op 1 frees the area
        of the test repetition's row a; cpu is where the operation started, node the tag the VA got
        (-1: none, or a failed allocation). For tests; costs memory.
    progress : bool
        Show a tqdm bar of the allocations the workers have made (a full-size run takes minutes to
        hours). The run's results do not depend on it.
    **knobs
        Machine settings for a new machine: init_on_alloc, drain_priority, busy_lock_once, costs,
        flush_stall_every, flush_stall_ns,
        and the allocator knobs pool_cap, decay, small_pool_decay, lazy_max_pages, nr_nodes,
        zone_pages, paging_levels. With ``machine`` they must agree with it.

    Returns
    -------
    Run

    Examples
    --------
    >>> run = simulate("nodes", threads=4, cpus=4, tests=["fix_size_alloc_test"], loops=1000)
    >>> int(run.summaries.passed.sum()), run.stats["pairs"]
    (4, 4000)
    """
    for name, value in (("threads", threads), ("loops", loops), ("repeat", repeat), ("sample_ns", sample_ns)):
        check_int(name, value, 1)
    check_int("nr_pages", nr_pages, 0)
    if design not in ("global", "nodes"):
        raise ValueError(f"design must be 'global' or 'nodes', not {design!r}")
    mask = parse_test_mask(tests)
    m = _machine_for(design, cpus, machine, knobs)
    mp = ModuleParams(nr_threads=int(threads), test_loop_count=int(loops), test_repeat_count=int(repeat),
                      run_test_mask=mask, sequential_test_order=bool(sequential_test_order),
                      nr_pages=int(nr_pages))  # fmt: skip
    before = m.allocator.stats()
    arrays = _Arrays(m, mp, int(seed), int(sample_ns), bool(trace))
    if progress:
        per_worker = mp.test_repeat_count * sum(allocations_per_repetition(t, mp, m.cpus) for t in mp.tests())
        with tqdm(total=threads * per_worker, desc=f"{design}, {threads} threads", unit="alloc", unit_scale=True) as bar:
            arrays.run(bar)
    else:
        arrays.run()
    after = m.allocator.stats()
    G = arrays.G
    wall_ns = int(G[E.G_LAST_END])
    wall = wall_ns / 1e9
    pairs = after["frees"] - before["frees"]
    busy_ns = int(arrays.ACC.sum())
    spin_ns = arrays.SPINK.astype(np.float64)
    params = {"threads": int(threads), "tests": mask, "loops": int(loops), "seed": int(seed), "repeat": int(repeat),
              "sequential_test_order": bool(sequential_test_order), "nr_pages": int(nr_pages),
              "sample_ns": int(sample_ns), "run_index": len(m.runs)}  # fmt: skip
    params.update({k: v for k, v in m.settings().items() if k != "costs"})
    params["costs"] = m.costs
    m.runs.append({k: v for k, v in params.items() if k != "costs"})
    counters = ("pool_hits", "pool_misses", "pool_rotations", "purges", "drains", "tlb_flushes", "purge_helpers",
                "decayed", "allocs", "frees", "alloc_failures", "fit_full", "fit_left", "fit_right", "fit_middle")  # fmt: skip
    stats = {k: after[k] - before[k] for k in counters}
    lag_n = int(G[E.G_LAG_N])
    stats.update(
        pairs=pairs, events=int(G[E.G_EVENTS]), context_switches=int(G[E.G_CTXSW]), migrations=int(G[E.G_MIGR]),
        preemptions=int(G[E.G_PREEMPTIONS]), drains_started=lag_n, drain_lag_max_s=int(G[E.G_LAG_MAX]) / 1e9,
        drain_lag_mean_s=(int(G[E.G_LAG_SUM]) / lag_n / 1e9) if lag_n else 0.0, helpers_run=int(G[E.G_HELPERS_RUN]),
        ipis=int(G[E.G_IPIS]), mutex_sleeps=int(G[E.G_MUTEX_SLEEPS]), merge_units=int(G[E.G_RUNS]),
        busy_cpu_seconds=busy_ns / 1e9, spin_cpu_seconds=float(spin_ns.sum()) / 1e9,
        vmalloc_pages=after["busy_pages"] - after["busy_areas"],
        pages_allocated=int(G[E.G_PAGES_ALLOC]), pages_freed=int(G[E.G_PAGES_FREED]),
    )  # fmt: skip
    m.pages_allocated += stats["pages_allocated"]
    m.pages_freed += stats["pages_freed"]
    stats.update(pages_allocated_total=m.pages_allocated, pages_freed_total=m.pages_freed)
    pt = {"pte": after["pte_pages"] * PAGE_SIZE, "pmd": after["pmd_pages"] * PAGE_SIZE}
    return Run(
        wall_seconds=wall,
        pairs_per_second=pairs / wall if wall > 0 else 0.0,
        lock_spin_share=float(spin_ns.sum() / busy_ns) if busy_ns else 0.0,
        lock_spin_by_lock={name: float(spin_ns[i] / busy_ns) if busy_ns else 0.0
                           for i, name in enumerate(E.LOCK_KIND_NAMES)},  # fmt: skip
        profile=_profile(arrays.ACC, m.design),
        pagetable_bytes=pt["pte"] + pt["pmd"],
        pagetable_bytes_by_level=pt,
        va_high_water=after["va_high_water"],
        timeline=_timeline(arrays.TL[: int(G[E.G_TLN])], m.config.lazy_max_pages),
        summaries=_summaries(arrays.SUMM, arrays.orders, mp),
        workers=pd.DataFrame({
            "worker": np.arange(threads, dtype=np.int64),
            "cpu": arrays.TH[:threads, E.T_CPU].copy(),
            "migrations": arrays.TH[:threads, E.T_MIGR].copy(),
            "seconds": arrays.TH[:threads, E.T_DONE_AT] / 1e9,
        }),  # fmt: skip
        machine=m,
        params=params,
        stats=stats,
        trace=arrays.TR[: int(G[E.G_TRN])].copy() if trace else None,
        pool_by_test=_pool_by_test(arrays.SUMM, mask),
        space_map=m.space_map(),
    )


def _pool_by_test(SUMM: np.ndarray, mask: int) -> pd.DataFrame:
    tot = SUMM.sum(axis=0)
    bits = [b for b in range(len(TESTS)) if mask >> b & 1]
    df = pd.DataFrame({
        "test": pd.array([TESTS[b].name for b in bits], dtype="string"),
        "hits": tot[bits, E.SU_HITS].astype(np.int64),
        "misses": tot[bits, E.SU_MISSES].astype(np.int64),
        "rotations": tot[bits, E.SU_ROTATIONS].astype(np.int64),
    })  # fmt: skip
    looked = df.hits + df.misses
    df["hit_rate"] = np.where(looked > 0, df.hits / looked.where(looked > 0, 1), np.nan).astype(np.float64)
    return df


def _timeline(TL: np.ndarray, lazy_max: int) -> pd.DataFrame:
    df = pd.DataFrame(TL, columns=list(E.TIMELINE_COLUMNS))
    out = pd.DataFrame({
        "time_s": df.time_ns / 1e9,
        "busy_pages": df.busy_pages,
        "lazy_pages": df.lazy_pages,
        "pooled_pages": df.pooled_pages,
        "held_pages": df.busy_pages + df.lazy_pages + df.pooled_pages,
        "lazy_max_pages": np.full(len(df), lazy_max, np.int64),
        "free_blocks": df.free_blocks,
        "va_high_water": df.va_high_water_pages * PAGE_SIZE,
        "pte_pages": df.pte_pages,
        "pmd_pages": df.pmd_pages,
        "pagetable_bytes": (df.pte_pages + df.pmd_pages) * PAGE_SIZE,
        "drain_lag_s": df.drain_lag_ns / 1e9,
        "drain_running": df.drain_running.astype(bool),
        "pooled_areas": df.pooled_areas,
        "runnable": df.runnable,
        "spinning": df.spinning,
        "lazy_areas": df.lazy_areas,
    })  # fmt: skip
    return out


def _summaries(SUMM: np.ndarray, orders: list[list[int]], mp: ModuleParams) -> pd.DataFrame:
    rows = []
    for w in range(SUMM.shape[0]):
        for bit in sorted(orders[w]):  # dmesg prints in bit order, not execution order
            passed, failed, elapsed = (int(x) for x in SUMM[w, bit, : E.SU_HITS])
            rows.append((w, TESTS[bit].name, passed, failed, failed if TESTS[bit].xfail else 0,
                         mp.test_repeat_count, mp.test_loop_count, elapsed // 1000 // mp.test_repeat_count))  # fmt: skip
    df = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    df["test"] = df["test"].astype("string")
    return df.astype({c: np.int64 for c in SUMMARY_COLUMNS if c != "test"})
