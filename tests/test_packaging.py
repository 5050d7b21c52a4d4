"""The conda route (environment.yml) and the pip route (pyproject.toml) list the same dependencies."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict[str, dict[str, str]]:
    """Requirements by group: "core" (dependencies) and each optional extra by its name."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"core": list(meta["dependencies"]), **meta["optional-dependencies"]}
    return {group: {_name(r): r.replace(" ", "") for r in reqs} for group, reqs in groups.items()}


def _environment() -> dict[str, dict[str, str]]:
    """Requirements by group: "core" until the first ``# <name> extra`` comment, then that extra."""
    groups: dict[str, dict[str, str]] = {"core": {}}
    group = "core"
    for line in (ROOT / "environment.yml").read_text().splitlines():
        extra = re.match(r"^\s+#\s*(\S+) extra\s*$", line)
        if extra:
            group = extra.group(1)
            groups.setdefault(group, {})
            continue
        m = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+.*?)\s*(#.*)?$", line)
        if m and not line.strip().startswith("- conda-forge"):
            req = m.group(1)
            groups[group][_name(req)] = req.replace(" ", "")
    for deps in groups.values():
        deps.pop("python", None)
        deps.pop("pip", None)
    return groups


def test_same_dependencies_and_bounds():
    py, env = _pyproject(), _environment()
    assert set(py) == set(env), f"groups only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    for group in py:
        p, e = py[group], env[group]
        assert set(p) == set(e), f"{group}: only in pyproject: {set(p) - set(e)}; only in environment.yml: {set(e) - set(p)}"
        for name in p:
            assert p[name] == e[name], f"{group} {name}: pyproject says {p[name]!r}, environment.yml says {e[name]!r}"


def test_public_names_resolve():
    import vmaplab

    missing = [n for n in vmaplab.__all__ if not hasattr(vmaplab, n)]
    assert not missing, f"public names that do not import: {missing}"


def test_cli_version_and_short_help():
    from typer.testing import CliRunner

    import vmaplab
    from vmaplab.cli import app

    assert CliRunner().invoke(app, ["--version"]).output == f"vmaplab {vmaplab.__version__}\n"
    short = CliRunner().invoke(app, ["diff", "-h"])
    assert short.exit_code == 0 and "biggest change first" in short.output
