"""The running side of an EvaluateDepotLayouts operation (see :mod:`rpc.operations.kinds.layouts`).

A :class:`LayoutRun` evaluates a study in a thread of the server: the screening model and the
bookkeeping run there, and every routing solve goes to the server's solve executor (worker
processes, or the Dask cluster), so the server stays responsive and layout studies share the
solve workers with the other calls. Layouts are evaluated ``workers`` at once (threads, each
waiting for its solves). A solve refused because the executor's queue is full is retried.

:meth:`LayoutRun.cancel` stops it: the running solves are cancelled (they return their best
routes so far), no further layout starts, and the layouts routed so far are the result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from engine.errors import ExecutorFullError
from engine.model import ShipmentModel
from engine.options import SolveOptions
from engine.roads import RoadContext
from engine.solution import Solution
from planning import LayoutEvaluation
from rpc.layouts import LayoutOutcome, LayoutRequest, rank, run_request
from runtime import Executor, Job

__all__ = ["LayoutRun"]

log = logging.getLogger(__name__)

_RETRY_S = 0.2
"""Wait before submitting again a solve that the full executor refused."""


class StoppedError(Exception):
    """The run was cancelled before its solve could start."""


class LayoutRun:
    """One study being evaluated; ``on_layout`` gets the outcome so far after each layout."""

    def __init__(
        self,
        request: LayoutRequest,
        executor: Executor,
        *,
        roads: RoadContext | None,
        on_layout: Callable[[LayoutOutcome], None],
    ) -> None:
        self._request = request
        self._executor = executor
        self._roads = roads
        self._on_layout = on_layout
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._solves: set[Job] = set()
        self._done: list[LayoutEvaluation] = []
        self._future: Future[LayoutOutcome] = Future()
        self._thread = threading.Thread(target=self._run, name="layouts", daemon=True)

    def start(self) -> None:
        """Start evaluating (in a thread of its own)."""
        self._thread.start()

    # -- what the ``layouts`` operation kind uses ------------------------------------------------

    def cancel(self) -> None:
        """Stop: the running solves are cancelled and no further layout starts."""
        self._cancelled.set()
        with self._lock:
            solves = list(self._solves)
        for job in solves:
            job.cancel()

    def result(self, timeout: float | None = None) -> LayoutOutcome:
        """The layouts routed (all of them, or those routed before a cancel)."""
        return self._future.result(timeout)

    def add_done_callback(self, fn: Callable[[LayoutRun], object]) -> None:
        """Call ``fn(self)`` once the run is over (at once if it is)."""
        self._future.add_done_callback(lambda _: fn(self))

    # -- running ----------------------------------------------------------------------------------

    def _solve(
        self, model: ShipmentModel, options: SolveOptions, roads: RoadContext | None
    ) -> Solution:
        del roads  # the executor's workers have the server's road network
        while True:
            if self._cancelled.is_set():
                raise StoppedError("the operation was cancelled")
            try:
                job = self._executor.submit(model, options)
                break
            except ExecutorFullError:
                time.sleep(_RETRY_S)
        with self._lock:
            self._solves.add(job)
        try:
            if self._cancelled.is_set():
                job.cancel()
            return job.result()
        finally:
            with self._lock:
                self._solves.discard(job)

    def _layout_done(self, ev: LayoutEvaluation) -> None:
        with self._lock:
            self._done.append(ev)
            so_far = LayoutOutcome(rank(self._done))
        try:
            self._on_layout(so_far)
        except Exception:
            log.exception("cannot record the progress of a layout study")

    def _run(self) -> None:
        try:
            outcome = run_request(
                self._request,
                roads=self._roads,
                on_done=self._layout_done,
                should_stop=self._cancelled.is_set,
                solve_fn=self._solve,
            )
        except StoppedError:
            with self._lock:
                outcome = LayoutOutcome(rank(self._done))
        except BaseException as exc:
            self._future.set_exception(exc)
            return
        self._future.set_result(outcome)
