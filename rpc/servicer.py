"""The ``routeopt.v1.RouteOptimization`` servicer.

OptimizeTours, step by step:

1. Convert and validate the whole request (:func:`rpc.convert.request_to_engine`). Problems are
   answered with INVALID_ARGUMENT carrying a ``google.rpc.BadRequest`` (one field violation per
   problem), or, for ``VALIDATE_ONLY``, with an OK response listing them in
   ``validation_errors``.
2. Time budget: the request's ``timeout`` (or the server default), capped by the call's
   deadline less a safety margin of ``max(0.3 s, 10 %)`` of the time remaining, so the answer
   is on the wire before the client gives up. Nothing left: DEADLINE_EXCEEDED.
3. Submit to the :class:`~runtime.local.SolveExecutor` (full: RESOURCE_EXHAUSTED) and wait
   for the solution while watching the call: when the client cancels or its deadline passes,
   the solve is cancelled so its worker is freed at once. A search that the deadline (rather
   than the request's timeout) stopped is reported with status INTERRUPTED.

OptimizeToursStream runs the same way and yields an OptimizeToursProgress per improving solution
the worker reports (the full best-so-far response at most every ``progress_routes_interval``),
then a last event with the final response; when the client goes away the solve is cancelled.
OptimizeToursLongRunning and BatchOptimizeTours hand the request to
:class:`rpc.operations.manager.JobManager`
(durable operations, followed through ``google.longrunning.Operations``).

Errors are mapped to statuses in one place (:func:`_error_status`); an unexpected error is
answered with a generic INTERNAL status and an incident id, its traceback goes to the server
log only. Each call writes one log line: method, status code, latency, problem size, peer.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

import grpc
from google.longrunning import operations_pb2
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from engine.errors import (
    ExecutorFullError,
    ExecutorShutdownError,
    FieldViolation,
    InvalidModelError,
    NoSolutionError,
)
from engine.options import AUTO_SOLVER_PROCESSES, SolveOptions
from engine.progress import SolveProgress
from engine.roads import RoadContext
from engine.solution import Solution, SolveStatus
from rpc.convert import (
    RequestSettings,
    convert_or_validate,
    duration_to_seconds,
    request_to_engine,
    seconds_to_duration,
    solution_to_response,
)
from rpc.errors import internal_status, invalid_argument_status, resource_exhausted_status
from rpc.matrix import compute_matrix
from rpc.operations.manager import JobManager
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc
from runtime.local import Executor

__all__ = ["MIN_DEADLINE_MARGIN_S", "MIN_SOLVE_BUDGET_S", "RouteOptimizationServicer"]

log = logging.getLogger(__name__)

MIN_DEADLINE_MARGIN_S: Final = 0.3
"""Smallest part of the call's remaining time kept back for sending the response."""

DEADLINE_MARGIN_FRACTION: Final = 0.1
"""Part of the call's remaining time kept back for sending the response (when above the min)."""

MIN_SOLVE_BUDGET_S: Final = 0.05
"""Below this time budget the call is answered DEADLINE_EXCEEDED without solving."""

RETRY_AFTER_S: Final = 1.0
"""``RetryInfo`` delay suggested to clients when every solver worker is busy."""

_RESULT_SLACK_S: Final = 60.0
"""How long past its budget the servicer waits for a solve before giving up (safety net; the
executor's own watchdog stops overrunning workers first)."""

_NO_DEADLINE_S: Final = 1e8
"""``time_remaining()`` above this means the call has no deadline."""

DEFAULT_PROGRESS_ROUTES_INTERVAL_S: Final = 5.0
"""OptimizeToursStream: full routes at most this often unless the request says otherwise."""

_DONE = object()
_GONE = object()


class _CallEndedError(Exception):
    """The client cancelled the call or its deadline passed: nobody waits for an answer."""


class _DeadlineTooShortError(Exception):
    """The call's deadline leaves no time to solve."""


@dataclass
class _CallRecord:
    """What the per-call log line reports."""

    method: str
    peer: str
    shipments: int
    vehicles: int
    started: float = field(default_factory=time.monotonic)
    outcome: str = ""  # e.g. the solve status, "validate_only"

    def log(self, code: grpc.StatusCode) -> None:
        latency_ms = (time.monotonic() - self.started) * 1000.0
        extra = f" outcome={self.outcome}" if self.outcome else ""
        log.info(
            "%s code=%s latency_ms=%.1f shipments=%d vehicles=%d peer=%s%s",
            self.method, code.name, latency_ms, self.shipments, self.vehicles, self.peer, extra,
        )  # fmt: skip


def _plain_status(code: grpc.StatusCode, message: str) -> grpc.Status:
    google_code = getattr(code_pb2, code.name)
    result: grpc.Status = rpc_status.to_status(status_pb2.Status(code=google_code, message=message))
    return result


def _error_status(exc: Exception, record: _CallRecord) -> grpc.Status:
    """The status answering a call that failed with ``exc``: the one place errors are mapped."""
    if isinstance(exc, InvalidModelError):
        return invalid_argument_status(list(exc.violations), summary="invalid request")
    if isinstance(exc, ExecutorFullError):
        return resource_exhausted_status(
            f"the server is at capacity: {exc}", retry_after_s=RETRY_AFTER_S
        )
    if isinstance(exc, ExecutorShutdownError):
        return _plain_status(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
    if isinstance(exc, _DeadlineTooShortError):
        return _plain_status(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))
    if isinstance(exc, NoSolutionError):
        code = {
            "time_limit": grpc.StatusCode.DEADLINE_EXCEEDED,
            "interrupted": grpc.StatusCode.CANCELLED,
            "infeasible": grpc.StatusCode.FAILED_PRECONDITION,
        }[exc.reason]
        return _plain_status(code, str(exc))
    incident = uuid.uuid4().hex[:12]
    log.error("%s from %s failed (incident %s)", record.method, record.peer, incident, exc_info=exc)
    return internal_status(incident_id=incident)


def _as_request_paths(violations: tuple[FieldViolation, ...]) -> list[FieldViolation]:
    """Engine violations (model-relative paths) with request-relative paths."""
    return [
        FieldViolation(f"model.{v.field}" if v.field else "model", v.description)
        for v in violations
    ]


def _hit_time_limit(solution: Solution) -> bool:
    """Whether the search ran until its time limit (rather than stopping on its own)."""
    return (
        solution.status is SolveStatus.SOLVED
        and solution.solve_time_s >= 0.9 * solution.solver_time_limit_s - 0.1
    )


class RouteOptimizationServicer(pb_grpc.RouteOptimizationServicer):
    """Serves OptimizeTours by running solves in ``executor``'s worker processes."""

    def __init__(
        self,
        executor: Executor,
        *,
        default_timeout_s: float,
        default_geodesic_meters_per_second: float,
        roads: RoadContext | None = None,
        solver_processes: int = AUTO_SOLVER_PROCESSES,
        max_solver_processes: int = 1,
        jobs: JobManager | None = None,
    ) -> None:
        if not default_timeout_s > 0:
            raise ValueError(f"default_timeout_s must be positive, got {default_timeout_s}")
        if not 0 <= solver_processes <= max(max_solver_processes, 1):
            raise ValueError(
                f"solver_processes must be 0 (auto) or in [1, {max_solver_processes}], "
                f"got {solver_processes}"
            )
        self._solver_processes = solver_processes
        self._max_solver_processes = max_solver_processes
        self._executor = executor
        self._jobs = jobs
        self._default_timeout = default_timeout_s
        self._default_speed = default_geodesic_meters_per_second
        self._roads = roads

    def OptimizeTours(  # noqa: N802 (gRPC method name)
        self, request: pb.OptimizeToursRequest, context: grpc.ServicerContext
    ) -> pb.OptimizeToursResponse:
        record = _CallRecord(
            method="OptimizeTours",
            peer=context.peer(),
            shipments=len(request.model.shipments),
            vehicles=len(request.model.vehicles),
        )
        try:
            response = self._optimize_tours(request, context, record)
        except _CallEndedError:
            gone = context.time_remaining() <= 0
            record.log(grpc.StatusCode.DEADLINE_EXCEEDED if gone else grpc.StatusCode.CANCELLED)
            return pb.OptimizeToursResponse()  # nobody reads it
        except Exception as exc:
            status = _error_status(exc, record)
            record.log(status.code)
            context.abort_with_status(status)
            raise AssertionError("abort_with_status returned") from exc  # pragma: no cover
        record.log(grpc.StatusCode.OK)
        return response

    def _optimize_tours(
        self, request: pb.OptimizeToursRequest, context: grpc.ServicerContext, record: _CallRecord
    ) -> pb.OptimizeToursResponse:
        converted = convert_or_validate(
            request,
            default_geodesic_meters_per_second=self._default_speed,
            max_solver_processes=self._max_solver_processes,
        )
        if isinstance(converted, pb.OptimizeToursResponse):
            record.outcome = f"validate_only violations={len(converted.validation_errors)}"
            return converted
        model, settings = converted

        requested, budget, options = self._options(settings, context)
        job = self._executor.submit(model, options)
        wake = threading.Event()
        job.add_done_callback(lambda _: wake.set())
        if not context.add_callback(wake.set):  # the call has already ended
            job.cancel()
            raise _CallEndedError
        if not wake.wait(budget + _RESULT_SLACK_S):
            job.cancel()
            raise TimeoutError(f"solve job {job.id} did not finish within {budget:.1f} s")
        if not job.done() or not context.is_active():  # the call ended: stop the solve
            job.cancel()
            raise _CallEndedError
        solution = self._solution(job.result, requested, budget)
        record.outcome = solution.status.name
        return solution_to_response(solution, request_label=settings.label)

    def _options(
        self, settings: RequestSettings, context: grpc.ServicerContext
    ) -> tuple[float, float, SolveOptions]:
        """The requested time budget, the one the call's deadline leaves, and the options."""
        requested = settings.timeout_s if settings.timeout_s is not None else self._default_timeout
        budget = self._time_budget(requested, context)
        options = settings.solve_options(budget, self._solver_processes)
        return requested, budget, options

    @staticmethod
    def _solution(result: Callable[[], Solution], requested: float, budget: float) -> Solution:
        try:
            solution = result()
        except InvalidModelError as exc:  # validated above, so the engine rarely finds more
            raise InvalidModelError(_as_request_paths(exc.violations)) from exc
        if budget < requested and _hit_time_limit(solution):
            # The call's deadline, not the request's timeout, stopped the search.
            solution = dataclasses.replace(solution, status=SolveStatus.INTERRUPTED)
        return solution

    def OptimizeToursStream(  # noqa: N802 (gRPC method name)
        self, request: pb.OptimizeToursRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.OptimizeToursProgress]:
        record = _CallRecord(
            method="OptimizeToursStream",
            peer=context.peer(),
            shipments=len(request.model.shipments),
            vehicles=len(request.model.vehicles),
        )
        events: queue.SimpleQueue[object] = queue.SimpleQueue()
        try:
            if request.solving_mode == pb.OptimizeToursRequest.VALIDATE_ONLY:
                response = self._optimize_tours(request, context, record)
                record.log(grpc.StatusCode.OK)
                yield pb.OptimizeToursProgress(done=True, response=response)
                return
            interval = DEFAULT_PROGRESS_ROUTES_INTERVAL_S
            if request.HasField("progress_routes_interval"):
                interval = duration_to_seconds(request.progress_routes_interval)
            violations = []
            if interval < 0:
                violations.append(
                    FieldViolation("progress_routes_interval", "must not be negative")
                )
            try:
                model, settings = request_to_engine(
                    request,
                    default_geodesic_meters_per_second=self._default_speed,
                    max_solver_processes=self._max_solver_processes,
                )
            except InvalidModelError as exc:
                raise InvalidModelError([*violations, *exc.violations]) from exc
            if violations:
                raise InvalidModelError(violations)
            requested, budget, options = self._options(settings, context)
            job = self._executor.submit(
                model, options, on_progress=events.put, progress_solutions_every_s=interval
            )
        except Exception as exc:
            status = _error_status(exc, record)
            record.log(status.code)
            context.abort_with_status(status)
            raise AssertionError("abort_with_status returned") from exc  # pragma: no cover
        job.add_done_callback(lambda _: events.put(_DONE))

        def gone() -> None:
            job.cancel()
            events.put(_GONE)

        if not context.add_callback(gone):
            gone()
        started = time.monotonic()
        latest: SolveProgress | None = None
        while True:
            try:
                item = events.get(
                    timeout=max(0.0, started + budget + _RESULT_SLACK_S - time.monotonic())
                )
            except queue.Empty:
                job.cancel()
                item = None
            if item is _GONE or not context.is_active():
                job.cancel()
                deadline_passed = context.time_remaining() <= 0
                record.log(
                    grpc.StatusCode.DEADLINE_EXCEEDED
                    if deadline_passed
                    else grpc.StatusCode.CANCELLED
                )
                return
            if item is _DONE or item is None:
                break
            assert isinstance(item, SolveProgress)
            latest = item
            yield _progress_event(item, settings.label)
        try:
            if item is None:
                raise TimeoutError(f"solve job did not finish within {budget:.1f} s")
            solution = self._solution(job.result, requested, budget)
        except Exception as exc:
            status = _error_status(exc, record)
            record.log(status.code)
            context.abort_with_status(status)
            raise AssertionError("abort_with_status returned") from exc  # pragma: no cover
        response = solution_to_response(solution, request_label=settings.label)
        record.outcome = solution.status.name
        record.log(grpc.StatusCode.OK)
        yield pb.OptimizeToursProgress(
            elapsed=seconds_to_duration(time.monotonic() - started),
            cost=response.metrics.total_cost,
            solution_count=latest.solutions if latest is not None else 0,
            used_vehicle_count=response.metrics.used_vehicle_count,
            skipped_shipment_count=len(response.skipped_shipments),
            response=response,
            done=True,
        )

    def OptimizeToursLongRunning(  # noqa: N802 (gRPC method name)
        self, request: pb.OptimizeToursRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        record = _CallRecord(
            method="OptimizeToursLongRunning",
            peer=context.peer(),
            shipments=len(request.model.shipments),
            vehicles=len(request.model.vehicles),
        )
        return self._submit(record, context, lambda jobs: jobs.submit(request))

    def BatchOptimizeTours(  # noqa: N802 (gRPC method name)
        self, request: pb.BatchOptimizeToursRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        record = _CallRecord(
            method="BatchOptimizeTours",
            peer=context.peer(),
            shipments=sum(len(r.model.shipments) for r in request.requests),
            vehicles=sum(len(r.model.vehicles) for r in request.requests),
        )
        return self._submit(record, context, lambda jobs: jobs.submit_batch(request))

    def EvaluateDepotLayouts(  # noqa: N802 (gRPC method name)
        self, request: pb.EvaluateDepotLayoutsRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        record = _CallRecord(
            method="EvaluateDepotLayouts",
            peer=context.peer(),
            shipments=sum(len(d.orders) for d in request.study.days),
            vehicles=len(request.study.depots),
        )
        return self._submit(record, context, lambda jobs: jobs.submit_layouts(request))

    def _submit(
        self,
        record: _CallRecord,
        context: grpc.ServicerContext,
        submit: Callable[[JobManager], operations_pb2.Operation],
    ) -> operations_pb2.Operation:
        if self._jobs is None:
            record.log(grpc.StatusCode.UNIMPLEMENTED)
            context.abort_with_status(
                _plain_status(grpc.StatusCode.UNIMPLEMENTED, "this server keeps no job store")
            )
            raise AssertionError("abort_with_status returned")  # pragma: no cover
        try:
            operation = submit(self._jobs)
        except Exception as exc:
            status = _error_status(exc, record)
            record.log(status.code)
            context.abort_with_status(status)
            raise AssertionError("abort_with_status returned") from exc  # pragma: no cover
        record.outcome = operation.name
        record.log(grpc.StatusCode.OK)
        return operation

    def ComputeMatrix(  # noqa: N802 (gRPC method name)
        self, request: pb.ComputeMatrixRequest, context: grpc.ServicerContext
    ) -> pb.ComputeMatrixResponse:
        record = _CallRecord(
            method="ComputeMatrix",
            peer=context.peer(),
            shipments=len(request.sources),
            vehicles=len(request.destinations),
        )
        if self._roads is None:
            record.log(grpc.StatusCode.FAILED_PRECONDITION)
            context.abort_with_status(
                _plain_status(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "this server runs without a road network (start it with --osm FILE)",
                )
            )
            raise AssertionError("abort_with_status returned")  # pragma: no cover
        try:
            response = compute_matrix(request, self._roads)
        except Exception as exc:
            status = _error_status(exc, record)
            record.log(status.code)
            context.abort_with_status(status)
            raise AssertionError("abort_with_status returned") from exc  # pragma: no cover
        record.outcome = f"unreachable={response.unreachable_count}"
        record.log(grpc.StatusCode.OK)
        return response

    @staticmethod
    def _time_budget(requested_s: float, context: grpc.ServicerContext) -> float:
        """The solve's time budget: the requested one capped by the call's deadline less the
        margin; :class:`_DeadlineTooShortError` when nothing is left."""
        budget = requested_s
        remaining = context.time_remaining()
        if remaining is not None and remaining < _NO_DEADLINE_S:
            margin = max(MIN_DEADLINE_MARGIN_S, DEADLINE_MARGIN_FRACTION * remaining)
            budget = min(budget, remaining - margin)
            if budget < MIN_SOLVE_BUDGET_S:
                raise _DeadlineTooShortError(
                    f"the call deadline ({remaining:.3f} s left) leaves no time to solve; "
                    f"allow at least {MIN_DEADLINE_MARGIN_S + MIN_SOLVE_BUDGET_S:.2f} s"
                )
        return budget


def _progress_event(update: SolveProgress, label: str) -> pb.OptimizeToursProgress:
    event = pb.OptimizeToursProgress(
        elapsed=seconds_to_duration(update.elapsed_s),
        cost=update.cost,
        solution_count=update.solutions,
        used_vehicle_count=max(0, update.used_vehicles),
        skipped_shipment_count=max(0, update.skipped_shipments),
    )
    if update.solution is not None:
        event.response.CopyFrom(solution_to_response(update.solution, request_label=label))
    return event
