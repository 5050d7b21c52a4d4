"""Shared plumbing of every reader: opening a source, cleaning a paste, bad-line policy, attrs.

A reader is split in two, as pandas and prometheus/procfs do: the public ``read_<format>(src, *, ...)``
opens the source with :func:`open_text` (path, ``.gz`` path, or an open text/binary file) and builds a
:class:`Paste`; a private ``_parse_<format>(paste, ...)`` does the parsing on whole columns.

A :class:`Paste` is the text as a kernel developer pastes it: possibly email-quoted (``> ``, ``>>``),
with dmesg timestamps (``[ 1234.567890] ``), shell prompts (``user@host:~$ free -m``) and prose around
the listings. Cleaning removes the quoting and timestamps and remembers the prompts; what is prose is
for each reader to decide, and it reports how many lines it skipped in ``df.attrs["skipped_lines"]``.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Iterator, Literal

import numpy as np
import pandas as pd

from ..errors import BadLineWarning, CutLineWarning, ParseError, caller_stacklevel

__all__ = [
    "Source",
    "OnBadLines",
    "open_text",
    "str_paste",
    "Paste",
    "LineErrors",
    "between_records",
    "assign_blocks",
    "finish",
]

Source = str | os.PathLike | IO[str] | IO[bytes]
OnBadLines = Literal["error", "warn", "skip"]

# Email quoting: any run of '>' marks, each optionally followed by one space ("> ", ">>", "> > ").
_QUOTE = re.compile(r"^(?:>[ \t]?)+")
# dmesg's "[ 1234.567890] " prefix (printk time), with an optional syslog level "<6>" before it.
_DMESG_TIME = re.compile(r"^(?:<\d>)?\[\s*\d+\.\d+\]\s?")
# A shell prompt with a command after it: "user@host:~$ free -m" (Debian, Ubuntu), "[root@host ~]# free -m"
# (Fedora, RHEL), "user@host ~ $ free -m" (Gentoo), "host:~ # free -m" (SUSE's root), "$ cmd"; a "(venv) " before.
_PROMPT = re.compile(
    r"^(?:\(\S+\)\s+)?"
    r"(?:[\w.-]+@[\w.-]+:[^\s$#]*\s?[$#]|\[[\w.-]+@[\w.-]+(?:\s[^\]]*)?\]\s?[$#]|[\w.-]+@[\w.-]+\s+[~/]\S*\s+[$#]"
    r"|[\w.-]+:[~/]\S*\s?[#$>]|\$)\s+(?P<cmd>\S.*)$"
)
_JUNK = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\ufffd]")
# Colour escapes of a terminal paste (perf report's TUI, coloured dmesg): "\x1b[31m".
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _name(src: Source) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    return str(getattr(src, "name", "<stream>"))


def str_paste(src: Source) -> bool:
    """Whether ``src`` is a str paste, an unnamed ``io.StringIO``: text that a program built (lines joined,
    a string literal), where a missing final newline is no sign of a cut. A named one is not: ``read``
    hands an open file or standard input on to the reader as an ``io.StringIO`` carrying its name."""
    return isinstance(src, io.StringIO) and _name(src) == "<stream>"


def _starts_like_gzip(stream) -> bool:
    """Whether a binary stream's next bytes are gzip's magic, looked at without consuming them."""
    if hasattr(stream, "peek"):
        return stream.peek(2)[:2] == b"\x1f\x8b"
    if getattr(stream, "seekable", lambda: False)():
        here = stream.tell()
        head = stream.read(2)
        stream.seek(here)
        return head == b"\x1f\x8b"
    return False


@contextmanager
def open_text(src: Source) -> Iterator[tuple[IO[str], str]]:
    """Open ``src`` as UTF-8 text and yield ``(stream, name)``.

    ``src`` is a path (``.gz`` is decompressed), or an already open text or binary file, which is
    read from its current position and not closed (a binary one that starts with gzip's magic bytes,
    such as ``cat x.gz |`` on standard input, is decompressed). Undecodable bytes become U+FFFD so that
    :meth:`Paste.from_stream` can report binary junk with its line number.
    """
    name = _name(src)
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        try:
            raw: IO[bytes] = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
        except OSError as exc:  # keep the kind (not found, a directory, no permission); name the path
            raise type(exc)(exc.errno, exc.strerror or str(exc), name) from exc
        with raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None) as text:
            try:
                yield text, name
            except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # a .gz cut short, or not gzip at all
                raise ParseError(name, None, f"a complete gzip stream ({exc})") from exc
    elif isinstance(src, io.TextIOBase) or hasattr(src, "encoding"):
        yield src, name  # type: ignore[misc]
    elif hasattr(src, "read"):
        raw = gzip.GzipFile(fileobj=src, mode="rb") if _starts_like_gzip(src) else src  # never closes src
        wrapper = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)  # type: ignore[arg-type]
        try:
            yield wrapper, name
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise ParseError(name, None, f"a complete gzip stream ({exc})") from exc
        finally:
            wrapper.detach()
    else:
        raise TypeError(f"expected a path or an open file, got {type(src).__name__}")


def clean_line(line: str) -> str:
    """One raw line without its newline, email quoting and dmesg timestamp."""
    line = line.rstrip("\r\n")
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    if line[:1] == ">":
        line = _QUOTE.sub("", line, count=1)
    if line[:1] in "[<":
        line = _DMESG_TIME.sub("", line, count=1)
    return line


@dataclass
class Paste:
    """The cleaned lines of one source.

    Attributes
    ----------
    source : str
        Name used in error messages and ``df.attrs["source"]``.
    lines : list of str
        Cleaned text of every physical line; ``lines[i]`` is line ``i + 1`` of the source.
    prompts : dict of int to str
        Line number -> command typed at a shell prompt on that line (``free -m``).
    unterminated : int or None
        Number of the last line when the text ends without a newline (cut short, or a paste), else None.
    from_file : bool
        True when read from a path or a stream (an open file, standard input): text that a tool wrote
        ends with a newline, so an unterminated last line there is most likely cut. False for a str
        paste (see :func:`str_paste`).
    """

    source: str
    lines: list[str]
    prompts: dict[int, str] = field(default_factory=dict)
    unterminated: int | None = None
    from_file: bool = False

    @property
    def cut_line(self) -> int | None:
        """The last line when a file or stream ends without its newline (likely cut short), else None."""
        return self.unterminated if self.from_file else None

    @classmethod
    def from_stream(cls, stream: IO[str], source: str) -> "Paste":
        """The text of ``stream`` as cleaned lines (quoting, dmesg times, colour escapes gone) with its
        shell prompts; ParseError at the first line holding binary or undecodable bytes."""
        # Whole-text passes first; the per-line work is done only on the lines that need it.
        text = stream.read()
        junk = _JUNK.search(text)
        if junk:
            lineno = text.count("\n", 0, junk.start()) + 1
            line = text[text.rfind("\n", 0, junk.start()) + 1 :].split("\n", 1)[0]
            raise ParseError(source, lineno, "text (this line holds binary or undecodable bytes)", line)
        ended = not text or text.endswith("\n")
        if text.endswith("\n"):
            text = text[:-1]
        lines = text.split("\n") if text else []
        if "\r" in text or "\x1b" in text or "\n>" in "\n" + text or "\n[" in "\n" + text or "\n<" in "\n" + text:
            lines = [clean_line(line) for line in lines]
        prompts: dict[int, str] = {}
        for lineno, line in enumerate(lines, 1):
            if line[:1] in "($[" or "@" in line[:40] or ":~" in line[:40] or ":/" in line[:40]:
                m = _PROMPT.match(line)
                if m:
                    prompts[lineno] = m.group("cmd").strip()
        return cls(source, lines, prompts, None if ended else len(lines))

    @classmethod
    def read(cls, src: Source) -> "Paste":
        """A path or an open file (see :func:`open_text`) as a Paste, named after it."""
        with open_text(src) as (stream, name):
            paste = cls.from_stream(stream, name)
        paste.from_file = not str_paste(src)
        return paste

    @classmethod
    def from_text(cls, text: str, source: str = "<string>") -> "Paste":
        """A string as a Paste named ``source``."""
        return cls.from_stream(io.StringIO(text), source)

    def series(self) -> pd.Series:
        """The lines as a string Series indexed by line number (1-based), for ``.str`` parsing."""
        return pd.Series(self.lines, index=pd.RangeIndex(1, len(self.lines) + 1, name="lineno"), dtype=str)

    def first_text_line(self) -> tuple[int | None, str | None]:
        """(line number, text) of the first non-blank line, for 'nothing recognised' errors."""
        for i, line in enumerate(self.lines, 1):
            if line.strip():
                return i, line
        return None, None


class LineErrors:
    """The ``on_bad_lines`` policy of one read, as in pandas: ``"error"`` (default) raises a
    :class:`ParseError` at the first bad line, ``"warn"`` skips bad lines with one
    :class:`BadLineWarning`, ``"skip"`` skips them quietly. Skipped bad lines are always listed in
    ``df.attrs["bad_lines"]``."""

    def __init__(self, source: str, on_bad_lines: OnBadLines = "error", *, cut_line: int | None = None):
        if on_bad_lines not in ("error", "warn", "skip"):
            raise ValueError(f"on_bad_lines must be 'error', 'warn' or 'skip', not {on_bad_lines!r}")
        self.source = source
        self.mode = on_bad_lines
        self.items: list[dict] = []
        #: The last line of a file that ends without a newline (:attr:`Paste.cut_line`): a bad line
        #: there is said to be where the file ends, most likely cut.
        self.cut_line = cut_line

    @classmethod
    def of(cls, paste: Paste, on_bad_lines: OnBadLines = "error") -> "LineErrors":
        """The policy for reading ``paste``: named by its source, told where a file ends mid-line."""
        return cls(paste.source, on_bad_lines, cut_line=paste.cut_line)

    def bad(self, lineno: int | None, expected: str, line: str | None = None) -> None:
        """Report one bad line: raise, or remember it for attrs and the warning."""
        if lineno is not None and lineno == self.cut_line:
            expected += " (the file ends in the middle of this line, no newline after it: a capture cut short?)"
        if self.mode == "error":
            raise ParseError(self.source, lineno, expected, line)
        self.items.append({"lineno": lineno, "line": line, "expected": expected})

    def emit_warning(self) -> None:
        """In ``"warn"`` mode, one BadLineWarning for all the bad lines skipped, naming the first."""
        if self.items and self.mode == "warn":
            first = self.items[0]
            warnings.warn(
                BadLineWarning(
                    f"{self.source}: skipped {len(self.items)} bad line(s); first at line "
                    f"{first['lineno']}: expected {first['expected']}"
                ),
                stacklevel=caller_stacklevel(),
            )


def between_records(paste: Paste, lines: pd.Series, is_rec: pd.Series, start: str) -> pd.Series:
    """Damaged records among the non-blank lines that are neither records nor shell prompts: a line with a
    record right above and right below (a record garbled inside a listing, never prose), and a line right
    below a record that ``start`` matches whole, the start of a record (a listing cut short in its last
    record, saved with the newline an editor adds). A last line without its newline counts as having a
    record below: a listing cut short in its last record."""
    above = is_rec.shift(1, fill_value=False)
    below = is_rec.shift(-1, fill_value=paste.unterminated is not None)
    candidate = ~is_rec & above & lines.str.strip().ne("") & ~lines.index.isin(list(paste.prompts))
    cut = pd.Series(False, index=lines.index)
    cut[candidate] = lines[candidate].str.fullmatch(start).fillna(False).astype(bool)  # only below a record
    return candidate & (below | cut)


def assign_blocks(record_linenos: np.ndarray, separator_linenos) -> np.ndarray:
    """Block number (0, 1, ...) of each record: a new block starts after every separator line
    (a prompt, a repeated header, prose) that lies between two records."""
    rec = np.asarray(record_linenos, dtype=np.int64)
    sep = np.unique(np.asarray(list(separator_linenos), dtype=np.int64))
    if rec.size == 0 or sep.size == 0:
        return np.zeros(rec.size, dtype=np.int64)
    # separators crossed before each record, then count only changes between consecutive records
    crossed = np.searchsorted(sep, rec)
    changes = np.diff(crossed, prepend=crossed[0]) > 0
    return np.cumsum(changes).astype(np.int64)


def finish(
    df: pd.DataFrame,
    fmt: str,
    paste: Paste,
    errors: LineErrors,
    *,
    skipped: int,
    **attrs,
) -> pd.DataFrame:
    """Stamp the common attrs on a reader's result and emit the bad-line warning.

    ``attrs``: ``format``, ``source``, ``skipped_lines`` (prose, prompts and other non-record lines
    passed over), ``bad_lines`` (list of ``{lineno, line, expected}``), plus the reader's own.
    A :class:`~vmaplab.errors.CutLineWarning` says when a file or a stream ends in the middle of a line
    (``paste.from_file``; a str paste is not warned about).
    """
    df.attrs.update(
        format=fmt,
        source=paste.source,
        skipped_lines=int(skipped),
        bad_lines=list(errors.items),
        **attrs,
    )
    errors.emit_warning()
    if paste.cut_line is not None:
        warnings.warn(
            CutLineWarning(
                f"{paste.source} ends in the middle of line {paste.unterminated} (no newline after it): "
                "if the capture was cut there, that line is incomplete"
            ),
            stacklevel=caller_stacklevel(),
        )
    return df
