"""Metrics, request ids and JSON logs (:mod:`rpc.observability`), and health following the job
manager (:func:`rpc.server._on_health`), without a server process."""

from __future__ import annotations

import json
import logging
import sys
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2

from rpc.observability import Metrics, ObservabilityInterceptor, RequestIdFilter
from rpc.server import HEALTH_SERVICES, _on_health
from runtime.logs import REQUEST_ID, JsonFormatter


class Context:
    def __init__(self, code: grpc.StatusCode | None = None) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode | None:
        return self._code


def intercepted(
    metrics: Metrics, behavior: Any, method: str = "/routeopt.v1.RouteOptimization/OptimizeTours"
) -> Any:
    handler = grpc.unary_unary_rpc_method_handler(behavior)
    details = SimpleNamespace(method=method, invocation_metadata=())
    wrapped = ObservabilityInterceptor(metrics).intercept_service(lambda _: handler, details)
    return wrapped.unary_unary


def sample(metrics: Metrics, name: str, labels: dict[str, str]) -> float | None:
    value = metrics.registry.get_sample_value(name, labels)
    return None if value is None else float(value)


def test_calls_are_counted_by_method_and_code_with_a_request_id() -> None:
    metrics = Metrics()
    seen: list[str] = []

    def ok(request: object, context: object) -> str:
        seen.append(REQUEST_ID.get())
        return "fine"

    call = intercepted(metrics, ok)
    assert call(None, Context()) == "fine"
    assert call(None, Context()) == "fine"
    assert len(seen) == 2
    assert all(len(rid) == 16 for rid in seen)
    assert seen[0] != seen[1]
    assert REQUEST_ID.get() == ""  # reset after the call
    labels = {"method": "RouteOptimization/OptimizeTours", "code": "OK"}
    assert sample(metrics, "routeopt_requests_total", labels) == 2.0
    method = {"method": "RouteOptimization/OptimizeTours"}
    assert sample(metrics, "routeopt_request_seconds_count", method) == 2.0

    def missing(request: object, context: object) -> str:
        raise RuntimeError("aborted")

    call = intercepted(metrics, missing, "/google.longrunning.Operations/GetOperation")
    with pytest.raises(RuntimeError):
        call(None, Context(grpc.StatusCode.NOT_FOUND))
    with pytest.raises(RuntimeError):
        call(None, Context())  # an exception without a status: UNKNOWN
    for code in ("NOT_FOUND", "UNKNOWN"):
        labels = {"method": "Operations/GetOperation", "code": code}
        assert sample(metrics, "routeopt_requests_total", labels) == 1.0


def test_gauges_are_read_when_scraped() -> None:
    metrics = Metrics()
    depth = [3]
    metrics.gauge("routeopt_operations_queued", "queued", lambda: depth[0])
    metrics.gauge("routeopt_broken", "raises", lambda: 1 / 0)
    assert b"routeopt_operations_queued 3.0" in metrics.exposition()
    depth[0] = 7
    assert b"routeopt_operations_queued 7.0" in metrics.exposition()
    assert b"routeopt_broken 0.0" in metrics.exposition()


def test_json_logs_carry_the_request_id_and_tracebacks() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("rpc.x", logging.INFO, __file__, 1, "solved %d", (3,), None)
    RequestIdFilter().filter(record)
    entry = json.loads(formatter.format(record))
    assert entry["message"] == "solved 3"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "rpc.x"
    assert "request_id" not in entry
    token = REQUEST_ID.set("0123456789abcdef")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.LogRecord(
                "rpc.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
            )
        RequestIdFilter().filter(record)
        entry = json.loads(formatter.format(record))
    finally:
        REQUEST_ID.reset(token)
    assert entry["request_id"] == "0123456789abcdef"
    assert "ValueError: boom" in entry["exc_info"]
    assert "\n" not in formatter.format(record)  # one line


def test_health_follows_the_job_manager() -> None:
    servicer = health.HealthServicer()
    faults = {"job store": "OperationalError: database or disk is full"}
    built = SimpleNamespace(health=servicer, jobs=SimpleNamespace(faults=lambda: faults))

    def status(service: str) -> int:
        request = health_pb2.HealthCheckRequest(service=service)
        return int(servicer.Check(request, None).status)

    _on_health(built, False)  # type: ignore[arg-type]
    for name in HEALTH_SERVICES:
        assert status(name) == health_pb2.HealthCheckResponse.NOT_SERVING
    _on_health(built, True)  # type: ignore[arg-type]
    for name in HEALTH_SERVICES:
        assert status(name) == health_pb2.HealthCheckResponse.SERVING
    servicer.enter_graceful_shutdown()
    _on_health(built, True)  # type: ignore[arg-type]
    assert status("") == health_pb2.HealthCheckResponse.NOT_SERVING  # shutting down: for good
