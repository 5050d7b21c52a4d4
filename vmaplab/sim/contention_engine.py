"""The jitted discrete-event engine of docs/contention-model.md: threads on CPUs, FIFO spinlocks, the drain.

Every thread is a state machine whose program counter (``pc``) names the next step of the kernel
call it is in (vmalloc, vfree, the purge). A step that takes time schedules one event; a step that
waits for a busy spinlock queues the thread on the lock (it keeps spinning on its CPU) and the
releaser hands the lock over. Allocator state changes happen in the step that holds the protecting
lock, on the arrays of :mod:`vmaplab.sim._kernels`. The event heap holds at most one event per
thread, ordered by (time, sequence number) so equal times are resolved deterministically; the event
being processed stays at its root until the thread schedules its next event (re-keyed in place) or
waits (removed).

All engine state lives in arrays, so a run that stops because an array is full (status ``NEED_*``)
resumes exactly where it stopped after its caller (:mod:`vmaplab.sim.run`) grew that array; one that
stops for a progress report (status ``PAUSE``) resumes the same way. Times are int64 ns.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Small helpers of the event loop are inlined by LLVM (NJIT_INLINE_OPTIONS): a call that passes
# arrays costs ~5 ns per array argument, more than most of these helpers do. Inlining them at numba's
# IR level instead gives the same code but makes numba's own passes over the big run_engine ~10x
# slower to compile (bench/compile_profile.py). Nothing here allocates, so the other functions run
# without numba's reference counting (NJIT_NO_NRT_OPTIONS), which otherwise costs two atomic
# operations per array argument of every call.
from vmaplab.config import NJIT_INLINE_OPTIONS, NJIT_NO_NRT_OPTIONS, drop_stale_cache

from vmaplab.sim import _kernels as K
from vmaplab.sim import params, reference, workloads
from vmaplab.sim._kernels import (
    BUSY,
    BUSY_AREAS,
    BUSY_PAGES,
    DRAIN_PENDING,
    DRAINS,
    FREES,
    LAZY,
    LAZY_AREAS,
    LAZY_PAGES,
    LZ_COUNT,
    LZ_HEAD,
    NIL,
    P_BASE,
    P_LAZY_MAX,
    P_NR_NODES,
    P_ZONE,
    PL_HEAD,
    PL_LEN,
    POOL_HITS,
    POOL_MISSES,
    POOL_ROTATIONS,
    PURGE_HELPERS,
    PURGES,
    S_ALIGN,
    S_NEXT,
    S_NODE,
    S_SIZE,
    S_START,
    S_STATE,
    TLB_FLUSHES,
)
from vmaplab.sim.params import PAGE_SIZE, POOL_CLASSES
from vmaplab.sim.reference import OP_ALLOC, OP_FREE
from vmaplab.sim.workloads import LONG_BUSY_AREAS, TESTS, THREAD_ALIGN


# the engine compiles in the allocator's kernels and the constants of these modules
drop_stale_cache(__file__, K.__file__, params.__file__, reference.__file__, workloads.__file__)

# --- statuses returned by run_engine --------------------------------------------------------
DONE = 0
NEED_SLOTS = K.NEED_SLOTS
NEED_HASH = K.NEED_HASH
NEED_MID = K.NEED_MID
NEED_LOW = K.NEED_LOW
NEED_PQ = 10  # the purge scratch list
NEED_TL = 11  # the timeline
NEED_TRACE = 12  # the op trace
PAUSE = 13  # E_PAUSE events have passed since the last return: nothing is pending, call again
ERR_DEADLOCK = 20  # no event left while workers are not done
ERR_FAIL = 21  # an allocation failed in a test that cannot fail (G_ERR: worker)

# --- engine parameters (EP) -----------------------------------------------------------------
E_WORKERS = 0
E_CPUS = 1
E_NODES_DESIGN = 2
E_NR = 3  # nr_nodes
E_BUSY_ONCE = 4
E_HIGH_PRIO = 5
E_INIT_ON_ALLOC = 6
E_LOOPS = 7
E_REPEAT = 8
E_NR_PAGES = 9
E_JUNK = 10  # full_fit_alloc_test's junk_length
E_NSEL = 11  # tests per worker
E_SLICE = 12
E_SAMPLE = 13
E_TRACE = 14
E_STALL_EVERY = 15  # every n-th TLB flush waits E_STALL_NS more for one CPU's answer (0: never)
E_STALL_NS = 16
E_BALANCE = 17  # the busy CPUs' load-balance interval, ns
E_PAUSE = 18  # return PAUSE every this many events, for a progress report (0: never)
N_EP = 19

# --- costs (COST), the order of vmaplab.sim.costs.COST_NAMES ---------------------------------
C_LOCK, C_LINE, C_TBASE, C_TLEVEL, C_HOLD, C_SLAB, C_PALLOC, C_PZERO, C_PTESET, C_PTECLR = range(10)
C_PFREE, C_PTPAGE, C_MERGE, C_POOL, C_FLUSH, C_IPI, C_IPIIRQ, C_CTX, C_PURGEVA = range(10, 19)
C_VMALLOC, C_VFREE, C_LAZYADD = range(19, 22)

# --- thread columns (TH) ----------------------------------------------------------------------
T_STATE = 0
T_CPU = 1
T_KIND = 2
T_PC = 3
T_RUNSTART = 4
T_LNEXT = 5  # next waiter of a lock or the mutex
T_RQNEXT = 6  # next thread of a run queue
T_SPINSTART = 7
T_SPINLOCK = 8
T_SPINSITE = 9
T_CTX = 10
T_TESTPOS = 11
T_TEST = 12
T_REP = 13
T_PHASE = 14
T_I = 15
T_J = 16
T_PAGES = 17
T_ALIGN = 18  # pages
T_HIDX = 19
T_SLOT = 20
T_TSTART = 21
T_FAILED = 22
T_RETRIED = 23
T_FULL = 24  # the purge in progress is a full-decay one (allocation failure, nodes design)
T_RET = 25  # pc after an inline purge
T_NODE = 26  # node of the current step (lock index base)
T_CUR = 27  # purge cursor
T_END = 28  # purge cursor end
T_AUX = 29  # pool hit / freeback count / runs end
T_MI = 30  # index into the marked nodes
T_ROW = 31  # program row within the test repetition (trace)
T_MIGR = 32
T_DONE_AT = 33
T_HIGH = 34  # queued at high priority
T_TRI = 35  # trace row of the current operation
T_SLICE_END = 36  # end of the running thread's current slice (EEVDF deadline, in run time)
T_LAG = 37  # EEVDF: how far the thread's vruntime runs ahead of its CPU's average, ns (> 0: not eligible)
N_TH = 38

# thread states and kinds
ST_RUN = 0
ST_RUNNABLE = 1
ST_SLEEP = 2
ST_DONE = 3
KIND_WORKER = 0
KIND_DRAIN = 1
KIND_HELPER = 2

# charge contexts: 0..6 the worker's current test, then the kworkers and interrupts
CTX_DRAIN = 7
CTX_HELPER = 8
CTX_IRQ = 9
N_CTX = 10

# --- charge sites: a lock section uses base (acquire), base + 1 (spin), base + 2 (hold) --------
S_SLAB_VM = 0
S_SLAB_VA = 1
S_POOL = 2
S_FREE = 5
S_BUSY = 8
S_SETUP = 11
S_PAGE_ALLOC = 14
S_PAGE_ZERO = 15
S_MAP = 16
S_PTALLOC = 17
S_FIND = 18
S_UNMAP = 21
S_LAZY = 22
S_PAGE_FREE = 25
S_SLAB_FREE = 26
S_SCHED = 27
S_MUTEX = 28
S_PDETACH = 29
S_FLUSH = 32
S_PMERGE = 33
S_DECAY = 36
S_DMERGE = 39
S_PPOOL = 42
S_IRQ = 45
S_FAIL = 46  # the failed allocation's clean-up and warning
S_PWALK = 47  # purge_vmap_node's own per-VA work, outside the locks
S_VMALLOC = 48  # __vmalloc_node_range's own work
S_VFREE = 49  # vfree's own work
S_LAZY_ADD = 50  # free_vmap_area_noflush's add to the lazily-freed page count
N_SITES = 51

# lock kinds (lock_spin_by_lock)
LK_FREE = 0
LK_VAL = 1
LK_PVAL = 2
LK_BUSY = 3
LK_LAZY = 4
LK_POOL = 5
N_LOCK_KINDS = 6
LOCK_KIND_NAMES = (
    "free_vmap_area_lock",
    "vmap_area_lock",
    "purge_vmap_area_lock",
    "busy.lock",
    "lazy.lock",
    "pool_lock",
)
# lock columns
L_HOLDER = 0
L_HEAD = 1
L_TAIL = 2
L_LASTCPU = 3
L_KIND = 4
N_L = 5

# CPU columns
CPU_CUR = 0
CPU_RQHEAD = 1
CPU_RQTAIL = 2
CPU_RQLEN = 3
CPU_IRQ = 4  # end of the interrupt being taken
CPU_PREEMPT = 5  # a high-priority work item waits: preempt at the next preemption point
N_CPU = 6

# globals (G)
G_SEQ = 0
G_HN = 1
G_NEXT_SAMPLE = 2
G_TLN = 3
G_DRAIN_QUEUED = 4
G_DRAIN_QTIME = 5
G_DRAIN_RUNNING = 6
G_DRAIN_REQUEUE = 7
G_LAG_MAX = 8
G_LAG_SUM = 9
G_LAG_N = 10
G_OUTSTANDING = 11
G_KW_WAITING = 12
G_PQFILL = 13
G_NMARKED = 14
G_WORKERS_LEFT = 15
G_LAST_END = 16
G_EVENTS = 17
G_CTXSW = 18
G_MIGR = 19
G_SPINNING = 20
G_RUNNABLE = 21
G_TRN = 22
G_ERR = 23
G_MUTEX_HOLDER = 24
G_MUTEX_HEAD = 25
G_MUTEX_TAIL = 26
G_PREEMPTIONS = 27
G_HELPERS_RUN = 28
G_IPIS = 29
G_RUNS = 30  # merge units of the global purge (6.7 merges neighbouring lazy VAs)
G_MUTEX_SLEEPS = 31
G_SLICE = 32  # the scheduler's base slice, ns
G_NEXT_BALANCE = 33  # time of the next periodic load balance, ns
G_BAL_FAILED = 34  # balance attempts in a row that found an imbalance and moved nothing
G_BAL_ROUND = 35  # balance attempts so far
G_PAUSE_AT = 36  # event count at which the next PAUSE is returned
G_PAGES_ALLOC = 37  # data pages vmalloc allocated (guard pages excluded; page-table pages apart)
G_PAGES_FREED = 38  # data pages vfree freed
N_G = 39

# per worker and test counters (SUMM's last axis)
SU_PASSED = 0
SU_FAILED = 1
SU_NS = 2
SU_HITS = 3
SU_MISSES = 4
SU_ROTATIONS = 5
N_SU = 6

# timeline columns
TL_TIME = 0
TL_BUSY = 1
TL_LAZY = 2
TL_POOLED = 3
TL_FREE_BLOCKS = 4
TL_HIGH_WATER = 5
TL_PTE = 6
TL_PMD = 7
TL_LAG = 8
TL_DRAIN_RUNNING = 9
TL_POOLED_AREAS = 10
TL_RUNNABLE = 11
TL_SPINNING = 12
TL_LAZY_AREAS = 13
N_TL = 14
TIMELINE_COLUMNS = (
    "time_ns", "busy_pages", "lazy_pages", "pooled_pages", "free_blocks", "va_high_water_pages",
    "pte_pages", "pmd_pages", "drain_lag_ns", "drain_running", "pooled_areas", "runnable",
    "spinning", "lazy_areas",
)  # fmt: skip

# test ids (run_test_mask bits) and their constants (lib/test_vmalloc.c, 6.7/6.9)
FIX_SIZE, FULL_FIT, LONG_BUSY, RANDOM_SIZE, FIX_ALIGN, RANDOM_ALIGN, ALIGN_SHIFT = range(7)
GFP_ZERO_TESTS = tuple(t.bit for t in TESTS if t.gfp_zero)  # fix_align, random_size_align, align_shift
ZEROES = np.array([t.gfp_zero for t in TESTS], dtype=np.bool_)  # by test id: asks for __GFP_ZERO
LONG_BUSY_ARRAY_PAGES = -(-LONG_BUSY_AREAS * 8 // PAGE_SIZE)  # its array of pointers: 30 pages
FIX_ALIGN_PAGES = (THREAD_ALIGN << 1) // PAGE_SIZE  # 32 KiB: 8 pages

# --- program counters -------------------------------------------------------------------------
PC_NEXT = 0
PC_A_START = 10
PC_A_POOL_TRY = 11
PC_A_POOL_HELD = 12
PC_A_POOL_REL = 13
PC_A_SLABVA = 14
PC_A_FREE_TRY = 15
PC_A_FREE_HELD = 16
PC_A_FREE_REL = 17
PC_A_BUSY_TRY = 18
PC_A_BUSY_HELD = 19
PC_A_BUSY_REL = 20
PC_A_SETUP_TRY = 21
PC_A_SETUP_HELD = 22
PC_A_SETUP_REL = 23
PC_A_PAGES = 24
PC_A_DONE = 25
PC_A_FAILED = 26
PC_F_START = 30
PC_F_HELD = 31
PC_F_REL = 32
PC_F_LAZY_TRY = 33
PC_F_LAZY_HELD = 34
PC_F_LAZY_REL = 35
PC_OPEND = 40
PC_U_START = 50
PC_U_BEGIN = 51
PC_G_DETACH_TRY = 52
PC_G_DETACH_HELD = 53
PC_G_DETACH_REL = 54
PC_G_MERGE_TRY = 55
PC_G_MERGE_HELD = 56
PC_G_MERGE_NEXT = 57
PC_U_PASS_END = 58
PC_U_END = 59
PC_N_DECAY_SCAN = 60
PC_N_DECAY_HELD = 61
PC_N_DECAY_REL = 62
PC_N_DMERGE_TRY = 63
PC_N_DMERGE_HELD = 64
PC_N_DMERGE_REL = 65
PC_N_LAZY_CHECK = 66
PC_N_DETACH_HELD = 67
PC_N_DETACH_REL = 68
PC_N_NEXTNODE = 69
PC_N_FLUSH = 70
PC_N_PURGE_NODE = 71
PC_N_AREA = 72
PC_N_AREA_HELD = 73
PC_N_AREA_REL = 74
PC_N_RECLAIM = 75
PC_N_RECLAIM_HELD = 76
PC_N_RECLAIM_REL = 77
PC_N_NODE_DONE = 78
PC_N_WAIT_HELPERS = 79
PC_N_PURGE_DONE = 80
PC_N_AREA_LOCK = 81
PC_KW_START = 90
PC_KW_DONE = 91
PC_KW_YIELD = 92  # process_one_work's cond_resched() after the drain, while it still owns the work
PC_H_START = 95
PC_H_DONE = 96
PC_H_YIELD = 97  # the same cond_resched() after a helper's purge, before flush_work() sees it done

# merge units per event while the free lock is held without yielding: a step size of the simulation (the
# kernel merges the whole list then), not a kernel figure; the lazy threshold is looked at between steps
MERGE_BATCH = 64
# what _next_op returns when a worker's program is over, beside the operation codes OP_ALLOC / OP_FREE
OP_END = -1


def empty_threads(n: int) -> np.ndarray:
    """A thread table (TH) of ``n`` threads: every link NIL, no thread on a CPU yet."""
    TH = np.zeros((n, N_TH), np.int64)
    for col in (T_LNEXT, T_RQNEXT, T_SPINLOCK, T_SLOT):
        TH[:, col] = NIL
    return TH


def empty_cpus(n: int) -> np.ndarray:
    """A CPU table (CPU) of ``n`` idle CPUs with empty run queues."""
    CPU = np.zeros((n, N_CPU), np.int64)
    CPU[:, [CPU_CUR, CPU_RQHEAD, CPU_RQTAIL]] = NIL
    return CPU


# =============================================================================================
# The event heap: a 4-ary heap of at most one event per thread, ordered by (time, sequence number).


@njit(**NJIT_INLINE_OPTIONS)
def _h_before(HP, a, t, q):
    """Whether heap entry ``a`` comes before the key (t, q)."""
    return HP[a, 0] < t or (HP[a, 0] == t and HP[a, 1] < q)


@njit(**NJIT_INLINE_OPTIONS)
def _h_move(HP, POS, dst, src):
    HP[dst, 0] = HP[src, 0]
    HP[dst, 1] = HP[src, 1]
    HP[dst, 2] = HP[src, 2]
    POS[HP[dst, 2]] = dst


@njit(**NJIT_INLINE_OPTIONS)
def _h_up(HP, POS, i):
    """Move entry ``i`` up the 4-ary heap to its place (parents move down into the hole)."""
    t = HP[i, 0]
    q = HP[i, 1]
    x = HP[i, 2]
    while i > 0:
        p = (i - 1) >> 2
        if _h_before(HP, p, t, q):
            break
        _h_move(HP, POS, i, p)
        i = p
    HP[i, 0] = t
    HP[i, 1] = q
    HP[i, 2] = x
    POS[x] = i


@njit(**NJIT_INLINE_OPTIONS)
def _h_down(HP, POS, n, i):
    """Move entry ``i`` down the 4-ary heap of ``n`` entries to its place."""
    t = HP[i, 0]
    q = HP[i, 1]
    x = HP[i, 2]
    while True:
        c = 4 * i + 1
        if c >= n:
            break
        m = c
        for k in range(c + 1, min(c + 4, n)):
            if _h_before(HP, k, HP[m, 0], HP[m, 1]):
                m = k
        if not _h_before(HP, m, t, q):
            break
        _h_move(HP, POS, i, m)
        i = m
    HP[i, 0] = t
    HP[i, 1] = q
    HP[i, 2] = x
    POS[x] = i


@njit(**NJIT_INLINE_OPTIONS)
def _push(HP, POS, G, th, t):
    i = POS[th]
    if i != NIL:
        # th's own event, still at the root while it is processed: its key only grows
        HP[i, 0] = t
        HP[i, 1] = G[G_SEQ]
        G[G_SEQ] += 1
        _h_down(HP, POS, G[G_HN], i)
        return
    n = G[G_HN]
    HP[n, 0] = t
    HP[n, 1] = G[G_SEQ]
    HP[n, 2] = th
    G[G_SEQ] += 1
    POS[th] = n
    G[G_HN] = n + 1
    _h_up(HP, POS, n)


@njit(**NJIT_INLINE_OPTIONS)
def _pop(HP, POS, G):
    th = HP[0, 2]
    t = HP[0, 0]
    n = G[G_HN] - 1
    G[G_HN] = n
    POS[th] = NIL
    if n > 0:
        for k in range(3):
            HP[0, k] = HP[n, k]
        POS[HP[0, 2]] = 0
        _h_down(HP, POS, n, 0)
    return th, t


@njit(**NJIT_NO_NRT_OPTIONS)
def _delay(HP, POS, G, th, d):
    i = POS[th]
    HP[i, 0] += d
    _h_down(HP, POS, G[G_HN], i)


# =============================================================================================
# Scheduling: run queues, idle balance, wake-ups, preemption points.


@njit(**NJIT_NO_NRT_OPTIONS)
def _repay_lag(TH, CPU, cpu, ran, skip):
    """EEVDF: ``ran`` ns of CPU given to others lowers each queued thread's lead by ran / (runnable)."""
    if ran <= 0:
        return
    n = CPU[cpu, CPU_RQLEN] + 1
    x = CPU[cpu, CPU_RQHEAD]
    while x != NIL:
        if x != skip and TH[x, T_LAG] > 0:
            TH[x, T_LAG] -= ran // n
        x = TH[x, T_RQNEXT]


@njit(**NJIT_NO_NRT_OPTIONS)
def _eligible(TH, CPU, cpu):
    """The first queued thread on ``cpu`` that EEVDF may pick (lag <= 0) and the one before it."""
    prev = NIL
    x = CPU[cpu, CPU_RQHEAD]
    while x != NIL and TH[x, T_LAG] > 0:
        prev = x
        x = TH[x, T_RQNEXT]
    return x, prev


@njit(**NJIT_NO_NRT_OPTIONS)
def _preempt_point(TH, CPU, HP, POS, G, ACC, COST, EP, th, cpu, t):
    """cond_resched(): True if ``th`` yields ``cpu`` (it stays runnable, queued at the tail).

    It yields when its slice is over (or a high-priority work item waits) and an eligible thread is
    queued. What it ran past its slice becomes its lag, (n - 1) / n of the overrun with n runnable
    threads: it is picked again only when the others have had that much more CPU (EEVDF,
    kernel/sched/fair.c, 6.6+). A nice -20 kworker (drain_priority="high") never yields to nice-0
    threads: its vruntime moves 1024 / 88761 as fast, so its deadline stays the earliest."""
    if TH[th, T_HIGH] == 1:
        return False
    if CPU[cpu, CPU_RQLEN] == 0:
        if t >= TH[th, T_SLICE_END]:
            TH[th, T_SLICE_END] += EP[E_SLICE] * ((t - TH[th, T_SLICE_END]) // EP[E_SLICE] + 1)
        return False
    if CPU[cpu, CPU_PREEMPT] == 0 and t < TH[th, T_SLICE_END]:
        return False
    nxt, prev = _eligible(TH, CPU, cpu)
    if nxt == NIL:
        # only threads that ran ahead wait: th starts a new slice, and they catch up meanwhile
        _repay_lag(TH, CPU, cpu, t - TH[th, T_RUNSTART], th)
        TH[th, T_RUNSTART] = t
        TH[th, T_SLICE_END] = t + EP[E_SLICE]
        return False
    CPU[cpu, CPU_PREEMPT] = 0
    G[G_PREEMPTIONS] += 1
    over = t - TH[th, T_SLICE_END]
    if over > 0:
        n = CPU[cpu, CPU_RQLEN] + 1
        TH[th, T_LAG] = over * (n - 1) // n
    _rq_remove(TH, CPU, G, cpu, nxt, prev)
    _run_on(TH, CPU, HP, POS, G, ACC, COST, nxt, cpu, t)
    idle = _idle_cpu(CPU) if TH[th, T_KIND] == KIND_WORKER else NIL
    if idle != NIL:
        _run_on(TH, CPU, HP, POS, G, ACC, COST, th, idle, t)  # pulled by an idle CPU
    else:
        _enqueue(TH, CPU, HP, POS, G, ACC, COST, th, cpu, t, False)  # to the tail
    return True


@njit(**NJIT_INLINE_OPTIONS)
def _idle_cpu(CPU):
    """The lowest CPU that runs nothing, or NIL."""
    for c in range(CPU.shape[0]):
        if CPU[c, CPU_CUR] == NIL:
            return c
    return NIL


@njit(**NJIT_INLINE_OPTIONS)
def _run_on(TH, CPU, HP, POS, G, ACC, COST, th, cpu, t):
    """Give ``cpu`` to ``th`` at ``t``: a context switch, then ``th`` continues at its pc."""
    prev = CPU[cpu, CPU_CUR]
    if prev != NIL and prev != th:
        _repay_lag(TH, CPU, cpu, t - TH[prev, T_RUNSTART], prev)
    CPU[cpu, CPU_CUR] = th
    if TH[th, T_CPU] != cpu:
        TH[th, T_MIGR] += 1
        G[G_MIGR] += 1
    TH[th, T_CPU] = cpu
    TH[th, T_STATE] = ST_RUN
    # EEVDF: a thread that gets a CPU starts even (it was eligible, or placed on an empty queue, where
    # place_entity applies no lag); what it runs past its slice from here becomes its lag
    TH[th, T_LAG] = 0
    if TH[th, T_HIGH] == 1:
        CPU[cpu, CPU_PREEMPT] = 0  # the waiting high-priority work item is running now
    c = np.int64(COST[C_CTX])
    ACC[TH[th, T_CTX], S_SCHED] += c
    G[G_CTXSW] += 1
    TH[th, T_RUNSTART] = t + c
    TH[th, T_SLICE_END] = t + c + G[G_SLICE]
    _push(HP, POS, G, th, t + c)


@njit(**NJIT_INLINE_OPTIONS)
def _rq_remove(TH, CPU, G, cpu, th, prev):
    nxt = TH[th, T_RQNEXT]
    if prev == NIL:
        CPU[cpu, CPU_RQHEAD] = nxt
    else:
        TH[prev, T_RQNEXT] = nxt
    if CPU[cpu, CPU_RQTAIL] == th:
        CPU[cpu, CPU_RQTAIL] = prev
    TH[th, T_RQNEXT] = NIL
    CPU[cpu, CPU_RQLEN] -= 1
    G[G_RUNNABLE] -= 1


@njit(**NJIT_NO_NRT_OPTIONS)
def _cpu_next(TH, CPU, HP, POS, G, ACC, COST, cpu, t):
    """``cpu`` lost its thread: run the head of its queue, else steal from the longest queue."""
    th, prev = _eligible(TH, CPU, cpu)
    if th == NIL and CPU[cpu, CPU_RQHEAD] != NIL:
        # only threads that ran ahead are queued: the average is theirs, the head may run
        th = CPU[cpu, CPU_RQHEAD]
        prev = NIL
        TH[th, T_LAG] = 0
    if th != NIL:
        _rq_remove(TH, CPU, G, cpu, th, prev)
        _run_on(TH, CPU, HP, POS, G, ACC, COST, th, cpu, t)
        return
    ncpu = CPU.shape[0]
    best = NIL
    for c in range(ncpu):
        if CPU[c, CPU_RQLEN] > 0 and (best == NIL or CPU[c, CPU_RQLEN] > CPU[best, CPU_RQLEN]):
            # only a queue holding a thread that may migrate (workers; kworkers are CPU-bound)
            if _queued_worker(TH, CPU, c)[0] != NIL:
                best = c
    if best != NIL:
        x, prev = _queued_worker(TH, CPU, best)
        _rq_remove(TH, CPU, G, best, x, prev)
        _run_on(TH, CPU, HP, POS, G, ACC, COST, x, cpu, t)
        return
    CPU[cpu, CPU_CUR] = NIL


@njit(**NJIT_NO_NRT_OPTIONS)
def _balance(TH, CPU, HP, POS, G, ACC, COST, t):
    """Periodic load balance of busy CPUs (one attempt per interval stands for every CPU's).

    The CPU with the most runnable threads, if one of them is a worker, is busier than the one with
    the fewest: a queued worker moves there at once when they differ by two or more; when they differ
    by one, only once four attempts in a row have found that (nr_balance_failed past
    cache_nice_tries 1 + 2, need_active_balance in kernel/sched/fair.c, 6.6+), at the first attempt
    that finds a worker queued. Ties go to the first CPU counting from a start that advances by one
    each attempt (the CPUs' balance timers are staggered: which one acts first varies)."""
    ncpu = CPU.shape[0]
    start = G[G_BAL_ROUND] % ncpu
    G[G_BAL_ROUND] += 1
    hi = NIL
    lo = NIL
    nhi = 0
    nlo = 0
    for k in range(ncpu):
        c = (start + k) % ncpu
        n = CPU[c, CPU_RQLEN] + (0 if CPU[c, CPU_CUR] == NIL else 1)
        if lo == NIL or n < nlo:
            lo = c
            nlo = n
        cur = CPU[c, CPU_CUR]
        worker = (cur != NIL and TH[cur, T_KIND] == KIND_WORKER) or _queued_worker(TH, CPU, c)[0] != NIL
        if n > nhi and worker:
            hi = c
            nhi = n
    if hi == NIL or nhi - nlo < 1:
        G[G_BAL_FAILED] = 0
        return
    if nhi - nlo < 2:
        G[G_BAL_FAILED] += 1
        if G[G_BAL_FAILED] < 4:
            return
    x, prev = _queued_worker(TH, CPU, hi)
    if x == NIL:
        return  # the worker runs: it moves when it next waits in the queue
    G[G_BAL_FAILED] = 0
    _rq_remove(TH, CPU, G, hi, x, prev)
    TH[x, T_MIGR] += 1
    G[G_MIGR] += 1
    TH[x, T_CPU] = lo
    TH[x, T_LAG] = 0
    _enqueue(TH, CPU, HP, POS, G, ACC, COST, x, lo, t, False)


@njit(**NJIT_INLINE_OPTIONS)
def _queued_worker(TH, CPU, c):
    """The first worker in CPU ``c``'s run queue and the thread queued before it (NIL if none)."""
    prev = NIL
    x = CPU[c, CPU_RQHEAD]
    while x != NIL and TH[x, T_KIND] != KIND_WORKER:
        prev = x
        x = TH[x, T_RQNEXT]
    return x, prev


@njit(**NJIT_NO_NRT_OPTIONS)
def _enqueue(TH, CPU, HP, POS, G, ACC, COST, th, cpu, t, head):
    """Make ``th`` runnable on ``cpu`` (at the head of the queue if ``head``)."""
    TH[th, T_CPU] = cpu if TH[th, T_KIND] != KIND_WORKER else TH[th, T_CPU]
    if CPU[cpu, CPU_CUR] == NIL:
        _run_on(TH, CPU, HP, POS, G, ACC, COST, th, cpu, t)
        return
    TH[th, T_STATE] = ST_RUNNABLE
    TH[th, T_RQNEXT] = NIL
    if head:
        TH[th, T_RQNEXT] = CPU[cpu, CPU_RQHEAD]
        CPU[cpu, CPU_RQHEAD] = th
        if CPU[cpu, CPU_RQTAIL] == NIL:
            CPU[cpu, CPU_RQTAIL] = th
        CPU[cpu, CPU_PREEMPT] = 1
    else:
        if CPU[cpu, CPU_RQTAIL] == NIL:
            CPU[cpu, CPU_RQHEAD] = th
        else:
            TH[CPU[cpu, CPU_RQTAIL], T_RQNEXT] = th
        CPU[cpu, CPU_RQTAIL] = th
    CPU[cpu, CPU_RQLEN] += 1
    G[G_RUNNABLE] += 1
    if TH[th, T_KIND] == KIND_WORKER:
        TH[th, T_CPU] = cpu


@njit(**NJIT_NO_NRT_OPTIONS)
def _wake_worker(TH, CPU, HP, POS, G, ACC, COST, th, t):
    """Wake a sleeping worker: its last CPU if idle, else the lowest idle CPU, else its last CPU's queue."""
    cpu = TH[th, T_CPU]
    if CPU[cpu, CPU_CUR] != NIL:
        idle = _idle_cpu(CPU)
        if idle != NIL:
            cpu = idle
    _enqueue(TH, CPU, HP, POS, G, ACC, COST, th, cpu, t, False)


@njit(**NJIT_NO_NRT_OPTIONS)
def _wake(TH, CPU, HP, POS, G, ACC, COST, th, t):
    if TH[th, T_KIND] == KIND_WORKER:
        _wake_worker(TH, CPU, HP, POS, G, ACC, COST, th, t)
    else:
        _enqueue(TH, CPU, HP, POS, G, ACC, COST, th, TH[th, T_CPU], t, TH[th, T_HIGH] == 1)


@njit(**NJIT_NO_NRT_OPTIONS)
def _sleep(TH, CPU, HP, POS, G, ACC, COST, th, t):
    """``th`` blocks (mutex, flush_work, idle kworker): its CPU takes another thread.

    What it ran past its slice joins its lag, (n - 1) / n of the overrun with n runnable threads, and
    EEVDF keeps a sleeper's lag up to two slices (update_entity_lag, kernel/sched/fair.c, 6.6+): a
    woken thread waits at the queue's tail and is picked when the others have repaid it. A nice -20
    kworker's lead is 1024 / 88761 of that (its vruntime moves that much slower): none."""
    TH[th, T_STATE] = ST_SLEEP
    lag = TH[th, T_LAG]
    over = t - TH[th, T_SLICE_END]
    if TH[th, T_HIGH] == 1:
        lag = 0
    elif over > 0:
        n = CPU[TH[th, T_CPU], CPU_RQLEN] + 1
        lag += over * (n - 1) // n
    TH[th, T_LAG] = min(max(lag, np.int64(0)), 2 * G[G_SLICE])
    _cpu_next(TH, CPU, HP, POS, G, ACC, COST, TH[th, T_CPU], t)


@njit(**NJIT_NO_NRT_OPTIONS)
def _queue_work(TH, CPU, HP, POS, G, ACC, COST, EP, th, cpu, t):
    """schedule_work(_on): the work item's kworker becomes runnable on ``cpu`` (CPU-bound pool)."""
    TH[th, T_CPU] = cpu
    TH[th, T_HIGH] = EP[E_HIGH_PRIO]
    _enqueue(TH, CPU, HP, POS, G, ACC, COST, th, cpu, t, EP[E_HIGH_PRIO] == 1)


# =============================================================================================
# Spinlocks (FIFO, handoff after one cache-line transfer) and the purge mutex.


@njit(**NJIT_INLINE_OPTIONS)
def _lock(TH, LK, G, ACC, COST, th, lk, t, site):
    """Try to take spinlock ``lk``: the time it is held from, or -1 if ``th`` now spins in its queue."""
    cpu = TH[th, T_CPU]
    if LK[lk, L_HOLDER] == NIL:
        LK[lk, L_HOLDER] = th
        c = COST[C_LOCK]
        last = LK[lk, L_LASTCPU]
        if last != NIL and last != cpu:
            c += COST[C_LINE]
        LK[lk, L_LASTCPU] = cpu
        ci = np.int64(c)
        ACC[TH[th, T_CTX], site] += ci
        return t + ci
    TH[th, T_LNEXT] = NIL
    if LK[lk, L_TAIL] == NIL:
        LK[lk, L_HEAD] = th
    else:
        TH[LK[lk, L_TAIL], T_LNEXT] = th
    LK[lk, L_TAIL] = th
    TH[th, T_SPINSTART] = t
    TH[th, T_SPINLOCK] = lk
    TH[th, T_SPINSITE] = site + 1
    G[G_SPINNING] += 1
    return np.int64(-1)


@njit(**NJIT_INLINE_OPTIONS)
def _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, lk, t):
    """Release ``lk``: the head waiter gets it one cache-line transfer later (after its interrupt)."""
    w = LK[lk, L_HEAD]
    if w == NIL:
        LK[lk, L_HOLDER] = NIL
        LK[lk, L_LASTCPU] = TH[th, T_CPU]
        return
    LK[lk, L_HEAD] = TH[w, T_LNEXT]
    if LK[lk, L_HEAD] == NIL:
        LK[lk, L_TAIL] = NIL
    TH[w, T_LNEXT] = NIL
    LK[lk, L_HOLDER] = w
    wc = TH[w, T_CPU]
    tg = t + np.int64(COST[C_LINE])
    if CPU[wc, CPU_IRQ] > tg:
        tg = CPU[wc, CPU_IRQ]
    spin = tg - TH[w, T_SPINSTART]
    ACC[TH[w, T_CTX], TH[w, T_SPINSITE]] += spin
    SPINK[LK[lk, L_KIND]] += spin
    LK[lk, L_LASTCPU] = wc
    TH[w, T_SPINLOCK] = NIL
    G[G_SPINNING] -= 1
    _push(HP, POS, G, w, tg)


@njit(**NJIT_NO_NRT_OPTIONS)
def _mutex_lock(TH, CPU, HP, POS, G, ACC, COST, th, t):
    """mutex_lock(&vmap_purge_lock): True if taken now, else ``th`` sleeps in the FIFO of waiters."""
    ACC[TH[th, T_CTX], S_MUTEX] += np.int64(COST[C_LOCK])
    if G[G_MUTEX_HOLDER] == NIL:
        G[G_MUTEX_HOLDER] = th
        return True
    TH[th, T_LNEXT] = NIL
    if G[G_MUTEX_TAIL] == NIL:
        G[G_MUTEX_HEAD] = th
    else:
        TH[G[G_MUTEX_TAIL], T_LNEXT] = th
    G[G_MUTEX_TAIL] = th
    G[G_MUTEX_SLEEPS] += 1
    _sleep(TH, CPU, HP, POS, G, ACC, COST, th, t)
    return False


@njit(**NJIT_NO_NRT_OPTIONS)
def _mutex_unlock(TH, CPU, HP, POS, G, ACC, COST, t):
    w = G[G_MUTEX_HEAD]
    if w == NIL:
        G[G_MUTEX_HOLDER] = NIL
        return
    G[G_MUTEX_HEAD] = TH[w, T_LNEXT]
    if G[G_MUTEX_HEAD] == NIL:
        G[G_MUTEX_TAIL] = NIL
    TH[w, T_LNEXT] = NIL
    G[G_MUTEX_HOLDER] = w
    _wake(TH, CPU, HP, POS, G, ACC, COST, w, t)


# =============================================================================================
# Small pieces of the allocator on the shared arrays.


@njit(**NJIT_INLINE_OPTIONS)
def _addr_node(P, start):
    return ((P[P_BASE] + start) // P[P_ZONE]) % P[P_NR_NODES]


@njit(**NJIT_INLINE_OPTIONS)
def _tree_ns(COST, n):
    return np.int64(COST[C_TBASE] + COST[C_TLEVEL] * np.log2(n + 1.0))


@njit(**NJIT_INLINE_OPTIONS)
def _merge_batch(COST, n, k):
    """ns for ``k`` areas merged back to back into a free tree of ``n`` blocks under one lock hold
    (merge_or_add_vmap_area_augment each): ``k`` x (tree_base_ns + merge_ns) and tree_level_ns per
    cache line the k descents miss. They run on one CPU, so a node the batch has read stays cached:
    the first descent misses all log2(n + 1) levels, each later one only the ~log2(n / k + 1) levels
    below the top log2(k), which the k paths share (keys spread evenly). k = 1 is tree_ns(n) + merge_ns."""
    if k <= 0:
        return np.int64(0)
    lv = np.log2(n + 1.0) + (k - 1) * np.log2(n / k + 1.0)
    return np.int64(k * (COST[C_TBASE] + COST[C_MERGE]) + COST[C_TLEVEL] * lv)


@njit(**NJIT_INLINE_OPTIONS)
def _busy_lock(EP, P, start):
    """The lock protecting the busy VA that starts at ``start``: vmap_area_lock or its node's busy.lock."""
    if EP[E_NODES_DESIGN] == 0:
        return np.int64(1)
    return 3 + _addr_node(P, start)


# PQ room needed for a detach: the list, three scratch lists of its length and the digit counts
PQ_SCRATCH = K.RADIX


@njit(**NJIT_NO_NRT_OPTIONS)
def _detach_sorted(S, LZ, PQ, G, node):
    """Move the lazy list of ``node`` to PQ[fill:fill + n] in address order; returns (first, n).

    PQ[fill + n:fill + 4n + PQ_SCRATCH] is scratch for the sort (the engine keeps PQ that long).
    """
    n = LZ[node, LZ_COUNT]
    first = G[G_PQFILL]
    s = LZ[node, LZ_HEAD]
    for i in range(n):
        PQ[first + i] = s
        PQ[first + n + i] = S[s, S_START]
        s = S[s, S_NEXT]
    b = first + n
    K.sort_pairs(PQ[b : b + n], PQ[first:b], PQ[b + n : b + 2 * n], PQ[b + 2 * n : b + 3 * n],
                PQ[b + 3 * n : b + 3 * n + PQ_SCRATCH], n)  # fmt: skip
    LZ[node, LZ_HEAD] = NIL
    LZ[node, LZ_COUNT] = 0
    G[G_PQFILL] = first + n
    return first, n


# how many list entries ahead a walk over detached lazy VAs asks for their rows of S
PREFETCH_AHEAD = 8


@njit(**NJIT_INLINE_OPTIONS)
def _prefetch_listed(S, PQ, i, end):
    """Ask the CPU for the row of S of the slot at PQ[i] (nothing if i >= end or the entry is NIL).

    A hint only (no effect on results): the walks over a purge's detached VAs read each VA's row,
    a cache miss per VA when the list is long."""
    if i < end:
        x = PQ[i]
        if x >= 0:
            K._prefetch(S, x)


@njit(**NJIT_INLINE_OPTIONS)
def _prefetch_held(S, WH, w, h):
    """Ask the CPU for the row of S of worker ``w``'s area ``h`` (nothing if out of range).

    A hint only (no effect on results): full_fit_alloc_test and long_busy_list_alloc_test free
    their areas in index order, long after they were allocated, so each vfree's first read of its
    slot was a cache miss; asked for one and two frees ahead, the row is there when it comes."""
    if h < WH.shape[1]:
        x = WH[w, h]
        if 0 <= x < S.shape[0]:
            K._prefetch(S, x)


@njit(**NJIT_INLINE_OPTIONS)
def _purge_to_free(C, T, S, s):
    """A purged lazy VA goes back to free space (``lazy_pages`` drops by its size)."""
    C[LAZY_PAGES] -= S[s, S_SIZE]
    C[LAZY_AREAS] -= 1
    K._slot_to_free_space(C, T, S, s)


@njit(**NJIT_NO_NRT_OPTIONS)
def _flush_tlb(TH, CPU, HP, POS, G, ACC, COST, EP, C, th, t):
    """flush_tlb_kernel_range as a full flush: IPIs to every other CPU; returns the sender's cost.

    The sender waits for every CPU's answer: on a virtual machine a vCPU the host is not running
    answers late, which the knobs flush_stall_every / flush_stall_ns add to every n-th flush."""
    me = TH[th, T_CPU]
    irq = np.int64(COST[C_IPIIRQ])
    for c in range(CPU.shape[0]):
        if c == me:
            continue
        G[G_IPIS] += 1
        ACC[CTX_IRQ, S_IRQ] += irq
        cur = CPU[c, CPU_CUR]
        if cur != NIL and POS[cur] != NIL:
            _delay(HP, POS, G, cur, irq)  # the running step (maybe a lock hold) takes longer
        else:
            start = CPU[c, CPU_IRQ] if CPU[c, CPU_IRQ] > t else t
            CPU[c, CPU_IRQ] = start + irq  # a spinner gets a handed-over lock only after it
    d = np.int64(COST[C_FLUSH] + COST[C_IPI] * (CPU.shape[0] - 1))
    if EP[E_STALL_EVERY] > 0 and C[TLB_FLUSHES] % EP[E_STALL_EVERY] == 0:
        d += EP[E_STALL_NS]
    ACC[TH[th, T_CTX], S_FLUSH] += d
    return d


# =============================================================================================
# test_vmalloc's tests as a state machine (mirrors vmaplab.sim.workloads.worker_program).


@njit(**NJIT_INLINE_OPTIONS)
def _align_pages(shift):
    return np.int64(1) if shift <= 12 else np.int64(1) << (shift - 12)


@njit(**NJIT_INLINE_OPTIONS)
def _set_alloc(TH, w, pages, align, hidx):
    TH[w, T_PAGES] = pages
    TH[w, T_ALIGN] = align
    TH[w, T_HIDX] = hidx
    return OP_ALLOC


@njit(**NJIT_INLINE_OPTIONS)
def _set_free(TH, w, hidx):
    TH[w, T_HIDX] = hidx
    return OP_FREE


@njit(**NJIT_INLINE_OPTIONS)
def _next_op(TH, EP, ORD, RSZ, RSA, SUMM, w, t):
    """Advance worker ``w``'s program: OP_ALLOC / OP_FREE with T_PAGES, T_ALIGN, T_HIDX set, or OP_END."""
    loops = EP[E_LOOPS]
    junk = EP[E_JUNK]
    while True:
        pos = TH[w, T_TESTPOS]
        if pos >= EP[E_NSEL]:
            return OP_END
        test = ORD[w, pos]
        if TH[w, T_PHASE] < 0:  # a repetition starts
            TH[w, T_TEST] = test
            TH[w, T_CTX] = test
            TH[w, T_TSTART] = t
            TH[w, T_PHASE] = 0
            TH[w, T_I] = 0
            TH[w, T_J] = 0
            TH[w, T_FAILED] = 0
            TH[w, T_ROW] = 0
        ph = TH[w, T_PHASE]
        i = TH[w, T_I]
        j = TH[w, T_J]
        end = TH[w, T_FAILED] == 1
        base = TH[w, T_REP] * loops
        if not end:
            if test == FIX_SIZE:
                if i == loops:
                    end = True
                elif j == 0:
                    TH[w, T_J] = 1
                    return _set_alloc(TH, w, EP[E_NR_PAGES], 1, 0)
                else:
                    TH[w, T_J] = 0
                    TH[w, T_I] = i + 1
                    return _set_free(TH, w, 0)
            elif test == FULL_FIT:
                scratch = 2 + 2 * junk
                arr = -(-junk * 8 // PAGE_SIZE)  # full_fit_alloc_test's two arrays of junk_length pointers
                if ph == 0:
                    TH[w, T_PHASE] = 1
                    return _set_alloc(TH, w, arr, 1, 0)
                if ph == 1:
                    TH[w, T_PHASE] = 2
                    return _set_alloc(TH, w, arr, 1, 1)
                if ph == 2:
                    if i < junk:
                        if j == 0:
                            TH[w, T_J] = 1
                            return _set_alloc(TH, w, 1, 1, 2 + 2 * i)
                        TH[w, T_J] = 0
                        TH[w, T_I] = i + 1
                        return _set_alloc(TH, w, 1, 1, 3 + 2 * i)
                    TH[w, T_PHASE] = 3
                    TH[w, T_I] = 0
                    continue
                if ph == 3:
                    if i < junk:
                        TH[w, T_I] = i + 1
                        return _set_free(TH, w, 3 + 2 * i)
                    TH[w, T_PHASE] = 4
                    TH[w, T_I] = 0
                    continue
                if ph == 4:
                    if i < loops:
                        if j == 0:
                            TH[w, T_J] = 1
                            return _set_alloc(TH, w, 1, 1, scratch)
                        TH[w, T_J] = 0
                        TH[w, T_I] = i + 1
                        return _set_free(TH, w, scratch)
                    TH[w, T_PHASE] = 5
                    TH[w, T_I] = 0
                    continue
                if ph == 5:
                    if i < junk:
                        TH[w, T_I] = i + 1
                        return _set_free(TH, w, 2 + 2 * i)
                    TH[w, T_PHASE] = 6
                    continue
                if ph == 6:
                    TH[w, T_PHASE] = 7
                    return _set_free(TH, w, 0)
                if ph == 7:
                    TH[w, T_PHASE] = 8
                    return _set_free(TH, w, 1)
                end = True
            elif test == LONG_BUSY:
                if ph == 0:
                    TH[w, T_PHASE] = 1
                    return _set_alloc(TH, w, LONG_BUSY_ARRAY_PAGES, 1, 0)
                if ph == 1:
                    if i < LONG_BUSY_AREAS:
                        TH[w, T_I] = i + 1
                        return _set_alloc(TH, w, 1, 1, 1 + i)
                    TH[w, T_PHASE] = 2
                    TH[w, T_I] = 0
                    continue
                if ph == 2:
                    if i < loops:
                        TH[w, T_J] = (j + 1) % 4
                        if j == 0:
                            return _set_alloc(TH, w, 100, 1, LONG_BUSY_AREAS + 1)
                        if j == 1:
                            return _set_alloc(TH, w, 1, 1, LONG_BUSY_AREAS + 2)
                        if j == 2:
                            return _set_free(TH, w, LONG_BUSY_AREAS + 1)
                        TH[w, T_I] = i + 1
                        return _set_free(TH, w, LONG_BUSY_AREAS + 2)
                    TH[w, T_PHASE] = 3
                    TH[w, T_I] = 0
                    continue
                if ph == 3:
                    if i < LONG_BUSY_AREAS:
                        TH[w, T_I] = i + 1
                        return _set_free(TH, w, 1 + i)
                    TH[w, T_PHASE] = 4
                    continue
                if ph == 4:
                    TH[w, T_PHASE] = 5
                    return _set_free(TH, w, 0)
                end = True
            elif test == RANDOM_SIZE or test == FIX_ALIGN or test == RANDOM_ALIGN:
                if i == loops:
                    end = True
                elif j == 0:
                    TH[w, T_J] = 1
                    if test == RANDOM_SIZE:
                        return _set_alloc(TH, w, np.int64(RSZ[w, base + i]), 1, 0)
                    if test == FIX_ALIGN:
                        return _set_alloc(TH, w, 5, FIX_ALIGN_PAGES, 0)
                    r = np.int64(RSA[w, base + i])
                    return _set_alloc(TH, w, r % 10 + 1, _align_pages(r % 23), 0)
                else:
                    TH[w, T_J] = 0
                    TH[w, T_I] = i + 1
                    return _set_free(TH, w, 0)
            else:  # ALIGN_SHIFT: 1 << 0 ... 1 << 62 (from 45 on fails in a 4-level window: workloads.py)
                if i == 63:
                    end = True
                elif j == 0:
                    TH[w, T_J] = 1
                    return _set_alloc(TH, w, 1, _align_pages(i), 0)
                else:
                    TH[w, T_J] = 0
                    TH[w, T_I] = i + 1
                    return _set_free(TH, w, 0)
        # the repetition is over
        if TH[w, T_FAILED] == 1:
            SUMM[w, test, SU_FAILED] += 1
        else:
            SUMM[w, test, SU_PASSED] += 1
        SUMM[w, test, SU_NS] += t - TH[w, T_TSTART]
        TH[w, T_PHASE] = -1
        TH[w, T_REP] += 1
        if TH[w, T_REP] == EP[E_REPEAT]:
            TH[w, T_REP] = 0
            TH[w, T_TESTPOS] = pos + 1


@njit(**NJIT_NO_NRT_OPTIONS)
def _sample(C, G, TL, t):
    r = G[G_TLN]
    TL[r, TL_TIME] = t
    TL[r, TL_BUSY] = C[BUSY_PAGES]
    TL[r, TL_LAZY] = C[LAZY_PAGES]
    TL[r, TL_POOLED] = C[K.POOLED_PAGES]
    TL[r, TL_FREE_BLOCKS] = C[K.FREE_BLOCKS]
    TL[r, TL_HIGH_WATER] = C[K.HIGH_WATER]
    TL[r, TL_PTE] = C[K.PTE_PAGES]
    TL[r, TL_PMD] = C[K.PMD_PAGES]
    waiting = G[G_DRAIN_QUEUED] == 1 or G[G_DRAIN_REQUEUE] == 1
    TL[r, TL_LAG] = (t - G[G_DRAIN_QTIME]) if waiting else 0
    TL[r, TL_DRAIN_RUNNING] = G[G_DRAIN_RUNNING]
    TL[r, TL_POOLED_AREAS] = C[K.POOLED_AREAS]
    TL[r, TL_RUNNABLE] = G[G_RUNNABLE]
    TL[r, TL_SPINNING] = G[G_SPINNING]
    TL[r, TL_LAZY_AREAS] = C[LAZY_AREAS]
    G[G_TLN] = r + 1


@njit(**NJIT_NO_NRT_OPTIONS)
def run_engine(
    EP, COST, C, P, decay, S, T, PL, LZ, H, TOP, MID, LOW,
    TH, CPU, LK, HP, POS, G, ACC, SPINK, WH, WHR, ORD, RSZ, RSA, SUMM, PQ, NQ, MARKED, BN, TR, TL,
):  # fmt: skip
    """Process events until every thread is idle; returns DONE, a NEED_* status, PAUSE or an ERR_* status.

    Before an event is taken the arrays are checked for room for it; on a NEED_* status nothing of
    that event has happened, so the caller grows the array and calls again.
    """
    sample = EP[E_SAMPLE]
    nodes = EP[E_NODES_DESIGN] == 1
    nr = EP[E_NR]
    lazy_max = P[P_LAZY_MAX]
    W = EP[E_WORKERS]
    now = G[G_LAST_END]  # the last event's time (a drain may outlast the last worker)
    # the largest VA one event can allocate: random_size_alloc_test's 100 pages, full_fit_alloc_test's
    # arrays of junk_length pointers, or fix_size_alloc_test's nr_pages
    largest = max(100, -(-EP[E_JUNK] * 8 // PAGE_SIZE), LONG_BUSY_ARRAY_PAGES, EP[E_NR_PAGES])
    # the engine finds busy VAs by slot (WH), never by address: it leaves the busy-VA table stale, as
    # the allocator's run_ops does, and free_one rebuilds it when it is next needed (every insert
    # and delete was a cache miss in a table of millions of rows)
    C[K.HASH_VALID] = 0
    while G[G_HN] > 0:
        st = K._capacity(C, S, H, MID, LOW, largest)
        if st != K.OK:
            return st
        if PQ.shape[0] < 4 * (C[LAZY_AREAS] + 1) + PQ_SCRATCH:
            return NEED_PQ
        if EP[E_TRACE] == 1 and G[G_TRN] >= TR.shape[0]:
            return NEED_TRACE
        if EP[E_PAUSE] > 0 and G[G_EVENTS] >= G[G_PAUSE_AT]:
            G[G_PAUSE_AT] = G[G_EVENTS] + EP[E_PAUSE]
            return PAUSE
        t = HP[0, 0]
        now = t
        while G[G_NEXT_SAMPLE] <= t:
            if G[G_TLN] >= TL.shape[0]:
                return NEED_TL
            _sample(C, G, TL, G[G_NEXT_SAMPLE])
            G[G_NEXT_SAMPLE] += sample
        while G[G_NEXT_BALANCE] <= t:
            _balance(TH, CPU, HP, POS, G, ACC, COST, t)
            G[G_NEXT_BALANCE] += EP[E_BALANCE]
        # the event stays at the root while it is processed: a step that schedules the thread's next
        # event re-keys it in place (one sift-down instead of a pop and a push)
        th = HP[0, 2]
        seq = HP[0, 1]
        G[G_EVENTS] += 1
        # Thread th's steps at time t, until it waits (an event, a lock queue, sleep) or ends.
        while True:
            pc = TH[th, T_PC]
            ctx = TH[th, T_CTX]
            cpu = TH[th, T_CPU]
            # ---------------------------------------------------------------- worker: next operation
            if pc == PC_NEXT:
                op = _next_op(TH, EP, ORD, RSZ, RSA, SUMM, th, t)
                if op == OP_END:
                    TH[th, T_STATE] = ST_DONE
                    TH[th, T_DONE_AT] = t
                    G[G_WORKERS_LEFT] -= 1
                    if t > G[G_LAST_END]:
                        G[G_LAST_END] = t
                    _cpu_next(TH, CPU, HP, POS, G, ACC, COST, cpu, t)
                    break
                if EP[E_TRACE] == 1:
                    r = G[G_TRN]
                    TR[r, 0] = th
                    TR[r, 1] = TH[th, T_TEST]
                    TR[r, 2] = op
                    if op == OP_ALLOC:
                        TR[r, 3] = TH[th, T_PAGES]
                        TR[r, 4] = TH[th, T_ALIGN]
                        WHR[th, TH[th, T_HIDX]] = TH[th, T_ROW]
                    else:
                        TR[r, 3] = WHR[th, TH[th, T_HIDX]]
                        TR[r, 4] = 0
                    TR[r, 5] = cpu
                    TR[r, 6] = NIL
                    TH[th, T_TRI] = r
                    G[G_TRN] = r + 1
                    TH[th, T_ROW] += 1
                TH[th, T_PC] = PC_A_START if op == OP_ALLOC else PC_F_START
                continue
            # ---------------------------------------------------------------- vmalloc
            if pc == PC_A_START:
                TH[th, T_RETRIED] = 0
                d = np.int64(COST[C_SLAB])  # the vm_struct (kzalloc in __get_vm_area_node)
                ACC[ctx, S_SLAB_VM] += d
                size = TH[th, T_PAGES] + 1
                node = cpu % nr
                TH[th, T_NODE] = node
                if nodes and nr > 1 and size <= POOL_CLASSES and PL[node * POOL_CLASSES + size - 1, PL_LEN] > 0:
                    TH[th, T_PC] = PC_A_POOL_TRY
                else:
                    if nodes and nr > 1 and size <= POOL_CLASSES:
                        C[POOL_MISSES] += 1  # the unlocked emptiness check
                        SUMM[th, TH[th, T_TEST], SU_MISSES] += 1
                    TH[th, T_PC] = PC_A_SLABVA
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_A_POOL_TRY:
                TH[th, T_PC] = PC_A_POOL_HELD
                tt = _lock(TH, LK, G, ACC, COST, th, 3 + 2 * nr + TH[th, T_NODE], t, S_POOL)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_A_POOL_HELD:
                node = TH[th, T_NODE]
                size = TH[th, T_PAGES] + 1
                pi = node * POOL_CLASSES + size - 1
                h = PL[pi, PL_HEAD]
                TH[th, T_AUX] = 0
                if h == NIL:
                    C[POOL_MISSES] += 1
                    SUMM[th, TH[th, T_TEST], SU_MISSES] += 1
                elif ((P[P_BASE] + S[h, S_START]) & (TH[th, T_ALIGN] - 1)) == 0:
                    TH[th, T_SLOT] = K._pool_pop_head(C, S, PL, pi)
                    C[POOL_HITS] += 1
                    SUMM[th, TH[th, T_TEST], SU_HITS] += 1
                    TH[th, T_AUX] = 1
                else:
                    if PL[pi, PL_LEN] > 1:
                        K._pool_rotate(S, PL, pi)
                    C[POOL_MISSES] += 1
                    C[POOL_ROTATIONS] += 1
                    SUMM[th, TH[th, T_TEST], SU_MISSES] += 1
                    SUMM[th, TH[th, T_TEST], SU_ROTATIONS] += 1
                d = np.int64(COST[C_POOL])
                ACC[ctx, S_POOL + 2] += d
                TH[th, T_PC] = PC_A_POOL_REL
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_A_POOL_REL:
                _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, 3 + 2 * nr + TH[th, T_NODE], t)
                TH[th, T_PC] = PC_A_BUSY_TRY if TH[th, T_AUX] == 1 else PC_A_SLABVA
                continue
            if pc == PC_A_SLABVA:
                d = np.int64(COST[C_SLAB])  # the vmap_area object
                ACC[ctx, S_SLAB_VA] += d
                TH[th, T_PC] = PC_A_FREE_TRY
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_A_FREE_TRY:
                TH[th, T_PC] = PC_A_FREE_HELD
                tt = _lock(TH, LK, G, ACC, COST, th, 0, t, S_FREE)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_A_FREE_HELD:
                d = _tree_ns(COST, C[K.FREE_BLOCKS])
                size = TH[th, T_PAGES] + 1
                off = K._place(C, P, T, size, TH[th, T_ALIGN])
                if off == NIL:
                    TH[th, T_SLOT] = NIL
                else:
                    s = K._slot_new(C, S)
                    S[s, S_START] = off
                    S[s, S_SIZE] = size
                    TH[th, T_SLOT] = s
                ACC[ctx, S_FREE + 2] += d
                TH[th, T_PC] = PC_A_FREE_REL
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_A_FREE_REL:
                _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, 0, t)
                if TH[th, T_SLOT] != NIL:
                    TH[th, T_PC] = PC_A_BUSY_TRY
                elif TH[th, T_RETRIED] == 0:
                    # overflow: purge_vmap_area_lazy / reclaim_and_purge_vmap_areas, then retry once
                    TH[th, T_RETRIED] = 1
                    TH[th, T_FULL] = 1 if nodes else 0
                    TH[th, T_RET] = PC_A_FREE_TRY
                    TH[th, T_PC] = PC_U_START
                else:
                    TH[th, T_PC] = PC_A_FAILED
                continue
            if pc == PC_A_BUSY_TRY:
                s = TH[th, T_SLOT]
                TH[th, T_PC] = PC_A_BUSY_HELD
                tt = _lock(TH, LK, G, ACC, COST, th, _busy_lock(EP, P, S[s, S_START]), t, S_BUSY)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_A_BUSY_HELD:
                s = TH[th, T_SLOT]
                bn = _addr_node(P, S[s, S_START]) if nodes else 0
                d = _tree_ns(COST, BN[bn])
                BN[bn] += 1
                S[s, S_STATE] = BUSY
                S[s, S_NODE] = (cpu % nr) if (nodes and nr > 1) else NIL
                S[s, S_ALIGN] = TH[th, T_ALIGN]
                if EP[E_TRACE] == 1:
                    TR[TH[th, T_TRI], 6] = S[s, S_NODE]
                C[BUSY_PAGES] += S[s, S_SIZE]
                C[BUSY_AREAS] += 1
                C[K.ALLOCS] += 1
                ACC[ctx, S_BUSY + 2] += d
                TH[th, T_PC] = PC_A_BUSY_REL
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_A_BUSY_REL:
                s = TH[th, T_SLOT]
                _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, _busy_lock(EP, P, S[s, S_START]), t)
                TH[th, T_PC] = PC_A_PAGES if EP[E_BUSY_ONCE] == 1 else PC_A_SETUP_TRY
                continue
            if pc == PC_A_SETUP_TRY:
                s = TH[th, T_SLOT]
                TH[th, T_PC] = PC_A_SETUP_HELD
                tt = _lock(TH, LK, G, ACC, COST, th, _busy_lock(EP, P, S[s, S_START]), t, S_SETUP)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_A_SETUP_HELD:
                d = np.int64(COST[C_HOLD])
                ACC[ctx, S_SETUP + 2] += d
                TH[th, T_PC] = PC_A_SETUP_REL
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_A_SETUP_REL:
                s = TH[th, T_SLOT]
                _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, _busy_lock(EP, P, S[s, S_START]), t)
                TH[th, T_PC] = PC_A_PAGES
                continue
            if pc == PC_A_PAGES:
                s = TH[th, T_SLOT]
                pages = TH[th, T_PAGES]
                before = C[K.PTE_PAGES] + C[K.PMD_PAGES]
                K._map_pages(C, P, TOP, MID, LOW, S[s, S_START], pages)
                new_pt = C[K.PTE_PAGES] + C[K.PMD_PAGES] - before
                G[G_PAGES_ALLOC] += pages
                a = np.int64(COST[C_PALLOC] * pages)
                z = np.int64(COST[C_PZERO] * pages) if (EP[E_INIT_ON_ALLOC] == 1 or ZEROES[TH[th, T_TEST]]) else 0
                m = np.int64(COST[C_PTESET] * pages)
                p = np.int64(COST[C_PTPAGE] * new_pt)
                v = np.int64(COST[C_VMALLOC])
                ACC[ctx, S_PAGE_ALLOC] += a
                ACC[ctx, S_PAGE_ZERO] += z
                ACC[ctx, S_MAP] += m
                ACC[ctx, S_PTALLOC] += p
                ACC[ctx, S_VMALLOC] += v
                TH[th, T_PC] = PC_A_DONE
                _push(HP, POS, G, th, t + a + z + m + p + v)
                break
            if pc == PC_A_DONE:
                WH[th, TH[th, T_HIDX]] = TH[th, T_SLOT]
                TH[th, T_PC] = PC_OPEND
                continue
            if pc == PC_A_FAILED:
                C[K.ALLOC_FAILURES] += 1
                if TH[th, T_TEST] != ALIGN_SHIFT:
                    G[G_ERR] = th
                    break
                TH[th, T_FAILED] = 1
                d = np.int64(2 * COST[C_SLAB])  # the failed request frees its vmap_area and vm_struct
                ACC[ctx, S_FAIL] += d
                TH[th, T_PC] = PC_OPEND
                _push(HP, POS, G, th, t + d)
                break
            # ---------------------------------------------------------------- vfree
            if pc == PC_F_START:
                s = WH[th, TH[th, T_HIDX]]
                _prefetch_held(S, WH, th, TH[th, T_HIDX] + 2)
                _prefetch_held(S, WH, th, TH[th, T_HIDX] + 1)
                TH[th, T_SLOT] = s
                TH[th, T_PC] = PC_F_HELD
                tt = _lock(TH, LK, G, ACC, COST, th, _busy_lock(EP, P, S[s, S_START]), t, S_FIND)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_F_HELD:
                s = TH[th, T_SLOT]
                bn = _addr_node(P, S[s, S_START]) if nodes else 0
                d = _tree_ns(COST, BN[bn])
                BN[bn] -= 1
                C[BUSY_PAGES] -= S[s, S_SIZE]
                C[BUSY_AREAS] -= 1
                ACC[ctx, S_FIND + 2] += d
                TH[th, T_PC] = PC_F_REL
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_F_REL:
                s = TH[th, T_SLOT]
                _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, _busy_lock(EP, P, S[s, S_START]), t)
                d = np.int64(COST[C_PTECLR] * (S[s, S_SIZE] - 1))
                ACC[ctx, S_UNMAP] += d
                d_add = np.int64(COST[C_LAZYADD])
                ACC[ctx, S_LAZY_ADD] += d_add
                d += d_add
                node = S[s, S_NODE]
                if node == NIL:
                    node = _addr_node(P, S[s, S_START])
                TH[th, T_NODE] = node
                TH[th, T_PC] = PC_F_LAZY_TRY
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_F_LAZY_TRY:
                TH[th, T_PC] = PC_F_LAZY_HELD
                lk = (3 + nr + TH[th, T_NODE]) if nodes else np.int64(2)
                tt = _lock(TH, LK, G, ACC, COST, th, lk, t, S_LAZY)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_F_LAZY_HELD:
                s = TH[th, T_SLOT]
                node = TH[th, T_NODE]
                d = _tree_ns(COST, LZ[node, LZ_COUNT])
                S[s, S_STATE] = LAZY
                S[s, S_NEXT] = LZ[node, LZ_HEAD]
                LZ[node, LZ_HEAD] = s
                LZ[node, LZ_COUNT] += 1
                C[LAZY_PAGES] += S[s, S_SIZE]
                C[LAZY_AREAS] += 1
                C[FREES] += 1
                ACC[ctx, S_LAZY + 2] += d
                TH[th, T_PC] = PC_F_LAZY_REL
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_F_LAZY_REL:
                s = TH[th, T_SLOT]
                lk = (3 + nr + TH[th, T_NODE]) if nodes else np.int64(2)
                _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, lk, t)
                if C[LAZY_PAGES] > lazy_max:
                    C[DRAIN_PENDING] = 1
                    if G[G_DRAIN_RUNNING] == 1:
                        if G[G_DRAIN_REQUEUE] == 0:
                            G[G_DRAIN_REQUEUE] = 1  # queued again where it runs (no re-entrancy)
                            G[G_DRAIN_QTIME] = t
                    elif G[G_DRAIN_QUEUED] == 0:
                        G[G_DRAIN_QUEUED] = 1
                        G[G_DRAIN_QTIME] = t
                        kw = W
                        TH[kw, T_PC] = PC_KW_START
                        _queue_work(TH, CPU, HP, POS, G, ACC, COST, EP, kw, cpu, t)
                pages = S[s, S_SIZE] - 1
                G[G_PAGES_FREED] += pages
                d1 = np.int64(COST[C_PFREE] * pages)
                d2 = np.int64(COST[C_SLAB])
                d3 = np.int64(COST[C_VFREE])
                ACC[ctx, S_PAGE_FREE] += d1
                ACC[ctx, S_SLAB_FREE] += d2
                ACC[ctx, S_VFREE] += d3
                TH[th, T_PC] = PC_OPEND
                _push(HP, POS, G, th, t + d1 + d2 + d3)
                break
            if pc == PC_OPEND:
                # a preemption point (the cond_resched() loops of vmalloc and vfree)
                TH[th, T_PC] = PC_NEXT
                # EEVDF with RUN_TO_PARITY (6.6+): the running task keeps the CPU until its slice
                # (deadline) runs out, whoever wakes; a new slice starts at once when nothing waits.
                # A nice -20 work item (drain_priority="high") preempts at the next point.
                if _preempt_point(TH, CPU, HP, POS, G, ACC, COST, EP, th, cpu, t):
                    break
                continue
            # ---------------------------------------------------------------- the purge
            if pc == PC_U_START:
                TH[th, T_PC] = PC_U_BEGIN
                if not _mutex_lock(TH, CPU, HP, POS, G, ACC, COST, th, t):
                    break
                continue
            if pc == PC_U_BEGIN:
                G[G_PQFILL] = 0
                G[G_NMARKED] = 0
                if nodes:
                    TH[th, T_NODE] = 0
                    TH[th, T_PC] = PC_N_DECAY_SCAN
                else:
                    TH[th, T_PC] = PC_G_DETACH_TRY
                continue
            if pc == PC_G_DETACH_TRY:
                TH[th, T_PC] = PC_G_DETACH_HELD
                tt = _lock(TH, LK, G, ACC, COST, th, 2, t, S_PDETACH)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_G_DETACH_HELD:
                first, n = _detach_sorted(S, LZ, PQ, G, 0)
                TH[th, T_CUR] = first
                TH[th, T_END] = first + n
                d = np.int64(COST[C_HOLD])
                ACC[ctx, S_PDETACH + 2] += d
                TH[th, T_PC] = PC_G_DETACH_REL
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_G_DETACH_REL:
                _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, 2, t)
                if TH[th, T_CUR] == TH[th, T_END]:
                    TH[th, T_PC] = PC_U_PASS_END
                    continue
                C[TLB_FLUSHES] += 1
                C[PURGES] += 1
                d = _flush_tlb(TH, CPU, HP, POS, G, ACC, COST, EP, C, th, t)
                TH[th, T_PC] = PC_G_MERGE_TRY
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_G_MERGE_TRY:
                TH[th, T_PC] = PC_G_MERGE_HELD
                tt = _lock(TH, LK, G, ACC, COST, th, 0, t, S_PMERGE)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_G_MERGE_HELD:
                # merge units: runs of address-adjacent lazy VAs (6.7 merged them in the lazy tree)
                units = 0
                n0 = C[K.FREE_BLOCKS]
                limit = MERGE_BATCH if C[LAZY_PAGES] >= 2 * lazy_max else 1
                cur = TH[th, T_CUR]
                end = TH[th, T_END]
                while cur < end and units < limit:
                    s = PQ[cur]
                    _prefetch_listed(S, PQ, cur + PREFETCH_AHEAD, end)
                    stop = S[s, S_START] + S[s, S_SIZE]
                    _purge_to_free(C, T, S, s)
                    cur += 1
                    while cur < end and S[PQ[cur], S_START] == stop:
                        s = PQ[cur]
                        _prefetch_listed(S, PQ, cur + PREFETCH_AHEAD, end)
                        stop = S[s, S_START] + S[s, S_SIZE]
                        _purge_to_free(C, T, S, s)
                        cur += 1
                    units += 1
                TH[th, T_CUR] = cur
                G[G_RUNS] += units
                d = _merge_batch(COST, n0, units)
                ACC[ctx, S_PMERGE + 2] += d
                TH[th, T_PC] = PC_G_MERGE_NEXT
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_G_MERGE_NEXT:
                if TH[th, T_CUR] == TH[th, T_END]:
                    _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, 0, t)
                    TH[th, T_PC] = PC_U_PASS_END
                    continue
                if C[LAZY_PAGES] < 2 * lazy_max and LK[0, L_HEAD] != NIL:
                    # cond_resched_lock(): hand the lock to the waiters, queue again behind them
                    _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, 0, t)
                    TH[th, T_PC] = PC_G_MERGE_TRY
                    continue
                TH[th, T_PC] = PC_G_MERGE_HELD
                continue
            if pc == PC_U_PASS_END:
                G[G_PQFILL] = 0
                _mutex_unlock(TH, CPU, HP, POS, G, ACC, COST, t)
                if TH[th, T_KIND] == KIND_DRAIN and C[LAZY_PAGES] > lazy_max:
                    TH[th, T_PC] = PC_U_START  # drain_vmap_area_work's loop (6.7)
                else:
                    TH[th, T_PC] = PC_U_END
                continue
            if pc == PC_U_END:
                if TH[th, T_KIND] == KIND_DRAIN:
                    TH[th, T_PC] = PC_KW_YIELD
                else:
                    TH[th, T_PC] = TH[th, T_RET]
                continue
            # ---------------------------------------------------------------- nodes: decay and detach
            if pc == PC_N_DECAY_SCAN:
                node = TH[th, T_NODE]
                nonempty = 0
                todo = 0
                for k in range(POOL_CLASSES):
                    ln = PL[node * POOL_CLASSES + k, PL_LEN]
                    if ln > 0:
                        nonempty += 1
                        todo += K._decay_count(P, decay, ln, TH[th, T_FULL] == 1)
                if nonempty == 0:
                    TH[th, T_PC] = PC_N_LAZY_CHECK
                    continue
                TH[th, T_AUX] = todo
                TH[th, T_END] = nonempty
                TH[th, T_PC] = PC_N_DECAY_HELD
                tt = _lock(TH, LK, G, ACC, COST, th, 3 + 2 * nr + node, t, S_DECAY)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_N_DECAY_HELD:
                d = np.int64(COST[C_POOL] * (TH[th, T_END] + TH[th, T_AUX]))
                ACC[ctx, S_DECAY + 2] += d
                TH[th, T_PC] = PC_N_DECAY_REL
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_N_DECAY_REL:
                _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, 3 + 2 * nr + TH[th, T_NODE], t)
                TH[th, T_PC] = PC_N_DMERGE_TRY if TH[th, T_AUX] > 0 else PC_N_LAZY_CHECK
                continue
            if pc == PC_N_DMERGE_TRY:
                TH[th, T_PC] = PC_N_DMERGE_HELD
                tt = _lock(TH, LK, G, ACC, COST, th, 0, t, S_DMERGE)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_N_DMERGE_HELD:
                released = K._decay_node(C, P, decay, S, T, PL, TH[th, T_NODE], TH[th, T_FULL] == 1)
                d = _merge_batch(COST, C[K.FREE_BLOCKS], released)  # the tree's size after the batch
                ACC[ctx, S_DMERGE + 2] += d
                TH[th, T_PC] = PC_N_DMERGE_REL
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_N_DMERGE_REL:
                _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, 0, t)
                TH[th, T_PC] = PC_N_LAZY_CHECK
                continue
            if pc == PC_N_LAZY_CHECK:
                node = TH[th, T_NODE]
                if LZ[node, LZ_COUNT] == 0:
                    TH[th, T_PC] = PC_N_NEXTNODE
                    continue
                TH[th, T_PC] = PC_N_DETACH_HELD
                tt = _lock(TH, LK, G, ACC, COST, th, 3 + nr + node, t, S_PDETACH)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_N_DETACH_HELD:
                node = TH[th, T_NODE]
                first, n = _detach_sorted(S, LZ, PQ, G, node)
                NQ[node, 0] = first
                NQ[node, 1] = first + n
                MARKED[G[G_NMARKED]] = node
                G[G_NMARKED] += 1
                d = np.int64(COST[C_HOLD])
                ACC[ctx, S_PDETACH + 2] += d
                TH[th, T_PC] = PC_N_DETACH_REL
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_N_DETACH_REL:
                _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, 3 + nr + TH[th, T_NODE], t)
                TH[th, T_PC] = PC_N_NEXTNODE
                continue
            if pc == PC_N_NEXTNODE:
                TH[th, T_NODE] += 1
                TH[th, T_PC] = PC_N_DECAY_SCAN if TH[th, T_NODE] < nr else PC_N_FLUSH
                continue
            if pc == PC_N_FLUSH:
                marked = G[G_NMARKED]
                if marked == 0:
                    G[G_PQFILL] = 0
                    _mutex_unlock(TH, CPU, HP, POS, G, ACC, COST, t)
                    TH[th, T_PC] = PC_U_END
                    continue
                C[TLB_FLUSHES] += 1
                d = _flush_tlb(TH, CPU, HP, POS, G, ACC, COST, EP, C, th, t)
                helpers = C[LAZY_PAGES] // lazy_max if lazy_max > 0 else marked
                helpers = min(max(helpers, 1), marked) - 1
                C[PURGE_HELPERS] += helpers
                G[G_OUTSTANDING] = helpers
                for k in range(helpers):
                    node = MARKED[k]
                    hp = W + 1 + node
                    TH[hp, T_NODE] = node
                    TH[hp, T_FULL] = TH[th, T_FULL]
                    TH[hp, T_PC] = PC_H_START
                    G[G_HELPERS_RUN] += 1
                    _queue_work(TH, CPU, HP, POS, G, ACC, COST, EP, hp, node % EP[E_CPUS], t)
                TH[th, T_MI] = helpers
                TH[th, T_PC] = PC_N_PURGE_NODE
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_N_PURGE_NODE:
                if TH[th, T_MI] >= G[G_NMARKED]:
                    TH[th, T_PC] = PC_N_WAIT_HELPERS
                    continue
                node = MARKED[TH[th, T_MI]]
                TH[th, T_NODE] = node
                TH[th, T_CUR] = NQ[node, 0]
                TH[th, T_AUX] = 0
                TH[th, T_PC] = PC_N_AREA
                continue
            if pc == PC_H_START:
                node = TH[th, T_NODE]
                TH[th, T_CTX] = CTX_HELPER
                TH[th, T_CUR] = NQ[node, 0]
                TH[th, T_AUX] = 0
                TH[th, T_PC] = PC_N_AREA
                continue
            if pc == PC_N_AREA:
                node = TH[th, T_NODE]
                first = TH[th, T_CUR]
                cur = first
                end = NQ[node, 1]
                # VAs that cannot go to a pool wait for the reclaim; walk on to the next one that can
                while cur < end:
                    s = PQ[cur]
                    _prefetch_listed(S, PQ, cur + PREFETCH_AHEAD, end)
                    if TH[th, T_FULL] == 0 and S[s, S_NODE] != NIL and S[s, S_SIZE] <= POOL_CLASSES:
                        break
                    TH[th, T_AUX] += 1
                    cur += 1
                TH[th, T_CUR] = cur
                walked = cur - first + (1 if cur < end else 0)
                TH[th, T_PC] = PC_N_RECLAIM if cur == end else PC_N_AREA_LOCK
                if walked > 0:
                    d = np.int64(COST[C_PURGEVA] * walked)
                    ACC[ctx, S_PWALK] += d
                    _push(HP, POS, G, th, t + d)
                    break
                continue
            if pc == PC_N_AREA_LOCK:
                node = TH[th, T_NODE]
                TH[th, T_PC] = PC_N_AREA_HELD
                tt = _lock(TH, LK, G, ACC, COST, th, 3 + 2 * nr + node, t, S_PPOOL)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_N_AREA_HELD:
                node = TH[th, T_NODE]
                cur = TH[th, T_CUR]
                s = PQ[cur]
                pi = node * POOL_CLASSES + S[s, S_SIZE] - 1
                if K._pool_accepts(P, PL[pi, PL_LEN]):
                    C[LAZY_PAGES] -= S[s, S_SIZE]
                    C[LAZY_AREAS] -= 1
                    K._pool_push_head(C, S, PL, pi, s)
                    PQ[cur] = NIL
                else:
                    TH[th, T_AUX] += 1
                TH[th, T_CUR] = cur + 1
                d = np.int64(COST[C_POOL])
                ACC[ctx, S_PPOOL + 2] += d
                TH[th, T_PC] = PC_N_AREA_REL
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_N_AREA_REL:
                _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, 3 + 2 * nr + TH[th, T_NODE], t)
                TH[th, T_PC] = PC_N_AREA
                continue
            if pc == PC_N_RECLAIM:
                if TH[th, T_AUX] == 0:
                    TH[th, T_PC] = PC_N_NODE_DONE
                    continue
                TH[th, T_PC] = PC_N_RECLAIM_HELD
                tt = _lock(TH, LK, G, ACC, COST, th, 0, t, S_PMERGE)
                if tt < 0:
                    break
                t = tt
                continue
            if pc == PC_N_RECLAIM_HELD:
                node = TH[th, T_NODE]
                n0 = C[K.FREE_BLOCKS]
                k = 0
                for cur in range(NQ[node, 0], NQ[node, 1]):
                    s = PQ[cur]
                    _prefetch_listed(S, PQ, cur + PREFETCH_AHEAD, NQ[node, 1])
                    if s != NIL:
                        _purge_to_free(C, T, S, s)
                        PQ[cur] = NIL
                        k += 1
                d = _merge_batch(COST, n0, k)
                ACC[ctx, S_PMERGE + 2] += d
                TH[th, T_PC] = PC_N_RECLAIM_REL
                _push(HP, POS, G, th, t + d)
                break
            if pc == PC_N_RECLAIM_REL:
                _unlock(TH, LK, CPU, HP, POS, G, ACC, SPINK, COST, th, 0, t)
                TH[th, T_PC] = PC_N_NODE_DONE
                continue
            if pc == PC_N_NODE_DONE:
                if TH[th, T_KIND] == KIND_HELPER:
                    TH[th, T_PC] = PC_H_YIELD
                    if _preempt_point(TH, CPU, HP, POS, G, ACC, COST, EP, th, cpu, t):
                        break
                    continue
                TH[th, T_MI] += 1
                TH[th, T_PC] = PC_N_PURGE_NODE
                continue
            if pc == PC_H_YIELD:
                G[G_OUTSTANDING] -= 1
                TH[th, T_PC] = PC_H_DONE
                if G[G_OUTSTANDING] == 0 and G[G_KW_WAITING] != NIL:
                    waiter = G[G_KW_WAITING]
                    G[G_KW_WAITING] = NIL
                    _wake(TH, CPU, HP, POS, G, ACC, COST, waiter, t)
                _sleep(TH, CPU, HP, POS, G, ACC, COST, th, t)
                break
            if pc == PC_N_WAIT_HELPERS:
                TH[th, T_PC] = PC_N_PURGE_DONE
                if G[G_OUTSTANDING] > 0:
                    G[G_KW_WAITING] = th  # flush_work() on each helper
                    _sleep(TH, CPU, HP, POS, G, ACC, COST, th, t)
                    break
                continue
            if pc == PC_N_PURGE_DONE:
                C[PURGES] += 1
                G[G_PQFILL] = 0
                _mutex_unlock(TH, CPU, HP, POS, G, ACC, COST, t)
                TH[th, T_PC] = PC_U_END
                continue
            # ---------------------------------------------------------------- the drain kworker
            if pc == PC_KW_START:
                lag = t - G[G_DRAIN_QTIME]
                G[G_LAG_SUM] += lag
                G[G_LAG_N] += 1
                if lag > G[G_LAG_MAX]:
                    G[G_LAG_MAX] = lag
                G[G_DRAIN_QUEUED] = 0
                G[G_DRAIN_RUNNING] = 1
                C[DRAIN_PENDING] = 0
                C[DRAINS] += 1
                TH[th, T_FULL] = 0
                TH[th, T_PC] = PC_U_START
                continue
            if pc == PC_KW_YIELD:
                TH[th, T_PC] = PC_KW_DONE
                if _preempt_point(TH, CPU, HP, POS, G, ACC, COST, EP, th, cpu, t):
                    break
                continue
            if pc == PC_KW_DONE:
                if G[G_DRAIN_REQUEUE] == 1:
                    G[G_DRAIN_REQUEUE] = 0  # its lag counts from the request (G_DRAIN_QTIME)
                    TH[th, T_PC] = PC_KW_START
                    continue
                G[G_DRAIN_RUNNING] = 0
                _sleep(TH, CPU, HP, POS, G, ACC, COST, th, t)
                break
            G[G_ERR] = -1000 - pc  # an unknown pc: a bug
            break
        if HP[0, 1] == seq:  # th scheduled no event: its entry leaves the heap
            _pop(HP, POS, G)
        if G[G_ERR] != NIL:
            return ERR_FAIL
    if G[G_WORKERS_LEFT] > 0:
        return ERR_DEADLOCK
    if G[G_TLN] >= TL.shape[0]:
        return NEED_TL
    # the end state, stamped no earlier than the last regular sample (after a NEED_TL return the
    # last event may lie in an earlier call)
    _sample(C, G, TL, max(G[G_LAST_END], now, G[G_NEXT_SAMPLE] - sample))
    return DONE
