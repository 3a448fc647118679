"""The fastest path from seeds to the best entry, with predecessor links (the leg search).

A plain multi-seed Dijkstra over every node (no chain walking: a path needs each node's
predecessor) with the shared indexed 4-ary heap (:mod:`geodata.kernels.heap`) and the matrix
search's seeding (:func:`geodata.kernels.search.seed_search`, every node treated as core) and
entry choice (:func:`geodata.kernels.search.best_entry`). It stops as soon as the target's entry
nodes are settled. Times are ``seed + edges... + entry`` summed left to right, as the matrix
kernel does, so every time equals the matrix's bit for bit; the length is carried along the
first-found fastest path (updated only on strictly better times).
"""

from __future__ import annotations

import numpy as np

from geodata.arrays import I32
from geodata.kernels.heap import NOT_REACHED, push, remove_min
from geodata.kernels.jit import Arrays, kernel
from geodata.kernels.search import best_entry, reset_touched, seed_search

__all__ = ["leg_search"]


@kernel()
def _distinct(nodes: I32) -> int:
    """How many distinct values ``nodes`` holds (a handful of entries: quadratic is fine)."""
    count = 0
    for k in range(nodes.shape[0]):
        first = True
        for k2 in range(k):
            if nodes[k2] == nodes[k]:
                first = False
        if first:
            count += 1
    return count


@kernel()
def _expand(
    graph: Arrays, entry_node: I32, size: int, n_touched: int, workspace: Arrays, pred: I32
) -> int:
    """Settle nodes in heap order until every entry node is settled; return the nodes touched."""
    indptr, indices, weight, length = graph
    dist, dist_m, pos, heap_node, heap_key, touched = workspace
    remaining = _distinct(entry_node)  # distinct entry nodes not yet settled
    while size > 0 and remaining > 0:
        u = heap_node[0]
        du = heap_key[0]
        size = remove_min(heap_node, heap_key, pos, size)
        for k in range(entry_node.shape[0]):
            if entry_node[k] == u:
                remaining -= 1
                break
        if remaining == 0:
            break
        lu = dist_m[u]
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            t = du + weight[e]
            if t < dist[v]:
                dist[v] = t
                dist_m[v] = lu + length[e]
                pred[v] = u
                if pos[v] == NOT_REACHED:
                    touched[n_touched] = v
                    n_touched += 1
                size = push(heap_node, heap_key, pos, size, v, t)
    return n_touched


@kernel()
def _trace(pred: I32, last: int, path_out: I32) -> int:
    """Write the path ending at ``last`` (first node first) to ``path_out``; return its length."""
    n_path = 0
    v = last
    while v >= 0:
        n_path += 1
        v = pred[v]
    v = last
    for i in range(n_path - 1, -1, -1):
        path_out[i] = v
        v = pred[v]
    return n_path


@kernel()
def leg_search(
    graph: Arrays, seeds: Arrays, entries: Arrays, workspace: Arrays, path: Arrays
) -> tuple[float, float, int]:
    """Fastest path from the seeds to the best entry; return ``(time, dist, n_path_nodes)``.

    ``graph`` is ``(indptr, indices, weight, length)`` (a :class:`geodata.prepared.CsrGraph`),
    ``seeds`` / ``entries`` the ``(node, time, dist)`` arrays of one group, ``workspace``
    ``(dist, dist_m, pos, heap_node, heap_key, touched)`` and ``path`` ``(all_core, pred,
    path_out)``, ``all_core`` an all-True mask (every node is queued, none walked). On entry
    ``dist`` is ``inf`` and ``pos`` is ``NOT_REACHED`` everywhere, and so again on return. The
    path's nodes are written to ``path_out[:n_path_nodes]`` (first seed node first);
    ``inf, inf, 0`` when unreachable.
    """
    all_core, pred, path_out = path
    seed_node = seeds[0]
    entry_node, entry_time, entry_dist = entries
    dist, dist_m, pos, _, _, touched = workspace
    size, n_touched = seed_search(all_core, 0, seed_node.shape[0], seeds, workspace)
    for k in range(seed_node.shape[0]):
        pred[seed_node[k]] = -1
    n_touched = _expand(graph, entry_node, size, n_touched, workspace, pred)
    best_time, best_dist, n_path = np.inf, np.inf, 0
    k = best_entry(0, entry_node.shape[0], entry_node, entry_time, dist)
    if k >= 0:
        v = entry_node[k]
        best_time = dist[v] + entry_time[k]
        best_dist = dist_m[v] + entry_dist[k]
        n_path = _trace(pred, v, path_out)
    reset_touched(touched, n_touched, dist, pos)
    return best_time, best_dist, n_path
