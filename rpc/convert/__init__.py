"""Conversion between the ``routeopt.v1`` protobuf messages and the engine's plain objects.

:func:`request_to_engine` validates a whole request at once. It checks what only the protobuf form
can get wrong (Timestamp/Duration encodings, LatLng ranges, non-finite numbers, matrix shapes,
enum values, request-level fields), then runs :func:`engine.validation.validate_model` on the
converted model, and raises :class:`~engine.errors.InvalidModelError` with every problem found.
Field paths are relative to the request, in proto field names
(``model.shipments[3].deliveries[0].time_windows[0].end_time``).

A value rejected here is replaced by a neutral one (the nearest valid time, 0, the default) in
the model given to the engine validator, and engine violations at a path already reported are
dropped, so that one problem is reported once.

The package is split by message family: :mod:`~rpc.convert.common` (well-known types and
:class:`~rpc.convert.common.FieldConverter`), :mod:`~rpc.convert.settings` (solver settings),
:mod:`~rpc.convert.model` (the ShipmentModel), :mod:`~rpc.convert.request` (whole requests) and
:mod:`~rpc.convert.solution` (responses).
"""

from rpc.convert.common import (
    FieldConverter,
    duration_to_seconds,
    each,
    seconds_to_duration,
    seconds_to_timestamp,
    timestamp_to_seconds,
)
from rpc.convert.model import ModelConverter
from rpc.convert.request import (
    REPORTING_MODES,
    UNSOLVED_MODES,
    check_size,
    convert_or_validate,
    detected_errors_response,
    model_violations,
    request_to_engine,
    solve_result,
    violations_to_validation_errors,
)
from rpc.convert.settings import RequestSettings
from rpc.convert.solution import solution_to_response

__all__ = [
    "REPORTING_MODES",
    "UNSOLVED_MODES",
    "FieldConverter",
    "ModelConverter",
    "RequestSettings",
    "check_size",
    "convert_or_validate",
    "detected_errors_response",
    "duration_to_seconds",
    "each",
    "model_violations",
    "request_to_engine",
    "seconds_to_duration",
    "seconds_to_timestamp",
    "solution_to_response",
    "solve_result",
    "timestamp_to_seconds",
    "violations_to_validation_errors",
]
