"""The ``vmaplab`` command line: thin commands over the library (``vmaplab --help``)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Study the Linux vmalloc/vmap allocator: read kernel text, diff snapshots, simulate both designs.",
    no_args_is_help=True,
    add_completion=False,
)
