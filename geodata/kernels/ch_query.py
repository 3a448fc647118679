"""Bucket many-to-many queries on a contraction hierarchy (numba), see :mod:`geodata.ch`.

Nodes are numbered by rank (contraction order), so every search only climbs to higher numbers.
``up = (ptr, head, time, length)`` holds, at node ``x``, the edges ``x -> y`` with ``y > x``;
``down = (ptr, head, time, length)`` holds, at node ``x``, the edges ``y -> x`` with ``y > x``.
A fastest path always has a highest node ``z``: it climbs from the source to ``z`` along ``up``
edges and descends from ``z`` to the target along edges of ``down`` (read backwards).

1. Backward searches (:func:`fill_buckets`): from each target group's entries (multi-seed, the
   entry's extra time and distance as start labels), a Dijkstra over ``down`` read upwards; every
   node ``z`` it settles gets the bucket entry ``(target, time, length)``.
2. Forward searches (:func:`scan_rows`): from each source group's seeds, a Dijkstra over ``up``;
   at every node ``z`` settled, the bucket of ``z`` is scanned and each target's cell keeps the
   least ``time_f(z) + time_b(z)`` (ties: the least length).

Both searches stall on demand: a node ``x`` reached with time ``d`` is not expanded (nor its bucket
used) when a higher node ``y`` already settled reaches it faster by a ``down`` (resp. ``up``)
edge; such a label cannot be on a fastest path. Searches run to exhaustion (the upward search
spaces are small). Labels are updated on a strictly smaller time, or an equal time and a strictly
smaller length before the node is settled.

Times are exact sums (see :mod:`geodata.ch`), so the cells are Dijkstra's times bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from geodata.arrays import F64, I32, I64
from geodata.kernels.heap import NOT_REACHED, SETTLED, push, sift_down
from geodata.kernels.jit import Arrays, kernel

__all__ = ["bucket_counts", "fill_buckets", "scan_rows_parallel", "scan_rows_serial", "upward"]


@kernel()
def upward(
    g: Arrays, stall_g: Arrays, seed_lo: int, seed_hi: int, seeds: Arrays, ws: Arrays,
    pred: I64 | None,
) -> int:  # fmt: skip
    """One multi-seed upward Dijkstra over ``g`` with stall-on-demand through ``stall_g``.

    ``seeds`` is ``(node, time, dist)`` (rows ``seed_lo:seed_hi``), ``ws`` ``(dist, dist_m, pos,
    heap_node, heap_key, touched)``; on entry ``dist`` is ``inf`` and ``pos`` ``NOT_REACHED``
    everywhere. Returns ``n``: ``touched[:n]`` lists the settled, unstalled nodes first to last
    (with final ``dist`` / ``dist_m``), as negative-free ids; stalled nodes are appended as ``~x``
    after them so that the caller resets them too. The caller resets ``dist`` and ``pos`` of
    every node in ``touched[:n]`` (decode ``~x``) plus the returned heap leftovers (none: the
    search runs to exhaustion).

    ``pred`` is ``None`` for matrices (numba compiles that variant with every ``pred`` branch
    pruned: the plain matrix search). Paths (:mod:`geodata.kernels.ch_path`) pass an int64
    array and get, for every node whose label was set, the index in ``g`` of the edge its label
    came over (``-1`` for a seed): the same search, so the same labels as the matrix's.
    """
    ptr, head, wt, ln = g
    s_ptr, s_head, s_wt = stall_g[0], stall_g[1], stall_g[2]
    seed_node, seed_time, seed_dist = seeds
    dist, dist_m, pos, heap_node, heap_key, touched = ws
    size = 0
    for k in range(seed_lo, seed_hi):
        v = seed_node[k]
        t = seed_time[k]
        if t < dist[v] or (t == dist[v] and seed_dist[k] < dist_m[v]):
            dist[v] = t
            dist_m[v] = seed_dist[k]
            if pred is not None:
                pred[v] = -1
            size = push(heap_node, heap_key, pos, size, v, t)
    n_out = 0
    while size > 0:
        x = heap_node[0]
        dx = heap_key[0]
        pos[x] = SETTLED
        size -= 1
        if size > 0:
            sift_down(heap_node, heap_key, pos, size, 0, heap_node[size], heap_key[size])
        stalled = False
        for e in range(s_ptr[x], s_ptr[x + 1]):
            y = s_head[e]
            if dist[y] + s_wt[e] < dx:
                stalled = True
                break
        if stalled:
            touched[n_out] = ~x
            n_out += 1
            continue
        touched[n_out] = x
        n_out += 1
        lx = dist_m[x]
        for e in range(ptr[x], ptr[x + 1]):
            y = head[e]
            t = dx + wt[e]
            p = pos[y]
            if p == SETTLED:
                continue
            if t < dist[y]:
                dist[y] = t
                dist_m[y] = lx + ln[e]
                if pred is not None:
                    pred[y] = e
                size = push(heap_node, heap_key, pos, size, y, t)
            elif t == dist[y]:
                lt = lx + ln[e]
                if lt < dist_m[y]:
                    dist_m[y] = lt
                    if pred is not None:
                        pred[y] = e
    return n_out


@kernel(inline="always")
def _reset(touched: I32, n: int, dist: F64, pos: I32) -> None:
    for k in range(n):
        x = touched[k]
        if x < 0:
            x = ~x
        dist[x] = np.inf
        pos[x] = NOT_REACHED


@kernel()
def bucket_counts(up: Arrays, down: Arrays, targets: Arrays, ws: Arrays, count: I64) -> int:
    """Count, per node, the bucket entries the backward searches will make; return the total."""
    t_ptr, t_node, t_time, t_dist = targets
    dist, _, pos, _, _, touched = ws
    entries = (t_node, t_time, t_dist)
    total = 0
    for j in range(t_ptr.shape[0] - 1):
        n = upward(down, up, t_ptr[j], t_ptr[j + 1], entries, ws, None)
        for k in range(n):
            x = touched[k]
            if x >= 0:
                count[x] += 1
                total += 1
        _reset(touched, n, dist, pos)
    return total


@kernel()
def fill_buckets(
    up: Arrays, down: Arrays, targets: Arrays, ws: Arrays, bucket_ptr: I64, buckets: Arrays
) -> None:
    """Run the backward searches again and write the buckets (``bucket_ptr`` from the counts).

    ``buckets = (b_target, b_time, b_dist)``; entries of node ``x`` are
    ``bucket_ptr[x]:bucket_ptr[x + 1]``, in target order.
    """
    t_ptr, t_node, t_time, t_dist = targets
    b_target, b_time, b_dist = buckets
    dist, dist_m, pos, _, _, touched = ws
    entries = (t_node, t_time, t_dist)
    cursor = bucket_ptr[:-1].copy()
    for j in range(t_ptr.shape[0] - 1):
        n = upward(down, up, t_ptr[j], t_ptr[j + 1], entries, ws, None)
        for k in range(n):
            x = touched[k]
            if x >= 0:
                c = cursor[x]
                b_target[c] = j
                b_time[c] = dist[x]
                b_dist[c] = dist_m[x]
                cursor[x] = c + 1
        _reset(touched, n, dist, pos)


@kernel()
def _rows(
    worker: int, step: int, up: Arrays, down: Arrays, sources: Arrays, bucket_ptr: I64,
    buckets: Arrays, ws: Arrays, out: Arrays,
) -> None:  # fmt: skip
    s_ptr, s_node, s_time, s_dist = sources
    b_target, b_time, b_dist = buckets
    out_time, out_dist = out
    own = (ws[0][worker], ws[1][worker], ws[2][worker], ws[3][worker], ws[4][worker], ws[5][worker])
    dist, dist_m, pos, _, _, touched = own
    dist[:] = np.inf
    pos[:] = NOT_REACHED
    seeds = (s_node, s_time, s_dist)
    for i in range(worker, s_ptr.shape[0] - 1, step):
        row_t = out_time[i]
        row_d = out_dist[i]
        row_t[:] = np.inf
        row_d[:] = np.inf
        n = upward(up, down, s_ptr[i], s_ptr[i + 1], seeds, own, None)
        for k in range(n):
            x = touched[k]
            if x < 0:
                continue
            dx = dist[x]
            lx = dist_m[x]
            for b in range(bucket_ptr[x], bucket_ptr[x + 1]):
                j = b_target[b]
                t = dx + b_time[b]
                if t < row_t[j]:
                    row_t[j] = t
                    row_d[j] = lx + b_dist[b]
                elif t == row_t[j]:
                    lt = lx + b_dist[b]
                    if lt < row_d[j]:
                        row_d[j] = lt
        _reset(touched, n, dist, pos)


@kernel()
def scan_rows_serial(
    up: Arrays, down: Arrays, sources: Arrays, bucket_ptr: I64, buckets: Arrays, ws: Arrays,
    out: Arrays,
) -> None:  # fmt: skip
    """Fill every row of ``out = (out_time, out_dist)`` with workspace row 0."""
    _rows(0, 1, up, down, sources, bucket_ptr, buckets, ws, out)


@kernel(parallel=True)
def scan_rows_parallel(
    up: Arrays, down: Arrays, sources: Arrays, bucket_ptr: I64, buckets: Arrays, ws: Arrays,
    out: Arrays,
) -> None:  # fmt: skip
    """As :func:`scan_rows_serial`, rows interleaved over ``ws[0].shape[0]`` workers."""
    n_workers = ws[0].shape[0]
    for b in prange(n_workers):
        _rows(b, n_workers, up, down, sources, bucket_ptr, buckets, ws, out)
