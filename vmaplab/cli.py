"""The ``vmaplab`` command line: thin commands over the library (``vmaplab --help``)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from .io import FORMATS

app = typer.Typer(
    help="Study the Linux vmalloc/vmap allocator: read kernel text, diff snapshots, simulate both designs.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help texts name files like [vmallocinfo]: print brackets as written
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"vmaplab {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the version."),
) -> None:
    """Study the Linux vmalloc/vmap allocator: read kernel text, diff snapshots, simulate both designs."""
    warnings.showwarning = _warn_in_one_line


def _warn_in_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A library warning on the command line: its kind and text, not the source line that raised it (above
    a :func:`_ticking` line, if one is shown)."""
    from tqdm import tqdm

    tqdm.write(f"vmaplab: {category.__name__}: {message}", file=sys.stderr)


# A step that has run this long (s) gets a line on stderr counting its seconds (terminals only).
TICK_AFTER_S = 1.0


@contextmanager
def _ticking(desc: str, *, show: bool = True) -> Iterator[None]:
    """While the block runs, a line "<desc>: <elapsed>" on stderr, updated four times a second once the
    block has run TICK_AFTER_S, on a terminal only (and if ``show``): a read of a large capture shows
    it is working."""
    import threading

    from tqdm import tqdm

    bar = tqdm(desc=desc, bar_format="{desc}: {elapsed}", file=sys.stderr, disable=None if show else True,
               delay=TICK_AFTER_S)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.25):
            bar.update(0)  # redraws once the delay has passed

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
        bar.close()


@contextmanager
def _one_line_errors(command: str, *, src: str | None = None, fmt: str | None = None) -> Iterator[None]:
    """The library's refusals (vmaplab.ParseError is a ValueError) and OS errors as one line, exit status 2.

    When the file ``src`` was read as ``fmt`` and refused, the line also names the format it reads as, if
    another one (meminfo given to collapse)."""
    try:
        yield
    except (ValueError, OSError) as exc:
        typer.echo(f"vmaplab {command}: {exc}{_reads_as(src, fmt, exc)}", err=True)
        raise typer.Exit(2) from None


def _reads_as(src: str | None, fmt: str | None, exc: Exception) -> str:
    """'; the file reads as <format> ...' when a file refused as ``fmt`` is detected as another format."""
    from .errors import ParseError
    from .io.detect import file_format

    if src in (None, "-") or fmt is None or not isinstance(exc, ParseError) or not Path(src).is_file():
        return ""
    try:
        other = file_format(src)
    except (ValueError, OSError):  # no format recognised either: the error says enough
        return ""
    return "" if other == fmt else f"; the file reads as {other} text, not {fmt} (vmaplab read {src})"


def _input(path: str):
    """A path argument, or standard input (bytes: the readers unpack gzip) for ``-``."""
    return sys.stdin.buffer if path == "-" else path


def _new_bundle(out: Path) -> None:
    """Refuse, before any work, an ``--out`` that cannot become a new bundle folder."""
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} is a file, not a folder", param_hint="--out")
    from .bundle import MANIFEST

    if (out / MANIFEST).exists():
        raise typer.BadParameter(f"{out} holds a bundle already: name a new folder", param_hint="--out")


def _new_file(out: Path) -> None:
    """Refuse, before any work, an ``--out`` file whose folder does not exist."""
    if not out.parent.is_dir():
        raise typer.BadParameter(f"{out}: folder {out.parent} does not exist", param_hint="--out")


@app.command(short_help="Snapshot this host's /proc files into a bundle folder.")
def collect(
    out: Path = typer.Option(..., "--out", help="Bundle folder to create."),
    interval: str = typer.Option("1s", help="Time between snapshots: 1s, 500ms, 2m."),
    count: int = typer.Option(1, min=1, help="Number of snapshots."),
    trace: str | None = typer.Option(None, help="Also record the vmalloc tracepoints with perf this long (e.g. 10s)."),
    procfs: Path = typer.Option(Path("/proc"), help="procfs root to read (a container's or a captured tree)."),
    sysfs: Path = typer.Option(Path("/sys"), help="sysfs root to read the CPU lists from."),
) -> None:
    """Snapshot allocinfo, meminfo, vmstat, slabinfo and vmallocinfo of this host into a bundle."""
    from .collect import collect as run, parse_duration

    try:
        every = parse_duration(interval)
        seconds = None if trace is None else parse_duration(trace)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    _new_bundle(out)
    with _one_line_errors("collect"):
        manifest = run(out, interval=every, count=count, trace=seconds, procfs=procfs, sysfs=sysfs)
    formats = sorted({fmt for snap in manifest.snapshots for fmt in snap.files})
    typer.echo(f"{out}: {len(manifest.snapshots)} snapshot(s) of {', '.join(formats)}")


@app.command(name="read", short_help="Read kernel or perf text into one table (CSV).")
def read_text(
    src: str = typer.Argument(
        ..., metavar="FILE", help="Kernel or perf text (plain or .gz), its format detected; - reads stdin."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="Read as this format, not the detected one: " + ", ".join(FORMATS) + "."
    ),
    out: Path | None = typer.Option(None, "--out", help="Table to write, .csv or .parquet (default: CSV on stdout)."),
    lenient: bool = typer.Option(False, "--lenient", help="Warn about bad lines and go on without them."),
    unit: str | None = typer.Option(
        None, "--unit", help="Unit of bare free numbers (b, k, m, g, t, p); implies --format free."
    ),
) -> None:
    """Read any text vmaplab knows (allocinfo, meminfo, free, vmstat, slabinfo, vmallocinfo, test_vmalloc's
    dmesg, perf report/script/lock, the vmalloc, sched and kprobe traces) into one tidy table."""
    from .io.detect import read, reader

    if fmt is not None and fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    if unit is not None and fmt not in (None, "free"):
        raise typer.BadParameter(f"--unit applies to free output, not {fmt}", param_hint="--unit")
    options = {"on_bad_lines": "warn" if lenient else "error"}
    if unit is not None:
        fmt, options["unit"] = "free", unit
    if out is not None:
        _new_file(out)
        if out.suffix not in (".csv", ".parquet"):
            raise typer.BadParameter(f"{out}: name a .csv or .parquet file", param_hint="--out")
    if src != "-" and Path(src).is_dir():
        raise typer.BadParameter(f"{src} is a folder: give a file; a bundle folder is read by vmaplab.read_bundle "
                                 "(Python) or followed over time by vmaplab growth FOLDER --format F")  # fmt: skip
    with _one_line_errors("read", src=src, fmt=fmt), _ticking(f"vmaplab read: reading {src}"):
        table = (read if fmt is None else reader(fmt))(_input(src), **options)
    typer.echo(_read_summary(table), err=True)
    with _ticking(f"vmaplab read: writing {len(table)} rows", show=out is not None or not sys.stdout.isatty()):
        if out is None:
            table.to_csv(sys.stdout, index=False)
        elif out.suffix == ".csv":
            table.to_csv(out, index=False)
        else:
            table.to_parquet(out, index=False)


def _read_summary(table) -> str:
    """One line on what a reader made of its input: format, rows, listings, lines passed over or bad."""
    parts = [f"{table.attrs.get('source')}: {table.attrs.get('format')}, {len(table)} rows"]
    if "block" in table.columns and table["block"].nunique() > 1:
        parts.append(f"in {table['block'].nunique()} listings")
    passed = table.attrs.get("skipped_lines") or 0
    if passed:
        parts.append(f"{passed} other line(s) passed over (prose, prompts, text of other formats)")
    bad = len(table.attrs.get("bad_lines") or [])
    if bad:
        parts.append(f"{bad} bad line(s) skipped")
    kind = table.attrs.get("address_kind")  # vmallocinfo's %pK addresses
    if kind in ("hashed", "zero", "mixed"):
        parts.append(f"addresses {kind if kind != 'mixed' else 'partly hashed'} (kptr_restrict): start and end "
                     "are not addresses; read it as root with kptr_restrict 1")  # fmt: skip
    return ", ".join(parts)


@app.command(short_help="What grew between two snapshots.")
def diff(
    before: str = typer.Argument(
        ..., metavar="BEFORE",
        help="Earlier snapshot: allocinfo (any format, or a paste), meminfo, vmstat, slabinfo or vmallocinfo.",
    ),
    after: str = typer.Argument(
        ..., metavar="AFTER", help="Later snapshot, of the same format (one of the two may be - for stdin)."
    ),
    top: int | None = typer.Option(None, "--top", min=0, help="Show only the N biggest changes."),
    by: str = typer.Option("tag", "--by", help="allocinfo key: tag, module, file or func."),
) -> None:
    """Show what grew between two snapshots, biggest change first (a paste of several listings: first vs last)."""
    from .analysis.diff import diff as run, format_diff
    from .io.detect import read

    if before == after == "-":
        raise typer.BadParameter("standard input can be one of the two snapshots, not both")
    with _one_line_errors("diff"):
        table = run(*(read(_input(path)) if path == "-" else path for path in (before, after)), by=by, top=top)
    typer.echo(format_diff(table))


@app.command(short_help="How each tag changed over a series of snapshots.")
def growth(
    snapshots: list[str] = typer.Argument(
        ..., metavar="SNAPSHOT",
        help="Two or more snapshots of one format in order, or one file (its listings) or bundle folder.",
    ),
    fmt: str | None = typer.Option(None, "--format", help="Which format of a bundle folder: meminfo, vmstat, ..."),
    values: str | None = typer.Option(None, "--values", help="bytes (default), calls, objs, pages or areas."),
    top: int | None = typer.Option(None, "--top", min=0, help="Show only the N biggest changes."),
    by: str = typer.Option("tag", "--by", help="allocinfo key: tag, module, file or func."),
) -> None:
    """Show how each tag (field, cache, caller) changed over a series of snapshots, biggest change first."""
    from .analysis.diff import format_growth, growth as run
    from .io.detect import FORMATS, read_bundle

    with _one_line_errors("growth"):
        if len(snapshots) == 1 and Path(snapshots[0]).is_dir():
            bundle = read_bundle(snapshots[0])
            if fmt not in bundle:
                folder, held = snapshots[0], ", ".join(sorted(bundle))
                if fmt is None:
                    raise ValueError(f"{folder} holds {held}: name one with --format")
                if fmt not in FORMATS:
                    raise ValueError(f"--format {fmt!r} is not a format; {folder} holds {held}")
                raise ValueError(f"{folder} has no {fmt} snapshots; it holds {held}")
            series = bundle[fmt]
        elif fmt is not None:
            raise ValueError("--format picks a format of a bundle folder; the files here are read as they are")
        else:
            series = snapshots[0] if len(snapshots) == 1 else snapshots
        table = run(series, by=by, values=values, top=top)
    typer.echo(format_growth(table))


@app.command(short_help="Fold perf script call chains as stackcollapse-perf.pl.")
def collapse(
    script: str = typer.Argument(
        ..., metavar="FILE", help="perf script output with call chains (plain or .gz); - reads stdin."
    ),
    pid: bool = typer.Option(False, "--pid", help="Name processes comm-pid."),
    tid: bool = typer.Option(False, "--tid", help="Name processes comm-pid/tid."),
    kernel: bool = typer.Option(False, "--kernel", help="Append _[k] to kernel frames."),
    jit: bool = typer.Option(False, "--jit", help="Append _[j] to JIT frames (/tmp/perf-PID.map)."),
    all_: bool = typer.Option(False, "--all", help="Both --kernel and --jit."),
    addrs: bool = typer.Option(False, "--addrs", help="Keep the address of unresolved frames: [module <pc>]."),
    lenient: bool = typer.Option(False, "--lenient", help="Warn about unrecognised lines and go on, as the Perl does."),
    out: Path | None = typer.Option(None, "--out", help="File to write (default: standard output)."),
) -> None:
    """Fold perf script call chains into 'stack count' lines, as FlameGraph's stackcollapse-perf.pl does.

    A count is the sum of the samples' periods (perf script prints them when recorded with -c or -F;
    1 per sample otherwise); only the first event seen is kept. The output is the Perl script's, line
    for line, so it feeds flamegraph.pl:

    \b
        perf script | vmaplab collapse - | flamegraph.pl > flame.svg
    """
    from .analysis.stacks import collapse_stacks

    if out is not None:
        _new_file(out)
    options = dict(pid=pid, tid=tid, kernel=kernel, jit=jit, all=all_, addrs=addrs)
    with _one_line_errors("collapse", src=script, fmt="perf_script"), _ticking(f"vmaplab collapse: folding {script}"):
        folded = collapse_stacks(_input(script), on_bad_lines="warn" if lenient else "error", **options)
    others = folded.attrs["other_event_samples"]
    if others:
        kept = folded.attrs["event"]
        typer.echo(f"vmaplab collapse: kept event {kept}; {others} sample(s) of other events left out", err=True)
    if folded.empty:  # as the Perl, no output; unlike it, say why
        typer.echo(f"vmaplab collapse: {script}: no call chain to fold (samples recorded without perf record -g "
                   "print their one frame on the header line; an empty input has none)", err=True)  # fmt: skip
    text = "".join(f"{stack} {count}\n" for stack, count in zip(folded["stack"], folded["count"].tolist()))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


def _plot_help() -> str:
    from .figures import FIGURES

    names = "\n\n".join(f"{name}: {spec.summary}" for name, spec in FIGURES.items())
    return f"Draw a named figure from data files or a bundle folder and save it as PNG or SVG.\n\nFigures:\n\n{names}"


@app.command(help=_plot_help(), short_help="Draw a named figure as PNG or SVG.")
def plot(
    name: str = typer.Argument(..., metavar="FIGURE", help="Figure name (listed above)."),
    sources: list[str] = typer.Option(
        ..., "--from", metavar="SOURCE",
        help="Data file (N=FILE gives a run's thread count) or bundle folder; repeat for several.",
    ),
    out: Path | None = typer.Option(None, "--out", help="Image to write, .png or .svg (default: NAME.png)."),
    unit: str | None = typer.Option(
        None, "--unit", help="Unit of bare free numbers (b, k, m, g, t, p) when no free command line states it."
    ),
    published: str | None = typer.Option(
        None, "--published", help="Citation of published input, e.g. 'Rezki, linux-mm, 22 Feb 2024'."
    ),
    fields: list[str] | None = typer.Option(
        None, "--field", metavar="FIELD", help="meminfo/vmstat field of snapshot_series; repeat for several."
    ),
) -> None:
    from .figures import PlotOptions, draw

    target = out or Path(f"{name}.png")
    _new_file(target)
    with _one_line_errors("plot"):
        if target.suffix.lower() not in (".png", ".svg"):
            raise ValueError(f"{target}: write a .png or .svg file")
        options = PlotOptions(unit=unit, published=published, fields=tuple(fields or ()), progress=True)
        figure = draw(name, sources, options)
    figure.savefig(target, dpi=150)
    typer.echo(f"{target}: {name}")


def _knobs(pairs: list[str] | None) -> dict:
    """``k=v`` options as simulate() knobs: ints, floats, true/false (on/off, yes/no) and none as such,
    else strings."""
    out = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: write a knob as name=value, e.g. drain_priority=high")
        if key == "costs":
            raise typer.BadParameter("costs is a CostModel: set it from Python (vmaplab.simulate(costs=...))")
        low = text.lower()
        if low in ("true", "false", "on", "off", "yes", "no"):
            value = low in ("true", "on", "yes")
        elif low == "none":
            value = None
        else:
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    value = text
        out[key] = value
    return out


def _tests(text: str) -> int | list[str]:
    """``--tests``: a run_test_mask (``7``, ``0x7f``) or comma-separated test names."""
    try:
        return int(text, 0)
    except ValueError:
        return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str, name: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise typer.BadParameter(f"{name}: comma-separated integers, such as 64,128,256") from None


@app.command(short_help="Run test_vmalloc on a simulated machine; write a bundle.")
def simulate(
    out: Path = typer.Option(..., "--out", help="Bundle folder to write (read it with vmaplab.read_bundle)."),
    design: str = typer.Option("nodes", help="global (Linux 6.7) or nodes (6.9, vmap nodes)."),
    threads: int = typer.Option(64, min=1, help="test_vmalloc nr_threads."),
    cpus: int = typer.Option(64, min=1, help="CPUs of the simulated machine."),
    tests: str = typer.Option(
        "7", help="run_test_mask of the modelled tests, bits 0-6 (7, 127, 0x7f), or comma-separated test names."
    ),
    loops: int = typer.Option(10_000, min=1, help="test_vmalloc test_loop_count."),
    seed: int = typer.Option(0, min=0, help="Seed of the workers' random streams."),
    knob: list[str] | None = typer.Option(
        None, "--knob", metavar="NAME=VALUE", help="Machine knob name=value (drain_priority=high); repeat."
    ),
    allocinfo_format: str = typer.Option("pre-merge", help="allocinfo of the bundle: pre-merge (the seed's) or 6.10."),
    progress: bool = typer.Option(True, help="Show a progress bar of the workers' allocations."),
) -> None:
    """Run test_vmalloc on a simulated machine, print a summary and write what the machine would show as a bundle."""
    from .io.units import format_size
    from .sim.emit import PAGETABLE_TAGS, write_bundle
    from .sim.params import PAGE_SIZE
    from .sim.run import simulate as run_simulation

    _new_bundle(out)
    if allocinfo_format not in PAGETABLE_TAGS:
        raise typer.BadParameter(
            f"{allocinfo_format!r}: one of {', '.join(PAGETABLE_TAGS)}", param_hint="--allocinfo-format"
        )
    try:
        run = run_simulation(design, threads=threads, cpus=cpus, tests=_tests(tests), loops=loops, seed=seed,
                             progress=progress, **_knobs(knob))  # fmt: skip
        write_bundle(run, out, allocinfo_format=allocinfo_format)
    except (ValueError, TypeError, FileExistsError) as exc:
        typer.echo(f"vmaplab simulate: {exc}", err=True)
        raise typer.Exit(2) from None
    rows = [
        ("design", f"{design} ({'6.7' if design == 'global' else '6.9'})"),
        ("threads / cpus", f"{threads} / {cpus}"),
        ("wall time", f"{run.wall_seconds:.3f} s" if run.wall_seconds >= 0.1 else f"{run.wall_seconds * 1e3:.3f} ms"),
        ("vmalloc+vfree pairs/s", f"{run.pairs_per_second:,.0f}"),
        ("spinlock spin share", f"{100 * run.lock_spin_share:.2f} %"),
        *[(f"  {lock}", f"{100 * share:.2f} %") for lock, share in run.lock_spin_by_lock.items() if share > 0],
        ("page tables", f"{format_size(run.pagetable_bytes)} ({run.pagetable_bytes // PAGE_SIZE} pages)"),
        ("VA high water", format_size(run.va_high_water)),
        ("failed repetitions", str(int(run.summaries["failed"].sum()))),
    ]
    width = max(len(k) for k, _ in rows)
    typer.echo("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    typer.echo(f"{out}: bundle of 1 snapshot")


@app.command(short_help="Simulate a grid of thread counts and designs.")
def sweep(
    out: Path = typer.Option(..., "--out", help="Table to write: .csv or .parquet."),
    threads: str = typer.Option("64,128,256", help="Comma-separated nr_threads values, in chain order."),
    designs: str = typer.Option("global,nodes", help="Comma-separated designs: global, nodes."),
    cpus: int = typer.Option(64, min=1, help="CPUs of every simulated machine."),
    tests: str = typer.Option("127", help="run_test_mask or comma-separated test names."),
    loops: int = typer.Option(10_000, min=1, help="test_vmalloc test_loop_count."),
    seeds: str = typer.Option("0", help="Comma-separated seeds; each is a chain of its own."),
    independent: bool = typer.Option(False, "--independent", help="Every point on a fresh machine (no chains)."),
    knob: list[str] | None = typer.Option(
        None, "--knob", metavar="NAME=VALUE", help="Machine knob name=value; repeat."
    ),
    cache: Path | None = typer.Option(None, "--cache", help="Cache folder: finished points are kept, a rerun resumes."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="dask.distributed scheduler address to run on."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Local processes (default: the CPU count)."),
) -> None:
    """Simulate a grid of thread counts and designs; write one row per point (docs: vmaplab.sweep)."""
    from .sim.sweep import sweep as run_sweep

    if out.suffix.lower() not in (".csv", ".parquet"):
        raise typer.BadParameter(f"{out}: write a .csv or .parquet file", param_hint="--out")
    _new_file(out)
    if cache is not None and cache.exists() and not cache.is_dir():
        raise typer.BadParameter(f"{cache} is a file, not a folder", param_hint="--cache")
    names = list(dict.fromkeys(d.strip() for d in designs.split(",") if d.strip()))  # each design once
    try:
        df = run_sweep(_ints(threads, "--threads"), names, cpus=cpus,
                       tests=_tests(tests), loops=loops, seeds=_ints(seeds, "--seeds"), sequential=not independent,
                       client=scheduler, cache_dir=cache, workers=workers, **_knobs(knob))  # fmt: skip
    except (ValueError, TypeError, OSError) as exc:  # OSError: a scheduler that cannot be reached, say
        typer.echo(f"vmaplab sweep: {exc}", err=True)
        raise typer.Exit(2) from None
    if out.suffix.lower() == ".csv":
        df.to_csv(out, index=False)
    else:
        df.to_parquet(out, index=False)
    cols = ["design", "threads", "seed", "wall_seconds", "lock_spin_share", "pagetable_bytes"]
    typer.echo(df[cols].to_string(index=False))
    typer.echo(f"{out}: {len(df)} point{'s' if len(df) != 1 else ''}")


@app.command(short_help="Reproduce the investigation as an HTML report.")
def reproduce(
    out: Path = typer.Option(..., "--out", help="Folder to write: report.html, figures as PNG and SVG, tables as CSV."),
    full: bool = typer.Option(
        False, "--full", help="The seed's 64-CPU machine at 64/128/256 threads (hours), not the quick 4-CPU one."
    ),
    data: Path | None = typer.Option(None, "--data", help="Folder holding seed/ and real/ (default: the repo's data)."),
) -> None:
    """Reproduce the vmap-node investigation (page tables, lock contention) as an HTML report with its figures."""
    from .report import FULL, QUICK, build_report

    with _one_line_errors("reproduce"):
        page = build_report(out, FULL if full else QUICK, data_dir=data, progress=True)
    typer.echo(f"{page}: {len(list(out.glob('*.png')))} figures, {len(list(out.glob('*.csv')))} tables")
