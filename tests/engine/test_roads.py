"""Solving over a road network: road travel, geometry, snapping errors, unreachable stops.

Road solutions are verified by the independent checker through the independent road oracle
(``tests.road_oracle``: brute-force snapping and scipy's Dijkstra on a split graph).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from engine import (
    InvalidModelError,
    LatLng,
    Shipment,
    ShipmentModel,
    SkipReasonCode,
    SolveOptions,
    Vehicle,
    VisitRequest,
    solve,
)
from engine.roads import RoadContext, RoadSpec, embedded_extract, load_roads
from geodata.geo import haversine_m
from geodata.network import RoadNetwork
from geodata.polyline import decode_polyline
from geodata.snap import Snapper
from tests.checker import check_solution
from tests.road_oracle import as_matrix_model


@functools.cache
def helsinki() -> RoadContext:
    return load_roads(RoadSpec(str(embedded_extract())))


def node_model(roads: RoadContext, seed: int, n: int = 10, vehicles: int = 2) -> ShipmentModel:
    """Deliveries at random network nodes (so both snappers agree exactly)."""
    net = roads.network
    rng = np.random.default_rng(seed)
    nodes = rng.choice(net.n_nodes, size=n + 1, replace=False)
    at = [LatLng(float(net.lat[i]), float(net.lon[i])) for i in nodes]
    return ShipmentModel(
        shipments=tuple(
            Shipment(
                deliveries=(VisitRequest(arrival_location=p, duration_s=60.0),),
                load_demands={"kg": 1},
            )
            for p in at[1:]
        ),
        vehicles=(
            Vehicle(
                start_location=at[0],
                end_location=at[0],
                cost_per_kilometer=1.0,
                cost_per_hour=20.0,
                load_limits={"kg": n // vehicles + 1},
            ),
        )
        * vehicles,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_road_solution_passes_the_checker_with_road_travel(seed):
    roads = helsinki()
    model = node_model(roads, seed)
    solution = solve(model, SolveOptions(time_limit_s=1.0, populate_polylines=True), roads=roads)
    assert solution.matrix_source == "road"
    assert not solution.skipped_shipments
    check_solution(as_matrix_model(model, roads.network), solution)


@pytest.mark.parametrize("processes", [1, 2], ids=["one-search", "portfolio"])
def test_route_geometry_follows_the_transitions(processes):
    roads = helsinki()
    model = node_model(roads, 4)
    options = SolveOptions(time_limit_s=1.0, populate_polylines=True, solver_processes=processes)
    solution = solve(model, options, roads=roads)
    assert solution.solver_processes == processes
    for route in solution.routes:
        if not route.visits:
            assert route.polyline == ""
            continue
        for t in route.transitions:
            coords = np.asarray(decode_polyline(t.polyline)) if t.polyline else np.zeros((0, 2))
            if t.travel_distance_m == 0:
                continue
            length = haversine_m(coords[:-1, 0], coords[:-1, 1], coords[1:, 0], coords[1:, 1])
            # precision-5 coordinates move each vertex by up to ~0.6 m
            assert length.sum() == pytest.approx(t.travel_distance_m, rel=0.02, abs=5.0)
        whole = np.asarray(decode_polyline(route.polyline))
        length = haversine_m(whole[:-1, 0], whole[:-1, 1], whole[1:, 0], whole[1:, 1]).sum()
        assert length == pytest.approx(route.metrics.travel_distance_m, rel=0.02, abs=5.0)


def test_no_polylines_unless_asked():
    roads = helsinki()
    solution = solve(node_model(roads, 5), SolveOptions(time_limit_s=0.5), roads=roads)
    assert all(r.polyline == "" for r in solution.routes)
    assert all(t.polyline == "" for r in solution.routes for t in r.transitions)


def test_geodesic_request_ignores_the_roads():
    roads = helsinki()
    model = node_model(roads, 6)
    options = SolveOptions(time_limit_s=0.5, use_geodesic_distances=True)
    solution = solve(model, options, roads=roads)
    assert solution.matrix_source == "geodesic"
    check_solution(model, solution)


def test_location_far_from_roads_is_rejected_with_its_path():
    roads = helsinki()
    model = node_model(roads, 7, n=3)
    far = Shipment(deliveries=(VisitRequest(arrival_location=LatLng(60.30, 24.94)),))
    model = ShipmentModel(shipments=(*model.shipments, far), vehicles=model.vehicles)
    with pytest.raises(InvalidModelError) as info:
        solve(model, SolveOptions(time_limit_s=0.5), roads=roads)
    assert [v.field for v in info.value.violations] == [
        "shipments[3].deliveries[0].arrival_location"
    ]


def two_islands() -> RoadContext:
    """Two two-way streets that no road connects."""
    network = RoadNetwork(
        indptr=np.array([0, 1, 2, 3, 4]),
        indices=np.array([1, 0, 3, 2], dtype=np.int32),
        travel_time_s=np.full(4, 10.0),
        length_m=np.full(4, 55.6),
        speed_kph=np.full(4, 20.0),
        way_id=np.array([1, 1, 2, 2]),
        highway=np.zeros(4, dtype=np.int8),
        lat=np.array([60.0, 60.0, 60.01, 60.01]),
        lon=np.array([25.0, 25.001, 25.0, 25.001]),
        osm_id=np.arange(1, 5),
        profile="car",
    )
    return RoadContext(RoadSpec("two-islands"), network, Snapper(network))


def test_unreachable_stop_is_skipped_with_its_reason():
    roads = two_islands()
    depot = LatLng(60.0, 25.0)
    model = ShipmentModel(
        shipments=(
            Shipment(deliveries=(VisitRequest(arrival_location=LatLng(60.0, 25.001)),)),
            Shipment(deliveries=(VisitRequest(arrival_location=LatLng(60.01, 25.001)),)),
        ),
        vehicles=(Vehicle(start_location=depot, end_location=depot, cost_per_kilometer=1.0),),
    )
    solution = solve(model, SolveOptions(time_limit_s=0.5), roads=roads)
    (skipped,) = solution.skipped_shipments
    assert skipped.index == 1
    assert [r.code for r in skipped.reasons] == [SkipReasonCode.UNREACHABLE_LOCATION]
    assert solution.routes[0].metrics.travel_distance_m == pytest.approx(2 * 55.6)


def test_refresh_details_routes_draws_the_routes_on_the_roads():
    """refresh_details_routes over roads (issue 15): the solved routes given back come with the
    same times, costs and polylines, without a search."""
    from engine.model import InjectedRoute, InjectedVisit

    roads = helsinki()
    model = node_model(roads, 5)
    options = SolveOptions(time_limit_s=1.0, populate_polylines=True)
    solved = solve(model, options, roads=roads)
    routes = tuple(
        InjectedRoute(
            r.vehicle_index,
            tuple(InjectedVisit(v.shipment_index, False, 0, v.start_time) for v in r.visits),
            r.vehicle_start_time,
            r.vehicle_end_time,
        )
        for r in solved.routes
        if r.visits
    )
    refresh = ShipmentModel(
        shipments=model.shipments, vehicles=model.vehicles, refresh_details_routes=routes
    )
    refreshed = solve(refresh, options, roads=roads)
    assert refreshed.backend == "refresh"
    assert refreshed.routes == solved.routes
    assert any(r.polyline for r in refreshed.routes)
    check_solution(as_matrix_model(refresh, roads.network), refreshed)
