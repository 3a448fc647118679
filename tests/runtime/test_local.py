"""SolveExecutor: solves in worker processes, back-pressure, cancellation, crash isolation."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError

import pytest

from engine.errors import (
    ExecutorFullError,
    ExecutorShutdownError,
    InvalidModelError,
    NoSolutionError,
    SolverError,
)
from engine.model import LatLng, Shipment, ShipmentModel, TimeWindow, Vehicle, VisitRequest
from engine.options import SearchMode, SolveOptions
from engine.solution import SolveStatus
from runtime.local import SolveExecutor, SolveJob
from tests.checker import check_solution

LONG = SolveOptions(time_limit_s=30.0, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME)
"""Options of a solve that runs its whole (long) budget unless stopped."""


def city_model(n_shipments: int, n_vehicles: int = 4, seed: int = 1) -> ShipmentModel:
    """Deliveries scattered around a depot in Paris, with capacities (geodesic travel)."""
    rng = random.Random(seed)
    depot = LatLng(48.85, 2.35)
    shipments = tuple(
        Shipment(
            deliveries=(
                VisitRequest(
                    arrival_location=LatLng(48.8 + rng.random() * 0.1, 2.3 + rng.random() * 0.1),
                    duration_s=60.0,
                ),
            ),
            load_demands={"boxes": 1},
            label=f"s{i}",
        )
        for i in range(n_shipments)
    )
    vehicle = Vehicle(
        start_location=depot,
        end_location=depot,
        load_limits={"boxes": n_shipments // n_vehicles + 2},
        cost_per_kilometer=1.0,
    )
    return ShipmentModel(shipments=shipments, vehicles=(vehicle,) * n_vehicles)


def wait_running(job: SolveJob, timeout: float = 5.0) -> None:
    """Wait until the job's worker process exists and has had time to enter the search."""
    deadline = time.monotonic() + timeout
    while job.pid is None:
        assert time.monotonic() < deadline, "worker did not start"
        time.sleep(0.01)
    time.sleep(0.5)


@pytest.fixture(scope="module")
def executor() -> Iterator[SolveExecutor]:
    with SolveExecutor(max_workers=2, max_queued=1) as ex:
        ex.warm_up()
        yield ex


def test_solve_through_executor(executor: SolveExecutor) -> None:
    job = executor.submit(city_model(5), SolveOptions(time_limit_s=5.0))
    solution = job.result(timeout=10)
    assert solution.status is SolveStatus.SOLVED
    assert sum(len(r.visits) for r in solution.routes) == 5
    assert not solution.skipped_shipments
    assert job.done()
    assert executor.running_count == 0


def test_invalid_model_error_crosses_the_process_boundary(executor: SolveExecutor) -> None:
    window = TimeWindow(start_time=100.0, end_time=50.0)
    bad = ShipmentModel(
        shipments=(
            Shipment(
                deliveries=(
                    VisitRequest(arrival_location=LatLng(48.8, 2.3), time_windows=(window,)),
                )
            ),
        ),
        vehicles=(Vehicle(start_location=LatLng(48.8, 2.3)),),
    )
    job = executor.submit(bad, SolveOptions(time_limit_s=5.0))
    with pytest.raises(InvalidModelError) as info:
        job.result(timeout=10)
    fields = [v.field for v in info.value.violations]
    assert any(f.startswith("shipments[0].deliveries[0].time_windows[0]") for f in fields), fields


def test_auto_solver_processes_take_the_cores_that_running_solves_leave() -> None:
    auto = dataclasses.replace(LONG, solver_processes=0)
    model = city_model(60)
    with SolveExecutor(max_workers=2, max_queued=2, cores=3) as ex:
        a = ex.submit(model, auto)
        b = ex.submit(model, dataclasses.replace(LONG, solver_processes=2))
        c = ex.submit(model, auto)  # queued: resolved when it starts
        d = ex.submit(model, dataclasses.replace(auto, iteration_limit=10**6))
        assert [j.options.solver_processes for j in (a, b, c, d)] == [3, 2, 0, 0]
        wait_running(a)
        a.cancel()
        wait_running(c)  # a's slot: 3 cores - b's 2 leave 1
        b.cancel()
        wait_running(d)  # b's slot: an iteration limit takes every core, whatever the load
        assert [j.options.solver_processes for j in (a, b, c, d)] == [3, 2, 1, 3]
        c.cancel()
        d.cancel()
        for job, processes in zip((a, b, c, d), (3, 2, 1, 3), strict=True):
            solution = job.result(timeout=10)
            check_solution(model, solution, geodesic_meters_per_second=10.0)
            assert solution.solver_processes == processes
            if processes > 1:
                assert f"best of {processes} parallel searches" in solution.backend_reason


def test_executor_rejects_no_cores() -> None:
    with pytest.raises(ValueError, match="cores"):
        SolveExecutor(max_workers=1, cores=0)


def test_cancel_returns_interrupted_solution_quickly(executor: SolveExecutor) -> None:
    job = executor.submit(city_model(150), LONG)
    wait_running(job)
    started = time.monotonic()
    job.cancel()
    solution = job.result(timeout=5)
    assert time.monotonic() - started < 1.5
    assert solution.status is SolveStatus.INTERRUPTED
    assert sum(len(r.visits) for r in solution.routes) == 150
    job.cancel()  # idempotent once done


def test_cancel_kills_a_worker_that_does_not_stop(executor: SolveExecutor) -> None:
    job = executor.submit(city_model(150), LONG)
    wait_running(job)
    assert job.pid is not None
    os.kill(job.pid, signal.SIGSTOP)  # a worker that never polls should_stop again
    started = time.monotonic()
    job.cancel()
    with pytest.raises(NoSolutionError, match="cancelled") as info:
        job.result(timeout=5)
    assert info.value.reason == "interrupted"
    assert 0.9 < time.monotonic() - started < 2.5  # the grace period, then SIGKILL
    assert executor.running_count == 0


def test_the_watchdog_stopping_a_worker_before_any_solution_is_a_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression (fuzz): a worker stopped by the watchdog before it reported a solution gave
    a SolverError (INTERNAL for the caller); the time limit ran out: NoSolutionError
    ``time_limit`` (DEADLINE_EXCEEDED)."""
    import runtime.local

    monkeypatch.setattr(runtime.local, "WATCHDOG_FACTOR", 1.0)
    monkeypatch.setattr(runtime.local, "WATCHDOG_SLACK_S", 0.2)
    with SolveExecutor(max_workers=1, cancel_grace_s=0.3) as ex:
        job = ex.submit(city_model(150), dataclasses.replace(LONG, time_limit_s=1.0))
        deadline = time.monotonic() + 10
        while job.pid is None:
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.005)
        os.kill(job.pid, signal.SIGSTOP)  # it neither solves nor polls its stop flag any more
        with pytest.raises(NoSolutionError, match="overran its time limit") as info:
            job.result(timeout=10)
        assert info.value.reason == "time_limit"
        again = ex.submit(city_model(3), SolveOptions(time_limit_s=5.0))
        assert again.result(timeout=10).status is SolveStatus.SOLVED


def test_killed_worker_raises_solver_error_and_executor_keeps_working(
    executor: SolveExecutor,
) -> None:
    job = executor.submit(city_model(150), LONG)
    wait_running(job)
    assert job.pid is not None
    os.kill(job.pid, signal.SIGKILL)
    with pytest.raises(SolverError, match="SIGKILL") as info:
        job.result(timeout=5)
    assert "Traceback" not in str(info.value)
    again = executor.submit(city_model(3), SolveOptions(time_limit_s=5.0))
    assert again.result(timeout=10).status is SolveStatus.SOLVED


def ended_interrupted(job: SolveJob) -> bool:
    """A cancelled job ends with its best solution so far (INTERRUPTED), or with
    NoSolutionError("interrupted") when it had not found one yet."""
    try:
        return job.result(timeout=5).status is SolveStatus.INTERRUPTED
    except NoSolutionError as exc:
        return exc.reason == "interrupted"


def test_full_executor_raises_and_queue_drains(executor: SolveExecutor) -> None:
    running = [executor.submit(city_model(150, seed=s), LONG) for s in range(2)]
    queued = executor.submit(city_model(3), SolveOptions(time_limit_s=5.0))
    assert executor.running_count == 2
    assert executor.queued_count == 1
    with pytest.raises(ExecutorFullError, match="busy"):
        executor.submit(city_model(3), SolveOptions(time_limit_s=5.0))
    assert not queued.done()
    running[0].cancel()  # frees a slot: the queued job starts and finishes
    assert queued.result(timeout=10).status is SolveStatus.SOLVED
    assert ended_interrupted(running[0])
    running[1].cancel()
    assert ended_interrupted(running[1])
    assert executor.running_count == 0
    assert executor.queued_count == 0


def test_cancel_queued_job_never_starts(executor: SolveExecutor) -> None:
    running = [executor.submit(city_model(150, seed=s), LONG) for s in range(2)]
    queued = executor.submit(city_model(3), SolveOptions(time_limit_s=5.0))
    queued.cancel()
    with pytest.raises(CancelledError):
        queued.result(timeout=1)
    assert queued.pid is None
    assert executor.queued_count == 0
    for job in running:
        job.cancel()
        assert ended_interrupted(job)


def test_time_in_queue_counts_against_the_budget() -> None:
    with SolveExecutor(max_workers=1, max_queued=1) as ex:
        busy = SolveOptions(time_limit_s=1.5, search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME)
        first = ex.submit(city_model(100), busy)
        second = ex.submit(city_model(100, seed=2), SolveOptions(time_limit_s=2.5))
        first.result(timeout=10)
        solution = second.result(timeout=10)
        assert solution.solver_time_limit_s < 1.2  # 2.5 s less ~1.5 s in the queue
        assert time.monotonic() - second.submitted_at < 3.0


def test_shutdown() -> None:
    ex = SolveExecutor(max_workers=1)
    job = ex.submit(city_model(150), LONG)
    wait_running(job)
    started = time.monotonic()
    ex.shutdown(cancel_running=True)
    assert time.monotonic() - started < 2.0
    assert job.result(timeout=0).status is SolveStatus.INTERRUPTED
    with pytest.raises(ExecutorShutdownError):
        ex.submit(city_model(3), SolveOptions())
    ex.shutdown()  # idempotent


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        SolveExecutor(max_workers=0)
    with pytest.raises(ValueError, match="max_queued"):
        SolveExecutor(max_workers=1, max_queued=-1)


def test_progress_reaches_the_caller_and_cancel_keeps_the_best(executor: SolveExecutor) -> None:
    updates = []
    job = executor.submit(city_model(60), LONG, on_progress=updates.append)
    deadline = time.monotonic() + 10
    while not any(u.solution is not None for u in updates):
        assert time.monotonic() < deadline, "no progress with a solution"
        time.sleep(0.05)
    time.sleep(0.5)
    job.cancel()
    model = job.model
    solution = job.result(timeout=5)
    assert solution.status is SolveStatus.INTERRUPTED
    check_solution(model, solution)
    for update in updates:
        if update.solution is not None:
            check_solution(model, update.solution)
    costs = [u.cost for u in updates]
    assert costs == sorted(costs, reverse=True)
    assert len(set(costs)) == len(costs)
    assert solution.metrics.total_cost <= updates[0].solution.metrics.total_cost + 1e-6


def test_hard_killed_worker_yields_its_best_reported_solution() -> None:
    """A worker that ignores the stop flag (here: stopped with SIGSTOP) is killed after the grace
    period; the job still returns the last solution it reported."""
    with SolveExecutor(max_workers=1, cancel_grace_s=0.3) as ex:
        updates = []
        job = ex.submit(
            city_model(30), LONG, on_progress=updates.append, progress_solutions_every_s=0.0
        )
        deadline = time.monotonic() + 10
        while not updates or job.pid is None:
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
        time.sleep(0.3)
        assert job.pid is not None
        os.kill(job.pid, signal.SIGSTOP)
        time.sleep(0.2)  # progress sent before the stop is read
        reported = [u.solution for u in updates if u.solution is not None][-1]
        started = time.monotonic()
        job.cancel()
        solution = job.result(timeout=5)
        assert time.monotonic() - started < 2.0
        assert solution.status is SolveStatus.INTERRUPTED
        assert solution == reported
        check_solution(job.model, solution)
