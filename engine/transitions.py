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
    """One attribute's soft distance limit: the stops it matches as sources and destinations."""

    rows: BoolArray
    cols: BoolArray
    soft_max_m: float
    rate: float


@dataclass(frozen=True, eq=False)
class TransitionTables:
    """The transition attributes of a model over its stops: ``delay_s[i, j]`` and the costs
    of the transition from stop i to stop j (see the module docstring); None where no
    attribute has such a term."""

    delay_s: FloatArray | None
    cost: FloatArray | None
    """Sum of the matching attributes' ``cost``."""
    per_kilometer: FloatArray | None
    """Sum of the matching attributes' ``cost_per_kilometer``."""
    soft: tuple[_Soft, ...]
    unused_empty_routes: tuple[tuple[int, int], ...] = ()
    """(start, end) stops of the vehicles not ``used_if_route_is_empty``: no transition."""

    @property
    def has_costs(self) -> bool:
        return self.cost is not None or self.per_kilometer is not None or bool(self.soft)

    def costs(self, distances_m: FloatArray) -> FloatArray:
        """Cost of every transition given the distances between the stops (finite)."""
        out: FloatArray = np.zeros(distances_m.shape)
        if self.cost is not None:
            out += self.cost
        if self.per_kilometer is not None:
            out += self.per_kilometer * distances_m / 1000.0
        for s in self.soft:
            excess = distances_m - s.soft_max_m
            np.maximum(excess, 0.0, out=excess)
            excess *= s.rate / 1000.0
            excess *= np.outer(s.rows, s.cols)  # only the transitions the attribute matches
            out += excess
        for start, end in self.unused_empty_routes:
            out[start, end] = 0.0
        return out


class _TagIndex:
    """Which stops carry each tag, as sources and as destinations."""

    def __init__(self, model: ShipmentModel, stops: Stops) -> None:
        n = stops.size
        self.is_source = np.zeros(n, dtype=np.bool_)
        self.is_destination = np.zeros(n, dtype=np.bool_)
        self.sources: dict[str, list[int]] = {}
        self.destinations: dict[str, list[int]] = {}
        for i in range(n):
            for tags, flags, index in (
                (source_tags(model, stops, i), self.is_source, self.sources),
                (destination_tags(model, stops, i), self.is_destination, self.destinations),
            ):
                if tags is None:
                    continue
                flags[i] = True
                for tag in set(tags):
                    index.setdefault(tag, []).append(i)

    @staticmethod
    def _mask(flags: BoolArray, index: dict[str, list[int]], tag: str, excluded: str) -> BoolArray:
        if tag:
            mask = np.zeros(len(flags), dtype=np.bool_)
            mask[index.get(tag, [])] = True
            return mask
        mask = flags.copy()
        mask[index.get(excluded, [])] = False
        return mask

    def masks(self, a: TransitionAttributes) -> tuple[BoolArray, BoolArray]:
        """Stops matched by ``a`` as sources and as destinations."""
        return (
            self._mask(self.is_source, self.sources, a.src_tag, a.excluded_src_tag),
            self._mask(self.is_destination, self.destinations, a.dst_tag, a.excluded_dst_tag),
        )


def _sum_of_blocks(
    masks: Sequence[tuple[BoolArray, BoolArray]], values: Sequence[float]
) -> FloatArray | None:
    """``sum_k values[k] * outer(src_k, dst_k)`` as one matrix product (None: all zero)."""
    used = [k for k, value in enumerate(values) if value]
    if not used:
        return None
    src = np.stack([masks[k][0] for k in used], axis=1).astype(np.float64)
    dst = np.stack([masks[k][1] for k in used], axis=1).astype(np.float64)
    weights = np.asarray([values[k] for k in used], dtype=np.float64)
    out: FloatArray = (src * weights) @ dst.T
    return out


def build_tables(model: ShipmentModel, stops: Stops) -> TransitionTables | None:
    """The tables of ``model``'s transition attributes (None without any). Attributes with the
    same tags are merged first; each table is one matrix product over the attributes."""
    if not model.transition_attributes:
        return None
    index = _TagIndex(model, stops)
    merged: dict[tuple[str, str, str, str], list[float]] = {}
    soft: list[_Soft] = []
    for a in model.transition_attributes:
        key = (a.src_tag, a.excluded_src_tag, a.dst_tag, a.excluded_dst_tag)
        sums = merged.setdefault(key, [0.0, 0.0, 0.0])
        sums[0] += a.delay_s
        sums[1] += a.cost
        sums[2] += a.cost_per_kilometer
        rate = a.distance_limit_cost_per_kilometer_above_soft_max
        if a.distance_limit_soft_max_m is not None and rate:
            rows, cols = index.masks(a)
            soft.append(_Soft(rows, cols, a.distance_limit_soft_max_m, rate))
    specs = list(merged)
    masks = [
        index.masks(
            TransitionAttributes(
                src_tag=k[0], excluded_src_tag=k[1], dst_tag=k[2], excluded_dst_tag=k[3]
            )
        )
        for k in specs
    ]
    unused_empty = tuple(
        (stops.vehicle_start(v), stops.vehicle_end(v))
        for v, vehicle in enumerate(model.vehicles)
        if not vehicle.used_if_route_is_empty
    )
    tables = []
    for column in range(3):
        table = _sum_of_blocks(masks, [merged[k][column] for k in specs])
        if table is not None:
            for start, end in unused_empty:
                table[start, end] = 0.0
        tables.append(table)
    delay, cost, per_km = tables
    return TransitionTables(delay, cost, per_km, tuple(soft), unused_empty)
