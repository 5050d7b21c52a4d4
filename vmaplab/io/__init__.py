"""Readers: one module per kernel text format, each turning a source into a tidy DataFrame.

Every reader is ``read_<format>(src, *, on_bad_lines="error", ...) -> DataFrame`` with the format's
name in ``df.attrs["format"]`` and the source in ``df.attrs["source"]``; :func:`vmaplab.read` detects the
format. Shared plumbing is in ``_source`` (opening, paste cleaning, bad lines) and ``units`` (sizes).
:data:`FORMATS` names every format and its module (plain data: the command line lists it without
loading pandas).
"""

# format name -> module defining read_<format> (the reader) and sniff (its record counter)
FORMATS: dict[str, str] = {
    "allocinfo": "vmaplab.io.allocinfo",
    "meminfo": "vmaplab.io.meminfo",
    "free": "vmaplab.io.free",
    "vmstat": "vmaplab.io.vmstat",
    "slabinfo": "vmaplab.io.slabinfo",
    "vmallocinfo": "vmaplab.io.vmallocinfo",
    "test_vmalloc": "vmaplab.io.test_vmalloc",
    "perf_report": "vmaplab.io.perf_report",
    "perf_script": "vmaplab.io.perf_script",
    "perf_lock": "vmaplab.io.perf_lock",
    "vmalloc_trace": "vmaplab.io.vmalloc_trace",
    "sched_trace": "vmaplab.io.sched_trace",
    "kprobe_trace": "vmaplab.io.kprobe_trace",
}
