"""Google's service in server reflection: ``google.maps.routeoptimization.v1.RouteOptimization``
is listed, and a reflection client (``grpc_reflection``'s ``ProtoReflectionDescriptorDatabase``,
what grpcurl does) resolves its methods and Google's message types field for field as Google's
published client has them, then calls it with a message built from the reflected descriptors
alone (JSON in, as ``grpcurl -d``); the answer goes through the independent checker."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.maps import routeoptimization_v1 as ro
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from rpc.google.reflection import DESCRIPTOR_PATH, described_file, render_descriptor
from rpc.google.schema import google_name
from rpc.google.service import GOOGLE_SERVICE_NAME
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.secured import serve, stop
from tests.rpc.test_google_python_client import google_request
from tests.rpc.test_server_e2e import ServerProcess, check_response

GOOGLE_METHODS = {
    "OptimizeTours": ("OptimizeToursRequest", "OptimizeToursResponse"),
    "OptimizeToursLongRunning": ("OptimizeToursRequest", "google.longrunning.Operation"),
    "BatchOptimizeTours": ("BatchOptimizeToursRequest", "google.longrunning.Operation"),
    "OptimizeToursUri": ("OptimizeToursUriRequest", "google.longrunning.Operation"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("google-reflection") / "server.log"
    srv = ServerProcess(log, "--osm", "none", "--workers", "1")
    yield srv
    assert srv.terminate() == 0, srv.log()


@pytest.fixture(scope="module")
def reflected(server: ServerProcess) -> ProtoReflectionDescriptorDatabase:
    return ProtoReflectionDescriptorDatabase(server.channel)


def test_the_kept_descriptor_is_generated_from_googles_client() -> None:
    assert DESCRIPTOR_PATH.read_text(encoding="utf-8") == render_descriptor(described_file())


def _fields(descriptor: Descriptor) -> list[tuple[int, str, int, bool, str]]:
    return [
        (
            f.number,
            google_name(f.name),
            f.type,
            f.is_repeated,
            (f.message_type or f.enum_type).full_name if (f.message_type or f.enum_type) else "",
        )
        for f in descriptor.fields
    ]


def _messages(descriptor: Descriptor) -> Iterator[Descriptor]:
    yield descriptor
    for nested in descriptor.nested_types:
        yield from _messages(nested)


def test_reflection_lists_and_describes_googles_service(
    reflected: ProtoReflectionDescriptorDatabase,
) -> None:
    services = set(reflected.get_services())
    assert {GOOGLE_SERVICE_NAME, "routeopt.v1.RouteOptimization"} <= services
    assert "google.longrunning.Operations" in services
    pool = descriptor_pool.DescriptorPool(reflected)
    service = pool.FindServiceByName(GOOGLE_SERVICE_NAME)
    assert service.file.name == "google/maps/routeoptimization/v1/route_optimization_service.proto"
    package = "google.maps.routeoptimization.v1."
    methods = {
        m.name: (
            m.input_type.full_name.removeprefix(package),
            m.output_type.full_name.removeprefix(package),
        )
        for m in service.methods
    }
    assert methods == GOOGLE_METHODS
    # Every message of Google's file, field for field as Google's client has it.
    google = ro.OptimizeToursRequest.pb().DESCRIPTOR.file
    compared = 0
    for top in google.message_types_by_name.values():
        for theirs in _messages(top):
            ours = pool.FindMessageTypeByName(theirs.full_name)
            assert _fields(ours) == _fields(theirs), theirs.full_name
            assert [f.name for f in ours.fields] == [google_name(f.name) for f in theirs.fields]
            compared += 1
    assert compared > 50
    visit = pool.FindMessageTypeByName(f"{package}Shipment.VisitRequest")
    assert visit.fields_by_name["time_windows"].json_name == "timeWindows"
    objective = pool.FindMessageTypeByName(f"{package}ShipmentModel.Objective")
    assert "type" in objective.fields_by_name  # Google's name (the Python client says type_)
    # Long-running methods say what their operations resolve to, as in Google's proto.
    file = reflected.FindFileContainingSymbol(GOOGLE_SERVICE_NAME)
    (described,) = file.service
    infos = {
        m.name: (
            m.options.Extensions[operations_pb2.operation_info].response_type,
            m.options.Extensions[operations_pb2.operation_info].metadata_type,
        )
        for m in described.method
        if m.output_type == ".google.longrunning.Operation"
    }
    assert infos == {
        "OptimizeToursLongRunning": ("OptimizeToursResponse", "OptimizeToursLongRunningMetadata"),
        "BatchOptimizeTours": ("BatchOptimizeToursResponse", "BatchOptimizeToursMetadata"),
        "OptimizeToursUri": ("OptimizeToursUriResponse", "OptimizeToursUriMetadata"),
    }
    # routeopt's own service is still described with routeopt's types.
    own = pool.FindServiceByName("routeopt.v1.RouteOptimization")
    assert own.methods_by_name["OptimizeTours"].input_type.full_name == (
        "routeopt.v1.OptimizeToursRequest"
    )


def test_a_call_built_from_reflection_alone(
    server: ServerProcess, reflected: ProtoReflectionDescriptorDatabase
) -> None:
    """What ``grpcurl -d @ HOST google.maps.routeoptimization.v1.RouteOptimization/OptimizeTours``
    does: the request's JSON parsed with the reflected descriptor, the answer decoded with it."""
    pool = descriptor_pool.DescriptorPool(reflected)
    method = pool.FindServiceByName(GOOGLE_SERVICE_NAME).methods_by_name["OptimizeTours"]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    google = google_request(3, "reflected")
    request = json_format.Parse(ro.OptimizeToursRequest.to_json(google), request_class())
    call = server.channel.unary_unary(
        f"/{GOOGLE_SERVICE_NAME}/OptimizeTours",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    response = call(request, timeout=60)
    assert json_format.MessageToDict(response)["requestLabel"] == "reflected"
    mine = pb.OptimizeToursResponse.FromString(response.SerializeToString())
    solution = check_response(pb.OptimizeToursRequest.FromString(request.SerializeToString()), mine)
    assert not solution.skipped_shipments
    # The long-running call: its operation's types are the ones reflection announced.
    lro = pool.FindServiceByName(GOOGLE_SERVICE_NAME).methods_by_name["OptimizeToursLongRunning"]
    info = lro.GetOptions().Extensions[operations_pb2.operation_info]
    start = server.channel.unary_unary(
        f"/{GOOGLE_SERVICE_NAME}/OptimizeToursLongRunning",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=operations_pb2.Operation.FromString,
    )
    operation = start(request, timeout=60)
    wait = operations_pb2.WaitOperationRequest(name=operation.name)
    wait.timeout.FromSeconds(60)
    done = operations_pb2_grpc.OperationsStub(server.channel).WaitOperation(wait, timeout=90)
    package = "type.googleapis.com/google.maps.routeoptimization.v1."
    assert done.done
    assert done.response.type_url == package + info.response_type
    assert done.metadata.type_url == package + info.metadata_type


def test_reflection_answers_only_with_credentials_when_keys_exist(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    running = serve(tmp_path_factory.mktemp("reflection-keys") / "data")
    try:
        key = running.keys.create("acme").key
        anonymous = ProtoReflectionDescriptorDatabase(grpc.insecure_channel(running.target))
        with pytest.raises(grpc.RpcError) as refused:
            anonymous.get_services()
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        client = running.client(key)
        try:
            services = ProtoReflectionDescriptorDatabase(client.channel).get_services()
            assert GOOGLE_SERVICE_NAME in services
            pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(client.channel))
            assert pool.FindServiceByName(GOOGLE_SERVICE_NAME).methods_by_name["OptimizeToursUri"]
        finally:
            client.close()
    finally:
        stop(running)
