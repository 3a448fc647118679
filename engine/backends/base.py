"""The interface between the engine and a solver backend.

A backend gets the integer :class:`~engine.problem.Problem` (shipments that the pre-check
proved unservable are already marked), a :class:`StopCriterion` and a progress callback, and
returns one :class:`RoutePlan` per vehicle. Turning plans into a
:class:`~engine.solution.Solution` (transitions, loads, costs, metrics) is backend independent
(:mod:`engine.evaluate`). The values a search gets and reports live in :mod:`engine.search`
(re-exported here), so that the parallel runner can use them without knowing backends.
"""

from __future__ import annotations

from typing import Protocol

from engine.problem import Problem
from engine.search import Progress, ProgressCallback, RoutePlan, StopCriterion

__all__ = ["Backend", "Progress", "ProgressCallback", "RoutePlan", "StopCriterion"]


class Backend(Protocol):
    """A solver: ``name`` (as in :data:`engine.backends.BACKENDS`) and :meth:`solve`."""

    name: str

    def solve(
        self, problem: Problem, stop: StopCriterion, on_progress: ProgressCallback | None = None
    ) -> list[RoutePlan]:
        """One plan per vehicle of ``problem.model``, in vehicle order."""
        ...
