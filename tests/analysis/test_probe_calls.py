"""probe_calls on real kprobe/kretprobe hits (data/real/drain-trace-qemu-8cpu, see data/real/SOURCES.md:
an 8-vCPU guest on a 2-core host, where every TLB flush of the vmap drain waits for descheduled vCPUs)."""

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vmaplab
from vmaplab.analysis.probe_calls import PROBE_CALL_COLUMNS, probe_calls
from vmaplab.errors import VmaplabWarning

TRACES = Path(__file__).resolve().parents[2] / "data" / "real" / "drain-trace-qemu-8cpu"
RUN1 = TRACES / "run1-threads8.txt.gz"


def _flush_durations_by_hand() -> list[float]:
    """The flush calls' durations (s) of RUN1 paired line by line, without vmaplab: each pid's
    flush_tlb_kernel_rangein entry with its next flush_tlb_kernel_rangeout return."""
    started: dict[str, float] = {}
    durations = []
    for line in gzip.decompress(RUN1.read_bytes()).decode().splitlines():
        if "flush_tlb_kernel_range" not in line or line.startswith("#"):
            continue
        task, _cpu, _flags, stamp, probe = line.split()[:5]
        pid, t = task.rsplit("-", 1)[1], float(stamp.rstrip(":"))
        if probe == "flush_tlb_kernel_rangein:":
            started[pid] = t
        elif probe == "flush_tlb_kernel_rangeout:" and pid in started:
            durations.append(t - started.pop(pid))
    return durations


def test_every_call_of_the_capture_is_paired():
    calls = probe_calls(vmaplab.read_kprobe_trace(RUN1))
    assert tuple(calls.columns) == PROBE_CALL_COLUMNS
    assert calls.attrs == {"unfinished": 0, "unstarted": 0, "lost_events": []}
    assert calls["function"].value_counts().to_dict() == {"purge_vmap_node": 2478, "flush_tlb_kernel_range": 421}
    first = calls.iloc[0]  # the file's first two lines: loadmod's purge at module load
    assert (first["function"], first["comm"], first["pid"], first["cpu"], first["cpu_end"]) == (
        "flush_tlb_kernel_range", "loadmod", 125, 7, 7)  # fmt: skip
    assert (first["start"], first["end"], first["caller"]) == (7.167539, 7.168320, "__purge_vmap_area_lazy")
    assert np.isclose(first["duration_s"], 0.000781)
    assert calls["start"].is_monotonic_increasing and (calls["duration_s"] >= 0).all()
    purge = calls[calls["function"] == "purge_vmap_node"]
    # the drain purges the nodes its helpers do not take; the helpers run purge_vmap_node as work items
    assert purge["caller"].value_counts().to_dict() == {"__purge_vmap_area_lazy": 2338, "process_one_work": 140}
    assert (calls.loc[calls["function"] == "flush_tlb_kernel_range", "caller"] == "__purge_vmap_area_lazy").all()
    flush = calls.loc[calls["function"] == "flush_tlb_kernel_range", "duration_s"] * 1e3
    by_hand = np.array(_flush_durations_by_hand()) * 1e3
    assert len(by_hand) == len(flush) == 421 and np.allclose(np.sort(by_hand), np.sort(flush.to_numpy()))
    # every flush waits for vCPUs the host has descheduled: ~16 ms, where the 2-vCPU guest took ~0.2 ms
    assert 16 < flush.median() < 17 and round(flush.max(), 3) == 53.578 and (flush > 10).sum() == 346


def test_calls_cut_by_the_trace_edges_are_kept_and_counted():
    lines = gzip.decompress(RUN1.read_bytes()).decode().splitlines()
    entries = [i for i, line in enumerate(lines) if "flush_tlb_kernel_rangein:" in line]
    returns = [i for i, line in enumerate(lines) if "flush_tlb_kernel_rangeout:" in line]
    kept = [line for i, line in enumerate(lines) if i not in (entries[0], returns[-1])]
    calls = probe_calls(vmaplab.read_kprobe_trace(io.StringIO("\n".join(kept))))
    assert calls.attrs == {"unfinished": 1, "unstarted": 1, "lost_events": []}
    flush = calls[calls["function"] == "flush_tlb_kernel_range"]
    assert len(flush) == 421 and flush["duration_s"].isna().sum() == 2
    unstarted = flush[flush["start"].isna()].iloc[0]
    assert unstarted["end"] == 7.168320 and pd.isna(unstarted["cpu"]) and unstarted["cpu_end"] == 7
    assert pd.isna(flush.loc[flush["end"].isna(), "cpu_end"]).all() and calls.index[-1] == unstarted.name


def test_a_trace_with_lost_events_is_flagged():
    # kworker/4:1's first flush return and its next flush entry cut out, and the kernel's line for a
    # ring buffer overflow put in their place (as in data/real/ftrace-pipe-lost-events.txt): the next
    # return then pairs with the first entry, a call longer than both that never was; the result says so
    lines = gzip.decompress(RUN1.read_bytes()).decode().splitlines()
    flushes = [i for i, line in enumerate(lines) if "kworker/4:1-83 " in line and "flush_tlb_kernel_range" in line]
    ret, entry = flushes[1], flushes[2]  # return of the first call, entry of the second
    kept = lines[:ret] + ["CPU:4 [LOST 2 EVENTS]"] + [line for i, line in enumerate(lines) if i > ret and i != entry]
    with pytest.warns(VmaplabWarning, match="dropped events 1 time"):
        hits = vmaplab.read_kprobe_trace(io.StringIO("\n".join(kept)))
    with pytest.warns(VmaplabWarning, match=rf"first at line {ret + 1}: a call whose entry or return was lost"):
        calls = probe_calls(hits)
    assert calls.attrs["lost_events"] == [{"lineno": ret + 1, "cpu": 4, "count": 2}]
    whole = probe_calls(vmaplab.read_kprobe_trace(RUN1))
    worker = whole[(whole["pid"] == 83) & (whole["function"] == "flush_tlb_kernel_range")]
    merged = calls[(calls["pid"] == 83) & (calls["function"] == "flush_tlb_kernel_range")].iloc[0]
    assert (merged["start"], merged["end"]) == (worker["start"].iloc[0], worker["end"].iloc[1])


def test_missing_columns_and_empty_input():
    with pytest.raises(ValueError, match="read_kprobe_trace columns"):
        probe_calls(vmaplab.read_sched_trace(RUN1))
    with pytest.raises(ValueError, match="no probe hit"):
        probe_calls(vmaplab.read_kprobe_trace(RUN1).iloc[:0])


def test_call_summary_per_trace_and_function():
    calls = probe_calls(vmaplab.read_kprobe_trace(RUN1))
    cut = calls.copy()
    cut.loc[cut.index[0], "duration_s"] = np.nan  # a call cut by the trace's edge is not counted
    summary = vmaplab.call_summary({"run 1": calls, "cut": cut})
    assert list(summary.columns) == ["trace", "function", "calls", "median_s", "p99_s", "max_s"]
    assert summary["trace"].dtype == "string" and summary["calls"].dtype == "int64"
    flush = summary[summary["function"] == "flush_tlb_kernel_range"].set_index("trace")
    assert flush["calls"].to_dict() == {"run 1": 421, "cut": 420}
    durations = calls.loc[calls["function"] == "flush_tlb_kernel_range", "duration_s"]
    assert flush.loc["run 1", "median_s"] == durations.median() and flush.loc["run 1", "max_s"] == durations.max()
    assert 0.0163 < flush.loc["run 1", "median_s"] < 0.0165  # every flush waits ~16 ms for descheduled vCPUs
    # the 99th percentile (linear interpolation, numpy's default) of the durations paired by hand: ~42.7 ms
    assert np.isclose(flush.loc["run 1", "p99_s"], np.percentile(_flush_durations_by_hand(), 99))
    assert flush.loc["run 1", "p99_s"] > 2 * flush.loc["run 1", "median_s"]
    assert vmaplab.call_summary({}).empty
