"""The routing problem as plain, immutable Python objects.

Names follow the API (``routeopt.v1``, itself modelled on Google's Route Optimization API) so
that a field path in an engine error reads the same as in the request. Units are part of the
names where the API uses a protobuf Duration or Timestamp:

- ``*_time`` fields are absolute times in seconds since the Unix epoch (float);
- ``*_s`` fields are durations in seconds, ``*_m`` / ``*_meters`` distances in meters;
- costs are in the caller's currency unit.

Objects here are not validated on construction; :func:`engine.validation.validate_model`
checks a whole model at once and reports every problem with its field path.

Why one module of over 500 lines: it is the engine's data model, one frozen dataclass per
message of the API (with the docstring that says what each field means); every other room
imports its types from here, and a split would only scatter the one vocabulary.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from engine.units import ceil_int

__all__ = [
    "DEFAULT_GLOBAL_END_TIME",
    "DEFAULT_GLOBAL_START_TIME",
    "REQUEST_LEVEL_FIELDS",
    "TRAVEL_MODE_PROFILES",
    "BreakRequest",
    "ConstraintRelaxation",
    "DurationDistanceMatrix",
    "DurationLimit",
    "FrequencyConstraint",
    "IncompatibilityMode",
    "InjectedRoute",
    "InjectedSkippedShipment",
    "InjectedSolutionConstraint",
    "InjectedVisit",
    "LatLng",
    "LoadCost",
    "LoadInterval",
    "PrecedenceRule",
    "Relaxation",
    "RelaxationLevel",
    "RequirementMode",
    "RouteModifiers",
    "Shipment",
    "ShipmentModel",
    "ShipmentTypeIncompatibility",
    "ShipmentTypeRequirement",
    "SoftLoadLimit",
    "TimeWindow",
    "TransitionAttributes",
    "TravelMode",
    "UnloadingPolicy",
    "Vehicle",
    "VisitRequest",
]

DEFAULT_GLOBAL_START_TIME = 0.0
"""Start of the horizon when the model does not set one: 1970-01-01T00:00:00Z."""

DEFAULT_GLOBAL_END_TIME = 365 * 86400.0
"""End of the horizon when the model does not set one: one year after the default start."""


@dataclass(frozen=True)
class LatLng:
    """A WGS84 point in degrees."""

    latitude: float
    longitude: float


@dataclass(frozen=True)
class TimeWindow:
    """Hard bounds ``[start_time, end_time]`` (None: the horizon's) and optional soft bounds.

    Starting before ``soft_start_time`` costs ``cost_per_hour_before_soft_start_time`` per hour
    of earliness; starting after ``soft_end_time`` costs ``cost_per_hour_after_soft_end_time``
    per hour of lateness.
    """

    start_time: float | None = None
    end_time: float | None = None
    soft_start_time: float | None = None
    soft_end_time: float | None = None
    cost_per_hour_before_soft_start_time: float | None = None
    cost_per_hour_after_soft_end_time: float | None = None

    @property
    def is_soft(self) -> bool:
        return self.soft_start_time is not None or self.soft_end_time is not None


@dataclass(frozen=True)
class VisitRequest:
    """One alternative way of performing a pickup or a delivery."""

    arrival_location: LatLng | None = None
    time_windows: tuple[TimeWindow, ...] = ()
    duration_s: float = 0.0
    tags: tuple[str, ...] = ()
    label: str = ""
    cost: float = 0.0
    """Cost of performing the shipment through this alternative (Google's
    ``VisitRequest.cost``), reported as ``model.shipments.pickups.cost`` /
    ``model.shipments.deliveries.cost``."""
    visit_types: tuple[str, ...] = ()
    """Google's ``visit_types``: a vehicle spends its
    :attr:`Vehicle.extra_visit_duration_for_visit_type` of each on top of ``duration_s``."""
    load_demands: Mapping[str, int] = field(default_factory=dict)
    """Google's ``VisitRequest.load_demands``: demands of this visit only, added to the
    shipment's :attr:`Shipment.load_demands` (see :meth:`Shipment.visit_demands`)."""
    avoid_u_turns: bool = False
    """Google's ``avoid_u_turns`` (road travel only): the vehicle arrives along one direction of
    the road the location snaps to and leaves in that direction (see :mod:`engine.travel`)."""


@dataclass(frozen=True)
class Shipment:
    """Something to pick up (one of ``pickups``) and/or deliver (one of ``deliveries``).

    With both, one vehicle performs the pickup and later the delivery. Delivery-only loads are
    on board from the vehicle start; pickup-only loads stay on board until the vehicle end.
    ``penalty_cost`` None means mandatory.
    """

    pickups: tuple[VisitRequest, ...] = ()
    deliveries: tuple[VisitRequest, ...] = ()
    load_demands: Mapping[str, int] = field(default_factory=dict)
    penalty_cost: float | None = None
    allowed_vehicle_indices: tuple[int, ...] = ()
    label: str = ""
    shipment_type: str = ""
    """The type that ``ShipmentModel.shipment_type_incompatibilities`` and
    ``shipment_type_requirements`` refer to (empty: none)."""
    ignore: bool = False
    """Skip this shipment without its penalty (reported skipped with ``SHIPMENT_IGNORED``)."""
    costs_per_vehicle: tuple[float, ...] = ()
    """Cost incurred when a vehicle performs this shipment: one per vehicle of the model, or
    one per entry of ``costs_per_vehicle_indices`` (other vehicles: 0)."""
    costs_per_vehicle_indices: tuple[int, ...] = ()
    pickup_to_delivery_relative_detour_limit: float | None = None
    """With t the travel time from the chosen pickup to the chosen delivery: the delivery
    starts at most ``ceil(t * (1 + limit))`` seconds after the pickup starts."""
    pickup_to_delivery_absolute_detour_limit_s: float | None = None
    """The delivery starts at most ``t + limit`` seconds after the pickup starts (with both
    detour limits, the tighter one applies to each pickup/delivery pair)."""
    pickup_to_delivery_time_limit_s: float | None = None
    """The delivery starts at most this long after the pickup starts."""

    def pickup_to_delivery_limit_s(self, travel_s: float) -> float | None:
        """The longest allowed time from the start of the pickup to the start of the delivery
        when travel between them takes ``travel_s`` (None: no limit)."""
        limits = []
        if self.pickup_to_delivery_time_limit_s is not None:
            limits.append(self.pickup_to_delivery_time_limit_s)
        if self.pickup_to_delivery_relative_detour_limit is not None:
            scaled = travel_s * (1.0 + self.pickup_to_delivery_relative_detour_limit)
            limits.append(float(ceil_int(scaled)))
        if self.pickup_to_delivery_absolute_detour_limit_s is not None:
            limits.append(travel_s + self.pickup_to_delivery_absolute_detour_limit_s)
        return min(limits) if limits else None

    @property
    def is_mandatory(self) -> bool:
        return self.penalty_cost is None

    def cost_for_vehicle(self, vehicle: int) -> float:
        """``costs_per_vehicle`` of ``vehicle`` (0 when none applies)."""
        if not self.costs_per_vehicle:
            return 0.0
        if not self.costs_per_vehicle_indices:
            if 0 <= vehicle < len(self.costs_per_vehicle):
                return float(self.costs_per_vehicle[vehicle])
            return 0.0
        for index, cost in zip(
            self.costs_per_vehicle_indices, self.costs_per_vehicle, strict=False
        ):
            if index == vehicle:
                return float(cost)
        return 0.0

    def visit_demands(self, is_pickup: bool, k: int) -> dict[str, int]:
        """The demands of performing pickup (or delivery) alternative ``k``: the shipment's
        ``load_demands`` plus that visit request's (Google's ``Visit.load_demands``, unsigned)."""
        visit = (self.pickups if is_pickup else self.deliveries)[k]
        demands = {t: int(q) for t, q in self.load_demands.items()}
        for t, q in visit.load_demands.items():
            demands[t] = demands.get(t, 0) + int(q)
        return demands

    def max_visit_demand(self, load_type: str) -> int:
        """The largest demand of ``load_type`` over the shipment's visit requests (its
        ``load_demands`` when it has no per-visit demand of the type)."""
        base = int(self.load_demands.get(load_type, 0))
        extra = [int(v.load_demands.get(load_type, 0)) for v in (*self.pickups, *self.deliveries)]
        return base + max(extra, default=0)

    @property
    def demanded_types(self) -> set[str]:
        """Load types with a positive demand in the shipment or one of its visit requests."""
        types = {t for t, q in self.load_demands.items() if q > 0}
        for v in (*self.pickups, *self.deliveries):
            types.update(t for t, q in v.load_demands.items() if q > 0)
        return types

    @property
    def has_visit_demands(self) -> bool:
        """Whether a visit request has its own (non-zero) ``load_demands``."""
        return any(q for v in (*self.pickups, *self.deliveries) for q in v.load_demands.values())


@dataclass(frozen=True)
class BreakRequest:
    """A break of ``min_duration_s`` starting in ``[earliest_start_time, latest_start_time]``."""

    earliest_start_time: float
    latest_start_time: float
    min_duration_s: float


@dataclass(frozen=True)
class FrequencyConstraint:
    """Google's ``BreakRule.FrequencyConstraint``: within a route (vehicle start to end), any
    interval longer than ``max_inter_break_duration_s`` overlaps a break of at least
    ``min_break_duration_s``. All route time counts (travel, waits, visits), not only driving.
    """

    min_break_duration_s: float
    max_inter_break_duration_s: float


@dataclass(frozen=True)
class DurationLimit:
    """Google's ``Vehicle.DurationLimit`` as used by ``travel_duration_limit``: a hard maximum,
    a linear soft maximum (``cost_per_hour_after_soft_max`` per hour beyond it) and a quadratic
    one (``cost_per_square_hour_after_quadratic_soft_max`` times the square of the hours beyond
    it). Every field is optional."""

    max_duration_s: float | None = None
    soft_max_duration_s: float | None = None
    cost_per_hour_after_soft_max: float | None = None
    quadratic_soft_max_duration_s: float | None = None
    cost_per_square_hour_after_quadratic_soft_max: float | None = None

    def soft_cost(self, duration_s: float) -> tuple[float, float]:
        """(linear, quadratic) soft cost of a duration of ``duration_s`` seconds."""
        linear = quadratic = 0.0
        if self.soft_max_duration_s is not None and self.cost_per_hour_after_soft_max:
            over_h = max(0.0, duration_s - self.soft_max_duration_s) / 3600.0
            linear = self.cost_per_hour_after_soft_max * over_h
        rate = self.cost_per_square_hour_after_quadratic_soft_max
        if self.quadratic_soft_max_duration_s is not None and rate:
            over_h = max(0.0, duration_s - self.quadratic_soft_max_duration_s) / 3600.0
            quadratic = rate * over_h * over_h
        return linear, quadratic


@dataclass(frozen=True)
class SoftLoadLimit:
    """Once per route, ``(max load on board - soft_max_load) * cost_per_unit_above_soft_max``
    when the route's largest load exceeds ``soft_max_load`` (Google's ``LoadLimit``)."""

    soft_max_load: int
    cost_per_unit_above_soft_max: float


@dataclass(frozen=True)
class LoadInterval:
    """Google's ``LoadLimit.Interval``: an acceptable load from ``min_load`` up to ``max_load``
    (``None``: unrestricted)."""

    min_load: int = 0
    max_load: int | None = None

    def problem(self, amount: int) -> str:
        """Why ``amount`` is outside the interval ("" when it is inside)."""
        if amount < self.min_load:
            return f"is {amount}, below min {self.min_load}"
        if self.max_load is not None and amount > self.max_load:
            return f"is {amount}, above max {self.max_load}"
        return ""


@dataclass(frozen=True)
class LoadCost:
    """Google's ``LoadLimit.LoadCost``: the cost of moving ``load`` units of a load type during
    a transition, per kilometer or per traveled hour (:meth:`rate`), piecewise linear in the
    load: ``cost_per_unit_below_threshold`` for each unit up to ``load_threshold``,
    ``cost_per_unit_above_threshold`` for each unit beyond it."""

    load_threshold: int = 0
    cost_per_unit_below_threshold: float = 0.0
    cost_per_unit_above_threshold: float = 0.0

    def rate(self, load: int) -> float:
        """The cost per kilometer (or per hour) of carrying ``load`` units."""
        below = min(load, self.load_threshold)
        above = max(0, load - self.load_threshold)
        return (
            below * self.cost_per_unit_below_threshold + above * self.cost_per_unit_above_threshold
        )


class UnloadingPolicy(enum.IntEnum):
    """``Vehicle.UnloadingPolicy`` (values are Google's): the order in which a vehicle delivers
    the shipments that have both a pickup and a delivery; other shipments are free."""

    UNLOADING_POLICY_UNSPECIFIED = 0
    LAST_IN_FIRST_OUT = 1
    """Each delivery is of the pair picked up last among those on board."""
    FIRST_IN_FIRST_OUT = 2
    """Each delivery is of the pair picked up first among those on board."""


class TravelMode(enum.IntEnum):
    """``Vehicle.TravelMode`` (Google's values; ``TRUCK`` is a routeopt value, 100 and up): which
    road profile the vehicle's travel follows (:data:`TRAVEL_MODE_PROFILES`)."""

    TRAVEL_MODE_UNSPECIFIED = 0
    """The server's default road profile (``--profile``, ``car`` unless set): Google's
    "equivalent to DRIVING" on a server started with the car profile."""
    DRIVING = 1
    """The ``car`` profile."""
    WALKING = 2
    """The ``foot`` profile (walking pace, one-way rules do not apply)."""
    TRUCK = 100
    """routeopt: the ``truck`` profile (heavy goods vehicle: ``hgv`` access, lower speeds)."""


@dataclass(frozen=True)
class RouteModifiers:
    """Google's ``RouteModifiers``: kinds of road a vehicle avoids "where reasonable" (see
    :mod:`engine.travel`). ``avoid_tolls``, ``avoid_highways`` and ``avoid_ferries`` apply to
    the motorised modes only and ``avoid_indoor`` to ``WALKING`` only (Google's rule):
    :meth:`for_profile` drops the others."""

    avoid_tolls: bool = False
    avoid_highways: bool = False
    avoid_ferries: bool = False
    avoid_indoor: bool = False

    def for_profile(self, profile: str) -> RouteModifiers:
        """The modifiers that apply to ``profile`` (``foot``: indoor only; else the others)."""
        if profile == "foot":
            return RouteModifiers(avoid_indoor=self.avoid_indoor)
        return RouteModifiers(self.avoid_tolls, self.avoid_highways, self.avoid_ferries)

    def __bool__(self) -> bool:
        return self.avoid_tolls or self.avoid_highways or self.avoid_ferries or self.avoid_indoor

    def label(self) -> str:
        """``avoid_tolls+avoid_ferries`` style name of the set ones ("" for none)."""
        names = ("avoid_tolls", "avoid_highways", "avoid_ferries", "avoid_indoor")
        return "+".join(n for n in names if getattr(self, n))


TRAVEL_MODE_PROFILES: Mapping[TravelMode, str | None] = {
    TravelMode.TRAVEL_MODE_UNSPECIFIED: None,
    TravelMode.DRIVING: "car",
    TravelMode.WALKING: "foot",
    TravelMode.TRUCK: "truck",
}
"""The road profile (:data:`geodata.PROFILES`) of each travel mode; None: the default one."""


@dataclass(frozen=True)
class Vehicle:
    """A vehicle. Unset start (end) location: the route starts (ends) at its first (last) visit."""

    start_location: LatLng | None = None
    end_location: LatLng | None = None
    start_tags: tuple[str, ...] = ()
    end_tags: tuple[str, ...] = ()
    start_time_windows: tuple[TimeWindow, ...] = ()
    end_time_windows: tuple[TimeWindow, ...] = ()
    travel_duration_multiple: float = 1.0
    load_limits: Mapping[str, int] = field(default_factory=dict)
    cost_per_hour: float = 0.0
    cost_per_traveled_hour: float = 0.0
    cost_per_kilometer: float = 0.0
    fixed_cost: float = 0.0
    route_duration_limit_s: float | None = None
    route_distance_limit_m: float | None = None
    break_requests: tuple[BreakRequest, ...] = ()
    label: str = ""
    route_duration_soft_max_s: float | None = None
    """``route_duration_limit.soft_max_duration``: a route longer than this (end - start)
    costs ``route_duration_cost_per_hour_after_soft_max`` per hour beyond it."""
    route_duration_cost_per_hour_after_soft_max: float | None = None
    route_distance_soft_max_m: float | None = None
    """``route_distance_limit.soft_max_meters``: a route longer than this costs
    ``route_distance_cost_per_kilometer_above_soft_max`` per kilometer beyond it."""
    route_distance_cost_per_kilometer_above_soft_max: float | None = None
    soft_load_limits: Mapping[str, SoftLoadLimit] = field(default_factory=dict)
    """``load_limits[type].soft_max_load`` and ``cost_per_unit_above_soft_max`` per load type
    (the hard ``max_load`` stays in :attr:`load_limits`)."""
    used_if_route_is_empty: bool = False
    """Without shipments, the vehicle still goes from its start to its end (its route is used:
    fixed, travel and time costs, breaks)."""
    ignore: bool = False
    """This vehicle stays unused; shipments only it may serve are skipped (``VEHICLE_IGNORED``)."""
    # -- driver-hours rules (issue 15) --
    break_frequency_constraints: tuple[FrequencyConstraint, ...] = ()
    """``break_rule.frequency_constraints``: each must hold with the breaks of
    :attr:`break_requests`."""
    travel_duration_limit: DurationLimit | None = None
    """``travel_duration_limit``: limits on the route's travel time (sum of its legs)."""
    route_duration_quadratic_soft_max_s: float | None = None
    """``route_duration_limit.quadratic_soft_max_duration``: a route longer than this costs
    ``route_duration_cost_per_square_hour_after_quadratic_soft_max`` times the square of the
    hours beyond it."""
    route_duration_cost_per_square_hour_after_quadratic_soft_max: float | None = None
    # -- loads (issue 15) --
    start_load_intervals: Mapping[str, LoadInterval] = field(default_factory=dict)
    """``load_limits[type].start_load_interval``: the load on board at the start of a route
    that performs visits (the delivery-only loads it delivers) must lie in the interval. A
    vehicle without visits carries nothing and is not constrained."""
    end_load_intervals: Mapping[str, LoadInterval] = field(default_factory=dict)
    """``load_limits[type].end_load_interval``: the same at the end (the pickup-only loads it
    collects)."""
    unloading_policy: UnloadingPolicy = UnloadingPolicy.UNLOADING_POLICY_UNSPECIFIED
    """Google's ``unloading_policy`` (issue 15)."""
    # -- road network (issue 15) --
    travel_mode: TravelMode = TravelMode.TRAVEL_MODE_UNSPECIFIED
    """Google's ``travel_mode``: the road profile of this vehicle's travel (road travel), or its
    speed (geodesic travel: ``WALKING`` moves at walking pace); see :mod:`engine.travel`."""
    route_modifiers: RouteModifiers = field(default_factory=RouteModifiers)
    """Google's ``route_modifiers``: roads this vehicle avoids where reasonable (road travel)."""
    load_costs_per_kilometer: Mapping[str, LoadCost] = field(default_factory=dict)
    """``load_limits[type].cost_per_kilometer``: each transition costs the :class:`LoadCost`
    rate of the load of that type on board during it times its kilometers (issue 15)."""
    load_costs_per_traveled_hour: Mapping[str, LoadCost] = field(default_factory=dict)
    """``load_limits[type].cost_per_traveled_hour``: the same per hour of the transition's
    travel (with ``travel_duration_multiple``)."""
    # -- visit types (issue 15) --
    extra_visit_duration_for_visit_type: Mapping[str, float] = field(default_factory=dict)
    """Seconds this vehicle spends beyond ``VisitRequest.duration_s`` at a visit of each type
    (summed over the visit's ``visit_types``); see :meth:`visit_duration_s`."""

    @property
    def route_duration_limit(self) -> DurationLimit:
        """The ``route_duration_limit`` fields as one :class:`DurationLimit`."""
        return DurationLimit(
            max_duration_s=self.route_duration_limit_s,
            soft_max_duration_s=self.route_duration_soft_max_s,
            cost_per_hour_after_soft_max=self.route_duration_cost_per_hour_after_soft_max,
            quadratic_soft_max_duration_s=self.route_duration_quadratic_soft_max_s,
            cost_per_square_hour_after_quadratic_soft_max=(
                self.route_duration_cost_per_square_hour_after_quadratic_soft_max
            ),
        )

    def visit_duration_s(self, request: VisitRequest) -> float:
        """How long this vehicle spends at ``request``: its duration plus the extra duration
        of each of its visit types (Google's ``extra_visit_duration_for_visit_type``)."""
        extra = self.extra_visit_duration_for_visit_type
        if not extra or not request.visit_types:
            return request.duration_s
        return request.duration_s + sum(extra.get(t, 0.0) for t in request.visit_types)

    @property
    def has_start(self) -> bool:
        return self.start_location is not None or bool(self.start_tags)

    @property
    def has_end(self) -> bool:
        return self.end_location is not None or bool(self.end_tags)


@dataclass(frozen=True, eq=False)
class DurationDistanceMatrix:
    """Client travel matrix: ``durations_s[i, j]`` and ``distances_m[i, j]`` from source tag i
    to destination tag j. ``vehicle_start_tag`` selects the vehicles that use it (empty: all,
    allowed only for a single matrix)."""

    durations_s: npt.NDArray[np.float64]
    distances_m: npt.NDArray[np.float64]
    vehicle_start_tag: str = ""


class IncompatibilityMode(enum.IntEnum):
    """``ShipmentTypeIncompatibility.IncompatibilityMode`` (values are Google's)."""

    INCOMPATIBILITY_MODE_UNSPECIFIED = 0
    NOT_PERFORMED_BY_SAME_VEHICLE = 1
    """Two shipments of different listed types never share a vehicle."""
    NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY = 2
    """Two shipments of different listed types are never on board together: one must be
    delivered before the other is picked up. A delivery-only shipment is on board from the
    route start until its delivery, a pickup-only one from its pickup until the route end (so
    two pickup-only or two delivery-only shipments never share a vehicle)."""


class RequirementMode(enum.IntEnum):
    """``ShipmentTypeRequirement.RequirementMode`` (values are Google's)."""

    REQUIREMENT_MODE_UNSPECIFIED = 0
    PERFORMED_BY_SAME_VEHICLE = 1
    """A dependent shipment's vehicle performs at least one required shipment."""
    IN_SAME_VEHICLE_AT_PICKUP_TIME = 2
    """At a dependent shipment's pickup, a required shipment is on board (on-board intervals
    as in :attr:`IncompatibilityMode.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY`). A dependent
    shipment without pickup has no pickup time: the rule does not constrain it."""
    IN_SAME_VEHICLE_AT_DELIVERY_TIME = 3
    """Same at a dependent shipment's delivery; a dependent shipment without delivery is not
    constrained."""


@dataclass(frozen=True)
class ShipmentTypeIncompatibility:
    """Shipments whose ``shipment_type`` are two different members of ``types`` are
    incompatible under ``incompatibility_mode``."""

    types: tuple[str, ...] = ()
    incompatibility_mode: IncompatibilityMode = IncompatibilityMode.INCOMPATIBILITY_MODE_UNSPECIFIED


@dataclass(frozen=True)
class ShipmentTypeRequirement:
    """A performed shipment of a type in ``dependent_shipment_types`` needs a shipment of a type
    in ``required_shipment_type_alternatives`` on its vehicle, as ``requirement_mode`` says."""

    required_shipment_type_alternatives: tuple[str, ...] = ()
    dependent_shipment_types: tuple[str, ...] = ()
    requirement_mode: RequirementMode = RequirementMode.REQUIREMENT_MODE_UNSPECIFIED


@dataclass(frozen=True)
class PrecedenceRule:
    """When both shipments are performed, the "second" event (the pickup, or with
    ``second_is_delivery`` the delivery, of shipment ``second_index``) starts at least
    ``offset_duration_s`` (may be negative) after the "first" event starts; on any vehicles."""

    first_index: int
    second_index: int
    first_is_delivery: bool = False
    second_is_delivery: bool = False
    offset_duration_s: float = 0.0


@dataclass(frozen=True)
class TransitionAttributes:
    """Google's ``TransitionAttributes`` (issue 15): extra delay and costs of the transitions
    (source visit or vehicle start → destination visit or vehicle end) it matches. A source
    matches when its tags (``VisitRequest.tags``, ``Vehicle.start_tags``) contain ``src_tag``
    or, with ``excluded_src_tag`` instead, do not contain it; a destination likewise with
    ``VisitRequest.tags`` / ``Vehicle.end_tags``. Several matching attributes add up (delays,
    costs, soft-limit costs)."""

    src_tag: str = ""
    excluded_src_tag: str = ""
    dst_tag: str = ""
    excluded_dst_tag: str = ""
    cost: float = 0.0
    """Cost of each matching transition (``model.transition_attributes.cost``)."""
    cost_per_kilometer: float = 0.0
    """Cost per kilometer travelled in a matching transition
    (``model.transition_attributes.cost_per_kilometer``)."""
    distance_limit_soft_max_m: float | None = None
    """``distance_limit.soft_max_meters`` (only soft limits, as in Google's API): a matching
    transition longer than this costs ``distance_limit_cost_per_kilometer_above_soft_max``
    per kilometer beyond it."""
    distance_limit_cost_per_kilometer_above_soft_max: float | None = None
    delay_s: float = 0.0
    """``delay``: time between the end of the source visit and the start of the destination,
    on top of travel (the last ``delay_s`` seconds before the destination)."""

    def matches_source(self, tags: tuple[str, ...]) -> bool:
        if self.src_tag:
            return self.src_tag in tags
        return self.excluded_src_tag not in tags

    def matches_destination(self, tags: tuple[str, ...]) -> bool:
        if self.dst_tag:
            return self.dst_tag in tags
        return self.excluded_dst_tag not in tags


# -- re-optimisation during the day: injected solutions (issue 15) ----------------------------


class RelaxationLevel(enum.IntEnum):
    """``InjectedSolutionConstraint.ConstraintRelaxation.Relaxation.Level`` (values are
    Google's), in order of increasing relaxation."""

    LEVEL_UNSPECIFIED = 0
    """Fully constrained: the visit stays on its vehicle, in its place in the sequence (nothing
    inserted before it), at its time."""
    RELAX_VISIT_TIMES_AFTER_THRESHOLD = 1
    """Same vehicle and sequence (nothing inserted before or between such visits), any time."""
    RELAX_VISIT_TIMES_AND_SEQUENCE_AFTER_THRESHOLD = 2
    """Only this vehicle may perform the visit, anywhere in its route, or it is skipped."""
    RELAX_ALL_AFTER_THRESHOLD = 3
    """Completely free."""


@dataclass(frozen=True)
class InjectedVisit:
    """A visit of an injected route (Google's ``ShipmentRoute.Visit``): which alternative of
    which shipment, and when it starts (None: not given)."""

    shipment_index: int = 0
    is_pickup: bool = False
    visit_request_index: int = 0
    start_time: float | None = None
    shipment_label: str = ""
    """Matched against ``Shipment.label`` instead of ``shipment_index`` with
    ``interpret_injected_solutions_using_labels``."""


@dataclass(frozen=True)
class InjectedRoute:
    """A route of an injected solution (Google's ``ShipmentRoute``; only the fields that say
    what the route does: vehicle, visits, times, breaks)."""

    vehicle_index: int = 0
    visits: tuple[InjectedVisit, ...] = ()
    vehicle_start_time: float | None = None
    vehicle_end_time: float | None = None
    vehicle_label: str = ""
    """Matched against ``Vehicle.label`` instead of ``vehicle_index`` with
    ``interpret_injected_solutions_using_labels``."""
    breaks: tuple[tuple[float, float], ...] = ()
    """``(start_time, duration_s)`` of each break taken (kept by ``refresh_details_routes``)."""


@dataclass(frozen=True)
class InjectedSkippedShipment:
    """A skipped shipment of an injected solution (``SkippedShipment.index`` / ``label``)."""

    index: int = 0
    label: str = ""


@dataclass(frozen=True)
class Relaxation:
    """From the first visit that starts at or after ``threshold_time`` (None: any time) and is
    at least the ``threshold_visit_count``-th of its route (0: from the vehicle start), the
    route's constraints relax to ``level``."""

    level: RelaxationLevel = RelaxationLevel.LEVEL_UNSPECIFIED
    threshold_time: float | None = None
    threshold_visit_count: int = 0


@dataclass(frozen=True)
class ConstraintRelaxation:
    """``relaxations`` for the routes of ``vehicle_indices`` (empty: every vehicle no other
    constraint relaxation lists)."""

    relaxations: tuple[Relaxation, ...] = ()
    vehicle_indices: tuple[int, ...] = ()


@dataclass(frozen=True)
class InjectedSolutionConstraint:
    """A previous solution whose routes constrain the new one (Google's
    ``InjectedSolutionConstraint``): visits stay as the relaxation level of each says, the
    ``skipped_shipments`` stay skipped."""

    routes: tuple[InjectedRoute, ...] = ()
    skipped_shipments: tuple[InjectedSkippedShipment, ...] = ()
    constraint_relaxations: tuple[ConstraintRelaxation, ...] = ()


REQUEST_LEVEL_FIELDS = (
    "injected_first_solution_routes",
    "injected_solution_constraint",
    "refresh_details_routes",
    "interpret_injected_solutions_using_labels",
)
"""Fields of :class:`ShipmentModel` that are fields of the request in the API
(``OptimizeToursRequest``): the paths of their violations are relative to the request."""


@dataclass(frozen=True)
class ShipmentModel:
    """A whole routing problem."""

    shipments: tuple[Shipment, ...] = ()
    vehicles: tuple[Vehicle, ...] = ()
    global_start_time: float = DEFAULT_GLOBAL_START_TIME
    global_end_time: float = DEFAULT_GLOBAL_END_TIME
    duration_distance_matrices: tuple[DurationDistanceMatrix, ...] = ()
    duration_distance_matrix_src_tags: tuple[str, ...] = ()
    duration_distance_matrix_dst_tags: tuple[str, ...] = ()
    global_duration_cost_per_hour: float = 0.0
    """Cost per hour of the global duration: from the earliest start to the latest end of the
    used vehicles (reported as ``model.global_duration_cost_per_hour``)."""
    shipment_type_incompatibilities: tuple[ShipmentTypeIncompatibility, ...] = ()
    shipment_type_requirements: tuple[ShipmentTypeRequirement, ...] = ()
    max_active_vehicles: int | None = None
    """At most this many vehicles perform shipments (None: no limit)."""
    precedence_rules: tuple[PrecedenceRule, ...] = ()
    transition_attributes: tuple[TransitionAttributes, ...] = ()
    """Google's ``transition_attributes`` (issue 15): see :class:`TransitionAttributes`."""
    # Re-optimisation (fields of the request in the API, see REQUEST_LEVEL_FIELDS):
    injected_first_solution_routes: tuple[InjectedRoute, ...] = ()
    """A warm start: the search starts from these routes (shipments on none are unperformed
    at first)."""
    injected_solution_constraint: InjectedSolutionConstraint | None = None
    """Routes and skipped shipments the solution keeps, relaxed as their
    ``constraint_relaxations`` say."""
    refresh_details_routes: tuple[InjectedRoute, ...] = ()
    """No search: these routes, as they are, get their times, loads, costs and polylines."""
    interpret_injected_solutions_using_labels: bool = False
    """Injected routes name their vehicles by ``vehicle_label`` and their shipments by
    ``shipment_label`` (skipped shipments by ``label``) instead of by index."""
