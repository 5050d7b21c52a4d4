"""Compilation options of every numba function in vmaplab, in one place.

Every jitted function is decorated ``@njit(**<one of the option sets below>)``;
``tests/test_njit_options.py`` fails the build on any hard-coded option (as stumpy's
``check_fastmath`` does), so changing an option here changes it everywhere. ``NJIT_OPTIONS`` is the
base; the other sets add one thing each and say why.

* ``cache=True``: compiled machine code is stored in ``__pycache__`` beside the module, so the JIT
  compile time is paid once per installation, not once per process.
* ``nogil=True``: jitted calls release the GIL, so sweeps may run engines in threads.
* ``error_model="numpy"``: integer division by zero is not checked (the kernels never divide by a
  value that can be zero), which keeps the hot loops free of exception branches.
* ``boundscheck=False`` and ``fastmath=False``: the engines are integer code that must be exact;
  out-of-range indices are prevented by the Python side, which grows the arrays before each call.
  Set the environment variable ``NUMBA_BOUNDSCHECK=1`` to turn bounds checking on globally while
  debugging (numba's own switch; it overrides this option).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "NJIT_OPTIONS", "NJIT_NO_NRT_OPTIONS", "NJIT_INLINE_OPTIONS", "NJIT_IR_INLINE_OPTIONS", "drop_stale_cache",
]  # fmt: skip

NJIT_OPTIONS: dict[str, object] = {
    "cache": True,
    "nogil": True,
    "error_model": "numpy",
    "boundscheck": False,
    "fastmath": False,
}

# The allocator's kernels allocate nothing, so they run without numba's reference-counted memory
# manager: with it, every call between jitted functions increments and decrements a reference count
# (an atomic operation) per array argument, which measured about half the time of a run.
NJIT_NO_NRT_OPTIONS: dict[str, object] = {**NJIT_OPTIONS, "_nrt": False}

# Small helpers on the hot path are always inlined by LLVM into their callers: a call between jitted
# functions passes every array as a struct copied on the stack, which costs more than the helper.
# Compile time: numba still compiles such a helper on its own (LLVM optimisation and machine code
# of it and everything inlined into it), then once more in every caller; a big helper with many
# call sites multiplies the cold compile time (bench/compile_profile.py shows where it goes). Cold
# paths (B+-tree splits and merges) therefore use NJIT_NO_NRT_OPTIONS: one compiled copy, called.
NJIT_INLINE_OPTIONS: dict[str, object] = {**NJIT_NO_NRT_OPTIONS, "forceinline": True}

# Inlining at numba's IR level (before typing): the helper is not compiled on its own, but its
# code is typed again at every call site, and numba's passes over the caller (SSA reconstruction,
# rewrites) grow faster than linearly with its size. For a helper with one or two call sites whose
# own compile would be the waste (the allocator's _alloc and _free); not for many small ones.
NJIT_IR_INLINE_OPTIONS: dict[str, object] = {**NJIT_OPTIONS, "inline": "always"}


def drop_stale_cache(module: str, *sources: str) -> None:
    """Remove the numba cache of the jitted ``module`` (its file path) that is older than any of ``sources``.

    numba keys a cached function on its own source file only, but a jitted module compiles in the
    constants and jitted functions of the modules it imports: after a change of one of those, the
    cache would run old code (an old constant, or arrays laid out the old way). Call it at import,
    before any of the module's functions runs, with the files of the modules it takes values from.
    """
    newest = max(Path(f).stat().st_mtime for f in (*sources, __file__))
    path = Path(module)
    for f in (path.parent / "__pycache__").glob(f"{path.stem}.*.nb[ic]"):
        try:
            if f.stat().st_mtime < newest:
                f.unlink()
        except FileNotFoundError:  # another process removed it first
            pass
