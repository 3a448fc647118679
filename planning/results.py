"""What an evaluation or a search returns: the routed parts of a layout, its KPIs, the
evaluation of one layout and the result of a search."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine import ShipmentModel, Solution
from planning.study import Layout

__all__ = [
    "LayoutEvaluation",
    "LayoutKpis",
    "OnDone",
    "RoutedPart",
    "SearchResult",
    "ShouldStop",
    "rank_key",
]


@dataclass(frozen=True)
class RoutedPart:
    """One routed model of a layout evaluation: a day, the depots whose vehicles it has, the
    model and its solution. ``order_index[s]``: the day's order behind shipment s;
    ``vehicle_depot[v]``: the depot of vehicle v."""

    day: int
    depots: tuple[str, ...]
    model: ShipmentModel
    solution: Solution
    order_index: tuple[int, ...]
    vehicle_depot: tuple[str, ...]


@dataclass(frozen=True)
class LayoutKpis:
    """The key figures of a layout, summed over the study's days."""

    total_cost: float
    opening_cost: float
    routing_cost: float
    vehicle_fixed_cost: float
    travel_cost: float
    """Distance and time costs of the routes (everything but fixed costs and penalties)."""
    penalty_cost: float
    vehicles_used: int
    distance_km: float
    driver_hours: float
    orders: int
    orders_served: int
    orders_late: int
    orders_unserved: int
    mandatory_orders_unserved: int
    """Unserved orders without a penalty cost: a layout with any is not feasible."""
    mean_depot_distance_km: float
    max_depot_distance_km: float
    load_utilisation: float
    """Load delivered / capacity of the used vehicles, averaged over the load types."""
    cost_per_order: float
    days: int


@dataclass(frozen=True)
class LayoutEvaluation:
    """One layout routed on every day of the study: its KPIs, every routed model with its
    solution (``parts``), where each order went, the depot loads and how each day was routed."""

    layout: Layout
    kpis: LayoutKpis
    parts: tuple[RoutedPart, ...]
    assignment: tuple[tuple[str, ...], ...]
    """Per day, per order: the depot serving it ('' unserved)."""
    depot_loads: tuple[Mapping[str, Mapping[str, int]], ...]
    """Per day: depot → load type → load shipped."""
    capacity_respected: bool
    strategy: tuple[str, ...]
    """Per day: ``multi-depot`` (the router chose the depots) or ``assigned`` (re-assigned to
    respect depot capacity, then routed per depot)."""
    time_s: float
    screening_cost: float | None = None

    @property
    def feasible(self) -> bool:
        """Depot capacities respected and every mandatory order served."""
        return self.capacity_respected and self.kpis.mandatory_orders_unserved == 0


@dataclass(frozen=True)
class SearchResult:
    """The layouts a search routed, best first, and those its screening proposed."""

    best: LayoutEvaluation | None
    """None only when ``should_stop`` stopped the search before any layout was routed."""
    evaluations: tuple[LayoutEvaluation, ...]
    """Every routed layout, best first (the best layout's final evaluation replaces its
    earlier one)."""
    screened: tuple[tuple[Layout, float], ...]
    """Layouts the screening model proposed, with their screening cost (at the middle λ)."""
    time_s: float


OnDone = Callable[[LayoutEvaluation], None]
"""Called with each layout evaluation as it finishes (progress, streaming)."""

ShouldStop = Callable[[], bool]
"""Polled before each layout starts: True stops the work (cancellation)."""


def rank_key(ev: LayoutEvaluation) -> tuple[bool, int, float]:
    """Sort key, best first: depot capacities respected, fewest unserved mandatory orders,
    lowest cost (penalties of unserved optional orders included)."""
    return (not ev.capacity_respected, ev.kpis.mandatory_orders_unserved, ev.kpis.total_cost)
