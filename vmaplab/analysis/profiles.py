"""Compare two profiles (perf report tables, or profiles built from perf script samples) symbol by symbol.

Kernels rename functions between versions and builds: GCC adds ``.part.N``, ``.constprop.N``,
``.isra.N`` and ``.cold`` to the clones it makes, and the memory allocation profiling series
(6.10) renamed allocators to ``*_noprof`` (``__vmalloc_node_range`` became
``__vmalloc_node_range_noprof``). Symbols are matched with those suffixes folded, so ``vfree.part.0``
of one kernel meets ``vfree`` of another.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd

__all__ = ["compare_profiles", "fold_symbol"]

_SUFFIX = re.compile(r"(?:\.(?:part|constprop|isra)\.\d+|\.cold(?:\.\d+)?|_noprof)$")


def fold_symbol(name: str) -> str:
    """``name`` without compiler clone suffixes and the ``_noprof`` suffix, repeatedly
    (``finish_task_switch.isra.0`` -> ``finish_task_switch``, ``foo.constprop.0.isra.0`` -> ``foo``)."""
    while True:
        folded = _SUFFIX.sub("", name)
        if folded == name or not folded:
            return name
        name = folded


def compare_profiles(a, b, *, on: str | list[str] = "symbol") -> pd.DataFrame:
    """Per symbol, the change of self and children share from profile ``a`` to profile ``b``.

    Parameters
    ----------
    a, b : DataFrame or path
        Profiles in :func:`vmaplab.io.perf_report.read_perf_report`'s schema (a frame of that reader or
        of :func:`vmaplab.analysis.stacks.profile_from_samples`, or a file ``read_perf_report``
        reads). A frame holding several tables (``block`` > 0) must be narrowed to one first.
    on : str or list of str
        Columns that identify a symbol across the two profiles: ``"symbol"`` (default), or e.g.
        ``["shared_object", "symbol"]``. ``symbol`` is compared with its suffixes folded
        (:func:`fold_symbol`).

    Returns
    -------
    DataFrame, one row per matched symbol, largest change first (the larger of the absolute self
    and children changes):

    ====================  =======  ==========================================================
    <on columns>          string   the key (``symbol`` folded)
    names_a, names_b      string   the symbols as each profile prints them, joined by ``, ``
    self_pct_a, _b        Float64  self share in percent (<NA> where the symbol is absent)
    self_change           Float64  ``self_pct_b - self_pct_a`` in percentage points, an absent
                                   symbol counting as 0
    children_pct_a, _b    Float64  children share in percent (<NA> when absent or not reported)
    children_change       Float64  ``children_pct_b - children_pct_a``, absent counting as 0;
                                   <NA> when a profile reports no children shares
    status                string   ``"both"``, ``"new"`` (only in b), ``"vanished"`` (only in a), or
                                   ``"unlisted"``: missing from a profile that is an excerpt (a
                                   pasted table without perf's ``# Samples`` header, such as the
                                   seed's), so its share there is unknown and the changes are <NA>
    ====================  =======  ==========================================================

    Several entries of one profile with the same key (``vfree`` and ``vfree.part.0``, or one symbol
    under several commands) are merged: self shares add up; children shares of one command overlap
    (a function and its clone are on the same call chains), so the largest is kept, and those of
    different commands (different samples) add up.

    When one profile has no children shares (``perf report --no-children``, which lists only entries
    with samples of their own), only self shares are compared, and the other profile's entries without
    a self share are left out. Raises ValueError when the profiles name different events (``cycles``
    against ``cpu-clock``): their shares do not compare.

    >>> d = compare_profiles("data/seed/perf-report-6.7.txt", "data/seed/perf-report-vmap-nodes.txt")
    >>> float(d.set_index("symbol").loc["native_queued_spin_lock_slowpath", "self_change"])
    -76.56
    """
    keys = [on] if isinstance(on, str) else list(on)
    prof_a, prof_b = _profile(a, "a", keys), _profile(b, "b", keys)
    events = {which: _event(prof) for which, prof in (("a", prof_a), ("b", prof_b))}
    if None not in events.values() and events["a"] != events["b"]:
        raise ValueError(f"profile a counts {events['a']} and profile b {events['b']}: shares of different "
                         "events do not compare")  # fmt: skip
    with_children = [prof["children_pct"].notna().any() for prof in (prof_a, prof_b)]
    if with_children[0] != with_children[1]:
        # A report without children (perf report --no-children) lists only the entries with samples of
        # their own and no children share: compare the self shares of those alone.
        prof_a, prof_b = (_self_only(prof) for prof in (prof_a, prof_b))
    left = _summary(prof_a, keys)
    right = _summary(prof_b, keys)
    both = left.merge(right, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    # A symbol missing from an excerpt (a pasted table without perf's header) may lie just below its
    # cut: its share there is unknown, not zero.
    status = both["_merge"].map(
        {
            "both": "both",
            "left_only": "unlisted" if _is_excerpt(prof_b) else "vanished",
            "right_only": "unlisted" if _is_excerpt(prof_a) else "new",
        }
    )
    unknown = (status == "unlisted").to_numpy()
    out = both[keys].astype("string")
    out["names_a"] = both["names_a"].astype("string")
    out["names_b"] = both["names_b"].astype("string")
    for what in ("self", "children"):
        pa_, pb_ = both[f"{what}_pct_a"].astype("Float64"), both[f"{what}_pct_b"].astype("Float64")
        out[f"{what}_pct_a"] = pa_
        out[f"{what}_pct_b"] = pb_
        change = (pb_.fillna(0) - pa_.fillna(0)).round(10)
        change[unknown] = pd.NA
        if what == "children" and not all(with_children):  # a profile without children shares
            change[:] = pd.NA
        out[f"{what}_change"] = change
    out["status"] = status.astype("string")
    size = np.maximum(out["self_change"].abs().fillna(0).to_numpy(float), out["children_change"].abs().fillna(0).to_numpy(float))
    out = out.iloc[np.argsort(-size, kind="stable")].reset_index(drop=True)
    out = out[[*keys, "names_a", "names_b", "self_pct_a", "self_pct_b", "self_change", "children_pct_a", "children_pct_b", "children_change", "status"]]
    return out


def _event(profile: pd.DataFrame) -> str | None:
    """The event a profile counts, None when it does not say (a pasted excerpt)."""
    events = profile["event"].dropna().unique() if "event" in profile else []
    return str(events[0]) if len(events) else profile.attrs.get("event")


def _self_only(profile: pd.DataFrame) -> pd.DataFrame:
    """``profile`` without children shares and without the entries that have no self share."""
    out = profile[profile["self_pct"].fillna(0).to_numpy(dtype=float) > 0].assign(children_pct=np.nan)
    out.attrs = dict(profile.attrs)
    return out


def _is_excerpt(profile: pd.DataFrame) -> bool:
    """A perf report table pasted without its header: only its top entries are known."""
    return profile.attrs.get("format") == "perf_report" and "samples" not in profile.attrs


def _profile(src, which: str, keys: list[str]) -> pd.DataFrame:
    if isinstance(src, (str, os.PathLike)):
        from ..io.perf_report import read_perf_report

        src = read_perf_report(src)
    if not isinstance(src, pd.DataFrame):
        raise TypeError(f"profile {which}: expected a DataFrame or a path, got {type(src).__name__}")
    missing = {"self_pct", "children_pct", "symbol"} - set(src.columns)
    if missing:
        raise ValueError(f"profile {which} lacks the perf report columns {sorted(missing)}")
    name = src.attrs.get("source", "")
    if "block" in src and src["block"].nunique() > 1:
        raise ValueError(f"profile {which} {name} holds {src['block'].nunique()} tables (block column); select one")
    empty = [k for k in keys if k in src and src[k].isna().all()]
    if empty:  # e.g. perf report --sort dso: no symbol column to compare on
        raise ValueError(f"profile {which} {name} has no {', '.join(empty)} column (a report sorted by other keys?)")
    return src


def _summary(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """self and children share per key: merged within a command (max children), then across
    commands (sums)."""
    work = pd.DataFrame({k: df[k].astype(object) for k in keys})
    if "symbol" in keys:
        work["symbol"] = df["symbol"].map(lambda s: fold_symbol(s) if isinstance(s, str) else s)
    work["_command"] = df["command"].astype(object).fillna("") if "command" in df else ""
    work["name"] = df["symbol"].astype(object)
    work["self_pct"] = df["self_pct"].astype("Float64")
    work["children_pct"] = df["children_pct"].astype("Float64")
    per_command = work.groupby([*keys, "_command"], dropna=False, sort=False).agg(
        self_pct=("self_pct", lambda s: s.sum(min_count=1)),
        children_pct=("children_pct", lambda s: s.max()),
        names=("name", lambda s: list(s)),
    )
    out = per_command.groupby(level=list(range(len(keys))), dropna=False, sort=False).agg(
        self_pct=("self_pct", lambda s: s.sum(min_count=1)),
        children_pct=("children_pct", lambda s: s.sum(min_count=1)),
        names=("names", lambda s: ", ".join(dict.fromkeys(n for names in s for n in names if isinstance(n, str)))),
    )
    return out.reset_index()
