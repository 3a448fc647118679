"""Independent feasibility and cost checker for engine solutions.

Imports only the problem and result dataclasses (``engine.model``, ``engine.solution``),
numpy and the standard library: travel, loads, windows, breaks, metrics and costs are all
recomputed here from the model and the reported schedule, following README "Semantics".

:func:`check_solution` collects every problem and raises one ``AssertionError`` listing them,
one line each, prefixed with the path of the offending element (``routes[0].visits[2]``).
The small public helpers (travel, windows, loads, limits, costs) are also used by
``tests/bruteforce.py`` so that each rule has a single implementation.

One module of over 500 lines on purpose: an independent checker is read as one text against the
README's rules, and keeping it in one file with no import from the engine's logic makes its
independence easy to see (``tests/test_architecture.py`` checks its imports).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.model import (
    IncompatibilityMode,
    InjectedRoute,
    InjectedVisit,
    LatLng,
    Relaxation,
    RequirementMode,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from engine.solution import AggregatedMetrics, Route, SkipReasonCode, Solution, SolveStatus

__all__ = [
    "COST_ABS_TOL",
    "COST_REL_TOL",
    "DIST_TOL",
    "EARTH_RADIUS_M",
    "GLOBAL_DURATION_COST_KEY",
    "INJECTED_TIME_TOL",
    "LOAD_COST_HOUR_KEY",
    "LOAD_COST_KM_KEY",
    "PENALTY_COST_KEY",
    "ROUTE_COST_KEYS",
    "TIME_TOL",
    "InjectedLock",
    "Travel",
    "VisitRef",
    "check_solution",
    "earliest_in_windows",
    "hard_windows",
    "haversine_m",
    "injected_locks",
    "load_cost_terms",
    "load_interval_problems",
    "load_limit_problems",
    "pickup_delivery_limit_problems",
    "route_cost_terms",
    "route_limit_problems",
    "route_loads",
    "route_type_problems",
    "transition_terms",
    "unloading_problems",
    "vehicle_allowed",
    "visit_demands",
    "visit_duration",
    "visit_request",
]

TIME_TOL = 1e-6
"""Absolute tolerance on times and durations, in seconds (per term of a sum)."""

DIST_TOL = 1e-6
"""Absolute tolerance on distances, in meters (per term of a sum)."""

COST_REL_TOL = 1e-9
COST_ABS_TOL = 1e-6

EARTH_RADIUS_M = 6_371_008.8

ROUTE_COST_KEYS = (
    "model.vehicles.fixed_cost",
    "model.vehicles.cost_per_kilometer",
    "model.vehicles.cost_per_traveled_hour",
    "model.vehicles.cost_per_hour",
    "model.shipments.pickups.time_windows.cost_per_hour_before_soft_start_time",
    "model.shipments.pickups.time_windows.cost_per_hour_after_soft_end_time",
    "model.shipments.deliveries.time_windows.cost_per_hour_before_soft_start_time",
    "model.shipments.deliveries.time_windows.cost_per_hour_after_soft_end_time",
    "model.vehicles.start_time_windows.cost_per_hour_before_soft_start_time",
    "model.vehicles.start_time_windows.cost_per_hour_after_soft_end_time",
    "model.vehicles.end_time_windows.cost_per_hour_before_soft_start_time",
    "model.vehicles.end_time_windows.cost_per_hour_after_soft_end_time",
    "model.shipments.pickups.cost",
    "model.shipments.deliveries.cost",
    "model.shipments.costs_per_vehicle",
    "model.vehicles.route_duration_limit.cost_per_hour_after_soft_max",
    "model.vehicles.route_distance_limit.cost_per_kilometer_above_soft_max",
    "model.vehicles.load_limits.cost_per_unit_above_soft_max",
)
"""Keys of a route's ``route_costs`` (the request field causing each cost)."""

SOFT_DURATION_KEY, SOFT_DISTANCE_KEY, SOFT_LOAD_KEY = ROUTE_COST_KEYS[-3:]

QUADRATIC_DURATION_KEY = (
    "model.vehicles.route_duration_limit.cost_per_square_hour_after_quadratic_soft_max"
)
SOFT_TRAVEL_KEY = "model.vehicles.travel_duration_limit.cost_per_hour_after_soft_max"
QUADRATIC_TRAVEL_KEY = (
    "model.vehicles.travel_duration_limit.cost_per_square_hour_after_quadratic_soft_max"
)
ROUTE_COST_KEYS += (QUADRATIC_DURATION_KEY, SOFT_TRAVEL_KEY, QUADRATIC_TRAVEL_KEY)
"""With the driver-hours costs (issue 15)."""
TRANSITION_COST_KEYS = (
    "model.transition_attributes.cost",
    "model.transition_attributes.cost_per_kilometer",
    "model.transition_attributes.distance_limit.cost_per_kilometer_above_soft_max",
)
ROUTE_COST_KEYS += TRANSITION_COST_KEYS
"""With the transition attributes' costs (issue 15)."""
LOAD_COST_KM_KEY = "model.vehicles.load_limits.cost_per_kilometer"
LOAD_COST_HOUR_KEY = "model.vehicles.load_limits.cost_per_traveled_hour"
ROUTE_COST_KEYS += (LOAD_COST_KM_KEY, LOAD_COST_HOUR_KEY)
"""With the load-dependent costs (issue 15)."""

PENALTY_COST_KEY = "model.shipments.penalty_cost"
GLOBAL_DURATION_COST_KEY = "model.global_duration_cost_per_hour"

VisitRef = tuple[int, bool, int]
"""A performed visit: (shipment index, is pickup, visit request index)."""


# --------------------------------------------------------------------------------------------
# Rules shared with the brute force
# --------------------------------------------------------------------------------------------

INJECTED_TIME_TOL = 1.0
"""Kept (fixed) times of an injected solution constraint hold at the solver's one-second
resolution."""


@dataclass
class InjectedLock:
    """One route of ``injected_solution_constraint`` as README "Re-optimisation" reads it:
    ``visits`` (ignored shipments removed) with their relaxation level and given time."""

    vehicle: int
    visits: list[tuple[VisitRef, int, float | None]]
    start: tuple[int, float | None]
    end: tuple[int, float | None]

    @property
    def prefix(self) -> list[VisitRef]:
        """The kept sequence from the vehicle start (levels 0 and 1)."""
        return [ref for ref, level, _ in self.visits if level <= 1]

    @property
    def closed(self) -> bool:
        return bool(self.visits) and self.end[0] == 0


def _levels(route: InjectedRoute, relaxations: Sequence[Relaxation]) -> tuple[int, list[int], int]:
    def level(when: float | None, count: int) -> int:
        best = 0
        for r in relaxations:
            if r.threshold_time is not None and (when is None or when < r.threshold_time):
                continue
            if count >= r.threshold_visit_count:
                best = max(best, int(r.level))
        return best

    return (
        level(route.vehicle_start_time, 0),
        [level(v.start_time, j + 1) for j, v in enumerate(route.visits)],
        level(route.vehicle_end_time, len(route.visits) + 1),
    )


def injected_locks(model: ShipmentModel) -> tuple[list[InjectedLock], set[int]]:
    """The routes of the model's ``injected_solution_constraint`` with their levels, and the
    shipments it keeps skipped (labels matched when the model says so)."""
    constraint = model.injected_solution_constraint
    if constraint is None:
        return [], set()
    by_labels = model.interpret_injected_solutions_using_labels
    vehicle_of = {v.label: j for j, v in enumerate(model.vehicles)}
    shipment_of = {s.label: i for i, s in enumerate(model.shipments)}
    original: dict[int, int] = {}
    routes: list[tuple[int, InjectedRoute]] = []
    for route in constraint.routes:
        v = vehicle_of.get(route.vehicle_label) if by_labels else route.vehicle_index
        if v is None:
            continue
        original[route.vehicle_index] = v
        routes.append((v, route))
    relaxations: dict[int, Sequence[Relaxation]] = {}
    default: Sequence[Relaxation] = ()
    for group in constraint.constraint_relaxations:
        if not group.vehicle_indices:
            default = group.relaxations
        for index in group.vehicle_indices:
            target = original.get(index) if by_labels else index
            if target is not None:
                relaxations[target] = group.relaxations
    locks = []
    for v, route in routes:
        # Visits of unknown or ignored shipments leave the route first; the levels (visit
        # counts) are those of the route that is left.
        kept = []
        for visit in route.visits:
            s = shipment_of.get(visit.shipment_label) if by_labels else visit.shipment_index
            if s is not None and not model.shipments[s].ignore:
                kept.append(((s, visit.is_pickup, visit.visit_request_index), visit.start_time))
        left = InjectedRoute(
            v,
            tuple(InjectedVisit(start_time=t) for _, t in kept),
            route.vehicle_start_time,
            route.vehicle_end_time,
        )
        start, levels, end = _levels(left, relaxations.get(v, default))
        visits = [(ref, level, t) for (ref, t), level in zip(kept, levels, strict=True)]
        locks.append(
            InjectedLock(
                v, visits, (start, route.vehicle_start_time), (end, route.vehicle_end_time)
            )
        )
    skipped = set()
    for entry in constraint.skipped_shipments:
        s = shipment_of.get(entry.label) if by_labels else entry.index
        if s is not None:
            skipped.add(s)
    return locks, skipped


def haversine_m(a: LatLng, b: LatLng) -> float:
    """Great-circle distance in meters (haversine, Earth radius 6 371 008.8 m)."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlng = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def visit_request(model: ShipmentModel, ref: VisitRef) -> VisitRequest:
    """The VisitRequest a visit performs (IndexError when the reference is invalid)."""
    shipment_index, is_pickup, request_index = ref
    if shipment_index < 0 or request_index < 0:
        raise IndexError(ref)
    shipment = model.shipments[shipment_index]
    return (shipment.pickups if is_pickup else shipment.deliveries)[request_index]


class Travel:
    """Travel durations (times the vehicle's multiple) and distances between stops.

    A stop is a :data:`VisitRef`; ``None`` as source is the vehicle start, as destination the
    vehicle end. A leg from a vehicle without start (to a vehicle without end) is zero.
    """

    def __init__(self, model: ShipmentModel, geodesic_meters_per_second: float = 10.0) -> None:
        if not geodesic_meters_per_second > 0:
            raise ValueError("geodesic_meters_per_second must be positive")
        self.model = model
        self.speed = geodesic_meters_per_second
        self.uses_matrices = bool(model.duration_distance_matrices)
        self._src = {t: i for i, t in enumerate(model.duration_distance_matrix_src_tags)}
        self._dst = {t: i for i, t in enumerate(model.duration_distance_matrix_dst_tags)}

    def _tag_index(self, tags: Iterable[str], index: Mapping[str, int], what: str) -> int:
        found = [index[t] for t in tags if t in index]
        if len(found) != 1:
            raise ValueError(f"{what} must carry exactly one matrix tag, has {len(found)}")
        return found[0]

    def _matrix_index(self, vehicle: Vehicle) -> int:
        matrices = self.model.duration_distance_matrices
        if len(matrices) == 1:
            return 0
        found = [i for i, m in enumerate(matrices) if m.vehicle_start_tag in vehicle.start_tags]
        if len(found) != 1:
            raise ValueError(f"vehicle {vehicle.label!r} matches {len(found)} matrices")
        return found[0]

    def has_start(self, vehicle: Vehicle) -> bool:
        """Whether the vehicle has a start location (start tags with client matrices)."""
        if self.uses_matrices:
            return bool(vehicle.start_tags)
        return vehicle.start_location is not None

    def has_end(self, vehicle: Vehicle) -> bool:
        """Whether the vehicle has an end location (end tags with client matrices)."""
        if self.uses_matrices:
            return bool(vehicle.end_tags)
        return vehicle.end_location is not None

    def leg(
        self, vehicle_index: int, src: VisitRef | None, dst: VisitRef | None
    ) -> tuple[float, float]:
        """(travel duration in seconds, distance in meters) of one leg of a vehicle."""
        vehicle = self.model.vehicles[vehicle_index]
        if (src is None and not self.has_start(vehicle)) or (
            dst is None and not self.has_end(vehicle)
        ):
            return 0.0, 0.0
        if self.uses_matrices:
            i = self._tag_index(
                vehicle.start_tags if src is None else visit_request(self.model, src).tags,
                self._src,
                "the vehicle start" if src is None else f"visit {src}",
            )
            j = self._tag_index(
                vehicle.end_tags if dst is None else visit_request(self.model, dst).tags,
                self._dst,
                "the vehicle end" if dst is None else f"visit {dst}",
            )
            matrix = self.model.duration_distance_matrices[self._matrix_index(vehicle)]
            duration = float(np.asarray(matrix.durations_s, dtype=np.float64)[i, j])
            distance = float(np.asarray(matrix.distances_m, dtype=np.float64)[i, j])
        else:
            a = vehicle.start_location if src is None else self._location(src)
            b = vehicle.end_location if dst is None else self._location(dst)
            if a is None or b is None:
                raise ValueError(f"vehicle {vehicle_index} start/end has no location")
            distance = haversine_m(a, b)
            duration = distance / self.speed
        return duration * vehicle.travel_duration_multiple, distance

    def _location(self, ref: VisitRef) -> LatLng:
        location = visit_request(self.model, ref).arrival_location
        if location is None:
            raise ValueError(f"visit {ref} has no arrival_location and there are no matrices")
        return location


def hard_windows(model: ShipmentModel, windows: Sequence[TimeWindow]) -> list[tuple[float, float]]:
    """Hard ``(start, end)`` bounds of a window list; unset bounds and no window: the horizon."""
    if not windows:
        return [(model.global_start_time, model.global_end_time)]
    return [
        (
            model.global_start_time if w.start_time is None else w.start_time,
            model.global_end_time if w.end_time is None else w.end_time,
        )
        for w in windows
    ]


def _window_containing(t: float, bounds: Sequence[tuple[float, float]]) -> int | None:
    for i, (lo, hi) in enumerate(bounds):
        if lo - TIME_TOL <= t <= hi + TIME_TOL:
            return i
    return None


def _in_horizon(model: ShipmentModel, t: float) -> bool:
    return model.global_start_time - TIME_TOL <= t <= model.global_end_time + TIME_TOL


def earliest_in_windows(
    model: ShipmentModel, t: float, windows: Sequence[TimeWindow]
) -> float | None:
    """Earliest time >= t inside one hard window and the horizon; None if there is none."""
    best: float | None = None
    for lo, hi in hard_windows(model, windows):
        lo, hi = max(lo, model.global_start_time), min(hi, model.global_end_time)
        if t <= hi + TIME_TOL:
            candidate = max(t, lo)
            if candidate <= hi + TIME_TOL and (best is None or candidate < best):
                best = candidate
    return best


def _soft_window(windows: Sequence[TimeWindow]) -> TimeWindow | None:
    """The window whose soft bounds apply (soft bounds are allowed on a single window only)."""
    return windows[0] if len(windows) == 1 else None


def _soft_costs(t: float, windows: Sequence[TimeWindow]) -> tuple[float, float]:
    """(cost before soft start, cost after soft end) of starting at t."""
    w = _soft_window(windows)
    if w is None:
        return 0.0, 0.0
    before = after = 0.0
    if w.soft_start_time is not None:
        rate = w.cost_per_hour_before_soft_start_time or 0.0
        before = rate * max(0.0, w.soft_start_time - t) / 3600.0
    if w.soft_end_time is not None:
        rate = w.cost_per_hour_after_soft_end_time or 0.0
        after = rate * max(0.0, t - w.soft_end_time) / 3600.0
    return before, after


def _delay(t: float, windows: Sequence[TimeWindow]) -> float:
    w = _soft_window(windows)
    if w is None or w.soft_end_time is None:
        return 0.0
    return max(0.0, t - w.soft_end_time)


def vehicle_allowed(model: ShipmentModel, shipment_index: int, vehicle_index: int) -> bool:
    """Whether the shipment may be performed by the vehicle (empty allowed list: any)."""
    allowed = model.shipments[shipment_index].allowed_vehicle_indices
    return not allowed or vehicle_index in allowed


def visit_demands(model: ShipmentModel, ref: VisitRef) -> dict[str, int]:
    """Unsigned demands of the visit ``ref``: its shipment's ``load_demands`` plus its visit
    request's own ``load_demands`` (Google: "added to the demands listed in
    Shipment.load_demands")."""
    s, is_pickup, k = ref
    shipment = model.shipments[s]
    request = (shipment.pickups if is_pickup else shipment.deliveries)[k]
    total = dict(shipment.load_demands)
    for t, a in request.load_demands.items():
        total[t] = total.get(t, 0) + a
    return total


def route_loads(
    model: ShipmentModel, vehicle_index: int, refs: Sequence[VisitRef]
) -> list[dict[str, int]]:
    """Load on board during each of the len(refs) + 1 transitions of a route.

    Reported types: those in the vehicle's ``load_limits`` plus those with a non-zero demand
    of a visit on the route (shipment plus visit request demands). Delivery-only loads (of the
    delivery alternative performed) are on board from the start.
    """
    vehicle = model.vehicles[vehicle_index]
    demands = [visit_demands(model, ref) for ref in refs]
    types = set(vehicle.load_limits)
    for d in demands:
        types.update(t for t, a in d.items() if a != 0)
    load = dict.fromkeys(sorted(types), 0)
    for (s, _, _), d in zip(refs, demands, strict=True):
        if not model.shipments[s].pickups:
            for t in types:
                load[t] += d.get(t, 0)
    loads = [dict(load)]
    for (_, is_pickup, _), d in zip(refs, demands, strict=True):
        sign = 1 if is_pickup else -1
        for t in types:
            load[t] += sign * d.get(t, 0)
        loads.append(dict(load))
    return loads


def load_limit_problems(vehicle: Vehicle, load: Mapping[str, int]) -> list[str]:
    """Why a load on board violates the vehicle's limits (empty when it does not)."""
    problems = []
    for t, max_load in sorted(vehicle.load_limits.items()):
        amount = load.get(t, 0)
        if amount > max_load:
            problems.append(f"load {t!r} = {amount} exceeds max_load {max_load}")
        elif amount < 0:
            problems.append(f"load {t!r} = {amount} is negative")
    return problems


def route_limit_problems(vehicle: Vehicle, duration_s: float, distance_m: float) -> list[str]:
    """Why a route breaks the vehicle's duration or distance limit (empty when it does not)."""
    problems = []
    limit = vehicle.route_duration_limit_s
    if limit is not None and duration_s > limit + TIME_TOL:
        problems.append(f"route duration {duration_s} s exceeds route_duration_limit {limit} s")
    limit = vehicle.route_distance_limit_m
    if limit is not None and distance_m > limit + DIST_TOL:
        problems.append(f"route distance {distance_m} m exceeds route_distance_limit {limit} m")
    return problems


def visit_duration(vehicle: Vehicle, request: VisitRequest) -> float:
    """Time ``vehicle`` spends at ``request``: its duration plus, for each of its visit types,
    the vehicle's ``extra_visit_duration_for_visit_type`` (Google's, issue 15)."""
    extras = vehicle.extra_visit_duration_for_visit_type
    return request.duration_s + math.fsum(extras.get(t, 0.0) for t in set(request.visit_types))


def unloading_problems(
    model: ShipmentModel, vehicle: Vehicle, order: Sequence[VisitRef]
) -> list[str]:
    """Why the visit ``order`` of a route breaks its vehicle's ``unloading_policy`` (Google's:
    with LAST_IN_FIRST_OUT, 1, each delivery of a shipment that has both a pickup and a
    delivery is of the one picked up last among those on board; with FIRST_IN_FIRST_OUT, 2,
    of the one picked up first; other shipments are free)."""
    policy = int(vehicle.unloading_policy)
    if policy not in (1, 2):
        return []
    on_board: list[int] = []
    problems = []
    for s, is_pickup, _ in order:
        shipment = model.shipments[s]
        if not (shipment.pickups and shipment.deliveries):
            continue
        if is_pickup:
            on_board.append(s)
            continue
        if s not in on_board:
            continue  # reported elsewhere (delivery before pickup)
        expected = on_board[-1] if policy == 1 else on_board[0]
        if s != expected:
            name = "LAST_IN_FIRST_OUT" if policy == 1 else "FIRST_IN_FIRST_OUT"
            problems.append(
                f"unloading_policy {name}: delivers shipment {s} while {expected} is due first"
            )
        on_board.remove(s)
    return problems


def transition_terms(
    model: ShipmentModel,
    vehicle_index: int,
    src: VisitRef | None,
    dst: VisitRef | None,
    distance_m: float,
) -> tuple[float, dict[str, float]]:
    """(delay in seconds, costs by key) of the transition from ``src`` (None: the vehicle
    start) to ``dst`` (None: the vehicle end) of ``distance_m`` meters: Google's
    ``TransitionAttributes``. An attribute applies when the source's tags (``VisitRequest.tags``
    or ``Vehicle.start_tags``) contain its ``src_tag`` (or, with ``excluded_src_tag``, do not
    contain that), and the destination's tags (``VisitRequest.tags`` or ``Vehicle.end_tags``)
    likewise; the delays and costs of every applying attribute add up: ``cost``,
    ``cost_per_kilometer`` per km and ``cost_per_kilometer_above_soft_max`` per km beyond
    ``soft_max_meters``."""
    vehicle = model.vehicles[vehicle_index]
    src_tags = set(vehicle.start_tags if src is None else visit_request(model, src).tags)
    dst_tags = set(vehicle.end_tags if dst is None else visit_request(model, dst).tags)
    delay = 0.0
    fixed_key, km_key, soft_key = TRANSITION_COST_KEYS
    costs = dict.fromkeys(TRANSITION_COST_KEYS, 0.0)
    for a in model.transition_attributes:
        src_ok = a.src_tag in src_tags if a.src_tag else a.excluded_src_tag not in src_tags
        dst_ok = a.dst_tag in dst_tags if a.dst_tag else a.excluded_dst_tag not in dst_tags
        if not (src_ok and dst_ok):
            continue
        delay += a.delay_s
        costs[fixed_key] += a.cost
        costs[km_key] += a.cost_per_kilometer * distance_m / 1000.0
        if a.distance_limit_soft_max_m is not None:
            over_km = max(0.0, distance_m - a.distance_limit_soft_max_m) / 1000.0
            costs[soft_key] += (a.distance_limit_cost_per_kilometer_above_soft_max or 0.0) * over_km
    return delay, costs


def load_interval_problems(vehicle: Vehicle, loads: Sequence[Mapping[str, int]]) -> list[str]:
    """Why the loads of a route with visits (``loads``: on board before each transition, as
    :func:`route_loads`; the first is the start load, the last the end load) break the vehicle's
    ``start_load_interval`` or ``end_load_interval`` (Google's ``LoadLimit.Interval``: min <=
    load <= max, an unset max unrestricted)."""
    problems = []
    for kind, intervals, load in (
        ("start_load_interval", vehicle.start_load_intervals, loads[0]),
        ("end_load_interval", vehicle.end_load_intervals, loads[-1]),
    ):
        for t, interval in sorted(intervals.items()):
            amount = load.get(t, 0)
            if amount < interval.min_load:
                problems.append(f"{kind}: load {t!r} = {amount} is below min {interval.min_load}")
            if interval.max_load is not None and amount > interval.max_load:
                problems.append(f"{kind}: load {t!r} = {amount} is above max {interval.max_load}")
    return problems


def driver_hours_problems(
    vehicle: Vehicle,
    start: float,
    end: float,
    travel_s: float,
    breaks: Sequence[tuple[float, float]],
) -> list[str]:
    """Why a route breaks its vehicle's travel duration limit or a break frequency constraint
    (``breaks``: (start time, duration) of the route's breaks). Google's frequency rule: any
    interval of the route [start, end] longer than max_inter_break_duration overlaps a break
    of at least min_break_duration, i.e. every gap between such breaks (and the route's ends)
    is at most max_inter_break_duration."""
    problems = []
    travel_limit = vehicle.travel_duration_limit
    max_travel = None if travel_limit is None else travel_limit.max_duration_s
    if max_travel is not None and travel_s > max_travel + TIME_TOL:
        problems.append(
            f"travel duration {travel_s} s exceeds travel_duration_limit {max_travel} s"
        )
    for k, fc in enumerate(vehicle.break_frequency_constraints):
        counted = sorted(
            (b_start, b_start + duration)
            for b_start, duration in breaks
            if duration >= fc.min_break_duration_s - TIME_TOL
        )
        free_from = start
        for b_start, b_end in [*counted, (end, end)]:
            gap = min(b_start, end) - free_from
            if gap > fc.max_inter_break_duration_s + TIME_TOL:
                problems.append(
                    f"frequency_constraints[{k}]: {gap} s from {free_from} without a break of "
                    f"at least {fc.min_break_duration_s} s (at most "
                    f"{fc.max_inter_break_duration_s} s allowed)"
                )
            free_from = max(free_from, b_end)
    return problems


def _driver_hours_cost_terms(
    costs: dict[str, float], vehicle: Vehicle, duration_s: float, travel_s: float
) -> None:
    """Quadratic soft route duration and soft travel duration costs (Google's DurationLimit:
    rate * excess hours, and rate * excess hours squared)."""
    soft = vehicle.route_duration_quadratic_soft_max_s
    if soft is not None:
        hours = max(0.0, duration_s - soft) / 3600.0
        rate = vehicle.route_duration_cost_per_square_hour_after_quadratic_soft_max or 0.0
        costs[QUADRATIC_DURATION_KEY] = rate * hours**2
    limit = vehicle.travel_duration_limit
    if limit is None:
        return
    if limit.soft_max_duration_s is not None:
        hours = max(0.0, travel_s - limit.soft_max_duration_s) / 3600.0
        costs[SOFT_TRAVEL_KEY] = (limit.cost_per_hour_after_soft_max or 0.0) * hours
    if limit.quadratic_soft_max_duration_s is not None:
        hours = max(0.0, travel_s - limit.quadratic_soft_max_duration_s) / 3600.0
        rate = limit.cost_per_square_hour_after_quadratic_soft_max or 0.0
        costs[QUADRATIC_TRAVEL_KEY] = rate * hours**2


def load_cost_terms(
    vehicle: Vehicle,
    legs: Sequence[tuple[float, float]],
    loads: Sequence[Mapping[str, int]],
) -> dict[str, float]:
    """Google's ``LoadLimit.LoadCost`` of a route (issue 15): per transition k, the load of
    each type on board (``loads[k]``, see :func:`route_loads`) costs
    ``below * min(load, threshold) + above * max(0, load - threshold)`` per kilometer and per
    traveled hour of ``legs[k]`` = (travel seconds, meters)."""
    costs = {LOAD_COST_KM_KEY: 0.0, LOAD_COST_HOUR_KEY: 0.0}
    for key, per, by_type in (
        (LOAD_COST_KM_KEY, 1, vehicle.load_costs_per_kilometer),
        (LOAD_COST_HOUR_KEY, 0, vehicle.load_costs_per_traveled_hour),
    ):
        terms = []
        for (seconds, meters), load in zip(legs, loads, strict=True):
            amount = meters / 1000.0 if per else seconds / 3600.0
            for t, c in by_type.items():
                on_board = load.get(t, 0)
                below = min(on_board, c.load_threshold) * c.cost_per_unit_below_threshold
                above = max(0, on_board - c.load_threshold) * c.cost_per_unit_above_threshold
                terms.append((below + above) * amount)
        costs[key] = math.fsum(terms)
    return costs


def route_cost_terms(
    model: ShipmentModel,
    vehicle_index: int,
    *,
    start_time: float,
    end_time: float,
    travel_s: float,
    distance_m: float,
    visit_starts: Sequence[tuple[VisitRef, float]],
    max_loads: Mapping[str, int] | None = None,
    legs: Sequence[tuple[float, float]] | None = None,
    loads: Sequence[Mapping[str, int]] | None = None,
) -> dict[str, float]:
    """Costs of a used route by :data:`ROUTE_COST_KEYS` (zero entries included);
    ``max_loads``: the most on board per load type (for soft load limits); ``legs`` and
    ``loads``: (travel seconds, meters) and the load on board of each transition (for
    load-dependent costs, required when the vehicle has some)."""
    vehicle = model.vehicles[vehicle_index]
    costs = dict.fromkeys(ROUTE_COST_KEYS, 0.0)
    if vehicle.load_costs_per_kilometer or vehicle.load_costs_per_traveled_hour:
        if legs is None or loads is None:
            raise ValueError("load-dependent costs need each transition's leg and load")
        costs.update(load_cost_terms(vehicle, legs, loads))
    costs["model.vehicles.fixed_cost"] = vehicle.fixed_cost
    costs["model.vehicles.cost_per_kilometer"] = vehicle.cost_per_kilometer * distance_m / 1000.0
    costs["model.vehicles.cost_per_traveled_hour"] = (
        vehicle.cost_per_traveled_hour * travel_s / 3600
    )
    costs["model.vehicles.cost_per_hour"] = vehicle.cost_per_hour * (end_time - start_time) / 3600
    for ref, t in visit_starts:
        kind = "pickups" if ref[1] else "deliveries"
        request = visit_request(model, ref)
        before, after = _soft_costs(t, request.time_windows)
        prefix = f"model.shipments.{kind}.time_windows."
        costs[prefix + "cost_per_hour_before_soft_start_time"] += before
        costs[prefix + "cost_per_hour_after_soft_end_time"] += after
        costs[f"model.shipments.{kind}.cost"] += request.cost
    for s in sorted({ref[0] for ref, _ in visit_starts}):
        costs["model.shipments.costs_per_vehicle"] += _cost_per_vehicle(model, s, vehicle_index)
    # Soft limits (Google's DurationLimit, DistanceLimit, LoadLimit): rate times the excess.
    if vehicle.route_duration_soft_max_s is not None:
        over_s = max(0.0, end_time - start_time - vehicle.route_duration_soft_max_s)
        rate = vehicle.route_duration_cost_per_hour_after_soft_max or 0.0
        costs[SOFT_DURATION_KEY] = rate * over_s / 3600.0
    if vehicle.route_distance_soft_max_m is not None:
        over_m = max(0.0, distance_m - vehicle.route_distance_soft_max_m)
        rate = vehicle.route_distance_cost_per_kilometer_above_soft_max or 0.0
        costs[SOFT_DISTANCE_KEY] = rate * over_m / 1000.0
    for t, soft in sorted(vehicle.soft_load_limits.items()):
        over = max(0, (max_loads or {}).get(t, 0) - soft.soft_max_load)
        costs[SOFT_LOAD_KEY] += over * soft.cost_per_unit_above_soft_max
    for kind, t, windows in (
        ("start_time_windows", start_time, vehicle.start_time_windows),
        ("end_time_windows", end_time, vehicle.end_time_windows),
    ):
        before, after = _soft_costs(t, windows)
        costs[f"model.vehicles.{kind}.cost_per_hour_before_soft_start_time"] += before
        costs[f"model.vehicles.{kind}.cost_per_hour_after_soft_end_time"] += after
    _driver_hours_cost_terms(costs, vehicle, end_time - start_time, travel_s)
    return costs


def _cost_per_vehicle(model: ShipmentModel, s: int, v: int) -> float:
    """``costs_per_vehicle`` of shipment s for vehicle v: by position without indices, else
    the entry whose index is v; 0 when none applies."""
    shipment = model.shipments[s]
    if not shipment.costs_per_vehicle_indices:
        costs = shipment.costs_per_vehicle
        return float(costs[v]) if v < len(costs) else 0.0
    pairs = zip(shipment.costs_per_vehicle_indices, shipment.costs_per_vehicle, strict=True)
    return math.fsum(float(c) for i, c in pairs if i == v)


def pickup_delivery_limit_problems(
    model: ShipmentModel, shipment_index: int, travel_s: float, gap_s: float
) -> list[str]:
    """Why a shipment whose delivery starts ``gap_s`` after its pickup starts, with
    ``travel_s`` of direct travel between them, breaks its pickup_to_delivery limits (Google:
    gap <= time limit, gap <= std::ceil(t * (1 + relative limit)), gap <= t + absolute limit;
    the ceil ignores float noise below 1e-9)."""
    shipment = model.shipments[shipment_index]
    limits = []
    if shipment.pickup_to_delivery_time_limit_s is not None:
        limits.append(("pickup_to_delivery_time_limit", shipment.pickup_to_delivery_time_limit_s))
    relative = shipment.pickup_to_delivery_relative_detour_limit
    if relative is not None:
        bound = float(math.ceil(travel_s * (1.0 + relative) - 1e-9))
        limits.append(("pickup_to_delivery_relative_detour_limit", bound))
    absolute = shipment.pickup_to_delivery_absolute_detour_limit_s
    if absolute is not None:
        limits.append(("pickup_to_delivery_absolute_detour_limit", travel_s + absolute))
    return [
        f"delivery starts {gap_s} s after the pickup, more than {bound} s ({name})"
        for name, bound in limits
        if gap_s > bound + TIME_TOL
    ]


def _on_board(model: ShipmentModel, refs: Sequence[VisitRef]) -> dict[int, tuple[int, int]]:
    """Per shipment of the route: (position of its pickup, position of its delivery); a
    shipment without pickup is on board from the start (-1), one without delivery until the
    end (len(refs))."""
    out: dict[int, tuple[int, int]] = {}
    for s in {ref[0] for ref in refs}:
        pickup = [k for k, ref in enumerate(refs) if ref[0] == s and ref[1]]
        delivery = [k for k, ref in enumerate(refs) if ref[0] == s and not ref[1]]
        out[s] = (pickup[0] if pickup else -1, delivery[0] if delivery else len(refs))
    return out


def route_type_problems(model: ShipmentModel, refs: Sequence[VisitRef]) -> list[str]:
    """Why the visit order of one route breaks a shipment type incompatibility or requirement
    (empty when it does not). Google's rules: two shipments are on board together unless one
    is delivered before the other is picked up; a dependent shipment needs a required one on
    board at its pickup (delivery) in the AT_PICKUP_TIME (AT_DELIVERY_TIME) mode, on its route
    in the PERFORMED_BY_SAME_VEHICLE mode."""
    problems: list[str] = []
    board = _on_board(model, refs)
    kind = {s: model.shipments[s].shipment_type for s in board}
    shipments = sorted(board)
    for k, inc in enumerate(model.shipment_type_incompatibilities):
        types = set(inc.types)
        for a, b in ((a, b) for a in shipments for b in shipments if a < b):
            if kind[a] not in types or kind[b] not in types or kind[a] == kind[b]:
                continue
            (pa, da), (pb, db) = board[a], board[b]
            if inc.incompatibility_mode == IncompatibilityMode.NOT_PERFORMED_BY_SAME_VEHICLE:
                problems.append(
                    f"shipments {a} ({kind[a]!r}) and {b} ({kind[b]!r}) share a vehicle "
                    f"against shipment_type_incompatibilities[{k}]"
                )
            elif not (da < pb or db < pa):
                problems.append(
                    f"shipments {a} ({kind[a]!r}) and {b} ({kind[b]!r}) are on board together "
                    f"against shipment_type_incompatibilities[{k}]"
                )
    for k, req in enumerate(model.shipment_type_requirements):
        required = [s for s in shipments if kind[s] in req.required_shipment_type_alternatives]
        for s in shipments:
            if kind[s] not in req.dependent_shipment_types:
                continue
            mode = req.requirement_mode
            if mode == RequirementMode.PERFORMED_BY_SAME_VEHICLE:
                ok = any(r != s for r in required)
                when = "on its route"
            else:
                at_pickup = mode == RequirementMode.IN_SAME_VEHICLE_AT_PICKUP_TIME
                shipment = model.shipments[s]
                if not (shipment.pickups if at_pickup else shipment.deliveries):
                    continue  # no pickup (delivery) time: the rule does not apply
                t = board[s][0] if at_pickup else board[s][1]
                ok = any(board[r][0] < t < board[r][1] for r in required if r != s)
                when = "on board at its pickup" if at_pickup else "on board at its delivery"
            if not ok:
                problems.append(
                    f"shipment {s} ({kind[s]!r}) has no shipment of a required type {when} "
                    f"(shipment_type_requirements[{k}])"
                )
    return problems


# --------------------------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------------------------


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol


def _cost_close(a: float, b: float) -> bool:
    return abs(a - b) <= COST_ABS_TOL + COST_REL_TOL * max(abs(a), abs(b))


def _nonzero(d: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in d.items() if v != 0}


@dataclass
class _RouteFacts:
    """Recomputed metrics and costs of one route."""

    used: bool = False
    start: float | None = None
    end: float | None = None
    performed: int = 0
    performed_mandatory: int = 0
    performed_penalty_sum: float = 0.0
    travel_s: float = 0.0
    wait_s: float = 0.0
    break_s: float = 0.0
    visit_s: float = 0.0
    delay_s: float = 0.0
    distance_m: float = 0.0
    terms: int = 0
    max_loads: dict[str, int] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    transition_delay_s: float = 0.0
    """Google's ``delay_duration``: the transitions' delays (issue 15)."""
    transition_costs: dict[str, float] = field(default_factory=dict)
    legs: list[tuple[float, float]] = field(default_factory=list)
    loads: list[dict[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class _Transitions:
    """The n + 1 transitions of a route as recomputed from its schedule: where each starts
    (the previous stop's end) and ends (the next stop's start), its travel (duration, distance),
    breaks, wait, total and the load on board."""

    stop_ends: list[float]
    next_starts: list[float]
    legs: list[tuple[float, float]]
    break_sums: list[float]
    waits: list[float]
    totals: list[float]
    loads: list[dict[str, int]]
    delays: list[float]
    """The transition attributes' delays (issue 15)."""


class _Checker:
    def __init__(self, model: ShipmentModel, solution: Solution, speed: float) -> None:
        self.model = model
        self.solution = solution
        self.travel = Travel(model, speed)
        self.problems: list[str] = []

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def check_time(self, where: str, name: str, got: float, want: float, terms: int = 1) -> None:
        if not _close(got, want, TIME_TOL * max(1, terms)):
            self.fail(where, f"{name} is {got}, expected {want}")

    def check_dist(self, where: str, name: str, got: float, want: float, terms: int = 1) -> None:
        if not _close(got, want, DIST_TOL * max(1, terms)):
            self.fail(where, f"{name} is {got}, expected {want}")

    def check_cost(self, where: str, name: str, got: float, want: float) -> None:
        if not _cost_close(got, want):
            self.fail(where, f"{name} is {got}, expected {want}")

    def check_costs(self, where: str, got: Mapping[str, float], want: Mapping[str, float]) -> None:
        got_nz, want_nz = _nonzero(got), _nonzero(want)
        for key in sorted(set(got_nz) | set(want_nz)):
            g, w = got_nz.get(key, 0.0), want_nz.get(key, 0.0)
            if not _cost_close(g, w):
                self.fail(where, f"costs[{key!r}] is {g}, expected {w}")

    # ---- top level -------------------------------------------------------------------------

    def run(self) -> None:
        model, solution = self.model, self.solution
        if len(solution.routes) != len(model.vehicles):
            self.fail("routes", f"{len(solution.routes)} routes for {len(model.vehicles)} vehicles")
        facts: list[_RouteFacts | None] = [
            self.check_route(r, route) for r, route in enumerate(solution.routes)
        ]
        self.check_shipments()
        self.check_precedence_rules()
        self.check_injected_constraint()
        skipped_ok = self.check_skipped()
        if all(f is not None for f in facts) and skipped_ok:
            self.check_solution_metrics([f for f in facts if f is not None])
        else:
            self.fail("metrics", "not checked: some routes or skipped shipments are malformed")

    # ---- routes ----------------------------------------------------------------------------

    def check_route(self, r: int, route: Route) -> _RouteFacts | None:
        where = f"routes[{r}]"
        model = self.model
        if route.vehicle_index != r:
            self.fail(where, f"vehicle_index is {route.vehicle_index}, expected {r}")
        if not 0 <= route.vehicle_index < len(model.vehicles):
            self.fail(where, f"vehicle_index {route.vehicle_index} is not a vehicle")
            return None
        v = route.vehicle_index
        vehicle = model.vehicles[v]
        if route.vehicle_label != vehicle.label:
            self.fail(
                where, f"vehicle_label is {route.vehicle_label!r}, expected {vehicle.label!r}"
            )
        if not route.visits and not vehicle.used_if_route_is_empty:
            return self.check_unused_route(where, route)

        refs: list[VisitRef] = []
        valid = True
        for i, visit in enumerate(route.visits):
            ref = (visit.shipment_index, visit.is_pickup, visit.visit_request_index)
            try:
                visit_request(model, ref)
            except IndexError:
                valid = False
                self.fail(
                    f"{where}.visits[{i}]",
                    f"invalid visit: shipment_index {visit.shipment_index}, is_pickup "
                    f"{visit.is_pickup}, visit_request_index {visit.visit_request_index}",
                )
            refs.append(ref)
        if not valid:
            return None
        if route.vehicle_start_time is None or route.vehicle_end_time is None:
            if not route.visits:  # used_if_route_is_empty
                self.fail(where, "the vehicle is used_if_route_is_empty but its route is not used")
            else:
                self.fail(where, "used route without vehicle_start_time or vehicle_end_time")
            return None
        if vehicle.ignore and not model.refresh_details_routes:  # a refresh keeps every route
            self.fail(where, "the vehicle is ignored but its route is used")
        for problem in route_type_problems(model, refs):
            self.fail(where, problem)
        return self.check_used_route(
            where, v, route, refs, route.vehicle_start_time, route.vehicle_end_time
        )

    def check_unused_route(self, where: str, route: Route) -> _RouteFacts:
        if route.vehicle_start_time is not None or route.vehicle_end_time is not None:
            self.fail(where, "unused route has vehicle_start_time/vehicle_end_time")
        if route.transitions:
            self.fail(where, f"unused route has {len(route.transitions)} transitions, expected 0")
        if route.breaks:
            self.fail(where, f"unused route has {len(route.breaks)} breaks, expected 0")
        m = route.metrics
        zero_metrics = (
            m.performed_shipment_count == 0
            and m.travel_duration_s == 0
            and m.wait_duration_s == 0
            and m.delay_duration_s == 0
            and m.transition_delay_duration_s == 0
            and m.break_duration_s == 0
            and m.visit_duration_s == 0
            and m.total_duration_s == 0
            and m.travel_distance_m == 0
            and not _nonzero(m.max_loads)
        )
        if not zero_metrics:
            self.fail(where, f"unused route has non-zero metrics {m}")
        if _nonzero(route.route_costs):
            self.fail(where, f"unused route has route_costs {dict(route.route_costs)}")
        if route.route_total_cost != 0:
            self.fail(where, f"unused route has route_total_cost {route.route_total_cost}")
        return _RouteFacts()

    def check_detours(
        self,
        where: str,
        v: int,
        route: Route,
        refs: list[VisitRef],
        visit_ends: list[float],
        start: float,
    ) -> None:
        """Google's ``Visit.detour``: a delivery whose shipment has a pickup is measured from
        the end of that pickup (its start plus its visit duration), any other visit from the
        vehicle start, less the direct travel from there."""
        pickup_at: dict[int, tuple[VisitRef, float]] = {}
        for k, (visit, ref) in enumerate(zip(route.visits, refs, strict=True)):
            s, is_pickup, _ = ref
            origin: VisitRef | None = None
            left_at = start
            if not is_pickup and s in pickup_at:
                origin, left_at = pickup_at[s]
            expected = visit.start_time - left_at - self.travel.leg(v, origin, ref)[0]
            if abs(visit.detour_s - expected) > 2 * TIME_TOL:
                self.fail(
                    f"{where}.visits[{k}]", f"detour is {visit.detour_s}, expected {expected}"
                )
            if is_pickup:
                pickup_at[s] = (ref, visit_ends[k])

    def check_used_route(
        self, where: str, v: int, route: Route, refs: list[VisitRef], start: float, end: float
    ) -> _RouteFacts:
        model, vehicle = self.model, self.model.vehicles[v]
        n = len(route.visits)
        requests = [visit_request(model, ref) for ref in refs]
        self.check_stops(where, v, route, requests, start, end)

        # Transitions, recomputed from the schedule and the model.
        stop_ends = [start] + [
            visit.start_time + visit_duration(vehicle, request)
            for visit, request in zip(route.visits, requests, strict=True)
        ]
        next_starts = [visit.start_time for visit in route.visits] + [end]
        legs = [
            self.travel.leg(v, None if k == 0 else refs[k - 1], None if k == n else refs[k])
            for k in range(n + 1)
        ]
        totals = [b - a for a, b in zip(stop_ends, next_starts, strict=True)]
        break_sums = self.check_breaks(where, v, route, stop_ends, next_starts)
        # Transition attributes (issue 15): a delay before the next stop, costs per leg.
        attributes = [
            transition_terms(
                model, v, None if k == 0 else refs[k - 1], None if k == n else refs[k], legs[k][1]
            )
            for k in range(n + 1)
        ]
        delays = [delay for delay, _ in attributes]
        waits = [totals[k] - legs[k][0] - delays[k] - break_sums[k] for k in range(n + 1)]
        loads = route_loads(model, v, refs)
        for k in range(n + 1):
            tw = f"{where}.transitions[{k}]"
            if waits[k] < -TIME_TOL:
                self.fail(
                    tw,
                    f"negative wait {waits[k]}: {totals[k]} s between stops < travel "
                    f"{legs[k][0]} s + delay {delays[k]} s + breaks {break_sums[k]} s",
                )
            for problem in load_limit_problems(vehicle, loads[k]):
                self.fail(tw, problem)
        for problem in load_interval_problems(vehicle, loads):
            self.fail(where, problem)
        for problem in unloading_problems(model, vehicle, refs):
            self.fail(where, problem)
        expected = _Transitions(
            stop_ends, next_starts, legs, break_sums, waits, totals, loads, delays
        )
        self.check_transitions(where, route, expected)
        self.check_detours(where, v, route, refs, stop_ends[1:], start)

        facts = _RouteFacts(
            used=True,
            start=start,
            end=end,
            performed=len({s for s, _, _ in refs}),
            performed_mandatory=sum(
                1 for s in {s for s, _, _ in refs} if model.shipments[s].penalty_cost is None
            ),
            performed_penalty_sum=math.fsum(
                model.shipments[s].penalty_cost or 0.0 for s in {s for s, _, _ in refs}
            ),
            travel_s=math.fsum(leg[0] for leg in legs),
            wait_s=math.fsum(waits),
            break_s=math.fsum(break_sums),
            visit_s=math.fsum(visit_duration(vehicle, request) for request in requests),
            delay_s=math.fsum(
                _delay(visit.start_time, request.time_windows)
                for visit, request in zip(route.visits, requests, strict=True)
            ),
            distance_m=math.fsum(leg[1] for leg in legs),
            terms=2 * n + 2,
            max_loads={t: max(load[t] for load in loads) for t in loads[0]},
            transition_delay_s=math.fsum(delays),
            transition_costs={
                key: math.fsum(costs[key] for _, costs in attributes)
                for key in TRANSITION_COST_KEYS
            },
            legs=legs,
            loads=loads,
        )
        self.check_route_totals(where, v, route, refs, facts)
        return facts

    def check_stops(
        self,
        where: str,
        v: int,
        route: Route,
        requests: list[VisitRequest],
        start: float,
        end: float,
    ) -> None:
        """Vehicle start and end inside their windows and the horizon; each visit inside one of
        its hard windows, with its shipment's labels and signed load demands."""
        model, vehicle = self.model, self.model.vehicles[v]
        bounds = hard_windows(model, vehicle.start_time_windows)
        if _window_containing(start, bounds) is None:
            self.fail(where, f"vehicle_start_time {start} outside every start_time_window {bounds}")
        bounds = hard_windows(model, vehicle.end_time_windows)
        if _window_containing(end, bounds) is None:
            self.fail(where, f"vehicle_end_time {end} outside every end_time_window {bounds}")
        for name, t in (("vehicle_start_time", start), ("vehicle_end_time", end)):
            if not _in_horizon(model, t):
                self.fail(where, f"{name} {t} outside the horizon")
        for i, (visit, request) in enumerate(zip(route.visits, requests, strict=True)):
            vw = f"{where}.visits[{i}]"
            bounds = hard_windows(model, request.time_windows)
            if _window_containing(visit.start_time, bounds) is None:
                self.fail(
                    vw, f"start_time {visit.start_time} outside every hard time window {bounds}"
                )
            if not _in_horizon(model, visit.start_time):
                self.fail(vw, f"start_time {visit.start_time} outside the horizon")
            shipment = model.shipments[visit.shipment_index]
            if visit.shipment_label != shipment.label:
                self.fail(
                    vw, f"shipment_label is {visit.shipment_label!r}, expected {shipment.label!r}"
                )
            if visit.visit_label != request.label:
                self.fail(vw, f"visit_label is {visit.visit_label!r}, expected {request.label!r}")
            sign = 1 if visit.is_pickup else -1
            ref = (visit.shipment_index, visit.is_pickup, visit.visit_request_index)
            want = _nonzero({t: sign * a for t, a in visit_demands(model, ref).items()})
            if _nonzero(visit.load_demands) != want:
                self.fail(vw, f"load_demands is {dict(visit.load_demands)}, expected {want}")

    def check_transitions(self, where: str, route: Route, expected: _Transitions) -> None:
        """The reported transitions against the ones recomputed from the schedule."""
        n = len(route.visits)
        if len(route.transitions) != n + 1:
            self.fail(
                where, f"{len(route.transitions)} transitions for {n} visits, expected {n + 1}"
            )
            return
        for k, t in enumerate(route.transitions):
            tw = f"{where}.transitions[{k}]"
            self.check_time(tw, "start_time", t.start_time, expected.stop_ends[k])
            self.check_time(tw, "travel_duration_s", t.travel_duration_s, expected.legs[k][0])
            self.check_dist(tw, "travel_distance_m", t.travel_distance_m, expected.legs[k][1])
            self.check_time(tw, "break_duration_s", t.break_duration_s, expected.break_sums[k])
            self.check_time(tw, "wait_duration_s", t.wait_duration_s, expected.waits[k])
            self.check_time(tw, "total_duration_s", t.total_duration_s, expected.totals[k])
            self.check_time(tw, "delay_duration_s", t.delay_duration_s, expected.delays[k])
            if t.wait_duration_s < -TIME_TOL:
                self.fail(tw, f"wait_duration_s {t.wait_duration_s} is negative")
            parts = (
                t.travel_duration_s + t.wait_duration_s + t.delay_duration_s + t.break_duration_s
            )
            if not _close(t.total_duration_s, parts, 2 * TIME_TOL):
                self.fail(
                    tw,
                    f"total_duration_s {t.total_duration_s} != travel + wait + delay + break = "
                    f"{parts}",
                )
            if not _close(t.start_time + t.total_duration_s, expected.next_starts[k], TIME_TOL):
                self.fail(
                    tw,
                    f"ends at {t.start_time + t.total_duration_s} but the next "
                    f"stop starts at {expected.next_starts[k]}",
                )
            if dict(t.vehicle_loads) != expected.loads[k]:
                self.fail(
                    tw, f"vehicle_loads is {dict(t.vehicle_loads)}, expected {expected.loads[k]}"
                )

    def check_route_totals(
        self, where: str, v: int, route: Route, refs: list[VisitRef], facts: _RouteFacts
    ) -> None:
        """Route limits, then the route's costs and metrics against the recomputed facts."""
        start, end = route.vehicle_start_time, route.vehicle_end_time
        assert start is not None
        assert end is not None
        for problem in route_limit_problems(self.model.vehicles[v], end - start, facts.distance_m):
            self.fail(where, problem)
        breaks = [(b.start_time, b.duration_s) for b in route.breaks]
        vehicle = self.model.vehicles[v]
        for problem in driver_hours_problems(vehicle, start, end, facts.travel_s, breaks):
            self.fail(where, problem)
        facts.costs = route_cost_terms(
            self.model,
            v,
            start_time=start,
            end_time=end,
            travel_s=facts.travel_s,
            distance_m=facts.distance_m,
            visit_starts=[
                (ref, vis.start_time) for ref, vis in zip(refs, route.visits, strict=True)
            ],
            max_loads=facts.max_loads,
            legs=facts.legs,
            loads=facts.loads,
        )
        for key, value in facts.transition_costs.items():
            facts.costs[key] += value
        self.check_route_costs(where, route, facts)
        self.check_metrics(f"{where}.metrics", route.metrics, facts)
        self.check_time(
            f"{where}.metrics",
            "total_duration_s (vs end - start)",
            route.metrics.total_duration_s,
            end - start,
            facts.terms,
        )

    def check_breaks(
        self,
        where: str,
        v: int,
        route: Route,
        stop_ends: Sequence[float],
        next_starts: Sequence[float],
    ) -> list[float]:
        """Check the breaks; return the break time inside each transition."""
        requests = self.model.vehicles[v].break_requests
        start, end = stop_ends[0], next_starts[-1]
        sums = [0.0] * len(stop_ends)
        if len(route.breaks) != len(requests):
            self.fail(where, f"{len(route.breaks)} breaks for {len(requests)} break_requests")
        for i, brk in enumerate(route.breaks):
            bw = f"{where}.breaks[{i}]"
            b_end = brk.start_time + brk.duration_s
            if i < len(requests):
                req = requests[i]
                if not (
                    req.earliest_start_time - TIME_TOL
                    <= brk.start_time
                    <= req.latest_start_time + TIME_TOL
                ):
                    self.fail(
                        bw,
                        f"start_time {brk.start_time} outside [earliest_start_time "
                        f"{req.earliest_start_time}, latest_start_time "
                        f"{req.latest_start_time}]",
                    )
                if brk.duration_s < req.min_duration_s - TIME_TOL:
                    self.fail(
                        bw, f"duration_s {brk.duration_s} < min_duration {req.min_duration_s}"
                    )
            if brk.duration_s < 0:
                self.fail(bw, f"duration_s {brk.duration_s} is negative")
            if brk.start_time < start - TIME_TOL or b_end > end + TIME_TOL:
                self.fail(bw, f"[{brk.start_time}, {b_end}] not inside the route [{start}, {end}]")
            if i > 0:
                prev = route.breaks[i - 1]
                if brk.start_time < prev.start_time + prev.duration_s - TIME_TOL:
                    self.fail(bw, "starts before the previous break ends")
            for j, visit in enumerate(route.visits):
                v_end = stop_ends[j + 1]
                if brk.start_time < v_end - TIME_TOL and visit.start_time < b_end - TIME_TOL:
                    self.fail(
                        bw,
                        f"[{brk.start_time}, {b_end}] overlaps visits[{j}] "
                        f"[{visit.start_time}, {v_end})",
                    )
            for k, (a, b) in enumerate(zip(stop_ends, next_starts, strict=True)):
                if a - TIME_TOL <= brk.start_time and b_end <= b + TIME_TOL:
                    sums[k] += brk.duration_s
                    break
            else:
                self.fail(bw, f"[{brk.start_time}, {b_end}] is not inside any transition")
        return sums

    def check_route_costs(self, where: str, route: Route, facts: _RouteFacts) -> None:
        unknown = sorted(set(_nonzero(route.route_costs)) - set(ROUTE_COST_KEYS))
        if unknown:
            self.fail(where, f"route_costs has unexpected keys {unknown}")
        self.check_costs(f"{where}.route_costs", route.route_costs, facts.costs)
        self.check_cost(
            where, "route_total_cost", route.route_total_cost, math.fsum(facts.costs.values())
        )

    def check_metrics(self, where: str, m: AggregatedMetrics, f: _RouteFacts) -> None:
        if m.performed_shipment_count != f.performed:
            self.fail(
                where,
                f"performed_shipment_count is {m.performed_shipment_count}, expected {f.performed}",
            )
        if m.performed_mandatory_shipment_count != f.performed_mandatory:
            self.fail(
                where,
                f"performed_mandatory_shipment_count is {m.performed_mandatory_shipment_count}, "
                f"expected {f.performed_mandatory}",
            )
        if not math.isclose(
            m.performed_shipment_penalty_cost_sum,
            f.performed_penalty_sum,
            rel_tol=1e-9,
            abs_tol=1e-9,
        ):
            self.fail(
                where,
                f"performed_shipment_penalty_cost_sum is {m.performed_shipment_penalty_cost_sum}, "
                f"expected {f.performed_penalty_sum}",
            )
        self.check_time(where, "travel_duration_s", m.travel_duration_s, f.travel_s, f.terms)
        self.check_time(where, "wait_duration_s", m.wait_duration_s, f.wait_s, f.terms)
        self.check_time(where, "break_duration_s", m.break_duration_s, f.break_s, f.terms)
        self.check_time(where, "visit_duration_s", m.visit_duration_s, f.visit_s, f.terms)
        self.check_time(where, "delay_duration_s", m.delay_duration_s, f.delay_s, f.terms)
        self.check_time(
            where,
            "transition_delay_duration_s",
            m.transition_delay_duration_s,
            f.transition_delay_s,
            f.terms,
        )
        total = f.travel_s + f.wait_s + f.transition_delay_s + f.break_s + f.visit_s
        self.check_time(where, "total_duration_s", m.total_duration_s, total, f.terms)
        self.check_dist(where, "travel_distance_m", m.travel_distance_m, f.distance_m, f.terms)
        if dict(m.max_loads) != f.max_loads:
            self.fail(where, f"max_loads is {dict(m.max_loads)}, expected {f.max_loads}")

    # ---- shipments -------------------------------------------------------------------------

    def check_shipments(self) -> None:
        model, solution = self.model, self.solution
        skipped = {s.index for s in solution.skipped_shipments}
        seen: dict[int, list[tuple[int, int, bool]]] = {}
        for r, route in enumerate(solution.routes):
            for i, visit in enumerate(route.visits):
                seen.setdefault(visit.shipment_index, []).append((r, i, visit.is_pickup))
        for s in sorted(set(seen) - set(range(len(model.shipments)))):
            self.fail("routes", f"visits of shipment_index {s}, which is not a shipment")
        for s, shipment in enumerate(model.shipments):
            where = f"shipments[{s}]"
            visits = seen.get(s, [])
            if visits and s in skipped:
                self.fail(where, "both performed and skipped")
            if visits and shipment.ignore and not model.refresh_details_routes:
                # (refresh_details_routes keeps every visit it is given, as Google's does)
                self.fail(where, "is ignored but performed")
            if not visits:
                if s not in skipped:
                    self.fail(where, "neither performed nor skipped")
                continue
            pickups = [(r, i) for r, i, p in visits if p]
            deliveries = [(r, i) for r, i, p in visits if not p]
            for kind, found, alternatives in (
                ("pickup", pickups, shipment.pickups),
                ("delivery", deliveries, shipment.deliveries),
            ):
                if not alternatives and found:
                    self.fail(where, f"has no {kind} alternatives but {kind} visits at {found}")
                elif alternatives and len(found) != 1:
                    self.fail(where, f"{len(found)} {kind} visits {found}, expected exactly one")
            routes = sorted({r for r, _, _ in visits})
            if len(routes) > 1:
                self.fail(where, f"pickup and delivery on different routes {routes}")
            elif len(pickups) == 1 and len(deliveries) == 1 and pickups[0][1] > deliveries[0][1]:
                self.fail(
                    where,
                    f"delivery (visits[{deliveries[0][1]}]) before its pickup "
                    f"(visits[{pickups[0][1]}]) on route {routes[0]}",
                )
            limited = (
                shipment.pickup_to_delivery_time_limit_s is not None
                or shipment.pickup_to_delivery_relative_detour_limit is not None
                or shipment.pickup_to_delivery_absolute_detour_limit_s is not None
            )
            if limited and len(routes) == 1 and len(pickups) == 1 and len(deliveries) == 1:
                self.check_pickup_to_delivery(s, solution.routes[routes[0]], pickups, deliveries)
            for r in routes:
                v = solution.routes[r].vehicle_index
                if 0 <= v < len(model.vehicles) and not vehicle_allowed(model, s, v):
                    self.fail(
                        where,
                        f"performed by vehicle {v}, not in allowed_vehicle_indices "
                        f"{shipment.allowed_vehicle_indices}",
                    )

    def check_precedence_rules(self) -> None:
        """Each precedence rule whose two events are performed: the second starts at least
        offset_duration after the first (across routes too)."""
        starts: dict[tuple[int, bool], float] = {}
        for route in self.solution.routes:
            for visit in route.visits:
                starts[(visit.shipment_index, not visit.is_pickup)] = visit.start_time
        for k, rule in enumerate(self.model.precedence_rules):
            first = starts.get((rule.first_index, rule.first_is_delivery))
            second = starts.get((rule.second_index, rule.second_is_delivery))
            if first is None or second is None:
                continue  # only when both are performed
            if second < first + rule.offset_duration_s - TIME_TOL:
                self.fail(
                    f"precedence_rules[{k}]",
                    f"second event starts at {second}, before the first's start {first} + "
                    f"offset {rule.offset_duration_s}",
                )

    def check_injected_constraint(self) -> None:
        """README "Re-optimisation": the constraint's skipped shipments stay skipped; a visit
        below RELAX_ALL stays on its vehicle (below RELAX_VISIT_TIMES_AND_SEQUENCE it is
        performed there, in the kept sequence from the vehicle start); fixed visits, starts and
        ends keep their times; a closed route gets no other visit. Kept on an ignored vehicle:
        skipped."""
        locks, skipped = injected_locks(self.model)
        where_is: dict[VisitRef, tuple[int, int]] = {}
        performed: set[int] = set()
        for r, route in enumerate(self.solution.routes):
            for i, visit in enumerate(route.visits):
                where_is[(visit.shipment_index, visit.is_pickup, visit.visit_request_index)] = (
                    r,
                    i,
                )
                performed.add(visit.shipment_index)
        for s in sorted(skipped & performed):
            self.fail(f"shipments[{s}]", "performed but the injected solution keeps it skipped")
        for lock in locks:
            where = f"injected_solution_constraint (vehicle {lock.vehicle})"
            ignored = self.model.vehicles[lock.vehicle].ignore
            for ref, level, given in lock.visits:
                at = where_is.get(ref)
                if level >= 3:
                    continue
                if ignored:
                    if ref[0] in performed:
                        self.fail(where, f"{ref} is kept on an ignored vehicle but performed")
                    continue
                if at is None:
                    if level <= 1:
                        self.fail(where, f"kept visit {ref} (level {level}) is not performed")
                    continue
                if at[0] != lock.vehicle:
                    self.fail(where, f"kept visit {ref} moved to vehicle {at[0]}")
                    continue
                time = self.solution.routes[at[0]].visits[at[1]].start_time
                if level == 0 and given is not None and abs(time - given) > INJECTED_TIME_TOL:
                    self.fail(where, f"fixed visit {ref} starts at {time}, not at {given}")
            if ignored or not lock.visits:
                continue
            route = self.solution.routes[lock.vehicle]
            refs = [(v.shipment_index, v.is_pickup, v.visit_request_index) for v in route.visits]
            prefix = lock.prefix
            if refs[: len(prefix)] != prefix:
                self.fail(where, f"route starts with {refs[: len(prefix)]}, not the kept {prefix}")
            if lock.closed and refs != prefix:
                self.fail(where, f"closed route has visits {refs}, expected {prefix}")
            if not route.visits:
                continue  # an emptied route: its times are not kept (Google's rule)
            for (level, given), got, name in (
                (lock.start, route.vehicle_start_time, "vehicle_start_time"),
                (lock.end, route.vehicle_end_time, "vehicle_end_time"),
            ):
                if (
                    level == 0
                    and given is not None
                    and (got is None or abs(got - given) > INJECTED_TIME_TOL)
                ):
                    self.fail(where, f"fixed {name} is {got}, not {given}")

    def check_pickup_to_delivery(
        self,
        s: int,
        route: Route,
        pickups: list[tuple[int, int]],
        deliveries: list[tuple[int, int]],
    ) -> None:
        """Shipment s's pickup_to_delivery limits on its route (invalid visits are reported
        with the route)."""
        shipment = self.model.shipments[s]
        pickup, delivery = route.visits[pickups[0][1]], route.visits[deliveries[0][1]]
        if not (
            0 <= pickup.visit_request_index < len(shipment.pickups)
            and 0 <= delivery.visit_request_index < len(shipment.deliveries)
        ):
            return
        travel_s = self.travel.leg(
            route.vehicle_index,
            (s, True, pickup.visit_request_index),
            (s, False, delivery.visit_request_index),
        )[0]
        gap_s = delivery.start_time - pickup.start_time
        for problem in pickup_delivery_limit_problems(self.model, s, travel_s, gap_s):
            self.fail(f"shipments[{s}]", problem)

    def check_skipped(self) -> bool:
        """Check the skipped list; return whether its indices are usable."""
        model = self.model
        ok = True
        previous = -1
        for i, skipped in enumerate(self.solution.skipped_shipments):
            where = f"skipped_shipments[{i}]"
            if not 0 <= skipped.index < len(model.shipments):
                self.fail(where, f"index {skipped.index} is not a shipment")
                ok = False
                continue
            if skipped.index <= previous:
                self.fail(where, f"index {skipped.index} not sorted/unique after {previous}")
                ok = False
            previous = max(previous, skipped.index)
            if not skipped.reasons:
                self.fail(where, "has no reason")
            label = model.shipments[skipped.index].label
            if skipped.label != label:
                self.fail(where, f"label is {skipped.label!r}, expected {label!r}")
            penalty = model.shipments[skipped.index].penalty_cost
            if skipped.penalty_cost is not None and skipped.penalty_cost != penalty:
                self.fail(where, f"penalty_cost is {skipped.penalty_cost}, expected {penalty}")
            ignored = model.shipments[skipped.index].ignore
            codes = {reason.code for reason in skipped.reasons}
            if ignored and SkipReasonCode.SHIPMENT_IGNORED not in codes:
                self.fail(where, "the shipment is ignored but SHIPMENT_IGNORED is not a reason")
            if not ignored and SkipReasonCode.SHIPMENT_IGNORED in codes:
                self.fail(where, "SHIPMENT_IGNORED for a shipment that is not ignored")
            for j, reason in enumerate(skipped.reasons):
                example = reason.example_vehicle_index
                if example is not None and not 0 <= example < len(model.vehicles):
                    self.fail(f"{where}.reasons[{j}]", f"example_vehicle_index {example} invalid")
        return ok

    # ---- solution --------------------------------------------------------------------------

    def check_solution_metrics(self, facts: list[_RouteFacts]) -> None:
        model, solution = self.model, self.solution
        metrics = solution.metrics
        used = [f for f in facts if f.used]
        # Ignored shipments are skipped without penalty and do not count as skipped mandatory.
        skipped = [
            model.shipments[s.index]
            for s in solution.skipped_shipments
            if not model.shipments[s.index].ignore
        ]
        total = _RouteFacts(
            performed=sum(f.performed for f in used),
            performed_mandatory=sum(f.performed_mandatory for f in used),
            performed_penalty_sum=math.fsum(f.performed_penalty_sum for f in used),
            travel_s=math.fsum(f.travel_s for f in used),
            wait_s=math.fsum(f.wait_s for f in used),
            break_s=math.fsum(f.break_s for f in used),
            visit_s=math.fsum(f.visit_s for f in used),
            delay_s=math.fsum(f.delay_s for f in used),
            distance_m=math.fsum(f.distance_m for f in used),
            terms=sum(f.terms for f in used),
            transition_delay_s=math.fsum(f.transition_delay_s for f in used),
        )
        for f in used:
            for t, amount in f.max_loads.items():
                total.max_loads[t] = max(total.max_loads.get(t, amount), amount)
        self.check_metrics(
            "metrics.aggregated_route_metrics", metrics.aggregated_route_metrics, total
        )
        if metrics.used_vehicle_count != len(used):
            self.fail(
                "metrics",
                f"used_vehicle_count is {metrics.used_vehicle_count}, expected {len(used)}",
            )
        limit = model.max_active_vehicles
        active = [f for f in used if f.performed]  # Google: active = performs a shipment
        if limit is not None and len(active) > limit:
            self.fail(
                "routes", f"{len(active)} vehicles are active, max_active_vehicles is {limit}"
            )
        mandatory = sum(1 for s in skipped if s.is_mandatory)
        if metrics.skipped_mandatory_shipment_count != mandatory:
            self.fail(
                "metrics",
                f"skipped_mandatory_shipment_count is "
                f"{metrics.skipped_mandatory_shipment_count}, expected {mandatory}",
            )
        for name, got, want in (
            (
                "earliest_vehicle_start_time",
                metrics.earliest_vehicle_start_time,
                min((f.start for f in used if f.start is not None), default=None),
            ),
            (
                "latest_vehicle_end_time",
                metrics.latest_vehicle_end_time,
                max((f.end for f in used if f.end is not None), default=None),
            ),
        ):
            if (got is None) != (want is None) or (
                got is not None and want is not None and not _close(got, want, TIME_TOL)
            ):
                self.fail("metrics", f"{name} is {got}, expected {want}")
        costs = dict.fromkeys(ROUTE_COST_KEYS, 0.0)
        for key in ROUTE_COST_KEYS:
            costs[key] = math.fsum(f.costs[key] for f in used)
        costs[PENALTY_COST_KEY] = math.fsum(
            s.penalty_cost for s in skipped if s.penalty_cost is not None
        )
        starts = [f.start for f in used if f.start is not None]
        ends = [f.end for f in used if f.end is not None]
        costs[GLOBAL_DURATION_COST_KEY] = (
            model.global_duration_cost_per_hour * (max(ends) - min(starts)) / 3600.0
            if starts and ends
            else 0.0
        )
        unknown = sorted(set(_nonzero(metrics.costs)) - set(costs))
        if unknown:
            self.fail("metrics.costs", f"unexpected keys {unknown}")
        self.check_costs("metrics.costs", metrics.costs, costs)
        self.check_cost("metrics", "total_cost", metrics.total_cost, math.fsum(costs.values()))
        if solution.status == SolveStatus.NOTHING_TO_ROUTE and used:
            self.fail("status", "NOTHING_TO_ROUTE but some vehicles are used")
        self.check_fullness(facts)

    def check_fullness(self, facts: list[_RouteFacts]) -> None:
        """Google's ``VehicleFullness`` of each route, from the recomputed facts: a ratio per
        limit the vehicle has (1 for a limit of 0, at most 1), unset otherwise and on unused
        routes; ``max_fullness`` the largest."""
        model = self.model
        used = [f for f in facts if f.used and f.start is not None and f.end is not None]
        if used:
            span = max(f.end or 0.0 for f in used) - min(f.start or 0.0 for f in used)
        else:
            span = model.global_end_time - model.global_start_time

        def part(value: float, limit: float | None) -> float | None:
            if limit is None:
                return None
            return 1.0 if limit == 0 else min(1.0, value / limit)

        for r, (f, route) in enumerate(zip(facts, self.solution.routes, strict=True)):
            vehicle = model.vehicles[r]
            want: dict[str, float | None] = dict.fromkeys(
                ("distance", "travel_duration", "active_duration", "max_load", "active_span")
            )
            if f.used and f.start is not None and f.end is not None:
                travel = vehicle.travel_duration_limit
                load_parts = [
                    part(f.max_loads.get(t, 0), limit) for t, limit in vehicle.load_limits.items()
                ]
                want = {
                    "distance": part(f.distance_m, vehicle.route_distance_limit_m),
                    "travel_duration": part(
                        f.travel_s, travel.max_duration_s if travel is not None else None
                    ),
                    "active_duration": part(f.end - f.start, vehicle.route_duration_limit_s),
                    "max_load": max((x for x in load_parts if x is not None), default=None),
                    "active_span": part(f.end - f.start, span),
                }
            present = [x for x in want.values() if x is not None]
            want["max_fullness"] = max(present) if present else None
            for name, expected in want.items():
                got = getattr(route.vehicle_fullness, name)
                if (got is None) != (expected is None) or (
                    got is not None and expected is not None and abs(got - expected) > 1e-9
                ):
                    self.fail(
                        f"routes[{r}].vehicle_fullness", f"{name} is {got}, expected {expected}"
                    )


def check_solution(
    model: ShipmentModel, solution: Solution, *, geodesic_meters_per_second: float = 10.0
) -> None:
    """Check ``solution`` against ``model`` and README "Semantics".

    Raises ``AssertionError`` listing every problem found, one line each.
    """
    checker = _Checker(model, solution, geodesic_meters_per_second)
    checker.run()
    if checker.problems:
        raise AssertionError(
            f"{len(checker.problems)} problem(s) in the solution:\n  "
            + "\n  ".join(checker.problems)
        )
