"""The checker on the main instance: wrong costs, totals and metrics are caught, and every
problem of a solution is listed."""

from __future__ import annotations

import pytest

from engine.model import (
    TimeWindow,
    TransitionAttributes,
)
from engine.solution import (
    AggregatedMetrics,
    SolveStatus,
)
from tests.checker import check_solution
from tests.checker_cases import (
    ROUTE_COSTS,
    ROUTE_TOTAL,
    Mutation,
    T,
    assert_caught,
    delivery_windows,
    main_model,
    main_solution,
    metrics,
    model_field,
    route,
    route_costs,
    route_metrics,
    shipment,
    solution_field,
    vehicle,
)

MUTATIONS = [
    # Transition attributes (issue 15): costs and delays recomputed from the tags.
    pytest.param(
        model_field(
            transition_attributes=(
                TransitionAttributes(src_tag="A", excluded_dst_tag="zzz", cost=5.0),
            )
        ),
        "route_costs: costs['model.transition_attributes.cost'] is 0.0, expected 5.0",
        id="transition-cost",
    ),
    pytest.param(
        model_field(
            transition_attributes=(
                TransitionAttributes(src_tag="A", excluded_dst_tag="zzz", delay_s=60.0),
            )
        ),
        "delay_duration_s is 0.0, expected 60.0",
        id="transition-delay",
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


@pytest.mark.parametrize(("mutation", "expected"), MUTATIONS)
def test_mutation_is_caught(mutation: Mutation, expected: str) -> None:
    assert_caught(mutation, expected)


def test_all_problems_are_listed() -> None:
    model, solution = route_costs(model__vehicles__fixed_cost=11.0)(main_model(), main_solution())
    model, solution = vehicle(0, load_limits={"weight": 4})(model, solution)
    with pytest.raises(AssertionError, match=r"problem\(s\) in the solution") as excinfo:
        check_solution(model, solution)
    message = str(excinfo.value)
    assert "costs['model.vehicles.fixed_cost'] is 11.0" in message
    assert "exceeds max_load 4" in message
    assert "route_total_cost" not in message  # the total is compared with recomputed costs
