"""Solver backends behind one small interface (see :mod:`engine.backends.base`)."""

from __future__ import annotations

from engine.backends.base import Backend, Progress, RoutePlan, StopCriterion

__all__ = ["BACKENDS", "Backend", "Progress", "RoutePlan", "StopCriterion", "get_backend"]

BACKENDS = ("ortools",)
"""Names accepted by :func:`get_backend`."""


def get_backend(
    name: str,
    *,
    first_solution_strategy: str | None = None,
    local_search_metaheuristic: str | None = None,
) -> Backend:
    """The backend called ``name`` with optional search overrides; ValueError when unknown."""
    if name == "ortools":
        from engine.backends.ortools_backend import OrToolsBackend

        return OrToolsBackend(first_solution_strategy, local_search_metaheuristic)
    raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
