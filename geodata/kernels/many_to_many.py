"""numba kernels for many-to-many fastest paths on a prepared CSR road graph (see geodata.matrix).

Every kernel takes plain, already validated arrays and writes into caller-allocated buffers;
:mod:`geodata.matrix` validates inputs once, normalises dtypes and dispatches. It passes the input
arrays read-only and always in these dtypes, so each kernel has exactly one compiled signature,
the one :func:`geodata.matrix.warm_up` compiles. Arrays come grouped in tuples:

``graph`` = ``(indptr, head, weight, length, is_core, walk_node, walk_time, walk_len)``
(:meth:`geodata.prepared.PreparedGraph.kernel_arrays`), ``sources`` / ``targets`` =
``(ptr, node, time, dist)`` (a :class:`geodata.seeds.Seeds`), ``stop`` =
``(core_target_mark, n_core_targets)``, ``workspace`` =
``(dist, dist_m, pos, heap_node, heap_key, touched)``, ``out`` = ``(out_time, out_dist)``:

====================  =======  ==================================================================
array                 dtype    meaning
====================  =======  ==================================================================
``indptr``            int64    CSR row pointer, ``n + 1`` entries; edges of ``u`` are
                               ``indptr[u]:indptr[u + 1]``
``weight``            float64  edge travel time (s), finite, ``>= 0``
``length``            float64  edge length (m), finite, ``>= 0``
``head``              int32    ``~v`` if edge ``e`` leads to core node ``v``, else its walk slot
``is_core``           bool     the node is a junction (see :func:`geodata.kernels.csr.core_mask`)
``walk_node``         int32    node reached at a walk slot; ``~node`` for a core node
``walk_time``,        float64  time and length of the edge that reaches it
``walk_len``
``ptr``               int64    ragged groups: group ``g`` owns rows ``ptr[g]:ptr[g + 1]``
``node``              int32    seed / entry node
``time``              float64  seed initial time / entry extra time (s)
``dist``              float64  seed initial distance / entry extra distance (m)
``core_target_mark``  bool     core nodes that must be settled before every target is final
workspace ``dist``,   float64  per-worker workspaces, shape ``(n_workers, n)``, any content
``dist_m``,
``heap_key``
workspace ``pos``,    int32    (idem)
``heap_node``,
``touched``
``out_time``,         float64  results, shape ``(n_sources, n_targets)``
``out_dist``
====================  =======  ==================================================================

One search per source (:func:`geodata.kernels.search.search`); workspaces are allocated once per
worker, and only the nodes a search reached are reset after it (its ``touched`` list). Measured
alternatives (2-/8-ary heaps, a lazy heap without decrease-key, packed edge/node records, int64
heap indices) are listed with their numbers in :mod:`benchmarks.matrix`.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from geodata.arrays import F64
from geodata.kernels.heap import NOT_REACHED
from geodata.kernels.jit import Arrays, kernel
from geodata.kernels.search import best_entry, reset_touched, search

__all__ = ["many_to_many_parallel", "many_to_many_serial"]


@kernel(inline="always")
def _best_entries(
    row: int, targets: Arrays, dist: F64, dist_m: F64, out_time: F64, out_dist: F64
) -> None:
    """Fill output row ``row``: the best entry of every target group, by time (``inf`` if none).

    Inlined: as a call it made the whole kernel ~20 % slower on Monaco and Andorra.
    """
    entry_ptr, entry_node, entry_time, entry_dist = targets
    for j in range(entry_ptr.shape[0] - 1):
        k = best_entry(entry_ptr[j], entry_ptr[j + 1], entry_node, entry_time, dist)
        if k < 0:
            out_time[row, j] = np.inf
            out_dist[row, j] = np.inf
        else:
            v = entry_node[k]
            out_time[row, j] = dist[v] + entry_time[k]
            out_dist[row, j] = dist_m[v] + entry_dist[k]


@kernel()
def _rows(
    worker: int, row_step: int, graph: Arrays, sources: Arrays, targets: Arrays, stop: Arrays,
    workspace: Arrays, out: Arrays,
) -> None:  # fmt: skip
    """Fill rows ``worker, worker + row_step, ...`` of the outputs with workspace row ``worker``."""
    seed_ptr, seed_node, seed_time, seed_dist = sources
    seeds = (seed_node, seed_time, seed_dist)
    own = (
        workspace[0][worker], workspace[1][worker], workspace[2][worker],
        workspace[3][worker], workspace[4][worker], workspace[5][worker],
    )  # fmt: skip
    dist, dist_m, pos, _, _, touched = own
    dist[:] = np.inf
    pos[:] = NOT_REACHED
    for i in range(worker, seed_ptr.shape[0] - 1, row_step):
        n_touched = search(graph, seed_ptr[i], seed_ptr[i + 1], seeds, stop, own, None)
        _best_entries(i, targets, dist, dist_m, out[0], out[1])
        reset_touched(touched, n_touched, dist, pos)


@kernel()
def many_to_many_serial(
    graph: Arrays, sources: Arrays, targets: Arrays, stop: Arrays, workspace: Arrays, out: Arrays
) -> None:
    """Fastest-path time and its length for every (source group, target group), one thread.

    Uses workspace row 0. ``out = (out_time, out_dist)``: ``out_time[i, j]`` is the minimum over
    entries ``k`` of target ``j`` of ``time_i(entry_node[k]) + entry_time[k]``;
    ``out_dist[i, j]`` the matching distance; both ``inf`` when no entry is reachable.
    """
    _rows(0, 1, graph, sources, targets, stop, workspace, out)


@kernel(parallel=True)
def many_to_many_parallel(
    graph: Arrays, sources: Arrays, targets: Arrays, stop: Arrays, workspace: Arrays, out: Arrays
) -> None:
    """Same as :func:`many_to_many_serial`, sources spread over ``workspace[0].shape[0]`` workers.

    Worker ``b`` owns workspace row ``b`` and computes output rows ``b, b + W, b + 2W, ...``
    (interleaved, so sources sorted by cost still balance). Call with
    ``numba.get_num_threads() == W`` so that each thread runs exactly one worker.
    """
    n_workers = workspace[0].shape[0]
    for b in prange(n_workers):
        _rows(b, n_workers, graph, sources, targets, stop, workspace, out)
