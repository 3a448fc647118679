"""Travel between the depots and the orders of a day (road network, the study's matrix or
geodesic), what a vehicle pays for it, and the screening estimate of an order's cost from each
depot."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.roads import RoadContext
from geodata.geo import haversine_matrix_m
from planning.study import Day, LayoutOptions, LayoutStudy, VehicleType

__all__ = ["DayTravel", "day_travel", "estimate_costs"]


@dataclass(frozen=True, eq=False)
class DayTravel:
    """Durations and distances from every depot to every order of a day (``out_*``,
    ``[depot, order]``) and back (``back_*``, ``[order, depot]``)."""

    out_s: npt.NDArray[np.float64]
    out_m: npt.NDArray[np.float64]
    back_s: npt.NDArray[np.float64]
    back_m: npt.NDArray[np.float64]


def day_travel(
    study: LayoutStudy, day: Day, roads: RoadContext | None, options: LayoutOptions
) -> DayTravel:
    """The travel of ``day``: from the study's matrix when it has one, else over ``roads``
    (unless ``options`` asks for geodesic travel), else geodesic."""
    depots, orders = study.depots, day.orders
    if study.matrix is not None:
        index = {t: k for k, t in enumerate(study.matrix.tags)}
        dj = [index[d.tag] for d in depots]
        oi = [index[o.tag] for o in orders]
        m = study.matrix
        return DayTravel(
            m.durations_s[np.ix_(dj, oi)],
            m.distances_m[np.ix_(dj, oi)],
            m.durations_s[np.ix_(oi, dj)],
            m.distances_m[np.ix_(oi, dj)],
        )
    points = [d.location for d in depots] + [o.location for o in orders]
    lat = np.array([p.latitude for p in points if p is not None])
    lng = np.array([p.longitude for p in points if p is not None])
    nd = len(depots)
    if roads is not None and not options.use_geodesic_distances:
        d_snap = roads.snap(lat[:nd], lng[:nd])
        o_snap = roads.snap(lat[nd:], lng[nd:])
        out = roads.matrix(d_snap, o_snap)
        back = roads.matrix(o_snap, d_snap)
        return DayTravel(out.durations_s, out.distances_m, back.durations_s, back.distances_m)
    meters = haversine_matrix_m(lat, lng)
    speed = options.geodesic_meters_per_second
    out_m = meters[:nd, nd:]
    back_m = meters[nd:, :nd]
    return DayTravel(out_m / speed, out_m, back_m / speed, back_m)


def _arc_cost(
    vt: VehicleType, meters: npt.NDArray[np.float64], seconds: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """What ``vt`` pays to drive ``meters`` in ``seconds``."""
    rate_h = vt.cost_per_traveled_hour + vt.cost_per_hour
    cost = vt.cost_per_kilometer * meters / 1000.0 + rate_h * seconds / 3600.0
    if vt.cost_per_kilometer == 0 and rate_h == 0:
        cost = cost + 1e-6 * seconds  # no travel cost: still prefer near depots
    out: npt.NDArray[np.float64] = np.asarray(cost, dtype=np.float64)
    return out


def _vehicle_share(day: Day, vt: VehicleType) -> npt.NDArray[np.float64]:
    """Per order: the largest share of one ``vt`` vehicle's capacity it fills (``inf``: a
    load type the vehicle cannot carry at all)."""
    share = np.zeros(len(day.orders))
    for i, order in enumerate(day.orders):
        ratios = [0.0]
        for name, q in order.demands.items():
            cap = vt.capacities.get(name)
            if cap is None or q == 0:
                continue
            ratios.append(q / cap if cap > 0 else math.inf)
        share[i] = max(ratios)
    return share


def estimate_costs(
    study: LayoutStudy, day: Day, travel: DayTravel, factor: float
) -> npt.NDArray[np.float64]:
    """``[order, depot]``: λ (``factor``) × star cost (depot → order → depot) + the fixed cost
    × the order's share of a vehicle, with the depot's cheapest vehicle type that can carry the
    order (``inf``: none can, or no road leads there and back)."""
    n_orders, n_depots = len(day.orders), len(study.depots)
    out = np.full((n_orders, n_depots), math.inf)
    for j, depot in enumerate(study.depots):
        for vt in study.fleet_of(depot):
            if vt.count == 0:
                continue
            star = _arc_cost(vt, travel.out_m[j], travel.out_s[j]) + _arc_cost(
                vt, travel.back_m[:, j], travel.back_s[:, j]
            )
            share = _vehicle_share(day, vt)
            with np.errstate(invalid="ignore"):
                cost = factor * star + vt.fixed_cost * share
            cost[~np.isfinite(cost) | (share > 1.0)] = math.inf
            out[:, j] = np.minimum(out[:, j], cost)
    return out
