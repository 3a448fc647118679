"""Route quality on feature variants: what a carrier's real requests cost, against the peers.

    python -m benchmarks.variants --set SOLOMON --instances C101 R102 RC105 R202 C206 \\
        --variants plain breaks allowed windows2 soft mixed --time-limit 10
    python -m benchmarks.variants --set LILIM --max-n 100 --time-limit 10

A plain instance (Solomon, Gehring–Homberger 200, or Li & Lim pickup-and-delivery) is turned into
a variant by a deterministic rule, in the engine's model, then solved by each solver one solve
at a time (a quiet machine: nothing else running):

- ``plain``: the instance as published;
- ``breaks``: every vehicle takes a break of 5 % of its half working time, starting within
  15 % of the middle of its working time (the rule of ``benchmarks.warmstart``);
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
  :data:`COMMIT_ITERATIONS` iterations: the same routes on every run) is injected, and the
  first third of each of its routes (rounded down) is committed: those visits stay on their
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

Every answer is verified by :func:`verify` here (an independent schedule check in the model's
terms: each visit inside one of its windows, travel and breaks fitting between visits, loads,
pairs, allowed vehicles, break rules and frequencies, shipment type incompatibilities,
committed stops, vehicle windows) on the exact float matrix, and every
routeopt answer also by the test suite's checker (``tests.checker.check_solution``). The table
gives, per variant and solver, the mean distance in instance units, the vehicles, how many
instances were solved feasibly with every shipment served, the ratio to the best peer and the
feature's price (mean of distance on the variant / distance on the plain instance, same solver).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from benchmarks.warmstart import with_allowed, with_breaks
from engine.model import (
    BreakRequest,
    ConstraintRelaxation,
    DurationDistanceMatrix,
    FrequencyConstraint,
    IncompatibilityMode,
    InjectedRoute,
    InjectedSolutionConstraint,
    InjectedVisit,
    Relaxation,
    RelaxationLevel,
    Shipment,
    ShipmentModel,
    ShipmentTypeIncompatibility,
    TimeWindow,
    Vehicle,
    VisitRequest,
)

VARIANTS = (
    "plain",
    "breaks",
    "allowed",
    "windows2",
    "soft",
    "mixed",
    "hours",
    "types",
    "committed",
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
_TOL = 1e-6


# ------------------------------------------------------------------------------------------
# Variants
# ------------------------------------------------------------------------------------------


def with_two_windows(model: ShipmentModel) -> ShipmentModel:
    def split(v: VisitRequest) -> VisitRequest:
        if len(v.time_windows) != 1:
            return v
        w = v.time_windows[0]
        if w.start_time is None or w.end_time is None or w.end_time - w.start_time < 10:
            return v
        a, b = w.start_time, w.end_time
        first = TimeWindow(a, math.floor(a + 0.4 * (b - a)))
        last = TimeWindow(math.ceil(b - 0.4 * (b - a)), b)
        return dataclasses.replace(v, time_windows=(first, last))

    shipments = tuple(
        dataclasses.replace(
            s, pickups=tuple(map(split, s.pickups)), deliveries=tuple(map(split, s.deliveries))
        )
        if i % 3 == 0
        else s
        for i, s in enumerate(model.shipments)
    )
    return dataclasses.replace(model, shipments=shipments)


def with_soft_windows(model: ShipmentModel) -> ShipmentModel:
    """Every second shipment's windows soft; a time unit early or late costs as much as a unit
    of distance (``cost_per_kilometer`` = 1000 per matrix unit, the engine's time unit is the
    second, so 3600 x that per hour)."""
    per_unit = model.vehicles[0].cost_per_kilometer / 1000.0
    per_hour = 3600.0 * per_unit

    def soften(v: VisitRequest) -> VisitRequest:
        soft = tuple(
            TimeWindow(
                soft_start_time=w.start_time,
                soft_end_time=w.end_time,
                cost_per_hour_before_soft_start_time=per_hour if w.start_time is not None else None,
                cost_per_hour_after_soft_end_time=per_hour if w.end_time is not None else None,
            )
            for w in v.time_windows
        )
        return dataclasses.replace(v, time_windows=soft[:1])

    shipments = tuple(
        dataclasses.replace(
            s, pickups=tuple(map(soften, s.pickups)), deliveries=tuple(map(soften, s.deliveries))
        )
        if i % 2 == 0
        else s
        for i, s in enumerate(model.shipments)
    )
    return dataclasses.replace(model, shipments=shipments)


def with_driver_hours(model: ShipmentModel) -> ShipmentModel:
    """A break frequency rule on every vehicle (module docstring): day = the vehicle's working
    time (global start to its end window's close)."""
    g0, g1 = model.global_start_time, model.global_end_time
    vehicles = []
    for v in model.vehicles:
        close = min((w.end_time for w in v.end_time_windows if w.end_time is not None), default=g1)
        day = min(close, g1) - g0
        length = 0.025 * day
        vehicles.append(
            dataclasses.replace(
                v,
                break_requests=(BreakRequest(g0 + 0.1 * day, g0 + 0.9 * day, length),),
                break_frequency_constraints=(FrequencyConstraint(length, 0.5 * day),),
            )
        )
    return dataclasses.replace(model, vehicles=tuple(vehicles))


TYPES = {0: "chilled", 3: "hazmat"}
"""Shipment ``i``'s type in the ``types`` variant: ``TYPES.get(i % 6, "")``."""


def with_types(model: ShipmentModel) -> ShipmentModel:
    shipments = tuple(
        dataclasses.replace(s, shipment_type=TYPES.get(i % 6, ""))
        for i, s in enumerate(model.shipments)
    )
    rule = ShipmentTypeIncompatibility(
        types=tuple(TYPES.values()),
        incompatibility_mode=IncompatibilityMode.NOT_PERFORMED_BY_SAME_VEHICLE,
    )
    return dataclasses.replace(model, shipments=shipments, shipment_type_incompatibilities=(rule,))


COMMIT_ITERATIONS = 1000
"""PyVRP iterations of the ``committed`` variant's morning plan (about a second on 200
customers; within a few percent of the best-known distance on Solomon and Gehring-Homberger)."""


def morning_plan(model: ShipmentModel) -> tuple[InjectedRoute, ...]:
    """The ``committed`` variant's morning plan: deterministic (an iteration limit, seed 0, one
    process), checked by the test suite's checker, its non-empty routes as injected routes."""
    from engine import SearchMode, SolveOptions, solve
    from tests.checker import check_solution

    options = SolveOptions(
        time_limit_s=600.0,  # the iteration limit stops it, well before
        search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
        backend="pyvrp",
        solver_processes=1,
        seed=0,
        iteration_limit=COMMIT_ITERATIONS,
    )
    solution = solve(model, options)
    check_solution(model, solution)
    return tuple(
        InjectedRoute(
            vehicle_index=r.vehicle_index,
            vehicle_start_time=r.vehicle_start_time,
            vehicle_end_time=r.vehicle_end_time,
            visits=tuple(
                InjectedVisit(v.shipment_index, v.is_pickup, v.visit_request_index, v.start_time)
                for v in r.visits
            ),
        )
        for r in solution.routes
        if r.visits
    )


def with_committed(model: ShipmentModel) -> ShipmentModel:
    """The morning plan injected, the first third of each route committed (module docstring)."""
    routes = morning_plan(model)
    constraint = InjectedSolutionConstraint(
        routes=routes,
        constraint_relaxations=tuple(
            ConstraintRelaxation(
                relaxations=(
                    Relaxation(RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD),
                    Relaxation(
                        RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD,
                        # Google's rule: visit j relaxes when j + 1 >= the count
                        threshold_visit_count=len(r.visits) // 3 + 1,
                    ),
                ),
                vehicle_indices=(r.vehicle_index,),
            )
            for r in routes
        ),
    )
    return dataclasses.replace(model, injected_solution_constraint=constraint)


def committed_visits(model: ShipmentModel) -> dict[int, list[tuple[int, bool, int]]]:
    """Per vehicle, the visits the ``committed`` variant keeps first in its route, in order:
    ``(shipment, is_pickup, visit request)``. Reads the constraint the way the variant writes
    it (above); another shape of constraint is refused rather than half checked."""
    constraint = model.injected_solution_constraint
    if constraint is None:
        return {}
    if constraint.skipped_shipments:
        raise ValueError("verify() does not check skipped_shipments")
    levels = {}
    for c in constraint.constraint_relaxations:
        for v in c.vehicle_indices:
            levels[v] = c.relaxations
    out = {}
    for r in constraint.routes:
        relaxations = levels.get(r.vehicle_index, ())
        if [x.level for x in relaxations] != [
            RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD,
            RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD,
        ] or any(x.threshold_time is not None for x in relaxations):
            raise ValueError(f"verify() does not check the relaxations {relaxations}")
        if relaxations[0].threshold_visit_count != 0:
            raise ValueError("verify() checks sequences kept from the route's start only")
        kept = r.visits[: max(relaxations[1].threshold_visit_count - 1, 0)]
        out[r.vehicle_index] = [
            (v.shipment_index, v.is_pickup, v.visit_request_index) for v in kept
        ]
    return out


def variant_model(model: ShipmentModel, variant: str) -> ShipmentModel:
    rules: dict[str, Callable[[ShipmentModel], ShipmentModel]] = {
        "plain": lambda m: m,
        "breaks": with_breaks,
        "allowed": with_allowed,
        "windows2": with_two_windows,
        "soft": with_soft_windows,
        "mixed": lambda m: with_two_windows(with_allowed(with_breaks(m))),
        "hours": with_driver_hours,
        "types": with_types,
        "committed": with_committed,
    }
    return rules[variant](model)


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
# Schedules, and their independent check
# ------------------------------------------------------------------------------------------


@dataclass
class Event:
    kind: str
    """"visit" or "break"."""
    start: float
    duration: float
    shipment: int = -1
    is_pickup: bool = False
    request: int = 0
    """Break: index in the vehicle's break_requests (-1: unknown, matched by the checker)."""


@dataclass
class Schedule:
    vehicle: int
    start: float
    end: float
    events: list[Event] = field(default_factory=list)


@dataclass
class Verified:
    distance: float
    vehicles: int
    served: int
    soft_cost: float
    problems: list[str]


def _matrix(model: ShipmentModel) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    m = model.duration_distance_matrices[0]
    index = {t: k for k, t in enumerate(model.duration_distance_matrix_src_tags)}
    return m.durations_s, m.distances_m, index


def _in_windows(windows: Sequence[TimeWindow], t: float) -> bool:
    hard = [w for w in windows if w.start_time is not None or w.end_time is not None]
    if not hard:
        return True
    return any(
        (w.start_time is None or t >= w.start_time - _TOL)
        and (w.end_time is None or t <= w.end_time + _TOL)
        for w in hard
    )


def _soft_cost(windows: Sequence[TimeWindow], t: float) -> float:
    cost = 0.0
    for w in windows[:1]:
        if w.soft_start_time is not None and t < w.soft_start_time:
            cost += (w.cost_per_hour_before_soft_start_time or 0.0) * (w.soft_start_time - t) / 3600
        if w.soft_end_time is not None and t > w.soft_end_time:
            cost += (w.cost_per_hour_after_soft_end_time or 0.0) * (t - w.soft_end_time) / 3600
    return cost


def verify(model: ShipmentModel, schedules: Sequence[Schedule], slack: float = 1e-3) -> Verified:
    """Check ``schedules`` against every rule of ``model`` a variant uses (module docstring);
    the distance travelled (matrix units), vehicles used, shipments served, soft-window cost,
    and every problem found. ``slack`` (matrix units) is how much earlier than the exact travel
    allows a visit or the return may start: VROOM travels on the matrix rounded to 1/1000 of an
    instance unit, so :func:`run_one` passes 1/1000 of an instance unit."""
    durations, distances, index = _matrix(model)
    problems: list[str] = []
    committed = committed_visits(model)
    seen: dict[tuple[int, bool], tuple[int, float]] = {}
    distance = soft = 0.0
    used = 0
    for sched in schedules:
        if not sched.events:
            continue
        used += 1
        v = model.vehicles[sched.vehicle]
        where = f"vehicle {sched.vehicle}"
        if not _in_windows(v.start_time_windows, sched.start):
            problems.append(f"{where}: starts at {sched.start} outside its start windows")
        if not _in_windows(v.end_time_windows, sched.end):
            problems.append(f"{where}: ends at {sched.end} outside its end windows")
        loc = index[v.start_tags[0]]
        free_at = sched.start
        pending_breaks: list[Event] = []
        taken: list[Event] = []
        for e in sched.events:
            if e.kind == "break":
                pending_breaks.append(e)
                taken.append(e)
                continue
            sh = model.shipments[e.shipment]
            visit = (sh.pickups if e.is_pickup else sh.deliveries)[e.request]
            nxt = index[visit.tags[0]]
            travel = float(durations[loc, nxt])
            rest = sum(b.duration for b in pending_breaks)
            for b in pending_breaks:
                if b.start < free_at - _TOL or b.start + b.duration > e.start + _TOL:
                    problems.append(f"{where}: break at {b.start} outside its gap")
            if free_at + travel + rest > e.start + slack:
                problems.append(
                    f"{where}: shipment {e.shipment} starts at {e.start}, before it can be "
                    f"reached ({free_at} + travel {travel:.3f} + breaks {rest})"
                )
            pending_breaks = []
            if not _in_windows(visit.time_windows, e.start):
                problems.append(f"{where}: shipment {e.shipment} at {e.start} outside its windows")
            soft += _soft_cost(visit.time_windows, e.start)
            if sh.allowed_vehicle_indices and sched.vehicle not in sh.allowed_vehicle_indices:
                problems.append(f"{where}: shipment {e.shipment} not allowed on this vehicle")
            key = (e.shipment, e.is_pickup)
            if key in seen:
                problems.append(f"shipment {e.shipment} visited twice")
            seen[key] = (sched.vehicle, e.start)
            if not e.is_pickup and sh.pickups:
                pickup = seen.get((e.shipment, True))
                if pickup is None or pickup[0] != sched.vehicle:
                    problems.append(f"{where}: shipment {e.shipment} delivered before its pickup")
            distance += float(distances[loc, nxt])
            loc = nxt
            free_at = e.start + e.duration
        end = index[v.end_tags[0]]
        rest = sum(b.duration for b in pending_breaks)
        if free_at + float(durations[loc, end]) + rest > sched.end + slack:
            problems.append(f"{where}: cannot be back by {sched.end}")
        distance += float(distances[loc, end])
        _check_loads(model, sched, problems)
        _check_breaks(v, taken, where, problems)
        _check_frequency(v, sched, taken, where, problems)
        _check_types(model, sched, where, problems)
    for vehicle, kept in committed.items():
        sched = next((x for x in schedules if x.vehicle == vehicle and x.events), None)
        visits = [
            (e.shipment, e.is_pickup, e.request)
            for e in (sched.events if sched is not None else [])
            if e.kind == "visit"
        ]
        if visits[: len(kept)] != kept:
            problems.append(
                f"vehicle {vehicle}: starts with {visits[: len(kept)]}, committed to {kept}"
            )
    served = 0
    for s, sh in enumerate(model.shipments):
        need = [(s, True)] * bool(sh.pickups) + [(s, False)] * bool(sh.deliveries)
        done = [k in seen for k in need]
        if all(done):
            served += 1
        elif any(done):
            problems.append(f"shipment {s} half performed")
    return Verified(distance, used, served, soft, problems)


def _check_loads(model: ShipmentModel, sched: Schedule, problems: list[str]) -> None:
    v = model.vehicles[sched.vehicle]
    visits = [e for e in sched.events if e.kind == "visit"]
    for k, limit in v.load_limits.items():
        load = sum(
            model.shipments[e.shipment].load_demands.get(k, 0)
            for e in visits
            if not e.is_pickup and not model.shipments[e.shipment].pickups
        )
        if load > limit:
            problems.append(f"vehicle {sched.vehicle}: leaves with {load} {k} > {limit}")
        for e in visits:
            s = model.shipments[e.shipment]
            amount = s.load_demands.get(k, 0)
            load += amount if e.is_pickup else -amount
            if load > limit:
                problems.append(f"vehicle {sched.vehicle}: carries {load} {k} > {limit}")


def _check_breaks(v: Vehicle, taken: list[Event], where: str, problems: list[str]) -> None:
    if len(taken) != len(v.break_requests):
        problems.append(f"{where}: {len(taken)} breaks taken, {len(v.break_requests)} required")
        return
    for b, rule in zip(sorted(taken, key=lambda e: e.start), v.break_requests, strict=True):
        if not rule.earliest_start_time - _TOL <= b.start <= rule.latest_start_time + _TOL:
            problems.append(f"{where}: break at {b.start} outside its start window")
        if b.duration < rule.min_duration_s - _TOL:
            problems.append(f"{where}: break of {b.duration} < {rule.min_duration_s}")


def _check_frequency(
    v: Vehicle, sched: Schedule, taken: list[Event], where: str, problems: list[str]
) -> None:
    """Every stretch of the route (start to end) between breaks of at least a constraint's
    ``min_break_duration_s`` is at most its ``max_inter_break_duration_s``."""
    for fc in v.break_frequency_constraints:
        rests = sorted(
            (b.start, b.start + b.duration)
            for b in taken
            if b.duration >= fc.min_break_duration_s - _TOL
        )
        edges = [(sched.start, sched.start), *rests, (sched.end, sched.end)]
        for (_, done), (then, _) in itertools.pairwise(edges):
            if then - done > fc.max_inter_break_duration_s + _TOL:
                problems.append(
                    f"{where}: {then - done:.3f} from {done} without a break of "
                    f"{fc.min_break_duration_s} (at most {fc.max_inter_break_duration_s})"
                )


def _check_types(model: ShipmentModel, sched: Schedule, where: str, problems: list[str]) -> None:
    """Shipments of two different types of an incompatibility never share the vehicle (the
    variants use ``NOT_PERFORMED_BY_SAME_VEHICLE`` only)."""
    types = {model.shipments[e.shipment].shipment_type for e in sched.events if e.kind == "visit"}
    for rule in model.shipment_type_incompatibilities:
        if rule.incompatibility_mode != IncompatibilityMode.NOT_PERFORMED_BY_SAME_VEHICLE:
            raise ValueError(f"verify() does not check {rule.incompatibility_mode.name}")
        both = types & set(rule.types)
        if len(both) > 1:
            problems.append(f"{where}: performs incompatible types {sorted(both)}")


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
    durations, distances, index = _matrix(model)
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
