"""The split search: one PyVRP search over several processes (:class:`SplitSearch`).

First the processes run whole-problem searches with different seeds, keeping the best; then,
in rounds, that solution's routes are split into one group of nearby routes per process
(:func:`route_groups`, a different split each round), each group re-solved as a problem of
its own (:class:`Part`) from its routes, and the improved groups put back together. Each
process thus searches its own part of the plane, so the processes add up instead of repeating
each other's work.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass

import numpy as np
import pyvrp

from engine.backends.pyvrp.data import PyVRPData
from engine.backends.pyvrp.search import run_search, search_params
from engine.backends.pyvrp.stop import (
    Deadline,
    FirstOf,
    ReportProgress,
    StopRequested,
    search_criterion,
)
from engine.parallel import Task, run_parallel
from engine.problem import Problem
from engine.search import ProgressCallback, StopCriterion

__all__ = [
    "SPLIT_MIN_CLIENTS",
    "SPLIT_ROUND_S",
    "SPLIT_WHOLE_FRACTION",
    "Part",
    "SplitSearch",
    "route_groups",
    "splits",
    "splittable",
]

log = logging.getLogger(__name__)

SPLIT_MIN_CLIENTS = 800
"""With more than one process, time-bound searches of splittable problems from this many
clients on are split (:class:`SplitSearch`); smaller ones run whole searches side by side."""

SPLIT_WHOLE_FRACTION = 0.4
"""Share of the time the processes spend on whole-problem searches (different seeds)."""

SPLIT_ROUND_S = 10.0
"""Target length of a round of the split phase (the remaining time is divided evenly)."""

Routes = list[tuple[list[int], int]]
"""A solution as the client indices and the vehicle type of each route."""


def splits(problem: Problem, processes: int, decompose: bool | None) -> bool:
    """Whether a time-bound search over ``processes`` > 1 processes splits the problem
    (:class:`SplitSearch`) rather than running whole searches side by side: when every
    routable shipment is one mandatory visit with one time window (sub-problems are made of
    whole routes, see :func:`splittable`) and, with ``decompose`` None, there are at least
    :data:`SPLIT_MIN_CLIENTS` of them. Never with ``decompose`` False."""
    if processes < 2 or decompose is False:
        return False
    shipments = [s for s, ok in zip(problem.model.shipments, problem.routable, strict=True) if ok]
    if not all(len(s.pickups) + len(s.deliveries) == 1 and s.is_mandatory for s in shipments):
        return False
    stops = problem.stops
    routable = [s for s, ok in enumerate(problem.routable) if ok]
    visits = [i for s in routable for i in (*stops.pickup_stops[s], *stops.delivery_stops[s])]
    if any(len(problem.windows[i]) > 1 for i in visits):
        return False  # a client group of copies, one per window (see :func:`splittable`)
    return decompose is True or len(shipments) >= SPLIT_MIN_CLIENTS


def splittable(data: pyvrp.ProblemData) -> bool:
    """Sub-problems are formed of whole routes: every client must be required and plain (no
    groups, no shipments), so that no client is left out of every sub-problem."""
    return (
        data.num_groups == 0
        and data.num_shipments == 0
        and all(client.required for client in data.clients())
    )


def route_groups(
    data: pyvrp.ProblemData, routes: list[list[int]], rng: random.Random, group_clients: int
) -> list[list[int]]:
    """Route indices grouped by proximity: a random route, then the routes whose medoid client
    is nearest to its medoid, until the group holds ``group_clients`` clients."""
    dist = data.distance_matrix(0)
    locations = [[data.client(c).location for c in route] for route in routes]
    medoids = []
    for locs in locations:
        sub = dist[np.ix_(locs, locs)]
        medoids.append(locs[int(np.argmin(sub.sum(axis=0) + sub.sum(axis=1)))])
    left = list(range(len(routes)))
    rng.shuffle(left)
    groups = []
    while left:
        seed_route = left.pop(0)
        left.sort(key=lambda r: dist[medoids[seed_route], medoids[r]])
        group, size = [seed_route], len(routes[seed_route])
        while left and size < group_clients:
            r = left.pop(0)
            group.append(r)
            size += len(routes[r])
        groups.append(group)
    return groups


@dataclass
class Part:
    """A group of routes of a solution as a problem of its own: the group's clients and
    vehicles, the same depots and matrices, the group's routes as the initial solution."""

    data: pyvrp.ProblemData
    initial: pyvrp.Solution
    clients: list[int]
    """The whole problem's client index of each client of the part."""
    types: list[int]
    """The whole problem's vehicle type of each vehicle type of the part."""

    @classmethod
    def of(
        cls, data: pyvrp.ProblemData, routes: list[list[int]], types: list[int], group: list[int]
    ) -> Part:
        """The part of routes ``group`` (indices into ``routes`` and their ``types``)."""
        clients = [c for r in group for c in routes[r]]
        counts: dict[int, int] = {}
        for r in group:
            counts[types[r]] = counts.get(types[r], 0) + 1
        part_types = sorted(counts)
        type_of = {t: k for k, t in enumerate(part_types)}
        sub = data.replace(
            clients=[data.client(c) for c in clients],
            vehicle_types=[
                data.vehicle_type(t).replace(num_available=counts[t]) for t in part_types
            ],
        )
        local = {c: k for k, c in enumerate(clients)}
        initial = pyvrp.Solution(
            sub, [pyvrp.Route(sub, [local[c] for c in routes[r]], type_of[types[r]]) for r in group]
        )
        return cls(sub, initial, clients, part_types)

    def routes(self, solution: pyvrp.Solution) -> Routes:
        """The routes of a solution of the part, in the whole problem's indices."""
        return [
            ([self.clients[a.idx] for a in r if a.is_client()], self.types[r.vehicle_type()])
            for r in solution.routes()
        ]


def _routes(solution: pyvrp.Solution) -> Routes:
    return [([a.idx for a in r if a.is_client()], r.vehicle_type()) for r in solution.routes()]


def _solution(data: pyvrp.ProblemData, routes: Routes) -> pyvrp.Solution:
    return pyvrp.Solution(data, [pyvrp.Route(data, visits, t) for visits, t in routes])


def _costs(data: pyvrp.ProblemData) -> pyvrp.CostEvaluator:
    """The cost of feasible solutions (no penalties)."""
    return pyvrp.CostEvaluator([0.0] * data.num_load_dimensions, 0.0, 0.0)


@dataclass
class SplitSearch:
    """The search over ``processes`` processes (:func:`engine.parallel.run_parallel`, see the
    module docstring): whole-problem searches with seeds ``seed + i`` for
    :data:`SPLIT_WHOLE_FRACTION` of the time (stopping after ``no_improvement`` iterations
    without improvement, when given), then rounds of parts until ``stop``. Progress goes to
    ``reporter``: the whole searches' improvements, then each round's."""

    built: PyVRPData
    reporter: ReportProgress
    no_improvement: int | None
    stop: StopCriterion
    seed: int
    processes: int

    def run(self) -> pyvrp.Solution:
        """The best solution found; infeasible when the whole searches found none."""
        data, stop, processes = self.built.data, self.stop, self.processes
        started = time.monotonic()
        cost = _costs(data).cost
        best = self.whole_phase()
        if not best.is_feasible():
            return best
        self.reporter.improved(best, cost(best))
        rng = random.Random(self.seed)
        group_clients = math.ceil(data.num_clients / processes)
        rounds = 0
        while stop.remaining_s() > 0 and not stop.interrupted and not stop.poll():
            rounds += 1
            first_seed = self.seed + rounds * processes
            candidate = self.round(best, rng, group_clients, first_seed)
            if candidate.is_feasible() and cost(candidate) < cost(best):
                best = candidate
                self.reporter.improved(best, cost(best))
        log.debug(
            "pyvrp split over %d processes: %d rounds, cost %s, %.3fs",
            processes,
            rounds,
            cost(best),
            time.monotonic() - started,
        )
        return best

    def whole_phase(self) -> pyvrp.Solution:
        """The best of whole-problem searches, one per process (the first wins ties);
        infeasible when none found a solution."""
        data, reporter = self.built.data, self.reporter

        def whole(i: int) -> Task[Routes | None]:
            def task(member_stop: StopCriterion, progress: ProgressCallback) -> Routes | None:
                child = reporter.like(progress)
                criterion = search_criterion(member_stop, child, no_improvement=self.no_improvement)
                params = search_params(self.built.scale, child.tracker)
                best = run_search(data, criterion, self.seed + i, params).best
                return _routes(best) if best.is_feasible() else None

            return task

        found = run_parallel(
            [(f"pyvrp seed {self.seed + i}", whole(i)) for i in range(self.processes)],
            self.stop,
            reporter.count_elsewhere,
            until=time.monotonic() + SPLIT_WHOLE_FRACTION * self.stop.remaining_s(),
        )
        candidates = [_solution(data, r.value) for r in found if r.value is not None]
        if not candidates:
            return pyvrp.Solution(data, [])
        return min(candidates, key=_costs(data).cost)

    def round(
        self, best: pyvrp.Solution, rng: random.Random, group_clients: int, first_seed: int
    ) -> pyvrp.Solution:
        """One round of the split phase: ``best``'s routes in groups, each group re-solved in a
        process of its own (seeds from ``first_seed`` on), the improved groups put back."""
        data = self.built.data
        cost = _costs(data).cost
        routes = _routes(best)
        visits = [r for r, _ in routes]
        types = [t for _, t in routes]
        groups = route_groups(data, visits, rng, group_clients)
        parts = [Part.of(data, visits, types, group) for group in groups]
        remaining = self.stop.remaining_s()
        round_end = time.monotonic() + remaining / max(1, round(remaining / SPLIT_ROUND_S))
        scale = self.built.scale

        def improve(part: Part, part_seed: int) -> Task[Routes | None]:
            def task(member_stop: StopCriterion, progress: ProgressCallback) -> Routes | None:
                until = FirstOf([Deadline(member_stop.deadline), StopRequested(member_stop)])
                params = search_params(scale)
                solution = run_search(part.data, until, part_seed, params, part.initial).best
                if solution.is_feasible() and cost(solution) < cost(part.initial):
                    return part.routes(solution)
                return None

            return task

        tasks = [(f"pyvrp part {g}", improve(part, first_seed + g)) for g, part in enumerate(parts)]
        improved = run_parallel(tasks, self.stop, until=round_end)
        merged: Routes = []
        for group, r in zip(groups, improved, strict=True):
            merged += r.value if r.value is not None else [routes[i] for i in group]
        return _solution(data, merged)
