"""Reader of the lib/test_vmalloc.c summary that the kernel prints after a run (``dmesg`` text).

Per worker ``i`` the module prints one ``Summary:`` line per selected test (in test-index order), then
``All test took worker<i>=<cycles> cycles`` (kernel-facts §3.4). Generations read:

* ``Summary: <test> passed: <n> failed: <n> repeat: <n> loops: <n> avg: <usec> usec`` (6.x);
* the same with ``xfailed: <n>`` after ``failed:`` (current kernels, tests marked as expected to fail);
* ``All test took CPU<i>=<cycles> cycles``: the per-CPU driver before the ``nr_threads`` parameter
  (April 2021, kernel-facts §3.3), where the index is a CPU number.

Between ``passed:`` and the closing ``avg: <usec> usec`` every ``key: value`` is optional as long as the
order is the one above, so lines of older or newer kernels without ``repeat:`` or ``failed:`` are read
too (the oldest exact wording could not be checked against the 5.1 source and is an assumption). Every
generation ends the line with ``usec``: a line without it was cut, and is a bad line. Everything else in
a ``dmesg`` (allocation-failure warnings, ``warn_alloc`` stack traces, other drivers) is skipped and
counted. Lines may start with ``dmesg -T``'s ``[Sun Nov 29 03:19:19 2026]`` or a journal's ``... kernel:``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ParseError
from ._source import LineErrors, OnBadLines, Paste, Source, assign_blocks, finish

__all__ = ["read_test_vmalloc", "sniff"]

# journalctl -k / syslog prefix "Feb 22 10:11:12 host kernel: " (any -o short-* form) or dmesg -T's
# "[Sun Nov 29 03:19:19 2026] " (dmesg's "[ 12.345678] " is gone already)
_PREFIX = r"^\s*(?:\S.*? kernel: |\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\] )?"
_SUMMARY_LEAD = _PREFIX + r"Summary:"
_TOTAL_LEAD = _PREFIX + r"All test"  # a line cut inside "took" is a bad total, not prose
_SUMMARY = (
    _PREFIX + r"Summary: (?P<test>\S+) passed: (?P<passed>\d{1,9})(?: failed: (?P<failed>\d{1,9}))?"
    r"(?: xfailed: (?P<xfailed>\d{1,9}))?(?: repeat: (?P<repeat>\d{1,9}))?(?: loops: (?P<loops>\d{1,9}))?"
    r" avg: (?P<avg_usec>\d{1,18}) usec\s*$"
)
_TOTAL = _PREFIX + r"All test took (?P<label>worker|CPU)(?P<worker>\d{1,6})=(?P<cycles>\d{1,18}) cycles\s*$"
_SNIFF = _PREFIX + r"(?:Summary: \S+ passed: \d|All test took (?:worker|CPU)\d+=\d+ cycles)"
_EXPECTED_SUMMARY = (
    "a test_vmalloc summary 'Summary: <test> passed: <n> failed: <n> [xfailed: <n>] repeat: <n> "
    "loops: <n> avg: <n> usec'"
)
_EXPECTED_TOTAL = "a test_vmalloc total 'All test took worker<i>=<n> cycles' (or CPU<i>=)"
_COUNTS = ["passed", "failed", "xfailed", "repeat", "loops", "avg_usec"]


def sniff(paste: Paste) -> int:
    """Number of lines of ``paste`` that are test_vmalloc summary or total lines."""
    return int(paste.series().str.match(_SNIFF).sum())


def read_test_vmalloc(src: Source, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Read the test_vmalloc summary from ``dmesg`` (or journal) text.

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a ``Summary:`` or ``All test took`` line that does not parse.

    Returns
    -------
    DataFrame, one row per ``Summary:`` line in file order (plus one row with ``test`` <NA> for an
    ``All test took`` line that no Summary line precedes):

    ========  ======  =========================================================================
    block     int64   run number (0-based): a new run starts at a shell prompt or where the
                      worker numbering starts again
    test      string  test case name, e.g. ``fix_size_alloc_test``
    passed    Int64   repetitions that passed
    failed    Int64   repetitions that failed; <NA> when the line has no ``failed:``
    xfailed   Int64   repetitions that failed as expected; <NA> on kernels without ``xfailed:``
    repeat    Int64   test_repeat_count
    loops     Int64   test_loop_count
    avg_usec  Int64   wall time of all repetitions divided by ``repeat``, microseconds (not per loop)
    worker    Int64   worker (or, in the old per-CPU driver, CPU) index from the ``All test took``
                      line that follows the worker's Summary lines; <NA> when that line is missing
    cycles    Int64   get_cycles() delta of that worker over all its tests (CPU cycles)
    ========  ======  =========================================================================

    ``attrs["worker_label"]`` is ``"worker"`` or ``"CPU"`` (what the totals count), ``"mixed"`` or
    None when there is no total line.
    """
    paste = Paste.read(src)
    return _parse_test_vmalloc(paste, on_bad_lines)


def _parse_test_vmalloc(paste: Paste, on_bad_lines: OnBadLines) -> pd.DataFrame:
    lines = paste.series()
    is_summary = lines.str.match(_SUMMARY_LEAD)
    is_total = lines.str.match(_TOTAL_LEAD)
    summary = lines[is_summary].str.extract(_SUMMARY)
    total = lines[is_total].str.extract(_TOTAL)
    bad = sorted(
        [(n, _EXPECTED_SUMMARY) for n in summary.index[summary["test"].isna()]]
        + [(n, _EXPECTED_TOTAL) for n in total.index[total["worker"].isna()]]
    )
    errors = LineErrors.of(paste, on_bad_lines)
    for lineno, expected in bad:
        errors.bad(int(lineno), expected, paste.lines[lineno - 1])
    summary = summary.dropna(subset=["test"])
    total = total.dropna(subset=["worker"])
    if summary.empty and total.empty and not bad:
        lineno, line = paste.first_text_line()
        raise ParseError(paste.source, lineno, _EXPECTED_SUMMARY, line)

    tl = total.index.to_numpy()
    worker = total["worker"].astype("int64").to_numpy()
    cycles = total["cycles"].astype("int64").to_numpy()
    # a run starts again after a total line whose successor's worker index does not grow
    restarts = tl[:-1][np.diff(worker) <= 0]
    prompts = np.array(sorted(paste.prompts), dtype=np.int64)
    records = np.union1d(summary.index.to_numpy(), tl)
    block = pd.Series(assign_blocks(records, np.union1d(prompts, restarts)), index=records)

    # the Summary lines of a worker precede its total line: take the next total line of the same block
    sl = summary.index.to_numpy()
    nxt = np.searchsorted(tl, sl)
    nxt_safe = np.minimum(nxt, max(len(tl) - 1, 0))
    owned = nxt < len(tl)
    if len(tl):
        owned &= block[sl].to_numpy() == block[tl[nxt_safe]].to_numpy()
    owned &= _last_worker(summary["test"].to_numpy(), nxt)
    rows = summary.drop(columns="test").astype("Int64")
    rows.insert(0, "test", summary["test"].astype("string"))
    rows["worker"] = pd.array(np.where(owned, worker[nxt_safe] if len(tl) else 0, 0), dtype="Int64")
    rows["cycles"] = pd.array(np.where(owned, cycles[nxt_safe] if len(tl) else 0, 0), dtype="Int64")
    rows.loc[~owned, ["worker", "cycles"]] = pd.NA
    lonely = np.setdiff1d(np.arange(len(tl)), nxt[owned])  # totals with no Summary line of their own
    alone = pd.DataFrame(
        {"worker": pd.array(worker[lonely], dtype="Int64"), "cycles": pd.array(cycles[lonely], dtype="Int64")},
        index=tl[lonely],
    )
    rows = pd.concat([rows, alone]).sort_index() if len(alone) else rows
    skipped = int((~is_summary & ~is_total & lines.str.strip().ne("")).sum())

    df = pd.DataFrame(index=pd.RangeIndex(len(rows)))
    df["block"] = block[rows.index].to_numpy()
    df["test"] = rows["test"].astype("string").array
    for col in [*_COUNTS, "worker", "cycles"]:
        df[col] = rows[col].astype("Int64").array
    labels = sorted(set(total["label"]))
    label = {0: None, 1: labels[0] if labels else None}.get(len(labels), "mixed")
    return finish(df, "test_vmalloc", paste, errors, skipped=skipped, worker_label=label)


def _last_worker(tests: np.ndarray, next_total: np.ndarray) -> np.ndarray:
    """Mask of the Summary lines that belong to the worker whose total line follows them.

    A worker prints each test once, so a name seen again before the next total line starts another
    worker: the lines before the repeat are a worker whose total line is missing (cut from the paste).
    """
    last = np.ones(len(tests), dtype=bool)
    group, seen, cut = -1, set(), False
    for k in range(len(tests) - 1, -1, -1):
        if next_total[k] != group:
            group, seen, cut = next_total[k], set(), False
        cut = cut or tests[k] in seen
        seen.add(tests[k])
        last[k] = not cut
    return last
