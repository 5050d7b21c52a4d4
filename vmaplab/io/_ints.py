"""Whole-column conversion of decimal and hexadecimal text to unsigned 64-bit integers (kernel addresses).

pandas and numpy have no vectorised hex parser, and ``pd.to_numeric`` falls back to text for a column
that mixes values above 2**63 with missing ones; these helpers take regex-validated digit strings
(missing values allowed) and return a nullable ``UInt64`` array.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["hex_uint64", "dec_uint64", "fits_uint64"]

_UINT64_MAX = str(2**64 - 1)

# ASCII code -> value of that hex digit (0 for every other byte: the callers' regexes allow only digits)
_NIBBLE = np.zeros(256, dtype=np.uint64)
for _i, _c in enumerate("0123456789abcdef"):
    _NIBBLE[ord(_c)] = _i
    _NIBBLE[ord(_c.upper())] = _i
_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)


def hex_uint64(values: pd.Series) -> pd.arrays.IntegerArray:
    """Hex digit strings (no ``0x``, at most 16 digits, NA allowed) -> UInt64 array, NA kept."""
    mask = values.isna().to_numpy()
    if not len(values):
        return pd.array([], dtype="UInt64")
    digits = values.to_numpy(dtype=object, na_value="0").astype(str)
    if np.char.str_len(digits).max() > 16:
        raise ValueError("hex value wider than 64 bits")
    padded = np.char.zfill(digits, 16)
    codes = np.frombuffer(np.char.encode(padded, "ascii").tobytes(), dtype=np.uint8).reshape(-1, 16)
    out = np.bitwise_or.reduce(_NIBBLE[codes] << _SHIFTS, axis=1)
    return pd.arrays.IntegerArray(out.astype(np.uint64), mask)


def dec_uint64(values: pd.Series) -> pd.arrays.IntegerArray:
    """Decimal digit strings (NA allowed) -> UInt64 array; a value of 2**64 or more raises ValueError."""
    mask = values.isna().to_numpy()
    out = np.zeros(len(values), dtype=np.uint64)
    present = values[~mask]
    if len(present):
        nums = pd.to_numeric(present.astype(str))
        if nums.dtype.kind not in "iu" or (nums.dtype.kind == "i" and (nums < 0).any()):
            raise ValueError("decimal value outside the unsigned 64-bit range")
        out[~mask] = nums.to_numpy().astype(np.uint64)
    return pd.arrays.IntegerArray(out, mask)


def fits_uint64(values: pd.Series) -> pd.Series:
    """True where a decimal digit string (no sign) is below 2**64; NA counts as fitting."""
    text = values.fillna("0").str.lstrip("0")
    width = text.str.len()
    return (width < len(_UINT64_MAX)) | ((width == len(_UINT64_MAX)) & (text <= _UINT64_MAX))
