"""read_perf_script and iter_samples on this host's captures, FlameGraph's published perf script inputs,
pastes, damaged copies and random text."""

import gzip
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from _line_mutations import mutated
from hypothesis import given, settings
from hypothesis import strategies as st

import vmaplab
from vmaplab.errors import BadLineWarning, ParseError
from vmaplab.io import perf_script
from vmaplab.io._source import Paste
from vmaplab.io.perf_script import iter_samples, read_perf_script, sniff

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "data" / "real"
FLAMEGRAPH = ROOT.parent / "shared" / "fixtures" / "flamegraph"
CHURN = REAL / "perf-script-churn.txt.gz"
DTYPES = {
    "block": "int64", "comm": "string", "pid": "Int64", "tid": "Int64", "cpu": "Int64", "time": "Float64",
    "period": "Int64", "event": "string", "trace": "string", "stack": "string", "dsos": "string", "ips": "string",
}

# Written independently of the reader: a default-fields header and a frame line of this host's capture
HEADER = re.compile(r"^(\S+) +(\d+) \[(\d{3})\] +(\d+\.\d{6}): +(\d+) (cpu-clock): $")
FRAME = re.compile(r"^\t *([0-9a-f]+) ([^\s()]+?)(?:\+0x[0-9a-f]+)? \(([^()]+)\)$")


def test_this_host_default_fields():
    df = read_perf_script(CHURN)
    assert df.dtypes.astype(str).to_dict() == DTYPES
    assert len(df) == 957 and (df["block"] == 0).all()
    assert df["comm"].value_counts().to_dict() == {"churn": 947, "sh": 10}
    assert set(df["cpu"]) == {0, 1} and (df["period"] == 100_000).all() and (df["event"] == "cpu-clock").all()
    assert df["pid"].isna().all() and df["trace"].isna().all() and df["stack"].notna().all()
    assert df["time"].min() == 991.39255 and df["time"].max() == 991.630177
    first = df.iloc[0]
    assert (first["comm"], first["tid"], first["cpu"], first["stack"], first["dsos"], first["ips"]) == (
        "sh", 20181, 1, "update_active.constprop.0", "ld-linux-x86-64.so.2", "153e0",
    )
    # root first, leaf last, offsets gone, aligned columns
    third = df.iloc[2]
    assert third["stack"].split(";")[-3:] == ["do_mmap", "__mmap_region", "vma_interval_tree_insert"]
    assert third["dsos"].split(";")[-1] == "kernel.kallsyms" and third["ips"].split(";")[-1] == "ffffffff815d4e66"
    assert (df["stack"].str.count(";") == df["dsos"].str.count(";")).all()
    assert (df["stack"].str.count(";") == df["ips"].str.count(";")).all()
    # kernel stacks are vmalloc'ed: thread creation goes through the vmalloc path
    assert df["stack"].str.contains("copy_process;__vmalloc_node_noprof;__vmalloc_node_range_noprof").sum() > 10
    assert df.attrs["skipped_lines"] == 0 and df.attrs["bad_lines"] == [] and df.attrs["format"] == "perf_script"


def test_every_sample_and_frame_against_an_independent_parse():
    lines = Paste.read(CHURN).lines
    samples, frames = [], []
    for line in lines:
        if m := HEADER.match(line):
            samples.append(m.groups())
            frames.append([])
        elif m := FRAME.match(line):
            frames[-1].append(m.group(2))
        else:
            assert line == ""
    df = read_perf_script(CHURN)
    assert [(c, str(t), f"{cpu:03d}", f"{tm:.6f}", str(p)) for c, t, cpu, tm, p in zip(df["comm"], df["tid"], df["cpu"], df["time"], df["period"])] == [
        s[:5] for s in samples
    ]
    assert df["stack"].tolist() == [";".join(reversed(f)) for f in frames]


def test_pid_tid_fields_give_the_same_samples():
    # the same recording printed with -F comm,pid,tid,cpu,time,event,ip,sym,dso,trace
    a = read_perf_script(CHURN)
    b = read_perf_script(REAL / "perf-script-churn-pidtid.txt.gz")
    assert b["period"].isna().all() and (b["pid"] == b["tid"]).sum() > 0 and b["pid"].notna().all()
    for col in ("comm", "tid", "cpu", "time", "stack", "dsos", "ips"):
        assert a[col].equals(b[col]), col
    # threads of one process share its pid
    assert b.loc[b["comm"] == "churn", "pid"].nunique() == 2


def test_headers_without_tid_give_the_same_samples():
    # one recording printed with -F comm,cpu,time,period,event,ip,sym,dso (no tid) and with tid added
    # (data/real/SOURCES.md): the comm was read as "sh [000] 86472.312065:" and the period as the tid
    a = read_perf_script(REAL / "perf-script-notid.txt.gz")
    b = read_perf_script(REAL / "perf-script-notid-tid.txt.gz")
    assert len(a) == 230 and a["comm"].value_counts().to_dict() == {"sh": 115, "ls": 115}
    assert a["tid"].isna().all() and b["tid"].notna().all() and a.attrs["bad_lines"] == []
    pd.testing.assert_frame_equal(a.drop(columns="tid"), b.drop(columns="tid"))
    assert a.loc[0, ["comm", "cpu", "time", "period", "event"]].tolist() == ["sh", 0, 86472.312065, 250000, "cpu-clock"]
    assert sniff(Paste.read(REAL / "perf-script-notid.txt.gz")) == 230
    assert vmaplab.read(REAL / "perf-script-notid.txt.gz").attrs["format"] == "perf_script"


def test_headers_without_tid_or_call_chains():
    # without call chains perf script prints the comm right-aligned in 16 columns and the frame on the header line
    # (data/real/perf-script-notid-nog.txt)
    path = REAL / "perf-script-notid-nog.txt"
    df = read_perf_script(path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("              sh [000] 86476.619259:     250000 cpu-clock:  ffffffff816a8594 ")
    assert len(df) == len(lines) == 24 and (df["comm"] == "sh").all() and df["tid"].isna().all()
    assert (df["cpu"] == 0).all() and (df["period"] == 250_000).all() and df["trace"].isna().all()
    assert df.loc[0, ["time", "stack", "dsos"]].tolist() == [86476.619259, "__lruvec_stat_mod_folio", "kernel.kallsyms"]
    assert df["time"].is_monotonic_increasing and df.attrs["bad_lines"] == []
    # detected too: vmaplab read refused it as "text in one of the formats" (the sniff wanted frame lines)
    assert sniff(Paste.read(path)) == 24 and vmaplab.read(path).attrs["format"] == "perf_script"


def test_tid_cut_from_the_headers_of_a_capture():
    # data/real/perf-script-churn.txt.gz with the tid cut from every header ("sh 20181 [001] ..." ->
    # "sh [001] ..."): the same samples without tid
    text = gzip.open(CHURN, "rt").read()
    cut = re.sub(r"(?m)^(\S+) \d+ (\[\d{3}\])", r"\1 \2", text)
    assert cut.startswith("sh [001]   991.392550:     100000 cpu-clock: \n")
    whole, without = read_perf_script(CHURN), read_perf_script(io.StringIO(cut))
    assert without["tid"].isna().all() and without.attrs["bad_lines"] == []
    pd.testing.assert_frame_equal(without.drop(columns="tid"), whole.drop(columns="tid"))


def test_cpu_or_time_is_never_taken_into_the_comm():
    # data/real/perf-script-notid.txt.gz with the '.' of one header's time flipped to 'x': read with a tid,
    # the comm would be "sh [000] 86472x312315:" and the period the tid; it is a bad header instead
    lines = gzip.open(REAL / "perf-script-notid.txt.gz", "rt").read().splitlines()
    assert lines[4] == "sh [000] 86472.312315:     250000 cpu-clock: "
    lines[4] = lines[4].replace("86472.", "86472x")
    text = "\n".join(lines) + "\n"
    with pytest.raises(ParseError, match=r"line 5: expected a perf script sample header"):
        read_perf_script(io.StringIO(text))
    df = read_perf_script(io.StringIO(text), on_bad_lines="skip")
    assert len(df) == 229 and df.attrs["bad_lines"][0]["lineno"] == 5 and (df["comm"].isin(["sh", "ls"])).all()


@pytest.mark.parametrize(
    "name, n",
    [("perf-funcab-cmd-01", 169), ("perf-funcab-pid-01", 228), ("perf-java-stacks-01", 46), ("perf-java-stacks-02", 2),
     ("perf-rust-Yamakaky-dcpu", 58), ("perf-vertx-stacks-01", 286)],
)
def test_flamegraph_inputs(name, n):
    path = FLAMEGRAPH / f"{name}.txt"
    df = read_perf_script(path)
    # one sample per header line: not indented, not a comment, ends with "<event>:"
    headers = [ln for ln in path.read_text().splitlines() if ln[:1] not in ("", "#", "\t", " ") and ln.rstrip().endswith(":")]
    assert len(df) == len(headers) == n
    assert df["stack"].notna().all() and df.attrs["bad_lines"] == []
    assert df["comm"].tolist() == [h.split()[0] for h in headers]


def test_headers_without_time_cpu_or_period():
    rust = read_perf_script(FLAMEGRAPH / "perf-rust-Yamakaky-dcpu.txt")
    assert (rust["event"] == "cycles:u").all() and rust["period"].iloc[:3].tolist() == [1, 1, 3]
    assert rust["cpu"].isna().all() and rust["time"].iloc[0] == 75695.008865
    funcab = read_perf_script(FLAMEGRAPH / "perf-funcab-pid-01.txt")
    assert funcab["time"].isna().all() and (funcab["tid"] == 15294).all()
    assert funcab["stack"].iloc[0] == "__libc_start_main;main;func_b"
    assert funcab.attrs["skipped_lines"] == 18  # perf script --header lines
    vertx = read_perf_script(FLAMEGRAPH / "perf-vertx-stacks-01.txt")
    # C++ frames keep their argument lists; the dso is the basename
    assert vertx["stack"].iloc[0] == "start_thread;java_start(Thread*);GCTaskThread::run();StealTask::do_it(GCTaskManager*, unsigned int);SpinPause"
    assert vertx["dsos"].iloc[0].split(";")[-1] == "libjvm.so"


def test_tracepoints_with_stacks_are_read_but_not_sniffed():
    path = REAL / "perf-script-vmalloc-tp-g.txt.gz"
    df = read_perf_script(path)
    assert df["event"].value_counts().to_dict() == {"vmalloc:alloc_vmap_area": 62, "vmalloc:free_vmap_area_noflush": 61}
    assert df["trace"].str.startswith("va_start").all()
    assert df["stack"].iloc[0].endswith("__vmalloc_node_range_noprof;__get_vm_area_node;alloc_vmap_area")
    assert sniff(Paste.read(path)) == 0
    assert vmaplab.read(path).attrs["format"] == "vmalloc_trace"
    assert sniff(Paste.read(REAL / "vmalloc-trace-perf-thread-churn.txt.gz")) == 0


def test_sniff_and_detection():
    assert sniff(Paste.read(CHURN)) == 957
    assert sniff(Paste.read(FLAMEGRAPH / "perf-java-stacks-02.txt")) == 2
    for other in ("perf-report-self-graph.txt", "perf-lock-contention-v.txt", "meminfo.txt", "vmallocinfo-kptr1.txt", "slabinfo.txt"):
        assert sniff(Paste.read(REAL / other)) == 0, other
    assert vmaplab.read(CHURN).attrs["format"] == "perf_script"


def test_iter_samples_streams_the_same_rows(monkeypatch):
    whole = read_perf_script(CHURN)
    chunks = list(iter_samples(CHURN, chunksize=50))
    assert len(chunks) > 10 and all(c.attrs["format"] == "perf_script" for c in chunks)
    assert pd.concat(chunks, ignore_index=True).equals(whole)
    assert all(len(c) <= 50 for c in chunks)
    monkeypatch.setattr(perf_script, "_PIECE_SAMPLES", 7)
    assert read_perf_script(CHURN).equals(whole)
    # without blank lines (one line per sample), pieces are cut before a header line
    lines = [ln for ln in Paste.read(FLAMEGRAPH / "perf-funcab-cmd-01.txt").lines if ln.startswith("func_ab")]
    text = "\n".join(ln.rstrip() + " 400577 func_b (/root/lang/func_ab)" for ln in lines) + "\n"
    one_by_one = list(iter_samples(io.StringIO(text), chunksize=3))
    assert len(one_by_one) > 5 and sum(map(len, one_by_one)) == len(lines) == 169
    assert (pd.concat(one_by_one)["stack"] == "func_b").all()


def test_paste_with_prompts_prose_and_two_listings():
    text = (FLAMEGRAPH / "perf-funcab-cmd-01.txt").read_text()
    samples = [b for b in text.split("\n\n") if b.startswith("func_ab")]
    first, second = "\n\n".join(samples[:3]), "\n\n".join(samples[3:7])
    quoted = "\n".join("> " + ln for ln in first.splitlines())
    paste = f"root@vm:~# perf script | head\n{quoted}\n>\nand a second run:\n\n{second}\n"
    df = read_perf_script(io.StringIO(paste))
    assert df["block"].tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert df.attrs["skipped_lines"] == 2
    alone = [read_perf_script(io.StringIO(part + "\n"))["stack"].tolist() for part in (first, second)]
    assert df["stack"].tolist() == alone[0] + alone[1]


def test_cut_frame_error_warn_skip():
    lines = Paste.read(FLAMEGRAPH / "perf-funcab-cmd-01.txt").lines
    i = next(i for i, ln in enumerate(lines) if ln.strip().startswith("4005b1 main"))
    lines[i] = lines[i][:18]
    text = "\n".join(lines) + "\n"
    with pytest.raises(ParseError, match=rf"line {i + 1}: expected a call-chain frame"):
        read_perf_script(io.StringIO(text))
    with pytest.warns(BadLineWarning):
        df = read_perf_script(io.StringIO(text), on_bad_lines="warn")
    # the damaged sample is dropped whole, the others are kept
    assert len(df) == 168 and df.attrs["bad_lines"][0]["lineno"] == i + 1


def test_period_past_int64_is_a_bad_header():
    # 19 digits: perf prints a u64, the frame holds int64; the line is named, not a pandas cast error
    text = gzip.open(CHURN, "rt").read().replace("     100000 cpu-clock:", "     9999999999999999999 cpu-clock:", 1)
    with pytest.raises(ParseError, match=r"line 1: expected a perf script sample header"):
        read_perf_script(io.StringIO(text))


def test_frame_without_symbol_is_unknown_and_junk_is_named_by_its_line_in_the_whole_text():
    lines = gzip.open(CHURN, "rt").read().splitlines(True)
    ld = "(/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2)"
    i = next(i for i, line in enumerate(lines) if line.strip().endswith(ld))
    lines[i] = f"\t{lines[i].split()[0]:>16} {ld}\n"  # as perf prints an unresolved frame
    df = read_perf_script(io.StringIO("".join(lines)))
    assert df.loc[0, "stack"].split(";")[-1] == "[unknown]"
    assert df.loc[0, "dsos"].split(";")[-1] == "ld-linux-x86-64.so.2"
    j = next(j for j in range(len(lines) - 1, 0, -1) if lines[j].startswith("\t"))  # far past the first piece
    lines[j] = lines[j].replace(" ", "\x00", 1)
    with pytest.raises(ParseError, match=rf"line {j + 1}: expected text \(this line holds binary"):
        for _ in iter_samples(io.StringIO("".join(lines)), chunksize=100):
            pass


def test_frames_without_header_and_nothing_recognised():
    text = "\n".join(Paste.read(FLAMEGRAPH / "perf-funcab-cmd-01.txt").lines[19:25]) + "\n"
    with pytest.raises(ParseError, match=r"expected a sample header line before this call-chain frame"):
        read_perf_script(io.StringIO(text))
    with pytest.raises(ParseError, match=r"line 1: expected a perf script sample header"):
        read_perf_script(REAL / "meminfo.txt")
    with pytest.raises(ParseError, match=r"line 1: expected a perf script sample header"):
        list(iter_samples(REAL / "meminfo.txt"))


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789abcdef []():.#/\t\nxyz-+>")), max_size=300))
def test_random_text_raises_only_parse_error(text):
    try:
        read_perf_script(io.StringIO(text))
    except ParseError:
        pass


SMALL = "\n".join(Paste.read(CHURN).lines[:120]) + "\n"


def _well_formed_samples(text: str) -> list[tuple]:
    """(tid, time, stack) of each sample whose header and frames all parse and that ends at a blank
    line, by the independent regexes above."""
    out, cur, ok = [], None, True
    for line in text.split("\n"):
        if line == "":
            if cur is not None and ok:
                out.append((int(cur[0][1]), float(cur[0][3]), ";".join(reversed(cur[1])) or None))
            cur, ok = None, True
        elif m := HEADER.match(line):
            if cur is not None:
                ok = False
            cur = (m.groups(), [])
        elif (m := FRAME.match(line)) and cur is not None:
            cur[1].append(m.group(2).replace(";", ":"))  # the reader's documented replacement
        else:
            ok = False
    return out


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_mutated_capture_keeps_every_well_formed_sample(data):
    text = data.draw(mutated(SMALL))
    try:
        read_perf_script(io.StringIO(text))
    except ParseError:
        pass
    want = _well_formed_samples(text)
    try:
        df = read_perf_script(io.StringIO(text), on_bad_lines="skip")
    except ParseError:
        assert not want
        return
    # a header whose tid a flip joined to the comm ("sh020181 [001] ...") is one without tid: <NA>
    tids = df["tid"].astype(object).where(df["tid"].notna(), None)
    got = set(zip(tids, df["time"], df["stack"].astype(object).where(df["stack"].notna(), None)))
    assert set(want) <= got


def test_only_a_lowercase_hex_offset_is_taken_off_a_symbol():
    # perf prints offsets as "+0x1fd"; "+0xBfd" (a flip the mutation test found) is part of the name, as for
    # stackcollapse-perf.pl, whose offset pattern is lowercase too
    sample = Paste.read(CHURN).lines[50:61]
    for offset, leaf_side in [("0x1fd", "filemap_map_pages"), ("0xBfd", "filemap_map_pages+0xBfd")]:
        text = "\n".join(sample).replace("filemap_map_pages+0x1fd", f"filemap_map_pages+{offset}") + "\n"
        df = read_perf_script(io.StringIO(text))
        assert df["stack"].tolist() == [
            "[unknown];[unknown];asm_exc_page_fault;exc_page_fault;handle_mm_fault;__handle_mm_fault;do_fault;"
            f"{leaf_side};next_uptodate_folio"
        ]


def test_bytes_that_are_not_utf8_are_refused_at_their_line():
    # a comm set with prctl to bytes that are not UTF-8 in the capture's second sample: refused in every mode,
    # never merged with another comm's samples under U+FFFD
    raw = gzip.decompress(CHURN.read_bytes())
    first = raw.index(b"\n\n") + 2
    text = raw[:first] + raw[first : raw.index(b"\n\n", first) + 2].replace(b"sh ", b"s\xff ", 1)
    for mode in ("error", "skip"):
        with pytest.raises(ParseError, match=r"line 4: expected text \(this line holds binary or undecodable bytes\)"):
            read_perf_script(io.BytesIO(text), on_bad_lines=mode)
