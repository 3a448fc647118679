"""routeopt's engine: the problem model, travel matrices and solver backends (no gRPC here).

>>> from engine import ShipmentModel, Shipment, Vehicle, VisitRequest, LatLng, solve
"""

from engine.errors import (
    EngineError,
    FieldViolation,
    InvalidModelError,
    NoSolutionError,
    SolverError,
)
from engine.model import (
    BreakRequest,
    DurationDistanceMatrix,
    IncompatibilityMode,
    LatLng,
    PrecedenceRule,
    RequirementMode,
    Shipment,
    ShipmentModel,
    ShipmentTypeIncompatibility,
    ShipmentTypeRequirement,
    SoftLoadLimit,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from engine.options import AUTO_SOLVER_PROCESSES, SearchMode, SolveOptions
from engine.solution import (
    AggregatedMetrics,
    Break,
    Metrics,
    Route,
    SkippedShipment,
    SkipReason,
    SkipReasonCode,
    Solution,
    SolveStatus,
    Transition,
    Visit,
)
from engine.solve import solve
from engine.validation import check_model, validate_model

__all__ = [
    "AUTO_SOLVER_PROCESSES",
    "AggregatedMetrics",
    "Break",
    "BreakRequest",
    "DurationDistanceMatrix",
    "EngineError",
    "FieldViolation",
    "IncompatibilityMode",
    "InvalidModelError",
    "LatLng",
    "Metrics",
    "NoSolutionError",
    "PrecedenceRule",
    "RequirementMode",
    "Route",
    "SearchMode",
    "Shipment",
    "ShipmentModel",
    "ShipmentTypeIncompatibility",
    "ShipmentTypeRequirement",
    "SkipReason",
    "SkipReasonCode",
    "SkippedShipment",
    "SoftLoadLimit",
    "Solution",
    "SolveOptions",
    "SolveStatus",
    "SolverError",
    "TimeWindow",
    "Transition",
    "Vehicle",
    "Visit",
    "VisitRequest",
    "check_model",
    "solve",
    "validate_model",
]
