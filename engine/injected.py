"""Re-optimisation during the day: injected solutions, with Google's semantics.

Three fields of Google's ``OptimizeToursRequest`` (here on :class:`~engine.model.ShipmentModel`,
see :data:`~engine.model.REQUEST_LEVEL_FIELDS`):

- ``injected_first_solution_routes``: a warm start (the search starts from them);
- ``injected_solution_constraint``: routes whose visits stay as their relaxation level says
  (:class:`~engine.model.RelaxationLevel`), and skipped shipments that stay skipped;
- ``refresh_details_routes``: routes evaluated as they are, without a search.

With ``interpret_injected_solutions_using_labels``, routes name their vehicle by
``vehicle_label`` and visits their shipment by ``shipment_label`` (skipped shipments by
``label``); a label the model does not have removes the route, the visit or the skipped entry
(Google's rule). Visits of ignored shipments are removed from injected routes; a shipment kept
on an ignored vehicle (not relaxed to ``RELAX_ALL_AFTER_THRESHOLD``) is skipped.

:func:`injected_violations` is the model check of these fields (paths relative to the request);
:func:`resolve` turns them into visits and relaxation levels. What they do to a solve is in
:mod:`engine.reoptimisation`.

Why one module of over 500 lines: the three injected-solution fields share one way of reading
routes (labels or indices, visits, their headings) and one set of field-path messages; the
solve-time side is already apart in :mod:`engine.reoptimisation`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from engine.errors import FieldViolation
from engine.model import (
    ConstraintRelaxation,
    InjectedRoute,
    Relaxation,
    RelaxationLevel,
    ShipmentModel,
)
from engine.problem import Problem

__all__ = [
    "CONSTRAINT",
    "FIRST",
    "FIXED",
    "FREE",
    "REFRESH",
    "SEQUENCE",
    "VEHICLE",
    "Injected",
    "Placed",
    "PlacedRoute",
    "has_injected",
    "injected_violations",
    "relaxations_of",
    "resolve",
    "route_levels",
    "with_headings",
]

FIRST = "injected_first_solution_routes"
CONSTRAINT = "injected_solution_constraint"
REFRESH = "refresh_details_routes"

FREE = RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD
FIXED = RelaxationLevel.LEVEL_UNSPECIFIED
SEQUENCE = RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD
VEHICLE = RelaxationLevel.RELAX_VISIT_TIMES_AND_SEQUENCE_AFTER_THRESHOLD


@dataclass(frozen=True)
class Placed:
    """A visit of an injected route, resolved: its field path, shipment, alternative, time and
    (in a constraint) relaxation level."""

    path: str
    shipment: int
    is_pickup: bool
    alternative: int
    start_time: float | None
    level: RelaxationLevel = FREE
    heading: int = 0
    """With ``avoid_u_turns``: the heading its stop has (see :func:`with_headings`)."""

    def stops(self, problem: Problem) -> list[int]:
        """The stops of its visit request: one, or one per heading."""
        stops = problem.stops
        of = stops.pickup_stops if self.is_pickup else stops.delivery_stops
        return [i for i in of[self.shipment] if stops.alternative[i] == self.alternative]

    def stop(self, problem: Problem) -> int:
        options = self.stops(problem)
        return next((i for i in options if problem.stops.heading_of(i) == self.heading), options[0])


@dataclass(frozen=True)
class PlacedRoute:
    """An injected route, resolved (vehicle index, visits of shipments that are not ignored)."""

    path: str
    vehicle: int
    visits: tuple[Placed, ...]
    start_time: float | None
    end_time: float | None
    breaks: tuple[tuple[float, float], ...] = ()
    start_level: RelaxationLevel = FREE
    end_level: RelaxationLevel = FREE

    @property
    def closed(self) -> bool:
        """Fully constrained up to its end: no visit may be added (a non-empty route whose
        end is not relaxed)."""
        return bool(self.visits) and self.end_level == FIXED


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


def with_headings(injected: Injected, problem: Problem) -> Injected:
    """``injected`` with each visit of a request with ``avoid_u_turns`` at the heading that makes
    its route's travel (start to end, in the route's order) shortest."""
    if problem.stops.heading is None:
        return injected

    def best(route: PlacedRoute) -> PlacedRoute:
        stops, travel = problem.stops, problem.travel_s(route.vehicle)
        paths: dict[int, tuple[float, tuple[int, ...]]] = {
            stops.vehicle_start(route.vehicle): (0.0, ())
        }
        for p in route.visits:
            paths = {
                o: min(
                    ((cost + float(travel[s, o]), (*path, o)) for s, (cost, path) in paths.items()),
                    key=lambda entry: entry[0],
                )
                for o in p.stops(problem)
            }
        end = stops.vehicle_end(route.vehicle)
        _, chosen = min(
            ((cost + float(travel[s, end]), path) for s, (cost, path) in paths.items()),
            key=lambda entry: entry[0],
        )
        visits = tuple(
            replace(p, heading=max(stops.heading_of(i), 0))
            for p, i in zip(route.visits, chosen, strict=True)
        )
        return replace(route, visits=visits)

    return replace(
        injected,
        first_routes=tuple(best(r) for r in injected.first_routes),
        constrained=tuple(best(r) for r in injected.constrained),
        refresh=tuple(best(r) for r in injected.refresh),
    )


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
            if r.level not in (SEQUENCE, VEHICLE, FREE):
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
        best = FIXED
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
