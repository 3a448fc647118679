"""Stopping criteria for PyVRP's search, composed like PyVRP's own :mod:`pyvrp.stop`: each is
a callable of the best cost so far that returns True when the search must stop, and
:class:`FirstOf` stops when any of its criteria does. :class:`ReportProgress` rides along as
a criterion that never stops the search but reports each improving feasible solution.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import pyvrp

from engine.backends.base import Progress, ProgressCallback, RoutePlan, StopCriterion

__all__ = [
    "INTERRUPT_GRACE_S",
    "BestTracker",
    "Criterion",
    "Deadline",
    "FirstOf",
    "GiveUp",
    "MaxIterations",
    "NoImprovement",
    "ReportProgress",
    "StopRequested",
    "search_criterion",
]

INTERRUPT_GRACE_S = 0.5
"""After an external stop, how long the search may go on to find a first feasible solution."""

_INFEASIBLE_COST = int(np.iinfo(np.int64).max)
"""The cost PyVRP reports for an infeasible best solution."""


class Criterion(Protocol):
    """A PyVRP stopping criterion."""

    def __call__(self, best_cost: float) -> bool: ...


class FirstOf:
    """Stops as soon as one of ``criteria`` does (asked in order, like
    ``pyvrp.stop.MultipleCriteria``)."""

    def __init__(self, criteria: Sequence[Criterion]) -> None:
        self.criteria = list(criteria)

    def __call__(self, best_cost: float) -> bool:
        return any(criterion(best_cost) for criterion in self.criteria)


class Deadline:
    """Stops at a ``time.monotonic()`` value."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, best_cost: float) -> bool:
        return time.monotonic() >= self.deadline


class MaxIterations:
    """Stops after ``limit`` iterations."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.iterations = 0

    def __call__(self, best_cost: float) -> bool:
        self.iterations += 1
        return self.iterations > self.limit


class NoImprovement:
    """Stops after more than ``limit`` iterations in a row without a better best cost."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.best = math.inf
        self.since_improvement = 0

    def __call__(self, best_cost: float) -> bool:
        if best_cost < self.best:
            self.best = best_cost
            self.since_improvement = 0
        else:
            self.since_improvement += 1
        return self.since_improvement > self.limit


class StopRequested:
    """Stops once ``stop.poll()`` says so (which records the interruption in ``stop``); with
    ``grace_s``, goes on up to that long while ``found()`` says there is no feasible solution
    yet."""

    def __init__(
        self,
        stop: StopCriterion,
        grace_s: float = 0.0,
        found: Callable[[], bool] = lambda: True,
    ) -> None:
        self.stop = stop
        self.grace_s = grace_s
        self.found = found
        self.requested_at: float | None = None

    def __call__(self, best_cost: float) -> bool:
        if self.requested_at is None:
            if not self.stop.poll():
                return False
            self.requested_at = time.monotonic()
        return self.found() or time.monotonic() - self.requested_at > self.grace_s


class GiveUp:
    """Stops at ``at`` (a ``time.monotonic()`` value) when ``found()`` says there is still no
    feasible solution, so that another backend can take over."""

    def __init__(self, at: float, found: Callable[[], bool]) -> None:
        self.at = at
        self.found = found

    def __call__(self, best_cost: float) -> bool:
        return not self.found() and time.monotonic() > self.at


class BestTracker(pyvrp.IteratedLocalSearchCallbacks):
    """Keeps the search's current best feasible solution (PyVRP calls ``on_best`` before the
    stopping criterion sees its cost)."""

    def __init__(self) -> None:
        self.best: pyvrp.Solution | None = None

    def on_start(self, ils: pyvrp.IteratedLocalSearch) -> None:
        initial = ils.initial_solution
        self.best = initial if initial.is_feasible() else None

    def on_best(self, best: pyvrp.Solution) -> None:
        self.best = best if best.is_feasible() else None


class ReportProgress:
    """Never stops the search; counts the improving feasible solutions and reports each to
    ``on_progress`` (objective in currency: the cost less ``offset`` divided by ``scale``;
    ``offset``: the prizes a solution leaves uncollected whatever it does, see
    :class:`engine.backends.pyvrp.data.PyVRPData`), with its routes (``routes_of`` the
    :class:`BestTracker`'s solution) when given."""

    def __init__(
        self,
        scale: float,
        started: float,
        on_progress: ProgressCallback | None,
        routes_of: Callable[[pyvrp.Solution], list[RoutePlan]] | None = None,
        offset: float = 0.0,
    ) -> None:
        self.scale = scale
        self.offset = offset
        self.started = started
        self.on_progress = on_progress
        self.routes_of = routes_of
        self.tracker = BestTracker()
        self.best = math.inf
        self.solutions = 0
        """Feasible improvements so far (those found elsewhere included, see
        :meth:`count_elsewhere`)."""

    def __call__(self, best_cost: float) -> bool:
        if best_cost >= self.best:
            return False
        self.best = best_cost
        if best_cost < _INFEASIBLE_COST:
            self.solutions += 1
            if self.on_progress is not None:
                elapsed = time.monotonic() - self.started
                latest = self.tracker.best
                plans = None
                if self.routes_of is not None and latest is not None:
                    plans = tuple(self.routes_of(latest))
                objective = (best_cost - self.offset) / self.scale
                self.on_progress(Progress(elapsed, objective, self.solutions, plans))
        return False

    def like(self, on_progress: ProgressCallback) -> ReportProgress:
        """A new reporter with this one's scale, start and routes, reporting to
        ``on_progress`` (for a search in another process)."""
        return ReportProgress(self.scale, self.started, on_progress, self.routes_of, self.offset)

    def found(self) -> bool:
        """Whether a feasible solution has been reported."""
        return self.solutions > 0

    def improved(self, solution: pyvrp.Solution, cost: float) -> None:
        """Report ``solution`` of ``cost``, found outside a search this criterion watches."""
        self.tracker.best = solution
        self(cost)

    def count_elsewhere(self, progress: Progress) -> None:
        """Pass on a report of another process's search, counting it."""
        self.solutions += 1
        if self.on_progress is not None:
            self.on_progress(progress)


def search_criterion(
    stop: StopCriterion,
    reporter: ReportProgress,
    *,
    iteration_limit: int | None = None,
    no_improvement: int | None = None,
    give_up_at: float | None = None,
) -> FirstOf:
    """The criterion of a search: report progress; stop after ``iteration_limit`` iterations,
    after ``no_improvement`` iterations without improvement, at ``stop``'s deadline, when
    ``stop`` is polled true (after a grace of :data:`INTERRUPT_GRACE_S` without a solution),
    or at ``give_up_at`` without a solution."""
    criteria: list[Criterion] = [reporter]
    if iteration_limit is not None:
        criteria.append(MaxIterations(iteration_limit))
    if no_improvement is not None:
        criteria.append(NoImprovement(no_improvement))
    criteria.append(Deadline(stop.deadline))
    criteria.append(StopRequested(stop, INTERRUPT_GRACE_S, reporter.found))
    if give_up_at is not None:
        criteria.append(GiveUp(give_up_at, reporter.found))
    return FirstOf(criteria)
