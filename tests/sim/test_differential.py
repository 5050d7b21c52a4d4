"""The numba engine against the reference engine on random operation streams (hypothesis).

Streams mix allocations of random sizes (pool classes, up to 300 pages, sometimes millions),
alignments from 1 B to 2^62 B (2^45 B and up never fit the window, so they exercise the
allocation-failure purge), random CPUs, frees of random live rows, drains and shrinks, under random
knobs of both designs. The reference runs one operation at a time and checks its invariants after
every step; the numba engine runs the stream in one ``run`` call (and, in the second test, step by
step). Results, ``stats()`` and ``state()`` must be identical.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmaplab.errors import SimulationError
from vmaplab.sim.numba_engine import NumbaEngine
from vmaplab.sim.params import AllocatorConfig
from vmaplab.sim.reference import OP_ALLOC, OP_DRAIN, OP_FREE, OP_SHRINK, ReferenceEngine

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_SIZES = {
    "any": st.integers(1, 300),
    "big": st.integers(1 << 18, 1 << 22),  # 1-16 GiB: several PMD regions
}
_ALIGNS = {
    "page": st.integers(0, 12),  # 1 B .. 4 KiB: page alignment
    "mid": st.one_of(st.integers(13, 14), st.integers(13, 22)),  # 8 KiB .. 4 MiB, as test_vmalloc
    # 1 TiB .. 2^62 from a 2^40-aligned VMALLOC_START: two 2^44 areas fill the 32 TiB window (a
    # third fails unless a purge returns one of them), 2^45 and up never fit
    "huge": st.sampled_from([40, 41, 42, 43, 44, 44, 44, 45, 51, 62]),
}


@st.composite
def configs(draw) -> AllocatorConfig:
    """A resolved configuration of either design with random knobs (pools twice as often)."""
    design = draw(st.sampled_from(["global", "nodes", "nodes"]))
    cpus = draw(st.sampled_from([1, 2, 3, 4, 8, 64, 200]))
    knobs = {
        "nr_nodes": draw(st.one_of(st.none(), st.integers(1, 4))) if design == "nodes" else None,  # global: none
        "lazy_max_pages": draw(st.one_of(st.none(), st.integers(0, 4), st.integers(0, 700))),
        "decay": draw(st.sampled_from([0.25, 0.25, 0.5, 0.3, 0.0, 1.0])),
        "small_pool_decay": draw(st.sampled_from(["drain", "keep"])),
        "pool_cap": draw(st.sampled_from([None, None, 0, 1, 3, "lazy_max"])),
        "zone_pages": draw(st.sampled_from([16, 1, 5])),
        "paging_levels": draw(st.sampled_from([4, 4, 5])),
        "auto_drain": draw(st.booleans()),
    }
    return AllocatorConfig.resolve(design, cpus, **knobs)


@st.composite
def streams(draw, cpus: int) -> np.ndarray:
    """Rows (op, a, b, cpu): allocs, frees of live alloc rows, drains and shrinks.

    Each stream draws which size and alignment kinds it uses, so that some streams never fail an
    allocation (and keep their pools) while others exhaust the window or fail on purpose.
    """
    n = draw(st.integers(1, 80))
    classes = draw(st.lists(st.sampled_from([1, 2, 3, 7, 255, 256]), min_size=1, max_size=3))
    sizes = ["pool"] * 4 + ["any"] * 2 + ["big"] * draw(st.integers(0, 1))
    aligns = ["page"] * 4 + ["mid"] * 2 + ["huge"] * draw(st.integers(0, 2))
    cpu_range = draw(st.sampled_from([1, 2, cpus]))  # few CPUs: the same node pools again and again
    rows: list[list[int]] = []
    live: list[int] = []
    for i in range(n):
        kind = draw(st.sampled_from("aaaaffffdds"))
        cpu = draw(st.integers(0, min(cpu_range, cpus) - 1))
        if kind == "f" and live:
            row = live.pop(draw(st.integers(0, len(live) - 1)))
            rows.append([OP_FREE, row, 0, cpu])
        elif kind in "af":
            size_kind = draw(st.sampled_from(sizes))
            # "pool": a few classes per stream, so that freed VAs come back (256 pages never pool)
            pages = draw(st.sampled_from(classes) if size_kind == "pool" else _SIZES[size_kind])
            shift = draw(_ALIGNS[draw(st.sampled_from(aligns))])
            rows.append([OP_ALLOC, pages, 1 << shift, cpu])
            live.append(i)
        else:
            rows.append([OP_DRAIN if kind == "d" else OP_SHRINK, 0, 0, cpu])
    return np.array(rows, dtype=np.int64)


def step_by_step(engine, ops: np.ndarray, check: bool) -> np.ndarray:
    """What ``engine.run(ops)`` does, with one call per row (and the invariants after each if ``check``)."""
    out = np.full(len(ops), -1, dtype=np.int64)
    for i, (op, a, b, cpu) in enumerate(ops.tolist()):
        if op == OP_ALLOC:
            out[i] = engine.alloc(a, b, cpu)
        elif op == OP_FREE and out[a] >= 0:
            engine.free(int(out[a]), cpu)
        elif op == OP_DRAIN:
            engine.drain()
        elif op == OP_SHRINK:
            engine.shrink()
        if check:
            engine.check_invariants()
    return out


def canonical(state: dict) -> dict:
    """A state() as plain Python lists, ints and tuples, so that two engines' states compare with ==."""

    def ints(values) -> list[int]:
        return [int(v) for v in np.asarray(values).tolist()]

    return {
        "busy": [ints(column) for column in state["busy"]],
        "lazy": [[(int(s), int(z)) for s, z in node] for node in state["lazy"]],
        "pools": {(int(n), int(k)): ints(starts) for (n, k), starts in state["pools"].items() if len(starts)},
        "free": [ints(column) for column in state["free"]],
        "pte_regions": ints(state["pte_regions"]),
        "pmd_regions": ints(state["pmd_regions"]),
    }


def assert_same(ref, other, ref_out: np.ndarray, other_out: np.ndarray) -> None:
    assert ref_out.tolist() == np.asarray(other_out).tolist()
    assert ref.stats() == other.stats()
    assert canonical(ref.state()) == canonical(other.state())


@st.composite
def cases(draw) -> tuple[AllocatorConfig, np.ndarray]:
    config = draw(configs())
    return config, draw(streams(config.cpus))


@SETTINGS
@given(case=cases())
def test_numba_run_equals_reference_steps(case):
    config, ops = case
    numba_engine = NumbaEngine(config)
    ref = ReferenceEngine(config)
    ref_out = step_by_step(ref, ops, check=True)
    out = numba_engine.run(ops)
    numba_engine.check_invariants()
    assert_same(ref, numba_engine, ref_out, out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_numba_steps_equal_reference_run(case):
    config, ops = case
    numba_engine = NumbaEngine(config)
    ref = ReferenceEngine(config)
    ref_out = ref.run(ops)
    out = step_by_step(numba_engine, ops, check=True)
    assert_same(ref, numba_engine, ref_out, out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_reference_run_equals_its_own_steps(case):
    config, ops = case
    whole, steps = ReferenceEngine(config), ReferenceEngine(config)
    assert_same(whole, steps, whole.run(ops), step_by_step(steps, ops, check=False))


def test_double_free_raises_on_both_engines():
    config = AllocatorConfig.resolve("nodes", 4)
    ops = np.array([[0, 1, 4096, 0], [1, 0, 0, 0], [0, 2, 4096, 1], [1, 0, 0, 2]], dtype=np.int64)
    for cls in (ReferenceEngine, NumbaEngine):
        engine = cls(config)
        try:
            engine.run(ops)
        except SimulationError:
            continue
        raise AssertionError(f"{cls.__name__}.run accepted a double free")


def test_test_vmalloc_sized_stream_agrees():
    """A long stream shaped like test_vmalloc's loops (fixed, random and aligned sizes on 8 CPUs)."""
    rng = np.random.default_rng(7)
    rows, live = [], []
    for i in range(20000):
        if live and (len(live) > 40 or rng.random() < 0.45):
            rows.append([OP_FREE, live.pop(int(rng.integers(len(live)))), 0, int(rng.integers(8))])
        else:
            pages = int(rng.choice([1, 1, 100, int(rng.integers(1, 101)), 5]))
            align = int(rng.choice([4096, 4096, 1 << int(rng.integers(0, 23)), 32768]))
            rows.append([OP_ALLOC, pages, align, int(rng.integers(8))])
            live.append(i)
    ops = np.array(rows, dtype=np.int64)
    for design in ("global", "nodes"):
        config = AllocatorConfig.resolve(design, 8, lazy_max_pages=2048)
        ref, numba_engine = ReferenceEngine(config), NumbaEngine(config)
        ref_out = ref.run(ops)
        out = numba_engine.run(ops)
        ref.check_invariants()
        numba_engine.check_invariants()
        assert_same(ref, numba_engine, ref_out, out)
        st = ref.stats()
        assert st["purges"] > 100 and st["fit_full"] > 100
        if design == "nodes":
            assert st["pool_hits"] > 1000 and st["pool_rotations"] > 100 and st["decayed"] > 1000
