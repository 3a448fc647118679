"""Issue 15, ``Vehicle.unloading_policy`` (Google's LAST_IN_FIRST_OUT / FIRST_IN_FIRST_OUT: the
order in which shipments with both a pickup and a delivery are delivered), on small instances
whose optimum is known by hand or by brute force (tests/bruteforce.py), solved by the engine and
verified by the independent checker (tests/checker.py); backend routing and the checker's rule.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine import InvalidModelError, Shipment, ShipmentModel
from engine.model import UnloadingPolicy, Vehicle, VisitRequest
from engine.options import SearchMode
from tests.bruteforce import brute_force_optimum
from tests.builders import (
    at,
    depot_vehicle,
    line_model,
    matrix_model,
    random_points,
    route_order,
    solve_checked,
)
from tests.checker import check_solution, unloading_problems
from tests.seeds import seeds

LIFO = UnloadingPolicy.LAST_IN_FIRST_OUT
FIFO = UnloadingPolicy.FIRST_IN_FIRST_OUT
POINTS = {"depot": 0.0, "P1": 1.0, "P2": 2.0, "D1": 3.0, "D2": 4.0, "X": 5.0}


def pairs_model(policy: UnloadingPolicy, *extra: Shipment) -> ShipmentModel:
    """Two parcels, P1 → D1 and P2 → D2, along a line; an open route from the depot."""
    shipments = [
        Shipment(pickups=(at("P1"),), deliveries=(at("D1"),)),
        Shipment(pickups=(at("P2"),), deliveries=(at("D2"),)),
        *extra,
    ]
    vehicle = depot_vehicle(open_end=True, cost_per_kilometer=1000.0, unloading_policy=policy)
    return line_model(POINTS, shipments, [vehicle])


@pytest.mark.parametrize(
    ("policy", "order", "cost"),
    [
        # Along the line: P1 P2 D1 D2, 4 m (first in, first out).
        (UnloadingPolicy.UNLOADING_POLICY_UNSPECIFIED, [0, 1, 0, 1], 4.0),
        (FIFO, [0, 1, 0, 1], 4.0),
        # Last in, first out: P1 P2 D2 D1 (1 + 1 + 2 + 1 = 5 m) beats P2 P1 D1 D2 (6 m).
        (LIFO, [0, 1, 1, 0], 5.0),
    ],
)
def test_the_policy_orders_the_deliveries(
    policy: UnloadingPolicy, order: list[int], cost: float
) -> None:
    m = pairs_model(policy)
    solution = solve_checked(m, backend="ortools")
    assert [s for s, _ in route_order(solution, 0)] == order
    assert solution.metrics.total_cost == pytest.approx(cost)
    assert brute_force_optimum(m) == pytest.approx(cost)


def test_shipments_without_a_pickup_are_free() -> None:
    # A delivery-only drop at X does not take part in the policy: LIFO still costs 5 m
    # to D1 and the drop comes last (1 m more).
    drop = Shipment(deliveries=(at("X"),))
    solution = solve_checked(pairs_model(LIFO, drop), backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(7.0)  # ... D1 at 3, then X at 5
    assert route_order(solution, 0)[-1] == (2, False)


def test_auto_routes_the_policy_to_ortools_and_pyvrp_refuses_it() -> None:
    m = pairs_model(LIFO)
    assert solve_checked(m).backend == "ortools"
    with pytest.raises(InvalidModelError) as err:
        solve_checked(m, backend="pyvrp")
    assert "vehicles[0].unloading_policy" in str(err.value)


def test_the_checker_catches_a_broken_policy() -> None:
    m = pairs_model(UnloadingPolicy.UNLOADING_POLICY_UNSPECIFIED)
    solution = solve_checked(m)  # P1 P2 D1 D2: first in, first out
    lifo = dataclasses.replace(
        m, vehicles=(dataclasses.replace(m.vehicles[0], unloading_policy=LIFO),)
    )
    with pytest.raises(AssertionError, match="LAST_IN_FIRST_OUT: delivers shipment 0"):
        check_solution(lifo, solution)
    order = [(0, True, 0), (1, True, 0), (1, False, 0), (0, False, 0)]
    assert unloading_problems(m, lifo.vehicles[0], order) == []
    fifo = dataclasses.replace(lifo.vehicles[0], unloading_policy=FIFO)
    (problem,) = unloading_problems(m, fifo, order)  # then only shipment 0 is on board
    assert "delivers shipment 1 while 0 is due first" in problem


def random_pairs_model(seed: int, policy: UnloadingPolicy) -> ShipmentModel:
    """Three optional pickup-and-delivery shipments between random points, two vehicles from
    two depots with per-km costs; the first vehicle has ``policy``."""
    rng = np.random.default_rng(5000 + seed)
    n_points = 8
    dist, tags = random_points(rng, n_points)
    shipments = tuple(
        Shipment(
            pickups=(VisitRequest(tags=(tags[2 + 2 * k],)),),
            deliveries=(VisitRequest(tags=(tags[3 + 2 * k],)),),
            penalty_cost=float(rng.integers(200, 600)),
        )
        for k in range(3)
    )
    vehicles = (
        Vehicle(start_tags=(tags[0],), end_tags=(tags[0],), cost_per_kilometer=1000.0,
                unloading_policy=policy),
        Vehicle(start_tags=(tags[1],), end_tags=(tags[1],), cost_per_kilometer=3000.0,
                fixed_cost=float(rng.integers(0, 200))),
    )  # fmt: skip
    return matrix_model(dist, tags, shipments, vehicles)


@pytest.mark.parametrize("seed", seeds(6, 3))
@pytest.mark.parametrize("policy", [LIFO, FIFO])
def test_policies_match_brute_force(seed: int, policy: UnloadingPolicy) -> None:
    m = random_pairs_model(seed, policy)
    optimum = brute_force_optimum(m)
    solution = solve_checked(m, time_limit_s=1.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME)
    assert solution.backend == "ortools"
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)


def test_the_policies_change_the_random_optima() -> None:
    changed = sum(
        brute_force_optimum(random_pairs_model(seed, policy))
        != pytest.approx(
            brute_force_optimum(
                random_pairs_model(seed, UnloadingPolicy.UNLOADING_POLICY_UNSPECIFIED)
            )
        )
        for seed in range(6)
        for policy in (LIFO, FIFO)
    )
    assert changed >= 2
