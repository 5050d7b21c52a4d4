"""Replay a real vmalloc tracepoint recording through the allocator model, model beside kernel.

The alloc/free/purge events of ``vmalloc:alloc_vmap_area``, ``vmalloc:free_vmap_area_noflush`` and
``vmalloc:purge_vmap_area_lazy`` (read by :func:`vmaplab.read_vmalloc_trace`) drive an
:class:`~vmaplab.sim.Allocator` on the recording's window, CPU count and CPUs. Each allocation the
kernel made is made in the model on the same CPU with the same size and alignment; each free frees
the model's area of the same allocation; the model's space is first seeded with the areas that were
already busy (or lazily freed) when tracing began. The result compares where both placed every
area, how often both reuse an address, when both purge, and how high both climb in the window.

Seeding (see :func:`replay` for the rules): a /proc/vmallocinfo snapshot read with real addresses
gives every busy area and every ``unpurged vm_area`` (lazily freed, waiting for a purge); the
trace itself gives the areas it frees without having seen them allocated. The free event carries no
size, but it prints ``nr_lazy``, the lazily freed pages *after* adding this area, so the area's size
is the rise of ``nr_lazy`` over the previous free when no purge event lies between them (on the
project's perf recording this rule gives the true size for 7427 of 7430 frees of traced areas). Where
it cannot apply, the trace's most common allocation size is assumed. The node pools' contents are
invisible to both sources, so a kernel pool hit on a VA pooled before tracing began cannot be
reproduced: such an allocation shows as not exact.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vmaplab.bundle import Manifest
from vmaplab.errors import ParseError, SimulationError
from vmaplab.io._trace_lines import event_clock
from vmaplab.io.vmalloc_trace import read_vmalloc_trace
from vmaplab.io.vmallocinfo import read_vmallocinfo
from vmaplab.sim.allocator import Allocator
from vmaplab.sim.params import PAGE_SHIFT, PAGE_SIZE, POOL_CLASSES

__all__ = ["replay", "replay_bundle", "Replay"]

_ALLOC, _FREE, _PURGE = "alloc_vmap_area", "free_vmap_area_noflush", "purge_vmap_area_lazy"
_SEED_TAGS = ("none", "address")


@dataclass(frozen=True)
class Replay:
    """A recording replayed through the model (see :func:`replay`).

    Attributes
    ----------
    allocs : DataFrame
        One row per replayed allocation, in trace order: ``time`` float64 (s), ``cpu`` int64,
        ``size`` int64 (bytes, guard page included), ``align`` int64 (bytes), ``kernel_addr``
        UInt64, ``model_addr`` UInt64 (<NA> when the model failed), ``exact`` bool (same address),
        ``kernel_reuse`` / ``model_reuse`` bool (the address was freed earlier in the replay,
        seeded lazy areas included).
    purges : DataFrame
        One row per purge: ``side`` category (kernel, model), ``time`` float64 (s; a model purge
        carries the time of the event during which it ran; the purge of an allocation that failed
        at first and then succeeded on retry, which needs a full window, is dated by the next free
        or purge event), ``areas`` Int64 (areas purged: the kernel's ``num_purged``, the model's
        lazy areas taken).
    metrics : dict
        The summary figures, see :meth:`summary`.
    seed : dict
        How the space was seeded: ``busy`` and ``lazy`` areas from vmallocinfo, ``inferred`` areas
        seeded from the trace's frees (``inferred_guessed`` of them with the assumed size),
        ``dropped`` snapshot areas the trace allocates before freeing (stale), ``outside`` areas or
        events outside the window, ``unmatched_frees`` frees the model could not follow.
    config : dict
        ``design``, ``cpus``, ``drain``, ``engine``, ``seed_tag``, ``vmalloc_start``, ``vmalloc_size``
        and the knobs given.
    """

    allocs: pd.DataFrame
    purges: pd.DataFrame
    metrics: dict
    seed: dict
    config: dict = field(repr=False)

    def summary(self) -> pd.DataFrame:
        """The figures side by side: one row per measure, columns ``kernel`` and ``model``.

        Rows: ``allocations``, ``exact address share`` (model only), ``reuse share`` (allocations at
        an address freed earlier), ``purges``, ``first purge (s)`` (seconds after the first event),
        ``VA high water (bytes)`` (highest end of a replayed allocation above the window start).
        """
        m = self.metrics
        rows = {
            "allocations": (m["allocs"], m["allocs"] - m["model_failures"]),
            "exact address share": (pd.NA, m["exact_share"]),
            "reuse share": (m["kernel_reuse_share"], m["model_reuse_share"]),
            "purges": (m["kernel_purges"], m["model_purges"]),
            "first purge (s)": (m["kernel_first_purge"], m["model_first_purge"]),
            "VA high water (bytes)": (m["kernel_high_water"], m["model_high_water"]),
        }
        return pd.DataFrame.from_dict(rows, orient="index", columns=["kernel", "model"], dtype=object)

    def __repr__(self) -> str:
        c, s = self.config, self.seed
        head = (
            f"Replay of {self.metrics['allocs']} allocations: design={c['design']!r}, cpus={c['cpus']}, "
            f"drain={c['drain']!r}, window {c['vmalloc_start']:#x} + {c['vmalloc_size'] >> 40} TiB\n"
            f"seed: {s['busy']} busy + {s['lazy']} lazy areas from vmallocinfo, {s['pooled']} pooled inferred, "
            f"{s['inferred']} from the "
            f"trace's frees ({s['inferred_guessed']} of assumed size), {s['dropped']} stale dropped, "
            f"{s['unmatched_frees']} frees unmatched\n"
        )
        return head + self.summary().to_string()


def replay(
    trace,
    *,
    vmallocinfo=None,
    design: str = "nodes",
    cpus: int | None = None,
    drain: str = "trace",
    engine: str = "numba",
    seed_tag: str = "none",
    seed_pools: bool = False,
    **knobs,
) -> Replay:
    """Run the allocations and frees of a vmalloc tracepoint recording through the model.

    Parameters
    ----------
    trace : path or DataFrame
        A recording, or the frame of :func:`vmaplab.read_vmalloc_trace`. Only allocations whose
        ``vstart``/``vend`` are the vmalloc range (the widest window among the alloc events) are
        replayed, and only frees of areas in that window; failed kernel allocations are skipped.
    vmallocinfo : path, DataFrame or None
        A /proc/vmallocinfo snapshot with real addresses taken just before tracing began. Its busy
        areas are reserved in the model and its ``unpurged vm_area`` lines reserved then freed
        (lazy). An area whose start the trace allocates before freeing it is dropped as stale.
    design : {"nodes", "global"}
        The allocator design (6.9+ vmap nodes, or 6.7).
    cpus : int or None
        CPUs of the recording machine (None: the highest CPU in the trace + 1). A trace event's CPU
        picks the pool node.
    drain : {"trace", "auto"}
        ``"trace"``: the model drains exactly when the kernel's purge event says it purged (and
        never on its own threshold); ``"auto"``: the model drains on its own ``lazy_max_pages``
        threshold right after the free that crosses it, and the kernel's purge events are only
        reported.
    engine : {"numba", "reference"}
        The model's engine (identical results).
    seed_tag : {"none", "address"}
        The node tag of seeded areas, whose allocating CPU is unknown: ``"none"`` leaves them
        untagged (their VAs return to free space when purged, never to a pool); ``"address"`` tags
        each with its address node (``addr_to_node_id``), as if the CPU of that node had allocated it.
    seed_pools : bool
        Infer the node pools at trace start (``"nodes"`` design, more than one node): a first
        replay finds the allocations the model did not place at the kernel's address and whose
        address neither the snapshot nor an earlier event of the trace had shown; taking each as a
        pool hit on a VA pooled before tracing began, a second replay starts with these VAs in the
        pool of the allocating CPU's node (address order, the highest at the head, as a purge
        leaves them). This uses the trace's future: it measures the model given the pools, not
        the model's prediction of them. ``seed["pooled"]`` counts them.
    **knobs
        What-if knobs of :class:`~vmaplab.sim.Allocator` (not ``auto_drain``, set by ``drain``).

    Returns
    -------
    Replay
    """
    if drain not in ("trace", "auto"):
        raise ValueError(f"drain must be 'trace' or 'auto', not {drain!r}")
    if seed_tag not in _SEED_TAGS:
        raise ValueError(f"seed_tag must be 'none' or 'address', not {seed_tag!r}")
    if "auto_drain" in knobs or "vmalloc_start" in knobs or "vmalloc_size" in knobs:
        raise ValueError("auto_drain and the window come from drain= and the trace, not from knobs")
    df = trace if isinstance(trace, pd.DataFrame) else read_vmalloc_trace(trace)
    source = str(df.attrs.get("source", "<trace>"))
    ev = _events(df, source)
    start, size = _window(ev, source)
    if cpus is None:
        cpus = int(ev["cpu"].max()) + 1
    model = Allocator(
        design, cpus, engine=engine, auto_drain=drain == "auto", vmalloc_start=start, vmalloc_size=size, **knobs
    )
    info = None
    if vmallocinfo is not None:
        info = vmallocinfo if isinstance(vmallocinfo, pd.DataFrame) else read_vmallocinfo(vmallocinfo)
    state = _Run(model, ev, start, size, seed_tag)
    state.seed(info, [])
    state.play(drain)
    if seed_pools and model.config.design == "nodes" and model.config.nr_nodes > 1:
        pooled = state.unexplained()
        model = Allocator(
            design, cpus, engine=engine, auto_drain=drain == "auto", vmalloc_start=start, vmalloc_size=size, **knobs
        )
        state = _Run(model, ev, start, size, seed_tag)
        state.seed(info, pooled)
        state.play(drain)
    config = {
        "design": design, "cpus": cpus, "drain": drain, "engine": engine, "seed_tag": seed_tag,
        "seed_pools": seed_pools, "vmalloc_start": start, "vmalloc_size": size, **knobs,
    }  # fmt: skip
    return state.result(config)


def replay_bundle(folder: str | os.PathLike, **options) -> Replay:
    """Replay the trace of a ``vmaplab collect`` bundle, seeded from its first vmallocinfo.

    The CPU count is the manifest's ``cpus_possible`` (the node count follows possible CPUs), else
    ``cpus_online``. ``options`` go to :func:`replay` (``cpus`` overrides the manifest).
    """
    folder = Path(folder)
    manifest = Manifest.load(folder)
    trace = next((s.files["vmalloc_trace"] for s in manifest.snapshots if "vmalloc_trace" in s.files), None)
    if trace is None:
        raise ParseError(str(folder / "manifest.json"), None, "a snapshot with a vmalloc_trace file")
    info = next((s.files["vmallocinfo"] for s in manifest.snapshots if "vmallocinfo" in s.files), None)
    options.setdefault("cpus", manifest.cpus_possible or manifest.cpus_online)
    return replay(folder / trace, vmallocinfo=None if info is None else folder / info, **options)


def _events(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """The events as plain columns, in time order (stable, so file order breaks ties)."""
    df = event_clock(df)  # a read_bundle frame: the events' own times, not the snapshot's
    need = ["time", "cpu", "event", "va_start", "size", "align", "vstart", "vend", "failed", "nr_lazy", "num_purged"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: not a vmalloc trace frame (missing columns {missing})")
    ev = df[need].sort_values("time", kind="stable").reset_index(drop=True)
    if not (ev["event"] == _ALLOC).any():
        raise ParseError(source, None, "at least one vmalloc:alloc_vmap_area event to replay")
    return ev


def _window(ev: pd.DataFrame, source: str) -> tuple[int, int]:
    """The vmalloc range: the widest (vstart, vend) among the alloc events, as (start, size) bytes."""
    pairs = ev.loc[ev["event"] == _ALLOC, ["vstart", "vend"]].drop_duplicates()
    widths = (pairs["vend"] - pairs["vstart"]).astype("float64")
    row = pairs.loc[widths.idxmax()]
    start, end = int(row["vstart"]), int(row["vend"])
    if start % PAGE_SIZE or (end + 1) % PAGE_SIZE:
        raise ParseError(source, None, f"a page-aligned vmalloc window, not vstart={start:#x} vend={end:#x}")
    return start, end + 1 - start


class _Run:
    """The replay's bookkeeping: kernel address -> live allocation, the model's answers, the tallies."""

    def __init__(self, model: Allocator, ev: pd.DataFrame, start: int, size: int, seed_tag: str) -> None:
        self.model, self.ev, self.start, self.end = model, ev, start, start + size
        self.seed_tag = seed_tag
        self.live: dict[int, int] = {}  # kernel address -> model address of a live area
        self.k_freed: set[int] = set()
        self.m_freed: set[int] = set()
        self.rows: list[tuple] = []
        self.seen: list[int] = []  # addresses the seed knew (snapshot areas, frees of unseen areas)
        self.purges: list[tuple[str, float, int]] = []
        self.counts = dict.fromkeys(
            ("busy", "lazy", "pooled", "inferred", "inferred_guessed", "dropped", "outside", "unmatched_frees"), 0
        )

    def _in_window(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def _tag(self, addr: int) -> int | None:
        if self.seed_tag == "none":
            return None
        c = self.model.config
        return ((addr >> PAGE_SHIFT) // c.zone_pages) % c.nr_nodes

    def _reserve(self, addr: int, size: int, cpu: int | None = None) -> bool:
        try:
            self.model.reserve(addr, size, cpu=self._tag(addr) if cpu is None else cpu)
        except SimulationError:
            return False
        self.live[addr] = addr
        return True

    def unexplained(self) -> list[tuple[int, int, int]]:
        """(address, size in bytes, cpu) of the pool-sized allocations not placed at the kernel's
        address whose address had not been seen before (see ``seed_pools`` of :func:`replay`)."""
        seen = set(self.seen)
        out = []
        for time, cpu, size, align, addr, got, reuse, _ in self.rows:
            if got != addr and not reuse and addr not in seen and (size >> PAGE_SHIFT) <= POOL_CLASSES:
                out.append((addr, size, cpu))
            seen.add(addr)
        return out

    def seed(self, info: pd.DataFrame | None, pooled: list[tuple[int, int, int]]) -> None:
        """Fill the pools with ``pooled`` (address, bytes, cpu) VAs, reserve the areas busy at the
        start and free the snapshot's lazy ones (see the module doc)."""
        ev = self.ev
        for addr, size, cpu in pooled:
            if self._reserve(addr, size, cpu):
                self.model.free(addr)
                del self.live[addr]
                self.counts["pooled"] += 1
        if pooled:
            self.model.drain()  # a purge moves tagged lazy VAs into their node's pools
        first = ev[ev["event"].isin([_ALLOC, _FREE]) & ev["va_start"].notna()].drop_duplicates("va_start")
        first_event = dict(zip(first["va_start"].astype("uint64").tolist(), first["event"].astype(str)))
        if info is not None:
            source = str(info.attrs.get("source", "<vmallocinfo>"))
            kind = info.attrs.get("address_kind")
            if kind not in ("real", None):
                raise ParseError(source, None, f"a vmallocinfo with real addresses (kptr_restrict=1 as root), not {kind!r} ones")
            lazy: list[int] = []
            for addr, size, unpurged in zip(info["start"].tolist(), info["size"].tolist(), info["unpurged"].tolist()):
                self.seen.append(addr)
                if not self._in_window(addr):
                    self.counts["outside"] += 1
                elif first_event.get(addr) == _ALLOC and not unpurged:
                    self.counts["dropped"] += 1
                elif not self._reserve(addr, size):
                    raise SimulationError(f"{source}: the area at {addr:#x} of {size} bytes overlaps an earlier one")
                elif unpurged:
                    lazy.append(addr)
                else:
                    self.counts["busy"] += 1
            for addr in lazy:
                self.model.free(addr)
                del self.live[addr]
                self.k_freed.add(addr)
                self.m_freed.add(addr)
            self.counts["lazy"] = len(lazy)
        sizes, guessed = self._free_sizes()
        for addr, kind in first_event.items():
            if kind == _FREE and addr not in self.live and self._in_window(addr):
                self.seen.append(addr)
                if self._reserve(addr, sizes[addr]):
                    self.counts["inferred"] += 1
                    self.counts["inferred_guessed"] += addr in guessed

    def _free_sizes(self) -> tuple[dict[int, int], set[int]]:
        """Size in bytes of each freed address from the rise of ``nr_lazy`` (see the module doc);
        the addresses where the rule could not apply get the most common alloc size."""
        ev = self.ev
        alloc_sizes = ev.loc[ev["event"] == _ALLOC, "size"]
        fallback = int(alloc_sizes.mode().iloc[0])
        sizes: dict[int, int] = {}
        guessed: set[int] = set()
        prev = None
        for event, addr, nr_lazy in zip(ev["event"].astype(str), ev["va_start"].tolist(), ev["nr_lazy"].tolist()):
            if event == _PURGE:
                prev = None
            elif event == _FREE:
                rise = None if prev is None or nr_lazy is pd.NA else (int(nr_lazy) - prev) << PAGE_SHIFT
                if int(addr) not in sizes:
                    if rise is not None and rise > 0:
                        sizes[int(addr)] = rise
                    else:
                        sizes[int(addr)] = fallback
                        guessed.add(int(addr))
                prev = None if nr_lazy is pd.NA else int(nr_lazy)
        return sizes, guessed

    def play(self, drain: str) -> None:
        """Run every event through the model, recording the allocations and the purges."""
        model, ev = self.model, self.ev
        purges = model.stats()["purges"]
        lazy_areas = model.stats()["lazy_areas"]
        columns = ["time", "cpu", "event", "va_start", "size", "align", "vstart", "vend", "failed", "num_purged"]
        for time, cpu, event, va, size, align, vstart, vend, failed, num in zip(*(ev[c].tolist() for c in columns)):
            event = str(event)
            if event == _ALLOC:
                if int(vstart) != self.start or int(vend) != self.end - 1 or failed:
                    self.counts["outside"] += 1
                    continue
                if self._alloc(time, int(cpu), int(va), int(size), int(align)):
                    continue  # placed: only a failed placement purges (and then fails or retries)
            elif event == _FREE:
                self._free(int(va), int(cpu))
            else:
                self.purges.append(("kernel", time, num))
                if drain == "trace":
                    model.drain()
            stats = model.stats()
            if stats["purges"] != purges:
                self.purges.append(("model", time, lazy_areas - stats["lazy_areas"]))
                purges = stats["purges"]
            lazy_areas = stats["lazy_areas"]

    def _alloc(self, time: float, cpu: int, addr: int, size: int, align: int) -> bool:
        pages = (size >> PAGE_SHIFT) - 1
        if size % PAGE_SIZE or pages < 1:
            raise SimulationError(f"alloc at {time:.6f} s: a size of {size} bytes is not whole pages plus a guard page")
        if addr in self.live:
            raise SimulationError(f"alloc at {time:.6f} s: the kernel allocates {addr:#x}, which the replay holds busy")
        got = self.model.alloc(pages, align, cpu)
        if got is not None:
            self.live[addr] = got
        self.rows.append((time, cpu, size, align, addr, got, addr in self.k_freed, got in self.m_freed))
        return got is not None

    def _free(self, addr: int, cpu: int) -> None:
        if not self._in_window(addr):
            self.counts["outside"] += 1
            return
        got = self.live.pop(addr, None)
        if got is None:
            self.counts["unmatched_frees"] += 1
            return
        self.model.free(got, cpu)
        self.k_freed.add(addr)
        self.m_freed.add(got)

    def result(self, config: dict) -> Replay:
        t = pd.DataFrame(
            self.rows, columns=["time", "cpu", "size", "align", "kernel_addr", "model_addr", "kernel_reuse", "model_reuse"]
        )
        allocs = pd.DataFrame(
            {
                "time": t["time"].astype("float64"),
                "cpu": t["cpu"].astype("int64"),
                "size": t["size"].astype("int64"),
                "align": t["align"].astype("int64"),
                "kernel_addr": pd.array(t["kernel_addr"].tolist(), dtype="UInt64"),
                "model_addr": pd.array([None if a is None else a for a in t["model_addr"].tolist()], dtype="UInt64"),
            }
        )
        allocs["exact"] = (allocs["kernel_addr"] == allocs["model_addr"]).fillna(False).astype(bool)
        allocs["kernel_reuse"] = t["kernel_reuse"].astype(bool)
        allocs["model_reuse"] = t["model_reuse"].astype(bool)
        purges = pd.DataFrame(self.purges, columns=["side", "time", "areas"])
        purges = pd.DataFrame(
            {
                "side": pd.Categorical(purges["side"], categories=["kernel", "model"]),
                "time": purges["time"].astype("float64"),
                "areas": pd.array(purges["areas"].tolist(), dtype="Int64"),
            }
        )
        return Replay(allocs, purges, self._metrics(allocs, purges), dict(self.counts), config)

    def _metrics(self, allocs: pd.DataFrame, purges: pd.DataFrame) -> dict:
        n = len(allocs)
        t0 = float(self.ev["time"].iloc[0])

        def share(col: pd.Series) -> float:
            return float(col.mean()) if n else float("nan")

        def high(col: str) -> int:
            placed = allocs[col].notna().to_numpy()
            offsets = allocs.loc[placed, col].to_numpy(np.uint64) - np.uint64(self.start)
            ends = offsets.astype(np.int64) + allocs.loc[placed, "size"].to_numpy(np.int64)
            return int(ends.max()) if len(ends) else 0

        def first(side: str) -> float:
            times = purges.loc[purges["side"] == side, "time"]
            return round(float(times.iloc[0]) - t0, 6) if len(times) else float("nan")

        return {
            "allocs": n,
            "model_failures": int(allocs["model_addr"].isna().sum()),
            "exact_share": share(allocs["exact"]),
            "kernel_reuse_share": share(allocs["kernel_reuse"]),
            "model_reuse_share": share(allocs["model_reuse"]),
            "kernel_purges": int((purges["side"] == "kernel").sum()),
            "model_purges": int((purges["side"] == "model").sum()),
            "kernel_first_purge": first("kernel"),
            "model_first_purge": first("model"),
            "kernel_high_water": high("kernel_addr"),
            "model_high_water": high("model_addr"),
        }
