"""Turn a backend's route plans into a :class:`~engine.solution.Solution`.

Backend independent: travel, loads, costs and metrics are recomputed here from the model and the
exact (float) travel matrices; the plan only fixes the order of visits, their start times and
the breaks. A plan whose schedule does not fit its own travel times is a solver bug and raises
:class:`~engine.errors.SolverError`.

Why one module of over 500 lines: one route walk (:class:`_RouteWalk`) accumulates travel,
delays, loads, every cost field and the metrics leg by leg; each feature adds a term to the same
walk, so the terms stay beside it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from engine.errors import SolverError
from engine.model import Shipment, ShipmentModel, TimeWindow, Vehicle
from engine.problem import Problem
from engine.search import RoutePlan
from engine.solution import (
    AggregatedMetrics,
    Break,
    Metrics,
    Route,
    SkippedShipment,
    SkipReason,
    SkipReasonCode,
    Solution,
    SolveStatus,
    Transition,
    VehicleFullness,
    Visit,
)
from engine.transitions import (
    destination_tags,
    matching,
    source_tags,
    transition_costs,
    transition_delay_s,
)
from geodata.network import RoadNetwork
from geodata.paths import route_paths
from geodata.polyline import encode_polyline

__all__ = ["build_solution", "soft_window_costs"]

_TOLERANCE_S = 1e-6


def soft_window_costs(w: TimeWindow, t: float) -> tuple[float, float]:
    """(cost before soft start, cost after soft end) of starting at ``t`` in window ``w``."""
    early = late = 0.0
    if w.soft_start_time is not None and t < w.soft_start_time:
        early = (w.soft_start_time - t) / 3600.0 * (w.cost_per_hour_before_soft_start_time or 0.0)
    if w.soft_end_time is not None and t > w.soft_end_time:
        late = (t - w.soft_end_time) / 3600.0 * (w.cost_per_hour_after_soft_end_time or 0.0)
    return early, late


def _add_soft_costs(
    costs: dict[str, float], prefix: str, windows: Sequence[TimeWindow], t: float
) -> None:
    if len(windows) != 1:
        return
    early, late = soft_window_costs(windows[0], t)
    if early:
        costs[f"{prefix}.cost_per_hour_before_soft_start_time"] += early
    if late:
        costs[f"{prefix}.cost_per_hour_after_soft_end_time"] += late


def _delay_s(windows: Sequence[TimeWindow], t: float) -> float:
    if len(windows) == 1 and windows[0].soft_end_time is not None:
        return max(0.0, t - windows[0].soft_end_time)
    return 0.0


def _loads_of(shipment: Shipment, is_pickup: bool, alternative: int) -> dict[str, int]:
    """The signed demands of a visit: the shipment's plus its visit request's (issue 15)."""
    sign = 1 if is_pickup else -1
    return {t: sign * q for t, q in shipment.visit_demands(is_pickup, alternative).items()}


def _route_geometry(
    problem: Problem, plan: RoutePlan, network: RoadNetwork
) -> tuple[list[str], str]:
    """Encoded polylines of each transition of a road route (empty where a stop has no
    location) and of the whole route, on the network of the vehicle's matrix (its profile's)."""
    road = problem.travel.road_of(plan.vehicle)
    assert road is not None
    network = road.network if road.network is not None else network
    stops = problem.stops
    sequence = [stops.vehicle_start(plan.vehicle), *plan.stops, stops.vehicle_end(plan.vehicle)]
    points = [int(road.point[s]) for s in sequence]
    present = [k for k, p in enumerate(points) if p >= 0]
    legs = route_paths(network, road.snaps, [points[k] for k in present], road.headed)
    if road.fallback is not None and road.fallback_pairs is not None:
        # Legs the network without the avoided roads cannot connect ran on the unmodified one.
        fallback = road.fallback
        assert fallback.network is not None
        for i, leg_points in enumerate(itertools.pairwise(points[k] for k in present)):
            if road.fallback_pairs[leg_points]:
                legs[i] = route_paths(
                    fallback.network, fallback.snaps, list(leg_points), fallback.headed
                )[0]
    leg_of = {present[i]: leg for i, leg in enumerate(legs)}  # keyed by the leg's first stop
    transitions: list[str] = []
    route_coords: list[npt.NDArray[np.float64]] = []
    for k in range(len(sequence) - 1):
        leg = leg_of.get(k) if points[k] >= 0 and points[k + 1] >= 0 else None
        transitions.append(leg.polyline() if leg is not None else "")
        if leg is not None and leg.reachable:
            route_coords.append(leg.coords if not route_coords else leg.coords[1:])
    route = encode_polyline(np.vstack(route_coords)) if route_coords else ""
    return transitions, route


def _build_route(problem: Problem, plan: RoutePlan, network: RoadNetwork | None) -> Route:
    vehicle = problem.model.vehicles[plan.vehicle]
    if not plan.stops and not vehicle.used_if_route_is_empty:
        return Route(vehicle_index=plan.vehicle, vehicle_label=vehicle.label)
    walk = _RouteWalk(problem, plan)
    route_polyline = ""
    if network is not None and problem.travel.road is not None:
        walk.polylines, route_polyline = _route_geometry(problem, plan, network)
    walk.run()
    return walk.route(route_polyline)


def _initial_load(problem: Problem, vehicle: int, route: Sequence[int]) -> dict[str, int]:
    """Load on board at the start of a route visiting the stops ``route``, per load type the
    vehicle limits or a visit of the route demands: the delivery-only goods (of the delivery
    alternatives performed, per-visit demands included)."""
    model, stops = problem.model, problem.stops
    load_types = set(model.vehicles[vehicle].load_limits)
    visits = [
        (
            model.shipments[int(stops.shipment[i])],
            bool(stops.is_pickup[i]),
            int(stops.alternative[i]),
        )
        for i in route
    ]
    for sh, is_pickup, k in visits:
        load_types.update(t for t, q in sh.visit_demands(is_pickup, k).items() if q > 0)
    load: dict[str, int] = dict.fromkeys(sorted(load_types), 0)
    for sh, is_pickup, k in visits:
        if not sh.pickups:
            for t, q in sh.visit_demands(is_pickup, k).items():
                if t in load:  # a zero demand of a type nothing limits or carries: no load
                    load[t] += q
    return load


class _RouteWalk:
    """Walks a plan's schedule stop by stop, summing travel, waits, breaks, visits, loads and
    costs; :meth:`route` is the result."""

    def __init__(self, problem: Problem, plan: RoutePlan) -> None:
        self.problem = problem
        self.plan = plan
        model = problem.model
        self.vehicle = model.vehicles[plan.vehicle]
        self.g0 = model.global_start_time
        k = problem.travel.vehicle_matrix[plan.vehicle]
        self.durations = problem.travel.durations_s[k]
        self.distances = problem.travel.distances_m[k]
        self.start_time = self.g0 + plan.start_s
        self.end_time = self.g0 + plan.end_s
        self.breaks = tuple(Break(self.g0 + s, float(d)) for s, d in plan.breaks_s)
        self.shipments = {int(problem.stops.shipment[i]) for i in plan.stops}
        self.load = _initial_load(problem, plan.vehicle, plan.stops)
        self.max_loads = dict(self.load)
        self.costs: dict[str, float] = defaultdict(float)
        self.visits: list[Visit] = []
        self.transitions: list[Transition] = []
        self.polylines: list[str] = []
        """Encoded road geometry of each transition (none: no geometry)."""
        self.travel_s = self.distance_m = self.wait_s = self.break_s = 0.0
        self.visit_s = self.delay_s = 0.0
        self.transition_delay_s = 0.0
        self.pickups: dict[int, tuple[int, float]] = {}
        """Shipment → (pickup stop, end of the pickup visit), for detours."""

    def run(self) -> None:
        """Every transition and visit of the plan, in order."""
        stops = self.problem.stops
        prev_stop, prev_end = stops.vehicle_start(self.plan.vehicle), self.start_time
        sequence = [*self.plan.stops, stops.vehicle_end(self.plan.vehicle)]
        next_starts = [self.g0 + t for t in self.plan.visit_start_s] + [self.end_time]
        for stop, next_start in zip(sequence, next_starts, strict=True):
            self.transition(prev_stop, prev_end, stop, next_start)
            if stop >= stops.num_visits:
                break
            prev_stop, prev_end = stop, self.visit(stop, next_start)

    def transition(self, prev_stop: int, prev_end: float, stop: int, next_start: float) -> None:
        """The way from ``prev_stop`` (left at ``prev_end``) to ``stop`` (``next_start``)."""
        travel = float(self.durations[prev_stop, stop]) * self.vehicle.travel_duration_multiple
        distance = float(self.distances[prev_stop, stop])
        in_transition = [
            b.duration_s
            for b in self.breaks
            if b.start_time >= prev_end - _TOLERANCE_S
            and b.start_time + b.duration_s <= next_start + _TOLERANCE_S
        ]
        total = next_start - prev_end
        brk = float(sum(in_transition))
        delay = self._transition_attributes(prev_stop, stop, distance)
        wait = total - travel - delay - brk
        if wait < -_TOLERANCE_S:
            raise SolverError(
                f"inconsistent schedule from the solver on vehicle {self.plan.vehicle}: "
                f"{total:.3f}s between stops for {travel:.3f}s of travel, {delay:.3f}s of "
                f"transition delay and {brk:.3f}s of breaks"
            )
        polyline = self.polylines[len(self.transitions)] if self.polylines else ""
        self.transitions.append(
            Transition(
                prev_end,
                travel,
                distance,
                max(wait, 0.0),
                brk,
                total,
                dict(self.load),
                polyline,
                delay_duration_s=delay,
            )
        )
        self.travel_s += travel
        self.distance_m += distance
        self._add_load_costs(travel, distance)
        self.wait_s += max(wait, 0.0)
        self.break_s += brk

    def _transition_attributes(self, prev_stop: int, stop: int, distance: float) -> float:
        """The delay of the transition from ``prev_stop`` to ``stop`` (issue 15's
        ``transition_attributes``); its costs go to the route's costs."""
        model, stops = self.problem.model, self.problem.stops
        if not model.transition_attributes:
            return 0.0
        src, dst = source_tags(model, stops, prev_stop), destination_tags(model, stops, stop)
        assert src is not None
        assert dst is not None
        attributes = matching(model, src, dst)
        for key, value in transition_costs(attributes, distance).items():
            self.costs[key] += value
        delay = transition_delay_s(attributes)
        self.transition_delay_s += delay
        return delay

    def _add_load_costs(self, travel_s: float, distance_m: float) -> None:
        """Load-dependent costs of a transition (issue 15): the rate of the load on board during
        it, per kilometer and per hour of its travel."""
        vehicle, costs = self.vehicle, self.costs
        for load_type, cost in vehicle.load_costs_per_kilometer.items():
            rate = cost.rate(self.load.get(load_type, 0))
            if rate and distance_m:
                costs["model.vehicles.load_limits.cost_per_kilometer"] += rate * distance_m / 1e3
        for load_type, cost in vehicle.load_costs_per_traveled_hour.items():
            rate = cost.rate(self.load.get(load_type, 0))
            if rate and travel_s:
                key = "model.vehicles.load_limits.cost_per_traveled_hour"
                costs[key] += rate * travel_s / 3600.0

    def visit(self, stop: int, start: float) -> float:
        """The visit of ``stop`` starting at ``start``; returns when it ends."""
        stops, model = self.problem.stops, self.problem.model
        s = int(stops.shipment[stop])
        is_pickup = bool(stops.is_pickup[stop])
        shipment = model.shipments[s]
        request = stops.visit_request(model, stop)
        alternative = int(stops.alternative[stop])
        visit_loads = _loads_of(shipment, is_pickup, alternative)
        duration_s = self.vehicle.visit_duration_s(request)  # with visit-type extras (issue 15)
        detour_s = self._detour_s(stop, s, is_pickup, start)
        if is_pickup:
            self.pickups[s] = (stop, start + duration_s)
        self.visits.append(
            Visit(
                s,
                is_pickup,
                alternative,
                start,
                visit_loads,
                shipment.label,
                request.label,
                detour_s,
            )
        )
        for t, q in visit_loads.items():
            if t in self.load:  # see _initial_load: zero demands of untracked types add nothing
                self.load[t] += q
        for t, q in self.load.items():
            self.max_loads[t] = max(self.max_loads[t], q)
        kind = "pickups" if is_pickup else "deliveries"
        prefix = f"model.shipments.{kind}.time_windows"
        _add_soft_costs(self.costs, prefix, request.time_windows, start)
        if request.cost:
            self.costs[f"model.shipments.{kind}.cost"] += request.cost
        self.delay_s += _delay_s(request.time_windows, start)
        self.visit_s += duration_s
        return start + duration_s

    def _detour_s(self, stop: int, s: int, is_pickup: bool, start: float) -> float:
        """Google's ``Visit.detour`` (issue 15): a delivery after its pickup is measured from
        the pickup's end, any other visit from the vehicle start, less the direct travel."""
        since = self.pickups.get(s) if not is_pickup else None
        if since is None:
            since = (self.problem.stops.vehicle_start(self.plan.vehicle), self.start_time)
        origin, left_at = since
        travel = float(self.durations[origin, stop]) * self.vehicle.travel_duration_multiple
        detour = start - left_at - travel  # negative only where travel breaks the triangle
        return 0.0 if abs(detour) < _TOLERANCE_S else detour  # inequality (client matrices)

    def route(self, polyline: str) -> Route:
        """The route walked, with the vehicle's costs."""
        vehicle, costs = self.vehicle, self.costs
        model = self.problem.model
        start_time, end_time = self.start_time, self.end_time
        _add_soft_costs(
            costs, "model.vehicles.start_time_windows", vehicle.start_time_windows, start_time
        )
        _add_soft_costs(
            costs, "model.vehicles.end_time_windows", vehicle.end_time_windows, end_time
        )
        costs["model.vehicles.fixed_cost"] += vehicle.fixed_cost
        shipments = self.problem.model.shipments
        for s in sorted(self.shipments):
            costs["model.shipments.costs_per_vehicle"] += shipments[s].cost_for_vehicle(
                self.plan.vehicle
            )
        costs["model.vehicles.cost_per_kilometer"] += (
            vehicle.cost_per_kilometer * self.distance_m / 1e3
        )
        costs["model.vehicles.cost_per_traveled_hour"] += (
            vehicle.cost_per_traveled_hour * self.travel_s / 3600.0
        )
        costs["model.vehicles.cost_per_hour"] += (
            vehicle.cost_per_hour * (end_time - start_time) / 3600
        )
        _add_soft_limit_costs(
            costs, vehicle, end_time - start_time, self.distance_m, self.max_loads
        )
        _add_driver_hours_costs(costs, vehicle, end_time - start_time, self.travel_s)
        route_costs = {key: value for key, value in sorted(costs.items()) if value}
        metrics = AggregatedMetrics(
            performed_shipment_count=len(self.shipments),
            performed_mandatory_shipment_count=sum(
                1 for s in self.shipments if model.shipments[s].penalty_cost is None
            ),
            performed_shipment_penalty_cost_sum=math.fsum(
                model.shipments[s].penalty_cost or 0.0 for s in self.shipments
            ),
            travel_duration_s=self.travel_s,
            wait_duration_s=self.wait_s,
            delay_duration_s=self.delay_s,
            break_duration_s=self.break_s,
            visit_duration_s=self.visit_s,
            total_duration_s=(
                self.travel_s + self.wait_s + self.transition_delay_s + self.break_s + self.visit_s
            ),
            travel_distance_m=self.distance_m,
            max_loads=self.max_loads,
            transition_delay_duration_s=self.transition_delay_s,
        )
        return Route(
            vehicle_index=self.plan.vehicle,
            vehicle_label=vehicle.label,
            vehicle_start_time=start_time,
            vehicle_end_time=end_time,
            visits=tuple(self.visits),
            transitions=tuple(self.transitions),
            breaks=self.breaks,
            metrics=metrics,
            route_costs=route_costs,
            route_total_cost=sum(route_costs.values()),
            polyline=polyline,
        )


def _add_soft_limit_costs(
    costs: dict[str, float],
    vehicle: Vehicle,
    duration_s: float,
    distance_m: float,
    max_loads: Mapping[str, int],
) -> None:
    """Costs of a route beyond its vehicle's soft duration, distance and load limits."""
    soft, rate = (
        vehicle.route_duration_soft_max_s,
        vehicle.route_duration_cost_per_hour_after_soft_max,
    )
    if soft is not None and rate:
        costs["model.vehicles.route_duration_limit.cost_per_hour_after_soft_max"] += (
            rate * max(0.0, duration_s - soft) / 3600.0
        )
    soft, rate = (
        vehicle.route_distance_soft_max_m,
        vehicle.route_distance_cost_per_kilometer_above_soft_max,
    )
    if soft is not None and rate:
        costs["model.vehicles.route_distance_limit.cost_per_kilometer_above_soft_max"] += (
            rate * max(0.0, distance_m - soft) / 1000.0
        )
    for load_type, limit in vehicle.soft_load_limits.items():
        excess = max(0, max_loads.get(load_type, 0) - limit.soft_max_load)
        if excess and limit.cost_per_unit_above_soft_max:
            costs["model.vehicles.load_limits.cost_per_unit_above_soft_max"] += (
                excess * limit.cost_per_unit_above_soft_max
            )


def _add_driver_hours_costs(
    costs: dict[str, float], vehicle: Vehicle, duration_s: float, travel_s: float
) -> None:
    """Quadratic soft route duration cost, and the soft travel duration costs (issue 15)."""
    _, quadratic = vehicle.route_duration_limit.soft_cost(duration_s)
    if quadratic:
        key = "model.vehicles.route_duration_limit.cost_per_square_hour_after_quadratic_soft_max"
        costs[key] += quadratic
    if vehicle.travel_duration_limit is not None:
        linear, quadratic = vehicle.travel_duration_limit.soft_cost(travel_s)
        prefix = "model.vehicles.travel_duration_limit"
        if linear:
            costs[f"{prefix}.cost_per_hour_after_soft_max"] += linear
        if quadratic:
            costs[f"{prefix}.cost_per_square_hour_after_quadratic_soft_max"] += quadratic


def _aggregate(routes: Sequence[Route]) -> AggregatedMetrics:
    max_loads: dict[str, int] = {}
    for r in routes:
        for t, q in r.metrics.max_loads.items():
            max_loads[t] = max(max_loads.get(t, q), q)
    ms = [r.metrics for r in routes]
    return AggregatedMetrics(
        performed_shipment_count=sum(m.performed_shipment_count for m in ms),
        performed_mandatory_shipment_count=sum(m.performed_mandatory_shipment_count for m in ms),
        performed_shipment_penalty_cost_sum=math.fsum(
            m.performed_shipment_penalty_cost_sum for m in ms
        ),
        travel_duration_s=sum(m.travel_duration_s for m in ms),
        wait_duration_s=sum(m.wait_duration_s for m in ms),
        delay_duration_s=sum(m.delay_duration_s for m in ms),
        break_duration_s=sum(m.break_duration_s for m in ms),
        visit_duration_s=sum(m.visit_duration_s for m in ms),
        total_duration_s=sum(m.total_duration_s for m in ms),
        travel_distance_m=sum(m.travel_distance_m for m in ms),
        max_loads=max_loads,
        transition_delay_duration_s=sum(m.transition_delay_duration_s for m in ms),
    )


def build_solution(
    problem: Problem,
    plans: Sequence[RoutePlan],
    skip_reasons: Mapping[int, tuple[SkipReason, ...]],
    *,
    status: SolveStatus,
    backend: str,
    backend_reason: str = "",
    solver_processes: int = 1,
    matrix_time_s: float,
    solve_time_s: float,
    solver_time_limit_s: float,
    geometry_network: RoadNetwork | None = None,
) -> Solution:
    """The solution of ``plans``; with ``geometry_network`` (road travel only), transitions and
    routes carry their road geometry as encoded polylines."""
    model: ShipmentModel = problem.model
    routes = tuple(_build_route(problem, plan, geometry_network) for plan in plans)
    performed = {v.shipment_index for r in routes for v in r.visits}
    skipped = tuple(
        SkippedShipment(
            index=s,
            label=sh.label,
            reasons=skip_reasons.get(s, (SkipReason(_search_skip_code(sh)),)),
            penalty_cost=sh.penalty_cost,
        )
        for s, sh in enumerate(model.shipments)
        if s not in performed
    )
    costs: dict[str, float] = defaultdict(float)
    for r in routes:
        for key, value in r.route_costs.items():
            costs[key] += value
    # An ignored shipment is skipped without its penalty (Google's Shipment.ignore).
    not_ignored = [s for s in skipped if not model.shipments[s.index].ignore]
    penalties = sum(model.shipments[s.index].penalty_cost or 0.0 for s in not_ignored)
    if penalties:
        costs["model.shipments.penalty_cost"] += penalties
    used = [r for r in routes if r.is_used]
    starts = [r.vehicle_start_time for r in used if r.vehicle_start_time is not None]
    ends = [r.vehicle_end_time for r in used if r.vehicle_end_time is not None]
    if model.global_duration_cost_per_hour and starts and ends:
        costs["model.global_duration_cost_per_hour"] += (
            model.global_duration_cost_per_hour * (max(ends) - min(starts)) / 3600.0
        )
    span = (
        max(ends) - min(starts)
        if starts and ends
        else model.global_end_time - model.global_start_time
    )
    routes = tuple(_with_fullness(model, r, span) for r in routes)
    metrics = Metrics(
        aggregated_route_metrics=_aggregate(routes),
        skipped_mandatory_shipment_count=sum(
            1 for s in not_ignored if model.shipments[s.index].is_mandatory
        ),
        used_vehicle_count=len(used),
        earliest_vehicle_start_time=min(starts, default=None),
        latest_vehicle_end_time=max(ends, default=None),
        costs=dict(sorted(costs.items())),
        total_cost=sum(costs.values()),
    )
    return Solution(
        routes=routes,
        skipped_shipments=skipped,
        metrics=metrics,
        status=status,
        backend=backend,
        backend_reason=backend_reason,
        solver_processes=solver_processes,
        matrix_source=problem.travel.source,
        matrix_time_s=matrix_time_s,
        solve_time_s=solve_time_s,
        solver_time_limit_s=solver_time_limit_s,
    )


def _search_skip_code(shipment: Shipment) -> SkipReasonCode:
    """The reason of a shipment the search (not the pre-check) left out."""
    if shipment.penalty_cost == 0:
        return SkipReasonCode.ZERO_PENALTY_COST
    return SkipReasonCode.NOT_WORTH_ITS_PENALTY_OR_NO_ROOM


# -- vehicle fullness (issue 15) --------------------------------------------------------------


def _ratio(value: float, limit: float | None) -> float | None:
    """Google's fullness ratio: unset without a limit, 1 for a limit of 0, capped at 1."""
    if limit is None:
        return None
    if limit <= 0:
        return 1.0
    return min(1.0, value / limit)


def _with_fullness(model: ShipmentModel, route: Route, span_s: float) -> Route:
    """``route`` with its :class:`VehicleFullness` (used routes only); ``span_s``: the latest
    vehicle end minus the earliest vehicle start of the solution."""
    if not route.is_used or route.vehicle_start_time is None or route.vehicle_end_time is None:
        return route
    vehicle = model.vehicles[route.vehicle_index]
    m = route.metrics
    travel_limit = vehicle.travel_duration_limit
    loads = [
        _ratio(float(m.max_loads.get(t, 0)), float(limit))
        for t, limit in sorted(vehicle.load_limits.items())
    ]
    fullness = VehicleFullness(
        distance=_ratio(m.travel_distance_m, vehicle.route_distance_limit_m),
        travel_duration=_ratio(
            m.travel_duration_s, None if travel_limit is None else travel_limit.max_duration_s
        ),
        active_duration=_ratio(m.total_duration_s, vehicle.route_duration_limit_s),
        max_load=max((r for r in loads if r is not None), default=None),
        active_span=_ratio(route.vehicle_end_time - route.vehicle_start_time, span_s),
    )
    ratios = [
        r
        for r in (
            fullness.distance,
            fullness.travel_duration,
            fullness.active_duration,
            fullness.max_load,
            fullness.active_span,
        )
        if r is not None
    ]
    fullness = dataclasses.replace(fullness, max_fullness=max(ratios, default=None))
    return dataclasses.replace(route, vehicle_fullness=fullness)
