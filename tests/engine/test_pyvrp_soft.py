"""Soft time windows in the PyVRP backend: a visit with a soft window is a group of client
copies whose windows open earlier or close later than the soft window, each charged (as a lower
prize) the most its window's soft bounds cost (``engine.backends.pyvrp.data``); early visits
are moved later afterwards. Every solution is checked by the independent checker
(``solve_checked``), which prices the soft bounds itself."""

from __future__ import annotations

import numpy as np
import pytest

from engine import (
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from engine.backends import choose_backend
from engine.backends.pyvrp.data import build_data
from engine.options import SearchMode, SolveOptions
from engine.progress import SolveProgress
from engine.solve import solve
from tests.builders import at, depot_vehicle, line_model, matrix_model, random_points, solve_checked
from tests.checker import check_solution
from tests.engine.test_backends import problem_of
from tests.seeds import seeds

SOFT = TimeWindow(
    start_time=500.0,
    end_time=5000.0,
    soft_start_time=1000.0,
    soft_end_time=2000.0,
    cost_per_hour_before_soft_start_time=3600.0,  # 1 per second early
    cost_per_hour_after_soft_end_time=7200.0,  # 2 per second late
)


def test_a_soft_window_becomes_copies_charged_their_worst_start():
    # Locations: A (x=100), the depot's start and end (x=0): every leg that moves is 100 s,
    # the typical leg of the copies' steps.
    model = line_model(
        {"depot": 0, "A": 100},
        [
            Shipment(deliveries=(at("A", time_windows=(SOFT,)),)),
            Shipment(deliveries=(at("A", time_windows=(SOFT,)),), penalty_cost=450.0),
        ],
        [depot_vehicle(cost_per_kilometer=1000.0)],
        global_end_time=10_000.0,
    )
    built = build_data(problem_of(model))
    data = built.data
    windows = [(data.client(c).tw_early, data.client(c).tw_late) for c in range(data.num_clients)]
    charges = {  # window → what starting at its worst end costs
        (1000, 2000): 0.0,
        (900, 2000): 100.0,  # 1 typical leg early
        (600, 2000): 400.0,  # 4 legs
        (500, 2000): 500.0,  # the hard start
        (1000, 2050): 100.0,  # half a leg late: 50 s at 2 per second
        (1000, 2100): 200.0,
        (1000, 2200): 400.0,
        (1000, 2400): 800.0,
        (1000, 5000): 6000.0,  # the hard end
    }
    required = windows[: len(charges)]
    assert required == list(charges)
    # The optional shipment keeps the copies that cost less than skipping it (450).
    optional = windows[len(charges) :]
    assert optional == [w for w, c in charges.items() if c < 450.0]
    assert [list(data.group(g).clients) for g in range(data.num_groups)] == [
        list(range(9)),
        list(range(9, 15)),
    ]
    assert [data.group(g).required for g in range(2)] == [True, False]
    per_unit = built.scale.prizes
    prizes = [data.client(c).prize for c in range(data.num_clients)]
    for c, window in enumerate(required):  # choosing a copy costs its charge
        assert (prizes[0] - prizes[c]) / per_unit == pytest.approx(charges[window], rel=1e-9)
    for c, window in enumerate(optional, start=9):  # visiting it saves 450 less its charge
        assert prizes[c] / per_unit == pytest.approx(450.0 - charges[window], rel=1e-9)
    # Whatever copy a solution visits, PyVRP counts the other copies' prizes as uncollected.
    assert built.prize_offset == sum(prizes[:9]) - max(prizes[:9]) + sum(prizes[9:]) - max(
        prizes[9:]
    )
    assert (
        built.client_soft_start
        == [None, 1000, 1000, 1000] + [None] * 5 + [None, 1000, 1000] + [None] * 3
    )
    assert built.client_free_until == [2000] * 4 + [2000] * 5 + [2000] * 6


def test_a_visit_that_cannot_be_on_time_is_served_late_at_its_price():
    late = TimeWindow(soft_end_time=40.0, cost_per_hour_after_soft_end_time=3600.0)
    model = line_model(
        {"depot": 0, "A": 100},
        [Shipment(deliveries=(at("A", time_windows=(late,)),))],
        [depot_vehicle(cost_per_kilometer=1000.0)],
        global_end_time=10_000.0,
    )
    assert choose_backend(problem_of(model), "auto").name == "pyvrp"
    solution = solve_checked(model, backend="pyvrp", iteration_limit=200)
    assert solution.backend == "pyvrp"
    assert solution.routes[0].visits[0].start_time == pytest.approx(100.0)
    assert solution.metrics.total_cost == pytest.approx(200.0 + 60.0)  # 60 s late at 1/s


def early_model(pair: bool = False):
    """From the depot (x=0) to the end (x=30): A (x=10) prefers to start at 500 or later (0.01
    per second early), B (x=20) must start by 300. Serving A first saves 20 m (20 in cost) and
    costs 210 s early at A (2.1): A at 290, B at 300. With ``pair``, a pickup at x=5 and its
    delivery at x=25 (no windows) on the way."""
    a = TimeWindow(soft_start_time=500.0, cost_per_hour_before_soft_start_time=36.0)
    extra = [Shipment(pickups=(at("P"),), deliveries=(at("D"),))] if pair else []
    return line_model(
        {"depot": 0, "P": 5, "A": 10, "B": 20, "D": 25, "end": 30},
        [
            Shipment(deliveries=(at("A", time_windows=(a,)),)),
            Shipment(deliveries=(at("B", time_windows=(TimeWindow(0.0, 300.0),)),)),
            *extra,
        ],
        [Vehicle(start_tags=("depot",), end_tags=("end",), cost_per_kilometer=1000.0)],
        global_end_time=10_000.0,
    )


@pytest.mark.parametrize(
    ("backend", "pair"), [("pyvrp", False), ("ortools", False), ("pyvrp", True)]
)
def test_an_early_visit_starts_as_late_as_the_route_allows(backend, pair):
    model = early_model(pair)
    solution = solve_checked(
        model,
        backend=backend,
        iteration_limit=300,
        search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
    )
    assert solution.backend == backend
    starts = [(v.shipment_index, v.start_time) for v in solution.routes[0].visits]
    # PyVRP starts A on arrival (10 s, early by 490); the engine moves it to 290, B and the
    # pair's delivery after it (as late as they must), not the pickup before it
    expected = [(0, pytest.approx(290.0)), (1, pytest.approx(300.0))]
    if pair:
        expected = [(2, pytest.approx(5.0)), *expected, (2, pytest.approx(305.0))]
    assert starts == expected
    assert solution.metrics.total_cost == pytest.approx(30.0 + 2.1)


def test_pairs_and_vehicles_with_soft_windows_stay_on_ortools():
    pair = line_model(
        {"depot": 0, "A": 10, "B": 20},
        [Shipment(pickups=(at("A"),), deliveries=(at("B", time_windows=(SOFT,)),))],
        [depot_vehicle(cost_per_kilometer=1000.0)],
        global_end_time=10_000.0,
    )
    choice = choose_backend(problem_of(pair), "auto")
    assert choice.name == "ortools"
    late_end = TimeWindow(soft_end_time=100.0, cost_per_hour_after_soft_end_time=60.0)
    vehicle = line_model(
        {"depot": 0, "A": 10},
        [Shipment(deliveries=(at("A"),))],
        [depot_vehicle(cost_per_kilometer=1000.0, end_time_windows=(late_end,))],
        global_end_time=10_000.0,
    )
    assert choose_backend(problem_of(vehicle), "auto").name == "ortools"


def test_progress_reports_the_cost_of_the_model_not_the_uncollected_copies():
    # An optional shipment with two windows and a required one with a soft window: PyVRP's
    # own cost counts the copies it does not visit; the progress objective must not.
    two = (TimeWindow(0.0, 50.0), TimeWindow(100.0, 200.0))
    model = line_model(
        {"depot": 0, "A": 10, "B": 20},
        [
            Shipment(deliveries=(at("A", time_windows=two),), penalty_cost=1000.0),
            Shipment(
                deliveries=(
                    at(
                        "B",
                        time_windows=(
                            TimeWindow(soft_end_time=5.0, cost_per_hour_after_soft_end_time=3600.0),
                        ),
                    ),
                )
            ),
        ],
        [depot_vehicle(cost_per_kilometer=1000.0)],
        global_end_time=1000.0,
    )
    updates: list[SolveProgress] = []
    options = SolveOptions(time_limit_s=30.0, iteration_limit=200, backend="pyvrp")
    final = solve(model, options, on_update=updates.append, update_solutions_every_s=0.0)
    check_solution(model, final)
    assert updates
    # 0 → A (10) → B (20, 15 s late) → 0: 40 + 15; PyVRP prices the lateness by its copy's
    # upper bound, so its objective is at least the true cost and at most a step above it
    assert final.metrics.total_cost == pytest.approx(55.0)
    assert final.metrics.total_cost - 1e-6 <= updates[-1].cost <= final.metrics.total_cost + 20.0


def random_soft_model(seed: int) -> ShipmentModel:
    """Up to 7 single-visit shipments, most with a soft window (early, late or both, some with
    a hard window around it, one optional), two vehicles from two depots, capacities."""
    rng = np.random.default_rng(seed)
    n_points = 9
    dist, tags = random_points(rng, n_points)

    def window() -> TimeWindow:
        a = float(rng.integers(0, 200))
        b = a + float(rng.integers(0, 60))
        hard = rng.random() < 0.4
        early = rng.random() < 0.6
        return TimeWindow(
            start_time=max(0.0, a - 50.0) if hard else None,
            end_time=b + 80.0 if hard else None,
            soft_start_time=a if early else None,
            soft_end_time=b,
            cost_per_hour_before_soft_start_time=float(rng.integers(1, 7200)) if early else None,
            cost_per_hour_after_soft_end_time=float(rng.integers(1, 7200)),
        )

    shipments = [
        Shipment(
            deliveries=(
                VisitRequest(
                    tags=(tags[i],),
                    duration_s=float(rng.integers(0, 20)),
                    time_windows=(window(),) if i % 4 else (),
                ),
            ),
            load_demands={"kg": int(rng.integers(1, 4))},
            penalty_cost=float(rng.integers(50, 300)) if i == 8 else None,
        )
        for i in range(2, n_points)
    ]
    vehicles = [
        Vehicle(
            start_tags=(tags[v],),
            end_tags=(tags[v],),
            load_limits={"kg": 10},
            cost_per_kilometer=1000.0,
            fixed_cost=float(rng.integers(0, 50)),
        )
        for v in range(2)
    ]
    return matrix_model(dist, tags, shipments, vehicles, global_end_time=2000.0)


@pytest.mark.parametrize("seed", seeds(8, 3))
def test_pyvrp_answers_on_random_soft_models_cost_at_most_what_pyvrp_charged(seed):
    # The copies charge each soft window's worst start in their window, and the engine only
    # moves early visits later: the exact cost is never above PyVRP's own objective (its
    # integer arc costs aside), and the checker accepts every answer.
    model = random_soft_model(seed)
    assert choose_backend(problem_of(model), "auto").name == "pyvrp"
    updates: list[SolveProgress] = []
    options = SolveOptions(time_limit_s=30.0, iteration_limit=300, backend="pyvrp")
    final = solve(model, options, on_update=updates.append, update_solutions_every_s=0.0)
    check_solution(model, final)
    assert final.backend == "pyvrp"
    assert updates
    assert final.metrics.total_cost <= updates[-1].cost * (1 + 1e-3) + 1e-6
