"""Options of a solve, as a frozen dataclass."""

from __future__ import annotations

import dataclasses
import enum
import os
from dataclasses import dataclass

__all__ = [
    "AUTO_SOLVER_PROCESSES",
    "DEFAULT_GEODESIC_METERS_PER_SECOND",
    "SearchMode",
    "SolveOptions",
    "available_cores",
    "resolve_solver_processes",
]

DEFAULT_GEODESIC_METERS_PER_SECOND = 10.0
"""Speed for geodesic travel times when neither the request nor the server sets one (36 km/h)."""

AUTO_SOLVER_PROCESSES = 0
"""``SolveOptions.solver_processes`` value for "as many as the cores available to this solve"
(see :func:`resolve_solver_processes`)."""


class SearchMode(enum.IntEnum):
    """How to spend the time budget; values equal ``OptimizeToursRequest.SearchMode``."""

    RETURN_FAST = 1
    CONSUME_ALL_AVAILABLE_TIME = 2


@dataclass(frozen=True)
class SolveOptions:
    """How to solve.

    ``time_limit_s`` is the whole budget (matrices included); ``geodesic_meters_per_second``
    is the speed used for geodesic travel durations when the model has no client matrices.
    ``backend``: ``"auto"`` (the best measured backend that supports the model, see
    :mod:`engine.backends`), ``"ortools"`` or ``"pyvrp"``. ``first_solution_strategy`` and
    ``local_search_metaheuristic`` override OR-Tools' measured defaults (enum names such as
    ``"SAVINGS"`` or ``"GUIDED_LOCAL_SEARCH"``; unknown names are rejected); with ``auto`` they
    select OR-Tools.

    ``solver_processes`` > 1 runs a portfolio: that many searches in parallel processes
    (different seeds or strategies), keeping the best solution; :data:`AUTO_SOLVER_PROCESSES`
    (0) lets whatever runs the solve choose from the cores it has free
    (:func:`resolve_solver_processes`). ``seed`` seeds the randomised
    searches; with ``iteration_limit`` (PyVRP iterations, OR-Tools solutions) the same model,
    seed and options give the same routes.
    """

    time_limit_s: float = 10.0
    search_mode: SearchMode = SearchMode.RETURN_FAST
    geodesic_meters_per_second: float = DEFAULT_GEODESIC_METERS_PER_SECOND
    backend: str = "auto"
    first_solution_strategy: str | None = None
    local_search_metaheuristic: str | None = None
    use_geodesic_distances: bool = False
    """Geodesic travel even when a road network is available."""
    populate_polylines: bool = False
    """Draw route geometry (road travel only)."""
    solver_processes: int = 1
    seed: int = 0
    iteration_limit: int | None = None
    decompose: bool | None = None
    """PyVRP over several processes: split one search, re-solving groups of nearby routes in
    parallel (True), never (False), or by size (None: from
    :data:`engine.backends.pyvrp.split.SPLIT_MIN_CLIENTS` clients on); see
    :func:`engine.backends.pyvrp.split.splits`."""
    precheck_only: bool = False
    """Stop after the pre-check (``DETECT_SOME_INFEASIBLE_SHIPMENTS``): no search; the solution
    has no routes and every shipment skipped, with the pre-check's reasons where it proves
    one."""
    warm_start: bool = True
    """When ``auto`` runs OR-Tools because of a feature PyVRP lacks, start OR-Tools from PyVRP's
    routes on a nearby model (:mod:`engine.warmstart`) when possible."""

    def __post_init__(self) -> None:
        if not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s must be positive, got {self.time_limit_s}")
        if not self.geodesic_meters_per_second > 0:
            speed = self.geodesic_meters_per_second
            raise ValueError(f"geodesic_meters_per_second must be positive, got {speed}")
        if self.solver_processes < 0:
            raise ValueError(
                f"solver_processes must be 0 (auto) or positive, got {self.solver_processes}"
            )
        if self.seed < 0:
            raise ValueError(f"seed must not be negative, got {self.seed}")
        if self.iteration_limit is not None and self.iteration_limit < 1:
            raise ValueError(f"iteration_limit must be positive, got {self.iteration_limit}")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_solver_processes(options: SolveOptions, *, idle_cores: int, cores: int) -> SolveOptions:
    """``options`` with an auto ``solver_processes`` made a number; explicit numbers are kept.

    A time-bound search gets the ``idle_cores`` (those no running solve uses), at least one. A
    search with an ``iteration_limit`` must give the same routes whatever the load, so it gets
    all ``cores`` (a fixed number where it runs) instead.
    """
    if options.solver_processes != AUTO_SOLVER_PROCESSES:
        return options
    n = cores if options.iteration_limit is not None else idle_cores
    return dataclasses.replace(options, solver_processes=max(1, n))
