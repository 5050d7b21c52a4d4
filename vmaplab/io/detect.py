"""Format detection (:func:`read`) and bundles of snapshots (:func:`read_bundle`)."""

from __future__ import annotations

import importlib
import io
import os
from pathlib import Path

import pandas as pd

from ..bundle import Manifest
from ..errors import ParseError, UnsupportedFormatError
from . import FORMATS
from ._source import Paste, Source, open_text

__all__ = ["FORMATS", "detect_format", "read", "read_bundle"]

# Detection looks at this many lines at most: enough for any paste, bounded for multi-GB perf scripts.
SNIFF_LINES = 20_000


def _module(fmt: str):
    return importlib.import_module(FORMATS[fmt])


def reader(fmt: str):
    """The ``read_<format>`` function of a format name."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return getattr(_module(fmt), f"read_{fmt}")


def detect_format(paste: Paste) -> str:
    """The format with the most recognised records in ``paste``.

    Raises :class:`UnsupportedFormatError` when no format recognises a record, or when two formats
    recognise the same largest number of records.
    """
    counts = {fmt: int(_module(fmt).sniff(paste)) for fmt in FORMATS}
    best = max(counts.values())
    if best <= 0:
        lineno, line = paste.first_text_line()
        raise UnsupportedFormatError(paste.source, lineno, f"text in one of the formats {', '.join(FORMATS)}", line)
    winners = sorted(f for f, n in counts.items() if n == best)
    if len(winners) > 1:
        raise UnsupportedFormatError(
            paste.source, None, f"one format, but {' and '.join(winners)} each recognise {best} records"
        )
    return winners[0]


def read(src: Source, **kwargs) -> pd.DataFrame:
    """Read any supported kernel text, detecting its format.

    Parameters
    ----------
    src : path (plain or ``.gz``) or open text/binary file
    **kwargs
        Passed to the detected format's reader (e.g. ``on_bad_lines="warn"``).

    Returns
    -------
    DataFrame
        What ``read_<format>`` returns; ``df.attrs["format"]`` names the detected format.

    On a paste mixing formats, the format with the most recognised records wins; a tie raises
    :class:`vmaplab.UnsupportedFormatError` (a :class:`vmaplab.ParseError`).
    """
    if isinstance(src, (str, os.PathLike)):
        return reader(file_format(src))(src, **kwargs)
    with open_text(src) as (stream, name):
        text = stream.read()
    paste = Paste.from_stream(_head(io.StringIO(text)), name)
    buffer = io.StringIO(text)
    buffer.name = name  # keep the source's name in messages and attrs
    return reader(detect_format(paste))(buffer, **kwargs)


def file_format(path: str | os.PathLike) -> str:
    """The format :func:`read` detects in the file at ``path`` (plain or ``.gz``), from its first
    ``SNIFF_LINES`` lines."""
    with open_text(path) as (stream, name):
        return detect_format(Paste.from_stream(_head(stream), name))


def _head(stream) -> io.StringIO:
    lines = []
    for i, line in enumerate(stream):
        if i >= SNIFF_LINES:
            break
        lines.append(line)
    return io.StringIO("".join(lines))


def read_bundle(folder: str | os.PathLike, *, formats: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Read a bundle folder (see :mod:`vmaplab.bundle`) into one DataFrame per format.

    Parameters
    ----------
    folder : path of a bundle (holding ``manifest.json``)
    formats : list of str, optional
        Read only these formats (default: every format the bundle holds).

    Returns
    -------
    dict of str to DataFrame
        Format name -> the reader's frame of every snapshot stacked in time order, with two more
        columns: ``snapshot`` (int64, index in the manifest) and ``time`` (float64, seconds since the
        bundle's start). A format whose frame has a ``time`` of its own (the vmalloc trace's event
        clock) keeps it as ``event_time``. Each frame's ``attrs["manifest"]`` holds the manifest as a
        dict.
    """
    folder = Path(folder)
    manifest = Manifest.load(folder)
    frames: dict[str, list[pd.DataFrame]] = {}
    for index, snap in sorted(enumerate(manifest.snapshots), key=lambda item: item[1].time):
        for fmt, rel in snap.files.items():
            if formats is not None and fmt not in formats:
                continue
            path = folder / rel
            if not path.is_file():
                raise ParseError(str(folder / "manifest.json"), None, f"snapshot {index} file {rel!r} to exist")
            df = reader(fmt)(path)
            if "time" in df.columns:  # a trace's own event clock
                df = df.rename(columns={"time": "event_time"})
            df.insert(0, "time", float(snap.time))
            df.insert(0, "snapshot", index)
            frames.setdefault(fmt, []).append(df)
    out = {}
    meta = {k: v for k, v in vars(manifest).items() if k != "snapshots"}
    meta["snapshots"] = [vars(s) for s in manifest.snapshots]
    for fmt, parts in frames.items():
        df = pd.concat(parts, ignore_index=True)
        df["snapshot"] = df["snapshot"].astype("int64")
        df.attrs = {"format": fmt, "source": str(folder), "manifest": meta}
        out[fmt] = df
    return out
