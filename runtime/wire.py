"""What crosses a process boundary, in one format: progress, the outcome of a solve, a crash.

A local worker process sends its supervisor a :class:`Progress` per improving solution and then
one outcome; a Dask task publishes its progress on the scheduler's event topic
(:func:`progress_event`, :func:`read_progress_event`) and returns its outcome. Both send
:func:`encode`'s plain data (:data:`runtime.codec.Plain`: no pickle, so whoever can publish on
the scheduler cannot make the server run code) and the receiver rebuilds the message with
:func:`decode`, which validates it.

An outcome is made on the solving side by :func:`capture` (the engine's exceptions become
messages: :class:`~engine.errors.InvalidModelError` does not survive pickling as an exception)
and turned back into a :class:`~engine.solution.Solution` or an exception by :func:`rebuild`,
the one place where the engine's exceptions are rebuilt.

A task (:meth:`runtime.base.SlotExecutor.submit_task`) speaks the same format: its progress is
a :class:`TaskProgress` (bytes the task's caller reads), its outcome a :class:`TaskDone` made by
:func:`capture_task`, or the same error messages as a solve's.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Final

from engine.errors import FieldViolation, InvalidModelError, NoSolutionError, SolverError
from engine.progress import SolveProgress
from engine.solution import Solution
from runtime.codec import Plain, WireError, from_plain, to_plain

__all__ = [
    "CRASH_MESSAGE",
    "Cancelled",
    "Crash",
    "Failed",
    "Invalid",
    "Message",
    "NoSolution",
    "Outcome",
    "Progress",
    "Solved",
    "TaskDone",
    "TaskProgress",
    "WireError",
    "capture",
    "capture_task",
    "decode",
    "decode_outcome",
    "decode_progress",
    "encode",
    "progress_event",
    "read_event",
    "read_progress_event",
    "rebuild",
    "task_progress_event",
]

log = logging.getLogger(__name__)

CRASH_MESSAGE: Final = "internal error in the solver worker"
"""What the caller is told of a crash (its traceback goes to this module's log only)."""


@dataclass(frozen=True)
class Progress:
    """An improving solution of a running solve."""

    update: SolveProgress


@dataclass(frozen=True)
class Solved:
    """The solve returned a solution."""

    solution: Solution


@dataclass(frozen=True)
class TaskProgress:
    """A progress report of a running task (what its caller makes of the bytes)."""

    data: bytes


@dataclass(frozen=True)
class TaskDone:
    """The task returned its result."""

    data: bytes


@dataclass(frozen=True)
class Invalid:
    """The model is invalid (:class:`~engine.errors.InvalidModelError`)."""

    violations: tuple[FieldViolation, ...]


@dataclass(frozen=True)
class NoSolution:
    """The search ended without a solution (:class:`~engine.errors.NoSolutionError`)."""

    reason: str
    message: str


@dataclass(frozen=True)
class Failed:
    """The solver failed (:class:`~engine.errors.SolverError`)."""

    message: str


@dataclass(frozen=True)
class Cancelled:
    """The job was cancelled before it started."""


@dataclass(frozen=True)
class Crash:
    """Anything else went wrong; ``traceback`` is for the log, not for the caller."""

    traceback: str


Outcome = Solved | TaskDone | Invalid | NoSolution | Failed | Cancelled | Crash
"""How a solve or a task ended."""

Message = Progress | TaskProgress | Outcome
"""Anything sent across a process boundary."""

_KINDS: Final[dict[str, type[Message]]] = {
    "progress": Progress,
    "task_progress": TaskProgress,
    "solved": Solved,
    "task_done": TaskDone,
    "invalid": Invalid,
    "no_solution": NoSolution,
    "failed": Failed,
    "cancelled": Cancelled,
    "crash": Crash,
}
_KIND_OF: Final = {cls: kind for kind, cls in _KINDS.items()}


def encode(message: Message) -> dict[str, Plain]:
    """``message`` as plain data: ``{"kind": ..., "body": ...}``."""
    return {"kind": _KIND_OF[type(message)], "body": to_plain(message)}


def decode(data: object) -> Message:
    """The message that :func:`encode` made ``data`` of; raises :class:`WireError` for
    anything else."""
    if not isinstance(data, dict) or set(data) != {"kind", "body"}:
        raise WireError("a message is a mapping of 'kind' and 'body'")
    cls = _KINDS.get(data["kind"]) if isinstance(data["kind"], str) else None
    if cls is None:
        raise WireError(f"unknown message kind {data['kind']!r}")
    return from_plain(cls, data["body"])


def decode_progress(data: object) -> SolveProgress:
    """The progress update in ``data``; raises :class:`WireError` for any other message."""
    message = decode(data)
    if not isinstance(message, Progress):
        raise WireError(f"expected a progress message, got {type(message).__name__}")
    return message.update


def decode_outcome(data: object) -> Outcome:
    """The outcome in ``data``; raises :class:`WireError` for any other message."""
    message = decode(data)
    if isinstance(message, Progress | TaskProgress):
        raise WireError("expected an outcome, got a progress message")
    return message


_EVENT_FIELDS: Final = frozenset({"key", "update", "worker"})
"""The fields of a progress event: the Dask scheduler adds the publishing worker's address."""


def progress_event(key: str, update: SolveProgress) -> dict[str, Plain]:
    """A progress event of the job whose task is ``key``, for a Dask event topic."""
    return {"key": key, "update": encode(Progress(update))}


def task_progress_event(key: str, data: bytes) -> dict[str, Plain]:
    """A progress event of the task whose Dask task is ``key``, for a Dask event topic."""
    return {"key": key, "update": encode(TaskProgress(data))}


def read_progress_event(event: object) -> tuple[str, SolveProgress]:
    """The task key and the update of a :func:`progress_event`; raises :class:`WireError` for
    anything else."""
    key, message = read_event(event)
    if not isinstance(message, Progress):
        raise WireError(f"expected a progress message, got {type(message).__name__}")
    return key, message.update


def read_event(event: object) -> tuple[str, Progress | TaskProgress]:
    """The task key and the message of a :func:`progress_event` or a
    :func:`task_progress_event`; raises :class:`WireError` for anything else."""
    if not isinstance(event, dict) or not {"key", "update"} <= set(event) <= _EVENT_FIELDS:
        raise WireError("a progress event is a mapping of 'key', 'update' (and 'worker')")
    key = event["key"]
    if not isinstance(key, str):
        raise WireError(f"the key of a progress event is a string, not {type(key).__name__}")
    message = decode(event["update"])
    if not isinstance(message, Progress | TaskProgress):
        raise WireError(f"expected a progress message, got {type(message).__name__}")
    return key, message


def capture(solve: Callable[[], Solution]) -> Outcome:
    """Call ``solve`` and say how it ended, whatever it raised."""
    return _capture(lambda: Solved(solve()))


def capture_task(run: Callable[[], bytes]) -> Outcome:
    """Call a task's ``run`` and say how it ended, whatever it raised."""

    def done() -> TaskDone:
        data = run()
        if not isinstance(data, bytes):
            raise TypeError(f"a task returns bytes, not {type(data).__name__}")
        return TaskDone(data)

    return _capture(done)


def _capture(run: Callable[[], Solved | TaskDone]) -> Outcome:
    try:
        return run()
    except NoSolutionError as exc:
        return NoSolution(exc.reason, str(exc))
    except InvalidModelError as exc:
        return Invalid(exc.violations)
    except SolverError as exc:
        return Failed(str(exc))
    except CancelledError:
        return Cancelled()
    except BaseException:
        return Crash(traceback.format_exc())


def rebuild(
    outcome: Outcome, job_id: int, *, task: bool = False
) -> Solution | bytes | BaseException:
    """The solution of ``outcome`` (``task``: the task's result bytes), or the exception that
    the caller of job ``job_id`` gets: the engine's errors as raised in the worker,
    :class:`CancelledError`, and a :class:`SolverError` with a short message for a crash
    (logged with its traceback) or an outcome of the wrong kind."""
    match outcome:
        case Solved(solution) if not task:
            return solution
        case TaskDone(data) if task:
            return data
        case Solved() | TaskDone():
            log.error("job %d: a %s outcome for a %s", job_id, type(outcome).__name__,
                      "task" if task else "solve")  # fmt: skip
            return SolverError(CRASH_MESSAGE)
        case Invalid(violations):
            return InvalidModelError(violations)
        case NoSolution(reason, message):
            try:
                return NoSolutionError(reason, message)
            except ValueError:  # an unknown reason
                return SolverError(message)
        case Failed(message):
            return SolverError(message)
        case Cancelled():
            return CancelledError()
        case Crash(text):
            log.error("solve job %d: worker failed:\n%s", job_id, text)
            return SolverError(CRASH_MESSAGE)
