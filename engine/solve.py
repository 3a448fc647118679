"""``solve``: validate, build travel matrices, pre-check, run a backend, evaluate."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from engine.backends import BACKENDS, Backend, BackendChoice, choose_backend, get_backend
from engine.backends.base import ProgressCallback, RoutePlan, StopCriterion
from engine.backends.portfolio import run_portfolio
from engine.errors import InvalidModelError, NoSolutionError
from engine.evaluate import build_solution
from engine.injected import resolve, with_headings
from engine.model import ShipmentModel
from engine.options import SolveOptions, available_cores, resolve_solver_processes
from engine.precheck import precheck
from engine.problem import Problem
from engine.progress import ProgressRelay, SolveProgress
from engine.reoptimisation import constrain, refresh_plans
from engine.roads import RoadContext
from engine.solution import SkipReason, Solution, SolveStatus
from engine.travel import build_stops, build_travel_matrices
from engine.validation import check_model
from engine.warmstart import WARM_STARTABLE_UNDER, WarmStartedOrTools
from geodata.network import RoadNetwork

__all__ = ["COST_TIE_RELATIVE", "PRECHECK_BACKEND", "REFRESH_BACKEND", "better_solution", "solve"]

log = logging.getLogger(__name__)

_EVALUATION_MARGIN_S = 0.05
"""Time kept back from the solver for building the response."""

_MIN_SEARCH_S = 0.1
"""The search gets at least this long, even when the matrices used up the budget, so that
a first solution is possible; a solve can therefore overrun a tiny budget by this much."""


PRECHECK_BACKEND: Final = "precheck"
"""``Solution.backend`` of a ``precheck_only`` solve (no search ran)."""

REFRESH_BACKEND: Final = "refresh"
"""``Solution.backend`` of a ``refresh_details_routes`` request (no search ran)."""

_REFRESH_REASON = "refresh_details_routes: the given routes evaluated as they are, no search"


def solve(
    model: ShipmentModel,
    options: SolveOptions | None = None,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_progress: ProgressCallback | None = None,
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
    evaluated solution at most every ``update_solutions_every_s`` seconds. An auto
    ``options.solver_processes`` (0) runs one search per core this process may use; an executor
    resolves it before, from the cores its other solves leave free.
    """
    options = options or SolveOptions()
    cores = available_cores()
    options = resolve_solver_processes(options, idle_cores=cores, cores=cores)
    started = time.monotonic()
    deadline = started + options.time_limit_s
    check_model(model)
    _check_backend_options(options)
    if model.injected_first_solution_routes:
        # The injected routes are the start: no warm start from PyVRP's routes over them.
        # (Under an injected constraint the warm start solves the residual problem, and
        # starts from the injected routes when the constraint leaves none: engine.residual.)
        options = dataclasses.replace(options, warm_start=False)
    stops = build_stops(model)
    travel = build_travel_matrices(
        model,
        stops,
        geodesic_meters_per_second=options.geodesic_meters_per_second,
        roads=roads,
        use_geodesic=options.use_geodesic_distances,
    )
    matrix_time = time.monotonic() - started
    problem, skip_reasons = precheck(Problem.build(model, stops, travel))
    injected = with_headings(resolve(model), problem)  # avoid_u_turns: the best headings
    if injected.has_constraint:
        problem, skip_reasons, locks = constrain(problem, skip_reasons, injected)
        if locks:
            raise InvalidModelError(locks)
    if injected.refresh and not options.precheck_only:
        run = _Solve(problem, options, skip_reasons, deadline, should_stop, matrix_time)
        if roads is not None and options.populate_polylines:
            run.geometry = roads.network
        plans, violations = refresh_plans(problem, injected)
        if violations:
            raise InvalidModelError(violations)
        solution = run.finish(plans, SolveStatus.SOLVED, REFRESH_BACKEND, _REFRESH_REASON)
        _log_solved(solution, len(model.shipments), len(model.vehicles))
        return solution
    if options.precheck_only:
        run = _Solve(problem, options, skip_reasons, deadline, should_stop, matrix_time)
        plans = [RoutePlan(vehicle=v) for v in range(len(model.vehicles))]
        return run.finish(plans, SolveStatus.NOTHING_TO_ROUTE, PRECHECK_BACKEND, "precheck only")
    choice = _choose(problem, options)
    run = _Solve(problem, options, skip_reasons, deadline, should_stop, matrix_time)
    run.on_progress = on_progress
    if on_update is not None:
        run.on_progress = _relay(
            problem, skip_reasons, choice.name, on_update, update_solutions_every_s, on_progress
        )
    if roads is not None and options.populate_polylines:
        run.geometry = roads.network
    solution = run.solve(choice)
    _log_solved(solution, len(model.shipments), len(model.vehicles))
    return solution


class _Solve:
    """One solve once the problem is built: its stop criterion, the backend runs, and turning
    plans into the solution."""

    def __init__(
        self,
        problem: Problem,
        options: SolveOptions,
        skip_reasons: Mapping[int, tuple[SkipReason, ...]],
        deadline: float,
        should_stop: Callable[[], bool] | None,
        matrix_time_s: float,
    ) -> None:
        self.problem = problem
        self.options = options
        self.skip_reasons = skip_reasons
        self.matrix_time_s = matrix_time_s
        self.started = time.monotonic()
        self.remaining_s = deadline - self.started
        self.stop = StopCriterion(
            deadline=max(
                deadline - min(_EVALUATION_MARGIN_S, 0.1 * max(self.remaining_s, 0.0)),
                self.started + _MIN_SEARCH_S,
            ),
            search_mode=options.search_mode,
            should_stop=should_stop,
        )
        self.on_progress: ProgressCallback | None = None
        self.geometry: RoadNetwork | None = None
        """The road network to draw routes on (``populate_polylines``)."""

    def solve(self, choice: BackendChoice) -> Solution:
        """Run ``choice`` (a portfolio or a split search with several processes); under
        ``auto``, OR-Tools takes over when PyVRP finds no solution serving every mandatory
        shipment."""
        problem, options = self.problem, self.options
        used_anyway = any(v.used_if_route_is_empty for v in problem.model.vehicles)
        if not any(problem.routable) and not used_anyway:
            plans = [RoutePlan(vehicle=v) for v in range(len(problem.model.vehicles))]
            return self.finish(plans, SolveStatus.NOTHING_TO_ROUTE, choice.name, choice.reason)
        try:
            if options.solver_processes == 1:
                return self.run_single(choice)
            if _splits(problem, options, choice):
                return self.run_single(choice, options.solver_processes)
            return self.run_portfolio(choice)
        except NoSolutionError as exc:
            if not (choice.fallback and exc.reason == "infeasible"):
                raise
            # PyVRP treats every mandatory shipment as required; OR-Tools can skip the ones
            # that cannot be served together and report them.
            log.info("%s found no feasible solution; falling back to ortools", choice.name)
            reason = f"auto: {choice.name} found no solution serving every mandatory shipment"
            return self.run_single(BackendChoice("ortools", reason))

    def finish(
        self,
        plans: list[RoutePlan],
        status: SolveStatus,
        backend: str,
        reason: str,
        *,
        draw: bool = True,
    ) -> Solution:
        """The solution of ``plans``; with ``draw`` (the default), its routes are drawn on the
        road network when polylines were asked for."""
        return build_solution(
            self.problem,
            plans,
            self.skip_reasons,
            status=status,
            backend=backend,
            backend_reason=reason,
            solver_processes=self.options.solver_processes,
            matrix_time_s=self.matrix_time_s,
            solve_time_s=time.monotonic() - self.started,
            solver_time_limit_s=max(0.0, self.remaining_s),
            geometry_network=self.geometry if draw else None,
        )

    def status(self) -> SolveStatus:
        return SolveStatus.INTERRUPTED if self.stop.interrupted else SolveStatus.SOLVED

    def run_single(self, choice: BackendChoice, processes: int = 1) -> Solution:
        """One search of ``choice`` (split over ``processes`` processes)."""
        member = _member(choice, self.options, 0, processes)
        plans = member.solve(self.problem, self.stop, self.on_progress)
        reason = choice.reason
        if isinstance(member, WarmStartedOrTools):
            reason = f"{reason}; warm start: {member.outcome}"
        if processes > 1:
            reason = f"{reason}; one search split over {processes} processes"
        return self.finish(plans, self.status(), choice.name, reason)

    def run_portfolio(self, choice: BackendChoice) -> Solution:
        """Run ``options.solver_processes`` members of the chosen backend in parallel; keep the
        solution with the fewest skipped mandatory shipments, then the lowest cost. Ties go to
        the first member under an iteration limit (so that results repeat), otherwise to the
        member whose progress was reported last (so that the final routes are the last ones
        streamed)."""
        options = self.options
        k = options.solver_processes
        members = [_member(choice, options, i) for i in range(k)]
        results = run_portfolio(members, self.problem, self.stop, self.on_progress)
        status = self.status()
        best: Solution | None = None
        best_plans: list[RoutePlan] = []
        best_leading = False
        winner = -1
        for r in results:
            if r.value is None:
                continue
            # Members are ranked without route geometry: only the winner's is drawn.
            candidate = self.finish(r.value, status, choice.name, choice.reason, draw=False)
            leading = r.leading and options.iteration_limit is None
            if best is None or better_solution(candidate, leading, best, best_leading):
                best, best_plans, best_leading, winner = candidate, r.value, leading, r.index
        if best is None:
            raise _first_error([r.error for r in results])
        reason = f"{choice.reason}; best of {k} parallel searches (member {winner} won)"
        if self.geometry is not None:
            best = self.finish(best_plans, status, choice.name, choice.reason)
        return dataclasses.replace(best, backend_reason=reason)


COST_TIE_RELATIVE = 1e-9
"""Costs this close (relative) are a tie: solutions of equal objective may differ in the last
bits of their float costs (the same routes on other vehicles sum in another order)."""


def better_solution(candidate: Solution, leading: bool, best: Solution, best_leading: bool) -> bool:
    """Whether a portfolio member's solution beats the best so far: fewer skipped mandatory
    shipments, then a lower cost; on a tie, the leading member's (its progress was reported
    last, so the final routes are the last ones streamed)."""
    a, b = candidate.metrics, best.metrics
    if a.skipped_mandatory_shipment_count != b.skipped_mandatory_shipment_count:
        return a.skipped_mandatory_shipment_count < b.skipped_mandatory_shipment_count
    tolerance = COST_TIE_RELATIVE * max(1.0, abs(a.total_cost), abs(b.total_cost))
    if abs(a.total_cost - b.total_cost) > tolerance:
        return a.total_cost < b.total_cost
    return leading and not best_leading


def _first_error(errors: list[BaseException | None]) -> BaseException:
    """What to raise when no member found a solution: the first InvalidModelError (the model
    is the caller's fault whichever member found it), else the first NoSolutionError, else the
    first error."""
    for kind in (InvalidModelError, NoSolutionError):
        found = [e for e in errors if isinstance(e, kind)]
        if found:
            return found[0]
    return errors[0] or NoSolutionError("infeasible", "")


def _log_solved(solution: Solution, n_shipments: int, n_vehicles: int) -> None:
    log.info(
        "solved shipments=%d vehicles=%d status=%s backend=%s (%s) cost=%.3f skipped=%d "
        "matrix=%.3fs solve=%.3fs",
        n_shipments,
        n_vehicles,
        solution.status.name,
        solution.backend,
        solution.backend_reason,
        solution.metrics.total_cost,
        len(solution.skipped_shipments),
        solution.matrix_time_s,
        solution.solve_time_s,
    )


def _check_backend_options(options: SolveOptions) -> None:
    """Reject unknown backends and options that do not apply, before any work is done."""
    if options.backend not in BACKENDS:
        raise ValueError(f"unknown backend {options.backend!r}; known: {', '.join(BACKENDS)}")
    ortools_only = options.first_solution_strategy or options.local_search_metaheuristic
    if ortools_only and options.backend == "pyvrp":
        raise ValueError(
            "first_solution_strategy and local_search_metaheuristic apply to backend 'ortools'"
        )
    if ortools_only:
        get_backend(  # validates the enum names
            "ortools",
            first_solution_strategy=options.first_solution_strategy,
            local_search_metaheuristic=options.local_search_metaheuristic,
        )


def _choose(problem: Problem, options: SolveOptions) -> BackendChoice:
    if options.backend == "auto" and (
        options.first_solution_strategy or options.local_search_metaheuristic
    ):
        return BackendChoice("ortools", "auto: OR-Tools search options were given")
    return choose_backend(problem, options.backend)


PYVRP_GIVE_UP_FRACTION = 0.5
"""When ``auto`` chose PyVRP, it gives up after this fraction of the search time without a
solution that serves every mandatory shipment, and OR-Tools gets the rest."""

WARM_START_FRACTION = 0.6
"""Share of the search time PyVRP gets on the nearby model when OR-Tools is warm started.
Since the nearby model cuts the breaks out of its timeline, PyVRP's routes rarely need a repair
and more of its search pays: 0.6 against 0.3, 10 s, one process, sums of distance: GH200
``mixed`` 20168 against 20382-20515 (0.8: 20128), ``breaks`` 19858 against 19923; Solomon
``mixed`` 5749 against 5768, ``breaks`` equal (``benchmarks/RESULTS.md``)."""

PORTFOLIO_ORTOOLS_STRATEGIES = (None, "PARALLEL_CHEAPEST_INSERTION", "SAVINGS", "CHRISTOFIDES")
"""First-solution strategies of the OR-Tools members of a portfolio (None: the default)."""


def _splits(problem: Problem, options: SolveOptions, choice: BackendChoice) -> bool:
    """Whether the processes of a PyVRP solve split one search rather than run a portfolio
    (large time-bound problems, see :func:`engine.backends.pyvrp.split.splits`)."""
    if choice.name != "pyvrp" or options.iteration_limit is not None:
        return False
    if problem.model.injected_first_solution_routes:
        return False  # a portfolio: every search starts from the injected routes
    from engine.backends.pyvrp.split import splits  # imports PyVRP: only for its solves

    return splits(problem, options.solver_processes, options.decompose)


def _member(choice: BackendChoice, options: SolveOptions, i: int, processes: int = 1) -> Backend:
    """Portfolio member ``i`` (member 0 is the single-process configuration); a PyVRP
    ``processes`` > 1 splits its search over that many processes."""
    if choice.name == "pyvrp":
        return get_backend(
            "pyvrp",
            seed=options.seed + i,
            iteration_limit=options.iteration_limit,
            give_up_fraction=PYVRP_GIVE_UP_FRACTION if choice.fallback else None,
            processes=processes,
        )
    fss = options.first_solution_strategy
    if i > 0 and fss is None:
        strategies = PORTFOLIO_ORTOOLS_STRATEGIES
        fss = strategies[i % len(strategies)]
    ortools = get_backend(
        "ortools",
        first_solution_strategy=fss,
        local_search_metaheuristic=options.local_search_metaheuristic,
        iteration_limit=options.iteration_limit,
    )
    warm = options.warm_start and choice.blocked_by and choice.blocked_by <= WARM_STARTABLE_UNDER
    if warm and options.iteration_limit is None:
        return WarmStartedOrTools(ortools, WARM_START_FRACTION, seed=options.seed + i)
    return ortools


def _relay(
    problem: Problem,
    skip_reasons: Mapping[int, tuple[SkipReason, ...]],
    backend: str,
    on_update: Callable[[SolveProgress], None],
    every_s: float,
    also: ProgressCallback | None,
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
