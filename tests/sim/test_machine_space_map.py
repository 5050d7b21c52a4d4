"""Machine.space_map: the vmalloc window in address bins, page tables against pages in use."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import vmaplab as vl
from vmaplab.sim import emit
from vmaplab.sim.machine import SPACE_MAP_COLUMNS, Machine
from vmaplab.sim.params import PAGE_SIZE

GIB = 1 << 30
COUNTED = ["pte_pages", "pmd_pages", "busy_pages", "lazy_pages", "pooled_pages"]


def _oracle(machine: Machine, bin_bytes: int) -> pd.DataFrame:
    """The same map counted page by page from the engine's state snapshot (Python loops)."""
    st = machine.allocator.state()
    bin_pages = bin_bytes // PAGE_SIZE
    base = machine.config.base_page
    ranges = {"busy_pages": list(zip(*(a.tolist() for a in st["busy"])))}
    ranges["lazy_pages"] = [va for node in st["lazy"] for va in node]
    ranges["pooled_pages"] = [(s, cls + 1) for (_, cls), starts in st["pools"].items() for s in starts]
    pte = [max((r << 9) - base, 0) for r in st["pte_regions"].tolist()]
    pmd = [max((r << 18) - base, 0) for r in st["pmd_regions"].tolist()]
    ends = [s + n for vas in ranges.values() for s, n in vas] + [p + 1 for p in pte + pmd]
    n_bins = -(-max(ends) // bin_pages)
    out = {c: [0] * n_bins for c in COUNTED}
    for p in pte:
        out["pte_pages"][p // bin_pages] += 1
    for p in pmd:
        out["pmd_pages"][p // bin_pages] += 1
    for col, vas in ranges.items():
        for start, size in vas:
            for page in range(start, start + size):
                out[col][page // bin_pages] += 1
    return pd.DataFrame({"offset": [i * bin_bytes for i in range(n_bins)], **out})


def test_sums_are_the_runs_figures(chain):
    for run in chain:
        sm = run.space_map
        assert list(sm.columns) == list(SPACE_MAP_COLUMNS) and (sm.dtypes == "int64").all()
        assert sm["pte_pages"].sum() * PAGE_SIZE == run.pagetable_bytes_by_level["pte"]
        assert sm["pmd_pages"].sum() * PAGE_SIZE == run.pagetable_bytes_by_level["pmd"]
        end = run.timeline.iloc[-1]  # the timeline's last row is the run's end
        for col in ("busy_pages", "lazy_pages", "pooled_pages"):
            assert sm[col].sum() == end[col], col
        assert (np.diff(sm["offset"]) == GIB).all() and sm["offset"].iloc[0] == 0
        assert sm.attrs["bin_bytes"] == GIB and sm.attrs["va_high_water"] == run.va_high_water
    assert chain[1].space_map["lazy_pages"].sum() + chain[1].space_map["pooled_pages"].sum() > 0


def test_page_tables_never_shrink_between_runs(chain):
    maps = [run.space_map.set_index("offset") for run in chain]
    for before, after in zip(maps, maps[1:]):
        grown = after.reindex(after.index.union(before.index), fill_value=0)
        kept = before.reindex(grown.index, fill_value=0)
        assert (grown["pte_pages"] >= kept["pte_pages"]).all() and (grown["pmd_pages"] >= kept["pmd_pages"]).all()
    assert maps[1]["pte_pages"].sum() > maps[0]["pte_pages"].sum()  # more threads, higher frontier


def test_machine_map_is_the_last_runs_map(chain):
    pd.testing.assert_frame_equal(chain[-1].machine.space_map(), chain[-1].space_map)


def test_bins_agree_with_a_page_by_page_count():
    """Busy, lazy and pooled VAs, some spanning bins, counted in 64 KiB bins against the oracle."""
    m = Machine("nodes", cpus=4)
    a = m.allocator
    small = [a.alloc(pages, 4096, cpu) for cpu in range(4) for pages in (1, 3, 7, 15)]
    big = [a.alloc(600, 1 << 21, 0), a.alloc(40, 4096, 1)]
    for off in small[::2]:
        a.free(off, 0)
    a.drain()  # freed small VAs go to the pools
    for off in small[1::4] + big[:1]:
        a.free(off, 1)  # these stay lazily freed
    s = a.stats()
    assert s["busy_pages"] and s["lazy_pages"] and s["pooled_pages"]
    for bin_bytes in (16 * PAGE_SIZE, 2 << 20, GIB):
        got = m.space_map(bin_bytes)
        pd.testing.assert_frame_equal(got, _oracle(m, bin_bytes), check_dtype=False)
        assert got[COUNTED].sum().tolist() == [s[c] for c in COUNTED]


def test_empty_machine_and_bad_bins():
    sm = Machine("global", cpus=2).space_map()
    assert sm.empty and list(sm.columns) == list(SPACE_MAP_COLUMNS)
    for bad in (0, 1000, -GIB, True, 1.5 * GIB):
        with pytest.raises(ValueError, match="bin_bytes"):
            Machine("global", cpus=2).space_map(bad)


def test_bundle_carries_each_runs_map(chain, tmp_path):
    emit.write_bundle(list(chain), tmp_path / "b")
    data = vl.read_bundle(tmp_path / "b", formats=["allocinfo"])
    paths = data["allocinfo"].attrs["manifest"]["extra"]["space_maps"]
    assert paths == ["0000/space_map.csv", "0001/space_map.csv", "0002/space_map.csv"]
    for run, rel in zip(chain, paths):
        back = pd.read_csv(tmp_path / "b" / rel)
        pd.testing.assert_frame_equal(back, run.space_map)
