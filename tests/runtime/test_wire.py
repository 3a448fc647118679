"""The wire format: messages round-trip as plain data, hostile data is rejected, engine errors
are rebuilt as raised."""

from __future__ import annotations

import logging
import pickle
from concurrent.futures import CancelledError
from pathlib import Path

import pytest

from engine.errors import FieldViolation, InvalidModelError, NoSolutionError, SolverError
from engine.progress import SolveProgress
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
    Visit,
)
from runtime import wire
from runtime.codec import WireError, from_plain, to_plain


def full_solution() -> Solution:
    """A solution that uses every field type: enums, optionals, tuples, mappings, nesting."""
    route = Route(
        vehicle_index=0,
        vehicle_label="van",
        vehicle_start_time=100.0,
        vehicle_end_time=900.5,
        visits=(
            Visit(0, True, 0, 150.0, {"boxes": 2}, "s0", "pickup"),
            Visit(0, False, 0, 400.0, {"boxes": -2}, "s0", "drop"),
        ),
        transitions=(
            Transition(100.0, 50.0, 1200.5, 0.0, 0.0, 50.0, {}, "abc"),
            Transition(150.0, 200.0, 3000.0, 30.0, 20.0, 250.0, {"boxes": 2}),
            Transition(400.0, 500.0, 8000.0, 0.0, 0.5, 500.5, {}),
        ),
        breaks=(Break(300.0, 20.0),),
        metrics=AggregatedMetrics(1, 750.0, 30.0, 0.0, 20.5, 0.0, 800.5, 12200.5, {"boxes": 2}),
        route_costs={"model.shipments.penalty_cost": 0.0, "vehicle.cost_per_hour": 12.5},
        route_total_cost=12.5,
        polyline="xyz",
    )
    skipped = SkippedShipment(
        1, "s1", (SkipReason(SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY, 0, "boxes"),)
    )
    return Solution(
        routes=(route, Route(vehicle_index=1)),
        skipped_shipments=(skipped, SkippedShipment(2)),
        metrics=Metrics(
            aggregated_route_metrics=route.metrics,
            skipped_mandatory_shipment_count=1,
            used_vehicle_count=1,
            earliest_vehicle_start_time=100.0,
            latest_vehicle_end_time=None,
            costs={"vehicle.cost_per_hour": 12.5},
            total_cost=1e9 + 12.5,
        ),
        status=SolveStatus.INTERRUPTED,
        backend="ortools",
        backend_reason="requested",
        solver_processes=2,
        matrix_source="road",
        matrix_time_s=0.25,
        solve_time_s=1.5,
        solver_time_limit_s=2.0,
    )


MESSAGES: list[wire.Message] = [
    wire.Progress(SolveProgress(0.5, 123.25, 3, 2, 1, full_solution())),
    wire.Progress(SolveProgress(0.5, 123.25, 3)),
    wire.Solved(full_solution()),
    wire.Invalid((FieldViolation("shipments[0]", "bad"), FieldViolation("", "worse"))),
    wire.NoSolution("time_limit", "no solution within 1 s"),
    wire.Failed("the backend failed"),
    wire.Cancelled(),
    wire.Crash("Traceback ..."),
]


def is_plain(data: object) -> bool:
    if data is None or isinstance(data, bool | int | float | str):
        return True
    if isinstance(data, list):
        return all(is_plain(x) for x in data)
    if isinstance(data, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in data.items())
    return False


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_as_plain_data(message: wire.Message) -> None:
    data = wire.encode(message)
    assert is_plain(data)
    assert wire.decode(data) == message
    assert wire.decode(pickle.loads(pickle.dumps(data))) == message  # the local pipe


def test_decoded_values_have_their_annotated_types() -> None:
    data = to_plain(full_solution())
    data["routes"][0]["route_total_cost"] = 12  # type: ignore[call-overload,index]
    solution = from_plain(Solution, data)
    assert isinstance(solution.routes, tuple)
    assert isinstance(solution.routes[0].visits, tuple)
    assert solution.status is SolveStatus.INTERRUPTED
    assert solution.skipped_shipments[0].reasons[0].code is (
        SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY
    )
    assert type(solution.routes[0].route_total_cost) is float
    assert solution.metrics.latest_vehicle_end_time is None


class Trap:
    """Would create a file if it were ever unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def progress_event(**update: object) -> dict[str, object]:
    data = wire.encode(wire.Progress(SolveProgress(0.5, 10.0, 1)))
    body = data["body"]
    assert isinstance(body, dict)
    return {"kind": "progress", "body": {"update": {**body["update"], **update}}}  # type: ignore[dict-item]


def test_hostile_and_malformed_events_are_rejected_without_running_anything(
    tmp_path: Path,
) -> None:
    trap = tmp_path / "pwned"
    hostile: list[object] = [
        pickle.dumps(Trap(trap)),
        {"kind": "progress", "body": pickle.dumps(Trap(trap))},
        {"kind": "progress", "body": {"update": pickle.dumps(Trap(trap))}},
        progress_event(solution=pickle.dumps(Trap(trap))),
        None,
        [],
        {"kind": "progress"},
        {"kind": "progress", "body": {}, "extra": 1},
        {"kind": "os.system", "body": {}},
        {"kind": ["progress"], "body": {}},
        progress_event(cost="1.0"),
        progress_event(solutions=True),
        progress_event(solutions=1.5),
        progress_event(used_vehicles=None),
        progress_event(__class__="builtins.eval"),
        progress_event(solution={"routes": []}),
        progress_event(solution={**to_plain(full_solution()), "status": 99}),  # type: ignore[dict-item]
        progress_event(solution={**to_plain(full_solution()), "routes": {"0": {}}}),  # type: ignore[dict-item]
        {"kind": "invalid", "body": {"violations": [{"field": 1, "description": "x"}]}},
    ]
    for data in hostile:
        with pytest.raises(WireError):
            wire.decode_progress(data)
    assert not trap.exists()


def test_error_messages_name_the_bad_value() -> None:
    data = to_plain(full_solution())
    data["routes"][0]["visits"][1]["start_time"] = "noon"  # type: ignore[call-overload,index]
    with pytest.raises(WireError, match=r"Solution\.routes\[0\]\.visits\[1\]\.start_time: "):
        from_plain(Solution, data)


def test_decode_expects_the_right_kind_of_message() -> None:
    with pytest.raises(WireError, match="progress"):
        wire.decode_progress(wire.encode(wire.Failed("x")))
    with pytest.raises(WireError, match="outcome"):
        wire.decode_outcome(wire.encode(MESSAGES[1]))
    assert wire.decode_outcome(wire.encode(wire.Failed("x"))) == wire.Failed("x")


def raising(exc: BaseException) -> wire.Outcome:
    def solve() -> Solution:
        raise exc

    return wire.decode_outcome(wire.encode(wire.capture(solve)))


def test_engine_errors_are_rebuilt_as_raised() -> None:
    assert wire.rebuild(wire.capture(full_solution), 1) == full_solution()
    violations = (FieldViolation("vehicles[0]", "no start"),)
    invalid = wire.rebuild(raising(InvalidModelError(violations)), 1)
    assert isinstance(invalid, InvalidModelError)
    assert invalid.violations == violations
    assert str(invalid) == str(InvalidModelError(violations))
    none = wire.rebuild(raising(NoSolutionError("interrupted", "stopped")), 1)
    assert isinstance(none, NoSolutionError)
    assert (none.reason, str(none)) == ("interrupted", "stopped")
    failed = wire.rebuild(raising(SolverError("backend broke")), 1)
    assert type(failed) is SolverError
    assert str(failed) == "backend broke"
    assert isinstance(wire.rebuild(raising(CancelledError()), 1), CancelledError)


def test_a_crash_is_logged_and_reported_briefly(caplog: pytest.LogCaptureFixture) -> None:
    outcome = raising(ZeroDivisionError("division by zero"))
    assert isinstance(outcome, wire.Crash)
    with caplog.at_level(logging.ERROR, logger="runtime.wire"):
        error = wire.rebuild(outcome, 7)
    assert type(error) is SolverError
    assert str(error) == wire.CRASH_MESSAGE
    assert "solve job 7" in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_an_unknown_no_solution_reason_is_a_solver_error() -> None:
    error = wire.rebuild(wire.NoSolution("bogus", "odd"), 1)
    assert type(error) is SolverError
    assert str(error) == "odd"


def test_progress_events_round_trip_and_reject_anything_else(tmp_path: Path) -> None:
    update = SolveProgress(1.5, 99.0, 4, 2, 0, full_solution())
    event = wire.progress_event("routeopt-solve-1", update)
    assert is_plain(event)
    assert wire.read_progress_event(event) == ("routeopt-solve-1", update)
    from_worker = {**event, "worker": "tcp://127.0.0.1:4567"}  # added by the scheduler
    assert wire.read_progress_event(from_worker) == ("routeopt-solve-1", update)
    trap = tmp_path / "pwned"
    good = wire.encode(wire.Progress(update))
    for bad in [
        None,
        "routeopt-solve-1",
        pickle.dumps(Trap(trap)),
        {"key": "k", "update": pickle.dumps(Trap(trap))},
        {"key": "k", "update": pickle.dumps(update)},  # what the topic carried before
        {"key": 1, "update": good},
        {"key": "k"},
        {"key": "k", "update": good, "more": None},
        {"key": "k", "update": wire.encode(wire.Solved(full_solution()))},
    ]:
        with pytest.raises(WireError):
            wire.read_progress_event(bad)
    assert not trap.exists()
