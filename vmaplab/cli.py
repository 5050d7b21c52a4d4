"""The ``vmaplab`` command line: thin commands over the library (``vmaplab --help``)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Study the Linux vmalloc/vmap allocator: read kernel text, diff snapshots, simulate both designs.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    # An explicit callback keeps every command a subcommand (``vmaplab collect``) even while only one exists.
    pass


@app.command()
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
    manifest = run(out, interval=every, count=count, trace=seconds, procfs=procfs, sysfs=sysfs)
    formats = sorted({fmt for snap in manifest.snapshots for fmt in snap.files})
    typer.echo(f"{out}: {len(manifest.snapshots)} snapshot(s) of {', '.join(formats)}")


@app.command()
def diff(
    before: Path = typer.Argument(..., help="Earlier snapshot: allocinfo (any format, or a paste), meminfo or vmstat."),
    after: Path = typer.Argument(..., help="Later snapshot, of the same format."),
    top: int | None = typer.Option(None, "--top", min=0, help="Show only the N biggest changes."),
    by: str = typer.Option("tag", "--by", help="allocinfo key: tag, module, file or func."),
) -> None:
    """Show what grew between two snapshots, biggest change first (a paste of several listings: first vs last)."""
    from .analysis.diff import diff as run, format_diff

    try:
        table = run(before, after, by=by, top=top)
    except (ValueError, FileNotFoundError) as exc:  # vmaplab.ParseError is a ValueError
        typer.echo(f"vmaplab diff: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(format_diff(table))
