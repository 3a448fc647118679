"""The cargo, courier, fleet, cost and soft-limit fields of a ShipmentModel (issue 15) → the
engine's model: :class:`RulesConverter`, the part of :class:`~rpc.convert.model.ModelConverter`
for them.

Field names, numbers and semantics are Google's. Conversion checks only what the proto cannot
say (finite numbers, Durations, enum values the engine knows); the rules between fields
(positive ``max_active_vehicles``, soft bounds with their costs, indices in range, ...) are the
engine's validation (:mod:`engine.validation`), whose paths are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from google.protobuf import duration_pb2
from google.protobuf.message import Message

from engine.model import (
    IncompatibilityMode,
    PrecedenceRule,
    RequirementMode,
    ShipmentTypeIncompatibility,
    ShipmentTypeRequirement,
    SoftLoadLimit,
)
from rpc.convert.common import _MAX_DURATION_SECONDS, _NANOS_PER_SECOND, FieldConverter, each
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["ModelRules", "RulesConverter", "ShipmentRules", "VehicleRules"]

_E = TypeVar("_E", IncompatibilityMode, RequirementMode)


@dataclass(frozen=True)
class ModelRules:
    """The ``ShipmentModel`` fields of these rules."""

    max_active_vehicles: int | None
    global_duration_cost_per_hour: float
    shipment_type_incompatibilities: tuple[ShipmentTypeIncompatibility, ...]
    shipment_type_requirements: tuple[ShipmentTypeRequirement, ...]
    precedence_rules: tuple[PrecedenceRule, ...]


@dataclass(frozen=True)
class ShipmentRules:
    """The ``Shipment`` fields of these rules."""

    shipment_type: str
    ignore: bool
    costs_per_vehicle: tuple[float, ...]
    costs_per_vehicle_indices: tuple[int, ...]
    pickup_to_delivery_relative_detour_limit: float | None
    pickup_to_delivery_absolute_detour_limit_s: float | None
    pickup_to_delivery_time_limit_s: float | None


@dataclass(frozen=True)
class VehicleRules:
    """The ``Vehicle`` fields of these rules."""

    route_duration_soft_max_s: float | None
    route_duration_cost_per_hour_after_soft_max: float | None
    route_distance_soft_max_m: float | None
    route_distance_cost_per_kilometer_above_soft_max: float | None
    soft_load_limits: dict[str, SoftLoadLimit]
    used_if_route_is_empty: bool
    ignore: bool


class RulesConverter(FieldConverter):
    """Converts the fields of the cargo, courier, fleet, cost and soft-limit rules."""

    def model_rules(self, m: pb.ShipmentModel, path: str) -> ModelRules:
        return ModelRules(
            max_active_vehicles=(
                m.max_active_vehicles if m.HasField("max_active_vehicles") else None
            ),
            global_duration_cost_per_hour=self.number(
                m.global_duration_cost_per_hour, f"{path}.global_duration_cost_per_hour", 0.0
            ),
            shipment_type_incompatibilities=each(
                m.shipment_type_incompatibilities,
                f"{path}.shipment_type_incompatibilities",
                self.incompatibility,
            ),
            shipment_type_requirements=each(
                m.shipment_type_requirements,
                f"{path}.shipment_type_requirements",
                self.requirement,
            ),
            precedence_rules=each(m.precedence_rules, f"{path}.precedence_rules", self.precedence),
        )

    def incompatibility(
        self, inc: pb.ShipmentTypeIncompatibility, path: str
    ) -> ShipmentTypeIncompatibility:
        return ShipmentTypeIncompatibility(
            types=tuple(inc.types),
            incompatibility_mode=self._mode(
                IncompatibilityMode,
                inc.incompatibility_mode,
                f"{path}.incompatibility_mode",
                IncompatibilityMode.INCOMPATIBILITY_MODE_UNSPECIFIED,
            ),
        )

    def requirement(self, req: pb.ShipmentTypeRequirement, path: str) -> ShipmentTypeRequirement:
        return ShipmentTypeRequirement(
            required_shipment_type_alternatives=tuple(req.required_shipment_type_alternatives),
            dependent_shipment_types=tuple(req.dependent_shipment_types),
            requirement_mode=self._mode(
                RequirementMode,
                req.requirement_mode,
                f"{path}.requirement_mode",
                RequirementMode.REQUIREMENT_MODE_UNSPECIFIED,
            ),
        )

    def _mode(self, enum: type[_E], value: int, path: str, unspecified: _E) -> _E:
        """An enum value the engine knows (an unknown number is a violation)."""
        try:
            return enum(value)
        except ValueError:
            self.add(path, f"unknown value {value}")
            return unspecified

    def precedence(self, rule: pb.ShipmentModel.PrecedenceRule, path: str) -> PrecedenceRule:
        for name in ("first_index", "second_index"):
            if not rule.HasField(name):
                self.add(f"{path}.{name}", "is required")
        return PrecedenceRule(
            first_index=rule.first_index,
            second_index=rule.second_index,
            first_is_delivery=rule.first_is_delivery,
            second_is_delivery=rule.second_is_delivery,
            offset_duration_s=(
                self.signed_duration(rule.offset_duration, f"{path}.offset_duration")
                if rule.HasField("offset_duration")
                else 0.0
            ),
        )

    def signed_duration(self, d: duration_pb2.Duration, path: str) -> float:
        """Seconds of a Duration that may be negative (0 after recording a violation)."""
        if d.seconds < 0 or d.nanos < 0:
            in_range = (
                -_MAX_DURATION_SECONDS <= d.seconds <= _MAX_DURATION_SECONDS
                and -_NANOS_PER_SECOND < d.nanos < _NANOS_PER_SECOND
            )
            if not in_range:  # reported as sent (negating int64/int32 minimums overflows)
                return self.duration(d, path)
            negated = duration_pb2.Duration(seconds=-d.seconds, nanos=-d.nanos)
            return -self.duration(negated, path)
        return self.duration(d, path)

    def _opt_duration(self, parent: Message, name: str, path: str) -> float | None:
        if not parent.HasField(name):
            return None
        message = getattr(parent, name)
        assert isinstance(message, duration_pb2.Duration)
        return self.duration(message, f"{path}.{name}")

    def shipment_rules(self, s: pb.Shipment, path: str) -> ShipmentRules:
        return ShipmentRules(
            shipment_type=s.shipment_type,
            ignore=s.ignore,
            costs_per_vehicle=tuple(
                self.number(c, f"{path}.costs_per_vehicle[{k}]", 0.0)
                for k, c in enumerate(s.costs_per_vehicle)
            ),
            costs_per_vehicle_indices=tuple(s.costs_per_vehicle_indices),
            pickup_to_delivery_relative_detour_limit=self.opt_number(
                s, "pickup_to_delivery_relative_detour_limit", path
            ),
            pickup_to_delivery_absolute_detour_limit_s=self._opt_duration(
                s, "pickup_to_delivery_absolute_detour_limit", path
            ),
            pickup_to_delivery_time_limit_s=self._opt_duration(
                s, "pickup_to_delivery_time_limit", path
            ),
        )

    def visit_cost(self, v: pb.Shipment.VisitRequest, path: str) -> float:
        return self.number(v.cost, f"{path}.cost", 0.0)

    def vehicle_rules(self, v: pb.Vehicle, path: str) -> VehicleRules:
        duration = v.route_duration_limit
        dpath = f"{path}.route_duration_limit"
        distance = v.route_distance_limit
        mpath = f"{path}.route_distance_limit"
        soft_loads: dict[str, SoftLoadLimit] = {}
        for name, limit in sorted(v.load_limits.items()):
            # Plain proto3 fields (Google's): a soft limit is there when either is set.
            if limit.soft_max_load != 0 or limit.cost_per_unit_above_soft_max != 0:
                soft_loads[name] = SoftLoadLimit(
                    soft_max_load=limit.soft_max_load,
                    cost_per_unit_above_soft_max=self.number(
                        limit.cost_per_unit_above_soft_max,
                        f"{path}.load_limits[{name}].cost_per_unit_above_soft_max",
                        0.0,
                    ),
                )
        return VehicleRules(
            route_duration_soft_max_s=self._opt_duration(duration, "soft_max_duration", dpath),
            route_duration_cost_per_hour_after_soft_max=self.opt_number(
                duration, "cost_per_hour_after_soft_max", dpath
            ),
            route_distance_soft_max_m=(
                float(distance.soft_max_meters) if distance.HasField("soft_max_meters") else None
            ),
            route_distance_cost_per_kilometer_above_soft_max=self.opt_number(
                distance, "cost_per_kilometer_above_soft_max", mpath
            ),
            soft_load_limits=soft_loads,
            used_if_route_is_empty=v.used_if_route_is_empty,
            ignore=v.ignore,
        )
