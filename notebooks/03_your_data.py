# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 — Your data through vmaplab
#
# Your own captures go through the same readers, analyses and figures as the published data of the
# vmap-node investigation. By default this notebook reads the real captures shipped in `data/real`
# (a 2-CPU Linux 6.18 VM creating threads, so vmalloc'ing kernel stacks) and, since that host has no
# `/proc/allocinfo`, the allocinfo and `free -m` listings published on linux-mm (`data/seed`).
# Point `DATA_DIR` and the file names below at your own files: a bundle from `vmaplab collect`, a
# paste of allocinfo listings, `perf report --stdio` text, `perf script` output and a vmalloc trace.
#
# Every figure is also written to `OUT_DIR`, ready to attach to a mail or a report.

# %% tags=["parameters"]
from pathlib import Path

DATA_DIR = Path("..") / "data" / "real"  # your captures; relative to this notebook's folder
ALLOCINFO_DIR = Path("..") / "data" / "seed"  # the capture host has no /proc/allocinfo: published listings
OUT_DIR = Path("output") / "03_your_data"  # figures and tables are written here
FAST = True  # True: PNG figures only; False: SVG copies too (the vmap map's SVG is large)
TOP_N = 15  # rows of the tables

# file names in DATA_DIR (ALLOCINFO_PASTE in ALLOCINFO_DIR)
BUNDLE = "bundle-vm-2cpu-churn"  # from `vmaplab collect --out ... --trace 2s`
ALLOCINFO_PASTE = "pagetable-thread.txt"  # a mail holding four allocinfo and four `free -m` listings
PASTE_THREADS = [0, 64, 128, 256]  # the runs of those listings, in order (0: before any run)
PASTE_CITATION = "Rezki, linux-mm, 22 Feb 2024"  # None for data of your own
PERF_REPORT_A = "perf-report-children.txt"  # perf report --stdio -g none
PERF_REPORT_B = "perf-report-small-children.txt"
PERF_SCRIPT = "perf-script-churn.txt.gz"  # perf script of a perf record -g
VMALLOC_TRACE = "vmalloc-trace-perf-thread-churn.txt.gz"  # perf script of the vmalloc:* events
PROBE_TRACES = ["drain-trace-qemu-8cpu/run1-threads8.txt.gz",  # ftrace text with kprobe/kretprobe hits
                "drain-trace-qemu-8cpu/run3-threads32.txt.gz"]  # (and workqueue events)

# %%
# %matplotlib inline
import pandas as pd

import vmaplab as vl
from vmaplab import plots
from vmaplab.analysis.lifetimes import area_lifetimes

OUT_DIR.mkdir(parents=True, exist_ok=True)
FORMATS = ["png"] if FAST else ["png", "svg"]
pd.set_option("display.max_colwidth", 90)


def save(fig, name):
    """Write ``fig`` to OUT_DIR as name.png (and name.svg unless FAST) and show it."""
    return plots.save_figure(fig, OUT_DIR, name, FORMATS)


# %% [markdown]
# ## A bundle of snapshots
#
# `read_bundle` reads every snapshot of a `vmaplab collect` folder into one frame per format, with the
# snapshot's `time` (seconds since the start).

# %%
bundle = vl.read_bundle(DATA_DIR / BUNDLE)
{fmt: len(frame) for fmt, frame in bundle.items()}

# %%
bundle["meminfo"].attrs["manifest"]["kernel_release"], bundle["meminfo"].attrs["manifest"]["cpus_online"]

# %%
save(plots.snapshot_series(bundle["meminfo"], ["VmallocUsed", "PageTables"]), "snapshot_series")

# %% [markdown]
# What changed between the first and the last snapshot, biggest change first:

# %%
meminfo = bundle["meminfo"]
meminfo_diff = vl.diff(meminfo[meminfo["snapshot"] == 0], meminfo[meminfo["snapshot"] == meminfo["snapshot"].max()])
meminfo_diff.to_csv(OUT_DIR / "meminfo_diff.csv", index=False)
meminfo_diff.head(TOP_N)

# %% [markdown]
# The vmalloc areas of the last snapshot along the address axis (needs real addresses: collect as root
# with `kptr_restrict` at 1):

# %%
vmallocinfo = bundle["vmallocinfo"]
save(plots.vmallocinfo_map(vmallocinfo[vmallocinfo["snapshot"] == vmallocinfo["snapshot"].max()]), "vmallocinfo_map")

# %% [markdown]
# Whose vmap areas grew from the first snapshot to the last, caller by caller; the areas freed lazily
# and not purged yet are one line, `(unpurged vm_area)`: the lazy backlog that a drain clears.

# %%
first, last = (vmallocinfo[vmallocinfo["snapshot"] == i] for i in (0, vmallocinfo["snapshot"].max()))
vmallocinfo_diff = vl.diff(first, last)
vmallocinfo_diff.to_csv(OUT_DIR / "vmallocinfo_diff.csv", index=False)
vmallocinfo_diff.head(TOP_N)

# %% [markdown]
# ## An allocinfo paste
#
# A paste may hold several listings (a mail, a terminal log): each becomes a `block`. Page tables are
# the `pagetable_alloc` tag (its mm/memory.c call sites from Linux 6.10).

# %%
paste = vl.read_allocinfo(ALLOCINFO_DIR / ALLOCINFO_PASTE)
listings = {threads: paste[paste["block"] == block] for block, threads in enumerate(PASTE_THREADS)}
save(plots.pagetable_growth(listings, published=PASTE_CITATION), "pagetable_growth")

# %% [markdown]
# `free -m` listings of the same paste (the `$ free -m` prompt gives the unit), beside the page tables:

# %%
free = vl.read_free(ALLOCINFO_DIR / ALLOCINFO_PASTE)
frees = {threads: free[free["block"] == block] for block, threads in enumerate(PASTE_THREADS)}
save(plots.free_used(frees, pagetables=listings, published=PASTE_CITATION), "free_used")

# %% [markdown]
# What grew from the first run to the last (tags missing from an excerpt are `unlisted`):

# %%
allocinfo_diff = vl.diff(paste, paste, block=(1, len(PASTE_THREADS) - 1))
allocinfo_diff.to_csv(OUT_DIR / "allocinfo_diff.csv", index=False)
allocinfo_diff.head(TOP_N)

# %% [markdown]
# ## perf report text, and two profiles compared
#
# Symbols are matched with compiler clone suffixes (`.part.0`, `.isra.0`) and `_noprof` folded.
# Unresolved user addresses differ from run to run, so the comparison keeps kernel symbols.

# %%
report_a = vl.read_perf_report(DATA_DIR / PERF_REPORT_A)
report_b = vl.read_perf_report(DATA_DIR / PERF_REPORT_B)
report_a.head(TOP_N)

# %%
kernel_a = report_a[report_a["shared_object"] == "kernel.kallsyms"]
kernel_b = report_b[report_b["shared_object"] == "kernel.kallsyms"]
comparison = vl.compare_profiles(kernel_a, kernel_b)
comparison.to_csv(OUT_DIR / "profile_comparison.csv", index=False)
save(plots.profile_comparison(comparison, labels=(PERF_REPORT_A, PERF_REPORT_B), top=TOP_N), "profile_comparison")

# %% [markdown]
# ## Folded stacks from perf script
#
# `collapse_stacks` gives what FlameGraph's `stackcollapse-perf.pl` prints (feed `stack count` lines to
# `flamegraph.pl`). The heaviest stacks:

# %%
stacks = vl.collapse_stacks(DATA_DIR / PERF_SCRIPT)
stacks.to_csv(OUT_DIR / "stacks.csv", index=False)
stacks.nlargest(TOP_N, "count").assign(leaf=lambda df: df["stack"].str.rsplit(";", n=1).str[-1])

# %% [markdown]
# ## A vmalloc trace: page tables touched, purges, the address space over time
#
# Kernel page tables of the vmalloc area are never freed: the first area mapped in a 2 MiB region
# allocates a PTE page for good. `pagetable_footprint` counts them per allocation.

# %%
trace = vl.read_vmalloc_trace(DATA_DIR / VMALLOC_TRACE)
footprint = vl.pagetable_footprint(trace)
footprint.to_csv(OUT_DIR / "footprint.csv", index=False)
footprint.tail()

# %%
save(plots.trace_footprint(trace, footprint=footprint), "trace_footprint")

# %% [markdown]
# Each area from its allocation to its free (blue), then lazily freed until a purge returns its range
# (orange):

# %%
lifetimes = area_lifetimes(trace)
lifetimes["state"].value_counts()

# %%
save(plots.vmalloc_map(trace, lifetimes=lifetimes), "vmalloc_map")

# %% [markdown]
# ## Kernel functions timed with kprobes, and the drain's work runs
#
# A kprobe and a kretprobe on a function time every call of it. As root, before the workload
# (`/sys/kernel/tracing`; the group and event names are yours to choose):
#
# ```
# echo 'p:k/flush_in flush_tlb_kernel_range' >> kprobe_events
# echo 'r:k/flush_out flush_tlb_kernel_range' >> kprobe_events
# echo 1 > events/k/enable; echo 1 > events/workqueue/enable
# ... run the workload ...; cat trace > probes.txt
# ```
#
# `read_kprobe_trace` reads the hits, `probe_calls` pairs each entry with its return, and `work_runs`
# (from the workqueue events of the same file) gives each drain's wait and run. The default files
# are a guest with 8 vCPUs on 2 host cores, where every TLB flush waits for descheduled vCPUs.

# %%
calls = {Path(name).name.removesuffix(".txt.gz"): vl.probe_calls(vl.read_kprobe_trace(DATA_DIR / name))
         for name in PROBE_TRACES}
summary = vl.call_summary(calls)
summary.to_csv(OUT_DIR / "probe_calls.csv", index=False)
summary.assign(**{c.replace("_s", "_ms"): summary[c] * 1e3 for c in ("median_s", "p99_s", "max_s")}).drop(
    columns=["median_s", "p99_s", "max_s"]).round(3)

# %%
save(plots.call_durations(calls), "call_durations")

# %%
drains = vl.work_runs(vl.read_sched_trace(DATA_DIR / PROBE_TRACES[-1]))
(drains[["wait_s", "run_s"]] * 1e3).rename(columns={"wait_s": "wait_ms", "run_s": "run_ms"}).describe().round(1)
