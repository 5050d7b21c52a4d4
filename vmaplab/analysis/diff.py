"""Snapshot diffs and growth tables: what grew between two snapshots of allocinfo, meminfo, vmstat, slabinfo or
vmallocinfo (:func:`diff`), and over a series of them (:func:`growth`: the seed's listings after 64, 128 and
256 threads, a bundle's snapshots).

Allocation tags are matched by a *normalised key* so that listings of different kernels line up:

* ``by="tag"``: ``"<file> func:<function>"``. The source line number is dropped (it moves with every
  edit of the file; two call sites in one function are then summed), so is the module tag in both its
  styles (``[xfs]`` of 1.0/2.0, ``module:slub`` of the pre-merge format), and a ``_noprof`` suffix of
  the function is folded (``kvmalloc_node_noprof`` matches ``kvmalloc_node``): allocation profiling
  renamed wrapped allocators that way.
* ``by="func"``: the function with ``_noprof`` folded; ``by="file"``: the file;
  ``by="module"``: the module, built-in code of 1.0/2.0 lines as ``(built-in)``. The pre-merge
  format named every object's KBUILD_MODNAME (``module:memory`` for mm/memory.c), so module totals
  of a pre-merge and a 1.0 listing do not compare.
* Page tables: the pre-merge format charged every page-table page to
  ``include/linux/mm.h func:pagetable_alloc``; from Linux 6.10 they are charged to their call sites
  in mm/memory.c (``__pte_alloc_kernel``, ``__pmd_alloc``, ``__pud_alloc``, ``__p4d_alloc``,
  ``__pte_alloc``; kernel-facts §4.1). When one side has the old tag and the other the new ones,
  both are folded into the key ``(page tables)`` (attrs ``folded_pagetables``), except with
  ``by="module"``. Other page-table call sites (x86 pgd preallocation, fault-path preallocation)
  are not folded.

Excerpts: ``sort -h /proc/allocinfo | tail`` and ``show_mem``'s top ten list only the largest tags. A
listing with no zero line is taken as such an excerpt (a whole /proc/allocinfo lists every tag, most
of them at zero): a tag missing from it is not "new" or "vanished" but ``unlisted``, its value there
unknown (below the excerpt's smallest size) and left <NA>. A tag missing from a whole listing counts
as zero bytes and calls there.

Slab caches (``/proc/slabinfo``) are matched by name; a cache's bytes are its objects in use times
their size (``active_objs * objsize``: what its users hold, without free objects and slab overhead),
beside the count of those objects (``vmap_area`` counts every vmap area the allocator tracks) and the
pages its slabs take from the page allocator (``num_slabs * pagesperslab``, what meminfo's ``Slab:``
adds up and slabtop's CACHE SIZE shows; a count of pages, as slabinfo does not give the page size).

vmap areas (``/proc/vmallocinfo``) are grouped by caller (the function, offset dropped, with its
``[module]``); areas without one by kind: ``(unpurged vm_area)`` for lazily freed areas not yet
purged (the lazy backlog), ``(vm_map_ram)``, ``(no caller)``. A group's bytes are its areas' listed
sizes (guard pages included). Slab and vmallocinfo listings are whole: a cache or caller missing
from one side has nothing there (0, status ``new`` or ``vanished``).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..io.units import format_size

__all__ = ["diff", "format_diff", "growth", "format_growth", "pagetable_rows", "PAGE_TABLES"]

PAGE_TABLES = "(page tables)"
_BY = ("tag", "module", "file", "func")
_ALLOCINFO_COLUMNS = {"size_bytes", "calls", "tag", "file", "func", "module", "size_exact"}
_FIELD_COLUMNS = {"field", "value", "unit"}
_SLAB_COLUMNS = {"name", "active_objs", "objsize", "num_slabs", "pagesperslab"}
_VMALLOCINFO_COLUMNS = {"size", "caller", "unpurged", "vm_map_ram"}
# per format with counts beside the bytes: (name of the key, names of the counts)
_COUNTED = {
    "allocinfo": ("key", ("calls",)),
    "slabinfo": ("cache", ("objs", "pages")),
    "vmallocinfo": ("caller", ("areas",)),
}
_PAGETABLE_OLD = ("include/linux/mm.h", "pagetable_alloc")
_PAGETABLE_SITES = ("mm/memory.c", ("__pte_alloc", "__pte_alloc_kernel", "__pmd_alloc", "__pud_alloc", "__p4d_alloc"))
_MISSING = "unlisted"
# what a slab cache's bytes are (not its slab pages, which readers might take them for)
_SLAB_BYTES = "bytes: the objects in use (active_objs x objsize)"
# what a growth table can follow, per input format (the first is the default)
_QUANTITIES = {"allocinfo": ("bytes", "calls"), "slabinfo": ("bytes", "objs", "pages"),
               "vmallocinfo": ("bytes", "areas")}  # fmt: skip


def diff(
    before: pd.DataFrame | str | os.PathLike,
    after: pd.DataFrame | str | os.PathLike,
    *,
    by: str = "tag",
    top: int | None = None,
    block: int | tuple[int | None, int | None] | None = None,
) -> pd.DataFrame:
    """Growth per allocation tag (or meminfo/vmstat field, slab cache or vmap area caller) from ``before`` to ``after``.

    Parameters
    ----------
    before, after : DataFrame or path
        Frames from :func:`vmaplab.read_allocinfo`, or both from :func:`vmaplab.read_meminfo`,
        :func:`vmaplab.read_vmstat`, :func:`vmaplab.read_slabinfo` or
        :func:`vmaplab.read_vmallocinfo`; or files, read with :func:`vmaplab.read`.
    by : {"tag", "module", "file", "func"}
        Key of an allocinfo diff (see the module docstring for the normalisation). meminfo and
        vmstat frames are always diffed by ``field``, slabinfo frames by ``cache`` and vmallocinfo
        frames by ``caller``; leave ``by`` at its default for them.
    top : int, optional
        Keep only the first ``top`` rows.
    block : int or (int, int), optional
        Which listing of a frame with several (its ``block`` column) to use: one block number for
        both frames, or ``(before_block, after_block)``; negative numbers count from the last
        block. Default: the first block of ``before`` and the last of ``after``, so that
        ``diff(paste, paste)`` compares the first and last listing of one paste.

    Returns
    -------
    DataFrame
        Biggest absolute change first (rows with an unknown change last). For allocinfo:

        ============ ====== ===============================================================
        key          string the normalised key
        before_bytes Int64  bytes at ``before`` (<NA>: unlisted in an excerpt)
        after_bytes  Int64  bytes at ``after``
        delta_bytes  Int64  ``after_bytes - before_bytes``
        before_calls Int64  live allocations at ``before``
        after_calls  Int64  live allocations at ``after``
        delta_calls  Int64  ``after_calls - before_calls``
        status       string grown, shrunk, same, new, vanished or unlisted
        exact        bool   False when a size of the row was rounded (human units), so the
                            byte delta is approximate
        ============ ====== ===============================================================

        For meminfo/vmstat: ``key`` (the field), ``unit`` (the reader's unit: ``bytes``, ``pages``,
        ...), ``before_value``, ``after_value``, ``delta_value`` (Int64, in that unit; <NA> where
        the field is missing) and ``status``. For slabinfo: ``key`` (the cache), ``before_bytes``,
        ``after_bytes``, ``delta_bytes`` (objects in use times their size), ``before_objs``,
        ``after_objs``, ``delta_objs`` (objects in use), ``before_pages``, ``after_pages``,
        ``delta_pages`` (pages of the cache's slabs) and ``status``. For vmallocinfo: ``key`` the
        caller (or kind), the ``*_bytes`` of its areas, ``*_areas`` (vmap areas) and ``status``.
        ``attrs``: ``format`` ("diff"), ``of`` (the input format), ``by``, ``before_source``,
        ``after_source``, ``before_block``, ``after_block``, ``before_complete`` and
        ``after_complete`` (False for excerpts), ``folded_pagetables``.

    Raises
    ------
    ValueError
        For frames of different formats, an unknown ``by``, a missing block, or a frame holding
        several bundle snapshots.

    Examples
    --------
    >>> d = diff("data/seed/allocinfo-64threads.txt", "data/seed/allocinfo-256threads.txt")
    >>> top = d.iloc[0]
    >>> top.key, int(top.delta_bytes), top.status
    ('include/linux/mm.h func:pagetable_alloc', 5388254577, 'grown')
    """
    if top is not None and top < 0:
        raise ValueError(f"top must be a number of rows >= 0, not {top}")
    frames = [_load(before), _load(after)]
    kinds = [_kind(df, side) for df, side in zip(frames, ("before", "after"))]
    if kinds[0] != kinds[1]:
        raise ValueError(f"cannot diff {kinds[0]} against {kinds[1]}: give two snapshots of one format")
    wanted = block if isinstance(block, tuple) else (block, block)
    picked = [
        _pick_block(df, want, default, side)
        for df, want, default, side in zip(frames, wanted, (0, -1), ("before", "after"))
    ]
    (b, b_block), (a, a_block) = picked
    key = by if kinds[0] == "allocinfo" else _COUNTED.get(kinds[0], ("field", ()))[0]
    if kinds[0] != "allocinfo" and by not in ("tag", key):
        raise ValueError(f"{kinds[0]} frames are diffed by {key}; by={by!r} applies to allocinfo only")
    if kinds[0] == "allocinfo":
        out, attrs = _diff_allocinfo(b, a, by)
    elif kinds[0] in _COUNTED:
        out, attrs = _diff_counted(*(_GROUPS[kinds[0]](df, side) for df, side in ((b, "before"), (a, "after"))))
    else:
        out, attrs = _diff_fields(b, a)
    out = _sorted(out, out.columns[out.columns.str.startswith("delta_")][0])
    if top is not None:
        out = out.head(top).reset_index(drop=True)
    out.attrs = {
        "format": "diff",
        "of": kinds[0],
        "by": key,
        "before_source": frames[0].attrs.get("source"),
        "after_source": frames[1].attrs.get("source"),
        "before_block": b_block,
        "after_block": a_block,
        **attrs,
    }
    return out


def growth(
    snapshots,
    *,
    by: str = "tag",
    values: str | None = None,
    top: int | None = None,
) -> pd.DataFrame:
    """A growth table: each allocation tag (meminfo/vmstat field, slab cache, vmap area caller) across a series
    of snapshots, one column per snapshot, keyed as :func:`diff` keys them.

    Parameters
    ----------
    snapshots : dict of label to DataFrame or path, list of them, or one of them
        Two or more snapshots of one format, in order: a dict labels them, a list by file name (the
        ``source`` attr). One frame or file stands for the listings it holds: a paste's blocks (labelled
        ``block 0``, ...) or a bundle frame's snapshots (``t=<seconds>s``).
    by : {"tag", "module", "file", "func"}
        Key of allocinfo rows, as in :func:`diff` (page-table tags folded when the series mixes the
        pre-merge and 6.10+ formats).
    values : str, optional
        What each column holds: allocinfo ``"bytes"`` (default) or ``"calls"``; slabinfo ``"bytes"``,
        ``"objs"`` or ``"pages"``; vmallocinfo ``"bytes"`` or ``"areas"``; meminfo/vmstat the field's
        value, in its unit.
    top : int, optional
        Keep only the first ``top`` rows.

    Returns
    -------
    DataFrame
        Biggest change first: ``key`` (string), ``unit`` (string; meminfo/vmstat only), one Int64 column per
        snapshot (<NA> where unknown: missing from an excerpt, or missing from a meminfo/vmstat listing),
        ``change`` (Int64: the last known value less the first known one), ``growth`` (Float64: their
        ratio; <NA> from zero, or with fewer than two known values) and, for allocinfo bytes, ``exact``
        (bool, False when a size was rounded). ``attrs``: ``format`` ("growth"), ``of``, ``by``,
        ``values``, ``labels``, ``sources``, ``complete`` (per snapshot, False for excerpts),
        ``folded_pagetables``.

    Raises
    ------
    ValueError
        Fewer than two snapshots, mixed formats, a file of several listings among others, a label given
        twice, or ``values`` that the format does not have.

    Examples
    --------
    >>> g = growth("data/seed/pagetable-thread.txt")  # the four listings of the thread: before, 64, 128, 256
    >>> row = g[g.key == "include/linux/mm.h func:pagetable_alloc"].iloc[0]
    >>> [None if pd.isna(v) else int(v) for v in row[["block 0", "block 1", "block 2", "block 3"]]]
    [None, 367001600, 1288490189, 5755256177]
    >>> round(float(row.growth), 1)
    15.7
    """
    if top is not None and top < 0:
        raise ValueError(f"top must be a number of rows >= 0, not {top}")
    labels, frames, sources = _series(snapshots)
    kinds = {_kind(df, label) for df, label in zip(frames, labels)}
    if len(kinds) > 1:
        raise ValueError(f"a growth table needs snapshots of one format, not {', '.join(sorted(kinds))}")
    kind = kinds.pop()
    allowed = _QUANTITIES.get(kind, ("value",))
    values = values or allowed[0]
    if values not in allowed:
        raise ValueError(f"{kind} snapshots have values {', '.join(allowed)}, not {values!r}")
    key = by if kind == "allocinfo" else _COUNTED.get(kind, ("field", ()))[0]
    if kind != "allocinfo" and by not in ("tag", key):
        raise ValueError(f"{kind} frames are keyed by {key}; by={by!r} applies to allocinfo only")
    n = len(frames)
    complete, fold, exact = [True] * n, False, None
    if kind == "allocinfo":
        wide, complete, fold = _allocinfo_table(frames, by)
        if values == "bytes":
            exact = pd.concat([wide[f"exact_{i}"].fillna(False) for i in range(n)], axis=1).all(axis=1)
    elif kind in _GROUPS:
        wide = _counted_table([_GROUPS[kind](df, label) for df, label in zip(frames, labels)])
    else:
        wide = _fields_table(frames, labels)
        values = "value"
    table = pd.DataFrame({"key": pd.array(wide.index.astype(str), dtype="string")})
    if "unit" in wide.columns:
        table["unit"] = pd.array(wide["unit"], dtype="string")
    for i, label in enumerate(labels):
        table[label] = pd.array(wide[f"{values}_{i}"], dtype="Int64")
    known = table[labels].astype("Float64")
    first = known.bfill(axis=1).iloc[:, 0]
    last = known.ffill(axis=1).iloc[:, -1]
    two = known.notna().sum(axis=1) >= 2
    table["change"] = pd.array((last - first).where(two).round(), dtype="Int64")
    table["growth"] = pd.array((last / first.where(first != 0)).where(two), dtype="Float64")
    if exact is not None:
        table["exact"] = exact.to_numpy(dtype=bool)
    table = _sorted(table, "change")
    if top is not None:
        table = table.head(top).reset_index(drop=True)
    table.attrs = {"format": "growth", "of": kind, "by": key, "values": values, "labels": labels,
                   "sources": sources, "complete": complete, "folded_pagetables": fold}  # fmt: skip
    return table


def _series(snapshots) -> tuple[list[str], list[pd.DataFrame], list]:
    """Labels, frames (one listing each) and sources of :func:`growth`'s snapshots."""
    if isinstance(snapshots, dict):
        labels, frames = [str(k) for k in snapshots], [_load(v) for v in snapshots.values()]
    elif isinstance(snapshots, (list, tuple)):
        frames = [_load(v) for v in snapshots]
        names = [os.path.basename(str(df.attrs.get("source") or f"#{i}")) for i, df in enumerate(frames)]
        labels = _distinct(names) if len(set(names)) == len(names) else [f"{i}: {name}" for i, name in enumerate(names)]
    else:
        whole = _load(snapshots)
        if "snapshot" in whole.columns:
            ids, parts = zip(*whole.groupby("snapshot", sort=True))
            labels = [f"t={part['time'].iloc[0]:g}s" for part in parts] if "time" in whole else []
            if len(set(labels)) < len(parts):  # no times, or two snapshots at one time
                labels = [f"snapshot {i}" for i in ids]
            parts = list(parts)
        else:
            blocks = sorted(whole["block"].unique()) if "block" in whole.columns else [0]
            parts = [whole[whole["block"] == b] if "block" in whole.columns else whole for b in blocks]
            labels = [f"block {b}" for b in blocks]
        for part in parts:
            part.attrs = dict(whole.attrs)
        frames = parts
    if len(labels) != len(set(labels)) or set(labels) & {"key", "unit", "change", "growth", "exact"}:
        raise ValueError(f"each snapshot needs its own label, none of key, unit, change, growth, exact; given {labels}")
    if len(frames) < 2:
        raise ValueError(f"a growth table needs two or more snapshots, got {len(frames)}")
    for label, df in zip(labels, frames):
        listings = df["block"].nunique() if "block" in df.columns else 1
        if listings > 1 or ("snapshot" in df.columns and df["snapshot"].nunique() > 1):
            raise ValueError(f"{label} holds several listings; give it alone to follow them, or one listing each")
    return labels, frames, [df.attrs.get("source") for df in frames]


def _distinct(names: list[str]) -> list[str]:
    """Names without the start and end they all share (``allocinfo-64threads.txt``, ``allocinfo-128threads.txt``
    -> ``64``, ``128``), or as they are when that leaves one empty."""
    head = len(os.path.commonprefix(names))
    tail = len(os.path.commonprefix([n[::-1] for n in names]))
    short = [n[head : len(n) - tail] for n in names]
    return short if all(short) and len(set(short)) == len(short) else names


def _load(obj: pd.DataFrame | str | os.PathLike) -> pd.DataFrame:
    if isinstance(obj, pd.DataFrame):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        from ..io.detect import read

        return read(obj)
    raise TypeError(f"expected a DataFrame or a path, got {type(obj).__name__}")


def _kind(df: pd.DataFrame, side: str) -> str:
    if "snapshot" in df.columns and df["snapshot"].nunique() > 1:
        raise ValueError(f"{side} holds {df['snapshot'].nunique()} bundle snapshots; select one (df[df.snapshot == i])")
    if _ALLOCINFO_COLUMNS <= set(df.columns):
        return "allocinfo"
    if _FIELD_COLUMNS <= set(df.columns):
        return str(df.attrs.get("format", "meminfo/vmstat"))
    if _SLAB_COLUMNS <= set(df.columns):
        return "slabinfo"
    if _VMALLOCINFO_COLUMNS <= set(df.columns):
        return "vmallocinfo"
    source, fmt = df.attrs.get("source"), df.attrs.get("format")
    what = f"{source} ({fmt})" if source and fmt else f"a frame with columns {', '.join(map(str, df.columns))}"
    raise ValueError(f"{side}: {what}: diff and growth compare allocinfo, meminfo, vmstat, slabinfo or vmallocinfo "
                     "snapshots")


def _pick_block(df: pd.DataFrame, want: int | None, default: int, side: str) -> tuple[pd.DataFrame, int]:
    """The rows of block number ``want`` (negative: counted from the last block; None: the ``default``-th)."""
    blocks = sorted(df["block"].unique().tolist()) if "block" in df.columns else [0]
    if want is not None and want >= 0:  # a block number, as the frame's block column holds it
        if want not in blocks:
            raise ValueError(f"{side} has blocks {blocks}; there is no block {want}")
        chosen = int(want)
    else:
        choice = default if want is None else want
        try:
            chosen = int(blocks[choice])
        except IndexError:
            raise ValueError(f"{side} has blocks {blocks}; there is no block {choice}") from None
    if "block" in df.columns:
        df = df[df["block"] == chosen]
    return df, chosen


def _allocinfo_keys(df: pd.DataFrame, by: str) -> pd.Series:
    func = df["func"].str.removesuffix("_noprof")
    if by == "tag":
        return df["file"] + " func:" + func
    if by == "func":
        return func
    if by == "file":
        return df["file"]
    return df["module"].fillna("(built-in)")


def pagetable_rows(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Rows charged to the pre-merge page-table tag, and rows charged to its 6.10+ call sites."""
    func = df["func"].str.removesuffix("_noprof")
    old = (df["file"] == _PAGETABLE_OLD[0]) & (func == _PAGETABLE_OLD[1])
    new = (df["file"] == _PAGETABLE_SITES[0]) & func.isin(_PAGETABLE_SITES[1])
    return old.fillna(False).astype(bool), new.fillna(False).astype(bool)


def _allocinfo_table(frames: list[pd.DataFrame], by: str) -> tuple[pd.DataFrame, list[bool], bool]:
    """Per key and snapshot ``i``: ``bytes_i`` and ``calls_i`` (<NA> where unknown: missing from an excerpt,
    or a group an excerpt lists only in part), ``present_i`` (listed, and known) and ``exact_i``; which
    snapshots are whole listings; whether the page-table tags were folded into one key."""
    if by not in _BY:
        raise ValueError(f"by must be one of {', '.join(_BY)}, not {by!r}")
    keys = [_allocinfo_keys(df, by) for df in frames]
    rows = [pagetable_rows(df) for df in frames]
    old, new = [o.any() for o, _ in rows], [n.any() for _, n in rows]
    fold = by != "module" and any(old[i] and new[j] for i in range(len(frames)) for j in range(len(frames)) if i != j)
    if fold:
        keys = [k.where(~(o | n), PAGE_TABLES) for k, (o, n) in zip(keys, rows)]
    sides = [
        df.groupby(key.rename("key"), sort=False).agg(bytes=("size_bytes", "sum"), calls=("calls", "sum"),
                                                       exact=("size_exact", "all"))
        for df, key in zip(frames, keys)
    ]  # fmt: skip
    complete = [bool((df["size_bytes"] == 0).any()) for df in frames]
    wide = pd.concat(sides, axis=1, keys=range(len(frames)), sort=True)
    wide.columns = [f"{name}_{i}" for i, name in wide.columns]
    if by != "tag":  # a group of an excerpt that lacks some of its tags has an unknown total
        tags = [set(_allocinfo_keys(df, "tag")) for df in frames]
        for i in range(len(frames)):
            if not complete[i]:
                partial = set().union(*(set(keys[j][~_allocinfo_keys(frames[j], "tag").isin(tags[i])])
                                        for j in range(len(frames)) if j != i))  # fmt: skip
                wide.loc[wide.index.isin(partial), [f"bytes_{i}", f"calls_{i}"]] = np.nan
    for i, whole in enumerate(complete):
        wide[f"present_{i}"] = wide[f"bytes_{i}"].notna()
        if whole:  # a tag absent from a whole listing has nothing allocated
            wide.loc[~wide[f"present_{i}"], [f"bytes_{i}", f"calls_{i}"]] = 0
            wide.loc[~wide[f"present_{i}"], f"exact_{i}"] = True
    return wide, complete, fold


def _diff_allocinfo(b: pd.DataFrame, a: pd.DataFrame, by: str) -> tuple[pd.DataFrame, dict]:
    out, complete, fold = _allocinfo_table([b, a], by)
    table = pd.DataFrame(
        {
            "key": pd.array(out.index.astype(str), dtype="string"),
            "before_bytes": pd.array(out["bytes_0"], dtype="Int64"),
            "after_bytes": pd.array(out["bytes_1"], dtype="Int64"),
            "before_calls": pd.array(out["calls_0"], dtype="Int64"),
            "after_calls": pd.array(out["calls_1"], dtype="Int64"),
            "exact": (out["exact_0"].fillna(False) & out["exact_1"].fillna(False)).astype(bool).to_numpy(),
        }
    )
    table.insert(3, "delta_bytes", table["after_bytes"] - table["before_bytes"])
    table.insert(6, "delta_calls", table["after_calls"] - table["before_calls"])
    status = _status(table["delta_bytes"], out["present_0"].to_numpy(), out["present_1"].to_numpy(), complete)
    table.insert(7, "status", status)
    return table, {"before_complete": complete[0], "after_complete": complete[1], "folded_pagetables": fold}


def _by_key(df: pd.DataFrame, key: str, side: str, what: str) -> pd.DataFrame:
    """``df`` indexed by its ``key`` column, which must name each row once."""
    dup = df[key][df[key].duplicated()]
    if len(dup):
        raise ValueError(f"{side} lists {what} {dup.iloc[0]!r} twice; diff needs one row per {what}")
    return df.set_index(key)


def _slab_groups(df: pd.DataFrame, side: str) -> pd.DataFrame:
    """Bytes and objects in use, and pages of slabs, per slab cache."""
    df = _by_key(df, "name", side, "cache")
    bytes_in_use, pages = df["active_objs"] * df["objsize"], df["num_slabs"] * df["pagesperslab"]
    return pd.DataFrame({"bytes": bytes_in_use, "objs": df["active_objs"], "pages": pages})


def _vmallocinfo_groups(df: pd.DataFrame, side: str) -> pd.DataFrame:
    """Bytes and vmap areas per caller (per kind for areas without one)."""
    if df.attrs.get("address_kind") == "real" and df["start"].duplicated().any():
        twice = int(df["start"][df["start"].duplicated()].iloc[0])
        raise ValueError(
            f"{side} lists the area at {twice:#x} twice: several vmallocinfo snapshots pasted into one? "
            "diff needs one listing per side"
        )
    caller = df["caller"].astype(object)
    key = caller.where(df["module"].isna(), caller + " [" + df["module"].astype(object) + "]")
    key = key.where(df["caller"].notna(), "(no caller)")
    key = key.mask(df["unpurged"], "(unpurged vm_area)").mask(df["vm_map_ram"], "(vm_map_ram)")
    return df.groupby(key.rename("key"), sort=False).agg(bytes=("size", "sum"), areas=("size", "size"))


_GROUPS = {"slabinfo": _slab_groups, "vmallocinfo": _vmallocinfo_groups}


def _counted_table(groups: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames indexed by key with a ``bytes`` column and count columns, side by side (``bytes_i``,
    ``<count>_i``, ``present_i``); whole listings, so a key missing from one has nothing there (0)."""
    wide = pd.concat(groups, axis=1, keys=range(len(groups)), sort=True)
    wide.columns = [f"{name}_{i}" for i, name in wide.columns]
    for i in range(len(groups)):
        wide[f"present_{i}"] = wide[f"bytes_{i}"].notna()
    return wide.fillna(0)


def _diff_counted(b: pd.DataFrame, a: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Diff of two frames indexed by key with a ``bytes`` column and count columns."""
    out = _counted_table([b, a])
    table = pd.DataFrame({"key": pd.array(out.index.astype(str), dtype="string")})
    for unit in b.columns:
        table[f"before_{unit}"] = pd.array(out[f"{unit}_0"], dtype="Int64")
        table[f"after_{unit}"] = pd.array(out[f"{unit}_1"], dtype="Int64")
        table[f"delta_{unit}"] = table[f"after_{unit}"] - table[f"before_{unit}"]
    table["status"] = _status(table["delta_bytes"], out["present_0"].to_numpy(), out["present_1"].to_numpy(),
                              [True, True])  # fmt: skip
    return table, {"before_complete": True, "after_complete": True, "folded_pagetables": False}


def _fields_table(frames: list[pd.DataFrame], names: list[str]) -> pd.DataFrame:
    """meminfo/vmstat fields side by side: ``unit`` and ``value_i`` (<NA> where a snapshot lacks the field)."""
    sides = [_by_key(df, "field", name, "field")[["value", "unit"]] for df, name in zip(frames, names)]
    wide = pd.concat(sides, axis=1, keys=range(len(frames)), sort=True)
    units = wide.xs("unit", axis=1, level=1)
    for field, row in units.iterrows():
        known = row.dropna()
        if known.nunique() > 1:
            (i, first), (j, other) = next((p, q) for p in known.items() for q in known.items() if p[1] != q[1])
            raise ValueError(f"field {field!r} is in {first} in {names[i]} but in {other} in {names[j]}")
    out = pd.DataFrame({"unit": units.bfill(axis=1).iloc[:, 0]}, index=wide.index)
    for i in range(len(frames)):
        out[f"value_{i}"] = wide[(i, "value")]
    return out


def _diff_fields(b: pd.DataFrame, a: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    out = _fields_table([b, a], ["before", "after"])
    table = pd.DataFrame(
        {
            "key": pd.array(out.index.astype(str), dtype="string"),
            "unit": pd.array(out["unit"], dtype="string"),
            "before_value": pd.array(out["value_0"], dtype="Int64"),
            "after_value": pd.array(out["value_1"], dtype="Int64"),
        }
    )
    table["delta_value"] = table["after_value"] - table["before_value"]
    present = [out[f"value_{i}"].notna().to_numpy() for i in (0, 1)]
    table["status"] = _status(table["delta_value"], *present, [True, True])
    return table, {"before_complete": True, "after_complete": True, "folded_pagetables": False}


def _status(delta: pd.Series, in_b: np.ndarray, in_a: np.ndarray, complete: list[bool]) -> pd.arrays.StringArray:
    d = delta.fillna(0).to_numpy(dtype=np.int64)
    status = np.select(
        [
            in_b & in_a & (d > 0),
            in_b & in_a & (d < 0),
            in_b & in_a,
            ~in_b & complete[0],
            ~in_a & complete[1],
        ],
        ["grown", "shrunk", "same", "new", "vanished"],
        default=_MISSING,
    )
    return pd.array(status, dtype="string")


def _sorted(table: pd.DataFrame, delta: str) -> pd.DataFrame:
    size = table[delta].abs().astype("Float64").fillna(-1.0)
    order = np.lexsort((table["key"].to_numpy(dtype=object), -size.to_numpy(dtype=float)))
    return table.iloc[order].reset_index(drop=True)


def format_diff(table: pd.DataFrame) -> str:
    """The diff as an aligned text table: sizes in binary units, deltas signed, unknowns as ``?``.

    Parameters
    ----------
    table : DataFrame
        A result of :func:`diff`.

    Returns
    -------
    str
        A header naming both sources, the table, and notes on rounded sizes and unlisted rows.
    """
    attrs = table.attrs
    lines = [
        f"before: {attrs.get('before_source')} (block {attrs.get('before_block')})",
        f"after:  {attrs.get('after_source')} (block {attrs.get('after_block')})",
    ]
    counted = _COUNTED.get(attrs.get("of"))
    if counted:
        name, counts = counted
        head = [name, "before", "after", "delta"]
        head += [f"{count} {when}" for count in counts for when in ("before", "after", "delta")] + ["status"]
        cells = [
            [
                row.key,
                _size(row.before_bytes),
                _size(row.after_bytes),
                _size(row.delta_bytes, signed=True),
                *(
                    text
                    for count in counts
                    for text in (
                        _count(getattr(row, f"before_{count}")),
                        _count(getattr(row, f"after_{count}")),
                        _count(getattr(row, f"delta_{count}"), signed=True),
                    )
                ),
                row.status,
            ]
            for row in table.itertuples(index=False)
        ]
    else:
        head = ["field", "before", "after", "delta", "unit", "status"]
        cells = []
        for row in table.itertuples(index=False):
            fmt = _size if row.unit == "bytes" else _count
            values = [fmt(row.before_value), fmt(row.after_value), fmt(row.delta_value, signed=True)]
            cells.append([row.key, *values, row.unit, row.status])
    lines += _aligned(head, cells, left={0, len(head) - 1} | (set() if counted else {4}))
    if "exact" in table.columns and not table["exact"].all():
        lines.append("sizes in binary units were rounded by the kernel or numfmt: byte deltas are approximate")
    if (table["status"] == _MISSING).any():
        lines.append(f"{_MISSING}: missing from an excerpt (a listing without zero lines), value there unknown (?)")
    if attrs.get("of") == "slabinfo":
        lines.append(f"{_SLAB_BYTES}; pages: the cache's slab pages (num_slabs x pagesperslab)")
    if attrs.get("folded_pagetables"):
        lines.append(f"{PAGE_TABLES}: pagetable_alloc (pre-merge) and its mm/memory.c call sites (6.10+), summed")
    return "\n".join(lines)


def format_growth(table: pd.DataFrame) -> str:
    """The growth table as aligned text: sizes in binary units, changes signed, growth as a factor, unknowns as ``?``.

    Parameters
    ----------
    table : DataFrame
        A result of :func:`growth`.

    Returns
    -------
    str
        The snapshots with their sources, the table, and notes on rounded sizes and unknown values.
    """
    attrs = table.attrs
    labels = attrs["labels"]
    sources = attrs["sources"]
    one = len(set(map(str, sources))) == 1
    lines = [f"{', '.join(labels)}: {sources[0]}"] if one else [f"{lb}: {src}" for lb, src in zip(labels, sources)]
    name = {"allocinfo": "key", "slabinfo": "cache", "vmallocinfo": "caller"}.get(attrs["of"], "field")
    head = [name, *(["unit"] if "unit" in table.columns else []), *labels, "change", "growth"]
    cells = []
    for row in table.to_dict("records"):
        sized = row.get("unit", "bytes") == "bytes" and attrs["values"] in ("bytes", "value")
        fmt = _size if sized else _count
        cells.append([row["key"], *([row["unit"]] if "unit" in row else []), *(fmt(row[label]) for label in labels),
                      fmt(row["change"], signed=True), "?" if pd.isna(row["growth"]) else f"{row['growth']:.2f}x"])
    lines += _aligned(head, cells, left={0, 1} if "unit" in table.columns else {0})
    if "exact" in table.columns and not table["exact"].all():
        lines.append("sizes in binary units were rounded by the kernel or numfmt: changes are approximate")
    if table[labels].isna().any().any():
        lines.append("?: missing from an excerpt (a listing without zero lines), value there unknown"
                     if attrs["of"] == "allocinfo" else "?: the field is missing from that listing")
        lines.append("change and growth: from the first to the last snapshot that lists the key")
    if attrs["of"] == "slabinfo" and attrs["values"] == "bytes":
        lines.append(_SLAB_BYTES)
    if attrs.get("folded_pagetables"):
        lines.append(f"{PAGE_TABLES}: pagetable_alloc (pre-merge) and its mm/memory.c call sites (6.10+), summed")
    return "\n".join(lines)


def _aligned(head: list[str], cells: list[list], left: set[int]) -> list[str]:
    """Text lines of a table: columns two spaces apart, those in ``left`` flush left, the others right."""
    widths = [max(len(str(c)) for c in col) for col in zip(head, *cells)]
    pad = [str.ljust if i in left else str.rjust for i in range(len(head))]
    return ["  ".join(p(str(c), w) for p, c, w in zip(pad, row, widths)).rstrip() for row in [head, *cells]]


def _size(value, signed: bool = False) -> str:
    if pd.isna(value):
        return "?"
    text = format_size(int(value))
    return f"+{text}" if signed and value > 0 else text


def _count(value, signed: bool = False) -> str:
    if pd.isna(value):
        return "?"
    return f"{int(value):+d}" if signed else str(int(value))
