"""Every notebook in notebooks/ runs from a fresh kernel (python3) on the shipped data, and writes what it
should: notebook 03's figures and tables are checked against the library and FlameGraph's own output."""

import gzip
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

import vmaplab as vl

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
REAL = ROOT / "data" / "real"
SEED = ROOT / "data" / "seed"
PNG = b"\x89PNG\r\n\x1a\n"


def _parameters_cell(nb) -> int:
    return next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.get("metadata", {}).get("tags", []))


def run(path: Path, **parameters) -> nbformat.NotebookNode:
    """Execute the notebook in its own folder, with ``parameters`` set in a cell after its
    ``parameters`` cell (as papermill injects them)."""
    nb = nbformat.read(path, as_version=4)
    assigns = "\n".join(f"{name} = {value}" for name, value in parameters.items())
    nb.cells.insert(_parameters_cell(nb) + 1, nbformat.v4.new_code_cell(assigns))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_is_committed_clean_and_paired(path):
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)  # outputs stripped
    first = code[0]
    assert "parameters" in first.metadata.get("tags", [])  # the first code cell holds the parameters
    assert "DATA_DIR" in first.source
    assert (NOTEBOOKS / f"{path.stem}.py").is_file()  # the reviewed source


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_matches_its_source(path):
    jupytext = pytest.importorskip("jupytext")  # in the test extra; a bare install skips this check
    source = jupytext.read(NOTEBOOKS / f"{path.stem}.py")
    paired = nbformat.read(path, as_version=4)
    assert [(c.cell_type, c.source) for c in source.cells] == [(c.cell_type, c.source) for c in paired.cells]


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    writes = "OUT_DIR" in nb.cells[_parameters_cell(nb)].source
    nb = run(path, **({"OUT_DIR": f"Path({str(tmp_path)!r})"} if writes else {}))
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        for out in cell.outputs:  # no warning spilled into an output (tqdm's IProgress one, pandas', ours)
            assert not (out.output_type == "stream" and "Warning" in out.text), (cell.source[:80], out.text[:300])
        if cell.source.startswith("save(") or "\nsave(" in cell.source:  # a figure saved is also shown
            assert any("image/png" in out.get("data", {}) for out in cell.outputs), cell.source[:80]
    if path.stem in CHECKS:
        CHECKS[path.stem](tmp_path)


def check_03_your_data(tmp_path: Path) -> None:
    written = {p.name for p in tmp_path.iterdir()}
    figures = {"snapshot_series", "vmallocinfo_map", "pagetable_growth", "free_used", "profile_comparison",
               "trace_footprint", "vmalloc_map", "call_durations"}  # fmt: skip
    tables = {"meminfo_diff", "vmallocinfo_diff", "allocinfo_diff", "profile_comparison", "stacks", "footprint",
              "probe_calls"}
    assert written == {f"{f}.png" for f in figures} | {f"{t}.csv" for t in tables}  # FAST: no SVG
    for name in figures:
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data[:8] == PNG and len(data) > 20_000, name

    # the snapshot diff is the library's, on the bundle's first and last meminfo
    meminfo = vl.read_bundle(REAL / "bundle-vm-2cpu-churn", formats=["meminfo"])["meminfo"]
    expected = vl.diff(meminfo[meminfo["snapshot"] == 0], meminfo[meminfo["snapshot"] == 2])
    got = pd.read_csv(tmp_path / "meminfo_diff.csv", keep_default_na=False, na_values=[""])
    assert got["key"].tolist() == expected["key"].tolist()
    assert got["delta_value"].tolist() == expected["delta_value"].tolist()

    # the lazy backlog of the bundle's vmallocinfo grew by 493 areas (README, the vmallocinfo diff)
    lazy = pd.read_csv(tmp_path / "vmallocinfo_diff.csv").set_index("key").loc["(unpurged vm_area)"]
    assert (lazy["before_areas"], lazy["after_areas"]) == (2130, 2623)

    # the paste's 64- and 256-thread listings: pagetable_alloc grew by the published 5.36GiB - 350MiB
    growth = pd.read_csv(tmp_path / "allocinfo_diff.csv").iloc[0]
    assert growth["key"] == "include/linux/mm.h func:pagetable_alloc" and growth["delta_bytes"] == 5388254577

    # the folded stacks are stackcollapse-perf.pl's output on the same perf script
    stacks = pd.read_csv(tmp_path / "stacks.csv", keep_default_na=False)
    with gzip.open(REAL / "perf-script-churn-collapsed.txt.gz", "rt") as f:
        reference = [line.rstrip("\n").rsplit(" ", 1) for line in f]
    assert stacks["stack"].tolist() == [s for s, _ in reference]
    assert stacks["count"].tolist() == [int(c) for _, c in reference]

    footprint = pd.read_csv(tmp_path / "footprint.csv")
    expected = vl.pagetable_footprint(REAL / "vmalloc-trace-perf-thread-churn.txt.gz")
    assert footprint["pte_pages"].tolist() == expected["pte_pages"].tolist()
    assert footprint["pagetable_bytes"].iloc[-1] == 85 * 4096  # 84 PTE pages and 1 PMD page

    compared = pd.read_csv(tmp_path / "profile_comparison.csv", keep_default_na=False, na_values=[""])
    assert compared["symbol"].iloc[0] == "do_syscall_64" and not compared["symbol"].str.startswith("0x").any()

    # the probed calls: every TLB flush of the 8-vCPU guest's traces, timed entry to return
    probes = pd.read_csv(tmp_path / "probe_calls.csv").set_index(["trace", "function"])
    assert probes.loc[("run1-threads8", "flush_tlb_kernel_range"), "calls"] == 421
    assert probes.loc[("run3-threads32", "flush_tlb_kernel_range"), "calls"] == 557
    assert 0.015 < probes.loc[("run1-threads8", "flush_tlb_kernel_range"), "median_s"] < 0.017  # seconds


def _figures_written(tmp_path: Path, figures: set[str], tables: set[str]) -> None:
    written = {p.name for p in tmp_path.iterdir()}
    assert written == {f"{f}.{ext}" for f in figures for ext in ("png", "svg")} | {f"{t}.csv" for t in tables}
    for name in figures:
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data[:8] == PNG and len(data) > 20_000, name


def check_01_pagetable_alloc(tmp_path: Path) -> None:
    _figures_written(tmp_path, {"published_free_used", "pagetable_vs_published", "rerun_plateau", "va_timeline",
                                "knobs_effect", "trace_footprint", "space_map", "replay_comparison",
                                "measured_vs_model", "drain_stall"},
                     {"pagetable_chain", "timeline", "knobs", "published_spans", "footprint", "space_maps",
                     "replay_summary", "measured_chains", "model_chains", "growth_summary", "drain_runs"})  # fmt: skip
    growth = pd.read_csv(tmp_path / "growth_summary.csv")
    assert growth["source"].str.startswith("measured").sum() == 1  # the real kernel's chains in the answer
    chain = pd.read_csv(tmp_path / "pagetable_chain.csv")
    assert set(chain["cpus"]) == {4} and chain["threads"].tolist() == [4, 8, 16, 16] * 2  # the quick scale
    for _, part in chain.groupby("design"):
        assert part["pagetable_bytes"].is_monotonic_increasing  # never freed on one machine
    timeline = pd.read_csv(tmp_path / "timeline.csv")
    assert set(timeline["lazy_max_pages"]) == {3 * 8192}  # lazy_max_pages of 4 CPUs: fls(4) x 32 MiB
    assert timeline["pagetable_bytes"].is_monotonic_increasing
    knobs = pd.read_csv(tmp_path / "knobs.csv")
    assert knobs["variant"].iloc[0] == "6.9 vmap nodes, kernel defaults" and len(knobs) == 9
    assert knobs.loc[knobs["variant"].str.startswith("6.7"), "pooled_pages_max"].item() == 0  # no pools in 6.7
    footprint = pd.read_csv(tmp_path / "footprint.csv")
    assert footprint["pagetable_bytes"].iloc[-1] == 85 * 4096  # as notebook 03: 84 PTE pages and 1 PMD page
    drains = pd.read_csv(tmp_path / "drain_runs.csv")
    assert drains["wait_s"].max() == pytest.approx(0.30055) and drains["preempted_after"].iloc[0]  # the real stall
    maps = pd.read_csv(tmp_path / "space_maps.csv")
    pte = maps.groupby(["design", "snapshot"], sort=False)["pte_pages"].sum().to_numpy()
    assert (pte * 4096).tolist() == chain["pte_bytes"].tolist()  # a map after every run of the chain
    replayed = pd.read_csv(tmp_path / "replay_summary.csv").set_index("measure")
    assert int(replayed.loc["allocations", "kernel"]) == 7629 and int(replayed.loc["purges", "kernel"]) == 2
    spans = pd.read_csv(tmp_path / "published_spans.csv")
    assert spans["pagetable_pages"].tolist() == [89656, 315655, 1405072]  # the published listings


def check_02_lock_contention(tmp_path: Path) -> None:
    _figures_written(tmp_path, {"published_profiles", "simulated_profiles", "spin_share_vs_threads",
                                "throughput_vs_threads", "lock_wait_share", "throughput_vs_cpus"},
                     {"published_profiles", "simulated_profiles", "contention_sweep", "cpu_sweep"})  # fmt: skip
    published = pd.read_csv(tmp_path / "published_profiles.csv").set_index("symbol")
    expected = vl.compare_profiles(vl.read_perf_report(SEED / "perf-report-6.7.txt"),
                                   vl.read_perf_report(SEED / "perf-report-vmap-nodes.txt")).set_index("symbol")  # fmt: skip
    assert published.index.tolist() == expected.index.tolist()
    assert published.loc["native_queued_spin_lock_slowpath", "self_pct_a"] == 93.07
    simulated = pd.read_csv(tmp_path / "simulated_profiles.csv").set_index("symbol")
    assert {"native_queued_spin_lock_slowpath", "alloc_vmap_area", "insert_vmap_area"} <= set(simulated.index)
    sweep = pd.read_csv(tmp_path / "contention_sweep.csv")
    assert sorted(set(sweep["threads"])) == [4, 8, 16] and set(sweep["tests"]) == {7}
    spin = sweep[[c for c in sweep.columns if c.startswith("spin_")]].sum(axis=1)
    assert ((spin - sweep["lock_spin_share"]).abs() < 1e-9).all()  # the per-lock shares add up
    cpus = pd.read_csv(tmp_path / "cpu_sweep.csv")
    assert (cpus["threads"] == cpus["cpus"]).all()


# notebook -> check of the files it wrote into OUT_DIR
CHECKS = {"01_pagetable_alloc": check_01_pagetable_alloc, "02_lock_contention": check_02_lock_contention,
          "03_your_data": check_03_your_data}  # fmt: skip
