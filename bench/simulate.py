"""Speed of vmaplab.simulate on the seed's scaled sweep, in simulated kernel operations per second.

The sweep: run_test_mask=127 at 64, 128 and 256 threads one after another on one machine, and
run_test_mask=7 at 64 threads, for both designs, on 64 CPUs at test_loop_count=10,000 (full_fit and
long_busy keep their fixed sizes: ~200 million VA operations per design). Each design runs in its own
process (two in parallel). The baseline, timed in the same run, is the engine's own event rate on a
small uncontended run; the script prints operations (vmalloc + vfree) per second of wall time, events
per operation, and the projected time of the full-size run (loops=1,000,000), labelled as such.

Usage: ``python bench/simulate.py [--loops N] [--cpus C] [--designs global,nodes]``.
"""

from __future__ import annotations

import argparse
import resource
import time
from concurrent.futures import ProcessPoolExecutor

from vmaplab.sim import Machine
from vmaplab.sim.run import simulate


def sweep(design: str, loops: int, cpus: int) -> dict:
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
    simulate("nodes", threads=2, cpus=2, tests=1, loops=10)
    c0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    r = simulate("nodes", threads=8, cpus=8, tests=1, loops=100_000)
    return 2 * r.stats["pairs"] / (resource.getrusage(resource.RUSAGE_SELF).ru_utime - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loops", type=int, default=10_000)
    ap.add_argument("--cpus", type=int, default=64)
    ap.add_argument("--designs", default="global,nodes")
    args = ap.parse_args()
    designs = args.designs.split(",")
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
              f"{rate:,.0f} ops per CPU second ({rate / base:.2f}x the baseline)")  # fmt: skip
    print(f"sweep: {total_ops:,} ops in {wall:.0f} s wall ({total_ops / wall:,.0f} ops/s, 2 processes)")
    scale = 1_000_000 / args.loops
    print(f"PROJECTION, not run: loops=1,000,000 does ~{scale:.0f}x the loop operations; at the measured rate the "
          f"full-size sweep would take ~{wall * scale / 3600:.1f} h (upper bound: the fixed-size parts do not grow)")  # fmt: skip


if __name__ == "__main__":
    main()
