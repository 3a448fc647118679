"""PyVRP backend (iterated local search): :class:`PyVRPBackend`.

The package's modules: :mod:`~engine.backends.pyvrp.data` maps the integer problem onto
PyVRP's data model and solutions back; :mod:`~engine.backends.pyvrp.stop` has the stopping
criteria; :mod:`~engine.backends.pyvrp.search` runs one search;
:mod:`~engine.backends.pyvrp.split` splits one search over several processes.

The features PyVRP cannot express are listed in :data:`UNSUPPORTED`; the engine does not pick
this backend for a model that uses one.
"""

from __future__ import annotations

import logging
import time

from engine.backends.base import ProgressCallback, RoutePlan, StopCriterion
from engine.backends.features import REOPTIMISATION, RULES_AND_COSTS
from engine.backends.pyvrp.data import build_data, injected_initial_solution, route_plans
from engine.backends.pyvrp.search import run_search, search_params
from engine.backends.pyvrp.split import SplitSearch, splittable
from engine.backends.pyvrp.stop import ReportProgress, search_criterion
from engine.errors import NoSolutionError
from engine.options import SearchMode
from engine.problem import Problem

__all__ = ["UNSUPPORTED", "PyVRPBackend"]

log = logging.getLogger(__name__)

UNSUPPORTED = frozenset(
    {
        "pair_alternatives",
        "pair_multiple_time_windows",
        "pair_soft_time_windows",
        "soft_vehicle_time_windows",
        "multiple_vehicle_time_windows",
        "late_end_window_start",
        "breaks",
        "allowed_vehicle_classes",
        "distance_limit_with_time_cost",
    }
    | RULES_AND_COSTS
    | REOPTIMISATION
)
"""Features (:mod:`engine.backends.features`) this backend cannot express."""

RETURN_FAST_NO_IMPROVEMENT = 2_000
"""In RETURN_FAST mode the search stops after this many iterations without improvement."""


class PyVRPBackend:
    """Solves a :class:`Problem` with PyVRP's iterated local search.

    ``seed`` seeds PyVRP's random number stream; with ``iteration_limit`` the result is fully
    determined by the problem and the seed. With ``give_up_fraction``, the search stops once
    that fraction of its time has passed without a feasible solution (so that another backend
    can take over). With ``processes`` > 1 (time-bound searches of splittable problems only,
    see :func:`engine.backends.pyvrp.split.splits`), the search runs in that many processes:
    :class:`engine.backends.pyvrp.split.SplitSearch`.
    """

    name = "pyvrp"

    def __init__(
        self,
        seed: int = 0,
        iteration_limit: int | None = None,
        give_up_fraction: float | None = None,
        processes: int = 1,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.seed = seed
        self.iteration_limit = iteration_limit
        self.give_up_fraction = give_up_fraction
        self.processes = processes

    def solve(
        self, problem: Problem, stop: StopCriterion, on_progress: ProgressCallback | None = None
    ) -> list[RoutePlan]:
        built = build_data(problem)
        n_vehicles = len(problem.model.vehicles)
        started = time.monotonic()
        reporter = ReportProgress(
            built.scale.prizes,
            started,
            on_progress,
            lambda solution: route_plans(built, solution, n_vehicles),
            built.prize_offset,
        )
        no_improvement = None
        if stop.search_mode == SearchMode.RETURN_FAST:
            no_improvement = RETURN_FAST_NO_IMPROVEMENT
        initial = injected_initial_solution(built, problem)
        split_ok = initial is None and self.iteration_limit is None
        if self.processes > 1 and splittable(built.data) and split_ok:
            split = SplitSearch(built, reporter, no_improvement, stop, self.seed, self.processes)
            best = split.run()
        else:
            give_up_at = None
            if self.give_up_fraction is not None:
                give_up_at = started + self.give_up_fraction * stop.remaining_s()
            criterion = search_criterion(
                stop,
                reporter,
                iteration_limit=self.iteration_limit,
                no_improvement=no_improvement,
                give_up_at=give_up_at,
            )
            params = search_params(built.scale, reporter.tracker)
            result = run_search(built.data, criterion, self.seed, params, initial)
            best = result.best
            log.debug(
                "pyvrp iterations=%d feasible=%s cost=%s time=%.3fs",
                result.num_iterations,
                best.is_feasible(),
                result.cost(),
                time.monotonic() - started,
            )
        if not best.is_feasible():
            elapsed = time.monotonic() - started
            if stop.interrupted:
                raise NoSolutionError("interrupted", "the solve was stopped before a solution")
            raise NoSolutionError(
                "time_limit" if stop.remaining_s() <= 0.01 else "infeasible",
                f"PyVRP found no solution serving every mandatory shipment in {elapsed:.2f} s",
            )
        return route_plans(built, best, n_vehicles)
