"""On tiny problems the engine finds the optimum that exhaustive enumeration proves."""

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
from engine.options import SearchMode
from tests.bruteforce import brute_force_optimum
from tests.builders import matrix_model, random_points, solve_checked
from tests.seeds import seeds


def random_tiny_model(seed: int, *, pyvrp_compatible: bool = False) -> ShipmentModel:
    """Up to 6 visits, 2 vehicles from two depots: capacities, windows, a pickup-and-delivery
    pair, optional shipments, fixed and per-km costs, a distance limit. With
    ``pyvrp_compatible`` the distance-limited vehicle has no per-hour travel cost (PyVRP limits
    the distance only where travel costs are purely per kilometer)."""
    rng = np.random.default_rng(seed)
    n_points = 8
    dist, tags = random_points(rng, n_points)

    def visit(i: int, **kw: object) -> VisitRequest:
        return VisitRequest(tags=(tags[i],), duration_s=float(rng.integers(0, 20)), **kw)

    shipments = [
        Shipment(
            pickups=(visit(2),),
            deliveries=(visit(3),),
            load_demands={"kg": int(rng.integers(1, 5))},
        ),
        Shipment(
            deliveries=(visit(4, time_windows=(TimeWindow(0.0, float(rng.integers(60, 300))),)),),
            load_demands={"kg": int(rng.integers(1, 5))},
        ),
        Shipment(
            deliveries=(visit(5),),
            load_demands={"kg": int(rng.integers(1, 5))},
            penalty_cost=float(rng.integers(10, 200)),
        ),
        Shipment(pickups=(visit(6),), load_demands={"kg": int(rng.integers(1, 5))}),
        Shipment(deliveries=(visit(7),), penalty_cost=float(rng.integers(10, 200))),
    ]
    vehicles = [
        Vehicle(
            start_tags=(tags[0],),
            end_tags=(tags[0],),
            load_limits={"kg": 6},
            cost_per_kilometer=1000.0,
            fixed_cost=float(rng.integers(0, 100)),
        ),
        Vehicle(
            start_tags=(tags[1],),
            end_tags=(tags[1],),
            load_limits={"kg": 8},
            cost_per_kilometer=1500.0,
            cost_per_traveled_hour=0.0 if pyvrp_compatible else 3600.0,
            route_distance_limit_m=float(rng.integers(150, 400)),
        ),
    ]
    return matrix_model(dist, tags, shipments, vehicles, global_end_time=10_000.0)


@pytest.mark.parametrize("seed", seeds(8, 4))
def test_engine_matches_brute_force_optimum(seed):
    model = random_tiny_model(seed)
    optimum = brute_force_optimum(model)
    solution = solve_checked(
        model, time_limit_s=1.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME
    )
    assert solution.backend == "ortools"  # a per-hour travel cost beside a distance limit
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("seed", seeds(8, 4))
@pytest.mark.parametrize("backend", ["pyvrp", "ortools"])
def test_each_backend_matches_brute_force_optimum(seed, backend):
    model = random_tiny_model(seed, pyvrp_compatible=True)
    optimum = brute_force_optimum(model)
    solution = solve_checked(
        model,
        time_limit_s=1.0,
        search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
        backend=backend,
        iteration_limit=3000 if backend == "pyvrp" else None,
    )
    assert solution.backend == backend
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)
