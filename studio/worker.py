"""The body of a study's process: validate, route, write the outputs, report progress.

A study runs in its own process (:mod:`studio.jobs` starts it from a forkserver), so the
solvers, which hold the GIL, never stall the page's server. The process reads the request,
loads the road network, converts and validates the request exactly as ``routeopt layouts``
does (:func:`rpc.layouts.request_to_study`, then :func:`rpc.layouts.run_request` with
``on_done`` per routed layout), and writes into its folder:

- ``study.json``: what the page shows of the inputs (depots, days, orders, layouts);
- ``comparison.csv``, ``comparison.json``: one row per routed layout, best first;
- ``layouts/NNN.geojson``: depots, assignments and routes of each layout;
- ``response.json``: the full ``EvaluateDepotLayoutsResponse``;
- ``summary.json``: the table's rows with the layouts' flags and GeoJSON file names.

It reports on ``conn`` as plain dicts: ``started`` (layouts to route, whether a search
follows), ``layout`` per routed layout, then one of ``done``, ``invalid`` (the violations,
spreadsheet cells as ``FILE:ROW:COLUMN``) or ``failed``. Once ``stop`` is set no further layout
starts and the layouts routed so far are written (``done`` with ``cancelled``).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import json_format

from engine.errors import FieldViolation, InvalidModelError
from engine.roads import OSM_CREDIT, RoadContext, RoadSpec, embedded_extract, load_roads
from planning import LayoutEvaluation, LayoutStudy
from planning.report import comparison_rows, layout_geojson, write_csv, write_json
from rpc.layouts import LayoutOutcome, request_to_study, result_to_response, run_request
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.sheets import locate

__all__ = ["WorkerSettings", "run_study", "study_summary"]

log = logging.getLogger(__name__)


class Sender(Protocol):
    def send(self, obj: Any) -> None: ...


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class WorkerSettings:
    """How studies run: the road network (``osm`` None: geodesic travel), layouts at once."""

    osm: str | None = "embedded"
    profile: str = "car"
    road_cache_dir: str | None = None
    workers: int = 1
    layout_timeout_s: float | None = None
    """Overrides the study's routing seconds per layout (None: the study's own)."""


def _roads(settings: WorkerSettings, request: pb.EvaluateDepotLayoutsRequest) -> RoadContext | None:
    if settings.osm is None or request.use_geodesic_distances:
        return None
    path = str(embedded_extract()) if settings.osm == "embedded" else settings.osm
    return load_roads(RoadSpec(path, settings.profile, settings.road_cache_dir))


def _violations(violations: tuple[FieldViolation, ...] | list[FieldViolation]) -> list[list[str]]:
    return [[v.field, v.description] for v in violations]


def study_summary(study: LayoutStudy) -> dict[str, Any]:
    """What the page shows of a study's inputs (the compare view diffs these)."""
    return {
        "label": study.label,
        "days": [d.label for d in study.days],
        "orders": sum(len(d.orders) for d in study.days),
        "depots": [
            {
                "label": d.label,
                "lat": None if d.location is None else d.location.latitude,
                "lng": None if d.location is None else d.location.longitude,
                "opening_cost": d.opening_cost,
                "capacity": dict(d.capacity),
            }
            for d in study.depots
        ],
        "layouts": [{"label": x.label, "depots": list(x.depots)} for x in study.layouts],
        "search": None
        if study.search is None
        else {"mode": study.search.mode, "k": study.search.k},
    }


def _flags(ev: LayoutEvaluation) -> dict[str, Any]:
    """The row's problems, in words (the page shows them as text, not only colour)."""
    problems = []
    if not ev.capacity_respected:
        problems.append("depot capacity exceeded")
    if ev.kpis.orders_unserved:
        n = ev.kpis.orders_unserved
        problems.append(f"{n} order{'s' if n != 1 else ''} unserved")
    return {
        "capacity_respected": ev.capacity_respected,
        "orders_unserved": ev.kpis.orders_unserved,
        "problems": problems,
    }


def write_outputs(
    out: Path, study: LayoutStudy, outcome: LayoutOutcome, label: str, roads: bool
) -> dict[str, Any]:
    """Write the outputs (module docstring); the summary."""
    (out / "layouts").mkdir(parents=True, exist_ok=True)
    rows = comparison_rows(outcome.evaluations)
    write_csv(rows, out / "comparison.csv")
    write_json(rows, out / "comparison.json")
    layouts = []
    for k, (ev, row) in enumerate(zip(outcome.evaluations, rows, strict=True)):
        name = f"{k:03d}.geojson"
        (out / "layouts" / name).write_text(json.dumps(layout_geojson(study, ev)) + "\n")
        layouts.append({"label": ev.layout.label, "depots": list(ev.layout.depots), "file": name})
        row.update(_flags(ev))
    response = result_to_response(outcome, label=label)
    (out / "response.json").write_text(json_format.MessageToJson(response) + "\n")
    summary = {
        "rows": rows,
        "layouts": layouts,
        "attribution": f"Road data {OSM_CREDIT} (ODbL)" if roads else None,
    }
    (out / "summary.json").write_text(json.dumps(summary) + "\n")
    return summary


def run_study(
    conn: Sender, request_bytes: bytes, settings: WorkerSettings, out_dir: str, stop: StopFlag
) -> None:
    """The process body (module docstring)."""
    out = Path(out_dir)
    try:
        request = pb.EvaluateDepotLayoutsRequest.FromString(request_bytes)
        if settings.osm is None:
            request.use_geodesic_distances = True
        if settings.layout_timeout_s is not None:
            request.layout_timeout.FromNanoseconds(int(settings.layout_timeout_s * 1e9))
        roads = _roads(settings, request)
        try:
            req = request_to_study(request, workers=max(settings.workers, 1), roads=roads)
        except InvalidModelError as exc:
            conn.send({"event": "invalid", "violations": _violations(exc.violations)})
            return
        req = replace(req, options=replace(req.options, populate_polylines=roads is not None))
        (out / "study.json").write_text(json.dumps(study_summary(req.study)) + "\n")
        conn.send(
            {
                "event": "started",
                "total": len(req.study.layouts),
                "search": req.study.search is not None,
                "label": req.label or req.study.label,
            }
        )

        def done(ev: LayoutEvaluation) -> None:
            cost = ev.kpis.total_cost
            conn.send(
                {
                    "event": "layout",
                    "label": ev.layout.label,
                    "total_cost": cost if math.isfinite(cost) else None,
                    "feasible": ev.feasible,
                }
            )

        try:
            outcome = run_request(req, roads=roads, on_done=done, should_stop=stop.is_set)
        except InvalidModelError as exc:
            conn.send(
                {"event": "invalid", "violations": _violations(locate(exc.violations, req.origins))}
            )
            return
        label = req.label or req.study.label
        write_outputs(out, req.study, outcome, label, roads is not None)
        conn.send({"event": "done", "cancelled": stop.is_set(), "routed": len(outcome.evaluations)})
    except Exception as exc:  # reported to the page; the server goes on
        log.exception("study in %s failed", out_dir)
        conn.send(
            {
                "event": "failed",
                "error": f"{type(exc).__name__}: {exc}",
            }
        )
