"""Vehicle.route_modifiers (issue 15, feature 7): avoiding tolls, highways and ferries changes
the fastest path; pairs the network without them cannot connect keep the unmodified value
("where reasonable"); polylines follow the same paths; validation.

Expected matrices: the independent road oracle (``tests.road_oracle``: brute-force snapping and
scipy's Dijkstra) on the network without the avoided edges and on the whole network, and path
lengths computed by hand.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine import (
    InvalidModelError,
    LatLng,
    Shipment,
    ShipmentModel,
    SolveOptions,
    Vehicle,
    VisitRequest,
    solve,
)
from engine.model import DurationDistanceMatrix, RouteModifiers, TravelMode
from engine.roads import RoadSpec, load_roads
from engine.travel import build_stops, build_travel_matrices
from geodata.geo import haversine_m
from geodata.polyline import decode_polyline
from tests.osm_files import haversine, write_osm
from tests.road_oracle import road_matrix_oracle

# S (node 1) and T (node 2) are joined four ways, fastest first: a motorway through M (node 3),
# a toll primary road, a car ferry, a long residential detour. Residential spurs lead out of S
# and T to the stops P and Q; an island of residential road (nodes 20, 21) hangs off M by a
# motorway link only, with the stop U on it.
NODES = {
    1: (0.0, 0.0),
    2: (0.0, 0.01),
    3: (0.0, 0.005),
    4: (0.001, 0.0),
    5: (0.001, 0.01),
    6: (-0.0005, 0.0),
    7: (-0.0005, 0.01),
    8: (-0.02, 0.0),
    9: (-0.02, 0.01),
    10: (0.0, -0.001),
    11: (0.0, 0.011),
    20: (0.005, 0.005),
    21: (0.005, 0.006),
}
WAYS = [
    (100, [1, 3, 2], {"highway": "motorway", "oneway": "no"}),
    (101, [1, 4, 5, 2], {"highway": "primary", "toll": "yes"}),
    (102, [1, 6], {"highway": "residential"}),
    (103, [6, 7], {"route": "ferry", "motor_vehicle": "yes"}),
    (104, [7, 2], {"highway": "residential"}),
    (105, [6, 8, 9, 7], {"highway": "residential"}),
    (106, [10, 1], {"highway": "residential"}),
    (107, [2, 11], {"highway": "residential"}),
    (108, [3, 20], {"highway": "motorway_link", "oneway": "no"}),
    (109, [20, 21], {"highway": "residential"}),
]
P, Q, U = (0.0, -0.0005), (0.0, 0.0105), (0.005, 0.0055)


def length(*nodes: int) -> float:
    return sum(haversine(NODES[a], NODES[b]) for a, b in itertools.pairwise(nodes))


SPURS = haversine(P, NODES[1]) + haversine(NODES[2], Q)
BY_MOTORWAY = SPURS + length(1, 3, 2)
BY_TOLL_ROAD = SPURS + length(1, 4, 5, 2)
BY_FERRY = SPURS + length(1, 6, 7, 2)
BY_DETOUR = SPURS + length(1, 6, 8, 9, 7, 2)


@pytest.fixture(scope="module")
def roads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("modifiers")
    path = write_osm(folder / "modifiers.osm", NODES, WAYS)
    return load_roads(
        RoadSpec(str(path), "car", cache_dir=str(folder / "cache"), profiles=("foot",))
    )


def model_of(*vehicles: Vehicle) -> ShipmentModel:
    """A delivery at Q and one at U; vehicles start (and end) at P."""
    return ShipmentModel(
        shipments=(
            Shipment(deliveries=(VisitRequest(arrival_location=LatLng(*Q)),)),
            Shipment(deliveries=(VisitRequest(arrival_location=LatLng(*U)),)),
        ),
        vehicles=vehicles,
    )


def vehicle(modifiers: RouteModifiers, mode: TravelMode = TravelMode.DRIVING) -> Vehicle:
    start = LatLng(*P)
    return Vehicle(
        start_location=start,
        end_location=start,
        travel_mode=mode,
        route_modifiers=modifiers,
        cost_per_kilometer=1.0,
    )


def stop_matrix(durations, distances, n_vehicles: int):
    """The oracle's matrix between distinct points Q, U, P spread over the model's stops."""
    point = [0, 1] + [2, 2] * n_vehicles
    cells = np.ix_(point, point)
    return durations[cells], distances[cells]


CASES = [
    (RouteModifiers(), BY_MOTORWAY),
    (RouteModifiers(avoid_highways=True), BY_TOLL_ROAD),
    (RouteModifiers(avoid_tolls=True), BY_MOTORWAY),  # the motorway is free
    (RouteModifiers(avoid_highways=True, avoid_tolls=True), BY_FERRY),
    (RouteModifiers(avoid_highways=True, avoid_tolls=True, avoid_ferries=True), BY_DETOUR),
]


@pytest.mark.parametrize(("modifiers", "p_to_q"), CASES)
def test_avoiding_changes_the_fastest_path(roads, modifiers, p_to_q):
    model = model_of(vehicle(RouteModifiers()), vehicle(modifiers))
    travel = build_travel_matrices(
        model, build_stops(model), geodesic_meters_per_second=10.0, roads=roads
    )
    plain, avoiding = (0, 0) if not modifiers else (0, 1)
    assert travel.vehicle_matrix == (plain, avoiding)
    start = build_stops(model).vehicle_start(1)
    assert travel.distances_m[avoiding][start, 0] == pytest.approx(p_to_q, rel=1e-6)
    assert travel.distances_m[avoiding][0, start] == pytest.approx(p_to_q, rel=1e-6)

    # Exact values: the oracle on the network without the avoided edges where it connects the
    # pair, on the whole network elsewhere (U's island hangs off a motorway link).
    lat, lon = np.array([Q[0], U[0], P[0]]), np.array([Q[1], U[1], P[1]])
    whole = stop_matrix(*road_matrix_oracle(roads.network, lat, lon), 2)
    road = travel.roads[avoiding]
    assert road.network is not None
    kept = stop_matrix(*road_matrix_oracle(road.network, lat, lon), 2)
    expected_d = np.where(np.isfinite(kept[0]), kept[0], whole[0])
    expected_m = np.where(np.isfinite(kept[0]), kept[1], whole[1])
    np.testing.assert_allclose(travel.durations_s[avoiding], expected_d, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(travel.distances_m[avoiding], expected_m, rtol=1e-9, atol=1e-6)
    if modifiers.avoid_highways:
        assert not np.isfinite(kept[0][start, 1])  # U only by the motorway link: fallback
        assert travel.distances_m[avoiding][start, 1] == pytest.approx(whole[1][start, 1])


def test_walking_ignores_motorised_modifiers_and_cars_ignore_indoor(roads):
    """Google: tolls/highways/ferries apply to motorised modes, indoor to WALKING only."""
    walker = vehicle(RouteModifiers(avoid_tolls=True, avoid_highways=True), TravelMode.WALKING)
    car = vehicle(RouteModifiers(avoid_indoor=True))
    model = model_of(walker, vehicle(RouteModifiers(), TravelMode.WALKING), car)
    travel = build_travel_matrices(
        model, build_stops(model), geodesic_meters_per_second=10.0, roads=roads
    )
    assert travel.profiles == ("foot", "car")
    assert travel.vehicle_matrix == (0, 0, 1)
    assert travel.roads[1].fallback is None  # no modified network for the car


def test_the_modified_network_view_is_built_once(roads):
    modifiers = RouteModifiers(avoid_tolls=True)
    view = roads.view(modifiers)
    assert view is not None
    assert view is roads.view(modifiers)
    assert view.network.profile == "car+avoid_tolls"
    assert view.network.n_nodes == roads.network.n_nodes
    assert view.network.n_edges == roads.network.n_edges - 6  # the toll road's 3 segments
    assert roads.view(RouteModifiers(avoid_indoor=True)) is None  # nothing indoor here


def test_each_view_keeps_its_own_cache_files(roads):
    """Views of one network keep their hierarchy and prepared graph in files of their own, not
    in one another's (nor the network's)."""
    base = roads.network.hierarchy_cache()
    assert base is not None
    views = [
        roads.view(RouteModifiers(avoid_tolls=True)),
        roads.view(RouteModifiers(avoid_highways=True)),
    ]
    dirs = [view.network.hierarchy_cache() for view in views if view is not None]
    assert len(dirs) == 2
    for d in dirs:
        assert d is not None
        assert d.parent == base.parent
    preps = {d.with_suffix(".prep") for d in dirs if d is not None}
    assert len(preps | {base.with_suffix(".prep")}) == 3
    assert len(set(dirs) | {base}) == 3


@pytest.mark.parametrize("stop", ["Q", "U"])
def test_polylines_follow_the_matrix_paths(roads, stop):
    """Avoiding highways and tolls, the car goes P -> Q and back by the ferry; P -> U only
    exists by the motorway link, so that leg keeps the unmodified path (the fallback)."""
    modifiers = RouteModifiers(avoid_highways=True, avoid_tolls=True)
    at = {"Q": Q, "U": U}[stop]
    model = ShipmentModel(
        shipments=(Shipment(deliveries=(VisitRequest(arrival_location=LatLng(*at)),)),),
        vehicles=(vehicle(modifiers),),
    )
    solution = solve(model, SolveOptions(time_limit_s=3.0, populate_polylines=True), roads=roads)
    assert not solution.skipped_shipments
    (route,) = solution.routes
    if stop == "Q":
        expected = [BY_FERRY, BY_FERRY]
    else:
        link = haversine(P, NODES[1]) + length(1, 3, 20) + haversine(NODES[20], U)
        expected = [link, link]
    assert [t.travel_distance_m for t in route.transitions] == pytest.approx(expected, rel=1e-6)
    for t in route.transitions:
        coords = np.asarray(decode_polyline(t.polyline))
        drawn = haversine_m(coords[:-1, 0], coords[:-1, 1], coords[1:, 0], coords[1:, 1]).sum()
        assert drawn == pytest.approx(t.travel_distance_m, rel=0.01, abs=2.0)


def test_route_modifiers_need_road_travel():
    model = model_of(vehicle(RouteModifiers()), vehicle(RouteModifiers(avoid_ferries=True)))
    with pytest.raises(InvalidModelError) as info:
        solve(model, SolveOptions(time_limit_s=0.5))
    assert [v.field for v in info.value.violations] == ["vehicles[1].route_modifiers"]


def test_route_modifiers_with_client_matrices_are_rejected():
    model = ShipmentModel(
        shipments=(Shipment(deliveries=(VisitRequest(tags=("a",)),)),),
        vehicles=(Vehicle(start_tags=("a",), route_modifiers=RouteModifiers(avoid_tolls=True)),),
        duration_distance_matrices=(
            DurationDistanceMatrix(durations_s=((0.0,),), distances_m=((0.0,),)),
        ),
        duration_distance_matrix_src_tags=("a",),
        duration_distance_matrix_dst_tags=("a",),
    )
    with pytest.raises(InvalidModelError) as info:
        solve(model, SolveOptions(time_limit_s=0.5))
    assert [v.field for v in info.value.violations] == ["vehicles[0].route_modifiers"]


@pytest.mark.parametrize(("stop", "networks"), [("Q", ["car+avoid_tolls"]), ("U", None)])
def test_the_unmodified_matrix_only_when_a_pair_needs_it(roads, monkeypatch, stop, networks):
    """Avoiding tolls, P and Q connect without the toll road: no unmodified matrix. Avoiding
    highways, U is unreachable: the unmodified one is computed for the fallback."""
    from engine.roads import RoadContext

    used: list[str] = []
    original = RoadContext.matrix

    def counting(self, *args, **kwargs):
        used.append(self.network.profile)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RoadContext, "matrix", counting)
    at = {"Q": Q, "U": U}[stop]
    modifiers = (
        RouteModifiers(avoid_tolls=True) if stop == "Q" else RouteModifiers(avoid_highways=True)
    )
    model = ShipmentModel(
        shipments=(Shipment(deliveries=(VisitRequest(arrival_location=LatLng(*at)),)),),
        vehicles=(vehicle(modifiers),),
    )
    build_travel_matrices(model, build_stops(model), geodesic_meters_per_second=10.0, roads=roads)
    assert used == (networks or ["car+avoid_highways", "car"])
