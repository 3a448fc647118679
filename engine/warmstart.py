"""Warm start for OR-Tools: PyVRP's routes on a version of the model that PyVRP can express.

When a model needs OR-Tools (breaks, soft or several time windows, allowed vehicles, ...), a
short PyVRP search on a *nearby* model often finds much better routes than OR-Tools' first
solution strategies, and OR-Tools then searches on from them with every constraint in place:

- breaks are dropped. When every vehicle takes the same breaks, each is taken at the middle
  of its start window and its length is cut out of the timeline from there (:class:`Timeline`):
  every window after it opens and closes earlier by its length, and so does the vehicles' end
  (Gehring-Homberger 200, 10 s: C1_2_1 3440 -> 3260, C2_2_1 2165 -> 2048, against VROOM's 3283
  and 2061). Otherwise the vehicle's end window closes earlier by their length. The soft
  bounds of a pair's visit's or a vehicle's time window are ignored. OR-Tools places the
  breaks and prices the soft bounds; a route it cannot take as it is keeps the shipments that
  fit, the others left to OR-Tools' search. A single visit keeps its soft window (PyVRP's
  copies);
- of several time windows of a pair's visit only the widest is kept (a single visit keeps
  them all), and of several pickup (delivery) alternatives of a pair only the first
  (restrictions: routes stay feasible);
- ``allowed_vehicle_indices`` stay when PyVRP expresses them (up to
  :data:`~engine.backends.features.MAX_ALLOWED_PROFILES` vehicle classes); with more classes
  they are dropped, and visits on a vehicle that is not allowed are taken out of the initial
  routes (OR-Tools treats every shipment as optional, so fewer visits are always consistent).
  Dropping them cost 5 % (Solomon) and 9 % (Gehring-Homberger 200) on ``mixed`` when the
  shipments may only use the last half of the fleet (PyVRP fills the first vehicles);
- an end window that opens after the start window loses its start (the vehicle waits).

The nearby model keeps the stops' travel matrices (no new road queries) and the stops' order,
so its routes map straight back.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from typing import Protocol, runtime_checkable

import numpy as np

from engine.backends import get_backend
from engine.backends.base import Backend, ProgressCallback, RoutePlan, StopCriterion
from engine.backends.features import (
    FEATURES,
    REOPTIMISATION,
    RULES_AND_COSTS,
    too_many_allowed_classes,
)
from engine.errors import NoSolutionError
from engine.model import Shipment, ShipmentModel, TimeWindow, Vehicle, VisitRequest
from engine.precheck import precheck
from engine.problem import Problem
from engine.travel import Stops, TravelMatrices, build_stops

__all__ = ["WARM_STARTABLE", "WarmStartedOrTools", "nearby_model", "pyvrp_initial_routes"]

log = logging.getLogger(__name__)

NOT_WARM_STARTED = RULES_AND_COSTS
"""Features of issue 15 that OR-Tools solves from its own first solution: PyVRP's routes on a
model without them mislead it (60 shipments, 5 vehicles, 5 s: one type incompatibility 400
from PyVRP's routes against 115 without them, ``costs_per_vehicle`` 272 against 94, a soft
distance limit 392 against 362; routes breaking a rule or a precedence are dropped, and the
local search inserts their visits back poorly)."""

WARM_STARTABLE = (
    frozenset(FEATURES) - {"distance_limit_with_time_cost"} - NOT_WARM_STARTED - REOPTIMISATION
)
"""Features (:mod:`engine.backends.features`) that the nearby model can do without: all but a
distance limit with a time cost (the nearby model keeps the vehicles' distance limits),
:data:`NOT_WARM_STARTED` and the injected solutions (their own routes are the start)."""


@runtime_checkable
class OrToolsLike(Protocol):
    """A backend that can start from given routes (the OR-Tools backend)."""

    initial_routes: list[list[int]] | None


def _widest(windows: tuple[TimeWindow, ...], lo: float, hi: float) -> tuple[TimeWindow, ...]:
    """The widest hard window, without soft bounds (none: unchanged)."""
    if not windows:
        return ()

    def width(w: TimeWindow) -> float:
        return (hi if w.end_time is None else w.end_time) - (
            lo if w.start_time is None else w.start_time
        )

    best = max(windows, key=width)
    return (TimeWindow(start_time=best.start_time, end_time=best.end_time),)


def _visit(
    visit: VisitRequest, lo: float, hi: float, pair: bool, timeline: Timeline | None
) -> VisitRequest:
    """Several hard windows and a soft window stay on a single visit (PyVRP's client copies),
    not on a pair; the windows follow the cut ``timeline``."""
    windows = visit.time_windows
    if pair:
        windows = _widest(windows, lo, hi)
    if timeline is not None:
        windows = tuple(timeline.window(w) for w in windows)
    return dataclasses.replace(visit, time_windows=windows)


def _shipment(
    shipment: Shipment, lo: float, hi: float, keep_allowed: bool, timeline: Timeline | None
) -> Shipment:
    pickups, deliveries = shipment.pickups, shipment.deliveries
    pair = bool(pickups and deliveries)
    if pair:
        pickups, deliveries = pickups[:1], deliveries[:1]
    return dataclasses.replace(
        shipment,
        pickups=tuple(_visit(v, lo, hi, pair, timeline) for v in pickups),
        deliveries=tuple(_visit(v, lo, hi, pair, timeline) for v in deliveries),
        allowed_vehicle_indices=shipment.allowed_vehicle_indices if keep_allowed else (),
    )


class Timeline:
    """Real time -> the nearby model's time when every vehicle takes the same breaks: break
    ``k`` is taken at the middle of its start window, and its length is cut out of the
    timeline after it (``t - sum(clamp(t - at_k, 0, length_k))``). A route that keeps the
    cut timeline keeps every later window with the breaks taken, so routes that take the
    breaks in the afternoon's windows, not only at the route's end, fit."""

    def __init__(self, breaks: tuple[tuple[float, float], ...]) -> None:
        self.breaks = breaks
        """(time taken, length) of each break, in order."""

    @classmethod
    def of(cls, model: ShipmentModel) -> Timeline | None:
        """The cut timeline of ``model``, or None when vehicles take different breaks (or
        none, or breaks whose middles overlap: the end window closes earlier instead)."""
        rules = {v.break_requests for v in model.vehicles}
        if len(rules) != 1:
            return None
        (requests,) = rules
        if not requests:
            return None
        breaks = sorted(
            ((b.earliest_start_time + b.latest_start_time) / 2, b.min_duration_s) for b in requests
        )
        for (at, length), (then, _) in itertools.pairwise(breaks):
            if at + length > then:
                return None
        return cls(tuple(breaks))

    def __call__(self, t: float | None) -> float | None:
        if t is None:
            return None
        return t - sum(min(max(t - at, 0.0), length) for at, length in self.breaks)

    def window(self, w: TimeWindow) -> TimeWindow:
        return dataclasses.replace(
            w,
            start_time=self(w.start_time),
            end_time=self(w.end_time),
            soft_start_time=self(w.soft_start_time),
            soft_end_time=self(w.soft_end_time),
        )

    @property
    def length(self) -> float:
        return sum(length for _, length in self.breaks)


def _vehicle(vehicle: Vehicle, lo: float, hi: float, timeline: Timeline | None) -> Vehicle:
    start = _widest(vehicle.start_time_windows, lo, hi)
    end = _widest(vehicle.end_time_windows, lo, hi)
    if start and end and end[0].start_time is not None:
        opens = lo if start[0].start_time is None else start[0].start_time
        if end[0].start_time > opens:
            end = (TimeWindow(end_time=end[0].end_time),)
    close = hi if not end or end[0].end_time is None else end[0].end_time
    if timeline is not None:
        last = dataclasses.replace(end[0] if end else TimeWindow(), end_time=close)
        limit = vehicle.route_duration_limit_s
        return dataclasses.replace(
            vehicle,
            break_requests=(),
            start_time_windows=tuple(timeline.window(w) for w in start),
            end_time_windows=(timeline.window(last),),
            route_duration_limit_s=None if limit is None else max(0.0, limit - timeline.length),
        )
    if vehicle.break_requests:
        # Routes that end earlier by the breaks' length leave room to take them.
        breaks = sum(b.min_duration_s for b in vehicle.break_requests)
        opens_at = None if not end else end[0].start_time
        end = (TimeWindow(start_time=opens_at, end_time=max(lo, close - breaks)),)
    return dataclasses.replace(
        vehicle, break_requests=(), start_time_windows=start, end_time_windows=end
    )


def nearby_model(model: ShipmentModel, keep_allowed: bool = False) -> ShipmentModel:
    """The model without the features PyVRP lacks (see the module docstring); with
    ``keep_allowed``, the shipments keep their ``allowed_vehicle_indices``."""
    lo, hi = model.global_start_time, model.global_end_time
    timeline = Timeline.of(model)
    return dataclasses.replace(
        model,
        shipments=tuple(_shipment(s, lo, hi, keep_allowed, timeline) for s in model.shipments),
        vehicles=tuple(_vehicle(v, lo, hi, timeline) for v in model.vehicles),
    )


def _key(stops: Stops, i: int) -> tuple[int, bool, int, int]:
    return (
        int(stops.shipment[i]),
        bool(stops.is_pickup[i]),
        int(stops.alternative[i]),
        stops.heading_of(i),
    )


def _stop_map(original: Stops, nearby: Stops) -> np.ndarray:
    """Original stop index of each stop of the nearby model."""
    where = {_key(original, i): i for i in range(original.num_visits)}
    out = np.empty(nearby.size, dtype=np.int64)
    for i in range(nearby.num_visits):
        out[i] = where[_key(nearby, i)]
    out[nearby.num_visits :] = np.arange(original.num_visits, original.size)
    return out


def pyvrp_initial_routes(
    problem: Problem,
    stop: StopCriterion,
    seed: int = 0,
    on_progress: ProgressCallback | None = None,
) -> list[list[int]] | None:
    """Visit stops per vehicle of ``problem`` from a PyVRP search on the nearby model until
    ``stop``; None when PyVRP finds no solution serving every mandatory shipment there."""
    model = nearby_model(problem.model, keep_allowed=not too_many_allowed_classes(problem))
    stops = build_stops(model)
    index = _stop_map(problem.stops, stops)
    cut = np.ix_(index, index)
    travel = TravelMatrices(
        durations_s=tuple(d[cut] for d in problem.travel.durations_s),
        distances_m=tuple(d[cut] for d in problem.travel.distances_m),
        vehicle_matrix=problem.travel.vehicle_matrix,
        source=problem.travel.source,
    )
    nearby, _ = precheck(Problem.build(model, stops, travel))
    routable = [a and b for a, b in zip(nearby.routable, problem.routable, strict=True)]
    nearby = dataclasses.replace(nearby, routable=routable)
    backend = get_backend("pyvrp", seed=seed)
    try:
        plans = backend.solve(nearby, stop, on_progress)
    except NoSolutionError as exc:
        log.info("warm start: no PyVRP solution on the nearby model (%s)", exc)
        return None
    routes: list[list[int]] = []
    stops_of = problem.stops.shipment
    for plan in plans:
        allowed = [
            plan.vehicle in problem.allowed_vehicles[int(stops_of[index[i]])] for i in plan.stops
        ]
        routes.append([int(index[i]) for i, ok in zip(plan.stops, allowed, strict=True) if ok])
    return routes


class WarmStartedOrTools:
    """OR-Tools started from :func:`pyvrp_initial_routes`: PyVRP gets ``fraction`` of the
    search time on the nearby model, OR-Tools the rest on the model itself (from a
    first-solution strategy when OR-Tools rejects the routes)."""

    name = "ortools"

    def __init__(self, ortools: Backend, fraction: float, seed: int = 0) -> None:
        self.ortools = ortools
        self.fraction = fraction
        self.seed = seed
        self.outcome = "not run"
        """What the warm start did (for the backend reason)."""

    def solve(
        self, problem: Problem, stop: StopCriterion, on_progress: ProgressCallback | None = None
    ) -> list[RoutePlan]:
        now = time.monotonic()
        first = StopCriterion(
            deadline=now + self.fraction * max(0.0, stop.deadline - now),
            search_mode=stop.search_mode,
            should_stop=stop.should_stop,
        )
        routes = pyvrp_initial_routes(problem, first, self.seed)
        if first.interrupted:
            stop.interrupted = True
        if routes is None:
            self.outcome = "pyvrp found no routes on the nearby model"
        elif isinstance(self.ortools, OrToolsLike):
            self.ortools.initial_routes = routes
            self.outcome = f"started from pyvrp's routes ({sum(map(len, routes))} visits)"
        plans = self.ortools.solve(problem, stop, on_progress)
        taken = getattr(self.ortools, "initial_outcome", None)
        if routes is not None and taken:
            self.outcome = f"{self.outcome}: {taken}"
        return plans
