"""The engine's error taxonomy. Each subclasses a built-in so generic handlers still catch it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EngineError",
    "ExecutorFullError",
    "ExecutorShutdownError",
    "FieldViolation",
    "InvalidModelError",
    "NoSolutionError",
    "SolverError",
    "WorkerLostError",
]


@dataclass(frozen=True)
class FieldViolation:
    """One problem in the input: ``field`` is a path in API names relative to the model
    (``shipments[3].deliveries[0].time_windows[0]``), ``description`` says what is wrong."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}" if self.field else self.description


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidModelError(EngineError, ValueError):
    """The model is invalid; ``violations`` lists every problem found."""

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations: tuple[FieldViolation, ...] = tuple(violations)
        shown = "; ".join(str(v) for v in self.violations[:5])
        more = len(self.violations) - 5
        super().__init__(shown + (f" (and {more} more)" if more > 0 else ""))

    def __reduce__(self) -> tuple[type[InvalidModelError], tuple[tuple[FieldViolation, ...]]]:
        # Pickled with its violations (a parallel search's process sends it to the parent).
        return (type(self), (self.violations,))


class SolverError(EngineError, RuntimeError):
    """The solver backend failed in a way that is not the caller's fault."""


class WorkerLostError(SolverError):
    """The process that ran the solve died (killed, out of memory, crashed) without an outcome:
    running it again may succeed."""


class ExecutorFullError(EngineError, RuntimeError):
    """Every solve slot is taken and the wait queue is full: try again later (back-pressure)."""


class ExecutorShutdownError(EngineError, RuntimeError):
    """The solve executor is shutting down and accepts no new solves."""


class NoSolutionError(EngineError):
    """The search ended without any solution.

    ``reason`` is ``"time_limit"`` (the budget ran out before a first solution: allow more
    time), ``"interrupted"`` (stopped from outside before a first solution) or
    ``"infeasible"`` (the model's hard constraints, such as break windows against vehicle
    windows, admit no routes even with every shipment skipped).
    """

    REASONS = ("time_limit", "interrupted", "infeasible")

    def __init__(self, reason: str, message: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        self.reason = reason
        super().__init__(message)

    def __reduce__(self) -> tuple[type[NoSolutionError], tuple[str, str]]:
        return (NoSolutionError, (self.reason, str(self)))
