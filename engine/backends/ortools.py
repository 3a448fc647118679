"""Google OR-Tools routing backend. The only module of the project that imports ortools.

The integer problem maps onto the routing library as follows:

- nodes: the stops of :mod:`engine.travel` (visit requests, then each vehicle's start and end);
- a shipment's pickup (delivery) alternatives form a disjunction with max cardinality 1; a
  pickup-and-delivery shipment links both disjunctions with ``AddPickupAndDeliverySets``;
  optional shipments carry their scaled ``penalty_cost``, mandatory ones a penalty far above any
  route cost, so a solution always exists and an unservable mandatory shipment is reported;
- "time" dimension: transit = visit duration at the origin + travel (vehicle specific through
  ``travel_duration_multiple``), slack = waiting and breaks; hard windows as ranges with removed
  gaps, soft windows as soft cumul bounds, ``cost_per_hour`` as span cost, duration limits as
  span upper bounds, breaks as break intervals;
- one dimension per load type with a limit (see :func:`_add_load_dimension`);
- soft limits: ``route_duration_limit.soft_max_duration`` as a soft span upper bound,
  ``route_distance_limit.soft_max_meters`` and a load type's ``soft_max_load`` as soft upper
  bounds on a route's end distance and its start (delivery-only types) or end (pickup-only
  types) load;
- "distance" dimension only when a vehicle has a (hard or soft) distance limit;
- arc costs per vehicle: ``cost_per_kilometer`` and ``cost_per_traveled_hour``, plus on the arcs
  leaving a visit its ``VisitRequest.cost`` and, leaving a shipment's first visit (pickup, or
  delivery without pickup), the shipment's ``costs_per_vehicle`` entry of that vehicle;
- cargo rules: each shipment type of a rule is a visit type (``SetVisitType``: a pickup adds the
  type to the vehicle, its delivery removes it, a delivery without pickup has it on board from
  the start up to the visit); incompatibilities are hard or temporal type incompatibilities,
  requirements same-vehicle, when-adding (pickup time) or when-removing (delivery time)
  required type alternatives;
- courier rules (pickup-to-delivery time and detour limits): the time dimension's
  pickup-to-delivery limit of each pair, per pickup and delivery alternative;
- ``precedence_rules``: node precedences of the time dimension;
- injected solutions (:mod:`engine.injected`): the search starts from the constraint's routes
  and ``injected_first_solution_routes`` (``RoutesToAssignment`` and a one-solution search); a
  kept visit is performed (``ActiveVar``) on its vehicle (``VehicleVar``), visits whose
  sequence is kept are chained from the vehicle start (``NextVar``, to the end when the route
  is closed), and fixed times fix the time cumuls; a visit relaxed to its vehicle only keeps
  ``VehicleVar`` in {unperformed, vehicle};
- ``max_active_vehicles``: ``SetMaximumNumberOfActiveVehicles``; ``used_if_route_is_empty``:
  ``SetVehicleUsedWhenEmpty``;
  ``global_duration_cost_per_hour``: the time dimension's global span cost;
- driver-hours rules: ``break_rule.frequency_constraints`` as break distance-duration pairs
  of the time dimension, ``travel_duration_limit`` as a "travel" dimension (transit = travel
  time) with hard, soft and quadratic soft span bounds, the quadratic soft part of
  ``route_duration_limit`` as a quadratic soft span bound of the time dimension;
- ``load_limits[type].start_load_interval`` / ``end_load_interval``: ``max`` as upper bounds of
  the load dimension's cumuls at the vehicle's start and end, a positive ``min`` as a soft
  lower bound there (charged to used vehicles only; a route still short is emptied);
- per-visit ``load_demands``: per-stop transits of the load dimensions;
- ``extra_visit_duration_for_visit_type``: per-vehicle visit durations
  (``Problem.service_for``) in the time dimension's transits and the breaks' visit transits;
- ``unloading_policy``: ``SetPickupAndDeliveryPolicyOfVehicle`` (LIFO / FIFO);
- ``transition_attributes`` (:mod:`engine.transitions`): static per-arc additions — the delays
  in the time dimension's transits (breaks may interrupt them, like travel), the costs
  (``cost``, ``cost_per_kilometer``, soft ``distance_limit``) in the arc costs
  (``Problem.arc_cost``);
- ``load_limits[type].cost_per_kilometer`` / ``cost_per_traveled_hour`` (load-dependent costs): a
  "load-cost" dimension whose transit + slack is constrained to each arc's exact scaled cost given
  the load on board (see :meth:`_Builder._add_load_costs`), with span cost coefficient 1; the
  search starts from routes found without them (:meth:`OrToolsBackend._start_without_load_costs`).

Why one module of over 500 lines: the architecture allows exactly one engine module to import
ortools (``tests/test_architecture.py``), and each part here (model building, dimensions and
constraints, search parameters, solution extraction) works on the same routing model and index
manager of :class:`_Builder`. The parts are marked by ``# --`` comments.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from engine.backends.base import Progress, ProgressCallback, RoutePlan, StopCriterion
from engine.errors import FieldViolation, InvalidModelError, NoSolutionError
from engine.injected import CONSTRAINT, resolve
from engine.model import (
    DurationLimit,
    IncompatibilityMode,
    RelaxationLevel,
    RequirementMode,
    TimeWindow,
    UnloadingPolicy,
)
from engine.options import SearchMode
from engine.problem import Problem, Window
from engine.reoptimisation import fixed_range, initial_routes
from engine.units import (
    COST_SCALE,
    MAX_SCALED_COST,
    ceil_int,
    cost_per_hour_to_coefficient,
    cost_per_square_hour_to_coefficient,
    floor_int,
    scale_cost,
)

__all__ = ["OrToolsBackend"]

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_FSS = routing_enums_pb2.FirstSolutionStrategy.Value
_LSM = routing_enums_pb2.LocalSearchMetaheuristic.Value


def _enum_value(enum: Any, name: str, what: str) -> int:
    try:
        return int(enum.Value(name))
    except ValueError:
        known = ", ".join(n for n in enum.keys() if n != "UNSET")  # noqa: SIM118 (protobuf enum)
        raise ValueError(f"unknown {what} {name!r}; known: {known}") from None


class OrToolsBackend:
    """Solves a :class:`Problem` with the OR-Tools routing library.

    ``first_solution_strategy`` / ``local_search_metaheuristic``: OR-Tools enum names that
    override the defaults (see :mod:`benchmarks.search_defaults` for how those were chosen).
    """

    name = "ortools"

    def __init__(
        self,
        first_solution_strategy: str | None = None,
        local_search_metaheuristic: str | None = None,
        solution_limit: int | None = None,
    ) -> None:
        self.first_solution_strategy = first_solution_strategy
        self.local_search_metaheuristic = local_search_metaheuristic
        self.solution_limit = solution_limit
        self.initial_routes: list[list[int]] | None = None
        """Visit stops per vehicle to start the search from (see :meth:`_Builder.run`)."""
        self.initial_outcome: str | None = None
        """After :meth:`solve`: how the search took the initial routes (None: it had none)."""
        if first_solution_strategy:
            _enum_value(_FSS, first_solution_strategy, "first_solution_strategy")
        if local_search_metaheuristic:
            _enum_value(_LSM, local_search_metaheuristic, "local_search_metaheuristic")

    def solve(
        self, problem: Problem, stop: StopCriterion, on_progress: ProgressCallback | None = None
    ) -> list[RoutePlan]:
        built = _Builder(problem, self.first_solution_strategy, self.local_search_metaheuristic)
        routes = self.initial_routes
        if routes is None:
            routes = initial_routes(problem, built.injected)
        if built.injected.has_constraint:  # also under a warm start (engine.residual)
            built.fallback_routes = initial_routes(problem, built.injected, kept_only=True)
        if routes is None and built.has_load_costs:
            routes = self._start_without_load_costs(problem, stop)
        try:
            return built.run(stop, on_progress, self.solution_limit, routes)
        except NoSolutionError as exc:
            if exc.reason == "infeasible" and built.injected.has_constraint:
                raise NoSolutionError(
                    "infeasible",
                    f"the {CONSTRAINT} cannot be kept together with the model's other "
                    "constraints (fixed times, breaks, capacities, limits): relax it "
                    "(constraint_relaxations) or check its routes",
                ) from exc
            raise
        finally:
            self.initial_outcome = built.initial_outcome

    def _start_without_load_costs(
        self, problem: Problem, stop: StopCriterion
    ) -> list[list[int]] | None:
        """Routes to start the exact search of a model with load-dependent costs from: a search
        of the same model without them (same search mode, at most :data:`LOAD_COST_START_SHARE`
        of the time). The exact model's local search checks every move's load costs in
        the constraint solver (its filters do not know them), so inserting every shipment from
        scratch there is slow; from complete routes it only improves them."""
        share = StopCriterion(
            deadline=time.monotonic() + stop.remaining_s() * LOAD_COST_START_SHARE,
            search_mode=stop.search_mode,
            should_stop=stop.should_stop,
        )
        plain = _Builder(problem, self.first_solution_strategy, None, with_load_costs=False)
        try:
            plans = plain.run(share, None)
        except NoSolutionError:
            return None
        if share.interrupted:
            stop.interrupted = True
        return [list(plan.stops) for plan in plans]


LOAD_COST_START_SHARE = 0.25
"""Share of the remaining time the search without load-dependent costs may take to find the
exact search's starting routes (with ``RETURN_FAST`` it stops before, at a local optimum)."""


class _Builder:
    def __init__(
        self,
        problem: Problem,
        first_solution_strategy: str | None,
        local_search_metaheuristic: str | None,
        *,
        with_load_costs: bool = True,
    ) -> None:
        self.p = problem
        self.first_solution_strategy = first_solution_strategy
        self.local_search_metaheuristic = local_search_metaheuristic
        self.model = problem.model
        stops = problem.stops
        n_vehicles = len(self.model.vehicles)
        self.manager = pywrapcp.RoutingIndexManager(
            stops.size,
            n_vehicles,
            [stops.vehicle_start(v) for v in range(n_vehicles)],
            [stops.vehicle_end(v) for v in range(n_vehicles)],
        )
        self.routing = pywrapcp.RoutingModel(self.manager)
        self.solver = self.routing.solver()
        self._matrix_callbacks: dict[object, int] = {}
        self.mandatory_penalty = MAX_SCALED_COST // (len(self.model.shipments) + 2)
        self._add_arc_costs()
        self.time = self._add_time_dimension()
        self._add_load_dimensions()
        self._add_distance_dimension()
        self.has_load_costs = with_load_costs and self._add_load_costs()
        self._pair_of: dict[int, int] = {}
        """Pickup-and-delivery pair index (OR-Tools') of each pair shipment."""
        self._limit_functions: list[Callable[[int, int], int]] = []
        self._add_shipments()
        self._add_pickup_delivery_limits()
        self._add_precedence_rules()
        self._add_type_rules()
        if self.model.max_active_vehicles is not None:
            self.routing.SetMaximumNumberOfActiveVehicles(self.model.max_active_vehicles)
        self.injected = resolve(self.model)
        self.fallback_routes: list[list[int]] | None = None
        """Initial routes to try when OR-Tools rejects the first ones (the constraint's kept
        visits alone)."""
        self.initial_outcome: str | None = None
        """How the search took the initial routes (:meth:`_initial_assignment`; None: none)."""
        self._add_injected_constraint()
        self.breaks = self._add_breaks()
        self._add_driver_hours()
        self._add_unloading_policies()

    # -- helpers -----------------------------------------------------------------------------

    def _register_matrix(self, key: object, matrix: Callable[[], IntArray]) -> int:
        if key not in self._matrix_callbacks:
            values = matrix()
            self._matrix_callbacks[key] = self.routing.RegisterTransitMatrix(values.tolist())
        return self._matrix_callbacks[key]

    def _index(self, stop: int) -> int:
        return int(self.manager.NodeToIndex(stop))

    def _vehicle_stop_indices(self, v: int) -> tuple[int, int]:
        return int(self.routing.Start(v)), int(self.routing.End(v))

    # -- costs -------------------------------------------------------------------------------

    def _visit_costs(self, v: int) -> npt.NDArray[np.float64]:
        """Per stop, the cost of performing it with vehicle ``v``: its ``VisitRequest.cost``
        and, on a shipment's first visit, the shipment's ``costs_per_vehicle`` of ``v``."""
        stops, model = self.p.stops, self.model
        costs = np.zeros(stops.size, dtype=np.float64)
        for i in range(stops.num_visits):
            costs[i] = stops.visit_request(model, i).cost
        for s, shipment in enumerate(model.shipments):
            extra = shipment.cost_for_vehicle(v)
            if extra:
                for i in stops.pickup_stops[s] or stops.delivery_stops[s]:
                    costs[i] += extra
        return costs

    def _add_arc_costs(self) -> None:
        vehicles = self.model.vehicles
        visit_costs = [self._visit_costs(v) for v in range(len(vehicles))]
        no_costs = (
            self.p.free_of_costs
            and not any(c.any() for c in visit_costs)
            and self.model.global_duration_cost_per_hour == 0
        )
        for v, vehicle in enumerate(vehicles):
            k = self.p.travel.vehicle_matrix[v]
            mult = vehicle.travel_duration_multiple
            if no_costs:
                # No vehicle has a travel cost: minimise travel time so routes stay sensible.
                cb = self._register_matrix(("time-cost", k, mult), partial(self.p.travel_s, v))
            else:
                cpk, cpth = vehicle.cost_per_kilometer, vehicle.cost_per_traveled_hour
                leaving = visit_costs[v]

                def arc_cost(v: int = v, leaving: npt.NDArray[np.float64] = leaving) -> IntArray:
                    cost = (self.p.arc_cost(v) + leaving[:, None]) * COST_SCALE
                    return np.minimum(np.rint(cost), MAX_SCALED_COST // 4).astype(np.int64)

                key = ("cost", k, mult, cpk, cpth, leaving.tobytes())
                cb = self._register_matrix(key, arc_cost)
            self.routing.SetArcCostEvaluatorOfVehicle(cb, v)
            if vehicle.fixed_cost > 0:
                self.routing.SetFixedCostOfVehicle(scale_cost(vehicle.fixed_cost), v)
            if vehicle.used_if_route_is_empty:
                self.routing.SetVehicleUsedWhenEmpty(True, v)

    # -- time --------------------------------------------------------------------------------

    def _add_time_dimension(self) -> pywrapcp.RoutingDimension:
        p = self.p
        callbacks = []
        for v, vehicle in enumerate(self.model.vehicles):
            k = p.travel.vehicle_matrix[v]

            def transit(v: int = v) -> IntArray:
                time = p.travel_s(v) + p.service_for(v)[:, None]
                delay = p.delay_s  # transition_attributes' delays (issue 15)
                return time if delay is None else time + delay

            extra = tuple(sorted(vehicle.extra_visit_duration_for_visit_type.items()))
            key = ("time", k, vehicle.travel_duration_multiple, extra)
            callbacks.append(self._register_matrix(key, transit))
        self.routing.AddDimensionWithVehicleTransits(callbacks, p.horizon, p.horizon, False, "time")
        dim = self.routing.GetDimensionOrDie("time")
        stops = p.stops
        g0 = self.model.global_start_time
        for i in range(stops.num_visits):
            visit = stops.visit_request(self.model, i)
            self._apply_windows(dim, self._index(i), p.windows[i], visit.time_windows, g0)
        for v, vehicle in enumerate(self.model.vehicles):
            start, end = self._vehicle_stop_indices(v)
            self._apply_windows(
                dim, start, p.windows[stops.vehicle_start(v)], vehicle.start_time_windows, g0
            )
            self._apply_windows(
                dim, end, p.windows[stops.vehicle_end(v)], vehicle.end_time_windows, g0
            )
            coef = cost_per_hour_to_coefficient(vehicle.cost_per_hour)
            if coef:
                dim.SetSpanCostCoefficientForVehicle(coef, v)
            if vehicle.route_duration_limit_s is not None:
                dim.SetSpanUpperBoundForVehicle(floor_int(vehicle.route_duration_limit_s), v)
            soft, cost = (
                vehicle.route_duration_soft_max_s,
                vehicle.route_duration_cost_per_hour_after_soft_max,
            )
            if soft is not None and cost:
                bound = pywrapcp.BoundCost(floor_int(soft), cost_per_hour_to_coefficient(cost))
                dim.SetSoftSpanUpperBoundForVehicle(bound, v)
            self.routing.AddVariableMinimizedByFinalizer(dim.CumulVar(start))
            self.routing.AddVariableMinimizedByFinalizer(dim.CumulVar(end))
        for i in range(stops.num_visits):
            self.routing.AddVariableMinimizedByFinalizer(dim.CumulVar(self._index(i)))
        global_coef = cost_per_hour_to_coefficient(self.model.global_duration_cost_per_hour)
        if global_coef:
            dim.SetGlobalSpanCostCoefficient(global_coef)
        return dim

    def _apply_windows(
        self,
        dim: pywrapcp.RoutingDimension,
        index: int,
        hard: tuple[Window, ...],
        windows: Sequence[TimeWindow],
        g0: float,
    ) -> None:
        cumul = dim.CumulVar(index)
        if not hard:
            return  # unreachable windows: the pre-check keeps such stops out of every route
        cumul.SetRange(hard[0][0], hard[-1][1])
        for (_, hi), (lo, _) in itertools.pairwise(hard):
            if lo > hi + 1:
                cumul.RemoveInterval(hi + 1, lo - 1)
        if len(windows) != 1:
            return
        w = windows[0]
        if w.soft_start_time is not None:
            coef = cost_per_hour_to_coefficient(w.cost_per_hour_before_soft_start_time or 0.0)
            if coef:
                bound = max(0, ceil_int(w.soft_start_time - g0))
                dim.SetCumulVarSoftLowerBound(index, bound, coef)
        if w.soft_end_time is not None:
            coef = cost_per_hour_to_coefficient(w.cost_per_hour_after_soft_end_time or 0.0)
            if coef:
                bound = max(0, floor_int(w.soft_end_time - g0))
                dim.SetCumulVarSoftUpperBound(index, bound, coef)

    # -- loads -------------------------------------------------------------------------------

    def _add_load_dimensions(self) -> None:
        limited = {
            t
            for v in self.model.vehicles
            for t in (*v.load_limits, *v.soft_load_limits, *v.start_load_intervals)
        }
        limited.update(t for v in self.model.vehicles for t in v.end_load_intervals)
        limited.update(  # issue 15: load-dependent costs need the load on board
            t
            for v in self.model.vehicles
            for t in (*v.load_costs_per_kilometer, *v.load_costs_per_traveled_hour)
        )
        demanded = {t for s in self.model.shipments for t in s.demanded_types}
        for load_type in sorted(limited & demanded):
            self._add_load_dimension(load_type)
        self._add_load_intervals()

    def _add_load_dimension(self, load_type: str) -> None:
        """Load on board = start load + changes. Delivery-only goods are on board from the start,
        so with delivery-only shipments the start load is free and the end load must equal the
        goods left on board: the pickup-only goods collected plus what the pairs picked up
        beyond what they delivered (per-visit demands, issue 15), zero without either. Each
        stop changes the load by its shipment's plus its visit request's demand."""
        p = self.p
        stops = p.stops
        change = np.zeros(stops.size, dtype=np.int64)
        left_on_board = np.zeros(stops.size, dtype=np.int64)
        has_delivery_only = has_left_on_board = False
        total = 0
        for s, shipment in enumerate(self.model.shipments):
            if load_type not in shipment.demanded_types or not p.routable[s]:
                continue
            total += shipment.max_visit_demand(load_type)
            amounts = {}
            for is_pickup, visit_stops in (
                (True, stops.pickup_stops[s]),
                (False, stops.delivery_stops[s]),
            ):
                for stop in visit_stops:
                    k = int(stops.alternative[stop])
                    amounts[stop] = shipment.visit_demands(is_pickup, k).get(load_type, 0)
            # a pair whose pickup and delivery amounts may differ leaves the difference on board
            is_pair = bool(stops.pickup_stops[s]) and bool(stops.delivery_stops[s])
            unbalanced = is_pair and len(set(amounts.values())) > 1
            for stop in stops.pickup_stops[s]:
                change[stop] = amounts[stop]
                if not stops.delivery_stops[s] or unbalanced:
                    left_on_board[stop] = amounts[stop]
                    has_left_on_board = has_left_on_board or amounts[stop] > 0
            for stop in stops.delivery_stops[s]:
                change[stop] = -amounts[stop]
                if unbalanced:
                    left_on_board[stop] = -amounts[stop]
                if not stops.pickup_stops[s]:
                    has_delivery_only = True
        if total == 0:
            return
        caps = [int(min(v.load_limits.get(load_type, total), total)) for v in self.model.vehicles]
        cb = self.routing.RegisterUnaryTransitVector(change.tolist())
        name = f"load:{load_type}"
        self.routing.AddDimensionWithVehicleCapacity(cb, 0, caps, not has_delivery_only, name)
        dim = self.routing.GetDimensionOrDie(name)
        for v, vehicle in enumerate(self.model.vehicles):
            soft = vehicle.soft_load_limits.get(load_type)
            if soft is not None and soft.cost_per_unit_above_soft_max > 0:
                # The type is pickup-only or delivery-only throughout (validation): the most
                # on board is at the end (pickups) or at the start (deliveries).
                at = self.routing.Start(v) if has_delivery_only else self.routing.End(v)
                coef = max(1, round(soft.cost_per_unit_above_soft_max * COST_SCALE))
                dim.SetCumulVarSoftUpperBound(at, soft.soft_max_load, coef)
        if not has_delivery_only:
            return
        n_vehicles = len(self.model.vehicles)
        if not has_left_on_board:
            for v in range(n_vehicles):
                dim.CumulVar(self.routing.End(v)).SetValue(0)
            return
        # never negative: a pair's delivery removes at most what its pickup added (validation)
        aux_cb = self.routing.RegisterUnaryTransitVector(left_on_board.tolist())
        aux_name = f"pickup-only:{load_type}"
        self.routing.AddDimension(aux_cb, 0, total, True, aux_name)
        aux = self.routing.GetDimensionOrDie(aux_name)
        for v in range(n_vehicles):
            end = self.routing.End(v)
            self.solver.Add(dim.CumulVar(end) == aux.CumulVar(end))

    def _add_load_intervals(self) -> None:
        """``load_limits[type].start_load_interval.max`` / ``end_load_interval.max`` (issue 15):
        upper bounds of the load dimension's cumul at the vehicle's start and end (an unused
        vehicle carries 0). A type no routable shipment demands has no dimension: its load is
        0, within any maximum. Positive minima: :meth:`_add_load_minima`."""
        self._add_load_minima()
        dimensions = set(self.routing.GetAllDimensionNames())
        for v, vehicle in enumerate(self.model.vehicles):
            for intervals, at in (
                (vehicle.start_load_intervals, self.routing.Start(v)),
                (vehicle.end_load_intervals, self.routing.End(v)),
            ):
                for load_type, interval in sorted(intervals.items()):
                    name = f"load:{load_type}"
                    if interval.max_load is None or name not in dimensions:
                        continue
                    cumul = self.routing.GetDimensionOrDie(name).CumulVar(at)
                    cumul.SetMax(min(int(cumul.Max()), interval.max_load))

    def _add_load_minima(self) -> None:
        """Positive ``start_load_interval.min`` / ``end_load_interval.min`` (issue 15): they bind
        only a route with visits (an unused vehicle carries nothing), so a hard bound of the
        cumul would force the vehicle into use, and ``cumul >= min * active`` is invisible to
        the routing filters: first solutions that open a route with one small shipment fail
        and local search, inserting one shipment at a time, never reaches a route that must
        leave loaded. So the minimum guides the search as a soft lower bound of the cumul
        (``coefficient`` per unit short, far above route costs), which OR-Tools charges only
        to used vehicles: opening a route costs the units it is short, and each unit loaded
        brings that down. The bound stays hard: a route still short of a minimum when the
        search stops is emptied by :meth:`_extract` (:meth:`_short_of_minimum`). A vehicle
        ``used_if_route_is_empty`` gets the hard constraint ``cumul >= min * active``
        instead, and one the ``injected_solution_constraint`` keeps in use (a kept visit that
        must be performed) the hard bound ``cumul >= min``."""
        self._minima: dict[int, list[tuple[str, bool, int]]] = {}
        for v, vehicle in enumerate(self.model.vehicles):
            for at_start, intervals in (
                (True, vehicle.start_load_intervals),
                (False, vehicle.end_load_intervals),
            ):
                for load_type, interval in sorted(intervals.items()):
                    if interval.min_load > 0:
                        self._minima.setdefault(v, []).append(
                            (load_type, at_start, interval.min_load)
                        )
        if not self._minima:
            return
        total = sum(m for minima in self._minima.values() for _, _, m in minima)
        # per unit short: as much as a mandatory shipment's penalty where the sum of all
        # shortfalls stays far from int64 (with the penalties and the route costs)
        coefficient = max(1, min(self.mandatory_penalty, MAX_SCALED_COST // (4 * total + 4)))
        dimensions = set(self.routing.GetAllDimensionNames())
        kept = _vehicles_with_kept_visits(self.p)
        for v, minima in sorted(self._minima.items()):
            vehicle = self.model.vehicles[v]
            for load_type, at_start, minimum in minima:
                name = f"load:{load_type}"
                if name not in dimensions:
                    continue  # nothing routable carries the type: a used route is emptied
                at = self.routing.Start(v) if at_start else self.routing.End(v)
                cumul = self.routing.GetDimensionOrDie(name).CumulVar(at)
                if v in kept:  # the injected solution constraint keeps it in use
                    cumul.SetMin(max(int(cumul.Min()), minimum))
                    continue
                if vehicle.used_if_route_is_empty:
                    active = self.routing.ActiveVehicleVar(v)
                    self.solver.Add(cumul >= active * minimum)
                    continue
                dim = self.routing.GetDimensionOrDie(name)
                dim.SetCumulVarSoftLowerBound(at, minimum, coefficient)

    def _short_of_minimum(self, v: int, stops: Sequence[int]) -> bool:
        """Whether the route ``stops`` of vehicle ``v`` (with visits) starts or ends with less
        of a load type than the vehicle's positive minimum (issue 15)."""
        minima = self._minima.get(v)
        if not minima or not stops:
            return False
        p = self.p
        for load_type, at_start, minimum in minima:
            start = end = 0
            for stop in stops:
                shipment = self.model.shipments[int(p.stops.shipment[stop])]
                is_pickup = bool(p.stops.is_pickup[stop])
                q = shipment.visit_demands(is_pickup, int(p.stops.alternative[stop]))
                amount = q.get(load_type, 0)
                if not shipment.pickups:
                    start += amount  # delivery-only: on board from the start
                else:
                    end += amount if is_pickup else -amount
            if (start if at_start else end) < minimum:
                return True
        return False

    # -- distance ----------------------------------------------------------------------------

    def _add_distance_dimension(self) -> None:
        vehicles = self.model.vehicles
        if all(
            v.route_distance_limit_m is None and v.route_distance_soft_max_m is None
            for v in vehicles
        ):
            return
        big = 1
        callbacks = []
        for v in range(len(vehicles)):
            k = self.p.travel.vehicle_matrix[v]
            matrix = self.p.distance_m(v)
            big = max(big, int(matrix.max(initial=0)) * (self.p.stops.size + 1))
            callbacks.append(self._register_matrix(("distance", k), partial(self.p.distance_m, v)))
        caps = [
            big if v.route_distance_limit_m is None else floor_int(v.route_distance_limit_m)
            for v in vehicles
        ]
        self.routing.AddDimensionWithVehicleTransitAndCapacity(callbacks, 0, caps, True, "distance")
        dim = self.routing.GetDimensionOrDie("distance")
        for v, vehicle in enumerate(vehicles):
            soft = vehicle.route_distance_soft_max_m
            cost = vehicle.route_distance_cost_per_kilometer_above_soft_max
            if soft is not None and cost:
                coef = max(1, round(cost * COST_SCALE / 1000.0))  # per meter
                dim.SetCumulVarSoftUpperBound(self.routing.End(v), floor_int(soft), coef)

    # -- load-dependent costs (issue 15) -----------------------------------------------------

    def _load_cost_rates(self, v: int) -> dict[tuple[str, int], tuple[FloatArray, FloatArray]]:
        """Vehicle ``v``'s load-dependent costs, per (load type, threshold): the scaled cost
        per unit of load below and above the threshold on each arc (stop × stop), its
        ``cost_per_kilometer`` and ``cost_per_traveled_hour`` rates summed. Unreachable legs
        are capped as in :meth:`~engine.problem.Problem.arc_cost`."""
        vehicle = self.model.vehicles[v]
        k = self.p.travel.vehicle_matrix[v]
        cap = float(self.p.unreachable_s)
        hours = np.minimum(self.p.travel.durations_s[k] * vehicle.travel_duration_multiple, cap)
        hours = hours / 3600.0
        km = np.minimum(self.p.travel.distances_m[k], cap * 1000.0) / 1000.0
        rates: dict[tuple[str, int], tuple[FloatArray, FloatArray]] = {}
        for amount, costs in (
            (km, vehicle.load_costs_per_kilometer),
            (hours, vehicle.load_costs_per_traveled_hour),
        ):
            for load_type, cost in sorted(costs.items()):
                key = (load_type, cost.load_threshold)
                below, above = rates.get(key, (np.zeros_like(km), np.zeros_like(km)))
                rates[key] = (
                    below + cost.cost_per_unit_below_threshold * amount * COST_SCALE,
                    above + cost.cost_per_unit_above_threshold * amount * COST_SCALE,
                )
        return rates

    def _add_load_costs(self) -> bool:
        """``load_limits[type].cost_per_kilometer`` / ``cost_per_traveled_hour``: a "load-cost"
        dimension whose transit plus slack at each node is constrained to the scaled cost of
        the arc leaving it, ``cb[i, next] * min(L, T) + ca[i, next] * max(0, L - T)`` summed
        over the vehicle's (type, threshold T) terms, with L the load on that arc (the load
        dimension's cumul plus transit at the node) and cb / ca the per-unit rates of the arc
        rounded to whole cost units. Its span cost coefficient 1 puts the exact sum in the
        objective. The transit is that cost at the least load the arc can carry (what its start
        picks up, what its end delivers), so that the routing filters see part of it.
        (OR-Tools' cumul-dependent transits cannot be registered from Python and depend on a
        dimension's own cumul, not on another's.) True when the model has such costs."""
        routing, manager, solver = self.routing, self.manager, self.solver
        dimensions = set(routing.GetAllDimensionNames())
        n_vehicles = len(self.model.vehicles)
        # Vehicles with the same travel and load costs share their tables (a class).
        class_key: dict[object, int] = {}
        class_of: list[int] = []
        for v, vehicle in enumerate(self.model.vehicles):
            key = (
                self.p.travel.vehicle_matrix[v],
                vehicle.travel_duration_multiple,
                tuple(sorted(vehicle.load_costs_per_kilometer.items())),
                tuple(sorted(vehicle.load_costs_per_traveled_hour.items())),
            )
            class_of.append(class_key.setdefault(key, len(class_key)))
        first = {c: class_of.index(c) for c in range(len(class_key))}
        by_class = [self._load_cost_rates(first[c]) for c in range(len(class_key))]
        groups = sorted(
            {key for rates in by_class for key in rates if f"load:{key[0]}" in dimensions}
        )
        if not groups:
            return False
        size = routing.Size() + n_vehicles
        stop_of = np.array([manager.IndexToNode(j) for j in range(size)], dtype=np.int64)
        n_stops = self.p.stops.size
        lower = [np.zeros((n_stops, n_stops), dtype=np.int64) for _ in by_class]
        terms: list[list[Any]] = [[] for _ in range(routing.Size())]
        for load_type, threshold in groups:
            load = routing.GetDimensionOrDie(f"load:{load_type}")
            tables = [
                tuple(
                    np.minimum(np.rint(rate), MAX_SCALED_COST // 4).astype(np.int64)
                    for rate in rates.get((load_type, threshold), (None, None))
                    if rate is not None
                )
                for rates in by_class
            ]
            # The least load on each arc: what its start picks up, what its end delivers.
            change = np.zeros(n_stops, dtype=np.int64)
            for idx in range(routing.Size()):
                change[stop_of[idx]] = load.GetTransitValue(idx, idx, 0)
            least = np.maximum.outer(np.maximum(change, 0), np.maximum(-change, 0))
            for c, table in enumerate(tables):
                if table:
                    below, above = np.minimum(least, threshold), np.maximum(least - threshold, 0)
                    lower[c] += table[0] * below + table[1] * above
            for idx in range(routing.Size()):
                on_arc = load.CumulVar(idx) + load.FixedTransitVar(idx)
                parts = ((0, solver.Min(on_arc, threshold)), (1, solver.Max(on_arc - threshold, 0)))
                for which, amount in parts:
                    rate = self._arc_rate(idx, stop_of, tables, class_of, which)
                    if rate is not None:
                        terms[idx].append(rate * amount)
        by_class_callback = []
        for matrix in lower:
            np.fill_diagonal(matrix, 0)
            digest = ("load-cost", hashlib.sha1(matrix.tobytes()).hexdigest())
            by_class_callback.append(self._register_matrix(digest, partial(np.asarray, matrix)))
        callbacks = [by_class_callback[c] for c in class_of]
        # Cumuls and slacks up to 2^61 (the bound of the worst-case total cost, engine.bounds):
        # cumul + transit + slack stays below 2^63.
        cap = MAX_SCALED_COST // 2
        routing.AddDimensionWithVehicleTransits(callbacks, cap, cap, True, "load-cost")
        dim = routing.GetDimensionOrDie("load-cost")
        dim.SetSpanCostCoefficientForAllVehicles(1)
        for idx, node_terms in enumerate(terms):
            if node_terms:
                solver.Add(dim.SlackVar(idx) + dim.FixedTransitVar(idx) == solver.Sum(node_terms))
            else:
                dim.SlackVar(idx).SetValue(0)
        return True

    def _arc_rate(
        self,
        idx: int,
        stop_of: IntArray,
        tables: list[tuple[IntArray, ...]],
        class_of: list[int],
        which: int,
    ) -> Any:
        """The rate of the arc leaving index ``idx`` (0 when it is unperformed: its next is
        itself), per vehicle class from ``tables[class][which]`` (stop × stop, empty: no such
        cost; ``class_of[vehicle]``), as an expression of its next (and vehicle); None when
        every rate is 0."""
        routing, solver = self.routing, self.solver
        rows = [
            table[which][stop_of[idx], stop_of].copy()
            if table
            else np.zeros(len(stop_of), np.int64)
            for table in tables
        ]
        for row in rows:
            row[idx] = 0
        if routing.IsStart(idx):
            rows = [rows[class_of[routing.VehicleIndex(idx)]]]
        if not any(row.any() for row in rows):
            return None
        if len({row.tobytes() for row in rows}) == 1:
            return solver.Element(rows[0].tolist(), routing.NextVar(idx))
        size = len(stop_of)
        flat = np.concatenate(rows).tolist()
        vehicle = solver.Max(routing.VehicleVar(idx), 0).Var()
        vehicle_class = solver.Element(class_of, vehicle)
        return solver.Element(flat, (vehicle_class * size + routing.NextVar(idx)).Var())

    # -- shipments ---------------------------------------------------------------------------

    def _add_shipments(self) -> None:
        p = self.p
        stops = p.stops
        n_vehicles = len(self.model.vehicles)
        for s, shipment in enumerate(self.model.shipments):
            pickups = [self._index(i) for i in stops.pickup_stops[s]]
            deliveries = [self._index(i) for i in stops.delivery_stops[s]]
            if not p.routable[s]:
                for index in pickups + deliveries:
                    self.routing.AddDisjunction([index], 0)
                    self.solver.Add(self.routing.ActiveVar(index) == 0)
                continue
            if shipment.penalty_cost is None:
                penalty = self.mandatory_penalty
            else:
                penalty = min(scale_cost(shipment.penalty_cost), self.mandatory_penalty - 1)
            if pickups and deliveries:
                dp = self.routing.AddDisjunction(pickups, penalty, 1)
                dd = self.routing.AddDisjunction(deliveries, 0, 1)
                self.routing.AddPickupAndDeliverySets(dp, dd)
                self._pair_of[s] = len(self._pair_of)
            else:
                self.routing.AddDisjunction(pickups or deliveries, penalty, 1)
            allowed = list(p.allowed_vehicles[s])
            if len(allowed) < n_vehicles:
                for index in pickups + deliveries:
                    # -1: unperformed. (SetAllowedVehiclesForIndex's Span argument is not
                    # usable from Python in OR-Tools 9.15.)
                    self.routing.VehicleVar(index).SetValues([-1, *allowed])

    # -- courier rules -----------------------------------------------------------------------

    def _add_pickup_delivery_limits(self) -> None:
        """``pickup_to_delivery_{relative,absolute}_detour_limit`` and ``_time_limit`` as the
        time dimension's pickup-to-delivery limit of each pair (OR-Tools
        ``SetPickupToDeliveryLimitFunctionForPair``, per pickup and delivery alternative)."""
        model, p = self.model, self.p
        limited = [
            s
            for s, sh in enumerate(model.shipments)
            if s in self._pair_of
            and (
                sh.pickup_to_delivery_time_limit_s is not None
                or sh.pickup_to_delivery_relative_detour_limit is not None
                or sh.pickup_to_delivery_absolute_detour_limit_s is not None
            )
        ]
        if not limited:
            return
        profiles = {
            (p.travel.vehicle_matrix[v], vehicle.travel_duration_multiple)
            for v, vehicle in enumerate(model.vehicles)
        }
        detours = [
            s
            for s in limited
            if model.shipments[s].pickup_to_delivery_relative_detour_limit is not None
            or model.shipments[s].pickup_to_delivery_absolute_detour_limit_s is not None
        ]
        if detours and len(profiles) > 1:
            raise InvalidModelError(
                tuple(
                    FieldViolation(
                        f"shipments[{s}].pickup_to_delivery_relative_detour_limit",
                        "detour limits need travel durations that do not depend on the vehicle "
                        "(one travel matrix and one travel_duration_multiple for all vehicles)",
                    )
                    for s in detours[:1]
                )
            )
        k, multiple = min(profiles)
        durations = p.travel.durations_s[k]
        stops = p.stops
        for s in limited:
            shipment = model.shipments[s]
            pickups, deliveries = stops.pickup_stops[s], stops.delivery_stops[s]
            table = [
                [
                    _whole_seconds(
                        shipment.pickup_to_delivery_limit_s(float(durations[a, b]) * multiple),
                        p.horizon,
                    )
                    for b in deliveries
                ]
                for a in pickups
            ]

            def limit(pi: int, di: int, table: list[list[int]] = table) -> int:
                return table[pi][di]

            self._limit_functions.append(limit)  # OR-Tools keeps a pointer to it
            self.time.SetPickupToDeliveryLimitFunctionForPair(limit, self._pair_of[s])

    def _add_precedence_rules(self) -> None:
        """``precedence_rules`` as node precedences of the time dimension (OR-Tools
        ``AddNodePrecedence``: when both are performed, cumul(second) >= cumul(first) +
        offset), for every pair of alternatives of the two events."""
        stops = self.p.stops
        for rule in self.model.precedence_rules:
            if not (self.p.routable[rule.first_index] and self.p.routable[rule.second_index]):
                continue  # a shipment that is never performed: the rule does not apply
            firsts = (
                stops.delivery_stops[rule.first_index]
                if rule.first_is_delivery
                else stops.pickup_stops[rule.first_index]
            )
            seconds = (
                stops.delivery_stops[rule.second_index]
                if rule.second_is_delivery
                else stops.pickup_stops[rule.second_index]
            )
            offset = ceil_int(rule.offset_duration_s)
            for a, b in itertools.product(firsts, seconds):
                self.time.AddNodePrecedence(self._index(a), self._index(b), offset)

    # -- cargo rules -------------------------------------------------------------------------

    def _add_type_rules(self) -> None:
        """Shipment types as visit types, and the model's incompatibilities and requirements
        as OR-Tools type regulations (see the module docstring)."""
        model, routing = self.model, self.routing
        incompatibilities = model.shipment_type_incompatibilities
        requirements = model.shipment_type_requirements
        if not incompatibilities and not requirements:
            return
        named: set[str] = set()
        for inc in incompatibilities:
            named.update(inc.types)
        for req in requirements:
            named.update(req.required_shipment_type_alternatives)
            named.update(req.dependent_shipment_types)
        type_id = {name: k for k, name in enumerate(sorted(named))}
        stops = self.p.stops
        visited: set[int] = set()  # the type ids that some visit has
        for s, shipment in enumerate(model.shipments):
            t = type_id.get(shipment.shipment_type)
            if t is None or not self.p.routable[s]:
                continue
            visited.add(t)
            pickups, deliveries = stops.pickup_stops[s], stops.delivery_stops[s]
            for i in pickups:
                routing.SetVisitType(self._index(i), t, routing.TYPE_ADDED_TO_VEHICLE)
            policy = (
                routing.ADDED_TYPE_REMOVED_FROM_VEHICLE
                if pickups
                else routing.TYPE_ON_VEHICLE_UP_TO_VISIT
            )
            for i in deliveries:
                routing.SetVisitType(self._index(i), t, policy)
        for inc in incompatibilities:
            temporal = (
                inc.incompatibility_mode == IncompatibilityMode.NOT_IN_SAME_VEHICLE_SIMULTANEOUSLY
            )
            add = (
                routing.AddTemporalTypeIncompatibility
                if temporal
                else routing.AddHardTypeIncompatibility
            )
            for a, b in itertools.combinations(sorted(set(inc.types)), 2):
                # OR-Tools sizes its per-type tables by the visit types it was given: an
                # incompatibility naming a type no visit has writes past them (heap corruption,
                # found by the fuzz suite). Such a pair constrains nothing anyway.
                if type_id[a] in visited and type_id[b] in visited:
                    add(type_id[a], type_id[b])
        if requirements:
            self._add_type_requirements()

    def _add_type_requirements(self) -> None:
        """Requirements as constraints on vehicle and position variables (``rank``: a visit's
        position on its route). OR-Tools' own required-type alternatives take an
        ``absl::flat_hash_set`` that its Python wrapper (9.15) cannot build, so each dependent
        visit gets: active => some required shipment on the same vehicle (and, for the pickup
        and delivery time modes, on board at that visit: picked up before, delivered after)."""
        model, routing, solver = self.model, self.routing, self.solver
        stops = self.p.stops
        one = routing.RegisterUnaryTransitVector([1] * stops.size)
        routing.AddDimension(one, 0, stops.size + 1, True, "rank")
        rank = routing.GetDimensionOrDie("rank")
        of_type: dict[str, list[int]] = {}
        for s, shipment in enumerate(model.shipments):
            if self.p.routable[s] and shipment.shipment_type:
                of_type.setdefault(shipment.shipment_type, []).append(s)

        def nodes(stop_list: Sequence[int]) -> list[int]:
            return [self._index(i) for i in stop_list]

        def same_vehicle(a: int, b: int) -> Any:
            return solver.IsEqualVar(routing.VehicleVar(a), routing.VehicleVar(b))

        def before(a: int, b: int) -> Any:
            return solver.IsLessVar(rank.CumulVar(a), rank.CumulVar(b))

        for req in model.shipment_type_requirements:
            required = sorted(
                {
                    r
                    for name in req.required_shipment_type_alternatives
                    for r in of_type.get(name, [])
                }
            )
            mode = req.requirement_mode
            for name in sorted(set(req.dependent_shipment_types)):
                for s in of_type.get(name, []):
                    if mode == RequirementMode.PERFORMED_BY_SAME_VEHICLE:
                        visits = nodes(stops.pickup_stops[s] + stops.delivery_stops[s])
                    elif mode == RequirementMode.IN_SAME_VEHICLE_AT_PICKUP_TIME:
                        visits = nodes(stops.pickup_stops[s])
                    else:
                        visits = nodes(stops.delivery_stops[s])
                    for i in visits:
                        options: list[Any] = []
                        for r in required:
                            if r == s:
                                continue
                            pickups = nodes(stops.pickup_stops[r])
                            deliveries = nodes(stops.delivery_stops[r])
                            if mode == RequirementMode.PERFORMED_BY_SAME_VEHICLE:
                                options += [same_vehicle(j, i) for j in pickups + deliveries]
                                continue
                            p_options: list[int | None] = [*pickups] or [None]
                            d_options: list[int | None] = [*deliveries] or [None]
                            for p, d in itertools.product(p_options, d_options):
                                terms = []
                                if p is not None:
                                    terms += [same_vehicle(p, i), before(p, i)]
                                if d is not None:
                                    terms += [same_vehicle(d, i), before(i, d)]
                                options.append(solver.Min(terms))
                        active = routing.ActiveVar(i)
                        if options:
                            solver.Add(active <= solver.Max(options))
                        else:
                            solver.Add(active == 0)

    # -- injected solution constraint -------------------------------------------------------

    def _add_injected_constraint(self) -> None:
        """The locks of ``injected_solution_constraint`` (see the module docstring); what it
        keeps skipped and which vehicle a kept shipment may use come with the problem
        (:func:`engine.reoptimisation.constrain`)."""
        routing, solver, dim = self.routing, self.solver, self.time
        fixed, sequence = (
            RelaxationLevel.LEVEL_UNSPECIFIED,
            (RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD),
        )
        for route in self.injected.constrained:
            v = route.vehicle
            if not route.visits or self.model.vehicles[v].ignore:
                continue
            start, end = self._vehicle_stop_indices(v)
            if route.start_level == fixed and route.start_time is not None:
                dim.CumulVar(start).SetRange(*fixed_range(self.p, route.start_time))
            prev, chained = start, True
            for p in route.visits:
                if (
                    p.level >= RelaxationLevel.RELAX_ALL_AFTER_THRESHOLD
                    or not self.p.routable[p.shipment]
                ):
                    chained = False
                    continue
                index = self._index(p.stop(self.p))
                routing.VehicleVar(index).SetValues([-1, v])
                if p.level > sequence:
                    chained = False
                    continue
                solver.Add(routing.ActiveVar(index) == 1)
                if chained:
                    solver.Add(routing.NextVar(prev) == index)
                    prev = index
                if p.level == fixed and p.start_time is not None:
                    dim.CumulVar(index).SetRange(*fixed_range(self.p, p.start_time))
            if route.closed and chained:
                solver.Add(routing.NextVar(prev) == end)
            if route.end_level == fixed and route.end_time is not None:
                dim.CumulVar(end).SetRange(*fixed_range(self.p, route.end_time))

    # -- breaks ------------------------------------------------------------------------------

    def _add_breaks(self) -> dict[int, list[pywrapcp.IntervalVar]]:
        out: dict[int, list[pywrapcp.IntervalVar]] = {}
        if not any(v.break_requests for v in self.model.vehicles):
            return out
        g0 = self.model.global_start_time
        nodes = [self.manager.IndexToNode(i) for i in range(self.routing.Size())]
        for v, vehicle in enumerate(self.model.vehicles):
            if not vehicle.break_requests:
                continue
            service = self.p.service_for(v)  # with the vehicle's visit-type extras
            visit_transits = [int(service[node]) for node in nodes]
            intervals = []
            for k, b in enumerate(vehicle.break_requests):
                lo = max(0, ceil_int(b.earliest_start_time - g0))
                hi = max(lo, floor_int(b.latest_start_time - g0))
                intervals.append(
                    self.solver.FixedDurationIntervalVar(
                        lo, hi, ceil_int(b.min_duration_s), False, f"break-{v}-{k}"
                    )
                )
            start, end = self._vehicle_stop_indices(v)
            for a, b in itertools.pairwise(intervals):
                self.solver.Add(a.EndExpr() <= b.StartExpr())
            self.solver.Add(intervals[0].StartExpr() >= self.time.CumulVar(start))
            self.solver.Add(intervals[-1].EndExpr() <= self.time.CumulVar(end))
            self.time.SetBreakIntervalsOfVehicle(intervals, v, visit_transits)
            out[v] = intervals
        return out

    # -- driver-hours rules ------------------------------------------------------------------

    def _add_driver_hours(self) -> None:
        """Issue 15's driver-hours rules (see the module docstring)."""
        self._add_break_frequencies()
        self._add_travel_duration_limits()
        for v, vehicle in enumerate(self.model.vehicles):
            _set_quadratic_soft_span(self.time, v, vehicle.route_duration_limit)

    def _add_break_frequencies(self) -> None:
        """``break_rule.frequency_constraints`` as OR-Tools break distance-duration pairs
        (``SetBreakDistanceDurationOfVehicle``: between breaks of at least the duration, at
        most the distance of time; the route start and end count as breaks, so the time from
        the start to the first such break and from the last one to the end is bounded too,
        as in Google's "any interval of the route"). Breaks are taken for their
        ``min_duration``: a constraint that none of the vehicle's breaks satisfies bounds the
        whole route (a span upper bound)."""
        for v, vehicle in enumerate(self.model.vehicles):
            if not vehicle.break_frequency_constraints:
                continue
            durations = [ceil_int(b.min_duration_s) for b in vehicle.break_requests]
            for fc in vehicle.break_frequency_constraints:
                distance = floor_int(fc.max_inter_break_duration_s)
                need = ceil_int(fc.min_break_duration_s)
                if any(d >= need for d in durations):
                    self.time.SetBreakDistanceDurationOfVehicle(distance, need, v)
                else:
                    bound = min(distance, int(self.time.GetSpanUpperBoundForVehicle(v)))
                    self.time.SetSpanUpperBoundForVehicle(bound, v)

    def _add_travel_duration_limits(self) -> None:
        """``travel_duration_limit``: a "travel" dimension (transit = travel time, no slack,
        start at 0, so the end's cumul is the route's travel time) with the hard maximum as
        the vehicle's capacity, the soft maximum as a soft span upper bound and the quadratic
        one as a quadratic soft span upper bound."""
        vehicles = self.model.vehicles
        if all(v.travel_duration_limit is None for v in vehicles):
            return
        p = self.p
        callbacks = []
        caps = []
        for v, vehicle in enumerate(vehicles):
            k = p.travel.vehicle_matrix[v]
            key = ("time-cost", k, vehicle.travel_duration_multiple)
            callbacks.append(self._register_matrix(key, partial(p.travel_s, v)))
            limit = vehicle.travel_duration_limit
            hard = None if limit is None else limit.max_duration_s
            caps.append(p.horizon if hard is None else min(p.horizon, floor_int(hard)))
        self.routing.AddDimensionWithVehicleTransitAndCapacity(callbacks, 0, caps, True, "travel")
        dim = self.routing.GetDimensionOrDie("travel")
        for v, vehicle in enumerate(vehicles):
            limit = vehicle.travel_duration_limit
            if limit is None:
                continue
            soft, cost = limit.soft_max_duration_s, limit.cost_per_hour_after_soft_max
            if soft is not None and cost:
                bound = pywrapcp.BoundCost(floor_int(soft), cost_per_hour_to_coefficient(cost))
                dim.SetSoftSpanUpperBoundForVehicle(bound, v)
            _set_quadratic_soft_span(dim, v, limit)

    # -- unloading policy --------------------------------------------------------------------

    def _add_unloading_policies(self) -> None:
        """``unloading_policy`` (issue 15): OR-Tools' pickup-and-delivery policy of the vehicle,
        which orders the pairs (``AddPickupAndDeliverySets``) as Google's policy orders the
        shipments with both a pickup and a delivery."""
        policies = {
            UnloadingPolicy.LAST_IN_FIRST_OUT: pywrapcp.RoutingModel.PICKUP_AND_DELIVERY_LIFO,
            UnloadingPolicy.FIRST_IN_FIRST_OUT: pywrapcp.RoutingModel.PICKUP_AND_DELIVERY_FIFO,
        }
        for v, vehicle in enumerate(self.model.vehicles):
            policy = policies.get(vehicle.unloading_policy)
            if policy is not None:
                self.routing.SetPickupAndDeliveryPolicyOfVehicle(policy, v)

    # -- search ------------------------------------------------------------------------------

    def _parameters(self, stop: StopCriterion) -> Any:
        params = pywrapcp.DefaultRoutingSearchParameters()
        has_pairs = any(s.pickups and s.deliveries for s in self.model.shipments)
        fss = self.first_solution_strategy or (
            "PARALLEL_CHEAPEST_INSERTION" if has_pairs else "PATH_CHEAPEST_ARC"
        )
        if self.local_search_metaheuristic:
            lsm = self.local_search_metaheuristic
        elif stop.search_mode == SearchMode.CONSUME_ALL_AVAILABLE_TIME:
            lsm = "GUIDED_LOCAL_SEARCH"
        else:
            lsm = "GREEDY_DESCENT"
        params.first_solution_strategy = _enum_value(_FSS, fss, "first_solution_strategy")
        params.local_search_metaheuristic = _enum_value(_LSM, lsm, "local_search_metaheuristic")
        _set_time_limit(params, stop)
        return params

    def run(
        self,
        stop: StopCriterion,
        on_progress: ProgressCallback | None,
        solution_limit: int | None = None,
        initial_routes: Sequence[Sequence[int]] | None = None,
    ) -> list[RoutePlan]:
        """Search until ``stop``; with ``initial_routes`` (visit stops per vehicle), start from
        them instead of a first-solution strategy when OR-Tools accepts them."""
        routing = self.routing
        params = self._parameters(stop)
        if solution_limit is not None:
            params.solution_limit = solution_limit
        routing.CloseModelWithParameters(params)
        # Closing the model can take a while on large models: the search gets what is left.
        _set_time_limit(params, stop)
        routing.AddSearchMonitor(self.solver.CustomLimit(stop.poll))
        watch = _SolutionWatch(self, on_progress)
        routing.AddAtSolutionCallback(watch)
        assignment = self._search(params, stop, watch, initial_routes)
        log.debug(
            "ortools status=%s solutions=%d time=%.3fs",
            routing.status(),
            watch.count,
            time.monotonic() - watch.started,
        )
        if assignment is None or watch.count == 0:
            raise _no_solution(stop, time.monotonic() - watch.started)
        return [self._extract(assignment, v) for v in range(len(self.model.vehicles))]

    def _search(
        self,
        params: Any,
        stop: StopCriterion,
        watch: _SolutionWatch,
        initial_routes: Sequence[Sequence[int]] | None,
    ) -> pywrapcp.Assignment | None:
        """The search: from ``initial_routes`` when OR-Tools accepts them, else from the
        first-solution strategy, else (when that finds nothing) from ALL_UNPERFORMED."""
        routing = self.routing
        assignment = None
        initial = None
        if initial_routes or self.fallback_routes:
            # Each search from an assignment completes it (cumuls, breaks) under OR-Tools' LNS
            # limit, 100 ms by default: not enough for many routes with breaks.
            params.lns_time_limit.FromMilliseconds(RESTORE_LNS_LIMIT_MS)
        if initial_routes:
            initial = self._initial_assignment(initial_routes, params, stop)
        if initial is None and self.fallback_routes:
            log.info("initial routes rejected; starting from the constraint's kept visits")
            initial = self._initial_assignment(self.fallback_routes, params, stop)
        if initial is not None:
            _set_time_limit(params, stop)
            assignment = routing.SolveFromAssignmentWithParameters(initial, params)
            if assignment is None or watch.count == 0:
                log.info("initial routes rejected; searching from a first-solution strategy")
                _set_time_limit(params, stop)
        if assignment is None or watch.count == 0:
            assignment = routing.SolveWithParameters(params)
        if (
            (assignment is None or watch.count == 0)
            and not stop.interrupted
            and stop.remaining_s() > 0.01
        ):
            # Some first-solution strategies fail on some models: SAVINGS on pickup-and-delivery
            # returns without a single solution (status PARTIAL_SUCCESS, no solution callback).
            # Every shipment is optional to the solver, so starting from "nothing performed"
            # always works; local search then inserts.
            log.info("first solution strategy failed; retrying from ALL_UNPERFORMED")
            params.first_solution_strategy = _enum_value(_FSS, "ALL_UNPERFORMED", "fallback")
            _set_time_limit(params, stop)
            assignment = routing.SolveWithParameters(params)
        return assignment

    def live_plans(self) -> tuple[RoutePlan, ...]:
        """The plans of the solution being reported (in a solution callback)."""
        return tuple(self._extract(_LIVE, v) for v in range(len(self.model.vehicles)))

    def _initial_assignment(
        self, routes: Sequence[Sequence[int]], params: Any, stop: StopCriterion
    ) -> Any:
        """A complete assignment with ``routes`` (stops per vehicle; other shipments
        unperformed), or None when OR-Tools finds it inconsistent with the model. A route
        that is infeasible on its own keeps the part :meth:`_feasible_part` finds."""
        indices = [[self._index(i) for i in route] for route in routes]
        assignment = self._restore(indices, params)
        if assignment is not None:
            # The restore is a search from the routes: on routes inconsistent with the model
            # it may return others (its first solution), so say what it did.
            changed = sum(
                [self._index(i) for i in self._extract(assignment, v).stops] != route
                for v, route in enumerate(indices)
            )
            self.initial_outcome = (
                "OR-Tools took them as they are"
                if not changed
                else f"OR-Tools completed them into other routes ({changed} of "
                f"{sum(map(bool, indices))} routes changed)"
            )
            return assignment
        # Constraints are per route: keep the routes that are feasible on their own, and of
        # the others the shipments that fit (the rest stay unperformed; local search inserts
        # them).
        kept = []
        repaired = left_out = 0
        for v, route in enumerate(routes):
            if not route or self._restore(_alone(v, indices[v], len(routes)), params) is not None:
                kept.append(indices[v])
                continue
            part = self._feasible_part(v, route, len(routes), params, stop)
            repaired += 1
            left_out += len(route) - len(part)
            kept.append(part)
        log.info(
            "initial routes: %d of %d are infeasible, %d of their visits left out",
            repaired,
            len(routes),
            left_out,
        )
        assignment = self._restore(kept, params)
        self.initial_outcome = (
            "OR-Tools could not take them"
            if assignment is None
            else f"{repaired} routes infeasible with every constraint, {left_out} of their "
            "visits left to OR-Tools' search"
        )
        return assignment

    def _feasible_part(
        self, v: int, route: Sequence[int], n: int, params: Any, stop: StopCriterion
    ) -> list[int]:
        """The routing indices of the stops of ``route`` of the shipments kept by adding its
        shipments one at a time, in the order of their first visit, each kept when the route
        of the kept ones (in ``route``'s order) stays feasible on vehicle ``v`` (a
        pickup-and-delivery shipment comes or goes with both its visits). Stops early when
        ``stop`` says the time is up. The warm start's routes come from a nearby model
        (:mod:`engine.warmstart`): a break or a restriction it left out usually breaks a route
        at one or two visits, not all."""
        shipment_of = self.p.stops.shipment
        kept: set[int] = set()
        part: list[int] = []
        for s in dict.fromkeys(int(shipment_of[i]) for i in route):
            if stop.remaining_s() <= 0.01:
                break
            trial = [
                self._index(i)
                for i in route
                if int(shipment_of[i]) in kept or int(shipment_of[i]) == s
            ]
            if self._restore(_alone(v, trial, n), params) is not None:
                kept.add(s)
                part = trial
        return part

    def _restore(self, routes: list[list[int]], params: Any) -> Any:
        """The first complete solution with these routes (OR-Tools places the times, breaks
        and the rest), or None when they are inconsistent with the model.

        Not ``ReadAssignmentFromRoutes``: that runs a search that, once it has the routes'
        solution, goes on trying to lower its cost by backtracking over the cumul values
        until the whole time limit is spent (a soft time window made a 10 s solve take
        17 s: the limit spent there, then again by the local search). The routes are set
        without a search, then a search stops at its first solution."""
        routing = self.routing
        filled = routing.solver().Assignment()
        if not routing.RoutesToAssignment(routes, True, True, filled):
            return None
        probe = pywrapcp.DefaultRoutingSearchParameters()
        probe.CopyFrom(params)
        probe.solution_limit = 1
        restored = routing.SolveFromAssignmentWithParameters(filled, probe)
        if restored is None:
            return None
        return routing.solver().Assignment(restored)  # a copy: the next search reuses it

    def _extract(self, assignment: pywrapcp.Assignment | _LiveValues, v: int) -> RoutePlan:
        routing, manager, dim = self.routing, self.manager, self.time
        index = routing.Start(v)
        start_s = int(assignment.Min(dim.CumulVar(index)))
        stops: list[int] = []
        starts: list[int] = []
        index = assignment.Value(routing.NextVar(index))
        while not routing.IsEnd(index):
            stops.append(int(manager.IndexToNode(index)))
            starts.append(int(assignment.Min(dim.CumulVar(index))))
            index = assignment.Value(routing.NextVar(index))
        if self._short_of_minimum(v, stops):
            # a route the search left short of a minimum start or end load: not a solution
            # (see _add_load_minima); its shipments stay unperformed
            log.info("vehicle %d: route short of its minimum load, left empty", v)
            return RoutePlan(vehicle=v)
        if not stops and not self.model.vehicles[v].used_if_route_is_empty:
            return RoutePlan(vehicle=v)
        end_s = int(assignment.Min(dim.CumulVar(index)))
        breaks = tuple(
            (int(assignment.StartValue(iv)), int(assignment.DurationValue(iv)))
            for iv in self.breaks.get(v, [])
        )
        return RoutePlan(
            vehicle=v,
            stops=tuple(stops),
            start_s=start_s,
            visit_start_s=tuple(starts),
            end_s=end_s,
            breaks_s=breaks,
        )


def _alone(v: int, route: list[int], n: int) -> list[list[int]]:
    """``n`` routes (routing indices): ``route`` on vehicle ``v``, the others empty."""
    return [route if u == v else [] for u in range(n)]


def _vehicles_with_kept_visits(problem: Problem) -> set[int]:
    """Vehicles that the ``injected_solution_constraint`` keeps in use: a route with a visit
    that must be performed on it (relaxed at most to ``RELAX_VISIT_TIMES_AFTER_THRESHOLD``, of a
    routable shipment), as :meth:`_Builder._add_injected_constraint` locks it."""
    injected = resolve(problem.model)
    return {
        route.vehicle
        for route in injected.constrained
        if not problem.model.vehicles[route.vehicle].ignore
        and any(
            p.level <= RelaxationLevel.RELAX_VISIT_TIMES_AFTER_THRESHOLD
            and problem.routable[p.shipment]
            for p in route.visits
        )
    }


def _set_quadratic_soft_span(dim: pywrapcp.RoutingDimension, v: int, limit: DurationLimit) -> None:
    """A quadratic soft span upper bound (``quadratic_soft_max_duration`` and
    ``cost_per_square_hour_after_quadratic_soft_max``) on ``dim`` for vehicle ``v``: OR-Tools
    ``SetQuadraticCostSoftSpanUpperBoundForVehicle`` (cost * (span - bound)^2), its cost in
    whole units per square second (validation keeps the rate where that is within 1%:
    :data:`engine.units.MIN_COST_PER_SQUARE_HOUR`)."""
    soft = limit.quadratic_soft_max_duration_s
    rate = limit.cost_per_square_hour_after_quadratic_soft_max
    if soft is None or not rate:
        return
    coefficient = cost_per_square_hour_to_coefficient(rate)
    dim.SetQuadraticCostSoftSpanUpperBoundForVehicle(
        pywrapcp.BoundCost(floor_int(soft), coefficient), v
    )


def _whole_seconds(limit: float | None, horizon: int) -> int:
    """A time limit in whole seconds (rounded down), at most the horizon."""
    if limit is None or not np.isfinite(limit):
        return horizon
    return max(0, min(horizon, floor_int(limit)))


RESTORE_LNS_LIMIT_MS = 1000
"""OR-Tools' ``lns_time_limit`` for a search from given routes. OR-Tools completes an
assignment (cumuls, break intervals) in a nested search under that limit; at its default of
100 ms the routes of Gehring-Homberger C1_2_1 with breaks, allowed vehicles and two windows
(24 routes, each restored alone) failed together in 0.11 s, and the search from them too;
at 1 s both succeed."""


def _set_time_limit(params: Any, stop: StopCriterion) -> None:
    """The search gets what is left of ``stop``'s time (at least a millisecond)."""
    params.time_limit.FromMilliseconds(max(1, int(stop.remaining_s() * 1000)))


def _no_solution(stop: StopCriterion, elapsed: float) -> NoSolutionError:
    """Why the search found no solution at all."""
    if stop.interrupted:
        return NoSolutionError("interrupted", "the solve was stopped before a first solution")
    if stop.remaining_s() <= 0.01:
        return NoSolutionError(
            "time_limit",
            f"no solution within the time limit ({elapsed:.2f} s for the search); allow more time",
        )
    return NoSolutionError(
        "infeasible",
        "the model admits no routes, even with every shipment skipped: check the "
        "vehicles' time windows, duration limits, break requests and break frequency "
        "constraints against each other (breaks are placed on unused vehicles too)",
    )


class _SolutionWatch:
    """Called for every solution the search accepts; guided local search accepts worse ones
    too, so only improvements on the best so far are reported."""

    def __init__(self, builder: _Builder, on_progress: ProgressCallback | None) -> None:
        self.builder = builder
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.count = 0
        self.improving = 0
        self.best = float("inf")

    def __call__(self) -> None:
        self.count += 1
        objective = self.builder.routing.CostVar().Value() / COST_SCALE
        if objective < self.best:
            self.best = objective
            self.improving += 1
            if self.on_progress is not None:
                plans = self.builder.live_plans()
                elapsed = time.monotonic() - self.started  # after the plans, as it always was
                self.on_progress(Progress(elapsed, objective, self.improving, plans))


class _LiveValues:
    """The values of the solution being reported, read from the variables themselves (in a
    solution callback, where no Assignment is at hand); same accessors as an Assignment."""

    @staticmethod
    def Value(var: Any) -> int:  # noqa: N802 (Assignment's method names)
        return int(var.Value())

    @staticmethod
    def Min(var: Any) -> int:  # noqa: N802
        return int(var.Min())

    @staticmethod
    def StartValue(interval: Any) -> int:  # noqa: N802
        return int(interval.StartMin())

    @staticmethod
    def DurationValue(interval: Any) -> int:  # noqa: N802
        return int(interval.DurationMin())


_LIVE = _LiveValues()
