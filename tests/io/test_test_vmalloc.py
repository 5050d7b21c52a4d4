"""read_test_vmalloc on dmesg text of lib/test_vmalloc.c runs.

The 6.x format is read from real kernel logs: the test_vmalloc runs of a Linux 6.12 guest on this host
(data/real/test_vmalloc-qemu-2cpu/, data/real/SOURCES.md), whole or in excerpts. The samples of the current
format (xfailed:) and of the per-CPU driver before nr_threads are transcribed from the printk formats quoted
in kernel-facts §3.4 (S-TVCUR, S-NRTHR) with made-up numbers, as no kernel here prints them; so are the lines
each test below builds from one format's fields to damage them or drop one (said where they are).
"""

import io
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _line_mutations import mutated
from hypothesis import given, settings
from hypothesis import strategies as st

from vmaplab.errors import ParseError
from vmaplab.io._source import Paste
from vmaplab.io.test_vmalloc import read_test_vmalloc, sniff

# run_test_mask=127 nr_threads=2 test_loop_count=100000, its align_shift_alloc_test failure warnings included
REAL_6X = Path(__file__).resolve().parents[2] / "data/real/test_vmalloc-qemu-2cpu/loops100k-1/0001/test_vmalloc"
# an excerpt of that real 6.12 log: the first failure warning's first 8 lines, then lines 123-139 (the 14 Summary
# lines, the 2 totals and a "used greatest stack depth" line between them)
_REAL_LINES = REAL_6X.read_text().splitlines(True)
DMESG_6X = "".join(_REAL_LINES[:8] + _REAL_LINES[122:139])

# current format with xfailed:, two runs one after the other (second: run_test_mask=64, one worker)
DMESG_CURRENT = textwrap.dedent(
    """\
    [   71.000101] Summary: fix_size_alloc_test passed: 1 failed: 0 xfailed: 0 repeat: 1 loops: 1000000 avg: 512345 usec
    [   71.000104] Summary: align_shift_alloc_test passed: 0 failed: 0 xfailed: 1 repeat: 1 loops: 1000000 avg: 17 usec
    [   71.000107] All test took worker0=1203341187 cycles
    [   90.421001] Summary: align_shift_alloc_test passed: 0 failed: 0 xfailed: 1 repeat: 1 loops: 1000000 avg: 16 usec
    [   90.421004] All test took worker0=40301 cycles
    """
)

# the per-CPU driver before nr_threads (April 2021): totals name CPUs
DMESG_CPU = textwrap.dedent(
    """\
    [  301.000001] Summary: fix_size_alloc_test passed: 1 failed: 0 repeat: 1 loops: 1000000 avg: 700001 usec
    [  301.000002] All test took CPU0=1820014000 cycles
    [  301.000003] Summary: fix_size_alloc_test passed: 1 failed: 0 repeat: 1 loops: 1000000 avg: 700002 usec
    [  301.000004] All test took CPU2=1820015000 cycles
    """
)


TESTS_127 = ["fix_size_alloc_test", "full_fit_alloc_test", "long_busy_list_alloc_test", "random_size_alloc_test",
             "fix_align_alloc_test", "random_size_align_alloc_test", "align_shift_alloc_test"]  # fmt: skip


def _read(text: str, **kw) -> pd.DataFrame:
    return read_test_vmalloc(io.StringIO(text), **kw)


def test_6x_summary_and_noise():
    df = read_test_vmalloc(REAL_6X)
    assert df.attrs["format"] == "test_vmalloc" and df.attrs["worker_label"] == "worker"
    # 139 lines: 14 Summary lines and 2 totals; the rest are the two failure reports (stack, show_mem)
    assert df.attrs["skipped_lines"] == 139 - 16 and df.attrs["bad_lines"] == []
    assert list(df["test"]) == TESTS_127 * 2 and list(df["worker"]) == [0] * 7 + [1] * 7
    assert list(df["cycles"]) == [56690063266] * 7 + [56193402075] * 7
    assert list(df["avg_usec"].iloc[:7]) == [459955, 835997, 7476078, 3792754, 4343461, 4903951, 24232]
    # align_shift_alloc_test ends with an alignment no window holds: its one failure is expected
    assert list(df["failed"]) == [0] * 6 + [1] + [0] * 6 + [1] and (df["passed"] == 1 - df["failed"]).all()
    assert df["xfailed"].isna().all()  # the 6.x format has no xfailed: field
    assert (df["repeat"] == 1).all() and (df["loops"] == 100_000).all() and (df["block"] == 0).all()


def test_dtypes():
    df = read_test_vmalloc(REAL_6X)
    assert df["block"].dtype == np.int64 and isinstance(df["test"].dtype, pd.StringDtype)
    for col in ("passed", "failed", "xfailed", "repeat", "loops", "avg_usec", "worker", "cycles"):
        assert str(df[col].dtype) == "Int64", col


def test_current_format_xfailed_and_runs():
    df = _read(DMESG_CURRENT)
    assert list(df["xfailed"]) == [0, 1, 1] and list(df["passed"]) == [1, 0, 0]
    assert list(df["block"]) == [0, 0, 1]  # worker numbering starts again: a second run
    assert list(df["cycles"]) == [1203341187, 1203341187, 40301]


def test_old_cpu_totals():
    df = _read(DMESG_CPU)
    assert df.attrs["worker_label"] == "CPU"
    assert list(df["worker"]) == [0, 2] and list(df["block"]) == [0, 0]


def test_lines_without_repeat_but_not_without_avg():
    # made up from the 6.x line with its repeat: field dropped (the reader takes the fields between passed:
    # and avg: as optional); every generation ends in "avg: <n> usec", so a line without it was cut
    total = "All test took worker0=5 cycles\n"
    df = _read("Summary: fix_size_alloc_test passed: 1 failed: 0 loops: 1000 avg: 7 usec\n" + total)
    assert df.loc[0, "loops"] == 1000 and df.loc[0, "avg_usec"] == 7 and pd.isna(df.loc[0, "repeat"])
    with pytest.raises(ParseError, match="avg: <n> usec"):
        _read("Summary: fix_size_alloc_test passed: 1 failed: 0 loops: 1000\n" + total)


def test_prompt_starts_a_new_run_and_missing_total():
    summaries = DMESG_6X.split("\n", 8)[8]  # the real log's Summary and total lines, without the warning
    first = "root@pc636:~# dmesg | tail -2\n" + DMESG_CPU.splitlines()[0] + "\n"
    text = first + "root@pc636:~# dmesg | tail -17\n" + summaries
    df = _read(text)
    assert list(df["block"]) == [0] + [1] * 14
    # the first run's total line is not in the paste: its worker is unknown, not taken from the next run
    assert pd.isna(df.loc[0, "worker"]) and list(df["worker"][1:]) == [0] * 7 + [1] * 7


def test_worker_whose_total_is_missing_keeps_no_worker():
    # worker 0's total line deleted, or cut inside "took": its Summary lines must not be credited to worker 1
    lines = DMESG_6X.splitlines(True)
    at = next(i for i, line in enumerate(lines) if "All test took worker0=" in line)
    for total in ("", lines[at][: lines[at].index("took") + 3] + "\n"):
        df = _read("".join(lines[:at] + [total] + lines[at + 1 :]), on_bad_lines="skip")
        assert df["worker"].isna().tolist() == [True] * 7 + [False] * 7 and list(df["worker"][7:]) == [1] * 7
        assert [b["lineno"] for b in df.attrs["bad_lines"]] == ([at + 1] if total else [])


def test_total_without_summary_lines_keeps_a_row():
    # a made-up total line alone, as after a run whose mask selected no test the module knows
    df = _read("All test took worker0=123 cycles\n")
    assert len(df) == 1 and pd.isna(df.loc[0, "test"]) and df.loc[0, "cycles"] == 123


def test_journal_prefix():
    # journalctl -k's prefix (<month> <day> <time> <host> kernel: ) on made-up 6.x lines
    df = _read("Feb 22 10:11:12 pc636 kernel: Summary: fix_size_alloc_test passed: 1 failed: 0 repeat: 1 loops: 10 avg: 7 usec\n"
               "Feb 22 10:11:12 pc636 kernel: All test took worker0=99 cycles\n")
    assert list(df["worker"]) == [0] and list(df["avg_usec"]) == [7]


def test_bad_lines():
    # worker 1's full_fit_alloc_test line with its passed: count spelled out and the fields after it lost
    text = DMESG_6X.replace("passed: 1 failed: 0 repeat: 1 loops: 100000 avg: 682430", "passed: one failed: 0", 1)
    lineno = 1 + next(i for i, line in enumerate(text.splitlines()) if "passed: one" in line)
    with pytest.raises(ParseError) as info:
        _read(text)
    assert info.value.lineno == lineno == 19 and "Summary:" in info.value.expected
    df = _read(text, on_bad_lines="skip")
    assert len(df) == 13 and [b["lineno"] for b in df.attrs["bad_lines"]] == [19]
    with pytest.raises(ParseError) as info:
        _read(DMESG_CPU.replace("CPU2=1820015000 cycles", "CPU2=18200"))
    assert info.value.lineno == 4 and "All test took" in info.value.expected


def test_no_summary_raises_at_first_text_line():
    with pytest.raises(ParseError) as info:
        _read("\n" + DMESG_6X.split("\n", 8)[0] + "\n")
    assert info.value.lineno == 2


def test_sniff():
    assert sniff(Paste.from_text(DMESG_6X)) == 16 and sniff(Paste.from_text(DMESG_CPU)) == 4
    assert sniff(Paste.from_text("MemTotal:       24684084 kB\nSummary of the thread\n")) == 0


TEXTS = DMESG_6X + DMESG_CURRENT
KEYS = {line: line.split("] ", 1)[1] for line in TEXTS.splitlines() if "Summary:" in line}


@settings(max_examples=150, deadline=None)
@given(mutated(TEXTS))
def test_mutated_input(text):
    try:
        _read(text)
    except ParseError:
        pass
    try:
        df = _read(text, on_bad_lines="skip")
    except ParseError as exc:
        assert "binary" in exc.expected or not any(line in KEYS for line in text.splitlines())
        return
    rows = set(zip(df["test"].fillna(""), df["avg_usec"].fillna(-1)))
    for line in text.splitlines():
        if line in KEYS:  # an unchanged Summary line is never dropped
            words = KEYS[line].split()
            assert (words[1], int(words[-2])) in rows


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_parse_error(text):
    try:
        _read(text)
    except ParseError:
        pass


def test_summary_cut_inside_a_number_is_a_bad_line():
    # the capture's last Summary line cut after "loops: 10000" (of 100000) and saved with a newline: it was read
    # as loops=10000 with no avg
    lines = REAL_6X.read_text().splitlines()
    lines[137] = lines[137][: lines[137].index("loops: ") + len("loops: 10000")]
    with pytest.raises(ParseError) as info:
        _read("\n".join(lines[:138]) + "\n")
    assert info.value.lineno == 138 and "avg: <n> usec" in info.value.expected
    df = _read("\n".join(lines) + "\n", on_bad_lines="skip")
    assert len(df) == 13 and (df["loops"] == 100_000).all() and [b["lineno"] for b in df.attrs["bad_lines"]] == [138]


def test_dmesg_T_prefix():
    # session 20 (data/real/SOURCES.md): REAL_6X's Summary lines as `dmesg -T` prints them; they were not read
    path = REAL_6X.parents[3] / "test_vmalloc-dmesg-T.txt"
    df, ref = read_test_vmalloc(path), read_test_vmalloc(REAL_6X)
    assert df.attrs["skipped_lines"] == 1 and df.attrs["bad_lines"] == []  # the stack-depth line between them
    assert df.drop(columns="block").equals(ref.drop(columns="block")) and (df["block"] == 0).all()
    assert sniff(Paste.read(path)) == 16
