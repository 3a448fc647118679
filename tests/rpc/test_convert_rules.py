"""rpc.convert.rules: the cargo, courier, fleet, cost and soft-limit fields of Google's API
(issue 15) converted to the engine's model, and bad values reported with Google's field
paths."""

from __future__ import annotations

import pytest

from engine.errors import InvalidModelError
from engine.model import (
    IncompatibilityMode,
    PrecedenceRule,
    RequirementMode,
    ShipmentTypeIncompatibility,
    ShipmentTypeRequirement,
    SoftLoadLimit,
)
from rpc.convert.request import validation_code
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.convert_helpers import base_request, convert, dur, latlng


def _two_shipments_two_vehicles() -> pb.OptimizeToursRequest:
    request = base_request()
    request.model.shipments.append(
        pb.Shipment(
            pickups=[pb.Shipment.VisitRequest(arrival_location=latlng(38.72, -9.14))],
            deliveries=[pb.Shipment.VisitRequest(arrival_location=latlng(38.73, -9.15))],
        )
    )
    request.model.vehicles.append(pb.Vehicle(start_location=latlng(38.74, -9.16)))
    return request


def _violations(request: pb.OptimizeToursRequest) -> dict[str, str]:
    with pytest.raises(InvalidModelError) as caught:
        convert(request)
    return {v.field: v.description for v in caught.value.violations}


def test_unset_rules_are_the_engine_defaults() -> None:
    model, _ = convert(base_request())
    assert model.max_active_vehicles is None
    assert model.global_duration_cost_per_hour == 0.0
    assert model.shipment_type_incompatibilities == ()
    assert model.shipment_type_requirements == ()
    assert model.precedence_rules == ()
    s = model.shipments[0]
    assert (s.shipment_type, s.ignore, s.costs_per_vehicle, s.costs_per_vehicle_indices) == (
        "",
        False,
        (),
        (),
    )
    assert s.pickup_to_delivery_relative_detour_limit is None
    assert s.pickup_to_delivery_absolute_detour_limit_s is None
    assert s.pickup_to_delivery_time_limit_s is None
    assert s.deliveries[0].cost == 0.0
    v = model.vehicles[0]
    assert v.route_duration_soft_max_s is None
    assert v.route_duration_cost_per_hour_after_soft_max is None
    assert v.route_distance_soft_max_m is None
    assert v.route_distance_cost_per_kilometer_above_soft_max is None
    assert v.soft_load_limits == {}
    assert (v.used_if_route_is_empty, v.ignore) == (False, False)


def test_model_rules_are_converted() -> None:
    request = _two_shipments_two_vehicles()
    m = request.model
    m.max_active_vehicles = 1
    m.global_duration_cost_per_hour = 2.5
    m.shipment_type_incompatibilities.add(
        types=["fish", "soap"],
        incompatibility_mode=pb.ShipmentTypeIncompatibility.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY,
    )
    m.shipment_type_requirements.add(
        required_shipment_type_alternatives=["ice"],
        dependent_shipment_types=["fish"],
        requirement_mode=pb.ShipmentTypeRequirement.IN_SAME_VEHICLE_AT_DELIVERY_TIME,
    )
    m.precedence_rules.add(
        first_index=1, first_is_delivery=True, second_index=0, second_is_delivery=True
    )
    m.precedence_rules.add(
        first_index=1,
        second_index=0,
        second_is_delivery=True,
        offset_duration=dur(-90, -500_000_000),
    )
    model, _ = convert(request)
    assert model.max_active_vehicles == 1
    assert model.global_duration_cost_per_hour == 2.5
    assert model.shipment_type_incompatibilities == (
        ShipmentTypeIncompatibility(
            types=("fish", "soap"),
            incompatibility_mode=IncompatibilityMode.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY,
        ),
    )
    assert model.shipment_type_requirements == (
        ShipmentTypeRequirement(
            required_shipment_type_alternatives=("ice",),
            dependent_shipment_types=("fish",),
            requirement_mode=RequirementMode.IN_SAME_VEHICLE_AT_DELIVERY_TIME,
        ),
    )
    assert model.precedence_rules == (
        PrecedenceRule(first_index=1, second_index=0, first_is_delivery=True,
                       second_is_delivery=True, offset_duration_s=0.0),
        PrecedenceRule(first_index=1, second_index=0, second_is_delivery=True,
                       offset_duration_s=-90.5),
    )  # fmt: skip


def test_shipment_and_visit_rules_are_converted() -> None:
    request = _two_shipments_two_vehicles()
    s = request.model.shipments[1]
    s.shipment_type = "fish"
    s.ignore = True
    s.costs_per_vehicle.extend([4.0])
    s.costs_per_vehicle_indices.extend([1])
    s.pickup_to_delivery_relative_detour_limit = 0.25
    s.pickup_to_delivery_absolute_detour_limit.CopyFrom(dur(600))
    s.pickup_to_delivery_time_limit.CopyFrom(dur(1800, 500_000_000))
    s.pickups[0].cost = 1.5
    s.deliveries[0].cost = 2.0
    request.model.shipments[0].costs_per_vehicle.extend([3.0, 7.0])
    model, _ = convert(request)
    out = model.shipments[1]
    assert (out.shipment_type, out.ignore) == ("fish", True)
    assert (out.costs_per_vehicle, out.costs_per_vehicle_indices) == ((4.0,), (1,))
    assert out.pickup_to_delivery_relative_detour_limit == 0.25
    assert out.pickup_to_delivery_absolute_detour_limit_s == 600.0
    assert out.pickup_to_delivery_time_limit_s == 1800.5
    assert (out.pickups[0].cost, out.deliveries[0].cost) == (1.5, 2.0)
    assert out.cost_for_vehicle(1) == 4.0
    assert out.cost_for_vehicle(0) == 0.0
    assert model.shipments[0].costs_per_vehicle == (3.0, 7.0)


def test_an_unset_detour_limit_differs_from_zero() -> None:
    request = _two_shipments_two_vehicles()
    s = request.model.shipments[1]
    s.pickup_to_delivery_relative_detour_limit = 0.0
    s.pickup_to_delivery_time_limit.CopyFrom(dur(0))
    model, _ = convert(request)
    out = model.shipments[1]
    assert out.pickup_to_delivery_relative_detour_limit == 0.0
    assert out.pickup_to_delivery_time_limit_s == 0.0
    assert out.pickup_to_delivery_absolute_detour_limit_s is None


def test_vehicle_rules_are_converted() -> None:
    request = _two_shipments_two_vehicles()
    v = request.model.vehicles[0]
    v.route_duration_limit.max_duration.CopyFrom(dur(8 * 3600))
    v.route_duration_limit.soft_max_duration.CopyFrom(dur(6 * 3600))
    v.route_duration_limit.cost_per_hour_after_soft_max = 30.0
    v.route_distance_limit.max_meters = 200_000
    v.route_distance_limit.soft_max_meters = 150_000
    v.route_distance_limit.cost_per_kilometer_above_soft_max = 0.5
    v.load_limits["kg"].soft_max_load = 8
    v.load_limits["kg"].cost_per_unit_above_soft_max = 1.25
    v.load_limits["boxes"].cost_per_unit_above_soft_max = 3.0  # soft max 0, no hard max
    request.model.vehicles[1].used_if_route_is_empty = True
    request.model.vehicles[1].ignore = False
    model, _ = convert(request)
    out = model.vehicles[0]
    assert (out.route_duration_limit_s, out.route_duration_soft_max_s) == (28800.0, 21600.0)
    assert out.route_duration_cost_per_hour_after_soft_max == 30.0
    assert (out.route_distance_limit_m, out.route_distance_soft_max_m) == (200_000.0, 150_000.0)
    assert out.route_distance_cost_per_kilometer_above_soft_max == 0.5
    assert out.load_limits == {"kg": 10}
    assert out.soft_load_limits == {
        "boxes": SoftLoadLimit(soft_max_load=0, cost_per_unit_above_soft_max=3.0),
        "kg": SoftLoadLimit(soft_max_load=8, cost_per_unit_above_soft_max=1.25),
    }
    assert model.vehicles[1].used_if_route_is_empty is True
    assert model.vehicles[1].ignore is False


def test_an_ignored_vehicle_is_converted() -> None:
    request = _two_shipments_two_vehicles()
    request.model.vehicles[1].ignore = True
    model, _ = convert(request)
    assert [v.ignore for v in model.vehicles] == [False, True]


def test_bad_rule_values_name_googles_fields() -> None:
    request = _two_shipments_two_vehicles()
    m = request.model
    m.max_active_vehicles = 0
    m.global_duration_cost_per_hour = float("nan")
    m.shipment_type_incompatibilities.add(types=["a", "b"])  # no mode
    m.shipment_type_incompatibilities.add(types=["a", "b"])
    m.shipment_type_incompatibilities[1].incompatibility_mode = 7  # type: ignore[assignment]
    m.shipment_type_requirements.add(
        dependent_shipment_types=["a"],
        requirement_mode=pb.ShipmentTypeRequirement.PERFORMED_BY_SAME_VEHICLE,
    )
    m.precedence_rules.add(first_index=5, second_index=0, second_is_delivery=True)
    m.precedence_rules.add(second_index=0, offset_duration=dur(-5, 3))
    s = m.shipments[1]
    s.costs_per_vehicle.extend([-1.0, float("inf")])
    s.pickup_to_delivery_relative_detour_limit = -0.5
    s.pickup_to_delivery_time_limit.CopyFrom(dur(-60))
    s.pickups[0].cost = -2.0
    m.shipments[0].pickup_to_delivery_absolute_detour_limit.CopyFrom(dur(60))
    v = m.vehicles[0]
    v.route_distance_limit.soft_max_meters = 1000
    v.route_duration_limit.cost_per_hour_after_soft_max = -3.0
    v.load_limits["kg"].soft_max_load = -1
    v.load_limits["kg"].cost_per_unit_above_soft_max = 1.0
    m.vehicles[1].ignore = True
    m.vehicles[1].used_if_route_is_empty = True
    found = _violations(request)
    for path in (
        "model.max_active_vehicles",
        "model.global_duration_cost_per_hour",
        "model.shipment_type_incompatibilities[0].incompatibility_mode",
        "model.shipment_type_incompatibilities[1].incompatibility_mode",
        "model.shipment_type_requirements[0].required_shipment_type_alternatives",
        "model.precedence_rules[0].first_index",
        "model.precedence_rules[1].first_index",
        "model.precedence_rules[1].offset_duration",
        "model.shipments[1].costs_per_vehicle[0]",
        "model.shipments[1].costs_per_vehicle[1]",
        "model.shipments[1].pickup_to_delivery_relative_detour_limit",
        "model.shipments[1].pickup_to_delivery_time_limit",
        "model.shipments[1].pickups[0].cost",
        "model.shipments[0].pickup_to_delivery_absolute_detour_limit",
        "model.vehicles[0].route_distance_limit.cost_per_kilometer_above_soft_max",
        "model.vehicles[0].route_duration_limit.cost_per_hour_after_soft_max",
        "model.vehicles[0].route_duration_limit.soft_max_duration",
        "model.vehicles[0].load_limits[kg].soft_max_load",
        "model.vehicles[1].used_if_route_is_empty",
    ):
        assert path in found, (path, found)
    assert (
        "unknown value 7" in found["model.shipment_type_incompatibilities[1].incompatibility_mode"]
    )
    assert "is required" in found["model.precedence_rules[1].first_index"]
    assert "same sign" in found["model.precedence_rules[1].offset_duration"]
    assert (
        "needs a shipment with at least one pickup and one delivery"
        in found["model.shipments[0].pickup_to_delivery_absolute_detour_limit"]
    )


def test_soft_limit_above_the_hard_one_is_reported() -> None:
    request = base_request()
    v = request.model.vehicles[0]
    v.route_distance_limit.max_meters = 1000
    v.route_distance_limit.soft_max_meters = 2000
    v.route_distance_limit.cost_per_kilometer_above_soft_max = 1.0
    found = _violations(request)
    assert (
        "less than the hard maximum"
        in found["model.vehicles[0].route_distance_limit.soft_max_meters"]
    )


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("model.shipments[0].deliveries[1].cost", (70, "COST_INVALID")),
        ("model.shipments[0].costs_per_vehicle[2]", (70, "COST_INVALID")),
        ("model.global_duration_cost_per_hour", (70, "COST_INVALID")),
        ("model.vehicles[0].load_limits[kg].cost_per_unit_above_soft_max", (70, "COST_INVALID")),
        ("model.vehicles[0].load_limits[kg].soft_max_load", (40, "LOAD_INVALID")),
        ("model.vehicles[0].route_distance_limit.soft_max_meters", (90, "DISTANCE_LIMIT_INVALID")),
        ("model.vehicles[0].route_duration_limit.soft_max_duration", (30, "DURATION_INVALID")),
        ("model.shipments[0].pickup_to_delivery_time_limit", (30, "DURATION_INVALID")),
        ("model.precedence_rules[0].offset_duration", (30, "DURATION_INVALID")),
        ("model.shipments[0].costs_per_vehicle_indices[0]", (60, "VEHICLE_INDEX_INVALID")),
        ("model.max_active_vehicles", (1, "INVALID_FIELD")),
        ("model.shipment_type_incompatibilities[0].types", (1, "INVALID_FIELD")),
    ],
)
def test_validation_codes_of_the_rule_fields(path: str, code: tuple[int, str]) -> None:
    assert validation_code(path, "must be ...") == code


@pytest.mark.parametrize(
    ("seconds", "nanos", "says"),
    [
        (796_254, -(2**31), "nanos must be in"),
        (-(2**63), 0, "seconds must be within"),
        (-(2**63), -(2**31), "seconds must be within"),
        (-315_576_000_001, 0, "seconds must be within"),
    ],
)
def test_a_negative_offset_at_the_integer_minimums_is_a_violation(
    seconds: int, nanos: int, says: str
) -> None:
    """Regression (fuzz): negating a negative offset_duration at int32/int64's minimum raised
    ValueError (INTERNAL) before its range was checked."""
    request = _two_shipments_two_vehicles()
    rule = request.model.precedence_rules.add(first_index=0, second_index=1)
    rule.offset_duration.seconds = seconds
    rule.offset_duration.nanos = nanos
    found = _violations(request)
    assert says in found["model.precedence_rules[0].offset_duration"], found
