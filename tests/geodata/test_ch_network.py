"""A network's contraction hierarchy: used by road matrices, built once, kept in the cache."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

import geodata.ch_cache
from geodata import CAR, load_network
from geodata.ch import ContractionHierarchy, build_ch, ch_many_to_many
from geodata.ingest.cache import hierarchy_path
from geodata.road_matrix import CH_MIN_NODES, road_matrix, uses_hierarchy
from geodata.seeds import Seeds
from geodata.snap import Snapper
from tests.geodata.test_network import random_osm
from tests.geodata.test_snap import at_m, grid_network


def test_road_matrix_from_the_hierarchy_equals_dijkstra() -> None:
    net = grid_network(12, seed=3)
    assert net.n_nodes < CH_MIN_NODES
    assert not uses_hierarchy(net)
    xy = np.random.default_rng(3).uniform(-100, 1200, size=(40, 2))
    points = Snapper(net).snap(*np.array([at_m(x, y) for x, y in xy]).T)
    dijkstra = road_matrix(net, points, threads=1)
    net.hierarchy()
    assert uses_hierarchy(net)  # built: used from now on, whatever the size
    for threads in (1, 2):
        ch = road_matrix(net, points, threads=threads)
        np.testing.assert_array_equal(ch.durations_s, dijkstra.durations_s)
        np.testing.assert_allclose(ch.distances_m, dijkstra.distances_m, rtol=1e-9)


def test_the_hierarchy_is_built_once_under_concurrent_calls(monkeypatch) -> None:
    builds = []
    hierarchy_for = geodata.ch_cache.hierarchy_for
    start = threading.Barrier(4)

    def counting(prepared, cache):  # type: ignore[no-untyped-def]
        builds.append(prepared)
        return hierarchy_for(prepared, cache)

    monkeypatch.setattr(geodata.ch_cache, "hierarchy_for", counting)
    net = grid_network(5, seed=1)

    def get(_: int) -> ContractionHierarchy:
        start.wait(timeout=30)
        return net.hierarchy()

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(get, range(4)))
    assert len(builds) == 1
    assert all(h is got[0] for h in got)


def test_the_hierarchy_is_cached_beside_the_network(tmp_path: Path, caplog) -> None:
    town = random_osm(tmp_path, 4)[0]
    cache = tmp_path / "cache"
    first, report = load_network(town, CAR, cache)
    directory = hierarchy_path(Path(str(report.cache_path)))
    assert not directory.exists()
    built = first.hierarchy()
    assert (directory / "meta.json").is_file()
    second, _ = load_network(town, CAR, cache)
    with caplog.at_level(logging.INFO, logger="geodata.ch_cache"):
        loaded = second.hierarchy()
    assert "loaded from" in caplog.text
    assert isinstance(loaded.up_head, np.memmap)  # shared pages, not a copy per process
    for name, arr in built.arrays().items():
        np.testing.assert_array_equal(arr, loaded.arrays()[name])
    # a hierarchy of another graph (or format) is rebuilt, not used
    meta = json.loads((directory / "meta.json").read_text())
    (directory / "meta.json").write_text(json.dumps({**meta, "graph_sha256": "0" * 64}))
    third, _ = load_network(town, CAR, cache)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="geodata.ch_cache"):
        rebuilt = third.hierarchy()
    assert "does not match the graph" in caplog.text
    np.testing.assert_array_equal(rebuilt.rank, built.rank)
    # broken arrays are rebuilt too
    (directory / "up_head.npy").write_bytes(b"garbage")
    fourth, _ = load_network(town, CAR, cache)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="geodata.ch_cache"):
        fourth.hierarchy()
    assert "unreadable" in caplog.text


def test_a_hierarchy_of_the_wrong_shape_is_rejected() -> None:
    net = grid_network(4, seed=2)
    ch = net.hierarchy()
    with pytest.raises(ValueError, match="rank"):
        ch.check(net.n_nodes + 1)
    bad = ContractionHierarchy(
        **{**ch.arrays(), "up_head": np.zeros_like(ch.up_head)},
        quantum_bits=ch.quantum_bits, total_time=ch.total_time, build_time_s=0.0,
    )  # fmt: skip
    with pytest.raises(ValueError, match="above its node"):
        bad.check(net.n_nodes)


@pytest.mark.parametrize(("limit", "lazy"), [(500, False), (1, False), (5, True)])
def test_every_pair_of_a_grid_city_equals_scipy(limit: int, lazy: bool) -> None:
    """All pairs; tiny witness limits add many shortcuts and make the edge pool grow."""
    net = grid_network(12, seed=3)
    graph = net.prepared().graph
    n = net.n_nodes
    ch = build_ch(graph, witness_limit=limit, simulation_limit=min(limit, 60), lazy=lazy)
    everyone = Seeds.from_nodes(np.arange(n))
    times, _ = ch_many_to_many(ch, everyone, everyone, threads=2)
    matrix = sp.csr_array((graph.weight, graph.indices, graph.indptr), shape=(n, n))
    np.testing.assert_array_equal(times, dijkstra(matrix))


def test_queries_reuse_their_workspaces_and_stay_exact_under_concurrency() -> None:
    net = grid_network(12, seed=5)
    ch = net.hierarchy()
    graph = net.prepared().graph
    n = net.n_nodes
    rng = np.random.default_rng(5)
    cases = [(rng.integers(0, n, 30), rng.integers(0, n, 40)) for _ in range(8)]
    matrix = sp.csr_array((graph.weight, graph.indices, graph.indptr), shape=(n, n))
    expected = [dijkstra(matrix, indices=s)[:, t] for s, t in cases]
    ch_many_to_many(ch, Seeds.from_nodes([0]), Seeds.from_nodes([1]), threads=2)
    kept = ch.pool.take(("query", n), lambda: ())
    assert len(kept) == 8  # the first call's arrays, kept for the next one
    ch.pool.give(("query", n), kept)
    s, t = cases[0]
    again = ch_many_to_many(ch, Seeds.from_nodes(s), Seeds.from_nodes(t), threads=2)[0]
    np.testing.assert_array_equal(again, expected[0])
    assert ch.pool.take(("query", n), lambda: ()) is kept  # reused, not reallocated
    ch.pool.give(("query", n), kept)

    def run(k: int) -> np.ndarray:
        s, t = cases[k % len(cases)]
        return ch_many_to_many(ch, Seeds.from_nodes(s), Seeds.from_nodes(t), threads=1 + k % 2)[0]

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(run, range(32)))
    for k, times in enumerate(got):  # concurrent calls each hold their own arrays
        np.testing.assert_array_equal(times, expected[k % len(cases)])
