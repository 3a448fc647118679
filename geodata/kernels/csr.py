"""The chain layout of a CSR road graph: core nodes and the walks between them (numba kernels).

A full-resolution road graph is mostly chains of interior nodes (shape points of a street between
two junctions: 83-92 % of the nodes of the OSM extracts in the benchmarks). :func:`core_mask`
tells the junctions (core nodes) from the interior nodes, and :func:`build_walks` lays every chain
out in consecutive *walk slots*, so that the matrix search (:mod:`geodata.kernels.search`) walks a
chain in line instead of queueing each of its nodes. :mod:`geodata.prepared` calls both once per
graph. Array names and dtypes are those of :mod:`geodata.kernels.many_to_many`.
"""

from __future__ import annotations

import numpy as np

from geodata.arrays import F64, I32, I64, Mask
from geodata.kernels.jit import kernel

__all__ = ["build_walks", "core_mask"]


@kernel()
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


@kernel()
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
