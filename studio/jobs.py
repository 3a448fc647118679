"""Studies: submitted, checked, queued, run in a process each, kept in memory and on disk.

:class:`StudyManager` checks a submitted request at once (a spreadsheet's bad cells, the study's
own checks: the study is ``invalid`` and nothing runs), then queues it. ``parallel`` runner
threads take studies from the queue in order; each runs one study in its own process
(:func:`studio.worker.run_study`, from a forkserver that has the solvers imported) and follows
its progress. Cancelling a queued study drops it; cancelling a running one stops it at once
(the running solve or MIP is interrupted, the layout being routed left out: :mod:`planning.budget`;
the layouts routed so far are kept), or kills its process when it does not stop within
``grace_s``.

The forkserver imports the program's main module again, as ``multiprocessing`` does: a script
that embeds a :class:`StudyManager` starts it under ``if __name__ == "__main__":``.

Each study has a folder ``DATA_DIR/ID/`` (the data directory and every folder in it are
``0700``): ``request.binpb`` (the request as submitted), ``meta.json`` (status and progress)
and the outputs of :mod:`studio.worker`. Studies found there at start are listed again;
those that were queued or running when the server stopped are ``interrupted`` (run them again).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

from engine.errors import FieldViolation, InvalidModelError
from rpc.layouts import expand_sheets, request_to_study
from rpc.pb import route_optimization_service_pb2 as pb
from studio.worker import WorkerSettings, run_study

__all__ = ["STUDY_ID", "Study", "StudyManager", "close_depots", "prepare"]

log = logging.getLogger(__name__)

STUDY_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
FINISHED = ("done", "cancelled", "invalid", "failed", "interrupted")


@dataclass
class Study:
    """A study's state as the page sees it (``meta.json``)."""

    id: str
    name: str
    source: str
    created: float
    status: str = "queued"
    """queued, running, done, cancelled, invalid, failed or interrupted."""
    total: int | None = None
    """Layouts listed in the study (a search routes more, their number unknown up front)."""
    search: bool = False
    routed: int = 0
    best: dict[str, Any] | None = None
    """The cheapest layout routed so far: label, total_cost, feasible."""
    violations: list[list[str]] = field(default_factory=list)
    error: str | None = None
    finished: float | None = None
    parent: str | None = None
    """The study this one is a what-if variant of."""
    closed: list[str] = field(default_factory=list)
    """Depots the variant closed."""
    cancel_requested: bool = False
    tenant: str | None = None
    """The tenant whose API key submitted it (None: a studio without keys); with keys, only
    that tenant sees it."""


def prepare(
    request: pb.EvaluateDepotLayoutsRequest, settings: WorkerSettings
) -> pb.EvaluateDepotLayoutsRequest:
    """The request as it will run: geodesic travel when there is no road network, the
    server's routing seconds per layout when it sets them."""
    out = pb.EvaluateDepotLayoutsRequest()
    out.CopyFrom(request)
    if settings.osm is None:
        out.use_geodesic_distances = True
    if settings.layout_timeout_s is not None:
        out.layout_timeout.FromNanoseconds(int(settings.layout_timeout_s * 1e9))
    return out


def close_depots(
    request: pb.EvaluateDepotLayoutsRequest, closed: set[str]
) -> pb.EvaluateDepotLayoutsRequest:
    """The what-if study "these depots are closed": ``request`` (its sheets read) without the
    ``closed`` depots; each listed layout loses them (renamed ``… without X``; emptied and
    repeated layouts are dropped) and the search may no longer keep them open. Raises
    :class:`InvalidModelError` naming an unknown depot."""
    expanded, _ = expand_sheets(request)
    out = pb.EvaluateDepotLayoutsRequest()
    out.CopyFrom(expanded)
    study = out.study
    known = {d.label for d in study.depots}
    unknown = sorted(closed - known)
    if unknown or not closed:
        raise InvalidModelError(
            [
                FieldViolation(
                    "close", f"{', '.join(unknown) or 'nothing'}: not a depot of the study"
                )
            ]
        )
    kept_depots = [d for d in study.depots if d.label not in closed]
    del study.depots[:]
    study.depots.extend(kept_depots)
    layouts, seen = [], set()
    for layout in study.layouts:
        depots = [d for d in layout.depots if d not in closed]
        gone = [d for d in layout.depots if d in closed]
        if not depots or frozenset(depots) in seen:
            continue
        seen.add(frozenset(depots))
        label = layout.label or "+".join(layout.depots)
        if gone:
            label = f"{label} without {', '.join(gone)}"
        layouts.append(pb.DepotLayout(label=label, depots=depots))
    del study.layouts[:]
    study.layouts.extend(layouts)
    must = [d for d in study.search.must_open if d not in closed]
    del study.search.must_open[:]
    study.search.must_open.extend(must)
    return out


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


class StudyManager:
    """The studies of one studio (module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        settings: WorkerSettings,
        *,
        parallel: int = 1,
        grace_s: float = 30.0,
    ) -> None:
        self.data_dir = _private_dir(data_dir)
        self.settings = settings
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._studies: dict[str, Study] = {}
        self._summaries: dict[str, dict[str, Any]] = {}
        self._stops: dict[str, Any] = {}
        self._processes: dict[str, Any] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._closing = threading.Event()
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["studio.worker"])
        self._load()
        # start the forkserver (it imports the solvers once) while the page is being opened
        threading.Thread(target=_warm_up, name="studio-warm-up", daemon=True).start()
        self._runners = [
            threading.Thread(target=self._run_queue, name=f"studio-runner-{k}", daemon=True)
            for k in range(max(parallel, 1))
        ]
        for t in self._runners:
            t.start()

    # -- state ---------------------------------------------------------------------------
    def _folder(self, study_id: str) -> Path:
        if not STUDY_ID.match(study_id):
            raise KeyError(study_id)
        return self.data_dir / study_id

    def _save(self, study: Study) -> None:
        """Write ``meta.json`` (callers hold the lock)."""
        folder = self._folder(study.id)
        tmp = folder / "meta.json.tmp"
        tmp.write_text(json.dumps(asdict(study)) + "\n")
        tmp.replace(folder / "meta.json")

    def _load(self) -> None:
        for folder in sorted(self.data_dir.iterdir()):
            if not (STUDY_ID.match(folder.name) and (folder / "meta.json").is_file()):
                continue
            try:
                study = Study(**json.loads((folder / "meta.json").read_text()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("%s: unreadable study (%s), skipped", folder, exc)
                continue
            if study.status not in FINISHED:
                study.status = "interrupted"
                study.finished = study.finished or time.time()
                self._save(study)
            self._studies[study.id] = study

    def studies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(s) for s in sorted(self._studies.values(), key=lambda s: s.id)]

    def get(self, study_id: str) -> dict[str, Any]:
        with self._lock:
            return asdict(self._studies[study_id])

    def summary(self, study_id: str) -> dict[str, Any] | None:
        """The results of a finished study (None before), from memory or its folder."""
        with self._lock:
            study = self._studies[study_id]
            if study.status not in ("done", "cancelled"):
                return None
            if study_id not in self._summaries:
                path = self._folder(study_id) / "summary.json"
                if not path.is_file():
                    return None
                self._summaries[study_id] = json.loads(path.read_text())
            return self._summaries[study_id]

    def inputs(self, study_id: str) -> dict[str, Any] | None:
        """What the page shows of a study's inputs (``study.json``; None before it started)."""
        path = self._folder(study_id) / "study.json"
        if study_id not in self._studies or not path.is_file():
            return None
        out: dict[str, Any] = json.loads(path.read_text())
        return out

    def file(self, study_id: str, name: str) -> Path | None:
        """A download of a finished study: ``comparison.csv``, ``comparison.json``,
        ``response.json`` or ``layouts/NNN.geojson`` (names of its summary only)."""
        summary = self.summary(study_id)
        if summary is None:
            return None
        allowed = {"comparison.csv", "comparison.json", "response.json"}
        allowed |= {f"layouts/{x['file']}" for x in summary["layouts"]}
        if name not in allowed:
            return None
        return self._folder(study_id) / name

    def request(self, study_id: str) -> pb.EvaluateDepotLayoutsRequest:
        """The request a study was submitted with."""
        if study_id not in self._studies:
            raise KeyError(study_id)
        data = (self._folder(study_id) / "request.binpb").read_bytes()
        return pb.EvaluateDepotLayoutsRequest.FromString(data)

    # -- submitting ----------------------------------------------------------------------
    def submit(
        self,
        request: pb.EvaluateDepotLayoutsRequest,
        *,
        name: str,
        source: str,
        parent: str | None = None,
        closed: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """Check ``request`` (a bad one is ``invalid``: its violations, nothing runs) and queue
        it for ``tenant``; the new study."""
        study_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        study = Study(
            study_id,
            name,
            source,
            time.time(),
            parent=parent,
            closed=list(closed or []),
            tenant=tenant,
        )
        folder = _private_dir(self._folder(study_id))
        (folder / "request.binpb").write_bytes(request.SerializeToString())
        try:
            request_to_study(prepare(request, self.settings))
        except InvalidModelError as exc:
            study.status = "invalid"
            study.violations = [[v.field, v.description] for v in exc.violations]
            study.finished = time.time()
        with self._lock:
            self._studies[study_id] = study
            self._save(study)
        if study.status == "queued":
            self._queue.put(study_id)
        return asdict(study)

    def cancel(self, study_id: str) -> dict[str, Any]:
        with self._lock:
            study = self._studies[study_id]
            if study.status == "queued":
                study.status = "cancelled"
                study.finished = time.time()
            elif study.status == "running":
                study.cancel_requested = True
                stop = self._stops.get(study_id)
                if stop is not None:
                    stop.set()
            self._save(study)
            return asdict(study)

    # -- running -------------------------------------------------------------------------
    def _run_queue(self) -> None:
        while not self._closing.is_set():
            study_id = self._queue.get()
            if study_id is None:
                return
            with self._lock:
                study = self._studies[study_id]
                if study.status != "queued":
                    continue
                study.status = "running"
                stop = self._context.Event()
                self._stops[study_id] = stop
                self._save(study)
            try:
                self._run(study_id, stop)
            except Exception as exc:  # the runner goes on with the next study
                log.exception("study %s", study_id)
                try:
                    self._update(study_id, status="failed", error=str(exc), finished=time.time())
                except Exception:
                    log.exception("study %s: cannot record the failure", study_id)
            finally:
                with self._lock:
                    self._stops.pop(study_id, None)

    def _update(self, study_id: str, **changes: Any) -> None:
        with self._lock:
            study = replace(self._studies[study_id], **changes)
            self._studies[study_id] = study
            self._save(study)

    def _run(self, study_id: str, stop: Any) -> None:
        request = prepare(self.request(study_id), self.settings)
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_study,
            args=(
                send,
                request.SerializeToString(),
                self.settings,
                str(self._folder(study_id)),
                stop,
            ),
            name=f"study-{study_id}",
        )
        process.start()  # not under the lock: the first start waits for the forkserver
        with self._lock:
            self._processes[study_id] = process
            if self._closing.is_set():
                process.kill()
        send.close()
        stop_seen: float | None = None
        final: dict[str, Any] | None = None
        try:
            while True:
                if stop.is_set() and stop_seen is None:
                    stop_seen = time.monotonic()
                if stop_seen is not None and time.monotonic() - stop_seen > self.grace_s:
                    process.kill()
                if not receive.poll(0.25):
                    if not process.is_alive() and not receive.poll(0):
                        break
                    continue
                try:
                    event: dict[str, Any] = receive.recv()
                except EOFError:
                    break
                if event["event"] in ("done", "invalid", "failed"):
                    final = event
                self._progress(study_id, event)
        finally:
            receive.close()
            with self._lock:
                self._processes.pop(study_id, None)
            process.join(timeout=self.grace_s)
            if process.is_alive():
                process.kill()
                process.join()
        if final is None:
            killed = stop.is_set()
            self._update(
                study_id,
                status="cancelled" if killed else "failed",
                error=None
                if killed
                else f"the study's process ended unexpectedly (exit code {process.exitcode})",
                finished=time.time(),
            )

    def _progress(self, study_id: str, event: dict[str, Any]) -> None:
        with self._lock:
            study = self._studies[study_id]
            kind = event["event"]
            if kind == "started":
                study.total = event["total"]
                study.search = event["search"]
            elif kind == "layout":
                study.routed += 1
                cost = event["total_cost"]
                best = study.best
                rank = (not event["feasible"], cost if cost is not None else float("inf"))
                if best is None or rank < (
                    not best["feasible"],
                    best["total_cost"] if best["total_cost"] is not None else float("inf"),
                ):
                    study.best = {
                        "label": event["label"],
                        "total_cost": cost,
                        "feasible": event["feasible"],
                    }
            elif kind == "done":
                study.status = "cancelled" if event["cancelled"] else "done"
                study.finished = time.time()
            elif kind == "invalid":
                study.status = "invalid"
                study.violations = event["violations"]
                study.finished = time.time()
            elif kind == "failed":
                study.status = "failed"
                study.error = event["error"]
                study.finished = time.time()
            self._save(study)

    def wait(self, study_id: str, timeout_s: float) -> dict[str, Any]:
        """The study once finished or after ``timeout_s`` (tests, scripts)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.get(study_id)
            if state["status"] in FINISHED:
                return state
            time.sleep(0.1)
        return self.get(study_id)

    def close(self) -> None:
        """Stop every study and the runners."""
        self._closing.set()
        with self._lock:
            for stop in self._stops.values():
                stop.set()
            for process in self._processes.values():
                process.kill()
        for _ in self._runners:
            self._queue.put(None)
        for t in self._runners:
            t.join(timeout=self.grace_s + 5)


def _warm_up() -> None:
    try:
        forkserver.ensure_running()
    except OSError as exc:  # the first study starts it then
        log.warning("forkserver: %s", exc)


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/routeopt/studio`` (``~/.local/share/routeopt/studio``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "routeopt" / "studio"
