"""OR-Tools cold versus warm started from PyVRP, on models only OR-Tools can express.

    python -m benchmarks.warmstart --set SOLOMON --time-limit 10 --feature breaks

Takes instances of a VRPTW set and adds a feature PyVRP lacks, so that ``auto`` runs OR-Tools:

- ``breaks``: every vehicle takes a break of 5 % of the half horizon, starting within 15 % of the
  middle of its working time;
- ``breaks-allowed``: the breaks, and every fifth shipment may use only the first half of the
  fleet (allowed vehicles alone go to PyVRP since it expresses them).

Each instance is solved twice at the same time limit, ``warm_start`` off and on (engine
defaults otherwise), one solve at a time; both solutions are verified by the independent
checker. Costs are in the instance's units; there is no best-known solution for these
variants, so the table gives the ratio warm / cold (below 1: the warm start is better).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

from benchmarks.instances import (
    DEFAULT_DATA_DIR,
    SETS,
    data_dir_or_exit,
    list_instances,
    read_vrp,
    to_model,
)
from engine import SearchMode, ShipmentModel, SolveOptions, solve
from engine.model import BreakRequest
from tests.checker import check_solution

FEATURES = ("breaks", "breaks-allowed")


def with_breaks(model: ShipmentModel) -> ShipmentModel:
    g0, g1 = model.global_start_time, model.global_end_time
    vehicles = []
    for v in model.vehicles:
        close = min((w.end_time for w in v.end_time_windows if w.end_time is not None), default=g1)
        mid = (g0 + min(close, g1)) / 2
        half = mid - g0
        rule = BreakRequest(mid - 0.15 * half, mid + 0.15 * half, 0.05 * half)
        vehicles.append(dataclasses.replace(v, break_requests=(rule,)))
    return dataclasses.replace(model, vehicles=tuple(vehicles))


def with_allowed(model: ShipmentModel) -> ShipmentModel:
    half = tuple(range(max(1, len(model.vehicles) // 2)))
    shipments = tuple(
        dataclasses.replace(s, allowed_vehicle_indices=half) if i % 5 == 0 else s
        for i, s in enumerate(model.shipments)
    )
    return dataclasses.replace(model, shipments=shipments)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="SOLOMON", type=str.upper, choices=["SOLOMON", "GH200"])
    parser.add_argument("--feature", default="breaks", choices=FEATURES)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--instances", nargs="*", default=None)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    data_dir = data_dir_or_exit(args.data_dir)
    paths = list_instances(data_dir, args.set, names=args.instances)
    change = with_breaks if args.feature == "breaks" else (lambda m: with_allowed(with_breaks(m)))
    print(f"# {args.set} + {args.feature}, {args.time_limit:g} s per solve, one solve at a time")
    print("| instance | cold cost | cold veh | warm cost | warm veh | warm / cold |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for path in paths:
        data = read_vrp(path, SETS[args.set].name)
        model = change(to_model(data))
        row = []
        for warm in (False, True):
            options = SolveOptions(
                time_limit_s=args.time_limit,
                search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
                warm_start=warm,
            )
            started = time.monotonic()
            solution = solve(model, options)
            check_solution(model, solution)  # raises listing every violated rule
            assert solution.backend == "ortools", solution.backend_reason
            row.append(
                (
                    solution.metrics.total_cost / data.scale,
                    solution.metrics.used_vehicle_count,
                    time.monotonic() - started,
                )
            )
        (cold, cold_v, _), (warm_cost, warm_v, _) = row
        ratios.append(warm_cost / cold)
        print(
            f"| {data.name} | {cold:.1f} | {cold_v} | {warm_cost:.1f} | {warm_v} | "
            f"{warm_cost / cold:.3f} |",
            flush=True,
        )
    if ratios:
        print(
            f"\nwarm / cold over {len(ratios)} instances: mean {statistics.fmean(ratios):.3f}, "
            f"best {min(ratios):.3f}, worst {max(ratios):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
