"""The numba engine's own machinery: growth of its arrays, the one-call run(), the free-space B+-tree
(splits, merges, fill, height), the sparse page tables of 5-level paging, the busy-VA table after
run(), and the invariant checker.

Behaviour shared with the reference engine is tested on both engines in test_reference.py and
test_differential.py; here every result is still compared with the reference where one exists.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _tree_levels(engine: NumbaEngine) -> list[list[int]]:
    """Entry counts of the free-space tree's nodes, level by level from the root, in key order."""
    T = engine._T
    level, levels = [int(engine._C[K.ROOT])], []
    while level:
        levels.append([int(T[x, K.B_COUNT]) for x in level])
        if T[level[0], K.B_LEAF]:
            break
        level = [int(T[x, K.B_CHILD + j]) for x in level for j in range(T[x, K.B_COUNT])]
    return levels


def _sound(engine: NumbaEngine) -> None:
    code = K.check_tree(engine._C, engine._T)
    assert code == 0, f"check_tree returned {code}"


def _one_page_holes(k: int, space_bytes: int = 1 << 24) -> tuple[NumbaEngine, ReferenceEngine]:
    """Engines whose free space is k blocks: one-page VAs reserved at offsets 0, 2, .., 2k - 2 leave
    the holes 1, 3, .., 2k - 3 and the tail [2k - 1, space); frees wait for an explicit drain."""
    window = {"vmalloc_start": 0xFFFFC90000000000, "vmalloc_size": space_bytes}
    config = AllocatorConfig.resolve("global", 4, **window, lazy_max_pages=1 << 30, auto_drain=False)
    num, ref = NumbaEngine(config), ReferenceEngine(config)
    for i in range(k):
        num.reserve(2 * i, 1, -1)
        ref.reserve(2 * i, 1, -1)
    return num, ref


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


def test_free_space_tree_grows_and_shrinks_with_full_nodes_and_recycles_them():
    # 20000 one-page VAs freed in address order with every other one kept: 10001 blocks, inserted at
    # rising addresses (every split at the right edge). Then the rest, freed top down: every block
    # merges away and the tree shrinks back to a single leaf, reusing the nodes it freed.
    num, ref = _engines("global", lazy_max_pages=1 << 30)
    n = 20000
    ops = np.zeros((n + n // 2, 4), np.int64)
    ops[:n] = (0, 1, 4096, 0)
    ops[n:, 0] = 1
    ops[n:, 1] = np.arange(0, n, 2)
    np.testing.assert_array_equal(num.run(ops), ref.run(ops))
    num.drain()
    ref.drain()
    levels = _tree_levels(num)
    blocks = n // 2 + 1
    assert sum(levels[-1]) == num.stats()["free_blocks"] == blocks
    assert all(K.MIN_FILL <= c <= K.FANOUT for level in levels[1:] for c in level)
    # at least MIN_FILL entries per node but the root (>= 2): the height is logarithmic
    assert len(levels) == int(num._C[K.TREE_HEIGHT]) <= 2 + np.log(blocks / 2) / np.log(K.MIN_FILL)
    nodes_used = sum(len(level) for level in levels)
    assert nodes_used <= K.tree_rows(num._S.shape[0])
    _sound(num)
    _assert_same(num, ref)
    high_water = int(num._C[K.TREE_HW])
    rest = np.zeros((n // 2 + 1, 4), np.int64)
    rest[:-1, 0] = 1
    rest[:-1, 1] = np.arange(n - 1, 0, -2)
    rest[-1, 0] = 2
    full = np.r_[ops, rest]
    num2 = NumbaEngine(num.config)
    num2.run(full)
    assert _tree_levels(num2) == [[1]] and num2.stats()["free_blocks"] == 1
    assert int(num2._C[K.TREE_HW]) <= high_water  # nodes freed by merges are reused, not leaked
    _sound(num2)
    starts, ends = K.free_blocks(num2._C, num2._T)
    assert (starts.tolist(), ends.tolist()) == ([0], [num2.config.space_pages])


def test_a_tree_of_one_block_and_an_emptied_tree():
    # A fresh engine: one leaf holding the whole window. Taking the whole window out of free space
    # (which no request can do: the last page is never allocatable) leaves an empty root leaf in
    # which placement fails, and returning it restores the single block.
    num, _ = _engines("global")
    C, T, P = num._C, num._T, num._P
    space = num.config.space_pages
    assert _tree_levels(num) == [[1]] and int(C[K.TREE_HEIGHT]) == 1
    _sound(num)
    leaf, i = K._b_block_at(C, T, space - 1)
    assert (int(T[leaf, K.B_KEY + i]), int(T[leaf, K.B_VAL + i])) == (0, space)
    assert K._carve(C, T, leaf, i, 0, space) == 0  # a full fit
    assert _tree_levels(num) == [[0]] and C[K.FREE_BLOCKS] == 0 and C[K.FREE_PAGES] == 0
    _sound(num)
    assert K._place(C, P, T, 1, 1) == K.NIL
    assert K._b_block_at(C, T, 5) == (K.NIL, 0)
    K.free_range(C, T, 0, space)
    assert _tree_levels(num) == [[1]] and C[K.FREE_PAGES] == space
    _sound(num)


def test_full_window_fails_then_frees_back_to_one_block():
    # A 64-page window filled by one-page allocations (2 pages with the guard page): the 32nd fails
    # (the last page is not allocatable), then every other VA and finally all are freed.
    config = AllocatorConfig.resolve(
        "global", 4, vmalloc_start=0xFFFFC90000000000, vmalloc_size=64 << 12, lazy_max_pages=1 << 20
    )
    num, ref = NumbaEngine(config), ReferenceEngine(config)
    ops = [(0, 1, 4096, 0)] * 32 + [(1, i, 0, 0) for i in range(0, 31, 2)] + [(2, 0, 0, 0)]
    ops += [(1, i, 0, 0) for i in range(1, 31, 2)] + [(2, 0, 0, 0), (0, 62, 4096, 1)]
    ops = np.array(ops, np.int64)
    out = num.run(ops)
    np.testing.assert_array_equal(out, ref.run(ops))
    assert out[31] == -1 and out[-1] == 0 and num.stats()["alloc_failures"] == 1
    num.check_invariants()
    _assert_same(num, ref)


F, H = K.FANOUT, K.FANOUT // 2  # entries of a full node; of each half after a split (MIN_FILL)


def test_leaf_split_then_merge_collapses_the_root():
    # F blocks fill the root leaf; one more splits it (H | H + 1). Coalescing two blocks of the
    # left leaf leaves H - 1 there, which merges with its sibling (F): the root has one child and goes.
    num, ref = _one_page_holes(F)
    assert _tree_levels(num) == [[F]]
    for engine in (num, ref):
        engine.reserve(2 * F, 1, -1)
    assert _tree_levels(num) == [[2], [H, H + 1]]
    _sound(num)
    for engine in (num, ref):
        engine.free(2, 0)
        engine.drain()
    assert _tree_levels(num) == [[F]]
    _sound(num)
    _assert_same(num, ref)


def test_underfull_leaf_borrows_from_a_sibling_too_full_to_merge():
    # Leaves H | H + 2: the left one drops to H - 1, and F + 1 entries do not fit one node, so the
    # two share them evenly (H | H + 1) and the parent's start of the right leaf moves.
    num, ref = _one_page_holes(F + 2)
    assert _tree_levels(num) == [[2], [H, H + 2]]
    for engine in (num, ref):
        engine.free(2, 0)
        engine.drain()
    assert _tree_levels(num) == [[2], [H, H + 1]]
    _sound(num)
    T, root = num._T, int(num._C[K.ROOT])
    right = int(T[root, K.B_CHILD + 1])
    assert T[root, K.B_KEY + 1] == T[right, K.B_KEY] == F + 3  # the hole at F + 1 moved left
    _assert_same(num, ref)


def test_block_joining_the_first_of_the_next_leaf():
    # Free space H | H + 1 blocks; the VA between the last block of the left leaf and the first of
    # the right one is freed: the block of the left leaf grows and the right leaf's first one goes.
    num, ref = _one_page_holes(F + 1)
    assert _tree_levels(num) == [[2], [H, H + 1]]
    T, root = num._T, int(num._C[K.ROOT])
    first_right = int(T[root, K.B_KEY + 1])
    for engine in (num, ref):
        engine.free(first_right - 1, 0)
        engine.drain()
    assert first_right == F + 1
    assert _tree_levels(num) == [[2], [H, H]]
    left, right = int(T[root, K.B_CHILD]), int(T[root, K.B_CHILD + 1])
    assert (T[left, K.B_KEY + H - 1], T[left, K.B_VAL + H - 1]) == (F - 1, 3)  # [F - 1, F + 2)
    assert T[root, K.B_KEY + 1] == T[right, K.B_KEY] == F + 3
    _sound(num)
    _assert_same(num, ref)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.8, 0.95))
def test_random_reserves_allocs_and_returns_keep_the_tree_sound(seed, grow):
    # A 16384-page window: 3000 steps of exact reserves (refused where not free), lowest-fit
    # allocations (4 KiB or 16 KiB aligned) and frees of a random busy VA with a drain now and then;
    # the first 2000 steps mostly take space (probability ``grow``), the rest mostly return it, so
    # the tree grows to a thousand blocks in three levels and shrinks again, splitting, merging and
    # borrowing anywhere. The tree is checked after every step, everything against the reference
    # at the end.
    num, ref = _one_page_holes(0, space_bytes=16384 << 12)
    rng = np.random.default_rng(seed)
    busy: list[int] = []
    heights = set()
    for step in range(3000):
        take = rng.random() < (grow if step < 2000 else 1 - grow)
        size = int(rng.integers(1, 4))
        if take and rng.random() < 0.8:
            offset = int(rng.integers(0, 16384))
            outcomes = []
            for engine in (num, ref):
                try:
                    engine.reserve(offset, size, -1)
                    outcomes.append(True)
                except SimulationError:
                    outcomes.append(False)
            assert outcomes[0] == outcomes[1]
            if outcomes[0]:
                busy.append(offset)
        elif take or not busy:
            align = 4096 << 2 * int(rng.integers(0, 2))
            got = num.alloc(size, align, 0)
            assert got == ref.alloc(size, align, 0)
            if got >= 0:
                busy.append(got)
        else:
            off = busy.pop(int(rng.integers(len(busy))))
            drain = rng.random() < 0.3
            for engine in (num, ref):
                engine.free(off, 0)
                if drain:
                    engine.drain()
        _sound(num)
        heights.add(int(num._C[K.TREE_HEIGHT]))
    assert 3 in heights
    num.drain()
    ref.drain()
    num.check_invariants()
    _assert_same(num, ref)


@pytest.mark.parametrize(
    "corrupt, invariant",
    [
        (lambda e: e._T.__setitem__((e._C[K.ROOT], K.B_VAL + 1), 7), "free tree maxima"),
        (lambda e: e._T.__setitem__((e._C[K.ROOT], K.B_KEY + 1), 7), "free tree maxima"),
        (lambda e: e._T.__setitem__((e._T[e._C[K.ROOT], K.B_CHILD], K.B_PREV), 5), "free tree links"),
        (lambda e: e._T.__setitem__((e._T[e._C[K.ROOT], K.B_CHILD + 1], K.B_VAL + 1), 0), "free blocks coalesced"),
        (lambda e: e._C.__setitem__(K.BUSY_PAGES, e._C[K.BUSY_PAGES] + 1), "counters == recounts"),
        (lambda e: e._S.__setitem__((1, K.S_ALIGN), 1 << 20), "aligned as requested"),
        (lambda e: e._S.__setitem__((1, K.S_START), 0), "disjoint"),
        (lambda e: e._C.__setitem__(K.PTE_PAGES, 0), "counters == recounts"),
        (lambda e: e._C.__setitem__(K.FREES, e._C[K.FREES] + 1), r"allocs - frees != busy_areas"),
        (lambda e: e._C.__setitem__(K.HIGH_WATER, 1), "above va_high_water"),
    ],
)
def test_check_invariants_names_what_broke(corrupt, invariant):
    num, _ = _engines("nodes", lazy_max_pages=1 << 20)
    num.run(_churn(400, seed=4))
    num.check_invariants()
    assert num._C[K.TREE_HEIGHT] == 2  # corruptions name entries of the root and of its leaves
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
