"""The depot-layout study: demand, candidate depots, fleets, the layouts to compare or the
search, an optional travel matrix, and the options of an evaluation or search.

Costs: a depot's ``opening_cost`` is paid per day of the study; a layout's total cost is the
opening costs plus the routing costs of every day (vehicle fixed costs, distance and time costs,
penalties of skipped optional orders).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from engine import LatLng, SearchMode, TimeWindow
from engine.options import DEFAULT_GEODESIC_METERS_PER_SECOND

__all__ = [
    "SECONDS_PER_DAY",
    "CandidateDepot",
    "Day",
    "Layout",
    "LayoutOptions",
    "LayoutSearch",
    "LayoutStudy",
    "Order",
    "TravelMatrix",
    "VehicleType",
]

SECONDS_PER_DAY = 86400.0
"""The length of a day: a depot's default closing time and the shortest routing horizon."""


@dataclass(frozen=True)
class Order:
    """A delivery: at ``location`` (or at the matrix point ``tag``), ``demands`` per load type,
    hard ``time_windows`` (absolute; soft bounds count as late when exceeded), ``service_s``.
    ``penalty_cost`` None: mandatory."""

    label: str
    location: LatLng | None = None
    tag: str = ""
    demands: Mapping[str, int] = field(default_factory=dict)
    time_windows: tuple[TimeWindow, ...] = ()
    service_s: float = 0.0
    penalty_cost: float | None = None


@dataclass(frozen=True)
class Day:
    """The orders of one day; ``start_time`` (epoch seconds) is the day's midnight, the origin
    of the depots' opening hours."""

    label: str
    orders: tuple[Order, ...]
    start_time: float = 0.0


@dataclass(frozen=True)
class VehicleType:
    """Vehicles of one kind at a depot: ``count`` of them (None: as many as needed)."""

    label: str
    count: int | None = None
    capacities: Mapping[str, int] = field(default_factory=dict)
    fixed_cost: float = 0.0
    cost_per_kilometer: float = 0.0
    cost_per_hour: float = 0.0
    cost_per_traveled_hour: float = 0.0
    max_duration_s: float | None = None
    max_distance_m: float | None = None


@dataclass(frozen=True)
class CandidateDepot:
    """A depot that may be opened. ``capacity``: the most it can ship per day, per load type
    (a type absent: unlimited); ``opening_cost`` per day; open from ``open_s`` to ``close_s``
    seconds after each day's start (vehicles leave and return within); ``fleet`` None: the
    study's default fleet."""

    label: str
    location: LatLng | None = None
    tag: str = ""
    capacity: Mapping[str, int] = field(default_factory=dict)
    opening_cost: float = 0.0
    open_s: float = 0.0
    close_s: float = SECONDS_PER_DAY
    fleet: tuple[VehicleType, ...] | None = None


@dataclass(frozen=True)
class Layout:
    """A named set of open depots (labels of candidate depots)."""

    label: str
    depots: tuple[str, ...]


@dataclass(frozen=True)
class LayoutSearch:
    """``mode``: ``"exactly"`` k depots, ``"at_most"`` k, or ``"min_cost"`` (any number,
    minimising total cost with opening costs). ``must_open``: depots every layout keeps."""

    mode: Literal["exactly", "at_most", "min_cost"] = "min_cost"
    k: int | None = None
    must_open: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class TravelMatrix:
    """Explicit travel between the points named by ``tags`` (orders' and depots' ``tag``)."""

    tags: tuple[str, ...]
    durations_s: npt.NDArray[np.float64]
    distances_m: npt.NDArray[np.float64]


@dataclass(frozen=True)
class LayoutStudy:
    """The demand per day, the candidate depots, the default ``fleet`` of a depot without its
    own, and what to do: compare ``layouts``, run ``search``, or both. With ``matrix`` every
    order and depot is a point of the matrix (by ``tag``), else a location."""

    days: tuple[Day, ...]
    depots: tuple[CandidateDepot, ...]
    fleet: tuple[VehicleType, ...] = ()
    layouts: tuple[Layout, ...] = ()
    search: LayoutSearch | None = None
    matrix: TravelMatrix | None = None
    label: str = ""

    def depot_index(self) -> dict[str, int]:
        """Depot label → its index in :attr:`depots`."""
        return {d.label: j for j, d in enumerate(self.depots)}

    def fleet_of(self, depot: CandidateDepot) -> tuple[VehicleType, ...]:
        """The vehicle types of ``depot``: its own fleet, else the study's default."""
        return self.fleet if depot.fleet is None else depot.fleet


@dataclass(frozen=True)
class LayoutOptions:
    """How hard to work. ``time_limit_s``: routing budget of one layout evaluation (all days);
    ``final_time_limit_s``: the budget of the best layout's last evaluation in a search (None:
    no extra evaluation); ``workers``: layouts evaluated at once (processes);
    ``route_cost_factors``: the ``λ`` values of the screening estimate; ``candidates``: layouts
    the screening proposes for routing; ``neighbours``: layouts routed per local-search step."""

    time_limit_s: float = 10.0
    final_time_limit_s: float | None = None
    backend: str = "auto"
    seed: int = 0
    workers: int = 1
    solver_processes: int = 1
    """Searches side by side in each routing solve (``SolveOptions.solver_processes``)."""
    geodesic_meters_per_second: float = DEFAULT_GEODESIC_METERS_PER_SECOND
    use_geodesic_distances: bool = False
    route_cost_factors: tuple[float, ...] = (0.25, 0.5, 1.0)
    candidates: int = 4
    neighbours: int = 3
    max_local_search_steps: int = 10
    screening_time_limit_s: float = 10.0
    search_mode: SearchMode = SearchMode.CONSUME_ALL_AVAILABLE_TIME
    populate_polylines: bool = False
    """Draw each route's road geometry (road travel only), for maps."""
