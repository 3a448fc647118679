"""EvaluateDepotLayouts studies run in worker processes, like solves (a real server subprocess):
the study's process is a worker below the server, a cancel stops it, the request's timeout ends
it, a worker killed mid-study runs the study again, a study that kills its worker every time
ends ABORTED, and the server answers health checks SERVING throughout.

Assertions are on states and processes, with generous waits (the machine may be loaded)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from google.longrunning import operations_pb2
from google.rpc import code_pb2

from rpc.pb import route_optimization_service_pb2 as pb
from runtime.worker import CRASH_WORKER_LABEL, TEST_HOOKS_ENV_VAR
from tests.rpc.test_faults import TASK_COMM, alive, named_below, serving, wait_for
from tests.rpc.test_layouts import Client, check_layouts_response, study_request
from tests.rpc.test_server_e2e import ServerProcess


def study_processes(srv: ServerProcess) -> list[int]:
    return [pid for pid, comm in named_below(srv.proc.pid).items() if comm == TASK_COMM]


def long_study(layouts: int = 8, layout_timeout_s: float = 2.0) -> pb.EvaluateDepotLayoutsRequest:
    request = study_request(orders=14, layout_timeout_s=layout_timeout_s, search=False)
    for k in range(layouts - 2):
        request.study.layouts.add(label=f"extra{k}", depots=["D1", "D2"][: 1 + k % 2])
    return request


def wait_until(client: Client, name: str, done: Callable[[pb.EvaluateDepotLayoutsMetadata], bool],
               what: str, timeout_s: float = 60.0) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while not done(client.metadata(name)):
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.05)


def state_of(operation: operations_pb2.Operation) -> pb.EvaluateDepotLayoutsMetadata:
    md = pb.EvaluateDepotLayoutsMetadata()
    assert operation.metadata.Unpack(md)
    return md


def response_of(operation: operations_pb2.Operation) -> pb.EvaluateDepotLayoutsResponse:
    assert operation.WhichOneof("result") == "response", operation
    response = pb.EvaluateDepotLayoutsResponse()
    assert operation.response.Unpack(response)
    return response


def args(tmp_path: Path) -> tuple[str, ...]:
    return ("--osm", "none", "--workers", "1", "--data-dir", str(tmp_path / "data"))


def test_a_study_runs_in_a_worker_process_and_a_cancel_stops_it(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "server.log", *args(tmp_path))
    try:
        client = Client(srv)
        request = long_study()
        name = client.stub.EvaluateDepotLayouts(request, timeout=10).name
        wait_until(client, name, lambda md: md.state == pb.RUNNING, "the study started")
        wait_for(lambda: study_processes(srv), 30.0, "the study's worker process")
        workers = study_processes(srv)
        assert len(workers) == 1
        assert srv.proc.pid not in workers  # a process of its own, below the server
        wait_until(client, name, lambda md: md.layouts_done >= 1, "a layout routed")
        assert serving(srv)
        client.ops.CancelOperation(operations_pb2.CancelOperationRequest(name=name), timeout=5)
        done = client.wait(name, timeout_s=60)
        md = state_of(done)
        assert md.state == pb.CANCELLED
        response = response_of(done)
        assert 1 <= len(response.layouts) < 8  # it stopped: the other layouts were not routed
        check_layouts_response(request, response)
        wait_for(lambda: not alive(workers), 30.0, "the study's worker exited")
        assert serving(srv)
    finally:
        assert srv.terminate() == 0, srv.log()


def test_the_timeout_of_a_study_ends_it_with_the_layouts_routed(tmp_path: Path) -> None:
    """Twenty-four layouts of up to 2 s each (at least ~1 s each on 14 orders, two at a time on
    two cores: well over the budget), a 5 s timeout: the study ends SUCCEEDED with the layouts
    routed within its budget, not all of them; a budget too short for any layout fails with
    DEADLINE_EXCEEDED."""
    srv = ServerProcess(tmp_path / "server.log", *args(tmp_path))
    try:
        client = Client(srv)
        request = long_study(layouts=24)
        request.timeout.FromSeconds(5)
        done = client.wait(client.stub.EvaluateDepotLayouts(request, timeout=10).name)
        assert state_of(done).state == pb.SUCCEEDED
        response = response_of(done)
        # on a quiet machine 8 layouts fit in 5 s (measured: 1.2 s each, two at a time)
        assert 1 <= len(response.layouts) < 24
        check_layouts_response(request, response)
        tiny = long_study(layouts=2)
        tiny.timeout.FromNanoseconds(1)
        failed = client.wait(client.stub.EvaluateDepotLayouts(tiny, timeout=10).name)
        assert state_of(failed).state == pb.FAILED
        assert failed.error.code == code_pb2.DEADLINE_EXCEEDED, failed.error
        assert serving(srv)
    finally:
        assert srv.terminate() == 0, srv.log()


def test_a_killed_study_worker_runs_it_again_and_a_poison_study_ends_aborted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TEST_HOOKS_ENV_VAR, "1")  # the server inherits it
    srv = ServerProcess(tmp_path / "server.log", *args(tmp_path))
    try:
        client = Client(srv)
        request = long_study(layouts=4, layout_timeout_s=1.0)
        name = client.stub.EvaluateDepotLayouts(request, timeout=10).name
        wait_until(client, name, lambda md: md.layouts_done >= 1, "a layout routed")
        workers = study_processes(srv)
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)
        done = client.wait(name, timeout_s=90)
        md = state_of(done)
        assert (md.state, md.attempt) == (pb.SUCCEEDED, 2)
        response = response_of(done)
        assert len(response.layouts) == 4
        check_layouts_response(request, response)
        assert serving(srv)

        poison = study_request(search=False)
        poison.label = CRASH_WORKER_LABEL
        aborted = client.wait(client.stub.EvaluateDepotLayouts(poison, timeout=10).name)
        assert aborted.error.code == code_pb2.ABORTED
        assert "killed by SIGKILL" in aborted.error.message
        assert "each of 3 attempts" in aborted.error.message
        assert (state_of(aborted).state, state_of(aborted).attempt) == (pb.FAILED, 3)
        assert serving(srv)
    finally:
        assert srv.terminate() == 0, srv.log()


def test_sigterm_mid_study_queues_it_again_without_spending_an_attempt(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "server.log", *args(tmp_path))
    request = long_study(layouts=4, layout_timeout_s=1.0)
    try:
        client = Client(srv)
        name = client.stub.EvaluateDepotLayouts(request, timeout=10).name
        wait_until(client, name, lambda md: md.layouts_done >= 1, "a layout routed")
        workers = study_processes(srv)
        assert len(workers) == 1
    finally:
        assert srv.terminate() == 0, srv.log()  # SIGTERM: drains
    assert not alive(workers)
    assert "interrupted by the shutdown" in srv.log()
    srv = ServerProcess(tmp_path / "server.log", *args(tmp_path))
    try:
        done = Client(srv).wait(name, timeout_s=90)
        md = state_of(done)
        assert (md.state, md.attempt) == (pb.SUCCEEDED, 1)  # the interrupted attempt not spent
        response = response_of(done)
        assert len(response.layouts) == 4
        check_layouts_response(request, response)
    finally:
        assert srv.terminate() == 0, srv.log()


def hard_search_request() -> pb.EvaluateDepotLayoutsRequest:
    """``tests.planning.test_budget.hard_study`` as a request: a search whose screening MIP
    SCIP does not finish in 40 s (each MIP may take 10 s, the screening's own limit)."""
    rng = np.random.default_rng(5)
    request = pb.EvaluateDepotLayoutsRequest(label="hard", use_geodesic_distances=True)
    study = request.study

    def place(message: pb.CandidateDepot | pb.LayoutOrder, x: float, y: float) -> None:
        message.location.latitude, message.location.longitude = 60.1 + y / 1000, 24.8 + x / 500

    for j in range(30):
        depot = study.depots.add(label=f"D{j}")
        place(depot, *rng.uniform(0, 100, 2))
        depot.capacity["parcels"] = int(rng.integers(80, 160))
        depot.opening_cost = float(rng.uniform(100, 400))
    day = study.days.add(label="monday")
    for i in range(150):
        order = day.orders.add(label=f"o{i}")
        place(order, *rng.uniform(0, 100, 2))
        order.demands["parcels"] = int(rng.integers(5, 35))
    van = study.fleet.add(label="van", fixed_cost=50.0, cost_per_kilometer=1.0)
    van.capacities["parcels"] = 100
    study.search.mode = pb.LayoutSearch.MIN_COST
    return request


def run_time(md: pb.EvaluateDepotLayoutsMetadata) -> float:
    """Seconds from the operation's start (its attempt counted) to its end, by the server."""
    return (md.end_time.ToNanoseconds() - md.start_time.ToNanoseconds()) / 1e9


def test_the_timeout_and_a_cancel_reach_inside_the_screening_mip(tmp_path: Path) -> None:
    """The first screening MIP of this search runs its whole 10 s limit unless stopped.

    With a 2 s timeout the study ends (DEADLINE_EXCEEDED, or the few layouts it routed) well
    before that MIP alone would have (the bound leaves 7 s for the rest on a loaded machine;
    without the MIP held to the time left the study runs over 10 s). A cancel during the MIP
    interrupts it: the worker returns by itself (the operation's error says nothing of a
    worker stopped by force, as it would after the grace kill)."""
    srv = ServerProcess(tmp_path / "server.log", *args(tmp_path))
    try:
        client = Client(srv)
        request = hard_search_request()
        request.timeout.FromSeconds(2)
        done = client.wait(client.stub.EvaluateDepotLayouts(request, timeout=30).name, 120)
        md = state_of(done)
        assert run_time(md) < 9.0, f"the study ran {run_time(md):.1f} s with a 2 s timeout"
        if md.state == pb.FAILED:
            assert done.error.code == code_pb2.DEADLINE_EXCEEDED, done.error
        else:
            assert md.state == pb.SUCCEEDED
        assert serving(srv)

        name = client.stub.EvaluateDepotLayouts(hard_search_request(), timeout=30).name
        wait_for(lambda: study_processes(srv), 30.0, "the study's worker process")
        time.sleep(2.0)  # in the first MIP (it takes 10 s)
        assert serving(srv)
        client.ops.CancelOperation(operations_pb2.CancelOperationRequest(name=name), timeout=5)
        cancelled = client.wait(name, timeout_s=60)
        assert state_of(cancelled).state == pb.CANCELLED
        assert cancelled.error.code == code_pb2.CANCELLED
        assert "stopped" not in cancelled.error.message, cancelled.error.message
        assert serving(srv)
    finally:
        assert srv.terminate() == 0, srv.log()
