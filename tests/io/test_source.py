"""The shared reader plumbing: opening sources, cleaning pastes, bad-line policy, blocks."""

import gzip
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from click.testing import CliRunner

import vmaplab as vl
from vmaplab.cli import app
from vmaplab.errors import BadLineWarning, CutLineWarning, ParseError
from vmaplab.io._source import LineErrors, Paste, assign_blocks, clean_line, finish, open_text

# Lines as they appear in the seed (the v3 cover letter quoted in a reply, and the follow-up's prompts).
QUOTED = "> >     93.35%    93.07%  [kernel]          [k] native_queued_spin_lock_slowpath\n"
PROMPT = "urezki@pc638:~$ sort -h /proc/allocinfo\n"


def test_clean_line_strips_quoting_timestamps_and_colour():
    assert clean_line(QUOTED) == "    93.35%    93.07%  [kernel]          [k] native_queued_spin_lock_slowpath"
    assert clean_line(">>Summary: fix_size_alloc_test passed: 1") == "Summary: fix_size_alloc_test passed: 1"
    assert clean_line("[ 1234.567890] All test took worker0=123 cycles") == "All test took worker0=123 cycles"
    assert clean_line("<6>[   12.5] x") == "x"
    assert clean_line("\x1b[31m 94.41%\x1b[m") == " 94.41%"


def test_paste_records_prompts_and_keeps_line_numbers():
    paste = Paste.from_text("prose\n" + PROMPT + "> $ free -m\n# Samples: 1\n")
    assert paste.lines[1] == PROMPT.rstrip("\n")
    assert paste.prompts == {2: "sort -h /proc/allocinfo", 3: "free -m"}
    assert 4 not in paste.prompts  # '#' starts perf/allocinfo comments, not a prompt
    assert paste.series().index[0] == 1


def test_binary_junk_names_the_line():
    with pytest.raises(ParseError, match=r"junk.bin, line 2: expected text"):
        Paste.from_stream(
            io.StringIO("MemTotal: 1 kB\n\x00\x01\x02garbage\n"), "junk.bin"
        )


def test_undecodable_bytes_are_junk(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok line\n\xff\xfe\xfa\n")
    with pytest.raises(ParseError, match=r"bad.txt, line 2"):
        Paste.read(path)


def test_open_text_reads_gzip_paths_and_binary_streams(tmp_path):
    path = tmp_path / "meminfo.gz"
    with gzip.open(path, "wt") as f:
        f.write("MemTotal:       15666184 kB\n")
    assert Paste.read(path).lines == ["MemTotal:       15666184 kB"]
    stream = io.BytesIO(b"a\r\nb\n")
    with open_text(stream) as (text, name):
        assert text.read() == "a\nb\n" and name == "<stream>"
    assert not stream.closed  # a caller's stream stays open
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        Paste.read(tmp_path / "nope.txt")
    with pytest.raises(TypeError):
        Paste.read(42)


def test_broken_gzip_and_unreadable_paths_name_the_file(tmp_path):
    # the first 5,000 bytes of a real capture (data/real/SOURCES.md): a .gz cut short, as by a failed copy
    whole = (Path(__file__).parents[2] / "data/real/vmalloc-trace-perf-thread-churn.txt.gz").read_bytes()
    cut, not_gzip = tmp_path / "trace.txt.gz", tmp_path / "plain.txt.gz"
    cut.write_bytes(whole[:5000])
    not_gzip.write_text("MemTotal:       15666184 kB\n")
    for path, why in ((cut, "ended before the end-of-stream"), (not_gzip, "Not a gzipped file")):
        with pytest.raises(ParseError, match=rf"{path.name}: expected a complete gzip stream \(.*{why}"):
            Paste.read(path)
    with pytest.raises(IsADirectoryError, match=tmp_path.name):  # not retyped as "not found"
        Paste.read(tmp_path)


def test_gzip_bytes_in_an_open_stream_are_unpacked(tmp_path):
    # `cat capture.gz | ...`: an open binary stream that starts with gzip's magic bytes, peekable (a pipe's
    # buffered reader) or only seekable (BytesIO), is unpacked; cut short, it names the stream
    capture = Path(__file__).parents[2] / "data/real/vmalloc-trace-perf-thread-churn.txt.gz"
    whole = gzip.decompress(capture.read_bytes()).decode().splitlines()
    for stream in (io.BytesIO(capture.read_bytes()), io.BufferedReader(io.BytesIO(capture.read_bytes()))):
        lines = Paste.read(stream).lines
        assert lines[:3] == whole[:3] and len(lines) == len(whole)
    cut = io.BytesIO(capture.read_bytes()[:5000])
    with pytest.raises(ParseError, match=r"<stream>: expected a complete gzip stream \(.*ended before the end-of"):
        Paste.read(cut)
    assert not cut.closed


def test_line_errors_modes():
    with pytest.raises(ParseError, match=r"f, line 3: expected a number, got 'x'"):
        LineErrors("f", "error").bad(3, "a number", "x")
    errs = LineErrors("f", "warn")
    errs.bad(3, "a number", "x")
    df = pd.DataFrame({"a": [1]})
    with pytest.warns(BadLineWarning, match="skipped 1 bad line"):
        finish(df, "fmt", Paste("f", ["x"]), errs, skipped=2)
    assert df.attrs["bad_lines"] == [{"lineno": 3, "line": "x", "expected": "a number"}]
    assert df.attrs["skipped_lines"] == 2 and df.attrs["format"] == "fmt"
    quiet = LineErrors("f", "skip")
    quiet.bad(1, "a number", "y")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        finish(pd.DataFrame(), "fmt", Paste("f", ["y"]), quiet, skipped=0)
    with pytest.raises(ValueError, match="on_bad_lines"):
        LineErrors("f", "ignore")


def test_assign_blocks_splits_at_separators_between_records():
    # records on lines 2-4, 7-8, 12; prompts on 5, 6 (two in a row) and 10
    assert assign_blocks(np.array([2, 3, 4, 7, 8, 12]), [5, 6, 10]).tolist() == [0, 0, 0, 1, 1, 2]
    # a separator before the first record or after the last does not open a block
    assert assign_blocks(np.array([3, 4]), [1, 9]).tolist() == [0, 0]
    assert assign_blocks(np.array([], dtype=np.int64), [1]).tolist() == []


def test_bad_line_warning_points_at_the_callers_line():
    meminfo = "MemTotal:       24684084 kB\nBuffers:          12\n"  # a kB field cut after its digits
    allocinfo = "    4096        1 mm/slub.c:2202 func:alloc_slab_page\n   8192\n"  # a record cut after its size
    for read, text in ((vl.read_meminfo, meminfo), (vl.read_allocinfo, allocinfo)):
        with pytest.warns(BadLineWarning) as record:
            read(io.StringIO(text), on_bad_lines="warn")
        assert record[0].filename == __file__  # not a line inside vmaplab, whatever the reader's depth


# --- captures cut short: the text ends in the middle of its last line ------------------------------------

REAL = Path(__file__).resolve().parents[2] / "data" / "real"


def _cut(path: Path, keep: int) -> str:
    """The text of a real capture cut ``keep`` characters into its last line (no newline after it)."""
    text = (gzip.open(path, "rt") if path.suffix == ".gz" else open(path)).read().rstrip("\n")
    head, _, last = text.rpartition("\n")
    return head + "\n" + last[:keep]


@pytest.mark.parametrize(
    "name, keep, reader",
    [
        ("meminfo.txt", 9, "read_meminfo"),  # 'DirectMap' of 'DirectMap1G:    25165824 kB' looked like prose
        ("vmstat.txt", 2, "read_vmstat"),  # 'nr' of 'nr_unstable 0'
        ("slabinfo.txt", 28, "read_slabinfo"),  # 'kmem_cache           256    ': one number of eleven
        ("vmallocinfo-kptr0.txt", 20, "read_vmallocinfo"),  # '0x00000000eb5a16a4-0' before its '0x'
        ("vmallocinfo-kptr0.txt", 43, "read_vmallocinfo"),  # size 20480 cut to 204
    ],
)
def test_a_last_record_cut_short_is_a_parse_error(name, keep, reader):
    text = _cut(REAL / name, keep)
    lineno = text.count("\n") + 1
    with pytest.raises(ParseError, match=f"line {lineno}: expected"):
        getattr(vl, reader)(io.StringIO(text))
    # the same text saved with the newline an editor adds: still a record cut short, not prose
    with pytest.raises(ParseError, match=f"line {lineno}: expected"):
        getattr(vl, reader)(io.StringIO(text + "\n"))
    full = getattr(vl, reader)(REAL / name)
    skipped = getattr(vl, reader)(io.StringIO(text + "\n\n"), on_bad_lines="skip")  # blank lines after it too
    assert [b["lineno"] for b in skipped.attrs["bad_lines"]] == [lineno] and len(skipped) == len(full) - 1
    # prose after a whole listing is still prose: a bare prompt, a mail signature
    whole = getattr(vl, reader)(io.StringIO(_cut(REAL / name, 200) + "\nroot@vm:~# \n-- \n"))
    assert whole.attrs["bad_lines"] == [] and whole.attrs["skipped_lines"] == full.attrs["skipped_lines"] + 2


@pytest.mark.parametrize(
    "name, keep, reader",
    [
        ("drain-stall-trace-qemu-2cpu.txt.gz", 16, "read_sched_trace"),  # '  vmalloc_test/1-' of its comm-pid
        ("drain-stall-trace-qemu-2cpu.txt.gz", 36, "read_vmalloc_trace"),  # before its flags
        ("meminfo.txt", 9, "read_meminfo"),  # 'DirectMap' of 'DirectMap1G:    25165824 kB'
        ("vmallocinfo-kptr0.txt", 43, "read_vmallocinfo"),  # size 20480 cut to 204
    ],
)
def test_a_bad_last_line_of_a_cut_file_says_where_the_file_ends(name, keep, reader, tmp_path):
    text = _cut(REAL / name, keep)
    lineno = text.count("\n") + 1
    cut = tmp_path / "cut.txt"
    cut.write_text(text)
    with pytest.raises(ParseError, match=rf"line {lineno}: .*\(the file ends in the middle of this line, no newline"):
        getattr(vl, reader)(cut)
    # the same line with its newline is not where a file ends (a bad line, or prose below the trace)
    cut.write_text(text + "\n")
    try:
        getattr(vl, reader)(cut)
    except ParseError as exc:
        assert f"line {lineno}: expected" in str(exc) and "file ends" not in str(exc)


def test_a_file_ending_mid_line_warns_that_its_last_line_may_be_cut(tmp_path):
    import vmaplab as vl
    # allocinfo's last line cut inside its function name still parses: only the missing newline tells
    text = _cut(REAL.parent / "seed" / "allocinfo-64threads.txt", 69)
    assert text.endswith("func:pagetabl")
    cut = tmp_path / "allocinfo.txt"
    cut.write_text(text)
    with pytest.warns(CutLineWarning, match=r"allocinfo.txt ends in the middle of line 5 \(no newline after it\)"):
        df = vl.read(cut)
    assert df["func"].iloc[-1] == "pagetabl"
    # a paste in a string has no newline to lose: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vl.read_allocinfo(io.StringIO(text))
    # an open file, text or binary, read by its reader or through format detection, warns as its path does
    for mode, read in (("r", vl.read_allocinfo), ("rb", vl.read_allocinfo), ("r", vl.read), ("rb", vl.read)):
        with open(cut, mode) as stream, pytest.warns(CutLineWarning, match=r"allocinfo.txt ends in the middle of line"):
            assert read(stream)["func"].iloc[-1] == "pagetabl"
    # and so does standard input, `vmaplab read - < allocinfo.txt`: a shell names it <stdin>, click's runner
    # given the open file by its path (typer's takes bytes only, an unnamed stream that format detection
    # cannot tell from a str paste)
    with open(cut, "rb") as stdin, warnings.catch_warnings():
        warnings.simplefilter("always")  # the command line prints it, as outside pytest
        piped = CliRunner().invoke(typer.main.get_command(app), ["read", "-"], input=stdin)
    assert piped.exit_code == 0 and piped.stdout.rstrip().endswith(",pagetabl,,True,False,False,0,5")
    assert f"vmaplab: CutLineWarning: {cut} ends in the middle of line 5 (no newline after it)" in piped.stderr
    # perf script, read in pieces: the last frame cut to its tab reads as the blank line that ends a
    # sample; the warning names the line of the whole file
    script = _cut(REAL / "perf-script-vmalloc-tp-g.txt.gz", 1)
    cut = tmp_path / "script.txt"
    cut.write_text(script)
    with pytest.warns(CutLineWarning, match=f"line {script.count(chr(10)) + 1} "):
        vl.read_perf_script(cut)
    with open(cut) as stream, pytest.warns(CutLineWarning, match=f"line {script.count(chr(10)) + 1} "):
        vl.read_perf_script(stream)  # an open file warns as its path does
