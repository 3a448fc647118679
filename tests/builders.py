"""Tiny hand-checkable models for tests.

``line_model`` places named points on a line; travel between two points takes |x_a − x_b|
seconds and |x_a − x_b| meters (times ``scale``), through a client matrix whose tags are the
point names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine import (
    DurationDistanceMatrix,
    Shipment,
    ShipmentModel,
    Solution,
    SolveOptions,
    Vehicle,
    VisitRequest,
    solve,
)
from engine.options import SearchMode
from tests.checker import check_solution


def matrix_model(
    dist: np.ndarray,
    tags: tuple[str, ...],
    shipments: Sequence[Shipment],
    vehicles: Sequence[Vehicle],
    **kwargs: Any,
) -> ShipmentModel:
    """A model whose travel is the client matrix ``dist`` (seconds and meters alike) between
    the points ``tags``; ``kwargs`` go to :class:`ShipmentModel`."""
    return ShipmentModel(
        shipments=tuple(shipments),
        vehicles=tuple(vehicles),
        duration_distance_matrices=(DurationDistanceMatrix(dist.copy(), dist.copy()),),
        duration_distance_matrix_src_tags=tags,
        duration_distance_matrix_dst_tags=tags,
        **kwargs,
    )


def random_points(rng: np.random.Generator, n_points: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """``n_points`` random points on a 100 x 100 grid: their Euclidean distances rounded to
    whole units, and their tags ``p0``, ``p1``, ..."""
    xy = rng.integers(0, 100, size=(n_points, 2))
    dist = np.floor(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) + 0.5)
    return dist, tuple(f"p{i}" for i in range(n_points))


def line_model(
    points: Mapping[str, float],
    shipments: Sequence[Shipment],
    vehicles: Sequence[Vehicle],
    *,
    scale: float = 1.0,
    **kwargs: Any,
) -> ShipmentModel:
    names = list(points)
    xs = np.array([points[n] for n in names], dtype=np.float64)
    dist = np.abs(xs[:, None] - xs[None, :]) * scale
    return matrix_model(dist, tuple(names), shipments, vehicles, **kwargs)


def at(tag: str, **kwargs: Any) -> VisitRequest:
    """A visit request at point ``tag``."""
    return VisitRequest(tags=(tag,), **kwargs)


def depot_vehicle(tag: str = "depot", *, open_end: bool = False, **kwargs: Any) -> Vehicle:
    return Vehicle(start_tags=(tag,), end_tags=() if open_end else (tag,), **kwargs)


def solve_checked(
    model: ShipmentModel,
    *,
    time_limit_s: float = 2.0,
    search_mode: SearchMode = SearchMode.RETURN_FAST,
    geodesic_meters_per_second: float = 10.0,
    **options_kwargs: Any,
) -> Solution:
    """Solve and run the independent checker on the result; ``options_kwargs`` go to
    :class:`SolveOptions` (``backend``, ``solver_processes``, ``seed``, ...)."""
    options = SolveOptions(
        time_limit_s=time_limit_s,
        search_mode=search_mode,
        geodesic_meters_per_second=geodesic_meters_per_second,
        **options_kwargs,
    )
    solution = solve(model, options)
    check_solution(model, solution, geodesic_meters_per_second=geodesic_meters_per_second)
    return solution


def route_order(solution: Solution, vehicle: int) -> list[tuple[int, bool]]:
    """(shipment index, is_pickup) of the visits of ``vehicle`` in order."""
    return [(v.shipment_index, v.is_pickup) for v in solution.routes[vehicle].visits]
