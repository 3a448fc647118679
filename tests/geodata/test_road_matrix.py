"""Matrices between snapped points (geodata.road_matrix), checked against a brute force that
inserts the points into the graph as real nodes."""

from __future__ import annotations

import itertools
import logging
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy.sparse import csr_array
from scipy.sparse.csgraph import dijkstra

import geodata.prepared
from geodata import RoadNetwork
from geodata.matrix import (
    MatrixInputError,
    many_to_many_prepared,
    many_to_many_seeded,
    unreachable_pairs,
)
from geodata.paths import route_paths
from geodata.road_matrix import road_matrix, source_seeds, target_entries
from geodata.snap import Snapper, SnapResult
from tests.geodata.test_snap import at_m, grid_network, make_network, two_way_street


def on_edge(net: RoadNetwork, placements: list[tuple[int, int, float]]) -> SnapResult:
    """Points placed by hand: ``(u, v, fraction along u -> v)``, reverse edge when it exists."""
    edge, rev, frac, lat, lon = [], [], [], [], []
    for u, v, f in placements:
        edge.append(net.edge_index(u, v))
        try:
            rev.append(net.edge_index(v, u))
        except KeyError:
            rev.append(-1)
        frac.append(f)
        lat.append((1 - f) * net.lat[u] + f * net.lat[v])
        lon.append((1 - f) * net.lon[u] + f * net.lon[v])
    zeros = np.zeros(len(placements))
    return SnapResult(
        np.array(edge), np.array(frac), np.array(rev), lat, lon, zeros, lat, lon, 500.0
    )


def brute_force(net: RoadNetwork, points: SnapResult) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs times and lengths with every point inserted as a node (edges split there).

    A point at fraction 0 or 1 is the edge's end node itself. Lengths are those of the fastest
    path (the fixtures have no ties).
    """
    src, dst = net.sources(), net.indices
    n = net.n_nodes
    node_of = np.empty(len(points), dtype=np.int64)
    on_edges: dict[int, list[tuple[float, int]]] = {}  # directed edge -> [(fraction, node)]
    for i in range(len(points)):
        e, f, r = int(points.edge[i]), float(points.fraction[i]), int(points.reverse_edge[i])
        if f == 0.0:
            node_of[i] = src[e]
        elif f == 1.0:
            node_of[i] = dst[e]
        else:
            node_of[i] = n
            n += 1
            on_edges.setdefault(e, []).append((f, int(node_of[i])))
            if r >= 0:
                on_edges.setdefault(r, []).append((1.0 - f, int(node_of[i])))
    rows, cols, times, lengths = [], [], [], []
    for e in range(net.n_edges):
        chain = [(0.0, int(src[e])), *sorted(on_edges.get(e, [])), (1.0, int(dst[e]))]
        for (f0, a), (f1, b) in itertools.pairwise(chain):
            rows.append(a)
            cols.append(b)
            times.append((f1 - f0) * net.travel_time_s[e])
            lengths.append((f1 - f0) * net.length_m[e])
    graph = csr_array((times, (rows, cols)), shape=(n, n))
    length_of = dict(zip(zip(rows, cols, strict=True), lengths, strict=True))
    time_s, pred = dijkstra(graph, indices=node_of, return_predecessors=True)
    dist_m = np.full((len(points), len(points)), np.inf)
    for i in range(len(points)):
        for j, target in enumerate(node_of.tolist()):
            if np.isinf(time_s[i, target]):
                continue
            total, v = 0.0, target
            while v != node_of[i]:
                total += length_of[(int(pred[i, v]), v)]
                v = int(pred[i, v])
            dist_m[i, j] = total
    return time_s[:, node_of], dist_m


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matrix_equals_brute_force_with_points_as_nodes(seed):
    net = grid_network(5, seed=seed)
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-100, 500, size=(40, 2))
    xy[:4] = [(-50, -50), (450, 450), (100, 0), (200, 300)]  # on nodes (fraction 0 or 1)
    lat, lon = np.array([at_m(x, y) for x, y in xy]).T
    snaps = Snapper(net).snap(lat, lon)
    assert np.isin(snaps.fraction[:4], [0.0, 1.0]).all()
    expected_time, expected_dist = brute_force(net, snaps)

    result = road_matrix(net, snaps)
    assert result.shape == (40, 40)
    assert np.array_equal(np.isinf(result.durations_s), np.isinf(expected_time))
    finite = np.isfinite(expected_time)
    assert result.durations_s[finite] == pytest.approx(expected_time[finite], rel=1e-9, abs=1e-9)
    assert result.distances_m[finite] == pytest.approx(expected_dist[finite], rel=1e-9, abs=1e-9)
    assert np.diag(result.durations_s).tolist() == [0.0] * 40
    assert np.diag(result.distances_m).tolist() == [0.0] * 40

    # Rectangular, with targets given separately, and the serial kernel: same numbers.
    part = road_matrix(net, snaps.take([5, 1, 7]), snaps.take(range(10, 20)), threads=1)
    assert np.array_equal(part.durations_s, result.durations_s[np.ix_([5, 1, 7], range(10, 20))])


def test_same_edge_on_a_one_way_loop():
    """0 -> 1 -> 2 -> 0, 100 m each: downstream on the same edge is direct, upstream goes round."""
    net = make_network(
        [at_m(0, 0), at_m(100, 0), at_m(50, 86.6)], [(0, 1, 36.0), (1, 2, 36.0), (2, 0, 36.0)]
    )
    t = net.travel_time_s
    points = on_edge(net, [(0, 1, 0.2), (0, 1, 0.7)])
    m = road_matrix(net, points)
    assert m.durations_s[0, 1] == pytest.approx(0.5 * t[0])
    assert m.distances_m[0, 1] == pytest.approx(0.5 * net.length_m[0])
    assert m.durations_s[1, 0] == pytest.approx(0.3 * t[0] + t[1] + t[2] + 0.2 * t[0])
    assert m.durations_s[[0, 1], [0, 1]].tolist() == [0.0, 0.0]


def test_same_edge_on_a_two_way_street_uses_each_direction():
    net = two_way_street()  # 36 km/h eastwards, 18 km/h westwards
    fwd, bwd = net.edge_index(0, 1), net.edge_index(1, 0)
    points = on_edge(net, [(0, 1, 0.25), (0, 1, 0.75)])
    m = road_matrix(net, points)
    assert m.durations_s[0, 1] == pytest.approx(0.5 * net.travel_time_s[fwd])
    assert m.durations_s[1, 0] == pytest.approx(0.5 * net.travel_time_s[bwd])
    assert m.durations_s[1, 0] == pytest.approx(2 * m.durations_s[0, 1])
    assert m.distances_m == pytest.approx(np.array([[0, 100], [100, 0]]), rel=1e-3)


def test_a_point_on_a_node_of_a_one_way_street_leaves_by_any_edge():
    """Point 0 sits on node 0 (fraction 0 of the one-way 0 -> 1) and can take 0 -> 2."""
    net = make_network(
        [at_m(0, 0), at_m(100, 0), at_m(0, 100)],
        [(0, 1, 36.0), (0, 2, 36.0), (2, 0, 36.0), (1, 2, 36.0)],
    )
    points = on_edge(net, [(0, 1, 0.0), (0, 2, 0.5), (0, 1, 1.0), (1, 2, 0.0)])
    m = road_matrix(net, points)
    t02 = net.travel_time_s[net.edge_index(0, 2)]
    assert m.durations_s[0, 1] == pytest.approx(0.5 * t02)
    assert m.durations_s[2, 3] == 0.0  # both are node 1
    assert m.durations_s[3, 2] == 0.0


def test_unreachable_pairs_are_inf_and_logged(caplog):
    """Two one-way streets that do not meet."""
    net = make_network(
        [at_m(0, 0), at_m(100, 0), at_m(0, 500), at_m(100, 500)], [(0, 1, 36.0), (2, 3, 36.0)]
    )
    points = on_edge(net, [(0, 1, 0.3), (0, 1, 0.6), (2, 3, 0.5)])
    with caplog.at_level(logging.WARNING, logger="geodata.road_matrix"):
        m = road_matrix(net, points)
    assert np.isinf(m.durations_s[1, 0])
    assert np.isinf(m.distances_m[1, 0])
    assert np.isfinite(m.durations_s[0, 1])
    assert unreachable_pairs(m).tolist() == [[0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    assert "5 of 9 point pairs have no road path" in caplog.text


def test_points_from_another_network_are_rejected():
    net = two_way_street()
    other = grid_network(4, seed=1)
    snaps = Snapper(other).snap(*at_m(250, 150))
    with pytest.raises(MatrixInputError, match=r"sources\.edge must be edge ids"):
        road_matrix(net, snaps, on_edge(net, [(0, 1, 0.5)]))
    bad = on_edge(net, [(0, 1, 0.5)])
    wrong_reverse = SnapResult(
        bad.edge, bad.fraction, bad.edge, bad.lat, bad.lon, bad.distance_m, bad.lat, bad.lon, 1.0
    )
    with pytest.raises(MatrixInputError, match=r"targets.reverse_edge\[0\] = 0 is not the opp"):
        road_matrix(net, bad, wrong_reverse)
    out_of_range = SnapResult(
        bad.edge, [1.5], bad.reverse_edge, bad.lat, bad.lon, bad.distance_m, bad.lat, bad.lon, 1.0
    )
    with pytest.raises(MatrixInputError, match=r"fraction must lie in \[0, 1\]"):
        road_matrix(net, out_of_range)
    with pytest.raises(MatrixInputError, match="must be a SnapResult"):
        road_matrix(net, "points")  # type: ignore[arg-type]


def test_empty_point_sets():
    net = two_way_street()
    none = Snapper(net).snap([], [])
    assert road_matrix(net, none).shape == (0, 0)
    assert road_matrix(net, none, on_edge(net, [(0, 1, 0.5)])).shape == (0, 1)


def test_the_network_is_prepared_once_and_reused(monkeypatch):
    """A second matrix (and the paths) on the same network reuse its prepared graph."""
    builds = []
    build_chains = geodata.prepared.build_chains

    def counting(graph):
        builds.append(graph)
        return build_chains(graph)

    monkeypatch.setattr(geodata.prepared, "build_chains", counting)
    net = grid_network(6, seed=4)
    xy = np.random.default_rng(4).uniform(-100, 600, size=(9, 2))
    points = Snapper(net).snap(*np.array([at_m(x, y) for x, y in xy]).T)
    first = road_matrix(net, points)
    second = road_matrix(net, points, threads=1)
    legs = route_paths(net, points)
    assert len(builds) == 1
    assert net.prepared() is net.prepared()
    np.testing.assert_array_equal(first.durations_s, second.durations_s)
    np.testing.assert_array_equal(first.distances_m, second.distances_m)
    assert [leg.time_s for leg in legs] == [first.durations_s[i, i + 1] for i in range(8)]
    # The raw-array API prepares per call (not the network's: still one build of that) and gives
    # the same matrix, bit for bit, on the prepared graph's times (on the exact grid).
    grid_times = net.prepared().graph.weight
    assert np.max(np.abs(grid_times - net.travel_time_s)) <= 2.0 ** -net.prepared().time_bits
    raw = many_to_many_seeded(
        net.indptr,
        net.indices,
        grid_times,
        net.length_m,
        source_seeds(net, points),
        target_entries(net, points),
    )
    prepared = many_to_many_prepared(
        net.prepared(), source_seeds(net, points), target_entries(net, points)
    )
    assert len(builds) == 1
    np.testing.assert_array_equal(raw.durations_s, prepared.durations_s)
    np.testing.assert_array_equal(raw.distances_m, prepared.distances_m)


def test_concurrent_first_calls_prepare_the_network_once(monkeypatch):
    builds = []
    build_chains = geodata.prepared.build_chains
    start = threading.Barrier(4)

    def slow_counting(graph):
        builds.append(graph)
        time.sleep(0.05)
        return build_chains(graph)

    monkeypatch.setattr(geodata.prepared, "build_chains", slow_counting)
    net = grid_network(5, seed=5)

    def prepare(_: int):
        start.wait(timeout=30)
        return net.prepared()

    with ThreadPoolExecutor(4) as pool:
        prepared = list(pool.map(prepare, range(4)))
    assert len(builds) == 1
    assert all(p is prepared[0] for p in prepared)
    # Pickling (to worker processes) drops the prepared form; the copy prepares its own.
    copy = pickle.loads(pickle.dumps(net))
    assert copy.prepared() is not prepared[0]
    np.testing.assert_array_equal(copy.prepared().chains.head, prepared[0].chains.head)
