"""A portfolio: several backends search one problem side by side, each in its own process
(:func:`engine.parallel.run_parallel`)."""

from __future__ import annotations

from collections.abc import Sequence

from engine.backends.base import Backend, ProgressCallback, RoutePlan, StopCriterion
from engine.parallel import Task, TaskResult, run_parallel
from engine.problem import Problem

__all__ = ["MemberResult", "run_portfolio"]

MemberResult = TaskResult[list[RoutePlan]]
"""What one portfolio member returned: plans, or the error that stopped it."""


def run_portfolio(
    members: Sequence[Backend],
    problem: Problem,
    stop: StopCriterion,
    on_progress: ProgressCallback | None = None,
) -> list[MemberResult]:
    """Run every member on ``problem`` until ``stop`` says so; one result (plans) per member,
    in member order. Sets ``stop.interrupted`` when ``should_stop`` ended the search."""

    def task(backend: Backend) -> Task[list[RoutePlan]]:
        return lambda member_stop, progress: backend.solve(problem, member_stop, progress)

    named = [(getattr(m, "name", type(m).__name__), task(m)) for m in members]
    return run_parallel(named, stop, on_progress)
