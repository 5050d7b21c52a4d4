"""Folded stacks from ``perf script`` text, and a perf-report-like profile from sampled stacks.

:func:`collapse_stacks` gives, option for option, the output of FlameGraph's
``stackcollapse-perf.pl`` (``--pid``, ``--tid``, ``--kernel``, ``--jit``, ``--all``, ``--addrs``): one row per
distinct folded stack ``comm;root;...;leaf`` with the summed sample periods. The rules it follows, learnt
from the Perl script (FlameGraph commit 41fee1f) and written here anew:

* lines starting with ``#`` are skipped; a blank line ends a sample;
* a sample header is ``^(\\S.+?)\\s+(\\d+)/*(\\d+)*\\s+`` (comm, then pid/tid or tid); its period and
  event come from ``:\\s*(\\d+)*\\s+(\\S+):\\s*$`` (period 1 when absent or 0), and only samples of the
  first event seen are kept; spaces in the process name become ``_``;
* a frame line is ``^\\s*(\\w+)\\s*(.+) \\((.*)\\)`` (pc, function, module); ``+0x...`` offsets are
  dropped, functions starting with ``(`` are skipped, ``a->b`` inline chains give ``b_[i]``,
  ``[unknown]`` becomes ``[<module basename>]`` (``[<name> <pc>]`` with ``addrs``), ``;`` becomes
  ``:``, everything from the first ``(`` is cut (unless it is a Go method or ``(anonymous
  namespace)``), quotes go, Java frames lose their leading ``L``, and ``kernel``/``jit`` append
  ``_[k]``/``_[j]``;
* stacks are sorted byte-wise.

Known difference: the Perl script forgets a last sample that has no blank line after it; vmaplab
counts it. Samples are streamed in large text chunks; only the running folded counts (and a bounded
cache of already-seen call chains) are kept, so a multi-GB file needs little memory.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import VmaplabWarning, caller_stacklevel
from ..io._source import LineErrors, OnBadLines, Source, open_text

__all__ = ["collapse_stacks", "profile_from_samples"]

# ASCII semantics: the Perl script works on bytes, where \w, \s and \d are ASCII classes.
_A = re.ASCII
_HEADER = re.compile(r"(\S.+?)\s+(\d+)/*(\d+)*\s+", _A)
_PERIOD_EVENT = re.compile(r":\s*(\d+)*\s+(\S+):\s*\Z", _A)
_FRAME = re.compile(r"\s*(\w+)\s*(.+) \((.*)\)", _A)
# A sample with the usual header, "<comm> <pid>[/<tid>] [[<cpu>]] <secs>: [<period>] <event>: " with a
# one-word comm of two characters or more, then its lines up to the blank line. On such a header the
# two regexes above give comm, pid, tid, period and event exactly as these groups do, so the fast path
# reads a whole sample with one match; the last group is its lines, each with its newline.
_USUAL_SAMPLE = re.compile(
    r"(\S\S+) +(\d+)(?:/(\d+))? +(?:\[\d+\] +)?\d+\.\d+: +(?:(\d+) +)?(\S+): *\n((?:[^\n]+\n)*)\n", _A
)
_OFFSET = re.compile(r"\+0x[\da-f]+\Z", _A)
_DIRS = re.compile(r".*/", _A)
_GO_METHOD = re.compile(r"\.\(.*\)\.", _A)
_ARGS = re.compile(r"\((?!anonymous namespace\)).*", _A)
_KERNEL_MODULE = re.compile(r"^\[|vmlinux\Z", _A)
_JIT_MAP = re.compile(r"/tmp/perf-\d+\.map", _A)

_CHUNK = 1 << 22  # characters read per step
_MAX_PENDING = 1 << 26  # a block longer than this (no blank line for 64 Mi chars) is fed line by line
_MAX_BODIES = 1 << 14  # distinct call chains remembered before that cache is dropped
_MAX_LINES = 1 << 18  # distinct frame lines remembered before that cache is dropped
_EXPECTED = "a perf script sample header ('<comm> <pid> ... <event>:'), a frame line '<pc> <function> (<module>)' or a blank line"
# cache markers; folded names come from single lines, so they never hold a newline
_COMPLEX = "\n"  # this block needs the line-by-line machine
_NONE = "\n\n"  # a frame line that adds no name (a "(...)" function)


def _truthy(text: str | None) -> bool:
    """Perl's truth of a string: false for undef, '' and '0'."""
    return text is not None and text != "" and text != "0"


@dataclass
class _Options:
    pid: bool
    tid: bool
    kernel: bool
    jit: bool
    addrs: bool


def _frame_functions(pc: str, rawfunc: str, mod: str, java: bool, opt: _Options) -> list[str] | None:
    """The folded names of one frame line (several for an ``a->b`` inline chain); None to skip it."""
    rawfunc = _OFFSET.sub("", rawfunc, count=1)
    if rawfunc.startswith("("):
        return None
    parts = rawfunc.split("->")
    while parts and parts[-1] == "":  # Perl's split drops trailing empty fields
        parts.pop()
    out: list[str] = []
    for func in parts:
        if func == "[unknown]":
            name = _DIRS.sub("", mod, count=1) if mod != "[unknown]" else "unknown"
            func = f"[{name} <{pc}>]" if opt.addrs else f"[{name}]"
        func = func.replace(";", ":")
        if not _GO_METHOD.search(func):
            func = _ARGS.sub("", func, count=1)
        func = func.replace('"', "").replace("'", "")
        if java and "/" in func and func.startswith("L"):
            func = func[1:]
        if out:
            if "_[i]" not in func:
                func += "_[i]"
        elif opt.kernel and _KERNEL_MODULE.search(mod) and "unknown" not in mod:
            func += "_[k]"
        elif opt.jit and _JIT_MAP.search(mod):
            if "_[j]" not in func:
                func += "_[j]"
        out.append(func)
    return out


@dataclass
class _Where:
    """The line number of a block at ``offset`` of ``region`` (whose first line is ``base``), counted
    only when an error message needs it."""

    region: str
    offset: int
    base: int
    extra: int = 0

    def plus(self, n: int) -> "_Where":
        return _Where(self.region, self.offset, self.base, self.extra + n)

    def __call__(self) -> int:
        return self.base + self.region.count("\n", 0, self.offset) + self.extra


@dataclass
class _Collapser:
    """The stackcollapse-perf.pl state machine, plus a fast path for well-formed samples."""

    opt: _Options
    errors: LineErrors
    event_filter: str = ""
    other_event_samples: int = 0  # samples of events other than the first, left out
    counts: dict = field(default_factory=dict)
    # caches of already folded call chains and frame lines (one set for java processes)
    bodies: dict = field(default_factory=dict)
    java_bodies: dict = field(default_factory=dict)
    lines_seen: dict = field(default_factory=dict)
    java_lines: dict = field(default_factory=dict)
    rests: dict = field(default_factory=dict)  # indented frame lines by the text after the address
    java_rests: dict = field(default_factory=dict)
    # line-by-line state (only between a header and its blank line)
    pname: str | None = None
    stack: list = field(default_factory=list)
    period: int = 1

    # -- the exact machine -------------------------------------------------------------------------
    def _pname(self, line: str) -> tuple[str | None, int]:
        """(process name, period) of a header line; process name None when its event is filtered out."""
        m = _HEADER.match(line)
        comm, pid, tid = m.group(1), m.group(2), m.group(3)
        if not _truthy(tid):
            tid, pid = pid, "?"
        period = None
        pe = _PERIOD_EVENT.search(line)
        if pe:
            period, event = pe.group(1), pe.group(2)
            if self.event_filter == "":
                self.event_filter = event
            elif event != self.event_filter:
                self.other_event_samples += 1
                return None, 1
        if self.opt.tid:
            name = f"{comm}-{pid}/{tid}"
        elif self.opt.pid:
            name = f"{comm}-{pid}"
        else:
            name = comm
        return name.replace(" ", "_"), int(period) if _truthy(period) else 1

    def feed(self, line: str, lineno) -> None:
        """One line (without its newline) through the line-by-line machine; ``lineno`` is its line
        number, or a function giving it (worked out only for an error message)."""
        if line.startswith("#"):
            return
        if line == "":
            if self.pname is not None:
                self._add(self.pname, "".join(";" + f for f in self.stack), self.period)
            self.pname, self.stack = None, []
            return
        if _HEADER.match(line):
            name, period = self._pname(line)
            if name is not None:
                self.pname, self.period = name, period
            return
        m = _FRAME.match(line)
        if m is None:
            self.errors.bad(lineno() if callable(lineno) else lineno, _EXPECTED, line)
            return
        if self.pname is None:
            return
        funcs = _frame_functions(m.group(1), m.group(2), m.group(3), self.pname.startswith("java"), self.opt)
        if funcs is not None:
            self.stack[0:0] = funcs

    # -- the fast path -----------------------------------------------------------------------------
    def _body(self, body: str, java: bool) -> str:
        """Folded frames (root first, each after a ';') of a block's frame lines, or _COMPLEX when a
        line is not a plain frame (a comment, a second header, an unrecognised line)."""
        bodies = self.java_bodies if java else self.bodies
        hit = bodies.get(body)
        if hit is not None:
            return hit
        seen = self.java_lines if java else self.lines_seen
        lines = body.split("\n") if body else []
        if body.endswith("\n"):  # the fast path's bodies keep each line's newline
            lines.pop()
        parts = list(map(seen.get, lines))  # one C loop; None where a line is new
        if None in parts:
            if len(seen) >= _MAX_LINES:
                seen.clear()
            for i, part in enumerate(parts):
                if part is None:
                    parts[i] = seen[lines[i]] = self._line(lines[i], java)
        parts.reverse()
        # each frame after a ';' (the process name comes first), so that a lone empty name gives 'comm;'
        result = "".join(";" + p for p in parts)
        if "\n" in result:  # a marker
            result = _COMPLEX if _COMPLEX in parts else "".join(";" + p for p in parts if p != _NONE)
        if len(bodies) >= _MAX_BODIES:
            bodies.clear()
        bodies[body] = result
        return result

    def _line(self, line: str, java: bool) -> str:
        """The ';'-joined folded names of one frame line, _NONE when it adds none, _COMPLEX when it is
        not a frame line."""
        rests = self.java_rests if java else self.rests
        rest = None
        if line[:1] in (" ", "\t") and not self.opt.addrs:
            # An indented line is no header or comment. When its first word is all ASCII letters and
            # digits and the regex takes that whole word as pc, the text after the word alone decides
            # the names, so lines that differ only by address share them.
            word, _, rest = line.lstrip(" \t").partition(" ")
            if word.isascii() and word.isalnum():
                hit = rests.get(rest)
                if hit is not None:
                    return hit
            else:
                rest = None
        m = None if line.startswith("#") or _HEADER.match(line) else _FRAME.match(line)
        if m is None:
            return _COMPLEX
        funcs = _frame_functions(m.group(1), m.group(2), m.group(3), java, self.opt)
        result = ";".join(funcs) if funcs else _NONE
        if rest is not None and m.group(1) == word:
            if len(rests) >= _MAX_LINES:
                rests.clear()
            rests[rest] = result
        return result

    def block(self, text: str, region: str, offset: int, base: int) -> None:
        """One sample block ``text`` (the lines between two blank lines), found at ``offset`` of
        ``region`` whose first line is line ``base``; the blank line after it is implied."""
        newline = text.find("\n")
        header, body = (text, "") if newline < 0 else (text[:newline], text[newline + 1 :])
        first = _Where(region, offset, base)
        if not header.startswith("#") and _HEADER.match(header):
            name, period = self._pname(header)
            if name is None:  # an event filtered out: the Perl script skips the whole sample
                if body and self._body(body, False) == _COMPLEX:
                    self.lines(text, first, skip_header=True)
                return
            frames = self._body(body, name.startswith("java"))
            if frames != _COMPLEX:
                self._add(name, frames, period)
                return
        self.lines(text, first)

    def lines(self, text: str, first, skip_header: bool = False) -> None:
        """Feed the lines of ``text`` and the blank line after them; ``first`` is the number of the
        first line, or a function giving it."""
        lines = text.split("\n")
        for i in range(1 if skip_header else 0, len(lines)):
            self.feed(lines[i], first.plus(i) if isinstance(first, _Where) else first + i)
        self.feed("", first.plus(len(lines)) if isinstance(first, _Where) else first + len(lines))

    def _add(self, name: str, frames: str, period: int) -> None:
        key = (name, frames)
        self.counts[key] = self.counts.get(key, 0) + period

    def frame(self) -> pd.DataFrame:
        folded: dict[str, int] = {}
        for (name, frames), count in self.counts.items():
            stack = name + frames
            folded[stack] = folded.get(stack, 0) + count
        stacks = sorted(folded, key=lambda s: s.encode("utf-8", "surrogateescape"))
        return pd.DataFrame(
            {
                "stack": pd.array(stacks, dtype="string"),
                "count": np.array([folded[s] for s in stacks], dtype=np.int64),
            }
        )


def collapse_stacks(
    src: Source,
    *,
    pid: bool = False,
    tid: bool = False,
    kernel: bool = False,
    jit: bool = False,
    all: bool = False,  # noqa: A002 - the name of the stackcollapse-perf.pl option
    addrs: bool = False,
    on_bad_lines: OnBadLines = "error",
) -> pd.DataFrame:
    """Fold the call chains of ``perf script`` output, as ``stackcollapse-perf.pl`` does.

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
        ``perf script`` output with call chains (``perf record -g``). Read as a stream.
    pid, tid : bool
        Name processes ``comm-pid`` (``--pid``) or ``comm-pid/tid`` (``--tid``); ``?`` stands for a
        pid the input does not show.
    kernel, jit, all : bool
        Append ``_[k]`` to kernel frames, ``_[j]`` to JIT frames (``/tmp/perf-<pid>.map``), or both.
    addrs : bool
        Keep the address of unresolved frames: ``[<module> <pc>]``.
    on_bad_lines : {"error", "warn", "skip"}
        A line that is neither a comment, a blank line, a sample header nor a frame line (the Perl
        script warns "Unrecognized line" and goes on, which is ``"warn"``).

    Returns
    -------
    DataFrame, one row per folded stack, sorted byte-wise like the Perl script's output:

    =====  ======  ==================================================================
    stack  string  ``comm;root_function;...;leaf_function``
    count  int64   sum of the sample periods (1 per sample when perf printed no period)
    =====  ======  ==================================================================

    ``attrs``: ``source``, ``event`` (the event kept: the first one seen), ``other_event_samples``
    (samples of other events, left out), ``bad_lines``. A warning says when sample headers without
    pid or tid gave every stack its own name (the Perl's pattern takes the CPU and time into it).

    >>> folded = collapse_stacks("data/real/perf-script-churn.txt.gz")
    """
    opt = _Options(pid=pid, tid=tid, kernel=kernel or all, jit=jit or all, addrs=addrs)
    with open_text(src) as (stream, name):
        errors = LineErrors(name, on_bad_lines)
        machine = _Collapser(opt, errors)
        _run(machine, _chunks(stream))
    df = machine.frame()
    df.attrs.update(
        source=name,
        event=machine.event_filter or None,
        other_event_samples=machine.other_event_samples,
        bad_lines=list(errors.items),
    )
    errors.emit_warning()
    # a header without pid/tid: the Perl's pattern takes the CPU and time into the process name
    timed = int(df["stack"].str.contains(r"^[^;]*_\[\d+\]_+\d+\.\d+:(?:;|$)").sum()) if len(df) else 0
    if timed:
        warnings.warn(VmaplabWarning(f"{name}: {timed} stack(s) are named with their sample's CPU and time, as "
                                     "the Perl script names samples whose header has no pid or tid, so they do "
                                     "not fold together: record the tid (perf script -F with tid)"),
                      stacklevel=caller_stacklevel())  # fmt: skip
    return df


def _chunks(stream) -> Iterable[str]:
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return
        yield chunk


def _run(machine: _Collapser, chunks: Iterable[str]) -> None:
    """Cut the text into blocks at blank lines and feed them to ``machine``."""
    pending = ""  # text after the last blank line seen
    lineno = 1  # line number of pending's first line
    open_block = False  # pending continues a block whose first lines went through machine.feed
    for chunk in chunks:
        pending += chunk
        end = pending.rfind("\n\n")
        if end < 0:
            cut = pending.rfind("\n")
            if len(pending) > _MAX_PENDING and cut >= 0:  # no blank line for long: feed whole lines
                for i, line in enumerate(pending[:cut].split("\n")):
                    machine.feed(line, lineno + i)
                lineno += pending.count("\n", 0, cut + 1)
                pending, open_block = pending[cut + 1 :], True
            continue
        region, pending = pending[:end], pending[end + 2 :]
        lineno = _blocks(machine, region, lineno, open_block)
        open_block = False
    if pending:
        text = pending[:-1] if pending.endswith("\n") else pending
        _blocks(machine, text, lineno, open_block)


def _blocks(machine: _Collapser, region: str, lineno: int, open_block: bool) -> int:
    """Feed the blocks of ``region`` (each followed by a blank line), whose first line is line
    ``lineno``; return the number of the line after region's closing blank line.

    The loop is :meth:`_Collapser.block` written out for speed: a sample with a usual header
    (:data:`_USUAL_SAMPLE`) and only frame lines is counted here, any other block goes there."""
    text = region + "\n\n"
    pos, size = 0, len(text)
    if open_block:
        end = text.find("\n\n")
        machine.lines(text[:end], lineno)
        pos = end + 2
    counts, bodies, java_bodies = machine.counts, machine.bodies, machine.java_bodies
    sample = _USUAL_SAMPLE.match
    renamed = machine.opt.tid or machine.opt.pid
    with_tid = machine.opt.tid
    while pos < size:
        if text[pos] == "\n":  # one more blank line
            pos += 1
            continue
        m = sample(text, pos) if text[pos] != "#" else None  # comment lines go the slow way
        if m is None:
            end = text.find("\n\n", pos)
            machine.block(text[pos:end], text, pos, lineno)
            pos = end + 2
            continue
        comm, pid, tid, period, event, body = m.groups()
        if event != machine.event_filter and machine.event_filter:
            machine.block(text[pos : m.end() - 2], text, pos, lineno)  # filtered out (and checked) there
            pos = m.end()
            continue
        java = comm.startswith("java")
        frames = (java_bodies if java else bodies).get(body)
        if frames is None:
            frames = machine._body(body, java)
        if frames == _COMPLEX:
            machine.block(text[pos : m.end() - 2], text, pos, lineno)
            pos = m.end()
            continue
        machine.event_filter = event
        pos = m.end()
        if renamed:
            if tid is None or tid == "0":
                tid, pid = pid, "?"
            name = f"{comm}-{pid}/{tid}" if with_tid else f"{comm}-{pid}"
        else:
            name = comm
        key = (name, frames)
        counts[key] = counts.get(key, 0) + (int(period) if period and period != "0" else 1)
    return lineno + region.count("\n") + 2


_KERNEL_START = 0xFFFF800000000000  # x86_64 (and arm64) kernel addresses are at or above this


def _address_name(address: int) -> str:
    """An unresolved frame as perf report names it: C's ``%#018llx``, which prints no ``0x`` for 0."""
    return f"0x{address:016x}" if address else "0" * 16


def profile_from_samples(samples, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Children and self shares per symbol computed from sampled call chains, in the schema of
    :func:`vmaplab.io.perf_report.read_perf_report`, so that a ``perf script`` can be compared with a
    ``perf report`` (or with another profile, see :func:`vmaplab.analysis.profiles.compare_profiles`).

    Parameters
    ----------
    samples : DataFrame of :func:`vmaplab.io.perf_script.read_perf_script`, or a source it reads
    on_bad_lines : {"error", "warn", "skip"}
        Passed to ``read_perf_script`` when ``samples`` is a source.

    Returns
    -------
    DataFrame, one row per (command, shared object, symbol), sorted by children then self share:

    =============  =======  ======================================================================
    block          int64    0
    event          string   the samples' event (the first one: samples of other events are left
                            out, counted in ``attrs["other_event_samples"]``, with a warning)
    children_pct   Float64  percent of the total period in samples whose call chain holds the symbol
                            (each sample counted once however often the symbol appears in it)
    self_pct       Float64  percent of the total period in samples whose leaf is the symbol
    samples        Int64    number of samples whose leaf is the symbol (perf report's ``-n``)
    command        string   the sample's task name
    shared_object  string   as in read_perf_script's ``dsos``
    symbol         string   the symbol; an unresolved frame is named by its address
                            (``%#018llx``), as perf report does (perf report shows some user
                            addresses relative to the process, perf script relative to the DSO)
    symbol_kind    string   ``"k"`` for a kernel address (from 0xffff800000000000), else ``"."``
    =============  =======  ======================================================================

    The total period is the sum of the samples' periods (1 per sample when perf printed none), as
    perf report's percentages are shares of the event count. perf report marks some unresolved user
    addresses ``[k]`` (from the sample's CPU mode); here the mark follows the address.
    """
    from ..io.perf_script import read_perf_script

    df = samples if isinstance(samples, pd.DataFrame) else read_perf_script(samples, on_bad_lines=on_bad_lines)
    events = df["event"].dropna()
    first = events.iloc[0] if len(events) else None
    other = (df["event"].notna() & (df["event"] != first)).to_numpy(dtype=bool)
    if other.any():  # perf report gives each event a table of its own; a share of two events' counts means nothing
        left_out = ", ".join(sorted(set(df.loc[other, "event"])))
        warnings.warn(VmaplabWarning(f"{df.attrs.get('source')}: a profile of {first} only: {int(other.sum())} "
                                     f"samples of other events ({left_out}) left out"),
                      stacklevel=caller_stacklevel())  # fmt: skip
        df = df[~other]
    weight = df["period"].fillna(1).to_numpy(dtype=np.int64)
    total = float(weight.sum())
    chains = pd.DataFrame(
        {
            "sample": np.arange(len(df)),
            "command": df["comm"].to_numpy(dtype=object),
            "sym": df["stack"].str.split(";").to_numpy(dtype=object),
            "dso": df["dsos"].str.split(";").to_numpy(dtype=object),
            "ip": df["ips"].str.split(";").to_numpy(dtype=object),
        }
    )
    chains = chains[df["stack"].notna().to_numpy()]
    frames = chains.explode(["sym", "dso", "ip"])
    address = frames["ip"].map(lambda h: int(h, 16))
    frames["symbol"] = frames["sym"].where(frames["sym"] != "[unknown]", address.map(_address_name))
    frames["symbol_kind"] = np.where(address.to_numpy(dtype=object) >= _KERNEL_START, "k", ".")
    frames["weight"] = weight[frames["sample"].to_numpy(dtype=np.int64)]
    keys = ["command", "dso", "symbol"]
    leaf = frames.groupby("sample", sort=False).tail(1)
    own = leaf.groupby(keys, sort=False).agg(own=("weight", "sum"), samples=("weight", "size"))
    once = frames.drop_duplicates(["sample", *keys])
    children = once.groupby(keys, sort=False).agg(children=("weight", "sum"), symbol_kind=("symbol_kind", "first"))
    table = children.join(own, how="left").reset_index()
    table["own"] = table["own"].fillna(0)
    table = table.sort_values(["children", "own"], ascending=False, kind="stable")
    out = pd.DataFrame(
        {
            "block": np.zeros(len(table), dtype=np.int64),
            "event": first,
            "children_pct": pd.array(table["children"].to_numpy(dtype=float) * 100.0 / total, dtype="Float64"),
            "self_pct": pd.array(table["own"].to_numpy(dtype=float) * 100.0 / total, dtype="Float64"),
            "samples": pd.array(table["samples"].fillna(0).to_numpy(dtype=np.int64), dtype="Int64"),
            "command": pd.array(table["command"].to_numpy(dtype=object), dtype="string"),
            "shared_object": pd.array(table["dso"].to_numpy(dtype=object), dtype="string"),
            "symbol": pd.array(table["symbol"].to_numpy(dtype=object), dtype="string"),
            "symbol_kind": pd.array(table["symbol_kind"].to_numpy(dtype=object), dtype="string"),
        }
    )
    out["event"] = out["event"].astype("string")
    out.attrs.update(format="profile", source=df.attrs.get("source"), samples=len(df), event_count=int(total),
                     other_event_samples=int(other.sum()))  # fmt: skip
    return out
