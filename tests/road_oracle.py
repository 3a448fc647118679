"""An independent road-travel oracle for tests: snapping by brute force and scipy's Dijkstra on
the network with the snapped points inserted as real nodes (edges split at the points).

It shares nothing with ``geodata.snap`` / ``geodata.road_matrix`` but the ``RoadNetwork``
arrays, so a solution over roads can be checked by ``tests.checker`` through a client-matrix
copy of the model (:func:`as_matrix_model`).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from engine.model import DurationDistanceMatrix, ShipmentModel
from geodata.network import RoadNetwork

R = 6_371_008.8


def _local_xy(network: RoadNetwork, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    lat0 = np.radians(network.lat.mean())
    x = np.radians(lon - network.lon.mean()) * np.cos(lat0) * R
    y = np.radians(lat - network.lat.mean()) * R
    return np.column_stack([x, y])


def snap_brute_force(network: RoadNetwork, lat: np.ndarray, lon: np.ndarray):
    """(edge, fraction) of the nearest directed edge's segment for each point."""
    src = np.repeat(np.arange(network.n_nodes), np.diff(network.indptr))
    dst = network.indices.astype(np.int64)
    nodes = _local_xy(network, network.lat, network.lon)
    pts = _local_xy(network, np.asarray(lat, float), np.asarray(lon, float))
    a, b = nodes[src], nodes[dst]
    d = b - a
    den = (d**2).sum(axis=1)
    edges, fractions = [], []
    for p in pts:
        t = np.clip(((p - a) * d).sum(axis=1) / np.where(den > 0, den, 1), 0, 1)
        proj = a + t[:, None] * d
        dist = ((proj - p) ** 2).sum(axis=1)
        e = int(np.argmin(dist))
        edges.append(e)
        fractions.append(float(t[e]))
    return np.array(edges), np.array(fractions), src, dst


def road_matrix_oracle(network: RoadNetwork, lat: np.ndarray, lon: np.ndarray):
    """(durations_s, distances_m) between the points, inf where unreachable."""
    edges, fractions, src, dst = snap_brute_force(network, lat, lon)
    n, m = network.n_nodes, len(edges)
    # Each snapped point lies on a geometric segment; both directed edges of that segment
    # (when both exist) are split at it.
    reverse = {}
    for e in range(len(src)):
        reverse[(int(src[e]), int(dst[e]))] = e
    split: dict[int, list[tuple[float, int]]] = {}
    for k, (e, f) in enumerate(zip(edges, fractions, strict=True)):
        split.setdefault(int(e), []).append((f, n + k))
        r = reverse.get((int(dst[e]), int(src[e])))
        if r is not None:
            split.setdefault(r, []).append((1.0 - f, n + k))
    rows, cols, times, lengths = [], [], [], []
    for e in range(len(src)):
        t, length = network.travel_time_s[e], network.length_m[e]
        chain = [(0.0, int(src[e])), *sorted(split.get(e, [])), (1.0, int(dst[e]))]
        for (f0, u), (f1, v) in itertools.pairwise(chain):
            rows.append(u)
            cols.append(v)
            times.append((f1 - f0) * t)
            lengths.append((f1 - f0) * length)
    size = n + m
    # Keep the minimum over parallel arcs (scipy's constructor would sum them).
    order = np.lexsort((np.array(times), np.array(cols), np.array(rows)))
    r, c = np.array(rows)[order], np.array(cols)[order]
    first = np.ones(len(r), dtype=bool)
    first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    keep = order[first]
    tarr, larr = np.array(times)[keep], np.array(lengths)[keep]
    graph = sp.csr_matrix(
        (tarr + 1e-300, (np.array(rows)[keep], np.array(cols)[keep])), (size, size)
    )
    length_of = {
        (int(u), int(v)): float(w)
        for u, v, w in zip(np.array(rows)[keep], np.array(cols)[keep], larr, strict=True)
    }
    dur, pred = dijkstra(graph, indices=np.arange(n, n + m), return_predecessors=True)
    durations = dur[:, n:]
    distances = np.full((m, m), np.inf)
    for i in range(m):
        for j in range(m):
            if i == j:
                distances[i, j] = 0.0
                durations[i, j] = 0.0
                continue
            if not np.isfinite(durations[i, j]):
                continue
            total, v = 0.0, n + j
            while v != n + i:
                u = pred[i, v]
                total += length_of[(int(u), int(v))]
                v = u
            distances[i, j] = total
    return durations, distances


def as_matrix_model(
    model: ShipmentModel, network: RoadNetwork, vehicle_networks: list[RoadNetwork] | None = None
) -> ShipmentModel:
    """``model`` with every location replaced by a tag and the oracle's road matrix between
    them, so ``tests.checker`` can verify a road solution. With ``vehicle_networks`` (one per
    vehicle, for travel modes; every vehicle needs a start location), one matrix per distinct
    network, selected by a ``net{k}`` start tag, and the vehicles' travel modes cleared."""
    locs: dict[tuple[float, float], str] = {}

    def tag(loc) -> tuple[str, ...]:
        if loc is None:
            return ()
        key = (loc.latitude, loc.longitude)
        return (locs.setdefault(key, f"p{len(locs)}"),)

    shipments = tuple(
        replace(
            s,
            pickups=tuple(replace(v, tags=tag(v.arrival_location)) for v in s.pickups),
            deliveries=tuple(replace(v, tags=tag(v.arrival_location)) for v in s.deliveries),
        )
        for s in model.shipments
    )
    vehicles = tuple(
        replace(v, start_tags=tag(v.start_location), end_tags=tag(v.end_location))
        for v in model.vehicles
    )
    coords = np.array(list(locs), dtype=float)
    matrices: tuple[DurationDistanceMatrix, ...]
    if vehicle_networks is None:
        durations, distances = road_matrix_oracle(network, coords[:, 0], coords[:, 1])
        matrices = (DurationDistanceMatrix(durations, distances),)
    else:
        distinct = list({id(n): n for n in vehicle_networks}.values())
        matrices = tuple(
            DurationDistanceMatrix(
                *road_matrix_oracle(net, coords[:, 0], coords[:, 1]), vehicle_start_tag=f"net{k}"
            )
            for k, net in enumerate(distinct)
        )
        vehicles = tuple(
            replace(
                v,
                start_tags=(*v.start_tags, f"net{distinct.index(net)}"),
                travel_mode=type(v.travel_mode)(0),
            )
            for v, net in zip(vehicles, vehicle_networks, strict=True)
        )
    tags = tuple(locs.values())
    return replace(
        model,
        shipments=shipments,
        vehicles=vehicles,
        duration_distance_matrices=matrices,
        duration_distance_matrix_src_tags=tags,
        duration_distance_matrix_dst_tags=tags,
    )


def headed_matrix_oracle(network: RoadNetwork, points: list[tuple[float, float, int | None]]):
    """(durations_s, distances_m) between points ``(lat, lon, toward)``: ``toward`` None is a
    plain point; a network node id is a headed point (``avoid_u_turns``) reached and left only in
    the direction of travel toward that node (an end of its snapped segment).

    An arc-based Dijkstra (scipy on the line graph) on the network with the distinct locations
    inserted as nodes, where turning back (``x -> y -> x``) is forbidden at every inserted point
    and every node with exactly two distinct neighbours (a shape point: no junction). Shortest
    paths between plain points never turn back there, so plain values equal
    :func:`road_matrix_oracle`'s. A location snapped exactly onto a junction (a node with other
    than two neighbours) is that junction: not restricted.
    """
    locations = list(dict.fromkeys((lat, lon) for lat, lon, _ in points))
    lat = np.array([p[0] for p in locations])
    lon = np.array([p[1] for p in locations])
    edges, fractions, src, dst = snap_brute_force(network, lat, lon)
    n = network.n_nodes
    reverse = {(int(src[e]), int(dst[e])): e for e in range(len(src))}
    split: dict[int, list[tuple[float, int]]] = {}
    for k, (e, f) in enumerate(zip(edges, fractions, strict=True)):
        split.setdefault(int(e), []).append((float(f), n + k))
        r = reverse.get((int(dst[e]), int(src[e])))
        if r is not None:
            split.setdefault(r, []).append((1.0 - float(f), n + k))
    arcs: list[tuple[int, int, float, float, int]] = []  # (from, to, time, length, original edge)
    for e in range(len(src)):
        t, length = network.travel_time_s[e], network.length_m[e]
        chain = [(0.0, int(src[e])), *sorted(split.get(e, [])), (1.0, int(dst[e]))]
        for (f0, u), (f1, v) in itertools.pairwise(chain):
            arcs.append((u, v, (f1 - f0) * t, (f1 - f0) * length, e))
    neighbours: dict[int, set[int]] = {}
    for u, v in zip(src.tolist(), dst.tolist(), strict=True):  # the network's own edges
        neighbours.setdefault(u, set()).add(v)
        neighbours.setdefault(v, set()).add(u)
    no_turn = {x for x, near in neighbours.items() if len(near) == 2}
    no_turn |= set(range(n, n + len(locations)))
    leaving: dict[int, list[int]] = {}
    for a, (u, *_rest) in enumerate(arcs):
        leaving.setdefault(u, []).append(a)
    rows, cols, weights = [], [], []
    for a, (u, v, *_rest) in enumerate(arcs):
        for b in leaving.get(v, []):
            if arcs[b][1] == u and v in no_turn:
                continue
            rows.append(a)
            cols.append(b)
            weights.append(arcs[b][2] + 1e-300)
    size = len(arcs)
    graph = sp.csr_matrix((weights, (rows, cols)), (size, size))

    def ends(point: tuple[float, float, int | None], out: bool) -> list[int]:
        lat_, lon_, toward = point
        k = locations.index((lat_, lon_))
        node = n + k
        on = {0.0: int(src[edges[k]]), 1.0: int(dst[edges[k]])}.get(float(fractions[k]))
        if on is not None and len(neighbours[on]) != 2:
            toward = None  # on a junction
        found = []
        for a, (u, v, _t, _l, e) in enumerate(arcs):
            if (u if out else v) != node:
                continue
            if toward is not None and int(dst[e]) != toward:
                continue  # the other direction of travel
            found.append(a)
        return found

    starts = sorted({a for p in points for a in ends(p, True)})
    dist, pred = dijkstra(graph, indices=starts, return_predecessors=True)
    m = len(points)
    durations, distances = np.full((m, m), np.inf), np.full((m, m), np.inf)
    for i, p in enumerate(points):
        for j, q in enumerate(points):
            if p[:2] == q[:2] and (p[2] is None or q[2] is None or p[2] == q[2]):
                durations[i, j] = distances[i, j] = 0.0
                continue
            for s in ends(p, True):
                row = starts.index(s)
                for t in ends(q, False):
                    time_s = arcs[s][2] + (0.0 if s == t else dist[row, t])
                    if time_s < durations[i, j]:
                        length, a = arcs[s][3], t
                        while a != s:
                            length += arcs[a][3]
                            a = pred[row, a]
                        durations[i, j], distances[i, j] = time_s, length
    return durations, distances
