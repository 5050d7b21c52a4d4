"""Analyses over reader output: snapshot diffs and growth tables, profile comparison, folded stacks,
page-table footprint, area lifetimes, work-item runs and probed functions' call times."""
