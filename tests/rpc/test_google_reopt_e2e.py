"""Re-optimisation during the day through the API, end to end: requests written with Google's own
Python client (google-maps-routeoptimization) against a routeopt server, each answer checked by
the independent checker (which verifies the kept visits of an injected_solution_constraint)."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as api_exceptions
from google.maps import routeoptimization_v1 as ro

from tests.rpc.test_google_rules_e2e import delivery, solve, tours, vehicle
from tests.rpc.test_server_e2e import bad_request_fields

Level = ro.InjectedSolutionConstraint.ConstraintRelaxation.Relaxation.Level
Reason = ro.SkippedShipment.Reason.Code
LATS = [48.845, 48.85, 48.855, 48.86, 48.835, 48.83, 48.825, 48.865]


def _orders(lats: list[float], prefix: str = "order") -> list[ro.Shipment]:
    orders = [delivery(f"{prefix}-{i}", lat) for i, lat in enumerate(lats)]
    for order in orders:
        order.deliveries[0].duration = {"seconds": 900}
    return orders


def _morning(client: ro.RouteOptimizationClient, vans: int = 2) -> ro.OptimizeToursResponse:
    request = tours(_orders(LATS), [vehicle(f"van-{k}") for k in range(vans)])
    response = client.optimize_tours(request=request, timeout=60)
    solve(client, request)  # the same request through the checker
    return response


def test_mid_day_replan_keeps_committed_visits(client: ro.RouteOptimizationClient) -> None:
    """The morning plan goes back as the injected_solution_constraint of the afternoon request
    (a new order in front, so indices move and labels match; one order cancelled): every visit
    that starts before the threshold keeps vehicle, order and time."""
    morning = _morning(client)
    starts = sorted(v.start_time.timestamp() for r in morning.routes for v in r.visits)
    threshold = starts[len(starts) // 2]
    committed = {
        v.shipment_label: (r.vehicle_index, v.start_time.timestamp())
        for r in morning.routes
        for v in r.visits
        if v.start_time.timestamp() < threshold
    }
    later = [
        v.shipment_label
        for r in morning.routes
        for v in r.visits
        if v.start_time.timestamp() >= threshold
    ]
    orders = _orders(LATS)
    for order in orders:
        order.ignore = order.label == later[0]
    request = tours(
        [*_orders([48.84, 48.87], prefix="new"), *orders], [vehicle("van-0"), vehicle("van-1")]
    )
    request.interpret_injected_solutions_using_labels = True
    request.injected_solution_constraint = ro.InjectedSolutionConstraint(
        routes=list(morning.routes),
        constraint_relaxations=[
            {
                "relaxations": [
                    {
                        "level": Level.RELAX_ALL_AFTER_THRESHOLD,
                        "threshold_time": {"seconds": int(threshold)},
                    }
                ]
            }
        ],
    )
    response, _ = solve(client, request)  # the checker verifies the kept visits too
    served = {
        v.shipment_label: (r.vehicle_index, v.start_time.ToSeconds())
        for r in response.routes
        for v in r.visits
    }
    for label, kept in committed.items():
        assert served[label] == kept
    assert {"new-0", "new-1"} <= set(served)
    (cancelled,) = response.skipped_shipments
    assert cancelled.label == later[0]
    assert cancelled.reasons[0].code == Reason.SHIPMENT_IGNORED
    assert response.solve_info.backend == "ortools"
    assert "injected_solution_constraint" in response.solve_info.backend_reason


def test_fully_constrained_routes_come_back_as_they_were(
    client: ro.RouteOptimizationClient,
) -> None:
    """No constraint_relaxations: the route is kept whole; a new order the one van cannot take
    any more is skipped with VEHICLE_ROUTE_IS_FULLY_SEQUENCE_CONSTRAINED."""
    morning = _morning(client, vans=1)
    used = [r for r in morning.routes if r.visits]
    request = tours([*_orders(LATS), delivery("late", 48.87)], [vehicle("van-0")])
    request.injected_solution_constraint = ro.InjectedSolutionConstraint(routes=used)
    response, _ = solve(client, request)
    for before in used:
        after = response.routes[before.vehicle_index]
        assert [(v.shipment_index, v.start_time.ToSeconds()) for v in after.visits] == [
            (v.shipment_index, int(v.start_time.timestamp())) for v in before.visits
        ]
    (late,) = response.skipped_shipments
    assert late.label == "late"
    assert late.reasons[0].code == Reason.VEHICLE_ROUTE_IS_FULLY_SEQUENCE_CONSTRAINED


def test_refresh_details_routes_recomputes_without_a_search(
    client: ro.RouteOptimizationClient,
) -> None:
    morning = _morning(client)
    request = tours(_orders(LATS), [vehicle("van-0"), vehicle("van-1")])
    request.refresh_details_routes = [
        ro.ShipmentRoute(
            vehicle_index=r.vehicle_index,
            visits=[
                {
                    "shipment_index": v.shipment_index,
                    "visit_request_index": v.visit_request_index,
                    "start_time": v.start_time,
                }
                for v in r.visits
            ],
            vehicle_start_time=r.vehicle_start_time,
            vehicle_end_time=r.vehicle_end_time,
        )
        for r in morning.routes
        if r.visits
    ]
    response, _ = solve(client, request)
    assert response.solve_info.backend == "refresh"
    assert response.metrics.total_cost == pytest.approx(morning.metrics.total_cost)
    for before, after in zip(morning.routes, response.routes, strict=True):
        assert [v.shipment_index for v in after.visits] == [v.shipment_index for v in before.visits]
        assert after.route_total_cost == pytest.approx(before.route_total_cost)


def test_warm_start_is_honoured(client: ro.RouteOptimizationClient) -> None:
    request = tours(_orders(LATS[:4]), [vehicle("van-0"), vehicle("van-1")])
    request.injected_first_solution_routes = [
        ro.ShipmentRoute(vehicle_index=1, visits=[{"shipment_index": 3}, {"shipment_index": 0}])
    ]
    response, solution = solve(client, request)
    assert response.solve_info.backend == "pyvrp"  # no pickup-and-delivery shipment
    assert not solution.skipped_shipments
    request.model.shipments.append(
        ro.Shipment(
            label="pair",
            pickups=[{"arrival_location": {"latitude": 48.85, "longitude": 2.34}}],
            deliveries=[{"arrival_location": {"latitude": 48.86, "longitude": 2.34}}],
        )
    )
    response, solution = solve(client, request)
    assert response.solve_info.backend == "ortools"
    assert "injected_first_solution_routes" in response.solve_info.backend_reason
    assert not solution.skipped_shipments


def test_bad_injected_solutions_are_invalid_argument_naming_the_field(
    client: ro.RouteOptimizationClient,
) -> None:
    def base() -> ro.OptimizeToursRequest:
        return tours(_orders(LATS[:2]), [vehicle("van-0")])

    cases = {
        "injected_solution_constraint.routes[0].vehicle_index": ro.InjectedSolutionConstraint(
            routes=[ro.ShipmentRoute(vehicle_index=4)]
        ),
        "injected_solution_constraint.routes[0].visits[1].start_time": (
            ro.InjectedSolutionConstraint(
                routes=[
                    ro.ShipmentRoute(
                        vehicle_index=0,
                        vehicle_start_time={"seconds": 0},
                        vehicle_end_time={"seconds": 7200},
                        # the second visit 1 s after the first one ends: too early to get there
                        visits=[
                            {"shipment_index": 0, "start_time": {"seconds": 600}},
                            {"shipment_index": 1, "start_time": {"seconds": 1501}},
                        ],
                    )
                ]
            )
        ),
        # a fixed end in year 9999 (within Timestamp's range): "CP Solver fail" from OR-Tools,
        # INTERNAL, before the lock check looked at the end
        "injected_solution_constraint.routes[0].vehicle_end_time": (
            ro.InjectedSolutionConstraint(
                routes=[
                    ro.ShipmentRoute(
                        vehicle_index=0,
                        vehicle_start_time={"seconds": 0},
                        vehicle_end_time={"seconds": 253_402_300_000},
                        visits=[
                            {"shipment_index": 0, "start_time": {"seconds": 600}},
                            {"shipment_index": 1, "start_time": {"seconds": 3600}},
                        ],
                    )
                ]
            )
        ),
        "injected_solution_constraint.constraint_relaxations[0].relaxations[0].level": (
            ro.InjectedSolutionConstraint(constraint_relaxations=[{"relaxations": [{}]}])
        ),
    }
    for field, constraint in cases.items():
        request = base()
        request.injected_solution_constraint = constraint
        with pytest.raises(api_exceptions.InvalidArgument) as caught:
            client.optimize_tours(request=request, timeout=30)
        assert field in bad_request_fields(caught.value.response), field
    request = base()
    request.refresh_details_routes = [ro.ShipmentRoute(vehicle_index=0)]
    request.injected_first_solution_routes = [ro.ShipmentRoute(vehicle_index=0)]
    with pytest.raises(api_exceptions.InvalidArgument) as caught:
        client.optimize_tours(request=request, timeout=30)
    assert "refresh_details_routes" in bad_request_fields(caught.value.response)


def test_a_lock_only_the_search_finds_infeasible_is_failed_precondition(
    client: ro.RouteOptimizationClient,
) -> None:
    """Two kept visits that each fit the van but not together (capacity): no search can keep
    the constraint; the answer says so (FAILED_PRECONDITION), it does not drop a kept visit."""
    orders = _orders(LATS[:2])
    for order in orders:
        order.load_demands = {"kg": {"amount": 6}}
    van = vehicle("van-0", load_limits={"kg": {"max_load": 10}})
    request = tours(orders, [van])
    request.injected_solution_constraint = ro.InjectedSolutionConstraint(
        routes=[
            ro.ShipmentRoute(
                vehicle_index=0,
                vehicle_start_time={"seconds": 0},
                vehicle_end_time={"seconds": 7200},
                visits=[
                    {"shipment_index": 0, "start_time": {"seconds": 600}},
                    {"shipment_index": 1, "start_time": {"seconds": 3000}},
                ],
            )
        ],
        constraint_relaxations=[
            {"relaxations": [{"level": Level.RELAX_VISIT_TIMES_AFTER_THRESHOLD}]}
        ],
    )
    with pytest.raises(api_exceptions.FailedPrecondition) as caught:
        client.optimize_tours(request=request, timeout=30)
    assert "injected_solution_constraint cannot be kept" in caught.value.message
