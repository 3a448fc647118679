"""Depot layout planning: evaluate and compare sets of open depots, or search for the best one.

A :class:`LayoutStudy` holds the demand (orders of one or several days), candidate depots
(location, capacity per load type, opening cost per day, opening hours, fleet) and either
explicit :class:`Layout` s to compare or a :class:`LayoutSearch`.

**Evaluating a layout** (:func:`evaluate_layout`) routes each day separately with
:func:`engine.solve` (travel over the road network, the study's matrix, or geodesic) and sums
the days. Depot capacity is not a routing-model feature, so the evaluator enforces it around the
router, exactly:

1. one multi-depot model with the fleets of all open depots (each vehicle starts and ends at its
   depot) lets the router choose which depot serves each order;
2. when that solution loads some depot beyond its capacity (only possible when a depot's
   capacity is below the day's demand), orders are re-assigned by a generalised assignment model
   (:mod:`planning.backends.ortools_mip` with the open set fixed) that keeps each order at
   its routed depot where possible and otherwise moves it to the nearest depot with room; then
   each depot's orders are routed on their own (one model per depot, its fleet only).

Either way every routed model and its solution are kept (:attr:`LayoutEvaluation.parts`), so
each route can be checked independently, and the loads per depot are recomputed from them.

**Search** (:func:`search_layouts`): a screening model — capacitated facility location on the
depot–order travel matrix, each order costing an estimate of its share of the routes (``λ`` ×
its star (depot → order → depot) cost + the vehicle fixed cost × its share of a vehicle's
capacity) — is solved for a few values of ``λ``, each time enumerating the next-best layouts
with no-good cuts. The distinct layouts found are evaluated with full routing (in parallel
processes when ``workers`` > 1), then a local search over layouts (open, close or swap a depot;
neighbours ranked by the screening model with the layout fixed) routes the most promising
neighbours of the best layout until none improves it; the best layout is finally routed again
with the longer ``final_time_limit_s`` budget.

Costs: a depot's ``opening_cost`` is paid per day of the study; a layout's total cost is the
opening costs plus the routing costs of every day (vehicle fixed costs, distance and time costs,
penalties of skipped optional orders).
"""

from __future__ import annotations

import math
import multiprocessing
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from engine.errors import FieldViolation, InvalidModelError
from engine.model import (
    DurationDistanceMatrix,
    LatLng,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from engine.options import DEFAULT_GEODESIC_METERS_PER_SECOND, SearchMode, SolveOptions
from engine.roads import RoadContext
from engine.solution import Solution
from engine.solve import solve
from engine.validation import validate_model
from geodata.geo import haversine_matrix_m
from planning.backends.ortools_mip import FacilityDay, solve_facility_location

__all__ = [
    "CandidateDepot",
    "Day",
    "Layout",
    "LayoutEvaluation",
    "LayoutKpis",
    "LayoutOptions",
    "LayoutSearch",
    "LayoutStudy",
    "Order",
    "RoutedPart",
    "SearchResult",
    "SolveFn",
    "TravelMatrix",
    "VehicleType",
    "evaluate_layout",
    "evaluate_layouts",
    "road_violations",
    "search_layouts",
    "validate_study",
]

SECONDS_PER_DAY = 86400.0

SolveFn = Callable[[ShipmentModel, SolveOptions, RoadContext | None], Solution]
"""How a layout evaluation routes one model: :func:`engine.solve` in this process by default;
the server passes one that runs the solve on its solve executor (worker processes)."""


def _solve_here(model: ShipmentModel, options: SolveOptions, roads: RoadContext | None) -> Solution:
    return solve(model, options, roads=roads)


# -- the study ------------------------------------------------------------------------------


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
    days: tuple[Day, ...]
    depots: tuple[CandidateDepot, ...]
    fleet: tuple[VehicleType, ...] = ()
    layouts: tuple[Layout, ...] = ()
    search: LayoutSearch | None = None
    matrix: TravelMatrix | None = None
    label: str = ""

    def depot_index(self) -> dict[str, int]:
        return {d.label: j for j, d in enumerate(self.depots)}

    def fleet_of(self, depot: CandidateDepot) -> tuple[VehicleType, ...]:
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


# -- validation ------------------------------------------------------------------------------


def _check_point(path: str, location: LatLng | None, tag: str, study: LayoutStudy) -> list[str]:
    problems = []
    if study.matrix is not None:
        if tag not in study.matrix.tags:
            problems.append(f"{path}.tag: {tag!r} is not a tag of the study's matrix")
    elif location is None:
        problems.append(f"{path}.location: required (the study has no travel matrix)")
    elif not (-90 <= location.latitude <= 90 and -180 <= location.longitude <= 180):
        problems.append(f"{path}.location: latitude/longitude out of range")
    return problems


def validate_study(study: LayoutStudy) -> list[FieldViolation]:
    """Every problem of ``study``, with field paths named as in the API's
    ``DepotLayoutStudy`` (``depots[2].capacity.weight``, ``days[0].orders[3].location``)."""
    out: list[str] = []
    if not study.depots:
        out.append("depots: at least one candidate depot is required")
    if not study.days:
        out.append("days: at least one day is required")
    labels = [d.label for d in study.depots]
    for j, depot in enumerate(study.depots):
        path = f"depots[{j}]"
        if not depot.label:
            out.append(f"{path}.label: required")
        elif depot.label in labels[:j]:
            out.append(f"{path}.label: {depot.label!r} is the label of an earlier depot")
        out += _check_point(path, depot.location, depot.tag, study)
        for name, value in depot.capacity.items():
            if value < 0:
                out.append(f"{path}.capacity.{name}: must not be negative")
        if depot.opening_cost < 0:
            out.append(f"{path}.opening_cost: must not be negative")
        if not 0 <= depot.open_s < depot.close_s:
            out.append(f"{path}.closes_at: opening hours must satisfy 0 <= opens_at < closes_at")
        fleet = study.fleet_of(depot)
        if not fleet:
            out.append(f"{path}.fleet: the depot has no vehicles (and the study no default fleet)")
        fleet_path = "fleet" if depot.fleet is None else f"{path}.fleet"
        if depot.fleet is not None:
            out += _check_fleet(fleet_path, depot.fleet)
    out += _check_fleet("fleet", study.fleet)
    known = set(labels)
    for t, day in enumerate(study.days):
        if not day.orders:
            out.append(f"days[{t}].orders: a day needs at least one order")
        for i, order in enumerate(day.orders):
            path = f"days[{t}].orders[{i}]"
            out += _check_point(path, order.location, order.tag, study)
            for name, value in order.demands.items():
                if value < 0:
                    out.append(f"{path}.demands.{name}: must not be negative")
            if order.service_s < 0:
                out.append(f"{path}.service_duration: must not be negative")
            if order.penalty_cost is not None and order.penalty_cost < 0:
                out.append(f"{path}.penalty_cost: must not be negative")
            for w, window in enumerate(order.time_windows):
                if (
                    window.start_time is not None
                    and window.end_time is not None
                    and window.start_time > window.end_time
                ):
                    out.append(f"{path}.time_windows[{w}]: start must not be after end")
    for k, layout in enumerate(study.layouts):
        if not layout.depots:
            out.append(f"layouts[{k}].depots: a layout opens at least one depot")
        for m, name in enumerate(layout.depots):
            if name not in known:
                out.append(f"layouts[{k}].depots[{m}]: unknown depot {name!r}")
        if layout.label in [x.label for x in study.layouts[:k]]:
            out.append(f"layouts[{k}].label: {layout.label!r} is the label of an earlier layout")
    if study.search is not None:
        s = study.search
        if s.mode not in ("exactly", "at_most", "min_cost"):
            out.append(f"search.mode: unknown mode {s.mode!r} (exactly, at_most, min_cost)")
        if s.mode in ("exactly", "at_most") and (s.k is None or not 1 <= s.k <= len(labels)):
            out.append(f"search.k: must be between 1 and {len(labels)} for mode {s.mode}")
        for m, name in enumerate(s.must_open):
            if name not in known:
                out.append(f"search.must_open[{m}]: unknown depot {name!r}")
    if study.matrix is not None:
        n = len(study.matrix.tags)
        for name in ("durations_s", "distances_m"):
            a = getattr(study.matrix, name)
            if a.shape != (n, n):
                out.append(f"matrix.{name}: must be {n}×{n} (one row and column per tag)")
            elif not np.all(np.isfinite(a) & (a >= 0)):
                out.append(f"matrix.{name}: entries must be finite and non-negative")
    problems = [FieldViolation(*p.split(": ", 1)) for p in out]
    if not problems:  # the orders as the router sees them: windows, soft bounds, durations
        problems = _order_violations(study)
    return problems


_SHIPMENT_FIELD = re.compile(r"shipments\[(\d+)\](?:\.deliveries\[0\])?(?:\.(.*))?")
_ORDER_FIELDS = {
    "arrival_location": "location",
    "duration": "service_duration",
    "load_demands": "demands",
    "tags": "tag",
}


def _order_violations(study: LayoutStudy) -> list[FieldViolation]:
    """The engine's own validation of each day's orders, with study paths."""
    out: list[FieldViolation] = []
    for t, day in enumerate(study.days):
        model, _ = _build_model(study, day, [], range(len(day.orders)))
        for v in validate_model(model):
            match = _SHIPMENT_FIELD.fullmatch(v.field)
            if match is None:
                continue  # about the (empty) fleet of the probe model
            rest = match.group(2) or ""
            head, _, tail = rest.partition(".")
            head = (
                _ORDER_FIELDS.get(head.split("[")[0], head.split("[")[0])
                + head[len(head.split("[")[0]) :]
            )
            field = f"days[{t}].orders[{match.group(1)}]" + (
                f".{head}{'.' + tail if tail else ''}" if rest else ""
            )
            out.append(FieldViolation(field, v.description))
    return out


def _check_fleet(path: str, fleet: Sequence[VehicleType]) -> list[str]:
    out = []
    for v, vt in enumerate(fleet):
        p = f"{path}[{v}]"
        if vt.count is not None and vt.count < 0:
            out.append(f"{p}.count: must not be negative")
        for name, value in vt.capacities.items():
            if value < 0:
                out.append(f"{p}.capacities.{name}: must not be negative")
        for name in ("fixed_cost", "cost_per_kilometer", "cost_per_hour", "cost_per_traveled_hour"):
            if getattr(vt, name) < 0:
                out.append(f"{p}.{name}: must not be negative")
        for name, field_name in (
            ("max_duration_s", "max_duration"),
            ("max_distance_m", "max_distance_meters"),
        ):
            value = getattr(vt, name)
            if value is not None and not value > 0:
                out.append(f"{p}.{field_name}: must be positive")
    return out


def road_violations(study: LayoutStudy, roads: RoadContext) -> list[FieldViolation]:
    """Depots and orders farther from the road network than the server allows."""
    if study.matrix is not None:
        return []
    paths: list[str] = []
    points: list[LatLng] = []
    for j, depot in enumerate(study.depots):
        if depot.location is not None:
            paths.append(f"depots[{j}].location")
            points.append(depot.location)
    for t, day in enumerate(study.days):
        for i, order in enumerate(day.orders):
            if order.location is not None:
                paths.append(f"days[{t}].orders[{i}].location")
                points.append(order.location)
    if not points:
        return []
    snaps = roads.snap([p.latitude for p in points], [p.longitude for p in points])
    return roads.off_road_violations(paths, snaps, range(len(points)))


def _check(study: LayoutStudy, roads: RoadContext | None = None) -> None:
    problems = validate_study(study)
    if not problems and roads is not None:
        problems = road_violations(study, roads)
    if problems:
        raise InvalidModelError(tuple(problems))


# -- results --------------------------------------------------------------------------------


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
        return self.capacity_respected and self.kpis.mandatory_orders_unserved == 0


@dataclass(frozen=True)
class SearchResult:
    best: LayoutEvaluation | None
    """None only when ``should_stop`` stopped the search before any layout was routed."""
    evaluations: tuple[LayoutEvaluation, ...]
    """Every routed layout, best first (the best layout's final evaluation replaces its
    earlier one)."""
    screened: tuple[tuple[Layout, float], ...]
    """Layouts the screening model proposed, with their screening cost (at the middle λ)."""
    time_s: float


# -- travel between depots and orders ----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _DayTravel:
    out_s: npt.NDArray[np.float64]  # [depot, order]
    out_m: npt.NDArray[np.float64]
    back_s: npt.NDArray[np.float64]  # [order, depot]
    back_m: npt.NDArray[np.float64]


def _day_travel(
    study: LayoutStudy, day: Day, roads: RoadContext | None, options: LayoutOptions
) -> _DayTravel:
    depots, orders = study.depots, day.orders
    if study.matrix is not None:
        index = {t: k for k, t in enumerate(study.matrix.tags)}
        dj = [index[d.tag] for d in depots]
        oi = [index[o.tag] for o in orders]
        m = study.matrix
        return _DayTravel(
            m.durations_s[np.ix_(dj, oi)],
            m.distances_m[np.ix_(dj, oi)],
            m.durations_s[np.ix_(oi, dj)],
            m.distances_m[np.ix_(oi, dj)],
        )
    points = [d.location for d in depots] + [o.location for o in orders]
    lat = np.array([p.latitude for p in points if p is not None])
    lng = np.array([p.longitude for p in points if p is not None])
    nd = len(depots)
    if roads is not None and not options.use_geodesic_distances:
        d_snap = roads.snap(lat[:nd], lng[:nd])
        o_snap = roads.snap(lat[nd:], lng[nd:])
        out = roads.matrix(d_snap, o_snap)
        back = roads.matrix(o_snap, d_snap)
        return _DayTravel(out.durations_s, out.distances_m, back.durations_s, back.distances_m)
    meters = haversine_matrix_m(lat, lng)
    speed = options.geodesic_meters_per_second
    out_m = meters[:nd, nd:]
    back_m = meters[nd:, :nd]
    return _DayTravel(out_m / speed, out_m, back_m / speed, back_m)


def _arc_cost(
    vt: VehicleType, meters: npt.NDArray[np.float64], seconds: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """What ``vt`` pays to drive ``meters`` in ``seconds``."""
    rate_h = vt.cost_per_traveled_hour + vt.cost_per_hour
    cost = vt.cost_per_kilometer * meters / 1000.0 + rate_h * seconds / 3600.0
    if vt.cost_per_kilometer == 0 and rate_h == 0:
        cost = cost + 1e-6 * seconds  # no travel cost: still prefer near depots
    out: npt.NDArray[np.float64] = np.asarray(cost, dtype=np.float64)
    return out


def _load_types(study: LayoutStudy) -> tuple[str, ...]:
    names: set[str] = set()
    for depot in study.depots:
        names.update(depot.capacity)
    for day in study.days:
        for order in day.orders:
            names.update(order.demands)
    return tuple(sorted(names))


def _capacities(study: LayoutStudy, types: Sequence[str]) -> npt.NDArray[np.float64]:
    return np.array(
        [[float(d.capacity.get(name, math.inf)) for name in types] for d in study.depots],
        dtype=np.float64,
    ).reshape(len(study.depots), len(types))


def _demands(day: Day, types: Sequence[str]) -> npt.NDArray[np.float64]:
    return np.array(
        [[float(o.demands.get(name, 0)) for name in types] for o in day.orders], dtype=np.float64
    ).reshape(len(day.orders), len(types))


def _penalties(day: Day) -> npt.NDArray[np.float64]:
    return np.array(
        [math.nan if o.penalty_cost is None else o.penalty_cost for o in day.orders],
        dtype=np.float64,
    )


def _estimate_costs(
    study: LayoutStudy, day: Day, travel: _DayTravel, factor: float
) -> npt.NDArray[np.float64]:
    """``[order, depot]``: λ × star cost + the fixed cost × the order's share of a vehicle,
    with the depot's cheapest vehicle type that can carry the order (``inf``: none can, or no
    road leads there and back)."""
    n_orders, n_depots = len(day.orders), len(study.depots)
    out = np.full((n_orders, n_depots), math.inf)
    for j, depot in enumerate(study.depots):
        for vt in study.fleet_of(depot):
            if vt.count == 0:
                continue
            star = _arc_cost(vt, travel.out_m[j], travel.out_s[j]) + _arc_cost(
                vt, travel.back_m[:, j], travel.back_s[:, j]
            )
            share = np.zeros(n_orders)
            for i, order in enumerate(day.orders):
                ratios = [0.0]
                for name, q in order.demands.items():
                    cap = vt.capacities.get(name)
                    if cap is None or q == 0:
                        continue
                    ratios.append(q / cap if cap > 0 else math.inf)
                share[i] = max(ratios)
            with np.errstate(invalid="ignore"):
                cost = factor * star + vt.fixed_cost * share
            cost[~np.isfinite(cost) | (share > 1.0)] = math.inf
            out[:, j] = np.minimum(out[:, j], cost)
    return out


# -- routing one layout ------------------------------------------------------------


def _vehicle_count(vt: VehicleType, day: Day, orders: Sequence[int]) -> int:
    """``vt.count``, or for an unlimited type a count that cannot bind: one per order, or, on
    capacity alone (no windows, no limits), twice the capacity bound plus two."""
    if vt.count is not None:
        return vt.count
    n = len(orders)
    tight = (
        vt.max_duration_s is not None
        or vt.max_distance_m is not None
        or any(day.orders[i].time_windows for i in orders)
    )
    if tight or not vt.capacities:
        return max(n, 1)
    need = 1
    for name, cap in vt.capacities.items():
        total = sum(day.orders[i].demands.get(name, 0) for i in orders)
        if cap > 0:
            need = max(need, math.ceil(total / cap))
    return max(1, min(n, 2 * need + 2))


def _build_model(
    study: LayoutStudy, day: Day, depots: Sequence[int], orders: Sequence[int]
) -> tuple[ShipmentModel, tuple[str, ...]]:
    def visit(location: LatLng | None, tag: str) -> dict[str, object]:
        if study.matrix is not None:
            return {"tags": (tag,)}
        return {"arrival_location": location}

    shipments = tuple(
        Shipment(
            deliveries=(
                VisitRequest(
                    time_windows=day.orders[i].time_windows,
                    duration_s=day.orders[i].service_s,
                    label=day.orders[i].label,
                    **visit(day.orders[i].location, day.orders[i].tag),  # type: ignore[arg-type]
                ),
            ),
            load_demands=dict(day.orders[i].demands),
            penalty_cost=day.orders[i].penalty_cost,
            label=day.orders[i].label,
        )
        for i in orders
    )
    vehicles: list[Vehicle] = []
    vehicle_depot: list[str] = []
    for j in depots:
        depot = study.depots[j]
        hours = (TimeWindow(day.start_time + depot.open_s, day.start_time + depot.close_s),)
        place: dict[str, object] = (
            {"start_tags": (depot.tag,), "end_tags": (depot.tag,)}
            if study.matrix is not None
            else {"start_location": depot.location, "end_location": depot.location}
        )
        for vt in study.fleet_of(depot):
            for k in range(_vehicle_count(vt, day, orders)):
                vehicles.append(
                    Vehicle(
                        start_time_windows=hours,
                        end_time_windows=hours,
                        load_limits=dict(vt.capacities),
                        cost_per_hour=vt.cost_per_hour,
                        cost_per_traveled_hour=vt.cost_per_traveled_hour,
                        cost_per_kilometer=vt.cost_per_kilometer,
                        fixed_cost=vt.fixed_cost,
                        route_duration_limit_s=vt.max_duration_s,
                        route_distance_limit_m=vt.max_distance_m,
                        label=f"{depot.label}/{vt.label}#{k + 1}",
                        **place,  # type: ignore[arg-type]
                    )
                )
                vehicle_depot.append(depot.label)
    starts = [day.start_time] + [
        w.start_time for i in orders for w in day.orders[i].time_windows if w.start_time is not None
    ]
    ends = [day.start_time + max([SECONDS_PER_DAY, *(study.depots[j].close_s for j in depots)])] + [
        w.end_time for i in orders for w in day.orders[i].time_windows if w.end_time is not None
    ]
    matrix: dict[str, object] = {}
    if study.matrix is not None:
        matrix = {
            "duration_distance_matrices": (
                DurationDistanceMatrix(study.matrix.durations_s, study.matrix.distances_m),
            ),
            "duration_distance_matrix_src_tags": study.matrix.tags,
            "duration_distance_matrix_dst_tags": study.matrix.tags,
        }
    model = ShipmentModel(
        shipments=shipments,
        vehicles=tuple(vehicles),
        global_start_time=min(starts),
        global_end_time=max(ends),
        **matrix,  # type: ignore[arg-type]
    )
    return model, tuple(vehicle_depot)


def _solve(
    model: ShipmentModel,
    options: LayoutOptions,
    time_limit_s: float,
    roads: RoadContext | None,
    seed: int,
    solve_fn: SolveFn,
) -> Solution:
    return solve_fn(
        model,
        SolveOptions(
            time_limit_s=max(time_limit_s, 0.2),
            search_mode=options.search_mode,
            backend=options.backend,
            seed=seed,
            geodesic_meters_per_second=options.geodesic_meters_per_second,
            use_geodesic_distances=options.use_geodesic_distances,
            populate_polylines=options.populate_polylines and roads is not None,
        ),
        roads,
    )


def _part_loads(study: LayoutStudy, day: Day, part: RoutedPart) -> dict[str, dict[str, int]]:
    loads: dict[str, dict[str, int]] = {}
    for route in part.solution.routes:
        depot = part.vehicle_depot[route.vehicle_index]
        for v in route.visits:
            order = day.orders[part.order_index[v.shipment_index]]
            into = loads.setdefault(depot, {})
            for name, q in order.demands.items():
                into[name] = into.get(name, 0) + q
    return loads


def _over_capacity(study: LayoutStudy, loads: Mapping[str, Mapping[str, int]]) -> bool:
    by_label = {d.label: d for d in study.depots}
    return any(
        q > by_label[depot].capacity.get(name, math.inf)
        for depot, per in loads.items()
        for name, q in per.items()
    )


def _route_day(
    study: LayoutStudy,
    t: int,
    open_idx: Sequence[int],
    travel: _DayTravel,
    options: LayoutOptions,
    budget_s: float,
    roads: RoadContext | None,
    solve_fn: SolveFn,
) -> tuple[list[RoutedPart], str]:
    day = study.days[t]
    all_orders = list(range(len(day.orders)))
    labels = tuple(study.depots[j].label for j in open_idx)
    types = _load_types(study)
    demand = _demands(day, types).sum(axis=0)
    caps = _capacities(study, types)[list(open_idx)]
    tight = bool(np.any(caps < demand[None, :]))
    model, vehicle_depot = _build_model(study, day, open_idx, all_orders)
    first = _solve(
        model, options, budget_s * (0.6 if tight else 1.0), roads, options.seed, solve_fn
    )
    free = RoutedPart(t, labels, model, first, tuple(all_orders), vehicle_depot)
    loads = _part_loads(study, day, free)
    if not _over_capacity(study, loads):
        if not tight:
            return [free], "multi-depot"
        second = _solve(model, options, budget_s * 0.4, roads, options.seed + 1, solve_fn)
        if second.metrics.total_cost < first.metrics.total_cost - 1e-9:
            again = replace(free, solution=second)
            if not _over_capacity(study, _part_loads(study, day, again)):
                return [again], "multi-depot"
        return [free], "multi-depot"
    # Re-assign: keep each order at its routed depot where possible (module docstring).
    routed_at = np.full(len(day.orders), -1)
    for route in first.routes:
        j = study.depot_index()[vehicle_depot[route.vehicle_index]]
        for v in route.visits:
            routed_at[v.shipment_index] = j
    star = _estimate_costs(study, day, travel, 1.0)
    mask = np.full(len(study.depots), math.inf)
    mask[list(open_idx)] = 0.0
    finite = star[np.isfinite(star)]
    move_penalty = 0.1 * float(np.median(finite)) if finite.size else 0.0
    costs = star + mask[None, :]
    for i, j in enumerate(routed_at):
        if j >= 0:
            keep = star[i, j]
            costs[i] = np.maximum(costs[i] - keep, 0.0) + move_penalty
            costs[i, j] = 0.0
    result = solve_facility_location(
        [0.0] * len(study.depots),
        _capacities(study, types),
        [FacilityDay(_demands(day, types), costs, _penalties(day))],
        fixed_open=frozenset(open_idx),
        time_limit_s=options.screening_time_limit_s,
    )
    if result is None:  # depot capacity short of the day's demand: keep the router's answer
        return [free], "multi-depot (capacity short)"
    assigned = result.assignment[0]
    parts: list[RoutedPart] = []
    remaining = budget_s * 0.4
    for j in open_idx:
        mine = [i for i in all_orders if assigned[i] == j]
        if not mine:
            continue
        sub, sub_depots = _build_model(study, day, [j], mine)
        share = remaining * len(mine) / max(len(all_orders), 1)
        sol = _solve(sub, options, share, roads, options.seed, solve_fn)
        parts.append(RoutedPart(t, (study.depots[j].label,), sub, sol, tuple(mine), sub_depots))
    unassigned = [i for i in all_orders if assigned[i] < 0]
    if unassigned:  # optional orders the assignment left out: a model without vehicles
        sub, sub_depots = _build_model(study, day, [], unassigned)
        sol = _solve(sub, options, 0.2, roads, options.seed, solve_fn)
        parts.append(RoutedPart(t, (), sub, sol, tuple(unassigned), sub_depots))
    return parts, "assigned"


def _late(order: Order, start: float) -> bool:
    return any(
        w.soft_end_time is not None
        and start > w.soft_end_time + 1e-6
        and (w.start_time is None or w.start_time <= start)
        and (w.end_time is None or start <= w.end_time)
        for w in order.time_windows
    )


def _kpis(
    study: LayoutStudy,
    open_idx: Sequence[int],
    parts: Sequence[RoutedPart],
    travels: Sequence[_DayTravel],
) -> tuple[LayoutKpis, tuple[tuple[str, ...], ...], tuple[dict[str, dict[str, int]], ...]]:
    index = study.depot_index()
    opening = sum(study.depots[j].opening_cost for j in open_idx) * len(study.days)
    routing = fixed = penalty = 0.0
    vehicles = 0
    meters = seconds = 0.0
    late = 0
    depot_m: list[float] = []
    delivered: dict[str, float] = {}
    capacity: dict[str, float] = {}
    assignment = [[""] * len(day.orders) for day in study.days]
    loads: list[dict[str, dict[str, int]]] = [{} for _ in study.days]
    for part in parts:
        day = study.days[part.day]
        costs = part.solution.metrics.costs
        routing += part.solution.metrics.total_cost
        fixed += costs.get("model.vehicles.fixed_cost", 0.0)
        penalty += costs.get("model.shipments.penalty_cost", 0.0)
        for depot, per in _part_loads(study, day, part).items():
            into = loads[part.day].setdefault(depot, {})
            for name, q in per.items():
                into[name] = into.get(name, 0) + q
        for route in part.solution.routes:
            if not route.is_used:
                continue
            vehicles += 1
            meters += route.metrics.travel_distance_m
            if route.vehicle_start_time is not None and route.vehicle_end_time is not None:
                seconds += route.vehicle_end_time - route.vehicle_start_time
            depot = part.vehicle_depot[route.vehicle_index]
            for name, cap in part.model.vehicles[route.vehicle_index].load_limits.items():
                capacity[name] = capacity.get(name, 0.0) + cap
            for v in route.visits:
                i = part.order_index[v.shipment_index]
                order = day.orders[i]
                assignment[part.day][i] = depot
                late += _late(order, v.start_time)
                depot_m.append(float(travels[part.day].out_m[index[depot], i]))
                for name, q in order.demands.items():
                    delivered[name] = delivered.get(name, 0.0) + q
    n_orders = sum(len(day.orders) for day in study.days)
    served = sum(1 for day in assignment for d in day if d)
    ratios = [delivered.get(name, 0.0) / cap for name, cap in capacity.items() if cap > 0]
    total = opening + routing
    kpis = LayoutKpis(
        total_cost=total,
        opening_cost=opening,
        routing_cost=routing,
        vehicle_fixed_cost=fixed,
        travel_cost=routing - fixed - penalty,
        penalty_cost=penalty,
        vehicles_used=vehicles,
        distance_km=meters / 1000.0,
        driver_hours=seconds / 3600.0,
        orders=n_orders,
        orders_served=served,
        orders_late=late,
        orders_unserved=n_orders - served,
        mandatory_orders_unserved=sum(
            1
            for t, day in enumerate(study.days)
            for i, order in enumerate(day.orders)
            if order.penalty_cost is None and not assignment[t][i]
        ),
        mean_depot_distance_km=float(np.mean(depot_m)) / 1000.0 if depot_m else 0.0,
        max_depot_distance_km=float(np.max(depot_m)) / 1000.0 if depot_m else 0.0,
        load_utilisation=float(np.mean(ratios)) if ratios else 0.0,
        cost_per_order=total / served if served else math.inf,
        days=len(study.days),
    )
    return kpis, tuple(tuple(a) for a in assignment), tuple(loads)


def evaluate_layout(
    study: LayoutStudy,
    layout: Layout,
    options: LayoutOptions | None = None,
    *,
    roads: RoadContext | None = None,
    time_limit_s: float | None = None,
    solve_fn: SolveFn | None = None,
) -> LayoutEvaluation:
    """Route every day of ``study`` from the depots of ``layout`` (module docstring) within
    ``time_limit_s`` (default ``options.time_limit_s``), split over the days by order count."""
    options = options or LayoutOptions()
    _check(study, None if options.use_geodesic_distances else roads)
    started = time.monotonic()
    index = study.depot_index()
    unknown = [name for name in layout.depots if name not in index]
    if unknown or not layout.depots:
        raise InvalidModelError(
            (FieldViolation("layout.depots", f"unknown or no depots: {unknown}"),)
        )
    open_idx = sorted({index[name] for name in layout.depots})
    budget = options.time_limit_s if time_limit_s is None else time_limit_s
    n_orders = sum(len(day.orders) for day in study.days)
    travels = [_day_travel(study, day, roads, options) for day in study.days]
    parts: list[RoutedPart] = []
    strategies: list[str] = []
    for t, day in enumerate(study.days):
        share = budget * len(day.orders) / max(n_orders, 1)
        day_parts, strategy = _route_day(
            study, t, open_idx, travels[t], options, share, roads, solve_fn or _solve_here
        )
        parts += day_parts
        strategies.append(strategy)
    kpis, assignment, loads = _kpis(study, open_idx, parts, travels)
    respected = not any(_over_capacity(study, day_loads) for day_loads in loads)
    return LayoutEvaluation(
        layout=layout,
        kpis=kpis,
        parts=tuple(parts),
        assignment=assignment,
        depot_loads=loads,
        capacity_respected=respected,
        strategy=tuple(strategies),
        time_s=time.monotonic() - started,
    )


# -- several layouts at once ------------------------------------------------------------

_POOL_ROADS: RoadContext | None = None
"""The road network of the evaluation pool: set before the pool forks, inherited by it."""


def _pool_evaluate(
    study: LayoutStudy, layout: Layout, options: LayoutOptions, time_limit_s: float | None
) -> LayoutEvaluation:
    return evaluate_layout(study, layout, options, roads=_POOL_ROADS, time_limit_s=time_limit_s)


def evaluate_layouts(
    study: LayoutStudy,
    layouts: Sequence[Layout],
    options: LayoutOptions | None = None,
    *,
    roads: RoadContext | None = None,
    time_limit_s: float | None = None,
    on_done: Callable[[LayoutEvaluation], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    solve_fn: SolveFn | None = None,
) -> list[LayoutEvaluation]:
    """Evaluate ``layouts`` (``options.workers`` at once, in forked processes that share the
    road network); results in the order of ``layouts``. ``on_done`` is called as each one
    finishes; once ``should_stop`` returns True no further layout starts (those not started
    are left out of the result). With ``solve_fn`` (solves run elsewhere, e.g. on the
    server's executor) the layouts are evaluated in threads instead of processes."""
    options = options or LayoutOptions()
    _check(study, None if options.use_geodesic_distances else roads)
    if options.workers <= 1 or len(layouts) <= 1:
        out = []
        for layout in layouts:
            if should_stop is not None and should_stop():
                break
            ev = evaluate_layout(
                study, layout, options, roads=roads, time_limit_s=time_limit_s, solve_fn=solve_fn
            )
            if on_done is not None:
                on_done(ev)
            out.append(ev)
        return out
    global _POOL_ROADS
    _POOL_ROADS = roads
    results: dict[int, LayoutEvaluation] = {}
    pool: Executor
    if solve_fn is not None:
        pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="layout")
    else:
        context = multiprocessing.get_context("fork")
        pool = ProcessPoolExecutor(max_workers=options.workers, mp_context=context)
    with pool:
        pending: dict[Future[LayoutEvaluation], int] = {}
        queue = list(enumerate(layouts))
        while queue or pending:
            while queue and len(pending) < options.workers:
                if should_stop is not None and should_stop():
                    queue.clear()
                    break
                k, layout = queue.pop(0)
                if solve_fn is not None:
                    future = pool.submit(
                        evaluate_layout, study, layout, options, roads=roads,
                        time_limit_s=time_limit_s, solve_fn=solve_fn,
                    )  # fmt: skip
                else:
                    future = pool.submit(_pool_evaluate, study, layout, options, time_limit_s)
                pending[future] = k
            if not pending:
                break
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            done = finished.pop()
            k = pending.pop(done)
            results[k] = done.result()
            if on_done is not None:
                on_done(results[k])
    _POOL_ROADS = None
    return [results[k] for k in sorted(results)]


# -- search --------------------------------------------------------------------------------


@dataclass
class _Screening:
    study: LayoutStudy
    travels: list[_DayTravel]
    types: tuple[str, ...]
    caps: npt.NDArray[np.float64]
    min_open: int
    max_open: int
    must_open: frozenset[int]
    time_limit_s: float
    cache: dict[float, list[FacilityDay]] = field(default_factory=dict)

    def days(self, factor: float) -> list[FacilityDay]:
        if factor not in self.cache:
            self.cache[factor] = [
                FacilityDay(
                    _demands(day, self.types),
                    _estimate_costs(self.study, day, travel, factor),
                    _penalties(day),
                )
                for day, travel in zip(self.study.days, self.travels, strict=True)
            ]
        return self.cache[factor]

    def best(self, factor: float, exclude: Sequence[frozenset[int]] = ()) -> frozenset[int] | None:
        result = solve_facility_location(
            [d.opening_cost for d in self.study.depots],
            self.caps,
            self.days(factor),
            min_open=self.min_open,
            max_open=self.max_open,
            must_open=self.must_open,
            exclude=exclude,
            time_limit_s=self.time_limit_s,
        )
        return None if result is None else result.open

    def cost(self, factor: float, layout: frozenset[int]) -> float:
        result = solve_facility_location(
            [d.opening_cost for d in self.study.depots],
            self.caps,
            self.days(factor),
            fixed_open=layout,
            time_limit_s=self.time_limit_s,
        )
        return math.inf if result is None else result.objective


def _layout_of(study: LayoutStudy, open_set: frozenset[int]) -> Layout:
    names = tuple(study.depots[j].label for j in sorted(open_set))
    return Layout("+".join(names), names)


def _key(ev: LayoutEvaluation) -> tuple[bool, int, float]:
    """Best first: depot capacities respected, fewest unserved mandatory orders, lowest cost
    (penalties of unserved optional orders included)."""
    return (not ev.capacity_respected, ev.kpis.mandatory_orders_unserved, ev.kpis.total_cost)


def search_layouts(
    study: LayoutStudy,
    options: LayoutOptions | None = None,
    *,
    roads: RoadContext | None = None,
    time_budget_s: float | None = None,
    on_done: Callable[[LayoutEvaluation], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    solve_fn: SolveFn | None = None,
) -> SearchResult:
    """Search the layouts allowed by ``study.search`` (module docstring). ``time_budget_s``
    bounds the local search: no step starts unless it and the final evaluation fit."""
    options = options or LayoutOptions()
    _check(study, None if options.use_geodesic_distances else roads)
    if study.search is None:
        raise InvalidModelError((FieldViolation("search", "the study has no search"),))
    started = time.monotonic()
    spec = study.search
    n = len(study.depots)
    index = study.depot_index()
    must = frozenset(index[name] for name in spec.must_open)
    k = spec.k if spec.k is not None else n
    lo, hi = (k, k) if spec.mode == "exactly" else (1, k if spec.mode == "at_most" else n)
    travels = [_day_travel(study, day, roads, options) for day in study.days]
    types = _load_types(study)
    screening = _Screening(
        study, travels, types, _capacities(study, types), lo, hi, must,
        options.screening_time_limit_s,
    )  # fmt: skip
    factors = options.route_cost_factors
    middle = factors[len(factors) // 2]
    found: list[frozenset[int]] = []
    for factor in factors:
        layout = screening.best(factor)
        if layout is not None and layout not in found:
            found.append(layout)
    while len(found) < options.candidates:
        layout = screening.best(middle, exclude=found)
        if layout is None:
            break
        found.append(layout)
    if not found:
        raise InvalidModelError(
            (FieldViolation("depots", "no layout allowed by the search can serve the demand"),)
        )
    found = found[: max(options.candidates, 1)]
    screened = tuple((_layout_of(study, s), screening.cost(middle, s)) for s in found)
    evaluated: dict[frozenset[int], LayoutEvaluation] = {}

    def run(sets: Sequence[frozenset[int]]) -> None:
        layouts = [_layout_of(study, s) for s in sets]
        for s, ev in zip(
            sets,
            evaluate_layouts(
                study,
                layouts,
                options,
                roads=roads,
                on_done=on_done,
                should_stop=should_stop,
                solve_fn=solve_fn,
            ),
            strict=False,
        ):
            evaluated[s] = replace(ev, screening_cost=screening.cost(middle, s))

    run(found)
    if not evaluated:  # stopped before the first layout
        return SearchResult(None, (), screened, time.monotonic() - started)
    final_s = options.final_time_limit_s or 0.0
    step_s = options.time_limit_s * math.ceil(options.neighbours / max(options.workers, 1))

    def time_left() -> bool:
        if should_stop is not None and should_stop():
            return False
        if time_budget_s is None:
            return True
        return time.monotonic() - started + step_s + final_s <= time_budget_s

    for _ in range(options.max_local_search_steps):
        if not time_left():
            break
        best_set = min(evaluated, key=lambda s: _key(evaluated[s]))
        neighbours = _neighbours(best_set, n, lo, hi, must) - set(evaluated)
        ranked = sorted(neighbours, key=lambda s: (screening.cost(middle, s), sorted(s)))
        ranked = [s for s in ranked if math.isfinite(screening.cost(middle, s))]
        if not ranked:
            break
        before = _key(evaluated[best_set])
        run(ranked[: options.neighbours])
        if min(_key(ev) for ev in evaluated.values()) >= before:
            break
    best_set = min(evaluated, key=lambda s: _key(evaluated[s]))
    if options.final_time_limit_s and not (should_stop is not None and should_stop()):
        final = evaluate_layout(
            study, _layout_of(study, best_set), options, roads=roads,
            time_limit_s=options.final_time_limit_s, solve_fn=solve_fn,
        )  # fmt: skip
        final = replace(
            final, screening_cost=evaluated[best_set].screening_cost, time_s=final.time_s
        )
        if _key(final) < _key(evaluated[best_set]):
            evaluated[best_set] = final
            if on_done is not None:
                on_done(final)
    ranked_evals = sorted(evaluated.values(), key=_key)
    return SearchResult(
        best=ranked_evals[0],
        evaluations=tuple(ranked_evals),
        screened=screened,
        time_s=time.monotonic() - started,
    )


def _neighbours(
    current: frozenset[int], n: int, lo: int, hi: int, must: frozenset[int]
) -> set[frozenset[int]]:
    out: set[frozenset[int]] = set()
    closed = [j for j in range(n) if j not in current]
    removable = [j for j in current if j not in must]
    for j in closed:
        if len(current) + 1 <= hi:
            out.add(current | {j})
        for r in removable:
            out.add((current - {r}) | {j})
    for r in removable:
        if len(current) - 1 >= max(lo, 1):
            out.add(current - {r})
    return out
