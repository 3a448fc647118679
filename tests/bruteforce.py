"""Exhaustive optimum of tiny models, as a reference for the engine.

Enumerates every assignment of shipments to a vehicle or to "skipped" and every visit order
per vehicle (pickup before delivery). Travel, windows, loads, limits and costs come from the
checker's helpers (:mod:`tests.checker`), so each rule has a single implementation.

Shipment type rules, ignored shipments and vehicles, ``max_active_vehicles``, visit costs,
``costs_per_vehicle``, pickup-to-delivery limits (without visit time windows), soft distance
and load limits, start and end load intervals, visit-type extra durations, unloading policies,
travel duration limits (hard, soft and quadratic soft), transition attributes (delays and
costs) and load-dependent costs (``LoadLimit.cost_per_kilometer`` / ``cost_per_traveled_hour``)
are honoured. Only models without
time-dependent costs are supported (no soft time windows, no ``cost_per_hour``, no
``global_duration_cost_per_hour``, no soft route duration limit, no breaks or break frequency
rules): the cost of a route then depends on its visit order only, and the schedule matters for
feasibility alone.

An ``injected_solution_constraint`` is honoured too (README "Re-optimisation", read by the
checker's :func:`~tests.checker.injected_locks`): kept shipments stay on their vehicle (or are
skipped where their level allows), kept sequences start their route, closed routes get nothing
else, fixed times become one-instant time windows, the constraint's skipped shipments stay
skipped.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

from engine.model import ShipmentModel, TimeWindow
from tests.checker import (
    InjectedLock,
    Travel,
    VisitRef,
    driver_hours_problems,
    earliest_in_windows,
    hard_windows,
    injected_locks,
    load_interval_problems,
    load_limit_problems,
    pickup_delivery_limit_problems,
    route_cost_terms,
    route_limit_problems,
    route_loads,
    route_type_problems,
    transition_terms,
    unloading_problems,
    vehicle_allowed,
    visit_duration,
    visit_request,
)

__all__ = ["MAX_VEHICLES", "MAX_VISITS", "brute_force_optimum"]

MAX_VISITS = 6
MAX_VEHICLES = 3
_UNSUPPORTED = "brute force does not support "


def _require_tiny(model: ShipmentModel) -> None:
    """Raise ValueError unless the model is small and has no time-dependent costs."""
    visits = sum(len(s.pickups) + len(s.deliveries) for s in model.shipments)
    if visits > MAX_VISITS:
        raise ValueError(f"{_UNSUPPORTED}{visits} visits (at most {MAX_VISITS})")
    if len(model.vehicles) > MAX_VEHICLES:
        raise ValueError(f"{_UNSUPPORTED}{len(model.vehicles)} vehicles (at most {MAX_VEHICLES})")
    windows: list[TimeWindow] = []
    for i, shipment in enumerate(model.shipments):
        if len(shipment.pickups) > 1 or len(shipment.deliveries) > 1:
            raise ValueError(f"{_UNSUPPORTED}shipment {i} with several alternatives")
        if not shipment.pickups and not shipment.deliveries:
            raise ValueError(f"{_UNSUPPORTED}shipment {i} without visits")
        for request in (*shipment.pickups, *shipment.deliveries):
            windows.extend(request.time_windows)
    for i, vehicle in enumerate(model.vehicles):
        if vehicle.cost_per_hour:
            raise ValueError(f"{_UNSUPPORTED}cost_per_hour (vehicle {i})")
        if vehicle.break_requests:
            raise ValueError(f"{_UNSUPPORTED}break requests (vehicle {i})")
        if vehicle.route_duration_soft_max_s is not None:
            raise ValueError(f"{_UNSUPPORTED}a soft route duration limit (vehicle {i})")
        if vehicle.route_duration_quadratic_soft_max_s is not None:
            raise ValueError(f"{_UNSUPPORTED}a quadratic soft route duration limit (vehicle {i})")
        if vehicle.break_frequency_constraints:
            raise ValueError(f"{_UNSUPPORTED}break frequency constraints (vehicle {i})")
        windows.extend(vehicle.start_time_windows)
        windows.extend(vehicle.end_time_windows)
    if any(w.is_soft for w in windows):
        raise ValueError(f"{_UNSUPPORTED}soft time windows")
    if model.global_duration_cost_per_hour:
        raise ValueError(f"{_UNSUPPORTED}global_duration_cost_per_hour")
    if model.precedence_rules:
        raise ValueError(f"{_UNSUPPORTED}precedence rules (they tie schedules across routes)")
    limited = any(
        s.pickup_to_delivery_time_limit_s is not None
        or s.pickup_to_delivery_relative_detour_limit is not None
        or s.pickup_to_delivery_absolute_detour_limit_s is not None
        for s in model.shipments
    )
    visit_windows = any(
        r.time_windows for s in model.shipments for r in (*s.pickups, *s.deliveries)
    )
    if limited and visit_windows:
        raise ValueError(f"{_UNSUPPORTED}pickup-to-delivery limits with visit time windows")


def _fix_times(model: ShipmentModel, locks: Sequence[InjectedLock]) -> ShipmentModel:
    """The model with each fixed time of the constraint as a one-instant time window."""
    shipments = list(model.shipments)
    vehicles = list(model.vehicles)
    for lock in locks:
        if not lock.visits or model.vehicles[lock.vehicle].ignore:
            continue
        for (s, is_pickup, k), level, given in lock.visits:
            if level != 0 or given is None:
                continue
            shipment = shipments[s]
            requests = list(shipment.pickups if is_pickup else shipment.deliveries)
            requests[k] = dataclasses.replace(
                requests[k], time_windows=(TimeWindow(start_time=given, end_time=given),)
            )
            if is_pickup:
                shipments[s] = dataclasses.replace(shipment, pickups=tuple(requests))
            else:
                shipments[s] = dataclasses.replace(shipment, deliveries=tuple(requests))
        vehicle = vehicles[lock.vehicle]
        if lock.start[0] == 0 and lock.start[1] is not None:
            start = (TimeWindow(start_time=lock.start[1], end_time=lock.start[1]),)
            vehicle = dataclasses.replace(vehicle, start_time_windows=start)
        if lock.end[0] == 0 and lock.end[1] is not None:
            end = (TimeWindow(start_time=lock.end[1], end_time=lock.end[1]),)
            vehicle = dataclasses.replace(vehicle, end_time_windows=end)
        vehicles[lock.vehicle] = vehicle
    return dataclasses.replace(model, shipments=tuple(shipments), vehicles=tuple(vehicles))


def _lock_allows(
    model: ShipmentModel,
    locks: Sequence[InjectedLock],
    skipped: set[int],
    assignment: Sequence[int],
) -> bool:
    """Whether an assignment of shipments to vehicles (-1: skipped) keeps the constraint."""
    if any(assignment[s] != -1 for s in skipped):
        return False
    for lock in locks:
        ignored = model.vehicles[lock.vehicle].ignore
        for (s, _, _), level, _ in lock.visits:
            if level >= 3:
                continue
            if ignored:
                if assignment[s] != -1:
                    return False
            elif assignment[s] not in ((lock.vehicle,) if level <= 1 else (-1, lock.vehicle)):
                return False
        if lock.closed and not ignored:
            kept = {s for (s, _, _), _, _ in lock.visits}
            served = {s for s, v in enumerate(assignment) if v == lock.vehicle}
            if served != kept:
                return False
    return True


class _Router:
    """Best route of a vehicle for a set of shipments."""

    def __init__(
        self, model: ShipmentModel, travel: Travel, prefixes: dict[int, list[VisitRef]]
    ) -> None:
        self.model = model
        self.travel = travel
        self.prefixes = prefixes
        """Per vehicle, the kept sequence its route must start with."""

    def _time(self, v: int, a: VisitRef | None, b: VisitRef | None) -> float:
        """Travel time from ``a`` to ``b`` plus the transition's delay (issue 15)."""
        return self.travel.leg(v, a, b)[0] + transition_terms(self.model, v, a, b, 0.0)[0]

    def schedule_end(self, v: int, order: Sequence[VisitRef], start: float) -> float | None:
        """Vehicle end time when starting at ``start`` and serving each visit as early as
        possible (waiting when early); None if a window is missed."""
        vehicle = self.model.vehicles[v]
        t = start
        previous: VisitRef | None = None
        for ref in order:
            request = visit_request(self.model, ref)
            arrival = t + self._time(v, previous, ref)
            begin = earliest_in_windows(self.model, arrival, request.time_windows)
            if begin is None:
                return None
            t = begin + visit_duration(vehicle, request)
            previous = ref
        arrival = t + self._time(v, previous, None)
        return earliest_in_windows(self.model, arrival, vehicle.end_time_windows)

    def start_candidates(self, v: int, order: Sequence[VisitRef]) -> list[float]:
        """Vehicle start times among which one minimises end - start if any is feasible.

        End - start is non-increasing in the start time except where some stop, reached
        without waiting, hits the end of a window; those start times, the start-window
        bounds are the candidates.
        """
        model, vehicle = self.model, self.model.vehicles[v]
        offsets: list[tuple[float, Sequence[TimeWindow]]] = []
        offset = 0.0
        previous: VisitRef | None = None
        for ref in order:
            request = visit_request(model, ref)
            offset += self._time(v, previous, ref)
            offsets.append((offset, request.time_windows))
            offset += visit_duration(vehicle, request)
            previous = ref
        offset += self._time(v, previous, None)
        offsets.append((offset, vehicle.end_time_windows))
        candidates = set()
        for lo, hi in hard_windows(model, vehicle.start_time_windows):
            lo, hi = max(lo, model.global_start_time), min(hi, model.global_end_time)
            if lo > hi:
                continue
            candidates.update((lo, hi))
            for off, windows in offsets:
                for _, w_end in hard_windows(model, windows):
                    if lo <= w_end - off <= hi:
                        candidates.add(w_end - off)
        return sorted(candidates)

    def feasible(self, v: int, order: Sequence[VisitRef]) -> bool:
        """Whether some schedule serves ``order`` within windows and the duration limit."""
        vehicle = self.model.vehicles[v]
        for start in self.start_candidates(v, order):
            end = self.schedule_end(v, order, start)
            if end is not None and not route_limit_problems(vehicle, end - start, 0.0):
                return True
        return False

    def pickup_delivery_problems(self, v: int, order: Sequence[VisitRef]) -> list[str]:
        """Pickup-to-delivery limits broken by ``order``. Visits have no time windows when a
        shipment has such limits (see :func:`_require_tiny`), so the earliest schedule has no
        wait between a pickup and its delivery: their gap is the travel and visit time between
        them, whatever the start."""
        starts: dict[VisitRef, float] = {}
        offset = 0.0
        previous: VisitRef | None = None
        for ref in order:
            offset += self._time(v, previous, ref)
            starts[ref] = offset
            offset += visit_duration(self.model.vehicles[v], visit_request(self.model, ref))
            previous = ref
        problems = []
        for (s, is_pickup, k), start in starts.items():
            if not is_pickup:
                continue
            for (s2, is_pickup2, k2), end in starts.items():
                if s2 == s and not is_pickup2:
                    travel_s = self.travel.leg(v, (s, True, k), (s, False, k2))[0]
                    problems += pickup_delivery_limit_problems(self.model, s, travel_s, end - start)
        return problems

    def best_cost(self, v: int, shipments: Sequence[int]) -> float:
        """Cheapest feasible route of vehicle v serving exactly ``shipments`` (inf if none)."""
        model, vehicle = self.model, self.model.vehicles[v]
        if not shipments and not vehicle.used_if_route_is_empty:
            return 0.0
        if not all(vehicle_allowed(model, s, v) for s in shipments):
            return math.inf
        refs: list[VisitRef] = []
        for s in shipments:
            if model.shipments[s].pickups:
                refs.append((s, True, 0))
            if model.shipments[s].deliveries:
                refs.append((s, False, 0))
        best = math.inf
        prefix = self.prefixes.get(v, [])
        for order in itertools.permutations(refs):
            if list(order[: len(prefix)]) != prefix:
                continue
            position = {(s, p): i for i, (s, p, _) in enumerate(order)}
            if any(
                position.get((s, True), -1) > position[(s, False)]
                for s, is_pickup, _ in order
                if not is_pickup
            ):
                continue
            loads = route_loads(model, v, order)
            if any(load_limit_problems(vehicle, load) for load in loads):
                continue
            if order and load_interval_problems(vehicle, loads):
                continue
            if unloading_problems(model, vehicle, order):
                continue
            if route_type_problems(model, order) or self.pickup_delivery_problems(v, order):
                continue
            pairs = list(itertools.pairwise((None, *order, None)))
            legs = [self.travel.leg(v, a, b) for a, b in pairs]
            transition_cost = math.fsum(
                c
                for (a, b), leg in zip(pairs, legs, strict=True)
                for c in transition_terms(model, v, a, b, leg[1])[1].values()
            )
            travel_s = math.fsum(leg[0] for leg in legs)
            distance_m = math.fsum(leg[1] for leg in legs)
            if route_limit_problems(vehicle, 0.0, distance_m):
                continue
            if driver_hours_problems(vehicle, 0.0, 0.0, travel_s, ()):
                continue  # the travel duration limit (no break rules here)
            cost = transition_cost + math.fsum(
                route_cost_terms(
                    model,
                    v,
                    start_time=0.0,
                    end_time=0.0,
                    travel_s=travel_s,
                    distance_m=distance_m,
                    visit_starts=[(ref, 0.0) for ref in order],
                    max_loads={t: max(load[t] for load in loads) for t in loads[0]},
                    legs=legs,
                    loads=loads,
                ).values()
            )
            if cost < best and self.feasible(v, order):
                best = cost
        return best


def brute_force_optimum(model: ShipmentModel, *, geodesic_meters_per_second: float = 10.0) -> float:
    """Minimum total cost (vehicle costs plus penalties of skipped optional shipments).

    Raises ValueError for models outside the supported class (see the module docstring)
    and when no feasible assignment serves every mandatory shipment.
    """
    _require_tiny(model)
    locks, kept_skipped = injected_locks(model)
    model = _fix_times(model, locks)
    prefixes = {lock.vehicle: lock.prefix for lock in locks if lock.visits}
    router = _Router(model, Travel(model, geodesic_meters_per_second), prefixes)
    n_shipments, n_vehicles = len(model.shipments), len(model.vehicles)
    route_cost: dict[tuple[int, tuple[int, ...]], float] = {}
    best = math.inf
    for assignment in itertools.product(range(-1, n_vehicles), repeat=n_shipments):
        # An ignored shipment is skipped without penalty; an ignored vehicle serves nothing.
        if any(model.shipments[s].ignore and assignment[s] != -1 for s in range(n_shipments)):
            continue
        if any(model.vehicles[v].ignore for v in assignment if v != -1):
            continue
        if not _lock_allows(model, locks, kept_skipped, assignment):
            continue
        limit = model.max_active_vehicles
        if limit is not None and len({v for v in assignment if v != -1}) > limit:
            continue
        skipped = [
            s for s in range(n_shipments) if assignment[s] == -1 and not model.shipments[s].ignore
        ]
        if any(model.shipments[s].is_mandatory for s in skipped):
            continue
        total = math.fsum(model.shipments[s].penalty_cost or 0.0 for s in skipped)
        for v in range(n_vehicles):
            served = tuple(s for s in range(n_shipments) if assignment[s] == v)
            if (v, served) not in route_cost:
                route_cost[(v, served)] = router.best_cost(v, served)
            total += route_cost[(v, served)]
        best = min(best, total)
    if math.isinf(best):
        raise ValueError("no feasible assignment serves every mandatory shipment")
    return best
