"""Human-readable sizes (``27.2MiB``, ``2.8M``, ``146Mi``, ``38.4 MiB``, ``512 kB``) to bytes, on whole columns.

The unit multipliers come from bitmath (binary, 1024-based, as /proc, ``sort -h``, ``numfmt --to=iec``
and the kernel's ``string_get_size(..., STRING_UNITS_2)`` use them; ``kB`` in /proc is KiB). Parsing
is vectorised: one regex over the whole column, then a table look-up, never a library call per line.
"""

from __future__ import annotations

import math

import bitmath
import numpy as np
import pandas as pd

__all__ = ["parse_sizes", "format_size", "SIZE_EXPECTED"]

SIZE_EXPECTED = "a size: bytes, or a number with a unit such as 27.2MiB, 2.8M, 146Mi, 38.4 MiB or 512 kB"

_PREFIXES = "KMGTPE"
# Binary (IEC) and decimal (SI) bytes per unit prefix, from bitmath's own unit classes.
_BINARY = {p: int(getattr(bitmath, p + "iB")(1).bytes) for p in _PREFIXES}
_DECIMAL = {p: int(getattr(bitmath, ("k" if p == "K" else p) + "B")(1).bytes) for p in _PREFIXES}

# number, optional space, then nothing, 'B' or 'bytes', or a prefix (k/K/M/...) with optional 'i' and 'B'
_SIZE_RE = (
    r"^\s*(?P<num>[0-9]+(?:\.[0-9]*)?)\s*"
    r"(?:(?P<prefix>[kKMGTPE])(?P<i>i?)B?|B|bytes)?\s*$"
)
_INT64_MAX = float(2**63 - 1)


def parse_sizes(values: pd.Series, *, decimal: bool = False) -> pd.DataFrame:
    """Parse a column of size strings.

    Parameters
    ----------
    values : Series of str
        Sizes such as ``"27.2MiB"``, ``"2.8M"``, ``"146Mi"``, ``"38.4 MiB"``, ``"512 kB"``, ``"4096"``.
    decimal : bool
        Read prefixes without ``i`` as powers of 1000 (``numfmt --to=si``). Default False: every
        prefix is 1024-based, as in /proc and ``sort -h`` output.

    Returns
    -------
    DataFrame indexed like ``values`` with ``bytes`` (Int64, bytes rounded to the nearest byte, <NA>
    where the text is not a size or exceeds int64) and ``exact`` (boolean: True when the text was a plain integer of
    bytes, False when it was rounded from a human unit or a fraction).
    """
    parts = values.astype(str).str.extract(_SIZE_RE)
    ok = parts["num"].notna()
    num = pd.to_numeric(parts["num"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    prefix = parts["prefix"].fillna("").str.upper()
    binary = prefix.map(_BINARY).fillna(1).to_numpy(dtype=float)
    if decimal:  # only prefixes without 'i' are decimal
        si = parts["i"].fillna("").to_numpy() != "i"
        binary = np.where(si, prefix.map(_DECIMAL).fillna(1).to_numpy(dtype=float), binary)
    mult = binary
    nbytes = np.rint(num * mult)
    ok = ok & (nbytes <= _INT64_MAX)  # sizes past int64 are not sizes a kernel prints
    exact = ok & (prefix == "") & ~parts["num"].fillna("").str.contains(".", regex=False)
    out = pd.DataFrame(
        {
            "bytes": pd.array(np.where(ok, nbytes, np.nan), dtype="Float64").astype("Int64"),
            "exact": pd.array(exact.to_numpy(), dtype="boolean"),
        },
        index=values.index,
    )
    out.loc[~ok, "exact"] = pd.NA
    return out


def format_size(nbytes: float) -> str:
    """Bytes as the kernel's ``string_get_size(size, 1, STRING_UNITS_2, ...)`` prints them in
    /proc/allocinfo of the profiling series v3: three significant digits and a binary unit with no
    space, e.g. ``27.2MiB``, ``350MiB``, ``1.20GiB``, ``0B``."""
    if nbytes < 0:
        return "-" + format_size(-nbytes)
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    value = float(nbytes)
    i = 0
    while value >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    if i == 0:
        return f"{int(value)}B"
    digits = 3 - (1 + int(math.floor(math.log10(value)))) if value > 0 else 2
    digits = max(digits, 0)
    text = f"{value:.{digits}f}"
    if float(text) >= 1024 and i < len(units) - 1:  # rounding crossed a unit boundary
        return format_size(1024 ** (i + 1))
    return f"{text}{units[i]}"
