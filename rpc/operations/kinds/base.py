"""What an operation kind is to :class:`rpc.operations.manager.JobManager`.

An :class:`OperationKind` (one module per kind, registered in :mod:`rpc.operations.kinds`)
starts a dispatched job (:meth:`~OperationKind.start`, which hands it to the executor and
arranges its completion), cancels it, and packs its metadata and response types into a
``google.longrunning.Operation``. The manager does the rest (submission, the queue, dispatch,
recovery, deletion, expiry) and offers the kinds what they need through :class:`Host`.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import ClassVar, Final, Protocol, cast

from google.longrunning import operations_pb2
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2

from engine.progress import SolveProgress
from engine.roads import RoadContext
from rpc.convert import seconds_to_duration, seconds_to_timestamp
from rpc.errors import plain_status, status_of
from rpc.google.schema import google_type_url
from rpc.google.storage import Storage
from rpc.limits import Limits
from rpc.operations.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobRecord, JobStore
from rpc.pb import route_optimization_service_pb2 as pb
from runtime import Executor

log = logging.getLogger(__name__)

__all__ = [
    "OPERATION_PREFIX",
    "Cancellable",
    "Host",
    "OperationKind",
    "OperationSettings",
    "Running",
    "elapsed",
    "error_bytes",
    "is_google",
    "job_state",
    "new_name",
    "set_times",
    "status_bytes",
]

OPERATION_PREFIX: Final = "operations/"

GOOGLE_DEFAULT_PARENT: Final = "projects/-"
"""The parent of an operation created through Google's service by a request without one."""


def is_google(name: str) -> bool:
    """Whether operation ``name`` was created through Google's service
    (``projects/P[/locations/L]/operations/<hex>``): its metadata and response carry Google's
    type URLs so that Google's clients can unpack them."""
    return name.startswith("projects/")


class Cancellable(Protocol):
    """What runs a job (a solve job, a layout run): it can be cancelled."""

    def cancel(self) -> None: ...


@dataclass
class Running:
    """A job handed to the executor (or about to be): what the manager and its kind share.

    ``job`` and ``cancel_requested`` are guarded by the manager's lock; ``latest`` (the last
    progress, served at once by GetOperation) and ``written_at`` (when progress was last
    stored) by :attr:`lock`."""

    name: str
    label: str = ""
    job: Cancellable | None = None
    cancel_requested: bool = False
    latest: SolveProgress | None = None
    written_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    detect_limit: int | None = None
    """``max_validation_errors`` of a DETECT_SOME_INFEASIBLE_SHIPMENTS solve (None otherwise):
    its model errors found by the engine are answered in ``validation_errors``."""


@dataclass(frozen=True)
class OperationSettings:
    """The server's settings that the operation kinds apply."""

    default_timeout_s: float
    default_geodesic_meters_per_second: float
    solver_processes: int
    max_solver_processes: int | None
    roads: RoadContext | None
    layout_workers: int
    progress_every_s: float
    solutions_every_s: float
    storage: Storage = field(default_factory=lambda: Storage(None))
    """Where gs:// URIs live (BatchOptimizeTours model configs, OptimizeToursUri)."""
    limits: Limits = field(default_factory=Limits)
    """Request sizes and the long-running timeout cap (:mod:`rpc.limits`)."""


class Host(Protocol):
    """What :class:`~rpc.operations.manager.JobManager` offers the operation kinds."""

    @property
    def store(self) -> JobStore:
        """The job store."""

    @property
    def executor(self) -> Executor:
        """The solve executor."""

    def now(self) -> float:
        """The manager's clock (epoch seconds)."""

    def limits(self, tenant: str) -> Limits:
        """``tenant``'s request limits: the server's, lowered by its quota."""

    def finish(
        self, name: str, state: int, *, response: bytes | None = None, error: bytes | None = None
    ) -> None:
        """Store the end of an operation (its expiry too, unless it is an item of a batch)."""

    def finish_cancelled(self, rec: JobRecord) -> None:
        """Finish an operation cancelled while it was not running (with its stored best)."""

    def finished(self, parent: str | None) -> None:
        """An operation finished: refresh its ``parent`` (if any) and wake the waiters."""

    def refresh(self, parent: str) -> None:
        """Bring the grouping operation ``parent`` up to date with its items."""

    def wake(self) -> None:
        """Wake the waiters of operations (WaitOperation): one has finished."""

    def attach(self, state: Running, job: Cancellable) -> None:
        """``job`` runs ``state``'s operation; cancelled at once if a cancel came first."""

    def requeue(self, state: Running) -> bool:
        """Put a job the executor refused back at the head of the queue; False when it was
        cancelled meanwhile (it is not queued again)."""

    def release(self, state: Running) -> bool:
        """A job's run is over: it is no longer running. Returns whether the server is
        stopping (then an interrupted job is queued again, see :meth:`interrupted`). Call
        :meth:`settled` once its completion is stored."""

    def settled(self, state: Running) -> None:
        """A released job's completion has been stored (or given up)."""

    def interrupted(self, name: str) -> None:
        """A job stopped by the shutdown: queued again without spending an attempt."""

    def worker_lost(self, name: str, exc: BaseException) -> bool:
        """The process of a job died: queued again while it has attempts left (True), else
        finished ABORTED with the reason (False)."""

    def store_failed(self, exc: BaseException) -> None:
        """A store operation failed: the store is unhealthy until a write succeeds."""

    def live(self, name: str) -> SolveProgress | None:
        """The latest progress of a running operation, not yet stored, if any."""

    def queued(self, names: Collection[str]) -> set[str]:
        """Those of ``names`` that wait in the queue."""

    def stop_operation(self, name: str, parent: str | None, now: float) -> None:
        """Finish a queued operation as cancelled, or stop its running job."""


class OperationKind:
    """One kind of long-running operation; subclasses set :attr:`kind` and
    :attr:`response_type` and implement :meth:`metadata` (and :meth:`start` if
    :attr:`dispatched`)."""

    kind: ClassVar[str]
    """The ``kind`` of its rows in the store."""
    response_type: ClassVar[type[Message]]
    """The message of its operations' ``response``."""
    google_metadata: ClassVar[str] = ""
    """Name of Google's metadata message of these operations (their routeopt metadata is sent
    under its type URL: Google's metadata messages have no fields of their own)."""
    google_response: ClassVar[str] = ""
    """Name of Google's response message (wire-identical to :attr:`response_type`)."""
    dispatched: ClassVar[bool] = True
    """Its jobs are queued and started; False: it groups other operations (a batch)."""

    def __init__(self, host: Host, settings: OperationSettings) -> None:
        self.host = host
        self.settings = settings

    def start(self, state: Running, rec: JobRecord) -> bool:
        """Hand a queued job to the executor and arrange its completion; False when it was
        finished (or queued again) instead."""
        raise NotImplementedError(f"operations of kind {self.kind!r} are not dispatched")

    def metadata(self, rec: JobRecord) -> Message:
        """The operation's metadata message."""
        raise NotImplementedError

    def settle(self, state: Running, complete: Callable[[bool], None]) -> None:
        """A dispatched job is done: release its slot, let ``complete(stopping)`` record the
        outcome (``stopping``: the server is shutting down), and mark the operation settled;
        a store error is kept for the health check and logged."""
        host = self.host
        stopping = host.release(state)
        try:
            complete(stopping)
        except sqlite3.Error as exc:
            host.store_failed(exc)
            log.error("operation %s: cannot record its completion: %s", state.name, exc)
        finally:
            host.settled(state)

    def cancel(self, rec: JobRecord, now: float) -> None:
        """Cancel an unfinished operation (already marked cancel-requested in the store)."""
        self.host.stop_operation(rec.name, rec.batch, now)

    def refresh(self, rec: JobRecord) -> None:
        """Bring an unfinished grouping operation up to date with its items (on recovery and
        when one of them finishes); nothing for other kinds."""

    def fail(self, name: str, exc: BaseException) -> None:
        """Finish operation ``name`` as FAILED with the status of ``exc``."""
        self.host.finish(name, FAILED, error=error_bytes(exc, name))

    def cancelled_without_result(self, name: str, message: str) -> None:
        """Finish operation ``name`` as CANCELLED with no response (error CANCELLED)."""
        self.host.finish(name, CANCELLED, error=status_bytes(code_pb2.CANCELLED, message))

    def respond(self, name: str, response: Message, *, cancelled: bool) -> None:
        """Finish operation ``name`` with ``response``: CANCELLED if it was cancelled (a partial
        result), else SUCCEEDED."""
        state = CANCELLED if cancelled else SUCCEEDED
        self.host.finish(name, state, response=response.SerializeToString())

    def operation(self, rec: JobRecord) -> operations_pb2.Operation:
        """The ``google.longrunning.Operation`` of a stored operation."""
        google = is_google(rec.name) and bool(self.google_metadata)
        op = operations_pb2.Operation(name=rec.name, done=rec.done)
        metadata = self.metadata(rec)
        if google:
            op.metadata.type_url = google_type_url(self.google_metadata)
            op.metadata.value = metadata.SerializeToString()
        else:
            op.metadata.Pack(metadata)
        if rec.done:
            if rec.response is not None:
                response = self.response(rec)
                if google:
                    op.response.type_url = google_type_url(self.google_response)
                    op.response.value = response.SerializeToString()
                else:
                    op.response.Pack(response)
            elif rec.error is not None:
                op.error.ParseFromString(rec.error)
        return op

    def response(self, rec: JobRecord) -> Message:
        """The response of a finished operation that has one."""
        assert rec.response is not None
        return self.response_type.FromString(rec.response)


def new_name(parent: str | None = None) -> str:
    """A new operation name: ``operations/<32 hex digits>`` (128 bits from :mod:`secrets`, so
    that nobody finds an operation by guessing its name), or, for an operation created through
    Google's service (``parent`` not None), ``<parent>/operations/<32 hex digits>``."""
    if parent is None:
        return f"{OPERATION_PREFIX}{secrets.token_hex(16)}"
    return f"{parent or GOOGLE_DEFAULT_PARENT}/{OPERATION_PREFIX}{secrets.token_hex(16)}"


def job_state(state: int) -> pb.JobState.ValueType:
    """A stored state as the API's enum type."""
    return cast("pb.JobState.ValueType", state)


def status_bytes(code: int, message: str) -> bytes:
    """A serialized plain ``google.rpc.Status`` (a stored error)."""
    serialized: bytes = plain_status(code, message).SerializeToString()
    return serialized


def error_bytes(exc: BaseException, name: str) -> bytes:
    """The serialized status of operation ``name`` that failed with ``exc``
    (:func:`rpc.errors.status_of`, as for the unary calls)."""
    serialized: bytes = status_of(exc, action=f"operation {name}").SerializeToString()
    return serialized


def set_times(
    md: pb.OptimizeToursMetadata | pb.EvaluateDepotLayoutsMetadata, rec: JobRecord
) -> None:
    """The create/update/start/end times of an operation's metadata."""
    md.create_time.CopyFrom(seconds_to_timestamp(rec.create_time))
    md.update_time.CopyFrom(seconds_to_timestamp(rec.update_time))
    if rec.start_time is not None and rec.state != QUEUED:
        md.start_time.CopyFrom(seconds_to_timestamp(rec.start_time))
    if rec.end_time is not None and rec.done:
        md.end_time.CopyFrom(seconds_to_timestamp(rec.end_time))


def elapsed(rec: JobRecord, elapsed_s: float, now: float) -> duration_pb2.Duration:
    """The ``elapsed`` of an operation's metadata: ``elapsed_s`` (its progress so far), at least
    the time since it started while it runs, and start to end once done."""
    if rec.state == RUNNING and rec.start_time is not None:
        elapsed_s = max(elapsed_s, now - rec.start_time)
    elif rec.done and rec.start_time is not None and rec.end_time is not None:
        elapsed_s = rec.end_time - rec.start_time
    return seconds_to_duration(max(0.0, elapsed_s))
