"""VRPLIB instances (CVRPLIB X, Solomon) as engine models, with their distance conventions.

- CVRP (Uchoa X): Euclidean distance rounded to the nearest integer; cost = total distance.
- VRPTW (Solomon, DIMACS convention): each arc's distance and travel time truncated to one
  decimal. Everything is scaled by 10 so the engine sees integers (1 unit = 0.1); costs are
  divided back.

The engine's cost is ``cost_per_kilometer × km``; with ``cost_per_kilometer = 1000`` a matrix
"meter" costs 1, so the reported cost equals the instance's distance (times 10 for VRPTW).

One module of over 500 lines on purpose: the readers, the check of published routes in each set's
own convention (``verify_routes``, ``bks_check``) and the conversion to engine models and requests
all work on :class:`VrpData` and the one table of conventions (``_CONVENTION``); split, each part
would import the others' internals.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine import (
    DurationDistanceMatrix,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)
from engine.model import DEFAULT_GLOBAL_END_TIME, DEFAULT_GLOBAL_START_TIME

DEFAULT_DATA_DIR = Path(
    os.environ.get("ROUTEOPT_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@dataclass(frozen=True)
class Instance:
    name: str
    model: ShipmentModel
    bks: float | None
    cost_divisor: float
    """Reported engine cost / cost_divisor = the instance's objective value."""


def _euclid(coords: np.ndarray) -> np.ndarray:
    diff = coords[:, None, :] - coords[None, :, :]
    return np.sqrt((diff**2).sum(axis=2))


def _sol_cost(path: Path) -> str | None:
    """The cost written on a ``.sol`` file's ``Cost`` line, as written (None: no file or line)."""
    if not path.exists():
        return None
    match = re.search(r"Cost:?\s+([0-9.]+)", path.read_text())
    return match.group(1) if match else None


def _bks_from_sol(path: Path) -> float | None:
    token = _sol_cost(path)
    return None if token is None else float(token)


def _matrix_model(
    shipments: tuple[Shipment, ...],
    vehicles: tuple[Vehicle, ...],
    travel: np.ndarray,
    tags: tuple[str, ...],
    horizon: float | None = None,
) -> ShipmentModel:
    """A model over one matrix that serves as both durations and distances (one tag per node);
    with ``horizon``, the planning horizon is [0, horizon]."""
    start, end = (
        (DEFAULT_GLOBAL_START_TIME, DEFAULT_GLOBAL_END_TIME) if horizon is None else (0.0, horizon)
    )
    return ShipmentModel(
        shipments=shipments,
        vehicles=vehicles,
        global_start_time=start,
        global_end_time=end,
        duration_distance_matrices=(DurationDistanceMatrix(travel, travel),),
        duration_distance_matrix_src_tags=tags,
        duration_distance_matrix_dst_tags=tags,
    )


def read_cvrp(path: Path, *, vehicle_slack: float = 1.2) -> Instance:
    import vrplib

    raw = vrplib.read_instance(str(path), compute_edge_weights=False)
    coords = np.asarray(raw["node_coord"], dtype=np.float64)
    dist = np.floor(_euclid(coords) + 0.5)
    demand = np.asarray(raw["demand"], dtype=np.int64)
    depot = int(np.asarray(raw["depot"]).ravel()[0])
    n = len(coords)
    tags = tuple(f"n{i}" for i in range(n))
    k_min = (
        int(re.search(r"-k(\d+)", path.stem).group(1))
        if "-k" in path.stem
        else max(1, math.ceil(demand.sum() / raw["capacity"]))
    )
    n_vehicles = max(k_min + 1, math.ceil(k_min * vehicle_slack))
    shipments = tuple(
        Shipment(
            deliveries=(VisitRequest(tags=(tags[i],)),), load_demands={"demand": int(demand[i])}
        )
        for i in range(n)
        if i != depot
    )
    vehicle = Vehicle(
        start_tags=(tags[depot],),
        end_tags=(tags[depot],),
        load_limits={"demand": int(raw["capacity"])},
        cost_per_kilometer=1000.0,
    )
    model = _matrix_model(shipments, (vehicle,) * n_vehicles, dist, tags)
    return Instance(path.stem, model, _bks_from_sol(path.with_suffix(".sol")), 1.0)


def read_solomon(path: Path, *, bks: float | None = None) -> Instance:
    import vrplib

    raw = vrplib.read_instance(str(path), compute_edge_weights=False)
    coords = np.asarray(raw["node_coord"], dtype=np.float64)
    dist = np.floor(10 * _euclid(coords) + 1e-9)  # DIMACS: truncated to 0.1, scaled by 10
    demand = np.asarray(raw["demand"], dtype=np.int64)
    tw = np.asarray(raw["time_window"], dtype=np.float64) * 10
    service = np.broadcast_to(
        np.asarray(raw["service_time"], dtype=np.float64) * 10, (len(coords),)
    )
    depot = int(np.asarray(raw["depot"]).ravel()[0])
    tags = tuple(f"n{i}" for i in range(len(coords)))
    horizon = float(tw[depot, 1])
    shipments = tuple(
        Shipment(
            deliveries=(
                VisitRequest(
                    tags=(tags[i],),
                    time_windows=(TimeWindow(float(tw[i, 0]), float(tw[i, 1])),),
                    duration_s=float(service[i]),
                ),
            ),
            load_demands={"demand": int(demand[i])},
        )
        for i in range(len(coords))
        if i != depot
    )
    vehicle = Vehicle(
        start_tags=(tags[depot],),
        end_tags=(tags[depot],),
        load_limits={"demand": int(raw["capacity"])},
        cost_per_kilometer=1000.0,
        end_time_windows=(TimeWindow(0.0, horizon),),
    )
    model = _matrix_model(shipments, (vehicle,) * int(raw["vehicles"]), dist, tags, horizon)
    return Instance(path.stem, model, bks, 10.0)


def solomon_bks(data_dir: Path) -> dict[str, float]:
    import csv

    with open(data_dir / "solomon" / "bks.csv") as f:
        return {row["instance"]: float(row["distance"]) for row in csv.DictReader(f)}


def random_pdp(seed: int, *, pairs: int = 40, vehicles: int = 10) -> Instance:
    """A random pickup-and-delivery instance (no best-known solution): ``pairs`` pairs in a
    100 x 100 square, depot in the centre, capacity 10, demands 1-3, rounded Euclidean travel."""
    rng = np.random.default_rng(seed)
    coords = np.vstack([[50.0, 50.0], rng.uniform(0, 100, size=(2 * pairs, 2))])
    dist = np.floor(_euclid(coords) + 0.5)
    tags = tuple(f"n{i}" for i in range(len(coords)))
    shipments = tuple(
        Shipment(
            pickups=(VisitRequest(tags=(tags[1 + 2 * k],)),),
            deliveries=(VisitRequest(tags=(tags[2 + 2 * k],)),),
            load_demands={"demand": int(rng.integers(1, 4))},
        )
        for k in range(pairs)
    )
    vehicle = Vehicle(
        start_tags=(tags[0],),
        end_tags=(tags[0],),
        load_limits={"demand": 10},
        cost_per_kilometer=1000.0,
    )
    model = _matrix_model(shipments, (vehicle,) * vehicles, dist, tags)
    return Instance(f"pdp-{pairs}-{seed}", model, None, 1.0)


# ============================================================================================
# The benchmark sets of the quality suite: one neutral representation (``VrpData``) per
# instance, converted into the engine's model, into an ``OptimizeToursRequest`` and into the
# peers' inputs; ``verify_routes`` checks any solver's routes against it.
# ============================================================================================

BIG_ARC = 10**9
"""Engine/PyVRP arc cost that forbids an arc (VRPB: backhaul → linehaul) without removing it."""


class UnsupportedVariantError(ValueError):
    """The engine cannot express this problem variant (yet)."""


@dataclass(frozen=True)
class VehicleGroup:
    """``count`` identical vehicles (the fleet is a tuple of groups)."""

    depot: int
    capacity: int
    count: int
    fixed_cost: float = 0.0
    unit_cost: float = 1.0
    max_duration: float | None = None


@dataclass(frozen=True, eq=False)
class VrpData:
    """An instance in its set's convention. ``dist`` is the integer travel matrix in scaled
    units (``scale`` units = 1 instance unit; also the travel time for time-window sets);
    node order as in the file, depots first; the objective (cost / scale) is
    Σ unit_cost × distance + fixed costs of used vehicles + prizes of unvisited clients."""

    name: str
    kind: str
    coords: np.ndarray
    dist: np.ndarray
    scale: float
    depots: tuple[int, ...]
    delivery: np.ndarray
    pickup: np.ndarray
    fleet: tuple[VehicleGroup, ...]
    time_windows: np.ndarray | None = None
    service: np.ndarray | None = None
    prize: np.ndarray | None = None
    """Clients with a prize are optional (prize-collecting); others are mandatory."""
    backhaul_last: bool = False
    """VRPB: on a route every linehaul (delivery) client precedes every backhaul client."""
    bks: float | None = None
    """Best-known objective in the set's convention (distance only, not vehicles first)."""
    bks_vehicles: int | None = None
    reference: dict[str, float] = field(default_factory=dict)
    """Other published values for context (e.g. SINTEF hierarchical: vehicles, distance)."""
    fleet_capped: bool = False
    original_groups: tuple[int, ...] = ()
    """Group of each vehicle of the file (HFVRP, MDVRPTW: their .sol route k = vehicle k)."""

    @property
    def clients(self) -> list[int]:
        return [i for i in range(len(self.coords)) if i not in self.depots]

    @property
    def has_time_windows(self) -> bool:
        return self.time_windows is not None

    def vehicle_groups(self) -> list[int]:
        """Group index of each vehicle, in fleet order."""
        return [g for g, group in enumerate(self.fleet) for _ in range(group.count)]


@dataclass(frozen=True)
class SetSpec:
    name: str
    folder: str
    kind: str
    note: str


SETS: dict[str, SetSpec] = {
    "CVRP": SetSpec("CVRP", "vrplib/CVRP", "CVRP", "Uchoa X; Euclidean rounded to nearest integer"),
    "SOLOMON": SetSpec(
        "SOLOMON", "solomon", "VRPTW", "Solomon 100; DIMACS (truncated to 0.1), distance only"
    ),
    "GH200": SetSpec(
        "GH200",
        "gehring_homberger_200",
        "VRPTW",
        "Gehring-Homberger 200; DIMACS distance-only BKS (cvrplib_dimacs_distance); the SINTEF "
        "hierarchical BKS (vehicles first, full precision) is reported alongside, not gapped",
    ),
    "GH1000": SetSpec("GH1000", "vrplib/VRPTW", "VRPTW", "Gehring-Homberger 1000; DIMACS"),
    "HFVRP": SetSpec(
        "HFVRP", "vrplib/HFVRP", "HFVRP", "heterogeneous fleet: per-vehicle capacity and costs"
    ),
    "MDVRPTW": SetSpec("MDVRPTW", "vrplib/MDVRPTW", "MDVRPTW", "multi-depot: vehicles per depot"),
    "PCVRPTW": SetSpec(
        "PCVRPTW", "vrplib/PCVRPTW", "PCVRPTW", "prize-collecting: prize = penalty_cost"
    ),
    "VRPB": SetSpec(
        "VRPB",
        "vrplib/VRPB",
        "VRPB",
        "backhauls = pickup-only shipments; linehaul-first enforced by prohibitive arc costs",
    ),
    "MTVRPTWR": SetSpec(
        "MTVRPTWR", "vrplib/MTVRPTWR", "MTVRPTWR", "NOT EXPRESSIBLE: multi-trip with reloads"
    ),
}

UNSUPPORTED: dict[str, str] = {
    "MTVRPTWR": "multi-trip routes (reloading at the depot mid-route) and client release dates "
    "have no equivalent in the engine's model; listed, not run",
}

# Distance conventions, (rule, scale, divisor of the file's BKS), each reproduced from the
# published .sol routes by ``bks_check``. CVRPLIB: nearest integer. DIMACS: truncated to one
# decimal (scale 10). "exact": x1000 rounded (scale 1000): MDVRPTW (Vidal et al.; its .sol costs
# are x1000) and HFVRP (Pessoa et al., full-precision distances; the PyVRP dialect's unit and
# fixed costs are x100, undone here). PCVRPTW: DIMACS; its .sol costs are x10.
HFVRP_INTEGER_COST_SCALE = 100 * 1000

_CONVENTION: dict[str, tuple[str, float, float]] = {
    "CVRP": ("round", 1.0, 1.0),
    "VRPTW": ("dimacs", 10.0, 1.0),
    "HFVRP": ("exact", 1000.0, 1.0),
    "MDVRPTW": ("exact", 1000.0, 1000.0),
    "PCVRPTW": ("dimacs", 10.0, 10.0),
    "VRPB": ("round", 1.0, 1.0),
}


def _apply_convention(d: np.ndarray, rule: str) -> np.ndarray:
    if rule == "round":
        return np.floor(d + 0.5)
    if rule == "dimacs":
        return np.floor(10 * d + 1e-9)
    if rule == "exact":
        return np.floor(1000 * d + 0.5)
    raise ValueError(rule)


def data_dir_or_exit(data_dir: Path) -> Path:
    """``data_dir`` if it holds the sets, else a clear message (SystemExit)."""
    if data_dir.is_dir() and any((data_dir / s.folder).is_dir() for s in SETS.values()):
        return data_dir
    raise SystemExit(
        f"no benchmark instances under {data_dir}. Pass --data-dir DIR (or set ROUTEOPT_DATA_DIR) "
        "to a folder with vrplib/CVRP (CVRPLIB X: http://vrp.galgos.inf.puc-rio.br, or the "
        "`vrplib` package: vrplib.download_instance), solomon/ and gehring_homberger_200/ "
        "(SINTEF TOP: https://www.sintef.no/projectweb/top/vrptw/), as in ../shared/data."
    )


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    import csv

    if not path.exists():
        return {}
    with open(path) as f:
        return {row["instance"]: row for row in csv.DictReader(f)}


def _sol_routes(path: Path) -> list[list[int]]:
    routes = []
    for line in path.read_text().splitlines():
        if line.startswith("Route"):
            routes.append([int(x) for x in line.split(":", 1)[1].split()])
    return routes


def read_vrp(path: Path, set_name: str | None = None) -> VrpData:
    """Read one instance of any supported set (``set_name`` from ``SETS``; guessed from the
    file's TYPE otherwise). Raises ``UnsupportedVariantError`` for variants the engine cannot
    express."""
    import vrplib

    raw = vrplib.read_instance(str(path), compute_edge_weights=False)
    kind = str(raw.get("type", "CVRP")).upper()
    if set_name is not None and SETS[set_name].kind != kind:
        raise ValueError(f"{path}: TYPE {kind}, expected {SETS[set_name].kind}")
    if kind in UNSUPPORTED:
        raise UnsupportedVariantError(f"{path.stem}: {kind}: {UNSUPPORTED[kind]}")
    rule, scale, bks_divisor = _CONVENTION[kind]
    coords = np.asarray(raw["node_coord"], dtype=np.float64)
    n = len(coords)
    dist = _apply_convention(_euclid(coords), rule)
    depots = tuple(int(d) for d in np.atleast_1d(raw["depot"]))
    if depots != tuple(range(len(depots))):
        raise ValueError(f"{path}: depots must be the first nodes, got {depots}")
    delivery = np.asarray(raw["demand"], dtype=np.int64)
    pickup = np.zeros(n, dtype=np.int64)
    if "backhaul" in raw:
        pickup = np.asarray(raw["backhaul"], dtype=np.int64)
    tw = service = prize = None
    if "time_window" in raw:
        tw = np.asarray(raw["time_window"], dtype=np.float64) * scale
        st = np.broadcast_to(np.asarray(raw.get("service_time", 0), dtype=np.float64), (n,))
        service = st.copy() * scale
        service[list(depots)] = 0.0
    if "prize" in raw:
        prize = np.asarray(raw["prize"], dtype=np.float64) * scale
    fleet, capped, original_groups = _fleet(path, raw, kind, scale, depots, delivery, pickup)
    bks, bks_vehicles, reference = _best_known(path, kind, bks_divisor)
    return VrpData(
        name=path.stem,
        kind=kind,
        coords=coords,
        dist=dist,
        scale=scale,
        depots=depots,
        delivery=delivery,
        pickup=pickup,
        fleet=fleet,
        time_windows=tw,
        service=service,
        prize=prize,
        backhaul_last=kind == "VRPB",
        bks=bks,
        bks_vehicles=bks_vehicles,
        reference=reference,
        fleet_capped=capped,
        original_groups=original_groups,
    )


def _k_min(path: Path, load: int, capacity: int) -> int:
    """The fewest vehicles: the instance name's ``-kN``, at least the load over the capacity."""
    named = int(re.search(r"-k(\d+)", path.stem).group(1)) if "-k" in path.stem else 0
    return max(named, math.ceil(load / capacity))


def _fleet(
    path: Path,
    raw: dict[str, Any],
    kind: str,
    scale: float,
    depots: tuple[int, ...],
    delivery: np.ndarray,
    pickup: np.ndarray,
) -> tuple[tuple[VehicleGroup, ...], bool, tuple[int, ...]]:
    """The fleet of an instance: its vehicle groups, whether an unlimited fleet was capped,
    and (HFVRP, MDVRPTW) the group of each vehicle of the file."""
    capacity = np.atleast_1d(raw["capacity"]).astype(np.int64)
    if kind == "CVRP":
        k_min = _k_min(path, int(delivery.sum()), int(capacity[0]))
        return (
            (VehicleGroup(0, int(capacity[0]), max(k_min + 1, math.ceil(1.2 * k_min))),),
            False,
            (),
        )
    if kind == "VRPB":
        k_min = _k_min(path, int(max(delivery.sum(), pickup.sum())), int(capacity[0]))
        return (
            (VehicleGroup(0, int(capacity[0]), max(k_min + 1, math.ceil(1.5 * k_min))),),
            False,
            (),
        )
    if kind == "HFVRP":
        return _hfvrp_fleet(raw, capacity, scale, int(delivery.sum()))
    if kind == "MDVRPTW":
        return _mdvrptw_fleet(raw, capacity, scale, depots)
    # VRPTW, PCVRPTW
    return (VehicleGroup(0, int(capacity[0]), int(raw["vehicles"])),), False, ()


def _hfvrp_fleet(
    raw: dict[str, Any], capacity: np.ndarray, scale: float, total_demand: int
) -> tuple[tuple[VehicleGroup, ...], bool, tuple[int, ...]]:
    k = int(raw["vehicles"])
    cap = np.broadcast_to(capacity, (k,))
    fixed = np.broadcast_to(np.asarray(raw.get("vehicles_fixed_cost", 0.0)), (k,))
    unit = np.broadcast_to(np.asarray(raw.get("vehicles_unit_distance_cost", 1.0)), (k,))
    groups: dict[tuple[int, float, float], int] = {}
    keys = []
    for v in range(k):
        # file costs are x100; a matrix unit is 1/1000 of a distance unit
        key = (int(cap[v]), float(fixed[v]) * scale / 100, float(unit[v]) / 100)
        groups[key] = groups.get(key, 0) + 1
        keys.append(key)
    # Unlimited fleets (FSM*) list n vehicles per type; cap each type at what could be
    # useful (all demand on this type, + 2) to keep the engine's model small.
    capped = False
    out = []
    for (c, f, u), count in groups.items():
        limit = math.ceil(total_demand / c) + 2
        capped |= count > limit
        out.append(VehicleGroup(0, c, min(count, limit), fixed_cost=f, unit_cost=u))
    order = list(groups)
    return tuple(out), capped, tuple(order.index(key) for key in keys)


def _mdvrptw_fleet(
    raw: dict[str, Any], capacity: np.ndarray, scale: float, depots: tuple[int, ...]
) -> tuple[tuple[VehicleGroup, ...], bool, tuple[int, ...]]:
    vdepot = np.asarray(raw["vehicles_depot"], dtype=np.int64) - 1
    max_dur = raw.get("vehicles_max_duration")
    out = []
    for d in depots:
        count = int((vdepot == d).sum())
        if count:
            out.append(
                VehicleGroup(
                    d,
                    int(capacity[0]),
                    count,
                    max_duration=None if max_dur is None else float(max_dur) * scale,
                )
            )
    order_d = [g.depot for g in out]
    return tuple(out), False, tuple(order_d.index(int(d)) for d in vdepot)


def _best_known(
    path: Path, kind: str, bks_divisor: float
) -> tuple[float | None, int | None, dict[str, float]]:
    """The best-known cost, its vehicle count and reference values (the set's bks.csv, else the
    instance's .sol file)."""
    bks: float | None = None
    bks_vehicles: int | None = None
    reference: dict[str, float] = {}
    csv_rows = _read_csv(path.parent / "bks.csv")
    sol = path.with_suffix(".sol")
    if path.stem in csv_rows:
        row = csv_rows[path.stem]
        if "cvrplib_dimacs_distance" in row:  # GH200: the csv's main columns are SINTEF
            bks = float(row["cvrplib_dimacs_distance"])
            reference = {
                "sintef_vehicles": float(row["vehicles"]),
                "sintef_distance": float(row["distance"]),
            }
        else:  # Solomon: DIMACS columns + SINTEF ones
            bks = float(row["distance"])
            bks_vehicles = int(row["vehicles"]) if row.get("vehicles") else None
            if row.get("sintef_vehicles"):
                reference = {
                    "sintef_vehicles": float(row["sintef_vehicles"]),
                    "sintef_distance": float(row["sintef_distance"]),
                }
    elif sol.exists():
        token = _sol_cost(sol)
        bks_vehicles = sum(1 for r in _sol_routes(sol) if r)
        if token is not None:
            bks = float(token) / bks_divisor
            if kind == "HFVRP" and "." not in token:
                # Half of the HFVRP .sol files give the cost as an integer in PyVRP's scale:
                # costs x100 and distances x1000 (X148-HVRP: 8028527330 for 80285.27).
                bks /= HFVRP_INTEGER_COST_SCALE
    return bks, bks_vehicles, reference


def list_instances(
    data_dir: Path, set_name: str, *, names: list[str] | None = None, max_n: int | None = None
) -> list[Path]:
    """The instance files of a set (sorted; ``max_n``: at most that many customers)."""
    folder = data_dir / SETS[set_name].folder
    paths = sorted(folder.glob("*.vrp"))
    if names:
        wanted = set(names)
        paths = [p for p in paths if p.stem in wanted]
        missing = wanted - {p.stem for p in paths}
        if missing:
            raise SystemExit(f"not in {folder}: {', '.join(sorted(missing))}")
    if max_n is not None:
        paths = [p for p in paths if _dimension(p) - 1 <= max_n]
    return paths


def _dimension(path: Path) -> int:
    with open(path) as f:
        for line in f:
            if line.upper().startswith("DIMENSION"):
                return int(line.split(":")[1])
    raise ValueError(f"{path}: no DIMENSION")


# --------------------------------------------------------------------------------------------
# Verification of any solver's routes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    cost: float
    """Objective in instance units (cost / scale)."""
    vehicles: int
    problems: tuple[str, ...]

    @property
    def feasible(self) -> bool:
        return not self.problems


def verify_routes(data: VrpData, routes: list[tuple[int, list[int]]]) -> Verified:
    """Check routes ``(vehicle group index, [client nodes])`` against ``data``: every mandatory
    client exactly once, no client twice, fleet sizes, capacity with delivery/pickup loads,
    time windows (waiting allowed), depot closing time, route duration, linehaul-first;
    recompute the objective with the set's distance convention."""
    problems: list[str] = []
    d = data.dist
    seen: dict[int, int] = {}
    used = [0] * len(data.fleet)
    cost = 0.0
    for r, (g, nodes) in enumerate(routes):
        if not nodes:
            continue
        group = data.fleet[g]
        used[g] += 1
        depot = group.depot
        for c in nodes:
            if c in data.depots or not 0 <= c < len(data.coords):
                problems.append(f"route {r}: node {c} is not a client")
            seen[c] = seen.get(c, 0) + 1
        path = [depot, *nodes, depot]
        length = float(sum(d[a, b] for a, b in itertools.pairwise(path)))
        cost += group.unit_cost * length + group.fixed_cost
        load = int(data.delivery[nodes].sum())
        if load > group.capacity:
            problems.append(f"route {r}: deliveries {load} > capacity {group.capacity}")
        for c in nodes:
            load += int(data.pickup[c]) - int(data.delivery[c])
            if load > group.capacity:
                problems.append(f"route {r}: load {load} > capacity after {c}")
        if data.backhaul_last:
            kinds = [bool(data.pickup[c] > 0) for c in nodes]
            if any(a and not b for a, b in itertools.pairwise(kinds)):
                problems.append(f"route {r}: a linehaul client after a backhaul client")
        if data.time_windows is not None and data.service is not None:
            problems += _check_schedule(data, r, group, path)
    for g, group in enumerate(data.fleet):
        if used[g] > group.count:
            problems.append(f"vehicle group {g}: {used[g]} routes > {group.count} vehicles")
    for c in data.clients:
        k = seen.get(c, 0)
        optional = data.prize is not None and data.prize[c] > 0
        if k > 1:
            problems.append(f"client {c} visited {k} times")
        elif k == 0:
            if optional:
                cost += float(data.prize[c])  # type: ignore[index]
            else:
                problems.append(f"client {c} not visited")
    return Verified(cost / data.scale, sum(used), tuple(problems))


def _schedule(data: VrpData, path: list[int], depart: float) -> tuple[float, list[str]]:
    """Return time at the end depot and window violations, leaving the depot at ``depart``."""
    tw, st, d = data.time_windows, data.service, data.dist
    assert tw is not None
    assert st is not None
    late: list[str] = []
    t = depart
    for a, b in itertools.pairwise(path):
        t = max(t + float(st[a]) + float(d[a, b]), float(tw[b, 0]))
        if t > tw[b, 1] + 1e-6:
            late.append(f"node {b} reached at {t:g} > {tw[b, 1]:g}")
    return t, late


def _check_schedule(data: VrpData, r: int, group: VehicleGroup, path: list[int]) -> list[str]:
    tw = data.time_windows
    assert tw is not None
    early = float(tw[group.depot, 0])
    _end, late = _schedule(data, path, early)
    problems = [f"route {r}: {x}" for x in late]
    if problems or group.max_duration is None:
        return problems
    # Shortest duration: leave as late as the windows allow (end time is non-decreasing and
    # feasibility monotone in the departure time), found by bisection.
    lo, hi = early, float(tw[group.depot, 1])
    for _ in range(60):
        mid = (lo + hi) / 2
        if _schedule(data, path, mid)[1]:
            hi = mid
        else:
            lo = mid
    duration = _schedule(data, path, lo)[0] - lo
    if duration > group.max_duration + 1e-3:
        problems.append(f"route {r}: duration {duration:g} > {group.max_duration:g}")
    return problems


def bks_check(path: Path, set_name: str | None = None) -> tuple[float | None, Verified | None]:
    """(published BKS, the BKS routes of the ``.sol`` file verified here) — checks that the
    reader's convention reproduces the literature's cost."""
    data = read_vrp(path, set_name)
    sol = path.with_suffix(".sol")
    if not sol.exists():
        return data.bks, None
    routes = []
    for k, nodes in enumerate(_sol_routes(sol)):
        if nodes:
            routes.append((data.original_groups[k] if data.original_groups else 0, nodes))
    return data.bks, verify_routes(data, routes)


# --------------------------------------------------------------------------------------------
# Engine model and OptimizeToursRequest
# --------------------------------------------------------------------------------------------


def to_model(data: VrpData) -> ShipmentModel:
    """The engine's problem: one shipment per client (node order), one vehicle per fleet
    vehicle (group order). Costs: ``cost_per_kilometer = 1000 × unit_cost`` so a matrix unit
    costs ``unit_cost``; engine cost / ``scale`` = the instance's objective."""
    n = len(data.coords)
    tags = tuple(f"n{i}" for i in range(n))
    matrix = data.dist.astype(np.float64)
    if data.backhaul_last:
        back = data.pickup > 0
        line = (data.delivery > 0) & ~back
        matrix = matrix.copy()
        matrix[np.ix_(back, line)] = BIG_ARC
    tw = data.time_windows
    st = data.service
    horizon = None if tw is None else float(tw[list(data.depots)].max())

    def visit(i: int) -> VisitRequest:
        return VisitRequest(
            tags=(tags[i],),
            time_windows=() if tw is None else (TimeWindow(float(tw[i, 0]), float(tw[i, 1])),),
            duration_s=0.0 if st is None else float(st[i]),
        )

    shipments = []
    for i in data.clients:
        penalty = None
        if data.prize is not None and data.prize[i] > 0:
            penalty = float(data.prize[i])
        if data.pickup[i] > 0 and data.delivery[i] == 0:
            shipments.append(
                Shipment(
                    pickups=(visit(i),),
                    load_demands={"demand": int(data.pickup[i])},
                    penalty_cost=penalty,
                )
            )
        else:
            shipments.append(
                Shipment(
                    deliveries=(visit(i),),
                    load_demands={"demand": int(data.delivery[i])},
                    penalty_cost=penalty,
                )
            )
    vehicles = []
    for group in data.fleet:
        windows: tuple[TimeWindow, ...] = ()
        if tw is not None:
            windows = (TimeWindow(float(tw[group.depot, 0]), float(tw[group.depot, 1])),)
        vehicles += [
            Vehicle(
                start_tags=(tags[group.depot],),
                end_tags=(tags[group.depot],),
                load_limits={"demand": group.capacity},
                cost_per_kilometer=1000.0 * group.unit_cost,
                fixed_cost=group.fixed_cost,
                start_time_windows=windows,
                end_time_windows=windows,
                route_duration_limit_s=group.max_duration,
            )
        ] * group.count
    return _matrix_model(tuple(shipments), tuple(vehicles), matrix, tags, horizon)


def to_instance(data: VrpData) -> Instance:
    return Instance(data.name, to_model(data), data.bks, data.scale)


def engine_routes(data: VrpData, solution: object) -> list[tuple[int, list[int]]]:
    """An engine ``Solution`` as ``verify_routes`` input (shipment k = k-th client)."""
    clients = data.clients
    groups = data.vehicle_groups()
    return [
        (groups[r.vehicle_index], [clients[v.shipment_index] for v in r.visits])
        for r in solution.routes  # type: ignore[attr-defined]
        if r.visits
    ]


def instance_to_request(instance: Instance | VrpData, *, timeout_s: float | None = None) -> object:
    """The same instance as an ``OptimizeToursRequest`` (``rpc`` protos) for the server."""
    from google.protobuf import duration_pb2, timestamp_pb2

    from rpc.pb import route_optimization_service_pb2 as pb

    if isinstance(instance, VrpData):
        instance = to_instance(instance)
    model = instance.model

    def ts(value: float) -> timestamp_pb2.Timestamp:
        out = timestamp_pb2.Timestamp()
        out.seconds = math.floor(value)
        out.nanos = round((value - math.floor(value)) * 1e9)
        return out

    def dur(value: float) -> duration_pb2.Duration:
        out = duration_pb2.Duration()
        out.seconds = math.floor(value)
        out.nanos = round((value - math.floor(value)) * 1e9)
        return out

    def windows(target: object, ws: tuple[TimeWindow, ...]) -> None:
        for w in ws:
            tw = target.add()  # type: ignore[attr-defined]
            if w.start_time is not None:
                tw.start_time.CopyFrom(ts(w.start_time))
            if w.end_time is not None:
                tw.end_time.CopyFrom(ts(w.end_time))

    def visit_requests(target: object, visits: tuple[VisitRequest, ...]) -> None:
        for v in visits:
            out = target.add()  # type: ignore[attr-defined]
            out.tags.extend(v.tags)
            if v.duration_s:
                out.duration.CopyFrom(dur(v.duration_s))
            windows(out.time_windows, v.time_windows)
            if v.arrival_location is not None:
                out.arrival_location.latitude = v.arrival_location.latitude
                out.arrival_location.longitude = v.arrival_location.longitude

    req = pb.OptimizeToursRequest(label=instance.name)
    if timeout_s is not None:
        req.timeout.CopyFrom(dur(timeout_s))
    m = req.model
    m.global_start_time.CopyFrom(ts(model.global_start_time))
    m.global_end_time.CopyFrom(ts(model.global_end_time))
    for s in model.shipments:
        ps = m.shipments.add()
        visit_requests(ps.pickups, s.pickups)
        visit_requests(ps.deliveries, s.deliveries)
        for name, amount in s.load_demands.items():
            ps.load_demands[name].amount = amount
        if s.penalty_cost is not None:
            ps.penalty_cost = s.penalty_cost
        ps.allowed_vehicle_indices.extend(s.allowed_vehicle_indices)
    for v in model.vehicles:
        pv = m.vehicles.add()
        pv.start_tags.extend(v.start_tags)
        pv.end_tags.extend(v.end_tags)
        for loc, name in ((v.start_location, "start_location"), (v.end_location, "end_location")):
            if loc is not None:
                getattr(pv, name).latitude = loc.latitude
                getattr(pv, name).longitude = loc.longitude
        windows(pv.start_time_windows, v.start_time_windows)
        windows(pv.end_time_windows, v.end_time_windows)
        for name, limit in v.load_limits.items():
            pv.load_limits[name].max_load = limit
        pv.cost_per_kilometer = v.cost_per_kilometer
        pv.cost_per_hour = v.cost_per_hour
        pv.cost_per_traveled_hour = v.cost_per_traveled_hour
        pv.fixed_cost = v.fixed_cost
        if v.route_duration_limit_s is not None:
            pv.route_duration_limit.max_duration.CopyFrom(dur(v.route_duration_limit_s))
    m.duration_distance_matrix_src_tags.extend(model.duration_distance_matrix_src_tags)
    m.duration_distance_matrix_dst_tags.extend(model.duration_distance_matrix_dst_tags)
    for mat in model.duration_distance_matrices:
        pm = m.duration_distance_matrices.add(vehicle_start_tag=mat.vehicle_start_tag)
        for drow, mrow in zip(mat.durations_s, mat.distances_m, strict=True):
            row = pm.rows.add()
            row.meters.extend(float(x) for x in mrow)
            for x in drow:
                row.durations.append(dur(float(x)))
    return req
