"""What the engine returns: routes, skipped shipments and metrics, as plain objects.

Names mirror ``routeopt.v1.OptimizeToursResponse``; units follow the conventions of
:mod:`engine.model` (absolute times in epoch seconds, ``*_s`` seconds, ``*_m`` meters).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "AggregatedMetrics",
    "Break",
    "Metrics",
    "Route",
    "SkipReason",
    "SkipReasonCode",
    "SkippedShipment",
    "Solution",
    "SolveStatus",
    "Transition",
    "VehicleFullness",
    "Visit",
]


class SkipReasonCode(enum.IntEnum):
    """Why a shipment is skipped; values equal ``SkippedShipment.Reason.Code`` in the API."""

    CODE_UNSPECIFIED = 0
    NO_VEHICLE = 1
    DEMAND_EXCEEDS_VEHICLE_CAPACITY = 2
    CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DISTANCE_LIMIT = 3
    CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DURATION_LIMIT = 4
    CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TRAVEL_DURATION_LIMIT = 5
    CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS = 6
    VEHICLE_NOT_ALLOWED = 7
    VEHICLE_IGNORED = 8
    SHIPMENT_IGNORED = 9
    SKIPPED_IN_INJECTED_SOLUTION_CONSTRAINT = 10
    """The injected solution constraint keeps it skipped."""
    VEHICLE_ROUTE_IS_FULLY_SEQUENCE_CONSTRAINED = 11
    """Every vehicle that could serve it has a route the injected solution constraint closes."""
    ZERO_PENALTY_COST = 13
    """Not proven infeasible, and skipping it costs nothing (``penalty_cost`` 0)."""
    UNREACHABLE_LOCATION = 100
    NOT_WORTH_ITS_PENALTY_OR_NO_ROOM = 101
    """Not proven infeasible: the search left it out (serving it next to the other shipments
    costs more than its penalty, or the fleet has no room for it)."""


class SolveStatus(enum.IntEnum):
    """Outcome of a solve; values equal ``SolveInfo.Status`` in the API."""

    SOLVED = 1
    INTERRUPTED = 2
    NOTHING_TO_ROUTE = 3


@dataclass(frozen=True)
class Visit:
    shipment_index: int
    is_pickup: bool
    visit_request_index: int
    start_time: float
    load_demands: Mapping[str, int] = field(default_factory=dict)
    """Load change at this visit per type: negative for a delivery."""
    shipment_label: str = ""
    visit_label: str = ""
    detour_s: float = 0.0
    """Google's ``Visit.detour``: for a delivery of a shipment with a pickup, ``start_time -
    pickup start - (pickup visit duration + travel from the pickup)``; otherwise ``start_time -
    vehicle start time - travel from the vehicle start``."""


@dataclass(frozen=True)
class Transition:
    """Between two consecutive stops; ``total = travel + wait + delay + break``."""

    start_time: float
    travel_duration_s: float
    travel_distance_m: float
    wait_duration_s: float
    break_duration_s: float
    total_duration_s: float
    vehicle_loads: Mapping[str, int] = field(default_factory=dict)
    polyline: str = ""
    delay_duration_s: float = 0.0
    """Google's ``Transition.delay_duration``: the sum of the matching
    ``transition_attributes``' delays, the last seconds before the next stop (issue 15)."""


@dataclass(frozen=True)
class Break:
    start_time: float
    duration_s: float


@dataclass(frozen=True)
class AggregatedMetrics:
    performed_shipment_count: int = 0
    travel_duration_s: float = 0.0
    wait_duration_s: float = 0.0
    delay_duration_s: float = 0.0
    break_duration_s: float = 0.0
    visit_duration_s: float = 0.0
    total_duration_s: float = 0.0
    travel_distance_m: float = 0.0
    max_loads: Mapping[str, int] = field(default_factory=dict)
    performed_mandatory_shipment_count: int = 0
    """Performed shipments without a ``penalty_cost``."""
    performed_shipment_penalty_cost_sum: float = 0.0
    """Sum of the ``penalty_cost`` of the performed shipments that have one."""
    transition_delay_duration_s: float = 0.0
    """Google's ``delay_duration``: the transitions' delays summed (issue 15). (The engine's
    :attr:`delay_duration_s` is lateness after soft end times, the API's ``late_duration``.)"""


@dataclass(frozen=True)
class VehicleFullness:
    """Google's ``VehicleFullness`` (issue 15): ratios in [0, 1] between a used route's
    metrics and its vehicle's limits; None where the vehicle has no such limit, 1 where the
    limit is 0. ``max_fullness`` is the largest of the others."""

    max_fullness: float | None = None
    distance: float | None = None
    """``travel_distance_m / route_distance_limit.max_meters``."""
    travel_duration: float | None = None
    """``travel_duration_s / travel_duration_limit.max_duration``."""
    active_duration: float | None = None
    """``total_duration_s / route_duration_limit.max_duration``."""
    max_load: float | None = None
    """Largest ``max_loads[type] / load_limits[type]`` over the vehicle's load limits."""
    active_span: float | None = None
    """``(vehicle_end_time - vehicle_start_time) / (latest_vehicle_end_time -
    earliest_vehicle_start_time)`` of the solution."""


@dataclass(frozen=True)
class Route:
    """The route of one vehicle. An unused vehicle has no visits, transitions or times."""

    vehicle_index: int
    vehicle_label: str = ""
    vehicle_start_time: float | None = None
    vehicle_end_time: float | None = None
    visits: tuple[Visit, ...] = ()
    transitions: tuple[Transition, ...] = ()
    breaks: tuple[Break, ...] = ()
    metrics: AggregatedMetrics = field(default_factory=AggregatedMetrics)
    route_costs: Mapping[str, float] = field(default_factory=dict)
    route_total_cost: float = 0.0
    polyline: str = ""
    vehicle_fullness: VehicleFullness = field(default_factory=VehicleFullness)
    """Filled for used routes (issue 15)."""

    @property
    def is_used(self) -> bool:
        """Whether the vehicle travels: it has visits, or ``used_if_route_is_empty``."""
        return self.vehicle_start_time is not None


@dataclass(frozen=True)
class SkipReason:
    code: SkipReasonCode
    example_vehicle_index: int | None = None
    example_exceeded_capacity_type: str = ""


@dataclass(frozen=True)
class SkippedShipment:
    index: int
    label: str = ""
    reasons: tuple[SkipReason, ...] = ()
    penalty_cost: float | None = None
    """Copy of the shipment's ``penalty_cost`` (None: mandatory)."""


@dataclass(frozen=True)
class Metrics:
    aggregated_route_metrics: AggregatedMetrics = field(default_factory=AggregatedMetrics)
    skipped_mandatory_shipment_count: int = 0
    used_vehicle_count: int = 0
    earliest_vehicle_start_time: float | None = None
    latest_vehicle_end_time: float | None = None
    costs: Mapping[str, float] = field(default_factory=dict)
    total_cost: float = 0.0


@dataclass(frozen=True)
class Solution:
    """A solved model: one route per vehicle (in vehicle order) and the skipped shipments."""

    routes: tuple[Route, ...]
    skipped_shipments: tuple[SkippedShipment, ...]
    metrics: Metrics
    status: SolveStatus
    backend: str = ""
    backend_reason: str = ""
    """Why this backend solved the model (``auto``'s choice, or "requested")."""
    solver_processes: int = 1
    """Parallel searches that ran (a portfolio when > 1)."""
    matrix_source: str = ""
    matrix_time_s: float = 0.0
    solve_time_s: float = 0.0
    solver_time_limit_s: float = 0.0
