"""Validation and conversion of a whole OptimizeTours request (see :mod:`rpc.convert`)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from typing import Final

from engine.errors import FieldViolation, InvalidModelError
from engine.model import REQUEST_LEVEL_FIELDS, ShipmentModel
from engine.solution import Solution
from engine.validation import validate_model
from rpc.convert.injected import injected_fields
from rpc.convert.model import ModelConverter
from rpc.convert.settings import DEFAULT_MAX_VALIDATION_ERRORS, RequestSettings, request_settings
from rpc.google.unknown import UNSUPPORTED, unhonoured_fields
from rpc.limits import Limits, request_size_violations
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = [
    "REPORTING_MODES",
    "UNSOLVED_MODES",
    "VALIDATION_CODES",
    "check_size",
    "convert_or_validate",
    "detected_errors_response",
    "field_reference",
    "model_violations",
    "request_to_engine",
    "solve_result",
    "validation_code",
    "violations_to_validation_errors",
]


def request_to_engine(
    request: pb.OptimizeToursRequest,
    *,
    default_geodesic_meters_per_second: float,
    max_solver_processes: int | None = None,
    limits: Limits | None = None,
    synchronous: bool = True,
) -> tuple[ShipmentModel, RequestSettings]:
    """Validate ``request`` completely and convert it to an engine model and settings.

    Raises :class:`~engine.errors.InvalidModelError` listing every violation, with paths
    relative to the request (``timeout``, ``model.vehicles[0].start_location.latitude``).
    ``max_solver_processes``: the server's cap on ``solver.solver_processes``. The sizes are
    checked first against ``limits`` (default: :class:`~rpc.limits.Limits`'s defaults), before
    anything is converted (:func:`check_size`); ``synchronous`` selects the timeout cap.
    """
    check_size(request, limits, synchronous=synchronous)
    conv = ModelConverter()
    conv.violations.extend(unhonoured_fields(request))
    settings = request_settings(conv, request, default_geodesic_meters_per_second)
    cap = max_solver_processes
    if cap is not None and settings.solver_processes > cap:
        conv.add(
            "solver.solver_processes",
            f"at most {cap} on this server (--max-solver-processes), "
            f"got {settings.solver_processes}",
        )
    model = conv.model(request.model)
    model = dataclasses.replace(model, **injected_fields(conv, request))  # re-optimisation
    reported = {v.field for v in conv.violations}
    for violation in model_violations(validate_model(model)):
        if reported.isdisjoint(_self_and_ancestors(violation.field)):
            conv.violations.append(violation)
    if conv.violations:
        raise InvalidModelError(conv.violations)
    return model, settings


def check_size(
    request: pb.OptimizeToursRequest, limits: Limits | None, *, synchronous: bool
) -> None:
    """:class:`~engine.errors.InvalidModelError` when ``request`` exceeds ``limits`` (default
    limits when None): checked on lengths only, before any conversion allocates, and whatever
    the solving mode (a VALIDATE_ONLY request that is too big is refused too)."""
    problems = request_size_violations(request, limits or Limits(), synchronous=synchronous)
    if problems:
        raise InvalidModelError(problems)


def model_violations(violations: Iterable[FieldViolation]) -> list[FieldViolation]:
    """Engine violations (paths relative to the model) with paths relative to the request
    (under ``model``, but for the model fields that are request fields in the API: the
    injected solutions, :data:`~engine.model.REQUEST_LEVEL_FIELDS`)."""
    return [FieldViolation(_request_path(v.field), v.description) for v in violations]


def _request_path(field: str) -> str:
    if not field:
        return "model"
    if re.split(r"[.\[]", field, maxsplit=1)[0] in REQUEST_LEVEL_FIELDS:
        return field
    return f"model.{field}"


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
    limits: Limits | None = None,
    synchronous: bool = True,
) -> tuple[ShipmentModel, RequestSettings] | pb.OptimizeToursResponse:
    """The engine model and settings of a request to solve (or, for
    ``DETECT_SOME_INFEASIBLE_SHIPMENTS``, to pre-check), or the response of a request that is
    not solved: ``VALIDATE_ONLY`` and ``TRANSFORM_AND_RETURN_REQUEST`` (with the request as
    ``processed_request``: routeopt transforms nothing). In these modes an invalid request is
    answered with ``validation_errors`` (at most ``max_validation_errors``); otherwise
    :class:`~engine.errors.InvalidModelError` is raised. A request over the size ``limits``
    raises in every mode (:func:`check_size`)."""
    modes = pb.OptimizeToursRequest
    validate_only = request.solving_mode in REPORTING_MODES
    check_size(request, limits, synchronous=synchronous)
    try:
        model, settings = request_to_engine(
            request,
            default_geodesic_meters_per_second=default_geodesic_meters_per_second,
            max_solver_processes=max_solver_processes,
            limits=limits,
            synchronous=synchronous,
        )
    except InvalidModelError as exc:
        if not validate_only:
            raise
        limit = DEFAULT_MAX_VALIDATION_ERRORS
        if request.HasField("max_validation_errors") and request.max_validation_errors > 0:
            limit = request.max_validation_errors
        response = pb.OptimizeToursResponse(request_label=request.label)
        response.validation_errors.extend(violations_to_validation_errors(exc.violations, limit))
        return response
    if request.solving_mode == modes.VALIDATE_ONLY:
        return pb.OptimizeToursResponse(request_label=settings.label)
    if request.solving_mode == modes.TRANSFORM_AND_RETURN_REQUEST:
        return pb.OptimizeToursResponse(request_label=settings.label, processed_request=request)
    return model, settings


def detected_errors_response(
    violations: Iterable[FieldViolation], *, request_label: str, limit: int
) -> pb.OptimizeToursResponse:
    """The answer of a ``DETECT_SOME_INFEASIBLE_SHIPMENTS`` request whose pre-check finds
    problems the model check cannot (the ``injected_solution_constraint``'s locks that cannot
    hold): Google's semantics, the problems in ``validation_errors`` (at most ``limit``), and
    ``skipped_shipments`` left empty, like ``status`` and ``routes``."""
    response = pb.OptimizeToursResponse(request_label=request_label)
    response.validation_errors.extend(violations_to_validation_errors(violations, limit))
    return response


REPORTING_MODES: Final = frozenset(
    {
        pb.OptimizeToursRequest.VALIDATE_ONLY,
        pb.OptimizeToursRequest.DETECT_SOME_INFEASIBLE_SHIPMENTS,
        pb.OptimizeToursRequest.TRANSFORM_AND_RETURN_REQUEST,
    }
)
"""Solving modes that answer an invalid request with ``validation_errors`` (not an error)."""

UNSOLVED_MODES: Final = frozenset(
    {pb.OptimizeToursRequest.VALIDATE_ONLY, pb.OptimizeToursRequest.TRANSFORM_AND_RETURN_REQUEST}
)
"""Solving modes answered without running the engine."""


def _self_and_ancestors(path: str) -> list[str]:
    """``a.b[2].c`` → ``a``, ``a.b``, ``a.b[2]``, ``a.b[2].c``."""
    cuts = [i for i, ch in enumerate(path) if ch in ".[" and i > 0]
    return [path[:i] for i in cuts] + [path]


def violations_to_validation_errors(
    violations: Iterable[FieldViolation], limit: int | None = None
) -> list[pb.OptimizeToursValidationError]:
    """Violations as the ``validation_errors`` of a response (at most ``limit``): Google's
    ``OptimizeToursValidationError`` (code and display name of the kind of problem, the field
    as a FieldReference chain, the message) plus routeopt's ``field_path``."""
    chosen = list(violations)
    if limit is not None:
        chosen = chosen[:limit]
    errors = []
    for v in chosen:
        code, name = validation_code(v.field, v.description)
        error = pb.OptimizeToursValidationError(
            code=code, display_name=name, error_message=v.description, field_path=v.field
        )
        reference = field_reference(v.field)
        if reference is not None:
            error.fields.append(reference)
        errors.append(error)
    return errors


VALIDATION_CODES: Final[tuple[tuple[int, str, frozenset[str]], ...]] = (
    (2, "UNSUPPORTED_FIELD", frozenset()),  # rpc.google.unknown
    (10, "LOCATION_INVALID", frozenset({
        "arrival_location", "start_location", "end_location", "latitude", "longitude",
    })),
    (20, "TIME_INVALID", frozenset({
        "time_windows", "start_time_windows", "end_time_windows", "start_time", "end_time",
        "soft_start_time", "soft_end_time", "global_start_time", "global_end_time",
    })),
    (30, "DURATION_INVALID", frozenset({
        "duration", "timeout", "max_duration",
        "soft_max_duration", "pickup_to_delivery_time_limit",  # issue 15
        "pickup_to_delivery_absolute_detour_limit", "pickup_to_delivery_relative_detour_limit",
        "offset_duration",
        "travel_duration_limit", "quadratic_soft_max_duration",  # issue 15, driver hours
        "extra_visit_duration_for_visit_type",  # issue 15, visit types
        "delay",  # issue 15, transition attributes
    })),
    (40, "LOAD_INVALID", frozenset({
        "load_demands", "load_limits", "amount", "max_load", "soft_max_load",
        "start_load_interval", "end_load_interval",  # issue 15, loads
        "load_threshold",  # issue 15, load-dependent costs
    })),
    (50, "MATRIX_INVALID", frozenset({
        "duration_distance_matrices", "duration_distance_matrix_src_tags",
        "duration_distance_matrix_dst_tags", "tags", "start_tags", "end_tags", "rows",
        "durations", "meters", "vehicle_start_tag",
    })),
    (60, "VEHICLE_INDEX_INVALID", frozenset({
        "allowed_vehicle_indices", "costs_per_vehicle_indices",
    })),
    (70, "COST_INVALID", frozenset({
        "cost_per_hour", "cost_per_traveled_hour", "cost_per_kilometer", "fixed_cost",
        "penalty_cost", "cost_per_hour_before_soft_start_time",
        "cost_per_hour_after_soft_end_time", "travel_duration_multiple",
        "cost", "costs_per_vehicle", "global_duration_cost_per_hour",  # issue 15
        "cost_per_hour_after_soft_max", "cost_per_kilometer_above_soft_max",
        "cost_per_unit_above_soft_max",
        "cost_per_square_hour_after_quadratic_soft_max",  # issue 15, driver hours
        "cost_per_unit_below_threshold", "cost_per_unit_above_threshold",  # issue 15, loads
    })),
    (80, "BREAK_INVALID", frozenset({
        "break_rule", "break_requests", "earliest_start_time", "latest_start_time", "min_duration",
        "frequency_constraints", "min_break_duration", "max_inter_break_duration",  # issue 15
    })),
    (90, "DISTANCE_LIMIT_INVALID", frozenset({
        "route_distance_limit", "max_meters", "soft_max_meters",
        "distance_limit",  # issue 15, transition attributes
    })),
    (100, "SOLVER_SETTINGS_INVALID", frozenset({
        "solver", "backend", "solver_processes", "random_seed", "iteration_limit",
    })),
    (120, "INJECTED_SOLUTION_INVALID", frozenset({  # routeopt's code, issue 15
        "injected_first_solution_routes", "injected_solution_constraint",
        "refresh_details_routes", "interpret_injected_solutions_using_labels", "routes", "visits",
        "shipment_index", "visit_request_index", "vehicle_index", "vehicle_label",
        "shipment_label", "vehicle_start_time", "vehicle_end_time", "skipped_shipments",
        "constraint_relaxations", "relaxations", "level", "threshold_time",
        "threshold_visit_count", "vehicle_indices", "index",
    })),
    (110, "REQUEST_SETTING_INVALID", frozenset({
        "parent", "search_mode", "solving_mode", "geodesic_meters_per_second",
        "max_validation_errors", "progress_routes_interval", "requests", "model_configs",
    })),
)  # fmt: skip
"""routeopt's validation error codes (Google's ``OptimizeToursValidationError.code`` and
``display_name``): the kind of problem, from the innermost field of the path that names one.
Anything else is 1, ``INVALID_FIELD``; a field routeopt does not honour is 2."""


def validation_code(path: str, description: str = "") -> tuple[int, str]:
    """The code and display name of a violation at ``path``."""
    if description.startswith(UNSUPPORTED):
        return 2, "UNSUPPORTED_FIELD"
    names = [part for part in re.split(r"[.\[]", path) if part and not part.endswith("]")]
    for name in reversed(names):
        for code, display, fields in VALIDATION_CODES:
            if name in fields:
                return code, display
    return 1, "INVALID_FIELD"


_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[[^\]]*\])*)")


def field_reference(path: str) -> pb.OptimizeToursValidationError.FieldReference | None:
    """``model.shipments[3].load_demands[kg]`` as Google's FieldReference chain (an index per
    ``[n]``, a key per ``[text]``); None for an empty path."""
    refs: list[pb.OptimizeToursValidationError.FieldReference] = []
    for part in path.split(".") if path else ():
        match = _SEGMENT.fullmatch(part)
        if match is None:  # a map key with a dot in it: keep the rest as one name
            refs.append(pb.OptimizeToursValidationError.FieldReference(name=part))
            continue
        name, brackets = match.groups()
        subscripts = re.findall(r"\[([^\]]*)\]", brackets)
        ref = pb.OptimizeToursValidationError.FieldReference(name=name)
        refs.append(ref)
        for k, sub in enumerate(subscripts):
            target = ref if k == 0 else refs[-1]
            if k > 0:  # a[1][2]: a nested list, the second subscript on an unnamed field
                target = pb.OptimizeToursValidationError.FieldReference(name=name)
                refs.append(target)
            if sub.isdigit():
                target.index = int(sub)
            else:
                target.key = sub
    if not refs:
        return None
    for outer, inner in zip(reversed(refs[:-1]), reversed(refs[1:]), strict=True):
        outer.sub_field.CopyFrom(inner)
    return refs[0]
