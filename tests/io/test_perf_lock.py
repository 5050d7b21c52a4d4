"""read_perf_lock on this host's perf lock contention captures (default, -t, -v, -F with min wait),
pastes, damaged copies and random text."""

import io
import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from _line_mutations import mutated
from hypothesis import given, settings
from hypothesis import strategies as st

import vmaplab
from vmaplab.errors import BadLineWarning, ParseError
from vmaplab.io._source import Paste
from vmaplab.io.perf_lock import read_perf_lock, sniff

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "data" / "real"
NS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9}
# a default-layout entry, written independently of the reader
# (a lock type is letters and dashes with an optional :R or :W, as perf prints them: spinlock,
# rwsem:R, pcpu-sem:W; "0spinlock" or "s0inlock" is damage, not a type)
ENTRY = re.compile(
    r"^ +(\d+) +(\d+\.\d\d) (ns|us|ms|s) +(\d+\.\d\d) (ns|us|ms|s) +(\d+\.\d\d) (ns|us|ms|s) +([A-Za-z][A-Za-z-]*(?::[RW])?) +(\S+)$"
)


def test_default_table():
    df = read_perf_lock(REAL / "perf-lock-contention.txt")
    assert df.dtypes.astype(str).to_dict() == {
        "block": "int64", "contended": "Int64", "total_wait_ns": "Float64", "max_wait_ns": "Float64",
        "min_wait_ns": "Float64", "avg_wait_ns": "Float64", "type": "string", "caller": "string",
        "caller_offset": "Int64", "pid": "Int64", "comm": "string", "stack": "string",
    }
    assert len(df) == 141 and (df["block"] == 0).all()
    top = df.iloc[0]
    assert (top["contended"], top["total_wait_ns"], top["max_wait_ns"], top["avg_wait_ns"]) == (15790, 125e6, 1.64e6, 7920.0)
    assert (top["type"], top["caller"], top["caller_offset"]) == ("mutex", "perf_try_init_event", 0x3A)
    assert df["min_wait_ns"].isna().all() and df["pid"].isna().all() and df["stack"].isna().all()
    assert set(df["type"]) >= {"spinlock", "mutex", "rwsem:R", "rwsem:W", "rwlock:W"}
    # perf sorts by total wait; max >= avg; avg * contended = total within perf's two-decimal rounding
    assert df["total_wait_ns"].is_monotonic_decreasing
    assert (df["max_wait_ns"] >= df["avg_wait_ns"]).all()
    rel = (df["avg_wait_ns"] * df["contended"] - df["total_wait_ns"]).abs() / df["total_wait_ns"]
    assert (rel < 0.01).all()
    # every line of the file is an entry, the header or its blank line
    lines = (REAL / "perf-lock-contention.txt").read_text().splitlines()
    parsed = [m for m in map(ENTRY.match, lines) if m]
    assert len(parsed) == 141
    assert df["total_wait_ns"].tolist() == [float(m[2]) * NS[m[3]] for m in parsed]
    assert df.attrs["skipped_lines"] == 1 and df.attrs["bad_lines"] == []


def test_threads_table():
    df = read_perf_lock(REAL / "perf-lock-contention-t.txt")
    assert len(df) == 60 and df["type"].isna().all() and df["caller"].isna().all()
    assert df.loc[:1, ["pid", "comm"]].values.tolist() == [[23543, "churn"], [23544, "churn"]]
    assert (df.loc[2:, "comm"] == ":" + df.loc[2:, "pid"].astype(str)).all()  # exited threads


def test_min_wait_sorted_by_max_wait():
    df = read_perf_lock(REAL / "perf-lock-contention-minwait.txt")
    assert len(df) == 40 and df["min_wait_ns"].notna().all()
    assert df["max_wait_ns"].is_monotonic_decreasing  # -k wait_max
    assert ((df["min_wait_ns"] <= df["avg_wait_ns"]) & (df["avg_wait_ns"] <= df["max_wait_ns"])).all()
    assert df.loc[0, ["contended", "min_wait_ns", "avg_wait_ns"]].tolist() == [112, 3090.0, 939700.0]


def test_verbose_stacks_and_diagnostics():
    df = read_perf_lock(REAL / "perf-lock-contention-v.txt")
    assert len(df) == 12 and df["stack"].notna().all()
    frames = df.loc[0, "stack"].split(";")
    assert frames[-1] == "__mutex_lock.constprop.0+0x1f1" and frames[0] == "perf_event_init_task+0x170"
    assert "perf_try_init_event+0x3a" in frames
    # user-space return addresses without a symbol stay as addresses
    assert df.loc[1, "stack"].split(";")[0].startswith("0x7f")
    # same numbers as the plain table for the same entries
    plain = read_perf_lock(REAL / "perf-lock-contention.txt").head(12)
    assert df["total_wait_ns"].tolist() == plain["total_wait_ns"].tolist()
    # perf's 7 verbose lines above, its 8 debug lines below and the header are skipped
    assert df.attrs["skipped_lines"] == 16 and df.attrs["bad_lines"] == []


def test_paste_without_header_with_prose_gives_blocks():
    lines = (REAL / "perf-lock-contention.txt").read_text().splitlines()
    text = "root@vm:~# perf lock contention -E 3\n" + "\n".join(lines[2:5]) + "\nafter the patch:\n" + "\n".join(lines[5:7]) + "\n"
    df = read_perf_lock(io.StringIO(text))
    assert df["block"].tolist() == [0, 0, 0, 1, 1]
    assert df["caller"].tolist()[:2] == ["perf_try_init_event", "do_madvise"]


def test_time_units_and_errors():
    lines = (REAL / "perf-lock-contention.txt").read_text().splitlines()
    text = "\n".join(lines[:4]) + "\n"
    df = read_perf_lock(io.StringIO(text.replace("125.00 ms", "  0.13 s")))
    assert df.loc[0, "total_wait_ns"] == 130_000_000.0
    with pytest.raises(ParseError, match=r"line 3: expected a time unit ns, us, ms or s"):
        read_perf_lock(io.StringIO(text.replace("125.00 ms", "125.00 xs")))
    with pytest.raises(ParseError, match=r"line 4: expected a perf lock contention entry"):
        read_perf_lock(io.StringIO(text.replace(lines[3], lines[3][:30])))
    with pytest.warns(BadLineWarning):
        warned = read_perf_lock(io.StringIO(text.replace(lines[3], lines[3][:30])), on_bad_lines="warn")
    assert len(warned) == 1 and warned.attrs["bad_lines"][0]["lineno"] == 4
    with pytest.raises(ParseError, match=r"line 1: expected a perf lock contention entry"):
        read_perf_lock(REAL / "perf-report-self.txt")


@pytest.mark.parametrize(
    "name, damage, waits",
    [
        # perf-lock-contention-minwait.txt, line 3 without its max wait: four times under a five-time header
        # were read as the default layout, the min wait (3.09 us) taken for the max wait
        ("perf-lock-contention-minwait.txt", lambda line: line.replace("      3.13 ms", "", 1), "total max min avg"),
        # perf-lock-contention.txt, line 3 with a fifth time: read as the -F min wait layout
        ("perf-lock-contention.txt", lambda line: line.replace("1.64 ms", "1.64 ms      1.94 us", 1), "total max avg"),
    ],
)
def test_line_that_does_not_fit_its_header_is_bad(name, damage, waits):
    lines = (REAL / name).read_text().splitlines()
    whole = read_perf_lock(REAL / name)
    lines[2] = damage(lines[2])
    text = "\n".join(lines) + "\n"
    columns = " ".join(["<contended>", *(f"<{w} wait>" for w in waits.split()), "<type>", "<caller>"])
    with pytest.raises(ParseError, match=re.escape(f"line 3: expected a perf lock contention entry '{columns}' (the")):
        read_perf_lock(io.StringIO(text))
    skipped = read_perf_lock(io.StringIO(text), on_bad_lines="skip")
    assert [bad["lineno"] for bad in skipped.attrs["bad_lines"]] == [3]
    pd.testing.assert_frame_equal(skipped, whole.iloc[1:].reset_index(drop=True))
    # a header cut short names no layout: its table is read with perf's default ones
    lines = (REAL / name).read_text().splitlines()
    lines[0] = lines[0][:23]
    assert lines[0] == " contended   total wait"
    assert read_perf_lock(io.StringIO("\n".join(lines) + "\n")).equals(whole)


def test_sniff_and_detection():
    assert sniff(Paste.read(REAL / "perf-lock-contention-t.txt")) == 61
    for other in ("perf-report-self.txt", "perf-script-churn.txt.gz", "meminfo.txt", "slabinfo.txt", "vmstat.txt"):
        assert sniff(Paste.read(REAL / other)) == 0, other
    assert vmaplab.read(REAL / "perf-lock-contention-v.txt").attrs["format"] == "perf_lock"


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789. nsumkx\t\nabc:+-")), max_size=200))
def test_random_text_raises_only_parse_error(text):
    try:
        read_perf_lock(io.StringIO(text))
    except ParseError:
        pass


SMALL = "\n".join((REAL / "perf-lock-contention.txt").read_text().splitlines()[:40]) + "\n"


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_mutated_table_keeps_every_well_formed_entry(data):
    text = data.draw(mutated(SMALL))
    try:
        read_perf_lock(io.StringIO(text))
    except ParseError:
        pass
    want = Counter((int(m[1]), round(float(m[2]) * NS[m[3]], 2), m[8], m[9]) for m in map(ENTRY.match, text.splitlines()) if m)
    try:
        df = read_perf_lock(io.StringIO(text), on_bad_lines="skip")
    except ParseError:
        assert not want
        return
    callers = [c if pd.isna(o) else f"{c}+{o:#x}" for c, o in zip(df["caller"], df["caller_offset"])]
    got = Counter(zip(df["contended"].astype(int), df["total_wait_ns"], df["type"], callers))
    assert not want - got
