"""Route quality on feature variants: what a carrier's real requests cost, against the peers.

    python -m benchmarks.variants --set SOLOMON --instances C101 R102 RC105 R202 C206 \\
        --variants plain breaks allowed windows2 soft mixed --time-limit 10
    python -m benchmarks.variants --set LILIM --max-n 100 --time-limit 10

A plain instance (Solomon, Gehring–Homberger 200, or Li & Lim pickup-and-delivery) is turned into
a variant by a deterministic rule (:mod:`benchmarks.variant_rules`), in the engine's model, then
solved by each solver one solve at a time (a quiet machine: nothing else running):

- ``plain``: the instance as published;
- ``breaks``: every vehicle takes a break of 5 % of its half working time, starting within
  15 % of the middle of its working time (the rule of ``benchmarks.warmstart``);
- ``shifts``: ``breaks`` with every second vehicle's break window moved earlier by its width
  (two break schedules in one fleet);
- ``allowed``: every fifth shipment may only use the first half of the fleet;
- ``windows2``: every third shipment whose window is at least 10 time units wide gets two
  windows instead of one: its first 40 % and its last 40 % (the middle 20 % is closed);
- ``soft``: every second shipment's window becomes soft (the hard window is the horizon; one
  unit of cost per time unit early or late, the same as one unit of distance);
- ``mixed``: ``breaks`` + ``allowed`` + ``windows2``;
- ``hours`` (a driver-hours rule, Google's ``break_rule.frequency_constraints``): no stretch of
  a route longer than half the vehicle's working day without a break of 2.5 % of it; the
  break (that length) may start anywhere from 10 % to 90 % of the day, so a full-day route
  must take it near the middle and a short one anywhere;
- ``types`` (shipment types): every sixth shipment is ``chilled``, every sixth from the
  fourth ``hazmat``, and the two never share a vehicle (``NOT_PERFORMED_BY_SAME_VEHICLE``);
- ``committed`` (committed stops, Google's ``injected_solution_constraint``): a morning plan
  (the engine's PyVRP backend on the plain instance, one process, seed 0,
  :data:`~benchmarks.variant_rules.COMMIT_ITERATIONS` iterations: the same routes on every
  run) is injected, and the first third of each of its routes (rounded down) is committed:
  those visits stay on their
  vehicle, in their order, first in its route (``RELAX_VISIT_TIMES_AFTER_THRESHOLD`` from visit
  0: their times may move); the rest is free (``RELAX_ALL_AFTER_THRESHOLD`` from the next
  visit on: ``threshold_visit_count`` = committed + 1, Google's rule counting visit j as j + 1).

Solvers: ``routeopt`` (the engine's defaults: ``auto`` backend, a search per core — two here),
``routeopt-p1`` (one process: the one-core comparison), ``routeopt-ortools-p1`` (the engine's
OR-Tools backend alone, one process: OR-Tools as routeopt drives it), ``routeopt-pyvrp-p1`` (the
engine's PyVRP backend alone: PyVRP on what it can express — plain instances, ``windows2``,
allowed vehicles, pickup and delivery; elsewhere not run), ``vroom`` (pyvroom, one thread,
exploration level 5: breaks, skills for allowed vehicles, several windows and shipments; not
soft windows, break frequencies, shipment types or committed stops). On ``hours``, ``types``
and ``committed`` the only peer that expresses the rule is OR-Tools (``routeopt-ortools-p1``).

Every answer is verified by :func:`benchmarks.variant_check.verify` (an independent schedule
check in the model's terms: each visit inside one of its windows, travel and breaks fitting
between visits, loads, pairs, allowed vehicles, break rules and frequencies, shipment type
incompatibilities, committed stops, vehicle windows) on the exact float matrix, and every
routeopt answer also by the test suite's checker (``tests.checker.check_solution``). The table
gives, per variant and solver, the mean distance in instance units, the vehicles, how many
instances were solved feasibly with every shipment served, the ratio to the best peer and the
feature's price (mean of distance on the variant / distance on the plain instance, same solver).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.instances import (
    DEFAULT_DATA_DIR,
    SETS,
    data_dir_or_exit,
    list_instances,
    read_vrp,
    to_model,
)
from benchmarks.quality import routeopt_variant
from benchmarks.variant_check import Event, Schedule, matrix_of, verify
from benchmarks.variant_rules import VARIANTS, variant_model
from engine.model import (
    DurationDistanceMatrix,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)

SOLVERS = ("routeopt", "routeopt-p1", "routeopt-ortools-p1", "routeopt-pyvrp-p1", "vroom")
ORTOOLS_PEER = "routeopt-ortools-p1"
"""The peer of a variant no outside peer expresses (``hours``, ``types``, ``committed``):
OR-Tools alone."""
LILIM_FIXED_COST = 10_000.0
"""Li & Lim rank solutions by vehicles first: a vehicle costs more than any route's distance
(in instance units; scaled by :data:`LILIM_SCALE` like the distances)."""
LILIM_SCALE = 1000.0
"""Matrix units (engine seconds and meters) per Li & Lim unit. The instances' travel times are
unrounded Euclidean distances of 1-100 units; the engine works in whole seconds (durations
rounded up), so at one second per unit every leg would be up to a unit longer and the published
solutions infeasible. At 1000 per unit the rounding is at most 0.001 unit per leg."""


# ------------------------------------------------------------------------------------------
# Li & Lim
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One plain instance in the engine's model: ``scale`` matrix units per instance unit."""

    name: str
    model: ShipmentModel
    scale: float
    bks: float | None = None
    bks_vehicles: int | None = None


def read_lilim(path: Path) -> Case:
    """A Li & Lim PDPTW instance (format: ../shared/data/lilim/SOURCES.md) as shipments with a
    pickup and a delivery; Euclidean travel, unrounded; vehicles cost ``LILIM_FIXED_COST`` each
    so that fewer vehicles come first, as in the published hierarchical objective."""
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    count, capacity = int(lines[0][0]), int(lines[0][1])
    nodes = np.array([[float(x) for x in ln[:9]] for ln in lines[1:]])
    xy = nodes[:, 1:3]
    matrix = LILIM_SCALE * np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    tags = tuple(f"n{i}" for i in range(len(nodes)))

    def visit(i: int) -> VisitRequest:
        return VisitRequest(
            tags=(tags[i],),
            time_windows=(
                TimeWindow(LILIM_SCALE * nodes[i, 4].item(), LILIM_SCALE * nodes[i, 5].item()),
            ),
            duration_s=LILIM_SCALE * nodes[i, 6].item(),
        )

    shipments = []
    for i in range(1, len(nodes)):
        if int(nodes[i, 7]) == 0:  # a pickup: its delivery is column 8
            d = int(nodes[i, 8])
            shipments.append(
                Shipment(
                    pickups=(visit(i),),
                    deliveries=(visit(d),),
                    load_demands={"demand": int(nodes[i, 3])},
                    label=f"{i}-{d}",
                )
            )
    depot = TimeWindow(LILIM_SCALE * nodes[0, 4].item(), LILIM_SCALE * nodes[0, 5].item())
    vehicle = Vehicle(
        start_tags=(tags[0],),
        end_tags=(tags[0],),
        load_limits={"demand": capacity},
        cost_per_kilometer=1000.0,
        fixed_cost=LILIM_FIXED_COST * LILIM_SCALE,
        start_time_windows=(depot,),
        end_time_windows=(depot,),
    )
    model = ShipmentModel(
        shipments=tuple(shipments),
        vehicles=(vehicle,) * count,
        global_start_time=0.0,
        global_end_time=LILIM_SCALE * nodes[0, 5].item(),
        duration_distance_matrices=(DurationDistanceMatrix(matrix, matrix),),
        duration_distance_matrix_src_tags=tags,
        duration_distance_matrix_dst_tags=tags,
    )
    bks = vehicles = None
    bks_file = path.parent / "bks.csv"
    if bks_file.exists():
        with bks_file.open() as f:
            for row in csv.DictReader(f):
                if row["instance"] == path.stem:
                    bks, vehicles = float(row["distance"]), int(row["routes"])
    return Case(path.stem, model, LILIM_SCALE, bks, vehicles)


def lilim_size(path: Path) -> int:
    """The customers a Li & Lim instance is published as: 100 (lc101), 200 (lc1_2_3), ..."""
    parts = path.stem.split("_")
    return 100 * int(parts[1]) if len(parts) == 3 else 100


def cases(args: argparse.Namespace) -> list[Case]:
    if args.set == "LILIM":
        folder = args.data_dir / "lilim"
        if not folder.is_dir():
            raise SystemExit(f"{folder} is missing (see ../shared/README.md)")
        paths = sorted(folder.glob("*.txt"))
        if args.instances:
            paths = [p for p in paths if p.stem in set(args.instances)]
        return [read_lilim(p) for p in paths if args.max_n is None or lilim_size(p) <= args.max_n]
    data_dir = data_dir_or_exit(args.data_dir)
    out = []
    for path in list_instances(data_dir, args.set, names=args.instances, max_n=args.max_n):
        data = read_vrp(path, SETS[args.set].name)
        out.append(Case(data.name, to_model(data), data.scale, data.bks, data.bks_vehicles))
    return out


# ------------------------------------------------------------------------------------------
# Solvers
# ------------------------------------------------------------------------------------------


class UnsupportedError(Exception):
    """The solver cannot express the variant."""


def solve_routeopt(model: ShipmentModel, solver: str, time_limit_s: float) -> list[Schedule]:
    from engine import SearchMode, SolveOptions, solve
    from engine.errors import InvalidModelError
    from tests.checker import check_solution

    variant = routeopt_variant(solver)
    assert variant is not None, solver
    options = SolveOptions(
        time_limit_s=time_limit_s,
        search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
        backend=variant.backend,
        solver_processes=variant.processes,
        local_search_metaheuristic=variant.metaheuristic,
    )
    try:
        solution = solve(model, options)
    except InvalidModelError as exc:  # an explicit backend that cannot express the variant
        raise UnsupportedError(str(exc)) from None
    check_solution(model, solution)  # raises, listing every violated rule
    out = []
    for r in solution.routes:
        if not r.visits:
            continue
        assert r.vehicle_start_time is not None
        assert r.vehicle_end_time is not None
        sched = Schedule(r.vehicle_index, r.vehicle_start_time, r.vehicle_end_time)
        events = [
            Event(
                "visit",
                v.start_time,
                _visit(model, v.shipment_index, v.is_pickup, v.visit_request_index).duration_s,
                v.shipment_index,
                v.is_pickup,
                v.visit_request_index,
            )
            for v in r.visits
        ] + [Event("break", b.start_time, b.duration_s) for b in r.breaks]
        sched.events = sorted(events, key=lambda e: (e.start, e.kind != "break"))
        out.append(sched)
    return out


def _visit(model: ShipmentModel, s: int, pickup: bool, k: int) -> VisitRequest:
    sh = model.shipments[s]
    return (sh.pickups if pickup else sh.deliveries)[k]


def solve_vroom(model: ShipmentModel, time_limit_s: float, scale: float = 1.0) -> list[Schedule]:
    """VROOM on the model: durations and costs are the matrix rounded at 1/1000 of an instance
    unit (VROOM takes integers; ``scale`` = the model's matrix units per instance unit), times
    likewise."""
    from datetime import timedelta

    import vroom  # type: ignore[import-untyped]

    for shipment in model.shipments:
        for visit in (*shipment.pickups, *shipment.deliveries):
            if any(
                w.soft_start_time is not None or w.soft_end_time is not None
                for w in visit.time_windows
            ):
                raise UnsupportedError("VROOM has no soft time windows")
    if model.shipment_type_incompatibilities or model.shipment_type_requirements:
        raise UnsupportedError("VROOM has no shipment types")
    if any(v.break_frequency_constraints for v in model.vehicles):
        raise UnsupportedError("VROOM has no break frequency rules")
    if model.injected_solution_constraint is not None:
        raise UnsupportedError("VROOM cannot keep committed stops (its steps are a start only)")
    k = 1000.0 / scale
    durations, distances, index = matrix_of(model)
    problem = vroom.Input()
    problem.set_durations_matrix("car", np.rint(durations * k).astype(np.int64))
    problem.set_costs_matrix("car", np.rint(distances * k).astype(np.int64))

    def tw(windows: Sequence[TimeWindow]) -> list[Any]:
        out = [
            vroom.TimeWindow(
                math.ceil((w.start_time or 0.0) * k),
                math.floor((w.end_time if w.end_time is not None else model.global_end_time) * k),
            )
            for w in windows
        ]
        return out or [vroom.TimeWindow(0, math.floor(model.global_end_time * k))]

    groups: dict[tuple[int, ...], int] = {}
    for shipment in model.shipments:
        if shipment.allowed_vehicle_indices:
            groups.setdefault(tuple(sorted(shipment.allowed_vehicle_indices)), len(groups) + 1)
    for i, vehicle in enumerate(model.vehicles):
        skills = {g for vs, g in groups.items() if i in vs}
        problem.add_vehicle(
            vroom.Vehicle(
                id=i,
                start=index[vehicle.start_tags[0]],
                end=index[vehicle.end_tags[0]],
                capacity=[int(vehicle.load_limits.get("demand", 0))],
                time_window=tw(vehicle.start_time_windows)[0],
                breaks=[
                    vroom.Break(
                        id=b,
                        time_windows=[
                            vroom.TimeWindow(
                                math.ceil(r.earliest_start_time * k),
                                math.floor(r.latest_start_time * k),
                            )
                        ],
                        service=math.ceil(r.min_duration_s * k),
                    )
                    for b, r in enumerate(vehicle.break_requests)
                ],
                skills=skills,
                costs=vroom.VehicleCosts(fixed=round(vehicle.fixed_cost * k)),
            )
        )
    for s, sh in enumerate(model.shipments):
        skills = (
            {groups[tuple(sorted(sh.allowed_vehicle_indices))]}
            if sh.allowed_vehicle_indices
            else set()
        )
        amount = int(sh.load_demands.get("demand", 0))
        if sh.pickups and sh.deliveries:
            p, d = sh.pickups[0], sh.deliveries[0]
            problem.add_shipment(
                vroom.ShipmentStep(
                    id=2 * s,
                    location=index[p.tags[0]],
                    default_service=math.ceil(p.duration_s * k),
                    time_windows=tw(p.time_windows),
                ),
                vroom.ShipmentStep(
                    id=2 * s + 1,
                    location=index[d.tags[0]],
                    default_service=math.ceil(d.duration_s * k),
                    time_windows=tw(d.time_windows),
                ),
                amount=vroom.Amount([amount]),
                skills=skills,
            )
        else:
            visit = (sh.pickups or sh.deliveries)[0]
            problem.add_job(
                vroom.Job(
                    id=2 * s,
                    location=index[visit.tags[0]],
                    default_service=math.ceil(visit.duration_s * k),
                    time_windows=tw(visit.time_windows),
                    delivery=[0 if sh.pickups else amount],
                    pickup=[amount if sh.pickups else 0],
                    skills=skills,
                )
            )
    result = problem.solve(
        exploration_level=5, nb_threads=1, timeout=timedelta(seconds=time_limit_s)
    ).to_dict()
    out = []
    for route in result.get("routes", []):
        steps = route["steps"]
        sched = Schedule(int(route["vehicle"]), steps[0]["arrival"] / k, steps[-1]["arrival"] / k)
        for step in steps[1:-1]:
            start = (step["arrival"] + step["waiting_time"]) / k
            if step["type"] == "break":
                sched.events.append(Event("break", start, step["service"] / k))
                continue
            s = int(step["id"]) // 2
            pickup = step["type"] == "pickup" or (
                step["type"] == "job" and bool(model.shipments[s].pickups)
            )
            duration = _visit(model, s, pickup, 0).duration_s
            sched.events.append(Event("visit", start, duration, s, pickup))
        out.append(sched)
    return out


# ------------------------------------------------------------------------------------------
# Running and reporting
# ------------------------------------------------------------------------------------------


def run_one(
    case: Case,
    variant: str,
    solver: str,
    time_limit_s: float,
    model: ShipmentModel | None = None,
) -> dict[str, Any]:
    """One solve, verified; ``model``: the variant's model if already built (else built)."""
    model = model or variant_model(case.model, variant)
    row: dict[str, Any] = {
        "instance": case.name,
        "variant": variant,
        "solver": solver,
        "time_limit_s": time_limit_s,
        "status": "ok",
        "bks": case.bks,
        "bks_vehicles": case.bks_vehicles,
    }
    started = time.perf_counter()
    try:
        if solver == "vroom":
            schedules = solve_vroom(model, time_limit_s, case.scale)
        else:
            schedules = solve_routeopt(model, solver, time_limit_s)
    except UnsupportedError as exc:
        return row | {"status": "unsupported", "problems": str(exc)}
    except AssertionError as exc:  # the checker rejected routeopt's solution
        return row | {"status": "infeasible", "problems": str(exc)[:2000]}
    row["time_s"] = round(time.perf_counter() - started, 2)
    checked = verify(model, schedules, slack=1e-3 * case.scale)
    row |= {
        "distance": checked.distance / case.scale,
        "vehicles": checked.vehicles,
        "served": checked.served,
        "shipments": len(model.shipments),
        "soft_cost": checked.soft_cost / case.scale,
    }
    if checked.problems:
        row |= {"status": "infeasible", "problems": "; ".join(checked.problems[:10])}
    elif checked.served < len(model.shipments):
        row["status"] = "unserved"
    return row


def _mean(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):.3f}" if values else "–"


def summary(rows: Sequence[dict[str, Any]], solvers: Sequence[str]) -> str:
    """Per variant and solver: instances solved (feasible, every shipment served) out of those
    run; then, on the instances every solver that can express the variant solved, the mean
    distance and vehicles, the ratio to the best peer (VROOM; :data:`ORTOOLS_PEER` where VROOM
    cannot express the variant), and the feature's price (distance on the variant / on the
    plain instance, same solver, minus one)."""
    good = {(r["instance"], r["variant"], r["solver"]): r for r in rows if r["status"] == "ok"}
    plain = {(i, s): r["distance"] for (i, v, s), r in good.items() if v == "plain"}
    lines = [
        "| variant | solver | solved | on common instances: mean distance | vehicles "
        "| / best peer (mean, min–max) | price vs plain |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    peers = [s for s in solvers if not s.startswith("routeopt")]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        these = [r for r in rows if r["variant"] == variant]
        instances = sorted({r["instance"] for r in these})
        able = [
            s
            for s in solvers
            if any(r["solver"] == s and r["status"] != "unsupported" for r in these)
        ]
        common = [i for i in instances if all((i, variant, s) in good for s in able)]
        # No outside peer expresses the variant: OR-Tools as routeopt drives it is the peer.
        best = [p for p in peers if p in able] or [p for p in (ORTOOLS_PEER,) if p in able]
        for solver in solvers:
            if solver not in able:
                lines.append(f"| {variant} | {solver} | cannot express it | | | | |")
                continue
            solved = sum((i, variant, solver) in good for i in instances)
            mine = [good[(i, variant, solver)] for i in common]
            ratios = [
                good[(i, variant, solver)]["distance"]
                / min(good[(i, variant, p)]["distance"] for p in best)
                for i in common
                if solver not in best and best
            ]
            prices = [
                good[(i, variant, solver)]["distance"] / plain[(i, solver)] - 1
                for i in common
                if (i, solver) in plain
            ]
            ratio = (
                f"{statistics.fmean(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})"
                if ratios
                else "–"
            )
            price = (
                f"{100 * statistics.fmean(prices):+.1f} %" if prices and variant != "plain" else "–"
            )
            distance = f"{statistics.fmean(r['distance'] for r in mine):.1f}" if mine else "–"
            vehicles = f"{statistics.fmean(r['vehicles'] for r in mine):.1f}" if mine else "–"
            lines.append(
                f"| {variant} | {solver} | {solved}/{len(instances)} | {distance} "
                f"({len(common)}) | {vehicles} | {ratio} | {price} |"
            )
    lines += _bks_lines(rows, solvers)
    return "\n".join(lines)


def _bks_lines(rows: Sequence[dict[str, Any]], solvers: Sequence[str]) -> list[str]:
    """Plain instances with a best-known solution: the gap to it where the solver used the
    best-known vehicle count (Li & Lim's objective is vehicles first, then distance)."""
    plain = [r for r in rows if r["variant"] == "plain" and r["status"] == "ok" and r.get("bks")]
    if not plain:
        return []
    out = [
        "",
        "| solver | solved with the BKS's vehicles | mean gap to BKS distance |",
        "|---|---:|---:|",
    ]
    for solver in solvers:
        mine = [r for r in plain if r["solver"] == solver]
        same = [r for r in mine if r["vehicles"] == r["bks_vehicles"]]
        gaps = [100 * (r["distance"] / r["bks"] - 1) for r in same]
        gap = f"{statistics.fmean(gaps):+.2f} %" if gaps else "–"
        out.append(f"| {solver} | {len(same)}/{len(mine)} | {gap} |")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.variants",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--set", default="SOLOMON", type=str.upper, choices=["SOLOMON", "GH200", "LILIM"]
    )
    parser.add_argument("--instances", nargs="*", default=None)
    parser.add_argument("--max-n", type=int, default=None, help="at most this many customers")
    parser.add_argument("--variants", nargs="*", default=None, choices=VARIANTS)
    parser.add_argument("--solvers", nargs="*", default=list(SOLVERS))
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--json", type=Path, default=None, help="write every row here too")
    args = parser.parse_args(argv)
    if args.variants is None:
        args.variants = ["plain"] if args.set == "LILIM" else list(VARIANTS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = []
    for case in cases(args):
        for variant in args.variants:
            model = variant_model(case.model, variant)  # once: ``committed`` solves a plan
            for solver in args.solvers:
                row = run_one(case, variant, solver, args.time_limit, model)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"# {args.set}, {len(rows)} solves, {args.time_limit:g} s each, one at a time\n")
    print(summary(rows, args.solvers))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
