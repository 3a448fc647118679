"""Road paths between snapped points: the node sequence and its coordinates, for drawing routes.

A leg from point ``a`` to point ``b`` (both from :class:`geodata.snap.Snapper`) starts at ``a``'s
snapped position, runs along the partial first edge to its first node, through the network, and
along the partial last edge to ``b``'s snapped position. Its cost is the matrix entry
:func:`geodata.road_matrix.road_matrix` gives for ``(a, b)``: the same seeds, entries and
same-edge rule, and a Dijkstra search that yields the same times bit for bit (float sums along a
path are monotone, so every exact Dijkstra finds the same minima). When several paths tie on time,
the one chosen (and so its distance) may differ from the matrix's.

The search is a single-source (multi-seed) Dijkstra with an indexed binary heap and predecessor
links that stops as soon as the target's entry nodes are settled (:func:`_leg_search`, a numba
kernel; call :func:`warm_up` once at start-up so no request pays for compilation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit

from geodata.matrix import MatrixInputError, Seeds
from geodata.network import RoadNetwork
from geodata.polyline import DEFAULT_PRECISION, encode_polyline
from geodata.road_matrix import same_edge_cost, source_seeds, target_entries, validate_points
from geodata.snap import SnappedPoint, SnapResult

__all__ = ["LegPath", "leg_path", "route_paths", "warm_up"]

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

_NOT_REACHED = -1
_SETTLED = -2

_F = TypeVar("_F", bound=Callable[..., Any])


def _kernel() -> Callable[[_F], _F]:
    """``njit(cache=True, nogil=True)``, typed so that mypy keeps the kernel's own signature."""
    return cast("Callable[[_F], _F]", njit(cache=True, nogil=True))


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
    network: RoadNetwork, points: SnapResult, order: Sequence[int] | npt.ArrayLike | None = None
) -> list[LegPath]:
    """The legs of a route visiting ``points[order[0]], points[order[1]], ...`` in turn.

    ``order`` defaults to ``0 .. len(points) - 1``; ``len(order) - 1`` legs are returned (none
    for fewer than two stops). Snap all of a request's locations once, then pass each vehicle's
    visit order here.

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

    seeds, entries = source_seeds(network, points), target_entries(network, points)
    n = network.n_nodes
    indices = np.ascontiguousarray(network.indices, dtype=np.int32)
    workspace = (
        np.full(n, np.inf),  # dist
        np.empty(n, dtype=np.float64),  # dist_m
        np.empty(n, dtype=np.int32),  # pred
        np.full(n, _NOT_REACHED, dtype=np.int32),  # pos
        np.empty(n, dtype=np.int32),  # heap_node
        np.empty(n, dtype=np.float64),  # heap_key
        np.empty(n, dtype=np.int32),  # touched
        np.empty(n, dtype=np.int32),  # path_out
    )
    legs = []
    for a, b in zip(stops[:-1].tolist(), stops[1:].tolist(), strict=True):
        legs.append(_one_leg(network, indices, points, seeds, entries, a, b, workspace))
    logger.debug("%d leg paths on %d nodes in %.3f s", len(legs), n, time.perf_counter() - started)
    return legs


def _one_leg(
    network: RoadNetwork,
    indices: I32,
    points: SnapResult,
    seeds: Seeds,
    entries: Seeds,
    a: int,
    b: int,
    workspace: tuple[F64, F64, I32, I32, I32, F64, I32, I32],
) -> LegPath:
    s_lo, s_hi = int(seeds.ptr[a]), int(seeds.ptr[a + 1])
    e_lo, e_hi = int(entries.ptr[b]), int(entries.ptr[b + 1])
    net_time, net_dist, n_path = _leg_search(
        network.indptr,
        indices,
        network.travel_time_s,
        network.length_m,
        seeds.node[s_lo:s_hi],
        seeds.time_s[s_lo:s_hi],
        seeds.dist_m[s_lo:s_hi],
        entries.node[e_lo:e_hi],
        entries.time_s[e_lo:e_hi],
        entries.dist_m[e_lo:e_hi],
        *workspace,
    )
    direct_time, direct_dist = same_edge_cost(
        network,
        int(points.edge[a]),
        float(points.fraction[a]),
        int(points.reverse_edge[a]),
        int(points.edge[b]),
        float(points.fraction[b]),
        int(points.reverse_edge[b]),
    )
    start = (float(points.lat[a]), float(points.lon[a]))
    end = (float(points.lat[b]), float(points.lon[b]))
    if np.isfinite(direct_time) and direct_time <= net_time:  # the matrix's rule: ties go direct
        return LegPath(_coords([start, end]), np.zeros(0, dtype=np.int64), direct_time, direct_dist)
    if not np.isfinite(net_time):
        return LegPath(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.inf, np.inf)
    nodes = workspace[7][:n_path].astype(np.int64)
    node_coords = np.column_stack([network.lat[nodes], network.lon[nodes]])
    coords = np.vstack([np.asarray([start]), node_coords, np.asarray([end])])
    return LegPath(_coords(coords), nodes, float(net_time), float(net_dist))


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


@_kernel()
def _sift_up(heap_node: I32, heap_key: F64, pos: I32, i: int, node: int, key: float) -> None:
    while i > 0:
        parent = (i - 1) >> 1
        if heap_key[parent] <= key:
            break
        heap_node[i] = heap_node[parent]
        heap_key[i] = heap_key[parent]
        pos[heap_node[i]] = i
        i = parent
    heap_node[i] = node
    heap_key[i] = key
    pos[node] = i


@_kernel()
def _sift_down(heap_node: I32, heap_key: F64, pos: I32, size: int, node: int, key: float) -> None:
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and heap_key[child + 1] < heap_key[child]:
            child += 1
        if heap_key[child] >= key:
            break
        heap_node[i] = heap_node[child]
        heap_key[i] = heap_key[child]
        pos[heap_node[i]] = i
        i = child
    heap_node[i] = node
    heap_key[i] = key
    pos[node] = i


@_kernel()
def _leg_search(
    indptr: I64,
    indices: I32,
    weight: F64,
    length: F64,
    seed_node: I32,
    seed_time: F64,
    seed_dist: F64,
    entry_node: I32,
    entry_time: F64,
    entry_dist: F64,
    dist: F64,
    dist_m: F64,
    pred: I32,
    pos: I32,
    heap_node: I32,
    heap_key: F64,
    touched: I32,
    path_out: I32,
) -> tuple[float, float, int]:
    """Fastest path from the seeds to the best entry; return ``(time, dist, n_path_nodes)``.

    On entry ``dist`` is ``inf`` and ``pos`` is ``-1`` everywhere, and so again on return. The
    path's nodes are written to ``path_out[:n_path_nodes]`` (first seed node first). Times are
    ``seed + edges... + entry`` summed left to right, as the matrix kernel does, and the length is
    carried along the first-found fastest path (updated only on strictly better times).
    """
    n_touched = 0
    size = 0
    for k in range(seed_node.shape[0]):
        v = seed_node[k]
        t = seed_time[k]
        if t < dist[v]:
            dist[v] = t
            dist_m[v] = seed_dist[k]
            pred[v] = -1
            if pos[v] == _NOT_REACHED:
                touched[n_touched] = v
                n_touched += 1
                _sift_up(heap_node, heap_key, pos, size, v, t)
                size += 1
            else:
                _sift_up(heap_node, heap_key, pos, pos[v], v, t)

    remaining = 0  # distinct entry nodes not yet settled
    for k in range(entry_node.shape[0]):
        first = True
        for k2 in range(k):
            if entry_node[k2] == entry_node[k]:
                first = False
        if first:
            remaining += 1

    while size > 0 and remaining > 0:
        u = heap_node[0]
        du = heap_key[0]
        pos[u] = _SETTLED
        size -= 1
        if size > 0:
            _sift_down(heap_node, heap_key, pos, size, heap_node[size], heap_key[size])
        for k in range(entry_node.shape[0]):
            if entry_node[k] == u:
                remaining -= 1
                break
        if remaining == 0:
            break
        lu = dist_m[u]
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            t = du + weight[e]
            if t < dist[v]:
                dist[v] = t
                dist_m[v] = lu + length[e]
                pred[v] = u
                if pos[v] == _NOT_REACHED:
                    touched[n_touched] = v
                    n_touched += 1
                    _sift_up(heap_node, heap_key, pos, size, v, t)
                    size += 1
                else:
                    _sift_up(heap_node, heap_key, pos, pos[v], v, t)

    best_time = np.inf
    best_dist = np.inf
    best_node = -1
    for k in range(entry_node.shape[0]):
        v = entry_node[k]
        t = dist[v] + entry_time[k]
        if t < best_time:
            best_time = t
            best_dist = dist_m[v] + entry_dist[k]
            best_node = v

    n_path = 0
    if best_node >= 0:
        v = best_node
        while v >= 0:
            n_path += 1
            v = pred[v]
        v = best_node
        for i in range(n_path - 1, -1, -1):
            path_out[i] = v
            v = pred[v]

    for k in range(n_touched):
        v = touched[k]
        dist[v] = np.inf
        pos[v] = _NOT_REACHED
    return best_time, best_dist, n_path


def warm_up() -> float:
    """Compile (or load from numba's on-disk cache) the path kernel; return the seconds spent."""
    started = time.perf_counter()
    n = 3
    indptr = np.array([0, 1, 2, 2], dtype=np.int64)
    indices = np.array([1, 2], dtype=np.int32)
    weight, length = np.array([1.0, 2.0]), np.array([10.0, 20.0])
    for arr in (indptr, indices, weight, length):  # RoadNetwork arrays are read-only: own type
        arr.flags.writeable = False
    _leg_search(
        indptr,
        indices,
        weight,
        length,
        np.array([0], dtype=np.int32),
        np.array([0.5]),
        np.array([5.0]),
        np.array([2], dtype=np.int32),
        np.array([0.0]),
        np.array([0.0]),
        np.full(n, np.inf),
        np.empty(n),
        np.empty(n, dtype=np.int32),
        np.full(n, _NOT_REACHED, dtype=np.int32),
        np.empty(n, dtype=np.int32),
        np.empty(n),
        np.empty(n, dtype=np.int32),
        np.empty(n, dtype=np.int32),
    )
    elapsed = time.perf_counter() - started
    logger.info("path kernel ready in %.2f s", elapsed)
    return elapsed
