"""area_lifetimes on the real vmalloc traces (data/real), against an event-by-event reference loop,
and on small hand-made streams (reuse after a purge, frees of areas allocated before the trace, lost
events)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmaplab.analysis.lifetimes import area_lifetimes
from vmaplab.errors import VmaplabWarning
from vmaplab.io.detect import read_bundle
from vmaplab.io.vmalloc_trace import read_vmalloc_trace

ROOT = Path(__file__).resolve().parents[2]
PERF = ROOT / "data" / "real" / "vmalloc-trace-perf-thread-churn.txt.gz"
FTRACE = ROOT / "data" / "real" / "vmalloc-trace-ftrace-thread-churn.txt.gz"
BUNDLE = ROOT / "data" / "real" / "bundle-vm-2cpu-churn"
BASE = 0xFFFFC90000000000
COLUMNS = ["va_start", "size", "alloc_time", "free_time", "purge_time", "state"]


def _frame(events) -> pd.DataFrame:
    """A trace frame from (time, event, va_start, size_or_range); a purge's last item is (start, end)."""
    rows = []
    for time, event, va, extra in events:
        row = {"time": float(time), "event": event, "va_start": None, "size": None, "failed": None,
               "purge_start": None, "purge_end": None}  # fmt: skip
        if event == "alloc_vmap_area":
            row.update(va_start=va, size=extra[0], failed=extra[1] if len(extra) > 1 else 0)
        elif event == "free_vmap_area_noflush":
            row.update(va_start=va)
        else:
            row.update(purge_start=extra[0], purge_end=extra[1])
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("va_start", "purge_start", "purge_end"):
        df[col] = pd.array(df[col], dtype="UInt64")
    for col in ("size", "failed"):
        df[col] = pd.array(df[col], dtype="Int64")
    df["event"] = pd.Categorical(df["event"])
    return df


def _reference(trace: pd.DataFrame) -> pd.DataFrame:
    """The obvious loop over events in time order (allocs, then frees, then purges at equal times)."""
    clock = "event_time" if "event_time" in trace.columns else "time"
    order = {"alloc_vmap_area": 0, "free_vmap_area_noflush": 1, "purge_vmap_area_lazy": 2}
    rank = trace["event"].astype(str).map(order)
    rows, open_ = [], {}
    for r in trace.assign(_rank=rank).sort_values([clock, "_rank"], kind="stable").itertuples():
        t = getattr(r, clock)
        if r.event == "alloc_vmap_area":
            if r.failed:
                continue
            if r.va_start in open_:
                open_.pop(r.va_start)["state"] = "unknown"
            open_[r.va_start] = {"va_start": r.va_start, "size": r.size, "alloc_time": t, "free_time": np.nan,
                                 "purge_time": np.nan, "state": "allocated"}  # fmt: skip
            rows.append(open_[r.va_start])
        elif r.event == "free_vmap_area_noflush":
            row = open_.pop(r.va_start, None)
            if row is None:
                row = {"va_start": r.va_start, "size": pd.NA, "alloc_time": np.nan, "purge_time": np.nan}
                rows.append(row)
            row.update(free_time=t, state="lazily freed")
        else:
            for row in rows:
                if row["state"] == "lazily freed" and r.purge_start <= row["va_start"] < r.purge_end:
                    row.update(purge_time=t, state="purged")
    out = pd.DataFrame(rows, columns=COLUMNS).astype(
        {"va_start": "UInt64", "size": "Int64", "alloc_time": float, "free_time": float, "purge_time": float,
         "state": "string"}  # fmt: skip
    )
    return out.sort_values(["va_start", "alloc_time", "free_time"], ignore_index=True)


def _by_address(df: pd.DataFrame) -> pd.DataFrame:
    return df[COLUMNS].sort_values(["va_start", "alloc_time", "free_time"], ignore_index=True)


def test_real_perf_trace():
    trace = read_vmalloc_trace(PERF)
    lt = area_lifetimes(trace)
    # 7629 kernel stacks allocated, plus 2 frees of stacks allocated before the recording began
    assert len(lt) == 7631 and lt["alloc_time"].notna().sum() == 7629
    assert lt.attrs["freed_before_trace"] == 2 and lt.attrs["unmatched"] == 0 and lt.attrs["failed"] == 0
    assert lt["state"].value_counts().to_dict() == {"purged": 5999, "lazily freed": 1436, "allocated": 196}
    assert lt["free_time"].notna().sum() == 7435  # every free event closes exactly one area
    # a lifetime runs forward, and every area a purge took lies in that purge's range
    assert ((lt["free_time"] - lt["alloc_time"]).dropna() >= 0).all()
    assert ((lt["purge_time"] - lt["free_time"]).dropna() >= 0).all()
    assert lt.dtypes.astype(str).tolist() == ["UInt64", "Int64", "float64", "float64", "float64", "string"]
    pd.testing.assert_frame_equal(_by_address(lt), _reference(trace))


def _lazy_before(trace: pd.DataFrame) -> int:
    """Areas lazily freed before the recording began: the first free's nr_lazy counts the pages of every
    lazy area, its own included; every area of these traces is a 16 KiB kernel stack and its guard page."""
    assert trace.loc[trace["event"] == "alloc_vmap_area", "size"].unique().tolist() == [5 * 4096]
    first = trace.loc[trace["event"] == "free_vmap_area_noflush", "nr_lazy"].iloc[0]
    return (int(first) - 5) // 5


def test_real_purges_cover_what_they_report():
    # a purge takes every lazy area: the first one also those freed before the recording, the second
    # none of them; what each took of the trace's areas is what the kernel reports less those
    trace = read_vmalloc_trace(PERF)
    reported = trace.loc[trace["event"] == "purge_vmap_area_lazy", "num_purged"].tolist()  # 3350, 3313
    lt = area_lifetimes(trace)
    assert lt.groupby("purge_time").size().tolist() == [reported[0] - _lazy_before(trace), reported[1]]


def test_real_ftrace_and_bundle_traces():
    trace = read_vmalloc_trace(FTRACE)
    lt = area_lifetimes(trace)
    pd.testing.assert_frame_equal(_by_address(lt), _reference(trace))
    events = trace["event"].value_counts()
    (reported,) = trace.loc[trace["event"] == "purge_vmap_area_lazy", "num_purged"].tolist()  # one purge
    purged = reported - _lazy_before(trace)
    freed_inside = events["free_vmap_area_noflush"] - lt.attrs["freed_before_trace"]
    assert lt["state"].value_counts().to_dict() == {
        "lazily freed": events["free_vmap_area_noflush"] - purged, "purged": purged,
        "allocated": events["alloc_vmap_area"] - freed_inside}  # 2188, 1641, 5
    bundle = read_bundle(BUNDLE, formats=["vmalloc_trace"])["vmalloc_trace"]
    lt = area_lifetimes(bundle)  # the bundle keeps the event clock in event_time
    assert lt["alloc_time"].min() == pytest.approx(871.880394)
    assert lt.attrs["start"] == pytest.approx(871.880394) and lt.attrs["end"] == pytest.approx(873.529088)
    same = area_lifetimes(read_vmalloc_trace(BUNDLE / "0000" / "vmalloc_trace"))
    pd.testing.assert_frame_equal(lt[COLUMNS], same[COLUMNS])


def test_reuse_after_purge_orphans_failures_and_lost_frees():
    a, b, c = BASE, BASE + 0x5000, BASE + 0xA000
    trace = _frame([
        (1, "free_vmap_area_noflush", c, None),  # c was allocated before the trace
        (2, "alloc_vmap_area", a, (20480,)),
        (3, "alloc_vmap_area", b, (20480, 1)),  # failed: not an area
        (4, "free_vmap_area_noflush", a, None),
        (5, "purge_vmap_area_lazy", None, (a, b)),  # covers a only
        (6, "alloc_vmap_area", a, (8192,)),  # a's range reused
        (7, "alloc_vmap_area", b, (4096 * 3,)),
        (8, "alloc_vmap_area", b, (4096 * 3,)),  # no free of b between: a lost event
        (9, "purge_vmap_area_lazy", None, (a, c + 0x5000)),  # c is lazy: purged now
    ])  # fmt: skip
    lt = area_lifetimes(trace)
    assert lt["va_start"].tolist() == [c, a, a, b, b]
    assert lt["size"].tolist()[1:] == [20480, 8192, 12288, 12288] and lt["size"].isna().tolist()[0]
    assert lt["alloc_time"].tolist()[1:] == [2.0, 6.0, 7.0, 8.0]
    assert lt["free_time"].tolist()[:2] == [1.0, 4.0]
    assert lt["purge_time"].tolist()[:2] == [9.0, 5.0]
    assert lt["state"].tolist() == ["purged", "purged", "allocated", "unknown", "allocated"]
    assert (lt.attrs["failed"], lt.attrs["freed_before_trace"], lt.attrs["unmatched"]) == (1, 1, 1)


def test_not_a_trace():
    with pytest.raises(ValueError, match="missing columns"):
        area_lifetimes(pd.DataFrame({"time": [1.0], "event": ["alloc_vmap_area"]}))


_ADDRESSES = st.sampled_from([BASE + i * 0x5000 for i in range(6)])
_EVENT = st.one_of(
    st.tuples(st.just("alloc_vmap_area"), _ADDRESSES, st.tuples(st.just(20480), st.sampled_from([0, 0, 0, 1]))),
    st.tuples(st.just("free_vmap_area_noflush"), _ADDRESSES, st.none()),
    st.tuples(st.just("purge_vmap_area_lazy"), st.none(), st.tuples(_ADDRESSES, _ADDRESSES).map(sorted).map(tuple)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), _EVENT), min_size=1, max_size=40))
def test_matches_the_reference_loop(events):
    trace = _frame([(t, e, va, extra) for t, (e, va, extra) in events])
    pd.testing.assert_frame_equal(_by_address(area_lifetimes(trace)), _reference(trace))


def test_a_trace_with_lost_events_is_flagged():
    # a real trace_pipe read whose ring buffer overflowed (data/real/SOURCES.md): its 144 frees come
    # after the kernel's "CPU:0 [LOST 2050 EVENTS]", so "allocated before the trace" is not known
    lost = ROOT / "data" / "real" / "ftrace-pipe-lost-events.txt"
    with pytest.warns(VmaplabWarning, match="dropped events"):
        trace = read_vmalloc_trace(lost)
    with pytest.warns(VmaplabWarning, match="dropped events 1 time.*line 15: an area whose allocation was lost"):
        lt = area_lifetimes(trace)
    assert lt.attrs["lost_events"] == [{"lineno": 15, "cpu": 0, "count": 2050}]
    assert lt.attrs["freed_before_trace"] == 144


def test_several_traces_are_refused():
    trace = read_vmalloc_trace(FTRACE)
    two = pd.concat([trace, trace.assign(block=1)], ignore_index=True)
    with pytest.raises(ValueError, match="2 traces"):
        area_lifetimes(two)
    pd.testing.assert_frame_equal(area_lifetimes(two[two["block"] == 1]), area_lifetimes(trace))
