"""Operations of kind ``layouts`` (EvaluateDepotLayouts): a depot layout study run by a
:class:`~rpc.operations.layouts.LayoutRun`, whose routing solves go to the executor. Its
progress is the layouts routed so far, kept as the partial response; a cancelled study keeps
the layouts routed so far as its response (state CANCELLED)."""

from __future__ import annotations

import sqlite3

from rpc.layouts import LayoutOutcome, LayoutRequest, request_to_study, result_to_response
from rpc.operations.kinds.base import OperationKind, Running, elapsed, job_state, set_times
from rpc.operations.layouts import LayoutRun
from rpc.operations.store import JobRecord
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["LayoutsKind"]


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
        req = self.study(pb.EvaluateDepotLayoutsRequest.FromString(rec.request))
        state.label = req.label
        started = host.now()

        def on_layout(so_far: LayoutOutcome) -> None:
            try:
                store_progress(so_far)
            except sqlite3.Error as exc:  # the study goes on; its result is stored at the end
                host.store_failed(exc)

        def store_progress(so_far: LayoutOutcome) -> None:
            best = so_far.evaluations[0]
            response = result_to_response(so_far, label=req.label)
            host.store.update_progress(
                state.name,
                host.now(),
                elapsed_s=host.now() - started,
                solution_count=len(so_far.evaluations),
                best_cost=best.kpis.total_cost,
                used_vehicles=best.kpis.vehicles_used,
                skipped_shipments=best.kpis.orders_unserved,
                response=response.SerializeToString(),
            )

        run = LayoutRun(req, host.executor, roads=self.settings.roads, on_layout=on_layout)
        host.attach(state, run)
        run.add_done_callback(lambda done: self._on_done(state, done))
        run.start()
        return True

    def _on_done(self, state: Running, run: LayoutRun) -> None:
        host = self.host
        stopping = host.release(state)
        try:
            self._complete(state, run, stopping)
        except sqlite3.Error as exc:
            host.store_failed(exc)
        finally:
            host.settled(state)

    def _complete(self, state: Running, run: LayoutRun, stopping: bool) -> None:
        host, name = self.host, state.name
        if stopping and not state.cancel_requested:
            host.interrupted(name)  # queued again: the next start runs it
            return
        try:
            outcome = run.result()
        except BaseException as exc:
            self.fail(name, exc)
        else:
            if state.cancel_requested and not outcome.evaluations:
                message = "the operation was cancelled before a layout was routed"
                self.cancelled_without_result(name, message)
            else:
                response = result_to_response(outcome, label=state.label)
                self.respond(name, response, cancelled=state.cancel_requested)
        host.finished(None)

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
