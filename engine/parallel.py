"""Run tasks in parallel processes: :func:`run_parallel`. Generic: a task is any function of a
stop criterion and a progress callback (the backends' portfolio,
:mod:`engine.backends.portfolio`, and PyVRP's split search are built on it).

Each task runs in a child forked from the solving process after the problem is built, so it
starts with the matrices in memory (copy-on-write) and nothing but results and progress cross
the process boundary. ``os.fork`` is used directly rather than :mod:`multiprocessing`: the
solving process may itself be a daemonic worker, which multiprocessing forbids to have
children. The parent does not search; it relays progress (the best objective of all
members), polls ``should_stop`` and passes a stop to the members through one shared byte, and
reaps every child before returning. A child whose parent disappears is killed by the kernel
(Linux: ``PR_SET_PDEATHSIG``, :func:`die_with_parent`) or, elsewhere, stops on its own at its
next stop check.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

from engine.errors import NoSolutionError, SolverError
from engine.search import Progress, ProgressCallback, StopCriterion

__all__ = ["Task", "TaskResult", "die_with_parent", "run_parallel"]

log = logging.getLogger(__name__)

_POLL_S = 0.05
"""How often the parent checks ``should_stop`` while the members search."""

_GRACE_S = 2.0
"""How long after the deadline (or a stop) a member may take to report before it is killed."""


T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


def die_with_parent(parent: int, name: str | None = None) -> bool:
    """Have the kernel SIGKILL this process when its parent (``parent``, the pid it had when it
    was forked) dies, and exit at once if it is already gone; ``name`` becomes the process
    name (``/proc/<pid>/comm``, 15 bytes). Linux only: False elsewhere (the caller's stop
    checks still notice a changed parent)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
        if name is not None:
            libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    return True


Task = Callable[[StopCriterion, ProgressCallback], T]
"""Work for a child process: called there with its stop criterion (the caller's deadline and
search mode; ``should_stop`` follows the caller's) and a progress callback; returns a
picklable result."""


@dataclass(frozen=True)
class TaskResult(Generic[T]):
    """What one task returned, or the error that stopped it."""

    index: int
    name: str
    value: T | None
    error: BaseException | None
    leading: bool = False
    """Its progress report was the last one relayed (it holds the best objective reported)."""


def _child(
    conn: Connection,
    task: Task[Any],
    stop: StopCriterion,
    deadline: float,
    flag: Any,
    parent: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def should_stop() -> bool:
        return bool(flag.value) or os.getppid() != parent

    member_stop = StopCriterion(
        deadline=deadline, search_mode=stop.search_mode, should_stop=should_stop
    )

    def progress(p: Progress) -> None:
        with contextlib.suppress(OSError):
            conn.send(("progress", p))

    message: tuple[str, Any]
    try:
        message = ("ok", (task(member_stop, progress), member_stop.interrupted))
    except NoSolutionError as exc:
        message = ("no_solution", exc)
    except BaseException:
        message = ("error", traceback.format_exc())
    with contextlib.suppress(OSError):
        conn.send(message)


def run_parallel(
    tasks: Sequence[tuple[str, Task[T]]],
    stop: StopCriterion,
    on_progress: ProgressCallback | None = None,
    *,
    until: float | None = None,
) -> list[TaskResult[T]]:
    """Run each named task in a child process until it returns or ``stop`` says so (a task
    still running :data:`_GRACE_S` after the deadline or a stop is killed); one result per
    task, in task order. ``until`` brings the tasks' deadline before ``stop``'s (a phase of
    a search). ``on_progress`` gets each progress report that improves on the best
    objective of all tasks; the result of the task that sent the last one is ``leading``. Sets
    ``stop.interrupted`` when ``should_stop`` ended a task."""
    deadline = stop.deadline if until is None else min(until, stop.deadline)
    run = _Run(tasks, stop, on_progress, deadline)
    try:
        for i, (_, task) in enumerate(tasks):
            run.fork(i, task)
        while run.readers:
            run.receive_ready()
            run.enforce_stop()
    finally:
        run.reap()
    return run.ordered_results()


class _Run(Generic[T]):
    """The parent's side of one :func:`run_parallel` call: the children, their pipes, and what
    they have reported so far."""

    def __init__(
        self,
        tasks: Sequence[tuple[str, Task[T]]],
        stop: StopCriterion,
        on_progress: ProgressCallback | None,
        deadline: float,
    ) -> None:
        self.tasks = tasks
        self.stop = stop
        self.on_progress = on_progress
        self.deadline = deadline
        self.flag = multiprocessing.RawValue(ctypes.c_bool, False)
        self.parent = os.getpid()
        self.started = time.monotonic()
        self.children: dict[int, tuple[int, Connection]] = {}
        self.readers: dict[Connection, int] = {}
        self.results: dict[int, TaskResult[T]] = {}
        self.best = float("inf")
        self.solutions = 0
        self.leader: int | None = None
        self.kill_at: float | None = None

    def fork(self, i: int, task: Task[T]) -> None:
        """Start task ``i`` in a child process that reports through a pipe."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                os.close(read_fd)
                die_with_parent(self.parent, "routeopt-search")
                _child(Connection(write_fd), task, self.stop, self.deadline, self.flag, self.parent)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)
        reader = Connection(read_fd, writable=False)
        self.children[i] = (pid, reader)
        self.readers[reader] = i

    def receive_ready(self) -> None:
        """Handle every message that arrives within :data:`_POLL_S`."""
        for ready in multiprocessing.connection.wait(list(self.readers), _POLL_S):
            assert isinstance(ready, Connection)
            i = self.readers[ready]
            try:
                kind, payload = ready.recv()
            except (EOFError, OSError):
                kind, payload = "error", "the task process died"
            if kind == "progress":
                self.relay(i, payload)
            else:
                del self.readers[ready]
                self.finish(i, kind, payload)

    def relay(self, i: int, progress: Progress) -> None:
        """Pass on task ``i``'s report when it improves on the best of all tasks."""
        self.solutions += 1
        if progress.objective >= self.best:
            return
        self.best = progress.objective
        self.leader = i
        if self.on_progress is not None:
            elapsed = time.monotonic() - self.started
            self.on_progress(
                dataclasses.replace(progress, elapsed_s=elapsed, solutions=self.solutions)
            )

    def finish(self, i: int, kind: str, payload: Any) -> None:
        """Record task ``i``'s final message."""
        name = self.tasks[i][0]
        if kind == "ok":
            value, interrupted = payload
            self.results[i] = TaskResult(i, name, value, None)
            self.stop.interrupted = self.stop.interrupted or interrupted
        elif kind == "no_solution":
            self.results[i] = TaskResult(i, name, None, payload)
        else:
            log.error("parallel task %d (%s) failed:\n%s", i, name, payload)
            self.results[i] = TaskResult(i, name, None, SolverError(f"{name} failed"))

    def enforce_stop(self) -> None:
        """Pass a stop on to the children; kill those still running after the grace time (their
        result: :class:`~engine.errors.NoSolutionError`, ``interrupted`` after a stop,
        ``time_limit`` after the deadline)."""
        now = time.monotonic()
        if not self.flag.value and self.stop.poll():
            self.flag.value = True
            self.kill_at = now + _GRACE_S
        if self.kill_at is None and now > self.deadline:
            self.kill_at = now + _GRACE_S
        if self.kill_at is None or now <= self.kill_at:
            return
        for reader, i in list(self.readers.items()):
            name = self.tasks[i][0]
            log.warning("parallel task %d (%s) did not stop in time; killing it", i, name)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.children[i][0], signal.SIGKILL)
            # It had its whole budget and did not return: like a search that found nothing in
            # time (DEADLINE_EXCEEDED or CANCELLED for the caller), not a failure of the solver.
            reason = "interrupted" if self.flag.value else "time_limit"
            error = NoSolutionError(reason, f"{name} did not stop in time and was stopped")
            self.results[i] = TaskResult(i, name, None, error)
            del self.readers[reader]

    def reap(self) -> None:
        """Stop and wait for every child."""
        self.flag.value = True
        for pid, reader in self.children.values():
            reader.close()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    def ordered_results(self) -> list[TaskResult[T]]:
        """One result per task, in task order; the leader's marked ``leading``."""
        if self.leader is not None:
            leading = dataclasses.replace(self.results[self.leader], leading=True)
            self.results[self.leader] = leading
        return [self.results[i] for i in range(len(self.tasks))]
