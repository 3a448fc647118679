"""Issue 15, loads: load-dependent costs (Google's ``LoadLimit.cost_per_kilometer`` and
``cost_per_traveled_hour``, a ``LoadCost`` each): every transition costs, per kilometer or per
hour of its travel, ``below * min(L, threshold) + above * max(0, L - threshold)`` for the load L
of the type on board during it.

Google's own example (its doc comment of ``LoadCost``) evaluated exactly; the optimum of small
instances by hand and by brute force (tests/bruteforce.py), every solution through the
independent checker (tests/checker.py); backend routing, validation, bounds.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from engine import (
    DurationDistanceMatrix,
    InvalidModelError,
    Shipment,
    ShipmentModel,
    SolveOptions,
    Vehicle,
    solve,
)
from engine.backends import StopCriterion, choose_backend
from engine.backends.features import used_features
from engine.backends.ortools import OrToolsBackend
from engine.model import InjectedRoute, InjectedVisit, LoadCost
from engine.options import SearchMode
from engine.validation import validate_model
from tests.bruteforce import brute_force_optimum
from tests.builders import at, depot_vehicle, solve_checked
from tests.checker import LOAD_COST_HOUR_KEY, LOAD_COST_KM_KEY, check_solution, load_cost_terms
from tests.engine.test_backends import city_model, problem_of
from tests.engine.test_optimality import random_tiny_model
from tests.seeds import seeds

KM, HOUR = LOAD_COST_KM_KEY, LOAD_COST_HOUR_KEY
GOOGLE = LoadCost(
    load_threshold=15, cost_per_unit_below_threshold=2.0, cost_per_unit_above_threshold=10.0
)
"""The ``LoadCost`` of Google's example."""


def uniform_model(
    names: list[str],
    shipments: list[Shipment],
    vehicles: list[Vehicle],
    *,
    meters: dict[tuple[str, str], float] | None = None,
) -> ShipmentModel:
    """Every leg between two different points is 1000 m and 100 s, except ``meters``."""
    n = len(names)
    dist = np.full((n, n), 1000.0) - np.eye(n) * 1000.0
    for (a, b), m in (meters or {}).items():
        dist[names.index(a), names.index(b)] = m
    return ShipmentModel(
        shipments=tuple(shipments),
        vehicles=tuple(vehicles),
        duration_distance_matrices=(DurationDistanceMatrix(dist / 10.0, dist),),
        duration_distance_matrix_src_tags=tuple(names),
        duration_distance_matrix_dst_tags=tuple(names),
    )


def google_example(**vehicle_kwargs: object) -> ShipmentModel:
    """Two pickup-and-delivery shipments of 10 units each: Google's example."""
    pair = [
        Shipment(pickups=(at(f"P{k}"),), deliveries=(at(f"D{k}"),), load_demands={"weight": 10})
        for k in (1, 2)
    ]
    vehicle = depot_vehicle(**vehicle_kwargs)  # type: ignore[arg-type]
    return uniform_model(["depot", "P1", "P2", "D1", "D2"], pair, [vehicle])


def refreshed(model: ShipmentModel, order: list[tuple[int, bool]]) -> ShipmentModel:
    """``model`` with ``refresh_details_routes``: vehicle 0 visits ``order`` as it is."""
    visits = tuple(InjectedVisit(shipment_index=s, is_pickup=p) for s, p in order)
    return dataclasses.replace(
        model, refresh_details_routes=(InjectedRoute(vehicle_index=0, visits=visits),)
    )


@pytest.mark.parametrize(
    ("order", "want"),
    [
        ([(0, True), (1, True), (0, False), (1, False)], 120.0),  # loads 0, 10, 20, 10, 0
        ([(0, True), (0, False), (1, True), (1, False)], 40.0),  # loads 0, 10, 0, 10, 0
    ],
)
def test_googles_example_is_evaluated_exactly(order: list[tuple[int, bool]], want: float) -> None:
    # Transition at 20 units: 2 * 15 + 10 * 5 = 80 per km (both slopes); at 10: 20 per km.
    model = refreshed(google_example(load_costs_per_kilometer={"weight": GOOGLE}), order)
    solution = solve_checked(model)
    route = solution.routes[0]
    assert [v.shipment_index for v in route.visits] == [s for s, _ in order]
    assert route.route_costs == {KM: pytest.approx(want, rel=1e-12)}
    assert solution.metrics.costs == {KM: pytest.approx(want, rel=1e-12)}
    # Per traveled hour: each transition is 100 s, so 1/36 of the per-kilometer figure.
    model = refreshed(google_example(load_costs_per_traveled_hour={"weight": GOOGLE}), order)
    solution = solve_checked(model)
    assert solution.routes[0].route_costs == {HOUR: pytest.approx(want / 36.0, rel=1e-12)}


def test_the_search_interleaves_to_stay_below_the_threshold() -> None:
    # Google's example solved: all legs equal, so only the load cost tells the orders apart;
    # the optimum never carries both shipments (40, not 120 or 80).
    model = google_example(cost_per_kilometer=1.0, load_costs_per_kilometer={"weight": GOOGLE})
    solution = solve_checked(model, backend="ortools")
    assert solution.metrics.costs[KM] == pytest.approx(40.0, rel=1e-9)
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(model), rel=1e-9)
    loads = [t.vehicle_loads["weight"] for t in solution.routes[0].transitions]
    assert max(loads) == 10


def drops(**vehicle_kwargs: object) -> ShipmentModel:
    """A light (1 kg, L) and a heavy (10 kg, H) drop from an open-ended van; L is nearer the
    depot (900 m), so distance alone delivers L first."""
    shipments = [
        Shipment(deliveries=(at("L"),), load_demands={"kg": 1}),
        Shipment(deliveries=(at("H"),), load_demands={"kg": 10}),
    ]
    vehicle = depot_vehicle(open_end=True, cost_per_kilometer=1.0, **vehicle_kwargs)  # type: ignore[arg-type]
    return uniform_model(["depot", "L", "H"], shipments, [vehicle], meters={("depot", "L"): 900.0})


def test_without_load_cost_the_nearer_drop_comes_first() -> None:
    solution = solve_checked(drops(), backend="ortools")
    assert [v.shipment_index for v in solution.routes[0].visits] == [0, 1]


@pytest.mark.parametrize("kind", ["load_costs_per_kilometer", "load_costs_per_traveled_hour"])
def test_a_load_cost_delivers_the_heavy_item_first(kind: str) -> None:
    # Per kilometer: light first 11 * 0.9 + 10 * 1 = 19.9, heavy first 11 + 1 = 12 (plus the
    # kilometers, 1.9 against 2). Per hour (90 s and 100 s legs, 36x the rate): the same.
    rate = 1.0 if kind == "load_costs_per_kilometer" else 36.0
    model = drops(**{kind: {"kg": LoadCost(100, rate, 0.0)}})
    solution = solve_checked(model, backend="ortools")
    assert [v.shipment_index for v in solution.routes[0].visits] == [1, 0]
    key = KM if kind == "load_costs_per_kilometer" else HOUR
    assert solution.metrics.costs[key] == pytest.approx(12.0, rel=1e-9)
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(model), rel=1e-9)


def test_above_the_threshold_only_the_steep_slope_counts() -> None:
    # Threshold 0: a cost per unit (Google: "a fixed cost per unit"); the below slope is unused.
    model = drops(load_costs_per_kilometer={"kg": LoadCost(0, 1000.0, 1.0)})
    solution = solve_checked(model, backend="ortools")
    assert solution.metrics.costs[KM] == pytest.approx(12.0, rel=1e-9)
    # Threshold 5: the first leg carries 11 = 5 below (1 each) + 6 above (3 each).
    model = drops(load_costs_per_kilometer={"kg": LoadCost(5, 1.0, 3.0)})
    solution = solve_checked(model, backend="ortools")
    assert [v.shipment_index for v in solution.routes[0].visits] == [1, 0]
    assert solution.metrics.costs[KM] == pytest.approx((5 + 18) + 1, rel=1e-9)
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(model), rel=1e-9)


def with_load_costs(model: ShipmentModel, seed: int) -> ShipmentModel:
    rng = np.random.default_rng(seed + 100)
    vehicles = []
    for v in model.vehicles:
        per_km = LoadCost(
            int(rng.integers(0, 8)), float(rng.integers(0, 400)), float(rng.integers(0, 2000))
        )
        per_hour = LoadCost(int(rng.integers(0, 8)), float(rng.integers(0, 3600)), 0.0)
        vehicles.append(
            dataclasses.replace(
                v,
                load_costs_per_kilometer={"kg": per_km},
                load_costs_per_traveled_hour={"kg": per_hour},
            )
        )
    return dataclasses.replace(model, vehicles=tuple(vehicles))


@pytest.mark.parametrize("seed", seeds(6, 3))
def test_engine_matches_brute_force_with_load_costs(seed: int) -> None:
    # Random tiny models (a pair, drops, a pickup, optional shipments, capacities, windows, a
    # distance limit) with random load costs of both kinds on every vehicle.
    model = with_load_costs(random_tiny_model(seed), seed)
    solution = solve_checked(
        model, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME, time_limit_s=2.0
    )
    assert solution.backend == "ortools"
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(model), rel=1e-6)


def test_auto_routes_load_costs_to_ortools() -> None:
    model = drops(load_costs_per_kilometer={"kg": LoadCost(0, 0.0, 1.0)})
    problem = problem_of(model)
    features = used_features(problem)
    assert features["load_costs"] == "vehicles[0].load_limits[kg].cost_per_kilometer"
    choice = choose_backend(problem, "auto")
    assert choice.name == "ortools"
    assert "load-dependent cost" in choice.reason
    # A rate of zero, or a type nothing demands, is no load cost.
    for costs in ({"kg": LoadCost(3, 0.0, 0.0)}, {"l": LoadCost(0, 1.0, 1.0)}):
        problem = problem_of(drops(load_costs_per_kilometer=costs))
        assert "load_costs" not in used_features(problem)


def test_pyvrp_refuses_load_costs_by_name() -> None:
    model = drops(load_costs_per_traveled_hour={"kg": LoadCost(0, 0.0, 1.0)})
    with pytest.raises(InvalidModelError) as caught:
        solve(model, SolveOptions(backend="pyvrp", time_limit_s=1.0))
    (violation,) = caught.value.violations
    assert violation.field == "vehicles[0].load_limits[kg].cost_per_traveled_hour"
    assert "load-dependent cost" in violation.description


@pytest.mark.parametrize(
    ("cost", "field", "words"),
    [
        (LoadCost(-1, 1.0, 1.0), "load_threshold", "between 0 and 2^53"),
        (LoadCost(2**53 + 1, 1.0, 1.0), "load_threshold", "between 0 and 2^53"),
        (LoadCost(0, -1.0, 1.0), "cost_per_unit_below_threshold", "non-negative"),
        (LoadCost(0, 1.0, float("nan")), "cost_per_unit_above_threshold", "finite"),
        (LoadCost(0, 1.0, float("inf")), "cost_per_unit_above_threshold", "finite"),
    ],
)
def test_bad_load_costs_are_reported_with_their_field(
    cost: LoadCost, field: str, words: str
) -> None:
    for kind, attr in (
        ("cost_per_kilometer", "load_costs_per_kilometer"),
        ("cost_per_traveled_hour", "load_costs_per_traveled_hour"),
    ):
        model = drops(**{attr: {"kg": cost}})
        violations = validate_model(model)
        assert [v.field for v in violations] == [f"vehicles[0].load_limits[kg].{kind}.{field}"]
        assert words in violations[0].description
        with pytest.raises(InvalidModelError):
            solve(model, SolveOptions(time_limit_s=1.0))


def test_an_unbounded_worst_case_is_refused_naming_the_load_cost() -> None:
    # 10^9 per unit per kilometer, 11 units over legs of up to a kilometer: fine; 10^13 is not.
    assert validate_model(drops(load_costs_per_kilometer={"kg": LoadCost(0, 0.0, 1e9)})) == []
    (violation,) = validate_model(drops(load_costs_per_kilometer={"kg": LoadCost(0, 0.0, 1e13)}))
    assert violation.field == "vehicles[0].load_limits[kg].cost_per_kilometer"
    assert "worst-case total cost" in violation.description


def test_checker_recomputes_load_costs_independently() -> None:
    # The checker's own arithmetic on Google's example, and a tampered cost caught.
    vehicle = Vehicle(load_costs_per_kilometer={"weight": GOOGLE})
    legs = [(100.0, 1000.0)] * 5
    loads = [{"weight": w} for w in (0, 10, 20, 10, 0)]
    assert load_cost_terms(vehicle, legs, loads) == {KM: 120.0, HOUR: 0.0}
    model = drops(load_costs_per_kilometer={"kg": LoadCost(5, 1.0, 3.0)})
    solution = solve_checked(model)
    route = solution.routes[0]
    tampered_costs = dict(route.route_costs, **{KM: route.route_costs[KM] + 1.0})
    tampered = dataclasses.replace(
        solution, routes=(dataclasses.replace(route, route_costs=tampered_costs),)
    )
    with pytest.raises(AssertionError, match="cost_per_kilometer"):
        check_solution(model, tampered)


def test_the_exact_search_starts_from_routes_found_without_load_costs() -> None:
    # The exact model checks every move's load cost in the constraint solver, so inserting
    # every shipment there from scratch is slow: the search starts from complete routes of the
    # model without load costs (a quick greedy descent), every mandatory shipment on one.
    model = city_model(20, seed=3)
    rate = {"boxes": LoadCost(3, 0.05, 0.5)}
    model = dataclasses.replace(
        model,
        vehicles=tuple(
            dataclasses.replace(v, load_costs_per_kilometer=rate) for v in model.vehicles
        ),
    )
    problem = problem_of(model)
    backend = OrToolsBackend()
    routes = backend._start_without_load_costs(
        problem, StopCriterion(deadline=time.monotonic() + 60.0)
    )
    assert routes is not None
    on_routes = {int(problem.stops.shipment[stop]) for route in routes for stop in route}
    mandatory = {s for s, sh in enumerate(model.shipments) if sh.penalty_cost is None}
    assert mandatory <= on_routes
    solution = solve_checked(model, backend="ortools", time_limit_s=5.0)
    assert not [s for s in solution.skipped_shipments if s.index in mandatory]
    assert solution.metrics.costs[KM] > 0


@pytest.mark.parametrize("dear", [0, 1])
def test_each_vehicle_pays_its_own_load_costs(dear: int) -> None:
    # Two vans at the same depot; the one with the load cost (1 per kg and km: 12 for heavy
    # first, plus 2 km) has no fixed cost, the other a fixed cost of 5 (5 + 1.9 km): the
    # optimum takes the van without the load cost, whichever index it has.
    model = drops()
    loaded = dataclasses.replace(
        model.vehicles[0], load_costs_per_kilometer={"kg": LoadCost(100, 1.0, 0.0)}
    )
    plain = dataclasses.replace(model.vehicles[0], fixed_cost=5.0)
    vehicles = (loaded, plain) if dear == 0 else (plain, loaded)
    model = dataclasses.replace(model, vehicles=vehicles)
    solution = solve_checked(model, backend="ortools")
    assert solution.metrics.total_cost == pytest.approx(6.9, rel=1e-9)
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(model), rel=1e-9)
    assert [r.vehicle_index for r in solution.routes if r.visits] == [1 - dear]


@pytest.mark.parametrize("seed", seeds(4, 2))
def test_load_costs_with_per_visit_demands_match_brute_force(seed: int) -> None:
    """Load-dependent costs charge the load on board, per-visit demands included (unbalanced
    pairs leave the difference on board): the search's load-cost dimension, the evaluation,
    the checker and brute force agree."""
    from tests.engine.test_visit_load_demands import _with_visit_demands

    model = with_load_costs(
        _with_visit_demands(random_tiny_model(seed), seed, balanced=False), seed
    )
    solution = solve_checked(
        model, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME, time_limit_s=2.0
    )
    assert solution.backend == "ortools"
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(model), rel=1e-6)
