"""Many-to-many travel-time and distance matrices on a CSR road graph.

The graph is given as scipy-style CSR arrays: the edges leaving node ``u`` are
``indptr[u]:indptr[u + 1]``, ``indices[e]`` is the node edge ``e`` leads to, ``travel_time_s[e]``
its travel time and ``length_m[e]`` its length. Parallel edges are allowed (the fastest one wins).

Two entry points:

* :func:`many_to_many` for node-to-node matrices: ``sources`` and ``targets`` are node ids;
* :func:`many_to_many_seeded` for points that lie *on* edges: each source is a small group of seeds
  ``(node, initial time, initial distance)`` (a snapped point reaches the endpoints of its edge
  with partial costs), each target a group of entries ``(node, extra time, extra distance)``.
  Groups are ragged arrays in a :class:`Seeds`.

``durations_s[i, j]`` is the fastest time from source ``i`` to target ``j``; ``distances_m[i, j]``
the length of that fastest path (of the first one found when several tie). Unreachable pairs are
``inf`` in both; see :attr:`MatrixResult.unreachable` and :func:`unreachable_pairs`.

Note that a seeded source and a seeded target on the *same edge* are not connected directly along
that edge (only through its endpoints); the caller handles that special case if it matters.

Threads: ``threads=None`` uses all of numba's threads (``numba.config.NUMBA_NUM_THREADS``, the
number of cores unless ``NUMBA_NUM_THREADS`` is set), ``threads=1`` the serial kernel. The thread
count is set per call and per calling thread (numba keeps it thread-local), so concurrent calls
from a gRPC thread pool do not interfere. The threading layer is pinned in
:mod:`geodata.kernels.config` (``omp`` here; ``workqueue`` is unsafe for concurrent calls). The
kernels release the GIL. Call :func:`warm_up` once at start-up so that no request pays for JIT
compilation (cached on disk after the first process, ``cache=True``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numba
import numpy as np
import numpy.typing as npt

from geodata.kernels import dijkstra as _kernels
from geodata.kernels.config import PARALLEL_THREADSAFE

__all__ = [
    "MatrixInputError",
    "MatrixResult",
    "Seeds",
    "many_to_many",
    "many_to_many_seeded",
    "max_threads",
    "unreachable_pairs",
    "warm_up",
]

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

MAX_NODES = int(np.iinfo(np.int32).max)
"""Node ids are stored as int32 inside the kernels (half the memory traffic of int64)."""


class MatrixInputError(ValueError):
    """Arrays given to a matrix function violate its contract; the message lists every problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid matrix input: " + "; ".join(self.problems))


# --------------------------------------------------------------------------------------------- #
# Data containers
# --------------------------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)
class MatrixResult:
    """Travel times and distances between every source (row) and target (column).

    Attributes
    ----------
    durations_s : ndarray of float64, shape (n_sources, n_targets)
        Fastest travel time in seconds; ``inf`` when the target cannot be reached.
    distances_m : ndarray of float64, shape (n_sources, n_targets)
        Length in metres of the fastest path found; ``inf`` exactly where ``durations_s`` is.
    """

    durations_s: F64
    distances_m: F64

    def __post_init__(self) -> None:
        if self.durations_s.ndim != 2 or self.durations_s.shape != self.distances_m.shape:
            raise ValueError(
                "durations_s and distances_m must be 2-D arrays of the same shape, got "
                f"{self.durations_s.shape} and {self.distances_m.shape}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_sources, n_targets)``."""
        return cast("tuple[int, int]", self.durations_s.shape)

    @property
    def unreachable(self) -> npt.NDArray[np.bool_]:
        """Boolean mask, True where the target cannot be reached from the source."""
        return np.isinf(self.durations_s)


def unreachable_pairs(result: MatrixResult) -> npt.NDArray[np.intp]:
    """Return the ``(source_index, target_index)`` pairs with no path, shape ``(k, 2)``.

    Examples
    --------
    >>> import numpy as np
    >>> r = MatrixResult(np.array([[0.0, np.inf]]), np.array([[0.0, np.inf]]))
    >>> unreachable_pairs(r).tolist()
    [[0, 1]]
    """
    return np.argwhere(result.unreachable)


@dataclass(frozen=True, eq=False)
class Seeds:
    """Ragged groups of (node, time, distance) rows: source seeds or target entries.

    Group ``g`` owns rows ``ptr[g]:ptr[g + 1]``. For a *source*, a row is a seed: the search starts
    at ``node`` with ``time_s`` already spent and ``dist_m`` already driven. For a *target*, a row
    is an entry point: reaching ``node`` and then spending ``time_s`` / ``dist_m`` more arrives at
    the target; the best entry (by time) wins. A group may be empty (its row or column is then all
    ``inf``). The arrays are validated and stored as read-only copies in the kernels' dtypes.

    Attributes
    ----------
    ptr : ndarray of int64, shape (n_groups + 1,)
        Group boundaries, ``ptr[0] == 0``, non-decreasing, ``ptr[-1] == len(node)``.
    node : ndarray of int32, shape (n_rows,)
        Node ids.
    time_s : ndarray of float64, shape (n_rows,)
        Initial (seed) or extra (entry) time, finite and ``>= 0``.
    dist_m : ndarray of float64, shape (n_rows,)
        Initial (seed) or extra (entry) distance, finite and ``>= 0``.

    Examples
    --------
    A point two thirds along edge ``3 -> 7`` (60 s, 900 m) reaches node 7 after 20 s and 300 m:

    >>> s = Seeds.from_groups([[(7, 20.0, 300.0)], [(1, 0.0, 0.0), (2, 5.0, 40.0)]])
    >>> len(s), s.ptr.tolist()
    (2, [0, 1, 3])
    """

    ptr: I64
    node: I32
    time_s: F64
    dist_m: F64

    def __post_init__(self) -> None:
        problems: list[str] = []
        ptr = _as_int_array(self.ptr, "ptr", problems).astype(np.int64, copy=False)
        node = _as_int_array(self.node, "node", problems)
        time_s = _as_float_array(self.time_s, "time_s", problems)
        dist_m = _as_float_array(self.dist_m, "dist_m", problems)
        if problems:
            raise MatrixInputError(problems)
        n_rows = node.shape[0]
        if time_s.shape[0] != n_rows or dist_m.shape[0] != n_rows:
            problems.append(
                f"node, time_s and dist_m must have the same length, got {n_rows}, "
                f"{time_s.shape[0]} and {dist_m.shape[0]}"
            )
        if ptr.shape[0] < 1:
            problems.append("ptr must have at least one entry (n_groups + 1)")
        else:
            if ptr[0] != 0:
                problems.append(f"ptr[0] must be 0, got {ptr[0]}")
            if ptr[-1] != n_rows:
                problems.append(f"ptr[-1] must equal the number of rows {n_rows}, got {ptr[-1]}")
            if np.any(np.diff(ptr) < 0):
                problems.append("ptr must be non-decreasing")
        if n_rows and (node.min() < 0 or node.max() > MAX_NODES):
            problems.append(f"node ids must be in [0, {MAX_NODES}]")
        _check_costs(time_s, "time_s", problems)
        _check_costs(dist_m, "dist_m", problems)
        if problems:
            raise MatrixInputError(problems)
        object.__setattr__(self, "ptr", _read_only(ptr))
        object.__setattr__(self, "node", _read_only(node.astype(np.int32, copy=False)))
        object.__setattr__(self, "time_s", _read_only(time_s))
        object.__setattr__(self, "dist_m", _read_only(dist_m))

    def __len__(self) -> int:
        """Number of groups."""
        return int(self.ptr.shape[0] - 1)

    @classmethod
    def from_nodes(cls, nodes: npt.ArrayLike) -> Seeds:
        """One group per node, with zero time and distance (plain node-to-node matrices)."""
        problems: list[str] = []
        node = _as_int_array(nodes, "nodes", problems)
        if problems:
            raise MatrixInputError(problems)
        n = node.shape[0]
        zeros = np.zeros(n, dtype=np.float64)
        return cls(np.arange(n + 1, dtype=np.int64), cast(I32, node), zeros, zeros)

    @classmethod
    def from_groups(cls, groups: Sequence[Sequence[tuple[int, float, float]]]) -> Seeds:
        """Build from a list of groups, each a list of ``(node, time_s, dist_m)`` tuples."""
        ptr = np.zeros(len(groups) + 1, dtype=np.int64)
        ptr[1:] = np.cumsum([len(g) for g in groups])
        rows = [row for g in groups for row in g]
        node = np.array([r[0] for r in rows], dtype=np.int64)
        time_s = np.array([r[1] for r in rows], dtype=np.float64)
        dist_m = np.array([r[2] for r in rows], dtype=np.float64)
        return cls(ptr, cast(I32, node), time_s, dist_m)


# --------------------------------------------------------------------------------------------- #
# Validation helpers
# --------------------------------------------------------------------------------------------- #


def _read_only(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A read-only copy (seed arrays are small; the copy makes validation stick)."""
    out = np.array(arr, copy=True)
    out.flags.writeable = False
    return out


def _read_only_view(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A read-only view without copying.

    numba compiles a separate specialisation for read-only arrays (``RoadNetwork`` freezes its
    arrays); passing every input array read-only keeps a single compiled signature per kernel, the
    one :func:`warm_up` compiles.
    """
    out = arr.view()
    out.flags.writeable = False
    return out


def _as_int_array(values: npt.ArrayLike, name: str, problems: list[str]) -> npt.NDArray[Any]:
    """A contiguous 1-D integer array, in its own dtype (no copy when already contiguous)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        problems.append(f"{name} must be 1-D, got shape {arr.shape}")
        return np.zeros(0, dtype=np.int64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        problems.append(f"{name} must have an integer dtype, got {arr.dtype}")
        return np.zeros(0, dtype=np.int64)
    return np.ascontiguousarray(arr)


def _as_float_array(values: npt.ArrayLike, name: str, problems: list[str]) -> F64:
    arr = np.asarray(values)
    if arr.ndim != 1:
        problems.append(f"{name} must be 1-D, got shape {arr.shape}")
        return np.zeros(0)
    if arr.size == 0:
        return np.zeros(0)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        problems.append(f"{name} must have a real numeric dtype, got {arr.dtype}")
        return np.zeros(0)
    return np.ascontiguousarray(arr, dtype=np.float64)


def _check_costs(values: F64, name: str, problems: list[str]) -> None:
    if values.size == 0:
        return
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        problems.append(f"{name} must be finite, {name}[{bad}] = {values[bad]}")
    elif values.min() < 0:
        bad = int(np.argmin(values))
        problems.append(f"{name} must be >= 0, {name}[{bad}] = {values[bad]}")


@dataclass(frozen=True)
class _Graph:
    indptr: I64
    indices: I32
    weight: F64
    length: F64

    @property
    def n_nodes(self) -> int:
        return int(self.indptr.shape[0] - 1)


def _validate_graph(
    indptr: npt.ArrayLike,
    indices: npt.ArrayLike,
    travel_time_s: npt.ArrayLike,
    length_m: npt.ArrayLike,
) -> _Graph:
    """Check the CSR invariants and convert to kernel dtypes (no copy when they already match)."""
    problems: list[str] = []
    ptr = _as_int_array(indptr, "indptr", problems).astype(np.int64, copy=False)
    idx = _as_int_array(indices, "indices", problems)
    weight = _as_float_array(travel_time_s, "travel_time_s", problems)
    length = _as_float_array(length_m, "length_m", problems)
    if problems:
        raise MatrixInputError(problems)
    n_edges = idx.shape[0]
    if ptr.shape[0] < 1:
        problems.append("indptr must have n_nodes + 1 >= 1 entries")
        raise MatrixInputError(problems)
    n_nodes = ptr.shape[0] - 1
    if n_nodes > MAX_NODES:
        problems.append(f"at most {MAX_NODES} nodes are supported, got {n_nodes}")
    if n_edges > MAX_NODES:
        problems.append(f"at most {MAX_NODES} edges are supported, got {n_edges}")
    if ptr[0] != 0:
        problems.append(f"indptr[0] must be 0, got {ptr[0]}")
    if ptr[-1] != n_edges:
        problems.append(f"indptr[-1] must equal len(indices) = {n_edges}, got {ptr[-1]}")
    if n_nodes and np.any(ptr[1:] < ptr[:-1]):
        problems.append("indptr must be non-decreasing")
    if weight.shape[0] != n_edges:
        problems.append(
            f"travel_time_s must have one entry per edge ({n_edges}), got {weight.shape[0]}"
        )
    if length.shape[0] != n_edges:
        problems.append(f"length_m must have one entry per edge ({n_edges}), got {length.shape[0]}")
    if n_edges and (idx.min() < 0 or idx.max() >= n_nodes):
        bad = int(np.flatnonzero((idx < 0) | (idx >= n_nodes))[0])
        problems.append(f"indices must be node ids in [0, {n_nodes}), indices[{bad}] = {idx[bad]}")
    _check_costs(weight, "travel_time_s", problems)
    _check_costs(length, "length_m", problems)
    if problems:
        raise MatrixInputError(problems)
    return _Graph(
        _read_only_view(ptr),
        _read_only_view(idx.astype(np.int32, copy=False)),
        _read_only_view(weight),
        _read_only_view(length),
    )


@dataclass(frozen=True)
class _Chains:
    """The graph as chains between core nodes (see :func:`geodata.kernels.dijkstra.build_walks`)."""

    is_core: npt.NDArray[np.bool_]
    head: I32
    walk_node: I32
    walk_time: F64
    walk_len: F64
    origin_a: I32
    origin_b: I32

    def core_targets(self, nodes: I32) -> tuple[npt.NDArray[np.bool_], int]:
        """The core nodes whose settling makes every node of ``nodes`` final, and their count.

        A core node is final when settled; an interior node once the core nodes whose chains
        pass through it are settled (their chains are walked right away).
        """
        mark = np.zeros(self.is_core.shape[0], dtype=np.bool_)
        core = self.is_core[nodes]
        mark[nodes[core]] = True
        interior = nodes[~core]
        for origin in (self.origin_a[interior], self.origin_b[interior]):
            mark[origin[origin >= 0]] = True
        return mark, int(np.count_nonzero(mark))


def _chains(graph: _Graph) -> _Chains:
    """Split ``graph`` into core nodes and the chains of interior nodes between them, O(edges).

    Road graphs at full resolution are mostly interior nodes (83-92 % of the OSM extracts in the
    benchmarks): shape points of a street with no junction. Walking them in line instead of
    queueing each one is what makes the kernels fast; the arithmetic along a chain is the same
    left-to-right sum as plain Dijkstra's, so the results are bit-identical.
    """
    n, m = graph.n_nodes, graph.indices.shape[0]
    is_core = np.empty(n, dtype=np.bool_)
    _kernels.core_mask(graph.indptr, graph.indices, is_core)
    edge_slot = np.empty(m, dtype=np.int64)
    walk_node = np.empty(m, dtype=np.int32)
    walk_time = np.empty(m, dtype=np.float64)
    walk_len = np.empty(m, dtype=np.float64)
    origin_a = np.empty(n, dtype=np.int32)
    origin_b = np.empty(n, dtype=np.int32)
    for _ in range(2):
        args = (graph.indptr, graph.indices, graph.weight, graph.length, is_core)
        placed = _kernels.build_walks(
            *args, edge_slot, walk_node, walk_time, walk_len, origin_a, origin_b
        )
        if placed == m:
            break
        # Cycles made only of interior nodes (a ring road on its own): their nodes become core.
        tails = np.repeat(np.arange(n), np.diff(graph.indptr))
        is_core[tails[edge_slot < 0]] = True
    else:  # pragma: no cover - the second pass always places every edge
        raise RuntimeError("road graph chains could not be laid out")
    # The first step along an edge reads the CSR arrays, as plain Dijkstra does; the head
    # says whether it reaches a core node (~node) or opens a chain (the edge's walk slot).
    head = np.where(is_core[graph.indices], ~graph.indices, edge_slot).astype(np.int32)
    return _Chains(
        _read_only_view(is_core),
        _read_only_view(head),
        _read_only_view(walk_node),
        _read_only_view(walk_time),
        _read_only_view(walk_len),
        origin_a,
        origin_b,
    )


def _check_nodes(seeds: Seeds, name: str, n_nodes: int, problems: list[str]) -> None:
    node = seeds.node
    if node.size and (int(node.min()) < 0 or int(node.max()) >= n_nodes):
        bad = int(np.flatnonzero((node < 0) | (node >= n_nodes))[0])
        problems.append(
            f"{name}.node must be node ids in [0, {n_nodes}), {name}.node[{bad}] = "
            f"{seeds.node[bad]}"
        )


def max_threads() -> int:
    """The most threads a matrix call can use (``numba.config.NUMBA_NUM_THREADS``)."""
    return int(cast(Any, numba.config).NUMBA_NUM_THREADS)


def _resolve_threads(threads: int | None, n_sources: int) -> int:
    if threads is None:
        wanted = max_threads()
    elif isinstance(threads, bool) or not isinstance(threads, int | np.integer):
        raise MatrixInputError([f"threads must be a positive int or None, got {threads!r}"])
    elif threads < 1:
        raise MatrixInputError([f"threads must be >= 1, got {threads}"])
    else:
        wanted = min(int(threads), max_threads())
    if not PARALLEL_THREADSAFE:
        return 1
    return max(1, min(wanted, n_sources))


# --------------------------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------------------------- #


def many_to_many(
    indptr: npt.ArrayLike,
    indices: npt.ArrayLike,
    travel_time_s: npt.ArrayLike,
    length_m: npt.ArrayLike,
    sources: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    threads: int | None = None,
) -> MatrixResult:
    """Fastest travel times (and their path lengths) from every source node to every target node.

    Parameters
    ----------
    indptr : array_like of int, shape (n_nodes + 1,)
        CSR row pointer; edges leaving ``u`` are ``indptr[u]:indptr[u + 1]``.
    indices : array_like of int, shape (n_edges,)
        Target node of each edge (int32 avoids a conversion copy).
    travel_time_s : array_like of float, shape (n_edges,)
        Edge travel time in seconds, finite and ``>= 0``.
    length_m : array_like of float, shape (n_edges,)
        Edge length in metres, finite and ``>= 0``.
    sources, targets : array_like of int
        Node ids (repeats allowed).
    threads : int, optional
        Worker threads; ``None`` uses all of numba's threads, ``1`` the serial kernel. Values above
        :func:`max_threads` are capped.

    Returns
    -------
    MatrixResult
        ``durations_s`` and ``distances_m`` of shape ``(len(sources), len(targets))``.

    Raises
    ------
    MatrixInputError
        (a ``ValueError``) listing every violated precondition.

    Examples
    --------
    >>> r = many_to_many([0, 1, 2, 2], [1, 2], [10.0, 5.0], [100.0, 80.0], [0, 2], [2, 0])
    >>> r.durations_s.tolist(), r.distances_m.tolist()
    ([[15.0, 0.0], [0.0, inf]], [[180.0, 0.0], [0.0, inf]])
    """
    return many_to_many_seeded(
        indptr,
        indices,
        travel_time_s,
        length_m,
        Seeds.from_nodes(sources),
        Seeds.from_nodes(targets),
        threads=threads,
    )


def many_to_many_seeded(
    indptr: npt.ArrayLike,
    indices: npt.ArrayLike,
    travel_time_s: npt.ArrayLike,
    length_m: npt.ArrayLike,
    source_seeds: Seeds,
    target_entries: Seeds,
    *,
    threads: int | None = None,
) -> MatrixResult:
    """Matrices between groups of seeds (sources) and groups of entry points (targets).

    ``durations_s[i, j] = min over seeds s of group i and entries e of group j of
    s.time_s + time(s.node -> e.node) + e.time_s``, and ``distances_m[i, j]`` is
    ``s.dist_m + length(fastest path) + e.dist_m`` for the same minimiser.

    Parameters
    ----------
    indptr, indices, travel_time_s, length_m
        The CSR graph, as in :func:`many_to_many`.
    source_seeds : Seeds
        One group per matrix row.
    target_entries : Seeds
        One group per matrix column.
    threads : int, optional
        As in :func:`many_to_many`.

    Returns
    -------
    MatrixResult

    Raises
    ------
    MatrixInputError
        (a ``ValueError``) listing every violated precondition.
    """
    graph = _validate_graph(indptr, indices, travel_time_s, length_m)
    problems: list[str] = []
    for seeds, name in ((source_seeds, "source_seeds"), (target_entries, "target_entries")):
        if not isinstance(seeds, Seeds):
            problems.append(f"{name} must be a Seeds, got {type(seeds).__name__}")
        else:
            _check_nodes(seeds, name, graph.n_nodes, problems)
    if problems:
        raise MatrixInputError(problems)
    n_workers = _resolve_threads(threads, len(source_seeds))
    return _run(graph, source_seeds, target_entries, n_workers, parallel=n_workers > 1)


def _run(
    graph: _Graph, sources: Seeds, targets: Seeds, n_workers: int, *, parallel: bool
) -> MatrixResult:
    """Allocate outputs and per-worker workspaces, then call the serial or parallel kernel."""
    n_src, n_tgt, n = len(sources), len(targets), graph.n_nodes
    out_time = np.empty((n_src, n_tgt), dtype=np.float64)
    out_dist = np.empty((n_src, n_tgt), dtype=np.float64)
    if n_src == 0 or n_tgt == 0:
        return MatrixResult(out_time, out_dist)
    chains = _chains(graph)
    core_target_mark, n_core_targets = chains.core_targets(targets.node)
    args = (
        graph.indptr,
        chains.head,
        graph.weight,
        graph.length,
        chains.is_core,
        chains.walk_node,
        chains.walk_time,
        chains.walk_len,
        sources.ptr,
        sources.node,
        sources.time_s,
        sources.dist_m,
        targets.ptr,
        targets.node,
        targets.time_s,
        targets.dist_m,
        _read_only_view(core_target_mark),
        n_core_targets,
        np.empty((n_workers, n), dtype=np.float64),  # dist
        np.empty((n_workers, n), dtype=np.float64),  # dist_m
        np.empty((n_workers, n), dtype=np.int32),  # pos
        np.empty((n_workers, n), dtype=np.int32),  # heap_node
        np.empty((n_workers, n), dtype=np.float64),  # heap_key
        np.empty((n_workers, n), dtype=np.int32),  # touched
        out_time,
        out_dist,
    )
    if not parallel:
        _kernels.many_to_many_serial(*args)
    else:
        previous = numba.get_num_threads()
        numba.set_num_threads(n_workers)
        try:
            _kernels.many_to_many_parallel(*args)
        finally:
            numba.set_num_threads(previous)
    return MatrixResult(out_time, out_dist)


def warm_up() -> float:
    """Compile (or load from the on-disk cache) every kernel variant; return the seconds spent.

    Runs the serial and (when a thread-safe layer is in force) the parallel kernel on a 3-node
    graph with the exact dtypes the public functions pass, so that later calls never compile. The
    server calls this before it reports SERVING. Safe to call more than once (later calls take
    microseconds).
    """
    start = time.perf_counter()
    graph = _validate_graph([0, 1, 2, 2], np.array([1, 2], np.int32), [1.0, 2.0], [10.0, 20.0])
    sources = Seeds.from_groups([[(0, 0.0, 0.0)], [(1, 1.0, 5.0), (2, 0.0, 0.0)]])
    targets = Seeds.from_groups([[(2, 0.5, 1.0)], [(0, 0.0, 0.0)]])
    expected = np.array([[3.5, 0.0], [0.5, np.inf]])
    variants = [(1, False)]
    if PARALLEL_THREADSAFE:
        variants.append((min(2, max_threads()), True))
    for n_workers, parallel in variants:
        result = _run(graph, sources, targets, n_workers, parallel=parallel)
        if not np.array_equal(result.durations_s, expected):  # pragma: no cover
            raise RuntimeError(f"matrix kernel self-check failed: {result.durations_s.tolist()}")
    elapsed = time.perf_counter() - start
    logger.info("matrix kernels ready in %.2f s", elapsed)
    return elapsed
