"""``sweep()``: many :func:`~vmaplab.sim.run.simulate` runs as one tidy frame, in parallel and resumable.

A sweep is a grid of points (design x seed x thread count, with fixed CPUs, tests, loops and machine
knobs). With ``sequential=True`` the thread counts of one design and seed run one after another on
one :class:`~vmaplab.sim.machine.Machine`, as the seed's ``nr_threads=64``, ``128``, ``256`` ran on
one VM: such a sequence is a **chain**, and a point's result depends on the points before it in its
chain (the page tables they left). Chains are independent of each other and run in parallel: in
local processes (:class:`concurrent.futures.ProcessPoolExecutor`) by default, or on a
dask.distributed cluster given a client or a scheduler address (one task per chain, as stumpy's
``stumped`` submits chunks; setting up the cluster is the caller's business).

With ``cache_dir``, every finished point is written there at once as ``<key>.parquet`` (one row),
its key a hash of the point's parameters, of its chain prefix and of the result columns, and the
chain's machine after its latest finished point as ``<key>.machine.pkl.gz``. A sweep run again with
the same cache skips the finished points and continues each chain from its saved machine, so an
interrupted sweep resumes without recomputing anything. The key does not cover the simulator's code:
clear the cache after changing it. On a cluster the cache must be a folder every worker can write.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from vmaplab import __version__
from vmaplab.sim.costs import CostModel
from vmaplab.sim.machine import ALLOCATOR_KNOBS, MACHINE_KNOBS
from vmaplab.sim.run import Run, simulate
from vmaplab.sim.workloads import parse_test_mask

__all__ = ["sweep", "point_row", "RESULT_COLUMNS"]

#: Result columns of a sweep row (after the point's own columns), with their dtypes.
RESULT_COLUMNS = {
    "run_index": "int64",
    "wall_seconds": "float64",
    "pairs_per_second": "float64",
    "lock_spin_share": "float64",
    "spin_free_vmap_area_lock": "float64",
    "spin_vmap_area_lock": "float64",
    "spin_purge_vmap_area_lock": "float64",
    "spin_busy_lock": "float64",
    "spin_lazy_lock": "float64",
    "spin_pool_lock": "float64",
    "pagetable_bytes": "int64",
    "pte_bytes": "int64",
    "pmd_bytes": "int64",
    "va_high_water": "int64",
    "lazy_pages_max": "int64",
    "pooled_pages_max": "int64",
    "drain_lag_max_s": "float64",
    "drain_lag_mean_s": "float64",
    "drains_started": "int64",
    "pairs": "int64",
    "alloc_failures": "int64",
    "tests_failed": "int64",
    "context_switches": "int64",
    "migrations": "int64",
    "busy_cpu_seconds": "float64",
}
_POINT_COLUMNS = ("design", "threads", "cpus", "tests", "loops", "seed")


def point_row(run: Run, point: dict) -> dict:
    """One sweep row: the point's parameters, then the run's scalar results (:data:`RESULT_COLUMNS`).

    ``lazy_pages_max`` and ``pooled_pages_max`` are the largest lazy backlog and pool occupancy (pages)
    of the run's timeline; ``spin_<lock>`` the spin share per lock kind (``busy.lock`` as
    ``spin_busy_lock``); ``tests_failed`` the failed repetitions of the Summary lines; ``run_index``
    the runs its machine had made before it (0: a fresh machine).
    """
    tl = run.timeline
    stats = run.stats
    row = dict(point)
    row.update(
        run_index=run.params["run_index"],
        wall_seconds=run.wall_seconds,
        pairs_per_second=run.pairs_per_second,
        lock_spin_share=run.lock_spin_share,
        **{"spin_" + name.replace(".", "_"): share for name, share in run.lock_spin_by_lock.items()},
        pagetable_bytes=run.pagetable_bytes,
        pte_bytes=run.pagetable_bytes_by_level["pte"],
        pmd_bytes=run.pagetable_bytes_by_level["pmd"],
        va_high_water=run.va_high_water,
        lazy_pages_max=int(tl["lazy_pages"].max()) if len(tl) else 0,
        pooled_pages_max=int(tl["pooled_pages"].max()) if len(tl) else 0,
        drain_lag_max_s=stats["drain_lag_max_s"],
        drain_lag_mean_s=stats["drain_lag_mean_s"],
        drains_started=stats["drains_started"],
        pairs=stats["pairs"],
        alloc_failures=stats["alloc_failures"],
        tests_failed=int(run.summaries["failed"].sum()),
        context_switches=stats["context_switches"],
        migrations=stats["migrations"],
        busy_cpu_seconds=stats["busy_cpu_seconds"],
    )
    return row


# --- points, chains and keys -------------------------------------------------------------------


def _plain(value):
    """A JSON-able form of a knob value (a CostModel becomes its fields)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _key(point: dict, prefix: list[dict]) -> str:
    # the result columns are part of the key: a cache written before a column was added is not read back
    blob = json.dumps({"vmaplab": __version__, "columns": list(RESULT_COLUMNS), "point": point, "prefix": prefix},
                      sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _chains(threads, designs, cpus, tests, loops, seeds, sequential, knobs) -> list[list[dict]]:
    """The points of the grid grouped in chains, each point a dict of the simulate() arguments."""
    chains = []
    for design in designs:
        for seed in seeds:
            points = [{"design": design, "threads": int(t), "cpus": int(cpus), "tests": int(tests),
                       "loops": int(loops), "seed": int(seed), **knobs} for t in threads]  # fmt: skip
            chains.extend([points] if sequential else [[p] for p in points])
    return chains


def _keys(chain: list[dict]) -> list[str]:
    # the cost model is part of every key, the calibrated default when the sweep does not set one
    plain = [{k: _plain(v) for k, v in {"costs": CostModel(), **p}.items()} for p in chain]
    return [_key(p, plain[:i]) for i, p in enumerate(plain)]


# --- running one chain (in this process, a worker process or a dask worker) --------------------


def _run_chain(chain: list[dict], cache_dir: str | None) -> list[dict]:
    """Run a chain's points in order on one machine; with a cache, skip and write as documented."""
    keys = _keys(chain)
    cache = None if cache_dir is None else Path(cache_dir)
    rows: list[dict] = []
    if cache is not None:
        for key in keys:
            path = cache / f"{key}.parquet"
            if not path.is_file():
                break
            rows.append(pd.read_parquet(path).iloc[0].to_dict())
    done = len(rows)
    if done == len(chain):
        return rows
    machine = None
    if done:
        saved = cache / f"{keys[done - 1]}.machine.pkl.gz"
        if saved.is_file():
            with gzip.open(saved, "rb") as f:
                machine = pickle.load(f)
        else:  # the points are cached but not the machine after them: rebuild it
            for point in chain[:done]:
                machine = _simulate(point, machine).machine
    for i in range(done, len(chain)):
        run = _simulate(chain[i], machine)
        machine = run.machine
        row = point_row(run, _row_point(chain[i]))
        rows.append(row)
        if cache is not None:
            _save(cache, keys, i, row, machine)
    return rows


def _simulate(point: dict, machine) -> Run:
    p = dict(point)
    if machine is not None:  # a machine carries its own settings and CPU count
        for k in ALLOCATOR_KNOBS + MACHINE_KNOBS:
            p.pop(k, None)
        p.pop("cpus")
    return simulate(machine=machine, **p)


def _row_point(point: dict) -> dict:
    return {k: (repr(v) if dataclasses.is_dataclass(v) else v) for k, v in point.items()}


def _save(cache: Path, keys: list[str], i: int, row: dict, machine) -> None:
    # machine first, then the row (a point counts as done once its row exists), then the older machine
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{keys[i]}.{os.getpid()}.tmp"
    with gzip.open(tmp, "wb", compresslevel=1) as f:
        pickle.dump(machine, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(cache / f"{keys[i]}.machine.pkl.gz")
    _frame([row]).to_parquet(tmp, index=False)
    tmp.replace(cache / f"{keys[i]}.parquet")
    if i:
        (cache / f"{keys[i - 1]}.machine.pkl.gz").unlink(missing_ok=True)


def _frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["design"] = df["design"].astype("string")
    for col in _POINT_COLUMNS[1:]:
        df[col] = df[col].astype("int64")
    return df.astype(RESULT_COLUMNS)


# --- the sweep ---------------------------------------------------------------------------------


def sweep(
    threads: Sequence[int] = (64, 128, 256),
    designs: Sequence[str] = ("global", "nodes"),
    cpus: int = 64,
    tests: int | list[str] = 127,
    loops: int = 10_000,
    seeds: Sequence[int] = (0,),
    *,
    sequential: bool = True,
    client=None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    workers: int | None = None,
    **knobs,
) -> pd.DataFrame:
    """Simulate every point of a grid and return one row per point.

    Parameters
    ----------
    threads : sequence of int
        test_vmalloc's nr_threads values, in the order a chain runs them.
    designs : sequence of {"global", "nodes"}
    cpus, tests, loops : int, int or list of str, int
        The machine's CPUs, run_test_mask (or test names) and test_loop_count of every point.
    seeds : sequence of int
        Seeds of the workers' random streams; each seed is a chain of its own.
    sequential : bool
        Run the thread counts of one design and seed in order on one machine (a chain; page tables
        carry over). False: every point on a fresh machine.
    client : distributed.Client or str, optional
        Run the chains on this dask.distributed cluster (a scheduler address such as
        ``"tcp://10.0.0.1:8786"`` is connected to and closed after). Needs the ``cluster`` extra.
    cache_dir : path, optional
        Keep finished points (and each chain's latest machine) there; a rerun resumes (module
        docstring).
    progress : bool
        Show a tqdm bar of finished points.
    workers : int, optional
        Local processes for the chains (default: the CPU count); 1 runs them in this process.
        Ignored with ``client``.
    **knobs
        Machine settings of every point (simulate()'s knobs: init_on_alloc, drain_priority,
        busy_lock_once, costs, flush_stall_every, flush_stall_ns, pool_cap, decay, small_pool_decay,
        lazy_max_pages, nr_nodes, zone_pages, paging_levels).

    Returns
    -------
    DataFrame
        One row per point in grid order (design, seed, then thread count): design (string),
        threads, cpus, tests (the run_test_mask), loops, seed (int64), the knobs given (a
        CostModel as its repr), then :data:`RESULT_COLUMNS`.

    Examples
    --------
    >>> df = sweep([4, 8], ["global", "nodes"], cpus=4, tests=7, loops=50, workers=1)
    >>> df.pivot(index="threads", columns="design", values="pagetable_bytes")
    design    global    nodes
    threads
    4        3158016  3280896
    8        5406720  5562368
    """
    threads, designs, seeds = list(threads), list(designs), list(seeds)
    if not threads or not designs or not seeds:
        raise ValueError("threads, designs and seeds each need at least one value")
    bad = sorted(set(designs) - {"global", "nodes"})
    if bad:
        raise ValueError(f"designs must be 'global' or 'nodes', not {bad}")
    for name, values, low in (("threads", threads, 1), ("seeds", seeds, 0), ("cpus", [cpus], 1), ("loops", [loops], 1)):
        wrong = [v for v in values if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low]
        if wrong:  # before any point starts, not in a worker
            raise ValueError(f"{name} must be integers >= {low}, not {wrong}")
    unknown = sorted(set(knobs) - set(ALLOCATOR_KNOBS + MACHINE_KNOBS))
    if unknown:
        raise TypeError(f"unknown knobs {unknown}; known: {', '.join(ALLOCATOR_KNOBS + MACHINE_KNOBS)}")
    chains = _chains(threads, designs, cpus, parse_test_mask(tests), loops, seeds, sequential, knobs)
    cache = None if cache_dir is None else str(Path(cache_dir))
    skip = [_cached_prefix(c, cache) for c in chains]
    todo = [i for i, c in enumerate(chains) if skip[i] < len(c)]
    results = {i: _run_chain(c, cache) for i, c in enumerate(chains) if i not in todo}  # all cached
    with tqdm(total=sum(map(len, chains)), initial=sum(skip), desc="sweep", unit="point", disable=not progress) as bar:

        def finished(i: int, rows: list[dict]) -> None:
            results[i] = rows
            bar.update(len(chains[i]) - skip[i])

        n_workers = workers or os.cpu_count() or 1
        if client is not None:
            _on_cluster(client, chains, todo, cache, finished)
        elif n_workers == 1 or len(todo) <= 1:
            for i in todo:
                finished(i, _run_chain(chains[i], cache))
        else:
            _in_processes(min(n_workers, len(todo)), chains, todo, cache, finished)
    return _frame([row for i in range(len(chains)) for row in results[i]])


def _cached_prefix(chain: list[dict], cache: str | None) -> int:
    """How many leading points of the chain the cache holds."""
    if cache is None:
        return 0
    n = 0
    for key in _keys(chain):
        if not (Path(cache) / f"{key}.parquet").is_file():
            break
        n += 1
    return n


def _in_processes(n: int, chains: list, todo: list[int], cache: str | None, finished) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=n) as pool:
        futures = {pool.submit(_run_chain, chains[i], cache): i for i in todo}
        for fut in as_completed(futures):
            finished(futures[fut], fut.result())


def _on_cluster(client, chains: list, todo: list[int], cache: str | None, finished) -> None:
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - the cluster extra is installed in CI
        raise ImportError("sweep(client=...) needs dask.distributed: pip install 'vmaplab[cluster]'") from exc
    own = isinstance(client, str)
    if own:
        client = distributed.Client(client)
    try:
        futures = {client.submit(_run_chain, chains[i], cache, pure=False): i for i in todo}
        for fut in distributed.as_completed(list(futures)):
            finished(futures[fut], fut.result())
    finally:
        if own:
            client.close()
