"""read_free on this host's free outputs (every unit option, wide, totals, two locales, busybox), the
published jc samples, the seed's free -m listings and pastes, and damaged copies."""

import io
import re
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from _line_mutations import mutated
from hypothesis import given, settings
from hypothesis import strategies as st

from vmaplab.errors import ParseError
from vmaplab.io._source import Paste
from vmaplab.io.free import VALUE_COLUMNS, FreeUnitWarning, _free_options, read_free, sniff
from vmaplab.io.meminfo import read_meminfo

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "data" / "real"
SEED = ROOT / "data" / "seed"
PUBLISHED = ROOT.parent / "shared" / "fixtures" / "published"
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MEM_TOTAL_KB = 24684084  # this host's MemTotal (data/real/meminfo.txt)


def _stream(text: str) -> io.StringIO:
    return io.StringIO(text)


def _row(df: pd.DataFrame, row: str, block: int = 0) -> pd.Series:
    return df[(df["row"] == row) & (df["block"] == block)].iloc[0]


def test_free_b_is_meminfo_in_bytes():
    df = read_free(REAL / "free-b.txt", unit="b")
    assert df.dtypes.astype(str).to_dict() == (
        {"block": "int64", "row": "string"} | dict.fromkeys(VALUE_COLUMNS, "Int64") | {"exact": "bool"}
    )
    mem = _row(df, "Mem")
    meminfo = read_meminfo(REAL / "meminfo.txt").set_index("field")["value"]
    assert mem["total"] == meminfo["MemTotal"] == 25276502016
    assert mem["used"] == 526405632 and mem["available"] == 24750096384 and mem["buff_cache"] == 833110016
    assert pd.isna(mem["buffers"]) and pd.isna(mem["cache"])
    swap = _row(df, "Swap")
    assert swap[["total", "used", "free"]].tolist() == [0, 0, 0] and swap[["shared", "available"]].isna().all()
    assert df["exact"].all()
    assert df.attrs["unit"] == "bytes" and df.attrs["unit_source"] == "unit= argument"


@pytest.mark.parametrize(
    "name, kwargs, total, unit, exact, step",
    [
        ("free-k.txt", {"unit": "k"}, MEM_TOTAL_KB * KiB, "KiB", True, KiB),
        ("free-m.txt", {"unit": "m"}, 24105 * MiB, "MiB", False, MiB),
        ("free-g.txt", {"unit": "g"}, 23 * GiB, "GiB", False, GiB),
        ("free-si.txt", {"unit": "k", "si": True}, 25276502 * 1000, "kB", False, 1000),
        ("free-h.txt", {}, 23 * GiB, "human", False, GiB),  # 23Gi
        ("free-h-si.txt", {"si": True}, 25 * 10**9, "human", False, 10**9),  # 25G
        ("free-busybox-h.txt", {"si": False}, round(23.5 * GiB), "human", False, GiB / 10),  # 23.5G
    ],
)
def test_every_unit_option(name, kwargs, total, unit, exact, step):
    df = read_free(REAL / name, **kwargs)
    assert _row(df, "Mem")["total"] == total
    assert df.attrs["unit"] == unit and (df["exact"] == exact).all()
    # free rounds each number on its own: the conversions agree with the exact KiB to the last printed digit
    # (`step`, one unit or 0.1 of it; a -m read as powers of 1000 is 1.1 GiB off)
    assert abs(_row(df, "Mem")["total"] - MEM_TOTAL_KB * KiB) < step


def test_human_sizes():
    h = read_free(REAL / "free-h.txt")
    assert _row(h, "Mem")[["used", "shared", "buff_cache"]].tolist() == [502 * MiB, round(8.7 * MiB), 794 * MiB]
    si = read_free(REAL / "free-h-si.txt", si=True)
    assert _row(si, "Mem")[["used", "shared"]].tolist() == [526 * 10**6, 9_100_000]
    busybox = read_free(REAL / "free-busybox-h.txt", si=False)
    assert _row(busybox, "Mem")["used"] == round(320.2 * MiB)
    assert _row(busybox, "Swap")[["total", "used", "free"]].tolist() == [0, 0, 0]  # bare "0"


def test_sizes_without_i_and_no_si_word_warn():
    with pytest.warns(FreeUnitWarning, match="powers of 1024"):
        df = read_free(REAL / "free-h-si.txt")
    assert _row(df, "Mem")["total"] == 25 * GiB
    # unit= states the unit of bare numbers, not whether letters are decimal: the warning says only the latter
    with pytest.warns(FreeUnitWarning) as caught:
        read_free(REAL / "free-busybox-h.txt", unit="k")
    assert len(caught) == 1 and "are decimal" in str(caught[0].message) and "unit=" not in str(caught[0].message)


def test_wide_total_lohi_committed():
    w = read_free(REAL / "free-w.txt", unit="k")
    mem = _row(w, "Mem")
    assert mem[["buffers", "cache"]].tolist() == [10516 * KiB, 803168 * KiB] and pd.isna(mem["buff_cache"])
    t = read_free(REAL / "free-t.txt", unit="k")
    assert _row(t, "Total")["total"] == _row(t, "Mem")["total"] + _row(t, "Swap")["total"]
    all_rows = read_free(REAL / "free-mwtvl.txt", unit="m")
    assert all_rows["row"].tolist() == ["Mem", "Low", "High", "Swap", "Total", "Comm"]
    commit_limit = read_meminfo(REAL / "meminfo.txt").set_index("field").loc["CommitLimit", "raw_value"]
    assert _row(all_rows, "Comm")["total"] == commit_limit // 1024 * MiB  # -v prints CommitLimit


def test_localised_output():
    with pytest.warns(FreeUnitWarning, match="read as KiB"):
        de = read_free(REAL / "free-de.txt")
    assert de["row"].tolist() == ["Mem", "Swap"]  # "Speicher:" is Mem
    assert _row(de, "Mem")[["total", "used"]].tolist() == [MEM_TOTAL_KB * KiB, 438484 * KiB]
    fr = read_free(REAL / "free-fr-h.txt")
    assert fr["row"].tolist() == ["Mem", "Swap"]  # "Échange:" is Swap
    assert _row(fr, "Mem")["shared"] == round(8.7 * MiB)  # "8,7Mi"
    dew = read_free(REAL / "free-de-h-w-t.txt")
    assert dew["row"].tolist() == ["Mem", "Swap", "Total"]  # "Gesamt:" is Total
    assert _row(dew, "Mem")[["buffers", "cache"]].tolist() == [10 * MiB, 784 * MiB]


def test_repeated_listings_are_blocks():
    df = read_free(REAL / "free-m-c3.txt", unit="m")
    assert df["block"].tolist() == [0, 0, 1, 1, 2, 2]
    assert df.loc[df["row"] == "Mem", "used"].tolist() == [501 * MiB, 445 * MiB, 428 * MiB]
    assert df.attrs["skipped_lines"] == 3  # the three headers


def test_published_jc_samples():
    with pytest.warns(FreeUnitWarning):
        plain = read_free(PUBLISHED / "jc_ubuntu-18.04_free.txt")
    assert _row(plain, "Mem")[["total", "available"]].tolist() == [2017300 * KiB, 1585920 * KiB]
    wide = read_free(PUBLISHED / "jc_ubuntu-18.04_free-w.txt", unit="k")
    assert _row(wide, "Mem")[["buffers", "cache", "available"]].tolist() == [61596 * KiB, 898640 * KiB, 6483996 * KiB]
    assert _row(wide, "Swap")["total"] == 2097152 * KiB


@pytest.mark.parametrize("name, used", [("before", 936), ("64threads", 1417), ("128threads", 2556), ("256threads", 6741)])
def test_seed_free_m(name, used):
    df = read_free(SEED / f"free-m-{name}.txt", unit="m")
    assert _row(df, "Mem")[["total", "used"]].tolist() == [64172 * MiB, used * MiB]


def test_seed_paste_takes_the_unit_from_the_prompts():
    df = read_free(SEED / "pagetable-thread.txt", unit="k")  # the 'free -m' prompts win over unit=
    assert df["block"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert df.loc[df["row"] == "Mem", "used"].tolist() == [936 * MiB, 1417 * MiB, 2556 * MiB, 6741 * MiB]
    assert df.attrs["unit"] == "MiB" and df.attrs["unit_source"] == "command 'free -m'"
    assert [u["line"] for u in df.attrs["units"]] == [23, 42, 55, 68]
    assert df.attrs["skipped_lines"] == 74 - 8  # every non-blank line but the eight rows


def test_prompt_with_options_in_a_paste():
    text = "root@vm:~# free -h --si\n" + (REAL / "free-h-si.txt").read_text()
    df = read_free(_stream(text))  # no warning: --si is on the command line
    assert _row(df, "Mem")["total"] == 25 * 10**9 and df.attrs["units"][0]["si"]


@pytest.mark.parametrize("prompt", ["[root@fedora ~]# ", "[user@host work]$ ", "user@host ~ $ ", "host:~ # ",
                                    "user@host:~$ ", "(venv) user@host:~/x$ "])  # fmt: skip
def test_prompts_of_the_common_distributions_state_the_unit(prompt):
    # Fedora/RHEL's default PS1 "[\u@\h \W]\$ ", Gentoo's "\u@\h \w \$ ", SUSE's root "\h:\w # ", Debian's
    # "\u@\h:\w\$ ": free -m under any of them is in MiB (under Fedora's, Gentoo's and SUSE's it was read as KiB)
    real = (REAL / "free-m.txt").read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no command line states the unit" warning: the paste states it
        df = read_free(_stream(prompt + "free -m\n" + real))
    assert df.attrs["unit"] == "MiB" and df.attrs["unit_source"] == "command 'free -m'"
    assert _row(df, "Mem")["total"] == int(real.split("\n")[1].split()[1]) * MiB


@pytest.mark.parametrize(
    "command, expected",
    [
        ("free -m", (2, False, False)),
        ("free", (1, False, False)),
        ("sudo free -hw --si", (1, True, True)),
        ("watch -n 1 free -g", (3, False, False)),
        ("free -s 1 -c 3 -m", (2, False, False)),
        ("free -c3 -b", (0, False, False)),
        ("busybox free -h", (1, True, False)),
        ("/usr/bin/free --mebi -t", (2, False, False)),
        ("free --giga", (3, False, True)),
        ("free --tebi", (4, False, False)),
        ("sort -h /proc/allocinfo", None),
    ],
)
def test_free_command_options(command, expected):
    assert _free_options(command) == expected


def test_bad_rows():
    lines = (REAL / "free-m.txt").read_text().splitlines()
    with pytest.raises(ParseError, match=r"line 2: expected a free row 'Mem:' with 6 \(one under each header column\)"):
        read_free(_stream("\n".join([lines[0], lines[1] + "  77", lines[2]])), unit="m")
    with pytest.raises(ParseError, match=r"line 3: expected a free row 'Swap:' with 3 numbers"):
        read_free(_stream("\n".join([lines[0], lines[1], lines[2][:-12]])), unit="m")
    df = read_free(_stream("\n".join([lines[0], lines[1], "Swap:  0  0  zero"])), unit="m", on_bad_lines="skip")
    assert df["row"].tolist() == ["Mem"] and [b["lineno"] for b in df.attrs["bad_lines"]] == [3]
    de = (REAL / "free-de-h-w-t.txt").read_text().splitlines()
    de[1] = de[1].replace("10Mi", "")  # six sizes under the seven-word German -w header
    with pytest.raises(ParseError, match=r"line 2: expected a free row 'Mem:' with 7"):
        read_free(_stream("\n".join(de)))


def test_a_last_row_cut_in_its_label_is_bad():
    # a capture cut inside its last label, ending there or saved with the newline an editor adds: no prose
    text = (REAL / "free-m.txt").read_text()
    for cut in ("Sw", "Sw\n", "Swap\n"):
        pasted = text[: text.rindex("Swap:")] + cut
        with pytest.raises(ParseError, match=rf"<stream>, line 3: expected a free row .*, got '{cut.strip()}'"):
            read_free(_stream(pasted), unit="m")
        df = read_free(_stream(pasted), unit="m", on_bad_lines="skip")
        assert df["row"].tolist() == ["Mem"] and [b["lineno"] for b in df.attrs["bad_lines"]] == [3]
    # prose after a whole listing is still prose
    df = read_free(_stream(text + "Thanks,\n-- \nroot@vm:~# \n"), unit="m")
    assert df.attrs["bad_lines"] == [] and df.attrs["skipped_lines"] == 4


@pytest.mark.parametrize(
    ("edit", "unit"),
    [
        (lambda mem: mem.replace("24105", "24105.7"), "m"),  # a fraction without a unit letter
        (lambda mem: mem.replace("24105", "999999999"), "p"),  # 999999999 PiB does not fit in int64 bytes
        (lambda mem: mem.replace("Mem:", "Mem "), "m"),  # the colon lost: a damaged row, not prose
    ],
    ids=["fraction", "overflow", "no-colon"],
)
def test_values_that_cannot_be_bytes_are_bad(edit, unit):
    lines = (REAL / "free-m.txt").read_text().splitlines()
    lines[1] = edit(lines[1])
    with pytest.raises(ParseError, match=r"line 2: expected .*(?:fit in 64 bits|'Mem:')"):
        read_free(_stream("\n".join(lines)), unit=unit)
    df = read_free(_stream("\n".join(lines)), unit=unit, on_bad_lines="skip")
    assert df["row"].tolist() == ["Swap"] and [b["lineno"] for b in df.attrs["bad_lines"]] == [2]


def test_label_missing_from_the_table_is_kept_next_to_a_header():
    lines = (REAL / "free-de.txt").read_text().replace("Speicher:", "Memoria: ")
    with pytest.warns(FreeUnitWarning):
        df = read_free(_stream(lines))
    assert df["row"].tolist() == ["Memoria", "Swap"] and _row(df, "Memoria")["total"] == MEM_TOTAL_KB * KiB


def test_no_free_output():
    with pytest.raises(ParseError) as err:
        read_free(REAL / "meminfo.txt")
    assert err.value.lineno == 1 and err.value.line.startswith("MemTotal:")
    with pytest.raises(ValueError, match="unit must be"):
        read_free(REAL / "free-m.txt", unit="MiB")


def test_sniff_counts_only_free_rows():
    assert sniff(Paste.read(SEED / "pagetable-thread.txt")) == 8
    assert sniff(Paste.read(REAL / "free-mwtvl.txt")) == 6 and sniff(Paste.read(REAL / "free-fr-h.txt")) == 2
    others = [REAL / f for f in ("meminfo.txt", "vmstat.txt", "slabinfo.txt", "vmallocinfo-kptr1.txt")]
    others += [SEED / "allocinfo-256threads.txt", PUBLISHED / "procfs_meminfo.txt"]
    assert [sniff(Paste.read(p)) for p in others] == [0] * len(others)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_parse_error(text):
    for mode in ("error", "skip"):
        try:
            read_free(_stream(text), on_bad_lines=mode, unit="k", si=False)
        except ParseError:
            pass


ROW_LINE = re.compile(r"^(Mem|Swap|Total|Low|High|Comm):((?:[ \t]+\d{1,15})+)[ \t]*$")
ROWS = {"Mem": {6, 7}, "Swap": {3}, "Total": {3}, "Low": {3}, "High": {3}, "Comm": {3}}


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["free-t.txt", "free-mwtvl.txt", "free-m-c3.txt"]).flatmap(lambda f: mutated((REAL / f).read_text())))
def test_damaged_copies(text):
    try:
        read_free(_stream(text), unit="k", si=False)
    except ParseError:
        pass
    header_words = {len(line.split()) for line in text.splitlines() if line.split()[:2] == ["total", "used"]}
    good = Counter()
    for m in map(ROW_LINE.match, text.splitlines()):
        values = m.group(2).split() if m else []
        # a Mem row is well formed when its count fits every header of the text
        if m and len(values) in ROWS[m.group(1)] and (m.group(1) != "Mem" or header_words <= {len(values)}):
            good[(m.group(1), int(values[0]) * KiB)] += 1
    if not good:  # every row damaged or deleted: nothing to keep, and nothing else may be raised
        try:
            read_free(_stream(text), unit="k", si=False, on_bad_lines="skip")
        except ParseError:
            pass
        return
    df = read_free(_stream(text), unit="k", si=False, on_bad_lines="skip")
    first = df["total"].fillna(df["used"])
    got = Counter(zip(df["row"], first))
    assert not good - got, f"well-formed rows missing from the frame: {good - got}"
