"""Vehicle.travel_mode (issue 15, feature 7): one matrix per distinct road profile, walking
ignores one-way rules, unserved profiles and client matrices are rejected by name, geodesic
walking pace.

Expected matrices come from the independent road oracle (``tests.road_oracle``: brute-force
snapping and scipy's Dijkstra) on each profile's network, and from hand-computed lengths.
"""

from __future__ import annotations

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
from engine.model import DurationDistanceMatrix, TravelMode
from engine.roads import RoadSpec, load_roads
from engine.travel import build_stops, build_travel_matrices
from geodata.polyline import decode_polyline
from tests.checker import check_solution
from tests.osm_files import haversine, write_osm
from tests.road_oracle import as_matrix_model, road_matrix_oracle

# A square 1-2-3-4 (~111 m a side at the equator): 1 -> 2 is one-way, the other sides are
# two-way residential streets, and a footway runs diagonally 1 - 3 (no cars). Stops lie in the
# middle of sides (never on a node, where snapping to either side would be right): A on the
# one-way 1 -> 2, B on 4 - 1, the depot D on 2 - 3.
NODES = {1: (0.0, 0.0), 2: (0.0, 0.001), 3: (0.001, 0.001), 4: (0.001, 0.0)}
A, B, D = (0.0, 0.0005), (0.0005, 0.0), (0.0005, 0.001)
WAYS = [
    (10, [1, 2], {"highway": "residential", "oneway": "yes"}),
    (11, [2, 3, 4, 1], {"highway": "residential"}),
    (12, [1, 3], {"highway": "footway"}),
]


@pytest.fixture(scope="module")
def square(tmp_path_factory):
    folder = tmp_path_factory.mktemp("square")
    path = write_osm(folder / "square.osm", NODES, WAYS)
    return load_roads(
        RoadSpec(str(path), "car", cache_dir=str(folder / "cache"), profiles=("foot", "truck"))
    )


def at(point: tuple[float, float]) -> LatLng:
    return LatLng(*point)


def two_mode_model(modes: tuple[TravelMode, ...]) -> ShipmentModel:
    """A delivery at A and one at B; every vehicle starts and ends at D."""
    return ShipmentModel(
        shipments=(
            Shipment(deliveries=(VisitRequest(arrival_location=at(A)),)),
            Shipment(deliveries=(VisitRequest(arrival_location=at(B)),)),
        ),
        vehicles=tuple(
            Vehicle(start_location=at(D), end_location=at(D), travel_mode=m, cost_per_kilometer=1.0)
            for m in modes
        ),
    )


def oracle_on_stops(network, model: ShipmentModel):
    """The oracle's (durations, distances) between the model's stops (A, B, then D for each
    vehicle's start and end), from the oracle's matrix between the distinct points A, B, D."""
    stops = build_stops(model)
    point = [0, 1] + [2, 2] * len(model.vehicles)
    assert len(point) == stops.size
    lat = np.array([p[0] for p in (A, B, D)])
    lon = np.array([p[1] for p in (A, B, D)])
    durations, distances = road_matrix_oracle(network, lat, lon)
    cells = np.ix_(point, point)
    return durations[cells], distances[cells]


def test_square_networks_by_hand(square):
    side = haversine(NODES[1], NODES[2])
    car, foot = square.network, square.for_profile("foot").network
    assert square.profiles == ("car", "foot", "truck")
    assert car.profile == "car"
    assert foot.profile == "foot"
    assert car.n_edges == 7  # one-way 1 -> 2, three two-way sides
    assert foot.n_edges == 10  # every side and the footway, both ways
    assert np.all(foot.speed_kph == 5.0)
    lat, lon = np.array([A[0], B[0]]), np.array([A[1], B[1]])
    _, car_m = road_matrix_oracle(car, lat, lon)
    _, foot_m = road_matrix_oracle(foot, lat, lon)
    assert car_m[1, 0] == pytest.approx(side, rel=1e-6)  # B -> 1 -> A
    assert car_m[0, 1] == pytest.approx(3 * side, rel=1e-6)  # A -> 2 -> 3 -> 4 -> B
    assert foot_m[0, 1] == pytest.approx(side, rel=1e-6)  # against the one-way, on foot


def test_one_matrix_per_distinct_profile(square):
    modes = (TravelMode.DRIVING, TravelMode.WALKING, TravelMode.TRAVEL_MODE_UNSPECIFIED)
    model = two_mode_model(modes)
    stops = build_stops(model)
    travel = build_travel_matrices(model, stops, geodesic_meters_per_second=10.0, roads=square)
    assert travel.source == "road"
    assert travel.profiles == ("car", "foot")
    assert travel.vehicle_matrix == (0, 1, 0)  # unspecified: the default (car) profile
    for k, name in enumerate(travel.profiles):
        network = square.for_profile(name).network
        assert travel.roads[k].network is network
        durations, distances = oracle_on_stops(network, model)
        np.testing.assert_allclose(travel.durations_s[k], durations, rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(travel.distances_m[k], distances, rtol=1e-9, atol=1e-6)
    # A -> B: the walker goes against the one-way, the car round the block.
    assert travel.distances_m[1][0, 1] == pytest.approx(travel.distances_m[0][0, 1] / 3, rel=1e-6)


def test_truck_is_a_routeopt_mode(square):
    model = two_mode_model((TravelMode.TRUCK,))
    stops = build_stops(model)
    travel = build_travel_matrices(model, stops, geodesic_meters_per_second=10.0, roads=square)
    assert travel.profiles == ("truck",)
    durations, _ = oracle_on_stops(square.for_profile("truck").network, model)
    np.testing.assert_allclose(travel.durations_s[0], durations, rtol=1e-9, atol=1e-6)


def test_solution_and_polylines_follow_each_vehicles_network(square):
    """Two shipments at A, one for the car and one for the walker: the car reaches A round
    the block (D -> 3 -> 4 -> 1 -> A, 3 sides) and leaves on the one-way (A -> 2 -> D, 1 side);
    the walker goes D -> 2 -> A and back (2 sides)."""
    vehicles = two_mode_model((TravelMode.DRIVING, TravelMode.WALKING)).vehicles
    model = ShipmentModel(
        shipments=tuple(
            Shipment(
                deliveries=(VisitRequest(arrival_location=at(A)),), allowed_vehicle_indices=(v,)
            )
            for v in (0, 1)
        ),
        vehicles=vehicles,
    )
    solution = solve(model, SolveOptions(time_limit_s=3.0, populate_polylines=True), roads=square)
    assert not solution.skipped_shipments
    car, walker = solution.routes
    side = haversine(NODES[1], NODES[2])
    assert car.metrics.travel_distance_m == pytest.approx(4 * side, rel=1e-6)
    assert walker.metrics.travel_distance_m == pytest.approx(2 * side, rel=1e-6)
    assert walker.metrics.travel_duration_s == pytest.approx(2 * side / (5 / 3.6), abs=2.0)
    # Each polyline runs on its vehicle's network: D, 3, 4, 1, A for the car; D, 2, A on foot.
    assert len(decode_polyline(car.transitions[0].polyline)) == 5
    assert len(decode_polyline(walker.transitions[0].polyline)) == 3


def test_unserved_profile_is_rejected_naming_the_vehicle(square):
    only_car = load_roads(square.spec.__class__(square.spec.path, "car", square.spec.cache_dir))
    model = two_mode_model((TravelMode.DRIVING, TravelMode.WALKING, TravelMode.TRUCK))
    with pytest.raises(InvalidModelError) as info:
        solve(model, SolveOptions(time_limit_s=0.5), roads=only_car)
    fields = [v.field for v in info.value.violations]
    assert fields == ["vehicles[1].travel_mode", "vehicles[2].travel_mode"]
    assert "'foot' road profile" in info.value.violations[0].description
    assert "serves: car" in info.value.violations[0].description


def test_geodesic_walking_moves_at_walking_pace():
    model = ShipmentModel(
        shipments=(Shipment(deliveries=(VisitRequest(arrival_location=LatLng(0.0, 0.01)),)),),
        vehicles=(
            Vehicle(start_location=LatLng(0.0, 0.0), travel_mode=TravelMode.WALKING),
            Vehicle(start_location=LatLng(0.0, 0.0), travel_mode=TravelMode.DRIVING),
            Vehicle(start_location=LatLng(0.0, 0.0), travel_mode=TravelMode.TRUCK),
        ),
    )
    stops = build_stops(model)
    travel = build_travel_matrices(model, stops, geodesic_meters_per_second=10.0)
    assert travel.source == "geodesic"
    assert travel.vehicle_matrix == (0, 1, 1)
    metres = haversine((0.0, 0.0), (0.0, 0.01))
    start = stops.vehicle_start(0)
    assert travel.distances_m[0][start, 0] == pytest.approx(metres, rel=1e-9)
    assert travel.durations_s[0][start, 0] == pytest.approx(metres / (5 / 3.6), rel=1e-9)
    assert travel.durations_s[1][start, 0] == pytest.approx(metres / 10.0, rel=1e-9)


def test_travel_mode_with_client_matrices_is_rejected():
    model = ShipmentModel(
        shipments=(Shipment(deliveries=(VisitRequest(tags=("a",)),)),),
        vehicles=(Vehicle(start_tags=("a",), travel_mode=TravelMode.WALKING),),
        duration_distance_matrices=(
            DurationDistanceMatrix(durations_s=((0.0,),), distances_m=((0.0,),)),
        ),
        duration_distance_matrix_src_tags=("a",),
        duration_distance_matrix_dst_tags=("a",),
    )
    with pytest.raises(InvalidModelError) as info:
        solve(model, SolveOptions(time_limit_s=0.5))
    assert [v.field for v in info.value.violations] == ["vehicles[0].travel_mode"]


def test_mixed_fleet_solution_passes_the_checker_with_each_vehicles_road_matrix(square):
    """The independent checker, on the oracle's matrix of each vehicle's network."""
    modes = (TravelMode.DRIVING, TravelMode.WALKING, TravelMode.TRUCK)
    model = two_mode_model(modes)
    solution = solve(model, SolveOptions(time_limit_s=2.0), roads=square)
    assert solution.matrix_source == "road"
    networks = [square.for_profile(p).network for p in ("car", "foot", "truck")]
    check_solution(as_matrix_model(model, square.network, networks), solution)


def test_road_spec_with_profiles_round_trips_through_json():
    spec = RoadSpec("x.osm", "truck", profiles=("car", "foot", "car", "truck"))
    assert spec.profiles == ("car", "foot")
    assert spec.served == ("truck", "car", "foot")
    assert RoadSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="unknown profile 'bike'"):
        RoadSpec("x.osm", profiles=("bike",))


def test_a_stop_the_walker_cannot_reach_is_skipped_with_its_reason():
    """The car's network joins two streets, the foot network does not (hand-built networks):
    a shipment only the walker may serve, across the gap, is skipped as unreachable."""
    import dataclasses

    from engine import SkipReasonCode
    from engine.roads import RoadContext
    from geodata.network import RoadNetwork
    from geodata.snap import Snapper

    def network(profile: str, joined: bool) -> RoadNetwork:
        """Streets 0-1 and 2-3, both ways; ``joined``: also 1-2."""
        indptr = [0, 1, 3, 5, 6] if joined else [0, 1, 2, 3, 4]
        indices = [1, 0, 2, 1, 3, 2] if joined else [1, 0, 3, 2]
        return RoadNetwork(
            indptr=np.array(indptr),
            indices=np.array(indices, dtype=np.int32),
            travel_time_s=np.full(len(indices), 10.0),
            length_m=np.full(len(indices), 55.6),
            speed_kph=np.full(len(indices), 20.0),
            way_id=np.arange(len(indices)),
            highway=np.zeros(len(indices), dtype=np.int8),
            lat=np.array([60.0, 60.0, 60.0005, 60.0005]),
            lon=np.array([25.0, 25.001, 25.001, 25.002]),
            osm_id=np.arange(1, 5),
            profile=profile,
        )

    car, foot = network("car", True), network("foot", False)
    spec = RoadSpec("hand-built", "car", profiles=("foot",))
    walking = RoadContext(
        dataclasses.replace(spec, profile="foot", profiles=()), foot, Snapper(foot)
    )
    roads = RoadContext(spec, car, Snapper(car), others={"foot": walking})
    depot = LatLng(60.0, 25.0005)
    far = LatLng(60.0005, 25.0015)
    model = ShipmentModel(
        shipments=(
            Shipment(
                deliveries=(VisitRequest(arrival_location=far),), allowed_vehicle_indices=(1,)
            ),
            Shipment(
                deliveries=(VisitRequest(arrival_location=far),), allowed_vehicle_indices=(0,)
            ),
        ),
        vehicles=(
            Vehicle(start_location=depot, end_location=depot, travel_mode=TravelMode.DRIVING),
            Vehicle(start_location=depot, end_location=depot, travel_mode=TravelMode.WALKING),
        ),
    )
    solution = solve(model, SolveOptions(time_limit_s=2.0), roads=roads)
    (skipped,) = solution.skipped_shipments
    assert skipped.index == 0
    by_code = {r.code: r for r in skipped.reasons}
    assert set(by_code) == {
        SkipReasonCode.VEHICLE_NOT_ALLOWED,  # the car
        SkipReasonCode.UNREACHABLE_LOCATION,  # the walker
    }
    assert [v.shipment_index for v in solution.routes[0].visits] == [1]
