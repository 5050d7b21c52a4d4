"""diff and the `vmaplab diff` command on the seed's listings and real meminfo/vmstat/slabinfo/vmallocinfo
snapshots."""

import gzip
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import vmaplab as vl
from vmaplab.analysis.diff import PAGE_TABLES, diff, format_diff
from vmaplab.cli import app

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "data" / "seed"
BUNDLE = ROOT / "data" / "real" / "bundle-vm-2cpu-churn"
MIB, GIB = 2**20, 2**30
PAGETABLE = "include/linux/mm.h func:pagetable_alloc"

# Whole 1.0 listings (every tag, most at zero) of a real 6.12 guest before and after its first
# test_vmalloc run (data/real/SOURCES.md, test_vmalloc-qemu-2cpu/).
REAL_RUN = ROOT / "data" / "real" / "test_vmalloc-qemu-2cpu" / "loops100k-1"
# Lines with a loadable module's tag: the test module of Documentation/filesystems/proc.rst's allocinfo
# example (Linux 6.12), and Baoquan He's linux-next line (shared/docs/kernel-facts.md §4.1(b)).
CTAG = "     4136960     1010 drivers/staging/ctagmod/ctagmod.c:20 [ctagmod] func:ctagmod_start\n"
XFS = "    72228864    17634 fs/xfs/xfs_buf.c:390 [xfs] func:xfs_buf_alloc_pages\n"


def real_listing(snapshot: str) -> str:
    return gzip.open(REAL_RUN / snapshot / "allocinfo.gz", "rt").read()


def tag_totals(listing: str) -> dict[str, tuple[int, int]]:
    """(bytes, calls) per "<file> func:<function>" of a 1.0 listing, summed over line numbers: split by hand."""
    totals: dict[str, tuple[int, int]] = {}
    for line in listing.splitlines()[2:]:
        size, calls, site, *rest = line.split()
        key = f"{site.rsplit(':', 1)[0]} {next(word for word in rest if word.startswith('func:'))}"
        b, c = totals.get(key, (0, 0))
        totals[key] = (b + int(size), c + int(calls))
    return totals


def seed(name: str) -> pd.DataFrame:
    return vl.read_allocinfo(SEED / f"allocinfo-{name}.txt")


def text(s: str) -> pd.DataFrame:
    return vl.read_allocinfo(io.StringIO(s))


def test_seed_64_to_256_threads():
    d = diff(seed("64threads"), seed("256threads"))
    top = d.iloc[0]
    assert top["key"] == PAGETABLE and top["status"] == "grown"
    assert top["delta_bytes"] == round(5.36 * GIB) - 350 * MIB == 5388254577  # about 5.0 GiB
    assert (top["before_calls"], top["after_calls"], top["delta_calls"]) == (89656, 1405072, 1315416)
    assert not d["exact"].any()  # every size was rounded by the kernel (three digits)
    assert d["key"].tolist()[1:4] == [
        "mm/slub.c func:alloc_slab_page",
        "mm/readahead.c func:page_cache_ra_unbounded",
        "mm/filemap.c func:__filemap_get_folio",
    ]
    # page_ext is below the 256-thread excerpt's smallest line: unknown there, not vanished
    last = d.iloc[-1]
    assert last["key"] == "mm/page_ext.c func:alloc_page_ext" and last["status"] == "unlisted"
    assert pd.isna(last["after_bytes"]) and pd.isna(last["delta_bytes"]) and last["before_bytes"] == 122 * MIB
    assert d.attrs["before_complete"] is False and d.attrs["after_complete"] is False
    assert d.dtypes.astype(str).to_dict() == {
        "key": "string",
        "before_bytes": "Int64",
        "after_bytes": "Int64",
        "delta_bytes": "Int64",
        "before_calls": "Int64",
        "after_calls": "Int64",
        "delta_calls": "Int64",
        "status": "string",
        "exact": "bool",
    }


def test_one_paste_first_and_last_block_by_default():
    thread = vl.read_allocinfo(SEED / "pagetable-thread.txt")
    d = diff(thread, thread)
    assert (d.attrs["before_block"], d.attrs["after_block"]) == (0, 3)
    # pagetable_alloc was below the "before" excerpt's cut-off (27.2MiB)
    assert d.set_index("key").at[PAGETABLE, "status"] == "unlisted"
    step = diff(thread, thread, block=(1, 2)).set_index("key")
    assert step.at[PAGETABLE, "delta_bytes"] == round(1.20 * GIB) - 350 * MIB
    assert step.at[PAGETABLE, "delta_calls"] == 315655 - 89656
    same = diff(thread, thread, block=-1)
    assert (same["status"] == "same").all() and (same["delta_bytes"] == 0).all()
    # block numbers are the frame's own: in a frame holding blocks 1-3 only, block=1 is block 1 (was the
    # second one, 2) and (1, 2) the pair of blocks 1 and 2 (was refused: "there is no block 2")
    later = thread[thread["block"] >= 1]
    assert diff(later, later, block=1).attrs["before_block"] == 1
    pair = diff(later, later, block=(1, 2)).set_index("key")
    assert pair.at[PAGETABLE, "delta_calls"] == 315655 - 89656
    with pytest.raises(ValueError, match=r"before has blocks \[1, 2, 3\]; there is no block 0"):
        diff(later, later, block=0)


def test_by_module_file_func():
    d = diff(seed("64threads"), seed("256threads"), by="module")
    assert d.iloc[0]["key"] == "memory" and d.attrs["by"] == "module"
    f = diff(seed("64threads"), seed("256threads"), by="file", top=2)
    assert f["key"].tolist() == ["include/linux/mm.h", "mm/slub.c"]
    g = diff(seed("64threads"), seed("256threads"), by="func", top=1)
    assert g["key"].tolist() == ["pagetable_alloc"]
    # the "before" excerpt lists module memory's folio_prealloc but not its pagetable_alloc, the 256-thread
    # one the other way round: neither total of "memory" is known, so no growth of it is claimed
    m = diff(seed("before"), seed("256threads"), by="module").set_index("key")
    assert m.loc["memory", ["before_bytes", "after_bytes", "delta_bytes"]].isna().all()
    assert m.at["memory", "status"] == "unlisted" and m.at["slub", "status"] == "grown"


def test_whole_listings_new_vanished_and_exact():
    # the real guest's listings, a module unloaded (ctagmod) and one loaded (xfs) between them
    before_text, after_text = real_listing("0000") + CTAG, real_listing("0001") + XFS
    d = diff(text(before_text), text(after_text)).set_index("key")
    assert d.attrs["before_complete"] and d.attrs["after_complete"]
    xfs, ctag = "fs/xfs/xfs_buf.c func:xfs_buf_alloc_pages", "drivers/staging/ctagmod/ctagmod.c func:ctagmod_start"
    assert (d.at[xfs, "status"], d.at[xfs, "before_bytes"], d.at[xfs, "delta_bytes"]) == ("new", 0, 72228864)
    assert (d.at[ctag, "status"], d.at[ctag, "after_bytes"], d.at[ctag, "delta_calls"]) == ("vanished", 0, -1010)
    # every other tag changes as the lines of the two listings say, their line numbers merged
    before, after = tag_totals(before_text), tag_totals(after_text)
    assert set(d.index) == set(before) | set(after) and set(before) - set(after) == {ctag}
    for key in set(before) & set(after):
        change = (after[key][0] - before[key][0], after[key][1] - before[key][1])
        assert (d.at[key, "delta_bytes"], d.at[key, "delta_calls"]) == change, key
        assert d.at[key, "status"] == ("grown" if change[0] > 0 else "shrunk" if change[0] < 0 else "same"), key
    assert set(d["status"]) == {"new", "vanished", "grown", "shrunk", "same"}
    assert d["exact"].all()  # a 1.0 listing prints bytes
    assert d.index[0] == xfs  # +68.9 MiB, more than any tag of the guest moved
    modules = diff(text(before_text), text(after_text), by="module").set_index("key")
    built_in = sum(after[k][0] - before[k][0] for k in set(before) & set(after))
    assert modules.at["xfs", "status"] == "new" and modules.at["(built-in)", "delta_bytes"] == built_in


def test_line_numbers_module_style_and_noprof_are_normalised():
    # The seed's pre-merge slab line (mm/slub.c:2202 module:slub) and the real 6.12 guest's two slab
    # lines (mm/slub.c:2478 and :2480, no module word) are one call site.
    old = seed("64threads")
    old = old[old["func"] == "alloc_slab_page"]
    listing = real_listing("0001")
    new = text(listing)
    new = new[new["func"] == "alloc_slab_page"]
    assert new["lineno"].tolist() == [2480, 2478]
    d = diff(old, new)
    assert d["key"].tolist() == ["mm/slub.c func:alloc_slab_page"]
    assert d.iloc[0]["delta_calls"] == new["calls"].sum() - 13259 and d.iloc[0]["status"] == "shrunk"
    # allocation profiling renamed wrapped allocators with a _noprof suffix (kernel-facts §4.1); no
    # capture here shows one in a tag, so it is put on a real line
    noprof = text(listing.replace("func:alloc_slab_page", "func:alloc_slab_page_noprof"))
    assert diff(old, noprof[noprof["func"] == "alloc_slab_page_noprof"])["key"].tolist() == d["key"].tolist()


def test_page_tables_fold_across_the_6_10_move():
    # the real 6.12 guest charges kernel page tables to their mm/memory.c call sites (data/real/SOURCES.md)
    listing = real_listing("0001")
    d = diff(seed("256threads"), text(listing))
    assert d.attrs["folded_pagetables"]
    row = d.set_index("key").loc[PAGE_TABLES]
    sites = [v for k, v in tag_totals(listing).items()
             if k in ("mm/memory.c func:__pte_alloc_kernel", "mm/memory.c func:__pmd_alloc",
                      "mm/memory.c func:__pud_alloc", "mm/memory.c func:__pte_alloc", "mm/memory.c func:__p4d_alloc")]
    assert row["before_bytes"] == round(5.36 * GIB) and row["after_bytes"] == sum(b for b, _ in sites) == 1769472
    assert row["after_calls"] == sum(c for _, c in sites) and row["status"] == "shrunk"
    assert not diff(seed("64threads"), seed("256threads")).attrs["folded_pagetables"]
    assert PAGE_TABLES not in diff(seed("256threads"), text(listing), by="module")["key"].tolist()


def test_meminfo_of_a_real_bundle():
    before = vl.read_meminfo(BUNDLE / "0000" / "meminfo")
    after = vl.read_meminfo(BUNDLE / "0002" / "meminfo")
    d = diff(before, after).set_index("key")
    assert d.attrs["of"] == "meminfo" and d.attrs["by"] == "field"
    assert list(d.columns) == ["unit", "before_value", "after_value", "delta_value", "status"]
    # thread churn: the extra kernel stacks are vmalloc'ed, so both grew by the same bytes (ten 16 KiB stacks)
    assert d.at["KernelStack", "delta_value"] == d.at["VmallocUsed", "delta_value"] == 163840
    assert d.at["MemTotal", "status"] == "same" and d.at["MemTotal", "unit"] == "bytes"
    assert d.index[0] == "Committed_AS"


def test_vmstat_of_a_real_bundle_and_missing_fields():
    before = vl.read_vmstat(BUNDLE / "0000" / "vmstat")
    after = vl.read_vmstat(BUNDLE / "0002" / "vmstat")
    d = diff(before, after, top=3)
    assert len(d) == 3 and d.iloc[0]["key"] == "pgfault" and d.iloc[0]["delta_value"] == 7315207 - 7280368
    fewer = diff(before, after[after["field"] != "pgfault"]).set_index("key")
    assert fewer.at["pgfault", "status"] == "vanished" and pd.isna(fewer.at["pgfault", "after_value"])


def test_slabinfo_of_a_real_bundle():
    # the bundle's thread churn (data/real/SOURCES.md): 0000 and 0002 are 2 s apart
    before, after = (vl.read_slabinfo(BUNDLE / snap / "slabinfo") for snap in ("0000", "0002"))
    d = diff(before, after)
    assert d.attrs["of"] == "slabinfo" and d.attrs["by"] == "cache"
    assert list(d.columns) == [
        "key", "before_bytes", "after_bytes", "delta_bytes", "before_objs", "after_objs", "delta_objs",
        "before_pages", "after_pages", "delta_pages", "status",
    ]  # fmt: skip
    top = d.iloc[0]  # the slab lines: vm_area_struct 1097 -> 1852 objects in use of 192 bytes
    assert (top.key, top.before_objs, top.after_objs, top.delta_bytes) == ("vm_area_struct", 1097, 1852, 755 * 192)
    rows = d.set_index("key")
    assert rows.at["pid", "status"] == "shrunk" and rows.at["pid", "delta_objs"] == -189
    # fewer pids in use, yet the cache grew from 27 to 31 one-page slabs: the slab pages are their own column
    assert (rows.at["pid", "before_pages"], rows.at["pid", "delta_pages"]) == (27, 4)
    # task_struct: 28 -> 36 slabs (<num_slabs>) of 8 pages (<pagesperslab>) each
    assert rows.at["task_struct", "delta_pages"] == 64
    # the text says which bytes these are (pid "shrunk" by its bytes while its pages grew read as a contradiction)
    assert format_diff(d).splitlines()[-1] == ("bytes: the objects in use (active_objs x objsize); pages: the "
                                               "cache's slab pages (num_slabs x pagesperslab)")  # fmt: skip
    # every cache's slab pages add up to nearly what the same snapshot's meminfo calls Slab (153,776 kB):
    # 36,800 pages of 4 KiB is 95.7 % of it
    slab_kb = vl.read_meminfo(BUNDLE / "0002" / "meminfo").set_index("field").at["Slab", "value"] // 1024
    assert slab_kb == 153776 and 0.95 < d["after_pages"].sum() * 4 / slab_kb <= 1
    # no vmalloc area was made or freed between these two snapshots: vmap_area stands at 7967 objects
    assert rows.at["vmap_area", "status"] == "same" and rows.at["vmap_area", "after_objs"] == 7967
    assert len(d) == len(before) == 235 and set(d["status"]) <= {"grown", "shrunk", "same"}
    # a cache missing from a whole listing has no objects there: a destroyed cache sorts by what it held
    fewer = diff(before, after[after["name"] != "pid"])
    gone = fewer.iloc[1]
    assert (gone.key, gone.status, gone.after_objs, gone.delta_objs) == ("pid", "vanished", 0, -567)
    table = format_diff(d.head(2)).splitlines()
    head = ["cache", "before", "after", "delta", "objs before", "objs after", "objs delta"]
    head += ["pages before", "pages after", "pages delta", "status"]
    assert re.split(r"  +", table[2]) == head
    row = ["vm_area_struct", "206KiB", "347KiB", "+142KiB", "1097", "1852", "+755", "134", "134", "+0", "grown"]
    assert table[3].split() == row
    with pytest.raises(ValueError, match="slabinfo frames are diffed by cache"):
        diff(before, after, by="func")
    with pytest.raises(ValueError, match="after lists cache 'pid' twice"):
        diff(before, pd.concat([after, after[after["name"] == "pid"]]))


def test_vmallocinfo_of_a_real_bundle():
    # the thread churn of the bundle: ten more threads, each with a vmalloc'ed 16 KiB stack (20 KiB
    # listed with its guard page), and stacks of exited threads freed lazily, not purged yet
    before, after = (vl.read_vmallocinfo(BUNDLE / snap / "vmallocinfo") for snap in ("0000", "0002"))
    d = diff(before, after)
    assert d.attrs["of"] == "vmallocinfo" and d.attrs["by"] == "caller"
    assert list(d.columns) == [
        "key", "before_bytes", "after_bytes", "delta_bytes", "before_areas", "after_areas", "delta_areas", "status"
    ]
    lazy, clone = d.iloc[0], d.iloc[1]
    assert (lazy.key, lazy.before_areas, lazy.after_areas) == ("(unpurged vm_area)", 2130, 2623)
    assert lazy.delta_bytes == after["size"][after["unpurged"]].sum() - before["size"][before["unpurged"]].sum()
    assert (clone.key, clone.delta_areas, clone.delta_bytes) == ("kernel_clone", 10, 10 * 20480)
    assert d["before_areas"].sum() == len(before) and d["after_areas"].sum() == len(after)
    out = format_diff(d.head(1)).splitlines()
    assert re.split(r"  +", out[2]) == ["caller", "before", "after", "delta", "areas before", "areas after",
                                        "areas delta", "status"]
    row = ["(unpurged", "vm_area)", "41.6MiB", "51.2MiB", "+9.63MiB", "2130", "2623", "+493", "grown"]
    assert out[3].split() == row
    with pytest.raises(ValueError, match="vmallocinfo frames are diffed by caller"):
        diff(before, after, by="module")
    # two snapshots pasted into one file are refused, not summed
    pasted = "".join((BUNDLE / snap / "vmallocinfo").read_text() for snap in ("0000", "0002"))
    both = vl.read_vmallocinfo(io.StringIO(pasted))
    with pytest.raises(ValueError, match="before lists the area at 0xffffc90000000000 twice: several vmallocinfo"):
        diff(both, after)
    # a module's caller keeps its module (kernel-facts §4.3's line); absent from a whole listing: 0 areas
    module = "0xffffc90000000000-0xffffc90000005000   20480 xt_alloc_table_info+0xfe/0x130 [x_tables] pages=4 vmalloc\n"
    gone = diff(vl.read_vmallocinfo(io.StringIO(module)), before).set_index("key").loc["xt_alloc_table_info [x_tables]"]
    assert (gone.before_areas, gone.after_areas, gone.delta_bytes, gone.status) == (1, 0, -20480, "vanished")


def test_mismatched_or_wrong_input_raises():
    meminfo = vl.read_meminfo(BUNDLE / "0000" / "meminfo")
    vmstat = vl.read_vmstat(BUNDLE / "0000" / "vmstat")
    with pytest.raises(ValueError, match="cannot diff allocinfo against meminfo"):
        diff(seed("64threads"), meminfo)
    with pytest.raises(ValueError, match="cannot diff meminfo against vmstat"):
        diff(meminfo, vmstat)
    with pytest.raises(ValueError, match="by must be one of tag, module, file, func"):
        diff(seed("64threads"), seed("256threads"), by="line")
    with pytest.raises(ValueError, match="diffed by field"):
        diff(meminfo, meminfo, by="module")
    with pytest.raises(ValueError, match=r"before has blocks \[0\]; there is no block 2"):
        diff(seed("64threads"), seed("256threads"), block=2)
    with pytest.raises(ValueError, match="top must be"):
        diff(seed("64threads"), seed("256threads"), top=-1)
    wanted = "diff and growth compare allocinfo, meminfo, vmstat, slabinfo or vmallocinfo snapshots"
    with pytest.raises(ValueError, match=f"before: a frame with columns x: {wanted}"):
        diff(pd.DataFrame({"x": [1]}), seed("64threads"))
    slab = ROOT / "data/real/slabinfo.txt"
    with pytest.raises(ValueError, match="cannot diff allocinfo against slabinfo"):
        diff(seed("64threads"), slab)
    profile = ROOT / "data/real/perf-report-self.txt"
    with pytest.raises(ValueError, match=r"after: .*perf-report-self.txt \(perf_report\): diff and growth compare"):
        diff(vl.read_meminfo(BUNDLE / "0000" / "meminfo"), profile)
    frames = vl.read_bundle(BUNDLE, formats=["meminfo"])["meminfo"]
    with pytest.raises(ValueError, match="3 bundle snapshots; select one"):
        diff(frames, frames)


def test_format_diff_aligns_columns():
    out = format_diff(diff(seed("64threads"), seed("256threads")))
    lines = out.splitlines()
    assert lines[0] == "before: " + str(SEED / "allocinfo-64threads.txt") + " (block 0)"
    table = lines[2:8]
    status_col = table[0].index("status")
    assert all(len(row) > status_col and row[status_col - 1] == " " for row in table[1:])
    assert re.search(r"func:pagetable_alloc +350MiB +5\.36GiB +\+5\.02GiB +89656 +1405072 +\+1315416 +grown", table[1])
    assert table[-1].endswith("?  unlisted")
    assert "approximate" in lines[8] and lines[9].startswith("unlisted:")


# --- the command line -----------------------------------------------------------------------------------


def test_cli_readme_command():
    # The README's main command: the page-table growth from 64 to 256 workers comes first.
    result = CliRunner().invoke(
        app, ["diff", str(SEED / "allocinfo-64threads.txt"), str(SEED / "allocinfo-256threads.txt")]
    )
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()
    assert rows[2].split()[:4] == ["key", "before", "after", "delta"]
    assert rows[3].split()[:5] == ["include/linux/mm.h", "func:pagetable_alloc", "350MiB", "5.36GiB", "+5.02GiB"]


def test_cli_top_by_and_errors():
    runner = CliRunner()
    thread = str(SEED / "pagetable-thread.txt")
    result = runner.invoke(app, ["diff", thread, thread, "--top", "1", "--by", "func"])
    assert result.exit_code == 0, result.output
    # first listing (before the test) against the last (256 workers); pagetable_alloc was below the
    # first excerpt, so its change is unknown and sorts last: slab grew most of what is known
    row = ["alloc_slab_page", "112MiB", "278MiB", "+166MiB", "8689", "18519", "+9830", "grown"]
    assert result.output.splitlines()[3].split() == row
    assert len(result.output.splitlines()) == 5  # two source lines, header, one row, the rounding note
    bad = runner.invoke(app, ["diff", str(SEED / "allocinfo-64threads.txt"), str(BUNDLE / "0000" / "meminfo")])
    assert bad.exit_code == 2 and "cannot diff allocinfo against meminfo" in bad.output
    slabs = runner.invoke(app, ["diff", *(str(BUNDLE / snap / "slabinfo") for snap in ("0000", "0002")), "--top", "1"])
    assert slabs.exit_code == 0 and slabs.output.splitlines()[3].split()[:2] == ["vm_area_struct", "206KiB"]
    # one side from stdin: `cat /proc/slabinfo | vmaplab diff before.txt -`
    piped = runner.invoke(app, ["diff", str(BUNDLE / "0000" / "slabinfo"), "-", "--top", "1"],
                          input=(BUNDLE / "0002" / "slabinfo").read_bytes())  # fmt: skip
    assert piped.exit_code == 0 and piped.output.splitlines()[3:] == slabs.output.splitlines()[3:]
    both = runner.invoke(app, ["diff", "-", "-"], input=b"")
    assert both.exit_code == 2 and "not both" in both.output
    missing = runner.invoke(app, ["diff", str(SEED / "nothing.txt"), str(SEED / "allocinfo-64threads.txt")])
    assert missing.exit_code == 2 and "nothing.txt" in missing.output


# growth: a series of snapshots


def test_growth_over_the_thread_paste():
    # the four listings of the thread (before, 64, 128, 256 threads) in one paste, each column checked against
    # the listing's own line; the "before" excerpt has no pagetable_alloc line: unknown there, not zero
    g = vl.growth(SEED / "pagetable-thread.txt")
    assert g.attrs["labels"] == ["block 0", "block 1", "block 2", "block 3"] and g.attrs["complete"] == [False] * 4
    row = g.set_index("key").loc[PAGETABLE]
    assert pd.isna(row["block 0"]) and [row[f"block {i}"] for i in (1, 2, 3)] == [
        350 * MIB, round(1.20 * GIB), round(5.36 * GIB)]  # fmt: skip
    assert row["change"] == round(5.36 * GIB) - 350 * MIB and row["growth"] == pytest.approx(5.36 * 1024 / 350)
    assert g.iloc[0]["key"] == PAGETABLE and not g["exact"].any()
    # a tag listed once has no change and no growth
    once = g.set_index("key").loc["mm/memory.c func:folio_prealloc"]
    assert once["block 0"] == round(27.2 * MIB) and pd.isna(once["change"]) and pd.isna(once["growth"])
    calls = vl.growth([SEED / f"allocinfo-{n}threads.txt" for n in (64, 128, 256)], values="calls")
    assert calls.attrs["labels"] == ["64", "128", "256"]
    assert calls.set_index("key").loc[PAGETABLE, ["64", "128", "256"]].tolist() == [89656, 315655, 1405072]


@pytest.mark.parametrize("by", ["tag", "module", "file", "func"])
def test_growth_of_two_snapshots_is_their_diff(by):
    # excerpts (with groups an excerpt lists in part), whole listings, and the pre-merge/6.10+ fold
    pairs = [(seed("before"), seed("64threads")), (seed("128threads"), seed("256threads")),
             (text(real_listing("0000")), text(real_listing("0002"))),
             (seed("64threads"), text(real_listing("0002")))]  # fmt: skip
    for a, b in pairs:
        d, g = diff(a, b, by=by), vl.growth({"a": a, "b": b}, by=by)
        both = d.set_index("key")[["before_bytes", "after_bytes"]].join(g.set_index("key")[["a", "b"]], how="outer")
        assert len(both) == len(d) == len(g)
        assert both["before_bytes"].equals(both["a"].rename("before_bytes"))
        assert both["after_bytes"].equals(both["b"].rename("after_bytes"))
        assert g.attrs["folded_pagetables"] == d.attrs["folded_pagetables"]
    assert (PAGE_TABLES in set(g["key"])) == (by != "module")


def test_growth_over_a_real_guest_bundle():
    # a real 6.12 guest's allocinfo before and after each test_vmalloc run (one bundle): every tag's column is
    # its listing's lines summed by hand, and the page tables never shrink
    bundle = vl.read_bundle(REAL_RUN, formats=["allocinfo"])["allocinfo"]
    g = vl.growth(bundle).set_index("key")
    times = sorted(bundle["time"].unique())
    assert list(g.columns[: len(times)]) == [f"t={t:g}s" for t in times] and len(times) == 5
    for i, t in enumerate(times):
        totals = tag_totals(real_listing(f"{i:04d}"))
        assert {k: int(g.at[k, f"t={t:g}s"]) for k in totals} == {k: v[0] for k, v in totals.items()}
    pte = g.loc["mm/memory.c func:__pte_alloc_kernel", [f"t={t:g}s" for t in times]].to_numpy(dtype=float)
    assert (pte[1:] >= pte[:-1]).all() and pte[-1] > pte[0]


def test_growth_of_a_bundle_s_meminfo_and_slabinfo():
    bundle = vl.read_bundle(BUNDLE)
    mem = vl.growth(bundle["meminfo"]).set_index("key")
    for snap, part in bundle["meminfo"].groupby("snapshot"):
        label = f"t={part['time'].iloc[0]:g}s"
        assert mem[label].to_dict() == part.set_index("field")["value"].to_dict()
    assert (mem["unit"] == "bytes").loc["MemTotal"]
    # snapshots taken at one time (or without times) are numbered instead
    assert vl.growth(bundle["meminfo"].assign(time=0.0)).attrs["labels"] == ["snapshot 0", "snapshot 1", "snapshot 2"]
    objs = vl.growth(bundle["slabinfo"], values="objs").set_index("key")
    last = bundle["slabinfo"][bundle["slabinfo"]["snapshot"] == 2].set_index("name")["active_objs"]
    assert objs["t=2s"].to_dict() == last.to_dict()


def test_growth_refuses_what_it_cannot_line_up():
    with pytest.raises(ValueError, match="two or more snapshots, got 1"):
        vl.growth(SEED / "allocinfo-64threads.txt")
    with pytest.raises(ValueError, match="block 0, block 1|holds several listings"):
        vl.growth([SEED / "pagetable-thread.txt", SEED / "allocinfo-256threads.txt"])
    with pytest.raises(ValueError, match="one format, not allocinfo, meminfo"):
        vl.growth([SEED / "allocinfo-64threads.txt", BUNDLE / "0000" / "meminfo"])
    with pytest.raises(ValueError, match="its own label, none of key, unit, change"):
        vl.growth({"before": SEED / "allocinfo-64threads.txt", "change": SEED / "allocinfo-256threads.txt"})
    with pytest.raises(ValueError, match="allocinfo snapshots have values bytes, calls, not 'areas'"):
        vl.growth(SEED / "pagetable-thread.txt", values="areas")


def test_cli_growth():
    result = CliRunner().invoke(app, ["growth", str(SEED / "pagetable-thread.txt")])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith(PAGETABLE))
    assert line.split()[2:] == ["?", "350MiB", "1.20GiB", "5.36GiB", "+5.02GiB", "15.68x"]
    result = CliRunner().invoke(app, ["growth", str(BUNDLE), "--format", "vmallocinfo", "--top", "1"])
    assert result.exit_code == 0 and result.output.splitlines()[2].startswith("(unpurged vm_area)")
    refused = CliRunner().invoke(app, ["growth", str(BUNDLE)])
    assert refused.exit_code == 2 and "name one with --format" in refused.output
    refused = CliRunner().invoke(app, ["growth", str(BUNDLE), "--format", "bogus"])  # was "name one" too
    assert refused.exit_code == 2 and "--format 'bogus' is not a format" in refused.output
    refused = CliRunner().invoke(app, ["growth", str(BUNDLE), "--format", "perf_script"])
    assert refused.exit_code == 2 and "has no perf_script snapshots" in refused.output
