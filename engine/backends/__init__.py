"""Solver backends behind one small interface (see :mod:`engine.backends.base`).

Two backends: ``"ortools"`` (Google OR-Tools routing: every feature of the API) and
``"pyvrp"`` (PyVRP's iterated local search: capacities, time windows, several depots and
vehicle types, pickup-and-delivery pairs, alternatives, optional shipments, duration and
distance limits; not the features in :data:`engine.backends.pyvrp.backend.UNSUPPORTED`).
``"auto"`` picks, per model, the first backend of :data:`PREFERENCE` that supports every
feature the model uses; the order comes from the benchmark suite (``benchmarks/RESULTS.md``:
PyVRP's gaps to the best-known solutions are several times smaller than OR-Tools' at the same
time limit, on every set where both run).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.backends.base import Backend, Progress, RoutePlan, StopCriterion
from engine.backends.features import FEATURES, used_features
from engine.errors import FieldViolation, InvalidModelError
from engine.model import REQUEST_LEVEL_FIELDS
from engine.problem import Problem

__all__ = [
    "BACKENDS",
    "PREFERENCE",
    "Backend",
    "BackendChoice",
    "Progress",
    "RoutePlan",
    "StopCriterion",
    "choose_backend",
    "get_backend",
    "unsupported_features",
]

BACKENDS = ("auto", "ortools", "pyvrp")
"""Names accepted by :func:`get_backend` and :func:`choose_backend`."""

PREFERENCE = ("pyvrp", "ortools")
"""Backends in the order ``auto`` tries them (best measured route quality first)."""


def unsupported_features(name: str) -> frozenset[str]:
    """Features (:mod:`engine.backends.features`) that backend ``name`` cannot express."""
    if name == "ortools":
        return frozenset()
    if name == "pyvrp":
        from engine.backends.pyvrp.backend import UNSUPPORTED

        return UNSUPPORTED
    raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")


@dataclass(frozen=True)
class BackendChoice:
    """The backend that will solve a problem, and why (reported in the solution and the log)."""

    name: str
    reason: str
    fallback: bool = False
    """True when OR-Tools may take over if this backend finds no feasible solution (``auto``
    chose a backend that cannot skip mandatory shipments)."""
    blocked_by: frozenset[str] = frozenset()
    """Under ``auto``: the features that kept the preferred backend out."""


def choose_backend(problem: Problem, requested: str = "auto") -> BackendChoice:
    """The backend for ``problem``: ``requested`` itself, or with ``"auto"`` the preferred one
    that supports every feature the problem uses.

    Raises :class:`InvalidModelError` when ``requested`` names a backend that cannot express
    the problem (the violation names the field that needs the missing feature), ValueError for
    an unknown name.
    """
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}; known: {', '.join(BACKENDS)}")
    used = used_features(problem)
    if requested != "auto":
        missing = sorted(used.keys() & unsupported_features(requested))
        if missing:
            raise InvalidModelError(
                tuple(
                    FieldViolation(
                        used[f],
                        f"backend {requested!r} does not support {FEATURES[f]}; "
                        "use backend 'auto' or 'ortools'",
                    )
                    for f in missing
                )
            )
        return BackendChoice(requested, "requested")
    blocked = ""
    blocked_by: frozenset[str] = frozenset()
    for name in PREFERENCE:
        missing = sorted(used.keys() & unsupported_features(name))
        if not missing:
            reason = f"auto: {blocked}" if blocked else "auto: supports every feature of the model"
            return BackendChoice(name, reason, fallback=name != "ortools", blocked_by=blocked_by)
        if not blocked:
            where = used[missing[0]]
            if where.split(".")[0].split("[")[0] not in REQUEST_LEVEL_FIELDS:
                where = f"model.{where}"
            blocked = f"{name} cannot express {FEATURES[missing[0]]} ({where})"
            blocked_by = frozenset(missing)
    raise AssertionError("the last backend of PREFERENCE supports every feature")


def get_backend(
    name: str,
    *,
    first_solution_strategy: str | None = None,
    local_search_metaheuristic: str | None = None,
    seed: int = 0,
    iteration_limit: int | None = None,
    give_up_fraction: float | None = None,
    processes: int = 1,
) -> Backend:
    """The backend called ``name`` (not ``"auto"``) with its options; ValueError when unknown
    or when an option is not valid for it."""
    if name == "ortools":
        from engine.backends.ortools import OrToolsBackend

        return OrToolsBackend(
            first_solution_strategy, local_search_metaheuristic, solution_limit=iteration_limit
        )
    if name == "pyvrp":
        from engine.backends.pyvrp.backend import PyVRPBackend

        return PyVRPBackend(
            seed=seed,
            iteration_limit=iteration_limit,
            give_up_fraction=give_up_fraction,
            processes=processes,
        )
    raise ValueError(f"unknown backend {name!r}; known: {', '.join(b for b in BACKENDS[1:])}")
