"""Reader of ``perf script`` output with sampled call chains: one row per sample.

A sample is a header line, then its call chain (leaf first, one frame per line), then a blank line::

    churn 20183 [001]   991.392649:     100000 cpu-clock:
    	ffffffff8160d72c __vmalloc_node_range_noprof+0x13c ([kernel.kallsyms])
    	          1098d9 clone3+0x19 (/usr/lib/x86_64-linux-gnu/libc.so.6)

The header is ``<comm> [<pid>/]<tid> [[<cpu>]] [<seconds>:] [<period>] <event>:``, which fields appear
depending on ``perf record`` and ``perf script -F`` options; ``<comm>`` may hold spaces, never a ``[<cpu>]``
or ``<seconds>:`` field. A ``-F`` list without ``tid`` leaves it out: a cpu or a time then follows the
comm (``sh [001]   991.392650:     100000 cpu-clock:``). Without call
chains (``perf record`` without ``-g``) the one frame follows the event on the header line. A frame is
``<ip> <symbol>[+0x<offset>] (<dso>)``. Header lines that carry a tracepoint's fields after the event
(``vmalloc:alloc_vmap_area: va_start: ...``) are trace records, read by ``read_vmalloc_trace``; they are
read here too (the fields go to ``trace``) but :func:`sniff` does not count them.

:func:`iter_samples` streams the samples in frames of ``chunksize`` rows, so a multi-GB file is never
held in memory; :func:`read_perf_script` is all of them in one frame.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ParseError
from ._source import LineErrors, OnBadLines, Paste, Source, assign_blocks, finish, open_text, str_paste

__all__ = ["read_perf_script", "iter_samples", "sniff"]

_COMM = r"^\s*(?P<comm>\S.*?)\s+"
_AFTER_TID = (
    r"(?:\[(?P<cpu>\d{1,6})\]\s+)?(?:(?P<time>\d{1,12}\.\d{1,9}):\s+)?(?:(?P<period>\d{1,18})\s+)?"
    r"(?P<event>[^\s:\d][^\s]*?):(?:\s+(?P<rest>\S.*?))?\s*$"
)
_TID = r"(?:(?P<pid>-?\d{1,10})/)?(?P<tid>-?\d{1,10})\s+"
_HEADER = _COMM + _TID + _AFTER_TID
# -F without tid: the same fields, pid and tid always empty (read only when a cpu or a time follows the comm)
_HEADER_NO_TID = _COMM + r"(?P<pid>)(?P<tid>)" + _AFTER_TID
_HEADER_ANY = _COMM + f"(?:{_TID})?" + _AFTER_TID  # finds the lines of either layout in one pass
# a cpu or a time field, which a comm never holds: a header whose comm would is one without tid
_CPU_OR_TIME = r"(?:^|\s)(?:\[\d{1,6}\]|\d{1,12}\.\d{1,9}:)(?:\s|$)"
_FRAME = (
    r"^\s*(?P<ip>[0-9a-fA-F]{1,16})(?:\s+(?P<sym>\S.*?))??(?:\+0x(?P<off>[0-9a-f]+))?"
    r"\s+\((?P<dso>[^()]*(?:\s\(deleted\))?)\)\s*$"
)
# Starts like a header (comm, tid and maybe a cpu, or a cpu alone, then digits of a time) but did not parse.
_HEADER_LEAD = r"^\s*\S.*?\s(?:-?\d+(?:/-?\d+)?\s+(?:\[\d+\]\s+)?|\[\d+\]\s+)\d+\.\d"
_FRAME_LEAD = r"^\s+\S|^[0-9a-fA-F]+\s+\S.*\("
_SNIFF_HEADER = (
    r"^\s*\S.*?\s(?:-?\d+(?:/-?\d+)?\s+(?:\[\d+\]\s+)?|\[\d+\]\s+)(?:\d+\.\d+:\s+)?(?:\d+\s+)?[^\s:\d]\S*?:\s*$"
)
# a call-chain frame line ("<ip> <symbol> (<dso>)"), in sampled stacks and under tracepoint records alike
FRAME_LINE = r"^\s*[0-9a-fA-F]{1,16}\s+\S.*\)\s*$"
# a sample recorded without -g: its one frame on the header line, after the event
_SNIFF_INLINE = _SNIFF_HEADER.removesuffix(r"\s*$") + r"\s+[0-9a-fA-F]{1,16}\s+\S.*\)\s*$"

_EXPECTED = "a perf script sample header '<comm> <tid> [<cpu>] <time>: <period> <event>:' (the tid may be left out)"
_EXPECTED_FRAME = "a call-chain frame '<ip> <symbol> (<dso>)' or a blank line after the sample"
_EXPECTED_HEADER_FIRST = "a sample header line before this call-chain frame"
_PIECE_SAMPLES = 50_000  # samples per piece parsed at once by read_perf_script

_COLUMNS = {
    "block": "int64",
    "comm": "string",
    "pid": "Int64",
    "tid": "Int64",
    "cpu": "Int64",
    "time": "Float64",
    "period": "Int64",
    "event": "string",
    "trace": "string",
    "stack": "string",
    "dsos": "string",
    "ips": "string",
}


def sniff(paste: Paste) -> int:
    """Number of sampled-stack headers in ``paste``: header lines ending with the event name and
    followed by a frame line, and header lines with their one frame after the event (recorded without
    ``-g``); tracepoint records with fields after the event are not counted."""
    lines = paste.series()
    head = lines.str.match(_SNIFF_HEADER).to_numpy()
    frame = lines.str.match(FRAME_LINE).to_numpy()
    inline = int(lines.str.match(_SNIFF_INLINE).sum())
    return inline + (int((head[:-1] & frame[1:]).sum()) if len(lines) > 1 else 0)


def read_perf_script(src: Source, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Read ``perf script`` output (a file, a ``.gz`` capture or a paste).

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a line inside a sample that is not a frame, a frame line with no sample
        header before it, or a line that starts like a header (comm, tid, time) but does not parse.
        Text holding bytes that are not UTF-8 (a comm set to such bytes with ``prctl``) is refused in
        every mode, at its first such line, where stackcollapse-perf.pl would keep the bytes.

    Returns
    -------
    DataFrame, one row per sample in file order:

    ======  =======  ===========================================================================
    block   int64    listing number (0-based) in a paste of several; prose between samples starts
                     a new one
    comm    string   task name as printed
    pid     Int64    process id (<NA> unless printed as ``pid/tid``)
    tid     Int64    thread id (the number perf prints alone; <NA> when not printed)
    cpu     Int64    CPU (<NA> when not printed)
    time    Float64  timestamp, seconds (<NA> when not printed)
    period  Int64    sample period (event count; ns for cpu-clock) (<NA> when not printed)
    event   string   event name (``cpu-clock``, ``cycles:u``)
    trace   string   tracepoint fields printed after the event, else <NA>
    stack   string   frame symbols joined by ``;``, root first and leaf last, without ``+0x``
                     offsets (``;`` inside a symbol becomes ``:``); unresolved frames stay
                     ``[unknown]``; <NA> for a sample without call chain
    dsos    string   the frames' shared objects, aligned with ``stack``, without brackets
                     (``kernel.kallsyms``, ``libc.so.6`` as the basename of the path)
    ips     string   the frames' addresses as printed (hex), aligned with ``stack``
    ======  =======  ===========================================================================

    >>> df = read_perf_script("data/real/perf-script-churn.txt.gz")
    >>> df.groupby("comm")["period"].sum().to_dict()
    {'churn': 94700000, 'sh': 1000000}
    """
    with open_text(src) as (stream, name):
        errors = LineErrors(name, on_bad_lines)
        blocks = _Blocks()
        frames, skipped, unterminated = [], 0, None
        for start, paste in _pieces(stream, name, _PIECE_SAMPLES):
            errors.cut_line = _cut_line(src, paste, start)
            df, n_skipped = _parse_perf_script(paste, errors, start)
            frames.append(blocks.renumber(df))
            skipped += n_skipped
            unterminated = None if paste.unterminated is None else start + paste.unterminated - 1
    if blocks.first_text is None or (not blocks.samples and not errors.items):
        _nothing(name, blocks)
    df = pd.concat(frames, ignore_index=True)
    whole = Paste(name, [], unterminated=unterminated, from_file=not str_paste(src))
    return finish(df.astype(_COLUMNS), "perf_script", whole, errors, skipped=skipped)


def iter_samples(src: Source, *, chunksize: int = 100_000, on_bad_lines: OnBadLines = "error") -> Iterator[pd.DataFrame]:
    """Stream ``perf script`` output as frames of at most about ``chunksize`` samples.

    The columns are those of :func:`read_perf_script`, ``block`` numbering continues across frames, and
    each frame's ``attrs`` (``format``, ``source``, ``skipped_lines``, ``bad_lines``) cover its own lines.
    Memory holds one piece of the text at a time. A source without any sample raises
    :class:`ParseError` at its first text line once the stream is exhausted.
    """
    with open_text(src) as (stream, name):
        blocks = _Blocks()
        for start, paste in _pieces(stream, name, max(1, chunksize)):
            errors = LineErrors(name, on_bad_lines, cut_line=_cut_line(src, paste, start))
            df, skipped = _parse_perf_script(paste, errors, start)
            df = blocks.renumber(df)
            blocks.bad += len(errors.items)
            yield finish(df.astype(_COLUMNS), "perf_script", paste, errors, skipped=skipped)
    if blocks.first_text is None or (not blocks.samples and not blocks.bad):
        _nothing(name, blocks)


def _nothing(name: str, blocks: "_Blocks") -> None:
    at, text = blocks.first_text or (None, None)
    raise ParseError(name, at, _EXPECTED, text)


def _pieces(stream, name: str, samples: int) -> Iterator[tuple[int, Paste]]:
    """(number of its first line, cleaned piece) for pieces of the text, each cut after ``samples``
    blank lines (a sample ends at one), or, in text without blank lines (samples without call
    chains), before an unindented line once ``8 * samples`` lines are waiting."""
    def piece(buffer: list[str], start: int) -> tuple[int, Paste]:
        try:
            return start, Paste.from_stream(io.StringIO("".join(buffer)), name)
        except ParseError as exc:  # binary bytes: name the line of the whole text, not of the piece
            raise ParseError(name, exc.lineno + start - 1, exc.expected, exc.line) from None

    buffer: list[str] = []
    start = 1
    blanks = 0
    for raw in stream:
        if len(buffer) >= 8 * samples and raw[:1] not in (" ", "\t", "\n", "\r"):
            yield piece(buffer, start)
            start, buffer, blanks = start + len(buffer), [], 0
        buffer.append(raw)
        if not raw.strip():
            blanks += 1
            if blanks >= samples:
                yield piece(buffer, start)
                start, buffer, blanks = start + len(buffer), [], 0
    if buffer:
        yield piece(buffer, start)


def _cut_line(src: Source, paste: Paste, start: int) -> int | None:
    """The line of the whole source (not of the piece) that a file ends in the middle of, or None."""
    return None if paste.unterminated is None or str_paste(src) else start + paste.unterminated - 1


class _Blocks:
    """Block numbers that continue from one piece to the next, and what the pieces held."""

    def __init__(self) -> None:
        self.block = 0
        self.samples = 0
        self.bad = 0
        self.sep_after = False  # prose after the last sample seen so far
        self.first_text: tuple[int, str] | None = None

    def renumber(self, df: pd.DataFrame) -> pd.DataFrame:
        info = df.attrs.pop("_piece")
        if self.first_text is None and info["first_text"] is not None:
            self.first_text = info["first_text"]
        if len(df):
            if self.samples and (self.sep_after or info["sep_before"]):
                self.block += 1
            df["block"] += self.block
            self.block = int(df["block"].iloc[-1])
            self.sep_after = info["sep_after"]
            self.samples += len(df)
        else:
            self.sep_after = self.sep_after or info["sep_before"]
        return df


def _parse_perf_script(paste: Paste, errors: LineErrors, start: int) -> tuple[pd.DataFrame, int]:
    """Samples of one piece whose first line is line ``start`` of the source; also the number of
    skipped (prose, comment, prompt) lines. ``df.attrs["_piece"]`` tells :class:`_Blocks` about prose
    before the first and after the last sample, and the piece's first text line."""
    arr = pa.array(paste.lines, type=pa.string())
    lineno = np.arange(1, len(arr) + 1)
    blank = _match(arr, r"^\s*$")
    comment = _match(arr, r"^\s*#")
    prompt = np.isin(lineno, list(paste.prompts))
    is_head, heads, no_tid_bad = _headers(arr, ~comment & ~prompt)
    is_frame = _match(arr, _FRAME) & ~is_head & ~comment & ~prompt

    other = ~is_head & ~is_frame & ~blank & ~comment & ~prompt
    # a damaged frame: indented like a frame, or an address and a parenthesis (unindented frames)
    frame_like = other & _match(arr, _FRAME_LEAD)
    # 1 after a header; 0 after a blank, comment, prompt or prose line; frames continue a sample
    state = np.where(is_head, 1.0, np.where(is_frame | frame_like, np.nan, 0.0))
    in_sample = pd.Series(state).ffill().fillna(0.0).to_numpy() == 1.0
    sample = np.cumsum(is_head)

    bad_frame = frame_like & in_sample  # a line of a call chain that is not a frame
    orphan = is_frame & ~in_sample
    bad_head = other & ~bad_frame & (_match(arr, _HEADER_LEAD) | no_tid_bad)
    why = {}
    for mask, expected in ((bad_frame, _EXPECTED_FRAME), (orphan, _EXPECTED_HEADER_FIRST), (bad_head, _EXPECTED)):
        why.update((int(i), expected) for i in lineno[mask])
    for at in sorted(why):
        errors.bad(at + start - 1, why[at], paste.lines[at - 1])
    keep_head = is_head & ~np.isin(sample, sample[bad_frame])
    prose = other & ~bad_frame & ~bad_head
    separators = lineno[prose | comment | prompt]

    heads = heads.filter(pa.array(keep_head[is_head]))
    ids = sample[keep_head]
    rest = heads.field("rest")
    inline = pc.extract_regex(rest, _FRAME)
    has_inline = _valid(inline)
    # the frames of each kept sample: its call-chain lines, or the frame printed on its header line
    chain = is_frame & in_sample & np.isin(sample, ids)
    frames = pa.concat_tables(
        [
            _frames(pc.extract_regex(arr.filter(pa.array(chain)), _FRAME), sample[chain], lineno[chain]),
            _frames(inline.filter(pa.array(has_inline)), ids[has_inline], lineno[keep_head][has_inline]),
        ]
    )
    order = np.lexsort((-frames["lineno"].to_numpy(), frames["sample"].to_numpy()))  # root first
    frames = frames.take(pa.array(order))
    counts = np.bincount(frames["sample"].to_numpy(), minlength=int(sample[-1]) + 1 if len(sample) else 1)[ids]
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    chained = {
        col: pc.if_else(pa.array(counts > 0), pc.binary_join(pa.ListArray.from_arrays(offsets, frames[col].combine_chunks()), ";"), None)
        for col in ("sym", "dso", "ip")
    }
    records = lineno[keep_head]
    df = pd.DataFrame(
        {
            "block": assign_blocks(records, separators),
            "comm": _text(heads.field("comm")),
            "pid": _numbers(heads.field("pid"), "Int64"),
            "tid": _numbers(heads.field("tid"), "Int64"),
            "cpu": _numbers(heads.field("cpu"), "Int64"),
            "time": _numbers(heads.field("time"), "Float64"),
            "period": _numbers(heads.field("period"), "Int64"),
            "event": _text(heads.field("event")),
            "trace": _text(pc.if_else(pa.array(has_inline), None, rest)),
            "stack": _text(chained["sym"]),
            "dsos": _text(chained["dso"]),
            "ips": _text(chained["ip"]),
        }
    )
    df.attrs["_piece"] = {
        "sep_before": bool(len(records) and (separators < records[0]).any()),
        "sep_after": bool(len(records) and (separators > records[-1]).any()),
        "first_text": _first_text(paste, start),
    }
    return df, int((prose | comment | prompt).sum())


def _headers(arr: pa.Array, allowed: np.ndarray) -> tuple[np.ndarray, pa.StructArray, np.ndarray]:
    """Sample headers among the ``allowed`` lines: which lines they are; their fields, one row per header in
    line order; and the lines that parse only with a cpu or a time inside the comm and not without a tid
    either (bad headers). A header is read with a tid unless its comm would then hold a cpu or a time; it is
    read without one when a cpu or a time follows the comm."""
    at = np.flatnonzero(_match(arr, _HEADER_ANY) & allowed)
    found = arr.take(pa.array(at, type=pa.int64()))
    with_tid = _match(found, _HEADER)
    tid_fields = pc.extract_regex(found.filter(pa.array(with_tid)), _HEADER)
    split = np.zeros(len(found), dtype=bool)
    split[with_tid] = _match(tid_fields.field("comm"), _CPU_OR_TIME)
    maybe = ~with_tid | split
    fields = pc.extract_regex(found.filter(pa.array(maybe)), _HEADER_NO_TID)
    placed = _match(fields.field("cpu"), ".") | _match(fields.field("time"), ".")
    no_tid = np.zeros(len(found), dtype=bool)
    no_tid[maybe] = _valid(fields) & placed & ~_match(fields.field("comm"), _CPU_OR_TIME)
    order = np.argsort(np.concatenate([np.flatnonzero(with_tid & ~split), np.flatnonzero(no_tid)]), kind="stable")
    both = pa.concat_arrays([tid_fields.filter(pa.array(~split[with_tid])), fields.filter(pa.array(no_tid[maybe]))])
    is_head, bad = np.zeros(len(arr), dtype=bool), np.zeros(len(arr), dtype=bool)
    is_head[at[(with_tid & ~split) | no_tid]] = True
    bad[at[split & ~no_tid]] = True
    return is_head, both.take(pa.array(order, type=pa.int64())), bad


def _match(arr: pa.Array, pattern: str) -> np.ndarray:
    return pc.match_substring_regex(arr, pattern).to_numpy(zero_copy_only=False).astype(bool)


def _valid(struct: pa.Array) -> np.ndarray:
    return struct.is_valid().to_numpy(zero_copy_only=False).astype(bool)


def _text(values: pa.Array) -> np.ndarray:
    """Strings as an object array; empty strings and nulls become None."""
    out = values.to_numpy(zero_copy_only=False).astype(object)
    out[(out == "") | pd.isna(out)] = None
    return out


def _numbers(values: pa.Array, dtype: str) -> pd.api.extensions.ExtensionArray:
    return pd.to_numeric(pd.Series(_text(values), dtype=object)).astype(dtype).array


def _first_text(paste: Paste, start: int) -> tuple[int, str] | None:
    at, text = paste.first_text_line()
    return None if at is None else (at + start - 1, text)


def _frames(found: pa.Array, sample: np.ndarray, lineno: np.ndarray) -> pa.Table:
    """Frame matches as a table: sample, lineno, sym (offset removed, ';' -> ':', ``[unknown]`` where
    perf printed no symbol), dso (basename, no brackets), ip."""
    sym = pc.fill_null(found.field("sym"), "")
    sym = pc.if_else(pc.equal(sym, ""), "[unknown]", pc.replace_substring(sym, ";", ":"))
    dso = pc.replace_substring_regex(found.field("dso"), r"^.*/", "")
    dso = pc.replace_substring_regex(dso, r"^\[(.*)\]$", r"\1")
    return pa.table(
        {
            "sample": pa.array(sample, type=pa.int64()),
            "lineno": pa.array(lineno, type=pa.int64()),
            "sym": sym,
            "dso": pc.replace_substring(dso, ";", ":"),
            "ip": found.field("ip"),
        }
    )
