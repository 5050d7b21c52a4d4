"""The conda route (environment.yml) and the pip route (pyproject.toml) list the same dependencies."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"]) + list(meta["optional-dependencies"]["test"])
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment() -> dict[str, str]:
    deps = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+.*?)\s*(#.*)?$", line)
        if m and not line.strip().startswith("- conda-forge"):
            req = m.group(1)
            deps[_name(req)] = req.replace(" ", "")
    deps.pop("python", None)
    deps.pop("pip", None)
    return deps


def test_same_dependencies_and_bounds():
    py, env = _pyproject(), _environment()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    for name in py:
        assert py[name] == env[name], f"{name}: pyproject says {py[name]!r}, environment.yml says {env[name]!r}"


def test_public_names_resolve():
    import vmaplab

    missing = [n for n in vmaplab.__all__ if not hasattr(vmaplab, n)]
    assert not missing, f"public names that do not import: {missing}"
