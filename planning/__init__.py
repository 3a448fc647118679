"""Depot-layout planning on top of the routing engine (its public API only).

The study model, its validation, layout evaluation (routing each day of each layout), capacity
repair, the layout search and its facility-location screening. Reports (maps, charts) are in
:mod:`planning.report` (the ``layouts`` extra).
"""

from planning.layouts import (
    CandidateDepot,
    Day,
    Layout,
    LayoutEvaluation,
    LayoutKpis,
    LayoutOptions,
    LayoutSearch,
    LayoutStudy,
    Order,
    RoutedPart,
    SearchResult,
    SolveFn,
    TravelMatrix,
    VehicleType,
    evaluate_layout,
    evaluate_layouts,
    road_violations,
    search_layouts,
    validate_study,
)

__all__ = [
    "CandidateDepot",
    "Day",
    "Layout",
    "LayoutEvaluation",
    "LayoutKpis",
    "LayoutOptions",
    "LayoutSearch",
    "LayoutStudy",
    "Order",
    "RoutedPart",
    "SearchResult",
    "SolveFn",
    "TravelMatrix",
    "VehicleType",
    "evaluate_layout",
    "evaluate_layouts",
    "road_violations",
    "search_layouts",
    "validate_study",
]
