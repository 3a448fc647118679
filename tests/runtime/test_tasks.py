"""Tasks on the local executor: a caller's entry run in a worker process like a solve, sharing
the slots and the queue with solves, with progress, cancellation, the grace kill, the engine's
errors and worker death."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError

import pytest

from engine.errors import (
    ExecutorFullError,
    FieldViolation,
    InvalidModelError,
    NoSolutionError,
    SolverError,
    WorkerLostError,
)
from runtime.base import TaskContext
from runtime.local import SolveExecutor, SolveJob
from tests.runtime.test_local import LONG, city_model


def report_pid(payload: bytes, context: TaskContext) -> bytes:
    """Reports its pid, then runs until stopped (or ``payload`` seconds), counting its checks;
    returns what it saw."""
    context.report(json.dumps({"pid": os.getpid()}).encode())
    limit = float(payload or b"60")
    started = time.monotonic()
    checks = 0
    while not context.should_stop() and time.monotonic() - started < limit:
        checks += 1
        time.sleep(0.01)
    out = {
        "pid": os.getpid(),
        "stopped": context.should_stop(),
        "cores": context.cores,
        "limit": context.time_limit_s,
        "checks": checks,
    }
    return json.dumps(out).encode()


def invalid(payload: bytes, context: TaskContext) -> bytes:
    raise InvalidModelError([FieldViolation("study.depots", payload.decode())])


def ignores_stop(payload: bytes, context: TaskContext) -> bytes:
    context.report(str(os.getpid()).encode())
    time.sleep(120)
    return b"never"


def wrong_type(payload: bytes, context: TaskContext) -> bytes:
    return "text"  # type: ignore[return-value]


@pytest.fixture(scope="module")
def executor() -> Iterator[SolveExecutor]:
    with SolveExecutor(max_workers=2, max_queued=1, cores=2) as ex:
        ex.warm_up()
        yield ex


def first_report(reports: list[bytes], timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    while not reports:
        assert time.monotonic() < deadline, "no progress report"
        time.sleep(0.02)
    return reports[0]


def test_a_task_runs_in_a_worker_process_and_reports_progress(executor: SolveExecutor) -> None:
    reports: list[bytes] = []
    job = executor.submit_task(report_pid, b"0.3", time_limit_s=10.0, on_progress=reports.append)
    out = json.loads(job.result(timeout=30))
    assert out["pid"] != os.getpid()
    assert json.loads(reports[0]) == {"pid": out["pid"]}
    assert not out["stopped"]
    assert out["cores"] == 1
    assert 0 < out["limit"] <= 10.0


def test_cancel_sets_the_stop_flag_and_the_task_returns(executor: SolveExecutor) -> None:
    reports: list[bytes] = []
    job = executor.submit_task(report_pid, b"", time_limit_s=60.0, on_progress=reports.append)
    first_report(reports)
    job.cancel()
    out = json.loads(job.result(timeout=30))
    assert out["stopped"]
    assert out["checks"] > 0


def test_a_task_that_ignores_the_stop_is_killed_after_the_grace(executor: SolveExecutor) -> None:
    reports: list[bytes] = []
    job = executor.submit_task(ignores_stop, b"", time_limit_s=60.0, on_progress=reports.append)
    assert isinstance(job, SolveJob)
    job.grace_s = 0.5
    first_report(reports)
    job.cancel()
    # killed before it sent an outcome: cancelled without a result, as for a solve
    with pytest.raises(NoSolutionError, match="cancelled"):
        job.result(timeout=30)


def test_a_killed_task_worker_is_a_lost_worker(executor: SolveExecutor) -> None:
    reports: list[bytes] = []
    job = executor.submit_task(report_pid, b"", time_limit_s=60.0, on_progress=reports.append)
    pid = json.loads(first_report(reports))["pid"]
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerLostError, match="SIGKILL"):
        job.result(timeout=30)
    again = executor.submit_task(report_pid, b"0", time_limit_s=5.0)
    assert json.loads(again.result(timeout=30))["pid"] != pid


def test_errors_cross_as_for_solves(executor: SolveExecutor) -> None:
    job = executor.submit_task(invalid, b"no depot", time_limit_s=5.0)
    with pytest.raises(InvalidModelError) as info:
        job.result(timeout=30)
    assert info.value.violations == (FieldViolation("study.depots", "no depot"),)
    with pytest.raises(SolverError):
        executor.submit_task(wrong_type, b"", time_limit_s=5.0).result(timeout=30)


def test_tasks_and_solves_share_the_slots_and_the_queue(executor: SolveExecutor) -> None:
    reports: list[bytes] = []
    task = executor.submit_task(report_pid, b"", time_limit_s=60.0, on_progress=reports.append)
    solve = executor.submit(city_model(150), LONG)
    queued = executor.submit_task(report_pid, b"0", time_limit_s=5.0)
    try:
        assert executor.running_count == 2
        assert executor.queued_count == 1
        with pytest.raises(ExecutorFullError):
            executor.submit_task(report_pid, b"0", time_limit_s=5.0)
        queued.cancel()
        with pytest.raises(CancelledError):
            queued.result(timeout=5)
    finally:
        task.cancel()
        solve.cancel()
    assert json.loads(task.result(timeout=30))["stopped"]
    solve.result(timeout=30)


def test_arguments_of_a_task_are_checked(executor: SolveExecutor) -> None:
    with pytest.raises(ValueError, match="time_limit_s"):
        executor.submit_task(report_pid, b"", time_limit_s=0.0)
    with pytest.raises(ValueError, match="cores"):
        executor.submit_task(report_pid, b"", time_limit_s=1.0, cores=-1)
