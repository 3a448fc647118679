"""How long a study may still work: its stop flag (cancellation) and its deadline (the
study's time budget), checked in every loop of the planner.

Every piece of work a study does — each routing solve, each MIP of the screening, of the local
search's neighbour ranking and of the capacity repair — asks its :class:`Budget` first: once
it is :meth:`~Budget.stopped`, :meth:`~Budget.check` raises :class:`StoppedError` instead of
starting, and the work that does start gets at most the time that is left
(:meth:`~Budget.remaining`). A routing solve also polls the stop flag while it searches, and
a MIP is interrupted when the flag is set
(:func:`planning.backends.ortools_mip.solve_facility_location`).
The evaluation and the search catch :class:`StoppedError` and return what was complete: the layouts
routed so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from planning.results import ShouldStop

__all__ = ["Budget", "StoppedError"]


class StoppedError(Exception):
    """The study was cancelled or its time budget is spent: the work was not started (or was
    cut short and its result would be incomplete)."""


@dataclass(frozen=True)
class Budget:
    """``should_stop`` (None: never asked to stop) and ``deadline`` (``time.monotonic()``;
    None: no deadline)."""

    should_stop: ShouldStop | None = None
    deadline: float | None = None

    @classmethod
    def of(
        cls,
        should_stop: ShouldStop | None = None,
        time_budget_s: float | None = None,
        deadline: float | None = None,
    ) -> Budget:
        """The budget that stops at ``should_stop``, ``time_budget_s`` seconds from now or at
        ``deadline``, whichever comes first."""
        if time_budget_s is not None:
            end = time.monotonic() + time_budget_s
            deadline = end if deadline is None else min(deadline, end)
        return cls(should_stop, deadline)

    def late(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    def stopped(self) -> bool:
        """Whether no further work may start (cancelled, or the deadline has passed)."""
        return self.late() or (self.should_stop is not None and self.should_stop())

    def check(self) -> None:
        """Raise :class:`StoppedError` once :meth:`stopped`."""
        if self.stopped():
            raise StoppedError("the study was stopped" if not self.late() else "time budget spent")

    def remaining(self, limit_s: float) -> float:
        """``limit_s``, or less when the deadline comes first (never negative)."""
        if self.deadline is None:
            return limit_s
        return max(0.0, min(limit_s, self.deadline - time.monotonic()))

    def interrupted(self) -> bool:
        """Whether the stop flag (not the deadline) is set."""
        return self.should_stop is not None and self.should_stop()
