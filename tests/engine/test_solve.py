"""Each constraint of the engine binds, and impossible inputs are skipped with the right reason.

Every solution is verified by the independent checker (``solve_checked``).
"""

from __future__ import annotations

import time

import pytest

from engine import (
    BreakRequest,
    DurationDistanceMatrix,
    LatLng,
    Shipment,
    ShipmentModel,
    SkipReasonCode,
    SolveOptions,
    SolveStatus,
    TimeWindow,
    Vehicle,
    VisitRequest,
    solve,
)
from engine.errors import NoSolutionError
from engine.options import SearchMode
from engine.solution import Metrics, Solution
from engine.solve import better_solution
from tests.builders import at, depot_vehicle, line_model, route_order, solve_checked
from tests.checker import check_solution

H = 3600.0


def reasons(solution, shipment: int) -> set[SkipReasonCode]:
    for s in solution.skipped_shipments:
        if s.index == shipment:
            return {r.code for r in s.reasons}
    raise AssertionError(f"shipment {shipment} is not skipped")


def test_single_vehicle_tour_on_a_line_is_optimal():
    """Every tour that turns back once (out to c, back through the others or the reverse) costs
    60; no tour is shorter."""
    pts = {"depot": 0, "a": 10, "b": 20, "c": 30}
    model = line_model(
        pts,
        [Shipment(deliveries=(at(t),)) for t in ("c", "a", "b")],
        [depot_vehicle(cost_per_kilometer=1000.0)],
    )
    sol = solve_checked(model)
    assert len(sol.routes[0].visits) == 3
    assert sol.metrics.aggregated_route_metrics.travel_distance_m == pytest.approx(60)
    assert sol.metrics.total_cost == pytest.approx(60.0)
    assert sol.status == SolveStatus.SOLVED


def test_capacity_binds_and_forces_second_vehicle():
    pts = {"depot": 0, "a": 10, "b": 11}
    shipments = [Shipment(deliveries=(at(t),), load_demands={"kg": 6}) for t in ("a", "b")]
    vehicles = [depot_vehicle(load_limits={"kg": 10}, cost_per_kilometer=1.0)] * 2
    sol = solve_checked(line_model(pts, shipments, vehicles))
    assert sol.metrics.used_vehicle_count == 2
    assert not sol.skipped_shipments
    first = sol.routes[0] if sol.routes[0].visits else sol.routes[1]
    assert first.transitions[0].vehicle_loads == {"kg": 6}


def test_demand_above_every_capacity_is_skipped_with_reason():
    pts = {"depot": 0, "a": 10}
    shipments = [Shipment(deliveries=(at("a"),), load_demands={"kg": 11, "m3": 1})]
    vehicles = [depot_vehicle(load_limits={"kg": 10})]
    sol = solve_checked(line_model(pts, shipments, vehicles))
    (skipped,) = sol.skipped_shipments
    assert skipped.reasons[0].code == SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY
    assert skipped.reasons[0].example_exceeded_capacity_type == "kg"
    assert skipped.reasons[0].example_vehicle_index == 0
    assert sol.metrics.skipped_mandatory_shipment_count == 1
    assert sol.status == SolveStatus.NOTHING_TO_ROUTE


def test_load_type_absent_from_limits_is_unlimited():
    pts = {"depot": 0, "a": 10}
    shipments = [Shipment(deliveries=(at("a"),), load_demands={"kg": 10**6})]
    sol = solve_checked(line_model(pts, shipments, [depot_vehicle(load_limits={"m3": 1})]))
    assert not sol.skipped_shipments
    assert sol.routes[0].transitions[0].vehicle_loads == {"kg": 10**6, "m3": 0}


def test_backhaul_delivers_before_picking_up():
    """Delivery-only goods are on board from the start: with capacity 10, delivering 10 at
    'far' must come before picking up 5 at 'near', although the other order is shorter."""
    pts = {"depot": 0, "near": 10, "far": 20}
    shipments = [
        Shipment(deliveries=(at("far"),), load_demands={"kg": 10}),
        Shipment(pickups=(at("near"),), load_demands={"kg": 5}),
    ]
    vehicle = depot_vehicle(load_limits={"kg": 10}, cost_per_kilometer=1.0)
    sol = solve_checked(line_model(pts, shipments, [vehicle]))
    assert route_order(sol, 0) == [(0, False), (1, True)]
    loads = [t.vehicle_loads["kg"] for t in sol.routes[0].transitions]
    assert loads == [10, 0, 5]


def test_pickup_and_delivery_same_vehicle_pickup_first():
    pts = {"depot": 0, "p1": 10, "d1": 5, "p2": 20, "d2": 30}
    shipments = [
        Shipment(pickups=(at("p1"),), deliveries=(at("d1"),), load_demands={"kg": 1}),
        Shipment(pickups=(at("p2"),), deliveries=(at("d2"),), load_demands={"kg": 1}),
    ]
    vehicles = [depot_vehicle(cost_per_kilometer=1.0, load_limits={"kg": 1})] * 2
    sol = solve_checked(line_model(pts, shipments, vehicles), time_limit_s=1)
    assert not sol.skipped_shipments
    for route in sol.routes:
        order = [(v.shipment_index, v.is_pickup) for v in route.visits]
        for s in {v.shipment_index for v in route.visits}:
            assert order.index((s, True)) < order.index((s, False))


def test_time_windows_force_order_and_waiting():
    pts = {"depot": 0, "a": 10, "b": 20}
    shipments = [
        Shipment(deliveries=(at("a", time_windows=(TimeWindow(100, 120),)),)),
        Shipment(deliveries=(at("b", time_windows=(TimeWindow(0, 30),)),)),
    ]
    sol = solve_checked(line_model(pts, shipments, [depot_vehicle(cost_per_kilometer=1.0)]))
    assert route_order(sol, 0) == [(1, False), (0, False)]
    visit_a = sol.routes[0].visits[1]
    assert 100 <= visit_a.start_time <= 120
    assert sol.routes[0].transitions[1].wait_duration_s > 0


def test_multiple_time_windows_use_the_later_window():
    pts = {"depot": 0, "a": 50}
    windows = (TimeWindow(0, 10), TimeWindow(200, 300))
    shipments = [Shipment(deliveries=(at("a", time_windows=windows),))]
    sol = solve_checked(line_model(pts, shipments, [depot_vehicle()]))
    assert 200 <= sol.routes[0].visits[0].start_time <= 300


def test_unreachable_time_window_is_skipped_with_reason():
    pts = {"depot": 0, "a": 50}
    shipments = [Shipment(deliveries=(at("a", time_windows=(TimeWindow(0, 10),)),))]
    sol = solve_checked(line_model(pts, shipments, [depot_vehicle()]))
    assert reasons(sol, 0) == {SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS}


def test_soft_time_window_cost_is_reported():
    pts = {"depot": 0, "a": 3600}
    tw = TimeWindow(soft_end_time=1800.0, cost_per_hour_after_soft_end_time=10.0)
    shipments = [Shipment(deliveries=(at("a", time_windows=(tw,)),))]
    sol = solve_checked(line_model(pts, shipments, [depot_vehicle()]))
    key = "model.shipments.deliveries.time_windows.cost_per_hour_after_soft_end_time"
    assert sol.metrics.costs[key] == pytest.approx(5.0)
    assert sol.metrics.aggregated_route_metrics.delay_duration_s == pytest.approx(1800)


def test_soft_time_window_makes_solver_choose_the_costlier_distance():
    """Without the soft window, a (-10) then b (20) is shortest (40 m) but reaches b at 40;
    b first (arrives at 20, on time) is 50 m. Lateness at 100 per second decides."""
    pts = {"depot": 0, "a": -10, "b": 20}
    late = TimeWindow(soft_end_time=25.0, cost_per_hour_after_soft_end_time=3600.0 * 100)
    shipments = [
        Shipment(deliveries=(at("a"),)),
        Shipment(deliveries=(at("b", time_windows=(late,)),)),
    ]
    vehicle = depot_vehicle(open_end=True, cost_per_kilometer=1000.0)
    sol = solve_checked(line_model(pts, shipments, [vehicle]))
    assert route_order(sol, 0) == [(1, False), (0, False)]
    assert sol.metrics.aggregated_route_metrics.delay_duration_s == 0


def test_fixed_cost_prefers_one_vehicle():
    pts = {"depot": 0, "a": 10, "b": -10}
    shipments = [Shipment(deliveries=(at("a"),)), Shipment(deliveries=(at("b"),))]
    vehicles = [depot_vehicle(fixed_cost=1000.0, cost_per_kilometer=1.0)] * 2
    sol = solve_checked(line_model(pts, shipments, vehicles))
    assert sol.metrics.used_vehicle_count == 1
    assert sol.metrics.costs["model.vehicles.fixed_cost"] == pytest.approx(1000.0)


def test_cost_per_hour_counts_whole_route_including_service():
    pts = {"depot": 0, "a": 1800}
    shipments = [Shipment(deliveries=(at("a", duration_s=3600.0),))]
    sol = solve_checked(line_model(pts, shipments, [depot_vehicle(cost_per_hour=10.0)]))
    assert sol.metrics.costs["model.vehicles.cost_per_hour"] == pytest.approx(20.0)


def test_duration_limit_binds():
    pts = {"depot": 0, "a": 100, "b": -100}
    shipments = [Shipment(deliveries=(at("a"),)), Shipment(deliveries=(at("b"),))]
    vehicles = [depot_vehicle(route_duration_limit_s=250.0, cost_per_kilometer=1.0)] * 2
    sol = solve_checked(line_model(pts, shipments, vehicles))
    assert sol.metrics.used_vehicle_count == 2


def test_duration_limit_impossible_is_skipped_with_reason():
    pts = {"depot": 0, "a": 100}
    shipments = [Shipment(deliveries=(at("a"),))]
    sol = solve_checked(line_model(pts, shipments, [depot_vehicle(route_duration_limit_s=150.0)]))
    assert reasons(sol, 0) == {SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DURATION_LIMIT}


def test_distance_limit_binds_and_impossible_is_skipped():
    pts = {"depot": 0, "a": 100, "b": -100, "far": 1000}
    shipments = [
        Shipment(deliveries=(at("a"),)),
        Shipment(deliveries=(at("b"),)),
        Shipment(deliveries=(at("far"),)),
    ]
    vehicles = [depot_vehicle(route_distance_limit_m=250.0, cost_per_kilometer=1.0)] * 2
    sol = solve_checked(line_model(pts, shipments, vehicles))
    assert sol.metrics.used_vehicle_count == 2
    assert reasons(sol, 2) == {SkipReasonCode.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DISTANCE_LIMIT}


def test_allowed_vehicles_bind_and_all_disallowed_is_skipped():
    pts = {"d0": 0, "d1": 1000, "a": 10}
    shipments = [Shipment(deliveries=(at("a"),), allowed_vehicle_indices=(1,))]
    vehicles = [
        depot_vehicle("d0", cost_per_kilometer=1.0),
        depot_vehicle("d1", cost_per_kilometer=1.0),
    ]
    sol = solve_checked(line_model(pts, shipments, vehicles))
    assert sol.routes[1].visits
    assert not sol.routes[0].visits
    shipments = [
        Shipment(deliveries=(at("a"),), allowed_vehicle_indices=(1,), load_demands={"kg": 5})
    ]
    vehicles = [depot_vehicle("d0"), depot_vehicle("d1", load_limits={"kg": 1})]
    sol = solve_checked(line_model(pts, shipments, vehicles))
    assert reasons(sol, 0) == {
        SkipReasonCode.VEHICLE_NOT_ALLOWED,
        SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY,
    }


def test_cheap_optional_shipment_is_skipped_with_penalty():
    pts = {"depot": 0, "a": 10, "far": 10_000}
    shipments = [
        Shipment(deliveries=(at("a"),), penalty_cost=1000.0),
        Shipment(deliveries=(at("far"),), penalty_cost=1.0, label="far"),
    ]
    sol = solve_checked(line_model(pts, shipments, [depot_vehicle(cost_per_kilometer=1.0)]))
    (skipped,) = sol.skipped_shipments
    assert (skipped.index, skipped.label) == (1, "far")
    assert skipped.reasons[0].code == SkipReasonCode.NOT_WORTH_ITS_PENALTY_OR_NO_ROOM
    assert sol.metrics.costs["model.shipments.penalty_cost"] == pytest.approx(1.0)
    assert sol.metrics.skipped_mandatory_shipment_count == 0


def test_free_optional_shipment_is_skipped_as_zero_penalty_cost():
    pts = {"depot": 0, "a": 10, "far": 10_000}
    shipments = [
        Shipment(deliveries=(at("a"),), penalty_cost=1000.0),
        Shipment(deliveries=(at("far"),), penalty_cost=0.0, label="far"),
    ]
    sol = solve_checked(line_model(pts, shipments, [depot_vehicle(cost_per_kilometer=1.0)]))
    (skipped,) = sol.skipped_shipments
    assert skipped.reasons[0].code == SkipReasonCode.ZERO_PENALTY_COST


def test_precheck_only_lists_proven_skips_without_routes():
    pts = {"depot": 0, "a": 10, "b": 20}
    shipments = [
        Shipment(deliveries=(at("a"),), load_demands={"kg": 5}),
        Shipment(deliveries=(at("b"),), load_demands={"kg": 50}),
    ]
    model = line_model(pts, shipments, [depot_vehicle(load_limits={"kg": 10})])
    sol = solve(model, SolveOptions(time_limit_s=5.0, precheck_only=True))
    assert all(not r.visits for r in sol.routes)
    codes = {s.index: s.reasons[0].code for s in sol.skipped_shipments}
    assert codes[1] == SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY
    assert codes[0] == SkipReasonCode.NOT_WORTH_ITS_PENALTY_OR_NO_ROOM


def test_mandatory_shipments_that_do_not_fit_together_are_reported():
    pts = {"depot": 0, "a": 10, "b": 20}
    shipments = [Shipment(deliveries=(at(t),), load_demands={"kg": 1}) for t in ("a", "b")]
    sol = solve_checked(line_model(pts, shipments, [depot_vehicle(load_limits={"kg": 1})]))
    assert len(sol.skipped_shipments) == 1
    assert sol.metrics.skipped_mandatory_shipment_count == 1


def test_open_route_and_missing_start():
    pts = {"depot": 0, "a": 10, "b": 30}
    shipments = [Shipment(deliveries=(at("a"),)), Shipment(deliveries=(at("b"),))]
    open_end = depot_vehicle(open_end=True, cost_per_kilometer=1.0)
    sol = solve_checked(line_model(pts, shipments, [open_end]))
    assert sol.metrics.aggregated_route_metrics.travel_distance_m == pytest.approx(30)
    assert sol.routes[0].transitions[-1].travel_distance_m == 0
    no_start = Vehicle(end_tags=("depot",), cost_per_kilometer=1.0)
    sol = solve_checked(line_model(pts, shipments, [no_start]))
    assert sol.metrics.aggregated_route_metrics.travel_distance_m == pytest.approx(30)
    assert sol.routes[0].transitions[0].travel_distance_m == 0


def test_travel_duration_multiple_scales_durations_not_distances():
    pts = {"depot": 0, "a": 100}
    vehicle = depot_vehicle(travel_duration_multiple=1.5, cost_per_traveled_hour=36.0)
    sol = solve_checked(line_model(pts, [Shipment(deliveries=(at("a"),))], [vehicle]))
    route = sol.routes[0]
    assert route.transitions[0].travel_duration_s == pytest.approx(150)
    assert route.metrics.travel_distance_m == pytest.approx(200)
    assert sol.metrics.costs["model.vehicles.cost_per_traveled_hour"] == pytest.approx(3.0)


def test_break_is_taken_between_visits():
    pts = {"depot": 0, "a": 100, "b": 200}
    shipments = [
        Shipment(deliveries=(at("a", duration_s=100.0),)),
        Shipment(deliveries=(at("b", duration_s=100.0),)),
    ]
    vehicle = depot_vehicle(
        cost_per_kilometer=1.0,
        break_requests=(BreakRequest(120.0, 180.0, 60.0),),
        start_time_windows=(TimeWindow(0, 0),),
    )
    sol = solve_checked(line_model(pts, shipments, [vehicle]))
    (brk,) = sol.routes[0].breaks
    assert 120 <= brk.start_time <= 180
    assert brk.duration_s == 60
    assert sol.metrics.aggregated_route_metrics.break_duration_s == 60


def test_delivery_alternatives_choose_the_closer_one():
    pts = {"depot": 0, "near": 5, "far": 50}
    shipments = [Shipment(deliveries=(at("far"), at("near")))]
    sol = solve_checked(line_model(pts, shipments, [depot_vehicle(cost_per_kilometer=1.0)]))
    assert sol.routes[0].visits[0].visit_request_index == 1


def test_vehicle_matrices_by_start_tag():
    """Two matrices: the 'slow' vehicle's matrix doubles durations."""
    fast = DurationDistanceMatrix(
        durations_s=[[0, 10], [10, 0]], distances_m=[[0, 10], [10, 0]], vehicle_start_tag="fast"
    )
    slow = DurationDistanceMatrix(
        durations_s=[[0, 20], [20, 0]], distances_m=[[0, 10], [10, 0]], vehicle_start_tag="slow"
    )
    model = ShipmentModel(
        shipments=(Shipment(deliveries=(VisitRequest(tags=("a",)),)),),
        vehicles=(
            Vehicle(start_tags=("depot", "slow"), end_tags=("depot",), cost_per_traveled_hour=1.0),
            Vehicle(start_tags=("depot", "fast"), end_tags=("depot",), cost_per_traveled_hour=1.0),
        ),
        duration_distance_matrices=(fast, slow),
        duration_distance_matrix_src_tags=("depot", "a"),
        duration_distance_matrix_dst_tags=("depot", "a"),
    )
    sol = solve_checked(model)
    assert sol.routes[1].visits
    assert sol.routes[1].metrics.travel_duration_s == 20


def test_no_vehicle():
    pts = {"a": 0}
    sol = solve_checked(line_model(pts, [Shipment(deliveries=(at("a"),))], []))
    assert reasons(sol, 0) == {SkipReasonCode.NO_VEHICLE}
    assert sol.routes == ()


def test_geodesic_travel_and_global_start_offset():
    g0 = 1_750_000_000.25
    model = ShipmentModel(
        shipments=(
            Shipment(
                deliveries=(
                    VisitRequest(
                        arrival_location=LatLng(38.72, -9.14),
                        time_windows=(TimeWindow(g0 + 600.5, g0 + 7200),),
                        duration_s=120.5,
                    ),
                ),
            ),
        ),
        vehicles=(Vehicle(start_location=LatLng(38.70, -9.14), end_location=LatLng(38.70, -9.14)),),
        global_start_time=g0,
        global_end_time=g0 + 86400,
    )
    sol = solve_checked(model, geodesic_meters_per_second=5.0)
    first = sol.routes[0].transitions[0]
    assert first.travel_distance_m == pytest.approx(2223.9, abs=1.0)
    assert first.travel_duration_s == pytest.approx(first.travel_distance_m / 5.0)
    assert sol.matrix_source == "geodesic"


def test_should_stop_interrupts_quickly():
    pts = {"depot": 0, **{f"p{i}": (i * 37) % 101 for i in range(60)}}
    shipments = [Shipment(deliveries=(at(f"p{i}"),)) for i in range(60)]
    model = line_model(pts, shipments, [depot_vehicle(cost_per_kilometer=1.0)] * 3)
    started = time.monotonic()
    options = SolveOptions(time_limit_s=30, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME)
    sol = solve(model, options, should_stop=lambda: time.monotonic() - started > 0.5)
    assert time.monotonic() - started < 3
    assert sol.status == SolveStatus.INTERRUPTED
    assert not sol.skipped_shipments


def test_failed_first_solution_strategy_falls_back():
    """OR-Tools' SAVINGS finds no solution on pickup-and-delivery models; the backend retries
    from an empty solution instead of skipping every shipment."""
    pts = {"depot": 0, "p1": 10, "d1": 20, "p2": -10, "d2": -20}
    shipments = [
        Shipment(pickups=(at("p1"),), deliveries=(at("d1"),)),
        Shipment(pickups=(at("p2"),), deliveries=(at("d2"),)),
    ]
    model = line_model(pts, shipments, [depot_vehicle(cost_per_kilometer=1.0)] * 2)
    options = SolveOptions(time_limit_s=1, first_solution_strategy="SAVINGS")
    sol = solve(model, options)
    check_solution(model, sol)
    assert not sol.skipped_shipments


def test_unknown_search_strategy_is_rejected():
    pts = {"depot": 0, "a": 1}
    model = line_model(pts, [Shipment(deliveries=(at("a"),))], [depot_vehicle()])
    with pytest.raises(ValueError, match="first_solution_strategy 'FASTEST'"):
        solve(model, SolveOptions(first_solution_strategy="FASTEST"))


def test_infeasible_vehicle_constraints_raise_no_solution():
    """A break that cannot fit in the vehicle's only possible start and end: no routes exist at
    all, not even empty ones, and the caller is told so instead of getting everything skipped."""
    pts = {"depot": 0, "a": 10}
    vehicle = depot_vehicle(
        start_time_windows=(TimeWindow(0, 0),),
        end_time_windows=(TimeWindow(0, 40),),
        break_requests=(BreakRequest(50.0, 60.0, 30.0),),
    )
    model = line_model(pts, [Shipment(deliveries=(at("a"),), penalty_cost=1.0)], [vehicle])
    with pytest.raises(NoSolutionError) as info:
        solve(model, SolveOptions(time_limit_s=1))
    assert info.value.reason == "infeasible"


def _scored(total_cost: float, skipped_mandatory: int = 0) -> Solution:
    metrics = Metrics(skipped_mandatory_shipment_count=skipped_mandatory, total_cost=total_cost)
    return Solution(routes=(), skipped_shipments=(), metrics=metrics, status=SolveStatus.SOLVED)


@pytest.mark.parametrize(
    ("candidate", "leading", "best", "best_leading", "expected"),
    [
        pytest.param(_scored(10.0), False, _scored(11.0), True, True, id="cheaper-wins"),
        pytest.param(_scored(12.0), True, _scored(11.0), False, False, id="dearer-loses-leading"),
        pytest.param(_scored(20.0), False, _scored(1.0, 1), True, True, id="fewer-skipped-first"),
        # The same routes on other vehicles sum in another order: a tie in the last bits, which the
        # member whose progress was reported last wins either way.
        pytest.param(
            _scored(50.48357460328498),
            True,
            _scored(50.48357460328497),
            False,
            True,
            id="ulp-dearer-leading-wins",
        ),
        pytest.param(
            _scored(50.48357460328497),
            False,
            _scored(50.48357460328498),
            True,
            False,
            id="ulp-cheaper-not-leading-loses",
        ),
        pytest.param(_scored(5.0), False, _scored(5.0), False, False, id="tie-keeps-first"),
    ],
)
def test_portfolio_members_are_ranked_by_skips_then_cost_with_ties_to_the_leading_one(
    candidate: Solution, leading: bool, best: Solution, best_leading: bool, expected: bool
) -> None:
    assert better_solution(candidate, leading, best, best_leading) is expected
