"""Kernel-derived scenarios of the allocator model, on both engines (docs/allocator-model.md).

Offsets are pages from VMALLOC_START; a VA of ``pages`` caller pages is ``pages + 1`` long.
VMALLOC_START (4-level) is 2^40-aligned, so page offset parity is address parity.
"""

from __future__ import annotations

import numpy as np
import pytest

from vmaplab.errors import SimulationError
from vmaplab.sim.params import AllocatorConfig
from vmaplab.sim.reference import ReferenceEngine

SPACE = 1 << 33  # pages in the 4-level window (32 TiB)
BASE = AllocatorConfig.resolve().base_page


def test_lazy_max_pages_is_fls_times_32mib():
    assert AllocatorConfig.resolve("nodes", 64).lazy_max_pages == 57344  # 7 * 8192: 224 MiB
    assert AllocatorConfig.resolve("global", 1).lazy_max_pages == 8192
    assert AllocatorConfig.resolve("nodes", 256).nr_nodes == 128


@pytest.mark.parametrize("design", ["global", "nodes"])
def test_lowest_address_first_fit(make_engine, design):
    eng = make_engine(design, 64)
    assert [eng.alloc(p, 4096, 0) for p in (1, 3, 10)] == [0, 2, 6]
    st = eng.stats()
    assert (st["busy_pages"], st["busy_areas"], st["fit_left"], st["allocs"]) == (17, 3, 3, 3)
    assert st["busy_pages"] + st["free_pages"] == SPACE
    assert st["va_high_water"] == 17 * 4096
    eng.check_invariants()


def test_lazy_area_is_reused_only_after_a_drain(make_engine):
    eng = make_engine("global", 64)
    a = eng.alloc(10, 4096, 0)
    eng.free(a, 0)
    assert eng.stats()["lazy_pages"] == 11
    assert eng.alloc(10, 4096, 0) == 11  # the lazy VA still holds [0, 11)
    eng.drain()
    st = eng.stats()
    assert (st["lazy_pages"], st["purges"], st["tlb_flushes"], st["drains"]) == (0, 1, 1, 1)
    assert eng.alloc(10, 4096, 0) == 0  # the 11-page hole fits exactly
    assert eng.stats()["fit_full"] == 1
    eng.check_invariants()


def test_fit_classes_left_middle_full(make_engine):
    eng = make_engine("global", 64)
    eng.alloc(2, 4096, 0)  # [0, 3)
    assert eng.alloc(1, 8192, 0) == 4  # [3, ...) aligned to 2 pages: a gap stays on the left
    hole = eng.alloc(4, 4096, 0)  # [6, 11)
    eng.alloc(1, 4096, 0)  # [11, 13)
    eng.free(hole, 0)
    eng.drain()
    assert eng.alloc(4, 4096, 0) == 6  # the hole exactly
    st = eng.stats()
    assert (st["fit_left"], st["fit_middle"], st["fit_full"], st["fit_right"]) == (3, 1, 1, 0)
    assert eng.state()["free"][0].tolist() == [3, 13]
    eng.check_invariants()


def test_search_length_includes_the_alignment(make_engine):
    # A 11-page hole at offset 0 (aligned to anything up to 1 TiB) is skipped by a 1-page request at
    # 64 KiB alignment: the search length is 2 + 16 pages, as the kernel's size + align - 1 bytes.
    eng = make_engine("global", 64)
    hole = eng.alloc(10, 4096, 0)
    eng.alloc(1, 4096, 0)  # [11, 13)
    eng.free(hole, 0)
    eng.drain()
    assert eng.alloc(1, 65536, 0) == 16
    assert eng.alloc(1, 8192, 0) == 0  # length 4 fits the hole
    eng.check_invariants()


def test_alignment_is_of_the_absolute_address(make_engine):
    eng = make_engine("global", 64)
    assert eng.alloc(1, 1 << 40, 0) == 0  # VMALLOC_START is 2^40-aligned ...
    assert eng.alloc(1, 1 << 41, 0) == 1 << 28  # ... but not 2^41-aligned: 1 TiB in
    assert eng.alloc(1, 1 << 21, 0) == 512
    eng.check_invariants()


@pytest.mark.parametrize("levels, first_failure", [(4, 45), (5, 54)])
def test_align_shift_alloc_fails_first_where_the_window_ends(make_engine, levels, first_failure):
    # align_shift_alloc_test: 1 page at 2^i, i = 0, 1, ...; each area is freed again.
    eng = make_engine("nodes", 64, paging_levels=levels)
    base = eng.config.base_page
    for i in range(63):
        off = eng.alloc(1, 1 << i, 0)
        if off < 0:
            break
        assert (base + off) % max(1, (1 << i) // 4096) == 0
        eng.free(off, 0)
    assert i == first_failure
    st = eng.stats()
    assert (st["alloc_failures"], st["allocs"]) == (1, first_failure)
    eng.check_invariants()


def test_last_page_of_the_window_is_never_allocated(make_engine):
    eng = make_engine("global", 64)
    assert eng.alloc(SPACE - 1, 4096, 0) == -1  # SPACE pages with the guard: would end on the last page
    assert eng.stats()["alloc_failures"] == 1
    assert eng.alloc(SPACE - 2, 4096, 0) == 0  # ends just below the last page
    assert eng.alloc(1, 4096, 0) == -1  # only the last page is left
    st = eng.stats()
    assert (st["free_pages"], st["alloc_failures"], st["pte_pages"], st["pmd_pages"]) == (1, 2, SPACE // 512, SPACE // 512 // 512)
    eng.check_invariants()


def test_exhaustion_purges_and_retries_once(make_engine):
    eng = make_engine("global", 64, auto_drain=False)
    big = eng.alloc(SPACE - 20, 4096, 0)  # [0, SPACE - 19)
    eng.alloc(5, 4096, 0)  # [SPACE - 19, SPACE - 13)
    eng.free(big, 0)
    assert eng.stats()["drain_pending"] == 1
    assert eng.alloc(30, 4096, 0) == 0  # fails in the 13-page tail, purges, succeeds at 0
    st = eng.stats()
    assert (st["purges"], st["tlb_flushes"], st["alloc_failures"], st["lazy_pages"], st["drains"]) == (1, 1, 0, 0, 0)
    assert st["drain_pending"] == 1  # the scheduled drain work is still queued
    assert eng.alloc(SPACE, 4096, 0) == -1  # nothing left to purge: fails
    assert eng.stats()["purges"] == 1  # a purge with no lazy areas counts nothing
    eng.check_invariants()


@pytest.mark.parametrize("design", ["global", "nodes"])
def test_free_pushing_lazy_over_lazy_max_drains(make_engine, design):
    eng = make_engine(design, 64)  # lazy_max_pages = 57344; VAs of 10001 pages skip the pools
    offs = [eng.alloc(10000, 4096, 0) for _ in range(6)]
    for off in offs[:5]:
        eng.free(off, 0)
    st = eng.stats()
    assert (st["lazy_pages"], st["drains"], st["drain_pending"]) == (50005, 0, 0)
    eng.free(offs[5], 0)  # 60006 > 57344
    st = eng.stats()
    assert (st["lazy_pages"], st["drains"], st["purges"], st["tlb_flushes"], st["drain_pending"]) == (0, 1, 1, 1, 0)
    assert (st["free_blocks"], st["free_pages"], st["purge_helpers"]) == (1, SPACE, 0)
    eng.check_invariants()


def test_pending_drain_waits_without_auto_drain(make_engine):
    eng = make_engine("global", 64, auto_drain=False, lazy_max_pages=10)
    eng.free(eng.alloc(10, 4096, 0), 0)
    st = eng.stats()
    assert (st["lazy_pages"], st["drain_pending"], st["drains"]) == (11, 1, 0)
    eng.drain()
    st = eng.stats()
    assert (st["lazy_pages"], st["drain_pending"], st["drains"], st["purges"]) == (0, 0, 1, 1)


@pytest.mark.parametrize("pages, expected_helpers", [(99, 3), (59, 1)])
def test_purge_helpers_per_lazy_max_set(make_engine, pages, expected_helpers):
    # 4 marked nodes; lazy_pages // lazy_max_pages = 4 (400 pages) or 2 (240 pages) helpers - 1.
    eng = make_engine("nodes", 8, lazy_max_pages=100, auto_drain=False)
    offs = [eng.alloc(pages, 4096, cpu) for cpu in range(4)]
    for off in offs:
        eng.free(off, 0)
    assert [len(node) for node in eng.state()["lazy"]] == [1, 1, 1, 1, 0, 0, 0, 0]
    eng.drain()
    assert eng.stats()["purge_helpers"] == expected_helpers


def test_freed_va_goes_to_the_lazy_list_of_its_cpu_node(make_engine):
    eng = make_engine("nodes", 200)  # 128 nodes
    small, large = eng.alloc(1, 4096, 133), eng.alloc(300, 4096, 7)  # CPU 133 is on node 5
    eng.free(small, 0)
    eng.free(large, 0)
    lazy = eng.state()["lazy"]
    assert lazy[5] == [(0, 2)] and lazy[7] == [(2, 301)]
    assert sum(len(node) for node in lazy) == 2
    eng.drain()
    state = eng.state()
    assert state["pools"] == {(5, 1): [0]}  # the 301-page VA is too big for a pool
    assert state["free"][0].tolist() == [2]


def test_pool_refill_in_address_order_and_hits(make_engine):
    eng = make_engine("nodes", 64, nr_nodes=32)
    offs = [eng.alloc(1, 4096, 3) for _ in range(3)]
    assert offs == [0, 2, 4]
    for off in offs:
        eng.free(off, 3)
    eng.drain()
    assert eng.state()["pools"] == {(3, 1): [4, 2, 0]}  # head = highest address
    st = eng.stats()
    assert (st["pooled_pages"], st["pooled_areas"], st["lazy_areas"], st["free_pages"]) == (6, 3, 0, SPACE - 6)
    assert eng.alloc(1, 4096, 35) == 4  # CPU 35 is node 3: a hit on the head
    assert eng.alloc(1, 4096, 4) == 6  # node 4 has no pool: a miss, placed in free space
    assert eng.alloc(2, 4096, 3) == 8  # another size class: a miss
    st = eng.stats()
    assert (st["pool_hits"], st["pool_misses"], st["pool_rotations"]) == (1, 5, 0)
    assert eng.state()["pools"] == {(3, 1): [2, 0]}
    eng.check_invariants()


def _pool_of(eng, n, cpu=0):
    """Fill the pool of 1-page VAs of ``cpu``'s node with ``n`` VAs at offsets 0, 2, ..., 2n - 2."""
    offs = [eng.alloc(1, 4096, cpu) for _ in range(n)]
    for off in offs:
        eng.free(off, cpu)
    eng.drain()
    return offs


@pytest.mark.parametrize("mode, left", [("drain", {}), ("keep", {(0, 1): [4, 2, 0]})])
def test_decay_of_a_pool_of_three(make_engine, mode, left):
    eng = make_engine("nodes", 64, small_pool_decay=mode)
    _pool_of(eng, 3)
    eng.drain()  # nothing lazy: only the decay
    assert eng.state()["pools"] == left
    st = eng.stats()
    assert (st["decayed"], st["drains"], st["purges"]) == (3 if mode == "drain" else 0, 2, 1)
    eng.check_invariants()


def test_decay_of_eight_removes_two_from_the_head(make_engine):
    eng = make_engine("nodes", 64)
    _pool_of(eng, 8)
    eng.drain()
    assert eng.state()["pools"] == {(0, 1): [10, 8, 6, 4, 2, 0]}
    assert eng.state()["free"][0].tolist() == [12]  # the decayed VAs coalesced with the free tail
    eng.drain()
    assert eng.state()["pools"] == {(0, 1): [8, 6, 4, 2, 0]}  # floor(6 / 4) = 1
    assert eng.stats()["decayed"] == 3
    eng.check_invariants()


def test_decay_knob_is_the_fraction_per_drain(make_engine):
    eng = make_engine("nodes", 64, decay=0.5)
    _pool_of(eng, 8)
    eng.drain()
    assert eng.state()["pools"] == {(0, 1): [6, 4, 2, 0]}


def test_unaligned_head_rotates_to_the_tail(make_engine):
    eng = make_engine("nodes", 64)
    assert eng.alloc(2, 4096, 0) == 0  # [0, 3): the 1-page VAs after it start at odd pages
    offs = [eng.alloc(1, 4096, 0) for _ in range(3)]
    assert offs == [3, 5, 7]
    for off in offs:
        eng.free(off, 0)
    eng.drain()
    assert eng.state()["pools"] == {(0, 1): [7, 5, 3]}
    assert eng.alloc(1, 8192, 0) == 10  # head 7 is not 8 KiB aligned: rotated, placed at 10
    assert eng.state()["pools"] == {(0, 1): [5, 3, 7]}
    assert eng.alloc(1, 8192, 0) == 12
    assert eng.state()["pools"] == {(0, 1): [3, 7, 5]}
    assert eng.alloc(1, 4096, 0) == 3  # page alignment: a hit
    st = eng.stats()
    assert (st["pool_hits"], st["pool_misses"], st["pool_rotations"]) == (1, 6, 2)  # the 3-page VA missed too
    eng.check_invariants()


def test_alloc_failure_purge_decays_every_pool_and_skips_refill(make_engine):
    eng = make_engine("nodes", 64, auto_drain=False)
    _pool_of(eng, 2, cpu=1)  # pool (1, 1): [2, 0]
    eng.free(eng.alloc(1, 4096, 2), 2)  # a lazy VA at 4 on node 2
    assert eng.alloc(1, 1 << 45, 9) == -1  # 32 TiB alignment never fits
    state, st = eng.state(), eng.stats()
    assert state["pools"] == {} and all(not node for node in state["lazy"])
    assert state["free"][0].tolist() == [0]
    assert (st["decayed"], st["purges"], st["tlb_flushes"], st["alloc_failures"]) == (2, 2, 2, 1)
    assert st["pool_misses"] == 4  # two fills, the lazy VA, the failing request
    eng.check_invariants()


def test_shrink_empties_the_pools_and_keeps_lazy_areas(make_engine):
    eng = make_engine("nodes", 64, auto_drain=False)
    _pool_of(eng, 3)
    eng.free(eng.alloc(5, 4096, 1), 1)
    assert eng.shrink() == 3
    state, st = eng.state(), eng.stats()
    assert state["pools"] == {} and state["lazy"][1] == [(6, 6)]
    assert (st["decayed"], st["purges"], st["lazy_pages"]) == (3, 1, 6)
    assert eng.shrink() == 0
    eng.check_invariants()


def test_global_design_never_pools(make_engine):
    eng = make_engine("global", 64)
    _pool_of(eng, 3, cpu=3)
    st = eng.stats()
    assert eng.state()["pools"] == {} and st["free_blocks"] == 1
    assert (st["pool_hits"], st["pool_misses"], st["nr_nodes"]) == (0, 0, 1)
    assert eng.shrink() == 0


def test_one_node_has_no_pools(make_engine):
    eng = make_engine("nodes", 64, nr_nodes=1)
    _pool_of(eng, 3, cpu=3)
    assert eng.state()["pools"] == {} and eng.stats()["pool_misses"] == 0


@pytest.mark.parametrize("cap, lazy_max, pooled", [(2, None, [2, 0]), (0, None, []), ("lazy_max", 2, [4, 2, 0])])
def test_pool_cap(make_engine, cap, lazy_max, pooled):
    # int: at most cap VAs; "lazy_max": refuse once a pool already holds more than lazy_max_pages.
    eng = make_engine("nodes", 64, pool_cap=cap, lazy_max_pages=lazy_max, auto_drain=False)
    _pool_of(eng, 5)
    assert eng.state()["pools"].get((0, 1), []) == pooled
    free_starts = eng.state()["free"][0].tolist()
    assert free_starts == [2 * len(pooled)]
    eng.check_invariants()


def test_page_tables_of_a_known_placement(make_engine):
    eng = make_engine("global", 64)
    assert eng.alloc(511, 4096, 0) == 0  # pages 0..510, guard 511: one PTE page
    assert eng.stats()["pte_pages"] == 1
    assert eng.alloc(512, 4096, 0) == 512  # pages 512..1023; the guard at 1024 is not mapped
    assert eng.stats()["pte_pages"] == 2
    far = eng.alloc(1, 1 << 30, 0)  # the next 1 GiB boundary
    assert far == 1 << 18
    st = eng.stats()
    assert (st["pte_pages"], st["pmd_pages"], st["va_high_water"]) == (3, 2, ((1 << 18) + 2) * 4096)
    for off in (0, 512, far):
        eng.free(off, 0)
    eng.drain()
    state, st = eng.state(), eng.stats()
    assert (st["pte_pages"], st["pmd_pages"], st["busy_areas"]) == (3, 2, 0)  # never freed
    assert state["pte_regions"].tolist() == [BASE // 512, BASE // 512 + 1, BASE // 512 + 512]
    assert state["pmd_regions"].tolist() == [BASE // 512**2, BASE // 512**2 + 1]


def test_pool_hit_keeps_the_high_water_mark(make_engine):
    eng = make_engine("nodes", 64)
    _pool_of(eng, 4)
    before = eng.stats()["va_high_water"]
    assert eng.alloc(1, 4096, 0) == 6
    assert eng.stats()["va_high_water"] == before == 8 * 4096


def test_run_rows(make_engine):
    eng = make_engine("nodes", 8, nr_nodes=4, auto_drain=False)
    ops = np.array(
        [
            [0, 1, 4096, 1],  # 0: alloc -> 0
            [0, 3, 4096, 2],  # 1: alloc -> 2
            [0, 1, 1 << 45, 0],  # 2: fails
            [1, 0, 0, 1],  # 3: free row 0
            [1, 2, 0, 0],  # 4: free of a failed row: nothing
            [2, 0, 0, 0],  # 5: drain: row 0's VA goes to pool (1, 1)
            [0, 1, 4096, 5],  # 6: CPU 5 is node 1: a hit
            [3, 0, 0, 0],  # 7: shrink
        ],
        dtype=np.int64,
    )
    assert eng.run(ops).tolist() == [0, 2, -1, -1, -1, -1, 0, -1]
    st = eng.stats()
    assert (st["pool_hits"], st["allocs"], st["frees"], st["drains"], st["alloc_failures"]) == (1, 3, 1, 1, 1)
    eng.check_invariants()


@pytest.mark.parametrize("align", [4096, 1 << 45])  # a placed row and a failed row
def test_run_double_free_raises(make_engine, align):
    eng = make_engine("global", 2)
    with pytest.raises(SimulationError):
        eng.run(np.array([[0, 1, align, 0], [1, 0, 0, 0], [1, 0, 0, 0]], dtype=np.int64))


def test_free_of_no_busy_va_raises(make_engine):
    eng = make_engine("nodes", 4)
    off = eng.alloc(2, 4096, 0)
    with pytest.raises(SimulationError, match="no busy VA"):
        eng.free(off + 1, 0)
    eng.free(off, 0)
    with pytest.raises(SimulationError, match="no busy VA"):
        eng.free(off, 0)


def test_stats_keys_follow_the_spec(make_engine):
    keys = (
        "busy_pages lazy_pages pooled_pages free_pages busy_areas lazy_areas pooled_areas free_blocks "
        "va_high_water pte_pages pmd_pages pool_hits pool_misses pool_rotations purges drains "
        "tlb_flushes purge_helpers decayed allocs frees alloc_failures fit_full fit_left fit_right "
        "fit_middle drain_pending lazy_max_pages nr_nodes space_pages"
    ).split()
    st = make_engine("nodes", 200, paging_levels=5).stats()
    assert list(st) == keys
    assert all(type(v) is int for v in st.values())
    assert (st["nr_nodes"], st["lazy_max_pages"], st["space_pages"]) == (128, 8 * 8192, 12800 << 28)


# -- the reference's invariant checker catches broken states -------------------------------------


def _broken(change):
    eng = ReferenceEngine(AllocatorConfig.resolve("nodes", 4, auto_drain=False))
    _pool_of(eng, 2)
    eng.free(eng.alloc(3, 4096, 1), 1)
    eng.alloc(1, 8192, 2)
    eng.check_invariants()
    change(eng)
    return eng


@pytest.mark.parametrize(
    "change, invariant",
    [
        (lambda e: e._free.__setitem__(5, 7), "disjoint"),
        (lambda e: e._free.__setitem__(10, SPACE - 1), "busy\\+lazy\\+pooled\\+free == space_pages"),
        (lambda e: (e._free.pop(10), e._free.__setitem__(10, 20), e._free.__setitem__(20, SPACE)), "coalesced"),
        (lambda e: setattr(e._busy[8], "align", 1 << 20), "aligned as requested"),
        (lambda e: setattr(e._pools[(0, 1)][0], "tag", 3), "belong to their node"),
        (lambda e: e._pools.__setitem__((0, 3), e._pools.pop((0, 1))), "class size"),
        (lambda e: setattr(e, "_lazy_pages", 5), "lazy_pages"),
        (lambda e: e._events.__setitem__("frees", 9), "allocs - frees"),
    ],
)
def test_check_invariants_names_the_broken_invariant(change, invariant):
    eng = _broken(change)
    with pytest.raises(SimulationError, match=invariant):
        eng.check_invariants()


@pytest.mark.parametrize(
    "rows, message",
    [
        ([[2, 0, 0, 0], [1, 0, 0, 0]], "earlier alloc row"),
        ([[1, 1, 0, 0], [0, 1, 4096, 0]], "earlier alloc row"),
        ([[7, 0, 0, 0]], "unknown operation"),
    ],
)
def test_reference_run_rejects_rows_the_facade_would_refuse(rows, message):
    eng = ReferenceEngine(AllocatorConfig.resolve("global", 2))
    with pytest.raises(SimulationError, match=message):
        eng.run(np.array(rows, dtype=np.int64))
