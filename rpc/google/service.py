"""``google.maps.routeoptimization.v1.RouteOptimization``, served by routeopt's servicer.

Google's messages and routeopt's are wire-identical (same field numbers and types;
``tests/rpc/test_google_wire.py``), so each of Google's methods is registered with
deserializers that parse the bytes Google's clients send into routeopt's messages, and
routeopt's answers go back as they are. The handlers are the routeopt servicer's own methods:
one engine, one validation, one error mapping. The long-running methods create operations
named under the request's ``parent`` (``projects/P/operations/<hex>``; ``projects/-`` without
one) whose metadata and response carry Google's type URLs
(``type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursResponse``, …), so that
Google's operation futures resolve through ``google.longrunning.Operations`` on the same port.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import grpc
from google.longrunning import operations_pb2

from rpc.google.schema import GOOGLE_PACKAGE
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.servicer import RouteOptimizationServicer

__all__ = ["GOOGLE_SERVICE_NAME", "google_handler"]

GOOGLE_SERVICE_NAME: Final = f"{GOOGLE_PACKAGE}.RouteOptimization"
"""``google.maps.routeoptimization.v1.RouteOptimization``."""


def _unary(
    method: Callable[[Any, grpc.ServicerContext], Any],
    request: type[Any],
) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        method,
        request_deserializer=request.FromString,
        response_serializer=lambda message: message.SerializeToString(),
    )


def google_handler(servicer: RouteOptimizationServicer) -> grpc.GenericRpcHandler:
    """The handler of Google's service over ``servicer``."""

    def long_running(
        request: pb.OptimizeToursRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        return servicer.optimize_tours_long_running(request, context, google=True)

    def batch(
        request: pb.BatchOptimizeToursRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        return servicer.batch_optimize_tours(request, context, google=True)

    def uri(
        request: pb.OptimizeToursUriRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        return servicer.optimize_tours_uri(request, context, google=True)

    return grpc.method_handlers_generic_handler(
        GOOGLE_SERVICE_NAME,
        {
            "OptimizeTours": _unary(servicer.OptimizeTours, pb.OptimizeToursRequest),
            "OptimizeToursLongRunning": _unary(long_running, pb.OptimizeToursRequest),
            "BatchOptimizeTours": _unary(batch, pb.BatchOptimizeToursRequest),
            "OptimizeToursUri": _unary(uri, pb.OptimizeToursUriRequest),
        },
    )
