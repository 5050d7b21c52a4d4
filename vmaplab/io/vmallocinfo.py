"""Reader of ``/proc/vmallocinfo``: one row per vmap area (busy area, vm_map_ram area or lazily freed area).

Line layout (kernel-facts §4.3; mm/vmalloc.c ``vmalloc_info_show``/``s_show``)::

    0x<start>-0x<end> <size> [<caller>+0x<off>/0x<len> [<module>]] [pages=<n>] [phys=<addr>]
        [ioremap] [sparse] [vmalloc] [vmap] [user] [dma-coherent] [vpages] [N<node>=<pages> ...]
    0x<start>-0x<end> <size> vm_map_ram
    0x<start>-0x<end> <size> unpurged vm_area

Addresses are printed with ``%pK``: on the 6.18 captures in data/real, root reads real addresses with
``kptr_restrict`` 1, hashed 32-bit ids (upper half zero) with 0, and zeros with 2. They are read as
printed; ``attrs["address_kind"]`` says which they look like.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ParseError
from ._ints import hex_uint64
from ._source import LineErrors, OnBadLines, Paste, Source, assign_blocks, between_records, finish

__all__ = ["read_vmallocinfo", "sniff", "FLAGS"]

# Flag words in the fixed order the kernel prints them, and the column each becomes.
FLAGS = {
    "ioremap": "ioremap",
    "sparse": "sparse",
    "vmalloc": "vmalloc",
    "vmap": "vmap",
    "user": "user",
    "dma-coherent": "dma_coherent",
    "vpages": "vpages",
}

# A line that starts like a record: "0x<hex>-0x" (anything after that must then parse).
_LEAD = r"^\s*0x[0-9a-fA-F]+-0x"
# The whole of an area cut before its "-0x" ("0x00000000eb5a16a4-0"): right below an area, a bad line.
_START = r"\s*0(?:x[0-9a-fA-F]*(?:-0?)?)?\s*"
_SNIFF = r"^\s*0x[0-9a-fA-F]{1,16}-0x[0-9a-fA-F]{1,16}\s+\d+(?:\s|$)"
_FLAG_RE = "".join(rf"(?:\s+(?P<{col}>{word}))?" for word, col in FLAGS.items())
_RECORD = (
    r"^\s*0x(?P<start>[0-9a-fA-F]{1,16})-0x(?P<end>[0-9a-fA-F]{1,16})\s+(?P<size>\d{1,18})"
    r"(?:\s+(?P<unpurged>unpurged vm_area)|\s+(?P<vm_map_ram>vm_map_ram)|"
    # caller: %pS gives "sym+0xoff/0xlen" (plus " [module]"), or the bare address without kallsyms
    r"(?:\s+(?:(?P<caller>[^\s+\[\]]+)\+0x(?P<caller_offset>[0-9a-fA-F]{1,15})/0x[0-9a-fA-F]+"
    r"|(?P<caller_addr>0x[0-9a-fA-F]{1,16}))(?:\s+\[(?P<module>[^\]\s]+)\])?)?"
    r"(?:\s+pages=(?P<pages>\d{1,18}))?"
    r"(?:\s+phys=(?:0x)?(?P<phys>[0-9a-fA-F]{1,16}))?"  # %pa since 4.x; older kernels %lx
    rf"{_FLAG_RE}(?P<nodes>(?:\s+N\d{{1,4}}=\d{{1,18}})*))\s*$"
)
# a line holding nothing but the tail fields of a record: the second half of a wrapped line
_TAIL = (
    r"^\s*(?:/0x[0-9a-fA-F]+|\[[^\]\s]+\]|pages=\d+|phys=\S+|" + "|".join(FLAGS) + r"|N\d+=\d+)"
    r"(?:\s+(?:\[[^\]\s]+\]|pages=\d+|phys=\S+|" + "|".join(FLAGS) + r"|N\d+=\d+))*\s*$"
)
_EXPECTED_SIZE = "a vmallocinfo size in bytes that is a whole number of 4 KiB pages (guard page included)"
_NODE = r"N(?P<node>\d+)=(?P<count>\d+)"
_EXPECTED = (
    "a vmallocinfo line '0x<start>-0x<end> <size> [<caller>+0x<off>/0x<len> [<module>]] [pages=<n>] "
    "[phys=<addr>] [flags] [N<node>=<pages> ...]', '... vm_map_ram' or '... unpurged vm_area'"
)


def sniff(paste: Paste) -> int:
    """Number of lines of ``paste`` that look like vmallocinfo records."""
    return int(paste.series().str.match(_SNIFF).sum())


def read_vmallocinfo(src: Source, *, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Read ``/proc/vmallocinfo`` text (a file, a ``.gz`` capture or a paste).

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a line that starts like an area (``0x...-0x``) but does not parse, or the
        start of one right below an area (the last area cut short: ``0x00000000eb5a16a4-0``).

    Returns
    -------
    DataFrame, one row per area in file order:

    ========================  =========  ==========================================================
    block                     int64      listing number in a paste of several listings (0-based): a
                                         prompt, text or a blank line between two records starts one
    start, end                UInt64     area addresses as printed (end exclusive; see address_kind)
    size                      int64      bytes, including the guard page (a 1-page vmalloc is 8192)
    caller                    string     caller symbol without ``+0x../0x..`` (or the bare address
                                         when the kernel has no symbols); <NA> when not printed
    caller_offset             Int64      bytes into the caller symbol (the ``+0x..``)
    module                    string     module of the caller (``[xfs]`` -> ``xfs``); <NA> built-in
    pages                     Int64      ``pages=``: pages backing the area; <NA> when not printed
                                         (the kernel omits it when zero)
    phys                      UInt64     ``phys=`` physical address of an ioremap area, else <NA>
    ioremap ... vpages        bool       the flag words (``dma-coherent`` -> ``dma_coherent``)
    vm_map_ram, unpurged      bool       ``vm_map_ram`` lines; lazily freed ``unpurged vm_area`` lines
    n0, n1, ...               Int64      pages on NUMA node i (``N<i>=``), one column per node seen;
                                         0 on a line with other nodes' counts, <NA> on a line with none
    ========================  =========  ==========================================================

    ``attrs``: ``address_kind`` is ``"real"`` when every area's ``end - start == size``, ``"zero"``
    when all addresses are 0 (``kptr_restrict=2``), ``"hashed"`` when no area is consistent
    (``%pK`` hashing), ``"mixed"`` otherwise, None without rows; ``nodes`` lists the node ids seen.

    A record wrapped onto two lines by a mail client (or cut with ``...``) is rejoined when the two
    halves parse as one record.
    """
    paste = Paste.read(src)
    return _parse_vmallocinfo(paste, on_bad_lines)


def _rejoin(paste: Paste, lineno: int) -> str:
    """The line ``lineno`` glued to the next one, as a mail client (or ``...`` in docs) split it."""
    head = paste.lines[lineno - 1].rstrip()
    head = head[:-3].rstrip() if head.endswith("...") else head
    nxt = paste.lines[lineno].strip()
    glue = "" if nxt.startswith("/0x") else " "  # "sym+0x204 ..." / "  /0x2c0 pages=..." splits
    return head + glue + nxt


def _parse_vmallocinfo(paste: Paste, on_bad_lines: OnBadLines) -> pd.DataFrame:
    errors = LineErrors.of(paste, on_bad_lines)
    lines = paste.series()
    lead = lines.str.match(_LEAD)
    fields = lines[lead].str.extract(_RECORD)
    # Rejoin a record with the line after it when that line is not a record and either the record did
    # not parse alone or the next line holds only the tail fields of a record (a wrapped line).
    nxt_text = lines.shift(-1).fillna("")
    nxt_free = ~lead.shift(-1, fill_value=True) & nxt_text.str.strip().ne("")
    tail = nxt_text.str.match(_TAIL)
    try_join = lead & nxt_free & (tail | ~lines.index.isin(fields.index[fields["start"].notna()]))
    consumed: list[int] = []  # continuation lines folded into the record before them
    for lineno in lines.index[try_join]:  # only the few wrapped or unparsed lines
        parsed = pd.Series([_rejoin(paste, lineno)], dtype=str).str.extract(_RECORD)
        if parsed["start"].notna().all():
            fields.loc[lineno] = parsed.iloc[0].to_numpy()
            consumed.append(lineno + 1)
    bad = fields.index[fields["start"].isna()]
    parsed = pd.Series(lines.index.isin(fields.index.difference(bad)), index=lines.index)
    damaged = lines.index[between_records(paste, lines, parsed, _START) & ~lead].difference(pd.Index(consumed))
    # every area is whole pages (4 KiB or a multiple of it): another size is a number cut short
    odd = fields.index[fields["size"].notna() & (pd.to_numeric(fields["size"], errors="coerce") % 4096 != 0)]
    for lineno in bad.union(damaged).union(odd):  # a record cut before its "0x...-0x", between two others
        expected = _EXPECTED_SIZE if lineno in odd else _EXPECTED
        errors.bad(int(lineno), expected, paste.lines[lineno - 1])
    fields = fields.drop(index=bad.union(odd))
    other = lines[~lead & lines.str.strip().ne("")].index.difference(pd.Index(consumed)).difference(damaged)
    if fields.empty and not len(bad):
        lineno, line = paste.first_text_line()
        raise ParseError(paste.source, lineno, _EXPECTED, line)

    df = pd.DataFrame(index=pd.RangeIndex(len(fields)))
    blank = lines.index[lines.str.strip().eq("")]  # /proc/vmallocinfo prints none: a blank line parts two listings
    df["block"] = assign_blocks(fields.index.to_numpy(), other.union(blank).to_numpy())
    df["start"] = hex_uint64(fields["start"])
    df["end"] = hex_uint64(fields["end"])
    df["size"] = fields["size"].astype("int64").to_numpy()
    caller = fields["caller"].fillna(fields["caller_addr"])
    df["caller"] = caller.astype("string").array
    df["caller_offset"] = hex_uint64(fields["caller_offset"]).astype("Int64")
    df["module"] = fields["module"].astype("string").array
    df["pages"] = fields["pages"].astype("Int64").array
    df["phys"] = hex_uint64(fields["phys"])
    for col in [*FLAGS.values(), "vm_map_ram", "unpurged"]:
        df[col] = fields[col].notna().to_numpy()
    nodes = _nodes(fields["nodes"])
    for node in nodes.columns:
        df[f"n{node}"] = nodes[node].array
    return finish(
        df,
        "vmallocinfo",
        paste,
        errors,
        skipped=len(other),
        address_kind=_address_kind(df),
        nodes=[int(n) for n in nodes.columns],
    )


def _nodes(text: pd.Series) -> pd.DataFrame:
    """``N<i>=<pages>`` fields -> one Int64 column per node (0 where a line names other nodes only)."""
    pairs = text.fillna("").str.extractall(_NODE)
    if pairs.empty:
        return pd.DataFrame(index=text.index)
    pairs = pairs.astype("int64").reset_index(level="match", drop=True)
    wide = pairs.pivot_table(index=pairs.index, columns="node", values="count", aggfunc="sum")
    wide = wide.reindex(text.index).astype("Int64")
    has_any = text.index.isin(wide.dropna(how="all").index)
    wide.loc[has_any] = wide.loc[has_any].fillna(0)
    return wide.sort_index(axis=1)


def _address_kind(df: pd.DataFrame) -> str | None:
    start = df["start"].to_numpy(dtype=np.uint64)
    end = df["end"].to_numpy(dtype=np.uint64)
    if not len(df):
        return None
    if not start.any() and not end.any():
        return "zero"
    consistent = (end - start) == df["size"].to_numpy().astype(np.uint64)
    if consistent.all():
        return "real"
    return "hashed" if not consistent.any() else "mixed"
