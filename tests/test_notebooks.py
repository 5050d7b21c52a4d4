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
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
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
    jupytext = pytest.importorskip("jupytext")  # a development tool: CI without it skips this check
    source = jupytext.read(NOTEBOOKS / f"{path.stem}.py")
    paired = nbformat.read(path, as_version=4)
    assert [(c.cell_type, c.source) for c in source.cells] == [(c.cell_type, c.source) for c in paired.cells]


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    writes = "OUT_DIR" in nb.cells[_parameters_cell(nb)].source
    run(path, **({"OUT_DIR": f"Path({str(tmp_path)!r})"} if writes else {}))
    if path.stem in CHECKS:
        CHECKS[path.stem](tmp_path)


def check_03_your_data(tmp_path: Path) -> None:
    written = {p.name for p in tmp_path.iterdir()}
    figures = {"snapshot_series", "vmallocinfo_map", "pagetable_growth", "free_used", "profile_comparison",
               "trace_footprint", "vmalloc_map"}  # fmt: skip
    tables = {"meminfo_diff", "allocinfo_diff", "profile_comparison", "stacks", "footprint"}
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


# notebook -> check of the files it wrote into OUT_DIR
CHECKS = {"03_your_data": check_03_your_data}
