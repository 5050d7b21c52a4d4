"""Reader of ``perf lock contention`` tables.

perf prints a header naming the columns, a blank line, then one line per lock call site::

     contended   total wait     max wait     avg wait         type   caller

         15790    125.00 ms      1.64 ms      7.92 us        mutex   perf_try_init_event+0x3a

Times are a number and a unit (``ns``, ``us``, ``ms``, ``s``). ``-t`` replaces ``type caller`` by
``pid comm``; ``-F`` chooses the time columns (``min wait`` too).
With ``-v`` each entry is followed by its call stack (``0x<addr>  <symbol>+0x<off>``, innermost
first), and perf's own diagnostics surround the table; they are skipped. A table pasted without its
header, or under a header cut short or with a title this reader does not know, is read with the default
layouts (``contended``, four or five times, ``type``/``pid`` and ``caller``/``comm``). Under a header it
knows, a line that starts like an entry but does not fit the header's columns is a bad line.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import ParseError
from ._source import LineErrors, OnBadLines, Paste, Source, assign_blocks, finish

__all__ = ["read_perf_lock", "sniff"]

_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
_TIME = r"\d{1,15}(?:\.\d+)?\s+[A-Za-z]{1,3}"
# header title -> (column, kind); kind: int, time, text
_TITLES = {
    "contended": ("contended", "int"),
    "total wait": ("total_wait_ns", "time"),
    "max wait": ("max_wait_ns", "time"),
    "min wait": ("min_wait_ns", "time"),
    "avg wait": ("avg_wait_ns", "time"),
    "type": ("type", "text"),
    "caller": ("caller", "text"),
    "pid": ("pid", "int"),
    "comm": ("comm", "text"),
}
_HEADER = r"^\s*contended\s{2,}(?:total|max|min|avg) wait\b.*$"
_ENTRY_LEAD = rf"^\s*\d+\s+{_TIME}\b"
_SNIFF = rf"^\s*\d+(?:\s+{_TIME}){{3,}}\s+\S+(?:\s+\S+)?\s*$"
_STACK = r"^\s+0x(?P<ip>[0-9a-fA-F]{1,16})(?:\s+(?P<sym>\S.*?))?\s*$"
_DEFAULT = ["contended", "total wait", "max wait", "avg wait", "type", "caller"]
_DEFAULT_MIN = ["contended", "total wait", "max wait", "min wait", "avg wait", "type", "caller"]
_LAYOUTS = [_DEFAULT, _DEFAULT_MIN, _DEFAULT[:4] + ["pid", "comm"], _DEFAULT_MIN[:5] + ["pid", "comm"]]

_COLUMNS = {
    "block": "int64",
    "contended": "Int64",
    "total_wait_ns": "Float64",
    "max_wait_ns": "Float64",
    "min_wait_ns": "Float64",
    "avg_wait_ns": "Float64",
    "type": "string",
    "caller": "string",
    "caller_offset": "Int64",
    "pid": "Int64",
    "comm": "string",
    "stack": "string",
}
_EXPECTED = "a perf lock contention entry '<contended> <total wait> <max wait> <avg wait> <type> <caller>'"
_EXPECTED_UNIT = "a time unit ns, us, ms or s"


def sniff(paste: Paste) -> int:
    """Number of lines of ``paste`` that look like ``perf lock contention`` entries or headers."""
    lines = paste.series()
    return int((lines.str.match(_SNIFF) | lines.str.match(_HEADER)).sum())


def read_perf_lock(src: Source, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Read ``perf lock contention`` output (a file, a ``.gz`` capture or a paste).

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a line that starts like an entry (a count and a time) but does not fit the
        columns of its header, or a time with an unknown unit.

    Returns
    -------
    DataFrame, one row per entry in file order:

    =============  =======  ==================================================================
    block          int64    table number (0-based): prose, a prompt or a new header between
                            entries starts a new one
    contended      Int64    number of contended acquisitions
    total_wait_ns  Float64  total wait, nanoseconds
    max_wait_ns    Float64  longest wait, nanoseconds
    min_wait_ns    Float64  shortest wait, nanoseconds (<NA> unless ``-F`` asked for it)
    avg_wait_ns    Float64  average wait, nanoseconds
    type           string   lock type (``spinlock``, ``mutex``, ``rwsem:R``, ...)
    caller         string   calling function without its offset (``do_madvise``)
    caller_offset  Int64    the caller's ``+0x..`` offset, bytes
    pid, comm      Int64, string  the task of ``-t`` (perf prints exited tasks as ``:<pid>``)
    stack          string   ``-v`` call stack, symbols with offsets joined by ``;``, outermost first
                            and innermost (the lock function) last; addresses without a symbol are
                            kept as ``0x...``
    =============  =======  ==================================================================

    Columns a table does not have are <NA>. Times are perf's rounded values (two decimals). Tables of
    other layouts (``--lock-addr``'s ``address symbol``, ``--lock-cgroup``) are not read: their lines
    are reported as bad lines.
    """
    paste = Paste.read(src)
    return _parse_perf_lock(paste, on_bad_lines)


def _regex(titles: list[str]) -> str | None:
    """Regex of an entry under these column titles; None when a title is unknown or repeated, or when the
    titles do not end with ``caller`` or ``comm`` as perf's do (a header cut short)."""
    if len(set(titles)) != len(titles) or titles[-1:] not in (["caller"], ["comm"]):
        return None
    parts = []
    for i, title in enumerate(titles):
        if title not in _TITLES:
            return None
        name, kind = _TITLES[title]
        last = i == len(titles) - 1
        value = {
            "int": r"-?\d{1,18}",
            "time": r"\d{1,15}(?:\.\d+)?\s+[A-Za-z]{1,3}",
            "text": r"\S.*?" if last else r"\S+",
        }[kind]
        if name == "type":  # spinlock, rwlock:W, rwsem:R, mutex, pcpu-sem:R ...: never an address
            value = r"[A-Za-z][A-Za-z-]*(?::[RW])?"
        parts.append(rf"(?P<{name}>{value})")
    return r"^\s*" + r"\s+".join(parts) + r"\s*$"


def _parse_perf_lock(paste: Paste, on_bad_lines: OnBadLines) -> pd.DataFrame:
    errors = LineErrors.of(paste, on_bad_lines)
    lines = paste.series()
    n = len(lines)
    idx = lines.index
    blank = lines.str.strip().eq("").to_numpy()
    prompt = idx.isin(list(paste.prompts))
    header = lines.str.match(_HEADER).to_numpy() & ~prompt
    stack = lines.str.extract(_STACK)
    is_stack = stack["ip"].notna().to_numpy()

    which = pd.Series(np.where(header, np.arange(n), np.nan)).ffill().fillna(-1).astype(int).to_numpy()
    found = pd.DataFrame(index=idx, columns=[name for name, _ in _TITLES.values()], dtype=object)
    is_entry = np.zeros(n, dtype=bool)
    expected = np.full(n, _EXPECTED, dtype=object)
    for h in np.unique(which):
        rows = (which == h) & ~header & ~blank & ~prompt & ~is_stack
        if not rows.any():
            continue
        # the columns of the header above; without a header, or with one cut short or holding a title this
        # reader does not know, perf's default layouts
        titles = re.split(r"\s{2,}", lines.iloc[h].strip()) if h >= 0 else []
        own = _regex(titles)
        if own is not None:
            columns = " ".join(f"<{title}>" for title in titles)
            expected[rows] = f"a perf lock contention entry '{columns}' (the columns of its header, line {h + 1})"
        todo = rows.copy()
        for regex in [own] if own is not None else map(_regex, _LAYOUTS):
            part = lines[todo].str.extract(regex)
            ok = part.notna().any(axis=1)
            found.loc[part.index[ok], part.columns] = part[ok].to_numpy(dtype=object)
            hit = np.flatnonzero(todo)[ok.to_numpy()]
            is_entry[hit] = True
            todo[hit] = False

    units_bad = np.zeros(n, dtype=bool)
    for col in ("total_wait_ns", "max_wait_ns", "min_wait_ns", "avg_wait_ns"):
        unit = found[col].str.extract(r"\s([A-Za-z]+)$")[0]
        units_bad |= (unit.notna() & ~unit.isin(list(_NS))).to_numpy()
    lead = lines.str.match(_ENTRY_LEAD).to_numpy() & ~is_entry
    why = {int(i): expected[i - 1] for i in idx[lead]}
    why.update((int(i), _EXPECTED_UNIT) for i in idx[units_bad])
    for lineno in sorted(why):
        errors.bad(lineno, why[lineno], paste.lines[lineno - 1])
    keep = is_entry & ~units_bad
    if not keep.any() and not why:
        lineno, line = paste.first_text_line()
        raise ParseError(paste.source, lineno, _EXPECTED, line)

    # -v stacks: the frame lines right after an entry (or its previous frames) belong to it
    owner = pd.Series(np.where(keep, np.arange(n), np.where(is_stack, np.nan, -1.0))).ffill().fillna(-1).astype(int).to_numpy()
    frames = pd.DataFrame({"owner": owner[is_stack], "frame": _frame_names(stack[is_stack])})
    frames = frames[frames["owner"] >= 0].iloc[::-1]  # outermost first
    stacks = frames.groupby("owner", sort=False)["frame"].agg(";".join)

    rec = found[keep]
    df = pd.DataFrame(index=pd.RangeIndex(int(keep.sum())))
    other = ~keep & ~is_stack & ~blank & ~np.isin(np.arange(n), list(why))
    df["block"] = assign_blocks(idx[keep].to_numpy(), idx[other].to_numpy())
    df["contended"] = pd.to_numeric(rec["contended"]).to_numpy(dtype=object)
    for col in ("total_wait_ns", "max_wait_ns", "min_wait_ns", "avg_wait_ns"):
        parts = rec[col].str.extract(r"^(?P<num>\S+)\s+(?P<unit>\S+)$")
        # perf prints two decimals: keep the value exact to the hundredth of its unit
        df[col] = (pd.to_numeric(parts["num"]) * parts["unit"].map(_NS)).round(2).to_numpy(dtype=object)
    df["type"] = rec["type"].to_numpy(dtype=object)
    caller = rec["caller"].str.extract(r"^(?P<name>.*?)(?:\+0x(?P<off>[0-9a-fA-F]+))?$")
    df["caller"] = caller["name"].to_numpy(dtype=object)
    df["caller_offset"] = caller["off"].map(lambda h: int(h, 16) if isinstance(h, str) else None).to_numpy(dtype=object)
    df["pid"] = pd.to_numeric(rec["pid"]).to_numpy(dtype=object)
    df["comm"] = rec["comm"].to_numpy(dtype=object)
    df["stack"] = stacks.reindex(np.flatnonzero(keep)).to_numpy(dtype=object)
    for col, dtype in _COLUMNS.items():
        if dtype in ("Int64", "Float64"):
            df[col] = pd.array(pd.to_numeric(pd.Series(df[col], dtype=object)), dtype=dtype)
    df = df.astype(_COLUMNS)
    return finish(df, "perf_lock", paste, errors, skipped=int(other.sum()))


def _frame_names(stack: pd.DataFrame) -> np.ndarray:
    """Frame lines as their symbol (with offset), or ``0x<addr>`` when perf printed no symbol."""
    return stack["sym"].fillna("0x" + stack["ip"]).str.replace(";", ":", regex=False).to_numpy(dtype=object)
