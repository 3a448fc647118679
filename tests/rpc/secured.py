"""In-process servers for the security tests: :func:`serve` runs :func:`rpc.server.build_server`
on 127.0.0.1 with an executor that runs nothing (operations stay queued, a synchronous solve runs
until its call ends), and :class:`Client` calls it with or without credentials."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from rpc.client import Credentials, _CallDetails, connect
from rpc.config import ServerConfig
from rpc.keys import KeyStore
from rpc.limits import Limits
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc
from rpc.server import Server, bind, build_server
from tests.rpc.test_server_e2e import small_request


class Stuck:
    """A synchronous solve that runs until it is cancelled."""

    id = 0

    def __init__(self) -> None:
        self.cancel_requested = False
        self._callbacks: list[Callable[[Any], object]] = []

    def cancel(self) -> None:
        self.cancel_requested = True
        for fn in self._callbacks:
            fn(self)

    def done(self) -> bool:
        return self.cancel_requested

    def result(self, timeout: float | None = None) -> Any:
        raise CancelledError

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        self._callbacks.append(fn)


class NoExecutor:
    """Runs nothing: every operation stays queued (all that isolation and quotas need), and a
    synchronous solve runs until its call ends."""

    max_workers = 0
    max_queued = 0
    running_count = 0
    queued_count = 0

    def warm_up(self) -> None:
        pass

    def submit(self, model: object, options: object, **kwargs: object) -> Stuck:
        return Stuck()

    def shutdown(self, cancel_running: bool = False) -> None:
        pass


@dataclass
class Running:
    """An in-process server listening on 127.0.0.1."""

    built: Server
    port: int
    keys: KeyStore
    tls: Credentials = field(default_factory=Credentials)
    """What a client needs beyond a key (TLS, a client certificate)."""

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, key: str | None = None, **tls: Any) -> Client:
        fields = {**self.tls.__dict__, **tls, "api_key": key}
        return Client(connect(self.target, Credentials(**fields)))


class Client:
    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.stub = pb_grpc.RouteOptimizationStub(channel)
        self.ops = operations_pb2_grpc.OperationsStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    def submit(self, request: pb.OptimizeToursRequest | None = None) -> str:
        operation = self.stub.OptimizeToursLongRunning(request or small_request(), timeout=10)
        return str(operation.name)

    def get(self, name: str) -> operations_pb2.Operation:
        return self.ops.GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=5)

    def list(self, flt: str = "") -> list[str]:
        request = operations_pb2.ListOperationsRequest(filter=flt, page_size=1000)
        return [op.name for op in self.ops.ListOperations(request, timeout=5).operations]

    def cancel(self, name: str) -> None:
        self.ops.CancelOperation(operations_pb2.CancelOperationRequest(name=name), timeout=5)

    def delete(self, name: str) -> None:
        self.ops.DeleteOperation(operations_pb2.DeleteOperationRequest(name=name), timeout=5)

    def wait(self, name: str) -> operations_pb2.Operation:
        request = operations_pb2.WaitOperationRequest(name=name)
        request.timeout.FromSeconds(1)
        return self.ops.WaitOperation(request, timeout=5)

    def close(self) -> None:
        self.channel.close()


def serve(data_dir: Path, **config: Any) -> Running:
    """Build, bind and start a server on 127.0.0.1 (port 0) with ``config``."""
    # NoExecutor has no workers: give synchronous solves call slots of their own (rpc.admission)
    config.setdefault("limits", Limits(solve_calls=8))
    cfg = ServerConfig(port=0, osm="none", data_dir=str(data_dir), workers=1, **config)
    built = build_server(cfg, executor=NoExecutor())  # type: ignore[arg-type]
    port = bind(built.grpc_server, cfg, built.credentials)
    built.grpc_server.start()
    built.jobs.start()
    built.health.set("", health_pb2.HealthCheckResponse.SERVING)
    assert built.keys is not None
    return Running(built, port, built.keys)


def stop(running: Running) -> None:
    running.built.jobs.stop()
    running.built.grpc_server.stop(None).wait()
    running.built.store.close()
    running.keys.close()


def failure(call: Any) -> grpc.RpcError:
    """The RpcError of ``call()``."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def status_of(error: grpc.RpcError) -> status_pb2.Status:
    """The full status: code, message and details (from the trailer when there is one)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
        return status_pb2.Status(code=code.value[0], message=error.details())  # type: ignore[attr-defined]
    return status


class Metadata(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    """Sends ``metadata`` with every call (as a client might, by hand)."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self.metadata = metadata

    def _call(self, continuation: Any, details: Any, request: Any) -> Any:
        new = _CallDetails(details.method, details.timeout, self.metadata, None, None, None)
        return continuation(new, request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call


def details_of(error: grpc.RpcError) -> dict[str, Any]:
    """The RetryInfo, QuotaFailure and ErrorInfo of an error's status, by message name."""
    status = status_of(error)
    found: dict[str, Any] = {}
    for detail in status.details:
        for message in (
            error_details_pb2.RetryInfo(),
            error_details_pb2.QuotaFailure(),
            error_details_pb2.ErrorInfo(),
        ):
            if detail.Is(message.DESCRIPTOR):
                detail.Unpack(message)
                found[type(message).__name__] = message
    return found


def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until ``condition()`` (what the server does after a call ended takes a moment)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
