"""What a running solve reports: one :class:`SolveProgress` per improving solution.

A backend reports each solution it finds (:class:`~engine.search.Progress`, with the
routes when it can). :class:`ProgressRelay` turns that into :class:`SolveProgress` updates for
a caller of :func:`engine.solve`: only strictly improving solutions (some metaheuristics
report solutions that are better only for their own augmented objective), with the number of
used vehicles and skipped shipments, and now and then (at most every ``solutions_every_s``
seconds, always for the first) the solution itself, evaluated like a final one but with status
``INTERRUPTED``: the best so far, should the solve be stopped the hard way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.search import Progress, ProgressCallback, RoutePlan
from engine.solution import Solution

__all__ = ["ProgressRelay", "SolveProgress"]


@dataclass(frozen=True)
class SolveProgress:
    """The best solution so far of a running solve.

    ``cost`` is the solver's objective (currency units, approximate: the final response's
    ``total_cost`` is computed exactly; a skipped mandatory shipment costs the solver a large
    penalty). ``used_vehicles`` and ``skipped_shipments`` are -1 when the backend does not report
    routes. ``solution`` is set only on some updates (see the module docstring)."""

    elapsed_s: float
    cost: float
    solutions: int
    used_vehicles: int = -1
    skipped_shipments: int = -1
    solution: Solution | None = None


class ProgressRelay:
    """A backend progress callback that forwards improving solutions to ``on_update``.

    ``shipment_of_stop[i]`` is the shipment of visit stop ``i``; ``evaluate`` turns routes into
    a :class:`Solution`; ``also`` (optional) gets every backend report unchanged."""

    def __init__(
        self,
        on_update: Callable[[SolveProgress], None],
        *,
        n_shipments: int,
        shipment_of_stop: Sequence[int],
        evaluate: Callable[[Sequence[RoutePlan]], Solution],
        solutions_every_s: float,
        also: ProgressCallback | None = None,
    ) -> None:
        self._on_update = on_update
        self._n_shipments = n_shipments
        self._shipment_of_stop = shipment_of_stop
        self._evaluate = evaluate
        self._every_s = solutions_every_s
        self._also = also
        self._best: float | None = None
        self._evaluated_at: float | None = None

    def __call__(self, progress: Progress) -> None:
        if self._also is not None:
            self._also(progress)
        if self._best is not None and not progress.objective < self._best:
            return
        self._best = progress.objective
        if progress.plans is None:
            self._on_update(
                SolveProgress(progress.elapsed_s, progress.objective, progress.solutions)
            )
            return
        plans = progress.plans
        performed = {self._shipment_of_stop[stop] for plan in plans for stop in plan.stops}
        solution = None
        now = time.monotonic()
        if self._evaluated_at is None or now - self._evaluated_at >= self._every_s:
            solution = self._evaluate(plans)
            self._evaluated_at = now
        self._on_update(
            SolveProgress(
                elapsed_s=progress.elapsed_s,
                cost=progress.objective,
                solutions=progress.solutions,
                used_vehicles=sum(1 for plan in plans if plan.stops),
                skipped_shipments=self._n_shipments - len(performed),
                solution=solution,
            )
        )
