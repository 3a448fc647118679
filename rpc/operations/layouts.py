"""The running side of an EvaluateDepotLayouts operation (see :mod:`rpc.operations.kinds.layouts`):
a depot-layout study as a task of the server's executor (:meth:`runtime.base.Executor.submit_task`).

A study runs in a worker process of its own, exactly like a solve: it takes one slot of the
executor (the same slots, queue and back-pressure as the solves, so the server's health checks
and calls never wait on it), a crash or a kill takes only that process down (the operation is
retried, then ABORTED, like a solve), and a cancel sets the worker's stop flag. In the worker,
:func:`run_study_task` — the task's entry, named to the runtime by reference — converts the
request, routes as many layouts at once as its slot has cores (children forked from the worker,
one search each) and runs the search, all within the study's
budget (:mod:`planning.budget`): the stop flag and the deadline are checked before every solve,
MIP and local-search move, a running solve or MIP is interrupted by the stop flag and gets at
most the time left. After each routed layout it reports the response so far (the layouts
routed, best first) as progress, which the server keeps as the operation's partial response;
its result is the response. The runtime never imports this module: it unpickles the entry by
its module and name in the worker (and the local executor's forkserver preloads it,
:data:`TASK_MODULES`).

The budget is the request's ``timeout`` or, without one, :func:`rpc.layouts.study_budget_s`'s
bound from the study's size; it is also the task's time limit, so the executor's watchdog stops
a study that overruns it by far.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from dataclasses import replace
from typing import Final

from planning import LayoutEvaluation
from rpc.layouts import (
    LayoutOutcome,
    expand_sheets,
    rank,
    request_to_study,
    result_to_response,
    run_request,
)
from rpc.pb import route_optimization_service_pb2 as pb
from runtime.base import TaskContext
from runtime.codec import WireError
from runtime.worker import CRASH_WORKER_LABEL, TEST_HOOKS_ENV_VAR

__all__ = ["TASK_MODULES", "StudyTask", "run_study_task"]

log = logging.getLogger(__name__)

TASK_MODULES: Final = ("rpc.operations.layouts",)
"""The modules of the server's tasks, for the forkserver to import once."""


class StudyTask:
    """What the server sends a study's worker: the request (sheets already read), the default
    geodesic speed and the time budget. Packed as one JSON line and the request's bytes."""

    def __init__(
        self,
        request: pb.EvaluateDepotLayoutsRequest,
        *,
        default_geodesic_meters_per_second: float,
        budget_s: float,
    ) -> None:
        self.request = request
        self.default_geodesic_meters_per_second = default_geodesic_meters_per_second
        self.budget_s = budget_s

    def pack(self) -> bytes:
        head = {
            "geodesic_meters_per_second": self.default_geodesic_meters_per_second,
            "budget_s": self.budget_s,
        }
        return json.dumps(head).encode() + b"\n" + self.request.SerializeToString()

    @classmethod
    def unpack(cls, payload: bytes) -> StudyTask:
        head_bytes, _, request_bytes = payload.partition(b"\n")
        head = json.loads(head_bytes)
        speed, budget = head.get("geodesic_meters_per_second"), head.get("budget_s")
        if not isinstance(speed, int | float) or not isinstance(budget, int | float):
            raise WireError(f"not a study task: {sorted(head)}")
        request = pb.EvaluateDepotLayoutsRequest.FromString(request_bytes)
        return cls(request, default_geodesic_meters_per_second=speed, budget_s=budget)


def run_study_task(payload: bytes, context: TaskContext) -> bytes:
    """The entry of a study's task (module docstring): the serialized
    ``EvaluateDepotLayoutsResponse``; progress: the response so far after each routed layout.
    Raises :class:`~engine.errors.InvalidModelError` for an invalid study."""
    task = StudyTask.unpack(payload)
    request = task.request
    if request.label == CRASH_WORKER_LABEL and os.environ.get(TEST_HOOKS_ENV_VAR) == "1":
        os.kill(os.getpid(), signal.SIGKILL)  # the poison-job hook (tests only)
    from runtime import worker_roads  # preloaded by the forkserver when there are roads

    roads = None if request.use_geodesic_distances else worker_roads.CONTEXT
    req = request_to_study(
        request,
        default_geodesic_meters_per_second=task.default_geodesic_meters_per_second,
        roads=roads,
    )
    # As many layouts at once as the slot has cores, each with one search, in children forked
    # from this worker (planning.evaluate's waves: a worker is a daemonic process).
    workers = max(1, context.cores)
    req = replace(req, options=replace(req.options, workers=workers, solver_processes=1))
    label = req.label
    done: list[LayoutEvaluation] = []

    def on_done(ev: LayoutEvaluation) -> None:
        done.append(ev)
        so_far = result_to_response(LayoutOutcome(rank(done)), label=label)
        context.report(so_far.SerializeToString())

    outcome = run_request(
        req,
        roads=roads,
        on_done=on_done,
        should_stop=context.should_stop,
        time_budget_s=min(task.budget_s, context.time_limit_s),
    )
    return result_to_response(outcome, label=label).SerializeToString()


def study_payload(
    request: pb.EvaluateDepotLayoutsRequest,
    *,
    default_geodesic_meters_per_second: float,
    budget_s: float,
) -> bytes:
    """The payload of the task that runs ``request`` (its sheets read here, once)."""
    expanded, _ = expand_sheets(request)
    return StudyTask(
        expanded,
        default_geodesic_meters_per_second=default_geodesic_meters_per_second,
        budget_s=budget_s,
    ).pack()
