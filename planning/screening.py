"""The screening model of the layout search: capacitated facility location on the depot–order
travel, each order costing an estimate of its share of the routes (``λ`` × its star (depot →
order → depot) cost + the vehicle fixed cost × its share of a vehicle's capacity), solved by
:mod:`planning.backends.ortools_mip`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from planning.backends.ortools_mip import FacilityDay, FacilityResult, solve_facility_location
from planning.budget import Budget, StoppedError
from planning.loads import capacity_matrix, demand_matrix, load_types, penalty_vector
from planning.study import Layout, LayoutStudy
from planning.travel import DayTravel, estimate_costs

__all__ = ["Screening", "layout_of"]


@dataclass
class Screening:
    """The screening model of ``study`` for layouts of ``min_open`` to ``max_open`` depots that
    keep ``must_open`` (indices), each solve within ``time_limit_s`` and ``budget`` (a MIP is
    not started once the budget is stopped, gets at most the time left, and is interrupted by
    the stop flag: :class:`~planning.budget.StoppedError`); the days of each ``λ`` are built
    once."""

    study: LayoutStudy
    travels: Sequence[DayTravel]
    min_open: int
    max_open: int
    must_open: frozenset[int]
    time_limit_s: float
    budget: Budget = field(default_factory=Budget)
    types: tuple[str, ...] = field(init=False)
    caps: npt.NDArray[np.float64] = field(init=False)
    cache: dict[float, list[FacilityDay]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.types = load_types(self.study)
        self.caps = capacity_matrix(self.study, self.types)

    def days(self, factor: float) -> list[FacilityDay]:
        """The facility-location days with ``λ`` = ``factor``."""
        if factor not in self.cache:
            self.cache[factor] = [
                FacilityDay(
                    demand_matrix(day, self.types),
                    estimate_costs(self.study, day, travel, factor),
                    penalty_vector(day),
                )
                for day, travel in zip(self.study.days, self.travels, strict=True)
            ]
        return self.cache[factor]

    def solve(
        self,
        factor: float,
        *,
        fixed_open: frozenset[int] | None = None,
        exclude: Sequence[frozenset[int]] = (),
    ) -> FacilityResult | None:
        """The screening model with ``λ`` = ``factor``: the best layout allowed (other than
        those in ``exclude``), or the layout ``fixed_open`` (module docstring)."""
        budget = self.budget
        budget.check()
        result = solve_facility_location(
            [d.opening_cost for d in self.study.depots],
            self.caps,
            self.days(factor),
            min_open=self.min_open,
            max_open=self.max_open,
            must_open=self.must_open,
            fixed_open=fixed_open,
            exclude=exclude,
            time_limit_s=budget.remaining(self.time_limit_s),
            should_stop=budget.stopped,
        )
        if result is None and budget.stopped():  # not found in the time left: not infeasible
            raise StoppedError("the study was stopped during the screening")
        return result

    def best(self, factor: float, exclude: Sequence[frozenset[int]] = ()) -> frozenset[int] | None:
        """The open set of the best layout allowed, other than those in ``exclude`` (None:
        none left, or none found in time)."""
        result = self.solve(factor, exclude=exclude)
        return None if result is None else result.open

    def cost(self, factor: float, layout: frozenset[int]) -> float:
        """The screening cost of the layout opening ``layout`` (``inf``: it cannot serve the
        demand)."""
        result = self.solve(factor, fixed_open=layout)
        return math.inf if result is None else result.objective


def layout_of(study: LayoutStudy, open_set: frozenset[int]) -> Layout:
    """The layout opening the depots ``open_set`` (indices), named after them."""
    names = tuple(study.depots[j].label for j in sorted(open_set))
    return Layout("+".join(names), names)
