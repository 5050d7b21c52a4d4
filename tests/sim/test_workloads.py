"""test_vmalloc's tests as operation programs (lib/test_vmalloc.c, 6.7/6.9)."""

import numpy as np
import pytest

from vmaplab.sim.costs import SEED_PROFILE_CPU_S, SEED_RUN_PAGES, SEED_RUN_PAIRS, CostModel
from vmaplab.sim.workloads import (
    OP_ALLOC,
    OP_FREE,
    TESTS,
    ModuleParams,
    allocations_per_repetition,
    parse_test_mask,
    worker_program,
)


def _check_balanced(rows):
    allocs = np.flatnonzero(rows[:, 0] == OP_ALLOC)
    frees = rows[rows[:, 0] == OP_FREE, 1]
    # every area is freed exactly once, after it was allocated
    assert sorted(frees.tolist()) == allocs.tolist()
    assert all(rows[i, 0] == OP_ALLOC and i < pos for pos, i in zip(np.flatnonzero(rows[:, 0] == OP_FREE), frees))


def test_parse_test_mask():
    assert parse_test_mask(7) == 7
    assert parse_test_mask(["fix_size_alloc_test", "long_busy_list_alloc_test"]) == 0b101
    assert [t.name for t in ModuleParams(run_test_mask=127).tests()][-1] == "align_shift_alloc_test"
    with pytest.raises(ValueError, match="pcpu_alloc_test"):
        parse_test_mask(255)
    with pytest.raises(ValueError, match="unknown"):
        parse_test_mask(["no_such_test"])
    with pytest.raises(ValueError):
        parse_test_mask(0)


@pytest.mark.parametrize("test", [t for t in TESTS if t.bit <= 6], ids=lambda t: t.name)
def test_programs_free_everything_they_allocate(test):
    rows = worker_program(test, ModuleParams(test_loop_count=50), cpus=2, rng=np.random.default_rng(0))
    _check_balanced(rows)


@pytest.mark.parametrize("test", [t for t in TESTS if t.bit <= 6], ids=lambda t: t.name)
@pytest.mark.parametrize(("loops", "cpus"), [(50, 2), (7, 64)])
def test_allocations_per_repetition_counts_the_programs_allocations(test, loops, cpus):
    params = ModuleParams(test_loop_count=loops)
    rows = worker_program(test, params, cpus=cpus, rng=np.random.default_rng(0))
    assert allocations_per_repetition(test, params, cpus) == np.count_nonzero(rows[:, 0] == OP_ALLOC)


def test_allocations_per_repetition_refuses_unmodelled_tests():
    with pytest.raises(ValueError, match="pcpu_alloc_test is not modelled"):
        allocations_per_repetition(TESTS[7], ModuleParams(), 4)


def test_full_fit_sizes_from_the_cpu_count():
    params = ModuleParams(test_loop_count=10)
    rows = worker_program(TESTS[1], params, cpus=64, rng=np.random.default_rng(0))
    junk = 7 * 8192  # fls(64) * 32 MiB / 4 KiB, as lazy_max_pages()
    assert rows[0].tolist() == [OP_ALLOC, 112, 1]  # 57344 pointers of 8 bytes = 112 pages
    assert len(rows) == 2 + 2 * junk + junk + 2 * 10 + junk + 2


def test_random_size_align_ranges():
    rows = worker_program(TESTS[5], ModuleParams(test_loop_count=2000), cpus=2, rng=np.random.default_rng(1))
    allocs = rows[rows[:, 0] == OP_ALLOC]
    assert allocs[:, 1].min() == 1 and allocs[:, 1].max() == 10
    assert allocs[:, 2].min() == 1 and allocs[:, 2].max() == 1 << 22


def _seed_run_allocs(count) -> int:
    """``count(rows)`` summed over the alloc rows of the seed's profiled run: the three programs of
    run_test_mask=7 on 64 CPUs at 1,000,000 loops, for 64 workers (affine in the loop count: two
    counts extrapolate it)."""

    def per_worker(loops):
        params = ModuleParams(run_test_mask=7, test_loop_count=loops)
        rng = np.random.default_rng(0)
        return sum(count(rows[rows[:, 0] == OP_ALLOC]) for rows in
                   (worker_program(test, params, 64, rng) for test in params.tests()))  # fmt: skip

    one, two = per_worker(1000), per_worker(2000)
    return 64 * (one + (two - one) * 999)


def _cost_from_share(pct: float, calls: int) -> int:
    """A profile-derived cost, ns: a share (%) of the 3264 CPU-seconds over the calls made."""
    return round(pct / 100 * SEED_PROFILE_CPU_S / calls * 1e9)


def test_per_page_costs_follow_from_the_seed_profile():
    """The page count behind the per-page costs (costs.SEED_RUN_PAGES) is what the seed's profiled run
    allocates, and each per-page cost is its function's share of the published 6.9 profile
    (data/seed/perf-report-vmap-nodes.txt, read by vmaplab's perf reader) times 3264 CPU-seconds over
    those pages."""
    from vmaplab import report

    assert _seed_run_allocs(lambda allocs: int(allocs[:, 1].sum())) == SEED_RUN_PAGES
    share = report.published_profiles()[1].set_index("symbol")
    per_page = {
        "page_zero_ns": share.loc["clear_page_rep", "self_pct"],
        "page_alloc_ns": share.loc["__alloc_pages_bulk", "children_pct"] - share.loc["clear_page_rep", "self_pct"],
        "page_free_ns": share.loc["free_unref_page", "children_pct"],
    }
    costs = CostModel()
    for name, pct in per_page.items():
        assert _cost_from_share(pct, SEED_RUN_PAGES) == getattr(costs, name), name


def test_per_call_costs_follow_from_the_seed_profile():
    """The pair count behind the per-call costs (costs.SEED_RUN_PAIRS) is how many areas the seed's
    profiled run allocates, and vmalloc_ns, vfree_ns and lazy_add_ns are the self shares of
    __vmalloc_node_range, vfree.part.0 and free_vmap_area_noflush in the published 6.9 profile times
    3264 CPU-seconds over those calls."""
    from vmaplab import report

    assert _seed_run_allocs(len) == SEED_RUN_PAIRS
    share = report.published_profiles()[1].set_index("symbol")["self_pct"]
    costs = CostModel()
    for name, symbol in [("vmalloc_ns", "__vmalloc_node_range"), ("vfree_ns", "vfree.part.0"),
                         ("lazy_add_ns", "free_vmap_area_noflush")]:  # fmt: skip
        assert _cost_from_share(share[symbol], SEED_RUN_PAIRS) == getattr(costs, name), name
