"""The warm start under committed stops (engine.residual): PyVRP on the residual problem.

Each committed vehicle starts where its committed visits end, with what they leave of its
limits, and an anchor makes it pay its way back even when nothing follows them. Every
solution goes through the independent checker, which verifies the committed visits."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from engine import SearchMode, Shipment, SolveOptions, solve
from engine.backends import get_backend
from engine.backends.base import StopCriterion
from engine.injected import resolve, with_headings
from engine.model import (
    ConstraintRelaxation,
    InjectedRoute,
    InjectedSolutionConstraint,
    InjectedVisit,
    Relaxation,
    RelaxationLevel,
    ShipmentModel,
    TimeWindow,
)
from engine.precheck import precheck
from engine.problem import Problem
from engine.reoptimisation import constrain
from engine.residual import Residual, committed_prefixes, residual_problem
from engine.travel import build_stops, build_travel_matrices
from engine.warmstart import _nearby_problem, pyvrp_initial_routes
from tests.builders import at, depot_vehicle, matrix_model
from tests.checker import check_solution

L = RelaxationLevel
TAGS = ("D", "C", "X", "Y")
# D the depot; C far from it (the committed stop); X on a detour from C, Y near D.
DIST = np.array(
    [
        [0.0, 100.0, 70.0, 10.0],
        [100.0, 0.0, 150.0, 100.0],
        [70.0, 150.0, 0.0, 70.0],
        [10.0, 100.0, 70.0, 0.0],
    ]
)


def _model(
    relaxations: tuple[Relaxation, ...],
    visits: tuple[str, ...] = ("C",),
    demands: tuple[int, ...] = (0, 0, 0),
    capacity: int = 10,
    **kwargs: object,
) -> ShipmentModel:
    """Two vehicles from D; shipments at C, X and Y; vehicle 0 injected with ``visits``."""
    shipments = [
        Shipment(deliveries=(at(t),), label=t, load_demands={"kg": q})
        for t, q in zip("CXY", demands, strict=True)
    ]
    vehicles = [
        depot_vehicle("D", cost_per_kilometer=1000.0, load_limits={"kg": capacity}),
        depot_vehicle("D", cost_per_kilometer=1000.0, load_limits={"kg": capacity}),
    ]
    at_, t, injected = 0, 0.0, []
    for name in visits:
        t += DIST[at_, TAGS.index(name)]
        at_ = TAGS.index(name)
        injected.append(InjectedVisit("CXY".index(name), False, 0, t))
    route = InjectedRoute(0, tuple(injected), 0.0, t + DIST[at_, 0])
    constraint = InjectedSolutionConstraint(
        (route,), (), (ConstraintRelaxation(relaxations),) if relaxations else ()
    )
    return matrix_model(
        DIST, TAGS, shipments, vehicles, injected_solution_constraint=constraint, **kwargs
    )


COMMIT_FIRST = (
    Relaxation(L.RELAX_VISIT_TIMES_AFTER_THRESHOLD),
    Relaxation(L.RELAX_ALL_AFTER_THRESHOLD, threshold_visit_count=2),
)
"""The first visit committed (times free), the rest free: the benchmark's rule."""


def _problem(model: ShipmentModel) -> Problem:
    """The problem as :func:`engine.solve` hands it to a backend (constraint applied)."""
    stops = build_stops(model)
    travel = build_travel_matrices(model, stops, geodesic_meters_per_second=10.0)
    problem, reasons = precheck(Problem.build(model, stops, travel))
    problem, _, locks = constrain(problem, reasons, with_headings(resolve(model), problem))
    assert not locks
    return problem


def _stop(problem: Problem, shipment: int) -> int:
    return problem.stops.delivery_stops[shipment][0]


def test_prefix_shapes() -> None:
    committed = committed_prefixes(_problem(_model(COMMIT_FIRST, ("C", "Y"))))
    assert committed is not None
    assert [p.shipment for p in committed.prefixes[0]] == [0]
    assert committed.held == {0}
    # times fixed as well (Google's default before any threshold): still a prefix
    fixed = (Relaxation(L.RELAX_ALL_AFTER_THRESHOLD, threshold_visit_count=2),)
    committed = committed_prefixes(_problem(_model(fixed, ("C", "Y"))))
    assert committed is not None
    assert [p.shipment for p in committed.prefixes[0]] == [0]
    # kept on the vehicle in any order: no prefix, OR-Tools starts from the injected routes
    any_order = (Relaxation(L.RELAX_VISIT_TIMES_AND_SEQUENCE_AFTER_THRESHOLD),)
    assert committed_prefixes(_problem(_model(any_order, ("C", "Y")))) is None
    # first-solution routes beside the constraint: none either
    first = (InjectedRoute(1, (InjectedVisit(2, False, 0),)),)
    model = _model(COMMIT_FIRST, ("C", "Y"), injected_first_solution_routes=first)
    assert committed_prefixes(_problem(model)) is None


def _residual(model: ShipmentModel) -> tuple[Problem, Residual]:
    problem = _problem(model)
    committed = committed_prefixes(problem)
    assert committed is not None
    nearby, index = _nearby_problem(problem, keep_allowed=True)
    residual = residual_problem(problem, nearby, index, committed, lambda t: t)
    assert residual is not None
    return problem, residual


def test_the_anchor_is_reachable_from_its_vehicle_only() -> None:
    problem, residual = _residual(_model(COMMIT_FIRST))
    rp = residual.problem
    (anchor,) = residual.anchors
    start = rp.stops.vehicle_start(0)
    assert rp.reachable(0, start, anchor)
    others = [i for i in range(rp.stops.size) if i not in (start, anchor)]
    assert not any(rp.reachable(v, i, anchor) for v in (0, 1) for i in others)
    # the committed shipment is out, the anchor in; vehicle 0 leaves C at the earliest
    assert rp.routable == [False, True, True, True]
    assert rp.windows[start] == ((100, 100),)
    assert int(residual.original_stop[start]) == _stop(problem, 0)


def test_an_empty_committed_vehicle_still_drives_back() -> None:
    """X costs vehicle 0 a detour of 120 after C (C-X-D 220 against C-D 100); a fresh vehicle
    140 (D-X-D). Without the anchor PyVRP saw 220 against 140 and sent vehicle 1."""
    problem, residual = _residual(_model(COMMIT_FIRST))
    stop = StopCriterion(deadline=float("inf"), search_mode=SearchMode.RETURN_FAST)
    plans = get_backend("pyvrp", iteration_limit=200).solve(residual.problem, stop)
    routes = residual.routes(plans, 2)
    assert _stop(problem, 1) in routes[0]
    assert routes[0][0] == _stop(problem, 0)
    assert _stop(problem, 1) not in routes[1]


def test_committed_loads_narrow_the_limit() -> None:
    """C's 6 kg are on board from the start: 4 kg are left for the rest of vehicle 0."""
    _, residual = _residual(_model(COMMIT_FIRST, demands=(6, 5, 3)))
    assert residual.problem.model.vehicles[0].load_limits == {"kg": 4}
    assert residual.problem.model.vehicles[1].load_limits == {"kg": 10}


def test_a_closed_route_takes_nothing_after_its_visits() -> None:
    """No relaxation: the route is fixed up to its end; its vehicle is out of the residual,
    for PyVRP too (which does not read ``ignore``), though it is the cheaper one."""
    model = _model((), ("C",))
    cheap = dataclasses.replace(model.vehicles[0], cost_per_kilometer=1.0)
    problem, residual = _residual(dataclasses.replace(model, vehicles=(cheap, model.vehicles[1])))
    assert residual.problem.model.vehicles[0].ignore
    assert not residual.anchors
    stop = StopCriterion(deadline=float("inf"), search_mode=SearchMode.RETURN_FAST)
    plans = get_backend("pyvrp", iteration_limit=200).solve(residual.problem, stop)
    routes = residual.routes(plans, 2)
    assert routes[0] == [_stop(problem, 0)]
    assert sorted(routes[1]) == sorted(_stop(problem, s) for s in (1, 2))


@pytest.mark.parametrize("visits", [("C",), ("C", "Y"), ("C", "X", "Y")])
def test_solve_keeps_the_committed_visits_and_warm_starts(visits: tuple[str, ...]) -> None:
    model = _model(COMMIT_FIRST, visits)
    solution = solve(model, SolveOptions(time_limit_s=2.0, solver_processes=1))
    check_solution(model, solution)  # the committed visit first on vehicle 0
    assert solution.routes[0].visits[0].shipment_index == 0
    assert "warm start: started from pyvrp's routes" in solution.backend_reason
    # C-X-D and Y on either vehicle: 100 + 150 + 70, Y on the way (C-Y-D 110 costs 10 more)
    assert solution.metrics.total_cost == pytest.approx(320.0 + min(10.0, 20.0))


def test_warm_start_routes_begin_with_the_committed_visits() -> None:
    model = _model(COMMIT_FIRST, ("C", "Y"))
    problem = _problem(model)
    stop = StopCriterion(deadline=float("inf"), search_mode=SearchMode.RETURN_FAST)
    routes = pyvrp_initial_routes(problem, stop)
    assert routes is not None
    assert routes[0][0] == _stop(problem, 0)
    assert sorted(s for r in routes for s in r) == sorted(_stop(problem, s) for s in range(3))


def test_fixed_visit_times_delay_the_residual_start() -> None:
    """Before any threshold a visit keeps its time (Google's default level): the vehicle
    leaves C after its fixed time, not after the earliest arrival."""
    model = _model((Relaxation(L.RELAX_ALL_AFTER_THRESHOLD, threshold_visit_count=2),), ("C", "Y"))
    constraint = model.injected_solution_constraint
    assert constraint is not None
    route = constraint.routes[0]
    visits = (dataclasses.replace(route.visits[0], start_time=130.0), *route.visits[1:])
    routes = (dataclasses.replace(route, visits=visits),)
    model = dataclasses.replace(
        model, injected_solution_constraint=dataclasses.replace(constraint, routes=routes)
    )
    _, residual = _residual(model)
    rp = residual.problem
    assert rp.windows[rp.stops.vehicle_start(0)] == ((130, 130),)


def test_an_ignored_vehicle_s_route_leaves_the_others_a_residual() -> None:
    """Vehicle 1 is ignored and its injected route kept: Y is skipped (VEHICLE_IGNORED), and
    vehicle 0's committed C still gets its residual."""
    model = _model(COMMIT_FIRST, ("C",))
    constraint = model.injected_solution_constraint
    assert constraint is not None
    other = InjectedRoute(1, (InjectedVisit(2, False, 0, 10.0),), 0.0, 20.0)
    vehicles = (model.vehicles[0], dataclasses.replace(model.vehicles[1], ignore=True))
    model = dataclasses.replace(
        model,
        vehicles=vehicles,
        injected_solution_constraint=dataclasses.replace(
            constraint, routes=(*constraint.routes, other)
        ),
    )
    problem, residual = _residual(model)
    assert not problem.routable[2]
    assert residual.problem.routable == [False, True, False, True]
    # (an ignored vehicle is a feature the warm start does not take: OR-Tools from the routes)
    solution = solve(model, SolveOptions(time_limit_s=2.0, solver_processes=1))
    check_solution(model, solution)
    assert solution.routes[0].visits[0].shipment_index == 0


def _two_shipment_model(
    shipments: list[Shipment],
    routes: tuple[InjectedRoute, ...],
    relaxations: tuple[Relaxation, ...],
    **vehicle: Any,
) -> ShipmentModel:
    vehicles = [depot_vehicle("D", cost_per_kilometer=1000.0, **vehicle) for _ in range(2)]
    constraint = InjectedSolutionConstraint(routes, (), (ConstraintRelaxation(relaxations),))
    return matrix_model(DIST, TAGS, shipments, vehicles, injected_solution_constraint=constraint)


def test_a_pair_committed_through_a_later_alternative_falls_back() -> None:
    """The nearby model keeps a pair's first alternatives only: a pair committed through its
    second delivery alternative gets no residual (it raised a KeyError in the solve)."""
    shipments = [
        Shipment(pickups=(at("C"),), deliveries=(at("X"), at("Y"))),
        Shipment(deliveries=(at("X"),)),
    ]
    visits = (InjectedVisit(0, True, 0, 100.0), InjectedVisit(0, False, 1, 200.0))
    commit_two = (COMMIT_FIRST[0], Relaxation(L.RELAX_ALL_AFTER_THRESHOLD, threshold_visit_count=3))
    model = _two_shipment_model(shipments, (InjectedRoute(0, visits, 0.0, 210.0),), commit_two)
    solution = solve(model, SolveOptions(time_limit_s=1.0, solver_processes=1))
    check_solution(model, solution)
    assert "no residual problem" in solution.backend_reason


def test_committed_vehicles_alike_keep_their_own_starts() -> None:
    """Two identical vehicles, each with C-like visit committed: their residual vehicles must
    not be merged (the pre-check and PyVRP group vehicles that look alike)."""
    shipments = [Shipment(deliveries=(at("C"),)) for _ in range(2)]
    shipments += [Shipment(deliveries=(at("X"),)), Shipment(deliveries=(at("Y"),))]
    routes = tuple(
        InjectedRoute(v, (InjectedVisit(v, False, 0, 100.0),), 0.0, 200.0) for v in range(2)
    )
    model = _two_shipment_model(shipments, routes, COMMIT_FIRST)
    problem, residual = _residual(model)
    assert len(residual.anchors) == 2
    starts = {int(residual.original_stop[residual.problem.stops.vehicle_start(v)]) for v in (0, 1)}
    assert starts == {_stop(problem, 0), _stop(problem, 1)}
    solution = solve(model, SolveOptions(time_limit_s=1.0, solver_processes=1))
    check_solution(model, solution)
    assert "warm start: started from pyvrp's routes" in solution.backend_reason


def test_the_residual_leaves_when_the_committed_visits_end() -> None:
    """A duration limit counts the wait after the committed visits: the residual vehicle
    leaves C exactly when they end (not later, which PyVRP would not count), and its limit is
    what the committed part leaves of it, counted from the fixed start."""
    shipments = [Shipment(deliveries=(at(t),)) for t in "CXY"]
    fixed = (Relaxation(L.RELAX_ALL_AFTER_THRESHOLD, threshold_visit_count=2),)
    route = InjectedRoute(0, (InjectedVisit(0, False, 0, 300.0),), 200.0, 400.0)
    model = _two_shipment_model(shipments, (route,), fixed, route_duration_limit_s=400.0)
    _, residual = _residual(model)
    vehicle = residual.problem.model.vehicles[0]
    assert vehicle.start_time_windows == (TimeWindow(start_time=300.0, end_time=300.0),)
    assert vehicle.route_duration_limit_s == 300.0  # started at 200, left C at 300


def test_a_started_vehicle_with_nothing_committed_keeps_its_start() -> None:
    """Started at 50 (before the threshold time), its only visit free: the start stays."""
    shipments = [Shipment(deliveries=(at(t),)) for t in "CXY"]
    at_time = (Relaxation(L.RELAX_ALL_AFTER_THRESHOLD, threshold_time=100.0),)
    route = InjectedRoute(0, (InjectedVisit(2, False, 0, 150.0),), 50.0, 200.0)
    model = _two_shipment_model(shipments, (route,), at_time)
    problem = _problem(model)
    committed = committed_prefixes(problem)
    assert committed is not None
    assert committed.start_times == {0: 50.0}
    nearby, index = _nearby_problem(problem, keep_allowed=True)
    residual = residual_problem(problem, nearby, index, committed, lambda t: t)
    assert residual is not None
    assert residual.problem.windows[residual.problem.stops.vehicle_start(0)] == ((50, 50),)
