"""Pre-check: which vehicle could serve each shipment on its own, and why not.

A reason is only given when it is proven: the shipment served alone by the vehicle (best
pickup and delivery alternatives, earliest schedule) violates the vehicle's capacity, time
windows, duration limit (lower bound: travel plus visit time) or distance limit. A shipment that
no vehicle can serve is skipped before the solver runs, with one reason per distinct cause;
vehicles that cannot serve a shipment are excluded for it in the solver.

Ignored shipments (``Shipment.ignore``) are skipped with ``SHIPMENT_IGNORED``; ignored vehicles
(``Vehicle.ignore``) serve nothing, and a shipment that only ignored vehicles may serve is
skipped with ``VEHICLE_IGNORED``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from engine.model import Shipment
from engine.problem import Problem, Window
from engine.solution import SkipReason, SkipReasonCode

__all__ = ["alone_reason", "precheck"]


def precheck(problem: Problem) -> tuple[Problem, dict[int, tuple[SkipReason, ...]]]:
    """``problem`` with its ``routable`` and ``allowed_vehicles`` filled in (a new problem; the
    one given is left as it is), and the skipped shipments' reasons by shipment index."""
    model = problem.model
    skipped: dict[int, tuple[SkipReason, ...]] = {}
    routable = [True] * len(model.shipments)
    allowed_vehicles: list[tuple[int, ...]] = []
    profile_of, representative = _vehicle_profiles(problem)
    everyone = tuple(range(len(model.vehicles)))
    short = _short_of_minimum(problem)
    for s in range(len(model.shipments)):
        if model.shipments[s].ignore:
            skipped[s] = (SkipReason(SkipReasonCode.SHIPMENT_IGNORED),)
            routable[s] = False
            allowed_vehicles.append(())
            continue
        if not everyone:
            skipped[s] = (SkipReason(SkipReasonCode.NO_VEHICLE),)
            routable[s] = False
            allowed_vehicles.append(())
            continue
        verdicts = [_verdict(problem, v, s) for v in representative]
        ok, reasons = _allowed(problem, s, everyone, verdicts, profile_of, short)
        allowed_vehicles.append(ok)
        if not ok:
            routable[s] = False
            skipped[s] = reasons
    checked = dataclasses.replace(problem, routable=routable, allowed_vehicles=allowed_vehicles)
    return checked, skipped


def _allowed(
    problem: Problem,
    s: int,
    everyone: tuple[int, ...],
    verdicts: Sequence[tuple[SkipReasonCode, str] | None],
    profile_of: Sequence[int],
    short: Mapping[int, str],
) -> tuple[tuple[int, ...], tuple[SkipReason, ...]]:
    """The vehicles that may serve shipment ``s`` given the verdict of each vehicle profile
    (``profile_of`` each vehicle); when there are none, one reason per distinct cause."""
    model = problem.model
    allowed = model.shipments[s].allowed_vehicle_indices
    ignored = {v for v, vehicle in enumerate(model.vehicles) if vehicle.ignore}
    if not allowed and not ignored and not short and all(v is None for v in verdicts):
        return everyone, ()  # the common case, without a loop per vehicle
    allowed_set = set(allowed or everyone)
    ok: list[int] = []
    reasons: dict[SkipReasonCode, SkipReason] = {}
    for v in everyone:
        verdict = verdicts[profile_of[v]]
        if v not in allowed_set:
            reason: SkipReason | None = SkipReason(SkipReasonCode.VEHICLE_NOT_ALLOWED, v)
        elif v in ignored:
            reason = SkipReason(SkipReasonCode.VEHICLE_IGNORED, v)
        elif v in short:  # its minimum start or end load cannot be reached (issue 15)
            reason = SkipReason(SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY, v, short[v])
        else:
            reason = None if verdict is None else SkipReason(verdict[0], v, verdict[1])
        if reason is None:
            ok.append(v)
        else:
            reasons.setdefault(reason.code, reason)
    return tuple(ok), tuple(sorted(reasons.values(), key=lambda r: r.code))


def alone_reason(problem: Problem, v: int, s: int) -> SkipReason | None:
    """Why vehicle ``v`` cannot serve shipment ``s`` even alone (None: it can, as far as the
    pre-check proves)."""
    if v in problem.model.shipments[s].allowed_vehicle_indices or not (
        problem.model.shipments[s].allowed_vehicle_indices
    ):
        if problem.model.vehicles[v].ignore:
            return SkipReason(SkipReasonCode.VEHICLE_IGNORED, v)
        short = _short_of_minimum(problem, (v,))
        if short:
            return SkipReason(SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY, v, short[v])
        verdict = _verdict(problem, v, s)
        return None if verdict is None else SkipReason(verdict[0], v, verdict[1])
    return SkipReason(SkipReasonCode.VEHICLE_NOT_ALLOWED, v)


def _vehicle_profiles(problem: Problem) -> tuple[list[int], list[int]]:
    """Group the vehicles that serve any shipment alone identically (same load limits, travel,
    start and end, shift and limits): the profile of each vehicle, and one vehicle per profile.
    A fleet of 250 identical vans is checked once per shipment, not 250 times."""
    stops = problem.stops
    index: dict[tuple[object, ...], int] = {}
    profile_of: list[int] = []
    representative: list[int] = []
    for v, vehicle in enumerate(problem.model.vehicles):
        key = (
            tuple(sorted(vehicle.load_limits.items())),
            problem.travel.vehicle_matrix[v],
            vehicle.travel_duration_multiple,
            vehicle.start_location,
            vehicle.end_location,
            vehicle.start_tags,
            vehicle.end_tags,
            problem.windows[stops.vehicle_start(v)],
            problem.windows[stops.vehicle_end(v)],
            vehicle.route_duration_limit_s,
            vehicle.route_distance_limit_m,
            _travel_limit_s(problem, v),
            _load_interval_maxima(problem, v),
            tuple(sorted(vehicle.extra_visit_duration_for_visit_type.items())),
        )
        if key not in index:
            index[key] = len(representative)
            representative.append(v)
        profile_of.append(index[key])
    return profile_of, representative


def _verdict(problem: Problem, v: int, s: int) -> tuple[SkipReasonCode, str] | None:
    """None when vehicle ``v`` can serve shipment ``s`` alone, else the reason's code and the
    load type (for a capacity; else "")."""
    limits = problem.model.vehicles[v].load_limits
    shipment = problem.model.shipments[s]
    for load_type in sorted(shipment.demanded_types):
        limit = limits.get(load_type)
        # on board after the pickup (a delivery-only load: from the start), per-visit demands
        # included: the least of the alternatives
        amount = _least_demand(shipment, load_type, bool(shipment.pickups))
        if limit is not None and amount > limit:
            return SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY, load_type
    over = _exceeds_load_interval(problem, v, s)
    if over:
        return SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY, over
    code = _route_alone(problem, v, s)
    return None if code is None else (code, "")


def _earliest_in(windows: Sequence[Window], t: int) -> int | None:
    for lo, hi in windows:
        if t <= hi:
            return max(t, lo)
    return None


def _route_alone(problem: Problem, v: int, s: int) -> SkipReasonCode | None:
    """None when vehicle ``v`` can serve shipment ``s`` alone, else the first reason."""
    stops = problem.stops
    vehicle = problem.model.vehicles[v]
    travel = problem.travel_s(v)
    distance = problem.distance_m(v)
    pickups = stops.pickup_stops[s] or (None,)
    deliveries = stops.delivery_stops[s] or (None,)
    start, end = stops.vehicle_start(v), stops.vehicle_end(v)
    found: set[SkipReasonCode] = set()
    for p, d in itertools.product(pickups, deliveries):
        seq = [start, *(x for x in (p, d) if x is not None), end]
        code = _check_sequence(
            problem,
            v,
            seq,
            travel,
            distance,
            vehicle.route_duration_limit_s,
            vehicle.route_distance_limit_m,
        )
        if code is None:
            code = _check_travel_limit(problem, v, seq, travel)
        if code is None:
            return None
        found.add(code)
    return min(found)


def _check_sequence(
    problem: Problem,
    v: int,
    seq: list[int],
    travel: npt.NDArray[np.int64],
    distance: npt.NDArray[np.int64],
    duration_limit_s: float | None,
    distance_limit_m: float | None,
) -> SkipReasonCode | None:
    if not all(problem.reachable(v, a, b) for a, b in itertools.pairwise(seq)):
        return SkipReasonCode.UNREACHABLE_LOCATION
    windows = problem.windows
    service = problem.service_for(v)  # with the vehicle's visit-type extras (issue 15)
    t = _earliest_in(windows[seq[0]], 0)
    if t is None:
        return SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS
    busy = 0
    meters = 0
    for prev, cur in itertools.pairwise(seq):
        leg = int(travel[prev, cur]) + problem.delay(prev, cur)  # transition delays (issue 15)
        busy += leg + int(service[prev])
        meters += int(distance[prev, cur])
        t_next = _earliest_in(windows[cur], t + int(service[prev]) + leg)
        if t_next is None:
            return SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS
        t = t_next
    if duration_limit_s is not None and busy > duration_limit_s:
        return SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DURATION_LIMIT
    if distance_limit_m is not None and meters > distance_limit_m:
        return SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DISTANCE_LIMIT
    return None


def _travel_limit_s(problem: Problem, v: int) -> float | None:
    limit = problem.model.vehicles[v].travel_duration_limit
    return None if limit is None else limit.max_duration_s


def _check_travel_limit(
    problem: Problem, v: int, seq: list[int], travel: npt.NDArray[np.int64]
) -> SkipReasonCode | None:
    """``travel_duration_limit.max_duration`` against the travel of ``seq`` (issue 15)."""
    limit = _travel_limit_s(problem, v)
    if limit is None:
        return None
    total = sum(int(travel[a, b]) for a, b in itertools.pairwise(seq))
    if total > limit:
        return SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TRAVEL_DURATION_LIMIT
    return None


def _load_interval_maxima(problem: Problem, v: int) -> tuple[object, ...]:
    vehicle = problem.model.vehicles[v]
    return tuple(
        tuple(sorted((t, i.max_load) for t, i in intervals.items() if i.max_load is not None))
        for intervals in (vehicle.start_load_intervals, vehicle.end_load_intervals)
    )


def _exceeds_load_interval(problem: Problem, v: int, s: int) -> str:
    """The load type whose ``start_load_interval.max`` a delivery-only shipment ``s`` exceeds
    (its goods are on board from the start), or whose ``end_load_interval.max`` a pickup-only
    one exceeds (on board until the end); "" if none (issue 15)."""
    vehicle = problem.model.vehicles[v]
    shipment = problem.model.shipments[s]
    intervals = vehicle.end_load_intervals if shipment.pickups else vehicle.start_load_intervals
    for load_type in sorted(shipment.demanded_types):
        amount = _least_demand(shipment, load_type, bool(shipment.pickups))
        if shipment.pickups and shipment.deliveries:
            # a pair leaves on board what its pickup adds beyond its delivery's removal
            amount -= max(
                shipment.visit_demands(False, k).get(load_type, 0)
                for k in range(len(shipment.deliveries))
            )
        interval = intervals.get(load_type)
        if interval is not None and interval.max_load is not None and amount > interval.max_load:
            return load_type
    return ""


def _least_demand(shipment: Shipment, load_type: str, is_pickup: bool) -> int:
    """The least demand of ``load_type`` over the shipment's pickup (or delivery) alternatives,
    per-visit demands included."""
    visits = shipment.pickups if is_pickup else shipment.deliveries
    return min(
        (shipment.visit_demands(is_pickup, k).get(load_type, 0) for k in range(len(visits))),
        default=0,
    )


def _short_of_minimum(problem: Problem, vehicles: Sequence[int] | None = None) -> dict[int, str]:
    """The vehicles (of ``vehicles``, default all) that can never perform a visit because a
    positive ``start_load_interval.min`` or ``end_load_interval.min`` (issue 15) cannot be
    reached: even with every shipment it may serve, the most it can leave with (delivery-only
    goods) or come back with (pickup-only goods and what pairs pick up beyond what they
    deliver), its ``max_load`` and the interval's max included, is below the minimum. Vehicle
    → the load type."""
    model = problem.model
    if vehicles is None:
        vehicles = range(len(model.vehicles))
    short: dict[int, str] = {}
    for v in vehicles:
        vehicle = model.vehicles[v]
        for kind, intervals in (
            ("start", vehicle.start_load_intervals),
            ("end", vehicle.end_load_intervals),
        ):
            for load_type, interval in sorted(intervals.items()):
                if interval.min_load <= 0 or v in short:
                    continue
                most = _most_on_board(model.shipments, v, load_type, at_start=kind == "start")
                for cap in (vehicle.load_limits.get(load_type), interval.max_load):
                    if cap is not None:
                        most = min(most, cap)
                if most < interval.min_load:
                    short[v] = load_type
    return short


def _most_on_board(shipments: Sequence[Shipment], v: int, load_type: str, *, at_start: bool) -> int:
    """The most of ``load_type`` that vehicle ``v`` can have on board at the start (or end) of
    a route with every shipment it may serve."""
    most = 0
    for shipment in shipments:
        if shipment.ignore or load_type not in shipment.demanded_types:
            continue
        if shipment.allowed_vehicle_indices and v not in shipment.allowed_vehicle_indices:
            continue
        picked = [
            shipment.visit_demands(True, k).get(load_type, 0) for k in range(len(shipment.pickups))
        ]
        dropped = [
            shipment.visit_demands(False, k).get(load_type, 0)
            for k in range(len(shipment.deliveries))
        ]
        if at_start and not picked:
            most += max(dropped)
        elif not at_start and picked:
            most += max(picked) - min(dropped, default=0)
    return most
