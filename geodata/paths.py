"""Road paths between snapped points: the node sequence and its coordinates, for drawing routes.

A leg from point ``a`` to point ``b`` (both from :class:`geodata.snap.Snapper`) starts at ``a``'s
snapped position, runs along the partial first edge to its first node, through the network, and
along the partial last edge to ``b``'s snapped position. Its cost is the matrix entry
:func:`geodata.road_matrix.road_matrix` gives for ``(a, b)``: the same seeds, entries and
same-edge rule, and the matrix's own search, so its time and length equal the matrix entry's bit for
bit. When several paths tie on time, the nodes drawn may be those of another of the tied paths.

The search is the one the matrix uses on the network (:func:`geodata.road_matrix.uses_hierarchy`):

* with a contraction hierarchy (large networks), the matrix cell's two upward searches with
  predecessor links and shortcuts unpacked into the graph's nodes
  (:class:`geodata.ch.ChLegSearch`, :mod:`geodata.kernels.ch_path`): under a millisecond per
  leg on a 1M-node network, where a Dijkstra search takes a quarter of a second
  (:mod:`benchmarks.server_ch`). Ties on time: the shortest of the fastest paths (the matrix's
  distance);
* otherwise the matrix kernel's single-source (multi-seed) Dijkstra over the core graph, run with
  predecessor links and stopped as soon as the target's entry nodes are final
  (:func:`geodata.kernels.path.leg_search`, on the network's prepared graph
  :meth:`geodata.network.RoadNetwork.prepared`). Ties on time: the first path found.

Where the fastest path is unique both give the same nodes (tested against each other in
``tests/geodata/test_ch_paths.py``; a point lying exactly on a node may be left or entered there or
at its edge's other end, the same drawing). Call :func:`warm_up` once at start-up so no request
pays for compilation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geodata.arrays import F64, I32, I64
from geodata.ch import ChInexactError, ChLegSearch, build_ch
from geodata.errors import MatrixInputError
from geodata.headings import Chain, chain_cost, headed_chains
from geodata.kernels.heap import NOT_REACHED
from geodata.kernels.path import leg_search
from geodata.network import RoadNetwork
from geodata.polyline import DEFAULT_PRECISION, encode_polyline
from geodata.prepared import PreparedGraph, prepare_graph
from geodata.road_matrix import (
    same_edge_cost,
    source_seeds,
    target_entries,
    uses_hierarchy,
    validate_points,
)
from geodata.seeds import Seeds
from geodata.snap import SnappedPoint, SnapResult

__all__ = ["LegPath", "leg_path", "route_paths", "warm_up"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class LegPath:
    """The road path of one leg.

    Attributes:
        coords: ``float64[k, 2]`` of ``(lat, lon)`` in degrees: the source's snapped position, the
            path's nodes, the target's snapped position (consecutive repeats removed, at least two
            points; empty when the target is unreachable).
        nodes: ``int64[p]``, the network nodes passed, in order (empty when the leg stays on one
            edge or is unreachable).
        time_s: travel time in seconds (``inf`` when unreachable).
        dist_m: length in metres (``inf`` when unreachable).
    """

    coords: F64
    nodes: I64
    time_s: float
    dist_m: float

    @property
    def reachable(self) -> bool:
        """Whether a path exists."""
        return bool(np.isfinite(self.time_s))

    def polyline(self, *, precision: int = DEFAULT_PRECISION) -> str:
        """The coordinates as a Google encoded polyline (``""`` when unreachable)."""
        return encode_polyline(self.coords, precision=precision)


def leg_path(network: RoadNetwork, src: SnappedPoint, dst: SnappedPoint) -> LegPath:
    """The fastest road path from one snapped point to another (``snaps[i]`` of a SnapResult)."""
    points = SnapResult(
        edge=np.array([src.edge, dst.edge]),
        fraction=np.array([src.fraction, dst.fraction]),
        reverse_edge=np.array([src.reverse_edge, dst.reverse_edge]),
        lat=np.array([src.lat, dst.lat]),
        lon=np.array([src.lon, dst.lon]),
        distance_m=np.array([src.distance_m, dst.distance_m]),
        query_lat=np.array([src.query_lat, dst.query_lat]),
        query_lon=np.array([src.query_lon, dst.query_lon]),
        max_distance_m=np.inf,
    )
    return route_paths(network, points)[0]


def route_paths(
    network: RoadNetwork,
    points: SnapResult,
    order: Sequence[int] | npt.ArrayLike | None = None,
    headed: npt.NDArray[np.bool_] | None = None,
) -> list[LegPath]:
    """The legs of a route visiting ``points[order[0]], points[order[1]], ...`` in turn.

    ``order`` defaults to ``0 .. len(points) - 1``; ``len(order) - 1`` legs are returned (none
    for fewer than two stops). Snap all of a request's locations once, then pass each vehicle's
    visit order here. ``headed``: the headed points (:mod:`geodata.headings`), as in the matrix.

    Raises:
        MatrixInputError: (a ``ValueError``) points that do not fit ``network``, or ``order``
            not indices into ``points``.
    """
    started = time.perf_counter()
    problems: list[str] = []
    validate_points(network, points, "points", problems)
    stops = np.arange(len(points), dtype=np.int64) if order is None else np.asarray(order)
    if stops.ndim != 1 or (stops.size and not np.issubdtype(stops.dtype, np.integer)):
        problems.append(f"order must be a 1-D sequence of point indices, got {stops!r}")
    elif stops.size and (stops.min() < 0 or stops.max() >= len(points)):
        problems.append(f"order must hold indices in [0, {len(points)})")
    if problems:
        raise MatrixInputError(problems)
    stops = stops.astype(np.int64)
    if stops.size < 2:
        return []

    chains = headed_chains(network, points, headed)
    seeds, entries = source_seeds(network, points, chains), target_entries(network, points, chains)
    legs = []
    with _leg_search(network, seeds, entries) as net_leg:
        for a, b in zip(stops[:-1].tolist(), stops[1:].tolist(), strict=True):
            leg = _one_leg(network, points, net_leg, a, b, chains)
            legs.append(leg)
    logger.debug(
        "%d leg paths on %d nodes in %.3f s", len(legs), network.n_nodes,
        time.perf_counter() - started,
    )  # fmt: skip
    return legs


NetLeg = Callable[[int, int], tuple[float, float, I64]]
"""Time, length and nodes of the network path from source group ``a`` to target group ``b``."""


@contextmanager
def _leg_search(network: RoadNetwork, seeds: Seeds, entries: Seeds) -> Iterator[NetLeg]:
    """The matrix's own search on ``network``: its hierarchy when it has one, else Dijkstra."""
    search = None
    if uses_hierarchy(network):
        try:
            search = ChLegSearch(network.hierarchy(), seeds, entries)
        except ChInexactError:  # as the matrix: off the exact grid, Dijkstra answers
            logger.debug("seed times off the hierarchy's exact grid: Dijkstra paths")
    if search is not None:
        with search:
            yield search.leg
        return
    prepared = network.prepared()
    workspace = _workspace(network.n_nodes)

    def dijkstra_leg(a: int, b: int) -> tuple[float, float, I64]:
        time_s, dist_m, n_path = _net_leg(prepared, seeds, entries, a, b, workspace)
        return time_s, dist_m, workspace[1][1][:n_path].astype(np.int64)

    yield dijkstra_leg


Workspace = tuple[tuple[F64, F64, I32, I32, F64, I32], tuple[I32, I32]]


def _workspace(n: int) -> Workspace:
    """The arrays one leg search after another reuses (each search resets what it touched).

    The search's ``(dist, dist_m, pos, heap_node, heap_key, touched)`` and the path's
    ``(pred, path_out)`` (see :func:`geodata.kernels.path.leg_search`).
    """
    search = (
        np.full(n, np.inf),  # dist
        np.empty(n, dtype=np.float64),  # dist_m
        np.full(n, NOT_REACHED, dtype=np.int32),  # pos
        np.empty(n, dtype=np.int32),  # heap_node
        np.empty(n, dtype=np.float64),  # heap_key
        np.empty(n, dtype=np.int32),  # touched
    )
    return search, (np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32))


def _net_leg(
    prepared: PreparedGraph, seeds: Seeds, entries: Seeds, a: int, b: int, workspace: Workspace
) -> tuple[float, float, int]:
    """Search from group ``a`` of ``seeds`` to group ``b`` of ``entries``: time, length, nodes."""
    s_lo, s_hi = int(seeds.ptr[a]), int(seeds.ptr[a + 1])
    e_lo, e_hi = int(entries.ptr[b]), int(entries.ptr[b + 1])
    entry_node = entries.node[e_lo:e_hi]
    return leg_search(
        prepared.kernel_arrays(),
        (seeds.node[s_lo:s_hi], seeds.time_s[s_lo:s_hi], seeds.dist_m[s_lo:s_hi]),
        (entry_node, entries.time_s[e_lo:e_hi], entries.dist_m[e_lo:e_hi]),
        prepared.chains.core_targets(entry_node),
        *workspace,
    )


def _one_leg(
    network: RoadNetwork,
    points: SnapResult,
    net_leg: NetLeg,
    a: int,
    b: int,
    chains: dict[int, Chain] | None = None,
) -> LegPath:
    """The leg from point ``a`` to point ``b``: through the network, along their shared edge, or
    along a headed point's chain (its nodes before the network path from its junction)."""
    net_time, net_dist, nodes = net_leg(a, b)
    chains = chains or {}
    start = (float(points.lat[a]), float(points.lon[a]))
    end = (float(points.lat[b]), float(points.lon[b]))
    along: tuple[float, float, list[int]] = (np.inf, np.inf, [])
    for i, j, mine, is_source in ((a, b, a, True), (b, a, b, False)):
        if mine in chains:
            chain = chains[mine]
            time_s, dist_m = chain_cost(network, chain, is_source, points, i, points, j)
            if time_s < along[0]:
                lo, hi = _between(network, chain, points, a, b)
                along = (time_s, dist_m, chain.nodes(network)[lo:hi])
    if np.isfinite(net_time) and (a in chains or b in chains) and nodes.size:
        nodes = _through_chains(network, chains, a, b, nodes)
    direct_time, direct_dist = same_edge_cost(
        network,
        int(points.edge[a]),
        float(points.fraction[a]),
        int(points.reverse_edge[a]),
        int(points.edge[b]),
        float(points.fraction[b]),
        int(points.reverse_edge[b]),
    )
    if np.isfinite(direct_time) and direct_time <= net_time:  # the matrix's rule: ties go direct
        return LegPath(_coords([start, end]), np.zeros(0, dtype=np.int64), direct_time, direct_dist)
    if np.isfinite(along[0]) and along[0] <= net_time:
        chain_nodes = np.asarray(along[2], dtype=np.int64)
        node_coords = np.column_stack([network.lat[chain_nodes], network.lon[chain_nodes]])
        coords = np.vstack([np.asarray([start]), node_coords, np.asarray([end])])
        return LegPath(_coords(coords), chain_nodes, along[0], along[1])
    if not np.isfinite(net_time):
        return LegPath(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.inf, np.inf)
    node_coords = np.column_stack([network.lat[nodes], network.lon[nodes]])
    coords = np.vstack([np.asarray([start]), node_coords, np.asarray([end])])
    return LegPath(_coords(coords), nodes, float(net_time), float(net_dist))


def _between(
    network: RoadNetwork, chain: Chain, points: SnapResult, a: int, b: int
) -> tuple[int, int]:
    """The slice of ``chain.nodes`` passed between points ``a`` and ``b`` on it (in order)."""

    def position(p: int) -> int:
        edge, reverse = int(points.edge[p]), int(points.reverse_edge[p])
        for e in (edge, reverse):
            if e in chain.edges:
                return chain.edges.index(e)
        raise AssertionError("point not on the chain")  # pragma: no cover

    # node k + 1 of the chain is the head of edge k: a point on edge k passes it leaving
    return position(a) + 1, position(b) + 1


def _through_chains(
    network: RoadNetwork, chains: dict[int, Chain], a: int, b: int, nodes: I64
) -> I64:
    """The network path's nodes with the headed ends' chain nodes added: from ``a`` to its
    downstream junction, from the upstream junction of ``b`` to it."""
    parts = []
    if a in chains and int(nodes[0]) == chains[a].nodes(network)[-1]:
        parts.append(chains[a].nodes(network)[chains[a].at + 1 : -1])
    parts.append(nodes.tolist())
    if b in chains and int(nodes[-1]) == chains[b].nodes(network)[0]:
        parts.append(chains[b].nodes(network)[1 : chains[b].at + 1])
    return np.asarray([n for part in parts for n in part], dtype=np.int64)


def _coords(coords: npt.ArrayLike) -> F64:
    """Drop consecutive repeats; keep at least two points (a zero-length leg is ``[p, p]``)."""
    arr = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    keep = np.ones(arr.shape[0], dtype=np.bool_)
    keep[1:] = np.any(arr[1:] != arr[:-1], axis=1)
    out = arr[keep]
    if out.shape[0] == 1:
        out = np.vstack([out, out])
    out.flags.writeable = False
    return out


def warm_up() -> float:
    """Compile (or load from numba's on-disk cache) the path kernels (Dijkstra and hierarchy);
    return the seconds spent."""
    started = time.perf_counter()
    prepared = prepare_graph([0, 1, 2, 2], np.array([1, 2], np.int32), [1.0, 2.0], [10.0, 20.0])
    seeds = Seeds.from_groups([[(0, 0.5, 5.0)]])
    entries = Seeds.from_groups([[(2, 0.0, 0.0)]])
    found = _net_leg(prepared, seeds, entries, 0, 0, _workspace(3))
    if found != (3.5, 35.0, 3):  # pragma: no cover
        raise RuntimeError(f"path kernel self-check failed: {found}")
    with ChLegSearch(build_ch(prepared.graph), seeds, entries) as search:
        time_s, dist_m, nodes = search.leg(0, 0)
    if (time_s, dist_m, nodes.tolist()) != (3.5, 35.0, [0, 1, 2]):  # pragma: no cover
        raise RuntimeError(f"hierarchy path kernel self-check failed: {time_s, dist_m, nodes}")
    elapsed = time.perf_counter() - started
    logger.info("path kernel ready in %.2f s", elapsed)
    return elapsed
