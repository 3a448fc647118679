"""Run tasks in parallel processes: several backends on one problem (a portfolio), or the
parts of a decomposed problem.

Each task runs in a child forked from the solving process after the problem is built, so it
starts with the matrices in memory (copy-on-write) and nothing but results and progress cross
the process boundary. ``os.fork`` is used directly rather than :mod:`multiprocessing`: the
solving process may itself be a daemonic worker, which multiprocessing forbids to have
children. The parent does not search; it relays progress (the best objective of all
members), polls ``should_stop`` and passes a stop to the members through one shared byte, and
reaps every child before returning. A child whose parent disappears stops on its own.
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
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

from engine.backends.base import Backend, Progress, RoutePlan, StopCriterion
from engine.errors import NoSolutionError, SolverError
from engine.problem import Problem

__all__ = ["MemberResult", "Task", "TaskResult", "run_parallel", "run_portfolio"]

log = logging.getLogger(__name__)

_POLL_S = 0.05
"""How often the parent checks ``should_stop`` while the members search."""

_GRACE_S = 2.0
"""How long after the deadline (or a stop) a member may take to report before it is killed."""


T = TypeVar("T")

Task = Callable[[StopCriterion, Callable[[Progress], None]], T]
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


MemberResult = TaskResult[list[RoutePlan]]
"""What one portfolio member returned: plans, or the error that stopped it."""


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


def run_portfolio(
    members: Sequence[Backend],
    problem: Problem,
    stop: StopCriterion,
    on_progress: Callable[[Progress], None] | None = None,
) -> list[MemberResult]:
    """Run every member on ``problem`` until ``stop`` says so; one result (plans) per member,
    in member order. Sets ``stop.interrupted`` when ``should_stop`` ended the search."""

    def task(backend: Backend) -> Task[list[RoutePlan]]:
        return lambda member_stop, progress: backend.solve(problem, member_stop, progress)

    named = [(getattr(m, "name", type(m).__name__), task(m)) for m in members]
    return run_parallel(named, stop, on_progress)


def run_parallel(
    tasks: Sequence[tuple[str, Task[T]]],
    stop: StopCriterion,
    on_progress: Callable[[Progress], None] | None = None,
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
    flag = multiprocessing.RawValue(ctypes.c_bool, False)
    parent = os.getpid()
    started = time.monotonic()
    children: dict[int, tuple[int, Connection]] = {}
    readers: dict[Connection, int] = {}
    results: dict[int, TaskResult[T]] = {}
    for i, (_, task) in enumerate(tasks):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                os.close(read_fd)
                _child(Connection(write_fd), task, stop, deadline, flag, parent)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)
        reader = Connection(read_fd, writable=False)
        children[i] = (pid, reader)
        readers[reader] = i
    best = float("inf")
    solutions = 0
    leader: int | None = None
    kill_at: float | None = None
    try:
        while readers:
            ready = multiprocessing.connection.wait(list(readers), _POLL_S)
            for ready_reader in ready:
                assert isinstance(ready_reader, Connection)
                reader = ready_reader
                i = readers[reader]
                try:
                    kind, payload = reader.recv()
                except (EOFError, OSError):
                    kind, payload = "error", "the task process died"
                if kind == "progress":
                    solutions += 1
                    if payload.objective < best:
                        best = payload.objective
                        leader = i
                        if on_progress is not None:
                            elapsed = time.monotonic() - started
                            on_progress(
                                dataclasses.replace(payload, elapsed_s=elapsed, solutions=solutions)
                            )
                    continue
                del readers[reader]
                name = tasks[i][0]
                if kind == "ok":
                    value, interrupted = payload
                    results[i] = TaskResult(i, name, value, None)
                    stop.interrupted = stop.interrupted or interrupted
                elif kind == "no_solution":
                    results[i] = TaskResult(i, name, None, payload)
                else:
                    log.error("parallel task %d (%s) failed:\n%s", i, name, payload)
                    results[i] = TaskResult(i, name, None, SolverError(f"{name} failed"))
            now = time.monotonic()
            if not flag.value and stop.poll():
                flag.value = True
                kill_at = now + _GRACE_S
            if kill_at is None and now > deadline:
                kill_at = now + _GRACE_S
            if kill_at is not None and now > kill_at:
                for reader, i in list(readers.items()):
                    name = tasks[i][0]
                    log.warning("parallel task %d (%s) did not stop in time; killing it", i, name)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(children[i][0], signal.SIGKILL)
                    error = SolverError(f"{name} did not stop in time")
                    results[i] = TaskResult(i, name, None, error)
                    del readers[reader]
    finally:
        flag.value = True
        for pid, reader in children.values():
            reader.close()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    if leader is not None:
        results[leader] = dataclasses.replace(results[leader], leading=True)
    return [results[i] for i in range(len(tasks))]
