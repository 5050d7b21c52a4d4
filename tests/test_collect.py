"""vmaplab collect on a fake procfs/sysfs tree made of real captures, and (with perf and root) on this host."""

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vmaplab.bundle import Manifest
from vmaplab.cli import app
from vmaplab.collect import collect, parse_duration
from vmaplab.io.vmallocinfo import read_vmallocinfo

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "data" / "real"
BUNDLE = REAL / "bundle-vm-2cpu-churn"


@pytest.fixture
def tree(tmp_path):
    """A procfs and a sysfs root holding the files of the committed real bundle's first snapshot, and made-up
    identity files and CPU lists (a hole in the online list, "0-1,4", to exercise the range syntax of
    Documentation/ABI/testing/sysfs-devices-system-cpu)."""
    proc, sys_ = tmp_path / "proc", tmp_path / "sys"
    for fmt in ("meminfo", "vmstat", "slabinfo", "vmallocinfo"):
        (proc / fmt).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(BUNDLE / "0000" / fmt, proc / fmt)
    for rel, text in {
        "sys/kernel/hostname": "vm\n",
        "sys/kernel/osrelease": "6.18.44-fc-v669\n",
        "sys/kernel/kptr_restrict": "1\n",
    }.items():
        (proc / rel).parent.mkdir(parents=True, exist_ok=True)
        (proc / rel).write_text(text)
    cpu = sys_ / "devices/system/cpu"
    cpu.mkdir(parents=True)
    (cpu / "online").write_text("0-1,4\n")
    (cpu / "possible").write_text("0-7\n")
    return proc, sys_


def test_parse_duration():
    assert parse_duration("1s") == 1.0 and parse_duration("500ms") == 0.5 and parse_duration("2m") == 120.0
    assert parse_duration("1.5") == 1.5 and parse_duration(" 1h ") == 3600.0
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_collect_fake_tree(tree, tmp_path, capsys):
    proc, sys_ = tree
    out = tmp_path / "bundle"
    manifest = collect(out, interval=0.05, count=3, procfs=proc, sysfs=sys_, progress=False)
    err = capsys.readouterr().err
    assert err.count("allocinfo does not exist") == 1  # said once, not once per snapshot
    loaded = Manifest.load(out)
    assert loaded == manifest
    assert (loaded.origin, loaded.host, loaded.kernel_release) == ("collect", "vm", "6.18.44-fc-v669")
    assert (loaded.cpus_online, loaded.cpus_possible, loaded.kptr_restrict) == (3, 8, 1)
    assert loaded.mem_profiling is None and loaded.extra["missing"] == ["allocinfo"]
    assert [s.time for s in loaded.snapshots][0] == 0.0
    times = [s.time for s in loaded.snapshots]
    assert times == sorted(times) and times[-1] >= 0.1
    for i, snap in enumerate(loaded.snapshots):
        assert set(snap.files) == {"meminfo", "vmstat", "slabinfo", "vmallocinfo"}
        for fmt, rel in snap.files.items():
            assert rel == f"{i:04d}/{fmt}"
            assert (out / rel).read_bytes() == (proc / fmt).read_bytes()
    df = read_vmallocinfo(out / loaded.snapshots[2].files["vmallocinfo"])
    assert len(df) == 2369 and df.attrs["address_kind"] == "real"


def test_collect_allocinfo_and_mem_profiling(tree, tmp_path):
    proc, sys_ = tree
    # allocinfo header and a line of the merged 1.0 format (kernel-facts §4.1, Baoquan He's line in S-PT)
    (proc / "allocinfo").write_text(
        "allocinfo - version: 1.0\n#     <size>  <calls> <tag info>\n"
        "  1107296256   270336 include/linux/mm.h:2848 func:pagetable_alloc\n"
    )
    (proc / "sys/vm").mkdir(parents=True)
    (proc / "sys/vm/mem_profiling").write_text("1\n")
    manifest = collect(tmp_path / "b", interval=0, count=1, procfs=proc, sysfs=sys_, progress=False)
    assert manifest.mem_profiling == "1" and manifest.extra["missing"] == []
    assert (tmp_path / "b" / "0000" / "allocinfo").read_bytes() == (proc / "allocinfo").read_bytes()


def test_unreadable_file_is_reported_once(tree, tmp_path, capsys):
    proc, sys_ = tree
    (proc / "vmallocinfo").unlink()
    (proc / "vmallocinfo").mkdir()  # reading it fails even for root
    manifest = collect(tmp_path / "b", interval=0, count=2, procfs=proc, sysfs=sys_, progress=False)
    assert capsys.readouterr().err.count("cannot read") == 1
    assert manifest.extra["unreadable"] == ["vmallocinfo"]
    assert all("vmallocinfo" not in s.files and "meminfo" in s.files for s in manifest.snapshots)


def test_refuses_existing_bundle_and_bad_roots(tree, tmp_path):
    proc, sys_ = tree
    collect(tmp_path / "b", interval=0, count=1, procfs=proc, sysfs=sys_, progress=False)
    with pytest.raises(FileExistsError):
        collect(tmp_path / "b", interval=0, count=1, procfs=proc, sysfs=sys_, progress=False)
    with pytest.raises(FileNotFoundError, match="not a procfs root"):
        collect(tmp_path / "c", procfs=tmp_path / "nowhere", progress=False)
    with pytest.raises(FileNotFoundError, match="not a sysfs root"):  # was a manifest without CPU counts
        collect(tmp_path / "c", procfs=proc, sysfs=tmp_path / "nowhere", progress=False)
    assert not (tmp_path / "c").exists()
    with pytest.raises(ValueError):
        collect(tmp_path / "d", count=0, procfs=proc, progress=False)


def test_hashed_vmallocinfo_is_announced(tree, tmp_path, capsys):
    proc, sys_ = tree
    collect(tmp_path / "a", interval=0, count=1, procfs=proc, sysfs=sys_, progress=False)
    assert "kptr_restrict" not in capsys.readouterr().err  # 1: real addresses for root
    (proc / "sys/kernel/kptr_restrict").write_text("0\n")
    collect(tmp_path / "b", interval=0, count=1, procfs=proc, sysfs=sys_, progress=False)
    assert "kptr_restrict is 0: vmallocinfo addresses will be hashed" in capsys.readouterr().err


def test_missing_perf_says_so(tree, tmp_path, capsys):
    proc, sys_ = tree
    manifest = collect(tmp_path / "b", interval=0, count=1, trace=0.1, procfs=proc, sysfs=sys_,
                       perf="vmaplab-no-such-perf", progress=False)
    assert "not found: no vmalloc trace recorded" in capsys.readouterr().err
    assert "vmalloc_trace" not in manifest.snapshots[0].files


def test_cli(tree, tmp_path):
    proc, sys_ = tree
    runner = CliRunner()
    result = runner.invoke(app, ["collect", "--out", str(tmp_path / "b"), "--interval", "10ms", "--count", "2",
                                 "--procfs", str(proc), "--sysfs", str(sys_)])
    assert result.exit_code == 0, result.output
    assert "2 snapshot(s) of meminfo, slabinfo, vmallocinfo, vmstat" in result.output
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["extra"]["interval"] == 0.01
    bad = runner.invoke(app, ["collect", "--out", str(tmp_path / "c"), "--interval", "often"])
    assert bad.exit_code == 2 and not (tmp_path / "c").exists()
    bad = runner.invoke(app, ["collect", "--out", str(tmp_path / "c"), "--procfs", str(tmp_path / "nowhere")])
    assert bad.exit_code == 2 and "not a procfs root" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["collect", "--out", str(tmp_path / "b")])  # a bundle already: one line, no traceback
    assert bad.exit_code == 2 and "holds a bundle already" in bad.output


def test_committed_bundle():
    manifest = Manifest.load(BUNDLE)
    assert manifest.origin == "collect" and manifest.cpus_online == 2 and manifest.kptr_restrict == 1
    assert manifest.snapshots[0].files["vmalloc_trace"] == "0000/vmalloc_trace"
    assert [s.time for s in manifest.snapshots] == sorted(s.time for s in manifest.snapshots)


FAKE_PERF = """#!{python}
# A stand-in for perf: logs its arguments; record writes the -o file, script prints a real capture.
import json, sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[0] == "record":
    if {fail_record}:
        sys.exit("perf_event_open: Permission denied")
    open(args[args.index("-o") + 1], "w").write("PERFILE2")
elif args[0] == "script":
    sys.stdout.write(open({capture!r}).read())
"""


@pytest.mark.parametrize("case", ["recorded", "record fails", "no events"])
def test_trace_through_perf(tree, tmp_path, capsys, case):
    # the trace path of collect without root: a fake perf that prints the committed bundle's real trace
    capture = BUNDLE / "0000" / "vmalloc_trace"
    if case == "no events":  # perf script prints nothing when no event was recorded
        capture = tmp_path / "empty.txt"
        capture.write_text("")
    perf, log = tmp_path / "perf", tmp_path / "perf.log"
    perf.write_text(FAKE_PERF.format(python=shutil.which("python3") or "/usr/bin/env python3", log=str(log),
                                     fail_record=case == "record fails", capture=str(capture)))  # fmt: skip
    perf.chmod(0o755)
    proc, sys_ = tree
    manifest = collect(tmp_path / "b", count=1, trace=0.5, procfs=proc, sysfs=sys_, perf=str(perf), progress=False)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    record = calls[0]
    assert record[:3] == ["record", "-q", "-a"] and record[-3:] == ["--", "sleep", "0.5"]
    assert [record[i + 1] for i, arg in enumerate(record) if arg == "-e"] == [
        "vmalloc:alloc_vmap_area", "vmalloc:free_vmap_area_noflush", "vmalloc:purge_vmap_area_lazy"]
    stored = tmp_path / "b" / "0000" / "vmalloc_trace"
    err = capsys.readouterr().err
    if case == "recorded":
        assert calls[1][:2] == ["script", "-i"] and calls[1][2] == record[record.index("-o") + 1]
        assert manifest.snapshots[0].files["vmalloc_trace"] == "0000/vmalloc_trace"
        assert stored.read_bytes() == capture.read_bytes()
    else:
        assert "vmalloc_trace" not in manifest.snapshots[0].files and not stored.exists()
        said = "perf record failed (perf_event_open: Permission denied)" if case == "record fails" else (
            "no vmalloc event happened: no vmalloc trace stored")
        assert said in err and len(calls) == (1 if case == "record fails" else 2)


@pytest.mark.skipif(shutil.which("perf") is None or os.geteuid() != 0, reason="needs perf and root")
def test_live_trace(tmp_path):
    from vmaplab.io.vmalloc_trace import read_vmalloc_trace

    stop = threading.Event()

    def churn():  # new threads need new kernel stacks, which are vmalloc'ed
        while not stop.is_set():
            workers = [threading.Thread(target=stop.wait, args=(0.01,)) for _ in range(20)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()

    driver = threading.Thread(target=churn)
    driver.start()
    try:
        manifest = collect(tmp_path / "b", interval=0.2, count=2, trace=1.0, progress=False)
    finally:
        stop.set()
        driver.join()
    assert manifest.snapshots[0].files.get("vmalloc_trace") == "0000/vmalloc_trace"
    trace = read_vmalloc_trace(tmp_path / "b" / "0000" / "vmalloc_trace")
    assert (trace["event"] == "alloc_vmap_area").any()
    assert manifest.kernel_release == Path("/proc/sys/kernel/osrelease").read_text().strip()
