"""Tests of the independent checker and the brute-force reference on hand-built instances."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from engine.model import (
    BreakRequest,
    DurationDistanceMatrix,
    LatLng,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
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
    Visit,
)
from tests.bruteforce import brute_force_optimum
from tests.checker import check_solution, haversine_m

T = 1_700_000_000.0
"""Start of the horizon of the main instance (epoch seconds, to exercise large times)."""

# --------------------------------------------------------------------------------------------
# Main instance: client matrices, one used vehicle (pickup+delivery, delivery-only shipment,
# break, soft windows) and one unused vehicle, one skipped optional shipment.
# --------------------------------------------------------------------------------------------

SRC_TAGS = ("depot", "depot2", "A", "B", "C")
DST_TAGS = ("depot", "A", "B", "C")
DURATIONS = np.array(
    [
        [0, 300, 600, 900],  # from depot
        [1000, 1000, 1000, 1000],  # from depot2
        [300, 0, 300, 600],  # from A
        [600, 300, 0, 300],  # from B
        [900, 600, 300, 0],  # from C
    ],
    dtype=np.float64,
)


def main_model() -> ShipmentModel:
    """Two matrices (selected by start tag), vehicle 0 twice as slow as the matrix."""
    return ShipmentModel(
        shipments=(
            Shipment(
                pickups=(
                    VisitRequest(
                        tags=("A",),
                        time_windows=(TimeWindow(T + 900, T + 1500),),
                        duration_s=120,
                        label="pA",
                    ),
                ),
                deliveries=(VisitRequest(tags=("B", "other"), duration_s=60, label="dB"),),
                load_demands={"weight": 3, "pallets": 1},
                allowed_vehicle_indices=(0,),
                label="s0",
            ),
            Shipment(
                deliveries=(
                    VisitRequest(
                        tags=("C",),
                        time_windows=(
                            TimeWindow(
                                T,
                                T + 7200,
                                soft_end_time=T + 2500,
                                cost_per_hour_after_soft_end_time=36.0,
                            ),
                        ),
                        duration_s=180,
                        label="dC",
                    ),
                ),
                load_demands={"weight": 2},
                penalty_cost=1000.0,
                label="s1",
            ),
            Shipment(
                pickups=(VisitRequest(tags=("C",), duration_s=30),),
                load_demands={"weight": 100},
                penalty_cost=50.0,
                label="s2",
            ),
        ),
        vehicles=(
            Vehicle(
                start_tags=("depot",),
                end_tags=("depot",),
                start_time_windows=(
                    TimeWindow(
                        T,
                        T + 3600,
                        soft_start_time=T + 60,
                        cost_per_hour_before_soft_start_time=36.0,
                    ),
                ),
                end_time_windows=(TimeWindow(T, T + 7200),),
                travel_duration_multiple=2.0,
                load_limits={"weight": 5},
                cost_per_hour=30.0,
                cost_per_traveled_hour=60.0,
                cost_per_kilometer=1.0,
                fixed_cost=10.0,
                route_duration_limit_s=6000.0,
                route_distance_limit_m=20000.0,
                break_requests=(BreakRequest(T + 1000, T + 2000, 600),),
                label="truck",
            ),
            Vehicle(
                start_tags=("depot2",),
                end_tags=("depot",),
                load_limits={"weight": 10},
                label="spare",
            ),
        ),
        global_start_time=T,
        global_end_time=T + 86400,
        duration_distance_matrices=(
            DurationDistanceMatrix(DURATIONS, DURATIONS * 10, vehicle_start_tag="depot"),
            DurationDistanceMatrix(DURATIONS * 3, DURATIONS * 7, vehicle_start_tag="depot2"),
        ),
        duration_distance_matrix_src_tags=SRC_TAGS,
        duration_distance_matrix_dst_tags=DST_TAGS,
    )


def _loads(weight: int, pallets: int) -> dict[str, int]:
    return {"pallets": pallets, "weight": weight}


# Hand-computed schedule of vehicle 0 (travel durations are doubled by the multiple):
#   start T ─ 600 s travel, 300 s wait ─ pickup s0 at A T+900 (120 s)
#   ─ break T+1020 (600 s), 600 s travel ─ delivery s0 at B T+2220 (60 s)
#   ─ 600 s travel ─ delivery s1 at C T+2880 (180 s; 380 s after its soft end)
#   ─ 1800 s travel ─ end T+4860.
ROUTE_COSTS = {
    "model.vehicles.fixed_cost": 10.0,
    "model.vehicles.cost_per_kilometer": 18.0,  # 18 km
    "model.vehicles.cost_per_traveled_hour": 60.0,  # 3600 s of travel
    "model.vehicles.cost_per_hour": 40.5,  # 4860 s
    "model.shipments.deliveries.time_windows.cost_per_hour_after_soft_end_time": 3.8,  # 380 s
    "model.vehicles.start_time_windows.cost_per_hour_before_soft_start_time": 0.6,  # 60 s
}
ROUTE_TOTAL = 132.9
ROUTE_METRICS = AggregatedMetrics(
    performed_shipment_count=2,
    travel_duration_s=3600,
    wait_duration_s=300,
    delay_duration_s=380,
    break_duration_s=600,
    visit_duration_s=360,
    total_duration_s=4860,
    travel_distance_m=18000,
    max_loads=_loads(5, 1),
)


def main_solution() -> Solution:
    """A valid solution of :func:`main_model`, written by hand."""
    route = Route(
        vehicle_index=0,
        vehicle_label="truck",
        vehicle_start_time=T,
        vehicle_end_time=T + 4860,
        visits=(
            Visit(0, True, 0, T + 900, {"weight": 3, "pallets": 1}, "s0", "pA"),
            Visit(0, False, 0, T + 2220, {"weight": -3, "pallets": -1}, "s0", "dB"),
            Visit(1, False, 0, T + 2880, {"weight": -2}, "s1", "dC"),
        ),
        transitions=(
            Transition(T, 600, 3000, 300, 0, 900, _loads(2, 0)),
            Transition(T + 1020, 600, 3000, 0, 600, 1200, _loads(5, 1)),
            Transition(T + 2280, 600, 3000, 0, 0, 600, _loads(2, 0)),
            Transition(T + 3060, 1800, 9000, 0, 0, 1800, _loads(0, 0)),
        ),
        breaks=(Break(T + 1020, 600),),
        metrics=ROUTE_METRICS,
        route_costs=ROUTE_COSTS,
        route_total_cost=ROUTE_TOTAL,
    )
    return Solution(
        routes=(route, Route(vehicle_index=1, vehicle_label="spare")),
        skipped_shipments=(
            SkippedShipment(
                2,
                "s2",
                (SkipReason(SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY, 0, "weight"),),
            ),
        ),
        metrics=Metrics(
            aggregated_route_metrics=ROUTE_METRICS,
            skipped_mandatory_shipment_count=0,
            used_vehicle_count=1,
            earliest_vehicle_start_time=T,
            latest_vehicle_end_time=T + 4860,
            costs={**ROUTE_COSTS, "model.shipments.penalty_cost": 50.0},
            total_cost=ROUTE_TOTAL + 50.0,
        ),
        status=SolveStatus.SOLVED,
    )


# ---- mutation helpers -----------------------------------------------------------------------

Case = tuple[ShipmentModel, Solution]
Mutation = Callable[[ShipmentModel, Solution], Case]


def _replace_at(items: tuple[Any, ...], i: int, **changes: Any) -> tuple[Any, ...]:
    return (*items[:i], dataclasses.replace(items[i], **changes), *items[i + 1 :])


def vehicle(i: int, **changes: Any) -> Mutation:
    """Change vehicle i of the model."""

    def mutate(m: ShipmentModel, s: Solution) -> Case:
        return dataclasses.replace(m, vehicles=_replace_at(m.vehicles, i, **changes)), s

    return mutate


def shipment(i: int, **changes: Any) -> Mutation:
    """Change shipment i of the model."""

    def mutate(m: ShipmentModel, s: Solution) -> Case:
        return dataclasses.replace(m, shipments=_replace_at(m.shipments, i, **changes)), s

    return mutate


def pickup_windows(*windows: TimeWindow) -> Mutation:
    """Change the time windows of shipment 0's pickup."""

    def mutate(m: ShipmentModel, s: Solution) -> Case:
        pickups = _replace_at(m.shipments[0].pickups, 0, time_windows=windows)
        return shipment(0, pickups=pickups)(m, s)

    return mutate


def delivery_windows(*windows: TimeWindow) -> Mutation:
    """Change the time windows of shipment 1's delivery."""

    def mutate(m: ShipmentModel, s: Solution) -> Case:
        deliveries = _replace_at(m.shipments[1].deliveries, 0, time_windows=windows)
        return shipment(1, deliveries=deliveries)(m, s)

    return mutate


def model_field(**changes: Any) -> Mutation:
    return lambda m, s: (dataclasses.replace(m, **changes), s)


def solution_field(**changes: Any) -> Mutation:
    return lambda m, s: (m, dataclasses.replace(s, **changes))


def route(i: int, **changes: Any) -> Mutation:
    """Change route i of the solution."""

    def mutate(m: ShipmentModel, s: Solution) -> Case:
        return m, dataclasses.replace(s, routes=_replace_at(s.routes, i, **changes))

    return mutate


def visit(k: int, **changes: Any) -> Mutation:
    """Change visit k of route 0."""
    return lambda m, s: route(0, visits=_replace_at(s.routes[0].visits, k, **changes))(m, s)


def transition(k: int, **changes: Any) -> Mutation:
    """Change transition k of route 0."""
    return lambda m, s: route(0, transitions=_replace_at(s.routes[0].transitions, k, **changes))(
        m, s
    )


def route_metrics(**changes: Any) -> Mutation:
    return route(0, metrics=dataclasses.replace(ROUTE_METRICS, **changes))


def metrics(**changes: Any) -> Mutation:
    return lambda m, s: (
        m,
        dataclasses.replace(s, metrics=dataclasses.replace(s.metrics, **changes)),
    )


def route_costs(**changes: float) -> Mutation:
    """Change route 0's costs; keys use '__' for '.'."""
    costs = {**ROUTE_COSTS, **{k.replace("__", "."): v for k, v in changes.items()}}
    return route(0, route_costs=costs)


def swap_visits(m: ShipmentModel, s: Solution) -> Case:
    visits = s.routes[0].visits
    return route(0, visits=(visits[1], visits[0], visits[2]))(m, s)


def split_pair(m: ShipmentModel, s: Solution) -> Case:
    visits = s.routes[0].visits
    m, s = route(0, visits=(visits[0], visits[2]))(m, s)
    return route(1, visits=(visits[1],))(m, s)


def swap_routes(m: ShipmentModel, s: Solution) -> Case:
    return m, dataclasses.replace(s, routes=(s.routes[1], s.routes[0]))


def swap_matrix_tags(m: ShipmentModel, s: Solution) -> Case:
    a, b = m.duration_distance_matrices
    matrices = (
        DurationDistanceMatrix(a.durations_s, a.distances_m, vehicle_start_tag="depot2"),
        DurationDistanceMatrix(b.durations_s, b.distances_m, vehicle_start_tag="depot"),
    )
    return dataclasses.replace(m, duration_distance_matrices=matrices), s


def skipped(*entries: SkippedShipment) -> Mutation:
    return solution_field(skipped_shipments=entries)


S2_SKIPPED = SkippedShipment(2, "s2", (SkipReason(SkipReasonCode.CODE_UNSPECIFIED),))

MUTATIONS = [
    # Routes.
    pytest.param(solution_field(routes=()), "0 routes for 2 vehicles", id="missing-routes"),
    pytest.param(swap_routes, "routes[0]: vehicle_index is 1, expected 0", id="route-order"),
    pytest.param(route(0, vehicle_label="van"), "vehicle_label is 'van'", id="vehicle-label"),
    pytest.param(
        route(1, vehicle_start_time=T), "unused route has vehicle_start_time", id="unused-times"
    ),
    pytest.param(
        route(1, route_costs={"model.vehicles.fixed_cost": 1.0}),
        "unused route has route_costs",
        id="unused-costs",
    ),
    pytest.param(route(0, vehicle_end_time=None), "used route without", id="used-without-times"),
    # Shipments and pairs.
    pytest.param(
        swap_visits, "shipments[0]: delivery (visits[0]) before its pickup", id="delivery-first"
    ),
    pytest.param(split_pair, "pickup and delivery on different routes [0, 1]", id="pair-split"),
    pytest.param(
        lambda m, s: route(0, visits=s.routes[0].visits[1:])(m, s),
        "shipments[0]: 0 pickup visits",
        id="pickup-missing",
    ),
    pytest.param(
        lambda m, s: route(0, visits=(*s.routes[0].visits, s.routes[0].visits[0]))(m, s),
        "shipments[0]: 2 pickup visits",
        id="pickup-twice",
    ),
    pytest.param(
        visit(2, is_pickup=True),
        "shipments[1]: has no pickup alternatives",
        id="pickup-of-delivery-only",
    ),
    pytest.param(
        visit(0, visit_request_index=1), "visits[0]: invalid visit", id="bad-visit-request-index"
    ),
    pytest.param(
        skipped(SkippedShipment(0, "s0", S2_SKIPPED.reasons), S2_SKIPPED),
        "shipments[0]: both performed and skipped",
        id="performed-and-skipped",
    ),
    pytest.param(skipped(), "shipments[2]: neither performed nor skipped", id="not-accounted"),
    pytest.param(skipped(S2_SKIPPED, S2_SKIPPED), "not sorted/unique", id="skipped-duplicate"),
    pytest.param(
        skipped(SkippedShipment(2, "s2")),
        "skipped_shipments[0]: has no reason",
        id="skipped-no-reason",
    ),
    pytest.param(
        skipped(SkippedShipment(2, "x", S2_SKIPPED.reasons)), "label is 'x'", id="skipped-label"
    ),
    pytest.param(
        shipment(0, allowed_vehicle_indices=(1,)),
        "not in allowed_vehicle_indices",
        id="disallowed-vehicle",
    ),
    pytest.param(visit(0, shipment_label="zz"), "shipment_label is 'zz'", id="shipment-label"),
    pytest.param(visit(1, visit_label="zz"), "visit_label is 'zz'", id="visit-label"),
    # Time windows and horizon.
    pytest.param(
        pickup_windows(TimeWindow(T + 1000, T + 1500), TimeWindow(T + 3000, T + 4000)),
        "routes[0].visits[0]: start_time 1700000900.0 outside every hard time window",
        id="pickup-window-missed",
    ),
    pytest.param(
        delivery_windows(TimeWindow(None, T + 2000)),
        "routes[0].visits[2]: start_time",
        id="delivery-window-missed",
    ),
    pytest.param(
        vehicle(0, start_time_windows=(TimeWindow(T + 10, T + 20),)),
        "outside every start_time_window",
        id="vehicle-start-window",
    ),
    pytest.param(
        vehicle(0, end_time_windows=(TimeWindow(None, T + 4800),)),
        "outside every end_time_window",
        id="vehicle-end-window",
    ),
    pytest.param(
        model_field(global_end_time=T + 4000),
        "vehicle_end_time 1700004860.0 outside the horizon",
        id="horizon",
    ),
    # Transitions.
    pytest.param(
        lambda m, s: route(0, transitions=s.routes[0].transitions[:3])(m, s),
        "routes[0]: 3 transitions for 3 visits, expected 4",
        id="transition-count",
    ),
    pytest.param(
        transition(2, start_time=T + 2281), "transitions[2]: start_time is", id="transition-start"
    ),
    pytest.param(
        transition(0, travel_duration_s=300, wait_duration_s=600),
        "transitions[0]: travel_duration_s is 300",
        id="travel-without-multiple",
    ),
    pytest.param(
        vehicle(0, travel_duration_multiple=1.0),
        "transitions[3]: travel_duration_s is 1800",
        id="multiple",
    ),
    pytest.param(
        swap_matrix_tags, "transitions[0]: travel_duration_s is 600", id="matrix-selection"
    ),
    pytest.param(
        transition(3, travel_distance_m=9001),
        "transitions[3]: travel_distance_m is 9001",
        id="distance",
    ),
    pytest.param(
        transition(0, wait_duration_s=200),
        "transitions[0]: total_duration_s 900 != travel + wait + break",
        id="total-inconsistent",
    ),
    pytest.param(
        transition(0, total_duration_s=800, wait_duration_s=200),
        "transitions[0]: ends at 1700000800.0 but the next stop starts at 1700000900.0",
        id="transition-end",
    ),
    pytest.param(
        visit(1, start_time=T + 2100), "transitions[1]: negative wait -120", id="negative-wait"
    ),
    # Loads.
    pytest.param(
        vehicle(0, load_limits={"weight": 4}),
        "transitions[1]: load 'weight' = 5 exceeds max_load 4",
        id="capacity",
    ),
    pytest.param(
        transition(1, vehicle_loads=_loads(4, 1)),
        "transitions[1]: vehicle_loads is",
        id="vehicle-loads",
    ),
    pytest.param(
        transition(0, vehicle_loads={"weight": 2}),
        "transitions[0]: vehicle_loads is",
        id="vehicle-loads-type",
    ),
    pytest.param(
        visit(1, load_demands={"weight": 3, "pallets": 1}),
        "visits[1]: load_demands is",
        id="visit-load",
    ),
    # Breaks.
    pytest.param(
        route(0, breaks=()), "routes[0]: 0 breaks for 1 break_requests", id="break-missing"
    ),
    pytest.param(
        route(0, breaks=(Break(T + 1000, 600),)),
        "breaks[0]: [1700001000.0, 1700001600.0] overlaps visits[0]",
        id="break-overlaps-visit",
    ),
    pytest.param(
        route(0, breaks=(Break(T + 1700, 600),)),
        "breaks[0]: [1700001700.0, 1700002300.0] is not inside any transition",
        id="break-outside-transition",
    ),
    pytest.param(
        vehicle(0, break_requests=(BreakRequest(T + 1100, T + 2000, 600),)),
        "breaks[0]: start_time 1700001020.0 outside [earliest_start_time",
        id="break-too-early",
    ),
    pytest.param(
        vehicle(0, break_requests=(BreakRequest(T + 1000, T + 2000, 700),)),
        "min_duration",
        id="break-too-short",
    ),
    pytest.param(
        transition(1, break_duration_s=0, wait_duration_s=600),
        "transitions[1]: break_duration_s is 0",
        id="break-duration",
    ),
    # Limits.
    pytest.param(
        vehicle(0, route_duration_limit_s=4800.0),
        "exceeds route_duration_limit 4800.0",
        id="duration-limit",
    ),
    pytest.param(
        vehicle(0, route_distance_limit_m=17000.0),
        "exceeds route_distance_limit 17000.0",
        id="distance-limit",
    ),
    # Costs.
    pytest.param(
        route_costs(model__vehicles__cost_per_kilometer=19.0),
        "costs['model.vehicles.cost_per_kilometer'] is 19.0",
        id="wrong-cost",
    ),
    pytest.param(
        route_costs(
            model__shipments__deliveries__time_windows__cost_per_hour_after_soft_end_time=0.0
        ),
        "route_costs: costs['model.shipments.deliveries.time_windows."
        "cost_per_hour_after_soft_end_time'] is 0",
        id="missing-soft-cost",
    ),
    pytest.param(
        route_costs(model__vehicles__foo=1.0),
        "unexpected keys ['model.vehicles.foo']",
        id="unknown-cost-key",
    ),
    pytest.param(
        vehicle(0, cost_per_hour=40.0),
        "costs['model.vehicles.cost_per_hour'] is 40.5, expected 54.0",
        id="cost-per-hour",
    ),
    pytest.param(
        delivery_windows(
            TimeWindow(T, T + 7200, soft_end_time=T + 2600, cost_per_hour_after_soft_end_time=36.0)
        ),
        "cost_per_hour_after_soft_end_time'] is 3.8, expected 2.8",
        id="delivery-soft-cost",
    ),
    pytest.param(
        vehicle(
            0,
            start_time_windows=(
                TimeWindow(
                    T, T + 3600, soft_start_time=T + 120, cost_per_hour_before_soft_start_time=36.0
                ),
            ),
        ),
        "start_time_windows.cost_per_hour_before_soft_start_time'] is 0.6, expected 1.2",
        id="vehicle-soft-cost",
    ),
    pytest.param(
        route(0, route_total_cost=ROUTE_TOTAL + 1),
        "routes[0]: route_total_cost is 133.9",
        id="route-total",
    ),
    pytest.param(metrics(total_cost=ROUTE_TOTAL), "metrics: total_cost is 132.9", id="total-cost"),
    pytest.param(
        metrics(costs=ROUTE_COSTS),
        "metrics.costs: costs['model.shipments.penalty_cost'] is 0",
        id="missing-penalty",
    ),
    pytest.param(
        shipment(2, penalty_cost=None),
        "skipped_mandatory_shipment_count is 0, expected 1",
        id="mandatory-skipped-count",
    ),
    pytest.param(
        shipment(2, penalty_cost=None),
        "costs['model.shipments.penalty_cost'] is 50.0, expected 0",
        id="mandatory-skipped-no-penalty",
    ),
    # Metrics.
    pytest.param(
        route_metrics(travel_duration_s=3000),
        "routes[0].metrics: travel_duration_s is 3000",
        id="route-travel",
    ),
    pytest.param(
        route_metrics(wait_duration_s=0), "routes[0].metrics: wait_duration_s is 0", id="route-wait"
    ),
    pytest.param(
        route_metrics(delay_duration_s=0),
        "routes[0].metrics: delay_duration_s is 0",
        id="route-delay",
    ),
    pytest.param(
        route_metrics(visit_duration_s=0),
        "routes[0].metrics: visit_duration_s is 0",
        id="route-visit",
    ),
    pytest.param(
        route_metrics(total_duration_s=4800),
        "routes[0].metrics: total_duration_s (vs end - start)",
        id="route-total-duration",
    ),
    pytest.param(
        route_metrics(travel_distance_m=0),
        "routes[0].metrics: travel_distance_m is 0",
        id="route-distance",
    ),
    pytest.param(
        route_metrics(performed_shipment_count=3),
        "performed_shipment_count is 3, expected 2",
        id="route-count",
    ),
    pytest.param(
        route_metrics(max_loads={"weight": 5}),
        "routes[0].metrics: max_loads is",
        id="route-max-loads",
    ),
    pytest.param(
        metrics(aggregated_route_metrics=AggregatedMetrics()),
        "metrics.aggregated_route_metrics: performed_shipment_count is 0",
        id="aggregated",
    ),
    pytest.param(
        metrics(used_vehicle_count=2), "used_vehicle_count is 2, expected 1", id="used-count"
    ),
    pytest.param(
        metrics(earliest_vehicle_start_time=None),
        "earliest_vehicle_start_time is None",
        id="earliest-start",
    ),
    pytest.param(
        metrics(latest_vehicle_end_time=T),
        "latest_vehicle_end_time is 1700000000.0",
        id="latest-end",
    ),
    pytest.param(
        solution_field(status=SolveStatus.NOTHING_TO_ROUTE), "NOTHING_TO_ROUTE", id="status"
    ),
]


def test_main_solution_is_valid() -> None:
    check_solution(main_model(), main_solution())


@pytest.mark.parametrize(("mutation", "expected"), MUTATIONS)
def test_mutation_is_caught(mutation: Mutation, expected: str) -> None:
    model, solution = mutation(main_model(), main_solution())
    with pytest.raises(AssertionError) as excinfo:
        check_solution(model, solution)
    assert expected in str(excinfo.value)


def test_all_problems_are_listed() -> None:
    model, solution = route_costs(model__vehicles__fixed_cost=11.0)(main_model(), main_solution())
    model, solution = vehicle(0, load_limits={"weight": 4})(model, solution)
    with pytest.raises(AssertionError, match=r"problem\(s\) in the solution") as excinfo:
        check_solution(model, solution)
    message = str(excinfo.value)
    assert "costs['model.vehicles.fixed_cost'] is 11.0" in message
    assert "exceeds max_load 4" in message
    assert "route_total_cost" not in message  # the total is compared with recomputed costs


def test_single_matrix_serves_every_vehicle() -> None:
    model = main_model()
    model = dataclasses.replace(
        model, duration_distance_matrices=(model.duration_distance_matrices[0],)
    )
    check_solution(model, main_solution())


# --------------------------------------------------------------------------------------------
# Geodesic travel, open route (no start, no end), nothing skipped.
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Brute force
# --------------------------------------------------------------------------------------------

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
                visits=(Visit(1, False, 0, 200), Visit(0, False, 0, 300)),
                transitions=(
                    Transition(0, 200, 2000, 0, 0, 200),
                    Transition(200, 100, 1000, 0, 0, 100),
                    Transition(300, 100, 1000, 0, 0, 100),
                ),
                metrics=route_metrics,
                route_costs=costs,
                route_total_cost=4.0,
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
