"""Reader of ``perf report`` tables: ``--stdio`` output, the interactive screen copied from a terminal,
and tables pasted into mails.

An entry line holds the percentage columns, then the ``--sort`` keys (default ``comm,dso,sym``)::

    # Children      Self  Command  Shared Object         Symbol
        83.51%     1.44%  churn    [kernel.kallsyms]     [k] do_syscall_64

The columns are read from the header line (``# Overhead  Command ...`` in ``--stdio``, the same without
``#`` on the interactive screen). ``Children`` and ``Self`` are the two percentages of
``--children`` (the default when call graphs were recorded); ``Overhead`` is the only percentage of
``--no-children`` and means self time. ``-n`` adds ``Samples``, ``--show-total-period`` ``Period``.
The symbol column starts with a mark: ``[k]`` kernel, ``[.]`` user space (``[g]``/``[u]`` guest
kernel/user, ``[H]`` hypervisor). With ``-t SEP`` (``--field-separator``) the header and the entries
have their fields split by SEP (``# Overhead,Samples,Shared Object,Symbol``); an entry line must then
hold every field. A table pasted without its header (as in the vmap-node cover letter)
is read as ``<children>% [<self>%] [<command>] <shared object> [k] <symbol>``: with one key before the
mark it is the shared object, with more the last is the shared object and the others the command.

Call-graph lines (``|``, ``---sym``, ``--12.34%--sym``, indented callers, ``-g folded`` lines
``12.34% a;b;c``, and the interactive screen's ``+ 12.34% sym`` and unmarked ``1.35% sym``) are skipped,
never taken for entries; so is the interactive screen's scrollbar (``▒``, ``◆``) at the end of a line.
An indented line that no call-graph line above it opened, and that has an entry's shape (a ``[k]``/``[.]``
symbol after another column, or as many columns as the header), is an entry whose percentage was lost
or damaged: a bad line. So is, under a header without a ``Symbol`` column (``--sort dso``), where an
entry has no such shape, every indented line that hangs under no entry: neither opened by a call-graph
line nor right under an expanded entry of the interactive screen.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import ParseError
from ._source import LineErrors, OnBadLines, Paste, Source, assign_blocks, finish

__all__ = ["read_perf_report", "sniff"]

_PCT = r"\d{1,3}(?:\.\d+)?%"
_MARKER = r"^(?:[+-](?=\s))?\s*"  # the interactive screen's expand/collapse mark
_MARK = r"\[(?P<symbol_kind>[^\]\s])\]\s+(?P<symbol>\S.*?)"
# An entry line with the symbol mark, whatever the header (sniff, and tables without a header).
_HEADERLESS = (
    _MARKER + rf"(?P<p1>\d{{1,3}}(?:\.\d+)?)%\s+(?:(?P<p2>\d{{1,3}}(?:\.\d+)?)%\s+)?(?:(?P<samples>\d{{1,18}})\s+)?"
    rf"(?P<keys>(?:\S+\s+)*?){_MARK}\s*$"
)
_SNIFF = _MARKER + rf"{_PCT}\s+(?:{_PCT}\s+)?(?:\d+\s+)?.*?\[[k.gHu]\]\s+\S"
# Starts like an entry: an indented percentage (perf right-aligns them), or at the start of the line
# two percentages or a percentage with a symbol mark further on. Prose such as "16.51% percent from
# 93.07%." is not an entry.
_LEAD = rf"^(?:[+-](?=\s))?\s+{_PCT}(?:\s|$)|^{_PCT}\s+{_PCT}|^{_PCT}\s.*\[[k.gHu]\]"
# A call graph opens right under its entry with one of these lines; indented names continue it.
_GRAPH_OPEN = (
    r"^\s*\|"  # |  and  |--12.34%--sym
    r"|^\s*--"  # ---sym  and  --12.34%--sym
    r"|^\s+[+-]\s+\S"  # interactive screen: + 12.34% sym, - sym
)
_GRAPH_NAME = rf"^\s+(?!{_PCT})\S"  # indented caller/callee names and addresses
# the interactive screen's call-chain line with nothing to expand: "     1.35% 0x7fb308389c6c" (one space)
_TUI_LEAF = rf"^\s+{_PCT} (?!\s|{_PCT})\S"
# the interactive screen's scrollbar, in the last column of a terminal copy (track and thumb)
_SCROLLBAR = r"\s+[\u2592\u25c6]$"
# -g folded: 12.34% a;b;c (frames may be bare hex: 2d00672d;0x7;f)
_GRAPH = rf"{_GRAPH_OPEN}|{_GRAPH_NAME}|^{_PCT} (?!{_PCT})\S+$"
# A symbol with its mark after another column (space or -t separated): perf prints no marks in call graphs
_SHAPE_MARK = r"\S(?:\s+|\s*[^\w\s]\s*)\[[k.gHu]\]\s+\S"
_TITLE_SAMPLES = r"Samples:\s+(?P<samples>\d+)(?P<unit>[KMG]?)\s+of event '(?P<event>[^']*)'"
_TITLE_COUNT = r"Event count \(approx\.\):\s*(?P<event_count>\d+)"
_TITLE_LOST = r"Total Lost Samples:\s*(?P<lost>\d+)"
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}  # perf's own rounding of the sample count

# header name -> (column, kind); kind: pct, int or key
_NAMES = {
    "Children": ("children_pct", "pct"),
    "Self": ("self_pct", "pct"),
    "Overhead": ("self_pct", "pct"),
    "sys": ("sys_pct", "pct"),
    "usr": ("usr_pct", "pct"),
    "guest sys": ("guest_sys_pct", "pct"),
    "guest usr": ("guest_usr_pct", "pct"),
    "Samples": ("samples", "int"),
    "Period": ("period", "int"),
    "Command": ("command", "key"),
    "Shared Object": ("shared_object", "key"),
    "Symbol": ("symbol", "key"),
}
# perf's sort-key titles of more than one word, for headers pasted with single spaces
_MULTIWORD = [
    "Source Shared Object", "Target Shared Object", "Code Page Size", "Data Page Size", "Shared Object",
    "Parent symbol", "Data Symbol", "Data Object", "Source Symbol", "Target Symbol", "Memory access",
    "TLB access", "Local Weight", "Trace output", "guest sys", "guest usr",
]
_FIRST_TITLE = r"^#?\s*(?:Children|Overhead|Self|Samples|Period)"  # perf's first column is one of these
_HEADER = _FIRST_TITLE + r"(?:\s*[^\w\s.%]\s*\S.*|\s+\S.*)?$"
# ``-t SEP`` (--field-separator): the character after the first title of such a header
_FIELD_SEP = _FIRST_TITLE + r"\s*([^\w\s.%])"
_DOTS = r"#?(?:\s*\.+)+\s*"  # the line under a --stdio header: a run of dots under each column title

_COLUMNS = {
    "block": "int64",
    "event": "string",
    "children_pct": "Float64",
    "self_pct": "Float64",
    "samples": "Int64",
    "command": "string",
    "shared_object": "string",
    "symbol": "string",
    "symbol_kind": "string",
}
_EXPECTED = "a perf report entry '<children>% <self>% <command> <shared object> [k] <symbol>'"


def sniff(paste: Paste) -> int:
    """Number of perf report entry lines (with a ``[k]``/``[.]`` symbol) and column header lines."""
    lines = paste.series()
    return int((lines.str.match(_SNIFF) | lines.str.match(_HEADER) & lines.map(_is_header)).sum())


def read_perf_report(src: Source, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Read ``perf report`` output: ``--stdio`` (with or without ``--children``, call graphs, ``-n``,
    any ``--sort``, ``-t SEP``), the interactive screen copied from a terminal, or a table pasted in a mail.

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a line that starts with a percentage like an entry but does not fit the
        columns of its header (nor a call-graph line), or that has an entry's shape outside a call graph.

    Returns
    -------
    DataFrame, one row per entry in file order:

    =============  =======  ===================================================================
    block          int64    table number (0-based): prose, a prompt or a new header between
                            entries starts a new one
    event          string   the sampled event named by the report's ``Samples: ... of event``
                            line, <NA> when the paste has none
    children_pct   Float64  ``Children``: percent of samples with the symbol anywhere in the
                            call chain; <NA> without ``--children``
    self_pct       Float64  ``Self`` (or ``Overhead`` of ``--no-children``): percent of samples in
                            the symbol itself
    samples        Int64    ``Samples`` column of ``-n``, else <NA>
    command        string   task name (``Command``), <NA> when not a sort key
    shared_object  string   ``Shared Object`` without brackets (``kernel.kallsyms``, ``kernel``,
                            ``test_vmalloc``, ``libc.so.6``)
    symbol         string   symbol name without its mark (``native_queued_spin_lock_slowpath``)
    symbol_kind    string   ``"k"`` for ``[k]`` (kernel), ``"."`` for ``[.]`` (user), as printed
    =============  =======  ===================================================================

    Other columns of the header follow: ``period`` (Int64), ``sys_pct``/``usr_pct``/... (Float64) and
    other sort keys as strings named in snake case (``Pid:Command`` -> ``pid_command``).
    ``attrs``: ``event``, ``samples`` (int, as rounded by perf: ``8K`` -> 8000), ``samples_exact``,
    ``event_count`` and ``lost_samples`` of the first report header, when present.

    >>> rep = read_perf_report("data/seed/perf-report-6.7.txt")
    >>> float(rep.set_index("symbol").loc["native_queued_spin_lock_slowpath", "self_pct"])
    93.07
    """
    paste = Paste.read(src)
    return _parse_perf_report(paste, on_bad_lines)


def _split_header(text: str) -> list[str]:
    """Column titles of a header line (without its ``#``)."""
    text = text.strip()
    sep = _field_sep(text)
    if sep:
        return [title.strip() for title in text.split(sep)]
    if re.search(r"\s{2,}", text):
        return re.split(r"\s{2,}", text)
    names, rest = [], text
    while rest:
        for multi in _MULTIWORD:
            if rest.startswith(multi) and (len(rest) == len(multi) or rest[len(multi)] == " "):
                names.append(multi)
                rest = rest[len(multi) :].lstrip()
                break
        else:
            word, _, rest = rest.partition(" ")
            names.append(word)
            rest = rest.lstrip()
    return names


def _field_sep(header: str) -> str | None:
    """The ``-t`` field separator of a header line, None for perf's columns of spaces."""
    m = re.match(_FIELD_SEP, header)
    return m.group(1) if m else None


def _column(title: str) -> tuple[str, str]:
    if title in _NAMES:
        return _NAMES[title]
    return re.sub(r"[^0-9a-z]+", "_", title.lower()).strip("_") or "key", "key"


def _is_header(line: str) -> bool:
    """A header line: perf column titles only (each capitalised, or one of the lower-case CPU
    utilisation titles), at least one of them a percentage."""
    titles = _split_header(line.lstrip("#"))
    titled = all(re.fullmatch(r"[A-Z][A-Za-z:_ -]*", t) or t in _NAMES for t in titles)
    return titled and any(_column(t)[1] == "pct" for t in titles)


def _groups(titles: list[str]) -> dict[str, str]:
    """Group name -> kind (pct, int, key) of each column title, in order; a title seen twice (or
    named like the symbol's mark) gets its position appended."""
    kinds: dict[str, str] = {}
    for i, (name, kind) in enumerate(_column(t) for t in titles):
        kinds[f"{name}_{i}" if name in kinds or name == "symbol_kind" else name] = kind
    return kinds


def _entry_regex(titles: list[str]) -> tuple[str, dict[str, str]]:
    """The regex of an entry line under a header with these column titles, and its group -> kind."""
    kinds = _groups(titles)
    keys = [i for i, kind in enumerate(kinds.values()) if kind == "key"]
    parts = [_MARKER]
    for i, (name, kind) in enumerate(kinds.items()):
        sep = r"\s+" if i else ""
        if kind == "pct":
            parts.append(rf"{sep}(?P<{name}>\d{{1,3}}(?:\.\d+)?)%")
        elif kind == "int":
            parts.append(rf"{sep}(?P<{name}>\d{{1,18}})")
        else:
            value = r"\S.*?" if i in (keys[0], keys[-1]) else r"\S+"
            if name == "symbol":
                parts.append(sep + _MARK.replace(r"\S.*?", value))
            else:
                parts.append(rf"{sep}(?P<{name}>{value})")
    return "".join(parts) + r"\s*$", kinds


def _parse_perf_report(paste: Paste, on_bad_lines: OnBadLines) -> pd.DataFrame:
    errors = LineErrors.of(paste, on_bad_lines)
    lines = paste.series().str.replace(_SCROLLBAR, "", regex=True)
    n = len(lines)
    idx = lines.index
    blank = lines.str.strip().eq("").to_numpy()
    prompt = idx.isin(list(paste.prompts))
    comment = lines.str.match(r"^\s*#").to_numpy()
    header = lines.str.match(_HEADER).to_numpy() & ~prompt
    header[header] = [_is_header(t) for t in lines[header]]

    # every line is read with the columns of the last header above it (-1: none)
    which = pd.Series(np.where(header, np.arange(n), np.nan)).ffill().fillna(-1).astype(int).to_numpy()
    found = pd.DataFrame(index=idx)
    is_entry = np.zeros(n, dtype=bool)
    fielded = np.zeros(n, dtype=bool)  # holds the fields of its -t header, so must be an entry
    shaped = np.zeros(n, dtype=bool)  # has the shape of an entry under its header
    symbolless = np.zeros(n, dtype=bool)  # under a header without a Symbol column (--sort dso, comm, ...)
    extra: list[str] = []
    kinds: dict[str, str] = {}
    for h in np.unique(which):
        rows = (which == h) & ~header & ~blank & ~comment & ~prompt
        if not rows.any():
            continue
        dots = lines.iloc[h + 1] if 0 <= h < n - 1 else ""
        head = None if h < 0 else lines.iloc[h].lstrip("#")
        part, part_kinds, part_fielded = _entries(lines[rows], head, dots)
        fielded[np.flatnonzero(rows)] = part_fielded
        shaped[np.flatnonzero(rows)] = _shaped(lines[rows], head)
        symbolless[np.flatnonzero(rows)] = head is not None and "Symbol" not in _split_header(head)
        kinds.update(part_kinds)
        ok = part.notna().any(axis=1)
        part = part[ok]
        for col in part.columns:
            if col not in found:
                found[col] = pd.Series(pd.NA, index=idx, dtype=object)
                if col not in _COLUMNS:
                    extra.append(col)
            found.loc[part.index, col] = part[col].to_numpy(dtype=object)
        is_entry[np.flatnonzero(rows)[ok.to_numpy()]] = True

    free = ~is_entry & ~header & ~comment & ~fielded
    leaf = lines.str.match(_TUI_LEAF).to_numpy() & free
    graph = lines.str.match(_GRAPH).to_numpy() & free | leaf
    # A run of call-graph lines hangs under an entry when a graph line of the run opened it, or when it
    # starts right under an expanded entry of the interactive screen ("-   2.16% ..."), whose unmarked
    # lines (single-path callers, leaves with their percentage) need no opener.
    opens = lines.str.match(_GRAPH_OPEN).to_numpy()
    chain = graph & (opens | leaf | lines.str.match(_GRAPH_NAME).to_numpy())
    run = np.cumsum(~chain)
    opened = pd.Series(opens & chain).groupby(run).cummax().to_numpy()
    first = np.flatnonzero(chain & ~np.r_[False, chain[:-1]])
    above = np.maximum(first - 1, 0)
    expanded = np.zeros(n, dtype=bool)
    expanded[first] = (first > 0) & is_entry[above] & lines.iloc[above].str.match(r"^-\s").to_numpy()
    hung = opened | pd.Series(expanded).groupby(run).cummax().to_numpy()
    # A damaged entry: an unopened line with an entry's shape, or, where nothing tells its shape (no symbol
    # column: --sort dso) or it holds a percentage, any line of a run that hangs under no entry.
    damaged = chain & (~opened & shaped | ~hung & (symbolless | leaf))
    graph &= ~damaged
    lead = (lines.str.match(_LEAD).to_numpy() | fielded | damaged) & ~is_entry & ~graph & ~header & ~prompt
    for lineno in idx[lead]:
        errors.bad(int(lineno), _EXPECTED, paste.lines[lineno - 1])
    if not is_entry.any() and not lead.any():
        lineno, line = paste.first_text_line()
        raise ParseError(paste.source, lineno, _EXPECTED, line)

    titles = lines.str.extract(_TITLE_SAMPLES)
    event = titles["event"].ffill()
    other = ~is_entry & ~graph & ~blank & ~lead
    rec = found[is_entry]
    df = pd.DataFrame(index=pd.RangeIndex(int(is_entry.sum())))
    df["block"] = assign_blocks(idx[is_entry].to_numpy(), idx[other].to_numpy())
    df["event"] = event[is_entry].to_numpy(dtype=object)
    dtypes = dict(_COLUMNS)
    for col in extra:
        dtypes[col] = {"pct": "Float64", "int": "Int64"}.get(kinds.get(col, "key"), "string")
    for col in list(dtypes)[2:]:
        df[col] = rec[col].to_numpy(dtype=object) if col in rec else None
    for col, dtype in dtypes.items():
        if dtype in ("Float64", "Int64"):
            df[col] = pd.to_numeric(pd.Series(df[col], dtype=object)).astype(dtype)
    df["shared_object"] = pd.Series(df["shared_object"], dtype=object).str.replace(r"^\[(.*)\]$", r"\1", regex=True)
    df = df.astype(dtypes)
    return finish(df, "perf_report", paste, errors, skipped=int(other.sum()), **_title_attrs(lines, titles))


def _entries(lines: pd.Series, header: str | None, dots: str = "") -> tuple[pd.DataFrame, dict[str, str], np.ndarray]:
    """Fields of entry lines under ``header`` (None: a table without header), rows that are not
    entries all-NA; the kind (pct, int, key) of each field the header names; and which lines hold as
    many fields as a ``-t`` header names (entries, or bad lines if they do not parse). ``dots`` is the
    line under the header: ``--stdio``'s ``# ........  .......`` marks where each column starts,
    which splits keys that hold spaces (a command or a program named ``yes worker``). Under a ``-t SEP``
    header the fields are split at SEP (the last field keeps any SEP it holds)."""
    if header is not None:
        titles = _split_header(header)
        sep = _field_sep(header)
        if sep:
            kinds = _groups(titles)
            cells = lines.str.split(sep, n=len(titles) - 1, expand=True, regex=False)
            cells = cells.reindex(columns=range(len(titles))).apply(lambda col: col.str.strip())
            # a call-graph line (`|   |   |`) has the fields but starts blank; an entry starts with a number
            fielded = cells[len(titles) - 1].notna() & cells[0].str.match(r"\d").fillna(False)
            return _typed(cells, kinds), kinds, fielded.to_numpy(dtype=bool)
        regex, kinds = _entry_regex(titles)
        out = lines.str.extract(regex)
        starts = [m.start() for m in re.finditer(r"\.+", dots)] if re.fullmatch(_DOTS, dots) else []
        if len(starts) == len(titles) > 1:
            fixed = _fixed_width(lines, starts, kinds)
            ok = fixed.notna().all(axis=1)
            out.loc[ok, fixed.columns] = fixed[ok]
        return out, kinds, np.zeros(len(lines), dtype=bool)
    m = lines.str.extract(_HEADERLESS)
    keys = m["keys"].str.split()
    two = m["p2"].notna()
    out = pd.DataFrame(index=lines.index)
    out["children_pct"] = m["p1"].where(two)
    out["self_pct"] = m["p2"].where(two, m["p1"])
    out["samples"] = m["samples"]
    out["command"] = keys.map(lambda k: " ".join(k[:-1]) if isinstance(k, list) and len(k) > 1 else None)
    out["shared_object"] = keys.map(lambda k: k[-1] if isinstance(k, list) and k else None)
    out["symbol"] = m["symbol"]
    out["symbol_kind"] = m["symbol_kind"]
    return out, {}, np.zeros(len(lines), dtype=bool)


def _shaped(lines: pd.Series, header: str | None) -> np.ndarray:
    """Which lines have the shape of an entry: a marked symbol after another column, or as many columns as
    the header (split at its ``-t`` separator, which the last field may hold too, or at runs of spaces)."""
    shaped = lines.str.contains(_SHAPE_MARK)
    if header is not None:
        titles = _split_header(header)
        sep = _field_sep(header)
        if sep:
            shaped |= lines.str.count(re.escape(sep)).ge(len(titles) - 1)
        else:
            shaped |= lines.str.strip().str.count(r"\s{2,}").eq(len(titles) - 1)
    return shaped.to_numpy(dtype=bool)


def _fixed_width(lines: pd.Series, starts: list[int], kinds: dict[str, str]) -> pd.DataFrame:
    """Entry lines cut at the columns' start positions; a row is all-NA unless every column ends in a
    space (no value ran into the next column) and every cell holds a value of its kind."""
    widths = [b - a for a, b in zip([0, *starts[1:]], starts[1:])]
    cells = lines.str.extract("^" + "".join(f"(.{{{w - 1}}}) " for w in widths) + r"(.*)$").apply(
        lambda col: col.str.strip()
    )
    return _typed(cells, kinds)


def _typed(cells: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Fields from the cells of entry lines (column j holds the j-th field of ``kinds``); a row is all-NA
    unless every cell holds a value of its kind."""
    out = pd.DataFrame(index=cells.index)
    good = pd.Series(True, index=cells.index)
    for j, (name, kind) in enumerate(kinds.items()):
        cell = cells[j]
        if kind == "pct":
            good &= cell.str.fullmatch(_PCT).fillna(False)
            out[name] = cell.str[:-1]
        elif kind == "int":
            good &= cell.str.fullmatch(r"\d{1,18}").fillna(False)
            out[name] = cell
        elif name == "symbol":
            mark = cell.str.extract("^" + _MARK + "$")
            good &= mark["symbol"].notna()
            out["symbol_kind"], out["symbol"] = mark["symbol_kind"], mark["symbol"]
        else:
            good &= cell.str.len().gt(0).fillna(False)
            out[name] = cell
    return out.where(good)


def _title_attrs(lines: pd.Series, titles: pd.DataFrame) -> dict:
    """event, samples, samples_exact, event_count and lost_samples of the first report header."""
    attrs: dict = {}
    first = titles.dropna(subset=["event"])
    if len(first):
        row = first.iloc[0]
        samples = int(row["samples"]) * _UNITS[row["unit"]]
        attrs.update(event=row["event"], samples=samples, samples_exact=row["unit"] == "")
    count = lines.str.extract(_TITLE_COUNT)["event_count"].dropna()
    if len(count):
        attrs["event_count"] = int(count.iloc[0])
    lost = lines.str.extract(_TITLE_LOST)["lost"].dropna()
    if len(lost):
        attrs["lost_samples"] = int(lost.iloc[0])
    return attrs
