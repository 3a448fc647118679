"""Schedules, and their independent check for :mod:`benchmarks.variants`: :func:`verify` checks
every rule a variant uses (listed in that module's docstring) on the exact float matrix."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from benchmarks.variant_rules import committed_visits
from engine.model import IncompatibilityMode, ShipmentModel, TimeWindow, Vehicle

_TOL = 1e-6


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


def matrix_of(model: ShipmentModel) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The model's one matrix: durations, distances, and the index of each tag."""
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
    instance unit, so :func:`benchmarks.variants.run_one` passes 1/1000 of an instance unit."""
    durations, distances, index = matrix_of(model)
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
