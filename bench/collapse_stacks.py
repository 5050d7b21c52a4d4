"""Speed and memory of ``vmaplab.collapse_stacks`` against FlameGraph's ``stackcollapse-perf.pl``.

Both tools fold the same real ``perf script`` file of 100 MB or more, each in its own process, timed in
one run (best of ``--repeat``, runs interleaved). The script prints MB/s (wall clock and CPU time) of the
``collapse_stacks`` call, of the whole vmaplab process (with Python's start and the pandas import) and of
the Perl process, and the ratios; it checks that the two outputs agree, and measures the peak RSS of
``collapse_stacks`` on the file and on a file twice as large, to show that memory does not grow with the
input.

Input (written to ``bench/_work/``, which git ignores):

* default: ``data/real/perf-script-churn.txt.gz`` (a real capture, see ``data/real/SOURCES.md``)
  repeated until ``--size-mb`` is reached. The repetition makes every call chain recur, which favours
  any cache; ``--record`` or ``--input`` give a file without that bias;
* ``--record SECONDS``: record this host with ``perf record -a -g -F 4999 -- sleep SECONDS`` and use
  its ``perf script`` (needs perf and the right to sample the whole system);
* ``--input FILE``: any ``perf script`` file.

The Perl script is not part of vmaplab: pass ``--perl-script`` (or set ``STACKCOLLAPSE_PERF``) to a copy
checked out from FlameGraph, e.g. ``git --git-dir=<FlameGraph clone> show HEAD:stackcollapse-perf.pl``.

Usage::

    python bench/collapse_stacks.py --perl-script <FlameGraph checkout>/stackcollapse-perf.pl [--size-mb 100]
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_work"
CAPTURE = ROOT / "data" / "real" / "perf-script-churn.txt.gz"

# folds a file in a fresh interpreter, writes 'stack count' lines like the Perl script; prints the
# wall and CPU seconds of the collapse_stacks call and the peak RSS (KiB)
_CHILD = """
import resource, sys, time
from vmaplab.analysis.stacks import collapse_stacks
wall, cpu = time.perf_counter(), time.process_time()
df = collapse_stacks(sys.argv[1])
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as out:
        out.writelines(f"{s} {c}\\n" for s, c in zip(df["stack"], df["count"].tolist()))
print(wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
_IMPORT_ONLY = "import resource, vmaplab.analysis.stacks; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def build_input(size_mb: float, name: str) -> Path:
    """``CAPTURE`` repeated to at least ``size_mb`` MB (kept if it already exists)."""
    path = WORK / name
    if path.exists() and path.stat().st_size >= size_mb * 1e6:
        return path
    piece = gzip.decompress(CAPTURE.read_bytes())
    with open(path, "wb") as out:
        written = 0
        while written < size_mb * 1e6:
            out.write(piece)
            written += len(piece)
    return path


def record(seconds: float) -> Path:
    data, text = WORK / "record.data", WORK / "perf-script-recorded.txt"
    subprocess.run(["perf", "record", "-a", "-g", "-F", "4999", "-o", str(data), "--", "sleep", str(seconds)], check=True)
    with open(text, "wb") as out:
        subprocess.run(["perf", "script", "-i", str(data)], stdout=out, stderr=subprocess.DEVNULL, check=True)
    return text


def doubled(path: Path) -> Path:
    """The file twice over (same content, twice the size) for the memory check."""
    twice = WORK / (path.stem + "-x2.txt")
    if not twice.exists() or twice.stat().st_size != 2 * path.stat().st_size:
        with open(twice, "wb") as out:
            for _ in range(2):
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 24)
    return twice


def timed(cmd: list[str], stdout) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its stdout when not redirected)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout or ""


def folded(path: Path) -> dict[str, int]:
    out = {}
    with open(path) as f:
        for line in f:
            stack, count = line.rstrip("\n").rsplit(" ", 1)
            out[stack] = int(count)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--perl-script", default=os.environ.get("STACKCOLLAPSE_PERF"), help="path of stackcollapse-perf.pl")
    ap.add_argument("--size-mb", type=float, default=100.0, help="size of the repeated-capture input (MB)")
    ap.add_argument("--input", type=Path, help="use this perf script file instead")
    ap.add_argument("--record", type=float, metavar="SECONDS", help="record this host with perf for the input")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each tool (best is kept)")
    args = ap.parse_args()
    if not args.perl_script or not Path(args.perl_script).is_file():
        sys.exit("give --perl-script (or STACKCOLLAPSE_PERF): stackcollapse-perf.pl from a FlameGraph checkout")
    WORK.mkdir(parents=True, exist_ok=True)
    if args.input:
        src = args.input
    elif args.record:
        src = record(args.record)
    else:
        src = build_input(args.size_mb, f"perf-script-churn-{int(args.size_mb)}MB.txt")
    mb = src.stat().st_size / 1e6
    print(f"input: {src} ({mb:.1f} MB)")

    py_out, pl_out = WORK / "folded-vmaplab.txt", WORK / "folded-perl.txt"
    inf = (float("inf"), float("inf"))
    best = {"collapse_stacks call": inf, "vmaplab process": inf, "perl process": inf}
    for _ in range(args.repeat):
        wall, cpu, out = timed([sys.executable, "-c", _CHILD, str(src), str(py_out)], subprocess.PIPE)
        call_wall, call_cpu, _ = out.split()
        best["collapse_stacks call"] = min(best["collapse_stacks call"], (float(call_wall), float(call_cpu)))
        best["vmaplab process"] = min(best["vmaplab process"], (wall, cpu))
        with open(pl_out, "w") as out:
            wall, cpu, _ = timed(["perl", args.perl_script, str(src)], out)
        best["perl process"] = min(best["perl process"], (wall, cpu))
    for what, (wall, cpu) in best.items():
        print(f"{what:21s} {wall:7.2f} s wall {mb / wall:7.1f} MB/s   {cpu:7.2f} s CPU {mb / cpu:7.1f} MB/s")
    perl = best["perl process"]
    for what in ("collapse_stacks call", "vmaplab process"):
        wall, cpu = best[what]
        print(f"ratio {what} / perl: {perl[0] / wall:.2f}x (wall), {perl[1] / cpu:.2f}x (CPU); goal >= 2x")
    ours, theirs = folded(py_out), folded(pl_out)
    extra = {k: ours.get(k, 0) - theirs.get(k, 0) for k in set(ours) | set(theirs) if ours.get(k, 0) != theirs.get(k, 0)}
    print(
        f"outputs: {len(ours)} stacks, {'identical' if not extra else f'{len(extra)} stacks differ (the Perl script drops a last sample without blank line)'}"
    )

    base = int(subprocess.run([sys.executable, "-c", _IMPORT_ONLY], capture_output=True, text=True, check=True).stdout)
    rss1 = int(timed([sys.executable, "-c", _CHILD, str(src)], subprocess.PIPE)[2].split()[2])
    twice = doubled(src)
    rss2 = int(timed([sys.executable, "-c", _CHILD, str(twice)], subprocess.PIPE)[2].split()[2])
    print(
        f"peak RSS of collapse_stacks: {rss1 / 1024:.0f} MiB on {mb:.0f} MB, {rss2 / 1024:.0f} MiB on {2 * mb:.0f} MB "
        f"(Python with vmaplab imported: {base / 1024:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
