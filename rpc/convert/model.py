"""ShipmentModel messages (shipments, vehicles, time windows, breaks, matrices) → the engine's
:class:`~engine.model.ShipmentModel`: :class:`ModelConverter`."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from engine.errors import FieldViolation
from engine.model import (
    DEFAULT_GLOBAL_END_TIME,
    DEFAULT_GLOBAL_START_TIME,
    BreakRequest,
    DurationDistanceMatrix,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from rpc.convert.common import FieldConverter, each
from rpc.convert.hours import HoursConverter
from rpc.convert.loads import LoadsConverter
from rpc.convert.rules import RulesConverter
from rpc.convert.transitions import TransitionsConverter
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["ModelConverter"]

_MAX_MATRIX_VIOLATIONS = 5
"""Invalid matrix values reported one by one per matrix and value kind; the rest are counted."""


class ModelConverter(RulesConverter, HoursConverter, LoadsConverter, TransitionsConverter):
    """Converts the messages of a ``ShipmentModel`` (paths under ``model``) while collecting
    violations; :meth:`time_window` also serves other messages with TimeWindows."""

    def model(self, m: pb.ShipmentModel) -> ShipmentModel:
        path = "model"
        start = self.opt_timestamp(m, "global_start_time", path)
        end = self.opt_timestamp(m, "global_end_time", path)
        global_start = DEFAULT_GLOBAL_START_TIME if start is None else start
        global_end = DEFAULT_GLOBAL_END_TIME if end is None else end
        src_tags = tuple(m.duration_distance_matrix_src_tags)
        dst_tags = tuple(m.duration_distance_matrix_dst_tags)
        if m.duration_distance_matrices:
            self.no_locations_with_matrices(m, path)
        rules = self.model_rules(m, path)  # issue 15: cargo, fleet and cost rules
        return ShipmentModel(
            shipments=each(m.shipments, f"{path}.shipments", self.shipment),
            vehicles=each(
                m.vehicles,
                f"{path}.vehicles",
                lambda v, p: self.vehicle(v, p, global_start, global_end),
            ),
            global_start_time=global_start,
            global_end_time=global_end,
            duration_distance_matrices=each(
                m.duration_distance_matrices,
                f"{path}.duration_distance_matrices",
                lambda mat, p: self.matrix(mat, p, len(src_tags), len(dst_tags)),
            ),
            duration_distance_matrix_src_tags=src_tags,
            duration_distance_matrix_dst_tags=dst_tags,
            # issue 15 (rpc.convert.rules)
            max_active_vehicles=rules.max_active_vehicles,
            global_duration_cost_per_hour=rules.global_duration_cost_per_hour,
            shipment_type_incompatibilities=rules.shipment_type_incompatibilities,
            shipment_type_requirements=rules.shipment_type_requirements,
            precedence_rules=rules.precedence_rules,
            # issue 15 (rpc.convert.transitions)
            transition_attributes=self.transition_attributes(m, path),
        )

    def no_locations_with_matrices(self, m: pb.ShipmentModel, path: str) -> None:
        """As in Google's API: with duration_distance_matrices, visits and vehicles are placed
        by their tags only; a location is an error (it would not be used)."""
        why = "must not be set when the model has duration_distance_matrices (tags place it)"
        for i, shipment in enumerate(m.shipments):
            for kind in ("pickups", "deliveries"):
                for j, visit in enumerate(getattr(shipment, kind)):
                    if visit.HasField("arrival_location"):
                        self.add(f"{path}.shipments[{i}].{kind}[{j}].arrival_location", why)
        for i, vehicle in enumerate(m.vehicles):
            for name in ("start_location", "end_location"):
                if vehicle.HasField(name):
                    self.add(f"{path}.vehicles[{i}].{name}", why)

    def matrix(
        self, m: pb.ShipmentModel.DurationDistanceMatrix, path: str, n_src: int, n_dst: int
    ) -> DurationDistanceMatrix:
        if len(m.rows) != n_src:
            self.add(
                f"{path}.rows",
                f"must have one row per duration_distance_matrix_src_tags entry ({n_src}), "
                f"got {len(m.rows)}",
            )
            # Nothing sized by the tags is allocated for a matrix that does not match them
            # (many tags and no rows cost nothing to send: rpc.limits caps them anyway).
            return _empty_matrix(m.vehicle_start_tag)
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
                sub = FieldConverter()
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
            time_windows=each(v.time_windows, f"{path}.time_windows", self.time_window),
            duration_s=self.duration(v.duration, f"{path}.duration"),
            tags=tuple(v.tags),
            label=v.label,
            cost=self.visit_cost(v, path),  # issue 15 (rpc.convert.rules)
            visit_types=tuple(v.visit_types),  # issue 15 (engine.validation checks them)
            load_demands={name: load.amount for name, load in sorted(v.load_demands.items())},
            avoid_u_turns=v.avoid_u_turns,  # issue 15 (engine.travel: road travel only)
        )

    def shipment(self, s: pb.Shipment, path: str) -> Shipment:
        rules = self.shipment_rules(s, path)  # issue 15: cargo, courier and cost rules
        return Shipment(
            pickups=each(s.pickups, f"{path}.pickups", self.visit_request),
            deliveries=each(s.deliveries, f"{path}.deliveries", self.visit_request),
            load_demands={name: load.amount for name, load in sorted(s.load_demands.items())},
            penalty_cost=self.opt_number(s, "penalty_cost", path),
            allowed_vehicle_indices=tuple(s.allowed_vehicle_indices),
            label=s.label,
            # issue 15 (rpc.convert.rules)
            shipment_type=rules.shipment_type,
            ignore=rules.ignore,
            costs_per_vehicle=rules.costs_per_vehicle,
            costs_per_vehicle_indices=rules.costs_per_vehicle_indices,
            pickup_to_delivery_relative_detour_limit=rules.pickup_to_delivery_relative_detour_limit,
            pickup_to_delivery_absolute_detour_limit_s=(
                rules.pickup_to_delivery_absolute_detour_limit_s
            ),
            pickup_to_delivery_time_limit_s=rules.pickup_to_delivery_time_limit_s,
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
        rules = self.vehicle_rules(v, path)  # issue 15: soft limits, fleet rules
        hours = self.vehicle_hours(v, path)  # issue 15: driver-hours rules
        loads = self.vehicle_loads(v, path)  # issue 15: load rules
        distance_limit: float | None = None
        if v.HasField("route_distance_limit") and v.route_distance_limit.HasField("max_meters"):
            distance_limit = float(v.route_distance_limit.max_meters)
        return Vehicle(
            start_location=self.opt_latlng(v, "start_location", path),
            end_location=self.opt_latlng(v, "end_location", path),
            start_tags=tuple(v.start_tags),
            end_tags=tuple(v.end_tags),
            start_time_windows=each(
                v.start_time_windows, f"{path}.start_time_windows", self.time_window
            ),
            end_time_windows=each(v.end_time_windows, f"{path}.end_time_windows", self.time_window),
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
            break_requests=each(
                v.break_rule.break_requests,
                f"{path}.break_rule.break_requests",
                lambda b, p: self.break_request(b, p, global_start, global_end),
            ),
            label=v.label,
            # issue 15 (rpc.convert.rules)
            route_duration_soft_max_s=rules.route_duration_soft_max_s,
            route_duration_cost_per_hour_after_soft_max=(
                rules.route_duration_cost_per_hour_after_soft_max
            ),
            route_distance_soft_max_m=rules.route_distance_soft_max_m,
            route_distance_cost_per_kilometer_above_soft_max=(
                rules.route_distance_cost_per_kilometer_above_soft_max
            ),
            soft_load_limits=rules.soft_load_limits,
            used_if_route_is_empty=rules.used_if_route_is_empty,
            ignore=rules.ignore,
            # issue 15, driver-hours rules (rpc.convert.hours)
            break_frequency_constraints=hours.break_frequency_constraints,
            travel_duration_limit=hours.travel_duration_limit,
            route_duration_quadratic_soft_max_s=hours.route_duration_quadratic_soft_max_s,
            route_duration_cost_per_square_hour_after_quadratic_soft_max=(
                hours.route_duration_cost_per_square_hour_after_quadratic_soft_max
            ),
            # issue 15, load rules (rpc.convert.loads)
            start_load_intervals=loads.start_load_intervals,
            end_load_intervals=loads.end_load_intervals,
            load_costs_per_kilometer=loads.load_costs_per_kilometer,
            load_costs_per_traveled_hour=loads.load_costs_per_traveled_hour,
            # issue 15, visit types (rpc.convert.loads)
            extra_visit_duration_for_visit_type=self.extra_visit_durations(v, path),
            unloading_policy=self.unloading_policy(v, path),
            # issue 15, road network (rpc.convert.loads)
            travel_mode=self.travel_mode(v, path),
            route_modifiers=self.route_modifiers(v),
        )


class _Capped:
    """Records at most ``_MAX_MATRIX_VIOLATIONS`` element violations, then counts the rest."""

    def __init__(self, conv: FieldConverter, matrix_path: str, kind: str) -> None:
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


def _empty_matrix(vehicle_start_tag: str) -> DurationDistanceMatrix:
    empty = np.zeros((0, 0), dtype=np.float64)
    return DurationDistanceMatrix(
        durations_s=_readonly(empty),
        distances_m=_readonly(empty.copy()),
        vehicle_start_tag=vehicle_start_tag,
    )


def _readonly(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    a.flags.writeable = False
    return a
