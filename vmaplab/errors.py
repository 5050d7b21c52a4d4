"""vmaplab's exceptions and warnings: one hierarchy under :class:`VmaplabError`."""

from __future__ import annotations

import os
import sys

__all__ = [
    "VmaplabError",
    "ParseError",
    "UnsupportedFormatError",
    "SimulationError",
    "VmaplabWarning",
    "BadLineWarning",
    "CutLineWarning",
    "caller_stacklevel",
]


class VmaplabError(Exception):
    """Base class of every error vmaplab raises on purpose."""


class ParseError(VmaplabError, ValueError):
    """Input that a reader could not read.

    The message names the source, the first line that could not be read (1-based) and what the
    reader expected there, e.g. ``allocinfo.txt, line 7: expected '<size> <calls> <file>:<line> ...',
    got 'garbage'``. The same facts are kept as attributes for programs.

    Attributes
    ----------
    source : str
        File name (or ``<stream>`` for an unnamed text stream).
    lineno : int or None
        1-based line number of the offending line; None for whole-file problems with no line.
    expected : str
        What the reader expected to find.
    line : str or None
        The offending text (shortened).
    """

    def __init__(self, source: str, lineno: int | None, expected: str, line: str | None = None):
        self.source = source
        self.lineno = lineno
        self.expected = expected
        self.line = None if line is None else _shorten(line)
        where = source if lineno is None else f"{source}, line {lineno}"
        got = "" if line is None else f", got {self.line!r}"
        super().__init__(f"{where}: expected {expected}{got}")

    def __reduce__(self):  # keep the exception picklable (sweeps run in worker processes)
        return (type(self), (self.source, self.lineno, self.expected, self.line))


class UnsupportedFormatError(ParseError):
    """A source in no format vmaplab reads, or one matching two formats equally well."""


class SimulationError(VmaplabError):
    """A simulator invariant broke, or a simulation was asked for something impossible."""


class VmaplabWarning(UserWarning):
    """Base class of vmaplab's warnings."""


class BadLineWarning(VmaplabWarning):
    """A line skipped by a reader called with ``on_bad_lines="warn"``."""


class CutLineWarning(VmaplabWarning):
    """A file that ends in the middle of a line: a capture cut short, whose last line may be incomplete."""


def _shorten(text: str, limit: int = 80) -> str:
    text = text.rstrip("\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def caller_stacklevel() -> int:
    """The ``stacklevel`` for :func:`warnings.warn` that names the first caller outside vmaplab, so that a
    warning points at the user's line whatever the depth of the reader that raised it."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1  # level 1: the function that calls warnings.warn
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level
