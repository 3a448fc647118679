"""What an operation kind is to :class:`rpc.operations.manager.JobManager`.

An :class:`OperationKind` (one module per kind, registered in :mod:`rpc.operations.kinds`)
starts a dispatched job (:meth:`~OperationKind.start`, which hands it to the executor and
arranges its completion), cancels it, and packs its metadata and response types into a
``google.longrunning.Operation``. The manager does the rest (submission, the queue, dispatch,
recovery, deletion, expiry) and offers the kinds what they need through :class:`Host`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Collection
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
from rpc.operations.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobRecord, JobStore
from rpc.pb import route_optimization_service_pb2 as pb
from runtime import Executor

__all__ = [
    "OPERATION_PREFIX",
    "Cancellable",
    "Host",
    "OperationKind",
    "OperationSettings",
    "Running",
    "elapsed",
    "error_bytes",
    "job_state",
    "new_name",
    "set_times",
    "status_bytes",
]

OPERATION_PREFIX: Final = "operations/"


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
        op = operations_pb2.Operation(name=rec.name, done=rec.done)
        op.metadata.Pack(self.metadata(rec))
        if rec.done:
            if rec.response is not None:
                op.response.Pack(self.response_type.FromString(rec.response))
            elif rec.error is not None:  # a batch finishes with a response, never an error
                op.error.ParseFromString(rec.error)
        return op


def new_name() -> str:
    """A new operation name: ``operations/<random hex>``."""
    return f"{OPERATION_PREFIX}{uuid.uuid4().hex}"


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
