"""Progress of a running solve (engine.progress): improving updates with intermediate solutions."""

from __future__ import annotations

import itertools
import random

import pytest

from engine.model import (
    BreakRequest,
    LatLng,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from engine.options import SearchMode, SolveOptions
from engine.progress import SolveProgress
from engine.solution import Solution, SolveStatus
from engine.solve import solve
from tests.checker import check_solution


def windowed_model(n: int = 40, seed: int = 3) -> ShipmentModel:
    """Deliveries with time windows, optional ones, capacities and a break per vehicle."""
    rng = random.Random(seed)
    depot = LatLng(48.85, 2.35)
    shipments = []
    for i in range(n):
        start = rng.uniform(0, 20_000)
        shipments.append(
            Shipment(
                deliveries=(
                    VisitRequest(
                        arrival_location=LatLng(
                            48.8 + rng.random() * 0.1, 2.3 + rng.random() * 0.1
                        ),
                        time_windows=(TimeWindow(start, start + 7_200.0),),
                        duration_s=300.0,
                    ),
                ),
                load_demands={"boxes": 1},
                penalty_cost=5_000.0 if i % 5 == 0 else None,
                label=f"s{i}",
            )
        )
    vehicle = Vehicle(
        start_location=depot,
        end_location=depot,
        load_limits={"boxes": n // 3 + 2},
        cost_per_kilometer=1.0,
        cost_per_hour=10.0,
        break_requests=(BreakRequest(10_000.0, 14_000.0, 1_800.0),),
    )
    return ShipmentModel(
        shipments=tuple(shipments), vehicles=(vehicle,) * 4, global_end_time=40_000.0
    )


def test_updates_improve_and_intermediate_solutions_are_feasible() -> None:
    model = windowed_model()
    updates: list[SolveProgress] = []
    # a solution limit, not a clock: the same search whatever the load (OR-Tools: solutions)
    options = SolveOptions(time_limit_s=120.0, iteration_limit=40)
    final = solve(model, options, on_update=updates.append, update_solutions_every_s=0.0)
    assert len(updates) >= 2
    costs = [u.cost for u in updates]
    assert all(b < a for a, b in itertools.pairwise(costs)), costs
    assert [u.solutions for u in updates] == sorted(u.solutions for u in updates)
    for update in updates:
        solution = update.solution
        assert solution is not None  # every_s=0: each update is evaluated
        assert solution.status is SolveStatus.INTERRUPTED
        check_solution(model, solution)
        assert update.used_vehicles == solution.metrics.used_vehicle_count
        assert update.skipped_shipments == len(solution.skipped_shipments)
    check_solution(model, final)
    assert final.metrics.total_cost <= updates[0].solution.metrics.total_cost + 1e-6  # type: ignore[union-attr]
    last = updates[-1].solution
    assert last is not None

    # The last update is the final solution; its schedule may still move (OR-Tools fixes
    # the times of the returned solution once the search ends), its routes and cost may not.
    def order(solution: Solution) -> list[list[tuple[int, bool]]]:
        return [[(v.shipment_index, v.is_pickup) for v in r.visits] for r in solution.routes]

    assert order(last) == order(final)
    assert last.metrics.total_cost == pytest.approx(final.metrics.total_cost)


def test_solutions_are_throttled() -> None:
    model = windowed_model()
    updates: list[SolveProgress] = []
    options = SolveOptions(time_limit_s=1.5, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME)
    solve(model, options, on_update=updates.append, update_solutions_every_s=60.0)
    assert updates[0].solution is not None  # the first one always is
    assert all(u.solution is None for u in updates[1:])
    assert all(u.used_vehicles >= 1 and u.skipped_shipments >= 0 for u in updates)
