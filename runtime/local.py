"""Run solves in worker processes, with back-pressure, cancellation and crash isolation.

OR-Tools holds the GIL for the whole search, so a solve running in a thread of the server
would starve every other thread (health checks included). :class:`SolveExecutor` therefore runs
each solve in its own short-lived process, forked by a ``multiprocessing`` *forkserver* whose
process has the engine and OR-Tools already imported: starting a worker costs a fork and the
unpickling of the model, not a fresh interpreter. A worker that crashes (segfault, OOM kill)
takes only its own solve down. The worker's body is :func:`runtime.worker.worker_main`.

- At most ``max_workers`` solves run at once and at most ``max_queued`` more wait for a slot;
  :meth:`SolveExecutor.submit` raises :class:`~engine.errors.ExecutorFullError` beyond that,
  never queueing without bound. Time spent waiting counts against the solve's time budget.
  (Slots, queue and shutdown are :class:`runtime.base.SlotExecutor`'s, shared with the Dask
  executor.)
- :meth:`SolveJob.cancel` sets a stop flag in shared memory that the worker polls through
  :func:`engine.solve`'s ``should_stop`` (the solve then returns its best solution so far,
  status ``INTERRUPTED``); a worker that has not returned ``cancel_grace_s`` later is killed.
  The flag is a lock-free shared byte (:class:`runtime.worker.StopFlag`), not a
  :class:`multiprocessing.Event`: ``Event.is_set`` takes a process-shared lock, so a worker
  killed or stopped while polling (thousands of times a second) would leave it held and block
  the server's next ``set()`` forever.
- Cores: a solve whose ``solver_processes`` is auto (0) gets, when it starts, the cores that the
  running solves leave free (at least one): on an idle executor a solve runs a portfolio over
  every core, under load each solve runs one search. ``cores`` (default: the cores this process
  may use) is what the executor counts with; explicit ``solver_processes`` count as given.
- A watchdog kills a worker that overruns its time limit by far (a safety net; the engine
  respects the limit itself).
- Progress: with an ``on_progress`` callback, the worker also sends a
  :class:`~engine.progress.SolveProgress` per improving solution (now and then with the
  evaluated solution so far); the supervisor thread calls the callback with each. A worker that
  has to be killed after a cancellation or by the watchdog still yields the best solution it
  reported (status ``INTERRUPTED``); without one, the job raises
  :class:`~engine.errors.NoSolutionError`: ``time_limit`` when the watchdog stopped it (the
  caller sees DEADLINE_EXCEEDED, not an internal error), ``interrupted`` when it was cancelled.
- :meth:`SolveJob.result` returns the :class:`~engine.solution.Solution` (messages cross the
  process boundary in the :mod:`runtime.wire` format) or re-raises the worker's
  :class:`~engine.errors.InvalidModelError` / :class:`~engine.errors.NoSolutionError` /
  :class:`~engine.errors.SolverError`. Any other failure, a dead worker included, becomes a
  :class:`~engine.errors.SolverError` with a short message; tracebacks go to the log only.

Workers log to the parent's stderr at the parent's log level. As with the "spawn" start
method, a worker re-imports the parent's main script (as ``__mp_main__``) unless it was started
with ``python -m``: the script needs an ``if __name__ == "__main__":`` guard, and whatever it
imports at the top is imported again by every worker (``server.py`` keeps its imports inside
the guard for that reason).

Tasks (:meth:`~runtime.base.SlotExecutor.submit_task`) run the same way, in a worker process
of their own whose body is :func:`runtime.worker.task_main`: same slots and queue, stop flag,
grace kill (:data:`TASK_CANCEL_GRACE_S` at least: a task returns what it has done so far) and
watchdog. ``preload`` names more modules for the forkserver to import (the modules of the
tasks the caller will submit).

This module must not import gRPC: the server wraps it, the engine does not know about it.
The :class:`~runtime.base.Executor` and :class:`~runtime.base.Job` protocols it implements are in
:mod:`runtime.base` (and exported by :mod:`runtime`).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Final

from engine.errors import NoSolutionError, SolverError, WorkerLostError
from engine.options import SolveOptions, available_cores
from engine.roads import ROADS_ENV_VAR, RoadSpec
from engine.solution import Solution
from runtime import wire
from runtime.base import BaseJob, SlotExecutor, SolveRequest, TaskRequest, charge_queue_time
from runtime.worker import StopFlag, task_main, worker_main

__all__ = ["SolveExecutor", "SolveJob"]

log = logging.getLogger(__name__)

PRELOAD_MODULES: Final = (
    "engine",
    "engine.solve",
    "engine.backends.ortools",
    "engine.backends.pyvrp.backend",
    "runtime.worker",
)
"""Imported once by the forkserver so that every worker starts with them loaded."""

DEFAULT_CANCEL_GRACE_S: Final = 1.0
"""How long a cancelled worker may take to return its interrupted solution before it is killed."""

TASK_CANCEL_GRACE_S: Final = 5.0
"""The least time a cancelled task may take to return what it has done so far."""

POLL_S: Final = 0.1
"""Granularity of the supervisor's checks for cancellation and watchdog deadlines."""

WATCHDOG_FACTOR: Final = 1.5
WATCHDOG_SLACK_S: Final = 5.0
"""A worker still running after ``limit * factor + slack`` seconds is stopped, then killed."""


def describe_exit(exitcode: int | None) -> str:
    """How a process ended, in words (``killed by SIGKILL``, ``exit code 1``)."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class SolveJob(BaseJob):
    """A submitted solve. Thread-safe; obtained from :meth:`SolveExecutor.submit`."""

    def __init__(
        self,
        request: SolveRequest | TaskRequest,
        dequeue: Callable[[BaseJob], bool],
        stop: StopFlag,
        grace_s: float,
    ) -> None:
        super().__init__(request, dequeue)
        self.stop = stop
        """The flag the worker polls."""
        self.grace_s = grace_s
        self.started_at: float | None = None
        """``time.monotonic()`` when the worker process was started (None while queued)."""
        self.pid: int | None = None
        """Process id of the worker while it runs."""
        self.kill_at: float | None = None
        """When the worker is killed if it has not stopped (set by :meth:`request_stop`)."""

    def __repr__(self) -> str:
        state = "done" if self.done() else "running" if self.started_at else "queued"
        what = "SolveJob" if self.task is None else "TaskJob"
        return f"<{what} {self.id} {state}>"

    def request_stop(self) -> None:
        """Set the worker's stop flag; it is killed if still running ``grace_s`` later."""
        self.kill_at = time.monotonic() + self.grace_s
        self.stop.set()

    def mark_started(self, pid: int | None) -> None:
        """Record that the worker process ``pid`` runs the job (for the supervisor)."""
        self.started_at = time.monotonic()
        self.pid = pid

    def mark_exited(self) -> None:
        """Record that the worker process is gone (for the supervisor)."""
        self.pid = None


class SolveExecutor(SlotExecutor[SolveJob]):
    """Runs :func:`engine.solve` in worker processes; see the module docstring.

    ``max_workers`` solves run concurrently, ``max_queued`` more may wait; auto
    ``solver_processes`` share ``cores`` (default :func:`~engine.options.available_cores`). The
    executor is thread-safe. Use it as a context manager or call :meth:`shutdown`.
    """

    def __init__(
        self,
        max_workers: int,
        max_queued: int = 0,
        *,
        cancel_grace_s: float = DEFAULT_CANCEL_GRACE_S,
        roads: RoadSpec | None = None,
        cores: int | None = None,
        preload: Sequence[str] = (),
    ) -> None:
        if cores is None:
            cores = available_cores()
        super().__init__(max_workers, max_queued, cores=cores, slots="solver workers")
        self.cancel_grace_s = cancel_grace_s
        self._ctx = multiprocessing.get_context("forkserver")
        # Only effective before the forkserver starts (it is shared by the whole process).
        preload = [*PRELOAD_MODULES, *preload]
        if roads is not None:
            # The forkserver inherits the environment when it starts: it loads the network
            # once (runtime.worker_roads) and every worker forked from it shares that copy.
            os.environ[ROADS_ENV_VAR] = roads.to_json()
            preload.append("runtime.worker_roads")
        else:
            os.environ.pop(ROADS_ENV_VAR, None)
        self._ctx.set_forkserver_preload(preload)

    def _new_job(self, request: SolveRequest | TaskRequest) -> SolveJob:
        grace = self.cancel_grace_s
        if isinstance(request, TaskRequest):
            grace = max(grace, TASK_CANCEL_GRACE_S)
        return SolveJob(request, self.dequeue, StopFlag(self._ctx), grace)

    def _launch(self, job: SolveJob) -> None:
        threading.Thread(
            target=self._supervise, args=(job,), name=f"solve-job-{job.id}", daemon=True
        ).start()

    def _supervise(self, job: SolveJob) -> None:
        """Supervisor thread of one job: run the worker, then settle the job.

        The slot is released before the job settles, so a caller that submits again as soon
        as it has its result finds the slot free.
        """
        outcome: Solution | bytes | BaseException
        try:
            outcome = self._run_worker(job)
        except BaseException as exc:  # a bug here must not leave the caller waiting forever
            log.exception("solve job %d: supervisor failed", job.id)
            outcome = SolverError(f"solver worker failed: {type(exc).__name__}")
        finally:
            job.mark_exited()
            self.release(job)
        job.settle(outcome)

    def _run_worker(self, job: SolveJob) -> Solution | bytes | BaseException:
        if job.cancel_requested:
            return CancelledError()
        options = charge_queue_time(job.options, job.submitted_at)
        started = self._start_worker(job, options)
        if isinstance(started, BaseException):
            return started
        process, reader = started
        watch = _Watch(job, process, options.time_limit_s)
        try:
            message = watch.run(reader)
            # A worker exits right after sending; give it the grace period, then kill.
            process.join(job.grace_s)
            if process.exitcode is None:
                process.kill()
                process.join()
        finally:
            reader.close()
        exitcode = process.exitcode
        process.close()
        if message is None:
            return _lost_outcome(job, exitcode, watch.fired)
        outcome = wire.rebuild(message, job.id, task=job.task is not None)
        if watch.fired and isinstance(outcome, NoSolutionError) and outcome.reason == "interrupted":
            # stopped by the watchdog, not by the caller: the time limit ran out
            return NoSolutionError("time_limit", _OVERRAN)
        return outcome

    def _start_worker(
        self, job: SolveJob, options: SolveOptions
    ) -> tuple[BaseProcess, Connection] | SolverError:
        """Start ``job``'s worker process: it and the read end of its pipe, or the error."""
        queued_s = time.monotonic() - job.submitted_at
        reader, writer = self._ctx.Pipe(duplex=False)
        level = logging.getLogger().getEffectiveLevel()
        task = job.task
        if task is None:
            target: Callable[..., None] = worker_main
            args: tuple[object, ...] = (
                writer, job.model, options, job.stop, level, job.progress_every_s,
            )  # fmt: skip
            name = f"routeopt-solve-{job.id}"
        else:
            target = task_main
            args = (
                writer, task.entry, task.payload, job.stop, level, options.solver_processes,
                options.time_limit_s, job.wants_task_progress,
            )  # fmt: skip
            name = f"routeopt-task-{job.id}"
        process = self._ctx.Process(target=target, args=args, name=name, daemon=True)
        try:
            process.start()
        except Exception as exc:
            reader.close()
            writer.close()
            log.exception("solve job %d: cannot start a worker process", job.id)
            return SolverError(f"cannot start a solver worker: {type(exc).__name__}")
        writer.close()  # the worker holds the only write end: EOF means it is gone
        job.mark_started(process.pid)
        log.debug(
            "solve job %d: worker %d started (queued %.1f ms)",
            job.id,
            process.pid,
            queued_s * 1000,
        )
        return process, reader


class _Watch:
    """Reads a worker's messages until its outcome, handing progress to the job, and stops
    the worker when it is cancelled (after the grace period) or overruns its time limit."""

    def __init__(self, job: SolveJob, process: BaseProcess, time_limit_s: float) -> None:
        self.job = job
        self.process = process
        self.time_limit_s = time_limit_s
        started = job.started_at if job.started_at is not None else time.monotonic()
        self.watchdog_at = started + time_limit_s * WATCHDOG_FACTOR + WATCHDOG_SLACK_S
        self.fired = False
        """Whether the watchdog stopped the worker."""

    def run(self, reader: Connection) -> wire.Outcome | None:
        """The worker's outcome, or None when it ended without sending one."""
        while True:
            ready = multiprocessing.connection.wait([reader, self.process.sentinel], POLL_S)
            if reader in ready or (self.process.sentinel in ready and reader.poll()):
                message = self._receive(reader)
                if isinstance(message, wire.Progress):
                    self.job.report(message.update)
                elif isinstance(message, wire.TaskProgress):
                    self.job.report_data(message.data)
                else:
                    return message
            elif self.process.sentinel in ready:
                return None
            self._enforce_deadlines(time.monotonic())

    def _receive(self, reader: Connection) -> wire.Message | None:
        try:
            return wire.decode(reader.recv())
        except (EOFError, OSError):
            return None  # died while sending: judged by its exit code
        except Exception:
            return wire.Crash(f"unreadable result:\n{traceback.format_exc()}")

    def _enforce_deadlines(self, now: float) -> None:
        job, process = self.job, self.process
        if not self.fired and now >= self.watchdog_at:
            self.fired = True
            log.error(
                "solve job %d: worker %d overran its %.1f s limit; stopping it",
                job.id,
                process.pid,
                self.time_limit_s,
            )
            job.cancel()
        if job.kill_at is not None and now >= job.kill_at and process.exitcode is None:
            log.warning(
                "solve job %d: worker %d did not stop %.1f s after cancellation; killing",
                job.id,
                process.pid,
                job.grace_s,
            )
            process.kill()
            job.kill_at = None  # kill once; the sentinel fires next


_OVERRAN: Final = (
    "the solver overran its time limit and was stopped before it found a solution; allow more time"
)


def _lost_outcome(
    job: SolveJob, exitcode: int | None, watchdog: bool
) -> Solution | NoSolutionError | SolverError:
    """The outcome of a worker that ended without sending one: its best reported solution if it
    was stopped; a :class:`NoSolutionError` if it was stopped before it reported one
    (``time_limit`` by the watchdog, ``interrupted`` by a cancellation); else a
    :class:`SolverError` saying why it ended."""
    if (watchdog or job.cancel_requested) and job.best_solution is not None:
        log.warning("solve job %d: worker stopped; keeping its best solution", job.id)
        return job.best_solution
    if watchdog:
        return NoSolutionError("time_limit", _OVERRAN)
    if job.cancel_requested:
        return NoSolutionError(
            "interrupted", "the solve was cancelled and its worker was stopped before a solution"
        )
    log.error("solve job %d: worker died (%s)", job.id, describe_exit(exitcode))
    return WorkerLostError(f"the solver worker died ({describe_exit(exitcode)})")
