"""Issue 15's load rules and visit types through the API, end to end: requests written with
Google's own Python client (google-maps-routeoptimization) against a routeopt server, each answer
checked by the independent checker (tests/checker.py: start and end load intervals, visit
durations with their visit-type extras), bad values answered INVALID_ARGUMENT naming Google's
field, and Google's load-dependent costs reported with Google's cost keys."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as api_exceptions
from google.maps import routeoptimization_v1 as ro

from tests.rpc.test_google_rules_e2e import delivery, pair, solve, tours, vehicle
from tests.rpc.test_server_e2e import bad_request_fields

LoadLimit = ro.Vehicle.LoadLimit


def kg(amount: int) -> dict[str, ro.Shipment.Load]:
    return {"kg": ro.Shipment.Load(amount=amount)}


def test_start_load_interval_splits_the_drops(client: ro.RouteOptimizationClient) -> None:
    # 3 + 4 kg of drops; the cheap van may leave with at most 5 kg, so the dear one (10 times
    # the cost per km) takes one of them, and no route leaves with more than its maximum.
    shipments = [
        delivery("a", 48.85, load_demands=kg(3)),
        delivery("b", 48.86, load_demands=kg(4)),
    ]
    cheap = vehicle(
        "cheap", load_limits={"kg": LoadLimit(start_load_interval=LoadLimit.Interval(max_=5))}
    )
    dear = vehicle("dear")
    dear.cost_per_kilometer = 10.0
    response, _ = solve(client, tours(shipments, [cheap, dear]))  # through the checker
    assert not response.skipped_shipments
    by_vehicle = {r.vehicle_index: r for r in response.routes if r.visits}
    assert set(by_vehicle) == {0, 1}
    assert by_vehicle[0].transitions[0].vehicle_loads["kg"].amount <= 5


def test_load_cost_per_kilometer_delivers_the_heavy_drop_first(
    client: ro.RouteOptimizationClient,
) -> None:
    # From the depot, a 1 kg drop 1 km south and a 10 kg drop 1.2 km north, open end: distance
    # alone goes south first (3.2 km, not 3.4); at 1 per kg per km the load costs 11 * 1 +
    # 10 * 2.2 = 33 that way and 11 * 1.2 + 1 * 2.2 = 15.4 north first.
    shipments = [delivery("light", 48.831, load_demands=kg(1))]
    shipments.append(delivery("heavy", 48.8508, load_demands=kg(10)))
    plain = vehicle("v0", end=None)
    response, _ = solve(client, tours(shipments, [plain]))
    assert [v.shipment_index for v in response.routes[0].visits] == [0, 1]
    cost = LoadLimit.LoadCost(load_threshold=100, cost_per_unit_below_threshold=1.0)
    loaded = vehicle("v0", end=None, load_limits={"kg": LoadLimit(cost_per_kilometer=cost)})
    response, _ = solve(client, tours(shipments, [loaded]))  # through the checker
    route = response.routes[0]
    assert [v.shipment_index for v in route.visits] == [1, 0]
    key = "model.vehicles.load_limits.cost_per_kilometer"
    assert route.route_costs[key] == pytest.approx(15.4, rel=1e-3)
    assert response.metrics.costs[key] == route.route_costs[key]


def test_a_pickup_over_the_end_maximum_is_skipped_with_googles_reason(
    client: ro.RouteOptimizationClient,
) -> None:
    pickup = ro.Shipment(
        label="p",
        pickups=[ro.Shipment.VisitRequest(arrival_location={"latitude": 48.85, "longitude": 2.34})],
        load_demands=kg(5),
    )
    v = vehicle("v0", load_limits={"kg": LoadLimit(end_load_interval=LoadLimit.Interval(max_=4))})
    response, _ = solve(client, tours([pickup], [v]))
    (skipped,) = response.skipped_shipments
    assert [r.code for r in skipped.reasons] == [
        ro.SkippedShipment.Reason.Code.DEMAND_EXCEEDS_VEHICLE_CAPACITY
    ]
    assert skipped.reasons[0].example_exceeded_capacity_type == "kg"


def test_visit_types_lengthen_the_visit_on_the_vehicle_that_has_them(
    client: ro.RouteOptimizationClient,
) -> None:
    # A 10-min drop with stairs and a fragile parcel; the van spends 15 + 5 min more there.
    shipment = delivery("s", 48.85)
    shipment.deliveries[0].duration = {"seconds": 600}
    shipment.deliveries[0].visit_types = ["stairs", "fragile"]
    v = vehicle("van")
    v.cost_per_hour = 60.0
    v.extra_visit_duration_for_visit_type = {
        "stairs": {"seconds": 900},
        "fragile": {"seconds": 300},
        "pallet": {"seconds": 3600},
    }
    response, solution = solve(client, tours([shipment], [v]))  # through the checker
    route = solution.routes[0]
    assert route.metrics.visit_duration_s == pytest.approx(1800.0)
    visit = route.visits[0]
    assert route.transitions[1].start_time == pytest.approx(visit.start_time + 1800.0)
    assert response.metrics.aggregated_route_metrics.visit_duration.seconds == 1800


def test_visits_report_googles_detour(client: ro.RouteOptimizationClient) -> None:
    # A drop that opens 2 h after the van may leave: its detour is the wait (the checker
    # recomputes every detour from Google's definition).
    shipment = delivery("late", 48.85)
    shipment.deliveries[0].time_windows = [{"start_time": {"seconds": 7200}}]
    v = vehicle("van")
    v.start_time_windows = [{"start_time": {"seconds": 0}, "end_time": {"seconds": 0}}]
    response, solution = solve(client, tours([shipment], [v]))
    (visit,) = solution.routes[0].visits
    travel = solution.routes[0].transitions[0].travel_duration_s
    assert visit.detour_s == pytest.approx(7200 - travel)
    assert response.routes[0].visits[0].HasField("detour")


def test_unloading_policy_last_in_first_out(client: ro.RouteOptimizationClient) -> None:
    # Two parcels picked up northwards and dropped further north in the same order: the
    # natural route is first in, first out; LIFO reverses the drops (the checker verifies).
    shipments = [pair("p1", 48.85, 48.87), pair("p2", 48.86, 48.88)]
    v = vehicle("van", end=None)
    v.unloading_policy = ro.Vehicle.UnloadingPolicy.LAST_IN_FIRST_OUT
    response, _ = solve(client, tours(shipments, [v]))
    assert not response.skipped_shipments
    order = [(x.shipment_index, x.is_pickup) for x in response.routes[0].visits]
    pickups = [s for s, is_pickup in order if is_pickup]
    deliveries = [s for s, is_pickup in order if not is_pickup]
    assert deliveries == pickups[::-1]


def test_routes_report_googles_vehicle_fullness(client: ro.RouteOptimizationClient) -> None:
    # A 4-kg drop on a 10-kg van with a 100-km distance limit and no duration limits: the
    # distance, load and span ratios are set (the checker recomputes them), the others absent.
    shipment = delivery("s", 48.85, load_demands=kg(4))
    v = vehicle("van", load_limits={"kg": LoadLimit(max_load=10)})
    v.route_distance_limit = ro.DistanceLimit(max_meters=100_000)
    response, solution = solve(client, tours([shipment], [v]))
    fullness = response.routes[0].vehicle_fullness
    assert fullness.max_load == pytest.approx(0.4)
    assert fullness.distance == pytest.approx(solution.routes[0].metrics.travel_distance_m / 1e5)
    assert fullness.active_span == pytest.approx(1.0)
    assert fullness.max_fullness == pytest.approx(1.0)
    assert not fullness.HasField("travel_duration")
    assert not fullness.HasField("active_duration")


BAD = {
    "vehicles[0].load_limits[kg].start_load_interval.min": LoadLimit(
        start_load_interval=LoadLimit.Interval(min_=3, max_=2)
    ),
    "vehicles[0].load_limits[kg].end_load_interval.max": LoadLimit(
        end_load_interval=LoadLimit.Interval(max_=-1)
    ),
    "vehicles[0].load_limits[kg].cost_per_kilometer.cost_per_unit_below_threshold": LoadLimit(
        cost_per_kilometer=LoadLimit.LoadCost(cost_per_unit_below_threshold=-1.0)
    ),
    "vehicles[0].load_limits[kg].cost_per_traveled_hour.load_threshold": LoadLimit(
        cost_per_traveled_hour=LoadLimit.LoadCost(load_threshold=-1)
    ),
}

BAD_TYPES = {
    "vehicles[0].extra_visit_duration_for_visit_type[stairs]": lambda r: setattr(
        r.model.vehicles[0],
        "extra_visit_duration_for_visit_type",
        {"stairs": {"seconds": 2_000_000_000}},
    ),
    "shipments[0].deliveries[0].visit_types": lambda r: (
        r.model.shipments[0].deliveries[0].visit_types.extend(["a", "a"])
    ),
}


@pytest.mark.parametrize("field", sorted(BAD_TYPES))
def test_bad_visit_type_is_invalid_argument_naming_googles_field(
    client: ro.RouteOptimizationClient, field: str
) -> None:
    request = tours([delivery("s", 48.85)], [vehicle("v0")])
    BAD_TYPES[field](request)
    with pytest.raises(api_exceptions.InvalidArgument) as caught:
        client.optimize_tours(request=request, timeout=30)
    assert f"model.{field}" in bad_request_fields(caught.value.response)


@pytest.mark.parametrize("field", sorted(BAD))
def test_bad_value_is_invalid_argument_naming_googles_field(
    client: ro.RouteOptimizationClient, field: str
) -> None:
    request = tours([delivery("s", 48.85, load_demands=kg(1))], [vehicle("v0")])
    request.model.vehicles[0].load_limits["kg"] = BAD[field]
    with pytest.raises(api_exceptions.InvalidArgument) as caught:
        client.optimize_tours(request=request, timeout=30)
    assert f"model.{field}" in bad_request_fields(caught.value.response)
