"""Reader of ``/proc/slabinfo`` (versions 2.0 and 2.1): one row per slab cache.

Layout::

    slabinfo - version: 2.1
    # name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
    kmalloc-8k           132    132   8192    4    8 : tunables    0    0    0 : slabdata     33     33      0

The ``# name`` line names the numbers of every section; the reader takes the column names and their
order from it (so a version that orders the tunables differently, or the ``(statistics)`` variant with
``: globalstat ...`` and ``: cpustat ...`` sections, is read by name). Without that line the 2.1 layout
above is assumed. SLUB prints the SLAB-only tunables as zeros.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import ParseError
from ._source import LineErrors, OnBadLines, Paste, Source, assign_blocks, between_records, finish

__all__ = ["read_slabinfo", "sniff", "COLUMNS"]

COLUMNS = [
    "active_objs",
    "num_objs",
    "objsize",
    "objperslab",
    "pagesperslab",
    "limit",
    "batchcount",
    "sharedfactor",
    "active_slabs",
    "num_slabs",
    "sharedavail",
]
_DEFAULT_HEAD = (
    "# name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> "
    "<batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>"
)
_VERSION = r"^slabinfo - version: (?P<version>\d+\.\d+(?: \(statistics\))?)[ \t]*$"
_HEAD = r"^#[ \t]*name[ \t]+<"
_SNIFF = r"^\S+(?:[ \t]+\d+)+[ \t]+:[ \t]+tunables(?:[ \t]+\d+)+[ \t]+:[ \t]+slabdata(?:[ \t]+\d+)+[ \t]*$"
# Starts like a cache line: a section marker, or a name followed by at least two integers.
_LEAD = r"(?:[ \t]:[ \t]+(?:tunables|slabdata)\b|^[\w.@/:+-]+(?:[ \t]+\d+){2})"
# The whole of a cache line cut short ("kmem_cache  256 "): right below a cache line, a bad line.
_START = r"\w[\w.@/:+()-]*(?:[ \t]+\d+)*(?:[ \t]+:(?:[ \t]+[a-z]+(?:[ \t]+\d+)*)?)*[ \t]*"
_MAX_DIGITS = 18
# first word of each " : "-separated section of the header: "name", then section names
_KEYWORDS = ("name", "tunables", "slabdata", "globalstat", "cpustat")


def sniff(paste: Paste) -> int:
    """Number of lines of ``paste`` that look like /proc/slabinfo cache lines."""
    return int(paste.series().str.match(_SNIFF).sum())


def read_slabinfo(src: Source, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Read ``/proc/slabinfo`` text (a file, a ``.gz`` capture or a paste).

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a line that starts like a cache line (a name and two integers, or a
        ``: tunables`` / ``: slabdata`` section) but does not match the ``# name`` header, or the
        start of one right below a cache line (the last cache line cut short).

    Returns
    -------
    DataFrame, one row per cache in file order:

    ============  ======  ========================================================
    block         int64   listing number (0-based): a new one starts at a header, a
                          prompt or prose between cache lines
    name          string  cache name (``kmalloc-8k``, ``vmap_area``)
    active_objs   int64   objects in use
    num_objs      int64   objects allocated (in use or free)
    objsize       int64   object size, bytes
    objperslab    int64   objects per slab
    pagesperslab  int64   pages per slab
    limit         int64   SLAB tunables (0 under SLUB)
    batchcount    int64
    sharedfactor  int64
    active_slabs  int64   slabs with objects in use
    num_slabs     int64   slabs allocated
    sharedavail   int64   SLAB shared array objects (0 under SLUB)
    ============  ======  ========================================================

    Further sections named in the header (``globalstat``, ``cpustat``) add one int64 column per
    name they list. ``attrs["version"]`` is the header's version (``"2.1"``), or None without one.

    >>> sl = read_slabinfo("data/real/slabinfo.txt")
    >>> int(sl.set_index("name").loc["vmap_area", "objsize"])
    72
    """
    paste = Paste.read(src)
    return _parse_slabinfo(paste, on_bad_lines)


def _layout(header: str) -> tuple[list[str], str] | None:
    """Column names and the record regex of one ``# name <...> : section <...> ...`` header, or None
    when the line is not a whole header (a known section word, then ``<names>``, every column of
    ``COLUMNS`` present once)."""
    sections = header.strip().lstrip("#").split(" : ")
    names: list[str] = []
    pattern = r"^(?P<name>\S+)"
    for i, section in enumerate(sections):
        words = section.split()
        if not words or words[0] not in (_KEYWORDS[1:] if i else _KEYWORDS[:1]):
            return None
        if not all(re.fullmatch(r"<[a-z_]+>", w) for w in words[1:]):
            return None
        cols = [w[1:-1] for w in words[1:]]
        if i:
            pattern += rf"[ \t]+:[ \t]+{words[0]}"
        pattern += rf"(?:[ \t]+\d{{1,{_MAX_DIGITS}}}){{{len(cols)}}}"
        names += cols
    if len(set(names)) != len(names) or not set(COLUMNS) <= set(names):
        return None
    return names, pattern + r"[ \t]*$"


def _parse_slabinfo(paste: Paste, on_bad_lines: OnBadLines) -> pd.DataFrame:
    errors = LineErrors.of(paste, on_bad_lines)
    lines = paste.series()
    looks_head = lines.str.match(_HEAD)
    head = looks_head.copy()
    head[looks_head] = lines[looks_head].map(lambda line: _layout(line) is not None)
    version = lines.str.extract(_VERSION)["version"]
    # the header in force for each line (the default 2.1 one before any header)
    header_text = lines.where(head).ffill().fillna(_DEFAULT_HEAD)
    rows: list[pd.DataFrame] = []
    is_rec = pd.Series(False, index=lines.index)
    for text, group in lines[~looks_head].groupby(header_text[~looks_head], sort=False):
        names, pattern = _layout(str(text))
        ok = group.str.match(pattern)
        if not ok.any():
            continue
        # drop the " : tunables" markers: the name, then the numbers in header order
        words = group[ok].str.replace(r"[ \t]+:[ \t]+[A-Za-z]+", "", regex=True).str.split(expand=True)
        frame = words.iloc[:, 1:].astype(np.int64).set_axis(names, axis=1)
        frame.insert(0, "name", words[0])
        rows.append(frame)
        is_rec[group.index[ok]] = True
    damaged = between_records(paste, lines, is_rec, _START)  # garbled between two others, or cut
    bad = ((lines.str.contains(_LEAD) | damaged) & ~is_rec & ~looks_head) | (looks_head & ~head)
    for lineno in lines.index[bad]:
        if looks_head[lineno]:
            expected = f"a slabinfo header naming every column: '{_DEFAULT_HEAD}'"
        else:
            names, _ = _layout(header_text[lineno])
            expected = f"a slabinfo line '<name> <{'> <'.join(names)}>' as the '# name' header lists them"
        errors.bad(int(lineno), expected, paste.lines[lineno - 1])
    if not rows:
        lineno, line = paste.first_text_line()
        raise ParseError(paste.source, lineno, f"a /proc/slabinfo cache line ({_DEFAULT_HEAD[2:]})", line)

    records = pd.concat(rows).sort_index()
    other = ~is_rec & ~bad
    df = pd.DataFrame({"block": assign_blocks(records.index.to_numpy(), lines.index[other].to_numpy())})
    df["name"] = pd.array(records["name"].to_numpy(dtype=object), dtype="string")
    for col in records.columns.drop("name"):
        df[col] = records[col].to_numpy(dtype=np.int64)
    versions = version.dropna()
    skipped = int((other & lines.str.strip().ne("")).sum())
    return finish(
        df, "slabinfo", paste, errors, skipped=skipped, version=str(versions.iloc[0]) if len(versions) else None
    )
