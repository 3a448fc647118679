"""Evaluating layouts: route each day of the study from the open depots and sum the days.

Depot capacity is not a routing-model feature, so the evaluator enforces it around the router,
exactly:

1. one multi-depot model with the fleets of all open depots (each vehicle starts and ends at its
   depot) lets the router choose which depot serves each order;
2. when that solution loads some depot beyond its capacity (only possible when a depot's
   capacity is below the day's demand), the orders are re-assigned and each depot's orders are
   routed on their own (:mod:`planning.repair`).

Either way every routed model and its solution are kept (:attr:`LayoutEvaluation.parts`), so
each route can be checked independently, and the loads per depot are recomputed from them.
:func:`evaluate_layouts` evaluates several layouts at once, in forked processes (or in threads
when the solves run elsewhere).

Every solve and MIP of an evaluation runs within the study's :class:`~planning.budget.Budget`
(cancellation and deadline): a layout the budget stops before it is complete is left out, and
:func:`evaluate_layouts` returns the layouts completed so far.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, replace

import numpy as np

from engine import FieldViolation, InvalidModelError
from engine.parallel import run_parallel
from engine.roads import RoadContext
from engine.search import ProgressCallback, StopCriterion
from planning.budget import Budget, StoppedError
from planning.day_model import Router, SolveFn, build_day_model
from planning.kpis import layout_kpis
from planning.loads import capacity_matrix, demand_matrix, load_types, over_capacity, part_loads
from planning.repair import reassign, route_assigned
from planning.results import LayoutEvaluation, OnDone, RoutedPart, ShouldStop
from planning.study import Layout, LayoutOptions, LayoutStudy
from planning.travel import DayTravel, day_travel
from planning.validation import check_study

__all__ = ["evaluate_layout", "evaluate_layouts", "options_and_check"]


def options_and_check(
    study: LayoutStudy, options: LayoutOptions | None, roads: RoadContext | None
) -> LayoutOptions:
    """``options`` (default :class:`LayoutOptions`), once ``study`` is valid (raises
    :class:`engine.InvalidModelError`); its points are checked against ``roads`` unless the
    options ask for geodesic travel."""
    options = options or LayoutOptions()
    check_study(study, None if options.use_geodesic_distances else roads)
    return options


def _capacity_tight(study: LayoutStudy, day: int, open_idx: Sequence[int]) -> bool:
    """Whether some open depot's capacity is below the day's demand of a load type."""
    types = load_types(study)
    demand = demand_matrix(study.days[day], types).sum(axis=0)
    caps = capacity_matrix(study, types)[list(open_idx)]
    return bool(np.any(caps < demand[None, :]))


def _route_day(
    study: LayoutStudy,
    t: int,
    open_idx: Sequence[int],
    travel: DayTravel,
    router: Router,
    budget_s: float,
) -> tuple[list[RoutedPart], str]:
    """The routed parts of day ``t`` and how it was routed (module docstring). On a day where
    an open depot's capacity is below the demand, the first solve has 60 % of ``budget_s``; the
    rest goes to a second solve with another seed (kept when cheaper and within capacity) or,
    when the first routes overload a depot, to the per-depot routing after re-assignment."""
    day = study.days[t]
    all_orders = list(range(len(day.orders)))
    labels = tuple(study.depots[j].label for j in open_idx)
    tight = _capacity_tight(study, t, open_idx)
    model, vehicle_depot = build_day_model(study, day, open_idx, all_orders)
    first = router.solve(model, budget_s * (0.6 if tight else 1.0))
    free = RoutedPart(t, labels, model, first, tuple(all_orders), vehicle_depot)
    if not over_capacity(study, part_loads(day, free)):
        if not tight:
            return [free], "multi-depot"
        second = router.solve(model, budget_s * 0.4, seed_offset=1)
        if second.metrics.total_cost < first.metrics.total_cost - 1e-9:
            again = replace(free, solution=second)
            if not over_capacity(study, part_loads(day, again)):
                return [again], "multi-depot"
        return [free], "multi-depot"
    assigned = reassign(
        study, t, open_idx, travel, free, router.options.screening_time_limit_s, router.budget
    )
    if assigned is None:  # depot capacity short of the day's demand: keep the router's answer
        return [free], "multi-depot (capacity short)"
    return route_assigned(study, t, open_idx, assigned, router, budget_s * 0.4), "assigned"


def _open_depots(study: LayoutStudy, layout: Layout) -> list[int]:
    """The indices of the depots ``layout`` opens (raises on an unknown or no depot)."""
    index = study.depot_index()
    unknown = [name for name in layout.depots if name not in index]
    if unknown or not layout.depots:
        raise InvalidModelError(
            (FieldViolation("layout.depots", f"unknown or no depots: {unknown}"),)
        )
    return sorted({index[name] for name in layout.depots})


def evaluate_layout(
    study: LayoutStudy,
    layout: Layout,
    options: LayoutOptions | None = None,
    *,
    roads: RoadContext | None = None,
    time_limit_s: float | None = None,
    solve_fn: SolveFn | None = None,
    budget: Budget | None = None,
) -> LayoutEvaluation:
    """Route every day of ``study`` from the depots of ``layout`` (module docstring) within
    ``time_limit_s`` (default ``options.time_limit_s``), split over the days by order count.
    Raises :class:`~planning.budget.StoppedError` when ``budget`` stops it before it is complete."""
    options = options_and_check(study, options, roads)
    budget = budget or Budget()
    budget.check()
    started = time.monotonic()
    open_idx = _open_depots(study, layout)
    seconds = options.time_limit_s if time_limit_s is None else time_limit_s
    n_orders = sum(len(day.orders) for day in study.days)
    travels = [day_travel(study, day, roads, options) for day in study.days]
    router = Router(options, roads, solve_fn, budget)
    parts: list[RoutedPart] = []
    strategies: list[str] = []
    for t, day in enumerate(study.days):
        share = seconds * len(day.orders) / max(n_orders, 1)
        day_parts, strategy = _route_day(study, t, open_idx, travels[t], router, share)
        parts += day_parts
        strategies.append(strategy)
    kpis, assignment, loads = layout_kpis(study, open_idx, parts, travels)
    respected = not any(over_capacity(study, day_loads) for day_loads in loads)
    return LayoutEvaluation(
        layout=layout,
        kpis=kpis,
        parts=tuple(parts),
        assignment=assignment,
        depot_loads=loads,
        capacity_respected=respected,
        strategy=tuple(strategies),
        time_s=time.monotonic() - started,
    )


# -- several layouts at once ------------------------------------------------------------

_NO_DEADLINE_S = 10.0 * 365 * 86400
"""The deadline of a wave of layouts when the study has none (:func:`engine.parallel.run_parallel`
needs one)."""

_POOL_ROADS: RoadContext | None = None
"""The road network of the evaluation pool: set before the pool forks, inherited by it."""


def _pool_evaluate(
    study: LayoutStudy,
    layout: Layout,
    options: LayoutOptions,
    time_limit_s: float | None,
    deadline: float | None,
) -> LayoutEvaluation:
    # The deadline crosses the fork (the monotonic clock is the machine's); the stop flag
    # does not: a pool process finishes the layout it has started.
    return evaluate_layout(
        study, layout, options, roads=_POOL_ROADS, time_limit_s=time_limit_s,
        budget=Budget(None, deadline),
    )  # fmt: skip


@dataclass(frozen=True)
class _Batch:
    """Layouts of one study evaluated with the same options and hooks."""

    study: LayoutStudy
    options: LayoutOptions
    roads: RoadContext | None
    time_limit_s: float | None
    on_done: OnDone | None
    budget: Budget
    solve_fn: SolveFn | None

    def stopped(self) -> bool:
        return self.budget.stopped()

    def finished(self, ev: LayoutEvaluation) -> None:
        if self.on_done is not None:
            self.on_done(ev)

    def in_turn(self, layouts: Sequence[Layout]) -> list[LayoutEvaluation]:
        """One layout after the other, in this process."""
        out = []
        for layout in layouts:
            if self.stopped():
                break
            try:
                ev = evaluate_layout(
                    self.study, layout, self.options, roads=self.roads,
                    time_limit_s=self.time_limit_s, solve_fn=self.solve_fn, budget=self.budget,
                )  # fmt: skip
            except StoppedError:
                break
            self.finished(ev)
            out.append(ev)
        return out

    def submit(self, pool: Executor, layout: Layout) -> Future[LayoutEvaluation]:
        if self.solve_fn is not None:
            return pool.submit(
                evaluate_layout, self.study, layout, self.options, roads=self.roads,
                time_limit_s=self.time_limit_s, solve_fn=self.solve_fn, budget=self.budget,
            )  # fmt: skip
        return pool.submit(
            _pool_evaluate, self.study, layout, self.options, self.time_limit_s,
            self.budget.deadline,
        )  # fmt: skip

    def pool(self) -> Executor:
        """Threads when the solves run elsewhere, else forked processes."""
        workers = self.options.workers
        if self.solve_fn is not None:
            return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="layout")
        context = multiprocessing.get_context("fork")
        return ProcessPoolExecutor(max_workers=workers, mp_context=context)

    def in_waves(self, layouts: Sequence[Layout]) -> list[LayoutEvaluation]:
        """``options.workers`` layouts at once, each in a child forked by
        :func:`engine.parallel.run_parallel` (which a daemonic process may have), wave after
        wave; a stop reaches the children (their solves are interrupted, their incomplete
        layouts left out). Results in the order of ``layouts``."""
        out: list[LayoutEvaluation] = []
        queue = list(layouts)
        deadline = self.budget.deadline
        while queue and not self.stopped():
            wave, queue = queue[: self.options.workers], queue[self.options.workers :]
            until = deadline if deadline is not None else time.monotonic() + _NO_DEADLINE_S
            stop = StopCriterion(deadline=until, should_stop=self.budget.should_stop)
            tasks = [(layout.label, self._wave_task(layout, deadline)) for layout in wave]
            for result in run_parallel(tasks, stop):
                if result.error is not None:
                    raise result.error
                if result.value is not None:  # None: stopped before it was complete
                    self.finished(result.value)
                    out.append(result.value)
        return out

    def _wave_task(
        self, layout: Layout, deadline: float | None
    ) -> Callable[[StopCriterion, ProgressCallback], LayoutEvaluation | None]:
        def task(stop: StopCriterion, progress: ProgressCallback) -> LayoutEvaluation | None:
            del progress
            try:
                return evaluate_layout(
                    self.study, layout, self.options, roads=self.roads,
                    time_limit_s=self.time_limit_s, budget=Budget(stop.should_stop, deadline),
                )  # fmt: skip
            except StoppedError:
                return None

        return task

    def in_pool(self, layouts: Sequence[Layout]) -> list[LayoutEvaluation]:
        """``options.workers`` layouts at once; results in the order of ``layouts``."""
        global _POOL_ROADS
        _POOL_ROADS = self.roads
        results: dict[int, LayoutEvaluation] = {}
        with self.pool() as pool:
            pending: dict[Future[LayoutEvaluation], int] = {}
            queue = list(enumerate(layouts))
            while queue or pending:
                while queue and len(pending) < self.options.workers:
                    if self.stopped():
                        queue.clear()
                        break
                    k, layout = queue.pop(0)
                    pending[self.submit(pool, layout)] = k
                if not pending:
                    break
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                done = finished.pop()
                k = pending.pop(done)
                try:
                    results[k] = done.result()
                except StoppedError:
                    continue  # stopped before it was complete: left out
                self.finished(results[k])
        _POOL_ROADS = None
        return [results[k] for k in sorted(results)]


def evaluate_layouts(
    study: LayoutStudy,
    layouts: Sequence[Layout],
    options: LayoutOptions | None = None,
    *,
    roads: RoadContext | None = None,
    time_limit_s: float | None = None,
    on_done: OnDone | None = None,
    should_stop: ShouldStop | None = None,
    solve_fn: SolveFn | None = None,
    deadline: float | None = None,
) -> list[LayoutEvaluation]:
    """Evaluate ``layouts`` (``options.workers`` at once, in forked processes that share the
    road network); results in the order of ``layouts``. ``on_done`` is called as each one
    finishes; once ``should_stop`` returns True or ``deadline`` (``time.monotonic()``) has
    passed no further layout starts and the running ones stop (those not complete are left
    out of the result). With ``solve_fn`` (solves run elsewhere) the layouts are evaluated in
    threads instead of processes; in a daemonic process (which ``multiprocessing`` forbids to
    have children: a server's worker), in waves of children forked by
    :func:`engine.parallel.run_parallel`."""
    options = options_and_check(study, options, roads)
    budget = Budget(should_stop, deadline)
    batch = _Batch(study, options, roads, time_limit_s, on_done, budget, solve_fn)
    if options.workers <= 1 or len(layouts) <= 1:
        return batch.in_turn(layouts)
    if solve_fn is None and multiprocessing.current_process().daemon:
        return batch.in_waves(layouts)  # a daemonic process (a server's worker): no pool
    return batch.in_pool(layouts)
