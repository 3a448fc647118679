"""The indexed 4-ary min-heap (with decrease-key) shared by the matrix and the path searches.

The heap lives in plain arrays owned by the caller: ``heap_node[:size]`` / ``heap_key[:size]``
hold the queued nodes and their keys side by side (sifting touches only contiguous memory), and
``pos[node]`` is the node's slot, :data:`NOT_REACHED` (``-1``) for a node never queued, or
:data:`SETTLED` (``-2``) once popped (the matrix search also marks touched interior nodes so).

Every function is inlined at numba-IR level into the searches (``inline="always"``) and returns at
most one integer: an earlier measurement found a tuple-returning inline helper 60 % slower in the
hot relaxation loop on a grid. The search (:mod:`geodata.kernels.search`, for matrices and paths
alike) uses :func:`push` and :func:`sift_down` but writes the pop out: a ``remove_min`` helper
returning the new size measured 18-24 % slower there on Monaco and Andorra. The 4-ary layout and
the alternatives measured against it (2-/8-ary, a lazy heap without decrease-key) are listed with
their numbers in :mod:`benchmarks.matrix`.
"""

from __future__ import annotations

from geodata.arrays import F64, I32
from geodata.kernels.jit import kernel

__all__ = [
    "ARITY",
    "NOT_REACHED",
    "SETTLED",
    "place",
    "push",
    "sift_down",
    "sift_up",
]

NOT_REACHED = -1
SETTLED = -2
ARITY = 4


@kernel(inline="always")
def place(heap_node: I32, heap_key: F64, pos: I32, i: int, node: int, key: float) -> None:
    """Store ``node`` with ``key`` at slot ``i``."""
    heap_node[i] = node
    heap_key[i] = key
    pos[node] = i


@kernel(inline="always")
def sift_up(heap_node: I32, heap_key: F64, pos: I32, i: int, node: int, key: float) -> None:
    """Move the hole at slot ``i`` up until ``key`` fits, then store ``node`` there."""
    while i > 0:
        parent = (i - 1) >> 2  # == (i - 1) // ARITY for i > 0, without floor-division fix-ups
        parent_key = heap_key[parent]
        if parent_key <= key:
            break
        place(heap_node, heap_key, pos, i, heap_node[parent], parent_key)
        i = parent
    place(heap_node, heap_key, pos, i, node, key)


@kernel(inline="always")
def sift_down(
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
        place(heap_node, heap_key, pos, i, heap_node[best], best_key)
        i = best
    place(heap_node, heap_key, pos, i, node, key)


@kernel(inline="always")
def push(heap_node: I32, heap_key: F64, pos: I32, size: int, node: int, key: float) -> int:
    """Queue ``node`` with ``key``, or lower its key if it is queued; return the new heap size.

    ``pos[node]`` must be :data:`NOT_REACHED` or a heap slot whose key is ``>= key``.
    """
    p = pos[node]
    if p == NOT_REACHED:
        sift_up(heap_node, heap_key, pos, size, node, key)
        return size + 1
    sift_up(heap_node, heap_key, pos, p, node, key)
    return size
