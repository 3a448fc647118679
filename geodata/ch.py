"""Contraction hierarchies: exact many-to-many matrices on large road networks.

A :class:`ContractionHierarchy` is built once per graph (:func:`build_ch`, numba kernels in
:mod:`geodata.kernels.ch_build`) and answers matrices with bucket many-to-many queries
(:func:`ch_many_to_many`, :mod:`geodata.kernels.ch_query`), threaded over sources with
``nogil`` kernels.

Exactness. Dijkstra's time of a node is the least left-to-right float sum of edge times along a
path; a hierarchy adds the same times in another order (shortcuts first). The two agree bit for
bit when every such sum is exact in float64, which :func:`exact_grid` checks: every edge time (and
every seed / entry time of a query) is a multiple of ``2**-q`` for some ``q`` and the total of all
edge times (a bound on any simple path) stays below ``2**(53 - q)``, so that no sum is ever
rounded. Road networks built by :mod:`geodata.ingest` keep their times on the grid of
``2**-10`` s (:data:`geodata.ingest.build.TIME_QUANTUM_S`); integer weights (DIMACS) are on it
too. :func:`ch_many_to_many` refuses graphs or seeds off the grid (:class:`ChInexactError`);
:func:`geodata.matrix.many_to_many_prepared` then keeps plain Dijkstra.

Distances. ``distances_m[i, j]`` is the length of a fastest path: among fastest paths the
hierarchy keeps the shortest (ties on time are broken by length, in the witness searches and in
the queries), lengths being summed in float64 in the hierarchy's order (so within a few ulps of the
same path's left-to-right sum). Where the fastest path is unique, it is Dijkstra's path.
Unreachable pairs are ``inf`` in both matrices.

Paths. :class:`ChLegSearch` gives one leg's path with the matrix cell's time and length bit for
bit (the same two searches, the same meeting rule, :mod:`geodata.kernels.ch_path`), shortcuts
unpacked into the graph's nodes through their middle nodes. Tie rule: among fastest paths the one
with the least length (as the matrix); among those, the meeting node settled first by the source's
upward search. Where the fastest path is unique it is Dijkstra's path, node for node.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from geodata.arrays import F64, I32, I64, read_only_view
from geodata.errors import MatrixInputError
from geodata.kernels.ch_build import contract
from geodata.kernels.ch_path import ch_leg
from geodata.kernels.ch_query import (
    bucket_counts,
    fill_buckets,
    scan_rows_parallel,
    scan_rows_serial,
)
from geodata.kernels.config import PARALLEL_THREADSAFE
from geodata.prepared import CsrGraph
from geodata.seeds import Seeds

__all__ = [
    "CH_FORMAT_VERSION",
    "ChInexactError",
    "ChLegSearch",
    "ContractionHierarchy",
    "build_ch",
    "ch_many_to_many",
    "exact_grid",
]

logger = logging.getLogger(__name__)

CH_FORMAT_VERSION = 1
"""Bump when the hierarchy's arrays or their meaning change (cached hierarchies are rebuilt)."""

WITNESS_LIMIT = 500
"""Nodes a witness search may settle when contracting."""
SIMULATION_LIMIT = 60
"""Nodes a witness search may settle when only estimating a node's priority."""

_MANTISSA_BITS = 53


class ChInexactError(MatrixInputError):
    """Times off the exact grid: a hierarchy could not reproduce Dijkstra's sums bit for bit."""


def exact_grid(*times: npt.NDArray[np.float64]) -> int | None:
    """The least ``q`` such that every value is a multiple of ``2**-q`` and every sum is exact.

    ``None`` when no such ``q`` exists: some value needs too many fractional bits for the total
    of all values to stay below ``2**(53 - q)``. Values must be finite and ``>= 0``.
    """
    q = -1074
    total = 0.0
    for arr in times:
        a = np.asarray(arr, dtype=np.float64)
        nz = a[a > 0]
        if nz.size == 0:
            continue
        mant, expo = np.frexp(nz)  # nz = mant * 2**expo, 0.5 <= mant < 1
        ints = (mant * float(2**_MANTISSA_BITS)).astype(np.int64)  # exact
        low = ints & -ints  # lowest set bit of the 53-bit mantissa
        tz = np.log2(low.astype(np.float64)).astype(np.int64)
        q = max(q, int(np.max(_MANTISSA_BITS - expo - tz)))
        total += float(np.sum(nz, dtype=np.float64))
    q = max(q, 0) if total == 0.0 else q
    # total < 2**(53 - q) with room for the float sum's own rounding
    if total * (1.0 + 1e-9) >= 2.0 ** (_MANTISSA_BITS - q):
        return None
    return q


Workspace = tuple[npt.NDArray[Any], ...]


class WorkspacePool:
    """Query workspaces kept between calls, at most ``keep`` per kind (thread-safe).

    A query on a 1M-node network needs about 36 MB of search arrays per thread, plus bucket
    counts: allocating and first touching them again on every call cost more than the query
    itself on a server's first calls (fresh pages from the kernel, on every gRPC thread's
    arena). The kernels leave a workspace as they found it (``dist`` infinite, ``pos`` not
    reached, marks cleared), so it is reused as is; one whose call raised is dropped.
    """

    def __init__(self, keep: int = 1) -> None:
        self._keep = keep
        self._free: dict[tuple[str, int], list[Workspace]] = {}
        self._lock = threading.Lock()

    def take(self, key: tuple[str, int], make: Callable[[], Workspace]) -> Workspace:
        """A free workspace of kind ``key``, or a new one made by ``make``."""
        with self._lock:
            free = self._free.get(key)
            ws = free.pop() if free else None
        return make() if ws is None else ws

    def give(self, key: tuple[str, int], ws: Workspace) -> None:
        """Return ``ws`` (left as the kernels leave it) for the next call of its kind."""
        with self._lock:
            kept = self._free.setdefault(key, [])
            if len(kept) < self._keep:
                kept.append(ws)

    @contextmanager
    def use(self, key: tuple[str, int], make: Callable[[], Workspace]) -> Iterator[Workspace]:
        """:meth:`take`, then :meth:`give` after the block (not when it raises)."""
        ws = self.take(key, make)
        yield ws
        self.give(key, ws)


@dataclass(frozen=True, eq=False)
class ContractionHierarchy:
    """A graph's contraction hierarchy, in rank order; immutable and shared by concurrent calls.

    Attributes:
        rank: ``int32[n]``, the rank (contraction position) of each node.
        up_ptr, up_head, up_time, up_len, up_mid: CSR over ranks of the edges ``x -> y`` with
            ``y > x`` (``up_mid`` the rank of the node a shortcut bypasses, ``-1`` for an edge).
        down_ptr, down_head, down_time, down_len, down_mid: CSR over ranks of the edges
            ``y -> x`` with ``y > x``, stored at ``x`` (``down_head`` is ``y``).
        quantum_bits: the grid of the graph's times (:func:`exact_grid`).
        build_time_s: seconds the contraction took.
    """

    rank: I32
    up_ptr: I64
    up_head: I32
    up_time: F64
    up_len: F64
    up_mid: I32
    down_ptr: I64
    down_head: I32
    down_time: F64
    down_len: F64
    down_mid: I32
    quantum_bits: int
    total_time: float
    build_time_s: float

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.rank.shape[0])

    @functools.cached_property
    def pool(self) -> WorkspacePool:
        """The query workspaces of this hierarchy (:class:`WorkspacePool`), kept with it."""
        return WorkspacePool()

    @functools.cached_property
    def node_of_rank(self) -> I32:
        """``int32[n]``, the node of each rank (the inverse of :attr:`rank`), computed once."""
        order = np.empty(self.n_nodes, dtype=np.int32)
        order[self.rank] = np.arange(self.n_nodes, dtype=np.int32)
        return read_only_view(order)

    @property
    def n_edges(self) -> int:
        """Edges and shortcuts of the hierarchy (up and down)."""
        return int(self.up_head.shape[0] + self.down_head.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return sum(int(a.nbytes) for a in self.arrays().values())

    @staticmethod
    def array_names() -> tuple[str, ...]:
        """Names of the arrays (the fields a cache file stores)."""
        return (
            "rank", "up_ptr", "up_head", "up_time", "up_len", "up_mid",
            "down_ptr", "down_head", "down_time", "down_len", "down_mid",
        )  # fmt: skip

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays by name (what a cache file stores)."""
        return {name: getattr(self, name) for name in self.array_names()}

    def check(self, n_nodes: int) -> None:
        """Raise ``ValueError`` unless the arrays form a hierarchy of ``n_nodes`` nodes.

        What a file read from disk must pass before a kernel reads it: dtypes, sizes, CSR
        pointers, heads above their nodes, ranks a permutation.
        """
        problems: list[str] = []
        dtypes = {"ptr": np.int64, "head": np.int32, "time": np.float64, "len": np.float64}
        dtypes["mid"] = np.int32
        if self.rank.dtype != np.int32 or self.rank.shape != (n_nodes,):
            problems.append("rank must be int32 of one entry per node")
        elif not np.array_equal(np.sort(self.rank), np.arange(n_nodes)):
            problems.append("rank must be a permutation")
        for side in ("up", "down"):
            arrs = {k: getattr(self, f"{side}_{k}") for k in dtypes}
            if any(arrs[k].dtype != dt or arrs[k].ndim != 1 for k, dt in dtypes.items()):
                problems.append(f"{side} arrays have the wrong dtypes")
                continue
            ptr, m = arrs["ptr"], arrs["head"].shape[0]
            if ptr.shape[0] != n_nodes + 1 or ptr[0] != 0 or ptr[-1] != m:
                problems.append(f"{side}_ptr does not fit {n_nodes} nodes and {m} edges")
                continue
            if np.any(np.diff(ptr) < 0) or any(arrs[k].shape[0] != m for k in dtypes if k != "ptr"):
                problems.append(f"{side} CSR arrays are inconsistent")
                continue
            owner = np.repeat(np.arange(n_nodes), np.diff(ptr))
            if m and not np.all((arrs["head"] > owner) & (arrs["head"] < n_nodes)):
                problems.append(f"{side}_head must lie above its node")
            if m and not (np.all(np.isfinite(arrs["time"])) and np.all(arrs["time"] >= 0)):
                problems.append(f"{side}_time must be finite and >= 0")
        if problems:
            raise ValueError("invalid contraction hierarchy: " + "; ".join(problems))

    def up(self) -> tuple[I64, I32, F64, F64]:
        """The upward graph tuple of :mod:`geodata.kernels.ch_query`."""
        return self.up_ptr, self.up_head, self.up_time, self.up_len

    def down(self) -> tuple[I64, I32, F64, F64]:
        """The downward graph tuple of :mod:`geodata.kernels.ch_query`."""
        return self.down_ptr, self.down_head, self.down_time, self.down_len


def _csr(
    n: int, owner: I32, head: I32, t: F64, ln: F64, mid: I32
) -> tuple[I64, I32, F64, F64, I32]:
    order = np.lexsort((head, owner))
    ptr = np.zeros(n + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(np.bincount(owner, minlength=n))
    return (
        read_only_view(ptr),
        read_only_view(head[order].astype(np.int32)),
        read_only_view(np.ascontiguousarray(t[order])),
        read_only_view(np.ascontiguousarray(ln[order])),
        read_only_view(mid[order].astype(np.int32)),
    )


def build_ch(
    graph: CsrGraph,
    *,
    witness_limit: int = WITNESS_LIMIT,
    simulation_limit: int = SIMULATION_LIMIT,
    lazy: bool = False,
) -> ContractionHierarchy:
    """Contract ``graph`` (validated CSR arrays) into a hierarchy.

    Raises:
        ChInexactError: the graph's times are not on an exact grid (:func:`exact_grid`).
    """
    q = exact_grid(graph.weight)
    if q is None:
        raise ChInexactError(
            ["travel_time_s: times off an exact binary grid; a hierarchy would not be exact"]
        )
    started = time.perf_counter()
    n = graph.n_nodes
    rank, src, dst, t, ln, mid, n_e = contract(
        graph.indptr, graph.indices, graph.weight, graph.length, witness_limit, simulation_limit,
        lazy,
    )  # fmt: skip
    src, dst, t, ln, mid = src[:n_e], dst[:n_e], t[:n_e], ln[:n_e], mid[:n_e]
    r_src, r_dst = rank[src], rank[dst]
    r_mid = np.where(mid >= 0, rank[np.maximum(mid, 0)], -1).astype(np.int32)
    is_up = r_src < r_dst
    up = _csr(n, r_src[is_up], r_dst[is_up], t[is_up], ln[is_up], r_mid[is_up])
    dn = ~is_up
    down = _csr(n, r_dst[dn], r_src[dn], t[dn], ln[dn], r_mid[dn])
    elapsed = time.perf_counter() - started
    ch = ContractionHierarchy(
        read_only_view(rank), *up, *down, quantum_bits=q,
        total_time=float(np.sum(graph.weight)), build_time_s=elapsed,
    )  # fmt: skip
    logger.info(
        "contraction hierarchy: %d nodes, %d edges (%d in the graph) built in %.2f s",
        n, ch.n_edges, graph.indices.shape[0], elapsed,
    )  # fmt: skip
    return ch


def _check_exact(ch: ContractionHierarchy, sources: Seeds, targets: Seeds) -> None:
    q = exact_grid(sources.time_s, targets.time_s)
    total = ch.total_time + float(np.max(sources.time_s, initial=0.0))
    total += float(np.max(targets.time_s, initial=0.0))
    bits = ch.quantum_bits if q is None else max(q, ch.quantum_bits)
    if q is None or total * (1.0 + 1e-9) >= 2.0 ** (_MANTISSA_BITS - bits):
        raise ChInexactError(["seed or entry times off the graph's exact grid"])


def ch_many_to_many(
    ch: ContractionHierarchy, sources: Seeds, targets: Seeds, *, threads: int = 1
) -> tuple[F64, F64]:
    """``(durations_s, distances_m)`` between seed groups (see ``many_to_many_seeded``).

    ``threads`` workers scan the sources (capped by numba's threads and the source count).

    Raises:
        ChInexactError: seed or entry times off the grid (the result would not be exact).
        MatrixInputError: seeds of nodes outside the graph.
    """
    problems: list[str] = []
    sources.check_nodes("source_seeds", ch.n_nodes, problems)
    targets.check_nodes("target_entries", ch.n_nodes, problems)
    if problems:
        raise MatrixInputError(problems)
    _check_exact(ch, sources, targets)
    n_src, n_tgt, n = len(sources), len(targets), ch.n_nodes
    out_time = np.full((n_src, n_tgt), np.inf)
    out_dist = np.full((n_src, n_tgt), np.inf)
    if n_src == 0 or n_tgt == 0:
        return out_time, out_dist
    n_workers = max(1, min(threads, int(numba.config.NUMBA_NUM_THREADS), n_src))  # type: ignore[attr-defined]
    if not PARALLEL_THREADSAFE:
        n_workers = 1
    with ch.pool.use(("query", n), lambda: _query_workspace(n)) as query:
        if n_workers == 1:
            _query(ch, sources, targets, query, None, (out_time, out_dist))
        else:
            make = functools.partial(_workspace, n_workers, n)
            with ch.pool.use(("scan", n_workers), make) as ws:
                previous = numba.get_num_threads()
                numba.set_num_threads(n_workers)
                try:
                    _query(ch, sources, targets, query, ws, (out_time, out_dist))
                finally:
                    numba.set_num_threads(previous)
    return out_time, out_dist


def _query_workspace(n: int) -> Workspace:
    """One search's workspace (see :func:`_workspace`), then the per-node bucket counts and
    pointers."""
    return (
        *_workspace(1, n),
        np.zeros(n, dtype=np.int64),  # count
        np.zeros(n + 1, dtype=np.int64),  # bucket_ptr
    )


def _query(
    ch: ContractionHierarchy, sources: Seeds, targets: Seeds, query: Workspace,
    ws: Workspace | None, out: tuple[F64, F64],
) -> None:  # fmt: skip
    """Buckets from the targets, then the rows (serially when ``ws`` is ``None``)."""
    up, down = ch.up(), ch.down()
    ws1, count, bucket_ptr = query[:6], query[6], query[7]
    one = tuple(a[0] for a in ws1)
    tgt = (targets.ptr, ch.rank[targets.node], targets.time_s, targets.dist_m)
    count[:] = 0
    total = bucket_counts(up, down, tgt, one, count)
    np.cumsum(count, out=bucket_ptr[1:])
    buckets = (
        np.empty(total, dtype=np.int32),
        np.empty(total, dtype=np.float64),
        np.empty(total, dtype=np.float64),
    )
    fill_buckets(up, down, tgt, one, bucket_ptr, buckets)
    src = (sources.ptr, ch.rank[sources.node], sources.time_s, sources.dist_m)
    if ws is None:
        scan_rows_serial(up, down, src, bucket_ptr, buckets, ws1, out)
    else:
        scan_rows_parallel(up, down, src, bucket_ptr, buckets, ws, out)


class ChLegSearch:
    """Fastest paths between seed groups on a hierarchy, one leg at a time (see the module doc).

    Holds the two searches' workspaces (O(nodes), reused from leg to leg; only the nodes a search
    touches are reset), so one instance serves one thread. ``sources`` / ``targets`` are the
    seeds and entries of every point (as for :func:`ch_many_to_many`).

    Raises:
        ChInexactError: seed or entry times off the grid (the result would not be exact).
        MatrixInputError: seeds of nodes outside the graph.
    """

    def __init__(self, ch: ContractionHierarchy, sources: Seeds, targets: Seeds) -> None:
        problems: list[str] = []
        sources.check_nodes("source_seeds", ch.n_nodes, problems)
        targets.check_nodes("target_entries", ch.n_nodes, problems)
        if problems:
            raise MatrixInputError(problems)
        _check_exact(ch, sources, targets)
        n = ch.n_nodes
        self._ch = ch
        self._sources = (sources.ptr, ch.rank[sources.node], sources.time_s, sources.dist_m)
        self._targets = (targets.ptr, ch.rank[targets.node], targets.time_s, targets.dist_m)
        self._ws: Workspace | None = ch.pool.take(("leg", n), functools.partial(_leg_workspace, n))

    def close(self) -> None:
        """Give the workspaces back to the hierarchy's pool (the search is unusable after)."""
        if self._ws is not None:
            self._ch.pool.give(("leg", self._ch.n_nodes), self._ws)
            self._ws = None

    def __enter__(self) -> ChLegSearch:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        self._ws = None  # after an error: dropped, not reused

    def leg(self, a: int, b: int) -> tuple[float, float, I64]:
        """``(time_s, dist_m, nodes)`` from source group ``a`` to target group ``b``.

        ``nodes`` are the graph's nodes from the seed node to the entry node (empty and
        ``inf, inf`` when unreachable); time and length are the matrix cell's, bit for bit.
        """
        ptr, rank, t, d = self._sources
        lo, hi = int(ptr[a]), int(ptr[a + 1])
        seeds = (rank[lo:hi], t[lo:hi], d[lo:hi])
        ptr, rank, t, d = self._targets
        lo, hi = int(ptr[b]), int(ptr[b + 1])
        entries = (rank[lo:hi], t[lo:hi], d[lo:hi])
        ch, ws = self._ch, self._ws
        if ws is None:
            raise RuntimeError("ChLegSearch used after close()")
        ws_f, ws_b, links, path = ws[0:6], ws[6:12], ws[12:19], ws[19]
        mids = (ch.up_mid, ch.down_mid)
        try:
            time_s, dist_m, n_path = ch_leg(
                ch.up(), ch.down(), mids, seeds, entries, ws_f, ws_b, links, path
            )
        except BaseException:
            self._ws = None  # not left as the kernels leave it: dropped
            raise
        if n_path < 0:
            raise RuntimeError(
                "contraction hierarchy: a shortcut could not be unpacked (its halves are missing, "
                "or the path is longer than the node count)"
            )
        nodes = ch.node_of_rank[path[:n_path]].astype(np.int64)
        return float(time_s), float(dist_m), nodes


def _leg_workspace(n: int) -> Workspace:
    """:class:`ChLegSearch`'s arrays: two searches (see :func:`_workspace`), then ``(pred_f,
    pred_b, mark_b, chain, stack_a, stack_b, stack_m)`` and the path (see
    :func:`geodata.kernels.ch_path.ch_leg`)."""
    return (
        *(a[0] for a in _workspace(1, n)),
        *(a[0] for a in _workspace(1, n)),
        np.empty(n, dtype=np.int64),  # pred_f
        np.empty(n, dtype=np.int64),  # pred_b
        np.zeros(n, dtype=np.bool_),  # mark_b
        np.empty(n, dtype=np.int64),  # chain
        np.empty(n + 1, dtype=np.int32),  # stack_a
        np.empty(n + 1, dtype=np.int32),  # stack_b
        np.empty(n + 1, dtype=np.int32),  # stack_m
        np.empty(n, dtype=np.int32),  # path
    )


def _workspace(n_workers: int, n: int) -> tuple[npt.NDArray[Any], ...]:
    return (
        np.full((n_workers, n), np.inf),  # dist
        np.empty((n_workers, n), dtype=np.float64),  # dist_m
        np.full((n_workers, n), -1, dtype=np.int32),  # pos
        np.empty((n_workers, n), dtype=np.int32),  # heap_node
        np.empty((n_workers, n), dtype=np.float64),  # heap_key
        np.empty((n_workers, n), dtype=np.int32),  # touched
    )
