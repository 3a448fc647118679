"""The stopping criteria of the PyVRP backend, one at a time and composed."""

from __future__ import annotations

import time

import pytest

from engine.backends.pyvrp.stop import (
    INTERRUPT_GRACE_S,
    Deadline,
    FirstOf,
    GiveUp,
    MaxIterations,
    NoImprovement,
    ReportProgress,
    StopRequested,
    search_criterion,
)
from engine.search import Progress, StopCriterion

INFEASIBLE = float(2**63 - 1)  # PyVRP's cost of an infeasible best solution


def test_max_iterations_stops_after_the_limit() -> None:
    criterion = MaxIterations(3)
    assert [criterion(1.0) for _ in range(4)] == [False, False, False, True]


def test_no_improvement_counts_iterations_since_the_last_better_cost() -> None:
    criterion = NoImprovement(2)
    assert [criterion(c) for c in (5.0, 5.0, 4.0, 4.0, 4.0, 4.0)] == [
        False,
        False,
        False,
        False,
        False,
        True,
    ]


def test_deadline_and_give_up() -> None:
    assert Deadline(time.monotonic() - 1)(1.0)
    assert not Deadline(time.monotonic() + 60)(1.0)
    past = time.monotonic() - 1
    assert GiveUp(past, found=lambda: False)(1.0)
    assert not GiveUp(past, found=lambda: True)(1.0)
    assert not GiveUp(time.monotonic() + 60, found=lambda: False)(1.0)


def test_stop_requested_records_the_interruption_and_waits_for_a_first_solution() -> None:
    asked = False
    stop = StopCriterion(deadline=time.monotonic() + 60, should_stop=lambda: asked)
    found = False
    criterion = StopRequested(stop, grace_s=0.05, found=lambda: found)
    assert not criterion(1.0)
    asked = True
    assert not criterion(1.0)  # no solution yet: within the grace
    assert stop.interrupted
    found = True
    assert criterion(1.0)
    late = StopRequested(StopCriterion(deadline=time.monotonic() + 60, should_stop=lambda: True))
    assert late(1.0)  # no grace by default
    grace = StopRequested(stop, grace_s=0.01, found=lambda: False)
    assert not grace(1.0)
    time.sleep(0.02)
    assert grace(1.0)  # the grace is over


def test_first_of_stops_when_any_criterion_does() -> None:
    assert not FirstOf([MaxIterations(5), NoImprovement(5)])(1.0)
    assert FirstOf([MaxIterations(5), Deadline(time.monotonic() - 1)])(1.0)


def test_report_progress_reports_improving_feasible_costs_only() -> None:
    events: list[Progress] = []
    reporter = ReportProgress(scale=10.0, started=time.monotonic(), on_progress=events.append)
    for cost in (INFEASIBLE, 500.0, 600.0, 400.0):
        assert not reporter(cost)
    assert [e.objective for e in events] == [50.0, 40.0]
    assert [e.solutions for e in events] == [1, 2]
    assert reporter.found()
    relayed = Progress(1.0, 30.0, 7)
    reporter.count_elsewhere(relayed)
    assert events[-1] is relayed
    assert reporter.solutions == 3
    child = reporter.like(events.append)
    assert (child.scale, child.started, child.solutions) == (10.0, reporter.started, 0)


def test_search_criterion_composes_the_limits_in_order() -> None:
    stop = StopCriterion(deadline=time.monotonic() + 60)
    reporter = ReportProgress(scale=1.0, started=time.monotonic(), on_progress=None)
    criterion = search_criterion(stop, reporter, iteration_limit=2)
    assert [criterion(c) for c in (3.0, 2.0, 1.0)] == [False, False, True]
    assert reporter.solutions == 3  # the reporter sees every cost before the limits stop

    expired = StopCriterion(deadline=time.monotonic() - 1)
    assert search_criterion(expired, ReportProgress(1.0, 0.0, None))(1.0)

    asked = StopCriterion(deadline=time.monotonic() + 60, should_stop=lambda: True)
    waiting = search_criterion(asked, ReportProgress(1.0, 0.0, None))
    assert not waiting(INFEASIBLE)  # stopped from outside, but no solution yet
    assert waiting(5.0)  # a first solution: stop now
    assert INTERRUPT_GRACE_S > 0


@pytest.mark.parametrize("found", [False, True])
def test_search_criterion_gives_up_only_without_a_solution(found: bool) -> None:
    stop = StopCriterion(deadline=time.monotonic() + 60)
    reporter = ReportProgress(1.0, 0.0, None)
    criterion = search_criterion(stop, reporter, give_up_at=time.monotonic() - 1)
    assert criterion(5.0 if found else INFEASIBLE) is not found
