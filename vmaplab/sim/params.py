"""Every constant of the simulator, each with its source, and the resolved allocator configuration.

Sources are kernel files with the version read (mm/vmalloc.c of Linux 6.7 for the global design, of
Linux 6.9 for the vmap-node series); the project's kernel fact sheet collects them with section
numbers (§N), and ``docs/allocator-model.md`` says how the model uses them.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PAGE_SIZE",
    "PAGE_SHIFT",
    "GUARD_PAGES",
    "VMALLOC_START_L4",
    "VMALLOC_SIZE_L4",
    "VMALLOC_START_L5",
    "VMALLOC_SIZE_L5",
    "PTE_REGION_PAGES",
    "PMD_REGION_PAGES",
    "LAZY_PAGES_PER_FLS",
    "MAX_NODES",
    "ZONE_PAGES",
    "POOL_CLASSES",
    "DECAY",
    "lazy_max_pages",
    "fls",
    "AllocatorConfig",
]

# arch/x86/include/asm/page_types.h (all versions): 4 KiB pages.
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
# mm/vmalloc.c __get_vm_area_node (6.7, 6.9): one guard page after every area unless VM_NO_GUARD.
GUARD_PAGES = 1
# arch/x86/include/asm/pgtable_64_types.h (6.7/6.9): __VMALLOC_BASE_L4, VMALLOC_SIZE_TB_L4 = 32.
VMALLOC_START_L4 = 0xFFFFC90000000000
VMALLOC_SIZE_L4 = 32 << 40
# Same file: __VMALLOC_BASE_L5, VMALLOC_SIZE_TB_L5 = 12800.
VMALLOC_START_L5 = 0xFFA0000000000000
VMALLOC_SIZE_L5 = 12800 << 40
# x86_64 page tables (arch/x86/include/asm/pgtable_64_types.h PMD_SHIFT 21, PUD_SHIFT 30): one PTE page
# maps 512 pages (2 MiB), one PMD page maps 512 * 512 pages (1 GiB).
PTE_REGION_PAGES = 512
PMD_REGION_PAGES = 512 * 512
# mm/vmalloc.c lazy_max_pages() (6.7, 6.9, unchanged since): fls(num_online_cpus()) * (32 MiB / PAGE_SIZE).
LAZY_PAGES_PER_FLS = (32 << 20) // PAGE_SIZE
# mm/vmalloc.c vmap_init_nodes() (6.9): nr_vmap_nodes = clamp(num_possible_cpus(), 1, 128) on 64-bit.
MAX_NODES = 128
# mm/vmalloc.c vmap_init_nodes() (6.9): vmap_zone_size = 16 * PAGE_SIZE when there is more than one node.
ZONE_PAGES = 16
# mm/vmalloc.c MAX_VA_SIZE_PAGES (6.9): 256 size-segregated pools per node, VA sizes 1..256 pages.
POOL_CLASSES = 256
# mm/vmalloc.c decay_va_pool_node() (6.9): a drain decays each pool by len >> 2, i.e. a quarter.
DECAY = 0.25


def fls(x: int) -> int:
    """Find last set bit, 1-based, as the kernel's fls(): fls(0) = 0, fls(1) = 1, fls(64) = 7."""
    return int(x).bit_length()


def lazy_max_pages(cpus: int) -> int:
    """The kernel's lazy_max_pages() for ``cpus`` online CPUs, in pages (64 CPUs: 57344 = 224 MiB)."""
    return fls(cpus) * LAZY_PAGES_PER_FLS


_kernel_lazy_max_pages = lazy_max_pages  # the knob of the same name shadows it inside resolve()


def check_int(name: str, value, minimum: int) -> int:
    """``value`` as an int when it is an integer (not a bool) of at least ``minimum``, else a ValueError
    naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
        raise ValueError(f"{name} must be {kind}, not {value!r}")
    return int(value)


def check_bool(name: str, value) -> bool:
    """``value`` as a bool when it is one (or the int 0 or 1), else a ValueError naming ``name``: a
    string such as "off" would otherwise count as true."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    raise ValueError(f"{name} must be true or false, not {value!r}")


def _window_value(name: str, value: int) -> int:
    """Check a window bound: a positive int multiple of PAGE_SIZE (bytes)."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value % PAGE_SIZE:
        raise ValueError(f"{name} must be a positive multiple of {PAGE_SIZE} bytes, not {value!r}")
    return value


@dataclass(frozen=True)
class AllocatorConfig:
    """A fully resolved allocator configuration: the kernel's values with the what-if knobs applied.

    Build it with :meth:`resolve`; the engines read only this object. Sizes are in pages.
    """

    design: str  # "global" (Linux 6.7) or "nodes" (Linux 6.9)
    cpus: int
    nr_nodes: int
    lazy_max_pages: int
    zone_pages: int
    decay: float
    small_pool_decay: str  # "drain" (6.9-6.15) or "keep" (6.16+)
    pool_cap: int  # -1: no cap; -2: "lazy_max" (refuse when len > lazy_max_pages); else max VAs per pool
    paging_levels: int
    vmalloc_start: int  # absolute address of the window
    space_pages: int  # pages in the window
    auto_drain: bool

    @property
    def base_page(self) -> int:
        """VMALLOC_START in pages (absolute page frame of offset 0)."""
        return self.vmalloc_start >> PAGE_SHIFT

    @classmethod
    def resolve(
        cls,
        design: str = "global",
        cpus: int = 64,
        *,
        pool_cap: int | str | None = None,
        decay: float = DECAY,
        small_pool_decay: str = "drain",
        lazy_max_pages: int | None = None,
        nr_nodes: int | None = None,
        zone_pages: int = ZONE_PAGES,
        paging_levels: int = 4,
        auto_drain: bool = True,
        vmalloc_start: int | None = None,
        vmalloc_size: int | None = None,
    ) -> "AllocatorConfig":
        """Check the knobs and fill in the kernel's defaults (see docs/allocator-model.md).

        ``vmalloc_start`` and ``vmalloc_size`` (bytes, page-aligned, positive) set the window of a
        kernel whose VMALLOC_START is randomised (KASLR); a vmalloc tracepoint gives them as
        ``vstart`` and ``vend + 1 - vstart``. None keeps the unrandomised base and size of
        ``paging_levels``.
        """
        if design not in ("global", "nodes"):
            raise ValueError(f"design must be 'global' or 'nodes', not {design!r}")
        if not isinstance(cpus, int) or cpus < 1:
            raise ValueError(f"cpus must be a positive int, not {cpus!r}")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be a fraction in [0, 1], not {decay!r}")
        if small_pool_decay not in ("drain", "keep"):
            raise ValueError(f"small_pool_decay must be 'drain' or 'keep', not {small_pool_decay!r}")
        if pool_cap is None:
            cap = -1
        elif pool_cap == "lazy_max":
            cap = -2
        elif isinstance(pool_cap, int) and not isinstance(pool_cap, bool) and pool_cap >= 0:
            cap = pool_cap
        else:
            raise ValueError(f"pool_cap must be None, a non-negative int or 'lazy_max', not {pool_cap!r}")
        if paging_levels == 4:
            start, size = VMALLOC_START_L4, VMALLOC_SIZE_L4
        elif paging_levels == 5:
            start, size = VMALLOC_START_L5, VMALLOC_SIZE_L5
        else:
            raise ValueError(f"paging_levels must be 4 or 5, not {paging_levels!r}")
        start = _window_value("vmalloc_start", start if vmalloc_start is None else vmalloc_start)
        size = _window_value("vmalloc_size", size if vmalloc_size is None else vmalloc_size)
        if start + size > 1 << 64:
            raise ValueError(f"the vmalloc window {start:#x} + {size:#x} runs past the top of the address space")
        nodes = min(max(cpus, 1), MAX_NODES) if nr_nodes is None else nr_nodes
        if design == "global":
            if nr_nodes not in (None, 1):
                raise ValueError(f"nr_nodes={nr_nodes!r}: the global design (6.7) has no vmap nodes; use 'nodes'")
            nodes = 1
        if not isinstance(nodes, int) or nodes < 1:
            raise ValueError(f"nr_nodes must be a positive int, not {nr_nodes!r}")
        if not isinstance(zone_pages, int) or zone_pages < 1:
            raise ValueError(f"zone_pages must be a positive int, not {zone_pages!r}")
        lazy_max = _kernel_lazy_max_pages(cpus) if lazy_max_pages is None else lazy_max_pages
        if not isinstance(lazy_max, int) or lazy_max < 0:
            raise ValueError(f"lazy_max_pages must be a non-negative int, not {lazy_max_pages!r}")
        return cls(
            design=design,
            cpus=cpus,
            nr_nodes=nodes,
            lazy_max_pages=lazy_max,
            zone_pages=zone_pages,
            decay=float(decay),
            small_pool_decay=small_pool_decay,
            pool_cap=cap,
            paging_levels=paging_levels,
            vmalloc_start=start,
            space_pages=size >> PAGE_SHIFT,
            auto_drain=bool(auto_drain),
        )
