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
from dataclasses import dataclass
from typing import Any, cast

import numba
import numpy as np
import numpy.typing as npt

from geodata.arrays import F64, MAX_NODES
from geodata.ch import ChInexactError, ContractionHierarchy, build_ch, ch_many_to_many
from geodata.errors import MatrixInputError
from geodata.kernels.config import PARALLEL_THREADSAFE
from geodata.kernels.many_to_many import many_to_many_parallel, many_to_many_serial
from geodata.prepared import PreparedGraph, build_chains, prepare_graph, validate_graph
from geodata.seeds import Seeds

__all__ = [
    "MAX_NODES",
    "MatrixInputError",
    "MatrixResult",
    "Seeds",
    "many_to_many",
    "many_to_many_prepared",
    "many_to_many_seeded",
    "max_threads",
    "unreachable_pairs",
    "warm_up",
]

logger = logging.getLogger(__name__)


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
    graph = validate_graph(indptr, indices, travel_time_s, length_m)
    _check_seeds(graph.n_nodes, source_seeds, target_entries)
    n_workers = _resolve_threads(threads, len(source_seeds))
    if not len(source_seeds) or not len(target_entries):
        return _empty(len(source_seeds), len(target_entries))  # no chain layout needed
    prepared = PreparedGraph(graph, build_chains(graph))
    return _run(prepared, source_seeds, target_entries, n_workers, parallel=n_workers > 1)


def many_to_many_prepared(
    prepared: PreparedGraph,
    source_seeds: Seeds,
    target_entries: Seeds,
    *,
    threads: int | None = None,
    hierarchy: ContractionHierarchy | None = None,
) -> MatrixResult:
    """:func:`many_to_many_seeded` on a graph prepared once (no validation or layout per call).

    ``prepared`` comes from :meth:`geodata.network.RoadNetwork.prepared` (built once per network)
    or :func:`geodata.prepared.prepare_graph`; the result is the same as
    :func:`many_to_many_seeded`'s on the same arrays, bit for bit.

    ``hierarchy``: the contraction hierarchy of ``prepared``'s graph
    (:meth:`geodata.network.RoadNetwork.hierarchy`). When given, and the seed and entry times are
    on the graph's exact grid (:func:`geodata.ch.exact_grid`), the matrix comes from bucket
    queries on it (:func:`geodata.ch.ch_many_to_many`): the same times bit for bit, distances of
    a fastest path (ties on time: the shortest). Otherwise the Dijkstra kernels answer.

    Raises
    ------
    MatrixInputError
        (a ``ValueError``) seeds that are not :class:`Seeds` of nodes of ``prepared``, or a bad
        ``threads``.
    """
    _check_seeds(prepared.n_nodes, source_seeds, target_entries)
    n_workers = _resolve_threads(threads, len(source_seeds))
    if hierarchy is not None:
        if hierarchy.n_nodes != prepared.n_nodes:
            raise MatrixInputError(
                [f"hierarchy has {hierarchy.n_nodes} nodes, the graph {prepared.n_nodes}"]
            )
        try:
            durations, distances = ch_many_to_many(
                hierarchy, source_seeds, target_entries, threads=n_workers
            )
        except ChInexactError:
            logger.debug("seed times off the hierarchy's exact grid: Dijkstra kernels")
        else:
            return MatrixResult(durations, distances)
    return _run(prepared, source_seeds, target_entries, n_workers, parallel=n_workers > 1)


def _check_seeds(n_nodes: int, source_seeds: Seeds, target_entries: Seeds) -> None:
    """Raise :class:`MatrixInputError` unless both are :class:`Seeds` of nodes in the graph."""
    problems: list[str] = []
    for seeds, name in ((source_seeds, "source_seeds"), (target_entries, "target_entries")):
        if not isinstance(seeds, Seeds):
            problems.append(f"{name} must be a Seeds, got {type(seeds).__name__}")
        else:
            seeds.check_nodes(name, n_nodes, problems)
    if problems:
        raise MatrixInputError(problems)


def _empty(n_sources: int, n_targets: int) -> MatrixResult:
    """The result of a matrix with no rows or no columns."""
    shape = (n_sources, n_targets)
    return MatrixResult(np.empty(shape, dtype=np.float64), np.empty(shape, dtype=np.float64))


def _run(
    prepared: PreparedGraph, sources: Seeds, targets: Seeds, n_workers: int, *, parallel: bool
) -> MatrixResult:
    """Allocate outputs and per-worker workspaces, then call the serial or parallel kernel."""
    n_src, n_tgt, n = len(sources), len(targets), prepared.n_nodes
    if n_src == 0 or n_tgt == 0:
        return _empty(n_src, n_tgt)
    out_time = np.empty((n_src, n_tgt), dtype=np.float64)
    out_dist = np.empty((n_src, n_tgt), dtype=np.float64)
    core_target_mark, n_core_targets = prepared.chains.core_targets(targets.node)
    workspace = (
        np.empty((n_workers, n), dtype=np.float64),  # dist
        np.empty((n_workers, n), dtype=np.float64),  # dist_m
        np.empty((n_workers, n), dtype=np.int32),  # pos
        np.empty((n_workers, n), dtype=np.int32),  # heap_node
        np.empty((n_workers, n), dtype=np.float64),  # heap_key
        np.empty((n_workers, n), dtype=np.int32),  # touched
    )
    args = (
        prepared.kernel_arrays(),
        sources.kernel_arrays(),
        targets.kernel_arrays(),
        (core_target_mark, n_core_targets),
        workspace,
        (out_time, out_dist),
    )
    if not parallel:
        many_to_many_serial(*args)
    else:
        previous = numba.get_num_threads()
        numba.set_num_threads(n_workers)
        try:
            many_to_many_parallel(*args)
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
    prepared = prepare_graph([0, 1, 2, 2], np.array([1, 2], np.int32), [1.0, 2.0], [10.0, 20.0])
    sources = Seeds.from_groups([[(0, 0.0, 0.0)], [(1, 1.0, 5.0), (2, 0.0, 0.0)]])
    targets = Seeds.from_groups([[(2, 0.5, 1.0)], [(0, 0.0, 0.0)]])
    expected = np.array([[3.5, 0.0], [0.5, np.inf]])
    variants = [(1, False)]
    if PARALLEL_THREADSAFE:
        variants.append((min(2, max_threads()), True))
    for n_workers, parallel in variants:
        result = _run(prepared, sources, targets, n_workers, parallel=parallel)
        if not np.array_equal(result.durations_s, expected):  # pragma: no cover
            raise RuntimeError(f"matrix kernel self-check failed: {result.durations_s.tolist()}")
    # the contraction hierarchy's build and query kernels (networks from CH_MIN_NODES nodes)
    hierarchy = build_ch(prepared.graph)
    for n_workers, _ in variants:
        durations, _ = ch_many_to_many(hierarchy, sources, targets, threads=n_workers)
        if not np.array_equal(durations, expected):  # pragma: no cover
            raise RuntimeError(f"hierarchy self-check failed: {durations.tolist()}")
    elapsed = time.perf_counter() - start
    logger.info("matrix kernels ready in %.2f s", elapsed)
    return elapsed
