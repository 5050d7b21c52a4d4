"""test_vmalloc chains measured on a real kernel (data/real/test_vmalloc-qemu-*, see data/real/SOURCES.md:
Linux 6.12.117 in QEMU guests of 2, 8 and 16 vCPUs, stock and with each half of Rezki's draft fix) read
back run by run, and set beside the model's same chain."""

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import vmaplab as vl
from vmaplab import plots, report

from figure_checks import assert_texts_clear

CHAINS = Path(__file__).resolve().parents[2] / "data" / "real" / report.MEASURED_CHAINS
FIRST = CHAINS / "loops100k-1"


def eight_vcpu_chains(folder: str = report.MEASURED_CHAINS_8CPU):
    """The 8-vCPU chains of a data/real folder (stock by default), all at test_loop_count=10,000."""
    return report.measured_chains(10_000, chains=folder)


def test_first_chain_run_by_run():
    chain = report.measured_chain(FIRST)
    assert chain["run"].tolist() == [1, 2, 3, 4]
    assert chain["threads"].tolist() == [2, 4, 8, 8]  # workers named in each run's Summary lines
    assert set(chain["cpus"]) == {2} and set(chain["tests"]) == {127} and set(chain["loops"]) == {100_000}
    # allocinfo's __pte_alloc_kernel / __pmd_alloc calls after each run minus before the first (2 / 8)
    assert chain["pte_pages"].tolist() == [401, 745, 2169, 2169]
    assert chain["pmd_pages"].tolist() == [16, 16, 18, 18]
    assert chain["pagetable_bytes"].tolist() == [(p + m) * 4096 for p, m in zip(chain["pte_pages"], chain["pmd_pages"])]
    assert chain["seconds"].round(1).tolist() == [22.0, 46.2, 93.7, 94.5]  # uptime between the snapshots
    assert (chain.dtypes.drop("seconds") == "int64").all()


def test_the_real_kernel_grows_with_threads_and_varies_from_boot_to_boot():
    """Three boots of the same guest, the same chain: page tables grow with every larger thread count, but
    how much varies (2.0x to 5.4x for 4x the threads), and so does what the rerun adds (0 to 42 %)."""
    chains = report.measured_chains(100_000)
    pte = chains.groupby("capture")["pte_pages"].apply(list).to_dict()
    assert pte == {"loops100k-1": [401, 745, 2169, 2169], "loops100k-2": [648, 655, 1896, 1897],
                   "loops100k-3": [408, 548, 809, 1153]}  # fmt: skip
    for runs in pte.values():
        assert runs[0] < runs[1] < runs[2] <= runs[3]
    mean = chains.groupby("run")["pagetable_bytes"].mean()
    assert 3 < mean[3] / mean[1] < 4 and 0 < mean[4] / mean[3] - 1 < 0.1  # on average: ~linear, a small rerun


def test_the_published_loop_count_chain():
    chain = report.measured_chains(1_000_000)
    assert chain["capture"].unique().tolist() == ["loops1m"]
    assert chain["pte_pages"].tolist() == [593, 1024, 1590, 1749] and set(chain["pmd_pages"]) == {16}
    assert chain["seconds"].round().tolist() == [275, 572, 1123, 1454]


def test_measured_chains_stack_the_captures_at_one_loop_count():
    chains = report.measured_chains(100_000)
    assert chains.columns[0] == "capture" and chains["capture"].dtype == "string"
    assert chains.groupby("capture")["run"].apply(list).map(len).eq(4).all()
    with pytest.raises(ValueError, match="test_loop_count=7"):
        report.measured_chains(7)


def _copy(tmp_path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(FIRST, bundle)
    return bundle


def test_a_bundle_without_dmesg_is_refused(tmp_path):
    bundle = _copy(tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    for snap in manifest["snapshots"]:
        snap["files"].pop("test_vmalloc", None)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=f"{bundle}: a measured chain needs .* test_vmalloc"):
        report.measured_chain(bundle)


def test_allocinfo_without_the_call_sites_is_refused(tmp_path):
    """A listing without mm/memory.c's page-table sites (the pre-merge format, or lines cut away) cannot
    say how many page-table pages a run added."""
    bundle = _copy(tmp_path)
    path = bundle / "0002" / "allocinfo.gz"
    kept = [line for line in gzip.open(path, "rt") if "__pmd_alloc" not in line]
    with gzip.open(path, "wt") as f:
        f.writelines(kept)
    with pytest.raises(ValueError, match="__pte_alloc_kernel and __pmd_alloc"):
        report.measured_chain(bundle)


def test_model_chain_like_runs_the_same_settings():
    chain = report.measured_chain(FIRST)
    model = report.model_chain_like(chain, seeds=(0, 1), loops=200)
    assert model.groupby("seed")["threads"].apply(list).tolist() == [[2, 4, 8, 8]] * 2
    assert set(model["cpus"]) == {2} and set(model["tests"]) == {127} and set(model["loops"]) == {200}
    assert model.groupby("seed")["run"].apply(list).tolist() == [[1, 2, 3, 4]] * 2
    assert (model["pte_pages"] * 4096 == model["pte_bytes"]).all()
    for _seed, part in model.groupby("seed"):  # one machine per seed: page tables only grow
        assert part["pagetable_bytes"].is_monotonic_increasing


def test_measured_vs_model_figure():
    measured = report.measured_chains(100_000)
    model = pd.DataFrame({"design": "nodes", "seed": [0] * 4 + [1] * 4, "run": [1, 2, 3, 4] * 2,
                          "pagetable_bytes": [4, 8, 16, 16, 2, 6, 12, 14]})  # fmt: skip
    model["pagetable_bytes"] *= 1 << 20
    fig = plots.measured_vs_model(measured, model, source="a real kernel", scale="2 CPUs")
    ax = fig.axes[0]
    bars = [p.get_height() for p in ax.patches]
    real = measured.groupby("run")["pagetable_bytes"].mean().tolist()
    assert bars == real + [3 << 20, 7 << 20, 14 << 20, 15 << 20]  # the model: the mean over its seeds
    texts = [t.get_text() for t in ax.texts]
    assert "3.00MiB\nx1.00" in texts and "15.0MiB\nx5.00" in texts  # size, and growth over run 1
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "run 4\n8 threads (rerun)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("measured: a real kernel") and "mean of 2 seeds" in legend[1]
    assert_texts_clear(fig)
    with pytest.raises(ValueError, match="needs the columns"):
        plots.measured_vs_model(measured, model.drop(columns="seed"), source="x")


def test_vmaplab_plot_draws_measured_vs_model(tmp_path):
    from vmaplab.figures import draw

    model = pd.DataFrame({"design": "nodes", "seed": 0, "run": [1, 2, 3, 4],
                          "pagetable_bytes": [1 << 20, 2 << 20, 4 << 20, 4 << 20]})  # fmt: skip
    model.to_csv(tmp_path / "model.csv", index=False)
    fig = draw("measured_vs_model", [str(FIRST), str(CHAINS / "loops100k-2"), str(tmp_path / "model.csv")])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0] == "measured: Linux 6.12.117 on qemu-tcg-guest, 2 CPUs, mean of 2 chains"
    assert "test_loop_count=100,000" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="one or more bundles"):
        draw("measured_vs_model", [str(tmp_path / "model.csv")])


def test_eight_vcpus_on_two_cores_every_flush_late():
    """data/real/test_vmalloc-qemu-8cpu: 8 vCPUs on the 2 host cores, so every TLB flush of the drain waits
    ~16 ms for descheduled vCPUs (tests/analysis/test_probe_calls.py). The page tables still grow no
    faster than the threads over 8 -> 32 (3.1x to 3.7x for 4x), and the rerun adds at most 1.7 %."""
    chains = eight_vcpu_chains()
    assert set(chains["cpus"]) == {8} and set(chains["tests"]) == {127}
    assert set(chains.groupby("capture")["threads"].apply(tuple)) == {(8, 16, 32, 32)}
    pte = chains.groupby("capture")["pte_pages"].apply(list).to_dict()
    assert pte == {"loops10k-1": [1339, 1757, 4252, 4266], "loops10k-2": [1167, 1668, 4352, 4352],
                   "loops10k-3": [1130, 1881, 3510, 3571]}  # fmt: skip
    for runs in pte.values():
        assert runs[0] < runs[1] < runs[2] <= runs[3] and 3.1 < runs[2] / runs[0] < 3.8
        assert runs[3] / runs[2] - 1 < 0.018
    seconds = chains.groupby("run")["seconds"].mean().round().tolist()
    assert seconds == [20, 42, 90, 91]  # TCG: ~17x the model's native costs (docs/calibration.md, ninth pass)


@pytest.fixture(scope="module")
def eight_vcpu_model():
    """The first run of the 8-vCPU chains (8 threads on 8 CPUs, loops=10,000) in the model, seeds 0-2: at
    report.GUEST_8CPU and with every cost x17; and the real first runs' mean PTE pages."""
    from vmaplab import simulate
    from vmaplab.sim.costs import CostModel

    real = eight_vcpu_chains()
    kw = dict(threads=8, cpus=8, tests=127, loops=10_000)
    runs = [(simulate("nodes", seed=seed, **kw, **report.GUEST_8CPU.knobs()),
             simulate("nodes", seed=seed, costs=CostModel().scaled(report.GUEST_8CPU.cost_factor), **kw))
            for seed in (0, 1, 2)]  # fmt: skip
    return runs, real.loc[real["run"] == 1, "pte_pages"].mean()


def test_the_model_at_the_eight_vcpu_guests_costs(eight_vcpu_model):
    """The first run of those chains (8 threads on 8 vCPUs: 1,130 to 1,339 PTE pages over three boots) in the
    model at report.GUEST_8CPU — kernel code 17x slower than the native calibration (its run times), the
    purge per area and the late flushes as the guest's kprobes timed them — lands within 1.5x of the real
    mean for every seed (1.07-1.20x). Every cost x17 instead, the purge's too, gives 1.10-1.40x the guest
    model's: in the emulated guest the drain's per-area purge does not slow down like the rest
    (docs/calibration.md, seventh to tenth passes; figures of the twenty-third)."""
    runs, real_mean = eight_vcpu_model
    for guest, uniform in runs:
        pte = guest.pagetable_bytes_by_level["pte"] / 4096
        assert 1.0 < pte / real_mean < 1.5
        assert uniform.pagetable_bytes_by_level["pte"] / 4096 > 1.1 * pte


@pytest.mark.xfail(strict=True, reason="the x17 guest factor was fitted with the flat merge cost (docs/calibration.md)")
def test_the_eight_vcpu_guest_factor_fits_its_run_times(eight_vcpu_model):
    # The guest's first runs took 19.2-20.3 s; x17 fitted the chain's total run time with the flat merge
    # cost (runs 1-3: the model 145 s, the guest 152 s on the means), and every cost x17 gave 1.27-1.66x
    # the real PTE pages. With merges charged by the free tree's depth (twenty-third pass) the model's
    # first runs take 23.7-25.4 s (runs 1-3: 161 s, seed 0) and x17 gives 1.18-1.68x: not refitted yet.
    runs, real_mean = eight_vcpu_model
    for guest, uniform in runs:
        assert 19 < guest.wall_seconds < 25
        assert uniform.pagetable_bytes_by_level["pte"] / 4096 > 1.2 * real_mean


def test_sixteen_vcpus_on_two_cores():
    """data/real/test_vmalloc-qemu-16cpu: one boot, 16 vCPUs on the 2 host cores, threads 16, 32, 64, 64. Its
    flushes wait longer (median 37-42 ms) and its drain up to 18 s, yet the page tables grow 3.2x for 4x the
    threads, as with 2 and 8 vCPUs; here the rerun added 19 %."""
    chain = report.measured_chain(CHAINS.parent / "test_vmalloc-qemu-16cpu" / "loops10k-1")
    assert chain["threads"].tolist() == [16, 32, 64, 64] and set(chain["cpus"]) == {16}
    assert chain["pte_pages"].tolist() == [2560, 4346, 8282, 9835]
    assert 3.1 < chain["pte_pages"][2] / chain["pte_pages"][0] < 3.3
    traces = sorted((CHAINS.parent / "drain-trace-qemu-16cpu").glob("run*.txt.gz"))
    calls = vl.probe_calls(vl.read_kprobe_trace(traces[0]))
    flush = calls.loc[calls["function"] == "flush_tlb_kernel_range", "duration_s"]
    assert len(flush) == 496 and 0.041 < flush.median() < 0.042


def test_the_high_priority_drain_on_a_real_kernel():
    """data/real/test_vmalloc-qemu-8cpu-highpri: the 8-vCPU chain on a kernel whose drain and purge helpers
    are queued on system_highpri_wq (half of Rezki's draft fix), two boots. The drain runs 4x as often at
    32 threads and waits at most 0.55 s (stock: up to 3 s); at 32 threads both boots hold fewer page
    tables than every stock boot (15-45 % fewer; -33 % on the means): what the model's
    drain_priority="high" knob predicts in direction (-22 %; docs/calibration.md, seventh pass)."""
    high = eight_vcpu_chains(report.DRAFT_FIX_CHAINS[report.DRAFT_FIX_HIGHPRI][0])
    stock = eight_vcpu_chains()
    assert set(high.groupby("capture")["threads"].apply(tuple)) == {(8, 16, 32, 32)}
    assert high.groupby("capture")["pte_pages"].apply(list).to_dict() == {
        "loops10k-1": [1173, 1580, 2406, 2659], "loops10k-2": [912, 1554, 2973, 2973]}  # fmt: skip
    at32 = high.loc[high["run"] == 3, "pte_pages"]
    assert at32.max() < 0.85 * stock.loc[stock["run"] == 3, "pte_pages"].min()
    means = high.groupby("run")["pte_pages"].mean() / stock.groupby("run")["pte_pages"].mean()
    assert 0.66 < means[3] < 0.68
    traces = sorted((CHAINS.parent / "drain-trace-qemu-8cpu-highpri").glob("run*.txt.gz"))
    events = vl.read_sched_trace(traces[2])
    queued = events[(events["event"] == "workqueue_queue_work") & (events["function"] == "drain_vmap_area_work")]
    assert set(queued["workqueue"]) == {"events_highpri"}
    runs = vl.work_runs(events)
    assert len(runs) == 1886 and runs["wait_s"].max() < 0.52


def test_the_pool_cap_on_a_real_kernel_changes_nothing_measurable():
    """data/real/test_vmalloc-qemu-8cpu-poolcap: the other half of the draft fix alone (a pool refuses VAs
    beyond lazy_max_pages). At this scale its page tables stay within 4 % of the stock boots' range run
    by run, as the model's pool_cap="lazy_max" knob, which never binds here, predicts."""
    capped = eight_vcpu_chains(report.DRAFT_FIX_CHAINS[report.DRAFT_FIX_CAP][0])
    assert capped["pte_pages"].tolist() == [1260, 1942, 3612, 3612]
    stock = eight_vcpu_chains()
    low, high = stock.groupby("run")["pte_pages"].min(), stock.groupby("run")["pte_pages"].max()
    for run, pte in zip(capped["run"], capped["pte_pages"]):
        assert 0.96 * low[run] <= pte <= 1.04 * high[run]
