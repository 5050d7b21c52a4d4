"""Human-readable sizes (``27.2MiB``, ``2.8M``, ``146Mi``, ``38.4 MiB``, ``512 kB``) to bytes, on whole columns.

The unit multipliers come from bitmath (binary, 1024-based, as /proc, ``sort -h``, ``numfmt --to=iec``
and the kernel's ``string_get_size(..., STRING_UNITS_2)`` use them; ``kB`` in /proc is KiB). Parsing
is vectorised: one regex over the whole column, then a table look-up, never a library call per line.
"""

from __future__ import annotations

import bitmath
import numpy as np
import pandas as pd

__all__ = ["parse_sizes", "format_size", "SIZE_EXPECTED"]

SIZE_EXPECTED = "a size: bytes, or a number with a unit such as 27.2MiB, 2.8M, 146Mi, 38.4 MiB or 512 kB"

_PREFIXES = "KMGTPE"
# Binary (IEC) and decimal (SI) bytes per unit prefix, from bitmath's own unit classes.
_BINARY = {p: int(getattr(bitmath, p + "iB")(1).bytes) for p in _PREFIXES}
_DECIMAL = {p: int(getattr(bitmath, ("k" if p == "K" else p) + "B")(1).bytes) for p in _PREFIXES}
_UNITS_2 = ["B", *(p + "iB" for p in _PREFIXES)]  # string_get_size's binary units, each 1024 times the last

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


def format_size(nbytes: int) -> str:
    """Bytes as the kernel's ``string_get_size(size, 1, STRING_UNITS_2, ...)`` prints them in
    /proc/allocinfo of the profiling series v3 (lib/string_helpers.c, 6.x), with no space: ``27.2MiB``,
    ``350MiB``, ``1.20GiB``, ``0B``. Its arithmetic: divide by 1024 until below 1024 (first while the
    size needs more than 32 bits, dropping those remainders), keep the last remainder in thousandths,
    truncated, add 5 below the last digit printed and carry; three significant digits, so 1179648 is
    ``1.13MiB`` and 1048575 is ``1024KiB``. A negative size gets a minus sign."""
    if nbytes < 0:
        return "-" + format_size(-nbytes)
    size, unit, remainder = int(nbytes), 0, 0
    if size == 0:
        return "0B"
    while size >> 32:
        size //= 1024
        unit += 1
    while size >= 1024:
        size, remainder = divmod(size, 1024)
        unit += 1
    decimals, scaled = 0, size
    while scaled * 10 < 1000:
        scaled *= 10
        decimals += 1
    thousandths = ((remainder * 1000) >> 10) + (500, 50, 5)[decimals]
    if thousandths >= 1000:
        thousandths -= 1000
        size += 1
    fraction = f".{thousandths:03d}"[: decimals + 1] if decimals else ""
    return f"{size}{fraction}{_UNITS_2[unit]}"
