"""Reader of ``/proc/meminfo``: one row per field, values in bytes.

Layout (kernel-facts §4.2): ``Name:`` padded to 16 columns, the value right-aligned, then `` kB``
(KiB); only the ``HugePages_Total/Free/Rsvd/Surp`` lines are counts without a unit. A name longer
than the padding leaves no space after the colon (``ShadowCallStack:10373888 kB``). Fields differ
between kernel versions and configurations, so lines are read by name, never by position.

Linux 2.4 printed a table before those lines, in bytes::

            total:    used:    free:  shared: buffers:  cached:
    Mem:  <6 numbers>
    Swap: <3 numbers>

Its cells become fields named ``Mem.total``, ``Mem.used``, ... ``Swap.free`` (unit ``bytes``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ParseError
from ._repeats import split_repeats
from ._source import LineErrors, OnBadLines, Paste, Source, assign_blocks, between_records, finish

__all__ = ["read_meminfo", "sniff"]

_NAME = r"[A-Za-z][A-Za-z0-9_()]*"
_RECORD = rf"^(?P<field>{_NAME}):[ \t]*(?P<num>\d+)(?:[ \t]+(?P<unit>kB))?[ \t]*$"
_SNIFF = rf"^(?:{_NAME}:[ \t]*\d+[ \t]+kB|HugePages_\w+:[ \t]*\d+)[ \t]*$"
# Starts like a record: a name, a colon and a digit. Also a bare name that cannot be an English
# word ("Active(anon):", "Committed_AS:", "MemTotal:") with its value cut off.
_LEAD = rf"^(?:{_NAME}:[ \t]*\d|[A-Za-z]*[a-z][A-Z0-9_(][A-Za-z0-9_()]*:[ \t]*$)"
# A name and a colon (a space before it allowed): with a field right above, a field cut short.
_NAMED = rf"^{_NAME}[ \t]*:"
# The whole of a field cut short ("DirectMap", "DirectMap1G:    25165824 k"): right below a field, a bad line.
_START = rf"{_NAME}(?::[ \t]*(?:\d+[ \t]*k?)?)?[ \t]*"
# Rows of other tools (``free``: "Mem:  64172  936 ...", "Swap: 0B 0B 0B") are prose here, not bad fields.
_OTHER_ROW = rf"^{_NAME}:(?:[ \t]+\d[\w.,]*){{2,}}[ \t]*$"
_TABLE_HEAD = r"^[ \t]*total:[ \t]+used:[ \t]+free:(?:[ \t]+[a-z]+:)*[ \t]*$"
_TABLE_ROW = r"^(?P<row>Mem|Swap):(?P<cells>(?:[ \t]+\d{1,18})+)[ \t]*$"
_TABLE_LEAD = r"^(?:Mem|Swap):"
# /proc/meminfo prints these without a unit; every other field carries " kB"
_COUNTS = r"^HugePages_"
_MAX_DIGITS = 18  # below 2**63 whatever the digits

_EXPECTED = "a /proc/meminfo line '<Name>: <value> kB' (or a HugePages_* count without unit)"
_EXPECTED_KB = "'<value> kB': only HugePages_* fields are printed without a unit"
_EXPECTED_ROW = "a 2.4 meminfo table row '{row}: ' with one number under each of its {n} header columns"
_EXPECTED_BIG = "a value that fits in 64 bits once converted to bytes"


def sniff(paste: Paste) -> int:
    """Number of lines of ``paste`` that look like /proc/meminfo fields."""
    return int(paste.series().str.match(_SNIFF).sum())


def read_meminfo(src: Source, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Read ``/proc/meminfo`` text (a file, a ``.gz`` capture or a paste).

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a line that starts like a field (``Name:`` and a digit) but does not parse,
        a kB field printed without its unit, a 2.4 table row with the wrong number of cells, or a
        lone name right below a field (the last field cut short).

    Returns
    -------
    DataFrame, one row per field in file order:

    =========  ======  ==================================================================
    block      int64   snapshot number (0-based): a new one starts after prose, a prompt or a
                       blank line between fields, at a 2.4 table header, or where a field repeats
    field      string  name without the colon (``MemTotal``, ``Active(anon)``, ``Mem.total``)
    value      int64   bytes for ``kB`` fields and 2.4 table cells; the count for HugePages_*
    unit       string  ``"bytes"`` or ``"count"``
    raw_value  int64   the number as printed (KiB for ``kB`` fields)
    =========  ======  ==================================================================

    >>> mi = read_meminfo("data/real/meminfo.txt")
    >>> int(mi.set_index("field").loc["MemTotal", "value"])  # bytes: 24684084 kB x 1024
    25276502016
    """
    paste = Paste.read(src)
    return _parse_meminfo(paste, on_bad_lines)


def _parse_meminfo(paste: Paste, on_bad_lines: OnBadLines) -> pd.DataFrame:
    errors = LineErrors.of(paste, on_bad_lines)
    lines = paste.series()
    blank = lines.str.strip().eq("")
    rec = lines.str.extract(_RECORD)
    is_rec = rec["field"].notna()
    bad = pd.Series(False, index=lines.index)
    bad_why: dict[int, str] = {}

    def mark(where: pd.Series, why: str) -> None:
        for lineno in lines.index[where & ~bad]:
            bad_why[int(lineno)] = why
        bad.loc[where] = True

    # a unitless value outside HugePages_* is a kB field cut after its digits
    mark(is_rec & rec["unit"].isna() & ~rec["field"].str.match(_COUNTS).fillna(False), _EXPECTED_KB)
    too_long = rec["num"].str.len().gt(_MAX_DIGITS).fillna(False)
    mark(is_rec & too_long, _EXPECTED_BIG)
    raw = pd.to_numeric(rec["num"].where(is_rec & ~bad), errors="coerce")
    kib = rec["unit"].eq("kB").fillna(False)
    mark(is_rec & kib & raw.gt(np.iinfo(np.int64).max // 1024).fillna(False), _EXPECTED_BIG)

    table, cells = _table(lines)
    for lineno in lines.index[table["bad"] & ~bad]:
        bad_why[int(lineno)] = _EXPECTED_ROW.format(row=table.at[lineno, "row"], n=table.at[lineno, "n"])
    bad |= table["bad"]
    lead = lines.str.match(_LEAD) & ~lines.str.match(_OTHER_ROW)
    # a damaged field inside a listing, or a field cut short at its end ("Name:" before its value, a lone name)
    cut = lines.str.match(_NAMED) & is_rec.shift(1, fill_value=False) & ~lines.str.match(_OTHER_ROW)
    damaged = between_records(paste, lines, is_rec, _START)
    mark((lead | damaged | cut) & ~is_rec & ~table["ok"] & ~table["head"], _EXPECTED)

    for lineno in sorted(bad_why):
        errors.bad(lineno, bad_why[lineno], paste.lines[lineno - 1])

    keep = is_rec & ~bad
    if not keep.any() and cells.empty:
        lineno, line = paste.first_text_line()
        raise ParseError(paste.source, lineno, _EXPECTED, line)

    fields = pd.DataFrame(
        {
            "lineno": lines.index[keep].to_numpy(dtype=np.int64),
            "field": rec.loc[keep, "field"].to_numpy(dtype=object),
            "raw_value": raw[keep].to_numpy(dtype=np.int64),
            "kib": kib[keep].to_numpy(),
        }
    )
    df = pd.concat([fields, cells], ignore_index=True).sort_values("lineno", kind="stable")
    kib_rows = df["kib"].to_numpy(dtype=bool)
    counts = df["field"].str.match(_COUNTS).to_numpy(dtype=bool) & ~kib_rows
    raw_values = df["raw_value"].to_numpy(dtype=np.int64)

    other = ~keep & ~bad & ~table["ok"]
    separators = lines.index[other | table["head"]].to_numpy()
    blocks = assign_blocks(df["lineno"].to_numpy(), separators)
    out = pd.DataFrame(
        {
            "block": split_repeats(blocks, df["field"]),
            "field": pd.array(df["field"].to_numpy(dtype=object), dtype="string"),
            "value": np.where(kib_rows, raw_values * 1024, raw_values).astype(np.int64),
            "unit": pd.array(np.where(counts, "count", "bytes"), dtype="string"),
            "raw_value": raw_values,
        }
    )
    skipped = int((other & ~blank).sum())
    return finish(out, "meminfo", paste, errors, skipped=skipped)


def _table(lines: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Find the 2.4 ``total: used: ...`` tables.

    Returns a frame indexed like ``lines`` (``head``: a table header; ``ok``/``bad``: a ``Mem:`` or
    ``Swap:`` row right under a header, parsed or not; ``row``, ``n``: its label and expected cell
    count) and the cells of the good rows as records (``lineno, field, raw_value, kib=False``).
    """
    head = lines.str.match(_TABLE_HEAD)
    lead = lines.str.match(_TABLE_LEAD)
    row = lines.str.extract(_TABLE_ROW)
    # rows come in runs; the line just before a run must be the header
    run = (~lead).cumsum()
    before = pd.Series(lines.index[~lead], index=run[~lead].to_numpy())
    header_line = run.map(before).where(lead)
    under = header_line.map(head).fillna(False).astype(bool)
    names = {int(h): lines[int(h)].replace(":", " ").split() for h in header_line[under].unique()}
    n_cols = header_line[under].map(lambda h: len(names[int(h)])).reindex(lines.index, fill_value=0)
    is_swap = lines.str.startswith("Swap:")
    expected = n_cols.where(~is_swap, np.minimum(n_cols, 3)).astype(int)
    n_cells = row["cells"].fillna("").astype(str).str.split().str.len()
    ok = under & row["row"].notna() & n_cells.eq(expected)
    records = [
        (int(lineno), f"{row.at[lineno, 'row']}.{col}", int(cell), False)
        for lineno in lines.index[ok]
        for col, cell in zip(names[int(header_line[lineno])], row.at[lineno, "cells"].split())
    ]
    cells = pd.DataFrame(records, columns=["lineno", "field", "raw_value", "kib"])
    info = pd.DataFrame(
        {"head": head, "ok": ok, "bad": under & ~ok, "row": np.where(is_swap, "Swap", "Mem"), "n": expected},
        index=lines.index,
    )
    return info, cells
