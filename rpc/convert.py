"""Conversion between the ``routeopt.v1`` protobuf messages and the engine's plain objects.

:func:`request_to_engine` validates a whole request at once. It checks what only the protobuf form
can get wrong (Timestamp/Duration encodings, LatLng ranges, non-finite numbers, matrix shapes,
enum values, request-level fields), then runs :func:`engine.validation.validate_model` on the
converted model, and raises :class:`~engine.errors.InvalidModelError` with every problem found.
Field paths are relative to the request, in proto field names
(``model.shipments[3].deliveries[0].time_windows[0].end_time``).

A value rejected here is replaced by a neutral one (the nearest valid time, 0, the default) in
the model given to the engine validator, and engine violations at a path already reported are
dropped, so that one problem is reported once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.type import latlng_pb2

from engine.backends import BACKENDS
from engine.errors import FieldViolation, InvalidModelError
from engine.model import (
    DEFAULT_GLOBAL_END_TIME,
    DEFAULT_GLOBAL_START_TIME,
    BreakRequest,
    DurationDistanceMatrix,
    LatLng,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from engine.options import SearchMode, SolveOptions
from engine.solution import AggregatedMetrics, Route, SkippedShipment, Solution, Transition, Visit
from engine.validation import validate_model
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = [
    "RequestSettings",
    "duration_to_seconds",
    "request_to_engine",
    "seconds_to_duration",
    "seconds_to_timestamp",
    "solution_to_response",
    "timestamp_to_seconds",
    "violations_to_validation_errors",
]

# Ranges of the well-known types (google/protobuf/timestamp.proto and duration.proto).
_MIN_TIMESTAMP_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_DURATION_SECONDS = 315_576_000_000  # about 10 000 years
_NANOS_PER_SECOND = 1_000_000_000

_MAX_MATRIX_VIOLATIONS = 5
"""Invalid matrix values reported one by one per matrix and value kind; the rest are counted."""

_SEARCH_MODES = {
    pb.OptimizeToursRequest.SEARCH_MODE_UNSPECIFIED: SearchMode.RETURN_FAST,
    pb.OptimizeToursRequest.RETURN_FAST: SearchMode.RETURN_FAST,
    pb.OptimizeToursRequest.CONSUME_ALL_AVAILABLE_TIME: SearchMode.CONSUME_ALL_AVAILABLE_TIME,
}
_SOLVING_MODES = (pb.OptimizeToursRequest.DEFAULT_SOLVE, pb.OptimizeToursRequest.VALIDATE_ONLY)

_T = TypeVar("_T")
_M = TypeVar("_M")


@dataclass(frozen=True)
class RequestSettings:
    """The request fields that are not part of the model.

    ``timeout_s`` is None when the request sets no timeout (the server's default applies);
    ``geodesic_meters_per_second`` is the request's speed or the server default given to
    :func:`request_to_engine`.
    """

    timeout_s: float | None
    search_mode: SearchMode
    validate_only: bool
    label: str
    geodesic_meters_per_second: float
    populate_polylines: bool
    use_geodesic_distances: bool = False
    backend: str = "auto"
    solver_processes: int = 0
    """0: the server's default."""
    random_seed: int = 0
    iteration_limit: int | None = None

    def solve_options(self, time_limit_s: float, default_solver_processes: int) -> SolveOptions:
        """The engine options of this request with a time budget and the server's default
        number of parallel searches."""
        return SolveOptions(
            time_limit_s=time_limit_s,
            search_mode=self.search_mode,
            geodesic_meters_per_second=self.geodesic_meters_per_second,
            use_geodesic_distances=self.use_geodesic_distances,
            populate_polylines=self.populate_polylines,
            backend=self.backend,
            solver_processes=self.solver_processes or default_solver_processes,
            seed=self.random_seed,
            iteration_limit=self.iteration_limit,
        )


# -- well-known types --------------------------------------------------------------------------


def timestamp_to_seconds(ts: timestamp_pb2.Timestamp) -> float:
    """Seconds since the Unix epoch (no range check)."""
    return ts.seconds + ts.nanos / _NANOS_PER_SECOND


def duration_to_seconds(d: duration_pb2.Duration) -> float:
    """Seconds (no range check)."""
    return d.seconds + d.nanos / _NANOS_PER_SECOND


def _split_seconds(value: float) -> tuple[int, int]:
    """``value`` as (whole seconds rounded down, nanoseconds in [0, 1e9))."""
    seconds = math.floor(value)
    nanos = round((value - seconds) * _NANOS_PER_SECOND)  # value - floor(value) is exact
    if nanos >= _NANOS_PER_SECOND:
        seconds, nanos = seconds + 1, nanos - _NANOS_PER_SECOND
    return seconds, nanos


def seconds_to_timestamp(value: float) -> timestamp_pb2.Timestamp:
    """Epoch seconds as a Timestamp, to the nearest nanosecond."""
    seconds, nanos = _split_seconds(value)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def seconds_to_duration(value: float) -> duration_pb2.Duration:
    """Seconds as a Duration, to the nearest nanosecond (seconds and nanos share their sign)."""
    seconds, nanos = _split_seconds(value)
    if seconds < 0 and nanos > 0:
        seconds, nanos = seconds + 1, nanos - _NANOS_PER_SECOND
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


# -- request → engine --------------------------------------------------------------------------


def request_to_engine(
    request: pb.OptimizeToursRequest,
    *,
    default_geodesic_meters_per_second: float,
    max_solver_processes: int | None = None,
) -> tuple[ShipmentModel, RequestSettings]:
    """Validate ``request`` completely and convert it to an engine model and settings.

    Raises :class:`~engine.errors.InvalidModelError` listing every violation, with paths
    relative to the request (``timeout``, ``model.vehicles[0].start_location.latitude``).
    ``max_solver_processes``: the server's cap on ``solver.solver_processes``.
    """
    conv = _Converter()
    settings = conv.settings(request, default_geodesic_meters_per_second)
    cap = max_solver_processes
    if cap is not None and settings.solver_processes > cap:
        conv.add(
            "solver.solver_processes",
            f"at most {cap} on this server (--max-solver-processes), "
            f"got {settings.solver_processes}",
        )
    model = conv.model(request.model)
    reported = {v.field for v in conv.violations}
    for violation in validate_model(model):
        path = f"model.{violation.field}" if violation.field else "model"
        if reported.isdisjoint(_self_and_ancestors(path)):
            conv.violations.append(FieldViolation(path, violation.description))
    if conv.violations:
        raise InvalidModelError(conv.violations)
    return model, settings


def convert_or_validate(
    request: pb.OptimizeToursRequest,
    *,
    default_geodesic_meters_per_second: float,
    max_solver_processes: int | None = None,
) -> tuple[ShipmentModel, RequestSettings] | pb.OptimizeToursResponse:
    """The engine model and settings of a request to solve, or, for a ``VALIDATE_ONLY``
    request, its response (``validation_errors`` lists every problem; empty when valid).
    Raises :class:`~engine.errors.InvalidModelError` for an invalid request to solve."""
    validate_only = request.solving_mode == pb.OptimizeToursRequest.VALIDATE_ONLY
    try:
        model, settings = request_to_engine(
            request,
            default_geodesic_meters_per_second=default_geodesic_meters_per_second,
            max_solver_processes=max_solver_processes,
        )
    except InvalidModelError as exc:
        if not validate_only:
            raise
        response = pb.OptimizeToursResponse(request_label=request.label)
        response.validation_errors.extend(violations_to_validation_errors(exc.violations))
        return response
    if validate_only:
        return pb.OptimizeToursResponse(request_label=settings.label)
    return model, settings


def _self_and_ancestors(path: str) -> list[str]:
    """``a.b[2].c`` → ``a``, ``a.b``, ``a.b[2]``, ``a.b[2].c``."""
    cuts = [i for i, ch in enumerate(path) if ch in ".[" and i > 0]
    return [path[:i] for i in cuts] + [path]


class _Converter:
    """Converts messages while collecting proto-level violations."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, path: str, description: str) -> None:
        self.violations.append(FieldViolation(path, description))

    # -- scalars and well-known types --

    def number(self, value: float, path: str, default: float) -> float:
        """A finite double, or ``default`` after recording a violation."""
        if math.isfinite(value):
            return value
        self.add(path, f"must be a finite number, got {value}")
        return default

    def timestamp(self, ts: timestamp_pb2.Timestamp, path: str) -> float:
        """Epoch seconds; an invalid Timestamp is recorded and replaced by the nearest valid one."""
        seconds, nanos = ts.seconds, ts.nanos
        if not _MIN_TIMESTAMP_SECONDS <= seconds <= _MAX_TIMESTAMP_SECONDS:
            self.add(
                path,
                "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z "
                f"(seconds {seconds})",
            )
            seconds = min(max(seconds, _MIN_TIMESTAMP_SECONDS), _MAX_TIMESTAMP_SECONDS)
        if not 0 <= nanos < _NANOS_PER_SECOND:
            self.add(path, f"nanos must be in [0, 999999999], got {nanos}")
            nanos = min(max(nanos, 0), _NANOS_PER_SECOND - 1)
        return seconds + nanos / _NANOS_PER_SECOND

    def opt_timestamp(self, parent: Message, name: str, path: str) -> float | None:
        if not parent.HasField(name):
            return None
        ts: timestamp_pb2.Timestamp = getattr(parent, name)
        return self.timestamp(ts, f"{path}.{name}")

    def duration(self, d: duration_pb2.Duration, path: str) -> float:
        """Non-negative seconds, or 0 after recording a violation."""
        if not -_MAX_DURATION_SECONDS <= d.seconds <= _MAX_DURATION_SECONDS:
            self.add(path, f"seconds must be within ±{_MAX_DURATION_SECONDS}, got {d.seconds}")
            return 0.0
        if not -_NANOS_PER_SECOND < d.nanos < _NANOS_PER_SECOND:
            self.add(path, f"nanos must be in [-999999999, 999999999], got {d.nanos}")
            return 0.0
        if (d.seconds > 0 and d.nanos < 0) or (d.seconds < 0 and d.nanos > 0):
            self.add(path, "seconds and nanos must have the same sign")
            return 0.0
        value = duration_to_seconds(d)
        if value < 0:
            self.add(path, f"must not be negative, got {value:g}s")
            return 0.0
        return value

    def latlng(self, p: latlng_pb2.LatLng, path: str) -> LatLng:
        lat, lng = p.latitude, p.longitude
        if not (math.isfinite(lat) and -90 <= lat <= 90):
            self.add(f"{path}.latitude", f"must be in [-90, 90], got {lat}")
            lat = 0.0
        if not (math.isfinite(lng) and -180 <= lng <= 180):
            self.add(f"{path}.longitude", f"must be in [-180, 180], got {lng}")
            lng = 0.0
        return LatLng(latitude=lat, longitude=lng)

    def opt_latlng(self, parent: Message, name: str, path: str) -> LatLng | None:
        if not parent.HasField(name):
            return None
        p: latlng_pb2.LatLng = getattr(parent, name)
        return self.latlng(p, f"{path}.{name}")

    def opt_number(self, parent: Message, name: str, path: str) -> float | None:
        """A proto3 ``optional double``: None when unset."""
        if not parent.HasField(name):
            return None
        value: float = getattr(parent, name)
        return self.number(value, f"{path}.{name}", 0.0)

    # -- request --

    def settings(
        self, request: pb.OptimizeToursRequest, default_geodesic_meters_per_second: float
    ) -> RequestSettings:
        timeout_s: float | None = None
        if request.HasField("timeout"):
            if request.timeout.seconds == 0 and request.timeout.nanos == 0:
                self.add("timeout", "must be positive (leave it unset for the server's default)")
            else:
                timeout_s = self.duration(request.timeout, "timeout")
        search_mode = _SEARCH_MODES.get(request.search_mode)
        if search_mode is None:
            self.add("search_mode", f"unknown value {request.search_mode}")
        if request.solving_mode not in _SOLVING_MODES:
            self.add("solving_mode", f"unknown value {request.solving_mode}")
        speed = default_geodesic_meters_per_second
        if request.HasField("geodesic_meters_per_second"):
            value = request.geodesic_meters_per_second
            if math.isfinite(value) and value > 0:
                speed = value
            else:
                self.add(
                    "geodesic_meters_per_second", f"must be a positive finite number, got {value}"
                )
        solver = request.solver
        backend = solver.backend or "auto"
        if backend not in BACKENDS:
            self.add("solver.backend", f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        if solver.solver_processes < 0:
            self.add(
                "solver.solver_processes", f"must not be negative, got {solver.solver_processes}"
            )
        if solver.random_seed < 0:
            self.add("solver.random_seed", f"must not be negative, got {solver.random_seed}")
        if solver.iteration_limit < 0:
            self.add(
                "solver.iteration_limit", f"must not be negative, got {solver.iteration_limit}"
            )
        return RequestSettings(
            timeout_s=timeout_s,
            search_mode=search_mode or SearchMode.RETURN_FAST,
            validate_only=request.solving_mode == pb.OptimizeToursRequest.VALIDATE_ONLY,
            label=request.label,
            geodesic_meters_per_second=speed,
            populate_polylines=request.populate_polylines,
            use_geodesic_distances=request.use_geodesic_distances,
            backend=backend,
            solver_processes=max(0, solver.solver_processes),
            random_seed=max(0, solver.random_seed),
            iteration_limit=solver.iteration_limit if solver.iteration_limit > 0 else None,
        )

    # -- model --

    def model(self, m: pb.ShipmentModel) -> ShipmentModel:
        path = "model"
        start = self.opt_timestamp(m, "global_start_time", path)
        end = self.opt_timestamp(m, "global_end_time", path)
        global_start = DEFAULT_GLOBAL_START_TIME if start is None else start
        global_end = DEFAULT_GLOBAL_END_TIME if end is None else end
        src_tags = tuple(m.duration_distance_matrix_src_tags)
        dst_tags = tuple(m.duration_distance_matrix_dst_tags)
        return ShipmentModel(
            shipments=_each(m.shipments, f"{path}.shipments", self.shipment),
            vehicles=_each(
                m.vehicles,
                f"{path}.vehicles",
                lambda v, p: self.vehicle(v, p, global_start, global_end),
            ),
            global_start_time=global_start,
            global_end_time=global_end,
            duration_distance_matrices=_each(
                m.duration_distance_matrices,
                f"{path}.duration_distance_matrices",
                lambda mat, p: self.matrix(mat, p, len(src_tags), len(dst_tags)),
            ),
            duration_distance_matrix_src_tags=src_tags,
            duration_distance_matrix_dst_tags=dst_tags,
        )

    def matrix(
        self, m: pb.ShipmentModel.DurationDistanceMatrix, path: str, n_src: int, n_dst: int
    ) -> DurationDistanceMatrix:
        if len(m.rows) != n_src:
            self.add(
                f"{path}.rows",
                f"must have one row per duration_distance_matrix_src_tags entry ({n_src}), "
                f"got {len(m.rows)}",
            )
        durations = np.zeros((n_src, n_dst), dtype=np.float64)
        meters = np.zeros((n_src, n_dst), dtype=np.float64)
        bad_durations = _Capped(self, path, "durations")
        bad_meters = _Capped(self, path, "meters")
        for r, row in enumerate(m.rows):
            row_path = f"{path}.rows[{r}]"
            for name, n in (("durations", len(row.durations)), ("meters", len(row.meters))):
                if n != n_dst:
                    self.add(
                        f"{row_path}.{name}",
                        "must have one value per duration_distance_matrix_dst_tags entry "
                        f"({n_dst}), got {n}",
                    )
            if r >= n_src:
                continue
            for c, d in enumerate(row.durations[:n_dst]):
                sub = _Converter()
                durations[r, c] = sub.duration(d, f"{row_path}.durations[{c}]")
                bad_durations.extend(sub.violations)
            for c, value in enumerate(row.meters[:n_dst]):
                if math.isfinite(value) and value >= 0:
                    meters[r, c] = value
                else:
                    bad_meters.add(
                        f"{row_path}.meters[{c}]", f"must be finite and >= 0, got {value}"
                    )
        bad_durations.close()
        bad_meters.close()
        return DurationDistanceMatrix(
            durations_s=_readonly(durations),
            distances_m=_readonly(meters),
            vehicle_start_tag=m.vehicle_start_tag,
        )

    def time_window(self, w: pb.TimeWindow, path: str) -> TimeWindow:
        return TimeWindow(
            start_time=self.opt_timestamp(w, "start_time", path),
            end_time=self.opt_timestamp(w, "end_time", path),
            soft_start_time=self.opt_timestamp(w, "soft_start_time", path),
            soft_end_time=self.opt_timestamp(w, "soft_end_time", path),
            cost_per_hour_before_soft_start_time=self.opt_number(
                w, "cost_per_hour_before_soft_start_time", path
            ),
            cost_per_hour_after_soft_end_time=self.opt_number(
                w, "cost_per_hour_after_soft_end_time", path
            ),
        )

    def visit_request(self, v: pb.Shipment.VisitRequest, path: str) -> VisitRequest:
        return VisitRequest(
            arrival_location=self.opt_latlng(v, "arrival_location", path),
            time_windows=_each(v.time_windows, f"{path}.time_windows", self.time_window),
            duration_s=self.duration(v.duration, f"{path}.duration"),
            tags=tuple(v.tags),
            label=v.label,
        )

    def shipment(self, s: pb.Shipment, path: str) -> Shipment:
        return Shipment(
            pickups=_each(s.pickups, f"{path}.pickups", self.visit_request),
            deliveries=_each(s.deliveries, f"{path}.deliveries", self.visit_request),
            load_demands={name: load.amount for name, load in sorted(s.load_demands.items())},
            penalty_cost=self.opt_number(s, "penalty_cost", path),
            allowed_vehicle_indices=tuple(s.allowed_vehicle_indices),
            label=s.label,
        )

    def break_request(
        self,
        b: pb.BreakRule.BreakRequest,
        path: str,
        global_start: float,
        global_end: float,
    ) -> BreakRequest:
        earliest = self.opt_timestamp(b, "earliest_start_time", path)
        latest = self.opt_timestamp(b, "latest_start_time", path)
        for name in ("earliest_start_time", "latest_start_time"):
            if not b.HasField(name):
                self.add(f"{path}.{name}", "is required")
        min_duration = (
            self.duration(b.min_duration, f"{path}.min_duration")
            if b.HasField("min_duration")
            else 0.0  # the engine reports it: a break needs a positive duration
        )
        return BreakRequest(
            earliest_start_time=global_start if earliest is None else earliest,
            latest_start_time=global_end if latest is None else latest,
            min_duration_s=min_duration,
        )

    def vehicle(self, v: pb.Vehicle, path: str, global_start: float, global_end: float) -> Vehicle:
        multiple = self.opt_number(v, "travel_duration_multiple", path)
        duration_limit: float | None = None
        if v.HasField("route_duration_limit") and v.route_duration_limit.HasField("max_duration"):
            duration_limit = self.duration(
                v.route_duration_limit.max_duration, f"{path}.route_duration_limit.max_duration"
            )
        distance_limit: float | None = None
        if v.HasField("route_distance_limit") and v.route_distance_limit.HasField("max_meters"):
            distance_limit = float(v.route_distance_limit.max_meters)
        return Vehicle(
            start_location=self.opt_latlng(v, "start_location", path),
            end_location=self.opt_latlng(v, "end_location", path),
            start_tags=tuple(v.start_tags),
            end_tags=tuple(v.end_tags),
            start_time_windows=_each(
                v.start_time_windows, f"{path}.start_time_windows", self.time_window
            ),
            end_time_windows=_each(
                v.end_time_windows, f"{path}.end_time_windows", self.time_window
            ),
            travel_duration_multiple=1.0 if multiple is None else multiple,
            load_limits={
                name: limit.max_load
                for name, limit in sorted(v.load_limits.items())
                if limit.HasField("max_load")
            },
            cost_per_hour=self.number(v.cost_per_hour, f"{path}.cost_per_hour", 0.0),
            cost_per_traveled_hour=self.number(
                v.cost_per_traveled_hour, f"{path}.cost_per_traveled_hour", 0.0
            ),
            cost_per_kilometer=self.number(v.cost_per_kilometer, f"{path}.cost_per_kilometer", 0.0),
            fixed_cost=self.number(v.fixed_cost, f"{path}.fixed_cost", 0.0),
            route_duration_limit_s=duration_limit,
            route_distance_limit_m=distance_limit,
            break_requests=_each(
                v.break_rule.break_requests,
                f"{path}.break_rule.break_requests",
                lambda b, p: self.break_request(b, p, global_start, global_end),
            ),
            label=v.label,
        )


class _Capped:
    """Records at most ``_MAX_MATRIX_VIOLATIONS`` element violations, then counts the rest."""

    def __init__(self, conv: _Converter, matrix_path: str, kind: str) -> None:
        self.conv = conv
        self.matrix_path = matrix_path
        self.kind = kind
        self.count = 0

    def add(self, path: str, description: str) -> None:
        self.count += 1
        if self.count <= _MAX_MATRIX_VIOLATIONS:
            self.conv.add(path, description)

    def extend(self, violations: Iterable[FieldViolation]) -> None:
        for v in violations:
            self.add(v.field, v.description)

    def close(self) -> None:
        more = self.count - _MAX_MATRIX_VIOLATIONS
        if more > 0:
            self.conv.add(f"{self.matrix_path}.rows", f"{more} more invalid {self.kind} values")


def _each(items: Sequence[_M], path: str, convert: Callable[[_M, str], _T]) -> tuple[_T, ...]:
    return tuple(convert(item, f"{path}[{i}]") for i, item in enumerate(items))


def _readonly(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    a.flags.writeable = False
    return a


def violations_to_validation_errors(
    violations: Iterable[FieldViolation],
) -> list[pb.OptimizeToursValidationError]:
    """Violations as the ``validation_errors`` of a VALIDATE_ONLY response."""
    return [
        pb.OptimizeToursValidationError(field_path=v.field, error_message=v.description)
        for v in violations
    ]


# -- engine → response -------------------------------------------------------------------------


def solution_to_response(solution: Solution, *, request_label: str) -> pb.OptimizeToursResponse:
    """The OptimizeTours response for an engine solution."""
    response = pb.OptimizeToursResponse(request_label=request_label)
    for route in solution.routes:
        _fill_route(response.routes.add(), route)
    for skipped in solution.skipped_shipments:
        _fill_skipped(response.skipped_shipments.add(), skipped)
    metrics = solution.metrics
    out = response.metrics
    _fill_aggregated(out.aggregated_route_metrics, metrics.aggregated_route_metrics)
    out.skipped_mandatory_shipment_count = metrics.skipped_mandatory_shipment_count
    out.used_vehicle_count = metrics.used_vehicle_count
    if metrics.earliest_vehicle_start_time is not None:
        out.earliest_vehicle_start_time.CopyFrom(
            seconds_to_timestamp(metrics.earliest_vehicle_start_time)
        )
    if metrics.latest_vehicle_end_time is not None:
        out.latest_vehicle_end_time.CopyFrom(seconds_to_timestamp(metrics.latest_vehicle_end_time))
    out.costs.update(metrics.costs)
    out.total_cost = metrics.total_cost
    info = response.solve_info
    info.status = pb.SolveInfo.Status.Value(solution.status.name)
    info.backend = solution.backend
    info.backend_reason = solution.backend_reason
    info.solver_processes = solution.solver_processes
    info.matrix_source = solution.matrix_source
    info.matrix_duration.CopyFrom(seconds_to_duration(solution.matrix_time_s))
    info.solve_duration.CopyFrom(seconds_to_duration(solution.solve_time_s))
    info.solver_time_limit.CopyFrom(seconds_to_duration(solution.solver_time_limit_s))
    return response


def _fill_route(out: pb.ShipmentRoute, route: Route) -> None:
    out.vehicle_index = route.vehicle_index
    out.vehicle_label = route.vehicle_label
    if not route.is_used:
        return
    if route.vehicle_start_time is not None:
        out.vehicle_start_time.CopyFrom(seconds_to_timestamp(route.vehicle_start_time))
    if route.vehicle_end_time is not None:
        out.vehicle_end_time.CopyFrom(seconds_to_timestamp(route.vehicle_end_time))
    for visit in route.visits:
        _fill_visit(out.visits.add(), visit)
    for transition in route.transitions:
        _fill_transition(out.transitions.add(), transition)
    if route.polyline:
        out.route_polyline.points = route.polyline
    for b in route.breaks:
        out.breaks.add(
            start_time=seconds_to_timestamp(b.start_time),
            duration=seconds_to_duration(b.duration_s),
        )
    _fill_aggregated(out.metrics, route.metrics)
    out.route_costs.update(route.route_costs)
    out.route_total_cost = route.route_total_cost


def _fill_visit(out: pb.ShipmentRoute.Visit, visit: Visit) -> None:
    out.shipment_index = visit.shipment_index
    out.is_pickup = visit.is_pickup
    out.visit_request_index = visit.visit_request_index
    out.start_time.CopyFrom(seconds_to_timestamp(visit.start_time))
    for name, amount in visit.load_demands.items():
        out.load_demands[name].amount = amount
    out.shipment_label = visit.shipment_label
    out.visit_label = visit.visit_label


def _fill_transition(out: pb.ShipmentRoute.Transition, t: Transition) -> None:
    out.travel_duration.CopyFrom(seconds_to_duration(t.travel_duration_s))
    out.travel_distance_meters = t.travel_distance_m
    out.wait_duration.CopyFrom(seconds_to_duration(t.wait_duration_s))
    out.break_duration.CopyFrom(seconds_to_duration(t.break_duration_s))
    out.total_duration.CopyFrom(seconds_to_duration(t.total_duration_s))
    out.start_time.CopyFrom(seconds_to_timestamp(t.start_time))
    for name, amount in t.vehicle_loads.items():
        out.vehicle_loads[name].amount = amount
    if t.polyline:
        out.route_polyline.points = t.polyline


def _fill_aggregated(out: pb.AggregatedMetrics, m: AggregatedMetrics) -> None:
    out.performed_shipment_count = m.performed_shipment_count
    out.travel_duration.CopyFrom(seconds_to_duration(m.travel_duration_s))
    out.wait_duration.CopyFrom(seconds_to_duration(m.wait_duration_s))
    out.delay_duration.CopyFrom(seconds_to_duration(m.delay_duration_s))
    out.break_duration.CopyFrom(seconds_to_duration(m.break_duration_s))
    out.visit_duration.CopyFrom(seconds_to_duration(m.visit_duration_s))
    out.total_duration.CopyFrom(seconds_to_duration(m.total_duration_s))
    out.travel_distance_meters = m.travel_distance_m
    for name, amount in m.max_loads.items():
        out.max_loads[name].amount = amount


def _fill_skipped(out: pb.SkippedShipment, skipped: SkippedShipment) -> None:
    out.index = skipped.index
    out.label = skipped.label
    for reason in skipped.reasons:
        r = out.reasons.add(
            code=pb.SkippedShipment.Reason.Code.Value(reason.code.name),
            example_exceeded_capacity_type=reason.example_exceeded_capacity_type,
        )
        if reason.example_vehicle_index is not None:
            r.example_vehicle_index = reason.example_vehicle_index
