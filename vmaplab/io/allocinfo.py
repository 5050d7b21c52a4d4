"""Reader of memory allocation profiling listings: ``/proc/allocinfo`` and its pasted excerpts.

Accepted text (kernel-facts §4.1; Linux kernel's lib/alloc_tag.c and lib/codetag.c):

* ``allocinfo - version: 1.0`` files (Linux 6.10+): the version line, the column header
  ``#     <size>  <calls> <tag info>``, then one line per allocation tag, zero lines included:
  ``%12lli %8llu <file>:<line> [<module>] func:<function>`` (the ``[<module>]`` only for code in a
  loadable module);
* ``allocinfo - version: 2.0`` files: the same, where a line may end with ``key:value`` pairs such as
  ``accurate:no`` (counters may be too low);
* the pre-merge format of the profiling series v3 (Feb 2024, the seed): no header, the size in
  binary units with three significant digits (``27.2MiB``, ``1.20GiB``) and the tag
  ``<file>:<line> module:<name> func:<function>``, ``module:`` on every line (built-in code too). A
  listing keeps one tag style: a line of the other style (no ``module:`` among pre-merge lines, or
  ``module:`` among 6.10+ ones) is a bad line;
* pasted excerpts: ``sort -h``, ``tail -n +3 /proc/allocinfo | sort -rn``,
  ``sort -g /proc/allocinfo | numfmt --to=iec`` (``2.8M``) or ``--to=iec-i`` (``146Mi``), and several
  listings in one paste (a ``block`` column numbers them);
* the ``Memory allocations:`` block that ``show_mem()`` prints to the kernel log when profiling is
  on (a low-memory report, an OOM kill, sysrq-m): the ten largest tags, each
  ``%12s %8llu <file>:<line> [<module>] func:<function>`` with the size as the kernel's
  ``string_get_size(bytes, 1, STRING_UNITS_2)`` writes it (``27.2 MiB``; read in Linux 6.12's
  mm/show_mem.c and lib/string_helpers.c).

Rounding, and what ``size_exact`` / ``size_upper_bound`` say: a size in bytes is exact. The kernel's
human sizes (pre-merge lines and ``show_mem``) are rounded to three significant digits, to the
*nearest* value (half up), so the true size may lie a little above or below the printed one: not
exact, not a bound. GNU ``numfmt --to=iec`` rounds *away from zero* by default (``--round=from-zero``;
2841641 bytes print as ``2.8M``), so its sizes (a unit letter with no ``B``) are upper bounds of the
true size. Parsing is vectorised with pyarrow compute kernels (RE2 regular expressions, whitespace
splitting and ``take``) over whole columns; only unusual lines (wrapped, bad) are looked at one by one.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ParseError
from ._source import LineErrors, OnBadLines, Paste, Source, assign_blocks, finish
from .units import SIZE_EXPECTED, parse_sizes

__all__ = ["read_allocinfo", "sniff", "RECORD_EXPECTED"]

RECORD_EXPECTED = (
    "an allocinfo line '<size> <calls> <file>:<line> [<module>] func:<function> [key:value ...]' "
    "(size in bytes or with a unit, such as 27.2MiB or 2.8M)"
)
_REPEATED_EXPECTED = (
    "a tag not listed before in its listing (two pre-merge listings run together? a blank line, a prompt "
    "or a line of text between them makes them two)"
)
_WRAPPED_EXPECTED = "'<size> <calls>' before this tag (a line wrapped or cut in two that could not be rejoined)"
# Expected on a line whose tag style is not its listing's, by the listing's style (pre-merge or not).
_STYLE_EXPECTED = {
    True: "a pre-merge allocinfo tag '<file>:<line> module:<name> func:<function>' like the rest of its "
    "listing",
    False: "a 6.10+ allocinfo tag '<file>:<line> [<module>] func:<function>' like the rest of its listing "
    "('module:<name>' is the pre-merge style)",
}

# One record. Sizes: bytes (signed, %lli), or a number with a unit ("27.2MiB", "2.8M", "146Mi", "38.4 MiB").
# White space is spelled out as ASCII [\t-\r ], exactly what pyarrow's ascii_split_whitespace splits on,
# so that the tokens of a matched line are the parts the expression saw.
_W, _N = r"[\t-\r ]", r"[^\t-\r ]"
_SIZE = r"(?:[0-9]{1,4}(?:\.[0-9]{1,3})? ?[A-Za-z]{1,5}|-?[0-9]{1,18})"
_MODTAG = rf"(?:\[[^\]\t-\r ]+\]|module:{_N}+)"
_RECORD = (
    rf"^{_W}*{_SIZE}{_W}+[0-9]{{1,18}}{_W}+{_N}+:[0-9]{{1,9}}(?:{_W}+{_MODTAG})?{_W}+func:{_N}+"
    rf"(?:{_W}+[A-Za-z_][A-Za-z0-9_]*:{_N}*)*{_W}*$"
)
# Lines that start (or hide) a record but are not one: bad lines, never prose.
_LOOKS_LIKE = "|".join(
    [
        rf"^{_W}*-?[0-9][0-9.,]*[A-Za-z]*(?:{_W}[A-Za-z]+)?{_W}+[0-9]",  # a size and a number, then trouble
        rf"^{_W}*-?[0-9]+(?:\.[0-9]+)?{_W}?(?:[KMGTPEk]i?B?|B)?{_W}*$",  # a size alone: a record cut short
        rf"[0-9](?: ?[A-Za-z]{{1,5}})?{_W}+[0-9]+{_W}+{_N}+:[0-9]+{_W}+(?:{_MODTAG}{_W}+)?func:",  # behind a prefix
        # a whole tag to the end of the line behind one or two garbled fields ("O 0 lib/x.c:1 func:f")
        rf"^{_W}*(?:{_N}+{_W}+){{1,2}}{_N}+:[0-9]+{_W}+(?:{_MODTAG}{_W}+)?func:{_N}+"
        rf"(?:{_W}+[A-Za-z_][A-Za-z0-9_]*:{_N}*)*{_W}*$",
    ]
)
_TAG_FIRST = rf"^{_W}*{_N}+:[0-9]+{_W}+(?:{_MODTAG}{_W}+)?func:"  # the tail of a wrapped line
# A line opening with '<size> <calls> ' is a record of its own (maybe a broken one), never the tail
# of the line before it.
_OWN_START_RE = re.compile(rf"^{_W}*-?[0-9][0-9.,]*(?: ?[A-Za-z]{{1,5}})?{_W}+[0-9]", re.ASCII)
_VERSION = r"^\s*allocinfo - version:\s*\S+\s*$"
_COLUMNS = r"^\s*#\s*<size>\s+<calls>\s+<tag info>\s*$"
_SHOW_MEM = r"^\s*Memory allocations:\s*$"
_RECORD_RE = re.compile(_RECORD, re.ASCII)
_TAG_FIRST_RE = re.compile(_TAG_FIRST, re.ASCII)

_COLUMNS_OUT = {
    "size_bytes": "int64",
    "calls": "int64",
    "tag": "string",
    "file": "string",
    "lineno": "int64",
    "module": "string",
    "func": "string",
    "extra": "string",
    "accurate": "bool",
    "size_exact": "bool",
    "size_upper_bound": "bool",
    "block": "int64",
    "source_line": "int64",
}


def read_allocinfo(src: Source, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Read ``/proc/allocinfo`` (1.0, 2.0, pre-merge) or a pasted excerpt of it.

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a line that starts like a record but does not parse (a truncated, garbled
        or wrapped line, an unknown size unit) or whose tag style is not its listing's: raise
        :class:`vmaplab.ParseError` (default), or skip it with one
        :class:`vmaplab.errors.BadLineWarning`, or skip it quietly. Skipped bad lines are listed in
        ``df.attrs["bad_lines"]``.

    Returns
    -------
    DataFrame
        One row per allocation tag line, in source order:

        ============== ======= ==========================================================
        size_bytes     int64   bytes allocated and not freed at this tag (may be negative
                               in 1.0/2.0, which print a signed value)
        calls          int64   live allocations (calls not yet freed)
        tag            string  the tag as printed: ``mm/slub.c:2202 func:alloc_slab_page``,
                               ``fs/xfs/xfs_buf.c:390 [xfs] func:...``, ``... module:slub func:...``
        file           string  source file of the call site
        lineno         int64   source line of the call site
        module         string  ``xfs`` for ``[xfs]``, ``slub`` for ``module:slub``; <NA> for
                               built-in code in 1.0/2.0 lines
        func           string  function name, without ``func:``
        extra          string  2.0 ``key:value`` pairs after the function, as printed; <NA> if none
        accurate       bool    False where the line says ``accurate:no``
        size_exact     bool    True when the size was printed in bytes
        size_upper_bound bool  True when the printed size is ``numfmt``-rounded (away from zero)
        block          int64   0-based number of the listing in a paste of several
        source_line    int64   1-based line of the source holding the record
        ============== ======= ==========================================================

        ``attrs``: ``format`` ("allocinfo"), ``source``, ``skipped_lines`` (non-blank lines that are
        not records: headers, prompts, prose), ``bad_lines``, ``version`` (``"1.0"``, ``"2.0"``,
        ``"pre-merge"``, ``"numfmt"``, ``"show_mem"``, or ``"mixed"`` when blocks differ) and
        ``versions`` (the version of each block). A headerless listing in bytes counts as ``"2.0"`` if
        any line carries ``key:value`` pairs, else ``"1.0"``.

    Examples
    --------
    >>> ai = read_allocinfo("data/seed/allocinfo-256threads.txt")
    >>> ai.loc[ai.func == "pagetable_alloc", ["size_bytes", "calls"]]
       size_bytes    calls
    3  5755256177  1405072
    """
    paste = Paste.read(src)
    errors = LineErrors.of(paste, on_bad_lines)
    return _parse_allocinfo(paste, errors)


def sniff(paste: Paste) -> int:
    """Number of lines of ``paste`` that are allocinfo records, where a ``show_mem()`` listing counts as one:
    in a kernel log it is an excerpt of a report (an OOM kill, a vmalloc failure), and the log's own
    format (test_vmalloc's summaries around such a report) should win detection over it."""
    if not paste.lines:
        return 0
    arr = pa.array(paste.lines, type=pa.string())
    rec = _match(arr, _RECORD)
    header = _match(arr, _SHOW_MEM)
    if not header.any():
        return int(rec.sum())
    # each record's nearest line above that is not a record: its listing's header, if any
    above = np.maximum.accumulate(np.where(~rec, np.arange(len(rec)), -1))
    in_show_mem = rec & (above >= 0) & header[np.maximum(above, 0)]
    return int(rec.sum() - in_show_mem.sum() + np.unique(above[in_show_mem]).size)


def _match(arr: pa.Array, pattern: str) -> np.ndarray:
    return pc.match_substring_regex(arr, pattern).to_numpy(zero_copy_only=False).astype(bool)


# Kinds of line, as codes of one int8 array over the whole paste.
_REC, _BLANK, _VERSION_LINE, _COLUMNS_LINE, _SHOW_MEM_LINE, _SUSPECT, _PROSE, _JOINED = range(8)


def _classify(arr: pa.Array) -> np.ndarray:
    """Kind of every line; the regular expressions beyond the record one run on non-records only."""
    kind = np.where(_match(arr, _RECORD), _REC, _PROSE).astype(np.int8)
    other = np.flatnonzero(kind != _REC)
    if other.size:
        rest = arr.take(pa.array(other))
        sub = np.full(other.size, _PROSE, dtype=np.int8)
        sub[_match(rest, _LOOKS_LIKE) | _match(rest, _TAG_FIRST)] = _SUSPECT
        for code, pattern in (
            (_BLANK, r"^\s*$"),
            (_VERSION_LINE, _VERSION),
            (_COLUMNS_LINE, _COLUMNS),
            (_SHOW_MEM_LINE, _SHOW_MEM),
        ):
            sub[_match(rest, pattern)] = code
        kind[other] = sub
    return kind


def _rejoin(lines: list[str], kind: np.ndarray) -> tuple[list[str], list[tuple[int, str, str]]]:
    """Rejoin wrapped records: a suspect line and the non-record line after it may make one record.

    Marks rejoined lines in ``kind`` (the first becomes a record, the second ``_JOINED``) and returns
    the texts to parse plus the suspect lines left over, as ``(line number, expected, text)``.
    """
    texts = lines
    bad = []
    for i in np.flatnonzero(kind == _SUSPECT):
        if kind[i] != _SUSPECT:  # already joined to the line before
            continue
        nxt = i + 1
        if nxt < len(lines) and kind[nxt] in (_SUSPECT, _PROSE) and not _OWN_START_RE.match(lines[nxt]):
            joined = f"{lines[i].rstrip()} {lines[nxt].strip()}"
            if _RECORD_RE.match(joined):
                texts = list(lines) if texts is lines else texts
                texts[i] = joined
                kind[i], kind[nxt] = _REC, _JOINED
                continue
        expected = _WRAPPED_EXPECTED if _TAG_FIRST_RE.match(lines[i]) else RECORD_EXPECTED
        bad.append((int(i) + 1, expected, lines[i]))
    return texts, bad


def _parse_allocinfo(paste: Paste, errors: LineErrors) -> pd.DataFrame:
    lines = paste.lines
    arr = pa.array(lines, type=pa.string())
    kind = _classify(arr)
    texts, bad = _rejoin(lines, kind)
    rec_idx = np.flatnonzero(kind == _REC)
    recs = (arr if texts is lines else pa.array(texts, type=pa.string())).take(pa.array(rec_idx))
    fields, unit_ok, premerge = _fields(recs)
    separators = np.isin(kind, (_VERSION_LINE, _COLUMNS_LINE, _SHOW_MEM_LINE, _PROSE))
    sized = np.flatnonzero(unit_ok)
    block = assign_blocks(rec_idx[sized] + 1, np.flatnonzero(separators) + 1)
    odd = sized[premerge[sized] != _premerge_blocks(premerge[sized], block)]
    bad += [(int(i) + 1, SIZE_EXPECTED, lines[i]) for i in rec_idx[~unit_ok]]
    bad += [(int(rec_idx[j]) + 1, _STYLE_EXPECTED[not premerge[j]], texts[rec_idx[j]]) for j in odd]
    keep = unit_ok.copy()
    keep[odd] = False
    block = block[keep[sized]]
    rec_idx, fields, premerge = rec_idx[keep], {k: v[keep] for k, v in fields.items()}, premerge[keep]
    if rec_idx.size:
        tags = pd.Series(fields["tag"]).astype(str).to_numpy()
        block = _listings(block, rec_idx + 1, kind, tags)
        again = _repeated_premerge_tags(block, tags, premerge)
        bad += [(int(i) + 1, _REPEATED_EXPECTED, texts[i]) for i in rec_idx[again]]
        block, rec_idx, premerge = block[~again], rec_idx[~again], premerge[~again]
        fields = {k: v[~again] for k, v in fields.items()}
    for lineno, expected, line in sorted(bad):
        errors.bad(lineno, expected, line)
    kind[[i - 1 for i, _, _ in bad if kind[i - 1] == _REC]] = _SUSPECT
    if rec_idx.size == 0:
        lineno, line = paste.first_text_line()
        raise ParseError(paste.source, lineno, RECORD_EXPECTED + "; found no allocinfo record", line)

    rec_lines = rec_idx + 1
    versions = _block_versions(lines, kind, rec_lines, block, fields, premerge)
    df = pd.DataFrame({**fields, "block": block, "source_line": rec_lines}).astype(_COLUMNS_OUT)
    unique = sorted(set(versions))
    return finish(
        df,
        "allocinfo",
        paste,
        errors,
        skipped=int(separators.sum()),
        version=unique[0] if len(unique) == 1 else "mixed",
        versions=versions,
    )


def _fields(recs: pa.Array) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Split record lines (already matched by ``_RECORD``) into columns, on whole arrays.

    Returns the columns (numpy arrays, and pandas string arrays with <NA> for missing text), the
    mask of the rows whose size unit is known, and the mask of pre-merge (``module:``) tags.
    """
    tok = pc.ascii_split_whitespace(pc.ascii_trim_whitespace(recs))
    flat = tok.values
    offsets = tok.offsets.to_numpy()
    start, end = offsets[:-1], offsets[1:]

    def at(index: np.ndarray) -> pa.Array:
        return flat.take(pa.array(index))

    # "38.4 MiB" (show_mem) is two tokens: glue the unit back to its number
    size_tok = at(start)
    spaced = pc.utf8_is_alpha(at(start + 1)).to_numpy(zero_copy_only=False).astype(np.int64)
    if spaced.any():
        glued = pc.binary_join_element_wise(size_tok, at(start + 1), "")
        size_tok = pc.if_else(pa.array(spaced.astype(bool)), glued, size_tok)
    calls_i = start + 1 + spaced
    file_line = at(calls_i + 1)
    third = at(calls_i + 2)
    has_mod = pc.or_(pc.starts_with(third, "["), pc.starts_with(third, "module:")).to_numpy(zero_copy_only=False)
    mod_tok = pc.if_else(pa.array(has_mod), third, pa.scalar(None, pa.string()))
    func_i = calls_i + 2 + has_mod.astype(np.int64)
    func_tok = at(func_i)
    n_extra = end - func_i - 1
    if n_extra.max(initial=0) > 0:
        # 2.0 key:value pairs: join the tokens after the function (missing ones as "", then trimmed)
        parts = []
        for j in range(int(n_extra.max())):
            present = n_extra > j
            parts.append(pc.if_else(pa.array(present), at(np.where(present, func_i + 1 + j, start)), ""))
        extra = pc.utf8_rtrim(pc.binary_join_element_wise(*parts, " "), " ")
        extra = pc.if_else(pa.array(n_extra > 0), extra, pa.scalar(None, pa.string()))
    else:
        extra = pa.nulls(len(recs), pa.string())
    inaccurate = pc.fill_null(pc.match_substring_regex(extra, r"(?:^| )accurate:no(?: |$)"), False)
    accurate = ~inaccurate.to_numpy(zero_copy_only=False)
    module = pc.if_else(
        pc.starts_with(mod_tok, "["),
        pc.utf8_slice_codeunits(mod_tok, 1, -1),
        pc.utf8_slice_codeunits(mod_tok, len("module:")),
    )
    file_parts = pc.split_pattern(file_line, ":", max_splits=1, reverse=True)
    sizes, exact, upper, unit_ok = _sizes(size_tok)
    fields = {
        "size_bytes": sizes,
        "calls": pc.cast(at(calls_i), pa.int64()).to_numpy(),
        "tag": _strings(
            pc.if_else(
                pa.array(has_mod),
                pc.binary_join_element_wise(file_line, third, func_tok, " "),
                pc.binary_join_element_wise(file_line, func_tok, " "),
            )
        ),
        "file": _strings(pc.list_element(file_parts, 0)),
        "lineno": pc.cast(pc.list_element(file_parts, 1), pa.int64()).to_numpy(),
        "module": _strings(module),
        "func": _strings(pc.utf8_slice_codeunits(func_tok, len("func:"))),
        "extra": _strings(extra),
        "accurate": accurate,
        "size_exact": exact,
        "size_upper_bound": upper,
    }
    return fields, unit_ok, pc.starts_with(third, "module:").to_numpy(zero_copy_only=False) & has_mod


def _listings(block: np.ndarray, rec_lines: np.ndarray, kind: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The block numbers with two rules that tags decide, where the lines alone cannot:

    * a blank line splits a block where the records after it repeat a tag listed before it: two
      excerpts pasted one after the other (``sort -h`` output, no header) are two listings, not one
      whose repeated tags would be summed;
    * a block without a header right before it and the block after it that starts at header lines are
      one listing when they share no tag: ``sort -h`` or ``sort -rn`` of a whole 6.10+ listing sorts
      its two header lines in among the records (between the zero lines and the others).
    """
    gap = np.diff(rec_lines, prepend=rec_lines[0] - 1) > 1  # something between this record and the one before
    if gap.any():
        blank_only = np.array([bool(g) and bool((kind[rec_lines[i - 1] : rec_lines[i] - 1] == _BLANK).all())
                               for i, g in enumerate(gap)])  # fmt: skip
        new_block = np.r_[True, np.diff(block) != 0]
        starts = np.flatnonzero(new_block | blank_only)  # pieces of a block between blank lines
        cut = np.zeros(len(block), dtype=bool)
        seen: set[str] = set()
        for i, j in zip(starts, [*starts[1:], len(block)]):
            part = set(keys[i:j])
            if new_block[i]:
                seen = set()
            elif seen & part:
                cut[i], seen = True, set()
            seen |= part
        block = block + np.cumsum(cut)
    count = int(block.max()) + 1
    if count < 2:
        return block
    first = np.searchsorted(block, np.arange(count))
    last = np.r_[first[1:], len(block)] - 1
    headers = np.isin(kind, (_VERSION_LINE, _COLUMNS_LINE))
    joined = np.arange(count)
    for b in range(count - 1):
        before = headers[(rec_lines[last[b - 1]] if b else 0) : rec_lines[first[b]] - 1].any()
        between = kind[rec_lines[last[b]] : rec_lines[first[b + 1]] - 1]
        only_headers = np.isin(between, (_VERSION_LINE, _COLUMNS_LINE, _BLANK)).all() and headers[
            rec_lines[last[b]] : rec_lines[first[b + 1]] - 1].any()  # fmt: skip
        if not before and only_headers and joined[b] == b:
            if not set(keys[first[b] : last[b] + 1]) & set(keys[first[b + 1] : last[b + 1] + 1]):
                joined[b + 1] = joined[b]
    renumber = np.cumsum(np.r_[0, np.diff(joined) != 0])
    return renumber[block]


def _repeated_premerge_tags(block: np.ndarray, tags: np.ndarray, premerge: np.ndarray) -> np.ndarray:
    """Rows whose pre-merge tag its listing has already listed. A pre-merge tag names its compilation unit
    (``module:<KBUILD_MODNAME>``), so one listing lists it once; a 6.10+ listing may repeat a tag (an inline
    function of a header, one tag per compilation unit of vmlinux)."""
    frame = pd.DataFrame({"block": block, "tag": tags})
    return (frame.duplicated() & premerge).to_numpy()


def _premerge_blocks(premerge: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Whether each row's listing is in the pre-merge style: most of its rows carry ``module:`` (its first
    row decides a tie)."""
    rows = np.bincount(block)
    pre = np.bincount(block, weights=premerge)
    first = premerge[np.searchsorted(block, np.arange(rows.size))]
    return ((2 * pre > rows) | ((2 * pre == rows) & first))[block]


def _strings(arr: pa.Array) -> pd.arrays.ArrowStringArray:
    return pd.array(arr, dtype="string")


def _sizes(size_tok: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bytes, exact, upper-bound and unit-known flags of the size tokens."""
    n = len(size_tok)
    plain = pc.utf8_is_decimal(pc.utf8_ltrim(size_tok, "-")).to_numpy(zero_copy_only=False).astype(bool)
    nbytes = np.zeros(n, dtype=np.int64)
    exact = plain.copy()
    upper = np.zeros(n, dtype=bool)
    ok = np.ones(n, dtype=bool)
    if plain.any():
        nbytes[plain] = pc.cast(size_tok.filter(pa.array(plain)), pa.int64()).to_numpy()
    human = ~plain
    if human.any():
        text = size_tok.filter(pa.array(human))
        parsed = parse_sizes(pd.Series(pd.array(text, dtype="string")))
        # an unknown unit gives <NA>; a value past int64 (thousands of EiB) wraps negative
        known = (parsed["bytes"].notna() & (parsed["bytes"].fillna(-1) >= 0)).to_numpy(dtype=bool)
        nbytes[human] = parsed["bytes"].fillna(0).to_numpy(dtype=np.int64)
        exact[human] = parsed["exact"].fillna(False).to_numpy(dtype=bool)
        # numfmt --to=iec / --to=iec-i write no "B" and round away from zero
        upper[human] = _match(text, r"[KMGTPEk]i?$") & known
        ok[human] = known
    return nbytes, exact, upper, ok


def _block_versions(
    lines: list[str], kind: np.ndarray, rec_lines: np.ndarray, block: np.ndarray, fields: dict, premerge: np.ndarray
) -> list[str]:
    """The listing format of each block, from the header lines before it and its own lines."""
    version_lines = np.flatnonzero(kind == _VERSION_LINE) + 1
    show_mem_lines = np.flatnonzero(kind == _SHOW_MEM_LINE) + 1
    rounded = ~fields["size_exact"] & ~fields["size_upper_bound"]
    has_extra = pd.Series(fields["extra"]).notna().to_numpy()
    out = []
    prev_end = 0
    for b in range(int(block.max()) + 1):
        rows = block == b
        first = rec_lines[rows].min()
        headers = version_lines[(version_lines > prev_end) & (version_lines < first)]
        if ((show_mem_lines > prev_end) & (show_mem_lines < first)).any():
            out.append("show_mem")
        elif fields["size_upper_bound"][rows].any():
            out.append("numfmt")
        elif premerge[rows].any():
            out.append("pre-merge")
        elif (rounded & rows).any():  # string_get_size sizes with 1.0-style tags: show_mem lines
            out.append("show_mem")
        elif headers.size:
            out.append(lines[headers[-1] - 1].split(":", 1)[1].strip())
        else:
            out.append("2.0" if has_extra[rows].any() else "1.0")
        prev_end = rec_lines[rows].max()
    return out
