"""``solve``: validate, build travel matrices, pre-check, run a backend, evaluate."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from engine.backends import get_backend
from engine.backends.base import Progress, RoutePlan, StopCriterion
from engine.evaluate import build_solution
from engine.matrix import build_stops, build_travel_matrices
from engine.model import ShipmentModel
from engine.options import SolveOptions
from engine.precheck import precheck
from engine.problem import Problem
from engine.progress import ProgressRelay, SolveProgress
from engine.roads import RoadContext
from engine.solution import SkipReason, Solution, SolveStatus
from engine.validation import check_model

__all__ = ["solve"]

log = logging.getLogger(__name__)

_EVALUATION_MARGIN_S = 0.05
"""Time kept back from the solver for building the response."""

_MIN_SEARCH_S = 0.1
"""The search gets at least this long, even when the matrices used up the budget, so that
a first solution is possible; a solve can therefore overrun a tiny budget by this much."""


def solve(
    model: ShipmentModel,
    options: SolveOptions | None = None,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    roads: RoadContext | None = None,
    on_update: Callable[[SolveProgress], None] | None = None,
    update_solutions_every_s: float = 1.0,
) -> Solution:
    """Solve ``model`` within ``options.time_limit_s`` (matrices included).

    Raises :class:`~engine.errors.InvalidModelError` listing every problem of an invalid model.
    ``should_stop`` is polled during the search: when it returns True the best solution so far
    is returned with status ``INTERRUPTED``. ``on_progress`` is called on each improving
    solution. With ``roads``, travel follows the road network (unless the model has its own
    matrices or ``options.use_geodesic_distances`` is set). ``on_update`` gets a
    :class:`~engine.progress.SolveProgress` on each strictly improving solution, with the
    evaluated solution at most every ``update_solutions_every_s`` seconds.
    """
    options = options or SolveOptions()
    started = time.monotonic()
    deadline = started + options.time_limit_s
    check_model(model)
    backend = get_backend(
        options.backend,
        first_solution_strategy=options.first_solution_strategy,
        local_search_metaheuristic=options.local_search_metaheuristic,
    )
    stops = build_stops(model)
    travel = build_travel_matrices(
        model,
        stops,
        geodesic_meters_per_second=options.geodesic_meters_per_second,
        roads=roads,
        use_geodesic=options.use_geodesic_distances,
    )
    matrix_time = time.monotonic() - started
    problem = Problem.build(model, stops, travel)
    skip_reasons = precheck(problem)
    solve_started = time.monotonic()
    remaining = deadline - solve_started
    stop = StopCriterion(
        deadline=max(
            deadline - min(_EVALUATION_MARGIN_S, 0.1 * max(remaining, 0.0)),
            solve_started + _MIN_SEARCH_S,
        ),
        search_mode=options.search_mode,
        should_stop=should_stop,
    )
    if on_update is not None:
        on_progress = _relay(
            problem, skip_reasons, backend.name, on_update, update_solutions_every_s, on_progress
        )
    if any(problem.routable):
        plans = backend.solve(problem, stop, on_progress)
        status = SolveStatus.INTERRUPTED if stop.interrupted else SolveStatus.SOLVED
    else:
        plans = [RoutePlan(vehicle=v) for v in range(len(model.vehicles))]
        status = SolveStatus.NOTHING_TO_ROUTE
    solve_time = time.monotonic() - solve_started
    geometry = roads.network if roads is not None and options.populate_polylines else None
    solution = build_solution(
        problem,
        plans,
        skip_reasons,
        status=status,
        backend=backend.name,
        matrix_time_s=matrix_time,
        solve_time_s=solve_time,
        solver_time_limit_s=max(0.0, remaining),
        geometry_network=geometry,
    )
    log.info(
        "solved shipments=%d vehicles=%d status=%s cost=%.3f skipped=%d matrix=%.3fs solve=%.3fs",
        len(model.shipments),
        len(model.vehicles),
        status.name,
        solution.metrics.total_cost,
        len(solution.skipped_shipments),
        matrix_time,
        solve_time,
    )
    return solution


def _relay(
    problem: Problem,
    skip_reasons: Mapping[int, tuple[SkipReason, ...]],
    backend: str,
    on_update: Callable[[SolveProgress], None],
    every_s: float,
    also: Callable[[Progress], None] | None,
) -> ProgressRelay:
    """The progress callback that evaluates intermediate solutions for ``on_update``."""
    started = time.monotonic()

    def evaluate(plans: Sequence[RoutePlan]) -> Solution:
        return build_solution(
            problem,
            plans,
            skip_reasons,
            status=SolveStatus.INTERRUPTED,
            backend=backend,
            matrix_time_s=0.0,
            solve_time_s=time.monotonic() - started,
            solver_time_limit_s=0.0,
        )

    return ProgressRelay(
        on_update,
        n_shipments=len(problem.model.shipments),
        shipment_of_stop=problem.stops.shipment.tolist(),
        evaluate=evaluate,
        solutions_every_s=every_s,
        also=also,
    )
