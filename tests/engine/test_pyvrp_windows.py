"""Several time windows in the PyVRP backend: a visit with k windows is k client copies in a
mutually exclusive group (``engine.backends.pyvrp.data``). Every solution is checked by the
independent checker (``solve_checked``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine import (
    InjectedRoute,
    InjectedVisit,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
    solve,
)
from engine.backends import choose_backend
from engine.backends.pyvrp.data import build_data, injected_initial_solution
from engine.backends.pyvrp.split import splits
from engine.errors import InvalidModelError
from engine.options import SearchMode, SolveOptions
from engine.solution import SkipReasonCode
from tests.bruteforce import brute_force_optimum
from tests.builders import at, depot_vehicle, line_model, matrix_model, random_points, solve_checked
from tests.engine.test_backends import city_model, problem_of
from tests.seeds import seeds


def second_window_model() -> ShipmentModel:
    """One vehicle from 0; B (x=10) and C (x=20) must be served early, so A (x=-10) cannot
    take its first window [10, 15] (reachable alone) and waits for its second [60, 80]."""
    shipments = [
        Shipment(deliveries=(at("A", time_windows=(TimeWindow(10, 15), TimeWindow(60, 80))),)),
        Shipment(deliveries=(at("B", time_windows=(TimeWindow(0, 12),)),)),
        Shipment(deliveries=(at("C", time_windows=(TimeWindow(0, 25),)),)),
    ]
    return line_model(
        {"depot": 0, "A": -10, "B": 10, "C": 20},
        shipments,
        [depot_vehicle(cost_per_kilometer=1000.0)],
        global_end_time=1000.0,
    )


def test_pyvrp_matches_brute_force_when_the_optimum_takes_the_second_window():
    model = second_window_model()
    assert choose_backend(problem_of(model), "auto").name == "pyvrp"
    optimum = brute_force_optimum(model)
    solution = solve_checked(model, backend="pyvrp", iteration_limit=500)
    assert solution.backend == "pyvrp"
    assert solution.metrics.total_cost == pytest.approx(optimum, abs=1e-6)
    assert optimum == pytest.approx(60.0)  # 0 → B → C → A (waits) → 0
    visits = {v.shipment_index: v.start_time for v in solution.routes[0].visits}
    assert 60 <= visits[0] <= 80


def random_windows_model(seed: int) -> ShipmentModel:
    """Up to 6 single-visit shipments, most with two windows (one optional, one pickup), 2
    vehicles from two depots, capacities, service times, fixed and per-km costs."""
    rng = np.random.default_rng(seed)
    n_points = 8
    dist, tags = random_points(rng, n_points)

    def windows() -> tuple[TimeWindow, ...]:
        a = float(rng.integers(0, 150))
        b = a + float(rng.integers(10, 60))
        c = b + float(rng.integers(20, 150))
        return (TimeWindow(a, b), TimeWindow(c, c + float(rng.integers(10, 80))))

    def visit(i: int) -> VisitRequest:
        return VisitRequest(
            tags=(tags[i],), duration_s=float(rng.integers(0, 20)), time_windows=windows()
        )

    shipments = [
        Shipment(deliveries=(visit(i),), load_demands={"kg": int(rng.integers(1, 5))})
        for i in range(2, 6)
    ]
    shipments.append(Shipment(pickups=(visit(6),), load_demands={"kg": 2}))
    shipments.append(Shipment(deliveries=(visit(7),), penalty_cost=float(rng.integers(10, 200))))
    vehicles = [
        Vehicle(
            start_tags=(tags[v],),
            end_tags=(tags[v],),
            load_limits={"kg": 8},
            cost_per_kilometer=1000.0 + 500.0 * v,
            fixed_cost=float(rng.integers(0, 100)),
        )
        for v in range(2)
    ]
    return matrix_model(dist, tags, shipments, vehicles, global_end_time=1000.0)


@pytest.mark.parametrize("seed", seeds(6, 3))
def test_pyvrp_matches_brute_force_on_random_two_window_models(seed):
    model = random_windows_model(seed)
    optimum = brute_force_optimum(model)
    solution = solve_checked(
        model,
        time_limit_s=1.0,
        search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
        iteration_limit=3000,
    )
    assert solution.backend == "pyvrp"
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)


def test_a_mandatory_shipment_infeasible_in_every_window_is_skipped_with_the_reason():
    late = Shipment(deliveries=(at("far", time_windows=(TimeWindow(0, 5), TimeWindow(20, 40))),))
    fine = Shipment(deliveries=(at("near", time_windows=(TimeWindow(0, 2), TimeWindow(5, 30))),))
    model = line_model(
        {"depot": 0, "near": 10, "far": 50},
        [late, fine],
        [depot_vehicle(cost_per_kilometer=1000.0)],
        global_end_time=1000.0,
    )
    for backend in ("auto", "pyvrp"):
        solution = solve_checked(model, backend=backend)
        assert solution.backend == "pyvrp"
        assert [s.index for s in solution.skipped_shipments] == [0]
        codes = [r.code for r in solution.skipped_shipments[0].reasons]
        assert codes == [SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS]
        assert [v.shipment_index for v in solution.routes[0].visits] == [1]
        assert 10 <= solution.routes[0].visits[0].start_time <= 30  # the second window


def test_alternatives_times_windows_become_one_group_of_copies():
    two = (TimeWindow(0, 100), TimeWindow(200, 300))
    model = line_model(
        {"depot": 0, "a": 10, "b": 20, "c": 30},
        [
            Shipment(deliveries=(at("a", time_windows=two), at("b", time_windows=two))),
            Shipment(deliveries=(at("c", time_windows=two),), penalty_cost=50.0),
            Shipment(deliveries=(at("c"),)),
        ],
        [depot_vehicle(cost_per_kilometer=1000.0)],
        global_end_time=1000.0,
    )
    problem = problem_of(model)
    built = build_data(problem)
    data = built.data
    assert data.num_clients == 4 + 2 + 1
    groups = [list(data.group(g).clients) for g in range(data.num_groups)]
    assert groups == [[0, 1, 2, 3], [4, 5]]
    assert [data.group(g).required for g in range(data.num_groups)] == [True, False]
    assert built.client_stop == [0, 0, 1, 1, 2, 2, 3]
    assert [(data.client(c).tw_early, data.client(c).tw_late) for c in range(4)] == [
        (0, 100),
        (200, 300),
        (0, 100),
        (200, 300),
    ]
    assert data.client(6).required
    assert data.client(6).group is None
    solution = solve_checked(model, backend="pyvrp", iteration_limit=300)
    assert not solution.skipped_shipments


@pytest.mark.parametrize(
    ("order", "clients"),
    [((1, 2, 0), [2, 3, 1]), ((0, 1, 2), [0, 2, 3])],
)
def test_an_injected_route_starts_from_the_copy_of_the_window_it_reaches(order, clients):
    visits = tuple(InjectedVisit(shipment_index=s) for s in order)
    model = dataclasses.replace(
        second_window_model(),
        injected_first_solution_routes=(InjectedRoute(vehicle_index=0, visits=visits),),
    )
    problem = problem_of(model)
    built = build_data(problem)
    initial = injected_initial_solution(built, problem)
    assert initial is not None
    (route,) = initial.routes()
    # A's copies are clients 0 (window [10, 15]) and 1 ([60, 80]); B is 2, C is 3. A first
    # reaches its first window (and B then comes too late); A last waits for its second.
    assert [a.idx for a in route if a.is_client()] == clients
    assert initial.is_feasible() == (order == (1, 2, 0))
    solution = solve_checked(model, backend="pyvrp", iteration_limit=200)
    assert solution.metrics.total_cost == pytest.approx(60.0)


def test_pairs_with_several_windows_stay_on_ortools():
    two = (TimeWindow(0, 100), TimeWindow(200, 300))
    model = line_model(
        {"depot": 0, "a": 10, "b": 20},
        [Shipment(pickups=(at("a"),), deliveries=(at("b", time_windows=two),))],
        [depot_vehicle(cost_per_kilometer=1000.0)],
        global_end_time=1000.0,
    )
    choice = choose_backend(problem_of(model), "auto")
    assert choice.name == "ortools"
    assert "shipments[0].deliveries[0].time_windows" in choice.reason
    with pytest.raises(InvalidModelError) as info:
        solve(model, SolveOptions(time_limit_s=1.0, backend="pyvrp"))
    assert [v.field for v in info.value.violations] == ["shipments[0].deliveries[0].time_windows"]
    assert solve_checked(model).backend == "ortools"


def test_several_windows_are_not_split_over_processes():
    def model(windows: tuple[TimeWindow, ...]) -> ShipmentModel:
        return line_model(
            {"depot": 0, "a": 10},
            [Shipment(deliveries=(at("a", time_windows=windows),))],
            [depot_vehicle()],
            global_end_time=1000.0,
        )

    assert splits(problem_of(model((TimeWindow(0, 100),))), 2, True)
    assert not splits(problem_of(model((TimeWindow(0, 100), TimeWindow(200, 300)))), 2, True)


def test_auto_routes_a_city_of_two_window_shipments_with_pyvrp():
    """40 deliveries (every fifth optional), every second with a morning and an afternoon
    window, three with a second delivery alternative, and pickup-and-delivery pairs with one
    window each: PyVRP under auto, on two processes, every visit inside one of its windows."""
    base = city_model(40, seed=4, pairs=3, cost_per_hour=20.0)
    two = (TimeWindow(0.0, 3 * 3600.0), TimeWindow(6 * 3600.0, 9 * 3600.0))
    shipments = list(base.shipments)
    for i in range(0, 40, 2):
        visit = dataclasses.replace(shipments[i].deliveries[0], time_windows=two)
        more = (shipments[i + 1].deliveries[0],) if i % 10 == 0 else ()
        shipments[i] = dataclasses.replace(shipments[i], deliveries=(visit, *more))
    model = dataclasses.replace(base, shipments=tuple(shipments))
    solution = solve_checked(
        model, time_limit_s=2.0, search_mode=SearchMode.RETURN_FAST, solver_processes=2
    )
    assert solution.backend == "pyvrp"
    assert solution.metrics.skipped_mandatory_shipment_count == 0


@pytest.mark.parametrize("seed", seeds(4, 2))
def test_pyvrp_matches_brute_force_with_several_windows_and_allowed_vehicles(seed):
    """Both PyVRP mappings at once: the window copies of a restricted shipment are forbidden to
    the vehicles it may not use (each copy's location is its stop's)."""
    model = random_windows_model(seed)
    shipments = list(model.shipments)
    for s in (0, 2):  # two two-window deliveries only on the second vehicle
        shipments[s] = dataclasses.replace(shipments[s], allowed_vehicle_indices=(1,))
    model = dataclasses.replace(model, shipments=tuple(shipments))
    optimum = brute_force_optimum(model)
    solution = solve_checked(
        model,
        time_limit_s=1.0,
        search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
        iteration_limit=3000,
    )
    assert solution.backend == "pyvrp"
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)
