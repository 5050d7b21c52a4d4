"""Reader of ``/proc/vmstat``: one row per counter.

Layout: one ``<name> <value>`` line per counter (``nr_free_pages 615337``), a lower-case name, one
space, an unsigned decimal, nothing else. The set of counters depends on the kernel version and
configuration, so lines are read by name.

Unit rule (the ``unit`` column), from the way mm/vmstat.c prints each counter:

* ``"kB"``: ``nr_kernel_stack`` and ``nr_shadow_call_stack`` (kept in KiB by the kernel; they equal
  meminfo's ``KernelStack`` and ``ShadowCallStack`` numbers), and the events ``pgpgin`` and
  ``pgpgout`` (counted in 512-byte sectors and halved to KiB when printed, vmstat_start()).
* ``"huge pages"``: ``nr_anon_transparent_hugepages``, ``nr_shmem_hugepages``,
  ``nr_shmem_pmdmapped``, ``nr_file_hugepages``, ``nr_file_pmdmapped`` (printed in PMD-sized pages:
  meminfo's ``AnonHugePages`` / ``Hugepagesize``).
* ``"count"``: the TLB flush events ``nr_tlb_*`` (events named like page counters).
* ``"pages"``: every other ``nr_*`` counter (base pages, e.g. ``nr_page_table_pages``; the
  cumulative ones such as ``nr_dirtied`` count pages too).
* ``"count"``: everything else (events: ``pgfault``, ``numa_hit``, ``thp_fault_alloc``, ...).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ParseError
from ._repeats import split_repeats
from ._source import LineErrors, OnBadLines, Paste, Source, assign_blocks, between_records, finish

__all__ = ["read_vmstat", "sniff", "unit_of"]

_NAME = r"[a-z][a-z0-9_]*"
_RECORD = rf"^(?P<field>{_NAME})[ \t]+(?P<num>\d+)[ \t]*$"
# Starts like a counter: a name and a (signed) digit, or a lone snake_case name whose value was cut.
_LEAD = rf"^(?:{_NAME}[ \t]+[-+]?\d|[a-z][a-z0-9]*_[a-z0-9_]*[ \t]*$)"
# The whole of a counter line cut short ("nr", "nr_unstable "): right below a counter, a bad line.
_START = rf"{_NAME}[ \t]*"
_INT64_MAX = np.iinfo(np.int64).max

_KB = {"nr_kernel_stack", "nr_shadow_call_stack", "pgpgin", "pgpgout"}
_HUGE = {
    "nr_anon_transparent_hugepages",
    "nr_shmem_hugepages",
    "nr_shmem_pmdmapped",
    "nr_file_hugepages",
    "nr_file_pmdmapped",
}
_EXPECTED = "a /proc/vmstat line '<counter name> <unsigned integer>'"
_EXPECTED_BIG = "a counter value below 2**63"


def sniff(paste: Paste) -> int:
    """Number of lines of ``paste`` that look like /proc/vmstat counters next to another one.

    A lone ``<word> <number>`` line is not counted: other text has them (the ``swapper 0`` sample
    headers of ``perf script -F comm,tid,ip,sym``, each between call-chain frames), where a vmstat
    listing or excerpt is a run of counters. A one-line excerpt is read by :func:`read_vmstat` (or
``vmaplab read --format vmstat``).
    """
    record = paste.series().str.match(_RECORD).to_numpy()
    neighbour = np.zeros_like(record)
    neighbour[1:] |= record[:-1]
    neighbour[:-1] |= record[1:]
    return int((record & neighbour).sum())


def unit_of(fields: pd.Series) -> pd.Series:
    """Unit of each vmstat counter name by the rule in the module docstring."""
    fields = fields.astype(str)
    nr = fields.str.startswith("nr_")
    unit = np.where(nr, "pages", "count").astype(object)
    unit[fields.str.startswith("nr_tlb_").to_numpy()] = "count"
    unit[fields.isin(_KB).to_numpy()] = "kB"
    unit[fields.isin(_HUGE).to_numpy()] = "huge pages"
    return pd.Series(pd.array(unit, dtype="string"), index=fields.index)


def read_vmstat(src: Source, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Read ``/proc/vmstat`` text (a file, a ``.gz`` capture or a paste).

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a line that starts like a counter (a lower-case name and a digit, or a lone
        ``snake_case`` name) but does not parse, or a lone lower-case name right below a counter (the
        last counter cut short).

    Returns
    -------
    DataFrame, one row per counter in file order:

    =====  ======  ====================================================================
    block  int64   snapshot number (0-based): a new one starts after prose, a prompt or a
                   blank line between counters, or where a counter name repeats
    field  string  counter name (``nr_free_pages``, ``pgfault``)
    value  int64   the value as printed
    unit   string  ``"pages"``, ``"kB"``, ``"huge pages"`` or ``"count"`` (module docstring)
    =====  ======  ====================================================================

    >>> vs = read_vmstat("data/real/vmstat.txt")
    >>> row = vs.set_index("field").loc["nr_kernel_stack"]
    >>> int(row.value), row.unit
    (1732, 'kB')
    """
    paste = Paste.read(src)
    return _parse_vmstat(paste, on_bad_lines)


def _parse_vmstat(paste: Paste, on_bad_lines: OnBadLines) -> pd.DataFrame:
    errors = LineErrors.of(paste, on_bad_lines)
    lines = paste.series()
    rec = lines.str.extract(_RECORD)
    is_rec = rec["field"].notna()
    digits = rec["num"].fillna("").str.lstrip("0")
    big = is_rec & (digits.str.len().gt(19) | (digits.str.len().eq(19) & digits.gt(str(_INT64_MAX))))
    lead = lines.str.match(_LEAD)
    bad = ((lead | between_records(paste, lines, is_rec, _START)) & ~is_rec) | big
    for lineno in lines.index[bad]:
        errors.bad(int(lineno), _EXPECTED_BIG if big[lineno] else _EXPECTED, paste.lines[lineno - 1])

    keep = is_rec & ~big
    if not keep.any():
        lineno, line = paste.first_text_line()
        raise ParseError(paste.source, lineno, _EXPECTED, line)

    other = ~keep & ~bad
    fields = rec.loc[keep, "field"]
    blocks = assign_blocks(lines.index[keep].to_numpy(), lines.index[other].to_numpy())
    df = pd.DataFrame(
        {
            "block": split_repeats(blocks, fields),
            "field": pd.array(fields.to_numpy(dtype=object), dtype="string"),
            "value": pd.to_numeric(rec.loc[keep, "num"]).to_numpy(dtype=np.int64),
            "unit": unit_of(fields).array,
        }
    )
    skipped = int((other & lines.str.strip().ne("")).sum())
    return finish(df, "vmstat", paste, errors, skipped=skipped)
