"""The simulated space map and the replay figure: what they draw from real runs and the real recording,
and how `vmaplab plot` loads them (a simulated bundle; a trace or a collect bundle)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from vmaplab import plots  # noqa: E402
from vmaplab.figures import draw  # noqa: E402
from vmaplab.sim import emit  # noqa: E402
from vmaplab.sim.replay import replay, replay_bundle  # noqa: E402

from figure_checks import assert_texts_clear  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "data" / "real"
BUNDLE = REAL / "bundle-vm-2cpu-churn"
TRACE = REAL / "vmalloc-trace-perf-thread-churn.txt.gz"
INFO = REAL / "vmallocinfo-kptr1.txt"
MIB = 2**20


@pytest.fixture(scope="module")
def replayed():
    return replay(TRACE, vmallocinfo=INFO, cpus=2)


def _stairs(ax, label):
    return next(p for p in ax.patches if p.get_label() == label)


def test_run_labels_mark_reruns():
    assert plots.run_labels([4, 8, 8]) == ["after run 1: 4 threads", "after run 2: 8 threads",
                                           "after run 3: 8 threads (rerun)"]  # fmt: skip


def test_space_map_panels_draw_each_runs_map(chain, tmp_path):
    maps = dict(zip(plots.run_labels([4, 8, 8]), (r.space_map for r in chain)))
    fig = plots.sim_space_map(maps, scale="4 CPUs")
    axes = fig.axes
    assert len(axes) == 3 and axes[-1].get_xscale() == "symlog"
    assert "GiB above VMALLOC_START" in axes[-1].get_xlabel() and "MiB per 1 GiB" in axes[0].get_ylabel()
    for ax, (label, sm), run in zip(axes, maps.items(), chain):
        title = ax.get_title(loc="left")
        assert title.startswith(label) and f"{int(sm['pte_pages'].sum()):,} PTE" in title
        cover = _stairs(ax, "address space with a PTE page (2 MiB each; never freed)")
        edges = cover.get_data().edges
        assert edges[0] == 0 and edges[-1] == len(sm) and len(edges) < len(sm) / 10  # GiB; empty runs merged
        step = np.searchsorted(edges, sm["offset"].to_numpy() / 2**30, side="right") - 1  # the step of each bin
        values = cover.get_data().values[step]
        expect = np.maximum(sm["pte_pages"].to_numpy() * 2.0, values.min())
        assert np.allclose(values, expect)  # 2 MiB of address space per PTE page
        lazy = _stairs(ax, "lazily freed, not yet purged").get_data().values[step]
        used = (sm["busy_pages"] + sm["lazy_pages"]).to_numpy() * 4096 / MIB
        assert np.allclose(lazy[used > 0], used[used > 0])  # stacked on the busy pages
        assert run.pagetable_bytes == (sm["pte_pages"].sum() + sm["pmd_pages"].sum()) * 4096
    assert "after each run" in fig._suptitle.get_text() and "[4 CPUs]" in fig._suptitle.get_text()
    assert_texts_clear(fig)  # the long panel titles fit
    plots.save_figure(fig, tmp_path, "space_map")
    assert (tmp_path / "space_map.svg").stat().st_size > 0
    with pytest.raises(ValueError, match="at least one"):
        plots.sim_space_map({})
    with pytest.raises(ValueError, match="missing"):
        plots.sim_space_map({"x": chain[0].space_map.drop(columns="lazy_pages")})


def test_space_map_from_a_simulated_bundle(chain, tmp_path):
    emit.write_bundle(list(chain), tmp_path / "b")
    fig = draw("sim_space_map", [str(tmp_path / "b")])
    direct = plots.sim_space_map(dict(zip(plots.run_labels([4, 8, 8]), (r.space_map for r in chain))))
    assert [a.get_title(loc="left") for a in fig.axes] == [a.get_title(loc="left") for a in direct.axes]
    with pytest.raises(ValueError, match="written by Run.write_bundle"):
        draw("sim_space_map", [str(BUNDLE)])  # a collected bundle has no space map


def test_replay_comparison_kernel_beside_model(replayed):
    fig = plots.replay_comparison(replayed)
    top, low = fig.axes[:2]
    lines = {line.get_label(): line for line in top.get_lines()}
    assert lines["kernel (traced)"].get_ydata()[-1] == replayed.metrics["kernel_high_water"]
    assert lines["model (replayed)"].get_ydata()[-1] == replayed.metrics["model_high_water"]
    assert "VMALLOC_START (MiB)" in top.get_ylabel()
    pte = {line.get_label().split(":")[0]: line.get_ydata() for line in low.get_lines() if ":" in line.get_label()}
    assert pte["kernel (traced)"][-1] == 84  # as pagetable_footprint of the recording counts
    base = replayed.config["vmalloc_start"]
    regions = set()
    for addr, size in zip(replayed.allocs["model_addr"].dropna(), replayed.allocs.loc[
            replayed.allocs["model_addr"].notna(), "size"]):  # fmt: skip
        regions.update(range((int(addr) - base) >> 21, ((int(addr) - base + int(size) - 1) >> 21) + 1))
    assert pte["model (replayed)"][-1] == len(regions)
    purges = sorted(line.get_xdata()[0] for line in top.get_lines() if line.get_xdata()[0] == line.get_xdata()[-1])
    t0 = replayed.allocs["time"].min()
    assert np.allclose(purges, sorted(replayed.purges["time"] - t0))  # the kernel's two purges and the model's two
    assert len(purges) == 4
    assert "7,629 allocations" in fig._suptitle.get_text()
    assert "through the 6.9 vmap nodes model" in fig._suptitle.get_text()
    assert_texts_clear(fig)


def test_replay_comparison_from_a_bundle():
    fig = draw("replay_comparison", [str(BUNDLE)])
    allocs = replay_bundle(BUNDLE).metrics["allocs"]
    assert f"{allocs:,} allocations" in fig._suptitle.get_text()
    assert all(float(t).is_integer() for t in fig.axes[1].get_yticks())  # whole PTE pages: it showed 2.5, 7.5
    with pytest.raises(ValueError, match="brings its own vmallocinfo"):
        draw("replay_comparison", [str(BUNDLE), str(INFO)])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 3)), min_size=1, max_size=30))
def test_regions_seen_counts_distinct_regions(ranges):
    first = np.array([a for a, _ in ranges], np.int64)
    last = first + np.array([n for _, n in ranges], np.int64)
    seen, known = [], set()
    for a, b in zip(first.tolist(), last.tolist()):
        known.update(range(a, b + 1))
        seen.append(len(known))
    assert plots._regions_seen(first, last).tolist() == seen
