"""The feature variants of :mod:`benchmarks.variants`: deterministic rules that turn a plain
instance (in the engine's model) into the request a carrier sends; each rule is described in
that module's docstring. :func:`committed_visits` reads back what the ``committed`` rule
commits, for the verifier (:mod:`benchmarks.variant_check`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from benchmarks.warmstart import with_allowed, with_breaks
from engine.model import (
    BreakRequest,
    ConstraintRelaxation,
    FrequencyConstraint,
    IncompatibilityMode,
    InjectedRoute,
    InjectedSolutionConstraint,
    InjectedVisit,
    Relaxation,
    RelaxationLevel,
    ShipmentModel,
    ShipmentTypeIncompatibility,
    TimeWindow,
    VisitRequest,
)

VARIANTS = (
    "plain",
    "breaks",
    "shifts",
    "allowed",
    "windows2",
    "soft",
    "mixed",
    "hours",
    "types",
    "committed",
)


def _every_visit(
    model: ShipmentModel, every: int, change: Callable[[VisitRequest], VisitRequest]
) -> ShipmentModel:
    """``model`` with ``change`` applied to each visit request of every ``every``-th shipment,
    from the first."""
    shipments = tuple(
        dataclasses.replace(
            s, pickups=tuple(map(change, s.pickups)), deliveries=tuple(map(change, s.deliveries))
        )
        if i % every == 0
        else s
        for i, s in enumerate(model.shipments)
    )
    return dataclasses.replace(model, shipments=shipments)


def with_two_windows(model: ShipmentModel) -> ShipmentModel:
    def split(v: VisitRequest) -> VisitRequest:
        if len(v.time_windows) != 1:
            return v
        w = v.time_windows[0]
        if w.start_time is None or w.end_time is None or w.end_time - w.start_time < 10:
            return v
        a, b = w.start_time, w.end_time
        first = TimeWindow(a, math.floor(a + 0.4 * (b - a)))
        last = TimeWindow(math.ceil(b - 0.4 * (b - a)), b)
        return dataclasses.replace(v, time_windows=(first, last))

    return _every_visit(model, 3, split)


def with_soft_windows(model: ShipmentModel) -> ShipmentModel:
    """Every second shipment's windows soft; a time unit early or late costs as much as a unit
    of distance (``cost_per_kilometer`` = 1000 per matrix unit, the engine's time unit is the
    second, so 3600 x that per hour)."""
    per_unit = model.vehicles[0].cost_per_kilometer / 1000.0
    per_hour = 3600.0 * per_unit

    def soften(v: VisitRequest) -> VisitRequest:
        soft = tuple(
            TimeWindow(
                soft_start_time=w.start_time,
                soft_end_time=w.end_time,
                cost_per_hour_before_soft_start_time=per_hour if w.start_time is not None else None,
                cost_per_hour_after_soft_end_time=per_hour if w.end_time is not None else None,
            )
            for w in v.time_windows
        )
        return dataclasses.replace(v, time_windows=soft[:1])

    return _every_visit(model, 2, soften)


def with_two_break_shifts(model: ShipmentModel) -> ShipmentModel:
    """The ``breaks`` rule, with every second vehicle (odd index) taking its break earlier: its
    start window moved earlier by the window's width (drivers on two break schedules)."""
    model = with_breaks(model)
    vehicles = []
    for i, v in enumerate(model.vehicles):
        if i % 2:
            v = dataclasses.replace(
                v,
                break_requests=tuple(
                    dataclasses.replace(
                        b,
                        earliest_start_time=2 * b.earliest_start_time - b.latest_start_time,
                        latest_start_time=b.earliest_start_time,
                    )
                    for b in v.break_requests
                ),
            )
        vehicles.append(v)
    return dataclasses.replace(model, vehicles=tuple(vehicles))


def with_driver_hours(model: ShipmentModel) -> ShipmentModel:
    """A break frequency rule on every vehicle (module docstring): day = the vehicle's working
    time (global start to its end window's close)."""
    g0, g1 = model.global_start_time, model.global_end_time
    vehicles = []
    for v in model.vehicles:
        close = min((w.end_time for w in v.end_time_windows if w.end_time is not None), default=g1)
        day = min(close, g1) - g0
        length = 0.025 * day
        vehicles.append(
            dataclasses.replace(
                v,
                break_requests=(BreakRequest(g0 + 0.1 * day, g0 + 0.9 * day, length),),
                break_frequency_constraints=(FrequencyConstraint(length, 0.5 * day),),
            )
        )
    return dataclasses.replace(model, vehicles=tuple(vehicles))


TYPES = {0: "chilled", 3: "hazmat"}
"""Shipment ``i``'s type in the ``types`` variant: ``TYPES.get(i % 6, "")``."""


def with_types(model: ShipmentModel) -> ShipmentModel:
    shipments = tuple(
        dataclasses.replace(s, shipment_type=TYPES.get(i % 6, ""))
        for i, s in enumerate(model.shipments)
    )
    rule = ShipmentTypeIncompatibility(
        types=tuple(TYPES.values()),
        incompatibility_mode=IncompatibilityMode.NOT_PERFORMED_BY_SAME_VEHICLE,
    )
    return dataclasses.replace(model, shipments=shipments, shipment_type_incompatibilities=(rule,))


COMMIT_ITERATIONS = 1000
"""PyVRP iterations of the ``committed`` variant's morning plan (about a second on 200
customers; within a few percent of the best-known distance on Solomon and Gehring-Homberger)."""


def morning_plan(model: ShipmentModel) -> tuple[InjectedRoute, ...]:
    """The ``committed`` variant's morning plan: deterministic (an iteration limit, seed 0, one
    process), checked by the test suite's checker, its non-empty routes as injected routes."""
    from engine import SearchMode, SolveOptions, solve
    from tests.checker import check_solution

    options = SolveOptions(
        time_limit_s=600.0,  # the iteration limit stops it, well before
        search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
        backend="pyvrp",
        solver_processes=1,
        seed=0,
        iteration_limit=COMMIT_ITERATIONS,
    )
    solution = solve(model, options)
    check_solution(model, solution)
    return tuple(
        InjectedRoute(
            vehicle_index=r.vehicle_index,
            vehicle_start_time=r.vehicle_start_time,
            vehicle_end_time=r.vehicle_end_time,
            visits=tuple(
                InjectedVisit(v.shipment_index, v.is_pickup, v.visit_request_index, v.start_time)
                for v in r.visits
            ),
        )
        for r in solution.routes
        if r.visits
    )


def with_committed(model: ShipmentModel) -> ShipmentModel:
    """The morning plan injected, the first third of each route committed (module docstring)."""
    routes = morning_plan(model)
    constraint = InjectedSolutionConstraint(
        routes=routes,
        constraint_relaxations=tuple(
            ConstraintRelaxation(
                relaxations=(
                    Relaxation(RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD),
                    Relaxation(
                        RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD,
                        # Google's rule: visit j relaxes when j + 1 >= the count
                        threshold_visit_count=len(r.visits) // 3 + 1,
                    ),
                ),
                vehicle_indices=(r.vehicle_index,),
            )
            for r in routes
        ),
    )
    return dataclasses.replace(model, injected_solution_constraint=constraint)


def committed_visits(model: ShipmentModel) -> dict[int, list[tuple[int, bool, int]]]:
    """Per vehicle, the visits the ``committed`` variant keeps first in its route, in order:
    ``(shipment, is_pickup, visit request)``. Reads the constraint the way the variant writes
    it (above); another shape of constraint is refused rather than half checked."""
    constraint = model.injected_solution_constraint
    if constraint is None:
        return {}
    if constraint.skipped_shipments:
        raise ValueError("verify() does not check skipped_shipments")
    levels = {}
    for c in constraint.constraint_relaxations:
        for v in c.vehicle_indices:
            levels[v] = c.relaxations
    out = {}
    for r in constraint.routes:
        relaxations = levels.get(r.vehicle_index, ())
        if [x.level for x in relaxations] != [
            RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD,
            RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD,
        ] or any(x.threshold_time is not None for x in relaxations):
            raise ValueError(f"verify() does not check the relaxations {relaxations}")
        if relaxations[0].threshold_visit_count != 0:
            raise ValueError("verify() checks sequences kept from the route's start only")
        kept = r.visits[: max(relaxations[1].threshold_visit_count - 1, 0)]
        out[r.vehicle_index] = [
            (v.shipment_index, v.is_pickup, v.visit_request_index) for v in kept
        ]
    return out


def variant_model(model: ShipmentModel, variant: str) -> ShipmentModel:
    rules: dict[str, Callable[[ShipmentModel], ShipmentModel]] = {
        "plain": lambda m: m,
        "breaks": with_breaks,
        "shifts": with_two_break_shifts,
        "allowed": with_allowed,
        "windows2": with_two_windows,
        "soft": with_soft_windows,
        "mixed": lambda m: with_two_windows(with_allowed(with_breaks(m))),
        "hours": with_driver_hours,
        "types": with_types,
        "committed": with_committed,
    }
    return rules[variant](model)
