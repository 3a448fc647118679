"""Contraction hierarchies: node ordering and contraction (numba), see :mod:`geodata.ch`.

The graph being contracted is kept as one adjacency list per node and direction in a shared pool
(list ``2 * v`` holds the out-edges of ``v``, list ``2 * v + 1`` its in-edges), each entry
``(neighbour, time, length, middle)``; ``middle`` is ``-1`` for an original edge, else the node a
shortcut bypasses. Entries to contracted nodes stay in the lists and are skipped (a list that
overflows is moved to the end of the pool without them).

Node order: a min-heap of priorities ``edge difference + contracted neighbours + level``
(shortcuts a contraction would add, minus the edges it removes; how many neighbours were already
contracted; the hop depth of the node in the hierarchy so far). The neighbours of a contracted
node get their priority computed again, which keeps every key current; optional lazy updates
besides (``lazy``): the popped node's priority is computed again and the node goes back into the
heap if it is no longer the least.

Witness searches: before adding the shortcut ``u -> v -> w`` a Dijkstra from ``u`` that avoids
``v`` looks for a path that is not worse, comparing ``(time, length)`` lexicographically; it
stops past the longest via time or after ``limit`` nodes (a search cut short only adds a
shortcut that may not have been needed: correctness never depends on the limit).

Times are added in float64: :mod:`geodata.ch` only uses the hierarchy when every sum of edge
times is exact in float64 (all times on a dyadic grid, see :func:`geodata.ch.exact_grid`), so the
order of the additions does not matter and the queries give Dijkstra's times bit for bit.
"""

from __future__ import annotations

import numpy as np

from geodata.arrays import F64, I32, I64
from geodata.kernels.heap import NOT_REACHED, SETTLED, push, sift_down
from geodata.kernels.jit import kernel

__all__ = ["contract"]


@kernel()
def _insert(
    lid: int, nbr: int, t: float, ln: float, mid: int,
    start: I64, size: I64, cap: I64, pool: tuple[I32, F64, F64, I32], fill: int,
    contracted: np.ndarray,
) -> int:  # fmt: skip
    """Add or improve the entry ``nbr`` of list ``lid``; return the new pool fill, ``-1`` if full.

    An existing entry to ``nbr`` is kept unless ``(t, ln)`` is lexicographically smaller.
    """
    p_nbr, p_t, p_l, p_mid = pool
    lo = start[lid]
    hi = lo + size[lid]
    for k in range(lo, hi):
        if p_nbr[k] == nbr:
            if t < p_t[k] or (t == p_t[k] and ln < p_l[k]):
                p_t[k] = t
                p_l[k] = ln
                p_mid[k] = mid
            return fill
    if size[lid] < cap[lid]:
        p_nbr[hi] = nbr
        p_t[hi] = t
        p_l[hi] = ln
        p_mid[hi] = mid
        size[lid] += 1
        return fill
    live = 0
    for k in range(lo, hi):
        if not contracted[p_nbr[k]]:
            live += 1
    new_cap = 2 * live + 4
    if fill + new_cap > p_nbr.shape[0]:
        return -1
    j = fill
    for k in range(lo, hi):
        if not contracted[p_nbr[k]]:
            p_nbr[j] = p_nbr[k]
            p_t[j] = p_t[k]
            p_l[j] = p_l[k]
            p_mid[j] = p_mid[k]
            j += 1
    p_nbr[j] = nbr
    p_t[j] = t
    p_l[j] = ln
    p_mid[j] = mid
    start[lid] = fill
    size[lid] = j + 1 - fill
    cap[lid] = new_cap
    return fill + new_cap


@kernel()
def _witness(
    u: int, skip: int, max_t: float, limit: int,
    start: I64, size: I64, pool: tuple[I32, F64, F64, I32], contracted: np.ndarray,
    ws: tuple[F64, F64, I32, I32, F64, I32], target: np.ndarray, n_targets: int,
) -> int:  # fmt: skip
    """Dijkstra from ``u`` over uncontracted nodes other than ``skip``; return nodes touched.

    Stops when the least queued time exceeds ``max_t``, ``limit`` nodes are settled or the
    ``n_targets`` nodes marked in ``target`` are all settled (their labels are final). ``ws`` is
    ``(dist, dist_l, pos, heap_node, heap_key, touched)``; the caller reads ``dist`` / ``dist_l``
    and then resets the touched nodes. A node's length is the shortest among the equal-time
    labels it got before it was settled.
    """
    p_nbr, p_t, p_l, _ = pool
    dist, dist_l, pos, heap_node, heap_key, touched = ws
    dist[u] = 0.0
    dist_l[u] = 0.0
    touched[0] = u
    n_touched = 1
    size_h = push(heap_node, heap_key, pos, 0, u, 0.0)
    settled = 0
    while size_h > 0:
        x = heap_node[0]
        dx = heap_key[0]
        if dx > max_t or settled >= limit:
            break
        pos[x] = SETTLED
        size_h -= 1
        if size_h > 0:
            sift_down(heap_node, heap_key, pos, size_h, 0, heap_node[size_h], heap_key[size_h])
        settled += 1
        if target[x]:
            n_targets -= 1
            if n_targets == 0:
                break
        lx = dist_l[x]
        lo = start[2 * x]
        for k in range(lo, lo + size[2 * x]):
            y = p_nbr[k]
            if y == skip or contracted[y]:
                continue
            t = dx + p_t[k]
            if t > max_t:
                continue
            ln = lx + p_l[k]
            p = pos[y]
            if p == SETTLED:
                continue
            if p == NOT_REACHED:
                touched[n_touched] = y
                n_touched += 1
                dist[y] = t
                dist_l[y] = ln
                size_h = push(heap_node, heap_key, pos, size_h, y, t)
            elif t < dist[y]:
                dist[y] = t
                dist_l[y] = ln
                size_h = push(heap_node, heap_key, pos, size_h, y, t)
            elif t == dist[y] and ln < dist_l[y]:
                dist_l[y] = ln
    for k in range(size_h):
        pos[heap_node[k]] = SETTLED  # every touched node is reset by the caller
    return n_touched


@kernel()
def _contract_node(
    v: int, limit: int, apply: bool,
    start: I64, size: I64, cap: I64, pool: tuple[I32, F64, F64, I32], fill: int,
    contracted: np.ndarray, ws: tuple[F64, F64, I32, I32, F64, I32], target: np.ndarray,
) -> tuple[int, int, int, bool]:  # fmt: skip
    """Simulate (``apply=False``) or do the contraction of ``v``.

    Returns ``(shortcuts, edges removed, pool fill, full)``; ``full`` when the pool ran out during
    an applied contraction (the caller grows the pool, keeping ``[:fill]``, and contracts ``v``
    again: shortcuts already inserted are kept, never duplicated).
    """
    p_nbr, p_t, p_l, _ = pool
    dist, dist_l, pos, _, _, touched = ws
    out_lo = start[2 * v]
    out_hi = out_lo + size[2 * v]
    in_lo = start[2 * v + 1]
    in_hi = in_lo + size[2 * v + 1]
    max_out = 0.0
    n_out = 0
    for k in range(out_lo, out_hi):
        if not contracted[p_nbr[k]]:
            n_out += 1
            if p_t[k] > max_out:
                max_out = p_t[k]
    n_in = 0
    shortcuts = 0
    full = False
    for ki in range(in_lo, in_hi):
        u = p_nbr[ki]
        if contracted[u]:
            continue
        n_in += 1
        if n_out == 0:
            continue
        tu = p_t[ki]
        lu = p_l[ki]
        n_targets = 0
        for ko in range(out_lo, out_hi):
            w = p_nbr[ko]
            if w != u and not contracted[w]:
                target[w] = True
                n_targets += 1
        n_touched = 0
        if n_targets > 0:
            n_touched = _witness(
                u, v, tu + max_out, limit, start, size, pool, contracted, ws, target, n_targets
            )
        for ko in range(out_lo, out_hi):
            target[p_nbr[ko]] = False
        for ko in range(out_lo, out_hi):
            w = p_nbr[ko]
            if w == u or contracted[w]:
                continue
            t = tu + p_t[ko]
            ln = lu + p_l[ko]
            if pos[w] != NOT_REACHED and (dist[w] < t or (dist[w] == t and dist_l[w] <= ln)):
                continue  # a witness: a path avoiding v that is not worse
            shortcuts += 1
            if apply and not full:
                # both entries or neither: a one-sided shortcut would be lost (the witness search
                # of the retry finds it) when its other end is contracted first
                if fill + 2 * (size[2 * u] + size[2 * w + 1]) + 8 > p_nbr.shape[0]:
                    full = True
                else:
                    fill = _insert(2 * u, w, t, ln, v, start, size, cap, pool, fill, contracted)
                    fill = _insert(2 * w + 1, u, t, ln, v, start, size, cap, pool, fill, contracted)
        for k in range(n_touched):
            x = touched[k]
            dist[x] = np.inf
            pos[x] = NOT_REACHED
        # the loops above read v's lists by position: a relocation moved only u's and w's lists
        out_lo = start[2 * v]
        out_hi = out_lo + size[2 * v]
        in_lo = start[2 * v + 1]
        in_hi = in_lo + size[2 * v + 1]
    return shortcuts, n_in + n_out, fill, full


@kernel()
def _priority(shortcuts: int, removed: int, deleted: int, level: int) -> float:
    """Edge difference + contracted neighbours + level."""
    return float(shortcuts - removed + deleted + level)


@kernel()
def contract(
    indptr: I64, indices: I32, weight: F64, length: F64, limit: int, sim_limit: int, lazy: bool
) -> tuple[I32, I32, I32, F64, F64, I32, int]:
    """Order and contract every node; return the hierarchy's edges and the order.

    ``limit`` / ``sim_limit``: nodes a witness search may settle when contracting / when
    estimating a priority. ``lazy``: compute the popped node's priority again before contracting
    it (the neighbour updates already keep every key current; on NY 50.3 vs 49.8 s CPU for the
    same edges, so :mod:`geodata.ch` passes ``False``).

    Returns ``(rank, edge_src, edge_dst, edge_time, edge_len, edge_mid, n_edges)``: ``rank[v]``
    is the contraction position of ``v`` (0 first); edge ``k < n_edges`` goes from ``edge_src[k]``
    to ``edge_dst[k]`` with exactly one endpoint contracted first (the lower one), ``edge_mid[k]``
    the bypassed node of a shortcut (``-1`` for an original edge). Parallel edges are reduced to
    the lexicographically least ``(time, length)``.
    """
    n = indptr.shape[0] - 1
    m = indices.shape[0]
    deg = np.zeros(2 * n, dtype=np.int64)
    for u in range(n):
        for e in range(indptr[u], indptr[u + 1]):
            deg[2 * u] += 1
            deg[2 * indices[e] + 1] += 1
    cap = deg + 2
    start = np.zeros(2 * n, dtype=np.int64)
    total = 0
    for lid in range(2 * n):
        start[lid] = total
        total += cap[lid]
    pool_cap = total + 2 * m + 1024
    pool = (
        np.empty(pool_cap, dtype=np.int32),
        np.empty(pool_cap, dtype=np.float64),
        np.empty(pool_cap, dtype=np.float64),
        np.empty(pool_cap, dtype=np.int32),
    )
    fill = total
    size = np.zeros(2 * n, dtype=np.int64)
    contracted = np.zeros(n, dtype=np.bool_)
    for u in range(n):
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            if v == u:
                continue  # a self-loop never lies on a fastest path
            fill = _insert(
                2 * u, v, weight[e], length[e], -1, start, size, cap, pool, fill, contracted
            )
            fill = _insert(
                2 * v + 1, u, weight[e], length[e], -1, start, size, cap, pool, fill, contracted
            )
    ws = (
        np.full(n, np.inf),
        np.zeros(n),
        np.full(n, NOT_REACHED, dtype=np.int32),
        np.empty(n, dtype=np.int32),
        np.empty(n, dtype=np.float64),
        np.empty(n, dtype=np.int32),
    )
    target = np.zeros(n, dtype=np.bool_)
    updated = np.full(n, -1, dtype=np.int64)
    deleted = np.zeros(n, dtype=np.int64)
    level = np.zeros(n, dtype=np.int64)
    q_pos = np.full(n, NOT_REACHED, dtype=np.int32)
    q_node = np.empty(n, dtype=np.int32)
    q_key = np.empty(n, dtype=np.float64)
    q_size = 0
    for v in range(n):
        s, r, _, _ = _contract_node(
            v, sim_limit, False, start, size, cap, pool, fill, contracted, ws, target
        )
        q_size = push(q_node, q_key, q_pos, q_size, v, _priority(s, r, 0, 0))

    rank = np.empty(n, dtype=np.int32)
    out_cap = 2 * m + 16
    e_src = np.empty(out_cap, dtype=np.int32)
    e_dst = np.empty(out_cap, dtype=np.int32)
    e_t = np.empty(out_cap, dtype=np.float64)
    e_l = np.empty(out_cap, dtype=np.float64)
    e_mid = np.empty(out_cap, dtype=np.int32)
    n_e = 0
    next_rank = 0
    while q_size > 0:
        v = q_node[0]
        q_pos[v] = SETTLED
        q_size -= 1
        if q_size > 0:
            sift_down(q_node, q_key, q_pos, q_size, 0, q_node[q_size], q_key[q_size])
        if lazy:
            s, r, _, _ = _contract_node(
                v, sim_limit, False, start, size, cap, pool, fill, contracted, ws, target
            )
            prio = _priority(s, r, deleted[v], level[v])
            if q_size > 0 and prio > q_key[0]:
                q_pos[v] = NOT_REACHED
                q_size = push(q_node, q_key, q_pos, q_size, v, prio)
                continue
        while True:
            _, _, fill, full = _contract_node(
                v, limit, True, start, size, cap, pool, fill, contracted, ws, target
            )
            if not full:
                break
            grown = 2 * pool[0].shape[0]
            bigger = (
                np.empty(grown, dtype=np.int32),
                np.empty(grown, dtype=np.float64),
                np.empty(grown, dtype=np.float64),
                np.empty(grown, dtype=np.int32),
            )
            bigger[0][:fill] = pool[0][:fill]
            bigger[1][:fill] = pool[1][:fill]
            bigger[2][:fill] = pool[2][:fill]
            bigger[3][:fill] = pool[3][:fill]
            pool = bigger
        # emit v's remaining edges: they all lead to nodes contracted later
        p_nbr, p_t, p_l, p_mid = pool
        for d in range(2):
            lid = 2 * v + d
            lo = start[lid]
            for k in range(lo, lo + size[lid]):
                w = p_nbr[k]
                if contracted[w]:
                    continue
                if n_e == out_cap:
                    out_cap *= 2
                    e_src = _grow_i32(e_src, out_cap)
                    e_dst = _grow_i32(e_dst, out_cap)
                    e_t = _grow_f64(e_t, out_cap)
                    e_l = _grow_f64(e_l, out_cap)
                    e_mid = _grow_i32(e_mid, out_cap)
                if d == 0:
                    e_src[n_e] = v
                    e_dst[n_e] = w
                else:
                    e_src[n_e] = w
                    e_dst[n_e] = v
                e_t[n_e] = p_t[k]
                e_l[n_e] = p_l[k]
                e_mid[n_e] = p_mid[k]
                n_e += 1
                deleted[w] += 1
                if level[w] < level[v] + 1:
                    level[w] = level[v] + 1
        contracted[v] = True
        rank[v] = next_rank
        next_rank += 1
        # neighbour updates: their edge difference changed with the shortcuts just added
        p_nbr = pool[0]
        for d in range(2):
            lid = 2 * v + d
            lo = start[lid]
            for k in range(lo, lo + size[lid]):
                w = p_nbr[k]
                if contracted[w] or q_pos[w] < 0 or updated[w] == v:
                    continue  # a two-way neighbour is in both lists: updated once
                updated[w] = v
                _compact(2 * w, start, size, pool, contracted)  # drop the entries to v
                _compact(2 * w + 1, start, size, pool, contracted)
                s, r, _, _ = _contract_node(
                    w, sim_limit, False, start, size, cap, pool, fill, contracted, ws, target
                )
                key = _priority(s, r, deleted[w], level[w])
                slot = q_pos[w]
                if key < q_key[slot]:
                    q_size = push(q_node, q_key, q_pos, q_size, w, key)
                elif key > q_key[slot]:
                    sift_down(q_node, q_key, q_pos, q_size, slot, w, key)
    return rank, e_src, e_dst, e_t, e_l, e_mid, n_e


@kernel()
def _grow_i32(a: I32, new_size: int) -> I32:
    b = np.empty(new_size, dtype=np.int32)
    b[: a.shape[0]] = a
    return b


@kernel()
def _grow_f64(a: F64, new_size: int) -> F64:
    b = np.empty(new_size, dtype=np.float64)
    b[: a.shape[0]] = a
    return b


@kernel()
def _compact(
    lid: int, start: I64, size: I64, pool: tuple[I32, F64, F64, I32], contracted: np.ndarray
) -> None:
    """Drop the entries of list ``lid`` that lead to contracted nodes (in place, order kept)."""
    p_nbr, p_t, p_l, p_mid = pool
    lo = start[lid]
    j = lo
    for k in range(lo, lo + size[lid]):
        if not contracted[p_nbr[k]]:
            if j != k:
                p_nbr[j] = p_nbr[k]
                p_t[j] = p_t[k]
                p_l[j] = p_l[k]
                p_mid[j] = p_mid[k]
            j += 1
    size[lid] = j - lo
