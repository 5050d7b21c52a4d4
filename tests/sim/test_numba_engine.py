"""The numba engine's own machinery: growth of its arrays, the one-call run(), the free-space treap,
the sparse page tables of 5-level paging, the busy-VA table after run(), and the invariant checker.

Behaviour shared with the reference engine is tested on both engines in test_reference.py and
test_differential.py; here every result is still compared with the reference where one exists.
"""

from __future__ import annotations

import numpy as np
import pytest

from vmaplab.errors import SimulationError
from vmaplab.sim import _kernels as K
from vmaplab.sim.numba_engine import NumbaEngine
from vmaplab.sim.params import AllocatorConfig
from vmaplab.sim.reference import ReferenceEngine


def _engines(design: str = "global", cpus: int = 64, **knobs) -> tuple[NumbaEngine, ReferenceEngine]:
    config = AllocatorConfig.resolve(design, cpus, **knobs)
    return NumbaEngine(config), ReferenceEngine(config)


def _assert_same(num: NumbaEngine, ref: ReferenceEngine) -> None:
    a, b = num.state(), ref.state()
    for key in ("busy", "free"):
        for x, y in zip(a[key], b[key]):
            np.testing.assert_array_equal(x, y, err_msg=key)
    assert a["lazy"] == b["lazy"]
    assert a["pools"] == b["pools"]
    np.testing.assert_array_equal(a["pte_regions"], b["pte_regions"])
    np.testing.assert_array_equal(a["pmd_regions"], b["pmd_regions"])
    assert num.stats() == ref.stats()


def _churn(n: int, seed: int, cpus: int = 64) -> np.ndarray:
    """n allocations of mixed sizes and alignments, each later freed with probability 0.8."""
    rng = np.random.default_rng(seed)
    rows = []
    live = []
    for _ in range(n):
        if live and rng.random() < 0.4:
            rows.append((1, live.pop(int(rng.integers(len(live)))), 0, int(rng.integers(cpus))))
        else:
            live.append(len(rows))
            pages = int(rng.choice([1, 2, 3, 7, 16, 100, 255, 256, 300]))
            align = int(rng.choice([4096, 4096, 4096, 1 << 15, 1 << 21]))
            rows.append((0, pages, align, int(rng.integers(cpus))))
    return np.array(rows, np.int64)


def _tree_depths(engine: NumbaEngine) -> np.ndarray:
    """Depth of every node of the free-space treap (root = 0)."""
    T, root = engine._T, engine._C[K.ROOT]
    depths, stack = [], [(root, 0)]
    while stack:
        x, d = stack.pop()
        depths.append(d)
        stack += [(int(c), d + 1) for c in (T[x, K.T_LEFT], T[x, K.T_RIGHT]) if c != K.NIL]
    return np.array(depths)


@pytest.mark.parametrize("design", ["global", "nodes"])
def test_arrays_grow_mid_run_and_results_match_the_reference(design):
    # 3000 VAs live at once: slots (1024 at start), the tree and the drain's scratch must grow
    # while run() is in flight; the run resumes at the row that asked for room.
    num, ref = _engines(design, lazy_max_pages=1 << 16)
    ops = _churn(6000, seed=1)
    np.testing.assert_array_equal(num.run(ops), ref.run(ops))
    assert num._S.shape[0] > 1024
    num.check_invariants()
    _assert_same(num, ref)


def test_run_is_one_jitted_call_unless_an_array_must_grow(monkeypatch):
    calls = []
    original = K.run_ops

    def counting(*args):
        calls.append(args[-1])  # the row it starts from
        return original(*args)

    monkeypatch.setattr(K, "run_ops", counting)
    num, _ = _engines("nodes")
    ops = _churn(500, seed=2)
    num.run(ops)
    assert calls == [0]  # 500 rows fit the initial arrays: one call for the whole stream
    calls.clear()
    big = np.array([(0, 1, 4096, 0)] * 5000, np.int64)
    num.run(big)
    # slots double 1024 -> 8192 (three times), each time resuming at the row that needed room
    assert len(calls) == 4 and calls[0] == 0 and calls == sorted(calls) and 0 < calls[1] < 1100


def test_single_ops_after_run_use_a_rebuilt_busy_table():
    num, ref = _engines("nodes", cpus=4)
    ops = _churn(3000, seed=3, cpus=4)
    out = num.run(ops)
    ref.run(ops)
    assert num._C[K.HASH_VALID] == 0  # run() finds VAs by row and leaves the table stale
    freed = set(ops[ops[:, 0] == 1, 1].tolist())
    live = [int(out[i]) for i in np.flatnonzero(ops[:, 0] == 0) if i not in freed and out[i] >= 0]
    with pytest.raises(SimulationError, match="no busy VA starts there"):
        num.free(live[0] + 1, 0)
    assert num._C[K.HASH_VALID] == 1
    for off in live[::3]:
        num.free(off, 1)
        ref.free(off, 1)
    num.check_invariants()
    _assert_same(num, ref)


def test_free_space_treap_stays_balanced_for_address_ordered_returns():
    # 20000 one-page VAs freed in address order with every other one kept: an unbalanced search
    # tree would become a 10000-long list; the treap keeps its depth logarithmic.
    num, _ = _engines("global", lazy_max_pages=1 << 30)
    n = 20000
    ops = np.zeros((n + n // 2, 4), np.int64)
    ops[:n] = (0, 1, 4096, 0)
    ops[n:, 0] = 1
    ops[n:, 1] = np.arange(0, n, 2)
    num.run(ops)
    num.drain()
    depths = _tree_depths(num)
    assert len(depths) == num.stats()["free_blocks"] == n // 2 + 1
    assert depths.max() < 4 * np.log2(len(depths))
    num.check_invariants()


def test_lowest_fit_skips_short_blocks_below_a_long_one():
    # Holes of 2, 4 and 8 pages at rising addresses, then requests that fit only the larger ones.
    num, ref = _engines("global", lazy_max_pages=1 << 30)
    rows = []
    for pages in (1, 1, 3, 1, 7, 1):
        rows.append((0, pages, 4096, 0))
    rows += [(1, 0, 0, 0), (1, 2, 0, 0), (1, 4, 0, 0), (2, 0, 0, 0)]
    rows += [(0, 5, 4096, 0), (0, 2, 4096, 0), (0, 1, 4096, 0), (0, 1, 1 << 14, 0)]
    out = num.run(np.array(rows, np.int64))
    # VAs: [0,2) [2,4) [4,8) [8,10) [10,18) [18,20); holes [0,2), [4,8), [10,18) after the drain
    assert out[-4:].tolist() == [10, 4, 0, 20]  # 6 pages -> the 8-page hole; 16 KiB needs length 3+4
    np.testing.assert_array_equal(out, ref.run(np.array(rows, np.int64)))


def test_five_level_window_uses_sparse_page_tables():
    # 12 800 TiB: a dense PTE bitmap would need 6.7e9 entries; touched 1 GiB regions get rows.
    num, ref = _engines("nodes", paging_levels=5)
    far = [(0, 1, 1 << 52, 0), (0, 1 << 20, 1 << 46, 1), (0, 300, 4096, 2)]
    ops = np.array(far, np.int64)
    out = num.run(ops)
    np.testing.assert_array_equal(out, ref.run(ops))
    assert (out >= 0).all()
    stats = num.stats()
    # the 300-page VA lands next to the first one (offset 2) and shares its 2 MiB and 1 GiB regions;
    # the 4 GiB VA, 2^46-aligned, covers 2048 PTE and 4 PMD regions of its own
    assert (stats["pte_pages"], stats["pmd_pages"]) == (1 + 2048, 1 + 4)
    assert num._LOW.shape[0] < 64 and num._TOP.shape[0] == 12800 * 2  # one entry per 512 GiB
    _assert_same(num, ref)


def test_alignment_of_2_pow_63_bytes_fails_without_overflow():
    num, ref = _engines("global")
    assert num.alloc(1, 1 << 63, 0) == -1
    ops = np.array([(0, 1, 1 << 62, 0), (0, 1, 4096, 0)], np.int64)
    huge = np.array([(0, 1, 0, 0)], np.uint64)
    huge[0, 2] = np.uint64(1 << 63)  # a uint64 stream keeps the bit pattern of 2**63
    assert num.run(huge).tolist() == [-1]
    assert num.run(ops).tolist() == [-1, 0]
    assert num.stats()["alloc_failures"] == 3
    ref.alloc(1, 1 << 63, 0)
    ref.run(np.array([(0, 1, 1 << 62, 0)], np.int64))
    ref.run(ops)
    _assert_same(num, ref)


@pytest.mark.parametrize(
    "rows, error, message",
    [
        ([(0, 1, 4096, 0), (1, 0, 0, 0), (1, 0, 0, 0)], SimulationError, "double free"),
        ([(2, 0, 0, 0), (1, 0, 0, 0)], SimulationError, "earlier alloc row"),
        ([(1, 1, 0, 0), (0, 1, 4096, 0)], SimulationError, "earlier alloc row"),
        ([(5, 0, 0, 0)], SimulationError, "unknown operation 5"),
        ([(0, 0, 4096, 0)], SimulationError, "pages >= 1"),
        ([(0, 1, 3000, 0)], SimulationError, "power-of-two"),
        ([(0, 1, 4096, 64)], SimulationError, r"cpu in \[0, 64\)"),
        ([(0, 1, 4096)], ValueError, r"shape \(n, 4\)"),
    ],
)
def test_bad_streams_raise_naming_the_row(rows, error, message):
    num, _ = _engines("nodes")
    with pytest.raises(error, match=message):
        num.run(np.array(rows, np.int64))


def test_float_streams_are_refused():
    num, _ = _engines()
    with pytest.raises(TypeError, match="integer"):
        num.run(np.zeros((2, 4)))


@pytest.mark.parametrize(
    "corrupt, invariant",
    [
        (lambda e: e._T.__setitem__((e._C[K.ROOT], K.T_LMAX), 7), "free tree maxima"),
        (lambda e: e._C.__setitem__(K.BUSY_PAGES, e._C[K.BUSY_PAGES] + 1), "counters == recounts"),
        (lambda e: e._S.__setitem__((1, K.S_ALIGN), 1 << 20), "aligned as requested"),
        (lambda e: e._S.__setitem__((1, K.S_START), 0), "disjoint"),
        (lambda e: e._C.__setitem__(K.PTE_PAGES, 0), "counters == recounts"),
    ],
)
def test_check_invariants_names_what_broke(corrupt, invariant):
    num, _ = _engines("nodes", lazy_max_pages=1 << 20)
    num.run(_churn(400, seed=4))
    num.check_invariants()
    corrupt(num)
    with pytest.raises(SimulationError, match=invariant):
        num.check_invariants()


def test_drain_of_many_lazy_vas_refills_pools_in_address_order():
    # 600 lazy VAs on one node go through the radix sort (short lists use insertion sort).
    num, ref = _engines("nodes", cpus=4, lazy_max_pages=1 << 20, auto_drain=False)
    rng = np.random.default_rng(5)
    n = 1200
    ops = np.zeros((n + 600 + 1, 4), np.int64)
    ops[:n] = np.c_[np.zeros(n), rng.choice([1, 2, 5], n), np.full(n, 4096), np.zeros(n)]
    ops[n : n + 600, 0] = 1
    ops[n : n + 600, 1] = rng.permutation(n)[:600]
    ops[-1, 0] = 2
    num.run(ops)
    ref.run(ops)
    pools = num.state()["pools"]
    assert sum(map(len, pools.values())) == 600
    for starts in pools.values():
        assert starts == sorted(starts, reverse=True)  # head = highest address
    _assert_same(num, ref)


@pytest.mark.parametrize("design", ["global", "nodes"])
def test_reserve_matches_the_reference_and_refuses_without_change(design):
    # Seeding from a snapshot: exact ranges, some overlapping (refused by both engines, nothing
    # changes), then the usual churn on top of them.
    num, ref = _engines(design, cpus=4, lazy_max_pages=300)
    rng = np.random.default_rng(6)
    refused = 0
    for _ in range(300):
        offset, size, cpu = int(rng.integers(0, 5000)), int(rng.integers(1, 40)), int(rng.integers(-1, 4))
        outcomes = []
        for engine in (num, ref):
            try:
                engine.reserve(offset, size, cpu)
                outcomes.append("ok")
            except SimulationError as err:
                outcomes.append(str(err))
        assert outcomes[0] == outcomes[1]
        refused += outcomes[0] != "ok"
    assert 0 < refused < 300
    _assert_same(num, ref)
    space = num.config.space_pages
    for offset, size in [(space - 2, 2), (space - 1, 1), (-1, 2), (0, 0)]:  # the last page, outside
        with pytest.raises(SimulationError, match="not a free range"):
            num.reserve(offset, size, 0)
    ops = _churn(1500, seed=7, cpus=4)
    np.testing.assert_array_equal(num.run(ops), ref.run(ops))
    num.check_invariants()
    _assert_same(num, ref)


@pytest.mark.parametrize("window_bytes", [1 << 19, 1 << 30, 1 << 44])
def test_randomised_windows_match_the_reference(window_bytes):
    # A KASLR-style window at a base that is only page-aligned; in the smallest (128 pages) many
    # requests are larger than the window and must count as pool-ineligible misses exactly as the
    # reference counts them (a request is never clipped to the window's size).
    config = AllocatorConfig.resolve(
        "nodes", 8, vmalloc_start=0xFFFFB00000001000 + (7 << 12), vmalloc_size=window_bytes, lazy_max_pages=200
    )
    num, ref = NumbaEngine(config), ReferenceEngine(config)
    ops = _churn(2500, seed=8, cpus=8)
    np.testing.assert_array_equal(num.run(ops), ref.run(ops))
    assert num.alloc(300, 4096, 3) == ref.alloc(300, 4096, 3)
    num.check_invariants()
    _assert_same(num, ref)
