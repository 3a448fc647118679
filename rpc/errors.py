"""gRPC error statuses with google.rpc rich details (``grpc-status-details-bin``).

Every status here is built as a ``google.rpc.Status`` and converted with
:func:`grpc_status.rpc_status.to_status`, so clients can read the details with
``grpc_status.rpc_status.from_call`` (or any google.rpc-aware client). Use it from a servicer
with ``context.abort_with_status(status)``.

Details travel in trailing metadata, which gRPC limits (8 KiB by default on many clients), so
the BadRequest of :func:`invalid_argument_status` is capped; the ErrorInfo metadata gives the
total number of violations and how many are listed.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from engine.errors import FieldViolation

__all__ = [
    "ERROR_DOMAIN",
    "MAX_DETAIL_BYTES",
    "MAX_REPORTED_VIOLATIONS",
    "internal_status",
    "invalid_argument_status",
    "resource_exhausted_status",
]

ERROR_DOMAIN = "routeopt.dev"
"""``ErrorInfo.domain`` of every routeopt error."""

MAX_REPORTED_VIOLATIONS = 100
"""At most this many field violations are listed in the BadRequest detail."""

MAX_DETAIL_BYTES = 4096
"""Budget for the serialized BadRequest (base64 in the trailer: about 5.5 KiB)."""

_MAX_DESCRIPTION_CHARS = 300
_MESSAGE_VIOLATIONS = 3
_MAX_MESSAGE_CHARS = 1000


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status(code: int, message: str, details: Sequence[Message]) -> grpc.Status:
    status = status_pb2.Status(
        code=code,
        message=_truncate(message, _MAX_MESSAGE_CHARS),
        details=[_pack(d) for d in details],
    )
    result: grpc.Status = rpc_status.to_status(status)
    return result


def invalid_argument_status(violations: Sequence[FieldViolation], *, summary: str) -> grpc.Status:
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
    return _status(code_pb2.INVALID_ARGUMENT, message, [bad_request, info])


def resource_exhausted_status(message: str, *, retry_after_s: float) -> grpc.Status:
    """RESOURCE_EXHAUSTED (the server is at capacity) with a ``RetryInfo`` delay."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(max(0, round(retry_after_s * 1e9)))
    details: list[Message] = [
        error_details_pb2.RetryInfo(retry_delay=delay),
        error_details_pb2.ErrorInfo(reason="SERVER_BUSY", domain=ERROR_DOMAIN),
    ]
    return _status(code_pb2.RESOURCE_EXHAUSTED, message, details)


def internal_status(*, incident_id: str = "") -> grpc.Status:
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
    return _status(code_pb2.INTERNAL, message, [info])
