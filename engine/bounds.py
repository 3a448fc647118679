"""Numeric bounds: every number of a model stays within what the solvers' 64-bit integers hold
once :mod:`engine.units` scales it (:func:`bound_violations`, part of
:func:`engine.validation.validate_model`).

The solvers add costs, loads, times and distances as int64. Costs are scaled by
:data:`~engine.units.COST_SCALE`, so the **worst case** of the whole objective — every fixed
cost, penalty and visit cost paid, every rate applied to the largest quantity it can multiply
(a per-hour rate to the whole horizon, a per-kilometer rate to every leg at its longest, a
per-unit rate to every unit of its load type) — must stay below
:data:`~engine.units.MAX_TOTAL_COST`; a model beyond it is refused, naming the field with the
largest worst-case term. The driver-hours costs (issue 15) count the same way: a travel soft
cost per hour over the whole horizon, a quadratic soft cost
(``cost_per_square_hour_after_quadratic_soft_max``) times the square of the longest excess (the
span, route duration or travel time, is at most the horizon and the limit's ``max_duration``;
one second more for the solver's whole seconds). A load-dependent cost
(``load_limits[type].cost_per_kilometer`` / ``cost_per_traveled_hour``) counts its rate for the
type's whole demand over every leg. Loads are bounded per type (the sum of a
type's demands, :data:`~engine.units.MAX_LOAD_TOTAL`); matrix distances and distance limits by
:data:`~engine.units.MAX_DISTANCE_M`.

Times and durations are bounded by their protobuf types' ranges (about 10,000 years in seconds
fits int64 with room to spare): the API's converter checks them, and this module checks those
the engine's own callers could set beyond (:data:`~engine.units.MAX_DURATION_S`,
:data:`~engine.units.MIN_TIMESTAMP_S` / :data:`~engine.units.MAX_TIMESTAMP_S`): the horizon,
the driver-hours durations, and every time and duration of the injected solutions
(``injected_first_solution_routes``, ``injected_solution_constraint``,
``refresh_details_routes``, paths relative to the request). Travel is capped at the horizon by
:class:`engine.problem.Problem`.

The transition attributes (issue 15) count on every leg: ``cost`` once per leg,
``cost_per_kilometer`` and the soft ``distance_limit`` rate over every leg at its longest; their
delays are durations (a transition's summed delay is capped at the horizon by
:class:`engine.problem.Problem`, like travel).

Values that are not finite or negative are reported by the validator's own checks; this module
skips them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from engine.errors import FieldViolation
from engine.model import DurationLimit, InjectedRoute, ShipmentModel, TimeWindow, Vehicle
from engine.units import (
    MAX_DISTANCE_M,
    MAX_DURATION_S,
    MAX_LOAD_TOTAL,
    MAX_TIMESTAMP_S,
    MAX_TOTAL_COST,
    MIN_TIMESTAMP_S,
)

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
    _time_violations(model, problems)
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


_TIME_BOUND = (
    "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (protobuf's Timestamp range, "
    f"epoch seconds {MIN_TIMESTAMP_S} to {MAX_TIMESTAMP_S})"
)
_DURATION_BOUND = f"must be at most {MAX_DURATION_S} s (protobuf's Duration range)"


def _time_violations(model: ShipmentModel, problems: list[FieldViolation]) -> None:
    """Times and durations the API's types bound, for the engine's own callers: beyond them,
    whole seconds overflow the solver's int64 (OverflowError or TypeError in OR-Tools)."""
    times: list[tuple[str, float | None]] = [
        ("global_start_time", model.global_start_time),
        ("global_end_time", model.global_end_time),
    ]
    durations: list[tuple[str, float | None]] = []
    for j, v in enumerate(model.vehicles):
        path = f"vehicles[{j}]"
        for k, fc in enumerate(v.break_frequency_constraints):
            fp = f"{path}.break_rule.frequency_constraints[{k}]"
            durations.append((f"{fp}.min_break_duration", fc.min_break_duration_s))
            durations.append((f"{fp}.max_inter_break_duration", fc.max_inter_break_duration_s))
        durations.append(
            (
                f"{path}.route_duration_limit.quadratic_soft_max_duration",
                v.route_duration_quadratic_soft_max_s,
            )
        )
        travel = v.travel_duration_limit
        if travel is not None:
            tp = f"{path}.travel_duration_limit"
            durations.append((f"{tp}.max_duration", travel.max_duration_s))
            durations.append((f"{tp}.soft_max_duration", travel.soft_max_duration_s))
            durations.append(
                (f"{tp}.quadratic_soft_max_duration", travel.quadratic_soft_max_duration_s)
            )

    def route(path: str, r: InjectedRoute) -> None:
        times.append((f"{path}.vehicle_start_time", r.vehicle_start_time))
        times.extend(
            (f"{path}.visits[{k}].start_time", visit.start_time) for k, visit in enumerate(r.visits)
        )
        times.append((f"{path}.vehicle_end_time", r.vehicle_end_time))
        for k, (start, duration) in enumerate(r.breaks):
            times.append((f"{path}.breaks[{k}].start_time", start))
            durations.append((f"{path}.breaks[{k}].duration", duration))

    for k, r in enumerate(model.injected_first_solution_routes):
        route(f"injected_first_solution_routes[{k}]", r)
    constraint = model.injected_solution_constraint
    if constraint is not None:
        for k, r in enumerate(constraint.routes):
            route(f"injected_solution_constraint.routes[{k}]", r)
        for c, group in enumerate(constraint.constraint_relaxations):
            for k, relaxation in enumerate(group.relaxations):
                path = f"injected_solution_constraint.constraint_relaxations[{c}].relaxations[{k}]"
                times.append((f"{path}.threshold_time", relaxation.threshold_time))
    for k, r in enumerate(model.refresh_details_routes):
        route(f"refresh_details_routes[{k}]", r)
    for k, a in enumerate(model.transition_attributes):
        durations.append((f"transition_attributes[{k}].delay", a.delay_s))
    for field, t in times:
        if t is not None and math.isfinite(t) and not MIN_TIMESTAMP_S <= t <= MAX_TIMESTAMP_S:
            problems.append(FieldViolation(field, _TIME_BOUND))
    for field, d in durations:
        if _ok(d) and d is not None and d > MAX_DURATION_S:
            problems.append(FieldViolation(field, _DURATION_BOUND))


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
    for k, a in enumerate(model.transition_attributes):
        soft = a.distance_limit_soft_max_m
        if _ok(soft) and soft is not None and soft > MAX_DISTANCE_M:
            path = f"transition_attributes[{k}].distance_limit.soft_max_meters"
            problems.append(FieldViolation(path, bound))


def _load_violations(model: ShipmentModel, problems: list[FieldViolation]) -> None:
    """The demands of each load type add up to at most :data:`MAX_LOAD_TOTAL`."""
    totals: dict[str, int] = {}
    largest: dict[str, tuple[int, int]] = {}
    for i, s in enumerate(model.shipments):
        for load_type in s.demanded_types:
            amount = s.max_visit_demand(load_type)  # with the visits' own demands
            totals[load_type] = totals.get(load_type, 0) + amount
            if amount > largest.get(load_type, (0, -1))[0]:
                largest[load_type] = (amount, i)
    for load_type, total in sorted(totals.items()):
        if total > MAX_LOAD_TOTAL:
            i = largest[load_type][1]
            problems.append(
                FieldViolation(
                    _demand_path(model, i, load_type),
                    f"the demands of load type {load_type!r} add up to {total}, above the "
                    f"solver's bound of {MAX_LOAD_TOTAL} (2^53)",
                )
            )


def _demand_path(model: ShipmentModel, i: int, load_type: str) -> str:
    """The field of shipment ``i``'s largest demand of ``load_type``: its own ``load_demands``,
    or a visit request's when that is larger (issue 15)."""
    s = model.shipments[i]
    path, largest = (
        f"shipments[{i}].load_demands[{load_type}].amount",
        s.load_demands.get(load_type, 0),
    )
    for kind, visits in (("pickups", s.pickups), ("deliveries", s.deliveries)):
        for k, visit in enumerate(visits):
            if visit.load_demands.get(load_type, 0) > largest:
                largest = visit.load_demands[load_type]
                path = f"shipments[{i}].{kind}[{k}].load_demands[{load_type}].amount"
    return path


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
        _vehicle_terms(budget, v, path, horizon_s, legs * leg_km, demand)
        _load_cost_terms(budget, v, path, legs * leg_km, legs * leg_hours, demand)
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
    # Transition attributes (issue 15): every leg of every route matches every attribute.
    for k, a in enumerate(model.transition_attributes):
        path = f"transition_attributes[{k}]"
        if _ok(a.cost):
            budget.add(a.cost * legs, f"{path}.cost")
        if _ok(a.cost_per_kilometer):
            budget.add(a.cost_per_kilometer * legs * leg_km, f"{path}.cost_per_kilometer")
        rate = a.distance_limit_cost_per_kilometer_above_soft_max
        if _ok(rate) and rate is not None:
            budget.add(
                rate * legs * leg_km, f"{path}.distance_limit.cost_per_kilometer_above_soft_max"
            )
    return budget


def _demand_totals(model: ShipmentModel) -> dict[str, float]:
    totals: dict[str, float] = {}
    for s in model.shipments:
        for load_type in s.demanded_types:
            totals[load_type] = totals.get(load_type, 0.0) + float(s.max_visit_demand(load_type))
    return totals


def _vehicle_terms(
    budget: _Budget,
    v: Vehicle,
    path: str,
    horizon_s: float,
    route_km: float,
    demand: dict[str, float],
) -> None:
    """A vehicle's own worst-case terms (its travel rates are counted over every leg)."""
    hours = horizon_s / 3600.0
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
    # Driver-hours rules (issue 15).
    _quadratic_term(budget, v.route_duration_limit, f"{path}.route_duration_limit", horizon_s)
    travel = v.travel_duration_limit
    if travel is not None:
        tp = f"{path}.travel_duration_limit"
        rate = travel.cost_per_hour_after_soft_max
        if _ok(rate) and rate is not None:
            budget.add(rate * hours, f"{tp}.cost_per_hour_after_soft_max")
        _quadratic_term(budget, travel, tp, horizon_s)


def _load_cost_terms(
    budget: _Budget,
    v: Vehicle,
    path: str,
    route_km: float,
    route_hours: float,
    demand: dict[str, float],
) -> None:
    """Load-dependent costs (issue 15): the rate of a type's whole demand (the most a vehicle
    can carry; the rate grows with the load) over every leg at its longest."""
    for kind, costs, amount in (
        ("cost_per_kilometer", v.load_costs_per_kilometer, route_km),
        ("cost_per_traveled_hour", v.load_costs_per_traveled_hour, route_hours),
    ):
        for load_type, cost in sorted(costs.items()):
            below, above = cost.cost_per_unit_below_threshold, cost.cost_per_unit_above_threshold
            if not (_ok(below) and _ok(above) and cost.load_threshold >= 0):
                continue  # the validator reports it
            rate = cost.rate(int(demand.get(load_type, 0.0)))
            budget.add(rate * amount, f"{path}.load_limits[{load_type}].{kind}")


def _quadratic_term(budget: _Budget, limit: DurationLimit, path: str, horizon_s: float) -> None:
    """``cost_per_square_hour_after_quadratic_soft_max`` times the square of the longest excess
    over ``quadratic_soft_max_duration``: the span is at most the horizon and ``max_duration``,
    and the solver's soft maximum is rounded down to whole seconds (one more second)."""
    soft = limit.quadratic_soft_max_duration_s
    rate = limit.cost_per_square_hour_after_quadratic_soft_max
    if soft is None or rate is None or not (_ok(soft) and _ok(rate)):
        return
    longest = horizon_s
    if limit.max_duration_s is not None and _ok(limit.max_duration_s):
        longest = min(longest, limit.max_duration_s)
    excess_h = (max(0.0, longest - soft) + 1.0) / 3600.0
    budget.add(rate * excess_h * excess_h, f"{path}.cost_per_square_hour_after_quadratic_soft_max")


def _window_terms(budget: _Budget, windows: Iterable[TimeWindow], path: str, hours: float) -> None:
    for k, w in enumerate(windows):
        for name in ("cost_per_hour_before_soft_start_time", "cost_per_hour_after_soft_end_time"):
            rate = getattr(w, name)
            if _ok(rate):
                budget.add(rate * hours, f"{path}[{k}].{name}")
