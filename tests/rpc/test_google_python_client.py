"""Google's own Python client (google-maps-routeoptimization), unchanged apart from the channel,
against a routeopt server: optimize_tours, optimize_tours_long_running(...).result(),
batch_optimize_tours(...).result() with model configs in the storage root (JSON and
PROTO_TEXT), and optimize_tours_uri; every answer checked by the independent checker.
Errors come back as Google's client raises them: INVALID_ARGUMENT naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.api_core import exceptions as api_exceptions
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.maps import routeoptimization_v1 as ro
from google.maps.routeoptimization_v1.services.route_optimization.transports import (
    RouteOptimizationGrpcTransport,
)
from google.protobuf import json_format, text_format

from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.test_server_e2e import ServerProcess, bad_request_fields, check_response

PARENT = "projects/my-project"


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("storage")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, storage: Path) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("google-client") / "server.log"
    srv = ServerProcess(log, "--osm", "none", "--workers", "2", "--storage-root", str(storage))
    yield srv
    assert srv.terminate() == 0, srv.log()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[ro.RouteOptimizationClient]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield ro.RouteOptimizationClient(transport=RouteOptimizationGrpcTransport(channel=channel))
    channel.close()


def google_request(n: int = 4, label: str = "g") -> ro.OptimizeToursRequest:
    """A request written with Google's types, as a Google user writes it."""
    shipments = []
    for i in range(n):
        shipments.append(
            ro.Shipment(
                label=f"s{i}",
                deliveries=[
                    ro.Shipment.VisitRequest(
                        arrival_location={"latitude": 48.85 + 0.01 * i, "longitude": 2.35},
                        duration={"seconds": 300},
                        time_windows=[
                            ro.TimeWindow(start_time={"seconds": 0}, end_time={"seconds": 8 * 3600})
                        ],
                        label=f"drop-{i}",
                    )
                ],
                load_demands={"kg": ro.Shipment.Load(amount=10)},
            )
        )
    vehicle = ro.Vehicle(
        label="van",
        start_location={"latitude": 48.84, "longitude": 2.34},
        end_location={"latitude": 48.84, "longitude": 2.34},
        load_limits={"kg": ro.Vehicle.LoadLimit(max_load=100)},
        cost_per_kilometer=1.0,
        cost_per_hour=10.0,
    )
    return ro.OptimizeToursRequest(
        parent=PARENT,
        label=label,
        timeout={"seconds": 3},
        use_geodesic_distances=True,
        model=ro.ShipmentModel(
            shipments=shipments,
            vehicles=[vehicle],
            global_start_time={"seconds": 0},
            global_end_time={"seconds": 24 * 3600},
        ),
    )


def _mine(request: ro.OptimizeToursRequest) -> pb.OptimizeToursRequest:
    return pb.OptimizeToursRequest.FromString(ro.OptimizeToursRequest.serialize(request))


def check(request: ro.OptimizeToursRequest, response: ro.OptimizeToursResponse) -> None:
    """The independent checker on Google's response (the bytes Google's client parsed)."""
    mine = pb.OptimizeToursResponse.FromString(ro.OptimizeToursResponse.serialize(response))
    solution = check_response(_mine(request), mine)
    assert not solution.skipped_shipments
    assert response.request_label == request.label
    visits = [v for r in response.routes for v in r.visits]
    assert sorted(v.shipment_label for v in visits) == sorted(
        s.label for s in request.model.shipments
    )
    assert all(v.visit_label.startswith("drop-") for v in visits)
    assert response.metrics.total_cost > 0


def test_optimize_tours(client: ro.RouteOptimizationClient) -> None:
    request = google_request()
    response = client.optimize_tours(request=request, timeout=30)
    check(request, response)


def test_optimize_tours_long_running(client: ro.RouteOptimizationClient) -> None:
    request = google_request(label="lro")
    operation = client.optimize_tours_long_running(request=request, timeout=30)
    assert operation.operation.name.startswith(f"{PARENT}/operations/")
    response = operation.result(timeout=60)
    assert isinstance(response, ro.OptimizeToursResponse)
    check(request, response)
    assert isinstance(operation.metadata, ro.OptimizeToursLongRunningMetadata)


def test_batch_optimize_tours(client: ro.RouteOptimizationClient, storage: Path) -> None:
    first, second = google_request(3, "json"), google_request(5, "text")
    bucket = storage / "bucket" / "in"
    bucket.mkdir(parents=True)
    (bucket / "a.json").write_text(json_format.MessageToJson(_mine(first)))
    (bucket / "b.txtpb").write_text(text_format.MessageToString(_mine(second)))
    configs = [
        ro.BatchOptimizeToursRequest.AsyncModelConfig(
            display_name="a",
            input_config=ro.InputConfig(
                gcs_source=ro.GcsSource(uri="gs://bucket/in/a.json"),
                data_format=ro.DataFormat.JSON,
            ),
            output_config=ro.OutputConfig(
                gcs_destination=ro.GcsDestination(uri="gs://bucket/out/a.json"),
                data_format=ro.DataFormat.JSON,
            ),
        ),
        ro.BatchOptimizeToursRequest.AsyncModelConfig(
            input_config=ro.InputConfig(
                gcs_source=ro.GcsSource(uri="gs://bucket/in/b.txtpb"),
                data_format=ro.DataFormat.PROTO_TEXT,
            ),
            output_config=ro.OutputConfig(
                gcs_destination=ro.GcsDestination(uri="gs://bucket/out/b.txtpb"),
                data_format=ro.DataFormat.PROTO_TEXT,
            ),
        ),
    ]
    operation = client.batch_optimize_tours(
        request=ro.BatchOptimizeToursRequest(parent=PARENT, model_configs=configs), timeout=30
    )
    assert isinstance(operation.result(timeout=90), ro.BatchOptimizeToursResponse)
    out = storage / "bucket" / "out"
    a = json_format.Parse((out / "a.json").read_text(), pb.OptimizeToursResponse())
    b = text_format.Parse((out / "b.txtpb").read_text(), pb.OptimizeToursResponse())
    for request, response in ((first, a), (second, b)):
        check(request, ro.OptimizeToursResponse.deserialize(response.SerializeToString()))


def test_optimize_tours_uri(client: ro.RouteOptimizationClient, storage: Path) -> None:
    request = google_request(2, "uri")
    folder = storage / "uris"
    folder.mkdir()
    (folder / "req.json").write_text(json_format.MessageToJson(_mine(request)))
    operation = client.optimize_tours_uri(
        request=ro.OptimizeToursUriRequest(
            parent=PARENT,
            input=ro.Uri(uri="gs://uris/req.json"),
            output=ro.Uri(uri="gs://uris/out/resp.json"),
        ),
        timeout=30,
    )
    result = operation.result(timeout=60)
    assert result.output.uri == "gs://uris/out/resp.json"
    response = json_format.Parse(
        (folder / "out" / "resp.json").read_text(), pb.OptimizeToursResponse()
    )
    check(request, ro.OptimizeToursResponse.deserialize(response.SerializeToString()))


def test_known_but_unsupported_field_is_invalid_argument(
    client: ro.RouteOptimizationClient,
) -> None:
    request = google_request()
    request.consider_road_traffic = True
    with pytest.raises(api_exceptions.InvalidArgument) as caught:
        client.optimize_tours(request=request, timeout=30)
    fields = bad_request_fields(caught.value.response)  # the grpc.RpcError
    assert fields == ["consider_road_traffic"]


def test_unknown_field_is_invalid_argument(server: ServerProcess) -> None:
    # A field number neither API has (raw bytes: no client can build it otherwise).
    data = ro.OptimizeToursRequest.serialize(google_request()) + b"\xa8\x1f\x01"  # field 501
    call = server.channel.unary_unary(
        "/google.maps.routeoptimization.v1.RouteOptimization/OptimizeTours",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as caught:
        call(data, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(caught.value) == ["#501"]


def test_path_out_of_the_storage_root_is_refused(
    client: ro.RouteOptimizationClient, storage: Path
) -> None:
    (storage / "escape").symlink_to(storage.parent)
    for uri in ("gs://bucket/../../etc/passwd", "gs://escape/x.json"):
        with pytest.raises(api_exceptions.InvalidArgument) as caught:
            client.optimize_tours_uri(
                request=ro.OptimizeToursUriRequest(
                    input=ro.Uri(uri=uri), output=ro.Uri(uri="gs://ok/out.json")
                ),
                timeout=30,
            )
        assert bad_request_fields(caught.value.response) == ["input.uri"]


def test_detect_some_infeasible_shipments(client: ro.RouteOptimizationClient) -> None:
    request = google_request(3)
    request.model.shipments[1].load_demands["kg"].amount = 500  # more than the van's 100
    request.solving_mode = ro.OptimizeToursRequest.SolvingMode.DETECT_SOME_INFEASIBLE_SHIPMENTS
    response = client.optimize_tours(request=request, timeout=30)
    assert not any(r.visits for r in response.routes)
    (skipped,) = response.skipped_shipments
    assert skipped.index == 1
    reason = skipped.reasons[0]
    assert reason.code == ro.SkippedShipment.Reason.Code.DEMAND_EXCEEDS_VEHICLE_CAPACITY
    assert reason.example_exceeded_capacity_type == "kg"


def test_validate_only_with_googles_validation_errors(client: ro.RouteOptimizationClient) -> None:
    request = google_request(3)
    request.solving_mode = ro.OptimizeToursRequest.SolvingMode.VALIDATE_ONLY
    request.max_validation_errors = 1
    for shipment in request.model.shipments:
        shipment.deliveries[0].duration = {"seconds": -5}
    response = client.optimize_tours(request=request, timeout=30)
    (error,) = response.validation_errors
    assert (error.code, error.display_name) == (30, "DURATION_INVALID")
    ref = error.fields[0]
    assert (ref.name, ref.sub_field.name, ref.sub_field.index) == ("model", "shipments", 0)
    assert error.error_message


def test_uri_request_fields_are_validated(client: ro.RouteOptimizationClient) -> None:
    with pytest.raises(api_exceptions.InvalidArgument) as caught:
        client.optimize_tours_uri(
            request=ro.OptimizeToursUriRequest(parent="not-a-project", input=ro.Uri(uri="")),
            timeout=30,
        )
    assert sorted(bad_request_fields(caught.value.response)) == [
        "input.uri",
        "output.uri",
        "parent",
    ]


def test_batch_output_that_cannot_be_written_fails_the_batch(
    client: ro.RouteOptimizationClient, storage: Path
) -> None:
    request = google_request(2, "unwritable")
    folder = storage / "unwritable"
    (folder / "taken").mkdir(parents=True)  # a directory where the response file should go
    (folder / "in.json").write_text(json_format.MessageToJson(_mine(request)))
    config = ro.BatchOptimizeToursRequest.AsyncModelConfig(
        input_config=ro.InputConfig(
            gcs_source=ro.GcsSource(uri="gs://unwritable/in.json"),
            data_format=ro.DataFormat.JSON,
        ),
        output_config=ro.OutputConfig(
            gcs_destination=ro.GcsDestination(uri="gs://unwritable/taken"),
            data_format=ro.DataFormat.JSON,
        ),
    )
    operation = client.batch_optimize_tours(
        request=ro.BatchOptimizeToursRequest(model_configs=[config]), timeout=30
    )
    assert operation.operation.name.startswith("projects/-/operations/")
    with pytest.raises(api_exceptions.GoogleAPICallError) as caught:
        operation.result(timeout=60)
    assert caught.value.code == 400  # INVALID_ARGUMENT, as Google's client maps it
    assert "model_configs[0].output_config.gcs_destination.uri" in str(caught.value)


def test_routeopt_service_has_the_same_calls_with_its_own_types(
    server: ServerProcess, storage: Path
) -> None:
    """routeopt.v1 serves OptimizeToursUri and file-based batches too; its operations keep
    routeopt's names and type URLs (mixed inline and file items in one batch)."""
    inline, from_file = _mine(google_request(2, "inline")), _mine(google_request(3, "file"))
    (storage / "mixed").mkdir()
    (storage / "mixed" / "in.json").write_text(json_format.MessageToJson(from_file))
    batch = pb.BatchOptimizeToursRequest(requests=[inline], label="mixed")
    config = batch.model_configs.add()
    config.input_config.gcs_source.uri = "gs://mixed/in.json"
    config.input_config.data_format = pb.JSON
    config.output_config.gcs_destination.uri = "gs://mixed/out.json"
    config.output_config.data_format = pb.JSON
    operation = server.stub.BatchOptimizeTours(batch, timeout=30)
    assert operation.name.startswith("operations/")
    ops = operations_pb2_grpc.OperationsStub(server.channel)
    wait = operations_pb2.WaitOperationRequest(name=operation.name)
    wait.timeout.FromSeconds(60)
    done = ops.WaitOperation(wait, timeout=90)
    assert done.done
    assert done.response.type_url == "type.googleapis.com/routeopt.v1.BatchOptimizeToursResponse"
    result = pb.BatchOptimizeToursResponse()
    assert done.response.Unpack(result)
    assert [item.state for item in result.items] == [pb.SUCCEEDED, pb.SUCCEEDED]
    item = ops.GetOperation(operations_pb2.GetOperationRequest(name=result.items[0].operation))
    first = pb.OptimizeToursResponse()
    assert item.response.Unpack(first)
    check_response(inline, first)
    written = json_format.Parse(
        (storage / "mixed" / "out.json").read_text(), pb.OptimizeToursResponse()
    )
    check_response(from_file, written)
