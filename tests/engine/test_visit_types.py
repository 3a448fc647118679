"""Issue 15, visit types: ``VisitRequest.visit_types`` with
``Vehicle.extra_visit_duration_for_visit_type`` (Google's: a vehicle spends the extra duration of
each of a visit's types on top of its duration), on small instances whose optimum is known by
hand or by brute force (tests/bruteforce.py), solved by the engine and verified by the
independent checker (tests/checker.py); backend routing, skip reasons and validation.

Points on a line; 1 unit = 1 h of driving.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine import InvalidModelError, Shipment, ShipmentModel, SkipReasonCode, Vehicle
from engine.model import BreakRequest, VisitRequest
from engine.options import SearchMode
from engine.validation import validate_model
from tests.bruteforce import brute_force_optimum
from tests.builders import at, depot_vehicle, line_model, solve_checked
from tests.checker import check_solution, visit_duration
from tests.engine.test_optimality import random_tiny_model
from tests.seeds import seeds

H = 3600.0
POINTS = {"depot": 0.0, "A": 1.0, "B": 2.0}
STAIRS = {"stairs": 0.25 * H, "fragile": 0.5 * H, "unused": 5 * H}


def model(shipments: list[Shipment], vehicles: list[Vehicle]) -> ShipmentModel:
    return line_model(POINTS, shipments, vehicles, scale=H)


def drop(*types: str, **kw: object) -> Shipment:
    return Shipment(deliveries=(at("A", duration_s=0.5 * H, visit_types=types),), **kw)  # type: ignore[arg-type]


def test_extra_durations_add_up_per_type_of_the_visit() -> None:
    # 1 h out, 30 min + 15 min (stairs) + 30 min (fragile) at A, 1 h back: 3 h 15 at 10 an
    # hour; the extra of a type the visit does not have ("unused") does not count.
    vehicle = depot_vehicle(cost_per_hour=10.0, extra_visit_duration_for_visit_type=STAIRS)
    solution = solve_checked(model([drop("stairs", "fragile")], [vehicle]), backend="ortools")
    route = solution.routes[0]
    assert route.vehicle_end_time - route.vehicle_start_time == pytest.approx(3.25 * H)
    assert route.metrics.visit_duration_s == pytest.approx(1.25 * H)
    assert route.transitions[1].start_time == pytest.approx(route.visits[0].start_time + 1.25 * H)
    assert solution.metrics.total_cost == pytest.approx(32.5)


def test_the_extra_time_moves_the_visit_to_another_vehicle() -> None:
    # v0 costs 10 an hour but needs 3 h more at stairs; v1 costs 20 an hour without extra.
    # A plain visit at A (2 h 30 of route): v0 25, v1 50. Stairs: v0 5 h 30 = 55, v1 50.
    slow = depot_vehicle(cost_per_hour=10.0, extra_visit_duration_for_visit_type={"stairs": 3 * H})
    fast = depot_vehicle(cost_per_hour=20.0)
    plain = solve_checked(model([drop()], [slow, fast]), backend="ortools")
    assert [len(r.visits) for r in plain.routes] == [1, 0]
    assert plain.metrics.total_cost == pytest.approx(25.0)
    stairs = solve_checked(model([drop("stairs")], [slow, fast]), backend="ortools")
    assert [len(r.visits) for r in stairs.routes] == [0, 1]
    assert stairs.metrics.total_cost == pytest.approx(50.0)


def test_a_visit_too_long_for_the_only_vehicle_is_skipped_with_googles_reason() -> None:
    # 2 h of driving + 30 min + 2 h of stairs exceed the 4 h route duration limit.
    vehicle = depot_vehicle(
        route_duration_limit_s=4 * H, extra_visit_duration_for_visit_type={"stairs": 2 * H}
    )
    solution = solve_checked(model([drop("stairs"), drop()], [vehicle]))
    (skipped,) = solution.skipped_shipments
    assert skipped.index == 0
    assert [r.code for r in skipped.reasons] == [
        SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DURATION_LIMIT
    ]


def test_breaks_see_the_longer_visit() -> None:
    # A 1-h break starting between 1 h 30 and 3 h 30; the visit at A lasts 2 h 15 with its
    # extras (30 min + 1 h 45), and a break never falls inside a visit (the checker verifies
    # it): the route lasts 2 h of driving + 2 h 15 + 1 h = 5 h 15 at best.
    brk = BreakRequest(earliest_start_time=1.5 * H, latest_start_time=3.5 * H, min_duration_s=H)
    vehicle = depot_vehicle(
        cost_per_hour=10.0,
        break_requests=(brk,),
        extra_visit_duration_for_visit_type={"stairs": 1.75 * H},
    )
    solution = solve_checked(model([drop("stairs")], [vehicle]), backend="ortools")
    route = solution.routes[0]
    (b,) = route.breaks
    visit_start = route.visits[0].start_time
    assert b.start_time >= visit_start + 2.25 * H - 1e-6 or b.start_time + H <= visit_start + 1e-6
    assert route.vehicle_end_time - route.vehicle_start_time == pytest.approx(5.25 * H)


def test_auto_routes_visit_types_to_ortools_and_pyvrp_refuses_them() -> None:
    vehicle = depot_vehicle(extra_visit_duration_for_visit_type={"stairs": 60.0})
    m = model([drop("stairs")], [vehicle])
    assert solve_checked(m).backend == "ortools"
    with pytest.raises(InvalidModelError) as err:
        solve_checked(m, backend="pyvrp")
    assert "vehicles[0].extra_visit_duration_for_visit_type[stairs]" in str(err.value)
    # Extras of types no visit has change nothing: PyVRP may serve the model.
    other = model([drop("lift")], [vehicle])
    assert solve_checked(other, backend="pyvrp").backend == "pyvrp"


def random_types_model(seed: int) -> ShipmentModel:
    """:func:`tests.engine.test_optimality.random_tiny_model` with every shipment optional,
    random visit types on its visits, random extra durations per vehicle and a route
    duration limit that the extras make bind."""
    rng = np.random.default_rng(4000 + seed)
    base = random_tiny_model(seed)

    def typed(v: VisitRequest) -> VisitRequest:
        types = tuple(t for t in ("stairs", "fragile") if rng.random() < 0.5)
        return dataclasses.replace(v, visit_types=types)

    shipments = tuple(
        dataclasses.replace(
            s,
            pickups=tuple(typed(v) for v in s.pickups),
            deliveries=tuple(typed(v) for v in s.deliveries),
            penalty_cost=s.penalty_cost or float(rng.integers(100, 400)),
        )
        for s in base.shipments
    )
    vehicles = tuple(
        dataclasses.replace(
            vehicle,
            route_duration_limit_s=float(rng.integers(250, 450)),
            extra_visit_duration_for_visit_type={
                "stairs": float(rng.integers(0, 80)),
                "fragile": float(rng.integers(0, 80)),
            },
        )
        for vehicle in base.vehicles
    )
    return dataclasses.replace(base, shipments=shipments, vehicles=vehicles)


@pytest.mark.parametrize("seed", seeds(8, 4))
def test_visit_types_match_brute_force(seed: int) -> None:
    m = random_types_model(seed)
    optimum = brute_force_optimum(m)
    solution = solve_checked(m, time_limit_s=1.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME)
    assert solution.backend == "ortools"
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)


def test_the_extras_change_the_random_optima() -> None:
    changed = 0
    for seed in range(8):
        m = random_types_model(seed)
        free = dataclasses.replace(
            m,
            vehicles=tuple(
                dataclasses.replace(v, extra_visit_duration_for_visit_type={}) for v in m.vehicles
            ),
        )
        changed += brute_force_optimum(m) != pytest.approx(brute_force_optimum(free))
    assert changed >= 2


def test_the_checker_counts_each_type_once() -> None:
    vehicle = depot_vehicle(extra_visit_duration_for_visit_type={"a": 10.0, "b": 5.0})
    assert visit_duration(vehicle, VisitRequest(duration_s=1.0, visit_types=("a", "b"))) == 16.0
    assert visit_duration(vehicle, VisitRequest(duration_s=1.0, visit_types=("c",))) == 1.0


def test_the_checker_catches_a_visit_that_ignores_its_extra() -> None:
    vehicle = depot_vehicle(cost_per_hour=10.0)
    m = model([drop("stairs")], [vehicle])
    solution = solve_checked(m)  # no extras: the route is 1 h shorter than it should be
    slow = dataclasses.replace(vehicle, extra_visit_duration_for_visit_type={"stairs": H})
    with pytest.raises(AssertionError):
        check_solution(dataclasses.replace(m, vehicles=(slow,)), solution)


def test_validation_names_each_bad_field() -> None:
    vehicle = depot_vehicle(
        extra_visit_duration_for_visit_type={"stairs": -1.0, "": 5.0, "lift": 2e9}
    )
    shipments = [
        Shipment(deliveries=(at("A", visit_types=("x", "x")),)),
        Shipment(pickups=(at("B", visit_types=("",)),)),
    ]
    m = model(shipments, [vehicle])
    assert {v.field for v in validate_model(m)} == {
        "shipments[0].deliveries[0].visit_types",
        "shipments[1].pickups[0].visit_types",
        "vehicles[0].extra_visit_duration_for_visit_type",
        "vehicles[0].extra_visit_duration_for_visit_type[stairs]",
        "vehicles[0].extra_visit_duration_for_visit_type[lift]",
    }
