"""vmaplab: study the Linux kernel's vmalloc/vmap allocator.

Readers turn real (or simulated) kernel text into tidy pandas DataFrames; analyses compare and
attribute them; ``vmaplab.sim`` simulates the VA allocator of Linux 6.7 (global locks) and 6.9 (vmap
nodes). Public names are imported on first use, so ``import vmaplab`` stays quick and does not load
numba until the simulator is used.

>>> import vmaplab as vl
>>> ai = vl.read_allocinfo("data/seed/allocinfo-256threads.txt")
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "read": "vmaplab.io.detect",
    "read_bundle": "vmaplab.io.detect",
    "read_allocinfo": "vmaplab.io.allocinfo",
    "read_meminfo": "vmaplab.io.meminfo",
    "read_free": "vmaplab.io.free",
    "read_vmstat": "vmaplab.io.vmstat",
    "read_slabinfo": "vmaplab.io.slabinfo",
    "read_vmallocinfo": "vmaplab.io.vmallocinfo",
    "read_test_vmalloc": "vmaplab.io.test_vmalloc",
    "read_perf_report": "vmaplab.io.perf_report",
    "read_perf_script": "vmaplab.io.perf_script",
    "read_perf_lock": "vmaplab.io.perf_lock",
    "read_vmalloc_trace": "vmaplab.io.vmalloc_trace",
    "read_sched_trace": "vmaplab.io.sched_trace",
    "read_kprobe_trace": "vmaplab.io.kprobe_trace",
    "collapse_stacks": "vmaplab.analysis.stacks",
    "diff": "vmaplab.analysis.diff",
    "growth": "vmaplab.analysis.diff",
    "compare_profiles": "vmaplab.analysis.profiles",
    "pagetable_footprint": "vmaplab.analysis.footprint",
    "area_lifetimes": "vmaplab.analysis.lifetimes",
    "work_runs": "vmaplab.analysis.work_runs",
    "probe_calls": "vmaplab.analysis.probe_calls",
    "call_summary": "vmaplab.analysis.probe_calls",
    "simulate": "vmaplab.sim.run",
    "sweep": "vmaplab.sim.sweep",
    "write_bundle": "vmaplab.sim.emit",
    "Machine": "vmaplab.sim.machine",
    "ParseError": "vmaplab.errors",
    "UnsupportedFormatError": "vmaplab.errors",
    "SimulationError": "vmaplab.errors",
    "VmaplabError": "vmaplab.errors",
    "VmaplabWarning": "vmaplab.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vmaplab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
