"""gRPC error statuses with google.rpc rich details (``grpc-status-details-bin``): the one place
where exceptions become statuses.

:func:`status_of` maps any exception to a ``google.rpc.Status``; every unary and streaming
method (through :func:`grpc_status`) and the stored error of every long-running operation use
it, so the same failure gives the same status on every path:

- :class:`~engine.errors.InvalidModelError`: INVALID_ARGUMENT with a ``google.rpc.BadRequest``
  (one field violation per problem) and an ``ErrorInfo`` (:func:`invalid_argument_status`);
- :class:`~engine.errors.ExecutorFullError`: RESOURCE_EXHAUSTED with a ``RetryInfo``;
- :class:`CallSlotsFullError` (every call slot of a kind taken, :mod:`rpc.admission`):
  RESOURCE_EXHAUSTED with a ``RetryInfo`` and an ``ErrorInfo`` naming the limit;
- :class:`QuotaExceededError` (a tenant's quota): RESOURCE_EXHAUSTED with a ``QuotaFailure``,
  and a ``RetryInfo`` when waiting helps (operations finish; stored ones must be deleted);
- :class:`~engine.errors.ExecutorShutdownError`: UNAVAILABLE;
- :class:`sqlite3.Error` (the job store cannot read or write: disk full, database locked):
  UNAVAILABLE with a ``RetryInfo`` (:data:`STORE_RETRY_AFTER_S`), logged;
- :class:`~engine.errors.NoSolutionError`: DEADLINE_EXCEEDED, CANCELLED or FAILED_PRECONDITION
  by its reason; :class:`DeadlineTooShortError`: DEADLINE_EXCEEDED;
- a solve cancelled before it started: CANCELLED;
- :class:`OperationNotFoundError`: NOT_FOUND, :class:`NotFinishedError` and
  :class:`StorageNotConfiguredError`: FAILED_PRECONDITION,
  :class:`FilterError`: INVALID_ARGUMENT (the operations service);
- anything else (a :class:`~engine.errors.SolverError` too): INTERNAL with a fixed message and an
  incident id (:func:`internal_status`); the exception text and traceback go to the server log
  only, with the same incident id.

Details travel in trailing metadata, which gRPC limits (8 KiB by default on many clients), so
the BadRequest of :func:`invalid_argument_status` is capped; the ErrorInfo metadata gives the
total number of violations and how many are listed.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Sequence
from concurrent.futures import CancelledError

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from engine.errors import (
    ExecutorFullError,
    ExecutorShutdownError,
    FieldViolation,
    InvalidModelError,
    NoSolutionError,
)

__all__ = [
    "CALL_SLOTS_RETRY_AFTER_S",
    "ERROR_DOMAIN",
    "MAX_DETAIL_BYTES",
    "MAX_REPORTED_VIOLATIONS",
    "RETRY_AFTER_S",
    "STORE_RETRY_AFTER_S",
    "CallSlotsFullError",
    "DeadlineTooShortError",
    "FilterError",
    "NotFinishedError",
    "OperationNotFoundError",
    "QuotaExceededError",
    "StorageNotConfiguredError",
    "grpc_status",
    "internal_status",
    "invalid_argument_status",
    "malformed_request_status",
    "plain_status",
    "quota_status",
    "resource_exhausted_status",
    "status_of",
]

log = logging.getLogger(__name__)

ERROR_DOMAIN = "routeopt.dev"
"""``ErrorInfo.domain`` of every routeopt error."""

MAX_REPORTED_VIOLATIONS = 100
"""At most this many field violations are listed in the BadRequest detail."""

MAX_DETAIL_BYTES = 4096
"""Budget for the serialized BadRequest (base64 in the trailer: about 5.5 KiB)."""

RETRY_AFTER_S = 1.0
"""``RetryInfo`` delay suggested to clients when every solver worker is busy."""
STORE_RETRY_AFTER_S = 5.0
"""RetryInfo delay of a call refused because the job store fails."""
CALL_SLOTS_RETRY_AFTER_S = 1.0
"""RetryInfo delay of a call refused because every slot of its kind is taken."""

_MAX_DESCRIPTION_CHARS = 300
_MESSAGE_VIOLATIONS = 3
_MAX_MESSAGE_CHARS = 1000

_NO_SOLUTION_CODES = {
    "time_limit": code_pb2.DEADLINE_EXCEEDED,
    "interrupted": code_pb2.CANCELLED,
    "infeasible": code_pb2.FAILED_PRECONDITION,
}


class DeadlineTooShortError(Exception):
    """The call's deadline leaves no time to solve."""


_SLOT_KINDS: dict[str, str] = {
    "solve_calls": "synchronous solves (OptimizeTours)",
    "streams": "OptimizeToursStream calls",
    "long_polls": "WaitOperation calls",
    "matrix_calls": "ComputeMatrix calls",
}


class CallSlotsFullError(Exception):
    """Every call slot of ``kind`` (a :class:`~rpc.limits.Limits` field: ``streams``,
    ``long_polls``, ``matrix_calls``, ``solve_calls``) is taken; ``limit`` is their number."""

    def __init__(self, kind: str, limit: int) -> None:
        what = _SLOT_KINDS.get(kind, kind.replace("_", " "))
        super().__init__(
            f"the server is at capacity: at most {limit} {what} at once (--limit {kind}=N); "
            "retry later"
        )
        self.kind = kind
        self.limit = limit


class OperationNotFoundError(LookupError):
    """No operation has this name (never had, expired or deleted)."""


class QuotaExceededError(Exception):
    """A tenant's quota is used up: ``limit`` names it (``active``: operations queued or
    running; ``stored``: operations kept), ``quota`` is its value. ``retry_after_s``: when
    retrying later helps (None: only deleting operations does)."""

    def __init__(
        self, message: str, *, tenant: str, limit: str, quota: int, retry_after_s: float | None
    ) -> None:
        super().__init__(message)
        self.tenant = tenant
        self.limit = limit
        self.quota = quota
        self.retry_after_s = retry_after_s


class NotFinishedError(RuntimeError):
    """The operation is still queued or running."""


class StorageNotConfiguredError(RuntimeError):
    """A gs:// URI on a server started without ``--storage-root``."""


class FilterError(ValueError):
    """A ListOperations filter or page token that cannot be understood; ``field`` names the
    request field (``filter``, ``page_size`` or ``page_token``)."""

    def __init__(self, message: str, *, field: str = "filter") -> None:
        super().__init__(message)
        self.field = field


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain_status(code: int, message: str, details: Sequence[Message] = ()) -> status_pb2.Status:
    """A ``google.rpc.Status`` of ``code`` (a ``google.rpc.Code``) with ``message`` (truncated
    to 1000 characters) and ``details``."""
    return status_pb2.Status(
        code=code,
        message=_truncate(message, _MAX_MESSAGE_CHARS),
        details=[_pack(d) for d in details],
    )


def grpc_status(status: status_pb2.Status) -> grpc.Status:
    """``status`` for ``context.abort_with_status``: its code and message, and the whole status
    in the ``grpc-status-details-bin`` trailer (read it with ``rpc_status.from_call``)."""
    result: grpc.Status = rpc_status.to_status(status)
    return result


def invalid_argument_status(
    violations: Sequence[FieldViolation], *, summary: str
) -> status_pb2.Status:
    """INVALID_ARGUMENT with one ``BadRequest.FieldViolation`` per violation.

    The message is ``summary`` followed by the first violations. The BadRequest lists the
    violations in order until :data:`MAX_REPORTED_VIOLATIONS` or :data:`MAX_DETAIL_BYTES` is
    reached; the ``ErrorInfo`` (reason ``INVALID_MODEL``) has the metadata ``violation_count``
    and ``reported_violation_count``.
    """
    bad_request = error_details_pb2.BadRequest()
    size = 0
    for v in violations[:MAX_REPORTED_VIOLATIONS]:
        entry = error_details_pb2.BadRequest.FieldViolation(
            field=v.field, description=_truncate(v.description, _MAX_DESCRIPTION_CHARS)
        )
        entry_size = entry.ByteSize() + 3  # field tag and length prefix
        if bad_request.field_violations and size + entry_size > MAX_DETAIL_BYTES:
            break
        bad_request.field_violations.append(entry)
        size += entry_size
    total = len(violations)
    reported = len(bad_request.field_violations)
    shown = "; ".join(str(v) for v in violations[:_MESSAGE_VIOLATIONS])
    message = f"{summary}: {shown}" if shown else summary
    if total > _MESSAGE_VIOLATIONS:
        message += f" (and {total - _MESSAGE_VIOLATIONS} more)"
    info = error_details_pb2.ErrorInfo(
        reason="INVALID_MODEL",
        domain=ERROR_DOMAIN,
        metadata={"violation_count": str(total), "reported_violation_count": str(reported)},
    )
    return plain_status(code_pb2.INVALID_ARGUMENT, message, [bad_request, info])


def malformed_request_status(method: str, reason: str) -> status_pb2.Status:
    """INVALID_ARGUMENT for request bytes that do not parse as ``method``'s request type
    (:mod:`rpc.decoding`): a BadRequest whose violation names the whole request (field ""),
    and an ``ErrorInfo`` with reason ``MALFORMED_REQUEST``."""
    description = _truncate(f"the request does not parse ({reason})", _MAX_DESCRIPTION_CHARS)
    bad_request = error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(description=description)]
    )
    info = error_details_pb2.ErrorInfo(
        reason="MALFORMED_REQUEST", domain=ERROR_DOMAIN, metadata={"method": method}
    )
    return plain_status(
        code_pb2.INVALID_ARGUMENT,
        f"malformed request to {method}: {description}",
        [bad_request, info],
    )


def resource_exhausted_status(
    message: str, *, retry_after_s: float, metadata: dict[str, str] | None = None
) -> status_pb2.Status:
    """RESOURCE_EXHAUSTED (the server is at capacity) with a ``RetryInfo`` delay and an
    ``ErrorInfo`` (reason ``SERVER_BUSY``, with ``metadata``)."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(max(0, round(retry_after_s * 1e9)))
    details: list[Message] = [
        error_details_pb2.RetryInfo(retry_delay=delay),
        error_details_pb2.ErrorInfo(
            reason="SERVER_BUSY", domain=ERROR_DOMAIN, metadata=metadata or {}
        ),
    ]
    return plain_status(code_pb2.RESOURCE_EXHAUSTED, message, details)


def quota_status(exc: QuotaExceededError) -> status_pb2.Status:
    """RESOURCE_EXHAUSTED for a tenant's quota: a ``QuotaFailure`` (subject ``tenant:NAME``),
    an ``ErrorInfo`` (reason ``TENANT_QUOTA_EXCEEDED``, metadata ``limit`` and ``quota``) and,
    when waiting helps, a ``RetryInfo``."""
    violation = error_details_pb2.QuotaFailure.Violation(
        subject=f"tenant:{exc.tenant}", description=str(exc)
    )
    details: list[Message] = [
        error_details_pb2.QuotaFailure(violations=[violation]),
        error_details_pb2.ErrorInfo(
            reason="TENANT_QUOTA_EXCEEDED",
            domain=ERROR_DOMAIN,
            metadata={"limit": exc.limit, "quota": str(exc.quota)},
        ),
    ]
    if exc.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(max(0, round(exc.retry_after_s * 1e9)))
        details.insert(0, error_details_pb2.RetryInfo(retry_delay=delay))
    return plain_status(code_pb2.RESOURCE_EXHAUSTED, str(exc), details)


def internal_status(*, incident_id: str = "") -> status_pb2.Status:
    """INTERNAL with a fixed message: never an exception text or a traceback.

    ``incident_id`` (for example a random id also written to the server log) lets an operator
    find the log entry; it is put in the message and in ``ErrorInfo.metadata``.
    """
    message = "internal error"
    metadata: dict[str, str] = {}
    if incident_id:
        message += f" (incident {incident_id})"
        metadata["incident_id"] = incident_id
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN, metadata=metadata)
    return plain_status(code_pb2.INTERNAL, message, [info])


def status_of(exc: BaseException, *, action: str = "a call") -> status_pb2.Status:
    """The status of a call or an operation that failed with ``exc`` (see the module docstring).

    An unexpected error is logged here, with its traceback and the incident id of the status,
    as ``"<action> failed (incident …)"``."""
    if isinstance(exc, InvalidModelError):
        return invalid_argument_status(list(exc.violations), summary="invalid request")
    if isinstance(exc, ExecutorFullError):
        return resource_exhausted_status(
            f"the server is at capacity: {exc}", retry_after_s=RETRY_AFTER_S
        )
    if isinstance(exc, CallSlotsFullError):
        return resource_exhausted_status(
            str(exc),
            retry_after_s=CALL_SLOTS_RETRY_AFTER_S,
            metadata={"limit": exc.kind, "slots": str(exc.limit)},
        )
    if isinstance(exc, QuotaExceededError):
        return quota_status(exc)
    if isinstance(exc, ExecutorShutdownError):
        return plain_status(code_pb2.UNAVAILABLE, "the server is shutting down")
    if isinstance(exc, sqlite3.Error):
        log.error("%s: the job store failed: %s", action, exc)
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(STORE_RETRY_AFTER_S * 1e9))
        message = f"the job store is unavailable ({exc}); retry later"
        return plain_status(code_pb2.UNAVAILABLE, message, [retry])
    if isinstance(exc, NoSolutionError):
        return plain_status(_NO_SOLUTION_CODES[exc.reason], str(exc))
    if isinstance(exc, FilterError):
        violation = FieldViolation(exc.field, str(exc))
        return invalid_argument_status([violation], summary="invalid request")
    if isinstance(exc, CancelledError):
        return plain_status(code_pb2.CANCELLED, "the operation was cancelled before it started")
    simple = _SIMPLE_CODES.get(type(exc))
    if simple is not None:
        return plain_status(simple, str(exc))
    incident = uuid.uuid4().hex[:12]
    log.error("%s failed (incident %s)", action, incident, exc_info=exc)
    return internal_status(incident_id=incident)


_SIMPLE_CODES: dict[type[BaseException], int] = {
    DeadlineTooShortError: code_pb2.DEADLINE_EXCEEDED,
    OperationNotFoundError: code_pb2.NOT_FOUND,
    NotFinishedError: code_pb2.FAILED_PRECONDITION,
    StorageNotConfiguredError: code_pb2.FAILED_PRECONDITION,
}
"""Exceptions whose text is the message of a status of their own code."""
