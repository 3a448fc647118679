"""Re-optimisation during the day: a carrier's mid-day replan, measured.

    python -m benchmarks.reopt --orders 200 --vans 10 --new 20 --cancel 10 --time-limit 10

Per seed, a generated day around a Paris depot (deliveries with two-hour windows over the
day, 5 min service, capacities; geodesic travel at 10 m/s):

1. the morning plan: ``auto``, ``--time-limit`` seconds;
2. "now" is when half of the planned visits have started; ``--cancel`` orders not yet served
   are cancelled (``Shipment.ignore``), ``--new`` orders come in, added in front of the list
   (every index moves: routes are matched by labels);
3. the afternoon plan: the morning routes as ``injected_solution_constraint``, everything before
   "now" fully constrained, ``RELAX_ALL_AFTER_THRESHOLD`` from "now" on, same time limit;
4. for comparison, the same afternoon model without the constraint, by ``auto`` (PyVRP) and by
   OR-Tools (a free replan that would move visits already made: not a plan a carrier can
   drive; against OR-Tools' own, it says what keeping them costs);
5. ``refresh_details_routes`` of the afternoon plan (no search).

Every solution goes through the independent checker (which verifies the kept visits). The
table gives the visits kept, the new orders served, the costs and the times.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time

from engine import LatLng, Shipment, ShipmentModel, SolveOptions, TimeWindow, Vehicle, solve
from engine.model import (
    ConstraintRelaxation,
    InjectedRoute,
    InjectedSolutionConstraint,
    InjectedVisit,
    Relaxation,
    RelaxationLevel,
    VisitRequest,
)
from engine.options import SearchMode
from engine.solution import Solution
from tests.checker import check_solution

DAY = 86400.0


def day_model(orders: int, vans: int, seed: int, prefix: str = "order") -> list[Shipment]:
    rng = random.Random(seed)
    out = []
    for i in range(orders):
        start = rng.uniform(0, 8 * 3600)
        out.append(
            Shipment(
                deliveries=(
                    VisitRequest(
                        arrival_location=LatLng(
                            48.8 + rng.random() * 0.1, 2.3 + rng.random() * 0.1
                        ),
                        duration_s=300,
                        time_windows=(TimeWindow(start_time=start, end_time=start + 2 * 3600),),
                    ),
                ),
                load_demands={"boxes": rng.randint(1, 3)},
                label=f"{prefix}-{seed}-{i}",
            )
        )
    return out


def fleet(vans: int, orders: int) -> tuple[Vehicle, ...]:
    depot = LatLng(48.85, 2.35)
    return tuple(
        Vehicle(
            start_location=depot,
            end_location=depot,
            start_time_windows=(TimeWindow(start_time=0.0, end_time=2 * 3600),),
            end_time_windows=(TimeWindow(end_time=12 * 3600),),
            load_limits={"boxes": 4 * orders // vans + 6},
            cost_per_kilometer=1.0,
            cost_per_hour=20.0,
            fixed_cost=50.0,
            label=f"van-{k}",
        )
        for k in range(vans)
    )


def _injected(solution: Solution) -> tuple[InjectedRoute, ...]:
    return tuple(
        InjectedRoute(
            vehicle_index=r.vehicle_index,
            vehicle_label=r.vehicle_label,
            vehicle_start_time=r.vehicle_start_time,
            vehicle_end_time=r.vehicle_end_time,
            visits=tuple(
                InjectedVisit(
                    v.shipment_index,
                    v.is_pickup,
                    v.visit_request_index,
                    v.start_time,
                    shipment_label=v.shipment_label,
                )
                for v in r.visits
            ),
            breaks=tuple((b.start_time, b.duration_s) for b in r.breaks),
        )
        for r in solution.routes
        if r.visits
    )


def _solve(model: ShipmentModel, limit: float, backend: str = "auto") -> tuple[Solution, float]:
    options = SolveOptions(
        time_limit_s=limit,
        search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
        solver_processes=1,
        backend=backend,
    )
    started = time.monotonic()
    solution = solve(model, options)
    elapsed = time.monotonic() - started
    check_solution(model, solution)
    return solution, elapsed


@dataclasses.dataclass
class Row:
    seed: int
    kept: int
    kept_ok: int
    new_served: int
    morning_cost: float
    afternoon_cost: float
    free_cost: float
    free_ortools_cost: float
    afternoon_s: float
    refresh_s: float
    backend: str


def run_seed(args: argparse.Namespace, seed: int) -> Row:
    orders = day_model(args.orders, args.vans, seed)
    vehicles = fleet(args.vans, args.orders + args.new)
    morning_model = ShipmentModel(shipments=tuple(orders), vehicles=vehicles, global_end_time=DAY)
    morning, _ = _solve(morning_model, args.time_limit)
    starts = sorted(v.start_time for r in morning.routes for v in r.visits)
    now = starts[len(starts) // 2]
    done = {
        v.shipment_label: (r.vehicle_index, v.start_time)
        for r in morning.routes
        for v in r.visits
        if v.start_time < now
    }
    later = [v.shipment_label for r in morning.routes for v in r.visits if v.start_time >= now]
    cancelled = set(random.Random(seed).sample(later, min(args.cancel, len(later))))
    new = day_model(args.new, args.vans, seed + 1000, prefix="new")
    new = [
        dataclasses.replace(
            s,
            deliveries=(
                dataclasses.replace(
                    s.deliveries[0],
                    time_windows=(TimeWindow(start_time=now, end_time=now + 4 * 3600),),
                ),
            ),
        )
        for s in new
    ]
    shipments = tuple(new) + tuple(
        dataclasses.replace(s, ignore=s.label in cancelled) for s in orders
    )
    free_model = ShipmentModel(shipments=shipments, vehicles=vehicles, global_end_time=DAY)
    constraint = InjectedSolutionConstraint(
        routes=_injected(morning),
        constraint_relaxations=(
            ConstraintRelaxation(
                (Relaxation(RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD, threshold_time=now),)
            ),
        ),
    )
    afternoon_model = dataclasses.replace(
        free_model,
        injected_solution_constraint=constraint,
        interpret_injected_solutions_using_labels=True,
    )
    afternoon, afternoon_s = _solve(afternoon_model, args.time_limit)
    free, _ = _solve(free_model, args.time_limit)
    free_ortools, _ = _solve(free_model, args.time_limit, backend="ortools")
    served = {
        v.shipment_label: (r.vehicle_index, v.start_time)
        for r in afternoon.routes
        for v in r.visits
    }
    kept_ok = sum(1 for label, where in done.items() if served.get(label) == where)
    refresh_model = dataclasses.replace(free_model, refresh_details_routes=_injected(afternoon))
    refreshed, refresh_s = _solve(refresh_model, args.time_limit)
    assert refreshed.metrics.total_cost == afternoon.metrics.total_cost or abs(
        refreshed.metrics.total_cost - afternoon.metrics.total_cost
    ) < 1e-6 * max(1.0, afternoon.metrics.total_cost)
    return Row(
        seed=seed,
        kept=len(done),
        kept_ok=kept_ok,
        new_served=sum(1 for s in new if s.label in served),
        morning_cost=morning.metrics.total_cost,
        afternoon_cost=afternoon.metrics.total_cost,
        free_cost=free.metrics.total_cost,
        free_ortools_cost=free_ortools.metrics.total_cost,
        afternoon_s=afternoon_s,
        refresh_s=refresh_s,
        backend=afternoon.backend,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--vans", type=int, default=10)
    parser.add_argument("--new", type=int, default=20)
    parser.add_argument("--cancel", type=int, default=10)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = [run_seed(args, seed) for seed in range(1, args.seeds + 1)]
    print(
        "| seed | visits before now | kept (vehicle, order, time) | new served | morning cost "
        "| afternoon cost | free replan (auto) | free replan (ortools) | afternoon / free "
        "(ortools) | afternoon solve | refresh | backend |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r.seed} | {r.kept} | {r.kept_ok} | {r.new_served}/{args.new} | "
            f"{r.morning_cost:.1f} | {r.afternoon_cost:.1f} | {r.free_cost:.1f} | "
            f"{r.free_ortools_cost:.1f} | {r.afternoon_cost / r.free_ortools_cost:.3f} | "
            f"{r.afternoon_s:.1f} s | {r.refresh_s:.2f} s | "
            f"{r.backend} |"
        )
    for name, attr in (("auto", "free_cost"), ("ortools", "free_ortools_cost")):
        ratio = statistics.geometric_mean([r.afternoon_cost / getattr(r, attr) for r in rows])
        print(f"\ngeometric mean afternoon / free replan ({name}): {ratio:.3f}")
    return 0 if all(r.kept == r.kept_ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
