"""test_vmalloc's test cases and module parameters, as the simulator runs them.

The table follows lib/test_vmalloc.c of Linux 6.7/6.9 (the test_case_array order gives the
``run_test_mask`` bit of each test); sizes are the caller's pages (the guard page is added by the
allocator). Each test's loop body is written out in :func:`worker_program`, the executable description
that the contention engine's jitted state machine mirrors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import PAGE_SIZE, lazy_max_pages
from .reference import OP_ALLOC, OP_FREE

__all__ = [
    "TestCase", "TESTS", "ModuleParams", "parse_test_mask", "worker_program", "allocations_per_repetition",
    "OP_ALLOC", "OP_FREE",
]  # fmt: skip

# x86_64 THREAD_SIZE without KASAN (arch/x86/include/asm/page_64_types.h, 6.7/6.9: 16 KiB), THREAD_ALIGN equals
# it; fix_align_alloc_test asks for THREAD_ALIGN << 1.
THREAD_ALIGN = 16 << 10
# lib/test_vmalloc.c long_busy_list_alloc_test (6.7/6.9): 15000 one-page areas kept busy.
LONG_BUSY_AREAS = 15000


@dataclass(frozen=True)
class TestCase:
    """One test_vmalloc test: its run_test_mask bit, name, whether it is expected to fail, and
    whether its allocations ask for zeroed pages (__GFP_ZERO)."""

    bit: int
    name: str
    xfail: bool = False
    gfp_zero: bool = False

    @property
    def mask(self) -> int:
        """The test's bit in run_test_mask."""
        return 1 << self.bit


# lib/test_vmalloc.c test_case_array (6.7/6.9), bits 0..9. Bit 7 (pcpu_alloc_test) goes through the
# percpu allocator's pcpu_get_vm_areas and bit 10 (vm_map_ram_test) through per-CPU vmap blocks:
# neither is modelled (see :func:`parse_test_mask`).
TESTS: tuple[TestCase, ...] = (
    TestCase(0, "fix_size_alloc_test"),
    TestCase(1, "full_fit_alloc_test"),
    TestCase(2, "long_busy_list_alloc_test"),
    TestCase(3, "random_size_alloc_test"),
    TestCase(4, "fix_align_alloc_test", gfp_zero=True),
    TestCase(5, "random_size_align_alloc_test", gfp_zero=True),
    TestCase(6, "align_shift_alloc_test", xfail=True, gfp_zero=True),
    TestCase(7, "pcpu_alloc_test"),
    TestCase(8, "kvfree_rcu_1_arg_vmalloc_test"),
    TestCase(9, "kvfree_rcu_2_arg_vmalloc_test"),
)
MODELLED_BITS = (0, 1, 2, 3, 4, 5, 6)


def parse_test_mask(tests: int | list[str] | tuple[str, ...]) -> int:
    """A run_test_mask from an int or a list of test names; only modelled tests are accepted."""
    if isinstance(tests, (int, np.integer)) and not isinstance(tests, bool):
        mask = int(tests)
    else:
        by_name = {t.name: t for t in TESTS}
        unknown = [name for name in tests if name not in by_name]
        if unknown:
            raise ValueError(f"unknown test_vmalloc tests {unknown}; known: {', '.join(by_name)}")
        mask = sum(by_name[name].mask for name in set(tests))
    if mask <= 0:
        raise ValueError(f"run_test_mask must select at least one test, got {mask}")
    unmodelled = [t.name for t in TESTS if mask & t.mask and t.bit not in MODELLED_BITS]
    if unmodelled or mask >> len(TESTS):
        raise ValueError(
            f"run_test_mask {mask:#x} selects tests the simulator does not model: "
            f"{', '.join(unmodelled) or 'bits above 9'} (modelled: bits {MODELLED_BITS[0]}-{MODELLED_BITS[-1]})"
        )
    return mask


@dataclass(frozen=True)
class ModuleParams:
    """test_vmalloc's module parameters (lib/test_vmalloc.c, 6.7/6.9) with the values its defaults
    take effect as: nr_threads and nr_pages default to 0, which the module makes 1. run_test_mask is
    the exception: the kernel's default, INT_MAX, selects every test, also those the model lacks
    (vm_map_ram_test and later bits); 127 selects the seven it has."""

    nr_threads: int = 1
    test_loop_count: int = 1_000_000
    test_repeat_count: int = 1
    run_test_mask: int = 127
    sequential_test_order: bool = False
    nr_pages: int = 1

    def tests(self) -> list[TestCase]:
        """The selected tests in bit order (the order of the dmesg summary)."""
        mask = parse_test_mask(self.run_test_mask)
        return [t for t in TESTS if mask & t.mask]


def allocations_per_repetition(test: TestCase, params: ModuleParams, cpus: int) -> int:
    """How many allocations one repetition of ``test`` asks for: the OP_ALLOC rows of :func:`worker_program`.

    For align_shift_alloc_test this is an upper bound: a worker stops that test at its first failure.
    """
    loops = params.test_loop_count
    if test.name == "full_fit_alloc_test":
        return 2 + 2 * lazy_max_pages(cpus) + loops
    if test.name == "long_busy_list_alloc_test":
        return 1 + LONG_BUSY_AREAS + 2 * loops
    if test.name == "align_shift_alloc_test":
        return 63
    if test.bit not in MODELLED_BITS:
        raise ValueError(f"{test.name} is not modelled")
    return loops


def worker_program(test: TestCase, params: ModuleParams, cpus: int, rng: np.random.Generator) -> np.ndarray:
    """One worker's run of one test as rows ``(op, a, b)`` of an operation stream.

    ``op`` is OP_ALLOC (``a`` pages at alignment ``b`` bytes) or OP_FREE (``a`` = index, within this
    program, of the row that allocated the area). An area freed at the end of the test is freed in the
    order the test frees it. Failures (align_shift_alloc_test) are the allocator's to decide: the row of
    every alignment is emitted, and a caller that sees a failure stops that test there.

    ``cpus`` is the machine's online CPU count (full_fit_alloc_test sizes its junk from it).
    """
    rows: list[tuple[int, int, int]] = []

    def alloc(pages: int, align: int = 1) -> int:
        rows.append((OP_ALLOC, pages, align))
        return len(rows) - 1

    def free(row: int) -> None:
        rows.append((OP_FREE, row, 0))

    loops = params.test_loop_count
    nr_pages = max(params.nr_pages, 1)
    if test.name == "fix_size_alloc_test":
        for _ in range(loops):
            free(alloc(nr_pages))
    elif test.name == "full_fit_alloc_test":
        junk_length = lazy_max_pages(cpus)  # fls(num_online_cpus()) * (32 MiB / PAGE_SIZE) pointers
        array_pages = -(-junk_length * 8 // PAGE_SIZE)
        ptr_array, junk_array = alloc(array_pages), alloc(array_pages)
        ptrs, junk = [], []
        for _ in range(junk_length):
            ptrs.append(alloc(1))
            junk.append(alloc(1))
        for row in junk:
            free(row)
        for _ in range(loops):
            free(alloc(1))
        for row in ptrs:
            free(row)
        free(ptr_array)
        free(junk_array)
    elif test.name == "long_busy_list_alloc_test":
        array = alloc(-(-LONG_BUSY_AREAS * 8 // PAGE_SIZE))
        busy = [alloc(1) for _ in range(LONG_BUSY_AREAS)]
        for _ in range(loops):
            first, second = alloc(100), alloc(1)
            free(first)
            free(second)
        for row in busy:
            free(row)
        free(array)
    elif test.name == "random_size_alloc_test":
        for n in rng.integers(1, 101, size=loops):
            free(alloc(int(n)))
    elif test.name == "fix_align_alloc_test":
        for _ in range(loops):
            free(alloc(5, THREAD_ALIGN << 1))
    elif test.name == "random_size_align_alloc_test":
        for r in rng.integers(0, 256, size=loops):
            free(alloc(int(r % 10) + 1, 1 << int(r % 23)))
    elif test.name == "align_shift_alloc_test":
        # The kernel tries 1 << 0 ... 1 << 63; an int64 row holds alignments up to 1 << 62, and every
        # shift from 45 (32 TiB window, 4-level paging) or 54 (12,800 TiB, 5-level) on fails anyway: an
        # aligned request looks for a free block of size + alignment - 1 bytes (mm/vmalloc.c
        # __alloc_vmap_area, 6.7-6.12), longer than the window.
        for shift in range(63):
            free(alloc(1, 1 << shift))
    else:
        raise ValueError(f"{test.name} is not modelled")
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)
