"""Google's service in server reflection: ``google.maps.routeoptimization.v1.RouteOptimization``
listed and described as Google publishes it, so that a reflection client (grpcurl, Postman,
``grpc_reflection``'s ``ProtoReflectionDescriptorDatabase``) sees Google's methods and message
types on a routeopt server, not routeopt's.

The server imports no Google package at run time: Google's file descriptor
(``google/maps/routeoptimization/v1/route_optimization_service.proto``: its messages, enums and
the service with its four methods) is kept in :data:`DESCRIPTOR_PATH` as a text-format
``FileDescriptorProto``, generated from the published client (``google-maps-routeoptimization``)
by ``python -m rpc.google.schema`` and checked by ``--check`` and by the tests. The client's
descriptors are those of proto-plus: they lack the service (taken here from the stubs of
Google's gRPC transport: each method's path, request and response type; for a long-running one,
the ``google.longrunning.operation_info`` its client resolves the operation with) and name a few
fields with a trailing ``_`` (``type_``, ``min_``, ``max_``), which are Google's ``type``,
``min``, ``max`` again here; JSON names are filled in as protoc fills them.

:func:`reflection_pool` is the descriptor pool server reflection answers from: the files of the
services routeopt serves (from the default pool) and Google's file on top.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from google.longrunning import operations_pb2  # Google's file imports it
from google.protobuf import descriptor_pb2, descriptor_pool, text_format
from google.protobuf.descriptor import FileDescriptor
from google.type import latlng_pb2  # noqa: F401  (Google's file imports it)

__all__ = [
    "DESCRIPTOR_PATH",
    "GOOGLE_PROTO_FILE",
    "described_file",
    "google_file",
    "reflection_pool",
    "render_descriptor",
]

DESCRIPTOR_PATH: Final = Path(__file__).with_name("route_optimization_service.txtpb")
GOOGLE_PROTO_FILE: Final = "google/maps/routeoptimization/v1/route_optimization_service.proto"
"""The name of Google's file in googleapis (what reflection calls it)."""

_OPERATIONS_PROTO: Final = "google/longrunning/operations.proto"


def google_file() -> descriptor_pb2.FileDescriptorProto:
    """Google's file descriptor, as kept in :data:`DESCRIPTOR_PATH`."""
    return text_format.Parse(
        DESCRIPTOR_PATH.read_text(encoding="utf-8"), descriptor_pb2.FileDescriptorProto()
    )


def reflection_pool(service_names: Iterable[str]) -> descriptor_pool.DescriptorPool:
    """A pool with the files defining ``service_names`` (those in the default pool, with their
    dependencies) and Google's file."""
    default = descriptor_pool.Default()
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.AddSerializedFile(proto.SerializeToString())
        added.add(file.name)

    google = google_file()
    for name in service_names:
        if not name.startswith(f"{google.package}."):  # Google's: in its own file, below
            add(default.FindFileContainingSymbol(name))
    for dependency in google.dependency:
        add(default.FindFileByName(dependency))
    pool.AddSerializedFile(google.SerializeToString())
    return pool


# -- generation (needs the google-maps-routeoptimization package, a dev dependency) ----------


def _json_name(name: str) -> str:
    """protoc's JSON name: lowerCamelCase of the field name."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _fix_fields(message: descriptor_pb2.DescriptorProto) -> None:
    """Google's names for proto-plus's ``type_``, ``min_``, ``max_`` (and their synthetic
    oneofs), JSON names as protoc sets them."""
    for field in message.field:
        if field.name.endswith("_"):
            old = field.name
            field.name = old[:-1]
            if field.proto3_optional and field.HasField("oneof_index"):
                oneof = message.oneof_decl[field.oneof_index]
                if oneof.name == f"_{old}":
                    oneof.name = f"_{field.name}"
        field.json_name = _json_name(field.name)
    for nested in message.nested_type:
        _fix_fields(nested)


class _Recorder:
    """Stands in for the channel of Google's transport: records each stub it makes."""

    def __init__(self) -> None:
        self.stubs: list[tuple[str, Any, Any]] = []

    def unary_unary(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
        *args: Any, **kwargs: Any,
    ) -> Any:  # fmt: skip
        self.stubs.append((method, request_serializer, response_deserializer))
        return None


def _type_name(function: Any) -> str:
    """``.full.Name`` of the message a stub's (de)serializer belongs to."""
    owner = getattr(function, "__self__", None)
    if owner is None:
        raise ValueError(f"cannot tell the message type of {function!r}")
    pb = owner.pb() if hasattr(owner, "pb") else owner  # proto-plus or protobuf
    return f".{pb.DESCRIPTOR.full_name}"


def _service(package: str) -> descriptor_pb2.ServiceDescriptorProto:
    """Google's service as its gRPC transport calls it: the method paths and the request and
    response types of its stubs."""
    import grpc
    from google.maps.routeoptimization_v1.services.route_optimization.transports import (
        RouteOptimizationGrpcTransport,
    )
    from google.maps.routeoptimization_v1.services.route_optimization.transports.base import (
        RouteOptimizationTransport,
    )

    channel = grpc.insecure_channel("127.0.0.1:9")  # never connected
    transport = RouteOptimizationGrpcTransport(channel=channel)
    recorder = _Recorder()
    transport._logged_channel = recorder  # the transport's stubs are made on this channel
    transport._stubs.clear()
    for name, value in vars(RouteOptimizationTransport).items():
        if isinstance(value, property) and name not in ("host", "kind", "operations_client"):
            getattr(transport, name)
    service = descriptor_pb2.ServiceDescriptorProto(name="RouteOptimization")
    prefix = f"/{package}.RouteOptimization/"
    for path, serializer, deserializer in recorder.stubs:
        if path.startswith(prefix):
            service.method.add(
                name=path[len(prefix) :],
                input_type=_type_name(serializer),
                output_type=_type_name(deserializer),
            )
    if not service.method:
        raise ValueError("Google's transport made no stub of its service")
    _operation_info(RouteOptimizationGrpcTransport(channel=channel), service)
    channel.close()
    return service


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _operation_info(transport: Any, service: descriptor_pb2.ServiceDescriptorProto) -> None:
    """``google.longrunning.operation_info`` of each long-running method: the response and
    metadata types Google's client resolves its operation future with (each method called on
    the transport with a stand-in for the call; ``operation.from_gapic`` records the types)."""
    from unittest import mock

    from google.maps.routeoptimization_v1.services.route_optimization import (
        client as client_module,
    )

    client = client_module.RouteOptimizationClient(transport=transport)
    seen: dict[str, Any] = {}

    def from_gapic(operation: Any, *args: Any, **kwargs: Any) -> None:
        seen["result"], seen["metadata"] = args[1], kwargs["metadata_type"]

    for method in service.method:
        if method.output_type != ".google.longrunning.Operation":
            continue
        stub = getattr(transport, _snake(method.name))
        transport._wrapped_methods[stub] = lambda request, **kw: operations_pb2.Operation(
            name="operations/stand-in"
        )
        seen.clear()
        with mock.patch("google.api_core.operation.from_gapic", from_gapic):
            getattr(client, _snake(method.name))(request={})
        info = method.options.Extensions[operations_pb2.operation_info]
        info.response_type = seen["result"].pb().DESCRIPTOR.name
        info.metadata_type = seen["metadata"].pb().DESCRIPTOR.name


def described_file() -> descriptor_pb2.FileDescriptorProto:
    """Google's file descriptor from the published client (its messages and service)."""
    from google.maps.routeoptimization_v1.types import route_optimization_service as types

    proto = descriptor_pb2.FileDescriptorProto()
    types.OptimizeToursRequest.pb().DESCRIPTOR.file.CopyToProto(proto)
    proto.name = GOOGLE_PROTO_FILE
    for message in proto.message_type:
        _fix_fields(message)
    proto.service.append(_service(proto.package))
    if any(m.output_type == ".google.longrunning.Operation" for m in proto.service[0].method):
        proto.dependency.append(_OPERATIONS_PROTO)
    return proto


def render_descriptor(proto: descriptor_pb2.FileDescriptorProto) -> str:
    """The text of :data:`DESCRIPTOR_PATH`."""
    header = (
        "# proto-file: google/protobuf/descriptor.proto\n"
        "# proto-message: FileDescriptorProto\n"
        "# Google's google.maps.routeoptimization.v1 file descriptor, for server reflection.\n"
        "# Generated from the google-maps-routeoptimization package by\n"
        "# `python -m rpc.google.schema`; do not edit.\n"
    )
    return header + text_format.MessageToString(proto)
