"""Reader of ``free`` output (procps, old and new, any locale; busybox): one row per printed row.

Layouts (columns after the row label)::

    procps-ng >= 3.3.10   Mem: total used free shared buff/cache available   Swap: total used free
      with -w             Mem: total used free shared buffers cache available
    procps <= 3.3.9       Mem: total used free shared buffers cached
                          -/+ buffers/cache: used free                        Swap: total used free
    -t / -l / -v rows     Total: / Low: / High: / Comm: total used free

Numbers are bare integers in the unit of the command's option (``-b``, ``-k`` (the default),
``-m``, ``-g``, ``--tebi``, ``--pebi``; powers of 1000 with ``--si``, ``--kilo``, ``--mega``, ...)
or, with ``-h``, human sizes (``23Gi``, ``8.7Mi``, ``0B``; older procps and busybox print ``3.7G``,
powers of 1024 unless ``--si``). A localised ``free`` translates the header and the row labels
(``Speicher:``, ``Échange:``) and may print a decimal comma (``8,7Mi``).
"""

from __future__ import annotations

import re
import shlex
import warnings

import numpy as np
import pandas as pd

from ..errors import ParseError, VmaplabWarning, caller_stacklevel
from ._repeats import split_repeats
from ._source import LineErrors, OnBadLines, Paste, Source, assign_blocks, between_records, finish
from .units import parse_sizes

__all__ = ["read_free", "sniff", "FreeUnitWarning", "VALUE_COLUMNS"]


class FreeUnitWarning(VmaplabWarning):
    """``free`` numbers whose unit nothing in the paste or the call states (read as KiB or as
    powers of 1024)."""


VALUE_COLUMNS = ["total", "used", "free", "shared", "buff_cache", "available", "buffers", "cache"]

# Row labels as printed -> the English row name. English, plus the translations of procps-ng 4.0's
# message catalogues (de, es, fr, ka, ko, pl, pt_BR, ro, sv, uk, vi, zh_CN); keys are lower case
# with runs of spaces collapsed.
_LABELS = {
    "mem": "Mem", "swap": "Swap", "total": "Total", "low": "Low", "high": "High", "comm": "Comm",
    "-/+ buffers/cache": "-/+ buffers/cache", "-/+ buffers": "-/+ buffers",
    "speicher": "Mem", "gesamt": "Total", "hoch": "High", "niedrig": "Low",  # de
    "inter": "Swap", "alta": "High", "baja": "Low",  # es
    "échange": "Swap", "haute": "High", "basse": "Low",  # fr
    "მეხს": "Mem", "სვაპი": "Swap", "ჯამი": "Total", "მაღალი": "High", "დაბალი": "Low",  # ka
    "메모리": "Mem", "스 왑": "Swap", "총 계": "Total", "상 위": "High", "하 위": "Low",  # ko
    "pamięć": "Mem", "wymiana": "Swap", "razem": "Total", "wysoka": "High", "niska": "Low",  # pl
    "mem.": "Mem", "baixa": "Low",  # pt_BR
    "minne": "Mem", "växl.": "Swap", "totalt": "Total", "högt": "High", "lågt": "Low",  # sv
    "пам.": "Mem", "своп.": "Swap", "загалом": "Total", "верхня": "High", "нижня": "Low",  # uk
    "bnhớ": "Mem", "tráo đổi": "Swap", "tổng": "Total", "cao": "High", "thấp": "Low",  # vi
    "内存": "Mem", "交换": "Swap", "总量": "Total", "高": "High", "低": "Low",  # zh_CN
}  # fmt: skip
_HEAD_WORD = r"(?:total|used|free|shared|buff/cache|buffers|cache|cached|available)"
_ENGLISH_HEAD = rf"^[ \t]*(?=.*\btotal\b)(?=.*\bused\b)(?:{_HEAD_WORD}(?:[ \t]+|$))+$"
# procps <= 3.3.9 headers: "total used free shared buffers cached"
_OLD_HEAD = r"\bcached\b|^(?!.*\bavailable\b).*\bbuffers\b"

# Column names by row kind and position.
_KINDS = {
    "new": ["total", "used", "free", "shared", "buff_cache", "available"],
    "wide": ["total", "used", "free", "shared", "buffers", "cache", "available"],
    "old": ["total", "used", "free", "shared", "buffers", "cache"],
    "three": ["total", "used", "free"],
    "two": ["used", "free"],
}
_TWO_ROWS = ["-/+ buffers/cache", "-/+ buffers"]
_THREE_ROWS = ["Swap", "Total", "Low", "High", "Comm"]

_VALUE = r"\d+(?:[.,]\d+)?(?:[KMGTPE]i|[kKMGTPE]|B)?"
_ROW = r"^(?P<label>(?:-/\+|[^\W\d_])[^:：]*?)[ \t]*[:：](?P<rest>.*)$"
_VALUES = rf"(?:[ \t]+{_VALUE})+[ \t]*"
_SNIFF_LABELS = "|".join(re.escape(k) for k in sorted(_LABELS, key=len, reverse=True) if " " not in k)
_SNIFF = rf"(?i)^(?:{_SNIFF_LABELS})[ \t]*[:：](?:[ \t]+{_VALUE}){{2,}}[ \t]*$"
_MAX_DIGITS = 18
# "Mem" or "Swap" and numbers, its colon lost: a damaged row, not prose
_NO_COLON = rf"^[ \t]*(?:Mem|Swap)(?:[ \t]+{_VALUE}){{2,}}[ \t]*$"


def _starts_of(label: str) -> str:
    """A regular expression matching every non-empty start of ``label``: ``s(?:w(?:a(?:p)?)?)?``."""
    return re.escape(label[0]) + "".join(f"(?:{re.escape(c)}" for c in label[1:]) + ")?" * (len(label) - 1)


# The whole of a row cut in its label ("Sw", "Speicher"): right below a row, a bad line.
_START = "(?i)[ \t]*(?:" + "|".join(map(_starts_of, _LABELS)) + ")[ \t]*"
_EXPECTED_VALUE = (
    "values that fit in 64 bits as bytes, and bare numbers in whole units of the block "
    "(free prints no fraction without a unit letter)"
)

# option -> power of the unit (1 = kilo/kibi); --si (or --kilo ...) switches to powers of 1000.
# -t is --total and -l --lohi: tebi and pebi have long options only.
_SHORT_POWER = {"b": 0, "k": 1, "m": 2, "g": 3}
_POWER = _SHORT_POWER | {"t": 4, "p": 5}  # the letters of unit=
_LONG_POWER = {"bytes": 0, "kibi": 1, "mebi": 2, "gibi": 3, "tebi": 4, "pebi": 5}
_LONG_SI_POWER = {"kilo": 1, "mega": 2, "giga": 3, "tera": 4, "peta": 5}
_UNIT_NAMES = {1: "bytes"} | {1024**p: f"{'KMGTP'[p - 1]}iB" for p in range(1, 6)}
_UNIT_NAMES |= {1000**p: f"{'kMGTP'[p - 1]}B" for p in range(1, 6)}


def sniff(paste: Paste) -> int:
    """Number of lines of ``paste`` that look like ``free`` rows (``Mem:``, ``Swap:``, ...)."""
    return int(paste.series().str.match(_SNIFF).sum())


def read_free(
    src: Source,
    *,
    on_bad_lines: OnBadLines = "error",
    unit: str | int | None = None,
    si: bool | None = None,
) -> pd.DataFrame:
    """Read the output of ``free`` (a file, a ``.gz`` capture or a paste with prompts).

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    on_bad_lines : {"error", "warn", "skip"}
        What to do with a row whose label is a ``free`` label (``Mem:``, ``Swap:``, ...) but whose
        values do not parse or do not fill its columns, a line between two rows that is none, or the
        start of a label right below a row (the last row cut short: ``Sw``).
    unit : {"b", "k", "m", "g", "t", "p"} or int, optional
        Unit of bare numbers (``free -b/-k/-m/-g/--tebi/--pebi``, or bytes per unit, e.g. 1000 for
        ``free --si``), used when no ``free ...`` command line precedes a listing in the paste
        (a command line wins). Without either, numbers are read as KiB, procps' default, with a
        :class:`FreeUnitWarning`.
    si : bool, optional
        The listing was printed with ``--si``: letters of ``-h`` sizes without ``i`` (``25G``) and
        the ``unit`` letters mean powers of 1000. When neither this nor a command line says so,
        such sizes are read as powers of 1024 (old procps and busybox ``-h``), with a warning.

    Returns
    -------
    DataFrame, one row per printed row in file order:

    =====================  ======  ===========================================================
    block                  int64   listing number (0-based): a new one starts at a header, a
                                   prompt, prose or a blank line, or where a row label repeats
    row                    string  ``Mem``, ``Swap``, ``Total``, ``Low``, ``High``, ``Comm``,
                                   ``-/+ buffers/cache`` (translated labels mapped back; an
                                   unknown label is kept as printed)
    total ... available    Int64   bytes: total, used, free, shared, buff_cache, available
    buffers, cache         Int64   bytes, printed separately by ``-w`` and by procps <= 3.3.9
                                   (whose ``cached`` goes in ``cache``)
    exact                  bool    True when the printed numbers are exact (``-b``, ``-k``);
                                   False when ``free`` rounded them (``-m``, ``-g``, ``--si``,
                                   ``-h``)
    =====================  ======  ===========================================================

    A column the row does not print is <NA> (``Swap`` has no ``shared``; ``buff_cache`` is <NA>
    under ``-w``, which prints ``buffers`` and ``cache`` instead).

    ``attrs``: ``units`` lists, per block, ``unit`` (``"KiB"``, ``"MiB"``, ``"bytes"``, ``"kB"``,
    ..., or ``"human"``), ``bytes_per_unit`` (of the numbers printed without a unit letter: 1 in
    ``-h`` output), ``si``, ``source`` (where the
    unit came from: ``"command 'free -m'"``, ``"unit= argument"``, ``"sizes as printed"`` or
    ``"default (KiB)"``) and ``line`` (the command's line number, else None); ``unit`` and
    ``unit_source`` say the same for the whole file (``"mixed"`` when blocks differ).

    >>> fr = read_free("data/seed/free-m-256threads.txt", unit="m")
    >>> int(fr.set_index("row").loc["Mem", "used"]) // 2**20
    6741
    """
    per_unit = _unit_argument(unit, si)
    paste = Paste.read(src)
    return _parse_free(paste, on_bad_lines, per_unit, si)


def _unit_argument(unit: str | int | None, si: bool | None) -> int | None:
    """Bytes per unit of the ``unit=`` argument (letters are powers of 1024, or of 1000 with si)."""
    if unit is None:
        return None
    if isinstance(unit, str) and unit.lower() in _POWER:
        return (1000 if si else 1024) ** _POWER[unit.lower()]
    if isinstance(unit, (int, np.integer)) and not isinstance(unit, bool) and unit > 0:
        return int(unit)
    raise ValueError(f"unit must be one of 'b', 'k', 'm', 'g', 't', 'p' or a positive int, not {unit!r}")


def _free_options(command: str) -> tuple[int, bool, bool] | None:
    """(unit power, human, si) of a ``free ...`` command line, or None when it runs no ``free``."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    starts = [i for i, w in enumerate(words) if w.rsplit("/", 1)[-1] == "free"]
    if not starts:
        return None
    power, human, si = 1, False, False
    args = iter(words[starts[0] + 1 :])
    for word in args:
        if word in ("|", ";", "&&", "||"):
            break
        if word.startswith("--"):
            name = word[2:].split("=", 1)[0]
            if name in _LONG_POWER:
                power = _LONG_POWER[name]
            elif name in _LONG_SI_POWER:
                power, si = _LONG_SI_POWER[name], True
            elif name == "si":
                si = True
            elif name == "human":
                human = True
            elif name in ("seconds", "count") and "=" not in word:
                next(args, None)
        elif word.startswith("-"):
            for j, flag in enumerate(word[1:]):
                if flag in _SHORT_POWER:
                    power = _SHORT_POWER[flag]
                elif flag == "h":
                    human = True
                elif flag in "sc":  # -s N / -c N: the rest of the word or the next word is N
                    if j == len(word) - 2:
                        next(args, None)
                    break
    return power, human, si


def _parse_free(paste: Paste, on_bad_lines: OnBadLines, per_unit: int | None, si: bool | None) -> pd.DataFrame:
    errors = LineErrors.of(paste, on_bad_lines)
    lines = paste.series()
    blank = lines.str.strip().eq("")
    parts = lines.str.extract(_ROW)
    label = parts["label"].fillna("").astype(str).str.replace(r"\s+", " ", regex=True)
    row = label.str.lower().map(_LABELS)
    known = row.notna()
    rest = parts["rest"].fillna("").astype(str)
    valueish = rest.str.fullmatch(_VALUES)
    n = rest.str.split().str.len().where(valueish, 0).astype(int)
    n_words = lines.str.count(r"\S+")
    english_head = lines.str.match(_ENGLISH_HEAD)

    # rows: a known label, or an unknown one (a translation we lack) next to a header or a row
    is_rec = known & valueish & n.ge(2)
    maybe = ~known & valueish & n.isin([2, 3, 6, 7])
    while True:
        near = (is_rec | english_head).shift(1, fill_value=False) | is_rec.shift(-1, fill_value=False)
        grown = is_rec | (maybe & near)
        if grown.equals(is_rec):
            break
        is_rec = grown
    row = row.where(known, np.where(n.eq(2), "-/+ buffers/cache", label))

    # a header: English words, or (translated) six or seven words with no digit or colon right above a row
    run_start = is_rec & ~is_rec.shift(1, fill_value=False)
    above = pd.Series(False, index=lines.index)
    above.iloc[:-1] = run_start.iloc[1:].to_numpy()
    local_head = above & ~blank & ~lines.str.contains("[:：]") & ~lines.str.contains(r"(?:^|\s)\d")
    # ... but not a damaged English one ("total" alone is also French, Spanish and Romanian)
    english_words = lines.str.count(rf"(?:^|(?<=\s)){_HEAD_WORD}(?=\s|$)")
    local_head &= n_words.isin([6, 7]) & english_words.lt(3)
    head = (english_head | local_head) & ~is_rec

    # the header line above each run of rows: its word count must match a Mem row's values
    run = run_start.cumsum()
    head_of_run = pd.Series(np.where(head, lines.index, 0), index=lines.index).shift(1, fill_value=0)
    run_head = head_of_run.where(run_start).groupby(run).transform("max").where(is_rec, 0).astype(int)
    head_n = run_head.map(n_words.where(head)).fillna(0).astype(int)
    old_head = run_head.map(head & lines.str.contains(_OLD_HEAD)).fillna(False).astype(bool)

    kind = pd.Series(np.where(n.eq(2), "two", np.where(n.eq(3), "three", "mem")), index=lines.index)
    two_rows, three_rows = row.isin(_TWO_ROWS), row.isin(_THREE_ROWS)
    mem_like = ~two_rows & ~three_rows  # Mem, or a label we do not know
    fits = (two_rows & n.eq(2)) | (three_rows & n.eq(3)) | (mem_like & n.eq(3) & row.ne("Mem"))
    fits |= mem_like & n.isin([6, 7]) & (head_n.eq(0) | head_n.eq(n))
    too_long = rest.str.contains(rf"\d{{{_MAX_DIGITS + 1},}}")
    damaged = between_records(paste, lines, is_rec, _START) & ~head  # garbled between two rows, or cut
    bad = (known & ~is_rec) | (is_rec & (~fits | too_long)) | lines.str.match(_NO_COLON) | damaged
    for lineno in lines.index[bad]:
        name = row[lineno] if isinstance(row[lineno], str) and row[lineno] else lines[lineno].split()[0]
        errors.bad(int(lineno), _expected(name, int(head_n[lineno])), paste.lines[lineno - 1])
    keep = is_rec & ~bad
    if not keep.any():
        lineno, line = paste.first_text_line()
        raise ParseError(paste.source, lineno, "free output: a header and rows such as 'Mem: <total> <used> ...'", line)

    recs = lines.index[keep]
    other = ~keep & ~bad
    blocks = split_repeats(assign_blocks(recs.to_numpy(), lines.index[other].to_numpy()), row[keep])
    frame = pd.DataFrame(
        {"block": blocks, "row": row[keep].to_numpy(), "n": n[keep].to_numpy(), "kind": kind[keep].to_numpy()},
        index=recs,
    )
    frame["kind"] = _layouts(frame, old_head[keep])
    units = _units(paste, frame, rest[keep], per_unit, si)
    values, unfit = _values(frame, rest[keep], units)
    for lineno in unfit:
        errors.bad(int(lineno), _EXPECTED_VALUE, paste.lines[lineno - 1])
    if len(unfit):
        frame, values = frame.drop(index=unfit), values.drop(index=unfit)
        if frame.empty:
            raise ParseError(paste.source, int(unfit[0]), _EXPECTED_VALUE, paste.lines[unfit[0] - 1])

    df = pd.DataFrame({"block": frame["block"].to_numpy(dtype=np.int64)})
    df["row"] = pd.array(frame["row"].to_numpy(dtype=object), dtype="string")
    values = values.reindex(columns=VALUE_COLUMNS)
    for col in VALUE_COLUMNS:
        df[col] = pd.array(values[col].to_numpy(dtype=object, na_value=pd.NA), dtype="Int64")
    df["exact"] = frame["block"].map({b: u["exact"] for b, u in units.items()}).to_numpy(dtype=bool)
    skipped = int((other & ~blank).sum())
    summary = [{k: v for k, v in u.items() if k != "exact"} for u in units.values()]
    names, sources = {u["unit"] for u in summary}, {u["source"] for u in summary}
    unit_name = names.pop() if len(names) == 1 else "mixed"
    unit_source = sources.pop() if len(sources) == 1 else "mixed"
    return finish(df, "free", paste, errors, skipped=skipped, units=summary, unit=unit_name, unit_source=unit_source)


def _expected(row: str, head_n: int) -> str:
    if row in _TWO_ROWS:
        return f"'{row}:' with 2 numbers (used, free)"
    if row not in _THREE_ROWS:
        under = f"{head_n} (one under each header column)" if head_n else "6 or 7"
        return f"a free row '{row}:' with {under} numbers or sizes such as 64172, 23Gi, 8,7Mi"
    return f"a free row '{row}:' with 3 numbers or sizes (total, used, free)"


def _layouts(frame: pd.DataFrame, old_head: pd.Series) -> pd.Series:
    """Row kind (``new``/``wide``/``old``/``three``/``two``) of each record, from its value count,
    whether its header is a procps <= 3.3.9 one and whether its block has a ``-/+ buffers/cache``
    row (the other sign of procps <= 3.3.9)."""
    old_block = frame["block"].isin(frame.loc[frame["kind"].eq("two"), "block"])
    old_head = old_head.groupby(frame["block"]).transform("max").astype(bool)
    mem = frame["kind"].eq("mem")
    kind = frame["kind"].where(~mem, np.where(frame["n"].eq(7), "wide", np.where(old_block | old_head, "old", "new")))
    return kind


def _units(
    paste: Paste, frame: pd.DataFrame, rest: pd.Series, per_unit: int | None, si: bool | None
) -> dict[int, dict]:
    """Unit of each block: from the last ``free`` command line above it, else ``unit=``/``si=``, else
    KiB and powers of 1024 (with a :class:`FreeUnitWarning`)."""
    prompts = sorted(paste.prompts)
    suffixed = rest.str.contains(r"\d[A-Za-z]").groupby(frame["block"]).any()
    bare_letters = rest.str.contains(r"\d[kKMGTPE](?:\s|$)").groupby(frame["block"]).any()
    first_line = frame.reset_index().groupby("block")["lineno"].min()
    out: dict[int, dict] = {}
    unstated: list[int] = []  # blocks whose bare numbers are read as KiB
    si_unstated: list[int] = []  # blocks whose size letters without 'i' are read as powers of 1024
    for block, lineno in first_line.items():
        i = int(np.searchsorted(prompts, lineno)) - 1
        options = _free_options(paste.prompts[prompts[i]]) if i >= 0 else None
        human = bool(suffixed[block])
        if options is not None:
            power, human_opt, block_si = options
            human = human or human_opt
            # with -h, free prints the numbers it gives no unit letter in bytes
            bytes_per = 1 if human_opt else (1000 if block_si else 1024) ** power
            source, line = f"command {paste.prompts[prompts[i]]!r}", prompts[i]
        else:
            block_si, line = bool(si), None
            if per_unit is not None:
                bytes_per, source = per_unit, "unit= argument"
            elif human:
                bytes_per, source = 1, "sizes as printed"
            else:
                bytes_per, source = 1024, "default (KiB)"
                unstated.append(int(block))
            if human and si is None and bare_letters[block]:
                si_unstated.append(int(block))
        out[int(block)] = {
            "block": int(block),
            "unit": "human" if human else _UNIT_NAMES.get(bytes_per, f"{bytes_per} bytes"),
            "bytes_per_unit": int(bytes_per),
            "si": bool(block_si),
            "source": source,
            "line": line,
            "exact": not human and bytes_per in (1, 1024),
        }
    guesses = []
    if unstated:
        guesses.append(f"the unit of block(s) {unstated}, whose bare numbers are read as KiB (unit=)")
    if si_unstated:
        guesses.append(f"whether the size letters of block(s) {si_unstated} are decimal, read as powers of 1024 (si=)")
    if guesses:
        warnings.warn(
            FreeUnitWarning(f"{paste.source}: no 'free' command line and no argument (vmaplab read/plot --unit) "
                            f"states {'; nor '.join(guesses)}"),
            stacklevel=caller_stacklevel(),
        )  # fmt: skip
    return out


def _values(frame: pd.DataFrame, rest: pd.Series, units: dict[int, dict]) -> tuple[pd.DataFrame, np.ndarray]:
    """Bytes of every value, one column per name in ``VALUE_COLUMNS`` that occurs, and the line numbers
    of the rows holding a value that does not fit in int64 bytes or a bare number with a fraction."""
    tokens = rest.str.split().explode().rename("token").to_frame()
    tokens["pos"] = tokens.groupby(level=0).cumcount()
    tokens = tokens.join(frame[["block", "kind"]])
    names = {(k, i): c for k, cols in _KINDS.items() for i, c in enumerate(cols)}
    tokens["column"] = [names[(k, p)] for k, p in zip(tokens["kind"], tokens["pos"])]
    text = tokens["token"].astype(str).str.replace(",", ".", regex=False)
    # a number with a unit letter is a size; a bare one is in the block's unit
    human = text.str.contains(r"[A-Za-z]").to_numpy(dtype=bool)
    decimal = tokens["block"].map(lambda b: units[b]["si"]).to_numpy(dtype=bool)
    per = tokens["block"].map(lambda b: units[b]["bytes_per_unit"]).to_numpy(dtype=np.int64)
    nbytes = np.zeros(len(tokens), dtype=np.int64)
    unfit = np.zeros(len(tokens), dtype=bool)
    if (~human).any():
        number = pd.to_numeric(text[~human]).to_numpy(dtype=float)
        unfit[~human] = (number != np.floor(number)) | (number >= np.iinfo(np.int64).max / per[~human])
        nbytes[~human] = np.where(unfit[~human], 0, number).astype(np.int64) * per[~human]
    for dec in (False, True):
        sel = human & (decimal == dec)
        if sel.any():
            sizes = parse_sizes(text[sel], decimal=dec)["bytes"]
            unfit[sel] = (sizes.isna() | sizes.fillna(0).lt(0)).to_numpy(dtype=bool)
            nbytes[sel] = sizes.fillna(0).to_numpy(dtype=np.int64)
    tokens["bytes"] = nbytes
    wide = tokens.reset_index().pivot(index="lineno", columns="column", values="bytes")
    return wide.reindex(frame.index), np.unique(tokens.index[unfit])
