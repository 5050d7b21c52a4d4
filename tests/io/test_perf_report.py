"""read_perf_report on this host's perf report captures (stdio variants and the interactive screen), the
seed's pasted tables, damaged copies and random text."""

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
from vmaplab.io.perf_report import read_perf_report, sniff

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "data" / "real"
SEED = ROOT / "data" / "seed"
SAMPLES = 8309  # perf record's count for churn.data (data/real/SOURCES.md)
COLS = ["children_pct", "self_pct", "command", "shared_object", "symbol", "symbol_kind"]

# A stdio entry under "[Children] Self/Overhead Command Shared Object Symbol", and a seed entry (no
# command), written independently of the reader
ENTRY = re.compile(r"^\s+(\d+\.\d\d)%\s+(?:(\d+\.\d\d)%\s+)?(\S+)\s+\[?([^\s\]]+)\]?\s+\[([k.])\] (\S+)$")
SEED_ENTRY = re.compile(r"^\s+\d+\.\d\d%\s+\d+\.\d\d%\s+\[\w+\]\s+\[k\] \S+$")


def _rows(df: pd.DataFrame) -> list[tuple]:
    return list(df[COLS].itertuples(index=False, name=None))


def test_stdio_children():
    df = read_perf_report(REAL / "perf-report-children.txt")
    assert df.dtypes.astype(str).to_dict() == {
        "block": "int64", "event": "string", "children_pct": "Float64", "self_pct": "Float64",
        "samples": "Int64", "command": "string", "shared_object": "string", "symbol": "string", "symbol_kind": "string",
    }
    assert len(df) == 808 and (df["block"] == 0).all() and (df["event"] == "cpu-clock").all()
    top = df.iloc[0]
    assert (top["children_pct"], top["self_pct"], top["command"], top["shared_object"], top["symbol"], top["symbol_kind"]) == (
        83.51, 1.44, "churn", "kernel.kallsyms", "do_syscall_64", "k",
    )
    clone3 = df[df["symbol"] == "clone3"].iloc[0]
    assert (clone3["shared_object"], clone3["symbol_kind"], clone3["children_pct"]) == ("libc.so.6", ".", 39.39)
    assert (df["children_pct"] >= df["self_pct"] - 0.01).all()
    assert df["samples"].isna().all() and not df["shared_object"].str.startswith("[").any()
    assert df.attrs["event"] == "cpu-clock" and df.attrs["samples"] == 8000 and df.attrs["samples_exact"] is False
    assert df.attrs["event_count"] == 830_900_000 and df.attrs["lost_samples"] == 0
    # the 11 '#' lines above the table and the 3 below it are skipped, nothing is bad
    assert df.attrs["skipped_lines"] == 14 and df.attrs["bad_lines"] == []
    vmalloc = df[df["symbol"] == "__vmalloc_node_range_noprof"].iloc[0]
    assert vmalloc["children_pct"] == 4.49 and vmalloc["self_pct"] == 0.25


def test_call_graphs_are_never_entries():
    # perf orders entries of equal share differently with and without graphs: compare as sets
    plain = sorted(_rows(read_perf_report(REAL / "perf-report-children.txt")))
    assert sorted(_rows(read_perf_report(REAL / "perf-report-children-graph.txt.gz"))) == plain
    self_plain = read_perf_report(REAL / "perf-report-self.txt")
    assert len(self_plain) == 547 and self_plain["children_pct"].isna().all()
    for name in ("perf-report-self-graph.txt", "perf-report-self-caller.txt", "perf-report-self-folded.txt"):
        df = read_perf_report(REAL / name)
        assert sorted(_rows(df)) == sorted(_rows(self_plain)), name
        assert df.attrs["bad_lines"] == []


def test_sample_counts_add_up():
    n = read_perf_report(REAL / "perf-report-children-n.txt")
    assert _rows(n) == _rows(read_perf_report(REAL / "perf-report-children.txt"))
    # -n counts the samples whose leaf is the entry: every sample once
    assert n["samples"].sum() == SAMPLES
    assert ((n["samples"] * 100 / SAMPLES - n["self_pct"]).abs() <= 0.00501).all()
    dso_sym = read_perf_report(REAL / "perf-report-self-n-dso-sym.txt")
    assert dso_sym["command"].isna().all() and dso_sym["samples"].sum() == SAMPLES
    assert dso_sym.loc[dso_sym["symbol"] == "alloc_vmap_area", "shared_object"].tolist() == ["kernel.kallsyms"]


def test_sort_dso_sym_with_children():
    df = read_perf_report(REAL / "perf-report-children-dso-sym.txt")
    assert len(df) == 752 and df["command"].isna().all()
    per_comm = read_perf_report(REAL / "perf-report-children.txt")
    # a symbol seen by one command only has the same shares in both reports
    single = per_comm.groupby(["shared_object", "symbol"]).filter(lambda g: len(g) == 1)
    both = single.merge(df, on=["shared_object", "symbol", "symbol_kind"], suffixes=("", "_d"))
    assert len(both) > 500
    assert (both["self_pct"] == both["self_pct_d"]).all() and (both["children_pct"] == both["children_pct_d"]).all()


def test_period_and_other_sort_keys():
    df = read_perf_report(REAL / "perf-report-self-period-pid-sym.txt")
    assert list(df.columns[-2:]) == ["period", "pid_command"]
    assert df.dtypes["period"] == "Int64" and df.dtypes["pid_command"] == "string"
    assert len(df) == 1643 and df["command"].isna().all() and df["shared_object"].isna().all()
    # the periods add up to the report's event count
    assert df["period"].sum() == df.attrs["event_count"] == 830_900_000
    assert df.loc[0, ["self_pct", "period", "pid_command", "symbol"]].tolist() == [4.79, 39_800_000, "20327:churn", "_raw_spin_unlock_irqrestore"]


def test_interactive_screen():
    stdio = read_perf_report(REAL / "perf-report-children.txt")
    tui = read_perf_report(REAL / "perf-report-tui-children.txt")
    assert _rows(tui) == _rows(stdio)[: len(tui)] and len(tui) == 27
    assert tui.attrs["samples"] == 8000 and tui.attrs["event_count"] == 830_900_000
    # expanded first entry: its call-chain line ("   + 82.07% do_syscall_64") is not an entry
    expanded = read_perf_report(REAL / "perf-report-tui-children-expanded.txt")
    assert _rows(expanded) == _rows(stdio)[:26] and expanded.attrs["bad_lines"] == []
    self_tui = read_perf_report(REAL / "perf-report-tui-self-expanded.txt")
    assert _rows(self_tui) == _rows(read_perf_report(REAL / "perf-report-self.txt"))[:26]
    assert self_tui["children_pct"].isna().all()
    # title line, header line and the "Tip:"/help line are skipped
    assert self_tui.attrs["skipped_lines"] == 3



def test_interactive_screen_by_shared_object():
    # data/real: the stdio report and two copies of the interactive screen of one recording (--sort dso).
    # The screen's call chains hold unmarked lines ("   1.62% fdget_pos", "     1.89% 0x5566e5123985",
    # "        do_syscall_64") and, once the cursor moved, a scrollbar in the last column: none is an entry
    # or a bad line, and the scrollbar is not part of the shared object
    stdio = read_perf_report(REAL / "perf-report-sort-dso-graph.txt")
    assert list(stdio.shared_object) == ["libc.so.6", "kernel.kallsyms", "dd", "unknown", "ld-linux-x86-64.so.2"]
    assert stdio.attrs["bad_lines"] == [] and stdio.symbol.isna().all()
    cols = ["children_pct", "self_pct", "shared_object"]
    rows = list(stdio[cols].itertuples(index=False, name=None))
    every = read_perf_report(REAL / "perf-report-tui-dso-expanded-all.txt")
    assert list(every[cols].itertuples(index=False, name=None)) == rows[:1] and every.attrs["bad_lines"] == []
    lines = (REAL / "perf-report-tui-dso-scrollbar.txt").read_text().splitlines()
    assert lines[4].endswith(" \u2592") and lines[5].split() == ["1.89%", "0x5566e5123985", "\u2592"]
    two = read_perf_report(REAL / "perf-report-tui-dso-scrollbar.txt")
    assert list(two[cols].itertuples(index=False, name=None)) == rows and two.attrs["bad_lines"] == []
    # with its expand mark lost, the "dd" entry's leaves hang under no entry: each is a bad line
    assert lines[4].startswith("-   10.81%")
    lines[4] = " " + lines[4][1:]
    cut = read_perf_report(io.StringIO("\n".join(lines) + "\n"), on_bad_lines="skip")
    assert [bad["lineno"] for bad in cut.attrs["bad_lines"]] == list(range(6, 14))
    assert list(cut[cols].itertuples(index=False, name=None)) == rows


@pytest.mark.parametrize("name", ["perf-report-sort-dso.txt", "perf-report-sort-dso-graph.txt"])
def test_blanked_entry_without_a_symbol_column_is_bad(name):
    # a report by shared object (data/real) has no symbol to give an entry its shape: an entry with both
    # percentages blanked looked like an indented call-graph name and was dropped. Each one, in turn:
    lines = (REAL / name).read_text().splitlines()
    entries = [i for i, line in enumerate(lines) if re.match(r"^\s+\d+\.\d\d%\s+\d+\.\d\d%\s+\S+\s*$", line)]
    assert len(entries) == 5
    for i in entries:
        damaged = list(lines)
        damaged[i] = re.sub(r"\d+\.\d\d%", lambda m: " " * len(m[0]), lines[i])
        with pytest.raises(ParseError, match=rf"line {i + 1}: expected a perf report entry"):
            read_perf_report(io.StringIO("\n".join(damaged) + "\n"))
        skipped = read_perf_report(io.StringIO("\n".join(damaged) + "\n"), on_bad_lines="skip")
        assert len(skipped) == 4 and [bad["lineno"] for bad in skipped.attrs["bad_lines"]] == [i + 1]


def test_seed_tables():
    old = read_perf_report(SEED / "perf-report-6.7.txt")
    new = read_perf_report(SEED / "perf-report-vmap-nodes.txt")
    assert (len(old), len(new)) == (17, 20)
    lock = "native_queued_spin_lock_slowpath"
    assert old.set_index("symbol").loc[lock, ["children_pct", "self_pct"]].tolist() == [93.35, 93.07]
    assert new.set_index("symbol").loc[lock, "self_pct"] == 16.51
    assert set(old["shared_object"]) == {"kernel", "test_vmalloc"} and old["command"].isna().all()
    assert (old["symbol_kind"] == "k").all() and old["event"].isna().all() and old.attrs["skipped_lines"] == 0


def test_quoted_cover_letter_has_two_blocks():
    df = read_perf_report(SEED / "v3-cover-quoted.txt")
    assert df.groupby("block").size().tolist() == [17, 20]
    assert _rows(df[df["block"] == 0]) == _rows(read_perf_report(SEED / "perf-report-6.7.txt"))
    assert _rows(df[df["block"] == 1]) == _rows(read_perf_report(SEED / "perf-report-vmap-nodes.txt"))
    # prose, markers and prompts are skipped, "16.51% percent from 93.07%." included; nothing is bad
    lines = Paste.read(SEED / "v3-cover-quoted.txt").lines
    prose = [ln for ln in lines if ln.strip() and not SEED_ENTRY.match(ln)]
    assert df.attrs["skipped_lines"] == len(prose) and df.attrs["bad_lines"] == []
    assert "16.51% percent from 93.07%." in prose


def test_paste_with_prompt_and_header_pasted_with_single_spaces():
    # the first entries of this host's --no-children report, pasted with collapsed white space
    # after a shell prompt and a header typed back by hand
    rows = (REAL / "perf-report-self.txt").read_text().splitlines()[11:14]
    paste = "root@vm:~# perf report --stdio --no-children -g none | head\n# Overhead Command Shared Object Symbol\n"
    paste += "\n".join(" ".join(r.split()) for r in rows) + "\nthen the same again:\n" + "\n".join(rows) + "\n"
    df = read_perf_report(io.StringIO(paste))
    assert df["block"].tolist() == [0, 0, 0, 1, 1, 1]
    assert df["symbol"].tolist()[:3] == ["_raw_spin_unlock_irqrestore", "unmap_page_range", "finish_task_switch.isra.0"]
    assert df["children_pct"].isna().all() and df["self_pct"].tolist()[:2] == [9.95, 4.44]
    assert (df["command"] == "churn").all()


def test_command_and_shared_object_with_spaces():
    # a real profile of a copy of `yes` named "yes worker": the command and the program's own shared object
    # both hold a space; the dots under the --stdio header say where each column starts. The oracle is
    # perf's own split of the same entries, with `-t '|'` (data/real/SOURCES.md)
    df = read_perf_report(REAL / "perf-report-comm-with-space.txt")
    lines = (REAL / "perf-report-comm-with-space.psv").read_text().splitlines()
    rows = [[cell.strip() for cell in line.split("|")] for line in lines if line and not line.startswith("#")]
    assert len(df) == len(rows) == 59
    want = [(float(pct[:-1]), comm, dso.strip("[]"), sym[4:], sym[1]) for pct, comm, dso, sym in rows]
    got = list(df[["self_pct", "command", "shared_object", "symbol", "symbol_kind"]].itertuples(index=False, name=None))
    assert got == want
    assert (df["command"] == "yes worker").sum() == 52 and (df["shared_object"] == "yes worker").sum() == 30


def _as_set(df: pd.DataFrame) -> pd.DataFrame:
    """Entries sorted by every column: two perf report runs on one perf.data order ties differently."""
    return df.sort_values(list(df.columns)).reset_index(drop=True)


@pytest.mark.parametrize(
    "name, sep, entries",
    [("perf-report-sep-children.txt.gz", "|", 294), ("perf-report-sep-self-n.txt", ",", 271)],
)
def test_field_separator_reads_as_the_same_reports_stdio(name, sep, entries):
    # perf report -t SEP: one profile read with '|' (children, call graphs below each entry) and with ','
    # (--no-children -n --sort dso,sym); the oracle is perf's own --stdio table of the same perf.data
    # (data/real/SOURCES.md)
    df = read_perf_report(REAL / name)
    stdio = read_perf_report(REAL / name.replace(".txt", "-stdio.txt").replace(".gz", ""))
    assert len(df) == len(stdio) == entries and df.attrs["bad_lines"] == []
    pd.testing.assert_frame_equal(_as_set(df), _as_set(stdio))
    header = f"# {'Children' if sep == '|' else 'Overhead'}{sep}"
    assert any(line.startswith(header) for line in Paste.read(REAL / name).lines)
    assert df.attrs["samples"] == 40000 and df.attrs["event_count"] == 10043750000


def test_field_separator_oracle_of_spaces_in_names():
    # the `-t '|'` file that is the oracle of test_command_and_shared_object_with_spaces is itself a report
    psv = read_perf_report(REAL / "perf-report-comm-with-space.psv")
    assert len(psv) == 59 and (psv["command"] == "yes worker").sum() == 52
    pd.testing.assert_frame_equal(_as_set(psv), _as_set(read_perf_report(REAL / "perf-report-comm-with-space.txt")))


def test_field_separator_entry_damaged_or_holding_the_separator():
    lines = (REAL / "perf-report-sep-self-n.txt").read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(" 11.32% ,"))
    assert lines[i] == " 11.32% , 4548       ,[kernel.kallsyms],[k] exc_page_fault"
    for cut in (lines[i][:20], lines[i].replace("4548 ", "45x8 "), lines[i].replace("11.32%", "11.32 ")):
        damaged = lines[:i] + [cut] + lines[i + 1 :]
        with pytest.raises(ParseError, match=rf"line {i + 1}: expected a perf report entry"):
            read_perf_report(io.StringIO("\n".join(damaged) + "\n"))
    # the last field keeps a separator of its own (a C++ symbol with a comma in its template arguments)
    lines[i] = lines[i].replace("exc_page_fault", "std::pair<int, long>::swap")
    df = read_perf_report(io.StringIO("\n".join(lines) + "\n"))
    assert df.loc[0, ["self_pct", "samples", "shared_object", "symbol"]].tolist() == [
        11.32, 4548, "kernel.kallsyms", "std::pair<int, long>::swap"
    ]


def test_bad_entry_error_warn_skip():
    lines = (REAL / "perf-report-self.txt").read_text().splitlines()
    lines[13] = lines[13][:40]  # an entry cut before its symbol
    text = "\n".join(lines) + "\n"
    with pytest.raises(ParseError, match=r"line 14: expected a perf report entry"):
        read_perf_report(io.StringIO(text))
    with pytest.warns(BadLineWarning):
        warned = read_perf_report(io.StringIO(text), on_bad_lines="warn")
    assert len(warned) == 546 and warned.attrs["bad_lines"][0]["lineno"] == 14


@pytest.mark.parametrize(
    "damage",
    [lambda e: " " * 11 + e[11:], lambda e: e.replace("%", "", 1), lambda e: e.replace(".", ",", 1),
     lambda e: e.replace(" 3", "-3", 1)],
    ids=["blanked", "no-percent-sign", "decimal-comma", "negative"],
)
def test_entry_with_a_lost_or_damaged_percentage_is_bad_not_a_call_graph_line(damage):
    # data/real/perf-report-self.txt, line 14 with its percentage blanked, without its '%', with a decimal
    # comma or a minus sign: the indented rest was taken for a call-graph name and the entry was dropped
    lines = (REAL / "perf-report-self.txt").read_text().splitlines()
    assert lines[13] == "     3.24%  churn    [kernel.kallsyms]     [k] finish_task_switch.isra.0"
    lines[13] = damage(lines[13])
    text = "\n".join(lines) + "\n"
    with pytest.raises(ParseError, match=r"line 14: expected a perf report entry"):
        read_perf_report(io.StringIO(text))
    skipped = read_perf_report(io.StringIO(text), on_bad_lines="skip")
    assert len(skipped) == 546 and [bad["lineno"] for bad in skipped.attrs["bad_lines"]] == [14]


@pytest.mark.parametrize(
    "name, entry",
    [
        ("perf-report-self-graph.txt", "     4.44%  churn    [kernel.kallsyms]     [k] unmap_page_range"),
        ("perf-report-self-folded.txt", "     3.04%  churn    [kernel.kallsyms]     [k] clear_page_erms"),
        ("perf-report-sep-self-n.txt", " 5.16%  , 2073       ,libc.so.6        ,[.] __memset_avx2_unaligned_erms"),
    ],
)
def test_entry_with_its_percentage_blanked_among_call_graphs_is_bad(name, entry):
    # an entry right after a call graph (-g graph, -g folded, -t ',' with graphs) of these data/real captures,
    # with its percentage blanked: the call-graph lines around it are still skipped, the entry is a bad line
    lines = (REAL / name).read_text().splitlines()
    i = lines.index(entry)
    pct = re.search(r"\d+\.\d+%", entry)[0]
    lines[i] = entry.replace(pct, " " * len(pct), 1)
    with pytest.raises(ParseError, match=rf"line {i + 1}: expected a perf report entry"):
        read_perf_report(io.StringIO("\n".join(lines) + "\n"))
    whole = read_perf_report(REAL / name)
    skipped = read_perf_report(io.StringIO("\n".join(lines) + "\n"), on_bad_lines="skip")
    assert len(skipped) == len(whole) - 1 and [bad["lineno"] for bad in skipped.attrs["bad_lines"]] == [i + 1]


def test_folded_chains_with_bare_hex_frames_stay_in_one_table():
    # -g folded lines whose first frame is hex without 0x ("0.57% 2d00672d00752d00;0x7;f") were taken as
    # prose and split the report into five tables
    df = read_perf_report(REAL / "perf-report-children-folded.txt.gz")
    assert len(df) == 1249 and df["block"].eq(0).all() and df.attrs["bad_lines"] == []
    assert df.loc[0, ["children_pct", "self_pct", "symbol"]].tolist() == [19.85, 19.85, "__strcmp_avx2"]


def test_samples_past_int64_are_a_bad_entry():
    lines = (REAL / "perf-report-self-n-dso-sym.txt").read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if "_raw_spin_unlock_irqrestore" in line)
    lines[i] = lines[i].replace("   827", "9999999999999999999")  # 19 digits: past int64
    with pytest.raises(ParseError, match=rf"line {i + 1}: expected a perf report entry"):
        read_perf_report(io.StringIO("\n".join(lines) + "\n"))


def test_nothing_recognised():
    with pytest.raises(ParseError, match=r"line 1: expected a perf report entry"):
        read_perf_report(REAL / "perf-lock-contention.txt")


def test_sniff_and_detection():
    assert sniff(Paste.read(REAL / "perf-report-self.txt")) == 548
    for other in ("perf-script-churn.txt.gz", "perf-lock-contention.txt", "meminfo.txt", "vmallocinfo-kptr1.txt"):
        assert sniff(Paste.read(REAL / other)) == 0, other
    assert sniff(Paste.read(SEED / "allocinfo-64threads.txt")) == 0
    assert vmaplab.read(REAL / "perf-report-tui-self.txt").attrs["format"] == "perf_report"
    assert vmaplab.read(SEED / "v3-cover-quoted.txt").attrs["format"] == "perf_report"


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789.%[]k .#|-+\nabcS")), max_size=200))
def test_random_text_raises_only_parse_error(text):
    try:
        read_perf_report(io.StringIO(text))
    except ParseError:
        pass


_GRAPH_REPORT = (REAL / "perf-report-self-graph.txt").read_text().splitlines()
HEAD = "\n".join(_GRAPH_REPORT[:11]) + "\n"  # perf's '#' lines and the column header
BODY = "\n".join(_GRAPH_REPORT[11:90]) + "\n"  # entries with their call graphs


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_mutated_report_keeps_every_well_formed_entry(data):
    text = HEAD + data.draw(mutated(BODY))
    try:
        read_perf_report(io.StringIO(text))
    except ParseError:
        pass
    want = Counter((f"{float(m[1]):.2f}", *m.groups()[2:]) for m in map(ENTRY.match, text.splitlines()) if m)
    try:
        df = read_perf_report(io.StringIO(text), on_bad_lines="skip")
    except ParseError:
        assert not want  # nothing that looks like an entry is left
        return
    got = Counter((f"{r.self_pct:.2f}", r.command, r.shared_object, r.symbol_kind, r.symbol) for r in df.itertuples())
    assert not want - got
    assert len(df.attrs["bad_lines"]) <= 5
