"""Which problem features a model uses, so that a backend that cannot express one is not picked.

A feature is a name (``"breaks"``) and, for the reason given to the user, the field path of
one place that uses it, relative to the model like every engine field path
(``"vehicles[2].break_rule"``). Backends declare the features
they support; features every backend supports (capacities, single hard time windows, service
durations, fixed/distance/duration costs, duration limits, optional shipments, several depots
and vehicle types, open routes) are not listed here.
"""

from __future__ import annotations

from engine.problem import Problem

__all__ = ["FEATURES", "used_features"]

FEATURES = {
    "pair_alternatives": "a pickup-and-delivery shipment with several pickup or delivery "
    "alternatives",
    "multiple_time_windows": "a visit with several time windows",
    "soft_time_windows": "a soft time window",
    "multiple_vehicle_time_windows": "a vehicle with several start or end time windows",
    "late_end_window_start": "a vehicle end time window that opens after its start window",
    "breaks": "vehicle breaks",
    "allowed_vehicles": "allowed_vehicle_indices restricting a shipment to some vehicles",
    "distance_limit_with_time_cost": "a route distance limit on a vehicle whose travel cost "
    "is not purely per kilometer",
}
"""Feature name → what it means (for messages and documentation)."""


def used_features(problem: Problem) -> dict[str, str]:
    """Features of :data:`FEATURES` used by the routable part of ``problem``: name → field path
    of the first place that uses it."""
    model = problem.model
    stops = problem.stops
    found: dict[str, str] = {}

    def note(name: str, path: str) -> None:
        found.setdefault(name, path)

    n_vehicles = len(model.vehicles)
    for s, shipment in enumerate(model.shipments):
        if not problem.routable[s]:
            continue
        path = f"shipments[{s}]"
        is_pair = bool(shipment.pickups and shipment.deliveries)
        if is_pair and (len(shipment.pickups) > 1 or len(shipment.deliveries) > 1):
            note("pair_alternatives", path)
        if shipment.allowed_vehicle_indices and len(set(shipment.allowed_vehicle_indices)) < (
            n_vehicles
        ):
            note("allowed_vehicles", f"{path}.allowed_vehicle_indices")
        for kind, visits in (("pickups", shipment.pickups), ("deliveries", shipment.deliveries)):
            for k, visit in enumerate(visits):
                if len(visit.time_windows) > 1:
                    note("multiple_time_windows", f"{path}.{kind}[{k}].time_windows")
                if any(w.is_soft for w in visit.time_windows):
                    note("soft_time_windows", f"{path}.{kind}[{k}].time_windows")
    for v, vehicle in enumerate(model.vehicles):
        path = f"vehicles[{v}]"
        if vehicle.break_requests:
            note("breaks", f"{path}.break_rule")
        for name, windows in (
            ("start_time_windows", vehicle.start_time_windows),
            ("end_time_windows", vehicle.end_time_windows),
        ):
            if len(windows) > 1:
                note("multiple_vehicle_time_windows", f"{path}.{name}")
            if any(w.is_soft for w in windows):
                note("soft_time_windows", f"{path}.{name}")
        start = problem.windows[stops.vehicle_start(v)]
        end = problem.windows[stops.vehicle_end(v)]
        if start and end and end[0][0] > start[0][0]:
            note("late_end_window_start", f"{path}.end_time_windows")
        if vehicle.route_distance_limit_m is not None and (
            vehicle.cost_per_traveled_hour > 0 or vehicle.cost_per_kilometer <= 0
        ):
            note("distance_limit_with_time_cost", f"{path}.route_distance_limit")
    return found
