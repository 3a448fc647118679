"""Operations of kind ``batch`` (BatchOptimizeTours): a group of ``tours`` operations, its items.

The batch itself is never dispatched: its items are. It is RUNNING once an item has left the
queue and finishes (SUCCEEDED, or CANCELLED when it was cancelled) once every item is done,
with a response listing each item's state and cost. Cancelling it cancels each unfinished item;
its items expire with it.
"""

from __future__ import annotations

import threading

from engine.errors import FieldViolation, InvalidModelError
from rpc.convert import seconds_to_timestamp
from rpc.operations.kinds.base import Host, OperationKind, OperationSettings, job_state, new_name
from rpc.operations.kinds.solve import SolveKind
from rpc.operations.store import CANCELLED, QUEUED, RUNNING, SUCCEEDED, JobRecord, NewJob
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["BatchKind"]


def _under(prefix: str, violations: tuple[FieldViolation, ...]) -> list[FieldViolation]:
    """``violations`` with paths under ``prefix``."""
    return [
        FieldViolation(f"{prefix}.{v.field}" if v.field else prefix, v.description)
        for v in violations
    ]


class BatchKind(OperationKind):
    """Groups the ``tours`` operations of a BatchOptimizeToursRequest."""

    kind = "batch"
    response_type = pb.BatchOptimizeToursResponse
    dispatched = False

    def __init__(self, host: Host, settings: OperationSettings, items: SolveKind) -> None:
        super().__init__(host, settings)
        self.items = items
        self._lock = threading.Lock()

    def new_jobs(
        self, request: pb.BatchOptimizeToursRequest, tenant: str
    ) -> tuple[NewJob, list[NewJob]]:
        """The batch and its items (of ``tenant``) to store, once every item is valid (else
        :class:`~engine.errors.InvalidModelError` with every problem, under
        ``requests[i]``)."""
        if not request.requests:
            raise InvalidModelError([FieldViolation("requests", "must not be empty")])
        violations: list[FieldViolation] = []
        for i, item in enumerate(request.requests):
            try:
                self.items.check(item)
            except InvalidModelError as exc:
                violations.extend(_under(f"requests[{i}]", exc.violations))
        if violations:
            raise InvalidModelError(violations)
        name = new_name()
        items = [
            NewJob(
                new_name(),
                "tours",
                item.label,
                item.SerializeToString(),
                batch=name,
                item_index=i,
                tenant=tenant,
            )
            for i, item in enumerate(request.requests)
        ]
        return NewJob(name, self.kind, request.label, tenant=tenant), items

    def cancel(self, rec: JobRecord, now: float) -> None:
        host = self.host
        items = [item.name for item in host.store.items(rec.name) if not item.done]
        # Every item is marked first and the queued ones are cancelled before the running
        # ones: a worker freed by a cancelled solve must not start a queued item.
        for item in items:
            host.store.request_cancel(item, now)
        queued = host.queued(items)
        for item in sorted(items, key=lambda item: item not in queued):
            host.stop_operation(item, rec.name, now)
        host.refresh(rec.name)

    def refresh(self, rec: JobRecord) -> None:
        host = self.host
        with self._lock:
            parent = host.store.get(rec.name)  # as it is now
            if parent is None or parent.done:
                return
            items = host.store.items(parent.name)
            if all(item.done for item in items):
                state = CANCELLED if parent.cancel_requested else SUCCEEDED
                response = self._response(items).SerializeToString()
                host.finish(parent.name, state, response=response)
                host.wake()
            elif parent.state == QUEUED and any(item.state != QUEUED for item in items):
                host.store.set_state(parent.name, RUNNING, host.now())

    @staticmethod
    def _response(items: list[JobRecord]) -> pb.BatchOptimizeToursResponse:
        result = pb.BatchOptimizeToursResponse()
        for item in items:
            entry = result.items.add(operation=item.name, state=job_state(item.state))
            if item.response is not None:
                response = pb.OptimizeToursResponse.FromString(item.response)
                entry.total_cost = response.metrics.total_cost
        return result

    def metadata(self, rec: JobRecord) -> pb.BatchOptimizeToursMetadata:
        items = self.host.store.items(rec.name)
        md = pb.BatchOptimizeToursMetadata(
            state=job_state(rec.state),
            label=rec.label,
            operations=[item.name for item in items],
            done_count=sum(1 for item in items if item.done),
            succeeded_count=sum(1 for item in items if item.done and item.response is not None),
        )
        md.create_time.CopyFrom(seconds_to_timestamp(rec.create_time))
        md.update_time.CopyFrom(seconds_to_timestamp(rec.update_time))
        if rec.end_time is not None and rec.done:
            md.end_time.CopyFrom(seconds_to_timestamp(rec.end_time))
        return md
