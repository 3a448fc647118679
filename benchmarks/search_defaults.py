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

from benchmarks.instances import DEFAULT_DATA_DIR, Instance, read_cvrp, read_solomon, solomon_bks
from engine import SolveOptions, solve
from engine.options import SearchMode

CVRP = ["X-n101-k25", "X-n157-k13", "X-n204-k19"]
SOLOMON = ["C101", "R102", "RC105", "R202"]
STRATEGIES = [
    "PATH_CHEAPEST_ARC",
    "SAVINGS",
    "PARALLEL_CHEAPEST_INSERTION",
    "LOCAL_CHEAPEST_INSERTION",
]


def load(data_dir: Path) -> list[Instance]:
    bks = solomon_bks(data_dir)
    out = [read_cvrp(data_dir / "vrplib" / "CVRP" / f"{n}.vrp") for n in CVRP]
    out += [read_solomon(data_dir / "solomon" / f"{n}.vrp", bks=bks[n]) for n in SOLOMON]
    return out


def run_one(args: tuple[Path, str, str, str, float]) -> tuple[str, str, str, float, float, int]:
    from tests.checker import check_solution

    data_dir, name, fss, lsm, limit = args
    inst = next(i for i in load(data_dir) if i.name == name)
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
    gap = (
        (cost - inst.bks) / inst.bks * 100
        if inst.bks and not sol.skipped_shipments
        else float("nan")
    )
    return name, fss, lsm, gap, elapsed, len(sol.skipped_shipments)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    names = [i.name for i in load(args.data_dir)]
    jobs = [
        (args.data_dir, n, fss, lsm, args.time_limit)
        for lsm in ("GUIDED_LOCAL_SEARCH", "GREEDY_DESCENT")
        for fss in STRATEGIES
        for n in names
    ]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_one, jobs))
    print(f"time limit {args.time_limit:g} s, gap to BKS in %, (skipped shipments) where any\n")
    for lsm in ("GUIDED_LOCAL_SEARCH", "GREEDY_DESCENT"):
        print(f"### {lsm}\n")
        print("| strategy | " + " | ".join(names) + " | mean gap | mean time s |")
        print("|---" * (len(names) + 3) + "|")
        for fss in STRATEGIES:
            rows = {r[0]: r for r in results if r[1] == fss and r[2] == lsm}
            cells = [
                f"{rows[n][3]:.2f}" + (f" ({rows[n][5]})" if rows[n][5] else "") for n in names
            ]
            gaps = [rows[n][3] for n in names]
            times = [rows[n][4] for n in names]
            print(
                f"| {fss} | "
                + " | ".join(cells)
                + f" | {statistics.fmean(gaps):.2f} | {statistics.fmean(times):.1f} |"
            )
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
