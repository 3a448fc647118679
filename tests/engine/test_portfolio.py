"""Parallel processes: run_parallel, and a PyVRP search split over processes."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest

from engine import ShipmentModel, solve
from engine.backends.pyvrp.split import splits
from engine.errors import NoSolutionError, SolverError
from engine.options import SearchMode, SolveOptions
from engine.parallel import run_parallel
from engine.search import Progress, StopCriterion
from tests.builders import solve_checked
from tests.checker import check_solution
from tests.engine.test_backends import city_model, problem_of


def mandatory(model: ShipmentModel) -> ShipmentModel:
    """``model`` with every shipment mandatory (sub-problems of whole routes need that)."""
    shipments = tuple(dataclasses.replace(s, penalty_cost=None) for s in model.shipments)
    return dataclasses.replace(model, shipments=shipments)


# -- run_parallel ------------------------------------------------------------------------------


def test_run_parallel_returns_each_result_in_task_order_from_other_processes() -> None:
    def task(i: int):
        def run(stop: StopCriterion, progress) -> tuple[int, int]:
            return i * i, os.getpid()

        return run

    results = run_parallel(
        [(f"t{i}", task(i)) for i in range(3)], StopCriterion(deadline=time.monotonic() + 10)
    )
    assert [r.value[0] for r in results if r.value] == [0, 1, 4]
    assert [r.name for r in results] == ["t0", "t1", "t2"]
    pids = {r.value[1] for r in results if r.value}
    assert len(pids) == 3
    assert os.getpid() not in pids


def test_run_parallel_reports_errors_per_task() -> None:
    def fails(stop: StopCriterion, progress) -> None:
        raise RuntimeError("boom")

    def no_solution(stop: StopCriterion, progress) -> None:
        raise NoSolutionError("infeasible", "nothing")

    def works(stop: StopCriterion, progress) -> str:
        return "ok"

    deadline = time.monotonic() + 10
    tasks = [("fails", fails), ("none", no_solution), ("works", works)]
    failed, none, ok = run_parallel(tasks, StopCriterion(deadline=deadline))
    assert failed.value is None
    assert isinstance(failed.error, SolverError)
    assert none.value is None
    assert isinstance(none.error, NoSolutionError)
    assert (ok.value, ok.error) == ("ok", None)


def test_run_parallel_stops_tasks_and_kills_those_that_ignore_it() -> None:
    def polite(stop: StopCriterion, progress) -> str:
        while not stop.poll():
            time.sleep(0.01)
        return "stopped"

    def deaf(stop: StopCriterion, progress) -> str:
        time.sleep(60)
        return "never"

    stop_at = time.monotonic() + 0.3
    stop = StopCriterion(
        deadline=time.monotonic() + 30, should_stop=lambda: time.monotonic() > stop_at
    )
    started = time.monotonic()
    polite_result, deaf_result = run_parallel([("polite", polite), ("deaf", deaf)], stop)
    assert time.monotonic() - started < 5.0  # stop + grace, not the deaf task's 60 s
    assert polite_result.value == "stopped"
    assert isinstance(deaf_result.error, NoSolutionError)
    assert deaf_result.error.reason == "interrupted"
    assert stop.interrupted


def test_a_task_killed_after_its_deadline_found_no_solution_in_time() -> None:
    """Regression (fuzz): a member killed after the deadline was a SolverError, so a portfolio
    whose members all overran answered INTERNAL instead of DEADLINE_EXCEEDED."""

    def deaf(stop: StopCriterion, progress) -> str:
        time.sleep(60)
        return "never"

    started = time.monotonic()
    results = run_parallel([("deaf", deaf), ("deaf too", deaf)], StopCriterion(deadline=started))
    assert time.monotonic() - started < 10.0  # the grace, not 60 s
    for r in results:
        assert r.value is None
        assert isinstance(r.error, NoSolutionError)
        assert r.error.reason == "time_limit"
        assert "did not stop in time" in str(r.error)


def test_run_parallel_relays_only_improving_progress() -> None:
    def reports(objectives: list[float]):
        def run(stop: StopCriterion, progress) -> None:
            for objective in objectives:
                progress(Progress(0.0, objective, 1))
                time.sleep(0.05)

        return run

    seen: list[float] = []
    tasks = [("a", reports([10.0, 8.0, 6.0])), ("b", reports([9.0, 7.0, 5.0]))]
    a, b = run_parallel(
        tasks, StopCriterion(deadline=time.monotonic() + 10), lambda p: seen.append(p.objective)
    )
    assert (a.leading, b.leading) == (False, True)  # b reported the best objective
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen))
    assert seen[0] in (9.0, 10.0)
    assert seen[-1] == 5.0


# -- PyVRP split over processes ----------------------------------------------------------------


def test_which_problems_split() -> None:
    plain = problem_of(mandatory(city_model(30, seed=3)))
    assert splits(plain, 2, decompose=True)
    assert not splits(plain, 2, decompose=None)  # below SPLIT_MIN_CLIENTS
    assert not splits(plain, 1, decompose=True)
    assert not splits(plain, 2, decompose=False)
    optional = problem_of(city_model(30, seed=3))  # every fifth shipment is optional
    assert not splits(optional, 2, decompose=True)
    pairs = problem_of(mandatory(city_model(30, seed=3, pairs=2)))
    assert not splits(pairs, 2, decompose=True)


def test_splitting_problems_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.backends.pyvrp.split as pyvrp_split

    monkeypatch.setattr(pyvrp_split, "SPLIT_MIN_CLIENTS", 30)
    assert splits(problem_of(mandatory(city_model(30, seed=3))), 2, decompose=None)
    assert not splits(problem_of(mandatory(city_model(29, seed=3))), 2, decompose=None)


def test_a_split_search_serves_every_shipment_and_checks_out() -> None:
    model = mandatory(city_model(120, seed=6, n_vehicles=8))
    solution = solve_checked(
        model,
        time_limit_s=4.0,
        search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
        solver_processes=2,
        decompose=True,
    )
    assert "one search split over 2 processes" in solution.backend_reason
    assert solution.solver_processes == 2
    assert not solution.skipped_shipments
    assert solution.solve_time_s < 4.5


@pytest.mark.parametrize("split", [False, True], ids=["portfolio", "split"])
def test_a_parallel_search_stops_when_asked_and_reports_improvements(split: bool) -> None:
    model = city_model(150, seed=4, n_vehicles=10)
    if split:
        model = mandatory(model)
    events: list[Progress] = []
    stop_at = time.monotonic() + 2.0
    started = time.monotonic()
    solution = solve(
        model,
        SolveOptions(
            time_limit_s=30.0,
            search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
            solver_processes=2,
            decompose=True if split else None,
        ),
        should_stop=lambda: time.monotonic() > stop_at,
        on_progress=events.append,
    )
    assert time.monotonic() - started < 5.5
    check_solution(model, solution, geodesic_meters_per_second=10.0)
    assert solution.status.name == "INTERRUPTED"
    assert ("split over 2 processes" in solution.backend_reason) == split
    objectives = [e.objective for e in events]
    assert objectives
    assert objectives == sorted(objectives, reverse=True)
    assert objectives[-1] == pytest.approx(solution.metrics.total_cost, rel=1e-3)


def test_route_groups_and_parts_cover_every_route_once() -> None:
    import random

    from engine.backends.pyvrp.data import build_data
    from engine.backends.pyvrp.split import Part, route_groups, splittable

    data = build_data(problem_of(mandatory(city_model(24, seed=5, n_vehicles=6)))).data
    assert splittable(data)
    routes = [list(range(k, k + 4)) for k in range(0, 24, 4)]
    types = [0] * len(routes)
    groups = route_groups(data, routes, random.Random(1), group_clients=8)
    assert sorted(r for g in groups for r in g) == list(range(len(routes)))
    assert all(sum(len(routes[r]) for r in g) <= 8 for g in groups)
    for group in groups:
        part = Part.of(data, routes, types, group)
        assert part.data.num_clients == sum(len(routes[r]) for r in group)
        assert part.routes(part.initial) == [(routes[r], types[r]) for r in group]


def test_the_parallel_runner_knows_nothing_of_backends() -> None:
    """engine.parallel is generic; the portfolio of backends lives in engine.backends."""
    import ast
    from pathlib import Path

    import engine.parallel

    tree = ast.parse(Path(engine.parallel.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.startswith("engine.backends")}, imported
