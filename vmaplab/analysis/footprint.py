"""Page-table pages that a traced run of the vmalloc allocator made the kernel allocate.

Kernel page tables of the vmalloc area are never freed (kernel-facts §1.8): the first mapping in a
2 MiB region allocates its PTE page, the first in a 1 GiB region its PMD page, and they stay. So a
trace of ``alloc_vmap_area`` events gives the page tables its areas need: every region the traced areas
touched that no earlier traced area had touched, each area taken as mapped whole with 4 KiB pages (an
estimate: an area mapped with huge pages needs no PTE page, and an area reserved but not mapped, or a
vmap block used in part, touches fewer regions). Regions mapped before the trace started are unknown
here and are counted as new at their first traced use: against a kernel counter (allocinfo, meminfo)
this is the growth the trace accounts for, not the counter's growth.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..io._source import Source
from ..io._trace_lines import event_clock
from ..sim.params import (
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_REGION_PAGES,
    PTE_REGION_PAGES,
    VMALLOC_SIZE_L4,
    VMALLOC_SIZE_L5,
    VMALLOC_START_L4,
    VMALLOC_START_L5,
)

__all__ = ["pagetable_footprint"]

_PTE_SPAN_SHIFT = PAGE_SHIFT + int(PTE_REGION_PAGES).bit_length() - 1  # log2 bytes one PTE page maps: 21, 2 MiB
_PMD_SPAN_SHIFT = PAGE_SHIFT + int(PMD_REGION_PAGES).bit_length() - 1  # log2 bytes one PMD page maps: 30, 1 GiB


def pagetable_footprint(
    trace: pd.DataFrame | Source,
    *,
    vmalloc_range: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Cumulative PTE and PMD pages touched by the allocations of a vmalloc trace.

    Parameters
    ----------
    trace : DataFrame or path
        A frame from :func:`vmaplab.read_vmalloc_trace`, or a file to read with it.
    vmalloc_range : (start, size) in bytes, optional
        The vmalloc window. Default: the ``vstart``/``vend`` window of the trace's own requests that
        spans a whole x86_64 vmalloc area (32 TiB with 4-level paging, 12800 TiB with 5-level; this
        follows KASLR's moved base), else the fixed 4-level window at 0xffffc90000000000 (or the
        5-level one at 0xffa0000000000000 when the areas lie there).

    Returns
    -------
    DataFrame, one row per ``alloc_vmap_area`` event in time order:

    ===============  =======  =============================================================
    time             float64  event time, seconds
    va_start         UInt64   area start
    size             Int64    area size in bytes, guard page included
    new_pte_pages    int64    PTE pages (2 MiB regions) this area touched first
    new_pmd_pages    int64    PMD pages (1 GiB regions) this area touched first
    pte_pages        int64    PTE pages touched so far (never freed, so never decreasing)
    pmd_pages        int64    PMD pages touched so far
    pagetable_bytes  int64    (pte_pages + pmd_pages) * 4096
    ===============  =======  =============================================================

    An area's mapped pages are ``[va_start, va_start + size - 4096)``: the last page is the unmapped
    guard page. Failed allocations and areas outside the vmalloc window (modules, BPF) add nothing.
    ``attrs``: ``vmalloc_range`` (start, size) used, ``counted`` (allocations that added regions or
    could have) and ``ignored`` (failed or outside the window). Several traces (``block``) raise
    ValueError.
    """
    if not isinstance(trace, pd.DataFrame):
        from ..io.vmalloc_trace import read_vmalloc_trace

        if isinstance(trace, (str, os.PathLike)) or hasattr(trace, "read"):
            trace = read_vmalloc_trace(trace)
        else:
            raise TypeError(f"expected a vmalloc trace DataFrame or a path, got {type(trace).__name__}")
    trace = event_clock(trace)
    missing = {"time", "event", "va_start", "size", "failed"} - set(trace.columns)
    if missing:
        raise ValueError(f"not a vmalloc trace frame: missing columns {sorted(missing)}")
    if "block" in trace and trace["block"].nunique() > 1:  # other runs, other clocks, maybe other boots
        raise ValueError(f"the frame holds {trace['block'].nunique()} traces (block column); pass one")

    allocs = trace[trace["event"] == "alloc_vmap_area"].sort_values("time", kind="stable")
    start_win, size_win = _window(allocs) if vmalloc_range is None else vmalloc_range
    va = allocs["va_start"].to_numpy(dtype=np.uint64, na_value=0)
    size = allocs["size"].to_numpy(dtype=np.int64, na_value=0)
    mapped = np.maximum(size - PAGE_SIZE, 0).astype(np.uint64)
    win_lo, win_hi = np.uint64(start_win), np.uint64(start_win + size_win)  # no overflow: < 2**64
    ok = (
        (allocs["failed"].fillna(1).to_numpy(dtype=np.int64) == 0)
        & (va >= win_lo)
        & (va < win_hi)
        & (mapped <= win_hi - va)
        & (mapped > 0)
    )
    first_pte = _first_touch(va, mapped, ok, _PTE_SPAN_SHIFT)
    first_pmd = _first_touch(va, mapped, ok, _PMD_SPAN_SHIFT)
    new_pte = np.bincount(first_pte, minlength=len(allocs)).astype(np.int64)
    new_pmd = np.bincount(first_pmd, minlength=len(allocs)).astype(np.int64)
    pte = np.cumsum(new_pte)
    pmd = np.cumsum(new_pmd)
    out = pd.DataFrame(
        {
            "time": allocs["time"].to_numpy(dtype=np.float64),
            "va_start": allocs["va_start"].array,
            "size": allocs["size"].array,
            "new_pte_pages": new_pte,
            "new_pmd_pages": new_pmd,
            "pte_pages": pte,
            "pmd_pages": pmd,
            "pagetable_bytes": (pte + pmd) * PAGE_SIZE,
        }
    )
    out.attrs.update(
        vmalloc_range=(int(start_win), int(size_win)),
        counted=int(ok.sum()),
        ignored=int((~ok).sum()),
        source=trace.attrs.get("source"),
    )
    return out


def _window(allocs: pd.DataFrame) -> tuple[int, int]:
    """The vmalloc window (start, size) the trace's requests show, else the fixed x86_64 one."""
    vstart = allocs["vstart"].to_numpy(dtype=np.uint64, na_value=0)
    vend = allocs["vend"].to_numpy(dtype=np.uint64, na_value=0)
    span = vend - vstart + np.uint64(1)
    whole = (span == np.uint64(VMALLOC_SIZE_L4)) | (span == np.uint64(VMALLOC_SIZE_L5))
    if whole.any():
        starts, counts = np.unique(vstart[whole], return_counts=True)
        best = starts[np.argmax(counts)]
        return int(best), int(span[whole][np.argmax(vstart[whole] == best)])
    va = allocs["va_start"].to_numpy(dtype=np.uint64, na_value=0)
    in_l4 = (va >= np.uint64(VMALLOC_START_L4)) & (va < np.uint64(VMALLOC_START_L4 + VMALLOC_SIZE_L4))
    in_l5 = (va >= np.uint64(VMALLOC_START_L5)) & (va < np.uint64(VMALLOC_START_L5 + VMALLOC_SIZE_L5))
    if in_l5.any() and not in_l4.any():
        return VMALLOC_START_L5, VMALLOC_SIZE_L5
    return VMALLOC_START_L4, VMALLOC_SIZE_L4


def _first_touch(va: np.ndarray, mapped: np.ndarray, ok: np.ndarray, shift: int) -> np.ndarray:
    """Row index of the event that touched each region of ``1 << shift`` bytes first (one entry per
    region any counted event touched)."""
    rows = np.flatnonzero(ok)
    if not len(rows):
        return np.zeros(0, dtype=np.int64)
    first = (va[rows] >> np.uint64(shift)).astype(np.int64, casting="unsafe")
    last = ((va[rows] + mapped[rows] - np.uint64(1)) >> np.uint64(shift)).astype(np.int64, casting="unsafe")
    return rows[first_owners(first, last)]


def first_owners(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """For each distinct int in the inclusive ranges ``[first[j], last[j]]`` (ascending), the index j of
    the first range that holds it."""
    n = last - first + 1
    # expand every range into its ints, keeping range order, then take each int's first range
    owner = np.repeat(np.arange(len(first)), n)
    ints = np.repeat(first, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    _, index = np.unique(ints, return_index=True)
    return owner[index]
