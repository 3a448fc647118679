"""Depot capacity around the router: when the multi-depot routing of a day loads some depot
beyond its capacity, the orders are re-assigned by a generalised assignment model
(:mod:`planning.backends.ortools_mip` with the open set fixed) that keeps each order at its
routed depot where possible and otherwise moves it to the nearest depot with room; then each
depot's orders are routed on their own (one model per depot, its fleet only)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from planning.backends.ortools_mip import FacilityDay, solve_facility_location
from planning.budget import Budget, StoppedError
from planning.day_model import Router, build_day_model
from planning.loads import capacity_matrix, demand_matrix, load_types, penalty_vector
from planning.results import RoutedPart
from planning.study import LayoutStudy
from planning.travel import DayTravel, estimate_costs

__all__ = ["reassign", "route_assigned"]


def _routed_at(study: LayoutStudy, part: RoutedPart) -> npt.NDArray[np.int_]:
    """Per order of the day: the index of the depot whose route serves it in ``part`` (a
    model of every order of the day), -1 unserved."""
    index = study.depot_index()
    routed_at = np.full(len(part.order_index), -1)
    for route in part.solution.routes:
        j = index[part.vehicle_depot[route.vehicle_index]]
        for v in route.visits:
            routed_at[v.shipment_index] = j
    return routed_at


def _move_costs(
    study: LayoutStudy,
    open_idx: Sequence[int],
    travel: DayTravel,
    day: int,
    routed_at: npt.NDArray[np.int_],
) -> npt.NDArray[np.float64]:
    """``[order, depot]``: nothing to stay at the routed depot; elsewhere (open depots only)
    the extra star cost plus a move penalty (a tenth of the median star cost)."""
    star = estimate_costs(study, study.days[day], travel, 1.0)
    mask = np.full(len(study.depots), math.inf)
    mask[list(open_idx)] = 0.0
    finite = star[np.isfinite(star)]
    move_penalty = 0.1 * float(np.median(finite)) if finite.size else 0.0
    costs: npt.NDArray[np.float64] = star + mask[None, :]
    for i, j in enumerate(routed_at):
        if j >= 0:
            keep = star[i, j]
            costs[i] = np.maximum(costs[i] - keep, 0.0) + move_penalty
            costs[i, j] = 0.0
    return costs


def reassign(
    study: LayoutStudy,
    day: int,
    open_idx: Sequence[int],
    travel: DayTravel,
    routed: RoutedPart,
    time_limit_s: float,
    budget: Budget | None = None,
) -> tuple[int, ...] | None:
    """Per order of ``day``: the open depot (index) that serves it within the capacities, as
    close to the depots of ``routed`` (its multi-depot routing) as capacity allows; -1 an
    optional order left out. None: the open depots' capacity is short of the day's demand.
    The MIP runs within ``budget`` (:class:`~planning.budget.StoppedError` once it is stopped)."""
    budget = budget or Budget()
    budget.check()
    types = load_types(study)
    costs = _move_costs(study, open_idx, travel, day, _routed_at(study, routed))
    the_day = study.days[day]
    result = solve_facility_location(
        [0.0] * len(study.depots),
        capacity_matrix(study, types),
        [FacilityDay(demand_matrix(the_day, types), costs, penalty_vector(the_day))],
        fixed_open=frozenset(open_idx),
        time_limit_s=budget.remaining(time_limit_s),
        should_stop=budget.stopped,
    )
    if result is None and budget.stopped():
        raise StoppedError("the study was stopped during the capacity repair")
    return None if result is None else result.assignment[0]


def route_assigned(
    study: LayoutStudy,
    day: int,
    open_idx: Sequence[int],
    assigned: Sequence[int],
    router: Router,
    budget_s: float,
) -> list[RoutedPart]:
    """Route each open depot's ``assigned`` orders with its own fleet (``budget_s`` shared by
    order count), and the orders left out in a model without vehicles."""
    orders = study.days[day].orders
    all_orders = range(len(orders))
    parts: list[RoutedPart] = []
    for j in open_idx:
        mine = [i for i in all_orders if assigned[i] == j]
        if not mine:
            continue
        sub, sub_depots = build_day_model(study, study.days[day], [j], mine)
        sol = router.solve(sub, budget_s * len(mine) / max(len(orders), 1))
        parts.append(RoutedPart(day, (study.depots[j].label,), sub, sol, tuple(mine), sub_depots))
    unassigned = [i for i in all_orders if assigned[i] < 0]
    if unassigned:  # optional orders the assignment left out: a model without vehicles
        sub, sub_depots = build_day_model(study, study.days[day], [], unassigned)
        sol = router.solve(sub, 0.2)
        parts.append(RoutedPart(day, (), sub, sol, tuple(unassigned), sub_depots))
    return parts
