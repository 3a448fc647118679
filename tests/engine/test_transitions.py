"""Issue 15, transition attributes: ``ShipmentModel.transition_attributes`` (Google's: a delay
and extra costs on the transitions whose source and destination tags match), on small instances
whose optimum is known by hand or by brute force (tests/bruteforce.py), solved by the engine and
verified by the independent checker (tests/checker.py); skip reasons, backend routing and
validation.

Points on a line; 1 unit = 1 h of driving and 1 km.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine import InvalidModelError, Shipment, ShipmentModel, SkipReasonCode, Vehicle, solve
from engine.model import (
    ConstraintRelaxation,
    InjectedRoute,
    InjectedSolutionConstraint,
    InjectedVisit,
    Relaxation,
    RelaxationLevel,
    TimeWindow,
    TransitionAttributes,
    VisitRequest,
)
from engine.options import SearchMode, SolveOptions
from engine.solution import Route
from engine.transitions import (
    build_tables,
    destination_tags,
    matching,
    source_tags,
    transition_costs,
    transition_delay_s,
)
from engine.travel import Stops, build_stops
from engine.validation import validate_model
from tests.bruteforce import brute_force_optimum
from tests.builders import at, depot_vehicle, line_model, route_order, solve_checked
from tests.checker import check_solution, transition_terms
from tests.engine.test_optimality import random_tiny_model
from tests.seeds import seeds

H = 3600.0
KM = 1000.0
POINTS = {"depot": 0.0, "A": 1.0, "B": 2.0}
COST = "model.transition_attributes.cost"
PER_KM = "model.transition_attributes.cost_per_kilometer"
SOFT = "model.transition_attributes.distance_limit.cost_per_kilometer_above_soft_max"


def model(
    shipments: list[Shipment], vehicles: list[Vehicle], *attributes: TransitionAttributes
) -> ShipmentModel:
    return line_model(POINTS, shipments, vehicles, scale=H, transition_attributes=tuple(attributes))


def drop(point: str, *tags: str, **kw: object) -> Shipment:
    return Shipment(deliveries=(VisitRequest(tags=(point, *tags)),), **kw)  # type: ignore[arg-type]


def test_a_delay_comes_between_the_source_visit_and_the_destination() -> None:
    # depot → A (frozen) → B (frozen) → depot. Frozen → frozen: 30 min delay, cost 7 and 2
    # per km (the A → B leg is 1 h = 3.6 km here: scale H meters per unit). The route lasts
    # 4 h + 30 min at 10 an hour.
    cold = TransitionAttributes(
        src_tag="frozen", dst_tag="frozen", delay_s=0.5 * H, cost=7.0, cost_per_kilometer=2.0
    )
    vehicle = depot_vehicle(cost_per_hour=10.0)
    m = model([drop("A", "frozen"), drop("B", "frozen")], [vehicle], cold)
    solution = solve_checked(m, backend="ortools")
    route = solution.routes[0]
    assert [t.delay_duration_s for t in route.transitions] == pytest.approx([0.0, 0.5 * H, 0.0])
    assert route.visits[1].start_time - route.visits[0].start_time == pytest.approx(1.5 * H)
    assert route.transitions[1].total_duration_s == pytest.approx(1.5 * H)
    assert route.transitions[1].wait_duration_s == pytest.approx(0.0)
    assert route.metrics.transition_delay_duration_s == pytest.approx(0.5 * H)
    assert route.metrics.total_duration_s == pytest.approx(4.5 * H)
    assert route.route_costs[COST] == pytest.approx(7.0)
    assert route.route_costs[PER_KM] == pytest.approx(2.0 * 3.6)
    assert solution.metrics.costs[COST] == pytest.approx(7.0)
    assert solution.metrics.total_cost == pytest.approx(45.0 + 7.0 + 7.2)


def test_excluded_tags_and_vehicle_start_and_end_tags() -> None:
    # Leaving the depot (start tag "depot") towards anything not "near": delay 1 h; arriving
    # at the vehicle's end (end tag "depot") from anything: cost 5 (excluded tag no visit or
    # start has). Two visits: depot → A → B → depot.
    leave = TransitionAttributes(src_tag="depot", excluded_dst_tag="near", delay_s=H)
    home = TransitionAttributes(excluded_src_tag="none", dst_tag="depot", cost=5.0)
    vehicle = depot_vehicle(cost_per_hour=1.0)
    m = model([drop("A", "near"), drop("B")], [vehicle], leave, home)
    solution = solve_checked(m, backend="ortools")
    route = solution.routes[0]
    delays = [t.delay_duration_s for t in route.transitions]
    # A is "near": no delay if it comes first; B first would take the delay.
    assert route_order(solution, 0) == [(0, False), (1, False)]
    assert delays == pytest.approx([0.0, 0.0, 0.0])
    assert route.route_costs[COST] == pytest.approx(5.0)


def test_several_matching_attributes_add_up() -> None:
    # Two attributes match A → B: delays 10 min + 20 min, costs 1 + 2, soft distance limits
    # (2 km at 3 per km beyond it, 3 km at 1 per km): the 3.6-km leg costs 4.8 + 0.6.
    a1 = TransitionAttributes(
        src_tag="A",
        dst_tag="B",
        delay_s=600.0,
        cost=1.0,
        distance_limit_soft_max_m=2 * KM,
        distance_limit_cost_per_kilometer_above_soft_max=3.0,
    )
    a2 = TransitionAttributes(
        excluded_src_tag="B",
        dst_tag="B",
        delay_s=1200.0,
        cost=2.0,
        distance_limit_soft_max_m=3 * KM,
        distance_limit_cost_per_kilometer_above_soft_max=1.0,
    )
    # One shipment picked up at A and delivered at B: the order is fixed.
    pair = Shipment(pickups=(at("A"),), deliveries=(at("B"),))
    m = model([pair], [depot_vehicle()], a1, a2)
    route = solve_checked(m, backend="ortools").routes[0]
    # depot → A and B → depot: neither matches (their destinations are not "B"); A → B:
    # both, 30 min of delay, costs 1 + 2 and the soft-limit costs.
    assert [t.delay_duration_s for t in route.transitions] == pytest.approx([0.0, 1800.0, 0.0])
    assert route.route_costs[COST] == pytest.approx(3.0)
    assert route.route_costs[SOFT] == pytest.approx(3.0 * 1.6 + 1.0 * 0.6)


def test_transition_costs_change_the_optimal_order() -> None:
    # Without attributes, depot → A → B → depot and depot → B → A → depot cost the same (4 h of
    # driving at 1 per hour travelled). Going from a "wet" visit to a "dry" one costs 50: the
    # engine must serve the dry one first.
    wet_to_dry = TransitionAttributes(src_tag="wet", dst_tag="dry", cost=50.0)
    vehicle = depot_vehicle(cost_per_traveled_hour=1.0)
    m = model([drop("A", "wet"), drop("B", "dry")], [vehicle], wet_to_dry)
    solution = solve_checked(m, backend="ortools")
    assert route_order(solution, 0) == [(1, False), (0, False)]
    assert solution.metrics.total_cost == pytest.approx(4.0)
    assert brute_force_optimum(m) == pytest.approx(4.0)


def test_a_delay_makes_a_window_unreachable_and_the_shipment_is_skipped() -> None:
    # B must start by 2 h 30; driving there takes 2 h but leaving the depot for a "secure"
    # visit takes a 1-h check first. Optional: skipped, with Google's time-window reason.
    check = TransitionAttributes(src_tag="depot", dst_tag="secure", delay_s=H)
    window = (TimeWindow(end_time=2.5 * H),)
    late = Shipment(
        deliveries=(VisitRequest(tags=("B", "secure"), time_windows=window),), penalty_cost=100.0
    )
    fine = Shipment(deliveries=(VisitRequest(tags=("B",), time_windows=window),))
    m = model([late, fine], [depot_vehicle()], check)
    solution = solve_checked(m)
    assert solution.backend == "ortools"
    (skipped,) = solution.skipped_shipments
    assert skipped.index == 0
    assert [r.code for r in skipped.reasons] == [
        SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS
    ]
    # Without the delay both are served.
    plain = solve_checked(dataclasses.replace(m, transition_attributes=()))
    assert not plain.skipped_shipments


def test_an_unused_vehicle_is_not_delayed_and_an_empty_route_is() -> None:
    # Every start → end transition takes 10 h: an unused vehicle whose shift is 1 h is still
    # fine; a vehicle used_if_route_is_empty drives its empty route with the delay.
    slow = TransitionAttributes(src_tag="depot", dst_tag="depot", delay_s=10 * H, cost=3.0)
    short = depot_vehicle(end_time_windows=(TimeWindow(end_time=H),))
    m = model([], [short], slow)
    solution = solve_checked(m, backend="ortools")
    assert not solution.routes[0].is_used
    empty = depot_vehicle(used_if_route_is_empty=True, cost_per_hour=1.0)
    solution = solve_checked(model([], [empty], slow), backend="ortools")
    route = solution.routes[0]
    assert route.transitions[0].delay_duration_s == pytest.approx(10 * H)
    assert solution.metrics.total_cost == pytest.approx(10.0 + 3.0)


def test_auto_routes_transition_attributes_to_ortools_and_pyvrp_refuses_them() -> None:
    m = model([drop("A", "x")], [depot_vehicle()], TransitionAttributes("x", "", "", "y", cost=1.0))
    assert solve_checked(m).backend == "ortools"
    with pytest.raises(InvalidModelError) as err:
        solve_checked(m, backend="pyvrp")
    assert "transition_attributes[0]" in str(err.value)
    # An attribute without delay or cost changes nothing: PyVRP may serve the model.
    idle = dataclasses.replace(m, transition_attributes=(TransitionAttributes("x", "", "", "y"),))
    assert solve_checked(idle, backend="pyvrp").backend == "pyvrp"


def random_transitions_model(seed: int) -> ShipmentModel:
    """:func:`tests.engine.test_optimality.random_tiny_model` with every shipment optional,
    random extra tags on the visits and random transition attributes (delays, costs, per-km
    costs, soft distance limits) between them; a route duration limit the delays make bind."""
    rng = np.random.default_rng(5000 + seed)
    base = random_tiny_model(seed)

    def tagged(v: VisitRequest) -> VisitRequest:
        extra = tuple(t for t in ("red", "blue") if rng.random() < 0.5)
        return dataclasses.replace(v, tags=(*v.tags, *extra))

    shipments = tuple(
        dataclasses.replace(
            s,
            pickups=tuple(tagged(v) for v in s.pickups),
            deliveries=tuple(tagged(v) for v in s.deliveries),
            penalty_cost=s.penalty_cost or float(rng.integers(100, 400)),
        )
        for s in base.shipments
    )
    vehicles = tuple(
        dataclasses.replace(vehicle, route_duration_limit_s=float(rng.integers(250, 450)))
        for vehicle in base.vehicles
    )
    attributes = (
        TransitionAttributes(
            src_tag="red", excluded_dst_tag="red", delay_s=float(rng.integers(0, 60))
        ),
        TransitionAttributes(
            excluded_src_tag="blue",
            dst_tag="blue",
            cost=float(rng.integers(0, 40)),
            cost_per_kilometer=float(rng.integers(0, 2000)),
        ),
        TransitionAttributes(
            src_tag="p0",
            excluded_dst_tag="p0",
            delay_s=float(rng.integers(0, 40)),
            distance_limit_soft_max_m=float(rng.integers(0, 60)),
            distance_limit_cost_per_kilometer_above_soft_max=float(rng.integers(0, 3000)),
        ),
    )
    return dataclasses.replace(
        base, shipments=shipments, vehicles=vehicles, transition_attributes=attributes
    )


@pytest.mark.parametrize("seed", seeds(8, 4))
def test_transition_attributes_match_brute_force(seed: int) -> None:
    m = random_transitions_model(seed)
    optimum = brute_force_optimum(m)
    solution = solve_checked(m, time_limit_s=1.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME)
    assert solution.backend == "ortools"
    assert solution.metrics.total_cost == pytest.approx(optimum, rel=1e-9, abs=1e-6)


def test_the_attributes_change_the_random_optima() -> None:
    changed = 0
    for seed in range(8):
        m = random_transitions_model(seed)
        free = dataclasses.replace(m, transition_attributes=())
        changed += brute_force_optimum(m) != pytest.approx(brute_force_optimum(free))
    assert changed >= 4


def test_the_checker_matches_tags_as_google_says() -> None:
    m = model(
        [drop("A", "x"), drop("B")],
        [depot_vehicle()],
        TransitionAttributes(src_tag="x", excluded_dst_tag="x", delay_s=5.0, cost=1.0),
        TransitionAttributes(src_tag="x", dst_tag="x", delay_s=7.0),
    )
    assert transition_terms(m, 0, (0, False, 0), (1, False, 0), 0.0)[0] == 5.0
    assert transition_terms(m, 0, (0, False, 0), None, 0.0)[0] == 5.0  # end tags: ("depot",)
    assert transition_terms(m, 0, None, (0, False, 0), 0.0)[0] == 0.0  # start: ("depot",)
    assert transition_terms(m, 0, (1, False, 0), (0, False, 0), 0.0)[0] == 0.0


def test_the_checker_catches_a_wrong_delay() -> None:
    # Solved without the delay, checked with it: the B visit starts too early.
    vehicle = depot_vehicle(cost_per_hour=10.0)
    m = model([drop("A", "frozen"), drop("B", "frozen")], [vehicle])
    solution = solve_checked(m)
    delayed = dataclasses.replace(
        m,
        transition_attributes=(
            TransitionAttributes(src_tag="frozen", dst_tag="frozen", delay_s=0.5 * H),
        ),
    )
    with pytest.raises(AssertionError, match="delay"):
        check_solution(delayed, solution)
    # A reported delay that the model does not have is caught too.
    delayed_solution = solve_checked(delayed)
    with pytest.raises(AssertionError, match="delay_duration_s"):
        check_solution(m, delayed_solution)


def test_validation_names_each_bad_field() -> None:
    bad = (
        TransitionAttributes(src_tag="a", excluded_src_tag="b", dst_tag="c"),
        TransitionAttributes(dst_tag="c"),
        TransitionAttributes(src_tag="a", dst_tag="c", excluded_dst_tag="d", cost=-1.0),
        TransitionAttributes(
            src_tag="a", dst_tag="c", cost_per_kilometer=float("nan"), delay_s=-5.0
        ),
        TransitionAttributes(src_tag="a", dst_tag="c", distance_limit_soft_max_m=10.0),
        TransitionAttributes(
            src_tag="a",
            dst_tag="c",
            distance_limit_soft_max_m=-1.0,
            distance_limit_cost_per_kilometer_above_soft_max=-2.0,
        ),
        TransitionAttributes(src_tag="a", dst_tag="c", delay_s=1e12, cost=1e15),
    )
    m = model([drop("A")], [depot_vehicle()], *bad)
    assert {v.field for v in validate_model(m)} == {
        "transition_attributes[0].src_tag",
        "transition_attributes[1].src_tag",
        "transition_attributes[2].dst_tag",
        "transition_attributes[2].cost",
        "transition_attributes[3].cost_per_kilometer",
        "transition_attributes[3].delay",
        "transition_attributes[4].distance_limit.cost_per_kilometer_above_soft_max",
        "transition_attributes[5].distance_limit.soft_max_meters",
        "transition_attributes[5].distance_limit.cost_per_kilometer_above_soft_max",
        "transition_attributes[6].delay",  # beyond protobuf's Duration range
        "transition_attributes[6].cost",  # the worst-case total cost is beyond the bound
    }


def test_refreshed_routes_are_scheduled_and_checked_with_the_delays() -> None:
    # refresh_details_routes: an untimed route gets the earliest schedule with the delay; a
    # timed one whose B visit ignores the delay is refused naming that visit's start_time.
    cold = TransitionAttributes(src_tag="frozen", dst_tag="frozen", delay_s=0.5 * H, cost=1.0)
    m = model([drop("A", "frozen"), drop("B", "frozen")], [depot_vehicle()], cold)
    visits = (InjectedVisit(0, False, 0), InjectedVisit(1, False, 0))
    untimed = dataclasses.replace(m, refresh_details_routes=(InjectedRoute(0, visits),))
    solution = solve_checked(untimed)
    assert solution.backend == "refresh"
    route = solution.routes[0]
    assert route.visits[1].start_time - route.visits[0].start_time == pytest.approx(1.5 * H)
    assert route.route_costs[COST] == pytest.approx(1.0)
    timed = (InjectedVisit(0, False, 0, 1 * H), InjectedVisit(1, False, 0, 2 * H))
    too_early = dataclasses.replace(
        m, refresh_details_routes=(InjectedRoute(0, timed, 0.0, 5 * H),)
    )
    with pytest.raises(InvalidModelError) as info:
        solve(too_early, SolveOptions(time_limit_s=1.0))
    assert info.value.violations[0].field == "refresh_details_routes[0].visits[1].start_time"
    assert "transition delay" in info.value.violations[0].description


def test_a_kept_sequence_is_driven_with_the_delays() -> None:
    # The injected solution constraint keeps A then B on the vehicle: the delay between them
    # still applies (OR-Tools' time transits), the checker verifies the schedule.
    cold = TransitionAttributes(src_tag="frozen", dst_tag="frozen", delay_s=0.5 * H)
    m = model([drop("A", "frozen"), drop("B", "frozen")], [depot_vehicle()], cold)
    # Yesterday's times (B at 2 h) ignore the delay: kept at RELAX_VISIT_TIMES, B moves to
    # 2 h 30; kept fixed (the default level), the constraint cannot hold, named at B.
    visits = (InjectedVisit(0, False, 0, 1 * H), InjectedVisit(1, False, 0, 2 * H))
    kept = InjectedRoute(0, visits, 0.0, 4 * H)
    relaxed = ConstraintRelaxation(
        relaxations=(Relaxation(level=RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD),)
    )
    constraint = InjectedSolutionConstraint(routes=(kept,), constraint_relaxations=(relaxed,))
    constrained = dataclasses.replace(m, injected_solution_constraint=constraint)
    route = solve_checked(constrained).routes[0]
    assert route_order_of(route) == [0, 1]
    assert route.transitions[1].delay_duration_s == pytest.approx(0.5 * H)
    assert route.visits[1].start_time - route.visits[0].start_time == pytest.approx(1.5 * H)
    fixed = dataclasses.replace(
        m, injected_solution_constraint=InjectedSolutionConstraint(routes=(kept,))
    )
    with pytest.raises(InvalidModelError) as info:
        solve(fixed, SolveOptions(time_limit_s=1.0))
    fields = [v.field for v in info.value.violations]
    assert fields == ["injected_solution_constraint.routes[0].visits[1].start_time"]


def route_order_of(route: Route) -> list[int]:
    return [v.shipment_index for v in route.visits]


@pytest.mark.parametrize("seed", range(4))
def test_the_solver_tables_agree_with_each_transition(seed: int) -> None:
    # The tables over the stops (one matrix product over the merged attributes) against the
    # attributes matched transition by transition; an unused vehicle's start → end is empty.
    rng = np.random.default_rng(seed)
    m = random_transitions_model(seed)
    vehicles = tuple(
        dataclasses.replace(v, used_if_route_is_empty=bool(rng.random() < 0.5)) for v in m.vehicles
    )
    m = dataclasses.replace(
        m,
        vehicles=vehicles,
        transition_attributes=(
            *m.transition_attributes,
            *m.transition_attributes[:1],  # the same tags twice: merged, they add up
            TransitionAttributes(excluded_src_tag="zzz", dst_tag="p1", cost=2.0, delay_s=3.0),
        ),
    )
    stops = build_stops(m)
    tables = build_tables(m, stops)
    assert tables is not None
    distances = rng.uniform(0.0, 100.0, size=(stops.size, stops.size))
    costs = tables.costs(distances)
    for i in range(stops.size):
        for j in range(stops.size):
            src = _tags(m, stops, i, source=True)
            dst = _tags(m, stops, j, source=False)
            empty_unused = (
                i >= stops.num_visits
                and j == i + 1
                and (i - stops.num_visits) % 2 == 0
                and not m.vehicles[(i - stops.num_visits) // 2].used_if_route_is_empty
            )
            if src is None or dst is None or empty_unused:
                want_delay, want_cost = 0.0, 0.0
            else:
                attributes = matching(m, src, dst)
                want_delay = transition_delay_s(attributes)
                want_cost = sum(transition_costs(attributes, float(distances[i, j])).values())
            got_delay = 0.0 if tables.delay_s is None else float(tables.delay_s[i, j])
            assert got_delay == pytest.approx(want_delay, abs=1e-9), (i, j)
            assert float(costs[i, j]) == pytest.approx(want_cost, abs=1e-9), (i, j)


def _tags(m: ShipmentModel, stops: Stops, i: int, *, source: bool) -> tuple[str, ...] | None:
    return (source_tags if source else destination_tags)(m, stops, i)
