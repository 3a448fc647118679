"""The layout search: the screening model (:mod:`planning.screening`) is solved for a few
values of ``λ``, each time enumerating the next-best layouts with no-good cuts. The distinct
layouts found are evaluated with full routing (in parallel processes when ``workers`` > 1),
then a local search over layouts (open, close or swap a depot; neighbours ranked by the
screening model with the layout fixed) routes the most promising neighbours of the best layout
until none improves it; the best layout is finally routed again with the longer
``final_time_limit_s`` budget.

Every MIP and routing solve of the search runs within its :class:`~planning.budget.Budget`
(the stop flag and the deadline of ``time_budget_s``): the screening proposes no further
layout, the local search makes no further move and no further neighbour is ranked once it is
stopped, and the search returns the layouts routed so far."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from engine import FieldViolation, InvalidModelError
from engine.roads import RoadContext
from planning.budget import Budget, StoppedError
from planning.day_model import SolveFn
from planning.evaluate import evaluate_layout, evaluate_layouts, options_and_check
from planning.results import LayoutEvaluation, OnDone, SearchResult, ShouldStop, rank_key
from planning.screening import Screening, layout_of
from planning.study import LayoutOptions, LayoutSearch, LayoutStudy
from planning.travel import day_travel

__all__ = ["middle_factor", "neighbours", "search_layouts"]


def middle_factor(options: LayoutOptions) -> float:
    """The middle ``λ`` of ``options.route_cost_factors``: the one that enumerates the
    next-best layouts, ranks neighbours and gives the reported screening costs."""
    factors = options.route_cost_factors
    return factors[len(factors) // 2]


def _screening(
    study: LayoutStudy,
    spec: LayoutSearch,
    roads: RoadContext | None,
    options: LayoutOptions,
    budget: Budget | None = None,
) -> Screening:
    """The screening model of the layouts ``spec`` (the study's search) allows."""
    n = len(study.depots)
    index = study.depot_index()
    must = frozenset(index[name] for name in spec.must_open)
    k = spec.k if spec.k is not None else n
    lo, hi = (k, k) if spec.mode == "exactly" else (1, k if spec.mode == "at_most" else n)
    travels = [day_travel(study, day, roads, options) for day in study.days]
    limit = options.screening_time_limit_s
    return Screening(study, travels, lo, hi, must, limit, budget or Budget())


def _screen(
    screening: Screening,
    options: LayoutOptions,
    should_stop: ShouldStop | None = None,
    deadline: float | None = None,
) -> list[frozenset[int]]:
    """The best layout at each ``λ``, then the next-best at the middle ``λ`` up to
    ``options.candidates``; no further MIP starts once ``should_stop()`` says so or
    ``deadline`` (``time.monotonic()``) has passed (the layouts found so far are kept; a
    screening stopped by its budget before the first one raises :class:`StoppedError`)."""

    def stopped() -> bool:
        late = deadline is not None and time.monotonic() >= deadline
        return late or (should_stop is not None and should_stop())

    factors = options.route_cost_factors
    middle = middle_factor(options)
    found: list[frozenset[int]] = []
    try:
        for factor in factors:
            if found and stopped():
                break
            layout = screening.best(factor)
            if layout is not None and layout not in found:
                found.append(layout)
        while len(found) < options.candidates and not stopped():
            layout = screening.best(middle, exclude=found)
            if layout is None:
                break
            found.append(layout)
    except StoppedError:
        if not found:
            raise
    if not found:
        raise InvalidModelError(
            (FieldViolation("depots", "no layout allowed by the search can serve the demand"),)
        )
    return found[: max(options.candidates, 1)]


def neighbours(
    current: frozenset[int], n: int, lo: int, hi: int, must: frozenset[int]
) -> set[frozenset[int]]:
    """The layouts one move from ``current`` (open, close or swap a depot of the ``n``) with
    ``lo`` to ``hi`` depots open, ``must`` among them."""
    out: set[frozenset[int]] = set()
    closed = [j for j in range(n) if j not in current]
    removable = [j for j in current if j not in must]
    for j in closed:
        if len(current) + 1 <= hi:
            out.add(current | {j})
        for r in removable:
            out.add((current - {r}) | {j})
    for r in removable:
        if len(current) - 1 >= max(lo, 1):
            out.add(current - {r})
    return out


@dataclass
class _Search:
    """The state of one search: every routed layout by its open set."""

    study: LayoutStudy
    options: LayoutOptions
    roads: RoadContext | None
    on_done: OnDone | None
    budget: Budget
    solve_fn: SolveFn | None
    screening: Screening
    evaluated: dict[frozenset[int], LayoutEvaluation] = field(default_factory=dict)

    @property
    def middle(self) -> float:
        return middle_factor(self.options)

    def stopped(self) -> bool:
        return self.budget.stopped()

    def reported_cost(self, s: frozenset[int]) -> float:
        """The screening cost of ``s`` to report (``nan``: the budget stopped its MIP)."""
        try:
            return self.screening.cost(self.middle, s)
        except StoppedError:
            return math.nan

    def run(self, sets: Sequence[frozenset[int]]) -> None:
        """Route the layouts ``sets`` and keep them with their screening cost."""
        layouts = [layout_of(self.study, s) for s in sets]
        evaluations = evaluate_layouts(
            self.study,
            layouts,
            self.options,
            roads=self.roads,
            on_done=self.on_done,
            should_stop=self.budget.should_stop,
            solve_fn=self.solve_fn,
            deadline=self.budget.deadline,
        )
        done = {frozenset(ev.layout.depots): ev for ev in evaluations}
        for s in sets:
            ev = done.get(frozenset(self.study.depots[j].label for j in s))
            if ev is not None:
                self.evaluated[s] = replace(ev, screening_cost=self.reported_cost(s))

    def best_set(self) -> frozenset[int]:
        return min(self.evaluated, key=lambda s: rank_key(self.evaluated[s]))

    def step(self) -> bool:
        """Route the best-ranked neighbours of the best layout; whether one improved it (raises
        :class:`StoppedError` when the budget stops the ranking)."""
        best = self.best_set()
        s = self.screening
        around = neighbours(best, len(self.study.depots), s.min_open, s.max_open, s.must_open)
        around -= set(self.evaluated)
        costs = {x: s.cost(self.middle, x) for x in sorted(around, key=sorted)}  # MIPs
        ranked = sorted(around, key=lambda x: (costs[x], sorted(x)))
        ranked = [x for x in ranked if math.isfinite(costs[x])]
        if not ranked:
            return False
        before = rank_key(self.evaluated[best])
        self.run(ranked[: self.options.neighbours])
        return min(rank_key(ev) for ev in self.evaluated.values()) < before

    def final(self) -> None:
        """Route the best layout again with ``final_time_limit_s``; keep it if better."""
        best = self.best_set()
        if not self.options.final_time_limit_s or self.stopped():
            return
        try:
            final = evaluate_layout(
                self.study, layout_of(self.study, best), self.options, roads=self.roads,
                time_limit_s=self.options.final_time_limit_s, solve_fn=self.solve_fn,
                budget=self.budget,
            )  # fmt: skip
        except StoppedError:
            return
        final = replace(final, screening_cost=self.evaluated[best].screening_cost)
        if rank_key(final) < rank_key(self.evaluated[best]):
            self.evaluated[best] = final
            if self.on_done is not None:
                self.on_done(final)


def search_layouts(
    study: LayoutStudy,
    options: LayoutOptions | None = None,
    *,
    roads: RoadContext | None = None,
    time_budget_s: float | None = None,
    on_done: OnDone | None = None,
    should_stop: ShouldStop | None = None,
    solve_fn: SolveFn | None = None,
    deadline: float | None = None,
) -> SearchResult:
    """Search the layouts allowed by ``study.search`` (module docstring). The search stops at
    ``time_budget_s`` or ``deadline`` (``time.monotonic()``), whichever comes first, or once
    ``should_stop`` returns True; no local-search step starts unless it and the final
    evaluation fit in ``time_budget_s``."""
    options = options_and_check(study, options, roads)
    if study.search is None:
        raise InvalidModelError((FieldViolation("search", "the study has no search"),))
    started = time.monotonic()
    budget = Budget.of(should_stop, time_budget_s, deadline)
    screening = _screening(study, study.search, roads, options, budget)
    try:
        found = _screen(screening, options, should_stop, budget.deadline)
    except StoppedError:
        return SearchResult(None, (), (), time.monotonic() - started)
    search = _Search(study, options, roads, on_done, budget, solve_fn, screening)
    screened = tuple((layout_of(study, s), search.reported_cost(s)) for s in found)
    search.run(found)
    if not search.evaluated:  # stopped before the first layout
        return SearchResult(None, (), screened, time.monotonic() - started)
    final_s = options.final_time_limit_s or 0.0
    step_s = options.time_limit_s * math.ceil(options.neighbours / max(options.workers, 1))
    for _ in range(options.max_local_search_steps):
        if search.stopped():
            break
        elapsed = time.monotonic() - started
        if time_budget_s is not None and elapsed + step_s + final_s > time_budget_s:
            break
        try:
            if not search.step():
                break
        except StoppedError:
            break
    search.final()
    ranked = sorted(search.evaluated.values(), key=rank_key)
    return SearchResult(
        best=ranked[0],
        evaluations=tuple(ranked),
        screened=screened,
        time_s=time.monotonic() - started,
    )
