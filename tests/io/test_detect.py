"""vmaplab.read detects the format of every real capture; read_bundle stacks a real bundle."""

import io
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

import vmaplab as vl
from vmaplab.errors import ParseError, UnsupportedFormatError

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"

# Every kind of capture and transcription the project ships (every file of each kind but the drain traces,
# where the first run of each guest stands for its kind), with the format it is in.
CASES = [
    *[(p, "allocinfo") for p in sorted((ROOT / "data/seed").glob("allocinfo-*.txt"))],
    *[(p, "free") for p in sorted((ROOT / "data/seed").glob("free-m-*.txt"))],
    *[(p, "free") for p in sorted((ROOT / "data/real").glob("free-*.txt"))],
    *[(p, "perf_report") for p in sorted((ROOT / "data/seed").glob("perf-report-*.txt"))],
    (ROOT / "data/seed/v3-cover-quoted.txt", "perf_report"),
    (ROOT / "data/seed/pagetable-thread.txt", "allocinfo"),  # 17 allocinfo lines beat 8 free rows
    *[(p, "perf_report") for p in sorted((ROOT / "data/real").glob("perf-report-*.txt*"))],
    *[(p, "perf_lock") for p in sorted((ROOT / "data/real").glob("perf-lock-contention*.txt"))],
    (ROOT / "data/real/perf-script-churn.txt.gz", "perf_script"),
    (ROOT / "data/real/perf-script-churn-pidtid.txt.gz", "perf_script"),
    (ROOT / "data/real/sched-trace-perf-idle.txt.gz", "sched_trace"),
    # vmalloc and workqueue/sched lines, one reader for each (data/real/SOURCES.md): more vmalloc lines
    (ROOT / "data/real/drain-stall-trace-qemu-2cpu.txt.gz", "vmalloc_trace"),
    *[(p, "kprobe_trace") for p in sorted((ROOT / "data/real").glob("drain-trace-qemu-*/run1-*.txt.gz"))],
    # guests' kernel logs: the summaries win over the show_mem() report a vmalloc failure prints in them
    *[(p, "test_vmalloc") for p in sorted((ROOT / "data/real").glob("test_vmalloc-qemu-*/*/*/test_vmalloc"))],
    (ROOT / "data/real/perf-script-vmalloc-tp-g.txt.gz", "vmalloc_trace"),
    (ROOT / "data/real/vmalloc-trace-perf-thread-churn.txt.gz", "vmalloc_trace"),
    (ROOT / "data/real/vmalloc-trace-ftrace-thread-churn.txt.gz", "vmalloc_trace"),
    *[(p, "vmallocinfo") for p in sorted((ROOT / "data/real").glob("vmallocinfo-*.txt"))],
    (ROOT / "data/real/meminfo.txt", "meminfo"),
    (ROOT / "data/real/vmstat.txt", "vmstat"),
    (ROOT / "data/real/slabinfo.txt", "slabinfo"),
    (SHARED / "fixtures/published/procfs_meminfo.txt", "meminfo"),
    (SHARED / "fixtures/published/procfs_slabinfo.txt", "slabinfo"),
    (SHARED / "fixtures/published/jc_ubuntu-18.04_free-w.txt", "free"),
    (SHARED / "fixtures/flamegraph/perf-vertx-stacks-01.txt", "perf_script"),
]


# The unit of bare `free` numbers, from the command each capture came from (data/*/SOURCES.md).
FREE_UNITS = {"m": {"unit": "m"}, "b": {"unit": "b"}, "g": {"unit": "g"}, "si": {"unit": 1000, "si": True}}


def _kwargs(path: Path, fmt: str) -> dict:
    if fmt != "free":
        return {}
    if "-h" in path.name:  # sizes carry their letters; only their base is unknown without a command
        return {"si": "si" in path.name}
    flag = path.stem.split("-")[1] if path.stem.startswith("free-") else "k"
    return FREE_UNITS.get(flag, {"unit": "k"})


@pytest.mark.parametrize("path, fmt", CASES, ids=lambda v: v.name if isinstance(v, Path) else v)
def test_read_detects_the_format_and_equals_the_reader(path, fmt):
    kwargs = _kwargs(path, fmt)
    df = vl.read(path, **kwargs)
    assert df.attrs["format"] == fmt
    direct = getattr(vl, f"read_{fmt}")(path, **kwargs)
    pd.testing.assert_frame_equal(df, direct)


def test_read_from_an_open_stream_keeps_the_name():
    path = ROOT / "data/real/meminfo.txt"
    with open(path) as f:
        df = vl.read(f)
    assert df.attrs["format"] == "meminfo" and df.attrs["source"] == str(path)
    assert df.equals(vl.read_meminfo(path))


def test_unknown_text_names_its_first_line():
    with pytest.raises(UnsupportedFormatError, match=r"notes.txt, line 2: expected text in one of the formats"):
        vl.read(_named("\nHello, Folk!\nThis is v3.\n", "notes.txt"))


def test_a_tie_is_a_parse_error():
    # the first two lines of data/real/meminfo.txt and of data/real/vmstat.txt: neither format wins
    heads = [(ROOT / "data/real" / f).read_text().splitlines(keepends=True)[:2] for f in ("meminfo.txt", "vmstat.txt")]
    text = "".join(heads[0] + heads[1])
    with pytest.raises(ParseError, match="meminfo and vmstat each recognise 2 records"):
        vl.read(_named(text, "mixed.txt"))


def test_lone_word_number_lines_are_not_vmstat():
    # perf script -F comm,tid,ip,sym prints 'swapper     0 ' sample headers between call chains: not
    # a run of vmstat counters, and a layout no reader takes (data/real/SOURCES.md)
    with pytest.raises(UnsupportedFormatError, match=r"perf-script-F-comm-tid-ip-sym.txt, line 1: .*got 'swapper"):
        vl.read(ROOT / "data/real/perf-script-F-comm-tid-ip-sym.txt")


def test_read_bundle_stacks_snapshots_in_time_order():
    bundle = vl.read_bundle(ROOT / "data/real/bundle-vm-2cpu-churn")
    assert set(bundle) == {"meminfo", "vmstat", "slabinfo", "vmallocinfo", "vmalloc_trace"}
    mem = bundle["meminfo"]
    assert mem["time"].is_monotonic_increasing and mem["snapshot"].tolist()[0] == 0
    assert sorted(mem["time"].unique()) == [0.0, 1.0, 2.0]
    total = mem[mem["field"] == "MemTotal"]
    assert len(total) == 3 and total["value"].nunique() == 1
    trace = bundle["vmalloc_trace"]
    assert "event_time" in trace and (trace["time"] == 0.0).all()
    assert mem.attrs["manifest"]["kernel_release"].startswith("6.18")


def test_read_bundle_errors(tmp_path):
    with pytest.raises(ParseError, match="manifest.json"):
        vl.read_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text('{"vmaplab_bundle": 1, "origin": "collect", "snapshots": '
                                            '[{"time": 0, "files": {"meminfo": "0000/meminfo"}}]}')
    with pytest.raises(ParseError, match="0000/meminfo"):
        vl.read_bundle(tmp_path)


def _named(text: str, name: str) -> io.StringIO:
    buf = io.StringIO(text)
    buf.name = name
    return buf


# --- vmaplab read ---------------------------------------------------------------------------------


def _cli(*args, **kwargs):
    from typer.testing import CliRunner

    from vmaplab.cli import app

    return CliRunner().invoke(app, ["read", *map(str, args)], **kwargs)


@pytest.mark.parametrize(
    "path, fmt",
    [
        (ROOT / "data/seed/allocinfo-256threads.txt", "allocinfo"),
        (ROOT / "data/real/vmallocinfo-kptr1.txt", "vmallocinfo"),
        (SHARED / "fixtures/flamegraph/perf-vertx-stacks-01.txt", "perf_script"),
    ],
    ids=lambda v: getattr(v, "name", v),
)
def test_cli_read_writes_the_readers_table(path, fmt, tmp_path):
    # allocinfo (the seed), real vmallocinfo, a published perf script: CSV on stdout, CSV and parquet files
    direct = getattr(vl, f"read_{fmt}")(path)
    printed = _cli(path)
    assert printed.exit_code == 0, printed.output
    assert printed.stderr.startswith(f"{path}: {fmt}, {len(direct)} rows")
    assert printed.stdout == direct.to_csv(index=False)
    written = _cli(path, "--out", tmp_path / "t.parquet")
    assert written.exit_code == 0 and written.stdout == ""
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), direct, check_like=False)
    assert _cli(path, "--out", tmp_path / "t.csv").exit_code == 0
    assert (tmp_path / "t.csv").read_text() == printed.stdout


def test_cli_read_summary_says_what_was_passed_over():
    # the seed's thread mail: four allocinfo excerpts between prose, prompts and free listings
    result = _cli(ROOT / "data/seed/pagetable-thread.txt")
    assert result.exit_code == 0
    assert result.stderr.endswith(": allocinfo, 17 rows, in 4 listings, 57 other line(s) passed over (prose, "
                                  "prompts, text of other formats)\n")  # fmt: skip


def test_cli_read_says_when_vmallocinfo_addresses_are_not_addresses():
    hashed = _cli(ROOT / "data/real/vmallocinfo-kptr0.txt")  # kptr_restrict 0: %pK hashes (data/real/SOURCES.md)
    assert hashed.exit_code == 0 and "addresses hashed (kptr_restrict)" in hashed.stderr
    real = _cli(ROOT / "data/real/vmallocinfo-kptr1.txt")
    assert real.exit_code == 0 and "kptr_restrict" not in real.stderr


def test_cli_read_of_a_bundle_folder_says_what_reads_it():
    result = _cli(ROOT / "data/real/bundle-vm-2cpu-churn")  # was "[Errno 21] Is a directory"
    assert result.exit_code == 2 and "is a folder" in result.output and "read_bundle" in result.output


def test_cli_read_of_gzip_on_stdin():
    capture = ROOT / "data/real/perf-script-churn.txt.gz"  # gzip bytes piped in, as `cat x.gz | vmaplab read -`
    piped = _cli("-", input=capture.read_bytes())
    assert piped.exit_code == 0 and piped.stdout == vl.read_perf_script(capture).to_csv(index=False)
    cut = _cli("-", input=capture.read_bytes()[:5000])
    # named as the stream names itself: <stdin> in a shell, <stream> for the test runner's input
    assert cut.exit_code == 2 and "vmaplab read: <stream>: expected a complete gzip stream" in cut.stderr


def test_cli_read_with_a_wrong_format_names_the_detected_one(tmp_path):
    meminfo = ROOT / "data/real/meminfo.txt"
    wrong = _cli(meminfo, "--format", "vmstat")
    assert wrong.exit_code == 2 and f"vmaplab read: {meminfo}, line 1: expected a /proc/vmstat line" in wrong.stderr
    assert wrong.stderr.endswith(f"; the file reads as meminfo text, not vmstat (vmaplab read {meminfo})\n")
    bad = tmp_path / "meminfo-bad.txt"  # a meminfo with one bad line is still a meminfo: no other format named
    bad.write_text(meminfo.read_text().replace("MemFree:", "MemFree", 1))
    refused = _cli(bad, "--format", "meminfo")
    assert refused.exit_code == 2 and ", line 2: expected" in refused.stderr and "reads as" not in refused.stderr


def test_cli_read_stdin_format_unit_and_errors(tmp_path):
    meminfo = ROOT / "data/real/meminfo.txt"
    piped = _cli("-", input=meminfo.read_bytes())
    assert piped.exit_code == 0 and piped.stdout == vl.read_meminfo(meminfo).to_csv(index=False)
    assert piped.stderr.endswith(": meminfo, 54 rows\n")  # <stdin> in a shell; the test runner's has no name
    # data/real/free-m.txt is `free -m` without its command line: --unit m says so
    free = ROOT / "data/real/free-m.txt"
    by_unit = _cli(free, "--unit", "m")
    assert by_unit.exit_code == 0 and by_unit.stdout == vl.read_free(free, unit="m").to_csv(index=False)
    # --format overrides detection: the seed's thread mail read as its free listings, not its allocinfo
    thread = ROOT / "data/seed/pagetable-thread.txt"
    as_free = _cli(thread, "--format", "free")
    assert as_free.exit_code == 0 and as_free.stdout == vl.read_free(thread).to_csv(index=False)
    assert _cli(thread, "--format", "nope").exit_code == 2
    assert "--unit applies to free output" in _cli(meminfo, "--format", "meminfo", "--unit", "m").stderr
    assert "name a .csv or .parquet file" in _cli(meminfo, "--out", tmp_path / "t.xlsx").stderr
    cut = tmp_path / "cut.txt"  # one meminfo line cut after its name: a bad line, named with its number
    lines = meminfo.read_text().splitlines(keepends=True)
    cut.write_text("".join(lines[:3] + ["Cached:\n"] + lines[4:]))
    bad = _cli(cut)
    assert bad.exit_code == 2 and bad.stdout == "" and f"vmaplab read: {cut}, line 4" in bad.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as outside pytest, which turns vmaplab's warnings into errors
        lenient = _cli(cut, "--lenient")
    assert lenient.exit_code == 0 and "53 rows, 1 bad line(s) skipped" in lenient.stderr
    missing = _cli(tmp_path / "nothing.txt")
    assert missing.exit_code == 2 and "nothing.txt" in missing.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_counts_the_seconds_of_a_long_step_on_a_terminal_only(monkeypatch):
    # a read of a large capture (a 140 MiB perf script takes ~15 s) shows it is working, once it has run a while
    import vmaplab.cli as cli

    monkeypatch.setattr(cli, "TICK_AFTER_S", 0.1)
    for stream, shown in ((_Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        with cli._ticking("vmaplab read: reading big.txt"):
            time.sleep(0.6)
        assert ("vmaplab read: reading big.txt: 00:00" in stream.getvalue()) is shown, stream.getvalue()
    quick = _Terminal()
    monkeypatch.setattr(sys, "stderr", quick)
    monkeypatch.setattr(cli, "TICK_AFTER_S", 5.0)
    with cli._ticking("vmaplab read: reading small.txt"):
        pass
    assert quick.getvalue() == ""  # a quick step leaves nothing behind
