"""Driver-hours fields of a ``Vehicle`` (issue 15): ``break_rule.frequency_constraints``,
``travel_duration_limit`` and the quadratic soft part of ``route_duration_limit``."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import duration_pb2
from google.protobuf.message import Message

from engine.model import DurationLimit, FrequencyConstraint
from rpc.convert.common import FieldConverter, each
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["HoursConverter", "VehicleHours"]


@dataclass(frozen=True)
class VehicleHours:
    """The ``Vehicle`` fields of the driver-hours rules."""

    break_frequency_constraints: tuple[FrequencyConstraint, ...]
    travel_duration_limit: DurationLimit | None
    route_duration_quadratic_soft_max_s: float | None
    route_duration_cost_per_square_hour_after_quadratic_soft_max: float | None


class HoursConverter(FieldConverter):
    """Converts the driver-hours fields of a vehicle."""

    def vehicle_hours(self, v: pb.Vehicle, path: str) -> VehicleHours:
        route = v.route_duration_limit
        rpath = f"{path}.route_duration_limit"
        travel: DurationLimit | None = None
        if v.HasField("travel_duration_limit"):
            travel = self.duration_limit(v.travel_duration_limit, f"{path}.travel_duration_limit")
        return VehicleHours(
            break_frequency_constraints=each(
                v.break_rule.frequency_constraints,
                f"{path}.break_rule.frequency_constraints",
                self.frequency_constraint,
            ),
            travel_duration_limit=travel,
            route_duration_quadratic_soft_max_s=self._hours_duration(
                route, "quadratic_soft_max_duration", rpath
            ),
            route_duration_cost_per_square_hour_after_quadratic_soft_max=self.opt_number(
                route, "cost_per_square_hour_after_quadratic_soft_max", rpath
            ),
        )

    def duration_limit(self, d: pb.Vehicle.DurationLimit, path: str) -> DurationLimit:
        return DurationLimit(
            max_duration_s=self._hours_duration(d, "max_duration", path),
            soft_max_duration_s=self._hours_duration(d, "soft_max_duration", path),
            cost_per_hour_after_soft_max=self.opt_number(d, "cost_per_hour_after_soft_max", path),
            quadratic_soft_max_duration_s=self._hours_duration(
                d, "quadratic_soft_max_duration", path
            ),
            cost_per_square_hour_after_quadratic_soft_max=self.opt_number(
                d, "cost_per_square_hour_after_quadratic_soft_max", path
            ),
        )

    def frequency_constraint(
        self, f: pb.BreakRule.FrequencyConstraint, path: str
    ) -> FrequencyConstraint:
        """Both durations are required (Google's): a missing one is reported here, and the
        engine sees 0 (which it accepts for min_break_duration and reports as not positive
        for max_inter_break_duration)."""
        for name in ("min_break_duration", "max_inter_break_duration"):
            if not f.HasField(name):
                self.add(f"{path}.{name}", "is required")
        return FrequencyConstraint(
            min_break_duration_s=self._hours_duration(f, "min_break_duration", path) or 0.0,
            max_inter_break_duration_s=(
                self._hours_duration(f, "max_inter_break_duration", path) or 0.0
            ),
        )

    def _hours_duration(self, parent: Message, name: str, path: str) -> float | None:
        if not parent.HasField(name):
            return None
        message = getattr(parent, name)
        assert isinstance(message, duration_pb2.Duration)
        return self.duration(message, f"{path}.{name}")
