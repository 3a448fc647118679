"""The fastest path from seeds to the best entry: the matrix's search with predecessor links.

A leg is one matrix cell whose path is wanted too: the search is the matrix's own
(:func:`geodata.kernels.search.search`, over the core graph with chains walked in line), run with
a ``pred`` array so that it records where each node was reached from, and the entry is chosen as
the matrix does (:func:`geodata.kernels.search.best_entry`). So a leg's time and length are the
matrix entry's, bit for bit, and there is one Dijkstra in geodata, not two.
"""

from __future__ import annotations

import numpy as np

from geodata.arrays import I32
from geodata.kernels.jit import Arrays, kernel
from geodata.kernels.search import best_entry, reset_touched, search

__all__ = ["leg_search"]


@kernel()
def _trace(pred: I32, last: int, path_out: I32) -> int:
    """Write the path ending at ``last`` (first node first) to ``path_out``; return its length.

    Predecessor links never form a cycle (a node only takes a predecessor that strictly improves
    its time, and times never grow along the links); the count is capped at the node count all
    the same.
    """
    n_path = 0
    v = last
    while v >= 0 and n_path < pred.shape[0]:
        n_path += 1
        v = pred[v]
    v = last
    for i in range(n_path - 1, -1, -1):
        path_out[i] = v
        v = pred[v]
    return n_path


@kernel()
def leg_search(
    graph: Arrays, seeds: Arrays, entries: Arrays, stop: Arrays, workspace: Arrays, path: Arrays
) -> tuple[float, float, int]:
    """Fastest path from the seeds to the best entry; return ``(time, dist, n_path_nodes)``.

    ``graph`` is :meth:`geodata.prepared.PreparedGraph.kernel_arrays`, ``seeds`` / ``entries``
    the ``(node, time, dist)`` arrays of one group, ``stop`` ``(core_target_mark,
    n_core_targets)`` of the entries (:meth:`geodata.prepared.Chains.core_targets`),
    ``workspace`` ``(dist, dist_m, pos, heap_node, heap_key, touched)`` and ``path``
    ``(pred, path_out)``. On entry ``dist`` is ``inf`` and ``pos`` is ``NOT_REACHED``
    everywhere, and so again on return. The path's nodes are written to
    ``path_out[:n_path_nodes]`` (first seed node first); ``inf, inf, 0`` when unreachable.
    """
    pred, path_out = path
    entry_node, entry_time, entry_dist = entries
    dist, dist_m, pos, _, _, touched = workspace
    n_touched = search(graph, 0, seeds[0].shape[0], seeds, stop, workspace, pred)
    best_time, best_dist, n_path = np.inf, np.inf, 0
    k = best_entry(0, entry_node.shape[0], entry_node, entry_time, dist)
    if k >= 0:
        v = entry_node[k]
        best_time = dist[v] + entry_time[k]
        best_dist = dist_m[v] + entry_dist[k]
        n_path = _trace(pred, v, path_out)
    reset_touched(touched, n_touched, dist, pos)
    return best_time, best_dist, n_path
