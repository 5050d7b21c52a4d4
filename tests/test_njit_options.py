"""Every numba decorator in vmaplab takes its options from vmaplab.config (like stumpy's check_fastmath).

A hard-coded ``cache=``, ``fastmath=``, ``boundscheck=``... on one function, or a bare ``@njit``
(which would silently lose ``cache=True``), fails here with the file and line.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import vmaplab.config as config

ROOT = Path(__file__).resolve().parents[1]
NUMBA_DECORATORS = {"jit", "njit", "vectorize", "guvectorize", "cfunc", "stencil", "generated_jit"}
OPTION_SETS = {name for name in config.__all__ if name.startswith("NJIT_")}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def violations(source: str, filename: str) -> list[str]:
    """``file:line: problem`` for every numba decorator or call not written ``njit(**NJIT_...)``."""
    found = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in node.decorator_list:
                if _name(deco) in NUMBA_DECORATORS:
                    found.append(f"{filename}:{deco.lineno}: bare @{_name(deco)} (no options from vmaplab.config)")
        if isinstance(node, ast.Call) and _name(node.func) in NUMBA_DECORATORS:
            spread = [kw.value for kw in node.keywords if kw.arg is None]
            literal = [kw.arg for kw in node.keywords if kw.arg is not None]
            if literal:
                found.append(f"{filename}:{node.lineno}: hard-coded option(s) {literal}")
            if node.args:
                found.append(f"{filename}:{node.lineno}: positional arguments (a signature) to {_name(node.func)}")
            if len(spread) != 1 or _name(spread[0]) not in OPTION_SETS:
                found.append(f"{filename}:{node.lineno}: options must be exactly one of **{sorted(OPTION_SETS)}")
    return found


def test_every_numba_decorator_uses_the_config_options():
    found = []
    for path in sorted((ROOT / "vmaplab").rglob("*.py")):
        found += violations(path.read_text(), str(path.relative_to(ROOT)))
    assert not found, "\n".join(found)


def test_the_checker_catches_hard_coded_options():
    bad = (
        "from numba import njit\n"
        "@njit\n"
        "def a(x): return x\n"
        "@njit(cache=True, fastmath=True)\n"
        "def b(x): return x\n"
        "@njit(**OTHER)\n"
        "def c(x): return x\n"
        "@numba.njit('int64(int64)', **NJIT_OPTIONS)\n"
        "def d(x): return x\n"
        "@njit(**NJIT_OPTIONS)\n"
        "def e(x): return x\n"
    )
    found = violations(bad, "bad.py")
    assert [line.split(":")[1] for line in found] == ["2", "4", "4", "6", "8"]
    assert "hard-coded option(s) ['cache', 'fastmath']" in found[1]


def test_the_options_cache_and_stay_exact():
    for name in OPTION_SETS:
        options = getattr(config, name)
        assert options["cache"] is True, name
        assert options["fastmath"] is False, name
    assert config.NJIT_OPTIONS.get("_nrt", True) is True  # the read-out kernels allocate arrays


def test_kernels_are_compiled_with_the_config_options():
    from numba.core.registry import CPUDispatcher

    from vmaplab.sim import _kernels

    dispatchers = [v for v in vars(_kernels).values() if isinstance(v, CPUDispatcher)]
    assert len(dispatchers) > 20
    sets = [{k: v for k, v in getattr(config, name).items() if k != "cache"} for name in OPTION_SETS]
    for disp in dispatchers:
        options = {k: v for k, v in disp.targetoptions.items() if k != "nopython"}  # njit adds nopython
        assert options in sets, (disp.py_func.__name__, options)
        assert disp._cache.__class__.__name__ == "FunctionCache", disp.py_func.__name__


def test_a_cache_older_than_an_imported_constant_is_dropped(tmp_path):
    # numba's cache of a function that returns a constant imported from another module: after the constant
    # changes, numba alone runs the cached old value; drop_stale_cache at import makes it compile again
    (tmp_path / "dep.py").write_text("VALUE = 1\n")
    module = (
        "from numba import njit\n"
        "import dep\n"
        "from dep import VALUE\n"
        "from vmaplab.config import NJIT_OPTIONS, drop_stale_cache\n"
        "{drop}"
        "@njit(**NJIT_OPTIONS)\n"
        "def value():\n"
        "    return VALUE\n"
    )
    run = [sys.executable, "-c", "import jitted; print(jitted.value())"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}

    def value() -> str:
        return subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.strip()

    for drop, want in [("", "1"), ("drop_stale_cache(__file__, dep.__file__)\n", "2")]:
        (tmp_path / "dep.py").write_text("VALUE = 1\n")
        (tmp_path / "jitted.py").write_text(module.format(drop=drop))
        assert value() == "1" and list((tmp_path / "__pycache__").glob("jitted.*.nbc"))
        time.sleep(0.05)  # a later modification time than the cache's
        (tmp_path / "dep.py").write_text("VALUE = 2\n")
        assert value() == want
