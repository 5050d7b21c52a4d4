"""The bundle: a folder of raw text snapshots plus ``manifest.json``, shared by real and simulated data.

``vmaplab collect`` writes bundles from a live host, the simulator's ``write_bundle`` writes them from a
run, and :func:`vmaplab.read_bundle` reads either. Layout::

    bundle/
      manifest.json
      0000/meminfo  0000/vmstat  0000/vmallocinfo  0000/allocinfo  ...
      0001/...

``manifest.json`` (version 1)::

    {
      "vmaplab_bundle": 1,
      "origin": "collect" | "simulate" | "published",
      "host": "pc638", "kernel_release": "6.8.0-rc5", "cpus_online": 64, "cpus_possible": 64,
      "kptr_restrict": 1, "mem_profiling": "1" | null,   # null: the kernel has no /proc/allocinfo
      "started": "2026-11-27T00:14:00+00:00",             # ISO 8601 wall clock of snapshot time 0
      "snapshots": [{"time": 0.0, "files": {"meminfo": "0000/meminfo", ...}}, ...],
      "extra": {...}                                       # origin-specific (simulation parameters)
    }

``time`` is seconds since ``started``; ``files`` maps a format name (as :func:`vmaplab.read` names
formats) to a path relative to the bundle folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import ParseError

__all__ = ["MANIFEST", "Snapshot", "Manifest"]

MANIFEST = "manifest.json"
VERSION = 1


@dataclass
class Snapshot:
    """One point in time: seconds since the bundle's start, and format name -> relative file path."""

    time: float
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class Manifest:
    """What a bundle holds and where it came from (see the module docstring for the JSON layout)."""

    origin: str
    host: str | None = None
    kernel_release: str | None = None
    cpus_online: int | None = None
    cpus_possible: int | None = None
    kptr_restrict: int | None = None
    mem_profiling: str | None = None
    started: str | None = None
    snapshots: list[Snapshot] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def snapshot_dir(self, index: int) -> str:
        """Relative folder name of snapshot ``index`` (``0000``, ``0001``, ...)."""
        return f"{index:04d}"

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``manifest.json`` into ``folder`` (created if needed) and return its path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        data = {"vmaplab_bundle": VERSION, **asdict(self)}
        path = folder / MANIFEST
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "Manifest":
        """Read ``folder/manifest.json``; a missing or malformed manifest raises :class:`ParseError`."""
        path = Path(folder) / MANIFEST
        if not path.is_file():
            raise ParseError(str(path), None, f"a bundle folder with a {MANIFEST} file")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ParseError(str(path), exc.lineno, f"JSON ({exc.msg})") from None
        if not isinstance(data, dict) or data.get("vmaplab_bundle") != VERSION:
            raise ParseError(str(path), 1, f'a vmaplab bundle manifest with "vmaplab_bundle": {VERSION}')
        data.pop("vmaplab_bundle")
        try:
            snaps = [Snapshot(float(s["time"]), dict(s.get("files", {}))) for s in data.pop("snapshots", [])]
            return cls(snapshots=snaps, **data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ParseError(str(path), None, f"manifest fields as documented in vmaplab.bundle ({exc})") from None
