"""Analyses over reader output: snapshot diffs, profile comparison, folded stacks, page-table footprint."""
