"""Snapshots pasted back to back: a key seen again starts a new block.

``cat /proc/meminfo; sleep 1; cat /proc/meminfo`` (or ``free -c 3`` without its headers) prints
several snapshots with nothing between them. The second ``MemTotal`` line is the only sign that a
new snapshot began, so the readers of key/value formats split blocks where a key repeats.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["split_repeats"]


def split_repeats(blocks: np.ndarray, keys: pd.Series) -> np.ndarray:
    """Renumber ``blocks`` so that a key repeated inside one block starts the next block.

    Parameters
    ----------
    blocks : array of int64
        Block number of each record in file order (from ``assign_blocks``).
    keys : Series
        The key of each record (a meminfo field, a vmstat counter, a ``free`` row label).

    Returns
    -------
    array of int64
        Block numbers 0, 1, ... in file order; every record from a repeated key on belongs to the
        next block, so ``A B C A B C`` gives ``0 0 0 1 1 1`` and ``A B A C`` gives ``0 0 1 1``.
    """
    blocks = np.asarray(blocks, dtype=np.int64)
    if blocks.size == 0:
        return blocks
    frame = pd.DataFrame({"block": blocks, "key": keys.to_numpy()})
    seen = frame.groupby(["block", "key"], sort=False).cumcount().to_numpy(dtype=np.int64)
    # once a repeat starts a new snapshot, the rest of the old block belongs to it
    level = pd.Series(seen).groupby(blocks).cummax().to_numpy(dtype=np.int64)
    change = np.r_[False, (np.diff(blocks) != 0) | (np.diff(level) != 0)]
    return np.cumsum(change).astype(np.int64)
