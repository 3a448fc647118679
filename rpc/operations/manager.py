"""Long-running operations: durable jobs run by the solve executor.

This module does submission, dispatch, recovery, cancellation, deletion and expiry; each kind of
operation (``tours``, ``batch``, ``layouts``) is a module of :mod:`rpc.operations.kinds` that
starts its jobs and packs their metadata and responses; :mod:`rpc.operations.filter` parses
ListOperations filters.

:class:`JobManager` owns the operations of ``OptimizeToursLongRunning``,
``BatchOptimizeTours`` and ``EvaluateDepotLayouts`` (kind ``layouts``: a
:class:`~rpc.operations.layouts.LayoutRun` whose routing solves go to the same executor; its
progress is the layouts routed so far, kept as the partial response):

- **Submission** validates the request (INVALID_ARGUMENT as for OptimizeTours), refuses with
  :class:`~engine.errors.ExecutorFullError` (RESOURCE_EXHAUSTED) when ``max_jobs`` operations
  are already waiting or running, then stores the request in the
  :class:`~rpc.operations.store.JobStore` (committed) before the operation is returned.
- **Tenants**: every operation belongs to the tenant that submitted it (:mod:`rpc.auth` says
  who calls); get, wait, list, cancel and delete see only the caller's operations, and another
  tenant's operation is NOT_FOUND exactly like one that never existed. Submission also checks
  the tenant's :class:`~rpc.keys.TenantQuota` (:class:`~rpc.errors.QuotaExceededError`).
  ListOperations page tokens are sealed for their tenant (:class:`~rpc.page_tokens.PageTokens`).
- **Dispatch**: one thread hands queued jobs to the executor in creation order, only while it
  has an idle worker, so that synchronous OptimizeTours calls (which queue in the executor)
  are not starved by a backlog of jobs. The time budget of a job is its request's ``timeout``
  (or the server default); no call deadline applies.
- **Progress** from the worker is kept in memory (served by GetOperation at once) and written
  to the store at most every ``progress_every_s`` seconds, with the best solution so far
  whenever the worker sends one.
- **Completion** stores the response, or the ``google.rpc.Status`` of the failure (by
  :func:`rpc.errors.status_of`: the status OptimizeTours answers for it); finished operations
  expire ``retention_s`` seconds later (a janitor thread deletes them; items of a batch go with
  their batch). **Cancellation** of a queued job finishes it at once (error CANCELLED); a running
  one is stopped and keeps its best solution so far as the response (state CANCELLED).
- **Recovery**: on :meth:`JobManager.start`, jobs that were queued are queued again and jobs
  that were running (the server died under them) run again from the start: at-least-once, up to
  :data:`MAX_ATTEMPTS` attempts.
  A graceful shutdown (:meth:`JobManager.stop`) leaves interrupted jobs in the store the same
  way, so the next start finishes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import Final

from google.longrunning import operations_pb2
from google.rpc import code_pb2

from engine.errors import ExecutorFullError, ExecutorShutdownError
from engine.options import AUTO_SOLVER_PROCESSES
from engine.progress import SolveProgress
from engine.roads import RoadContext
from rpc.errors import NotFinishedError, OperationNotFoundError, QuotaExceededError
from rpc.google.storage import Storage
from rpc.keys import DEFAULT_TENANT, TenantQuota
from rpc.operations.filter import parse_filter, parse_page
from rpc.operations.kinds import (
    BatchKind,
    LayoutsKind,
    OperationKind,
    OperationSettings,
    Running,
    SolveKind,
    UriKind,
)
from rpc.operations.kinds.base import Cancellable, error_bytes, job_state, new_name, status_bytes
from rpc.operations.store import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    JobRecord,
    JobStore,
    NewJob,
)
from rpc.page_tokens import PageTokens
from rpc.pb import route_optimization_service_pb2 as pb
from runtime import Executor

__all__ = ["MAX_ATTEMPTS", "JobManager"]

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 3
"""A job that was running when the server stopped this many times fails (ABORTED) instead of
running again: it may be what brings the server down."""
QUOTA_RETRY_AFTER_S: Final = 5.0
"""``RetryInfo`` delay when a tenant has as many operations queued or running as its quota."""
_DISPATCH_POLL_S: Final = 0.25
"""The dispatcher also looks for idle workers this often (a synchronous call may free one)."""


class JobManager:
    """Durable long-running solves; see the module docstring. Call :meth:`start` once.

    Its public methods beyond the API's (submit, get, wait, list, cancel, delete) are the
    :class:`~rpc.operations.kinds.Host` that the operation kinds use."""

    def __init__(
        self,
        store: JobStore,
        executor: Executor,
        *,
        default_timeout_s: float,
        default_geodesic_meters_per_second: float,
        retention_s: float = 7 * 24 * 3600.0,
        max_jobs: int = 1000,
        progress_every_s: float = 1.0,
        solutions_every_s: float = 2.0,
        clock: Callable[[], float] = time.time,
        solver_processes: int = AUTO_SOLVER_PROCESSES,
        max_solver_processes: int | None = None,
        roads: RoadContext | None = None,
        layout_workers: int = 1,
        storage: Storage | None = None,
        quotas: Callable[[str], TenantQuota] | None = None,
        page_tokens: PageTokens | None = None,
    ) -> None:
        if not retention_s > 0:
            raise ValueError(f"retention_s must be positive, got {retention_s}")
        self._store = store
        self._executor = executor
        self.retention_s = retention_s
        self.max_jobs = max_jobs
        self._clock = clock
        self._quotas = quotas
        """The quota of a tenant (None: no per-tenant quota)."""
        self._page_tokens = page_tokens
        """Seals ListOperations page tokens (None: a token is the ``seq`` it ends at)."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._generation = 0
        """Bumped (under the lock) whenever an operation finishes: WaitOperation watches it."""
        self._queue: deque[str] = deque()
        self._running: dict[str, Running] = {}
        self._stopping = False
        self._threads: list[threading.Thread] = []
        settings = OperationSettings(
            default_timeout_s=default_timeout_s,
            default_geodesic_meters_per_second=default_geodesic_meters_per_second,
            solver_processes=solver_processes,
            max_solver_processes=max_solver_processes,
            roads=roads,
            layout_workers=max(1, layout_workers),
            progress_every_s=progress_every_s,
            solutions_every_s=solutions_every_s,
            storage=storage or Storage(None),
        )
        self._tours = SolveKind(self, settings)
        self._batch = BatchKind(self, settings, self._tours)
        self._layouts = LayoutsKind(self, settings)
        self._uri = UriKind(self, settings)
        self._kinds: dict[str, OperationKind] = {
            kind.kind: kind for kind in (self._tours, self._batch, self._layouts, self._uri)
        }

    @property
    def store(self) -> JobStore:
        """The job store."""
        return self._store

    @property
    def executor(self) -> Executor:
        """The solve executor."""
        return self._executor

    def now(self) -> float:
        """The manager's clock (epoch seconds)."""
        return self._clock()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Recover the stored jobs, then start the dispatcher and the janitor."""
        now = self._clock()
        recovered = self._recover(now)
        with self._changed:  # the older ones first
            self._queue = deque([*recovered, *self._queue])
            self._changed.notify_all()
        for kind in self._kinds.values():
            if not kind.dispatched:
                for rec in self._store.unfinished(kind.kind):
                    kind.refresh(rec)
        if recovered:
            log.info("recovered %d unfinished operations from %s", len(recovered), self._store.path)
        self._store.expire(now)
        for target, name in (
            (self._dispatch_loop, "job-dispatcher"),
            (self._janitor, "job-janitor"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _recover(self, now: float) -> list[str]:
        """The stored unfinished jobs to queue again, oldest first (those cancelled meanwhile
        or interrupted :data:`MAX_ATTEMPTS` times are finished instead)."""
        recovered: list[str] = []
        with self._lock:
            queued = set(self._queue)  # submitted while the server was warming up
        unfinished = [
            rec
            for kind in self._kinds.values()
            if kind.dispatched
            for rec in self._store.unfinished(kind.kind)
        ]
        for rec in sorted(unfinished, key=lambda r: r.seq):
            if rec.name in queued:
                continue
            if rec.cancel_requested:
                self.finish_cancelled(rec)
                continue
            if rec.state == RUNNING and rec.attempt >= MAX_ATTEMPTS:
                log.error("operation %s: interrupted %d times; giving up", rec.name, rec.attempt)
                message = f"the server stopped during each of {rec.attempt} attempts at this solve"
                self.finish(rec.name, FAILED, error=status_bytes(code_pb2.ABORTED, message))
                continue
            if rec.state == RUNNING:
                log.warning(
                    "operation %s was running when the server stopped (attempt %d): "
                    "running it again",
                    rec.name,
                    rec.attempt,
                )
                self._store.set_state(rec.name, QUEUED, now)
            recovered.append(rec.name)
        return recovered

    def stop(self) -> None:
        """Stop dispatching and cancel the running solves; they stay unfinished in the store
        (run again on the next start) unless they finish on their own first."""
        with self._changed:
            self._stopping = True
            running = list(self._running.values())
            self._changed.notify_all()
        for state in running:
            if state.job is not None:
                state.job.cancel()
        for thread in self._threads:
            thread.join(timeout=5.0)

    # -- submission ----------------------------------------------------------------------

    def _reserve(self, count: int) -> None:
        """Raise ExecutorFullError unless ``count`` more jobs fit (lock held)."""
        waiting = len(self._queue) + len(self._running)
        if waiting + count > self.max_jobs:
            raise ExecutorFullError(
                f"{waiting} operations are queued or running (at most {self.max_jobs}); retry later"
            )

    def _check_quota(self, tenant: str, active: int, stored: int) -> None:
        """Raise QuotaExceededError unless ``tenant`` may add ``active`` queued operations and
        ``stored`` stored ones (lock held)."""
        if self._quotas is None:
            return
        quota = self._quotas(tenant)
        if quota.max_active is not None:
            now_active = self._store.count(tenant, active=True)
            if now_active + active > quota.max_active:
                raise QuotaExceededError(
                    f"tenant quota: {now_active} operations are queued or running and this "
                    f"request adds {active} (at most {quota.max_active}); retry when some finish",
                    tenant=tenant,
                    limit="active",
                    quota=quota.max_active,
                    retry_after_s=QUOTA_RETRY_AFTER_S,
                )
        if quota.max_stored is not None:
            now_stored = self._store.count(tenant)
            if now_stored + stored > quota.max_stored:
                raise QuotaExceededError(
                    f"tenant quota: {now_stored} operations are stored and this request adds "
                    f"{stored} (at most {quota.max_stored}); delete finished operations "
                    "(DeleteOperation) or wait until they expire",
                    tenant=tenant,
                    limit="stored",
                    quota=quota.max_stored,
                    retry_after_s=None,
                )

    def submit(
        self,
        request: pb.OptimizeToursRequest,
        tenant: str = DEFAULT_TENANT,
        *,
        google: bool = False,
    ) -> operations_pb2.Operation:
        """Validate and store ``request`` for ``tenant``; returns its operation (queued).
        ``google``: made through Google's service (the operation is named under the request's
        parent and carries Google's type URLs)."""
        self._tours.check(request)
        name = new_name(request.parent if google else None)
        job = NewJob(
            name, self._tours.kind, request.label, request.SerializeToString(), tenant=tenant
        )
        self._store_and_queue([job], [job], tenant)
        return self.get(job.name, tenant)

    def submit_uri(
        self,
        request: pb.OptimizeToursUriRequest,
        tenant: str = DEFAULT_TENANT,
        *,
        google: bool = False,
    ) -> operations_pb2.Operation:
        """Validate an OptimizeToursUri call (its request file too) and store it."""
        self._uri.check_uri(request)
        name = new_name(request.parent if google else None)
        job = NewJob(name, self._uri.kind, "", request.SerializeToString(), tenant=tenant)
        self._store_and_queue([job], [job], tenant)
        return self.get(job.name, tenant)

    def submit_batch(
        self,
        request: pb.BatchOptimizeToursRequest,
        tenant: str = DEFAULT_TENANT,
        *,
        google: bool = False,
    ) -> operations_pb2.Operation:
        """Validate every request of the batch (all problems at once) and store them."""
        batch, items = self._batch.new_jobs(request, tenant, request.parent if google else None)
        self._store_and_queue([batch, *items], items, tenant)
        return self.get(batch.name, tenant)

    def submit_layouts(
        self, request: pb.EvaluateDepotLayoutsRequest, tenant: str = DEFAULT_TENANT
    ) -> operations_pb2.Operation:
        """Validate and store a depot layout study; returns its operation (queued)."""
        self._layouts.study(request)
        job = NewJob(
            new_name(),
            self._layouts.kind,
            request.label,
            request.SerializeToString(),
            tenant=tenant,
        )
        self._store_and_queue([job], [job], tenant)
        return self.get(job.name, tenant)

    def _store_and_queue(self, jobs: list[NewJob], queued: list[NewJob], tenant: str) -> None:
        """Store ``jobs`` and queue ``queued`` of them, if the server and the tenant have
        room."""
        with self._changed:
            if self._stopping:
                raise ExecutorShutdownError("the server is shutting down")
            self._reserve(len(queued))
            self._check_quota(tenant, len(queued), len(jobs))
            self._store.insert(jobs, self._clock())
            self._queue.extend(job.name for job in queued)
            self._changed.notify_all()

    # -- queries -------------------------------------------------------------------------

    def _record(self, name: str, tenant: str | None = None) -> JobRecord:
        """Operation ``name`` of ``tenant`` (None: any); another tenant's operation is not
        found, with the same error as one that never existed."""
        rec = self._store.get(name, tenant=tenant)
        if rec is None:
            raise OperationNotFoundError(f"no operation named {name!r}")
        return rec

    def _operation(self, rec: JobRecord) -> operations_pb2.Operation:
        return self._kinds[rec.kind].operation(rec)

    def get(self, name: str, tenant: str = DEFAULT_TENANT) -> operations_pb2.Operation:
        return self._operation(self._record(name, tenant))

    def wait(
        self, name: str, timeout_s: float, tenant: str = DEFAULT_TENANT
    ) -> operations_pb2.Operation:
        """The operation once done, or as it is after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                generation = self._generation
            rec = self._record(name, tenant)
            remaining = deadline - time.monotonic()
            if rec.done or remaining <= 0:
                return self._operation(rec)
            with self._changed:
                while self._generation == generation and not self._stopping:
                    if not self._changed.wait(deadline - time.monotonic()):
                        break
                if self._stopping:
                    return self._operation(self._record(name, tenant))

    def list(
        self, filter_text: str, page_size: int, page_token: str, tenant: str = DEFAULT_TENANT
    ) -> tuple[list[operations_pb2.Operation], str]:
        """A page of ``tenant``'s operations in creation order, and the token of the next page
        ("": last)."""
        flt = parse_filter(filter_text)
        if self._page_tokens is not None and page_token:
            page_token = str(self._page_tokens.open(page_token, tenant))
        size, after = parse_page(page_size, page_token)
        records = self._store.list(
            states=flt.states,
            batch=flt.batch,
            kind=flt.kind,
            after_seq=after,
            limit=size + 1,
            tenant=tenant,
        )
        next_token = ""
        if len(records) > size:
            last = records[size - 1].seq
            tokens = self._page_tokens
            next_token = tokens.seal(last, tenant) if tokens is not None else str(last)
        return [self._operation(r) for r in records[:size]], next_token

    def live(self, name: str) -> SolveProgress | None:
        """The latest progress of a running operation, not yet stored, if any."""
        with self._lock:
            state = self._running.get(name)
        if state is None:
            return None
        with state.lock:
            return state.latest

    def queued(self, names: Collection[str]) -> set[str]:
        """Those of ``names`` that wait in the queue."""
        with self._lock:
            return {name for name in names if name in self._queue}

    # -- control -------------------------------------------------------------------------

    def cancel(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        """Cancel an operation (a batch: each of its unfinished items). Done ones: no-op."""
        rec = self._record(name, tenant)
        if rec.done:
            return
        now = self._clock()
        self._store.request_cancel(name, now)
        self._kinds[rec.kind].cancel(rec, now)

    def stop_operation(self, name: str, parent: str | None, now: float) -> None:
        """Finish a queued operation as cancelled, or stop its running job (already marked
        cancel-requested in the store); nothing if it has finished meanwhile."""
        job = None
        with self._changed:
            queued = name in self._queue
            if queued:
                self._queue.remove(name)
            else:
                state = self._running.get(name)
                if state is not None:
                    state.cancel_requested = True
                    job = state.job
        if queued:
            self.finish_cancelled(self._record(name))
            self.finished(parent)
        elif job is not None:
            job.cancel()

    def delete(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        rec = self._record(name, tenant)
        if not rec.done:
            raise NotFinishedError(f"operation {name} is not done; cancel it first")
        self._store.delete(name)

    # -- dispatch ------------------------------------------------------------------------

    def _idle_worker(self) -> bool:
        ex = self._executor
        return ex.running_count + ex.queued_count < ex.max_workers

    def _next(self) -> Running | None:
        """Wait for a queued job and an idle worker; the job, registered as running (so that a
        cancel finds it queued or running), or None when the manager stops."""
        with self._changed:
            while True:
                self._changed.wait_for(
                    lambda: self._stopping or bool(self._queue), timeout=_DISPATCH_POLL_S
                )
                if self._stopping:
                    return None
                if self._queue and self._idle_worker():
                    name = self._queue.popleft()
                    state = self._running[name] = Running(name)
                    return state
                if self._queue:
                    self._changed.wait(_DISPATCH_POLL_S)

    def _dispatch_loop(self) -> None:
        while (state := self._next()) is not None:
            name = state.name
            try:
                started = self._start_job(state)
            except Exception as exc:
                log.exception("operation %s: cannot start it", name)
                self.finish(name, FAILED, error=error_bytes(exc, name))
                started = False
            if not started:
                with self._changed:
                    self._running.pop(name, None)
                rec = self._store.get(name)
                if rec is not None and rec.done:
                    self.finished(rec.batch)

    def _start_job(self, state: Running) -> bool:
        """Hand a job to its kind; False when it was finished (or requeued) instead."""
        rec = self._store.get(state.name)
        if rec is None or rec.done:
            return False
        if rec.cancel_requested or state.cancel_requested:
            self.finish_cancelled(rec)
            return False
        return self._kinds[rec.kind].start(state, rec)

    def attach(self, state: Running, job: Cancellable) -> None:
        """``job`` runs ``state``'s operation; cancelled at once if a cancel came first."""
        with self._changed:
            state.job = job
            cancel = state.cancel_requested
        if cancel:
            job.cancel()

    def requeue(self, state: Running) -> bool:
        """Put a job the executor refused back at the head of the queue; False when it was
        cancelled meanwhile (it is not queued again)."""
        with self._changed:
            if state.cancel_requested:
                return False
            self._queue.appendleft(state.name)
            return True

    def release(self, state: Running) -> bool:
        """A job's run is over; returns whether the manager is stopping."""
        with self._changed:
            self._running.pop(state.name, None)
            stopping = self._stopping
            self._changed.notify_all()
        return stopping

    # -- completion ----------------------------------------------------------------------

    def finish(
        self, name: str, state: int, *, response: bytes | None = None, error: bytes | None = None
    ) -> None:
        """Store the end of an operation; it expires ``retention_s`` later (an item of a batch
        expires with its batch)."""
        now = self._clock()
        rec = self._store.get(name)
        expire = None if rec is not None and rec.batch is not None else now + self.retention_s
        self._store.finish(name, state, now, response=response, error=error, expire_time=expire)
        log.info("operation %s: %s", name, pb.JobState.Name(job_state(state)))

    def finish_cancelled(self, rec: JobRecord) -> None:
        """Finish a job that was cancelled while it was not running: with the best solution a
        previous attempt stored, if any."""
        if rec.response is not None:
            self.finish(rec.name, CANCELLED, response=rec.response)
        else:
            message = "the operation was cancelled before a solution"
            self.finish(rec.name, CANCELLED, error=status_bytes(code_pb2.CANCELLED, message))

    def finished(self, parent: str | None) -> None:
        """Wake the waiters of an operation that just finished (and refresh its parent)."""
        if parent is not None:
            self.refresh(parent)
        self.wake()

    def refresh(self, parent: str) -> None:
        """Bring a grouping operation (a batch) up to date with its items."""
        rec = self._store.get(parent)
        if rec is not None and not rec.done:
            self._kinds[rec.kind].refresh(rec)

    def wake(self) -> None:
        """Wake the waiters of operations (WaitOperation)."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def _janitor(self) -> None:
        period = min(60.0, max(0.5, self.retention_s / 4))
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopping, timeout=period)
                if self._stopping:
                    return
            try:
                deleted = self._store.expire(self._clock())
            except Exception:
                log.exception("cannot expire old operations")
                continue
            if deleted:
                log.info("expired %d finished operations", deleted)
