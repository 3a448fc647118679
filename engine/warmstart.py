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
- an end window that opens after the start window loses its start (the vehicle waits);
- break frequency rules (``break_rule.frequency_constraints``) are dropped, and the cut
  timeline keeps them instead: a break is cut out where the rule needs it (by the limit
  after the earliest start, less the longest visit, when that comes before the middle of its
  window) and routes end within the limit after the last break; a rule no break satisfies
  bounds the route's duration. (Gehring-Homberger C1_2_1 ``hours``, 10 s: PyVRP's routes
  taken as they are, 3370 against 3645 with the breaks cut at their windows' middles);
- shipment type incompatibilities become allowed vehicles (:func:`type_parts`): the types are
  coloured so that incompatible types differ, and each colour gets its own part of the fleet,
  in proportion to its shipments; untyped shipments may use any vehicle. Every route then
  keeps the incompatibilities (a restriction), so none is taken apart by the repair.

The nearby model keeps the stops' travel matrices (no new road queries) and the stops' order,
so its routes map straight back. Under an injected constraint that commits the first visits of
routes, PyVRP solves the nearby model's *residual* problem instead (:mod:`engine.residual`):
what is left after the committed visits, their vehicles starting where those end.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
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
from engine.model import (
    FrequencyConstraint,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from engine.precheck import precheck
from engine.problem import Problem
from engine.residual import committed_prefixes, residual_problem
from engine.travel import TravelMatrices, build_stops, stop_map

__all__ = [
    "WARM_STARTABLE",
    "WARM_STARTABLE_UNDER",
    "WarmStartedOrTools",
    "nearby_model",
    "pyvrp_initial_routes",
]

log = logging.getLogger(__name__)

NOT_WARM_STARTED = RULES_AND_COSTS - {"shipment_type_incompatibilities", "break_frequency"}
"""Features of issue 15 that OR-Tools solves from its own first solution: PyVRP's routes on a
model without them mislead it (60 shipments, 5 vehicles, 5 s: ``costs_per_vehicle`` 272 from
PyVRP's routes against 94 without them, a soft distance limit 392 against 362; routes breaking
a rule or a precedence are dropped, and the local search inserts their visits back poorly).
Type incompatibilities and break frequencies are warm started: the nearby model keeps them
(as a partition of the fleet, and as breaks cut out of its timeline where the rule needs
them)."""

WARM_STARTABLE = (
    frozenset(FEATURES) - {"distance_limit_with_time_cost"} - NOT_WARM_STARTED - REOPTIMISATION
)
"""Features (:mod:`engine.backends.features`) that the nearby model can do without: all but a
distance limit with a time cost (the nearby model keeps the vehicles' distance limits),
:data:`NOT_WARM_STARTED` and the injected solutions (their own routes are the start)."""

WARM_STARTABLE_UNDER = WARM_STARTABLE | {"injected_solution_constraint"}
"""… and an injected constraint: PyVRP solves its residual problem (:mod:`engine.residual`;
none when the constraint does not commit route prefixes: OR-Tools starts from its routes)."""


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

    def __init__(self, breaks: tuple[tuple[float, float], ...], close: float | None = None) -> None:
        self.breaks = breaks
        """(time taken, length) of each break, in order."""
        self.close = close
        """Real time by which routes end (a break frequency rule after the last break)."""

    @classmethod
    def of(cls, model: ShipmentModel) -> Timeline | None:
        """The cut timeline of ``model``, or None when vehicles take different breaks (or
        none, or breaks whose middles overlap: the end window closes earlier instead).

        With a break frequency rule (the shortest ``max_inter_break_duration_s`` of the
        vehicles' rules that a break satisfies), a break is taken earlier when the rule needs
        it: the route may not go longer than the limit from the earliest vehicle start (or the
        break before) without a break, and a visit under way when the break is due delays it
        by up to the longest visit duration. Routes then end within the limit after the last
        break (:attr:`close`)."""
        rules = {v.break_requests for v in model.vehicles}
        if len(rules) != 1:
            return None
        (requests,) = rules
        if not requests:
            return None
        ordered = sorted(requests, key=lambda b: b.earliest_start_time + b.latest_start_time)
        breaks = [
            ((b.earliest_start_time + b.latest_start_time) / 2, b.min_duration_s) for b in ordered
        ]
        limit = _frequency_limit(model)
        close = None
        if limit is not None:
            longest = max(
                (v.duration_s for s in model.shipments for v in (*s.pickups, *s.deliveries)),
                default=0.0,
            )
            due = _earliest_start(model) + limit - longest
            for k, b in enumerate(ordered):
                at = max(b.earliest_start_time, min(breaks[k][0], due))
                breaks[k] = (at, b.min_duration_s)
                due = at + b.min_duration_s + limit - longest
            close = breaks[-1][0] + breaks[-1][1] + limit
        for (at, length), (then, _) in itertools.pairwise(breaks):
            if at + length > then:
                return None
        return cls(tuple(breaks), close)

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


def _satisfied(fc: FrequencyConstraint, vehicle: Vehicle) -> bool:
    """Whether one of the vehicle's breaks is long enough for the frequency rule ``fc`` (else
    the rule bounds the whole route)."""
    return any(b.min_duration_s >= fc.min_break_duration_s for b in vehicle.break_requests)


def _frequency_limit(model: ShipmentModel) -> float | None:
    """The shortest stretch without a break that the vehicles' break frequency rules allow
    (rules that one of the vehicle's breaks satisfies; None: no such rule)."""
    limits = [
        fc.max_inter_break_duration_s
        for v in model.vehicles
        for fc in v.break_frequency_constraints
        if _satisfied(fc, v)
    ]
    return min(limits, default=None)


def _earliest_start(model: ShipmentModel) -> float:
    """When the first vehicle may start (a vehicle without start windows: the global start)."""
    g0 = model.global_start_time
    return min(
        (
            min(
                (g0 if w.start_time is None else w.start_time for w in v.start_time_windows),
                default=g0,
            )
            for v in model.vehicles
        ),
        default=g0,
    )


def _vehicle(vehicle: Vehicle, lo: float, hi: float, timeline: Timeline | None) -> Vehicle:
    start = _widest(vehicle.start_time_windows, lo, hi)
    end = _widest(vehicle.end_time_windows, lo, hi)
    if start and end and end[0].start_time is not None:
        opens = lo if start[0].start_time is None else start[0].start_time
        if end[0].start_time > opens:
            end = (TimeWindow(end_time=end[0].end_time),)
    close = hi if not end or end[0].end_time is None else end[0].end_time
    limit = vehicle.route_duration_limit_s
    for fc in vehicle.break_frequency_constraints:
        if not _satisfied(fc, vehicle):  # the rule bounds the whole route
            bound = fc.max_inter_break_duration_s
            limit = bound if limit is None else min(limit, bound)
    if timeline is not None:
        if timeline.close is not None:
            close = max(lo, min(close, timeline.close))
        last = dataclasses.replace(end[0] if end else TimeWindow(), end_time=close)
        return dataclasses.replace(
            vehicle,
            break_requests=(),
            break_frequency_constraints=(),
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
        vehicle,
        break_requests=(),
        break_frequency_constraints=(),
        start_time_windows=start,
        end_time_windows=end,
        route_duration_limit_s=limit,
    )


def type_parts(model: ShipmentModel) -> list[tuple[int, ...] | None] | None:
    """Per shipment, the vehicles its type may use so that no vehicle can serve two
    incompatible types (None: any vehicle); None when no two shipments' types are incompatible
    or the fleet is too small to give each colour a vehicle.

    The types of the shipments are coloured greedily (the most frequent first), incompatible
    types differently (any mode: keeping them off the same vehicle keeps them apart on board
    too), and the vehicles are dealt to the colours in proportion to their shipments, one at a
    time to the colour furthest below its share (so each part mixes the fleet's kinds)."""
    conflicts: dict[str, set[str]] = {}
    for rule in model.shipment_type_incompatibilities:
        for a, b in itertools.permutations(set(rule.types), 2):
            conflicts.setdefault(a, set()).add(b)
    count = Counter(s.shipment_type for s in model.shipments if s.shipment_type in conflicts)
    colour: dict[str, int] = {}
    for t, _ in sorted(count.items(), key=lambda kv: (-kv[1], kv[0])):
        near = {colour[u] for u in conflicts[t] if u in colour}
        colour[t] = next(c for c in itertools.count() if c not in near)
    colours = 1 + max(colour.values(), default=0)
    fleet = len(model.vehicles)
    if colours < 2 or fleet < colours:
        return None
    weight = [0] * colours
    for t, n in count.items():
        weight[colour[t]] += n
    total = sum(weight)
    parts: list[list[int]] = [[] for _ in range(colours)]
    for v in range(fleet):
        c = max(range(colours), key=lambda c: (weight[c] * (v + 1) / total - len(parts[c]), -c))
        parts[c].append(v)
    if any(not part for part in parts):
        return None
    return [
        tuple(parts[colour[s.shipment_type]]) if s.shipment_type in colour else None
        for s in model.shipments
    ]


def _allowed(shipment: Shipment, part: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shipment's allowed vehicles within its type's ``part`` (its own when they share
    none: then the repair takes out what breaks the incompatibility)."""
    if part is None:
        return shipment.allowed_vehicle_indices
    if not shipment.allowed_vehicle_indices:
        return part
    own = set(shipment.allowed_vehicle_indices)
    both = tuple(v for v in part if v in own)
    return both or shipment.allowed_vehicle_indices


def nearby_model(model: ShipmentModel, keep_allowed: bool = False) -> ShipmentModel:
    """The model without the features PyVRP lacks (see the module docstring); with
    ``keep_allowed``, the shipments keep their ``allowed_vehicle_indices`` and the fleet is
    split by type (:func:`type_parts`)."""
    lo, hi = model.global_start_time, model.global_end_time
    timeline = Timeline.of(model)
    shipments = tuple(_shipment(s, lo, hi, keep_allowed, timeline) for s in model.shipments)
    parts = type_parts(model) if keep_allowed else None
    if parts is not None:
        shipments = tuple(
            dataclasses.replace(s, allowed_vehicle_indices=_allowed(s, part))
            for s, part in zip(shipments, parts, strict=True)
        )
    return dataclasses.replace(
        model,
        shipments=shipments,
        vehicles=tuple(_vehicle(v, lo, hi, timeline) for v in model.vehicles),
        shipment_type_incompatibilities=(),
    )


def _nearby_problem(problem: Problem, keep_allowed: bool) -> tuple[Problem, np.ndarray]:
    """The nearby model's problem on the problem's travel matrices, and the original stop of
    each of its stops."""
    model = nearby_model(problem.model, keep_allowed)
    stops = build_stops(model)
    index = stop_map(problem.stops, stops)
    cut = np.ix_(index, index)
    travel = TravelMatrices(
        durations_s=tuple(d[cut] for d in problem.travel.durations_s),
        distances_m=tuple(d[cut] for d in problem.travel.distances_m),
        vehicle_matrix=problem.travel.vehicle_matrix,
        source=problem.travel.source,
    )
    nearby, _ = precheck(Problem.build(model, stops, travel))
    return nearby, index


def pyvrp_initial_routes(
    problem: Problem,
    stop: StopCriterion,
    seed: int = 0,
    on_progress: ProgressCallback | None = None,
) -> list[list[int]] | None:
    """Visit stops per vehicle of ``problem`` from a PyVRP search on the nearby model (its
    residual problem under an injected constraint) until ``stop``; None when PyVRP finds no
    solution serving every mandatory shipment there, or the constraint leaves no residual."""
    nearby, index = _nearby_problem(problem, keep_allowed=not too_many_allowed_classes(problem))
    if too_many_allowed_classes(nearby):  # the type parts split the fleet's classes too finely
        nearby, index = _nearby_problem(problem, keep_allowed=False)
    routable = [a and b for a, b in zip(nearby.routable, problem.routable, strict=True)]
    nearby = dataclasses.replace(nearby, routable=routable)
    residual = None
    if problem.model.injected_solution_constraint is not None:
        committed = committed_prefixes(problem)
        if committed is not None:
            residual = residual_problem(problem, nearby, index, committed, _clock(problem.model))
        if residual is None:
            log.info("warm start: the injected constraint leaves no residual problem")
            return None
    backend = get_backend("pyvrp", seed=seed)
    try:
        plans = backend.solve(nearby if residual is None else residual.problem, stop, on_progress)
    except NoSolutionError as exc:
        log.info("warm start: no PyVRP solution on the nearby model (%s)", exc)
        return None
    if residual is not None:
        mapped = list(enumerate(residual.routes(plans, len(problem.model.vehicles))))
    else:
        mapped = [(plan.vehicle, [int(index[i]) for i in plan.stops]) for plan in plans]
    shipment_of = problem.stops.shipment
    return [
        [i for i in route if v in problem.allowed_vehicles[int(shipment_of[i])]]
        for v, route in mapped
    ]


def _clock(model: ShipmentModel) -> Callable[[float], float]:
    """Model time -> the nearby model's time (the cut timeline, if any)."""
    timeline = Timeline.of(model)
    if timeline is None:
        return lambda t: t

    def clock(t: float) -> float:
        out = timeline(t)
        assert out is not None
        return out

    return clock


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
            if problem.model.injected_solution_constraint is not None:
                self.outcome = "no residual problem, or pyvrp found no routes on it"
        elif isinstance(self.ortools, OrToolsLike):
            self.ortools.initial_routes = routes
            self.outcome = f"started from pyvrp's routes ({sum(map(len, routes))} visits)"
        plans = self.ortools.solve(problem, stop, on_progress)
        taken = getattr(self.ortools, "initial_outcome", None)
        if routes is not None and taken:
            self.outcome = f"{self.outcome}: {taken}"
        return plans
