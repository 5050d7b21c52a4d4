"""read_slabinfo on this host's /proc/slabinfo, two published ones, pastes and damaged copies."""

import io
import re
from collections import Counter
from pathlib import Path

import pytest
from _line_mutations import mutated
from hypothesis import given, settings
from hypothesis import strategies as st

from vmaplab.errors import ParseError
from vmaplab.io._source import Paste
from vmaplab.io.slabinfo import COLUMNS, read_slabinfo, sniff

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT.parent / "shared" / "fixtures" / "published"
REAL = ROOT / "data" / "real" / "slabinfo.txt"
PROCFS = PUBLISHED / "procfs_slabinfo.txt"
JC = PUBLISHED / "jc_linux-proc_slabinfo.txt"

WELL_FORMED = re.compile(
    r"^(\S+)((?:[ \t]+\d{1,18}){5})[ \t]+:[ \t]+tunables((?:[ \t]+\d{1,18}){3})[ \t]+:[ \t]+slabdata((?:[ \t]+\d{1,18}){3})[ \t]*$"
)


def _stream(text: str) -> io.StringIO:
    return io.StringIO(text)


def test_this_host_capture():
    df = read_slabinfo(REAL)
    assert df.dtypes.astype(str).to_dict() == {"block": "int64", "name": "string"} | dict.fromkeys(COLUMNS, "int64")
    assert len(df) == 235 and df["name"].is_unique and (df["block"] == 0).all()
    row = df.set_index("name").loc["vmap_area", COLUMNS].tolist()
    assert row == [11853, 12096, 72, 56, 1, 0, 0, 0, 216, 216, 0]
    assert df.attrs["version"] == "2.1" and df.attrs["skipped_lines"] == 2  # the version line and the header
    assert df["name"].iloc[-1] == "kmem_cache"


@pytest.mark.parametrize(
    "path, caches, vmap_area_objsize", [(REAL, 235, 72), (PROCFS, 300, 400), (JC, 145, 64)]
)
def test_slub_listings_are_consistent(path, caches, vmap_area_objsize):
    df = read_slabinfo(path)
    assert len(df) == caches
    assert df.set_index("name").loc["vmap_area", "objsize"] == vmap_area_objsize
    # SLUB: every slab holds objperslab objects, SLAB tunables print as zeros
    assert (df["num_slabs"] * df["objperslab"] == df["num_objs"]).all()
    assert (df["active_objs"] <= df["num_objs"]).all()
    assert (df[["limit", "batchcount", "sharedfactor", "sharedavail"]] == 0).all().all()


def test_paste_of_two_listings():
    real = REAL.read_text()
    paste = "root@vm:~# cat /proc/slabinfo\n" + real + "\nand later:\nroot@vm:~# cat /proc/slabinfo\n" + real
    df = read_slabinfo(_stream(paste))
    assert df["block"].value_counts().sort_index().tolist() == [235, 235]
    assert df.attrs["skipped_lines"] == 7  # two prompts, prose, two version lines, two headers


def test_columns_come_from_the_header_by_name():
    lines = REAL.read_text().splitlines()
    lines[1] = lines[1].replace("<limit> <batchcount>", "<batchcount> <limit>")
    # a made-up cache with distinct numbers, so that a column read by position rather than by name shows
    lines.append("toy_cache   1  2  3  4  5 : tunables  60  30  8 : slabdata  1  1  0")
    df = read_slabinfo(_stream("\n".join(lines)))
    assert df.set_index("name").loc["toy_cache", ["limit", "batchcount", "sharedfactor"]].tolist() == [30, 60, 8]


def test_without_header_the_2_1_layout_is_assumed():
    lines = REAL.read_text().splitlines()[2:]
    df = read_slabinfo(_stream("\n".join(lines)))
    assert len(df) == 235 and df.attrs["version"] is None


def test_truncated_and_bad_lines(tmp_path):
    path = tmp_path / "slabinfo-cut.txt"
    path.write_text(REAL.read_text()[:-40])
    with pytest.raises(ParseError, match=r"slabinfo-cut.txt, line 237: expected a slabinfo line '<name> <active_objs>"):
        read_slabinfo(path)
    lines = REAL.read_text().splitlines()
    lines[1] = lines[1].replace("tunables", "tunabXes")
    df = read_slabinfo(_stream("\n".join(lines)), on_bad_lines="skip")
    assert len(df) == 235 and [b["lineno"] for b in df.attrs["bad_lines"]] == [2]
    assert "header naming every column" in df.attrs["bad_lines"][0]["expected"]
    lines = REAL.read_text().splitlines()
    lines[100] = lines[100].split()[0]  # a cache line cut after its name, between two others
    df = read_slabinfo(_stream("\n".join(lines)), on_bad_lines="skip")
    assert len(df) == 234 and [b["lineno"] for b in df.attrs["bad_lines"]] == [101] and df["block"].eq(0).all()


def test_prose_is_not_a_bad_line():
    text = "After 3 runs the caches were:\n" + REAL.read_text() + "Cheers, Uladzislau\n"
    df = read_slabinfo(_stream(text))
    assert len(df) == 235 and df.attrs["bad_lines"] == []


def test_no_slabinfo_at_all():
    with pytest.raises(ParseError) as err:
        read_slabinfo(ROOT / "data" / "real" / "meminfo.txt")
    assert err.value.lineno == 1 and "tunables" in err.value.expected


def test_sniff_counts_only_slabinfo():
    assert sniff(Paste.read(REAL)) == 235 and sniff(Paste.read(PROCFS)) == 300
    others = [ROOT / "data" / "real" / f for f in ("meminfo.txt", "vmstat.txt", "free-mwtvl.txt", "vmallocinfo-kptr1.txt")]
    others += [ROOT / "data" / "seed" / f for f in ("pagetable-thread.txt", "perf-report-6.7.txt")]
    assert [sniff(Paste.read(p)) for p in others] == [0] * len(others)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_parse_error(text):
    for mode in ("error", "skip"):
        try:
            read_slabinfo(_stream(text), on_bad_lines=mode)
        except ParseError:
            pass


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([REAL, JC]).flatmap(lambda p: mutated(p.read_text())))
def test_damaged_copies(text):
    try:
        read_slabinfo(_stream(text))
    except ParseError:
        pass
    df = read_slabinfo(_stream(text), on_bad_lines="skip")
    good = Counter()
    for m in map(WELL_FORMED.match, text.splitlines()):
        if m:
            good[(m.group(1), *map(int, " ".join(m.groups()[1:]).split()))] += 1
    got = Counter(zip(df["name"], *(df[c] for c in COLUMNS)))
    assert not good - got, f"well-formed lines missing from the frame: {good - got}"
