"""The named figures of ``vmaplab plot``: name -> the function that draws it and how to load its input.

An entry's ``plot`` is a ``"module:function"`` path, imported only when the figure is drawn (so that
``vmaplab --help`` does not load matplotlib); its ``load`` turns the command's sources (data files, or a
bundle folder) into the function's keyword arguments. Simulator figures register here the same way.

Thread counts of per-run listings come from ``N=FILE`` or from the file name (``allocinfo-64threads.txt``,
``free-m-nr_threads=128.txt``; ``...before...`` is 0, the listing before any run).
"""

from __future__ import annotations

import errno
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FIGURES", "FigureSpec", "PlotOptions", "draw"]

_THREADS = re.compile(r"(?:nr_threads=(\d+)|(?<![0-9])(\d+)[-_]?threads?(?![a-z]))", re.IGNORECASE)


@dataclass(frozen=True)
class PlotOptions:
    """Options of ``vmaplab plot`` that some loaders use.

    Attributes
    ----------
    unit : str, optional
        Unit of bare ``free`` numbers (``b``, ``k``, ``m``, ``g``, ``t``, ``p``) when no ``free`` command line
        states it.
    published : str, optional
        Citation of published input data (drawn in black, labelled ``published (...)``).
    fields : tuple of str
        meminfo/vmstat fields of a time series (empty: the figure's default).
    progress : bool
        Show progress bars where a loader simulates (measured_vs_model without a model table).
    """

    unit: str | None = None
    published: str | None = None
    fields: tuple[str, ...] = field(default_factory=tuple)
    progress: bool = False


@dataclass(frozen=True)
class FigureSpec:
    """One named figure: ``plot`` (``"module:function"``), ``load(sources, options)`` returning
    its keyword arguments, a one-line ``summary`` for ``--help``, and the :class:`PlotOptions` fields
    its loader uses (``uses``)."""

    plot: str
    load: Callable[[list[str], PlotOptions], dict[str, Any]]
    summary: str
    uses: tuple[str, ...] = ()


def _threads(source: str) -> tuple[int, Path]:
    """(thread count, path) of ``N=FILE`` or of a file whose name gives the count."""
    count, sep, rest = source.partition("=")
    if sep and count.isdigit():
        return int(count), Path(rest)
    path = Path(source)
    if sep and Path(rest).exists() and not path.exists():
        raise ValueError(f"{source}: the thread count {count!r} of N=FILE is not a whole number")
    match = _THREADS.search(path.name)
    if match:
        return int(match.group(1) or match.group(2)), path
    if "before" in path.name.lower():
        return 0, path
    if not path.exists():  # what is wrong with the file comes before its thread count
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", source)
    if path.is_dir():
        raise ValueError(f"{source} is a folder: give per-run listings as N=FILE")
    raise ValueError(
        f"{source}: no thread count; give it as N=FILE or name the file ...-<N>threads.txt (or ...-before...)"
    )


def _one(sources: list[str], what: str) -> Path:
    if len(sources) != 1:
        raise ValueError(f"give one source ({what}), not {len(sources)}")
    return Path(sources[0])


def _bundle_frame(folder: Path, fmt: str):
    from .io.detect import read_bundle

    frames = read_bundle(folder, formats=[fmt])
    if fmt not in frames:
        raise ValueError(f"{folder}: the bundle holds no {fmt} snapshot")
    return frames[fmt]


def _load_pagetable_growth(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    from .io.allocinfo import read_allocinfo

    listings: dict[int, Any] = {}
    for source in sources:
        n, path = _threads(source)
        _put(listings, n, read_allocinfo(path), source)
    return {"listings": listings, "published": opts.published}


def _put(by_threads: dict[int, Any], n: int, table, source: str) -> None:
    """File ``table`` under its thread count, refusing a count given twice (the later would hide the other)."""
    if n in by_threads:
        raise ValueError(f"{source}: a second listing for {n} threads; give each thread count once")
    by_threads[n] = table


def _load_free_used(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    from .io.allocinfo import read_allocinfo
    from .io.detect import file_format
    from .io.free import read_free

    frees, tables = {}, {}
    for source in sources:
        n, path = _threads(source)
        fmt = file_format(path)
        if fmt == "free":
            _put(frees, n, read_free(path, unit=opts.unit), source)
        elif fmt == "allocinfo":
            _put(tables, n, read_allocinfo(path), source)
        else:
            raise ValueError(f"{path}: a {fmt} file; free_used takes free and allocinfo listings")
    return {"frees": frees, "pagetables": tables or None, "published": opts.published}


def _load_profile_comparison(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    from .analysis.profiles import compare_profiles
    from .analysis.stacks import profile_from_samples
    from .io.detect import file_format
    from .io.perf_report import read_perf_report

    if len(sources) != 2:
        raise ValueError(f"give two profiles (perf report or perf script output), not {len(sources)}")
    profiles, labels = [], []
    for source in map(Path, sources):
        fmt = file_format(source)
        if fmt == "perf_report":
            profiles.append(read_perf_report(source))
        elif fmt == "perf_script":
            profiles.append(profile_from_samples(source))
        else:
            raise ValueError(f"{source}: a {fmt} file; profile_comparison takes perf report or perf script output")
        labels.append(source.name.removesuffix(".gz").removesuffix(".txt"))
    return {"comparison": compare_profiles(*profiles), "labels": tuple(labels), "published": opts.published}


def _load_trace(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    from .io.vmalloc_trace import read_vmalloc_trace

    path = _one(sources, "a vmalloc trace or a bundle")
    return {"trace": _bundle_frame(path, "vmalloc_trace") if path.is_dir() else read_vmalloc_trace(path)}


def _load_drain_stall(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    from .io.sched_trace import read_sched_trace
    from .io.vmalloc_trace import read_vmalloc_trace

    path = _one(sources, "a trace with vmalloc, workqueue and sched_switch events")
    return {"events": read_sched_trace(path), "trace": read_vmalloc_trace(path)}


def _load_call_durations(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    from .analysis.probe_calls import probe_calls
    from .io.kprobe_trace import read_kprobe_trace

    if not sources:
        raise ValueError("call_durations takes one or more traces with kprobe and kretprobe hits")
    paths = [Path(s) for s in sources]
    return {"calls": {p.name.removesuffix(".gz").removesuffix(".txt"): probe_calls(read_kprobe_trace(p)) for p in paths}}


def _load_vmallocinfo(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    from .io.vmallocinfo import read_vmallocinfo

    path = _one(sources, "a vmallocinfo file or a bundle")
    if not path.is_dir():
        return {"info": read_vmallocinfo(path)}
    frame = _bundle_frame(path, "vmallocinfo")
    last = frame[frame["snapshot"] == frame["snapshot"].iloc[-1]]
    last.attrs = {**frame.attrs, "source": f"{path} (snapshot {int(last['snapshot'].iloc[0])})"}
    return {"info": last}


def _load_snapshot_series(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    import pandas as pd

    from .io.detect import read_bundle

    path = _one(sources, "a bundle folder")
    if not path.is_dir():
        raise ValueError(f"{path}: snapshot_series reads a bundle folder (vmaplab collect --out ...)")
    frames = read_bundle(path, formats=["meminfo", "vmstat"])
    if not frames:
        raise ValueError(f"{path}: the bundle holds no meminfo or vmstat snapshot")
    frame = pd.concat(frames.values(), ignore_index=True)
    frame.attrs = {"source": str(path)}
    return {"frame": frame, **({"fields": list(opts.fields)} if opts.fields else {})}


def _load_sweep(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    import pandas as pd

    path = _one(sources, "a vmaplab sweep table (.csv or .parquet)")
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"{path}: give the .csv or .parquet table of vmaplab sweep")
    df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    return {"sweep": df}


def _load_chain(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    return {"chain": _load_sweep(sources, opts)["sweep"]}


def _load_space_maps(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    import pandas as pd

    from .bundle import Manifest
    from .plots import run_labels

    path = _one(sources, "a simulated bundle folder (Run.write_bundle)")
    manifest = Manifest.load(path)
    rels = manifest.extra.get("space_maps")
    if manifest.origin != "simulate" or not rels or None in rels:
        raise ValueError(f"{path}: sim_space_map needs a bundle written by Run.write_bundle / vmaplab.sim.emit."
                         "write_bundle, whose manifest lists a space map per snapshot (extra.space_maps)")  # fmt: skip
    labels = run_labels([run["threads"] for run in manifest.extra["runs"]])
    maps = {}
    for label, rel in zip(labels, rels):
        frame = pd.read_csv(path / rel)
        frame.attrs = {"bin_bytes": int(frame["offset"].iloc[1] - frame["offset"].iloc[0]) if len(frame) > 1
                       else 1 << 30, "source": str(path / rel)}  # fmt: skip
        maps[label] = frame
    return {"maps": maps}


def _load_replay(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    from .sim.replay import replay, replay_bundle

    if len(sources) not in (1, 2):
        raise ValueError(f"give a bundle folder, or a vmalloc trace and optionally its vmallocinfo, not {len(sources)}")
    path = Path(sources[0])
    if path.is_dir():
        if len(sources) == 2:
            raise ValueError(f"{path}: a bundle brings its own vmallocinfo; give the folder alone")
        return {"replayed": replay_bundle(path)}
    return {"replayed": replay(path, vmallocinfo=sources[1] if len(sources) == 2 else None)}


def _load_measured(sources: list[str], opts: PlotOptions) -> dict[str, Any]:
    import pandas as pd

    from .bundle import Manifest
    from .report import model_chain_like, stack_chains

    folders = [Path(s) for s in sources if Path(s).is_dir()]
    tables = [Path(s) for s in sources if not Path(s).is_dir()]
    if not folders or len(tables) > 1 or any(t.suffix.lower() != ".csv" for t in tables):
        raise ValueError("give one or more bundles of test_vmalloc runs (folders) and, optionally, the model's "
                         "chains as a .csv table (report.model_chain_like; simulated when not given)")  # fmt: skip
    measured = stack_chains(folders)
    model = pd.read_csv(tables[0]) if tables else model_chain_like(measured, progress=opts.progress)
    manifest = Manifest.load(folders[0])
    first = measured.iloc[0]
    return {"measured": measured, "model": model,
            "source": f"Linux {manifest.kernel_release} on {manifest.host}, {int(first['cpus'])} CPUs",
            "scale": f"run_test_mask={int(first['tests'])}, test_loop_count={int(first['loops']):,}"}  # fmt: skip


FIGURES: dict[str, FigureSpec] = {
    "pagetable_growth": FigureSpec(
        "vmaplab.plots:pagetable_growth",
        _load_pagetable_growth,
        "page-table memory per thread count (allocinfo listings, one per run)",
        uses=("published",),
    ),
    "free_used": FigureSpec(
        "vmaplab.plots:free_used",
        _load_free_used,
        "free 'used' per thread count, beside page tables (free listings, optional allocinfo listings)",
        uses=("unit", "published"),
    ),
    "profile_comparison": FigureSpec(
        "vmaplab.plots:profile_comparison",
        _load_profile_comparison,
        "self and children share per symbol of two profiles (two perf report or perf script files)",
        uses=("published",),
    ),
    "trace_footprint": FigureSpec(
        "vmaplab.plots:trace_footprint",
        _load_trace,
        "page-table pages touched over a vmalloc trace, purges and lazily freed pages (trace or bundle)",
    ),
    "drain_stall": FigureSpec(
        "vmaplab.plots:drain_stall",
        _load_drain_stall,
        "lazy backlog against the drain's waits, runs and preempted spells (vmalloc + workqueue + sched trace)",
    ),
    "call_durations": FigureSpec(
        "vmaplab.plots:call_durations",
        _load_call_durations,
        "durations of probed functions' calls, one curve per trace (kprobe + kretprobe hits in ftrace text)",
    ),
    "vmalloc_map": FigureSpec(
        "vmaplab.plots:vmalloc_map",
        _load_trace,
        "vmap areas over time and address: allocated, lazily freed, purged (trace or bundle)",
    ),
    "vmallocinfo_map": FigureSpec(
        "vmaplab.plots:vmallocinfo_map",
        _load_vmallocinfo,
        "areas of a /proc/vmallocinfo snapshot by caller along the addresses (file, or a bundle's last)",
    ),
    "snapshot_series": FigureSpec(
        "vmaplab.plots:snapshot_series",
        _load_snapshot_series,
        "meminfo/vmstat fields over a bundle's snapshots (default VmallocUsed, PageTables)",
        uses=("fields",),
    ),
    "spin_share_vs_threads": FigureSpec(
        "vmaplab.plots:spin_share_vs_threads",
        _load_sweep,
        "simulated spinlock share against threads per CPU, per design (a vmaplab sweep table)",
    ),
    "throughput_vs_threads": FigureSpec(
        "vmaplab.plots:throughput_vs_threads",
        _load_sweep,
        "simulated vmalloc+vfree pairs/s and nodes/global speed-up against threads (a vmaplab sweep table)",
    ),
    "lock_wait_share": FigureSpec(
        "vmaplab.plots:lock_wait_share",
        _load_sweep,
        "simulated spin time per lock, per design and thread count (a vmaplab sweep table)",
    ),
    "rerun_plateau": FigureSpec(
        "vmaplab.plots:rerun_plateau",
        _load_chain,
        "page tables after each run of a chain, reruns hatched (a vmaplab sweep table, e.g. --threads 4,8,16,16)",
    ),
    "sim_space_map": FigureSpec(
        "vmaplab.plots:sim_space_map",
        _load_space_maps,
        "simulated vmalloc space after each run: page tables vs busy/lazy/pooled pages (a simulated bundle)",
    ),
    "replay_comparison": FigureSpec(
        "vmaplab.plots:replay_comparison",
        _load_replay,
        "a real vmalloc trace replayed through the model: VA high water and PTE pages, kernel vs model "
        "(bundle, or trace [vmallocinfo])",
    ),
    "measured_vs_model": FigureSpec(
        "vmaplab.plots:measured_vs_model",
        _load_measured,
        "page tables after each run of test_vmalloc chains measured on a real kernel, beside the model's "
        "(bundles [model.csv]; without the table the model's chains are simulated first: a minute or more)",
    ),
}


def draw(name: str, sources: list[str], options: PlotOptions | None = None):
    """Load the sources of figure ``name`` and draw it.

    Parameters
    ----------
    name : str
        A key of :data:`FIGURES`.
    sources : list of str
        Data files (``N=FILE`` for per-run listings) or one bundle folder, as the figure needs.
    options : PlotOptions, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    options = options or PlotOptions()
    if name not in FIGURES:
        raise ValueError(f"no figure {name!r}; known: {', '.join(FIGURES)}")
    spec = FIGURES[name]
    given = {k: v for k, v in vars(options).items() if k != "progress"}  # progress: how, not what, to load
    unused = [k for k, v in given.items() if v not in (None, ()) and k not in spec.uses]
    if unused:
        raise ValueError(f"{name} takes no {' or '.join(unused)} option")
    module, function = spec.plot.split(":")
    plot = getattr(importlib.import_module(module), function)
    return plot(**spec.load(list(sources), options))
