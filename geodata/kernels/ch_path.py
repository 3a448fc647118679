"""One leg's fastest path on a contraction hierarchy, shortcuts unpacked (numba); :mod:`geodata.ch`.

The leg is one cell of the bucket matrix (:mod:`geodata.kernels.ch_query`) whose path is wanted
too: the forward search from the source's seeds and the backward search from the target's entries
are the matrix's own :func:`~geodata.kernels.ch_query.upward`, run with predecessor links, and the
meeting node is chosen exactly as the matrix scans its buckets (forward settling order, least
time, then least length). So the leg's time and length are the matrix cell's, bit for bit.

Unpacking: a hierarchy edge ``a -> b`` with middle node ``m`` (always below both ends) stands for
``a -> m`` (stored in ``down`` at ``m``, head ``a``) followed by ``m -> b`` (stored in ``up`` at
``m``, head ``b``); each is unpacked in turn (an explicit stack, no recursion) until only edges of
the graph are left. Rows of both CSR sides are sorted by head, so each lookup is a binary search;
a hierarchy holds at most one edge per ordered pair (:func:`geodata.kernels.ch_build.contract`).
"""

from __future__ import annotations

import numpy as np

from geodata.arrays import I32, I64
from geodata.kernels.ch_query import upward
from geodata.kernels.heap import NOT_REACHED
from geodata.kernels.jit import Arrays, kernel

__all__ = ["ch_leg"]


@kernel()
def _find(ptr: I64, head: I32, row: int, value: int) -> int:
    """Index of the edge of ``row`` with head ``value`` (rows sorted by head), ``-1`` if none."""
    lo = int(ptr[row])
    hi = int(ptr[row + 1])
    while lo < hi:
        mid = (lo + hi) // 2
        if head[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    if lo < ptr[row + 1] and head[lo] == value:
        return lo
    return -1


@kernel()
def _unpack(
    a: int, b: int, mid: int, up: Arrays, down: Arrays, mids: Arrays, stack: Arrays,
    path_out: I32, n_path: int,
) -> int:  # fmt: skip
    """Append the graph nodes after ``a`` up to ``b`` of the hierarchy edge ``a -> b``.

    Returns the new path length, ``-1`` when a shortcut's halves are missing (a broken hierarchy)
    or the path would not fit ``path_out``.
    """
    up_ptr, up_head = up[0], up[1]
    down_ptr, down_head = down[0], down[1]
    up_mid, down_mid = mids
    s_a, s_b, s_m = stack
    s_a[0] = a
    s_b[0] = b
    s_m[0] = mid
    sp = 1
    while sp > 0:
        sp -= 1
        x, y, m = s_a[sp], s_b[sp], s_m[sp]
        if m < 0:
            if n_path >= path_out.shape[0]:
                return -1  # only a zero-time, zero-length cycle could make a path this long
            path_out[n_path] = y
            n_path += 1
            continue
        first = _find(down_ptr, down_head, m, x)  # x -> m, stored at m
        second = _find(up_ptr, up_head, m, y)  # m -> y, stored at m
        if first < 0 or second < 0 or sp + 2 > s_a.shape[0]:
            return -1
        s_a[sp], s_b[sp], s_m[sp] = m, y, up_mid[second]  # done second
        s_a[sp + 1], s_b[sp + 1], s_m[sp + 1] = x, m, down_mid[first]  # done first
        sp += 2
    return n_path


@kernel()
def _owner(ptr: I64, e: int) -> int:
    """The row of edge ``e`` (the last row starting at or before it)."""
    return int(np.searchsorted(ptr, e, side="right")) - 1


@kernel()
def ch_leg(
    up: Arrays, down: Arrays, mids: Arrays, seeds: Arrays, entries: Arrays, ws_f: Arrays,
    ws_b: Arrays, links: Arrays, path_out: I32,
) -> tuple[float, float, int]:  # fmt: skip
    """Fastest path from one source's seeds to one target's entries; ``(time, dist, n_path)``.

    ``up`` / ``down`` are the hierarchy's ``(ptr, head, time, length)``, ``mids`` ``(up_mid,
    down_mid)``, ``seeds`` / ``entries`` the ``(rank, time, dist)`` arrays of one group each,
    ``ws_f`` / ``ws_b`` the two searches' ``(dist, dist_m, pos, heap_node, heap_key, touched)``
    (``dist`` ``inf`` and ``pos`` ``NOT_REACHED`` everywhere on entry, and again on return),
    ``links`` ``(pred_f, pred_b, mark_b, chain, stack_a, stack_b, stack_m)``: the searches'
    predecessor edges, a zeroed ``bool`` mark per node, and scratch space. The path's nodes (as
    ranks, seed node first, entry node last) go to ``path_out[:n_path]``; ``inf, inf, 0`` when
    unreachable, ``n_path == -1`` when the hierarchy is broken.
    """
    pred_f, pred_b, mark_b, chain = links[0], links[1], links[2], links[3]
    stack = (links[4], links[5], links[6])
    n_f = upward(up, down, 0, seeds[0].shape[0], seeds, ws_f, pred_f)
    n_b = upward(down, up, 0, entries[0].shape[0], entries, ws_b, pred_b)
    dist_f, dist_mf, touched_f = ws_f[0], ws_f[1], ws_f[5]
    dist_b, dist_mb, touched_b = ws_b[0], ws_b[1], ws_b[5]
    for k in range(n_b):
        x = touched_b[k]
        if x >= 0:
            mark_b[x] = True
    best_t, best_d, best_z = np.inf, np.inf, -1
    for k in range(n_f):  # the matrix's bucket scan: forward settling order, time then length
        x = touched_f[k]
        if x < 0 or not mark_b[x]:
            continue
        t = dist_f[x] + dist_b[x]
        if t < best_t:
            best_t = t
            best_d = dist_mf[x] + dist_mb[x]
            best_z = x
        elif t == best_t:
            lt = dist_mf[x] + dist_mb[x]
            if lt < best_d:
                best_d = lt
                best_z = x
    n_path = 0
    if best_z >= 0:
        # up edges from the seed to the meeting node, collected backwards
        n_chain = 0
        x = best_z
        while pred_f[x] >= 0:
            chain[n_chain] = pred_f[x]
            n_chain += 1
            x = _owner(up[0], pred_f[x])
        path_out[0] = x
        n_path = 1
        for k in range(n_chain - 1, -1, -1):
            e = chain[k]
            if n_path >= 0:
                n_path = _unpack(
                    _owner(up[0], e), up[1][e], mids[0][e], up, down, mids, stack, path_out, n_path
                )
        # down edges from the meeting node to the entry: edge x -> owner
        x = best_z
        while n_path >= 0 and pred_b[x] >= 0:
            e = pred_b[x]
            o = _owner(down[0], e)
            n_path = _unpack(x, o, mids[1][e], up, down, mids, stack, path_out, n_path)
            x = o
    for k in range(n_f):
        x = touched_f[k]
        if x < 0:
            x = ~x
        dist_f[x] = np.inf
        ws_f[2][x] = NOT_REACHED
    for k in range(n_b):
        x = touched_b[k]
        if x < 0:
            x = ~x
        dist_b[x] = np.inf
        ws_b[2][x] = NOT_REACHED
        mark_b[x] = False
    return best_t, best_d, n_path
