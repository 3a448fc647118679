"""Capacitated facility location with OR-Tools' MIP interface: the screening model of depot
layouts (:mod:`planning.screening`) and the capacity repair (:mod:`planning.repair`). Besides
:mod:`engine.backends.ortools` (routing), the only module of the project that imports ortools.

The model, for candidate depots ``j``, days ``t`` and the orders ``i`` of each day:

- ``y_j`` ∈ {0, 1}: depot j is open (``must_open`` fixes some to 1, ``fixed_open`` fixes all);
- ``x_tij`` ∈ {0, 1}: order i of day t is served from depot j (``x_tij ≤ y_j``); each mandatory
  order is assigned exactly once, an optional one at most once (else its penalty is paid);
- depot capacity per load type and day: ``Σ_i q_tid x_tij ≤ C_jd y_j``;
- ``min_open ≤ Σ_j y_j ≤ max_open``; each layout in ``exclude`` is cut off (no-good cut), which
  is how the next-best layouts are enumerated;
- minimise ``Σ_j opening_cost_j y_j · days + Σ_tij cost_tij x_tij + Σ penalties``.

``cost_tij`` is the caller's estimate of what serving order i from depot j adds to the routes
(an infinite cost forbids the pair). Solved with SCIP (or any backend name pywraplp knows, such
as ``"CP_SAT"``), single-threaded, within a time limit; the best solution found is returned with
whether it was proven optimal. With ``should_stop``, a watcher thread polls it while the solver
runs (OR-Tools releases the GIL during the solve) and interrupts the solve once it returns True
(:meth:`pywraplp.Solver.InterruptSolve`): the best solution found so far, if any, is returned.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from ortools.linear_solver import pywraplp

__all__ = ["FacilityDay", "FacilityResult", "solve_facility_location"]

STOP_POLL_S = 0.05
"""How often a running MIP checks its ``should_stop``."""


@dataclass(frozen=True, eq=False)
class FacilityDay:
    """One day of demand: ``demands[i, d]`` of load type d, ``costs[i, j]`` of serving order i
    from depot j (``inf``: not possible), ``penalties[i]`` (``nan``: mandatory)."""

    demands: npt.NDArray[np.float64]
    costs: npt.NDArray[np.float64]
    penalties: npt.NDArray[np.float64]


@dataclass(frozen=True)
class FacilityResult:
    open: frozenset[int]
    assignment: tuple[tuple[int, ...], ...]
    """Per day, per order: the serving depot, or -1 (an optional order left out)."""
    objective: float
    optimal: bool


def _open_variables(
    solver: pywraplp.Solver,
    n_depots: int,
    min_open: int,
    max_open: int | None,
    must_open: frozenset[int],
    fixed_open: frozenset[int] | None,
    exclude: Sequence[frozenset[int]],
) -> list[pywraplp.Variable]:
    """``y_j`` with the bounds on the open set and the no-good cuts of ``exclude``."""
    if fixed_open is not None:
        fixed = [1.0 if j in fixed_open else 0.0 for j in range(n_depots)]
        return [solver.IntVar(fixed[j], fixed[j], f"y{j}") for j in range(n_depots)]
    y = [solver.IntVar(1.0 if j in must_open else 0.0, 1.0, f"y{j}") for j in range(n_depots)]
    solver.Add(sum(y) >= min_open)
    if max_open is not None:
        solver.Add(sum(y) <= max_open)
    for layout in exclude:
        solver.Add(
            sum(1 - y[j] for j in layout) + sum(y[j] for j in range(n_depots) if j not in layout)
            >= 1
        )
    return y


def _add_day(
    solver: pywraplp.Solver,
    t: int,
    day: FacilityDay,
    y: Sequence[pywraplp.Variable],
    capacities: npt.NDArray[np.float64],
    objective: list[Any],
) -> list[dict[int, pywraplp.Variable]] | None:
    """``x_tij`` of day ``t`` with its assignment and capacity constraints, its costs and
    penalties added to ``objective``; None when a mandatory order no depot can serve."""
    n_depots = len(y)
    x_day: list[dict[int, pywraplp.Variable]] = []
    n_orders = day.costs.shape[0]
    for i in range(n_orders):
        row = {
            j: solver.BoolVar(f"x{t}_{i}_{j}")
            for j in range(n_depots)
            if math.isfinite(day.costs[i, j])
        }
        for j, var in row.items():
            solver.Add(var <= y[j])
            objective.append(float(day.costs[i, j]) * var)
        served = sum(row.values()) if row else 0
        penalty = day.penalties[i]
        if math.isnan(penalty):
            if not row:
                return None
            solver.Add(served == 1)
        else:
            solver.Add(served <= 1)
            objective.append(float(penalty) * (1 - served))
        x_day.append(row)
    for j in range(n_depots):
        for d in range(capacities.shape[1]):
            cap = capacities[j, d]
            if not math.isfinite(cap):
                continue
            load = [day.demands[i, d] * x_day[i][j] for i in range(n_orders) if j in x_day[i]]
            if load:
                solver.Add(sum(load) <= float(cap) * y[j])
    return x_day


def solve_facility_location(
    opening_costs: Sequence[float],
    capacities: npt.NDArray[np.float64],
    days: Sequence[FacilityDay],
    *,
    min_open: int = 1,
    max_open: int | None = None,
    must_open: frozenset[int] = frozenset(),
    fixed_open: frozenset[int] | None = None,
    exclude: Sequence[frozenset[int]] = (),
    time_limit_s: float = 10.0,
    solver_name: str = "SCIP",
    should_stop: Callable[[], bool] | None = None,
) -> FacilityResult | None:
    """Solve the screening model (module docstring); None when it has no solution (capacity
    short of demand, every layout excluded) or none was found in time.

    ``capacities[j, d]`` is depot j's capacity for load type d (``inf``: unlimited).
    """
    n_depots = len(opening_costs)
    if capacities.shape[0] != n_depots:
        raise ValueError(f"capacities has {capacities.shape[0]} rows for {n_depots} depots")
    solver = pywraplp.Solver.CreateSolver(solver_name)
    if solver is None:
        raise ValueError(f"OR-Tools has no MIP solver named {solver_name!r}")
    solver.SetNumThreads(1)
    solver.SetTimeLimit(max(1, int(time_limit_s * 1000)))
    y = _open_variables(solver, n_depots, min_open, max_open, must_open, fixed_open, exclude)
    objective: list[Any] = [float(opening_costs[j]) * len(days) * y[j] for j in range(n_depots)]
    x_all: list[list[dict[int, pywraplp.Variable]]] = []
    for t, day in enumerate(days):
        x_day = _add_day(solver, t, day, y, capacities, objective)
        if x_day is None:
            return None  # a mandatory order no depot can serve
        x_all.append(x_day)
    solver.Minimize(sum(objective))
    status = _solve(solver, should_stop)
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return None
    opened = frozenset(j for j in range(n_depots) if y[j].solution_value() > 0.5)
    assignment = tuple(
        tuple(
            next((j for j, var in row.items() if var.solution_value() > 0.5), -1) for row in x_day
        )
        for x_day in x_all
    )
    return FacilityResult(
        open=opened,
        assignment=assignment,
        objective=float(solver.Objective().Value()),
        optimal=status == pywraplp.Solver.OPTIMAL,
    )


def _solve(solver: pywraplp.Solver, should_stop: Callable[[], bool] | None) -> int:
    """``solver.Solve()``, interrupted once ``should_stop()`` (module docstring)."""
    if should_stop is None:
        return int(solver.Solve())
    if should_stop():
        return int(pywraplp.Solver.NOT_SOLVED)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(STOP_POLL_S):
            if should_stop():  # again until the solve returns: it may not have started yet
                solver.InterruptSolve()

    watcher = threading.Thread(target=watch, name="mip-stop", daemon=True)
    watcher.start()
    try:
        return int(solver.Solve())
    finally:
        done.set()
        watcher.join()
