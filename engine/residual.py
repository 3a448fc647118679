"""Warm start under committed stops: PyVRP on the residual problem.

An ``injected_solution_constraint`` that commits the first visits of routes and frees the
rest (each constrained route: visits kept on their vehicle and in their order, levels up to
``RELAX_VISIT_TIMES_AFTER_THRESHOLD``, then only ``RELAX_ALL_AFTER_THRESHOLD`` visits; Google's
way of fixing what drivers have already started) leaves a smaller problem: the shipments that
are not committed, with each committed vehicle starting where its committed visits end, no
earlier than they allow, with what they leave of its load limits and its route limits
(:func:`residual_problem`). PyVRP solves it on the warm start's nearby model
(:mod:`engine.warmstart`), seeded with the rest of the injected routes, and each vehicle's
committed visits followed by PyVRP's route start OR-Tools, which keeps the constraint itself.

OR-Tools alone finds no improving move from a plan of PyVRP's quality (the committed variant
of ``benchmarks.variants`` stayed at the injected plan on 9 of 11 instances, ``RESULTS.md``),
so without this the plan a carrier injects is about the plan it gets back.

A committed vehicle whose residual route is empty still drives back from its last committed
stop to its end. PyVRP prices an empty route at nothing, so each committed vehicle gets an
*anchor*: a mandatory visit of no duration and no load at its last committed stop that only
it can reach (travel into it is unreachable from anywhere else), so that its route is never
empty and costs the way back as the real route does. Without anchors PyVRP emptied committed
vehicles and started fresh ones from the depot (Solomon R102, 2 s: 1519.0 against 1469.2).

The residual is exact for travel when the committed visits are a prefix (their load profile
only narrows the vehicle's limits, a restriction); any other shape of constraint (a pair cut
by the threshold, visits kept on their vehicle in any order) gets no residual, and OR-Tools
starts from the injected routes as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.backends.base import RoutePlan
from engine.injected import FIXED, FREE, SEQUENCE, Placed, resolve, with_headings
from engine.model import (
    InjectedRoute,
    InjectedVisit,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from engine.precheck import precheck
from engine.problem import Problem
from engine.reoptimisation import initial_routes
from engine.travel import Stops, TravelMatrices, build_stops, stop_map
from engine.units import ceil_int

__all__ = ["Committed", "Residual", "committed_prefixes", "residual_problem"]


@dataclass(frozen=True)
class Committed:
    """The committed visits of a constraint of prefix shape (see the module docstring)."""

    prefixes: dict[int, tuple[Placed, ...]]
    """Per vehicle with committed visits: those visits, in their order."""
    start_times: dict[int, float]
    """Per vehicle whose injected route has visits and a fixed start: its start time (model
    time; OR-Tools keeps it unless the route ends up empty)."""
    closed: frozenset[int]
    """Vehicles whose route is fixed up to its end: nothing may follow its committed visits."""
    seed: list[list[int]]
    """The injected routes as visit stops per vehicle (the search's start), prefixes included."""

    @property
    def held(self) -> frozenset[int]:
        return frozenset(p.shipment for visits in self.prefixes.values() for p in visits)


def committed_prefixes(problem: Problem) -> Committed | None:
    """The committed prefixes of ``problem``'s injected constraint; None without a constraint,
    with first-solution routes besides it, or when a constrained route is not a committed
    prefix followed by free visits (or a pair is cut by the threshold)."""
    model = problem.model
    if model.injected_solution_constraint is None or model.injected_first_solution_routes:
        return None
    injected = with_headings(resolve(model), problem)
    prefixes: dict[int, tuple[Placed, ...]] = {}
    starts: dict[int, float] = {}
    closed: set[int] = set()
    for route in injected.constrained:
        if model.vehicles[route.vehicle].ignore:
            continue  # its kept shipments are skipped (engine.reoptimisation.constrain)
        kept = [p for p in route.visits if p.level < FREE]
        if any(p.level > SEQUENCE for p in kept) or route.visits[: len(kept)] != tuple(kept):
            return None  # kept on the vehicle in any order, or a free visit among kept ones
        shipments = {p.shipment for p in kept}
        if any(p.shipment in shipments for p in route.visits[len(kept) :]):
            return None  # a pair cut by the threshold
        if any(not problem.routable[s] for s in shipments):
            return None  # the constraint cannot hold as given: OR-Tools says so
        if route.end_level == FIXED and route.visits:
            closed.add(route.vehicle)
        if kept:
            prefixes[route.vehicle] = tuple(kept)
        if route.visits and route.start_level == FIXED and route.start_time is not None:
            starts[route.vehicle] = route.start_time  # kept unless the route ends up empty
    seed = initial_routes(problem, injected) or [[] for _ in model.vehicles]
    return Committed(prefixes, starts, frozenset(closed), seed)


@dataclass(frozen=True)
class Residual:
    """The residual problem and the way back to the original problem's stops."""

    problem: Problem
    original_stop: np.ndarray
    """Original stop of each stop of the residual problem (an anchor: its vehicle's last
    committed stop)."""
    anchors: frozenset[int]
    """The anchors' stops in the residual problem."""
    prefix_stops: dict[int, list[int]]
    """Per committed vehicle: its committed visits' original stops."""

    def routes(self, plans: Sequence[RoutePlan], n_vehicles: int) -> list[list[int]]:
        """Original visit stops per vehicle: the committed visits, then the plan's."""
        out = [list(self.prefix_stops.get(v, ())) for v in range(n_vehicles)]
        for plan in plans:
            out[plan.vehicle] += [
                int(self.original_stop[i]) for i in plan.stops if i not in self.anchors
            ]
        return out


def _simulate(
    nearby: Problem,
    v: int,
    stops: Sequence[int],
    fixed: Sequence[float | None],
    start: float | None,
    clock: Callable[[float], float],
) -> tuple[int, int, int] | None:
    """When vehicle ``v`` starts and when it can leave its last committed stop, at the
    earliest, and the distance of its committed visits (nearby model's time; None: the prefix
    does not fit its windows there). ``fixed``: per visit, the time it is fixed at (None:
    free); ``start``: a fixed start time (model times, mapped by ``clock``)."""
    first = nearby.stops.vehicle_start(v)
    windows = nearby.windows[first]
    if not windows:
        return None
    t = windows[0][0]
    g0 = nearby.model.global_start_time

    def seconds(at: float) -> int:
        return ceil_int(clock(at) - g0)

    if start is not None:
        t = max(t, seconds(start))
    started = t
    travel, service, metres = nearby.travel_s(v), nearby.service_for(v), nearby.distance_m(v)
    prev, distance = first, 0
    for stop, at in zip(stops, fixed, strict=True):
        arrive = t + int(service[prev]) + int(travel[prev, stop]) + nearby.delay(prev, stop)
        if at is not None:
            arrive = max(arrive, seconds(at))
        fits = [w for w in nearby.windows[stop] if w[1] >= arrive]
        if not fits:
            return None
        t = max(arrive, fits[0][0])
        distance += int(metres[prev, stop])
        prev = stop
    return started, t + int(service[prev]), distance


def _peak_loads(model: ShipmentModel, prefix: Sequence[Placed]) -> dict[str, int]:
    """Per load type, the most the committed visits have on board beyond the residual route's
    own load: their delivery-only demands from the start, less what they drop, plus what they
    pick up (what the vehicle's limits must leave room for)."""
    shipments = model.shipments
    on: dict[str, int] = {}
    for p in prefix:
        sh = shipments[p.shipment]
        if not sh.pickups:
            for t, q in sh.visit_demands(False, p.alternative).items():
                on[t] = on.get(t, 0) + q
    peak = dict(on)
    for p in prefix:
        sh = shipments[p.shipment]
        sign = 1 if p.is_pickup else -1
        for t, q in sh.visit_demands(p.is_pickup, p.alternative).items():
            on[t] = on.get(t, 0) + sign * q
            peak[t] = max(peak.get(t, 0), on[t])
    return peak


def _residual_vehicle(
    vehicle: Vehicle,
    v: int,
    last: VisitRequest,
    timed: tuple[int, int, int],
    peak: dict[str, int],
    g0: float,
) -> Vehicle:
    """Vehicle ``v`` from its last committed stop ``last``: it started at ``timed[0]`` and
    leaves at ``timed[1]`` (seconds from ``g0``, the earliest; a restriction), having
    travelled ``timed[2]``; its limits less what the committed visits used; no fixed cost
    (the vehicle is used either way). The start is ``last``'s place and tags plus a tag of its
    own, so that no two residual vehicles look alike (the pre-check and PyVRP merge vehicles
    that do, and each one's anchor is reachable from its own start only)."""
    start, leave, distance_m = timed
    duration = vehicle.route_duration_limit_s
    distance = vehicle.route_distance_limit_m
    return dataclasses.replace(
        vehicle,
        start_location=last.arrival_location,
        start_tags=(*last.tags, f"routeopt residual start of vehicle {v}"),
        start_time_windows=(TimeWindow(start_time=g0 + leave, end_time=g0 + leave),),
        load_limits={t: max(0, q - peak.get(t, 0)) for t, q in vehicle.load_limits.items()},
        route_duration_limit_s=None if duration is None else max(0.0, duration - (leave - start)),
        route_distance_limit_m=None if distance is None else max(0.0, distance - distance_m),
        fixed_cost=0.0,
        used_if_route_is_empty=False,
    )


def _unusable(vehicle: Vehicle, model: ShipmentModel) -> Vehicle:
    """A vehicle that takes no visit (a closed route): ignored, and its start opening after
    its end closes (the PyVRP backend skips such vehicles; it does not read ``ignore``)."""
    return dataclasses.replace(
        vehicle,
        ignore=True,
        start_time_windows=(TimeWindow(start_time=model.global_end_time),),
        end_time_windows=(TimeWindow(end_time=model.global_start_time),),
    )


def _request(model: ShipmentModel, placed: Placed) -> VisitRequest:
    sh = model.shipments[placed.shipment]
    return (sh.pickups if placed.is_pickup else sh.deliveries)[placed.alternative]


def _anchor(request: VisitRequest, path: str) -> Shipment:
    """A mandatory visit of no duration, load or window at ``request``'s place."""
    visit = dataclasses.replace(
        request,
        time_windows=(),
        duration_s=0.0,
        label="",
        cost=0.0,
        visit_types=(),
        load_demands={},
        avoid_u_turns=False,
    )
    return Shipment(deliveries=(visit,), label=f"anchor of {path}")


def residual_problem(
    problem: Problem,
    nearby: Problem,
    index: np.ndarray,
    committed: Committed,
    clock: Callable[[float], float],
) -> Residual | None:
    """The residual of ``nearby`` (the warm start's nearby problem of ``problem``; ``index``:
    the original stop of each of its stops; ``clock``: model time -> its time) under
    ``committed``; None when a committed prefix does not fit the nearby model's windows."""
    model = nearby.model
    n_shipments = len(model.shipments)
    g0 = model.global_start_time
    where = {int(o): i for i, o in enumerate(index[: nearby.stops.num_visits])}
    vehicles = list(model.vehicles)
    anchors: list[Shipment] = []
    anchor_vehicle: list[int] = []
    prefix_stops: dict[int, list[int]] = {}
    for v, prefix in committed.prefixes.items():
        kept = [p.stop(problem) for p in prefix]
        prefix_stops[v] = kept
        if v in committed.closed:
            continue  # ignored below: nothing follows
        if any(s not in where for s in kept):
            return None  # a pair's alternative the nearby model left out
        fixed = [p.start_time if p.level == FIXED else None for p in prefix]
        start_at = committed.start_times.get(v)
        timed = _simulate(nearby, v, [where[s] for s in kept], fixed, start_at, clock)
        if timed is None:
            return None
        start, leave, distance = timed
        peak = _peak_loads(problem.model, prefix)
        last = _request(problem.model, prefix[-1])
        vehicles[v] = _residual_vehicle(vehicles[v], v, last, (start, leave, distance), peak, g0)
        anchors.append(_anchor(last, prefix[-1].path))
        anchor_vehicle.append(v)
    for v, at in committed.start_times.items():
        if v not in committed.prefixes:  # started, nothing committed yet: the start stays
            fixed_start = g0 + ceil_int(clock(at) - g0)
            window = (TimeWindow(start_time=fixed_start, end_time=fixed_start),)
            vehicles[v] = dataclasses.replace(vehicles[v], start_time_windows=window)
    for v in committed.closed:
        vehicles[v] = _unusable(vehicles[v], model)
    seed = _seed_routes(problem, committed, prefix_stops, n_shipments, anchor_vehicle)
    residual_model = dataclasses.replace(
        model,
        shipments=model.shipments + tuple(anchors),
        vehicles=tuple(vehicles),
        injected_solution_constraint=None,
        injected_first_solution_routes=seed,
        interpret_injected_solutions_using_labels=False,  # the seed names shipments by index
    )
    stops = build_stops(residual_model)
    original = _original_stops(problem, stops, n_shipments, anchor_vehicle, prefix_stops)
    anchor_stops = {stops.delivery_stops[n_shipments + a][0] for a in range(len(anchors))}
    travel = _travel(problem.travel, original, stops, n_shipments, anchor_vehicle)
    residual, _ = precheck(Problem.build(residual_model, stops, travel))
    held = committed.held
    routable = [
        residual.routable[s]
        and (s >= n_shipments or (problem.routable[s] and nearby.routable[s] and s not in held))
        for s in range(len(residual_model.shipments))
    ]
    if not all(routable[n_shipments:]):
        return None  # an anchor its vehicle cannot reach (its end window has closed)
    return Residual(
        dataclasses.replace(residual, routable=routable),
        original,
        frozenset(anchor_stops),
        prefix_stops,
    )


def _seed_routes(
    problem: Problem,
    committed: Committed,
    prefix_stops: dict[int, list[int]],
    n_shipments: int,
    anchor_vehicle: list[int],
) -> tuple[InjectedRoute, ...]:
    """The rest of the injected routes, each committed vehicle's anchor first; none when the
    residual has pairs (PyVRP takes first-solution routes of single visits only)."""
    model = problem.model
    held = committed.held
    if any(
        problem.routable[s] and s not in held and sh.pickups and sh.deliveries
        for s, sh in enumerate(model.shipments)
    ):
        return ()
    stops = problem.stops
    anchor_of = {v: n_shipments + a for a, v in enumerate(anchor_vehicle)}
    out = []
    for v, route in enumerate(committed.seed):
        done = set(prefix_stops.get(v, ()))
        rest = [i for i in route if i not in done]
        visits = [
            InjectedVisit(
                int(stops.shipment[i]), bool(stops.is_pickup[i]), int(stops.alternative[i])
            )
            for i in rest
        ]
        if v in anchor_of:
            visits.insert(0, InjectedVisit(anchor_of[v], False, 0))
        if visits and v not in committed.closed:
            out.append(InjectedRoute(vehicle_index=v, visits=tuple(visits)))
    return tuple(out)


def _original_stops(
    problem: Problem,
    stops: Stops,
    n_shipments: int,
    anchor_vehicle: list[int],
    prefix_stops: dict[int, list[int]],
) -> np.ndarray:
    """Original stop of each residual stop: the same visit or vehicle stop; an anchor and its
    vehicle's start: the vehicle's last committed stop."""

    def anchor(i: int) -> int:
        a = int(stops.shipment[i]) - n_shipments
        assert a >= 0, "every visit of the model's own shipments is in the original"
        return prefix_stops[anchor_vehicle[a]][-1]

    out = stop_map(problem.stops, stops, missing=anchor)
    for v in anchor_vehicle:
        out[stops.vehicle_start(v)] = prefix_stops[v][-1]
    return out


def _travel(
    travel: TravelMatrices,
    original: np.ndarray,
    stops: Stops,
    n_shipments: int,
    anchor_vehicle: list[int],
) -> TravelMatrices:
    """The original travel between the residual stops' originals; an anchor is reachable from
    its vehicle's start only (at no cost)."""
    cut = np.ix_(original, original)
    durations = [d[cut] for d in travel.durations_s]
    distances = [d[cut] for d in travel.distances_m]
    for a, v in enumerate(anchor_vehicle):
        stop = stops.delivery_stops[n_shipments + a][0]
        start = stops.vehicle_start(v)
        for m in (*durations, *distances):
            m[:, stop] = np.inf
            m[start, stop] = 0.0
            m[stop, stop] = 0.0
    return TravelMatrices(
        durations_s=tuple(durations),
        distances_m=tuple(distances),
        vehicle_matrix=travel.vehicle_matrix,
        source=travel.source,
    )
