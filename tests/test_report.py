"""vmaplab reproduce at the quick scale: report.html with every figure embedded, PNG, SVG and CSV files
that hold the published seed numbers and the simulated sweeps; the seed readers of vmaplab.report."""

import base64
import re
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
from typer.testing import CliRunner

from vmaplab import plots, report
from vmaplab.cli import app
from vmaplab.errors import ParseError

from figure_checks import assert_texts_clear

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = {"published_free_used", "pagetable_vs_published", "rerun_plateau", "va_timeline", "knobs_effect",
           "trace_footprint", "published_profiles", "simulated_profiles", "spin_share_vs_threads",
           "throughput_vs_threads", "lock_wait_share", "throughput_vs_cpus", "space_map",
           "replay_comparison", "measured_vs_model", "drain_stall", "measured_vs_model_8cpu", "call_durations"}  # fmt: skip
TABLES = {"pagetable_chain", "timeline", "knobs", "footprint", "published_profiles", "simulated_profiles",
          "contention_sweep", "cpu_sweep", "space_maps", "replay_summary", "published_spans", "measured_chains",
          "model_chains", "growth_summary", "drain_runs", "chains_8cpu", "call_durations", "draft_fix_real"}  # fmt: skip


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(app, ["reproduce", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"{folder / 'report.html'}: {len(FIGURES)} figures, {len(TABLES)} tables" in result.output
    return folder


def test_reproduce_writes_every_figure_and_table(out):
    names = {p.name for p in out.iterdir()}
    expected = {f"{f}.{ext}" for f in FIGURES for ext in ("png", "svg")} | {f"{t}.csv" for t in TABLES}
    assert names == expected | {"report.html"}
    for name in FIGURES:
        assert (out / f"{name}.png").read_bytes()[:8] == PNG
        assert (out / f"{name}.svg").read_text().lstrip().startswith("<?xml")


def test_report_html_is_self_contained(out):
    page = (out / "report.html").read_text()
    images = re.findall(r'<img alt="([a-z0-9_]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert {name for name, _ in images} == FIGURES
    assert all(base64.b64decode(data)[:8] == PNG for _, data in images)
    assert "src=\"http" not in page and "<script" not in page
    # the sections and figures in the order of the investigation, the scale named
    assert page.index("1. Page tables") < page.index("2. Lock contention") < page.index("3. Real recordings")
    assert [name for name, _ in images] == [
        "published_free_used", "pagetable_vs_published", "rerun_plateau", "measured_vs_model",
        "measured_vs_model_8cpu", "va_timeline", "space_map",
        "knobs_effect", "published_profiles", "simulated_profiles", "spin_share_vs_threads", "lock_wait_share",
        "throughput_vs_threads", "throughput_vs_cpus", "trace_footprint", "replay_comparison", "drain_stall",
        "call_durations"]  # fmt: skip
    assert "SCALED DOWN: 4 CPUs" in page
    assert page.count("<table") == 15  # every table but the timeline, the footprint and the space maps is shown
    # where the model differs from the published figures is said, with the calibration notes named
    text = re.sub(r"<[^>]+>", " ", page)
    assert "faster than linear" in text and "above the published 16.51 %" in text
    assert "12.2x" in text  # the published span over the workers' largest live set at 256 threads
    assert text.count("docs/calibration.md") >= 4
    assert "<NA>" not in page and "&lt;NA&gt;" not in page  # missing values are blank


def test_report_sets_the_real_kernel_beside_the_model(out):
    measured = pd.read_csv(out / "measured_chains.csv")
    first = measured[measured["capture"] == "loops100k-1"]
    assert first["pte_pages"].tolist() == [401, 745, 2169, 2169]  # data/real/test_vmalloc-qemu-2cpu/loops100k-1
    model = pd.read_csv(out / "model_chains.csv")
    assert model.groupby("seed")["threads"].apply(list).tolist() == [[2, 4, 8, 8]] * 3
    assert set(model["cpus"]) == {2} and set(model["loops"]) == {100_000}
    growth = pd.read_csv(out / "growth_summary.csv").set_index("source")
    published = growth.loc[growth.index.str.startswith("published")].iloc[0]
    assert round(published["growth"], 1) == 15.7  # 5.36 GiB / 350 MiB
    real = growth.loc[growth.index.str.startswith("measured")].iloc[0]
    assert (real["cpus"], real["first_threads"], real["last_threads"]) == (2, 2, 8) and real["growth"] > 2
    eight = pd.read_csv(out / "chains_8cpu.csv")
    assert eight.groupby("source")["pte_pages"].size().to_dict() == {"measured": 12,
                                                                      "6.9 model at the 8-vCPU guest's costs": 12}
    page = (out / "report.html").read_text()  # the captions give the chains' spread, not the mean's verdict alone
    assert "grew 3.3x (no faster than linear on the mean) and the rerun added 7%; chain by chain 1.9-5.2x, 1 of 3 " \
           "faster than linear, reruns +0% to +42%" in page
    assert "in an 8-vCPU QEMU guest" in page and "a 8-vCPU" not in page
    first = eight[(eight["source"] == "measured") & (eight["capture"] == "loops10k-1")]
    assert first["pte_pages"].tolist() == [1339, 1757, 4252, 4266]  # data/real/test_vmalloc-qemu-8cpu/loops10k-1
    fix = pd.read_csv(out / "draft_fix_real.csv").set_index(["variant", "run"])
    assert fix.loc[("stock", 3), "real_pte_pages"] == (4252 + 4352 + 3510) / 3  # the three stock boots
    high = fix.loc[(report.DRAFT_FIX_HIGHPRI, 3)]
    assert high["boots"] == 2 and high["real_change"] < -0.3 and high["model_change"] < -0.1  # both cut
    calls = pd.read_csv(out / "call_durations.csv")
    flush = calls[calls["function"] == "flush_tlb_kernel_range"]
    assert flush["calls"].tolist() == [421, 640, 557, 543] and (flush["median_s"] > 0.014).all()


def test_report_tables_hold_the_published_numbers(out):
    pub = pd.read_csv(out / "published_profiles.csv").set_index("symbol")
    assert pub.loc["native_queued_spin_lock_slowpath", ["self_pct_a", "self_pct_b"]].tolist() == [93.07, 16.51]


def test_pagetable_chain_never_frees_page_tables(out):
    chain = pd.read_csv(out / "pagetable_chain.csv")
    assert chain.groupby("design")["threads"].apply(list).to_dict() == {"global": [4, 8, 16, 16], "nodes": [4, 8, 16, 16]}
    for design, part in chain.groupby("design"):
        pt = part["pagetable_bytes"].to_numpy()
        assert (pt[1:] >= pt[:-1]).all(), design  # page tables only grow on one machine
        assert part["rerun"].tolist() == [False, False, False, True]
        # the plateau, as the issue words it: a rerun adds less than 5 % to the page tables (at this
        # scale, loops=100 on 4 CPUs, the nodes rerun adds 3.8 %: 5.5 % of the growth since run 1)
        assert pt[2] > pt[0] and pt[3] - pt[2] < 0.05 * pt[2], design


def test_space_maps_hold_each_runs_page_tables(out):
    chain = pd.read_csv(out / "pagetable_chain.csv")
    maps = pd.read_csv(out / "space_maps.csv")
    assert maps["snapshot"].unique().tolist() == ["after run 1: 4 threads", "after run 2: 8 threads",
                                                   "after run 3: 16 threads", "after run 4: 16 threads (rerun)"]
    sums = maps.groupby(["design", "snapshot"], sort=False)[["pte_pages", "pmd_pages"]].sum().reset_index()
    assert sums["design"].tolist() == chain["design"].tolist()
    assert (sums["pte_pages"] * 4096).tolist() == chain["pte_bytes"].tolist()
    assert (sums["pmd_pages"] * 4096).tolist() == chain["pmd_bytes"].tolist()
    used = maps[["busy_pages", "lazy_pages", "pooled_pages"]].sum(axis=1)
    assert (maps["pte_pages"] * 512 >= used).all()  # every page in use lies where a PTE page exists
    assert (out / "space_map.svg").read_text().count("after run") == 4


def test_replay_summary_puts_the_model_beside_the_kernel(out):
    table = pd.read_csv(out / "replay_summary.csv").set_index("measure")
    assert int(table.loc["allocations", "kernel"]) == 7629 == int(table.loc["allocations", "model"])
    assert int(table.loc["purges", "kernel"]) == 2  # the recording's two purge_vmap_area_lazy events
    # the recording's purge_vmap_area_lazy lines at 488.836927 and 489.000746 s, its first allocation at 488.716813
    assert table.loc["purge times (s)", "kernel"] == "0.120, 0.284"
    assert table.loc["purge times (s)", "kernel"] == table.loc["purge times (s)", "model"]  # drain="trace"
    assert float(table.loc["exact address share", "model"]) == 0.0  # no pools of trace start


def test_contention_sweep_designs(out):
    sweep = pd.read_csv(out / "contention_sweep.csv")
    assert sorted(zip(sweep["design"], sweep["threads"])) == [(d, t) for d in ("global", "nodes") for t in (4, 8, 16)]
    g = sweep[sweep["design"] == "global"]
    n = sweep[sweep["design"] == "nodes"]
    assert (n[["spin_vmap_area_lock", "spin_purge_vmap_area_lock"]] == 0).all().all()  # 6.9 has no such locks
    assert (g[["spin_busy_lock", "spin_lazy_lock", "spin_pool_lock"]] == 0).all().all()  # 6.7 has no nodes
    cpus = pd.read_csv(out / "cpu_sweep.csv")
    assert (cpus["threads"] == cpus["cpus"]).all() and sorted(set(cpus["cpus"])) == [2, 4, 8]


def test_published_wall_and_spin_from_the_seed():
    assert report.published_wall() == {"global": 651.271, "nodes": 51.301}
    assert report.published_spin() == {"global": 93.07, "nodes": 16.51}


def test_published_spans_from_the_seed_listings():
    spans = report.published_spans()
    assert spans["threads"].tolist() == [64, 128, 256]
    assert spans["pagetable_pages"].tolist() == [89656, 315655, 1405072]  # data/seed allocinfo listings
    assert spans["span_bytes"].iloc[-1] == 1405072 * 2 * 2**20  # ~2.68 TiB of PTE pages' 2 MiB each
    # per worker at 64 CPUs: 2 x 57,344 two-page areas and two 112-page pointer arrays with guards
    assert spans["live_max_bytes"].tolist() == [n * (4 * 57344 + 2 * 113) * 4096 for n in (64, 128, 256)]
    assert spans["span_over_live"].is_monotonic_increasing
    assert spans["span_over_live"].round(1).tolist() == [3.1, 5.5, 12.2]


def test_published_wall_names_the_file_on_bad_input(tmp_path):
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "v3-cover-quoted.txt").write_text("> real\t10m51.271s\n> user\t0m0.013s\n")
    with pytest.raises(ParseError, match=r"v3-cover-quoted\.txt.*two bash `time` outputs"):
        report.published_wall(tmp_path)


def test_scale_labels():
    assert report.QUICK.label.startswith("SCALED DOWN: 4 CPUs, 4/8/16 threads")
    assert report.FULL.label.startswith("the seed's machine: 64 CPUs, 64/128/256 threads")
    assert "test_loop_count=1,000 " in report.QUICK.contention_label  # not the page-table runs' 100
    assert report.QUICK.cpu_label.startswith("SCALED DOWN: one thread per CPU on 2/4/8 CPUs")
    assert not report.FULL.cpu_label.startswith("SCALED DOWN")


def test_simulator_figures_name_missing_columns(out):
    sweep = pd.read_csv(out / "contention_sweep.csv")
    with pytest.raises(ValueError, match="missing \\['lock_spin_share'\\]"):
        plots.spin_share_vs_threads(sweep.drop(columns="lock_spin_share"))
    with pytest.raises(ValueError, match="by must be"):
        plots.throughput_vs_threads(sweep, by="loops")
    fig = plots.throughput_vs_threads(sweep, published_speedup=651.271 / 51.301)
    speedup = fig.axes[1]
    assert [line.get_label() for line in speedup.get_lines()][0] == "simulated nodes / global"
    assert any("12.7x" in line.get_label() for line in speedup.get_lines())


def test_registered_sweep_figures_draw_from_the_tables(out):
    from vmaplab.figures import FIGURES as REGISTRY, draw

    chain = str(out / "pagetable_chain.csv")
    sweep = str(out / "contention_sweep.csv")
    sources = {"spin_share_vs_threads": sweep, "throughput_vs_threads": sweep, "lock_wait_share": sweep,
               "rerun_plateau": chain}  # fmt: skip
    assert set(sources) <= set(REGISTRY)
    figs = {name: draw(name, [src]) for name, src in sources.items()}
    spin = {line.get_label(): line.get_ydata().tolist() for line in figs["spin_share_vs_threads"].axes[0].get_lines()}
    table = pd.read_csv(sweep).sort_values("threads")
    assert spin["6.7 global locks (simulated)"] == (100 * table[table.design == "global"]["lock_spin_share"]).tolist()
    hatched = [p for p in figs["rerun_plateau"].axes[0].patches if p.get_hatch() == "//"]
    assert len(hatched) == 2  # one rerun bar per design
    for name in ("spin_share_vs_threads", "throughput_vs_threads"):  # no published value given: none named
        assert "published" not in figs[name]._suptitle.get_text()
    throughput = figs["throughput_vs_threads"].axes[0]  # the top point below the frame, not on it
    assert throughput.get_ylim()[1] > max(line.get_ydata().max() for line in throughput.get_lines())
    with pytest.raises(ValueError, match="give the .csv or .parquet table"):
        draw("lock_wait_share", [str(out / "report.html")])


def test_simulator_figures_from_the_report_tables(out):
    """Every simulator figure of the report, drawn again from its CSV: units on the axes, one line or bar
    per design, the published values beside the simulated ones, no text outside or over another."""
    label = report.QUICK.label
    listings = report.published_listings()
    chain = pd.read_csv(out / "pagetable_chain.csv")
    sweep = pd.read_csv(out / "contention_sweep.csv")

    fig = plots.pagetable_vs_published(chain, listings, published=report.CITE_PT, scale=label)
    ax, rel = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    published = lines[f"published ({report.CITE_PT}), 64 CPUs"]
    assert published.get_xdata().tolist() == [1.0, 2.0, 4.0] and published.get_color() == "black"
    assert {"6.7 global locks (simulated), 4 CPUs", "6.9 vmap nodes (simulated), 4 CPUs"} <= set(lines)
    assert {t.get_text() for t in ax.texts} >= {"350MiB", "1.20GiB", "5.36GiB"}
    assert len(ax.texts) == 9  # every point labelled with its size
    linear = next(line for line in rel.get_lines() if line.get_label().startswith("linear"))
    assert linear.get_ydata().tolist() == [1.0, 2.0, 4.0]
    assert "threads per CPU" in ax.get_xlabel() and "SCALED DOWN" in fig._suptitle.get_text()
    assert_texts_clear(fig)

    fig = plots.rerun_plateau(chain, scale=label, published="a rerun does not increase it")
    assert fig.axes[0].get_ylabel() == "page-table memory after the run (MiB)"
    assert len(fig.axes[0].texts) == len(chain)  # what each run added
    assert_texts_clear(fig)
    fresh = chain.assign(run_index=0)  # the same rows as a sweep(..., sequential=False) would give them
    with pytest.raises(ValueError, match=r"needs the runs of one machine.*runs \[0, 0, 0"):
        plots.rerun_plateau(fresh)

    timeline = pd.read_csv(out / "timeline.csv")
    fig = plots.va_timeline(timeline, scale=label)
    top = fig.axes[0]
    held = top.get_lines()[1]
    assert held.get_label().startswith("VA held now")
    held_bytes = (timeline[["busy_pages", "lazy_pages", "pooled_pages"]].sum(axis=1) * 4096).to_numpy()
    assert held.get_ydata().tolist() == held_bytes.tolist()
    assert top.get_ylim()[1] < 2**40  # the scale is the dense space's (GiB), not the align_shift high water
    assert top.get_ylim()[1] >= timeline["pte_pages"].max() * 2**21
    assert "VA high water" in top.get_title() and "TiB" in top.get_title()  # named, off the scale
    assert top.get_ylabel().endswith("(GiB)") and top.child_axes[0].get_ylabel().endswith("(MiB)")
    assert_texts_clear(fig)

    knobs = pd.read_csv(out / "knobs.csv")
    assert (knobs["va_high_water"] > 2**44).all()  # align_shift's far VAs, in every variant
    assert knobs["va_held_max_bytes"].nunique() > 1  # what the figure shows instead moves
    fig = plots.knobs_effect(knobs, scale=label)
    assert [a.get_xlabel() for a in fig.axes] == [
        "page-table memory after the run (MiB)", "most VA held at once (busy + lazy + pooled) (GiB)",
        "largest lazy backlog\n(4 KiB pages; k = thousand)",
        "most pages parked in pools\n(4 KiB pages; k = thousand)"]  # fmt: skip
    held = [b.get_width() for b in fig.axes[1].containers[0]]
    assert held == knobs["va_held_max_bytes"].astype(float).tolist()
    colours = [matplotlib.colors.to_hex(b.get_facecolor()) for b in fig.axes[0].containers[0]]
    design = {"global": "#d62728", "nodes": "#1f77b4"}  # 6.7 red, 6.9 blue, as in every figure; baseline grey
    assert colours == ["#737373"] + [design[d] for d in knobs["design"].iloc[1:]]
    assert_texts_clear(fig)
    ticks = [t.get_text() for t in fig.axes[2].get_xticklabels()]
    assert ticks[0] == "0k" and all(t.endswith("k") and t[:-1].isdigit() for t in ticks)

    spin = report.published_spin()
    fig = plots.spin_share_vs_threads(sweep, published=spin, citation=report.CITE_V3,
                                      scale=report.QUICK.contention_label)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "6.9 vmap nodes (published), 64 threads on 64 CPUs: 16.51 % (" + report.CITE_V3 + ")" in labels
    assert len(fig.axes[0].texts) == len(sweep)  # every simulated share labelled
    assert "test_loop_count=1,000" in fig._suptitle.get_text()  # the contention runs' own loops
    assert_texts_clear(fig)

    wall = report.published_wall()
    for frame, by in ((sweep, "threads"), (pd.read_csv(out / "cpu_sweep.csv"), "cpus")):
        fig = plots.throughput_vs_threads(frame, by=by, published_speedup=wall["global"] / wall["nodes"],
                                          citation=report.CITE_V3, scale=label)  # fmt: skip
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert any(t.startswith("published wall-time ratio at 64 threads on 64 CPUs: 12.7x") for t in labels)
        assert "(millions)" in fig.axes[0].get_ylabel() and "(x)" in fig.axes[1].get_ylabel()
        assert_texts_clear(fig)

    fig = plots.lock_wait_share(sweep, scale=label)
    assert fig.axes[0].get_ylabel() == "spinning (% of busy CPU time)" and "nr_threads" in fig.axes[0].get_xlabel()
    masks = ", ".join(str(m) for m in sorted(sweep["tests"].unique()))  # the table's, where it said 7 whatever ran
    assert fig.axes[0].get_xlabel().endswith(f"(run_test_mask={masks})")
    assert_texts_clear(fig)


def test_report_tables_read_in_units():
    frame = pd.DataFrame({"pagetable_bytes": [3_346_432], "lock_spin_share": [0.5845], "drain_lag_max_s": [0.002086],
                          "pairs_per_second": [525_123.4],
                          "self_pct_a": pd.array([None], dtype="Float64")})  # fmt: skip
    shown = report._shown(frame, None)
    cells = re.findall(r"<td>([^<]*)</td>", shown)
    assert cells == ["3.19MiB", "58.5 %", "2.09", "525,123", ""]
    assert "<th>drain_lag_max_ms</th>" in shown  # the header says what the cells are in
    # a column of means beside whole numbers has one format (was "1,212" beside "1769"); perf's percentages
    # have two decimals as perf prints them (was 8.041e-05); growths are ratios and relative changes percent
    frame = pd.DataFrame({"real_pte_pages": [1212.0, 1768.6666, 1042.5], "self_pct_b": [8.041e-05, 23.5363, 0.0001775],
                          "growth": [15.6818, 3.2731, 2.769], "rerun_added": [0.0, 0.0702, 0.01386],
                          "real_change": [0.0, -0.1140, -0.3340]})  # fmt: skip
    cells = re.findall(r"<td>([^<]*)</td>", report._shown(frame, None))
    assert cells == ["1,212", "0.00", "15.68x", "+0.0 %", "+0.0 %",
                     "1,769", "23.54", "3.27x", "+7.0 %", "-11.4 %",
                     "1,042", "0.00", "2.77x", "+1.4 %", "-33.4 %"]
