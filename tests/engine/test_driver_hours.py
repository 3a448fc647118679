"""Issue 15, driver-hours rules: ``break_rule.frequency_constraints``, ``travel_duration_limit``
and the quadratic soft part of ``route_duration_limit``, on small instances whose optimum is
known by hand or by brute force (tests/bruteforce.py), solved by the engine and verified by
the independent checker (tests/checker.py); backend routing, skip reasons and validation.

Points on a line; in the hour-scale models 1 unit = 1 h of driving.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine import InvalidModelError, Shipment, ShipmentModel, SkipReasonCode, Vehicle
from engine.errors import NoSolutionError
from engine.model import (
    BreakRequest,
    DurationLimit,
    FrequencyConstraint,
    LatLng,
    TimeWindow,
    VisitRequest,
)
from engine.options import SearchMode
from engine.validation import validate_model
from tests.bruteforce import brute_force_optimum
from tests.builders import at, depot_vehicle, line_model, route_order, solve_checked
from tests.checker import (
    QUADRATIC_DURATION_KEY,
    QUADRATIC_TRAVEL_KEY,
    SOFT_TRAVEL_KEY,
    driver_hours_problems,
    route_cost_terms,
)
from tests.engine.test_optimality import random_tiny_model
from tests.seeds import seeds

H = 3600.0
MIN = 60.0
HOUR_POINTS = {
    "W": -1.0,
    "depot": 0.0,
    "A": 1.0,
    "B": 2.0,
    "C": 3.0,
    "D": 4.0,
    "E": 5.0,
    "far": 10.0,
}
EU_RULE = FrequencyConstraint(min_break_duration_s=45 * MIN, max_inter_break_duration_s=4.5 * H)
"""At least 45 min of break after at most 4 h 30 (Google counts all route time)."""


def hours_model(shipments: list[Shipment], vehicles: list[Vehicle], **kw: object) -> ShipmentModel:
    return line_model(HOUR_POINTS, shipments, vehicles, scale=H, **kw)  # type: ignore[arg-type]


def gaps_between_breaks(solution_route: object, min_break_s: float) -> list[float]:
    """Time between the route start, each break of at least ``min_break_s`` and the end."""
    route = solution_route
    start, end = route.vehicle_start_time, route.vehicle_end_time  # type: ignore[attr-defined]
    marks = [start]
    for b in route.breaks:  # type: ignore[attr-defined]
        if b.duration_s >= min_break_s:
            marks += [b.start_time, b.start_time + b.duration_s]
    marks.append(end)
    return [marks[k + 1] - marks[k] for k in range(0, len(marks), 2)]


# -- break frequency ---------------------------------------------------------------------------


def _eu_day(break_count: int, **vehicle: object) -> ShipmentModel:
    """Five drops out and back along the line (10 h of driving, 15 min per drop), breaks of
    45 min anywhere in a 16 h day, the EU rule."""
    shipments = [Shipment(deliveries=(at(t, duration_s=15 * MIN),)) for t in "ABCDE"]
    brk = BreakRequest(earliest_start_time=0.0, latest_start_time=16 * H, min_duration_s=45 * MIN)
    fields: dict[str, object] = {
        "cost_per_kilometer": 1.0,
        "break_requests": (brk,) * break_count,
        "break_frequency_constraints": (EU_RULE,),
    }
    fields.update(vehicle)
    return hours_model(shipments, [depot_vehicle(**fields)])


def test_eu_rule_spreads_the_breaks_over_a_long_day() -> None:
    # 11 h 15 of driving and drops need two 45-min breaks that cut it into pieces of at most
    # 4 h 30: the route lasts 12 h 45 and each piece is checked (here and by the checker).
    solution = solve_checked(_eu_day(2), backend="ortools")
    assert not solution.skipped_shipments
    route = solution.routes[0]
    assert route.vehicle_end_time - route.vehicle_start_time == pytest.approx(12.75 * H)
    gaps = gaps_between_breaks(route, 45 * MIN)
    assert len(gaps) == 3
    assert max(gaps) <= 4.5 * H
    breaks = [(b.start_time, b.duration_s) for b in route.breaks]
    start, end = route.vehicle_start_time, route.vehicle_end_time
    assert driver_hours_problems(_eu_day(2).vehicles[0], start, end, 0.0, breaks) == []


def test_eu_rule_with_a_long_enough_route_and_one_break_skips_the_far_drop() -> None:
    # One break: at most 4 h 30 + 45 min + 4 h 30 of route. Out to E and back takes 11 h 15
    # of driving and drops: E cannot be served; D and the nearer drops can (8 h of driving,
    # 1 h of drops). Optional drops with a large penalty: the optimum serves A-D.
    m = _eu_day(1)
    m = dataclasses.replace(
        m, shipments=tuple(dataclasses.replace(s, penalty_cost=1e6) for s in m.shipments)
    )
    solution = solve_checked(m, backend="ortools", time_limit_s=5.0)
    (skipped,) = solution.skipped_shipments
    assert skipped.index == 4
    assert max(gaps_between_breaks(solution.routes[0], 45 * MIN)) <= 4.5 * H


def test_a_break_too_short_to_count_bounds_the_whole_route() -> None:
    # The only break lasts 30 min, less than the rule's 45: no break counts (routeopt takes
    # each break for its min_duration; Google may lengthen it), so the route
    # lasts at most 4 h 30. A (2 h 15 out and back) fits; C (6 h 15) cannot: it is left out
    # by the search (no pre-check reason proves it), A is served.
    brk = BreakRequest(earliest_start_time=0.0, latest_start_time=16 * H, min_duration_s=30 * MIN)
    vehicle = depot_vehicle(
        cost_per_kilometer=1.0, break_requests=(brk,), break_frequency_constraints=(EU_RULE,)
    )
    shipments = [Shipment(deliveries=(at(t, duration_s=15 * MIN),)) for t in "AC"]
    solution = solve_checked(hours_model(shipments, [vehicle]), backend="ortools")
    (skipped,) = solution.skipped_shipments
    assert skipped.index == 1
    assert [r.code for r in skipped.reasons] == [SkipReasonCode.NOT_WORTH_ITS_PENALTY_OR_NO_ROOM]
    assert route_order(solution, 0) == [(0, False)]
    route = solution.routes[0]
    assert route.vehicle_end_time - route.vehicle_start_time <= 4.5 * H


def test_without_breaks_the_rule_bounds_the_whole_route() -> None:
    # No break request at all: same as a break too short to count.
    vehicle = depot_vehicle(cost_per_kilometer=1.0, break_frequency_constraints=(EU_RULE,))
    shipments = [Shipment(deliveries=(at(t, duration_s=15 * MIN),)) for t in "AC"]
    solution = solve_checked(hours_model(shipments, [vehicle]), backend="ortools")
    assert [s.index for s in solution.skipped_shipments] == [1]
    route = solution.routes[0]
    assert route.vehicle_end_time - route.vehicle_start_time <= 4.5 * H


def test_without_the_rule_the_same_route_needs_no_break_pattern() -> None:
    # Control: the same day without frequency constraints is served in full, and with one
    # break only (so the rule above is what made E infeasible).
    m = _eu_day(1, break_frequency_constraints=())
    solution = solve_checked(m, backend="ortools")
    assert not solution.skipped_shipments


def test_checker_finds_a_broken_frequency_rule() -> None:
    vehicle = Vehicle(break_frequency_constraints=(EU_RULE,))
    ok = [(4 * H, 45 * MIN), (9 * H, 45 * MIN)]
    assert driver_hours_problems(vehicle, 0.0, 13 * H, 0.0, ok) == []
    # The first break comes after 4 h 31 of route.
    late = [(4.5 * H + 60.0, 45 * MIN), (9 * H, 45 * MIN)]
    assert len(driver_hours_problems(vehicle, 0.0, 13 * H, 0.0, late)) == 1
    # A 44-min break does not count: 8 h 15 without a counted break.
    short = [(4 * H, 44 * MIN), (8.25 * H, 45 * MIN)]
    assert len(driver_hours_problems(vehicle, 0.0, 13 * H, 0.0, short)) == 1
    # The end counts too: 4 h 31 after the last break (which ends at 9 h 45).
    assert driver_hours_problems(vehicle, 0.0, 14.25 * H, 0.0, ok) == []
    assert len(driver_hours_problems(vehicle, 0.0, 14.25 * H + 60.0, 0.0, ok)) == 1


# -- travel duration limit ---------------------------------------------------------------------


def test_travel_duration_limit_counts_travel_only() -> None:
    # 2 h of travel under a 3 h limit, though the 5 h drop makes the route last 7 h: served.
    # C is 6 h of travel away and back: skipped with the pre-check's travel-limit reason.
    vehicle = depot_vehicle(
        cost_per_kilometer=1.0, travel_duration_limit=DurationLimit(max_duration_s=3 * H)
    )
    shipments = [
        Shipment(deliveries=(at("A", duration_s=5 * H),)),
        Shipment(deliveries=(at("C"),)),
    ]
    solution = solve_checked(hours_model(shipments, [vehicle]), backend="ortools")
    (skipped,) = solution.skipped_shipments
    assert skipped.index == 1
    assert [r.code for r in skipped.reasons] == [
        SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TRAVEL_DURATION_LIMIT
    ]
    assert solution.routes[0].metrics.travel_duration_s == pytest.approx(2 * H)
    assert solution.routes[0].metrics.total_duration_s == pytest.approx(7 * H)


def test_travel_duration_limit_splits_shipments_between_vehicles() -> None:
    # A and W (on either side of the depot) together take 4 h of travel, over the 3 h limit;
    # alone, 2 h: each vehicle takes one.
    limit = DurationLimit(max_duration_s=3 * H)
    vehicles = [
        depot_vehicle(cost_per_kilometer=1.0, travel_duration_limit=limit),
        depot_vehicle(cost_per_kilometer=1.0, fixed_cost=1.0, travel_duration_limit=limit),
    ]
    shipments = [Shipment(deliveries=(at("A"),)), Shipment(deliveries=(at("W"),))]
    solution = solve_checked(hours_model(shipments, vehicles), backend="ortools")
    assert not solution.skipped_shipments
    assert sorted(len(r.visits) for r in solution.routes) == [1, 1]


@pytest.mark.parametrize(("penalty", "served"), [(50.0, 1), (150.0, 2)])
def test_soft_travel_duration_limit(penalty: float, served: int) -> None:
    # Soft maximum 2 h at 40 per hour beyond: B as well makes 4 h of travel, 80 over; it is
    # worth serving only when its penalty is above 80.
    limit = DurationLimit(soft_max_duration_s=2 * H, cost_per_hour_after_soft_max=40.0)
    vehicle = depot_vehicle(travel_duration_limit=limit)
    shipments = [
        Shipment(deliveries=(at("A"),), penalty_cost=1000.0),
        Shipment(deliveries=(at("B"),), penalty_cost=penalty),
    ]
    solution = solve_checked(hours_model(shipments, [vehicle]), backend="ortools")
    assert len(solution.routes[0].visits) == served
    expected = {1: penalty, 2: 80.0}[served]
    assert solution.metrics.total_cost == pytest.approx(expected)
    if served == 2:
        assert solution.routes[0].route_costs[SOFT_TRAVEL_KEY] == pytest.approx(80.0)


def random_hours_model(seed: int) -> ShipmentModel:
    """:func:`tests.engine.test_optimality.random_tiny_model` with every shipment optional
    and, on each vehicle, a travel duration limit: hard, soft and quadratic soft maxima."""
    rng = np.random.default_rng(2000 + seed)
    base = random_tiny_model(seed)
    shipments = tuple(
        dataclasses.replace(s, penalty_cost=s.penalty_cost or float(rng.integers(100, 400)))
        for s in base.shipments
    )
    vehicles = tuple(
        dataclasses.replace(
            vehicle,
            travel_duration_limit=DurationLimit(
                max_duration_s=float(rng.integers(120, 260)),
                soft_max_duration_s=float(rng.integers(50, 110)),
                cost_per_hour_after_soft_max=float(rng.integers(0, 3)) * 3600.0,
                quadratic_soft_max_duration_s=float(rng.integers(50, 110)),
                cost_per_square_hour_after_quadratic_soft_max=0.002 * 3600.0**2,
            ),
        )
        for vehicle in base.vehicles
    )
    return dataclasses.replace(base, shipments=shipments, vehicles=vehicles)


@pytest.mark.parametrize("seed", seeds(8, 4))
def test_travel_duration_limits_match_brute_force(seed: int) -> None:
    # The soft costs change the optimum on every seed, the hard limit on seeds 4, 6 and 7.
    model_ = random_hours_model(seed)
    optimum = brute_force_optimum(model_)
    solution = solve_checked(
        model_, time_limit_s=1.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME
    )
    assert solution.backend == "ortools"
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)


# -- quadratic soft route duration -------------------------------------------------------------


@pytest.mark.parametrize(("penalty", "expected"), [(5000.0, 5000.0), (20000.0, 16000.0)])
def test_quadratic_soft_route_duration(penalty: float, expected: float) -> None:
    # Beyond 2 h, 1000 per square hour. A alone: 2 h, free. With C: 6 h, (6 - 2)^2 * 1000 =
    # 16000, worth it only against a larger penalty.
    vehicle = depot_vehicle(
        route_duration_quadratic_soft_max_s=2 * H,
        route_duration_cost_per_square_hour_after_quadratic_soft_max=1000.0,
    )
    shipments = [
        Shipment(deliveries=(at("A"),), penalty_cost=1e6),
        Shipment(deliveries=(at("C"),), penalty_cost=penalty),
    ]
    solution = solve_checked(hours_model(shipments, [vehicle]), backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(expected)
    if expected == 16000.0:
        assert solution.routes[0].route_costs[QUADRATIC_DURATION_KEY] == pytest.approx(16000.0)


def test_quadratic_soft_travel_duration_cost_key() -> None:
    vehicle = Vehicle(
        travel_duration_limit=DurationLimit(
            quadratic_soft_max_duration_s=H, cost_per_square_hour_after_quadratic_soft_max=700.0
        )
    )
    m = ShipmentModel(vehicles=(vehicle,))
    costs = route_cost_terms(
        m, 0, start_time=0.0, end_time=5 * H, travel_s=3 * H, distance_m=0.0, visit_starts=[]
    )
    assert costs[QUADRATIC_TRAVEL_KEY] == pytest.approx(2800.0)


def test_a_quadratic_cost_the_solver_cannot_weigh_is_rejected_by_name() -> None:
    # Google accepts any non-negative rate; below 648 per square hour the solver's whole units
    # per square second would misweigh it by more than 1%: refused, naming the field.
    vehicle = depot_vehicle(
        route_duration_quadratic_soft_max_s=2 * H,
        route_duration_cost_per_square_hour_after_quadratic_soft_max=10.0,
    )
    m = hours_model([Shipment(deliveries=(at("A"),))], [vehicle])
    with pytest.raises(InvalidModelError) as err:
        solve_checked(m, backend="ortools")
    (violation,) = err.value.violations
    assert violation.field == (
        "vehicles[0].route_duration_limit.cost_per_square_hour_after_quadratic_soft_max"
    )
    assert "scale all the model's costs up" in violation.description
    ok = dataclasses.replace(
        vehicle, route_duration_cost_per_square_hour_after_quadratic_soft_max=648.0
    )
    assert validate_model(dataclasses.replace(m, vehicles=(ok,))) == []


# -- routing and validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "path", "what"),
    [
        (
            {"break_frequency_constraints": (EU_RULE,)},
            "vehicles[0].break_rule.frequency_constraints",
            "break frequency",
        ),
        (
            {"travel_duration_limit": DurationLimit(max_duration_s=10 * H)},
            "vehicles[0].travel_duration_limit",
            "travel duration limit",
        ),
        (
            {
                "route_duration_quadratic_soft_max_s": H,
                "route_duration_cost_per_square_hour_after_quadratic_soft_max": 1000.0,
            },
            "vehicles[0].route_duration_limit.quadratic_soft_max_duration",
            "soft route duration",
        ),
    ],
)
def test_driver_hours_route_to_ortools_and_pyvrp_rejects_them(
    fields: dict[str, object], path: str, what: str
) -> None:
    m = hours_model([Shipment(deliveries=(at("A"),))], [depot_vehicle(**fields)])
    solution = solve_checked(m, backend="auto")
    assert solution.backend == "ortools"
    assert what in solution.backend_reason
    with pytest.raises(InvalidModelError) as err:
        solve_checked(m, backend="pyvrp")
    assert [v.field for v in err.value.violations] == [path]


def test_validation_names_each_bad_field() -> None:
    vehicles = [
        depot_vehicle(
            break_frequency_constraints=(
                FrequencyConstraint(min_break_duration_s=-1.0, max_inter_break_duration_s=0.0),
                FrequencyConstraint(
                    min_break_duration_s=float("nan"), max_inter_break_duration_s=H
                ),
            ),
            route_duration_limit_s=10 * H,
            route_duration_quadratic_soft_max_s=10 * H,
        ),
        depot_vehicle(
            travel_duration_limit=DurationLimit(
                max_duration_s=-1.0,
                soft_max_duration_s=H,
                quadratic_soft_max_duration_s=-5.0,
                cost_per_square_hour_after_quadratic_soft_max=-1.0,
            ),
            route_duration_limit_s=3 * 86400.0,
            route_duration_quadratic_soft_max_s=H,
            route_duration_cost_per_square_hour_after_quadratic_soft_max=1000.0,
        ),
        depot_vehicle(
            travel_duration_limit=DurationLimit(
                max_duration_s=H,
                soft_max_duration_s=2 * H,
                cost_per_hour_after_soft_max=float("inf"),
                cost_per_square_hour_after_quadratic_soft_max=1000.0,
            ),
        ),
    ]
    m = hours_model([Shipment(deliveries=(at("A"),))], vehicles)
    fields = {v.field for v in validate_model(m)}
    v0, v1, v2 = "vehicles[0]", "vehicles[1]", "vehicles[2]"
    assert fields == {
        f"{v0}.break_rule.frequency_constraints[0].min_break_duration",
        f"{v0}.break_rule.frequency_constraints[0].max_inter_break_duration",
        f"{v0}.break_rule.frequency_constraints[1].min_break_duration",
        # with the quadratic soft max equal to the hard max, and without its cost
        f"{v0}.route_duration_limit.quadratic_soft_max_duration",
        f"{v0}.route_duration_limit.cost_per_square_hour_after_quadratic_soft_max",
        f"{v1}.travel_duration_limit.max_duration",
        f"{v1}.travel_duration_limit.cost_per_hour_after_soft_max",
        f"{v1}.travel_duration_limit.quadratic_soft_max_duration",
        f"{v1}.travel_duration_limit.cost_per_square_hour_after_quadratic_soft_max",
        # more than a day below the hard max (Google's rule)
        f"{v1}.route_duration_limit.quadratic_soft_max_duration",
        f"{v2}.travel_duration_limit.soft_max_duration",
        f"{v2}.travel_duration_limit.cost_per_hour_after_soft_max",
        f"{v2}.travel_duration_limit.quadratic_soft_max_duration",
    }


# -- random instances through the checker ------------------------------------------------------


def random_break_model(seed: int) -> ShipmentModel:
    """:func:`tests.engine.test_optimality.random_tiny_model` (windows, loads, a pair, travel
    of about 100 s per leg) with every shipment optional, two short breaks per vehicle and a
    break frequency rule at the scale of a leg or two, which the breaks are long enough for.
    (A rule no break counts for is a span bound: OR-Tools then behaves as with a
    route_duration_limit, which with breaks on these models finds no first solution within
    seconds on some seeds, rule or not.)"""
    rng = np.random.default_rng(3000 + seed)
    base = random_tiny_model(seed)
    shipments = tuple(
        dataclasses.replace(s, penalty_cost=s.penalty_cost or float(rng.integers(100, 400)))
        for s in base.shipments
    )
    vehicles = []
    for vehicle in base.vehicles:
        rule = FrequencyConstraint(
            min_break_duration_s=float(rng.integers(5, 30)),
            max_inter_break_duration_s=float(rng.integers(120, 300)),
        )
        brk = BreakRequest(
            earliest_start_time=0.0,
            latest_start_time=float(rng.integers(200, 600)),
            min_duration_s=rule.min_break_duration_s + float(rng.integers(0, 10)),
        )
        vehicles.append(
            dataclasses.replace(
                vehicle,
                break_requests=(brk, brk),
                break_frequency_constraints=(rule,),
                cost_per_hour=float(rng.integers(0, 2)) * 360.0,
            )
        )
    return dataclasses.replace(base, shipments=shipments, vehicles=tuple(vehicles))


@pytest.mark.parametrize("seed", seeds(10, 5))
def test_random_break_frequency_solutions_pass_the_checker(seed: int) -> None:
    # The checker recomputes Google's rule from the routes (gaps between counted breaks and
    # the route's ends). Without the rule, the solutions of seeds 0, 1, 3, 5, 6 and 7 break it.
    solution = solve_checked(random_break_model(seed), backend="ortools", time_limit_s=1.0)
    assert any(route.visits for route in solution.routes)


def test_eu_rule_on_a_long_day_with_many_drops() -> None:
    # 14 drops scattered up to ~80 km around a depot (geodesic travel at 15 m/s), 10 min each,
    # a 13-h shift with three 45-min break requests and the EU rule: the checker verifies
    # every gap between the counted breaks and the shift's ends.
    rng = np.random.default_rng(7)
    depot = LatLng(50.0, 8.0)
    shipments = [
        Shipment(
            deliveries=(
                VisitRequest(
                    arrival_location=LatLng(
                        50.0 + float(rng.uniform(-0.7, 0.7)), 8.0 + float(rng.uniform(-1.0, 1.0))
                    ),
                    duration_s=10 * MIN,
                ),
            ),
            penalty_cost=1e5,
        )
        for _ in range(14)
    ]
    brk = BreakRequest(earliest_start_time=0.0, latest_start_time=13 * H, min_duration_s=45 * MIN)
    vehicle = Vehicle(
        start_location=depot,
        end_location=depot,
        end_time_windows=(TimeWindow(end_time=13 * H),),
        cost_per_kilometer=1.0,
        break_requests=(brk,) * 3,
        break_frequency_constraints=(EU_RULE,),
    )
    m = ShipmentModel(shipments=tuple(shipments), vehicles=(vehicle,), global_end_time=2 * 86400.0)
    solution = solve_checked(
        m, backend="ortools", time_limit_s=5.0, geodesic_meters_per_second=15.0
    )
    route = solution.routes[0]
    assert len(route.visits) >= 10
    duration = route.vehicle_end_time - route.vehicle_start_time
    assert duration > 9 * H  # long enough that the rule needs two counted breaks
    gaps = gaps_between_breaks(route, 45 * MIN)
    assert max(gaps) <= 4.5 * H


def test_breaks_that_cannot_meet_the_rule_even_unused_are_reported() -> None:
    # The vehicle starts at 0 and its only break cannot start before 5 h: even an empty route
    # has 5 h without a counted break. routeopt places breaks on unused vehicles too, so
    # the model has no solution; the error says where to look.
    brk = BreakRequest(earliest_start_time=5 * H, latest_start_time=6 * H, min_duration_s=45 * MIN)
    vehicle = depot_vehicle(
        break_requests=(brk,),
        break_frequency_constraints=(EU_RULE,),
        start_time_windows=(TimeWindow(0.0, 0.0),),
    )
    shipments = [Shipment(deliveries=(at("A"),), penalty_cost=1000.0)]
    with pytest.raises(NoSolutionError) as err:
        solve_checked(hours_model(shipments, [vehicle]), backend="ortools")
    assert err.value.reason == "infeasible"
    assert "break frequency constraints" in str(err.value)
