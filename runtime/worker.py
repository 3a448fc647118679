"""The body of a local worker process (see :mod:`runtime.local`), and its stop flag.

A solve worker (:func:`worker_main`) solves one model and sends its supervisor
:mod:`runtime.wire` messages over a pipe: a :class:`~runtime.wire.Progress` per improving
solution when asked to, then one outcome. A task worker (:func:`task_main`) calls its task's
entry with the payload and a :class:`WorkerTaskContext`, sending a
:class:`~runtime.wire.TaskProgress` per report and then its outcome. Workers are forked by the
executor's forkserver, which has this module (and the engine) already imported.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import traceback
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from typing import Final

from engine.model import ShipmentModel
from engine.options import SolveOptions
from engine.parallel import die_with_parent
from engine.progress import SolveProgress
from engine.solution import Solution
from runtime import wire
from runtime.base import TaskEntry
from runtime.logs import LOG_FORMAT_ENV_VAR, JsonFormatter

__all__ = [
    "CRASH_WORKER_LABEL",
    "TEST_HOOKS_ENV_VAR",
    "WORKER_LOG_FORMAT",
    "StopFlag",
    "WorkerTaskContext",
    "task_main",
    "worker_main",
]

TEST_HOOKS_ENV_VAR: Final = "ROUTEOPT_TEST_HOOKS"
"""Set to ``1`` in the server's environment (tests only: never in production) to honour the
fault hooks: a worker whose model has a shipment labelled :data:`CRASH_WORKER_LABEL` kills
itself with SIGKILL as it starts (a poison job)."""
CRASH_WORKER_LABEL: Final = "routeopt-test:crash-worker"

WORKER_LOG_FORMAT: Final = (
    "%(asctime)s %(levelname)s [solve worker %(process)d] %(name)s: %(message)s"
)
"""Log format of worker processes (they inherit the server's stderr and log level; JSON lines
when the server logs JSON: :data:`runtime.logs.LOG_FORMAT_ENV_VAR`)."""


class StopFlag:
    """A flag shared with a worker process, without a lock (see :mod:`runtime.local`).

    One byte of shared memory: the server only ever writes True, the worker only reads, so no
    lock is needed and a dead or frozen worker cannot block :meth:`set`."""

    def __init__(self, ctx: ForkServerContext) -> None:
        self._value = ctx.RawValue(ctypes.c_bool, False)

    def set(self) -> None:
        self._value.value = True

    def is_set(self) -> bool:
        return bool(self._value.value)


def worker_main(
    conn: Connection,
    model: ShipmentModel,
    options: SolveOptions,
    stop: StopFlag,
    log_level: int,
    solutions_every_s: float | None = None,
) -> None:
    """Body of a worker process: solve, send progress messages (when ``solutions_every_s`` is
    set), send one outcome, exit."""
    parent = _set_up(log_level, "routeopt-solve")
    if os.environ.get(TEST_HOOKS_ENV_VAR) == "1" and any(
        s.label == CRASH_WORKER_LABEL for s in model.shipments
    ):
        os.kill(os.getpid(), signal.SIGKILL)

    def should_stop() -> bool:
        # The parent is the forkserver, which exits with the server: stop if orphaned.
        return stop.is_set() or os.getppid() != parent

    def send_progress(update: SolveProgress) -> None:
        try:
            conn.send(wire.encode(wire.Progress(update)))
        except (BrokenPipeError, ConnectionResetError):
            stop.set()  # nobody is listening any more

    def run() -> Solution:
        from engine.solve import solve  # preloaded by the forkserver
        from runtime import worker_roads  # preloaded by the forkserver when there are roads

        return solve(
            model,
            options,
            should_stop=should_stop,
            roads=worker_roads.CONTEXT,
            on_update=send_progress if solutions_every_s is not None else None,
            update_solutions_every_s=solutions_every_s or 0.0,
        )

    try:
        _send_outcome(conn, wire.capture(run))
    finally:
        conn.close()


def _set_up(log_level: int, name: str) -> int:
    """Set up a worker process: signals, logging, death with its parent (named ``name``);
    returns the parent's pid."""
    # Ctrl-C reaches the whole process group; the server decides what happens to solves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not logging.getLogger().handlers:  # log to the server's stderr at the server's level
        handler = logging.StreamHandler()
        if os.environ.get(LOG_FORMAT_ENV_VAR) == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(logging.Formatter(WORKER_LOG_FORMAT))
        logging.basicConfig(level=log_level, handlers=[handler])
    parent = os.getppid()
    # Killed by the kernel if its parent (the forkserver, which exits with the server) dies.
    die_with_parent(parent, name)
    return parent


class WorkerTaskContext:
    """The :class:`runtime.base.TaskContext` of a task in a worker process."""

    def __init__(
        self,
        conn: Connection,
        stop: StopFlag,
        parent: int,
        cores: int,
        time_limit_s: float,
        progress: bool,
    ) -> None:
        self._conn = conn
        self._stop = stop
        self._parent = parent
        self._progress = progress
        self.cores = cores
        self.time_limit_s = time_limit_s

    def should_stop(self) -> bool:
        # The parent is the forkserver, which exits with the server: stop if orphaned.
        return self._stop.is_set() or os.getppid() != self._parent

    def report(self, data: bytes) -> None:
        if not self._progress:
            return
        try:
            self._conn.send(wire.encode(wire.TaskProgress(data)))
        except (BrokenPipeError, ConnectionResetError):
            self._stop.set()  # nobody is listening any more


def task_main(
    conn: Connection,
    entry: TaskEntry,
    payload: bytes,
    stop: StopFlag,
    log_level: int,
    cores: int,
    time_limit_s: float,
    progress: bool,
) -> None:
    """Body of a task's worker process: ``entry(payload, context)``, its progress reports
    sent as they come (when ``progress``), then one outcome; exit."""
    parent = _set_up(log_level, "routeopt-task")
    context = WorkerTaskContext(conn, stop, parent, cores, time_limit_s, progress)
    try:
        _send_outcome(conn, wire.capture_task(lambda: entry(payload, context)))
    finally:
        conn.close()


def _send_outcome(conn: Connection, outcome: wire.Outcome) -> None:
    try:
        conn.send(wire.encode(outcome))
    except (BrokenPipeError, ConnectionResetError):
        pass  # nobody is listening any more
    except Exception:  # the outcome did not encode
        conn.send(wire.encode(wire.Crash(traceback.format_exc())))
