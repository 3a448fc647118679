"""Operations of kind ``batch`` (BatchOptimizeTours): a group of ``tours`` operations, its items.

The batch itself is never dispatched: its items are. It is RUNNING once an item has left the
queue and finishes (SUCCEEDED, or CANCELLED when it was cancelled) once every item is done,
with a response listing each item's state and cost. Cancelling it cancels each unfinished item;
its items expire with it.
"""

from __future__ import annotations

import threading

from engine.errors import FieldViolation, InvalidModelError
from rpc.convert import FieldConverter, seconds_to_timestamp
from rpc.convert.settings import check_parent
from rpc.google.unknown import unhonoured_fields
from rpc.limits import Limits
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
    google_metadata = "BatchOptimizeToursMetadata"
    google_response = "BatchOptimizeToursResponse"
    dispatched = False

    def __init__(self, host: Host, settings: OperationSettings, items: SolveKind) -> None:
        super().__init__(host, settings)
        self.items = items
        self._lock = threading.Lock()

    def new_jobs(
        self,
        request: pb.BatchOptimizeToursRequest,
        tenant: str,
        parent: str | None = None,
        limits: Limits | None = None,
    ) -> tuple[NewJob, list[NewJob]]:
        """The batch and its items (of ``tenant``) to store, once every item is valid (else
        :class:`~engine.errors.InvalidModelError` with every problem, under ``requests[i]``
        or ``model_configs[i]``). The items are the inline ``requests``, then the requests
        read from the files of ``model_configs``. ``parent``: created through Google's
        service (operation names under it). ``limits``: the tenant's (None: the server's)."""
        limits = limits or self.settings.limits
        violations = unhonoured_fields(request)
        conv = FieldConverter()
        check_parent(conv, request.parent)
        violations.extend(conv.violations)
        if not request.requests and not request.model_configs:
            violations.append(FieldViolation("model_configs", "must not be empty"))
        cap = limits.batch_requests
        count = len(request.requests) + len(request.model_configs)
        if count > cap:  # refused before any model config is read or any item converted
            field = "requests" if request.requests else "model_configs"
            violations.append(
                FieldViolation(
                    field,
                    f"at most {cap:,} requests and model configs in all "
                    f"{limits.where('batch_requests')}, got {count:,}",
                )
            )
            raise InvalidModelError(violations)
        requests = list(request.requests)
        budget = limits.batch_mb * 1024 * 1024 - request.ByteSize()
        for i, config in enumerate(request.model_configs):
            try:
                item = self._read_config(config, f"model_configs[{i}]")
            except InvalidModelError as exc:
                violations.extend(exc.violations)
                continue
            budget -= item.ByteSize()
            if budget < 0:  # stop reading: the batch would not fit in memory nor the store
                violations.append(
                    FieldViolation(
                        f"model_configs[{i}]",
                        f"the batch's requests exceed {limits.batch_mb} MiB once read "
                        f"{limits.where('batch_mb')}",
                    )
                )
                raise InvalidModelError(violations)
            requests.append(item)
        for i, item in enumerate(requests):
            inline = i < len(request.requests)
            where = f"requests[{i}]" if inline else f"model_configs[{i - len(request.requests)}]"
            try:
                self.items.check(item, limits)
            except InvalidModelError as exc:
                violations.extend(_under(where, exc.violations))
        if violations:
            raise InvalidModelError(violations)
        name = new_name(parent)
        items = [
            NewJob(
                new_name(parent),
                "tours",
                item.label,
                item.SerializeToString(),
                batch=name,
                item_index=i,
                tenant=tenant,
            )
            for i, item in enumerate(requests)
        ]
        stored = request.SerializeToString() if request.model_configs else None
        return NewJob(name, self.kind, request.label, stored, tenant=tenant), items

    def _read_config(
        self, config: pb.BatchOptimizeToursRequest.AsyncModelConfig, path: str
    ) -> pb.OptimizeToursRequest:
        """The request of a model config (its output URI checked too)."""
        violations = []
        source, destination = config.input_config, config.output_config
        if not source.gcs_source.uri:
            violations.append(FieldViolation(f"{path}.input_config.gcs_source.uri", "is required"))
        if not destination.gcs_destination.uri:
            violations.append(
                FieldViolation(f"{path}.output_config.gcs_destination.uri", "is required")
            )
        for name, fmt in (
            ("input_config", source.data_format),
            ("output_config", destination.data_format),
        ):
            if fmt not in (pb.JSON, pb.PROTO_TEXT):
                violations.append(
                    FieldViolation(f"{path}.{name}.data_format", "must be JSON or PROTO_TEXT")
                )
        if violations:
            raise InvalidModelError(violations)
        storage = self.settings.storage
        storage.path(destination.gcs_destination.uri, f"{path}.output_config.gcs_destination.uri")
        return storage.read(
            source.gcs_source.uri,
            source.data_format,
            pb.OptimizeToursRequest,
            f"{path}.input_config.gcs_source.uri",
        )

    def _write_outputs(self, parent: JobRecord, items: list[JobRecord]) -> None:
        """Write the response of each model config's item to its output (items without a
        response write nothing: their operation has the error)."""
        if parent.request is None:
            return
        request = pb.BatchOptimizeToursRequest.FromString(parent.request)
        first = len(request.requests)
        for item in items:
            if item.item_index is None or item.item_index < first or item.response is None:
                continue
            k = item.item_index - first
            output = request.model_configs[k].output_config
            self.settings.storage.write(
                output.gcs_destination.uri,
                output.data_format,
                pb.OptimizeToursResponse.FromString(item.response),
                f"model_configs[{k}].output_config.gcs_destination.uri",
            )

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
                try:
                    self._write_outputs(parent, items)
                except Exception as exc:
                    self.fail(parent.name, exc)
                else:
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
