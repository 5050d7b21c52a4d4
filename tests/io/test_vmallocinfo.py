"""read_vmallocinfo on real captures (data/real, see its SOURCES.md) and small real-format edge cases."""

import io
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _line_mutations import mutated

from vmaplab.errors import BadLineWarning, ParseError
from vmaplab.io._source import Paste
from vmaplab.io.vmallocinfo import read_vmallocinfo, sniff

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "data" / "real"
KPTR1 = REAL / "vmallocinfo-kptr1.txt"
LINES = KPTR1.read_text().splitlines()


def _read(text: str, **kw) -> pd.DataFrame:
    return read_vmallocinfo(io.StringIO(textwrap.dedent(text)), **kw)


def test_real_addresses_kptr_restrict_1():
    df = read_vmallocinfo(KPTR1)
    assert df.attrs["format"] == "vmallocinfo"
    assert df.attrs["address_kind"] == "real"
    assert df.attrs["skipped_lines"] == 0 and df.attrs["bad_lines"] == []
    assert len(df) == 906
    first = df.iloc[0]  # 0xffffc90000000000-0xffffc90000005000   20480 irq_init_percpu_irqstack+0xca/0x100 vmap
    assert first["start"] == 0xFFFFC90000000000 and first["end"] == 0xFFFFC90000005000
    assert first["size"] == 20480 and first["caller"] == "irq_init_percpu_irqstack"
    assert first["caller_offset"] == 0xCA and first["vmap"] and not first["vmalloc"]
    assert pd.isna(first["pages"]) and pd.isna(first["phys"]) and pd.isna(first["n0"]) and pd.isna(first["module"])
    ioremap = df.iloc[1]  # ... 8192 acpi_os_map_iomem+0x1bc/0x1e0 phys=0x00000000000a0000 ioremap
    assert ioremap["phys"] == 0xA0000 and ioremap["ioremap"] and ioremap["size"] == 8192
    stack = df.iloc[3]  # ... 20480 kernel_clone+0x94/0x3e0 pages=4 vmalloc N0=4
    assert (stack["caller"], stack["pages"], stack["n0"], stack["vmalloc"]) == ("kernel_clone", 4, 4, True)
    # the size includes the guard page: 4 pages of stack + 1 guard page
    assert stack["size"] == (stack["pages"] + 1) * 4096
    assert df["unpurged"].sum() == 663 and df["vmalloc"].sum() == 212 and df["ioremap"].sum() == 29
    last = df.iloc[-1]  # 0xffffc9000c52c000-0xffffc9000c531000   20480 unpurged vm_area
    assert last["unpurged"] and last["start"] == 0xFFFFC9000C52C000 and pd.isna(last["caller"])
    # the page-pointer array of areas above 512 pages is itself vmalloc'ed ("vpages", kernel-facts §1.3)
    vp = df[df["vpages"]]
    assert list(vp["pages"]) == [513, 641, 577] and set(vp["caller"]) == {"htab_map_alloc"}
    assert (df["end"] - df["start"] == df["size"].astype("UInt64")).all()
    assert df.attrs["nodes"] == [0] and df["pages"].sum() == df["n0"].sum() == 3599


def test_dtypes():
    df = read_vmallocinfo(KPTR1)
    assert str(df["start"].dtype) == "UInt64" and str(df["phys"].dtype) == "UInt64"
    assert df["size"].dtype == np.int64 and df["block"].dtype == np.int64
    assert str(df["pages"].dtype) == "Int64" and str(df["n0"].dtype) == "Int64"
    assert str(df["caller_offset"].dtype) == "Int64"
    assert isinstance(df["caller"].dtype, pd.StringDtype) and isinstance(df["module"].dtype, pd.StringDtype)
    flags = ["ioremap", "sparse", "vmalloc", "vmap", "user", "dma_coherent", "vpages", "vm_map_ram", "unpurged"]
    assert all(df[c].dtype == bool for c in flags)


def test_hashed_and_zero_addresses_same_areas():
    real = read_vmallocinfo(KPTR1)
    hashed = read_vmallocinfo(REAL / "vmallocinfo-kptr0.txt")
    zero = read_vmallocinfo(REAL / "vmallocinfo-kptr2.txt")
    assert hashed.attrs["address_kind"] == "hashed" and zero.attrs["address_kind"] == "zero"
    # %pK hashes are 32-bit ids: the upper half is zero
    assert (hashed["start"] < 2**32).all() and (zero["start"] == 0).all() and (zero["end"] == 0).all()
    rest = [c for c in real.columns if c not in ("start", "end")]
    pd.testing.assert_frame_equal(hashed[rest], real[rest])
    pd.testing.assert_frame_equal(zero[rest], real[rest])


def test_collected_bundle_file():
    df = read_vmallocinfo(REAL / "bundle-vm-2cpu-churn" / "0002" / "vmallocinfo")
    assert df.attrs["address_kind"] == "real" and len(df) == 2872
    assert (df["start"] >= 0xFFFFC90000000000).all()


def test_format_samples_of_kernel_facts():
    # Line shapes of kernel-facts §4.3 (module caller, several NUMA nodes, vm_map_ram, user and
    # dma-coherent flags, a caller printed as a bare address); addresses from the kptr1 capture.
    df = _read(
        """\
        0xffffc90000000000-0xffffc90000005000   20480 xt_alloc_table_info+0xfe/0x130 [x_tables] pages=4 vmalloc N0=1 N2=3
        0xffffc90000005000-0xffffc90000007000    8192 vm_map_ram
        0xffffc90000008000-0xffffc9000000b000   12288 dma_direct_alloc+0x1a/0x40 pages=2 vmap user dma-coherent
        0xffffc9000000c000-0xffffc90000011000   20480 0xffffffff81234567 pages=4 vmalloc N1=4
        """
    )
    assert list(df["module"].fillna("-")) == ["x_tables", "-", "-", "-"]
    assert df.loc[0, "caller"] == "xt_alloc_table_info" and df.loc[0, "caller_offset"] == 0xFE
    assert df.attrs["nodes"] == [0, 1, 2]
    assert list(df.loc[0, ["n0", "n1", "n2"]]) == [1, 0, 3]
    assert df.loc[1, "vm_map_ram"] and pd.isna(df.loc[1, "n0"]) and pd.isna(df.loc[1, "caller"])
    assert df.loc[2, ["vmap", "user", "dma_coherent"]].all() and not df.loc[2, "vmalloc"]
    assert df.loc[3, "caller"] == "0xffffffff81234567" and pd.isna(df.loc[3, "caller_offset"])
    assert list(df.loc[3, ["n0", "n1", "n2"]]) == [0, 4, 0]


def test_email_paste_two_listings_and_prose():
    text = "\n".join(
        ["Before the test:", "root@vm:~# cat /proc/vmallocinfo", *["> " + ln for ln in LINES[:5]],
         "", "and after it:", "root@vm:~# cat /proc/vmallocinfo", *["> " + ln for ln in LINES[5:8]]]
    )
    df = read_vmallocinfo(io.StringIO(text))
    assert list(df["block"]) == [0] * 5 + [1] * 3
    assert df.attrs["skipped_lines"] == 4
    assert df["start"].iloc[5] == 0xFFFFC90000024000  # line 6 of the capture
    assert (df["end"] - df["start"] == df["size"].astype("UInt64")).all()


def test_listings_with_only_a_blank_line_between_them_are_two():
    # /proc/vmallocinfo has no blank line; two hashed listings (kptr_restrict 0) pasted with one between them
    # were one listing, and diff against one of them found every caller doubled
    import vmaplab as vl

    hashed = (REAL / "vmallocinfo-kptr0.txt").read_text()
    df = read_vmallocinfo(io.StringIO(hashed + "\n" + hashed))
    assert df["block"].value_counts().sort_index().tolist() == [906, 906] and df.attrs["skipped_lines"] == 0
    assert (vl.diff(REAL / "vmallocinfo-kptr0.txt", df)["status"] == "same").all()


def test_wrapped_line_is_rejoined():
    line = LINES[3]  # ... kernel_clone+0x94/0x3e0 pages=4 vmalloc N0=4
    cut = line.index(" vmalloc")
    df = read_vmallocinfo(io.StringIO("\n".join([LINES[2], line[:cut], "    " + line[cut:], LINES[4]])))
    assert len(df) == 3 and df.attrs["skipped_lines"] == 0
    assert df.loc[1, "vmalloc"] and df.loc[1, "n0"] == 4 and df.loc[1, "caller"] == "kernel_clone"


def test_truncated_line_raises_with_line_number():
    text = "\n".join(LINES[:3] + [LINES[3][:60]])
    with pytest.raises(ParseError) as info:
        read_vmallocinfo(io.StringIO(text))
    assert info.value.lineno == 4 and "line 4" in str(info.value) and "vmallocinfo line" in str(info.value)
    df = read_vmallocinfo(io.StringIO(text), on_bad_lines="skip")
    assert len(df) == 3 and [b["lineno"] for b in df.attrs["bad_lines"]] == [4]
    with pytest.warns(BadLineWarning, match="skipped 1 bad line"):
        read_vmallocinfo(io.StringIO(text), on_bad_lines="warn")


def test_record_cut_before_its_range_is_bad_between_two_others():
    lines = list(LINES)
    lines[5] = lines[5][2:]  # "ffffc9...-0x..." without its leading 0x: not a record, not prose either
    with pytest.raises(ParseError, match=r"line 6: expected a vmallocinfo line"):
        read_vmallocinfo(io.StringIO("\n".join(lines)))
    df = read_vmallocinfo(io.StringIO("\n".join(lines)), on_bad_lines="skip")
    assert len(df) == len(LINES) - 1 and df["block"].eq(0).all()


def test_out_of_range_numbers_are_bad_lines():
    line = LINES[3]  # ... pages=4 vmalloc N0=4
    for bad in (line.replace("N0=4", "N0=99999999999999999999"), line.replace("20480", "99999999999999999999")):
        with pytest.raises(ParseError) as info:
            read_vmallocinfo(io.StringIO(bad))
        assert info.value.lineno == 1


def test_no_record_raises_at_first_text_line():
    with pytest.raises(ParseError) as info:
        read_vmallocinfo(io.StringIO("\nMemTotal:       24684084 kB\nMemFree: 1 kB\n"))
    assert info.value.lineno == 2


def test_gzip_and_binary_stream(tmp_path):
    import gzip

    path = tmp_path / "vmallocinfo.txt.gz"
    path.write_bytes(gzip.compress(KPTR1.read_bytes()))
    a = read_vmallocinfo(path)
    b = read_vmallocinfo(io.BytesIO(KPTR1.read_bytes()))
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 906


def test_sniff_counts_only_vmallocinfo():
    assert sniff(Paste.read(KPTR1)) == 906
    others = [REAL / "meminfo.txt", REAL / "vmstat.txt", REAL / "slabinfo.txt",
              REAL / "vmalloc-trace-perf-thread-churn.txt.gz", ROOT / "data/seed/pagetable-thread.txt",
              ROOT / "data/seed/v3-cover-quoted.txt"]  # fmt: skip
    for path in others:
        assert sniff(Paste.read(path)) == 0, path


EXCERPT = LINES[:12] + LINES[240:246]


def _keys(df: pd.DataFrame) -> list[tuple]:
    cols = df[["start", "end", "size", "caller"]].astype(object)
    return [(int(a), int(b), int(c), str(d)) for a, b, c, d in cols.itertuples(index=False)]


EXCERPT_KEYS = dict(zip(EXCERPT, _keys(read_vmallocinfo(io.StringIO("\n".join(EXCERPT))))))
# The line grammar, written again here to check the reader against (module docstring, the flags in order).
_AREA = re.compile(
    r"\s*0x[0-9a-fA-F]{1,16}-0x[0-9a-fA-F]{1,16}\s+(?P<size>\d{1,18})(?:\s+unpurged vm_area|\s+vm_map_ram|"
    r"(?:\s+(?:[^\s+\[\]]+\+0x[0-9a-fA-F]{1,15}/0x[0-9a-fA-F]+|0x[0-9a-fA-F]{1,16})(?:\s+\[[^\]\s]+\])?)?"
    r"(?:\s+pages=\d{1,18})?(?:\s+phys=(?:0x)?[0-9a-fA-F]{1,16})?(?:\s+ioremap)?(?:\s+sparse)?(?:\s+vmalloc)?"
    r"(?:\s+vmap)?(?:\s+user)?(?:\s+dma-coherent)?(?:\s+vpages)?(?:\s+N\d{1,4}=\d{1,18})*)\s*"
)


def _damaged(lines: list[str]) -> set[int]:
    """Numbers of the lines that are no whole area but recognisably one damaged: starting like an area
    ('0x...-0x'), between two areas, or right below an area the start of one (cut short)."""
    area = [_AREA.fullmatch(line) for line in lines]
    out = set()
    for i, line in enumerate(lines):
        if not line.strip() or (area[i] and int(area[i]["size"]) % 4096 == 0):
            continue
        above, below = i > 0 and area[i - 1], i + 1 < len(lines) and area[i + 1]
        cut = re.fullmatch(r"\s*0(?:x[0-9a-fA-F]*(?:-0?)?)?\s*", line)
        if re.match(r"\s*0x[0-9a-fA-F]+-0x", line) or (above and (below or cut)):
            out.add(i + 1)
    return out


@settings(max_examples=150, deadline=None)
@given(mutated("\n".join(EXCERPT)))
def test_mutated_real_input(text):
    lines = text.splitlines()
    try:
        read_vmallocinfo(io.StringIO(text))
    except ParseError:
        pass
    try:
        df = read_vmallocinfo(io.StringIO(text), on_bad_lines="skip")
    except ParseError as exc:  # binary junk, or nothing left that starts like an area
        assert "binary" in exc.expected or not any(re.match(r"\s*0x[0-9a-fA-F]+-0x", ln) for ln in lines)
        return
    found = _keys(df)
    for line in lines:
        if line in EXCERPT_KEYS:  # an unchanged real record is never dropped
            assert EXCERPT_KEYS[line] in found
    assert len(df) + len(df.attrs["bad_lines"]) <= len(lines)
    # the bad lines are exactly the damaged ones: never an intact line, never a damaged one passed over
    assert [b["lineno"] for b in df.attrs["bad_lines"]] == sorted(_damaged(lines))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_parse_error(text):
    try:
        read_vmallocinfo(io.StringIO(text))
    except ParseError:
        pass
