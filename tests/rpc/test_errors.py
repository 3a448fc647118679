"""rpc.errors.status_of: one failure, one status, on OptimizeTours and on a long-running
operation alike (and no exception text of an internal error reaches a client); the status
builders (invalid argument, internal, resource exhausted) and their grpc.Status trailers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from engine.errors import (
    ExecutorFullError,
    FieldViolation,
    InvalidModelError,
    NoSolutionError,
    SolverError,
)
from rpc.errors import (
    FilterError,
    OperationNotFoundError,
    grpc_status,
    internal_status,
    invalid_argument_status,
    resource_exhausted_status,
    status_of,
)
from rpc.operations.filter import parse_filter, parse_page
from rpc.operations.manager import JobManager
from rpc.operations.store import JobStore
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.servicer import RouteOptimizationServicer

SECRET = "secret detail of the failure"


class FailedJob:
    """A solve job that has already failed with ``exc``."""

    id = 1
    cancel_requested = False

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def cancel(self) -> None:
        pass

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        raise self.exc

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        fn(self)


class FailingExecutor:
    """Every solve fails with the exception ``make()`` returns."""

    max_workers = 1
    max_queued = 1
    running_count = 0
    queued_count = 0

    def __init__(self, make: Callable[[], BaseException]) -> None:
        self.make = make

    def submit(self, model: object, options: object, **kwargs: object) -> FailedJob:
        return FailedJob(self.make())


class AbortedError(Exception):
    def __init__(self, status: Any) -> None:
        super().__init__(status.details)
        self.status = status


class FakeContext:
    def peer(self) -> str:
        return "test"

    def time_remaining(self) -> float | None:
        return None

    def add_callback(self, fn: Callable[[], None]) -> bool:
        return True

    def is_active(self) -> bool:
        return True

    def abort_with_status(self, status: Any) -> None:
        raise AbortedError(status)


def request() -> pb.OptimizeToursRequest:
    req = pb.OptimizeToursRequest(use_geodesic_distances=True)
    shipment = req.model.shipments.add()
    shipment.deliveries.add().arrival_location.latitude = 38.7
    vehicle = req.model.vehicles.add()
    vehicle.start_location.latitude = 38.8
    return req


def unary_status(executor: FailingExecutor) -> status_pb2.Status:
    servicer = RouteOptimizationServicer(
        executor,  # type: ignore[arg-type]
        default_timeout_s=5.0,
        default_geodesic_meters_per_second=10.0,
    )
    with pytest.raises(AbortedError) as aborted:
        servicer.OptimizeTours(request(), FakeContext())
    ((key, value),) = aborted.value.status.trailing_metadata
    assert key == "grpc-status-details-bin"
    return status_pb2.Status.FromString(value)


@pytest.fixture
def long_running(tmp_path: Path) -> Iterator[Callable[[FailingExecutor], status_pb2.Status]]:
    stores: list[JobStore] = []
    managers: list[JobManager] = []

    def run(executor: FailingExecutor) -> status_pb2.Status:
        store = JobStore(tmp_path / str(len(stores)))
        stores.append(store)
        jobs = JobManager(
            store,
            executor,  # type: ignore[arg-type]
            default_timeout_s=5.0,
            default_geodesic_meters_per_second=10.0,
        )
        managers.append(jobs)
        jobs.start()
        operation: operations_pb2.Operation = jobs.wait(jobs.submit(request()).name, 10.0)
        assert operation.done
        assert operation.HasField("error")
        error: status_pb2.Status = operation.error
        return error

    yield run
    for jobs in managers:
        jobs.stop()
    for store in stores:
        store.close()


def incident_of(status: status_pb2.Status) -> str:
    info = error_details_pb2.ErrorInfo()
    assert status.details[-1].Unpack(info)
    assert info.reason == "INTERNAL"
    incident: str = info.metadata["incident_id"]
    return incident


def test_a_solver_error_is_internal_with_an_incident_id_on_both_paths(
    long_running: Callable[[FailingExecutor], status_pb2.Status],
) -> None:
    executor = FailingExecutor(lambda: SolverError(SECRET))
    unary, stored = unary_status(executor), long_running(executor)
    for status in (unary, stored):
        assert status.code == code_pb2.INTERNAL
        assert SECRET not in status.SerializeToString().decode("utf-8", "replace")
        assert status.message == f"internal error (incident {incident_of(status)})"
    assert incident_of(unary) != incident_of(stored)


@pytest.mark.parametrize(
    "make",
    [
        lambda: NoSolutionError("infeasible", "no vehicle can serve shipment 0"),
        lambda: NoSolutionError("time_limit", "no solution within 5 s"),
        lambda: InvalidModelError([FieldViolation("shipments[0].label", "bad label")]),
    ],
    ids=["infeasible", "time_limit", "invalid"],
)
def test_the_same_failure_gives_the_same_status_on_both_paths(
    make: Callable[[], BaseException],
    long_running: Callable[[FailingExecutor], status_pb2.Status],
) -> None:
    executor = FailingExecutor(make)
    unary, stored = unary_status(executor), long_running(executor)
    assert unary == stored
    assert unary.code != code_pb2.INTERNAL


def test_an_engine_violation_keeps_its_bad_request_with_request_paths(
    long_running: Callable[[FailingExecutor], status_pb2.Status],
) -> None:
    executor = FailingExecutor(
        lambda: InvalidModelError([FieldViolation("shipments[0].label", "bad label")])
    )
    for status in (unary_status(executor), long_running(executor)):
        assert status.code == code_pb2.INVALID_ARGUMENT
        bad = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(bad)
        assert [(v.field, v.description) for v in bad.field_violations] == [
            ("model.shipments[0].label", "bad label")
        ]


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ExecutorFullError("busy"), code_pb2.RESOURCE_EXHAUSTED),
        (CancelledError(), code_pb2.CANCELLED),
        (OperationNotFoundError("no operation named 'x'"), code_pb2.NOT_FOUND),
        (FilterError("cannot parse"), code_pb2.INVALID_ARGUMENT),
        (RuntimeError(SECRET), code_pb2.INTERNAL),
    ],
)
def test_status_of_maps_each_error_to_its_code(exc: BaseException, code: int) -> None:
    status = status_of(exc)
    assert status.code == code
    if code == code_pb2.INTERNAL:
        assert SECRET not in status.message


@pytest.mark.parametrize(
    ("text", "page_size", "page_token", "field"),
    [
        ("state=BORED", 0, "", "filter"),
        ("", -1, "", "page_size"),
        ("", 0, "not-a-number", "page_token"),
    ],
)
def test_a_bad_list_request_names_its_field(
    text: str, page_size: int, page_token: str, field: str
) -> None:
    def parse() -> None:
        parse_filter(text)
        parse_page(page_size, page_token)

    with pytest.raises(FilterError) as info:
        parse()
    status = status_of(info.value)
    assert status.code == code_pb2.INVALID_ARGUMENT
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == [field]


# -- the status builders ------------------------------------------------------------------------


def _rich_status(status: grpc.Status) -> status_pb2.Status:
    ((key, value),) = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    return status_pb2.Status.FromString(value)


def test_invalid_argument_status() -> None:
    violations = [FieldViolation(f"model.shipments[{i}].penalty_cost", "bad") for i in range(5)]
    status = grpc_status(invalid_argument_status(violations, summary="invalid request"))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.details == (
        "invalid request: model.shipments[0].penalty_cost: bad; "
        "model.shipments[1].penalty_cost: bad; model.shipments[2].penalty_cost: bad "
        "(and 2 more)"
    )
    rich = _rich_status(status)
    assert rich.code == code_pb2.INVALID_ARGUMENT
    assert rich.message == status.details
    bad_request = error_details_pb2.BadRequest()
    info = error_details_pb2.ErrorInfo()
    assert rich.details[0].Unpack(bad_request)
    assert rich.details[1].Unpack(info)
    assert [(f.field, f.description) for f in bad_request.field_violations] == [
        (v.field, v.description) for v in violations
    ]
    assert info.reason == "INVALID_MODEL"
    assert info.domain == "routeopt.dev"
    assert dict(info.metadata) == {"violation_count": "5", "reported_violation_count": "5"}


def test_invalid_argument_status_caps_details_for_the_trailer() -> None:
    violations = [FieldViolation(f"model.shipments[{i}].label", "x" * 200) for i in range(1000)]
    status = grpc_status(invalid_argument_status(violations, summary="invalid request"))
    rich = _rich_status(status)
    assert len(rich.SerializeToString()) < 6000
    info = error_details_pb2.ErrorInfo()
    assert rich.details[1].Unpack(info)
    assert info.metadata["violation_count"] == "1000"
    assert 0 < int(info.metadata["reported_violation_count"]) < 1000


def test_internal_status_has_no_exception_text() -> None:
    status = grpc_status(internal_status(incident_id="abc123"))
    assert status.code == grpc.StatusCode.INTERNAL
    assert status.details == "internal error (incident abc123)"
    assert "Traceback" not in _rich_status(status).SerializeToString().decode("utf-8", "replace")


def test_resource_exhausted_status_has_retry_info() -> None:
    status = grpc_status(resource_exhausted_status("server busy", retry_after_s=1.5))
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = error_details_pb2.RetryInfo()
    assert _rich_status(status).details[0].Unpack(retry)
    assert retry.retry_delay == duration_pb2.Duration(seconds=1, nanos=500_000_000)
