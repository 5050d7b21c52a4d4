"""The README's tour runs as written: every ``>>>`` example in its ```python blocks gives the output the
README shows (doctest, whitespace-normalised), and so does every ``$ vmaplab diff`` and ``growth`` example, from the
project folder, on the data it names."""

import doctest
import re
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from vmaplab.cli import app

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


def test_readme_diff_examples(monkeypatch):
    examples = re.findall(r"```\n\$ vmaplab ((?:diff|growth) .*?)\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(examples) >= 3, "the README's tour lost its vmaplab diff and growth examples"
    monkeypatch.chdir(ROOT)
    for command, shown in examples:
        result = CliRunner().invoke(app, command.split())
        assert result.exit_code == 0, result.output
        assert result.output == shown, command
