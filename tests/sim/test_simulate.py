"""The seed's figures as acceptance tests of ``vmaplab.simulate`` (docs/calibration.md).

The full ones run a 64-CPU machine at the published loop count and take tens of minutes on CI's 2
cores: they run only with ``VMAPLAB_SLOW=1``. The scaled ones keep the mechanism (same tests, fewer CPUs and loops) and run
in CI. Published figures (the vmap-node cover letter and the pagetable_alloc thread): run_test_mask=7
nr_threads=64 on 64 CPUs, 651 s and 93.07 % slowpath self (6.7) vs 51 s and 16.51 % (6.9);
run_test_mask=127 at 64/128/256 threads: pagetable_alloc 350 MiB / 1.20 GiB / 5.36 GiB, no growth on
a rerun.
"""

from __future__ import annotations

import os

import pytest

import vmaplab
from vmaplab.sim import Machine

slow = pytest.mark.skipif(not os.environ.get("VMAPLAB_SLOW"), reason="64-CPU seed runs: set VMAPLAB_SLOW=1")


def test_scaled_contention_global_vs_nodes():
    kw = dict(threads=16, cpus=16, tests=7, seed=1)
    g = vmaplab.simulate("global", loops=2000, **kw)
    n = vmaplab.simulate("nodes", loops=2000, **kw)
    assert g.lock_spin_share > n.lock_spin_share
    assert g.lock_spin_by_lock["vmap_area_lock"] > 0.5  # the busy tree's lock, three sections per pair
    assert n.lock_spin_by_lock["vmap_area_lock"] == 0 and n.lock_spin_by_lock["busy.lock"] > 0
    assert n.pairs_per_second > 2 * g.pairs_per_second
    assert n.stats["pool_hits"] > 0 and g.stats["pool_hits"] == 0
    # the per-test split of the pool look-ups adds up to the allocator's counters
    by = n.pool_by_test
    assert list(by.test) == ["fix_size_alloc_test", "full_fit_alloc_test", "long_busy_list_alloc_test"]
    assert by.hits.sum() == n.stats["pool_hits"] and by.misses.sum() == n.stats["pool_misses"]
    assert ((by.hit_rate > 0) & (by.hit_rate < 1)).all()
    assert g.pool_by_test.hits.sum() == 0 and g.pool_by_test.hit_rate.isna().all()


@pytest.fixture(scope="module")
def scaled_chains():
    """8 -> 16 -> 32 -> 32 threads on one 8-CPU machine, loops=300, seeds 0-3 (the rerun's seed + 1): the
    page-table bytes after the three steps, and what the rerun added (a fraction)."""
    out = []
    for seed in range(4):
        m = Machine("nodes", cpus=8)
        sizes = [vmaplab.simulate("nodes", threads=t, tests=127, loops=300, machine=m, seed=seed).pagetable_bytes
                 for t in (8, 16, 32)]  # fmt: skip
        again = vmaplab.simulate("nodes", threads=32, tests=127, loops=300, machine=m, seed=seed + 1)
        m.check_invariants()
        out.append((sizes, again.pagetable_bytes / sizes[2] - 1))
    return out


def test_scaled_pagetables_grow_with_threads_and_never_shrink(scaled_chains):
    # seeds 0-3: 3.3 / 3.2 / 3.8 / 4.1x for 4x the threads; reruns +8.5 / +0.1 / +14.0 / +1.5 %
    # (docs/calibration.md, twenty-third pass)
    for sizes, added in scaled_chains:
        assert sizes[0] < sizes[1] < sizes[2] and added >= 0
    assert max(added for _, added in scaled_chains) < 0.15


@pytest.mark.xfail(strict=True, reason="a rerun adds >= 5 % in two of the four scaled chains (docs/calibration.md)")
def test_scaled_pagetables_a_rerun_adds_little(scaled_chains):
    # acceptance 2: a second run with the same thread count adds < 5 %; the flat merge cost of the
    # twenty-second pass met it in all four chains, merges charged by the free tree's depth in two
    assert sum(added < 0.05 for _, added in scaled_chains) >= 3


def test_a_copied_machine_branches_without_touching_the_original():
    m = Machine("nodes", cpus=8)
    vmaplab.simulate("nodes", threads=16, tests=127, loops=200, machine=m, seed=3)
    before = m.stats()
    branch = m.copy()
    a = vmaplab.simulate("nodes", threads=32, tests=127, loops=200, machine=branch, seed=4)
    assert m.stats() == before and len(m.runs) == 1 and len(branch.runs) == 2  # the original is untouched
    b = vmaplab.simulate("nodes", threads=32, tests=127, loops=200, machine=m, seed=4)
    assert b.pagetable_bytes == a.pagetable_bytes > 0 and b.wall_seconds == a.wall_seconds
    assert m.stats() == branch.stats() and b.stats == a.stats  # same state, same seed: the same run
    branch.check_invariants()


@slow
def test_seed_lock_contention_64_cpus():
    # the published run itself: test_loop_count 1,000,000 (about 4 min for 6.7 and 8 for 6.9 here)
    kw = dict(threads=64, cpus=64, tests=7, loops=1_000_000, seed=0)
    g = vmaplab.simulate("global", **kw)
    n = vmaplab.simulate("nodes", **kw)
    assert g.lock_spin_share >= 0.85
    assert n.pairs_per_second >= 8 * g.pairs_per_second
    assert n.lock_spin_share <= 0.25  # published 16.51 %; the model gives 0.215 for seed 0
    # (docs/calibration.md, twenty-third pass)


@pytest.fixture(scope="module")
def seed_chain_64_cpus():
    """The seed's chain at loops=10,000 on one 64-CPU machine (seed 0), and a rerun at 256 threads (seed 1):
    page-table bytes after each run."""
    m = Machine("nodes", cpus=64)
    sizes = [vmaplab.simulate("nodes", threads=t, tests=127, loops=10_000, machine=m, seed=0).pagetable_bytes
             for t in (64, 128, 256)]  # fmt: skip
    again = vmaplab.simulate("nodes", threads=256, tests=127, loops=10_000, machine=m, seed=1).pagetable_bytes
    return sizes, again


@slow
def test_seed_pagetables_64_cpus_grow_faster_than_linear(seed_chain_64_cpus):
    # the model (docs/calibration.md, twenty-third pass): 113.7 / 300.7 / 809.2 MiB, 7.1x for 4x the
    # threads (x2.64, then x2.69; published 350 MiB / 1.20 GiB / 5.36 GiB, x3.5 then x4.5)
    sizes, _ = seed_chain_64_cpus
    assert sizes[1] > 2 * sizes[0] and sizes[2] > 2 * sizes[1]  # faster than linear at each doubling


@slow
@pytest.mark.xfail(strict=True, reason="a 256-thread rerun adds 25 % at loops=10,000 (docs/calibration.md)")
def test_seed_pagetables_64_cpus_a_rerun_adds_little(seed_chain_64_cpus):
    # published: a rerun does not add; the model's rerun (seed 1) adds 24.7 %: the drain's runaway at
    # 256 threads is another draw (twenty-third pass)
    sizes, again = seed_chain_64_cpus
    assert again < 1.05 * sizes[2]
