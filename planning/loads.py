"""Loads and depot capacities as arrays: the load types of a study, capacities per depot,
demands and penalties per order, and the loads a routed part ships from each depot."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from planning.results import RoutedPart
from planning.study import Day, LayoutStudy

__all__ = [
    "add_load",
    "capacity_matrix",
    "demand_matrix",
    "load_types",
    "over_capacity",
    "part_loads",
    "penalty_vector",
]


def load_types(study: LayoutStudy) -> tuple[str, ...]:
    """Every load type named by a depot capacity or an order demand, sorted."""
    names: set[str] = set()
    for depot in study.depots:
        names.update(depot.capacity)
    for day in study.days:
        for order in day.orders:
            names.update(order.demands)
    return tuple(sorted(names))


def capacity_matrix(study: LayoutStudy, types: Sequence[str]) -> npt.NDArray[np.float64]:
    """``[depot, type]``: each depot's capacity per load type (``inf``: unlimited)."""
    return np.array(
        [[float(d.capacity.get(name, math.inf)) for name in types] for d in study.depots],
        dtype=np.float64,
    ).reshape(len(study.depots), len(types))


def demand_matrix(day: Day, types: Sequence[str]) -> npt.NDArray[np.float64]:
    """``[order, type]``: each order's demand per load type."""
    return np.array(
        [[float(o.demands.get(name, 0)) for name in types] for o in day.orders], dtype=np.float64
    ).reshape(len(day.orders), len(types))


def penalty_vector(day: Day) -> npt.NDArray[np.float64]:
    """Each order's penalty cost (``nan``: mandatory)."""
    return np.array(
        [math.nan if o.penalty_cost is None else o.penalty_cost for o in day.orders],
        dtype=np.float64,
    )


def add_load(into: dict[str, dict[str, int]], depot: str, load: Mapping[str, int]) -> None:
    """Add ``load`` (load type → quantity) to what ``depot`` ships in ``into``."""
    per = into.setdefault(depot, {})
    for name, q in load.items():
        per[name] = per.get(name, 0) + q


def part_loads(day: Day, part: RoutedPart) -> dict[str, dict[str, int]]:
    """Depot → load type → load shipped by the routes of ``part`` (an order of ``day``)."""
    loads: dict[str, dict[str, int]] = {}
    for route in part.solution.routes:
        depot = part.vehicle_depot[route.vehicle_index]
        for v in route.visits:
            add_load(loads, depot, day.orders[part.order_index[v.shipment_index]].demands)
    return loads


def over_capacity(study: LayoutStudy, loads: Mapping[str, Mapping[str, int]]) -> bool:
    """Whether a depot ships more of a load type than its capacity."""
    by_label = {d.label: d for d in study.depots}
    return any(
        q > by_label[depot].capacity.get(name, math.inf)
        for depot, per in loads.items()
        for name, q in per.items()
    )
