"""The checker with geodesic travel (open route, no start or end), haversine distances, and a
solution that skips everything."""

from __future__ import annotations

import dataclasses
import math

import pytest

from engine.model import (
    LatLng,
    Shipment,
    ShipmentModel,
    Vehicle,
    VisitRequest,
)
from engine.solution import (
    AggregatedMetrics,
    Metrics,
    Route,
    SkippedShipment,
    SkipReason,
    SkipReasonCode,
    Solution,
    SolveStatus,
    Transition,
    VehicleFullness,
    Visit,
)
from tests.checker import check_solution, haversine_m
from tests.checker_cases import Case

D = 6_371_008.8 * math.radians(0.01)
"""Arc length of 0.01° of longitude on the equator (≈ 1112 m)."""


def geodesic_case(speed: float) -> Case:
    model = ShipmentModel(
        shipments=(
            Shipment(
                pickups=(VisitRequest(LatLng(0, 0), duration_s=10),),
                deliveries=(VisitRequest(LatLng(0, 0.01), duration_s=20),),
            ),
        ),
        vehicles=(Vehicle(cost_per_kilometer=2.0, travel_duration_multiple=1.5),),
    )
    travel = 1.5 * D / speed
    costs = {"model.vehicles.cost_per_kilometer": 2.0 * D / 1000}
    route_metrics = AggregatedMetrics(
        performed_shipment_count=1,
        performed_mandatory_shipment_count=1,
        travel_duration_s=travel,
        visit_duration_s=30,
        total_duration_s=travel + 30,
        travel_distance_m=D,
    )
    route = Route(
        vehicle_index=0,
        vehicle_start_time=100,
        vehicle_end_time=130 + travel,
        visits=(Visit(0, True, 0, 100), Visit(0, False, 0, 110 + travel)),
        transitions=(
            Transition(100, 0, 0, 0, 0, 0),
            Transition(110, travel, D, 0, 0, travel),
            Transition(130 + travel, 0, 0, 0, 0, 0),
        ),
        metrics=route_metrics,
        route_costs=costs,
        route_total_cost=2.0 * D / 1000,
        # No limits: only the span, the whole solution's (one route).
        vehicle_fullness=VehicleFullness(max_fullness=1.0, active_span=1.0),
    )
    solution = Solution(
        routes=(route,),
        skipped_shipments=(),
        metrics=Metrics(
            aggregated_route_metrics=route_metrics,
            used_vehicle_count=1,
            earliest_vehicle_start_time=100,
            latest_vehicle_end_time=130 + travel,
            costs=costs,
            total_cost=2.0 * D / 1000,
        ),
        status=SolveStatus.SOLVED,
    )
    return model, solution


def test_haversine_matches_arc_length_on_equator() -> None:
    assert haversine_m(LatLng(0, 0), LatLng(0, 0.01)) == pytest.approx(D, rel=1e-12)
    assert haversine_m(LatLng(0, 0), LatLng(0, 180)) == pytest.approx(math.pi * 6_371_008.8)


def test_geodesic_open_route_is_valid() -> None:
    model, solution = geodesic_case(speed=5.0)
    check_solution(model, solution, geodesic_meters_per_second=5.0)


def test_geodesic_speed_is_used() -> None:
    model, solution = geodesic_case(speed=5.0)
    with pytest.raises(AssertionError, match=r"transitions\[1\]: travel_duration_s is"):
        check_solution(model, solution)  # default speed 10 m/s


def test_everything_skipped_is_valid() -> None:
    model = ShipmentModel(
        shipments=(
            Shipment(deliveries=(VisitRequest(LatLng(0, 0)),), penalty_cost=7.0, label="a"),
            Shipment(deliveries=(VisitRequest(LatLng(0, 1)),), label="b"),
        ),
        vehicles=(Vehicle(start_location=LatLng(0, 0), label="v"),),
    )
    reasons = (SkipReason(SkipReasonCode.CODE_UNSPECIFIED),)
    solution = Solution(
        routes=(Route(vehicle_index=0, vehicle_label="v"),),
        skipped_shipments=(SkippedShipment(0, "a", reasons), SkippedShipment(1, "b", reasons)),
        metrics=Metrics(
            skipped_mandatory_shipment_count=1,
            costs={"model.shipments.penalty_cost": 7.0},
            total_cost=7.0,
        ),
        status=SolveStatus.SOLVED,
    )
    check_solution(model, solution)
    bad = dataclasses.replace(
        solution, metrics=dataclasses.replace(solution.metrics, earliest_vehicle_start_time=0.0)
    )
    with pytest.raises(AssertionError, match=r"earliest_vehicle_start_time is 0\.0, expected None"):
        check_solution(model, bad)
