"""Networks without some edges (route modifiers' views, ``RoadNetwork.without_edges``): the
matrix over the view equals scipy's Dijkstra on the filtered graph (points inserted as nodes,
``tests.geodata.test_road_matrix.brute_force``), for random grids and random dropped edges,
unreachable pairs included; the flags survive the filter and the cache."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodata.network import EDGE_FERRY, EDGE_INDOOR, EDGE_TOLL
from geodata.road_matrix import road_matrix
from geodata.snap import Snapper
from tests.geodata.test_road_matrix import brute_force
from tests.geodata.test_snap import at_m, grid_network


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    drop_share=st.floats(0.0, 0.6),
    n_points=st.integers(2, 12),
)
def test_matrix_on_a_view_equals_dijkstra_on_the_filtered_graph(seed, drop_share, n_points):
    net = grid_network(4, seed=seed)
    rng = np.random.default_rng(seed)
    drop = rng.random(net.n_edges) < drop_share
    if drop.all():
        drop[0] = False
    view = net.without_edges(drop)
    assert view.n_nodes == net.n_nodes
    assert view.n_edges == net.n_edges - int(drop.sum())
    xy = rng.uniform(-50, 350, size=(n_points, 2))
    lat, lon = np.array([at_m(x, y) for x, y in xy]).T
    snaps = Snapper(view).snap(lat, lon)
    expected_time, expected_dist = brute_force(view, snaps)
    result = road_matrix(view, snaps)
    assert np.array_equal(np.isinf(result.durations_s), np.isinf(expected_time))
    finite = np.isfinite(expected_time)
    assert result.durations_s[finite] == pytest.approx(expected_time[finite], rel=1e-9, abs=1e-9)
    assert result.distances_m[finite] == pytest.approx(expected_dist[finite], rel=1e-9, abs=1e-9)


def test_flags_follow_their_edges_through_the_filter_and_a_pickle():
    import pickle

    net = grid_network(4, seed=7)
    rng = np.random.default_rng(7)
    flags = rng.choice([0, EDGE_TOLL, EDGE_FERRY, EDGE_INDOOR, EDGE_TOLL | EDGE_FERRY], net.n_edges)
    arrays = net.arrays()
    arrays["flags"] = flags.astype(np.uint8)
    flagged = type(net)(**arrays, profile="car")
    assert np.array_equal(flagged.avoided_edges(tolls=True), (flags & EDGE_TOLL) != 0)
    assert np.array_equal(flagged.avoided_edges(ferries=True, indoor=True), (flags & 6) != 0)
    drop = flagged.avoided_edges(tolls=True)
    view = flagged.without_edges(drop)
    assert not view.avoided_edges(tolls=True).any()
    keep = ~drop
    src = flagged.sources()
    assert np.array_equal(view.sources(), src[keep])
    assert np.array_equal(view.indices, flagged.indices[keep])
    assert np.array_equal(view.flags, flagged.flags[keep])
    assert pickle.loads(pickle.dumps(view)).equals(view)


def test_flags_are_kept_in_the_network_cache(tmp_path):
    from geodata import CAR, load_network
    from tests.geodata.test_osm import RING, SQUARE
    from tests.osm_files import write_osm

    ways = [RING, (200, [1, 5, 3], {"highway": "primary", "toll": "yes"})]
    path = write_osm(tmp_path / "toll.osm", SQUARE, ways)
    built, report = load_network(path, CAR, tmp_path / "cache")
    cached, again = load_network(path, CAR, tmp_path / "cache")
    assert not report.from_cache
    assert again.from_cache
    assert int(np.count_nonzero(built.flags & EDGE_TOLL)) == 4
    assert np.array_equal(cached.flags, built.flags)


def test_road_layer_columns_set_the_flags():
    import geopandas as gpd
    import shapely

    from geodata import FOOT, read_road_layer

    a, b, c = (0.0, 0.0), (0.001, 0.0), (0.002, 0.0)  # (lon, lat)
    frame = gpd.GeoDataFrame(
        {
            "highway": ["footway", "footway"],
            "toll": ["yes", None],
            "indoor": [None, "corridor"],
        },
        geometry=[shapely.LineString([a, b]), shapely.LineString([b, c])],
        crs="EPSG:4326",
    )
    net, _ = read_road_layer(frame, FOOT)
    flags = {int(w): int(f) for w, f in zip(net.way_id, net.flags, strict=True)}
    assert flags == {0: EDGE_TOLL, 1: EDGE_INDOOR}
