"""What a simulated machine prints: a :class:`~vmaplab.sim.run.Run` as the kernel and tools would show it.

Every text here reads back through vmaplab's own readers (``parse(emit(run))`` gives the run's
numbers), and :func:`write_bundle` stores them as a bundle (:mod:`vmaplab.bundle`) that
:func:`vmaplab.read_bundle` reads like one collected on a real host.

What is modelled and what is baseline:

* **Modelled** (from the run): the page-table pages of the vmalloc area (allocinfo's page-table tags,
  meminfo ``PageTables`` / vmstat ``nr_page_table_pages`` for the PMD pages only, see below), the
  memory they take from ``MemFree`` / ``MemAvailable`` and hence ``free``'s ``used``, the vmalloc
  pages still mapped at the run's end and the kernel stacks of the CPUs beyond the baseline's
  (``VmallocUsed``), ``VmallocTotal`` of the paging mode, vmstat's page events (``pgalloc_normal``,
  ``numa_hit``, ``numa_local``, ``pgfree``: the baseline's plus the pages the machine's runs
  allocated and freed), the per-function profile (sampled as perf samples it) and test_vmalloc's
  summary lines (not the warnings that align_shift_alloc_test's failures print above them).
* **Baseline** (an idle real machine): every other meminfo and vmstat value is the capture
  ``data/real/meminfo.txt`` / ``data/real/vmstat.txt`` (Linux 6.18, 2 CPUs, 24 GB VM, see
  ``data/real/SOURCES.md``), scaled to the simulated machine: ``MemTotal`` is ``memory_kib`` (by
  default the seed's 64172 MiB per 64 CPUs), ``KernelStack`` and ``Percpu`` grow with the CPU count,
  ``CommitLimit`` is half of ``MemTotal`` (overcommit_ratio 50, no swap), ``DirectMap1G`` covers
  the memory in the baseline's proportion; ``Balloon`` is left out (kernel-facts §4.2: a field newer than 6.9).
  vmstat's other event counters and its field set are the baseline's too. The other allocinfo tags
  are the seed's "before" excerpt (``data/seed/allocinfo-before.txt``; pre-merge format) or a real
  6.12 guest's whole listing at boot (6.10+ format), see :func:`allocinfo_text`.
* **Accounting** (kernel-facts §4.2, §5.4): on x86 6.7-6.15 the kernel's PTE allocator does not run
  the page-table constructor, so vmalloc **PTE pages are not in PageTables** nor in
  ``nr_page_table_pages``; vmalloc PMD pages are. allocinfo counts both; ``MemFree`` loses both.

Numbers are printed as the kernel prints them: meminfo in KiB (pages x 4), allocinfo sizes with
:func:`vmaplab.io.units.format_size` (pre-merge) or in bytes (6.10+).
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from vmaplab.bundle import MANIFEST, Manifest, Snapshot
from vmaplab.io.allocinfo import read_allocinfo
from vmaplab.io.meminfo import read_meminfo
from vmaplab.io.units import format_size
from vmaplab.io.vmstat import read_vmstat
from vmaplab.sim.params import PAGE_SIZE, VMALLOC_SIZE_L4, VMALLOC_SIZE_L5
from vmaplab.sim.run import Run, per_symbol

__all__ = [
    "allocinfo_text",
    "meminfo_text",
    "vmstat_text",
    "free_text",
    "perf_report_text",
    "perf_samples",
    "dmesg_text",
    "default_memory_kib",
    "write_bundle",
    "kernel_release",
    "meminfo_values",
    "CLOCK_HZ",
    "BOOT_SECONDS",
    "SAMPLE_HZ",
    "PAGETABLE_TAGS",
]

_DATA = Path(__file__).resolve().parents[2] / "data"
_BASE_MEMINFO = _DATA / "real" / "meminfo.txt"
_BASE_VMSTAT = _DATA / "real" / "vmstat.txt"
_BASE_ALLOCINFO = _DATA / "seed" / "allocinfo-before.txt"
#: A whole 6.10+ listing: the 2-vCPU Linux 6.12.117 guest at boot, before its first test_vmalloc run
#: (data/real/SOURCES.md, test_vmalloc-qemu-2cpu).
_BASE_ALLOCINFO_610 = _DATA / "real" / "test_vmalloc-qemu-2cpu" / "loops100k-1" / "0000" / "allocinfo.gz"
#: CPUs of the machine that captured the meminfo/vmstat baseline.
_BASE_CPUS = 2
#: The seed's VM (kernel-facts §4.4): 64172 MiB of MemTotal on 64 CPUs.
_SEED_MEM_KIB_PER_CPU = 64172 * 1024 // 64
#: Pages in a pageblock on x86_64 with 4 KiB pages (pageblock_order 9, the huge-page order; the baseline
#: capture's nr_free_pages_blocks, 921088, is a multiple of it).
_PAGEBLOCK_PAGES = 512

#: get_cycles() rate: the TSC of the seed's AMD Ryzen Threadripper 3970X runs at its 3.7 GHz base clock.
CLOCK_HZ = 3.7e9
#: Uptime (s) when the first simulated run starts: the dmesg clock of the first Summary lines.
BOOT_SECONDS = 60.0
#: Samples per second per busy CPU of ``perf record`` (its default frequency, 4000 Hz).
SAMPLE_HZ = 4000

#: Tags that carry the vmalloc page tables, by allocinfo format: (file:line, module, func, level).
#: Pre-merge (Feb 2024 mm-unstable, the seed): one tag for every page-table page (kernel-facts §4.1).
#: 6.10+: the call sites in mm/memory.c, line numbers measured on a 6.12.117 kernel (kernel-facts §4.1).
PAGETABLE_TAGS = {
    "pre-merge": [("include/linux/mm.h:2848", "memory", "pagetable_alloc", ("pte", "pmd"))],
    "6.10": [
        ("mm/memory.c:461", None, "__pte_alloc_kernel", ("pte",)),
        ("mm/memory.c:6359", None, "__pmd_alloc", ("pmd",)),
    ],
}


def kernel_release(run: Run) -> str:
    """The simulated kernel's ``uname -r``: ``6.7.0 (simulated)`` (global) or ``6.9.0 (simulated)`` (nodes)."""
    return {"global": "6.7.0", "nodes": "6.9.0"}[run.params["design"]] + " (simulated)"


# --- allocinfo ---------------------------------------------------------------------------------


def _pagetable_pages(run: Run) -> dict[str, int]:
    return {level: int(b) // PAGE_SIZE for level, b in run.pagetable_bytes_by_level.items()}


def allocinfo_text(run: Run, format: str = "pre-merge") -> str:
    """``/proc/allocinfo`` after the run.

    Parameters
    ----------
    run : Run
    format : {"pre-merge", "6.10"}
        ``"pre-merge"``: the profiling series v3 listing as the seed shows it (``sort -h
        /proc/allocinfo``: human sizes, ``module:`` tags, ascending size; an excerpt, as every listing
        of that format published is), the other tags those of the seed's "before" excerpt;
        ``include/linux/mm.h:2848 ... pagetable_alloc`` holds every page-table page, the baseline's
        (meminfo ``PageTables`` of the baseline machine: user page tables) and the vmalloc area's PTE
        and PMD pages (bytes, and pages as calls). ``"6.10"``: a whole ``allocinfo - version: 1.0``
        listing in the kernel's tag order, the one of a real 6.12 guest at boot (every tag, zero lines
        included), with the vmalloc area's PTE pages added to ``__pte_alloc_kernel`` and its PMD pages
        to ``__pmd_alloc``.
    """
    if format not in PAGETABLE_TAGS:
        raise ValueError(f"format must be one of {', '.join(PAGETABLE_TAGS)}, not {format!r}")
    pages = _pagetable_pages(run)
    if format == "pre-merge":
        base = _base_allocinfo()
        rows = [(f"{r.file}:{r.lineno}", r.module, r.func, int(r.size_bytes), int(r.calls)) for r in base.itertuples()]
        user = _base_meminfo()["PageTables"] * 1024 // PAGE_SIZE  # the baseline's page tables, user ones mostly
        for where, module, func, levels in PAGETABLE_TAGS[format]:
            n = user + sum(pages[level] for level in levels)
            rows.append((where, module, func, n * PAGE_SIZE, n))
        lines = [f"{format_size(size):>8} {calls:>8} {where} module:{module} func:{func} \n"
                 for where, module, func, size, calls in rows]  # fmt: skip
        return "".join(sorted(lines, key=_sort_h))
    added = {f"{where} func:{func}": sum(pages[level] for level in levels)
             for where, _module, func, levels in PAGETABLE_TAGS[format]}  # fmt: skip
    lines = []
    for line in _base_allocinfo_610():
        size, calls, tag = line.split(None, 2)
        n = added.get(tag.strip(), 0)
        lines.append(f"{int(size) + n * PAGE_SIZE:>12} {int(calls) + n:>8} {tag}" if n else line)
    return "".join(lines)


@cache
def _base_allocinfo_610() -> list[str]:
    """The lines of the 6.10+ baseline listing (its two header lines first), each with its newline."""
    with gzip.open(_baseline(_BASE_ALLOCINFO_610), "rt") as f:
        lines = f.readlines()
    missing = {f"{where} func:{func}" for where, _m, func, _l in PAGETABLE_TAGS["6.10"]} - {
        line.split(None, 2)[2].strip() for line in lines[2:]}  # fmt: skip
    if missing:
        raise ValueError(f"{_BASE_ALLOCINFO_610}: the baseline listing lacks the page-table tags {sorted(missing)}")
    return lines


def _sort_h(line: str) -> tuple[int, float, str]:
    """GNU ``sort -h``'s order of a line that starts with a printed size: by the size's unit prefix
    (none < K < M < G < ...), then its number, then the whole line (its last-resort comparison)."""
    number, unit = re.match(r"\s*([\d.]+)(\S*)", line).groups()
    return "KMGTPE".find(unit[:1]) + 1 if unit[:1] else 0, float(number), line


@cache
def _base_allocinfo() -> pd.DataFrame:
    return read_allocinfo(_baseline(_BASE_ALLOCINFO))


def _baseline(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the baseline capture that vmaplab.sim.emit needs (a vmaplab checkout's data/)")
    return path


# --- meminfo, vmstat, free ---------------------------------------------------------------------


@cache
def _base_meminfo() -> dict[str, int]:
    df = read_meminfo(_baseline(_BASE_MEMINFO))
    return dict(zip(df["field"], df["raw_value"].astype(int)))


def default_memory_kib(cpus: int) -> int:
    """MemTotal (KiB) of a simulated machine: the seed's 64172 MiB per 64 CPUs, scaled to ``cpus``."""
    return _SEED_MEM_KIB_PER_CPU * int(cpus)


def meminfo_values(run: Run, memory_kib: int | None = None) -> dict[str, int]:
    """The meminfo fields after the run, in /proc/meminfo order, values as printed (KiB; HugePages_* counts).

    See the module docstring for what is modelled and what is baseline. Raises ``ValueError`` when the
    page tables and the baseline's use do not fit in ``memory_kib``.
    """
    base = _base_meminfo()
    cpus = int(run.params["cpus"])
    total = default_memory_kib(cpus) if memory_kib is None else int(memory_kib)
    pages = _pagetable_pages(run)
    kib_per_page = PAGE_SIZE // 1024
    vm_pages = int(run.stats["vmalloc_pages"])  # VmallocUsed: vmalloc's pages, without the guard pages
    out = {k: v for k, v in base.items() if k != "Balloon"}
    out["KernelStack"] = base["KernelStack"] * cpus // _BASE_CPUS
    out["Percpu"] = base["Percpu"] * cpus // _BASE_CPUS
    out["PageTables"] = base["PageTables"] + pages["pmd"] * kib_per_page
    # kernel stacks are vmalloc'ed (CONFIG_VMAP_STACK): the stacks of the CPUs added count in VmallocUsed
    out["VmallocUsed"] = base["VmallocUsed"] + out["KernelStack"] - base["KernelStack"] + vm_pages * kib_per_page
    levels = 5 if int(run.params.get("paging_levels", 4)) == 5 else 4
    out["VmallocTotal"] = (VMALLOC_SIZE_L5 if levels == 5 else VMALLOC_SIZE_L4) // 1024 - 1
    taken = (
        (base["MemTotal"] - base["MemFree"])
        + (out["KernelStack"] - base["KernelStack"])
        + (out["Percpu"] - base["Percpu"])
        + (pages["pte"] + pages["pmd"] + vm_pages) * kib_per_page
    )
    if taken >= total:
        raise ValueError(f"the run's page tables and the baseline need {taken} KiB, more than MemTotal {total} KiB")
    out["MemTotal"] = total
    out["MemFree"] = total - taken
    out["MemAvailable"] = out["MemFree"] + base["MemAvailable"] - base["MemFree"]
    out["CommitLimit"] = total // 2 + base["SwapTotal"]
    # the direct map covers the machine's RAM (with its holes, in the baseline's proportion) in 1 GiB pages
    # beyond the baseline's 4k and 2M parts
    gib = 1 << 20
    small = base["DirectMap4k"] + base["DirectMap2M"]
    mapped = total * (small + base["DirectMap1G"]) / base["MemTotal"]
    out["DirectMap1G"] = max(0, math.ceil((mapped - small) / gib)) * gib
    return out


def meminfo_text(run: Run, memory_kib: int | None = None) -> str:
    """``/proc/meminfo`` after the run (``Name:`` padded to 16 columns, value right-aligned to 8, `` kB``)."""
    lines = []
    for name, value in meminfo_values(run, memory_kib).items():
        unit = "" if name.startswith("HugePages_") else " kB"
        lines.append(f"{name + ':':<16}{value:>8}{unit}\n")
    return "".join(lines)


def vmstat_text(run: Run, memory_kib: int | None = None) -> str:
    """``/proc/vmstat`` after the run: the baseline's counters with ``nr_free_pages``,
    ``nr_page_table_pages`` and ``nr_kernel_stack`` matching :func:`meminfo_text`,
    ``nr_free_pages_blocks`` (6.15+: the free pages in whole 512-page pageblocks) in the baseline's
    proportion to ``nr_free_pages``, and the page events of the machine's runs so far added to the
    baseline's: ``pgalloc_normal``, ``numa_hit`` and ``numa_local`` count every data page vmalloc
    allocated and every page-table page, ``pgfree`` every data page vfree freed (order-0 pages, one
    node: a real 2-vCPU guest's run_test_mask=127 run moved the three by the same 32.9 M pages,
    data/real/test_vmalloc-qemu-2cpu)."""
    mi = meminfo_values(run, memory_kib)
    kib_per_page = PAGE_SIZE // 1024
    base = _base_vmstat()
    free = mi["MemFree"] // kib_per_page
    allocated = int(run.stats["pages_allocated_total"]) + run.pagetable_bytes // PAGE_SIZE
    changed = {
        "nr_free_pages": free,
        "nr_page_table_pages": mi["PageTables"] // kib_per_page,
        "nr_kernel_stack": mi["KernelStack"],
        "pgfree": base["pgfree"] + int(run.stats["pages_freed_total"]),
    }
    for name in ("pgalloc_normal", "numa_hit", "numa_local"):
        if name in base:
            changed[name] = base[name] + allocated
    if "nr_free_pages_blocks" in base:
        blocks = free * base["nr_free_pages_blocks"] // base["nr_free_pages"]
        changed["nr_free_pages_blocks"] = blocks // _PAGEBLOCK_PAGES * _PAGEBLOCK_PAGES
    return "".join(f"{name} {changed.get(name, value)}\n" for name, value in base.items())


@cache
def _base_vmstat() -> dict[str, int]:
    df = read_vmstat(_baseline(_BASE_VMSTAT))
    return dict(zip(df["field"], df["value"].astype(int)))


def free_text(run: Run, memory_kib: int | None = None, *, prompt: str = "root@vmaplab-sim:~# ") -> str:
    """``free -m`` after the run as a terminal shows it: the prompt with the command, then procps-ng 4's
    table (``used`` = total - available; MiB truncated), from the numbers of :func:`meminfo_text`.

    The command line tells :func:`vmaplab.read_free` the unit; pass ``prompt=None`` for the bare table.
    """
    mi = meminfo_values(run, memory_kib)
    mib = {
        "total": mi["MemTotal"] // 1024,
        "free": mi["MemFree"] // 1024,
        "shared": mi["Shmem"] // 1024,
        "buff/cache": (mi["Buffers"] + mi["Cached"] + mi["SReclaimable"]) // 1024,
        "available": mi["MemAvailable"] // 1024,
    }
    used = mib["total"] - mib["available"]
    swap = (mi["SwapTotal"] // 1024, (mi["SwapTotal"] - mi["SwapFree"]) // 1024, mi["SwapFree"] // 1024)
    cols = ("total", "used", "free", "shared", "buff/cache", "available")
    values = (mib["total"], used, mib["free"], mib["shared"], mib["buff/cache"], mib["available"])
    text = " " * 8 + "".join(f"{c:>12}" for c in cols) + "\n"
    text += f"{'Mem:':<8}" + "".join(f"{v:>12}" for v in values) + "\n"
    text += f"{'Swap:':<8}" + "".join(f"{v:>12}" for v in swap) + "\n"
    return text if prompt is None else f"{prompt}free -m\n{text}"


# --- perf report -------------------------------------------------------------------------------


def _perf_units(n: int) -> str:
    # perf's convert_unit(): divided by 1000 while above 1000 (up to G); printed "%lu%c", the unit
    # a space when there is none ("# Samples: 812  of event ...")
    unit = " "
    for letter in "KMG":
        if n > 1000:
            n, unit = n // 1000, letter
    return f"{n}{unit}"


def perf_samples(run: Run, sample_hz: int = SAMPLE_HZ) -> pd.DataFrame:
    """The samples perf would have taken of the run's profile: one every ``10**9 // sample_hz`` ns of
    busy CPU time, laid over the folded stacks in their order (so a stack gets the floor of its time in
    periods, or one more), counted per symbol as perf report does.

    Returns
    -------
    DataFrame
        symbol, shared_object (str) and children / self (int64, samples whose stack holds the symbol /
        ends in it), for the symbols with at least one sample, in the profile's order; ``attrs["samples"]``
        the total.
    """
    prof = run.profile
    period_ns = 10**9 // sample_hz
    stacks = prof.attrs.get("stacks", {})
    ends = np.cumsum(np.fromiter(stacks.values(), dtype=np.int64, count=len(stacks)))
    counts = np.diff(ends // period_ns, prepend=0)
    self_, children = per_symbol(dict(zip(stacks, counts.tolist())))
    out = pd.DataFrame({
        "symbol": prof["symbol"].astype(str),
        "shared_object": prof["shared_object"].astype(str),
        "children": [children.get(sym, 0) for sym in prof["symbol"].astype(str)],
        "self": [self_.get(sym, 0) for sym in prof["symbol"].astype(str)],
    })  # fmt: skip
    out = out[out["children"] > 0].reset_index(drop=True)
    out.attrs["samples"] = int(ends[-1] // period_ns) if len(ends) else 0
    return out


def perf_report_text(run: Run, *, children: bool = True, sample_hz: int = SAMPLE_HZ) -> str:
    """``perf report --stdio --sort dso,sym -g none`` over the run's profile, from :func:`perf_samples`:
    each percentage is a count of samples over the total, as perf computes it.

    Parameters
    ----------
    run : Run
    children : bool
        ``--children`` (Children and Self columns, every symbol with a sample, by Children) or
        ``--no-children`` (one Overhead column, symbols with self samples, by Overhead).
    sample_hz : int
        Samples per second of busy CPU time (perf record's frequency): sets the ``# Samples:`` and
        ``# Event count`` header lines (cpu-clock counts nanoseconds). Idle CPU time is not sampled.

    The sort keys are the shared object and the symbol, the layout of the seed's tables: a Command
    column would split the samples per thread (``vmalloc_test/0`` ...), and the Run keeps them per
    thread kind only. A run too short for one sample raises ``ValueError`` (perf report prints no table
    then, only "The perf.data data has no samples!").
    """
    sampled = perf_samples(run, sample_hz)
    samples = sampled.attrs["samples"]
    if samples == 0:
        raise ValueError(f"the run's {run.profile.attrs.get('busy_ns', 0)} ns of busy CPU time hold no sample at "
                         f"{sample_hz} Hz: perf report would print no table")  # fmt: skip
    period_ns = 10**9 // sample_hz
    if children:
        rows = sampled.sort_values(["children", "self"], ascending=False, kind="stable")
        pct_cols = [("Children", rows["children"]), ("Self", rows["self"])]
    else:
        rows = sampled[sampled["self"] > 0].sort_values("self", ascending=False, kind="stable")
        pct_cols = [("Overhead", rows["self"])]
    dso = [f"[{d}]" for d in rows["shared_object"]]  # perf prints "[kernel]", the reader strips it
    sym = [f"[k] {s}" for s in rows["symbol"]]
    w_dso = max([len("Shared Object"), *map(len, dso)])
    w_sym = max([len("Symbol"), *map(len, sym)])
    head = "  ".join(f"{name:>8}" for name, _ in pct_cols)
    dots = "  ".join("." * 8 for _ in pct_cols)
    out = [
        "# To display the perf.data header info, please use --header/--header-only options.",
        "#",
        "#",
        "# Total Lost Samples: 0",
        "#",
        f"# Samples: {_perf_units(samples)} of event 'cpu-clock'",
        f"# Event count (approx.): {samples * period_ns}",
        "#",
        f"# {head}  {'Shared Object':<{w_dso}}  {'Symbol':<{w_sym}}",
        f"# {dots}  {'.' * w_dso}  {'.' * w_sym}",
        "#",
    ]
    pcts = [100.0 * col.to_numpy(dtype=np.int64) / samples for _, col in pct_cols]
    for i in range(len(rows)):
        cells = "  ".join(f"{p[i]:>7.2f}%" for p in pcts)
        out.append(f"  {cells}  {dso[i]:<{w_dso}}  {sym[i]}")
    out += ["", "", "#", "# (Tip: For a higher level overview, try: perf report --sort comm,dso)", "#"]
    return "\n".join(out) + "\n"


# --- test_vmalloc's dmesg ----------------------------------------------------------------------


def dmesg_text(run: Run, *, start_seconds: float = BOOT_SECONDS, clock_hz: float = CLOCK_HZ) -> str:
    """The kernel log lines the run adds (``dmesg``): test_vmalloc's summary (kernel-facts §3.4).

    Per worker, in worker order, one ``Summary:`` line per selected test in bit order (6.x wording,
    no ``xfailed:``), then ``All test took worker<i>=<cycles> cycles`` with the cycles of the
    worker's simulated seconds at ``clock_hz``. Every line carries the dmesg clock ``[%5lu.%06lu]``:
    the summary is printed when the last worker is done, ``start_seconds`` + the run's wall time,
    one microsecond per line after that.
    """
    summ = run.summaries
    cycles = dict(zip(run.workers["worker"], np.rint(run.workers["seconds"] * clock_hz).astype(np.int64)))
    body = []
    for worker, rows in summ.groupby("worker", sort=True):
        for r in rows.itertuples():
            body.append(f"Summary: {r.test} passed: {r.passed} failed: {r.failed} repeat: {r.repeat} "
                        f"loops: {r.loops} avg: {r.avg_usec} usec")  # fmt: skip
        body.append(f"All test took worker{worker}={cycles[worker]} cycles")
    t0 = round((start_seconds + run.wall_seconds) * 1e6)
    return "".join(f"[{(t0 + i) // 10**6:>5}.{(t0 + i) % 10**6:06d}] {line}\n" for i, line in enumerate(body))


# --- the bundle --------------------------------------------------------------------------------

#: Files of a snapshot: bundle format name -> text writer.
_WRITERS = {
    "allocinfo": lambda run, opts: allocinfo_text(run, opts["allocinfo_format"]),
    "meminfo": lambda run, opts: meminfo_text(run, opts["memory_kib"]),
    "vmstat": lambda run, opts: vmstat_text(run, opts["memory_kib"]),
    "free": lambda run, opts: free_text(run, opts["memory_kib"]),
    "perf_report": lambda run, opts: perf_report_text(run),
    "test_vmalloc": lambda run, opts: dmesg_text(run, start_seconds=opts["start_seconds"]),
}


def _jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_bundle(
    run: Run | Sequence[Run],
    folder: str | os.PathLike,
    *,
    allocinfo_format: str = "pre-merge",
    memory_kib: int | None = None,
) -> Manifest:
    """Write one run, or a sequence of runs on one machine, as a bundle (:mod:`vmaplab.bundle`).

    Parameters
    ----------
    run : Run or sequence of Run
        The runs, in the order they ran on their machine (``simulate(..., machine=previous.machine)``).
    folder : path
        The bundle folder; created, and must not hold a bundle already.
    allocinfo_format : {"pre-merge", "6.10"}
        See :func:`allocinfo_text`.
    memory_kib : int, optional
        MemTotal of the machine (default: the seed's 64172 MiB per 64 CPUs, scaled to its CPUs).

    Returns
    -------
    Manifest
        Origin ``"simulate"``, host ``"vmaplab-sim"``, :func:`kernel_release`, the machine's CPUs
        online and possible, ``kptr_restrict`` 0 (the kernel's default), ``mem_profiling`` "1", no
        wall clock (``started`` None). One snapshot per run, at the simulated seconds from the
        first run's start to the run's end, with allocinfo, meminfo, vmstat, free (``free -m``),
        perf_report (``--children``; left out for a run too short for one sample) and test_vmalloc
        (the run's dmesg lines). ``extra``:
        ``runs`` (each run's ``params``), ``memory_kib``, ``allocinfo_format``, ``clock_hz``,
        ``sample_hz``, ``boot_seconds`` and ``space_maps``: per snapshot the path of the run's
        ``Run.space_map`` as CSV (``NNNN/space_map.csv``; no text a real machine prints, so not a
        snapshot file), or None for a run without one.

    So ``read_bundle(folder)["allocinfo"]`` gives the page-table growth over the runs.
    """
    runs = [run] if isinstance(run, Run) else list(run)
    if not runs or not all(isinstance(r, Run) for r in runs):
        raise TypeError("write_bundle takes a Run or a non-empty sequence of Runs")
    first = runs[0]
    for prev, r in zip(runs, runs[1:]):
        if r.machine is not first.machine:
            raise ValueError("the runs of one bundle must run on one Machine (simulate(..., machine=...))")
        if r.params["run_index"] <= prev.params["run_index"]:
            raise ValueError(
                f"runs out of order: run_index {r.params['run_index']} after {prev.params['run_index']}"
            )
    if allocinfo_format not in PAGETABLE_TAGS:
        raise ValueError(f"allocinfo_format must be one of {', '.join(PAGETABLE_TAGS)}, not {allocinfo_format!r}")
    folder = Path(folder)
    if (folder / MANIFEST).exists():
        raise FileExistsError(f"{folder} holds a bundle already")
    memory_kib = default_memory_kib(first.params["cpus"]) if memory_kib is None else int(memory_kib)
    manifest = Manifest(
        origin="simulate",
        host="vmaplab-sim",
        kernel_release=kernel_release(first),
        cpus_online=int(first.params["cpus"]),
        cpus_possible=int(first.params["cpus"]),
        kptr_restrict=0,
        mem_profiling="1",
        started=None,
        extra={
            "runs": [_jsonable(r.params) for r in runs],
            "memory_kib": memory_kib,
            "allocinfo_format": allocinfo_format,
            "clock_hz": CLOCK_HZ,
            "sample_hz": SAMPLE_HZ,
            "boot_seconds": BOOT_SECONDS,
            "space_maps": [],
        },
    )
    elapsed = 0.0
    for i, r in enumerate(runs):
        opts = {"allocinfo_format": allocinfo_format, "memory_kib": memory_kib, "start_seconds": BOOT_SECONDS + elapsed}
        elapsed += r.wall_seconds
        rel = manifest.snapshot_dir(i)
        (folder / rel).mkdir(parents=True, exist_ok=True)
        snap = Snapshot(time=elapsed)
        for fmt, write in _WRITERS.items():
            if fmt == "perf_report" and perf_samples(r).attrs["samples"] == 0:
                continue  # too short a run for one sample: perf report prints no table
            (folder / rel / fmt).write_text(write(r, opts))
            snap.files[fmt] = f"{rel}/{fmt}"
        manifest.snapshots.append(snap)
        if r.space_map is None:
            manifest.extra["space_maps"].append(None)
        else:
            r.space_map.to_csv(folder / rel / "space_map.csv", index=False)
            manifest.extra["space_maps"].append(f"{rel}/space_map.csv")
    manifest.save(folder)
    return manifest
