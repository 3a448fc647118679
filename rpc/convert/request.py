"""Validation and conversion of a whole OptimizeTours request (see :mod:`rpc.convert`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.errors import FieldViolation, InvalidModelError
from engine.model import ShipmentModel
from engine.solution import Solution
from engine.validation import validate_model
from rpc.convert.model import ModelConverter
from rpc.convert.settings import RequestSettings, request_settings
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = [
    "convert_or_validate",
    "model_violations",
    "request_to_engine",
    "solve_result",
    "violations_to_validation_errors",
]


def request_to_engine(
    request: pb.OptimizeToursRequest,
    *,
    default_geodesic_meters_per_second: float,
    max_solver_processes: int | None = None,
) -> tuple[ShipmentModel, RequestSettings]:
    """Validate ``request`` completely and convert it to an engine model and settings.

    Raises :class:`~engine.errors.InvalidModelError` listing every violation, with paths
    relative to the request (``timeout``, ``model.vehicles[0].start_location.latitude``).
    ``max_solver_processes``: the server's cap on ``solver.solver_processes``.
    """
    conv = ModelConverter()
    settings = request_settings(conv, request, default_geodesic_meters_per_second)
    cap = max_solver_processes
    if cap is not None and settings.solver_processes > cap:
        conv.add(
            "solver.solver_processes",
            f"at most {cap} on this server (--max-solver-processes), "
            f"got {settings.solver_processes}",
        )
    model = conv.model(request.model)
    reported = {v.field for v in conv.violations}
    for violation in model_violations(validate_model(model)):
        if reported.isdisjoint(_self_and_ancestors(violation.field)):
            conv.violations.append(violation)
    if conv.violations:
        raise InvalidModelError(conv.violations)
    return model, settings


def model_violations(violations: Iterable[FieldViolation]) -> list[FieldViolation]:
    """Engine violations (paths relative to the model) with paths relative to the request
    (under ``model``)."""
    return [
        FieldViolation(f"model.{v.field}" if v.field else "model", v.description)
        for v in violations
    ]


def solve_result(result: Callable[[], Solution]) -> Solution:
    """``result()`` (a solve job's result); an :class:`~engine.errors.InvalidModelError` the
    engine raises (rarely: the request was validated) gets request paths."""
    try:
        return result()
    except InvalidModelError as exc:
        raise InvalidModelError(model_violations(exc.violations)) from exc


def convert_or_validate(
    request: pb.OptimizeToursRequest,
    *,
    default_geodesic_meters_per_second: float,
    max_solver_processes: int | None = None,
) -> tuple[ShipmentModel, RequestSettings] | pb.OptimizeToursResponse:
    """The engine model and settings of a request to solve, or, for a ``VALIDATE_ONLY``
    request, its response (``validation_errors`` lists every problem; empty when valid).
    Raises :class:`~engine.errors.InvalidModelError` for an invalid request to solve."""
    validate_only = request.solving_mode == pb.OptimizeToursRequest.VALIDATE_ONLY
    try:
        model, settings = request_to_engine(
            request,
            default_geodesic_meters_per_second=default_geodesic_meters_per_second,
            max_solver_processes=max_solver_processes,
        )
    except InvalidModelError as exc:
        if not validate_only:
            raise
        response = pb.OptimizeToursResponse(request_label=request.label)
        response.validation_errors.extend(violations_to_validation_errors(exc.violations))
        return response
    if validate_only:
        return pb.OptimizeToursResponse(request_label=settings.label)
    return model, settings


def _self_and_ancestors(path: str) -> list[str]:
    """``a.b[2].c`` → ``a``, ``a.b``, ``a.b[2]``, ``a.b[2].c``."""
    cuts = [i for i, ch in enumerate(path) if ch in ".[" and i > 0]
    return [path[:i] for i in cuts] + [path]


def violations_to_validation_errors(
    violations: Iterable[FieldViolation],
) -> list[pb.OptimizeToursValidationError]:
    """Violations as the ``validation_errors`` of a VALIDATE_ONLY response."""
    return [
        pb.OptimizeToursValidationError(field_path=v.field, error_message=v.description)
        for v in violations
    ]
