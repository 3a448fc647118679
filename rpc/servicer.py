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
A slow reader gets the latest updates, not a backlog (:class:`ProgressMailbox`: at most two
updates wait, so server memory does not grow with the reader's delay).
OptimizeToursLongRunning, BatchOptimizeTours and OptimizeToursUri hand the request to
:class:`rpc.operations.manager.JobManager`
(durable operations, followed through ``google.longrunning.Operations``). Google's
``google.maps.routeoptimization.v1.RouteOptimization`` (:mod:`rpc.google.service`) calls the same
methods on the same (wire-identical) messages; its operations carry Google's type URLs.

Errors are mapped to statuses in one place (:func:`rpc.errors.status_of`, the same mapping as
for the errors of long-running operations); an unexpected error is answered with a generic
INTERNAL status and an incident id, its traceback goes to the server log only.
Each call writes one log line: method, status code, latency, problem size, peer (and the
caller's tenant when calls are authenticated).

Why one module of over 500 lines: one servicer class implements every RPC of the routeopt
service (Google's service reuses its methods, :mod:`rpc.google.service`), and each method is the
same short shape (decode, admit, run, encode); the conversions and executors live elsewhere.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn, TypeVar

import grpc
from google.longrunning import operations_pb2
from google.rpc import code_pb2

from engine.errors import FieldViolation, InvalidModelError
from engine.model import ShipmentModel
from engine.options import AUTO_SOLVER_PROCESSES, SolveOptions
from engine.progress import SolveProgress
from engine.roads import RoadContext
from engine.solution import Solution, SolveStatus
from rpc.auth import current_tenant
from rpc.convert import (
    UNSOLVED_MODES,
    RequestSettings,
    convert_or_validate,
    detected_errors_response,
    duration_to_seconds,
    request_to_engine,
    seconds_to_duration,
    solution_to_response,
    solve_result,
)
from rpc.errors import DeadlineTooShortError, grpc_status, plain_status, status_of
from rpc.limits import Limits
from rpc.matrix import compute_matrix
from rpc.operations.manager import JobManager
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc
from rpc.quotas import SolveSlots
from runtime import Executor, Job

__all__ = [
    "MIN_DEADLINE_MARGIN_S",
    "MIN_SOLVE_BUDGET_S",
    "ProgressMailbox",
    "RouteOptimizationServicer",
]

log = logging.getLogger(__name__)

_R = TypeVar("_R")

MIN_DEADLINE_MARGIN_S: Final = 0.3
"""Smallest part of the call's remaining time kept back for sending the response."""

DEADLINE_MARGIN_FRACTION: Final = 0.1
"""Part of the call's remaining time kept back for sending the response (when above the min)."""

MIN_SOLVE_BUDGET_S: Final = 0.05
"""Below this time budget the call is answered DEADLINE_EXCEEDED without solving."""

_RESULT_SLACK_S: Final = 60.0
"""How long past its budget the servicer waits for a solve before giving up (safety net; the
executor's own watchdog stops overrunning workers first)."""

_NO_DEADLINE_S: Final = 1e8
"""``time_remaining()`` above this means the call has no deadline."""

DEFAULT_PROGRESS_ROUTES_INTERVAL_S: Final = 5.0
"""OptimizeToursStream: full routes at most this often unless the request says otherwise."""

_DONE = object()
_GONE = object()


def wait_s(seconds: float) -> float:
    """``seconds`` as a timeout that ``threading`` accepts: a request may ask for more time than
    ``threading.TIMEOUT_MAX`` (about 292 years), which would make a wait raise OverflowError."""
    return min(seconds, threading.TIMEOUT_MAX)


class _CallEndedError(Exception):
    """The client cancelled the call or its deadline passed: nobody waits for an answer."""


@dataclass
class _CallRecord:
    """What the per-call log line reports."""

    method: str
    peer: str
    shipments: int
    vehicles: int
    started: float = field(default_factory=time.monotonic)
    outcome: str = ""  # e.g. the solve status, "validate_only"
    tenant: str = field(default_factory=current_tenant)

    @classmethod
    def of_tours(
        cls, method: str, context: grpc.ServicerContext, request: pb.OptimizeToursRequest
    ) -> _CallRecord:
        """The record of a call about one OptimizeToursRequest."""
        model = request.model
        return cls(method, context.peer(), len(model.shipments), len(model.vehicles))

    def log(self, code: grpc.StatusCode) -> None:
        latency_ms = (time.monotonic() - self.started) * 1000.0
        extra = f" outcome={self.outcome}" if self.outcome else ""
        if self.tenant:
            extra += f" tenant={self.tenant}"
        log.info(
            "%s code=%s latency_ms=%.1f shipments=%d vehicles=%d peer=%s%s",
            self.method, code.name, latency_ms, self.shipments, self.vehicles, self.peer, extra,
        )  # fmt: skip

    def log_ended(self, context: grpc.ServicerContext) -> None:
        """Log a call that ended (cancelled, or past its deadline) before its answer."""
        gone = context.time_remaining() <= 0
        self.log(grpc.StatusCode.DEADLINE_EXCEEDED if gone else grpc.StatusCode.CANCELLED)

    def abort(self, context: grpc.ServicerContext, exc: Exception) -> NoReturn:
        """Answer the call with the status of ``exc`` (:func:`rpc.errors.status_of`)."""
        status = grpc_status(status_of(exc, action=f"{self.method} from {self.peer}"))
        self.log(status.code)
        context.abort_with_status(status)
        raise AssertionError("abort_with_status returned") from exc  # pragma: no cover

    def refuse(self, context: grpc.ServicerContext, code: int, message: str) -> NoReturn:
        """Answer the call with a plain status of ``code`` (a ``google.rpc.Code``)."""
        status = grpc_status(plain_status(code, message))
        self.log(status.code)
        context.abort_with_status(status)
        raise AssertionError("abort_with_status returned")  # pragma: no cover

    def answer(self, context: grpc.ServicerContext, run: Callable[[], _R]) -> _R:
        """``run()``, logged as OK; a failure is answered with its status
        (:class:`_CallEndedError` goes through)."""
        try:
            response = run()
        except _CallEndedError:
            raise
        except Exception as exc:
            self.abort(context, exc)
        self.log(grpc.StatusCode.OK)
        return response


class ProgressMailbox:
    """What a stream has still to send, bounded whatever the reader's pace: the latest update
    with a solution, the latest one after it without, and the end (``_DONE`` or ``_GONE``).
    A newer update replaces an unsent older one of its sort, so a slow reader gets the latest
    state, never a backlog (at most two pending updates: server memory stays bounded)."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._with_solution: SolveProgress | None = None
        self._plain: SolveProgress | None = None
        self._end: object | None = None
        self.dropped = 0
        """Updates replaced before they were sent."""

    def put(self, item: object) -> None:
        """An update (:class:`SolveProgress`) or the end (``_DONE``, ``_GONE``)."""
        with self._ready:
            if isinstance(item, SolveProgress):
                if item.solution is not None:
                    self.dropped += (self._with_solution is not None) + (self._plain is not None)
                    self._with_solution, self._plain = item, None
                else:
                    self.dropped += self._plain is not None
                    self._plain = item
            elif self._end is None or item is _GONE:
                self._end = item
            self._ready.notify_all()

    def pending(self) -> int:
        """Updates waiting to be sent (at most 2)."""
        with self._ready:
            return (self._with_solution is not None) + (self._plain is not None)

    def _has_news(self) -> bool:
        return not (self._with_solution is None and self._plain is None and self._end is None)

    def get(self, timeout: float) -> object:
        """The next thing to send: updates first (a solution before a newer plain update),
        then the end; ``queue.Empty`` after ``timeout`` seconds of nothing."""
        with self._ready:
            if not self._ready.wait_for(self._has_news, timeout):
                raise queue.Empty
            if self._end is _GONE:
                return _GONE
            if self._with_solution is not None:
                item, self._with_solution = self._with_solution, None
                return item
            if self._plain is not None:
                item, self._plain = self._plain, None
                return item
            return self._end


@dataclass
class _Stream:
    """A solve followed by OptimizeToursStream."""

    job: Job
    settings: RequestSettings
    requested: float
    budget: float
    events: ProgressMailbox
    started: float = field(default_factory=time.monotonic)
    latest: SolveProgress | None = None


def _hit_time_limit(solution: Solution) -> bool:
    """Whether the search ran until its time limit (rather than stopping on its own)."""
    return (
        solution.status is SolveStatus.SOLVED
        and solution.solve_time_s >= 0.9 * solution.solver_time_limit_s - 0.1
    )


def _progress_interval(request: pb.OptimizeToursRequest) -> float:
    """OptimizeToursStream's ``progress_routes_interval``, or the default."""
    if request.HasField("progress_routes_interval"):
        return duration_to_seconds(request.progress_routes_interval)
    return DEFAULT_PROGRESS_ROUTES_INTERVAL_S


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
        solve_slots: SolveSlots | None = None,
        limits: Limits | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
        tenant_limits: Callable[[str], Limits] | None = None,
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
        self._solve_slots = solve_slots
        """Per-tenant counts of synchronous solves (None: no per-tenant limit)."""
        self._limits = limits or Limits()
        self._tenant_limits = tenant_limits
        """A tenant's limits (:class:`rpc.quotas.TenantLimits`; None: the server's for all)."""
        self._max_message_bytes = max_message_bytes

    def _call_limits(self) -> Limits:
        """The request limits of the calling tenant."""
        if self._tenant_limits is None:
            return self._limits
        return self._tenant_limits(current_tenant())

    def OptimizeTours(  # noqa: N802 (gRPC method name)
        self, request: pb.OptimizeToursRequest, context: grpc.ServicerContext
    ) -> pb.OptimizeToursResponse:
        record = _CallRecord.of_tours("OptimizeTours", context, request)
        try:
            return record.answer(context, lambda: self._optimize_tours(request, context, record))
        except _CallEndedError:
            record.log_ended(context)
            return pb.OptimizeToursResponse()  # nobody reads it

    def _optimize_tours(
        self, request: pb.OptimizeToursRequest, context: grpc.ServicerContext, record: _CallRecord
    ) -> pb.OptimizeToursResponse:
        limits = self._call_limits()
        converted = convert_or_validate(
            request,
            default_geodesic_meters_per_second=self._default_speed,
            max_solver_processes=self._max_solver_processes,
            limits=limits,
        )
        if isinstance(converted, pb.OptimizeToursResponse):
            record.outcome = f"validate_only violations={len(converted.validation_errors)}"
            return converted
        model, settings = converted

        requested, budget, options = self._options(settings, context, limits)
        job = self._submit_solve(model, options)
        wake = threading.Event()
        job.add_done_callback(lambda _: wake.set())
        if not context.add_callback(wake.set):  # the call has already ended
            job.cancel()
            raise _CallEndedError
        if not wake.wait(wait_s(budget + _RESULT_SLACK_S)):
            job.cancel()
            raise TimeoutError(f"solve job {job.id} did not finish within {budget:.1f} s")
        if not job.done() or not context.is_active():  # the call ended: stop the solve
            job.cancel()
            raise _CallEndedError
        try:
            solution = self._solution(job.result, requested, budget)
        except InvalidModelError as exc:
            if settings.solving_mode != pb.OptimizeToursRequest.DETECT_SOME_INFEASIBLE_SHIPMENTS:
                raise
            # locks of the injected solution constraint that cannot hold (issue 15): Google
            # answers them in validation_errors in this mode
            record.outcome = f"detect violations={len(exc.violations)}"
            return detected_errors_response(
                exc.violations,
                request_label=settings.label,
                limit=settings.max_validation_errors,
            )
        record.outcome = solution.status.name
        return solution_to_response(solution, request_label=settings.label)

    def _submit_solve(self, model: ShipmentModel, options: SolveOptions, **kwargs: Any) -> Job:
        """Submit a synchronous solve to the executor, within the caller's tenant quota of
        solves (a slot held until the job is done)."""
        if self._solve_slots is None:
            return self._executor.submit(model, options, **kwargs)
        release = self._solve_slots.acquire(current_tenant())
        try:
            job = self._executor.submit(model, options, **kwargs)
        except BaseException:
            release()
            raise
        job.add_done_callback(lambda _: release())
        return job

    def _options(
        self, settings: RequestSettings, context: grpc.ServicerContext, limits: Limits
    ) -> tuple[float, float, SolveOptions]:
        """The requested time budget, the one the call's deadline leaves, and the options
        (without a request timeout: the server's default, within the tenant's cap)."""
        requested = (
            settings.timeout_s
            if settings.timeout_s is not None
            else min(self._default_timeout, limits.sync_timeout_s)
        )
        budget = self._time_budget(requested, context)
        options = settings.solve_options(budget, self._solver_processes)
        return requested, budget, options

    @staticmethod
    def _solution(result: Callable[[], Solution], requested: float, budget: float) -> Solution:
        solution = solve_result(result)
        if budget < requested and _hit_time_limit(solution):
            # The call's deadline, not the request's timeout, stopped the search.
            solution = dataclasses.replace(solution, status=SolveStatus.INTERRUPTED)
        return solution

    def OptimizeToursStream(  # noqa: N802 (gRPC method name)
        self, request: pb.OptimizeToursRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.OptimizeToursProgress]:
        record = _CallRecord.of_tours("OptimizeToursStream", context, request)
        if (
            request.solving_mode in UNSOLVED_MODES
            or request.solving_mode == pb.OptimizeToursRequest.DETECT_SOME_INFEASIBLE_SHIPMENTS
        ):  # no search to follow: the one answer of OptimizeTours (validation_errors too)
            response = record.answer(
                context, lambda: self._optimize_tours(request, context, record)
            )
            yield pb.OptimizeToursProgress(done=True, response=response)
            return
        try:
            stream = self._start_stream(request, context)
        except Exception as exc:
            record.abort(context, exc)
        stream.job.add_done_callback(lambda _: stream.events.put(_DONE))

        def gone() -> None:
            stream.job.cancel()
            stream.events.put(_GONE)

        if not context.add_callback(gone):
            gone()
        last = yield from self._progress_events(stream, context)
        if last is _GONE:
            record.log_ended(context)
            return
        yield self._final_event(stream, record, context, timed_out=last is None)

    def _start_stream(
        self, request: pb.OptimizeToursRequest, context: grpc.ServicerContext
    ) -> _Stream:
        """Validate a streamed request (``progress_routes_interval`` too) and submit its solve."""
        interval = _progress_interval(request)
        violations = []
        if interval < 0:
            violations.append(FieldViolation("progress_routes_interval", "must not be negative"))
        limits = self._call_limits()
        try:
            model, settings = request_to_engine(
                request,
                default_geodesic_meters_per_second=self._default_speed,
                max_solver_processes=self._max_solver_processes,
                limits=limits,
            )
        except InvalidModelError as exc:
            raise InvalidModelError([*violations, *exc.violations]) from exc
        if violations:
            raise InvalidModelError(violations)
        requested, budget, options = self._options(settings, context, limits)
        events = ProgressMailbox()
        job = self._submit_solve(
            model, options, on_progress=events.put, progress_solutions_every_s=interval
        )
        return _Stream(job, settings, requested, budget, events)

    @staticmethod
    def _progress_events(
        stream: _Stream, context: grpc.ServicerContext
    ) -> Generator[pb.OptimizeToursProgress, None, object]:
        """Yield an event per progress update until the solve is done; returns ``_DONE``,
        ``_GONE`` (the call ended: the solve is cancelled) or None (it overran its budget)."""
        while True:
            timeout = stream.started + stream.budget + _RESULT_SLACK_S - time.monotonic()
            try:
                item = stream.events.get(timeout=wait_s(max(0.0, timeout)))
            except queue.Empty:
                stream.job.cancel()
                item = None
            if item is _GONE or not context.is_active():
                stream.job.cancel()
                return _GONE
            if item is _DONE or item is None:
                return item
            assert isinstance(item, SolveProgress)
            stream.latest = item
            yield _progress_event(item, stream.settings.label)

    def _final_event(
        self,
        stream: _Stream,
        record: _CallRecord,
        context: grpc.ServicerContext,
        *,
        timed_out: bool,
    ) -> pb.OptimizeToursProgress:
        """The last event of a stream, with the final response (a failure aborts the call)."""
        try:
            if timed_out:
                raise TimeoutError(f"solve job did not finish within {stream.budget:.1f} s")
            solution = self._solution(stream.job.result, stream.requested, stream.budget)
        except Exception as exc:
            record.abort(context, exc)
        response = solution_to_response(solution, request_label=stream.settings.label)
        record.outcome = solution.status.name
        record.log(grpc.StatusCode.OK)
        latest = stream.latest
        return pb.OptimizeToursProgress(
            elapsed=seconds_to_duration(time.monotonic() - stream.started),
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
        return self.optimize_tours_long_running(request, context, google=False)

    def BatchOptimizeTours(  # noqa: N802 (gRPC method name)
        self, request: pb.BatchOptimizeToursRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        return self.batch_optimize_tours(request, context, google=False)

    def OptimizeToursUri(  # noqa: N802 (gRPC method name)
        self, request: pb.OptimizeToursUriRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        return self.optimize_tours_uri(request, context, google=False)

    # The long-running methods of both services; ``google``: called through Google's service
    # (rpc.google.service), whose operations carry Google's type URLs.

    def optimize_tours_long_running(
        self, request: pb.OptimizeToursRequest, context: grpc.ServicerContext, *, google: bool
    ) -> operations_pb2.Operation:
        """OptimizeToursLongRunning."""
        method = _method("OptimizeToursLongRunning", google)
        record = _CallRecord.of_tours(method, context, request)
        return self._submit(
            record, context, lambda jobs: jobs.submit(request, current_tenant(), google=google)
        )

    def batch_optimize_tours(
        self, request: pb.BatchOptimizeToursRequest, context: grpc.ServicerContext, *, google: bool
    ) -> operations_pb2.Operation:
        """BatchOptimizeTours."""
        shipments = sum(len(r.model.shipments) for r in request.requests)
        vehicles = sum(len(r.model.vehicles) for r in request.requests)
        method = _method("BatchOptimizeTours", google)
        record = _CallRecord(method, context.peer(), shipments, vehicles)
        return self._submit(
            record,
            context,
            lambda jobs: jobs.submit_batch(request, current_tenant(), google=google),
        )

    def optimize_tours_uri(
        self, request: pb.OptimizeToursUriRequest, context: grpc.ServicerContext, *, google: bool
    ) -> operations_pb2.Operation:
        """OptimizeToursUri."""
        record = _CallRecord(_method("OptimizeToursUri", google), context.peer(), 0, 0)
        return self._submit(
            record, context, lambda jobs: jobs.submit_uri(request, current_tenant(), google=google)
        )

    def EvaluateDepotLayouts(  # noqa: N802 (gRPC method name)
        self, request: pb.EvaluateDepotLayoutsRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        orders = sum(len(d.orders) for d in request.study.days)
        record = _CallRecord(
            "EvaluateDepotLayouts", context.peer(), orders, len(request.study.depots)
        )
        return self._submit(
            record, context, lambda jobs: jobs.submit_layouts(request, current_tenant())
        )

    def _submit(
        self,
        record: _CallRecord,
        context: grpc.ServicerContext,
        submit: Callable[[JobManager], operations_pb2.Operation],
    ) -> operations_pb2.Operation:
        jobs = self._jobs
        if jobs is None:
            record.refuse(context, code_pb2.UNIMPLEMENTED, "this server keeps no job store")

        def run() -> operations_pb2.Operation:
            operation = submit(jobs)
            record.outcome = operation.name
            return operation

        return record.answer(context, run)

    def ComputeMatrix(  # noqa: N802 (gRPC method name)
        self, request: pb.ComputeMatrixRequest, context: grpc.ServicerContext
    ) -> pb.ComputeMatrixResponse:
        record = _CallRecord(
            method="ComputeMatrix",
            peer=context.peer(),
            shipments=len(request.sources),
            vehicles=len(request.destinations),
        )
        roads = self._roads
        if roads is None:
            record.refuse(
                context,
                code_pb2.FAILED_PRECONDITION,
                "this server runs without a road network (start it with --osm FILE)",
            )

        def run() -> pb.ComputeMatrixResponse:
            points = len(request.sources) + len(request.destinations)
            limits = self._call_limits()
            cap = limits.compute_matrix_cap(request.encoding, self._max_message_bytes, points)
            response = compute_matrix(
                request, roads, max_cells=cap, limit_note=limits.compute_matrix_where(cap)
            )
            record.outcome = f"unreachable={response.unreachable_count}"
            return response

        return record.answer(context, run)

    @staticmethod
    def _time_budget(requested_s: float, context: grpc.ServicerContext) -> float:
        """The solve's time budget: the requested one capped by the call's deadline less the
        margin; :class:`~rpc.errors.DeadlineTooShortError` when nothing is left."""
        budget = requested_s
        remaining = context.time_remaining()
        if remaining is not None and remaining < _NO_DEADLINE_S:
            margin = max(MIN_DEADLINE_MARGIN_S, DEADLINE_MARGIN_FRACTION * remaining)
            budget = min(budget, remaining - margin)
            if budget < MIN_SOLVE_BUDGET_S:
                raise DeadlineTooShortError(
                    f"the call deadline ({remaining:.3f} s left) leaves no time to solve; "
                    f"allow at least {MIN_DEADLINE_MARGIN_S + MIN_SOLVE_BUDGET_S:.2f} s"
                )
        return budget


def _method(name: str, google: bool) -> str:
    """A method's name in the call log: Google's service's are marked."""
    return f"google.{name}" if google else name


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
