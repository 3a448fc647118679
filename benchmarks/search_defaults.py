"""Measure OR-Tools first-solution strategies and metaheuristics to choose the defaults.

    python -m benchmarks.search_defaults --time-limit 10 --workers 2

Runs each (strategy, metaheuristic) on a few CVRP X and Solomon VRPTW instances from the shared
data folder, one single-threaded solve per process, and prints a Markdown table of the gap to the
best-known solution (%, instance convention) per combination. Every solution is checked with the
independent checker of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.instances import (
    DEFAULT_DATA_DIR,
    Instance,
    random_pdp,
    read_cvrp,
    read_solomon,
    solomon_bks,
)
from engine import SolveOptions, solve
from engine.options import SearchMode

CVRP = ["X-n101-k25", "X-n157-k13", "X-n204-k19"]
SOLOMON = ["C101", "R102", "RC105", "R202"]
PDP_SEEDS = [1, 2, 3]
STRATEGIES = [
    "PATH_CHEAPEST_ARC",
    "SAVINGS",
    "PARALLEL_CHEAPEST_INSERTION",
    "LOCAL_CHEAPEST_INSERTION",
]
METAHEURISTICS = ["GUIDED_LOCAL_SEARCH", "GREEDY_DESCENT"]


def load(instance_set: str, data_dir: Path) -> list[Instance]:
    """``standard``: CVRP X and Solomon from ``data_dir``; ``pdp``: random pickup-and-delivery."""
    if instance_set == "pdp":
        return [random_pdp(seed) for seed in PDP_SEEDS]
    bks = solomon_bks(data_dir)
    out = [read_cvrp(data_dir / "vrplib" / "CVRP" / f"{n}.vrp") for n in CVRP]
    out += [read_solomon(data_dir / "solomon" / f"{n}.vrp", bks=bks[n]) for n in SOLOMON]
    return out


Job = tuple[str, Path, str, str, str, float]
Result = tuple[str, str, str, float, float, int]


def run_one(job: Job) -> Result:
    """Solve one instance with one (strategy, metaheuristic); return its checked cost."""
    from tests.checker import check_solution

    instance_set, data_dir, name, fss, lsm, limit = job
    inst = next(i for i in load(instance_set, data_dir) if i.name == name)
    mode = (
        SearchMode.RETURN_FAST if lsm == "GREEDY_DESCENT" else SearchMode.CONSUME_ALL_AVAILABLE_TIME
    )
    options = SolveOptions(
        time_limit_s=limit,
        search_mode=mode,
        first_solution_strategy=fss,
        local_search_metaheuristic=lsm,
    )
    started = time.monotonic()
    sol = solve(inst.model, options)
    elapsed = time.monotonic() - started
    check_solution(inst.model, sol)
    cost = sol.metrics.total_cost / inst.cost_divisor
    return name, fss, lsm, cost, elapsed, len(sol.skipped_shipments)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=["standard", "pdp"], default="standard")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    instances = load(args.set, args.data_dir)
    names = [i.name for i in instances]
    jobs: list[Job] = [
        (args.set, args.data_dir, n, fss, lsm, args.time_limit)
        for lsm in METAHEURISTICS
        for fss in STRATEGIES
        for n in names
    ]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_one, jobs))
    # Reference per instance: its best-known solution, else the best cost of this run.
    reference = {
        i.name: i.bks or min(r[3] for r in results if r[0] == i.name and r[5] == 0)
        for i in instances
    }
    what = "best-known solution" if args.set == "standard" else "best cost found in this run"
    print(
        f"time limit {args.time_limit:g} s; % above the {what}; "
        "— (n): n shipments skipped, no comparable cost\n"
    )
    for lsm in METAHEURISTICS:
        print(f"### {lsm}\n")
        print("| strategy | " + " | ".join(names) + " | mean gap | mean time s |")
        print("|---" * (len(names) + 3) + "|")
        for fss in STRATEGIES:
            rows = {r[0]: r for r in results if r[1] == fss and r[2] == lsm}
            gaps = {
                n: (rows[n][3] - reference[n]) / reference[n] * 100
                for n in names
                if rows[n][5] == 0
            }
            cells = [f"{gaps[n]:.2f}" if n in gaps else f"— ({rows[n][5]})" for n in names]
            mean_gap = f"{statistics.fmean(gaps.values()):.2f}" if len(gaps) == len(names) else "—"
            mean_time = statistics.fmean(rows[n][4] for n in names)
            print(f"| {fss} | " + " | ".join(cells) + f" | {mean_gap} | {mean_time:.1f} |")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
