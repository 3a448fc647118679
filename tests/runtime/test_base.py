"""The machinery shared by the executors (runtime.base), on a fake executor whose jobs run
until the test ends them: slots, back-pressure, queue, cancellation, cores, shutdown."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError

import pytest

from engine.errors import ExecutorFullError, ExecutorShutdownError, SolverError
from engine.model import LatLng, Shipment, ShipmentModel, Vehicle, VisitRequest
from engine.options import SolveOptions
from engine.progress import SolveProgress
from engine.solution import Metrics, Solution, SolveStatus
from runtime.base import (
    MIN_QUEUED_BUDGET_S,
    BaseJob,
    SlotExecutor,
    SolveRequest,
    charge_queue_time,
)

MODEL = ShipmentModel(
    shipments=(Shipment(deliveries=(VisitRequest(arrival_location=LatLng(0.0, 0.001)),)),),
    vehicles=(Vehicle(start_location=LatLng(0.0, 0.0)),),
)
SOLUTION = Solution(routes=(), skipped_shipments=(), metrics=Metrics(), status=SolveStatus.SOLVED)
AUTO = SolveOptions(time_limit_s=10.0, solver_processes=0)


class FakeJob(BaseJob):
    def __init__(self, request: SolveRequest, dequeue: Callable[[BaseJob], bool]) -> None:
        super().__init__(request, dequeue)
        self.stop_requests = 0

    def request_stop(self) -> None:
        self.stop_requests += 1


class FakeExecutor(SlotExecutor[FakeJob]):
    """Launching records the job; :meth:`finish` ends it like an implementation would."""

    def __init__(self, max_workers: int, max_queued: int, cores: int | None = None) -> None:
        super().__init__(max_workers, max_queued, cores=cores, slots="fake slots")
        self.launched: list[FakeJob] = []
        self.closed = 0
        self.auto_finish = False

    def _new_job(self, request: SolveRequest) -> FakeJob:
        return FakeJob(request, self.dequeue)

    def _launch(self, job: FakeJob) -> None:
        self.launched.append(job)
        if self.auto_finish:  # not under the executor's lock
            threading.Thread(target=self.finish, args=(job,)).start()

    def _close(self) -> None:
        self.closed += 1

    def finish(self, job: FakeJob, outcome: Solution | BaseException = SOLUTION) -> None:
        self.release(job)
        job.settle(outcome)


def test_slots_then_queue_then_back_pressure() -> None:
    ex = FakeExecutor(max_workers=2, max_queued=1)
    a, b, c = (ex.submit(MODEL, AUTO) for _ in range(3))
    assert ex.launched == [a, b]
    assert (ex.running_count, ex.queued_count) == (2, 1)
    with pytest.raises(ExecutorFullError, match="all 2 fake slots are busy and 1 requests"):
        ex.submit(MODEL, AUTO)
    ex.finish(a)
    assert a.result(0) is SOLUTION
    assert ex.launched == [a, b, c]  # the queued job took the free slot
    assert set(ex.running_jobs()) == {b, c}
    assert (ex.running_count, ex.queued_count) == (2, 0)


def test_cancel_a_queued_job_and_a_running_one() -> None:
    ex = FakeExecutor(max_workers=1, max_queued=1)
    running, queued = ex.submit(MODEL, AUTO), ex.submit(MODEL, AUTO)
    queued.cancel()
    with pytest.raises(CancelledError):
        queued.result(0)
    assert queued.stop_requests == 0
    assert ex.queued_count == 0
    running.cancel()
    running.cancel()  # idempotent
    assert running.cancel_requested
    assert running.stop_requests == 1
    assert not running.done()  # the implementation ends it
    ex.finish(running, SolverError("stopped"))
    with pytest.raises(SolverError, match="stopped"):
        running.result(0)
    assert isinstance(running.exception(0), SolverError)
    running.cancel()  # nothing once done
    assert running.stop_requests == 1
    assert ex.launched == [running]


def test_a_job_cancelled_while_leaving_the_queue_never_starts() -> None:
    ex = FakeExecutor(max_workers=1, max_queued=1)
    running = ex.submit(MODEL, AUTO)
    ex.dequeue = lambda job: False  # type: ignore[method-assign]  # cancel() loses the race
    queued = ex.submit(MODEL, AUTO)
    queued.cancel()
    assert ex.queued_count == 1
    assert not queued.done()
    ex.finish(running)  # frees the slot: the queued job is found cancelled
    with pytest.raises(CancelledError):
        queued.result(0)
    assert ex.launched == [running]
    assert ex.queued_count == 0


def test_auto_solver_processes_share_the_cores() -> None:
    ex = FakeExecutor(max_workers=3, max_queued=2, cores=3)
    a = ex.submit(MODEL, AUTO)
    b = ex.submit(MODEL, dataclasses.replace(AUTO, solver_processes=2))
    c = ex.submit(MODEL, AUTO)  # no idle core left: one search
    d = ex.submit(MODEL, AUTO)  # queued: resolved when it starts
    e = ex.submit(MODEL, dataclasses.replace(AUTO, iteration_limit=100))
    assert [j.options.solver_processes for j in (a, b, c, d, e)] == [3, 2, 1, 0, 0]
    ex.finish(a)
    ex.finish(c)  # b's 2 of 3 cores are busy
    assert [j.options.solver_processes for j in (d, e)] == [1, 3]  # an iteration limit: all


def test_one_core_per_slot() -> None:
    ex = FakeExecutor(max_workers=2, max_queued=0)
    assert ex.submit(MODEL, AUTO).options.solver_processes == 1
    assert (
        ex.submit(MODEL, dataclasses.replace(AUTO, solver_processes=4)).options.solver_processes
        == 4
    )


def test_time_in_the_queue_counts_against_the_budget() -> None:
    options = SolveOptions(time_limit_s=2.0)
    now = time.monotonic()
    assert charge_queue_time(options, now + 1) is options  # no wait
    assert charge_queue_time(options, now - 0.5).time_limit_s == pytest.approx(1.5, abs=0.05)
    assert charge_queue_time(options, now - 10).time_limit_s == MIN_QUEUED_BUDGET_S
    small = SolveOptions(time_limit_s=0.05)
    assert charge_queue_time(small, now - 1).time_limit_s == 0.05  # never more than given


def test_progress_reaches_the_callback_and_keeps_the_best(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ex = FakeExecutor(max_workers=1, max_queued=0)
    updates: list[SolveProgress] = []
    job = ex.submit(MODEL, AUTO, on_progress=updates.append, progress_solutions_every_s=0.5)
    assert job.progress_every_s == 0.5
    job.report(SolveProgress(0.1, 5.0, 1, solution=SOLUTION))
    job.report(SolveProgress(0.2, 4.0, 2))
    assert [u.cost for u in updates] == [5.0, 4.0]
    assert job.best_solution is SOLUTION

    def broken(update: SolveProgress) -> None:
        raise RuntimeError("listener bug")

    job.on_progress = broken
    with caplog.at_level(logging.ERROR, logger="runtime.base"):
        job.report(SolveProgress(0.3, 3.0, 3))
    assert "progress callback failed" in caplog.text
    ex.finish(job)
    silent = ex.submit(MODEL, AUTO)
    assert silent.progress_every_s is None


def test_done_callbacks_get_the_job() -> None:
    ex = FakeExecutor(max_workers=1, max_queued=0)
    job = ex.submit(MODEL, AUTO)
    seen: list[BaseJob] = []
    job.add_done_callback(seen.append)
    assert seen == []
    ex.finish(job)
    job.add_done_callback(seen.append)  # at once when already done
    assert seen == [job, job]


def test_shutdown_cancels_waits_and_closes_once() -> None:
    ex = FakeExecutor(max_workers=1, max_queued=1)
    running, queued = ex.submit(MODEL, AUTO), ex.submit(MODEL, AUTO)
    threading.Timer(0.2, ex.finish, args=(running,)).start()
    started = time.monotonic()
    ex.shutdown(cancel_running=True)
    assert time.monotonic() - started >= 0.15  # waited for the running job
    assert running.stop_requests == 1
    with pytest.raises(CancelledError):
        queued.result(0)
    with pytest.raises(ExecutorShutdownError):
        ex.submit(MODEL, AUTO)
    ex.shutdown()
    assert ex.closed == 1


def test_shutdown_without_cancel_lets_jobs_finish() -> None:
    with FakeExecutor(max_workers=1, max_queued=1) as ex:
        running, queued = ex.submit(MODEL, AUTO), ex.submit(MODEL, AUTO)
        ex.shutdown(wait=False)
        assert running.stop_requests == 0
        ex.finish(running)
        ex.finish(queued)
        assert queued.result(0) is SOLUTION
    assert ex.closed == 1


def test_warm_up_runs_one_solve() -> None:
    ex = FakeExecutor(max_workers=1, max_queued=0)
    ex.auto_finish = True
    assert ex.warm_up(timeout=5.0) >= 0.0
    assert len(ex.launched) == 1
    assert ex.launched[0].options.use_geodesic_distances


def test_warm_up_that_does_not_finish_is_a_solver_error() -> None:
    ex = FakeExecutor(max_workers=1, max_queued=0)
    with pytest.raises(SolverError, match="warm-up"):
        ex.warm_up(timeout=0.1)
    assert ex.launched[0].stop_requests == 1


@pytest.mark.parametrize(
    ("workers", "queued", "cores", "match"),
    [(0, 0, None, "max_workers"), (1, -1, None, "max_queued"), (1, 0, 0, "cores")],
)
def test_arguments_are_checked(workers: int, queued: int, cores: int | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FakeExecutor(workers, queued, cores)
