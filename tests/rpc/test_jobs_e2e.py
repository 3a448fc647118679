"""End to end: long-running operations, streaming and batches on a real server subprocess.

Covers OptimizeToursLongRunning with the google.longrunning.Operations service (get, wait,
list with filter and paging, cancel, delete), cancellation latency and keeping the best
solution, back-pressure, retention, BatchOptimizeTours, OptimizeToursStream (non-increasing
costs, last event = final response, a client that disconnects stops the solve) and recovery
after ``kill -9``. Every solution is verified by ``tests/checker.py``.

Just over 500 lines: the operations share one server per module (module-scoped fixtures); split,
each part would start its own servers (seconds each).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2

from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.test_server_e2e import (
    ROOT,
    ServerProcess,
    bad_request_fields,
    check_response,
    city_request,
    small_request,
)

LONG = pb.OptimizeToursRequest.CONSUME_ALL_AVAILABLE_TIME


class Client:
    """The RouteOptimization and Operations stubs of a server."""

    def __init__(self, srv: ServerProcess) -> None:
        self.srv = srv
        self.stub = srv.stub
        self.ops = operations_pb2_grpc.OperationsStub(srv.channel)

    def submit(self, request: pb.OptimizeToursRequest) -> str:
        operation = self.stub.OptimizeToursLongRunning(request, timeout=10)
        assert operation.name.startswith("operations/")
        return str(operation.name)

    def get(self, name: str) -> operations_pb2.Operation:
        return self.ops.GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=5)

    def wait(self, name: str, timeout_s: float = 30.0) -> operations_pb2.Operation:
        """WaitOperation until done (several calls if needed)."""
        deadline = time.monotonic() + timeout_s
        while True:
            request = operations_pb2.WaitOperationRequest(name=name)
            request.timeout.FromSeconds(5)
            operation = self.ops.WaitOperation(request, timeout=10)
            if operation.done:
                return operation
            assert time.monotonic() < deadline, f"{name} not done within {timeout_s} s"

    def cancel(self, name: str) -> None:
        self.ops.CancelOperation(operations_pb2.CancelOperationRequest(name=name), timeout=5)


def metadata(operation: operations_pb2.Operation) -> pb.OptimizeToursMetadata:
    md = pb.OptimizeToursMetadata()
    assert operation.metadata.Unpack(md)
    return md


def response_of(operation: operations_pb2.Operation) -> pb.OptimizeToursResponse:
    assert operation.done
    assert operation.WhichOneof("result") == "response", operation
    response = pb.OptimizeToursResponse()
    assert operation.response.Unpack(response)
    return response


def wait_solving(client: Client, name: str, timeout_s: float = 15.0) -> pb.OptimizeToursMetadata:
    """Wait until the operation runs and has found a solution."""
    deadline = time.monotonic() + timeout_s
    while True:
        md = metadata(client.get(name))
        if md.state == pb.RUNNING and md.solution_count > 0:
            return md
        assert time.monotonic() < deadline, f"{name} found no solution in time: {md}"
        time.sleep(0.05)


def start(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> ServerProcess:
    log = tmp_path_factory.mktemp(name) / "server.log"
    return ServerProcess(log, "--osm", "none", *args)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    srv = start(tmp_path_factory, "jobs", "--workers", "2", "--max-queued", "2")
    yield Client(srv)
    assert srv.terminate() == 0, srv.log()


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One worker, two operations at most, no executor queue."""
    srv = start(
        tmp_path_factory, "tight-jobs", "--workers", "1", "--max-queued", "0", "--max-jobs", "2"
    )
    yield Client(srv)
    assert srv.terminate() == 0, srv.log()


# -- OptimizeToursLongRunning ------------------------------------------------------------------


def test_operation_runs_to_a_feasible_result(jobs: Client) -> None:
    request = city_request(40, timeout_s=2, mode=LONG)
    name = jobs.submit(request)
    md = metadata(jobs.get(name))
    assert md.state in (pb.QUEUED, pb.RUNNING)
    assert md.request_label == "city-40"
    running = wait_solving(jobs, name)
    assert running.HasField("best_cost")
    assert running.best_cost > 0
    assert running.used_vehicle_count >= 1
    operation = jobs.wait(name)
    md = metadata(operation)
    assert md.state == pb.SUCCEEDED
    assert md.attempt == 1
    assert md.solution_count >= running.solution_count
    assert md.end_time.ToNanoseconds() >= md.start_time.ToNanoseconds()
    response = response_of(operation)
    assert response.request_label == "city-40"
    assert response.solve_info.status == pb.SolveInfo.SOLVED
    assert sum(len(r.visits) for r in response.routes) == 40
    check_response(request, response)
    # The result stays available.
    assert response_of(jobs.get(name)) == response


def test_invalid_request_is_refused_before_any_operation(jobs: Client) -> None:
    request = small_request()
    request.model.shipments[0].deliveries[0].arrival_location.latitude = 123.0
    before = jobs.ops.ListOperations(operations_pb2.ListOperationsRequest(page_size=1000))
    with pytest.raises(grpc.RpcError) as info:
        jobs.stub.OptimizeToursLongRunning(request, timeout=5)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert bad_request_fields(info.value) == [
        "model.shipments[0].deliveries[0].arrival_location.latitude"
    ]
    after = jobs.ops.ListOperations(operations_pb2.ListOperationsRequest(page_size=1000))
    assert len(after.operations) == len(before.operations)


def test_validate_only_operation(jobs: Client) -> None:
    request = small_request()
    request.solving_mode = pb.OptimizeToursRequest.VALIDATE_ONLY
    request.model.shipments[0].deliveries[0].arrival_location.latitude = 123.0
    response = response_of(jobs.wait(jobs.submit(request)))
    assert [e.field_path for e in response.validation_errors] == [
        "model.shipments[0].deliveries[0].arrival_location.latitude"
    ]
    assert not response.routes


def test_unknown_operation_is_not_found(jobs: Client) -> None:
    for call in (
        lambda: jobs.get("operations/nope"),
        lambda: jobs.cancel("operations/nope"),
        lambda: jobs.ops.DeleteOperation(
            operations_pb2.DeleteOperationRequest(name="operations/nope"), timeout=5
        ),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_list_filters_by_state_and_pages(jobs: Client) -> None:
    names = [jobs.submit(city_request(5 + i, timeout_s=1)) for i in range(3)]
    for name in names:
        jobs.wait(name)
    seen: list[str] = []
    token = ""
    for _ in range(100):
        page = jobs.ops.ListOperations(
            operations_pb2.ListOperationsRequest(
                filter="state=SUCCEEDED", page_size=2, page_token=token
            ),
            timeout=5,
        )
        assert len(page.operations) <= 2
        assert all(metadata(op).state == pb.SUCCEEDED for op in page.operations)
        seen.extend(op.name for op in page.operations)
        token = page.next_page_token
        if not token:
            break
    assert set(names) <= set(seen)
    assert len(seen) == len(set(seen))
    running = jobs.ops.ListOperations(
        operations_pb2.ListOperationsRequest(filter="state=QUEUED OR state=RUNNING"), timeout=5
    )
    assert not set(names) & {op.name for op in running.operations}
    with pytest.raises(grpc.RpcError) as info:
        jobs.ops.ListOperations(operations_pb2.ListOperationsRequest(filter="state=BORED"))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert bad_request_fields(info.value) == ["filter"]


def test_delete_removes_a_finished_operation_only(jobs: Client) -> None:
    name = jobs.submit(city_request(30, timeout_s=3, mode=LONG))
    with pytest.raises(grpc.RpcError) as info:
        jobs.ops.DeleteOperation(operations_pb2.DeleteOperationRequest(name=name), timeout=5)
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    jobs.cancel(name)
    jobs.wait(name)
    jobs.ops.DeleteOperation(operations_pb2.DeleteOperationRequest(name=name), timeout=5)
    with pytest.raises(grpc.RpcError) as info:
        jobs.get(name)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_operations_service_is_healthy_and_reflected(jobs: Client) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(jobs.srv.channel)
    response = health.Check(
        health_pb2.HealthCheckRequest(service="google.longrunning.Operations"), timeout=2
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


# -- cancellation and back-pressure ---------------------------------------------------------------


def test_cancel_is_prompt_keeps_the_best_and_queue_is_bounded(tight: Client) -> None:
    running_request = city_request(150, timeout_s=30, mode=LONG)
    running = tight.submit(running_request)
    queued = tight.submit(city_request(20, timeout_s=30, mode=LONG))
    # Two operations at most: the third is refused at once.
    with pytest.raises(grpc.RpcError) as info:
        tight.submit(small_request())
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert metadata(tight.get(queued)).state == pb.QUEUED

    # A queued operation is cancelled at once, without a result.
    tight.cancel(queued)
    operation = tight.get(queued)
    assert operation.done
    assert metadata(operation).state == pb.CANCELLED
    assert operation.error.code == code_pb2.CANCELLED

    # A running one stops within a second and keeps its best solution so far.
    wait_solving(tight, running)
    time.sleep(0.5)
    cancelled_at = time.monotonic()
    tight.cancel(running)
    operation = tight.wait(running, timeout_s=5)
    assert time.monotonic() - cancelled_at < 1.0
    assert metadata(operation).state == pb.CANCELLED
    response = response_of(operation)
    assert response.solve_info.status == pb.SolveInfo.INTERRUPTED
    assert sum(len(r.visits) for r in response.routes) == 150
    check_response(running_request, response)
    # The worker is free again: a synchronous call goes through.
    reply = tight.stub.OptimizeTours(small_request(), timeout=10)
    assert reply.solve_info.status == pb.SolveInfo.SOLVED


def test_finished_operations_expire(tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = start(tmp_path_factory, "retention", "--workers", "1", "--job-retention", "1")
    try:
        client = Client(srv)
        name = client.submit(city_request(5, timeout_s=1))
        response_of(client.wait(name))
        deadline = time.monotonic() + 10
        listed = [name]
        while name in listed:
            assert time.monotonic() < deadline, "the finished operation did not expire"
            time.sleep(0.2)
            page = client.ops.ListOperations(operations_pb2.ListOperationsRequest(), timeout=5)
            listed = [op.name for op in page.operations]
        with pytest.raises(grpc.RpcError) as info:
            client.get(name)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    finally:
        assert srv.terminate() == 0, srv.log()


# -- BatchOptimizeTours -------------------------------------------------------------------------


def test_batch_items_are_operations_of_their_own(jobs: Client) -> None:
    requests = [city_request(8 + 4 * i, timeout_s=1, seed=i) for i in range(3)]
    batch = pb.BatchOptimizeToursRequest(requests=requests, label="depot-study")
    operation = jobs.stub.BatchOptimizeTours(batch, timeout=10)
    md = pb.BatchOptimizeToursMetadata()
    assert operation.metadata.Unpack(md)
    assert md.label == "depot-study"
    assert len(md.operations) == 3
    operation = jobs.wait(operation.name)
    assert operation.metadata.Unpack(md)
    assert md.state == pb.SUCCEEDED
    assert md.done_count == md.succeeded_count == 3
    result = pb.BatchOptimizeToursResponse()
    assert operation.response.Unpack(result)
    assert [item.operation for item in result.items] == list(md.operations)
    for request, item in zip(requests, result.items, strict=True):
        assert item.state == pb.SUCCEEDED
        child = jobs.get(item.operation)
        assert metadata(child).batch_operation == operation.name
        response = response_of(child)
        assert response.metrics.total_cost == pytest.approx(item.total_cost)
        check_response(request, response)
    listed = jobs.ops.ListOperations(
        operations_pb2.ListOperationsRequest(filter=f"batch={operation.name}"), timeout=5
    )
    assert [op.name for op in listed.operations] == list(md.operations)


def test_cancelling_a_batch_cancels_its_items(jobs: Client) -> None:
    requests = [city_request(60, timeout_s=30, mode=LONG, seed=i) for i in range(4)]
    operation = jobs.stub.BatchOptimizeTours(
        pb.BatchOptimizeToursRequest(requests=requests), timeout=10
    )
    md = pb.BatchOptimizeToursMetadata()
    assert operation.metadata.Unpack(md)
    first = md.operations[0]
    wait_solving(jobs, first)
    cancelled_at = time.monotonic()
    jobs.cancel(operation.name)
    operation = jobs.wait(operation.name, timeout_s=5)
    assert time.monotonic() - cancelled_at < 1.5
    assert operation.metadata.Unpack(md)
    assert md.state == pb.CANCELLED
    assert md.done_count == 4
    result = pb.BatchOptimizeToursResponse()
    assert operation.response.Unpack(result)
    assert {item.state for item in result.items} == {pb.CANCELLED}
    # The item that was solving keeps its best solution; the queued ones never started.
    check_response(requests[0], response_of(jobs.get(first)))
    last = jobs.get(md.operations[3])
    assert last.error.code == code_pb2.CANCELLED


def test_invalid_batch_item_names_its_index(jobs: Client) -> None:
    bad = small_request()
    bad.model.vehicles[0].start_location.longitude = 500.0
    batch = pb.BatchOptimizeToursRequest(requests=[small_request(), bad])
    with pytest.raises(grpc.RpcError) as info:
        jobs.stub.BatchOptimizeTours(batch, timeout=5)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert bad_request_fields(info.value) == [
        "requests[1].model.vehicles[0].start_location.longitude"
    ]


# -- OptimizeToursStream ------------------------------------------------------------------------


def check_stream(request: pb.OptimizeToursRequest, events: list[pb.OptimizeToursProgress]) -> int:
    """Every property of a stream with routes on every event; returns its progress events."""
    *progress, last = events
    assert progress, "no progress event before the final one"
    assert last.done
    assert not any(e.done for e in progress)
    costs = [e.cost for e in progress]
    assert all(b <= a for a, b in itertools.pairwise(costs)), costs
    counts = [e.solution_count for e in progress]
    assert counts == sorted(counts)
    for event in progress:
        assert event.HasField("response")
        assert event.response.solve_info.status == pb.SolveInfo.INTERRUPTED
        assert event.used_vehicle_count == event.response.metrics.used_vehicle_count
        assert event.skipped_shipment_count == len(event.response.skipped_shipments)
        check_response(request, event.response)
    final = last.response
    assert final.solve_info.status == pb.SolveInfo.SOLVED
    assert last.cost == final.metrics.total_cost
    # Progress costs are the solver's objective (approximate, documented); the exact cost of
    # the last streamed routes is their response's, and the final answer is never worse.
    streamed = progress[-1].response.metrics.total_cost
    assert last.cost <= streamed + 1e-6 * max(1.0, abs(streamed))
    assert final.routes == progress[-1].response.routes  # the best so far was the final one
    check_response(request, final)
    return len(progress)


def test_stream_costs_decrease_and_the_last_event_is_the_response(jobs: Client) -> None:
    """Each stream is checked whole; a search whose first solution is already its best streams
    one progress event only, so other seeds are tried until one streams an improvement."""
    longest = 0
    for seed in (7, 8, 9, 10):
        request = city_request(40, timeout_s=2, mode=LONG, seed=seed)
        request.progress_routes_interval.CopyFrom(duration_pb2.Duration())  # routes every event
        longest = max(
            longest, check_stream(request, list(jobs.stub.OptimizeToursStream(request, timeout=20)))
        )
        if longest >= 2:
            break
    assert longest >= 2, "no stream improved on its first solution"


def test_stream_sends_routes_only_now_and_then_by_default(jobs: Client) -> None:
    request = city_request(40, timeout_s=2, mode=LONG)
    events = list(jobs.stub.OptimizeToursStream(request, timeout=20))
    progress = events[:-1]
    with_routes = [e for e in progress if e.HasField("response")]
    assert progress[0].HasField("response")  # the first solution always comes with its routes
    assert len(with_routes) == 1  # then not before 5 s
    check_response(request, with_routes[0].response)
    check_response(request, events[-1].response)


def test_stream_client_that_leaves_stops_the_solve(tight: Client) -> None:
    request = city_request(150, timeout_s=30, mode=LONG)
    stream = tight.stub.OptimizeToursStream(request, timeout=60)
    first = next(stream)
    check_response(request, first.response)
    next(stream)
    stream.cancel()
    cancelled_at = time.monotonic()
    # The only worker is free again once the server has seen the client leave.
    while True:
        try:
            reply = tight.stub.OptimizeTours(small_request(), timeout=10)
            break
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:  # type: ignore[attr-defined]
                raise
            assert time.monotonic() - cancelled_at < 2.0, "the solve did not stop"
            time.sleep(0.05)
    assert reply.solve_info.status == pb.SolveInfo.SOLVED


def test_stream_rejects_a_negative_routes_interval(jobs: Client) -> None:
    request = small_request()
    request.progress_routes_interval.FromSeconds(-1)
    with pytest.raises(grpc.RpcError) as info:
        list(jobs.stub.OptimizeToursStream(request, timeout=5))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert bad_request_fields(info.value) == ["progress_routes_interval"]


# -- durability ----------------------------------------------------------------------------------


def test_jobs_survive_kill_9_and_restarts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ("--osm", "none", "--workers", "1", "--data-dir", str(data))
    srv = ServerProcess(tmp_path / "server.log", *args)
    try:
        client = Client(srv)
        first_request = city_request(10, timeout_s=1)
        first = client.submit(first_request)
        first_response = response_of(client.wait(first))
        requests = {
            client.submit(request): request
            for request in (
                city_request(60, timeout_s=4, mode=LONG, seed=1),
                city_request(20, timeout_s=1, seed=2),
                city_request(25, timeout_s=1, seed=3),
            )
        }
        running = next(iter(requests))
        wait_solving(client, running)
    finally:
        srv.kill9()

    srv = ServerProcess(tmp_path / "server.log", *args)
    try:
        client = Client(srv)
        assert response_of(client.get(first)) == first_response
        for name, request in requests.items():
            operation = client.wait(name, timeout_s=30)
            md = metadata(operation)
            assert md.state == pb.SUCCEEDED
            assert md.attempt == (2 if name == running else 1)
            response = response_of(operation)
            assert sum(len(r.visits) for r in response.routes) == len(request.model.shipments)
            check_response(request, response)
        results = {name: response_of(client.get(name)) for name in [first, *requests]}
    finally:
        assert srv.terminate() == 0, srv.log()
    assert "running it again" in srv.log()

    srv = ServerProcess(tmp_path / "server.log", *args)  # a clean restart
    try:
        client = Client(srv)
        for name, response in results.items():
            assert response_of(client.get(name)) == response
    finally:
        assert srv.terminate() == 0, srv.log()


def test_sigterm_queues_running_jobs_for_the_next_start(tmp_path: Path) -> None:
    args = ("--osm", "none", "--workers", "1", "--data-dir", str(tmp_path / "data"))
    srv = ServerProcess(tmp_path / "server.log", *args)
    request = city_request(40, timeout_s=3, mode=LONG)
    try:
        client = Client(srv)
        name = client.submit(request)
        wait_solving(client, name)
    finally:
        assert srv.terminate() == 0, srv.log()
    srv = ServerProcess(tmp_path / "server.log", *args)
    try:
        client = Client(srv)
        operation = client.wait(name)
        assert metadata(operation).attempt == 1  # the interrupted attempt was not spent
        response = response_of(operation)
        assert response.solve_info.status == pb.SolveInfo.SOLVED
        check_response(request, response)
    finally:
        assert srv.terminate() == 0, srv.log()


def test_a_second_server_cannot_share_the_data_dir(jobs: Client, tmp_path: Path) -> None:
    data = jobs.srv.log_path.parent / "data"
    log = tmp_path / "server.log"
    with pytest.raises(AssertionError, match="in use by another server"):
        ServerProcess(log, "--osm", "none", "--data-dir", str(data))


# -- the README's client example -----------------------------------------------------------------


def readme_block(marker: str) -> str:
    """The README's python code block that contains ``marker``."""
    text = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    (block,) = [b for b in blocks if marker in b]
    return block


def test_readme_client_example_runs(
    jobs: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = readme_block("start_optimize_tours(")
    assert '"127.0.0.1:50051"' in code
    code = code.replace('"127.0.0.1:50051"', f'"127.0.0.1:{jobs.srv.port}"')
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    request = namespace["request"]
    assert isinstance(request, pb.OptimizeToursRequest)
    for key in ("response", "streamed"):
        response = namespace[key]
        assert isinstance(response, pb.OptimizeToursResponse)
        check_response(request, response)
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith("RUNNING ") for line in printed), printed
    assert any(line.startswith("SUCCEEDED ") for line in printed)
    assert printed[-1].endswith(" True")  # the stream's last event is the final one
