"""Issue 15, loads: a positive ``min`` of ``load_limits[type].start_load_interval`` /
``end_load_interval`` (vehicles that must leave or come back loaded), on small instances whose
optimum is known by hand or by brute force (tests/bruteforce.py), solved by the engine and
verified by the independent checker (tests/checker.py); skip reasons of infeasible minima.

As for the maxima, the start load of a route is the delivery-only goods it delivers and its end
load what it brings back (pickup-only goods); the interval binds a route with visits only: an
unused vehicle carries nothing and is not constrained (Google: a route without visits is an
unused vehicle).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine import Shipment, ShipmentModel, SkipReasonCode, Vehicle
from engine.errors import InvalidModelError, NoSolutionError
from engine.model import (
    ConstraintRelaxation,
    InjectedRoute,
    InjectedSolutionConstraint,
    InjectedVisit,
    LoadInterval,
    Relaxation,
    RelaxationLevel,
)
from engine.options import SearchMode
from tests.bruteforce import brute_force_optimum
from tests.builders import at, depot_vehicle, line_model, solve_checked
from tests.checker import check_solution
from tests.engine.test_optimality import random_tiny_model

POINTS = {"depot": 0.0, "A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0}


def drop(tag: str, kg: int, penalty: float | None = 1e6) -> Shipment:
    return Shipment(deliveries=(at(tag),), load_demands={"kg": kg}, penalty_cost=penalty)


def collect(tag: str, kg: int, penalty: float | None = 1e6) -> Shipment:
    return Shipment(pickups=(at(tag),), load_demands={"kg": kg}, penalty_cost=penalty)


def model(shipments: list[Shipment], vehicles: list[Vehicle]) -> ShipmentModel:
    return line_model(POINTS, shipments, vehicles, scale=1000.0)


def served_by(solution: object) -> dict[int, int]:
    return {
        v.shipment_index: r.vehicle_index
        for r in solution.routes  # type: ignore[attr-defined]
        for v in r.visits
    }


def test_a_van_that_must_leave_loaded_takes_enough_drops_at_once() -> None:
    # The cheap van must leave with at least 5 kg: no single 2-kg drop opens its route, three
    # together do (6 kg), and all three are cheaper on it than on the dear van.
    cheap = depot_vehicle(cost_per_kilometer=1.0, start_load_intervals={"kg": LoadInterval(5)})
    dear = depot_vehicle(cost_per_kilometer=10.0)
    m = model([drop("A", 2), drop("B", 2), drop("C", 2)], [cheap, dear])
    solution = solve_checked(m, time_limit_s=1.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME)
    assert served_by(solution) == {0: 0, 1: 0, 2: 0}
    assert solution.routes[0].transitions[0].vehicle_loads["kg"] == 6
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(m), rel=1e-9)


def test_an_unused_vehicle_is_not_bound_by_its_minimum() -> None:
    # One 1-kg drop: the van that must leave with 3 kg stays unused (a route without visits
    # carries nothing and is not constrained); the other van serves it.
    bound = depot_vehicle(cost_per_kilometer=1.0, start_load_intervals={"kg": LoadInterval(3)})
    free = depot_vehicle(cost_per_kilometer=5.0)
    m = model([drop("B", 1, penalty=None)], [bound, free])
    solution = solve_checked(m)
    assert served_by(solution) == {0: 1}
    assert not solution.routes[0].visits
    assert not solution.skipped_shipments


def test_minima_no_route_can_reach_are_skipped_with_the_load_type() -> None:
    # The only van must leave with 5 kg and come back with 4: all the drops together weigh
    # 4 kg, so it can never be used: every shipment is skipped, with the load type, both the
    # drops and the 9-kg pickup (which alone would meet the end minimum).
    van = depot_vehicle(
        start_load_intervals={"kg": LoadInterval(5)}, end_load_intervals={"kg": LoadInterval(4)}
    )
    m = model(
        [drop("A", 2, penalty=None), drop("B", 2, penalty=None), collect("C", 9, penalty=None)],
        [van],
    )
    solution = solve_checked(m)
    assert {s.index for s in solution.skipped_shipments} == {0, 1, 2}
    for skipped in solution.skipped_shipments:
        (reason,) = skipped.reasons
        assert reason.code is SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY
        assert reason.example_vehicle_index == 0
        assert reason.example_exceeded_capacity_type == "kg"


def test_a_minimum_above_the_capacity_makes_the_vehicle_unusable() -> None:
    van = depot_vehicle(load_limits={"kg": 3}, end_load_intervals={"kg": LoadInterval(4)})
    other = depot_vehicle(cost_per_kilometer=10.0)
    m = model([collect("A", 2), collect("B", 2)], [van, other])
    solution = solve_checked(m)
    assert set(served_by(solution).values()) == {1}


def test_a_vehicle_used_when_empty_keeps_its_minimum_hard() -> None:
    # used_if_route_is_empty: the minimum is a hard constraint of the used route (with visits).
    van = depot_vehicle(
        cost_per_kilometer=1.0,
        used_if_route_is_empty=True,
        end_load_intervals={"kg": LoadInterval(3)},
    )
    m = model([collect("A", 2), collect("B", 2, penalty=1.0)], [van])
    solution = solve_checked(m, time_limit_s=1.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME)
    assert served_by(solution) == {0: 0, 1: 0}
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(m), rel=1e-9)


def random_minima_model(seed: int) -> ShipmentModel:
    """:func:`tests.engine.test_optimality.random_tiny_model` (a pair, delivery-only and
    pickup-only shipments in kg, capacities 6 and 8) with every shipment optional and random
    positive start and end minima on each vehicle."""
    rng = np.random.default_rng(5000 + seed)
    base = random_tiny_model(seed)
    shipments = tuple(
        dataclasses.replace(s, penalty_cost=s.penalty_cost or float(rng.integers(100, 400)))
        for s in base.shipments
    )
    vehicles = tuple(
        dataclasses.replace(
            vehicle,
            start_load_intervals={"kg": LoadInterval(int(rng.integers(0, 8)))},
            end_load_intervals={"kg": LoadInterval(int(rng.integers(0, 6)))},
        )
        for vehicle in base.vehicles
    )
    return dataclasses.replace(base, shipments=shipments, vehicles=vehicles)


# seeds whose minima change the optimum (test_the_minima_change_the_random_optima)
CHANGED = (1, 2, 3, 4, 5, 12, 17, 19)


@pytest.mark.parametrize("seed", CHANGED)
def test_load_minima_match_brute_force(seed: int) -> None:
    m = random_minima_model(seed)
    optimum = brute_force_optimum(m)
    solution = solve_checked(m, time_limit_s=1.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME)
    assert solution.backend == "ortools"
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)


def test_the_minima_change_the_random_optima() -> None:
    for seed in CHANGED:
        m = random_minima_model(seed)
        free = dataclasses.replace(
            m,
            vehicles=tuple(
                dataclasses.replace(v, start_load_intervals={}, end_load_intervals={})
                for v in m.vehicles
            ),
        )
        assert brute_force_optimum(m) > brute_force_optimum(free) + 1.0, seed


def test_the_checker_catches_a_route_below_its_end_minimum() -> None:
    van = depot_vehicle(cost_per_kilometer=1.0)
    m = model([collect("A", 2), drop("B", 3)], [van])
    solution = solve_checked(m)
    assert served_by(solution) == {0: 0, 1: 0}
    tight = dataclasses.replace(
        m, vehicles=(dataclasses.replace(van, end_load_intervals={"kg": LoadInterval(3)}),)
    )
    with pytest.raises(AssertionError, match="end_load_interval: load 'kg' = 2 is below min 3"):
        check_solution(tight, solution)


def _kept(van: Vehicle, *shipments: Shipment) -> ShipmentModel:
    """``shipments`` on ``van`` (and a dear van), the first one kept on the cheap van by an
    injected solution constraint (times relaxed, the visit performed)."""
    relax = ConstraintRelaxation((Relaxation(RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD),))
    constraint = InjectedSolutionConstraint(
        routes=(InjectedRoute(0, (InjectedVisit(0, False, 0, 1000.0),), 0.0, 2000.0),),
        constraint_relaxations=(relax,),
    )
    dear = depot_vehicle(cost_per_kilometer=10.0)
    m = model(list(shipments), [van, dear])
    return dataclasses.replace(m, injected_solution_constraint=constraint)


def test_a_kept_route_must_reach_its_minimum() -> None:
    # The constraint keeps A's 2-kg drop on the cheap van, which must leave with 4 kg: B's
    # 2 kg go with it (not on the dear van), whatever the search finds cheaper.
    van = depot_vehicle(cost_per_kilometer=1.0, start_load_intervals={"kg": LoadInterval(4)})
    m = _kept(van, drop("A", 2), drop("D", 2, penalty=1e6))
    solution = solve_checked(m, time_limit_s=1.0)
    assert served_by(solution) == {0: 0, 1: 0}
    # Kept, but the van cannot leave with 5 kg (the drops weigh 4): the pre-check proves it.
    short = dataclasses.replace(van, start_load_intervals={"kg": LoadInterval(5)})
    with pytest.raises(InvalidModelError, match="DEMAND_EXCEEDS_VEHICLE_CAPACITY"):
        solve_checked(dataclasses.replace(m, vehicles=(short, m.vehicles[1])), time_limit_s=1.0)
    # Kept, and D's 2 kg would do, but D is out of the van's distance limit (only the search
    # finds that no route reaches 4 kg): the constraint cannot be kept.
    limited = dataclasses.replace(van, route_distance_limit_m=2500.0)
    with pytest.raises(NoSolutionError):
        solve_checked(dataclasses.replace(m, vehicles=(limited, m.vehicles[1])), time_limit_s=1.0)
