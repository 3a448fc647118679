"""A command-line client: send an OptimizeToursRequest in proto3 JSON, print the response.

    python -m rpc.client examples/optimize_tours_request.json [--target 127.0.0.1:50051]

Exit status 0 on success; on an RPC error, prints the status code, message and the field
violations of a ``google.rpc.BadRequest`` detail to stderr and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from rpc.pb import route_optimization_service_pb2 as pb
from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc

__all__ = ["main", "optimize_tours"]


def optimize_tours(
    request: pb.OptimizeToursRequest, *, target: str, timeout_s: float | None = None
) -> pb.OptimizeToursResponse:
    """Send one OptimizeTours call to the server at ``target``."""
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.RouteOptimizationStub(channel)
        response: pb.OptimizeToursResponse = stub.OptimizeTours(request, timeout=timeout_s)
        return response


def _print_error(error: grpc.RpcError) -> None:
    call: grpc.Call = error  # type: ignore[assignment]
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
