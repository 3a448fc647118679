"""What a search gets and reports, whoever runs it: a :class:`StopCriterion` to stop by, a
:class:`Progress` on each improving solution, one :class:`RoutePlan` per vehicle as the result.

These are plain values shared by the backends (:mod:`engine.backends.base`) and the parallel
runner (:mod:`engine.parallel`), which knows nothing of backends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.options import SearchMode

__all__ = ["Progress", "ProgressCallback", "RoutePlan", "StopCriterion"]


@dataclass(frozen=True)
class RoutePlan:
    """A vehicle's route as integer seconds from the horizon start.

    ``stops`` are visit stops in order (empty for an unused vehicle); ``visit_start_s`` their
    start times; ``breaks_s`` ``(start, duration)`` pairs.
    """

    vehicle: int
    stops: tuple[int, ...] = ()
    start_s: int = 0
    visit_start_s: tuple[int, ...] = ()
    end_s: int = 0
    breaks_s: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Progress:
    """Reported on each improving solution: elapsed seconds and the solver's own objective
    (in currency units, approximate). ``plans``: the solution's routes (one per vehicle), when
    the backend can report them."""

    elapsed_s: float
    objective: float
    solutions: int
    plans: tuple[RoutePlan, ...] | None = None


@dataclass
class StopCriterion:
    """When to stop: a wall-clock deadline and an external ``should_stop`` poll."""

    deadline: float
    """``time.monotonic()`` value at which to stop."""
    search_mode: SearchMode = SearchMode.RETURN_FAST
    should_stop: Callable[[], bool] | None = None
    interrupted: bool = False
    """Set by the backend when it stopped because ``should_stop`` said so."""

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def poll(self) -> bool:
        """True when the search must stop now (records an interruption)."""
        if self.should_stop is not None and self.should_stop():
            self.interrupted = True
            return True
        return False


ProgressCallback = Callable[[Progress], None]
"""What a search calls with each :class:`Progress`."""
