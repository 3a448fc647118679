"""The request fields that are not part of the model: :class:`RequestSettings`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

from engine.backends import BACKENDS
from engine.options import SearchMode, SolveOptions
from rpc.convert.common import FieldConverter
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = [
    "DEFAULT_MAX_VALIDATION_ERRORS",
    "RequestSettings",
    "check_parent",
    "request_settings",
]

_SEARCH_MODES = {
    pb.OptimizeToursRequest.SEARCH_MODE_UNSPECIFIED: SearchMode.RETURN_FAST,
    pb.OptimizeToursRequest.RETURN_FAST: SearchMode.RETURN_FAST,
    pb.OptimizeToursRequest.CONSUME_ALL_AVAILABLE_TIME: SearchMode.CONSUME_ALL_AVAILABLE_TIME,
}
_SOLVING_MODES = (
    pb.OptimizeToursRequest.DEFAULT_SOLVE,
    pb.OptimizeToursRequest.VALIDATE_ONLY,
    pb.OptimizeToursRequest.DETECT_SOME_INFEASIBLE_SHIPMENTS,
    pb.OptimizeToursRequest.TRANSFORM_AND_RETURN_REQUEST,
)

DEFAULT_MAX_VALIDATION_ERRORS: Final = 100
"""``max_validation_errors`` when the request leaves it unset."""

PARENT_PATTERN: Final = re.compile(r"projects/[^/]+(/locations/[^/]+)?")
"""What ``parent`` may be (besides empty): Google's project or location name."""


def check_parent(conv: FieldConverter, parent: str, path: str = "parent") -> None:
    """Record a violation unless ``parent`` is empty or ``projects/P[/locations/L]``."""
    if parent and PARENT_PATTERN.fullmatch(parent) is None:
        conv.add(
            path,
            f"must be projects/PROJECT or projects/PROJECT/locations/LOCATION, got {parent!r}",
        )


@dataclass(frozen=True)
class RequestSettings:
    """The request fields that are not part of the model.

    ``timeout_s`` is None when the request sets no timeout (the server's default applies);
    ``geodesic_meters_per_second`` is the request's speed or the server default given to
    :func:`request_to_engine`.
    """

    timeout_s: float | None
    search_mode: SearchMode
    validate_only: bool
    label: str
    geodesic_meters_per_second: float
    populate_polylines: bool
    solving_mode: int = pb.OptimizeToursRequest.DEFAULT_SOLVE
    max_validation_errors: int = DEFAULT_MAX_VALIDATION_ERRORS
    use_geodesic_distances: bool = False
    backend: str = "auto"
    solver_processes: int = 0
    """0: the server's default."""
    random_seed: int = 0
    iteration_limit: int | None = None

    def solve_options(self, time_limit_s: float, default_solver_processes: int) -> SolveOptions:
        """The engine options of this request with a time budget and the server's default
        number of parallel searches."""
        return SolveOptions(
            time_limit_s=time_limit_s,
            search_mode=self.search_mode,
            geodesic_meters_per_second=self.geodesic_meters_per_second,
            use_geodesic_distances=self.use_geodesic_distances,
            populate_polylines=self.populate_polylines,
            backend=self.backend,
            solver_processes=self.solver_processes or default_solver_processes,
            seed=self.random_seed,
            iteration_limit=self.iteration_limit,
            precheck_only=(
                self.solving_mode == pb.OptimizeToursRequest.DETECT_SOME_INFEASIBLE_SHIPMENTS
            ),
        )


def request_settings(
    conv: FieldConverter,
    request: pb.OptimizeToursRequest,
    default_geodesic_meters_per_second: float,
) -> RequestSettings:
    """The settings of ``request``; problems are recorded in ``conv``."""
    timeout_s: float | None = None
    if request.HasField("timeout"):
        if request.timeout.seconds == 0 and request.timeout.nanos == 0:
            conv.add("timeout", "must be positive (leave it unset for the server's default)")
        else:
            timeout_s = conv.duration(request.timeout, "timeout")
    search_mode = _SEARCH_MODES.get(request.search_mode)
    if search_mode is None:
        conv.add("search_mode", f"unknown value {request.search_mode}")
    if request.solving_mode not in _SOLVING_MODES:
        conv.add("solving_mode", f"unknown value {request.solving_mode}")
    check_parent(conv, request.parent)
    max_errors = DEFAULT_MAX_VALIDATION_ERRORS
    if request.HasField("max_validation_errors"):
        if request.max_validation_errors > 0:
            max_errors = request.max_validation_errors
        else:
            conv.add(
                "max_validation_errors",
                f"must be positive when set, got {request.max_validation_errors}",
            )
    speed = default_geodesic_meters_per_second
    if request.HasField("geodesic_meters_per_second"):
        value = request.geodesic_meters_per_second
        if math.isfinite(value) and value > 0:
            speed = value
        else:
            conv.add("geodesic_meters_per_second", f"must be a positive finite number, got {value}")
    solver = request.solver
    backend = solver.backend or "auto"
    if backend not in BACKENDS:
        conv.add("solver.backend", f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if solver.solver_processes < 0:
        conv.add("solver.solver_processes", f"must not be negative, got {solver.solver_processes}")
    if solver.random_seed < 0:
        conv.add("solver.random_seed", f"must not be negative, got {solver.random_seed}")
    if solver.iteration_limit < 0:
        conv.add("solver.iteration_limit", f"must not be negative, got {solver.iteration_limit}")
    return RequestSettings(
        timeout_s=timeout_s,
        search_mode=search_mode or SearchMode.RETURN_FAST,
        validate_only=request.solving_mode == pb.OptimizeToursRequest.VALIDATE_ONLY,
        label=request.label,
        solving_mode=request.solving_mode,
        max_validation_errors=max_errors,
        geodesic_meters_per_second=speed,
        populate_polylines=request.populate_polylines or request.populate_transition_polylines,
        use_geodesic_distances=request.use_geodesic_distances,
        backend=backend,
        solver_processes=max(0, solver.solver_processes),
        random_seed=max(0, solver.random_seed),
        iteration_limit=solver.iteration_limit if solver.iteration_limit > 0 else None,
    )
