"""work_runs on a real drain stall (data/real/drain-stall-trace-qemu-2cpu.txt.gz, see data/real/SOURCES.md)."""

import gzip
import io
from pathlib import Path

import pandas as pd
import pytest

import vmaplab
from vmaplab.analysis.work_runs import WORK_RUN_COLUMNS, work_runs
from vmaplab.errors import VmaplabWarning

STALL = Path(__file__).resolve().parents[2] / "data" / "real" / "drain-stall-trace-qemu-2cpu.txt.gz"


@pytest.fixture(scope="module")
def events():
    return vmaplab.read_sched_trace(STALL)


def test_the_drain_stall(events):
    runs = work_runs(events)
    assert tuple(runs.columns) == WORK_RUN_COLUMNS and len(runs) == 3 and runs.attrs["unfinished"] == 1
    long, stalled, after = (runs.iloc[i] for i in range(3))
    # a drain runs 94.9 ms on kworker/0:2, which is then switched out still runnable and stays off
    # the CPU 312 ms: the next request (8.773 s) waits 300.6 ms for it
    assert (long["comm"], long["pid"], long["cpu"]) == ("kworker/0:2", 54, 0)
    assert long["run_s"] == pytest.approx(0.094865, abs=1e-6) and long["wait_s"] == pytest.approx(0.00348, abs=1e-6)
    assert bool(long["preempted_after"]) and long["off_cpu_s"] == pytest.approx(0.312064, abs=1e-6)
    assert stalled["requested"] == 8.773132 and stalled["wait_s"] == pytest.approx(0.30055, abs=1e-6)
    assert stalled["pid"] == 54 and stalled["wait_s"] > 3 * long["run_s"]
    # it goes straight on to the request made during it, then is preempted again
    assert not bool(stalled["preempted_after"]) and pd.isna(stalled["off_cpu_s"])
    assert after["requested"] < stalled["ended"] and bool(after["preempted_after"])
    # meanwhile the lazily freed pages pile up: the backlog peaks during the stalled drain
    vm = vmaplab.read_vmalloc_trace(STALL)
    frees = vm[vm["event"] == "free_vmap_area_noflush"]
    peak = frees.loc[frees["nr_lazy"].idxmax()]
    assert peak["nr_lazy"] == 460_038 and peak["nr_lazy"] > 28 * peak["nr_lazy_max"]
    assert stalled["requested"] < peak["time"] < stalled["ended"]


def test_the_drain_helper(events):
    # the stalled drain (13,561 areas) queued one purge_vmap_node helper on CPU 0; its flush_work waited for it
    helper = work_runs(events, "purge_vmap_node")
    assert len(helper) == 1
    h = helper.iloc[0]
    assert (h["comm"], h["pid"], h["cpu"]) == ("kworker/0:0", 9, 0)
    assert h["wait_s"] == pytest.approx(0.008975, abs=1e-6) and h["run_s"] == pytest.approx(0.001222, abs=1e-6)
    drains = work_runs(events)
    assert drains["started"].iloc[1] < h["requested"] < h["ended"] < drains["ended"].iloc[1]


def test_bad_input_is_named(events):
    with pytest.raises(ValueError, match="no execution of vmstat_update"):
        work_runs(events, "vmstat_update")
    with pytest.raises(ValueError, match="lacks the read_sched_trace columns"):
        work_runs(events.drop(columns=["prev_state"]))
    two = pd.concat([events, events.assign(block=1, time=events["time"] + 10)], ignore_index=True)
    with pytest.raises(ValueError, match="2 traces"):
        work_runs(two)
    assert len(work_runs(two[two["block"] == 1])) == 3


def test_helpers_of_several_nodes_pair_by_work_struct():
    # the 8-vCPU drain queues one purge_vmap_node work item per vmap node (data/real/SOURCES.md); a
    # request belongs to the start of the same work struct. Pairing by function alone left 31 of the
    # 140 helpers without a request and gave the first helper's request to whichever started first.
    events = vmaplab.read_sched_trace(STALL.parent / "drain-trace-qemu-8cpu" / "run1-threads8.txt.gz")
    runs = work_runs(events, "purge_vmap_node")
    assert len(runs) == 140 and runs["requested"].notna().all() and (runs["wait_s"] >= 0).all()
    # 8.892070 and 8.892096: two nodes' work items queued by one drain; the second runs on CPU 1
    second = runs[runs["started"] == 8.907992].iloc[0]
    assert (second["pid"], second["cpu"], second["requested"]) == (67, 1, 8.892096)
    assert second["wait_s"] == pytest.approx(0.015896, abs=1e-6)
    queued = events[(events["event"] == "workqueue_queue_work") & (events["function"] == "purge_vmap_node")]
    assert sorted(runs["requested"]) == sorted(queued["time"])


def test_a_trace_with_lost_events_is_flagged():
    # the stall trace with the lines of its second drain's end cut out and the kernel's line for a
    # ring buffer overflow in their place (as in data/real/ftrace-pipe-lost-events.txt)
    lines = gzip.decompress(STALL.read_bytes()).decode().split("\n")
    i = next(i for i, line in enumerate(lines) if "workqueue_execute_end" in line and "drain_vmap_area_work" in line)
    lines[i] = "CPU:0 [LOST 1 EVENTS]"
    with pytest.warns(VmaplabWarning, match="dropped events 1 time"):
        events = vmaplab.read_sched_trace(io.StringIO("\n".join(lines)))
    with pytest.warns(VmaplabWarning, match=rf"dropped events 1 time\(s\), first at line {i + 1}: a run"):
        runs = work_runs(events)
    assert runs.attrs["lost_events"] == [{"lineno": i + 1, "cpu": 0, "count": 1}]


def test_rows_are_in_start_order():
    # 16 vCPUs, 64 threads (data/real/SOURCES.md): helpers overlap, so executions end in another order than
    # they start; the rows were made as they ended (211 of 2,469 out of start order)
    events = vmaplab.read_sched_trace(STALL.parent / "drain-trace-qemu-16cpu" / "run3-threads64.txt.gz")
    runs = work_runs(events, "purge_vmap_node")
    assert len(runs) == 2469 and runs["started"].is_monotonic_increasing
    assert not runs["ended"].is_monotonic_increasing  # the capture does have executions that overlap
