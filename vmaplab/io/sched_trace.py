"""Reader of the workqueue and scheduler tracepoints: ``perf script`` or ftrace text of the
``workqueue:workqueue_*`` and ``sched:sched_switch`` / ``sched_wakeup`` / ``sched_waking`` /
``sched_wakeup_new`` / ``sched_migrate_task`` events — what shows when a work item (the vmap drain,
say) was queued, when its kworker ran it, and when that kworker was on a CPU.

The payloads are the events' print formats (include/trace/events/workqueue.h and sched.h, as a
6.12 kernel prints them)::

    workqueue_queue_work:    work struct=<ptr> function=<fn> workqueue=<name> req_cpu=<n> cpu=<n>
    workqueue_activate_work: work struct <ptr> [function=<fn>]
    workqueue_execute_start: work struct <ptr>: function <fn>
    workqueue_execute_end:   work struct <ptr>: function <fn>
    sched_switch:            prev_comm=<comm> prev_pid=<n> prev_prio=<n> prev_state=<S> ==> next_comm=<comm> next_pid=<n> next_prio=<n>
    sched_wakeup[_new], sched_waking: comm=<comm> pid=<n> prio=<n> target_cpu=<n>
    sched_migrate_task:      comm=<comm> pid=<n> prio=<n> orig_cpu=<n> dest_cpu=<n>

Lines of other events (the vmalloc ones beside them, for instance) and ``#`` header lines are skipped
and counted. A comm is at most 15 characters and a workqueue name at most 31 (TASK_COMM_LEN, WQ_NAME_LEN):
a line that runs into the next one does not parse.
"""

from __future__ import annotations

import pandas as pd

from ._source import OnBadLines, Paste, Source
from ._trace_lines import TracepointLines

__all__ = ["read_sched_trace", "sniff", "EVENTS"]

_SYSTEM = {
    "workqueue_queue_work": "workqueue",
    "workqueue_activate_work": "workqueue",
    "workqueue_execute_start": "workqueue",
    "workqueue_execute_end": "workqueue",
    "sched_switch": "sched",
    "sched_wakeup": "sched",
    "sched_wakeup_new": "sched",
    "sched_waking": "sched",
    "sched_migrate_task": "sched",
}
EVENTS = tuple(_SYSTEM)
_LINES = TracepointLines(_SYSTEM, claim_systems=False)

_WAKE = (
    r"^comm=(?P<task_comm>.{0,15}?) pid=(?P<task_pid>-?\d{1,10}) prio=-?\d{1,4}(?: success=1)? "
    r"target_cpu=(?P<target_cpu>\d{1,6})\s*$"
)
_EXEC = r"^work struct (?P<work>[^\s:]+): function (?P<function>\S+)\s*$"
_PAYLOAD = {
    "workqueue_queue_work": (
        r"^work struct=(?P<work>\S+) function=(?P<function>\S+) workqueue=(?P<workqueue>.{1,31}?) "
        r"req_cpu=(?P<req_cpu>-?\d{1,6}) cpu=(?P<target_cpu>-?\d{1,6})\s*$"
    ),
    "workqueue_activate_work": r"^work struct (?P<work>\S+)(?: function=(?P<function>\S+))?\s*$",
    "workqueue_execute_start": _EXEC,
    "workqueue_execute_end": _EXEC,
    "sched_switch": (
        r"^prev_comm=(?P<prev_comm>.{0,15}?) prev_pid=(?P<prev_pid>-?\d{1,10}) prev_prio=-?\d{1,4} "
        r"prev_state=(?P<prev_state>\S+) ==> next_comm=(?P<next_comm>.{0,15}?) next_pid=(?P<next_pid>-?\d{1,10}) "
        r"next_prio=-?\d{1,4}\s*$"
    ),
    "sched_wakeup": _WAKE,
    "sched_wakeup_new": _WAKE,
    "sched_waking": _WAKE,
    "sched_migrate_task": (
        r"^comm=(?P<task_comm>.{0,15}?) pid=(?P<task_pid>-?\d{1,10}) prio=-?\d{1,4} "
        r"orig_cpu=(?P<orig_cpu>\d{1,6}) dest_cpu=(?P<target_cpu>\d{1,6})\s*$"
    ),
}
_EXPECTED = {
    None: "a perf script or ftrace line of a workqueue or sched tracepoint: "
    "'<comm> <pid> [<cpu>] <time>: <system>:<event>: <fields>' or '<comm>-<pid> [<cpu>] <flags> <time>: <event>: <fields>'",
    "workqueue_queue_work": "'work struct=<ptr> function=<fn> workqueue=<name> req_cpu=<n> cpu=<n>'",
    "workqueue_activate_work": "'work struct <ptr> [function=<fn>]'",
    "workqueue_execute_start": "'work struct <ptr>: function <fn>'",
    "workqueue_execute_end": "'work struct <ptr>: function <fn>'",
    "sched_switch": "'prev_comm=<comm> prev_pid=<n> prev_prio=<n> prev_state=<S> ==> next_comm=<comm> next_pid=<n> next_prio=<n>'",
    "sched_wakeup": "'comm=<comm> pid=<n> prio=<n> target_cpu=<n>'",
    "sched_migrate_task": "'comm=<comm> pid=<n> prio=<n> orig_cpu=<n> dest_cpu=<n>'",
}
_EXPECTED["sched_wakeup_new"] = _EXPECTED["sched_waking"] = _EXPECTED["sched_wakeup"]
# payload column -> dtype, in frame order
_COLUMNS = {
    "work": "string",
    "function": "string",
    "workqueue": "string",
    "req_cpu": "Int64",
    "target_cpu": "Int64",
    "orig_cpu": "Int64",
    "prev_comm": "string",
    "prev_pid": "Int64",
    "prev_state": "string",
    "next_comm": "string",
    "next_pid": "Int64",
    "task_comm": "string",
    "task_pid": "Int64",
}


def sniff(paste: Paste) -> int:
    """Number of lines of ``paste`` that are workqueue or sched tracepoint events of this reader."""
    return _LINES.sniff(paste)


def read_sched_trace(src: Source, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Read ``perf script`` (or ftrace) text of the workqueue and scheduler tracepoints.

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a line of one of :data:`EVENTS` that does not parse.

    Returns
    -------
    DataFrame, one row per event in file order:

    ====================  =======  ================================================================
    block                 int64    trace number in a paste of several traces (0-based)
    time                  float64  event time, seconds (perf/ftrace clock)
    cpu                   int64    CPU that hit the tracepoint
    comm, pid             string,  the task that hit it (pid: its thread id, the tid of perf's pid/tid)
                          int64
    event                 category one of :data:`EVENTS`
    work                  string   workqueue events: the work item's (hashed) address
    function              string   workqueue events: the work function (activate: <NA> on kernels
                                   that do not print it)
    workqueue             string   queue_work: the workqueue's name (``events`` is system_wq)
    req_cpu, target_cpu   Int64    queue_work: the CPU asked for (the number of CPUs possible for
                                   "any") and the CPU whose pool got the work; wakeups: the CPU
                                   the woken task will run on; migrate: the destination CPU
    orig_cpu              Int64    migrate: the CPU the task leaves
    prev_comm, prev_pid,  string,  sched_switch: the task switched out and its state (``R``/``R+``:
    prev_state            Int64,   still runnable, preempted; ``S``/``D``/``I``: it sleeps)
                          string
    next_comm, next_pid   string,  sched_switch: the task switched in
                          Int64
    task_comm, task_pid   string,  wakeups and migrate: the task woken or moved
                          Int64
    ====================  =======  ================================================================

    Fields an event does not have are <NA>. ``attrs["style"]`` is ``"perf script"``, ``"ftrace"``,
    ``"ftrace latency"`` (options/latency-format: times from the trace's start, comms cut to 8) or
    ``"mixed"``; lines of other events are counted in ``attrs["skipped_lines"]``. Where the ring buffer
    dropped events (``CPU:<n> [LOST <count> EVENTS]``), ``attrs["lost_events"]`` lists them and a warning
    says the trace is incomplete.
    """
    paste = Paste.read(src)
    lines = paste.series()
    ours = _LINES.ours(lines)
    head, style = _LINES.split(lines[ours])
    bad = {lineno: _EXPECTED[None] for lineno in head.index[head["event"].isna() | ~head["event"].isin(EVENTS)]}
    head = head[head["event"].isin(EVENTS)]
    fields = pd.DataFrame({col: pd.array([pd.NA] * len(head), dtype=t) for col, t in _COLUMNS.items()})
    fields.index = head.index
    for event, regex in _PAYLOAD.items():
        parsed = head.loc[head["event"] == event, "payload"].str.extract(regex)
        required = [c for c in parsed.columns if not (event == "workqueue_activate_work" and c == "function")]
        ok = parsed[required].notna().all(axis=1)
        bad.update((lineno, _EXPECTED[event]) for lineno in parsed.index[~ok])
        parsed = parsed[ok]
        for col in parsed.columns:
            fields.loc[parsed.index, col] = parsed[col].astype(_COLUMNS[col]).array
    fields = fields.drop(index=list(bad), errors="ignore")
    head = head.loc[fields.index]
    return _LINES.frame(paste, ours, head, style, fields, bad, "sched_trace", on_bad_lines, _EXPECTED[None])
