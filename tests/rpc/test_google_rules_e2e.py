"""Issue 15's rules through the API, end to end: requests written with Google's own Python client
(google-maps-routeoptimization) against a routeopt server, each answer checked by the
independent checker (tests/checker.py), each rule shown acting (the same request without it
is solved differently), and bad values answered INVALID_ARGUMENT naming Google's field."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.api_core import exceptions as api_exceptions
from google.maps import routeoptimization_v1 as ro

from engine.solution import Solution
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.test_server_e2e import ServerProcess, bad_request_fields, check_response

PARENT = "projects/rules"
DEPOT = (48.84, 2.34)
Reason = ro.SkippedShipment.Reason.Code


def at(lat: float, lng: float = 2.34) -> dict[str, float]:
    return {"latitude": lat, "longitude": lng}


def delivery(label: str, lat: float, lng: float = 2.34, **fields: Any) -> ro.Shipment:
    return ro.Shipment(
        label=label,
        deliveries=[ro.Shipment.VisitRequest(arrival_location=at(lat, lng), label=label)],
        **fields,
    )


def pair(label: str, pickup: float, drop: float, **fields: Any) -> ro.Shipment:
    return ro.Shipment(
        label=label,
        pickups=[ro.Shipment.VisitRequest(arrival_location=at(pickup))],
        deliveries=[ro.Shipment.VisitRequest(arrival_location=at(drop))],
        **fields,
    )


def vehicle(
    label: str, start: float = DEPOT[0], end: float | None = DEPOT[0], **fields: Any
) -> ro.Vehicle:
    v = ro.Vehicle(label=label, start_location=at(start), cost_per_kilometer=1.0, **fields)
    if end is not None:
        v.end_location = at(end)
    return v


def tours(
    shipments: list[ro.Shipment], vehicles: list[ro.Vehicle], **model: Any
) -> ro.OptimizeToursRequest:
    return ro.OptimizeToursRequest(
        parent=PARENT,
        label="rules",
        timeout={"seconds": 2},
        use_geodesic_distances=True,
        geodesic_meters_per_second=10.0,
        model=ro.ShipmentModel(
            shipments=shipments,
            vehicles=vehicles,
            global_start_time={"seconds": 0},
            global_end_time={"seconds": 24 * 3600},
            **model,
        ),
    )


def solve(
    client: ro.RouteOptimizationClient, request: ro.OptimizeToursRequest
) -> tuple[pb.OptimizeToursResponse, Solution]:
    """Google's client call; the answer (the bytes Google's client parsed) through the checker."""
    response = client.optimize_tours(request=request, timeout=60)
    mine = pb.OptimizeToursResponse.FromString(ro.OptimizeToursResponse.serialize(response))
    request_mine = pb.OptimizeToursRequest.FromString(ro.OptimizeToursRequest.serialize(request))
    return mine, check_response(request_mine, mine)


def sequences(response: pb.OptimizeToursResponse) -> dict[int, list[tuple[int, bool]]]:
    """(shipment index, is pickup) of each used route's visits, by vehicle index."""
    return {
        r.vehicle_index: [(v.shipment_index, v.is_pickup) for v in r.visits]
        for r in response.routes
        if r.visits
    }


def vehicles_of(response: pb.OptimizeToursResponse) -> dict[int, int]:
    """shipment index → vehicle index."""
    return {v.shipment_index: r.vehicle_index for r in response.routes for v in r.visits}


# -- cargo rules --------------------------------------------------------------------------------


def test_incompatibility_splits_two_shipments_onto_two_vehicles(
    client: ro.RouteOptimizationClient,
) -> None:
    shipments = [
        delivery("food", 48.85, shipment_type="food"),
        delivery("bleach", 48.851, shipment_type="bleach"),
    ]
    vehicles = [vehicle("v0", fixed_cost=10.0), vehicle("v1", fixed_cost=10.0)]
    together, _ = solve(client, tours(shipments, vehicles))
    assert len(sequences(together)) == 1  # one vehicle is cheaper
    rule = ro.ShipmentTypeIncompatibility(
        types=["food", "bleach"],
        incompatibility_mode=ro.ShipmentTypeIncompatibility.IncompatibilityMode.NOT_PERFORMED_BY_SAME_VEHICLE,
    )
    apart, _ = solve(client, tours(shipments, vehicles, shipment_type_incompatibilities=[rule]))
    assert sorted(len(s) for s in sequences(apart).values()) == [1, 1]
    assert not apart.skipped_shipments
    assert apart.metrics.total_cost > together.metrics.total_cost


def test_simultaneous_incompatibility_never_has_both_on_board(
    client: ro.RouteOptimizationClient,
) -> None:
    # Two pickups near the depot, two deliveries far away: without the rule the vehicle loads
    # both, then delivers both.
    shipments = [
        pair("food", 48.841, 48.90, shipment_type="food"),
        pair("bleach", 48.842, 48.901, shipment_type="bleach"),
    ]
    vehicles = [vehicle("v0", end=None)]
    free, _ = solve(client, tours(shipments, vehicles))
    (order,) = sequences(free).values()
    assert [p for _, p in order] == [True, True, False, False]
    rule = ro.ShipmentTypeIncompatibility(
        types=["food", "bleach"],
        incompatibility_mode=ro.ShipmentTypeIncompatibility.IncompatibilityMode.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY,
    )
    ruled, _ = solve(client, tours(shipments, vehicles, shipment_type_incompatibilities=[rule]))
    (order,) = sequences(ruled).values()
    assert [p for _, p in order] == [True, False, True, False]
    assert order[0][0] == order[1][0]


def test_requirement_keeps_the_dependent_shipment_with_the_required_one(
    client: ro.RouteOptimizationClient,
) -> None:
    # The fish costs 50 more on v1 (costs_per_vehicle), so it goes on v0, unless it needs the ice,
    # which only v1 may carry.
    shipments = [
        delivery("ice", 48.85, shipment_type="ice", allowed_vehicle_indices=[1]),
        delivery("fish", 48.851, shipment_type="fish", costs_per_vehicle=[0.0, 50.0]),
    ]
    vehicles = [vehicle("v0"), vehicle("v1")]
    free, _ = solve(client, tours(shipments, vehicles))
    assert vehicles_of(free) == {0: 1, 1: 0}
    assert "model.shipments.costs_per_vehicle" not in free.metrics.costs
    rule = ro.ShipmentTypeRequirement(
        required_shipment_type_alternatives=["ice"],
        dependent_shipment_types=["fish"],
        requirement_mode=ro.ShipmentTypeRequirement.RequirementMode.PERFORMED_BY_SAME_VEHICLE,
    )
    ruled, _ = solve(client, tours(shipments, vehicles, shipment_type_requirements=[rule]))
    assert vehicles_of(ruled) == {0: 1, 1: 1}
    assert ruled.metrics.costs["model.shipments.costs_per_vehicle"] == pytest.approx(50.0)


def test_precedence_rule_reorders_the_route(client: ro.RouteOptimizationClient) -> None:
    shipments = [delivery("far", 48.87), delivery("near", 48.85)]
    vehicles = [vehicle("v0", end=None)]
    free, _ = solve(client, tours(shipments, vehicles))
    assert sequences(free) == {0: [(1, False), (0, False)]}
    rule = ro.ShipmentModel.PrecedenceRule(
        first_index=0, first_is_delivery=True, second_index=1, second_is_delivery=True
    )
    ruled, _ = solve(client, tours(shipments, vehicles, precedence_rules=[rule]))
    assert sequences(ruled) == {0: [(0, False), (1, False)]}


# -- courier rules ------------------------------------------------------------------------------


def test_detour_limit_keeps_other_stops_out_of_a_pickup_and_delivery(
    client: ro.RouteOptimizationClient,
) -> None:
    # On the way from the pickup to the delivery of "meal" lies the drop of "parcel".
    shipments = [pair("meal", 48.841, 48.86), delivery("parcel", 48.85, 2.3405)]
    vehicles = [vehicle("v0", end=None)]
    free, _ = solve(client, tours(shipments, vehicles))
    assert sequences(free) == {0: [(0, True), (1, False), (0, False)]}
    shipments[0].pickup_to_delivery_absolute_detour_limit = {"seconds": 1}
    ruled, _ = solve(client, tours(shipments, vehicles))
    (order,) = sequences(ruled).values()
    i = order.index((0, True))
    assert order[i + 1] == (0, False)
    # The time limit: at most 60 s from pickup to delivery, but the drive takes 211 s.
    shipments[0].pickup_to_delivery_absolute_detour_limit = None
    shipments[0].pickup_to_delivery_time_limit = {"seconds": 60}
    shipments[0].penalty_cost = 1000.0
    limited, _ = solve(client, tours(shipments, vehicles))
    assert [s.index for s in limited.skipped_shipments] == [0]


# -- fleet --------------------------------------------------------------------------------------


def test_max_active_vehicles_puts_everything_on_one_vehicle(
    client: ro.RouteOptimizationClient,
) -> None:
    shipments = [delivery("south", 48.801), delivery("north", 48.901)]
    vehicles = [vehicle("v0", start=48.80, end=48.80), vehicle("v1", start=48.90, end=48.90)]
    free, _ = solve(client, tours(shipments, vehicles))
    assert len(sequences(free)) == 2
    limited, _ = solve(client, tours(shipments, vehicles, max_active_vehicles=1))
    assert len(sequences(limited)) == 1
    assert not limited.skipped_shipments
    assert limited.metrics.used_vehicle_count == 1


def test_ignored_shipment_and_vehicle_are_skipped_with_googles_codes(
    client: ro.RouteOptimizationClient,
) -> None:
    shipments = [
        delivery("ignored", 48.85, ignore=True),
        delivery("only-v1", 48.851, allowed_vehicle_indices=[1]),
        delivery("served", 48.852),
    ]
    vehicles = [vehicle("v0"), vehicle("v1", ignore=True)]
    response, _ = solve(client, tours(shipments, vehicles))
    assert vehicles_of(response) == {2: 0}
    codes = {s.index: [r.code for r in s.reasons] for s in response.skipped_shipments}
    # One reason per vehicle: v0 is not allowed, v1 is ignored.
    assert codes == {
        0: [Reason.SHIPMENT_IGNORED],
        1: [Reason.VEHICLE_NOT_ALLOWED, Reason.VEHICLE_IGNORED],
    }
    assert response.metrics.skipped_mandatory_shipment_count == 1  # the ignored one is not counted


def test_vehicle_used_if_route_is_empty_drives_to_its_end(
    client: ro.RouteOptimizationClient,
) -> None:
    shipments = [delivery("s", 48.85, allowed_vehicle_indices=[0])]
    vehicles = [
        vehicle("v0"),
        vehicle("v1", end=48.85, fixed_cost=7.0, used_if_route_is_empty=True),
    ]
    response, _ = solve(client, tours(shipments, vehicles))
    empty = response.routes[1]
    assert not empty.visits
    assert empty.HasField("vehicle_start_time")
    assert len(empty.transitions) == 1
    assert empty.transitions[0].travel_distance_meters > 1000
    assert empty.route_costs["model.vehicles.fixed_cost"] == pytest.approx(7.0)
    assert response.metrics.used_vehicle_count == 2
    unused, _ = solve(client, tours(shipments, [vehicles[0], vehicle("v1", end=48.85)]))
    assert not unused.routes[1].HasField("vehicle_start_time")


# -- costs and soft limits ----------------------------------------------------------------------


def test_visit_costs_and_global_duration_cost(client: ro.RouteOptimizationClient) -> None:
    near = ro.Shipment.VisitRequest(arrival_location=at(48.85), cost=100.0)
    far = ro.Shipment.VisitRequest(arrival_location=at(48.86), cost=1.0)
    shipments = [ro.Shipment(label="s", deliveries=[near, far])]
    response, _ = solve(
        client, tours(shipments, [vehicle("v0")], global_duration_cost_per_hour=60.0)
    )
    (visit,) = response.routes[0].visits
    assert visit.visit_request_index == 1  # the far one: its visit cost is lower
    costs = response.metrics.costs
    assert costs["model.shipments.deliveries.cost"] == pytest.approx(1.0)
    hours = (
        response.metrics.latest_vehicle_end_time.ToSeconds()
        - response.metrics.earliest_vehicle_start_time.ToSeconds()
    ) / 3600
    assert costs["model.global_duration_cost_per_hour"] == pytest.approx(60.0 * hours, rel=1e-6)


def test_soft_limits_cost_what_exceeds_them(client: ro.RouteOptimizationClient) -> None:
    shipments = [
        delivery(f"d{i}", 48.85 + 0.005 * i, load_demands={"kg": ro.Shipment.Load(amount=10)})
        for i in range(2)
    ]
    v = vehicle(
        "v0",
        load_limits={
            "kg": ro.Vehicle.LoadLimit(
                max_load=30, soft_max_load=5, cost_per_unit_above_soft_max=2.0
            )
        },
        route_distance_limit=ro.DistanceLimit(
            soft_max_meters=1000, cost_per_kilometer_above_soft_max=5.0
        ),
        route_duration_limit=ro.Vehicle.DurationLimit(
            soft_max_duration={"seconds": 60}, cost_per_hour_after_soft_max=36.0
        ),
    )
    response, solution = solve(client, tours(shipments, [v]))
    costs = response.routes[0].route_costs
    assert costs["model.vehicles.load_limits.cost_per_unit_above_soft_max"] == pytest.approx(30.0)
    km = response.routes[0].metrics.travel_distance_meters / 1000
    assert costs["model.vehicles.route_distance_limit.cost_per_kilometer_above_soft_max"] == (
        pytest.approx(5.0 * (km - 1.0))
    )
    route = solution.routes[0]
    assert route.vehicle_start_time is not None
    assert route.vehicle_end_time is not None
    hours = (route.vehicle_end_time - route.vehicle_start_time - 60) / 3600
    assert costs["model.vehicles.route_duration_limit.cost_per_hour_after_soft_max"] == (
        pytest.approx(36.0 * hours)
    )


# -- bad values ---------------------------------------------------------------------------------


BAD = {
    "max_active_vehicles": lambda r: setattr(r.model, "max_active_vehicles", 0),
    "shipment_type_incompatibilities[0].incompatibility_mode": lambda r: setattr(
        r.model,
        "shipment_type_incompatibilities",
        [ro.ShipmentTypeIncompatibility(types=["a", "b"])],
    ),
    "shipment_type_requirements[0].dependent_shipment_types": lambda r: setattr(
        r.model,
        "shipment_type_requirements",
        [
            ro.ShipmentTypeRequirement(
                required_shipment_type_alternatives=["a"],
                requirement_mode=ro.ShipmentTypeRequirement.RequirementMode.PERFORMED_BY_SAME_VEHICLE,
            )
        ],
    ),
    "precedence_rules[0].second_index": lambda r: setattr(
        r.model,
        "precedence_rules",
        [ro.ShipmentModel.PrecedenceRule(first_index=0, first_is_delivery=True, second_index=9)],
    ),
    "shipments[0].costs_per_vehicle": lambda r: setattr(
        r.model.shipments[0], "costs_per_vehicle", [1.0, 2.0]
    ),
    "shipments[0].deliveries[0].cost": lambda r: setattr(
        r.model.shipments[0].deliveries[0], "cost", -1.0
    ),
    "shipments[0].pickup_to_delivery_time_limit": lambda r: setattr(
        r.model.shipments[0], "pickup_to_delivery_time_limit", {"seconds": 60}
    ),
    "vehicles[0].route_distance_limit.cost_per_kilometer_above_soft_max": lambda r: setattr(
        r.model.vehicles[0], "route_distance_limit", ro.DistanceLimit(soft_max_meters=1000)
    ),
    "vehicles[0].load_limits[kg].cost_per_unit_above_soft_max": lambda r: setattr(
        r.model.vehicles[0],
        "load_limits",
        {"kg": ro.Vehicle.LoadLimit(soft_max_load=1, cost_per_unit_above_soft_max=-1.0)},
    ),
    "vehicles[0].used_if_route_is_empty": lambda r: (
        setattr(r.model.vehicles[0], "ignore", True),
        setattr(r.model.vehicles[0], "used_if_route_is_empty", True),
    ),
}


@pytest.mark.parametrize("field", sorted(BAD))
def test_bad_value_is_invalid_argument_naming_googles_field(
    client: ro.RouteOptimizationClient, field: str
) -> None:
    request = tours([delivery("s", 48.85)], [vehicle("v0")])
    BAD[field](request)
    with pytest.raises(api_exceptions.InvalidArgument) as caught:
        client.optimize_tours(request=request, timeout=30)
    assert f"model.{field}" in bad_request_fields(caught.value.response)


def test_a_rule_pyvrp_cannot_express_is_refused_naming_it(server: ServerProcess) -> None:
    # routeopt's own service, same messages: an explicit backend that cannot honour a rule.
    request = pb.OptimizeToursRequest.FromString(
        ro.OptimizeToursRequest.serialize(
            tours(
                [delivery("a", 48.85), delivery("b", 48.86)], [vehicle("v0")], max_active_vehicles=1
            )
        )
    )
    request.model.vehicles.add().CopyFrom(request.model.vehicles[0])
    request.solver.backend = "pyvrp"
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.OptimizeTours(request, timeout=30)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "model.max_active_vehicles" in bad_request_fields(caught.value)
