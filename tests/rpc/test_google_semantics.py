"""Google's semantics where the names are Google's: nothing silently dropped (unknown fields and
fields of Google's API routeopt does not honour are violations naming them), parent,
max_validation_errors, solving modes, locations with matrices."""

from __future__ import annotations

import pytest
from google.maps.routeoptimization_v1.types import route_optimization_service as g
from google.type import latlng_pb2

from engine.errors import FieldViolation, InvalidModelError
from engine.model import RouteModifiers, TravelMode
from rpc.convert import convert_or_validate, violations_to_validation_errors
from rpc.google.unknown import UNSUPPORTED, unhonoured_fields
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.convert_helpers import DEFAULT_SPEED, base_request, convert, latlng, matrix_request


def _violations(request: pb.OptimizeToursRequest) -> dict[str, str]:
    with pytest.raises(InvalidModelError) as caught:
        convert(request)
    return {v.field: v.description for v in caught.value.violations}


def _from_google(request: g.OptimizeToursRequest) -> pb.OptimizeToursRequest:
    """What routeopt parses from the bytes Google's client sends."""
    return pb.OptimizeToursRequest.FromString(g.OptimizeToursRequest.serialize(request))


def test_known_but_unsupported_field_is_named() -> None:
    theirs = g.OptimizeToursRequest.deserialize(base_request().SerializeToString())
    theirs.model.shipments[0].deliveries[0].departure_location = latlng_pb2.LatLng(latitude=1.0)
    theirs.consider_road_traffic = True
    found = _violations(_from_google(theirs))
    assert set(found) == {
        "model.shipments[0].deliveries[0].departure_location",
        "consider_road_traffic",
    }
    assert found["consider_road_traffic"] == (
        f"{UNSUPPORTED}: routeopt's road network has no traffic data"
    )
    assert all(d.startswith(UNSUPPORTED) for d in found.values())


def test_google_travel_mode_is_read_with_its_number() -> None:
    """Google's WALKING (2) from Google's client is the engine's WALKING; routeopt's TRUCK is
    100 (a number Google does not use)."""
    theirs = g.OptimizeToursRequest.deserialize(base_request().SerializeToString())
    theirs.model.vehicles[0].travel_mode = g.Vehicle.TravelMode.WALKING
    model, _ = convert(_from_google(theirs))
    assert model.vehicles[0].travel_mode == TravelMode.WALKING
    assert pb.Vehicle.TRUCK == TravelMode.TRUCK == 100
    assert pb.Vehicle.WALKING == g.Vehicle.TravelMode.WALKING


def test_google_route_modifiers_are_read() -> None:
    theirs = g.OptimizeToursRequest.deserialize(base_request().SerializeToString())
    theirs.model.vehicles[0].route_modifiers = g.RouteModifiers(
        avoid_tolls=True, avoid_ferries=True, avoid_indoor=True
    )
    model, _ = convert(_from_google(theirs))
    assert model.vehicles[0].route_modifiers == RouteModifiers(
        avoid_tolls=True, avoid_highways=False, avoid_ferries=True, avoid_indoor=True
    )


def test_unknown_field_is_named_by_number() -> None:
    data = base_request().SerializeToString()
    # Field 111 (varint 7) of a VisitRequest: in neither routeopt's schema nor Google's.
    request = pb.OptimizeToursRequest.FromString(data)
    request.model.shipments[0].deliveries[0].MergeFromString(b"\xf8\x06\x07")
    found = _violations(request)
    assert list(found) == ["model.shipments[0].deliveries[0].#111"]
    assert (
        "field number 111 is not part of Shipment.VisitRequest"
        in found["model.shipments[0].deliveries[0].#111"]
    )


def test_unknown_fields_in_map_values_and_nested_messages_are_found() -> None:
    request = base_request()
    limit = request.model.vehicles[0].load_limits["kg"]
    # Field 111 (varint 7): Google's LoadLimit fields are all honoured (issue 15).
    limit.MergeFromString(b"\xf8\x06\x07")
    below = b"\x21" + bytes(8)  # cost_per_kilometer_below_soft_max (4): a double
    request.model.vehicles[0].route_distance_limit.MergeFromString(below)
    paths = {v.field for v in unhonoured_fields(request)}
    assert paths == {
        "model.vehicles[0].load_limits[kg].#111",
        "model.vehicles[0].route_distance_limit.cost_per_kilometer_below_soft_max",
    }


def test_unsupported_field_validation_error_in_validate_only() -> None:
    theirs = g.OptimizeToursRequest.deserialize(base_request().SerializeToString())
    theirs.solving_mode = g.OptimizeToursRequest.SolvingMode.VALIDATE_ONLY
    theirs.model.objectives = [
        g.ShipmentModel.Objective(type_=g.ShipmentModel.Objective.Type.MIN_DISTANCE, weight=1.0)
    ]
    response = convert_or_validate(
        _from_google(theirs), default_geodesic_meters_per_second=DEFAULT_SPEED
    )
    assert isinstance(response, pb.OptimizeToursResponse)
    (error,) = response.validation_errors
    assert (error.code, error.display_name) == (2, "UNSUPPORTED_FIELD")
    assert error.fields[0].name == "model"
    assert error.fields[0].sub_field.name == "objectives"


@pytest.mark.parametrize("parent", ["", "projects/p-1", "projects/p/locations/europe-west1"])
def test_parent_accepted(parent: str) -> None:
    request = base_request()
    request.parent = parent
    convert(request)


@pytest.mark.parametrize("parent", ["p", "projects/", "projects/p/x", "organizations/o"])
def test_parent_malformed(parent: str) -> None:
    request = base_request()
    request.parent = parent
    assert list(_violations(request)) == ["parent"]


def _invalid_request() -> pb.OptimizeToursRequest:
    request = base_request()
    request.solving_mode = pb.OptimizeToursRequest.VALIDATE_ONLY
    for _ in range(3):
        request.model.shipments.add()  # no visit: one violation each
    return request


def test_max_validation_errors() -> None:
    request = _invalid_request()
    response = convert_or_validate(request, default_geodesic_meters_per_second=DEFAULT_SPEED)
    assert isinstance(response, pb.OptimizeToursResponse)
    assert len(response.validation_errors) == 3
    request.max_validation_errors = 2
    response = convert_or_validate(request, default_geodesic_meters_per_second=DEFAULT_SPEED)
    assert isinstance(response, pb.OptimizeToursResponse)
    assert len(response.validation_errors) == 2
    request.max_validation_errors = 0
    assert "max_validation_errors" in _violations(
        pb.OptimizeToursRequest(model=base_request().model, max_validation_errors=0, solving_mode=0)
    )


def test_transform_and_return_request_returns_the_request() -> None:
    request = base_request()
    request.solving_mode = pb.OptimizeToursRequest.TRANSFORM_AND_RETURN_REQUEST
    request.label = "t"
    response = convert_or_validate(request, default_geodesic_meters_per_second=DEFAULT_SPEED)
    assert isinstance(response, pb.OptimizeToursResponse)
    assert response.processed_request == request
    assert response.request_label == "t"
    assert not response.routes


def test_detect_some_infeasible_shipments_prechecks_only() -> None:
    request = base_request()
    request.solving_mode = pb.OptimizeToursRequest.DETECT_SOME_INFEASIBLE_SHIPMENTS
    converted = convert_or_validate(request, default_geodesic_meters_per_second=DEFAULT_SPEED)
    assert not isinstance(converted, pb.OptimizeToursResponse)
    _, settings = converted
    assert settings.solve_options(1.0, 1).precheck_only


def test_locations_with_matrices_rejected_as_google_does() -> None:
    request = matrix_request()
    request.model.shipments[0].deliveries[0].arrival_location.CopyFrom(latlng(1, 2))
    request.model.vehicles[0].start_location.CopyFrom(latlng(1, 2))
    found = _violations(request)
    assert {
        "model.shipments[0].deliveries[0].arrival_location",
        "model.vehicles[0].start_location",
    } <= set(found)


def test_validation_error_codes_are_documented_kinds() -> None:
    errors = violations_to_validation_errors(
        [FieldViolation("model.vehicles[0].start_time_windows[0].end_time", "bad")]
    )
    assert (errors[0].code, errors[0].display_name) == (20, "TIME_INVALID")
