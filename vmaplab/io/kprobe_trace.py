"""Reader of kprobe and kretprobe events in ftrace text: the hits of probes placed on kernel functions
with ``/sys/kernel/tracing/kprobe_events`` (``p:<group>/<event> <function>`` and ``r:<group>/<event>
<function>``), as ``trace`` or ``trace_pipe`` print them (kernel/trace/trace_kprobe.c)::

    <comm>-<pid> [<cpu>] <flags> <time>: <event>: (<function>+0x4/0xc0)                       an entry
    <comm>-<pid> [<cpu>] <flags> <time>: <event>: (<caller>+0x19f/0x360 <- <function>)         a return

followed by the probe's fetch arguments (`` name=value``) when it has some. Which event is a probe is
told by that payload, whatever the event was named. :func:`vmaplab.probe_calls` pairs each entry with
its return into one row per call.

``perf script`` text of probe events is not read: it prints raw addresses instead of symbols.
Lines of other events (tracepoints beside the probes) and ``#`` header lines are skipped and counted.
"""

from __future__ import annotations

import pandas as pd

from ._source import OnBadLines, Paste, Source
from ._trace_lines import TracepointLines, ftrace_head

__all__ = ["read_kprobe_trace", "sniff"]

_SYMBOL = r"[A-Za-z_.$][\w.$]*"
_SITE = rf"(?P<site>(?P<symbol>{_SYMBOL})\+0x[0-9a-f]+/0x[0-9a-f]+)"
_ARGS = r"(?P<args>(?:\s+[^\s=]+=\S*)*)\s*$"
_ENTRY = rf"^\({_SITE}\){_ARGS}"
_RETURN = rf"^\({_SITE} <- (?P<function>{_SYMBOL})\){_ARGS}"
# what sniffing counts: the event's payload is a probe's "(symbol+off/size[ <- function])"
_SNIFF = (
    rf"\]\s+(?:\S{{4,5}}\s+)?\d+\.\d+:\s+\w+:\s\({_SYMBOL}\+0x[0-9a-f]+/0x[0-9a-f]+(?: <- {_SYMBOL})?\)"
)
_EXPECTED = (
    "an ftrace line of a kprobe or kretprobe event: '<comm>-<pid> [<cpu>] <flags> <time>: <event>: "
    "(<function>+0x<off>/0x<size>)' or '... <event>: (<caller>+0x<off>/0x<size> <- <function>)', "
    "then optional ' <arg>=<value>' fetch arguments"
)


def sniff(paste: Paste) -> int:
    """Number of lines of ``paste`` that are kprobe or kretprobe hits in ftrace text."""
    return int(paste.series().str.contains(_SNIFF).sum())


def read_kprobe_trace(src: Source, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Read ftrace text of kprobe and kretprobe events.

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a line whose event payload starts like a probe's, ``(``, or that names a probe
        event, but does not parse (a symbol-less raw address, a line cut short).

    Returns
    -------
    DataFrame, one row per probe hit in file order:

    ============  ========  ===================================================================
    block         int64     trace number in a paste of several traces (0-based)
    time          float64   hit time, seconds (the trace clock)
    cpu           int64     CPU that hit the probe
    comm, pid     string,   the task (pid: the thread id ftrace prints)
                  int64
    event         category  the probe event's name, as the user named it
    kind          category  ``entry`` (a kprobe) or ``return`` (a kretprobe)
    function      string    the probed function: the symbol of an entry's address, the function
                            after ``<-`` of a return
    site          string    the address as printed: an entry's probe point, a return's
                            return address (``<symbol>+0x<offset>/0x<size>``)
    caller        string    returns: the function returned to (the symbol of ``site``)
    args          string    the fetch arguments as printed (``<NA>`` when the probe has none)
    ============  ========  ===================================================================

    ``attrs["style"]`` is ``"ftrace"`` or ``"ftrace latency"`` (options/latency-format); lines of other events are
    counted in ``attrs["skipped_lines"]``; ``attrs["lost_events"]`` lists where the ring buffer dropped events
    (with a warning).
    """
    paste = Paste.read(src)
    lines = paste.series()
    head, style = ftrace_head(lines)
    probe = head["payload"].str.startswith("(").fillna(False).to_numpy(dtype=bool, copy=True)
    events = TracepointLines(dict.fromkeys(sorted(head.loc[probe, "event"].unique()), "kprobes"), claim_systems=False)
    probe |= events.ours(lines)  # a probe's line with another payload, or cut inside its event name
    head = head[probe]
    entry = head["payload"].str.extract(_ENTRY)
    ret = head["payload"].str.extract(_RETURN)
    is_entry, is_return = entry["site"].notna(), ret["site"].notna()
    bad = {int(lineno): _EXPECTED for lineno in head.index[~(is_entry | is_return)]}
    fields = pd.DataFrame(index=head.index[is_entry | is_return])
    fields["kind"] = pd.Categorical(["return" if r else "entry" for r in is_return[fields.index]],
                                    categories=["entry", "return"])  # fmt: skip
    fields["function"] = entry["symbol"].where(is_entry, ret["function"])[fields.index].astype("string")
    fields["site"] = entry["site"].where(is_entry, ret["site"])[fields.index].astype("string")
    fields["caller"] = ret["symbol"].where(is_return)[fields.index].astype("string")
    args = entry["args"].where(is_entry, ret["args"])[fields.index].str.strip()
    fields["args"] = args.where(args != "").astype("string")
    head = head.loc[fields.index]
    return events.frame(paste, probe, head, style, fields.reset_index(drop=True), bad, "kprobe_trace",
                        on_bad_lines, _EXPECTED)  # fmt: skip
