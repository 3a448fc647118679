"""The executor protocol, and the machinery its implementations share.

:class:`Executor` and :class:`Job` are what callers (the gRPC server) see. :class:`SlotExecutor`
and :class:`BaseJob` hold what every implementation does the same way: solve slots and
back-pressure (:class:`~engine.errors.ExecutorFullError` beyond ``max_workers`` running and
``max_queued`` waiting), the wait queue, cancelling a queued job, freeing a slot and starting
the next job, the auto ``solver_processes`` resolution, the warm-up solve and shutdown.
An implementation (:class:`runtime.local.SolveExecutor`,
:class:`runtime.dask_executor.DaskExecutor`) says only what its jobs are
(:meth:`SlotExecutor._new_job`), how one is launched (:meth:`SlotExecutor._launch`) and how a
running one is asked to stop (:meth:`BaseJob.request_stop`).

Besides solves, an executor runs **tasks** (:meth:`SlotExecutor.submit_task`): a
:data:`TaskEntry` — a module-level function that the caller names, ``entry(payload, context)``
— run in a worker process exactly like a solve (same slots, queue, back-pressure, cancel,
watchdog, crash isolation), with bytes in, bytes of progress (``context.report``) and bytes out.
The runtime does not know what a task does: the server's depot-layout studies are tasks whose
entry lives in :mod:`rpc` (the rooms above the runtime are never imported here; the worker
imports the entry by its module and name when it unpickles it).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any, Final, Generic, Protocol, Self, TypeVar

from engine.errors import ExecutorFullError, ExecutorShutdownError, SolverError
from engine.model import LatLng, Shipment, ShipmentModel, Vehicle, VisitRequest
from engine.options import SolveOptions, resolve_solver_processes
from engine.progress import SolveProgress
from engine.solution import Solution

__all__ = [
    "MIN_QUEUED_BUDGET_S",
    "BaseJob",
    "Executor",
    "Job",
    "ProgressCallback",
    "SlotExecutor",
    "SolveRequest",
    "TaskContext",
    "TaskEntry",
    "TaskJob",
    "TaskProgressCallback",
    "TaskRequest",
    "charge_queue_time",
]

log = logging.getLogger(__name__)

MIN_QUEUED_BUDGET_S: Final = 0.1
"""Smallest time budget a job gets when it leaves the queue after waiting most of its budget."""

ProgressCallback = Callable[[SolveProgress], None]
"""Called with each progress update of a solve (in a thread of the executor)."""

TaskProgressCallback = Callable[[bytes], None]
"""Called with each progress report of a task (in a thread of the executor)."""

_job_ids = itertools.count(1)


class TaskContext(Protocol):
    """What a task's entry gets in its worker process, besides its payload."""

    @property
    def cores(self) -> int:
        """The cores of the task's slot (an auto count resolved when it started)."""
        ...

    @property
    def time_limit_s(self) -> float:
        """The task's time budget, waiting time in the queue already taken off."""
        ...

    def should_stop(self) -> bool:
        """Whether the task was cancelled (or its process orphaned): return soon."""
        ...

    def report(self, data: bytes) -> None:
        """Send progress to the caller's ``on_progress``."""
        ...


TaskEntry = Callable[[bytes, TaskContext], bytes]
"""The body of a task: a module-level function (it is pickled by reference and imported in
the worker), called with the payload and a :class:`TaskContext`; returns the task's result.
The engine's errors it raises reach the caller as they do from a solve."""


class TaskJob(Protocol):
    """A submitted task (see :meth:`Executor.submit_task`)."""

    id: int

    @property
    def cancel_requested(self) -> bool: ...

    def cancel(self) -> None:
        """Set the task's stop flag (``context.should_stop()``); a queued task never starts.
        A task still running ``cancel_grace_s`` later is killed."""
        ...

    def done(self) -> bool: ...

    def result(self, timeout: float | None = None) -> bytes:
        """The task's result; raises as :meth:`Job.result` does."""
        ...

    def add_done_callback(self, fn: Callable[[Any], object]) -> None: ...


class Job(Protocol):
    """A submitted solve, whatever runs it (see :class:`Executor`)."""

    id: int

    @property
    def cancel_requested(self) -> bool: ...

    def cancel(self) -> None:
        """Stop the solve; a running one returns its best solution so far (INTERRUPTED)."""
        ...

    def done(self) -> bool: ...

    def result(self, timeout: float | None = None) -> Solution:
        """The solution; raises the engine's errors, TimeoutError or CancelledError."""
        ...

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        """Call ``fn(job)`` once the job is done (at once if it already is)."""
        ...


class Executor(Protocol):
    """Runs solves away from the caller's threads: :class:`runtime.local.SolveExecutor` (local
    worker processes) or :class:`runtime.dask_executor.DaskExecutor` (a Dask cluster). Both
    bound the number of running and waiting solves and raise :class:`ExecutorFullError`
    beyond."""

    max_workers: int
    max_queued: int

    @property
    def running_count(self) -> int: ...

    @property
    def queued_count(self) -> int: ...

    def submit(
        self,
        model: ShipmentModel,
        options: SolveOptions,
        *,
        on_progress: ProgressCallback | None = None,
        progress_solutions_every_s: float = 1.0,
    ) -> Job: ...

    def submit_task(
        self,
        entry: TaskEntry,
        payload: bytes,
        *,
        time_limit_s: float,
        on_progress: TaskProgressCallback | None = None,
        cores: int = 1,
    ) -> TaskJob: ...

    def warm_up(self, timeout: float = 60.0) -> float: ...

    def shutdown(self, cancel_running: bool = False, *, wait: bool = True) -> None: ...


def charge_queue_time(options: SolveOptions, submitted_at: float) -> SolveOptions:
    """``options`` with the time since ``submitted_at`` taken from the time budget (at least
    :data:`MIN_QUEUED_BUDGET_S` left): time spent waiting for a slot counts."""
    waited = time.monotonic() - submitted_at
    if waited <= 0.001:
        return options
    budget = max(options.time_limit_s - waited, MIN_QUEUED_BUDGET_S)
    return dataclasses.replace(options, time_limit_s=min(budget, options.time_limit_s))


@dataclasses.dataclass(frozen=True)
class SolveRequest:
    """What :meth:`Executor.submit` was given, for making a job."""

    model: ShipmentModel
    options: SolveOptions
    on_progress: ProgressCallback | None = None
    progress_solutions_every_s: float = 1.0


@dataclasses.dataclass(frozen=True)
class TaskRequest:
    """What :meth:`Executor.submit_task` was given, for making a job."""

    entry: TaskEntry
    payload: bytes
    time_limit_s: float
    on_progress: TaskProgressCallback | None = None
    cores: int = 1
    """Cores the task's slot takes (0: auto, as for ``solver_processes``)."""


class BaseJob:
    """A submitted solve or task: its future, its cancellation and its progress. Thread-safe.

    ``request`` is what was submitted, ``dequeue`` the executor's
    :meth:`SlotExecutor.dequeue`. A subclass says how a running job is stopped
    (:meth:`request_stop`); the executor ends the job with :meth:`settle` and hands it progress
    with :meth:`report` (a solve) or :meth:`report_data` (a task)."""

    def __init__(
        self, request: SolveRequest | TaskRequest, dequeue: Callable[[BaseJob], bool]
    ) -> None:
        self.id = next(_job_ids)
        self.model: ShipmentModel | None = None
        """The model of a solve (None: a task)."""
        self.task: TaskRequest | None = None
        """The task (None: a solve)."""
        self.on_progress: ProgressCallback | None = None
        self.progress_solutions_every_s = 1.0
        if isinstance(request, SolveRequest):
            self.model = request.model
            self.options = request.options
            self.on_progress = request.on_progress
            self.progress_solutions_every_s = request.progress_solutions_every_s
        else:
            self.task = request
            # A task's slot is described like a solve's: its time budget and its cores.
            self.options = SolveOptions(
                time_limit_s=request.time_limit_s, solver_processes=request.cores
            )
        """The options it runs with (an auto ``solver_processes`` is resolved when it starts);
        for a task, its time budget and cores."""
        self.submitted_at = time.monotonic()
        self.slot_taken_at: float | None = None
        """``time.monotonic()`` when the job took a solve slot (None while queued)."""
        self.best_solution: Solution | None = None
        """The latest intermediate solution the solve reported (progress only)."""
        self._dequeue = dequeue
        self._future: Future[Any] = Future()
        self._lock = threading.Lock()
        self._cancel_requested = False

    @property
    def progress_every_s(self) -> float | None:
        """How often the solve sends a solution with its progress; None: no progress wanted."""
        return self.progress_solutions_every_s if self.on_progress is not None else None

    @property
    def wants_task_progress(self) -> bool:
        """Whether the task's caller takes its progress reports."""
        return self.task is not None and self.task.on_progress is not None

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def cancel(self) -> None:
        """Stop the solve: a queued job never starts (:meth:`result` raises
        :class:`concurrent.futures.CancelledError`); a running one returns its best solution so
        far (status INTERRUPTED), or fails if it has to be killed. Idempotent; does nothing once
        the job is done."""
        with self._lock:
            if self._cancel_requested or self._future.done():
                return
            self._cancel_requested = True
        if self._dequeue(self):
            self._future.cancel()
        elif not self._future.done():  # not a queued job that its executor has just cancelled
            self.request_stop()

    def request_stop(self) -> None:
        """Ask the running solve to stop (called once, by :meth:`cancel`, for a started job)."""
        raise NotImplementedError

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the solution (a task: its result bytes). Raises :class:`TimeoutError` if
        ``timeout`` passes first, the engine's :class:`InvalidModelError`,
        :class:`NoSolutionError` or :class:`SolverError`, or
        :class:`concurrent.futures.CancelledError` for a job cancelled before it started."""
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._future.exception(timeout)

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        """Call ``fn(job)`` when the job is done (at once if it already is), in any thread."""
        self._future.add_done_callback(lambda _: fn(self))

    def report(self, update: SolveProgress) -> None:
        """Hand a progress update to the caller's callback (for executors); a failing callback
        is logged and does not end the solve."""
        if update.solution is not None:
            self.best_solution = update.solution
        if self.on_progress is not None:
            try:
                self.on_progress(update)
            except Exception:
                log.exception("solve job %d: progress callback failed", self.id)

    def report_data(self, data: bytes) -> None:
        """Hand a task's progress report to the caller's callback (for executors); a failing
        callback is logged and does not end the task."""
        if self.task is not None and self.task.on_progress is not None:
            try:
                self.task.on_progress(data)
            except Exception:
                log.exception("task job %d: progress callback failed", self.id)

    def settle(self, outcome: Solution | bytes | BaseException) -> None:
        """Complete the job with ``outcome`` (for executors): a solution, the exception to
        raise, or :class:`CancelledError` for a job that never ran."""
        if isinstance(outcome, CancelledError):
            self._future.cancel()
        elif isinstance(outcome, BaseException):
            self._future.set_exception(outcome)
        else:
            self._future.set_result(outcome)


J = TypeVar("J", bound=BaseJob)


class SlotExecutor(Generic[J]):
    """Solve slots and a bounded wait queue; a subclass launches the jobs (:meth:`_launch`).

    ``max_workers`` jobs run at once, ``max_queued`` more wait. ``cores`` is what auto
    ``solver_processes`` share: a job that starts gets the cores the running jobs leave (at
    least one); None means one core per slot (auto: one search). ``slots`` names the slots in
    the :class:`ExecutorFullError` message. Thread-safe; a context manager."""

    def __init__(self, max_workers: int, max_queued: int, *, cores: int | None, slots: str) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        if max_queued < 0:
            raise ValueError(f"max_queued must be at least 0, got {max_queued}")
        if cores is not None and cores < 1:
            raise ValueError(f"cores must be at least 1, got {cores}")
        self.max_workers = max_workers
        self.max_queued = max_queued
        self.cores = cores
        self._slots = slots
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._running: set[J] = set()
        self._queue: deque[J] = deque()
        self._shut_down = False

    @property
    def running_count(self) -> int:
        with self._lock:
            return len(self._running)

    @property
    def queued_count(self) -> int:
        with self._lock:
            return len(self._queue)

    def running_jobs(self) -> list[J]:
        """The jobs running now."""
        with self._lock:
            return list(self._running)

    def submit(
        self,
        model: ShipmentModel,
        options: SolveOptions,
        *,
        on_progress: ProgressCallback | None = None,
        progress_solutions_every_s: float = 1.0,
    ) -> J:
        """Start solving ``model``, or queue it if every slot is busy.

        ``on_progress`` gets each improving solution's :class:`SolveProgress` (with the
        evaluated solution at most every ``progress_solutions_every_s`` seconds). Raises
        :class:`ExecutorFullError` when ``max_workers`` solves run and ``max_queued`` wait,
        :class:`ExecutorShutdownError` after :meth:`shutdown`.
        """
        return self._enqueue(
            self._new_job(SolveRequest(model, options, on_progress, progress_solutions_every_s))
        )

    def submit_task(
        self,
        entry: TaskEntry,
        payload: bytes,
        *,
        time_limit_s: float,
        on_progress: TaskProgressCallback | None = None,
        cores: int = 1,
    ) -> J:
        """Run ``entry(payload, context)`` in a worker process (module docstring), or queue it
        if every slot is busy: one slot of ``cores`` cores (0: auto), ``time_limit_s`` for its
        watchdog (the entry is expected to keep to ``context.time_limit_s`` itself).
        ``on_progress`` gets each ``context.report(data)``. Raises as :meth:`submit`."""
        if not time_limit_s > 0:
            raise ValueError(f"time_limit_s must be positive, got {time_limit_s}")
        if cores < 0:
            raise ValueError(f"cores must be 0 (auto) or positive, got {cores}")
        return self._enqueue(
            self._new_job(TaskRequest(entry, payload, time_limit_s, on_progress, cores))
        )

    def _enqueue(self, job: J) -> J:
        """Start ``job`` or queue it (see :meth:`submit`)."""
        with self._lock:
            if self._shut_down:
                raise ExecutorShutdownError("the solve executor is shutting down")
            if len(self._running) < self.max_workers:
                self._start_locked(job)
            elif len(self._queue) < self.max_queued:
                self._queue.append(job)
            else:
                raise ExecutorFullError(
                    f"all {self.max_workers} {self._slots} are busy and "
                    f"{len(self._queue)} requests are already waiting; retry later"
                )
        return job

    def dequeue(self, job: BaseJob) -> bool:
        """Remove a queued job (it was cancelled); False if it is not queued (any more)."""
        with self._lock:
            try:
                self._queue.remove(job)  # type: ignore[arg-type]
            except ValueError:
                return False
            self._changed.notify_all()
            return True

    def release(self, job: J) -> None:
        """Free ``job``'s slot and start the next queued jobs (for implementations: before the
        job is settled, so that a caller that submits again at once finds the slot free)."""
        cancelled = []
        if job.slot_taken_at is not None and self.on_job_end is not None:
            try:
                self.on_job_end(time.monotonic() - job.slot_taken_at)
            except Exception:
                log.exception("job-end callback failed")
        with self._lock:
            self._running.discard(job)
            while self._queue and len(self._running) < self.max_workers:
                queued = self._queue.popleft()
                if queued.cancel_requested:  # cancelled while it was being dequeued
                    cancelled.append(queued)
                else:
                    self._start_locked(queued)
            self._changed.notify_all()
        for queued in cancelled:
            queued.settle(CancelledError())

    def warm_up(self, timeout: float = 60.0) -> float:
        """Run one trivial solve, so that the first real request does not pay for starting
        up. Returns the seconds it took; raises :class:`SolverError`."""
        started = time.monotonic()
        self._prepare_warm_up(timeout)
        model = ShipmentModel(
            shipments=(Shipment(deliveries=(VisitRequest(arrival_location=LatLng(0.0, 0.001)),)),),
            vehicles=(Vehicle(start_location=LatLng(0.0, 0.0)),),
        )
        job = self.submit(
            model, SolveOptions(time_limit_s=min(10.0, timeout), use_geodesic_distances=True)
        )
        try:
            job.result(max(1.0, timeout - (time.monotonic() - started)))
        except TimeoutError:
            job.cancel()
            raise SolverError(f"warm-up solve did not finish within {timeout} s") from None
        elapsed = time.monotonic() - started
        log.info("%s warmed up in %.3f s", type(self).__name__, elapsed)
        return elapsed

    def shutdown(self, cancel_running: bool = False, *, wait: bool = True) -> None:
        """Refuse new jobs; with ``cancel_running`` cancel the queued and running ones (they
        return interrupted solutions or raise CancelledError), otherwise let them finish.
        With ``wait``, return once every job has ended. Idempotent."""
        with self._lock:
            first = not self._shut_down
            self._shut_down = True
            to_cancel = [*self._queue, *self._running] if cancel_running else []
        for job in to_cancel:
            job.cancel()
        if wait:
            with self._changed:
                self._changed.wait_for(
                    lambda: not self._running and not self._queue, self._shutdown_wait_s
                )
        if first:
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(cancel_running=True)

    # -- for implementations ----------------------------------------------------------------

    on_job_end: Callable[[float], None] | None = None
    """Called with the seconds each job held its slot, as it releases it (e.g. metrics)."""

    _shutdown_wait_s: float | None = None
    """How long :meth:`shutdown` waits for the jobs to end (None: as long as they take)."""

    def _prepare_warm_up(self, timeout: float) -> None:
        """Before the warm-up solve (e.g. wait for the cluster)."""

    def _new_job(self, request: SolveRequest | TaskRequest) -> J:
        """A job of this executor, not started (for :meth:`submit`)."""
        raise NotImplementedError

    def _launch(self, job: J) -> None:
        """Start running ``job`` (its options resolved; the executor's lock is held)."""
        raise NotImplementedError

    def _close(self) -> None:
        """Free the executor's resources, once, at the end of the first :meth:`shutdown`."""

    def _start_locked(self, job: J) -> None:
        """Take a slot and its cores for ``job`` and launch it (lock held)."""
        if self.cores is None:
            idle, cores = 1, 1
        else:
            idle = self.cores - sum(j.options.solver_processes for j in self._running)
            cores = self.cores
        job.options = resolve_solver_processes(job.options, idle_cores=idle, cores=cores)
        self._running.add(job)
        job.slot_taken_at = time.monotonic()
        self._launch(job)
