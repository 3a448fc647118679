"""Whole-model validation: every problem at once, each with its field path in API names.

Why one module of over 500 lines: the model is checked in one pass that collects every
violation (:class:`_Validator`); each ``_check_*`` function covers one group of fields and they
share that collector and its path helpers. Splitting them by feature would spread one pass over
several modules without making any part shorter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine.bounds import bound_violations
from engine.errors import FieldViolation, InvalidModelError
from engine.injected import injected_violations
from engine.model import (
    BreakRequest,
    DurationDistanceMatrix,
    DurationLimit,
    IncompatibilityMode,
    LatLng,
    LoadCost,
    LoadInterval,
    RequirementMode,
    Shipment,
    ShipmentModel,
    ShipmentTypeIncompatibility,
    ShipmentTypeRequirement,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from engine.units import (
    MAX_LOAD_TOTAL,
    MIN_COST_PER_SQUARE_HOUR,
    QUADRATIC_COST_TOLERANCE,
    ceil_int,
    floor_int,
)

__all__ = ["check_model", "validate_model"]

_MAX_PENALTY_COST = 1e12
"""Largest accepted ``penalty_cost``: beyond it the solver could not tell it from mandatory."""


def check_model(model: ShipmentModel) -> None:
    """Raise :class:`InvalidModelError` with every violation when the model is invalid."""
    violations = validate_model(model)
    if violations:
        raise InvalidModelError(violations)


def validate_model(model: ShipmentModel) -> list[FieldViolation]:
    """Every problem of ``model``; an empty list means valid.

    Paths are relative to the model (``shipments[3].deliveries[0].time_windows[0]``).
    """
    v = _Validator(model)
    v.run()
    return v.violations + bound_violations(model)


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


class _Validator:
    def __init__(self, model: ShipmentModel) -> None:
        self.model = model
        self.violations: list[FieldViolation] = []
        self.uses_matrices = bool(model.duration_distance_matrices)
        self.src_tags = set(model.duration_distance_matrix_src_tags)
        self.dst_tags = set(model.duration_distance_matrix_dst_tags)

    def add(self, path: str, description: str) -> None:
        self.violations.append(FieldViolation(path, description))

    # -- model -------------------------------------------------------------------------------

    def run(self) -> None:
        m = self.model
        ok_horizon = True
        for name in ("global_start_time", "global_end_time"):
            if not _finite(getattr(m, name)):
                self.add(name, "must be a finite time")
                ok_horizon = False
        if ok_horizon and not m.global_end_time > m.global_start_time:
            self.add("global_end_time", "must be after global_start_time")
        if self.uses_matrices:
            self.check_matrices()
        elif m.duration_distance_matrix_src_tags or m.duration_distance_matrix_dst_tags:
            self.add(
                "duration_distance_matrix_src_tags",
                "tags are set but duration_distance_matrices is empty",
            )
        for i, shipment in enumerate(m.shipments):
            self.check_shipment(f"shipments[{i}]", shipment)
        for j, vehicle in enumerate(m.vehicles):
            self.check_vehicle(f"vehicles[{j}]", vehicle)
        _check_fleet_and_costs(self)
        _check_cargo_rules(self)
        _check_courier_rules(self)
        _check_soft_limits(self)
        _check_precedence_rules(self)
        _check_injected_solutions(self)
        _check_driver_hours(self)
        _check_load_intervals(self)
        _check_load_costs(self)
        _check_visit_types(self)
        _check_transition_attributes(self)
        _check_visit_demands(self)

    def check_matrices(self) -> None:
        m = self.model
        for name, tags in (
            ("duration_distance_matrix_src_tags", m.duration_distance_matrix_src_tags),
            ("duration_distance_matrix_dst_tags", m.duration_distance_matrix_dst_tags),
        ):
            if not tags:
                self.add(name, "must not be empty when duration_distance_matrices are given")
            seen: set[str] = set()
            for k, tag in enumerate(tags):
                if not tag:
                    self.add(f"{name}[{k}]", "must not be empty")
                elif tag in seen:
                    self.add(f"{name}[{k}]", f"duplicate tag {tag!r}")
                seen.add(tag)
        shape = (len(m.duration_distance_matrix_src_tags), len(m.duration_distance_matrix_dst_tags))
        several = len(m.duration_distance_matrices) > 1
        start_tags: set[str] = set()
        for k, matrix in enumerate(m.duration_distance_matrices):
            self.check_matrix(f"duration_distance_matrices[{k}]", matrix, shape)
            tag = matrix.vehicle_start_tag
            if several and not tag:
                self.add(
                    f"duration_distance_matrices[{k}].vehicle_start_tag",
                    "is required when there is more than one matrix",
                )
            elif tag and tag in start_tags:
                self.add(
                    f"duration_distance_matrices[{k}].vehicle_start_tag", f"duplicate tag {tag!r}"
                )
            start_tags.add(tag)

    def check_matrix(
        self, path: str, matrix: DurationDistanceMatrix, shape: tuple[int, int]
    ) -> None:
        for name, values in (("durations", matrix.durations_s), ("meters", matrix.distances_m)):
            arr = np.asarray(values, dtype=np.float64)
            if arr.shape != shape:
                self.add(
                    f"{path}.rows",
                    f"{name} must have {shape[0]} rows (source tags) of {shape[1]} values "
                    f"(destination tags), got shape {arr.shape}",
                )
                continue
            bad = np.argwhere(~np.isfinite(arr) | (arr < 0))
            for r, c in bad[:5]:
                self.add(f"{path}.rows[{r}].{name}[{c}]", "must be finite and non-negative")

    # -- shipments ---------------------------------------------------------------------------

    def check_shipment(self, path: str, s: Shipment) -> None:
        if not s.pickups and not s.deliveries:
            self.add(path, "a shipment needs at least one pickup or one delivery")
        for kind, visits in (("pickups", s.pickups), ("deliveries", s.deliveries)):
            for k, visit in enumerate(visits):
                self.check_visit(f"{path}.{kind}[{k}]", visit)
        for load_type, amount in s.load_demands.items():
            if not load_type:
                self.add(f"{path}.load_demands", "load type names must not be empty")
            if amount < 0:
                self.add(f"{path}.load_demands[{load_type}].amount", "must not be negative")
        if s.penalty_cost is not None and not (
            _finite(s.penalty_cost) and 0 <= s.penalty_cost <= _MAX_PENALTY_COST
        ):
            self.add(
                f"{path}.penalty_cost",
                f"must be between 0 and {_MAX_PENALTY_COST:g} (unset means mandatory)",
            )
        n_vehicles = len(self.model.vehicles)
        seen: set[int] = set()
        for k, index in enumerate(s.allowed_vehicle_indices):
            if not 0 <= index < n_vehicles:
                self.add(
                    f"{path}.allowed_vehicle_indices[{k}]",
                    f"vehicle index {index} out of range [0, {n_vehicles})",
                )
            elif index in seen:
                self.add(f"{path}.allowed_vehicle_indices[{k}]", f"duplicate index {index}")
            seen.add(index)

    def check_visit(self, path: str, visit: VisitRequest) -> None:
        if self.uses_matrices:
            self.check_tags(f"{path}.tags", visit.tags, need_src=True, need_dst=True)
        elif visit.arrival_location is None:
            self.add(
                f"{path}.arrival_location",
                "is required (or give duration_distance_matrices and tags)",
            )
        if visit.arrival_location is not None:
            self.check_latlng(f"{path}.arrival_location", visit.arrival_location)
        if not (_finite(visit.duration_s) and visit.duration_s >= 0):
            self.add(f"{path}.duration", "must be a non-negative duration")
        self.check_time_windows(f"{path}.time_windows", visit.time_windows)

    def check_tags(self, path: str, tags: Sequence[str], *, need_src: bool, need_dst: bool) -> None:
        for needed, known, what in (
            (need_src, self.src_tags, "duration_distance_matrix_src_tags"),
            (need_dst, self.dst_tags, "duration_distance_matrix_dst_tags"),
        ):
            if not needed:
                continue
            matches = [t for t in tags if t in known]
            if len(matches) != 1:
                self.add(
                    path,
                    f"must contain exactly one tag of {what} (found {len(matches)}: {matches})",
                )

    def check_latlng(self, path: str, p: LatLng) -> None:
        if not (_finite(p.latitude) and -90 <= p.latitude <= 90):
            self.add(f"{path}.latitude", "must be in [-90, 90]")
        if not (_finite(p.longitude) and -180 <= p.longitude <= 180):
            self.add(f"{path}.longitude", "must be in [-180, 180]")

    # -- time windows ------------------------------------------------------------------------

    def check_time_windows(self, path: str, windows: Sequence[TimeWindow]) -> None:
        g0, g1 = self.model.global_start_time, self.model.global_end_time
        prev_end: float | None = None
        for k, w in enumerate(windows):
            wp = f"{path}[{k}]"
            for name in ("start_time", "end_time", "soft_start_time", "soft_end_time"):
                t = getattr(w, name)
                if t is not None and not _finite(t):
                    self.add(f"{wp}.{name}", "must be a finite time")
            start = g0 if w.start_time is None else w.start_time
            end = g1 if w.end_time is None else w.end_time
            if not (_finite(start) and _finite(end)):
                continue
            if start > end:
                self.add(wp, "start_time must not be after end_time")
            if w.start_time is not None and not g0 <= w.start_time <= g1:
                self.add(f"{wp}.start_time", "must be within [global_start_time, global_end_time]")
            if w.end_time is not None and not g0 <= w.end_time <= g1:
                self.add(f"{wp}.end_time", "must be within [global_start_time, global_end_time]")
            if prev_end is not None and start < prev_end:
                self.add(wp, "time windows must be sorted by time and must not overlap")
            prev_end = end
            self.check_soft_bounds(wp, w, single=len(windows) == 1)

    def check_soft_bounds(self, wp: str, w: TimeWindow, *, single: bool) -> None:
        pairs = (
            (
                "soft_start_time",
                w.soft_start_time,
                "cost_per_hour_before_soft_start_time",
                w.cost_per_hour_before_soft_start_time,
            ),
            (
                "soft_end_time",
                w.soft_end_time,
                "cost_per_hour_after_soft_end_time",
                w.cost_per_hour_after_soft_end_time,
            ),
        )
        for time_name, time_value, cost_name, cost_value in pairs:
            if (time_value is None) != (cost_value is None):
                missing = cost_name if cost_value is None else time_name
                self.add(f"{wp}.{missing}", f"is required when {time_name} or {cost_name} is set")
            if cost_value is not None and not (_finite(cost_value) and cost_value >= 0):
                self.add(f"{wp}.{cost_name}", "must be a non-negative number")
            if time_value is not None and not single:
                self.add(f"{wp}.{time_name}", "soft bounds are only allowed with a single window")

    # -- vehicles ----------------------------------------------------------------------------

    def check_vehicle(self, path: str, v: Vehicle) -> None:
        for name in ("start_location", "end_location"):
            loc = getattr(v, name)
            if loc is not None:
                self.check_latlng(f"{path}.{name}", loc)
        if self.uses_matrices:
            self.check_vehicle_tags(path, v)
            if v.travel_mode:
                self.add(
                    f"{path}.travel_mode",
                    "applies to road or geodesic travel; with duration_distance_matrices the "
                    "vehicle's matrix (vehicle_start_tag) gives its travel",
                )
            if v.route_modifiers:
                self.add(
                    f"{path}.route_modifiers",
                    "applies to road travel; with duration_distance_matrices the vehicle's "
                    "matrix (vehicle_start_tag) gives its travel",
                )
        self.check_time_windows(f"{path}.start_time_windows", v.start_time_windows)
        self.check_time_windows(f"{path}.end_time_windows", v.end_time_windows)
        if not (_finite(v.travel_duration_multiple) and v.travel_duration_multiple > 0):
            self.add(f"{path}.travel_duration_multiple", "must be positive")
        for name in ("cost_per_hour", "cost_per_traveled_hour", "cost_per_kilometer", "fixed_cost"):
            value = getattr(v, name)
            if not (_finite(value) and value >= 0):
                self.add(f"{path}.{name}", "must be a non-negative number")
        for load_type, max_load in v.load_limits.items():
            if max_load < 0:
                self.add(f"{path}.load_limits[{load_type}].max_load", "must not be negative")
        if v.route_duration_limit_s is not None and not (
            _finite(v.route_duration_limit_s) and v.route_duration_limit_s >= 0
        ):
            self.add(f"{path}.route_duration_limit.max_duration", "must not be negative")
        if v.route_distance_limit_m is not None and not (
            _finite(v.route_distance_limit_m) and v.route_distance_limit_m >= 0
        ):
            self.add(f"{path}.route_distance_limit.max_meters", "must not be negative")
        self.check_breaks(f"{path}.break_rule.break_requests", v.break_requests)

    def check_vehicle_tags(self, path: str, v: Vehicle) -> None:
        m = self.model
        if v.start_tags:
            self.check_tags(f"{path}.start_tags", v.start_tags, need_src=True, need_dst=False)
        elif v.start_location is not None:
            self.add(f"{path}.start_tags", "is required for a start when matrices are given")
        if v.end_tags:
            self.check_tags(f"{path}.end_tags", v.end_tags, need_src=False, need_dst=True)
        elif v.end_location is not None:
            self.add(f"{path}.end_tags", "is required for an end when matrices are given")
        if len(m.duration_distance_matrices) > 1:
            names = {mat.vehicle_start_tag for mat in m.duration_distance_matrices}
            matches = [t for t in v.start_tags if t in names]
            if len(matches) != 1:
                self.add(
                    f"{path}.start_tags",
                    "with several duration_distance_matrices, must contain exactly one "
                    f"vehicle_start_tag of them (found {len(matches)})",
                )

    def check_breaks(self, path: str, breaks: Sequence[BreakRequest]) -> None:
        g0, g1 = self.model.global_start_time, self.model.global_end_time
        prev: BreakRequest | None = None
        for k, b in enumerate(breaks):
            bp = f"{path}[{k}]"
            if not (_finite(b.earliest_start_time) and g0 <= b.earliest_start_time <= g1):
                self.add(f"{bp}.earliest_start_time", "must be within the global horizon")
            if not (_finite(b.latest_start_time) and g0 <= b.latest_start_time <= g1):
                self.add(f"{bp}.latest_start_time", "must be within the global horizon")
            elif b.latest_start_time < b.earliest_start_time:
                self.add(f"{bp}.latest_start_time", "must not be before earliest_start_time")
            elif _finite(b.earliest_start_time) and ceil_int(
                b.earliest_start_time - g0
            ) > floor_int(b.latest_start_time - g0):
                self.add(bp, "the start window must contain a whole second (solver resolution)")
            if not (_finite(b.min_duration_s) and b.min_duration_s > 0):
                self.add(f"{bp}.min_duration", "must be a positive duration")
            if prev is not None and b.earliest_start_time < prev.earliest_start_time:
                self.add(bp, "break requests must be sorted by earliest_start_time")
            prev = b


# -- fleet and costs, cargo rules (issue 15) ---------------------------------------------------
# Module functions on the validator, apart from its methods, so that other checks can grow
# independently.


def _check_fleet_and_costs(self: _Validator) -> None:
    """``max_active_vehicles``, ``global_duration_cost_per_hour``, ``VisitRequest.cost``,
    ``costs_per_vehicle`` / ``costs_per_vehicle_indices``."""
    m = self.model
    if m.max_active_vehicles is not None and not m.max_active_vehicles > 0:
        self.add("max_active_vehicles", "must be strictly positive")
    cost = m.global_duration_cost_per_hour
    if not (_finite(cost) and cost >= 0):
        self.add("global_duration_cost_per_hour", "must be a non-negative number")
    for j, vehicle in enumerate(m.vehicles):
        if vehicle.ignore and vehicle.used_if_route_is_empty:
            self.add(f"vehicles[{j}].used_if_route_is_empty", "must be false on an ignored vehicle")
    n_vehicles = len(m.vehicles)
    for i, s in enumerate(m.shipments):
        path = f"shipments[{i}]"
        for kind, visits in (("pickups", s.pickups), ("deliveries", s.deliveries)):
            for k, visit in enumerate(visits):
                if not (_finite(visit.cost) and visit.cost >= 0):
                    self.add(f"{path}.{kind}[{k}].cost", "must be a non-negative number")
        for k, c in enumerate(s.costs_per_vehicle):
            if not (_finite(c) and c >= 0):
                self.add(f"{path}.costs_per_vehicle[{k}]", "must be a non-negative number")
        indices = s.costs_per_vehicle_indices
        if indices:
            if len(indices) != len(s.costs_per_vehicle):
                self.add(
                    f"{path}.costs_per_vehicle_indices",
                    f"must have as many elements as costs_per_vehicle ({len(indices)} != "
                    f"{len(s.costs_per_vehicle)})",
                )
            seen: set[int] = set()
            for k, index in enumerate(indices):
                if not 0 <= index < n_vehicles:
                    self.add(
                        f"{path}.costs_per_vehicle_indices[{k}]",
                        f"vehicle index {index} out of range [0, {n_vehicles})",
                    )
                elif index in seen:
                    self.add(f"{path}.costs_per_vehicle_indices[{k}]", f"duplicate index {index}")
                seen.add(index)
        elif s.costs_per_vehicle and len(s.costs_per_vehicle) != n_vehicles:
            self.add(
                f"{path}.costs_per_vehicle",
                f"without costs_per_vehicle_indices, must have one cost per vehicle "
                f"({len(s.costs_per_vehicle)} != {n_vehicles})",
            )


def _check_cargo_rules(self: _Validator) -> None:
    """``shipment_type_incompatibilities``, ``shipment_type_requirements`` (no type may depend
    on itself through a chain of requirements) and ``Shipment.ignore`` (not allowed with
    requirements)."""
    m = self.model
    for k, inc in enumerate(m.shipment_type_incompatibilities):
        _check_incompatibility(self, f"shipment_type_incompatibilities[{k}]", inc)
    depends: dict[str, set[str]] = {}
    for k, req in enumerate(m.shipment_type_requirements):
        _check_requirement(self, f"shipment_type_requirements[{k}]", req)
        for dependent in req.dependent_shipment_types:
            depends.setdefault(dependent, set()).update(req.required_shipment_type_alternatives)
    for k, req in enumerate(m.shipment_type_requirements):
        for j, dependent in enumerate(req.dependent_shipment_types):
            if dependent and _reaches(depends, dependent):
                self.add(
                    f"shipment_type_requirements[{k}].dependent_shipment_types[{j}]",
                    f"type {dependent!r} depends on itself through a chain of requirements",
                )
    if m.shipment_type_requirements:
        for i, s in enumerate(m.shipments):
            if s.ignore:
                self.add(
                    f"shipments[{i}].ignore",
                    "ignoring a shipment is not allowed when the model has "
                    "shipment_type_requirements",
                )


def _check_types(self: _Validator, path: str, types: Sequence[str]) -> None:
    seen: set[str] = set()
    for j, t in enumerate(types):
        if not t:
            self.add(f"{path}[{j}]", "must not be empty")
        elif t in seen:
            self.add(f"{path}[{j}]", f"duplicate type {t!r}")
        seen.add(t)


def _check_incompatibility(self: _Validator, path: str, inc: ShipmentTypeIncompatibility) -> None:
    _check_types(self, f"{path}.types", inc.types)
    if len({t for t in inc.types if t}) < 2:
        self.add(f"{path}.types", "must list at least two different types")
    if inc.incompatibility_mode not in (
        IncompatibilityMode.NOT_PERFORMED_BY_SAME_VEHICLE,
        IncompatibilityMode.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY,
    ):
        self.add(f"{path}.incompatibility_mode", "must be specified")


def _check_requirement(self: _Validator, path: str, req: ShipmentTypeRequirement) -> None:
    for name, types in (
        ("required_shipment_type_alternatives", req.required_shipment_type_alternatives),
        ("dependent_shipment_types", req.dependent_shipment_types),
    ):
        _check_types(self, f"{path}.{name}", types)
        if not types:
            self.add(f"{path}.{name}", "must not be empty")
    if req.requirement_mode not in (
        RequirementMode.PERFORMED_BY_SAME_VEHICLE,
        RequirementMode.IN_SAME_VEHICLE_AT_PICKUP_TIME,
        RequirementMode.IN_SAME_VEHICLE_AT_DELIVERY_TIME,
    ):
        self.add(f"{path}.requirement_mode", "must be specified")


def _reaches(depends: dict[str, set[str]], start: str) -> bool:
    """Whether ``start`` is reachable from itself in the requirement graph."""
    todo = list(depends.get(start, ()))
    seen: set[str] = set()
    while todo:
        t = todo.pop()
        if t == start:
            return True
        if t not in seen:
            seen.add(t)
            todo.extend(depends.get(t, ()))
    return False


def _check_courier_rules(self: _Validator) -> None:
    """``pickup_to_delivery_{relative,absolute}_detour_limit`` and ``_time_limit``:
    non-negative, on shipments with a pickup and a delivery; detour limits only where travel
    durations do not depend on the vehicle (Google's rule)."""
    m = self.model
    vehicle_dependent = len(m.duration_distance_matrices) > 1 or (
        len({v.travel_duration_multiple for v in m.vehicles}) > 1
    )
    for i, s in enumerate(m.shipments):
        for name, value in (
            (
                "pickup_to_delivery_relative_detour_limit",
                s.pickup_to_delivery_relative_detour_limit,
            ),
            (
                "pickup_to_delivery_absolute_detour_limit",
                s.pickup_to_delivery_absolute_detour_limit_s,
            ),
            ("pickup_to_delivery_time_limit", s.pickup_to_delivery_time_limit_s),
        ):
            if value is None:
                continue
            path = f"shipments[{i}].{name}"
            if not (_finite(value) and value >= 0):
                self.add(path, "must be non-negative")
            if not (s.pickups and s.deliveries):
                self.add(path, "needs a shipment with at least one pickup and one delivery")
            if "detour" in name and vehicle_dependent:
                self.add(
                    path,
                    "detour limits need travel durations that do not depend on the vehicle "
                    "(one duration_distance_matrix and one travel_duration_multiple for all "
                    "vehicles)",
                )


def _check_soft_limits(self: _Validator) -> None:
    """Soft route duration, route distance and load limits: each soft bound with its cost,
    non-negative, below the hard bound; a soft load limit only on a type that only pickup-only
    or only delivery-only shipments demand (Google's rule)."""
    m = self.model
    kinds: dict[str, set[str]] = {}
    for s in m.shipments:
        for load_type in s.demanded_types:  # the shipment's and its visits' demands
            kind = "pair" if s.pickups and s.deliveries else "pickup" if s.pickups else "delivery"
            kinds.setdefault(load_type, set()).add(kind)
    for j, v in enumerate(m.vehicles):
        path = f"vehicles[{j}]"
        for limit, hard, soft, soft_name, cost, cost_name in (
            (
                "route_duration_limit",
                v.route_duration_limit_s,
                v.route_duration_soft_max_s,
                "soft_max_duration",
                v.route_duration_cost_per_hour_after_soft_max,
                "cost_per_hour_after_soft_max",
            ),
            (
                "route_distance_limit",
                v.route_distance_limit_m,
                v.route_distance_soft_max_m,
                "soft_max_meters",
                v.route_distance_cost_per_kilometer_above_soft_max,
                "cost_per_kilometer_above_soft_max",
            ),
        ):
            if (soft is None) != (cost is None):
                missing = cost_name if cost is None else soft_name
                self.add(f"{path}.{limit}.{missing}", f"{soft_name} and {cost_name} go together")
            if soft is not None and not (_finite(soft) and soft >= 0):
                self.add(f"{path}.{limit}.{soft_name}", "must be non-negative")
            elif soft is not None and hard is not None and not soft < hard:
                self.add(f"{path}.{limit}.{soft_name}", "must be less than the hard maximum")
            if cost is not None and not (_finite(cost) and cost >= 0):
                self.add(f"{path}.{limit}.{cost_name}", "must be a non-negative number")
        for load_type, soft_limit in v.soft_load_limits.items():
            lp = f"{path}.load_limits[{load_type}]"
            if soft_limit.soft_max_load < 0:
                self.add(f"{lp}.soft_max_load", "must not be negative")
            rate = soft_limit.cost_per_unit_above_soft_max
            if not (_finite(rate) and rate >= 0):
                self.add(f"{lp}.cost_per_unit_above_soft_max", "must be a non-negative number")
            if len(kinds.get(load_type, set())) > 1 or "pair" in kinds.get(load_type, set()):
                self.add(
                    f"{lp}.soft_max_load",
                    "soft load limits need a type that only pickup-only or only delivery-only "
                    "shipments demand",
                )


def _check_precedence_rules(self: _Validator) -> None:
    """``precedence_rules``: shipment indices in range, events that exist, a finite offset."""
    m = self.model
    n = len(m.shipments)
    for k, rule in enumerate(m.precedence_rules):
        path = f"precedence_rules[{k}]"
        for which, index, is_delivery in (
            ("first", rule.first_index, rule.first_is_delivery),
            ("second", rule.second_index, rule.second_is_delivery),
        ):
            if not 0 <= index < n:
                self.add(f"{path}.{which}_index", f"shipment index {index} out of range [0, {n})")
                continue
            shipment = m.shipments[index]
            if not (shipment.deliveries if is_delivery else shipment.pickups):
                event = "delivery" if is_delivery else "pickup"
                self.add(
                    f"{path}.{which}_is_delivery",
                    f"shipment {index} has no {event} (set {which}_is_delivery accordingly)",
                )
        if not _finite(rule.offset_duration_s):
            self.add(f"{path}.offset_duration", "must be a finite duration")


def _check_injected_solutions(self: _Validator) -> None:
    """``injected_first_solution_routes``, ``injected_solution_constraint``,
    ``refresh_details_routes`` (paths relative to the request) and, with
    ``interpret_injected_solutions_using_labels``, unique labels (see :mod:`engine.injected`)."""
    for violation in injected_violations(self.model):
        self.add(violation.field, violation.description)


# -- driver-hours rules (issue 15) ------------------------------------------------------------

_MAX_QUADRATIC_SPAN_S = 86400.0
"""Google: ``max_duration - quadratic_soft_max_duration`` is at most one day."""


def _check_driver_hours(self: _Validator) -> None:
    """``break_rule.frequency_constraints``, ``travel_duration_limit`` and the quadratic soft
    part of ``route_duration_limit`` (its linear soft part: :func:`_check_soft_limits`)."""
    for j, v in enumerate(self.model.vehicles):
        path = f"vehicles[{j}]"
        for k, fc in enumerate(v.break_frequency_constraints):
            fp = f"{path}.break_rule.frequency_constraints[{k}]"
            if not (_finite(fc.min_break_duration_s) and fc.min_break_duration_s >= 0):
                self.add(f"{fp}.min_break_duration", "must be a non-negative duration")
            if not (_finite(fc.max_inter_break_duration_s) and fc.max_inter_break_duration_s > 0):
                self.add(f"{fp}.max_inter_break_duration", "must be a positive duration")
        _check_quadratic_soft_max(self, f"{path}.route_duration_limit", v.route_duration_limit)
        travel = v.travel_duration_limit
        if travel is not None:
            _check_travel_duration_limit(self, f"{path}.travel_duration_limit", travel)


def _check_travel_duration_limit(self: _Validator, path: str, limit: DurationLimit) -> None:
    hard = limit.max_duration_s
    if hard is not None and not (_finite(hard) and hard >= 0):
        self.add(f"{path}.max_duration", "must not be negative")
        hard = None  # reported: the soft maxima are not compared with it
    soft, cost = limit.soft_max_duration_s, limit.cost_per_hour_after_soft_max
    if (soft is None) != (cost is None):
        missing = "cost_per_hour_after_soft_max" if cost is None else "soft_max_duration"
        self.add(
            f"{path}.{missing}", "soft_max_duration and cost_per_hour_after_soft_max go together"
        )
    if soft is not None and not (_finite(soft) and soft >= 0):
        self.add(f"{path}.soft_max_duration", "must be non-negative")
    elif soft is not None and hard is not None and not soft < hard:
        self.add(f"{path}.soft_max_duration", "must be less than max_duration")
    if cost is not None and not (_finite(cost) and cost >= 0):
        self.add(f"{path}.cost_per_hour_after_soft_max", "must be a non-negative number")
    _check_quadratic_soft_max(self, path, limit)


def _check_quadratic_soft_max(self: _Validator, path: str, limit: DurationLimit) -> None:
    """Google's rules for ``quadratic_soft_max_duration`` and its cost: together, non-negative,
    below ``max_duration`` by at most a day."""
    soft = limit.quadratic_soft_max_duration_s
    cost = limit.cost_per_square_hour_after_quadratic_soft_max
    soft_name, cost_name = (
        "quadratic_soft_max_duration",
        "cost_per_square_hour_after_quadratic_soft_max",
    )
    if (soft is None) != (cost is None):
        missing = cost_name if cost is None else soft_name
        self.add(f"{path}.{missing}", f"{soft_name} and {cost_name} go together")
    hard = limit.max_duration_s
    if soft is not None and not (_finite(soft) and soft >= 0):
        self.add(f"{path}.{soft_name}", "must be non-negative")
    elif soft is not None and hard is not None and _finite(hard) and hard >= 0:
        if not soft < hard:
            self.add(f"{path}.{soft_name}", "must be less than max_duration")
        elif hard - soft > _MAX_QUADRATIC_SPAN_S:
            self.add(
                f"{path}.{soft_name}",
                f"must be at most one day (86400 s) below max_duration (is {hard - soft:g} s)",
            )
    if cost is not None and not (_finite(cost) and cost >= 0):
        self.add(f"{path}.{cost_name}", "must be a non-negative number")
    elif cost and cost < MIN_COST_PER_SQUARE_HOUR:
        self.add(
            f"{path}.{cost_name}",
            f"a cost per square hour below {MIN_COST_PER_SQUARE_HOUR:g} cannot be weighed by the "
            f"solver within {QUADRATIC_COST_TOLERANCE:.0%} (it counts whole 10^-6 cost units per "
            f"square second); scale all the model's costs up (got {cost:g})",
        )


# -- start and end load intervals (issue 15) --------------------------------------------------

MAX_LOAD_INTERVAL_BOUND = 10**15
"""Largest ``min`` or ``max`` of a ``LoadLimit.Interval`` (the solver keeps loads in int64)."""


def _check_load_intervals(self: _Validator) -> None:
    """``load_limits[type].start_load_interval`` and ``end_load_interval``: Google's rules (min
    and max non-negative, min <= max) and routeopt's bound."""
    for j, v in enumerate(self.model.vehicles):
        for kind, intervals in (
            ("start_load_interval", v.start_load_intervals),
            ("end_load_interval", v.end_load_intervals),
        ):
            for load_type, interval in sorted(intervals.items()):
                path = f"vehicles[{j}].load_limits[{load_type}].{kind}"
                if not load_type:
                    self.add(f"vehicles[{j}].load_limits", "load type names must not be empty")
                _check_load_interval(self, path, interval)


def _check_load_interval(self: _Validator, path: str, interval: LoadInterval) -> None:
    ok = True
    for name, value in (("min", interval.min_load), ("max", interval.max_load)):
        if value is None:
            continue
        if value < 0:
            self.add(f"{path}.{name}", f"must not be negative (is {value})")
            ok = False
        elif value > MAX_LOAD_INTERVAL_BOUND:
            self.add(f"{path}.{name}", f"must be at most 10^15 (is {value})")
            ok = False
    if ok and interval.max_load is not None and interval.min_load > interval.max_load:
        self.add(f"{path}.min", f"must not exceed max ({interval.min_load} > {interval.max_load})")


# -- per-visit load demands (issue 15) --------------------------------------------------------


def _check_visit_demands(self: _Validator) -> None:
    """``VisitRequest.load_demands``: names not empty, amounts non-negative (Google's rules),
    and of a shipment with a pickup and a delivery, no delivery alternative removes more of a
    type than some pickup alternative adds (routeopt's rule: a delivery unloads goods of its
    own shipment, so the load of a pair never goes below what it picked up minus what it
    delivered, both >= 0)."""
    for i, s in enumerate(self.model.shipments):
        for kind, visits in (("pickups", s.pickups), ("deliveries", s.deliveries)):
            for k, visit in enumerate(visits):
                path = f"shipments[{i}].{kind}[{k}].load_demands"
                for load_type, amount in sorted(visit.load_demands.items()):
                    if not load_type:
                        self.add(path, "load type names must not be empty")
                    if amount < 0:
                        self.add(f"{path}[{load_type}].amount", "must not be negative")
        if not (s.pickups and s.deliveries and s.has_visit_demands):
            continue
        for load_type in sorted(s.demanded_types):
            least_picked = min(
                s.visit_demands(True, k).get(load_type, 0) for k in range(len(s.pickups))
            )
            for k in range(len(s.deliveries)):
                delivered = s.visit_demands(False, k).get(load_type, 0)
                if delivered > least_picked:
                    self.add(
                        f"shipments[{i}].deliveries[{k}].load_demands[{load_type}].amount",
                        f"the delivery removes {delivered} of {load_type!r} (shipment plus "
                        f"visit demand) but a pickup of the shipment adds only {least_picked}: "
                        "a delivery may not unload more than its shipment picked up",
                    )


# -- load-dependent costs (issue 15) ----------------------------------------------------------


def _check_load_costs(self: _Validator) -> None:
    """``load_limits[type].cost_per_kilometer`` / ``cost_per_traveled_hour`` (Google's
    ``LoadCost``): a threshold from 0 to :data:`~engine.units.MAX_LOAD_TOTAL` (no load is
    larger), finite non-negative costs per unit."""
    for j, v in enumerate(self.model.vehicles):
        for kind, costs in (
            ("cost_per_kilometer", v.load_costs_per_kilometer),
            ("cost_per_traveled_hour", v.load_costs_per_traveled_hour),
        ):
            for load_type, cost in sorted(costs.items()):
                if not load_type:
                    self.add(f"vehicles[{j}].load_limits", "load type names must not be empty")
                _check_load_cost(self, f"vehicles[{j}].load_limits[{load_type}].{kind}", cost)


def _check_load_cost(self: _Validator, path: str, cost: LoadCost) -> None:
    if not 0 <= cost.load_threshold <= MAX_LOAD_TOTAL:
        self.add(
            f"{path}.load_threshold",
            f"must be between 0 and 2^53 (is {cost.load_threshold})",
        )
    for name in ("cost_per_unit_below_threshold", "cost_per_unit_above_threshold"):
        value = getattr(cost, name)
        if not (_finite(value) and value >= 0):
            self.add(f"{path}.{name}", f"must be a finite non-negative number (is {value:g})")


# -- visit types (issue 15) -------------------------------------------------------------------

MAX_EXTRA_VISIT_DURATION_S = 1e9
"""Largest ``extra_visit_duration_for_visit_type`` value (seconds; the solver keeps times in
int64, and a visit's extras are summed)."""


def _check_visit_types(self: _Validator) -> None:
    """``VisitRequest.visit_types`` (not empty, each at most once: Google's rule) and
    ``Vehicle.extra_visit_duration_for_visit_type`` (keys not empty, durations non-negative,
    finite and at most :data:`MAX_EXTRA_VISIT_DURATION_S`)."""
    for i, shipment in enumerate(self.model.shipments):
        for kind, visits in (("pickups", shipment.pickups), ("deliveries", shipment.deliveries)):
            for k, visit in enumerate(visits):
                path = f"shipments[{i}].{kind}[{k}].visit_types"
                if any(not t for t in visit.visit_types):
                    self.add(path, "visit types must not be empty strings")
                if len(set(visit.visit_types)) < len(visit.visit_types):
                    self.add(path, "a visit type may appear only once")
    for j, vehicle in enumerate(self.model.vehicles):
        path = f"vehicles[{j}].extra_visit_duration_for_visit_type"
        for visit_type, extra in sorted(vehicle.extra_visit_duration_for_visit_type.items()):
            if not visit_type:
                self.add(path, "keys (visit types) must not be empty strings")
            elif not (_finite(extra) and 0 <= extra <= MAX_EXTRA_VISIT_DURATION_S):
                self.add(
                    f"{path}[{visit_type}]",
                    f"must be a non-negative duration of at most 10^9 s (is {extra:g} s)",
                )


# -- transition attributes (issue 15) ---------------------------------------------------------


def _check_transition_attributes(self: _Validator) -> None:
    """``transition_attributes``: exactly one of ``src_tag`` / ``excluded_src_tag`` and one of
    ``dst_tag`` / ``excluded_dst_tag`` (Google's rule); ``cost``, ``cost_per_kilometer`` and
    ``delay`` non-negative and finite; a soft ``distance_limit`` with both its fields,
    non-negative (the bounds of :mod:`engine.bounds` come on top)."""
    for k, a in enumerate(self.model.transition_attributes):
        path = f"transition_attributes[{k}]"
        for tag, excluded, tag_name, excluded_name in (
            (a.src_tag, a.excluded_src_tag, "src_tag", "excluded_src_tag"),
            (a.dst_tag, a.excluded_dst_tag, "dst_tag", "excluded_dst_tag"),
        ):
            if bool(tag) == bool(excluded):
                self.add(
                    f"{path}.{tag_name}",
                    f"exactly one of {tag_name} and {excluded_name} must be non-empty",
                )
        for name, value in (("cost", a.cost), ("cost_per_kilometer", a.cost_per_kilometer)):
            if not (_finite(value) and value >= 0):
                self.add(f"{path}.{name}", "must be a non-negative number")
        if not (_finite(a.delay_s) and a.delay_s >= 0):
            self.add(f"{path}.delay", "must be a non-negative duration")
        soft = a.distance_limit_soft_max_m
        rate = a.distance_limit_cost_per_kilometer_above_soft_max
        limit = f"{path}.distance_limit"
        if (soft is None) != (rate is None):
            missing = "cost_per_kilometer_above_soft_max" if rate is None else "soft_max_meters"
            self.add(
                f"{limit}.{missing}",
                "soft_max_meters and cost_per_kilometer_above_soft_max go together",
            )
        if soft is not None and not (_finite(soft) and soft >= 0):
            self.add(f"{limit}.soft_max_meters", "must be non-negative")
        if rate is not None and not (_finite(rate) and rate >= 0):
            self.add(f"{limit}.cost_per_kilometer_above_soft_max", "must be a non-negative number")
