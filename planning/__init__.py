"""Depot-layout planning on top of the routing engine (its public API only).

A :class:`LayoutStudy` holds the demand (orders of one or several days), candidate depots
(location, capacity per load type, opening cost per day, opening hours, fleet) and either
explicit :class:`Layout` s to compare or a :class:`LayoutSearch`. One module per job:

- :mod:`planning.study`: the study and the options; :mod:`planning.validation`: its checks;
- :mod:`planning.results`: evaluations, KPIs and search results;
- :mod:`planning.travel`: depot–order travel and cost estimates; :mod:`planning.loads`: loads
  and capacities as arrays;
- :mod:`planning.day_model`: the routing model of a layout-day and how it is solved;
- :mod:`planning.evaluate`: routing each day of a layout (:func:`evaluate_layout`), several
  layouts at once (:func:`evaluate_layouts`); :mod:`planning.repair`: the capacity-respecting
  re-assignment; :mod:`planning.kpis`: the KPIs of a routed layout;
- :mod:`planning.screening` and :mod:`planning.search`: the layout search
  (:func:`search_layouts`) and its facility-location screening
  (:mod:`planning.backends.ortools_mip`);
- :mod:`planning.budget`: a study's stop flag and deadline (:class:`Budget`), checked before
  every solve, MIP and local-search move (:class:`StoppedError`).

Reports (maps, charts) are in :mod:`planning.report` (the ``layouts`` extra).
"""

from planning.budget import Budget, StoppedError
from planning.day_model import SolveFn, build_day_model
from planning.evaluate import evaluate_layout, evaluate_layouts
from planning.results import (
    LayoutEvaluation,
    LayoutKpis,
    OnDone,
    RoutedPart,
    SearchResult,
    ShouldStop,
    rank_key,
)
from planning.search import search_layouts
from planning.study import (
    CandidateDepot,
    Day,
    Layout,
    LayoutOptions,
    LayoutSearch,
    LayoutStudy,
    Order,
    TravelMatrix,
    VehicleType,
)
from planning.validation import road_violations, validate_study

__all__ = [
    "Budget",
    "CandidateDepot",
    "Day",
    "Layout",
    "LayoutEvaluation",
    "LayoutKpis",
    "LayoutOptions",
    "LayoutSearch",
    "LayoutStudy",
    "OnDone",
    "Order",
    "RoutedPart",
    "SearchResult",
    "ShouldStop",
    "SolveFn",
    "StoppedError",
    "TravelMatrix",
    "VehicleType",
    "build_day_model",
    "evaluate_layout",
    "evaluate_layouts",
    "rank_key",
    "road_violations",
    "search_layouts",
    "validate_study",
]
