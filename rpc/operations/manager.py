"""Long-running operations: durable jobs run by the solve executor.

:class:`JobManager` owns the operations of ``OptimizeToursLongRunning``,
``BatchOptimizeTours`` and ``EvaluateDepotLayouts`` (kind ``layouts``: a
:class:`~rpc.operations.layouts.LayoutRun` whose routing solves go to the same executor; its
progress is the layouts routed so far, kept as the partial response):

- **Submission** validates the request (INVALID_ARGUMENT as for OptimizeTours), refuses with
  :class:`~engine.errors.ExecutorFullError` (RESOURCE_EXHAUSTED) when ``max_jobs`` operations
  are already waiting or running, then stores the request in the
  :class:`~rpc.operations.store.JobStore` (committed) before the operation is returned.
- **Dispatch**: one thread hands queued jobs to the executor in creation order, only while it
  has an idle worker, so that synchronous OptimizeTours calls (which queue in the executor)
  are not starved by a backlog of jobs. The time budget of a job is its request's ``timeout``
  (or the server default); no call deadline applies.
- **Progress** from the worker is kept in memory (served by GetOperation at once) and written
  to the store at most every ``progress_every_s`` seconds, with the best solution so far
  whenever the worker sends one.
- **Completion** stores the response (or a ``google.rpc.Status``); finished operations expire
  ``retention_s`` seconds later (a janitor thread deletes them; items of a batch go with their
  batch). **Cancellation** of a queued job finishes it at once (error CANCELLED); a running
  one is stopped and keeps its best solution so far as the response (state CANCELLED).
- **Recovery**: on :meth:`JobManager.start`, jobs that were queued are queued again and jobs
  that were running (the server died under them) run again from the start: at-least-once, up to
  :data:`MAX_ATTEMPTS` attempts.
  A graceful shutdown (:meth:`JobManager.stop`) leaves interrupted jobs in the store the same
  way, so the next start finishes them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, cast

from google.longrunning import operations_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2

from engine.errors import (
    ExecutorFullError,
    ExecutorShutdownError,
    FieldViolation,
    InvalidModelError,
)
from engine.options import AUTO_SOLVER_PROCESSES
from engine.progress import SolveProgress
from engine.roads import RoadContext
from engine.solution import SolveStatus
from rpc.convert import (
    convert_or_validate,
    request_to_engine,
    seconds_to_duration,
    seconds_to_timestamp,
    solution_to_response,
    solve_result,
)
from rpc.errors import (
    FilterError,
    NotFinishedError,
    OperationNotFoundError,
    plain_status,
    status_of,
)
from rpc.layouts import LayoutOutcome, LayoutRequest, request_to_study, result_to_response
from rpc.operations.layouts import LayoutRun
from rpc.operations.store import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    JobRecord,
    JobStore,
    NewJob,
)
from rpc.pb import route_optimization_service_pb2 as pb
from runtime.local import Executor, Job

__all__ = [
    "FilterError",
    "JobManager",
    "NotFinishedError",
    "OperationNotFoundError",
]

log = logging.getLogger(__name__)

OPERATION_PREFIX: Final = "operations/"
DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 1000
MAX_ATTEMPTS: Final = 3
"""A job that was running when the server stopped this many times fails (ABORTED) instead of
running again: it may be what brings the server down."""
_DISPATCH_POLL_S: Final = 0.25
"""The dispatcher also looks for idle workers this often (a synchronous call may free one)."""


@dataclass
class _Running:
    """A job handed to the executor."""

    name: str
    label: str = ""
    job: Job | LayoutRun | None = None
    cancel_requested: bool = False
    latest: SolveProgress | None = None
    written_at: float = 0.0


@dataclass(frozen=True)
class _Filter:
    states: tuple[int, ...] = ()
    batch: str | None = None
    kind: str | None = None


_FILTER_TERM = re.compile(r'\s*(\w+)\s*=\s*"?([\w/.-]+)"?\s*')
_KINDS = {"tours": "tours", "batch": "batch", "layouts": "layouts"}


def parse_filter(text: str) -> _Filter:
    """``state=RUNNING``, ``state=QUEUED OR state=RUNNING``, ``done=true``,
    ``batch=operations/…``, ``kind=batch|tours|layouts``; terms on different keys joined by
    ``AND``."""
    states: set[int] = set()
    batch: str | None = None
    kind: str | None = None
    text = text.strip()
    if not text:
        return _Filter()
    for conjunct in re.split(r"\s+AND\s+", text):
        alternatives = re.split(r"\s+OR\s+", conjunct)
        keys = set()
        for term in alternatives:
            match = _FILTER_TERM.fullmatch(term)
            if match is None:
                raise FilterError(f"cannot parse filter term {term.strip()!r}")
            key, value = match.group(1).lower(), match.group(2)
            keys.add(key)
            if key == "state":
                names = [k for k in pb.JobState.keys() if k != "JOB_STATE_UNSPECIFIED"]  # noqa: SIM118
                if value.upper() not in names:
                    known = ", ".join(names)
                    raise FilterError(f"unknown state {value!r}; known: {known}")
                states.add(pb.JobState.Value(value.upper()))
            elif key == "done":
                if value.lower() not in ("true", "false"):
                    raise FilterError(f"done must be true or false, got {value!r}")
                done = value.lower() == "true"
                states.update((SUCCEEDED, FAILED, CANCELLED) if done else (QUEUED, RUNNING))
            elif key == "batch" and len(alternatives) == 1:
                batch = value
            elif key == "kind" and len(alternatives) == 1 and value in _KINDS:
                kind = _KINDS[value]
            else:
                raise FilterError(
                    f"unsupported filter term {term.strip()!r} (keys: state, done, batch, kind)"
                )
        if len(keys) > 1:
            raise FilterError(f"OR joins terms on one key only: {conjunct!r}")
    return _Filter(tuple(sorted(states)), batch, kind)


def _status(code: int, message: str) -> bytes:
    """A serialized plain ``google.rpc.Status``."""
    serialized: bytes = plain_status(code, message).SerializeToString()
    return serialized


def _error_of(exc: BaseException, name: str) -> bytes:
    """The serialized ``google.rpc.Status`` of a failed job (:func:`rpc.errors.status_of`)."""
    serialized: bytes = status_of(exc, action=f"operation {name}").SerializeToString()
    return serialized


def _set_times(
    md: pb.OptimizeToursMetadata | pb.EvaluateDepotLayoutsMetadata, rec: JobRecord
) -> None:
    """The create/update/start/end times of an operation's metadata."""
    md.create_time.CopyFrom(seconds_to_timestamp(rec.create_time))
    md.update_time.CopyFrom(seconds_to_timestamp(rec.update_time))
    if rec.start_time is not None and rec.state != QUEUED:
        md.start_time.CopyFrom(seconds_to_timestamp(rec.start_time))
    if rec.end_time is not None and rec.done:
        md.end_time.CopyFrom(seconds_to_timestamp(rec.end_time))


def _job_state(state: int) -> pb.JobState.ValueType:
    """A stored state as the API's enum type."""
    return cast("pb.JobState.ValueType", state)


def _new_name() -> str:
    return f"{OPERATION_PREFIX}{uuid.uuid4().hex}"


def _paths(prefix: str, violations: Sequence[FieldViolation]) -> list[FieldViolation]:
    return [
        FieldViolation(f"{prefix}.{v.field}" if v.field else prefix, v.description)
        for v in violations
    ]


class JobManager:
    """Durable long-running solves; see the module docstring. Call :meth:`start` once."""

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
    ) -> None:
        if not retention_s > 0:
            raise ValueError(f"retention_s must be positive, got {retention_s}")
        self.store = store
        self._executor = executor
        self._default_timeout = default_timeout_s
        self._default_speed = default_geodesic_meters_per_second
        self._solver_processes = solver_processes
        self._roads = roads
        self._layout_workers = max(1, layout_workers)
        self._max_solver_processes = max_solver_processes
        self.retention_s = retention_s
        self.max_jobs = max_jobs
        self._progress_every_s = progress_every_s
        self._solutions_every_s = solutions_every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._generation = 0
        """Bumped (under the lock) whenever an operation finishes: WaitOperation watches it."""
        self._queue: deque[str] = deque()
        self._running: dict[str, _Running] = {}
        self._batch_lock = threading.Lock()
        self._stopping = False
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Recover the stored jobs, then start the dispatcher and the janitor."""
        now = self._clock()
        recovered: list[str] = []
        with self._lock:
            queued = set(self._queue)  # submitted while the server was warming up
        unfinished = [*self.store.unfinished("tours"), *self.store.unfinished("layouts")]
        for rec in sorted(unfinished, key=lambda r: r.seq):
            if rec.name in queued:
                continue
            if rec.cancel_requested:
                self._finish_cancelled(rec, now)
                continue
            if rec.state == RUNNING and rec.attempt >= MAX_ATTEMPTS:
                log.error("operation %s: interrupted %d times; giving up", rec.name, rec.attempt)
                message = f"the server stopped during each of {rec.attempt} attempts at this solve"
                self._finish(rec.name, FAILED, error=_status(code_pb2.ABORTED, message))
                continue
            if rec.state == RUNNING:
                log.warning(
                    "operation %s was running when the server stopped (attempt %d): "
                    "running it again",
                    rec.name,
                    rec.attempt,
                )
                self.store.set_state(rec.name, QUEUED, now)
            recovered.append(rec.name)
        with self._changed:  # the older ones first
            self._queue = deque([*recovered, *self._queue])
            self._changed.notify_all()
        for rec in self.store.unfinished("batch"):
            self._update_batch(rec.name)
        if recovered:
            log.info("recovered %d unfinished operations from %s", len(recovered), self.store.path)
        self.store.expire(now)
        for target, name in (
            (self._dispatch_loop, "job-dispatcher"),
            (self._janitor, "job-janitor"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

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

    def _check_request(self, request: pb.OptimizeToursRequest) -> None:
        if request.solving_mode == pb.OptimizeToursRequest.VALIDATE_ONLY:
            return  # problems are the response's validation_errors
        request_to_engine(
            request,
            default_geodesic_meters_per_second=self._default_speed,
            max_solver_processes=self._max_solver_processes,
        )

    def _reserve(self, count: int) -> None:
        """Raise ExecutorFullError unless ``count`` more jobs fit (lock held)."""
        waiting = len(self._queue) + len(self._running)
        if waiting + count > self.max_jobs:
            raise ExecutorFullError(
                f"{waiting} operations are queued or running (at most {self.max_jobs}); retry later"
            )

    def submit(self, request: pb.OptimizeToursRequest) -> operations_pb2.Operation:
        """Validate and store ``request``; returns its operation (queued)."""
        self._check_request(request)
        name = _new_name()
        self._store_and_queue([NewJob(name, "tours", request.label, request.SerializeToString())])
        return self.get(name)

    def _store_and_queue(self, jobs: list[NewJob], queued: list[str] | None = None) -> None:
        """Store ``jobs`` and queue ``queued`` of them (default: all), if the server has room."""
        names = [job.name for job in jobs] if queued is None else queued
        with self._changed:
            if self._stopping:
                raise ExecutorShutdownError("the server is shutting down")
            self._reserve(len(names))
            self.store.insert(jobs, self._clock())
            self._queue.extend(names)
            self._changed.notify_all()

    def submit_batch(self, request: pb.BatchOptimizeToursRequest) -> operations_pb2.Operation:
        """Validate every request of the batch (all problems at once) and store them."""
        if not request.requests:
            raise InvalidModelError([FieldViolation("requests", "must not be empty")])
        violations: list[FieldViolation] = []
        for i, item in enumerate(request.requests):
            try:
                self._check_request(item)
            except InvalidModelError as exc:
                violations.extend(_paths(f"requests[{i}]", exc.violations))
        if violations:
            raise InvalidModelError(violations)
        name = _new_name()
        items = [
            NewJob(
                _new_name(), "tours", item.label, item.SerializeToString(), batch=name, item_index=i
            )
            for i, item in enumerate(request.requests)
        ]
        batch = NewJob(name, "batch", request.label)
        self._store_and_queue([batch, *items], [item.name for item in items])
        return self.get(name)

    def _layout_request(self, request: pb.EvaluateDepotLayoutsRequest) -> LayoutRequest:
        return request_to_study(
            request,
            default_geodesic_meters_per_second=self._default_speed,
            workers=self._layout_workers,
            roads=self._roads,
        )

    def submit_layouts(self, request: pb.EvaluateDepotLayoutsRequest) -> operations_pb2.Operation:
        """Validate and store a depot layout study; returns its operation (queued)."""
        self._layout_request(request)
        name = _new_name()
        self._store_and_queue([NewJob(name, "layouts", request.label, request.SerializeToString())])
        return self.get(name)

    # -- queries -------------------------------------------------------------------------

    def _record(self, name: str) -> JobRecord:
        rec = self.store.get(name)
        if rec is None:
            raise OperationNotFoundError(f"no operation named {name!r}")
        return rec

    def get(self, name: str) -> operations_pb2.Operation:
        return self._operation(self._record(name))

    def wait(self, name: str, timeout_s: float) -> operations_pb2.Operation:
        """The operation once done, or as it is after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                generation = self._generation
            rec = self._record(name)
            remaining = deadline - time.monotonic()
            if rec.done or remaining <= 0:
                return self._operation(rec)
            with self._changed:
                while self._generation == generation and not self._stopping:
                    if not self._changed.wait(deadline - time.monotonic()):
                        break
                if self._stopping:
                    return self._operation(self._record(name))

    def list(
        self, filter_text: str, page_size: int, page_token: str
    ) -> tuple[list[operations_pb2.Operation], str]:
        """A page of operations in creation order, and the token of the next page ("": last)."""
        flt = parse_filter(filter_text)
        if page_size < 0:
            raise FilterError(f"page_size must not be negative, got {page_size}")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        try:
            after = int(page_token) if page_token else 0
        except ValueError:
            raise FilterError(f"invalid page_token {page_token!r}") from None
        records = self.store.list(
            states=flt.states, batch=flt.batch, kind=flt.kind, after_seq=after, limit=size + 1
        )
        next_token = str(records[size - 1].seq) if len(records) > size else ""
        return [self._operation(r) for r in records[:size]], next_token

    # -- control -------------------------------------------------------------------------

    def cancel(self, name: str) -> None:
        """Cancel an operation (a batch: each of its unfinished items). Done ones: no-op."""
        rec = self._record(name)
        if rec.done:
            return
        now = self._clock()
        self.store.request_cancel(name, now)
        if rec.kind == "batch":
            items = [item.name for item in self.store.items(name) if not item.done]
            # Every item is marked first and the queued ones are cancelled before the running
            # ones: a worker freed by a cancelled solve must not start a queued item.
            for item in items:
                self.store.request_cancel(item, now)
            with self._changed:
                queued = {item for item in items if item in self._queue}
            for item in sorted(items, key=lambda item: item not in queued):
                self._stop(item, name, now)
            self._update_batch(name)
            return
        self._stop(name, rec.batch, now)

    def _stop(self, name: str, batch: str | None, now: float) -> None:
        """Finish a queued operation as cancelled, or stop its running solve (already marked
        cancel-requested in the store); nothing if it has finished meanwhile."""
        job = None
        with self._changed:
            if name in self._queue:
                self._queue.remove(name)
                queued = True
            else:
                queued = False
                state = self._running.get(name)
                if state is not None:
                    state.cancel_requested = True
                    job = state.job
        if queued:
            self._finish_cancelled(self._record(name), now)
            self._finished(batch)
        elif job is not None:
            job.cancel()

    def delete(self, name: str) -> None:
        rec = self._record(name)
        if not rec.done:
            raise NotFinishedError(f"operation {name} is not done; cancel it first")
        self.store.delete(name)

    # -- dispatch ------------------------------------------------------------------------

    def _idle_worker(self) -> bool:
        ex = self._executor
        return ex.running_count + ex.queued_count < ex.max_workers

    def _dispatch_loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._stopping or bool(self._queue), timeout=_DISPATCH_POLL_S
                )
                if self._stopping:
                    return
                if not self._queue or not self._idle_worker():
                    if self._queue:
                        self._changed.wait(_DISPATCH_POLL_S)
                    continue
                name = self._queue.popleft()
                # Registered at once, so that a cancel finds it queued or running.
                state = self._running[name] = _Running(name)
            try:
                started = self._start_job(state)
            except Exception as exc:
                log.exception("operation %s: cannot start it", name)
                self._finish(name, FAILED, error=_error_of(exc, name))
                started = False
            if not started:
                with self._changed:
                    self._running.pop(name, None)
                rec = self.store.get(name)
                if rec is not None and rec.done:
                    self._finished(rec.batch)

    def _start_job(self, state: _Running) -> bool:
        """Hand a job to the executor; False when it was finished (or requeued) instead."""
        name = state.name
        rec = self.store.get(name)
        if rec is None or rec.done:
            return False
        if rec.cancel_requested or state.cancel_requested:
            self._finish_cancelled(rec, self._clock())
            return False
        assert rec.request is not None
        if rec.kind == "layouts":
            return self._start_layouts(state, rec)
        request = pb.OptimizeToursRequest.FromString(rec.request)
        converted = convert_or_validate(
            request,
            default_geodesic_meters_per_second=self._default_speed,
            max_solver_processes=self._max_solver_processes,
        )
        if isinstance(converted, pb.OptimizeToursResponse):  # VALIDATE_ONLY
            self._finish(name, SUCCEEDED, response=converted.SerializeToString())
            return False
        model, settings = converted
        timeout = settings.timeout_s if settings.timeout_s is not None else self._default_timeout
        options = settings.solve_options(timeout, self._solver_processes)
        state.label = settings.label
        try:
            job = self._executor.submit(
                model,
                options,
                on_progress=lambda update: self._on_progress(state, update),
                progress_solutions_every_s=self._solutions_every_s,
            )
        except (ExecutorFullError, ExecutorShutdownError):
            with self._changed:
                if not state.cancel_requested:
                    self._queue.appendleft(name)
                    return False
            self._finish_cancelled(rec, self._clock())
            return False
        with self._changed:
            state.job = job
            cancel = state.cancel_requested
        if cancel:
            job.cancel()
        self.store.mark_running(name, self._clock())  # not if it is already done
        if rec.batch is not None:
            self._update_batch(rec.batch)
        job.add_done_callback(lambda done: self._on_done(state, done))
        return True

    def _start_layouts(self, state: _Running, rec: JobRecord) -> bool:
        assert rec.request is not None
        request = pb.EvaluateDepotLayoutsRequest.FromString(rec.request)
        req = self._layout_request(request)
        state.label = req.label
        started = self._clock()

        def on_layout(so_far: LayoutOutcome) -> None:
            best = so_far.evaluations[0]
            response = result_to_response(so_far, label=req.label)
            self.store.update_progress(
                state.name,
                self._clock(),
                elapsed_s=self._clock() - started,
                solution_count=len(so_far.evaluations),
                best_cost=best.kpis.total_cost,
                used_vehicles=best.kpis.vehicles_used,
                skipped_shipments=best.kpis.orders_unserved,
                response=response.SerializeToString(),
            )

        run = LayoutRun(req, self._executor, roads=self._roads, on_layout=on_layout)
        with self._changed:
            state.job = run
            cancel = state.cancel_requested
        if cancel:
            run.cancel()
        self.store.mark_running(state.name, self._clock())
        run.add_done_callback(lambda done: self._on_layouts_done(state, done))
        run.start()
        return True

    def _on_layouts_done(self, state: _Running, run: LayoutRun) -> None:
        name = state.name
        with self._changed:
            self._running.pop(name, None)
            stopping = self._stopping
            self._changed.notify_all()
        try:
            outcome = run.result()
        except BaseException as exc:
            if stopping and not state.cancel_requested:
                return  # interrupted by the shutdown: left unfinished, run again on restart
            self._finish(name, FAILED, error=_error_of(exc, name))
        else:
            if stopping and not state.cancel_requested:
                return  # interrupted by the shutdown: left unfinished, run again on restart
            if state.cancel_requested and not outcome.evaluations:
                message = "the operation was cancelled before a layout was routed"
                self._finish(name, CANCELLED, error=_status(code_pb2.CANCELLED, message))
            else:
                response = result_to_response(outcome, label=state.label)
                status = CANCELLED if state.cancel_requested else SUCCEEDED
                self._finish(name, status, response=response.SerializeToString())
        self._finished(None)

    def _on_progress(self, state: _Running, update: SolveProgress) -> None:
        now = self._clock()
        with self._lock:
            state.latest = update
            write = update.solution is not None or now - state.written_at >= self._progress_every_s
            if write:
                state.written_at = now
        if write:
            response = None
            if update.solution is not None:
                response = solution_to_response(
                    update.solution, request_label=state.label
                ).SerializeToString()
            self.store.update_progress(
                state.name,
                now,
                elapsed_s=update.elapsed_s,
                solution_count=update.solutions,
                best_cost=update.cost,
                used_vehicles=update.used_vehicles,
                skipped_shipments=update.skipped_shipments,
                response=response,
            )

    def _on_done(self, state: _Running, job: Job) -> None:
        name = state.name
        with self._changed:
            self._running.pop(name, None)
            stopping = self._stopping
            latest = state.latest
            self._changed.notify_all()
        if latest is not None:  # the last progress may not have been written yet
            self.store.update_progress(
                name,
                self._clock(),
                elapsed_s=latest.elapsed_s,
                solution_count=latest.solutions,
                best_cost=latest.cost,
                used_vehicles=latest.used_vehicles,
                skipped_shipments=latest.skipped_shipments,
            )
        try:
            solution = solve_result(job.result)
        except BaseException as exc:
            if stopping and not state.cancel_requested:
                return  # interrupted by the shutdown: left unfinished, run again on restart
            if state.cancel_requested:
                message = f"the operation was cancelled before a solution ({exc})"
                self._finish(name, CANCELLED, error=_status(code_pb2.CANCELLED, message))
            else:
                self._finish(name, FAILED, error=_error_of(exc, name))
        else:
            if (
                stopping
                and not state.cancel_requested
                and solution.status is SolveStatus.INTERRUPTED
            ):
                return  # interrupted by the shutdown: left unfinished, run again on restart
            response = solution_to_response(solution, request_label=state.label)
            status = CANCELLED if state.cancel_requested else SUCCEEDED
            self._finish(name, status, response=response.SerializeToString())
        rec = self.store.get(name)
        if rec is not None:
            self._finished(rec.batch)

    # -- completion ----------------------------------------------------------------------

    def _finish(
        self, name: str, state: int, *, response: bytes | None = None, error: bytes | None = None
    ) -> None:
        now = self._clock()
        rec = self.store.get(name)
        expire = None if rec is not None and rec.batch is not None else now + self.retention_s
        self.store.finish(name, state, now, response=response, error=error, expire_time=expire)
        log.info("operation %s: %s", name, pb.JobState.Name(_job_state(state)))

    def _finish_cancelled(self, rec: JobRecord, now: float) -> None:
        """Finish a job that was cancelled while it was not running: with the best solution a
        previous attempt stored, if any."""
        if rec.response is not None:
            self._finish(rec.name, CANCELLED, response=rec.response)
        else:
            error = _status(code_pb2.CANCELLED, "the operation was cancelled before a solution")
            self._finish(rec.name, CANCELLED, error=error)

    def _finished(self, batch: str | None) -> None:
        """Wake the waiters of an operation that just finished (and update its batch)."""
        if batch is not None:
            self._update_batch(batch)
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def _update_batch(self, batch: str) -> None:
        with self._batch_lock:
            parent = self.store.get(batch)
            if parent is None or parent.done:
                return
            items = self.store.items(batch)
            if all(item.done for item in items):
                result = pb.BatchOptimizeToursResponse()
                for item in items:
                    entry = result.items.add(operation=item.name, state=item.state)
                    if item.response is not None:
                        response = pb.OptimizeToursResponse.FromString(item.response)
                        entry.total_cost = response.metrics.total_cost
                state = CANCELLED if parent.cancel_requested else SUCCEEDED
                self._finish(batch, state, response=result.SerializeToString())
                with self._changed:
                    self._generation += 1
                    self._changed.notify_all()
            elif parent.state == QUEUED and any(item.state != QUEUED for item in items):
                self.store.set_state(batch, RUNNING, self._clock())

    def _janitor(self) -> None:
        period = min(60.0, max(0.5, self.retention_s / 4))
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopping, timeout=period)
                if self._stopping:
                    return
            try:
                deleted = self.store.expire(self._clock())
            except Exception:
                log.exception("cannot expire old operations")
                continue
            if deleted:
                log.info("expired %d finished operations", deleted)

    # -- operations ----------------------------------------------------------------------

    def _operation(self, rec: JobRecord) -> operations_pb2.Operation:
        op = operations_pb2.Operation(name=rec.name, done=rec.done)
        metadata: Message
        response_type: type[Message]
        if rec.kind == "batch":
            metadata, response_type = self._batch_metadata(rec), pb.BatchOptimizeToursResponse
        elif rec.kind == "layouts":
            metadata, response_type = self._layouts_metadata(rec), pb.EvaluateDepotLayoutsResponse
        else:
            metadata, response_type = self._metadata(rec), pb.OptimizeToursResponse
        op.metadata.Pack(metadata)
        if rec.done:
            if rec.response is not None:
                op.response.Pack(response_type.FromString(rec.response))
            elif rec.error is not None:  # a batch finishes with a response, never an error
                op.error.ParseFromString(rec.error)
        return op

    def _metadata(self, rec: JobRecord) -> pb.OptimizeToursMetadata:
        md = pb.OptimizeToursMetadata(
            state=_job_state(rec.state),
            request_label=rec.label,
            attempt=rec.attempt,
            batch_operation=rec.batch or "",
        )
        _set_times(md, rec)
        elapsed, solutions, cost = rec.elapsed_s, rec.solution_count, rec.best_cost
        used, skipped = rec.used_vehicles, rec.skipped_shipments
        with self._lock:
            state = self._running.get(rec.name)
            latest = state.latest if state is not None else None
        if latest is not None and not rec.done:
            elapsed, solutions, cost = latest.elapsed_s, latest.solutions, latest.cost
            used, skipped = latest.used_vehicles, latest.skipped_shipments
            md.update_time.CopyFrom(seconds_to_timestamp(self._clock()))
        if rec.state == RUNNING and rec.start_time is not None:
            elapsed = max(elapsed, self._clock() - rec.start_time)
        elif rec.done and rec.start_time is not None and rec.end_time is not None:
            elapsed = rec.end_time - rec.start_time
        md.elapsed.CopyFrom(seconds_to_duration(max(0.0, elapsed)))
        md.solution_count = solutions
        if cost is not None:
            md.best_cost = cost
        md.used_vehicle_count = max(0, used)
        md.skipped_shipment_count = max(0, skipped)
        return md

    def _layouts_metadata(self, rec: JobRecord) -> pb.EvaluateDepotLayoutsMetadata:
        md = pb.EvaluateDepotLayoutsMetadata(
            state=_job_state(rec.state),
            request_label=rec.label,
            attempt=rec.attempt,
            layouts_done=rec.solution_count,
        )
        _set_times(md, rec)
        elapsed = rec.elapsed_s
        if rec.state == RUNNING and rec.start_time is not None:
            elapsed = max(elapsed, self._clock() - rec.start_time)
        elif rec.done and rec.start_time is not None and rec.end_time is not None:
            elapsed = rec.end_time - rec.start_time
        md.elapsed.CopyFrom(seconds_to_duration(max(0.0, elapsed)))
        if rec.request is not None:
            request = pb.EvaluateDepotLayoutsRequest.FromString(rec.request)
            if request.study.search.mode == pb.LayoutSearch.MODE_UNSPECIFIED:
                md.layouts_total = len(request.study.layouts)
        if rec.response is not None:
            response = pb.EvaluateDepotLayoutsResponse.FromString(rec.response)
            if response.layouts:
                md.best_layout = response.layouts[0].layout.label
                md.best_cost = response.layouts[0].kpis.total_cost
        return md

    def _batch_metadata(self, rec: JobRecord) -> pb.BatchOptimizeToursMetadata:
        items = self.store.items(rec.name)
        md = pb.BatchOptimizeToursMetadata(
            state=_job_state(rec.state),
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
