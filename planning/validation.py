"""Validation of a layout study: every problem with its field path as named in the API's
``DepotLayoutStudy`` (``depots[2].capacity.weight``, ``days[0].orders[3].location``), the
engine's own checks of the orders, and the depots and orders too far from the road network."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from engine import FieldViolation, InvalidModelError, LatLng, validate_model
from engine.roads import RoadContext
from engine.units import MAX_DISTANCE_M, MAX_LOAD_TOTAL
from planning.day_model import build_day_model
from planning.study import LayoutStudy, VehicleType

__all__ = ["check_study", "road_violations", "validate_study"]


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


def _negatives(path: str, values: Mapping[str, float | None]) -> list[str]:
    """``path.name: must not be negative`` for each negative value (None: not set)."""
    return [
        f"{path}.{name}: must not be negative"
        for name, value in values.items()
        if value is not None and value < 0
    ]


def _check_depots(study: LayoutStudy) -> list[str]:
    out: list[str] = []
    labels = [d.label for d in study.depots]
    for j, depot in enumerate(study.depots):
        path = f"depots[{j}]"
        if not depot.label:
            out.append(f"{path}.label: required")
        elif depot.label in labels[:j]:
            out.append(f"{path}.label: {depot.label!r} is the label of an earlier depot")
        out += _check_point(path, depot.location, depot.tag, study)
        out += _negatives(f"{path}.capacity", depot.capacity)
        out += _negatives(path, {"opening_cost": depot.opening_cost})
        if not 0 <= depot.open_s < depot.close_s:
            out.append(f"{path}.closes_at: opening hours must satisfy 0 <= opens_at < closes_at")
        if not study.fleet_of(depot):
            out.append(f"{path}.fleet: the depot has no vehicles (and the study no default fleet)")
        if depot.fleet is not None:
            out += _check_fleet(f"{path}.fleet", depot.fleet)
    return out


def _check_fleet(path: str, fleet: Sequence[VehicleType]) -> list[str]:
    out = []
    for v, vt in enumerate(fleet):
        p = f"{path}[{v}]"
        out += _negatives(p, {"count": vt.count})
        out += _negatives(f"{p}.capacities", vt.capacities)
        costs = ("fixed_cost", "cost_per_kilometer", "cost_per_hour", "cost_per_traveled_hour")
        out += _negatives(p, {name: getattr(vt, name) for name in costs})
        for name, field_name in (
            ("max_duration_s", "max_duration"),
            ("max_distance_m", "max_distance_meters"),
        ):
            value = getattr(vt, name)
            if value is not None and not value > 0:
                out.append(f"{p}.{field_name}: must be positive")
    return out


def _check_orders(study: LayoutStudy) -> list[str]:
    out: list[str] = []
    for t, day in enumerate(study.days):
        if not day.orders:
            out.append(f"days[{t}].orders: a day needs at least one order")
        for i, order in enumerate(day.orders):
            path = f"days[{t}].orders[{i}]"
            out += _check_point(path, order.location, order.tag, study)
            out += _negatives(f"{path}.demands", order.demands)
            out += _negatives(
                path, {"service_duration": order.service_s, "penalty_cost": order.penalty_cost}
            )
            for w, window in enumerate(order.time_windows):
                if (
                    window.start_time is not None
                    and window.end_time is not None
                    and window.start_time > window.end_time
                ):
                    out.append(f"{path}.time_windows[{w}]: start must not be after end")
    return out


def _check_layouts(study: LayoutStudy) -> list[str]:
    out: list[str] = []
    known = {d.label for d in study.depots}
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
        n = len(study.depots)
        if s.mode in ("exactly", "at_most") and (s.k is None or not 1 <= s.k <= n):
            out.append(f"search.k: must be between 1 and {n} for mode {s.mode}")
        for m, name in enumerate(s.must_open):
            if name not in known:
                out.append(f"search.must_open[{m}]: unknown depot {name!r}")
    return out


def _check_matrix(study: LayoutStudy) -> list[str]:
    out: list[str] = []
    if study.matrix is not None:
        n = len(study.matrix.tags)
        for name in ("durations_s", "distances_m"):
            a = getattr(study.matrix, name)
            if a.shape != (n, n):
                out.append(f"matrix.{name}: must be {n}×{n} (one row and column per tag)")
            elif not np.all(np.isfinite(a) & (a >= 0)):
                out.append(f"matrix.{name}: entries must be finite and non-negative")
    return out


MAX_VEHICLES_PER_TYPE = 10_000
"""Largest ``count`` of a vehicle type: each vehicle is a vehicle of every day's routing model."""

MAX_STUDY_COST = 1e9
"""Largest fixed or opening cost, and (per hour, per kilometer) rate of a study; the routing
model of each day is bounded as a whole too (:mod:`engine.bounds`)."""


def _bounded(path: str, values: Mapping[str, float | None], bound: float) -> list[str]:
    """``path.name: ...`` for each value that is not finite or above ``bound``."""
    return [
        f"{path}.{name}: must be a finite number of at most {bound:g}, got {value}"
        for name, value in values.items()
        if value is not None and not (np.isfinite(value) and value <= bound)
    ]


def _check_fleet_numbers(path: str, fleet: Sequence[VehicleType]) -> list[str]:
    out: list[str] = []
    for v, vt in enumerate(fleet):
        p = f"{path}[{v}]"
        out += _bounded(p, {"count": vt.count}, MAX_VEHICLES_PER_TYPE)
        out += _bounded(f"{p}.capacities", dict(vt.capacities), MAX_LOAD_TOTAL)
        costs = ("fixed_cost", "cost_per_kilometer", "cost_per_hour", "cost_per_traveled_hour")
        out += _bounded(p, {name: getattr(vt, name) for name in costs}, MAX_STUDY_COST)
        out += _bounded(p, {"max_distance_meters": vt.max_distance_m}, MAX_DISTANCE_M)
    return out


def _check_numbers(study: LayoutStudy) -> list[str]:
    """Numbers the routing and the MIP scale to integers: bounded (engine.units), finite."""
    out = _check_fleet_numbers("fleet", study.fleet)
    for j, depot in enumerate(study.depots):
        path = f"depots[{j}]"
        out += _bounded(path, {"opening_cost": depot.opening_cost}, MAX_STUDY_COST)
        out += _bounded(f"{path}.capacity", dict(depot.capacity), MAX_LOAD_TOTAL)
        if depot.fleet is not None:
            out += _check_fleet_numbers(f"{path}.fleet", depot.fleet)
    if study.matrix is not None and study.matrix.distances_m.size:
        meters = study.matrix.distances_m
        if np.all(np.isfinite(meters)) and float(meters.max()) > MAX_DISTANCE_M:
            out.append(f"matrix.distances_m: entries must be at most {MAX_DISTANCE_M:g} meters")
    return out


def validate_study(study: LayoutStudy) -> list[FieldViolation]:
    """Every problem of ``study``, with field paths named as in the API's
    ``DepotLayoutStudy`` (``depots[2].capacity.weight``, ``days[0].orders[3].location``)."""
    out: list[str] = []
    if not study.depots:
        out.append("depots: at least one candidate depot is required")
    if not study.days:
        out.append("days: at least one day is required")
    out += _check_depots(study)
    out += _check_fleet("fleet", study.fleet)
    out += _check_orders(study)
    out += _check_layouts(study)
    out += _check_matrix(study)
    out += _check_numbers(study)
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
        model, _ = build_day_model(study, day, [], range(len(day.orders)))
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


def check_study(study: LayoutStudy, roads: RoadContext | None = None) -> None:
    """Raise :class:`engine.InvalidModelError` with every problem of ``study`` (and, given
    ``roads``, its points off the road network)."""
    problems = validate_study(study)
    if not problems and roads is not None:
        problems = road_violations(study, roads)
    if problems:
        raise InvalidModelError(tuple(problems))
