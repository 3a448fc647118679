"""Run solves in worker processes, with back-pressure, cancellation and crash isolation.

OR-Tools holds the GIL for the whole search, so a solve running in a thread of the server
would starve every other thread (health checks included). :class:`SolveExecutor` therefore runs
each solve in its own short-lived process, forked by a ``multiprocessing`` *forkserver* whose
process has the engine and OR-Tools already imported: starting a worker costs a fork and the
unpickling of the model, not a fresh interpreter. A worker that crashes (segfault, OOM kill)
takes only its own solve down.

- At most ``max_workers`` solves run at once and at most ``max_queued`` more wait for a slot;
  :meth:`SolveExecutor.submit` raises :class:`~engine.errors.ExecutorFullError` beyond that,
  never queueing without bound. Time spent waiting counts against the solve's time budget.
- :meth:`SolveJob.cancel` sets a stop flag in shared memory that the worker polls through
  :func:`engine.solve`'s ``should_stop`` (the solve then returns its best solution so far,
  status ``INTERRUPTED``); a worker that has not returned ``cancel_grace_s`` later is killed.
  The flag is a lock-free shared byte, not a :class:`multiprocessing.Event`: ``Event.is_set``
  takes a process-shared lock, so a worker killed or stopped while polling (thousands of
  times a second) would leave it held and block the server's next ``set()`` forever.
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
  reported (status ``INTERRUPTED``).
- :meth:`SolveJob.result` returns the :class:`~engine.solution.Solution` (results cross the
  process boundary as pickled engine dataclasses) or re-raises the worker's
  :class:`~engine.errors.InvalidModelError` / :class:`~engine.errors.SolverError`. Any other
  failure, a dead worker included, becomes a :class:`~engine.errors.SolverError` with a short
  message; tracebacks go to this module's log only.

Workers log to the parent's stderr at the parent's log level. As with the "spawn" start
method, a worker re-imports the parent's main script (as ``__mp_main__``) unless it was started
with ``python -m``: the script needs an ``if __name__ == "__main__":`` guard, and whatever it
imports at the top is imported again by every worker (``server.py`` keeps its imports inside
the guard for that reason).

This module must not import gRPC: the server wraps it, the engine does not know about it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from typing import Any, Final, Protocol, cast

from engine.errors import (
    ExecutorFullError,
    ExecutorShutdownError,
    FieldViolation,
    InvalidModelError,
    NoSolutionError,
    SolverError,
)
from engine.model import LatLng, Shipment, ShipmentModel, Vehicle, VisitRequest
from engine.options import SolveOptions, available_cores, resolve_solver_processes
from engine.progress import SolveProgress
from engine.roads import ROADS_ENV_VAR, RoadSpec
from engine.solution import Solution

__all__ = [
    "CancelledError",
    "Executor",
    "Job",
    "ProgressCallback",
    "SolveExecutor",
    "SolveJob",
    "StopFlag",
]

log = logging.getLogger(__name__)

PRELOAD_MODULES: Final = (
    "engine",
    "engine.solve",
    "engine.backends.ortools",
    "engine.backends.pyvrp.backend",
    "runtime.local",
)
"""Imported once by the forkserver so that every worker starts with them loaded."""

DEFAULT_CANCEL_GRACE_S: Final = 1.0
"""How long a cancelled worker may take to return its interrupted solution before it is killed."""

MIN_QUEUED_BUDGET_S: Final = 0.1
"""Smallest time budget a job gets when it leaves the queue after waiting most of its budget."""

WORKER_LOG_FORMAT: Final = (
    "%(asctime)s %(levelname)s [solve worker %(process)d] %(name)s: %(message)s"
)
"""Log format of worker processes (they inherit the server's stderr and log level)."""

_POLL_S: Final = 0.1
"""Granularity of the supervisor's checks for cancellation and watchdog deadlines."""

_WATCHDOG_FACTOR: Final = 1.5
_WATCHDOG_SLACK_S: Final = 5.0
"""A worker still running after ``limit * factor + slack`` seconds is stopped, then killed."""

_job_ids = itertools.count(1)

ProgressCallback = Callable[[SolveProgress], None]
"""Called with each progress update of a solve (in a thread of the executor)."""


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
    """Runs solves away from the caller's threads: :class:`SolveExecutor` (local worker
    processes) or :class:`runtime.dask_executor.DaskExecutor` (a Dask cluster). Both bound the
    number of running and waiting solves and raise :class:`ExecutorFullError` beyond."""

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

    def warm_up(self, timeout: float = 60.0) -> float: ...

    def shutdown(self, cancel_running: bool = False, *, wait: bool = True) -> None: ...


# Messages from a worker: ("progress", SolveProgress)* then one of ("ok", Solution)
# | ("invalid", violations) | ("solver_error", text) | ("crash", traceback text).
# InvalidModelError is sent as its violations because its constructor does not take its
# message, so the exception itself does not round-trip.
_Message = tuple[str, Any]


class StopFlag:
    """A flag shared with a worker process, without a lock (see the module docstring).

    One byte of shared memory: the server only ever writes True, the worker only reads, so no
    lock is needed and a dead or frozen worker cannot block :meth:`set`."""

    def __init__(self, ctx: ForkServerContext) -> None:
        self._value = ctx.RawValue(ctypes.c_bool, False)

    def set(self) -> None:
        self._value.value = True

    def is_set(self) -> bool:
        return bool(self._value.value)


def _worker_main(
    conn: Connection,
    model: ShipmentModel,
    options: SolveOptions,
    stop: StopFlag,
    log_level: int,
    solutions_every_s: float | None = None,
) -> None:
    """Body of a worker process: solve, send progress messages (when ``solutions_every_s`` is
    set), send one final message, exit."""
    # Ctrl-C reaches the whole process group; the server decides what happens to solves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not logging.getLogger().handlers:  # log to the server's stderr at the server's level
        logging.basicConfig(level=log_level, format=WORKER_LOG_FORMAT)
    parent = os.getppid()

    def should_stop() -> bool:
        # The parent is the forkserver, which exits with the server: stop if orphaned.
        return stop.is_set() or os.getppid() != parent

    from engine.solve import solve  # preloaded by the forkserver

    def send_progress(update: SolveProgress) -> None:
        try:
            conn.send(("progress", update))
        except (BrokenPipeError, ConnectionResetError):
            stop.set()  # nobody is listening any more

    on_update = send_progress if solutions_every_s is not None else None
    message: _Message
    try:
        from runtime import (
            worker_roads as _worker_roads,  # preloaded by the forkserver when the server has roads
        )

        roads = _worker_roads.CONTEXT
        solution = solve(
            model,
            options,
            should_stop=should_stop,
            roads=roads,
            on_update=on_update,
            update_solutions_every_s=solutions_every_s or 0.0,
        )
        message = ("ok", solution)
    except NoSolutionError as exc:
        message = ("no_solution", exc)
    except InvalidModelError as exc:
        message = ("invalid", exc.violations)
    except SolverError as exc:
        message = ("solver_error", str(exc))
    except BaseException:
        message = ("crash", traceback.format_exc())
    try:
        try:
            conn.send(message)
        except (BrokenPipeError, ConnectionResetError):
            pass  # nobody is listening any more
        except Exception:  # the result did not pickle
            conn.send(("crash", traceback.format_exc()))
    finally:
        conn.close()


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class SolveJob:
    """A submitted solve. Thread-safe; obtained from :meth:`SolveExecutor.submit`."""

    def __init__(
        self,
        model: ShipmentModel,
        options: SolveOptions,
        stop: StopFlag,
        grace_s: float,
        on_progress: ProgressCallback | None = None,
        progress_solutions_every_s: float = 1.0,
    ) -> None:
        self.id = next(_job_ids)
        self.on_progress = on_progress
        self.progress_solutions_every_s = progress_solutions_every_s
        self.best_solution: Solution | None = None
        """The latest intermediate solution the worker reported (progress only)."""
        self.model = model
        self.options = options
        """The options it runs with (an auto ``solver_processes`` is resolved when it starts)."""
        self.submitted_at = time.monotonic()
        self.started_at: float | None = None
        """``time.monotonic()`` when the worker process was started (None while queued)."""
        self.pid: int | None = None
        """Process id of the worker while it runs."""
        self._future: Future[Solution] = Future()
        self._stop = stop
        self._grace_s = grace_s
        self._lock = threading.Lock()
        self._cancel_requested = False
        self._kill_at: float | None = None
        self._dequeue: Callable[[SolveJob], bool] | None = None

    def __repr__(self) -> str:
        state = "done" if self.done() else "running" if self.started_at else "queued"
        return f"<SolveJob {self.id} {state}>"

    def cancel(self) -> None:
        """Stop the solve: a queued job never starts (:meth:`result` raises
        :class:`concurrent.futures.CancelledError`); a running one returns its best solution so
        far (status INTERRUPTED), or is killed after the grace period (:class:`SolverError`).
        Idempotent; does nothing once the job is done."""
        with self._lock:
            if self._cancel_requested or self._future.done():
                return
            self._cancel_requested = True
            self._kill_at = time.monotonic() + self._grace_s
            dequeue = self._dequeue
        self._stop.set()
        if dequeue is not None and dequeue(self):
            self._future.cancel()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> Solution:
        """Wait for the solution. Raises :class:`TimeoutError` if ``timeout`` passes first,
        the engine's :class:`InvalidModelError` or :class:`SolverError`, or
        :class:`concurrent.futures.CancelledError` for a job cancelled before it started."""
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._future.exception(timeout)

    def add_done_callback(self, fn: Callable[[SolveJob], object]) -> None:
        """Call ``fn(job)`` when the job is done (at once if it already is), in any thread."""
        self._future.add_done_callback(lambda _: fn(self))


class SolveExecutor:
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
    ) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        if max_queued < 0:
            raise ValueError(f"max_queued must be at least 0, got {max_queued}")
        if cores is not None and cores < 1:
            raise ValueError(f"cores must be at least 1, got {cores}")
        self.max_workers = max_workers
        self.max_queued = max_queued
        self.cores = cores or available_cores()
        self.cancel_grace_s = cancel_grace_s
        self._ctx = multiprocessing.get_context("forkserver")
        # Only effective before the forkserver starts (it is shared by the whole process).
        preload = list(PRELOAD_MODULES)
        if roads is not None:
            # The forkserver inherits the environment when it starts: it loads the network
            # once (runtime.worker_roads) and every worker forked from it shares that copy.
            os.environ[ROADS_ENV_VAR] = roads.to_json()
            preload.append("runtime.worker_roads")
        else:
            os.environ.pop(ROADS_ENV_VAR, None)
        self._ctx.set_forkserver_preload(preload)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._running: set[SolveJob] = set()
        self._queue: deque[SolveJob] = deque()
        self._shut_down = False

    # -- introspection -------------------------------------------------------------------

    @property
    def running_count(self) -> int:
        with self._lock:
            return len(self._running)

    @property
    def queued_count(self) -> int:
        with self._lock:
            return len(self._queue)

    # -- public API ----------------------------------------------------------------------

    def submit(
        self,
        model: ShipmentModel,
        options: SolveOptions,
        *,
        on_progress: ProgressCallback | None = None,
        progress_solutions_every_s: float = 1.0,
    ) -> SolveJob:
        """Start solving ``model`` in a worker, or queue it if every worker is busy.

        ``on_progress`` gets each improving solution's :class:`SolveProgress` (with the
        evaluated solution at most every ``progress_solutions_every_s`` seconds). Raises
        :class:`ExecutorFullError` when ``max_workers`` solves run and ``max_queued`` wait,
        :class:`ExecutorShutdownError` after :meth:`shutdown`.
        """
        job = SolveJob(
            model,
            options,
            StopFlag(self._ctx),
            self.cancel_grace_s,
            on_progress,
            progress_solutions_every_s,
        )
        with self._lock:
            if self._shut_down:
                raise ExecutorShutdownError("the solve executor is shutting down")
            if len(self._running) < self.max_workers:
                self._start_locked(job)
            elif len(self._queue) < self.max_queued:
                job._dequeue = self._dequeue
                self._queue.append(job)
            else:
                raise ExecutorFullError(
                    f"all {self.max_workers} solver workers are busy and "
                    f"{len(self._queue)} requests are already waiting; retry later"
                )
        return job

    def warm_up(self, timeout: float = 60.0) -> float:
        """Start the forkserver and run one trivial solve in a worker, so that the first real
        request does not pay for it. Returns the seconds it took; raises SolverError."""
        started = time.monotonic()
        model = ShipmentModel(
            shipments=(Shipment(deliveries=(VisitRequest(arrival_location=LatLng(0.0, 0.001)),)),),
            vehicles=(Vehicle(start_location=LatLng(0.0, 0.0)),),
        )
        job = self.submit(
            model, SolveOptions(time_limit_s=min(10.0, timeout), use_geodesic_distances=True)
        )
        try:
            job.result(timeout)
        except TimeoutError:
            job.cancel()
            raise SolverError(f"warm-up solve did not finish within {timeout} s") from None
        elapsed = time.monotonic() - started
        log.info("solve executor warmed up in %.3f s", elapsed)
        return elapsed

    def shutdown(self, cancel_running: bool = False, *, wait: bool = True) -> None:
        """Refuse new jobs; with ``cancel_running`` cancel the queued and running ones (they
        return interrupted solutions or raise CancelledError), otherwise let them finish.
        With ``wait``, return once every worker has exited. Idempotent."""
        with self._lock:
            self._shut_down = True
            to_cancel = [*self._queue, *self._running] if cancel_running else []
        for job in to_cancel:
            job.cancel()
        if wait:
            with self._changed:
                self._changed.wait_for(lambda: not self._running and not self._queue)

    def __enter__(self) -> SolveExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(cancel_running=True)

    # -- internals -----------------------------------------------------------------------

    def _dequeue(self, job: SolveJob) -> bool:
        """Remove a queued job (it was cancelled); False if it has already started."""
        with self._lock:
            try:
                self._queue.remove(job)
            except ValueError:
                return False
            self._changed.notify_all()
            return True

    def _start_locked(self, job: SolveJob) -> None:
        """Take a slot and its cores for ``job`` and start its supervisor thread (lock held)."""
        job._dequeue = None
        busy = sum(j.options.solver_processes for j in self._running)
        job.options = resolve_solver_processes(
            job.options, idle_cores=self.cores - busy, cores=self.cores
        )
        self._running.add(job)
        threading.Thread(
            target=self._supervise, args=(job,), name=f"solve-job-{job.id}", daemon=True
        ).start()

    def _release(self, job: SolveJob) -> None:
        """Free ``job``'s slot and start the next queued job, if any."""
        with self._lock:
            self._running.discard(job)
            while self._queue and len(self._running) < self.max_workers:
                self._start_locked(self._queue.popleft())
            self._changed.notify_all()

    def _supervise(self, job: SolveJob) -> None:
        """Supervisor thread of one job: run the worker, then complete the job's future.

        The slot is released before the future completes, so a caller that submits again as
        soon as it has its result finds the slot free.
        """
        outcome: Solution | BaseException
        try:
            outcome = self._run_worker(job)
        except BaseException as exc:  # a bug here must not leave the caller waiting forever
            log.exception("solve job %d: supervisor failed", job.id)
            outcome = SolverError(f"solver worker failed: {type(exc).__name__}")
        finally:
            job.pid = None
            self._release(job)
        if isinstance(outcome, CancelledError):
            job._future.cancel()
        elif isinstance(outcome, BaseException):
            job._future.set_exception(outcome)
        else:
            job._future.set_result(outcome)

    def _run_worker(self, job: SolveJob) -> Solution | BaseException:
        options = job.options
        now = time.monotonic()
        waited = now - job.submitted_at
        if job.cancel_requested:
            return CancelledError()
        if waited > 0.001:  # time in the queue counts against the budget
            budget = max(options.time_limit_s - waited, MIN_QUEUED_BUDGET_S)
            options = dataclasses.replace(options, time_limit_s=min(budget, options.time_limit_s))
        reader, writer = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_worker_main,
            args=(
                writer,
                job.model,
                options,
                job._stop,
                logging.getLogger().getEffectiveLevel(),
                job.progress_solutions_every_s if job.on_progress is not None else None,
            ),
            name=f"routeopt-solve-{job.id}",
            daemon=True,
        )
        try:
            process.start()
        except Exception as exc:
            reader.close()
            writer.close()
            log.exception("solve job %d: cannot start a worker process", job.id)
            return SolverError(f"cannot start a solver worker: {type(exc).__name__}")
        writer.close()  # the worker holds the only write end: EOF means it is gone
        job.started_at = time.monotonic()
        job.pid = process.pid
        log.debug(
            "solve job %d: worker %d started in %.1f ms (queued %.1f ms)",
            job.id,
            process.pid,
            (job.started_at - now) * 1000,
            waited * 1000,
        )
        watchdog_at = job.started_at + options.time_limit_s * _WATCHDOG_FACTOR + _WATCHDOG_SLACK_S
        watchdog_fired = False
        message: _Message | None = None
        try:
            while True:
                ready = multiprocessing.connection.wait([reader, process.sentinel], _POLL_S)
                if reader in ready or (process.sentinel in ready and reader.poll()):
                    try:
                        message = reader.recv()
                    except (EOFError, OSError):
                        message = None  # died while sending: judged by its exit code below
                    except Exception:
                        message = ("crash", f"unreadable result:\n{traceback.format_exc()}")
                    if message is None or message[0] != "progress":
                        break
                    self._progress(job, cast(SolveProgress, message[1]))
                    message = None
                elif process.sentinel in ready:
                    break
                now = time.monotonic()
                if not watchdog_fired and now >= watchdog_at:
                    watchdog_fired = True
                    log.error(
                        "solve job %d: worker %d overran its %.1f s limit; stopping it",
                        job.id,
                        process.pid,
                        options.time_limit_s,
                    )
                    job.cancel()
                kill_at = job._kill_at
                if kill_at is not None and now >= kill_at and process.exitcode is None:
                    log.warning(
                        "solve job %d: worker %d did not stop %.1f s after cancellation; killing",
                        job.id,
                        process.pid,
                        self.cancel_grace_s,
                    )
                    process.kill()
                    job._kill_at = None  # kill once; the sentinel fires next
            # A worker exits right after sending; give it the grace period, then kill.
            process.join(self.cancel_grace_s)
            if process.exitcode is None:
                process.kill()
                process.join()
        finally:
            reader.close()
        exitcode = process.exitcode
        process.close()
        return self._outcome(job, message, exitcode, watchdog_fired)

    @staticmethod
    def _progress(job: SolveJob, update: SolveProgress) -> None:
        if update.solution is not None:
            job.best_solution = update.solution
        if job.on_progress is not None:
            try:
                job.on_progress(update)
            except Exception:  # a faulty listener must not end the solve
                log.exception("solve job %d: progress callback failed", job.id)

    def _outcome(
        self, job: SolveJob, message: _Message | None, exitcode: int | None, watchdog: bool
    ) -> Solution | BaseException:
        if message is None:
            if (watchdog or job.cancel_requested) and job.best_solution is not None:
                log.warning("solve job %d: worker stopped; keeping its best solution", job.id)
                return job.best_solution
            if watchdog:
                return SolverError("the solver overran its time limit and was stopped")
            if job.cancel_requested:
                return SolverError("the solve was cancelled and its worker was stopped")
            log.error("solve job %d: worker died (%s)", job.id, _describe_exit(exitcode))
            return SolverError(f"the solver worker died ({_describe_exit(exitcode)})")
        kind, payload = message
        if kind == "ok" and isinstance(payload, Solution):
            return payload
        if kind == "invalid":
            violations: tuple[FieldViolation, ...] = payload
            return InvalidModelError(violations)
        if kind == "solver_error":
            return SolverError(str(payload))
        if kind == "no_solution" and isinstance(payload, NoSolutionError):
            return payload
        log.error("solve job %d: worker failed:\n%s", job.id, payload)
        return SolverError("internal error in the solver worker")
