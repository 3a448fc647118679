"""Backend choice (``auto``), the PyVRP backend beside OR-Tools, portfolios and determinism.

Every solution is checked by the independent checker (``solve_checked``)."""

from __future__ import annotations

import dataclasses
import random
import sys
import time

import numpy as np
import pytest

from engine import LatLng, Shipment, ShipmentModel, TimeWindow, Vehicle, VisitRequest, solve
from engine.backends import StopCriterion, choose_backend
from engine.backends.features import FEATURES, MAX_ALLOWED_PROFILES
from engine.backends.ortools import OrToolsBackend
from engine.backends.pyvrp.backend import UNSUPPORTED
from engine.errors import InvalidModelError
from engine.model import (
    BreakRequest,
    DurationLimit,
    FrequencyConstraint,
    IncompatibilityMode,
    InjectedRoute,
    InjectedSkippedShipment,
    InjectedSolutionConstraint,
    InjectedVisit,
    LoadCost,
    LoadInterval,
    PrecedenceRule,
    RequirementMode,
    ShipmentTypeIncompatibility,
    ShipmentTypeRequirement,
    TransitionAttributes,
    UnloadingPolicy,
)
from engine.options import SearchMode, SolveOptions
from engine.precheck import precheck
from engine.problem import Problem
from engine.solution import SkipReasonCode
from engine.travel import build_stops, build_travel_matrices
from engine.warmstart import (
    WARM_STARTABLE,
    Timeline,
    nearby_model,
    pyvrp_initial_routes,
    type_parts,
)
from tests.builders import matrix_model, solve_checked

DAY = 86400.0


def city_model(
    n: int,
    *,
    seed: int = 1,
    n_vehicles: int = 4,
    windows: bool = True,
    pairs: int = 0,
    cost_per_hour: float = 0.0,
) -> ShipmentModel:
    """Deliveries (and ``pairs`` pickup-and-delivery shipments) around a Paris depot, with
    capacities, service times and optionally time windows (geodesic travel at 10 m/s)."""
    rng = random.Random(seed)

    def point() -> LatLng:
        return LatLng(48.8 + rng.random() * 0.1, 2.3 + rng.random() * 0.1)

    def window() -> tuple[TimeWindow, ...]:
        if not windows:
            return ()
        start = rng.uniform(0, 6 * 3600)
        return (TimeWindow(start_time=start, end_time=start + 3 * 3600),)

    shipments = [
        Shipment(
            deliveries=(
                VisitRequest(arrival_location=point(), duration_s=120, time_windows=window()),
            ),
            load_demands={"boxes": rng.randint(1, 3)},
            penalty_cost=None if i % 5 else 500.0,
            label=f"d{i}",
        )
        for i in range(n)
    ]
    shipments += [
        Shipment(
            pickups=(VisitRequest(arrival_location=point(), duration_s=60),),
            deliveries=(VisitRequest(arrival_location=point(), duration_s=60),),
            load_demands={"boxes": 1},
            label=f"p{i}",
        )
        for i in range(pairs)
    ]
    depot = LatLng(48.85, 2.35)
    vehicle = Vehicle(
        start_location=depot,
        end_location=depot,
        start_time_windows=(TimeWindow(start_time=0.0, end_time=2 * 3600),),
        end_time_windows=(TimeWindow(end_time=12 * 3600),),
        load_limits={"boxes": 2 * (n + pairs) // n_vehicles + 4},
        cost_per_kilometer=1.0,
        cost_per_hour=cost_per_hour,
        fixed_cost=10.0,
    )
    return ShipmentModel(
        shipments=tuple(shipments), vehicles=(vehicle,) * n_vehicles, global_end_time=DAY
    )


def problem_of(model: ShipmentModel) -> Problem:
    stops = build_stops(model)
    travel = build_travel_matrices(model, stops, geodesic_meters_per_second=10.0)
    problem, _ = precheck(Problem.build(model, stops, travel))
    return problem


def with_vehicle(model: ShipmentModel, **changes: object) -> ShipmentModel:
    vehicles = list(model.vehicles)
    vehicles[1] = dataclasses.replace(vehicles[1], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(model, vehicles=tuple(vehicles))


def with_shipment(model: ShipmentModel, shipment: Shipment) -> ShipmentModel:
    shipments = list(model.shipments)
    shipments[2] = shipment
    return dataclasses.replace(model, shipments=tuple(shipments))


def many_allowed_classes(model: ShipmentModel) -> ShipmentModel:
    """``model`` (8 shipments) on MAX_ALLOWED_PROFILES + 6 copies of its first vehicle, shipment
    k < 7 allowed on the vehicles with bit k set: every vehicle a class of its own, too many
    for the PyVRP backend's matrices."""
    n = MAX_ALLOWED_PROFILES + 6
    shipments = [
        dataclasses.replace(sh, allowed_vehicle_indices=tuple(v for v in range(n) if v >> k & 1))
        for k, sh in enumerate(model.shipments[:7])
    ]
    return dataclasses.replace(
        model, shipments=(*shipments, *model.shipments[7:]), vehicles=(model.vehicles[0],) * n
    )


BASE = city_model(8)
TW = TimeWindow(start_time=3600.0, end_time=7200.0)
HERE = BASE.shipments[2].deliveries[0]
# One model per feature that PyVRP cannot express, with the field path auto must name.
TYPED = dataclasses.replace(
    BASE,
    shipments=(
        dataclasses.replace(BASE.shipments[0], shipment_type="b"),
        *BASE.shipments[1:2],
        dataclasses.replace(BASE.shipments[2], shipment_type="a"),
        *BASE.shipments[3:],
    ),
)
"""BASE with shipment 0 of type "b" and shipment 2 of type "a"."""

ORTOOLS_ONLY = {
    "breaks": (
        with_vehicle(BASE, break_requests=(BreakRequest(3600.0, 7200.0, 600.0),)),
        "model.vehicles[1].break_rule",
    ),
    "pair_soft_time_windows": (
        with_shipment(
            BASE,
            Shipment(
                pickups=(BASE.shipments[3].deliveries[0],),
                deliveries=(
                    dataclasses.replace(
                        HERE,
                        time_windows=(
                            TimeWindow(soft_end_time=3600.0, cost_per_hour_after_soft_end_time=5),
                        ),
                    ),
                ),
            ),
        ),
        "model.shipments[2].deliveries[0].time_windows",
    ),
    "soft_vehicle_time_windows": (
        with_vehicle(
            BASE,
            end_time_windows=(
                TimeWindow(soft_end_time=4 * 3600.0, cost_per_hour_after_soft_end_time=5),
            ),
        ),
        "model.vehicles[1].end_time_windows",
    ),
    "pair_multiple_time_windows": (
        with_shipment(
            BASE,
            Shipment(
                pickups=(BASE.shipments[3].deliveries[0],),
                deliveries=(
                    dataclasses.replace(
                        HERE, time_windows=(TimeWindow(0.0, 3600.0), TimeWindow(7200.0, 9000.0))
                    ),
                ),
            ),
        ),
        "model.shipments[2].deliveries[0].time_windows",
    ),
    "allowed_vehicle_classes": (
        many_allowed_classes(BASE),
        "model.shipments[0].allowed_vehicle_indices",
    ),
    "pair_alternatives": (
        with_shipment(BASE, Shipment(pickups=(HERE, HERE), deliveries=(HERE,))),
        "model.shipments[2]",
    ),
    "distance_limit_with_time_cost": (
        with_vehicle(BASE, route_distance_limit_m=50_000.0, cost_per_traveled_hour=20.0),
        "model.vehicles[1].route_distance_limit",
    ),
    "multiple_vehicle_time_windows": (
        with_vehicle(BASE, start_time_windows=(TimeWindow(0.0, 100.0), TimeWindow(200.0, 300.0))),
        "model.vehicles[1].start_time_windows",
    ),
    "late_end_window_start": (
        with_vehicle(BASE, end_time_windows=(TimeWindow(start_time=4 * 3600.0),)),
        "model.vehicles[1].end_time_windows",
    ),
    "shipment_type_incompatibilities": (
        dataclasses.replace(
            TYPED,
            shipment_type_incompatibilities=(
                ShipmentTypeIncompatibility(
                    ("a", "b"), IncompatibilityMode.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY
                ),
            ),
        ),
        "model.shipment_type_incompatibilities[0]",
    ),
    "shipment_type_requirements": (
        dataclasses.replace(
            TYPED,
            shipment_type_requirements=(
                ShipmentTypeRequirement(("a",), ("b",), RequirementMode.PERFORMED_BY_SAME_VEHICLE),
            ),
        ),
        "model.shipment_type_requirements[0]",
    ),
    "max_active_vehicles": (
        dataclasses.replace(BASE, max_active_vehicles=1),
        "model.max_active_vehicles",
    ),
    "ignored_vehicles": (with_vehicle(BASE, ignore=True), "model.vehicles[1].ignore"),
    "visit_costs": (
        with_shipment(BASE, Shipment(deliveries=(dataclasses.replace(HERE, cost=3.0),))),
        "model.shipments[2].deliveries[0].cost",
    ),
    "costs_per_vehicle": (
        with_shipment(
            BASE,
            Shipment(deliveries=(HERE,), costs_per_vehicle=(5.0,), costs_per_vehicle_indices=(1,)),
        ),
        "model.shipments[2].costs_per_vehicle",
    ),
    "pickup_delivery_limits": (
        with_shipment(
            BASE,
            Shipment(pickups=(HERE,), deliveries=(HERE,), pickup_to_delivery_time_limit_s=3600.0),
        ),
        "model.shipments[2].pickup_to_delivery_time_limit",
    ),
    "soft_route_limits": (
        with_vehicle(
            BASE,
            route_distance_soft_max_m=1000.0,
            route_distance_cost_per_kilometer_above_soft_max=2.0,
        ),
        "model.vehicles[1].route_distance_limit.soft_max_meters",
    ),
    "used_if_route_is_empty": (
        with_vehicle(BASE, used_if_route_is_empty=True),
        "model.vehicles[1].used_if_route_is_empty",
    ),
    "precedence_rules": (
        dataclasses.replace(BASE, precedence_rules=(PrecedenceRule(0, 2, True, True, 60.0),)),
        "model.precedence_rules[0]",
    ),
    "global_duration_cost": (
        dataclasses.replace(BASE, global_duration_cost_per_hour=10.0),
        "model.global_duration_cost_per_hour",
    ),
    # re-optimisation: request fields in the API, so their paths have no "model." prefix
    "injected_first_solution": (
        dataclasses.replace(
            with_shipment(BASE, Shipment(pickups=(HERE,), deliveries=(HERE,))),
            injected_first_solution_routes=(InjectedRoute(0, (InjectedVisit(0),)),),
        ),
        "injected_first_solution_routes",
    ),
    "injected_solution_constraint": (
        dataclasses.replace(
            BASE,
            injected_solution_constraint=InjectedSolutionConstraint(
                skipped_shipments=(InjectedSkippedShipment(1),)
            ),
        ),
        "injected_solution_constraint",
    ),
    # driver-hours rules (issue 15)
    "break_frequency": (
        with_vehicle(BASE, break_frequency_constraints=(FrequencyConstraint(600.0, 4 * 3600.0),)),
        "model.vehicles[1].break_rule.frequency_constraints",
    ),
    "travel_duration_limit": (
        with_vehicle(BASE, travel_duration_limit=DurationLimit(max_duration_s=8 * 3600.0)),
        "model.vehicles[1].travel_duration_limit",
    ),
    # loads (issue 15)
    "visit_type_durations": (
        dataclasses.replace(
            with_vehicle(BASE, extra_visit_duration_for_visit_type={"stairs": 60.0}),
            shipments=tuple(
                dataclasses.replace(
                    s,
                    deliveries=tuple(
                        dataclasses.replace(d, visit_types=("stairs",)) for d in s.deliveries
                    ),
                )
                for s in BASE.shipments
            ),
        ),
        "model.vehicles[1].extra_visit_duration_for_visit_type[stairs]",
    ),
    "unloading_policy": (
        with_shipment(
            with_vehicle(BASE, unloading_policy=UnloadingPolicy.LAST_IN_FIRST_OUT),
            dataclasses.replace(BASE.shipments[2], pickups=BASE.shipments[1].deliveries),
        ),
        "model.vehicles[1].unloading_policy",
    ),
    "load_intervals": (
        with_vehicle(BASE, end_load_intervals={"kg": LoadInterval(0, 100)}),
        "model.vehicles[1].load_limits[kg].end_load_interval",
    ),
    # transition attributes (issue 15): a delay leaving every start
    "transition_attributes": (
        dataclasses.replace(
            with_vehicle(BASE, start_tags=("yard",)),
            transition_attributes=(
                TransitionAttributes(src_tag="yard", excluded_dst_tag="-", delay_s=300.0),
            ),
        ),
        "model.transition_attributes[0]",
    ),
    "load_costs": (
        with_vehicle(BASE, load_costs_per_kilometer={"boxes": LoadCost(2, 0.1, 0.5)}),
        "model.vehicles[1].load_limits[boxes].cost_per_kilometer",
    ),
    "pair_visit_demands": (
        with_shipment(
            BASE,
            Shipment(
                pickups=(dataclasses.replace(HERE, load_demands={"kg": 2}),),
                deliveries=BASE.shipments[1].deliveries,
                load_demands={"kg": 1},
            ),
        ),
        "model.shipments[2].deliveries[0].load_demands",
    ),
}


PYVRP_EXPRESSES = {"allowed_vehicles", "soft_time_windows"}
"""Features the PyVRP backend expresses (the rest is :data:`ORTOOLS_ONLY`)."""


def test_every_feature_has_an_ortools_only_example():
    assert set(ORTOOLS_ONLY) == set(FEATURES) - PYVRP_EXPRESSES
    assert PYVRP_EXPRESSES.isdisjoint(UNSUPPORTED)


@pytest.mark.parametrize("feature", sorted(ORTOOLS_ONLY))
def test_auto_picks_ortools_for_a_feature_pyvrp_lacks_and_says_why(feature):
    model, path = ORTOOLS_ONLY[feature]
    choice = choose_backend(problem_of(model), "auto")
    assert choice.name == "ortools"
    assert path in choice.reason
    assert FEATURES[feature] in choice.reason
    solution = solve_checked(model, time_limit_s=1.0)
    assert solution.backend == "ortools"
    assert path in solution.backend_reason


@pytest.mark.parametrize("feature", ["breaks", "allowed_vehicle_classes"])
def test_requesting_pyvrp_for_an_unsupported_feature_names_the_field(feature):
    model, path = ORTOOLS_ONLY[feature]
    with pytest.raises(InvalidModelError) as info:
        solve(model, SolveOptions(time_limit_s=1.0, backend="pyvrp"))
    assert [f"model.{v.field}" for v in info.value.violations] == [path]
    assert "pyvrp" in info.value.violations[0].description


def test_auto_picks_pyvrp_when_it_supports_the_model():
    solution = solve_checked(city_model(30, pairs=3, cost_per_hour=20.0), time_limit_s=1.0)
    assert solution.backend == "pyvrp"
    assert solution.backend_reason == "auto: supports every feature of the model"
    assert not solution.skipped_shipments


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="unknown backend 'gurobi'"):
        solve(BASE, SolveOptions(backend="gurobi"))


def test_ortools_search_options_select_ortools_under_auto_and_are_refused_by_pyvrp():
    options = SolveOptions(time_limit_s=0.5, first_solution_strategy="SAVINGS")
    assert solve(BASE, options).backend == "ortools"
    with pytest.raises(ValueError, match="apply to backend 'ortools'"):
        solve(BASE, dataclasses.replace(options, backend="pyvrp"))


@pytest.mark.parametrize("backend", ["pyvrp", "ortools"])
def test_both_backends_serve_the_same_model_feasibly(backend):
    model = city_model(40, pairs=4, cost_per_hour=30.0, seed=3)
    solution = solve_checked(
        model, time_limit_s=2.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME, backend=backend
    )
    assert solution.backend == backend
    assert solution.metrics.skipped_mandatory_shipment_count == 0
    # Optional shipments are skipped only when serving them costs more than their penalty.
    assert solution.metrics.total_cost > 0


def test_pyvrp_routes_are_not_worse_than_ortools_on_a_vrptw():
    """The reason auto prefers PyVRP, on a small instance at equal time."""
    model = city_model(80, seed=7, n_vehicles=8)
    costs = {}
    for backend in ("pyvrp", "ortools"):
        costs[backend] = solve_checked(
            model,
            time_limit_s=3.0,
            search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
            backend=backend,
        ).metrics.total_cost
    assert costs["pyvrp"] <= costs["ortools"] * 1.001


def test_mandatory_shipments_pyvrp_cannot_serve_fall_back_to_ortools():
    """Two mandatory deliveries whose windows one vehicle cannot both meet: PyVRP (which needs
    every mandatory shipment served) gives up; OR-Tools skips one and reports it."""
    depot = LatLng(48.85, 2.35)
    far = [LatLng(48.85, 2.45), LatLng(48.85, 2.25)]  # 7 km either side, 12 min at 10 m/s
    model = ShipmentModel(
        shipments=tuple(
            Shipment(
                deliveries=(
                    VisitRequest(arrival_location=p, time_windows=(TimeWindow(600.0, 900.0),)),
                )
            )
            for p in far
        ),
        vehicles=(Vehicle(start_location=depot, end_location=depot, cost_per_kilometer=1.0),),
        global_end_time=DAY,
    )
    solution = solve_checked(model, time_limit_s=2.0)
    assert solution.backend == "ortools"
    assert "pyvrp found no solution serving every mandatory shipment" in solution.backend_reason
    assert solution.metrics.skipped_mandatory_shipment_count == 1


@pytest.mark.parametrize("backend", ["pyvrp", "ortools"])
def test_same_seed_and_iteration_limit_give_the_same_routes(backend):
    model = city_model(40, seed=5, pairs=2)
    options = {"backend": backend, "seed": 7, "iteration_limit": 300}
    first = solve_checked(model, time_limit_s=20.0, **options)
    second = solve_checked(model, time_limit_s=20.0, **options)
    assert [r.visits for r in first.routes] == [r.visits for r in second.routes]
    assert first.metrics.total_cost == second.metrics.total_cost


def test_pyvrp_seeds_differ():
    """Seeds matter (else a portfolio of seeds would be pointless)."""
    model = city_model(60, seed=11)
    routes = {
        tuple(
            tuple(v.shipment_index for v in r.visits)
            for r in solve_checked(
                model, time_limit_s=20.0, backend="pyvrp", seed=seed, iteration_limit=200
            ).routes
        )
        for seed in range(4)
    }
    assert len(routes) > 1


@pytest.mark.parametrize("backend", ["auto", "ortools"])
def test_portfolio_keeps_the_best_member(backend):
    model = city_model(40, seed=2, pairs=2)
    single = (
        [
            solve_checked(
                model, time_limit_s=20.0, backend=backend, seed=s, iteration_limit=150
            ).metrics.total_cost
            for s in range(2)
        ]
        if backend == "auto"
        else []
    )
    portfolio = solve_checked(
        model,
        time_limit_s=20.0,
        backend=backend,
        solver_processes=2,
        seed=0,
        iteration_limit=150,
    )
    assert "best of 2 parallel searches" in portfolio.backend_reason
    if single:  # deterministic members: the portfolio returns the better of the two
        assert portfolio.metrics.total_cost == pytest.approx(min(single))


@pytest.mark.parametrize("iteration_limit", [None, 100])
def test_auto_solver_processes_uses_the_cores_of_the_process(monkeypatch, iteration_limit):
    solve_module = sys.modules["engine.solve"]  # the package's ``engine.solve`` is the function
    monkeypatch.setattr(solve_module, "available_cores", lambda: 3)
    model = city_model(30, seed=5)
    solution = solve_checked(model, solver_processes=0, iteration_limit=iteration_limit)
    assert solution.solver_processes == 3
    assert "best of 3 parallel searches" in solution.backend_reason
    monkeypatch.setattr(solve_module, "available_cores", lambda: 1)
    single = solve_checked(model, solver_processes=0)
    assert single.solver_processes == 1
    assert "parallel" not in single.backend_reason


@pytest.mark.parametrize("backend", ["pyvrp", "ortools"])
def test_progress_reports_each_improvement(backend):
    events = []
    solve(
        city_model(60, seed=9),
        SolveOptions(
            time_limit_s=1.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME, backend=backend
        ),
        on_progress=events.append,
    )
    assert len(events) >= 2
    assert [e.solutions for e in events] == list(range(1, len(events) + 1))
    objectives = [e.objective for e in events]
    assert objectives == sorted(objectives, reverse=True)


# -- warm start of OR-Tools from PyVRP (engine.warmstart) ---------------------------------------


def test_nearby_model_drops_or_restricts_what_pyvrp_lacks():
    model, _ = ORTOOLS_ONLY["breaks"]
    nearby = nearby_model(model)
    assert all(not v.break_requests for v in nearby.vehicles)
    # the vehicle with the 10-minute break must be back 10 minutes earlier
    assert nearby.vehicles[1].end_time_windows[0].end_time == 12 * 3600 - 600.0
    assert nearby.vehicles[0].end_time_windows == model.vehicles[0].end_time_windows
    windows = nearby_model(ORTOOLS_ONLY["pair_multiple_time_windows"][0]).shipments[2]
    assert windows.deliveries[0].time_windows == (TimeWindow(0.0, 3600.0),)  # the widest
    two = (TimeWindow(0.0, 3600.0), TimeWindow(7200.0, 9000.0))
    single = with_shipment(
        BASE, Shipment(deliveries=(dataclasses.replace(HERE, time_windows=two),))
    )
    assert nearby_model(single).shipments[2].deliveries[0].time_windows == two  # PyVRP's copies
    soft = nearby_model(ORTOOLS_ONLY["pair_soft_time_windows"][0]).shipments[2]
    assert not any(w.is_soft for w in soft.deliveries[0].time_windows)
    late = (TimeWindow(soft_end_time=3600.0, cost_per_hour_after_soft_end_time=5),)
    single = with_shipment(
        BASE, Shipment(deliveries=(dataclasses.replace(HERE, time_windows=late),))
    )
    assert nearby_model(single).shipments[2].deliveries[0].time_windows == late  # copies
    pair = nearby_model(ORTOOLS_ONLY["pair_alternatives"][0]).shipments[2]
    assert (len(pair.pickups), len(pair.deliveries)) == (1, 1)
    allowed = nearby_model(ORTOOLS_ONLY["allowed_vehicle_classes"][0]).shipments
    assert all(s.allowed_vehicle_indices == () for s in allowed)
    for feature in ORTOOLS_ONLY:
        if feature in WARM_STARTABLE:
            problem = problem_of(nearby_model(ORTOOLS_ONLY[feature][0]))
            assert choose_backend(problem, "auto").name == "pyvrp", feature


def test_nearby_model_splits_the_fleet_by_incompatible_types():
    """Incompatible types get disjoint parts of the fleet in the nearby model (in proportion
    to their shipments), compatible and untyped shipments keep theirs, a shipment's own
    allowed vehicles are narrowed to its part, and the rule itself and a break frequency rule
    leave the model (PyVRP has neither)."""
    types = ["a"] * 4 + ["b"] * 2 + ["c", ""]
    shipments = [Shipment(deliveries=(VisitRequest(tags=("p1",)),), shipment_type=t) for t in types]
    shipments[1] = dataclasses.replace(shipments[1], allowed_vehicle_indices=(0, 1))
    shipments[5] = dataclasses.replace(shipments[5], allowed_vehicle_indices=(0, 1))
    vehicle = Vehicle(
        start_tags=("p0",),
        end_tags=("p0",),
        break_requests=(BreakRequest(3600.0, 7200.0, 600.0),),
        break_frequency_constraints=(FrequencyConstraint(600.0, 4 * 3600.0),),
    )
    dist = np.array([[0.0, 60.0], [60.0, 0.0]])
    model = dataclasses.replace(
        matrix_model(dist, ("p0", "p1"), shipments, [vehicle] * 6),
        shipment_type_incompatibilities=(
            ShipmentTypeIncompatibility(
                ("a", "b"), IncompatibilityMode.NOT_PERFORMED_BY_SAME_VEHICLE
            ),
            ShipmentTypeIncompatibility(
                ("a", "c"), IncompatibilityMode.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY
            ),
        ),
    )
    # a (4 shipments) is coloured first; b and c (compatible) share the other colour (3).
    a, bc = (0, 2, 4), (1, 3, 5)
    assert type_parts(model) == [a] * 4 + [bc] * 3 + [None]
    nearby = nearby_model(model, keep_allowed=True)
    got = [s.allowed_vehicle_indices for s in nearby.shipments]
    assert got == [a, (0,), a, a, bc, (1,), bc, ()]
    assert nearby.shipment_type_incompatibilities == ()
    assert all(not v.break_frequency_constraints for v in nearby.vehicles)
    # Without keep_allowed (too many vehicle classes for PyVRP) nothing is split.
    assert all(not s.allowed_vehicle_indices for s in nearby_model(model).shipments)
    # No incompatible pair among the shipments, or fewer vehicles than colours: no parts.
    only_a = dataclasses.replace(
        model, shipments=tuple(s for s in model.shipments if s.shipment_type in ("a", ""))
    )
    assert type_parts(only_a) is None
    assert type_parts(dataclasses.replace(model, vehicles=(vehicle,))) is None


def test_nearby_timeline_takes_the_break_when_a_frequency_rule_needs_it():
    """A break frequency rule (no 75 minutes without a 10-minute break): the break in
    [1 h, 2 h] is taken by 75 min minus the longest visit (5 min) after the earliest start,
    not at its window's middle, and routes end within 75 min after it; a rule no break
    satisfies (a 20-minute break) bounds the whole route instead."""
    rule = (BreakRequest(3600.0, 7200.0, 600.0),)
    vehicle = Vehicle(
        start_tags=("p0",),
        end_tags=("p0",),
        break_requests=rule,
        break_frequency_constraints=(FrequencyConstraint(600.0, 4500.0),),
    )
    visit = VisitRequest(tags=("p1",), duration_s=300.0)
    dist = np.array([[0.0, 60.0], [60.0, 0.0]])
    model = matrix_model(dist, ("p0", "p1"), [Shipment(deliveries=(visit,))], [vehicle] * 2)
    timeline = Timeline.of(model)
    assert timeline is not None
    at = model.global_start_time + 4500.0 - 300.0
    assert timeline.breaks == ((at, 600.0),)
    assert timeline.close == at + 600.0 + 4500.0
    for v in nearby_model(model).vehicles:
        assert v.end_time_windows == (TimeWindow(end_time=at + 4500.0),)  # cut by the break
        assert not v.break_frequency_constraints
    # The earliest start is the first vehicle's: one without start windows starts at the
    # global start, however late the others' windows open.
    late = dataclasses.replace(vehicle, start_time_windows=(TimeWindow(start_time=3000.0),))
    mixed_starts = Timeline.of(dataclasses.replace(model, vehicles=(late, vehicle)))
    assert mixed_starts is not None
    assert mixed_starts.breaks == ((at, 600.0),)
    longer = dataclasses.replace(
        vehicle, break_frequency_constraints=(FrequencyConstraint(1200.0, 4500.0),)
    )
    bounded = nearby_model(dataclasses.replace(model, vehicles=(longer, longer)))
    assert [v.route_duration_limit_s for v in bounded.vehicles] == [4500.0 - 600.0] * 2


def test_nearby_model_cuts_a_shared_break_out_of_the_timeline():
    # Every vehicle takes a 10-minute break starting in [1 h, 2 h]: in the nearby model it is
    # taken at 1.5 h and the timeline after it is 10 minutes shorter, so windows after the
    # break come 10 minutes earlier, those before stay, and one across it closes earlier.
    rule = (BreakRequest(3600.0, 7200.0, 600.0),)
    shift = (TimeWindow(end_time=12 * 3600.0),)
    vehicle = Vehicle(
        start_tags=("p0",),
        end_tags=("p0",),
        end_time_windows=shift,
        route_duration_limit_s=8 * 3600.0,
        break_requests=rule,
    )
    windows = [
        TimeWindow(0.0, 3600.0),
        TimeWindow(6000.0, 9000.0, soft_end_time=8000.0, cost_per_hour_after_soft_end_time=1.0),
        TimeWindow(5000.0, 5700.0),
    ]
    shipments = [
        Shipment(deliveries=(VisitRequest(tags=("p1",), time_windows=(w,)),)) for w in windows
    ]
    dist = np.array([[0.0, 60.0], [60.0, 0.0]])
    model = matrix_model(dist, ("p0", "p1"), shipments, [vehicle, vehicle])
    nearby = nearby_model(model)
    got = [s.deliveries[0].time_windows[0] for s in nearby.shipments]
    assert got[0] == windows[0]
    assert (got[1].start_time, got[1].end_time, got[1].soft_end_time) == (5400.0, 8400.0, 7400.0)
    assert (got[2].start_time, got[2].end_time) == (5000.0, 5400.0)
    for v in nearby.vehicles:
        assert not v.break_requests
        assert v.end_time_windows == (TimeWindow(end_time=12 * 3600.0 - 600.0),)
        assert v.route_duration_limit_s == 8 * 3600.0 - 600.0
    # An end window open to the horizon closes at the horizon's cut time.
    open_end = dataclasses.replace(vehicle, end_time_windows=(TimeWindow(start_time=0.0),))
    cut = nearby_model(dataclasses.replace(model, vehicles=(open_end,)))
    assert cut.vehicles[0].end_time_windows == (
        TimeWindow(start_time=0.0, end_time=model.global_end_time - 600.0),
    )
    # Vehicles with different breaks: the timeline stays, each end window closes earlier.
    other = dataclasses.replace(vehicle, break_requests=(BreakRequest(0.0, 3600.0, 600.0),))
    mixed = nearby_model(matrix_model(dist, ("p0", "p1"), shipments, [vehicle, other]))
    assert [s.deliveries[0].time_windows[0] for s in mixed.shipments] == windows
    assert mixed.vehicles[1].end_time_windows == (TimeWindow(end_time=12 * 3600.0 - 600.0),)
    # Two breaks: both cut out, each from its middle on.
    two = (BreakRequest(3600.0, 7200.0, 600.0), BreakRequest(18000.0, 21600.0, 900.0))
    both = dataclasses.replace(vehicle, break_requests=two)
    assert Timeline.of(dataclasses.replace(model, vehicles=(vehicle, both))) is None
    timeline = Timeline.of(dataclasses.replace(model, vehicles=(both,)))
    assert timeline is not None
    # (a time inside a break is the break's start: the break has no length in the nearby model)
    assert [timeline(t) for t in (5000.0, 5700.0, 10000.0, 19800.0, 20000.0, 30000.0)] == [
        5000.0,
        5400.0,
        9400.0,
        19200.0,
        19200.0,
        28500.0,
    ]


@pytest.mark.parametrize("allowed", [(0,), (3,)])
def test_initial_routes_keep_visits_off_vehicles_they_may_not_use(allowed):
    # The nearby model keeps allowed_vehicle_indices (PyVRP expresses them), so every visit
    # is on a vehicle it may use, whichever vehicles those are (the first or the last).
    model = city_model(30, seed=8)
    restricted = dict.fromkeys(range(0, 30, 5), allowed)
    model = dataclasses.replace(
        model,
        shipments=tuple(
            dataclasses.replace(s, allowed_vehicle_indices=restricted.get(i, ()))
            for i, s in enumerate(model.shipments)
        ),
    )
    problem = problem_of(model)
    stop = StopCriterion(deadline=time.monotonic() + 1.0)
    routes = pyvrp_initial_routes(problem, stop)
    assert routes is not None
    shipment_of = problem.stops.shipment
    for v, route in enumerate(routes):
        for stop_index in route:
            ok = restricted.get(int(shipment_of[stop_index]))
            assert ok is None or v in ok
    assert sorted(i for route in routes for i in route) == list(range(30))  # none taken out


def _bigger(feature: str) -> ShipmentModel:
    """A 40-shipment version of the ORTOOLS_ONLY model of ``feature``."""
    base = city_model(40, seed=2)
    here = base.shipments[2].deliveries[0]
    if feature == "breaks":
        return with_vehicle(base, break_requests=(BreakRequest(3600.0, 7200.0, 600.0),))
    if feature == "shared_breaks":  # every vehicle the same break: the nearby model's timeline
        rule = (BreakRequest(3600.0, 7200.0, 600.0),)
        vehicles = tuple(dataclasses.replace(v, break_requests=rule) for v in base.vehicles)
        return dataclasses.replace(base, vehicles=vehicles)
    if feature == "allowed_vehicle_classes":
        return many_allowed_classes(base)
    if feature == "break_frequency":  # a driver-hours rule: no 4 h without a 10-minute break
        rule = (BreakRequest(3600.0, 4 * 3600.0, 600.0),)
        hours = (FrequencyConstraint(600.0, 4 * 3600.0),)
        vehicles = tuple(
            dataclasses.replace(v, break_requests=rule, break_frequency_constraints=hours)
            for v in base.vehicles
        )
        return dataclasses.replace(base, vehicles=vehicles)
    if feature == "shipment_type_incompatibilities":  # the nearby model splits the fleet
        types = ("a", "", "b", "")
        return dataclasses.replace(
            base,
            shipments=tuple(
                dataclasses.replace(s, shipment_type=types[i % 4])
                for i, s in enumerate(base.shipments)
            ),
            shipment_type_incompatibilities=(
                ShipmentTypeIncompatibility(
                    ("a", "b"), IncompatibilityMode.NOT_PERFORMED_BY_SAME_VEHICLE
                ),
            ),
        )
    windows = (TimeWindow(0.0, 3600.0), TimeWindow(7200.0, 9000.0))
    return with_shipment(
        base,
        Shipment(
            pickups=(base.shipments[3].deliveries[0],),
            deliveries=(dataclasses.replace(here, time_windows=windows),),
        ),
    )


@pytest.mark.parametrize(
    "feature",
    [
        "breaks",
        "shared_breaks",
        "allowed_vehicle_classes",
        "pair_multiple_time_windows",
        "break_frequency",
        "shipment_type_incompatibilities",
    ],
)
def test_auto_warm_starts_ortools_and_says_so(feature):
    model = _bigger(feature)
    solution = solve_checked(
        model, time_limit_s=2.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME
    )
    assert solution.backend == "ortools"
    assert "warm start: started from pyvrp's routes" in solution.backend_reason
    # ... and how OR-Tools took them: whole, or with the visits it left to its search
    taken = (
        "OR-Tools took them as they are",
        "visits left to OR-Tools' search",
        "OR-Tools completed them into other routes",
    )
    assert any(t in solution.backend_reason for t in taken), solution.backend_reason
    assert solution.metrics.skipped_mandatory_shipment_count == 0
    cold = solve_checked(
        model, time_limit_s=1.0, warm_start=False, search_mode=SearchMode.RETURN_FAST
    )
    assert "warm start" not in cold.backend_reason


def test_precheck_returns_a_new_problem_and_leaves_the_given_one_alone() -> None:
    model = city_model(4, n_vehicles=2, windows=False)
    shipments = list(model.shipments)
    shipments[0] = dataclasses.replace(shipments[0], load_demands={"boxes": 99})
    shipments[1] = dataclasses.replace(shipments[1], allowed_vehicle_indices=(1,))
    model = dataclasses.replace(model, shipments=tuple(shipments))
    stops = build_stops(model)
    travel = build_travel_matrices(model, stops, geodesic_meters_per_second=10.0)
    given = Problem.build(model, stops, travel)
    checked, skipped = precheck(given)
    assert checked is not given
    assert given.routable == [True] * 4
    assert given.allowed_vehicles == [(0, 1)] * 4
    assert checked.routable == [False, True, True, True]
    assert checked.allowed_vehicles == [(), (1,), (0, 1), (0, 1)]
    assert set(skipped) == {0}


def test_precheck_groups_identical_vehicles_but_reports_each_vehicle() -> None:
    """Vehicles are checked once per profile (load limits, shift, ...), yet every vehicle gets
    its own verdict and the example vehicle of a reason is the first one with that reason."""
    base = city_model(6, n_vehicles=5, windows=False)
    small = dataclasses.replace(base.vehicles[0], load_limits={"boxes": 1})
    short = dataclasses.replace(base.vehicles[0], end_time_windows=(TimeWindow(end_time=60.0),))
    big = base.vehicles[0]
    shipments = list(base.shipments)
    shipments[0] = dataclasses.replace(shipments[0], load_demands={"boxes": 3})
    shipments[1] = dataclasses.replace(shipments[1], load_demands={"boxes": 99})
    shipments[2] = dataclasses.replace(
        shipments[2], load_demands={"boxes": 2}, allowed_vehicle_indices=(1, 3)
    )
    shipments[3] = dataclasses.replace(shipments[3], load_demands={"boxes": 1})
    model = dataclasses.replace(
        base, vehicles=(big, small, big, small, short), shipments=tuple(shipments)
    )
    problem = problem_of(model)
    assert problem.allowed_vehicles[0] == (0, 2)  # too big for 1, 3; 4's shift is too short
    assert problem.allowed_vehicles[1] == ()
    assert problem.allowed_vehicles[2] == ()
    assert problem.allowed_vehicles[3] == (0, 1, 2, 3)
    again, skipped = precheck(problem)
    assert again.allowed_vehicles == problem.allowed_vehicles
    assert set(skipped) == {1, 2}
    (capacity,) = skipped[1][:1]
    assert capacity.code == SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY
    assert (capacity.example_vehicle_index, capacity.example_exceeded_capacity_type) == (0, "boxes")
    codes = {r.code: r.example_vehicle_index for r in skipped[2]}
    assert codes[SkipReasonCode.VEHICLE_NOT_ALLOWED] == 0
    assert codes[SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY] == 1


@pytest.mark.parametrize("break_on_route", [False, True])
def test_an_infeasible_initial_route_keeps_the_shipments_that_fit(break_on_route):
    # Route A (x=10), B (20), C (30, window closes at 25), D (40): C cannot be reached in
    # that order, so the route is infeasible on its own; the warm start keeps A, B and D (the
    # search used to start that vehicle empty). With a break, the route's schedule needs it
    # placed too.
    from tests.builders import at, depot_vehicle, line_model

    late = (TimeWindow(0.0, 25.0),)
    breaks = (BreakRequest(0.0, 1000.0, 5.0),) if break_on_route else ()
    model = line_model(
        {"depot": 0, "A": 10, "B": 20, "C": 30, "D": 40},
        [
            Shipment(deliveries=(at("A"),)),
            Shipment(deliveries=(at("B"),)),
            Shipment(deliveries=(at("C", time_windows=late),)),
            Shipment(deliveries=(at("D"),)),
        ],
        [depot_vehicle(cost_per_kilometer=1000.0, break_requests=breaks)],
        global_end_time=1000.0,
    )
    problem = problem_of(model)
    backend = OrToolsBackend(solution_limit=1)  # the first solution: the restored routes
    stop_of = {int(problem.stops.shipment[i]): i for i in range(problem.stops.num_visits)}
    backend.initial_routes = [[stop_of[s] for s in range(4)]]
    plans = backend.solve(problem, StopCriterion(deadline=time.monotonic() + 30.0))
    kept = [int(problem.stops.shipment[i]) for i in plans[0].stops]
    assert kept == [0, 1, 3]
    assert backend.initial_outcome == (
        "1 routes infeasible with every constraint, 1 of their visits left to OR-Tools' search"
    )
