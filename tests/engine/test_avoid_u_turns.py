"""VisitRequest.avoid_u_turns (issue 15, feature 7): a visit is reached and left in one direction
of travel of its street; turning back is possible only at a junction or a dead end (the road
graph has no turns elsewhere), so a stop on a street forces a detour to the next junction.

The network: a block A-B-C-D (two-way residential), a dead-end spur at A and at B (so A and B
are junctions), two shape points N1, N2 on A-B (interior nodes: no turning there) and a one-way
street C -> E -> F -> D. The depot S and the stop V are on A-B. Expected values: lengths
computed by hand (haversine), and the turn-free arc-based oracle of ``tests.road_oracle``.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

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
from engine.model import (
    ConstraintRelaxation,
    DurationDistanceMatrix,
    InjectedRoute,
    InjectedSolutionConstraint,
    InjectedVisit,
    Relaxation,
    RelaxationLevel,
    RouteModifiers,
)
from engine.roads import RoadSpec, load_roads
from engine.travel import build_stops, build_travel_matrices
from geodata.geo import haversine_m
from geodata.polyline import decode_polyline
from tests.bruteforce import brute_force_optimum
from tests.checker import check_solution
from tests.osm_files import haversine, write_osm
from tests.road_oracle import headed_matrix_oracle

NODES = {
    1: (0.0, 0.0),  # A
    2: (0.0, 0.01),  # B
    3: (0.005, 0.01),  # C
    4: (0.005, 0.0),  # D
    5: (0.0, 0.005),  # N1 (shape point)
    6: (0.0, 0.00875),  # N2 (shape point)
    7: (-0.001, 0.0),  # A' (dead end)
    8: (-0.001, 0.01),  # B' (dead end)
    9: (0.0075, 0.01),  # E
    10: (0.0075, 0.0),  # F
}
WAYS = [
    (100, [1, 5, 6, 2], {"highway": "residential"}),
    (101, [2, 3, 4, 1], {"highway": "residential"}),
    (102, [1, 7], {"highway": "residential"}),
    (103, [2, 8], {"highway": "residential"}),
    (104, [3, 9, 10, 4], {"highway": "residential", "oneway": "yes"}),  # C -> E -> F -> D
]
S, V = (0.0, 0.0025), (0.0, 0.0075)
B = NODES[2]


@pytest.fixture(scope="module")
def roads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uturns")
    return load_roads(
        RoadSpec(
            str(write_osm(folder / "block.osm", NODES, WAYS)),
            "car",
            cache_dir=str(folder / "cache"),
        )
    )


def model_of(avoid: bool, **vehicle) -> ShipmentModel:
    visit = VisitRequest(arrival_location=LatLng(*V), avoid_u_turns=avoid, label="v")
    return ShipmentModel(
        shipments=(Shipment(deliveries=(visit,)),),
        vehicles=(
            Vehicle(
                start_location=LatLng(*S),
                end_location=LatLng(*S),
                cost_per_kilometer=1.0,
                **vehicle,
            ),
        ),
    )


S_V = haversine(S, V)
V_B = haversine(V, B)


def test_each_heading_arrives_and_leaves_one_way(roads):
    model = model_of(True)
    stops = build_stops(model)
    assert stops.delivery_stops == ((0, 1),)
    assert stops.alternative.tolist() == [0, 0]
    assert stops.heading is not None
    assert stops.heading.tolist() == [0, 1]
    travel = build_travel_matrices(model, stops, geodesic_meters_per_second=10.0, roads=roads)
    distance = travel.distances_m[0]
    start, end = stops.vehicle_start(0), stops.vehicle_end(0)
    legs = sorted((distance[start, h], distance[h, end]) for h in (0, 1))
    # Eastbound: S -> V directly, then on to junction B, turn there, back to S. Westbound: S to
    # B, turn, back to V, then on to S. Turning at the shape point N2 (nearer) is not allowed.
    expected = [(S_V, S_V + 2 * V_B), (S_V + 2 * V_B, S_V)]
    np.testing.assert_allclose(legs, sorted(expected), rtol=1e-9)
    # one heading to the other: turn at B (eastbound: V -> B -> V) or via the block (westbound)
    east = 0 if distance[start, 0] < distance[start, 1] else 1
    assert distance[east, 1 - east] == pytest.approx(2 * V_B, rel=1e-9)
    assert distance[0, 0] == distance[1, 1] == 0.0
    speed = distance[start, 0] / travel.durations_s[0][start, 0]
    np.testing.assert_allclose(travel.durations_s[0] * speed, distance, rtol=1e-9, atol=1e-6)


def test_without_avoid_u_turns_the_vehicle_turns_at_the_stop(roads):
    model = model_of(False)
    stops = build_stops(model)
    assert stops.heading is None
    travel = build_travel_matrices(model, stops, geodesic_meters_per_second=10.0, roads=roads)
    start = stops.vehicle_start(0)
    assert travel.distances_m[0][start, 0] == pytest.approx(S_V, rel=1e-9)
    assert travel.distances_m[0][0, start] == pytest.approx(S_V, rel=1e-9)


@pytest.mark.parametrize("modifiers", [RouteModifiers(), RouteModifiers(avoid_tolls=True)])
def test_the_route_detours_to_the_junction(roads, modifiers):
    model = model_of(True, route_modifiers=modifiers)
    solution = solve(model, SolveOptions(time_limit_s=2.0, populate_polylines=True), roads=roads)
    assert not solution.skipped_shipments
    (route,) = solution.routes
    (visit,) = route.visits
    assert (visit.shipment_index, visit.visit_request_index, visit.is_pickup) == (0, 0, False)
    distances = [t.travel_distance_m for t in route.transitions]
    assert sum(distances) == pytest.approx(2 * S_V + 2 * V_B, rel=1e-9)
    assert sorted(distances) == pytest.approx(sorted([S_V, S_V + 2 * V_B]), rel=1e-9)
    for t in route.transitions:
        coords = np.asarray(decode_polyline(t.polyline))
        drawn = haversine_m(coords[:-1, 0], coords[:-1, 1], coords[1:, 0], coords[1:, 1]).sum()
        assert drawn == pytest.approx(t.travel_distance_m, rel=0.01, abs=2.0)
    detour = max(route.transitions, key=lambda t: t.travel_distance_m)
    coords = np.round(np.asarray(decode_polyline(detour.polyline)), 5).tolist()
    assert list(B) in coords  # the turn is at the junction B
    assert all(a != b for a, b in itertools.pairwise(coords))


def test_avoid_u_turns_needs_road_travel():
    with pytest.raises(InvalidModelError) as info:
        solve(model_of(True), SolveOptions(time_limit_s=0.5))
    assert [v.field for v in info.value.violations] == ["shipments[0].deliveries[0].avoid_u_turns"]
    assert "geodesic travel" in info.value.violations[0].description


def test_avoid_u_turns_with_client_matrices_is_rejected():
    model = ShipmentModel(
        shipments=(
            Shipment(
                pickups=(VisitRequest(tags=("a",)), VisitRequest(tags=("a",), avoid_u_turns=True))
            ),
        ),
        vehicles=(Vehicle(start_tags=("a",)),),
        duration_distance_matrices=(
            DurationDistanceMatrix(durations_s=((0.0,),), distances_m=((0.0,),)),
        ),
        duration_distance_matrix_src_tags=("a",),
        duration_distance_matrix_dst_tags=("a",),
    )
    with pytest.raises(InvalidModelError) as info:
        solve(model, SolveOptions(time_limit_s=0.5))
    assert [v.field for v in info.value.violations] == ["shipments[0].pickups[1].avoid_u_turns"]
    assert "client matrices" in info.value.violations[0].description


# Stops around the block: on A-B between the shape points, on B-C, on D-A, on A-B near A and on
# the one-way street E-F (one direction of travel: both headings are the same point), on B.
STOPS = [
    (V, True),
    ((0.0025, 0.01), True),
    ((0.003, 0.0), False),
    ((0.0, 0.004), True),
    ((0.0075, 0.005), True),
    (B, True),  # on the junction: not restricted
]


def block_model(*, pairs: bool = False, count: int = len(STOPS)) -> ShipmentModel:
    def visit(at: tuple[float, float], avoid: bool) -> VisitRequest:
        return VisitRequest(arrival_location=LatLng(*at), avoid_u_turns=avoid, duration_s=60.0)

    if pairs:  # pickup at the first stop, deliveries at the others
        shipments = tuple(
            Shipment(pickups=(visit(*STOPS[0]),), deliveries=(visit(*stop),)) for stop in STOPS[1:]
        )
    else:
        shipments = tuple(Shipment(deliveries=(visit(*stop),)) for stop in STOPS[:count])
    depot = LatLng(*S)
    return ShipmentModel(
        shipments=shipments,
        vehicles=(Vehicle(start_location=depot, end_location=depot, cost_per_kilometer=1.0),),
    )


def oracle_point(roads, at: tuple[float, float], heading: int | None) -> tuple:
    """The oracle's label of a stop: plain, or headed toward the downstream end of the engine's
    snapped edge (heading 0) or of its opposite edge (heading 1)."""
    if heading is None:
        return (*at, None)
    snap = roads.snap(np.array([at[0]]), np.array([at[1]]))
    one_way = snap.reverse_edge[0] < 0
    edge = int(snap.edge[0] if heading == 0 or one_way else snap.reverse_edge[0])
    return (*at, int(roads.network.indices[edge]))


def test_matrix_matches_the_turn_free_oracle(roads):
    model = block_model()
    stops = build_stops(model)
    travel = build_travel_matrices(model, stops, geodesic_meters_per_second=10.0, roads=roads)
    labels = []
    for stop in range(stops.size):
        if stop < stops.num_visits:
            at = STOPS[int(stops.shipment[stop])][0]
            heading = stops.heading_of(stop)
            labels.append(oracle_point(roads, at, None if heading < 0 else heading))
        else:
            labels.append((*S, None))
    durations, distances = headed_matrix_oracle(roads.network, labels)
    np.testing.assert_allclose(travel.durations_s[0], durations, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(travel.distances_m[0], distances, rtol=1e-9, atol=1e-6)
    # the one-way stop: both headings are the same point
    one_way = stops.delivery_stops[4]
    assert len(one_way) == 2
    road = travel.roads[0]
    assert road.point[one_way[0]] != road.point[one_way[1]]
    np.testing.assert_array_equal(
        travel.distances_m[0][one_way[0]], travel.distances_m[0][one_way[1]]
    )


def oracle_matrices(roads) -> tuple[list[tuple], np.ndarray, np.ndarray]:
    """The oracle's points (the depot, then each stop plain or in its two headings) and its
    durations and distances between them."""
    points: list[tuple] = [(*S, None)]
    for at, avoid in STOPS:
        points += [oracle_point(roads, at, h) for h in ((0, 1) if avoid else (None,))]
    return (points, *headed_matrix_oracle(roads.network, points))


def options_of(points: list[tuple], request: VisitRequest) -> list[int]:
    """The oracle points a visit request may use: its headings, or its plain point."""
    at = (request.arrival_location.latitude, request.arrival_location.longitude)
    options = [k for k, p in enumerate(points) if p[:2] == at]
    return options if request.avoid_u_turns else options[:1]


def matrix_model(
    model: ShipmentModel, matrices: tuple, chosen: dict[tuple[int, bool], int]
) -> ShipmentModel:
    """``model`` as client matrices, visit ``(shipment, is_pickup)`` at oracle point
    ``chosen[...]`` (the depot at point 0)."""
    points, durations, distances = matrices
    tags = tuple(f"p{k}" for k in range(len(points)))

    def tagged(s: int, is_pickup: bool, visits) -> tuple[VisitRequest, ...]:
        return tuple(
            replace(
                v, arrival_location=None, avoid_u_turns=False, tags=(tags[chosen[(s, is_pickup)]],)
            )
            for v in visits
        )

    return replace(
        model,
        shipments=tuple(
            replace(
                sh,
                pickups=tagged(s, True, sh.pickups),
                deliveries=tagged(s, False, sh.deliveries),
            )
            for s, sh in enumerate(model.shipments)
        ),
        vehicles=tuple(
            replace(v, start_location=None, end_location=None, start_tags=("p0",), end_tags=("p0",))
            for v in model.vehicles
        ),
        duration_distance_matrices=(DurationDistanceMatrix(durations, distances),),
        duration_distance_matrix_src_tags=tags,
        duration_distance_matrix_dst_tags=tags,
    )


def headed_matrix_model(roads, model: ShipmentModel, solution) -> ShipmentModel:
    """``model`` as client matrices from the turn-free oracle, each visit with ``avoid_u_turns``
    located at the heading its route's legs match (asserting that one does), for the checker."""
    matrices = oracle_matrices(roads)
    points, _, distances = matrices
    chosen: dict[tuple[int, bool], int] = {}
    for route in solution.routes:
        before = 0
        for visit, leg in zip(route.visits, route.transitions, strict=False):
            shipment = model.shipments[visit.shipment_index]
            request = (shipment.pickups if visit.is_pickup else shipment.deliveries)[0]
            # the arrival leg picks the heading; the checker then verifies every leg with it
            match = [
                p
                for p in options_of(points, request)
                if abs(distances[before, p] - leg.travel_distance_m) < 1e-6
            ]
            assert match, f"no heading of {visit} matches its arrival leg"
            before = chosen[(visit.shipment_index, visit.is_pickup)] = match[0]
    return matrix_model(model, matrices, chosen)


def test_the_solution_is_optimal_over_every_heading(roads):
    """Brute force over every choice of headings (each a client-matrix model): the solve finds
    the best of them."""
    model = block_model(count=5)
    solution = solve(model, SolveOptions(time_limit_s=2.0), roads=roads)
    matrices = oracle_matrices(roads)
    requests = [(s, sh.deliveries[0]) for s, sh in enumerate(model.shipments)]
    optima = [
        brute_force_optimum(
            matrix_model(
                model, matrices, {(s, False): p for (s, _), p in zip(requests, pick, strict=True)}
            )
        )
        for pick in itertools.product(*(options_of(matrices[0], r) for _, r in requests))
    ]
    assert solution.metrics.total_cost == pytest.approx(min(optima), rel=1e-9)
    assert max(optima) > 1.5 * min(optima)  # the choice matters


@pytest.mark.parametrize(
    ("backend", "pairs"), [("ortools", False), ("pyvrp", False), ("ortools", True)]
)
def test_solution_passes_the_checker(roads, backend, pairs):
    model = block_model(pairs=pairs)
    options = SolveOptions(time_limit_s=2.0, backend=backend, populate_polylines=True)
    solution = solve(model, options, roads=roads)
    assert not solution.skipped_shipments
    check_solution(headed_matrix_model(roads, model, solution), solution)


def test_injected_routes_with_headings(roads):
    """Injected routes as a first solution and as a constraint keeping the sequence (times
    relaxed); the checker verifies the legs of whichever heading each visit uses."""
    model = block_model()
    route = InjectedRoute(visits=tuple(InjectedVisit(shipment_index=s) for s in (3, 0, 5, 1, 2, 4)))
    first = replace(model, injected_first_solution_routes=(route,))
    solution = solve(first, SolveOptions(time_limit_s=1.0), roads=roads)
    assert not solution.skipped_shipments
    check_solution(headed_matrix_model(roads, first, solution), solution)

    (solved,) = solution.routes
    kept = InjectedRoute(
        visits=tuple(
            InjectedVisit(shipment_index=v.shipment_index, start_time=v.start_time)
            for v in solved.visits
        ),
        vehicle_start_time=solved.vehicle_start_time,
        vehicle_end_time=solved.vehicle_end_time,
    )
    relax = ConstraintRelaxation((Relaxation(RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD),))
    constrained = replace(
        model, injected_solution_constraint=InjectedSolutionConstraint((kept,), (), (relax,))
    )
    again = solve(constrained, SolveOptions(time_limit_s=1.0), roads=roads)
    assert not again.skipped_shipments
    order = [v.shipment_index for v in solved.visits]
    assert [v.shipment_index for v in again.routes[0].visits] == order
    check_solution(headed_matrix_model(roads, constrained, again), again)


def test_refreshed_route_takes_the_best_headings(roads):
    """refresh_details_routes evaluates a given order: each visit at the heading that makes the
    route shortest (the oracle's best over every choice, which differs from the worst)."""
    model = block_model()
    order = (0, 1, 2, 4, 5, 3)  # each heading 0 here: 2.2 km longer than the best
    refresh = InjectedRoute(visits=tuple(InjectedVisit(shipment_index=s) for s in order))
    solution = solve(replace(model, refresh_details_routes=(refresh,)), SolveOptions(), roads=roads)
    (route,) = solution.routes
    assert [v.shipment_index for v in route.visits] == list(order)
    points, _, distances = oracle_matrices(roads)
    totals = []
    for pick in itertools.product(
        *(options_of(points, model.shipments[s].deliveries[0]) for s in order)
    ):
        sequence = [0, *pick, 0]
        totals.append(sum(distances[a, b] for a, b in itertools.pairwise(sequence)))
    reported = sum(t.travel_distance_m for t in route.transitions)
    assert reported == pytest.approx(min(totals), rel=1e-9)
    assert max(totals) > min(totals) + 1000.0
