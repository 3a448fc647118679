"""The checker on the main instance: its valid solution passes, and each broken route,
shipment, time window, transition, load, break or limit is caught."""

from __future__ import annotations

import dataclasses

import pytest

from engine.model import (
    BreakRequest,
    TimeWindow,
)
from engine.solution import (
    Break,
    SkippedShipment,
)
from tests.checker import check_solution
from tests.checker_cases import (
    S2_SKIPPED,
    Mutation,
    T,
    assert_caught,
    delivery_windows,
    loads,
    main_model,
    main_solution,
    model_field,
    pickup_windows,
    route,
    shipment,
    skipped,
    solution_field,
    split_pair,
    swap_matrix_tags,
    swap_routes,
    swap_visits,
    transition,
    vehicle,
    visit,
)

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
        "transitions[0]: total_duration_s 900 != travel + wait + delay + break",
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
        transition(1, vehicle_loads=loads(4, 1)),
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
]


def test_main_solution_is_valid() -> None:
    check_solution(main_model(), main_solution())


@pytest.mark.parametrize(("mutation", "expected"), MUTATIONS)
def test_mutation_is_caught(mutation: Mutation, expected: str) -> None:
    assert_caught(mutation, expected)


def test_single_matrix_serves_every_vehicle() -> None:
    model = main_model()
    model = dataclasses.replace(
        model, duration_distance_matrices=(model.duration_distance_matrices[0],)
    )
    check_solution(model, main_solution())
