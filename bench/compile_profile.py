"""Where the cold numba compile time of the simulator's entry points goes, per jitted function.

In a fresh process with an empty numba cache it calls one entry point (``run``: NumbaEngine's
methods; ``engine``: ``vmaplab.simulate(design="nodes", threads=4, cpus=4, tests=7, loops=100)``, the
contention engine's run_engine) and splits the wall time of that first call into, per function:
numba's typing and lowering passes (exclusive of the compilation of the functions they call), LLVM's
function passes, its module passes over the function's final module (which holds the linked-in
code of every jitted function it calls, optimised again there), and machine-code emission.
CPU seconds of the compiling thread (the machine may be shared), measured with numba's event API (``numba:run_pass``) and timers around numba's
``CPUCodeLibrary`` steps.

Run ``python bench/compile_profile.py run|engine [--top N]`` (starts its own subprocess with an
empty ``NUMBA_CACHE_DIR``; ``--root DIR`` profiles another checkout's vmaplab).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_ENTRY = {
    "run": (
        "import numpy as np\n"
        "from vmaplab.sim.numba_engine import NumbaEngine\n"
        "from vmaplab.sim.params import AllocatorConfig\n"
        "ops = np.array([[0, 1, 4096, 1], [0, 300, 1 << 21, 2], [1, 0, 0, 0], [2, 0, 0, 0], [3, 0, 0, 0]])\n"
        "engine = NumbaEngine(AllocatorConfig.resolve('nodes', 64))\n"
        "engine.run(ops); off = engine.alloc(1, 4096, 0); engine.free(off, 0); engine.drain(); engine.shrink()\n"
    ),
    "engine": (
        "import vmaplab\n"
        "vmaplab.simulate(design='nodes', threads=4, cpus=4, tests=7, loops=100)\n"
    ),
}


def _child(entry: str) -> None:
    """Profile the entry point in this process; print a JSON record."""
    from numba.core import codegen, event

    times: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    passes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))  # numba's passes alone
    stack: list[list] = []  # the passes running: function, pass, start, time of nested work

    def timed(method, label):
        def wrapper(self, *args, **kwargs):
            t0 = time.thread_time()
            try:
                return method(self, *args, **kwargs)
            finally:
                dt = time.thread_time() - t0
                times[self.name.split("$")[0]][label] += dt
                if stack:  # often a callee's library, finalised while its caller is lowered
                    stack[-1][3] += dt

        return wrapper

    lib = codegen.JITCodeLibrary
    lib._optimize_functions = timed(lib._optimize_functions, "llvm_func")
    lib._optimize_final_module = timed(lib._optimize_final_module, "llvm_module")
    lib._finalize_specific = timed(lib._finalize_specific, "machine_code")

    class Passes(event.Listener):
        def on_start(self, ev):
            stack.append([ev.data["qualname"], ev.data["name"], time.thread_time(), 0.0])

        def on_end(self, ev):
            name, pss, t0, child = stack.pop()
            total = time.thread_time() - t0
            if stack:
                stack[-1][3] += total
            kind = "lowering" if pss.split()[0] in ("native_lowering", "native_parfor_lowering") else "typing"
            times[name][kind] += total - child
            passes[name][pss.split()[0]] += total - child

    event.register("numba:run_pass", Passes())
    import vmaplab  # noqa: F401  (import outside the clock)

    t0, c0 = time.perf_counter(), time.process_time()
    exec(_ENTRY[entry], {})
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"wall": wall, "cpu": cpu, "functions": times, "passes": passes}))


def profile(entry: str, root: Path) -> dict:
    """Run :func:`_child` in a fresh process on ``root``'s vmaplab with an empty numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(root))
        res = subprocess.run(
            [sys.executable, __file__, "--child", entry], env=env, capture_output=True, text=True, check=True
        )
    return json.loads(res.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("entry", choices=sorted(_ENTRY))
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose vmaplab is profiled")
    parser.add_argument("--passes", metavar="FUNCTION", help="also list numba's passes on this function")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.entry)
        return
    rec = profile(args.entry, args.root.resolve())
    cols = ("typing", "lowering", "llvm_func", "llvm_module", "machine_code")
    rows = sorted(rec["functions"].items(), key=lambda kv: -sum(kv[1].values()))
    sums = {c: sum(f.get(c, 0.0) for _, f in rows) for c in cols}
    print(f"{args.entry}: first call {rec['wall']:.1f} s wall, {rec['cpu']:.1f} s CPU, empty cache ({args.root})")
    print(f"{'function':32} " + " ".join(f"{c:>12}" for c in cols) + f" {'total':>8}")
    for name, f in rows[: args.top]:
        print(f"{name[-32:]:32} " + " ".join(f"{f.get(c, 0.0):12.2f}" for c in cols) + f" {sum(f.values()):8.2f}")
    print(f"{'all ' + str(len(rows)) + ' functions':32} " + " ".join(f"{sums[c]:12.2f}" for c in cols)
          + f" {sum(sums.values()):8.2f}")  # fmt: skip
    if args.passes:
        ranked = sorted(rec["passes"].get(args.passes, {}).items(), key=lambda kv: -kv[1])
        print(f"numba passes on {args.passes} (exclusive CPU s): " + ", ".join(f"{k} {v:.2f}" for k, v in ranked[:12]))


if __name__ == "__main__":
    main()
