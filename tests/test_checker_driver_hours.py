"""The checker on the main instance, driver-hours rules (issue 15): a broken break frequency rule
or travel duration limit is caught, and the soft travel and quadratic duration costs are
recomputed. Route 0 of the main solution starts at T, breaks 600 s at T+1020, ends at T+4860,
with 3600 s of travel."""

from __future__ import annotations

import dataclasses

import pytest

from engine.model import DurationLimit, FrequencyConstraint, ShipmentModel
from engine.solution import Solution
from tests.checker import (
    QUADRATIC_DURATION_KEY,
    QUADRATIC_TRAVEL_KEY,
    SOFT_TRAVEL_KEY,
    check_solution,
)
from tests.checker_cases import (
    Case,
    Mutation,
    assert_caught,
    main_model,
    main_solution,
    route,
    then,
    vehicle,
)


def rule(min_break_s: float, max_inter_s: float) -> Mutation:
    return vehicle(0, break_frequency_constraints=(FrequencyConstraint(min_break_s, max_inter_s),))


def with_cost(key: str, value: float) -> Mutation:
    """Route 0 and the solution report ``value`` more under ``key``."""

    def mutate(m: ShipmentModel, s: Solution) -> Case:
        r = s.routes[0]
        r = dataclasses.replace(
            r,
            route_costs={**r.route_costs, key: value},
            route_total_cost=r.route_total_cost + value,
        )
        metrics = dataclasses.replace(
            s.metrics,
            costs={**s.metrics.costs, key: value},
            total_cost=s.metrics.total_cost + value,
        )
        return m, dataclasses.replace(s, routes=(r, *s.routes[1:]), metrics=metrics)

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(m: ShipmentModel, s: Solution) -> Case:
        for mutation in mutations:
            m, s = mutation(m, s)
        return m, s

    return mutate


def passes(mutation: Mutation) -> None:
    check_solution(*mutation(main_model(), main_solution()))


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        # 1020 s before the break, 3240 s after it.
        pytest.param(rule(600, 3000), "frequency_constraints[0]: 3240.0 s", id="gap-after"),
        pytest.param(rule(600, 1000), "frequency_constraints[0]: 1020.0 s", id="gap-before"),
        # A 600-s break does not count for a 601-s rule: the whole route is one gap.
        pytest.param(rule(601, 4000), "frequency_constraints[0]: 4860.0 s", id="too-short"),
        pytest.param(
            vehicle(0, travel_duration_limit=DurationLimit(max_duration_s=3599.0)),
            "travel duration 3600.0 s exceeds travel_duration_limit 3599.0 s",
            id="travel-limit",
        ),
        pytest.param(
            vehicle(
                0,
                travel_duration_limit=DurationLimit(
                    soft_max_duration_s=1800.0, cost_per_hour_after_soft_max=10.0
                ),
            ),
            SOFT_TRAVEL_KEY,
            id="soft-travel-cost-missing",
        ),
    ],
)
def test_broken_driver_hours_are_caught(mutation: Mutation, expected: str) -> None:
    assert_caught(mutation, expected)


def test_rules_the_route_keeps_pass() -> None:
    passes(rule(600, 3240))
    passes(rule(0, 3240))
    # The limit is reached exactly: the route's travel fullness is 1.
    limited = vehicle(0, travel_duration_limit=DurationLimit(max_duration_s=3600.0))
    full = dataclasses.replace(main_solution().routes[0].vehicle_fullness, travel_duration=1.0)
    passes(then(limited, route(0, vehicle_fullness=full)))
    with pytest.raises(AssertionError, match=r"travel_duration is None, expected 1\.0"):
        passes(limited)


def test_driver_hours_costs_are_recomputed() -> None:
    limit = DurationLimit(
        soft_max_duration_s=1800.0,
        cost_per_hour_after_soft_max=10.0,  # 0.5 h over: 5
        quadratic_soft_max_duration_s=0.0,
        cost_per_square_hour_after_quadratic_soft_max=1000.0,  # 1 h over, squared: 1000
    )
    quadratic_route = vehicle(
        0,
        travel_duration_limit=limit,
        route_duration_quadratic_soft_max_s=1260.0,  # 4860 s: 1 h over, squared: 2000
        route_duration_cost_per_square_hour_after_quadratic_soft_max=2000.0,
    )
    costs = [
        with_cost(SOFT_TRAVEL_KEY, 5.0),
        with_cost(QUADRATIC_TRAVEL_KEY, 1000.0),
        with_cost(QUADRATIC_DURATION_KEY, 2000.0),
    ]
    passes(both(quadratic_route, *costs))
    wrong = [*costs[:2], with_cost(QUADRATIC_DURATION_KEY, 1999.0)]
    assert_caught(both(quadratic_route, *wrong), QUADRATIC_DURATION_KEY)
