"""pagetable_footprint on the real vmalloc traces (data/real) and on small frames checked by hand."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmaplab.analysis.footprint import pagetable_footprint
from vmaplab.io.vmalloc_trace import read_vmalloc_trace

ROOT = Path(__file__).resolve().parents[2]
PERF = ROOT / "data" / "real" / "vmalloc-trace-perf-thread-churn.txt.gz"
FTRACE = ROOT / "data" / "real" / "vmalloc-trace-ftrace-thread-churn.txt.gz"
BASE = 0xFFFFC90000000000  # x86_64 4-level VMALLOC_START without KASLR
MiB = 1 << 20


def _trace(rows, vstart=BASE, vend=BASE + (32 << 40) - 1) -> pd.DataFrame:
    """A vmalloc trace frame of alloc events (va_start, size[, failed]) one second apart."""
    rows = [(r + (0,))[:3] for r in rows]
    return pd.DataFrame(
        {
            "time": np.arange(len(rows), dtype=float),
            "event": pd.Categorical(["alloc_vmap_area"] * len(rows)),
            "va_start": pd.array([r[0] for r in rows], dtype="UInt64"),
            "size": pd.array([r[1] for r in rows], dtype="Int64"),
            "failed": pd.array([r[2] for r in rows], dtype="Int64"),
            "vstart": pd.array([vstart] * len(rows), dtype="UInt64"),
            "vend": pd.array([vend] * len(rows), dtype="UInt64"),
        }
    )


def _naive(va_start, size, ok):
    """The obvious loop: regions touched for the first time, per event."""
    seen_pte, seen_pmd, out = set(), set(), []
    for v, s, good in zip(va_start, size, ok):
        pte = pmd = 0
        if good and s > 4096:
            for r in range(v >> 21, ((v + s - 4096 - 1) >> 21) + 1):
                pte += r not in seen_pte
                seen_pte.add(r)
            for r in range(v >> 30, ((v + s - 4096 - 1) >> 30) + 1):
                pmd += r not in seen_pmd
                seen_pmd.add(r)
        out.append((pte, pmd))
    return out


def test_real_perf_trace():
    trace = read_vmalloc_trace(PERF)
    fp = pagetable_footprint(trace)
    allocs = trace[trace["event"] == "alloc_vmap_area"]
    assert len(fp) == len(allocs) == 7629
    assert fp.attrs["vmalloc_range"] == (BASE, 32 << 40)  # read from the requests' vstart/vend
    assert fp.attrs["counted"] == 7629 and fp.attrs["ignored"] == 0
    # the 20 KiB stacks of this run spread over 84 distinct 2 MiB regions of one 1 GiB region
    assert fp["pte_pages"].iloc[-1] == 84 and fp["pmd_pages"].iloc[-1] == 1
    assert fp["pagetable_bytes"].iloc[-1] == (84 + 1) * 4096
    assert fp["pte_pages"].is_monotonic_increasing and (fp["new_pte_pages"] >= 0).all()
    expected = _naive([int(v) for v in allocs["va_start"]], [int(s) for s in allocs["size"]], [True] * len(allocs))
    assert list(zip(fp["new_pte_pages"], fp["new_pmd_pages"])) == expected
    assert fp["new_pte_pages"].sum() == 84


def test_path_and_frame_agree():
    a = pagetable_footprint(FTRACE)
    b = pagetable_footprint(read_vmalloc_trace(FTRACE))
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["time", "va_start", "size", "new_pte_pages", "new_pmd_pages", "pte_pages",
                               "pmd_pages", "pagetable_bytes"]
    assert a["new_pte_pages"].dtype == np.int64 and str(a["va_start"].dtype) == "UInt64"


def test_guard_page_and_region_edges():
    fp = pagetable_footprint(
        _trace(
            [
                (BASE, 2 * MiB + 4096),  # exactly one 2 MiB region mapped, the guard page in the next
                (BASE + 2 * MiB, 8192),  # the region of the previous guard page: new
                (BASE + 2 * MiB + 8192, 8192),  # same region again: nothing new
                (BASE + 4 * MiB - 4096, 8192),  # crosses nothing: only its first page is mapped
                (BASE + 6 * MiB - 4096, 12288),  # first page in one region, second page in the next
                (BASE + (1 << 30), 4096 + 4096),  # a new 1 GiB region: one PTE and one PMD page
            ]
        )
    )
    assert list(fp["new_pte_pages"]) == [1, 1, 0, 0, 2, 1]
    assert list(fp["new_pmd_pages"]) == [1, 0, 0, 0, 0, 1]
    assert list(fp["pte_pages"]) == [1, 2, 2, 2, 4, 5] and fp["pmd_pages"].iloc[-1] == 2
    assert fp["pagetable_bytes"].iloc[-1] == 7 * 4096


def test_failed_and_outside_areas_add_nothing():
    modules = 0xFFFFFFFFA0000000  # module area: not vmalloc
    fp = pagetable_footprint(_trace([(BASE, 8192, 1), (modules, 8192), (BASE, 8192)]))
    assert list(fp["new_pte_pages"]) == [0, 0, 1]
    assert fp.attrs["ignored"] == 2 and fp.attrs["counted"] == 1


def test_window_from_requests_follows_kaslr_base():
    base = 0xFFFFB3C1C0000000  # a randomised vmalloc base (CONFIG_RANDOMIZE_MEMORY)
    fp = pagetable_footprint(_trace([(base, 8192), (BASE, 8192)], vstart=base, vend=base + (32 << 40) - 1))
    assert fp.attrs["vmalloc_range"] == (base, 32 << 40)
    assert list(fp["new_pte_pages"]) == [1, 1]  # BASE lies inside the moved window too
    fixed = pagetable_footprint(_trace([(base, 8192)], vstart=base, vend=base + MiB), vmalloc_range=(BASE, 32 << 40))
    assert list(fixed["new_pte_pages"]) == [0]


def test_five_level_window():
    l5 = 0xFFA0000000000000
    fp = pagetable_footprint(_trace([(l5, 8192)], vstart=0, vend=0))
    assert fp.attrs["vmalloc_range"] == (l5, 12800 << 40) and list(fp["new_pmd_pages"]) == [1]


def test_rejects_other_frames():
    with pytest.raises(ValueError, match="missing columns"):
        pagetable_footprint(pd.DataFrame({"time": [0.0]}))
    with pytest.raises(TypeError):
        pagetable_footprint(42)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3 << 20), st.integers(1, 1200), st.booleans()),  # page offset, pages, failed
        max_size=40,
    )
)
def test_matches_the_obvious_loop(events):
    rows = [(BASE + off * 4096, pages * 4096, int(bad)) for off, pages, bad in events]
    fp = pagetable_footprint(_trace(rows))
    expected = _naive([r[0] for r in rows], [r[1] for r in rows], [not r[2] for r in rows])
    assert list(zip(fp["new_pte_pages"], fp["new_pmd_pages"])) == expected


def test_a_bundle_frame_uses_the_trace_clock():
    """read_bundle keeps the trace's own clock as event_time; the footprint follows it."""
    import vmaplab as vl

    root = Path(__file__).resolve().parents[2]
    bundle = vl.read_bundle(root / "data/real/bundle-vm-2cpu-churn", formats=["vmalloc_trace"])["vmalloc_trace"]
    fp = vl.pagetable_footprint(bundle)
    assert fp["time"].is_monotonic_increasing
    allocs = bundle[bundle["event"] == "alloc_vmap_area"]
    assert fp["time"].iloc[0] == allocs["event_time"].min() and fp["time"].nunique() > 1


def test_several_traces_are_refused():
    # two captures pasted one after the other (blocks 0 and 1): their clocks and, across boots, their
    # page tables have nothing in common, so one cumulative count over both would be wrong
    perf, ftrace = read_vmalloc_trace(PERF), read_vmalloc_trace(FTRACE)
    two = pd.concat([perf, ftrace.assign(block=1)], ignore_index=True)
    with pytest.raises(ValueError, match="2 traces"):
        pagetable_footprint(two)
    pd.testing.assert_frame_equal(pagetable_footprint(two[two["block"] == 1]).reset_index(drop=True),
                                  pagetable_footprint(ftrace))  # fmt: skip
