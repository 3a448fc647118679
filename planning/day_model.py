"""The routing model of a layout-day and how it is solved.

:func:`build_day_model` turns some orders of a day and the fleets of some depots into one
:class:`engine.ShipmentModel` (each vehicle starts and ends at its depot, within the depot's
opening hours); :class:`Router` solves such models with the layout options, through a
:data:`SolveFn`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine import (
    DurationDistanceMatrix,
    LatLng,
    Shipment,
    ShipmentModel,
    Solution,
    SolveOptions,
    TimeWindow,
    Vehicle,
    VisitRequest,
    solve,
)
from engine.roads import RoadContext
from planning.budget import Budget, StoppedError
from planning.study import SECONDS_PER_DAY, Day, LayoutOptions, LayoutStudy, VehicleType

__all__ = ["Router", "SolveFn", "build_day_model", "solve_here", "vehicle_count"]

SolveFn = Callable[[ShipmentModel, SolveOptions, RoadContext | None], Solution]
"""How a layout evaluation routes one model: :func:`engine.solve` in this process by default;
the server passes one that runs the solve on its solve executor (worker processes)."""


def solve_here(model: ShipmentModel, options: SolveOptions, roads: RoadContext | None) -> Solution:
    """The default :data:`SolveFn`: :func:`engine.solve` in this process."""
    return solve(model, options, roads=roads)


def vehicle_count(vt: VehicleType, day: Day, orders: Sequence[int]) -> int:
    """``vt.count``, or for an unlimited type a count that cannot bind: one per order, or, on
    capacity alone (no windows, no limits), twice the capacity bound plus two.

    A count above one per order (at least one) is capped there: a vehicle beyond it can never
    be used, since each used vehicle serves an order (a count of 2^31 - 1 built that many
    vehicles: found by the fuzz suite)."""
    n = len(orders)
    if vt.count is not None:
        return min(vt.count, max(n, 1))
    tight = (
        vt.max_duration_s is not None
        or vt.max_distance_m is not None
        or any(day.orders[i].time_windows for i in orders)
    )
    if tight or not vt.capacities:
        return max(n, 1)
    need = 1
    for name, cap in vt.capacities.items():
        total = sum(day.orders[i].demands.get(name, 0) for i in orders)
        if cap > 0:
            need = max(need, math.ceil(total / cap))
    return max(1, min(n, 2 * need + 2))


def _visit_place(study: LayoutStudy, location: LatLng | None, tag: str) -> dict[str, Any]:
    """Where an order is, as visit fields: its tag on a study matrix, else its location."""
    if study.matrix is not None:
        return {"tags": (tag,)}
    return {"arrival_location": location}


def _vehicle_place(study: LayoutStudy, location: LatLng | None, tag: str) -> dict[str, Any]:
    """Where a depot's vehicles start and end, as vehicle fields (tags or locations)."""
    if study.matrix is not None:
        return {"start_tags": (tag,), "end_tags": (tag,)}
    return {"start_location": location, "end_location": location}


def _shipments(study: LayoutStudy, day: Day, orders: Sequence[int]) -> tuple[Shipment, ...]:
    return tuple(
        Shipment(
            deliveries=(
                VisitRequest(
                    time_windows=day.orders[i].time_windows,
                    duration_s=day.orders[i].service_s,
                    label=day.orders[i].label,
                    **_visit_place(study, day.orders[i].location, day.orders[i].tag),
                ),
            ),
            load_demands=dict(day.orders[i].demands),
            penalty_cost=day.orders[i].penalty_cost,
            label=day.orders[i].label,
        )
        for i in orders
    )


def _vehicles(
    study: LayoutStudy, day: Day, depots: Sequence[int], orders: Sequence[int]
) -> tuple[list[Vehicle], list[str]]:
    """The vehicles of ``depots`` and the depot label of each."""
    vehicles: list[Vehicle] = []
    vehicle_depot: list[str] = []
    for j in depots:
        depot = study.depots[j]
        hours = (TimeWindow(day.start_time + depot.open_s, day.start_time + depot.close_s),)
        place = _vehicle_place(study, depot.location, depot.tag)
        for vt in study.fleet_of(depot):
            for k in range(vehicle_count(vt, day, orders)):
                vehicles.append(
                    Vehicle(
                        start_time_windows=hours,
                        end_time_windows=hours,
                        load_limits=dict(vt.capacities),
                        cost_per_hour=vt.cost_per_hour,
                        cost_per_traveled_hour=vt.cost_per_traveled_hour,
                        cost_per_kilometer=vt.cost_per_kilometer,
                        fixed_cost=vt.fixed_cost,
                        route_duration_limit_s=vt.max_duration_s,
                        route_distance_limit_m=vt.max_distance_m,
                        label=f"{depot.label}/{vt.label}#{k + 1}",
                        **place,
                    )
                )
                vehicle_depot.append(depot.label)
    return vehicles, vehicle_depot


def _horizon(
    study: LayoutStudy, day: Day, depots: Sequence[int], orders: Sequence[int]
) -> tuple[float, float]:
    """The model's global start and end: the day, the depots' hours and the orders' windows."""
    windows = [w for i in orders for w in day.orders[i].time_windows]
    starts = [day.start_time] + [w.start_time for w in windows if w.start_time is not None]
    ends = [day.start_time + max([SECONDS_PER_DAY, *(study.depots[j].close_s for j in depots)])]
    ends += [w.end_time for w in windows if w.end_time is not None]
    return min(starts), max(ends)


def _matrix_fields(study: LayoutStudy) -> dict[str, Any]:
    """The study's travel matrix as model fields (none without one)."""
    if study.matrix is None:
        return {}
    return {
        "duration_distance_matrices": (
            DurationDistanceMatrix(study.matrix.durations_s, study.matrix.distances_m),
        ),
        "duration_distance_matrix_src_tags": study.matrix.tags,
        "duration_distance_matrix_dst_tags": study.matrix.tags,
    }


def build_day_model(
    study: LayoutStudy, day: Day, depots: Sequence[int], orders: Sequence[int]
) -> tuple[ShipmentModel, tuple[str, ...]]:
    """The routing model of the ``orders`` of ``day`` (indices into ``day.orders``, shipment s
    is ``orders[s]``) with the fleets of ``depots`` (indices into ``study.depots``), and the
    depot label of each of its vehicles."""
    vehicles, vehicle_depot = _vehicles(study, day, depots, orders)
    start, end = _horizon(study, day, depots, orders)
    model = ShipmentModel(
        shipments=_shipments(study, day, orders),
        vehicles=tuple(vehicles),
        global_start_time=start,
        global_end_time=end,
        **_matrix_fields(study),
    )
    return model, tuple(vehicle_depot)


@dataclass(frozen=True)
class Router:
    """How the models of a layout evaluation are solved: with ``solve_fn`` (None:
    :func:`engine.solve` here, polling the budget's stop flag), the backend, search mode, seed,
    processes, travel and polylines of ``options``, over ``roads`` (None: the study's matrix or
    geodesic travel), within ``budget``."""

    options: LayoutOptions
    roads: RoadContext | None
    solve_fn: SolveFn | None = None
    budget: Budget = field(default_factory=Budget)

    def solve(self, model: ShipmentModel, time_limit_s: float, seed_offset: int = 0) -> Solution:
        """Solve ``model`` within ``time_limit_s`` (at least 0.2 s; less when the budget's
        deadline comes first) with the seed of the options plus ``seed_offset`` (a second
        attempt on the same model differs). Raises :class:`~planning.budget.StoppedError` instead
        of starting once the budget is stopped, and when the stop flag cut the solve short."""
        budget = self.budget
        budget.check()
        options = self.options
        solve_options = SolveOptions(
            time_limit_s=max(budget.remaining(time_limit_s), 0.2),
            search_mode=options.search_mode,
            backend=options.backend,
            seed=options.seed + seed_offset,
            solver_processes=options.solver_processes,
            geodesic_meters_per_second=options.geodesic_meters_per_second,
            use_geodesic_distances=options.use_geodesic_distances,
            populate_polylines=options.populate_polylines and self.roads is not None,
        )
        try:
            if self.solve_fn is None:
                solution = solve(
                    model, solve_options, roads=self.roads, should_stop=budget.should_stop
                )
            else:
                solution = self.solve_fn(model, solve_options, self.roads)
        except Exception:
            if budget.interrupted():  # the stop cut the solve short: not a failure
                raise StoppedError("the study was stopped during a routing solve") from None
            raise
        if budget.interrupted():
            raise StoppedError("the study was stopped during a routing solve")
        return solution
