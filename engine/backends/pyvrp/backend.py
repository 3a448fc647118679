"""PyVRP backend (iterated local search). The only module of the project that imports pyvrp.

The integer problem maps onto PyVRP's data model as follows:

- locations: the visit stops of routable shipments, then a start and an end depot per vehicle
  type; identical vehicles (every field but the label) form one vehicle type;
- a delivery-only (pickup-only) shipment is a client with a delivery (pickup) amount; several
  alternatives form a mutually exclusive client group; a pickup-and-delivery shipment is a
  PyVRP shipment. Delivery-only goods are on board from the start and pickup-only goods stay
  to the end, as in the engine;
- optional shipments are optional clients whose prize is the scaled ``penalty_cost``;
- costs: each profile's "distance" matrix is the scaled arc cost (``cost_per_kilometer`` and
  ``cost_per_traveled_hour``; travel time when no vehicle has any cost, as in the OR-Tools
  backend), so ``unit_distance_cost`` is 1; ``cost_per_hour`` is ``unit_duration_cost`` per
  second of route duration; fixed costs as they are. One scale factor turns currency into
  integers (:func:`_cost_scale`). A vehicle's distance limit becomes a limit on its arc cost
  (only offered for purely per-kilometer travel costs, see :mod:`engine.backends.features`);
- time: the engine's integer seconds; vehicle start window → ``tw_early``/``start_late``, end
  window → ``tw_late``; duration limit → ``shift_duration``; distance limit → ``max_distance``.

The features PyVRP cannot express are listed in :data:`UNSUPPORTED`; the engine does not pick
this backend for a model that uses one.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import pyvrp
from pyvrp.exceptions import PenaltyBoundWarning
from pyvrp.stop import StoppingCriterion

from engine.backends.base import Progress, RoutePlan, StopCriterion
from engine.errors import NoSolutionError
from engine.options import SearchMode
from engine.parallel import Task, run_parallel
from engine.problem import Problem
from engine.units import COST_SCALE, floor_int

__all__ = ["SPLIT_MIN_CLIENTS", "UNSUPPORTED", "PyVRPBackend", "splits"]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

UNSUPPORTED = frozenset(
    {
        "pair_alternatives",
        "multiple_time_windows",
        "soft_time_windows",
        "multiple_vehicle_time_windows",
        "late_end_window_start",
        "breaks",
        "allowed_vehicles",
        "distance_limit_with_time_cost",
    }
)
"""Features (:mod:`engine.backends.features`) this backend cannot express."""

_MAX_TOTAL_SCALED = 1e13
"""Upper bound for any total cost after scaling (PyVRP adds penalties on top in int64)."""

RETURN_FAST_NO_IMPROVEMENT = 2_000
"""In RETURN_FAST mode the search stops after this many iterations without improvement."""


INTERRUPT_GRACE_S = 0.5
"""After an external stop, how long the search may go on to find a first feasible solution."""


@dataclass
class _Type:
    vehicles: list[int]
    profile: int
    start_loc: int = -1
    end_loc: int = -1


@dataclass
class _Data:
    data: pyvrp.ProblemData
    scale: _Scale
    location_stop: list[int]
    """Our stop index of each PyVRP location (depots: the representative vehicle's stop)."""
    client_stop: list[int]
    shipment_stops: list[tuple[int, int]]
    types: list[_Type]
    notes: list[str] = field(default_factory=list)


class PyVRPBackend:
    """Solves a :class:`Problem` with PyVRP's iterated local search.

    ``seed`` seeds PyVRP's random number stream; with ``iteration_limit`` the result is fully
    determined by the problem and the seed. With ``give_up_fraction``, the search stops once
    that fraction of its time has passed without a feasible solution (so that another backend
    can take over). ``decompose``: improve the whole solution by solving groups of nearby
    routes as sub-problems (:func:`_solve_decomposed`); None: from
    :data:`DECOMPOSE_MIN_CLIENTS` clients on. With ``processes`` > 1 (time-bound searches of
    decomposable problems only, see :func:`splits`), the search runs in that many processes:
    :func:`_solve_split`.
    """

    name = "pyvrp"

    def __init__(
        self,
        seed: int = 0,
        iteration_limit: int | None = None,
        give_up_fraction: float | None = None,
        decompose: bool | None = None,
        processes: int = 1,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.seed = seed
        self.iteration_limit = iteration_limit
        self.give_up_fraction = give_up_fraction
        self.decompose = decompose
        self.processes = processes

    def solve(
        self,
        problem: Problem,
        stop: StopCriterion,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> list[RoutePlan]:
        built = _build(problem)
        n_vehicles = len(problem.model.vehicles)
        started = time.monotonic()
        criterion = _Stop(stop, built.scale.prizes, started, on_progress, self.iteration_limit)
        if stop.search_mode == SearchMode.RETURN_FAST:
            criterion.no_improvement = RETURN_FAST_NO_IMPROVEMENT
        if self.give_up_fraction is not None:
            criterion.give_up_at = started + self.give_up_fraction * stop.remaining_s()
        criterion.routes_of = lambda solution: _plans(built, solution, n_vehicles)
        params = _params(built, criterion.tracker)
        decompose = self.decompose
        if decompose is None:
            decompose = built.data.num_clients >= DECOMPOSE_MIN_CLIENTS
        if self.processes > 1 and _decomposable(built.data) and self.iteration_limit is None:
            best = _solve_split(built, criterion, stop, self.seed, self.processes)
        elif decompose and _decomposable(built.data) and self.iteration_limit is None:
            best = _solve_decomposed(built.data, criterion, stop, self.seed, params)
        else:
            result = _run(built.data, criterion, self.seed, params)
            best = result.best
            log.debug(
                "pyvrp iterations=%d feasible=%s cost=%s time=%.3fs",
                result.num_iterations,
                best.is_feasible(),
                result.cost(),
                time.monotonic() - started,
            )
        if not best.is_feasible():
            elapsed = time.monotonic() - started
            if stop.interrupted:
                raise NoSolutionError("interrupted", "the solve was stopped before a solution")
            raise NoSolutionError(
                "time_limit" if stop.remaining_s() <= 0.01 else "infeasible",
                f"PyVRP found no solution serving every mandatory shipment in {elapsed:.2f} s",
            )
        return _plans(built, best, n_vehicles)


class _BestTracker(pyvrp.IteratedLocalSearchCallbacks):
    """Keeps the search's current best solution (PyVRP calls ``on_best`` before the stopping
    criterion sees its cost)."""

    def __init__(self) -> None:
        self.best: pyvrp.Solution | None = None

    def on_start(self, ils: pyvrp.IteratedLocalSearch) -> None:
        initial = ils.initial_solution
        self.best = initial if initial.is_feasible() else None

    def on_best(self, best: pyvrp.Solution) -> None:
        self.best = best if best.is_feasible() else None


class _Stop:
    """PyVRP stopping criterion: deadline, external stop, iteration limit, stagnation; reports
    each improving feasible solution."""

    def __init__(
        self,
        stop: StopCriterion,
        scale: float,
        started: float,
        on_progress: Callable[[Progress], None] | None,
        iteration_limit: int | None,
    ) -> None:
        self.stop = stop
        self.scale = scale
        self.started = started
        self.on_progress = on_progress
        self.iteration_limit = iteration_limit
        self.no_improvement: int | None = None
        self.give_up_at: float | None = None
        self.stop_requested_at: float | None = None
        self.iterations = 0
        self.since_improvement = 0
        self.best = math.inf
        self.solutions = 0
        self.tracker = _BestTracker()
        self.routes_of: Callable[[pyvrp.Solution], list[RoutePlan]] | None = None

    def __call__(self, best_cost: float) -> bool:
        if best_cost < self.best:
            self.best = best_cost
            self.since_improvement = 0
            # PyVRP reports the largest int64 as the cost of an infeasible solution.
            if best_cost < np.iinfo(np.int64).max:
                self.solutions += 1
                if self.on_progress is not None:
                    now = time.monotonic()
                    plans = None
                    latest = self.tracker.best
                    if self.routes_of is not None and latest is not None:
                        plans = tuple(self.routes_of(latest))
                    elapsed = now - self.started
                    self.on_progress(
                        Progress(elapsed, best_cost / self.scale, self.solutions, plans)
                    )
        else:
            self.since_improvement += 1
        self.iterations += 1
        if self.iteration_limit is not None and self.iterations > self.iteration_limit:
            return True
        if self.no_improvement is not None and self.since_improvement > self.no_improvement:
            return True
        if self.stop.remaining_s() <= 0:
            return True
        if self.stop_requested_at is None and self.stop.poll():
            self.stop_requested_at = time.monotonic()
        if self.stop_requested_at is not None:
            # Stopped from outside: return the best solution, but look for a first feasible
            # one a little longer if there is none yet.
            waited = time.monotonic() - self.stop_requested_at
            return self.solutions > 0 or waited > INTERRUPT_GRACE_S
        giving_up = self.give_up_at is not None and self.solutions == 0
        return giving_up and time.monotonic() > (self.give_up_at or 0.0)


@dataclass(frozen=True)
class _Scale:
    """How currency becomes PyVRP's integer costs.

    PyVRP's penalties for excess load, time warp and distance live in a fixed range
    (``PenaltyParams``: 0.1 to 100 000 per unit of violation) that suits instances whose
    costs are of the order of their travel times. So costs are first brought to that order
    (``natural``: one cost unit ≈ one second of travel), then multiplied by a power of ten
    (``refine``) until arc costs and the cost per second are precise enough as integers; the
    penalty range is multiplied by ``refine`` too, which leaves the search unchanged.
    """

    costs: float
    """Integer cost units per currency unit (arc, fixed and duration costs)."""
    prizes: float
    """Integer cost units per currency unit of ``penalty_cost``."""
    refine: float

    def penalty_params(self) -> pyvrp.PenaltyParams:
        default = pyvrp.PenaltyParams()
        return pyvrp.PenaltyParams(
            min_penalty=default.min_penalty * self.refine,
            max_penalty=default.max_penalty * self.refine,
        )


_MIN_MEAN_ARC_UNITS = 100.0
"""Scaled arc costs must average at least this many units (rounding error ≤ 0.5 %)."""

_MIN_UNITS_PER_SECOND = 20.0
"""A positive ``cost_per_hour`` must scale to at least this many units per second."""


def _cost_scale(
    problem: Problem,
    arc_costs: list[FloatArray],
    durations: list[IntArray],
    reachable: list[npt.NDArray[np.bool_]],
    prizes: list[float],
    no_costs: bool,
) -> _Scale:
    """The scale factors for ``problem`` (see :class:`_Scale`); ``reachable`` masks the legs
    of each profile that exist."""
    model = problem.model
    horizon = float(problem.horizon)
    finite = [c[m] for c, m in zip(arc_costs, reachable, strict=True)]
    positive = np.concatenate([c[c > 0] for c in finite])
    seconds = np.concatenate([d[m & (d > 0)] for d, m in zip(durations, reachable, strict=True)])
    mean_cost = float(positive.mean()) if positive.size else 0.0
    mean_seconds = float(seconds.mean()) if seconds.size else 0.0
    per_hour = [v.cost_per_hour for v in model.vehicles if v.cost_per_hour > 0]
    longest = max((float(c.max(initial=0.0)) for c in finite), default=0.0)
    bound = (
        longest * (problem.stops.size + 1)
        + max(per_hour, default=0.0) * horizon / 3600.0
        + sum(v.fixed_cost for v in model.vehicles)
        + sum(prizes)
    )
    cap = _MAX_TOTAL_SCALED / bound if bound > 0 else float(COST_SCALE)
    if no_costs:  # arc costs are travel seconds, prizes must dominate them
        return _Scale(costs=1.0, prizes=min(float(COST_SCALE), cap), refine=1.0)
    natural = mean_seconds / mean_cost if mean_cost > 0 and mean_seconds > 0 else 1.0
    refine = 1.0
    while refine < 1e9 and (
        mean_cost * natural * refine < _MIN_MEAN_ARC_UNITS
        or any(c / 3600.0 * natural * refine < _MIN_UNITS_PER_SECOND for c in per_hour)
    ):
        refine *= 10.0
    costs = natural * refine
    if costs > cap:
        refine *= cap / costs
        costs = cap
    return _Scale(costs=costs, prizes=costs, refine=max(refine, 1e-6))


def _build(problem: Problem) -> _Data:
    model = problem.model
    stops = problem.stops
    no_costs = all(
        v.cost_per_kilometer == 0 and v.cost_per_traveled_hour == 0 and v.cost_per_hour == 0
        for v in model.vehicles
    )

    # Vehicle types: identical vehicles (label aside) that can start at all.
    types: list[_Type] = []
    by_key: dict[str, int] = {}
    profile_keys: dict[tuple[int, float, float, float], int] = {}
    profile_vehicle: list[int] = []
    for v, vehicle in enumerate(model.vehicles):
        start_windows = problem.windows[stops.vehicle_start(v)]
        end_windows = problem.windows[stops.vehicle_end(v)]
        if not start_windows or not end_windows or start_windows[0][0] > end_windows[-1][1]:
            continue  # no feasible start or end time: unusable
        k = problem.travel.vehicle_matrix[v]
        key = repr((replace(vehicle, label=""), k))
        if key in by_key:
            types[by_key[key]].vehicles.append(v)
            continue
        pkey = (
            k,
            vehicle.travel_duration_multiple,
            vehicle.cost_per_kilometer,
            vehicle.cost_per_traveled_hour,
        )
        if pkey not in profile_keys:
            profile_keys[pkey] = len(profile_vehicle)
            profile_vehicle.append(v)
        by_key[key] = len(types)
        types.append(_Type(vehicles=[v], profile=profile_keys[pkey]))

    if not types:
        raise NoSolutionError("infeasible", "no vehicle has a feasible start and end time")

    # Locations: visit stops of routable shipments, then each type's start and end stop.
    location_stop: list[int] = []
    for s in range(len(model.shipments)):
        if problem.routable[s]:
            location_stop.extend(stops.pickup_stops[s])
            location_stop.extend(stops.delivery_stops[s])
    loc_of = {stop: i for i, stop in enumerate(location_stop)}
    for t in types:
        t.start_loc = len(location_stop)
        location_stop.append(stops.vehicle_start(t.vehicles[0]))
        t.end_loc = len(location_stop)
        location_stop.append(stops.vehicle_end(t.vehicles[0]))
    index = np.asarray(location_stop, dtype=np.int64)

    # Arc costs (currency) and durations per profile, on the locations.
    arc_costs: list[FloatArray] = []
    durations: list[IntArray] = []
    reachable: list[npt.NDArray[np.bool_]] = []
    for v in profile_vehicle:
        vehicle = model.vehicles[v]
        travel = problem.travel_s(v)[np.ix_(index, index)]
        durations.append(travel)
        k = problem.travel.vehicle_matrix[v]
        reachable.append(np.isfinite(problem.travel.durations_s[k][np.ix_(index, index)]))
        if no_costs:
            arc_costs.append(travel.astype(np.float64))
            continue
        cap = float(problem.unreachable_s)
        seconds = np.minimum(problem.travel.durations_s[k] * vehicle.travel_duration_multiple, cap)
        meters = np.minimum(problem.travel.distances_m[k], cap * 1000.0)
        cost = (
            vehicle.cost_per_kilometer * meters / 1000.0
            + vehicle.cost_per_traveled_hour * seconds / 3600.0
        )
        arc_costs.append(cost[np.ix_(index, index)])

    prizes = [
        float(sh.penalty_cost or 0.0) for s, sh in enumerate(model.shipments) if problem.routable[s]
    ]
    factors = _cost_scale(problem, arc_costs, durations, reachable, prizes, no_costs)
    scale = factors.costs
    limited_profiles = {
        t.profile for t in types if model.vehicles[t.vehicles[0]].route_distance_limit_m is not None
    }
    distance_matrices = []
    for p, cost in enumerate(arc_costs):
        scaled = cost if no_costs else cost * scale
        # Rounded up where a distance limit applies to this cost, so the limit holds exactly.
        rounded = np.ceil(scaled - 1e-9) if p in limited_profiles else np.rint(scaled)
        distance_matrices.append(rounded.astype(np.int64))

    # Loads: the types some vehicle limits and some routable shipment demands (as OR-Tools).
    limited = {t for v in model.vehicles for t in v.load_limits}
    demanded = {
        t
        for s, sh in enumerate(model.shipments)
        if problem.routable[s]
        for t, q in sh.load_demands.items()
        if q > 0
    }
    load_types = sorted(limited & demanded)
    totals = [
        sum(
            int(sh.load_demands.get(t, 0))
            for s, sh in enumerate(model.shipments)
            if problem.routable[s]
        )
        for t in load_types
    ]

    def amounts(s: int) -> list[int]:
        demands = model.shipments[s].load_demands
        return [int(demands.get(t, 0)) for t in load_types]

    clients: list[pyvrp.Client] = []
    client_stop: list[int] = []
    groups: list[pyvrp.ClientGroup] = []
    shipments: list[pyvrp.Shipment] = []
    shipment_stops: list[tuple[int, int]] = []
    for s, shipment in enumerate(model.shipments):
        if not problem.routable[s]:
            continue
        required = shipment.is_mandatory
        prize = 0 if required else round(float(shipment.penalty_cost or 0.0) * factors.prizes)
        amount = amounts(s)
        if shipment.pickups and shipment.deliveries:
            pickup, delivery = stops.pickup_stops[s][0], stops.delivery_stops[s][0]
            (p_lo, p_hi), (d_lo, d_hi) = problem.windows[pickup][0], problem.windows[delivery][0]
            shipments.append(
                pyvrp.Shipment(
                    pickup_location=loc_of[pickup],
                    delivery_location=loc_of[delivery],
                    pickup_tw_early=p_lo,
                    pickup_tw_late=p_hi,
                    pickup_service_duration=int(problem.service_s[pickup]),
                    delivery_tw_early=d_lo,
                    delivery_tw_late=d_hi,
                    delivery_service_duration=int(problem.service_s[delivery]),
                    amount=amount,
                    prize=prize,
                    required=required,
                )
            )
            shipment_stops.append((pickup, delivery))
            continue
        is_pickup = bool(shipment.pickups)
        alternatives = stops.pickup_stops[s] if is_pickup else stops.delivery_stops[s]
        group = len(groups) if len(alternatives) > 1 else None
        members = []
        for stop_index in alternatives:
            lo, hi = problem.windows[stop_index][0]
            members.append(len(clients))
            clients.append(
                pyvrp.Client(
                    location=loc_of[stop_index],
                    delivery=[] if is_pickup else amount,
                    pickup=amount if is_pickup else [],
                    service_duration=int(problem.service_s[stop_index]),
                    tw_early=lo,
                    tw_late=hi,
                    prize=prize,
                    required=required and group is None,
                    group=group,
                )
            )
            client_stop.append(stop_index)
        if group is not None:
            groups.append(pyvrp.ClientGroup(members, required=required))

    depots: list[pyvrp.Depot] = []
    vehicle_types = []
    for t in types:
        v = t.vehicles[0]
        vehicle = model.vehicles[v]
        (start_lo, start_hi) = problem.windows[stops.vehicle_start(v)][0]
        (_, end_hi) = problem.windows[stops.vehicle_end(v)][-1]
        start_depot = len(depots)
        depots.append(pyvrp.Depot(location=t.start_loc))
        end_depot = len(depots)
        depots.append(pyvrp.Depot(location=t.end_loc))
        capacity = [
            int(min(vehicle.load_limits.get(lt, total), total))
            for lt, total in zip(load_types, totals, strict=True)
        ]
        max_distance = np.iinfo(np.int64).max
        if vehicle.route_distance_limit_m is not None:
            per_meter = vehicle.cost_per_kilometer / 1000.0 * scale
            max_distance = floor_int(vehicle.route_distance_limit_m * per_meter)
        shift = np.iinfo(np.int64).max
        if vehicle.route_duration_limit_s is not None:
            shift = floor_int(vehicle.route_duration_limit_s)
        per_second = vehicle.cost_per_hour / 3600.0 * scale
        vehicle_types.append(
            pyvrp.VehicleType(
                num_available=len(t.vehicles),
                capacity=capacity,
                start_depot=start_depot,
                end_depot=end_depot,
                fixed_cost=round(vehicle.fixed_cost * scale),
                tw_early=start_lo,
                tw_late=end_hi,
                start_late=min(start_hi, end_hi),
                shift_duration=shift,
                max_distance=max_distance,
                unit_distance_cost=1,
                unit_duration_cost=max(1, round(per_second)) if per_second > 0 else 0,
                profile=t.profile,
                name=vehicle.label,
            )
        )
    locations = [pyvrp.Location(x=0.0, y=0.0) for _ in location_stop]
    data = pyvrp.ProblemData(
        locations=locations,
        clients=clients,
        depots=depots,
        vehicle_types=vehicle_types,
        distance_matrices=distance_matrices,  # type: ignore[arg-type]  # pyvrp's stub: ndarray[int]
        duration_matrices=durations,  # type: ignore[arg-type]
        groups=groups,
        shipments=shipments,
    )
    return _Data(
        data=data,
        scale=factors,
        location_stop=location_stop,
        client_stop=client_stop,
        shipment_stops=shipment_stops,
        types=types,
    )


def _plans(built: _Data, solution: pyvrp.Solution, n_vehicles: int) -> list[RoutePlan]:
    plans = [RoutePlan(vehicle=v) for v in range(n_vehicles)]
    free = [list(t.vehicles) for t in built.types]
    client = pyvrp.ActivityType.CLIENT
    pickup = pyvrp.ActivityType.PICKUP
    delivery = pyvrp.ActivityType.DELIVERY
    for route in solution.routes():
        v = free[route.vehicle_type()].pop(0)
        visit_stops: list[int] = []
        starts: list[int] = []
        for activity in route.schedule():
            kind = activity.type
            if kind == client:
                stop = built.client_stop[activity.idx]
            elif kind == pickup:
                stop = built.shipment_stops[activity.idx][0]
            elif kind == delivery:
                stop = built.shipment_stops[activity.idx][1]
            else:
                continue  # depots
            visit_stops.append(stop)
            starts.append(int(activity.start_time))
        plans[v] = RoutePlan(
            vehicle=v,
            stops=tuple(visit_stops),
            start_s=int(route.start_time()),
            visit_start_s=tuple(starts),
            end_s=int(route.end_time()),
        )
    return plans


def _params(built: _Data, tracker: _BestTracker | None) -> pyvrp.SolveParams:
    """Search parameters: the problem's penalty range; ``tracker`` follows the best solution."""
    ils = (
        pyvrp.IteratedLocalSearchParams()
        if tracker is None
        else pyvrp.IteratedLocalSearchParams(callbacks=tracker)
    )
    return pyvrp.SolveParams(ils=ils, penalty=built.scale.penalty_params())


def _run(
    data: pyvrp.ProblemData,
    stop: StoppingCriterion,
    seed: int,
    params: pyvrp.SolveParams,
    initial: pyvrp.Solution | None = None,
) -> pyvrp.Result:
    """``pyvrp.solve`` with its PenaltyBoundWarning sent to the log: it says PyVRP struggles
    to find a feasible solution, and the callers check the outcome (under auto, OR-Tools takes
    over)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PenaltyBoundWarning)
        result = pyvrp.solve(
            data,
            stop=stop,
            seed=seed,
            collect_stats=False,
            display=False,
            params=params,
            initial_solution=initial,
        )
    for w in caught:
        if issubclass(w.category, PenaltyBoundWarning):
            log.debug("pyvrp: %s", " ".join(str(w.message).split()))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


# -- decomposition ---------------------------------------------------------------------------

DECOMPOSE_MIN_CLIENTS = 10**9
"""``decompose=None`` decomposes from this many clients on (see benchmarks/RESULTS.md)."""

DECOMPOSE_WHOLE_FRACTION = 0.4
"""Share of the time spent on the whole problem before the sub-problems."""

DECOMPOSE_GROUP_CLIENTS = 200
"""Clients per sub-problem (whole routes are grouped until they reach this many)."""


def _decomposable(data: pyvrp.ProblemData) -> bool:
    """Sub-problems are formed of whole routes: every client must be required and plain (no
    groups, no shipments), so that no client is left out of every sub-problem."""
    return (
        data.num_groups == 0
        and data.num_shipments == 0
        and all(client.required for client in data.clients())
    )


class _Until:
    """Stop a phase at ``deadline`` (or when the whole solve must stop); reports nothing."""

    def __init__(self, stop: StopCriterion, deadline: float) -> None:
        self.stop = stop
        self.deadline = deadline

    def __call__(self, best_cost: float) -> bool:
        stop = self.stop
        return time.monotonic() >= self.deadline or stop.remaining_s() <= 0 or stop.poll()


def _route_groups(
    data: pyvrp.ProblemData, routes: list[list[int]], rng: random.Random, group_clients: int
) -> list[list[int]]:
    """Route indices grouped by proximity: a random route, then the routes whose medoid client
    is nearest to its medoid, until the group holds ``group_clients`` clients."""
    dist = data.distance_matrix(0)
    locations = [[data.client(c).location for c in route] for route in routes]
    medoids = []
    for locs in locations:
        sub = dist[np.ix_(locs, locs)]
        medoids.append(locs[int(np.argmin(sub.sum(axis=0) + sub.sum(axis=1)))])
    left = list(range(len(routes)))
    rng.shuffle(left)
    groups = []
    while left:
        seed_route = left.pop(0)
        left.sort(key=lambda r: dist[medoids[seed_route], medoids[r]])
        group, size = [seed_route], len(routes[seed_route])
        while left and size < group_clients:
            r = left.pop(0)
            group.append(r)
            size += len(routes[r])
        groups.append(group)
    return groups


@dataclass
class _Part:
    """A group of routes of a solution as a problem of its own: the group's clients and
    vehicles, the same depots and matrices, the group's routes as the initial solution."""

    data: pyvrp.ProblemData
    initial: pyvrp.Solution
    clients: list[int]
    """The whole problem's client index of each client of the part."""
    types: list[int]
    """The whole problem's vehicle type of each vehicle type of the part."""

    @classmethod
    def of(
        cls, data: pyvrp.ProblemData, routes: list[list[int]], types: list[int], group: list[int]
    ) -> _Part:
        clients = [c for r in group for c in routes[r]]
        counts: dict[int, int] = {}
        for r in group:
            counts[types[r]] = counts.get(types[r], 0) + 1
        part_types = sorted(counts)
        type_of = {t: k for k, t in enumerate(part_types)}
        sub = data.replace(
            clients=[data.client(c) for c in clients],
            vehicle_types=[
                data.vehicle_type(t).replace(num_available=counts[t]) for t in part_types
            ],
        )
        local = {c: k for k, c in enumerate(clients)}
        initial = pyvrp.Solution(
            sub, [pyvrp.Route(sub, [local[c] for c in routes[r]], type_of[types[r]]) for r in group]
        )
        return cls(sub, initial, clients, part_types)

    def routes(self, solution: pyvrp.Solution) -> list[tuple[list[int], int]]:
        """The routes of a solution of the part, in the whole problem's indices."""
        return [
            ([self.clients[a.idx] for a in r if a.is_client()], self.types[r.vehicle_type()])
            for r in solution.routes()
        ]


def _routes(solution: pyvrp.Solution) -> tuple[list[list[int]], list[int]]:
    """The client indices and the vehicle type of each route of ``solution``."""
    routes = [[a.idx for a in r if a.is_client()] for r in solution.routes()]
    return routes, [r.vehicle_type() for r in solution.routes()]


def _solution(data: pyvrp.ProblemData, routes: list[tuple[list[int], int]]) -> pyvrp.Solution:
    return pyvrp.Solution(data, [pyvrp.Route(data, visits, t) for visits, t in routes])


def _solve_decomposed(
    data: pyvrp.ProblemData,
    criterion: _Stop,
    stop: StopCriterion,
    seed: int,
    params: pyvrp.SolveParams,
) -> pyvrp.Solution:
    """Solve the whole problem for a while, then repeatedly re-solve groups of nearby routes
    as sub-problems (:class:`_Part`), keeping a sub-solution when it is cheaper. Progress is
    reported on the whole solution."""
    started = time.monotonic()
    whole = started + DECOMPOSE_WHOLE_FRACTION * stop.remaining_s()
    best = _run(data, _Until(stop, whole), seed, params).best
    evaluator = pyvrp.CostEvaluator([0.0] * data.num_load_dimensions, 0.0, 0.0)
    if not best.is_feasible():
        return best
    criterion.tracker.best = best
    criterion(evaluator.cost(best))
    rng = random.Random(seed)
    round_ = 0
    while stop.remaining_s() > 0 and not stop.interrupted:
        round_ += 1
        routes, types = _routes(best)
        groups = _route_groups(data, routes, rng, DECOMPOSE_GROUP_CLIENTS)
        for g, group in enumerate(groups):
            remaining = stop.remaining_s()
            if remaining <= 0 or stop.poll():
                break
            part = _Part.of(data, routes, types, group)
            deadline = time.monotonic() + remaining / (len(groups) - g)
            result = _run(part.data, _Until(stop, deadline), seed + round_, params, part.initial)
            if not result.best.is_feasible() or not (
                evaluator.cost(result.best) < evaluator.cost(part.initial)
            ):
                continue
            in_group = set(group)
            kept = [(routes[r], types[r]) for r in range(len(routes)) if r not in in_group]
            best = _solution(data, kept + part.routes(result.best))
            # Indices changed: regroup on the next round (the remaining groups of this round
            # refer to the old numbering).
            criterion.tracker.best = best
            criterion(evaluator.cost(best))
            break
    log.debug(
        "pyvrp decomposition: %d rounds, cost %s, %.3fs",
        round_,
        evaluator.cost(best),
        time.monotonic() - started,
    )
    return best


# -- split over processes ----------------------------------------------------------------------

SPLIT_MIN_CLIENTS = 800
"""With more than one process, time-bound searches of decomposable problems from this many
clients on are split (:func:`_solve_split`); smaller ones run whole searches side by side."""

SPLIT_WHOLE_FRACTION = 0.4
"""Share of the time the processes spend on whole-problem searches (different seeds)."""

SPLIT_ROUND_S = 10.0
"""Target length of a round of the split phase (the remaining time is divided evenly)."""


def splits(problem: Problem, processes: int, decompose: bool | None) -> bool:
    """Whether a time-bound search over ``processes`` > 1 processes splits the problem
    (:func:`_solve_split`) rather than running whole searches side by side: when every
    routable shipment is one mandatory visit (sub-problems are made of whole routes) and, with
    ``decompose`` None, there are at least :data:`SPLIT_MIN_CLIENTS` of them. Never with
    ``decompose`` False."""
    if processes < 2 or decompose is False:
        return False
    shipments = [s for s, ok in zip(problem.model.shipments, problem.routable, strict=True) if ok]
    if not all(len(s.pickups) + len(s.deliveries) == 1 and s.is_mandatory for s in shipments):
        return False
    return decompose is True or len(shipments) >= SPLIT_MIN_CLIENTS


def _solve_split(
    built: _Data,
    criterion: _Stop,
    stop: StopCriterion,
    seed: int,
    processes: int,
) -> pyvrp.Solution:
    """The search over ``processes`` processes (:func:`engine.parallel.run_parallel`): first
    whole-problem searches with seeds ``seed + i`` for :data:`SPLIT_WHOLE_FRACTION` of the
    time, keeping the best; then rounds in which that solution's routes are split into one
    group of nearby routes per process (:func:`_route_groups`, a different split each round),
    each group re-solved as a problem of its own (:class:`_Part`) from its routes, and the
    improved groups put back together. Each process thus searches its own part of the plane,
    so the processes add up instead of repeating each other's work. Progress: the whole
    searches' improvements, then each round's."""
    data = built.data
    started = time.monotonic()
    evaluator = pyvrp.CostEvaluator([0.0] * data.num_load_dimensions, 0.0, 0.0)

    def whole(i: int) -> Task[list[tuple[list[int], int]] | None]:
        def task(
            member_stop: StopCriterion, progress: Callable[[Progress], None]
        ) -> list[tuple[list[int], int]] | None:
            child = _Stop(member_stop, criterion.scale, criterion.started, progress, None)
            child.no_improvement = criterion.no_improvement
            child.routes_of = criterion.routes_of
            best = _run(data, child, seed + i, _params(built, child.tracker)).best
            if not best.is_feasible():
                return None
            routes, types = _routes(best)
            return list(zip(routes, types, strict=True))

        return task

    def relay(update: Progress) -> None:
        criterion.solutions += 1
        if criterion.on_progress is not None:
            criterion.on_progress(update)

    found = run_parallel(
        [(f"pyvrp seed {seed + i}", whole(i)) for i in range(processes)],
        stop,
        relay,
        until=started + SPLIT_WHOLE_FRACTION * stop.remaining_s(),
    )
    candidates = [_solution(data, r.value) for r in found if r.value is not None]
    if not candidates:
        return pyvrp.Solution(data, [])  # infeasible: the caller reports that
    best = min(candidates, key=evaluator.cost)  # the first wins ties
    criterion.tracker.best = best
    criterion(evaluator.cost(best))
    rng = random.Random(seed)
    group_clients = math.ceil(data.num_clients / processes)
    rounds = 0
    while stop.remaining_s() > 0 and not stop.interrupted and not stop.poll():
        rounds += 1
        routes, types = _routes(best)
        groups = _route_groups(data, routes, rng, group_clients)
        parts = [_Part.of(data, routes, types, group) for group in groups]
        remaining = stop.remaining_s()
        round_end = time.monotonic() + remaining / max(1, round(remaining / SPLIT_ROUND_S))

        def improve(part: _Part, part_seed: int) -> Task[list[tuple[list[int], int]] | None]:
            def task(
                member_stop: StopCriterion, progress: Callable[[Progress], None]
            ) -> list[tuple[list[int], int]] | None:
                until = _Until(member_stop, member_stop.deadline)
                result = _run(part.data, until, part_seed, _params(built, None), part.initial)
                solution = result.best
                if solution.is_feasible() and evaluator.cost(solution) < evaluator.cost(
                    part.initial
                ):
                    return part.routes(solution)
                return None

            return task

        parts_tasks = [
            (f"pyvrp part {g}", improve(part, seed + rounds * processes + g))
            for g, part in enumerate(parts)
        ]
        improved = run_parallel(parts_tasks, stop, until=round_end)
        merged: list[tuple[list[int], int]] = []
        for group, r in zip(groups, improved, strict=True):
            merged += r.value if r.value is not None else [(routes[i], types[i]) for i in group]
        candidate = _solution(data, merged)
        if candidate.is_feasible() and evaluator.cost(candidate) < evaluator.cost(best):
            best = candidate
            criterion.tracker.best = best
            criterion(evaluator.cost(best))
    log.debug(
        "pyvrp split over %d processes: %d rounds, cost %s, %.3fs",
        processes,
        rounds,
        evaluator.cost(best),
        time.monotonic() - started,
    )
    return best
