"""The ``google.longrunning.Operations`` service over :class:`rpc.operations.manager.JobManager`.

GetOperation, ListOperations (``filter``: ``state=RUNNING``, ``state=QUEUED OR state=RUNNING``,
``done=true``, ``batch=operations/…``, ``kind=batch``, joined with ``AND``; paging with
``page_size`` and ``page_token``), CancelOperation, DeleteOperation (finished operations only:
FAILED_PRECONDITION otherwise) and WaitOperation (``timeout`` unset: up to
:data:`MAX_WAIT_S`, capped by the call's deadline). An unknown name is NOT_FOUND. Each call sees
the operations of its caller's tenant only (:func:`rpc.auth.current_tenant`): another tenant's
operation is NOT_FOUND like a name that never existed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final, TypeVar

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import empty_pb2

from rpc.auth import current_tenant
from rpc.convert import duration_to_seconds
from rpc.errors import grpc_status, status_of
from rpc.operations.manager import JobManager

__all__ = ["MAX_WAIT_S", "OPERATIONS_SERVICE_NAME", "OperationsServicer"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

OPERATIONS_SERVICE_NAME: Final = "google.longrunning.Operations"

MAX_WAIT_S: Final = 60.0
"""Longest WaitOperation; a client waits longer by calling it again."""

_WAIT_MARGIN_S: Final = 0.2
"""WaitOperation answers this long before the call's deadline."""

_WAIT_SLICE_S: Final = 1.0
"""WaitOperation checks this often whether its call is still active."""


def _empty(action: Callable[[str, str], None], name: str) -> Callable[[], empty_pb2.Empty]:
    """A call that does ``action(name, tenant)`` and answers Empty."""
    tenant = current_tenant()

    def run() -> empty_pb2.Empty:
        action(name, tenant)
        return empty_pb2.Empty()

    return run


class OperationsServicer(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    """Serves the operations of a :class:`JobManager`."""

    def __init__(self, jobs: JobManager) -> None:
        self._jobs = jobs

    def _call(self, method: str, context: grpc.ServicerContext, fn: Callable[[], _T]) -> _T:
        started = time.monotonic()
        code = grpc.StatusCode.OK
        tenant = current_tenant()
        try:
            return fn()
        except Exception as exc:
            status = grpc_status(status_of(exc, action=method))
            code = status.code
            context.abort_with_status(status)
            raise AssertionError("abort_with_status returned") from exc  # pragma: no cover
        finally:
            log.info(
                "%s code=%s latency_ms=%.1f peer=%s%s",
                method, code.name, (time.monotonic() - started) * 1000, context.peer(),
                f" tenant={tenant}" if tenant else "",
            )  # fmt: skip

    def GetOperation(  # noqa: N802 (gRPC method name)
        self, request: operations_pb2.GetOperationRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        return self._call(
            "GetOperation", context, lambda: self._jobs.get(request.name, current_tenant())
        )

    def ListOperations(  # noqa: N802
        self, request: operations_pb2.ListOperationsRequest, context: grpc.ServicerContext
    ) -> operations_pb2.ListOperationsResponse:
        def run() -> operations_pb2.ListOperationsResponse:
            operations, token = self._jobs.list(
                request.filter, request.page_size, request.page_token, current_tenant()
            )
            return operations_pb2.ListOperationsResponse(
                operations=operations, next_page_token=token
            )

        return self._call("ListOperations", context, run)

    def CancelOperation(  # noqa: N802
        self, request: operations_pb2.CancelOperationRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        return self._call("CancelOperation", context, _empty(self._jobs.cancel, request.name))

    def DeleteOperation(  # noqa: N802
        self, request: operations_pb2.DeleteOperationRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        return self._call("DeleteOperation", context, _empty(self._jobs.delete, request.name))

    def WaitOperation(  # noqa: N802
        self, request: operations_pb2.WaitOperationRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        timeout = MAX_WAIT_S
        if request.HasField("timeout"):
            timeout = min(max(0.0, duration_to_seconds(request.timeout)), MAX_WAIT_S)
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = max(0.0, min(timeout, remaining - _WAIT_MARGIN_S))
        tenant = current_tenant()

        def wait() -> operations_pb2.Operation:
            """Wait in slices, so that a call that ended (cancelled) frees its thread and its
            call slot (rpc.admission) within a slice rather than at its timeout."""
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                operation = self._jobs.wait(request.name, min(left, _WAIT_SLICE_S), tenant)
                if operation.done or left <= _WAIT_SLICE_S or not context.is_active():
                    return operation

        return self._call("WaitOperation", context, wait)
