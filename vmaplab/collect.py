"""Snapshot the vmalloc-related files of a live host into a bundle (the ``vmaplab collect`` command).

Each snapshot copies ``allocinfo`` (when the kernel has it), ``meminfo``, ``vmstat``, ``slabinfo`` and
``vmallocinfo`` byte for byte into ``<out>/<NNNN>/<format>``; the bundle layout and ``manifest.json``
are :mod:`vmaplab.bundle`'s. Optionally ``perf`` records the vmalloc tracepoints during the run and
the ``perf script`` text is stored as format ``vmalloc_trace`` in snapshot 0.

The procfs and sysfs roots are parameters (psutil's ``PROCFS_PATH`` idea), so a captured tree or a
container's ``/proc`` can be read, and tests can use a fake tree.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from .bundle import MANIFEST, Manifest, Snapshot

__all__ = ["FILES", "TRACE_EVENTS", "collect", "parse_duration"]

# format name (as vmaplab.read names it) -> file under the procfs root
FILES = {
    "allocinfo": "allocinfo",
    "meminfo": "meminfo",
    "vmstat": "vmstat",
    "slabinfo": "slabinfo",
    "vmallocinfo": "vmallocinfo",
}
TRACE_EVENTS = ("vmalloc:alloc_vmap_area", "vmalloc:free_vmap_area_noflush", "vmalloc:purge_vmap_area_lazy")
_DURATION = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``"1s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or a bare number of seconds -> seconds (float)."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"expected a duration such as 1s, 500ms, 2m or 1.5, not {text!r}")
    return float(m["num"]) * _UNIT_SECONDS[m["unit"]]


def _say(message: str) -> None:
    tqdm.write(f"vmaplab collect: {message}", file=sys.stderr)


def _text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cpu_count(path: Path) -> int | None:
    """Number of CPUs in a sysfs CPU list such as ``0-3,8,10-11``."""
    text = _text(path)
    if not text:
        return None
    total = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        total += int(hi or lo) - int(lo) + 1
    return total


def _host_facts(procfs: Path, sysfs: Path) -> dict:
    kptr = _text(procfs / "sys/kernel/kptr_restrict")
    return {
        "host": _text(procfs / "sys/kernel/hostname") or socket.gethostname(),
        "kernel_release": _text(procfs / "sys/kernel/osrelease"),
        "cpus_online": _cpu_count(sysfs / "devices/system/cpu/online"),
        "cpus_possible": _cpu_count(sysfs / "devices/system/cpu/possible"),
        "kptr_restrict": int(kptr) if kptr and kptr.lstrip("-").isdigit() else None,
        "mem_profiling": _text(procfs / "sys/vm/mem_profiling"),
    }


class _Trace:
    """A background ``perf record`` of the vmalloc tracepoints, turned into ``perf script`` text."""

    def __init__(self, seconds: float, perf: str, workdir: Path):
        self.data = workdir / "perf.data"
        self.perf = shutil.which(perf)
        self.proc: subprocess.Popen | None = None
        if self.perf is None:
            _say(f"{perf!r} not found: no vmalloc trace recorded")
            return
        events = [arg for ev in TRACE_EVENTS for arg in ("-e", ev)]
        cmd = [self.perf, "record", "-q", "-a", "-o", str(self.data), *events, "--", "sleep", f"{seconds:g}"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def finish(self, target: Path) -> bool:
        """Wait for the recording, write its ``perf script`` text to ``target``; False when none."""
        if self.proc is None:
            return False
        _, err = self.proc.communicate()
        if self.proc.returncode != 0:
            _say(f"perf record failed ({err.strip().splitlines()[-1] if err.strip() else self.proc.returncode}): no vmalloc trace recorded")
            return False
        with open(target, "w") as fh:
            done = subprocess.run([self.perf, "script", "-i", str(self.data)], stdout=fh, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0 or target.stat().st_size == 0:
            why = f"perf script failed ({done.stderr.strip()})" if done.returncode else "no vmalloc event happened"
            _say(f"{why}: no vmalloc trace stored")
            target.unlink()
            return False
        return True


def collect(
    out: str | os.PathLike,
    *,
    interval: float = 1.0,
    count: int = 1,
    trace: float | None = None,
    procfs: str | os.PathLike = "/proc",
    sysfs: str | os.PathLike = "/sys",
    perf: str = "perf",
    progress: bool = True,
) -> Manifest:
    """Write a bundle of ``count`` snapshots taken ``interval`` seconds apart.

    Parameters
    ----------
    out : path
        Bundle folder to create; it must not hold a bundle already.
    interval : float
        Seconds between the starts of two snapshots.
    count : int
        Number of snapshots (at least 1).
    trace : float, optional
        Also record the vmalloc tracepoints with ``perf`` for this many seconds, starting with
        snapshot 0 (needs root and perf; says so and goes on without a trace otherwise).
    procfs, sysfs : path
        Roots of the proc and sys file systems to read.
    perf : str
        The perf executable (name or path).
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    Manifest
        What was written to ``<out>/manifest.json``. Files the kernel lacks (``/proc/allocinfo``
        without CONFIG_MEM_ALLOC_PROFILING) or that could not be read are reported once on stderr and
        listed in ``extra["missing"]`` / ``extra["unreadable"]``.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    if interval < 0 or (trace is not None and trace <= 0):
        raise ValueError("interval must be >= 0 and trace > 0 seconds")
    out, procfs, sysfs = Path(out), Path(procfs), Path(sysfs)
    if (out / MANIFEST).exists():
        raise FileExistsError(f"{out} already holds a bundle")
    if not (procfs / "meminfo").is_file():
        raise FileNotFoundError(f"{procfs}: not a procfs root (no meminfo)")
    if not (sysfs / "devices/system/cpu").is_dir():  # the CPU counts would be missing from the manifest
        raise FileNotFoundError(f"{sysfs}: not a sysfs root (no devices/system/cpu)")
    out.mkdir(parents=True, exist_ok=True)

    wanted = {}
    missing = []
    for fmt, name in FILES.items():
        if (procfs / name).exists():
            wanted[fmt] = procfs / name
        else:
            missing.append(fmt)
            _say(f"{procfs / name} does not exist on this kernel: not collected")
    manifest = Manifest(origin="collect", **_host_facts(procfs, sysfs))
    if "vmallocinfo" in wanted and manifest.kptr_restrict in (0, 2):  # %pK: hashed with 0, zeros with 2
        _say(f"kptr_restrict is {manifest.kptr_restrict}: vmallocinfo addresses will be hashed or zero; the "
             "address maps need kptr_restrict=1 and a root reader (echo 1 > /proc/sys/kernel/kptr_restrict)")
    unreadable: list[str] = []
    with tempfile.TemporaryDirectory() as work:
        recorder = _Trace(trace, perf, Path(work)) if trace else None
        manifest.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        t0 = time.monotonic()  # snapshot 0 is time 0
        for i in tqdm(range(count), desc="snapshots", unit="snap", disable=not progress, file=sys.stderr):
            time.sleep(max(0.0, t0 + i * interval - time.monotonic()))
            snap = Snapshot(time=round(time.monotonic() - t0, 3) if i else 0.0)
            folder = out / manifest.snapshot_dir(i)
            folder.mkdir(exist_ok=True)
            for fmt, path in list(wanted.items()):
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    _say(f"cannot read {path} ({exc.strerror or exc}): not collected")
                    unreadable.append(fmt)
                    del wanted[fmt]
                    continue
                (folder / fmt).write_bytes(data)
                snap.files[fmt] = f"{manifest.snapshot_dir(i)}/{fmt}"
            manifest.snapshots.append(snap)
        if recorder is not None:
            rel = f"{manifest.snapshot_dir(0)}/vmalloc_trace"
            if recorder.finish(out / rel):
                manifest.snapshots[0].files["vmalloc_trace"] = rel
    manifest.extra = {"interval": interval, "trace_seconds": trace, "missing": missing, "unreadable": unreadable}
    manifest.save(out)
    return manifest
