"""Issue 15's transition attributes through the API, end to end: requests written with Google's
own Python client (google-maps-routeoptimization) against a routeopt server, each answer checked
by the independent checker (tests/checker.py recomputes every transition's delay and the
transition costs), bad values answered INVALID_ARGUMENT naming Google's field."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.api_core import exceptions as api_exceptions
from google.maps import routeoptimization_v1 as ro

from tests.rpc.test_google_rules_e2e import delivery, solve, tours, vehicle
from tests.rpc.test_server_e2e import bad_request_fields

COST = "model.transition_attributes.cost"


def test_a_tagged_transition_is_delayed_and_costs_extra(
    client: ro.RouteOptimizationClient,
) -> None:
    # Two drops; leaving the depot (start tag "depot") for a "secure" drop takes a 20-min
    # check and costs 3. The van must leave at 0 so the route's timing shows it.
    secure = delivery("secure", 48.85)
    secure.deliveries[0].tags = ["secure"]
    plain = delivery("plain", 48.86)
    v = vehicle("van", start_tags=["depot"])
    attribute = ro.TransitionAttributes(
        src_tag="depot", dst_tag="secure", delay={"seconds": 1200}, cost=3.0
    )
    response, solution = solve(
        client, tours([secure, plain], [v], transition_attributes=[attribute])
    )  # through the checker
    assert not response.skipped_shipments
    route = response.routes[0]
    delays = [t.delay_duration.seconds for t in route.transitions]
    first = route.visits[0].shipment_index
    assert delays[0] == (1200 if first == 0 else 0)
    assert sum(delays) == (1200 if first == 0 else 0)
    assert route.metrics.delay_duration.seconds == sum(delays)
    assert response.metrics.aggregated_route_metrics.delay_duration.seconds == sum(delays)
    if first == 0:
        assert route.route_costs[COST] == pytest.approx(3.0)
        assert response.metrics.costs[COST] == pytest.approx(3.0)
    assert solution.routes[0].metrics.transition_delay_duration_s == sum(delays)


def test_the_delay_pushes_a_drop_out_of_its_window(client: ro.RouteOptimizationClient) -> None:
    # A "secure" drop 1.1 km away must start within 10 min of a fixed 0:00 start; the check
    # before it takes 15 min: skipped with Google's time-window reason.
    secure = delivery("secure", 48.85, penalty_cost=100.0)
    secure.deliveries[0].tags = ["secure"]
    secure.deliveries[0].time_windows = [{"end_time": {"seconds": 600}}]
    v = vehicle("van", start_tags=["depot"])
    v.start_time_windows = [{"start_time": {"seconds": 0}, "end_time": {"seconds": 0}}]
    attribute = ro.TransitionAttributes(src_tag="depot", dst_tag="secure", delay={"seconds": 900})
    response, _ = solve(client, tours([secure], [v], transition_attributes=[attribute]))
    (skipped,) = response.skipped_shipments
    assert [r.code for r in skipped.reasons] == [
        ro.SkippedShipment.Reason.Code.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS
    ]


BAD: dict[str, Callable[[ro.TransitionAttributes], None]] = {
    "transition_attributes[0].src_tag": lambda a: setattr(a, "excluded_src_tag", "x"),
    "transition_attributes[0].delay": lambda a: setattr(a, "delay", {"seconds": -60}),
    "transition_attributes[0].cost": lambda a: setattr(a, "cost", -1.0),
    "transition_attributes[0].distance_limit.max_meters": lambda a: setattr(
        a, "distance_limit", ro.DistanceLimit(max_meters=1000)
    ),
}


@pytest.mark.parametrize("field", sorted(BAD))
def test_bad_value_is_invalid_argument_naming_googles_field(
    client: ro.RouteOptimizationClient, field: str
) -> None:
    attribute = ro.TransitionAttributes(src_tag="depot", excluded_dst_tag="x")
    BAD[field](attribute)
    request = tours(
        [delivery("s", 48.85)],
        [vehicle("v0", start_tags=["depot"])],
        transition_attributes=[attribute],
    )
    with pytest.raises(api_exceptions.InvalidArgument) as caught:
        client.optimize_tours(request=request, timeout=30)
    assert f"model.{field}" in bad_request_fields(caught.value.response)
