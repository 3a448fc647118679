"""rpc.convert.request: whole requests converted and validated (one rule, one exact field
path; proto and engine violations merged)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import json_format

import rpc.convert.request
from engine.errors import FieldViolation, InvalidModelError
from engine.options import SearchMode
from rpc.convert import violations_to_validation_errors
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.convert_helpers import T0, base_request, convert, dur, matrix_request, ts

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "optimize_tours_request.json"


def violation_paths(request: pb.OptimizeToursRequest) -> list[str]:
    with pytest.raises(InvalidModelError) as exc_info:
        convert(request)
    return [v.field for v in exc_info.value.violations]


# -- valid requests ------------------------------------------------------------------------


def test_valid_base_requests_convert() -> None:
    convert(base_request())
    convert(matrix_request())
    convert(pb.OptimizeToursRequest())


def test_example_json_parses_and_converts() -> None:
    request = json_format.Parse(EXAMPLE.read_text(), pb.OptimizeToursRequest())
    model, settings = convert(request)
    assert settings.timeout_s == 5.0
    assert settings.label == "helsinki-demo-2025-06-02"
    assert settings.search_mode is SearchMode.RETURN_FAST
    assert len(model.shipments) == 8
    assert len(model.vehicles) == 2
    assert sum(1 for s in model.shipments if s.pickups and s.deliveries) == 1
    assert sum(1 for s in model.shipments if s.penalty_cost is not None) == 1
    assert all(v.has_start and v.has_end for v in model.vehicles)
    assert all(v.load_limits for v in model.vehicles)
    assert any(vr.time_windows for s in model.shipments for vr in s.deliveries)


# -- proto-level validation: one rule, one exact path ------------------------------------------


Mutation = Callable[[pb.OptimizeToursRequest], object]


def _shipment(r: pb.OptimizeToursRequest) -> pb.Shipment:
    return r.model.shipments[0]


def _visit(r: pb.OptimizeToursRequest) -> pb.Shipment.VisitRequest:
    return r.model.shipments[0].deliveries[0]


def _window(r: pb.OptimizeToursRequest) -> pb.TimeWindow:
    return r.model.shipments[0].deliveries[0].time_windows[0]


def _vehicle(r: pb.OptimizeToursRequest) -> pb.Vehicle:
    return r.model.vehicles[0]


def _break(r: pb.OptimizeToursRequest) -> pb.BreakRule.BreakRequest:
    return r.model.vehicles[0].break_rule.break_requests[0]


def _row(r: pb.OptimizeToursRequest, i: int) -> pb.ShipmentModel.DurationDistanceMatrix.Row:
    return r.model.duration_distance_matrices[0].rows[i]


_VISIT = "model.shipments[0].deliveries[0]"
_WINDOW = f"{_VISIT}.time_windows[0]"
_VEHICLE = "model.vehicles[0]"
_BREAK = f"{_VEHICLE}.break_rule.break_requests[0]"
_MATRIX = "model.duration_distance_matrices[0]"

BASE_CASES: list[tuple[str, Mutation, str]] = [
    # request-level fields
    ("timeout-negative", lambda r: r.timeout.CopyFrom(dur(-1)), "timeout"),
    ("timeout-negative-nanos", lambda r: r.timeout.CopyFrom(dur(0, -1)), "timeout"),
    ("timeout-nanos-range", lambda r: r.timeout.CopyFrom(dur(1, 1_000_000_000)), "timeout"),
    ("timeout-sign-mismatch", lambda r: r.timeout.CopyFrom(dur(1, -5)), "timeout"),
    ("timeout-seconds-range", lambda r: r.timeout.CopyFrom(dur(315_576_000_001)), "timeout"),
    ("search-mode-unknown", lambda r: setattr(r, "search_mode", 7), "search_mode"),
    ("solving-mode-unknown", lambda r: setattr(r, "solving_mode", 9), "solving_mode"),
    (
        "speed-zero",
        lambda r: setattr(r, "geodesic_meters_per_second", 0.0),
        "geodesic_meters_per_second",
    ),
    (
        "speed-negative",
        lambda r: setattr(r, "geodesic_meters_per_second", -3.0),
        "geodesic_meters_per_second",
    ),
    (
        "speed-nan",
        lambda r: setattr(r, "geodesic_meters_per_second", math.nan),
        "geodesic_meters_per_second",
    ),
    (
        "speed-inf",
        lambda r: setattr(r, "geodesic_meters_per_second", math.inf),
        "geodesic_meters_per_second",
    ),
    # timestamps
    (
        "global-start-nanos",
        lambda r: setattr(r.model.global_start_time, "nanos", -1),
        "model.global_start_time",
    ),
    (
        "global-end-nanos",
        lambda r: setattr(r.model.global_end_time, "nanos", 1_000_000_000),
        "model.global_end_time",
    ),
    (
        "window-end-seconds-range",
        lambda r: _window(r).end_time.CopyFrom(ts(253_402_300_800)),
        f"{_WINDOW}.end_time",
    ),
    (
        "window-start-seconds-range",
        lambda r: _window(r).start_time.CopyFrom(ts(-62_135_596_801)),
        f"{_WINDOW}.start_time",
    ),
    (
        "window-soft-start-nanos",
        lambda r: (
            _window(r).soft_start_time.CopyFrom(ts(T0, -3)),
            setattr(_window(r), "cost_per_hour_before_soft_start_time", 1.0),
        ),
        f"{_WINDOW}.soft_start_time",
    ),
    (
        "window-soft-end-nanos",
        lambda r: (
            _window(r).soft_end_time.CopyFrom(ts(T0, 2_000_000_000)),
            setattr(_window(r), "cost_per_hour_after_soft_end_time", 1.0),
        ),
        f"{_WINDOW}.soft_end_time",
    ),
    (
        "vehicle-window-nanos",
        lambda r: setattr(_vehicle(r).start_time_windows[0].start_time, "nanos", -1),
        f"{_VEHICLE}.start_time_windows[0].start_time",
    ),
    (
        "break-earliest-nanos",
        lambda r: setattr(_break(r).earliest_start_time, "nanos", -1),
        f"{_BREAK}.earliest_start_time",
    ),
    (
        "break-latest-seconds",
        lambda r: setattr(_break(r).latest_start_time, "seconds", 10**12),
        f"{_BREAK}.latest_start_time",
    ),
    (
        "break-earliest-missing",
        lambda r: _break(r).ClearField("earliest_start_time"),
        f"{_BREAK}.earliest_start_time",
    ),
    (
        "break-latest-missing",
        lambda r: _break(r).ClearField("latest_start_time"),
        f"{_BREAK}.latest_start_time",
    ),
    # durations
    (
        "visit-duration-negative",
        lambda r: _visit(r).duration.CopyFrom(dur(-5)),
        f"{_VISIT}.duration",
    ),
    (
        "visit-duration-nanos",
        lambda r: _visit(r).duration.CopyFrom(dur(5, 1_000_000_000)),
        f"{_VISIT}.duration",
    ),
    (
        "visit-duration-sign",
        lambda r: _visit(r).duration.CopyFrom(dur(-5, 5)),
        f"{_VISIT}.duration",
    ),
    (
        "break-min-duration-negative",
        lambda r: _break(r).min_duration.CopyFrom(dur(-60)),
        f"{_BREAK}.min_duration",
    ),
    (
        "route-duration-limit-negative",
        lambda r: _vehicle(r).route_duration_limit.max_duration.CopyFrom(dur(0, -1)),
        f"{_VEHICLE}.route_duration_limit.max_duration",
    ),
    # locations
    (
        "visit-lat-high",
        lambda r: setattr(_visit(r).arrival_location, "latitude", 90.5),
        f"{_VISIT}.arrival_location.latitude",
    ),
    (
        "visit-lat-nan",
        lambda r: setattr(_visit(r).arrival_location, "latitude", math.nan),
        f"{_VISIT}.arrival_location.latitude",
    ),
    (
        "visit-lng-low",
        lambda r: setattr(_visit(r).arrival_location, "longitude", -180.01),
        f"{_VISIT}.arrival_location.longitude",
    ),
    (
        "vehicle-start-lng-inf",
        lambda r: setattr(_vehicle(r).start_location, "longitude", math.inf),
        f"{_VEHICLE}.start_location.longitude",
    ),
    (
        "vehicle-end-lat-low",
        lambda r: setattr(_vehicle(r).end_location, "latitude", -91.0),
        f"{_VEHICLE}.end_location.latitude",
    ),
    # non-finite numbers
    (
        "penalty-nan",
        lambda r: setattr(_shipment(r), "penalty_cost", math.nan),
        "model.shipments[0].penalty_cost",
    ),
    (
        "multiple-inf",
        lambda r: setattr(_vehicle(r), "travel_duration_multiple", math.inf),
        f"{_VEHICLE}.travel_duration_multiple",
    ),
    (
        "cost-per-hour-nan",
        lambda r: setattr(_vehicle(r), "cost_per_hour", math.nan),
        f"{_VEHICLE}.cost_per_hour",
    ),
    (
        "cost-per-traveled-hour-inf",
        lambda r: setattr(_vehicle(r), "cost_per_traveled_hour", math.inf),
        f"{_VEHICLE}.cost_per_traveled_hour",
    ),
    (
        "cost-per-km-nan",
        lambda r: setattr(_vehicle(r), "cost_per_kilometer", math.nan),
        f"{_VEHICLE}.cost_per_kilometer",
    ),
    (
        "fixed-cost-inf",
        lambda r: setattr(_vehicle(r), "fixed_cost", -math.inf),
        f"{_VEHICLE}.fixed_cost",
    ),
    (
        "soft-cost-nan",
        lambda r: (
            _window(r).soft_end_time.CopyFrom(ts(T0 + 1800)),
            setattr(_window(r), "cost_per_hour_after_soft_end_time", math.nan),
        ),
        f"{_WINDOW}.cost_per_hour_after_soft_end_time",
    ),
]

MATRIX_CASES: list[tuple[str, Mutation, str]] = [
    ("too-few-rows", lambda r: r.model.duration_distance_matrices[0].rows.pop(), f"{_MATRIX}.rows"),
    (
        "too-many-rows",
        lambda r: r.model.duration_distance_matrices[0].rows.add(
            durations=[dur(1), dur(1)], meters=[1.0, 1.0]
        ),
        f"{_MATRIX}.rows",
    ),
    ("short-durations-row", lambda r: _row(r, 1).durations.pop(), f"{_MATRIX}.rows[1].durations"),
    (
        "long-durations-row",
        lambda r: _row(r, 0).durations.append(dur(3)),
        f"{_MATRIX}.rows[0].durations",
    ),
    ("short-meters-row", lambda r: _row(r, 0).meters.pop(), f"{_MATRIX}.rows[0].meters"),
    (
        "negative-duration",
        lambda r: _row(r, 0).durations[1].CopyFrom(dur(-1)),
        f"{_MATRIX}.rows[0].durations[1]",
    ),
    (
        "duration-nanos",
        lambda r: _row(r, 1).durations[0].CopyFrom(dur(1, -1)),
        f"{_MATRIX}.rows[1].durations[0]",
    ),
    (
        "meters-nan",
        lambda r: _row(r, 1).meters.__setitem__(0, math.nan),
        f"{_MATRIX}.rows[1].meters[0]",
    ),
    (
        "meters-negative",
        lambda r: _row(r, 0).meters.__setitem__(1, -2.0),
        f"{_MATRIX}.rows[0].meters[1]",
    ),
]


@pytest.mark.parametrize(("mutate", "path"), [pytest.param(m, p, id=i) for i, m, p in BASE_CASES])
def test_proto_rule_reports_exact_path(mutate: Mutation, path: str) -> None:
    request = base_request()
    mutate(request)
    assert violation_paths(request) == [path]


@pytest.mark.parametrize(("mutate", "path"), [pytest.param(m, p, id=i) for i, m, p in MATRIX_CASES])
def test_matrix_rule_reports_exact_path(mutate: Mutation, path: str) -> None:
    request = matrix_request()
    mutate(request)
    assert violation_paths(request) == [path]


def test_many_bad_matrix_values_are_capped() -> None:
    n = 4
    request = pb.OptimizeToursRequest(
        model=pb.ShipmentModel(
            duration_distance_matrix_src_tags=[f"t{i}" for i in range(n)],
            duration_distance_matrix_dst_tags=[f"t{i}" for i in range(n)],
            duration_distance_matrices=[
                pb.ShipmentModel.DurationDistanceMatrix(
                    rows=[
                        pb.ShipmentModel.DurationDistanceMatrix.Row(
                            durations=[dur(-1)] * n, meters=[0.0] * n
                        )
                        for _ in range(n)
                    ]
                )
            ],
        )
    )
    paths = violation_paths(request)
    assert paths == [
        f"{_MATRIX}.rows[0].durations[0]",
        f"{_MATRIX}.rows[0].durations[1]",
        f"{_MATRIX}.rows[0].durations[2]",
        f"{_MATRIX}.rows[0].durations[3]",
        f"{_MATRIX}.rows[1].durations[0]",
        f"{_MATRIX}.rows",  # "11 more invalid durations values"
    ]


def test_all_violations_are_collected_at_once() -> None:
    request = base_request()
    request.timeout.CopyFrom(dur(-10))
    _visit(request).arrival_location.latitude = 123.0
    _shipment(request).allowed_vehicle_indices.append(5)  # found by the engine validator
    assert violation_paths(request) == [
        "timeout",
        f"{_VISIT}.arrival_location.latitude",
        "model.shipments[0].allowed_vehicle_indices[0]",
    ]


def test_engine_paths_are_prefixed_with_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_validate_model(model: object) -> list[FieldViolation]:
        return [
            FieldViolation("", "model-wide problem"),
            FieldViolation("shipments[0].deliveries[0].time_windows[0]", "bad window"),
        ]

    monkeypatch.setattr(rpc.convert.request, "validate_model", fake_validate_model)
    with pytest.raises(InvalidModelError) as exc_info:
        convert(base_request())
    assert exc_info.value.violations == (
        FieldViolation("model", "model-wide problem"),
        FieldViolation(f"{_WINDOW}", "bad window"),
    )


def test_engine_duplicates_of_proto_violations_are_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake_validate_model(model: object) -> list[FieldViolation]:
        return [
            FieldViolation("shipments[0].deliveries[0].duration", "duplicate"),
            FieldViolation("shipments[0].deliveries[0].duration.x", "below a reported path"),
            FieldViolation("shipments[0].deliveries[0].durations", "another field"),
        ]

    monkeypatch.setattr(rpc.convert.request, "validate_model", fake_validate_model)
    request = base_request()
    _visit(request).duration.CopyFrom(dur(-1))
    assert violation_paths(request) == [f"{_VISIT}.duration", f"{_VISIT}.durations"]


def test_violations_to_validation_errors() -> None:
    errors = violations_to_validation_errors(
        [
            FieldViolation("timeout", "must not be negative"),
            FieldViolation("model.shipments[3].load_demands[kg].amount", "must not be negative"),
            FieldViolation("", "empty"),
        ]
    )
    ref = pb.OptimizeToursValidationError.FieldReference
    assert errors == [
        pb.OptimizeToursValidationError(
            code=30,
            display_name="DURATION_INVALID",
            fields=[ref(name="timeout")],
            field_path="timeout",
            error_message="must not be negative",
        ),
        pb.OptimizeToursValidationError(
            code=40,
            display_name="LOAD_INVALID",
            fields=[
                ref(
                    name="model",
                    sub_field=ref(
                        name="shipments",
                        index=3,
                        sub_field=ref(name="load_demands", key="kg", sub_field=ref(name="amount")),
                    ),
                )
            ],
            field_path="model.shipments[3].load_demands[kg].amount",
            error_message="must not be negative",
        ),
        pb.OptimizeToursValidationError(
            code=1, display_name="INVALID_FIELD", field_path="", error_message="empty"
        ),
    ]
    assert len(violations_to_validation_errors([FieldViolation("a", "b")] * 5, limit=2)) == 2
