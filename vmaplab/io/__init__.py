"""Readers: one module per kernel text format, each turning a source into a tidy DataFrame.

Every reader is ``read_<format>(src, *, on_bad_lines="error", ...) -> DataFrame`` with the format's
name in ``df.attrs["format"]`` and the source in ``df.attrs["source"]``; :func:`vmaplab.read` detects the
format. Shared plumbing is in ``_source`` (opening, paste cleaning, bad lines) and ``units`` (sizes).
"""
