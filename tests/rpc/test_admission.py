"""Call slots and back-pressure (:mod:`rpc.admission`, :class:`rpc.servicer.ProgressMailbox`):
long calls cannot take the threads that health checks and new calls need; a kind's slots full
is RESOURCE_EXHAUSTED with RetryInfo; a slow stream reader keeps server memory bounded.

The servers here run an executor that runs nothing (:mod:`tests.rpc.secured`): a synchronous
solve or a stream lasts until its call ends, an operation stays queued (so WaitOperation waits),
which holds a call for as long as the test wants, without timing assumptions."""

from __future__ import annotations

import dataclasses
import queue
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from grpc_health.v1 import health_pb2

from engine import solve
from engine.progress import SolveProgress
from rpc.admission import FREE_THREADS, KINDS, CallSlots, pool_size, slot_counts
from rpc.config import ServerConfig
from rpc.errors import CallSlotsFullError
from rpc.limits import Limits
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.server import bind, build_server
from rpc.servicer import _DONE, _GONE, ProgressMailbox
from tests.rpc.secured import (
    Client,
    NoExecutor,
    Running,
    details_of,
    eventually,
    failure,
    serve,
    stop,
)
from tests.rpc.test_server_e2e import small_request

SLOTS = Limits(solve_calls=1, streams=1, long_polls=2, matrix_calls=1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    running = serve(tmp_path / "data", limits=SLOTS)
    yield running
    stop(running)


def held(running: Running, kind: str) -> int:
    slots = running.built.call_slots
    assert slots is not None
    return slots.held(kind)


def wait_request(name: str, seconds: int = 30) -> operations_pb2.WaitOperationRequest:
    request = operations_pb2.WaitOperationRequest(name=name)
    request.timeout.FromSeconds(seconds)
    return request


def serving(client: Client) -> bool:
    reply = client.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def refused_busy(error: grpc.RpcError, kind: str) -> None:
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error  # type: ignore[attr-defined]
    details = details_of(error)
    assert details["RetryInfo"].retry_delay.seconds >= 1
    assert details["ErrorInfo"].reason == "SERVER_BUSY"
    assert details["ErrorInfo"].metadata["limit"] == kind


# -- the slots -------------------------------------------------------------------------------------


def test_slots_are_taken_and_given_back_once() -> None:
    slots = CallSlots({"streams": 2})
    first, second = slots.acquire("streams"), slots.acquire("streams")
    with pytest.raises(CallSlotsFullError) as caught:
        slots.acquire("streams")
    assert caught.value.limit == 2
    first()
    first()  # twice: still one slot back
    assert slots.held("streams") == 1
    slots.acquire("streams")
    with pytest.raises(CallSlotsFullError):
        slots.acquire("streams")
    second()
    assert slots.held("streams") == 1


def test_the_pool_has_a_thread_per_slot_and_free_threads() -> None:
    slots = slot_counts(Limits(streams=3, long_polls=4, matrix_calls=1), solve_capacity=6)
    assert slots == {"solve_calls": 6, "streams": 3, "long_polls": 4, "matrix_calls": 1}
    assert pool_size(slots) == 14 + FREE_THREADS
    assert slot_counts(Limits(solve_calls=2), 6)["solve_calls"] == 2
    assert set(KINDS.values()) == set(slots)


# -- the server ------------------------------------------------------------------------------------


def test_full_long_polls_are_refused_and_health_and_new_calls_still_answer(
    server: Running,
) -> None:
    client = server.client()
    name = client.submit()  # stays queued: a WaitOperation on it waits its whole timeout
    polls = [client.ops.WaitOperation.future(wait_request(name), timeout=60) for _ in range(2)]
    eventually(lambda: held(server, "long_polls") == 2)
    # many more at once: each refused at once, none takes a thread for long
    with ThreadPoolExecutor(8) as pool:
        errors = list(
            pool.map(
                lambda _: failure(lambda: client.ops.WaitOperation(wait_request(name), timeout=10)),
                range(40),
            )
        )
    for error in errors:
        refused_busy(error, "long_polls")
    assert serving(client)
    assert client.get(name).name == name  # a short call
    assert client.submit()  # a new submission
    for poll in polls:
        poll.cancel()
    eventually(lambda: held(server, "long_polls") == 0)  # the slots are given back
    assert client.wait(name).name == name  # and a new long poll gets one
    client.close()


def test_a_full_stream_kind_is_refused_while_solves_and_health_answer(server: Running) -> None:
    client = server.client()
    stream = client.stub.OptimizeToursStream(small_request(), timeout=60)
    eventually(lambda: held(server, "streams") == 1)
    refused_busy(
        failure(lambda: list(client.stub.OptimizeToursStream(small_request(), timeout=10))),
        "streams",
    )
    solve = client.stub.OptimizeTours.future(small_request(), timeout=60)
    eventually(lambda: held(server, "solve_calls") == 1)
    refused_busy(
        failure(lambda: client.stub.OptimizeTours(small_request(), timeout=10)), "solve_calls"
    )
    assert serving(client)
    stream.cancel()
    solve.cancel()
    eventually(lambda: held(server, "streams") == held(server, "solve_calls") == 0)
    client.close()


def test_compute_matrix_takes_a_slot_only_while_it_runs(server: Running) -> None:
    client = server.client()
    request = pb.ComputeMatrixRequest()
    request.sources.add(latitude=60.17, longitude=24.94)
    request.destinations.add(latitude=60.17, longitude=24.94)
    for _ in range(3):  # no roads on this server: answered at once, the slot given back
        error = failure(lambda: client.stub.ComputeMatrix(request, timeout=10))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    assert held(server, "matrix_calls") == 0
    client.close()


def test_calls_without_credentials_take_no_slot(server: Running) -> None:
    key = server.keys.create("acme")
    anonymous = server.client()
    for _ in range(5):
        error = failure(
            lambda: anonymous.ops.WaitOperation(wait_request("operations/x"), timeout=10)
        )
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert held(server, "long_polls") == 0
    client = server.client(key.key)
    name = client.submit()
    poll = client.ops.WaitOperation.future(wait_request(name), timeout=60)
    eventually(lambda: held(server, "long_polls") == 1)
    poll.cancel()
    eventually(lambda: held(server, "long_polls") == 0)
    anonymous.close()
    client.close()


def test_the_server_limits_reach_the_calls(tmp_path: Path) -> None:
    running = serve(tmp_path / "data", limits=Limits(shipments=2, sync_timeout_s=60))
    client = running.client()
    try:
        error = failure(lambda: client.stub.OptimizeTours(small_request(), timeout=10))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert "--limit shipments=N" in error.details()  # type: ignore[attr-defined]
        request = small_request()
        del request.model.shipments[2:]
        request.timeout.seconds = 10**10  # threading's wait overflowed here once: INTERNAL
        error = failure(lambda: client.stub.OptimizeTours(request, timeout=10))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert "timeout" in error.details()  # type: ignore[attr-defined]
        # the long-running cap is another one
        request.timeout.seconds = 3600
        assert client.stub.OptimizeToursLongRunning(request, timeout=10).name
    finally:
        client.close()
        stop(running)


# -- the stream's buffer ---------------------------------------------------------------------------


def progress(k: int, *, solution: bool) -> SolveProgress:
    return SolveProgress(
        elapsed_s=float(k),
        cost=float(10_000 - k),
        solutions=k,
        solution=object() if solution else None,  # type: ignore[arg-type]
    )


def test_a_slow_reader_gets_the_latest_updates_not_a_backlog() -> None:
    box = ProgressMailbox()
    for k in range(1, 1001):
        box.put(progress(k, solution=k % 10 == 0))
    box.put(progress(1001, solution=False))
    box.put(_DONE)
    assert box.pending() == 2
    got: list[Any] = []
    while True:
        item = box.get(timeout=0)
        got.append(item)
        if item is _DONE:
            break
    assert [(p.solutions, p.solution is not None) for p in got[:-1]] == [
        (1000, True),
        (1001, False),
    ]
    assert box.dropped == 999


def test_the_end_of_a_call_wins_over_pending_updates() -> None:
    box = ProgressMailbox()
    box.put(progress(1, solution=True))
    box.put(_GONE)
    assert box.get(timeout=0) is _GONE
    with pytest.raises(queue.Empty):
        ProgressMailbox().get(timeout=0)


def test_the_stream_buffer_stays_bounded_whatever_the_reader_does() -> None:
    """Memory held by the mailbox does not grow with the number of unsent updates."""
    payload = 100_000

    def update(k: int) -> SolveProgress:
        return SolveProgress(float(k), 0.0, k, solution=bytearray(payload))  # type: ignore[arg-type]

    box = ProgressMailbox()
    tracemalloc.start()
    try:
        for k in range(500):  # 50 MB of updates if they were all kept
            box.put(update(k))
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < 5 * payload, current


GOOGLE_OPTIMIZE_TOURS = "/google.maps.routeoptimization.v1.RouteOptimization/OptimizeTours"


def test_googles_service_shares_the_slots_and_the_limits(tmp_path: Path) -> None:
    """Google's OptimizeTours (same messages on the wire) takes the same solve slots and is
    held to the same size limits."""
    running = serve(tmp_path / "data", limits=Limits(solve_calls=1, shipments=3))
    client = running.client()
    google = client.channel.unary_unary(
        GOOGLE_OPTIMIZE_TOURS,
        request_serializer=pb.OptimizeToursRequest.SerializeToString,
        response_deserializer=pb.OptimizeToursResponse.FromString,
    )
    try:
        call = google.future(small_request(), timeout=60)
        eventually(lambda: held(running, "solve_calls") == 1)
        refused_busy(
            failure(lambda: client.stub.OptimizeTours(small_request(), timeout=10)),
            "solve_calls",
        )
        call.cancel()
        eventually(lambda: held(running, "solve_calls") == 0)
        request = small_request()
        request.model.shipments.add().CopyFrom(request.model.shipments[0])
        error = failure(lambda: google(request, timeout=10))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert "--limit shipments=N" in error.details()  # type: ignore[attr-defined]
    finally:
        client.close()
        stop(running)


class BurstJob:
    """A solve that is over before its call reads anything."""

    id = 0

    def __init__(self, solution: Any) -> None:
        self.solution = solution

    def cancel(self) -> None:
        pass

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        return self.solution

    def add_done_callback(self, fn: Any) -> None:
        fn(self)


class BurstExecutor(NoExecutor):
    """Solves for real, then reports 1,000 improving solutions at once, faster than any reader."""

    updates = 1000

    def submit(self, model: Any, options: Any, **kwargs: Any) -> BurstJob:
        # one search in this thread: forking parallel searches from a threaded server can die
        solution = solve(model, dataclasses.replace(options, solver_processes=1))
        for k in range(self.updates):
            kwargs["on_progress"](SolveProgress(float(k), 1e6 - k, k + 1, solution=solution))
        return BurstJob(solution)


def test_a_stream_read_after_a_burst_of_updates_gets_the_latest_not_a_backlog(
    tmp_path: Path,
) -> None:
    cfg = ServerConfig(port=0, osm="none", data_dir=str(tmp_path / "data"), workers=1)
    built = build_server(cfg, executor=BurstExecutor())  # type: ignore[arg-type]
    port = bind(built.grpc_server, cfg)
    built.grpc_server.start()
    client = Client(grpc.insecure_channel(f"127.0.0.1:{port}"))
    request = small_request()
    request.timeout.seconds = 1
    try:
        events = list(client.stub.OptimizeToursStream(request, timeout=60))
    finally:
        client.close()
        built.grpc_server.stop(None).wait()
        built.store.close()
        assert built.keys is not None
        built.keys.close()
    *progress, last = events
    assert last.done
    assert last.response.routes
    assert len(progress) == 1, [e.solution_count for e in progress]  # 999 were replaced
    assert progress[0].solution_count == BurstExecutor.updates  # the latest
    assert progress[0].response.routes


def test_slots_taken_are_metrics(tmp_path: Path) -> None:
    running = serve(tmp_path / "data", limits=SLOTS, metrics_port=0)  # metrics built, not served
    client = running.client()
    metrics = running.built.metrics
    assert metrics is not None
    try:
        name = client.submit()
        poll = client.ops.WaitOperation.future(wait_request(name), timeout=60)
        eventually(lambda: held(running, "long_polls") == 1)
        value = metrics.registry.get_sample_value("routeopt_call_slots_long_polls")
        assert value == 1.0
        assert metrics.registry.get_sample_value("routeopt_call_slots_streams") == 0.0
        poll.cancel()
    finally:
        client.close()
        stop(running)
