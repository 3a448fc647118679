"""Stops of a model and the travel durations and distances between them.

Stop layout (shared by every backend): one stop per visit request (each pickup or delivery
alternative of each shipment, in shipment order), then for each vehicle its start stop and its
end stop. A vehicle without a start (end) location has zero travel from (to) its start (end).

Travel modes (``Vehicle.travel_mode``): road travel builds one matrix per distinct road profile
of the vehicles (:data:`engine.model.TRAVEL_MODE_PROFILES`; unspecified: the server's default
profile), each over that profile's network, which must be served (else a violation naming
``vehicles[i].travel_mode``). Geodesic travel has no roads: ``WALKING`` vehicles move at
walking pace (:data:`geodata.ingest.profiles.WALKING_SPEED_KPH`, 5 km/h), every other mode at
the request's geodesic speed (a truck: the same speed; ``travel_duration_multiple`` slows it).

Route modifiers (``Vehicle.route_modifiers``, road travel only): each distinct (profile,
modifiers) gets its matrix, over the profile's network without the avoided roads where that
connects the pair, else the unmodified value (Google's "where reasonable"); see
:func:`_road_matrices`.

U-turns (``VisitRequest.avoid_u_turns``, road travel only; geodesic travel and client matrices
are a violation naming the field): such a visit request has two stops, its *headings* (0: along
the directed edge its location snaps to, 1: against it), both alternatives of the same request
(``Stops.alternative``), so the solver picks one. A heading's matrix row and column arrive only
along its direction of travel and leave only along it (its snapped point without the opposite
edge, :func:`_headed`): reaching the location and leaving it the way it came needs a detour
through the road network. On a one-way road both headings are the same point. A location
snapped exactly onto a road node is not restricted (the network has no turns at nodes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from engine.errors import FieldViolation, InvalidModelError
from engine.model import (
    TRAVEL_MODE_PROFILES,
    LatLng,
    RouteModifiers,
    ShipmentModel,
    TravelMode,
    VisitRequest,
)
from engine.roads import RoadContext
from geodata.geo import haversine_matrix_m
from geodata.ingest.profiles import WALKING_SPEED_KPH
from geodata.matrix import MatrixResult
from geodata.network import RoadNetwork
from geodata.snap import SnapResult

__all__ = [
    "RoadPoints",
    "Stops",
    "TravelMatrices",
    "build_stops",
    "build_travel_matrices",
    "stop_map",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Stops:
    """Index of the stops of a model (see module docstring)."""

    shipment: IntArray
    """Shipment index of each visit stop."""
    is_pickup: npt.NDArray[np.bool_]
    alternative: IntArray
    """Index of the visit request in ``pickups`` or ``deliveries``."""
    pickup_stops: tuple[tuple[int, ...], ...]
    """Per shipment, the stops of its pickup alternatives."""
    delivery_stops: tuple[tuple[int, ...], ...]
    num_vehicles: int
    heading: IntArray | None = None
    """Per visit stop: -1, or the heading (0 or 1) of a visit request with ``avoid_u_turns``
    (see the module docstring); None: no such request."""

    def heading_of(self, stop: int) -> int:
        """The heading of ``stop`` (-1: none, also for vehicle stops)."""
        if self.heading is None or stop >= self.num_visits:
            return -1
        return int(self.heading[stop])

    @property
    def num_visits(self) -> int:
        return len(self.shipment)

    @property
    def size(self) -> int:
        return self.num_visits + 2 * self.num_vehicles

    def vehicle_start(self, vehicle: int) -> int:
        return self.num_visits + 2 * vehicle

    def vehicle_end(self, vehicle: int) -> int:
        return self.num_visits + 2 * vehicle + 1

    def visit_request(self, model: ShipmentModel, stop: int) -> VisitRequest:
        shipment = model.shipments[int(self.shipment[stop])]
        visits = shipment.pickups if self.is_pickup[stop] else shipment.deliveries
        return visits[int(self.alternative[stop])]


def _visit_key(stops: Stops, i: int) -> tuple[int, bool, int, int]:
    return (
        int(stops.shipment[i]),
        bool(stops.is_pickup[i]),
        int(stops.alternative[i]),
        stops.heading_of(i),
    )


def stop_map(
    original: Stops, other: Stops, missing: Callable[[int], int] | None = None
) -> IntArray:
    """The stop of ``original`` of each stop of ``other`` (the stops of a model derived from
    it with the same vehicles): the same visit (shipment, pickup or delivery, alternative,
    heading), the same vehicle start or end. ``missing``: the stop for a visit of ``other``
    that ``original`` does not have (none: every visit must be there)."""
    where = {_visit_key(original, i): i for i in range(original.num_visits)}
    out = np.empty(other.size, dtype=np.int64)
    for i in range(other.num_visits):
        key = _visit_key(other, i)
        out[i] = where[key] if missing is None or key in where else missing(i)
    out[other.num_visits :] = np.arange(original.num_visits, original.size)
    return out


def build_stops(model: ShipmentModel) -> Stops:
    shipment: list[int] = []
    is_pickup: list[bool] = []
    alternative: list[int] = []
    heading: list[int] = []
    pickup_stops: list[tuple[int, ...]] = []
    delivery_stops: list[tuple[int, ...]] = []
    for s, sh in enumerate(model.shipments):
        for pickup, visits, out in (
            (True, sh.pickups, pickup_stops),
            (False, sh.deliveries, delivery_stops),
        ):
            first = len(shipment)
            for k, visit in enumerate(visits):
                for h in (0, 1) if visit.avoid_u_turns else (-1,):
                    shipment.append(s)
                    is_pickup.append(pickup)
                    alternative.append(k)
                    heading.append(h)
            out.append(tuple(range(first, len(shipment))))
    return Stops(
        shipment=np.asarray(shipment, dtype=np.int64),
        is_pickup=np.asarray(is_pickup, dtype=np.bool_),
        alternative=np.asarray(alternative, dtype=np.int64),
        pickup_stops=tuple(pickup_stops),
        delivery_stops=tuple(delivery_stops),
        num_vehicles=len(model.vehicles),
        heading=np.asarray(heading, dtype=np.int64) if any(h >= 0 for h in heading) else None,
    )


@dataclass(frozen=True, eq=False)
class RoadPoints:
    """Where the stops are on a road network: ``point[stop]`` indexes ``snaps`` (the distinct
    locations, snapped to ``network``), -1 for a stop without a location."""

    point: IntArray
    snaps: SnapResult
    network: RoadNetwork | None = None
    """The network the matrix's paths run on (route geometry is drawn on it)."""
    fallback: RoadPoints | None = None
    """With route modifiers: the stops on the unmodified network, for the pairs the network
    without the avoided roads cannot connect."""
    fallback_pairs: npt.NDArray[np.bool_] | None = None
    """With route modifiers: ``[a, b]`` true where the leg between distinct locations ``a`` and
    ``b`` runs on :attr:`fallback` ("where reasonable")."""
    headed: npt.NDArray[np.bool_] | None = None
    """Per point of ``snaps``: a heading of a visit with ``avoid_u_turns`` (no U-turn on its
    street, :mod:`geodata.headings`); None: none."""


@dataclass(frozen=True, eq=False)
class TravelMatrices:
    """Travel between stops: ``durations_s[k][i, j]`` and ``distances_m[k][i, j]`` for matrix k;
    vehicle v uses matrix ``vehicle_matrix[v]``. Durations are before the vehicle's
    ``travel_duration_multiple``."""

    durations_s: tuple[FloatArray, ...]
    distances_m: tuple[FloatArray, ...]
    vehicle_matrix: tuple[int, ...]
    source: str
    """"matrices" (client supplied), "road" or "geodesic"."""
    roads: tuple[RoadPoints, ...] = ()
    """For road travel, per matrix: the snapped stops on its network (route geometry is drawn
    from them)."""
    profiles: tuple[str, ...] = ()
    """For road travel, per matrix: the road profile it was built for."""

    @property
    def road(self) -> RoadPoints | None:
        """The first matrix's road points (None without road travel)."""
        return self.roads[0] if self.roads else None

    def road_of(self, vehicle: int) -> RoadPoints | None:
        """The road points of ``vehicle``'s matrix (None without road travel)."""
        return self.roads[self.vehicle_matrix[vehicle]] if self.roads else None


def build_travel_matrices(
    model: ShipmentModel,
    stops: Stops,
    *,
    geodesic_meters_per_second: float,
    roads: RoadContext | None = None,
    use_geodesic: bool = False,
) -> TravelMatrices:
    """Travel matrices over ``stops`` for a validated model: the client's matrices when the
    model has them, else road travel when ``roads`` is given and ``use_geodesic`` is false,
    else geodesic travel. Road travel raises :class:`InvalidModelError` for locations too far
    from any road."""
    road = roads is not None and not use_geodesic and not model.duration_distance_matrices
    if not road and stops.heading is not None:
        reason = "client matrices" if model.duration_distance_matrices else "geodesic travel"
        raise InvalidModelError(
            [
                FieldViolation(
                    f"shipments[{s}].{kind}[{k}].avoid_u_turns",
                    f"needs road travel: {reason} has no roads to express a U-turn on",
                )
                for s, shipment in enumerate(model.shipments)
                for kind, visits in (
                    ("pickups", shipment.pickups),
                    ("deliveries", shipment.deliveries),
                )
                for k, visit in enumerate(visits)
                if visit.avoid_u_turns
            ]
        )
    if model.duration_distance_matrices:
        return _client_matrices(model, stops)
    if roads is not None and not use_geodesic:
        return _road_matrices(model, stops, roads)
    modified = [
        FieldViolation(
            f"vehicles[{v}].route_modifiers",
            "needs road travel: geodesic travel has no roads to avoid",
        )
        for v, vehicle in enumerate(model.vehicles)
        if vehicle.route_modifiers
    ]
    if modified:
        raise InvalidModelError(modified)
    return _geodesic_matrices(model, stops, geodesic_meters_per_second)


def _stop_locations(model: ShipmentModel, stops: Stops) -> list[tuple[int, str, LatLng]]:
    """(stop, field path, location) of every stop that has a location."""
    out: list[tuple[int, str, LatLng]] = []
    for i in range(stops.num_visits):
        loc = stops.visit_request(model, i).arrival_location
        assert loc is not None  # guaranteed by validation without client matrices
        kind = "pickups" if stops.is_pickup[i] else "deliveries"
        path = f"shipments[{stops.shipment[i]}].{kind}[{stops.alternative[i]}].arrival_location"
        out.append((i, path, loc))
    for v, vehicle in enumerate(model.vehicles):
        if vehicle.start_location is not None:
            path = f"vehicles[{v}].start_location"
            out.append((stops.vehicle_start(v), path, vehicle.start_location))
        if vehicle.end_location is not None:
            out.append((stops.vehicle_end(v), f"vehicles[{v}].end_location", vehicle.end_location))
    return out


def vehicle_profiles(model: ShipmentModel, roads: RoadContext) -> list[str]:
    """The road profile of each vehicle (its travel mode's, else the default one); raises
    :class:`InvalidModelError` naming ``vehicles[i].travel_mode`` for profiles not served."""
    names: list[str] = []
    violations: list[FieldViolation] = []
    for v, vehicle in enumerate(model.vehicles):
        mode = TravelMode(vehicle.travel_mode)
        name = TRAVEL_MODE_PROFILES[mode] or roads.spec.profile
        if roads.for_profile(name) is None:
            violations.append(
                FieldViolation(
                    f"vehicles[{v}].travel_mode",
                    f"{mode.name} needs the {name!r} road profile, which this server does not "
                    f"serve (it serves: {', '.join(roads.profiles)})",
                )
            )
        names.append(name)
    if violations:
        raise InvalidModelError(violations)
    return names


def _road_matrices(model: ShipmentModel, stops: Stops, roads: RoadContext) -> TravelMatrices:
    """Road travel between the distinct stop locations, each snapped to the nearest road: one
    matrix per distinct (profile, route modifiers) of the vehicles (in order of first use).

    Modifiers ("avoid ... where reasonable"): the matrix is computed on the profile's network
    without the avoided edges (:meth:`RoadContext.view`, its own snapping); a pair that it
    cannot connect (or a location farther than the snapping limit from every road left) keeps
    the profile's unmodified value, and its leg is drawn on the unmodified network."""
    names = vehicle_profiles(model, roads)
    keys = [
        (name, vehicle.route_modifiers.for_profile(name))
        for name, vehicle in zip(names, model.vehicles, strict=True)
    ]
    distinct = list(dict.fromkeys(keys)) or [(roads.spec.profile, RouteModifiers())]
    located = _stop_locations(model, stops)
    coords = np.array([(loc.latitude, loc.longitude) for _, _, loc in located], dtype=np.float64)
    unique, inverse = np.unique(coords.reshape(-1, 2), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    # the matrix's points: (distinct location, heading); -1 is the location's plain snap
    headings = sorted(
        {(int(inverse[k]), stops.heading_of(stop)) for k, (stop, _, _) in enumerate(located)}
    )
    key_index = {key: i for i, key in enumerate(headings)}
    point_location = np.array([loc for loc, _ in headings], dtype=np.int64)
    point_heading = np.array([h for _, h in headings], dtype=np.int64)
    headed = point_heading >= 0 if (point_heading >= 0).any() else None
    point = np.full(stops.size, -1, dtype=np.int64)
    for k, (stop, _, _) in enumerate(located):
        point[stop] = key_index[(int(inverse[k]), stops.heading_of(stop))]
    base: dict[str, RoadPoints] = {}
    off_road: dict[str, FieldViolation] = {}
    for name in dict.fromkeys(name for name, _ in distinct):
        context = roads.for_profile(name)
        assert context is not None  # checked by vehicle_profiles
        snaps = context.snap(unique[:, 0], unique[:, 1])
        for violation in context.off_road_violations(
            [path for _, path, _ in located], snaps, inverse
        ):
            off_road.setdefault(violation.field, violation)
        base[name] = RoadPoints(
            point, _headed(snaps, point_location, point_heading), context.network, headed=headed
        )
    if off_road:
        raise InvalidModelError(list(off_road.values()))
    unmodified_matrices: dict[str, MatrixResult] = {}

    def unmodified_matrix(name: str) -> MatrixResult:
        """The profile's unmodified matrix, computed when first needed."""
        if name not in unmodified_matrices:
            context = roads.for_profile(name)
            assert context is not None
            unmodified_matrices[name] = context.matrix(base[name].snaps, headed=headed)
        return unmodified_matrices[name]

    rows = np.flatnonzero(point >= 0)
    cells = np.ix_(point[rows], point[rows])
    n = stops.size
    durations: list[FloatArray] = []
    distances: list[FloatArray] = []
    points: list[RoadPoints] = []
    labels: list[str] = []
    for name, modifiers in distinct:
        context = roads.for_profile(name)
        assert context is not None
        view = context.view(modifiers) if modifiers else None
        road = base[name]
        if view is None:
            result = unmodified_matrix(name)
            duration_of, distance_of = result.durations_s, result.distances_m
        else:
            snaps = _headed(view.snap(unique[:, 0], unique[:, 1]), point_location, point_heading)
            avoiding = view.matrix(snaps, headed=headed)
            usable = np.isfinite(avoiding.durations_s)
            usable &= ~snaps.too_far[:, None] & ~snaps.too_far[None, :]
            duration_of, distance_of = avoiding.durations_s, avoiding.distances_m
            if not usable.all():  # the unmodified matrix only when some pair needs it
                result = unmodified_matrix(name)
                duration_of = np.where(usable, duration_of, result.durations_s)
                distance_of = np.where(usable, distance_of, result.distances_m)
            road = RoadPoints(point, snaps, view.network, base[name], ~usable, headed)
        duration = np.zeros((n, n))
        distance = np.zeros((n, n))
        duration[np.ix_(rows, rows)] = duration_of[cells]
        distance[np.ix_(rows, rows)] = distance_of[cells]
        durations.append(duration)
        distances.append(distance)
        points.append(road)
        labels.append(name if view is None else f"{name}+{modifiers.label()}")
    return TravelMatrices(
        durations_s=tuple(durations),
        distances_m=tuple(distances),
        vehicle_matrix=tuple(distinct.index(key) for key in keys),
        source="road",
        roads=tuple(points),
        profiles=tuple(labels),
    )


def _headed(snaps: SnapResult, location: IntArray, heading: IntArray) -> SnapResult:
    """Point ``i``: location ``location[i]`` of ``snaps``, as is for heading -1, else one
    direction of travel only (no opposite edge): heading 0 along the snapped edge, heading 1
    along the opposite edge (the same point, at ``1 - fraction``; on a one-way road, heading 0's
    point)."""
    edge, fraction, reverse = (
        snaps.edge[location],
        snaps.fraction[location],
        snaps.reverse_edge[location],
    )
    against = (heading == 1) & (reverse >= 0)
    return replace(
        snaps,
        edge=np.where(against, reverse, edge),
        fraction=np.where(against, 1.0 - fraction, fraction),
        reverse_edge=np.where(heading >= 0, -1, reverse),
        lat=snaps.lat[location],
        lon=snaps.lon[location],
        distance_m=snaps.distance_m[location],
        query_lat=snaps.query_lat[location],
        query_lon=snaps.query_lon[location],
    )


def _zero_missing(
    arr: FloatArray, no_row: npt.NDArray[np.bool_], no_col: npt.NDArray[np.bool_]
) -> None:
    arr[no_row, :] = 0.0
    arr[:, no_col] = 0.0


def _geodesic_matrices(model: ShipmentModel, stops: Stops, speed_mps: float) -> TravelMatrices:
    n = stops.size
    lat = np.zeros(n)
    lng = np.zeros(n)
    missing = np.zeros(n, dtype=np.bool_)
    for i in range(stops.num_visits):
        loc = stops.visit_request(model, i).arrival_location
        assert loc is not None  # guaranteed by validation
        lat[i], lng[i] = loc.latitude, loc.longitude
    for v, vehicle in enumerate(model.vehicles):
        for stop, loc in (
            (stops.vehicle_start(v), vehicle.start_location),
            (stops.vehicle_end(v), vehicle.end_location),
        ):
            if loc is None:
                missing[stop] = True
            else:
                lat[stop], lng[stop] = loc.latitude, loc.longitude
    distances = haversine_matrix_m(lat, lng)
    _zero_missing(distances, missing, missing)
    # One matrix per distinct speed: walking pace for WALKING vehicles, else the request's.
    speeds = [
        WALKING_SPEED_KPH / 3.6 if vehicle.travel_mode == TravelMode.WALKING else speed_mps
        for vehicle in model.vehicles
    ]
    distinct = list(dict.fromkeys(speeds)) or [speed_mps]
    return TravelMatrices(
        durations_s=tuple(distances / speed for speed in distinct),
        distances_m=(distances,) * len(distinct),
        vehicle_matrix=tuple(distinct.index(speed) for speed in speeds),
        source="geodesic",
    )


def _client_matrices(model: ShipmentModel, stops: Stops) -> TravelMatrices:
    src_of = {tag: k for k, tag in enumerate(model.duration_distance_matrix_src_tags)}
    dst_of = {tag: k for k, tag in enumerate(model.duration_distance_matrix_dst_tags)}
    n = stops.size
    src = np.full(n, -1, dtype=np.int64)
    dst = np.full(n, -1, dtype=np.int64)
    for i in range(stops.num_visits):
        tags = stops.visit_request(model, i).tags
        src[i] = next(src_of[t] for t in tags if t in src_of)
        dst[i] = next(dst_of[t] for t in tags if t in dst_of)
    for v, vehicle in enumerate(model.vehicles):
        src[stops.vehicle_start(v)] = next(
            (src_of[t] for t in vehicle.start_tags if t in src_of), -1
        )
        dst[stops.vehicle_end(v)] = next((dst_of[t] for t in vehicle.end_tags if t in dst_of), -1)
    rows, cols = np.maximum(src, 0), np.maximum(dst, 0)
    durations: list[FloatArray] = []
    distances: list[FloatArray] = []
    for matrix in model.duration_distance_matrices:
        for out, values in ((durations, matrix.durations_s), (distances, matrix.distances_m)):
            full = np.asarray(values, dtype=np.float64)[np.ix_(rows, cols)]
            _zero_missing(full, src < 0, dst < 0)
            out.append(full)
    by_tag = {m.vehicle_start_tag: k for k, m in enumerate(model.duration_distance_matrices)}
    vehicle_matrix = []
    for vehicle in model.vehicles:
        if len(model.duration_distance_matrices) == 1:
            vehicle_matrix.append(0)
        else:
            vehicle_matrix.append(next(by_tag[t] for t in vehicle.start_tags if t in by_tag))
    return TravelMatrices(
        durations_s=tuple(durations),
        distances_m=tuple(distances),
        vehicle_matrix=tuple(vehicle_matrix),
        source="matrices",
    )
