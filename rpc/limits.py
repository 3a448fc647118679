"""Request-size limits and call slots of the server: :class:`Limits` (``--limit NAME=VALUE``).

Every limit is checked **before** anything proportional to the size a request claims is
allocated: :func:`request_size_violations` reads only the lengths of repeated fields (and the
product of the matrix tags, before :mod:`rpc.convert.model` builds any matrix), so a request
claiming a million tags is refused in microseconds. A request over a size limit is
INVALID_ARGUMENT with a ``google.rpc.BadRequest`` naming the field and the limit (the request
is too big, retrying does not help); a call refused because the server is busy (every call slot
of its kind taken: :mod:`rpc.admission`; every solver worker and queue place taken; a tenant's
quota) is RESOURCE_EXHAUSTED with a ``RetryInfo``.

The defaults are sized for a 2-core, 24 GiB machine running the default 64 MiB message limit.
What is not here because it already has its own flag: solver workers (``--workers``), solves
waiting for one (``--max-queued``), operations queued or running (``--max-jobs``), bytes of
finished operations kept (``--max-store-mb``), and the per-tenant quotas (``--default-quota``,
``routeopt keys quota``: operations active and stored, synchronous solves).

The limits below are server-wide. Those that bound one request (:data:`TENANT_LIMITS`: sizes,
timeouts, batch and study sizes; not the call slots, which are shared by all) may also be set
per tenant, in its quota (``routeopt keys quota --tenant T --quota shipments=2000``, or
``--default-quota``): a tenant's value can only **lower** the server's, never raise it (the
server's limit is its memory-safety cap). :meth:`Limits.for_tenant` makes a tenant's limits; a
request over a limit the tenant lowered is refused with a message naming the tenant's limit.

Numbers inside a request (costs, loads, durations, distances) are bounded where the engine
scales them to integers: :mod:`engine.units` and :mod:`engine.validation`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from engine.errors import FieldViolation
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = [
    "LIMIT_HELP",
    "MATRIX_BYTES_PER_CELL",
    "QUOTA_LIMIT_NAMES",
    "TENANT_LIMITS",
    "Limits",
    "check_limit",
    "limit_fields",
    "parse_limit",
    "request_size_violations",
    "study_size_violations",
]

MATRIX_BYTES_PER_CELL: Final[dict[int, int]] = {
    pb.ComputeMatrixRequest.ROWS: 24,
    pb.ComputeMatrixRequest.PACKED: 16,
}
"""Most bytes one cell of a ComputeMatrixResponse takes on the wire, by encoding: ROWS is a
Duration of up to 14 bytes, a packed double and a packed bool; PACKED two doubles."""

MATRIX_RESPONSE_OVERHEAD_BYTES: Final = 64 * 1024
"""Kept free of cells in a ComputeMatrixResponse: row headers and the snapped points."""

MATRIX_BYTES_PER_POINT: Final = 48
"""Most bytes of one snapped point (location and distance) in a ComputeMatrixResponse."""


@dataclass(frozen=True)
class Limits:
    """Server-wide limits (``--limit NAME=VALUE``; names are the field names)."""

    shipments: int = 5_000
    """Shipments per OptimizeTours request (each batch item counts alone)."""
    vehicles: int = 500
    """Vehicles per request."""
    visit_requests: int = 100
    """Pickups plus deliveries of one shipment."""
    visits: int = 8_000
    """Pickups plus deliveries of all shipments of a request: with two stops per vehicle they
    size the solver's stop-to-stop matrices (9,000² cells, 8 bytes each, per matrix kind)."""
    time_windows: int = 100
    """Time windows of one visit request, and of a vehicle's start or end."""
    break_requests: int = 100
    """Break requests of one vehicle."""
    transition_attributes: int = 1_000
    """``transition_attributes`` of a request: each adds to stop-to-stop tables (a matrix
    product over the attributes, :mod:`engine.transitions`)."""
    matrix_tags: int = 10_000
    """Source tags, and destination tags, of the client's duration_distance_matrices."""
    matrix_cells: int = 25_000_000
    """Cells of all the client's matrices together (matrices × source tags × destination tags):
    16 bytes each once converted, 400 MB at the default."""
    compute_matrix_cells: int = 4_000_000
    """ComputeMatrix sources × destinations; also capped by what fits ``--max-message-mb`` in
    the response's encoding (:meth:`compute_matrix_cap`)."""
    batch_requests: int = 1_000
    """Requests (model configs) of one BatchOptimizeTours."""
    batch_mb: int = 256
    """MiB of a BatchOptimizeTours' requests once its model-config files are read (each file
    is at most 256 MiB too): the batch is held in memory and stored whole."""
    layout_days: int = 366
    """Days of a depot-layout study (each day is routed for every layout evaluated)."""
    layout_depots: int = 200
    """Candidate depots of a study."""
    layouts: int = 1_000
    """Layouts a study compares (its search adds at most its candidates)."""
    sync_timeout_s: float = 3_600.0
    """Largest ``timeout`` of OptimizeTours and OptimizeToursStream (the call stays open)."""
    long_running_timeout_s: float = 7 * 86_400.0
    """Largest ``timeout`` of a long-running operation (OptimizeToursLongRunning, batch items)."""
    streams: int = 8
    """OptimizeToursStream calls at once (each holds a gRPC thread for its whole solve)."""
    long_polls: int = 16
    """WaitOperation calls at once (each holds a gRPC thread until the operation ends)."""
    matrix_calls: int = 2
    """ComputeMatrix calls at once (each holds a gRPC thread and its matrix in memory)."""
    solve_calls: int = 0
    """OptimizeTours calls waiting or solving at once; 0: the solver workers plus the queue
    (``--workers`` + ``--max-queued``), so a refused call costs no thread."""
    tenant: str | None = field(default=None, kw_only=True)
    """Not a limit: the tenant whose quota lowered :attr:`lowered` (None: server limits)."""
    lowered: frozenset[str] = field(default=frozenset(), kw_only=True)
    """Not a limit: the limits that are the tenant's own (lower than the server's)."""

    def __post_init__(self) -> None:
        for f in limit_fields():
            _check(f.name, getattr(self, f.name))

    def for_tenant(self, tenant: str, values: Mapping[str, float]) -> Limits:
        """These (server) limits lowered by ``tenant``'s own ``values`` (by field name, of
        :data:`TENANT_LIMITS`): a value at or above the server's leaves the server's limit."""
        lower: dict[str, float] = {}
        for name, value in values.items():
            if name in TENANT_LIMITS and value < getattr(self, name):
                lower[name] = value if name.endswith("_timeout_s") else int(value)
        if not lower:
            return self
        return dataclasses.replace(self, **lower, tenant=tenant, lowered=frozenset(lower))  # type: ignore[arg-type]

    def where(self, name: str, unit: str = "N") -> str:
        """Whose limit ``name`` is, for an error message: the server's (and its flag) or the
        tenant's (and its quota)."""
        if name in self.lowered:
            who = f"tenant {self.tenant!r}" if self.tenant else "the default tenant"
            return f"for {who} (the tenant's limit: quota {quota_name(name)}={unit})"
        return f"on this server (--limit {name}={unit})"

    def compute_matrix_cap(self, encoding: int, max_message_bytes: int, points: int = 0) -> int:
        """Most cells of a ComputeMatrix of ``points`` sources and destinations in all whose
        response (in ``encoding``) fits ``max_message_bytes``, within the limit."""
        per_cell = MATRIX_BYTES_PER_CELL.get(int(encoding), max(MATRIX_BYTES_PER_CELL.values()))
        used = MATRIX_RESPONSE_OVERHEAD_BYTES + MATRIX_BYTES_PER_POINT * points
        room = max(0, max_message_bytes - used)
        return int(min(self.compute_matrix_cells, room // per_cell))

    def compute_matrix_where(self, cap: int) -> str:
        """Whose limit a ComputeMatrix ``cap`` (of :meth:`compute_matrix_cap`) is, for an error
        message: the tenant's when it lowered ``compute_matrix_cells`` and that is the cap."""
        if "compute_matrix_cells" in self.lowered and cap == self.compute_matrix_cells:
            return self.where("compute_matrix_cells")
        return (
            "on this server in this encoding "
            "(--limit compute_matrix_cells=N, and what fits --max-message-mb)"
        )

    def timeout_cap(self, *, synchronous: bool) -> float:
        """The largest request ``timeout`` of a synchronous or a long-running call."""
        return self.sync_timeout_s if synchronous else self.long_running_timeout_s


def limit_fields() -> tuple[dataclasses.Field[object], ...]:
    """The fields of :class:`Limits` that are limits (not :attr:`Limits.tenant`, ...)."""
    return tuple(f for f in dataclasses.fields(Limits) if f.name not in _NOT_LIMITS)


_NOT_LIMITS: Final = frozenset({"tenant", "lowered"})

LIMIT_HELP: Final = ", ".join(f"{f.name}={f.default}" for f in limit_fields())
"""Every limit with its default, for ``--help``."""

TENANT_LIMITS: Final = tuple(
    f.name
    for f in limit_fields()
    if f.name not in ("streams", "long_polls", "matrix_calls", "solve_calls")
)
"""The limits a tenant's quota may lower: those of one request (the call slots are shared)."""


def quota_name(name: str) -> str:
    """A limit's name in a tenant quota: the field name, timeouts without ``_s``."""
    return name.removesuffix("_s")


QUOTA_LIMIT_NAMES: Final = {quota_name(name): name for name in TENANT_LIMITS}
"""Quota name (``shipments``, ``sync_timeout``, ...) → :class:`Limits` field name."""


def check_limit(name: str, text: str) -> float:
    """The value of limit ``name`` (a field name) read from ``text`` (an int, or a float for
    timeouts); ValueError when it is not one or out of range."""
    kind = float if name.endswith("_timeout_s") else int
    try:
        number = kind(text)
    except ValueError:
        raise ValueError(f"{name}: expected a {kind.__name__}, got {text!r}") from None
    _check(name, number)
    return number


def parse_limit(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` → (name, value); ValueError naming the known limits when it is not one."""
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    fields = {f.name: f for f in limit_fields()}
    if not sep or name not in fields:
        raise ValueError(f"expected NAME=VALUE with NAME one of {', '.join(fields)}, got {text!r}")
    return name, check_limit(name, value)


MAX_TIMEOUT_CAP_S: Final = 1e9
"""Largest timeout cap (about 31 years): far below what ``threading`` can wait."""


def _check(name: str, value: float) -> None:
    least = 0 if name == "solve_calls" else 1
    most = MAX_TIMEOUT_CAP_S if name.endswith("_timeout_s") else float("inf")
    if not least <= value < float("inf") or value > most:
        bound = f"in [{least}, {most:g}]" if most < float("inf") else f"at least {least}"
        raise ValueError(f"{name}: must be {bound}, got {value}")


def _over(
    problems: list[FieldViolation], path: str, count: int, limits: Limits, name: str, what: str
) -> bool:
    limit = int(getattr(limits, name))
    if count <= limit:
        return False
    problems.append(
        FieldViolation(path, f"at most {limit:,} {what} {limits.where(name)}, got {count:,}")
    )
    return True


def request_size_violations(
    request: pb.OptimizeToursRequest, limits: Limits, *, synchronous: bool
) -> list[FieldViolation]:
    """What in ``request`` exceeds ``limits`` (paths relative to the request), reading only
    lengths: nothing proportional to the claimed sizes is allocated. ``synchronous``: the
    timeout cap of OptimizeTours and streams (else the long-running one)."""
    problems: list[FieldViolation] = []
    cap = limits.timeout_cap(synchronous=synchronous)
    if request.HasField("timeout"):
        seconds = request.timeout.seconds + request.timeout.nanos / 1e9
        if seconds > cap:
            kind = "synchronous" if synchronous else "long-running"
            flag = "sync_timeout_s" if synchronous else "long_running_timeout_s"
            problems.append(
                FieldViolation(
                    "timeout",
                    f"at most {cap:g} s for a {kind} call {limits.where(flag, 'SECONDS')}, "
                    f"got {seconds:g} s",
                )
            )
    model = request.model
    many_shipments = _over(
        problems, "model.shipments", len(model.shipments), limits, "shipments",
        "shipments",
    )  # fmt: skip
    many_vehicles = _over(
        problems, "model.vehicles", len(model.vehicles), limits, "vehicles", "vehicles"
    )
    _matrix_violations(model, limits, problems)
    _over(
        problems, "model.transition_attributes", len(model.transition_attributes), limits,
        "transition_attributes", "transition attributes",
    )  # fmt: skip
    if not many_shipments:
        total = sum(len(s.pickups) + len(s.deliveries) for s in model.shipments)
        _over(
            problems, "model.shipments", total, limits, "visits",
            "pickups and deliveries in all",
        )  # fmt: skip
        for i, shipment in enumerate(model.shipments):
            path = f"model.shipments[{i}]"
            visits = len(shipment.pickups) + len(shipment.deliveries)
            if _over(
                problems, f"{path}.deliveries" if shipment.deliveries else f"{path}.pickups",
                visits, limits, "visit_requests", "pickups and deliveries",
            ):  # fmt: skip
                continue
            for kind in ("pickups", "deliveries"):
                for j, visit in enumerate(getattr(shipment, kind)):
                    _over(
                        problems, f"{path}.{kind}[{j}].time_windows", len(visit.time_windows),
                        limits, "time_windows", "time windows",
                    )  # fmt: skip
    if not many_vehicles:
        for j, vehicle in enumerate(model.vehicles):
            path = f"model.vehicles[{j}]"
            for name in ("start_time_windows", "end_time_windows"):
                _over(
                    problems, f"{path}.{name}", len(getattr(vehicle, name)),
                    limits, "time_windows", "time windows",
                )  # fmt: skip
            _over(
                problems, f"{path}.break_rule.break_requests",
                len(vehicle.break_rule.break_requests), limits, "break_requests",
                "break requests",
            )  # fmt: skip
    return problems


def study_size_violations(
    study: pb.DepotLayoutStudy, limits: Limits, path: str = "study"
) -> list[FieldViolation]:
    """What in a depot-layout study exceeds ``limits``, on lengths only: days, candidate
    depots, layouts, and the orders of each day (a day is routed as one request: at most
    ``shipments`` orders). Called on the request's ``study`` before it is converted, and on the
    study read from ``sheets``."""
    problems: list[FieldViolation] = []
    _over(problems, f"{path}.days", len(study.days), limits, "layout_days", "days")
    _over(
        problems, f"{path}.depots", len(study.depots), limits, "layout_depots",
        "candidate depots",
    )  # fmt: skip
    _over(problems, f"{path}.layouts", len(study.layouts), limits, "layouts", "layouts")
    if len(study.days) <= limits.layout_days:
        for t, day in enumerate(study.days):
            _over(
                problems, f"{path}.days[{t}].orders", len(day.orders), limits,
                "shipments", "orders a day",
            )  # fmt: skip
    return problems


def _matrix_violations(
    model: pb.ShipmentModel, limits: Limits, problems: list[FieldViolation]
) -> None:
    """The client's matrices: tags per side, and cells of all matrices together."""
    n_src = len(model.duration_distance_matrix_src_tags)
    n_dst = len(model.duration_distance_matrix_dst_tags)
    many = _over(
        problems, "model.duration_distance_matrix_src_tags", n_src, limits,
        "matrix_tags", "source tags",
    )  # fmt: skip
    many |= _over(
        problems, "model.duration_distance_matrix_dst_tags", n_dst, limits,
        "matrix_tags", "destination tags",
    )  # fmt: skip
    matrices = len(model.duration_distance_matrices)
    if not many and matrices * n_src * n_dst > limits.matrix_cells:
        problems.append(
            FieldViolation(
                "model.duration_distance_matrices",
                f"{matrices} matrices of {n_src:,} × {n_dst:,} cells exceed the limit of "
                f"{limits.matrix_cells:,} cells {limits.where('matrix_cells')}",
            )
        )
