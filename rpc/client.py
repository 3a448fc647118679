"""A command-line client: send an OptimizeToursRequest in proto3 JSON, print the response.

    python -m rpc.client examples/optimize_tours_request.json [--target 127.0.0.1:50051]

The functions here are also a small Python client: :func:`optimize_tours` (one call),
:func:`start_optimize_tours` (a long-running operation), :func:`watch_operation` (its progress),
:func:`get_result` (its response), and :func:`optimize_tours_stream` (progress events, then the
response, on one streaming call).

Exit status 0 on success; on an RPC error, prints the status code, message and the field
violations of a ``google.rpc.BadRequest`` detail to stderr and exits 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from rpc.pb import route_optimization_service_pb2 as pb
from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc

__all__ = [
    "OperationError",
    "get_result",
    "main",
    "optimize_tours",
    "optimize_tours_stream",
    "start_optimize_tours",
    "watch_operation",
]


class OperationError(RuntimeError):
    """A long-running operation ended with an error (``status`` is its google.rpc.Status)."""

    def __init__(self, name: str, status: object) -> None:
        self.status = status
        code = getattr(status, "code", 0)
        message = getattr(status, "message", "")
        super().__init__(f"{name} failed with code {code}: {message}")


def optimize_tours(
    request: pb.OptimizeToursRequest, *, target: str, timeout_s: float | None = None
) -> pb.OptimizeToursResponse:
    """Send one OptimizeTours call to the server at ``target``."""
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.RouteOptimizationStub(channel)
        response: pb.OptimizeToursResponse = stub.OptimizeTours(request, timeout=timeout_s)
        return response


def start_optimize_tours(
    request: pb.OptimizeToursRequest, *, target: str, timeout_s: float = 30.0
) -> str:
    """Submit ``request`` as a long-running operation; returns the operation name (the request is
    stored on the server before the name comes back)."""
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.RouteOptimizationStub(channel)
        operation = stub.OptimizeToursLongRunning(request, timeout=timeout_s)
        return str(operation.name)


def watch_operation(
    name: str, *, target: str, interval_s: float = 1.0
) -> Iterator[pb.OptimizeToursMetadata]:
    """The metadata of operation ``name`` every ``interval_s`` seconds (and whenever it finishes
    sooner), until it is done; the last one yielded is the final state."""
    with grpc.insecure_channel(target) as channel:
        operations = operations_pb2_grpc.OperationsStub(channel)
        while True:
            request = operations_pb2.WaitOperationRequest(name=name)
            request.timeout.FromNanoseconds(int(interval_s * 1e9))
            started = time.monotonic()
            operation = operations.WaitOperation(request, timeout=interval_s + 30.0)
            metadata = pb.OptimizeToursMetadata()
            operation.metadata.Unpack(metadata)
            yield metadata
            if operation.done:
                return
            time.sleep(max(0.0, interval_s - (time.monotonic() - started)))


def get_result(name: str, *, target: str, wait_s: float = 0.0) -> pb.OptimizeToursResponse:
    """The response of operation ``name``, waiting up to ``wait_s`` seconds for it. Raises
    :class:`OperationError` if it failed, TimeoutError if it is not done."""
    deadline = time.monotonic() + wait_s
    with grpc.insecure_channel(target) as channel:
        operations = operations_pb2_grpc.OperationsStub(channel)
        while True:
            request = operations_pb2.WaitOperationRequest(name=name)
            left = max(0.0, deadline - time.monotonic())
            request.timeout.FromNanoseconds(int(min(left, 60.0) * 1e9))
            operation = operations.WaitOperation(request, timeout=min(left, 60.0) + 30.0)
            if operation.done or time.monotonic() >= deadline:
                break
    if not operation.done:
        raise TimeoutError(f"{name} is not done")
    if operation.HasField("error"):
        raise OperationError(name, operation.error)
    response = pb.OptimizeToursResponse()
    operation.response.Unpack(response)
    return response


def optimize_tours_stream(
    request: pb.OptimizeToursRequest, *, target: str, timeout_s: float | None = None
) -> Iterator[pb.OptimizeToursProgress]:
    """OptimizeToursStream: one event per improving solution, then the final one (``done``).
    Leaving the loop early cancels the call, which stops the solve."""
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.RouteOptimizationStub(channel)
        events = stub.OptimizeToursStream(request, timeout=timeout_s)
        try:
            yield from events
        finally:
            events.cancel()


def _print_error(error: grpc.RpcError) -> None:
    call: grpc.Call = error
    print(f"error: {call.code().name}: {call.details()}", file=sys.stderr)
    status = rpc_status.from_call(call)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                print(f"  {v.field}: {v.description}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("request", type=Path, help="OptimizeToursRequest as proto3 JSON")
    parser.add_argument("--target", default="127.0.0.1:50051", help="server address")
    parser.add_argument("--deadline", type=float, default=None, help="call deadline, seconds")
    args = parser.parse_args(argv)
    request = json_format.Parse(args.request.read_text(), pb.OptimizeToursRequest())
    try:
        response = optimize_tours(request, target=args.target, timeout_s=args.deadline)
    except grpc.RpcError as error:
        _print_error(error)
        return 1
    print(json_format.MessageToJson(response))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
