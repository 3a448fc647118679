"""The integer problem as PyVRP's data model (:func:`build_data`), and PyVRP's solutions as
route plans (:func:`route_plans`).

- locations: the visit stops of routable shipments, then a start and an end depot per vehicle
  type; identical vehicles (every field but the label) form one vehicle type;
- a delivery-only (pickup-only) shipment is a client with a delivery (pickup) amount; several
  alternatives or time windows form a mutually exclusive client group, a client per
  alternative and window (:func:`_copies`); a pickup-and-delivery shipment is a PyVRP
  shipment (one window per side). Delivery-only goods are on board from the start and
  pickup-only goods stay to the end, as in the engine;
- a soft time window (PyVRP has none) becomes copies too (:func:`_soft_copies`): one whose
  window is the soft window, and copies that may start up to 1, 4 typical legs earlier or
  ½, 1, 2, 4 typical legs later, and as early or late as the hard window allows, each charged
  the most the soft bounds cost inside its window (an upper bound of the true cost, never more
  than twice it beyond the first step). The charge is a lower prize: a group's copies have
  prizes ``P - charge`` (``P``: the largest charge, or ``penalty_cost`` for an optional
  shipment, whose copies that cost more than skipping it are left out), so that choosing a
  copy costs its charge. Visits that start early are moved later afterwards where the route
  allows (:func:`_later_starts`); the engine prices the soft bounds exactly;
- optional shipments are optional clients whose prize is the scaled ``penalty_cost``;
- costs: each profile's "distance" matrix is the scaled arc cost (``cost_per_kilometer`` and
  ``cost_per_traveled_hour``; travel time when no vehicle has any cost, as in the OR-Tools
  backend), so ``unit_distance_cost`` is 1; ``cost_per_hour`` is ``unit_duration_cost`` per
  second of route duration; fixed costs as they are. One scale factor turns currency into
  integers (:func:`cost_scale`). A vehicle's distance limit becomes a limit on its arc cost
  (only offered for purely per-kilometer travel costs, see :mod:`engine.backends.features`);
- time: the engine's integer seconds; vehicle start window → ``tw_early``/``start_late``, end
  window → ``tw_late``; duration limit → ``shift_duration``; distance limit → ``max_distance``;
- allowed vehicles: vehicles that may not serve the same shipments are of different types, and
  each (profile, forbidden visits) its own profile (:func:`_allowed_profiles`): the base
  profile's matrices with every leg into or out of a forbidden visit lasting
  ``Problem.unreachable_s`` (longer than the horizon: arriving there is late, time warp, so no
  feasible solution visits it) and as long as :func:`_forbidden_distance`.

Why one module of over 500 lines: it is the one mapping between the engine's problem and
PyVRP's data, both ways (data out, routes and injected solutions back); the index maps it builds
(locations, clients, copies, profiles) are what the way back reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pyvrp

from engine.backends.base import RoutePlan
from engine.backends.features import forbidden_shipments, travel_profile_key
from engine.errors import NoSolutionError, SolverError
from engine.injected import resolve
from engine.model import TimeWindow
from engine.problem import Problem, Window
from engine.reoptimisation import initial_routes
from engine.units import COST_SCALE, ceil_int, floor_int

__all__ = ["PyVRPData", "Scale", "VehicleType", "build_data", "cost_scale", "route_plans"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MAX_TOTAL_SCALED = 1e13
"""Upper bound for any total cost after scaling (PyVRP adds penalties on top in int64)."""

MIN_MEAN_ARC_UNITS = 100.0
"""Scaled arc costs must average at least this many units (rounding error ≤ 0.5 %)."""

MIN_UNITS_PER_SECOND = 20.0
"""A positive ``cost_per_hour`` must scale to at least this many units per second."""

_NO_LIMIT = int(np.iinfo(np.int64).max)

SOFT_EARLY_STEPS = (1.0, 4.0)
"""How many typical legs (:func:`_typical_leg_s`) a soft window's copies may start early; one
more copy reaches the hard window's start (:func:`_soft_copies`)."""

SOFT_LATE_STEPS = (0.5, 1.0, 2.0, 4.0)
"""How many typical legs a soft window's copies may start late; one more copy reaches the
hard window's end. Lateness is the common case (a visit waits when it is early)."""


@dataclass
class VehicleType:
    """Identical vehicles (label aside) as one PyVRP vehicle type."""

    vehicles: list[int]
    """Our vehicle indices; the first one stands for all."""
    profile: int
    """PyVRP routing profile: vehicles of one profile share travel and cost matrices."""
    start_loc: int = -1
    """PyVRP location of the type's start depot."""
    end_loc: int = -1
    """PyVRP location of the type's end depot."""
    forbidden_stops: frozenset[int] = frozenset()
    """Our visit stops of the shipments whose ``allowed_vehicle_indices`` leave the type out."""


@dataclass(frozen=True)
class Scale:
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
        """PyVRP's default penalty range, multiplied by ``refine``."""
        default = pyvrp.PenaltyParams()
        return pyvrp.PenaltyParams(
            min_penalty=default.min_penalty * self.refine,
            max_penalty=default.max_penalty * self.refine,
        )


@dataclass
class PyVRPData:
    """A problem as PyVRP data, with what it takes to map solutions back."""

    data: pyvrp.ProblemData
    scale: Scale
    client_stop: list[int]
    """Our stop index of each PyVRP client (a stop with several windows has a copy per window)."""
    client_soft_start: list[int | None]
    """Per PyVRP client: the soft start (integer seconds) of a copy that may start before it
    (:func:`_soft_copies`), else None; :func:`_later_starts` moves such visits later."""
    client_free_until: list[int]
    """Per PyVRP client: the latest start that costs no more than the window's earliest start
    would (its window's end, or the soft end of a soft window)."""
    prize_offset: int
    """The prizes PyVRP counts as uncollected whatever copy of each group a solution visits
    (every copy's but the best one's): PyVRP's cost minus this is the model's cost."""
    shipment_stops: list[tuple[int, int]]
    """Our pickup and delivery stop of each PyVRP shipment."""
    types: list[VehicleType]


@dataclass
class _Arcs:
    """Per profile: arc costs (currency), integer travel durations, and which legs exist."""

    costs: list[FloatArray]
    durations: list[IntArray]
    reachable: list[BoolArray]


@dataclass
class _Visits:
    """PyVRP's clients, client groups and shipments, with our stops."""

    clients: list[pyvrp.Client]
    client_stop: list[int]
    client_soft_start: list[int | None]
    client_free_until: list[int]
    groups: list[pyvrp.ClientGroup]
    shipments: list[pyvrp.Shipment]
    shipment_stops: list[tuple[int, int]]
    prize_offset: int = 0


@dataclass(frozen=True)
class _Copy:
    """One PyVRP client of a visit: its stop, hard window, and what its soft bounds cost at
    most in that window (currency)."""

    stop: int
    window: Window
    charge: float = 0.0
    soft_start: int | None = None
    """The soft start (integer seconds) when the window opens before it."""
    soft_end: int | None = None
    """The soft end (integer seconds, rounded down) of a window with a cost after it."""

    @property
    def free_until(self) -> int:
        """The latest start in the window that costs nothing after the soft end."""
        hi = self.window[1]
        return hi if self.soft_end is None else min(hi, self.soft_end)


@dataclass(frozen=True)
class _Loads:
    """The load types some vehicle limits and some routable shipment demands (as OR-Tools),
    with their total demand."""

    types: list[str]
    totals: list[int]

    def amounts(self, demands: Mapping[str, int]) -> list[int]:
        """A shipment's demand per load type."""
        return [int(demands.get(t, 0)) for t in self.types]


def build_data(problem: Problem) -> PyVRPData:
    """``problem`` as PyVRP data (see the module docstring). Raises :class:`NoSolutionError`
    when no vehicle can start and end at all."""
    model = problem.model
    no_costs = problem.free_of_costs
    types, profile_vehicle = _vehicle_types(problem)
    location_stop = _locations(problem, types)
    arcs = _arcs(problem, profile_vehicle, np.asarray(location_stop, dtype=np.int64), no_costs)
    copies = _client_copies(problem, _typical_leg_s(arcs))
    prizes = [
        float(sh.penalty_cost or 0.0) for s, sh in enumerate(model.shipments) if problem.routable[s]
    ]
    prizes += [max(c.charge for c in cs) * len(cs) for cs in copies.values() if cs]
    scale = cost_scale(problem, arcs.costs, arcs.durations, arcs.reachable, prizes, no_costs)
    loads = _loads(problem)
    loc_of = {stop: i for i, stop in enumerate(location_stop)}
    visits = _visits(problem, loc_of, loads, scale, copies)
    distance_matrices = _distance_matrices(problem, types, arcs.costs, scale, no_costs)
    _allowed_profiles(problem, types, location_stop, distance_matrices, arcs.durations)
    depots: list[pyvrp.Depot] = []
    vehicle_types = [_vehicle_type(problem, t, depots, loads, scale.costs) for t in types]
    data = pyvrp.ProblemData(
        locations=[pyvrp.Location(x=0.0, y=0.0) for _ in location_stop],
        clients=visits.clients,
        depots=depots,
        vehicle_types=vehicle_types,
        distance_matrices=distance_matrices,  # type: ignore[arg-type]  # pyvrp's stub: ndarray[int]
        duration_matrices=arcs.durations,  # type: ignore[arg-type]
        groups=visits.groups,
        shipments=visits.shipments,
    )
    return PyVRPData(
        data=data,
        scale=scale,
        client_stop=visits.client_stop,
        client_soft_start=visits.client_soft_start,
        client_free_until=visits.client_free_until,
        prize_offset=visits.prize_offset,
        shipment_stops=visits.shipment_stops,
        types=types,
    )


def _vehicle_types(problem: Problem) -> tuple[list[VehicleType], list[int]]:
    """The vehicle types of the vehicles that can start at all, and one vehicle per profile."""
    stops = problem.stops
    types: list[VehicleType] = []
    by_key: dict[str, int] = {}
    profile_keys: dict[tuple[int, float, float, float], int] = {}
    profile_vehicle: list[int] = []
    forbidden = forbidden_shipments(problem)
    for v, vehicle in enumerate(problem.model.vehicles):
        start_windows = problem.windows[stops.vehicle_start(v)]
        end_windows = problem.windows[stops.vehicle_end(v)]
        if not start_windows or not end_windows or start_windows[0][0] > end_windows[-1][1]:
            continue  # no feasible start or end time: unusable
        k = problem.travel.vehicle_matrix[v]
        key = repr((replace(vehicle, label=""), k, sorted(forbidden[v])))
        if key in by_key:
            types[by_key[key]].vehicles.append(v)
            continue
        pkey = travel_profile_key(problem, v)
        if pkey not in profile_keys:
            profile_keys[pkey] = len(profile_vehicle)
            profile_vehicle.append(v)
        by_key[key] = len(types)
        forbidden_stops = _stops_of(problem, forbidden[v])
        types.append(VehicleType([v], profile_keys[pkey], forbidden_stops=forbidden_stops))
    if not types:
        raise NoSolutionError("infeasible", "no vehicle has a feasible start and end time")
    return types, profile_vehicle


def _locations(problem: Problem, types: list[VehicleType]) -> list[int]:
    """Our stop of each PyVRP location: visit stops of routable shipments, then each type's
    start and end stop (recorded in the type)."""
    stops = problem.stops
    location_stop: list[int] = []
    for s in range(len(problem.model.shipments)):
        if problem.routable[s]:
            location_stop.extend(stops.pickup_stops[s])
            location_stop.extend(stops.delivery_stops[s])
    for t in types:
        t.start_loc = len(location_stop)
        location_stop.append(stops.vehicle_start(t.vehicles[0]))
        t.end_loc = len(location_stop)
        location_stop.append(stops.vehicle_end(t.vehicles[0]))
    return location_stop


def _arcs(problem: Problem, profile_vehicle: list[int], index: IntArray, no_costs: bool) -> _Arcs:
    """Arc costs (travel seconds when ``no_costs``) and durations per profile, between the
    locations (our stops ``index``)."""
    cut = np.ix_(index, index)
    arcs = _Arcs([], [], [])
    for v in profile_vehicle:
        travel = problem.travel_s(v)[cut]
        arcs.durations.append(travel)
        k = problem.travel.vehicle_matrix[v]
        arcs.reachable.append(np.isfinite(problem.travel.durations_s[k][cut]))
        arcs.costs.append(travel.astype(np.float64) if no_costs else problem.arc_cost(v)[cut])
    return arcs


def _distance_matrices(
    problem: Problem,
    types: list[VehicleType],
    arc_costs: list[FloatArray],
    scale: Scale,
    no_costs: bool,
) -> list[IntArray]:
    """PyVRP's "distance" per profile: the scaled arc costs, rounded up where a distance limit
    applies to them (so that the limit holds exactly)."""
    vehicles = problem.model.vehicles
    limited_profiles = {
        t.profile for t in types if vehicles[t.vehicles[0]].route_distance_limit_m is not None
    }
    matrices = []
    for p, cost in enumerate(arc_costs):
        scaled = cost if no_costs else cost * scale.costs
        rounded = np.ceil(scaled - 1e-9) if p in limited_profiles else np.rint(scaled)
        matrices.append(rounded.astype(np.int64))
    return matrices


def _stops_of(problem: Problem, shipments: frozenset[int]) -> frozenset[int]:
    """The visit stops (every alternative) of ``shipments``."""
    stops = problem.stops
    return frozenset(
        i for s in shipments for i in (*stops.pickup_stops[s], *stops.delivery_stops[s])
    )


FORBIDDEN_DISTANCE_CAP = 10**12
"""Upper bound of a forbidden leg's "distance" (PyVRP sums costs and penalties in int64)."""


def _forbidden_distance(distances: IntArray) -> int:
    """The "distance" of a leg into or out of a forbidden visit: longer than any route of
    ordinary legs (the longest leg times the number of locations), so that PyVRP's search,
    which passes through infeasible solutions, prefers any other insertion; at most
    :data:`FORBIDDEN_DISTANCE_CAP`."""
    return int(min((int(distances.max(initial=0)) + 1) * len(distances), FORBIDDEN_DISTANCE_CAP))


def _allowed_profiles(
    problem: Problem,
    types: list[VehicleType],
    location_stop: list[int],
    distances: list[IntArray],
    durations: list[IntArray],
) -> None:
    """Give each vehicle type that may not serve some visits a profile of its own per (base
    profile, forbidden visits), appended to ``distances`` and ``durations``: the base matrices
    with the legs into and out of those visits' locations made unusable (module docstring).
    The base profiles stay first (profile 0 is one of them)."""
    added: dict[tuple[int, frozenset[int]], int] = {}
    where = np.asarray(location_stop, dtype=np.int64)
    for t in types:
        if not t.forbidden_stops:
            continue
        key = (t.profile, t.forbidden_stops)
        if key not in added:
            mask = np.isin(where, np.fromiter(t.forbidden_stops, dtype=np.int64))
            far = _forbidden_distance(distances[t.profile])
            distance, duration = distances[t.profile].copy(), durations[t.profile].copy()
            distance[mask, :] = far
            distance[:, mask] = far
            duration[mask, :] = problem.unreachable_s
            duration[:, mask] = problem.unreachable_s
            np.fill_diagonal(distance, 0)  # PyVRP requires zero diagonals
            np.fill_diagonal(duration, 0)
            added[key] = len(distances)
            distances.append(distance)
            durations.append(duration)
        t.profile = added[key]


def _loads(problem: Problem) -> _Loads:
    model = problem.model
    limited = {t for v in model.vehicles for t in v.load_limits}
    routable = [sh for s, sh in enumerate(model.shipments) if problem.routable[s]]
    demanded = {t for sh in routable for t in sh.demanded_types}
    load_types = sorted(limited & demanded)
    totals = [sum(sh.max_visit_demand(t) for sh in routable) for t in load_types]
    return _Loads(load_types, totals)


def _visits(
    problem: Problem,
    loc_of: dict[int, int],
    loads: _Loads,
    scale: Scale,
    copies: dict[int, list[_Copy]],
) -> _Visits:
    """Each routable shipment as a PyVRP shipment (a pair) or as clients (``copies``)."""
    visits = _Visits([], [], [], [], [], [], [])
    for s, shipment in enumerate(problem.model.shipments):
        if not problem.routable[s]:
            continue
        required = shipment.is_mandatory
        prize = 0 if required else round(float(shipment.penalty_cost or 0.0) * scale.prizes)
        if shipment.pickups and shipment.deliveries:
            # one amount: the pickup's, equal to the delivery's (else the "pair_visit_demands"
            # feature keeps this backend out)
            amount = loads.amounts(shipment.visit_demands(True, 0))
            _add_pair(problem, s, loc_of, amount, prize, visits)
        else:
            _add_clients(problem, s, loc_of, loads, scale, copies[s], visits)
    return visits


def _add_pair(
    problem: Problem, s: int, loc_of: dict[int, int], amount: list[int], prize: int, out: _Visits
) -> None:
    """Pickup-and-delivery shipment ``s`` as a PyVRP shipment."""
    stops = problem.stops
    pickup, delivery = stops.pickup_stops[s][0], stops.delivery_stops[s][0]
    (p_lo, p_hi), (d_lo, d_hi) = problem.windows[pickup][0], problem.windows[delivery][0]
    out.shipments.append(
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
            required=problem.model.shipments[s].is_mandatory,
        )
    )
    out.shipment_stops.append((pickup, delivery))


def _add_clients(
    problem: Problem,
    s: int,
    loc_of: dict[int, int],
    loads: _Loads,
    scale: Scale,
    copies: list[_Copy],
    out: _Visits,
) -> None:
    """Pickup-only or delivery-only shipment ``s``: a client per copy (alternative and time
    window, :func:`_copies`), in a mutually exclusive group when there are several; a copy's
    prize is the shipment's less the copy's charge (module docstring)."""
    shipment = problem.model.shipments[s]
    required = shipment.is_mandatory
    is_pickup = bool(shipment.pickups)
    stops = problem.stops
    top = max((c.charge for c in copies), default=0.0)
    if not required:  # a copy that costs more than skipping the shipment is never chosen
        top = float(shipment.penalty_cost or 0.0)
        copies = [c for c in copies if c.charge < top or c.charge == 0.0]
    prizes = [round((top - c.charge) * scale.prizes) for c in copies]
    group = len(out.groups) if len(copies) > 1 else None
    if group is not None:
        out.prize_offset += sum(prizes) - max(prizes)
    members = []
    for copy, prize in zip(copies, prizes, strict=True):
        stop_index, (lo, hi) = copy.stop, copy.window
        # the shipment's demands plus this alternative's own (issue 15)
        amount = loads.amounts(
            shipment.visit_demands(is_pickup, int(stops.alternative[stop_index]))
        )
        members.append(len(out.clients))
        out.clients.append(
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
        out.client_stop.append(stop_index)
        out.client_soft_start.append(copy.soft_start)
        out.client_free_until.append(copy.free_until)
    if group is not None:
        out.groups.append(pyvrp.ClientGroup(members, required=required))


def _mean_leg_s(durations: list[IntArray], reachable: list[BoolArray]) -> float:
    """The mean positive travel time of the legs that exist, over every profile (seconds; 0
    when no leg takes time)."""
    seconds = np.concatenate([d[m & (d > 0)] for d, m in zip(durations, reachable, strict=True)])
    return float(seconds.mean()) if seconds.size else 0.0


def _typical_leg_s(arcs: _Arcs) -> float:
    """The typical leg of the soft-window copies' steps: :func:`_mean_leg_s`, at least 1 s."""
    return max(1.0, _mean_leg_s(arcs.durations, arcs.reachable))


def _client_copies(problem: Problem, leg_s: float) -> dict[int, list[_Copy]]:
    """The copies of each routable single-visit shipment (pickup-only or delivery-only)."""
    stops = problem.stops
    out = {}
    for s, shipment in enumerate(problem.model.shipments):
        if problem.routable[s] and not (shipment.pickups and shipment.deliveries):
            alternatives = stops.pickup_stops[s] if shipment.pickups else stops.delivery_stops[s]
            out[s] = _copies(problem, alternatives, leg_s)
    return out


def _copies(problem: Problem, alternatives: Sequence[int], leg_s: float) -> list[_Copy]:
    """A PyVRP client has one time window: one copy per alternative stop and hard window of
    it, in the stops' and windows' order (the copies share the stop's location); a visit with a
    soft window has the copies of :func:`_soft_copies` instead."""
    out: list[_Copy] = []
    model = problem.model
    for stop in alternatives:
        hard = problem.windows[stop]
        windows = problem.stops.visit_request(model, stop).time_windows
        if len(hard) == 1 and len(windows) == 1 and windows[0].is_soft:
            out += _soft_copies(problem, stop, hard[0], windows[0], leg_s)
        else:
            out += [_Copy(stop, window) for window in hard]
    return out


def _soft_copies(
    problem: Problem, stop: int, hard: Window, window: TimeWindow, leg_s: float
) -> list[_Copy]:
    """The copies of a visit with a soft window (module docstring): the soft window within
    ``hard`` first, then windows that open earlier (by :data:`SOFT_EARLY_STEPS` typical legs,
    then at the hard start) and that close later (:data:`SOFT_LATE_STEPS`, then at the hard
    end); each charged the most the soft bounds cost in it (the cost is convex in the start
    time: the larger of its ends' costs)."""
    lo, hi = hard
    g0 = problem.model.global_start_time
    early = (window.cost_per_hour_before_soft_start_time or 0.0) / 3600.0
    late = (window.cost_per_hour_after_soft_end_time or 0.0) / 3600.0
    soft_lo = None if window.soft_start_time is None or not early else window.soft_start_time - g0
    soft_hi = None if window.soft_end_time is None or not late else window.soft_end_time - g0

    def cost(t: int) -> float:
        before = 0.0 if soft_lo is None else max(0.0, soft_lo - t) * early
        after = 0.0 if soft_hi is None else max(0.0, t - soft_hi) * late
        return before + after

    a = lo if soft_lo is None else min(hi, max(lo, ceil_int(soft_lo)))
    b = hi if soft_hi is None else max(a, min(hi, floor_int(soft_hi)))
    starts = [a] + [max(lo, a - ceil_int(k * leg_s)) for k in SOFT_EARLY_STEPS] + [lo]
    ends = [b] + [min(hi, b + ceil_int(k * leg_s)) for k in SOFT_LATE_STEPS] + [hi]
    windows = [(a, b)] + [(x, b) for x in starts[1:]] + [(a, y) for y in ends[1:]]
    soft_end = None if soft_hi is None else floor_int(soft_hi)
    out: list[_Copy] = []
    for w in dict.fromkeys(windows):  # distinct, in order
        soft_start = a if w[0] < a else None
        out.append(_Copy(stop, w, max(cost(w[0]), cost(w[1])), soft_start, soft_end))
    return out


def _vehicle_type(
    problem: Problem, t: VehicleType, depots: list[pyvrp.Depot], loads: _Loads, scale: float
) -> pyvrp.VehicleType:
    """Vehicle type ``t`` for PyVRP; appends its start and end depot to ``depots``."""
    v = t.vehicles[0]
    vehicle = problem.model.vehicles[v]
    stops = problem.stops
    (start_lo, start_hi) = problem.windows[stops.vehicle_start(v)][0]
    (_, end_hi) = problem.windows[stops.vehicle_end(v)][-1]
    start_depot = len(depots)
    depots.append(pyvrp.Depot(location=t.start_loc))
    end_depot = len(depots)
    depots.append(pyvrp.Depot(location=t.end_loc))
    capacity = [
        int(min(vehicle.load_limits.get(lt, total), total))
        for lt, total in zip(loads.types, loads.totals, strict=True)
    ]
    max_distance = _NO_LIMIT
    if vehicle.route_distance_limit_m is not None:
        per_meter = vehicle.cost_per_kilometer / 1000.0 * scale
        max_distance = floor_int(vehicle.route_distance_limit_m * per_meter)
    shift = _NO_LIMIT
    if vehicle.route_duration_limit_s is not None:
        shift = floor_int(vehicle.route_duration_limit_s)
    per_second = vehicle.cost_per_hour / 3600.0 * scale
    return pyvrp.VehicleType(
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


def cost_scale(
    problem: Problem,
    arc_costs: list[FloatArray],
    durations: list[IntArray],
    reachable: list[BoolArray],
    prizes: list[float],
    no_costs: bool,
) -> Scale:
    """The scale factors for ``problem`` (see :class:`Scale`); ``reachable`` masks the legs
    of each profile that exist."""
    model = problem.model
    horizon = float(problem.horizon)
    finite = [c[m] for c, m in zip(arc_costs, reachable, strict=True)]
    positive = np.concatenate([c[c > 0] for c in finite])
    mean_cost = float(positive.mean()) if positive.size else 0.0
    mean_seconds = _mean_leg_s(durations, reachable)
    per_hour = [v.cost_per_hour for v in model.vehicles if v.cost_per_hour > 0]
    longest = max((float(c.max(initial=0.0)) for c in finite), default=0.0)
    bound = (
        longest * (problem.stops.size + 1)
        + max(per_hour, default=0.0) * horizon / 3600.0
        + sum(v.fixed_cost for v in model.vehicles)
        + sum(prizes)
    )
    cap = MAX_TOTAL_SCALED / bound if bound > 0 else float(COST_SCALE)
    if no_costs:  # arc costs are travel seconds, prizes must dominate them
        return Scale(costs=1.0, prizes=min(float(COST_SCALE), cap), refine=1.0)
    natural = mean_seconds / mean_cost if mean_cost > 0 and mean_seconds > 0 else 1.0
    refine = 1.0
    while refine < 1e9 and (
        mean_cost * natural * refine < MIN_MEAN_ARC_UNITS
        or any(c / 3600.0 * natural * refine < MIN_UNITS_PER_SECOND for c in per_hour)
    ):
        refine *= 10.0
    costs = natural * refine
    if costs > cap:
        refine *= cap / costs
        costs = cap
    return Scale(costs=costs, prizes=costs, refine=max(refine, 1e-6))


def route_plans(built: PyVRPData, solution: pyvrp.Solution, n_vehicles: int) -> list[RoutePlan]:
    """One plan per vehicle of the problem from a PyVRP solution of ``built``."""
    plans = [RoutePlan(vehicle=v) for v in range(n_vehicles)]
    free = [list(t.vehicles) for t in built.types]
    for route in solution.routes():
        v = free[route.vehicle_type()].pop(0)
        visit_stops: list[int] = []
        starts: list[int] = []
        times = _later_starts(built, route)
        for activity, start in zip(route.schedule(), times, strict=True):
            stop = _stop_of(built, activity)
            if stop is not None:
                visit_stops.append(stop)
                starts.append(start)
        _reject_forbidden(built.types[route.vehicle_type()], v, visit_stops)
        plans[v] = RoutePlan(
            vehicle=v,
            stops=tuple(visit_stops),
            start_s=int(route.start_time()),
            visit_start_s=tuple(starts),
            end_s=times[-1],
        )
    return plans


def _later_starts(built: PyVRPData, route: pyvrp.Route) -> list[int]:
    """The start of each activity of ``route``'s schedule (depots included), a visit of a copy
    that opens before its soft start (:func:`_soft_copies`) moved later, towards that soft
    start: PyVRP starts every visit as early as its window allows, which can cost early-start
    charges that waiting avoids. Later visits move as far as they must, never past the time
    they can start for free (:attr:`PyVRPData.client_free_until`), and the route's end only
    when the vehicle has no cost per hour (within its end window and duration limit), so no
    cost grows."""
    schedule = route.schedule()
    starts = [int(a.start_time) for a in schedule]
    is_client = [a.type == pyvrp.ActivityType.CLIENT for a in schedule]
    targets = [
        built.client_soft_start[a.idx] if client else None
        for a, client in zip(schedule, is_client, strict=True)
    ]
    early = [t is not None and t > start for t, start in zip(targets, starts, strict=True)]
    if not any(early):
        return starts
    if route.num_trips() > 1:
        return starts  # reloading depots keep their times
    data = built.data
    vehicle_type = data.vehicle_type(route.vehicle_type())
    travel = data.duration_matrix(vehicle_type.profile)
    where = [_location(data, a) for a in schedule]
    latest = starts[:]  # per activity: the latest start that keeps the later ones possible
    if vehicle_type.unit_duration_cost == 0:
        shift = int(vehicle_type.shift_duration)
        longest = starts[0] + shift if shift < _NO_LIMIT - starts[0] else _NO_LIMIT
        latest[-1] = max(starts[-1], min(int(vehicle_type.tw_late), longest))
    for i in range(len(schedule) - 2, 0, -1):
        room = latest[i + 1] - int(schedule[i].duration) - int(travel[where[i], where[i + 1]])
        idx = schedule[i].idx
        kind = schedule[i].type
        if kind == pyvrp.ActivityType.PICKUP:
            cap = int(data.shipment(idx).pickup.tw_late)
        elif kind == pyvrp.ActivityType.DELIVERY:
            cap = int(data.shipment(idx).delivery.tw_late)
        elif not is_client[i]:
            cap = starts[i]  # a depot of a trip keeps its time
        elif early[i]:
            cap = min(built.client_free_until[idx], int(targets[i] or 0))
        else:
            cap = built.client_free_until[idx]
        latest[i] = max(starts[i], min(room, cap))
    out = starts[:]
    for i in range(1, len(schedule)):
        arrive = out[i - 1] + int(schedule[i - 1].duration) + int(travel[where[i - 1], where[i]])
        out[i] = max(arrive, latest[i] if early[i] else starts[i])
    return out


def _location(data: pyvrp.ProblemData, activity: pyvrp.ScheduledActivity) -> int:
    """PyVRP's location of a scheduled activity."""
    kind = activity.type
    if kind == pyvrp.ActivityType.CLIENT:
        return int(data.client(activity.idx).location)
    if kind == pyvrp.ActivityType.PICKUP:
        return int(data.shipment(activity.idx).pickup.location)
    if kind == pyvrp.ActivityType.DELIVERY:
        return int(data.shipment(activity.idx).delivery.location)
    return int(data.depot(activity.idx).location)


def _reject_forbidden(vehicle_type: VehicleType, v: int, visit_stops: list[int]) -> None:
    """Raise :class:`SolverError` when a route of vehicle ``v`` visits a stop its shipment's
    ``allowed_vehicle_indices`` leave ``v`` out of (the profiles make that infeasible, so this
    is a bug, never an answer)."""
    wrong = vehicle_type.forbidden_stops.intersection(visit_stops)
    if wrong:
        raise SolverError(f"pyvrp routed vehicle {v} to stops {sorted(wrong)} it may not visit")


def _stop_of(built: PyVRPData, activity: pyvrp.ScheduledActivity) -> int | None:
    """Our stop of a visit of a route's schedule; None for a depot."""
    kind = activity.type
    if kind == pyvrp.ActivityType.CLIENT:
        return built.client_stop[activity.idx]
    if kind == pyvrp.ActivityType.PICKUP:
        return built.shipment_stops[activity.idx][0]
    if kind == pyvrp.ActivityType.DELIVERY:
        return built.shipment_stops[activity.idx][1]
    return None


def injected_initial_solution(built: PyVRPData, problem: Problem) -> pyvrp.Solution | None:
    """The model's ``injected_first_solution_routes`` as a PyVRP solution to start the search
    from (None without any); only clients (the routes of pickup-and-delivery shipments are
    OR-Tools', see :mod:`engine.backends.features`)."""
    if not problem.model.injected_first_solution_routes:
        return None
    routes = initial_routes(problem, resolve(problem.model))
    if routes is None:
        return None
    copies_of: dict[int, list[int]] = {}
    for c, stop in enumerate(built.client_stop):
        copies_of.setdefault(stop, []).append(c)
    type_of = {v: t for t, vt in enumerate(built.types) for v in vt.vehicles}
    out = []
    for v, stops in enumerate(routes):
        clients = _initial_clients(built, problem, v, stops, copies_of) if v in type_of else []
        if clients:
            out.append(pyvrp.Route(built.data, clients, type_of[v]))
    return pyvrp.Solution(built.data, out)


def _initial_clients(
    built: PyVRPData, problem: Problem, v: int, stops: list[int], copies_of: dict[int, list[int]]
) -> list[int]:
    """The clients of vehicle ``v``'s injected route ``stops``: of a stop's copies (one per
    window), the one whose window the engine's earliest schedule uses (the first window that
    has not closed on arrival; the last one when all have)."""
    travel = problem.travel_s(v)
    prev = problem.stops.vehicle_start(v)
    t = problem.windows[prev][0][0] if problem.windows[prev] else 0
    clients = []
    for stop in stops:
        copies = copies_of.get(stop)
        if not copies:
            continue
        arrive = t + int(problem.service_s[prev]) + int(travel[prev, stop])
        windows = [built.data.client(c) for c in copies]
        k = next((i for i, w in enumerate(windows) if arrive <= w.tw_late), len(copies) - 1)
        clients.append(copies[k])
        t, prev = max(arrive, windows[k].tw_early), stop
    return clients
