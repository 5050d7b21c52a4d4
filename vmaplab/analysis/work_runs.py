"""When a work item was asked for, when its kworker ran it, and what the scheduler did after.

The vmap drain (``drain_vmap_area_work``) runs as a work item on system_wq. A drain that waits long
after ``schedule_work`` lets the lazily freed VA pile up (docs/calibration.md, sixth pass): this
module turns :func:`vmaplab.read_sched_trace` rows into one row per execution of a work function.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io._trace_lines import lost_events

__all__ = ["work_runs", "WORK_RUN_COLUMNS"]

#: Columns of :func:`work_runs`.
WORK_RUN_COLUMNS = ("function", "cpu", "pid", "comm", "requested", "started", "ended", "wait_s", "run_s",
                    "preempted_after", "off_cpu_s")  # fmt: skip


def work_runs(events: pd.DataFrame, function: str = "drain_vmap_area_work") -> pd.DataFrame:
    """One row per execution of ``function`` in a :func:`vmaplab.read_sched_trace` frame.

    Parameters
    ----------
    events : DataFrame
        :func:`vmaplab.read_sched_trace` rows of one trace (one ``block``), with the workqueue
        events and, for the last two columns, ``sched_switch``.
    function : str
        The work function (``drain_vmap_area_work``; ``purge_vmap_node`` for the drain's helpers).

    Returns
    -------
    DataFrame
        In start order: ``function``, ``cpu``, ``pid``, ``comm`` (the kworker), ``requested`` (the
        first ``workqueue_queue_work`` of the same work struct since its previous start, s; NaN when the
        request precedes the trace), ``started``, ``ended`` (s), ``wait_s`` (started - requested), ``run_s`` (ended -
        started, asleep or not), ``preempted_after`` (the kworker's first switch-out after the end,
        before it starts other work, left it runnable, ``R``/``R+``: preempted at process_one_work's
        cond_resched() while it still owns the work; False when it slept or went straight on to its
        next work item; <NA> without a later switch-out in the trace) and ``off_cpu_s`` (from that
        switch-out to its next switch-in, s; NaN when there is none or it is not seen).
        ``attrs["unfinished"]``: executions started but not ended within the trace (not in the rows);
        ``attrs["lost_events"]``: the trace's, with a warning (events dropped by the ring buffer).

    Raises
    ------
    ValueError
        If ``events`` holds several blocks, lacks the reader's columns, or no execution of
        ``function`` was both started and ended in it.
    """
    missing = {"block", "time", "cpu", "pid", "comm", "event", "work", "function", "prev_pid", "prev_state",
               "next_pid"} - set(events.columns)  # fmt: skip
    if missing:
        raise ValueError(f"events lacks the read_sched_trace columns {sorted(missing)}")
    if events["block"].nunique() > 1:
        raise ValueError(f"events holds {events['block'].nunique()} traces (blocks); pass one")
    lost = lost_events(events, "a run or request lost there is missing, and its neighbours may be paired wrongly")
    ev = events.sort_values("time", kind="stable")
    wq = ev[ev["function"].eq(function).fillna(False).to_numpy()]
    # several work items may run one function (one purge_vmap_node helper per vmap node): a request
    # belongs to the execution of the same work struct
    rows, started, requested = [], {}, {}
    columns = (wq["time"], wq["event"].astype(str), wq["cpu"], wq["pid"], wq["comm"], wq["work"])
    for t, event, cpu, pid, comm, work in zip(*columns):
        if event == "workqueue_queue_work":
            requested.setdefault(work, t)
        elif event == "workqueue_execute_start":
            started[pid] = (t, cpu, comm, requested.pop(work, np.nan))
        elif event == "workqueue_execute_end" and pid in started:
            t0, cpu0, comm0, req = started.pop(pid)
            rows.append((function, cpu0, pid, comm0, req, t0, t))
    if not rows:
        raise ValueError(f"no execution of {function} both starts and ends in the trace")
    runs = pd.DataFrame(rows, columns=["function", "cpu", "pid", "comm", "requested", "started", "ended"])
    runs = runs.sort_values("started", kind="stable", ignore_index=True)  # rows were made as executions ended
    runs["wait_s"] = runs["started"] - runs["requested"]
    runs["run_s"] = runs["ended"] - runs["started"]
    kind = ev["event"].astype(str)
    sw = ev[kind.eq("sched_switch").to_numpy()]
    starts = ev[kind.eq("workqueue_execute_start").to_numpy()]
    out_t, out_state, in_t = [], [], []
    for pid, end in zip(runs["pid"], runs["ended"]):
        leave = sw[(sw["prev_pid"] == pid).fillna(False).to_numpy() & (sw["time"] >= end).to_numpy()]
        if leave.empty:
            out_t.append(np.nan), out_state.append(pd.NA), in_t.append(np.nan)
            continue
        t_out = float(leave["time"].iloc[0])
        nxt = starts["time"][(starts["pid"] == pid).to_numpy() & (starts["time"] > end).to_numpy()]
        if not nxt.empty and nxt.iloc[0] < t_out:  # it took its next work item first: not preempted here
            out_t.append(np.nan), out_state.append(False), in_t.append(np.nan)
            continue
        back = sw[(sw["next_pid"] == pid).fillna(False).to_numpy() & (sw["time"] > t_out).to_numpy()]
        out_t.append(t_out)
        out_state.append(str(leave["prev_state"].iloc[0]).startswith("R"))
        in_t.append(float(back["time"].iloc[0]) if not back.empty else np.nan)
    runs["preempted_after"] = pd.array(out_state, dtype="boolean")
    runs["off_cpu_s"] = np.asarray(in_t) - np.asarray(out_t)
    runs.attrs.update(unfinished=len(started), lost_events=lost)
    return runs[list(WORK_RUN_COLUMNS)]
