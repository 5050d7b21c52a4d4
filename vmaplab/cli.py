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


def _plot_help() -> str:
    from .figures import FIGURES

    names = "\n\n".join(f"{name}: {spec.summary}" for name, spec in FIGURES.items())
    return f"Draw a named figure from data files or a bundle folder and save it as PNG or SVG.\n\nFigures:\n\n{names}"


@app.command(help=_plot_help())
def plot(
    name: str = typer.Argument(..., help="Figure name (listed above)."),
    sources: list[str] = typer.Option(
        ..., "--from", help="Data file (N=FILE gives a run's thread count) or bundle folder; repeat for several."
    ),
    out: Path | None = typer.Option(None, "--out", help="Image to write, .png or .svg (default: NAME.png)."),
    unit: str | None = typer.Option(
        None, "--unit", help="Unit of bare free numbers (b, k, m, g) when no free command line states it."
    ),
    published: str | None = typer.Option(
        None, "--published", help="Citation of published input, e.g. 'Rezki, linux-mm, 22 Feb 2024'."
    ),
    fields: list[str] | None = typer.Option(
        None, "--field", help="meminfo/vmstat field of snapshot_series; repeat for several."
    ),
) -> None:
    from .figures import PlotOptions, draw

    target = out or Path(f"{name}.png")
    try:
        if target.suffix.lower() not in (".png", ".svg"):
            raise ValueError(f"{target}: write a .png or .svg file")
        figure = draw(name, sources, PlotOptions(unit=unit, published=published, fields=tuple(fields or ())))
    except (ValueError, FileNotFoundError) as exc:  # vmaplab.ParseError is a ValueError
        typer.echo(f"vmaplab plot: {exc}", err=True)
        raise typer.Exit(2) from None
    figure.savefig(target, dpi=150)
    typer.echo(f"{target}: {name}")
