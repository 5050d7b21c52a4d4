"""Jitted kernels of the numba allocator engine: every operation of docs/allocator-model.md on arrays.

All positions are int64 page offsets from VMALLOC_START; alignments are in pages (a power of two,
applied to the absolute page ``P[P_BASE] + offset``); sizes are VA pages, guard page included.
The Python side (:mod:`vmaplab.sim.numba_engine`) owns the arrays, grows them when a kernel returns
a ``NEED_*`` status, and turns error statuses into exceptions. Every function takes the state
arrays explicitly (jitclasses cannot be cached):

``C``   int64[N_COUNTERS]          bookkeeping and statistics, indexed by the names below
``P``   int64[N_PARAMS]            the resolved configuration, indexed by the ``P_*`` names
``decay`` float                    fraction of a pool decayed per drain
``S``   int64[slots, 8]            VA slots: start, size, state, tag node, align, list link
``T``   int64[tree_rows(slots), 104] free space: nodes of a B+-tree of blocks keyed by start
                                   (fanout 32); a leaf entry is a block (start, length), an inner entry a
                                   child with its smallest start and its largest block length (the
                                   kernel's ``subtree_max_size``), so the lowest block of length
                                   >= L is one descent that reads <= 32 maxima per level. Row 0 is
                                   scratch: the path of the last descent
``PL``  int64[nodes * 256, 3]      pools: head slot, tail slot, length (linked over S)
``LZ``  int64[nodes, 2]            lazy lists: head slot, length (singly linked over S)
``W``   int64[7, slots + 2048]     a purge's scratch: 0-1 a node's lazy VAs (start, slot), 2-3 the
                                   radix sort's second buffer, 4 its digit counts, 5-6 the ranges
                                   bound for free space (start, end)
``H``   int64[2^k, 2]              busy VAs by start (open addressing, linear probing); run() finds
                                   VAs by row and leaves it stale (C[HASH_VALID] = 0) until the
                                   next single free rebuilds it
``TOP`` int64[512 GiB regions]     page tables, three levels like the hardware's: the MID row of a
``MID`` int64[rows, 512]           512 GiB region, the LOW row (= PMD page) of a 1 GiB region, and
``LOW`` uint8[rows, 512]           one byte per 2 MiB region (1 = its PTE page exists)

Free space is a B+-tree rather than a balanced binary tree: with 100,000 live VAs the blocks no
longer fit the fast caches, and a descent costs one dependent cache miss per level; 32 entries per
node (four cache lines of starts or of lengths, scanned linearly) make 4 levels where a binary
tree has ~20 (bench/allocator.py at 100,000 live VAs: fanout 32 ran ~8 % faster than 16 and than
64). Inner entries keep exact per-child minima and maxima, so lowest fit and by-address
search are single descents and the result is exactly the lowest fitting block.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from vmaplab.config import (
    NJIT_INLINE_OPTIONS,
    NJIT_IR_INLINE_OPTIONS,
    NJIT_NO_NRT_OPTIONS,
    NJIT_OPTIONS,
    drop_stale_cache,
)
from vmaplab.sim import params
from vmaplab.sim.params import POOL_CLASSES

drop_stale_cache(__file__, params.__file__)  # the kernels compile in its POOL_CLASSES

NIL = -1

# Slot states.
FREE_SLOT = 0
BUSY = 1
LAZY = 2
POOLED = 3

# Columns of S. Columns 6-7 are padding: a row is one 64-byte cache line.
S_START = 0
S_SIZE = 1
S_STATE = 2
S_NODE = 3  # tag node (the allocating CPU's node), NIL when untagged
S_ALIGN = 4  # alignment of the request that produced the VA, pages
S_NEXT = 5  # pool / lazy / free-slot list (singly linked: pools need head pops, head pushes and
#            tail appends only, which a tail index gives)
SLOT_COLUMNS = 8

# Columns of T: a node is one row of 13 cache lines, each array of entries starting on a new line.
# Every node but the root holds MIN_FILL..FANOUT entries (the root: a leaf 0..FANOUT, an inner node
# 2..FANOUT), so a tree of n blocks has at most n / (MIN_FILL - 1) + height nodes (tree_rows).
FANOUT = 32
MIN_FILL = FANOUT // 2
B_KEY = 0  # FANOUT starts: of the blocks (leaf), of each child's first block (inner node)
B_VAL = B_KEY + FANOUT  # FANOUT lengths: of the blocks (leaf), of each child's longest block (inner)
B_CHILD = B_VAL + FANOUT  # FANOUT child nodes (inner node)
B_COUNT = B_CHILD + FANOUT  # entries in use
B_LEAF = B_COUNT + 1  # 1 leaf, 0 inner node
B_NEXT = B_COUNT + 2  # next leaf in address order (NIL for the last); also the free-node list
B_PREV = B_COUNT + 3  # previous leaf in address order (NIL for the first)
TREE_COLUMNS = B_COUNT + 8
# Row 0 of T: the path of the last descent, root first (the node and the entry taken at each level).
PATH_NODE = 0
PATH_INDEX = 16
MAX_HEIGHT = 16  # the path's room; a tree of 16 levels would hold more than 16^14 blocks

# Columns of PL and LZ.
PL_HEAD = 0
PL_TAIL = 1
PL_LEN = 2
LZ_HEAD = 0
LZ_COUNT = 1

# Indices of P.
P_NODES_DESIGN = 0  # 1 for "nodes", 0 for "global"
P_NR_NODES = 1
P_LAZY_MAX = 2
P_ZONE = 3
P_BASE = 4  # VMALLOC_START >> 12
P_SPACE = 5  # pages in the window
P_POOL_CAP = 6  # -1 none, -2 "lazy_max", else VAs per pool
P_KEEP_SMALL = 7  # 1: small_pool_decay == "keep"
P_AUTO_DRAIN = 8
P_TOP_BASE = 9  # P_BASE >> 27: first 512 GiB region of the window
P_CPUS = 10
N_PARAMS = 11

# Indices of C: bookkeeping first, then one counter per statistic.
ROOT = 0
TREE_HW = 1
TREE_FREE = 2
SLOT_HW = 3
SLOT_FREE = 4
TREE_HEIGHT = 5  # levels of the free-space tree (1: the root is a leaf)
MID_ROWS = 6
BUSY_PAGES = 7
LAZY_PAGES = 8
POOLED_PAGES = 9
FREE_PAGES = 10
BUSY_AREAS = 11
LAZY_AREAS = 12
POOLED_AREAS = 13
FREE_BLOCKS = 14
HIGH_WATER = 15  # pages; stats() reports bytes
PTE_PAGES = 16
PMD_PAGES = 17  # also the number of LOW rows in use
POOL_HITS = 18
POOL_MISSES = 19
POOL_ROTATIONS = 20
PURGES = 21
DRAINS = 22
TLB_FLUSHES = 23
PURGE_HELPERS = 24
DECAYED = 25
ALLOCS = 26
FREES = 27
ALLOC_FAILURES = 28
FIT_FULL = 29
FIT_LEFT = 30
FIT_RIGHT = 31
FIT_MIDDLE = 32  # FIT_FULL..FIT_MIDDLE in _carve's order
DRAIN_PENDING = 33
HASH_VALID = 34  # 1 while H holds exactly the busy VAs; run() leaves it stale, free_one rebuilds it
N_COUNTERS = 35

# Kernel statuses. NEED_*: nothing was done, grow that array and call again.
OK = 0
NEED_SLOTS = 1
NEED_HASH = 2
NEED_MID = 3
NEED_LOW = 4
ERR_NOT_BUSY = 5  # free of an offset where no busy VA starts
ERR_DOUBLE_FREE = 6  # run(): a second free of the same row
ERR_BAD_REF = 7  # run(): a free naming a row that is not an earlier alloc row
ERR_BAD_ROW = 8  # run(): pages < 1, alignment not a power of two, cpu out of range
ERR_BAD_OP = 9  # run(): an operation code other than 0..3
ERR_NOT_FREE = 10  # reserve of a range that is not inside one free block of the window

# row_slot markers of run() (values >= 0 are slots of live VAs; NIL: the row placed nothing).
ROW_FREED = -2
ROW_NOT_ALLOC = -3

PTE_SHIFT = 9  # pages per PTE page: 2^9 (2 MiB)
PMD_SHIFT = 18  # pages per PMD page: 2^18 (1 GiB)
TOP_SHIFT = 27  # pages per 512 GiB region
MAX_ALIGN_PAGES = 1 << 51  # 2^63 bytes
MAX_PAGES = 1 << 60  # larger requests are treated as this size (they can never fit)
RADIX_BITS = 11  # digits of the drain's radix sort
RADIX = 1 << RADIX_BITS
PREFETCH_ROWS = 16  # run(): how far ahead the rows of upcoming frees are prefetched
INT64_MIN = -(1 << 63)


def _prefetch_py(arr, row):
    """Pure-Python stand-in for :func:`_prefetch` when numba's JIT is disabled (coverage runs)."""


@intrinsic
def _prefetch_llvm(typingctx, arr, row):
    """Ask the CPU to fetch the cache line of ``arr[row, 0]`` (LLVM's prefetch; no fault, no effect
    on results). Hides the memory latency of rows the loop will need a few iterations later."""
    if not isinstance(arr, types.Array) or arr.ndim != 2 or not isinstance(row, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], zero], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])  # read, keep, data
        return context.get_dummy_value()

    return types.void(arr, row), codegen


_prefetch = _prefetch_py if numba.config.DISABLE_JIT else _prefetch_llvm


def _move_row_py(arr, dst, j, src, i, n):
    """Pure-Python stand-in for :func:`_move_row` when numba's JIT is disabled (coverage runs)."""
    arr[dst, j : j + n] = arr[src, i : i + n].copy()


@intrinsic
def _move_row_llvm(typingctx, arr, dst, j, src, i, n):
    """Copy ``arr[src, i:i + n]`` to ``arr[dst, j:j + n]`` (``n`` >= 1 items; the two may overlap)
    with LLVM's memmove. A loop would do the same, but LLVM vectorises every copy loop with runtime
    overlap checks into ~1000 lines of IR; the B+-tree's node splits and merges have a dozen of them,
    which made the free-space code slow to compile."""
    if not isinstance(arr, types.Array) or arr.ndim != 2 or not isinstance(arr.dtype, types.Integer):
        return None
    if not all(isinstance(t, types.Integer) for t in (dst, j, src, i, n)):
        return None

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        i64 = ir.IntType(64)
        idx = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], signature.args[1:])]
        to = cgutils.get_item_pointer(context, builder, aryty, ary, [idx[0], idx[1]], wraparound=False)
        frm = cgutils.get_item_pointer(context, builder, aryty, ary, [idx[2], idx[3]], wraparound=False)
        nbytes = builder.mul(idx[4], i64(context.get_abi_sizeof(context.get_data_type(aryty.dtype))))
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i8p, i64, ir.IntType(1)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.memmove.p0.p0.i64")
        builder.call(fn, [builder.bitcast(to, i8p), builder.bitcast(frm, i8p), nbytes, ir.IntType(1)(0)])
        return context.get_dummy_value()

    return types.void(arr, dst, j, src, i, n), codegen


_move_row = _move_row_py if numba.config.DISABLE_JIT else _move_row_llvm


@njit(**NJIT_INLINE_OPTIONS)
def _mix32(x):
    """A 32-bit mix of a non-negative int64 (hash slots); never overflows."""
    h = ((x & 0x7FFFFFFF) ^ (x >> 31)) & 0x7FFFFFFF
    h = (h * 0x45D9F3B) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x45D9F3B) & 0xFFFFFFFF
    h ^= h >> 16
    return h


@njit(**NJIT_INLINE_OPTIONS)
def align_pages(align_bytes):
    """Alignment in pages of a request aligned to ``align_bytes`` (2^63 given as INT64_MIN); 0 if invalid."""
    if align_bytes == INT64_MIN:
        return MAX_ALIGN_PAGES
    if align_bytes <= 0 or (align_bytes & (align_bytes - 1)) != 0:
        return 0
    if align_bytes <= 4096:
        return 1
    return align_bytes >> 12


# ---------------------------------------------------------------------------------------------
# Busy VAs by start: open addressing with linear probing and backward-shift deletion.


@njit(**NJIT_INLINE_OPTIONS)
def _h_insert(H, key, slot):
    mask = H.shape[0] - 1
    i = _mix32(key) & mask
    while H[i, 0] != NIL:
        i = (i + 1) & mask
    H[i, 0] = key
    H[i, 1] = slot


@njit(**NJIT_INLINE_OPTIONS)
def _h_find(H, key):
    mask = H.shape[0] - 1
    i = _mix32(key) & mask
    while True:
        k = H[i, 0]
        if k == key:
            return i
        if k == NIL:
            return NIL
        i = (i + 1) & mask


@njit(**NJIT_INLINE_OPTIONS)
def _h_delete_at(H, i):
    mask = H.shape[0] - 1
    j = i
    while True:
        j = (j + 1) & mask
        k = H[j, 0]
        if k == NIL:
            break
        home = _mix32(k) & mask
        if i <= j:
            stays = i < home <= j
        else:
            stays = home > i or home <= j
        if not stays:
            H[i, 0] = k
            H[i, 1] = H[j, 1]
            i = j
    H[i, 0] = NIL


@njit(**NJIT_OPTIONS)
def rehash(H_old, H_new):
    """Insert every entry of ``H_old`` into the empty table ``H_new`` (a larger power of two)."""
    for i in range(H_old.shape[0]):
        if H_old[i, 0] != NIL:
            _h_insert(H_new, H_old[i, 0], H_old[i, 1])


# ---------------------------------------------------------------------------------------------
# Free space: a B+-tree of disjoint, coalesced blocks keyed by start, each inner entry holding its
# child's smallest start and largest block length.


@njit(**NJIT_INLINE_OPTIONS)
def _b_max(T, x):
    """Largest value (block length or child maximum) among the entries of node ``x`` (0 if none)."""
    m = 0
    for j in range(T[x, B_COUNT]):
        m = max(m, T[x, B_VAL + j])
    return m


@njit(**NJIT_INLINE_OPTIONS)
def _b_child_for(T, x, key):
    """Index of the last entry of inner node ``x`` whose key is <= ``key`` (0 if none)."""
    i = 0
    for j in range(1, T[x, B_COUNT]):
        i += T[x, B_KEY + j] <= key
    return i


@njit(**NJIT_INLINE_OPTIONS)
def _b_rank(T, x, key):
    """Number of entries of node ``x`` whose key is < ``key``."""
    p = 0
    for j in range(T[x, B_COUNT]):
        p += T[x, B_KEY + j] < key
    return p


@njit(**NJIT_INLINE_OPTIONS)
def _b_descend(C, T, key):
    """The leaf where a block starting at ``key`` belongs (the one holding the last start <= key, the
    leftmost leaf if none); the root-to-leaf path is left in the scratch row ``T[0]``."""
    x = C[ROOT]
    for level in range(C[TREE_HEIGHT] - 1):
        i = _b_child_for(T, x, key)
        T[0, PATH_NODE + level] = x
        T[0, PATH_INDEX + level] = i
        x = T[x, B_CHILD + i]
    T[0, PATH_NODE + C[TREE_HEIGHT] - 1] = x
    return x


@njit(**NJIT_INLINE_OPTIONS)
def _b_lowest_fit(C, T, length):
    """(leaf, index) of the lowest-address block of at least ``length`` pages, or (NIL, 0); the path
    is left in ``T[0]`` (one descent, reading the first child maximum >= length at each level)."""
    x = C[ROOT]
    if _b_max(T, x) < length:
        return NIL, 0
    for level in range(C[TREE_HEIGHT] - 1):
        i = 0
        while T[x, B_VAL + i] < length:
            i += 1
        T[0, PATH_NODE + level] = x
        T[0, PATH_INDEX + level] = i
        x = T[x, B_CHILD + i]
    T[0, PATH_NODE + C[TREE_HEIGHT] - 1] = x
    i = 0
    while T[x, B_VAL + i] < length:
        i += 1
    return x, i


@njit(**NJIT_INLINE_OPTIONS)
def _b_fix_up(T, level):
    """The node at ``level`` of the path changed: copy its smallest start and largest length into the
    ancestors' entries, stopping where nothing changes."""
    for lv in range(level, 0, -1):
        x = T[0, PATH_NODE + lv]
        parent = T[0, PATH_NODE + lv - 1]
        i = T[0, PATH_INDEX + lv - 1]
        m = _b_max(T, x)
        k = T[x, B_KEY]
        if T[parent, B_VAL + i] == m and T[parent, B_KEY + i] == k:
            return
        T[parent, B_VAL + i] = m
        T[parent, B_KEY + i] = k


@njit(**NJIT_INLINE_OPTIONS)
def _b_node_new(C, T, leaf):
    """A node from the free-node list (or the high-water mark), empty, unlinked."""
    x = C[TREE_FREE]
    if x != NIL:
        C[TREE_FREE] = T[x, B_NEXT]
    else:
        x = C[TREE_HW]
        C[TREE_HW] += 1
    T[x, B_COUNT] = 0
    T[x, B_LEAF] = leaf
    T[x, B_NEXT] = NIL
    T[x, B_PREV] = NIL
    return x


@njit(**NJIT_INLINE_OPTIONS)
def _b_node_release(C, T, x):
    T[x, B_COUNT] = 0
    T[x, B_NEXT] = C[TREE_FREE]
    C[TREE_FREE] = x


@njit(**NJIT_INLINE_OPTIONS)
def _b_move(T, src, i, dst, j, n):
    """Copy entries ``i..i+n-1`` of node ``src`` to ``j..j+n-1`` of ``dst`` (overlap-safe; nothing if
    ``n`` < 1): keys and values, and children of an inner node.

    For the cold paths (splits, merges): a memmove is a few lines of IR where a copy loop is ~1000,
    but a library call per move made the contention engine ~8 % slower when the leaf shift of
    every insertion and deletion used it, so those two shifts are plain loops."""
    if n > 0:
        _move_row(T, dst, B_KEY + j, src, B_KEY + i, n)
        _move_row(T, dst, B_VAL + j, src, B_VAL + i, n)
        if T[src, B_LEAF] == 0:
            _move_row(T, dst, B_CHILD + j, src, B_CHILD + i, n)


@njit(**NJIT_NO_NRT_OPTIONS)
def _b_split_child(C, T, x, i):
    """Split the full child ``i`` of inner node ``x`` (which has room) into two halves."""
    c = T[x, B_CHILD + i]
    n = _b_node_new(C, T, T[c, B_LEAF])
    half = FANOUT // 2
    _b_move(T, c, half, n, 0, FANOUT - half)
    T[c, B_COUNT] = half
    T[n, B_COUNT] = FANOUT - half
    if T[c, B_LEAF] == 1:
        nxt = T[c, B_NEXT]
        T[n, B_NEXT] = nxt
        T[n, B_PREV] = c
        if nxt != NIL:
            T[nxt, B_PREV] = n
        T[c, B_NEXT] = n
    cnt = T[x, B_COUNT]
    _b_move(T, x, i + 1, x, i + 2, cnt - i - 1)
    T[x, B_KEY + i + 1] = T[n, B_KEY]
    T[x, B_VAL + i + 1] = _b_max(T, n)
    T[x, B_CHILD + i + 1] = n
    T[x, B_VAL + i] = _b_max(T, c)
    T[x, B_COUNT] = cnt + 1


@njit(**NJIT_NO_NRT_OPTIONS)
def _b_make_room(C, T, key):
    """The leaf of ``key`` (the last node of the path in ``T[0]``) is full: bring the entries on the
    path up to date, split every full node on the way to that leaf, root first (the tree grows at the
    root); returns (leaf, index) where a block starting at ``key`` goes, the new path in ``T[0]``.

    Cold (one call per FANOUT / 2 inserts at most): a call to one compiled copy, not force-inlined
    into every insertion site."""
    _b_fix_up(T, C[TREE_HEIGHT] - 1)
    x = C[ROOT]
    if T[x, B_COUNT] == FANOUT:
        r = _b_node_new(C, T, 0)
        T[r, B_KEY] = T[x, B_KEY]
        T[r, B_VAL] = _b_max(T, x)
        T[r, B_CHILD] = x
        T[r, B_COUNT] = 1
        C[ROOT] = r
        C[TREE_HEIGHT] += 1
        _b_split_child(C, T, r, 0)
        x = r
    while T[x, B_LEAF] == 0:
        i = _b_child_for(T, x, key)
        if T[T[x, B_CHILD + i], B_COUNT] == FANOUT:
            _b_split_child(C, T, x, i)
            if key >= T[x, B_KEY + i + 1]:
                i += 1
        x = T[x, B_CHILD + i]
    leaf = _b_descend(C, T, key)
    return leaf, _b_rank(T, leaf, key)


@njit(**NJIT_INLINE_OPTIONS)
def _b_insert_at(C, T, leaf, p, start, length):
    """Insert block (start, length) as entry ``p`` of ``leaf``, the last node of the path in ``T[0]``."""
    if T[leaf, B_COUNT] == FANOUT:
        leaf, p = _b_make_room(C, T, start)
    cnt = T[leaf, B_COUNT]
    for k in range(cnt - 1, p - 1, -1):  # a loop, not _b_move's memmove: the hot path (see _b_move)
        T[leaf, B_KEY + k + 1] = T[leaf, B_KEY + k]
        T[leaf, B_VAL + k + 1] = T[leaf, B_VAL + k]
    T[leaf, B_KEY + p] = start
    T[leaf, B_VAL + p] = length
    T[leaf, B_COUNT] = cnt + 1
    C[FREE_BLOCKS] += 1
    _b_fix_up(T, C[TREE_HEIGHT] - 1)


@njit(**NJIT_NO_NRT_OPTIONS)
def _b_rebalance(C, T, level):
    """Refill the nodes of the path from ``level`` up that hold fewer than MIN_FILL entries: merge
    with a sibling when both fit one node, else even out the two; a root with one child goes.

    Cold (called only when a deletion leaves a node under MIN_FILL): a call to one compiled copy, not
    force-inlined into every deletion site."""
    while level > 0:
        x = T[0, PATH_NODE + level]
        if T[x, B_COUNT] >= MIN_FILL:
            return
        parent = T[0, PATH_NODE + level - 1]
        i = T[0, PATH_INDEX + level - 1]
        ia = i - 1 if i > 0 else i
        a = T[parent, B_CHILD + ia]
        b = T[parent, B_CHILD + ia + 1]
        na = T[a, B_COUNT]
        nb = T[b, B_COUNT]
        if na + nb <= FANOUT:
            _b_move(T, b, 0, a, na, nb)
            T[a, B_COUNT] = na + nb
            if T[a, B_LEAF] == 1:
                nxt = T[b, B_NEXT]
                T[a, B_NEXT] = nxt
                if nxt != NIL:
                    T[nxt, B_PREV] = a
            _b_node_release(C, T, b)
            cnt = T[parent, B_COUNT]
            _b_move(T, parent, ia + 2, parent, ia + 1, cnt - ia - 2)
            T[parent, B_COUNT] = cnt - 1
            T[parent, B_VAL + ia] = _b_max(T, a)
            level -= 1
            continue
        half = (na + nb) // 2
        if na < half:  # the first entries of b go to the end of a
            k = half - na
            _b_move(T, b, 0, a, na, k)
            _b_move(T, b, k, b, 0, nb - k)
        else:  # the last entries of a go to the front of b
            k = na - half
            _b_move(T, b, 0, b, k, nb)
            _b_move(T, a, half, b, 0, k)
        T[a, B_COUNT] = half
        T[b, B_COUNT] = na + nb - half
        T[parent, B_KEY + ia + 1] = T[b, B_KEY]
        T[parent, B_VAL + ia] = _b_max(T, a)
        T[parent, B_VAL + ia + 1] = _b_max(T, b)
        return
    root = C[ROOT]
    if T[root, B_LEAF] == 0 and T[root, B_COUNT] == 1:
        C[ROOT] = T[root, B_CHILD]
        C[TREE_HEIGHT] -= 1
        _b_node_release(C, T, root)


@njit(**NJIT_INLINE_OPTIONS)
def _b_delete_at(C, T, leaf, p):
    """Remove entry ``p`` of ``leaf``, the last node of the path in ``T[0]``."""
    cnt = T[leaf, B_COUNT]
    for k in range(p, cnt - 1):  # a loop, not _b_move's memmove: the hot path (see _b_move)
        T[leaf, B_KEY + k] = T[leaf, B_KEY + k + 1]
        T[leaf, B_VAL + k] = T[leaf, B_VAL + k + 1]
    T[leaf, B_COUNT] = cnt - 1
    C[FREE_BLOCKS] -= 1
    _b_fix_up(T, C[TREE_HEIGHT] - 1)
    if cnt - 1 < MIN_FILL and C[TREE_HEIGHT] > 1:  # else _b_rebalance would return at once
        _b_rebalance(C, T, C[TREE_HEIGHT] - 1)


@njit(**NJIT_INLINE_OPTIONS)
def _b_block_at(C, T, off):
    """(leaf, index) of the block with the largest start <= ``off`` (the one that may contain page
    ``off``), or (NIL, 0); the path is left in ``T[0]``."""
    leaf = _b_descend(C, T, off)
    i = _b_rank(T, leaf, off + 1) - 1
    if i < 0:
        return NIL, 0
    return leaf, i


@njit(**NJIT_NO_NRT_OPTIONS)
def free_range(C, T, start, end):
    """Return pages [start, end) to free space, coalescing with a free neighbour on either side.

    One descent finds the leaf where ``start`` belongs; the block before it is in that leaf (the
    descent only ends left of every entry in the leftmost leaf), the one after it may be the first
    of the next leaf, which a second descent then reaches. A call, not force-inlined: the purges
    and the contention engine call it from several sites, and each inlined copy was compiled again.
    """
    leaf = _b_descend(C, T, start)
    cnt = T[leaf, B_COUNT]
    p = _b_rank(T, leaf, start)
    join_left = p > 0 and T[leaf, B_KEY + p - 1] + T[leaf, B_VAL + p - 1] == start
    succ_leaf = leaf
    q = p
    if p == cnt:
        succ_leaf = T[leaf, B_NEXT]
        q = 0
    join_right = succ_leaf != NIL and T[succ_leaf, B_KEY + q] == end
    if join_right:
        succ_end = end + T[succ_leaf, B_VAL + q]
        if join_left:
            T[leaf, B_VAL + p - 1] = succ_end - T[leaf, B_KEY + p - 1]
            if succ_leaf != leaf:
                _b_fix_up(T, C[TREE_HEIGHT] - 1)
                succ_leaf = _b_descend(C, T, end)
            _b_delete_at(C, T, succ_leaf, q)
        else:
            if succ_leaf != leaf:
                succ_leaf = _b_descend(C, T, end)
            T[succ_leaf, B_KEY + q] = start
            T[succ_leaf, B_VAL + q] = succ_end - start
            _b_fix_up(T, C[TREE_HEIGHT] - 1)
    elif join_left:
        T[leaf, B_VAL + p - 1] += end - start
        _b_fix_up(T, C[TREE_HEIGHT] - 1)
    else:
        _b_insert_at(C, T, leaf, p, start, end - start)
    C[FREE_PAGES] += end - start


@njit(**NJIT_INLINE_OPTIONS)
def _place(C, P, T, size, align):
    """Carve a VA of ``size`` pages aligned to ``align`` pages from the lowest fitting block.

    Returns the offset, or NIL when no block is long enough or the VA would end above the last
    allocatable page (``P[P_SPACE] - 1``).
    """
    if size >= P[P_SPACE]:
        return NIL
    length = size + align if align > 1 else size
    leaf, i = _b_lowest_fit(C, T, length)
    if leaf == NIL:
        return NIL
    bs = T[leaf, B_KEY + i]
    base = P[P_BASE]
    off = ((base + bs + align - 1) & -align) - base
    if off + size > P[P_SPACE] - 1:
        return NIL
    C[FIT_FULL + _carve(C, T, leaf, i, off, size)] += 1
    return off


@njit(**NJIT_INLINE_OPTIONS)
def _carve(C, T, leaf, i, off, size):
    """Take pages [off, off + size) out of block ``i`` of ``leaf`` (the last node of the path in
    ``T[0]``; ``va_clip``); returns the fit class: 0 full, 1 left edge, 2 right edge, 3 no edge
    (the block splits), in the order of FIT_*."""
    bs = T[leaf, B_KEY + i]
    be = bs + T[leaf, B_VAL + i]
    end = off + size
    C[FREE_PAGES] -= size
    if end > C[HIGH_WATER]:
        C[HIGH_WATER] = end
    if off == bs:
        if end == be:
            _b_delete_at(C, T, leaf, i)
            return 0
        T[leaf, B_KEY + i] = end
        T[leaf, B_VAL + i] = be - end
        _b_fix_up(T, C[TREE_HEIGHT] - 1)
        return 1
    T[leaf, B_VAL + i] = off - bs
    if end == be:
        _b_fix_up(T, C[TREE_HEIGHT] - 1)
        return 2
    _b_insert_at(C, T, leaf, i + 1, end, be - end)
    return 3


# ---------------------------------------------------------------------------------------------
# Page tables: mark the PTE page of every 2 MiB region and the PMD page of every 1 GiB region.


@njit(**NJIT_INLINE_OPTIONS)
def _map_pages(C, P, TOP, MID, LOW, off, npages):
    first = P[P_BASE] + off
    last = first + npages - 1
    for r in range(first >> PTE_SHIFT, (last >> PTE_SHIFT) + 1):
        g = r >> (PMD_SHIFT - PTE_SHIFT)
        u = (g >> (TOP_SHIFT - PMD_SHIFT)) - P[P_TOP_BASE]
        row = TOP[u]
        if row == NIL:
            row = C[MID_ROWS]
            C[MID_ROWS] += 1
            TOP[u] = row
        gi = g & 511
        low = MID[row, gi]
        if low == NIL:
            low = C[PMD_PAGES]
            C[PMD_PAGES] += 1
            MID[row, gi] = low
        ri = r & 511
        if LOW[low, ri] == 0:
            LOW[low, ri] = 1
            C[PTE_PAGES] += 1


# ---------------------------------------------------------------------------------------------
# Slots and lists.


@njit(**NJIT_INLINE_OPTIONS)
def _slot_new(C, S):
    s = C[SLOT_FREE]
    if s != NIL:
        C[SLOT_FREE] = S[s, S_NEXT]
    else:
        s = C[SLOT_HW]
        C[SLOT_HW] += 1
    return s


@njit(**NJIT_INLINE_OPTIONS)
def _slot_release(C, S, s):
    S[s, S_STATE] = FREE_SLOT
    S[s, S_NEXT] = C[SLOT_FREE]
    C[SLOT_FREE] = s


@njit(**NJIT_INLINE_OPTIONS)
def _slot_to_free_space(C, T, S, s):
    """Give the VA of slot ``s`` back to free space and recycle the slot."""
    free_range(C, T, S[s, S_START], S[s, S_START] + S[s, S_SIZE])
    _slot_release(C, S, s)


@njit(**NJIT_INLINE_OPTIONS)
def _pool_pop_head(C, S, PL, pi):
    s = PL[pi, PL_HEAD]
    nxt = S[s, S_NEXT]
    PL[pi, PL_HEAD] = nxt
    if nxt == NIL:
        PL[pi, PL_TAIL] = NIL
    PL[pi, PL_LEN] -= 1
    C[POOLED_PAGES] -= S[s, S_SIZE]
    C[POOLED_AREAS] -= 1
    return s


@njit(**NJIT_INLINE_OPTIONS)
def _pool_push_head(C, S, PL, pi, s):
    h = PL[pi, PL_HEAD]
    S[s, S_STATE] = POOLED
    S[s, S_NEXT] = h
    if h == NIL:
        PL[pi, PL_TAIL] = s
    PL[pi, PL_HEAD] = s
    PL[pi, PL_LEN] += 1
    C[POOLED_PAGES] += S[s, S_SIZE]
    C[POOLED_AREAS] += 1


@njit(**NJIT_INLINE_OPTIONS)
def _pool_rotate(S, PL, pi):
    """Move the head of pool ``pi`` (at least two VAs) to its tail."""
    h = PL[pi, PL_HEAD]
    PL[pi, PL_HEAD] = S[h, S_NEXT]
    S[PL[pi, PL_TAIL], S_NEXT] = h
    S[h, S_NEXT] = NIL
    PL[pi, PL_TAIL] = h


@njit(**NJIT_INLINE_OPTIONS)
def _pool_accepts(P, length):
    """Whether a pool of ``length`` VAs takes one more under the ``pool_cap`` knob."""
    cap = P[P_POOL_CAP]
    if cap == -1:
        return True
    if cap == -2:
        return length <= P[P_LAZY_MAX]
    return length < cap


# ---------------------------------------------------------------------------------------------
# Decay, purge, drain, shrink.


@njit(**NJIT_INLINE_OPTIONS)
def _decay_count(P, decay, length, full):
    """How many VAs ``decay_va_pool_node`` takes from the head of a pool of ``length`` VAs."""
    if full or length == 0:
        return length
    n = np.int64(length * decay)
    if n == 0 and P[P_KEEP_SMALL] == 0:
        return length  # 6.9-6.15: the counter wraps and the whole pool drains
    return n


@njit(**NJIT_NO_NRT_OPTIONS)
def _decay_node(C, P, decay, S, T, PL, node, full):
    """``decay_va_pool_node``: return VAs from the head of each pool of ``node`` to free space one by
    one (the contention engine's decay step; the purge here batches them, see :func:`_decay_into`)."""
    released = 0
    for k in range(POOL_CLASSES):
        pi = node * POOL_CLASSES + k
        n = _decay_count(P, decay, PL[pi, PL_LEN], full)
        for _ in range(n):
            s = _pool_pop_head(C, S, PL, pi)
            h = PL[pi, PL_HEAD]
            if h != NIL:  # the next VA's row, fetched while this one goes back to free space
                _prefetch(S, h)
            _slot_to_free_space(C, T, S, s)
        released += n
    C[DECAYED] += released
    return released


@njit(**NJIT_NO_NRT_OPTIONS)
def _decay_into(C, P, decay, S, PL, W, node, full, n):
    """:func:`_decay_node` that puts the decayed ranges in the batch ``W[5:7, n:]``; returns the new n."""
    released = 0
    for k in range(POOL_CLASSES):
        pi = node * POOL_CLASSES + k
        m = _decay_count(P, decay, PL[pi, PL_LEN], full)
        for _ in range(m):
            s = _pool_pop_head(C, S, PL, pi)
            W[5, n] = S[s, S_START]
            W[6, n] = S[s, S_START] + S[s, S_SIZE]
            n += 1
            _slot_release(C, S, s)
        released += m
    C[DECAYED] += released
    return n


@njit(**NJIT_NO_NRT_OPTIONS)
def sort_pairs(K0, V0, K1, V1, CNT, n):
    """Sort ``K0[:n]`` (distinct keys) ascending in place, carrying ``V0[:n]`` along; no allocation.

    Insertion sort for short lists, else an LSD radix sort of RADIX_BITS-bit digits of ``key - min`` with
    ``K1``, ``V1`` as the second buffer and ``CNT`` (RADIX entries) for the digit counts.
    """
    if n < 64:
        for i in range(1, n):
            k = K0[i]
            v = V0[i]
            j = i - 1
            while j >= 0 and K0[j] > k:
                K0[j + 1] = K0[j]
                V0[j + 1] = V0[j]
                j -= 1
            K0[j + 1] = k
            V0[j + 1] = v
        return
    lo = K0[0]
    hi = K0[0]
    for i in range(n):
        lo = min(lo, K0[i])
        hi = max(hi, K0[i])
    span = hi - lo
    shift = 0
    flipped = False
    src_k, src_v, dst_k, dst_v = K0, V0, K1, V1
    while True:
        CNT[:] = 0
        for i in range(n):
            CNT[((src_k[i] - lo) >> shift) & (RADIX - 1)] += 1
        total = 0
        for d in range(RADIX):
            c = CNT[d]
            CNT[d] = total
            total += c
        for i in range(n):
            d = ((src_k[i] - lo) >> shift) & (RADIX - 1)
            p = CNT[d]
            CNT[d] = p + 1
            dst_k[p] = src_k[i]
            dst_v[p] = src_v[i]
        src_k, src_v, dst_k, dst_v = dst_k, dst_v, src_k, src_v
        flipped = not flipped
        shift += RADIX_BITS
        if (span >> shift) == 0:
            break
    if flipped:
        for i in range(n):
            K0[i] = K1[i]
            V0[i] = V1[i]


@njit(**NJIT_NO_NRT_OPTIONS)
def _sort_by_start(W, row, n):
    """Sort ``W[row, :n]`` ascending in place, carrying ``W[row + 1, :n]`` along (rows 2-4 as scratch)."""
    sort_pairs(W[row], W[row + 1], W[2], W[3], W[4], n)


@njit(**NJIT_NO_NRT_OPTIONS)
def _free_batch(C, T, W, n):
    """Return the ranges ``W[5, :n]``..``W[6, :n]`` to free space in address order, adjacent ones as one.

    Free space ends up the same as returning them one by one in any order; sorted returns touch
    neighbouring tree paths, and coalesced runs save descents.
    """
    _sort_by_start(W, 5, n)
    run_start = NIL
    run_end = NIL
    for i in range(n):
        if W[5, i] != run_end:
            if run_start != NIL:
                free_range(C, T, run_start, run_end)
            run_start = W[5, i]
        run_end = W[6, i]
    if run_start != NIL:
        free_range(C, T, run_start, run_end)


@njit(**NJIT_NO_NRT_OPTIONS)
def _purge_node(C, P, S, PL, LZ, W, node, refill, n):
    """``purge_vmap_node``: every lazy VA of ``node``, in address order, to a pool of the node (when
    ``refill`` allows) or to the free-space batch ``W[5:7, n:]``; returns the new n."""
    count = LZ[node, LZ_COUNT]
    s = LZ[node, LZ_HEAD]
    LZ[node, LZ_HEAD] = NIL
    LZ[node, LZ_COUNT] = 0
    for i in range(count):
        W[0, i] = S[s, S_START]
        W[1, i] = s
        s = S[s, S_NEXT]
    if refill:
        _sort_by_start(W, 0, count)  # pools are filled in address order
    for i in range(count):
        s = W[1, i]
        size = S[s, S_SIZE]
        C[LAZY_PAGES] -= size
        C[LAZY_AREAS] -= 1
        if refill and S[s, S_NODE] != NIL and size <= POOL_CLASSES:
            pi = node * POOL_CLASSES + size - 1
            if _pool_accepts(P, PL[pi, PL_LEN]):
                _pool_push_head(C, S, PL, pi, s)
                continue
        W[5, n] = S[s, S_START]
        W[6, n] = S[s, S_START] + size
        n += 1
        _slot_release(C, S, s)
    return n


@njit(**NJIT_NO_NRT_OPTIONS)
def _purge(C, P, decay, S, T, PL, LZ, W, full):
    """``__purge_vmap_area_lazy``: decay pools (nodes design), then purge every node's lazy list.

    ``full`` is the full pool decay of the allocation-failure purge: pools are emptied and purged
    VAs skip them. With one node there are no tags, so nothing ever enters a pool. Everything bound
    for free space is returned in one batch at the end (nothing allocates in between).
    """
    nr = P[P_NR_NODES]
    n = 0
    if P[P_NODES_DESIGN] == 1:
        for node in range(nr):
            n = _decay_into(C, P, decay, S, PL, W, node, full, n)
    marked = 0
    for node in range(nr):
        if LZ[node, LZ_COUNT] > 0:
            marked += 1
    if marked > 0:
        C[TLB_FLUSHES] += 1
        lazy_max = P[P_LAZY_MAX]
        helpers = C[LAZY_PAGES] // lazy_max if lazy_max > 0 else marked
        C[PURGE_HELPERS] += min(max(helpers, 1), marked) - 1
        refill = (not full) and nr > 1
        for node in range(nr):
            if LZ[node, LZ_COUNT] > 0:
                n = _purge_node(C, P, S, PL, LZ, W, node, refill, n)
        C[PURGES] += 1
    _free_batch(C, T, W, n)


@njit(**NJIT_NO_NRT_OPTIONS)
def drain(C, P, decay, S, T, PL, LZ, W):
    """``drain_vmap_area_work``: one purge without full decay; clears the pending flag.

    The 6.7 work repeats the purge while lazy pages exceed lazy_max_pages; a purge takes every
    lazily freed VA, so in the model one purge always ends that loop.
    """
    C[DRAINS] += 1
    C[DRAIN_PENDING] = 0
    _purge(C, P, decay, S, T, PL, LZ, W, False)


@njit(**NJIT_NO_NRT_OPTIONS)
def shrink(C, P, decay, S, T, PL, W):
    """The "vmap-node" shrinker's scan: full decay of every node; returns the VAs released."""
    n = 0
    if P[P_NODES_DESIGN] == 1:
        for node in range(P[P_NR_NODES]):
            n = _decay_into(C, P, decay, S, PL, W, node, True, n)
    _free_batch(C, T, W, n)
    return n


# ---------------------------------------------------------------------------------------------
# Alloc and free.


@njit(**NJIT_INLINE_OPTIONS)
def _capacity(C, S, H, MID, LOW, pages):
    """OK if one more VA of ``pages`` pages fits the arrays, else the NEED_* status to grow."""
    if C[SLOT_FREE] == NIL and C[SLOT_HW] >= S.shape[0]:
        return NEED_SLOTS
    if C[HASH_VALID] == 1 and 2 * (C[BUSY_AREAS] + 1) > H.shape[0]:
        return NEED_HASH
    span = min(pages, C[FREE_PAGES] + C[LAZY_PAGES] + C[POOLED_PAGES])
    if MID.shape[0] - C[MID_ROWS] < (span >> TOP_SHIFT) + 2:
        return NEED_MID
    if LOW.shape[0] - C[PMD_PAGES] < (span >> PMD_SHIFT) + 2:
        return NEED_LOW
    return OK


@njit(**NJIT_IR_INLINE_OPTIONS)
def _alloc(C, P, decay, S, T, PL, LZ, W, H, TOP, MID, LOW, pages, align, cpu):
    """``alloc_vmap_area``: pool (nodes design) or lowest fit, purge and retry once; slot or NIL."""
    size = min(pages, MAX_PAGES) + 1  # no overflow: a window holds < 2^52 pages, so both fail
    nr = P[P_NR_NODES]
    nodes = P[P_NODES_DESIGN] == 1
    tag = NIL
    s = NIL
    if nodes and nr > 1:
        tag = cpu % nr
        if size <= POOL_CLASSES:
            pi = tag * POOL_CLASSES + size - 1
            h = PL[pi, PL_HEAD]
            if h == NIL:
                C[POOL_MISSES] += 1
            elif ((P[P_BASE] + S[h, S_START]) & (align - 1)) == 0:
                s = _pool_pop_head(C, S, PL, pi)
                C[POOL_HITS] += 1
            else:
                if PL[pi, PL_LEN] > 1:
                    _pool_rotate(S, PL, pi)
                C[POOL_MISSES] += 1
                C[POOL_ROTATIONS] += 1
    if s == NIL:
        off = _place(C, P, T, size, align)
        if off == NIL:
            _purge(C, P, decay, S, T, PL, LZ, W, nodes)
            off = _place(C, P, T, size, align)
            if off == NIL:
                C[ALLOC_FAILURES] += 1
                return NIL
        s = _slot_new(C, S)
        S[s, S_START] = off
        S[s, S_SIZE] = size
    _make_busy(C, P, S, H, TOP, MID, LOW, s, tag, align)
    return s


@njit(**NJIT_INLINE_OPTIONS)
def _make_busy(C, P, S, H, TOP, MID, LOW, s, tag, align):
    """Slot ``s`` (start and size set) becomes a busy VA; its pages but the guard page are mapped."""
    S[s, S_STATE] = BUSY
    S[s, S_NODE] = tag
    S[s, S_ALIGN] = align
    if C[HASH_VALID] == 1:
        _h_insert(H, S[s, S_START], s)
    C[BUSY_PAGES] += S[s, S_SIZE]
    C[BUSY_AREAS] += 1
    C[ALLOCS] += 1
    if S[s, S_SIZE] > 1:
        _map_pages(C, P, TOP, MID, LOW, S[s, S_START], S[s, S_SIZE] - 1)


@njit(**NJIT_IR_INLINE_OPTIONS)
def _free(C, P, decay, S, T, PL, LZ, W, H, s):
    """``free_vmap_area_noflush``: busy slot ``s`` joins the lazy list of its tag (or address) node."""
    if C[HASH_VALID] == 1:
        _h_delete_at(H, _h_find(H, S[s, S_START]))
    size = S[s, S_SIZE]
    node = S[s, S_NODE]
    if node == NIL:
        node = ((P[P_BASE] + S[s, S_START]) // P[P_ZONE]) % P[P_NR_NODES]
    S[s, S_STATE] = LAZY
    S[s, S_NEXT] = LZ[node, LZ_HEAD]
    LZ[node, LZ_HEAD] = s
    LZ[node, LZ_COUNT] += 1
    C[BUSY_PAGES] -= size
    C[BUSY_AREAS] -= 1
    C[LAZY_PAGES] += size
    C[LAZY_AREAS] += 1
    C[FREES] += 1
    if C[LAZY_PAGES] > P[P_LAZY_MAX]:
        C[DRAIN_PENDING] = 1
        if P[P_AUTO_DRAIN] == 1:
            drain(C, P, decay, S, T, PL, LZ, W)


# ---------------------------------------------------------------------------------------------
# Entry points called from Python (one jitted call per engine method).


def tree_rows(slots: int) -> int:
    """Rows of T that always suffice while at most ``slots`` VAs live: free blocks are separated by
    VAs, so there are at most slots + 2 of them (one VA being placed), and every node but the root
    holds at least MIN_FILL entries. The scratch row and the height are added."""
    return (slots + 2) // (MIN_FILL - 1) + MAX_HEIGHT + 1


@njit(**NJIT_OPTIONS)
def init_state(C, P, T):
    """Start with one free block covering the whole window (a tree of one leaf)."""
    C[:] = 0
    C[TREE_FREE] = NIL
    C[TREE_HW] = 1  # row 0 is the path
    C[SLOT_FREE] = NIL
    root = _b_node_new(C, T, 1)
    T[root, B_KEY] = 0
    T[root, B_VAL] = P[P_SPACE]
    T[root, B_COUNT] = 1
    C[ROOT] = root
    C[TREE_HEIGHT] = 1
    C[FREE_BLOCKS] = 1
    C[FREE_PAGES] = P[P_SPACE]
    C[HASH_VALID] = 1


@njit(**NJIT_NO_NRT_OPTIONS)
def alloc_one(C, P, decay, S, T, PL, LZ, W, H, TOP, MID, LOW, pages, align, cpu):
    """One allocation; returns (status, offset or NIL). On a NEED_* status nothing changed."""
    st = _capacity(C, S, H, MID, LOW, pages)
    if st != OK:
        return st, NIL
    s = _alloc(C, P, decay, S, T, PL, LZ, W, H, TOP, MID, LOW, pages, align, cpu)
    return OK, (NIL if s == NIL else S[s, S_START])


@njit(**NJIT_NO_NRT_OPTIONS)
def reserve_one(C, S, T, H, TOP, MID, LOW, P, offset, size, cpu):
    """Make pages [offset, offset + size) a busy VA (guard page included in ``size``), tagged with
    the node of ``cpu`` (< 0: untagged); OK, NEED_* or ERR_NOT_FREE (nothing changed) if the range
    is not inside one free block or reaches the window's last page. Counts in allocs, no fit class."""
    end = offset + size
    if size < 1 or offset < 0 or end > P[P_SPACE] - 1:
        return ERR_NOT_FREE
    leaf, i = _b_block_at(C, T, offset)
    if leaf == NIL or T[leaf, B_KEY + i] + T[leaf, B_VAL + i] < end:
        return ERR_NOT_FREE
    st = _capacity(C, S, H, MID, LOW, size)
    if st != OK:
        return st
    _carve(C, T, leaf, i, offset, size)
    s = _slot_new(C, S)
    S[s, S_START] = offset
    S[s, S_SIZE] = size
    nr = P[P_NR_NODES]
    tag = cpu % nr if P[P_NODES_DESIGN] == 1 and nr > 1 and cpu >= 0 else NIL
    _make_busy(C, P, S, H, TOP, MID, LOW, s, tag, 1)
    return OK


@njit(**NJIT_NO_NRT_OPTIONS)
def free_one(C, P, decay, S, T, PL, LZ, W, H, offset):
    """Free the busy VA starting at ``offset``; returns OK, ERR_NOT_BUSY or NEED_HASH.

    After a run() the busy-VA table is stale: it is rebuilt here first (NEED_HASH, with nothing
    changed, when it is too small for the busy VAs).
    """
    if C[HASH_VALID] == 0:
        if 2 * C[BUSY_AREAS] > H.shape[0]:
            return NEED_HASH
        H[:, 0] = NIL
        for s in range(C[SLOT_HW]):
            if S[s, S_STATE] == BUSY:
                _h_insert(H, S[s, S_START], s)
        C[HASH_VALID] = 1
    i = _h_find(H, offset)
    if i == NIL:
        return ERR_NOT_BUSY
    _free(C, P, decay, S, T, PL, LZ, W, H, H[i, 1])
    return OK


@njit(**NJIT_NO_NRT_OPTIONS)
def run_ops(C, P, decay, S, T, PL, LZ, W, H, TOP, MID, LOW, ops, out, row_slot, first):
    """Execute rows ``first..`` of ``ops`` (op, a, b, cpu); returns (status, row reached).

    ``out`` receives offsets (NIL where a row placed nothing); ``row_slot`` maps alloc rows to
    slots and must start as ROW_NOT_ALLOC. On a NEED_* status the row was not executed: grow the
    arrays and call again from that row.
    """
    n = ops.shape[0]
    cpus = P[P_CPUS]
    C[HASH_VALID] = 0  # busy VAs are found by row here; free_one rebuilds the table when needed
    row_slot2 = row_slot.reshape((n, 1))
    for r in range(first, n):
        # Prefetch for the frees a few rows ahead: their row's slot, then the slot's row of S.
        ahead = r + PREFETCH_ROWS
        if ahead < n and ops[ahead, 0] == 1 and 0 <= ops[ahead, 1] < ahead:
            _prefetch(row_slot2, ops[ahead, 1])
        ahead = r + PREFETCH_ROWS // 2
        if ahead < n and ops[ahead, 0] == 1 and 0 <= ops[ahead, 1] < ahead:
            s = row_slot[ops[ahead, 1]]
            if s >= 0:
                _prefetch(S, s)
        if C[SLOT_FREE] != NIL:  # the slot the next new VA will take
            _prefetch(S, C[SLOT_FREE])
        op = ops[r, 0]
        a = ops[r, 1]
        cpu = ops[r, 3]
        if op == 0:
            align = align_pages(ops[r, 2])
            if a < 1 or align == 0 or cpu < 0 or cpu >= cpus:
                return ERR_BAD_ROW, r
            st = _capacity(C, S, H, MID, LOW, a)
            if st != OK:
                return st, r
            s = _alloc(C, P, decay, S, T, PL, LZ, W, H, TOP, MID, LOW, a, align, cpu)
            row_slot[r] = s
            out[r] = NIL if s == NIL else S[s, S_START]
        elif op == 1:
            if cpu < 0 or cpu >= cpus:
                return ERR_BAD_ROW, r
            if a < 0 or a >= r or row_slot[a] == ROW_NOT_ALLOC:
                return ERR_BAD_REF, r
            s = row_slot[a]
            if s == ROW_FREED:
                return ERR_DOUBLE_FREE, r
            row_slot[a] = ROW_FREED
            if s != NIL:
                _free(C, P, decay, S, T, PL, LZ, W, H, s)
        elif op == 2:
            drain(C, P, decay, S, T, PL, LZ, W)
        elif op == 3:
            shrink(C, P, decay, S, T, PL, W)
        else:
            return ERR_BAD_OP, r
    return OK, n


# ---------------------------------------------------------------------------------------------
# Read-outs for state() and check_invariants().


@njit(**NJIT_OPTIONS)
def free_blocks(C, T):
    """(starts, ends) of the free blocks in address order (the leaves from the leftmost one on)."""
    n = C[FREE_BLOCKS]
    starts = np.empty(n, np.int64)
    ends = np.empty(n, np.int64)
    x = C[ROOT]
    while T[x, B_LEAF] == 0:
        x = T[x, B_CHILD]
    i = 0
    while x != NIL and i < n:
        for j in range(min(T[x, B_COUNT], n - i)):
            starts[i] = T[x, B_KEY + j]
            ends[i] = T[x, B_KEY + j] + T[x, B_VAL + j]
            i += 1
        x = T[x, B_NEXT]
    return starts[:i], ends[:i]


@njit(**NJIT_OPTIONS)
def check_tree(C, T):
    """Recount the tree: 0 if sound, else 1 links (children, levels, the leaf chain, cycles, rows
    neither in the tree nor on the free-node list), 2 blocks out of order, touching or empty,
    3 an inner entry's start or maximum wrong, 4 a node's entry count out of bounds,
    5 free_blocks differs from the blocks in the tree."""
    hw = C[TREE_HW]
    height = C[TREE_HEIGHT]
    if hw > T.shape[0] or not 1 <= height <= MAX_HEIGHT or not 1 <= C[ROOT] < hw:
        return 1
    seen = np.zeros(hw, np.bool_)
    stack = np.empty(hw, np.int64)
    depth = np.empty(hw, np.int64)
    stack[0] = C[ROOT]
    depth[0] = 0
    top = 1
    blocks = 0
    prev_leaf = NIL
    prev_end = -1
    while top > 0:  # depth first, children in order: leaves come in address order
        top -= 1
        x = stack[top]
        d = depth[top]
        if seen[x]:
            return 1
        seen[x] = True
        cnt = T[x, B_COUNT]
        is_root = x == C[ROOT]
        if T[x, B_LEAF] != (1 if d == height - 1 else 0):
            return 1
        low = (0 if T[x, B_LEAF] == 1 else 2) if is_root else MIN_FILL
        if not low <= cnt <= FANOUT:
            return 4
        if T[x, B_LEAF] == 1:
            if T[x, B_PREV] != prev_leaf or (prev_leaf != NIL and T[prev_leaf, B_NEXT] != x):
                return 1
            for j in range(cnt):
                if T[x, B_VAL + j] < 1 or T[x, B_KEY + j] <= prev_end:
                    return 2
                prev_end = T[x, B_KEY + j] + T[x, B_VAL + j]
            blocks += cnt
            prev_leaf = x
            continue
        if top + cnt > hw:
            return 1
        for j in range(cnt - 1, -1, -1):
            c = T[x, B_CHILD + j]
            if not 1 <= c < hw:
                return 1
            if T[c, B_COUNT] > 0 and (T[x, B_KEY + j] != T[c, B_KEY] or T[x, B_VAL + j] != _b_max(T, c)):
                return 3
            stack[top] = c
            depth[top] = d + 1
            top += 1
    if prev_leaf != NIL and T[prev_leaf, B_NEXT] != NIL:
        return 1
    used = 1  # the path row
    for x in range(1, hw):
        used += seen[x]
    x = C[TREE_FREE]
    while x != NIL:  # the free-node list: the rows in no tree node, each once
        if not 1 <= x < hw or seen[x]:
            return 1
        seen[x] = True
        used += 1
        x = T[x, B_NEXT]
    if used != hw:
        return 1
    if blocks != C[FREE_BLOCKS]:
        return 5
    return 0


@njit(**NJIT_OPTIONS)
def list_members(S, heads, counts):
    """Walk each list (pools or lazy lists): (list index, slot) per member in list order, head first.

    Returns (owner, slots, ok); ``ok`` is False if a list is longer or shorter than its count.
    """
    total = 0
    for i in range(counts.shape[0]):
        total += counts[i]
    owner = np.empty(total, np.int64)
    slots = np.empty(total, np.int64)
    j = 0
    for i in range(counts.shape[0]):
        s = heads[i]
        for _ in range(counts[i]):
            if s == NIL or j >= total:
                return owner[:j], slots[:j], False
            owner[j] = i
            slots[j] = s
            j += 1
            s = S[s, S_NEXT]
        if s != NIL:
            return owner[:j], slots[:j], False
    return owner, slots, True


@njit(**NJIT_OPTIONS)
def hash_lookup(H, keys):
    """The slot the busy-VA table finds for each start in ``keys`` (NIL where none)."""
    out = np.empty(keys.shape[0], np.int64)
    for i in range(keys.shape[0]):
        j = _h_find(H, keys[i])
        out[i] = NIL if j == NIL else H[j, 1]
    return out
