"""The KPIs of a routed layout, recomputed from its parts: costs, vehicles, distance, driver
hours, late and unserved orders, distance to the depot, load utilisation; with where each order
went and what each depot shipped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine import Route
from planning.loads import add_load, part_loads
from planning.results import LayoutKpis, RoutedPart
from planning.study import LayoutStudy, Order
from planning.travel import DayTravel

__all__ = ["Assignment", "DepotLoads", "layout_kpis"]

Assignment = tuple[tuple[str, ...], ...]
"""Per day, per order: the depot serving it ('' unserved)."""

DepotLoads = tuple[dict[str, dict[str, int]], ...]
"""Per day: depot → load type → load shipped."""


def _late(order: Order, start: float) -> bool:
    return any(
        w.soft_end_time is not None
        and start > w.soft_end_time + 1e-6
        and (w.start_time is None or w.start_time <= start)
        and (w.end_time is None or start <= w.end_time)
        for w in order.time_windows
    )


@dataclass
class _Tally:
    """The sums over the routed parts of a layout."""

    study: LayoutStudy
    travels: Sequence[DayTravel]
    routing: float = 0.0
    fixed: float = 0.0
    penalty: float = 0.0
    vehicles: int = 0
    meters: float = 0.0
    seconds: float = 0.0
    late: int = 0
    depot_m: list[float] = field(default_factory=list)
    delivered: dict[str, float] = field(default_factory=dict)
    capacity: dict[str, float] = field(default_factory=dict)
    assignment: list[list[str]] = field(default_factory=list)
    loads: list[dict[str, dict[str, int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.assignment = [[""] * len(day.orders) for day in self.study.days]
        self.loads = [{} for _ in self.study.days]

    def add_part(self, part: RoutedPart) -> None:
        costs = part.solution.metrics.costs
        self.routing += part.solution.metrics.total_cost
        self.fixed += costs.get("model.vehicles.fixed_cost", 0.0)
        self.penalty += costs.get("model.shipments.penalty_cost", 0.0)
        for depot, per in part_loads(self.study.days[part.day], part).items():
            add_load(self.loads[part.day], depot, per)
        for route in part.solution.routes:
            if route.is_used:
                self._add_route(part, route)

    def _add_route(self, part: RoutedPart, route: Route) -> None:
        day = self.study.days[part.day]
        index = self.study.depot_index()
        self.vehicles += 1
        self.meters += route.metrics.travel_distance_m
        if route.vehicle_start_time is not None and route.vehicle_end_time is not None:
            self.seconds += route.vehicle_end_time - route.vehicle_start_time
        depot = part.vehicle_depot[route.vehicle_index]
        for name, cap in part.model.vehicles[route.vehicle_index].load_limits.items():
            self.capacity[name] = self.capacity.get(name, 0.0) + cap
        for v in route.visits:
            i = part.order_index[v.shipment_index]
            order = day.orders[i]
            self.assignment[part.day][i] = depot
            self.late += _late(order, v.start_time)
            self.depot_m.append(float(self.travels[part.day].out_m[index[depot], i]))
            for name, q in order.demands.items():
                self.delivered[name] = self.delivered.get(name, 0.0) + q

    def mandatory_unserved(self) -> int:
        return sum(
            1
            for t, day in enumerate(self.study.days)
            for i, order in enumerate(day.orders)
            if order.penalty_cost is None and not self.assignment[t][i]
        )


def layout_kpis(
    study: LayoutStudy,
    open_idx: Sequence[int],
    parts: Sequence[RoutedPart],
    travels: Sequence[DayTravel],
) -> tuple[LayoutKpis, Assignment, DepotLoads]:
    """The KPIs of the layout opening the depots ``open_idx`` and routed as ``parts``, with
    the depot of each order and the depot loads of each day."""
    tally = _Tally(study, travels)
    for part in parts:
        tally.add_part(part)
    opening = sum(study.depots[j].opening_cost for j in open_idx) * len(study.days)
    n_orders = sum(len(day.orders) for day in study.days)
    served = sum(1 for day in tally.assignment for d in day if d)
    ratios = [
        tally.delivered.get(name, 0.0) / cap for name, cap in tally.capacity.items() if cap > 0
    ]
    total = opening + tally.routing
    depot_m = tally.depot_m
    kpis = LayoutKpis(
        total_cost=total,
        opening_cost=opening,
        routing_cost=tally.routing,
        vehicle_fixed_cost=tally.fixed,
        travel_cost=tally.routing - tally.fixed - tally.penalty,
        penalty_cost=tally.penalty,
        vehicles_used=tally.vehicles,
        distance_km=tally.meters / 1000.0,
        driver_hours=tally.seconds / 3600.0,
        orders=n_orders,
        orders_served=served,
        orders_late=tally.late,
        orders_unserved=n_orders - served,
        mandatory_orders_unserved=tally.mandatory_unserved(),
        mean_depot_distance_km=float(np.mean(depot_m)) / 1000.0 if depot_m else 0.0,
        max_depot_distance_km=float(np.max(depot_m)) / 1000.0 if depot_m else 0.0,
        load_utilisation=float(np.mean(ratios)) if ratios else 0.0,
        cost_per_order=total / served if served else math.inf,
        days=len(study.days),
    )
    return kpis, tuple(tuple(a) for a in tally.assignment), tuple(tally.loads)
