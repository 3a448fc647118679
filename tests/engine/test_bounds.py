"""Numeric bounds (:mod:`engine.bounds`): numbers the solvers' int64 arithmetic cannot hold are
invalid, naming the field; numbers just within the bounds solve on every backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from engine import SolveOptions, solve
from engine.bounds import bound_violations
from engine.errors import InvalidModelError
from engine.model import (
    Shipment,
    ShipmentModel,
    SoftLoadLimit,
    TimeWindow,
)
from engine.solution import SolveStatus
from engine.units import MAX_LOAD_TOTAL, MAX_TOTAL_COST
from engine.validation import validate_model
from tests.builders import at, depot_vehicle, line_model

HOUR = 3600.0


def model(**vehicle: object) -> ShipmentModel:
    shipments = [
        Shipment(deliveries=(at("a"),), load_demands={"kg": 1}),
        Shipment(deliveries=(at("b"),), load_demands={"kg": 2}),
    ]
    return line_model(
        {"depot": 0.0, "a": 10.0, "b": 20.0},
        shipments,
        [depot_vehicle(load_limits={"kg": 10}, **vehicle)],
        global_end_time=10 * HOUR,
    )


def with_shipment(m: ShipmentModel, k: int, **changes: object) -> ShipmentModel:
    shipments = list(m.shipments)
    shipments[k] = dataclasses.replace(shipments[k], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(m, shipments=tuple(shipments))


def window(**kwargs: object) -> TimeWindow:
    return TimeWindow(**kwargs)  # type: ignore[arg-type]


CRASHERS: dict[str, tuple[Callable[[], ShipmentModel], str]] = {
    # the cases: these reached the backends and came back INTERNAL
    "cost_per_hour 3.3e16": (lambda: model(cost_per_hour=3.3e16), "vehicles[0].cost_per_hour"),
    "fixed_cost 1.8e302": (lambda: model(fixed_cost=1.8e302), "vehicles[0].fixed_cost"),
    "loads over 2^63": (
        lambda: with_shipment(model(), 1, load_demands={"kg": 2**62 + 2**61}),
        "shipments[1].load_demands[kg].amount",
    ),
    # found on the way, each an OverflowError or TypeError in a backend before
    "cost_per_traveled_hour": (
        lambda: model(cost_per_traveled_hour=1e300),
        "vehicles[0].cost_per_traveled_hour",
    ),
    "a product that overflows to inf": (
        lambda: model(cost_per_traveled_hour=1e308),
        "vehicles[0].cost_per_traveled_hour",
    ),
    "cost_per_kilometer": (
        lambda: model(cost_per_kilometer=1e300),
        "vehicles[0].cost_per_kilometer",
    ),
    "route distance limit 2^63": (
        lambda: model(route_distance_limit_m=float(2**63)),
        "vehicles[0].route_distance_limit.max_meters",
    ),
    "global duration cost": (
        lambda: dataclasses.replace(model(), global_duration_cost_per_hour=1e300),
        "global_duration_cost_per_hour",
    ),
    "visit cost": (
        lambda: with_shipment(model(), 0, deliveries=(at("a", cost=1e300),)),
        "shipments[0].deliveries[0].cost",
    ),
    "soft end cost": (
        lambda: with_shipment(
            model(),
            0,
            deliveries=(
                at(
                    "a",
                    time_windows=(
                        window(soft_end_time=60.0, cost_per_hour_after_soft_end_time=1e300),
                    ),
                ),
            ),
        ),
        "shipments[0].deliveries[0].time_windows[0].cost_per_hour_after_soft_end_time",
    ),
    "route duration soft cost": (
        lambda: model(
            route_duration_soft_max_s=60.0, route_duration_cost_per_hour_after_soft_max=1e300
        ),
        "vehicles[0].route_duration_limit.cost_per_hour_after_soft_max",
    ),
    "soft load cost": (
        lambda: model(soft_load_limits={"kg": SoftLoadLimit(1, 1e300)}),
        "vehicles[0].load_limits[kg].cost_per_unit_above_soft_max",
    ),
}


@pytest.mark.parametrize("case", list(CRASHERS))
def test_numbers_beyond_the_solver_are_invalid_naming_the_field(case: str) -> None:
    build, field = CRASHERS[case]
    found = validate_model(build())
    assert [v.field for v in found] == [field], found
    with pytest.raises(InvalidModelError):
        solve(build(), SolveOptions(time_limit_s=1.0))


def test_a_realistic_model_has_no_bound_violation() -> None:
    m = model(cost_per_hour=40.0, cost_per_kilometer=1.5, fixed_cost=200.0)
    assert bound_violations(m) == []


def test_the_budget_is_the_worst_case_of_the_whole_objective() -> None:
    """Each term alone is under the bound; together they are not."""
    half = MAX_TOTAL_COST * 0.6
    m = with_shipment(model(fixed_cost=half), 0, penalty_cost=0.3 * MAX_TOTAL_COST)
    assert bound_violations(model(fixed_cost=half)) == []
    assert bound_violations(m) == []
    m = with_shipment(model(fixed_cost=half), 1, deliveries=(at("b", cost=half),))
    assert [v.field for v in bound_violations(m)] == ["vehicles[0].fixed_cost"]


def test_loads_within_the_bound_are_valid() -> None:
    m = with_shipment(model(), 1, load_demands={"kg": MAX_LOAD_TOTAL - 1})
    assert bound_violations(m) == []


@pytest.mark.parametrize("backend", ["ortools", "pyvrp"])
def test_numbers_just_within_the_bounds_solve(backend: str) -> None:
    hours = 10.0  # the model's horizon
    legs = 2 + 1  # two visits, one vehicle
    rate = 0.2 * MAX_TOTAL_COST / hours
    m = model(
        cost_per_hour=rate,
        fixed_cost=0.2 * MAX_TOTAL_COST,
        cost_per_traveled_hour=0.2 * MAX_TOTAL_COST / (legs * (hours + 1 / HOUR)),
    )
    m = with_shipment(m, 0, penalty_cost=0.2 * MAX_TOTAL_COST, load_demands={"kg": 2**52})
    m = dataclasses.replace(
        m, vehicles=(dataclasses.replace(m.vehicles[0], load_limits={"kg": 2**53}),)
    )
    assert validate_model(m) == []
    solution = solve(m, SolveOptions(time_limit_s=2.0, backend=backend, solver_processes=1))
    assert solution.status is SolveStatus.SOLVED
    assert solution.metrics.total_cost >= 0.2 * MAX_TOTAL_COST  # the fixed cost, at least
