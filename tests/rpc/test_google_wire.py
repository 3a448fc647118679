"""Wire identity with Google's Route Optimization API: every message routeopt.v1 shares with
google.maps.routeoptimization.v1 has Google's field numbers, types, labels and message types
(compared with the descriptors of Google's published client, google-maps-routeoptimization),
and routeopt's own fields take numbers Google does not use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.maps.routeoptimization_v1.types import route_optimization_service as types
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from rpc.google import schema
from rpc.pb import route_optimization_service_pb2 as pb

GOOGLE_FILE = types.OptimizeToursRequest.pb().DESCRIPTOR.file
GOOGLE_PREFIX = "google.maps.routeoptimization.v1."
MINE_PREFIX = "routeopt.v1."


def _messages(descriptors: Iterator[Descriptor], prefix: str) -> dict[str, Descriptor]:
    out: dict[str, Descriptor] = {}
    todo = list(descriptors)
    while todo:
        d = todo.pop()
        out[d.full_name.removeprefix(prefix)] = d
        todo.extend(d.nested_types)
    return out


GOOGLE = _messages(iter(GOOGLE_FILE.message_types_by_name.values()), GOOGLE_PREFIX)
MINE = _messages(iter(pb.DESCRIPTOR.message_types_by_name.values()), MINE_PREFIX)
SHARED = sorted(set(GOOGLE) & set(MINE))


def _type_name(f: FieldDescriptor, prefix: str) -> str:
    target = f.message_type or f.enum_type
    return "" if target is None else target.full_name.removeprefix(prefix)


def _signature(f: FieldDescriptor, prefix: str) -> tuple[object, ...]:
    return (
        schema.google_name(f.name),
        f.number,
        f.type,
        f.is_repeated,
        _type_name(f, prefix),
        f.has_presence,
    )


def test_the_shared_messages_are_the_ones_of_both_apis() -> None:
    # Every message of Google's requests and responses that routeopt serves exists in routeopt.
    for name in (
        "OptimizeToursRequest",
        "OptimizeToursResponse",
        "ShipmentModel",
        "Shipment.VisitRequest",
        "Vehicle",
        "DistanceLimit",
        "ShipmentRoute.Transition",
        "SkippedShipment.Reason",
        "OptimizeToursValidationError.FieldReference",
        "BatchOptimizeToursRequest.AsyncModelConfig",
        "OptimizeToursUriRequest",
        "OptimizeToursUriResponse",
    ):
        assert name in SHARED
    assert len(SHARED) >= 40


@pytest.mark.parametrize("name", SHARED)
def test_shared_message_fields_are_wire_identical(name: str) -> None:
    google, mine = GOOGLE[name], MINE[name]
    google_by_number = {f.number: f for f in google.fields}
    for f in mine.fields:
        theirs = google_by_number.get(f.number)
        if theirs is None:
            # routeopt's own field: a number Google does not use, a name Google does not use.
            assert schema.google_name(f.name) not in {
                schema.google_name(g.name) for g in google.fields
            }, f"{name}.{f.name} has another number than Google's"
            continue
        assert _signature(f, MINE_PREFIX) == _signature(theirs, GOOGLE_PREFIX), (
            f"{name}.{f.name} differs from Google's {theirs.name}"
        )
        if f.containing_oneof is not None or theirs.containing_oneof is not None:
            assert (f.containing_oneof is None) == (theirs.containing_oneof is None)


def _enums(
    descriptors: dict[str, Descriptor], prefix: str, top: object
) -> dict[str, EnumDescriptor]:
    out = {e.full_name.removeprefix(prefix): e for d in descriptors.values() for e in d.enum_types}
    out.update({e.full_name.removeprefix(prefix): e for e in top})  # type: ignore[attr-defined]
    return out


def test_shared_enums_have_google_numbers() -> None:
    google = _enums(GOOGLE, GOOGLE_PREFIX, GOOGLE_FILE.enum_types_by_name.values())
    mine = _enums(MINE, MINE_PREFIX, pb.DESCRIPTOR.enum_types_by_name.values())
    shared = set(google) & set(mine)
    assert {
        "OptimizeToursRequest.SolvingMode",
        "SkippedShipment.Reason.Code",
        "DataFormat",
    } <= shared
    for name in shared:
        theirs = {v.name: v.number for v in google[name].values}
        for value in mine[name].values:
            if value.name in theirs:
                assert value.number == theirs[value.name], f"{name}.{value.name}"
            else:  # routeopt's own value: a number Google does not use
                assert value.number not in theirs.values(), f"{name}.{value.name}"
        # Every value of Google's is known to routeopt (a request may carry any of them).
        assert set(theirs) <= {v.name for v in mine[name].values}, name


def test_a_google_message_parses_into_routeopt_message_unchanged() -> None:
    request = types.OptimizeToursRequest(
        parent="projects/p",
        populate_polylines=True,
        model=types.ShipmentModel(
            shipments=[
                types.Shipment(
                    label="s",
                    deliveries=[
                        types.Shipment.VisitRequest(
                            tags=["a"],
                            duration={"seconds": 60},
                            time_windows=[types.TimeWindow(end_time={"seconds": 3600})],
                            label="v",
                        )
                    ],
                )
            ],
            vehicles=[types.Vehicle(route_distance_limit=types.DistanceLimit(max_meters=5))],
        ),
    )
    data = types.OptimizeToursRequest.serialize(request)
    mine = pb.OptimizeToursRequest.FromString(data)
    visit = mine.model.shipments[0].deliveries[0]
    assert list(visit.tags) == ["a"]
    assert visit.duration.seconds == 60
    assert visit.time_windows[0].end_time.seconds == 3600
    assert mine.populate_polylines
    assert mine.parent == "projects/p"
    assert mine.model.vehicles[0].route_distance_limit.max_meters == 5
    assert mine.SerializeToString(deterministic=True) == data


def test_routeopt_response_parses_into_google_response() -> None:
    response = pb.OptimizeToursResponse(request_label="x")
    route = response.routes.add(vehicle_index=0)
    visit = route.visits.add(shipment_index=0, shipment_label="s", visit_label="v")
    visit.start_time.seconds = 10
    transition = route.transitions.add()
    transition.wait_duration.seconds = 5
    transition.break_duration.seconds = 7
    theirs = types.OptimizeToursResponse.deserialize(response.SerializeToString())
    assert theirs.routes[0].visits[0].shipment_label == "s"
    assert theirs.routes[0].visits[0].visit_label == "v"
    assert theirs.routes[0].transitions[0].wait_duration.seconds == 5
    assert theirs.routes[0].transitions[0].break_duration.seconds == 7


def test_schema_data_is_generated_from_googles_descriptors() -> None:
    assert schema.render_data(schema.described_messages()) == schema.DATA_PATH.read_text(
        encoding="utf-8"
    ), "rpc/google/schema_data.py is stale; run python -m rpc.google.schema"


def test_readme_field_table_is_current() -> None:
    readme = schema.README_PATH.read_text(encoding="utf-8")
    assert schema.with_field_table(readme) == readme, (
        "README's table of Google's fields is stale; run python -m rpc.google.schema --readme"
    )


def test_field_table_covers_every_request_field_with_a_status() -> None:
    table = schema.field_table()
    assert "| `OptimizeToursRequest.parent` | `string` | honoured |" in table
    assert "| `Vehicle.travel_mode` | `Vehicle.TravelMode` | honoured |" in table
    assert "`Shipment.VisitRequest.tags` | `repeated string` | honoured |" in table
    # Every field of Google's request messages that routeopt reaches is listed once.
    for name in ("OptimizeToursRequest", "ShipmentModel", "Shipment", "Vehicle", "TimeWindow"):
        for field in GOOGLE[name].fields:
            assert f"| `{name}.{schema.google_name(field.name)}` |" in table
