"""Re-optimisation during the day: injected solutions, with Google's semantics.

Three fields of Google's ``OptimizeToursRequest`` (here on :class:`~engine.model.ShipmentModel`,
see :data:`~engine.model.REQUEST_LEVEL_FIELDS`):

- ``injected_first_solution_routes``: a warm start (the OR-Tools search starts from them);
- ``injected_solution_constraint``: routes whose visits stay as their relaxation level says
  (:class:`~engine.model.RelaxationLevel`), and skipped shipments that stay skipped;
- ``refresh_details_routes``: routes evaluated as they are, without a search.

With ``interpret_injected_solutions_using_labels``, routes name their vehicle by
``vehicle_label`` and visits their shipment by ``shipment_label`` (skipped shipments by
``label``); a label the model does not have removes the route, the visit or the skipped entry
(Google's rule). Visits of ignored shipments are removed from injected routes; a shipment kept
on an ignored vehicle (not relaxed to ``RELAX_ALL_AFTER_THRESHOLD``) is skipped.

:func:`injected_violations` is the model check of these fields (paths relative to the request);
:func:`resolve` turns them into stops and levels; :func:`constrain` applies a constraint to the
pre-checked :class:`~engine.problem.Problem` (what stays skipped, which vehicle a kept shipment
may use) and lists the locks that cannot hold; :func:`refresh_plans` schedules refreshed routes.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from engine.errors import FieldViolation
from engine.model import (
    ConstraintRelaxation,
    InjectedRoute,
    Relaxation,
    RelaxationLevel,
    ShipmentModel,
)
from engine.problem import Problem, Window
from engine.search import RoutePlan
from engine.solution import SkipReason, SkipReasonCode
from engine.units import ceil_int, floor_int

__all__ = [
    "CONSTRAINT",
    "FIRST",
    "REFRESH",
    "Injected",
    "Placed",
    "PlacedRoute",
    "constrain",
    "has_injected",
    "initial_routes",
    "injected_violations",
    "refresh_plans",
    "relaxations_of",
    "resolve",
    "route_levels",
]

FIRST = "injected_first_solution_routes"
CONSTRAINT = "injected_solution_constraint"
REFRESH = "refresh_details_routes"

_FREE = RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD
_FIXED = RelaxationLevel.LEVEL_UNSPECIFIED
_SEQUENCE = RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD
_VEHICLE = RelaxationLevel.RELAX_VISIT_TIMES_AND_SEQUENCE_AFTER_THRESHOLD


@dataclass(frozen=True)
class Placed:
    """A visit of an injected route, resolved: its field path, shipment, alternative, time and
    (in a constraint) relaxation level."""

    path: str
    shipment: int
    is_pickup: bool
    alternative: int
    start_time: float | None
    level: RelaxationLevel = _FREE

    def stop(self, problem: Problem) -> int:
        stops = problem.stops
        of = stops.pickup_stops if self.is_pickup else stops.delivery_stops
        return of[self.shipment][self.alternative]


@dataclass(frozen=True)
class PlacedRoute:
    """An injected route, resolved (vehicle index, visits of shipments that are not ignored)."""

    path: str
    vehicle: int
    visits: tuple[Placed, ...]
    start_time: float | None
    end_time: float | None
    breaks: tuple[tuple[float, float], ...] = ()
    start_level: RelaxationLevel = _FREE
    end_level: RelaxationLevel = _FREE

    @property
    def closed(self) -> bool:
        """Fully constrained up to its end: no visit may be added (a non-empty route whose
        end is not relaxed)."""
        return bool(self.visits) and self.end_level == _FIXED


@dataclass(frozen=True)
class Injected:
    first_routes: tuple[PlacedRoute, ...] = ()
    constrained: tuple[PlacedRoute, ...] = ()
    skipped: tuple[tuple[int, str], ...] = ()
    """Shipments the constraint keeps skipped, with the path of their entry."""
    refresh: tuple[PlacedRoute, ...] = ()

    @property
    def has_constraint(self) -> bool:
        return bool(self.constrained or self.skipped)


def has_injected(model: ShipmentModel) -> bool:
    """Whether the model carries any injected solution."""
    return bool(
        model.injected_first_solution_routes
        or model.injected_solution_constraint is not None
        or model.refresh_details_routes
    )


def _finite(x: float | None) -> bool:
    return x is None or (isinstance(x, (int, float)) and abs(x) < float("inf") and x == x)


# -- resolution and checks ---------------------------------------------------------------------


class _Resolver:
    """Resolves labels and indices; with ``add``, reports every problem on the way."""

    def __init__(self, model: ShipmentModel, add: Callable[[str, str], None] | None = None) -> None:
        self.model = model
        self.add = add or (lambda path, description: None)
        self.labels = model.interpret_injected_solutions_using_labels
        self.vehicle_of_label: dict[str, int] = {}
        self.shipment_of_label: dict[str, int] = {}
        if self.labels:
            for j, vehicle in enumerate(model.vehicles):
                if vehicle.label in self.vehicle_of_label:
                    self.add(
                        f"vehicles[{j}].label",
                        f"duplicate label {vehicle.label!r}: with "
                        "interpret_injected_solutions_using_labels, vehicle labels must be unique",
                    )
                self.vehicle_of_label.setdefault(vehicle.label, j)
            for i, shipment in enumerate(model.shipments):
                if shipment.label in self.shipment_of_label:
                    self.add(
                        f"shipments[{i}].label",
                        f"duplicate label {shipment.label!r}: with "
                        "interpret_injected_solutions_using_labels, shipment labels must be unique",
                    )
                self.shipment_of_label.setdefault(shipment.label, i)

    def routes(
        self,
        root: str,
        routes: Sequence[InjectedRoute],
        *,
        need_times: bool = False,
        keep_ignored: bool = False,
    ) -> tuple[list[PlacedRoute], dict[int, int]]:
        """The routes of one injected solution (``root``: the path of its routes), and the map
        from each route's own ``vehicle_index`` to the vehicle it is matched to. Visits of
        ignored shipments are left out unless ``keep_ignored`` (a refresh keeps them)."""
        model = self.model
        n_vehicles = len(model.vehicles)
        out: list[PlacedRoute] = []
        seen_vehicle: dict[int, str] = {}
        seen_label: set[str] = set()
        original: dict[int, int] = {}
        seen_original: set[int] = set()
        done: dict[tuple[int, bool], tuple[int, int, str]] = {}  # (s, pickup) -> (route, j, path)
        for r, route in enumerate(routes):
            path = f"{root}[{r}]"
            if self.labels:
                if route.vehicle_label in seen_label:
                    self.add(f"{path}.vehicle_label", f"duplicate label {route.vehicle_label!r}")
                    continue
                seen_label.add(route.vehicle_label)
                vehicle = self.vehicle_of_label.get(route.vehicle_label)
                if vehicle is None:
                    continue  # Google's rule: a route of an unknown vehicle is removed
                if route.vehicle_index in seen_original:
                    original[route.vehicle_index] = -1  # ambiguous
                else:
                    original[route.vehicle_index] = vehicle
                seen_original.add(route.vehicle_index)
            else:
                vehicle = route.vehicle_index
                if not 0 <= vehicle < n_vehicles:
                    self.add(
                        f"{path}.vehicle_index",
                        f"vehicle index {vehicle} out of range [0, {n_vehicles})",
                    )
                    continue
                original[vehicle] = vehicle
            if vehicle in seen_vehicle:
                self.add(
                    f"{path}.vehicle_index",
                    f"vehicle {vehicle} already has a route ({seen_vehicle[vehicle]})",
                )
                continue
            seen_vehicle[vehicle] = path
            placed = self._visits(path, route, vehicle, len(out), done)
            self._times(path, route, need_times and bool(placed))
            visits = tuple(
                p for p in placed if keep_ignored or not model.shipments[p.shipment].ignore
            )
            out.append(
                PlacedRoute(
                    path, vehicle, visits, route.vehicle_start_time, route.vehicle_end_time,
                    route.breaks,
                )
            )  # fmt: skip
        for (s, pickup), (r, j, vpath) in sorted(done.items()):
            shipment = model.shipments[s]
            if pickup and shipment.deliveries and (s, False) not in done:
                self.add(vpath, f"shipment {s} is picked up but not delivered on this route")
            if not pickup and shipment.pickups and (s, True) not in done:
                self.add(vpath, f"shipment {s} is delivered but not picked up on this route")
            if pickup and (s, False) in done:
                rd, jd, dpath = done[(s, False)]
                if rd != r:
                    self.add(dpath, f"shipment {s} is picked up and delivered on different routes")
                elif jd < j:
                    self.add(dpath, f"shipment {s} is delivered before it is picked up")
        return out, original

    def _visits(
        self,
        path: str,
        route: InjectedRoute,
        vehicle: int,
        r: int,
        done: dict[tuple[int, bool], tuple[int, int, str]],
    ) -> list[Placed]:
        model = self.model
        n = len(model.shipments)
        placed: list[Placed] = []
        for j, visit in enumerate(route.visits):
            vpath = f"{path}.visits[{j}]"
            if self.labels:
                found = self.shipment_of_label.get(visit.shipment_label)
                if found is None:
                    continue  # Google's rule: a visit of an unknown shipment is removed
                s = found
            else:
                s = visit.shipment_index
                if not 0 <= s < n:
                    self.add(f"{vpath}.shipment_index", f"shipment index {s} out of range [0, {n})")
                    continue
            shipment = model.shipments[s]
            alternatives = shipment.pickups if visit.is_pickup else shipment.deliveries
            kind = "pickup" if visit.is_pickup else "delivery"
            k = visit.visit_request_index
            if not 0 <= k < len(alternatives):
                self.add(
                    f"{vpath}.visit_request_index",
                    f"shipment {s} has no {kind} {k} ({len(alternatives)} {kind} alternatives)",
                )
                continue
            if (s, visit.is_pickup) in done:
                self.add(
                    f"{vpath}.shipment_index",
                    f"shipment {s}'s {kind} is already visited ({done[(s, visit.is_pickup)][2]})",
                )
                continue
            done[(s, visit.is_pickup)] = (r, j, vpath)
            allowed = shipment.allowed_vehicle_indices
            if allowed and vehicle not in allowed:
                self.add(
                    f"{vpath}.shipment_index",
                    f"vehicle {vehicle} is not in shipment {s}'s allowed_vehicle_indices",
                )
            if not _finite(visit.start_time):
                self.add(f"{vpath}.start_time", "must be a finite time")
                continue
            placed.append(Placed(vpath, s, visit.is_pickup, k, visit.start_time))
        return placed

    def _times(self, path: str, route: InjectedRoute, need: bool) -> None:
        times: list[tuple[str, float | None]] = [
            (f"{path}.vehicle_start_time", route.vehicle_start_time)
        ]
        times += [
            (f"{path}.visits[{j}].start_time", v.start_time) for j, v in enumerate(route.visits)
        ]
        times.append((f"{path}.vehicle_end_time", route.vehicle_end_time))
        last: float | None = None
        for name, t in times:
            if t is None:
                if need:
                    self.add(name, f"is required on the routes of {CONSTRAINT}")
                continue
            if not _finite(t):
                self.add(name, "must be a finite time")
                continue
            if last is not None and t < last:
                self.add(name, "times must not decrease along the route")
            last = t

    def skipped(self, performed: set[int]) -> list[tuple[int, str]]:
        constraint = self.model.injected_solution_constraint
        assert constraint is not None
        n = len(self.model.shipments)
        out: list[tuple[int, str]] = []
        seen: set[int] = set()
        for k, entry in enumerate(constraint.skipped_shipments):
            path = f"{CONSTRAINT}.skipped_shipments[{k}]"
            if self.labels:
                found = self.shipment_of_label.get(entry.label)
                if found is None:
                    continue  # removed (Google's rule)
                s, where = found, f"{path}.label"
            else:
                s, where = entry.index, f"{path}.index"
                if not 0 <= s < n:
                    self.add(where, f"shipment index {s} out of range [0, {n})")
                    continue
            if s in seen:
                self.add(where, f"shipment {s} is listed twice")
                continue
            if s in performed:
                self.add(where, f"shipment {s} is also visited on a route of {CONSTRAINT}")
                continue
            seen.add(s)
            out.append((s, path))
        return out

    def relaxations(self, original: Mapping[int, int]) -> dict[int, tuple[Relaxation, ...]]:
        """Relaxations per vehicle; the default ones under key -1."""
        constraint = self.model.injected_solution_constraint
        assert constraint is not None
        n_vehicles = len(self.model.vehicles)
        out: dict[int, tuple[Relaxation, ...]] = {}
        default_at: str | None = None
        for c, relaxation in enumerate(constraint.constraint_relaxations):
            path = f"{CONSTRAINT}.constraint_relaxations[{c}]"
            self._check_relaxations(path, relaxation)
            if not relaxation.vehicle_indices:
                if default_at is not None:
                    self.add(
                        f"{path}.vehicle_indices",
                        f"at most one constraint relaxation may leave vehicle_indices empty "
                        f"({default_at} does)",
                    )
                default_at = path
                out[-1] = relaxation.relaxations
                continue
            for k, index in enumerate(relaxation.vehicle_indices):
                where = f"{path}.vehicle_indices[{k}]"
                if self.labels:
                    mapped = original.get(index)
                    if mapped is None:
                        continue  # a vehicle of no injected route: nothing to relax
                    if mapped < 0:
                        self.add(
                            where,
                            f"vehicle index {index} is the vehicle_index of several routes: "
                            "with interpret_injected_solutions_using_labels it must be unambiguous",
                        )
                        continue
                    vehicle = mapped
                else:
                    vehicle = index
                    if not 0 <= vehicle < n_vehicles:
                        self.add(where, f"vehicle index {vehicle} out of range [0, {n_vehicles})")
                        continue
                if vehicle in out:
                    self.add(
                        where, f"vehicle {vehicle} is listed in several constraint relaxations"
                    )
                    continue
                out[vehicle] = relaxation.relaxations
        return out

    def _check_relaxations(self, path: str, relaxation: ConstraintRelaxation) -> None:
        for k, r in enumerate(relaxation.relaxations):
            rp = f"{path}.relaxations[{k}]"
            if r.level not in (_SEQUENCE, _VEHICLE, _FREE):
                self.add(f"{rp}.level", "must be specified (a relaxation level)")
            if r.threshold_visit_count < 0:
                self.add(f"{rp}.threshold_visit_count", "must not be negative")
            if not _finite(r.threshold_time):
                self.add(f"{rp}.threshold_time", "must be a finite time")


def relaxations_of(
    relaxations: Mapping[int, tuple[Relaxation, ...]], vehicle: int
) -> tuple[Relaxation, ...]:
    """The relaxations that apply to ``vehicle``'s route (none: fully constrained)."""
    if vehicle in relaxations:
        return relaxations[vehicle]
    return relaxations.get(-1, ())


def route_levels(
    start_time: float | None,
    visit_times: Sequence[float | None],
    end_time: float | None,
    relaxations: Sequence[Relaxation],
) -> tuple[RelaxationLevel, list[RelaxationLevel], RelaxationLevel]:
    """The level of the vehicle start, of each visit and of the vehicle end (Google's rule:
    the most relaxed level whose thresholds the event meets; a visit j meets a relaxation when
    it starts at or after ``threshold_time`` and ``j + 1 >= threshold_visit_count``, the start
    when ``threshold_visit_count`` is 0, the end when ``len(visits) + 1 >=``)."""

    def level(t: float | None, count: int) -> RelaxationLevel:
        best = _FIXED
        for r in relaxations:
            if r.threshold_time is not None and (t is None or t < r.threshold_time):
                continue
            if count >= r.threshold_visit_count and r.level > best:
                best = RelaxationLevel(r.level)
        return best

    n = len(visit_times)
    return (
        level(start_time, 0),
        [level(t, j + 1) for j, t in enumerate(visit_times)],
        level(end_time, n + 1),
    )


def _resolve(model: ShipmentModel, add: Callable[[str, str], None] | None) -> Injected:
    resolver = _Resolver(model, add)
    first: list[PlacedRoute] = []
    constrained: list[PlacedRoute] = []
    refresh: list[PlacedRoute] = []
    skipped: list[tuple[int, str]] = []
    if model.injected_first_solution_routes:
        first, _ = resolver.routes(FIRST, model.injected_first_solution_routes)
    constraint = model.injected_solution_constraint
    if constraint is not None:
        routes, original = resolver.routes(
            f"{CONSTRAINT}.routes", constraint.routes, need_times=True
        )
        performed = {p.shipment for route in routes for p in route.visits}
        skipped = resolver.skipped(performed)
        relaxations = resolver.relaxations(original)
        for route in routes:
            rels = relaxations_of(relaxations, route.vehicle)
            start, levels, end = route_levels(
                route.start_time, [p.start_time for p in route.visits], route.end_time, rels
            )
            visits = tuple(
                dataclasses.replace(p, level=lv) for p, lv in zip(route.visits, levels, strict=True)
            )
            constrained.append(
                dataclasses.replace(route, visits=visits, start_level=start, end_level=end)
            )
    if model.refresh_details_routes:
        if model.injected_first_solution_routes or constraint is not None:
            resolver.add(
                REFRESH, f"must not be used together with {FIRST} or {CONSTRAINT} (Google's rule)"
            )
        refresh, _ = resolver.routes(REFRESH, model.refresh_details_routes, keep_ignored=True)
    return Injected(tuple(first), tuple(constrained), tuple(skipped), tuple(refresh))


def injected_violations(model: ShipmentModel) -> list[FieldViolation]:
    """Every problem of the model's injected solutions (paths relative to the request, or to
    the model for its labels)."""
    if not has_injected(model):
        return []
    found: list[FieldViolation] = []
    _resolve(model, lambda path, description: found.append(FieldViolation(path, description)))
    return found


def resolve(model: ShipmentModel) -> Injected:
    """The injected solutions of a valid model, resolved."""
    if not has_injected(model):
        return Injected()
    return _resolve(model, None)


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
            if p.level >= _FREE or p.shipment in kept:
                continue
            kept.add(p.shipment)
            s = p.shipment
            if model.vehicles[v].ignore:
                routable[s], allowed[s] = False, ()
                reasons[s] = (SkipReason(SkipReasonCode.VEHICLE_IGNORED, v),)
            elif not routable[s] or v not in allowed[s]:
                if p.level <= _SEQUENCE:
                    why = ", ".join(r.code.name for r in reasons.get(s, ())) or "pre-check"
                    violations.append(
                        FieldViolation(
                            p.path,
                            f"the injected solution keeps shipment {s} on vehicle {v}, which "
                            f"cannot perform it ({why})",
                        )
                    )
                elif routable[s]:
                    routable[s], allowed[s] = False, ()
                    reasons[s] = (SkipReason(SkipReasonCode.VEHICLE_NOT_ALLOWED, v),)
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
    start = stops.vehicle_start(v)
    windows = problem.windows
    if route.start_level == _FIXED and route.start_time is not None:
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
        if p.level > _SEQUENCE:
            break
        stop = p.stop(problem)
        arrive = t + int(problem.service_s[prev]) + int(travel[prev, stop])
        if p.level == _FIXED and p.start_time is not None:
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
    return out


def initial_routes(
    problem: Problem, injected: Injected, *, kept_only: bool = False
) -> list[list[int]] | None:
    """Visit stops per vehicle to start the search from: the constraint's routes, and the
    first-solution routes of the other vehicles (visits the problem does not allow left out);
    with ``kept_only``, only the visits the constraint keeps on their vehicle; None when
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
            usable = [
                p
                for p in route.visits
                if (not kept_only or p.level < _FREE)
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
        arrive = t + int(problem.service_s[prev]) + int(travel[prev, stop])
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
        ready = ta + int(problem.service_s[a])
        taken = sum(d for bs, d in breaks if bs >= ready and bs + d <= tb)
        if tb < ready + int(travel[a, b]) + taken:
            out.append(
                FieldViolation(
                    where,
                    f"is too early: the previous stop ends at {_when(problem, ready)} and "
                    f"travel takes {int(travel[a, b])} s",
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
