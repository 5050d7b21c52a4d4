"""Speed of read_allocinfo on a 100,000-line /proc/allocinfo (version 1.0), against two baselines.

The file repeats real tag lines (the example of Documentation/filesystems/proc.rst and two lines of a
linux-next allocinfo quoted in the pagetable_alloc thread) with varied sizes, call counts and line
numbers, under the kernel's two header lines, laid out as lib/alloc_tag.c prints them
(``%12lli %8llu <tag> ``). Baselines, timed in the same run on the same file:

* a plain-Python reader: one ``re.match`` per line, columns built from the matches;
* ``pandas.read_csv(sep=r"\\s+")`` of the same file, which only splits fields (no tag columns, no
  checks): a floor for what a pandas-based reader could do.

Usage: ``python bench/read_allocinfo.py [--lines N] [--repeat R]``; prints the best wall-clock and the
best CPU time of R runs of each (CPU time is the steadier figure when other work shares the machine).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vmaplab.io.allocinfo import read_allocinfo

TAGS = [
    "mm/page_ext.c:270 func:alloc_page_ext",
    "mm/slub.c:2259 func:alloc_slab_page",
    "mm/readahead.c:247 func:page_cache_ra_unbounded",
    "mm/mm_init.c:2530 func:alloc_large_system_hash",
    "block/blk-mq.c:3421 func:blk_mq_alloc_rqs",
    "mm/filemap.c:1919 func:__filemap_get_folio",
    "kernel/fork.c:307 func:alloc_thread_stack_node",
    "net/netfilter/nf_conntrack_core.c:2567 func:nf_ct_alloc_hashtable",
    "drivers/staging/ctagmod/ctagmod.c:20 [ctagmod] func:ctagmod_start",
    "mm/memory.c:4214 func:alloc_anon_folio",
    "fs/kernfs/dir.c:615 func:__kernfs_new_node",
    "include/linux/mm.h:2848 func:pagetable_alloc",
    "fs/xfs/xfs_buf.c:390 [xfs] func:xfs_buf_alloc_pages",
]
_LINE = re.compile(r"^\s*(-?\d+)\s+(\d+)\s+((\S+):(\d+)(?:\s+\[(\S+)\])?\s+func:(\S+))\s*$")


def build(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    tag = np.array(TAGS)[rng.integers(0, len(TAGS), n)]
    file_line = np.char.partition(tag, " ")  # vary the line number so that tags differ
    lines = [
        f"{size:12d} {calls:8d} {f.rsplit(':', 1)[0]}:{lineno}{sep}{rest} "
        for size, calls, (f, sep, rest), lineno in zip(
            rng.integers(0, 2**31, n) * (rng.random(n) < 0.7),  # many zero lines, as in a real file
            rng.integers(0, 10**6, n),
            file_line,
            rng.integers(1, 5000, n),
        )
    ]
    path.write_text("allocinfo - version: 1.0\n#     <size>  <calls> <tag info>\n" + "\n".join(lines) + "\n")


def python_reader(path: Path) -> pd.DataFrame:
    cols: dict[str, list] = {k: [] for k in ("size_bytes", "calls", "tag", "file", "lineno", "module", "func")}
    with open(path) as fh:
        for line in fh:
            m = _LINE.match(line)
            if m is None:
                continue
            cols["size_bytes"].append(int(m.group(1)))
            cols["calls"].append(int(m.group(2)))
            cols["tag"].append(m.group(3))
            cols["file"].append(m.group(4))
            cols["lineno"].append(int(m.group(5)))
            cols["module"].append(m.group(6))
            cols["func"].append(m.group(7))
    return pd.DataFrame(cols)


def read_csv_floor(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, names=range(5), dtype=str)


def best(fn, path: Path, repeat: int) -> tuple[float, float, pd.DataFrame]:
    """Best wall-clock and best CPU time (seconds) of ``repeat`` calls, and the last result."""
    wall, cpu, out = [], [], None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn(path)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "allocinfo"
        build(path, args.lines)
        ours_wall, ours_cpu, ours = best(read_allocinfo, path, args.repeat)
        py_wall, py_cpu, py = best(python_reader, path, args.repeat)
        csv_wall, csv_cpu, _ = best(read_csv_floor, path, args.repeat)
    assert len(ours) == len(py) == args.lines
    assert (ours["size_bytes"].to_numpy() == py["size_bytes"].to_numpy()).all()
    assert (ours["tag"].to_numpy() == py["tag"].to_numpy()).all()
    print(f"read_allocinfo, {args.lines:,} lines (best of {args.repeat}; CPU time is steadier on a busy machine)")
    print(f"  {'':23s}  {'wall s':>7}  {'CPU s':>7}  {'lines/s (wall)':>14}  ratio (wall, CPU)")
    rows = (
        ("vmaplab read_allocinfo", ours_wall, ours_cpu),
        ("plain-Python re.match", py_wall, py_cpu),
        ("pandas.read_csv (split)", csv_wall, csv_cpu),
    )
    for i, (name, wall, cpu) in enumerate(rows):
        ratio = f"ours is {wall / ours_wall:.1f}x, {cpu / ours_cpu:.1f}x faster" if i else ""
        print(f"  {name:23s}  {wall:7.3f}  {cpu:7.3f}  {args.lines / wall:14,.0f}  {ratio}")
    verdict = {True: "met", False: "NOT met"}
    print(f"  target 0.300 s for 100,000 lines: wall {verdict[ours_wall < 0.3]}, CPU {verdict[ours_cpu < 0.3]}")


if __name__ == "__main__":
    main()
