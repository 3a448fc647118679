"""Issue 15's per-visit ``VisitRequest.load_demands`` through the API, end to end: requests
written with Google's own Python client against a routeopt server, each answer checked by the
independent checker (tests/checker.py recomputes every visit's demands and every transition's
loads), bad values answered INVALID_ARGUMENT naming Google's field."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as api_exceptions
from google.maps import routeoptimization_v1 as ro

from tests.rpc.test_google_rules_e2e import delivery, pair, solve, tours, vehicle
from tests.rpc.test_server_e2e import bad_request_fields

LoadLimit = ro.Vehicle.LoadLimit


def kg(amount: int) -> dict[str, ro.Shipment.Load]:
    return {"kg": ro.Shipment.Load(amount=amount)}


def test_a_pair_reports_the_sum_of_shipment_and_visit_demands(
    client: ro.RouteOptimizationClient,
) -> None:
    # 1 kg for the shipment, 3 kg more at the pickup and 1 kg more at the delivery: +4 kg
    # picked up, -2 kg delivered, 2 kg back at the depot.
    shipment = pair("p", 48.85, 48.86, load_demands=kg(1))
    shipment.pickups[0].load_demands = kg(3)
    shipment.deliveries[0].load_demands = kg(1)
    v = vehicle("van", load_limits={"kg": LoadLimit(max_load=4)})
    response, _ = solve(client, tours([shipment], [v]))  # through the checker
    route = response.routes[0]
    assert [x.load_demands["kg"].amount for x in route.visits] == [4, -2]
    assert [t.vehicle_loads["kg"].amount for t in route.transitions] == [0, 4, 2]


def test_a_visit_demand_over_capacity_is_skipped_with_googles_reason(
    client: ro.RouteOptimizationClient,
) -> None:
    shipment = delivery("heavy", 48.85, load_demands=kg(2))
    shipment.deliveries[0].load_demands = kg(3)
    v = vehicle("van", load_limits={"kg": LoadLimit(max_load=4)})
    response, _ = solve(client, tours([shipment], [v]))
    (skipped,) = response.skipped_shipments
    assert [r.code for r in skipped.reasons] == [
        ro.SkippedShipment.Reason.Code.DEMAND_EXCEEDS_VEHICLE_CAPACITY
    ]


@pytest.mark.parametrize(
    ("field", "pickup", "drop"),
    [
        ("shipments[0].deliveries[0].load_demands[kg].amount", 0, -1),
        # the delivery would remove 3 kg, the pickup adds 1
        ("shipments[0].deliveries[0].load_demands[kg].amount", 0, 2),
        ("shipments[0].pickups[0].load_demands[kg].amount", -1, 0),
    ],
)
def test_bad_visit_demand_is_invalid_argument_naming_googles_field(
    client: ro.RouteOptimizationClient, field: str, pickup: int, drop: int
) -> None:
    shipment = pair("p", 48.85, 48.86, load_demands=kg(1))
    shipment.pickups[0].load_demands = kg(pickup)
    shipment.deliveries[0].load_demands = kg(drop)
    request = tours([shipment], [vehicle("v0")])
    with pytest.raises(api_exceptions.InvalidArgument) as caught:
        client.optimize_tours(request=request, timeout=30)
    assert f"model.{field}" in bad_request_fields(caught.value.response)


def test_a_van_that_must_leave_loaded_through_googles_client(
    client: ro.RouteOptimizationClient,
) -> None:
    # start_load_interval.min = 5 kg on the cheap van: two 3-kg drops open its route together
    # (6 kg); the checker verifies the start load against the minimum. A third van that must
    # leave with 100 kg can never be used and stays empty.
    shipments = [
        delivery("a", 48.85, load_demands=kg(3)),
        delivery("b", 48.86, load_demands=kg(3)),
    ]
    cheap = vehicle(
        "cheap", load_limits={"kg": LoadLimit(start_load_interval=LoadLimit.Interval(min_=5))}
    )
    dear = vehicle("dear")
    dear.cost_per_kilometer = 10.0
    never = vehicle(
        "never", load_limits={"kg": LoadLimit(start_load_interval=LoadLimit.Interval(min_=100))}
    )
    never.cost_per_kilometer = 0.1
    request = tours(shipments, [cheap, dear, never])
    request.search_mode = ro.OptimizeToursRequest.SearchMode.CONSUME_ALL_AVAILABLE_TIME
    request.timeout = {"seconds": 1}
    response, _ = solve(client, request)  # through the checker
    assert not response.skipped_shipments
    routes = {r.vehicle_index: r for r in response.routes}
    assert len(routes[0].visits) == 2
    assert routes[0].transitions[0].vehicle_loads["kg"].amount == 6
    assert not routes[2].visits
