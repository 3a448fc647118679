"""rpc.convert: protobuf ⇄ engine conversion and request validation (and rpc.errors statuses)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import duration_pb2, json_format, timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from google.type import latlng_pb2

import rpc.convert.request
from engine.errors import FieldViolation, InvalidModelError
from engine.model import (
    DEFAULT_GLOBAL_END_TIME,
    DEFAULT_GLOBAL_START_TIME,
    BreakRequest,
    LatLng,
    ShipmentModel,
    TimeWindow,
)
from engine.options import SearchMode
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
from rpc.convert import (
    RequestSettings,
    request_to_engine,
    seconds_to_duration,
    seconds_to_timestamp,
    solution_to_response,
    violations_to_validation_errors,
)
from rpc.errors import (
    grpc_status,
    internal_status,
    invalid_argument_status,
    resource_exhausted_status,
)
from rpc.pb import route_optimization_service_pb2 as pb

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "optimize_tours_request.json"
T0 = 1_748_851_200  # 2025-06-02T08:00:00Z
DEFAULT_SPEED = 10.0


def ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def dur(seconds: int, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def latlng(lat: float, lng: float) -> latlng_pb2.LatLng:
    return latlng_pb2.LatLng(latitude=lat, longitude=lng)


def convert(
    request: pb.OptimizeToursRequest,
) -> tuple[ShipmentModel, RequestSettings]:
    return request_to_engine(request, default_geodesic_meters_per_second=DEFAULT_SPEED)


def violation_paths(request: pb.OptimizeToursRequest) -> list[str]:
    with pytest.raises(InvalidModelError) as exc_info:
        convert(request)
    return [v.field for v in exc_info.value.violations]


def base_request() -> pb.OptimizeToursRequest:
    """A small valid request with geodesic travel: one shipment, one vehicle with a break."""
    return pb.OptimizeToursRequest(
        model=pb.ShipmentModel(
            global_start_time=ts(T0),
            global_end_time=ts(T0 + 12 * 3600),
            shipments=[
                pb.Shipment(
                    deliveries=[
                        pb.Shipment.VisitRequest(
                            arrival_location=latlng(38.71, -9.13),
                            duration=dur(300),
                            time_windows=[pb.TimeWindow(start_time=ts(T0), end_time=ts(T0 + 3600))],
                        )
                    ],
                    load_demands={"kg": pb.Shipment.Load(amount=5)},
                )
            ],
            vehicles=[
                pb.Vehicle(
                    start_location=latlng(38.74, -9.16),
                    end_location=latlng(38.74, -9.16),
                    start_time_windows=[pb.TimeWindow(start_time=ts(T0), end_time=ts(T0 + 60))],
                    load_limits={"kg": pb.Vehicle.LoadLimit(max_load=10)},
                    cost_per_kilometer=1.0,
                    break_rule=pb.BreakRule(
                        break_requests=[
                            pb.BreakRule.BreakRequest(
                                earliest_start_time=ts(T0 + 4 * 3600),
                                latest_start_time=ts(T0 + 5 * 3600),
                                min_duration=dur(1800),
                            )
                        ]
                    ),
                )
            ],
        )
    )


def matrix_request() -> pb.OptimizeToursRequest:
    """A small valid request with a 2×2 client matrix (tags "depot" and "a")."""
    row = pb.ShipmentModel.DurationDistanceMatrix.Row
    return pb.OptimizeToursRequest(
        model=pb.ShipmentModel(
            shipments=[
                pb.Shipment(deliveries=[pb.Shipment.VisitRequest(tags=["a"], duration=dur(60))])
            ],
            vehicles=[pb.Vehicle(start_tags=["depot"], end_tags=["depot"])],
            duration_distance_matrix_src_tags=["depot", "a"],
            duration_distance_matrix_dst_tags=["depot", "a"],
            duration_distance_matrices=[
                pb.ShipmentModel.DurationDistanceMatrix(
                    rows=[
                        row(durations=[dur(0), dur(100, 500_000_000)], meters=[0.0, 1000.0]),
                        row(durations=[dur(90), dur(0)], meters=[950.0, 0.0]),
                    ]
                )
            ],
        )
    )


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


def test_settings_defaults() -> None:
    _, settings = convert(pb.OptimizeToursRequest())
    assert settings == RequestSettings(
        timeout_s=None,
        search_mode=SearchMode.RETURN_FAST,
        validate_only=False,
        label="",
        geodesic_meters_per_second=DEFAULT_SPEED,
        populate_polylines=False,
    )


def test_settings_set() -> None:
    request = pb.OptimizeToursRequest(
        timeout=dur(7, 250_000_000),
        search_mode=pb.OptimizeToursRequest.CONSUME_ALL_AVAILABLE_TIME,
        solving_mode=pb.OptimizeToursRequest.VALIDATE_ONLY,
        label="run-42",
        geodesic_meters_per_second=12.5,
        populate_polylines=True,
        use_geodesic_distances=True,
        solver=pb.SolverSettings(
            backend="pyvrp", solver_processes=2, random_seed=9, iteration_limit=500
        ),
    )
    _, settings = convert(request)
    assert settings == RequestSettings(
        timeout_s=7.25,
        search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
        validate_only=True,
        label="run-42",
        geodesic_meters_per_second=12.5,
        populate_polylines=True,
        use_geodesic_distances=True,
        backend="pyvrp",
        solver_processes=2,
        random_seed=9,
        iteration_limit=500,
    )
    options = settings.solve_options(3.0, default_solver_processes=1)
    assert (options.backend, options.solver_processes, options.seed, options.iteration_limit) == (
        "pyvrp",
        2,
        9,
        500,
    )
    assert settings.solve_options(3.0, 1).time_limit_s == 3.0


def test_solver_settings_default_to_the_server() -> None:
    _, settings = convert(pb.OptimizeToursRequest())
    options = settings.solve_options(5.0, default_solver_processes=3)
    assert (options.backend, options.solver_processes, options.iteration_limit) == ("auto", 3, None)


@pytest.mark.parametrize(
    ("solver", "path"),
    [
        (pb.SolverSettings(backend="gurobi"), "solver.backend"),
        (pb.SolverSettings(solver_processes=-1), "solver.solver_processes"),
        (pb.SolverSettings(random_seed=-5), "solver.random_seed"),
        (pb.SolverSettings(iteration_limit=-1), "solver.iteration_limit"),
    ],
)
def test_bad_solver_settings_name_the_field(solver: pb.SolverSettings, path: str) -> None:
    with pytest.raises(InvalidModelError) as info:
        convert(pb.OptimizeToursRequest(solver=solver))
    assert [v.field for v in info.value.violations] == [path]


def test_zero_timeout_is_rejected() -> None:
    with pytest.raises(InvalidModelError) as info:
        convert(pb.OptimizeToursRequest(timeout=dur(0)))
    assert [v.field for v in info.value.violations] == ["timeout"]


def test_model_defaults_when_unset() -> None:
    request = pb.OptimizeToursRequest(
        model=pb.ShipmentModel(
            shipments=[
                pb.Shipment(deliveries=[pb.Shipment.VisitRequest(arrival_location=latlng(1, 2))])
            ],
            vehicles=[pb.Vehicle(load_limits={"kg": pb.Vehicle.LoadLimit()})],
        )
    )
    model, _ = convert(request)
    assert model.global_start_time == DEFAULT_GLOBAL_START_TIME
    assert model.global_end_time == DEFAULT_GLOBAL_END_TIME
    assert model.duration_distance_matrices == ()
    shipment = model.shipments[0]
    assert shipment.penalty_cost is None
    assert shipment.pickups == ()
    assert shipment.load_demands == {}
    visit = shipment.deliveries[0]
    assert visit.time_windows == ()
    assert visit.duration_s == 0.0
    vehicle = model.vehicles[0]
    assert vehicle.start_location is None
    assert vehicle.end_location is None
    assert vehicle.travel_duration_multiple == 1.0
    assert vehicle.load_limits == {}  # unset max_load: unlimited, so absent
    assert vehicle.route_duration_limit_s is None
    assert vehicle.route_distance_limit_m is None
    assert vehicle.break_requests == ()


def full_shipment() -> pb.Shipment:
    """A shipment that sets every field."""
    return pb.Shipment(
        label="s0",
        pickups=[
            pb.Shipment.VisitRequest(
                arrival_location=latlng(38.5, -9.25),
                duration=dur(90, 250_000_000),
                tags=["p", "x"],
                label="pick",
                time_windows=[
                    pb.TimeWindow(
                        start_time=ts(T0 + 100, 1),
                        end_time=ts(T0 + 200),
                        soft_start_time=ts(T0 + 120),
                        soft_end_time=ts(T0 + 180, 750_000_000),
                        cost_per_hour_before_soft_start_time=2.5,
                        cost_per_hour_after_soft_end_time=0.0,
                    )
                ],
            )
        ],
        deliveries=[
            pb.Shipment.VisitRequest(arrival_location=latlng(38.6, -9.1)),
            pb.Shipment.VisitRequest(
                arrival_location=latlng(-90, 180),
                time_windows=[
                    pb.TimeWindow(end_time=ts(T0 + 1000)),
                    pb.TimeWindow(start_time=ts(T0 + 2000)),
                ],
            ),
        ],
        load_demands={
            "kg": pb.Shipment.Load(amount=7),
            "pallets": pb.Shipment.Load(amount=0),
        },
        penalty_cost=0.0,
        allowed_vehicle_indices=[0],
    )


def full_vehicle() -> pb.Vehicle:
    """A vehicle that sets every field."""
    return pb.Vehicle(
        label="v0",
        start_location=latlng(90, -180),
        end_location=latlng(38.7, -9.2),
        start_tags=["depot"],
        end_tags=["depot", "end"],
        start_time_windows=[pb.TimeWindow(start_time=ts(T0 + 10))],
        end_time_windows=[pb.TimeWindow(end_time=ts(T0 + 80000))],
        travel_duration_multiple=1.25,
        load_limits={
            "kg": pb.Vehicle.LoadLimit(max_load=100),
            "pallets": pb.Vehicle.LoadLimit(max_load=0),
        },
        cost_per_hour=20.0,
        cost_per_traveled_hour=5.5,
        cost_per_kilometer=0.4,
        fixed_cost=30.0,
        route_duration_limit=pb.Vehicle.DurationLimit(max_duration=dur(3600, 1)),
        route_distance_limit=pb.Vehicle.DistanceLimit(max_meters=50_000),
        break_rule=pb.BreakRule(
            break_requests=[
                pb.BreakRule.BreakRequest(
                    earliest_start_time=ts(T0 + 3600),
                    latest_start_time=ts(T0 + 7200, 100),
                    min_duration=dur(900, 500_000_000),
                )
            ]
        ),
    )


def full_request() -> pb.OptimizeToursRequest:
    return pb.OptimizeToursRequest(
        model=pb.ShipmentModel(
            global_start_time=ts(T0, 500_000_000),
            global_end_time=ts(T0 + 86400),
            shipments=[full_shipment()],
            vehicles=[full_vehicle()],
        )
    )


def test_full_model_global_times() -> None:
    model, _ = convert(full_request())
    assert model.global_start_time == T0 + 0.5
    assert model.global_end_time == T0 + 86400.0


def test_full_shipment_field_by_field() -> None:
    model, _ = convert(full_request())
    (shipment,) = model.shipments
    assert shipment.label == "s0"
    assert shipment.load_demands == {"kg": 7, "pallets": 0}
    assert shipment.penalty_cost == 0.0  # set to zero: optional, not mandatory
    assert not shipment.is_mandatory
    assert shipment.allowed_vehicle_indices == (0,)
    (pickup,) = shipment.pickups
    assert pickup.arrival_location == LatLng(38.5, -9.25)
    assert pickup.duration_s == 90.25
    assert pickup.tags == ("p", "x")
    assert isinstance(pickup.tags, tuple)
    assert pickup.label == "pick"
    (window,) = pickup.time_windows
    assert window == TimeWindow(
        start_time=T0 + 100 + 1e-9,
        end_time=T0 + 200.0,
        soft_start_time=T0 + 120.0,
        soft_end_time=T0 + 180.75,
        cost_per_hour_before_soft_start_time=2.5,
        cost_per_hour_after_soft_end_time=0.0,
    )
    assert len(shipment.deliveries) == 2
    assert shipment.deliveries[1].time_windows == (
        TimeWindow(end_time=T0 + 1000.0),
        TimeWindow(start_time=T0 + 2000.0),
    )


def test_full_vehicle_field_by_field() -> None:
    model, _ = convert(full_request())
    (vehicle,) = model.vehicles
    assert vehicle.label == "v0"
    assert vehicle.start_location == LatLng(90.0, -180.0)
    assert vehicle.end_location == LatLng(38.7, -9.2)
    assert vehicle.start_tags == ("depot",)
    assert vehicle.end_tags == ("depot", "end")
    assert vehicle.start_time_windows == (TimeWindow(start_time=T0 + 10.0),)
    assert vehicle.end_time_windows == (TimeWindow(end_time=T0 + 80000.0),)
    assert vehicle.travel_duration_multiple == 1.25
    assert vehicle.load_limits == {"kg": 100, "pallets": 0}
    assert vehicle.cost_per_hour == 20.0
    assert vehicle.cost_per_traveled_hour == 5.5
    assert vehicle.cost_per_kilometer == 0.4
    assert vehicle.fixed_cost == 30.0
    assert vehicle.route_duration_limit_s == 3600 + 1e-9
    assert vehicle.route_distance_limit_m == 50_000.0
    assert vehicle.break_requests == (
        BreakRequest(
            earliest_start_time=T0 + 3600.0,
            latest_start_time=T0 + 7200 + 100e-9,
            min_duration_s=900.5,
        ),
    )


def test_matrices_become_float64_arrays() -> None:
    model, _ = convert(matrix_request())
    assert model.duration_distance_matrix_src_tags == ("depot", "a")
    assert model.duration_distance_matrix_dst_tags == ("depot", "a")
    (matrix,) = model.duration_distance_matrices
    assert matrix.vehicle_start_tag == ""
    assert matrix.durations_s.dtype == np.float64
    assert matrix.distances_m.dtype == np.float64
    np.testing.assert_array_equal(matrix.durations_s, [[0.0, 100.5], [90.0, 0.0]])
    np.testing.assert_array_equal(matrix.distances_m, [[0.0, 1000.0], [950.0, 0.0]])
    (shipment,) = model.shipments
    assert shipment.deliveries[0].tags == ("a",)
    assert shipment.deliveries[0].arrival_location is None


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
        [FieldViolation("timeout", "must not be negative"), FieldViolation("model", "empty")]
    )
    assert errors == [
        pb.OptimizeToursValidationError(field_path="timeout", error_message="must not be negative"),
        pb.OptimizeToursValidationError(field_path="model", error_message="empty"),
    ]


# -- engine → response ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds", "nanos"),
    [
        (0.0, 0, 0),
        (1_700_000_000.25, 1_700_000_000, 250_000_000),
        (12.5, 12, 500_000_000),
        (0.001, 0, 1_000_000),
        (3.9999999999, 4, 0),
        (-1.5, -2, 500_000_000),
    ],
)
def test_seconds_to_timestamp(value: float, seconds: int, nanos: int) -> None:
    assert seconds_to_timestamp(value) == ts(seconds, nanos)


@pytest.mark.parametrize(
    ("value", "seconds", "nanos"),
    [
        (0.0, 0, 0),
        (90.25, 90, 250_000_000),
        (0.000000001, 0, 1),
        (-1.5, -1, -500_000_000),
        (-0.25, 0, -250_000_000),
        (-2.0, -2, 0),
    ],
)
def test_seconds_to_duration(value: float, seconds: int, nanos: int) -> None:
    assert seconds_to_duration(value) == dur(seconds, nanos)


REASON = "auto: pyvrp cannot express vehicle breaks (model.vehicles[0].break_rule)"


def hand_built_transitions(t: float) -> tuple[Transition, ...]:
    return (
        Transition(
            start_time=t + 0.5,
            travel_duration_s=99.75,
            travel_distance_m=1000.5,
            wait_duration_s=0.0,
            break_duration_s=0.0,
            total_duration_s=99.75,
            vehicle_loads={"kg": 0},
            polyline="_p~iF~ps|U",
        ),
        Transition(
            start_time=t + 160.25,
            travel_duration_s=500.0,
            travel_distance_m=3000.0,
            wait_duration_s=30.25,
            break_duration_s=900.0,
            total_duration_s=1430.25,
            vehicle_loads={"kg": 5},
        ),
        Transition(
            start_time=t + 900.0,
            travel_duration_s=0.75,
            travel_distance_m=321.0,
            wait_duration_s=0.0,
            break_duration_s=0.0,
            total_duration_s=0.75,
            vehicle_loads={"kg": 0},
        ),
    )


def hand_built_skipped() -> tuple[SkippedShipment, ...]:
    return (
        SkippedShipment(
            index=0,
            label="s0",
            reasons=(
                SkipReason(
                    code=SkipReasonCode.DEMAND_EXCEEDS_VEHICLE_CAPACITY,
                    example_vehicle_index=0,
                    example_exceeded_capacity_type="kg",
                ),
                SkipReason(code=SkipReasonCode.VEHICLE_NOT_ALLOWED, example_vehicle_index=1),
            ),
        ),
        SkippedShipment(index=2, label="s2", reasons=(SkipReason(code=SkipReasonCode.NO_VEHICLE),)),
        SkippedShipment(index=3),
    )


def hand_built_solution() -> Solution:
    t = 1_700_000_000.0
    metrics = AggregatedMetrics(
        performed_shipment_count=2,
        travel_duration_s=600.5,
        wait_duration_s=30.25,
        delay_duration_s=12.125,
        break_duration_s=900.0,
        visit_duration_s=120.75,
        total_duration_s=1651.625,
        travel_distance_m=4321.5,
        max_loads={"kg": 12, "pallets": 1},
    )
    used = Route(
        vehicle_index=0,
        vehicle_label="van-1",
        vehicle_start_time=t + 0.5,
        vehicle_end_time=t + 1652.125,
        visits=(
            Visit(
                shipment_index=1,
                is_pickup=True,
                visit_request_index=0,
                start_time=t + 100.25,
                load_demands={"kg": 5},
                shipment_label="s1",
                visit_label="s1-pickup",
            ),
            Visit(
                shipment_index=1,
                is_pickup=False,
                visit_request_index=1,
                start_time=t + 800.0078125,
                load_demands={"kg": -5},
                shipment_label="s1",
                visit_label="s1-drop",
            ),
        ),
        transitions=hand_built_transitions(t),
        breaks=(Break(start_time=t + 200.125, duration_s=900.0),),
        metrics=metrics,
        route_costs={"model.vehicles.fixed_cost": 50.0, "model.vehicles.cost_per_kilometer": 1.5},
        route_total_cost=51.5,
        polyline="_p~iF~ps|U_ulLnnqC",
    )
    unused = Route(vehicle_index=1, vehicle_label="van-2")
    return Solution(
        routes=(used, unused),
        skipped_shipments=hand_built_skipped(),
        metrics=Metrics(
            aggregated_route_metrics=metrics,
            skipped_mandatory_shipment_count=1,
            used_vehicle_count=1,
            earliest_vehicle_start_time=t + 0.5,
            latest_vehicle_end_time=t + 1652.125,
            costs={
                "model.vehicles.fixed_cost": 50.0,
                "model.vehicles.cost_per_kilometer": 1.5,
                "model.shipments.penalty_cost": 80.0,
            },
            total_cost=131.5,
        ),
        status=SolveStatus.INTERRUPTED,
        backend="ortools",
        backend_reason=REASON,
        solver_processes=2,
        matrix_source="geodesic",
        matrix_time_s=0.012,
        solve_time_s=4.5,
        solver_time_limit_s=4.75,
    )


def expected_transitions(t: int) -> list[pb.ShipmentRoute.Transition]:
    load = pb.ShipmentRoute.VehicleLoad
    return [
        pb.ShipmentRoute.Transition(
            start_time=ts(t, 500_000_000),
            travel_duration=dur(99, 750_000_000),
            travel_distance_meters=1000.5,
            wait_duration=dur(0),
            break_duration=dur(0),
            total_duration=dur(99, 750_000_000),
            vehicle_loads={"kg": load(amount=0)},
            route_polyline=pb.ShipmentRoute.EncodedPolyline(points="_p~iF~ps|U"),
        ),
        pb.ShipmentRoute.Transition(
            start_time=ts(t + 160, 250_000_000),
            travel_duration=dur(500),
            travel_distance_meters=3000.0,
            wait_duration=dur(30, 250_000_000),
            break_duration=dur(900),
            total_duration=dur(1430, 250_000_000),
            vehicle_loads={"kg": load(amount=5)},
        ),
        pb.ShipmentRoute.Transition(
            start_time=ts(t + 900),
            travel_duration=dur(0, 750_000_000),
            travel_distance_meters=321.0,
            wait_duration=dur(0),
            break_duration=dur(0),
            total_duration=dur(0, 750_000_000),
            vehicle_loads={"kg": load(amount=0)},
        ),
    ]


def expected_visits(t: int) -> list[pb.ShipmentRoute.Visit]:
    return [
        pb.ShipmentRoute.Visit(
            shipment_index=1,
            is_pickup=True,
            visit_request_index=0,
            start_time=ts(t + 100, 250_000_000),
            load_demands={"kg": pb.Shipment.Load(amount=5)},
            shipment_label="s1",
            visit_label="s1-pickup",
        ),
        pb.ShipmentRoute.Visit(
            shipment_index=1,
            is_pickup=False,
            visit_request_index=1,
            start_time=ts(t + 800, 7_812_500),
            load_demands={"kg": pb.Shipment.Load(amount=-5)},
            shipment_label="s1",
            visit_label="s1-drop",
        ),
    ]


def expected_skipped() -> list[pb.SkippedShipment]:
    return [
        pb.SkippedShipment(
            index=0,
            label="s0",
            reasons=[
                pb.SkippedShipment.Reason(
                    code=pb.SkippedShipment.Reason.DEMAND_EXCEEDS_VEHICLE_CAPACITY,
                    example_vehicle_index=0,
                    example_exceeded_capacity_type="kg",
                ),
                pb.SkippedShipment.Reason(
                    code=pb.SkippedShipment.Reason.VEHICLE_NOT_ALLOWED, example_vehicle_index=1
                ),
            ],
        ),
        pb.SkippedShipment(
            index=2,
            label="s2",
            reasons=[pb.SkippedShipment.Reason(code=pb.SkippedShipment.Reason.NO_VEHICLE)],
        ),
        pb.SkippedShipment(index=3),
    ]


def test_solution_to_response_maps_every_field() -> None:
    t = 1_700_000_000
    response = solution_to_response(hand_built_solution(), request_label="req-7")
    agg = pb.AggregatedMetrics(
        performed_shipment_count=2,
        travel_duration=dur(600, 500_000_000),
        wait_duration=dur(30, 250_000_000),
        delay_duration=dur(12, 125_000_000),
        break_duration=dur(900),
        visit_duration=dur(120, 750_000_000),
        total_duration=dur(1651, 625_000_000),
        travel_distance_meters=4321.5,
        max_loads={
            "kg": pb.ShipmentRoute.VehicleLoad(amount=12),
            "pallets": pb.ShipmentRoute.VehicleLoad(amount=1),
        },
    )
    expected = pb.OptimizeToursResponse(
        request_label="req-7",
        routes=[
            pb.ShipmentRoute(
                vehicle_index=0,
                vehicle_label="van-1",
                vehicle_start_time=ts(t, 500_000_000),
                vehicle_end_time=ts(t + 1652, 125_000_000),
                visits=expected_visits(t),
                transitions=expected_transitions(t),
                route_polyline=pb.ShipmentRoute.EncodedPolyline(points="_p~iF~ps|U_ulLnnqC"),
                breaks=[
                    pb.ShipmentRoute.Break(start_time=ts(t + 200, 125_000_000), duration=dur(900))
                ],
                metrics=agg,
                route_costs={
                    "model.vehicles.fixed_cost": 50.0,
                    "model.vehicles.cost_per_kilometer": 1.5,
                },
                route_total_cost=51.5,
            ),
            pb.ShipmentRoute(vehicle_index=1, vehicle_label="van-2"),
        ],
        skipped_shipments=expected_skipped(),
        metrics=pb.OptimizeToursResponse.Metrics(
            aggregated_route_metrics=agg,
            skipped_mandatory_shipment_count=1,
            used_vehicle_count=1,
            earliest_vehicle_start_time=ts(t, 500_000_000),
            latest_vehicle_end_time=ts(t + 1652, 125_000_000),
            costs={
                "model.vehicles.fixed_cost": 50.0,
                "model.vehicles.cost_per_kilometer": 1.5,
                "model.shipments.penalty_cost": 80.0,
            },
            total_cost=131.5,
        ),
        solve_info=pb.SolveInfo(
            status=pb.SolveInfo.INTERRUPTED,
            backend="ortools",
            backend_reason=REASON,
            solver_processes=2,
            matrix_source="geodesic",
            matrix_duration=dur(0, 12_000_000),
            solve_duration=dur(4, 500_000_000),
            solver_time_limit=dur(4, 750_000_000),
        ),
    )
    assert response == expected


def test_response_presence_of_optional_fields() -> None:
    response = solution_to_response(hand_built_solution(), request_label="")
    used, unused = response.routes
    # An unused vehicle carries only its index and label.
    assert unused == pb.ShipmentRoute(vehicle_index=1, vehicle_label="van-2")
    assert not unused.HasField("vehicle_start_time")
    assert not unused.HasField("metrics")
    # Polylines only when non-empty.
    assert used.HasField("route_polyline")
    assert used.transitions[0].HasField("route_polyline")
    assert not used.transitions[1].HasField("route_polyline")
    # example_vehicle_index is a proto3 optional: 0 is set, None is unset.
    reasons = response.skipped_shipments[0].reasons
    assert reasons[0].HasField("example_vehicle_index")
    assert reasons[0].example_vehicle_index == 0
    assert not response.skipped_shipments[1].reasons[0].HasField("example_vehicle_index")


@pytest.mark.parametrize("status", list(SolveStatus))
def test_solve_status_names_match(status: SolveStatus) -> None:
    solution = Solution(routes=(), skipped_shipments=(), metrics=Metrics(), status=status)
    response = solution_to_response(solution, request_label="")
    assert response.solve_info.status == status.value
    assert not response.metrics.HasField("earliest_vehicle_start_time")
    assert not response.metrics.HasField("latest_vehicle_end_time")


@pytest.mark.parametrize("code", list(SkipReasonCode))
def test_skip_reason_codes_match(code: SkipReasonCode) -> None:
    assert pb.SkippedShipment.Reason.Code.Value(code.name) == code.value


# -- rpc.errors statuses (kept here with the other adapter tests) --------------------------------


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
    assert retry.retry_delay == dur(1, 500_000_000)
