"""Human sizes to bytes, and the kernel's string_get_size rendering."""

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmaplab.io.units import format_size, parse_sizes

MiB, GiB = 1 << 20, 1 << 30


def test_seed_and_numfmt_sizes():
    # Sizes exactly as printed in the seed's allocinfo listings, numfmt --to=iec, procps and /proc.
    got = parse_sizes(pd.Series(["27.2MiB", "350MiB", "1.20GiB", "5.36GiB", "2.8M", "146Mi", "38.4 MiB", "512 kB", "4096"]))
    assert got["bytes"].tolist() == [
        round(27.2 * MiB), 350 * MiB, round(1.2 * GiB), round(5.36 * GiB),
        round(2.8 * MiB), 146 * MiB, round(38.4 * MiB), 512 * 1024, 4096,
    ]
    assert got["exact"].tolist() == [False] * 8 + [True]


def test_not_sizes_are_na():
    got = parse_sizes(pd.Series(["12 XB", "abc", "", "1.2.3M", "5i", "5b", "9999EiB"]))
    assert got["bytes"].isna().all() and got["exact"].isna().all()


def test_decimal_prefixes_only_without_i():
    got = parse_sizes(pd.Series(["1.2G", "1.2Gi", "5k"]), decimal=True)
    assert got["bytes"].tolist() == [1_200_000_000, round(1.2 * GiB), 5000]


@pytest.mark.parametrize(
    "nbytes, text",
    [(0, "0B"), (1023, "1023B"), (round(27.2 * MiB), "27.2MiB"), (350 * MiB, "350MiB"),
     (round(1.2 * GiB), "1.20GiB"), (round(5.36 * GiB), "5.36GiB"), (1100, "1.07KiB"), (150000, "146KiB"),
     # string_get_size's own arithmetic (lib/string_helpers.c): the remainder truncated to thousandths, then 5
     # added below the last digit and carried, so an exact half rounds up, a carry can give 1024 of a unit,
     # and a size below 100 of its unit keeps decimals even in bytes
     (1179648, "1.13MiB"), (MiB - 1, "1024KiB"), (MiB + 10 * 1024 + 1023, "1.01MiB"), (5, "5.00B"),
     (-1179648, "-1.13MiB")],
)  # fmt: skip
def test_format_size_like_string_get_size(nbytes, text):
    assert format_size(nbytes) == text


def test_format_size_gives_what_the_seeds_kernel_printed():
    # data/seed: pagetable_alloc's page-table pages are order-0 pages, so the tag's bytes are its calls x 4096;
    # the kernel printed "350MiB", "1.20GiB" and "5.36GiB" for them
    for calls, printed in [(89656, "350MiB"), (315655, "1.20GiB"), (1405072, "5.36GiB")]:
        assert format_size(calls * 4096) == printed


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=1 << 62))
def test_format_then_parse_is_within_rounding(nbytes):
    back = int(parse_sizes(pd.Series([format_size(nbytes)]))["bytes"].iloc[0])
    assert abs(back - nbytes) <= max(0.006 * nbytes, 0)
