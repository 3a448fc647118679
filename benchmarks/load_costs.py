"""Load-dependent costs (issue 15): what the exact search gains over ignoring them, and its time.

    python -m benchmarks.load_costs --orders 60 --vans 4 --time-limit 10 --seeds 3

Per seed, a generated day around a Paris depot (deliveries of 1-5 boxes, a few pickup-and-delivery
pairs, vans of ``4 * orders / vans`` boxes with a cost per kilometer and per hour; geodesic
travel at 10 m/s), every van with ``load_limits["boxes"].cost_per_kilometer`` (threshold 3,
0.05 below, 0.5 above per box and km). Compared, ``--time-limit`` seconds each, with
``CONSUME_ALL_AVAILABLE_TIME`` on OR-Tools:

1. the routes of a search that ignores the load costs, evaluated with them
   (``refresh_details_routes``): what a solver without load costs would cost;
2. the exact search (OR-Tools with the load costs in its objective).

Every solution goes through the independent checker (which recomputes the load costs).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time

from engine import LatLng, Shipment, ShipmentModel, SolveOptions, Vehicle, solve
from engine.model import InjectedRoute, InjectedVisit, LoadCost, VisitRequest
from engine.options import SearchMode
from engine.solution import Solution
from tests.checker import check_solution

DEPOT = LatLng(48.85, 2.35)
RATE = LoadCost(
    load_threshold=3, cost_per_unit_below_threshold=0.05, cost_per_unit_above_threshold=0.5
)
KEY = "model.vehicles.load_limits.cost_per_kilometer"


def day(orders: int, vans: int, seed: int) -> ShipmentModel:
    rng = random.Random(seed)

    def point() -> VisitRequest:
        at = LatLng(48.8 + rng.random() * 0.1, 2.3 + rng.random() * 0.1)
        return VisitRequest(arrival_location=at, duration_s=120.0)

    shipments = [
        Shipment(deliveries=(point(),), load_demands={"boxes": rng.randint(1, 5)})
        for _ in range(orders)
    ]
    shipments += [
        Shipment(pickups=(point(),), deliveries=(point(),), load_demands={"boxes": 1})
        for _ in range(orders // 10)
    ]
    vehicle = Vehicle(
        start_location=DEPOT,
        end_location=DEPOT,
        load_limits={"boxes": 4 * orders // vans},
        cost_per_kilometer=1.0,
        cost_per_hour=5.0,
        fixed_cost=10.0,
        load_costs_per_kilometer={"boxes": RATE},
    )
    return ShipmentModel(shipments=tuple(shipments), vehicles=(vehicle,) * vans)


def as_injected(solution: Solution) -> tuple[InjectedRoute, ...]:
    return tuple(
        InjectedRoute(
            vehicle_index=r.vehicle_index,
            visits=tuple(
                InjectedVisit(
                    shipment_index=v.shipment_index,
                    is_pickup=v.is_pickup,
                    visit_request_index=v.visit_request_index,
                )
                for v in r.visits
            ),
        )
        for r in solution.routes
    )


def checked(model: ShipmentModel, options: SolveOptions) -> tuple[Solution, float]:
    started = time.monotonic()
    solution = solve(model, options)
    elapsed = time.monotonic() - started
    check_solution(model, solution)
    return solution, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=60)
    parser.add_argument("--vans", type=int, default=4)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    options = SolveOptions(
        time_limit_s=args.time_limit,
        search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
        backend="ortools",
    )
    print(
        "| seed | ignoring load costs: total | its load cost | exact search: total | its load cost "
        "| gain | skipped | exact solve |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for seed in range(1, args.seeds + 1):
        model = day(args.orders, args.vans, seed)
        plain = dataclasses.replace(
            model,
            vehicles=tuple(
                dataclasses.replace(v, load_costs_per_kilometer={}) for v in model.vehicles
            ),
        )
        ignoring, _ = checked(plain, options)
        evaluated, _ = checked(
            dataclasses.replace(model, refresh_details_routes=as_injected(ignoring)), options
        )
        exact, elapsed = checked(model, options)
        before, after = evaluated.metrics.total_cost, exact.metrics.total_cost
        print(
            f"| {seed} | {before:.1f} | {evaluated.metrics.costs.get(KEY, 0.0):.1f} "
            f"| {after:.1f} | {exact.metrics.costs.get(KEY, 0.0):.1f} "
            f"| {100 * (before - after) / before:.1f} % | {len(exact.skipped_shipments)} "
            f"| {elapsed:.1f} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
