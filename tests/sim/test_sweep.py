"""vmaplab.sim.sweep: grids of runs as one frame, chains on one machine, parallel and resumable."""

from __future__ import annotations

import re

import dask
import pandas as pd
import pytest

import vmaplab as vl
from vmaplab.sim import sweep as sweep_module
from vmaplab.sim.sweep import RESULT_COLUMNS, point_row, sweep

SMALL = dict(cpus=4, tests=7, loops=30, progress=False)
_SIMULATE = sweep_module.simulate


@pytest.fixture(scope="module")
def reference():
    """The 2 x 2 grid run in this process."""
    return sweep([4, 8], ["global", "nodes"], workers=1, **SMALL)


def test_rows_are_the_chained_runs(reference):
    assert reference[["design", "threads"]].values.tolist() == [["global", 4], ["global", 8], ["nodes", 4], ["nodes", 8]]
    assert reference.design.dtype == "string"
    for col, dtype in RESULT_COLUMNS.items():
        assert reference[col].dtype == dtype, col
    first = vl.simulate("nodes", threads=4, cpus=4, tests=7, loops=30, seed=0)
    second = vl.simulate("nodes", threads=8, tests=7, loops=30, seed=0, machine=first.machine)
    rows = reference[reference.design == "nodes"].reset_index(drop=True)
    for i, run in enumerate((first, second)):
        want = point_row(run, {})
        for col in RESULT_COLUMNS:
            assert rows.loc[i, col] == pytest.approx(want[col]), col
    assert rows.loc[1, "pagetable_bytes"] == second.pagetable_bytes
    assert rows.loc[1, "lazy_pages_max"] == second.timeline.lazy_pages.max()
    spins = rows.loc[0, [c for c in RESULT_COLUMNS if c.startswith("spin_")]].sum()
    assert spins == pytest.approx(rows.loc[0, "lock_spin_share"])


def test_independent_points_run_on_fresh_machines(reference):
    df = sweep([8], ["nodes"], sequential=False, workers=1, **SMALL)
    fresh = vl.simulate("nodes", threads=8, cpus=4, tests=7, loops=30, seed=0)
    assert df.loc[0, "pagetable_bytes"] == fresh.pagetable_bytes
    assert df.loc[0, "wall_seconds"] == fresh.wall_seconds
    chained = reference[(reference.design == "nodes") & (reference.threads == 8)].iloc[0]
    assert chained.wall_seconds != fresh.wall_seconds  # the machine before it changes the run


def test_local_processes_give_the_same_frame(reference):
    pd.testing.assert_frame_equal(sweep([4, 8], ["global", "nodes"], workers=2, **SMALL), reference)


def test_dask_client_and_scheduler_address_give_the_same_frame(reference):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as cl:
        with distributed.Client(cl) as client:
            pd.testing.assert_frame_equal(sweep([4, 8], ["global", "nodes"], client=client, **SMALL), reference)
        by_address = sweep([4, 8], ["global", "nodes"], client=cl.scheduler_address, **SMALL)
    pd.testing.assert_frame_equal(by_address, reference)


class _Interrupt(Exception):
    pass


def _counting(monkeypatch, fail_after: int | None = None) -> list:
    calls = []

    def counted(*args, **kwargs):
        if fail_after is not None and len(calls) == fail_after:
            raise _Interrupt
        calls.append((kwargs["design"], kwargs["threads"]))
        return _SIMULATE(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "simulate", counted)
    return calls


def test_interrupted_sweep_resumes_without_recomputing(reference, tmp_path, monkeypatch):
    calls = _counting(monkeypatch, fail_after=3)
    with pytest.raises(_Interrupt):
        sweep([4, 8], ["global", "nodes"], workers=1, cache_dir=tmp_path, **SMALL)
    assert calls == [("global", 4), ("global", 8), ("nodes", 4)]
    assert len(list(tmp_path.glob("*.parquet"))) == 3
    assert len(list(tmp_path.glob("*.machine.pkl.gz"))) == 2  # each chain's latest machine only

    calls = _counting(monkeypatch)
    resumed = sweep([4, 8], ["global", "nodes"], workers=1, cache_dir=tmp_path, **SMALL)
    assert calls == [("nodes", 8)]  # continued on the saved machine of nodes/4
    pd.testing.assert_frame_equal(resumed, reference)

    calls = _counting(monkeypatch)
    again = sweep([4, 8], ["global", "nodes"], workers=1, cache_dir=tmp_path, **SMALL)
    assert calls == []
    pd.testing.assert_frame_equal(again, reference)
    # a longer chain reuses the cached prefix; another loop count is another point
    longer = sweep([4, 8, 12], ["nodes"], workers=1, cache_dir=tmp_path, **SMALL)
    assert calls == [("nodes", 12)]
    pd.testing.assert_frame_equal(longer.iloc[:2], reference.iloc[2:].reset_index(drop=True))
    sweep([4], ["nodes"], workers=1, cache_dir=tmp_path, **{**SMALL, "loops": 31})
    assert calls == [("nodes", 12), ("nodes", 4)]


def test_knobs_reach_the_machine_and_the_frame():
    df = sweep([4], ["nodes"], workers=1, drain_priority="high", pool_cap="lazy_max", **SMALL)
    assert df.loc[0, "drain_priority"] == "high" and df.loc[0, "pool_cap"] == "lazy_max"
    run = vl.simulate("nodes", threads=4, cpus=4, tests=7, loops=30, drain_priority="high", pool_cap="lazy_max")
    assert df.loc[0, "wall_seconds"] == run.wall_seconds


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one"):
        sweep([], ["nodes"], **SMALL)
    with pytest.raises(ValueError, match="designs"):
        sweep([4], ["hybrid"], **SMALL)
    with pytest.raises(TypeError, match="unknown knobs"):
        sweep([4], ["nodes"], lazy_pages=3, **SMALL)
    with pytest.raises(ValueError, match=r"threads must be integers >= 1, not \[-4\]"):
        sweep([4, -4], ["nodes"], **SMALL)
    with pytest.raises(ValueError, match=r"seeds must be integers >= 0, not \[-1\]"):
        sweep([4], ["nodes"], seeds=[-1], **SMALL)


def test_cli_sweep_writes_the_table(reference, tmp_path):
    from typer.testing import CliRunner

    from vmaplab.cli import app

    out = tmp_path / "results.csv"
    args = ["sweep", "--threads", "4,8", "--designs", "global,nodes", "--cpus", "4", "--tests", "7", "--loops", "30",
            "--out", str(out), "--cache", str(tmp_path / "cache"), "--workers", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 points" in result.output
    table = pd.read_csv(out)
    assert table.threads.tolist() == [4, 8, 4, 8]
    assert table.pagetable_bytes.tolist() == reference.pagetable_bytes.tolist()
    assert table.wall_seconds.tolist() == pytest.approx(reference.wall_seconds.tolist())
    assert len(list((tmp_path / "cache").glob("*.parquet"))) == 4
    bad = CliRunner().invoke(app, [*args[:-6], "--out", str(tmp_path / "r.txt")])
    assert bad.exit_code == 2 and ".csv or .parquet" in _unboxed(bad.output)
    bad = CliRunner().invoke(app, [*args[:-6], "--out", str(tmp_path / "no" / "r.csv")])  # before any point runs
    assert bad.exit_code == 2 and "does not exist" in _unboxed(bad.output)
    bad = CliRunner().invoke(app, ["sweep", "--threads", "4,x", "--out", str(out)])
    assert bad.exit_code == 2 and "comma-separated integers" in _unboxed(bad.output)
    bad = CliRunner().invoke(app, [*args[:-4], "--cache", str(out), "--workers", "1"])  # a file: was a traceback
    assert bad.exit_code == 2 and "is a file, not a folder" in _unboxed(bad.output)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):  # nothing listens on port 9
        bad = CliRunner().invoke(app, [*args[:-6], "--out", str(tmp_path / "s.csv"), "--scheduler", "127.0.0.1:9"])
    assert bad.exit_code == 2 and "\nvmaplab sweep: Timed out trying to connect to tcp://127.0.0.1:9" in bad.output


def _unboxed(text: str) -> str:
    """A CLI error as one line: rich draws it in a box and wraps it wherever the (temp) path ends."""
    return " ".join(re.sub("[\u2500-\u257f]", " ", text).split())


def test_cache_key_changes_with_the_result_columns(monkeypatch):
    # a cache written before run_index existed must not be read back as rows without it
    from vmaplab.sim import sweep as module

    point = {"design": "nodes", "threads": 4, "cpus": 4, "tests": 7, "loops": 30, "seed": 0}
    before = module._key(point, [])
    monkeypatch.delitem(module.RESULT_COLUMNS, "run_index")
    assert module._key(point, []) != before
