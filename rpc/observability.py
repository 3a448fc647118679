"""What operators watch: Prometheus metrics (``--metrics-port``) and structured logs
(``--log-format json``).

:class:`Metrics` holds the server's metrics in a registry of its own, served over HTTP at
``/metrics`` by :meth:`Metrics.serve`:

- ``routeopt_requests_total{method, code}`` and ``routeopt_request_seconds{method}`` (a
  histogram): every call, counted by :class:`ObservabilityInterceptor` with its final status
  code (a stream's latency is until its last message);
- ``routeopt_solve_seconds``: how long each solve held a worker;
- ``routeopt_operations_queued``, ``routeopt_operations_running``, ``routeopt_workers_busy``,
  ``routeopt_workers``, ``routeopt_solves_queued``, ``routeopt_job_store_bytes``,
  ``routeopt_healthy``: read when scraped.

:class:`ObservabilityInterceptor` also gives every call a request id (16 hex digits, made
here: nothing the client sends is logged), which every log line written while the call is
handled carries (:class:`RequestIdFilter`); :class:`~runtime.logs.JsonFormatter` writes one
JSON object per line (the solve workers too). Neither logs request payloads nor metadata (API
keys live there).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from runtime.logs import REQUEST_ID

__all__ = ["Metrics", "ObservabilityInterceptor", "RequestIdFilter"]


_LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
)  # fmt: skip
_SOLVE_BUCKETS: Final = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class Metrics:
    """The server's Prometheus metrics (see the module docstring)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "routeopt_requests",
            "gRPC calls by method and final status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "routeopt_request_seconds",
            "gRPC call latency by method (a stream: until its last message)",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.solve_time = Histogram(
            "routeopt_solve_seconds",
            "how long each solve held a solver worker",
            buckets=_SOLVE_BUCKETS,
            registry=self.registry,
        )
        self._gauges: dict[str, Gauge] = {}

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge whose value is ``read()`` when scraped (0 if that raises)."""

        def safe() -> float:
            try:
                return float(read())
            except Exception:
                return 0.0

        gauge = Gauge(name, documentation, registry=self.registry)
        gauge.set_function(safe)
        self._gauges[name] = gauge

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` over HTTP in a daemon thread; returns the port (``port`` 0: a
        free one)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format (what ``/metrics`` answers)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def _method_name(full: str) -> str:
    """``/routeopt.v1.RouteOptimization/OptimizeTours`` → ``RouteOptimization/OptimizeTours``."""
    service, _, method = full.lstrip("/").rpartition("/")
    return f"{service.rsplit('.', 1)[-1]}/{method}" if service else full


def _code_of(context: grpc.ServicerContext, exc: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return "UNKNOWN" if exc is not None else "OK"


class ObservabilityInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Counts and times every call by method and status code (with ``metrics``), and sets
    its request id for the logs; health checks are counted too."""

    def __init__(self, metrics: Metrics | None) -> None:
        self._metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = _method_name(str(handler_call_details.method))
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(method, handler.unary_unary))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._stream(method, handler.unary_stream))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._unary(method, handler.stream_unary))
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=self._stream(method, handler.stream_stream))
        return handler

    def _record(
        self, method: str, context: grpc.ServicerContext, started: float, exc: BaseException | None
    ) -> None:
        if self._metrics is not None:
            self._metrics.requests.labels(method, _code_of(context, exc)).inc()
            self._metrics.latency.labels(method).observe(time.monotonic() - started)

    def _unary(
        self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Any]
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            token = REQUEST_ID.set(secrets.token_hex(8))
            started = time.monotonic()
            failure: BaseException | None = None
            try:
                return behavior(request, context)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                self._record(method, context, started, failure)
                REQUEST_ID.reset(token)

        return wrapped

    def _stream(
        self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Iterator[Any]]
    ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            request_id = secrets.token_hex(8)
            started = time.monotonic()
            failure: BaseException | None = None
            token = REQUEST_ID.set(request_id)
            try:
                responses = behavior(request, context)
            finally:
                REQUEST_ID.reset(token)
            try:
                while True:
                    token = REQUEST_ID.set(request_id)
                    try:
                        item = next(responses)
                    except StopIteration:
                        return
                    finally:
                        REQUEST_ID.reset(token)
                    yield item
            except BaseException as exc:
                failure = exc
                raise
            finally:
                self._record(method, context, started, failure)

        return wrapped


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` (the current call's id, or "") on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True
