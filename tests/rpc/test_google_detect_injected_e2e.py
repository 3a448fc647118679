"""``solving_mode`` DETECT_SOME_INFEASIBLE_SHIPMENTS and VALIDATE_ONLY with errors in the
``injected_solution_constraint``, end to end with Google's own Python client: Google answers
them in the response's ``validation_errors`` in these modes ("If infeasibilities in
injected_solution_constraint routes are detected they are populated in validation_errors and
skipped_shipments is left empty"), where DEFAULT_SOLVE answers INVALID_ARGUMENT. Both the
errors the model check finds (unknown vehicles or shipments) and the locks only the pre-check
finds (a kept visit that cannot be reached in time) are answered so."""

from __future__ import annotations

import grpc
import pytest
from google.api_core import exceptions as api_exceptions
from google.maps import routeoptimization_v1 as ro

from rpc.pb import route_optimization_service_pb2 as pb
from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc
from tests.rpc.test_google_rules_e2e import delivery, tours, vehicle
from tests.rpc.test_server_e2e import ServerProcess, bad_request_fields

Mode = ro.OptimizeToursRequest.SolvingMode


def _path(ref: ro.OptimizeToursValidationError.FieldReference) -> str:
    """A FieldReference chain as a field path (``a.b[2].c``)."""
    parts = []
    node = ref
    while True:
        part = node.name
        if "index" in node:
            part += f"[{node.index}]"
        elif "key" in node:
            part += f"[{node.key}]"
        parts.append(part)
        if "sub_field" not in node:
            return ".".join(parts)
        node = node.sub_field


def _request(constraint: ro.InjectedSolutionConstraint) -> ro.OptimizeToursRequest:
    orders = [delivery("a", 48.845), delivery("b", 48.855)]
    for order in orders:
        order.deliveries[0].duration = {"seconds": 900}
    request = tours(orders, [vehicle("van-0")])
    request.injected_solution_constraint = constraint
    return request


# a visit that starts 1 s after the previous one ends: the van cannot get there (only the
# pre-check, with the travel times, finds it)
UNREACHABLE = ro.InjectedSolutionConstraint(
    routes=[
        ro.ShipmentRoute(
            vehicle_index=0,
            vehicle_start_time={"seconds": 0},
            vehicle_end_time={"seconds": 7200},
            visits=[
                {"shipment_index": 0, "start_time": {"seconds": 600}},
                {"shipment_index": 1, "start_time": {"seconds": 1501}},
            ],
        )
    ]
)
UNREACHABLE_FIELD = "injected_solution_constraint.routes[0].visits[1].start_time"
# a route of a vehicle the model does not have (the model check finds it)
UNKNOWN_VEHICLE = ro.InjectedSolutionConstraint(routes=[ro.ShipmentRoute(vehicle_index=4)])
UNKNOWN_VEHICLE_FIELD = "injected_solution_constraint.routes[0].vehicle_index"


@pytest.mark.parametrize(
    ("constraint", "field"),
    [(UNREACHABLE, UNREACHABLE_FIELD), (UNKNOWN_VEHICLE, UNKNOWN_VEHICLE_FIELD)],
)
def test_detect_mode_answers_constraint_errors_in_validation_errors(
    client: ro.RouteOptimizationClient, constraint: ro.InjectedSolutionConstraint, field: str
) -> None:
    request = _request(constraint)
    request.solving_mode = Mode.DETECT_SOME_INFEASIBLE_SHIPMENTS
    request.label = "detect"
    response = client.optimize_tours(request=request, timeout=30)
    assert response.request_label == "detect"
    assert field in [_path(e.fields[0]) for e in response.validation_errors]
    assert all(e.error_message for e in response.validation_errors)
    assert not response.skipped_shipments  # Google: left empty
    assert not any(r.visits for r in response.routes)
    # The same request solved is refused, naming the same field.
    request.solving_mode = Mode.DEFAULT_SOLVE
    with pytest.raises(api_exceptions.InvalidArgument) as caught:
        client.optimize_tours(request=request, timeout=30)
    assert field in bad_request_fields(caught.value.response)


def test_detect_mode_caps_the_errors_at_max_validation_errors(
    client: ro.RouteOptimizationClient,
) -> None:
    # Two vans whose kept first visits start 1 s after they leave the depot, out of reach.
    constraint = ro.InjectedSolutionConstraint(
        routes=[
            ro.ShipmentRoute(
                vehicle_index=v,
                vehicle_start_time={"seconds": 0},
                vehicle_end_time={"seconds": 7200},
                visits=[{"shipment_index": v, "start_time": {"seconds": 1}}],
            )
            for v in (0, 1)
        ]
    )
    request = _request(constraint)
    request.model.vehicles.append(vehicle("van-1"))
    request.solving_mode = Mode.DETECT_SOME_INFEASIBLE_SHIPMENTS
    response = client.optimize_tours(request=request, timeout=30)
    assert [_path(e.fields[0]) for e in response.validation_errors] == [
        f"injected_solution_constraint.routes[{v}].visits[0].start_time" for v in (0, 1)
    ]
    request.max_validation_errors = 1
    response = client.optimize_tours(request=request, timeout=30)
    assert len(response.validation_errors) == 1


def test_detect_mode_without_errors_still_prechecks(client: ro.RouteOptimizationClient) -> None:
    # A constraint that holds: no validation errors, the pre-check's skipped shipments only.
    ok = ro.InjectedSolutionConstraint(
        routes=[
            ro.ShipmentRoute(
                vehicle_index=0,
                vehicle_start_time={"seconds": 0},
                vehicle_end_time={"seconds": 7200},
                visits=[{"shipment_index": 0, "start_time": {"seconds": 3000}}],
            )
        ]
    )
    request = _request(ok)
    request.model.shipments[1].load_demands = {"kg": ro.Shipment.Load(amount=5)}
    request.model.vehicles[0].load_limits = {"kg": ro.Vehicle.LoadLimit(max_load=1)}
    request.solving_mode = Mode.DETECT_SOME_INFEASIBLE_SHIPMENTS
    response = client.optimize_tours(request=request, timeout=30)
    assert not response.validation_errors
    assert [s.index for s in response.skipped_shipments] == [1]


def test_validate_only_answers_model_check_errors_of_the_constraint(
    client: ro.RouteOptimizationClient,
) -> None:
    # VALIDATE_ONLY does not run the pre-check (no travel times): the errors of the model
    # check are answered in validation_errors, as for every other field.
    request = _request(UNKNOWN_VEHICLE)
    request.solving_mode = Mode.VALIDATE_ONLY
    response = client.optimize_tours(request=request, timeout=30)
    assert UNKNOWN_VEHICLE_FIELD in [_path(e.fields[0]) for e in response.validation_errors]


def test_detect_mode_long_running_answers_the_same(client: ro.RouteOptimizationClient) -> None:
    request = _request(UNREACHABLE)
    request.solving_mode = Mode.DETECT_SOME_INFEASIBLE_SHIPMENTS
    operation = client.optimize_tours_long_running(request=request, timeout=30)
    response = operation.result(timeout=60)
    assert UNREACHABLE_FIELD in [_path(e.fields[0]) for e in response.validation_errors]
    assert not response.skipped_shipments


def test_detect_mode_stream_answers_the_same(server: ServerProcess) -> None:
    # routeopt's own OptimizeToursStream: one final event with the same answer as
    # OptimizeTours (validation errors of the constraint, or of the model, not an error).
    request = _request(UNREACHABLE)
    request.solving_mode = Mode.DETECT_SOME_INFEASIBLE_SHIPMENTS
    mine = pb.OptimizeToursRequest.FromString(ro.OptimizeToursRequest.serialize(request))
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouteOptimizationStub(channel)
        (event,) = list(stub.OptimizeToursStream(mine, timeout=60))
        assert event.done
        assert UNREACHABLE_FIELD in [e.field_path for e in event.response.validation_errors]
        mine.model.shipments[0].deliveries[0].duration.seconds = -1
        (event,) = list(stub.OptimizeToursStream(mine, timeout=60))
        assert "model.shipments[0].deliveries[0].duration" in [
            e.field_path for e in event.response.validation_errors
        ]
