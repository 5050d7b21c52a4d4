"""Reader of the vmalloc tracepoints: ``perf script`` output (and ftrace ``trace``/``trace_pipe`` text) of
``vmalloc:alloc_vmap_area``, ``vmalloc:free_vmap_area_noflush`` and ``vmalloc:purge_vmap_area_lazy``.

The payloads are the events' print formats (include/trace/events/vmalloc.h, as printed by this
project's 6.18 capture host in ``/sys/kernel/tracing/events/vmalloc/*/format``)::

    alloc_vmap_area:        va_start: <decimal> size=<n> align=<n> vstart=0x<hex> vend=0x<hex> failed=<n>
    free_vmap_area_noflush: va_start=0x<hex> nr_lazy=<pages> nr_lazy_max=<pages>
    purge_vmap_area_lazy:   start=0x<hex> end=0x<hex> num_purged=<n>

Line prefixes: ``perf script`` prints ``<comm> <tid> [<cpu>] <secs>.<usecs>: vmalloc:<event>:`` (``-F +pid``
gives ``<pid>/<tid>``); ftrace prints ``<comm>-<pid> [(<tgid>)] [<cpu>] <flags> <secs>.<usecs>: <event>:``,
or with options/latency-format ``<comm>-<pid> <cpu><flags> <usecs>us<delay>: <event>:`` (see
``vmaplab/io/_trace_lines.py``). Lines of other events and ``#`` header lines are skipped and counted.
"""

from __future__ import annotations

import pandas as pd

from ._ints import dec_uint64, fits_uint64, hex_uint64
from ._source import OnBadLines, Paste, Source
from ._trace_lines import TracepointLines

__all__ = ["read_vmalloc_trace", "sniff", "EVENTS"]

EVENTS = ("alloc_vmap_area", "free_vmap_area_noflush", "purge_vmap_area_lazy")

_LINES = TracepointLines({event: "vmalloc" for event in EVENTS}, claim_systems=True)
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
    return _LINES.sniff(paste)


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
    pid                    int64     the thread id (the tid of perf's pid/tid)
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

    Fields an event does not have are <NA>. ``attrs["style"]`` is ``"perf script"``, ``"ftrace"``,
    ``"ftrace latency"`` (options/latency-format: times from the trace's start, comms cut to 8) or
    ``"mixed"``; lines of other events are counted in ``attrs["skipped_lines"]``. Where the ring buffer
    dropped events (``CPU:<n> [LOST <count> EVENTS]``), ``attrs["lost_events"]`` lists them and a warning
    says the trace is incomplete.
    """
    paste = Paste.read(src)
    return _parse_vmalloc_trace(paste, on_bad_lines)


def _parse_vmalloc_trace(paste: Paste, on_bad_lines: OnBadLines) -> pd.DataFrame:
    lines = paste.series()
    ours = _LINES.ours(lines)
    head, style = _LINES.split(lines[ours])
    bad = {lineno: _EXPECTED[None] for lineno in head.index[head["event"].isna()]}
    bad.update((lineno, _EXPECTED["event"]) for lineno in head.index[head["event"].notna() & ~head["event"].isin(EVENTS)])
    head = head[head["event"].isin(EVENTS)]
    fields, payload_bad = _payload_fields(head)
    bad.update((lineno, _EXPECTED[ev]) for lineno, ev in payload_bad.items())
    head = head.loc[fields.index]
    return _LINES.frame(paste, ours, head, style, fields, bad, "vmalloc_trace", on_bad_lines, _EXPECTED[None])


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


