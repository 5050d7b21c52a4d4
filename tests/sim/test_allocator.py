"""The public Allocator: address conversion, argument checks and operation streams, on both engines."""

from __future__ import annotations

import numpy as np
import pytest

import vmaplab.sim
import vmaplab.sim.allocator
from vmaplab.errors import SimulationError
from vmaplab.sim import Allocator

L4, L5 = 0xFFFFC90000000000, 0xFFA0000000000000


def test_exported_from_vmaplab_sim():
    assert vmaplab.sim.__all__ == ["Allocator", "replay", "replay_bundle", "Replay"]
    assert vmaplab.sim.Allocator is vmaplab.sim.allocator.Allocator


def test_addresses_are_absolute(engine_name):
    a = Allocator("nodes", cpus=64, engine=engine_name)
    assert a.alloc(1) == L4
    assert a.alloc(3, cpu=63) == L4 + 2 * 4096
    assert a.alloc(1, align=2 << 20) == L4 + (2 << 20)
    assert a.engine == engine_name and a.config.nr_nodes == 64
    b = Allocator("global", cpus=4, engine=engine_name, paging_levels=5)
    assert b.alloc(1) == L5
    assert b.stats()["space_pages"] == 12800 << 28


def test_free_takes_the_address_and_failures_return_none(engine_name):
    a = Allocator("global", cpus=2, engine=engine_name, auto_drain=False)
    addr = a.alloc(10)
    assert a.alloc(1, align=1 << 63) is None  # align_shift_alloc_test's last step
    assert a.alloc(10**30) is None
    a.free(addr)
    assert a.stats()["lazy_pages"] == 11 and a.stats()["alloc_failures"] == 2
    with pytest.raises(SimulationError, match="no busy VA"):
        a.free(addr)
    a.drain()
    assert a.stats()["free_blocks"] == 1
    a.check_invariants()


def test_align_shift_on_the_public_api_fails_first_at_32_tib(engine_name):
    a = Allocator("nodes", cpus=64, engine=engine_name)
    shifts = [i for i in range(64) if a.alloc(1, align=1 << i) is None]
    assert shifts == list(range(45, 64))  # 2^45 B = 32 TiB plus a page is more than the window


def test_drain_shrink_stats_state(engine_name):
    a = Allocator("nodes", cpus=4, engine=engine_name)
    addrs = [a.alloc(1, cpu=1) for _ in range(4)]
    for addr in addrs:
        a.free(addr, cpu=2)
    a.drain()
    assert a.state()["pools"] == {(1, 1): [6, 4, 2, 0]}  # page offsets from VMALLOC_START
    assert a.shrink() == 4
    assert a.stats()["decayed"] == 4 and a.stats()["pooled_areas"] == 0


def test_run_returns_uint64_addresses(engine_name):
    a = Allocator("nodes", cpus=4, engine=engine_name, auto_drain=False)
    ops = [[0, 1, 4096, 1], [0, 1, 1 << 62, 0], [1, 0, 0, 3], [1, 1, 0, 0], [2, 0, 0, 0], [0, 1, 1, 1], [3, 0, 0, 0]]
    out = a.run(np.array(ops, dtype=np.int64))
    assert out.dtype == np.uint64
    assert a.run(np.array([[0, 1, 4096, 0]], dtype=np.int32)).tolist() == [L4 + 2 * 4096]
    assert out.tolist() == [L4, 0, 0, 0, 0, L4, 0]  # the pool hands the freed VA back to CPU 1's node
    assert a.run(np.zeros((0, 4), dtype=np.int64)).tolist() == []
    with pytest.raises(SimulationError):  # double free
        a.run(np.array([[0, 1, 4096, 0], [1, 0, 0, 0], [1, 0, 0, 0]]))


@pytest.mark.parametrize(
    "ops, error, message",
    [
        (np.zeros((3, 3), dtype=np.int64), ValueError, "shape"),
        (np.zeros(4, dtype=np.int64), ValueError, "shape"),
        (np.full((1, 4), 0.5), TypeError, "integers"),
        ([[4, 0, 0, 0]], ValueError, "row 0 .*op must be"),
        ([[2, 0, 0, 0], [0, 1, 4096, 4]], ValueError, r"row 1 \[0, 1, 4096, 4\]: cpu must be in \[0, 4\)"),
        ([[0, 0, 4096, 0]], ValueError, "at least 1 page"),
        ([[0, 1, 12288, 0]], ValueError, "power of two"),
        ([[0, 1, 0, 0]], ValueError, "power of two"),
        ([[0, 1, 4096, 0], [1, 1, 0, 0]], ValueError, "row 1 .*earlier alloc row"),
        ([[2, 0, 0, 0], [1, 0, 0, 0]], ValueError, "earlier alloc row"),
        ([[1, -1, 0, 0]], ValueError, "earlier alloc row"),
    ],
)
def test_run_checks_the_stream_first(engine_name, ops, error, message):
    a = Allocator("global", cpus=4, engine=engine_name)
    with pytest.raises(error, match=message):
        a.run(ops)
    assert a.stats()["allocs"] == 0  # nothing ran


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda a: a.alloc(0), ValueError, "pages must be at least 1"),
        (lambda a: a.alloc(1.5), TypeError, "pages must be an int"),
        (lambda a: a.alloc(True), TypeError, "pages must be an int, not bool"),
        (lambda a: a.alloc(1, align=3 * 4096), ValueError, "align must be a power of two"),
        (lambda a: a.alloc(1, align=0), ValueError, "align must be at least 1"),
        (lambda a: a.alloc(1, cpu=4), ValueError, r"cpu must be in \[0, 4\)"),
        (lambda a: a.alloc(1, cpu=-1), ValueError, "cpu must be in"),
        (lambda a: a.free(L4 + 1), ValueError, "not a page address"),
        (lambda a: a.free(L4 - 4096), ValueError, "not a page address"),
        (lambda a: a.free("0xffffc90000000000"), TypeError, "addr must be an int"),
    ],
)
def test_bad_arguments(engine_name, call, error, message):
    a = Allocator("nodes", cpus=4, engine=engine_name)
    with pytest.raises(error, match=message):
        call(a)


def test_numpy_integers_are_accepted(engine_name):
    a = Allocator("nodes", cpus=4, engine=engine_name)
    addr = a.alloc(np.int64(2), align=np.uint64(8192), cpu=np.int32(3))
    a.free(np.uint64(addr), cpu=np.int8(0))
    assert a.stats()["frees"] == 1


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"design": "linux"}, ValueError, "design must be"),
        ({"engine": "cuda"}, ValueError, "engine must be"),
        ({"cpus": 0}, ValueError, "cpus must be"),
        ({"pool_cap": "big"}, ValueError, "pool_cap"),
        ({"no_such_knob": 1}, TypeError, "no_such_knob"),
        ({"design": "global", "nr_nodes": 3}, ValueError, "no vmap nodes"),  # was taken silently as 1
    ],
)
def test_bad_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        Allocator(**{"engine": "reference", **kwargs})


def test_repr():
    a = Allocator("nodes", cpus=8, engine="reference")
    assert repr(a) == "Allocator(design='nodes', cpus=8, engine='reference', nr_nodes=8)"
