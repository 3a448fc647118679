"""rpc.convert.solution: an engine Solution to an OptimizeToursResponse, field by field."""

from __future__ import annotations

import pytest

from engine.solution import (
    AggregatedMetrics,
    Break,
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
from rpc.convert import solution_to_response
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.convert_helpers import dur, ts

REASON = "auto: pyvrp cannot express vehicle breaks (model.vehicles[0].break_rule)"


def hand_built_transitions(t: float) -> tuple[Transition, ...]:
    return (
        Transition(
            start_time=t + 0.5,
            travel_duration_s=99.75,
            travel_distance_m=1000.5,
            wait_duration_s=0.0,
            break_duration_s=0.0,
            total_duration_s=99.75,
            vehicle_loads={"kg": 0},
            polyline="_p~iF~ps|U",
        ),
        Transition(
            start_time=t + 160.25,
            travel_duration_s=500.0,
            travel_distance_m=3000.0,
            wait_duration_s=30.25,
            break_duration_s=900.0,
            total_duration_s=1430.25,
            vehicle_loads={"kg": 5},
            delay_duration_s=20.5,  # transition_attributes (issue 15)
        ),
        Transition(
            start_time=t + 900.0,
            travel_duration_s=0.75,
            travel_distance_m=321.0,
            wait_duration_s=0.0,
            break_duration_s=0.0,
            total_duration_s=0.75,
            vehicle_loads={"kg": 0},
        ),
    )


def hand_built_skipped() -> tuple[SkippedShipment, ...]:
    return (
        SkippedShipment(
            index=0,
            label="s0",
            reasons=(
                SkipReason(
                    code=SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY,
                    example_vehicle_index=0,
                    example_exceeded_capacity_type="kg",
                ),
                SkipReason(code=SkipReasonCode.VEHICLE_NOT_ALLOWED, example_vehicle_index=1),
            ),
        ),
        SkippedShipment(
            index=2,
            label="s2",
            reasons=(SkipReason(code=SkipReasonCode.NO_VEHICLE),),
            penalty_cost=7.5,
        ),
        SkippedShipment(index=3),
    )


def hand_built_solution() -> Solution:
    t = 1_700_000_000.0
    metrics = AggregatedMetrics(
        performed_shipment_count=2,
        performed_mandatory_shipment_count=1,
        performed_shipment_penalty_cost_sum=12.5,
        travel_duration_s=600.5,
        wait_duration_s=30.25,
        delay_duration_s=12.125,
        break_duration_s=900.0,
        visit_duration_s=120.75,
        total_duration_s=1651.625,
        travel_distance_m=4321.5,
        max_loads={"kg": 12, "pallets": 1},
        transition_delay_duration_s=20.5,
    )
    used = Route(
        vehicle_index=0,
        vehicle_label="van-1",
        vehicle_start_time=t + 0.5,
        vehicle_end_time=t + 1652.125,
        visits=(
            Visit(
                shipment_index=1,
                is_pickup=True,
                visit_request_index=0,
                start_time=t + 100.25,
                load_demands={"kg": 5},
                shipment_label="s1",
                visit_label="s1-pickup",
                detour_s=40.25,
            ),
            Visit(
                shipment_index=1,
                is_pickup=False,
                visit_request_index=1,
                start_time=t + 800.0078125,
                load_demands={"kg": -5},
                shipment_label="s1",
                visit_label="s1-drop",
                detour_s=310.5,
            ),
        ),
        transitions=hand_built_transitions(t),
        breaks=(Break(start_time=t + 200.125, duration_s=900.0),),
        metrics=metrics,
        route_costs={"model.vehicles.fixed_cost": 50.0, "model.vehicles.cost_per_kilometer": 1.5},
        route_total_cost=51.5,
        polyline="_p~iF~ps|U_ulLnnqC",
        vehicle_fullness=VehicleFullness(max_fullness=0.75, distance=0.25, active_span=0.75),
    )
    unused = Route(vehicle_index=1, vehicle_label="van-2")
    return Solution(
        routes=(used, unused),
        skipped_shipments=hand_built_skipped(),
        metrics=Metrics(
            aggregated_route_metrics=metrics,
            skipped_mandatory_shipment_count=1,
            used_vehicle_count=1,
            earliest_vehicle_start_time=t + 0.5,
            latest_vehicle_end_time=t + 1652.125,
            costs={
                "model.vehicles.fixed_cost": 50.0,
                "model.vehicles.cost_per_kilometer": 1.5,
                "model.shipments.penalty_cost": 80.0,
            },
            total_cost=131.5,
        ),
        status=SolveStatus.INTERRUPTED,
        backend="ortools",
        backend_reason=REASON,
        solver_processes=2,
        matrix_source="geodesic",
        matrix_time_s=0.012,
        solve_time_s=4.5,
        solver_time_limit_s=4.75,
    )


def expected_transitions(t: int) -> list[pb.ShipmentRoute.Transition]:
    load = pb.ShipmentRoute.VehicleLoad
    return [
        pb.ShipmentRoute.Transition(
            start_time=ts(t, 500_000_000),
            travel_duration=dur(99, 750_000_000),
            travel_distance_meters=1000.5,
            wait_duration=dur(0),
            delay_duration=dur(0),
            break_duration=dur(0),
            total_duration=dur(99, 750_000_000),
            vehicle_loads={"kg": load(amount=0)},
            route_polyline=pb.ShipmentRoute.EncodedPolyline(points="_p~iF~ps|U"),
        ),
        pb.ShipmentRoute.Transition(
            start_time=ts(t + 160, 250_000_000),
            travel_duration=dur(500),
            travel_distance_meters=3000.0,
            wait_duration=dur(30, 250_000_000),
            delay_duration=dur(20, 500_000_000),
            break_duration=dur(900),
            total_duration=dur(1430, 250_000_000),
            vehicle_loads={"kg": load(amount=5)},
        ),
        pb.ShipmentRoute.Transition(
            start_time=ts(t + 900),
            travel_duration=dur(0, 750_000_000),
            travel_distance_meters=321.0,
            wait_duration=dur(0),
            delay_duration=dur(0),
            break_duration=dur(0),
            total_duration=dur(0, 750_000_000),
            vehicle_loads={"kg": load(amount=0)},
        ),
    ]


def expected_visits(t: int) -> list[pb.ShipmentRoute.Visit]:
    return [
        pb.ShipmentRoute.Visit(
            shipment_index=1,
            is_pickup=True,
            visit_request_index=0,
            start_time=ts(t + 100, 250_000_000),
            load_demands={"kg": pb.Shipment.Load(amount=5)},
            shipment_label="s1",
            visit_label="s1-pickup",
            detour=dur(40, 250_000_000),
        ),
        pb.ShipmentRoute.Visit(
            shipment_index=1,
            is_pickup=False,
            visit_request_index=1,
            start_time=ts(t + 800, 7_812_500),
            load_demands={"kg": pb.Shipment.Load(amount=-5)},
            shipment_label="s1",
            visit_label="s1-drop",
            detour=dur(310, 500_000_000),
        ),
    ]


def expected_skipped() -> list[pb.SkippedShipment]:
    return [
        pb.SkippedShipment(
            index=0,
            label="s0",
            reasons=[
                pb.SkippedShipment.Reason(
                    code=pb.SkippedShipment.Reason.DEMAND_EXCEEDS_VEHICLE_CAPACITY,
                    example_vehicle_index=0,
                    example_exceeded_capacity_type="kg",
                ),
                pb.SkippedShipment.Reason(
                    code=pb.SkippedShipment.Reason.VEHICLE_NOT_ALLOWED, example_vehicle_index=1
                ),
            ],
        ),
        pb.SkippedShipment(
            index=2,
            label="s2",
            reasons=[pb.SkippedShipment.Reason(code=pb.SkippedShipment.Reason.NO_VEHICLE)],
            penalty_cost=7.5,
        ),
        pb.SkippedShipment(index=3),
    ]


def test_solution_to_response_maps_every_field() -> None:
    t = 1_700_000_000
    response = solution_to_response(hand_built_solution(), request_label="req-7")
    agg = pb.AggregatedMetrics(
        performed_shipment_count=2,
        performed_mandatory_shipment_count=1,
        performed_shipment_penalty_cost_sum=12.5,
        travel_duration=dur(600, 500_000_000),
        wait_duration=dur(30, 250_000_000),
        late_duration=dur(12, 125_000_000),
        delay_duration=dur(20, 500_000_000),
        break_duration=dur(900),
        visit_duration=dur(120, 750_000_000),
        total_duration=dur(1651, 625_000_000),
        travel_distance_meters=4321.5,
        max_loads={
            "kg": pb.ShipmentRoute.VehicleLoad(amount=12),
            "pallets": pb.ShipmentRoute.VehicleLoad(amount=1),
        },
    )
    expected = pb.OptimizeToursResponse(
        request_label="req-7",
        routes=[
            pb.ShipmentRoute(
                vehicle_index=0,
                vehicle_label="van-1",
                vehicle_start_time=ts(t, 500_000_000),
                vehicle_end_time=ts(t + 1652, 125_000_000),
                visits=expected_visits(t),
                transitions=expected_transitions(t),
                route_polyline=pb.ShipmentRoute.EncodedPolyline(points="_p~iF~ps|U_ulLnnqC"),
                breaks=[
                    pb.ShipmentRoute.Break(start_time=ts(t + 200, 125_000_000), duration=dur(900))
                ],
                metrics=agg,
                route_costs={
                    "model.vehicles.fixed_cost": 50.0,
                    "model.vehicles.cost_per_kilometer": 1.5,
                },
                route_total_cost=51.5,
                # only the ratios that are set: the others stay absent
                vehicle_fullness=pb.VehicleFullness(
                    max_fullness=0.75, distance=0.25, active_span=0.75
                ),
            ),
            pb.ShipmentRoute(vehicle_index=1, vehicle_label="van-2"),
        ],
        skipped_shipments=expected_skipped(),
        metrics=pb.OptimizeToursResponse.Metrics(
            aggregated_route_metrics=agg,
            skipped_mandatory_shipment_count=1,
            used_vehicle_count=1,
            earliest_vehicle_start_time=ts(t, 500_000_000),
            latest_vehicle_end_time=ts(t + 1652, 125_000_000),
            costs={
                "model.vehicles.fixed_cost": 50.0,
                "model.vehicles.cost_per_kilometer": 1.5,
                "model.shipments.penalty_cost": 80.0,
            },
            total_cost=131.5,
        ),
        solve_info=pb.SolveInfo(
            status=pb.SolveInfo.INTERRUPTED,
            backend="ortools",
            backend_reason=REASON,
            solver_processes=2,
            matrix_source="geodesic",
            matrix_duration=dur(0, 12_000_000),
            solve_duration=dur(4, 500_000_000),
            solver_time_limit=dur(4, 750_000_000),
        ),
    )
    assert response == expected


def test_response_presence_of_optional_fields() -> None:
    response = solution_to_response(hand_built_solution(), request_label="")
    used, unused = response.routes
    # An unused vehicle carries only its index and label.
    assert unused == pb.ShipmentRoute(vehicle_index=1, vehicle_label="van-2")
    assert not unused.HasField("vehicle_start_time")
    assert not unused.HasField("metrics")
    # Polylines only when non-empty.
    assert used.HasField("route_polyline")
    assert used.transitions[0].HasField("route_polyline")
    assert not used.transitions[1].HasField("route_polyline")
    # example_vehicle_index is a proto3 optional: 0 is set, None is unset.
    reasons = response.skipped_shipments[0].reasons
    assert reasons[0].HasField("example_vehicle_index")
    assert reasons[0].example_vehicle_index == 0
    assert not response.skipped_shipments[1].reasons[0].HasField("example_vehicle_index")


@pytest.mark.parametrize("status", list(SolveStatus))
def test_solve_status_names_match(status: SolveStatus) -> None:
    solution = Solution(routes=(), skipped_shipments=(), metrics=Metrics(), status=status)
    response = solution_to_response(solution, request_label="")
    assert response.solve_info.status == status.value
    assert not response.metrics.HasField("earliest_vehicle_start_time")
    assert not response.metrics.HasField("latest_vehicle_end_time")


@pytest.mark.parametrize("code", list(SkipReasonCode))
def test_skip_reason_codes_match(code: SkipReasonCode) -> None:
    assert pb.SkippedShipment.Reason.Code.Value(code.name) == code.value
