"""Integer scaling for the solver, in one place.

The solver works on integers: time in whole seconds relative to ``global_start_time``,
distance in whole meters, and costs multiplied by :data:`COST_SCALE`. Rounding always goes in
the direction that keeps a solution of the integer problem feasible for the exact input:
durations and distances are rounded up, window starts up and window ends down.
"""

from __future__ import annotations

import math

__all__ = [
    "COST_SCALE",
    "MAX_DISTANCE_M",
    "MAX_LOAD_TOTAL",
    "MAX_SCALED_COST",
    "MAX_TOTAL_COST",
    "ceil_int",
    "cost_per_hour_to_coefficient",
    "floor_int",
    "scale_cost",
]

_EPS = 1e-9

COST_SCALE = 1_000_000
"""Solver cost units per currency unit."""

MAX_SCALED_COST = 2**62
"""Upper bound for any single scaled cost term; larger values are clamped."""

MAX_TOTAL_COST = MAX_SCALED_COST / COST_SCALE / 2
"""Largest worst-case total cost (currency units) of a model: about 2.3e12, so that the scaled
objective stays below 2^61 whatever the solver adds up (:mod:`engine.bounds`)."""

MAX_LOAD_TOTAL = 2**53
"""Largest sum of the demands of one load type: exact in a float64, far from int64's end."""

MAX_DISTANCE_M = 1e12
"""Largest distance in a client matrix or a distance limit (a million million meters)."""


def ceil_int(x: float) -> int:
    """Round up to an integer, ignoring float noise below 1e-9."""
    return math.ceil(x - _EPS)


def floor_int(x: float) -> int:
    """Round down to an integer, ignoring float noise below 1e-9."""
    return math.floor(x + _EPS)


def scale_cost(cost: float) -> int:
    """Currency units to solver cost units (rounded, clamped to ``MAX_SCALED_COST``)."""
    return min(round(cost * COST_SCALE), MAX_SCALED_COST)


def cost_per_hour_to_coefficient(cost_per_hour: float) -> int:
    """A cost per hour as solver cost units per second (at least 1 when the cost is positive)."""
    if cost_per_hour <= 0:
        return 0
    return max(1, round(cost_per_hour * COST_SCALE / 3600.0))
