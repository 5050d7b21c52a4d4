"""Speed of the numba allocator engine, measured in one run against the reference engine.

For both designs ("global" = Linux 6.7, "nodes" = Linux 6.9 with 64 CPUs) it runs a steady-state
operation stream at 64 and at 100,000 live areas: after allocating the live set, every step frees a
random live area and allocates a new one (sizes 1-4 pages 60 %, 5-64 pages 30 %, 65-300 pages 10 %;
alignment 4 KiB 85 %, 8-64 KiB 10 %, 2 MiB 5 %; random CPUs), which fragments the address space.
A third stream has 64 test_vmalloc-like workers,
each on its own CPU, looping vmalloc(1 page) and vfree of the previous one. It prints operations per second of ``NumbaEngine.run`` (CPU time of this thread and wall time,
pinned to one core), the same for the reference engine on a shorter prefix of the same stream, and
their ratio on that common prefix. The steady-state rate excludes the rows that build the live set
(a run of those rows alone is timed and subtracted). Then it reports JIT compile time: the first
and a later call in a process with an empty numba cache, and the first call of a fresh process that
loads the compiled code from that cache; the same for the contention engine (vmaplab.simulate, whose
run_engine compiles the same kernels into its event loop). Compile times are wall seconds and CPU
seconds of the probe process (the CPU figure is the steadier one on a shared machine).

Run ``python bench/allocator.py`` (``--steps`` sets the steady-state steps of the numba stream,
``--ref-steps`` those of the reference prefix, ``--cpu`` the core; ``--compile-only`` skips the run
rates, ``--root DIR`` makes the compile probes import another checkout's vmaplab, e.g. a baseline).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vmaplab.sim.numba_engine import NumbaEngine  # noqa: E402
from vmaplab.sim.params import AllocatorConfig  # noqa: E402
from vmaplab.sim.reference import ReferenceEngine  # noqa: E402

CPUS = 64


def steady_stream(live: int, steps: int, cpus: int = CPUS, seed: int = 0) -> np.ndarray:
    """Rows (op, a, b, cpu): ``live`` allocations, then ``steps`` pairs (free a random live row, alloc).

    Built without a Python loop: the row that step t frees is the alloc row of the last earlier
    step that drew the same live position, or the position's first allocation.
    """
    rng = np.random.default_rng(seed)
    n_alloc = live + steps
    kind = rng.random(n_alloc)
    pages = np.where(
        kind < 0.6,
        rng.integers(1, 5, n_alloc),
        np.where(kind < 0.9, rng.integers(5, 65, n_alloc), rng.integers(65, 301, n_alloc)),
    )
    akind = rng.random(n_alloc)
    align = np.where(akind < 0.85, 4096, np.where(akind < 0.95, 1 << rng.integers(13, 17, n_alloc), 1 << 21))
    rows = np.zeros((live + 2 * steps, 4), np.int64)
    alloc_rows = np.r_[np.arange(live), live + 2 * np.arange(steps) + 1]
    rows[alloc_rows, 1] = pages
    rows[alloc_rows, 2] = align
    rows[alloc_rows, 3] = rng.integers(0, cpus, n_alloc)
    position = rng.integers(0, live, steps)
    t = np.arange(steps)
    order = np.lexsort((t, position))
    repeat = np.r_[False, position[order][1:] == position[order][:-1]]
    freed = np.empty(steps, np.int64)
    freed[order] = np.where(repeat, live + 2 * np.r_[0, order[:-1]] + 1, position[order])
    free_rows = live + 2 * t
    rows[free_rows, 0] = 1
    rows[free_rows, 1] = freed
    rows[free_rows, 3] = rng.integers(0, cpus, steps)
    return rows


def worker_stream(workers: int, steps: int) -> np.ndarray:
    """Rows of ``workers`` test_vmalloc-like workers, worker w on CPU w, each looping vmalloc(1 page)
    and vfree of its previous page (fix_size_alloc_test): ``workers`` areas live throughout."""
    rows = np.zeros((workers + 2 * steps, 4), np.int64)
    rows[:workers] = np.c_[np.zeros(workers), np.ones(workers), np.full(workers, 4096), np.arange(workers)]
    t = np.arange(steps)
    worker = t % workers
    rows[workers + 2 * t] = np.c_[np.ones(steps), np.where(t < workers, worker, workers + 2 * (t - workers) + 1),
                                  np.zeros(steps), worker]
    rows[workers + 2 * t + 1] = np.c_[np.zeros(steps), np.ones(steps), np.full(steps, 4096), worker]
    return rows


def timed_run(make, ops: np.ndarray) -> tuple[float, float]:
    """(CPU seconds of this thread, wall seconds) of ``make().run(ops)`` on a fresh engine."""
    engine = make()
    wall, cpu = time.perf_counter(), time.thread_time()
    engine.run(ops)
    return time.thread_time() - cpu, time.perf_counter() - wall


def steady_rate(make, ops: np.ndarray, live: int) -> tuple[float, float]:
    """Operations per second (CPU, wall) of the rows after the first ``live`` ones."""
    full = timed_run(make, ops)
    head = timed_run(make, ops[:live])
    n = len(ops) - live
    return n / (full[0] - head[0]), n / (full[1] - head[1])


_COMPILE_PROBE = """
import time
t0 = time.perf_counter()
import numpy as np
from vmaplab.sim.numba_engine import NumbaEngine
from vmaplab.sim.params import AllocatorConfig
t1 = time.perf_counter()
ops = np.array([[0, 1, 4096, 1], [0, 300, 1 << 21, 2], [1, 0, 0, 0], [2, 0, 0, 0], [3, 0, 0, 0]])
times = []
for design in ("nodes", "nodes"):
    engine = NumbaEngine(AllocatorConfig.resolve(design, 64))
    a, c = time.perf_counter(), time.process_time(); engine.run(ops); off = engine.alloc(1, 4096, 0)
    engine.free(off, 0); engine.drain(); engine.shrink()
    times += [time.perf_counter() - a, time.process_time() - c]
print(t1 - t0, *times)
"""

_ENGINE_PROBE = """
import time
t0 = time.perf_counter()
import vmaplab
t1 = time.perf_counter()
times = []
for _ in range(2):
    a, c = time.perf_counter(), time.process_time()
    vmaplab.simulate(design="nodes", threads=4, cpus=4, tests=7, loops=100)
    times += [time.perf_counter() - a, time.process_time() - c]
print(t1 - t0, *times)
"""


def compile_times(probe: str, root: Path = ROOT) -> dict[str, float]:
    """Import time and first/later call times (wall, CPU) of ``probe`` run on ``root``'s vmaplab in a
    process with an empty numba cache, then in a fresh process loading that cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(root))
        out = {}
        for label in ("cold", "cached"):
            res = subprocess.run(  # in root: ``-c`` puts the working directory first on sys.path
                [sys.executable, "-c", probe], env=env, cwd=root, capture_output=True, text=True, check=True
            )
            names = ("import", "first", "first_cpu", "later", "later_cpu")
            out.update({f"{label}_{n}": float(v) for n, v in zip(names, res.stdout.split())})
    return out


def print_compile_times(what: str, t: dict[str, float]) -> None:
    print(
        f"JIT {what}, process with an empty cache: import {t['cold_import']:.2f} s, first calls (compile) "
        f"{t['cold_first']:.2f} s wall / {t['cold_first_cpu']:.2f} s CPU, the same calls again "
        f"{t['cold_later'] * 1e3:.2f} ms"
    )
    print(
        f"JIT {what}, fresh process loading that cache: import {t['cached_import']:.2f} s, first calls "
        f"{t['cached_first']:.3f} s, the same calls again {t['cached_later'] * 1e3:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3_000_000, help="steady-state steps, numba stream")
    parser.add_argument("--ref-steps", type=int, default=20_000, help="steady-state steps, reference prefix")
    parser.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)), help="core to pin to")
    parser.add_argument("--compile-only", action="store_true", help="only the JIT compile times")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose vmaplab the compile probes import")
    args = parser.parse_args()
    if not args.compile_only:
        run_rates(args)
    root = args.root.resolve()
    print(f"compile probes on {root}")
    print_compile_times("NumbaEngine methods", compile_times(_COMPILE_PROBE, root))
    print_compile_times("contention engine (simulate)", compile_times(_ENGINE_PROBE, root))


def run_rates(args: argparse.Namespace) -> None:
    """Print the operation rates of NumbaEngine.run and of the reference engine (see the module doc)."""
    os.sched_setaffinity(0, {args.cpu})
    print(f"pinned to CPU {args.cpu}; numba stream: live set + {args.steps:,} steps (2 ops each)")
    # warm up: load or compile every kernel before timing
    for design in ("global", "nodes"):
        NumbaEngine(AllocatorConfig.resolve(design, CPUS)).run(steady_stream(64, 1000))
    header = f"{'design':7} {'live':>7} | {'numba Mops/s cpu':>16} {'wall':>6} | {'on prefix: numba':>16} {'ref ops/s':>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for design in ("global", "nodes"):
        config = AllocatorConfig.resolve(design, CPUS)
        streams = [
            (f"{64:7,}", 64, steady_stream(64, args.steps, seed=64)),
            (f"{100_000:7,}", 100_000, steady_stream(100_000, args.steps, seed=100_000)),
            ("64 wkrs", 64, worker_stream(64, args.steps)),
        ]
        for label, live, ops in streams:
            cpu, wall = steady_rate(lambda: NumbaEngine(config), ops, live)
            prefix = ops[: live + 2 * args.ref_steps]
            num_prefix, _ = steady_rate(lambda: NumbaEngine(config), prefix, live)
            ref_prefix, _ = steady_rate(lambda: ReferenceEngine(config), prefix, live)
            print(
                f"{design:7} {label} | {cpu / 1e6:16.2f} {wall / 1e6:6.2f} | "
                f"{num_prefix / 1e6:11.2f} M/s {ref_prefix:10,.0f} {num_prefix / ref_prefix:6.0f}x"
            )


if __name__ == "__main__":
    main()
