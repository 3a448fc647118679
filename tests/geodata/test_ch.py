"""Contraction hierarchies: times bit-identical to scipy's Dijkstra, distances of a fastest path.

Graphs come from the strategies of the matrix tests (random multigraphs and road-like graphs of
junctions and chains), with times on a binary grid (multiples of 1/8 s, zeros and ties included),
where every float sum is exact and a hierarchy must give Dijkstra's times bit for bit. Real
extracts are © OpenStreetMap contributors (ODbL).
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import dijkstra

from geodata.ch import ChInexactError, build_ch, ch_many_to_many, exact_grid
from geodata.matrix import Seeds, many_to_many_seeded
from geodata.prepared import validate_graph
from tests.geodata.test_matrix import EdgeList, any_graphs, path_length, random_seeds

ROOT = Path(__file__).resolve().parents[2]
OSM = ROOT.parent / "shared" / "data" / "osm"
SETTINGS = settings(max_examples=150, deadline=None)


def on_grid(edges: EdgeList, bits: int = 3) -> EdgeList:
    """The same graph with times rounded to multiples of ``2**-bits`` s."""
    scale = float(2**bits)
    return EdgeList(edges.n, edges.u, edges.v, np.round(edges.w * scale) / scale, edges.length)


def hierarchy(edges: EdgeList) -> Any:
    return build_ch(validate_graph(*edges.csr()))


def lexicographic(edges: EdgeList, source: int) -> dict[int, tuple[float, float]]:
    """Least ``(time, length)`` from ``source`` (a plain reference Dijkstra on pairs)."""
    best: dict[int, tuple[float, float]] = {source: (0.0, 0.0)}
    adj: dict[int, list[tuple[int, float, float]]] = {}
    for a, b, w, ln in zip(edges.u, edges.v, edges.w, edges.length, strict=True):
        adj.setdefault(int(a), []).append((int(b), float(w), float(ln)))
    heap = [(0.0, 0.0, source)]
    done: set[int] = set()
    while heap:
        t, ln, x = heapq.heappop(heap)
        if x in done:
            continue
        done.add(x)
        for y, w, el in adj.get(x, []):
            cand = (t + w, ln + el)
            if y not in best or cand < best[y]:
                best[y] = cand
                heapq.heappush(heap, (*cand, y))
    return best


@SETTINGS
@given(any_graphs(float_weights=True))
def test_times_equal_scipy_exactly(case: tuple[EdgeList, list[int], list[int]]) -> None:
    edges, sources, targets = case
    edges = on_grid(edges)
    ch = hierarchy(edges)
    expected = dijkstra(edges.scipy(), directed=True, indices=sources)[:, targets]
    for threads in (1, 2):
        times, dists = ch_many_to_many(
            ch, Seeds.from_nodes(sources), Seeds.from_nodes(targets), threads=threads
        )
        np.testing.assert_array_equal(times, expected)
        np.testing.assert_array_equal(np.isinf(dists), np.isinf(expected))


@SETTINGS
@given(any_graphs(float_weights=False))
def test_distances_follow_the_fastest_path(case: tuple[EdgeList, list[int], list[int]]) -> None:
    """Times on a fine grid (no ties): the fastest path is unique, it is scipy's path."""
    edges, sources, targets = case
    edges = on_grid(edges, bits=20)
    times, pred = dijkstra(edges.scipy(), directed=True, indices=sources, return_predecessors=True)
    got_t, got_d = ch_many_to_many(
        hierarchy(edges), Seeds.from_nodes(sources), Seeds.from_nodes(targets)
    )
    np.testing.assert_array_equal(got_t, times[:, targets])
    for i, s in enumerate(sources):
        for j, t in enumerate(targets):
            if np.isinf(times[i, t]):
                assert np.isinf(got_d[i, j])
            else:
                assert got_d[i, j] == pytest.approx(path_length(edges, pred[i], s, t), rel=1e-12)


@SETTINGS
@given(any_graphs(float_weights=True))
def test_ties_on_time_keep_the_shortest_path(case: tuple[EdgeList, list[int], list[int]]) -> None:
    """Integer times (many ties, zero-time edges excluded): the length is the least among the
    fastest paths."""
    edges, sources, targets = case
    edges = EdgeList(edges.n, edges.u, edges.v, np.floor(edges.w / 2000.0) + 1.0, edges.length)
    got_t, got_d = ch_many_to_many(
        hierarchy(edges), Seeds.from_nodes(sources), Seeds.from_nodes(targets)
    )
    for i, s in enumerate(sources):
        best = lexicographic(edges, s)
        for j, t in enumerate(targets):
            if t not in best:
                assert np.isinf(got_t[i, j])
                assert np.isinf(got_d[i, j])
            else:
                assert got_t[i, j] == best[t][0]
                assert got_d[i, j] == pytest.approx(best[t][1], rel=1e-9, abs=1e-9)


@st.composite
def seeded_cases(draw: st.DrawFn) -> tuple[EdgeList, Seeds, Seeds]:
    edges, _, _ = draw(any_graphs(float_weights=False))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sources = random_seeds(draw, edges.n, rng)
    targets = random_seeds(draw, edges.n, rng)

    def grid(s: Seeds) -> Seeds:
        return Seeds(s.ptr, s.node, np.round(s.time_s * 1024) / 1024, s.dist_m)

    return on_grid(edges, bits=10), grid(sources), grid(targets)


@SETTINGS
@given(seeded_cases())
def test_seeded_groups_equal_the_dijkstra_kernel(case: tuple[EdgeList, Seeds, Seeds]) -> None:
    edges, sources, targets = case
    expected = many_to_many_seeded(*edges.csr(), sources, targets, threads=1)
    times, dists = ch_many_to_many(hierarchy(edges), sources, targets, threads=2)
    np.testing.assert_array_equal(times, expected.durations_s)
    np.testing.assert_allclose(dists, expected.distances_m, rtol=1e-12)


def test_hand_checked_example_and_unreachable() -> None:
    # 0 -> 1 -> 2 is slower but shorter than 0 -> 2; 3 is isolated.
    edges = EdgeList(4, [0, 1, 0, 0], [1, 2, 2, 2], [5.0, 5.0, 8.0, 9.0], [10, 10, 500, 1])
    times, dists = ch_many_to_many(
        hierarchy(edges), Seeds.from_nodes([0, 2, 3]), Seeds.from_nodes([2, 0, 3])
    )
    inf = np.inf
    assert times.tolist() == [[8.0, 0.0, inf], [0.0, inf, inf], [inf, inf, 0.0]]
    assert dists.tolist() == [[500.0, 0.0, inf], [0.0, inf, inf], [inf, inf, 0.0]]


def test_exact_grid() -> None:
    assert exact_grid(np.array([1.0, 2.0, 0.0])) == 0
    assert exact_grid(np.array([0.5, 0.125])) == 3
    assert exact_grid(np.array([3.0, 4.0]), np.array([0.25])) == 2
    assert exact_grid(np.array([0.1])) == 55  # alone, its multiples below 0.25 are exact
    assert exact_grid(np.array([0.1, 1.0])) is None  # 1.1 would need 55 fractional bits
    assert exact_grid(np.array([2.0**42, 2.0**-12])) is None  # the total would round
    assert exact_grid(np.zeros(3)) == 0


def test_off_grid_times_are_refused() -> None:
    edges = EdgeList(3, [0, 1], [1, 2], [0.1, 1.0], [1.0, 1.0])
    with pytest.raises(ChInexactError):
        hierarchy(edges)
    ch = hierarchy(EdgeList(2, [0], [1], [1.0], [1.0]))
    with pytest.raises(ChInexactError):
        ch_many_to_many(ch, Seeds.from_groups([[(0, 0.1, 0.0)]]), Seeds.from_nodes([1]))


def test_empty_sides_and_bad_nodes() -> None:
    ch = hierarchy(EdgeList(3, [0, 1], [1, 2], [1.0, 2.0], [1.0, 2.0]))
    assert ch_many_to_many(ch, Seeds.from_nodes([]), Seeds.from_nodes([0]))[0].shape == (0, 1)
    assert ch_many_to_many(ch, Seeds.from_nodes([1]), Seeds.from_nodes([]))[1].shape == (1, 0)
    with pytest.raises(ValueError, match="source_seeds"):
        ch_many_to_many(ch, Seeds.from_nodes([3]), Seeds.from_nodes([0]))


@pytest.mark.parametrize("name", ["monaco.osm.pbf", "andorra.osm.pbf"])
def test_osm_extract_equals_scipy(name: str, tmp_path: Path) -> None:
    path = OSM / name
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/data/osm)")
    from geodata.ingest.cache import load_network

    net, _ = load_network(path, cache_dir=tmp_path)
    weight = np.round(net.travel_time_s * 2.0**20) / 2.0**20
    graph = validate_graph(net.indptr, net.indices, weight, net.length_m)
    ch = build_ch(graph)
    rng = np.random.default_rng(7)
    sources = rng.integers(0, net.n_nodes, 40)
    targets = rng.integers(0, net.n_nodes, 300)
    times, dists = ch_many_to_many(
        ch, Seeds.from_nodes(sources), Seeds.from_nodes(targets), threads=2
    )
    import scipy.sparse as sp

    matrix = sp.csr_array((weight, net.indices, net.indptr), shape=(net.n_nodes, net.n_nodes))
    np.testing.assert_array_equal(times, dijkstra(matrix, indices=sources)[:, targets])
    reference = many_to_many_seeded(
        net.indptr,
        net.indices,
        weight,
        net.length_m,
        Seeds.from_nodes(sources),
        Seeds.from_nodes(targets),
    )
    np.testing.assert_allclose(dists, reference.distances_m, rtol=1e-9)
