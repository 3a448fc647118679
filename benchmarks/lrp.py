"""Capacitated location-routing benchmark (Prins, Prodhon & Wolfler Calvo 2006).

``python -m benchmarks.lrp [--data-dir DIR] [--time-limit 60] [--instances NAME,...]`` reads the
instances of ``DIR/lrp_prodhon`` (format: that folder's README.md), runs
:func:`planning.search_layouts` on each (one at a time, within the time limit: screening,
routing of the candidate layouts, local search over layouts, final routing of the best), and
writes the gap to the best-known total cost (``bks.csv``) as CSV, JSON and Markdown.

Convention of the instances: Euclidean distance × 100, truncated to an integer. The study's
travel matrix carries those integers as metres and the vehicles cost 1000 per km, so the
engine's cost equals the instance's: opening costs + route fixed costs + distance.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.instances import DEFAULT_DATA_DIR
from planning import (
    CandidateDepot,
    Day,
    LayoutEvaluation,
    LayoutOptions,
    LayoutSearch,
    LayoutStudy,
    Order,
    SearchResult,
    TravelMatrix,
    VehicleType,
    search_layouts,
)

LOAD = "demand"


@dataclass(frozen=True)
class LrpInstance:
    name: str
    study: LayoutStudy
    bks: float | None


def read_prodhon(path: Path, bks: float | None = None) -> LrpInstance:
    """One instance file as a layout study with a search for the cheapest layout."""
    tokens = path.read_text().split()
    pos = 0

    def take(count: int) -> list[float]:
        nonlocal pos
        if pos + count > len(tokens):
            raise ValueError(f"{path}: ends early (token {pos + count} of {len(tokens)})")
        values = [float(t) for t in tokens[pos : pos + count]]
        pos += count
        return values

    n, m = (int(v) for v in take(2))
    depot_xy = np.array(take(2 * m)).reshape(m, 2)
    customer_xy = np.array(take(2 * n)).reshape(n, 2)
    (capacity,) = take(1)
    depot_caps = take(m)
    demands = take(n)
    opening = take(m)
    (route_cost,) = take(1)
    (real,) = take(1)
    if real != 0:
        raise ValueError(f"{path}: only integer-cost instances (last value 0) are supported")
    xy = np.vstack([depot_xy, customer_xy])
    diff = xy[:, None, :] - xy[None, :, :]
    dist = np.floor(np.sqrt((diff**2).sum(axis=2)) * 100.0)
    tags = tuple([f"d{j}" for j in range(m)] + [f"c{i}" for i in range(n)])
    fleet = (
        VehicleType(
            "vehicle", None, {LOAD: int(capacity)}, fixed_cost=route_cost, cost_per_kilometer=1000
        ),
    )
    depots = tuple(
        CandidateDepot(
            f"d{j}", tag=f"d{j}", capacity={LOAD: int(depot_caps[j])}, opening_cost=opening[j]
        )
        for j in range(m)
    )
    orders = tuple(Order(f"c{i}", tag=f"c{i}", demands={LOAD: int(demands[i])}) for i in range(n))
    study = LayoutStudy(
        days=(Day("day", orders),),
        depots=depots,
        fleet=fleet,
        search=LayoutSearch("min_cost"),
        matrix=TravelMatrix(tags, np.zeros_like(dist), dist),
        label=path.stem,
    )
    return LrpInstance(path.stem, study, bks)


def read_bks(folder: Path) -> dict[str, float]:
    with (folder / "bks.csv").open() as f:
        return {row["instance"]: float(row["bks_cost"]) for row in csv.DictReader(f)}


def list_instances(folder: Path) -> list[LrpInstance]:
    bks = read_bks(folder)
    return [read_prodhon(p, bks.get(p.stem)) for p in sorted(folder.glob("coord*.dat"))]


def lrp_options(time_limit_s: float, seed: int = 0) -> tuple[LayoutOptions, float]:
    """Options that fit one instance's search in ``time_limit_s``, and the local-search budget:
    about 8 % for each routed candidate, 25 % for the final routing of the best layout."""
    per_layout = max(0.08 * time_limit_s, 0.5)
    options = LayoutOptions(
        time_limit_s=per_layout,
        final_time_limit_s=0.25 * time_limit_s,
        seed=seed,
        candidates=3,
        neighbours=2,
        screening_time_limit_s=max(0.02 * time_limit_s, 0.5),
    )
    return options, 0.93 * time_limit_s


def verify(instance: LrpInstance, ev: LayoutEvaluation) -> tuple[float, list[str]]:
    """The cost of ``ev`` recomputed from its routes with the instance's own data (matrix,
    opening and route costs), and every broken rule: a customer not served exactly once, a
    route over the vehicle capacity, a depot over its capacity, a route from a closed depot."""
    study = instance.study
    assert study.matrix is not None
    index = {tag: k for k, tag in enumerate(study.matrix.tags)}
    dist = study.matrix.distances_m
    depots = {d.label: d for d in study.depots}
    fleet = study.fleet[0]
    orders = study.days[0].orders
    problems: list[str] = []
    cost = sum(depots[name].opening_cost for name in ev.layout.depots)
    served = [0] * len(orders)
    depot_load: dict[str, int] = {}
    for part in ev.parts:
        for route in part.solution.routes:
            if not route.visits:
                continue
            depot = part.vehicle_depot[route.vehicle_index]
            if depot not in ev.layout.depots:
                problems.append(f"a route from closed depot {depot}")
            customers = [part.order_index[v.shipment_index] for v in route.visits]
            stops = [index[depot], *(index[orders[i].tag] for i in customers), index[depot]]
            cost += fleet.fixed_cost + sum(dist[a, b] for a, b in itertools.pairwise(stops))
            load = sum(orders[i].demands[LOAD] for i in customers)
            if load > fleet.capacities[LOAD]:
                problems.append(f"a route from {depot} carries {load}")
            depot_load[depot] = depot_load.get(depot, 0) + load
            for i in customers:
                served[i] += 1
    problems += [
        f"customer {orders[i].label} served {n} times" for i, n in enumerate(served) if n != 1
    ]
    problems += [
        f"depot {name} ships {load} > {depots[name].capacity[LOAD]}"
        for name, load in depot_load.items()
        if load > depots[name].capacity[LOAD]
    ]
    return cost, problems


def run_instance(instance: LrpInstance, time_limit_s: float, seed: int = 0) -> dict[str, Any]:
    options, budget = lrp_options(time_limit_s, seed)
    started = time.monotonic()
    result: SearchResult = search_layouts(instance.study, options, time_budget_s=budget)
    elapsed = time.monotonic() - started
    best = result.best
    assert best is not None  # nothing stops this search early
    cost, problems = verify(instance, best)
    if abs(cost - best.kpis.total_cost) > 1e-6 * max(1.0, cost):
        problems.append(f"reported cost {best.kpis.total_cost} != recomputed {cost}")
    gap = 100.0 * (cost - instance.bks) / instance.bks if instance.bks else None
    return {
        "instance": instance.name,
        "customers": len(instance.study.days[0].orders),
        "depots": len(instance.study.depots),
        "bks": instance.bks,
        "cost": round(cost, 3),
        "gap_pct": None if gap is None else round(gap, 3),
        "open": " ".join(best.layout.depots),
        "routes": best.kpis.vehicles_used,
        "opening_cost": best.kpis.opening_cost,
        "feasible": best.feasible and not problems,
        "problems": "; ".join(problems),
        "strategy": best.strategy[0],
        "layouts_routed": len(result.evaluations),
        "time_s": round(elapsed, 2),
    }


def markdown(rows: list[dict[str, Any]], time_limit_s: float) -> str:
    lines = [
        "| instance | n | m | BKS | routeopt | gap % | open depots | routes | layouts routed | s |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        gap = "" if r["gap_pct"] is None else f"{r['gap_pct']:.2f}"
        lines.append(
            f"| {r['instance']} | {r['customers']} | {r['depots']} | {r['bks']:.0f} | "
            f"{r['cost']:.0f}{'' if r['feasible'] else ' (infeasible)'} | {gap} | {r['open']} | "
            f"{r['routes']} | {r['layouts_routed']} | {r['time_s']:.1f} |"
        )
    gaps = [r["gap_pct"] for r in rows if r["gap_pct"] is not None]
    if gaps:
        lines.append(
            f"\nMean gap {np.mean(gaps):.2f} % (max {max(gaps):.2f} %) over {len(gaps)} instances, "
            f"time limit {time_limit_s:g} s per instance, one instance at a time."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per instance")
    parser.add_argument("--instances", default="", help="comma-separated names (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/lrp"))
    args = parser.parse_args(argv)
    folder = args.data_dir / "lrp_prodhon"
    if not folder.is_dir():
        print(f"no LRP instances at {folder} (--data-dir or ROUTEOPT_DATA_DIR)", file=sys.stderr)
        return 2
    instances = list_instances(folder)
    if args.instances:
        wanted = set(args.instances.split(","))
        instances = [i for i in instances if i.name in wanted]
    rows = []
    for instance in instances:
        row = run_instance(instance, args.time_limit, args.seed)
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "lrp.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["instance"])
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "lrp.json").write_text(json.dumps(rows, indent=1))
    text = markdown(rows, args.time_limit)
    (args.out / "lrp.md").write_text(text)
    print(text)
    print(f"{platform.node()} {platform.processor()} python {platform.python_version()}")
    return 0 if all(math.isfinite(r["cost"]) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
