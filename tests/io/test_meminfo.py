"""read_meminfo on this host's /proc/meminfo, the published procfs sample, pastes and damaged copies."""

import io
import re
import textwrap
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from _line_mutations import mutated
from hypothesis import given, settings
from hypothesis import strategies as st

from vmaplab.errors import BadLineWarning, ParseError
from vmaplab.io._source import Paste
from vmaplab.io.free import read_free
from vmaplab.io.meminfo import read_meminfo, sniff

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
REAL = ROOT / "data" / "real" / "meminfo.txt"
PROCFS = SHARED / "fixtures" / "published" / "procfs_meminfo.txt"
KiB = 1024

# What a well-formed /proc/meminfo line is, written independently of the reader.
WELL_FORMED = re.compile(r"^([A-Za-z][A-Za-z0-9_()]*):[ \t]*(\d{1,15})(?:[ \t]+kB|(?<=\d)(?=[ \t]*$))[ \t]*$")


def _stream(lines: list[str]) -> io.StringIO:
    return io.StringIO("\n".join(lines) + "\n")


def _values(df: pd.DataFrame) -> pd.Series:
    return df.set_index("field")["value"]


def test_published_procfs_sample():
    df = read_meminfo(PROCFS)
    assert df.dtypes.astype(str).to_dict() == {
        "block": "int64", "field": "string", "value": "int64", "unit": "string", "raw_value": "int64",
    }
    assert len(df) == 45 and (df["block"] == 0).all()
    v = _values(df)
    assert v["MemTotal"] == 15666184 * KiB
    assert v["VmallocTotal"] == 34359738367 * KiB  # 32 TiB - 1 byte of x86_64 4-level vmalloc space
    assert v["Active(anon)"] == 267256 * KiB
    assert v["Hugepagesize"] == 2 << 20
    huge = df[df["field"].str.startswith("HugePages_")]
    assert huge["field"].tolist() == ["HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"]
    assert (huge["unit"] == "count").all() and (huge["value"] == 0).all()
    assert (df.loc[~df.index.isin(huge.index), "unit"] == "bytes").all()
    assert (df["value"] == df["raw_value"] * df["unit"].map({"bytes": KiB, "count": 1})).all()
    assert df.attrs["format"] == "meminfo" and df.attrs["skipped_lines"] == 0 and df.attrs["bad_lines"] == []


def test_this_host_agrees_with_free_b():
    df = read_meminfo(REAL)
    v = _values(df)
    assert len(df) == 54 and df["field"].is_unique
    assert v["MemTotal"] == 24684084 * KiB
    assert v["SwapTotal"] == 0 and v["DirectMap1G"] == 25165824 * KiB
    # free -b prints MemTotal in bytes (procps reads it from /proc/meminfo)
    fb = read_free(ROOT / "data" / "real" / "free-b.txt", unit="b").set_index("row")
    assert fb.loc["Mem", "total"] == v["MemTotal"]


def test_no_space_after_a_long_name():
    # The line psutil's tests quote for a name filling the padding (psutil issue #2809).
    text = REAL.read_text().splitlines()[:3] + ["ShadowCallStack:10373888 kB"]
    df = read_meminfo(_stream(text))
    assert _values(df)["ShadowCallStack"] == 10373888 * KiB


def test_paste_with_prose_prompts_and_quoting_gives_blocks():
    host = REAL.read_text()
    published = PROCFS.read_text()
    paste = (
        "Before the test:\n\nroot@vm:~# cat /proc/meminfo\n"
        + textwrap.indent(host, "> ")
        + "\nAnd on the other box:\n$ cat /proc/meminfo\n"
        + published
    )
    df = read_meminfo(_stream(paste.splitlines()))
    assert df.groupby("block").size().tolist() == [54, 45]
    assert df.groupby("block")["value"].first().tolist() == [24684084 * KiB, 15666184 * KiB]
    assert df.attrs["skipped_lines"] == 4  # two prose lines, two prompts; blank lines are not counted


def test_back_to_back_snapshots_split_where_a_field_repeats():
    df = read_meminfo(_stream(REAL.read_text().splitlines() * 3))
    assert df["block"].value_counts().sort_index().tolist() == [54, 54, 54]


def test_other_tools_rows_are_prose_not_bad_fields():
    # the seed paste holds free -m rows ("Mem: 64172 936 ...") and allocinfo lines, but no meminfo
    with pytest.raises(ParseError) as err:
        read_meminfo(ROOT / "data" / "seed" / "pagetable-thread.txt")
    assert err.value.lineno == 1 and "/proc/meminfo" in err.value.expected


def test_truncated_file_names_the_line(tmp_path):
    path = tmp_path / "meminfo-cut.txt"
    path.write_text(REAL.read_text()[:-8])  # cut inside the last value: "DirectMap1G:    251658"
    with pytest.raises(ParseError, match=r"meminfo-cut.txt, line 54: expected '<value> kB'"):
        read_meminfo(path)


def test_bad_lines_error_warn_skip():
    lines = REAL.read_text().splitlines()
    lines[1] = "MemFree:        2361x564 kB"
    lines[5] = "Active:"  # an English word, but between two fields: a field cut short, not prose
    lines[7] = "Active(anon):"
    lines[9] = "Inact ive(anon):      4 kB"  # garbled between two fields
    with pytest.raises(ParseError, match=r"line 2: expected a /proc/meminfo line"):
        read_meminfo(_stream(lines))
    with pytest.warns(BadLineWarning, match="skipped 4 bad line"):
        df = read_meminfo(_stream(lines), on_bad_lines="warn")
    assert len(df) == 50 and "MemFree" not in set(df["field"]) and df["block"].eq(0).all()
    assert [b["lineno"] for b in df.attrs["bad_lines"]] == [2, 6, 8, 10]
    assert df.attrs["skipped_lines"] == 0
    assert read_meminfo(_stream(lines), on_bad_lines="skip").attrs["bad_lines"] == df.attrs["bad_lines"]
    # the same word as prose above the listing is skipped, not bad
    prose = read_meminfo(_stream(["Active:", *REAL.read_text().splitlines()]))
    assert len(prose) == 54 and prose.attrs["skipped_lines"] == 1 and prose.attrs["bad_lines"] == []


def test_no_meminfo_at_all():
    with pytest.raises(ParseError) as err:
        read_meminfo(ROOT / "data" / "real" / "vmstat.txt")
    assert err.value.lineno == 1 and err.value.line.startswith("nr_free_pages")
    with pytest.raises(ParseError) as err:
        read_meminfo(_stream(["", "  "]))
    assert err.value.lineno is None


def test_sniff_counts_only_meminfo():
    def count(path):
        return sniff(Paste.read(path))

    assert count(REAL) == 54 and count(PROCFS) == 45
    others = [ROOT / "data" / "real" / f for f in ("vmstat.txt", "slabinfo.txt", "free-mwtvl.txt", "free-de.txt")]
    others += [ROOT / "data" / "seed" / f for f in ("pagetable-thread.txt", "allocinfo-256threads.txt")]
    assert [count(p) for p in others] == [0] * len(others)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_parse_error(text):
    for mode in ("error", "skip"):
        try:
            read_meminfo(_stream(text.splitlines()), on_bad_lines=mode)
        except ParseError:
            pass


@settings(max_examples=120, deadline=None)
@given(st.sampled_from([REAL, PROCFS]).flatmap(lambda p: mutated(p.read_text())))
def test_damaged_copies(text):
    try:
        read_meminfo(_stream(text.splitlines()))
    except ParseError:
        pass
    df = read_meminfo(_stream(text.splitlines()), on_bad_lines="skip")
    good = Counter()
    for line in text.splitlines():
        m = WELL_FORMED.match(line)
        if m and (line.rstrip().endswith("kB") or m.group(1).startswith("HugePages_")):
            good[(m.group(1), int(m.group(2)))] += 1
    got = Counter(zip(df["field"], df["raw_value"]))
    assert not good - got, f"well-formed lines missing from the frame: {good - got}"
    bad = {b["lineno"] for b in df.attrs["bad_lines"]}
    assert len(df) + len(bad) + df.attrs["skipped_lines"] == sum(1 for line in text.splitlines() if line.strip())
