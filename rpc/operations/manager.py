"""Long-running operations: durable jobs run by the solve executor.

This module does submission, dispatch, recovery, cancellation, deletion and expiry; each kind of
operation (``tours``, ``batch``, ``layouts``) is a module of :mod:`rpc.operations.kinds` that
starts its jobs and packs their metadata and responses; :mod:`rpc.operations.filter` parses
ListOperations filters.

:class:`JobManager` owns the operations of ``OptimizeToursLongRunning``,
``BatchOptimizeTours`` and ``EvaluateDepotLayouts`` (kind ``layouts``: a study run as a task
of the same executor, in a worker process like a solve, :mod:`rpc.operations.layouts`; its
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
  :data:`MAX_ATTEMPTS` attempts. An attempt is counted in the store *before* the job is handed
  to the executor, so a job that brings the whole server down is counted too.
  A graceful shutdown (:meth:`JobManager.stop`) queues interrupted jobs again in the store
  without spending an attempt, so the next start finishes them.
- **Poison jobs**: a job whose worker process dies (killed, out of memory, crashed) runs again,
  up to :data:`MAX_ATTEMPTS` attempts in all; then it fails with ABORTED and the reason.
- **Store faults**: a store error (disk full, database locked) never kills the dispatcher nor
  loses a result: a job that cannot be started goes back to the head of the queue; a result
  that cannot be stored is kept in memory and stored again every second, and after
  :data:`STORE_RETRY_S` seconds the operation is finished FAILED (UNAVAILABLE, "the job store
  could not record the result") instead, which is smaller. Meanwhile :attr:`JobManager.healthy`
  is False (the server's health NOT_SERVING); it turns True again once the store writes
  (a probe row is written every second while it is failing) and the dispatcher runs.
- **Disk**: besides the retention, the janitor keeps the finished operations under
  ``max_store_bytes`` (oldest deleted first) and gives the freed pages back to the file system.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

from google.longrunning import operations_pb2
from google.rpc import code_pb2

from engine.errors import ExecutorFullError, ExecutorShutdownError, InvalidModelError
from engine.options import AUTO_SOLVER_PROCESSES
from engine.progress import SolveProgress
from engine.roads import RoadContext
from rpc.errors import NotFinishedError, OperationNotFoundError, QuotaExceededError
from rpc.google.storage import Storage
from rpc.keys import DEFAULT_TENANT, TenantQuota
from rpc.layouts import expand_sheets
from rpc.limits import Limits, study_size_violations
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
_WATCH_S: Final = 1.0
"""How often the watch thread retries unstored results, probes a failing store and checks the
dispatcher."""
STORE_RETRY_S: Final = 30.0
"""How long a result that cannot be stored is retried before the operation is finished FAILED
(UNAVAILABLE) instead."""
_VACUUM_EVERY_S: Final = 3600.0
"""The janitor gives freed pages back to the file system at least this often."""


@dataclass
class _Unstored:
    """The end of an operation that the store could not record yet."""

    state: int
    response: bytes | None
    error: bytes | None
    since: float
    """``time.monotonic()`` of the first failure."""


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
        max_store_bytes: int | None = None,
        limits: Limits | None = None,
        tenant_limits: Callable[[str], Limits] | None = None,
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
        self.max_store_bytes = max_store_bytes
        """Finished operations beyond this many bytes are deleted, oldest first (None: none)."""
        self._faults: dict[str, str] = {}
        """What fails now ("store", "dispatcher") and why; the manager is healthy when empty."""
        self.on_health: Callable[[bool], None] | None = None
        """Called (outside the manager's lock) whenever :attr:`healthy` changes."""
        self._unstored: dict[str, _Unstored] = {}
        self._settling: set[str] = set()
        """Operations whose run is over but whose completion is still being stored."""
        self._dispatcher: threading.Thread | None = None
        self._vacuumed_at = time.monotonic()
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
            limits=limits or Limits(),
        )
        self._limits = settings.limits
        self._tenant_limits = tenant_limits
        """A tenant's request limits (:class:`rpc.quotas.TenantLimits`; None: the server's)."""
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

    @property
    def queued_count(self) -> int:
        """Operations waiting to be dispatched."""
        with self._lock:
            return len(self._queue)

    @property
    def running_count(self) -> int:
        """Operations dispatched and not finished."""
        with self._lock:
            return len(self._running)

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
        self._dispatcher = self._spawn(self._dispatch_loop, "job-dispatcher")
        self._spawn(self._janitor, "job-janitor")
        self._spawn(self._watch, "job-watch")

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

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
        """Stop dispatching and cancel the running solves; they are queued again in the store
        without spending an attempt (run again on the next start) unless they finish on their
        own first. See :meth:`wait_idle`."""
        with self._changed:
            self._stopping = True
            running = list(self._running.values())
            self._changed.notify_all()
        for state in running:
            if state.job is not None:
                state.job.cancel()
        for thread in self._threads:
            thread.join(timeout=5.0)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no operation runs nor is being completed (after :meth:`stop` and the
        executor's shutdown, before closing the store); False if ``timeout_s`` passed first."""
        with self._changed:
            return self._changed.wait_for(
                lambda: not self._running and not self._settling, timeout_s
            )

    # -- health --------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Whether the store writes and the dispatcher runs (see the module docstring)."""
        with self._lock:
            return not self._faults

    def faults(self) -> dict[str, str]:
        """What fails now, and why (empty when healthy)."""
        with self._lock:
            return dict(self._faults)

    def _set_fault(self, component: str, reason: str | None) -> None:
        """Record that ``component`` fails (``reason``) or works again (None)."""
        with self._lock:
            was = not self._faults
            if reason is None:
                if self._faults.pop(component, None) is not None:
                    log.warning("%s works again", component)
            elif component not in self._faults:
                log.error("%s fails: %s", component, reason)
                self._faults[component] = reason
            else:
                self._faults[component] = reason
            now = not self._faults
        if was != now and self.on_health is not None:
            try:
                self.on_health(now)
            except Exception:
                log.exception("health callback failed")

    def store_failed(self, exc: BaseException) -> None:
        """A store operation failed (the store is unhealthy until a write succeeds)."""
        self._set_fault("job store", f"{type(exc).__name__}: {exc}")

    def _watch(self) -> None:
        """Retry unstored results, probe a failing store, restart a dead dispatcher."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopping, timeout=_WATCH_S)
                if self._stopping:
                    return
            try:
                self._watch_once()
            except Exception:
                log.exception("job watch failed")

    def _watch_once(self) -> None:
        self._store_unstored()
        faults = self.faults()
        if "job store" in faults and not self._unstored:
            try:
                self._store.probe(self._clock())
            except sqlite3.Error as exc:
                self.store_failed(exc)
            else:
                self._set_fault("job store", None)
        dispatcher = self._dispatcher
        if dispatcher is not None and not dispatcher.is_alive() and not self._stopping:
            self._set_fault("job dispatcher", "the dispatcher thread ended; restarting it")
            self._dispatcher = self._spawn(self._dispatch_loop, "job-dispatcher")
        elif "job dispatcher" in faults and dispatcher is not None and dispatcher.is_alive():
            # restarted at the last look and still running: healthy again, even with nothing
            # queued to prove it by a dispatch
            self._set_fault("job dispatcher", None)

    def _store_unstored(self) -> None:
        """Store the results kept in memory; past :data:`STORE_RETRY_S`, a FAILED status."""
        with self._lock:
            pending = list(self._unstored.items())
        for name, end in pending:
            state, response, error = end.state, end.response, end.error
            if time.monotonic() - end.since > STORE_RETRY_S:
                state, response = FAILED, None
                error = status_bytes(
                    code_pb2.UNAVAILABLE,
                    "the job store could not record the result of this operation "
                    f"({self.faults().get('job store', 'store error')}); run it again",
                )
            try:
                parent = self._store_finish(name, state, response, error)
            except sqlite3.Error as exc:
                self.store_failed(exc)
                return
            with self._lock:
                self._unstored.pop(name, None)
            log.warning("operation %s: its result is stored at last", name)
            self.finished(parent)
        if pending:
            with self._lock:
                done = not self._unstored
            if done:
                self._set_fault("job store", None)

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
        self._tours.check(request, self.limits(tenant))
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
        self._uri.check_uri(request, self.limits(tenant))
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
        batch, items = self._batch.new_jobs(
            request, tenant, request.parent if google else None, self.limits(tenant)
        )
        self._store_and_queue([batch, *items], items, tenant)
        return self.get(batch.name, tenant)

    def submit_layouts(
        self, request: pb.EvaluateDepotLayoutsRequest, tenant: str = DEFAULT_TENANT
    ) -> operations_pb2.Operation:
        """Validate and store a depot layout study; returns its operation (queued). Its sizes
        are checked first (:func:`rpc.limits.study_size_violations`), on the study read from
        its sheets when it has some."""
        expanded, _ = expand_sheets(request)
        problems = study_size_violations(expanded.study, self.limits(tenant))
        if problems:
            raise InvalidModelError(problems)
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

    def limits(self, tenant: str) -> Limits:
        """``tenant``'s request limits: the server's, lowered by its quota."""
        return self._limits if self._tenant_limits is None else self._tenant_limits(tenant)

    def _store_and_queue(self, jobs: list[NewJob], queued: list[NewJob], tenant: str) -> None:
        """Store ``jobs`` and queue ``queued`` of them, if the server and the tenant have
        room."""
        try:
            with self._changed:
                if self._stopping:
                    raise ExecutorShutdownError("the server is shutting down")
                self._reserve(len(queued))
                self._check_quota(tenant, len(queued), len(jobs))
                self._store.insert(jobs, self._clock())
                self._queue.extend(job.name for job in queued)
                self._changed.notify_all()
        except sqlite3.Error as exc:
            self.store_failed(exc)  # (takes the lock)
            raise

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
                stopping = self._stopping
            if stopping:  # outside the lock: building the operation takes it (live progress)
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
        """Start queued jobs; a store error puts the job back at the head of the queue and
        the dispatcher waits a moment (the store is unhealthy meanwhile)."""
        while (state := self._next()) is not None:
            name = state.name
            try:
                self._dispatch(state)
            except sqlite3.Error as exc:
                self.store_failed(exc)
                with self._changed:
                    self._running.pop(name, None)
                    if not state.cancel_requested:
                        self._queue.appendleft(name)
                    self._changed.wait_for(lambda: self._stopping, timeout=_WATCH_S)
            except Exception:
                log.exception("operation %s: the dispatcher failed", name)
                with self._changed:
                    self._running.pop(name, None)
            except BaseException:  # the thread ends (the watch restarts it): keep the job
                with self._changed:
                    self._running.pop(name, None)
                    self._queue.appendleft(name)
                raise
            else:
                self._set_fault("job dispatcher", None)

    def _dispatch(self, state: Running) -> None:
        name = state.name
        try:
            started = self._start_job(state)
        except sqlite3.Error:
            raise
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
        """A job's run is over; returns whether the manager is stopping. Call
        :meth:`settled` once its completion is stored."""
        with self._changed:
            self._running.pop(state.name, None)
            self._settling.add(state.name)
            stopping = self._stopping
            self._changed.notify_all()
        return stopping

    def settled(self, state: Running) -> None:
        """A released job's completion has been stored (or given up)."""
        with self._changed:
            self._settling.discard(state.name)
            self._changed.notify_all()

    def interrupted(self, name: str) -> None:
        """A job stopped by the shutdown: queued again in the store without spending an
        attempt (the next start runs it)."""
        try:
            self._store.unmark_running(name, self._clock())
        except sqlite3.Error as exc:  # it stays RUNNING: the next start runs it (an attempt)
            self.store_failed(exc)
        log.info("operation %s: interrupted by the shutdown; queued for the next start", name)

    def worker_lost(self, name: str, exc: BaseException) -> bool:
        """The process of a job died: queue it again if it has attempts left (True), else
        finish it ABORTED with the reason (False)."""
        rec = self._record(name)
        if rec.attempt < MAX_ATTEMPTS and not rec.cancel_requested:
            log.warning(
                "operation %s: %s (attempt %d of %d); running it again",
                name, exc, rec.attempt, MAX_ATTEMPTS,
            )  # fmt: skip
            with self._changed:
                if self._stopping:
                    self._store.unmark_running(name, self._clock())
                    return True
                self._store.set_state(name, QUEUED, self._clock())
                self._queue.append(name)
                self._changed.notify_all()
            return True
        log.error("operation %s: %s in each of %d attempts; giving up", name, exc, rec.attempt)
        message = f"{exc} in each of {rec.attempt} attempts at this operation; not retried"
        self.finish(name, FAILED, error=status_bytes(code_pb2.ABORTED, message))
        return False

    # -- completion ----------------------------------------------------------------------

    def finish(
        self, name: str, state: int, *, response: bytes | None = None, error: bytes | None = None
    ) -> None:
        """Store the end of an operation; it expires ``retention_s`` later (an item of a batch
        expires with its batch)."""
        try:
            self._store_finish(name, state, response, error)
        except sqlite3.Error as exc:
            self.store_failed(exc)
            log.error("operation %s: cannot store its result (retrying): %s", name, exc)
            with self._lock:
                self._unstored[name] = _Unstored(state, response, error, time.monotonic())
            return
        log.info("operation %s: %s", name, pb.JobState.Name(job_state(state)))

    def _store_finish(
        self, name: str, state: int, response: bytes | None, error: bytes | None
    ) -> str | None:
        """Store the end of an operation; returns its batch (raises sqlite3.Error)."""
        now = self._clock()
        rec = self._store.get(name)
        expire = None if rec is not None and rec.batch is not None else now + self.retention_s
        self._store.finish(name, state, now, response=response, error=error, expire_time=expire)
        return rec.batch if rec is not None else None

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
            self._upkeep()

    def _upkeep(self) -> None:
        """Expire finished operations, keep them under the size cap, vacuum (the janitor)."""
        try:
            deleted = self._store.expire(self._clock())
            if deleted:
                log.info("expired %d finished operations", deleted)
            if self.max_store_bytes is not None:
                trimmed = self._store.trim_finished(self.max_store_bytes)
                if trimmed:
                    log.warning(
                        "deleted %d finished operations to keep them under %d bytes",
                        trimmed, self.max_store_bytes,
                    )  # fmt: skip
                deleted += trimmed
            if deleted or time.monotonic() - self._vacuumed_at > _VACUUM_EVERY_S:
                self._store.vacuum()
                self._vacuumed_at = time.monotonic()
        except sqlite3.Error as exc:
            self.store_failed(exc)
        except Exception:
            log.exception("cannot expire old operations")
