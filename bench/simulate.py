"""Speed of vmaplab.simulate on the seed's scaled sweep, in simulated kernel operations per second.

The sweep: run_test_mask=127 at 64, 128 and 256 threads one after another on one machine, and
run_test_mask=7 at 64 threads, for both designs, on 64 CPUs at test_loop_count=10,000 (full_fit and
long_busy keep their fixed sizes: ~200 million VA operations per design). Each design runs in its own
process (two in parallel). The baseline, timed in the same run, is the engine's own event rate on a
small uncontended run; the script prints operations (vmalloc + vfree) per second of wall time, events
per operation, and the projected time of the full-size run (loops=1,000,000), labelled as such.

``--against DIR`` adds a pinned comparison with another checkout (e.g. the commit before an engine
change): one run per design (64 threads on 64 CPUs, run_test_mask=127) in a subprocess pinned to
CPU 0, this checkout and DIR alternately, best of ``--repeat`` CPU times each; it prints the ratio
new/old and whether the two runs' figures are identical.

Usage: ``python bench/simulate.py [--loops N] [--cpus C] [--designs global,nodes] [--against DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(design: str, loops: int, cpus: int) -> dict:
    from vmaplab.sim import Machine
    from vmaplab.sim.run import simulate

    simulate(design, threads=2, cpus=2, tests=1, loops=10)  # compile outside the clock
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
    ops = events = 0
    m = Machine(design, cpus=cpus)
    for threads in (64, 128, 256):
        r = simulate(design, threads=threads, tests=127, loops=loops, machine=m, seed=threads)
        ops += 2 * r.stats["pairs"] + r.stats["alloc_failures"]
        events += r.stats["events"]
    r = simulate(design, threads=64, cpus=cpus, tests=7, loops=loops, seed=7)
    ops += 2 * r.stats["pairs"]
    events += r.stats["events"]
    return {"design": design, "wall": time.perf_counter() - t0,
            "cpu": resource.getrusage(resource.RUSAGE_SELF).ru_utime - c0, "ops": ops, "events": events}  # fmt: skip


def baseline() -> float:
    """Operations per CPU second of a small uncontended run (8 threads on 8 CPUs, fix_size)."""
    from vmaplab.sim.run import simulate

    simulate("nodes", threads=2, cpus=2, tests=1, loops=10)
    c0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    r = simulate("nodes", threads=8, cpus=8, tests=1, loops=100_000)
    return 2 * r.stats["pairs"] / (resource.getrusage(resource.RUSAGE_SELF).ru_utime - c0)


def one(design: str, loops: int) -> None:
    """Print (JSON) the CPU seconds and the figures of one pinned run of the checkout on sys.path."""
    import vmaplab
    from vmaplab.sim.run import simulate

    simulate(design, threads=2, cpus=2, tests=1, loops=10)
    c0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    r = simulate(design, threads=64, cpus=64, tests=127, loops=loops)
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - c0
    figures = [r.wall_seconds, r.lock_spin_share, r.pagetable_bytes, r.va_high_water,
               {k: v for k, v in r.stats.items() if k != "events"},
               None if r.pool_by_test is None else r.pool_by_test.to_json()]  # fmt: skip
    print(json.dumps({"source": vmaplab.__file__, "cpu": cpu, "events": r.stats["events"],
                      "ops": 2 * r.stats["pairs"] + r.stats["alloc_failures"], "figures": figures}))  # fmt: skip


def against(other: Path, designs: list[str], loops: int, repeat: int) -> None:
    """Pinned single runs of this checkout and ``other``, alternately; prints the ratio new/old."""
    for design in designs:
        best: dict[str, dict] = {}
        for _ in range(repeat):
            for label, path in (("old", other), ("new", ROOT)):
                env = {**os.environ, "PYTHONPATH": str(path)}
                out = subprocess.run(
                    ["taskset", "-c", "0", sys.executable, __file__, "--one", design, "--loops", str(loops)],
                    env=env, check=True, capture_output=True, text=True,
                ).stdout  # fmt: skip
                r = json.loads(out.strip().splitlines()[-1])
                if label not in best or r["cpu"] < best[label]["cpu"]:
                    best[label] = r
        old, new = best["old"], best["new"]
        same = old["figures"] == new["figures"]
        print(f"{design:>6} pinned run (64 threads, 64 CPUs, mask 127, loops={loops}, best of {repeat}): "
              f"old {old['cpu']:.2f} s ({old['events'] / old['ops']:.2f} events/op, "
              f"{1e9 * old['cpu'] / old['events']:.0f} ns/event), new {new['cpu']:.2f} s "
              f"({new['events'] / new['ops']:.2f} events/op, {1e9 * new['cpu'] / new['events']:.0f} ns/event): "
              f"new/old = {new['cpu'] / old['cpu']:.2f}; figures identical: {same}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loops", type=int, default=10_000)
    ap.add_argument("--cpus", type=int, default=64)
    ap.add_argument("--designs", default="global,nodes")
    ap.add_argument("--against", type=Path, help="another checkout to compare with (pinned single runs)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per checkout in the pinned comparison")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    designs = args.designs.split(",")
    if args.one:
        one(args.one, args.loops)
        return
    if args.against:
        against(args.against, designs, min(args.loops, 300), args.repeat)
        return
    base = baseline()
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(sweep, designs, [args.loops] * len(designs), [args.cpus] * len(designs)))
    wall = time.perf_counter() - t0
    total_ops = sum(r["ops"] for r in results)
    print(f"baseline (8 threads, uncontended): {base:,.0f} ops per CPU second")
    for r in results:
        rate = r["ops"] / r["cpu"]
        print(f"{r['design']:>6}: {r['ops']:,} ops, {r['events'] / r['ops']:.2f} events/op, {r['wall']:.0f} s wall, "
              f"{r['ops'] / r['wall']:,.0f} ops per second of wall time, {rate:,.0f} ops per CPU second "
              f"({rate / base:.2f}x the baseline), {1e9 * r['cpu'] / r['events']:.0f} ns per event")  # fmt: skip
    print(f"sweep: {total_ops:,} ops in {wall:.0f} s wall ({total_ops / wall:,.0f} ops/s, 2 processes)")
    scale = 1_000_000 / args.loops
    print(f"PROJECTION, not run: loops=1,000,000 does ~{scale:.0f}x the loop operations; at the measured rate the "
          f"full-size sweep would take ~{wall * scale / 3600:.1f} h (upper bound: the fixed-size parts do not grow)")  # fmt: skip


if __name__ == "__main__":
    main()
