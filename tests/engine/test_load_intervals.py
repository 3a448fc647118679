"""Issue 15, loads: ``load_limits[type].start_load_interval`` and ``end_load_interval`` (Google's
``LoadLimit.Interval``), on small instances whose optimum is known by hand or by brute force
(tests/bruteforce.py), solved by the engine and verified by the independent checker
(tests/checker.py); backend routing, skip reasons, validation and the checker's own rule.

The start load of a route is the delivery-only goods it delivers (on board from the start), its
end load the pickup-only goods it collects; the intervals constrain routes with visits. Positive
minima: tests/engine/test_load_minima.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine import InvalidModelError, Shipment, ShipmentModel, SkipReasonCode, Vehicle
from engine.model import LoadInterval
from engine.options import SearchMode
from engine.validation import MAX_LOAD_INTERVAL_BOUND, validate_model
from tests.bruteforce import brute_force_optimum
from tests.builders import at, depot_vehicle, line_model, solve_checked
from tests.checker import check_solution, load_interval_problems, route_loads
from tests.engine.test_optimality import random_tiny_model
from tests.seeds import seeds

POINTS = {"depot": 0.0, "A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0}


def drop(tag: str, kg: int, penalty: float | None = 1e6) -> Shipment:
    return Shipment(deliveries=(at(tag),), load_demands={"kg": kg}, penalty_cost=penalty)


def collect(tag: str, kg: int, penalty: float | None = 1e6) -> Shipment:
    return Shipment(pickups=(at(tag),), load_demands={"kg": kg}, penalty_cost=penalty)


def model(shipments: list[Shipment], vehicles: list[Vehicle]) -> ShipmentModel:
    return line_model(POINTS, shipments, vehicles, scale=1000.0)


def served(solution: object) -> set[int]:
    return {v.shipment_index for r in solution.routes for v in r.visits}  # type: ignore[attr-defined]


def test_start_load_interval_picks_the_drops_that_fit() -> None:
    # The van may leave with at most 6 kg: of drops of 3, 4 and 2 kg (equal penalties) it
    # takes two, {A 3, C 2} = 5 or {B 4, C 2} = 6, never {A, B} = 7.
    vehicle = depot_vehicle(cost_per_kilometer=1.0, start_load_intervals={"kg": LoadInterval(0, 6)})
    shipments = [drop("A", 3), drop("B", 4), drop("C", 2)]
    m = model(shipments, [vehicle])
    solution = solve_checked(m, backend="ortools")
    assert served(solution) in ({0, 2}, {1, 2})
    assert solution.routes[0].transitions[0].vehicle_loads["kg"] in (5, 6)
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(m), rel=1e-9)


def test_end_load_interval_bounds_what_a_van_collects() -> None:
    # Pickups of 3 kg at A, B and C (penalty 1e6 each); the van may come back with at most
    # 6 kg: one pickup goes to the second, dearer van.
    cheap = depot_vehicle(cost_per_kilometer=1.0, end_load_intervals={"kg": LoadInterval(0, 6)})
    dear = depot_vehicle(cost_per_kilometer=100.0)
    shipments = [collect("A", 3), collect("B", 3), collect("C", 3)]
    m = model(shipments, [cheap, dear])
    solution = solve_checked(m, backend="ortools")
    assert not solution.skipped_shipments
    assert len(solution.routes[0].visits) == 2
    assert solution.routes[0].transitions[-1].vehicle_loads["kg"] == 6
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(m), rel=1e-9)


def test_a_maximum_on_a_type_nobody_demands_does_not_constrain() -> None:
    # No shipment has pallets: the load of pallets is 0, within a maximum of 0.
    vehicle = depot_vehicle(
        cost_per_kilometer=1.0,
        start_load_intervals={"pallets": LoadInterval(0, 0)},
        end_load_intervals={"pallets": LoadInterval(0, 0)},
    )
    m = model([drop("A", 1), collect("B", 2)], [vehicle])
    solution = solve_checked(m, backend="ortools")
    assert served(solution) == {0, 1}


def test_a_drop_above_every_start_maximum_is_skipped_as_over_capacity() -> None:
    # 5 kg to deliver leaves the depot on board; the only van may leave with at most 4 kg.
    # A 5-kg pickup exceeds the 4-kg end maximum in the same way.
    vehicle = depot_vehicle(
        start_load_intervals={"kg": LoadInterval(0, 4)},
        end_load_intervals={"kg": LoadInterval(0, 4)},
    )
    m = model([drop("A", 5, penalty=None), collect("B", 5, penalty=None), drop("C", 4)], [vehicle])
    solution = solve_checked(m)
    skipped = {s.index: s.reasons for s in solution.skipped_shipments}
    assert set(skipped) == {0, 1}
    for reasons in skipped.values():
        (reason,) = reasons
        assert reason.code is SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY
        assert reason.example_exceeded_capacity_type == "kg"
    assert served(solution) == {2}


def test_auto_routes_intervals_to_ortools_and_pyvrp_refuses_them() -> None:
    vehicle = depot_vehicle(start_load_intervals={"kg": LoadInterval(0, 9)})
    m = model([drop("A", 1)], [vehicle])
    assert solve_checked(m).backend == "ortools"
    with pytest.raises(InvalidModelError) as err:
        solve_checked(m, backend="pyvrp")
    assert "vehicles[0].load_limits[kg].start_load_interval" in str(err.value)


def random_interval_model(seed: int) -> ShipmentModel:
    """:func:`tests.engine.test_optimality.random_tiny_model` (a pair, delivery-only and
    pickup-only shipments in kg) with every shipment optional and random start and end load
    intervals on each vehicle."""
    rng = np.random.default_rng(3000 + seed)
    base = random_tiny_model(seed)
    shipments = tuple(
        dataclasses.replace(s, penalty_cost=s.penalty_cost or float(rng.integers(100, 400)))
        for s in base.shipments
    )
    vehicles = tuple(
        dataclasses.replace(
            vehicle,
            start_load_intervals={"kg": LoadInterval(0, int(rng.integers(1, 7)))},
            end_load_intervals={"kg": LoadInterval(0, int(rng.integers(0, 4)))},
        )
        for vehicle in base.vehicles
    )
    return dataclasses.replace(base, shipments=shipments, vehicles=vehicles)


@pytest.mark.parametrize("seed", seeds(8, 4))
def test_load_intervals_match_brute_force(seed: int) -> None:
    m = random_interval_model(seed)
    optimum = brute_force_optimum(m)
    solution = solve_checked(m, time_limit_s=1.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME)
    assert solution.backend == "ortools"
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)


def test_the_intervals_change_the_random_optima() -> None:
    # The brute-force comparison above is not vacuous: on some seeds the intervals change
    # the optimum of the same model without them.
    changed = 0
    for seed in range(8):
        m = random_interval_model(seed)
        free = dataclasses.replace(
            m,
            vehicles=tuple(
                dataclasses.replace(v, start_load_intervals={}, end_load_intervals={})
                for v in m.vehicles
            ),
        )
        changed += brute_force_optimum(m) != pytest.approx(brute_force_optimum(free))
    assert changed >= 2


def test_the_checker_catches_a_route_outside_its_interval() -> None:
    vehicle = depot_vehicle(cost_per_kilometer=1.0)
    m = model([drop("A", 3), drop("B", 4)], [vehicle])
    solution = solve_checked(m)
    assert served(solution) == {0, 1}
    for intervals in (
        {"start_load_intervals": {"kg": LoadInterval(0, 6)}},
        {"start_load_intervals": {"kg": LoadInterval(8)}},
        {"end_load_intervals": {"kg": LoadInterval(1)}},
    ):
        tight = dataclasses.replace(m, vehicles=(dataclasses.replace(vehicle, **intervals),))
        with pytest.raises(AssertionError, match="load_interval: load 'kg'"):
            check_solution(tight, solution)
    loads = route_loads(m, 0, [(1, False, 0), (0, False, 0)])
    assert loads[0]["kg"] == 7
    assert loads[-1]["kg"] == 0
    ok = dataclasses.replace(vehicle, start_load_intervals={"kg": LoadInterval(7, 7)})
    assert load_interval_problems(ok, loads) == []


def test_validation_names_each_bad_field() -> None:
    vehicle = depot_vehicle(
        start_load_intervals={
            "kg": LoadInterval(-1, 5),
            "l": LoadInterval(6, 5),
            "m": LoadInterval(1),  # a positive minimum is valid (tests/engine/test_load_minima.py)
        },
        end_load_intervals={"kg": LoadInterval(0, MAX_LOAD_INTERVAL_BOUND + 1)},
    )
    m = model([drop("A", 1)], [vehicle])
    assert {v.field for v in validate_model(m)} == {
        "vehicles[0].load_limits[kg].start_load_interval.min",
        "vehicles[0].load_limits[l].start_load_interval.min",
        "vehicles[0].load_limits[kg].end_load_interval.max",
    }
    good = dataclasses.replace(
        vehicle,
        start_load_intervals={"kg": LoadInterval(0, 5)},
        end_load_intervals={"kg": LoadInterval(0, MAX_LOAD_INTERVAL_BOUND)},
    )
    assert validate_model(dataclasses.replace(m, vehicles=(good,))) == []
