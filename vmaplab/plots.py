"""Figures of the parsing half: one function per figure, each taking reader or analysis frames and
returning a :class:`matplotlib.figure.Figure` (made without pyplot, so any backend, Agg included,
can save it: ``fig.savefig("pt.png")`` or ``.svg``).

Sizes are plotted in bytes; the axes show them in the binary unit that fits (MiB, GiB, ...), named in
the axis label. Published values are drawn in black and labelled ``published (<citation>)`` when a
``published=`` citation is given; other data is ``measured`` unless labelled otherwise.

>>> import vmaplab as vl
>>> fig = pagetable_growth({64: vl.read_allocinfo("data/seed/allocinfo-64threads.txt")},
...                        published="Rezki, linux-mm, 22 Feb 2024")
>>> fig.savefig("pagetable_growth.svg")  # doctest: +SKIP
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from .analysis.diff import pagetable_rows
from .analysis.footprint import first_owners, pagetable_footprint
from .analysis.lifetimes import area_lifetimes
from .io._trace_lines import event_clock
from .io.units import format_size

__all__ = [
    "save_figure",
    "pagetable_growth",
    "free_used",
    "profile_comparison",
    "trace_footprint",
    "vmalloc_map",
    "vmallocinfo_map",
    "snapshot_series",
    "pagetable_vs_published",
    "rerun_plateau",
    "va_timeline",
    "knobs_effect",
    "KNOB_METRICS",
    "spin_share_vs_threads",
    "throughput_vs_threads",
    "lock_wait_share",
    "sim_space_map",
    "run_labels",
    "replay_comparison",
    "measured_vs_model",
    "call_durations",
]

PAGE_SIZE = 4096  # bytes; x86_64 page-table pages are one page each
GIB = 1 << 30
PUBLISHED_COLOR = "black"
MEASURED_COLOR = "C0"
_UNITS = [(1 << 50, "PiB"), (1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]


class _ScaledLocator(ticker.MaxNLocator):
    """Ticks at round numbers of a unit (1, 2, 2.5, 5 times a power of ten of MiB, say)."""

    def __init__(self, scale: int):
        super().__init__(nbins="auto", steps=[1, 2, 2.5, 5, 10])
        self.scale = scale

    def tick_values(self, vmin: float, vmax: float) -> np.ndarray:
        return super().tick_values(vmin / self.scale, vmax / self.scale) * self.scale


def _bytes_axis(axis: Axis, largest: float, what: str) -> None:
    """Label an axis of byte values ``<what> (<unit>)`` with ticks in the binary unit that fits ``largest``."""
    scale, unit = next(((s, u) for s, u in _UNITS if largest >= s), (1, "bytes"))
    axis.set_major_locator(_ScaledLocator(scale))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v / scale:g}"))
    axis.set_label_text(f"{what} ({unit})")


def _one_listing(df: pd.DataFrame, what: str) -> pd.DataFrame:
    """``df`` itself, after checking that it holds one listing (one block, one bundle snapshot)."""
    for col, name in (("snapshot", "bundle snapshots"), ("block", "listings (block column)")):
        if col in df.columns and df[col].nunique() > 1:
            raise ValueError(f"{what} holds {df[col].nunique()} {name}; select one (df[df.{col} == n])")
    return df


def _style(published: str | None, label: str | None) -> tuple[str, str]:
    """Legend label and colour of the data series: black ``published (...)``, else ``measured``."""
    if published is not None:
        return label or f"published ({published})", PUBLISHED_COLOR
    return label or "measured", MEASURED_COLOR


def _thread_ticks(ax: Axes, threads: Sequence[int]) -> None:
    ax.set_xticks(sorted(set(threads)))
    ax.set_xlabel("threads (test_vmalloc nr_threads)")


def _pagetable_bytes(listing: pd.DataFrame) -> tuple[float, bool]:
    """Page-table bytes of an allocinfo listing and whether the value is exact; a listing that is an
    excerpt (no zero lines) and lacks the page-table tags gives its smallest size as an upper bound."""
    old, new = pagetable_rows(listing)
    rows = listing[old | new]
    if len(rows):
        return float(rows["size_bytes"].sum()), True
    if (listing["size_bytes"] == 0).any() or listing.empty:
        return 0.0, True
    return float(listing["size_bytes"].min()), False


def pagetable_growth(
    listings: Mapping[int, pd.DataFrame],
    *,
    published: str | None = None,
    label: str | None = None,
    simulated: pd.DataFrame | None = None,
    title: str | None = None,
) -> Figure:
    """Page-table memory of the vmalloc area per thread count, from allocinfo listings.

    Parameters
    ----------
    listings : mapping of int to DataFrame
        Thread count -> a :func:`vmaplab.read_allocinfo` frame of one listing taken after the run
        (0 for a listing taken before any run). Page tables are the ``pagetable_alloc`` tag of the
        pre-merge format or its mm/memory.c call sites from 6.10 (as :func:`vmaplab.diff` folds
        them). An excerpt (``sort -h | tail``, no zero lines) without them is drawn as an open
        triangle at its smallest size: the value lies below it.
    published : str, optional
        Citation of published data (e.g. ``"Rezki, linux-mm, 22 Feb 2024"``): black markers
        labelled ``published (<citation>)``.
    label : str, optional
        Legend label of ``listings`` (default ``published (...)`` or ``measured``).
    simulated : DataFrame, optional
        Points to overlay, columns ``threads`` (int), ``bytes`` (page-table bytes) and ``label``
        (one line per label).
    title : str, optional

    Returns
    -------
    Figure
        One axes: bytes against threads (left axis in binary units, right axis in 4 KiB pages), each
        listing's point annotated with its size as allocinfo prints it.
    """
    if not listings:
        raise ValueError("pagetable_growth needs at least one allocinfo listing")
    name, colour = _style(published, label)
    points = sorted(
        (int(n), *_pagetable_bytes(_one_listing(df, f"listing of {n} threads"))) for n, df in listings.items()
    )
    threads = np.array([p[0] for p in points])
    value = np.array([p[1] for p in points])
    exact = np.array([p[2] for p in points], dtype=bool)

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(threads[exact], value[exact], "o-", color=colour, label=name, zorder=3)
    if (~exact).any():
        ax.plot(threads[~exact], value[~exact], "v", color=colour, mfc="none", linestyle="none",
                label="not in the excerpt: below this size")  # fmt: skip
    labels = [(n, v, format_size(v) if ok else f"< {format_size(v)}", colour)
              for n, v, ok in zip(threads, value, exact)]  # fmt: skip
    largest = value.max()
    if simulated is not None:
        missing = {"threads", "bytes", "label"} - set(simulated.columns)
        if missing:
            raise ValueError(f"simulated points need the columns threads, bytes and label; missing {sorted(missing)}")
        for i, (sim_label, part) in enumerate(simulated.groupby("label", sort=False)):
            part = part.sort_values("threads")
            ax.plot(part["threads"], part["bytes"], "s--", color=f"C{i + 1}", label=str(sim_label), zorder=2)
        largest = max(largest, float(simulated["bytes"].max()))
        threads = np.concatenate([threads, simulated["threads"].to_numpy(dtype=int)])
    _thread_ticks(ax, threads.tolist())
    ax.margins(x=0.16)
    ax.set_ylim(0, largest * 1.12)
    _bytes_axis(ax.yaxis, largest, "page-table memory")
    _label_points(ax, labels)
    pages = ax.secondary_yaxis("right", functions=(lambda b: b / PAGE_SIZE, lambda p: p * PAGE_SIZE))
    pages.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    pages.set_ylabel("page-table pages (4 KiB each)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(title or "vmalloc page tables (allocinfo pagetable_alloc) per thread count")
    return fig


def free_used(
    frees: Mapping[int, pd.DataFrame],
    *,
    pagetables: Mapping[int, pd.DataFrame] | None = None,
    published: str | None = None,
    label: str | None = None,
    title: str | None = None,
) -> Figure:
    """``free`` used memory per thread count and, beside it, its growth against page-table growth.

    Parameters
    ----------
    frees : mapping of int to DataFrame
        Thread count -> a :func:`vmaplab.read_free` frame of one listing (read ``free -m`` output
        with ``unit="m"``); key 0 is the listing before the test, drawn as a dashed baseline.
    pagetables : mapping of int to DataFrame, optional
        Thread count -> allocinfo listing, as for :func:`pagetable_growth`. With it (and a key 0 in
        ``frees``) a second axes shows, per thread count, ``used`` minus the baseline beside the
        page-table bytes.
    published, label, title
        As for :func:`pagetable_growth`.

    Returns
    -------
    Figure
        One axes (used bytes against threads), or two side by side with ``pagetables``.
    """
    used = {}
    for n, df in frees.items():
        mem = _one_listing(df, f"free listing of {n} threads")
        mem = mem[mem["row"] == "Mem"]
        if len(mem) != 1:
            raise ValueError(f"free listing of {n} threads has {len(mem)} 'Mem:' rows; expected one")
        used[int(n)] = float(mem["used"].iloc[0])
    runs = sorted(n for n in used if n > 0)
    if not runs:
        raise ValueError("free_used needs a free listing of at least one run (thread count > 0)")
    baseline = used.get(0)
    if pagetables is not None and baseline is None:
        raise ValueError("free_used compares growth with page tables only against a listing before the test (key 0)")
    name, colour = _style(published, label)

    fig = Figure(figsize=(12 if pagetables is not None else 7, 4.5), layout="constrained")
    axes = fig.subplots(1, 2 if pagetables is not None else 1, squeeze=False)[0]
    ax = axes[0]
    y = [used[n] for n in runs]
    ax.plot(runs, y, "o-", color=colour, label=f"used, {name}", zorder=3)
    if baseline is not None:
        before = f"used before the test ({format_size(baseline)})"
        ax.axhline(baseline, color=colour, linestyle="--", linewidth=1, label=before)
    _thread_ticks(ax, runs)
    ax.margins(x=0.12)
    ax.set_ylim(0, max(y + [baseline or 0]) * 1.12)
    _bytes_axis(ax.yaxis, max(y + [baseline or 0]), "used memory (free)")
    _label_points(ax, [(n, v, format_size(v), colour) for n, v in zip(runs, y)])
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title("free: used memory after each run")

    if pagetables is not None:
        ax = axes[1]
        table = {int(n): _pagetable_bytes(_one_listing(df, f"listing of {n} threads")) for n, df in pagetables.items()}
        both = [n for n in runs if n in table]
        x = np.arange(len(both))
        growth = [used[n] - baseline for n in both]
        tables = [table[n][0] for n in both]
        ax.bar(x - 0.2, growth, width=0.4, color=colour, label="used − used before the test (free)")
        ax.bar(x + 0.2, tables, width=0.4, color=colour, alpha=0.45, hatch="//", label="page tables (allocinfo)")
        for xi, g, t in zip(x, growth, tables):
            ax.annotate(format_size(g), (xi - 0.2, g), ha="center", va="bottom", fontsize=8)
            ax.annotate(format_size(t), (xi + 0.2, t), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, [str(n) for n in both])
        ax.set_xlabel("threads (test_vmalloc nr_threads)")
        ax.set_ylim(0, max(growth + tables) * 1.25)
        _bytes_axis(ax.yaxis, max(growth + tables), "memory")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper left")
        ax.set_title("growth of used memory against page-table memory")
    _with_subtitle(fig, title or "free used memory and vmalloc page tables per thread count", None)
    return fig


def profile_comparison(
    comparison: pd.DataFrame,
    *,
    labels: tuple[str, str] = ("a", "b"),
    top: int = 25,
    highlight: Sequence[str] = ("native_queued_spin_lock_slowpath", "__pv_queued_spin_lock_slowpath"),
    published: str | None = None,
    scale: str | None = None,
    title: str | None = None,
) -> Figure:
    """Self and children shares per symbol of two profiles, as horizontal bars side by side.

    Parameters
    ----------
    comparison : DataFrame
        A :func:`vmaplab.compare_profiles` result (its ``symbol``, ``self_pct_a/_b`` and
        ``children_pct_a/_b`` columns), largest change first.
    labels : (str, str)
        Names of profile a and profile b (e.g. kernel versions).
    top : int
        Show the first ``top`` symbols of ``comparison``.
    highlight : sequence of str
        Symbols (suffix-folded, as in ``comparison``) to highlight: red label and a shaded row.
        Default: the queued-spinlock slow path, native and paravirtualised (a guest's).
    published : str, optional
        Citation when both profiles are published tables: ``(published)`` in the legend and the
        citation under the axes.
    scale : str, optional
        What was profiled (e.g. a simulated machine's size), under the title.
    title : str, optional

    Returns
    -------
    Figure
        One axes per share (self, children; children only when reported), in percent of samples; a
        symbol absent from a profile has no bar for it.
    """
    missing = {"symbol", "self_pct_a", "self_pct_b", "children_pct_a", "children_pct_b"} - set(comparison.columns)
    if missing:
        raise ValueError(f"not a compare_profiles result: missing columns {sorted(missing)}")
    rows = comparison.head(top).reset_index(drop=True)
    shares = ["self"] + (["children"] if rows[["children_pct_a", "children_pct_b"]].notna().any().any() else [])
    suffix = " (published)" if published is not None else ""
    fig = Figure(figsize=(5 + 3.5 * len(shares), 1.2 + 0.32 * len(rows)), layout="constrained")
    axes = fig.subplots(1, len(shares), sharey=True, squeeze=False)[0]
    y = np.arange(len(rows))
    marked = rows["symbol"].isin(list(highlight)).to_numpy()
    for ax, share in zip(axes, shares):
        for offset, side, colour, name in ((-0.2, "a", "C3", labels[0]), (0.2, "b", "C0", labels[1])):
            values = rows[f"{share}_pct_{side}"].astype("Float64")
            have = values.notna().to_numpy()
            width = values[have].to_numpy(dtype=float)
            ax.barh(y[have] + offset, width, height=0.4, color=colour, label=name + suffix)
            for yi, w in zip(y[have] + offset, width):
                ax.annotate(f"{w:.2f}", (w, yi), xytext=(2, 0), textcoords="offset points", va="center", fontsize=7)
        for yi in y[marked]:
            ax.axhspan(yi - 0.5, yi + 0.5, color="red", alpha=0.08, zorder=0)
        ax.set_xlabel(f"{share} (% of samples)")
        largest = rows[[f"{share}_pct_a", f"{share}_pct_b"]].astype(float).fillna(0).to_numpy().max()
        ax.set_xlim(0, max(float(largest), 0.01) * 1.12)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"{share} share")
    ax0 = axes[0]
    ax0.set_yticks(y, rows["symbol"].astype(str).tolist())
    for tick, mark in zip(ax0.get_yticklabels(), marked):
        if mark:
            tick.set_color("red")
            tick.set_fontweight("bold")
    ax0.invert_yaxis()
    fig.legend(handles=ax0.get_legend_handles_labels()[0], loc="outside lower center", ncols=2)
    _with_subtitle(fig, title or f"perf profile: {labels[0]} vs {labels[1]} (largest changes first)", scale)
    if published is not None:
        fig.supxlabel(f"published: {published}", fontsize=8, x=0.01, ha="left")
    return fig


def _source_name(df: pd.DataFrame) -> str:
    """The last part of a frame's ``source`` (a file or folder name, and what follows it), for titles
    that do not carry the folders of the machine that drew them."""
    return str(df.attrs.get("source") or "").rstrip("/").rsplit("/", 1)[-1]


def _event_clock(trace: pd.DataFrame) -> pd.DataFrame:
    """A vmalloc trace frame with its event clock in ``time`` (a bundle frame keeps it in ``event_time``)."""
    trace = event_clock(trace)
    missing = {"time", "event"} - set(trace.columns)
    if missing:
        raise ValueError(f"not a vmalloc trace frame: missing columns {sorted(missing)}")
    return trace


def _purges(ax: Axes, trace: pd.DataFrame, t0: float, *, counts: bool = True) -> None:
    """Mark the trace's purge events (seconds since ``t0``) as red dotted lines and, with ``counts``, write
    their area counts along them on the left, low (a purge comes when the lazy backlog is high, and
    right after it the backlog drops along the line); without, the counts go in the legend label."""
    purges = trace[trace["event"] == "purge_vmap_area_lazy"]
    name = "purge_vmap_area_lazy"
    if not counts and len(purges):
        name += f" ({', '.join(f'{n:,}' for n in purges['num_purged'])} areas purged)"
    for i, (t, n) in enumerate(zip(purges["time"], purges["num_purged"])):
        ax.axvline(t - t0, color="red", linestyle=":", linewidth=1.2, label=None if i else name)
        if counts:
            ax.annotate(f"{n} areas purged", (t - t0, 0.35), xycoords=("data", "axes fraction"), xytext=(-3, 0),
                        textcoords="offset points", rotation=90, va="center", ha="right", fontsize=7,
                        color="red")  # fmt: skip


def trace_footprint(trace: pd.DataFrame, *, footprint: pd.DataFrame | None = None, title: str | None = None) -> Figure:
    """Page-table pages a vmalloc trace's allocations touched over time, with the purges marked and,
    below, the lazily freed pages the free events report.

    Parameters
    ----------
    trace : DataFrame
        A :func:`vmaplab.read_vmalloc_trace` frame (or a bundle's ``vmalloc_trace`` frame).
    footprint : DataFrame, optional
        Its :func:`vmaplab.pagetable_footprint` (computed when not given).
    title : str, optional

    Returns
    -------
    Figure
        Top: cumulative PTE and PMD pages (left, pages; right, bytes in binary units) against seconds
        since the first event; purge events as red dotted lines. Bottom (when the trace has free
        events): ``nr_lazy`` and ``nr_lazy_max`` in pages.
    """
    trace = _event_clock(trace)
    fp = pagetable_footprint(trace) if footprint is None else footprint
    t0 = float(trace["time"].min())
    frees = trace[trace["event"] == "free_vmap_area_noflush"]
    fig = Figure(figsize=(8, 6.5 if len(frees) else 4.5), layout="constrained")
    axes = fig.subplots(2 if len(frees) else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    t = fp["time"].to_numpy(dtype=float) - t0
    ax.plot(t, fp["pte_pages"], drawstyle="steps-post", color="C0", label="PTE pages (2 MiB regions)")
    ax.plot(t, fp["pmd_pages"], drawstyle="steps-post", color="C2", label="PMD pages (1 GiB regions)")
    _purges(ax, trace, t0, counts=not len(frees))  # the counts go on the lazy panel when there is one
    ax.set_ylim(bottom=0)
    ax.set_ylabel("page-table pages touched (4 KiB each)")
    mem = ax.secondary_yaxis("right", functions=(lambda p: p * PAGE_SIZE, lambda b: b / PAGE_SIZE))
    _bytes_axis(mem.yaxis, float(fp["pagetable_bytes"].max()) if len(fp) else 0.0, "page-table memory")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right")
    ax.set_title("page-table pages touched by the traced allocations (never freed)")
    if len(frees):
        ax = axes[1]
        tf = frees["time"].to_numpy(dtype=float) - t0
        ax.plot(tf, frees["nr_lazy"].astype(float), drawstyle="steps-post", color="C1", label="nr_lazy (lazily freed)")
        ax.plot(tf, frees["nr_lazy_max"].astype(float), color="black", linestyle="--", linewidth=1,
                label="nr_lazy_max (lazy_max_pages)")  # fmt: skip
        _purges(ax, trace, t0)
        ax.set_ylabel("pages (4 KiB each)")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, float(frees[["nr_lazy", "nr_lazy_max"]].max().max()) * 1.3)
        ax.legend(loc="upper left", ncols=3, fontsize=8)
        ax.set_title("lazily freed vmap space reported by free_vmap_area_noflush")
    axes[-1].set_xlabel("time since the first traced event (s)")
    _with_subtitle(fig, title or f"vmalloc trace {_source_name(trace)}".rstrip(), None)
    return fig


def drain_stall(events: pd.DataFrame, trace: pd.DataFrame, *, function: str = "drain_vmap_area_work",
                title: str | None = None) -> Figure:  # fmt: skip
    """The lazy backlog of a vmalloc trace beside its drain's work runs: when each drain was asked for,
    when it ran, and how long its kworker then sat preempted while it still owned the work.

    Parameters
    ----------
    events : DataFrame
        A :func:`vmaplab.read_sched_trace` frame of the same recording (workqueue and sched_switch).
    trace : DataFrame
        A :func:`vmaplab.read_vmalloc_trace` frame (with free events).
    function : str
        The work function (default the drain).
    title : str, optional

    Returns
    -------
    Figure
        Top: ``nr_lazy`` and ``nr_lazy_max`` (pages) against seconds since the first event. Bottom,
        per execution (:func:`vmaplab.work_runs`): the request waiting (request to start; upper row),
        the kworker running (start to end) and, when it was preempted right after, off the CPU until
        it ran again (lower row).
    """
    from .analysis.work_runs import work_runs

    trace = _event_clock(trace)
    frees = trace[trace["event"] == "free_vmap_area_noflush"]
    if frees.empty:
        raise ValueError("the vmalloc trace has no free_vmap_area_noflush events: no backlog to draw")
    runs = work_runs(events, function)
    t0 = float(min(trace["time"].min(), events["time"].min()))
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.4))
    tf = frees["time"].to_numpy(dtype=float) - t0
    top.plot(tf, frees["nr_lazy"].astype(float), drawstyle="steps-post", color="C1", label="nr_lazy (lazily freed)")
    top.plot(tf, frees["nr_lazy_max"].astype(float), color="black", linestyle="--", linewidth=1,
             label="nr_lazy_max (lazy_max_pages)")  # fmt: skip
    top.set_ylabel("pages (4 KiB each)")
    top.yaxis.set_major_formatter(lambda v, _: f"{v / 1000:,.0f}k")
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize=8)
    top.set_title("lazily freed vmap space reported by free_vmap_area_noflush")
    parts = (("request waiting (not started)", "requested", "started", "#f4a259", 1),
             ("running", "started", "ended", "C0", 0),
             ("preempted, still owning the work", "ended", None, "0.6", 0))  # fmt: skip
    for label, a, b, color, row in parts:
        start = runs[a].to_numpy(dtype=float) - t0
        if b is None:
            off = runs["off_cpu_s"].to_numpy(dtype=float)
            keep = runs["preempted_after"].fillna(False).to_numpy(dtype=bool) & np.isfinite(off)
            start, width = start[keep], off[keep]
        else:
            width = runs[b].to_numpy(dtype=float) - t0 - start
            keep = np.isfinite(width)
            start, width = start[keep], width[keep]
        bottom.barh(np.full(len(start), row), width, left=start, height=0.6, color=color, label=label)
    bottom.set_yticks([0, 1], ["kworker", "requests"])
    bottom.set_ylim(-0.5, 2.4)
    bottom.legend(loc="upper left", ncols=3, fontsize=8, frameon=False)
    bottom.grid(alpha=0.3, axis="x")
    longest = runs.loc[runs["wait_s"].idxmax()] if runs["wait_s"].notna().any() else None
    bottom.set_title(f"{function} on the kworkers"
                     + (f": the longest wait {1e3 * longest['wait_s']:.1f} ms" if longest is not None else ""))  # fmt: skip
    bottom.set_xlabel("time since the first traced event (s)")
    _with_subtitle(fig, title or f"drain stalls in {_source_name(trace)}".rstrip(), None)
    return fig


def call_durations(calls: Mapping[str, pd.DataFrame], *, title: str | None = None) -> Figure:
    """How long each probed function's calls took, one curve per trace: the share of calls that ended
    within each duration (an empirical CDF, log time axis).

    Parameters
    ----------
    calls : mapping of str to DataFrame
        Label (the run, say ``"8 threads"``) -> :func:`vmaplab.probe_calls` rows; calls cut by the
        trace's edges (NaN ``duration_s``) are left out.
    title : str, optional

    Returns
    -------
    Figure
        One panel per function (in order of first appearance), one curve per label, its median marked
        and given in the legend with the number of calls and the longest.
    """
    if not calls:
        raise ValueError("call_durations needs at least one probe_calls frame")
    for label, df in calls.items():
        _need(df, ("function", "duration_s"), f"call_durations ({label})")
    functions = list(dict.fromkeys(f for df in calls.values() for f in df["function"].dropna()))
    if not functions:
        raise ValueError("call_durations: no call in any frame")
    fig = Figure(figsize=(5 * len(functions), 4.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(functions), sharey=True))
    for ax, function in zip(axes, functions):
        for i, (label, df) in enumerate(calls.items()):
            ms = np.sort(df.loc[df["function"] == function, "duration_s"].dropna().to_numpy(dtype=float)) * 1e3
            if ms.size == 0:
                continue
            share = np.arange(1, ms.size + 1) / ms.size
            median = float(np.median(ms))
            ax.step(ms, share, where="post", color=f"C{i}",
                    label=f"{label}: {ms.size:,} calls, median {median:.3g} ms, longest {ms[-1]:.3g} ms")  # fmt: skip
            ax.plot([median], [0.5], marker="o", color=f"C{i}", markersize=4)
        ax.set_xscale("log")
        ax.set_xlabel("call duration, entry to return (ms)")
        ax.set_title(function, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="upper left", fontsize=7)
    axes[0].set_ylabel("share of calls that took at most this long")
    axes[0].set_ylim(0, 1.02)
    _with_subtitle(fig, title or "probed kernel functions: call durations", None)
    return fig


def _clusters(start: np.ndarray, end: np.ndarray, gap: int) -> list[np.ndarray]:
    """Row indices (ascending) of ``[start, end)`` ranges grouped into address clusters, lowest first:
    a new cluster begins where the next range starts more than ``gap`` bytes past every earlier end."""
    order = np.argsort(start, kind="stable")
    s, reach = start[order], np.maximum.accumulate(end[order])
    apart = np.where(s[1:] > reach[:-1], s[1:] - reach[:-1], np.uint64(0)) > np.uint64(gap)
    return [np.sort(g) for g in np.split(order, np.flatnonzero(apart) + 1)]


def _offsets(start: np.ndarray) -> tuple[int, np.ndarray]:
    """The 1 GiB boundary below a cluster's addresses (the span one PMD page maps; the vmalloc window
    starts on one) and the offsets of ``start`` from it (exact: below 2**53 within a cluster)."""
    base = int(start.min()) // GIB * GIB
    return base, (start - np.uint64(base)).astype(np.float64)


def _ratios(groups: list[np.ndarray], start: np.ndarray, end: np.ndarray) -> list[float]:
    """Panel sizes by address span, each at least a quarter of the largest."""
    spans = [float(end[g].max() - start[g].min()) for g in groups]
    return [max(span, max(spans) / 4) for span in spans]


def vmalloc_map(
    trace: pd.DataFrame,
    *,
    lifetimes: pd.DataFrame | None = None,
    gap: int = GIB,
    title: str | None = None,
) -> Figure:
    """The vmalloc address space over a trace: each area a horizontal segment at its address, blue
    while allocated, orange while lazily freed (its range not yet reusable), gone once purged.

    Parameters
    ----------
    trace : DataFrame
        A :func:`vmaplab.read_vmalloc_trace` frame (or a bundle's ``vmalloc_trace`` frame).
    lifetimes : DataFrame, optional
        Its :func:`vmaplab.analysis.lifetimes.area_lifetimes` (computed when not given).
    gap : int
        Bytes: areas further apart than this go to separate panels (the vmalloc window's start
        and end, the module area), highest addresses on top.
    title : str, optional

    Returns
    -------
    Figure
        Per panel, the address as an offset (binary units) from the 1 GiB boundary below the
        panel's areas, against seconds since the first event; an area allocated before the trace
        starts at time 0 and one still allocated or lazily freed at the end reaches the trace's end;
        purges as red dotted lines.
    """
    trace = _event_clock(trace)
    lt = area_lifetimes(trace) if lifetimes is None else lifetimes
    if lt.empty:
        raise ValueError(f"{trace.attrs.get('source') or 'trace'}: no alloc or free events to draw")
    t0, t_end = float(trace["time"].min()), float(trace["time"].max())
    va = lt["va_start"].to_numpy(dtype=np.uint64)
    va_end = va + lt["size"].fillna(PAGE_SIZE).to_numpy(dtype=np.uint64)
    alloc = lt["alloc_time"].fillna(t0).to_numpy(dtype=float) - t0
    free = lt["free_time"].to_numpy(dtype=float) - t0
    purge = lt["purge_time"].to_numpy(dtype=float) - t0
    end = t_end - t0
    live_to = np.where(np.isnan(free), end, free)
    lazy_to = np.where(np.isnan(purge), end, purge)

    groups = _clusters(va, va_end, gap)[::-1]
    fig = Figure(figsize=(9, 5.5 if len(groups) == 1 else 7), layout="constrained")
    axes = fig.subplots(len(groups), 1, sharex=True, squeeze=False, height_ratios=_ratios(groups, va, va_end))[:, 0]
    for ax, rows in zip(axes, groups):
        base, offset = _offsets(va[rows])
        _bytes_axis(ax.yaxis, float((va_end[rows] - np.uint64(base)).max()), f"address − {base:#x}")
        freed = ~np.isnan(free[rows])
        live = np.stack([np.c_[alloc[rows], offset], np.c_[live_to[rows], offset]], axis=1)
        lazy = np.stack([np.c_[free[rows], offset], np.c_[lazy_to[rows], offset]], axis=1)[freed]
        ax.add_collection(LineCollection(live, colors="C0", linewidths=1, label="allocated"))
        ax.add_collection(LineCollection(lazy, colors="C1", linewidths=1, label="lazily freed, not yet purged"))
        _purges(ax, trace, t0, counts=False)
        pad = max(float(offset.max() - offset.min()) * 0.03, 1 << 20)
        ax.set_ylim(max(float(offset.min()) - pad, 0), float(offset.max()) + pad)
        ax.grid(alpha=0.3)
    axes[0].set_xlim(0, max(end, 1e-9))
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], loc="outside lower center", ncols=3, fontsize=8)
    axes[-1].set_xlabel("time since the first traced event (s)")
    default = f"vmap areas over time ({len(lt):,} areas): {_source_name(trace) or 'trace'}"
    _with_subtitle(fig, title or default, None)
    return fig


def vmallocinfo_map(info: pd.DataFrame, *, top: int = 10, gap: int = GIB, title: str | None = None) -> Figure:
    """The areas of one /proc/vmallocinfo snapshot along the address axis, one row per caller.

    Parameters
    ----------
    info : DataFrame
        A :func:`vmaplab.read_vmallocinfo` frame of one snapshot with real addresses (read as root
        with ``kptr_restrict`` at 1; hashed or zeroed addresses raise ValueError).
    top : int
        Callers with the most areas get a row each; the others share an ``other callers`` row.
        ``vm_map_ram`` areas and lazily freed ``unpurged vm_area`` lines have rows of their own.
    gap : int
        Bytes: areas further apart than this go to separate panels side by side (the start and
        the end of the vmalloc window, the module area), lowest addresses left.
    title : str, optional

    Returns
    -------
    Figure
        Per panel (titled with its base address), the address as an offset (binary units) from the
        1 GiB boundary below the panel's areas; each row's label gives its number of areas and
        their total size.
    """
    info = _one_listing(info, "vmallocinfo frame")
    if info.empty:
        raise ValueError("vmallocinfo frame has no areas")
    if int(info["end"].max()) < 1 << 32:
        raise ValueError(
            f"{info.attrs.get('source', 'vmallocinfo')}: addresses are hashed or zeroed (kptr_restrict); "
            "capture /proc/vmallocinfo as root with kptr_restrict set to 1"
        )
    start = info["start"].to_numpy(dtype=np.uint64)
    end = info["end"].to_numpy(dtype=np.uint64)
    size = info["size"].to_numpy(dtype=np.float64)
    caller = info["caller"].astype(object).where(info["module"].isna(), info["caller"] + " [" + info["module"] + "]")
    caller = caller.fillna("(no caller)").to_numpy(dtype=object)
    special = (info["unpurged"] | info["vm_map_ram"]).to_numpy()
    counts = pd.Series(caller[~special]).value_counts()
    kept = list(counts.index[:top])
    other = f"other callers ({max(len(counts) - top, 0)})"
    row = np.where(np.isin(caller, kept), caller, other)
    row = np.where(info["vm_map_ram"].to_numpy(), "vm_map_ram", row)
    row = np.where(info["unpurged"].to_numpy(), "unpurged vm_area (lazily freed)", row)
    order = [r for r in [*kept, other, "vm_map_ram", "unpurged vm_area (lazily freed)"] if (row == r).any()]
    colours = {r: f"C{i % 10}" for i, r in enumerate(kept)}
    colours |= {other: "0.3", "vm_map_ram": "C9", "unpurged vm_area (lazily freed)": "0.6"}

    groups = _clusters(start, end, gap)
    fig = Figure(figsize=(11, 1.5 + 0.45 * len(order)), layout="constrained")
    axes = fig.subplots(1, len(groups), sharey=True, squeeze=False, width_ratios=_ratios(groups, start, end))[0]
    for ax, rows in zip(axes, groups):
        base, offset = _offsets(start[rows])
        _bytes_axis(ax.xaxis, float((end[rows] - np.uint64(base)).max()), "offset")
        ax.set_title(f"from\n{base:#x}", fontsize=8)
        for i, r in enumerate(order):
            pick = row[rows] == r
            if pick.any():
                ax.broken_barh(list(zip(offset[pick], size[rows][pick])), (i - 0.35, 0.7), facecolors=colours[r],
                               edgecolors=colours[r], linewidth=0.5, label=r)  # fmt: skip
        ax.grid(axis="x", alpha=0.3)
    names = [f"{r}: {int((row == r).sum())} areas, {format_size(size[row == r].sum())}" for r in order]
    axes[0].set_yticks(range(len(order)), names)
    axes[0].set_ylim(len(order) - 0.5, -0.5)
    _with_subtitle(fig, title or f"/proc/vmallocinfo areas by caller: {_source_name(info) or 'snapshot'}", None)
    return fig


def snapshot_series(
    frame: pd.DataFrame,
    fields: Sequence[str] = ("VmallocUsed", "PageTables"),
    *,
    title: str | None = None,
) -> Figure:
    """meminfo or vmstat fields over the snapshots of a bundle.

    Parameters
    ----------
    frame : DataFrame
        The ``meminfo`` or ``vmstat`` frame of :func:`vmaplab.read_bundle` (columns ``time``,
        ``field``, ``value``, ``unit``), or both concatenated.
    fields : sequence of str
        Field names (``VmallocUsed``, ``PageTables``, ``nr_page_table_pages``, ...).
    title : str, optional

    Returns
    -------
    Figure
        One axes per unit (bytes in binary units, pages, counts), one line per field against
        seconds since the bundle's start.
    """
    missing = {"time", "field", "value", "unit"} - set(frame.columns)
    if missing:
        raise ValueError(f"not a bundle meminfo/vmstat frame: missing columns {sorted(missing)}")
    fields = list(fields)
    absent = [f for f in fields if not (frame["field"] == f).any()]
    if absent:
        raise ValueError(f"{frame.attrs.get('source', 'frame')} has no field {', '.join(map(repr, absent))}")
    rows = frame[frame["field"].isin(fields)].sort_values("time", kind="stable")
    units = list(dict.fromkeys(rows.set_index("field").loc[fields, "unit"].astype(str)))
    fig = Figure(figsize=(8, 1.5 + 3 * len(units)), layout="constrained")
    axes = fig.subplots(len(units), 1, sharex=True, squeeze=False)[:, 0]
    for ax, unit in zip(axes, units):
        shown = [f for f in fields if (rows.loc[rows["field"] == f, "unit"] == unit).any()]
        for f in shown:
            part = rows[rows["field"] == f]
            ax.plot(part["time"].to_numpy(dtype=float), part["value"].to_numpy(dtype=float), "o-", label=f)
        if unit == "bytes":
            _bytes_axis(ax.yaxis, float(rows.loc[rows["unit"] == unit, "value"].max()), "value")
            ax.set_ylim(bottom=0)  # sizes from zero: a change reads as the share it is
        else:
            ax.set_ylabel(f"value ({unit})")
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    axes[-1].set_xlabel("time since the bundle's start (s)")
    _with_subtitle(fig, title or f"{', '.join(fields)} over time: {_source_name(frame) or 'bundle'}", None)
    return fig


# --- simulator figures ---------------------------------------------------------------------------
# They take vmaplab.sweep() rows (design, threads, cpus, then the result columns) or a Run's timeline.

_DESIGN_LABEL = {"global": "6.7 global locks (simulated)", "nodes": "6.9 vmap nodes (simulated)"}
_DESIGN_COLOR = {"global": "C3", "nodes": "C0"}
_LOCK_COLUMNS = {
    "spin_vmap_area_lock": "vmap_area_lock",
    "spin_free_vmap_area_lock": "free_vmap_area_lock",
    "spin_purge_vmap_area_lock": "purge_vmap_area_lock",
    "spin_busy_lock": "vn->busy.lock",
    "spin_lazy_lock": "vn->lazy.lock",
    "spin_pool_lock": "vn->pool_lock",
}


def _need(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = sorted(set(columns) - set(df.columns))
    if missing:
        raise ValueError(f"{what} needs the columns {', '.join(columns)}; missing {missing}")


def _designs(df: pd.DataFrame):
    for design, part in df.groupby("design", sort=True):
        yield str(design), part, _DESIGN_LABEL.get(str(design), str(design)), _DESIGN_COLOR.get(str(design), "C2")


def save_figure(fig: Figure, folder, name: str, formats=("png", "svg"), *, dpi: int = 150) -> Figure:
    """Write ``fig`` as ``folder/name.<format>`` for every format (PNG and SVG by default, at
    ``dpi`` dots per inch) and return it, so a notebook cell can save and show in one line."""
    for fmt in formats:
        fig.savefig(Path(folder) / f"{name}.{fmt}", dpi=dpi)
    return fig


def _with_subtitle(fig: Figure, title: str, scale: str | None) -> None:
    """The figure's title, and under it ``[scale]``, each wrapped to the figure's width."""
    width = int(fig.get_figwidth() * 10)  # characters of the suptitle's font that fit the figure
    lines = textwrap.wrap(title, width) + ([] if scale is None else textwrap.wrap(f"[{scale}]", width))
    fig.suptitle("\n".join(lines))


def _label_points(ax: Axes, points: Sequence[tuple[float, float, str, str]], *, fontsize: float = 8) -> None:
    """Write each ``(x, y, text, colour)`` beside its point of a rising series, clear of its segments.

    A label goes above and left of its point (a rising series' segments come from below left and leave
    above right); when another point at the same x sits less than two lines above it, it goes below
    and right instead, so that two close points' labels part. Set the axes' scales and limits first,
    and leave a margin on both sides of the x range.
    """
    to_pt = 72.0 / ax.figure.dpi
    by_x: dict[float, list[tuple[float, float, str, str]]] = {}
    for x, y, text, colour in points:
        by_x.setdefault(float(x), []).append((float(x), float(y), text, colour))
    for group in by_x.values():
        group.sort(key=lambda p: p[1])
        ys = [ax.transData.transform((x, y))[1] * to_pt for x, y, _, _ in group]
        for i, (x, y, text, colour) in enumerate(group):
            below = i + 1 < len(group) and ys[i + 1] - ys[i] < 2.5 * fontsize
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, -5) if below else (-4, 5),
                        ha="left" if below else "right", va="top" if below else "bottom", fontsize=fontsize,
                        color=colour)  # fmt: skip


def pagetable_vs_published(
    simulated: pd.DataFrame,
    listings: Mapping[int, pd.DataFrame],
    *,
    published_cpus: int = 64,
    published: str = "published",
    scale: str | None = None,
    title: str | None = None,
) -> Figure:
    """Page-table memory per thread count, published allocinfo beside a simulated sweep.

    Both are drawn against threads per CPU, so a scaled-down machine (4 CPUs at 4/8/16 threads) lines
    up with the seed's (64 CPUs at 64/128/256 threads).

    Parameters
    ----------
    simulated : DataFrame
        :func:`vmaplab.sweep` rows of one chain per design: design, threads, cpus, pagetable_bytes.
        Repeated thread counts (reruns) are drawn once, at their first run.
    listings : mapping of int to DataFrame
        Thread count -> a :func:`vmaplab.read_allocinfo` listing after that run (key 0 is ignored).
    published_cpus : int
        CPUs of the machine the listings come from.
    published : str
        Citation of the listings (black markers).
    scale : str, optional
        Label of the simulated scale, shown under the title.
    title : str, optional

    Returns
    -------
    Figure
        Left: page-table bytes (log scale, binary units) against threads per CPU, each point labelled
        with its size. Right: the same relative to each series' first run (x), beside a dotted line of
        growth proportional to threads per CPU.
    """
    _need(simulated, ("design", "threads", "cpus", "pagetable_bytes"), "pagetable_vs_published")
    pub = sorted((n, _pagetable_bytes(df)[0]) for n, df in listings.items() if int(n) > 0)
    if not pub:
        raise ValueError("pagetable_vs_published needs at least one published listing after a run")
    px = np.array([n / published_cpus for n, _ in pub])
    py = np.array([b for _, b in pub])
    fig = Figure(figsize=(12, 5), layout="constrained")
    ax, rel = fig.subplots(1, 2)
    name = f"published ({published}), {published_cpus} CPUs"
    ax.plot(px, py, "o-", color=PUBLISHED_COLOR, label=name, zorder=3)
    rel.plot(px, py / py[0], "o-", color=PUBLISHED_COLOR, label=name, zorder=3)
    labels = [(x, y, format_size(y), PUBLISHED_COLOR) for x, y in zip(px, py)]
    ticks = set(px.tolist())
    lowest = float(py.min())
    for design, part, label, colour in _designs(simulated):
        part = part.drop_duplicates("threads")
        x = (part["threads"] / part["cpus"]).to_numpy(dtype=float)
        y = part["pagetable_bytes"].to_numpy(dtype=float)
        cpus = int(part["cpus"].iloc[0])
        ax.plot(x, y, "s--", color=colour, label=f"{label}, {cpus} CPUs")
        rel.plot(x, y / y[0], "s--", color=colour, label=f"{label}, {cpus} CPUs")
        labels += [(xi, yi, format_size(yi), colour) for xi, yi in zip(x, y)]
        ticks |= set(x.tolist())
        lowest = min(lowest, float(y.min()))
    first = min(ticks)
    xs = np.array(sorted(ticks))
    rel.plot(xs, xs / first, ":", color="0.5", label="linear: proportional to threads per CPU")
    ax.set_yscale("log", base=2)
    ax.set_ylim(lowest / 2, float(max(py.max(), lowest)) * 2)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: format_size(v)))
    ax.set_ylabel("page-table memory of the vmalloc area (log scale)")
    ax.set_title("page-table memory after each run")
    rel.set_ylim(0, None)
    rel.set_ylabel("page-table memory / that after the first run (x)")
    rel.set_title("growth relative to the first run")
    span = xs[-1] - xs[0] or 1.0
    for a in (ax, rel):
        a.set_xticks(xs)
        a.set_xlim(xs[0] - 0.22 * span, xs[-1] + 0.14 * span)  # room for the value labels left of the points
        a.set_xlabel("threads per CPU (test_vmalloc nr_threads / CPUs)")
        a.grid(alpha=0.3)
        a.legend(loc="upper left", fontsize=8)
    _label_points(ax, labels)
    _with_subtitle(fig, title or "vmalloc page tables per thread count: published (64-CPU guest) vs simulated",
                   scale)  # fmt: skip
    return fig


def rerun_plateau(chain: pd.DataFrame, *, published: str | None = None, scale: str | None = None,
                  title: str | None = None) -> Figure:  # fmt: skip
    """Page-table memory after each run of a chain on one machine, a rerun of the last thread count included.

    Parameters
    ----------
    chain : DataFrame
        :func:`vmaplab.sweep` rows in run order per design (design, threads, pagetable_bytes), e.g.
        ``sweep([4, 8, 16, 16], ...)``: a thread count seen before in the chain is a rerun. With a
        ``run_index`` column, each design's rows must be the runs of one machine (0, 1, 2, ...): the
        points of ``sweep(..., sequential=False)`` ran on fresh machines and raise ValueError.
    published : str, optional
        The published observation to quote under the axes (e.g. "a rerun with the same thread count
        does not increase it (Rezki, linux-mm, 22 Feb 2024)").
    scale, title : str, optional

    Returns
    -------
    Figure
        Bars of page-table bytes per run and design, each labelled with what that run added.
    """
    _need(chain, ("design", "threads", "pagetable_bytes"), "rerun_plateau")
    if "run_index" in chain:
        for design, part in chain.groupby("design", sort=False):
            order = part["run_index"].tolist()
            if order != list(range(order[0], order[0] + len(order))):
                raise ValueError(f"rerun_plateau needs the runs of one machine in order, but the {design} rows ran "
                                 f"as runs {order} of their machines (a sweep with sequential=False, --independent?)")
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.subplots()
    groups = list(_designs(chain))
    width = 0.8 / len(groups)
    labels: list[str] = []
    for i, (design, part, label, colour) in enumerate(groups):
        threads = part["threads"].to_numpy()
        y = part["pagetable_bytes"].to_numpy(dtype=float)
        added = np.diff(y, prepend=0.0)
        rerun = np.array([t in threads[:k] for k, t in enumerate(threads)])
        x = np.arange(len(y)) + (i - (len(groups) - 1) / 2) * width
        ax.bar(x[~rerun], y[~rerun], width=width, color=colour, label=label)
        ax.bar(x[rerun], y[rerun], width=width, color=colour, hatch="//", alpha=0.55, label=f"{label}: rerun")
        for xi, yi, d in zip(x, y, added):
            ax.annotate(f"+{format_size(d)}", (xi, yi), ha="center", va="bottom", fontsize=7, color=colour)
        if len(threads) > len(labels):
            labels = [f"run {k + 1}\n{t} threads{' (rerun)' if r else ''}" for k, (t, r) in
                      enumerate(zip(threads, rerun))]  # fmt: skip
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("runs in order on one simulated machine per design (page tables carry over)")
    largest = float(chain["pagetable_bytes"].max())
    ax.set_ylim(0, largest * 1.15)
    _bytes_axis(ax.yaxis, largest, "page-table memory after the run")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("bar labels: the page-table memory each run added", fontsize=9)
    if published is not None:
        fig.supxlabel(f"published: {published}", fontsize=8, x=0.01, ha="left")
    _with_subtitle(fig, title or "page tables are never freed: a rerun adds (almost) nothing", scale)
    return fig


def va_timeline(timeline: pd.DataFrame, *, scale: str | None = None, title: str | None = None) -> Figure:
    """The mechanism over simulated time: the space page tables cover against the space held, the lazy
    backlog against lazy_max_pages, and the pooled pages.

    Parameters
    ----------
    timeline : DataFrame
        A :class:`vmaplab.sim.run.Run` ``timeline`` (time_s, va_high_water, pte_pages, busy_pages,
        lazy_pages, lazy_max_pages, pooled_pages, held_pages).
    scale, title : str, optional

    Returns
    -------
    Figure
        Three panels against simulated seconds. Top: the address space that has a PTE page (2 MiB per
        PTE page; never freed), its PTE-page memory on the right axis (1/512 of it), and the VA space
        held at that moment (busy + lazily freed + pooled pages, guard pages included). The VA high
        water is not drawn: align_shift_alloc_test's one-page VAs at up to 2^44-byte alignments set
        it to tens of TiB, far above the dense low addresses whose frontier the page tables follow;
        the panel's title states it. Middle: lazily freed pages against lazy_max_pages. Bottom: pages
        parked in vmap-node pools.
    """
    _need(timeline, ("time_s", "va_high_water", "pte_pages", "busy_pages", "lazy_pages", "lazy_max_pages",
                     "pooled_pages", "held_pages"), "va_timeline")  # fmt: skip
    t = timeline["time_s"].to_numpy(dtype=float)
    fig = Figure(figsize=(9, 8.5), layout="constrained")
    top, mid, low = fig.subplots(3, 1, sharex=True)
    cover = timeline["pte_pages"].to_numpy(dtype=float) * PAGE_SIZE * 512
    held = timeline["held_pages"].to_numpy(dtype=float) * PAGE_SIZE
    top.fill_between(t, cover, color="0.82", step="post", label="address space with a PTE page (never freed)")
    top.plot(t, cover, color="0.35", drawstyle="steps-post", linewidth=1)
    top.plot(t, held, color="C0", label="VA held now: busy + lazily freed + pooled")
    largest = float(max(cover.max(initial=0), held.max(initial=0))) or float(PAGE_SIZE * 512)
    top.set_ylim(0, largest * 1.1)
    _bytes_axis(top.yaxis, largest, "address space")
    pte = top.secondary_yaxis("right", functions=(lambda b: b / 512, lambda m: m * 512))
    _bytes_axis(pte.yaxis, largest / 512, "PTE-page memory")
    top.legend(loc="upper left", fontsize=8)
    high = float(timeline["va_high_water"].max())
    top.set_title(f"the space page tables cover follows the most VA held at once\n(VA high water {format_size(high)}, "
                  "set by align_shift_alloc_test's far one-page VAs: off this scale)", fontsize=10)  # fmt: skip
    mid.plot(t, timeline["lazy_pages"], color="C1", label="lazily freed, not yet purged")
    mid.plot(t, timeline["lazy_max_pages"], "k--", linewidth=1, label="lazy_max_pages (drain threshold)")
    mid.set_ylabel("pages (4 KiB each)")
    mid.set_title("lazy backlog against lazy_max_pages", fontsize=10)
    mid.legend(loc="upper left", fontsize=8)
    low.plot(t, timeline["pooled_pages"], color="C2", label="pooled in vmap-node pools")
    low.set_ylabel("pages (4 KiB each)")
    low.set_title("pool occupancy (6.9 vmap nodes; always 0 in 6.7)", fontsize=10)
    low.legend(loc="upper left", fontsize=8)
    low.set_xlabel("simulated time (s)")
    for a in (top, mid, low):
        a.grid(alpha=0.3)
    for a in (mid, low):
        a.set_ylim(0, max(float(a.dataLim.y1), 1.0) * 1.25)  # room for the legend above the curves
        a.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    _with_subtitle(fig, title or "why page tables grow: the VA space held over one simulated run", scale)
    return fig


#: Axis names of the knobs_effect metrics (others: the column name); byte columns end in ``_bytes``.
KNOB_METRICS = {
    "pagetable_bytes": "page-table memory after the run",
    "va_held_max_bytes": "most VA held at once (busy + lazy + pooled)",
    "lazy_pages_max": "largest lazy backlog",
    "pooled_pages_max": "most pages parked in pools",
    "drain_lag_max_s": "longest wait of a queued drain",
}


def knobs_effect(
    rows: pd.DataFrame,
    *,
    metrics: Sequence[str] = ("pagetable_bytes", "va_held_max_bytes", "lazy_pages_max", "pooled_pages_max"),
    scale: str | None = None,
    title: str | None = None,
) -> Figure:
    """What each knob changes, one panel per metric, relative to the first row (the baseline).

    Parameters
    ----------
    rows : DataFrame
        One :func:`vmaplab.sweep` row per variant with a ``variant`` column (string), the baseline
        first. ``va_held_max_bytes`` (the default second metric) is added by
        :func:`vmaplab.report.knob_variants`: the largest busy + lazily freed + pooled VA space of
        the run's timeline, in bytes.
    metrics : sequence of str
        Result columns to show: byte columns (``*_bytes``) in binary units, seconds (``*_s``) in
        milliseconds, the others as 4 KiB pages. The VA high water is a poor choice under
        run_test_mask=127: align_shift_alloc_test's one-page VAs at up to 2^44-byte alignments set
        it to the same tens of TiB in every variant.
    scale, title : str, optional

    Returns
    -------
    Figure
        Horizontal bars per variant (the baseline grey, the others in their design's colour: 6.7 red, 6.9
        blue), labelled with the value and its ratio to the baseline, two panels a row; each panel's
        axis names the metric and its unit (:data:`KNOB_METRICS`).
    """
    _need(rows, ("variant", *metrics), "knobs_effect")
    names = rows["variant"].astype(str).tolist()
    ncols = min(len(metrics), 2)  # two panels a row: the figure stays readable at a report's width
    nrows = -(-len(metrics) // ncols)
    fig = Figure(figsize=(4 + 3.6 * ncols, 1.2 + nrows * (0.9 + 0.36 * len(names))), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    y = np.arange(len(names))
    designs = rows["design"].astype(str).tolist() if "design" in rows.columns else ["nodes"] * len(names)
    colours = ["0.45"] + [_DESIGN_COLOR.get(d, "C0") for d in designs[1:]]  # a 6.7 variant in 6.7's red
    for ax, metric in zip(axes, metrics):
        v = rows[metric].to_numpy(dtype=float)
        ax.barh(y, v, color=colours)
        what = KNOB_METRICS.get(metric, metric.replace("_", " "))
        base = v[0] if v[0] else np.nan
        for yi, vi in zip(y, v):
            if metric.endswith("_bytes"):
                text = format_size(vi)
            elif metric.endswith("_s"):
                text = f"{vi * 1e3:.3g} ms"
            else:
                text = f"{vi:,.0f}"
            ax.annotate(f"{text} ({vi / base:.2f}x)", (vi, yi), xytext=(2, 0), textcoords="offset points",
                        va="center", fontsize=8)  # fmt: skip
        ax.set_xlim(0, max(float(v.max()), 1e-12) * 1.5)
        if metric.endswith("_bytes"):
            _bytes_axis(ax.xaxis, max(float(v.max()), 1.0), what)
        elif metric.endswith("_s"):
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v * 1e3:g}"))
            ax.set_xlabel(f"{what} (ms)")
        else:
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v / 1000:g}k"))
            ax.set_xlabel(f"{what}\n(4 KiB pages; k = thousand)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    _with_subtitle(fig, title or f"what the knobs change: one run per variant on a fresh machine (grey: {names[0]})",
                   scale)  # fmt: skip
    return fig


def _per_cpu(df: pd.DataFrame) -> np.ndarray:
    return (df["threads"] / df["cpus"]).to_numpy(dtype=float)


def spin_share_vs_threads(
    sweep: pd.DataFrame,
    *,
    published: Mapping[str, float] | None = None,
    published_at: float = 1.0,
    published_machine: str | None = "64 threads on 64 CPUs",
    citation: str = "published",
    scale: str | None = None,
    title: str | None = None,
) -> Figure:
    """Share of CPU time spinning on spinlocks against threads per CPU, per design.

    Parameters
    ----------
    sweep : DataFrame
        :func:`vmaplab.sweep` rows: design, threads, cpus, lock_spin_share.
    published : mapping of str to float, optional
        Design -> published native_queued_spin_lock_slowpath self share (%), drawn as black markers
        at ``published_at`` threads per CPU.
    published_at : float
        Threads per CPU of the published runs (the seed: 64 threads on 64 CPUs, 1.0).
    published_machine : str, optional
        The published runs' machine, named in their legend label (default the seed's).
    citation : str
        Source of the published shares.
    scale, title : str, optional

    Returns
    -------
    Figure
        One axes, percent of busy CPU time against threads per CPU, each simulated point labelled;
        the legend under it.
    """
    _need(sweep, ("design", "threads", "cpus", "lock_spin_share"), "spin_share_vs_threads")
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.subplots()
    for design, part, label, colour in _designs(sweep):
        part = part.sort_values("threads")
        ax.plot(_per_cpu(part), 100 * part["lock_spin_share"], "s--", color=colour, label=label)
    where = f", {published_machine}" if published_machine else ""
    for design, share in (published or {}).items():
        marker = "o" if design == "global" else "D"
        ax.plot([published_at], [share], marker, color=PUBLISHED_COLOR, markersize=8, linestyle="none",
                label=f"{_DESIGN_LABEL.get(design, design).replace('simulated', 'published')}{where}: "
                      f"{share:.2f} % ({citation})")  # fmt: skip
    for design, part, label, colour in _designs(sweep):
        part = part.sort_values("threads")
        for x, v in zip(_per_cpu(part), 100 * part["lock_spin_share"]):
            ax.annotate(f"{v:.1f} %", (x, v), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8,
                        color=colour)  # fmt: skip
    ax.set_ylim(0, 100)
    ax.set_xticks(sorted(set(_per_cpu(sweep).tolist()) | {published_at}))
    ax.margins(x=0.08)
    ax.set_xlabel("threads per CPU (test_vmalloc nr_threads / CPUs)")
    ax.set_ylabel("native_queued_spin_lock_slowpath self\n(% of busy CPU time)")
    ax.grid(alpha=0.3)
    fig.legend(handles=ax.get_legend_handles_labels()[0], loc="outside lower center", fontsize=8)
    _with_subtitle(fig, title or "spinlock slow-path share: 6.7 global locks vs 6.9 vmap nodes, simulated"
                                 + (" and published" if published else ""), scale)  # fmt: skip
    return fig


def throughput_vs_threads(
    sweep: pd.DataFrame,
    *,
    by: str = "threads",
    published_speedup: float | None = None,
    published_machine: str | None = "64 threads on 64 CPUs",
    citation: str = "published",
    scale: str | None = None,
    title: str | None = None,
) -> Figure:
    """vmalloc+vfree pairs per second per design, and the speed-up of nodes over global.

    Parameters
    ----------
    sweep : DataFrame
        :func:`vmaplab.sweep` rows of both designs: design, threads, cpus, pairs_per_second.
    by : {"threads", "cpus"}
        The x axis: thread count (one machine size) or CPU count.
    published_speedup : float, optional
        The published wall-time ratio of the same command on both kernels, a black dashed line on
        the right panel.
    published_machine : str, optional
        Where the published ratio was measured, named in its legend label (default the seed's).
    citation : str
        Source of ``published_speedup``.
    scale, title : str, optional

    Returns
    -------
    Figure
        Left: pairs per simulated second; right: nodes / global throughput (x), each point
        labelled. One legend for both, under them.
    """
    if by not in ("threads", "cpus"):
        raise ValueError(f"by must be 'threads' or 'cpus', not {by!r}")
    _need(sweep, ("design", "threads", "cpus", "pairs_per_second"), "throughput_vs_threads")
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax, ratio = fig.subplots(1, 2)
    for design, part, label, colour in _designs(sweep):
        part = part.sort_values(by)
        ax.plot(part[by], part["pairs_per_second"], "s--", color=colour, label=label)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v / 1e6:g}"))
    ax.set_ylabel("vmalloc+vfree pairs per simulated second (millions)")
    ax.set_ylim(0, max(float(ax.dataLim.y1), 1.0) * 1.12)  # room above the top point, as on the right
    ax.set_title("throughput")
    wide = sweep.pivot_table(index=by, columns="design", values="pairs_per_second", aggfunc="first")
    if {"global", "nodes"} <= set(wide.columns):
        r = wide["nodes"] / wide["global"]
        ratio.plot(r.index, r.to_numpy(), "s--", color="C2", label="simulated nodes / global")
        for x, v in r.items():
            ratio.annotate(f"{v:.1f}x", (x, v), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8,
                           color="C2")  # fmt: skip
    if published_speedup is not None:
        where = f" at {published_machine}" if published_machine else ""
        ratio.axhline(published_speedup, color=PUBLISHED_COLOR, linestyle="--",
                      label=f"published wall-time ratio{where}: {published_speedup:.1f}x ({citation})")  # fmt: skip
    ratio.set_ylabel("speed-up of 6.9 vmap nodes over 6.7 (x)")
    ratio.set_title("speed-up")
    xlabel = "threads (test_vmalloc nr_threads)" if by == "threads" else "CPUs (one thread per CPU)"
    ratio.set_ylim(0, max(float(ratio.dataLim.y1), 1.0) * 1.12)
    for a in (ax, ratio):
        a.set_xticks(sorted(sweep[by].unique().tolist()))
        a.margins(x=0.08)
        a.set_xlabel(xlabel)
        a.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0] + ratio.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
    _with_subtitle(fig, title or f"throughput against {'threads' if by == 'threads' else 'CPUs'}: 6.7 global locks "
                                 "vs 6.9 vmap nodes (simulated)"
                                 + (", speed-up beside the published one" if published_speedup is not None else ""),
                   scale)  # fmt: skip
    return fig


def lock_wait_share(sweep: pd.DataFrame, *, scale: str | None = None, title: str | None = None) -> Figure:
    """Spin time per lock, as stacked bars per design and thread count.

    Parameters
    ----------
    sweep : DataFrame
        :func:`vmaplab.sweep` rows: design, threads and the ``spin_<lock>`` columns.
    scale, title : str, optional

    Returns
    -------
    Figure
        Percent of busy CPU time spent spinning on each lock.
    """
    _need(sweep, ("design", "threads", *_LOCK_COLUMNS), "lock_wait_share")
    rows = sweep.sort_values(["design", "threads"]).reset_index(drop=True)
    fig = Figure(figsize=(max(7.0, 1.1 * len(rows) + 3), 4.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    for i, (col, lock) in enumerate(_LOCK_COLUMNS.items()):
        v = 100 * rows[col].to_numpy(dtype=float)
        if v.any():
            ax.bar(x, v, bottom=bottom, color=f"C{i}", label=lock)
            bottom += v
    for xi, total in zip(x, bottom):
        ax.annotate(f"{total:.1f} %", (xi, total), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"{'6.7' if d == 'global' else '6.9'} {d}\n{t} threads" for d, t in
                      zip(rows["design"], rows["threads"])])  # fmt: skip
    ax.set_ylim(0, 100)
    masks = ", ".join(str(m) for m in sorted(rows["tests"].unique())) if "tests" in rows else ""
    ax.set_xlabel("design and test_vmalloc nr_threads" + (f" (run_test_mask={masks})" if masks else ""))
    ax.set_ylabel("spinning (% of busy CPU time)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, title="lock")
    _with_subtitle(fig, title or "where the spinning goes: wait share per lock (simulated)", scale)
    return fig


_SPACE_USES = (("busy_pages", "busy (allocated)", "C0"), ("lazy_pages", "lazily freed, not yet purged", "C1"),
               ("pooled_pages", "parked in vmap-node pools", "C2"))  # fmt: skip
_MIB = 1 << 20
_FLOOR_MIB = PAGE_SIZE / _MIB / 4  # below one page: the log axis' floor for empty bins


def _binary(n: int) -> str:
    """``n`` bytes in the largest binary unit that divides it: ``1 GiB``, ``64 KiB``, ``12288 bytes``."""
    return next((f"{n // s:g} {u}" for s, u in _UNITS if n >= s and n % s == 0), f"{n} bytes")


def run_labels(threads: Sequence[int]) -> list[str]:
    """Labels of the snapshots after each run of a chain: ``after run 2: 8 threads``, ``(rerun)`` marked."""
    threads = [int(t) for t in threads]
    return [f"after run {i + 1}: {t} threads" + (" (rerun)" if t in threads[:i] else "") for i, t in enumerate(threads)]


def _dense_span(maps: Mapping[str, pd.DataFrame]) -> float:
    """GiB from VMALLOC_START to the power of two past every map's first empty bin (the dense prefix)."""
    end = 1.0
    for sm in maps.values():
        used = sm.drop(columns="offset").to_numpy().any(axis=1)
        stop = int(np.argmin(used)) if not used.all() else len(used)
        bin_gib = float(sm.attrs.get("bin_bytes", GIB)) / GIB
        end = max(end, stop * bin_gib)
    return float(2 ** np.ceil(np.log2(end)))


def sim_space_map(maps: Mapping[str, pd.DataFrame], *, scale: str | None = None, title: str | None = None) -> Figure:
    """The simulated vmalloc window after successive runs: where page tables exist vs what is in use.

    Parameters
    ----------
    maps : mapping of str to DataFrame
        Snapshot label (e.g. ``"after run 2: 8 threads"``) -> a
        :meth:`~vmaplab.sim.machine.Machine.space_map` (``Run.space_map``), in time order.
    scale, title : str, optional

    Returns
    -------
    Figure
        One panel per snapshot, sharing the address axis (GiB above VMALLOC_START; linear over the
        dense low addresses, logarithmic beyond, where align_shift_alloc_test's one-page VAs sit at
        2^40..2^44-byte alignments). Per address bin, grey: the address space that has a PTE page
        (2 MiB per PTE page; never freed); coloured, stacked: the busy, lazily freed and pooled pages
        at that moment, both in MiB per bin (log scale). Each panel notes the totals.
    """
    if not maps:
        raise ValueError("sim_space_map needs at least one space map")
    for label, sm in maps.items():
        _need(sm, ("offset", "pte_pages", "pmd_pages", *(c for c, _, _ in _SPACE_USES)), f"space map {label!r}")
    n = len(maps)
    fig = Figure(figsize=(11, 1.2 + 2.1 * n), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    dense = _dense_span(maps)
    top_gib = 0.0
    for ax, (label, sm) in zip(axes, maps.items()):
        bin_bytes = int(sm.attrs.get("bin_bytes", GIB))
        edges = np.append(sm["offset"].to_numpy(dtype=float), float(sm["offset"].max() + bin_bytes)) / GIB \
            if len(sm) else np.array([0.0, bin_bytes / GIB])  # fmt: skip
        top_gib = max(top_gib, float(edges[-1]))
        if len(sm) > 1:  # a run of equal bins is one step: thousands of empty GiB between far placements
            values = sm[["pte_pages", *(c for c, _, _ in _SPACE_USES)]].to_numpy()
            keep = np.r_[True, (values[1:] != values[:-1]).any(axis=1)]
            steps, edges = sm[keep], np.append(edges[:-1][keep], edges[-1])
        else:
            steps = sm
        cover = steps["pte_pages"].to_numpy(dtype=float) * (PAGE_SIZE * 512 / _MIB)
        ax.stairs(np.maximum(cover, _FLOOR_MIB), edges, baseline=_FLOOR_MIB, fill=True, color="0.82",
                  label="address space with a PTE page (2 MiB each; never freed)")  # fmt: skip
        ax.stairs(np.maximum(cover, _FLOOR_MIB), edges, baseline=None, color="0.45", linewidth=0.8)
        below = np.zeros(len(steps))
        for col, name, colour in _SPACE_USES:
            mib = below + steps[col].to_numpy(dtype=float) * PAGE_SIZE / _MIB
            ax.stairs(np.maximum(mib, _FLOOR_MIB), edges, baseline=np.maximum(below, _FLOOR_MIB), fill=True,
                      color=colour, alpha=0.85, label=name)  # fmt: skip
            below = mib
        ax.set_yscale("log")
        ax.set_ylim(_FLOOR_MIB, 4 * bin_bytes / _MIB)
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.set_ylabel(f"MiB per {_binary(bin_bytes)}\nbin (log)", fontsize=8)
        pt_bytes = int(sm["pte_pages"].sum() + sm["pmd_pages"].sum()) * PAGE_SIZE
        used = {c: int(sm[c].sum()) * PAGE_SIZE for c, _, _ in _SPACE_USES}
        ax.set_title(f"{label}: page tables {format_size(pt_bytes)} ({int(sm['pte_pages'].sum()):,} PTE + "
                     f"{int(sm['pmd_pages'].sum()):,} PMD pages) cover "
                     f"{format_size(int(sm['pte_pages'].sum()) * 512 * PAGE_SIZE)}; in use now: busy "
                     f"{format_size(used['busy_pages'])}, lazy {format_size(used['lazy_pages'])}, pooled "
                     f"{format_size(used['pooled_pages'])}", fontsize=9, loc="left")  # fmt: skip
        ax.grid(alpha=0.3, which="major")
    ax = axes[-1]
    ax.set_xscale("symlog", linthresh=dense, linscale=2.0)
    ax.set_xlim(0, max(top_gib, dense))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.set_xlabel(f"address: GiB above VMALLOC_START (linear up to {dense:g} GiB, logarithmic beyond)")
    axes[0].legend(loc="upper right", fontsize=8, ncols=2)
    _with_subtitle(fig, title or "simulated vmalloc space after each run: page tables (grey) stay wherever a run "
                                 "reached, while little is in use (colours)", scale)  # fmt: skip
    return fig


def _regions_seen(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Distinct regions among ``[first[j], last[j]]`` for j <= i, for every i (inclusive ranges of ints)."""
    return np.cumsum(np.bincount(first_owners(first, last), minlength=len(first)))


def replay_comparison(replayed, *, title: str | None = None) -> Figure:
    """A real vmalloc recording replayed through the model: kernel (black) vs model over the trace's time.

    Parameters
    ----------
    replayed : vmaplab.sim.replay.Replay
        The result of :func:`vmaplab.sim.replay.replay` (or ``replay_bundle``).
    title : str, optional

    Returns
    -------
    Figure
        Against seconds since the first replayed allocation: top, the VA high water of the replayed
        allocations (highest end above VMALLOC_START, bytes); bottom, the PTE pages (2 MiB regions)
        the replayed allocations touched, cumulative. Purges as vertical lines: the kernel's
        (black, solid) and the model's (coloured, dashed).
    """
    allocs, purges = replayed.allocs, replayed.purges
    start = np.uint64(replayed.config["vmalloc_start"])
    t0 = float(allocs["time"].min())
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    top, low = fig.subplots(2, 1, sharex=True)
    largest = 1.0
    for col, name, colour, style in (("kernel_addr", "kernel (traced)", PUBLISHED_COLOR, "-"),
                                     ("model_addr", "model (replayed)", MEASURED_COLOR, "--")):  # fmt: skip
        placed = allocs[allocs[col].notna()]
        t = placed["time"].to_numpy(dtype=float) - t0
        off = (placed[col].to_numpy(np.uint64) - start).astype(np.int64)
        end = off + placed["size"].to_numpy(np.int64)
        high = np.maximum.accumulate(end) if len(end) else end
        largest = max(largest, float(high.max()) if len(high) else 0.0)
        top.plot(t, high, drawstyle="steps-post", color=colour, linestyle=style, label=name)
        seen = _regions_seen(off >> 21, (end - 1) >> 21)
        low.plot(t, seen, drawstyle="steps-post", color=colour, linestyle=style,
                 label=f"{name}: {int(seen[-1]) if len(seen) else 0:,} PTE pages")  # fmt: skip
    for side, colour, style, width in (("kernel", PUBLISHED_COLOR, "-", 3.0), ("model", MEASURED_COLOR, "--", 1.2)):
        times = purges.loc[purges["side"] == side, "time"].to_numpy(dtype=float) - t0
        for i, tp in enumerate(times):
            for ax in (top, low):
                ax.axvline(tp, color=colour, linestyle=style, linewidth=width, alpha=0.35 if side == "kernel" else 0.9,
                           label=f"{side} purge" if i == 0 and ax is top else None)  # fmt: skip
    top.set_ylim(0, largest * 1.1)
    _bytes_axis(top.yaxis, largest, "VA high water above\nVMALLOC_START")
    top.set_title("how high the replayed allocations reach in the window")
    low.set_ylabel("PTE pages touched (4 KiB each)")
    low.set_ylim(bottom=0)
    low.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # whole pages
    low.set_title("2 MiB regions (PTE pages) the replayed allocations touched, cumulative")
    low.set_xlabel("time since the first replayed allocation (s)")
    for ax in (top, low):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    m = replayed.metrics
    purging = "where the kernel purged" if replayed.config["drain"] == "trace" else "at its own lazy_max_pages"
    design = _DESIGN_LABEL.get(replayed.config["design"], replayed.config["design"]).replace(" (simulated)", "")
    _with_subtitle(fig, title or f"real trace replayed through the {design} model: {m['allocs']:,} allocations, "
                                 f"{replayed.config['cpus']} CPUs, the model purging {purging}; kernel (black) vs "
                                 "model (blue)", None)  # fmt: skip
    return fig


def _runs_spread(part: pd.DataFrame, by: str, runs: pd.Series) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Mean page-table bytes per run over the groups ``by`` of ``part``, the whiskers (lowest and highest
    group) when there are several groups, and the number of groups."""
    groups = part[by].nunique() if by in part.columns else 1
    stats = part.groupby("run")["pagetable_bytes"].agg(["mean", "min", "max"]).reindex(runs)
    spread = np.vstack([stats["mean"] - stats["min"], stats["max"] - stats["mean"]]) if groups > 1 else None
    return stats["mean"].to_numpy(dtype=float), spread, groups


def measured_vs_model(measured: pd.DataFrame, model: pd.DataFrame, *, source: str, scale: str | None = None,
                      title: str | None = None) -> Figure:  # fmt: skip
    """Page tables after each run of a chain measured on a real kernel, beside the model's same chain.

    Parameters
    ----------
    measured : DataFrame
        :func:`vmaplab.report.measured_chains` rows (capture, run, threads, pagetable_bytes), or one
        chain's :func:`~vmaplab.report.measured_chain` rows.
    model : DataFrame
        The same runs simulated (:func:`vmaplab.report.model_chain_like`), one chain per seed: design,
        seed, run, pagetable_bytes.
    source : str
        What was measured (the kernel and machine), for the legend.
    scale, title : str, optional

    Returns
    -------
    Figure
        Bars of page-table bytes after each run (black: measured; coloured: each design), the mean over
        the captures or seeds with whiskers from the lowest to the highest, each labelled with its size
        and its growth over the series' first run.
    """
    _need(measured, ("run", "threads", "pagetable_bytes"), "measured_vs_model")
    _need(model, ("design", "seed", "run", "pagetable_bytes"), "measured_vs_model")
    runs = measured.drop_duplicates("run").sort_values("run")
    y, spread, n = _runs_spread(measured, "capture", runs["run"])
    series = [(f"measured: {source}" + (f", mean of {n} chains" if n > 1 else ""), y, spread, PUBLISHED_COLOR)]
    for _design, part, label, colour in _designs(model):
        y, spread, n = _runs_spread(part, "seed", runs["run"])
        series.append((label + (f", mean of {n} seeds" if n > 1 else ""), y, spread, colour))
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(series)
    for i, (label, y, spread, colour) in enumerate(series):
        x = np.arange(len(y)) + (i - (len(series) - 1) / 2) * width
        ax.bar(x, y, width=width, color=colour, label=label, yerr=spread, capsize=3,
               error_kw={"ecolor": "0.5", "elinewidth": 1})  # fmt: skip
        tops = y if spread is None else y + spread[1]
        for xi, yi, top in zip(x, y, tops):
            ax.annotate(f"{format_size(yi)}\nx{yi / y[0]:.2f}", (xi, top), ha="center", va="bottom", fontsize=7,
                        color=colour)  # fmt: skip
    threads = runs["threads"].to_numpy()
    ax.set_xticks(range(len(runs)), [f"run {k + 1}\n{t} threads{' (rerun)' if t in threads[:k] else ''}"
                                     for k, t in enumerate(threads)])  # fmt: skip
    ax.set_xlabel("runs in order on one machine (page tables carry over); labels: size, and growth over run 1; "
                  "whiskers: lowest to highest")  # fmt: skip
    largest = float(max(measured["pagetable_bytes"].max(), model["pagetable_bytes"].max()))
    ax.set_ylim(0, largest * 1.25)
    _bytes_axis(ax.yaxis, largest, "vmalloc page tables added since the first snapshot")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    _with_subtitle(fig, title or "test_vmalloc on a real kernel and in the model: page tables after each run", scale)
    return fig
