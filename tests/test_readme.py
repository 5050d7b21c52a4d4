"""The README's Python tour runs as written: every ``>>>`` example in its ```python blocks gives the output
the README shows (doctest, whitespace-normalised), from the project folder, on the data it names."""

import doctest
import re
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_examples(monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 4, "the README's tour lost its Python examples"
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, "README.md", "README.md", 0)
    monkeypatch.chdir(ROOT)
    reports: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        runner.run(test, out=reports.append)
    assert runner.failures == 0, "".join(reports)
    assert runner.tries >= 20
