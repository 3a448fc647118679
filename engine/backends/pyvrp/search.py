"""One run of PyVRP's iterated local search (:func:`run_search`) and its parameters."""

from __future__ import annotations

import logging
import warnings

import pyvrp
from pyvrp.exceptions import PenaltyBoundWarning

from engine.backends.pyvrp.data import Scale
from engine.backends.pyvrp.stop import BestTracker, Criterion

__all__ = ["run_search", "search_params"]

log = logging.getLogger(__name__)


def search_params(scale: Scale, tracker: BestTracker | None = None) -> pyvrp.SolveParams:
    """Search parameters: the problem's penalty range; ``tracker`` follows the best solution."""
    ils = (
        pyvrp.IteratedLocalSearchParams()
        if tracker is None
        else pyvrp.IteratedLocalSearchParams(callbacks=tracker)
    )
    return pyvrp.SolveParams(ils=ils, penalty=scale.penalty_params())


def run_search(
    data: pyvrp.ProblemData,
    stop: Criterion,
    seed: int,
    params: pyvrp.SolveParams,
    initial: pyvrp.Solution | None = None,
) -> pyvrp.Result:
    """``pyvrp.solve`` with its PenaltyBoundWarning sent to the log: it says PyVRP struggles
    to find a feasible solution, and the callers check the outcome (under auto, OR-Tools takes
    over)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PenaltyBoundWarning)
        result = pyvrp.solve(
            data, stop, seed, collect_stats=False, params=params, initial_solution=initial
        )
    for w in caught:
        if issubclass(w.category, PenaltyBoundWarning):
            log.debug("pyvrp: %s", " ".join(str(w.message).split()))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result
