"""What injected solutions (:mod:`engine.injected`) do to a solve.

- :func:`constrain`: the pre-checked :class:`~engine.problem.Problem` under an
  ``injected_solution_constraint`` (what stays skipped, which vehicle a kept shipment may use, no
  other shipment on a closed route), and the locks that cannot hold, found before any search;
- :func:`initial_routes`: where a search starts (the constraint's routes and
  ``injected_first_solution_routes``);
- :func:`refresh_plans`: the plans of ``refresh_details_routes`` (no search).

The locks themselves are the OR-Tools backend's (:mod:`engine.backends.ortools`).
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
from collections.abc import Mapping, Sequence

from engine.errors import FieldViolation
from engine.injected import FIXED, FREE, REFRESH, SEQUENCE, Injected, Placed, PlacedRoute
from engine.precheck import alone_reason
from engine.problem import Problem, Window
from engine.search import RoutePlan
from engine.solution import SkipReason, SkipReasonCode
from engine.units import ceil_int, floor_int

__all__ = ["constrain", "fixed_range", "initial_routes", "refresh_plans"]


# -- the constraint on the pre-checked problem -------------------------------------------------


def _when(problem: Problem, t: int) -> str:
    moment = problem.model.global_start_time + t
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat().replace("+00:00", "Z")


def _earliest(windows: Sequence[Window], t: int) -> int | None:
    for lo, hi in windows:
        if t <= hi:
            return max(t, lo)
    return None


def constrain(
    problem: Problem,
    skip_reasons: Mapping[int, tuple[SkipReason, ...]],
    injected: Injected,
) -> tuple[Problem, dict[int, tuple[SkipReason, ...]], list[FieldViolation]]:
    """The pre-checked ``problem`` under the injected constraint: the constraint's skipped
    shipments and the shipments kept on an ignored vehicle are skipped, a shipment kept on its
    vehicle may use only that one, and no other shipment may use a vehicle whose route is
    closed; with the violations of the locks that cannot hold (a kept visit its vehicle cannot
    serve, fixed times that travel or time windows rule out)."""
    model = problem.model
    reasons = dict(skip_reasons)
    routable = list(problem.routable)
    allowed = [tuple(a) for a in problem.allowed_vehicles]
    violations: list[FieldViolation] = []
    for s, _ in injected.skipped:
        if routable[s]:
            routable[s] = False
            allowed[s] = ()
            reasons[s] = (SkipReason(SkipReasonCode.SKIPPED_IN_INJECTED_SOLUTION_CONSTRAINT),)
    kept: set[int] = set()
    for route in injected.constrained:
        v = route.vehicle
        for p in route.visits:
            if p.level >= FREE or p.shipment in kept:
                continue
            kept.add(p.shipment)
            s = p.shipment
            if model.vehicles[v].ignore:
                routable[s], allowed[s] = False, ()
                reasons[s] = (SkipReason(SkipReasonCode.VEHICLE_IGNORED, v),)
            elif not routable[s] or v not in allowed[s]:
                if p.level <= SEQUENCE:
                    alone = alone_reason(problem, v, s)
                    why = ", ".join(r.code.name for r in reasons.get(s, ())) or (
                        alone.code.name if alone is not None else "pre-check"
                    )
                    violations.append(
                        FieldViolation(
                            p.path,
                            f"the injected solution keeps shipment {s} on vehicle {v}, which "
                            f"cannot perform it ({why})",
                        )
                    )
                elif routable[s]:  # kept on a vehicle that cannot serve it: skipped
                    alone = alone_reason(problem, v, s)
                    routable[s], allowed[s] = False, ()
                    reasons[s] = (alone or SkipReason(SkipReasonCode.VEHICLE_NOT_ALLOWED, v),)
            else:
                allowed[s] = (v,)
    closed = {route.vehicle for route in injected.constrained if route.closed}
    if closed:
        for s in range(len(model.shipments)):
            if s in kept or not routable[s]:
                continue
            left = tuple(v for v in allowed[s] if v not in closed)
            if not left:
                example = next(iter(sorted(set(allowed[s]) & closed)))
                routable[s], allowed[s] = False, ()
                reasons[s] = (
                    SkipReason(SkipReasonCode.VEHICLE_ROUTE_IS_FULLY_SEQUENCE_CONSTRAINED, example),
                )
            else:
                allowed[s] = left
    constrained = dataclasses.replace(problem, routable=routable, allowed_vehicles=allowed)
    if not violations:
        for route in injected.constrained:
            violations.extend(_lock_violations(constrained, route))
    return constrained, reasons, violations


def fixed_range(problem: Problem, t: float) -> tuple[int, int]:
    """The solver's one-second cumul range of a fixed time ``t``."""
    rel = t - problem.model.global_start_time
    return floor_int(rel), ceil_int(rel)


def _lock_violations(problem: Problem, route: PlacedRoute) -> list[FieldViolation]:
    """Whether the locked part of a constrained route (from its start, the visits whose
    sequence is kept) can be driven: fixed times within their windows and reachable."""
    stops = problem.stops
    v = route.vehicle
    if not route.visits or problem.model.vehicles[v].ignore:
        return []
    travel = problem.travel_s(v)
    service = problem.service_for(v)  # with the vehicle's visit-type extra durations
    start = stops.vehicle_start(v)
    windows = problem.windows
    if route.start_level == FIXED and route.start_time is not None:
        lo, hi = fixed_range(problem, route.start_time)
        t = _earliest(windows[start], lo)
        if t is None or t > hi:
            return [
                FieldViolation(
                    f"{route.path}.vehicle_start_time",
                    "the fixed vehicle start is outside the vehicle's start time windows",
                )
            ]
    else:
        t = _earliest(windows[start], 0)
        if t is None:
            return []
    prev = start
    out: list[FieldViolation] = []
    for p in route.visits:
        if p.level > SEQUENCE:
            break
        stop = p.stop(problem)
        arrive = t + int(service[prev]) + int(travel[prev, stop]) + problem.delay(prev, stop)
        if p.level == FIXED and p.start_time is not None:
            lo, hi = fixed_range(problem, p.start_time)
            if arrive > hi:
                out.append(
                    FieldViolation(
                        f"{p.path}.start_time",
                        f"the kept visit cannot start at its fixed time: after the visits "
                        f"before it, the vehicle arrives at {_when(problem, arrive)} at the "
                        "earliest",
                    )
                )
                return out
            t_next = _earliest(windows[stop], max(lo, arrive))
            if t_next is None or t_next > hi:
                out.append(
                    FieldViolation(
                        f"{p.path}.start_time",
                        "the kept visit's fixed time is outside its time windows",
                    )
                )
                return out
        else:
            t_next = _earliest(windows[stop], arrive)
            if t_next is None:
                out.append(
                    FieldViolation(
                        p.path,
                        "the kept sequence cannot be driven: after the visits before it, this "
                        f"visit cannot start within its time windows (earliest arrival "
                        f"{_when(problem, arrive)})",
                    )
                )
                return out
        t, prev = t_next, stop
    else:  # every visit kept in sequence: a fixed end follows them
        if route.end_level == FIXED and route.end_time is not None:
            out.extend(_end_violations(problem, route, t, prev))
    return out


def _end_violations(
    problem: Problem, route: PlacedRoute, t: int, prev: int
) -> list[FieldViolation]:
    """A fixed vehicle end (after the kept visits, the last at ``prev`` from ``t``): within the
    vehicle's end time windows (and so the horizon) and reachable."""
    end = problem.stops.vehicle_end(route.vehicle)
    assert route.end_time is not None
    lo, hi = fixed_range(problem, route.end_time)
    windows = problem.windows[end]
    where = f"{route.path}.vehicle_end_time"
    t_end = _earliest(windows, lo)
    if t_end is None or t_end > hi:
        return [
            FieldViolation(where, "the fixed vehicle end is outside the vehicle's end time windows")
        ]
    service = problem.service_for(route.vehicle)
    arrive = t + int(service[prev]) + int(problem.travel_s(route.vehicle)[prev, end])
    arrive += problem.delay(prev, end)  # transition delays (issue 15)
    t_end = _earliest(windows, max(lo, arrive))
    if t_end is None or t_end > hi:
        return [
            FieldViolation(
                where,
                f"the vehicle cannot end at its fixed time: after the kept visits it arrives at "
                f"{_when(problem, arrive)} at the earliest",
            )
        ]
    return []


def initial_routes(
    problem: Problem, injected: Injected, *, kept_only: bool = False
) -> list[list[int]] | None:
    """Visit stops per vehicle to start the search from: the constraint's routes, and the
    first-solution routes of the other vehicles (visits the problem does not allow left out);
    with ``kept_only``, only the shipments the constraint keeps on their vehicle; None when
    nothing is injected."""
    if not (injected.constrained or injected.first_routes):
        return None
    n_vehicles = len(problem.model.vehicles)
    routes: list[list[int]] = [[] for _ in range(n_vehicles)]
    taken: set[int] = {s for s, _ in injected.skipped}
    sources = (
        (injected.constrained,) if kept_only else (injected.constrained, injected.first_routes)
    )
    for source in sources:
        for route in source:
            v = route.vehicle
            if routes[v] or problem.model.vehicles[v].ignore:
                continue
            held = {p.shipment for p in route.visits if p.level < FREE}  # both visits of a pair
            usable = [
                p
                for p in route.visits
                if (not kept_only or p.shipment in held)
                and p.shipment not in taken
                and problem.routable[p.shipment]
                and v in problem.allowed_vehicles[p.shipment]
            ]
            count: dict[int, int] = {}
            for p in usable:
                count[p.shipment] = count.get(p.shipment, 0) + 1
            shipments = problem.model.shipments
            whole = [
                p
                for p in usable
                if count[p.shipment]
                == bool(shipments[p.shipment].pickups) + bool(shipments[p.shipment].deliveries)
            ]
            routes[v] = [p.stop(problem) for p in whole]
            taken.update(p.shipment for p in whole)
    return routes


# -- refresh_details_routes ----------------------------------------------------------------------


def refresh_plans(
    problem: Problem, injected: Injected
) -> tuple[list[RoutePlan], list[FieldViolation]]:
    """One plan per vehicle: each refreshed route as given (times kept, at the solver's one-second
    resolution, when the route gives them all; otherwise the earliest schedule), other vehicles
    unused (or driven empty with ``used_if_route_is_empty``); with the violations of routes whose
    times do not fit travel or time windows."""
    model = problem.model
    by_vehicle = {route.vehicle: route for route in injected.refresh}
    plans: list[RoutePlan] = []
    violations: list[FieldViolation] = []
    for v, vehicle in enumerate(model.vehicles):
        route = by_vehicle.get(v)
        if route is None or (not route.visits and not vehicle.used_if_route_is_empty):
            if vehicle.used_if_route_is_empty:
                plan, found = _schedule(problem, v, [], f"{REFRESH}", None)
                plans.append(plan)
                violations.extend(found)
            else:
                plans.append(RoutePlan(vehicle=v))
            continue
        plan, found = _schedule(problem, v, list(route.visits), route.path, route)
        plans.append(plan)
        violations.extend(found)
    return plans, violations


def _schedule(
    problem: Problem, v: int, visits: list[Placed], path: str, route: PlacedRoute | None
) -> tuple[RoutePlan, list[FieldViolation]]:
    stops = problem.stops
    travel = problem.travel_s(v)
    service = problem.service_for(v)  # with the vehicle's visit-type extra durations
    windows = problem.windows
    start, end = stops.vehicle_start(v), stops.vehicle_end(v)
    sequence = [p.stop(problem) for p in visits]
    vehicle = problem.model.vehicles[v]
    given = (
        route is not None
        and route.start_time is not None
        and route.end_time is not None
        and all(p.start_time is not None for p in visits)
    )
    if vehicle.break_requests and not (given and route is not None and route.breaks):
        return RoutePlan(vehicle=v), [
            FieldViolation(
                f"{path}.breaks",
                f"vehicle {v} has break requests: give the route with its times and breaks",
            )
        ]
    if given and route is not None:
        return _given_plan(problem, v, visits, sequence, route)
    out: list[FieldViolation] = []
    t = _earliest(windows[start], 0)
    if t is None:
        return RoutePlan(vehicle=v), [FieldViolation(path, "the vehicle has no usable start time")]
    start_s = t
    prev = start
    starts: list[int] = []
    for p, stop in zip([*visits, None], [*sequence, end], strict=True):
        arrive = t + int(service[prev]) + int(travel[prev, stop]) + problem.delay(prev, stop)
        t_next = _earliest(windows[stop], arrive)
        if t_next is None:
            where = p.path if p is not None else f"{path}.vehicle_end_time"
            out.append(
                FieldViolation(
                    where,
                    f"cannot start within its time windows in this sequence (earliest arrival "
                    f"{_when(problem, arrive)})",
                )
            )
            return RoutePlan(vehicle=v), out
        if p is not None:
            starts.append(t_next)
        t, prev = t_next, stop
    return (
        RoutePlan(
            vehicle=v,
            stops=tuple(sequence),
            start_s=start_s,
            visit_start_s=tuple(starts),
            end_s=t,
        ),
        out,
    )


def _given_plan(
    problem: Problem, v: int, visits: list[Placed], sequence: list[int], route: PlacedRoute
) -> tuple[RoutePlan, list[FieldViolation]]:
    stops = problem.stops
    g0 = problem.model.global_start_time
    travel = problem.travel_s(v)
    service = problem.service_for(v)  # with the vehicle's visit-type extra durations
    windows = problem.windows

    def rel(t: float | None) -> int:
        assert t is not None
        return round(t - g0)

    breaks = tuple((rel(b), ceil_int(d)) for b, d in route.breaks)
    start_s, end_s = rel(route.start_time), rel(route.end_time)
    events = [(stops.vehicle_start(v), start_s, f"{route.path}.vehicle_start_time")]
    events += [
        (stop, rel(p.start_time), f"{p.path}.start_time")
        for p, stop in zip(visits, sequence, strict=True)
    ]
    events.append((stops.vehicle_end(v), end_s, f"{route.path}.vehicle_end_time"))
    out: list[FieldViolation] = []
    for stop, t, where in events:
        if not any(lo <= t <= hi for lo, hi in windows[stop]):
            out.append(FieldViolation(where, "is outside the time windows"))
    for (a, ta, _), (b, tb, where) in itertools.pairwise(events):
        ready = ta + int(service[a])
        taken = sum(d for bs, d in breaks if bs >= ready and bs + d <= tb)
        delay = problem.delay(a, b)  # transition delays (issue 15)
        if tb < ready + int(travel[a, b]) + delay + taken:
            out.append(
                FieldViolation(
                    where,
                    f"is too early: the previous stop ends at {_when(problem, ready)} and "
                    f"travel takes {int(travel[a, b])} s"
                    + (f" (and the transition delay {delay} s)" if delay else ""),
                )
            )
    plan = RoutePlan(
        vehicle=v,
        stops=tuple(sequence),
        start_s=start_s,
        visit_start_s=tuple(t for _, t, _ in events[1:-1]),
        end_s=end_s,
        breaks_s=breaks,
    )
    return plan, out
