"""Reader of the vmalloc tracepoints: ``perf script`` output (and ftrace ``trace``/``trace_pipe`` text) of
``vmalloc:alloc_vmap_area``, ``vmalloc:free_vmap_area_noflush`` and ``vmalloc:purge_vmap_area_lazy``.

The payloads are the events' print formats (include/trace/events/vmalloc.h, as printed by this
project's 6.18 capture host in ``/sys/kernel/tracing/events/vmalloc/*/format``)::

    alloc_vmap_area:        va_start: <decimal> size=<n> align=<n> vstart=0x<hex> vend=0x<hex> failed=<n>
    free_vmap_area_noflush: va_start=0x<hex> nr_lazy=<pages> nr_lazy_max=<pages>
    purge_vmap_area_lazy:   start=0x<hex> end=0x<hex> num_purged=<n>

Line prefixes: ``perf script`` prints ``<comm> <tid> [<cpu>] <secs>.<usecs>: vmalloc:<event>:`` (``-F +pid``
gives ``<pid>/<tid>``); ftrace prints ``<comm>-<pid> [(<tgid>)] [<cpu>] <flags> <secs>.<usecs>: <event>:``.
Lines of other events and ``#`` header lines are skipped and counted.
"""

from __future__ import annotations

import pandas as pd

from ..errors import ParseError
from ._ints import dec_uint64, fits_uint64, hex_uint64
from ._source import LineErrors, OnBadLines, Paste, Source, assign_blocks, finish

__all__ = ["read_vmalloc_trace", "sniff", "EVENTS"]

EVENTS = ("alloc_vmap_area", "free_vmap_area_noflush", "purge_vmap_area_lazy")

# The word after the timestamp ("<secs>.<usecs>: ") is the event name. A line is ours when that name is
# one of EVENTS or "vmalloc:<anything>" (then it must parse), or when the line ends inside such a name.
_EVENT_WORD = r"\d\.\d+:\s+(?:\d+\s+)?(?P<word>[A-Za-z_][\w:]*)(?P<more>.?)"
_NAMES = {*EVENTS, *(f"vmalloc:{e}" for e in EVENTS)}
_PREFIXES = {name[:i] for name in _NAMES for i in range(1, len(name) + 1)}
_SNIFF = r"\s(?:vmalloc:)?(?:" + "|".join(EVENTS) + r"):\s"
_PERF = (
    r"^\s*(?P<comm>.*?)\s+(?P<pid>-?\d{1,10})(?:/-?\d{1,10})?\s+\[(?P<cpu>\d{1,6})\]\s+"
    r"(?P<time>\d+\.\d+):\s+(?:\d+\s+)?vmalloc:(?P<event>\w+):\s?(?P<payload>.*)$"
)
_FTRACE = (
    r"^\s*(?P<comm>.*)-(?P<pid>\d{1,10})\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[(?P<cpu>\d{1,6})\]\s+(?:\S{4,5}\s+)?"
    r"(?P<time>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<payload>.*)$"
)
_PAYLOAD = {
    "alloc_vmap_area": (
        r"^va_start: (?P<va_start>\d{1,20}) size=(?P<size>\d{1,18}) align=(?P<align>\d{1,18}) "
        r"vstart=0x(?P<vstart>[0-9a-f]{1,16}) vend=0x(?P<vend>[0-9a-f]{1,16}) failed=(?P<failed>-?\d{1,9})\s*$"
    ),
    "free_vmap_area_noflush": (
        r"^va_start=0x(?P<va_start>[0-9a-f]{1,16}) nr_lazy=(?P<nr_lazy>\d{1,18}) "
        r"nr_lazy_max=(?P<nr_lazy_max>\d{1,18})\s*$"
    ),
    "purge_vmap_area_lazy": (
        r"^start=0x(?P<purge_start>[0-9a-f]{1,16}) end=0x(?P<purge_end>[0-9a-f]{1,16}) "
        r"num_purged=(?P<num_purged>\d{1,9})\s*$"
    ),
}
_EXPECTED = {
    None: "a perf script or ftrace line of a vmalloc tracepoint: "
    "'<comm> <pid> [<cpu>] <time>: vmalloc:<event>: <fields>' or '<comm>-<pid> [<cpu>] <flags> <time>: <event>: <fields>'",
    "event": f"one of the events {', '.join(EVENTS)}",
    "alloc_vmap_area": "'va_start: <decimal> size=<n> align=<n> vstart=0x<hex> vend=0x<hex> failed=<n>'",
    "free_vmap_area_noflush": "'va_start=0x<hex> nr_lazy=<n> nr_lazy_max=<n>'",
    "purge_vmap_area_lazy": "'start=0x<hex> end=0x<hex> num_purged=<n>'",
}
# payload column -> dtype, in frame order
_COLUMNS = {
    "va_start": "UInt64",
    "size": "Int64",
    "align": "Int64",
    "vstart": "UInt64",
    "vend": "UInt64",
    "failed": "Int64",
    "nr_lazy": "Int64",
    "nr_lazy_max": "Int64",
    "purge_start": "UInt64",
    "purge_end": "UInt64",
    "num_purged": "Int64",
}


def sniff(paste: Paste) -> int:
    """Number of lines of ``paste`` that are vmalloc tracepoint events."""
    return int(paste.series().str.contains(_SNIFF).sum())


def read_vmalloc_trace(src: Source, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Read ``perf script`` (or ftrace) text of the vmalloc tracepoints.

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a line naming a vmalloc event that does not parse.

    Returns
    -------
    DataFrame, one row per event in file order:

    =====================  ========  ==============================================================
    block                  int64     trace number in a paste of several traces (0-based)
    time                   float64   event time, seconds (perf/ftrace clock)
    cpu                    int64     CPU that hit the tracepoint
    comm                   string    task name
    pid                    int64     the task id perf/ftrace prints (thread id; pid of pid/tid)
    event                  category  alloc_vmap_area, free_vmap_area_noflush or purge_vmap_area_lazy
    va_start               UInt64    area start (alloc: printed in decimal, free: in hex), else <NA>
    size                   Int64     alloc: bytes requested from the VA allocator, including the
                                     guard page
    align                  Int64     alloc: alignment, bytes
    vstart, vend           UInt64    alloc: the window searched (vend inclusive)
    failed                 Int64     alloc: 1 when the allocation failed, else 0
    nr_lazy, nr_lazy_max   Int64     free: lazily freed pages after this free, and lazy_max_pages()
    purge_start, purge_end UInt64    purge: the range flushed from the TLB
    num_purged             Int64     purge: areas purged
    =====================  ========  ==============================================================

    Fields an event does not have are <NA>. ``attrs["style"]`` is ``"perf script"``, ``"ftrace"`` or
    ``"mixed"``; lines of other events are counted in ``attrs["skipped_lines"]``.
    """
    paste = Paste.read(src)
    return _parse_vmalloc_trace(paste, on_bad_lines)


def _ours(lines: pd.Series) -> pd.Series:
    """True for lines that name a vmalloc event (or are cut inside its name)."""
    m = lines.str.extract(_EVENT_WORD)
    word = m["word"].fillna("")
    named = word.str.endswith(":") & (word.str[:-1].isin(EVENTS) | word.str.startswith("vmalloc:"))
    cut = m["more"].eq("") & word.isin(_PREFIXES)
    return (named | cut).to_numpy()


def _parse_vmalloc_trace(paste: Paste, on_bad_lines: OnBadLines) -> pd.DataFrame:
    lines = paste.series()
    ours = _ours(lines)
    cand = lines[ours]
    head = cand.str.extract(_PERF)
    is_perf = head["event"].notna()
    head.loc[~is_perf] = cand[~is_perf].str.extract(_FTRACE).to_numpy()
    bad = {lineno: _EXPECTED[None] for lineno in head.index[head["event"].isna()]}
    bad.update((lineno, _EXPECTED["event"]) for lineno in head.index[head["event"].notna() & ~head["event"].isin(EVENTS)])
    head = head[head["event"].isin(EVENTS)]
    fields, payload_bad = _payload_fields(head)
    bad.update((lineno, _EXPECTED[ev]) for lineno, ev in payload_bad.items())
    head = head.loc[fields.index]

    errors = LineErrors(paste.source, on_bad_lines)
    for lineno in sorted(bad):  # in file order, so "error" mode names the first bad line
        errors.bad(int(lineno), bad[lineno], paste.lines[lineno - 1])
    other = lines.index[~ours & lines.str.strip().ne("").to_numpy()]
    if head.empty and not bad:
        lineno, line = paste.first_text_line()
        raise ParseError(paste.source, lineno, _EXPECTED[None], line)

    df = pd.DataFrame(index=pd.RangeIndex(len(head)))
    df["block"] = assign_blocks(head.index.to_numpy(), other.to_numpy())
    df["time"] = head["time"].astype("float64").to_numpy()
    df["cpu"] = head["cpu"].astype("int64").to_numpy()
    df["comm"] = head["comm"].str.strip().astype("string").array
    df["pid"] = head["pid"].astype("int64").to_numpy()
    df["event"] = pd.Categorical(head["event"].to_numpy(), categories=list(EVENTS))
    for col in _COLUMNS:
        df[col] = fields[col].array
    styles = sorted({"perf script" if p else "ftrace" for p in is_perf[head.index]})
    style = {0: None, 1: styles[0]}.get(len(styles), "mixed")
    return finish(df, "vmalloc_trace", paste, errors, skipped=len(other), style=style)


def _payload_fields(head: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, str]]:
    """Each event's payload fields in rows aligned with ``head`` (rows that do not parse left out),
    and line number -> event of the rows that did not parse."""
    fields = pd.DataFrame({col: pd.array([pd.NA] * len(head), dtype=t) for col, t in _COLUMNS.items()})
    fields.index = head.index
    bad: dict[int, str] = {}
    for event, regex in _PAYLOAD.items():
        parsed = head.loc[head["event"] == event, "payload"].str.extract(regex)
        ok = parsed.notna().all(axis=1)
        if event == "alloc_vmap_area":  # the only decimal address: up to 20 digits may overflow
            ok &= fits_uint64(parsed["va_start"])
        bad.update((lineno, event) for lineno in parsed.index[~ok])
        parsed = parsed[ok]
        for col in parsed.columns:
            if _COLUMNS[col] == "Int64":
                values = parsed[col].astype("Int64").array
            elif col == "va_start" and event == "alloc_vmap_area":
                values = dec_uint64(parsed[col])
            else:
                values = hex_uint64(parsed[col])
            fields.loc[parsed.index, col] = values
    return fields.drop(index=list(bad)), bad


