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
  :data:`PROGRESS_TOPIC` (``Worker.log_event``), as plain data (:mod:`runtime.wire`, no
  pickle: whoever can publish on the scheduler cannot make the server run code); the executor
  subscribes once, validates each event and hands the updates to the jobs' callbacks in a
  thread of its own. A task's result is a :mod:`runtime.wire` outcome too.
- **Tasks** (:meth:`~runtime.base.SlotExecutor.submit_task`, e.g. the server's depot-layout
  studies) run on the cluster too: the Dask task submits the task to the worker's local
  executor (a forked process, as a solve), publishes its progress reports on
  :data:`PROGRESS_TOPIC` as :class:`runtime.wire.TaskProgress` (plain bytes, no pickle) and
  returns its :mod:`runtime.wire` outcome. The task's entry is pickled by reference (its module
  and name): the workers import it from their routeopt installation.
- Slots, queue, cancellation of queued jobs and shutdown are
  :class:`runtime.base.SlotExecutor`'s, shared with the local executor.

Dask workers run as daemonic processes by default, and daemonic processes may not start
children: start them with ``DASK_DISTRIBUTED__WORKER__DAEMON=False`` (or ``--no-nanny``).
The workers need routeopt installed (the same version as the server).

This module must not import gRPC; ``distributed`` is imported here only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any, Final

import distributed
from distributed import Client, WorkerPlugin

from engine.errors import SolverError
from engine.model import ShipmentModel
from engine.options import SolveOptions
from engine.progress import SolveProgress
from engine.roads import RoadContext, RoadSpec, save_prebuilt
from engine.solution import Solution
from runtime import wire
from runtime.base import (
    BaseJob,
    SlotExecutor,
    SolveRequest,
    TaskEntry,
    TaskRequest,
    charge_queue_time,
)
from runtime.codec import Plain
from runtime.local import SolveExecutor

__all__ = ["PROGRESS_TOPIC", "DaskExecutor", "DaskJob", "RouteoptWorkerPlugin", "cancel_event"]

log = logging.getLogger(__name__)
worker_log = logging.getLogger("distributed.routeopt")
"""Logs on the workers: under ``distributed``, whose logging Dask configures there."""

PLUGIN_NAME: Final = "routeopt"
PROGRESS_TOPIC: Final = "routeopt-progress"
CANCEL_POLL_S: Final = 0.2
"""How often a running task checks whether its job was cancelled."""

_CONNECT_TIMEOUT_S: Final = 10.0

_STOP_PUMP: Final = object()
"""Ends the progress thread (not None: anyone may publish None on the topic)."""


def cancel_event(key: str, client: Client | None = None) -> distributed.Event:
    """The cluster-wide event that says the job of task ``key`` is cancelled."""
    return distributed.Event(f"routeopt-cancel-{key}", client=client)


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


def _solve_task(
    key: str, model: ShipmentModel, options: SolveOptions, every_s: float | None
) -> dict[str, Plain]:
    """The Dask task: solve on this worker's executor, publishing progress, until done or
    cancelled. Returns the :mod:`runtime.wire` outcome."""
    worker = distributed.get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, RouteoptWorkerPlugin) or plugin.executor is None:
        return wire.encode(wire.Failed("the Dask worker has no routeopt plugin"))

    def publish(update: SolveProgress) -> None:
        worker.log_event(PROGRESS_TOPIC, wire.progress_event(key, update))

    job = plugin.executor.submit(
        model,
        options,
        on_progress=publish if every_s is not None else None,
        progress_solutions_every_s=every_s or 0.0,
    )
    _follow(job, key)
    return wire.encode(wire.capture(job.result))


def _task_task(
    key: str, entry: TaskEntry, payload: bytes, time_limit_s: float, progress: bool
) -> dict[str, Plain]:
    """The Dask task of a routeopt task: run it on this worker's executor, publishing its
    progress reports, until done or cancelled. Returns the :mod:`runtime.wire` outcome."""
    worker = distributed.get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, RouteoptWorkerPlugin) or plugin.executor is None:
        return wire.encode(wire.Failed("the Dask worker has no routeopt plugin"))

    def publish(data: bytes) -> None:
        worker.log_event(PROGRESS_TOPIC, wire.task_progress_event(key, data))

    job = plugin.executor.submit_task(
        entry, payload, time_limit_s=time_limit_s, on_progress=publish if progress else None
    )
    _follow(job, key)
    return wire.encode(wire.capture_task(job.result))


def _follow(job: BaseJob, key: str) -> None:
    """Wait for ``job`` on this worker, cancelling it when the cancel event of ``key`` is set."""
    cancel = cancel_event(key)
    while not job.done():
        with contextlib.suppress(Exception):  # not done yet, or failed: judged below
            job.result(timeout=CANCEL_POLL_S)
        if not job.cancel_requested and not job.done() and cancel.is_set():
            job.cancel()


# -- on the server -----------------------------------------------------------------------------


class DaskJob(BaseJob):
    """A solve submitted to a :class:`DaskExecutor` (see :class:`runtime.base.Job`); ``key``
    is its task's key on the cluster."""

    def __init__(
        self,
        request: SolveRequest | TaskRequest,
        dequeue: Callable[[BaseJob], bool],
        client: Client,
    ) -> None:
        super().__init__(request, dequeue)
        what = "solve" if isinstance(request, SolveRequest) else "task"
        self.key = f"routeopt-{what}-{uuid.uuid4().hex}"
        self.client = client
        self.future: distributed.Future[Any] | None = None
        """The task on the cluster once the job runs (held: Dask forgets unreferenced tasks)."""

    def __repr__(self) -> str:
        return f"<DaskJob {self.id} {self.key}>"

    def request_stop(self) -> None:
        """Set the job's cancel event, which its task polls."""
        try:
            cancel_event(self.key, self.client).set()
        except Exception:
            log.exception("dask job %d: cannot signal the cancellation", self.id)

    def attach(self, future: distributed.Future[Any]) -> None:
        """Record the job's task on the cluster (for the executor)."""
        self.future = future


class DaskExecutor(SlotExecutor[DaskJob]):
    """Runs :func:`engine.solve` on a Dask cluster; see the module docstring.

    ``roads``: the server's road network, shipped once to every worker. Raises
    :class:`OSError` when the scheduler cannot be reached."""

    _shutdown_wait_s = 30.0

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
        max_workers = max_workers or max(1, threads)
        max_queued = 2 * max_workers if max_queued is None else max_queued
        try:
            # A cluster's cores are its worker threads, one solve each: auto means one search.
            super().__init__(max_workers, max_queued, cores=None, slots="cluster solve slots")
        except ValueError:
            self.client.close()
            raise
        plugin = RouteoptWorkerPlugin(
            roads.network if roads is not None else None, roads.spec if roads is not None else None
        )
        self.client.register_plugin(plugin, name=PLUGIN_NAME)
        self._updates: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pump = threading.Thread(target=self._pump_progress, name="dask-progress", daemon=True)
        self._pump.start()
        self.client.subscribe_topic(PROGRESS_TOPIC, self._on_event)
        log.info(
            "Dask cluster %s: %d workers, %d threads; %d solves at once, %d queued at most",
            address, len(self.client.nthreads()), threads, self.max_workers, self.max_queued,
        )  # fmt: skip

    # -- internals -----------------------------------------------------------------------

    def _new_job(self, request: SolveRequest | TaskRequest) -> DaskJob:
        return DaskJob(request, self.dequeue, self.client)

    def _prepare_warm_up(self, timeout: float) -> None:
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise SolverError(f"no Dask worker joined within {timeout} s") from None

    def _launch(self, job: DaskJob) -> None:
        options = charge_queue_time(job.options, job.submitted_at)
        if job.task is None:
            task = self.client.submit(
                _solve_task, job.key, job.model, options, job.progress_every_s,
                key=job.key, pure=False,
            )  # fmt: skip
        else:
            task = self.client.submit(
                _task_task, job.key, job.task.entry, job.task.payload, options.time_limit_s,
                job.wants_task_progress, key=job.key, pure=False,
            )  # fmt: skip
        job.attach(task)
        task.add_done_callback(lambda future: self._on_done(job, future))

    def _close(self) -> None:
        self._updates.put(_STOP_PUMP)
        try:
            self.client.unsubscribe_topic(PROGRESS_TOPIC)
        finally:
            self.client.close()

    def _on_done(self, job: DaskJob, future: distributed.Future[Any]) -> None:
        outcome: Solution | bytes | BaseException
        try:
            outcome = wire.rebuild(
                wire.decode_outcome(future.result()), job.id, task=job.task is not None
            )
        except BaseException as exc:  # the task failed on the cluster (e.g. KilledWorker)
            log.error("dask job %d failed on the cluster: %r", job.id, exc)
            outcome = SolverError(f"the solve failed on the Dask cluster: {type(exc).__name__}")
        self.release(job)
        if job.cancel_requested:
            try:
                cancel_event(job.key, self.client).clear()
            except Exception:
                log.debug("dask job %d: cannot clear its cancel event", job.id, exc_info=True)
        job.settle(outcome)

    def _on_event(self, event: tuple[float, Any]) -> None:
        """Dask event handler (on the client's event loop): hand over, do not work here."""
        pair = isinstance(event, tuple | list) and len(event) == 2
        self._updates.put(event[1] if pair else event)

    def _pump_progress(self) -> None:
        """Thread that decodes the progress events and hands them to their jobs."""
        while True:
            message = self._updates.get()
            if message is _STOP_PUMP:
                return
            try:
                key, update = wire.read_event(message)
            except wire.WireError as exc:
                log.warning("rejected a message on %s: %s", PROGRESS_TOPIC, exc)
                continue
            job = next((j for j in self.running_jobs() if j.key == key), None)
            if job is None or job.done():
                continue
            if isinstance(update, wire.Progress) and job.task is None:
                job.report(update.update)
            elif isinstance(update, wire.TaskProgress) and job.task is not None:
                job.report_data(update.data)
