"""Load, unloading and visit-type fields of a ``Vehicle`` (issue 15):
``load_limits[type].start_load_interval``, ``end_load_interval``, ``cost_per_kilometer`` /
``cost_per_traveled_hour`` (load-dependent costs), ``unloading_policy`` and
``extra_visit_duration_for_visit_type``; ``travel_mode`` and ``route_modifiers`` (issue 15, road
network)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.model import LoadCost, LoadInterval, RouteModifiers, TravelMode, UnloadingPolicy
from rpc.convert.common import FieldConverter
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["LoadsConverter", "VehicleLoads"]


@dataclass(frozen=True)
class VehicleLoads:
    """The ``Vehicle`` fields of the load rules."""

    start_load_intervals: dict[str, LoadInterval]
    end_load_intervals: dict[str, LoadInterval]
    load_costs_per_kilometer: dict[str, LoadCost]
    load_costs_per_traveled_hour: dict[str, LoadCost]


class LoadsConverter(FieldConverter):
    """Converts the load rules of a vehicle (the engine checks the values)."""

    def vehicle_loads(self, v: pb.Vehicle, path: str) -> VehicleLoads:
        start: dict[str, LoadInterval] = {}
        end: dict[str, LoadInterval] = {}
        for name, limit in sorted(v.load_limits.items()):
            if limit.HasField("start_load_interval"):
                start[name] = _interval(limit.start_load_interval)
            if limit.HasField("end_load_interval"):
                end[name] = _interval(limit.end_load_interval)
        per_km, per_hour = _load_costs(v)
        return VehicleLoads(
            start_load_intervals=start,
            end_load_intervals=end,
            load_costs_per_kilometer=per_km,
            load_costs_per_traveled_hour=per_hour,
        )

    def unloading_policy(self, v: pb.Vehicle, path: str) -> UnloadingPolicy:
        """``unloading_policy``; an unknown number is a violation."""
        try:
            return UnloadingPolicy(v.unloading_policy)
        except ValueError:
            self.add(f"{path}.unloading_policy", f"unknown value {v.unloading_policy}")
            return UnloadingPolicy.UNLOADING_POLICY_UNSPECIFIED

    def travel_mode(self, v: pb.Vehicle, path: str) -> TravelMode:
        """``travel_mode``; an unknown number is a violation."""
        try:
            return TravelMode(v.travel_mode)
        except ValueError:
            self.add(f"{path}.travel_mode", f"unknown value {v.travel_mode}")
            return TravelMode.TRAVEL_MODE_UNSPECIFIED

    def route_modifiers(self, v: pb.Vehicle) -> RouteModifiers:
        """``route_modifiers`` (four booleans)."""
        m = v.route_modifiers
        return RouteModifiers(m.avoid_tolls, m.avoid_highways, m.avoid_ferries, m.avoid_indoor)

    def extra_visit_durations(self, v: pb.Vehicle, path: str) -> dict[str, float]:
        """``extra_visit_duration_for_visit_type``: visit type → seconds."""
        return {
            name: self.duration(d, f"{path}.extra_visit_duration_for_visit_type[{name}]")
            for name, d in sorted(v.extra_visit_duration_for_visit_type.items())
        }


def _interval(interval: pb.Vehicle.LoadLimit.Interval) -> LoadInterval:
    return LoadInterval(
        min_load=int(interval.min),
        max_load=int(interval.max) if interval.HasField("max") else None,
    )


def _load_costs(v: pb.Vehicle) -> tuple[dict[str, LoadCost], dict[str, LoadCost]]:
    """``load_limits[type].cost_per_kilometer`` and ``cost_per_traveled_hour`` (issue 15; the
    engine checks the values)."""
    per_km: dict[str, LoadCost] = {}
    per_hour: dict[str, LoadCost] = {}
    for name, limit in sorted(v.load_limits.items()):
        if limit.HasField("cost_per_kilometer"):
            per_km[name] = _load_cost(limit.cost_per_kilometer)
        if limit.HasField("cost_per_traveled_hour"):
            per_hour[name] = _load_cost(limit.cost_per_traveled_hour)
    return per_km, per_hour


def _load_cost(cost: pb.Vehicle.LoadLimit.LoadCost) -> LoadCost:
    return LoadCost(
        load_threshold=int(cost.load_threshold),
        cost_per_unit_below_threshold=float(cost.cost_per_unit_below_threshold),
        cost_per_unit_above_threshold=float(cost.cost_per_unit_above_threshold),
    )
