"""EvaluateDepotLayouts messages ↔ the depot layout study of :mod:`planning`.

:func:`request_to_study` validates a whole request at once and raises
:class:`~engine.errors.InvalidModelError` with paths relative to the request
(``study.days[0].orders[3].location.latitude``); :func:`run_request` evaluates the layouts or
runs the search; :func:`result_to_response` builds the response. The CLI (``routeopt
layouts``) reads the same request as JSON, so a study file is also a valid RPC request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from engine.errors import FieldViolation, InvalidModelError
from engine.options import DEFAULT_GEODESIC_METERS_PER_SECOND
from engine.roads import RoadContext
from planning import (
    CandidateDepot,
    Day,
    Layout,
    LayoutEvaluation,
    LayoutOptions,
    LayoutSearch,
    LayoutStudy,
    Order,
    SearchResult,
    SolveFn,
    VehicleType,
    evaluate_layouts,
    rank_key,
    road_violations,
    search_layouts,
    validate_study,
)
from rpc.convert import ModelConverter, each, seconds_to_duration, solution_to_response
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.sheets import Origins, locate, read_files, request_from_tables

__all__ = [
    "MAX_CANDIDATES",
    "LayoutOutcome",
    "LayoutRequest",
    "evaluation_to_result",
    "expand_sheets",
    "rank",
    "request_to_study",
    "result_to_response",
    "run_request",
    "study_budget_s",
]

DEFAULT_LAYOUT_TIMEOUT_S = 10.0
MAX_CANDIDATES = 64
"""Most screening proposals a search request may ask for (``candidates``): each is a MIP
solve and a routed layout in the study's worker."""
BUDGET_SLACK_S = 60.0
"""What :func:`study_budget_s` adds for the work around the solves (travel, models, reports)."""
_MODES = {
    pb.LayoutSearch.EXACTLY: "exactly",
    pb.LayoutSearch.AT_MOST: "at_most",
    pb.LayoutSearch.MIN_COST: "min_cost",
}


@dataclass(frozen=True)
class LayoutRequest:
    """A converted request: the study, the evaluation options and the search's time budget."""

    study: LayoutStudy
    options: LayoutOptions
    timeout_s: float | None
    label: str
    origins: Origins = field(default_factory=Origins)
    """Where parts of a study given as spreadsheets came from (:func:`rpc.sheets.locate`)."""


class _StudyConverter(ModelConverter):
    def loads(self, values: object, path: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, value in sorted(values.items()):  # type: ignore[attr-defined]
            if not name:
                self.add(path, "load type names must not be empty")
            out[name] = int(value)
        return out

    def order(self, o: pb.LayoutOrder, path: str) -> Order:
        return Order(
            label=o.label,
            location=self.opt_latlng(o, "location", path),
            demands=self.loads(o.demands, f"{path}.demands"),
            time_windows=each(o.time_windows, f"{path}.time_windows", self.time_window),
            service_s=self.duration(o.service_duration, f"{path}.service_duration"),
            penalty_cost=self.opt_number(o, "penalty_cost", path),
        )

    def day(self, d: pb.LayoutDay, path: str) -> Day:
        start = (
            self.timestamp(d.start_time, f"{path}.start_time") if d.HasField("start_time") else 0.0
        )
        return Day(
            label=d.label or f"day {path}",
            orders=each(d.orders, f"{path}.orders", self.order),
            start_time=start,
        )

    def vehicle_type(self, v: pb.LayoutVehicleType, path: str) -> VehicleType:
        max_duration = (
            self.duration(v.max_duration, f"{path}.max_duration")
            if v.HasField("max_duration")
            else None
        )
        return VehicleType(
            label=v.label or "vehicle",
            count=v.count if v.HasField("count") else None,
            capacities=self.loads(v.capacities, f"{path}.capacities"),
            fixed_cost=self.number(v.fixed_cost, f"{path}.fixed_cost", 0.0),
            cost_per_kilometer=self.number(v.cost_per_kilometer, f"{path}.cost_per_kilometer", 0.0),
            cost_per_hour=self.number(v.cost_per_hour, f"{path}.cost_per_hour", 0.0),
            cost_per_traveled_hour=self.number(
                v.cost_per_traveled_hour, f"{path}.cost_per_traveled_hour", 0.0
            ),
            max_duration_s=max_duration,
            max_distance_m=self.opt_number(v, "max_distance_meters", path),
        )

    def depot(self, d: pb.CandidateDepot, path: str) -> CandidateDepot:
        closes = (
            self.duration(d.closes_at, f"{path}.closes_at") if d.HasField("closes_at") else 86400.0
        )
        return CandidateDepot(
            label=d.label,
            location=self.opt_latlng(d, "location", path),
            capacity=self.loads(d.capacity, f"{path}.capacity"),
            opening_cost=self.number(d.opening_cost, f"{path}.opening_cost", 0.0),
            open_s=self.duration(d.opens_at, f"{path}.opens_at"),
            close_s=closes,
            fleet=each(d.fleet, f"{path}.fleet", self.vehicle_type) or None,
        )

    def study(self, s: pb.DepotLayoutStudy, path: str) -> LayoutStudy:
        search = None
        if s.search.mode != pb.LayoutSearch.MODE_UNSPECIFIED:
            mode = _MODES.get(s.search.mode)
            if mode is None:
                self.add(f"{path}.search.mode", f"unknown mode {s.search.mode}")
            else:
                search = LayoutSearch(
                    mode,  # type: ignore[arg-type]
                    s.search.k if s.search.k else None,
                    tuple(s.search.must_open),
                )
        elif s.search.k or s.search.must_open:
            self.add(f"{path}.search.mode", "required when k or must_open is set")
        return LayoutStudy(
            days=each(s.days, f"{path}.days", self.day),
            depots=each(s.depots, f"{path}.depots", self.depot),
            fleet=each(s.fleet, f"{path}.fleet", self.vehicle_type),
            layouts=tuple(
                Layout(x.label or "+".join(x.depots), tuple(x.depots)) for x in s.layouts
            ),
            search=search,
            label=s.label,
        )


def expand_sheets(
    request: pb.EvaluateDepotLayoutsRequest,
) -> tuple[pb.EvaluateDepotLayoutsRequest, Origins]:
    """``request`` with its ``sheets`` read into ``study`` (the search sheet's settings where the
    request leaves them unset), and where the study's parts came from; the request itself when
    it has no sheets. Raises :class:`InvalidModelError` listing every unreadable file and bad
    cell (``FILE:ROW:COLUMN``)."""
    if not request.HasField("sheets"):
        return request, Origins()
    if request.HasField("study"):
        raise InvalidModelError([FieldViolation("sheets", "give study or sheets, not both")])
    files: dict[str, bytes] = {}
    violations = []
    for k, f in enumerate(request.sheets.files):
        if not f.name:
            violations.append(FieldViolation(f"sheets.files[{k}].name", "must not be empty"))
        elif f.name in files:
            violations.append(FieldViolation(f"sheets.files[{k}].name", f"{f.name} repeats"))
        files[f.name] = f.content
    if not files:
        violations.append(FieldViolation("sheets.files", "no files"))
    if violations:
        raise InvalidModelError(violations)
    tables, problems = read_files(files)
    if problems:
        raise InvalidModelError([FieldViolation("sheets", p) for p in problems])
    built, origins = request_from_tables(tables)
    out = pb.EvaluateDepotLayoutsRequest()
    out.CopyFrom(request)
    out.ClearField("sheets")
    out.study.CopyFrom(built.study)
    names: tuple[Literal["layout_timeout", "final_layout_timeout", "timeout"], ...] = (
        "layout_timeout",
        "final_layout_timeout",
        "timeout",
    )
    for name in names:
        if not out.HasField(name) and built.HasField(name):
            getattr(out, name).CopyFrom(getattr(built, name))
    out.candidates = out.candidates or built.candidates
    out.label = out.label or built.label
    return out, origins


def request_to_study(
    request: pb.EvaluateDepotLayoutsRequest,
    *,
    default_geodesic_meters_per_second: float = DEFAULT_GEODESIC_METERS_PER_SECOND,
    workers: int = 1,
    roads: RoadContext | None = None,
) -> LayoutRequest:
    """Validate ``request`` completely and convert it (module docstring). With ``roads`` (and
    no ``use_geodesic_distances``), locations too far from the network are violations too. A
    study given as ``sheets`` is read first (:func:`expand_sheets`); its violations name the
    file and row they come from."""
    request, origins = expand_sheets(request)
    try:
        converted = _request_to_study(request, default_geodesic_meters_per_second, workers, roads)
    except InvalidModelError as exc:
        raise InvalidModelError(locate(exc.violations, origins)) from None
    return replace(converted, origins=origins)


def _request_to_study(
    request: pb.EvaluateDepotLayoutsRequest,
    default_geodesic_meters_per_second: float,
    workers: int,
    roads: RoadContext | None,
) -> LayoutRequest:
    conv = _StudyConverter()
    study = conv.study(request.study, "study")

    def seconds(
        name: Literal["layout_timeout", "final_layout_timeout", "timeout"], default: float | None
    ) -> float | None:
        if not request.HasField(name):
            return default
        value = conv.duration(getattr(request, name), name)
        if not value > 0:
            conv.add(name, "must be positive")
            return default
        return value

    layout_s = seconds("layout_timeout", DEFAULT_LAYOUT_TIMEOUT_S)
    final_s = seconds("final_layout_timeout", None)
    timeout_s = seconds("timeout", None)
    speed = default_geodesic_meters_per_second
    if request.HasField("geodesic_meters_per_second"):
        speed = request.geodesic_meters_per_second
        if not (math.isfinite(speed) and speed > 0):
            conv.add("geodesic_meters_per_second", "must be positive")
            speed = default_geodesic_meters_per_second
    if request.candidates < 0:
        conv.add("candidates", "must not be negative")
    elif request.candidates > MAX_CANDIDATES:
        conv.add("candidates", f"must be at most {MAX_CANDIDATES}")
    backend = request.solver.backend or "auto"
    if backend not in ("auto", "ortools", "pyvrp"):
        conv.add("solver.backend", f"unknown backend {backend!r} (auto, ortools, pyvrp)")
        backend = "auto"
    if request.solver.random_seed < 0:
        conv.add("solver.random_seed", "must not be negative")
    if not request.study.layouts and request.study.search.mode == pb.LayoutSearch.MODE_UNSPECIFIED:
        conv.add("study.layouts", "give layouts to compare or a search")
    reported = {v.field for v in conv.violations}
    for violation in validate_study(study):
        path = f"study.{violation.field}"
        if not any(path == r or path.startswith(r + ".") for r in reported):
            conv.violations.append(FieldViolation(path, violation.description))
    if not conv.violations and roads is not None and not request.use_geodesic_distances:
        conv.violations += [
            FieldViolation(f"study.{v.field}", v.description) for v in road_violations(study, roads)
        ]
    if conv.violations:
        raise InvalidModelError(conv.violations)
    options = LayoutOptions(
        time_limit_s=layout_s or DEFAULT_LAYOUT_TIMEOUT_S,
        final_time_limit_s=final_s,
        backend=backend,
        seed=max(request.solver.random_seed, 0),
        workers=workers,
        geodesic_meters_per_second=speed,
        use_geodesic_distances=request.use_geodesic_distances,
        candidates=request.candidates or 4,
    )
    return LayoutRequest(study, options, timeout_s, request.label)


def study_budget_s(req: LayoutRequest) -> float:
    """The time budget of a study: its ``timeout``, or without one a bound on what it can do
    (every layout it may route at its routing budget, every MIP at the screening's limit, plus
    :data:`BUDGET_SLACK_S`), so that a study always ends and the executor's watchdog can tell a
    runaway one."""
    if req.timeout_s is not None:
        return req.timeout_s
    o, study = req.options, req.study
    routed = len(study.layouts)
    mips = 0
    if study.search is not None:
        n = len(study.depots)
        steps = o.max_local_search_steps
        routed += o.candidates + o.neighbours * steps
        # the screening (λ values, proposals, their reported costs), the neighbour rankings
        mips += len(o.route_cost_factors) + 2 * o.candidates + steps * (n * n + o.neighbours)
    mips += routed * len(study.days)  # a capacity repair per routed layout-day, at most
    routing = routed * o.time_limit_s + (o.final_time_limit_s or 0.0)
    return routing + mips * o.screening_time_limit_s + BUDGET_SLACK_S


@dataclass(frozen=True)
class LayoutOutcome:
    """What a request produced: the routed layouts, best first, and (search) the screening's
    proposals."""

    evaluations: tuple[LayoutEvaluation, ...]
    screened: tuple[tuple[Layout, float], ...] = ()


def rank(evaluations: Sequence[LayoutEvaluation]) -> tuple[LayoutEvaluation, ...]:
    """Layouts best first, in the planner's order (:func:`planning.rank_key`)."""
    return tuple(sorted(evaluations, key=rank_key))


def run_request(
    req: LayoutRequest,
    *,
    roads: RoadContext | None = None,
    on_done: Callable[[LayoutEvaluation], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    solve_fn: SolveFn | None = None,
    time_budget_s: float | None = None,
) -> LayoutOutcome:
    """Evaluate the study's layouts, then run its search (if any); ``on_done`` per routed
    layout. The whole study stops — no further layout, MIP or local-search move starts, the
    running solve is interrupted — once ``should_stop`` returns True or its time budget is
    spent (``time_budget_s``, default the request's ``timeout``; None: none), and the layouts
    routed so far are the outcome. ``solve_fn``: how each model is routed (default:
    :func:`engine.solve` here)."""
    budget_s = req.timeout_s if time_budget_s is None else time_budget_s
    started = time.monotonic()
    deadline = None if budget_s is None else started + budget_s
    evaluations = evaluate_layouts(
        req.study,
        req.study.layouts,
        req.options,
        roads=roads,
        on_done=on_done,
        should_stop=should_stop,
        solve_fn=solve_fn,
        deadline=deadline,
    )
    screened: tuple[tuple[Layout, float], ...] = ()
    stopped = (should_stop is not None and should_stop()) or (
        deadline is not None and time.monotonic() >= deadline
    )
    if req.study.search is not None and not stopped:
        found: SearchResult = search_layouts(
            req.study,
            req.options,
            roads=roads,
            time_budget_s=None if deadline is None else deadline - time.monotonic(),
            on_done=on_done,
            should_stop=should_stop,
            solve_fn=solve_fn,
        )
        screened = found.screened
        named = {frozenset(e.layout.depots) for e in evaluations}
        evaluations += [e for e in found.evaluations if frozenset(e.layout.depots) not in named]
    return LayoutOutcome(rank(evaluations), screened)


def _kpis(k: object) -> pb.LayoutKpis:
    fields = {f.name for f in pb.LayoutKpis.DESCRIPTOR.fields}
    values = {name: getattr(k, name) for name in fields}
    if not math.isfinite(values["cost_per_order"]):
        values["cost_per_order"] = 0.0
    return pb.LayoutKpis(**values)


def evaluation_to_result(ev: LayoutEvaluation, *, routes: bool = True) -> pb.DepotLayoutResult:
    out = pb.DepotLayoutResult(
        layout=pb.DepotLayout(label=ev.layout.label, depots=ev.layout.depots),
        kpis=_kpis(ev.kpis),
        capacity_respected=ev.capacity_respected,
        strategy=ev.strategy,
        evaluation_time=seconds_to_duration(ev.time_s),
    )
    if ev.screening_cost is not None and math.isfinite(ev.screening_cost):
        out.screening_cost = ev.screening_cost
    for day in ev.assignment:
        out.assignments.add(depots=day)
    if routes:
        for part in ev.parts:
            out.routes.add(
                day=part.day,
                depots=part.depots,
                order_indices=part.order_index,
                response=solution_to_response(part.solution, request_label=""),
            )
    return out


def result_to_response(outcome: LayoutOutcome, *, label: str) -> pb.EvaluateDepotLayoutsResponse:
    response = pb.EvaluateDepotLayoutsResponse(request_label=label)
    response.layouts.extend(evaluation_to_result(ev) for ev in outcome.evaluations)
    for layout, cost in outcome.screened:
        item = response.screened.add(
            layout=pb.DepotLayout(label=layout.label, depots=layout.depots)
        )
        if math.isfinite(cost):
            item.screening_cost = cost
    return response
