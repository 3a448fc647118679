"""Re-optimisation during the day (issue 15): injected_first_solution_routes,
injected_solution_constraint with Google's relaxation levels, refresh_details_routes and
interpret_injected_solutions_using_labels, in the engine. Every solution goes through the
independent checker, which verifies the kept visits; tiny models are compared with the brute
force, which honours the constraint on its own."""

from __future__ import annotations

import dataclasses

import pytest

from engine import Shipment, SolveOptions, solve
from engine.errors import InvalidModelError, NoSolutionError
from engine.model import (
    ConstraintRelaxation,
    InjectedRoute,
    InjectedSkippedShipment,
    InjectedSolutionConstraint,
    InjectedVisit,
    Relaxation,
    RelaxationLevel,
    ShipmentModel,
    TimeWindow,
)
from engine.solution import SkipReasonCode, Solution
from engine.validation import validate_model
from tests.bruteforce import brute_force_optimum
from tests.builders import at, depot_vehicle, line_model
from tests.checker import check_solution

POINTS = {"d0": 0.0, "d1": 30.0, "a": 5.0, "b": 25.0, "c": 12.0, "e": 18.0}
NAMES = "abce"


def _model(**kwargs: object) -> ShipmentModel:
    """Two vehicles on a line: vehicle 0 from d0 (open end), vehicle 1 from d1 and back; four
    optional deliveries (penalty 100), 1 per meter."""
    shipments = [Shipment(deliveries=(at(n),), label=n, penalty_cost=100.0) for n in NAMES]
    vehicles = [
        depot_vehicle("d0", open_end=True, cost_per_kilometer=1000.0, label="v0"),
        depot_vehicle("d1", cost_per_kilometer=1000.0, label="v1"),
    ]
    return line_model(POINTS, shipments, vehicles, **kwargs)  # type: ignore[arg-type]


def _route(v: int, names: str, start: float = 0.0) -> InjectedRoute:
    """Vehicle v serving ``names`` in order at the earliest times."""
    depot = POINTS["d0" if v == 0 else "d1"]
    x, t = depot, start
    visits = []
    for n in names:
        t += abs(POINTS[n] - x)
        x = POINTS[n]
        visits.append(InjectedVisit(NAMES.index(n), False, 0, t, shipment_label=n))
    end = t if v == 0 else t + abs(x - depot)
    return InjectedRoute(v, tuple(visits), start, end, vehicle_label=f"v{v}")


# The morning's plan, worse than the optimum (25): vehicle 0 goes to b then back to a,
# vehicle 1 serves c.
MORNING = (_route(0, "ba"), _route(1, "c"))


def _constrained(
    *relaxations: Relaxation, routes: tuple[InjectedRoute, ...] = MORNING, **kwargs: object
) -> ShipmentModel:
    groups = (ConstraintRelaxation(relaxations),) if relaxations else ()
    constraint = InjectedSolutionConstraint(routes, (), groups)
    return _model(injected_solution_constraint=constraint, **kwargs)


def _solve(model: ShipmentModel, **options: object) -> Solution:
    solution = solve(model, SolveOptions(time_limit_s=2.0, **options))  # type: ignore[arg-type]
    check_solution(model, solution)
    return solution


def _order(solution: Solution, v: int) -> list[int]:
    return [visit.shipment_index for visit in solution.routes[v].visits]


def test_each_relaxation_level_against_the_brute_force() -> None:
    """The lock changes the optimum as each level says: fully constrained (the routes as they
    are, closed: e skipped), times relaxed (b then a kept on vehicle 0, e appended), sequence
    relaxed (a and b stay on vehicle 0, in any order), all relaxed (the free optimum)."""
    free = brute_force_optimum(_model())
    assert _solve(_model()).metrics.total_cost == pytest.approx(free)
    costs = []
    for level in (None, *RelaxationLevel.__members__.values()):
        if level == RelaxationLevel.LEVEL_UNSPECIFIED:
            continue
        model = _constrained() if level is None else _constrained(Relaxation(level))
        solution = _solve(model)
        best = brute_force_optimum(model)
        assert solution.metrics.total_cost == pytest.approx(best), level
        costs.append(best)
        if level is None:
            assert _order(solution, 0) == [1, 0]
            assert _order(solution, 1) == [2]
            assert [v.start_time for v in solution.routes[0].visits] == [25.0, 45.0]
        elif level == RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD:
            assert _order(solution, 0)[:2] == [1, 0]
        elif level == RelaxationLevel.RELAX_VISIT_TIMES_AND_SEQUENCE_AFTER_THRESHOLD:
            assert {0, 1} <= set(_order(solution, 0))
    assert costs == sorted(costs, reverse=True)
    assert len(set(costs)) == 4
    assert costs[-1] == pytest.approx(free)


@pytest.mark.parametrize(
    "relaxation",
    [
        Relaxation(RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD, threshold_visit_count=2),
        Relaxation(RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD, threshold_time=30.0),
        Relaxation(
            RelaxationLevel.RELAX_VISIT_TIMES_AND_SEQUENCE_AFTER_THRESHOLD, threshold_visit_count=2
        ),
    ],
)
def test_thresholds_keep_the_visits_before_them(relaxation: Relaxation) -> None:
    """Visit 1 of vehicle 0 (b at 25 s) is before the threshold: kept with its time; what
    follows is relaxed."""
    model = _constrained(relaxation)
    solution = _solve(model)
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(model))
    assert _order(solution, 0)[0] == 1
    assert solution.routes[0].visits[0].start_time == 25.0


def test_relaxation_groups_by_vehicle() -> None:
    """vehicle_indices: vehicle 1 is free, vehicle 0 (no group, no default) fully constrained."""
    groups = (ConstraintRelaxation((Relaxation(RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD),), (1,)),)
    model = _model(injected_solution_constraint=InjectedSolutionConstraint(MORNING, (), groups))
    solution = _solve(model)
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(model))
    assert _order(solution, 0) == [1, 0]


def test_skipped_shipments_stay_skipped() -> None:
    constraint = InjectedSolutionConstraint(
        (),
        (InjectedSkippedShipment(0),),
        (ConstraintRelaxation((Relaxation(RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD),)),),
    )
    model = _model(injected_solution_constraint=constraint)
    solution = _solve(model)
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(model))
    (skipped,) = [s for s in solution.skipped_shipments if s.index == 0]
    assert skipped.reasons[0].code == SkipReasonCode.SKIPPED_IN_INJECTED_SOLUTION_CONSTRAINT


def test_a_closed_route_takes_nothing_else() -> None:
    """Shipment e may only use vehicle 0, whose route is fully constrained: skipped with
    VEHICLE_ROUTE_IS_FULLY_SEQUENCE_CONSTRAINED."""
    model = _constrained()
    shipments = list(model.shipments)
    shipments[3] = dataclasses.replace(shipments[3], allowed_vehicle_indices=(0,))
    model = dataclasses.replace(model, shipments=tuple(shipments))
    solution = _solve(model)
    (skipped,) = [s for s in solution.skipped_shipments if s.index == 3]
    assert skipped.reasons[0].code == SkipReasonCode.VEHICLE_ROUTE_IS_FULLY_SEQUENCE_CONSTRAINED
    assert skipped.reasons[0].example_vehicle_index == 0


def test_mid_day_new_orders_and_cancellations_keep_committed_visits() -> None:
    """A carrier's day: the morning plan of 12 deliveries; at 11:00 two orders not yet served
    are cancelled (ignored) and three new ones come in (added in front, so every index moves:
    routes are matched by labels). Visits before 11:00 keep vehicle, order and time; the
    cancelled ones are skipped, the new ones served."""
    hour = 3600.0
    xs = [-9.0, -7.0, -5.0, -3.0, -1.0, 1.0, 2.0, 4.0, 6.0, 8.0, 9.5, 11.0]
    points = {"depot": 0.0, **{f"o{i}": x for i, x in enumerate(xs)}}
    vehicles = [
        depot_vehicle(cost_per_kilometer=1.0, label=f"van{k}", cost_per_hour=0.0) for k in range(2)
    ]
    morning_orders = [
        Shipment(
            deliveries=(at(f"o{i}", duration_s=1800.0),),
            label=f"order-{i}",
        )
        for i in range(len(xs))
    ]
    scale = 600.0  # 1 unit of x = 10 minutes, 600 m
    morning = line_model(points, morning_orders, vehicles, scale=scale, global_start_time=0.0)
    plan = _solve(morning)
    committed_at = 11 * hour
    routes = tuple(
        InjectedRoute(
            vehicle_index=r.vehicle_index,
            vehicle_label=r.vehicle_label,
            vehicle_start_time=r.vehicle_start_time,
            vehicle_end_time=r.vehicle_end_time,
            visits=tuple(
                InjectedVisit(
                    v.shipment_index, v.is_pickup, v.visit_request_index, v.start_time,
                    shipment_label=v.shipment_label,
                )
                for v in r.visits
            ),
        )
        for r in plan.routes
    )  # fmt: skip
    done = {
        v.shipment_label: (r.vehicle_index, v.start_time)
        for r in plan.routes
        for v in r.visits
        if v.start_time < committed_at
    }
    later = [
        v.shipment_label for r in plan.routes for v in r.visits if v.start_time >= committed_at
    ]
    assert done
    assert len(later) >= 2
    cancelled = set(later[:2])
    new_points = {**points, "n0": -4.0, "n1": 3.0, "n2": 10.0}
    new_orders = [
        Shipment(deliveries=(at(f"n{k}", duration_s=1800.0),), label=f"new-{k}") for k in range(3)
    ]
    afternoon_orders = new_orders + [
        dataclasses.replace(s, ignore=s.label in cancelled) for s in morning_orders
    ]
    constraint = InjectedSolutionConstraint(
        routes,
        (),
        (
            ConstraintRelaxation(
                (
                    Relaxation(
                        RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD, threshold_time=committed_at
                    ),
                )
            ),
        ),
    )
    afternoon = line_model(
        new_points,
        afternoon_orders,
        vehicles,
        scale=scale,
        global_start_time=0.0,
        injected_solution_constraint=constraint,
        interpret_injected_solutions_using_labels=True,
    )
    replanned = _solve(afternoon)
    served = {
        v.shipment_label: (r.vehicle_index, v.start_time)
        for r in replanned.routes
        for v in r.visits
    }
    for label, (vehicle, start) in done.items():
        assert served[label] == (vehicle, start)
    for r in replanned.routes:
        kept = [v.shipment_label for v in r.visits if v.shipment_label in done]
        morning_order = [
            v.shipment_label
            for v in plan.routes[r.vehicle_index].visits
            if v.shipment_label in done
        ]
        assert kept == morning_order == [v.shipment_label for v in r.visits][: len(kept)]
    skipped = {s.label: s for s in replanned.skipped_shipments}
    assert set(skipped) == cancelled
    assert all(s.reasons[0].code == SkipReasonCode.SHIPMENT_IGNORED for s in skipped.values())
    assert {f"new-{k}" for k in range(3)} <= set(served)


def test_warm_start_is_where_the_search_starts() -> None:
    """With iteration_limit 1 (OR-Tools' first solution only), the answer is the injected
    routes themselves, visits left out of them skipped; without the limit, the optimum."""
    routes = (_route(0, "ba"), _route(1, "ce"))
    model = _model(injected_first_solution_routes=routes)
    solution = _solve(model, iteration_limit=1, solver_processes=1, backend="ortools")
    assert _order(solution, 0) == [1, 0]
    assert _order(solution, 1) == [2, 3]
    better = _solve(model, solver_processes=1, backend="ortools")
    assert better.metrics.total_cost < solution.metrics.total_cost
    assert better.metrics.total_cost == pytest.approx(brute_force_optimum(_model()))


def test_pyvrp_starts_from_the_injected_routes() -> None:
    """Without pickup-and-delivery shipments, auto runs PyVRP (measured better than OR-Tools
    from the same routes: benchmarks/RESULTS.md), started from the injected routes: the PyVRP
    solution it is given holds exactly their visits, on their vehicles' types."""
    from engine.backends.pyvrp.data import build_data, injected_initial_solution
    from tests.engine.test_backends import problem_of

    routes = (_route(0, "ba"), _route(1, "ce"))
    model = _model(injected_first_solution_routes=routes)
    solution = _solve(model, solver_processes=1)
    assert solution.backend == "pyvrp"
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(_model()))
    problem = problem_of(model)
    built = build_data(problem)
    initial = injected_initial_solution(built, problem)
    assert initial is not None
    started = sorted(
        (
            built.types[r.vehicle_type()].vehicles[0],
            [int(problem.stops.shipment[built.client_stop[a.idx]]) for a in r if a.is_client()],
        )
        for r in initial.routes()
    )
    assert started == [(0, [1, 0]), (1, [2, 3])]


def test_pyvrp_cannot_take_locks_or_warm_starts_with_pairs() -> None:
    pair = Shipment(pickups=(at("a"),), deliveries=(at("b"),), label="pair")
    with_pair = _model(injected_first_solution_routes=MORNING)
    with_pair = dataclasses.replace(with_pair, shipments=(*with_pair.shipments, pair))
    for model, path in (
        (with_pair, "injected_first_solution_routes"),
        (_constrained(), "injected_solution_constraint"),
    ):
        with pytest.raises(InvalidModelError) as info:
            solve(model, SolveOptions(time_limit_s=1.0, backend="pyvrp"))
        assert info.value.violations[0].field == path
    assert solve(with_pair, SolveOptions(time_limit_s=1.0)).backend == "ortools"


def test_refresh_equals_evaluating_the_routes() -> None:
    """refresh_details_routes with a solution's routes gives that solution back (times,
    transitions, loads, costs), without a search; routes without times get the earliest
    schedule."""
    model = _model()
    solved = _solve(model)
    routes = tuple(
        InjectedRoute(
            r.vehicle_index,
            tuple(
                InjectedVisit(v.shipment_index, v.is_pickup, v.visit_request_index, v.start_time)
                for v in r.visits
            ),
            r.vehicle_start_time,
            r.vehicle_end_time,
        )
        for r in solved.routes
        if r.visits
    )
    refreshed_model = _model(refresh_details_routes=routes)
    refreshed = _solve(refreshed_model)
    assert refreshed.backend == "refresh"
    assert refreshed.routes == solved.routes
    assert refreshed.metrics == solved.metrics
    untimed = tuple(
        dataclasses.replace(
            r,
            vehicle_start_time=None,
            vehicle_end_time=None,
            visits=tuple(dataclasses.replace(v, start_time=None) for v in r.visits),
        )
        for r in MORNING
    )
    again = _solve(_model(refresh_details_routes=untimed))
    assert _order(again, 0) == [1, 0]
    assert _order(again, 1) == [2]
    assert [v.start_time for v in again.routes[0].visits] == [25.0, 45.0]
    assert again.metrics.total_cost == pytest.approx(25 + 20 + 36 + 100)


def test_refresh_rejects_times_that_do_not_fit() -> None:
    route = _route(0, "ba")
    visits = (route.visits[0], dataclasses.replace(route.visits[1], start_time=30.0))
    model = _model(refresh_details_routes=(dataclasses.replace(route, visits=visits),))
    with pytest.raises(InvalidModelError) as info:
        solve(model, SolveOptions(time_limit_s=1.0))
    assert info.value.violations[0].field == "refresh_details_routes[0].visits[1].start_time"


def _fields(model: ShipmentModel) -> set[str]:
    return {v.field for v in validate_model(model)}


def test_bad_injected_solutions_name_the_field() -> None:
    visit = InjectedVisit(0, False, 0, 5.0)
    root = "injected_solution_constraint.routes"
    cases = [
        (
            _constrained(routes=(InjectedRoute(7, (), 0.0, 1.0),)),
            f"{root}[0].vehicle_index",
        ),
        (
            _constrained(routes=(InjectedRoute(0, (InjectedVisit(9, False, 0, 1.0),), 0.0, 9.0),)),
            f"{root}[0].visits[0].shipment_index",
        ),
        (
            _constrained(routes=(InjectedRoute(0, (InjectedVisit(0, True, 0, 1.0),), 0.0, 9.0),)),
            f"{root}[0].visits[0].visit_request_index",
        ),
        (
            _constrained(routes=(InjectedRoute(0, (visit, visit), 0.0, 9.0),)),
            f"{root}[0].visits[1].shipment_index",
        ),
        (
            _constrained(routes=(InjectedRoute(0, (visit,), 0.0, 1.0),)),
            f"{root}[0].vehicle_end_time",
        ),
        (
            _constrained(routes=(InjectedRoute(0, (visit,), 0.0, None),)),
            f"{root}[0].vehicle_end_time",
        ),
        (_constrained(routes=(MORNING[0], MORNING[0])), f"{root}[1].vehicle_index"),
        (
            _constrained(Relaxation(RelaxationLevel.LEVEL_UNSPECIFIED)),
            "injected_solution_constraint.constraint_relaxations[0].relaxations[0].level",
        ),
        (
            _constrained(
                Relaxation(RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD, threshold_visit_count=-1)
            ),
            "injected_solution_constraint.constraint_relaxations[0].relaxations[0]"
            ".threshold_visit_count",
        ),
        (
            _model(
                injected_solution_constraint=InjectedSolutionConstraint(
                    MORNING, (), (ConstraintRelaxation(), ConstraintRelaxation())
                )
            ),
            "injected_solution_constraint.constraint_relaxations[1].vehicle_indices",
        ),
        (
            _model(
                injected_solution_constraint=InjectedSolutionConstraint(
                    MORNING, (InjectedSkippedShipment(0),)
                )
            ),
            "injected_solution_constraint.skipped_shipments[0].index",
        ),
        (
            _model(injected_first_solution_routes=MORNING, refresh_details_routes=MORNING),
            "refresh_details_routes",
        ),
        (
            _model(injected_first_solution_routes=(InjectedRoute(-1),)),
            "injected_first_solution_routes[0].vehicle_index",
        ),
    ]
    for model, field in cases:
        assert field in _fields(model), (field, validate_model(model))
    assert not _fields(_constrained())


def test_pairs_in_injected_routes() -> None:
    """A pickup-and-delivery shipment: picked up before it is delivered, both on the route."""
    pair = Shipment(pickups=(at("a"),), deliveries=(at("b"),), label="pair")
    model = line_model(POINTS, [pair], [depot_vehicle("d0"), depot_vehicle("d1")])
    pickup, delivery = InjectedVisit(0, True, 0, 5.0), InjectedVisit(0, False, 0, 25.0)
    bad = [
        ((InjectedRoute(0, (delivery, pickup)),), "injected_first_solution_routes[0].visits[0]"),
        ((InjectedRoute(0, (pickup,)),), "injected_first_solution_routes[0].visits[0]"),
        (
            (InjectedRoute(0, (pickup,)), InjectedRoute(1, (delivery,))),
            "injected_first_solution_routes[1].visits[0]",
        ),
    ]
    for routes, field in bad:
        assert field in _fields(dataclasses.replace(model, injected_first_solution_routes=routes))
    good = dataclasses.replace(
        model, injected_first_solution_routes=(InjectedRoute(0, (pickup, delivery)),)
    )
    assert not _fields(good)
    _solve(good)


def test_labels() -> None:
    """interpret_injected_solutions_using_labels: routes and visits match by label (unknown
    labels are removed, Google's rule); the model's labels must be unique."""
    routes = (
        dataclasses.replace(MORNING[0], vehicle_index=5),
        InjectedRoute(9, (), vehicle_label="gone"),
        dataclasses.replace(
            MORNING[1], visits=(*MORNING[1].visits, InjectedVisit(99, False, 0, 30.0, "gone"))
        ),
    )
    model = _constrained(
        routes=routes,
        interpret_injected_solutions_using_labels=True,
    )
    assert not _fields(model)
    solution = _solve(model)
    assert _order(solution, 0) == [1, 0]
    twice = dataclasses.replace(
        model, vehicles=(model.vehicles[0], dataclasses.replace(model.vehicles[1], label="v0"))
    )
    assert "vehicles[1].label" in _fields(twice)


def test_infeasible_locks_are_reported() -> None:
    """A fixed time the vehicle cannot make, or outside the visit's windows: INVALID_ARGUMENT
    naming the visit, before any search. Kept visits together over the capacity: the search
    finds no solution and says the constraint cannot be kept."""
    late = MORNING[0].visits[1]
    too_early = dataclasses.replace(late, start_time=30.0)
    model = _constrained(
        routes=(dataclasses.replace(MORNING[0], visits=(MORNING[0].visits[0], too_early)),)
    )
    with pytest.raises(InvalidModelError) as info:
        solve(model, SolveOptions(time_limit_s=1.0))
    assert info.value.violations[0].field == (
        "injected_solution_constraint.routes[0].visits[1].start_time"
    )
    windowed = _constrained()
    shipments = list(windowed.shipments)
    shipments[1] = Shipment(
        deliveries=(at("b", time_windows=(TimeWindow(start_time=100.0, end_time=200.0),)),),
        label="b",
        penalty_cost=100.0,
    )
    with pytest.raises(InvalidModelError) as info:
        solve(
            dataclasses.replace(windowed, shipments=tuple(shipments)),
            SolveOptions(time_limit_s=1.0),
        )
    assert info.value.violations[0].field == (
        "injected_solution_constraint.routes[0].visits[0].start_time"
    )
    heavy = _constrained(Relaxation(RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD))
    heavy = dataclasses.replace(
        heavy,
        shipments=tuple(dataclasses.replace(s, load_demands={"kg": 6}) for s in heavy.shipments),
        vehicles=tuple(dataclasses.replace(v, load_limits={"kg": 10}) for v in heavy.vehicles),
    )
    with pytest.raises(NoSolutionError) as error:
        solve(heavy, SolveOptions(time_limit_s=2.0))
    assert error.value.reason == "infeasible"
    assert "injected_solution_constraint" in str(error.value)


def test_ignored_vehicle_and_shipment_in_the_constraint() -> None:
    """Google's rules: an ignored shipment's visits leave the injected routes; a shipment kept
    on an ignored vehicle is skipped."""
    model = _constrained()
    shipments = list(model.shipments)
    shipments[1] = dataclasses.replace(shipments[1], ignore=True)
    vehicles = (model.vehicles[0], dataclasses.replace(model.vehicles[1], ignore=True))
    model = dataclasses.replace(model, shipments=tuple(shipments), vehicles=vehicles)
    solution = _solve(model)
    assert _order(solution, 0) == [0]
    reasons = {s.index: s.reasons[0].code for s in solution.skipped_shipments}
    assert reasons[1] == SkipReasonCode.SHIPMENT_IGNORED
    assert reasons[2] == SkipReasonCode.VEHICLE_IGNORED


def test_the_checker_catches_broken_locks() -> None:
    """The free optimum breaks the morning's locks: the checker says which, level by level."""
    free = _solve(_model())
    for relaxation, expected in (
        (None, "kept visit"),
        (Relaxation(RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD), "not the kept"),
        (Relaxation(RelaxationLevel.RELAX_VISIT_TIMES_AND_SEQUENCE_AFTER_THRESHOLD), "moved"),
    ):
        model = _constrained() if relaxation is None else _constrained(relaxation)
        with pytest.raises(AssertionError, match=expected):
            check_solution(model, free)
    check_solution(_constrained(Relaxation(RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD)), free)
    skipped = _model(
        injected_solution_constraint=InjectedSolutionConstraint((), (InjectedSkippedShipment(0),))
    )
    with pytest.raises(AssertionError, match="keeps it skipped"):
        check_solution(skipped, free)


def test_refresh_keeps_ignored_shipments_and_vehicles() -> None:
    """Google's rule: ignore has no effect on a refresh; every given visit stays."""
    model = _model(refresh_details_routes=MORNING)
    shipments = (dataclasses.replace(model.shipments[0], ignore=True), *model.shipments[1:])
    vehicles = (model.vehicles[0], dataclasses.replace(model.vehicles[1], ignore=True))
    refreshed = _solve(dataclasses.replace(model, shipments=shipments, vehicles=vehicles))
    assert _order(refreshed, 0) == [1, 0]
    assert _order(refreshed, 1) == [2]


def test_a_relaxed_part_that_no_longer_fits_does_not_lose_the_warm_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Visit a's window moved since the morning: the morning route (b then a) no longer fits,
    so the search starts from the kept visit (b) alone; a is skipped (it fits nowhere now)."""
    model = _constrained(
        Relaxation(RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD, threshold_visit_count=2)
    )
    shipments = list(model.shipments)
    shipments[0] = Shipment(
        deliveries=(at("a", time_windows=(TimeWindow(start_time=0.0, end_time=10.0),)),),
        label="a",
        penalty_cost=100.0,
    )
    model = dataclasses.replace(model, shipments=tuple(shipments))
    with caplog.at_level("INFO", logger="engine.backends.ortools"):
        solution = _solve(model, iteration_limit=1, solver_processes=1)
    assert "starting from the constraint's kept visits" in caplog.text
    assert _order(solution, 0)[0] == 1
    assert 0 in {s.index for s in solution.skipped_shipments}
    searched = _solve(model, solver_processes=1)
    assert searched.metrics.total_cost == pytest.approx(brute_force_optimum(model))


@pytest.mark.parametrize("seed", range(8))
def test_random_locks_match_the_brute_force(seed: int) -> None:
    """The optimality suite's tiny models (every shipment optional), a first solution as the
    morning plan, a random relaxation (level, count or time threshold, or none): the engine finds
    the optimum the brute force proves under the same constraint."""
    import numpy as np

    from tests.engine.test_optimality import random_tiny_model

    base = random_tiny_model(seed)
    base = dataclasses.replace(
        base,
        shipments=tuple(
            dataclasses.replace(s, penalty_cost=s.penalty_cost or 5_000.0) for s in base.shipments
        ),
    )
    plan = _solve(base, iteration_limit=1, solver_processes=1)
    routes = tuple(
        InjectedRoute(
            r.vehicle_index,
            tuple(
                InjectedVisit(v.shipment_index, v.is_pickup, v.visit_request_index, v.start_time)
                for v in r.visits
            ),
            r.vehicle_start_time,
            r.vehicle_end_time,
        )
        for r in plan.routes
        if r.visits
    )
    rng = np.random.default_rng(seed)
    level = seed % 4  # each level twice (0: no relaxation, fully constrained)
    starts = sorted(v.start_time for r in plan.routes for v in r.visits)
    groups: tuple[ConstraintRelaxation, ...] = ()
    if level:
        if rng.random() < 0.5:
            relaxation = Relaxation(
                RelaxationLevel(level), threshold_visit_count=int(rng.integers(0, 3))
            )
        else:
            relaxation = Relaxation(RelaxationLevel(level), threshold_time=starts[len(starts) // 2])
        groups = (ConstraintRelaxation((relaxation,)),)
    skipped = tuple(InjectedSkippedShipment(s.index) for s in plan.skipped_shipments[:1])
    model = dataclasses.replace(
        base, injected_solution_constraint=InjectedSolutionConstraint(routes, skipped, groups)
    )
    solution = _solve(model, solver_processes=1)
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(model)), (level, groups)


def test_labels_map_vehicle_indices_through_the_routes() -> None:
    """With labels, constraint_relaxations.vehicle_indices name the routes' own vehicle_index
    (the previous request's numbering): 7 is the route of v0 (now vehicle 0), relaxed; v1's
    route (no group) stays fully constrained. Two routes sharing an index make it ambiguous."""
    routes = (
        dataclasses.replace(MORNING[0], vehicle_index=7),
        dataclasses.replace(MORNING[1], vehicle_index=3),
    )
    groups = (ConstraintRelaxation((Relaxation(RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD),), (7,)),)
    model = _model(
        injected_solution_constraint=InjectedSolutionConstraint(routes, (), groups),
        interpret_injected_solutions_using_labels=True,
    )
    solution = _solve(model)
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(model))
    assert _order(solution, 1)[0] == 2
    assert solution.routes[1].visits[0].start_time == 18.0
    ambiguous = dataclasses.replace(
        model,
        injected_solution_constraint=InjectedSolutionConstraint(
            (routes[0], dataclasses.replace(routes[1], vehicle_index=7)), (), groups
        ),
    )
    assert "injected_solution_constraint.constraint_relaxations[0].vehicle_indices[0]" in (
        _fields(ambiguous)
    )


def test_visit_counts_are_those_of_the_route_left() -> None:
    """An ignored shipment leaves the injected route first (Google's rule); the visit counts of
    the thresholds are then those of the route that is left: with b (visit 1) ignored, a is
    visit 1 and stays fully constrained below a count threshold of 2."""
    model = _constrained(
        Relaxation(RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD, threshold_visit_count=2)
    )
    shipments = list(model.shipments)
    shipments[1] = dataclasses.replace(shipments[1], ignore=True)
    model = dataclasses.replace(model, shipments=tuple(shipments))
    solution = _solve(model)
    assert solution.metrics.total_cost == pytest.approx(brute_force_optimum(model))
    assert _order(solution, 0)[0] == 0
    assert solution.routes[0].visits[0].start_time == 45.0


def test_kept_on_a_vehicle_that_cannot_serve_it() -> None:
    """Shipment a (kept on vehicle 0) is now too heavy for vehicle 0: fully constrained, the
    lock cannot hold (INVALID_ARGUMENT naming the visit, with the pre-check's reason); relaxed to
    its vehicle (RELAX_VISIT_TIMES_AND_SEQUENCE), it is skipped with that reason."""
    model = _constrained()
    shipments = list(model.shipments)
    shipments[0] = dataclasses.replace(shipments[0], load_demands={"kg": 5})
    vehicles = (
        dataclasses.replace(model.vehicles[0], load_limits={"kg": 2}),
        model.vehicles[1],
    )
    model = dataclasses.replace(model, shipments=tuple(shipments), vehicles=vehicles)
    with pytest.raises(InvalidModelError) as info:
        solve(model, SolveOptions(time_limit_s=1.0))
    (violation,) = info.value.violations
    assert violation.field == "injected_solution_constraint.routes[0].visits[1]"
    assert "DEMAND_EXCEEDS_VEHICLE_CAPACITY" in violation.description
    relaxed = dataclasses.replace(
        model,
        injected_solution_constraint=dataclasses.replace(
            _constrained(
                Relaxation(RelaxationLevel.RELAX_VISIT_TIMES_AND_SEQUENCE_AFTER_THRESHOLD)
            ).injected_solution_constraint
        ),
    )
    solution = _solve(relaxed)
    (skipped,) = [s for s in solution.skipped_shipments if s.index == 0]
    assert skipped.reasons[0].code == SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY
    assert skipped.reasons[0].example_vehicle_index == 0
