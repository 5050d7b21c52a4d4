"""collapse_stacks against FlameGraph's published expected outputs and stackcollapse-perf.pl's output on
this host's captures; profile_from_samples against perf report of the same recording."""

import gzip
import io
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import vmaplab
from vmaplab.analysis import stacks
from vmaplab.analysis.stacks import collapse_stacks, profile_from_samples
from vmaplab.cli import app
from vmaplab.errors import BadLineWarning, ParseError, VmaplabWarning
from vmaplab.io.perf_report import read_perf_report
from vmaplab.io.perf_script import read_perf_script

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "data" / "real"
FLAMEGRAPH = ROOT.parent / "shared" / "fixtures" / "flamegraph"
INPUTS = sorted(p.stem for p in FLAMEGRAPH.glob("perf-*.txt"))
OPTIONS = ["pid", "tid", "kernel", "jit", "all", "addrs"]


def _folded(path: Path) -> dict[str, int]:
    """A stackcollapse output file: 'stack count' lines (the stack may hold spaces)."""
    opener = gzip.open if path.suffix == ".gz" else open
    out = {}
    with opener(path, "rt") as f:
        for line in f:
            stack, count = line.rstrip("\n").rsplit(" ", 1)
            out[stack] = int(count)
    return out


def _as_dict(df: pd.DataFrame) -> dict[str, int]:
    return dict(zip(df["stack"], df["count"].tolist()))


def _last_sample_leaf(path: Path) -> str:
    """Function name of the first frame line of the file's last sample (its leaf)."""
    blocks = [b for b in path.read_text().split("\n\n") if b.strip()]
    first_frame = blocks[-1].splitlines()[1].split(None, 1)[1]
    return first_frame.rsplit(" (", 1)[0].split("(")[0]


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("name", INPUTS)
def test_flamegraph_expected_outputs(name, option):
    src = FLAMEGRAPH / f"{name}.txt"
    df = collapse_stacks(src, **{option: True})
    expected = _folded(FLAMEGRAPH / "results" / f"{name}-collapsed-{option}.txt")
    assert df.dtypes.astype(str).to_dict() == {"stack": "string", "count": "int64"}
    assert df["stack"].tolist() == sorted(df["stack"], key=lambda s: s.encode())  # Perl's byte-wise sort
    got = _as_dict(df)
    if src.read_bytes().endswith(b"\n\n"):
        assert got == expected
    else:
        # The known difference: the Perl script drops the last sample when no blank line follows it;
        # vmaplab counts it. Exactly one stack differs, by one sample, and it ends in that sample's leaf.
        diff = {k: got.get(k, 0) - expected.get(k, 0) for k in set(got) | set(expected) if got.get(k, 0) != expected.get(k, 0)}
        assert list(diff.values()) == [1]
        (stack,) = diff
        assert stack.split(";")[-1].startswith(_last_sample_leaf(src))


@pytest.mark.parametrize(
    "option, expected",
    [(None, "perf-script-churn-pidtid-collapsed.txt.gz")]
    + [(o, f"perf-script-churn-pidtid-collapsed-{o}.txt.gz") for o in OPTIONS],
)
def test_this_host_capture_equals_perl_output(option, expected):
    # stackcollapse-perf.pl output on the same file (data/real/SOURCES.md), every option
    df = collapse_stacks(REAL / "perf-script-churn-pidtid.txt.gz", **({option: True} if option else {}))
    assert df["stack"].tolist() == list(_folded(REAL / expected))
    assert _as_dict(df) == _folded(REAL / expected)


def test_default_fields_with_offsets_and_periods():
    df = collapse_stacks(REAL / "perf-script-churn.txt.gz")
    assert _as_dict(df) == _folded(REAL / "perf-script-churn-collapsed.txt.gz")
    # 957 samples of period 100000 ns (perf record -c 100000), by process name
    assert df["count"].sum() == 957 * 100_000
    by_comm = df.groupby(df["stack"].str.split(";").str[0])["count"].sum()
    samples = read_perf_script(REAL / "perf-script-churn.txt.gz")
    assert by_comm.to_dict() == samples.groupby("comm")["period"].sum().to_dict()
    assert df.attrs["event"] == "cpu-clock" and df.attrs["bad_lines"] == []
    # the vmalloc path of the kernel stacks is in there, offsets stripped
    assert df["stack"].str.contains(";copy_process;__vmalloc_node_noprof;__vmalloc_node_range_noprof;").any()


def test_sources_streams_and_chunk_boundaries(monkeypatch):
    path = FLAMEGRAPH / "perf-funcab-pid-01.txt"
    expected = _as_dict(collapse_stacks(path))
    assert _as_dict(collapse_stacks(io.BytesIO(path.read_bytes()))) == expected
    assert _as_dict(collapse_stacks(io.StringIO(path.read_text()))) == expected
    # tiny chunks: blank lines and samples cut at every place; no blank line for long: fed by lines
    monkeypatch.setattr(stacks, "_CHUNK", 7)
    assert _as_dict(collapse_stacks(path)) == expected
    monkeypatch.setattr(stacks, "_MAX_PENDING", 50)
    assert _as_dict(collapse_stacks(path)) == expected
    monkeypatch.setattr(stacks, "_MAX_BODIES", 2)
    monkeypatch.setattr(stacks, "_MAX_LINES", 3)
    assert _as_dict(collapse_stacks(path, tid=True)) == _folded(FLAMEGRAPH / "results" / "perf-funcab-pid-01-collapsed-tid.txt")


def test_only_the_first_event_is_kept():
    # Two real captures back to back: the rust one samples cycles:u, the funcab one cpu-clock; the
    # Perl script keeps the first event it sees, so the second capture's samples are filtered out.
    rust = (FLAMEGRAPH / "perf-rust-Yamakaky-dcpu.txt").read_text()
    funcab = (FLAMEGRAPH / "perf-funcab-cmd-01.txt").read_text()
    df = collapse_stacks(io.StringIO(rust + funcab))
    assert _as_dict(df) == _as_dict(collapse_stacks(io.StringIO(rust)))
    assert df.attrs["event"] == "cycles:u"
    # every sample header of the second capture ends in its event, cpu-clock: those were left out
    assert df.attrs["other_event_samples"] == len(re.findall(r" cpu-clock: *$", funcab, re.M)) == 169
    assert _as_dict(collapse_stacks(io.StringIO(funcab + rust))) == _as_dict(collapse_stacks(io.StringIO(funcab)))


def test_unrecognised_line_error_warn_skip():
    lines = (FLAMEGRAPH / "perf-funcab-cmd-01.txt").read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if line.strip().startswith("4005b1 main"))
    cut = lines[:i] + ["\t          4005b1 mai"] + lines[i + 1 :]  # a frame line cut mid-line
    text = "\n".join(cut) + "\n"
    with pytest.raises(ParseError, match=rf"line {i + 1}: expected a perf script sample header"):
        collapse_stacks(io.StringIO(text))
    with pytest.warns(BadLineWarning, match="skipped 1 bad line"):
        warned = collapse_stacks(io.StringIO(text), on_bad_lines="warn")
    skipped = collapse_stacks(io.StringIO(text), on_bad_lines="skip")
    assert skipped.attrs["bad_lines"][0]["lineno"] == i + 1
    # like the Perl script (which warns and goes on), the sample keeps its other frames
    whole = _as_dict(collapse_stacks(io.StringIO("\n".join(lines) + "\n")))
    got = _as_dict(warned)
    assert sum(got.values()) == sum(whole.values())
    assert _as_dict(skipped) == got
    assert got.get("func_ab;__libc_start_main;func_b") == 1 and "func_ab;__libc_start_main;func_b" not in whole


@pytest.mark.parametrize("max_pending", [stacks._MAX_PENDING, 50])  # whole samples; line by line
def test_a_lone_frame_whose_name_tidies_away_keeps_its_semicolon(max_pending, monkeypatch):
    # FlameGraph's first func_ab sample cut to one frame named '"(anonymous)"' (a JIT map may hold such
    # a name): quotes and the argument list go, an empty name is left, and stackcollapse-perf.pl (commit
    # 41fee1f) prints 'func_ab; 1' for it: the process name, then that empty frame
    monkeypatch.setattr(stacks, "_MAX_PENDING", max_pending)
    lines = (FLAMEGRAPH / "perf-funcab-cmd-01.txt").read_text().split("\n")
    i = lines.index("func_ab 15285 28075374.517811: cpu-clock: ")
    lines[i + 1 : i + 4] = ['\t          400577 "(anonymous)" (/root/lang/func_ab)']
    got = _as_dict(collapse_stacks(io.StringIO("\n".join(lines))))
    assert got["func_ab;"] == 1 and "func_ab" not in got
    assert got["func_ab;__libc_start_main;main;func_b"] == 87


@pytest.mark.parametrize("option", [None, *OPTIONS])
def test_cli_collapse_prints_the_perl_output(option, tmp_path):
    # vmaplab collapse FILE [--option] writes stackcollapse-perf.pl's output byte for byte
    suffix = f"-{option}" if option else ""
    args = ["collapse", str(REAL / "perf-script-churn-pidtid.txt.gz")] + ([f"--{option}"] if option else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with gzip.open(REAL / f"perf-script-churn-pidtid-collapsed{suffix}.txt.gz", "rt") as f:
        assert result.stdout == f.read()


def test_cli_collapse_stdin_out_and_bad_lines(tmp_path):
    with gzip.open(REAL / "perf-script-churn.txt.gz", "rb") as f:
        script = f.read()
    with gzip.open(REAL / "perf-script-churn-collapsed.txt.gz", "rt") as f:
        expected = f.read()
    runner = CliRunner()
    piped = runner.invoke(app, ["collapse", "-", "--out", str(tmp_path / "folded.txt")], input=script)
    assert piped.exit_code == 0 and piped.stdout == "" and (tmp_path / "folded.txt").read_text() == expected
    lines = (FLAMEGRAPH / "perf-funcab-cmd-01.txt").read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if line.strip().startswith("4005b1 main"))
    cut = tmp_path / "cut.txt"  # a frame line cut mid-line
    cut.write_text("\n".join(lines[:i] + ["\t          4005b1 mai"] + lines[i + 1 :]) + "\n")
    bad = runner.invoke(app, ["collapse", str(cut)])
    assert bad.exit_code == 2 and bad.stdout == ""
    assert f"vmaplab collapse: {cut}, line {i + 1}: expected a perf script sample header" in bad.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as outside pytest, which turns vmaplab's warnings into errors
        lenient = runner.invoke(app, ["collapse", str(cut), "--lenient"])
    assert lenient.exit_code == 0 and "vmaplab: BadLineWarning: " in lenient.stderr
    assert "skipped 1 bad line" in lenient.stderr
    assert lenient.stdout.count("\n") == len(collapse_stacks(cut, on_bad_lines="skip"))
    nowhere = runner.invoke(app, ["collapse", str(cut), "--out", str(tmp_path / "no" / "f.txt")])
    assert nowhere.exit_code == 2 and "does not exist" in nowhere.stderr
    # gzip on stdin (`cat x.gz | vmaplab collapse -`) is unpacked
    gz = runner.invoke(app, ["collapse", "-"], input=(REAL / "perf-script-churn.txt.gz").read_bytes())
    assert gz.exit_code == 0 and gz.stdout == expected
    # samples of a second event are left out, as the Perl script does, and said so on stderr
    names = ("perf-rust-Yamakaky-dcpu.txt", "perf-funcab-cmd-01.txt")
    rust, funcab = ((FLAMEGRAPH / name).read_text() for name in names)
    two = runner.invoke(app, ["collapse", "-"], input=rust + funcab)
    assert two.exit_code == 0 and two.stdout == runner.invoke(app, ["collapse", "-"], input=rust).stdout
    assert two.stderr == "vmaplab collapse: kept event cycles:u; 169 sample(s) of other events left out\n"
    # samples without call chains (data/real/perf-script-notid-nog.txt): no output, as the Perl, and a reason
    nog = runner.invoke(app, ["collapse", str(REAL / "perf-script-notid-nog.txt")])
    assert nog.exit_code == 0 and nog.stdout == "" and "no call chain to fold" in nog.stderr
    # text of another format is refused where the Perl's patterns stop (line 46 of a meminfo), naming the format
    meminfo = runner.invoke(app, ["collapse", str(REAL / "meminfo.txt")])
    assert meminfo.exit_code == 2 and f"{REAL / 'meminfo.txt'}, line 46: expected a perf script" in meminfo.stderr
    assert "; the file reads as meminfo text, not perf_script (vmaplab read " in meminfo.stderr
    assert "reads as" not in bad.stderr  # a perf script with a bad line is a perf script


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab0f :;/()[]+x\t\n#->.")), max_size=300))
def test_random_text_gives_parse_error_or_a_frame(text):
    try:
        df = collapse_stacks(io.StringIO(text))
    except ParseError:
        return
    assert (df["count"] > 0).all()


def test_profile_from_samples_equals_perf_report():
    # perf-report-small-children.txt is `perf report --stdio -g none` of the recording whose
    # `perf script` is perf-script-churn.txt.gz (data/real/SOURCES.md)
    prof = profile_from_samples(REAL / "perf-script-churn.txt.gz")
    report = read_perf_report(REAL / "perf-report-small-children.txt")
    assert list(prof.columns[:9]) == list(report.columns[:9])
    keys = ["command", "shared_object", "symbol"]
    both = prof.merge(report, on=keys, suffixes=("_s", "_r"))
    assert len(both) == 578 and len(report) == 580
    assert (both["children_pct_s"].round(2) == both["children_pct_r"]).all()
    assert (both["self_pct_s"].round(2) == both["self_pct_r"]).all()
    # perf marks unresolved user addresses [k] after the sample's CPU mode; vmaplab after the address
    differ = both[both["symbol_kind_s"] != both["symbol_kind_r"]]
    assert set(differ["shared_object"]) == {"unknown"} and set(differ["symbol_kind_r"]) == {"k"}
    # the 2 not matched: user addresses of dash, which perf report shows process-relative and perf
    # script relative to the DSO
    missing = report.merge(prof, on=keys, how="left", indicator=True).query("_merge == 'left_only'")
    assert missing["shared_object"].tolist() == ["dash", "dash"]
    # -n: the number of samples per leaf symbol
    counts = read_perf_report(REAL / "perf-report-small-self-n.txt")
    n = prof.merge(counts, on=keys, suffixes=("_s", "_r"))
    assert len(n) == len(counts) == 263 and (n["samples_s"] == n["samples_r"]).all()
    assert prof["samples"].sum() == 957
    top = prof.iloc[0]
    assert (top["symbol"], round(top["children_pct"], 2), top["samples"]) == ("do_syscall_64", 80.98, 9)


def test_public_name():
    assert vmaplab.collapse_stacks is collapse_stacks
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        collapse_stacks(FLAMEGRAPH / "perf-java-stacks-02.txt")


def test_profile_from_samples_keeps_the_first_event_as_collapse_does():
    # the two real captures of test_only_the_first_event_is_kept back to back: cycles:u, then 169 cpu-clock
    # samples; their periods were summed into one total with the first event's name on it
    rust = (FLAMEGRAPH / "perf-rust-Yamakaky-dcpu.txt").read_text()
    funcab = (FLAMEGRAPH / "perf-funcab-cmd-01.txt").read_text()
    with pytest.warns(VmaplabWarning, match=r"a profile of cycles:u only: 169 samples of other events \(cpu-clock\)"):
        both = profile_from_samples(io.StringIO(rust + funcab))
    alone = profile_from_samples(io.StringIO(rust))
    assert both.attrs["other_event_samples"] == 169 and alone.attrs["other_event_samples"] == 0
    pd.testing.assert_frame_equal(both, alone)
    assert both.attrs["event_count"] == alone.attrs["event_count"]


def test_headers_without_tid_are_named_with_cpu_and_time_and_said_so():
    # data/real/perf-script-notid.txt.gz: perf script -F without tid; the Perl's header pattern takes the CPU
    # and time into each process name ("ls_[000]_86472.358375:"), so no two samples fold together
    with pytest.warns(VmaplabWarning, match="230 stack.s. are named with their sample's CPU and time"):
        df = collapse_stacks(REAL / "perf-script-notid.txt.gz")
    assert len(df) == 230 and (df["count"] == 250_000).all()  # one sample (its period) each
    assert df["stack"].str.match(r"(ls|sh)_\[000\]_+\d+\.\d{6}:;").all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folded = collapse_stacks(REAL / "perf-script-notid-tid.txt.gz")  # the same recording with tid
    assert folded["count"].sum() == 230 * 250_000 and len(folded) == 137
