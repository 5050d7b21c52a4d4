"""Every example in vmaplab's docstrings runs as written and shows what it prints (doctest, from the
project folder, on the data files it names). Examples marked ``+SKIP`` write files or take minutes."""

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import vmaplab

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["vmaplab"] + sorted(m.name for m in pkgutil.walk_packages(vmaplab.__path__, "vmaplab."))


def _examples(name: str) -> list[doctest.DocTest]:
    return [t for t in doctest.DocTestFinder().find(importlib.import_module(name)) if t.examples]


@pytest.mark.parametrize("name", [m for m in MODULES if _examples(m)])
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    reports: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in _examples(name):
        runner.run(test, out=reports.append)
    assert runner.failures == 0, "".join(reports)


def test_the_examples_are_found():
    # the modules with examples, so that a finder that silently finds nothing fails here
    found = {m for m in MODULES if _examples(m)}
    assert {"vmaplab", "vmaplab.io.allocinfo", "vmaplab.analysis.diff", "vmaplab.sim.allocator",
            "vmaplab.sim.run"} <= found
