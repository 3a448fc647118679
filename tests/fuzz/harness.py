"""The fuzz harness: seed requests for every RPC, deterministic cases, and a run against a real
server that checks the pass criteria after every case.

A *case* is ``(seed, index)``: :func:`make_case` draws a method and a request from
``random.Random(f"{seed}:{index}")`` only, so the same pair always gives the same bytes. The
request is a seed message of the method mutated 1–6 times by :class:`~tests.fuzz.mutator.Mutator`,
or its wire form mutated (:func:`~tests.fuzz.mutator.mutate_bytes`), or raw garbage. Only
operation names and page tokens come from the run (names of operations created by earlier
cases, tokens of earlier pages), so that the Operations service is also called on real
operations; a replayed case shows what it sent.

:class:`FuzzRun` sends each case to a server (:class:`~tests.rpc.test_server_e2e.ServerProcess`)
with a short deadline and checks, after every case: the status is neither UNKNOWN nor INTERNAL
(nor is the ``error`` of any operation it returned), the server process is alive, health is
SERVING. Every ``RSS_EVERY`` cases it samples the server's RSS (the peak is bounded by
``max_rss_mb``) and counts solver processes (at most what ``--workers`` and
``--max-solver-processes`` allow). At the end it cancels every operation, waits for them and
checks that no solver process is left and that no stored operation failed with UNKNOWN or
INTERNAL.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc
from google.longrunning import operations_pb2
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2

from rpc.pb import route_optimization_service_pb2 as pb
from tests.fuzz.mutator import Mutator, garbage, mutate_bytes
from tests.rpc.test_faults import descendants
from tests.rpc.test_server_e2e import EXAMPLE, ServerProcess

ROUTEOPT: Final = "/routeopt.v1.RouteOptimization/"
GOOGLE: Final = "/google.maps.routeoptimization.v1.RouteOptimization/"
OPERATIONS: Final = "/google.longrunning.Operations/"
HEALTH: Final = "/grpc.health.v1.Health/Check"

SOLVE_COMM: Final = "routeopt-solve"
SEARCH_COMM: Final = "routeopt-search"

FORBIDDEN: Final = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
FORBIDDEN_CODES: Final = {code_pb2.UNKNOWN, code_pb2.INTERNAL}

CALL_DEADLINE_S: Final = 2.0
"""Client deadline of every call (solves stop by then; long polls return)."""

SOLVE_TIMEOUT_MS: Final = 150
"""``timeout`` of the seed requests: a valid case solves in a fraction of a second."""

BUCKET: Final = "fuzz"
"""The storage bucket (a directory under ``--storage-root``) of the Uri and batch seeds."""


# -- seeds -------------------------------------------------------------------------------------


def _timeout(request: Message, name: str = "timeout", ms: int = SOLVE_TIMEOUT_MS) -> None:
    getattr(request, name).FromMilliseconds(ms)


def geodesic_request(n: int = 4) -> pb.OptimizeToursRequest:
    """Deliveries around a depot in Helsinki, geodesic travel, RETURN_FAST."""
    rng = random.Random(n)
    request = pb.OptimizeToursRequest(
        label=f"fuzz-{n}",
        search_mode=pb.OptimizeToursRequest.RETURN_FAST,
        use_geodesic_distances=True,
        geodesic_meters_per_second=8.0,
    )
    _timeout(request)
    for i in range(n):
        shipment = request.model.shipments.add(label=f"s{i}", penalty_cost=100.0)
        visit = shipment.deliveries.add()
        visit.arrival_location.latitude = 60.16 + rng.random() * 0.02
        visit.arrival_location.longitude = 24.93 + rng.random() * 0.03
        visit.duration.FromSeconds(60)
        shipment.load_demands["boxes"].amount = 1
    for v in range(2):
        vehicle = request.model.vehicles.add(label=f"v{v}", cost_per_kilometer=1.0)
        vehicle.start_location.latitude = vehicle.end_location.latitude = 60.17
        vehicle.start_location.longitude = vehicle.end_location.longitude = 24.94
        vehicle.load_limits["boxes"].max_load = n
    return request


def rules_request() -> pb.OptimizeToursRequest:
    """A client matrix with tags, pickups and deliveries, time windows, allowed vehicles, costs
    per vehicle, shipment types, precedence, breaks and distance limits: the cross-references
    the mutator breaks."""
    request = pb.OptimizeToursRequest(label="fuzz-rules")
    _timeout(request)
    model = request.model
    model.global_start_time.FromSeconds(1_750_000_000)
    model.global_end_time.FromSeconds(1_750_000_000 + 10 * 3600)
    tags = ["depot", "a", "b", "c", "d"]
    model.duration_distance_matrix_src_tags.extend(tags)
    model.duration_distance_matrix_dst_tags.extend(tags)
    matrix = model.duration_distance_matrices.add(vehicle_start_tag="depot")
    for i in range(len(tags)):
        row = matrix.rows.add()
        for j in range(len(tags)):
            row.durations.add().FromSeconds(60 * abs(i - j))
            row.meters.append(500.0 * abs(i - j))
    for k, (pickup, delivery) in enumerate((("a", "b"), ("c", "d"))):
        shipment = model.shipments.add(label=f"pd{k}", shipment_type=f"t{k}", penalty_cost=1e4)
        p = shipment.pickups.add(tags=[pickup])
        p.duration.FromSeconds(30)
        d = shipment.deliveries.add(tags=[delivery])
        window = d.time_windows.add()
        window.start_time.FromSeconds(1_750_000_000)
        window.end_time.FromSeconds(1_750_000_000 + 8 * 3600)
        window.soft_end_time.FromSeconds(1_750_000_000 + 3600)
        window.cost_per_hour_after_soft_end_time = 10.0
        shipment.load_demands["kg"].amount = 5 + k
        shipment.allowed_vehicle_indices.extend([0, 1])
        shipment.costs_per_vehicle.extend([1.0, 2.0])
        shipment.costs_per_vehicle_indices.extend([0, 1])
        shipment.pickup_to_delivery_time_limit.FromSeconds(3600)
    model.shipment_type_incompatibilities.add(types=["t0", "t1"], incompatibility_mode=1)
    model.precedence_rules.add(first_index=0, second_index=1, first_is_delivery=True)
    for v in range(2):
        vehicle = model.vehicles.add(
            label=f"v{v}", start_tags=["depot"], end_tags=["depot"], cost_per_hour=10.0
        )
        vehicle.load_limits["kg"].max_load = 20
        vehicle.route_distance_limit.max_meters = 100_000
        rule = vehicle.break_rule.break_requests.add()
        rule.earliest_start_time.FromSeconds(1_750_000_000 + 3600)
        rule.latest_start_time.FromSeconds(1_750_000_000 + 5 * 3600)
        rule.min_duration.FromSeconds(600)
    return request


def hours_request() -> pb.OptimizeToursRequest:
    """The rules seed with the driver-hours rules (issue 15): break frequency constraints, a
    travel duration limit with linear and quadratic soft costs, the quadratic soft part of the
    route duration limit."""
    request = rules_request()
    request.label = "fuzz-hours"
    for v, vehicle in enumerate(request.model.vehicles):
        rule = vehicle.break_rule.frequency_constraints.add()
        rule.min_break_duration.FromSeconds(600)
        rule.max_inter_break_duration.FromSeconds(4 * 3600)
        route = vehicle.route_duration_limit
        route.max_duration.FromSeconds(9 * 3600)
        route.quadratic_soft_max_duration.FromSeconds(8 * 3600)
        route.cost_per_square_hour_after_quadratic_soft_max = 1000.0 + v
        travel = vehicle.travel_duration_limit
        travel.max_duration.FromSeconds(6 * 3600)
        travel.soft_max_duration.FromSeconds(4 * 3600)
        travel.cost_per_hour_after_soft_max = 20.0
        travel.quadratic_soft_max_duration.FromSeconds(5 * 3600)
        travel.cost_per_square_hour_after_quadratic_soft_max = 700.0
    return request


def _injected_route(route: pb.ShipmentRoute, start: int) -> None:
    """Vehicle 0 of the geodesic seed serving shipments 0 and 1 from ``start`` (epoch seconds
    of the default horizon)."""
    route.vehicle_index = 0
    route.vehicle_label = "v0"
    route.vehicle_start_time.FromSeconds(start)
    for k, s in enumerate((0, 1)):
        visit = route.visits.add(shipment_index=s, shipment_label=f"s{s}")
        visit.start_time.FromSeconds(start + 900 * (k + 1))
    route.vehicle_end_time.FromSeconds(start + 3600)


def reopt_requests() -> list[pb.OptimizeToursRequest]:
    """The geodesic seed with each injected solution (re-optimisation): a warm start, a
    constraint with relaxations and a kept skip, a refresh."""
    first = geodesic_request()
    first.label = "fuzz-first"
    _injected_route(first.injected_first_solution_routes.add(), 3600)
    constraint = geodesic_request()
    constraint.label = "fuzz-constraint"
    injected = constraint.injected_solution_constraint
    _injected_route(injected.routes.add(), 3600)
    injected.skipped_shipments.add(index=3, label="s3")
    group = injected.constraint_relaxations.add(vehicle_indices=[0])
    relax = pb.InjectedSolutionConstraint.ConstraintRelaxation.Relaxation
    group.relaxations.add(level=relax.RELAX_VISIT_TIMES_AFTER_THRESHOLD, threshold_visit_count=1)
    late = group.relaxations.add(level=relax.RELAX_ALL_AFTER_THRESHOLD)
    late.threshold_time.FromSeconds(3600 + 1800)
    refresh = geodesic_request()
    refresh.label = "fuzz-refresh"
    _injected_route(refresh.refresh_details_routes.add(), 3600)
    labels = geodesic_request()
    labels.label = "fuzz-labels"
    labels.interpret_injected_solutions_using_labels = True
    _injected_route(labels.injected_first_solution_routes.add(), 3600)
    return [first, constraint, refresh, labels]


def settings_request() -> pb.OptimizeToursRequest:
    """The rules seed with the rest: requirements, vehicle windows and limits, soft loads,
    visit costs, detour limits, transition attributes, solver settings, polylines and progress
    routes."""
    request = rules_request()
    request.label = "fuzz-settings"
    _timeout(request, ms=500)  # the requirements take a while to set up
    request.search_mode = pb.OptimizeToursRequest.RETURN_FAST
    request.solver.backend = "ortools"
    request.solver.solver_processes = 1
    request.solver.random_seed = 7
    request.solver.iteration_limit = 50
    request.max_validation_errors = 5
    request.progress_routes_interval.FromMilliseconds(50)
    model = request.model
    model.max_active_vehicles = 2
    model.global_duration_cost_per_hour = 1.0
    model.shipment_type_requirements.add(
        required_shipment_type_alternatives=["t0"],
        dependent_shipment_types=["t1"],
        requirement_mode=pb.ShipmentTypeRequirement.IN_SAME_VEHICLE_AT_PICKUP_TIME,
    )
    model.precedence_rules[0].offset_duration.FromSeconds(60)
    transition = model.transition_attributes.add(  # issue 15
        src_tag="depot", excluded_dst_tag="none", cost=1.0, cost_per_kilometer=0.5
    )
    transition.delay.FromSeconds(120)
    transition.distance_limit.soft_max_meters = 1000
    transition.distance_limit.cost_per_kilometer_above_soft_max = 0.1
    parcel = model.shipments.add(label="box", penalty_cost=50.0)
    parcel.deliveries.add(tags=["b"]).duration.FromSeconds(10)
    parcel.load_demands["boxes"].amount = 2
    for k, shipment in enumerate(model.shipments[:2]):
        shipment.pickups[0].cost = 1.5
        shipment.pickups[0].label = f"p{k}"
        shipment.pickup_to_delivery_relative_detour_limit = 2.0
        shipment.pickup_to_delivery_absolute_detour_limit.FromSeconds(1800)
    for vehicle in model.vehicles:
        window = vehicle.start_time_windows.add()
        window.start_time.FromSeconds(1_750_000_000)
        window.end_time.FromSeconds(1_750_000_000 + 3600)
        vehicle.end_time_windows.add().end_time.FromSeconds(1_750_000_000 + 9 * 3600)
        vehicle.route_duration_limit.max_duration.FromSeconds(8 * 3600)
        vehicle.route_duration_limit.soft_max_duration.FromSeconds(6 * 3600)
        vehicle.route_duration_limit.cost_per_hour_after_soft_max = 5.0
        vehicle.route_distance_limit.soft_max_meters = 50_000
        vehicle.route_distance_limit.cost_per_kilometer_above_soft_max = 1.0
        vehicle.load_limits["boxes"].soft_max_load = 1
        vehicle.load_limits["boxes"].cost_per_unit_above_soft_max = 2.0
        vehicle.travel_duration_multiple = 1.2
        vehicle.fixed_cost = 20.0
        vehicle.used_if_route_is_empty = vehicle.label == "v1"
    return request


def example_request() -> pb.OptimizeToursRequest:
    """The README's example (road travel on the embedded network), with a short timeout."""
    request = json_format.Parse(EXAMPLE.read_text(), pb.OptimizeToursRequest())
    _timeout(request)
    return request


def portfolio_request() -> pb.OptimizeToursRequest:
    """Two parallel searches (a portfolio: engine.parallel)."""
    request = geodesic_request(6)
    request.solver.solver_processes = 2
    return request


def optimize_seeds() -> list[pb.OptimizeToursRequest]:
    return [
        geodesic_request(),
        portfolio_request(),
        rules_request(),
        settings_request(),
        example_request(),
        hours_request(),
        *reopt_requests(),
    ]


def matrix_seed() -> pb.ComputeMatrixRequest:
    request = pb.ComputeMatrixRequest()
    for i in range(3):
        request.sources.add(latitude=60.168 + 0.002 * i, longitude=24.94 + 0.003 * i)
        request.destinations.add(latitude=60.171 - 0.001 * i, longitude=24.945)
    return request


def layouts_seed(search: bool) -> pb.EvaluateDepotLayoutsRequest:
    request = pb.EvaluateDepotLayoutsRequest(
        label="fuzz-study", use_geodesic_distances=True, geodesic_meters_per_second=8.0
    )
    _timeout(request, "layout_timeout", 100)
    _timeout(request, "timeout", 300)
    study = request.study
    for j, (lat, lng) in enumerate(((60.17, 24.93), (60.19, 24.96))):
        depot = study.depots.add(label=f"D{j}", opening_cost=20.0 + j)
        depot.location.latitude, depot.location.longitude = lat, lng
        depot.capacity["parcels"] = 30
        depot.opens_at.FromSeconds(6 * 3600)
        depot.closes_at.FromSeconds(20 * 3600)
    van = study.fleet.add(label="van", fixed_cost=30.0, cost_per_kilometer=1.0, count=2)
    van.capacities["parcels"] = 10
    day = study.days.add(label="monday")
    day.start_time.FromSeconds(1_750_032_000)
    rng = random.Random(3)
    for i in range(4):
        order = day.orders.add(label=f"o{i}")
        order.location.latitude = 60.16 + rng.uniform(0, 0.03)
        order.location.longitude = 24.93 + rng.uniform(0, 0.04)
        order.demands["parcels"] = 1 + i % 3
        order.service_duration.FromSeconds(120)
    study.layouts.add(label="west", depots=["D0"])
    if search:
        study.search.mode = pb.LayoutSearch.AT_MOST
        study.search.k = 2
        request.candidates = 2
    return request


def storage_files(root: Path) -> None:
    """The files the Uri and batch seeds read, under the storage root."""
    bucket = root / BUCKET
    bucket.mkdir(parents=True, exist_ok=True)
    request = geodesic_request(3)
    (bucket / "request.json").write_text(json_format.MessageToJson(request))
    (bucket / "request.bin").write_bytes(request.SerializeToString())
    (bucket / "broken.json").write_text('{"model": {"shipments": [')


def uri_seed() -> pb.OptimizeToursUriRequest:
    request = pb.OptimizeToursUriRequest(parent="projects/fuzz")
    request.input.uri = f"gs://{BUCKET}/request.json"
    request.output.uri = f"gs://{BUCKET}/out/response.json"
    return request


def batch_seeds() -> list[pb.BatchOptimizeToursRequest]:
    routeopt = pb.BatchOptimizeToursRequest(label="fuzz-batch")
    routeopt.requests.add().CopyFrom(geodesic_request(2))
    routeopt.requests.add().CopyFrom(geodesic_request(3))
    google = pb.BatchOptimizeToursRequest(parent="projects/fuzz")
    config = google.model_configs.add(display_name="m0")
    config.input_config.gcs_source.uri = f"gs://{BUCKET}/request.json"
    config.input_config.data_format = pb.JSON
    config.output_config.gcs_destination.uri = f"gs://{BUCKET}/out/batch.json"
    config.output_config.data_format = pb.JSON
    return [routeopt, google]


# -- targets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A method: its full path, how it streams, its seeds, and its response type."""

    path: str
    seeds: Callable[[], list[Message]]
    response: type[Message]
    stream: bool = False
    weight: int = 1
    deadline_s: float = CALL_DEADLINE_S


def _one(factory: Callable[[], Message]) -> Callable[[], list[Message]]:
    return lambda: [factory()]


def _operation_seeds(kind: str) -> Callable[[], list[Message]]:
    def seeds() -> list[Message]:
        if kind == "Get":
            return [operations_pb2.GetOperationRequest(name="operations/x")]
        if kind == "List":
            return [
                operations_pb2.ListOperationsRequest(page_size=2),
                operations_pb2.ListOperationsRequest(filter='state = "SUCCEEDED"', page_size=1),
                operations_pb2.ListOperationsRequest(name="projects/fuzz", page_size=3),
            ]
        if kind == "Cancel":
            return [operations_pb2.CancelOperationRequest(name="operations/x")]
        if kind == "Delete":
            return [operations_pb2.DeleteOperationRequest(name="operations/x")]
        wait = operations_pb2.WaitOperationRequest(name="operations/x")
        wait.timeout.FromMilliseconds(200)
        return [wait]

    return seeds


TARGETS: Final[tuple[Target, ...]] = (
    Target(ROUTEOPT + "OptimizeTours", optimize_seeds, pb.OptimizeToursResponse, weight=6),
    Target(ROUTEOPT + "ComputeMatrix", _one(matrix_seed), pb.ComputeMatrixResponse, weight=2),
    Target(
        ROUTEOPT + "OptimizeToursLongRunning",
        optimize_seeds,
        operations_pb2.Operation,
        weight=3,
    ),
    Target(
        ROUTEOPT + "OptimizeToursStream",
        optimize_seeds,
        pb.OptimizeToursProgress,
        stream=True,
        weight=2,
    ),
    Target(ROUTEOPT + "OptimizeToursUri", _one(uri_seed), operations_pb2.Operation),
    Target(ROUTEOPT + "BatchOptimizeTours", batch_seeds, operations_pb2.Operation, weight=2),
    Target(
        ROUTEOPT + "EvaluateDepotLayouts",
        lambda: [layouts_seed(False), layouts_seed(True)],
        operations_pb2.Operation,
        weight=2,
    ),
    Target(GOOGLE + "OptimizeTours", optimize_seeds, pb.OptimizeToursResponse, weight=2),
    Target(GOOGLE + "OptimizeToursLongRunning", optimize_seeds, operations_pb2.Operation),
    Target(GOOGLE + "BatchOptimizeTours", batch_seeds, operations_pb2.Operation),
    Target(GOOGLE + "OptimizeToursUri", _one(uri_seed), operations_pb2.Operation),
    Target(OPERATIONS + "GetOperation", _operation_seeds("Get"), operations_pb2.Operation, 2),
    Target(
        OPERATIONS + "ListOperations",
        _operation_seeds("List"),
        operations_pb2.ListOperationsResponse,
        weight=2,
    ),
    Target(OPERATIONS + "CancelOperation", _operation_seeds("Cancel"), Message),
    Target(OPERATIONS + "DeleteOperation", _operation_seeds("Delete"), Message),
    # a long poll: a mutated timeout waits until the call's deadline
    Target(
        OPERATIONS + "WaitOperation",
        _operation_seeds("Wait"),
        operations_pb2.Operation,
        deadline_s=0.5,
    ),
    Target(HEALTH, _one(lambda: health_pb2.HealthCheckRequest()), health_pb2.HealthCheckResponse),
)

_WEIGHTS: Final = [t.weight for t in TARGETS]


# -- cases -------------------------------------------------------------------------------------


@dataclass
class Case:
    seed: int
    index: int
    target: Target
    data: bytes
    how: list[str]

    def describe(self) -> str:
        what = "; ".join(self.how)
        return (
            f"case {self.index} of seed {self.seed}: {self.target.path} ({len(self.data)} bytes): "
            f"{what[:2000]}\n  replay: ROUTEOPT_FUZZ_SEED={self.seed} "
            f"ROUTEOPT_FUZZ_START={self.index} ROUTEOPT_FUZZ_CASES=1 "
            "python -m pytest tests/fuzz -q"
        )


@dataclass
class Memory:
    """What earlier cases left: operation names and page tokens."""

    names: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


_SEED_CACHE: dict[str, list[Message]] = {}


def _seeds(target: Target) -> list[Message]:
    if target.path not in _SEED_CACHE:
        _SEED_CACHE[target.path] = target.seeds()
    return _SEED_CACHE[target.path]


def _fill_operation(rng: random.Random, request: Message, memory: Memory) -> list[str]:
    """Real names and tokens, before mutation."""
    how = []
    if "name" in request.DESCRIPTOR.fields_by_name and memory.names and rng.random() < 0.7:
        request.name = rng.choice(memory.names)  # type: ignore[attr-defined]
        how.append(f"name = {request.name!r}")  # type: ignore[attr-defined]
    if isinstance(request, operations_pb2.ListOperationsRequest):
        if memory.tokens and rng.random() < 0.5:
            request.page_token = rng.choice(memory.tokens)
            how.append(f"page_token = {request.page_token!r}")
        if rng.random() < 0.3:
            request.page_token = rng.choice(
                ("9" * 20, "18446744073709551615", "9223372036854775808", "-1", "1e5", "٣")
            )
            how.append(f"page_token = {request.page_token!r}")
        if rng.random() < 0.3:
            request.name = ""
    return how


def make_case(seed: int, index: int, memory: Memory) -> Case:
    rng = random.Random(f"{seed}:{index}")
    target = rng.choices(TARGETS, weights=_WEIGHTS)[0]
    base = rng.choice(_seeds(target))
    request = type(base)()
    request.CopyFrom(base)
    how = _fill_operation(rng, request, memory) if target.path.startswith(OPERATIONS) else []
    roll = rng.random()
    if roll < 0.04:
        data = garbage(rng, rng.choice((0, 1, 7, 64, 4096)))
        how.append(f"{len(data)} random bytes")
    elif roll < 0.12:
        data, what = mutate_bytes(rng, request.SerializeToString())
        how.append(f"wire: {what}")
    elif roll < 0.18:
        data = request.SerializeToString()
        how.append("unchanged seed")
    else:
        how += Mutator(rng).mutate(request, rng.choice((1, 1, 1, 2, 2, 3, 6)))
        data = request.SerializeToString()
    return Case(seed, index, target, data, how)


# -- the run -----------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Stats:
    cases: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    by_method: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    operations: int = 0
    deadline_exceeded: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        codes = ", ".join(f"{k} {v}" for k, v in sorted(self.codes.items()))
        return (
            f"{self.cases} cases, {self.operations} operations created, "
            f"peak server RSS {self.peak_rss_mb:.0f} MiB; statuses: {codes}; "
            f"DEADLINE_EXCEEDED by method: {self.deadline_exceeded}"
        )


class FuzzRun:
    """Cases against ``srv``; ``failures`` lists what broke the pass criteria."""

    RSS_EVERY: Final = 25
    MAX_FAILURES: Final = 20

    def __init__(
        self, srv: ServerProcess, *, workers: int, solver_processes: int, max_rss_mb: float
    ) -> None:
        self.srv = srv
        self.workers = workers
        self.solver_processes = solver_processes
        self.max_rss_mb = max_rss_mb
        self.memory = Memory()
        self.stats = Stats()
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._reported: set[str] = set()  # operations whose failure was reported
        self._created: dict[str, Case] = {}  # operation name → the case that created it
        self._current: Case | None = None

    # -- one case --

    def _call(self, case: Case) -> tuple[grpc.StatusCode, list[bytes]]:
        channel = self.srv.channel
        if case.target.stream:
            stream = channel.unary_stream(case.target.path)
            replies = []
            try:
                for reply in stream(case.data, timeout=case.target.deadline_s):
                    replies.append(reply)
            except grpc.RpcError as error:
                return error.code(), replies
            return grpc.StatusCode.OK, replies
        unary = channel.unary_unary(case.target.path)
        try:
            return grpc.StatusCode.OK, [unary(case.data, timeout=case.target.deadline_s)]
        except grpc.RpcError as error:
            return error.code(), []

    def _look_at(self, case: Case, replies: list[bytes]) -> list[str]:
        """Problems in the replies; operations and page tokens are remembered."""
        problems = []
        for raw in replies:
            if case.target.response is Message:
                continue
            reply = case.target.response()
            try:
                reply.ParseFromString(raw)
            except DecodeError as exc:
                problems.append(f"an undecodable reply: {exc}")
                continue
            if isinstance(reply, operations_pb2.Operation):
                problems += self._operation(reply, created=not case.target.path.startswith(
                    OPERATIONS
                ))  # fmt: skip
            elif isinstance(reply, operations_pb2.ListOperationsResponse):
                if reply.next_page_token:
                    self.memory.tokens.append(reply.next_page_token)
                    del self.memory.tokens[:-50]
                for operation in reply.operations:
                    problems += self._operation(operation, created=False)
        return problems

    def _operation(self, operation: operations_pb2.Operation, *, created: bool) -> list[str]:
        if created and operation.name:
            self._created[operation.name] = self._current
            self.stats.operations += 1
            self.memory.names.append(operation.name)
            del self.memory.names[:-50]
            self._pending.append(operation.name)
        if operation.HasField("error") and operation.error.code in FORBIDDEN_CODES:
            if operation.name in self._reported:
                return []
            self._reported.add(operation.name)
            return [self._operation_failure(operation)]
        return []

    def _operation_failure(self, operation: operations_pb2.Operation) -> str:
        text = (
            f"operation {operation.name} failed with code {operation.error.code}: "
            f"{operation.error.message}"
        )
        origin = self._created.get(operation.name)
        return f"{text}\n  created by {origin.describe()}" if origin is not None else text

    def health(self) -> str | None:
        """None when the server runs and is SERVING; else what is wrong."""
        if self.srv.proc.poll() is not None:
            return f"the server exited with {self.srv.proc.returncode}"
        try:
            reply = self.srv.health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        except grpc.RpcError as error:
            return f"health check failed: {error.code()} {error.details()}"
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return f"health is {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
        return None

    def run_case(self, case: Case) -> bool:
        """Send ``case`` and check the criteria; False when the server is gone."""
        code, replies = self._call(case)
        self._current = case
        with self._lock:
            self.stats.cases += 1
            self.stats.codes[code.name] = self.stats.codes.get(code.name, 0) + 1
            key = case.target.path.lstrip("/")
            self.stats.by_method[key] = self.stats.by_method.get(key, 0) + 1
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                late = self.stats.deadline_exceeded
                late[key] = late.get(key, 0) + 1
            problems = self._look_at(case, replies)
        if code in FORBIDDEN:
            problems.append(f"status {code.name}")
        unhealthy = self.health()
        if unhealthy:
            problems.append(unhealthy)
        if problems:
            self.fail(case, problems)
        return self.srv.proc.poll() is None

    def fail(self, case: Case | None, problems: list[str]) -> None:
        where = case.describe() if case else "after the cases"
        text = f"{'; '.join(problems)}\n  {where}"
        print(f"FUZZ FAILURE: {text}", flush=True)
        with self._lock:
            self.failures.append(text)

    # -- periodic and final checks --

    def solver_processes_now(self) -> dict[int, str]:
        return {
            pid: comm
            for pid, comm in descendants(self.srv.proc.pid).items()
            if comm in (SOLVE_COMM, SEARCH_COMM)
        }

    def check_resources(self, case: Case | None) -> None:
        rss = rss_mb(self.srv.proc.pid)
        self.stats.peak_rss_mb = max(self.stats.peak_rss_mb, rss)
        if rss > self.max_rss_mb:
            self.fail(case, [f"server RSS {rss:.0f} MiB above {self.max_rss_mb:.0f} MiB"])
        # a worker and its searches may take a moment to go after a cancellation or a deadline
        most_solves, most_searches = self.workers, self.workers * self.solver_processes
        deadline = time.monotonic() + 15
        while True:
            procs = self.solver_processes_now()
            solves = sum(1 for c in procs.values() if c == SOLVE_COMM)
            searches = len(procs) - solves
            if solves <= most_solves and searches <= most_searches:
                return
            if time.monotonic() > deadline:
                self.fail(case, [f"{solves} solve and {searches} search processes: leaked"])
                return
            time.sleep(0.1)

    def finish(self) -> None:
        """Cancel every operation, wait for all to end, then check every stored operation and
        that no solver process is left."""
        ops = operations_pb2_grpc_stub(self.srv)
        deadline = time.monotonic() + 120
        while True:
            active = [o for o in self.all_operations(ops) if not o.done]
            if not active:
                break
            if time.monotonic() > deadline:
                self.fail(None, [f"{len(active)} operations still not done after cancelling"])
                return
            self.cancel_all_named(ops, [o.name for o in active])
            time.sleep(0.5)
        for operation in self.all_operations(ops):
            if operation.name in self._reported:
                continue
            if operation.HasField("error") and operation.error.code in FORBIDDEN_CODES:
                self._reported.add(operation.name)
                self.fail(None, ["stored " + self._operation_failure(operation)])
        deadline = time.monotonic() + 20
        while self.solver_processes_now():
            if time.monotonic() > deadline:
                self.fail(None, [f"solver processes left: {self.solver_processes_now()}"])
                break
            time.sleep(0.2)
        self.check_resources(None)
        unhealthy = self.health()
        if unhealthy:
            self.fail(None, [unhealthy])

    def all_operations(self, ops: Any) -> Iterator[operations_pb2.Operation]:
        for parent in ("", "projects/fuzz", "projects/-"):
            token = ""
            while True:
                reply = ops.ListOperations(
                    operations_pb2.ListOperationsRequest(
                        name=parent, page_size=500, page_token=token
                    ),
                    timeout=30,
                )
                yield from reply.operations
                token = reply.next_page_token
                if not token:
                    break

    def cancel_all_named(self, ops: Any, names: list[str]) -> None:
        for name in names:
            try:
                ops.CancelOperation(operations_pb2.CancelOperationRequest(name=name), timeout=5)
            except grpc.RpcError as error:
                if error.code() in FORBIDDEN:
                    self.fail(None, [f"CancelOperation({name}) answered {error.code().name}"])

    def run(self, seed: int, start: int, count: int) -> None:
        for index in range(start, start + count):
            case = make_case(seed, index, self.memory)
            alive = self.run_case(case)
            if not alive or len(self.failures) >= self.MAX_FAILURES:
                return
            if (index - start) % self.RSS_EVERY == self.RSS_EVERY - 1:
                self.check_resources(case)
            if len(self._pending) > 6:
                # keep the workers free for the next cases: cancel what earlier cases started
                old, self._pending = self._pending[:-3], self._pending[-3:]
                self.cancel_all_named(operations_pb2_grpc_stub(self.srv), old)
        self.finish()


def operations_pb2_grpc_stub(srv: ServerProcess) -> Any:
    from google.longrunning import operations_pb2_grpc

    return operations_pb2_grpc.OperationsStub(srv.channel)


def dump(case: Case) -> str:
    """The request of ``case`` as JSON when it parses (for a failure report)."""
    if case.target.path.endswith("Check"):
        return ""
    seeds = _seeds(case.target)
    message = type(seeds[0])()
    try:
        message.ParseFromString(case.data)
    except DecodeError:
        return "(not a valid message)"
    return json.dumps(json_format.MessageToDict(message))[:4000]
