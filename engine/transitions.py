"""Google's ``transition_attributes`` (issue 15): which attributes apply to a transition, its
delay and its costs, per transition (for evaluation) and as tables over the stops of a problem
(for the solver).

A transition goes from a source (a visit, or a vehicle start) to a destination (a visit, or a
vehicle end). An attribute matches the source when the source's tags (``VisitRequest.tags``,
``Vehicle.start_tags``) contain its ``src_tag``, or do not contain its ``excluded_src_tag``;
the destination likewise (``VisitRequest.tags``, ``Vehicle.end_tags``). Every matching
attribute applies: the delays add up, and so do the costs — ``cost``, ``cost_per_kilometer``
times the transition's kilometers, and ``distance_limit.cost_per_kilometer_above_soft_max``
times its kilometers beyond ``soft_max_meters`` (Google: "all extra costs add up and the
strictest constraint applies"; a soft limit is a cost).

The stops of :mod:`engine.travel` give each vehicle its own start and end stop, so a table over
the stops holds every vehicle's transitions. The transition from a vehicle's start straight to
its end is an empty route: it happens only for a vehicle ``used_if_route_is_empty``, so the
tables leave it out for the others (a delay there would constrain an unused vehicle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.model import ShipmentModel, TransitionAttributes
from engine.travel import Stops

__all__ = [
    "COST_KEY",
    "COST_PER_KILOMETER_KEY",
    "SOFT_DISTANCE_KEY",
    "TransitionTables",
    "build_tables",
    "destination_tags",
    "matching",
    "source_tags",
    "transition_costs",
    "transition_delay_s",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

COST_KEY = "model.transition_attributes.cost"
COST_PER_KILOMETER_KEY = "model.transition_attributes.cost_per_kilometer"
SOFT_DISTANCE_KEY = "model.transition_attributes.distance_limit.cost_per_kilometer_above_soft_max"
"""``route_costs`` / ``metrics.costs`` keys of the transition costs (request field paths)."""


def source_tags(model: ShipmentModel, stops: Stops, stop: int) -> tuple[str, ...] | None:
    """Tags of ``stop`` as the source of a transition (None: a vehicle end, never a source)."""
    if stop < stops.num_visits:
        return stops.visit_request(model, stop).tags
    vehicle, is_end = divmod(stop - stops.num_visits, 2)
    return None if is_end else model.vehicles[vehicle].start_tags


def destination_tags(model: ShipmentModel, stops: Stops, stop: int) -> tuple[str, ...] | None:
    """Tags of ``stop`` as the destination of a transition (None: a vehicle start)."""
    if stop < stops.num_visits:
        return stops.visit_request(model, stop).tags
    vehicle, is_end = divmod(stop - stops.num_visits, 2)
    return model.vehicles[vehicle].end_tags if is_end else None


def matching(
    model: ShipmentModel, src: tuple[str, ...], dst: tuple[str, ...]
) -> list[TransitionAttributes]:
    """The attributes that apply to a transition from tags ``src`` to tags ``dst``."""
    return [
        a
        for a in model.transition_attributes
        if a.matches_source(src) and a.matches_destination(dst)
    ]


def transition_delay_s(attributes: Sequence[TransitionAttributes]) -> float:
    """The delay of a transition: the sum of its attributes' delays."""
    return float(sum(a.delay_s for a in attributes))


def transition_costs(
    attributes: Sequence[TransitionAttributes], distance_m: float
) -> dict[str, float]:
    """The costs of a transition of ``distance_m`` meters, by cost key (non-zero only)."""
    costs = {COST_KEY: 0.0, COST_PER_KILOMETER_KEY: 0.0, SOFT_DISTANCE_KEY: 0.0}
    for a in attributes:
        costs[COST_KEY] += a.cost
        costs[COST_PER_KILOMETER_KEY] += a.cost_per_kilometer * distance_m / 1000.0
        soft, rate = a.distance_limit_soft_max_m, a.distance_limit_cost_per_kilometer_above_soft_max
        if soft is not None and rate:
            costs[SOFT_DISTANCE_KEY] += rate * max(0.0, distance_m - soft) / 1000.0
    return {k: v for k, v in costs.items() if v}


@dataclass(frozen=True, eq=False)
class _Soft:
    """One attribute's soft distance limit over a block of arcs."""

    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    soft_max_m: float
    rate: float


@dataclass(frozen=True, eq=False)
class TransitionTables:
    """The transition attributes of a model over its stops: ``delay_s[i, j]`` and the costs
    of the transition from stop i to stop j (see the module docstring)."""

    delay_s: FloatArray
    cost: FloatArray
    """Sum of the matching attributes' ``cost``."""
    per_kilometer: FloatArray
    """Sum of the matching attributes' ``cost_per_kilometer``."""
    soft: tuple[_Soft, ...]
    unused_empty_routes: tuple[tuple[int, int], ...] = ()
    """(start, end) stops of the vehicles not ``used_if_route_is_empty``: no transition."""

    @property
    def has_costs(self) -> bool:
        return bool(self.cost.any() or self.per_kilometer.any() or self.soft)

    def costs(self, distances_m: FloatArray) -> FloatArray:
        """Cost of every transition given the distances between the stops (finite)."""
        out: FloatArray = self.cost + self.per_kilometer * distances_m / 1000.0
        for s in self.soft:
            block = np.ix_(s.rows, s.cols)
            out[block] += s.rate * np.maximum(0.0, distances_m[block] - s.soft_max_m) / 1000.0
        for start, end in self.unused_empty_routes:
            out[start, end] = 0.0
        return out


def _masks(
    model: ShipmentModel, stops: Stops, a: TransitionAttributes
) -> tuple[BoolArray, BoolArray]:
    """Stops matched by ``a`` as sources and as destinations."""
    src = np.zeros(stops.size, dtype=np.bool_)
    dst = np.zeros(stops.size, dtype=np.bool_)
    for i in range(stops.size):
        s_tags = source_tags(model, stops, i)
        d_tags = destination_tags(model, stops, i)
        src[i] = s_tags is not None and a.matches_source(s_tags)
        dst[i] = d_tags is not None and a.matches_destination(d_tags)
    return src, dst


def build_tables(model: ShipmentModel, stops: Stops) -> TransitionTables | None:
    """The tables of ``model``'s transition attributes (None without any)."""
    if not model.transition_attributes:
        return None
    n = stops.size
    delay = np.zeros((n, n))
    cost = np.zeros((n, n))
    per_km = np.zeros((n, n))
    soft: list[_Soft] = []
    unused_empty = [
        (stops.vehicle_start(v), stops.vehicle_end(v))
        for v, vehicle in enumerate(model.vehicles)
        if not vehicle.used_if_route_is_empty
    ]
    for a in model.transition_attributes:
        src, dst = _masks(model, stops, a)
        rows, cols = np.flatnonzero(src), np.flatnonzero(dst)
        if not len(rows) or not len(cols):
            continue
        block = np.ix_(rows, cols)
        delay[block] += a.delay_s
        cost[block] += a.cost
        per_km[block] += a.cost_per_kilometer
        rate = a.distance_limit_cost_per_kilometer_above_soft_max
        if a.distance_limit_soft_max_m is not None and rate:
            soft.append(_Soft(rows, cols, a.distance_limit_soft_max_m, rate))
    for start, end in unused_empty:
        delay[start, end] = cost[start, end] = per_km[start, end] = 0.0
    return TransitionTables(delay, cost, per_km, tuple(soft), tuple(unused_empty))
