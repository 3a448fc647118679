"""A road graph prepared for the searches: validated CSR arrays and the chain layout, built once.

The matrix kernels need the CSR graph in their dtypes, read-only, and split into core nodes and the
chains of interior nodes between them (:mod:`geodata.kernels.csr`). Building that costs O(edges)
(~5 ms on Heidelberg), so a :class:`geodata.network.RoadNetwork` builds its
:class:`PreparedGraph` once (:meth:`~geodata.network.RoadNetwork.prepared`) and every matrix and
path call on it reuses it; calls on caller-owned raw CSR arrays prepare per call
(:func:`prepare_graph`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geodata.arrays import (
    F64,
    I32,
    I64,
    MAX_NODES,
    Mask,
    as_float_array,
    as_int_array,
    check_costs,
    check_node_ids,
    read_only_view,
)
from geodata.errors import MatrixInputError
from geodata.kernels.csr import build_walks, core_mask

__all__ = [
    "Chains",
    "CsrGraph",
    "PreparedGraph",
    "build_chains",
    "grid_bits",
    "on_grid",
    "prepare_graph",
    "validate_graph",
]

_HEADROOM_BITS = 3
"""The grid leaves the sum of all edge times below ``2**(53 - 3 - q)``: room for seed and entry
times on top of any path without a rounded sum."""


def grid_bits(times: npt.NDArray[np.float64]) -> int:
    """The finest binary grid ``2**-q`` s on which every sum of ``times`` stays exact in float64.

    ``q`` is the largest integer with ``sum(times) < 2**(53 - 3 - q)`` (three bits of headroom for
    seed and entry times), at most 60. Heidelberg: ``q = 29``, a grid of 1.9e-9 s.
    """
    total = float(np.sum(times, dtype=np.float64))
    if total <= 0.0:
        return 60
    return int(min(60, 53 - _HEADROOM_BITS - int(np.floor(np.log2(total))) - 1))


def on_grid(values: npt.NDArray[np.float64], bits: int) -> F64:
    """``values`` rounded to the nearest multiple of ``2**-bits`` (a new array)."""
    scale = float(2.0**bits)
    rounded: F64 = np.round(np.asarray(values, dtype=np.float64) * scale) / scale
    return rounded


@dataclass(frozen=True)
class CsrGraph:
    """A validated CSR graph in the kernels' dtypes, every array read-only.

    Attributes:
        indptr: ``int64[n_nodes + 1]`` row pointer.
        indices: ``int32[n_edges]`` edge targets.
        weight: ``float64[n_edges]`` edge travel times (s), finite and ``>= 0``.
        length: ``float64[n_edges]`` edge lengths (m), finite and ``>= 0``.
    """

    indptr: I64
    indices: I32
    weight: F64
    length: F64

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.indptr.shape[0] - 1)

    def arrays(self) -> tuple[I64, I32, F64, F64]:
        """``(indptr, indices, weight, length)``, the ``graph`` tuple of the path kernel."""
        return self.indptr, self.indices, self.weight, self.length


def _check_csr(ptr: I64, idx: npt.NDArray[np.integer], problems: list[str]) -> None:
    """Append the violated CSR structure invariants of ``indptr`` (sizes, bounds, order)."""
    n_nodes, n_edges = ptr.shape[0] - 1, idx.shape[0]
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


def validate_graph(
    indptr: npt.ArrayLike,
    indices: npt.ArrayLike,
    travel_time_s: npt.ArrayLike,
    length_m: npt.ArrayLike,
) -> CsrGraph:
    """Check the CSR invariants and convert to kernel dtypes (no copy when they already match).

    Raises:
        MatrixInputError: listing every violated precondition.
    """
    problems: list[str] = []
    ptr = as_int_array(indptr, "indptr", problems).astype(np.int64, copy=False)
    idx = as_int_array(indices, "indices", problems)
    weight = as_float_array(travel_time_s, "travel_time_s", problems)
    length = as_float_array(length_m, "length_m", problems)
    if problems:
        raise MatrixInputError(problems)
    if ptr.shape[0] < 1:
        raise MatrixInputError(["indptr must have n_nodes + 1 >= 1 entries"])
    n_edges = idx.shape[0]
    _check_csr(ptr, idx, problems)
    if weight.shape[0] != n_edges:
        problems.append(
            f"travel_time_s must have one entry per edge ({n_edges}), got {weight.shape[0]}"
        )
    if length.shape[0] != n_edges:
        problems.append(f"length_m must have one entry per edge ({n_edges}), got {length.shape[0]}")
    check_node_ids(idx, "indices", ptr.shape[0] - 1, problems)
    check_costs(weight, "travel_time_s", problems)
    check_costs(length, "length_m", problems)
    if problems:
        raise MatrixInputError(problems)
    return CsrGraph(
        read_only_view(ptr),
        read_only_view(idx.astype(np.int32, copy=False)),
        read_only_view(weight),
        read_only_view(length),
    )


@dataclass(frozen=True)
class Chains:
    """The graph as chains between core nodes (see :func:`geodata.kernels.csr.build_walks`).

    Attributes:
        is_core: ``bool[n_nodes]``, the node is a junction.
        head: ``int32[n_edges]``, ``~v`` if the edge leads to core node ``v``, else its walk slot.
        walk_node: ``int32[n_edges]``, node reached at a walk slot, ``~node`` for a core node.
        walk_time, walk_len: ``float64[n_edges]``, time and length of the edge reaching it.
        origin_a, origin_b: ``int32[n_nodes]``, the core nodes whose chains pass through an
            interior node (``-1`` for none).
    """

    is_core: Mask
    head: I32
    walk_node: I32
    walk_time: F64
    walk_len: F64
    origin_a: I32
    origin_b: I32

    def core_targets(self, nodes: I32) -> tuple[Mask, int]:
        """The core nodes whose settling makes every node of ``nodes`` final, and their count.

        A core node is final when settled; an interior node once the core nodes whose chains
        pass through it are settled (their chains are walked right away). The mask is read-only.
        """
        mark = np.zeros(self.is_core.shape[0], dtype=np.bool_)
        core = self.is_core[nodes]
        mark[nodes[core]] = True
        interior = nodes[~core]
        for origin in (self.origin_a[interior], self.origin_b[interior]):
            mark[origin[origin >= 0]] = True
        mark.flags.writeable = False
        return mark, int(np.count_nonzero(mark))


def build_chains(graph: CsrGraph) -> Chains:
    """Split ``graph`` into core nodes and the chains of interior nodes between them, O(edges).

    Road graphs at full resolution are mostly interior nodes (83-92 % of the OSM extracts in the
    benchmarks): shape points of a street with no junction. Walking them in line instead of
    queueing each one is what makes the kernels fast; the arithmetic along a chain is the same
    left-to-right sum as plain Dijkstra's, so the results are bit-identical.
    """
    n, m = graph.n_nodes, graph.indices.shape[0]
    is_core = np.empty(n, dtype=np.bool_)
    core_mask(graph.indptr, graph.indices, is_core)
    edge_slot = np.empty(m, dtype=np.int64)
    walk_node = np.empty(m, dtype=np.int32)
    walk_time = np.empty(m, dtype=np.float64)
    walk_len = np.empty(m, dtype=np.float64)
    origin_a = np.empty(n, dtype=np.int32)
    origin_b = np.empty(n, dtype=np.int32)
    for _ in range(2):
        args = (graph.indptr, graph.indices, graph.weight, graph.length, is_core)
        placed = build_walks(*args, edge_slot, walk_node, walk_time, walk_len, origin_a, origin_b)
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
    return Chains(
        is_core=read_only_view(is_core),
        head=read_only_view(head),
        walk_node=read_only_view(walk_node),
        walk_time=read_only_view(walk_time),
        walk_len=read_only_view(walk_len),
        origin_a=read_only_view(origin_a),
        origin_b=read_only_view(origin_b),
    )


@dataclass(frozen=True)
class PreparedGraph:
    """A validated CSR graph and its chain layout: everything the searches need, built once.

    Immutable (every array read-only), so one instance serves concurrent calls.
    """

    graph: CsrGraph
    chains: Chains
    time_bits: int | None = None
    """When set, every time of ``graph`` is a multiple of ``2**-time_bits`` s and every path sum is
    exact (:func:`grid_bits`); seeds and entries must be rounded to the same grid
    (:meth:`seed_times`) for a contraction hierarchy to give the Dijkstra kernel's times."""

    def seed_times(self, times: F64) -> F64:
        """Seed or entry times on the graph's grid (unchanged when the graph has none)."""
        return times if self.time_bits is None else on_grid(times, self.time_bits)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return self.graph.n_nodes

    def kernel_arrays(self) -> tuple[I64, I32, F64, F64, Mask, I32, F64, F64]:
        """``(indptr, head, weight, length, is_core, walk_node, walk_time, walk_len)``.

        The ``graph`` tuple of :mod:`geodata.kernels.many_to_many`.
        """
        g, c = self.graph, self.chains
        return g.indptr, c.head, g.weight, g.length, c.is_core, c.walk_node, c.walk_time, c.walk_len


def prepare_graph(
    indptr: npt.ArrayLike,
    indices: npt.ArrayLike,
    travel_time_s: npt.ArrayLike,
    length_m: npt.ArrayLike,
    *,
    exact_grid: bool = False,
) -> PreparedGraph:
    """Validate a CSR graph (:func:`validate_graph`) and lay out its chains (:func:`build_chains`).

    ``exact_grid=True`` rounds the times to the finest grid on which every path sum is exact
    (:func:`grid_bits`; a change below 1e-8 s per edge on city and country networks), so that
    Dijkstra and a contraction hierarchy (:mod:`geodata.ch`) give the same times bit for bit.
    :meth:`geodata.network.RoadNetwork.prepared` does.

    Raises:
        MatrixInputError: listing every violated precondition.
    """
    graph = validate_graph(indptr, indices, travel_time_s, length_m)
    if not exact_grid:
        return PreparedGraph(graph, build_chains(graph))
    bits = grid_bits(graph.weight)
    graph = CsrGraph(
        graph.indptr, graph.indices, read_only_view(on_grid(graph.weight, bits)), graph.length
    )
    return PreparedGraph(graph, build_chains(graph), time_bits=bits)
