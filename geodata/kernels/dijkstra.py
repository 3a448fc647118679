"""numba kernels for many-to-many fastest paths on a CSR road graph (private; see geodata.matrix).

Every kernel takes plain, already validated arrays and writes into caller-allocated buffers;
:mod:`geodata.matrix` validates inputs once, normalises dtypes and dispatches. It passes the input
arrays read-only and always in these dtypes, so each kernel has exactly one compiled signature,
the one :func:`geodata.matrix.warm_up` compiles:

====================  =======  ==================================================================
array                 dtype    meaning
====================  =======  ==================================================================
``indptr``            int64    CSR row pointer, ``n + 1`` entries; edges of ``u`` are
                               ``indptr[u]:indptr[u + 1]``
``indices``           int32    edge target node
``weight``            float64  edge travel time (s), finite, ``>= 0``
``length``            float64  edge length (m), finite, ``>= 0``
``head``              int32    ``~v`` if edge ``e`` leads to core node ``v``, else its walk slot
``is_core``           bool     the node is a junction (see :func:`core_mask`)
``walk_node``         int32    node reached at a walk slot; ``~node`` for a core node
``walk_time``,        float64  time and length of the edge that reaches it
``walk_len``
``*_ptr``             int64    ragged groups: group ``g`` owns rows ``ptr[g]:ptr[g + 1]``
``*_node``            int32    seed / entry node
``*_time``            float64  seed initial time / entry extra time (s)
``*_dist``            float64  seed initial distance / entry extra distance (m)
``core_target_mark``  bool     core nodes that must be settled before every target is final
``ws_dist``,          float64  per-worker workspaces, shape ``(n_workers, n)``, any content
``ws_dist_m``,
``ws_heap_key``
``ws_pos``,           int32    (idem)
``ws_heap_node``,
``ws_touched``
``out_time``,         float64  results, shape ``(n_sources, n_targets)``
``out_dist``
====================  =======  ==================================================================

Algorithm: one Dijkstra per source over the *core* graph, with an indexed 4-ary min-heap
(decrease-key). A full-resolution road graph is mostly chains of interior nodes (shape points of a
street between two junctions: 83-92 % of the nodes of the OSM extracts in the benchmarks). Only
core nodes enter the heap; settling one relaxes its edges to core neighbours as plain Dijkstra
does (same CSR arrays) and walks each chain it opens, node by node, adding edge times left to
right exactly as plain Dijkstra would, stopping where an interior node already holds a time that
is not worse (whatever reached it went on from there at least as fast). Every
node's time is therefore the same float as plain Dijkstra's (the minimum over paths of the
left-to-right sums), bit for bit. An interior node is final once the core nodes whose chains pass
through it are settled; those are the nodes counted for the early stop (``core_target_mark``).

Keys are kept next to the node ids in the heap arrays so that sifting touches only contiguous
memory; ``pos`` maps a node to its heap slot (``-1`` never reached, ``-2`` settled, or an interior
node touched). The length of the fastest path is carried along: it is updated only when the time
strictly improves, so it is the length of the first-found fastest path. Only nodes reached by a
search are reset afterwards (the ``touched`` list), and workspaces are allocated once per worker.

Settled nodes need no test in the relaxation loop: a settled ``v`` has ``dist[v] <= du`` and
``du + w >= du`` for finite ``w >= 0`` in IEEE arithmetic, so ``du + w < dist[v]`` is false.
No fastmath: ``inf`` is the "not reached" sentinel. Measured alternatives (2-/8-ary heaps, a lazy
heap without decrease-key, packed edge/node records, int64 heap indices) are listed with their
numbers in :mod:`benchmarks.matrix`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from geodata.kernels import config as _numba_config  # noqa: F401  (pins the threading layer before any prange runs)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
Mask = npt.NDArray[np.bool_]

NOT_REACHED = -1
SETTLED = -2
ARITY = 4

_F = TypeVar("_F", bound=Callable[..., Any])


def _kernel(*, parallel: bool = False, inline: str = "never") -> Callable[[_F], _F]:
    """``njit(cache=True, nogil=True, ...)``, typed so that mypy keeps the kernel's signature.

    ``inline="always"`` inlines at numba-IR level: LLVM does not inline ``_sift_down`` on its own,
    and the call per heap pop (arrays are passed as exploded structs) cost ~15 % on Monaco.
    """
    options: dict[str, Any] = {"cache": True, "nogil": True, "parallel": parallel}
    if inline != "never":
        options["inline"] = inline
    return cast("Callable[[_F], _F]", njit(**options))


@_kernel(inline="always")
def _sift_up(heap_node: I32, heap_key: F64, pos: I32, i: int, node: int, key: float) -> None:
    """Move the hole at slot ``i`` up until ``key`` fits, then store ``node`` there."""
    while i > 0:
        parent = (i - 1) >> 2  # == (i - 1) // ARITY for i > 0, without floor-division fix-ups
        parent_key = heap_key[parent]
        if parent_key <= key:
            break
        parent_node = heap_node[parent]
        heap_node[i] = parent_node
        heap_key[i] = parent_key
        pos[parent_node] = i
        i = parent
    heap_node[i] = node
    heap_key[i] = key
    pos[node] = i


@_kernel(inline="always")
def _sift_down(
    heap_node: I32, heap_key: F64, pos: I32, size: int, i: int, node: int, key: float
) -> None:
    """Move the hole at slot ``i`` down until ``key`` fits, then store ``node`` there."""
    while True:
        first = (i << 2) + 1
        if first >= size:
            break
        last = min(first + ARITY, size)
        best = first
        best_key = heap_key[first]
        for c in range(first + 1, last):
            c_key = heap_key[c]
            if c_key < best_key:
                best = c
                best_key = c_key
        if best_key >= key:
            break
        best_node = heap_node[best]
        heap_node[i] = best_node
        heap_key[i] = best_key
        pos[best_node] = i
        i = best
    heap_node[i] = node
    heap_key[i] = key
    pos[node] = i


@_kernel()
def _search(
    indptr: I64,
    head: I32,
    weight: F64,
    length: F64,
    is_core: Mask,
    walk_node: I32,
    walk_time: F64,
    walk_len: F64,
    seed_lo: int,
    seed_hi: int,
    seed_node: I32,
    seed_time: F64,
    seed_dist: F64,
    core_target_mark: Mask,
    n_core_targets: int,
    dist: F64,
    dist_m: F64,
    pos: I32,
    heap_node: I32,
    heap_key: F64,
    touched: I32,
) -> int:
    """Run one multi-seed Dijkstra over the core graph; return how many nodes it reached.

    On entry ``dist`` is ``inf`` and ``pos`` is ``NOT_REACHED`` everywhere. On return ``dist`` /
    ``dist_m`` hold final values for every node whose value is needed: every core target and
    every interior node whose chain ends (``core_target_mark``) have been settled and expanded.

    The nodes expanded are first the interior seeds (still holding their seed time), then the
    core nodes in heap order. Expanding ``u`` relaxes each edge ``e`` leaving it: ``head[e]`` is
    ``~v`` when it leads to a core node ``v`` (relaxed through the heap, exactly as plain
    Dijkstra), else the walk slot of ``e``, and the chain is walked node by node, interior nodes
    updated in place, until one already holds a time ``<= t`` or the core node ending the chain.
    (The relaxation is written out here, not in a helper: numba's tuple-returning inline
    helpers made the kernel 60 % slower on a grid.)
    """
    n_touched = 0
    size = 0
    for k in range(seed_lo, seed_hi):
        v = seed_node[k]
        t = seed_time[k]
        if t < dist[v]:
            dist[v] = t
            dist_m[v] = seed_dist[k]
            p = pos[v]
            if p == NOT_REACHED:
                touched[n_touched] = v
                n_touched += 1
                if is_core[v]:
                    _sift_up(heap_node, heap_key, pos, size, v, t)
                    size += 1
                else:
                    pos[v] = SETTLED
            elif is_core[v]:
                _sift_up(heap_node, heap_key, pos, p, v, t)

    next_seed = seed_lo
    remaining = n_core_targets
    while remaining > 0:
        if next_seed < seed_hi:
            u = seed_node[next_seed]
            du = seed_time[next_seed]
            next_seed += 1
            if is_core[u] or dist[u] != du:
                continue  # queued, or improved by a walk that went on from it
            popped = False
        elif size > 0:
            u = heap_node[0]
            du = heap_key[0]
            pos[u] = SETTLED
            size -= 1
            if size > 0:
                _sift_down(heap_node, heap_key, pos, size, 0, heap_node[size], heap_key[size])
            popped = True
        else:
            break
        lu = dist_m[u]
        for e in range(indptr[u], indptr[u + 1]):
            h = head[e]
            t = du + weight[e]
            if h < 0:  # a core neighbour
                v = ~h
                if t >= dist[v]:
                    continue
                ln = lu + length[e]
            else:  # a chain: walk its interior nodes (never queued) while they improve
                k = h
                x = walk_node[k]
                ln = lu + length[e]
                while x >= 0 and t < dist[x]:
                    if pos[x] == NOT_REACHED:
                        touched[n_touched] = x
                        n_touched += 1
                        pos[x] = SETTLED  # the mark only records the touch
                    dist[x] = t
                    dist_m[x] = ln
                    k += 1
                    x = walk_node[k]
                    t = t + walk_time[k]
                    ln = ln + walk_len[k]
                if x >= 0:
                    continue  # an interior node that holds a time <= t: the walk ends here
                v = ~x  # the core node ending the chain
                if t >= dist[v]:
                    continue
            dist[v] = t
            dist_m[v] = ln
            p = pos[v]
            if p == NOT_REACHED:
                touched[n_touched] = v
                n_touched += 1
                _sift_up(heap_node, heap_key, pos, size, v, t)
                size += 1
            else:
                _sift_up(heap_node, heap_key, pos, p, v, t)
        if popped and core_target_mark[u]:  # its chains are walked: their nodes are final
            remaining -= 1
    return n_touched


@_kernel()
def _rows(
    first_row: int,
    row_step: int,
    indptr: I64,
    head: I32,
    weight: F64,
    length: F64,
    is_core: Mask,
    walk_node: I32,
    walk_time: F64,
    walk_len: F64,
    seed_ptr: I64,
    seed_node: I32,
    seed_time: F64,
    seed_dist: F64,
    entry_ptr: I64,
    entry_node: I32,
    entry_time: F64,
    entry_dist: F64,
    core_target_mark: Mask,
    n_core_targets: int,
    dist: F64,
    dist_m: F64,
    pos: I32,
    heap_node: I32,
    heap_key: F64,
    touched: I32,
    out_time: F64,
    out_dist: F64,
) -> None:
    """Fill rows ``first_row, first_row + row_step, ...`` of the outputs with one workspace."""
    dist[:] = np.inf
    pos[:] = NOT_REACHED
    n_sources = seed_ptr.shape[0] - 1
    n_targets = entry_ptr.shape[0] - 1
    for i in range(first_row, n_sources, row_step):
        n_touched = _search(
            indptr,
            head,
            weight,
            length,
            is_core,
            walk_node,
            walk_time,
            walk_len,
            seed_ptr[i],
            seed_ptr[i + 1],
            seed_node,
            seed_time,
            seed_dist,
            core_target_mark,
            n_core_targets,
            dist,
            dist_m,
            pos,
            heap_node,
            heap_key,
            touched,
        )
        for j in range(n_targets):
            best_time = np.inf
            best_dist = np.inf
            for k in range(entry_ptr[j], entry_ptr[j + 1]):
                v = entry_node[k]
                t = dist[v] + entry_time[k]
                if t < best_time:
                    best_time = t
                    best_dist = dist_m[v] + entry_dist[k]
            out_time[i, j] = best_time
            out_dist[i, j] = best_dist
        for k in range(n_touched):
            v = touched[k]
            dist[v] = np.inf
            pos[v] = NOT_REACHED


@_kernel()
def many_to_many_serial(
    indptr: I64,
    head: I32,
    weight: F64,
    length: F64,
    is_core: Mask,
    walk_node: I32,
    walk_time: F64,
    walk_len: F64,
    seed_ptr: I64,
    seed_node: I32,
    seed_time: F64,
    seed_dist: F64,
    entry_ptr: I64,
    entry_node: I32,
    entry_time: F64,
    entry_dist: F64,
    core_target_mark: Mask,
    n_core_targets: int,
    ws_dist: F64,
    ws_dist_m: F64,
    ws_pos: I32,
    ws_heap_node: I32,
    ws_heap_key: F64,
    ws_touched: I32,
    out_time: F64,
    out_dist: F64,
) -> None:
    """Fastest-path time and its length for every (source group, target group), one thread.

    Uses workspace row 0. ``out_time[i, j]`` is the minimum over entries ``k`` of target ``j`` of
    ``time_i(entry_node[k]) + entry_time[k]``; ``out_dist[i, j]`` the matching distance; both
    ``inf`` when no entry is reachable.
    """
    _rows(
        0,
        1,
        indptr,
        head,
        weight,
        length,
        is_core,
        walk_node,
        walk_time,
        walk_len,
        seed_ptr,
        seed_node,
        seed_time,
        seed_dist,
        entry_ptr,
        entry_node,
        entry_time,
        entry_dist,
        core_target_mark,
        n_core_targets,
        ws_dist[0],
        ws_dist_m[0],
        ws_pos[0],
        ws_heap_node[0],
        ws_heap_key[0],
        ws_touched[0],
        out_time,
        out_dist,
    )


@_kernel(parallel=True)
def many_to_many_parallel(
    indptr: I64,
    head: I32,
    weight: F64,
    length: F64,
    is_core: Mask,
    walk_node: I32,
    walk_time: F64,
    walk_len: F64,
    seed_ptr: I64,
    seed_node: I32,
    seed_time: F64,
    seed_dist: F64,
    entry_ptr: I64,
    entry_node: I32,
    entry_time: F64,
    entry_dist: F64,
    core_target_mark: Mask,
    n_core_targets: int,
    ws_dist: F64,
    ws_dist_m: F64,
    ws_pos: I32,
    ws_heap_node: I32,
    ws_heap_key: F64,
    ws_touched: I32,
    out_time: F64,
    out_dist: F64,
) -> None:
    """Same as :func:`many_to_many_serial`, sources spread over ``ws_dist.shape[0]`` workers.

    Worker ``b`` owns workspace row ``b`` and computes output rows ``b, b + W, b + 2W, ...``
    (interleaved, so sources sorted by cost still balance). Call with
    ``numba.get_num_threads() == W`` so that each thread runs exactly one worker.
    """
    n_workers = ws_dist.shape[0]
    for b in prange(n_workers):
        _rows(
            b,
            n_workers,
            indptr,
            head,
            weight,
            length,
            is_core,
            walk_node,
            walk_time,
            walk_len,
            seed_ptr,
            seed_node,
            seed_time,
            seed_dist,
            entry_ptr,
            entry_node,
            entry_time,
            entry_dist,
            core_target_mark,
            n_core_targets,
            ws_dist[b],
            ws_dist_m[b],
            ws_pos[b],
            ws_heap_node[b],
            ws_heap_key[b],
            ws_touched[b],
            out_time,
            out_dist,
        )


@_kernel()
def core_mask(indptr: I64, indices: I32, is_core: Mask) -> None:
    """Mark the core nodes: every node but the interior nodes of chains.

    A node ``x`` is *interior* when it only passes traffic along: one edge in from ``p`` and one
    edge out to ``s`` (``p != s``, a one-way street), or edges in from and out to exactly the same
    two distinct neighbours (a two-way street). Self-loops and parallel edges make a node core.
    """
    n = indptr.shape[0] - 1
    indeg = np.zeros(n, dtype=np.int64)
    in_a = np.full(n, -1, dtype=np.int64)
    in_b = np.full(n, -1, dtype=np.int64)
    for u in range(n):
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            indeg[v] += 1
            if in_a[v] == -1:
                in_a[v] = u
            elif in_b[v] == -1:
                in_b[v] = u
    for x in range(n):
        lo = indptr[x]
        out_deg = indptr[x + 1] - lo
        is_core[x] = True
        if out_deg == 1 and indeg[x] == 1:
            s = indices[lo]
            p = in_a[x]
            if s != p and s != x and p != x:
                is_core[x] = False
        elif out_deg == 2 and indeg[x] == 2:
            a = indices[lo]
            b = indices[lo + 1]
            same = (in_a[x] == a and in_b[x] == b) or (in_a[x] == b and in_b[x] == a)
            if same and a != b and a != x and b != x:
                is_core[x] = False


@_kernel()
def build_walks(
    indptr: I64,
    indices: I32,
    weight: F64,
    length: F64,
    is_core: Mask,
    edge_slot: I64,
    walk_node: I32,
    walk_time: F64,
    walk_len: F64,
    origin_a: I32,
    origin_b: I32,
) -> int:
    """Lay out every chain (core node, its interior nodes, the next core node) in walk slots.

    The chain leaving core ``u`` by edge ``e`` occupies consecutive slots from ``edge_slot[e]``:
    slot ``k`` holds the node reached (``~node`` for the core node that ends the chain) and the
    time and length of the edge that reaches it. Every edge gets the slot where it is walked, so a
    walk may also start inside a chain (a seed on an interior node). ``origin_a`` / ``origin_b``
    of an interior node are the core nodes whose chains pass through it (one for a one-way
    street, two for a two-way one). Returns the number of edges laid out: fewer than all of them
    only when some cycle has no core node (the caller then makes a node of it core).
    """
    n = indptr.shape[0] - 1
    edge_slot[:] = -1
    origin_a[:] = -1
    origin_b[:] = -1
    cursor = 0
    for u in range(n):
        if not is_core[u]:
            continue
        for e in range(indptr[u], indptr[u + 1]):
            prev = u
            e2 = e
            for _ in range(n + 1):  # a chain visits each interior node at most once
                x = indices[e2]
                edge_slot[e2] = cursor
                walk_time[cursor] = weight[e2]
                walk_len[cursor] = length[e2]
                if is_core[x]:
                    walk_node[cursor] = ~x
                    cursor += 1
                    break
                walk_node[cursor] = x
                cursor += 1
                if origin_a[x] == -1:
                    origin_a[x] = u
                else:
                    origin_b[x] = u
                lo = indptr[x]
                e2 = lo if indptr[x + 1] - lo == 1 or indices[lo] != prev else lo + 1
                prev = x
    return cursor
