"""Line prefixes of tracepoint text, shared by the tracepoint readers.

``perf script`` prints ``<comm> <tid> [<cpu>] <secs>.<usecs>: <system>:<event>:`` (``-F +pid`` gives
``<pid>/<tid>``); ftrace's ``trace``/``trace_pipe`` prints ``<comm>-<pid> [(<tgid>)] [<cpu>] <flags>
<secs>.<usecs>: <event>:`` (its pid is the thread id), with ``CPU:<n> [LOST <count> EVENTS]`` where the
ring buffer dropped events. The payload follows the event name. A comm is at most 15 characters
(TASK_COMM_LEN), which keeps two lines run together from reading as one line with a long comm.

With ``options/latency-format`` on (and always under the latency tracers: irqsoff, wakeup, ...) ftrace
prints ``<comm>-<pid> <cpu><flags> <usecs>us<delay>: <event>:``: the comm cut to 8 characters and the time
in microseconds since the trace began, which is read as seconds since then. Two forms are refused with
what to change: ``options/verbose`` on top of the latency format, and the clocks that count ticks rather
than time (``trace_clock`` x86-tsc or counter: an integer timestamp).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import ParseError, VmaplabWarning, caller_stacklevel
from ._source import LineErrors, OnBadLines, Paste, assign_blocks, between_records, finish
from .perf_script import FRAME_LINE

# The word after the timestamp ("<secs>.<usecs>: ", in the latency format "<usecs>us<delay>: ", verbose
# "(+<ms>ms): ", with a tick clock "<ticks>: ") is the event name.
_EVENT_WORD = r"(?:\d\.\d+|\dus.?|ms\)|\d):\s+(?:\d+\s+)?(?P<word>[A-Za-z_][\w:]*)(?P<more>.?)"
_PERF = (
    r"^\s*(?P<comm>.*?)\s+(?:-?\d{{1,10}}/)?(?P<pid>-?\d{{1,10}})\s+\[(?P<cpu>\d{{1,6}})\]\s+"
    r"(?P<time>\d+\.\d+):\s+(?:\d+\s+)?(?:{systems}):(?P<event>\w+):\s?(?P<payload>.*)$"
)
# Any line of a trace, ours or not (another event, a function tracer's line): not a separator between
# two traces of a paste.
_ANY_EVENT = (
    r"(?:\[\d{1,6}\]\s+(?:\S{4,5}\s+)?\d+(?:\.\d+)?"  # default, and with a tick clock
    r"|-\d{1,10}\s+\d{1,6}[^\d\s]\S{3,4}\s+\d+us.?"  # latency format
    r"|ms \(\+[\d.]+ms\)):\s"  # verbose
)
# ftrace's note that a CPU's ring buffer dropped events (the count is missing when it is unknown)
_LOST = r"CPU:(?P<cpu>\d{1,6}) \[LOST (?:(?P<count>\d{1,20}) )?EVENTS\]\s*"
# a line of either style cut before its event name: the task, then maybe the cpu, flags and time
_CUT = (
    r"\s*(?:.{1,16}-\d{1,10}(?:\s+\(\s*[\d-]*\)?)?|.{1,16}?\s+(?:\d{1,10}/)?\d{1,10}/?)"
    r"(?:\s+\[\d{0,6}\]?(?:\s+[^\s:]{1,5})?(?:\s+\d+\.?\d*:?)?"
    r"|\s+\d{1,6}(?:[^\d\s]\S{0,4}(?:\s+\d+(?:us.?:?)?)?)?)?\s*"
)
_FTRACE = (
    r"^\s*(?P<comm>.{1,16})-(?P<pid>\d{1,10})\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[(?P<cpu>\d{1,6})\]\s+(?:\S{4,5}\s+)?"
    r"(?P<time>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<payload>.*)$"
)
_LATENCY = (
    r"^\s*(?P<comm>.{1,8})-(?P<pid>\d{1,10})\s+(?P<cpu>\d{1,6})[^\d\s]\S{3,4}\s+(?P<usecs>\d+)us.?:\s+"
    r"(?P<event>\w+):\s?(?P<payload>.*)$"
)
# ftrace lines the readers refuse, and what to change
_REFUSED = {
    r"\]\s+(?:\S{4,5}\s+)?\d+:\s": "a timestamp in seconds, '<secs>.<usecs>:' (this trace's clock counts "
    "ticks, as trace_clock x86-tsc and counter do: trace with the local, global, mono or boot clock)",
    r"ms \(\+[\d.]+ms\):\s": "ftrace's default or latency-format line (options/verbose is not read: "
    "echo 0 > options/verbose)",
}


def ftrace_head(lines: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """comm, pid, cpu, time (seconds, as text), event and payload of ftrace lines in the default or the
    latency format (NaN where neither matches), and the style of each line ("ftrace" or "ftrace latency")."""
    head = lines.str.extract(_FTRACE)
    style = pd.Series("ftrace", index=lines.index, dtype=object)
    rest = head["event"].isna()
    if rest.any():
        lat = lines[rest].str.extract(_LATENCY).dropna(subset=["event"])
        usecs = lat.pop("usecs").astype("int64")
        lat["time"] = (usecs // 10**6).astype(str) + "." + (usecs % 10**6).astype(str).str.zfill(6)
        head.loc[lat.index, lat.columns] = lat
        style[lat.index] = "ftrace latency"
    return head, style


class TracepointLines:
    """Which lines of a paste are events of ours, and their prefix fields.

    Parameters
    ----------
    events : dict of str to str
        Event name -> its tracepoint system (``"vmalloc"``, ``"sched"``, ...).
    claim_systems : bool
        Also claim perf's ``<system>:<other event>`` lines of these systems (they must then parse);
        otherwise only the named events are ours.
    """

    def __init__(self, events: dict[str, str], *, claim_systems: bool):
        self.events = tuple(events)
        self.systems = tuple(sorted(set(events.values())))
        self.claim_systems = claim_systems
        self._qualified = sorted(f"{system}:{event}" for event, system in events.items())
        names = {*events, *self._qualified}
        self._prefixes = {name[:i] for name in names for i in range(1, len(name) + 1)}
        self._sniff = r"\s(?:(?:" + "|".join(self.systems) + r"):)?(?:" + "|".join(self.events) + r"):\s"
        self._perf = _PERF.format(systems="|".join(self.systems))

    def sniff(self, paste: Paste) -> int:
        """Number of lines of ``paste`` that are events of ours."""
        return int(paste.series().str.contains(self._sniff).sum())

    def ours(self, lines: pd.Series) -> np.ndarray:
        """True for lines that name an event of ours (or are cut inside its name)."""
        m = lines.str.extract(_EVENT_WORD)
        word = m["word"].fillna("")
        name = word.str[:-1]
        named = word.str.endswith(":") & (name.isin(self.events) | name.isin(self._qualified))
        if self.claim_systems:
            named |= word.str.endswith(":") & word.str.startswith(tuple(f"{s}:" for s in self.systems))
        cut = m["more"].eq("") & word.isin(self._prefixes)
        # the colon after the name lost ("alloc_vmap_area va_start: ..."), unlike the function tracer's
        # line for the function of the same name ("alloc_vmap_area <-__get_vm_area_node")
        colonless = m["more"].eq(" ") & (word.isin(self.events) | word.isin(self._qualified))
        colonless &= ~lines.str.contains(r"\s<-\S", regex=True)
        return (named | cut | colonless).to_numpy()

    def separators(self, lines: pd.Series, ours: np.ndarray) -> pd.Index:
        """Line numbers of the text between traces: lines neither ours, nor events of others, nor the call
        chains perf script -g prints under events, nor blank."""
        text = ~ours & lines.str.strip().ne("").to_numpy()
        other = lines.str.contains(_ANY_EVENT) | lines.str.fullmatch(_LOST) | lines.str.match(FRAME_LINE)
        return lines.index[text & ~other.to_numpy()]

    def split(self, lines: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
        """comm, pid, cpu, time, event and payload of each line (NaN where no style matches), and the
        style of each line ("perf script", "ftrace" or "ftrace latency")."""
        head = lines.str.extract(self._perf)
        is_perf = head["event"].notna()
        ftrace, style = ftrace_head(lines[~is_perf])
        head.loc[~is_perf] = ftrace[head.columns].to_numpy()
        return head, style.reindex(lines.index, fill_value="perf script")

    def frame(self, paste: Paste, ours: np.ndarray, head: pd.DataFrame, style: pd.Series, fields: pd.DataFrame,
              bad: dict[int, str], fmt: str, on_bad_lines: OnBadLines, expected: str) -> pd.DataFrame:  # fmt: skip
        """A reader's result: block, time, cpu, comm, pid and event of each parsed line (``head``), then
        the payload columns of ``fields`` (same index); the ``bad`` lines (line number -> what was
        expected; the ftrace forms refused say what to change) and the lines damaged between two trace
        lines or cut below one reported in file order; ParseError naming ``expected`` when nothing is
        ours, at the first line that names an event of ours if one does. Dropped events (``CPU:<n> [LOST
        ...]``) are listed in ``attrs["lost_events"]`` (lineno, cpu, count) with a warning."""
        lines = paste.series()
        lost = lines.str.extract(f"^{_LOST}$").dropna(subset=["cpu"])
        is_rec = pd.Series(ours, index=lines.index) | lines.str.contains(_ANY_EVENT) | lines.index.isin(lost.index)
        damaged = between_records(paste, lines, is_rec, _CUT) & ~lines.str.lstrip().str.startswith("#")
        bad = {**bad, **dict.fromkeys(lines.index[damaged], expected)}
        bad_text = lines[sorted(bad)]
        for form, why in _REFUSED.items():
            bad.update(dict.fromkeys(bad_text.index[bad_text.str.contains(form)], why))
        errors = LineErrors.of(paste, on_bad_lines)
        for lineno in sorted(bad):  # in file order, so "error" mode names the first bad line
            errors.bad(int(lineno), bad[lineno], paste.lines[lineno - 1])
        if head.empty and not bad:
            naming = lines.index[lines.str.contains(self._sniff)]
            lineno, line = (int(naming[0]), lines[naming[0]]) if len(naming) else paste.first_text_line()
            raise ParseError(paste.source, lineno, expected, line)
        df = pd.DataFrame(index=pd.RangeIndex(len(head)))
        df["block"] = assign_blocks(head.index.to_numpy(), self.separators(lines, ours).to_numpy())
        df["time"] = head["time"].astype("float64").to_numpy()
        df["cpu"] = head["cpu"].astype("int64").to_numpy()
        df["comm"] = head["comm"].str.strip().astype("string").array
        df["pid"] = head["pid"].astype("int64").to_numpy()
        df["event"] = pd.Categorical(head["event"].to_numpy(), categories=list(self.events))
        for col in fields.columns:
            df[col] = fields[col].array
        styles = sorted(set(style[head.index]))
        label = styles[0] if len(styles) == 1 else ("mixed" if styles else None)
        skipped = int((~ours & ~damaged.to_numpy() & lines.str.strip().ne("").to_numpy()).sum())
        dropped = [{"lineno": int(n), "cpu": int(c), "count": None if pd.isna(k) else int(k)}
                   for n, c, k in zip(lost.index, lost["cpu"], lost["count"])]  # fmt: skip
        if dropped:
            warnings.warn(VmaplabWarning(f"{paste.source}: the trace is incomplete: the ring buffer dropped events "
                                         f"{len(dropped)} time(s), first at line {dropped[0]['lineno']}"),
                          stacklevel=caller_stacklevel())  # fmt: skip
        return finish(df, fmt, paste, errors, skipped=skipped, style=label, lost_events=dropped)


def event_clock(trace: pd.DataFrame) -> pd.DataFrame:
    """A trace frame with its events' own clock in ``time``: a frame from :func:`vmaplab.read_bundle`
    keeps that clock in ``event_time`` (its ``time`` is the snapshot's)."""
    if "event_time" in trace.columns:
        trace = trace.drop(columns="time", errors="ignore").rename(columns={"event_time": "time"})
    return trace


def lost_events(frame: pd.DataFrame, consequence: str) -> list[dict]:
    """The ``attrs["lost_events"]`` of a trace frame (lineno, cpu, count), with a warning saying what an
    analysis of it may get wrong (``consequence``) when the ring buffer dropped events."""
    lost = list(frame.attrs.get("lost_events") or [])
    if lost:
        warnings.warn(VmaplabWarning(f"{frame.attrs.get('source')}: the ring buffer dropped events {len(lost)} "
                                     f"time(s), first at line {lost[0]['lineno']}: {consequence}"),
                      stacklevel=caller_stacklevel())  # fmt: skip
    return lost
