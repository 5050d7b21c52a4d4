"""read_vmalloc_trace on real captures of the vmalloc tracepoints (data/real, see its SOURCES.md)."""

import gzip
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
from vmaplab.io.vmalloc_trace import EVENTS, read_vmalloc_trace, sniff

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "data" / "real"
PERF = REAL / "vmalloc-trace-perf-thread-churn.txt.gz"
FTRACE = REAL / "vmalloc-trace-ftrace-thread-churn.txt.gz"
PERF_LINES = gzip.decompress(PERF.read_bytes()).decode().splitlines()


def _read(text: str, **kw) -> pd.DataFrame:
    return read_vmalloc_trace(io.StringIO(textwrap.dedent(text)), **kw)


def test_perf_script_capture():
    df = read_vmalloc_trace(PERF)
    assert df.attrs["format"] == "vmalloc_trace" and df.attrs["style"] == "perf script"
    assert df.attrs["skipped_lines"] == 0 and df.attrs["bad_lines"] == []
    assert df["event"].value_counts().to_dict() == {
        "alloc_vmap_area": 7629,
        "free_vmap_area_noflush": 7435,
        "purge_vmap_area_lazy": 2,
    }
    # line 1: churn 19052 [001] 488.716813: vmalloc:alloc_vmap_area: va_start: 18446683600773922816 size=20480 ...
    first = df.iloc[0]
    assert (first["comm"], first["pid"], first["cpu"], first["time"]) == ("churn", 19052, 1, 488.716813)
    assert first["va_start"] == 0xFFFFC9000C274000 and first["size"] == 20480 and first["align"] == 16384
    assert first["vstart"] == 0xFFFFC90000000000 and first["vend"] == 0xFFFFE8FFFFFFFFFF and first["failed"] == 0
    assert pd.isna(first["nr_lazy"]) and pd.isna(first["purge_start"])
    # line 387: kworker/0:1-eve 11 [000] ...: vmalloc:free_vmap_area_noflush: va_start=0xffffc9000c0c4000 nr_lazy=3325 ...
    free = df.iloc[386]
    assert free["event"] == "free_vmap_area_noflush" and free["comm"] == "kworker/0:1-eve"
    assert (free["va_start"], free["nr_lazy"], free["nr_lazy_max"]) == (0xFFFFC9000C0C4000, 3325, 16384)
    assert pd.isna(free["size"])
    purges = df[df["event"] == "purge_vmap_area_lazy"]
    assert list(purges["num_purged"]) == [3350, 3313]
    assert list(purges["purge_start"]) == [0xFFFFC90000D5C000, 0xFFFFC90000E2C000]
    assert (purges["purge_end"] == 0xFFFFC9000C531000).all()
    allocs = df[df["event"] == "alloc_vmap_area"]
    # kernel stacks: 16 KiB + guard page, THREAD_ALIGN 16 KiB; lazy_max_pages = fls(2) * 8192
    assert (allocs["size"] == 20480).all() and (allocs["va_start"] % 16384 == 0).all()
    assert (df["nr_lazy_max"].dropna() == 16384).all()
    assert df["time"].is_monotonic_increasing


def test_dtypes():
    df = read_vmalloc_trace(PERF)
    assert df["time"].dtype == np.float64 and df["cpu"].dtype == np.int64 and df["pid"].dtype == np.int64
    assert list(df["event"].cat.categories) == list(EVENTS)
    for col in ("va_start", "vstart", "vend", "purge_start", "purge_end"):
        assert str(df[col].dtype) == "UInt64", col
    for col in ("size", "align", "failed", "nr_lazy", "nr_lazy_max", "num_purged"):
        assert str(df[col].dtype) == "Int64", col


def test_ftrace_capture():
    df = read_vmalloc_trace(FTRACE)
    assert df.attrs["style"] == "ftrace"
    assert df.attrs["skipped_lines"] == 12  # the "# tracer: nop" header block
    assert df["event"].value_counts().to_dict() == {
        "alloc_vmap_area": 3831,
        "free_vmap_area_noflush": 3829,
        "purge_vmap_area_lazy": 1,
    }
    # churn-27189 [001] ..... 492.463693: alloc_vmap_area: va_start: 18446683600775888896 size=20480 ...
    first = df.iloc[0]
    assert (first["comm"], first["pid"], first["cpu"], first["time"]) == ("churn", 27189, 1, 492.463693)
    assert first["va_start"] == 18446683600775888896
    purge = df[df["event"] == "purge_vmap_area_lazy"].iloc[0]
    assert (purge["comm"], purge["pid"], purge["num_purged"]) == ("kworker/1:0", 23, 3308)
    assert (purge["purge_start"], purge["purge_end"]) == (0xFFFFC90000540000, 0xFFFFC9000C619000)


def test_perf_pid_tid_and_other_events():
    # `perf script -F comm,pid,tid,cpu,time,event,trace` of the same capture, and a capture that also
    # recorded sched:sched_process_fork (excerpts of recordings not kept, data/real/SOURCES.md says which)
    df = _read(
        """\
                   churn 19052/19052 [001]   488.716813:        vmalloc:alloc_vmap_area: va_start: 18446683600773922816 size=20480 align=16384 vstart=0xffffc90000000000 vend=0xffffe8ffffffffff failed=0
         kworker/1:0-eve    23/23    [001]   488.836927:   vmalloc:purge_vmap_area_lazy: start=0xffffc90000d5c000 end=0xffffc9000c531000 num_purged=3350
                   churn 13601 [000]  1233.545072:        vmalloc:alloc_vmap_area: va_start: 18446683600601759744 size=20480 align=16384 vstart=0xffffc90000000000 vend=0xffffe8ffffffffff failed=0
                   churn 13601 [000]  1233.545101:       sched:sched_process_fork: comm=churn pid=13601 child_comm=churn child_pid=13603
                   churn 13601 [000]  1233.545119:        vmalloc:alloc_vmap_area: va_start: 18446683600601726976 size=20480 align=16384 vstart=0xffffc90000000000 vend=0xffffe8ffffffffff failed=0
        """
    )
    assert list(df["pid"]) == [19052, 23, 13601, 13601]
    assert list(df["comm"]) == ["churn", "kworker/1:0-eve", "churn", "churn"]
    assert df.attrs["skipped_lines"] == 1
    assert list(df["block"]) == [0, 0, 0, 0]  # another event's line belongs to the trace, it separates nothing


def test_bad_lines():
    good = PERF_LINES[0]
    for bad, expected in [
        (good[:70], "perf script or ftrace line"),  # cut inside the event name
        (good.replace("alloc_vmap_area", "alloc_vmap_zone"), "one of the events"),
        (good.replace("size=20480", "size=twenty"), "va_start: <decimal> size"),
        (good.replace("18446683600773922816", "18446744073709551616"), "va_start: <decimal> size"),  # 2**64
        (PERF_LINES[386].replace("nr_lazy=3325", "nr_lazy=0x3325"), "nr_lazy_max"),
    ]:
        text = "\n".join([good, bad, good])
        with pytest.raises(ParseError) as info:
            read_vmalloc_trace(io.StringIO(text))
        assert info.value.lineno == 2 and expected in info.value.expected, bad
        df = read_vmalloc_trace(io.StringIO(text), on_bad_lines="skip")
        assert len(df) == 2 and [b["lineno"] for b in df.attrs["bad_lines"]] == [2]


def test_first_bad_line_in_file_order_is_reported():
    text = "\n".join([PERF_LINES[0].replace("size=20480", "size=x"), PERF_LINES[1][:60]])
    with pytest.raises(ParseError) as info:
        read_vmalloc_trace(io.StringIO(text))
    assert info.value.lineno == 1


def test_no_event_raises_at_first_text_line():
    with pytest.raises(ParseError) as info:
        read_vmalloc_trace(io.StringIO("\n# tracer: nop\n#\n"))
    assert info.value.lineno == 2


def test_sniff():
    assert sniff(Paste.read(PERF)) == 15066 and sniff(Paste.read(FTRACE)) == 7661
    for path in [REAL / "vmallocinfo-kptr1.txt", REAL / "meminfo.txt", REAL / "vmstat.txt", REAL / "slabinfo.txt"]:
        assert sniff(Paste.read(path)) == 0, path


EXCERPT = "\n".join(PERF_LINES[380:392] + [ln for ln in PERF_LINES if "purge" in ln][:1])
EXCERPT_ROWS = read_vmalloc_trace(io.StringIO(EXCERPT))
EXCERPT_KEYS = dict(zip(EXCERPT.splitlines(), zip(EXCERPT_ROWS["time"], EXCERPT_ROWS["event"].astype(str))))


@settings(max_examples=150, deadline=None)
@given(mutated(EXCERPT))
def test_mutated_real_input(text):
    try:
        read_vmalloc_trace(io.StringIO(text))
    except ParseError:
        pass
    try:
        df = read_vmalloc_trace(io.StringIO(text), on_bad_lines="skip")
    except ParseError as exc:
        assert "binary" in exc.expected or not any(line in EXCERPT_KEYS for line in text.splitlines())
        return
    found = set(zip(df["time"], df["event"].astype(str)))
    for line in text.splitlines():
        if line in EXCERPT_KEYS:  # an unchanged real event is never dropped
            assert EXCERPT_KEYS[line] in found
    assert len(df) + len(df.attrs["bad_lines"]) <= len(text.splitlines())


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_parse_error(text):
    try:
        read_vmalloc_trace(io.StringIO(text))
    except ParseError:
        pass


FTRACE_LINES = gzip.decompress(FTRACE.read_bytes()).decode().splitlines()
# session 20 (data/real/SOURCES.md): ftrace with irq-info off and record-tgid on, a comm "my [odd] 1-2 x"
IRQOFF = REAL / "ftrace-irqoff-tgid-odd-comm.txt"


def test_line_cut_before_its_event_name_is_a_bad_line():
    # the capture's first events; the third cut inside its timestamp, as the last line (saved with a newline
    # by an editor) and between two events: it was skipped as prose
    a, b, c = FTRACE_LINES[12:15]
    cut = c[: c.index(":")]
    for text, lineno in [([a, b, cut], 3), ([a, cut, b], 2)]:
        with pytest.raises(ParseError) as info:
            read_vmalloc_trace(io.StringIO("\n".join(text) + "\n"))
        assert info.value.lineno == lineno and "ftrace line of a vmalloc tracepoint" in info.value.expected
        df = read_vmalloc_trace(io.StringIO("\n".join(text) + "\n"), on_bad_lines="skip")
        assert len(df) == 2 and [b["lineno"] for b in df.attrs["bad_lines"]] == [lineno]


def test_events_with_call_chains_are_one_trace():
    # perf record -g of the tracepoints: each event's call chain under it (data/real/SOURCES.md); the frame
    # lines were taken for text between traces, one block per event, and the trace analyses refused the frame
    import vmaplab as vl

    df = read_vmalloc_trace(REAL / "perf-script-vmalloc-tp-g.txt.gz")
    assert len(df) == 123 and (df["block"] == 0).all()
    lives = vl.area_lifetimes(df)
    assert len(lives) == 63 and lives["va_start"].is_unique  # 62 allocations, one area freed before the trace
    assert vl.pagetable_footprint(df)["pte_pages"].iloc[-1] >= 1


def test_an_event_that_lost_the_colon_after_its_name_is_a_bad_line():
    # "...: alloc_vmap_area va_start: ..." was skipped as another event's line: the allocation vanished and
    # area_lifetimes counted its free as "freed before the trace"
    for lines, event in ((FTRACE_LINES, " alloc_vmap_area:"), (PERF_LINES, " vmalloc:alloc_vmap_area:")):
        at = next(i for i, line in enumerate(lines) if event in line and i > 15)
        line = lines[at]
        damaged = lines[:at] + [line.replace(event, event[:-1], 1)] + lines[at + 1 :]
        with pytest.raises(ParseError) as info:
            read_vmalloc_trace(io.StringIO("\n".join(damaged) + "\n"))
        assert info.value.lineno == at + 1
    # the function tracer's line for the function of the same name is another tracer's, not a damaged event
    a, b = FTRACE_LINES[12:14]
    function = a[: a.index(": ") + 2] + "alloc_vmap_area <-__get_vm_area_node"
    df = read_vmalloc_trace(io.StringIO("\n".join([a, function, b]) + "\n"))
    assert len(df) == 2 and df.attrs["skipped_lines"] == 1


def test_two_lines_run_together_are_a_bad_line():
    # a lost newline: the first event was dropped and the second read with a 150-character comm
    a, b = FTRACE_LINES[12:14]
    with pytest.raises(ParseError) as info:
        read_vmalloc_trace(io.StringIO(a + b + "\n"))
    assert info.value.lineno == 1
    joined = PERF_LINES[386] + PERF_LINES[387]  # perf script's lines: the payload runs on
    with pytest.raises(ParseError, match="nr_lazy_max"):
        read_vmalloc_trace(io.StringIO(joined + "\n"))


def test_irq_info_off_tgid_and_odd_comm():
    df = read_vmalloc_trace(IRQOFF)
    assert df.attrs["style"] == "ftrace" and df.attrs["bad_lines"] == [] and (df["block"] == 0).all()
    assert df["event"].value_counts().to_dict() == {"alloc_vmap_area": 8, "free_vmap_area_noflush": 6,
                                                    "purge_vmap_area_lazy": 0}  # fmt: skip
    assert df.attrs["skipped_lines"] == 148 - 14  # the 6-line header and the sched and workqueue events
    first = df.iloc[0]  # "  my [odd] 1-2 x-7266    (   7266) [000]    896.815709: alloc_vmap_area: ..."
    assert (first["comm"], first["pid"], first["cpu"], first["time"]) == ("my [odd] 1-2 x", 7266, 0, 896.815709)
    assert first["va_start"] == 18446683600650354688 and first["size"] == 20480



# session 21 (data/real/SOURCES.md): options/latency-format, then options/verbose, then trace_clock x86-tsc
LATENCY = REAL / "ftrace-latency-format.txt"
_LATENCY_LINE = r"^\s*(.{1,8})-(\d+)\s+(\d+)\S{5}\s+(\d+)us.: alloc_vmap_area: va_start: (\d+) size=(\d+)"


def test_latency_format_is_read_in_seconds_since_the_trace_began():
    df = read_vmalloc_trace(LATENCY)
    want = pd.Series(Paste.read(LATENCY).lines).str.extract(_LATENCY_LINE).dropna()
    assert len(want) == 8 and len(df) == 8 and df.attrs["bad_lines"] == []
    assert df.attrs["style"] == "ftrace latency" and (df["block"] == 0).all()  # the sched lines between: no split
    assert df.attrs["skipped_lines"] == 71 - 8  # the 18-line header and 45 sched events
    assert df["comm"].tolist() == want[0].str.strip().tolist() == ["my [odd]"] * 8  # the format cuts comms to 8
    assert df["pid"].tolist() == want[1].astype(int).tolist()
    assert df["cpu"].tolist() == want[2].astype(int).tolist()
    assert df["time"].tolist() == (want[3].astype(int) / 1e6).tolist()  # "14221us+" -> 0.014221 s
    assert df["va_start"].tolist() == want[4].astype("uint64").tolist()
    assert df["size"].tolist() == want[5].astype(int).tolist()


def test_a_tick_clock_and_the_verbose_form_are_refused_at_their_first_event():
    with pytest.raises(ParseError, match="trace_clock x86-tsc") as info:
        read_vmalloc_trace(REAL / "ftrace-clock-x86-tsc.txt")
    assert info.value.lineno == 14  # line 13 is a sched_switch, not ours
    df = read_vmalloc_trace(REAL / "ftrace-clock-x86-tsc.txt", on_bad_lines="skip")
    assert df.empty and len(df.attrs["bad_lines"]) == 9  # every alloc_vmap_area line, none dropped silently
    with pytest.raises(ParseError, match="options/verbose") as info:
        read_vmalloc_trace(REAL / "ftrace-latency-verbose.txt")
    assert info.value.lineno == 11


def test_nothing_readable_is_reported_at_the_first_line_naming_an_event():
    # perf script -F event,trace: no comm, tid, cpu or time; pasted below the command that made it
    text = "# perf script -i ev.data -F event,trace\n" + (REAL / "perf-script-F-event-trace.txt").read_text()
    with pytest.raises(ParseError, match="perf script or ftrace line of a vmalloc tracepoint") as info:
        read_vmalloc_trace(io.StringIO(text))
    assert info.value.lineno == 2  # not at the command line, line 1
