"""numba kernels for many-to-many fastest paths on a CSR road graph (private; see geodata.matrix).

Every kernel takes plain, already validated arrays and writes into caller-allocated buffers;
:mod:`geodata.matrix` validates inputs once, normalises dtypes and dispatches. It passes the input
arrays read-only and always in these dtypes, so each kernel has exactly one compiled signature,
the one :func:`geodata.matrix.warm_up` compiles:

==================  =======  ====================================================================
array               dtype    meaning
==================  =======  ====================================================================
``indptr``          int64    CSR row pointer, ``n + 1`` entries; edges of ``u`` are
                             ``indptr[u]:indptr[u + 1]``
``indices``         int32    edge target node
``weight``          float64  edge travel time (s), finite, ``>= 0``
``length``          float64  edge length (m), finite, ``>= 0``
``*_ptr``           int64    ragged groups: group ``g`` owns rows ``ptr[g]:ptr[g + 1]``
``*_node``          int32    seed / entry node
``*_time``          float64  seed initial time / entry extra time (s)
``*_dist``          float64  seed initial distance / entry extra distance (m)
``target_mark``     bool     ``target_mark[v]`` iff ``v`` is the node of some target entry
``ws_dist``,        float64  per-worker workspaces, shape ``(n_workers, n)``, any content
``ws_dist_m``,
``ws_heap_key``
``ws_pos``,         int32    (idem)
``ws_heap_node``,
``ws_touched``
``out_time``,       float64  results, shape ``(n_sources, n_targets)``
``out_dist``
==================  =======  ====================================================================

Algorithm: one Dijkstra per source with an indexed 4-ary min-heap (decrease-key). Keys are kept
next to the node ids in the heap arrays so that sifting touches only contiguous memory; ``pos``
maps a node to its heap slot (``-1`` never reached, ``-2`` settled). The length of the fastest
path is carried along: it is updated only when the time strictly improves, so it is the length of
the first-found fastest path. A search stops as soon as every target node is settled. Only nodes
reached by a search are reset afterwards (the ``touched`` list), so the per-source cost does not
include an O(n) clear, and workspaces are allocated once per worker, not per source.

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

from geodata import _numba_config  # noqa: F401  (pins the threading layer before any prange runs)

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
    indices: I32,
    weight: F64,
    length: F64,
    seed_lo: int,
    seed_hi: int,
    seed_node: I32,
    seed_time: F64,
    seed_dist: F64,
    target_mark: Mask,
    n_target_nodes: int,
    dist: F64,
    dist_m: F64,
    pos: I32,
    heap_node: I32,
    heap_key: F64,
    touched: I32,
) -> int:
    """Run one multi-seed Dijkstra; return how many nodes it reached (``touched[:count]``).

    On entry ``dist`` is ``inf`` and ``pos`` is ``NOT_REACHED`` everywhere. On return ``dist`` /
    ``dist_m`` hold final values for every settled node, in particular for every target node
    (or ``inf`` if it is unreachable).
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
                _sift_up(heap_node, heap_key, pos, size, v, t)
                size += 1
            else:
                _sift_up(heap_node, heap_key, pos, p, v, t)

    remaining = n_target_nodes
    while size > 0 and remaining > 0:
        u = heap_node[0]
        du = heap_key[0]
        pos[u] = SETTLED
        size -= 1
        if size > 0:
            _sift_down(heap_node, heap_key, pos, size, 0, heap_node[size], heap_key[size])
        if target_mark[u]:
            remaining -= 1
            if remaining == 0:
                break
        lu = dist_m[u]
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            t = du + weight[e]
            if t < dist[v]:
                dist[v] = t
                dist_m[v] = lu + length[e]
                p = pos[v]
                if p == NOT_REACHED:
                    touched[n_touched] = v
                    n_touched += 1
                    _sift_up(heap_node, heap_key, pos, size, v, t)
                    size += 1
                else:
                    _sift_up(heap_node, heap_key, pos, p, v, t)
    return n_touched


@_kernel()
def _rows(
    first_row: int,
    row_step: int,
    indptr: I64,
    indices: I32,
    weight: F64,
    length: F64,
    seed_ptr: I64,
    seed_node: I32,
    seed_time: F64,
    seed_dist: F64,
    entry_ptr: I64,
    entry_node: I32,
    entry_time: F64,
    entry_dist: F64,
    target_mark: Mask,
    n_target_nodes: int,
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
            indices,
            weight,
            length,
            seed_ptr[i],
            seed_ptr[i + 1],
            seed_node,
            seed_time,
            seed_dist,
            target_mark,
            n_target_nodes,
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
    indices: I32,
    weight: F64,
    length: F64,
    seed_ptr: I64,
    seed_node: I32,
    seed_time: F64,
    seed_dist: F64,
    entry_ptr: I64,
    entry_node: I32,
    entry_time: F64,
    entry_dist: F64,
    target_mark: Mask,
    n_target_nodes: int,
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
        indices,
        weight,
        length,
        seed_ptr,
        seed_node,
        seed_time,
        seed_dist,
        entry_ptr,
        entry_node,
        entry_time,
        entry_dist,
        target_mark,
        n_target_nodes,
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
    indices: I32,
    weight: F64,
    length: F64,
    seed_ptr: I64,
    seed_node: I32,
    seed_time: F64,
    seed_dist: F64,
    entry_ptr: I64,
    entry_node: I32,
    entry_time: F64,
    entry_dist: F64,
    target_mark: Mask,
    n_target_nodes: int,
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
            indices,
            weight,
            length,
            seed_ptr,
            seed_node,
            seed_time,
            seed_dist,
            entry_ptr,
            entry_node,
            entry_time,
            entry_dist,
            target_mark,
            n_target_nodes,
            ws_dist[b],
            ws_dist_m[b],
            ws_pos[b],
            ws_heap_node[b],
            ws_heap_key[b],
            ws_touched[b],
            out_time,
            out_dist,
        )
