"""The brute-force reference (tests/bruteforce.py) on tiny line instances, and its agreement
with a solution that passes the checker."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from engine.model import (
    BreakRequest,
    DurationDistanceMatrix,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from engine.solution import (
    AggregatedMetrics,
    Metrics,
    Route,
    Solution,
    SolveStatus,
    Transition,
    VehicleFullness,
    Visit,
)
from tests.bruteforce import brute_force_optimum
from tests.checker import check_solution

# A line depot - A - B, 1 km apart, plus C far away; durations at 10 m/s.
LINE_TAGS = ("depot", "A", "B", "C")
LINE_KM = np.array(
    [
        [0, 1, 2, 10],
        [1, 0, 1, 10],
        [2, 1, 0, 10],
        [10, 10, 10, 0],
    ],
    dtype=np.float64,
)


def line_model(
    shipments: tuple[Shipment, ...], vehicles: tuple[Vehicle, ...] | None = None
) -> ShipmentModel:
    if vehicles is None:
        vehicles = (depot_vehicle(cost_per_kilometer=1.0),)
    return ShipmentModel(
        shipments=shipments,
        vehicles=vehicles,
        duration_distance_matrices=(DurationDistanceMatrix(LINE_KM * 100, LINE_KM * 1000),),
        duration_distance_matrix_src_tags=LINE_TAGS,
        duration_distance_matrix_dst_tags=LINE_TAGS,
    )


def depot_vehicle(**fields: Any) -> Vehicle:
    return Vehicle(start_tags=("depot",), end_tags=("depot",), **fields)


def at(tag: str, *windows: TimeWindow, duration_s: float = 0.0) -> tuple[VisitRequest, ...]:
    return (VisitRequest(tags=(tag,), time_windows=windows, duration_s=duration_s),)


def test_brute_force_skips_when_the_penalty_is_cheaper() -> None:
    # Serving A and B: depot-A-B-depot = 4 km. Serving C as well: 22 km, +18 > penalty 1.
    model = line_model(
        (
            Shipment(deliveries=at("A")),
            Shipment(deliveries=at("B")),
            Shipment(deliveries=at("C"), penalty_cost=1.0),
        )
    )
    assert brute_force_optimum(model) == pytest.approx(5.0)
    # With a penalty above 18 the far shipment is served: depot-A-B-C-depot = 22 km.
    model = line_model((*model.shipments[:2], Shipment(deliveries=at("C"), penalty_cost=30.0)))
    assert brute_force_optimum(model) == pytest.approx(22.0)


def test_brute_force_capacity_and_fixed_costs() -> None:
    # Vehicle 0 carries one unit, vehicle 1 two units but costs 3 when used.
    # Vehicle 1 alone: 3 + 4 km = 7; any split: 2 + (3 + 4) or 4 + (3 + 2) = 9.
    shipments = tuple(
        Shipment(deliveries=at(tag), load_demands={"weight": 1}) for tag in ("A", "B")
    )
    vehicles = (
        depot_vehicle(cost_per_kilometer=1.0, load_limits={"weight": 1}),
        depot_vehicle(cost_per_kilometer=1.0, load_limits={"weight": 2}, fixed_cost=3.0),
    )
    assert brute_force_optimum(line_model(shipments, vehicles)) == pytest.approx(7.0)
    # Vehicle 1 not allowed for B: split forced, 4 (vehicle 0 to B) + 5 (vehicle 1 to A).
    shipments = (shipments[0], dataclasses.replace(shipments[1], allowed_vehicle_indices=(0,)))
    assert brute_force_optimum(line_model(shipments, vehicles)) == pytest.approx(9.0)


def test_brute_force_pickup_before_delivery_and_travel_hours() -> None:
    # Pick up at B, deliver at A: depot-B-A-depot = 2 + 1 + 1 = 4 km, 400 s of travel
    # (matrix durations 100 s/km) doubled by the multiple = 800 s at 36/h = 8.
    vehicles = (
        depot_vehicle(
            cost_per_kilometer=1.0, cost_per_traveled_hour=36.0, travel_duration_multiple=2.0
        ),
    )
    model = line_model((Shipment(pickups=at("B"), deliveries=at("A")),), vehicles)
    assert brute_force_optimum(model) == pytest.approx(4.0 + 8.0)


def test_brute_force_starts_late_to_meet_the_duration_limit() -> None:
    # A can only be served in [900, 950]; depot-A takes 100 s. Starting at 0 would make the
    # route last 1110 s > 250 s, starting at 800 it lasts 210 s: serving (2 km) beats 100.
    vehicles = (
        depot_vehicle(
            cost_per_kilometer=1.0,
            start_time_windows=(TimeWindow(0, 1000),),
            route_duration_limit_s=250.0,
        ),
    )
    shipments = (
        Shipment(deliveries=at("A", TimeWindow(900, 950), duration_s=10), penalty_cost=100.0),
    )
    assert brute_force_optimum(line_model(shipments, vehicles)) == pytest.approx(2.0)
    # A limit of 200 s cannot be met: the shipment is skipped.
    vehicles = (dataclasses.replace(vehicles[0], route_duration_limit_s=200.0),)
    assert brute_force_optimum(line_model(shipments, vehicles)) == pytest.approx(100.0)


def test_brute_force_time_windows_force_the_order() -> None:
    # Open route (no end): depot-A-B is 2 km, depot-B-A 3 km. B must be served by 250 s and
    # A from 400 s on, which forces the longer order.
    vehicles = (Vehicle(start_tags=("depot",), cost_per_kilometer=1.0),)
    shipments = (Shipment(deliveries=at("A")), Shipment(deliveries=at("B")))
    assert brute_force_optimum(line_model(shipments, vehicles)) == pytest.approx(2.0)
    shipments = (
        Shipment(deliveries=at("A", TimeWindow(400, 1000))),
        Shipment(deliveries=at("B", TimeWindow(0, 250))),
    )
    assert brute_force_optimum(line_model(shipments, vehicles)) == pytest.approx(3.0)
    # B cannot be reached by 150 s (200 s away) and is mandatory.
    shipments = (shipments[0], Shipment(deliveries=at("B", TimeWindow(0, 150))))
    with pytest.raises(ValueError, match="no feasible assignment"):
        brute_force_optimum(line_model(shipments, vehicles))


def test_brute_force_distance_limit() -> None:
    vehicles = (depot_vehicle(cost_per_kilometer=1.0, route_distance_limit_m=3000.0),)
    shipments = (
        Shipment(deliveries=at("A"), penalty_cost=5.0),
        Shipment(deliveries=at("B"), penalty_cost=3.0),
    )
    # Both: 4 km > limit. A alone: 2 + penalty 3 = 5; B alone: 4 km > limit. Neither: 8.
    assert brute_force_optimum(line_model(shipments, vehicles)) == pytest.approx(5.0)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(
            line_model((Shipment(deliveries=at("A", TimeWindow(soft_end_time=5.0))),)),
            id="soft-window",
        ),
        pytest.param(line_model((), (depot_vehicle(cost_per_hour=1.0),)), id="cost-per-hour"),
        pytest.param(
            line_model((), (depot_vehicle(break_requests=(BreakRequest(0, 10, 5),)),)),
            id="breaks",
        ),
        pytest.param(
            line_model(tuple(Shipment(deliveries=at("A")) for _ in range(7))), id="7-visits"
        ),
        pytest.param(line_model((), (depot_vehicle(),) * 4), id="4-vehicles"),
        pytest.param(line_model((Shipment(deliveries=(*at("A"), *at("B"))),)), id="alternatives"),
    ],
)
def test_brute_force_rejects_unsupported_models(model: ShipmentModel) -> None:
    with pytest.raises(ValueError, match="brute force does not support"):
        brute_force_optimum(model)


def test_brute_force_agrees_with_a_checked_solution() -> None:
    # Serve A then B on the line: 4 km at 1/km. The hand-written solution passes the checker
    # and its total cost equals the brute-force optimum.
    model = line_model((Shipment(deliveries=at("A")), Shipment(deliveries=at("B"))))
    route_metrics = AggregatedMetrics(
        performed_shipment_count=2,
        performed_mandatory_shipment_count=2,
        travel_duration_s=400,
        total_duration_s=400,
        travel_distance_m=4000,
    )
    costs = {"model.vehicles.cost_per_kilometer": 4.0}
    solution = Solution(
        routes=(
            Route(
                vehicle_index=0,
                vehicle_start_time=0,
                vehicle_end_time=400,
                # A (100 from the depot) is reached at 300, by way of B: a 200-s detour.
                visits=(Visit(1, False, 0, 200), Visit(0, False, 0, 300, detour_s=200)),
                transitions=(
                    Transition(0, 200, 2000, 0, 0, 200),
                    Transition(200, 100, 1000, 0, 0, 100),
                    Transition(300, 100, 1000, 0, 0, 100),
                ),
                metrics=route_metrics,
                route_costs=costs,
                route_total_cost=4.0,
                vehicle_fullness=VehicleFullness(max_fullness=1.0, active_span=1.0),
            ),
        ),
        skipped_shipments=(),
        metrics=Metrics(
            aggregated_route_metrics=route_metrics,
            used_vehicle_count=1,
            earliest_vehicle_start_time=0,
            latest_vehicle_end_time=400,
            costs=costs,
            total_cost=4.0,
        ),
        status=SolveStatus.SOLVED,
    )
    check_solution(model, solution)
    assert brute_force_optimum(model) == pytest.approx(solution.metrics.total_cost)
