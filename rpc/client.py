"""A command-line client: send an OptimizeToursRequest in proto3 JSON, print the response.

    python -m rpc.client examples/optimize_tours_request.json [--target 127.0.0.1:50051]
        [--tls-ca CA.pem] [--tls-cert CLIENT.pem --tls-key CLIENT.key]   # $ROUTEOPT_API_KEY

The functions here are also a small Python client: :func:`optimize_tours` (one call),
:func:`start_optimize_tours` (a long-running operation), :func:`watch_operation` (its progress),
:func:`get_result` (its response), and :func:`optimize_tours_stream` (progress events, then the
response, on one streaming call). Each takes ``credentials`` (:class:`Credentials`: TLS, a
client certificate, an API key) for a server that asks for them; :func:`connect` opens a channel
with them for any other call.

Exit status 0 on success; on an RPC error, prints the status code, message and the field
violations of a ``google.rpc.BadRequest`` detail to stderr and exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from rpc.pb import route_optimization_service_pb2 as pb
from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc

__all__ = [
    "API_KEY_ENV",
    "Credentials",
    "OperationError",
    "connect",
    "get_result",
    "main",
    "optimize_tours",
    "optimize_tours_stream",
    "start_optimize_tours",
    "watch_operation",
]


API_KEY_ENV = "ROUTEOPT_API_KEY"
"""The environment variable the command line reads the API key from (keeps it out of ``ps``
and shell history)."""


@dataclass(frozen=True)
class Credentials:
    """How to reach a server that asks for TLS, a client certificate or an API key.

    ``tls``: TLS with the system's trusted CAs; ``ca_file``: TLS trusting this CA (PEM) instead;
    ``cert_file`` and ``key_file``: the client certificate and key for mutual TLS (TLS implied);
    ``api_key``: sent as ``x-goog-api-key`` on every call; ``server_name``: the name the server
    certificate must have when it differs from the target's host."""

    api_key: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None

    @property
    def secure(self) -> bool:
        return self.tls or bool(self.ca_file or self.cert_file or self.key_file)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """The TLS credentials of a channel (files read now)."""
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs its key, and the other way round")
        root = Path(self.ca_file).read_bytes() if self.ca_file else None
        key = Path(self.key_file).read_bytes() if self.key_file else None
        chain = Path(self.cert_file).read_bytes() if self.cert_file else None
        return grpc.ssl_channel_credentials(
            root_certificates=root, private_key=key, certificate_chain=chain
        )


class _CallDetails(
    NamedTuple(
        "_CallDetails",
        [
            ("method", str),
            ("timeout", float | None),
            ("metadata", Any),
            ("credentials", Any),
            ("wait_for_ready", bool | None),
            ("compression", Any),
        ],
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]
):
    """A call's details with other metadata."""


class _ApiKey(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds ``x-goog-api-key`` to every call."""

    def __init__(self, key: str) -> None:
        self._key = key

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()), ("x-goog-api-key", self._key)]
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def _call(self, continuation: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call


def connect(
    target: str,
    credentials: Credentials | None = None,
    options: list[tuple[str, Any]] | None = None,
) -> grpc.Channel:
    """A channel to ``target`` with ``credentials`` (None: plaintext, no key), as a context
    manager."""
    creds = credentials or Credentials()
    options = list(options or [])
    if creds.server_name:
        options.append(("grpc.ssl_target_name_override", creds.server_name))
    if creds.secure:
        channel = grpc.secure_channel(target, creds.channel_credentials(), options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    if creds.api_key:
        channel = grpc.intercept_channel(channel, _ApiKey(creds.api_key))
    return channel


class OperationError(RuntimeError):
    """A long-running operation ended with an error (``status`` is its google.rpc.Status)."""

    def __init__(self, name: str, status: object) -> None:
        self.status = status
        code = getattr(status, "code", 0)
        message = getattr(status, "message", "")
        super().__init__(f"{name} failed with code {code}: {message}")


def optimize_tours(
    request: pb.OptimizeToursRequest,
    *,
    target: str,
    timeout_s: float | None = None,
    credentials: Credentials | None = None,
) -> pb.OptimizeToursResponse:
    """Send one OptimizeTours call to the server at ``target``."""
    with connect(target, credentials) as channel:
        stub = pb_grpc.RouteOptimizationStub(channel)
        response: pb.OptimizeToursResponse = stub.OptimizeTours(request, timeout=timeout_s)
        return response


def start_optimize_tours(
    request: pb.OptimizeToursRequest,
    *,
    target: str,
    timeout_s: float = 30.0,
    credentials: Credentials | None = None,
) -> str:
    """Submit ``request`` as a long-running operation; returns the operation name (the request is
    stored on the server before the name comes back)."""
    with connect(target, credentials) as channel:
        stub = pb_grpc.RouteOptimizationStub(channel)
        operation = stub.OptimizeToursLongRunning(request, timeout=timeout_s)
        return str(operation.name)


def watch_operation(
    name: str, *, target: str, interval_s: float = 1.0, credentials: Credentials | None = None
) -> Iterator[pb.OptimizeToursMetadata]:
    """The metadata of operation ``name`` every ``interval_s`` seconds (and whenever it finishes
    sooner), until it is done; the last one yielded is the final state."""
    with connect(target, credentials) as channel:
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


def get_result(
    name: str, *, target: str, wait_s: float = 0.0, credentials: Credentials | None = None
) -> pb.OptimizeToursResponse:
    """The response of operation ``name``, waiting up to ``wait_s`` seconds for it. Raises
    :class:`OperationError` if it failed, TimeoutError if it is not done."""
    deadline = time.monotonic() + wait_s
    with connect(target, credentials) as channel:
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
    request: pb.OptimizeToursRequest,
    *,
    target: str,
    timeout_s: float | None = None,
    credentials: Credentials | None = None,
) -> Iterator[pb.OptimizeToursProgress]:
    """OptimizeToursStream: one event per improving solution, then the final one (``done``).
    Leaving the loop early cancels the call, which stops the solve."""
    with connect(target, credentials) as channel:
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


def add_credential_flags(parser: argparse.ArgumentParser) -> None:
    """``--tls``, ``--tls-ca``, ``--tls-cert``, ``--tls-key``, ``--tls-server-name``; the API key
    comes from ``$ROUTEOPT_API_KEY`` (or ``--api-key-file``)."""
    group = parser.add_argument_group("credentials")
    group.add_argument("--tls", action="store_true", help="TLS, trusting the system's CAs")
    group.add_argument("--tls-ca", metavar="PEM", help="TLS, trusting this CA")
    group.add_argument("--tls-cert", metavar="PEM", help="client certificate (mutual TLS)")
    group.add_argument("--tls-key", metavar="PEM", help="client certificate's key")
    group.add_argument("--tls-server-name", metavar="NAME", help="name in the server certificate")
    group.add_argument(
        "--api-key-file",
        type=Path,
        metavar="FILE",
        help=f"read the API key from FILE (default: ${API_KEY_ENV}, if set)",
    )


def credentials_of(args: argparse.Namespace) -> Credentials:
    """The credentials of the flags of :func:`add_credential_flags`."""
    if args.api_key_file is not None:
        key: str | None = args.api_key_file.read_text().strip()
    else:
        key = os.environ.get(API_KEY_ENV) or None
    return Credentials(
        api_key=key,
        tls=args.tls,
        ca_file=args.tls_ca,
        cert_file=args.tls_cert,
        key_file=args.tls_key,
        server_name=args.tls_server_name,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("request", type=Path, help="OptimizeToursRequest as proto3 JSON")
    parser.add_argument("--target", default="127.0.0.1:50051", help="server address")
    parser.add_argument("--deadline", type=float, default=None, help="call deadline, seconds")
    add_credential_flags(parser)
    args = parser.parse_args(argv)
    request = json_format.Parse(args.request.read_text(), pb.OptimizeToursRequest())
    try:
        response = optimize_tours(
            request,
            target=args.target,
            timeout_s=args.deadline,
            credentials=credentials_of(args),
        )
    except grpc.RpcError as error:
        _print_error(error)
        return 1
    print(json_format.MessageToJson(response))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
