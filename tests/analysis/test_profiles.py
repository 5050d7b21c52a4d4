"""compare_profiles on the seed's two perf tables (6.7 against the vmap-node series), across kernels
whose symbols differ by clone and _noprof suffixes, and against a profile built from samples."""

from pathlib import Path

import pandas as pd
import pytest

import vmaplab
from vmaplab.analysis.profiles import compare_profiles, fold_symbol
from vmaplab.analysis.stacks import profile_from_samples
from vmaplab.io.perf_report import read_perf_report

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "data" / "real"
SEED = ROOT / "data" / "seed"
OLD, NEW = SEED / "perf-report-6.7.txt", SEED / "perf-report-vmap-nodes.txt"


def test_seed_lock_contention_goes_down():
    d = compare_profiles(OLD, NEW)
    top = d.iloc[0]
    assert top["symbol"] == "native_queued_spin_lock_slowpath"
    assert (top["self_pct_a"], top["self_pct_b"], top["self_change"]) == (93.07, 16.51, -76.56)
    assert (top["children_pct_a"], top["children_pct_b"], top["children_change"]) == (93.35, 16.61, -76.74)
    size = pd.concat([d["self_change"].abs(), d["children_change"].abs()], axis=1).max(axis=1)
    listed = d["status"] == "both"
    assert size[listed].is_monotonic_decreasing
    status = d.set_index("symbol")["status"]
    # Both seed tables are excerpts (pasted without perf's header): a symbol missing from one may sit
    # just below its cut, so it is "unlisted" with unknown changes, never "new" or "vanished".
    assert set(status[status == "unlisted"].index) == {
        "clear_page_rep", "insert_vmap_area", "purge_vmap_node", "__alloc_pages_bulk", "free_unref_page",
        "fix_size_alloc_test", "find_unlink_vmap_area",
    }
    assert len(d) == 22 and (status == "both").sum() == 15
    assert not listed.iloc[15:].any()  # unlisted rows come last
    unlisted = d.set_index("symbol").loc["find_unlink_vmap_area"]
    assert pd.isna(unlisted["self_pct_b"]) and pd.isna(unlisted["self_change"]) and unlisted["self_pct_a"] == 0.21
    assert d.dtypes["self_change"] == "Float64" and d.dtypes["status"] == "string"


def test_clone_suffixes_match():
    d = compare_profiles(OLD, NEW).set_index("symbol")
    assert d.loc["vfree", ["names_a", "names_b", "self_change"]].tolist() == ["vfree.part.0", "vfree.part.0", 4.21]
    # 6.7's __vmalloc_node_range is 6.18's __vmalloc_node_range_noprof (this host's capture)
    across = compare_profiles(OLD, REAL / "perf-report-children.txt").set_index("symbol")
    row = across.loc["__vmalloc_node_range"]
    assert (row["names_a"], row["names_b"], row["status"]) == ("__vmalloc_node_range", "__vmalloc_node_range_noprof", "both")
    assert (row["children_pct_a"], row["children_pct_b"]) == (76.13, 4.49)


@pytest.mark.parametrize(
    "name, folded",
    [
        ("vfree.part.0", "vfree"),
        ("finish_task_switch.isra.0", "finish_task_switch"),
        ("perf_iterate_sb.constprop.0", "perf_iterate_sb"),
        ("vms_clear_ptes.part.0", "vms_clear_ptes"),
        ("__vmalloc_node_range_noprof", "__vmalloc_node_range"),
        ("__mutex_lock.constprop.0", "__mutex_lock"),
        ("native_queued_spin_lock_slowpath", "native_queued_spin_lock_slowpath"),
        ("_noprof", "_noprof"),
    ],
)
def test_fold_symbol(name, folded):
    # names from this host's perf captures and the seed
    assert fold_symbol(name) == folded


def test_blocks_of_one_paste():
    both = read_perf_report(SEED / "v3-cover-quoted.txt")
    with pytest.raises(ValueError, match="2 tables"):
        compare_profiles(both, NEW)
    d = compare_profiles(both[both["block"] == 0], both[both["block"] == 1])
    assert d.equals(compare_profiles(OLD, NEW))
    with pytest.raises(TypeError):
        compare_profiles(42, NEW)


def test_report_without_the_key_column_is_refused():
    # perf report --sort dso has no symbol column: compared by symbol it was one "nan" row at 100 %
    by_dso = REAL / "perf-report-sort-dso.txt"
    with pytest.raises(ValueError, match=r"profile b .*perf-report-sort-dso.txt has no symbol column"):
        compare_profiles(REAL / "perf-report-self-n-dso-sym.txt", by_dso)
    d = compare_profiles(REAL / "perf-report-children-dso-sym.txt", by_dso, on="shared_object")
    assert d.set_index("shared_object").at["kernel.kallsyms", "self_pct_b"] == 78.13


def test_commands_are_summed_and_shared_object_key():
    # this host's no-children report has some symbols under two commands (sh and churn)
    report = read_perf_report(REAL / "perf-report-self.txt")
    twice = report.groupby("symbol").filter(lambda g: g["command"].nunique() > 1)
    assert len(twice)
    other = read_perf_report(REAL / "perf-report-small-self-n.txt")  # another recording of this host
    d = compare_profiles(report, other).set_index("symbol")
    for name, entries in twice.groupby("symbol"):
        assert d.loc[name, "self_pct_a"] == pytest.approx(entries["self_pct"].sum())
    # every symbol of either report once (clone suffixes folded), its share the sum over its entries
    folded = {side: prof.groupby(prof["symbol"].map(fold_symbol))["self_pct"].sum() for side, prof in
              (("a", report), ("b", other))}  # fmt: skip
    for side, shares in folded.items():
        assert d[f"self_pct_{side}"].dropna().to_dict() == pytest.approx(shares.to_dict())
    assert set(d["status"]) == {"both", "new", "vanished"}
    assert (d["status"] == "both").sum() == len(set(folded["a"].index) & set(folded["b"].index))
    keyed = compare_profiles(report, report, on=["shared_object", "symbol"])
    assert list(keyed.columns[:2]) == ["shared_object", "symbol"]


def test_profile_from_samples_against_its_perf_report():
    # a perf script turned into a profile compares with perf report of the same recording as equal,
    # up to perf's two-decimal rounding (the dash user addresses aside)
    prof = profile_from_samples(REAL / "perf-script-churn.txt.gz")
    d = compare_profiles(prof, REAL / "perf-report-small-children.txt", on=["command", "shared_object", "symbol"])
    matched = d[d["status"] == "both"]
    assert len(matched) == 578
    assert (matched["self_change"].abs() <= 0.005 + 1e-9).all()
    assert (matched["children_change"].abs() <= 0.005 + 1e-9).all()
    assert set(d.loc[d["status"] != "both", "shared_object"]) == {"dash"}


def test_public_name():
    assert vmaplab.compare_profiles is compare_profiles


def test_a_report_without_children_against_one_with_them():
    # perf-report-self.txt and perf-report-children.txt are perf report --no-children and --children
    # of one recording (data/real/SOURCES.md): the self shares agree, and the children shares of one
    # side are no change (they were 750 "changes" up to 83.58 points, and 213 symbols with no self
    # share came out "new")
    self_only, children = REAL / "perf-report-self.txt", REAL / "perf-report-children.txt"
    for a, b in ((self_only, children), (children, self_only)):
        d = compare_profiles(a, b)
        assert set(d["status"]) == {"both"} and len(d) == 537
        assert (d["self_change"] == 0).all() and d["children_change"].isna().all()
    assert compare_profiles(children, children).set_index("symbol").at["do_syscall_64", "children_pct_a"] == 83.58


def test_profiles_of_different_events_are_refused():
    # FlameGraph's rust capture samples cycles:u (../shared/fixtures/flamegraph/SOURCES.md), this
    # host's report cpu-clock
    rust = profile_from_samples(ROOT.parent / "shared" / "fixtures" / "flamegraph" / "perf-rust-Yamakaky-dcpu.txt")
    with pytest.raises(ValueError, match="profile a counts cycles:u and profile b cpu-clock"):
        compare_profiles(rust, REAL / "perf-report-children.txt")
    assert len(compare_profiles(rust, rust)) == rust["symbol"].map(fold_symbol).nunique()
