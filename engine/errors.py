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
    "SolverError",
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


class SolverError(EngineError, RuntimeError):
    """The solver backend failed in a way that is not the caller's fault."""


class ExecutorFullError(EngineError, RuntimeError):
    """Every solve slot is taken and the wait queue is full: try again later (back-pressure)."""


class ExecutorShutdownError(EngineError, RuntimeError):
    """The solve executor is shutting down and accepts no new solves."""
