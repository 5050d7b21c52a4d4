"""The figures of vmaplab.plots on the seed's published listings and this project's real captures: what
each draws (line data, bars, segments, labels with units), saved as PNG and SVG; the figure registry
and the `vmaplab plot` command."""

import json
import shutil
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import vmaplab as vl  # noqa: E402
from vmaplab import plots  # noqa: E402
from vmaplab.analysis.lifetimes import area_lifetimes  # noqa: E402
from vmaplab.cli import app  # noqa: E402
from vmaplab.figures import FIGURES, PlotOptions, _threads, draw  # noqa: E402

from figure_checks import assert_texts_clear  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "data" / "seed"
REAL = ROOT / "data" / "real"
BUNDLE = REAL / "bundle-vm-2cpu-churn"
TRACE = REAL / "vmalloc-trace-perf-thread-churn.txt.gz"
BASE = 0xFFFFC90000000000  # x86_64 4-level VMALLOC_START, no KASLR on the capture host
MIB, GIB = 2**20, 2**30
PT = "Rezki, linux-mm, 22 Feb 2024"
V3 = "Rezki, [PATCH v3 00/11], linux-mm, 2 Jan 2024"
# the seed's pagetable_alloc lines as the kernel printed them: 350MiB, 1.20GiB, 5.36GiB
PUBLISHED = {64: 350 * MIB, 128: round(1.20 * GIB), 256: round(5.36 * GIB)}
# free -m "used" (MiB) before and after the 64/128/256-thread runs
USED_MIB = {0: 936, 64: 1417, 128: 2556, 256: 6741}


def allocinfo(name: str) -> pd.DataFrame:
    return vl.read_allocinfo(SEED / f"allocinfo-{name}.txt")


def free_m(name: str) -> pd.DataFrame:
    return vl.read_free(SEED / f"free-m-{name}.txt", unit="m")


def seed_listings() -> dict[int, pd.DataFrame]:
    return {0: allocinfo("before"), **{n: allocinfo(f"{n}threads") for n in (64, 128, 256)}}


def seed_frees() -> dict[int, pd.DataFrame]:
    return {0: free_m("before"), **{n: free_m(f"{n}threads") for n in (64, 128, 256)}}


def line(ax, label: str):
    found = [ln for ln in ax.get_lines() if ln.get_label().startswith(label)]
    assert len(found) == 1, [ln.get_label() for ln in ax.get_lines()]
    return found[0]


def saved(fig, tmp_path: Path, name: str) -> None:
    """Save as PNG and SVG and check both files are what they say."""
    png, svg = tmp_path / f"{name}.png", tmp_path / f"{name}.svg"
    fig.savefig(png)
    fig.savefig(svg)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in svg.read_text()[:2000]


def test_pagetable_growth_published(tmp_path):
    fig = plots.pagetable_growth(seed_listings(), published=PT)
    ax = fig.axes[0]
    pub = line(ax, f"published ({PT})")
    assert pub.get_xdata().tolist() == [64, 128, 256]
    assert pub.get_ydata().tolist() == [PUBLISHED[n] for n in (64, 128, 256)]
    assert pub.get_color() == "black"
    # the "before" excerpt does not list pagetable_alloc: below its smallest line, 27.2MiB
    bound = line(ax, "not in the excerpt")
    assert bound.get_xdata().tolist() == [0] and bound.get_ydata().tolist() == [28521267]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["< 27.2MiB", "350MiB", "1.20GiB", "5.36GiB"]  # as allocinfo printed them
    assert ax.get_ylabel() == "page-table memory (GiB)" and "threads" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_yticklabels()][:3] == ["0", "1", "2"]  # whole GiB
    assert "4 KiB" in ax.child_axes[0].get_ylabel()  # the page-count axis
    assert "pagetable_alloc" in ax.get_title()
    assert_texts_clear(fig)  # the value labels, the excerpt's bound at 0 threads included, inside the axes
    saved(fig, tmp_path, "pagetable_growth")


def test_pagetable_growth_simulated_overlay_and_measured_label():
    sim = pd.DataFrame({"threads": [128, 64, 256, 64], "bytes": [2 * GIB, GIB, 3 * GIB, MIB],
                        "label": ["nodes", "nodes", "nodes", "global"]})  # fmt: skip
    fig = plots.pagetable_growth({n: allocinfo(f"{n}threads") for n in (64, 256)}, simulated=sim)
    ax = fig.axes[0]
    measured = line(ax, "measured")
    assert measured.get_color() != "black" and measured.get_ydata().tolist() == [PUBLISHED[64], PUBLISHED[256]]
    nodes = line(ax, "nodes")
    assert nodes.get_xdata().tolist() == [64, 128, 256] and nodes.get_ydata().tolist() == [GIB, 2 * GIB, 3 * GIB]
    assert line(ax, "global").get_ydata().tolist() == [MIB]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["64", "128", "256"]
    with pytest.raises(ValueError, match="threads, bytes and label"):
        plots.pagetable_growth({64: allocinfo("64threads")}, simulated=sim.drop(columns="label"))
    with pytest.raises(ValueError, match="at least one"):
        plots.pagetable_growth({})


def test_pagetable_growth_counts_the_6_10_call_sites():
    # whole 1.0 listings of a real 6.12 guest before and after a test_vmalloc run (data/real/SOURCES.md):
    # page tables at their mm/memory.c call sites are summed, PTE + PMD + PUD pages as their lines say
    chain = REAL / "test_vmalloc-qemu-2cpu" / "loops100k-1"
    before, after = (vl.read_allocinfo(chain / snap / "allocinfo.gz") for snap in ("0000", "0001"))
    fig = plots.pagetable_growth({0: before, 2: after})
    # 0000: __pte_alloc_kernel 8192, __pmd_alloc 32768, __pud_alloc 20480; 0001: 1650688, 98304, 20480
    assert line(fig.axes[0], "measured").get_ydata().tolist() == [8192 + 32768 + 20480, 1650688 + 98304 + 20480]
    assert fig.axes[0].get_ylabel() == "page-table memory (MiB)"


def test_pagetable_growth_wants_one_listing_per_run():
    paste = pd.concat([allocinfo("64threads"), allocinfo("128threads").assign(block=1)])
    with pytest.raises(ValueError, match="2 listings"):
        plots.pagetable_growth({64: paste})


def test_free_used_beside_page_tables(tmp_path):
    fig = plots.free_used(seed_frees(), pagetables=seed_listings(), published=PT)
    used_ax, growth_ax = fig.axes
    used = line(used_ax, f"used, published ({PT})")
    assert used.get_xdata().tolist() == [64, 128, 256]
    assert used.get_ydata().tolist() == [USED_MIB[n] * MIB for n in (64, 128, 256)]
    assert list(line(used_ax, "used before the test").get_ydata()) == [936 * MIB] * 2
    assert used_ax.get_ylabel() == "used memory (free) (GiB)"
    growth_bars, table_bars = growth_ax.containers
    growth = [b.get_height() for b in growth_bars]
    tables = [b.get_height() for b in table_bars]
    assert growth == [(USED_MIB[n] - 936) * MIB for n in (64, 128, 256)]
    assert tables == [PUBLISHED[n] for n in (64, 128, 256)]
    # the seed's point: what free reports as grown is mostly page tables
    assert all(0.7 < t / g < 1.0 for t, g in zip(tables, growth))
    assert [t.get_text() for t in growth_ax.get_xticklabels()] == ["64", "128", "256"]
    assert growth_ax.get_ylabel() == "memory (GiB)"
    assert [t.get_text() for t in used_ax.texts] == ["1.38GiB", "2.50GiB", "6.58GiB"]
    assert_texts_clear(fig)
    saved(fig, tmp_path, "free_used")


def test_free_used_alone_and_errors():
    fig = plots.free_used({n: free_m(f"{n}threads") for n in (64, 256)})
    assert len(fig.axes) == 1
    assert line(fig.axes[0], "used, measured").get_ydata().tolist() == [1417 * MIB, 6741 * MIB]
    with pytest.raises(ValueError, match="before the test"):
        plots.free_used({64: free_m("64threads")}, pagetables={64: allocinfo("64threads")})
    with pytest.raises(ValueError, match="at least one run"):
        plots.free_used({0: free_m("before")})
    three = vl.read_free(REAL / "free-m-c3.txt", unit="m")  # free -m -c 3: three listings in one file
    with pytest.raises(ValueError, match="3 listings"):
        plots.free_used({1: three})


def test_profile_comparison_seed_tables(tmp_path):
    cmp = vl.compare_profiles(SEED / "perf-report-6.7.txt", SEED / "perf-report-vmap-nodes.txt")
    fig = plots.profile_comparison(cmp, labels=("6.7.0-rc8", "with vmap nodes"), published=V3)
    self_ax, children_ax = fig.axes
    for ax, share in ((self_ax, "self"), (children_ax, "children")):
        expected = int(cmp[f"{share}_pct_a"].notna().sum() + cmp[f"{share}_pct_b"].notna().sum())
        assert sum(len(bars) for bars in ax.containers) == expected  # one bar per share a profile reports
        assert ax.get_xlabel() == f"{share} (% of samples)"
    assert [len(bars) for bars in self_ax.containers] == [17, 20]  # the symbols of each table
    names = [t.get_text() for t in self_ax.get_yticklabels()]
    assert len(names) == len(cmp) == 22 and names[0] == "native_queued_spin_lock_slowpath"
    assert self_ax.get_yticklabels()[0].get_color() == "red"
    assert self_ax.get_yticklabels()[1].get_color() != "red"
    bars = [p for c in self_ax.containers for p in c]
    slowpath = sorted(p.get_width() for p in bars if abs(p.get_y() + p.get_height() / 2) < 0.25)
    assert slowpath == [16.51, 93.07]  # the cover letter's headline
    legend = [t.get_text() for t in fig.legends[0].get_texts()]  # one legend, under both panels
    assert legend == ["6.7.0-rc8 (published)", "with vmap nodes (published)"]
    assert V3 in fig._supxlabel.get_text()
    assert "6.7.0-rc8 vs with vmap nodes" in fig._suptitle.get_text()
    assert_texts_clear(fig)
    saved(fig, tmp_path, "profile_comparison")
    # a long scale note is wrapped under the title, inside the figure
    scaled = plots.profile_comparison(cmp, labels=("6.7", "6.9"), scale="4 threads on 4 CPUs; " + "x" * 150)
    assert scaled._suptitle.get_text().count("\n") >= 2
    assert_texts_clear(scaled)


def test_profile_comparison_self_only_profiles_and_top():
    cmp = vl.compare_profiles(REAL / "perf-report-self.txt", REAL / "perf-report-small-self-n.txt")
    fig = plots.profile_comparison(cmp, top=5)
    assert len(fig.axes) == 1  # --no-children reports have no children share
    assert len(fig.axes[0].get_yticklabels()) == 5
    drawn = sum(len(bars) for bars in fig.axes[0].containers)
    assert drawn == int(cmp.head(5)[["self_pct_a", "self_pct_b"]].notna().sum().sum())
    with pytest.raises(ValueError, match="compare_profiles"):
        plots.profile_comparison(vl.read_perf_report(REAL / "perf-report-self.txt"))


def test_trace_footprint_real_trace(tmp_path):
    trace = vl.read_vmalloc_trace(TRACE)
    fp = vl.pagetable_footprint(trace)
    fig = plots.trace_footprint(trace)
    top, bottom = fig.axes
    pte, pmd = line(top, "PTE pages"), line(top, "PMD pages")
    assert pte.get_ydata().tolist() == fp["pte_pages"].tolist() and pte.get_ydata()[-1] == 84
    assert pmd.get_ydata()[-1] == 1
    t0 = trace["time"].min()
    assert np.allclose(pte.get_xdata(), fp["time"] - t0)
    purges = trace[trace["event"] == "purge_vmap_area_lazy"]
    for ax in (top, bottom):
        marks = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
        assert [ln.get_xdata()[0] for ln in marks] == pytest.approx((purges["time"] - t0).tolist())
    assert [t.get_text() for t in bottom.texts] == ["3350 areas purged", "3313 areas purged"]  # on the lazy panel
    assert len(top.texts) == 0  # the top panel names the counts in its legend
    assert line(top, "purge_vmap_area_lazy").get_label() == "purge_vmap_area_lazy (3,350, 3,313 areas purged)"
    assert line(bottom, "purge_vmap_area_lazy").get_label() == "purge_vmap_area_lazy"
    frees = trace[trace["event"] == "free_vmap_area_noflush"]
    assert line(bottom, "nr_lazy (").get_ydata().tolist() == frees["nr_lazy"].tolist()
    assert set(line(bottom, "nr_lazy_max").get_ydata()) == {16384}
    assert "4 KiB" in top.get_ylabel() and top.child_axes[0].get_ylabel() == "page-table memory (KiB)"
    assert bottom.get_xlabel() == "time since the first traced event (s)"
    assert fig._suptitle.get_text() == "vmalloc trace vmalloc-trace-perf-thread-churn.txt.gz"  # no folders
    assert_texts_clear(fig)
    saved(fig, tmp_path, "trace_footprint")


def test_trace_footprint_of_a_bundle_uses_the_event_clock():
    bundle = vl.read_bundle(BUNDLE, formats=["vmalloc_trace"])["vmalloc_trace"]
    alone = vl.read_vmalloc_trace(BUNDLE / "0000" / "vmalloc_trace")
    fig = plots.trace_footprint(bundle)
    pte = line(fig.axes[0], "PTE pages")
    expected = vl.pagetable_footprint(alone)
    assert pte.get_ydata().tolist() == expected["pte_pages"].tolist()
    assert np.allclose(pte.get_xdata(), expected["time"] - alone["time"].min())
    assert len(fig.axes) == 2  # frees in the trace: the nr_lazy panel is there


def test_vmalloc_map_real_trace(tmp_path):
    trace = vl.read_vmalloc_trace(TRACE)
    lt = area_lifetimes(trace)
    fig = plots.vmalloc_map(trace)
    assert len(fig.axes) == 1  # every kernel stack lies in the first 200 MiB of the window
    ax = fig.axes[0]
    live, lazy = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert live.get_label() == "allocated" and lazy.get_label() == "lazily freed, not yet purged"
    assert len(live.get_segments()) == len(lt) == 7631
    assert len(lazy.get_segments()) == lt["free_time"].notna().sum() == 7435
    t0, t_end = trace["time"].min(), trace["time"].max()
    seg = np.array(live.get_segments())
    offsets = (lt["va_start"].to_numpy(dtype=np.uint64) - np.uint64(BASE)).astype(float)
    assert np.array_equal(seg[:, 0, 1], offsets) and np.array_equal(seg[:, 1, 1], offsets)
    assert np.allclose(seg[:, 0, 0], lt["alloc_time"].fillna(t0) - t0)
    assert np.allclose(seg[:, 1, 0], lt["free_time"].fillna(t_end) - t0)
    lazy_seg = np.array(lazy.get_segments())
    freed = lt[lt["free_time"].notna()]
    assert np.allclose(lazy_seg[:, 0, 0], freed["free_time"] - t0)
    assert np.allclose(lazy_seg[:, 1, 0], freed["purge_time"].fillna(t_end) - t0)
    assert ax.get_ylabel() == f"address − {BASE:#x} (MiB)"
    purges = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert len(purges) == 2 and purges[0].get_label() == "purge_vmap_area_lazy (3,350, 3,313 areas purged)"
    assert [t.get_text() for t in fig.legends[0].get_texts()][-1] == purges[0].get_label()
    assert len(ax.texts) == 0  # the counts are in the legend, not over the areas
    assert_texts_clear(fig)
    saved(fig, tmp_path, "vmalloc_map")


def test_vmallocinfo_map_real_addresses(tmp_path):
    info = vl.read_vmallocinfo(REAL / "vmallocinfo-kptr1.txt")
    fig = plots.vmallocinfo_map(info)
    # three address clusters: the window's start, its last 2 MiB (percpu chunk), the module area
    assert [ax.get_title() for ax in fig.axes] == ["from\n0xffffc90000000000", "from\n0xffffe8ffc0000000",
                                                   "from\n0xffffffffc0000000"]  # fmt: skip
    bars = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
    assert sum(len(c.get_paths()) for c in bars) == len(info) == 906
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert rows[0] == "kernel_clone: 102 areas, 1.99MiB"
    assert rows[-1] == "unpurged vm_area (lazily freed): 663 areas, 12.9MiB"
    assert len(rows) == 12 and rows[-2].startswith("other callers (7): 7 areas")
    unpurged = [c for c in bars if c.get_label().startswith("unpurged")][0]
    x = np.array([p.vertices[:, 0].min() for p in unpurged.get_paths()])
    expected = (info.loc[info["unpurged"], "start"].to_numpy(dtype=np.uint64) - np.uint64(BASE)).astype(float)
    assert np.array_equal(np.sort(x), np.sort(expected))
    assert fig.axes[0].get_xlabel() == "offset (MiB)"
    assert fig._suptitle.get_text() == "/proc/vmallocinfo areas by caller: vmallocinfo-kptr1.txt"
    assert_texts_clear(fig)
    saved(fig, tmp_path, "vmallocinfo_map")


def test_vmallocinfo_map_refuses_hashed_addresses_and_several_snapshots():
    for name in ("vmallocinfo-kptr0.txt", "vmallocinfo-kptr2.txt"):
        with pytest.raises(ValueError, match="kptr_restrict"):
            plots.vmallocinfo_map(vl.read_vmallocinfo(REAL / name))
    frames = vl.read_bundle(BUNDLE, formats=["vmallocinfo"])["vmallocinfo"]
    with pytest.raises(ValueError, match="3 bundle snapshots"):
        plots.vmallocinfo_map(frames)
    fig = plots.vmallocinfo_map(frames[frames["snapshot"] == 2], top=3)
    assert len(fig.axes[0].get_yticklabels()) == 5  # 3 callers, the others, unpurged


def test_snapshot_series_bundle(tmp_path):
    bundle = vl.read_bundle(BUNDLE, formats=["meminfo", "vmstat"])
    fig = plots.snapshot_series(bundle["meminfo"])
    ax = fig.axes[0]
    used = line(ax, "VmallocUsed")
    assert used.get_xdata().tolist() == [0.0, 1.0, 2.0]
    assert used.get_ydata().tolist() == [14332 * 1024, 14524 * 1024, 14492 * 1024]  # kB in /proc/meminfo
    assert line(ax, "PageTables").get_ydata().tolist() == [2000 * 1024, 2540 * 1024, 2628 * 1024]
    assert ax.get_ylabel() == "value (MiB)" and ax.get_xlabel() == "time since the bundle's start (s)"
    both = pd.concat([bundle["meminfo"], bundle["vmstat"]])
    fig = plots.snapshot_series(both, ["PageTables", "nr_page_table_pages"])
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "value (pages)"
    assert line(fig.axes[1], "nr_page_table_pages").get_ydata().tolist() == [500, 635, 657]
    with pytest.raises(ValueError, match="no field 'Vmalloc'"):
        plots.snapshot_series(bundle["meminfo"], ["Vmalloc"])
    assert_texts_clear(fig)
    saved(fig, tmp_path, "snapshot_series")


@pytest.mark.parametrize(
    ("source", "count"),
    [("allocinfo-64threads.txt", 64), ("64=notes.txt", 64), ("free-m-before.txt", 0),
     ("run-nr_threads=128.txt", 128), ("a-256-threads.txt", 256), ("free_8thread.txt", 8)],
)  # fmt: skip
def test_thread_counts_of_sources(source, count):
    assert _threads(source)[0] == count


def test_thread_count_missing():
    with pytest.raises(ValueError, match="no thread count; give it as N=FILE"):
        _threads(str(SEED / "perf-report-6.7.txt"))
    # what is wrong with the source comes first: it was "no thread count" for each of these
    with pytest.raises(FileNotFoundError, match="nosuch.txt"):
        _threads("nosuch.txt")
    with pytest.raises(ValueError, match="is a folder"):
        _threads(str(SEED))
    with pytest.raises(ValueError, match="the thread count 'x' of N=FILE is not a whole number"):
        _threads(f"x={SEED / 'allocinfo-64threads.txt'}")


def test_registry_draws_every_figure_from_files_and_bundles():
    sources = {
        "pagetable_growth": [str(SEED / f"allocinfo-{n}threads.txt") for n in (64, 128, 256)],
        "free_used": [str(SEED / f"free-m-{n}.txt") for n in ("before", "64threads", "256threads")]
        + [str(SEED / "allocinfo-64threads.txt"), f"256={SEED / 'allocinfo-256threads.txt'}"],
        "profile_comparison": [str(SEED / "perf-report-6.7.txt"), str(SEED / "perf-report-vmap-nodes.txt")],
        "trace_footprint": [str(BUNDLE)],
        "vmalloc_map": [str(TRACE)],
        "vmallocinfo_map": [str(BUNDLE)],
        "snapshot_series": [str(BUNDLE)],
        "drain_stall": [str(REAL / "drain-stall-trace-qemu-2cpu.txt.gz")],
        "call_durations": [str(p) for p in sorted((REAL / "drain-trace-qemu-8cpu").glob("run*.txt.gz"))],
    }
    # the figures of data files; those drawn from sweep tables are tested in tests/test_report.py, the
    # simulated space map and the replay in tests/test_plots_space.py, the measured chains in
    # tests/analysis/test_measured_chains.py
    sweep_figures = {"lock_wait_share", "rerun_plateau", "spin_share_vs_threads", "throughput_vs_threads",
                     "sim_space_map", "replay_comparison", "measured_vs_model"}  # fmt: skip
    assert set(sources) | sweep_figures == set(FIGURES)
    figs = {name: draw(name, src, PlotOptions(unit="m" if name == "free_used" else None))
            for name, src in sources.items()}  # fmt: skip
    assert line(figs["pagetable_growth"].axes[0], "measured").get_ydata().tolist() == list(PUBLISHED.values())
    growth_ax = figs["free_used"].axes[1]
    heights = [b.get_height() for c in growth_ax.containers for b in c]
    assert heights == [481 * MIB, 5805 * MIB, PUBLISHED[64], PUBLISHED[256]]
    assert [t.get_text() for t in figs["profile_comparison"].legends[0].get_texts()] == [
        "perf-report-6.7", "perf-report-vmap-nodes"]  # fmt: skip
    # the bundle's whole trace (503 allocations), its PTE pages as pagetable_footprint counts them
    pte = line(figs["trace_footprint"].axes[0], "PTE pages").get_ydata()
    trace = vl.read_bundle(BUNDLE, formats=["vmalloc_trace"])["vmalloc_trace"]
    assert (trace["event"] == "alloc_vmap_area").sum() == 503
    assert pte.tolist() == vl.pagetable_footprint(trace)["pte_pages"].tolist() and pte[-1] == 16
    assert "(snapshot 2)" in figs["vmallocinfo_map"]._suptitle.get_text()
    assert line(figs["snapshot_series"].axes[0], "VmallocUsed").get_ydata()[0] == 14332 * 1024
    backlog, runs = figs["drain_stall"].axes
    assert max(line(backlog, "nr_lazy (lazily freed)").get_ydata()) == 460_038
    bars = {c.get_label(): [round(b.get_width(), 4) for b in c] for c in runs.containers}
    assert bars == {"request waiting (not started)": [0.0035, 0.3005, 0.0103], "running": [0.0949, 0.0103, 0.0035],
                    "preempted, still owning the work": [0.3121, 0.0124]}  # fmt: skip
    assert "300.5 ms" in runs.get_title()
    flush, purge = figs["call_durations"].axes
    assert (flush.get_title(), purge.get_title()) == ("flush_tlb_kernel_range", "purge_vmap_node")
    curves = [ln for ln in flush.get_lines() if ln.get_label().startswith("run")]
    assert [ln.get_label().split(":")[0] for ln in curves] == ["run1-threads8", "run2-threads16", "run3-threads32",
                                                                "run4-threads32"]  # fmt: skip
    assert len(curves[0].get_xdata()) == 421 and curves[0].get_ydata()[-1] == 1.0  # every flush of run 1
    assert "median 16.4 ms, longest 53.6 ms" in curves[0].get_label()
    assert_texts_clear(figs["call_durations"])


def test_call_durations_needs_calls():
    with pytest.raises(ValueError, match="at least one"):
        plots.call_durations({})
    with pytest.raises(ValueError, match="needs the columns function, duration_s"):
        plots.call_durations({"a trace": vl.read_kprobe_trace(REAL / "drain-trace-qemu-8cpu" / "run1-threads8.txt.gz")})
    with pytest.raises(ValueError, match="takes one or more traces"):
        draw("call_durations", [])


def test_drain_stall_needs_frees_and_a_run():
    stall = REAL / "drain-stall-trace-qemu-2cpu.txt.gz"
    events, trace = vl.read_sched_trace(stall), vl.read_vmalloc_trace(stall)
    with pytest.raises(ValueError, match="no free_vmap_area_noflush events"):
        plots.drain_stall(events, trace[trace["event"] != "free_vmap_area_noflush"])
    with pytest.raises(ValueError, match="no execution of vmstat_update"):
        plots.drain_stall(events, trace, function="vmstat_update")
    # the report's long title is wrapped to the figure's width (it was cut off at both edges)
    title = ("a drain stall in a real 6.12 kernel (test_vmalloc, 8 threads, 2 vCPUs; vmalloc, workqueue and sched "
             "tracepoints)")
    fig = plots.drain_stall(events, trace, title=title)
    assert fig._suptitle.get_text().replace("\n", " ") == title and "\n" in fig._suptitle.get_text()
    assert_texts_clear(fig)


def test_registry_errors(tmp_path):
    with pytest.raises(ValueError, match="no figure 'nope'"):
        draw("nope", [])
    with pytest.raises(ValueError, match="takes no unit option"):
        draw("vmalloc_map", [str(TRACE)], PlotOptions(unit="m"))
    with pytest.raises(ValueError, match="two profiles"):
        draw("profile_comparison", [str(SEED / "perf-report-6.7.txt")])
    with pytest.raises(ValueError, match="free_used takes free and allocinfo"):
        draw("free_used", [f"64={SEED / 'perf-report-6.7.txt'}"])
    with pytest.raises(ValueError, match="bundle folder"):
        draw("snapshot_series", [str(REAL / "meminfo.txt")])
    # the real bundle without its trace: the manifest of snapshots 1 and 2 only
    shutil.copytree(BUNDLE, tmp_path / "bundle")
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    manifest["snapshots"] = manifest["snapshots"][1:]
    (tmp_path / "bundle" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="no vmalloc_trace"):
        draw("trace_footprint", [str(tmp_path / "bundle")])


def test_cli_plot(tmp_path):
    runner = CliRunner()
    out = tmp_path / "pt.svg"
    args = ["plot", "pagetable_growth", "--published", PT, "--out", str(out)]
    for n in (64, 128, 256):
        args += ["--from", str(SEED / f"allocinfo-{n}threads.txt")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{out}: pagetable_growth"
    assert f"published ({PT})" in out.read_text()
    help_text = runner.invoke(app, ["plot", "--help"], terminal_width=200).output
    assert all(f"{name}:" in help_text for name in FIGURES)


def test_cli_plot_errors(tmp_path):
    runner = CliRunner()
    report = str(SEED / "perf-report-6.7.txt")
    bad = runner.invoke(app, ["plot", "pagetable_growth", "--from", report, "--out", str(tmp_path / "x.png")])
    assert bad.exit_code == 2 and "no thread count" in bad.output
    twice = [f"--from=64={SEED / f'allocinfo-{n}threads.txt'}" for n in (64, 128)]  # the second hid the first
    bad = runner.invoke(app, ["plot", "pagetable_growth", *twice, "--out", str(tmp_path / "x.png")])
    assert bad.exit_code == 2 and "a second listing for 64 threads" in bad.output
    wrong = runner.invoke(app, ["plot", "vmalloc_map", "--from", str(TRACE), "--out", str(tmp_path / "x.pdf")])
    assert wrong.exit_code == 2 and ".png or .svg" in wrong.output
    unknown = runner.invoke(app, ["plot", "nope", "--from", str(TRACE)])
    assert unknown.exit_code == 2 and "pagetable_growth" in unknown.output
    assert not list(tmp_path.iterdir())
    # a library warning comes out as one line naming the command-line option, not as Python's two
    free = [f"--from={SEED / f'free-m-{n}.txt'}" for n in ("before", "64threads")]
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as outside pytest, which turns warnings into errors
        warned = runner.invoke(app, ["plot", "free_used", *free, "--out", str(tmp_path / "f.png")])
    assert warned.exit_code == 0 and "vmaplab: FreeUnitWarning: " in warned.output and "--unit" in warned.output
    assert "warnings.warn" not in warned.output and "figures.py" not in warned.output
