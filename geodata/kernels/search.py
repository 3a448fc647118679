"""One multi-seed Dijkstra over the core graph, walking chains in line (the matrix's search).

Algorithm: Dijkstra over the *core* nodes with the shared indexed 4-ary heap
(:mod:`geodata.kernels.heap`). Only core nodes enter the heap; settling one relaxes its edges to
core neighbours as plain Dijkstra does (same CSR arrays) and walks each chain it opens
(:mod:`geodata.kernels.csr`), node by node, adding edge times left to right exactly as plain
Dijkstra would, stopping where an interior node already holds a time that is not worse (whatever
reached it went on from there at least as fast). Every node's time is therefore the same float as
plain Dijkstra's (the minimum over paths of the left-to-right sums), bit for bit. An interior node
is final once the core nodes whose chains pass through it are settled; those are the nodes counted
for the early stop (``core_target_mark``).

The length of the fastest path is carried along: it is updated only when the time strictly
improves, so it is the length of the first-found fastest path. Only nodes reached by a search are
reset afterwards (the ``touched`` list, see :mod:`geodata.kernels.many_to_many`).

Settled nodes need no test in the relaxation loop: a settled ``v`` has ``dist[v] <= du`` and
``du + w >= du`` for finite ``w >= 0`` in IEEE arithmetic, so ``du + w < dist[v]`` is false.
No fastmath: ``inf`` is the "not reached" sentinel.
"""

from __future__ import annotations

import numpy as np

from geodata.arrays import F64, I32, Mask
from geodata.kernels.heap import NOT_REACHED, SETTLED, push, sift_down
from geodata.kernels.jit import Arrays, kernel

__all__ = ["best_entry", "reset_touched", "search", "seed_search"]


@kernel()
def seed_search(
    is_core: Mask, seed_lo: int, seed_hi: int, seeds: Arrays, workspace: Arrays
) -> tuple[int, int]:
    """Give seeds ``seed_lo:seed_hi`` their times; return ``(heap size, nodes touched)``.

    ``seeds`` is ``(node, time, dist)``, ``workspace`` ``(dist, dist_m, pos, heap_node, heap_key,
    touched)``. Core seeds are queued; interior seeds only hold their time (they are expanded
    first, in seed order, by :func:`search`) and are marked :data:`SETTLED` as touched. Runs once
    per search, so its tuple result costs nothing measurable.
    """
    seed_node, seed_time, seed_dist = seeds
    dist, dist_m, pos, heap_node, heap_key, touched = workspace
    n_touched = 0
    size = 0
    for k in range(seed_lo, seed_hi):
        v = seed_node[k]
        t = seed_time[k]
        if t < dist[v]:
            dist[v] = t
            dist_m[v] = seed_dist[k]
            if pos[v] == NOT_REACHED:
                touched[n_touched] = v
                n_touched += 1
                if not is_core[v]:
                    pos[v] = SETTLED
            if is_core[v]:
                size = push(heap_node, heap_key, pos, size, v, t)
    return size, n_touched


@kernel()
def search(
    graph: Arrays,
    seed_lo: int,
    seed_hi: int,
    seeds: Arrays,
    stop: Arrays,
    workspace: Arrays,
    pred: I32 | None,
) -> int:
    """Run one multi-seed Dijkstra over the core graph; return how many nodes it reached.

    ``graph`` is :meth:`geodata.prepared.PreparedGraph.kernel_arrays`, ``seeds`` ``(node, time,
    dist)`` (this search's rows are ``seed_lo:seed_hi``), ``stop`` ``(core_target_mark,
    n_core_targets)``, ``workspace`` ``(dist, dist_m, pos, heap_node, heap_key, touched)``.
    ``pred`` is ``None`` for matrices: numba compiles that variant with every ``pred`` branch
    pruned (``pred is None`` is known at compile time), so it is the plain matrix search. The
    path search passes an int32 array and gets, for every node whose time was set, the node it
    was reached from (``-1`` for a seed): the links of the first-found fastest path, the same
    search and so the same times as the matrix's.

    On entry ``dist`` is ``inf`` and ``pos`` is ``NOT_REACHED`` everywhere. On return ``dist`` /
    ``dist_m`` hold final values for every node whose value is needed: every core target and
    every interior node whose chain ends (``core_target_mark``) have been settled and expanded.

    The nodes expanded are first the interior seeds (still holding their seed time), then the
    core nodes in heap order. Expanding ``u`` relaxes each edge ``e`` leaving it: ``head[e]`` is
    ``~v`` when it leads to a core node ``v`` (relaxed through the heap, exactly as plain
    Dijkstra), else the walk slot of ``e``, and the chain is walked node by node, interior nodes
    updated in place, until one already holds a time ``<= t`` or the core node ending the chain.

    Its body is kept at ~65 lines on purpose, for measured speed: the relaxation and the chain
    walk are written out here, not in helpers, because they update several counters at once
    (numba's tuple-returning inline helpers made this kernel 60 % slower on a grid). Of the shared
    heap's helpers, :func:`~geodata.kernels.heap.push` is used (same speed: CPU-time ratio to the
    previous kernel 0.96-1.02 on Monaco, Andorra and a 250x250 grid, interleaved A/B runs) but the
    pop is written out: a ``remove_min`` helper here measured 18-24 % slower. The seeding is a
    helper called once per search (:func:`seed_search`, no measurable cost).
    """
    indptr, head, weight, length, is_core, walk_node, walk_time, walk_len = graph
    seed_node, seed_time, _ = seeds
    core_target_mark, n_core_targets = stop
    dist, dist_m, pos, heap_node, heap_key, touched = workspace
    size, n_touched = seed_search(is_core, seed_lo, seed_hi, seeds, workspace)
    if pred is not None:
        for k in range(seed_lo, seed_hi):
            pred[seed_node[k]] = -1
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
                sift_down(heap_node, heap_key, pos, size, 0, heap_node[size], heap_key[size])
            popped = True
        else:
            break
        lu = dist_m[u]
        for e in range(indptr[u], indptr[u + 1]):
            h = head[e]
            t = du + weight[e]
            prev = u
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
                    if pred is not None:
                        pred[x] = prev
                    prev = x
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
            if pred is not None:
                pred[v] = prev
            if pos[v] == NOT_REACHED:
                touched[n_touched] = v
                n_touched += 1
            size = push(heap_node, heap_key, pos, size, v, t)
        if popped and core_target_mark[u]:  # its chains are walked: their nodes are final
            remaining -= 1
    return n_touched


@kernel(inline="always")
def best_entry(lo: int, hi: int, entry_node: I32, entry_time: F64, dist: F64) -> int:
    """The entry ``k`` in ``lo:hi`` with the least ``dist[entry_node[k]] + entry_time[k]``.

    The first one on a tie; ``-1`` when none is reached (all ``inf``). Inlined: a call per matrix
    cell cost ~20 % on Monaco.
    """
    best = -1
    best_time = np.inf
    for k in range(lo, hi):
        t = dist[entry_node[k]] + entry_time[k]
        if t < best_time:
            best_time = t
            best = k
    return best


@kernel(inline="always")
def reset_touched(touched: I32, n_touched: int, dist: F64, pos: I32) -> None:
    """Make ``dist`` ``inf`` and ``pos`` ``NOT_REACHED`` again at the nodes a search touched."""
    for k in range(n_touched):
        v = touched[k]
        dist[v] = np.inf
        pos[v] = NOT_REACHED
