"""Run solves on a Dask distributed cluster: the :class:`~runtime.local.Executor` for scale-out.

:class:`DaskExecutor` connects to an existing scheduler (``tcp://host:8786``) and behaves like
:class:`~runtime.local.SolveExecutor`: at most ``max_workers`` solves run at once (default:
the cluster's worker threads when it connects), ``max_queued`` more wait, beyond that
:class:`~engine.errors.ExecutorFullError`; time spent waiting counts against a solve's budget.

- **Large inputs once per worker**: the road network travels inside a worker plugin
  (:class:`RouteoptWorkerPlugin`), registered once; Dask hands it to every worker, present and
  future, which writes it to its local directory and starts its own
  :class:`~runtime.local.SolveExecutor` whose forkserver loads it. A job ships only its model
  and options.
- **Isolation**: on the worker, a solve runs in a forked process of that executor, never in the
  Dask worker's thread (OR-Tools holds the GIL, which would starve the worker's heartbeats),
  so a crashing solve does not take the Dask worker down either. A Dask worker that dies
  mid-solve makes the scheduler run the task again elsewhere.
- **Cores**: every worker thread is a solve slot, so an auto ``solver_processes`` (0) runs one
  search; a request may still ask for a portfolio explicitly.
- **Cancellation**: :meth:`DaskJob.cancel` sets a ``distributed.Event`` that the task polls
  (every :data:`CANCEL_POLL_S`); the worker-side executor stops the solve, which returns its
  best solution so far. A job still waiting here never reaches the cluster.
- **Progress**: the task publishes each update as a Dask event on topic
  :data:`PROGRESS_TOPIC` (``Worker.log_event``); the executor subscribes once and hands the
  updates to the jobs' callbacks in a thread of its own.

Dask workers run as daemonic processes by default, and daemonic processes may not start
children: start them with ``DASK_DISTRIBUTED__WORKER__DAEMON=False`` (or ``--no-nanny``).
The workers need routeopt installed (the same version as the server).

This module must not import gRPC; ``distributed`` is imported here only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any, Final

import distributed
from distributed import Client, WorkerPlugin

from engine.errors import (
    ExecutorFullError,
    ExecutorShutdownError,
    FieldViolation,
    InvalidModelError,
    NoSolutionError,
    SolverError,
)
from engine.model import LatLng, Shipment, ShipmentModel, Vehicle, VisitRequest
from engine.options import SolveOptions, resolve_solver_processes
from engine.progress import SolveProgress
from engine.roads import RoadContext, RoadSpec, save_prebuilt
from engine.solution import Solution
from runtime.local import MIN_QUEUED_BUDGET_S, ProgressCallback, SolveExecutor

__all__ = ["PROGRESS_TOPIC", "DaskExecutor", "DaskJob", "RouteoptWorkerPlugin"]

log = logging.getLogger(__name__)
worker_log = logging.getLogger("distributed.routeopt")
"""Logs on the workers: under ``distributed``, whose logging Dask configures there."""

PLUGIN_NAME: Final = "routeopt"
PROGRESS_TOPIC: Final = "routeopt-progress"
CANCEL_POLL_S: Final = 0.2
"""How often a running task checks whether its job was cancelled."""

_CONNECT_TIMEOUT_S: Final = 10.0

_job_ids = itertools.count(1)


# -- on the workers ----------------------------------------------------------------------------


class RouteoptWorkerPlugin(WorkerPlugin):
    """Gives each Dask worker a local :class:`SolveExecutor`, with the server's road network.

    The plugin object (and the network in it) is sent to each worker once, when it is
    registered or when the worker joins."""

    def __init__(self, network: Any = None, spec: RoadSpec | None = None) -> None:
        self.network = network
        self.spec = spec
        self.executor: SolveExecutor | None = None

    async def setup(self, worker: distributed.Worker) -> None:
        # Starting the executor takes seconds: not on the worker's event loop.
        await asyncio.get_running_loop().run_in_executor(None, self._setup, worker)

    def _setup(self, worker: distributed.Worker) -> None:
        if multiprocessing.current_process().daemon:
            raise RuntimeError(
                "routeopt solves run in child processes, which a daemonic Dask worker may not "
                "start: run the workers with DASK_DISTRIBUTED__WORKER__DAEMON=False "
                "(or dask worker --no-nanny)"
            )
        roads = None
        if self.network is not None and self.spec is not None:
            path = os.path.join(worker.local_directory, "routeopt-roads.npz")
            save_prebuilt(self.network, path)
            roads = RoadSpec(
                path,
                self.spec.profile,
                max_snap_distance_m=self.spec.max_snap_distance_m,
                prebuilt=True,
            )
            self.network = None  # the forkserver loads it from the file
        slots = max(1, worker.state.nthreads)
        self.executor = SolveExecutor(max_workers=slots, max_queued=slots, roads=roads)
        self.executor.warm_up()
        worker_log.info("routeopt worker ready: %d solve slots, roads %s", slots, roads is not None)

    def teardown(self, worker: distributed.Worker) -> None:
        if self.executor is not None:
            self.executor.shutdown(cancel_running=True)


# A task's result: ("ok", Solution) | ("invalid", violations) | ("no_solution", (reason, text))
# | ("solver_error", text) | ("cancelled", None). Engine exceptions are not sent as such
# because InvalidModelError does not survive pickling.
_Outcome = tuple[str, Any]


def _solve_task(
    key: str, model: ShipmentModel, options: SolveOptions, every_s: float | None
) -> _Outcome:
    """The Dask task: solve on this worker's executor, publishing progress, until done or
    cancelled."""
    worker = distributed.get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, RouteoptWorkerPlugin) or plugin.executor is None:
        return ("solver_error", "the Dask worker has no routeopt plugin")

    def publish(update: SolveProgress) -> None:
        worker.log_event(PROGRESS_TOPIC, {"key": key, "update": pickle.dumps(update)})

    cancel = distributed.Event(f"routeopt-cancel-{key}")
    job = plugin.executor.submit(
        model,
        options,
        on_progress=publish if every_s is not None else None,
        progress_solutions_every_s=every_s or 0.0,
    )
    while not job.done():
        with contextlib.suppress(Exception):  # not done yet, or failed: judged below
            job.result(timeout=CANCEL_POLL_S)
        if not job.cancel_requested and not job.done() and cancel.is_set():
            job.cancel()
    try:
        return ("ok", job.result())
    except InvalidModelError as exc:
        return ("invalid", exc.violations)
    except NoSolutionError as exc:
        return ("no_solution", (exc.reason, str(exc)))
    except SolverError as exc:
        return ("solver_error", str(exc))
    except CancelledError:
        return ("cancelled", None)


def _outcome(result: _Outcome) -> Solution | BaseException:
    kind, payload = result
    if kind == "ok" and isinstance(payload, Solution):
        return payload
    if kind == "invalid":
        violations: tuple[FieldViolation, ...] = payload
        return InvalidModelError(violations)
    if kind == "no_solution":
        reason, text = payload
        return NoSolutionError(reason, text)
    if kind == "cancelled":
        return CancelledError()
    return SolverError(str(payload))


# -- on the server -----------------------------------------------------------------------------


class DaskJob:
    """A solve submitted to a :class:`DaskExecutor` (see :class:`runtime.local.Job`)."""

    def __init__(
        self,
        executor: DaskExecutor,
        model: ShipmentModel,
        options: SolveOptions,
        on_progress: ProgressCallback | None,
        every_s: float,
    ) -> None:
        self.id = next(_job_ids)
        self.key = f"routeopt-solve-{uuid.uuid4().hex}"
        self.model = model
        self.options = options
        self.on_progress = on_progress
        self.every_s = every_s
        self.submitted_at = time.monotonic()
        self.best_solution: Solution | None = None
        self._executor = executor
        self._future: Future[Solution] = Future()
        self._dask_future: distributed.Future[Any] | None = None
        self._cancel_requested = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<DaskJob {self.id} {self.key}>"

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def cancel(self) -> None:
        with self._lock:
            if self._cancel_requested or self._future.done():
                return
            self._cancel_requested = True
            running = self._dask_future is not None
        if not running and self._executor._dequeue(self):
            self._future.cancel()
            return
        try:
            distributed.Event(f"routeopt-cancel-{self.key}", client=self._executor.client).set()
        except Exception:
            log.exception("dask job %d: cannot signal the cancellation", self.id)

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> Solution:
        return self._future.result(timeout)

    def add_done_callback(self, fn: Callable[[DaskJob], object]) -> None:
        self._future.add_done_callback(lambda _: fn(self))


class DaskExecutor:
    """Runs :func:`engine.solve` on a Dask cluster; see the module docstring.

    ``roads``: the server's road network, shipped once to every worker. Raises
    :class:`OSError` when the scheduler cannot be reached."""

    def __init__(
        self,
        address: str,
        *,
        max_workers: int | None = None,
        max_queued: int | None = None,
        roads: RoadContext | None = None,
    ) -> None:
        try:
            self.client = Client(address, timeout=_CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise OSError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        self.address = address
        threads = sum(self.client.nthreads().values())
        self.max_workers = max_workers or max(1, threads)
        self.max_queued = 2 * self.max_workers if max_queued is None else max_queued
        plugin = RouteoptWorkerPlugin(
            roads.network if roads is not None else None, roads.spec if roads is not None else None
        )
        self.client.register_plugin(plugin, name=PLUGIN_NAME)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._running: dict[str, DaskJob] = {}
        self._queue: deque[DaskJob] = deque()
        self._shut_down = False
        self._updates: queue.SimpleQueue[tuple[str, bytes] | None] = queue.SimpleQueue()
        self._pump = threading.Thread(target=self._pump_progress, name="dask-progress", daemon=True)
        self._pump.start()
        self.client.subscribe_topic(PROGRESS_TOPIC, self._on_event)
        log.info(
            "Dask cluster %s: %d workers, %d threads; %d solves at once, %d queued at most",
            address, len(self.client.nthreads()), threads, self.max_workers, self.max_queued,
        )  # fmt: skip

    @property
    def running_count(self) -> int:
        with self._lock:
            return len(self._running)

    @property
    def queued_count(self) -> int:
        with self._lock:
            return len(self._queue)

    def submit(
        self,
        model: ShipmentModel,
        options: SolveOptions,
        *,
        on_progress: ProgressCallback | None = None,
        progress_solutions_every_s: float = 1.0,
    ) -> DaskJob:
        # A cluster's cores are its worker threads, one solve each: auto means one search.
        options = resolve_solver_processes(options, idle_cores=1, cores=1)
        job = DaskJob(self, model, options, on_progress, progress_solutions_every_s)
        with self._lock:
            if self._shut_down:
                raise ExecutorShutdownError("the solve executor is shutting down")
            if len(self._running) < self.max_workers:
                self._start_locked(job)
            elif len(self._queue) < self.max_queued:
                self._queue.append(job)
            else:
                raise ExecutorFullError(
                    f"all {self.max_workers} cluster solve slots are busy and "
                    f"{len(self._queue)} requests are already waiting; retry later"
                )
        return job

    def warm_up(self, timeout: float = 60.0) -> float:
        """Wait for a worker and run one trivial solve on the cluster; raises SolverError."""
        started = time.monotonic()
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise SolverError(f"no Dask worker joined within {timeout} s") from None
        model = ShipmentModel(
            shipments=(Shipment(deliveries=(VisitRequest(arrival_location=LatLng(0.0, 0.001)),)),),
            vehicles=(Vehicle(start_location=LatLng(0.0, 0.0)),),
        )
        job = self.submit(model, SolveOptions(time_limit_s=10.0, use_geodesic_distances=True))
        try:
            job.result(max(1.0, timeout - (time.monotonic() - started)))
        except TimeoutError:
            job.cancel()
            raise SolverError(f"warm-up solve did not finish within {timeout} s") from None
        elapsed = time.monotonic() - started
        log.info("Dask executor warmed up in %.3f s", elapsed)
        return elapsed

    def shutdown(self, cancel_running: bool = False, *, wait: bool = True) -> None:
        with self._lock:
            already = self._shut_down
            self._shut_down = True
            to_cancel = [*self._queue, *self._running.values()] if cancel_running else []
        for job in to_cancel:
            job.cancel()
        if wait:
            with self._changed:
                self._changed.wait_for(lambda: not self._running and not self._queue, 30.0)
        if not already:
            self._updates.put(None)
            try:
                self.client.unsubscribe_topic(PROGRESS_TOPIC)
            finally:
                self.client.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(cancel_running=True)

    # -- internals -----------------------------------------------------------------------

    def _dequeue(self, job: DaskJob) -> bool:
        with self._lock:
            try:
                self._queue.remove(job)
            except ValueError:
                return False
            self._changed.notify_all()
            return True

    def _start_locked(self, job: DaskJob) -> None:
        options = job.options
        waited = time.monotonic() - job.submitted_at
        if waited > 0.001:  # time in the queue counts against the budget
            budget = max(options.time_limit_s - waited, MIN_QUEUED_BUDGET_S)
            options = dataclasses.replace(options, time_limit_s=budget)
        every_s = job.every_s if job.on_progress is not None else None
        self._running[job.key] = job
        with job._lock:
            job._dask_future = self.client.submit(
                _solve_task, job.key, job.model, options, every_s, key=job.key, pure=False
            )
        job._dask_future.add_done_callback(lambda future: self._on_done(job, future))

    def _on_done(self, job: DaskJob, future: distributed.Future[Any]) -> None:
        outcome: Solution | BaseException
        try:
            outcome = _outcome(future.result())
        except BaseException as exc:  # the task failed on the cluster (e.g. KilledWorker)
            log.error("dask job %d failed on the cluster: %r", job.id, exc)
            outcome = SolverError(f"the solve failed on the Dask cluster: {type(exc).__name__}")
        with self._lock:
            self._running.pop(job.key, None)
            while self._queue and len(self._running) < self.max_workers:
                queued = self._queue.popleft()
                if not queued.cancel_requested:
                    self._start_locked(queued)
                else:
                    queued._future.cancel()
            self._changed.notify_all()
        if job.cancel_requested:
            try:
                distributed.Event(f"routeopt-cancel-{job.key}", client=self.client).clear()
            except Exception:
                log.debug("dask job %d: cannot clear its cancel event", job.id, exc_info=True)
        if isinstance(outcome, CancelledError):
            job._future.cancel()
        elif isinstance(outcome, BaseException):
            job._future.set_exception(outcome)
        else:
            job._future.set_result(outcome)

    def _on_event(self, event: tuple[float, Any]) -> None:
        """Dask event handler (on the client's event loop): hand over, do not work here."""
        _, message = event
        try:
            self._updates.put((str(message["key"]), bytes(message["update"])))
        except (KeyError, TypeError):
            log.warning("unexpected message on %s: %r", PROGRESS_TOPIC, message)

    def _pump_progress(self) -> None:
        while True:
            item = self._updates.get()
            if item is None:
                return
            key, payload = item
            with self._lock:
                job = self._running.get(key)
            if job is None or job.done():
                continue
            try:
                update: SolveProgress = pickle.loads(payload)  # from our own workers
            except Exception:
                log.exception("dask job %d: unreadable progress", job.id)
                continue
            if update.solution is not None:
                job.best_solution = update.solution
            if job.on_progress is not None:
                try:
                    job.on_progress(update)
                except Exception:
                    log.exception("dask job %d: progress callback failed", job.id)
