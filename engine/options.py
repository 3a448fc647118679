"""Options of a solve, as a frozen dataclass."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["DEFAULT_GEODESIC_METERS_PER_SECOND", "SearchMode", "SolveOptions"]

DEFAULT_GEODESIC_METERS_PER_SECOND = 10.0
"""Speed for geodesic travel times when neither the request nor the server sets one (36 km/h)."""


class SearchMode(enum.IntEnum):
    """How to spend the time budget; values equal ``OptimizeToursRequest.SearchMode``."""

    RETURN_FAST = 1
    CONSUME_ALL_AVAILABLE_TIME = 2


@dataclass(frozen=True)
class SolveOptions:
    """How to solve.

    ``time_limit_s`` is the whole budget (matrices included); ``geodesic_meters_per_second``
    is the speed used for geodesic travel durations when the model has no client matrices.
    ``first_solution_strategy`` and ``local_search_metaheuristic`` override the backend's
    measured defaults (OR-Tools enum names such as ``"SAVINGS"`` or ``"GUIDED_LOCAL_SEARCH"``);
    the backend rejects names it does not know.
    """

    time_limit_s: float = 10.0
    search_mode: SearchMode = SearchMode.RETURN_FAST
    geodesic_meters_per_second: float = DEFAULT_GEODESIC_METERS_PER_SECOND
    backend: str = "ortools"
    first_solution_strategy: str | None = None
    local_search_metaheuristic: str | None = None
    use_geodesic_distances: bool = False
    """Geodesic travel even when a road network is available."""
    populate_polylines: bool = False
    """Draw route geometry (road travel only)."""

    def __post_init__(self) -> None:
        if not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s must be positive, got {self.time_limit_s}")
        if not self.geodesic_meters_per_second > 0:
            speed = self.geodesic_meters_per_second
            raise ValueError(f"geodesic_meters_per_second must be positive, got {speed}")
