"""Operations of kind ``tours``: one OptimizeTours request solved by the executor
(OptimizeToursLongRunning, and each item of a BatchOptimizeTours).

Progress from the worker is kept in memory (served by GetOperation at once) and written to the
store at most every ``progress_every_s`` seconds, with the best solution so far whenever the
worker sends one. A cancelled solve keeps its best solution so far as the response (state
CANCELLED).
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
from typing import ClassVar

from google.protobuf.message import Message

from engine.errors import (
    ExecutorFullError,
    ExecutorShutdownError,
    InvalidModelError,
    WorkerLostError,
)
from engine.progress import SolveProgress
from engine.solution import SolveStatus
from rpc.convert import (
    REPORTING_MODES,
    check_size,
    convert_or_validate,
    detected_errors_response,
    request_to_engine,
    seconds_to_timestamp,
    solution_to_response,
    solve_result,
)
from rpc.limits import Limits
from rpc.operations.kinds.base import OperationKind, Running, elapsed, job_state, set_times
from rpc.operations.store import JobRecord
from rpc.pb import route_optimization_service_pb2 as pb
from runtime import Job
from runtime.worker import TEST_HOOKS_ENV_VAR

__all__ = ["CRASH_SERVER_LABEL", "SolveKind"]

log = logging.getLogger(__name__)

CRASH_SERVER_LABEL = "routeopt-test:crash-server"
"""With the test hooks on (:data:`runtime.worker.TEST_HOOKS_ENV_VAR` is ``1``: tests only), a
request with this label kills the server right after its attempt is counted."""


class SolveKind(OperationKind):
    """Solves one OptimizeToursRequest."""

    kind = "tours"
    response_type: ClassVar[type[Message]] = pb.OptimizeToursResponse
    google_metadata = "OptimizeToursLongRunningMetadata"
    google_response = "OptimizeToursResponse"

    def tours_request(self, rec: JobRecord) -> pb.OptimizeToursRequest:
        """The OptimizeToursRequest a stored operation solves."""
        assert rec.request is not None
        return pb.OptimizeToursRequest.FromString(rec.request)

    def check(self, request: pb.OptimizeToursRequest, limits: Limits | None = None) -> None:
        """Raise :class:`~engine.errors.InvalidModelError` unless ``request`` is valid (a
        VALIDATE_ONLY request is: its problems are the response's validation_errors) within
        ``limits`` (the submitting tenant's; None: the server's)."""
        limits = limits or self.settings.limits
        check_size(request, limits, synchronous=False)
        if request.solving_mode in REPORTING_MODES:
            return
        request_to_engine(
            request,
            default_geodesic_meters_per_second=self.settings.default_geodesic_meters_per_second,
            max_solver_processes=self.settings.max_solver_processes,
            limits=limits,
            synchronous=False,
        )

    def start(self, state: Running, rec: JobRecord) -> bool:
        host, settings = self.host, self.settings
        # The attempt is counted before anything that could bring the server down.
        if not host.store.mark_running(state.name, host.now()):
            return False  # not queued any more (done)
        try:
            request = self.tours_request(rec)
        except Exception as exc:
            self.fail(rec.name, exc)
            return False
        if request.label == CRASH_SERVER_LABEL and os.environ.get(TEST_HOOKS_ENV_VAR) == "1":
            log.critical("test hook: killing the server during operation %s", state.name)
            os.kill(os.getpid(), signal.SIGKILL)
        converted = convert_or_validate(
            request,
            default_geodesic_meters_per_second=settings.default_geodesic_meters_per_second,
            max_solver_processes=settings.max_solver_processes,
            limits=settings.limits,
            synchronous=False,
        )
        if isinstance(converted, pb.OptimizeToursResponse):  # not solved (VALIDATE_ONLY, ...)
            try:
                self.respond(state.name, converted, cancelled=False)
            except Exception as exc:
                self.fail(state.name, exc)
            return False
        model, request_settings = converted
        timeout = request_settings.timeout_s
        if timeout is None:  # the server's default, within the tenant's cap
            timeout = min(
                settings.default_timeout_s, host.limits(rec.tenant).long_running_timeout_s
            )
        options = request_settings.solve_options(timeout, settings.solver_processes)
        state.label = request_settings.label
        if (
            request_settings.solving_mode
            == pb.OptimizeToursRequest.DETECT_SOME_INFEASIBLE_SHIPMENTS
        ):
            state.detect_limit = request_settings.max_validation_errors
        try:
            job = host.executor.submit(
                model,
                options,
                on_progress=lambda update: self._on_progress(state, update),
                progress_solutions_every_s=settings.solutions_every_s,
            )
        except (ExecutorFullError, ExecutorShutdownError):
            host.store.unmark_running(state.name, host.now())  # no attempt spent
            if not host.requeue(state):
                host.finish_cancelled(rec)
            return False
        host.attach(state, job)
        if rec.batch is not None:
            try:
                host.refresh(rec.batch)
            except sqlite3.Error as exc:  # the job runs: do not queue it again
                host.store_failed(exc)
        job.add_done_callback(
            lambda done: self.settle(state, lambda stopping: self._complete(state, done, stopping))
        )
        return True

    def _on_progress(self, state: Running, update: SolveProgress) -> None:
        now = self.host.now()
        with state.lock:
            state.latest = update
            write = (
                update.solution is not None
                or now - state.written_at >= self.settings.progress_every_s
            )
            if write:
                state.written_at = now
        if write:
            response = None
            if update.solution is not None:
                response = solution_to_response(
                    update.solution, request_label=state.label
                ).SerializeToString()
            try:
                self._store_progress(state.name, update, response)
            except sqlite3.Error as exc:  # the solve goes on; its result is stored at the end
                self.host.store_failed(exc)

    def _store_progress(self, name: str, update: SolveProgress, response: bytes | None) -> None:
        self.host.store.update_progress(
            name,
            self.host.now(),
            elapsed_s=update.elapsed_s,
            solution_count=update.solutions,
            best_cost=update.cost,
            used_vehicles=update.used_vehicles,
            skipped_shipments=update.skipped_shipments,
            response=response,
        )

    def _complete(self, state: Running, job: Job, stopping: bool) -> None:
        host, name = self.host, state.name
        with state.lock:
            latest = state.latest
        if latest is not None:  # the last progress may not have been written yet
            try:
                self._store_progress(name, latest, None)
            except sqlite3.Error as exc:
                host.store_failed(exc)
        try:
            solution = solve_result(job.result)
        except BaseException as exc:
            if stopping and not state.cancel_requested:
                host.interrupted(name)  # queued again: the next start runs it
                return
            if state.cancel_requested:
                message = f"the operation was cancelled before a solution ({exc})"
                self.cancelled_without_result(name, message)
            elif isinstance(exc, WorkerLostError):
                if host.worker_lost(name, exc):
                    return  # queued again
            elif isinstance(exc, InvalidModelError) and state.detect_limit is not None:
                # DETECT_SOME_INFEASIBLE_SHIPMENTS: the injected solution constraint's locks
                # that cannot hold go in validation_errors (Google), not an error
                response = detected_errors_response(
                    exc.violations, request_label=state.label, limit=state.detect_limit
                )
                self.respond(name, response, cancelled=False)
            else:
                self.fail(name, exc)
        else:
            interrupted = solution.status is SolveStatus.INTERRUPTED
            if stopping and not state.cancel_requested and interrupted:
                host.interrupted(name)  # queued again: the next start runs it
                return
            response = solution_to_response(solution, request_label=state.label)
            self.respond(name, response, cancelled=state.cancel_requested)
        rec = host.store.get(name)
        if rec is not None:
            host.finished(rec.batch)

    def metadata(self, rec: JobRecord) -> pb.OptimizeToursMetadata:
        md = pb.OptimizeToursMetadata(
            state=job_state(rec.state),
            request_label=rec.label,
            attempt=rec.attempt,
            batch_operation=rec.batch or "",
        )
        set_times(md, rec)
        elapsed_s, solutions, cost = rec.elapsed_s, rec.solution_count, rec.best_cost
        used, skipped = rec.used_vehicles, rec.skipped_shipments
        latest = self.host.live(rec.name)
        now = self.host.now()
        if latest is not None and not rec.done:
            elapsed_s, solutions, cost = latest.elapsed_s, latest.solutions, latest.cost
            used, skipped = latest.used_vehicles, latest.skipped_shipments
            md.update_time.CopyFrom(seconds_to_timestamp(now))
        md.elapsed.CopyFrom(elapsed(rec, elapsed_s, now))
        md.solution_count = solutions
        if cost is not None:
            md.best_cost = cost
        md.used_vehicle_count = max(0, used)
        md.skipped_shipment_count = max(0, skipped)
        return md
