"""read_kprobe_trace on a real capture of kprobe/kretprobe hits (data/real/drain-trace-qemu-8cpu, see
data/real/SOURCES.md: Linux 6.12.117 in an 8-vCPU QEMU guest, probes on flush_tlb_kernel_range and
purge_vmap_node beside workqueue and vmalloc tracepoints)."""

import gzip
import io
import re

import pytest
from _line_mutations import mutated, records
from hypothesis import given, settings
from hypothesis import strategies as st

import vmaplab
from vmaplab.errors import ParseError
from vmaplab.io._source import Paste
from vmaplab.io.detect import detect_format
from vmaplab.io.kprobe_trace import read_kprobe_trace, sniff

from test_vmalloc_trace import REAL

RUN1 = REAL / "drain-trace-qemu-8cpu" / "run1-threads8.txt.gz"
LINES = gzip.decompress(RUN1.read_bytes()).decode().splitlines()


def test_real_capture():
    df = read_kprobe_trace(RUN1)
    assert df.attrs["format"] == "kprobe_trace" and df.attrs["style"] == "ftrace" and df.attrs["bad_lines"] == []
    assert df.attrs["skipped_lines"] == 12 + 2285 + 425  # header, workqueue and vmalloc tracepoint lines
    assert df["event"].value_counts().to_dict() == {"purge_vmap_nodein": 2478, "purge_vmap_nodeout": 2478,
                                                    "flush_tlb_kernel_rangein": 421, "flush_tlb_kernel_rangeout": 421}  # fmt: skip
    assert (df["block"] == 0).all() and df["time"].is_monotonic_increasing
    first, back = df.iloc[0], df.iloc[1]  # the file's first two events
    assert (first["time"], first["cpu"], first["comm"], first["pid"]) == (7.167539, 7, "loadmod", 125)
    assert (first["kind"], first["function"], first["site"]) == ("entry", "flush_tlb_kernel_range",
                                                                 "flush_tlb_kernel_range+0x4/0xc0")  # fmt: skip
    assert df["caller"].isna().iloc[0] and df.loc[df["kind"] == "return", "caller"].notna().all()
    assert (back["kind"], back["function"], back["site"], back["caller"]) == (
        "return", "flush_tlb_kernel_range", "__purge_vmap_area_lazy+0x19f/0x360", "__purge_vmap_area_lazy")  # fmt: skip
    assert df["args"].isna().all()  # these probes fetch no arguments
    kinds = df.groupby("kind", observed=True)["function"].value_counts().to_dict()
    assert kinds[("entry", "purge_vmap_node")] == kinds[("return", "purge_vmap_node")] == 2478


def test_fetch_arguments():
    # run1's first entry line, edited to carry two fetch arguments as trace_kprobe.c prints them
    line = LINES[12] + " start=0xffffa0a0403b0000 end=0xffffa0a04043d000"
    df = read_kprobe_trace(io.StringIO(line + "\n" + LINES[13] + "\n"))
    assert df["args"].tolist()[0] == "start=0xffffa0a0403b0000 end=0xffffa0a04043d000"
    assert df["function"].tolist() == ["flush_tlb_kernel_range"] * 2 and df["args"].isna().tolist() == [False, True]


def test_detected_and_exported():
    assert detect_format(Paste.read(RUN1)) == "kprobe_trace"  # more probe hits than tracepoint events
    assert sniff(Paste.read(RUN1)) == 2 * (2478 + 421)
    assert vmaplab.read(RUN1).attrs["format"] == "kprobe_trace"
    # the tracepoint readers take the other lines of the same file
    assert len(vmaplab.read_sched_trace(RUN1)) == 2285 and len(vmaplab.read_vmalloc_trace(RUN1)) == 425


def test_bad_lines_name_the_line_and_what_was_expected():
    lines = list(LINES)
    lines[13] = lines[13][: lines[13].index(" <- ")]  # a return line cut inside its payload
    with pytest.raises(ParseError) as info:
        read_kprobe_trace(io.StringIO("\n".join(lines)))
    assert info.value.lineno == 14 and "(<caller>+0x<off>/0x<size> <- <function>)" in info.value.expected
    with pytest.warns(vmaplab.VmaplabWarning):
        df = read_kprobe_trace(io.StringIO("\n".join(lines)), on_bad_lines="warn")
    assert len(df) == 2 * (2478 + 421) - 1 and [b["lineno"] for b in df.attrs["bad_lines"]] == [14]
    raw = LINES[12].replace("flush_tlb_kernel_range+0x4/0xc0", "ffffffff8108a1c4")  # no symbol: not read
    with pytest.raises(ParseError, match="kprobe or kretprobe"):
        read_kprobe_trace(io.StringIO(raw + "\n"))
    with pytest.raises(ParseError, match="kprobe or kretprobe"):
        read_kprobe_trace(io.StringIO(LINES[-1] + "\n"))  # a workqueue event alone: no probe hit


EXCERPT = "\n".join(LINES[:80]) + "\n"
# the probe hits of the excerpt (the header, workqueue and vmalloc tracepoint lines are not), found
# without the reader: "<timestamp>: <probe>in: (" or "...out: ("
EXCERPT_HITS = [line for line in LINES[:80] if re.search(r"\d: \w+(?:in|out): \(", line)]
EXCERPT_RECORDS = dict(zip(EXCERPT_HITS, records(read_kprobe_trace(io.StringIO(EXCERPT)))))


def test_excerpt_records():
    assert len(EXCERPT_HITS) == len(EXCERPT_RECORDS) == len(read_kprobe_trace(io.StringIO(EXCERPT))) == 49


@settings(max_examples=150, deadline=None)
@given(mutated(EXCERPT))
def test_mutated_real_input(text):
    try:
        df = read_kprobe_trace(io.StringIO(text), on_bad_lines="skip")
    except ParseError:
        assert not any(line in EXCERPT_RECORDS for line in text.splitlines())
        return
    assert len(df) + len(df.attrs["bad_lines"]) <= len(text.splitlines())
    found = set(records(df))
    for line in text.splitlines():
        if line in EXCERPT_RECORDS:  # an unchanged hit is read as it was: never dropped, never altered
            assert EXCERPT_RECORDS[line] in found


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_parse_error(text):
    try:
        read_kprobe_trace(io.StringIO(text))
    except ParseError:
        pass


def test_two_lines_run_together_are_a_bad_line():
    # a lost newline: the entry was dropped and the return read with a 120-character comm
    for a, b in [(LINES[12], LINES[13]), (LINES[13], LINES[14])]:
        with pytest.raises(ParseError) as info:
            read_kprobe_trace(io.StringIO(LINES[12] + "\n" + a + b + "\n"))
        assert info.value.lineno == 2 and "kprobe or kretprobe" in info.value.expected


def test_line_cut_before_or_inside_its_event_name_is_a_bad_line():
    # run1's second hit cut at its timestamp and inside "flush_tlb_kernel_rangeout", saved with a newline
    back = LINES[13]
    for cut in (back[: back.index(":")], back[: back.index("rangeout") + 5]):
        for text, lineno in [([LINES[12], cut], 2), ([LINES[12], cut, LINES[14]], 2)]:
            df = read_kprobe_trace(io.StringIO("\n".join(text) + "\n"), on_bad_lines="skip")
            assert len(df) == len(text) - 1 and [b["lineno"] for b in df.attrs["bad_lines"]] == [lineno], cut
