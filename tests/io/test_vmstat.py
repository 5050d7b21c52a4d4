"""read_vmstat on this host's /proc/vmstat, pastes and damaged copies; units against /proc/meminfo."""

import io
import re
from collections import Counter
from pathlib import Path

import pytest
from _line_mutations import mutated
from hypothesis import given, settings
from hypothesis import strategies as st

from vmaplab.errors import ParseError
from vmaplab.io._source import Paste
from vmaplab.io.meminfo import read_meminfo
from vmaplab.io.vmstat import read_vmstat, sniff

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "data" / "real" / "vmstat.txt"
MEMINFO = ROOT / "data" / "real" / "meminfo.txt"

WELL_FORMED = re.compile(r"^([a-z][a-z0-9_]*)[ \t]+(\d{1,18})[ \t]*$")


def _stream(text: str) -> io.StringIO:
    return io.StringIO(text)


def test_this_host_capture():
    df = read_vmstat(REAL)
    assert df.dtypes.astype(str).to_dict() == {"block": "int64", "field": "string", "value": "int64", "unit": "string"}
    assert len(df) == 192 and df["field"].is_unique and (df["block"] == 0).all()
    v = df.set_index("field")
    assert v.loc["nr_free_pages", "value"] == 934622 and v.loc["nr_free_pages", "unit"] == "pages"
    assert v.loc["nr_page_table_pages", "unit"] == "pages"
    assert v.loc["pgfault", "unit"] == "count" and v.loc["numa_hit", "unit"] == "count"
    # pgpgin/pgpgout: sectors halved to KiB as mm/vmstat.c's vmstat_start() prints them (were "count")
    assert v.loc["pgpgin", "unit"] == "kB" and v.loc["pgpgout", "unit"] == "kB"
    assert df["unit"].value_counts().to_dict() == {"count": 138, "pages": 46, "huge pages": 5, "kB": 3}
    assert df.attrs["format"] == "vmstat" and df.attrs["skipped_lines"] == 0


def test_units_agree_with_meminfo_of_the_same_moment():
    # meminfo.txt was captured right before vmstat.txt on the same host
    vm = read_vmstat(REAL).set_index("field")["value"]
    mi = read_meminfo(MEMINFO).set_index("field")["value"]
    assert vm["nr_kernel_stack"] * 1024 == mi["KernelStack"]  # "kB"
    assert vm["nr_anon_transparent_hugepages"] * mi["Hugepagesize"] == mi["AnonHugePages"]  # "huge pages"
    assert vm["nr_unevictable"] * 4096 == mi["Unevictable"]  # "pages"


def test_tlb_events_are_counts_even_with_nr_prefix():
    # made-up values: no capture here prints the nr_tlb_* events, which need CONFIG_DEBUG_TLBFLUSH; their names
    # are those of include/linux/vm_event_item.h (NR_TLB_REMOTE_FLUSH, NR_TLB_LOCAL_FLUSH_ALL), lower-cased
    text = "nr_tlb_remote_flush 12\nnr_tlb_local_flush_all 3\nnr_dirtied 99\n"
    assert read_vmstat(_stream(text))["unit"].tolist() == ["count", "count", "pages"]


def test_paste_with_prompts_and_repeats():
    real = REAL.read_text()
    paste = "root@vm:~# cat /proc/vmstat\n" + real + "root@vm:~# sleep 1; cat /proc/vmstat\n" + real + real
    df = read_vmstat(_stream(paste))
    assert df["block"].value_counts().sort_index().tolist() == [192, 192, 192]
    assert df.attrs["skipped_lines"] == 2


def test_bad_lines():
    lines = REAL.read_text().splitlines()
    lines[3] = "nr_zone_active_anon 39x3"
    lines[-1] = "direct_map_level3_coll"  # the last line cut inside the name
    lines[99] = "pgfa"  # a counter garbled between two others: bad, though a lone word elsewhere is prose
    with pytest.raises(ParseError, match=r"line 4: expected a /proc/vmstat line"):
        read_vmstat(_stream("\n".join(lines)))
    df = read_vmstat(_stream("\n".join(lines)), on_bad_lines="skip")
    assert [b["lineno"] for b in df.attrs["bad_lines"]] == [4, 100, 192] and len(df) == 189
    assert df["block"].eq(0).all()
    huge = REAL.read_text() + "pgfault 99999999999999999999\n"
    with pytest.raises(ParseError, match=r"line 193: expected a counter value below 2\*\*63"):
        read_vmstat(_stream(huge))


def test_prose_is_not_a_bad_line():
    text = "Here is vmstat after the run.\nthanks\n" + REAL.read_text() + "\nRegards\n"
    df = read_vmstat(_stream(text))
    assert len(df) == 192 and df.attrs["skipped_lines"] == 3 and df.attrs["bad_lines"] == []


def test_no_vmstat_at_all():
    with pytest.raises(ParseError) as err:
        read_vmstat(MEMINFO)
    assert err.value.lineno == 1 and err.value.line.startswith("MemTotal:")


def test_sniff_counts_only_vmstat():
    assert sniff(Paste.read(REAL)) == 192
    others = [ROOT / "data" / "real" / f for f in ("meminfo.txt", "slabinfo.txt", "free-m-c3.txt", "vmallocinfo-kptr1.txt")]
    others += [ROOT / "data" / "seed" / f for f in ("pagetable-thread.txt", "allocinfo-before.txt", "perf-report-6.7.txt")]
    assert [sniff(Paste.read(p)) for p in others] == [0] * len(others)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_parse_error(text):
    for mode in ("error", "skip"):
        try:
            read_vmstat(_stream(text), on_bad_lines=mode)
        except ParseError:
            pass


@settings(max_examples=100, deadline=None)
@given(mutated(REAL.read_text()))
def test_damaged_copies(text):
    try:
        read_vmstat(_stream(text))
    except ParseError:
        pass
    df = read_vmstat(_stream(text), on_bad_lines="skip")
    good = Counter((m.group(1), int(m.group(2))) for m in map(WELL_FORMED.match, text.splitlines()) if m)
    got = Counter(zip(df["field"], df["value"]))
    assert not good - got, f"well-formed lines missing from the frame: {good - got}"
