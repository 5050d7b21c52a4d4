"""How long each call of a probed kernel function took: kprobe entries paired with kretprobe returns.

A TLB flush that waits for a descheduled vCPU, a purge that runs long: with a kprobe and a kretprobe
on the function, :func:`vmaplab.read_kprobe_trace` gives the hits and this module the calls
(docs/calibration.md, seventh pass, times flush_tlb_kernel_range and purge_vmap_node this way).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..io._trace_lines import lost_events

__all__ = ["probe_calls", "call_summary", "PROBE_CALL_COLUMNS"]

#: Columns of :func:`probe_calls`.
PROBE_CALL_COLUMNS = ("block", "function", "pid", "comm", "cpu", "cpu_end", "caller", "start", "end",
                      "duration_s")  # fmt: skip


def probe_calls(hits: pd.DataFrame) -> pd.DataFrame:
    """One row per call: each probed function's entry hit paired with the return hit of the same task.

    Parameters
    ----------
    hits : DataFrame
        :func:`vmaplab.read_kprobe_trace` rows (several blocks are paired block by block).

    Returns
    -------
    DataFrame
        In start order (calls whose entry precedes the trace last): ``block``, ``function``, ``pid``,
        ``comm``, ``cpu`` and ``cpu_end`` (Int64: where the entry and the return were hit; they differ
        when the task migrated meanwhile), ``caller`` (string: the function returned to), ``start``,
        ``end`` (s) and ``duration_s`` (end - start). A call still running when the trace stopped has
        NaN ``end``; a return whose entry precedes the trace has NaN ``start``; both have NaN
        ``duration_s`` and are counted in ``attrs["unfinished"]`` and ``attrs["unstarted"]``. A
        recursive call pairs with the innermost open entry. ``attrs["lost_events"]``: the trace's, with a
        warning (where the ring buffer dropped hits, a call may be missing or wrongly paired).

    Raises
    ------
    ValueError
        If ``hits`` lacks the reader's columns or holds no entry or return at all.
    """
    missing = {"block", "time", "cpu", "pid", "comm", "kind", "function", "caller"} - set(hits.columns)
    if missing:
        raise ValueError(f"hits lacks the read_kprobe_trace columns {sorted(missing)}")
    if hits.empty:
        raise ValueError("hits holds no probe hit")
    lost = lost_events(hits, "a call whose entry or return was lost is missing or paired with another's")
    ev = hits.sort_values(["block", "time"], kind="stable")
    rows: list[tuple] = []
    open_calls: dict[tuple, list[int]] = {}
    columns = (ev["block"], ev["time"], ev["cpu"], ev["pid"], ev["comm"], ev["kind"].astype(str), ev["function"],
               ev["caller"])  # fmt: skip
    for block, t, cpu, pid, comm, kind, function, caller in zip(*columns):
        key = (block, pid, function)
        if kind == "entry":
            open_calls.setdefault(key, []).append(len(rows))
            rows.append([block, function, pid, comm, cpu, pd.NA, pd.NA, t, np.nan])
        elif open_calls.get(key):
            row = rows[open_calls[key].pop()]
            row[5], row[6], row[8] = cpu, caller, t
        else:
            rows.append([block, function, pid, comm, pd.NA, cpu, caller, np.nan, t])
    out = pd.DataFrame(rows, columns=[c for c in PROBE_CALL_COLUMNS if c != "duration_s"])
    out = out.astype({"block": "int64", "function": "string", "pid": "int64", "comm": "string", "cpu": "Int64",
                      "cpu_end": "Int64", "caller": "string", "start": "float64", "end": "float64"})  # fmt: skip
    out["duration_s"] = out["end"] - out["start"]
    out = out.sort_values(["block", "start"], kind="stable", na_position="last").reset_index(drop=True)
    out.attrs["unfinished"] = int(out["end"].isna().sum())
    out.attrs["unstarted"] = int(out["start"].isna().sum())
    out.attrs["lost_events"] = lost
    return out


def call_summary(calls: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per trace and probed function: how many calls the trace saw from entry to return, and how long
    they took.

    Parameters
    ----------
    calls : mapping of str to DataFrame
        Label (a trace, a run) -> :func:`probe_calls` rows; calls cut by the trace's edges are left out.

    Returns
    -------
    DataFrame
        trace, function (string), calls (int64), median_s, p99_s, max_s (seconds, float64), in the order
        of the labels and of each function's first call.
    """
    rows = []
    for label, df in calls.items():
        for function, d in df.dropna(subset=["duration_s"]).groupby("function", sort=False)["duration_s"]:
            rows.append({"trace": label, "function": function, "calls": len(d), "median_s": d.median(),
                         "p99_s": d.quantile(0.99), "max_s": d.max()})  # fmt: skip
    out = pd.DataFrame(rows, columns=["trace", "function", "calls", "median_s", "p99_s", "max_s"])
    return out.astype({"trace": "string", "function": "string", "calls": "int64", "median_s": "float64",
                       "p99_s": "float64", "max_s": "float64"})  # fmt: skip
