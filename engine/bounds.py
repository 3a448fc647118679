"""Numeric bounds: every number of a model stays within what the solvers' 64-bit integers hold
once :mod:`engine.units` scales it (:func:`bound_violations`, part of
:func:`engine.validation.validate_model`).

The solvers add costs, loads, times and distances as int64. Costs are scaled by
:data:`~engine.units.COST_SCALE`, so the **worst case** of the whole objective — every fixed
cost, penalty and visit cost paid, every rate applied to the largest quantity it can multiply
(a per-hour rate to the whole horizon, a per-kilometer rate to every leg at its longest, a
per-unit rate to every unit of its load type) — must stay below
:data:`~engine.units.MAX_TOTAL_COST`; a model beyond it is refused, naming the field with the
largest worst-case term. Loads are bounded per type (the sum of a type's demands,
:data:`~engine.units.MAX_LOAD_TOTAL`); matrix distances and distance limits by
:data:`~engine.units.MAX_DISTANCE_M`. Times need no bound of their own: timestamps and durations
are bounded by their protobuf types (about 10,000 years in seconds fits int64 with room to
spare) and travel is capped at the horizon by :class:`engine.problem.Problem`.

Values that are not finite or negative are reported by the validator's own checks; this module
skips them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from engine.errors import FieldViolation
from engine.model import ShipmentModel, TimeWindow, Vehicle
from engine.units import MAX_DISTANCE_M, MAX_LOAD_TOTAL, MAX_TOTAL_COST

__all__ = ["LONGEST_LEG_M", "bound_violations"]

LONGEST_LEG_M = 40_075_000.0
"""Longest leg assumed without client matrices (geodesic or roads): once around the Earth."""


def _ok(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x >= 0


class _Budget:
    """The worst-case terms of the objective, with the field each comes from."""

    def __init__(self) -> None:
        self.total = 0.0
        self.largest = 0.0
        self.largest_field = ""

    def add(self, amount: float, field: str) -> None:
        """A term (from finite rates: a product that overflows to inf counts as inf)."""
        if math.isnan(amount) or amount <= 0:
            return
        self.total += amount
        if amount > self.largest:
            self.largest, self.largest_field = amount, field


def bound_violations(model: ShipmentModel) -> list[FieldViolation]:
    """Numbers of ``model`` beyond what the solvers can represent (paths relative to the
    model); see the module docstring."""
    problems: list[FieldViolation] = []
    _distance_violations(model, problems)
    _load_violations(model, problems)
    budget = _cost_budget(model)
    if budget is not None and budget.total > MAX_TOTAL_COST:
        problems.append(
            FieldViolation(
                budget.largest_field,
                f"too large: the worst-case total cost {budget.total:.3g} exceeds the "
                f"solver's bound of {MAX_TOTAL_COST:.3g} (this term: up to "
                f"{budget.largest:.3g}; rates count over the whole horizon and every leg)",
            )
        )
    return problems


def _distance_violations(model: ShipmentModel, problems: list[FieldViolation]) -> None:
    bound = f"must be at most {MAX_DISTANCE_M:g} meters"
    for k, matrix in enumerate(model.duration_distance_matrices):
        meters = np.asarray(matrix.distances_m, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            big = np.argwhere(np.isfinite(meters) & (meters > MAX_DISTANCE_M))
        for r, c in big[:5].tolist():
            problems.append(
                FieldViolation(f"duration_distance_matrices[{k}].rows[{r}].meters[{c}]", bound)
            )
    for j, v in enumerate(model.vehicles):
        limit = "route_distance_limit"
        for name, value in (
            ("max_meters", v.route_distance_limit_m),
            ("soft_max_meters", v.route_distance_soft_max_m),
        ):
            if _ok(value) and value is not None and value > MAX_DISTANCE_M:
                problems.append(FieldViolation(f"vehicles[{j}].{limit}.{name}", bound))


def _load_violations(model: ShipmentModel, problems: list[FieldViolation]) -> None:
    """The demands of each load type add up to at most :data:`MAX_LOAD_TOTAL`."""
    totals: dict[str, int] = {}
    largest: dict[str, tuple[int, int]] = {}
    for i, s in enumerate(model.shipments):
        for load_type, amount in s.load_demands.items():
            if amount <= 0:
                continue
            totals[load_type] = totals.get(load_type, 0) + amount
            if amount > largest.get(load_type, (0, -1))[0]:
                largest[load_type] = (amount, i)
    for load_type, total in sorted(totals.items()):
        if total > MAX_LOAD_TOTAL:
            i = largest[load_type][1]
            problems.append(
                FieldViolation(
                    f"shipments[{i}].load_demands[{load_type}].amount",
                    f"the demands of load type {load_type!r} add up to {total}, above the "
                    f"solver's bound of {MAX_LOAD_TOTAL} (2^53)",
                )
            )


def _longest_leg_m(model: ShipmentModel, horizon_s: float) -> float:
    """The longest leg any route can take (unreachable legs are capped like the engine's
    :meth:`~engine.problem.Problem.arc_cost`: the horizon's seconds in kilometers)."""
    longest = LONGEST_LEG_M
    if model.duration_distance_matrices:
        longest = 0.0
        for matrix in model.duration_distance_matrices:
            meters = np.asarray(matrix.distances_m, dtype=np.float64)
            finite = meters[np.isfinite(meters)]
            longest = max(longest, float(finite.max(initial=0.0)))
        if any(not np.isfinite(m.distances_m).all() for m in model.duration_distance_matrices):
            longest = max(longest, (horizon_s + 1.0) * 1000.0)
    return min(longest, (horizon_s + 1.0) * 1000.0)


def _cost_budget(model: ShipmentModel) -> _Budget | None:
    """The worst-case terms of the objective (None when the horizon is invalid: the validator
    reports it)."""
    horizon_s = model.global_end_time - model.global_start_time
    if not (math.isfinite(horizon_s) and horizon_s > 0):
        return None
    hours = horizon_s / 3600.0
    visits = sum(len(s.pickups) + len(s.deliveries) for s in model.shipments)
    legs = min(visits, 2 * len(model.shipments)) + len(model.vehicles)
    leg_km = _longest_leg_m(model, horizon_s) / 1000.0
    leg_hours = (horizon_s + 1.0) / 3600.0  # a leg's travel is capped just above the horizon
    budget = _Budget()
    budget.add(model.global_duration_cost_per_hour * hours, "global_duration_cost_per_hour")
    demand = _demand_totals(model)
    per_km = (0.0, "")
    per_traveled_hour = (0.0, "")
    for j, v in enumerate(model.vehicles):
        path = f"vehicles[{j}]"
        _vehicle_terms(budget, v, path, hours, legs * leg_km, demand)
        if _ok(v.cost_per_kilometer) and v.cost_per_kilometer > per_km[0]:
            per_km = (v.cost_per_kilometer, f"{path}.cost_per_kilometer")
        if _ok(v.cost_per_traveled_hour) and v.cost_per_traveled_hour > per_traveled_hour[0]:
            per_traveled_hour = (v.cost_per_traveled_hour, f"{path}.cost_per_traveled_hour")
    # Every leg of every route, at its longest, at the largest rate.
    budget.add(per_km[0] * legs * leg_km, per_km[1])
    budget.add(per_traveled_hour[0] * legs * leg_hours, per_traveled_hour[1])
    for i, s in enumerate(model.shipments):
        path = f"shipments[{i}]"
        if _ok(s.penalty_cost) and s.penalty_cost is not None:
            budget.add(s.penalty_cost, f"{path}.penalty_cost")
        visit_cost = (0.0, "")
        for kind, requests in (("pickups", s.pickups), ("deliveries", s.deliveries)):
            for k, visit in enumerate(requests):
                vp = f"{path}.{kind}[{k}]"
                if _ok(visit.cost) and visit.cost > visit_cost[0]:
                    visit_cost = (visit.cost, f"{vp}.cost")
                _window_terms(budget, visit.time_windows, f"{vp}.time_windows", hours)
        budget.add(visit_cost[0], visit_cost[1])
        costs = [(c, k) for k, c in enumerate(s.costs_per_vehicle) if _ok(c)]
        if costs:
            c, k = max(costs)
            budget.add(c, f"{path}.costs_per_vehicle[{k}]")
    return budget


def _demand_totals(model: ShipmentModel) -> dict[str, float]:
    totals: dict[str, float] = {}
    for s in model.shipments:
        for load_type, amount in s.load_demands.items():
            if amount > 0:
                totals[load_type] = totals.get(load_type, 0.0) + float(amount)
    return totals


def _vehicle_terms(
    budget: _Budget,
    v: Vehicle,
    path: str,
    hours: float,
    route_km: float,
    demand: dict[str, float],
) -> None:
    """A vehicle's own worst-case terms (its travel rates are counted over every leg)."""
    if _ok(v.fixed_cost):
        budget.add(v.fixed_cost, f"{path}.fixed_cost")
    if _ok(v.cost_per_hour):
        budget.add(v.cost_per_hour * hours, f"{path}.cost_per_hour")
    rate = v.route_duration_cost_per_hour_after_soft_max
    if _ok(rate) and rate is not None:
        budget.add(rate * hours, f"{path}.route_duration_limit.cost_per_hour_after_soft_max")
    rate = v.route_distance_cost_per_kilometer_above_soft_max
    if _ok(rate) and rate is not None:
        budget.add(
            rate * route_km, f"{path}.route_distance_limit.cost_per_kilometer_above_soft_max"
        )
    for load_type, soft in sorted(v.soft_load_limits.items()):
        if _ok(soft.cost_per_unit_above_soft_max):
            budget.add(
                soft.cost_per_unit_above_soft_max * demand.get(load_type, 0.0),
                f"{path}.load_limits[{load_type}].cost_per_unit_above_soft_max",
            )
    _window_terms(budget, v.start_time_windows, f"{path}.start_time_windows", hours)
    _window_terms(budget, v.end_time_windows, f"{path}.end_time_windows", hours)


def _window_terms(budget: _Budget, windows: Iterable[TimeWindow], path: str, hours: float) -> None:
    for k, w in enumerate(windows):
        for name in ("cost_per_hour_before_soft_start_time", "cost_per_hour_after_soft_end_time"):
            rate = getattr(w, name)
            if _ok(rate):
                budget.add(rate * hours, f"{path}[{k}].{name}")
