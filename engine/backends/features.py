"""Which problem features a model uses, so that a backend that cannot express one is not picked.

A feature is a name (``"breaks"``) and, for the reason given to the user, the field path of
one place that uses it, relative to the model like every engine field path
(``"vehicles[2].break_rule"``). Backends declare the features
they support; features every backend supports (capacities, hard time windows, several of them
on a visit of a pickup-only or delivery-only shipment, service durations,
fixed/distance/duration costs, duration limits, optional shipments, several depots
and vehicle types, open routes) are not listed here.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.problem import Problem

__all__ = [
    "FEATURES",
    "MAX_ALLOWED_PROFILES",
    "MAX_ALLOWED_PROFILE_CELLS",
    "REOPTIMISATION",
    "RULES_AND_COSTS",
    "forbidden_shipments",
    "too_many_allowed_classes",
    "travel_profile_key",
    "used_features",
]

FEATURES = {
    "pair_alternatives": "a pickup-and-delivery shipment with several pickup or delivery "
    "alternatives",
    "pair_multiple_time_windows": "a pickup-and-delivery shipment with several time windows "
    "on a visit",
    "soft_time_windows": "a soft time window on a visit",
    "pair_soft_time_windows": "a pickup-and-delivery shipment with a soft time window on a visit",
    "soft_vehicle_time_windows": "a vehicle with a soft start or end time window",
    "multiple_vehicle_time_windows": "a vehicle with several start or end time windows",
    "late_end_window_start": "a vehicle end time window that opens after its start window",
    "breaks": "vehicle breaks",
    "allowed_vehicles": "allowed_vehicle_indices restricting a shipment to some vehicles",
    "allowed_vehicle_classes": "allowed_vehicle_indices splitting the fleet into more vehicle "
    "classes (travel profile × shipments it may not serve) than the PyVRP backend keeps "
    "matrices for",
    "distance_limit_with_time_cost": "a route distance limit on a vehicle whose travel cost "
    "is not purely per kilometer",
    "shipment_type_incompatibilities": "shipment type incompatibilities",
    "shipment_type_requirements": "shipment type requirements",
    "max_active_vehicles": "max_active_vehicles below the number of vehicles",
    "ignored_vehicles": "an ignored vehicle",
    "visit_costs": "a visit request cost",
    "costs_per_vehicle": "costs_per_vehicle on a shipment",
    "global_duration_cost": "global_duration_cost_per_hour",
    "pickup_delivery_limits": "a pickup-to-delivery time or detour limit",
    "soft_route_limits": "a soft route duration, route distance or load limit",
    "precedence_rules": "precedence rules",
    "used_if_route_is_empty": "a vehicle used even when its route is empty",
    "injected_first_solution": "a warm start (injected_first_solution_routes) with "
    "pickup-and-delivery shipments",
    "injected_solution_constraint": "an injected solution constraint (routes kept as they are)",
    "break_frequency": "a break frequency constraint (break_rule.frequency_constraints)",
    "travel_duration_limit": "a travel duration limit",
    "load_intervals": "a start or end load interval (load_limits.start_load_interval, "
    "end_load_interval)",
    "visit_type_durations": "extra visit durations per visit type "
    "(extra_visit_duration_for_visit_type)",
    "unloading_policy": "an unloading policy (LIFO or FIFO)",
    "transition_attributes": "transition attributes (tag-based delays and costs between visits)",
    "load_costs": "a load-dependent cost (load_limits.cost_per_kilometer, cost_per_traveled_hour)",
    "pair_visit_demands": "a pickup-and-delivery shipment whose pickup and delivery load "
    "demands differ (VisitRequest.load_demands)",
}
"""Feature name → what it means (for messages and documentation)."""

RULES_AND_COSTS = frozenset(
    {
        "shipment_type_incompatibilities",
        "shipment_type_requirements",
        "max_active_vehicles",
        "ignored_vehicles",
        "visit_costs",
        "costs_per_vehicle",
        "global_duration_cost",
        "pickup_delivery_limits",
        "soft_route_limits",
        "precedence_rules",
        "used_if_route_is_empty",
    }
    | {"break_frequency", "travel_duration_limit"}  # driver-hours rules
    | {"load_intervals", "pair_visit_demands"}  # loads
    | {"visit_type_durations"}  # per-vehicle service times
    | {"unloading_policy"}
    | {"transition_attributes"}  # per-arc delays and costs (engine.transitions)
    | {"load_costs"}  # load-dependent costs
)
"""The cargo, courier, fleet and soft-limit features of Google's model (issue 15): OR-Tools
expresses them, PyVRP does not, and a PyVRP warm start does not help them."""


REOPTIMISATION = frozenset({"injected_first_solution", "injected_solution_constraint"})
"""Injected solutions (issue 15): OR-Tools starts from given routes and locks them; PyVRP starts
from given routes of clients only (not of its pickup-and-delivery shipments) and locks nothing."""


MAX_ALLOWED_PROFILES = 64
"""At most this many travel matrices for allowed vehicles: the PyVRP backend gives each
distinct (travel profile, shipments the vehicle may not serve) a full distance and duration
matrix of its own (:mod:`engine.backends.pyvrp.data`); beyond it, ``allowed_vehicle_classes``."""

MAX_ALLOWED_PROFILE_CELLS = 20_000_000
"""… and at most this many matrix cells in them (stops² per matrix: 20 M cells are 320 MB for
the two int64 matrices, twice that while PyVRP copies them)."""


def travel_profile_key(problem: Problem, v: int) -> tuple[int, float, float, float]:
    """What vehicle ``v``'s travel durations and arc costs depend on."""
    vehicle = problem.model.vehicles[v]
    return (
        problem.travel.vehicle_matrix[v],
        vehicle.travel_duration_multiple,
        vehicle.cost_per_kilometer,
        vehicle.cost_per_traveled_hour,
    )


def forbidden_shipments(problem: Problem) -> list[frozenset[int]]:
    """Per vehicle: the routable shipments whose ``allowed_vehicle_indices`` leave it out."""
    model = problem.model
    forbidden: list[set[int]] = [set() for _ in model.vehicles]
    for s, shipment in enumerate(model.shipments):
        allowed = set(shipment.allowed_vehicle_indices)
        if problem.routable[s] and allowed and len(allowed) < len(model.vehicles):
            for v in range(len(model.vehicles)):
                if v not in allowed:
                    forbidden[v].add(s)
    return [frozenset(f) for f in forbidden]


def too_many_allowed_classes(problem: Problem) -> bool:
    """Whether the (travel profile, forbidden shipments) classes of the fleet need more
    matrices than the PyVRP backend keeps (:data:`MAX_ALLOWED_PROFILES`,
    :data:`MAX_ALLOWED_PROFILE_CELLS`)."""
    forbidden = forbidden_shipments(problem)
    classes = {(travel_profile_key(problem, v), f) for v, f in enumerate(forbidden) if f}
    cells = len(classes) * problem.stops.size**2
    return len(classes) > MAX_ALLOWED_PROFILES or cells > MAX_ALLOWED_PROFILE_CELLS


def _reoptimisation_features(problem: Problem, note: Callable[[str, str], None]) -> None:
    model = problem.model
    if model.injected_first_solution_routes and any(
        problem.routable[s] and shipment.pickups and shipment.deliveries
        for s, shipment in enumerate(model.shipments)
    ):
        note("injected_first_solution", "injected_first_solution_routes")
    if model.injected_solution_constraint is not None:
        note("injected_solution_constraint", "injected_solution_constraint")


def _fleet_and_cargo_features(problem: Problem, note: Callable[[str, str], None]) -> None:
    """Cargo rules, fleet limits, issue 15's fleet costs and courier rules."""
    model = problem.model
    typed = {sh.shipment_type for s, sh in enumerate(model.shipments) if problem.routable[s]}
    for k, inc in enumerate(model.shipment_type_incompatibilities):
        if len(typed & set(inc.types)) > 1:
            note("shipment_type_incompatibilities", f"shipment_type_incompatibilities[{k}]")
    for k, req in enumerate(model.shipment_type_requirements):
        if typed & set(req.dependent_shipment_types):
            note("shipment_type_requirements", f"shipment_type_requirements[{k}]")
    for k, rule in enumerate(model.precedence_rules):
        if problem.routable[rule.first_index] and problem.routable[rule.second_index]:
            note("precedence_rules", f"precedence_rules[{k}]")
    limit = model.max_active_vehicles
    if limit is not None and limit < len(model.vehicles):
        note("max_active_vehicles", "max_active_vehicles")
    if model.global_duration_cost_per_hour > 0:
        note("global_duration_cost", "global_duration_cost_per_hour")
    for v, vehicle in enumerate(model.vehicles):
        if vehicle.ignore:
            note("ignored_vehicles", f"vehicles[{v}].ignore")
        if vehicle.used_if_route_is_empty:
            note("used_if_route_is_empty", f"vehicles[{v}].used_if_route_is_empty")
        if vehicle.route_duration_cost_per_hour_after_soft_max:
            note("soft_route_limits", f"vehicles[{v}].route_duration_limit.soft_max_duration")
        if vehicle.route_distance_cost_per_kilometer_above_soft_max:
            note("soft_route_limits", f"vehicles[{v}].route_distance_limit.soft_max_meters")
        for load_type, soft in sorted(vehicle.soft_load_limits.items()):
            if soft.cost_per_unit_above_soft_max:
                note("soft_route_limits", f"vehicles[{v}].load_limits[{load_type}].soft_max_load")
    for s, shipment in enumerate(model.shipments):
        if not problem.routable[s]:
            continue
        if any(c > 0 for c in shipment.costs_per_vehicle):
            note("costs_per_vehicle", f"shipments[{s}].costs_per_vehicle")
        for name, value in (
            ("pickup_to_delivery_time_limit", shipment.pickup_to_delivery_time_limit_s),
            (
                "pickup_to_delivery_relative_detour_limit",
                shipment.pickup_to_delivery_relative_detour_limit,
            ),
            (
                "pickup_to_delivery_absolute_detour_limit",
                shipment.pickup_to_delivery_absolute_detour_limit_s,
            ),
        ):
            if value is not None:
                note("pickup_delivery_limits", f"shipments[{s}].{name}")
        for kind, visits in (("pickups", shipment.pickups), ("deliveries", shipment.deliveries)):
            for k, visit in enumerate(visits):
                if visit.cost > 0:
                    note("visit_costs", f"shipments[{s}].{kind}[{k}].cost")


def _driver_hours_features(problem: Problem, note: Callable[[str, str], None]) -> None:
    """Issue 15's driver-hours rules: break frequency, travel duration limits and quadratic
    soft duration limits (these count as soft route limits)."""
    for v, vehicle in enumerate(problem.model.vehicles):
        path = f"vehicles[{v}]"
        if vehicle.break_frequency_constraints:
            note("break_frequency", f"{path}.break_rule.frequency_constraints")
        if vehicle.travel_duration_limit is not None:
            note("travel_duration_limit", f"{path}.travel_duration_limit")
        if vehicle.route_duration_cost_per_square_hour_after_quadratic_soft_max:
            note("soft_route_limits", f"{path}.route_duration_limit.quadratic_soft_max_duration")


def _load_features(problem: Problem, note: Callable[[str, str], None]) -> None:
    """Issue 15's load rules: start and end load intervals, pairs whose pickup and delivery
    demands differ (per-visit demands)."""
    for v, vehicle in enumerate(problem.model.vehicles):
        for kind, intervals in (
            ("start_load_interval", vehicle.start_load_intervals),
            ("end_load_interval", vehicle.end_load_intervals),
        ):
            for load_type in sorted(intervals):
                note("load_intervals", f"vehicles[{v}].load_limits[{load_type}].{kind}")
    for s, shipment in enumerate(problem.model.shipments):
        if not (problem.routable[s] and shipment.pickups and shipment.deliveries):
            continue
        if not shipment.has_visit_demands:
            continue
        amounts = {
            tuple(sorted((t, q) for t, q in shipment.visit_demands(is_pickup, k).items() if q))
            for is_pickup, visits in ((True, shipment.pickups), (False, shipment.deliveries))
            for k in range(len(visits))
        }
        if len(amounts) > 1:
            note("pair_visit_demands", f"shipments[{s}].deliveries[0].load_demands")


def _load_cost_features(problem: Problem, note: Callable[[str, str], None]) -> None:
    """Issue 15's load-dependent costs: a positive rate on a type a routable shipment
    demands."""
    model = problem.model
    demanded = {
        t
        for s, shipment in enumerate(model.shipments)
        if problem.routable[s]
        for t, q in shipment.load_demands.items()
        if q > 0
    }
    for v, vehicle in enumerate(model.vehicles):
        for kind, costs in (
            ("cost_per_kilometer", vehicle.load_costs_per_kilometer),
            ("cost_per_traveled_hour", vehicle.load_costs_per_traveled_hour),
        ):
            for load_type, cost in sorted(costs.items()):
                rates = cost.cost_per_unit_below_threshold, cost.cost_per_unit_above_threshold
                if load_type in demanded and any(r > 0 for r in rates):
                    note("load_costs", f"vehicles[{v}].load_limits[{load_type}].{kind}")


def _visit_type_features(problem: Problem, note: Callable[[str, str], None]) -> None:
    """Issue 15's visit types: a vehicle with a positive extra duration for a type that a
    routable visit has (the visit then lasts longer on that vehicle)."""
    model = problem.model
    used = {
        t
        for s, shipment in enumerate(model.shipments)
        if problem.routable[s]
        for visit in (*shipment.pickups, *shipment.deliveries)
        for t in visit.visit_types
    }
    for v, vehicle in enumerate(model.vehicles):
        for visit_type, extra in sorted(vehicle.extra_visit_duration_for_visit_type.items()):
            if extra > 0 and visit_type in used:
                path = f"vehicles[{v}].extra_visit_duration_for_visit_type[{visit_type}]"
                note("visit_type_durations", path)


def _transition_features(problem: Problem, note: Callable[[str, str], None]) -> None:
    """Issue 15's transition attributes: one with a delay or a cost (per-arc additions that
    only OR-Tools' transits and arc costs take)."""
    for k, a in enumerate(problem.model.transition_attributes):
        if (
            a.delay_s > 0
            or a.cost > 0
            or a.cost_per_kilometer > 0
            or (a.distance_limit_cost_per_kilometer_above_soft_max or 0.0) > 0
        ):
            note("transition_attributes", f"transition_attributes[{k}]")


def used_features(problem: Problem) -> dict[str, str]:
    """Features of :data:`FEATURES` used by the routable part of ``problem``: name → field path
    of the first place that uses it."""
    model = problem.model
    stops = problem.stops
    found: dict[str, str] = {}

    def note(name: str, path: str) -> None:
        found.setdefault(name, path)

    n_vehicles = len(model.vehicles)
    _fleet_and_cargo_features(problem, note)
    _reoptimisation_features(problem, note)
    _driver_hours_features(problem, note)
    _load_features(problem, note)
    _load_cost_features(problem, note)
    _visit_type_features(problem, note)
    _transition_features(problem, note)
    if any(
        problem.routable[s] and shipment.pickups and shipment.deliveries
        for s, shipment in enumerate(model.shipments)
    ):
        for v, vehicle in enumerate(model.vehicles):
            if vehicle.unloading_policy:
                note("unloading_policy", f"vehicles[{v}].unloading_policy")
    for s, shipment in enumerate(model.shipments):
        if not problem.routable[s]:
            continue
        path = f"shipments[{s}]"
        is_pair = bool(shipment.pickups and shipment.deliveries)
        if is_pair and (  # avoid_u_turns: two heading stops, alternatives (engine.travel)
            len(problem.stops.pickup_stops[s]) > 1 or len(problem.stops.delivery_stops[s]) > 1
        ):
            note("pair_alternatives", path)
        if shipment.allowed_vehicle_indices and len(set(shipment.allowed_vehicle_indices)) < (
            n_vehicles
        ):
            note("allowed_vehicles", f"{path}.allowed_vehicle_indices")
        for kind, visits in (("pickups", shipment.pickups), ("deliveries", shipment.deliveries)):
            for k, visit in enumerate(visits):
                if is_pair and len(visit.time_windows) > 1:  # single visits: client copies
                    note("pair_multiple_time_windows", f"{path}.{kind}[{k}].time_windows")
                if any(w.is_soft for w in visit.time_windows):
                    feature = "pair_soft_time_windows" if is_pair else "soft_time_windows"
                    note(feature, f"{path}.{kind}[{k}].time_windows")
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
                note("soft_vehicle_time_windows", f"{path}.{name}")
        start = problem.windows[stops.vehicle_start(v)]
        end = problem.windows[stops.vehicle_end(v)]
        if start and end and end[0][0] > start[0][0]:
            note("late_end_window_start", f"{path}.end_time_windows")
        if vehicle.route_distance_limit_m is not None and (
            vehicle.cost_per_traveled_hour > 0 or vehicle.cost_per_kilometer <= 0
        ):
            note("distance_limit_with_time_cost", f"{path}.route_distance_limit")
    if "allowed_vehicles" in found and too_many_allowed_classes(problem):
        note("allowed_vehicle_classes", found["allowed_vehicles"])
    return found
