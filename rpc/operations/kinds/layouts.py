"""Operations of kind ``layouts`` (EvaluateDepotLayouts): a depot layout study run as a task
of the executor, in a worker process of its own (:mod:`rpc.operations.layouts`). Its progress
is the layouts routed so far, kept as the partial response; a cancelled study keeps the layouts
routed so far as its response (state CANCELLED), even when its worker had to be killed.

Like a solve: the attempt is counted before the task is submitted; a task the executor refuses
(full) goes back to the head of the queue without spending an attempt; a study whose worker
dies runs again, up to the manager's attempts, then ends ABORTED; a study interrupted by the
server's shutdown is queued again for the next start without spending an attempt. A study
whose budget passed before its first layout was routed fails with DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import logging
import sqlite3

from google.protobuf.message import DecodeError

from engine.errors import ExecutorFullError, ExecutorShutdownError, NoSolutionError, WorkerLostError
from rpc.layouts import LayoutRequest, request_to_study, study_budget_s
from rpc.operations.kinds.base import OperationKind, Running, elapsed, job_state, set_times
from rpc.operations.layouts import run_study_task, study_payload
from rpc.operations.store import JobRecord
from rpc.pb import route_optimization_service_pb2 as pb
from runtime.base import TaskJob

__all__ = ["LayoutsKind"]

log = logging.getLogger(__name__)


class LayoutsKind(OperationKind):
    """Evaluates one EvaluateDepotLayoutsRequest."""

    kind = "layouts"
    response_type = pb.EvaluateDepotLayoutsResponse

    def study(self, request: pb.EvaluateDepotLayoutsRequest) -> LayoutRequest:
        """The converted request (:class:`~engine.errors.InvalidModelError` when invalid)."""
        settings = self.settings
        return request_to_study(
            request,
            default_geodesic_meters_per_second=settings.default_geodesic_meters_per_second,
            workers=settings.layout_workers,
            roads=settings.roads,
        )

    def start(self, state: Running, rec: JobRecord) -> bool:
        assert rec.request is not None
        host = self.host
        if not host.store.mark_running(state.name, host.now()):  # the attempt, counted first
            return False
        request = pb.EvaluateDepotLayoutsRequest.FromString(rec.request)
        req = self.study(request)
        state.label = req.label
        budget_s = study_budget_s(req)
        payload = study_payload(
            request,
            default_geodesic_meters_per_second=self.settings.default_geodesic_meters_per_second,
            budget_s=budget_s,
        )
        started = host.now()
        try:
            job = host.executor.submit_task(
                run_study_task,
                payload,
                time_limit_s=budget_s,
                on_progress=lambda data: self._on_progress(state, started, data),
                cores=0,  # auto: the cores the running solves leave
            )
        except (ExecutorFullError, ExecutorShutdownError):
            host.store.unmark_running(state.name, host.now())  # no attempt spent
            if not host.requeue(state):
                host.finish_cancelled(rec)
            return False
        host.attach(state, job)
        job.add_done_callback(
            lambda done: self.settle(state, lambda stopping: self._complete(state, done, stopping))
        )
        return True

    def _on_progress(self, state: Running, started: float, data: bytes) -> None:
        """The response so far, from the study's worker: stored as the partial response."""
        host = self.host
        try:
            so_far = pb.EvaluateDepotLayoutsResponse.FromString(data)
        except DecodeError:
            log.error("operation %s: unreadable progress from its worker", state.name)
            return
        if not so_far.layouts:
            return
        best = so_far.layouts[0]
        try:
            host.store.update_progress(
                state.name,
                host.now(),
                elapsed_s=host.now() - started,
                solution_count=len(so_far.layouts),
                best_cost=best.kpis.total_cost,
                used_vehicles=best.kpis.vehicles_used,
                skipped_shipments=best.kpis.orders_unserved,
                response=data,
            )
        except sqlite3.Error as exc:  # the study goes on; its result is stored at the end
            host.store_failed(exc)

    def _complete(self, state: Running, job: TaskJob, stopping: bool) -> None:
        host, name = self.host, state.name
        if stopping and not state.cancel_requested and job.cancel_requested:
            host.interrupted(name)  # stopped by the shutdown: the next start runs it again
            return
        try:
            response = pb.EvaluateDepotLayoutsResponse.FromString(job.result())
        except BaseException as exc:
            if state.cancel_requested:
                self._cancelled(name, f"({exc})")
            elif isinstance(exc, WorkerLostError):
                if host.worker_lost(name, exc):
                    return  # queued again
            else:
                self.fail(name, exc)
        else:
            if state.cancel_requested:
                if response.layouts:
                    self.respond(name, response, cancelled=True)
                else:
                    self._cancelled(name, "")
            elif not response.layouts:
                budget = NoSolutionError(
                    "time_limit", "the study's time budget passed before a layout was routed"
                )
                self.fail(name, budget)
            else:
                self.respond(name, response, cancelled=False)
        host.finished(None)

    def _cancelled(self, name: str, why: str) -> None:
        """Finish a cancelled study: with the layouts its progress stored, if any."""
        rec = self.host.store.get(name)
        if rec is not None and rec.response is not None:
            self.respond(
                name, pb.EvaluateDepotLayoutsResponse.FromString(rec.response), cancelled=True
            )
        else:
            message = f"the operation was cancelled before a layout was routed {why}".strip()
            self.cancelled_without_result(name, message)

    def metadata(self, rec: JobRecord) -> pb.EvaluateDepotLayoutsMetadata:
        md = pb.EvaluateDepotLayoutsMetadata(
            state=job_state(rec.state),
            request_label=rec.label,
            attempt=rec.attempt,
            layouts_done=rec.solution_count,
        )
        set_times(md, rec)
        md.elapsed.CopyFrom(elapsed(rec, rec.elapsed_s, self.host.now()))
        if rec.request is not None:
            request = pb.EvaluateDepotLayoutsRequest.FromString(rec.request)
            if request.study.search.mode == pb.LayoutSearch.MODE_UNSPECIFIED:
                md.layouts_total = len(request.study.layouts)
        if rec.response is not None:
            response = pb.EvaluateDepotLayoutsResponse.FromString(rec.response)
            if response.layouts:
                md.best_layout = response.layouts[0].layout.label
                md.best_cost = response.layouts[0].kpis.total_cost
        return md
