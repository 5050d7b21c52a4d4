"""read_sched_trace on real captures of the workqueue and sched tracepoints (data/real, see its SOURCES.md)."""

import gzip
import io

import pandas as pd
import pytest
from _line_mutations import mutated, records
from hypothesis import given, settings
from hypothesis import strategies as st

import vmaplab
from vmaplab.errors import ParseError
from vmaplab.io._source import Paste
from vmaplab.io.detect import detect_format
from vmaplab.io.sched_trace import EVENTS, read_sched_trace, sniff

from test_vmalloc_trace import REAL

STALL = REAL / "drain-stall-trace-qemu-2cpu.txt.gz"  # ftrace, 6.12 guest: vmalloc, sched, workqueue events
PERF = REAL / "sched-trace-perf-idle.txt.gz"  # perf script, 6.18 host: sched and workqueue events
PERF_LINES = gzip.decompress(PERF.read_bytes()).decode().splitlines()


def test_ftrace_capture_beside_vmalloc_events():
    df = read_sched_trace(STALL)
    assert df.attrs["format"] == "sched_trace" and df.attrs["style"] == "ftrace"
    assert df.attrs["bad_lines"] == [] and df.attrs["skipped_lines"] == 12 + 30_444  # header, vmalloc lines
    assert df["event"].value_counts().to_dict() == {
        "sched_switch": 349, "workqueue_queue_work": 6, "workqueue_activate_work": 6,
        "workqueue_execute_start": 6, "workqueue_execute_end": 6, "sched_wakeup": 6, "sched_waking": 6,
        "sched_migrate_task": 3, "sched_wakeup_new": 0}  # fmt: skip
    assert (df["block"] == 0).all() and df["time"].is_monotonic_increasing
    queued = df[df["event"] == "workqueue_queue_work"].iloc[1]
    assert (queued["time"], queued["cpu"], queued["comm"], queued["pid"]) == (8.773132, 1, "vmalloc_test/3", 73)
    assert (queued["work"], queued["function"], queued["workqueue"]) == (
        "00000000e104bbd4", "drain_vmap_area_work", "events")  # fmt: skip
    assert (queued["req_cpu"], queued["target_cpu"]) == (64, 0)  # "any CPU" on a 64-possible-CPU build, CPU 0's pool
    ended = df[(df["event"] == "workqueue_execute_end") & (df["time"] == 8.761508)].iloc[0]
    assert (ended["comm"], ended["pid"], ended["function"]) == ("kworker/0:2", 54, "drain_vmap_area_work")
    out = df[(df["event"] == "sched_switch") & (df["prev_pid"] == 54) & (df["time"] > 8.7615)].iloc[0]
    assert (out["time"], out["prev_comm"], out["prev_state"], out["next_comm"], out["next_pid"]) == (
        8.761598, "kworker/0:2", "R+", "vmalloc_test/2", 72)  # fmt: skip
    woken = df[df["event"] == "sched_wakeup"]
    assert ("kworker/0:0", 9, 0) in set(zip(woken["task_comm"], woken["task_pid"], woken["target_cpu"]))
    moved = df[df["event"] == "sched_migrate_task"].iloc[0]  # line 4019: "comm=vmalloc_test/6 pid=76 prio=120
    assert (moved["time"], moved["task_comm"], moved["task_pid"]) == (8.791724, "vmalloc_test/6", 76)  # orig_cpu=0
    assert (moved["orig_cpu"], moved["target_cpu"]) == (0, 1)  # dest_cpu=1"
    # the vmalloc reader takes the other lines of the same file
    vm = vmaplab.read_vmalloc_trace(STALL)
    assert len(vm) == 30_444 and vm.attrs["skipped_lines"] == 12 + len(df)


def test_perf_script_capture():
    df = read_sched_trace(PERF)
    assert df.attrs["style"] == "perf script" and df.attrs["skipped_lines"] == 0 and df.attrs["bad_lines"] == []
    assert len(df) == len(PERF_LINES) == 624
    counts = df["event"].value_counts()
    assert counts[["sched_switch", "sched_waking", "workqueue_execute_start"]].tolist() == [254, 141, 23]
    start = df[df["event"] == "workqueue_execute_start"].iloc[0]
    assert start["work"].startswith("0x") and start["function"] == "vmstat_update" and start["comm"] == "kworker/1:2-vir"
    ends = df[df["event"] == "workqueue_execute_end"]
    assert ends["function"].notna().all() and ends["work"].notna().all()
    assert df.loc[df["event"] == "sched_switch", "prev_state"].notna().all()


def test_detected_and_exported():
    sched_lines = "\n".join(line for line in PERF_LINES)
    assert detect_format(Paste.from_text(sched_lines)) == "sched_trace"
    assert sniff(Paste.from_text(sched_lines)) == 624
    assert detect_format(Paste.read(STALL)) == "vmalloc_trace"  # more vmalloc events than these
    assert vmaplab.read_sched_trace is read_sched_trace and set(EVENTS) >= {"sched_switch", "workqueue_queue_work"}


def test_bad_lines_name_the_line_and_what_was_expected():
    switch = next(i for i, line in enumerate(PERF_LINES) if "sched:sched_switch:" in line)
    queue = next(i for i, line in enumerate(PERF_LINES) if "workqueue_queue_work:" in line)
    cuts = [(switch, " ==> ", "prev_state=<S> ==> next_comm"), (queue, " req_cpu=", "req_cpu=<n> cpu=<n>")]
    for i, cut, expected in cuts:
        lines = list(PERF_LINES)
        lines[i] = lines[i][: lines[i].index(cut)]
        with pytest.raises(ParseError) as info:
            read_sched_trace(io.StringIO("\n".join(lines)))
        assert info.value.lineno == i + 1 and expected in info.value.expected
        with pytest.warns(vmaplab.VmaplabWarning):
            df = read_sched_trace(io.StringIO("\n".join(lines)), on_bad_lines="warn")
        assert len(df) == 623 and [b["lineno"] for b in df.attrs["bad_lines"]] == [i + 1]
    with pytest.raises(ParseError, match="workqueue or sched tracepoint"):
        read_sched_trace(io.StringIO("MemTotal: 1 kB\n"))


EXCERPT = "\n".join(PERF_LINES[:80]) + "\n"
# every line of the perf script capture is an event (test_perf_script_capture)
EXCERPT_RECORDS = dict(zip(PERF_LINES[:80], records(read_sched_trace(io.StringIO(EXCERPT)))))


def test_excerpt_records():
    records_in_order = records(read_sched_trace(io.StringIO(EXCERPT)))
    assert len(EXCERPT_RECORDS) == len(records_in_order) == 80
    # the capture's first line: "perf 26134 [000] 42068.047712: sched:sched_waking: comm=migration/0 ..."
    assert records_in_order[0][:5] == (42068.047712, 0, "perf", 26134, "sched_waking")


@settings(max_examples=150, deadline=None)
@given(mutated(EXCERPT))
def test_mutated_real_input(text):
    try:
        df = read_sched_trace(io.StringIO(text), on_bad_lines="skip")
    except ParseError:
        assert not any(line in EXCERPT_RECORDS for line in text.splitlines())
        return
    assert len(df) + len(df.attrs["bad_lines"]) <= len(text.splitlines())
    found = set(records(df))
    for line in text.splitlines():
        if line in EXCERPT_RECORDS:  # an unchanged event is read as it was: never dropped, never altered
            assert EXCERPT_RECORDS[line] in found


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_parse_error(text):
    try:
        read_sched_trace(io.StringIO(text))
    except ParseError:
        pass


# session 20 captures (data/real/SOURCES.md)
LOST = REAL / "ftrace-pipe-lost-events.txt"  # trace_pipe of a small buffer: "CPU:0 [LOST 2050 EVENTS]" at line 15
PIDTID = REAL / "perf-script-sched-vmalloc-pidtid.txt"  # perf script -F comm,pid,tid,...


def test_lost_events_are_listed_and_warned_about():
    # the kernel's note was taken for prose between two traces: block 0 then 1, and nothing said events were lost
    with pytest.warns(vmaplab.VmaplabWarning, match="dropped events 1 time"):
        df = read_sched_trace(LOST)
    assert df.attrs["lost_events"] == [{"lineno": 15, "cpu": 0, "count": 2050}]
    assert (df["block"] == 0).all() and len(df) == 117 and df.attrs["bad_lines"] == []


def test_perf_pid_tid_gives_the_thread_id():
    # "my [odd] 1-2 x  7935/7941 [001] ... sched_switch: prev_comm=my [odd] 1-2 x prev_pid=7941": the task that
    # switches out is the one perf names, so pid is prev_pid (it was the process id, 7935, for every thread)
    df = read_sched_trace(PIDTID)
    assert len(df) == 53 and df.attrs["bad_lines"] == [] and df.attrs["style"] == "perf script"
    switch = df[(df["event"] == "sched_switch") & (df["pid"] != -1)]  # perf prints tid -1 for exited threads
    assert len(switch) == 27 and (switch["pid"] == switch["prev_pid"]).all()
    assert sorted(set(df.loc[df["comm"] == "my [odd] 1-2 x", "pid"])) == [7935, *range(7937, 7947)]


def test_two_switch_lines_run_together_are_a_bad_line():
    # a lost newline between two real sched_switch lines read as one switch to the second line's next task
    i = next(i for i, line in enumerate(PERF_LINES) if "sched:sched_switch:" in line)
    j = next(j for j in range(i + 1, len(PERF_LINES)) if "sched:sched_switch:" in PERF_LINES[j])
    with pytest.raises(ParseError) as info:
        read_sched_trace(io.StringIO(PERF_LINES[i] + PERF_LINES[j] + "\n"))
    assert info.value.lineno == 1 and "next_comm=<comm>" in info.value.expected
    stall = gzip.decompress(STALL.read_bytes()).decode().splitlines()
    a, b = [line for line in stall if "sched_switch:" in line][:2]  # ftrace: the first line became a long comm
    with pytest.raises(ParseError):
        read_sched_trace(io.StringIO(a + b + "\n"))


def test_line_cut_before_its_event_name_is_a_bad_line():
    lines = PERF_LINES[:3]
    cut = lines[2][: lines[2].index("]") + 1]  # "            perf 26134 [000]", saved with a newline
    df = read_sched_trace(io.StringIO("\n".join([*lines[:2], cut]) + "\n"), on_bad_lines="skip")
    assert len(df) == 2 and [b["lineno"] for b in df.attrs["bad_lines"]] == [3]


def test_latency_format():
    # session 21 (data/real/SOURCES.md): options/latency-format on, the comm cut to 8 characters
    path = REAL / "ftrace-latency-format.txt"
    df = read_sched_trace(path)
    lines = pd.Series(Paste.read(path).lines)
    want = lines.str.extract(r"^\s*(.{1,8})-(\d+)\s+(\d+)\S{5}\s+(\d+)us.: (sched_\w+): (.*)$").dropna()
    assert len(df) == len(want) == 45 and df.attrs["style"] == "ftrace latency" and df.attrs["bad_lines"] == []
    assert df["event"].astype(str).tolist() == want[4].tolist()
    assert df["time"].tolist() == (want[3].astype(int) / 1e6).tolist()
    assert df["pid"].tolist() == want[1].astype(int).tolist()
    switch = df[df["event"] == "sched_switch"]
    prev = want.loc[want[4] == "sched_switch", 5].str.extract(r"prev_comm=(.*) prev_pid=(\d+)")
    assert switch["prev_comm"].tolist() == prev[0].tolist()  # the payload's comms are whole: "my [odd] 1-2 x"
    assert "my [odd] 1-2 x" in set(switch["prev_comm"]) and "my [odd]" in set(switch["comm"])
    assert detect_format(Paste.read(path)) == "sched_trace"  # 45 sched events against 8 vmalloc ones
