"""RoadNetwork invariants, conversions, the cache and road layers read through geopandas.

Just over 500 lines: the cache and road-layer tests share the same small networks built here.
"""

from __future__ import annotations

import logging
import math
import pickle
import random
import shutil
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from scipy.sparse import csr_array
from scipy.sparse.csgraph import dijkstra

from geodata import (
    CAR,
    HIGHWAY_CLASSES,
    TRUCK,
    EmptyNetworkError,
    Profile,
    RoadDataNotFoundError,
    RoadNetwork,
    RoadNetworkError,
    UnsupportedFormatError,
    load_network,
    read_osm,
    read_road_layer,
    to_geodataframes,
    to_networkx,
)
from tests.geodata.test_osm import SHARED_OSM, edges_by_osm_id
from tests.osm_files import haversine, write_osm


def tiny_arrays() -> dict:
    """0 <-> 1 -> 2 -> 0: three nodes, four edges."""
    return {
        "indptr": np.array([0, 1, 3, 4]),
        "indices": np.array([1, 0, 2, 0]),
        "travel_time_s": np.array([10.0, 10.0, 5.0, 7.0]),
        "length_m": np.array([100.0, 100.0, 50.0, 70.0]),
        "speed_kph": np.array([36.0, 36.0, 36.0, 36.0]),
        "way_id": np.array([1, 1, 2, 3]),
        "highway": np.array([11, 11, 11, 13]),
        "lat": np.array([0.0, 0.0, 0.001]),
        "lon": np.array([0.0, 0.001, 0.001]),
        "osm_id": np.array([10, 11, 12]),
        "profile": "car",
    }


def csr_times(net: RoadNetwork) -> csr_array:
    return csr_array((net.travel_time_s, net.indices, net.indptr), shape=(net.n_nodes,) * 2)


# --- RoadNetwork ---------------------------------------------------------------------------------


def test_network_is_validated_typed_and_read_only():
    arrays = tiny_arrays()
    net = RoadNetwork(**arrays)
    assert (net.n_nodes, net.n_edges) == (3, 4)
    assert net.indptr.dtype == np.int64
    assert net.indices.dtype == np.int32
    assert net.highway.dtype == np.int8
    assert net.sources().tolist() == [0, 1, 1, 2]
    assert net.edge_index(1, 2) == 2
    with pytest.raises(KeyError):
        net.edge_index(2, 1)
    assert net.highway_names().tolist() == ["residential"] * 3 + ["service"]
    with pytest.raises(ValueError, match="read-only"):
        net.travel_time_s[0] = 1.0
    arrays["travel_time_s"][0] = 99.0  # the caller's arrays were copied, not frozen
    assert net.travel_time_s[0] == 10.0
    assert net.equals(RoadNetwork(**tiny_arrays()))
    assert "n_nodes=3" in repr(net)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"indices": np.array([1, 2, 0, 0])}, "strictly increasing"),  # 1 -> 2 then 1 -> 0
        ({"indices": np.array([1, 1, 2, 0])}, "self-loop"),
        ({"indices": np.array([1, 0, 2, 5])}, "indices must lie"),
        ({"travel_time_s": np.array([10.0, -1.0, 5.0, 7.0])}, "travel_time_s must be finite"),
        ({"length_m": np.array([100.0, np.nan, 50.0, 70.0])}, "length_m must be finite"),
        ({"speed_kph": np.array([0.0, 36.0, 36.0, 36.0])}, "speed_kph"),
        ({"indptr": np.array([0, 1, 3])}, "indptr has 3 entries"),
        ({"indptr": np.array([0, 3, 1, 4])}, "never decrease"),
        ({"way_id": np.array([1, 2])}, "way_id has 2 entries"),
        ({"lat": np.array([0.0, 95.0, 0.0])}, "lat must lie"),
        ({"osm_id": np.array([10, 10, 12])}, "osm_id must be unique"),
        ({"highway": np.array([11, 11, 11, len(HIGHWAY_CLASSES)])}, "highway codes"),
        ({"indices": np.array([1.5, 0, 2, 0])}, "must hold integers"),
        ({"indices": np.array([[1, 0, 2, 0]])}, "must be 1-D"),
    ],
)
def test_network_rejects_broken_arrays(change, message):
    with pytest.raises(RoadNetworkError, match=message):
        RoadNetwork(**{**tiny_arrays(), **change})


def test_network_reports_every_problem_at_once():
    with pytest.raises(RoadNetworkError) as info:
        RoadNetwork(
            **{
                **tiny_arrays(),
                "travel_time_s": np.array([-1.0, 1, 1, 1]),
                "osm_id": np.array([1, 1, 1]),
            }
        )
    assert "travel_time_s" in str(info.value)
    assert "osm_id" in str(info.value)


# --- conversions ---------------------------------------------------------------------------------


def test_to_networkx_uses_osmnx_names():
    net = RoadNetwork(**tiny_arrays())
    graph = to_networkx(net)
    assert isinstance(graph, nx.MultiDiGraph)
    assert graph.graph["crs"] == "EPSG:4326"
    assert graph.number_of_nodes() == 3
    assert graph.number_of_edges() == 4
    assert graph.nodes[1] == {"x": 0.001, "y": 0.0, "osmid": 11}
    assert graph.edges[1, 2, 0] == {
        "length": 50.0,
        "travel_time": 5.0,
        "speed_kph": 36.0,
        "highway": "residential",
        "osmid": 2,
    }


def test_to_geodataframes():
    net = RoadNetwork(**tiny_arrays())
    nodes, edges = to_geodataframes(net)
    assert nodes.crs.to_epsg() == 4326
    assert edges.crs.to_epsg() == 4326
    assert len(nodes) == 3
    assert len(edges) == 4
    assert nodes.loc[2, "osmid"] == 12
    assert nodes.geometry[2].equals(shapely.Point(0.001, 0.001))
    row = edges.loc[(2, 0, 0)]
    assert row["travel_time"] == 7.0
    assert row["highway"] == "service"
    assert row.geometry.equals(shapely.LineString([(0.001, 0.001), (0.0, 0.0)]))
    assert list(edges.index.names) == ["u", "v", "key"]


# --- CSR against an independently built networkx graph -------------------------------------------


def random_osm(tmp_path: Path, seed: int):
    """A random grid town with two-way and one-way streets, several parallel ways per pair."""
    rng = random.Random(seed)
    side = 7
    nodes = {  # OSM stores coordinates to 1e-7 degrees
        1 + r * side + c: (round(48.0 + r * 0.0009 + rng.uniform(-2e-4, 2e-4), 7), 8.0 + c * 0.0012)
        for r in range(side)
        for c in range(side)
    }
    ways = []
    way_id = 1000
    for r in range(side):
        for c in range(side):
            a = 1 + r * side + c
            for b in (a + 1 if c + 1 < side else None, a + side if r + 1 < side else None):
                if b is None or rng.random() < 0.15:
                    continue
                for _ in range(rng.choice([1, 1, 1, 2, 3])):  # sometimes parallel ways
                    tags = {"highway": rng.choice(["residential", "tertiary", "primary"])}
                    if rng.random() < 0.5:
                        tags["maxspeed"] = str(rng.choice([20, 30, 50, 70]))
                    oneway = rng.random() < 0.3
                    if oneway:
                        tags["oneway"] = "yes"
                    refs = [a, b] if rng.random() < 0.5 else [b, a]
                    ways.append((way_id, refs, tags))
                    way_id += 1
    return write_osm(tmp_path / f"town{seed}.osm", nodes, ways), nodes, ways


def independent_multidigraph(nodes, ways) -> nx.MultiDiGraph:
    """Every way as its own edges (parallel ones too), largest SCC, using only the test's rules."""
    default = {"residential": 30.0, "tertiary": 45.0, "primary": 65.0}
    graph = nx.MultiDiGraph()
    for way_id, (a, b), tags in ways:
        speed = float(tags.get("maxspeed", default[tags["highway"]]))
        length = haversine(nodes[a], nodes[b])
        pairs = [(a, b)] if tags.get("oneway") == "yes" else [(a, b), (b, a)]
        for u, v in pairs:
            graph.add_edge(u, v, travel_time=length / (speed / 3.6), way=way_id)
    largest = max(nx.strongly_connected_components(graph), key=len)
    return graph.subgraph(largest).copy()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_csr_matches_an_independent_networkx_graph(tmp_path, seed):
    path, nodes, ways = random_osm(tmp_path, seed)
    net, report = read_osm(path)
    reference = independent_multidigraph(nodes, ways)
    assert set(net.osm_id.tolist()) == set(reference.nodes)
    assert report.parallel_edges_merged > 0
    # Per pair, the CSR keeps the minimum over parallel edges.
    edges = edges_by_osm_id(net)
    for u, v in set(reference.edges()):
        best = min(d["travel_time"] for d in reference.get_edge_data(u, v).values())
        assert edges[(u, v)][0] == pytest.approx(best, rel=1e-12)
    assert len(edges) == len(set(reference.edges()))

    def min_weight(u, v, data):
        return min(attr["travel_time"] for attr in data.values())

    index = {int(osm): i for i, osm in enumerate(net.osm_id)}
    pick = random.Random(seed).sample(sorted(reference.nodes), 6)
    times = dijkstra(csr_times(net), indices=[index[s] for s in pick])
    for row, s in enumerate(pick):
        for t in pick:
            expected = nx.dijkstra_path_length(reference, s, t, weight=min_weight)
            assert times[row, index[t]] == pytest.approx(expected, rel=1e-9)
    # and to_networkx gives the same distances as the CSR
    converted = to_networkx(net)
    for row, s in enumerate(pick[:2]):
        lengths = nx.single_source_dijkstra_path_length(converted, index[s], weight="travel_time")
        for t in pick:
            assert lengths[index[t]] == pytest.approx(times[row, index[t]], rel=1e-9)


# --- cache ---------------------------------------------------------------------------------------


@pytest.fixture
def town(tmp_path) -> Path:
    return random_osm(tmp_path, 4)[0]


def test_cache_round_trip(tmp_path, town):
    cache = tmp_path / "cache"
    first, report1 = load_network(town, CAR, cache)
    assert not report1.from_cache
    assert report1.cache_path is not None
    assert Path(report1.cache_path).is_file()
    assert Path(report1.cache_path).parent == cache
    second, report2 = load_network(town, CAR, cache)
    assert report2.from_cache
    assert report2.cache_path == report1.cache_path
    assert second.equals(first)
    for name, arr in first.arrays().items():
        assert arr.dtype == second.arrays()[name].dtype
        assert isinstance(second.arrays()[name].base, np.memmap)  # mapped from the cache file
    assert report2.build_time_s == report1.build_time_s  # the original build's time
    assert (report2.n_nodes, report2.dropped_nodes) == (report1.n_nodes, report1.dropped_nodes)
    # a copy of the file elsewhere has the same content: served from the same cache entry
    copy = tmp_path / "elsewhere" / town.name
    copy.parent.mkdir()
    shutil.copy(town, copy)
    assert load_network(copy, CAR, cache)[1].from_cache


def test_cache_key_follows_profile_content_and_refresh(tmp_path, town):
    cache = tmp_path / "cache"
    load_network(town, CAR, cache)
    truck, report = load_network(town, TRUCK, cache)
    assert not report.from_cache
    assert truck.profile == "truck"
    faster = Profile(
        name="car",
        speeds_kph={**CAR.speeds_kph, "residential": 40.0},
        max_speed_kph=CAR.max_speed_kph,
        access_keys=CAR.access_keys,
    )
    assert not load_network(town, faster, cache)[1].from_cache  # same name, other settings
    assert load_network(town, CAR, cache)[1].from_cache
    assert not load_network(town, CAR, cache, refresh=True)[1].from_cache
    town.write_text(town.read_text().replace('v="residential"', 'v="tertiary"', 1))
    assert not load_network(town, CAR, cache)[1].from_cache
    assert len(list(cache.glob("*.npz"))) == 4


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_cache_is_rebuilt(tmp_path, town, caplog, damage):
    cache = tmp_path / "cache"
    _, report = load_network(town, CAR, cache)
    path = Path(report.cache_path)
    whole = path.read_bytes()
    path.write_bytes(b"garbage" if damage == "garbage" else whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING, logger="geodata.ingest.cache"):
        _, again = load_network(town, CAR, cache)
    assert not again.from_cache
    assert "ignoring unreadable road network cache" in caplog.text
    assert load_network(town, CAR, cache)[1].from_cache


def test_unwritable_cache_dir_still_loads(tmp_path, town, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="geodata.ingest.cache"):
        net, report = load_network(town, CAR, blocker / "cache")
    assert net.n_nodes > 0
    assert report.cache_path is None
    assert "could not write road network cache" in caplog.text


def test_load_network_errors(tmp_path):
    with pytest.raises(RoadDataNotFoundError):
        load_network(tmp_path / "missing.osm.pbf", cache_dir=tmp_path)
    (tmp_path / "roads.txt").write_text("x")
    with pytest.raises(UnsupportedFormatError, match="unsupported road data format"):
        load_network(tmp_path / "roads.txt", cache_dir=tmp_path)


@pytest.mark.parametrize("name", ["monaco.osm.pbf", "andorra.osm.pbf"])
def test_cache_on_a_shared_extract(tmp_path, name):
    path = SHARED_OSM / name
    if not path.is_file():
        pytest.skip(f"shared extract {path} is absent (see shared/data/osm/SOURCES.md)")
    first, report1 = load_network(path, TRUCK, tmp_path)
    second, report2 = load_network(path, TRUCK, tmp_path)
    assert (report1.from_cache, report2.from_cache) == (False, True)
    assert second.equals(first)


# --- road layers (geopandas) ---------------------------------------------------------------------

LAYER_COORDS = {  # (lon, lat)
    "a": (8.0, 48.0),
    "b": (8.001, 48.0),
    "c": (8.001, 48.001),
    "d": (8.0, 48.001),
    "e": (8.002, 48.0005),
}


def road_layer() -> gpd.GeoDataFrame:
    p = LAYER_COORDS
    rows = [  # a square a-b-c-d as one LineString and a MultiLineString, plus extras
        (shapely.LineString([p["a"], p["b"], p["c"]]), "residential", None, None, None),
        (
            shapely.MultiLineString([[p["c"], p["d"]], [p["d"], p["a"]]]),
            "primary",
            "no",
            None,
            "DE:urban",
        ),
        (shapely.LineString([p["b"], p["e"]]), "tertiary", "yes", 20.0, None),  # one-way b -> e
        (shapely.LineString([p["e"], p["c"]]), None, True, None, "30"),  # road class, one-way
        (shapely.LineString([p["a"], p["c"]]), "footway", None, None, None),  # dropped
    ]
    return gpd.GeoDataFrame(
        {
            "highway": [r[1] for r in rows],
            "oneway": [r[2] for r in rows],
            "speed_kph": [r[3] for r in rows],
            "maxspeed": [r[4] for r in rows],
        },
        geometry=[r[0] for r in rows],
        crs="EPSG:4326",
    )


def edges_by_coords(net: RoadNetwork) -> dict[tuple[str, str], tuple[float, int]]:
    names = {(round(lat, 7), round(lon, 7)): n for n, (lon, lat) in LAYER_COORDS.items()}
    label = [names[(round(la, 7), round(lo, 7))] for la, lo in zip(net.lat, net.lon, strict=True)]
    src = net.sources()
    return {
        (label[u], label[v]): (float(t), int(w))
        for u, v, t, w in zip(src, net.indices, net.travel_time_s, net.way_id, strict=True)
    }


def seconds(u: str, v: str, speed_kph: float) -> float:
    (lon1, lat1), (lon2, lat2) = LAYER_COORDS[u], LAYER_COORDS[v]
    return haversine((lat1, lon1), (lat2, lon2)) / (speed_kph / 3.6)


def check_layer_network(net: RoadNetwork) -> None:
    edges = edges_by_coords(net)
    assert set(edges) == {
        ("a", "b"), ("b", "a"), ("b", "c"), ("c", "b"),
        ("c", "d"), ("d", "c"), ("d", "a"), ("a", "d"),
        ("b", "e"), ("e", "c"),
    }  # fmt: skip
    assert edges[("a", "b")] == (pytest.approx(seconds("a", "b", 30.0), rel=1e-9), 0)
    assert edges[("d", "a")] == (pytest.approx(seconds("d", "a", 50.0), rel=1e-9), 1)
    assert edges[("b", "e")] == (pytest.approx(seconds("b", "e", 20.0), rel=1e-9), 2)
    assert edges[("e", "c")] == (pytest.approx(seconds("e", "c", 30.0), rel=1e-9), 3)
    assert sorted(net.osm_id.tolist()) == [-5, -4, -3, -2, -1]
    assert net.highway_names()[net.edge_index(*_idx(net, "e", "c"))] == "road"


def _idx(net: RoadNetwork, u: str, v: str) -> tuple[int, int]:
    def find(name):
        lon, lat = LAYER_COORDS[name]
        return int(np.flatnonzero(np.isclose(net.lat, lat) & np.isclose(net.lon, lon))[0])

    return find(u), find(v)


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg"])
def test_road_layer_file_round_trip(tmp_path, suffix):
    path = tmp_path / f"roads{suffix}"
    road_layer().to_file(path)
    net, report = read_road_layer(path)
    check_layer_network(net)
    assert (report.ways_used, report.ways_rejected) == (4, 1)
    cached, cache_report = load_network(path, CAR, tmp_path / "cache")
    assert cached.equals(net)
    assert not cache_report.from_cache
    assert load_network(path, CAR, tmp_path / "cache")[1].from_cache


def test_road_layer_from_a_projected_geodataframe():
    projected = road_layer().to_crs(3857)
    net, _ = read_road_layer(projected)
    check_layer_network(net)


def test_road_layer_truck_and_missing_columns():
    frame = road_layer()[["geometry"]]  # geometry only: every feature is a two-way "road"
    net, _ = read_road_layer(frame, TRUCK)
    edges = edges_by_coords(net)
    assert ("e", "b") in edges
    assert edges[("a", "c")][0] == pytest.approx(seconds("a", "c", 25.0), rel=1e-9)


def test_road_layer_errors(tmp_path):
    points = gpd.GeoDataFrame(geometry=[shapely.Point(8, 48)], crs="EPSG:4326")
    with pytest.raises(RoadNetworkError, match="LineString or MultiLineString"):
        read_road_layer(points)
    metres = gpd.GeoDataFrame(geometry=[shapely.LineString([(500000, 5300000), (500100, 5300000)])])
    with pytest.raises(RoadNetworkError, match="not longitude/latitude"):
        read_road_layer(metres)
    footways = road_layer().assign(highway="footway")
    with pytest.raises(EmptyNetworkError):
        read_road_layer(footways)
    with pytest.raises(RoadDataNotFoundError):
        read_road_layer(tmp_path / "absent.gpkg")
    with pytest.raises(UnsupportedFormatError):
        read_road_layer(tmp_path / "roads.osm.pbf")
    (tmp_path / "broken.geojson").write_text("{not json")
    with pytest.raises(RoadNetworkError, match="cannot read road layer"):
        read_road_layer(tmp_path / "broken.geojson")


def test_layer_and_osm_agree(tmp_path):
    """The same streets as OSM XML and as a GeoJSON layer give the same travel times."""
    p = LAYER_COORDS
    ids = {name: i + 1 for i, name in enumerate(p)}
    nodes = {ids[n]: (lat, lon) for n, (lon, lat) in p.items()}
    ways = [
        (1, [ids["a"], ids["b"], ids["c"]], {"highway": "residential"}),
        (2, [ids["c"], ids["d"], ids["a"]], {"highway": "primary", "maxspeed": "50"}),
        (3, [ids["b"], ids["e"], ids["c"]], {"highway": "tertiary", "oneway": "yes"}),
    ]
    osm_net, _ = read_osm(write_osm(tmp_path / "same.osm", nodes, ways))
    frame = gpd.GeoDataFrame(
        {
            "highway": [w[2]["highway"] for w in ways],
            "maxspeed": [w[2].get("maxspeed") for w in ways],
            "oneway": [w[2].get("oneway") for w in ways],
        },
        geometry=[shapely.LineString([(nodes[r][1], nodes[r][0]) for r in w[1]]) for w in ways],
        crs="EPSG:4326",
    )
    layer_net, _ = read_road_layer(frame)
    osm_edges, layer_edges = edges_by_coords(osm_net), edges_by_coords(layer_net)
    assert set(osm_edges) == set(layer_edges)
    for pair, (t, _) in osm_edges.items():
        assert layer_edges[pair][0] == pytest.approx(t, rel=1e-9)
    assert math.isclose(osm_net.length_m.sum(), layer_net.length_m.sum(), rel_tol=1e-9)


def test_network_survives_pickling_read_only():
    """Worker processes receive networks by pickle: still validated and read-only."""
    net = pickle.loads(pickle.dumps(RoadNetwork(**tiny_arrays())))
    assert net.equals(RoadNetwork(**tiny_arrays()))
    assert not net.indices.flags.writeable


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "my car"}, "name"),
        ({"speeds_kph": {"residential": 0}}, "positive"),
        ({"speeds_kph": {"sidewalk": 5}}, "unknown highway class"),
        ({"speeds_kph": {}}, "at least one"),
        ({"max_speed_kph": -1.0}, "max_speed_kph"),
        ({"access_keys": ()}, "access_keys"),
    ],
)
def test_profile_validation(change, message):
    settings = {
        "name": "van",
        "speeds_kph": {"residential": 30},
        "max_speed_kph": 100.0,
        "access_keys": ("access",),
    }
    with pytest.raises(ValueError, match=message):
        Profile(**{**settings, **change})


def test_profiles_are_frozen_and_hashable():
    with pytest.raises(AttributeError):
        CAR.max_speed_kph = 200.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        CAR.speeds_kph["residential"] = 99.0  # type: ignore[index]
    assert {CAR, TRUCK, CAR} == {CAR, TRUCK}
    assert CAR.fingerprint() != TRUCK.fingerprint()
