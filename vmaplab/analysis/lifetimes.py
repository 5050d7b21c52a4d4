"""Lifetimes of the vmap areas in a vmalloc trace: allocated, lazily freed, purged.

A vmap area is busy from its ``alloc_vmap_area`` event to its ``free_vmap_area_noflush`` event. The
free is lazy (kernel-facts §1.4): the pages go back at once, but the address range stays unusable until
a ``purge_vmap_area_lazy`` returns it to the free space. The purge event carries the address range it
covered (``start``..``end``), not the areas, so an area counts as purged by the first purge, at or
after its free, whose range holds its start address (an area freed while that purge ran, after the
kernel took its list, is counted as purged by it too: the trace does not tell them apart).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io._trace_lines import event_clock, lost_events

__all__ = ["area_lifetimes"]

_ALLOC, _FREE, _PURGE = "alloc_vmap_area", "free_vmap_area_noflush", "purge_vmap_area_lazy"


def area_lifetimes(trace: pd.DataFrame) -> pd.DataFrame:
    """One row per vmap area of a vmalloc trace, with the times it was allocated, freed and purged.

    Parameters
    ----------
    trace : DataFrame
        A frame of :func:`vmaplab.read_vmalloc_trace`, or the ``vmalloc_trace`` frame of
        :func:`vmaplab.read_bundle` (whose event clock is ``event_time``).

    Returns
    -------
    DataFrame, one row per successful allocation and one per free of an area allocated before the
    trace began, in the order of their first event:

    ==========  =======  ===================================================================
    va_start    UInt64   area start address
    size        Int64    bytes, guard page included (<NA>: allocated before the trace)
    alloc_time  float64  seconds, the trace's clock (NaN: allocated before the trace)
    free_time   float64  seconds (NaN: not freed within the trace)
    purge_time  float64  seconds (NaN: freed but not purged within the trace, or not freed)
    state       string   at the trace's end: ``"allocated"``, ``"lazily freed"`` or ``"purged"``;
                         ``"unknown"`` for an area whose start was allocated again with no free
                         between (a lost event)
    ==========  =======  ===================================================================

    ``attrs``: ``start`` and ``end`` (first and last event time, s), ``failed`` (failed
    allocations, left out), ``freed_before_trace`` (frees of areas allocated before the trace),
    ``unmatched`` (rows of state ``"unknown"``), ``source``, ``lost_events`` (the trace's, with a
    warning: where the ring buffer dropped events, states can be wrong). Several traces (``block``)
    raise ValueError.

    Examples
    --------
    >>> import vmaplab as vl
    >>> t = vl.read_vmalloc_trace("data/real/vmalloc-trace-perf-thread-churn.txt.gz")
    >>> area_lifetimes(t)["state"].value_counts().to_dict()
    {'purged': 5999, 'lazily freed': 1436, 'allocated': 196}
    """
    trace = event_clock(trace)
    missing = {"time", "event", "va_start", "size", "failed", "purge_start", "purge_end"} - set(trace.columns)
    if missing:
        raise ValueError(f"not a vmalloc trace frame: missing columns {sorted(missing)}")
    if "block" in trace and trace["block"].nunique() > 1:
        raise ValueError(f"the frame holds {trace['block'].nunique()} traces (block column); pass one")
    lost = lost_events(trace, "an area whose allocation was lost counts as allocated before the trace, one "
                              "whose free or purge was lost as still busy")  # fmt: skip
    event = trace["event"].astype(str).to_numpy()
    time = trace["time"].to_numpy(dtype=np.float64)
    failed = (event == _ALLOC) & (trace["failed"].fillna(0).to_numpy(dtype=np.int64) != 0)
    is_area = ((event == _ALLOC) & ~failed) | (event == _FREE)

    # Per start address in time order, an alloc followed by a free is one lifetime.
    va = trace["va_start"].to_numpy(dtype=np.uint64, na_value=0)[is_area]
    kind = (event[is_area] == _FREE).astype(np.int8)  # 0 alloc, 1 free: an alloc goes first on a tie
    t = time[is_area]
    size = trace["size"].array[is_area]
    order = np.lexsort((kind, t, va))
    va, kind, t, size = va[order], kind[order], t[order], size[order]
    same_next = np.append(va[1:] == va[:-1], False)
    same_prev = np.insert(va[1:] == va[:-1], 0, False)
    next_kind = np.append(kind[1:], -1)
    prev_kind = np.insert(kind[:-1], 0, -1)
    alloc = kind == 0
    freed = alloc & same_next & (next_kind == 1)
    reused = alloc & same_next & (next_kind == 0)  # allocated again with no free between: a lost event
    orphan = (kind == 1) & ~(same_prev & (prev_kind == 0))  # allocated before the trace

    rows = alloc | orphan
    free_time = np.where(freed, np.append(t[1:], np.nan), np.where(orphan, t, np.nan))
    out = pd.DataFrame(
        {
            "va_start": pd.array(va[rows], dtype="UInt64"),
            "size": pd.array(np.where(alloc, size, pd.NA)[rows], dtype="Int64"),
            "alloc_time": np.where(alloc, t, np.nan)[rows],
            "free_time": free_time[rows],
        }
    )
    purge_time = np.full(len(out), np.nan)
    is_purge = event == _PURGE
    by_time = np.argsort(time[is_purge], kind="stable")
    starts = out["va_start"].to_numpy(dtype=np.uint64)
    out_free = out["free_time"].to_numpy()
    for p_time, p_start, p_end in zip(
        time[is_purge][by_time],
        trace["purge_start"].to_numpy(dtype=np.uint64, na_value=0)[is_purge][by_time],
        trace["purge_end"].to_numpy(dtype=np.uint64, na_value=0)[is_purge][by_time],
    ):
        hit = np.isnan(purge_time) & (out_free <= p_time) & (starts >= p_start) & (starts < p_end)
        purge_time[hit] = p_time
    out["purge_time"] = purge_time
    state = np.select(
        [reused[rows], ~np.isnan(purge_time), ~np.isnan(out_free)],
        ["unknown", "purged", "lazily freed"],
        default="allocated",
    )
    out["state"] = pd.array(state, dtype="string")
    first = out["alloc_time"].fillna(out["free_time"]).to_numpy()
    out = out.iloc[np.lexsort((out["alloc_time"].isna().to_numpy(), first))].reset_index(drop=True)
    out.attrs.update(
        start=float(np.nanmin(time)) if len(time) else np.nan,
        end=float(np.nanmax(time)) if len(time) else np.nan,
        failed=int(failed.sum()),
        freed_before_trace=int(orphan.sum()),
        unmatched=int(reused.sum()),
        source=trace.attrs.get("source"),
        lost_events=lost,
    )
    return out
