"""The contention engine: its lock model against a slow pure-Python event loop, its determinism,
scheduling (migration, drain lag), allocator invariants after runs, the operation programs, and its
event heap and detach sort against Python references."""

from __future__ import annotations

import heapq

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vmaplab
from vmaplab.sim import _kernels as K
from vmaplab.sim import contention_engine as E
from vmaplab.sim.costs import CostModel, slice_ns
from vmaplab.sim.machine import Machine
from vmaplab.sim.run import random_draws, simulate, worker_test_order
from vmaplab.sim.workloads import OP_ALLOC, TESTS, ModuleParams, worker_program

# Distinct integer costs, no tree-depth term and no page-table pages: every step of a
# fix_size_alloc_test pair in the global design has a fixed duration.
FLAT = CostModel(lock_ns=7, line_ns=40, tree_base_ns=100, tree_level_ns=0, lock_hold_ns=30, slab_ns=50,
                 page_alloc_ns=20, page_zero_ns=60, pte_set_ns=5, pte_clear_ns=4, page_free_ns=30, pt_page_ns=0,
                 vmalloc_ns=11, vfree_ns=13, lazy_add_ns=9)  # fmt: skip
NO_DRAIN = 1 << 40  # lazy_max_pages: no drain ever runs


def reference_fix_size_global(workers: int, loops: int, c: CostModel):
    """fix_size_alloc_test pairs in the 6.7 design on a tiny event loop with FIFO locks.

    Locks 0 free_vmap_area_lock, 1 vmap_area_lock, 2 purge_vmap_area_lock. Each step is an outside
    cost or a lock section; a free lock costs lock_ns (+ line_ns if last held on another CPU); a
    release hands the lock to the oldest waiter one line_ns later. Events at equal times run in the
    order they were scheduled. Returns (finish time per worker, spin ns per lock).
    """
    steps = [
        ("out", c.slab_ns), ("out", c.slab_ns), ("lock", 0, c.tree_base_ns), ("lock", 1, c.tree_base_ns),
        ("lock", 1, c.lock_hold_ns), ("out", c.page_alloc_ns + c.page_zero_ns + c.pte_set_ns + c.vmalloc_ns),
        ("lock", 1, c.tree_base_ns), ("out", c.pte_clear_ns + c.lazy_add_ns), ("lock", 2, c.tree_base_ns),
        ("out", c.page_free_ns + c.slab_ns + c.vfree_ns),
    ]  # fmt: skip
    heap: list = []
    seq = [0]

    def push(th, t):
        heapq.heappush(heap, (t, seq[0], th))
        seq[0] += 1

    holder = [None] * 3
    last = [None] * 3
    waiters: list[list[int]] = [[], [], []]
    spin_start = [0] * workers
    spin = [0] * 3
    pos = [0] * workers  # the step in progress
    pairs = [0] * workers
    mode = ["start"] * workers  # start | out_end | release | granted
    done = [None] * workers
    for w in range(workers):
        push(w, 0)
    while heap:
        t, _, th = heapq.heappop(heap)
        if mode[th] == "granted":
            mode[th] = "release"
            push(th, t + int(steps[pos[th]][2]))
            continue
        if mode[th] == "release":
            lk = steps[pos[th]][1]
            if waiters[lk]:
                w = waiters[lk].pop(0)
                holder[lk] = w
                tg = t + int(c.line_ns)
                spin[lk] += tg - spin_start[w]
                last[lk] = w
                push(w, tg)
            else:
                holder[lk] = None
                last[lk] = th
            pos[th] += 1
        elif mode[th] == "out_end":
            pos[th] += 1
        if pos[th] == len(steps):
            pos[th] = 0
            pairs[th] += 1
        if pairs[th] == loops:
            done[th] = t
            continue
        step = steps[pos[th]]
        if step[0] == "out":
            mode[th] = "out_end"
            push(th, t + int(step[1]))
            continue
        lk = step[1]
        if holder[lk] is None:
            holder[lk] = th
            cost = int(c.lock_ns) + (int(c.line_ns) if last[lk] not in (None, th) else 0)
            last[lk] = th
            mode[th] = "release"
            push(th, t + cost + int(step[2]))
        else:
            waiters[lk].append(th)
            spin_start[th] = t
            mode[th] = "granted"
    return done, spin


@pytest.mark.parametrize("workers,loops", [(1, 3), (3, 5), (6, 40)])
def test_lock_model_matches_a_fifo_event_loop(workers, loops):
    run = simulate("global", threads=workers, cpus=8, tests=["fix_size_alloc_test"], loops=loops,
                   costs=FLAT, lazy_max_pages=NO_DRAIN)  # fmt: skip
    done, spin = reference_fix_size_global(workers, loops, FLAT)
    assert run.workers.seconds.tolist() == [d / 1e9 for d in done]
    assert run.wall_seconds == max(done) / 1e9
    busy_ns = run.stats["busy_cpu_seconds"] * 1e9
    by_lock = run.lock_spin_by_lock
    for i, name in enumerate(("free_vmap_area_lock", "vmap_area_lock", "purge_vmap_area_lock")):
        assert by_lock[name] * busy_ns == pytest.approx(spin[i], abs=1e-3)
    if workers > 1:
        assert by_lock["vmap_area_lock"] > 0  # the scenario does contend


def test_spin_is_charged_to_the_slowpath():
    run = simulate("global", threads=6, cpus=8, tests=["fix_size_alloc_test"], loops=40, costs=FLAT,
                   lazy_max_pages=NO_DRAIN)  # fmt: skip
    prof = run.profile.set_index("symbol")
    assert prof.loc["native_queued_spin_lock_slowpath", "self_pct"] / 100 == pytest.approx(run.lock_spin_share)
    assert prof.loc["ret_from_fork_asm", "children_pct"] == pytest.approx(100.0)
    assert prof.self_pct.sum() == pytest.approx(100.0)


def test_profile_has_the_perf_report_schema():
    import io

    run = simulate("nodes", threads=2, cpus=2, tests=7, loops=20)
    real = vmaplab.read_perf_report(io.StringIO("  93.35%    93.07%  [kernel]  [k] native_queued_spin_lock_slowpath\n"))
    assert list(run.profile.columns) == list(real.columns)
    assert run.profile.dtypes.tolist() == real.dtypes.tolist()
    assert run.profile.children_pct.is_monotonic_decreasing


@pytest.mark.parametrize("design", ["global", "nodes"])
def test_deterministic_for_a_seed(design):
    kw = dict(threads=6, cpus=4, tests=[t.name for t in TESTS[:7] if t.name != "full_fit_alloc_test"], loops=300)
    a = simulate(design, seed=11, **kw)
    b = simulate(design, seed=11, **kw)
    c = simulate(design, seed=12, **kw)
    pd.testing.assert_frame_equal(a.summaries, b.summaries)
    pd.testing.assert_frame_equal(a.timeline, b.timeline)
    pd.testing.assert_frame_equal(a.profile, b.profile)
    assert a.stats == b.stats and a.wall_seconds == b.wall_seconds
    assert a.stats != c.stats  # other random sizes, other test orders


def test_progress_bar_counts_every_allocation_and_leaves_the_run_alone(monkeypatch):
    from tqdm import tqdm as plain_tqdm

    from vmaplab.sim import run as run_module

    bars, updates = [], []

    class Recording(plain_tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, disable=True, **kwargs)
            bars.append(self)

        def update(self, n=1):
            updates.append(n)
            self.n += n  # a disabled bar keeps no count of its own

    monkeypatch.setattr(run_module, "tqdm", Recording)
    monkeypatch.setattr(run_module, "PROGRESS_EVENTS", 5000)  # many reports in a small run
    kw = dict(threads=6, cpus=4, tests=["fix_size_alloc_test", "random_size_alloc_test", "align_shift_alloc_test"],
              loops=400, seed=11)  # fmt: skip
    quiet = simulate("nodes", **kw)
    shown = simulate("nodes", progress=True, **kw)
    attempts = shown.stats["allocs"] + shown.stats["alloc_failures"]
    assert len(bars) == 1 and len(updates) > 10 and min(updates) >= 0
    assert sum(updates) == bars[0].n == bars[0].total == attempts
    # align_shift_alloc_test stops at its first failure: the bar starts from a bound and ends on the count
    assert shown.stats["alloc_failures"] == 6 and attempts < 6 * (400 + 400 + 63)
    pd.testing.assert_frame_equal(quiet.timeline, shown.timeline)
    pd.testing.assert_frame_equal(quiet.profile, shown.profile)
    assert quiet.stats == shown.stats and quiet.wall_seconds == shown.wall_seconds


def test_every_op_of_the_workload_programs_is_executed():
    threads, cpus, loops, repeat, seed = 2, 2, 30, 2, 5
    mask = sum(t.mask for t in TESTS[:7])
    run = simulate("nodes", threads=threads, cpus=cpus, tests=mask, loops=loops, repeat=repeat, seed=seed, trace=True)
    tr = run.trace
    params = ModuleParams(test_loop_count=loops)
    streams = np.random.SeedSequence(seed).spawn(threads)
    for w in range(threads):
        rng = np.random.default_rng(streams[w])
        order = worker_test_order(rng, mask, False)
        mine = tr[tr[:, 0] == w]
        tests_run = [int(x) for x in mine[np.r_[True, mine[1:, 1] != mine[:-1, 1]], 1]]
        assert tests_run == order  # the shuffled order, each test's repetitions back to back
        for bit in order:
            reps = np.array_split(mine[mine[:, 1] == bit], repeat)
            for got in reps:
                want = worker_program(TESTS[bit], params, cpus, rng)  # draws as the engine's stream did
                alloc = want[:, 0] == OP_ALLOC
                want[alloc, 2] = np.maximum(want[alloc, 2], 4096) >> 12  # bytes -> pages
                if bit == 6:  # align_shift_alloc_test stops at its first failed allocation
                    assert got[-1, 2] == OP_ALLOC and got[-1, 6] == -1 and len(got) % 2 == 1
                    want = want[: len(got)]
                np.testing.assert_array_equal(got[:, 2:5], want)
    assert (run.summaries.query("test == 'align_shift_alloc_test'").failed == repeat).all()
    assert (run.summaries.query("test != 'align_shift_alloc_test'").passed == repeat).all()
    # random_draws draws what worker_program draws
    rng1, rng2 = np.random.default_rng(1), np.random.default_rng(1)
    sizes, _ = random_draws([3], rng1, 50, 1)
    np.testing.assert_array_equal(sizes, worker_program(TESTS[3], ModuleParams(test_loop_count=50), 2, rng2)[::2, 1])


def test_a_migrated_worker_uses_its_new_cpus_pool_node():
    # 5 workers on 2 CPUs: workers finish at different times and idle CPUs pull queued workers over
    run = simulate("nodes", threads=5, cpus=2, tests=["fix_size_alloc_test", "random_size_alloc_test"],
                   loops=3000, seed=3, trace=True)  # fmt: skip
    tr = run.trace
    allocs = tr[(tr[:, 2] == OP_ALLOC) & (tr[:, 6] >= 0)]
    np.testing.assert_array_equal(allocs[:, 6], allocs[:, 5] % run.machine.config.nr_nodes)
    moved = run.workers[run.workers.migrations > 0].worker.tolist()
    assert moved and run.stats["migrations"] >= len(moved)
    for w in moved:
        assert len(set(allocs[allocs[:, 0] == w, 5].tolist())) == 2  # it allocated on both CPUs' nodes


@pytest.mark.parametrize("design", ["global", "nodes"])
def test_drain_falls_behind_with_more_threads_than_cpus_and_keeps_up_at_high_priority(design):
    kw = dict(threads=16, cpus=4, tests=["fix_size_alloc_test"], loops=4000, lazy_max_pages=2048)
    normal = simulate(design, **kw)
    high = simulate(design, drain_priority="high", **kw)
    assert normal.stats["drain_lag_mean_s"] > slice_ns(4) / 1e9  # queued behind runnable workers
    # a nice -20 drain waits at most for the drain in progress, never behind the workers
    assert high.stats["drain_lag_max_s"] < slice_ns(4) / 1e9 < normal.stats["drain_lag_max_s"]
    assert normal.timeline.lazy_pages.max() > 2 * high.timeline.lazy_pages.max()
    assert normal.timeline.drain_lag_s.max() > 0
    for run in (normal, high):
        run.machine.check_invariants()


def test_a_drain_that_overran_its_slice_waits_until_the_workers_catch_up():
    # The 2-vCPU guest of data/real/test_vmalloc-qemu-2cpu runs kernel code 3.5x slower than the
    # calibrated costs (report.GUEST_2CPU): there a drain overruns the 1.5 ms slice, the kworker is
    # preempted at process_one_work's cond_resched() while it still owns the work, and EEVDF runs it
    # again only when the 3-4 workers on its CPU have caught up (docs/contention-model.md, Lag and
    # Kworkers). Without the lag, a queued kworker waits at most one slice per worker ahead of it.
    slow = CostModel().scaled(3.5)
    kw = dict(threads=8, cpus=2, tests=127, loops=10_000, seed=0, costs=slow)
    normal = simulate("nodes", **kw)
    high = simulate("nodes", drain_priority="high", **kw)
    lazy_max = normal.timeline.lazy_max_pages.iloc[0]
    assert normal.stats["drain_lag_max_s"] > 20 * slice_ns(2) / 1e9  # far beyond 4 workers' slices
    assert normal.timeline.lazy_pages.max() > 1.75 * lazy_max  # 1.95x
    assert high.stats["drain_lag_max_s"] < normal.stats["drain_lag_max_s"] / 4  # nice -20 never lags
    assert high.timeline.lazy_pages.max() < 1.1 * lazy_max  # 1.02x: it drains as soon as it is queued
    assert normal.pagetable_bytes > 1.2 * high.pagetable_bytes  # the VA held back costs page tables
    for run in (normal, high):
        run.machine.check_invariants()


def test_a_late_ipi_answer_lengthens_the_flush_and_the_drain_falls_behind():
    # flush_stall_every / flush_stall_ns: every n-th TLB flush waits for a vCPU the host is not running
    kw = dict(threads=8, cpus=4, tests=["fix_size_alloc_test"], loops=30_000, lazy_max_pages=2048, seed=0)
    bare = simulate("nodes", **kw)
    late = simulate("nodes", flush_stall_every=2, flush_stall_ns=20_000_000, **kw)
    flushes = late.stats["tlb_flushes"]
    assert flushes >= 4

    def flush_ns(run):  # the IPI wait is smp_call_function_many_cond's self time
        prof = run.profile.set_index("symbol")
        return prof.loc["smp_call_function_many_cond", "self_pct"] / 100 * prof.attrs["busy_ns"]

    # every second flush waits 20 ms more; the others cost what the bare machine's do
    stalls = flush_ns(late) - flushes * flush_ns(bare) / bare.stats["tlb_flushes"]
    assert stalls == pytest.approx(flushes // 2 * 20e6, rel=0.01)
    assert late.stats["drain_lag_max_s"] > bare.stats["drain_lag_max_s"]
    assert late.timeline.lazy_pages.max() > bare.timeline.lazy_pages.max()
    assert late.machine.settings()["flush_stall_every"] == 2
    with pytest.raises(ValueError, match="flush_stall_ns must be a non-negative int"):
        Machine("nodes", cpus=4, flush_stall_ns=-1)
    again = {k: v for k, v in kw.items() if k != "lazy_max_pages"}
    with pytest.raises(ValueError, match="flush_stall_every=0 conflicts"):
        simulate("nodes", machine=late.machine, flush_stall_every=0, **again)


@pytest.mark.parametrize("design", ["global", "nodes"])
def test_invariants_hold_after_every_test(design):
    m = Machine(design, cpus=4)
    for threads in (4, 8):
        run = simulate(design, threads=threads, tests=127, loops=200, machine=m, seed=threads)
        m.check_invariants()
        s = m.stats()
        assert s["busy_areas"] == 0 and s["alloc_failures"] >= threads  # align_shift fails once per worker
        assert run.stats["pairs"] == run.stats["allocs"]
        assert s["busy_pages"] + s["lazy_pages"] + s["pooled_pages"] + s["free_pages"] == s["space_pages"]


def test_an_area_of_many_gib_maps_its_own_page_tables():
    # fix_size_alloc_test with test_vmalloc's nr_pages at 2^23 (32 GiB, 32 PMD rows): the engine made room
    # for 512 pages an event and overran its page-table arrays here (a heap corruption, sometimes an abort)
    run = simulate("global", threads=1, cpus=1, tests=["fix_size_alloc_test"], loops=1, nr_pages=2**23)
    # mapped from the window's 1 GiB-aligned start: a PTE page per 2 MiB and a PMD page per 1 GiB
    assert run.pagetable_bytes_by_level == {"pte": 2**23 // 512 * 4096, "pmd": 32 * 4096}
    assert run.va_high_water == (2**23 + 1) * 4096  # and its guard page
    run.machine.check_invariants()


def test_machine_continues_and_refuses_conflicts():
    first = simulate("nodes", threads=4, cpus=4, tests=5, loops=500)
    pt = first.pagetable_bytes
    again = simulate("nodes", threads=4, tests=5, loops=500, machine=first.machine)
    assert again.machine is first.machine and again.pagetable_bytes >= pt
    assert again.params["run_index"] == 1 and len(first.machine.runs) == 2
    with pytest.raises(ValueError, match="cpus"):
        simulate("nodes", threads=4, cpus=8, tests=5, loops=10, machine=first.machine)
    with pytest.raises(ValueError, match="design"):
        simulate("global", threads=4, tests=5, loops=10, machine=first.machine)
    with pytest.raises(ValueError, match="pool_cap"):
        simulate("nodes", threads=4, tests=5, loops=10, machine=first.machine, pool_cap=3)
    with pytest.raises(TypeError, match="unknown"):
        simulate("nodes", threads=4, cpus=4, tests=5, loops=10, no_such_knob=1)


def test_run_frames_have_their_documented_columns():
    run = simulate("nodes", threads=3, cpus=2, tests=[t.name for t in TESTS[:7]], loops=50)
    assert list(run.summaries.columns) == ["worker", "test", "passed", "failed", "xfailed", "repeat", "loops",
                                           "avg_usec"]  # fmt: skip
    assert run.summaries.test.dtype == "string" and len(run.summaries) == 3 * 7
    assert run.summaries.groupby("worker").test.apply(list).map(lambda t: t == sorted(t, key=[x.name for x in TESTS].index)).all()
    tl = run.timeline
    assert {"time_s", "busy_pages", "lazy_pages", "pooled_pages", "lazy_max_pages", "free_blocks", "va_high_water",
            "pte_pages", "pmd_pages", "drain_lag_s", "pooled_areas", "held_pages"} <= set(tl.columns)  # fmt: skip
    assert (tl.held_pages == tl.busy_pages + tl.lazy_pages + tl.pooled_pages).all() and tl.held_pages.max() > 0
    assert tl.time_s.is_monotonic_increasing and tl.va_high_water.is_monotonic_increasing
    assert tl.va_high_water.iloc[-1] == run.va_high_water
    assert run.pagetable_bytes == sum(run.pagetable_bytes_by_level.values()) == tl.pagetable_bytes.iloc[-1]


# --- the event heap and the detach sort against Python references ------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 7), st.integers(0, 40)), min_size=1, max_size=300))
def test_event_heap_pops_in_time_then_sequence_order(script):
    """Push, process (re-key the root in place or remove it) and delay, as the engine does; the
    events come out in (time, push order) order, as from heapq with a sequence number."""
    nth = 8
    HP = np.zeros((nth, 3), np.int64)
    POS = np.full(nth, -1, np.int64)
    G = np.zeros(E.N_G, np.int64)
    ref: dict[int, tuple[int, int]] = {}  # thread -> (time, seq)
    seq = 0
    now = 0
    got, want = [], []
    for kind, th, d in script:
        if kind <= 1 and th not in ref:  # schedule an idle thread
            E._push(HP, POS, G, th, now + d)
            ref[th] = (now + d, seq)
            seq += 1
        elif kind == 2 and th in ref:  # an interrupt delays a pending event
            E._delay(HP, POS, G, th, d)
            ref[th] = (ref[th][0] + d, ref[th][1])
        elif kind == 3 and ref:  # process the next event: reschedule that thread or drop it
            top, now = int(HP[0, 2]), int(HP[0, 0])
            first = min(ref, key=ref.get)
            got.append((top, now))
            want.append((first, ref[first][0]))
            if d % 2:
                E._push(HP, POS, G, top, now + d)
                ref[first] = (now + d, seq)
                seq += 1
            else:
                E._pop(HP, POS, G)
                del ref[first]
    while ref:
        first = min(ref, key=ref.get)
        want.append((first, ref.pop(first)[0]))
        th, t = E._pop(HP, POS, G)
        got.append((int(th), int(t)))
    assert got == want
    assert G[E.G_HN] == 0 and (POS == -1).all()


@settings(max_examples=100, deadline=None)
@given(st.sets(st.integers(0, 2**45), max_size=3000), st.randoms(use_true_random=False))
def test_detach_sort_orders_by_start_and_keeps_pairs(keys, rnd):
    keys = list(keys)
    rnd.shuffle(keys)
    n = len(keys)
    PQ = np.full(4 * n + E.PQ_SCRATCH, -7, np.int64)
    PQ[:n] = np.arange(n) + 100  # the slots
    PQ[n : 2 * n] = keys
    K.sort_pairs(PQ[n : 2 * n], PQ[:n], PQ[2 * n : 3 * n], PQ[3 * n : 4 * n], PQ[4 * n :], n)
    order = np.argsort(np.array(keys, np.int64), kind="stable")
    np.testing.assert_array_equal(PQ[n : 2 * n], np.sort(np.array(keys, np.int64)))
    np.testing.assert_array_equal(PQ[:n], order + 100)


def test_scaled_costs_keep_the_measured_ones():
    native = CostModel()
    guest = native.scaled(5, purge_va_ns=220)
    assert guest.line_ns == 5 * native.line_ns and guest.page_zero_ns == 5 * native.page_zero_ns
    assert guest.purge_va_ns == 220 and native.purge_va_ns != 220
    with pytest.raises(ValueError, match=r"unknown costs \['purge_ns'\]"):
        CostModel().scaled(5, purge_ns=1)


# --- the scheduler's balancing, on hand-built run queues -----------------------------------------


class _Sched:
    """Run queues of ``cpus`` CPUs and ``nth`` threads (the last one a drain kworker), as the engine
    keeps them; ``place`` puts threads on a CPU, the first one running."""

    def __init__(self, cpus: int, nth: int):
        self.TH = E.empty_threads(nth)
        self.TH[:, E.T_STATE] = E.ST_SLEEP
        self.TH[nth - 1, E.T_KIND] = E.KIND_DRAIN
        self.CPU = E.empty_cpus(cpus)
        self.HP = np.zeros((nth, 3), np.int64)
        self.POS = np.full(nth, K.NIL, np.int64)
        self.G = np.zeros(E.N_G, np.int64)
        self.G[E.G_SLICE] = slice_ns(cpus)
        self.ACC = np.zeros((E.N_CTX, E.N_SITES), np.int64)
        self.COST = CostModel().as_array()

    def place(self, cpu: int, *threads: int) -> None:
        for th in threads:
            self.TH[th, E.T_CPU] = cpu
            E._enqueue(self.TH, self.CPU, self.HP, self.POS, self.G, self.ACC, self.COST, th, cpu, 0, False)

    def balance(self) -> None:
        E._balance(self.TH, self.CPU, self.HP, self.POS, self.G, self.ACC, self.COST, 1_000)

    def queue(self, cpu: int) -> list[int]:
        out, x = [], self.CPU[cpu, E.CPU_RQHEAD]
        while x != K.NIL:
            out.append(int(x))
            x = self.TH[x, E.T_RQNEXT]
        return out


def test_a_worker_sharing_a_cpu_with_the_drain_moves_at_the_fourth_balance():
    """4 CPUs: the drain kworker runs on CPU 0 with worker 0 queued behind it, workers 1-3 run alone.
    The CPUs differ by one runnable thread: three attempts fail, the fourth moves worker 0 to the
    first least-busy CPU counted from that attempt's start (attempt 4 starts at CPU 3)."""
    s = _Sched(cpus=4, nth=5)
    s.place(0, 4, 0)
    for w in (1, 2, 3):
        s.place(w, w)
    for attempt in (1, 2, 3):
        s.balance()
        assert s.queue(0) == [0] and s.G[E.G_BAL_FAILED] == attempt
    s.balance()
    assert s.queue(0) == [] and s.queue(3) == [0]
    assert s.TH[0, E.T_CPU] == 3 and s.TH[0, E.T_MIGR] == 1 and s.G[E.G_BAL_FAILED] == 0
    assert s.CPU[0, E.CPU_CUR] == 4  # the kworker is bound to its CPU


def test_balance_moves_at_once_by_two_and_waits_while_the_worker_runs():
    s = _Sched(cpus=4, nth=6)
    s.place(0, 5, 0, 4)  # kworker running, two workers queued: 3 against 1
    for w in (1, 2, 3):
        s.place(w, w)
    s.balance()  # start CPU 0: the first least busy CPU is 1
    assert s.queue(0) == [4] and s.queue(1) == [0] and s.G[E.G_BAL_FAILED] == 0
    s2 = _Sched(cpus=2, nth=3)
    s2.place(0, 0, 2)  # worker 0 runs, the kworker waits: an imbalance, but no queued worker to move
    s2.place(1, 1)
    for _ in range(5):
        s2.balance()
    assert s2.TH[0, E.T_CPU] == 0 and s2.G[E.G_BAL_FAILED] == 5


def test_an_idle_cpu_takes_a_worker_moved_to_it():
    s = _Sched(cpus=3, nth=4)
    s.place(0, 3, 0, 1)  # 3 runnable on CPU 0, CPU 2 idle, CPU 1 idle
    s.balance()
    assert s.CPU[1, E.CPU_CUR] == 0 and s.TH[0, E.T_STATE] == E.ST_RUN and s.POS[0] != K.NIL


def test_a_yielding_worker_goes_to_an_idle_cpu_and_a_sleeper_keeps_two_slices_of_lead():
    s = _Sched(cpus=2, nth=3)
    s.place(0, 0, 2)  # worker 0 runs past its slice with the kworker queued; CPU 1 is idle
    sl = int(s.G[E.G_SLICE])
    t = int(s.TH[0, E.T_SLICE_END]) + 1
    EP = np.zeros(E.N_EP, np.int64)
    EP[E.E_SLICE] = sl
    assert E._preempt_point(s.TH, s.CPU, s.HP, s.POS, s.G, s.ACC, s.COST, EP, 0, 0, t)
    assert s.CPU[0, E.CPU_CUR] == 2 and s.CPU[1, E.CPU_CUR] == 0 and s.queue(0) == []
    # the kworker now runs 10 slices past its own slice end and sleeps: its lead stops at two slices
    t2 = int(s.TH[2, E.T_SLICE_END]) + 10 * sl
    s.place(0, 1)
    E._sleep(s.TH, s.CPU, s.HP, s.POS, s.G, s.ACC, s.COST, 2, t2)
    assert s.TH[2, E.T_LAG] == 2 * sl and s.CPU[0, E.CPU_CUR] == 1


def test_a_merge_batch_costs_the_union_of_its_descents():
    cost = CostModel().as_array()
    flat = cost[E.C_TBASE] + cost[E.C_MERGE]  # a descent whose every level is cached

    def cold(n):  # a descent that misses every level, as the free-tree search of an allocation
        return E._tree_ns(cost, n) + cost[E.C_MERGE]

    n = 77_000  # the median free-tree size of the seed's 64-thread chain run (docs/calibration.md)
    assert E._merge_batch(cost, n, 0) == 0
    assert E._merge_batch(cost, n, 1) == int(cold(n))  # one merge alone: the whole path missed
    # 45 ns a level: 60 + 150 + 45 x log2(77,001) = 940 ns alone; a batch of 1,000 shares the top ~10 levels
    assert E._merge_batch(cost, n, 1) == 940
    per_merge = [E._merge_batch(cost, n, k) / k for k in (1, 10, 100, 1_000, 10_000)]
    assert all(a > b for a, b in zip(per_merge, per_merge[1:]))  # more merges share more of their paths
    assert all(flat < p <= cold(n) for p in per_merge)
    assert E._merge_batch(cost, n, 1_000) / 1_000 == pytest.approx(flat + 45 * np.log2(n / 1_000 + 1), abs=1)
